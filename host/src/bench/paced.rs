//! Tick-to-decision of the host's own path (parse → book → bus → plugins), one
//! wire message at a time at a steady rate, with no simulator sharing the two
//! cores: the feeding thread plays the socket reader, the strategy thread runs
//! as live with every plugin of the set. The feeder keeps time by spinning, so
//! the rate is exact.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pipeline::Pipeline;
use super::wire;
use crate::strategy::PluginHost;
use crate::strategy::stats::LatencySummary;

#[derive(Debug, Clone)]
pub struct Paced {
    pub pairs: usize,
    pub plugins: usize,
    pub per_second: u64,
    pub tick_to_decision: LatencySummary,
    /// One `evaluate` of each plugin, in the set's order.
    pub evaluate: Vec<(String, LatencySummary)>,
    /// The feeding thread's share: parse, book update and publish of one message.
    pub feed: LatencySummary,
}

pub fn measure(
    host: &PluginHost,
    plugins: &[(String, Arc<Vec<u8>>)],
    pairs: usize,
    per_second: u64,
    messages: usize,
) -> anyhow::Result<Paced> {
    let market = wire::pairs(pairs);
    let updates = wire::updates(&market, messages);
    let mut p = Pipeline::new(host, &market);
    p.load(plugins)?;
    for (venue, text) in &wire::snapshots(&market) {
        p.feed.on_text(*venue, text);
    }
    p.strategy.drain();
    let gap = Duration::from_nanos(1_000_000_000 / per_second.max(1));
    let feed = crate::strategy::stats::Histogram::default();
    let mut next = Instant::now();
    for (venue, text) in &updates {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += gap;
        let started = Instant::now();
        p.feed.on_text(*venue, text);
        feed.record(started.elapsed());
    }
    p.strategy.drain();
    anyhow::ensure!(
        p.feed.problems() == 0,
        "the synthetic session had bad messages or gaps"
    );
    let evaluate = plugins
        .iter()
        .map(|(name, _)| {
            p.strategy
                .report(name)
                .map(|r| (name.clone(), r.latency))
                .ok_or_else(|| anyhow::anyhow!("{name} not loaded"))
        })
        .collect::<anyhow::Result<_>>()?;
    let result = Paced {
        pairs,
        plugins: plugins.len(),
        per_second,
        tick_to_decision: p.strategy.tick_to_decision(),
        evaluate,
        feed: feed.summary(),
    };
    p.strategy.shutdown();
    Ok(result)
}

/// The floor under any tick-to-decision that crosses from a reader thread to
/// an evaluating thread on this machine: one thread stamps the time into an
/// atomic at `per_second`, a second one spinning on it records how late it
/// saw each stamp. Nothing else happens on either side, so what is left is
/// the machine itself: cache-line transfer, and above all the moments the
/// hypervisor or the kernel takes a core away. When this floor's p99 is over
/// the target, no code change meets the target on this machine.
pub fn handoff_floor(per_second: u64, stamps: usize) -> LatencySummary {
    use std::sync::atomic::{AtomicU64, Ordering};
    let hist = Arc::new(crate::strategy::stats::Histogram::default());
    let slot = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let since = move || epoch.elapsed().as_nanos() as u64 + 1;
    let reader = {
        let (hist, slot) = (hist.clone(), slot.clone());
        std::thread::spawn(move || {
            // A stamp overwritten before it was seen (this thread was off its
            // core) is not counted; the next one shows how late it was.
            let mut last = 0;
            loop {
                let v = slot.load(Ordering::Acquire);
                if v == u64::MAX {
                    return;
                }
                if v != last {
                    hist.record_ns(since().saturating_sub(v));
                    last = v;
                }
                std::hint::spin_loop();
            }
        })
    };
    let gap = Duration::from_nanos(1_000_000_000 / per_second.max(1));
    let mut next = Instant::now();
    for _ in 0..stamps {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += gap;
        slot.store(since(), Ordering::Release);
    }
    // Give the reader the last stamp's chance, then stop it.
    let until = Instant::now() + gap;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    slot.store(u64::MAX, Ordering::Release);
    let _ = reader.join();
    hist.summary()
}

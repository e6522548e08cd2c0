//! Hot reload under load: a plugin file is rewritten again and again (two
//! different components, written then renamed as a builder does) while book
//! updates stream in; each swap is timed from the rename to the runtime's
//! "reloaded", and afterwards every plugin must have been called exactly once
//! per evaluation (nothing lost, nothing evaluated twice) and every change
//! covered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::pipeline::Pipeline;
use super::wire;
use crate::bus::StatusEvent;
use crate::domain::events::PluginStatus;
use crate::strategy::PluginHost;

#[derive(Debug, Clone)]
pub struct Reload {
    pub swaps: usize,
    /// File renamed → new version evaluating, per swap (includes the watcher's debounce).
    pub swap_ms: Vec<f64>,
    pub evaluations: u64,
    pub updates: u64,
    /// Evaluations the swapped plugin missed, or made twice (calls − evaluations).
    pub missed: u64,
    pub doubled: u64,
    /// Resident memory (KiB) once the first swaps have warmed up, and after the last.
    pub rss_warm: Option<u64>,
    pub rss_end: Option<u64>,
    /// The swap after which `rss_warm` was read.
    pub warm_after: usize,
}

const SWAPPED: &str = "swapped";

pub fn measure(
    host: &PluginHost,
    steady: (String, Arc<Vec<u8>>),
    versions: [Arc<Vec<u8>>; 2],
    swaps: usize,
) -> anyhow::Result<Reload> {
    let dir = super::Scratch::new("plugins")?;
    let file = dir.path().join(format!("{SWAPPED}.wasm"));
    let market = wire::pairs(100);
    let snapshots = wire::snapshots(&market);
    // Enough for the whole run at the feeding pace below.
    let messages = 2_000 * swaps.max(1) * 2;
    let p = Pipeline::new(host, &market);
    p.load(std::slice::from_ref(&steady))?;
    std::fs::write(&file, &*versions[0])?;
    p.strategy
        .load_file(&file)
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", file.display()))?;
    p.strategy
        .watch(dir.path(), crate::app::RELOAD_DEBOUNCE)
        .map_err(|e| anyhow::anyhow!("watching {}: {e}", dir.path().display()))?;
    let mut status = p.bus.status.subscribe();

    let Pipeline {
        strategy, mut feed, ..
    } = p;
    for (venue, text) in &snapshots {
        feed.on_text(*venue, text);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        let market = market.clone();
        std::thread::spawn(move || {
            // About 20,000 updates per second: a busy market, not saturation.
            // Made one at a time, so a long run holds no session in memory.
            for k in 0..messages {
                if k % 100 == 0 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                let (venue, text) = wire::update(&market, k);
                feed.on_text(venue, &text);
            }
            feed
        })
    };

    let mut swap_ms = Vec::with_capacity(swaps);
    // Memory is compared from here on: the first swaps fill the engine's
    // pools and caches once.
    let warm_after = (swaps / 10).clamp(1, 20).min(swaps);
    let mut rss_warm = None;
    for k in 0..swaps {
        if k == warm_after {
            rss_warm = super::rss_kib();
        }
        let bytes = &versions[(k + 1) % 2];
        let tmp = dir.path().join(format!("{SWAPPED}.wasm.tmp"));
        std::fs::write(&tmp, &**bytes)?;
        let closed = Instant::now();
        std::fs::rename(&tmp, &file)?;
        let deadline = closed + Duration::from_secs(10);
        loop {
            match status.try_recv() {
                Some(StatusEvent::Plugin(s)) if s.plugin == SWAPPED => match s.status {
                    PluginStatus::Reloaded => break,
                    PluginStatus::Rejected(r) => anyhow::bail!("reload refused: {r}"),
                    _ => {}
                },
                Some(_) => {}
                // Polling at 0.2 ms: small beside a swap, which waits out a 50 ms debounce.
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                None => anyhow::bail!("swap {k} not live after 10 s"),
            }
        }
        swap_ms.push(closed.elapsed().as_secs_f64() * 1e3);
    }
    let rss_end = super::rss_kib();
    stop.store(true, Ordering::Relaxed);
    let feed = feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeder thread panicked"))?;
    strategy.drain();

    anyhow::ensure!(
        feed.problems() == 0,
        "the synthetic session had bad messages or gaps"
    );
    anyhow::ensure!(
        strategy.changes_evaluated() == feed.book_updates(),
        "{} book updates applied, {} covered by evaluations: updates were lost",
        feed.book_updates(),
        strategy.changes_evaluated()
    );
    let evaluations = strategy.evaluations();
    let calls = |name: &str| strategy.report(name).map_or(0, |r| r.calls);
    let (swapped, steady_calls) = (calls(SWAPPED), calls(&steady.0));
    anyhow::ensure!(
        steady_calls == evaluations,
        "the plugin that was never swapped made {steady_calls} calls for {evaluations} evaluations"
    );
    let result = Reload {
        swaps,
        swap_ms,
        evaluations,
        updates: feed.book_updates(),
        missed: evaluations.saturating_sub(swapped),
        doubled: swapped.saturating_sub(evaluations),
        rss_warm,
        rss_end,
        warm_after,
    };
    strategy.shutdown();
    Ok(result)
}

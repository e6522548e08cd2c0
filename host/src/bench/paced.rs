//! Tick-to-decision of the host's own path (parse → book → bus → plugin), one
//! wire message at a time at a steady rate, with no simulator sharing the two
//! cores: the feeding thread plays the socket reader, the strategy thread runs
//! as live. The feeder keeps time by spinning, so the rate is exact.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pipeline::Pipeline;
use super::wire;
use crate::strategy::PluginHost;
use crate::strategy::stats::LatencySummary;

#[derive(Debug, Clone)]
pub struct Paced {
    pub pairs: usize,
    pub per_second: u64,
    pub tick_to_decision: LatencySummary,
    /// One `evaluate` of the Rust plugin.
    pub evaluate: LatencySummary,
}

pub fn measure(
    host: &PluginHost,
    plugin: (String, Arc<Vec<u8>>),
    pairs: usize,
    per_second: u64,
    messages: usize,
) -> anyhow::Result<Paced> {
    let market = wire::pairs(pairs);
    let updates = wire::updates(&market, messages);
    let mut p = Pipeline::new(host, &market);
    p.load(std::slice::from_ref(&plugin))?;
    for (venue, text) in &wire::snapshots(&market) {
        p.feed.on_text(*venue, text);
    }
    p.strategy.drain();
    let gap = Duration::from_nanos(1_000_000_000 / per_second.max(1));
    let mut next = Instant::now();
    for (venue, text) in &updates {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += gap;
        p.feed.on_text(*venue, text);
    }
    p.strategy.drain();
    anyhow::ensure!(
        p.feed.problems() == 0,
        "the synthetic session had bad messages or gaps"
    );
    let report = p
        .strategy
        .report(&plugin.0)
        .ok_or_else(|| anyhow::anyhow!("{} not loaded", plugin.0))?;
    let result = Paced {
        pairs,
        per_second,
        tick_to_decision: p.strategy.tick_to_decision(),
        evaluate: report.latency,
    };
    p.strategy.shutdown();
    Ok(result)
}

//! Sustained book updates per second through parse → book → plugins: one
//! thread feeds pre-built wire messages as fast as it can while the strategy
//! thread evaluates; the clock stops when every change has been evaluated.
//!
//! A pair that changes again before the strategy reached it is evaluated once
//! on its latest book (the bus coalesces per pair), so evaluations can be
//! fewer than updates; that every update was covered is checked.

use std::sync::Arc;
use std::time::Instant;

use super::pipeline::Pipeline;
use super::wire;
use crate::strategy::PluginHost;

#[derive(Debug, Clone)]
pub struct Throughput {
    pub pairs: usize,
    pub plugins: usize,
    pub updates: u64,
    pub seconds: f64,
    pub evaluations: u64,
    /// Tick-to-decision under this full load: mostly the wait behind the
    /// changes ahead of it, not the path itself (the paced runs measure that).
    pub tick_to_decision: crate::strategy::stats::LatencySummary,
}

impl Throughput {
    pub fn updates_per_second(&self) -> f64 {
        self.updates as f64 / self.seconds
    }
    pub fn evaluations_per_second(&self) -> f64 {
        self.evaluations as f64 / self.seconds
    }
}

pub fn measure(
    host: &PluginHost,
    plugins: &[(String, Arc<Vec<u8>>)],
    pairs: usize,
    updates: usize,
    batch_frames: usize,
) -> anyhow::Result<Throughput> {
    let market = wire::pairs(pairs);
    let snapshots = wire::snapshots(&market);
    let messages = wire::updates(&market, updates);
    let mut p = Pipeline::new(host, &market);
    p.load(plugins)?;
    for (venue, text) in &snapshots {
        p.feed.on_text(*venue, text);
    }
    p.strategy.drain();
    let (updates0, evaluations0) = (p.feed.book_updates(), p.strategy.evaluations());

    let started = Instant::now();
    // Full load is a socket that always has frames waiting: the feeds take
    // them in batches, as live (`feed_batch_frames`), and the plugins see
    // each batch's books once.
    for batch in messages.chunks(batch_frames.max(1)) {
        let _held = p.strategy.hold();
        for (venue, text) in batch {
            p.feed.on_text(*venue, text);
        }
    }
    p.strategy.drain();
    let seconds = started.elapsed().as_secs_f64();

    anyhow::ensure!(
        p.feed.problems() == 0,
        "the synthetic session had bad messages or gaps"
    );
    anyhow::ensure!(
        p.strategy.changes_evaluated() == p.feed.book_updates(),
        "{} book updates applied, {} covered by evaluations",
        p.feed.book_updates(),
        p.strategy.changes_evaluated()
    );
    let result = Throughput {
        pairs,
        plugins: plugins.len(),
        updates: p.feed.book_updates() - updates0,
        seconds,
        evaluations: p.strategy.evaluations() - evaluations0,
        tick_to_decision: p.strategy.tick_to_decision(),
    };
    p.strategy.shutdown();
    Ok(result)
}

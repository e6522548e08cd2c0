//! `doubletime replay FILE`: a recorded session (`--record`) fed through the
//! same parse → book → plugins path as live, with no network and no orders,
//! and a report of what each plugin would have found. This is how a plugin
//! author backtests a rule before hot-loading it.
//!
//! Each message is evaluated on its own (once per pair it changed) before the
//! next is fed, so two replays of one file report the same counts and edges;
//! only latencies differ. The message's receive time is the moment it is fed,
//! so tick-to-decision measures this host, not the recorded one.

mod report;
pub(crate) mod venues;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::app::DEFAULT_POLYMARKET_MIN_SIZE;
use crate::books::BookStore;
use crate::bus::Bus;
use crate::config::Config;
use crate::domain::{PairId, Size, Usd, Venue};
use crate::strategy::{FaultPolicy, PluginHost, RuntimeLimits, StrategyRuntime, now_micros};
use crate::venues::feed::{BookWriter, FeedStats, Recorded};

pub use report::{FeedResult, PairResult, PluginResult, ReplayReport};
use venues::{KalshiReplay, PolymarketReplay};

/// How fast to replay: as fast as the host goes, or N× the recorded pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Max,
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Times(x)),
            _ => Err(format!(
                "'{s}': a positive number (1 = recorded pace) or 'max'"
            )),
        }
    }
}

pub struct ReplayOptions {
    pub file: PathBuf,
    pub plugins_dir: PathBuf,
    pub speed: Speed,
}

/// Replays `opts.file` against the configured pairs and the plugins in
/// `opts.plugins_dir`. Blocking; no tokio runtime needed.
pub fn replay(config: &Config, opts: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let file = std::fs::File::open(&opts.file)
        .with_context(|| format!("opening the recording {}", opts.file.display()))?;
    let books = Arc::new(BookStore::new());
    for (pair, fees) in config.pair_setups() {
        books.add(pair, fees, Size::whole(DEFAULT_POLYMARKET_MIN_SIZE));
    }
    let pairs = config.pairs();
    let bus = Arc::new(Bus::default());
    let opportunities = bus.opportunities.subscribe();
    let host = PluginHost::new(RuntimeLimits {
        cache_dir: Some(config.plugin_cache_dir.clone()),
        ..RuntimeLimits::default()
    })
    .map_err(|e| anyhow::anyhow!("starting the wasm engine: {e:#}"))?;
    let strategy = StrategyRuntime::start(host, books.clone(), bus.clone(), FaultPolicy::default());
    strategy.set_initial_params(config.plugin_params());
    load_plugins(&strategy, &opts.plugins_dir)?;

    // The feeds write to a staging bus; after each message its changes (one
    // per pair, merged) go to the strategy at once. Otherwise the strategy
    // thread could evaluate part-way through a message, and how often it did
    // would depend on thread timing.
    let staging = Arc::new(Bus::default());
    let staged = staging.books.subscribe();
    let writer = |venue| {
        BookWriter::new(
            venue,
            books.clone(),
            staging.clone(),
            Arc::new(FeedStats::default()),
        )
    };
    let mut kalshi = KalshiReplay::new(writer(Venue::Kalshi), &pairs);
    let mut polymarket = PolymarketReplay::new(writer(Venue::Polymarket), books.clone(), &pairs);

    let mut by_pair: std::collections::BTreeMap<PairId, (u64, Option<Usd>)> =
        pairs.iter().map(|p| (p.id.clone(), (0, None))).collect();
    let (mut lines, mut bad_lines) = (0u64, 0u64);
    let (mut first_t, mut last_t) = (None::<u64>, 0u64);
    let started = Instant::now();
    for line in std::io::BufReader::new(file).lines() {
        lines += 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                bad_line(&mut bad_lines, lines, &e.to_string());
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let rec: Recorded = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                bad_line(&mut bad_lines, lines, &e.to_string());
                continue;
            }
        };
        let t0 = *first_t.get_or_insert(rec.t);
        last_t = last_t.max(rec.t);
        if let Speed::Times(x) = opts.speed {
            let due = Duration::from_secs_f64(rec.t.saturating_sub(t0) as f64 / 1e6 / x);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let received = now_micros();
        match rec.venue {
            Venue::Kalshi => kalshi.on_text(&rec.msg, received),
            Venue::Polymarket => polymarket.on_text(&rec.msg, received),
        }
        while let Some((pair, changed)) = staged.try_recv() {
            bus.books.publish(pair, changed);
        }
        strategy.drain();
        while let Some((pair, found)) = opportunities.try_recv() {
            let entry = by_pair.entry(pair).or_default();
            entry.0 += 1;
            let edge = found.opportunity.net_edge;
            if entry.1.is_none_or(|b| edge > b) {
                entry.1 = Some(edge);
            }
        }
    }

    let plugins = strategy
        .reports()
        .into_iter()
        .map(|r| {
            let edges = strategy.edges(&r.name).unwrap_or_default();
            PluginResult {
                evaluations: r.calls,
                opportunities: r.opportunities,
                distinct: edges.distinct,
                total_net_edge: edges.total_net_edge,
                best_net_edge: edges.best_net_edge,
                faults: r.faults,
                latency: r.latency,
                version: r.plugin_version,
                name: r.name,
            }
        })
        .collect();
    let feed = |venue, stats: &FeedStats| FeedResult {
        venue,
        messages: stats.messages.load(Ordering::Relaxed),
        book_updates: stats.book_updates.load(Ordering::Relaxed),
        bad_messages: stats.bad_messages().into_iter().collect(),
        gaps: stats.resyncs.load(Ordering::Relaxed),
    };
    let report = ReplayReport {
        file: opts.file.display().to_string(),
        lines,
        bad_lines,
        recorded_ms: last_t.saturating_sub(first_t.unwrap_or(last_t)) / 1_000,
        evaluations: strategy.evaluations(),
        tick_to_decision: strategy.tick_to_decision(),
        plugins,
        pairs: by_pair
            .into_iter()
            .map(|(pair, (opportunities, best_net_edge))| PairResult {
                pair: pair.to_string(),
                opportunities,
                best_net_edge,
            })
            .collect(),
        feeds: vec![
            feed(Venue::Kalshi, &kalshi.writer.stats),
            feed(Venue::Polymarket, &polymarket.writer.stats),
        ],
    };
    strategy.shutdown();
    Ok(report)
}

/// Every plugin in the folder; one that does not load is named and skipped.
fn load_plugins(strategy: &StrategyRuntime, dir: &Path) -> anyhow::Result<()> {
    let mut loaded = 0;
    for (path, result) in strategy.load_dir(dir) {
        match result {
            Ok(r) => {
                loaded += 1;
                tracing::info!(plugin = %r.name, version = %r.plugin_version, cached = r.from_cache, "plugin ready");
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "plugin not loaded"),
        }
    }
    anyhow::ensure!(
        loaded > 0,
        "no plugin loaded from {} (build them with scripts/build-plugins)",
        dir.display()
    );
    Ok(())
}

/// A line that is not a recorded message (a truncated write, an edit): counted,
/// the first few logged, never fatal.
fn bad_line(count: &mut u64, line: u64, detail: &str) {
    *count += 1;
    if *count <= 3 {
        let detail: String = detail.chars().take(200).collect();
        tracing::warn!(
            line,
            detail,
            "recording line skipped: not a recorded message"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_is_max_or_a_positive_multiple() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("2".parse::<Speed>(), Ok(Speed::Times(2.0)));
        assert_eq!("0.5".parse::<Speed>(), Ok(Speed::Times(0.5)));
        for bad in ["0", "-1", "fast", "inf", "NaN"] {
            assert!(bad.parse::<Speed>().is_err(), "{bad}");
        }
    }
}

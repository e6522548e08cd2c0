//! `doubletime replay FILE`: a recorded session (`--record`) fed through the
//! same parse → book → plugins path as live, every plugin's opportunities
//! executed against the simulator, and a report per plugin of what it found
//! and what it traded. This is how a plugin author backtests a rule before
//! hot-loading it.
//!
//! Two things run side by side on each message:
//! - the analysis: every plugin together on the recorded books, as live
//!   (evaluations, opportunities, edges, latency; per pair the best of all);
//! - one backtest per plugin ([`backtest::Lane`]): the plugin alone, its
//!   opportunities through the real risk gate and executor, both legs sent
//!   over loopback to an in-process simulator of its own whose books are set
//!   to the recorded ones at every message, so orders fill (or are killed) at
//!   the recorded prices with the venues' FOK/IOC matching and fees. Each
//!   plugin has its own accounts and SQLite store, so its trades, fees and
//!   P&L are its own. Orders never go anywhere but that simulator, whatever
//!   the configuration's URLs or DRY_RUN say.
//!
//! Each message is evaluated on its own (once per pair it changed), and each
//! approved trade runs to its end, before the next message is fed, so two
//! replays of one file give the same counts, edges, trades, fills, fees and
//! P&L; only latencies and memory differ. The message's receive time is the
//! moment it is fed, so tick-to-decision measures this host, not the recorded
//! one. In the backtests a book's age is its age in the recording (so the
//! risk gate's book-age limit does not depend on how fast the replay runs),
//! but the cooldown after a failed leg runs on the replay's clock: at
//! `--speed max` it covers more of the recording than it would have live.
//!
//! The sample (`recordings/sample.jsonl`) was made with the simulator:
//!
//! ```sh
//! doubletime --config recordings/sample.toml --record recordings/sample.jsonl \
//!   demo --duration 6 --scenario recordings/sample-scenario.toml
//! ```
//!
//! `recordings/hour-scenario.toml` makes an hour of the same traffic in 180 s
//! (its header has the command); BENCHMARKS.md has the replay's memory over it.

mod backtest;
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

pub use report::{
    Backtest, FeedResult, FillLine, MemoryResult, PairResult, PluginResult, ReplayReport, TradeLine,
};
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
/// `opts.plugins_dir`. Blocking: it runs its own tokio runtime (the
/// simulators and the executors), so call it outside one.
pub fn replay(config: &Config, opts: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the replay's runtime")?;
    runtime.block_on(run(config, opts))
}

/// A plugin runtime on `books` and `bus` with the configured plugin parameters.
fn start_strategy(
    config: &Config,
    books: Arc<BookStore>,
    bus: Arc<Bus>,
) -> anyhow::Result<Arc<StrategyRuntime>> {
    let host = PluginHost::new(RuntimeLimits {
        cache_dir: Some(config.plugin_cache_dir.clone()),
        ..RuntimeLimits::default()
    })
    .map_err(|e| anyhow::anyhow!("starting the wasm engine: {e:#}"))?;
    let strategy = StrategyRuntime::start(host, books, bus, FaultPolicy::default());
    strategy.set_initial_params(config.plugin_params());
    Ok(strategy)
}

async fn run(config: &Config, opts: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let file = std::fs::File::open(&opts.file)
        .with_context(|| format!("opening the recording {}", opts.file.display()))?;
    let books = Arc::new(BookStore::new());
    for (pair, fees) in config.pair_setups() {
        books.add(pair, fees, Size::whole(DEFAULT_POLYMARKET_MIN_SIZE));
    }
    let pairs = config.pairs();
    let bus = Arc::new(Bus::default());
    let opportunities = bus.opportunities.subscribe();
    let strategy = start_strategy(config, books.clone(), bus.clone())?;
    let loaded = load_plugins(&strategy, &opts.plugins_dir)?;
    let keys = backtest::Keys::new()?;
    let mut lanes = Vec::new();
    for file in &loaded {
        lanes.push(backtest::Lane::start(config, file, &keys).await?);
    }

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
    let mut memory = MemoryResult::default();
    memory.sample(false);
    let (mut lines, mut bad_lines) = (0u64, 0u64);
    let (mut first_t, mut last_t) = (None::<u64>, 0u64);
    let mut changed = Vec::new();
    let started = Instant::now();
    for line in std::io::BufReader::new(file).lines() {
        lines += 1;
        memory.line(lines);
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
                tokio::time::sleep(wait).await;
            }
        }
        let received = now_micros();
        match rec.venue {
            Venue::Kalshi => kalshi.on_text(&rec.msg, received),
            Venue::Polymarket => polymarket.on_text(&rec.msg, received),
        }
        changed.clear();
        while let Some(c) = staged.try_recv() {
            changed.push(c);
        }
        for (pair, c) in &changed {
            bus.books.publish(pair.clone(), *c);
            for lane in &mut lanes {
                lane.on_changed(&books, pair, *c, rec.t);
            }
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
        for lane in &mut lanes {
            lane.trade(&books, rec.t).await?;
        }
    }
    memory.sample(false);

    let mut backtests = std::collections::HashMap::new();
    for lane in &lanes {
        backtests.insert(lane.plugin.clone(), lane.result().await?);
        lane.shutdown();
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
                backtest: backtests.remove(&r.name),
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
        memory,
    };
    strategy.shutdown();
    Ok(report)
}

/// Every plugin in the folder; one that does not load is named and skipped.
/// Returns the files of those that loaded.
fn load_plugins(strategy: &StrategyRuntime, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut loaded = Vec::new();
    for (path, result) in strategy.load_dir(dir) {
        match result {
            Ok(r) => {
                tracing::info!(plugin = %r.name, version = %r.plugin_version, cached = r.from_cache, "plugin ready");
                loaded.push(path);
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "plugin not loaded"),
        }
    }
    anyhow::ensure!(
        !loaded.is_empty(),
        "no plugin loaded from {} (build them with scripts/build-plugins)",
        dir.display()
    );
    Ok(loaded)
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

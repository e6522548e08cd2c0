//! `doubletime bench`: the end-to-end latency and throughput harness.
//!
//! Everything runs in this process on loopback. Issue #8's matrix, 1, 100
//! and 1,000 market pairs with one plugin (`buy-both`) and three, is run by
//! three phases: tick-to-decision and tick-to-order with the whole host
//! against the simulator ([`loopback`], with the executor's stages),
//! tick-to-decision of the host's own path fed at a steady 20,000 messages/s
//! without the simulator ([`paced`], plus a quiet 1,000 messages/s at 100
//! pairs and the machine's hand-off floor at each rate), and sustained book
//! updates per second through parse → book → plugins ([`throughput`]). Then
//! hot-reload swap time with a check that no update was lost or evaluated
//! twice ([`reload`]), and the peak resident memory of each run. It prints
//! markdown tables for BENCHMARKS.md, one row per cell. Build it in release.

mod loopback;
mod paced;
mod pipeline;
mod reload;
mod throughput;
mod wake;
mod wire;

pub use loopback::HostSettings;

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::strategy::stats::LatencySummary;
use crate::strategy::{PluginHost, RuntimeLimits};

pub struct BenchOptions {
    /// Where `buy-both.wasm` and `walk-books.wasm` are (`scripts/build-plugins`).
    pub plugins_dir: PathBuf,
    /// Seconds of windows in each loopback cell.
    pub seconds: u64,
    /// Book updates per throughput run.
    pub updates: usize,
    pub swaps: usize,
    /// The evaluation thread's poll before parking, for the in-process runs.
    pub spin: std::time::Duration,
    /// Where plugins run and how feeds batch, for every phase.
    pub settings: loopback::HostSettings,
    /// The phases to run; all of them when empty.
    pub only: Vec<Phase>,
    /// Where the loopback phase puts the host and the simulator; both
    /// layouts when empty (split only where there are two cores).
    pub layouts: Vec<LayoutKind>,
}

/// The loopback phase's core layouts (see [`loopback::Layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutKind {
    /// The host on one core, the simulator on the others.
    Split,
    /// Host and simulator on every core together.
    Shared,
}

/// One part of the bench, to run alone (e.g. under `perf record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Loopback,
    Paced,
    Throughput,
    Reload,
}

/// Market pairs of every matrix phase (loopback, paced, throughput).
const PAIRS: [usize; 3] = [1, 100, 1_000];

/// The plugin sets of every matrix phase, as (name, file). The third of
/// three is `buy-both` again under another name: a second independent instance.
const PLUGIN_SETS: [&[(&str, &str)]; 2] = [
    &[("buy-both", "buy-both.wasm")],
    &[
        ("buy-both", "buy-both.wasm"),
        ("walk-books", "walk-books.wasm"),
        ("buy-both-copy", "buy-both.wasm"),
    ],
];

/// Plugins by name, with their component bytes.
type Plugins = Vec<(String, Arc<Vec<u8>>)>;

/// The paced rates, as (messages a second, messages per cell): a busy market
/// (a change every 50 µs) over the whole matrix, 3 s a cell, and a quiet one
/// (every 1 ms) at 100 pairs with `buy-both` alone.
const BUSY: (u64, usize) = (20_000, 60_000);
const QUIET: (u64, usize) = (1_000, 5_000);

pub struct BenchReport {
    loopback: Vec<(loopback::Loopback, Option<u64>)>,
    /// One hop's cost when the side woken is idle, measured before the loopback cells.
    wake: Option<wake::WakeFloor>,
    paced: Vec<paced::Paced>,
    /// The empty hand-off floor, once per paced rate: (messages a second, floor).
    floors: Vec<(u64, LatencySummary)>,
    spin: std::time::Duration,
    settings: loopback::HostSettings,
    throughput: Vec<(throughput::Throughput, Option<u64>)>,
    reload: Option<(reload::Reload, Option<u64>)>,
}

/// A scratch folder removed on drop (the bench's config, store and plugin folders).
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(what: &str) -> std::io::Result<Scratch> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "doubletime-bench-{}-{what}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Peak resident set (VmHWM) in KiB since the last [`reset_peak_rss`]; Linux only.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set now (VmRSS) in KiB; Linux only.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writing 5 to clear_refs resets VmHWM (Linux ≥ 4.0), so each phase gets its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn plugin(dir: &std::path::Path, file: &str) -> anyhow::Result<Arc<Vec<u8>>> {
    let path = dir.join(file);
    Ok(Arc::new(std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (build it with scripts/build-plugins)",
            path.display()
        )
    })?))
}

fn plugin_set(dir: &std::path::Path, set: &[(&str, &str)]) -> anyhow::Result<Plugins> {
    set.iter()
        .map(|&(name, file)| Ok((name.to_string(), plugin(dir, file)?)))
        .collect()
}

pub async fn run(config: &Config, opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let sets = PLUGIN_SETS
        .iter()
        .map(|set| plugin_set(&opts.plugins_dir, set))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let buy_both = plugin(&opts.plugins_dir, "buy-both.wasm")?;
    let walk_books = plugin(&opts.plugins_dir, "walk-books.wasm")?;
    let cache = config.plugin_cache_dir.clone();

    let wanted = |phase| opts.only.is_empty() || opts.only.contains(&phase);

    let mut loopback = Vec::new();
    let mut wake = None;
    if wanted(Phase::Loopback) {
        tracing::info!("bench: one hop's cost to an idle thread");
        wake = Some(
            tokio::task::spawn_blocking(|| wake::measure(300, std::time::Duration::from_millis(5)))
                .await??,
        );
        let kinds = if opts.layouts.is_empty() {
            vec![LayoutKind::Split, LayoutKind::Shared]
        } else {
            opts.layouts.clone()
        };
        let mut layouts = Vec::new();
        for kind in kinds {
            match kind {
                LayoutKind::Shared => layouts.push(loopback::Layout::Shared),
                LayoutKind::Split => match loopback::Layout::split() {
                    Some(split) => layouts.push(split),
                    None => tracing::warn!("bench: one core only, no split layout"),
                },
            }
        }
        for layout in &layouts {
            for pairs in PAIRS {
                for plugins in &sets {
                    tracing::info!(
                        pairs,
                        plugins = plugins.len(),
                        %layout,
                        "bench: the host against the simulator on loopback"
                    );
                    reset_peak_rss();
                    let l = loopback::measure(
                        plugins,
                        &cache,
                        pairs,
                        opts.seconds,
                        layout,
                        opts.settings,
                    )
                    .await?;
                    loopback.push((l, peak_rss_kib()));
                }
            }
        }
    }

    let host = PluginHost::new(RuntimeLimits {
        cache_dir: Some(cache),
        spin: opts.spin,
        inline: !opts.settings.strategy_thread,
        ..RuntimeLimits::default()
    })
    .map_err(|e| anyhow::anyhow!("starting the wasm engine: {e:#}"))?;
    let (updates, swaps, batch_frames) = (opts.updates, opts.swaps, opts.settings.batch_frames);
    let (run_paced, run_throughput, run_reload) = (
        wanted(Phase::Paced),
        wanted(Phase::Throughput),
        wanted(Phase::Reload),
    );
    let (paced, floors, throughput, reload) = tokio::task::spawn_blocking(move || {
        let mut paced = Vec::new();
        let mut floors = Vec::new();
        if run_paced {
            let (per_second, messages) = BUSY;
            for pairs in PAIRS {
                for plugins in &sets {
                    tracing::info!(
                        pairs,
                        plugins = plugins.len(),
                        per_second,
                        "bench: paced tick-to-decision"
                    );
                    paced.push(paced::measure(&host, plugins, pairs, per_second, messages)?);
                }
            }
            let (quiet, quiet_messages) = QUIET;
            tracing::info!(per_second = quiet, "bench: paced tick-to-decision");
            paced.push(paced::measure(&host, &sets[0], 100, quiet, quiet_messages)?);
            // The machine's floor does not depend on pairs or plugins: once per rate.
            for (per_second, messages) in [BUSY, QUIET] {
                floors.push((per_second, paced::handoff_floor(per_second, messages)));
            }
        }
        let mut runs = Vec::new();
        if run_throughput {
            for pairs in PAIRS {
                for plugins in &sets {
                    tracing::info!(pairs, plugins = plugins.len(), "bench: throughput");
                    reset_peak_rss();
                    let t = throughput::measure(&host, plugins, pairs, updates, batch_frames)?;
                    runs.push((t, peak_rss_kib()));
                }
            }
        }
        let mut reload = None;
        if run_reload {
            tracing::info!(swaps, "bench: hot reload under load");
            reset_peak_rss();
            let r = reload::measure(
                &host,
                ("buy-both".to_string(), buy_both.clone()),
                [buy_both, walk_books],
                swaps,
            )?;
            reload = Some((r, peak_rss_kib()));
        }
        anyhow::Ok((paced, floors, runs, reload))
    })
    .await??;
    Ok(BenchReport {
        loopback,
        wake,
        paced,
        floors,
        spin: opts.spin,
        settings: opts.settings,
        throughput,
        reload,
    })
}

fn us(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.0} ms", ns as f64 / 1e6)
    } else if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

fn quantiles(l: &LatencySummary) -> String {
    format!("{} | {} | {}", us(l.p50_ns), us(l.p99_ns), us(l.p999_ns))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "—".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

fn count(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Starts a table (after a blank line if one came before).
fn table(s: &mut String, columns: &[&str]) {
    if !s.is_empty() {
        s.push('\n');
    }
    let _ = writeln!(s, "| {} |", columns.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(columns.len()));
}

fn p50_p99(l: &LatencySummary) -> String {
    format!("{} / {}", us(l.p50_ns), us(l.p99_ns))
}

/// Every stage any cell names, in order of first appearance: the executor
/// may add stages, and every cell's row gets a column for each.
fn stage_names(cells: &[Vec<(&'static str, LatencySummary)>]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for (name, _) in cells.iter().flatten() {
        if !names.contains(name) {
            names.push(*name);
        }
    }
    names
}

impl BenchReport {
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(if self.settings.strategy_thread {
            "Plugins evaluated on a strategy thread of their own (`--strategy-thread`)"
        } else {
            "Plugins evaluated inline, on the thread that published the book change (the feed's)"
        });
        s.push_str(&format!(
            "; feeds apply at most {} waiting frames before the plugins look.\n",
            self.settings.batch_frames
        ));
        if let Some((first, _)) = self.loopback.first() {
            table(
                &mut s,
                &[
                    "cores",
                    &format!(
                        "pairs on loopback ({} s of windows, at most {} moving)",
                        first.seconds,
                        loopback::MOVING
                    ),
                    "plugins",
                    "start-up (all books in and evaluated)",
                    "book updates",
                    "trades (windows; Kalshi orders signed inline, no presigned signature ready)",
                    "tick-to-decision: book message received → plugins decided, p50 / p99 / p99.9 (target p99 < 20 µs)",
                    "the host's own clock: the trade's book message received → both order sends polled once (each writes its request on an open order-line connection), p50 / p99 / p99.9",
                    "tick-to-order: the trade's book message received → both order requests written to their sockets (kernel receive stamps), p50 / p99 / p99.9 (target p99 < 1 ms)",
                    "the same, to both requests parsed by the simulator's server, p50 / p99 / p99.9",
                    "peak RSS",
                ],
            );
        }
        for (l, rss) in &self.loopback {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} s | {} | {} ({}; {}) | {} | {} | {} | {} | {} |",
                l.layout,
                count(l.pairs as f64),
                l.plugins,
                l.start_up.as_secs_f64(),
                count(l.book_updates as f64),
                l.traded,
                l.windows,
                l.signed_inline,
                quantiles(&l.tick_to_decision).replace(" | ", " / "),
                quantiles(&l.tick_to_hand_over).replace(" | ", " / "),
                quantiles(&l.tick_to_order).replace(" | ", " / "),
                quantiles(&l.tick_to_venue).replace(" | ", " / "),
                mib(*rss)
            );
        }
        let stages: Vec<_> = self
            .loopback
            .iter()
            .map(|(l, _)| l.order_path.clone())
            .collect();
        let names = stage_names(&stages);
        if !names.is_empty() {
            let headers: Vec<String> = names.iter().map(|n| format!("{n}, p50 / p99")).collect();
            let mut columns = vec!["cores", "tick-to-order's stages: pairs", "plugins"];
            columns.extend(headers.iter().map(String::as_str));
            table(&mut s, &columns);
        }
        for (l, _) in self.loopback.iter().filter(|_| !names.is_empty()) {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    l.order_path
                        .iter()
                        .find(|(stage, _)| stage == n)
                        .map_or_else(|| "—".into(), |(_, q)| p50_p99(q))
                })
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                l.layout,
                count(l.pairs as f64),
                l.plugins,
                cells.join(" | ")
            );
        }
        if let Some(w) = &self.wake {
            table(
                &mut s,
                &[
                    &format!(
                        "one hop to an idle thread (the floor under each of tick-to-order's hops), one every {} ms",
                        w.gap.as_millis()
                    ),
                    "samples",
                    "p50",
                    "p99",
                    "p99.9",
                ],
            );
            let short = format!(
                "the same with the reads {} µs apart (about a busy loopback cell's frames)",
                wake::SHORT_GAP.as_micros()
            );
            for (what, q) in [
                ("a parked thread unparked", &w.unpark),
                ("a task spawned onto an idle tokio runtime", &w.spawn),
                (
                    "8 bytes over loopback TCP to a task of an idle runtime",
                    &w.tcp,
                ),
                (
                    "that task's next work: one Kalshi `orderbook_delta` parsed right after the read (the same code as below)",
                    &w.work_after_wake,
                ),
                (short.as_str(), &w.work_after_short_wake),
                ("the same parse on a busy thread, back to back", &w.work_hot),
            ] {
                let _ = writeln!(s, "| {what} | {} | {} |", q.count, quantiles(q));
            }
        }
        if !self.paced.is_empty() {
            table(
                &mut s,
                &[
                    &format!(
                        "pairs in process, paced (no simulator, spin {} µs)",
                        self.spin.as_micros()
                    ),
                    "plugins",
                    "messages/s",
                    "samples",
                    "tick-to-decision: parse → book → bus → plugins decided, p50 / p99 / p99.9 (target p99 < 20 µs)",
                    "of which the feeding thread (parse, book update, publish), p50 / p99",
                    "`evaluate` alone per plugin, p50 / p99",
                ],
            );
        }
        for p in &self.paced {
            let evaluate: Vec<String> = p
                .evaluate
                .iter()
                .map(|(name, q)| format!("{name} {}", p50_p99(q)))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                count(p.pairs as f64),
                p.plugins,
                count(p.per_second as f64),
                p.tick_to_decision.count,
                quantiles(&p.tick_to_decision).replace(" | ", " / "),
                p50_p99(&p.feed),
                evaluate.join("; ")
            );
        }
        if !self.floors.is_empty() {
            table(
                &mut s,
                &[
                    "the floor on this machine: an empty hand-off between two spinning threads, nothing else",
                    "samples",
                    "p50",
                    "p99",
                    "p99.9",
                ],
            );
        }
        for (per_second, floor) in &self.floors {
            let _ = writeln!(
                s,
                "| at {} messages/s | {} | {} |",
                count(*per_second as f64),
                floor.count,
                quantiles(floor)
            );
        }
        if !self.throughput.is_empty() {
            table(
                &mut s,
                &[
                    "pairs at full load",
                    "plugins",
                    &format!("book updates/s (spin {} µs)", self.spin.as_micros()),
                    "evaluations/s",
                    "updates",
                    "tick-to-decision at full load p50 / p99 / p99.9",
                    "peak RSS",
                ],
            );
        }
        for (t, rss) in &self.throughput {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                count(t.pairs as f64),
                t.plugins,
                count(t.updates_per_second()),
                count(t.evaluations_per_second()),
                count(t.updates as f64),
                quantiles(&t.tick_to_decision).replace(" | ", " / "),
                mib(*rss)
            );
        }
        if let Some((r, rss)) = &self.reload {
            let mut ms = r.swap_ms.clone();
            ms.sort_by(f64::total_cmp);
            let median = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
            let max = ms.last().copied().unwrap_or(0.0);
            table(
                &mut s,
                &["hot reload under load (100 pairs)", "value", "target"],
            );
            let _ = writeln!(
                s,
                "| swaps (file renamed → new version evaluating) | {} | |",
                r.swaps
            );
            let _ = writeln!(
                s,
                "| swap time median / max (includes the 50 ms debounce) | {median:.1} / {max:.1} ms | < 100 ms |"
            );
            let _ = writeln!(
                s,
                "| evaluations during the swaps (updates) | {} ({}) | |",
                count(r.evaluations as f64),
                count(r.updates as f64)
            );
            let _ = writeln!(
                s,
                "| evaluations missed / made twice by the swapped plugin | {} / {} | 0 / 0 |",
                r.missed, r.doubled
            );
            let _ = writeln!(
                s,
                "| resident memory after swap {} → after swap {} | {} → {} | flat |",
                r.warm_after,
                r.swaps,
                mib(r.rss_warm),
                mib(r.rss_end)
            );
            let _ = writeln!(s, "| peak RSS (VmHWM) of the run | {} | |", mib(*rss));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(p50_ns: u64) -> LatencySummary {
        LatencySummary {
            count: 1,
            p50_ns,
            p99_ns: p50_ns,
            p999_ns: p50_ns,
        }
    }

    #[test]
    fn every_stage_any_cell_names_gets_a_column_in_first_seen_order() {
        let cells = vec![
            vec![("risk", q(1)), ("intent", q(2))],
            vec![("risk", q(3)), ("signing", q(4)), ("intent", q(5))],
            vec![],
        ];
        assert_eq!(stage_names(&cells), ["risk", "intent", "signing"]);
    }

    #[test]
    fn the_stage_table_has_a_row_per_cell_and_a_dash_for_a_stage_a_cell_lacks() {
        let cell = |pairs, stages: Vec<(&'static str, LatencySummary)>| {
            let none = LatencySummary {
                count: 0,
                p50_ns: 0,
                p99_ns: 0,
                p999_ns: 0,
            };
            (
                loopback::Loopback {
                    layout: loopback::Layout::Shared,
                    pairs,
                    plugins: 1,
                    seconds: 1,
                    start_up: std::time::Duration::ZERO,
                    tick_to_decision: none,
                    tick_to_hand_over: none,
                    tick_to_order: none,
                    tick_to_venue: none,
                    windows: 0,
                    traded: 0,
                    book_updates: 0,
                    signed_inline: 0,
                    order_path: stages,
                },
                None,
            )
        };
        let report = BenchReport {
            loopback: vec![
                cell(1, vec![("risk", q(1_000))]),
                cell(1_000, vec![("risk", q(2_000)), ("intent", q(3_000_000))]),
            ],
            wake: None,
            paced: Vec::new(),
            floors: Vec::new(),
            spin: std::time::Duration::ZERO,
            settings: loopback::HostSettings::default(),
            throughput: Vec::new(),
            reload: None,
        };
        let md = report.to_markdown();
        assert!(
            md.contains("| plugins | risk, p50 / p99 | intent, p50 / p99 |"),
            "{md}"
        );
        assert!(
            md.contains("| shared | 1 | 1 | 1.0 µs / 1.0 µs | — |"),
            "{md}"
        );
        assert!(
            md.contains("| shared | 1,000 | 1 | 2.0 µs / 2.0 µs | 3.00 ms / 3.00 ms |"),
            "{md}"
        );
        // Every row of each table has as many cells as its header.
        for block in md.split("\n\n") {
            let widths: Vec<usize> = block.lines().map(|l| l.matches('|').count()).collect();
            assert!(widths.windows(2).all(|w| w[0] == w[1]), "{block}");
        }
    }
}

//! `doubletime bench`: the end-to-end latency and throughput harness.
//!
//! Everything runs in this process on loopback: tick-to-decision and
//! tick-to-order with the whole host against the simulator ([`loopback`]),
//! sustained book updates per second through parse → book → plugins for
//! 1, 100 and 1,000 pairs with 1 and 3 plugins ([`throughput`]), hot-reload
//! swap time with a check that no update was lost or evaluated twice
//! ([`reload`]), and the peak resident memory of each phase. It prints one
//! markdown table for BENCHMARKS.md. Build it in release.

mod loopback;
mod paced;
mod pipeline;
mod reload;
mod throughput;
mod wire;

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
    /// Seconds of windows in the loopback run.
    pub seconds: u64,
    /// Book updates per throughput run.
    pub updates: usize,
    pub swaps: usize,
    /// The evaluation thread's poll before parking, for the in-process runs.
    pub spin: std::time::Duration,
    /// The phases to run; all of them when empty.
    pub only: Vec<Phase>,
}

/// One part of the bench, to run alone (e.g. under `perf record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Loopback,
    Paced,
    Throughput,
    Reload,
}

pub struct BenchReport {
    loopback: Option<(loopback::Loopback, Option<u64>)>,
    paced: Vec<paced::Paced>,
    spin: std::time::Duration,
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

pub async fn run(config: &Config, opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let buy_both = plugin(&opts.plugins_dir, "buy-both.wasm")?;
    let walk_books = plugin(&opts.plugins_dir, "walk-books.wasm")?;
    let cache = config.plugin_cache_dir.clone();

    let wanted = |phase| opts.only.is_empty() || opts.only.contains(&phase);

    let mut loopback = None;
    if wanted(Phase::Loopback) {
        reset_peak_rss();
        let only_rust = Scratch::new("plugins")?;
        std::fs::write(only_rust.path().join("buy-both.wasm"), &*buy_both)?;
        tracing::info!("bench: the host against the simulator on loopback");
        let l = loopback::measure(only_rust.path(), &cache, 10, opts.seconds).await?;
        loopback = Some((l, peak_rss_kib()));
    }

    let host = PluginHost::new(RuntimeLimits {
        cache_dir: Some(cache),
        spin: opts.spin,
        ..RuntimeLimits::default()
    })
    .map_err(|e| anyhow::anyhow!("starting the wasm engine: {e:#}"))?;
    let one = vec![("buy-both".to_string(), buy_both.clone())];
    let three = vec![
        ("buy-both".to_string(), buy_both.clone()),
        ("walk-books".to_string(), walk_books.clone()),
        // The third is the first under another name: a second independent instance.
        ("buy-both-copy".to_string(), buy_both.clone()),
    ];
    let (updates, swaps) = (opts.updates, opts.swaps);
    let (run_paced, run_throughput, run_reload) = (
        wanted(Phase::Paced),
        wanted(Phase::Throughput),
        wanted(Phase::Reload),
    );
    let (paced, throughput, reload) = tokio::task::spawn_blocking(move || {
        let mut paced = Vec::new();
        // A busy market (a change every 50 µs) and a quiet one (every 1 ms).
        let rates: &[(u64, usize)] = if run_paced {
            &[(20_000, 100_000), (1_000, 5_000)]
        } else {
            &[]
        };
        for &(per_second, messages) in rates {
            tracing::info!(per_second, "bench: paced tick-to-decision");
            paced.push(paced::measure(
                &host,
                one[0].clone(),
                100,
                per_second,
                messages,
            )?);
        }
        let mut runs = Vec::new();
        let sizes: &[usize] = if run_throughput {
            &[1, 100, 1_000]
        } else {
            &[]
        };
        for &pairs in sizes {
            for plugins in [&one, &three] {
                tracing::info!(pairs, plugins = plugins.len(), "bench: throughput");
                reset_peak_rss();
                let t = throughput::measure(&host, plugins, pairs, updates)?;
                runs.push((t, peak_rss_kib()));
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
        anyhow::Ok((paced, runs, reload))
    })
    .await??;
    Ok(BenchReport {
        loopback,
        paced,
        spin: opts.spin,
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

impl BenchReport {
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let latency_header = |s: &mut String, what: &str| {
            let _ = writeln!(s, "| {what} | samples | p50 | p99 | p99.9 | target |");
            s.push_str("|---|---|---|---|---|---|\n");
        };
        if let Some((l, _)) = &self.loopback {
            latency_header(
                &mut s,
                &format!(
                    "latency ({} pairs on loopback, `buy-both`, {} s, {} book updates)",
                    l.pairs,
                    l.seconds,
                    count(l.book_updates as f64)
                ),
            );
            let _ = writeln!(
                s,
                "| tick-to-decision: book message received → plugin decided | {} | {} | p99 < 20 µs |",
                l.tick_to_decision.count,
                quantiles(&l.tick_to_decision)
            );
            let _ = writeln!(
                s,
                "| tick-to-order: the approved decision's book message received → both orders at the venues ({} trades in {} windows) | {} | {} | p99 < 1 ms |",
                l.traded,
                l.windows,
                l.tick_to_order.count,
                quantiles(&l.tick_to_order)
            );
            for (stage, q) in &l.order_path {
                let _ = writeln!(
                    s,
                    "| … of which {stage} | {} | {} | |",
                    q.count,
                    quantiles(q)
                );
            }
        } else if !self.paced.is_empty() {
            latency_header(&mut s, "latency");
        }
        for p in &self.paced {
            let _ = writeln!(
                s,
                "| tick-to-decision in process: {} pairs, one message every {} µs, no simulator, spin {} µs (`evaluate` alone: p50 {}, p99 {}) | {} | {} | p99 < 20 µs |",
                p.pairs,
                1_000_000 / p.per_second.max(1),
                self.spin.as_micros(),
                us(p.evaluate.p50_ns),
                us(p.evaluate.p99_ns),
                p.tick_to_decision.count,
                quantiles(&p.tick_to_decision)
            );
            let _ = writeln!(
                s,
                "| … of which the feeding thread: parse, book update, publish | {} | {} | |",
                p.feed.count,
                quantiles(&p.feed)
            );
            let _ = writeln!(
                s,
                "| … the floor on this machine: an empty hand-off between two spinning threads at the same rate | {} | {} | |",
                p.handoff.count,
                quantiles(&p.handoff)
            );
        }
        if !self.throughput.is_empty() {
            let _ = writeln!(
                s,
                "\n| pairs | plugins | book updates/s (spin {} µs) | evaluations/s | updates | tick-to-decision at full load p50 / p99 / p99.9 | peak RSS |",
                self.spin.as_micros()
            );
            s.push_str("|---|---|---|---|---|---|---|\n");
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
        if let Some((r, _)) = &self.reload {
            let mut ms = r.swap_ms.clone();
            ms.sort_by(f64::total_cmp);
            let median = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
            let max = ms.last().copied().unwrap_or(0.0);
            s.push_str("\n| hot reload under load (100 pairs) | value | target |\n|---|---|---|\n");
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
        }
        if self.loopback.is_some() || self.reload.is_some() {
            s.push_str("\n| peak RSS (VmHWM) | value |\n|---|---|\n");
        }
        if let Some((_, rss)) = &self.loopback {
            let _ = writeln!(
                s,
                "| whole host on loopback (feeds, plugin, risk, store, executor, simulator) | {} |",
                mib(*rss)
            );
        }
        if let Some((_, rss)) = &self.reload {
            let _ = writeln!(s, "| hot reload run | {} |", mib(*rss));
        }
        s
    }
}

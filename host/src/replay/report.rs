//! What a replay found: per plugin, per pair and per feed, printed as
//! markdown tables or JSON. Money is exact (the host's fee models on
//! `rust_decimal`); only the latency quantiles are measurements.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::domain::{Action, Outcome, Price, Size, Usd, Venue};
use crate::strategy::stats::LatencySummary;

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub file: String,
    /// Lines of the recording, and those that were not a recorded message.
    pub lines: u64,
    pub bad_lines: u64,
    /// First to last receive time in the recording.
    pub recorded_ms: u64,
    /// Book changes evaluated (each by every plugin).
    pub evaluations: u64,
    /// Message fed → every plugin decided, during the replay.
    pub tick_to_decision: LatencySummary,
    pub plugins: Vec<PluginResult>,
    pub pairs: Vec<PairResult>,
    pub feeds: Vec<FeedResult>,
    /// Resident memory along the replay.
    pub memory: MemoryResult,
}

/// Resident set size (VmRSS, KiB): once the plugins are loaded
/// (`first_kib`), every `every_lines` lines (`series_kib`, at most 128
/// samples: when full, every other one is dropped and the interval doubles),
/// and at the end (`last_kib`). Empty off Linux.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub every_lines: u64,
    pub series_kib: Vec<u64>,
    pub first_kib: Option<u64>,
    pub last_kib: Option<u64>,
    pub peak_kib: Option<u64>,
}

impl Default for MemoryResult {
    fn default() -> Self {
        MemoryResult {
            every_lines: 1_000,
            series_kib: Vec::new(),
            first_kib: None,
            last_kib: None,
            peak_kib: None,
        }
    }
}

impl MemoryResult {
    const SERIES_MAX: usize = 128;

    /// Called after each line; samples when the line count is due.
    pub fn line(&mut self, lines: u64) {
        if lines.is_multiple_of(self.every_lines) {
            self.sample(true);
        }
    }

    pub fn sample(&mut self, in_series: bool) {
        let Some(kib) = rss_kib() else { return };
        self.first_kib.get_or_insert(kib);
        self.last_kib = Some(kib);
        self.peak_kib = Some(self.peak_kib.map_or(kib, |p| p.max(kib)));
        if in_series {
            self.series_kib.push(kib);
            if self.series_kib.len() >= Self::SERIES_MAX {
                // Keep the samples at multiples of the doubled interval.
                let kept = self.series_kib.iter().skip(1).step_by(2).copied().collect();
                self.series_kib = kept;
                self.every_lines *= 2;
            }
        }
    }
}

/// VmRSS now, KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginResult {
    pub name: String,
    pub version: String,
    pub evaluations: u64,
    /// Opportunities returned, counting one found again on the next change.
    pub opportunities: u64,
    /// Opportunities that differ from the pair's previous one.
    pub distinct: u64,
    /// Net edge after both fees, whole size, summed over the distinct ones.
    pub total_net_edge: Usd,
    pub best_net_edge: Option<Usd>,
    pub faults: u64,
    /// One `evaluate` call.
    pub latency: LatencySummary,
    /// The plugin alone, its opportunities executed against the simulator.
    pub backtest: Option<Backtest>,
}

/// What one plugin traded in its backtest. Money is exact: fills at the
/// simulator's prices, fees as the venues charge them.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    /// Opportunities the risk gate approved (each handed to the executor).
    pub approved: u64,
    /// Opportunities the risk gate refused, by reason.
    pub refused: BTreeMap<String, u64>,
    /// Trades by outcome: `hedged`, `unwound`, `not_filled`, `refused`.
    pub trades: BTreeMap<String, u64>,
    /// Fills booked per venue (a retried leg's fills each count).
    pub fills: BTreeMap<String, u64>,
    /// Fees paid per venue, and in all.
    pub fees: BTreeMap<String, Usd>,
    pub fees_total: Usd,
    /// Contracts held on both venues (each pays $1 at settlement).
    pub contracts_hedged: Size,
    /// Hedged trades: $1 per contract at settlement minus both legs and fees.
    pub locked_in_pnl: Usd,
    /// Unwound trades: what selling back the lone leg lost (or made), with
    /// whatever part of the trade stayed hedged.
    pub realised_pnl: Usd,
    /// Both together.
    pub pnl: Usd,
    /// The trades, oldest first (the first 1,000).
    pub trades_listed: Vec<TradeLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TradeLine {
    pub pair: String,
    pub outcome: String,
    /// Why nothing filled, or why the executor refused.
    pub reason: Option<String>,
    /// The opportunity as the plugin priced it.
    pub planned_size: Size,
    pub planned_yes_price: Price,
    pub planned_no_price: Price,
    pub yes: Option<FillLine>,
    pub no: Option<FillLine>,
    /// The sale of a lone leg.
    pub unwind: Option<FillLine>,
    pub pnl: Usd,
}

#[derive(Debug, Clone, Serialize)]
pub struct FillLine {
    pub venue: Venue,
    pub outcome: Outcome,
    pub action: Action,
    pub price: Price,
    pub size: Size,
    pub fee: Usd,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub pair: String,
    /// Book changes after which the best of all plugins was an opportunity.
    pub opportunities: u64,
    pub best_net_edge: Option<Usd>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedResult {
    pub venue: Venue,
    pub messages: u64,
    pub book_updates: u64,
    /// Messages that did not parse or were not understood, by kind.
    pub bad_messages: BTreeMap<String, u64>,
    /// Kalshi `seq` gaps and inconsistent books, Polymarket top-of-book drifts.
    pub gaps: u64,
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn money(u: Option<Usd>) -> String {
    u.map_or_else(|| "—".to_string(), |u| u.to_string())
}

impl ReplayReport {
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "replay of {}: {} lines ({} not a recorded message), {:.1} s recorded, {} book changes evaluated; tick-to-decision p50 {} µs, p99 {} µs\n",
            self.file,
            self.lines,
            self.bad_lines,
            self.recorded_ms as f64 / 1e3,
            self.evaluations,
            us(self.tick_to_decision.p50_ns),
            us(self.tick_to_decision.p99_ns),
        );
        s.push_str("| plugin | version | evaluations | opportunities | distinct | total net edge | best net edge | faults | evaluate p50 µs | p99 µs |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for p in &self.plugins {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.name,
                p.version,
                p.evaluations,
                p.opportunities,
                p.distinct,
                p.total_net_edge,
                money(p.best_net_edge),
                p.faults,
                us(p.latency.p50_ns),
                us(p.latency.p99_ns),
            );
        }
        s.push_str("\n| plugin | approved | trades | fills | fees | contracts hedged | locked-in P&L | realised P&L | P&L | refused |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for p in &self.plugins {
            let Some(b) = &p.backtest else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.name,
                b.approved,
                counts(&b.trades),
                counts(&b.fills),
                b.fees
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .chain(std::iter::once(format!("total {}", b.fees_total)))
                    .collect::<Vec<_>>()
                    .join(", "),
                b.contracts_hedged,
                b.locked_in_pnl,
                b.realised_pnl,
                b.pnl,
                counts(&b.refused),
            );
        }
        for p in &self.plugins {
            let Some(b) = &p.backtest else { continue };
            if b.trades_listed.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "\n{} trades:\n\n| pair | outcome | YES | NO | unwind | P&L |\n|---|---|---|---|---|---|",
                p.name
            );
            for t in &b.trades_listed {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    t.pair,
                    t.outcome,
                    fill(&t.yes),
                    fill(&t.no),
                    fill(&t.unwind),
                    t.pnl
                );
            }
        }
        s.push_str("\n| pair | changes with an opportunity | best net edge |\n|---|---|---|\n");
        for p in &self.pairs {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                p.pair,
                p.opportunities,
                money(p.best_net_edge)
            );
        }
        s.push_str(
            "\n| feed | messages | book updates | bad messages | gaps |\n|---|---|---|---|---|\n",
        );
        for f in &self.feeds {
            let bad = if f.bad_messages.is_empty() {
                "0".to_string()
            } else {
                f.bad_messages
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                f.venue, f.messages, f.book_updates, bad, f.gaps
            );
        }
        let m = &self.memory;
        let _ = writeln!(
            s,
            "\nresident memory ({} samples, every {} lines): first {} MiB, last {} MiB, peak {} MiB",
            m.series_kib.len(),
            m.every_lines,
            mib(m.first_kib),
            mib(m.last_kib),
            mib(m.peak_kib),
        );
        s
    }
}

fn counts<V: std::fmt::Display>(m: &BTreeMap<String, V>) -> String {
    if m.is_empty() {
        return "—".to_string();
    }
    m.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fill(f: &Option<FillLine>) -> String {
    f.as_ref().map_or_else(
        || "—".to_string(),
        |f| {
            let action = match f.action {
                Action::Buy => "buy",
                Action::Sell => "sell",
            };
            format!(
                "{action} {} {} on {} @ {} fee {}",
                f.size, f.outcome, f.venue, f.price, f.fee
            )
        },
    )
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "—".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_series_stays_bounded_over_any_length() {
        let mut m = MemoryResult::default();
        for line in 1..=1_000_000 {
            m.line(line);
        }
        if m.first_kib.is_none() {
            return; // not Linux: nothing to sample
        }
        assert!(m.series_kib.len() < MemoryResult::SERIES_MAX);
        // 1,000 samples at 1,000 lines, thinned three times: one every 8,000 lines.
        assert_eq!(m.every_lines, 8_000);
        assert_eq!(m.series_kib.len(), 1_000_000 / 8_000);
        assert!(m.peak_kib >= m.last_kib);
    }
}

//! What a replay found: per plugin, per pair and per feed, printed as
//! markdown tables or JSON. Money is exact (the host's fee models on
//! `rust_decimal`); only the latency quantiles are measurements.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::domain::{Usd, Venue};
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
        s
    }
}

//! `/metrics` in the Prometheus text exposition format (0.0.4): plugin calls,
//! opportunities, faults and latency, evaluations and tick-to-decision latency,
//! bus counters per topic, how old each market's books are per venue, and the
//! risk gate (refusals by reason, approvals, pause, kill switch, exposure),
//! the feeds (messages, reconnects, resyncs, bad messages per venue) and the
//! trade store (trades by outcome, fills by venue, fees, P&L).
//!
//! Rendered on request from the same counters `/status` reads; nothing is kept here.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use super::status::book_ages;
use crate::strategy::PluginMode;
use crate::strategy::stats::LatencySummary;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "status",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let store = &state.host.trades;
    let totals = match store.repo.totals(&store.host).await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: trade store unavailable");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&state, totals.as_ref()),
    )
}

fn render(state: &ApiState, totals: Option<&crate::store::Totals>) -> String {
    let host = &state.host;
    let plugins = host.strategy.reports();
    let mut out = Exposition::default();
    if let Some(t) = totals {
        out.family(
            "doubletime_trades_total",
            "counter",
            "finished trades by outcome (from the trade store)",
        );
        for (outcome, n) in &t.trades {
            out.sample("doubletime_trades_total", &[("outcome", outcome)], *n);
        }
        out.family("doubletime_fills_total", "counter", "fills booked by venue");
        for (venue, n) in &t.fills {
            out.sample("doubletime_fills_total", &[("venue", venue)], *n);
        }
        out.family(
            "doubletime_fees_dollars",
            "counter",
            "fees paid on every fill",
        );
        out.sample_f64("doubletime_fees_dollars", &[], dollars(t.fees));
        out.family(
            "doubletime_pnl_dollars",
            "gauge",
            "P&L of every finished trade",
        );
        out.sample_f64("doubletime_pnl_dollars", &[], dollars(t.pnl));
    }
    if let Some(feeds) = host.feed_stats.get() {
        let mut feeds: Vec<_> = feeds.iter().collect();
        feeds.sort_by_key(|(v, _)| **v);
        out.family(
            "doubletime_feed_messages_total",
            "counter",
            "raw messages received per venue",
        );
        for (venue, f) in &feeds {
            let v = venue.to_string();
            out.sample(
                "doubletime_feed_messages_total",
                &[("venue", &v)],
                f.messages.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        out.family(
            "doubletime_feed_reconnects_total",
            "counter",
            "feed reconnections per venue",
        );
        for (venue, f) in &feeds {
            let v = venue.to_string();
            out.sample(
                "doubletime_feed_reconnects_total",
                &[("venue", &v)],
                f.reconnects.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        out.family(
            "doubletime_feed_resyncs_total",
            "counter",
            "book re-synchronisations per venue",
        );
        for (venue, f) in &feeds {
            let v = venue.to_string();
            out.sample(
                "doubletime_feed_resyncs_total",
                &[("venue", &v)],
                f.resyncs.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        out.family(
            "doubletime_feed_bad_messages_total",
            "counter",
            "messages that did not parse or were not understood, by kind",
        );
        for (venue, f) in &feeds {
            let v = venue.to_string();
            for (kind, n) in f.bad_messages() {
                out.sample(
                    "doubletime_feed_bad_messages_total",
                    &[("venue", &v), ("kind", &kind)],
                    n,
                );
            }
        }
    }

    out.family(
        "doubletime_plugin_calls_total",
        "counter",
        "evaluate calls per plugin",
    );
    for p in &plugins {
        out.sample(
            "doubletime_plugin_calls_total",
            &[("plugin", &p.name)],
            p.calls,
        );
    }
    out.family(
        "doubletime_plugin_opportunities_total",
        "counter",
        "opportunities returned per plugin",
    );
    for p in &plugins {
        let labels = [("plugin", p.name.as_str())];
        out.sample(
            "doubletime_plugin_opportunities_total",
            &labels,
            p.opportunities,
        );
    }
    out.family(
        "doubletime_plugin_faults_total",
        "counter",
        "traps, deadline and memory overruns, bad output per plugin",
    );
    for p in &plugins {
        out.sample(
            "doubletime_plugin_faults_total",
            &[("plugin", &p.name)],
            p.faults,
        );
    }
    out.family(
        "doubletime_plugin_active",
        "gauge",
        "1 if the plugin is evaluated, 0 if disabled or quarantined",
    );
    for p in &plugins {
        let active = u64::from(p.mode == PluginMode::Active);
        out.sample("doubletime_plugin_active", &[("plugin", &p.name)], active);
    }
    out.family(
        "doubletime_plugin_latency_seconds",
        "summary",
        "time of one evaluate call per plugin",
    );
    for p in &plugins {
        out.summary(
            "doubletime_plugin_latency_seconds",
            &[("plugin", &p.name)],
            &p.latency,
        );
    }

    out.family(
        "doubletime_evaluations_total",
        "counter",
        "book changes evaluated (after coalescing)",
    );
    out.sample(
        "doubletime_evaluations_total",
        &[],
        host.strategy.evaluations(),
    );
    out.family(
        "doubletime_tick_to_decision_seconds",
        "summary",
        "book message received to every plugin decided",
    );
    out.summary(
        "doubletime_tick_to_decision_seconds",
        &[],
        &host.strategy.tick_to_decision(),
    );

    let topics = host.bus.stats();
    for (name, help, value) in [
        (
            "doubletime_bus_published_total",
            "events published per bus topic",
            (|t: &crate::bus::TopicStats| t.published) as fn(&_) -> u64,
        ),
        (
            "doubletime_bus_coalesced_total",
            "deliveries merged into a newer one per bus topic",
            |t| t.coalesced,
        ),
        (
            "doubletime_bus_dropped_total",
            "deliveries lost by a lagging consumer per bus topic",
            |t| t.dropped,
        ),
    ] {
        out.family(name, "counter", help);
        for (topic, stats) in &topics {
            out.sample(name, &[("topic", topic)], value(stats));
        }
    }

    out.family("doubletime_markets", "gauge", "market pairs watched");
    out.sample("doubletime_markets", &[], host.books.len() as u64);
    let ages = book_ages(&host.books);
    out.family(
        "doubletime_book_age_seconds",
        "gauge",
        "seconds since a market's books last changed on a venue (absent before the first snapshot)",
    );
    for a in &ages {
        if let Some(age) = a.age_seconds {
            let venue = a.venue.to_string();
            out.sample_f64(
                "doubletime_book_age_seconds",
                &[("market", &a.market), ("venue", &venue)],
                age,
            );
        }
    }
    out.family(
        "doubletime_book_stale",
        "gauge",
        "1 if the feed flagged a market's books on a venue as untrustworthy",
    );
    for a in &ages {
        let venue = a.venue.to_string();
        out.sample(
            "doubletime_book_stale",
            &[("market", &a.market), ("venue", &venue)],
            u64::from(a.stale),
        );
    }
    render_risk(&mut out, host);
    out.0
}

fn render_risk(out: &mut Exposition, host: &crate::app::Host) {
    let risk = host.risk.snapshot();
    out.family(
        "doubletime_risk_refusals_total",
        "counter",
        "opportunities the risk gate refused, per reason",
    );
    for (reason, count) in &risk.refusals {
        out.sample(
            "doubletime_risk_refusals_total",
            &[("reason", reason)],
            *count,
        );
    }
    out.family(
        "doubletime_risk_approved_total",
        "counter",
        "opportunities the risk gate approved (sent to the executor)",
    );
    out.sample("doubletime_risk_approved_total", &[], risk.approved);
    out.family(
        "doubletime_trading_paused",
        "gauge",
        "1 while no new trade is approved",
    );
    out.sample(
        "doubletime_trading_paused",
        &[],
        u64::from(risk.state.paused.is_some()),
    );
    out.family(
        "doubletime_kill_switch",
        "gauge",
        "1 while the kill switch is latched",
    );
    out.sample(
        "doubletime_kill_switch",
        &[],
        u64::from(risk.state.kill_switch),
    );
    out.family(
        "doubletime_trades_in_flight",
        "gauge",
        "approved trades the executor has not reported back",
    );
    out.sample(
        "doubletime_trades_in_flight",
        &[],
        risk.state.in_flight.len() as u64,
    );
    // Dollar gauges are for dashboards only; no decision reads these floats.
    out.family(
        "doubletime_exposure_dollars",
        "gauge",
        "cash committed (held and in flight) across all markets",
    );
    out.sample_f64(
        "doubletime_exposure_dollars",
        &[],
        dollars(risk.total_exposure),
    );
    out.family(
        "doubletime_realised_pnl_today_dollars",
        "gauge",
        "realised P&L of the current UTC day",
    );
    let today = risk.state.realised_pnl_on(crate::strategy::now_micros());
    out.sample_f64("doubletime_realised_pnl_today_dollars", &[], dollars(today));
}

fn dollars(usd: crate::domain::Usd) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    usd.value().to_f64().unwrap_or(0.0)
}

#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.series(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.series(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    /// Quantiles in seconds and the count (the histogram keeps no sum).
    fn summary(&mut self, name: &str, labels: &[(&str, &str)], s: &LatencySummary) {
        for (q, ns) in [("0.5", s.p50_ns), ("0.99", s.p99_ns), ("0.999", s.p999_ns)] {
            let mut with_q = labels.to_vec();
            with_q.push(("quantile", q));
            self.sample_f64(name, &with_q, ns as f64 / 1e9);
        }
        self.sample(&format!("{name}_count"), labels, s.count);
    }

    fn series(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.0.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{k}=\"{}\"", escape(v));
        }
        self.0.push('}');
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("market", "a\"b\\c\nd")], 1);
        assert_eq!(out.0, "m{market=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}

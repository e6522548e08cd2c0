//! Liveness and the one-page status: version, mode, markets, plugins, bus
//! counters, evaluation latency and how old each book is.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use crate::books::BookStore;
use crate::bus::TopicStats;
use crate::config::AppEnv;
use crate::domain::Venue;
use crate::strategy::stats::LatencySummary;
use crate::strategy::{PluginMode, now_micros};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always "ok" while the process serves requests.
    pub status: &'static str,
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/health", tag = "status",
    responses((status = 200, description = "the host is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    pub version: &'static str,
    #[schema(value_type = String, example = "demo")]
    pub app_env: AppEnv,
    /// No order leaves the host.
    pub dry_run: bool,
    /// Market pairs being watched.
    pub markets: usize,
    pub plugins: Vec<PluginSummary>,
    /// Published / coalesced / dropped per bus topic.
    #[schema(value_type = Object)]
    pub bus: BTreeMap<&'static str, TopicStats>,
    /// Book changes evaluated by the plugins.
    pub evaluations: u64,
    /// Book message received → every plugin decided, nanoseconds.
    #[schema(value_type = Object)]
    pub tick_to_decision: LatencySummary,
    pub books: Vec<BookAge>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginSummary {
    pub name: String,
    #[schema(value_type = Object)]
    pub mode: PluginMode,
    pub calls: u64,
    pub opportunities: u64,
    pub faults: u64,
}

/// How fresh one venue's books of one market are.
#[derive(Serialize, ToSchema)]
pub struct BookAge {
    pub market: String,
    #[schema(value_type = String, example = "kalshi")]
    pub venue: Venue,
    /// Seconds since the last change; absent before the first snapshot.
    pub age_seconds: Option<f64>,
    /// The feed flagged these books as untrustworthy (gap, disconnect).
    pub stale: bool,
}

/// Every market's book age on each venue (also read by the metrics).
pub fn book_ages(books: &BookStore) -> Vec<BookAge> {
    let now = now_micros();
    let mut out = Vec::new();
    for entry in books.all() {
        let state = entry.state();
        for venue in Venue::ALL {
            let side = state.venue(venue);
            out.push(BookAge {
                market: entry.pair.id.to_string(),
                venue,
                age_seconds: side.age(now).map(micros_to_seconds),
                stale: side.stale,
            });
        }
    }
    out
}

pub fn micros_to_seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// What the host is doing, on one page.
#[utoipa::path(get, path = "/status", tag = "status",
    responses((status = 200, description = "host status", body = Status)))]
pub async fn status(State(state): State<ApiState>) -> Json<Status> {
    let host = &state.host;
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        app_env: host.config.app_env,
        dry_run: host.config.dry_run,
        markets: host.books.len(),
        plugins: host
            .strategy
            .reports()
            .into_iter()
            .map(|r| PluginSummary {
                name: r.name,
                mode: r.mode,
                calls: r.calls,
                opportunities: r.opportunities,
                faults: r.faults,
            })
            .collect(),
        bus: host.bus.stats().into_iter().collect(),
        evaluations: host.strategy.evaluations(),
        tick_to_decision: host.strategy.tick_to_decision(),
        books: book_ages(&host.books),
    })
}

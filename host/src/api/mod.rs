//! REST control API (axum): observes the running host (status, books, plugins,
//! opportunities, the risk gate, metrics, a live event stream) and steers it
//! (markets, plugin uploads, enable/disable, parameters, pause/resume, the kill
//! switch, risk limits).
//!
//! It sits beside the data flow, never in it: reads take short locks on the book
//! store and the plugin registry; commands that wait on the strategy thread or
//! compile wasm run on the blocking pool. Every mutating request needs the
//! bearer token (`DOUBLETIME_API_TOKEN`); without a configured token the API is
//! read-only. Errors are JSON `{"error": "..."}` with a meaningful status.

mod auth;
mod error;
mod markets;
mod metrics;
mod opportunities;
mod plugins;
mod status;
mod trades;
mod trading;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::app::Host;
use auth::BearerScheme;
pub use error::ApiError;

/// Largest JSON body accepted.
pub const BODY_LIMIT: usize = 1 << 20;
/// Largest plugin component accepted (interpreted plugins embed their runtime).
pub const PLUGIN_UPLOAD_LIMIT: usize = 64 << 20;

/// What every handler sees.
#[derive(Clone)]
struct ApiState {
    host: Arc<Host>,
    recent: opportunities::RecentOpportunities,
    /// Becomes `true` when the server shuts down, so event streams end.
    closing: watch::Receiver<bool>,
    /// Serialises commands (market add/remove, plugin install/remove) so a check
    /// and the change it guards cannot interleave with another request's.
    commands: Arc<tokio::sync::Mutex<()>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Double Time control API",
        description = "Observe and steer the Kalshi x Polymarket arbitrage host. \
            POST/PUT/DELETE need `Authorization: Bearer <DOUBLETIME_API_TOKEN>`."
    ),
    paths(
        status::health,
        status::status,
        markets::list_markets,
        markets::add_market,
        markets::market_detail,
        markets::remove_market,
        plugins::list_plugins,
        plugins::plugin,
        plugins::install_plugin,
        plugins::remove_plugin,
        plugins::enable_plugin,
        plugins::disable_plugin,
        plugins::configure_plugin,
        opportunities::recent_opportunities,
        opportunities::events,
        trading::pause,
        trading::resume,
        trading::kill,
        trading::reset_kill,
        trading::risk,
        trading::set_limits,
        trades::list_trades,
        trades::trade,
        trades::positions,
        metrics::metrics,
        openapi_json,
    ),
    components(schemas(error::ErrorBody, trading::TradingState, trading::KillResponse)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// The dashboard: one page served from the binary (markets, plugins, trades,
/// live events, pause/resume and the kill switch), built on the API itself.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// The API's routes. Must be called inside a tokio runtime: it starts the task
/// that keeps the recent-opportunities ring (stopped when the router is dropped).
pub fn router(host: Arc<Host>) -> Router {
    // No sender: event streams end only when their client goes away.
    let (_, closing) = watch::channel(false);
    build(host, closing)
}

/// Serves the API on `listener` until `shutdown` completes; open event streams
/// are ended so the graceful shutdown does not wait for their clients.
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (close, closing) = watch::channel(false);
    axum::serve(listener, build(host, closing))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = close.send(true);
        })
        .await
}

fn build(host: Arc<Host>, closing: watch::Receiver<bool>) -> Router {
    let state = ApiState {
        recent: opportunities::RecentOpportunities::start(&host.bus),
        host,
        closing,
        commands: Arc::default(),
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(status::health))
        .route("/status", get(status::status))
        .route(
            "/markets",
            get(markets::list_markets).post(markets::add_market),
        )
        .route(
            "/markets/{id}",
            get(markets::market_detail).delete(markets::remove_market),
        )
        .route("/plugins", get(plugins::list_plugins))
        .route(
            "/plugins/{name}",
            get(plugins::plugin)
                .put(plugins::install_plugin)
                .layer(DefaultBodyLimit::max(PLUGIN_UPLOAD_LIMIT))
                .delete(plugins::remove_plugin),
        )
        .route("/plugins/{name}/enable", post(plugins::enable_plugin))
        .route("/plugins/{name}/disable", post(plugins::disable_plugin))
        .route("/plugins/{name}/config", put(plugins::configure_plugin))
        .route("/opportunities", get(opportunities::recent_opportunities))
        .route("/events", get(opportunities::events))
        .route("/trading/pause", post(trading::pause))
        .route("/trading/resume", post(trading::resume))
        .route("/kill", post(trading::kill))
        .route("/kill/reset", post(trading::reset_kill))
        .route("/risk", get(trading::risk).put(trading::set_limits))
        .route("/trades", get(trades::list_trades))
        .route("/trades/{id}", get(trades::trade))
        .route("/positions", get(trades::positions))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(error::no_such_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

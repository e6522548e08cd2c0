//! Trades the executor handled: both legs' fills, the outcome (hedged,
//! unwound, not filled, refused, dry run) and the P&L, newest first.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::domain::Usd;
use crate::execution::TradeRecord;

/// The newest trades and the total P&L of this host.
#[derive(Serialize, ToSchema)]
pub struct TradeList {
    pub count: usize,
    /// Locked-in plus realised P&L of every trade, dollars.
    #[schema(value_type = String)]
    pub total_pnl: Usd,
    #[schema(value_type = Vec<Object>)]
    pub trades: Vec<TradeRecord>,
}

/// Every trade, newest first.
#[utoipa::path(get, path = "/trades", tag = "trading",
    responses((status = 200, description = "trades and total P&L", body = TradeList)))]
pub async fn list_trades(State(state): State<ApiState>) -> Result<Json<TradeList>, ApiError> {
    let store = &state.host.trades;
    let trades = store
        .repo
        .trades(TRADES_LISTED)
        .await
        .map_err(store_error)?;
    let total_pnl = store
        .repo
        .pnl_since(&store.host, 0)
        .await
        .map_err(store_error)?;
    Ok(Json(TradeList {
        count: trades.len(),
        total_pnl,
        trades,
    }))
}

/// How many trades `GET /trades` lists.
const TRADES_LISTED: u32 = 500;

fn store_error(e: crate::store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "API: trade store read failed");
    ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// One trade by id.
#[utoipa::path(get, path = "/trades/{id}", tag = "trading",
    params(("id" = String, Path, description = "trade id, e.g. dt-01795801879043679")),
    responses(
        (status = 200, description = "the trade", body = Object),
        (status = 404, description = "no such trade", body = ErrorBody),
    ))]
pub async fn trade(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<TradeRecord>, ApiError> {
    state
        .host
        .trades
        .repo
        .trade(&id)
        .await
        .map_err(store_error)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no trade '{id}'")))
}

/// Contracts held per pair, venue and outcome, from the executor's fills.
#[utoipa::path(get, path = "/positions", tag = "trading",
    responses((status = 200, description = "non-zero holdings", body = [Object])))]
pub async fn positions(
    State(state): State<ApiState>,
) -> Result<Json<Vec<crate::execution::Position>>, ApiError> {
    let store = &state.host.trades;
    Ok(Json(
        store
            .repo
            .positions(&store.host)
            .await
            .map_err(store_error)?,
    ))
}

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

/// All trades of this run and their total P&L.
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
pub async fn list_trades(State(state): State<ApiState>) -> Json<TradeList> {
    let mut trades = state.host.trades.trades();
    trades.reverse();
    Json(TradeList {
        count: trades.len(),
        total_pnl: state.host.trades.pnl(),
        trades,
    })
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
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no trade '{id}'")))
}

/// Contracts held per pair, venue and outcome, from the executor's fills.
#[utoipa::path(get, path = "/positions", tag = "trading",
    responses((status = 200, description = "non-zero holdings", body = [Object])))]
pub async fn positions(State(state): State<ApiState>) -> Json<Vec<crate::execution::Position>> {
    Json(state.host.trades.positions())
}

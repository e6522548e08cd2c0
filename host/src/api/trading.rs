//! Trading control: pause and resume, the kill switch, and the risk gate's
//! limits, state and refusals.
//!
//! `POST /kill` latches the kill switch (only `POST /kill/reset` clears it),
//! pauses trading and runs the executor's cancel-open-orders hook; a reset
//! leaves trading paused until `POST /trading/resume`. All of these and
//! `PUT /risk` need the bearer token.

use axum::Json;
use axum::extract::{Request, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ErrorBody, read_body};
use super::{ApiError, ApiState};
use crate::risk::{PauseCause, RiskLimits, RiskSnapshot};

/// Whether the gate lets trades through.
#[derive(Serialize, ToSchema)]
pub struct TradingState {
    /// No new trade is approved while paused.
    pub paused: bool,
    /// Who or what paused trading: `{"by": "operator" | "kill_switch" | "balance_below_shutdown", ...}`.
    #[schema(value_type = Option<Object>)]
    pub pause_cause: Option<PauseCause>,
    /// Latched by `POST /kill`; cleared only by `POST /kill/reset`.
    pub kill_switch: bool,
    /// Orders are not really sent (the executor's decision).
    pub dry_run: bool,
}

fn trading_state(state: &ApiState) -> TradingState {
    let snapshot = state.host.risk.snapshot();
    TradingState {
        paused: snapshot.state.paused.is_some(),
        pause_cause: snapshot.state.paused,
        kill_switch: snapshot.state.kill_switch,
        dry_run: snapshot.dry_run,
    }
}

/// Stops approving new trades (trades in flight finish).
#[utoipa::path(post, path = "/trading/pause", tag = "trading",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "trading is paused", body = TradingState),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
pub async fn pause(State(state): State<ApiState>) -> Json<TradingState> {
    state.host.risk.pause();
    Json(trading_state(&state))
}

/// Approves trades again; refused while the kill switch is latched.
#[utoipa::path(post, path = "/trading/resume", tag = "trading",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "trading resumed", body = TradingState),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 409, description = "the kill switch is latched: POST /kill/reset first", body = ErrorBody),
    ))]
pub async fn resume(State(state): State<ApiState>) -> Result<Json<TradingState>, ApiError> {
    state
        .host
        .risk
        .resume()
        .map_err(|e| ApiError::conflict(e.to_string()))?;
    Ok(Json(trading_state(&state)))
}

/// How long `POST /kill` waits for the venues' cancels before it answers.
/// Each venue is asked for at most three rounds; a slower venue's cancels go
/// on, and their report is logged.
const KILL_REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// `POST /kill`'s answer: the trading state, and what the cancels did.
#[derive(Serialize, ToSchema)]
pub struct KillResponse {
    #[serde(flatten)]
    pub state: TradingState,
    /// Every resting order of the account on both venues, cancelled or not, per
    /// venue. `null` when no executor runs (nothing was asked) or the venues
    /// took longer than 15 s; the cancels then go on and are logged.
    pub cancels: Option<crate::execution::KillReport>,
}

/// Latches the kill switch, pauses trading, cancels every resting order on
/// both venues and answers once the venues have (see `cancels`).
#[utoipa::path(post, path = "/kill", tag = "trading",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "kill switch latched; `cancels` says what each venue cancelled and what is still resting", body = KillResponse),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
pub async fn kill(State(state): State<ApiState>) -> Json<KillResponse> {
    let mut reports = state
        .host
        .kill_reports
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(r) = reports.as_mut() {
        r.borrow_and_update();
    }
    // Runs the executor's cancel-open-orders hook (RiskHandle::on_kill_cancel_open_orders).
    state.host.risk.kill();
    let cancels = match reports {
        Some(mut r) => match tokio::time::timeout(KILL_REPORT_WAIT, r.changed()).await {
            Ok(Ok(())) => r.borrow().clone(),
            _ => None,
        },
        None => None,
    };
    Json(KillResponse {
        state: trading_state(&state),
        cancels,
    })
}

/// Clears the kill switch; trading stays paused until resumed.
#[utoipa::path(post, path = "/kill/reset", tag = "trading",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "kill switch cleared, still paused", body = TradingState),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
pub async fn reset_kill(State(state): State<ApiState>) -> Json<TradingState> {
    state.host.risk.reset_kill_switch();
    Json(trading_state(&state))
}

/// Limits, state (pause, kill switch, in flight, exposure, P&L today,
/// cooldowns, balances), refusal counts by reason and the last 200 refusals.
#[utoipa::path(get, path = "/risk", tag = "trading",
    responses((status = 200, description = "the risk gate; dollars are decimal strings", body = Object)))]
pub async fn risk(State(state): State<ApiState>) -> Json<RiskSnapshot> {
    Json(state.host.risk.snapshot())
}

/// Replaces every risk limit at once.
#[utoipa::path(put, path = "/risk", tag = "trading",
    request_body(content = Object, description = "all of: min_profit_per_contract, min_profit_per_trade, \
        max_exposure_per_market, max_total_exposure, daily_loss_limit, minimum_balance, shutdown_balance \
        (dollars as decimal strings), max_contracts_per_trade (decimal string), max_book_age_ms, \
        cooldown_after_leg_failure_ms (integers)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the new limits", body = Object),
        (status = 400, description = "not JSON", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 422, description = "a missing, unknown or nonsensical limit", body = ErrorBody),
    ))]
pub async fn set_limits(
    State(state): State<ApiState>,
    req: Request,
) -> Result<Json<RiskLimits>, ApiError> {
    let bytes = read_body(req, &state).await?;
    // As axum's own `Json`: unreadable JSON is a 400, JSON that does not make
    // limits (a missing field, a negative size, a number for a dollar string) a 422.
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let limits = RiskLimits::from_json(value)
        .map_err(|e| ApiError::unprocessable(format!("invalid risk limits: {e}")))?;
    state
        .host
        .risk
        .set_limits(limits.clone())
        .map_err(|e| ApiError::unprocessable(format!("invalid risk limits: {e}")))?;
    Ok(Json(limits))
}

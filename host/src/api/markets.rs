//! Market pairs: list, add, remove, and one pair's books as a trader reads them
//! (top of each book, Kalshi's derived asks, the cost of each buy-both direction).
//!
//! A pair added here lives until restart: the configuration file stays the
//! record of what the host watches at start.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{JsonBody, MarketId};
use super::status::micros_to_seconds;
use super::{ApiError, ApiState};
use crate::app::DEFAULT_POLYMARKET_MIN_SIZE;
use crate::books::PairEntry;
use crate::config::{Config, MarketConfig};
use crate::domain::{
    Level, MarketOutcomes, MarketState, OrderBook, Outcome, PairFees, Price, Size, Venue,
};
use crate::strategy::now_micros;

/// Levels shown per side of each book.
const DEPTH: usize = 5;

/// A pair as the host watches it.
#[derive(Serialize, ToSchema)]
pub struct Market {
    pub id: String,
    /// The number plugins see for this pair.
    pub index: u32,
    pub kalshi_ticker: String,
    pub polymarket_condition_id: String,
    pub polymarket_yes_token: String,
    pub polymarket_no_token: String,
    pub neg_risk: bool,
    /// Someone checked that both venues settle the question the same way.
    pub rules_match: bool,
    #[schema(value_type = Object)]
    pub fees: PairFees,
    #[schema(value_type = String, example = "5")]
    pub polymarket_min_size: Size,
}

impl Market {
    fn of(entry: &PairEntry) -> Market {
        let p = &entry.pair;
        Market {
            id: p.id.to_string(),
            index: entry.index,
            kalshi_ticker: p.kalshi_ticker.clone(),
            polymarket_condition_id: p.polymarket_condition_id.clone(),
            polymarket_yes_token: p.polymarket_yes_token.to_string(),
            polymarket_no_token: p.polymarket_no_token.to_string(),
            neg_risk: p.neg_risk,
            rules_match: p.rules_match,
            fees: entry.fees,
            polymarket_min_size: entry.polymarket_min_size,
        }
    }
}

/// Every watched pair.
#[utoipa::path(get, path = "/markets", tag = "markets",
    responses((status = 200, description = "watched pairs", body = [Market])))]
pub async fn list_markets(State(state): State<ApiState>) -> Json<Vec<Market>> {
    Json(
        state
            .host
            .books
            .all()
            .iter()
            .map(|e| Market::of(e))
            .collect(),
    )
}

/// Starts watching a pair (a `[[markets]]` entry of the configuration, as JSON).
#[utoipa::path(post, path = "/markets", tag = "markets",
    request_body(content = Object, description = "a `[[markets]]` entry: id, kalshi_ticker, polymarket_condition_id, polymarket_yes_token, polymarket_no_token, rules texts, rules_match, fees"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "added", body = Market),
        (status = 400, description = "not JSON or not a market entry", body = super::error::ErrorBody),
        (status = 401, description = "missing or wrong token", body = super::error::ErrorBody),
        (status = 409, description = "a pair with this id exists", body = super::error::ErrorBody),
        (status = 422, description = "the entry failed validation", body = super::error::ErrorBody),
    ))]
pub async fn add_market(
    State(state): State<ApiState>,
    JsonBody(market): JsonBody<MarketConfig>,
) -> Result<(StatusCode, Json<Market>), ApiError> {
    let (pair, fees) = validate(&state.host.config, market)?;
    let _one_at_a_time = state.commands.lock().await;
    let books = &state.host.books;
    if books.get(&pair.id).is_some() {
        return Err(ApiError::conflict(format!(
            "market '{}' exists; DELETE it first to change it",
            pair.id
        )));
    }
    let entry = books.add(pair, fees, Size::whole(DEFAULT_POLYMARKET_MIN_SIZE));
    state.host.strategy.sync_markets();
    tracing::info!(market = %entry.pair.id, index = entry.index, "market added through the API");
    Ok((StatusCode::CREATED, Json(Market::of(&entry))))
}

/// The checks the configuration applies to a `[[markets]]` entry, and the fees
/// it derives (through [`Config::pair_setups`], so both paths agree).
fn validate(
    config: &Config,
    market: MarketConfig,
) -> Result<(crate::domain::MarketPair, PairFees), ApiError> {
    if market.id.is_empty()
        || market.id.len() > 128
        || !market
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::unprocessable(
            "market id must be 1 to 128 letters, digits, '-' or '_'",
        ));
    }
    if market.polymarket_fee_exponent > 4 {
        return Err(ApiError::unprocessable(format!(
            "markets[{}].polymarket_fee_exponent must be at most 4",
            market.id
        )));
    }
    market
        .pair()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let one = Config {
        kalshi: config.kalshi.clone(),
        markets: vec![market],
        ..Config::default()
    };
    one.pair_setups()
        .pop()
        .ok_or_else(|| ApiError::unprocessable("market entry could not be used"))
}

/// Stops watching a pair.
#[utoipa::path(delete, path = "/markets/{id}", tag = "markets",
    params(("id" = String, Path, description = "market pair id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "removed; the pair as it was", body = Market),
        (status = 401, description = "missing or wrong token", body = super::error::ErrorBody),
        (status = 404, description = "no such market", body = super::error::ErrorBody),
    ))]
pub async fn remove_market(
    State(state): State<ApiState>,
    MarketId(id): MarketId,
) -> Result<Json<Market>, ApiError> {
    let _one_at_a_time = state.commands.lock().await;
    let entry = state
        .host
        .books
        .remove(&crate::domain::PairId::from(id.as_str()))
        .ok_or_else(|| unknown_market(&id))?;
    state.host.strategy.sync_markets();
    tracing::info!(market = %id, "market removed through the API");
    Ok(Json(Market::of(&entry)))
}

fn unknown_market(id: &str) -> ApiError {
    ApiError::not_found(format!("no market named '{id}'"))
}

#[derive(Serialize, ToSchema)]
pub struct LevelView {
    #[schema(value_type = String, example = "0.40")]
    pub price: Price,
    #[schema(value_type = String, example = "100")]
    pub size: Size,
}

impl From<Level> for LevelView {
    fn from(l: Level) -> Self {
        LevelView {
            price: l.price,
            size: l.size,
        }
    }
}

/// The best levels of one outcome's book, best first.
#[derive(Serialize, ToSchema)]
pub struct BookTop {
    pub bids: Vec<LevelView>,
    pub asks: Vec<LevelView>,
}

impl BookTop {
    fn of(book: &OrderBook) -> Self {
        BookTop {
            bids: book.bids().take(DEPTH).map(LevelView::from).collect(),
            asks: book.asks().take(DEPTH).map(LevelView::from).collect(),
        }
    }
}

/// One venue's books of the pair.
#[derive(Serialize, ToSchema)]
pub struct VenueBooks {
    pub yes: BookTop,
    pub no: BookTop,
    /// Best price to buy YES here (Kalshi: 1 − best NO bid).
    pub best_yes_ask: Option<LevelView>,
    /// Best price to buy NO here (Kalshi: 1 − best YES bid).
    pub best_no_ask: Option<LevelView>,
    /// Seconds since the last change; absent before the first snapshot.
    pub age_seconds: Option<f64>,
    /// The feed flagged these books as untrustworthy.
    pub stale: bool,
}

impl VenueBooks {
    fn of(books: &MarketOutcomes, venue: Venue, now: u64) -> Self {
        VenueBooks {
            yes: BookTop::of(&books.yes),
            no: BookTop::of(&books.no),
            best_yes_ask: books.best_ask(venue, Outcome::Yes).map(LevelView::from),
            best_no_ask: books.best_ask(venue, Outcome::No).map(LevelView::from),
            age_seconds: books.age(now).map(micros_to_seconds),
            stale: books.stale,
        }
    }
}

/// Buy YES on one venue and NO on the other, at the best asks, before fees.
#[derive(Serialize, ToSchema)]
pub struct Direction {
    #[schema(value_type = String, example = "kalshi")]
    pub buy_yes_on: Venue,
    #[schema(value_type = String, example = "polymarket")]
    pub buy_no_on: Venue,
    pub yes_ask: Option<LevelView>,
    pub no_ask: Option<LevelView>,
    /// YES ask + NO ask per contract; absent if either side has no offer.
    #[schema(value_type = Option<String>, example = "0.95")]
    pub gross_cost: Option<Decimal>,
    /// 1 − gross cost: the edge per contract before fees.
    #[schema(value_type = Option<String>, example = "0.05")]
    pub gross_edge: Option<Decimal>,
    /// Contracts available at both best asks.
    #[schema(value_type = String, example = "100")]
    pub top_size: Size,
}

impl Direction {
    fn of(state: &MarketState, yes_venue: Venue) -> Self {
        let cost = state.gross_cost(yes_venue);
        Direction {
            buy_yes_on: yes_venue,
            buy_no_on: yes_venue.other(),
            yes_ask: state.best_ask(yes_venue, Outcome::Yes).map(LevelView::from),
            no_ask: state
                .best_ask(yes_venue.other(), Outcome::No)
                .map(LevelView::from),
            gross_cost: cost,
            gross_edge: cost.map(|c| Decimal::ONE - c),
            top_size: state.top_size(yes_venue),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MarketDetail {
    #[serde(flatten)]
    pub market: Market,
    pub kalshi_rules: String,
    pub polymarket_rules: String,
    pub kalshi: VenueBooks,
    pub polymarket: VenueBooks,
    /// Both buy-both directions.
    pub directions: Vec<Direction>,
}

/// One pair's books: top levels, best asks, the cost and edge of each direction.
#[utoipa::path(get, path = "/markets/{id}", tag = "markets",
    params(("id" = String, Path, description = "market pair id")),
    responses(
        (status = 200, description = "the pair and its books", body = MarketDetail),
        (status = 404, description = "no such market", body = super::error::ErrorBody),
    ))]
pub async fn market_detail(
    State(state): State<ApiState>,
    MarketId(id): MarketId,
) -> Result<Json<MarketDetail>, ApiError> {
    let entry = state
        .host
        .books
        .get(&crate::domain::PairId::from(id.as_str()))
        .ok_or_else(|| unknown_market(&id))?;
    Ok(Json(MarketDetail::of(&entry)))
}

impl MarketDetail {
    fn of(entry: &PairEntry) -> Self {
        let now = now_micros();
        // The feeds write under this lock: read the few levels shown and let go.
        let books = entry.state();
        MarketDetail {
            market: Market::of(entry),
            kalshi_rules: entry.pair.kalshi_rules.clone(),
            polymarket_rules: entry.pair.polymarket_rules.clone(),
            kalshi: VenueBooks::of(&books.kalshi, Venue::Kalshi, now),
            polymarket: VenueBooks::of(&books.polymarket, Venue::Polymarket, now),
            directions: Venue::ALL
                .into_iter()
                .map(|v| Direction::of(&books, v))
                .collect(),
        }
    }
}

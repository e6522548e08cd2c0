//! Serde types that mirror Polymarket's wire exactly, named as the venue names
//! them (PROTOCOLS.md §2.2–§2.6): market- and user-channel WebSocket events,
//! subscribe frames, and the REST bodies the adapter reads.
//!
//! Prices and sizes stay strings here: the venue sends them as strings, some
//! without a leading zero (".48", §2.4), and the REST book hash (§3.5) is over
//! the exact strings. `book.rs` turns them into domain money. [`parse`] takes
//! one WebSocket text frame — an object or an array of objects (§2.4) — and
//! never panics; the pre-2025-09-15 `price_change` schema is refused as
//! [`ParseError::Legacy`] so a stale feed or fixture is noticed, not misread.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::auth::ApiCreds;
use crate::domain::TokenId;

/// Keep-alive: send the text `PING` every 10 s; the server answers `PONG`,
/// which is not JSON (§2.4).
pub const PING: &str = "PING";
pub const PONG: &str = "PONG";

pub const MARKET_WS_URL: &str = "wss://ws-subscriptions-clob.polymarket.com/ws/market";
pub const USER_WS_URL: &str = "wss://ws-subscriptions-clob.polymarket.com/ws/user";

// --------------------------------------------------------- subscriptions --

/// First frame on the market socket, by token ids (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketSubscribe {
    pub assets_ids: Vec<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Adds `best_bid_ask`, `new_market`, `market_resolved`.
    pub custom_feature_enabled: bool,
    /// Ask for the initial `book` snapshot (the official Rust client sends it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_dump: Option<bool>,
}

impl MarketSubscribe {
    pub fn new(tokens: &[TokenId]) -> Self {
        MarketSubscribe {
            assets_ids: tokens.iter().map(|t| t.to_string()).collect(),
            kind: "market",
            custom_feature_enabled: true,
            initial_dump: Some(true),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Add or remove assets on an open socket. A duplicate subscribe is ignored by
/// the venue, so forcing a fresh `book` takes unsubscribe then subscribe (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketSubscriptionChange {
    pub assets_ids: Vec<String>,
    pub operation: SubscriptionOp,
    pub custom_feature_enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionOp {
    Subscribe,
    Unsubscribe,
}

impl MarketSubscriptionChange {
    pub fn new(op: SubscriptionOp, tokens: &[TokenId]) -> Self {
        MarketSubscriptionChange {
            assets_ids: tokens.iter().map(|t| t.to_string()).collect(),
            operation: op,
            custom_feature_enabled: true,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The user-channel subscribe frame: credentials in the clear (that is the
/// protocol) and **condition ids**, not token ids (§2.4). Returned only as the
/// string to send, so no Debug of it can leak the secret.
pub fn user_subscribe_json(creds: &ApiCreds, condition_ids: &[String]) -> String {
    serde_json::json!({
        "auth": {
            "apiKey": creds.api_key,
            "secret": creds.secret().expose(),
            "passphrase": creds.passphrase().expose(),
        },
        "markets": condition_ids,
        "type": "user",
    })
    .to_string()
}

// ------------------------------------------------------- market channel --

/// `BUY` = bid level, `SELL` = ask level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WireSide {
    #[serde(rename = "BUY")]
    Buy,
    #[serde(rename = "SELL")]
    Sell,
}

/// One level as the venue sends it: `{"price": ".48", "size": "30"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLevel {
    pub price: String,
    pub size: String,
}

/// `book`: a full snapshot of one token (§2.4). Order of the arrays is not
/// guaranteed (§2.3); `tick_size`/`last_trade_price` appear on live messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BookMsg {
    pub asset_id: String,
    pub market: String,
    #[serde(default)]
    pub bids: Vec<WireLevel>,
    #[serde(default)]
    pub asks: Vec<WireLevel>,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub tick_size: Option<String>,
    #[serde(default)]
    pub last_trade_price: Option<String>,
}

/// `price_change`, CURRENT schema (since 2025-09-15 23:00 UTC, §0, §2.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceChangeMsg {
    pub market: String,
    pub price_changes: Vec<PriceChange>,
    #[serde(default)]
    pub timestamp: String,
}

/// One entry: `size` is the level's new ABSOLUTE size, "0" removes it (§2.4,
/// §5 item 4); `best_bid`/`best_ask` are the token's top of book after it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceChange {
    pub asset_id: String,
    pub price: String,
    pub size: String,
    pub side: WireSide,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub best_bid: Option<String>,
    #[serde(default)]
    pub best_ask: Option<String>,
}

/// `tick_size_change`: orders at the old tick are rejected afterwards (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TickSizeChangeMsg {
    pub asset_id: String,
    pub market: String,
    pub old_tick_size: String,
    pub new_tick_size: String,
    #[serde(default)]
    pub timestamp: String,
}

/// `last_trade_price`: one per trade.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LastTradePriceMsg {
    pub asset_id: String,
    pub market: String,
    pub price: String,
    pub side: WireSide,
    pub size: String,
    #[serde(default)]
    pub fee_rate_bps: Option<String>,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub transaction_hash: Option<String>,
}

/// `best_bid_ask` (custom feature).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BestBidAskMsg {
    pub asset_id: String,
    pub market: String,
    pub best_bid: String,
    pub best_ask: String,
    #[serde(default)]
    pub spread: Option<String>,
    #[serde(default)]
    pub timestamp: String,
}

/// `new_market` (custom feature).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewMarketMsg {
    pub id: String,
    pub market: String,
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub assets_ids: Vec<String>,
    #[serde(default)]
    pub outcomes: Vec<String>,
    #[serde(default)]
    pub timestamp: String,
}

/// `market_resolved` (custom feature).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarketResolvedMsg {
    pub id: String,
    pub market: String,
    #[serde(default)]
    pub question: String,
    pub winning_asset_id: String,
    pub winning_outcome: String,
    #[serde(default)]
    pub timestamp: String,
}

// --------------------------------------------------------- user channel --

/// A trade is final only at `CONFIRMED`; `FAILED` means the leg did not happen
/// although the order matched (§2.4, §5 item 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    Matched,
    Mined,
    Confirmed,
    Retrying,
    Failed,
    /// Known to the TS SDK.
    MatchedNotBroadcasted,
    #[serde(other)]
    Unknown,
}

impl TradeStatus {
    pub fn is_final(self) -> bool {
        matches!(self, TradeStatus::Confirmed | TradeStatus::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MakerOrder {
    pub order_id: String,
    pub price: String,
    pub matched_amount: String,
    #[serde(default)]
    pub asset_id: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// User-channel `trade`; the full payloads carry more fields than the docs'
/// examples, so everything beyond the core is optional (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserTradeMsg {
    pub id: String,
    pub asset_id: String,
    pub market: String,
    pub price: String,
    pub size: String,
    pub side: WireSide,
    pub status: TradeStatus,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub maker_orders: Vec<MakerOrder>,
    #[serde(default)]
    pub taker_order_id: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub trade_owner: Option<String>,
    /// `matchtime` on the channel, `match_time` in `GET /data/trades`.
    #[serde(default, alias = "match_time")]
    pub matchtime: Option<String>,
    #[serde(default)]
    pub last_update: Option<String>,
    /// Set once the trade is mined.
    #[serde(default)]
    pub transaction_hash: Option<String>,
    /// `TAKER` or `MAKER`: which side of the trade we were.
    #[serde(default)]
    pub trader_side: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderEventType {
    Placement,
    /// A partial fill.
    Update,
    Cancellation,
    #[serde(other)]
    Unknown,
}

/// Order status as the user channel and `POST /order` report it (the REST
/// response uses lowercase, the channel uppercase; both are accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum OrderStatus {
    #[serde(alias = "live", rename = "LIVE")]
    Live,
    #[serde(alias = "matched", rename = "MATCHED")]
    Matched,
    /// Sports markets with a taker delay: the fill is decided later (§2.7).
    #[serde(alias = "delayed", rename = "DELAYED")]
    Delayed,
    #[serde(alias = "unmatched", rename = "UNMATCHED")]
    Unmatched,
    #[serde(alias = "canceled", rename = "CANCELED")]
    Canceled,
    #[serde(other)]
    Unknown,
}

/// User-channel `order`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserOrderMsg {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: OrderEventType,
    pub asset_id: String,
    pub market: String,
    pub price: String,
    pub original_size: String,
    pub size_matched: String,
    pub side: WireSide,
    #[serde(default)]
    pub status: Option<OrderStatus>,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub order_owner: Option<String>,
    #[serde(default)]
    pub associate_trades: Option<Vec<String>>,
}

// ----------------------------------------------------------------- parse --

/// One event of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolyMessage {
    Book(BookMsg),
    PriceChange(PriceChangeMsg),
    TickSizeChange(TickSizeChangeMsg),
    LastTradePrice(LastTradePriceMsg),
    BestBidAsk(BestBidAskMsg),
    NewMarket(NewMarketMsg),
    MarketResolved(MarketResolvedMsg),
    Trade(UserTradeMsg),
    Order(UserOrderMsg),
    /// The text answer to our `PING`.
    Pong,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Pre-2025-09-15 `price_change` (root `asset_id`, `changes[]`): the feed
    /// or the fixture is stale (§0, §2.4).
    #[error("legacy price_change schema (root asset_id + changes[]); expected price_changes[]")]
    Legacy,
    #[error("unknown event_type '{event_type}'")]
    Unknown { event_type: String },
    #[error("malformed message: {reason}")]
    Malformed { reason: String },
}

impl ParseError {
    /// The short name it is counted under in the feed's bad-message tally.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Legacy => "legacy",
            ParseError::Unknown { .. } => "unknown",
            ParseError::Malformed { .. } => "malformed",
        }
    }
}

fn malformed(reason: impl std::fmt::Display) -> ParseError {
    // Bounded: serde errors can quote input, and a frame is untrusted.
    ParseError::Malformed {
        reason: reason.to_string().chars().take(200).collect(),
    }
}

/// Parses one text frame. Strict: any event that fails fails the frame. A
/// socket loop that must keep the good events of a mixed array uses
/// [`parse_each`].
pub fn parse(text: &str) -> Result<Vec<PolyMessage>, ParseError> {
    parse_each(text)?.into_iter().collect()
}

/// Parses one text frame event by event. The outer error is for a frame that
/// is not JSON (or not an object/array) at all.
pub fn parse_each(text: &str) -> Result<Vec<Result<PolyMessage, ParseError>>, ParseError> {
    let trimmed = text.trim();
    if trimmed == PONG {
        return Ok(vec![Ok(PolyMessage::Pong)]);
    }
    // One event (the hot path: every price change) is probed for its type and
    // parsed straight into its message; no intermediate `Value`.
    if trimmed.starts_with('{') {
        return Ok(vec![parse_object(trimmed)]);
    }
    if !trimmed.starts_with('[') {
        return Err(malformed("frame is neither an object nor an array"));
    }
    // An array (the books sent on subscribing): each element as its raw text.
    // serde_json bounds recursion depth, so hostile nesting is an error, not a
    // stack overflow.
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(trimmed).map_err(malformed)?;
    Ok(items.into_iter().map(|v| parse_object(v.get())).collect())
}

/// Keys that tell an event's shape: `price_changes` is today's price change;
/// `changes` or a top-level `asset_id` on a price change is the legacy one.
const SHAPE_KEYS: &[&str] = &["price_changes", "changes", "asset_id"];

fn parse_object(text: &str) -> Result<PolyMessage, ParseError> {
    if let Some(change) = price_change_in_one_pass(text) {
        return Ok(PolyMessage::PriceChange(change));
    }
    let probe = crate::venues::wire::probe(text, "event_type", None, SHAPE_KEYS).map_err(|e| {
        // Values are skipped whatever they are, so a data error is the event's type.
        if e.is_data() {
            malformed("event is not an object")
        } else {
            malformed(e)
        }
    })?;
    let Some(event_type) = probe.tag.as_deref() else {
        return Err(malformed("missing event_type"));
    };
    fn typed<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ParseError> {
        serde_json::from_str(text).map_err(malformed)
    }
    match event_type {
        "book" => typed(text).map(PolyMessage::Book),
        "price_change" => {
            if !probe.has(0) && (probe.has(1) || probe.has(2)) {
                return Err(ParseError::Legacy);
            }
            typed(text).map(PolyMessage::PriceChange)
        }
        "tick_size_change" => typed(text).map(PolyMessage::TickSizeChange),
        "last_trade_price" => typed(text).map(PolyMessage::LastTradePrice),
        "best_bid_ask" => typed(text).map(PolyMessage::BestBidAsk),
        "new_market" => typed(text).map(PolyMessage::NewMarket),
        "market_resolved" => typed(text).map(PolyMessage::MarketResolved),
        "trade" => typed(text).map(PolyMessage::Trade),
        "order" => typed(text).map(PolyMessage::Order),
        other => Err(ParseError::Unknown {
            event_type: other.chars().take(64).collect(),
        }),
    }
}

/// Price changes are nearly every event of the feed: one that is plainly a
/// current price change (it has `price_changes[]`, so it is not the legacy
/// shape) is parsed in one pass, without the probe. Anything else goes the
/// probing way, which names what is wrong; for a well-formed event both agree.
fn price_change_in_one_pass(text: &str) -> Option<PriceChangeMsg> {
    // The type is checked once parsed; this only skips other events cheaply.
    if !text.contains(r#""price_change""#) {
        return None;
    }
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        event_type: std::borrow::Cow<'a, str>,
        market: String,
        price_changes: Vec<PriceChange>,
        #[serde(default)]
        timestamp: String,
    }
    let e: Event = serde_json::from_str(text).ok()?;
    (e.event_type == "price_change").then_some(PriceChangeMsg {
        market: e.market,
        price_changes: e.price_changes,
        timestamp: e.timestamp,
    })
}

// ------------------------------------------------------------------ REST --

/// Numbers the venue sends as JSON numbers (Gamma `orderPriceMinTickSize: 0.01`,
/// `/clob-markets` `mts`) or as strings. Read through the shortest decimal text
/// of the number, never through float arithmetic.
fn de_decimal_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a number, got {}",
                kind(&other)
            )));
        }
    };
    let parsed = super::orders::parse_plain_decimal(&text)
        .or_else(|| Decimal::from_scientific(&text).ok())
        .ok_or_else(|| serde::de::Error::custom("not a decimal"))?;
    Ok(Some(parsed))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `GET /book?token_id=` (clob-client-v2 `OrderBookSummary`, §2.3). Arrays are
/// observed worst-first; never rely on it. `POST /books` returns these in any
/// order: key by `asset_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BookResponse {
    pub market: String,
    pub asset_id: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub bids: Vec<WireLevel>,
    #[serde(default)]
    pub asks: Vec<WireLevel>,
    #[serde(default)]
    pub min_order_size: Option<String>,
    #[serde(default)]
    pub tick_size: Option<String>,
    #[serde(default)]
    pub neg_risk: Option<bool>,
    #[serde(default)]
    pub last_trade_price: Option<String>,
}

/// The YES and NO token of one binary market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeTokens {
    pub yes: TokenId,
    pub no: TokenId,
}

fn yes_no_tokens<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<OutcomeTokens, ParseError> {
    let (mut yes, mut no) = (None, None);
    for (outcome, token) in pairs {
        let slot = match outcome.trim().to_ascii_lowercase().as_str() {
            "yes" => &mut yes,
            "no" => &mut no,
            _ => {
                return Err(malformed(format!(
                    "outcome '{}' is not Yes/No",
                    clip(outcome)
                )));
            }
        };
        let id = TokenId::new(token).map_err(malformed)?;
        if slot.replace(id).is_some() {
            return Err(malformed("outcome listed twice"));
        }
    }
    match (yes, no) {
        (Some(yes), Some(no)) => Ok(OutcomeTokens { yes, no }),
        _ => Err(malformed("market lacks a Yes or a No token")),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Gamma `GET /markets` entry (§2.2). `outcomes`, `outcomePrices` and
/// `clobTokenIds` are JSON-encoded strings inside the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GammaMarket {
    pub id: String,
    #[serde(default)]
    pub question: String,
    pub condition_id: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub outcomes: Option<String>,
    #[serde(default)]
    pub outcome_prices: Option<String>,
    #[serde(default)]
    pub clob_token_ids: Option<String>,
    #[serde(default)]
    pub neg_risk: Option<bool>,
    #[serde(default)]
    pub enable_order_book: Option<bool>,
    #[serde(default)]
    pub accepting_orders: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub closed: Option<bool>,
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub order_price_min_tick_size: Option<Decimal>,
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub order_min_size: Option<Decimal>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub best_bid: Option<Decimal>,
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub best_ask: Option<Decimal>,
    #[serde(default)]
    pub fees_enabled: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub group_item_title: Option<String>,
    #[serde(default)]
    pub neg_risk_market_id: Option<String>,
}

impl GammaMarket {
    /// YES token = `clobTokenIds[outcomes.index("Yes")]` (§2.2), parsed twice.
    pub fn outcome_tokens(&self) -> Result<OutcomeTokens, ParseError> {
        let outcomes: Vec<String> = serde_json::from_str(self.outcomes.as_deref().unwrap_or(""))
            .map_err(|e| malformed(format!("outcomes: {e}")))?;
        let tokens: Vec<String> =
            serde_json::from_str(self.clob_token_ids.as_deref().unwrap_or(""))
                .map_err(|e| malformed(format!("clobTokenIds: {e}")))?;
        if outcomes.len() != tokens.len() {
            return Err(malformed("outcomes and clobTokenIds differ in length"));
        }
        yes_no_tokens(
            outcomes
                .iter()
                .map(String::as_str)
                .zip(tokens.iter().map(String::as_str)),
        )
    }
}

/// `/clob-markets/{condition_id}` token entry: `t` id, `o` outcome.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClobToken {
    pub t: String,
    pub o: String,
}

/// `fd`: the market's taker fee `C × r × (p(1−p))^e` (§2.9).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FeeDetails {
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub r: Option<Decimal>,
    #[serde(default)]
    pub e: Option<u32>,
    /// Taker only; omitted when false.
    #[serde(default)]
    pub to: bool,
}

/// `GET /clob-markets/{condition_id}`: the compact market info the V2 clients
/// cache (tick, neg-risk, fees, min size; §2.2). Short names are the venue's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClobMarket {
    /// Condition id.
    pub c: String,
    /// The two tokens.
    pub t: Vec<ClobToken>,
    /// Minimum tick size.
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub mts: Option<Decimal>,
    /// Neg risk (omitted when false).
    #[serde(default)]
    pub nr: bool,
    #[serde(default)]
    pub fd: Option<FeeDetails>,
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub mbf: Option<Decimal>,
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub tbf: Option<Decimal>,
    /// Accepting orders.
    #[serde(default)]
    pub ao: Option<bool>,
    /// Minimum order size (shares).
    #[serde(default, deserialize_with = "de_decimal_lenient")]
    pub mos: Option<Decimal>,
    /// Taker delay in seconds (sports); orders come back `delayed` (§2.7).
    #[serde(default)]
    pub sd: Option<u64>,
    /// Game start time.
    #[serde(default)]
    pub gst: Option<String>,
    /// Clear book on start.
    #[serde(default)]
    pub cbos: Option<bool>,
    #[serde(default)]
    pub rfqe: Option<bool>,
    #[serde(default)]
    pub itode: Option<bool>,
    #[serde(default)]
    pub ibce: Option<bool>,
}

impl ClobMarket {
    pub fn outcome_tokens(&self) -> Result<OutcomeTokens, ParseError> {
        yes_no_tokens(self.t.iter().map(|t| (t.o.as_str(), t.t.as_str())))
    }
}

/// `GET /version`; absent means 2 (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct VersionResponse {
    #[serde(default = "default_version")]
    pub version: u32,
}

fn default_version() -> u32 {
    2
}

/// `POST /order` response (§2.6). Some responses say `error_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PostOrderResponse {
    #[serde(default)]
    pub success: bool,
    #[serde(default, rename = "errorMsg", alias = "error_msg")]
    pub error_msg: String,
    #[serde(default, rename = "orderID", alias = "orderId")]
    pub order_id: String,
    #[serde(default)]
    pub status: Option<OrderStatus>,
    #[serde(default, rename = "takingAmount")]
    pub taking_amount: Option<String>,
    #[serde(default, rename = "makingAmount")]
    pub making_amount: Option<String>,
    #[serde(default, rename = "tradeIDs")]
    pub trade_ids: Vec<String>,
    #[serde(default, rename = "transactionsHashes")]
    pub transactions_hashes: Vec<String>,
}

/// A 4xx/5xx body: `{"error": "..."}`, sometimes with the order id (§2.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "errorMsg", alias = "error_msg", alias = "message")]
    pub error: String,
    #[serde(default, rename = "orderID", alias = "orderId")]
    pub order_id: Option<String>,
}

/// `DELETE /order(s)` response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CancelResponse {
    #[serde(default)]
    pub canceled: Vec<String>,
    #[serde(default)]
    pub not_canceled: std::collections::BTreeMap<String, String>,
}

/// `GET /balance-allowance`: 6-dp base units as strings (§2.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceAllowance {
    pub balance: String,
    #[serde(default)]
    pub allowances: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Secret;
    use proptest::prelude::*;

    pub fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../tests/fixtures/polymarket/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn one(name: &str) -> PolyMessage {
        let mut v = parse(&fixture(name)).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn the_one_pass_price_change_is_the_probed_one_and_defers_anything_odd() {
        let text = fixture("ws_price_change.json");
        let fast = price_change_in_one_pass(&text).expect("a current price change");
        let probed: PriceChangeMsg = serde_json::from_str(&text).unwrap();
        assert_eq!(fast, probed);
        for odd in [
            // The legacy shape: root asset_id and changes[].
            r#"{"event_type":"price_change","asset_id":"1","market":"0x1","changes":[{"price":"0.5","side":"BUY","size":"1"}]}"#,
            r#"{"event_type":"tick_size_change","market":"0x1","price_changes":[]}"#,
            r#"{"event_type":"price_change","market":"0x1","price_changes":[{"price":"0.5"}]}"#,
        ] {
            assert_eq!(price_change_in_one_pass(odd), None, "{odd}");
        }
        assert_eq!(
            parse(r#"{"event_type":"price_change","asset_id":"1","market":"0x1","changes":[]}"#),
            Err(ParseError::Legacy)
        );
    }

    #[test]
    fn book_fixture_parses_with_leading_dot_prices() {
        let PolyMessage::Book(b) = one("ws_book.json") else {
            panic!()
        };
        assert_eq!(b.bids.len(), 3);
        assert_eq!(b.bids[0].price, ".48");
        assert_eq!(b.asks[2].size, "10");
        assert_eq!(b.timestamp, "123456789000");
    }

    #[test]
    fn current_price_change_has_per_entry_asset_ids() {
        let PolyMessage::PriceChange(p) = one("ws_price_change.json") else {
            panic!()
        };
        assert_eq!(p.price_changes.len(), 2);
        assert_ne!(p.price_changes[0].asset_id, p.price_changes[1].asset_id);
        assert_eq!(p.price_changes[1].side, WireSide::Sell);
        assert_eq!(p.price_changes[0].best_ask.as_deref(), Some("1"));
        assert_eq!(
            p.price_changes[0].hash.as_deref(),
            Some("56621a121a47ed9333273e21c83b660cff37ae50")
        );
    }

    #[test]
    fn legacy_price_change_is_refused() {
        assert_eq!(
            parse(&fixture("ws_price_change_legacy.json")),
            Err(ParseError::Legacy)
        );
    }

    #[test]
    fn other_market_events_parse() {
        let PolyMessage::TickSizeChange(t) = one("ws_tick_size_change.json") else {
            panic!()
        };
        assert_eq!(t.new_tick_size, "0.001");
        let PolyMessage::LastTradePrice(l) = one("ws_last_trade_price.json") else {
            panic!()
        };
        assert_eq!(l.size, "219.217767");
        assert!(matches!(
            one("ws_best_bid_ask.json"),
            PolyMessage::BestBidAsk(_)
        ));
        let PolyMessage::NewMarket(n) = one("ws_new_market.json") else {
            panic!()
        };
        assert_eq!(n.outcomes, ["Yes", "No"]);
        let PolyMessage::MarketResolved(r) = one("ws_market_resolved.json") else {
            panic!()
        };
        assert_eq!(r.winning_outcome, "Yes");
    }

    #[test]
    fn user_events_parse_with_trade_status() {
        let PolyMessage::Trade(t) = one("ws_user_trade.json") else {
            panic!()
        };
        assert_eq!(t.status, TradeStatus::Matched);
        assert!(!t.status.is_final());
        assert_eq!(t.maker_orders[0].matched_amount, "10");
        let PolyMessage::Order(o) = one("ws_user_order.json") else {
            panic!()
        };
        assert_eq!(o.kind, OrderEventType::Placement);
        assert_eq!(o.side, WireSide::Sell);
        for (s, want) in [
            ("MINED", TradeStatus::Mined),
            ("CONFIRMED", TradeStatus::Confirmed),
            ("RETRYING", TradeStatus::Retrying),
            ("FAILED", TradeStatus::Failed),
            (
                "MATCHED_NOT_BROADCASTED",
                TradeStatus::MatchedNotBroadcasted,
            ),
            ("SOMETHING_NEW", TradeStatus::Unknown),
        ] {
            let got: TradeStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(got, want);
        }
        assert!(TradeStatus::Failed.is_final());
    }

    #[test]
    fn arrays_of_events_and_pong() {
        let frame = format!(
            "[{}, {}]",
            fixture("ws_book.json"),
            fixture("ws_tick_size_change.json")
        );
        let v = parse(&frame).unwrap();
        assert!(matches!(v[0], PolyMessage::Book(_)));
        assert!(matches!(v[1], PolyMessage::TickSizeChange(_)));
        assert_eq!(parse("[]").unwrap(), vec![]);
        assert_eq!(parse("PONG").unwrap(), vec![PolyMessage::Pong]);
    }

    #[test]
    fn unknown_and_malformed_are_told_apart() {
        assert_eq!(
            parse(r#"{"event_type":"brand_new"}"#),
            Err(ParseError::Unknown {
                event_type: "brand_new".into()
            })
        );
        assert!(matches!(parse("{"), Err(ParseError::Malformed { .. })));
        assert!(matches!(parse("42"), Err(ParseError::Malformed { .. })));
        assert!(matches!(
            parse(r#"{"event_type":"book"}"#),
            Err(ParseError::Malformed { .. })
        ));
        assert!(matches!(
            parse(r#"{"no_type":1}"#),
            Err(ParseError::Malformed { .. })
        ));
        // parse_each keeps the good events of a mixed frame.
        let frame = format!(
            r#"[{}, {{"event_type":"brand_new"}}]"#,
            fixture("ws_book.json")
        );
        assert!(parse(&frame).is_err());
        let each = parse_each(&frame).unwrap();
        assert!(matches!(each[0], Ok(PolyMessage::Book(_))));
        assert!(matches!(each[1], Err(ParseError::Unknown { .. })));
    }

    #[test]
    fn subscribe_frames() {
        let t = TokenId::new("123").unwrap();
        let v: Value =
            serde_json::from_str(&MarketSubscribe::new(std::slice::from_ref(&t)).to_json())
                .unwrap();
        assert_eq!(v["assets_ids"], serde_json::json!(["123"]));
        assert_eq!(v["type"], "market");
        assert_eq!(v["custom_feature_enabled"], true);
        let v: Value = serde_json::from_str(
            &MarketSubscriptionChange::new(SubscriptionOp::Unsubscribe, &[t]).to_json(),
        )
        .unwrap();
        assert_eq!(v["operation"], "unsubscribe");
        let creds = ApiCreds::new("k", Secret::new("s"), Secret::new("p"));
        let v: Value =
            serde_json::from_str(&user_subscribe_json(&creds, &["0xabc".to_string()])).unwrap();
        let want: Value = serde_json::from_str(
            r#"{"auth":{"apiKey":"k","secret":"s","passphrase":"p"},"markets":["0xabc"],"type":"user"}"#,
        )
        .unwrap();
        assert_eq!(v, want);
        // The documented shapes parse as JSON (fixtures kept verbatim).
        let _: Value = serde_json::from_str(&fixture("ws_subscribe_market.json")).unwrap();
        let _: Value = serde_json::from_str(&fixture("ws_subscribe_user.json")).unwrap();
    }

    #[test]
    fn rest_book_and_market_metadata() {
        let b: BookResponse = serde_json::from_str(&fixture("rest_book.json")).unwrap();
        assert_eq!(b.bids.len(), 3);
        assert_eq!(b.neg_risk, Some(false));
        assert_eq!(b.tick_size.as_deref(), Some("0.01"));

        let g: GammaMarket = serde_json::from_str(&fixture("gamma_market.json")).unwrap();
        let tokens = g.outcome_tokens().unwrap();
        assert!(tokens.yes.as_str().starts_with("71321045"));
        assert!(tokens.no.as_str().starts_with("52114319"));
        assert_eq!(g.order_price_min_tick_size, Some(Decimal::new(1, 2)));
        assert_eq!(g.order_min_size, Some(Decimal::from(5)));
        assert_eq!(g.neg_risk, Some(false));

        let c: ClobMarket = serde_json::from_str(&fixture("clob_market.json")).unwrap();
        assert_eq!(c.mts, Some(Decimal::new(1, 2)));
        assert_eq!(c.mos, Some(Decimal::from(5)));
        assert!(!c.nr);
        assert_eq!(c.fd.as_ref().unwrap().r, Some(Decimal::new(4, 2)));
        // The doc abbreviates ids ("7132...2563"), which are not token ids.
        assert!(c.outcome_tokens().is_err());
    }

    #[test]
    fn gamma_tokens_follow_the_outcomes_order() {
        let g: GammaMarket = serde_json::from_str(
            r#"{"id":"1","conditionId":"0x1","outcomes":"[\"No\", \"Yes\"]","clobTokenIds":"[\"5\", \"7\"]"}"#,
        )
        .unwrap();
        let t = g.outcome_tokens().unwrap();
        assert_eq!((t.yes.as_str(), t.no.as_str()), ("7", "5"));
        let bad: GammaMarket = serde_json::from_str(
            r#"{"id":"1","conditionId":"0x1","outcomes":"[\"Up\", \"Down\"]","clobTokenIds":"[\"5\", \"7\"]"}"#,
        )
        .unwrap();
        assert!(bad.outcome_tokens().is_err());
    }

    #[test]
    fn order_responses() {
        let r: PostOrderResponse =
            serde_json::from_str(&fixture("rest_post_order_response.json")).unwrap();
        assert!(r.success);
        assert_eq!(r.status, Some(OrderStatus::Matched));
        assert_eq!(r.taking_amount.as_deref(), Some("50"));
        let r: PostOrderResponse =
            serde_json::from_str(r#"{"success":false,"error_msg":"boom","status":"live"}"#)
                .unwrap();
        assert_eq!(r.error_msg, "boom");
        assert_eq!(r.status, Some(OrderStatus::Live));
        let e: ErrorBody = serde_json::from_str(&fixture("rest_error_fok_killed.json")).unwrap();
        assert!(e.error.contains("FOK orders are fully filled or killed"));
        assert_eq!(e.order_id.as_deref(), Some("0x..."));
        let v: VersionResponse = serde_json::from_str("{}").unwrap();
        assert_eq!(v.version, 2);
    }

    const FIXTURES: &[&str] = &[
        "ws_book.json",
        "ws_price_change.json",
        "ws_price_change_legacy.json",
        "ws_tick_size_change.json",
        "ws_last_trade_price.json",
        "ws_best_bid_ask.json",
        "ws_new_market.json",
        "ws_market_resolved.json",
        "ws_user_trade.json",
        "ws_user_order.json",
    ];

    fn mutated_fixture() -> impl Strategy<Value = String> {
        (
            0..FIXTURES.len(),
            proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
        )
            .prop_map(|(i, edits)| {
                let mut bytes = fixture(FIXTURES[i]).into_bytes();
                for (pos, byte, op) in edits {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = pos % bytes.len();
                    match op {
                        0 => bytes[at] = byte,
                        1 => {
                            bytes.remove(at);
                        }
                        2 => bytes.insert(at, byte),
                        _ => bytes.truncate(at),
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
    }

    /// Swaps a JSON value in a fixture for another type, keeping it valid JSON.
    fn retyped_fixture() -> impl Strategy<Value = String> {
        let replacement = prop_oneof![
            Just(Value::Null),
            Just(serde_json::json!(1e308)),
            Just(serde_json::json!(-1)),
            Just(serde_json::json!([])),
            Just(serde_json::json!({})),
            Just(serde_json::json!("")),
            Just(serde_json::json!("-0.5")),
            Just(serde_json::json!("1e400")),
            Just(serde_json::json!(true)),
        ];
        (0..FIXTURES.len(), any::<usize>(), replacement).prop_map(|(i, pick, new)| {
            let mut v: Value = serde_json::from_str(&fixture(FIXTURES[i])).unwrap();
            if let Value::Object(map) = &mut v {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = &keys[pick % keys.len()];
                map.insert(key.clone(), new);
            }
            v.to_string()
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(s in any::<String>()) {
            let _ = parse(&s);
            let _ = parse_each(&s);
        }

        #[test]
        fn parse_never_panics_on_mutated_fixtures(s in mutated_fixture()) {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_retyped_fields(s in retyped_fixture()) {
            let _ = parse(&s);
            let _ = parse(&format!("[{s},{s}]"));
        }
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_crash() {
        let s = "[".repeat(100_000);
        assert!(matches!(parse(&s), Err(ParseError::Malformed { .. })));
    }
}

//! Kalshi wire types: WebSocket v2 commands and messages (PROTOCOLS.md §1.4) and
//! the REST bodies the adapter needs (§1.5, §1.6), named as Kalshi names them.
//!
//! Only the current fixed-point format is accepted (§0: integer counts and cents
//! were removed from every response on 2026-03-12). Fixed-point fields must be
//! JSON strings and are checked into the domain's exact money types here, so a
//! message either parses whole or not at all; [`parse`] never panics and tells a
//! legacy message, an unknown type and a malformed one apart. These types stay
//! inside `venues::kalshi`: `book` and `orders` turn them into domain values.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::domain::{Action, Outcome, Price, Size, SizeDelta, Usd};

// ---------------------------------------------------------------------------
// Fixed-point fields
// ---------------------------------------------------------------------------

/// Serde adapters for Kalshi's fixed-point strings (§1.3). Each accepts a JSON
/// string only: a number here is either a legacy integer field or a float, and
/// both must be refused rather than silently converted.
mod fixed {
    use super::*;
    use serde::de::Error;

    // Borrowed from the frame: no allocation for a number read once.
    pub(super) use crate::venues::wire::Text;
    use crate::venues::wire::text;

    pub fn price<'de, D: Deserializer<'de>>(d: D) -> Result<Price, D::Error> {
        Price::parse(&text(d)?).map_err(D::Error::custom)
    }
    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        Size::parse(&text(d)?).map_err(D::Error::custom)
    }
    pub fn size_delta<'de, D: Deserializer<'de>>(d: D) -> Result<SizeDelta, D::Error> {
        SizeDelta::parse(&text(d)?).map_err(D::Error::custom)
    }
    /// Any fixed-point dollars value, including 0 and 1 (market quotes, price ranges).
    pub fn dollars<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        Usd::parse(&text(d)?)
            .map(Usd::value)
            .map_err(D::Error::custom)
    }

    pub fn opt_price<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Price>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| Price::parse(&s).map_err(D::Error::custom))
            .transpose()
    }
    pub fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| Size::parse(&s).map_err(D::Error::custom))
            .transpose()
    }
    pub fn opt_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Usd>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| Usd::parse(&s).map_err(D::Error::custom))
            .transpose()
    }
    pub fn opt_dollars<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Ok(opt_usd(d)?.map(Usd::value))
    }
}

/// One book level, `[price_dollars, count_fp]` as two strings (§1.4, §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLevel {
    pub price: Price,
    pub count: Size,
}

impl<'de> Deserialize<'de> for WireLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let (fixed::Text(price), fixed::Text(count)) =
            <(fixed::Text, fixed::Text)>::deserialize(d)?;
        Ok(WireLevel {
            price: Price::parse(&price).map_err(D::Error::custom)?,
            count: Size::parse(&count).map_err(D::Error::custom)?,
        })
    }
}

// ---------------------------------------------------------------------------
// WebSocket commands (client -> server)
// ---------------------------------------------------------------------------

/// How the NO side of `orderbook_snapshot`/`orderbook_delta` is priced (§1.4
/// "NO-side price convention"). Kalshi's default is `NoLeg` but will flip to
/// `YesLeg` and the flag will then disappear, so the flag is always sent and the
/// book sync is told the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoSidePricing {
    /// `use_yes_price: false`: a NO level at 0.30 is a NO bid at 0.30.
    NoLeg,
    /// `use_yes_price: true`: that same NO bid arrives as 0.70 (its YES-leg price).
    /// Our default, because it is what Kalshi will converge on.
    #[default]
    YesLeg,
}

impl NoSidePricing {
    pub fn use_yes_price(self) -> bool {
        matches!(self, NoSidePricing::YesLeg)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    OrderbookDelta,
    Ticker,
    Trade,
    Fill,
    MarketPositions,
    MarketLifecycleV2,
    UserOrders,
    OrderGroupUpdates,
    Communications,
}

/// `{"id": n, "cmd": "...", "params": {...}}`; `id` is unique per session from 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    pub id: u64,
    #[serde(flatten)]
    pub body: CommandBody,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cmd", content = "params", rename_all = "snake_case")]
pub enum CommandBody {
    Subscribe(SubscribeParams),
    Unsubscribe(UnsubscribeParams),
    UpdateSubscription(UpdateSubscriptionParams),
    ListSubscriptions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscribeParams {
    pub channels: Vec<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market_tickers: Option<Vec<String>>,
    /// Orderbook only; always present on an orderbook subscription (§5 pitfall 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_yes_price: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnsubscribeParams {
    pub sids: Vec<u64>,
}

/// Exactly one sid per frame, as `sid` or a one-element `sids` (else error 12).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateSubscriptionParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sids: Option<Vec<u64>>,
    pub market_tickers: Vec<String>,
    pub action: UpdateAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateAction {
    AddMarkets,
    DeleteMarkets,
    /// Since 2026-04-20: fresh `orderbook_snapshot`s without changing the subscription.
    GetSnapshot,
}

impl Command {
    /// Order books of `market_tickers`, with the NO-side convention stated explicitly.
    pub fn subscribe_orderbook(
        id: u64,
        market_tickers: Vec<String>,
        pricing: NoSidePricing,
    ) -> Command {
        Command {
            id,
            body: CommandBody::Subscribe(SubscribeParams {
                channels: vec![Channel::OrderbookDelta],
                market_tickers: Some(market_tickers),
                use_yes_price: Some(pricing.use_yes_price()),
            }),
        }
    }

    /// Channels that take no market filter, e.g. `fill` and `user_orders`.
    pub fn subscribe_channels(id: u64, channels: Vec<Channel>) -> Command {
        Command {
            id,
            body: CommandBody::Subscribe(SubscribeParams {
                channels,
                market_tickers: None,
                use_yes_price: None,
            }),
        }
    }

    pub fn unsubscribe(id: u64, sids: Vec<u64>) -> Command {
        Command {
            id,
            body: CommandBody::Unsubscribe(UnsubscribeParams { sids }),
        }
    }

    pub fn add_markets(id: u64, sid: u64, market_tickers: Vec<String>) -> Command {
        Self::update(
            id,
            Some(sid),
            None,
            market_tickers,
            UpdateAction::AddMarkets,
        )
    }

    pub fn delete_markets(id: u64, sid: u64, market_tickers: Vec<String>) -> Command {
        Self::update(
            id,
            Some(sid),
            None,
            market_tickers,
            UpdateAction::DeleteMarkets,
        )
    }

    /// Fresh snapshots for some markets of `sid` (the form Kalshi's example uses).
    pub fn get_snapshot(id: u64, sid: u64, market_tickers: Vec<String>) -> Command {
        Self::update(
            id,
            None,
            Some(vec![sid]),
            market_tickers,
            UpdateAction::GetSnapshot,
        )
    }

    pub fn list_subscriptions(id: u64) -> Command {
        Command {
            id,
            body: CommandBody::ListSubscriptions,
        }
    }

    fn update(
        id: u64,
        sid: Option<u64>,
        sids: Option<Vec<u64>>,
        market_tickers: Vec<String>,
        action: UpdateAction,
    ) -> Command {
        Command {
            id,
            body: CommandBody::UpdateSubscription(UpdateSubscriptionParams {
                sid,
                sids,
                market_tickers,
                action,
            }),
        }
    }

    /// The text frame to send.
    pub fn to_json(&self) -> String {
        // Plain structs of strings, integers and enums: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// WebSocket messages (server -> client)
// ---------------------------------------------------------------------------

/// Every server message the adapter understands.
#[derive(Debug, Clone, PartialEq)]
pub enum KalshiMessage {
    Subscribed(Subscribed),
    Unsubscribed(Unsubscribed),
    Ok(OkResponse),
    Error(ErrorResponse),
    OrderbookSnapshot(OrderbookSnapshot),
    OrderbookDelta(OrderbookDelta),
    Fill(FillMessage),
}

/// `{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}`; one per channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subscribed {
    pub id: Option<u64>,
    pub msg: SubscribedMsg,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubscribedMsg {
    pub channel: String,
    pub sid: u64,
}

/// `{"id":3,"sid":1,"seq":7,"type":"unsubscribed"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unsubscribed {
    pub id: Option<u64>,
    pub sid: u64,
    pub seq: Option<u64>,
}

/// `ok` to `update_subscription` (carries the sid's `seq`) or `list_subscriptions`
/// (a list). `msg` varies by command, so it stays JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OkResponse {
    pub id: Option<u64>,
    pub sid: Option<u64>,
    pub seq: Option<u64>,
    #[serde(default)]
    pub msg: Value,
}

/// `{"id":123,"type":"error","msg":{"code":2,"msg":"Params required"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorResponse {
    pub id: Option<u64>,
    /// Not in the documented example; read if Kalshi adds it.
    pub sid: Option<u64>,
    pub msg: WsErrorMsg,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsErrorMsg {
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    pub market_ticker: Option<String>,
    pub market_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookSnapshot {
    pub sid: u64,
    pub seq: u64,
    pub msg: OrderbookSnapshotMsg,
}

/// Both arrays are **bids** (YES bids, NO bids); a side's key is absent when it is empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookSnapshotMsg {
    pub market_ticker: String,
    pub market_id: Option<String>,
    #[serde(default)]
    pub yes_dollars_fp: Vec<WireLevel>,
    /// Priced per the subscription's `use_yes_price` ([`NoSidePricing`]).
    #[serde(default)]
    pub no_dollars_fp: Vec<WireLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookDelta {
    pub sid: u64,
    pub seq: u64,
    pub msg: OrderbookDeltaMsg,
}

/// `delta_fp` is a signed change of the resting bid quantity at `price_dollars`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookDeltaMsg {
    pub market_ticker: String,
    pub market_id: String,
    #[serde(deserialize_with = "fixed::price")]
    pub price_dollars: Price,
    #[serde(deserialize_with = "fixed::size_delta")]
    pub delta_fp: SizeDelta,
    pub side: Outcome,
    /// Present only when our own order caused the change.
    pub client_order_id: Option<String>,
    pub subaccount: Option<u32>,
    /// Since 2026-04-15; the RFC3339 `ts` is deprecated and not read.
    pub ts_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FillMessage {
    pub sid: u64,
    pub seq: Option<u64>,
    pub msg: WsFill,
}

/// One of our fills (private `fill` channel).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsFill {
    pub trade_id: String,
    pub order_id: String,
    pub market_ticker: String,
    pub is_taker: bool,
    /// Deprecated since 2026-05-06 in favour of `outcome_side`.
    pub side: Option<Outcome>,
    #[serde(deserialize_with = "fixed::price")]
    pub yes_price_dollars: Price,
    #[serde(deserialize_with = "fixed::size")]
    pub count_fp: Size,
    /// Deprecated since 2026-05-06 in favour of `book_side`.
    pub action: Option<Action>,
    pub ts_ms: Option<u64>,
    /// Signed: positive YES, negative NO.
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub post_position_fp: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_usd")]
    pub fee_cost: Option<Usd>,
    pub outcome_side: Option<Outcome>,
    pub book_side: Option<BookSide>,
    pub client_order_id: Option<String>,
    pub subaccount: Option<u32>,
}

/// Why a text frame was not turned into a [`KalshiMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A pre-2026-03-12 message (integer cents/counts). Kalshi no longer sends
    /// these; seeing one means an old server or simulator, never data to trade on.
    #[error("legacy Kalshi {kind} message (field `{field}` was removed on 2026-03-12)")]
    Legacy { kind: String, field: String },
    /// A `type` this adapter does not handle (e.g. `ticker`).
    #[error("unhandled Kalshi message type '{0}'")]
    Unknown(String),
    #[error("malformed Kalshi message: {0}")]
    Malformed(String),
}

impl ParseError {
    /// The short name it is counted under in the feed's bad-message tally.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Legacy { .. } => "legacy",
            ParseError::Unknown(_) => "unknown",
            ParseError::Malformed(_) => "malformed",
        }
    }
}

/// Fields that only the legacy format had (§1.4 "LEGACY"); [`legacy_fields`]
/// picks those of each message type by index.
const LEGACY: &[&str] = &[
    "yes",
    "no",
    "yes_dollars",
    "no_dollars",
    "price",
    "delta",
    "yes_price",
    "no_price",
    "count",
    "post_position",
];

/// Indexes into [`LEGACY`] of the fields a message type's legacy form had.
fn legacy_fields(kind: &str) -> &'static [usize] {
    match kind {
        "orderbook_snapshot" => &[0, 1, 2, 3],
        "orderbook_delta" => &[4, 5],
        "fill" => &[6, 7, 8, 9],
        _ => &[],
    }
}

/// Parses one WebSocket text frame. Never panics.
///
/// The frame is probed for `type` and the legacy fields of `msg`, then parsed
/// straight into its message: no intermediate `Value` on the feed's hot path.
pub fn parse(text: &str) -> Result<KalshiMessage, ParseError> {
    if let Some(delta) = delta_in_one_pass(text) {
        return Ok(KalshiMessage::OrderbookDelta(delta));
    }
    let malformed = |e: serde_json::Error| ParseError::Malformed(e.to_string());
    let probe = super::super::wire::probe(text, "type", Some("msg"), LEGACY).map_err(|e| {
        // Values are skipped whatever they are, so a data error is the root's type.
        if e.is_data() {
            ParseError::Malformed("not a JSON object".into())
        } else {
            malformed(e)
        }
    })?;
    let kind = match probe.tag.clone() {
        Some(kind) => kind,
        None if probe.tag_not_text => {
            return Err(ParseError::Malformed("`type` is not a string".into()));
        }
        None => return Err(ParseError::Malformed("no `type`".into())),
    };
    if let Some(&field) = legacy_fields(&kind).iter().find(|&&i| probe.nested_has(i)) {
        return Err(ParseError::Legacy {
            kind: kind.into_owned(),
            field: LEGACY[field].to_string(),
        });
    }
    fn typed<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ParseError> {
        serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))
    }
    Ok(match kind.as_ref() {
        "subscribed" => KalshiMessage::Subscribed(typed(text)?),
        "unsubscribed" => KalshiMessage::Unsubscribed(typed(text)?),
        "ok" => KalshiMessage::Ok(typed(text)?),
        "error" => KalshiMessage::Error(typed(text)?),
        "orderbook_snapshot" => KalshiMessage::OrderbookSnapshot(typed(text)?),
        "orderbook_delta" => KalshiMessage::OrderbookDelta(typed(text)?),
        "fill" => KalshiMessage::Fill(typed(text)?),
        _ => return Err(ParseError::Unknown(kind.into_owned())),
    })
}

/// Deltas are nearly every frame of the feed: one that is plainly a current
/// delta is parsed in one pass, without the probe. Anything else (another
/// type, a legacy field anywhere, a malformed frame) goes the probing way,
/// which names what is wrong; for a well-formed delta both give the same.
fn delta_in_one_pass(text: &str) -> Option<OrderbookDelta> {
    // Quotes inside a JSON string are escaped, so `"price"` matches only a key
    // (or a whole value, which just sends the frame the probing way).
    if !text.contains(r#""orderbook_delta""#)
        || text.contains(r#""price""#)
        || text.contains(r#""delta""#)
    {
        return None;
    }
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
        sid: u64,
        seq: u64,
        msg: OrderbookDeltaMsg,
    }
    let f: Frame = serde_json::from_str(text).ok()?;
    (f.kind == "orderbook_delta").then_some(OrderbookDelta {
        sid: f.sid,
        seq: f.seq,
        msg: f.msg,
    })
}

// ---------------------------------------------------------------------------
// REST bodies
// ---------------------------------------------------------------------------

/// `GET /markets/{ticker}` -> `{"market": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarketResponse {
    pub market: Market,
}

/// `GET /markets` (cursor pagination).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarketsResponse {
    #[serde(default)]
    pub markets: Vec<Market>,
    pub cursor: Option<String>,
}

/// The fields of a Kalshi market this bot reads (§1.5). Quotes may be 0 or 1
/// (no bid / no ask), so they are plain decimals rather than [`Price`]s.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Market {
    pub ticker: String,
    #[serde(default)]
    pub event_ticker: String,
    pub market_type: Option<String>,
    pub yes_sub_title: Option<String>,
    pub no_sub_title: Option<String>,
    pub status: MarketStatus,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub yes_bid_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub yes_ask_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub no_bid_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub no_ask_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub last_price_dollars: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_size")]
    pub yes_bid_size_fp: Option<Size>,
    #[serde(default, deserialize_with = "fixed::opt_size")]
    pub yes_ask_size_fp: Option<Size>,
    #[serde(default, deserialize_with = "fixed::opt_size")]
    pub volume_fp: Option<Size>,
    #[serde(default, deserialize_with = "fixed::opt_size")]
    pub open_interest_fp: Option<Size>,
    pub open_time: Option<String>,
    pub close_time: Option<String>,
    pub expected_expiration_time: Option<String>,
    pub latest_expiration_time: Option<String>,
    /// Resolution rules, kept with the pair for the operator (§5 pitfall 11).
    #[serde(default)]
    pub rules_primary: String,
    #[serde(default)]
    pub rules_secondary: String,
    pub strike_type: Option<String>,
    pub price_level_structure: Option<String>,
    /// The only source of truth for valid prices (§1.3).
    #[serde(default)]
    pub price_ranges: Vec<PriceRange>,
    /// Shard (§1.9); orders may pass it instead of auto-routing with -1.
    pub exchange_index: Option<i32>,
    pub result: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketStatus {
    Initialized,
    Active,
    Inactive,
    Closed,
    Determined,
    Disputed,
    Amended,
    Finalized,
    #[serde(other)]
    Unknown,
}

/// `{start, end, step}` in fixed-point dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PriceRange {
    #[serde(deserialize_with = "fixed::dollars")]
    pub start: Decimal,
    #[serde(deserialize_with = "fixed::dollars")]
    pub end: Decimal,
    #[serde(deserialize_with = "fixed::dollars")]
    pub step: Decimal,
}

/// `GET /markets/{ticker}/orderbook`: bids only, ascending (best bid last); NO
/// prices are NO-leg prices (REST has no `use_yes_price`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookResponse {
    pub orderbook_fp: OrderbookFp,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderbookFp {
    #[serde(default)]
    pub yes_dollars: Vec<WireLevel>,
    #[serde(default)]
    pub no_dollars: Vec<WireLevel>,
}

/// `GET /portfolio/balance`. `balance` (integer cents) still exists beside
/// `balance_dollars` (since 2026-05-28, §1.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceResponse {
    pub balance: Option<i64>,
    #[serde(default, deserialize_with = "fixed::opt_usd")]
    pub balance_dollars: Option<Usd>,
    pub portfolio_value: Option<i64>,
    pub updated_ts: Option<i64>,
}

impl BalanceResponse {
    /// Cash available, preferring the fixed-point field.
    pub fn available(&self) -> Option<Usd> {
        self.balance_dollars
            .or_else(|| self.balance.map(|c| Usd::new(Decimal::new(c, 2))))
    }
}

/// A series' `fee_type` (§1.5, §1.8). Unknown values are kept, not guessed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesFeeType {
    Quadratic,
    QuadraticWithMakerFees,
    Flat,
    #[serde(untagged)]
    Other(String),
}

impl SeriesFeeType {
    /// The domain fee model for this type and multiplier. `None` for fee types
    /// the domain does not model (`flat`, unknown): do not trade on a guess.
    pub fn fees(&self, multiplier: Decimal) -> Option<crate::domain::KalshiFees> {
        use crate::domain::{KalshiFeeType, KalshiFees};
        let fee_type = match self {
            SeriesFeeType::Quadratic => KalshiFeeType::Quadratic,
            SeriesFeeType::QuadraticWithMakerFees => KalshiFeeType::QuadraticWithMakerFees,
            SeriesFeeType::Flat | SeriesFeeType::Other(_) => return None,
        };
        Some(KalshiFees {
            multiplier,
            fee_type,
            ..KalshiFees::default()
        })
    }
}

/// A number Kalshi may send as a JSON number (`fee_multiplier: 0.5`, a float in
/// its SDKs) or a string, read through its shortest text — never as a float.
fn lenient_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    use serde::de::Error;
    let text = match Value::deserialize(d)? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        _ => return Err(D::Error::custom("expected a number")),
    };
    text.trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(D::Error::custom)
}

/// `GET /series/{series_ticker}` -> `{"series": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeriesResponse {
    pub series: Series,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Series {
    pub ticker: String,
    #[serde(default)]
    pub title: String,
    pub fee_type: SeriesFeeType,
    #[serde(deserialize_with = "lenient_decimal")]
    pub fee_multiplier: Decimal,
    #[serde(default)]
    pub settlement_sources: Vec<Value>,
}

/// `GET /series/fee_changes` -> `{"series_fee_change_arr": [...]}`. The API
/// reference's example spells the keys in PascalCase, the SDK models in
/// snake_case: both are read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeriesFeeChangesResponse {
    #[serde(default)]
    pub series_fee_change_arr: Vec<SeriesFeeChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeriesFeeChange {
    #[serde(alias = "ID")]
    pub id: String,
    #[serde(alias = "SeriesTicker")]
    pub series_ticker: String,
    #[serde(alias = "FeeType")]
    pub fee_type: SeriesFeeType,
    #[serde(alias = "FeeMultiplier", deserialize_with = "lenient_decimal")]
    pub fee_multiplier: Decimal,
    /// RFC 3339, when the change takes effect.
    #[serde(alias = "ScheduledTs")]
    pub scheduled_ts: String,
}

/// One order (`GET /portfolio/orders`, `GET /portfolio/orders/{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WireOrder {
    pub order_id: String,
    #[serde(default)]
    pub client_order_id: Option<String>,
    pub ticker: String,
    pub status: OrderStatus,
    pub book_side: Option<BookSide>,
    #[serde(default, deserialize_with = "fixed::opt_price")]
    pub yes_price_dollars: Option<Price>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub initial_count_fp: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub fill_count_fp: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_dollars")]
    pub remaining_count_fp: Option<Decimal>,
    #[serde(default, deserialize_with = "fixed::opt_usd")]
    pub taker_fees_dollars: Option<Usd>,
    pub created_ts_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Resting,
    Canceled,
    Executed,
    #[serde(other)]
    Unknown,
}

/// V2 `BookSide`: the YES leg only. `bid` = buy YES, `ask` = sell YES (= buy NO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookSide {
    Bid,
    Ask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireTimeInForce {
    FillOrKill,
    GoodTillCanceled,
    ImmediateOrCancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    TakerAtCross,
    Maker,
}

/// `POST /portfolio/events/orders` body (`CreateOrderV2Request`, §1.6). `price`
/// is always the YES price; `count` and `price` are fixed-point strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateOrderV2Request {
    pub ticker: String,
    pub client_order_id: String,
    pub side: BookSide,
    pub count: String,
    pub price: String,
    pub time_in_force: WireTimeInForce,
    pub self_trade_prevention_type: SelfTradePrevention,
    /// Unix seconds; a good-till-canceled order with one is good till then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reduce_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subaccount: Option<u32>,
    /// -1 = auto-route by ticker (§1.9: adds latency; pass the market's shard when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<i32>,
}

/// `CreateOrderV2Response` (HTTP 201). No `status` field; the averages are
/// present only when `fill_count > 0`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreateOrderV2Response {
    pub order_id: String,
    pub client_order_id: Option<String>,
    #[serde(deserialize_with = "fixed::size")]
    pub fill_count: Size,
    #[serde(deserialize_with = "fixed::size")]
    pub remaining_count: Size,
    /// YES-leg price, like everything on the V2 endpoint.
    #[serde(default, deserialize_with = "fixed::opt_price")]
    pub average_fill_price: Option<Price>,
    /// Per contract, including Kalshi's rounding of the order's total fee.
    #[serde(default, deserialize_with = "fixed::opt_usd")]
    pub average_fee_paid: Option<Usd>,
    pub ts_ms: Option<u64>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    pub fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../tests/fixtures/kalshi/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn json(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn the_one_pass_delta_is_the_probed_delta_and_defers_anything_odd() {
        let text = fixture("ws_orderbook_delta.json");
        let fast = delta_in_one_pass(&text).expect("a current delta takes the one pass");
        let probed: OrderbookDelta = serde_json::from_str(&text).unwrap();
        assert_eq!(fast, probed);
        // Key order does not matter; a legacy field, another type or a
        // missing field leaves the frame to the probing path.
        let reordered = r#"{"msg":{"delta_fp":"-5.00","market_id":"m","market_ticker":"K","price_dollars":"0.44","side":"yes"},"seq":3,"sid":1,"type":"orderbook_delta"}"#;
        assert_eq!(delta_in_one_pass(reordered).unwrap().seq, 3);
        for odd in [
            r#"{"msg":{"delta_fp":"-5.00","market_id":"m","market_ticker":"K","price_dollars":"0.44","price":44,"side":"yes"},"seq":3,"sid":1,"type":"orderbook_delta"}"#,
            r#"{"msg":{"delta_fp":"-5.00","market_id":"m","market_ticker":"K","price_dollars":"0.44","side":"yes"},"seq":3,"sid":1,"type":"orderbook_snapshot"}"#,
            r#"{"msg":{"market_id":"m","market_ticker":"K","price_dollars":"0.44","side":"yes"},"seq":3,"sid":1,"type":"orderbook_delta"}"#,
            r#"{"msg":{"note":"\"type\":\"orderbook_delta\""},"type":"error","id":1}"#,
        ] {
            assert_eq!(delta_in_one_pass(odd), None, "{odd}");
        }
        assert!(matches!(
            parse(
                r#"{"msg":{"delta":5,"market_id":"m","market_ticker":"K","price":44,"side":"yes"},"seq":3,"sid":1,"type":"orderbook_delta"}"#
            ),
            Err(ParseError::Legacy { .. })
        ));
    }

    #[test]
    fn commands_serialise_exactly_like_the_documented_examples() {
        let tickers = vec![
            "KXFED-26MAY-T4.00".to_string(),
            "KXBTCD-26SEP3017-T60000".to_string(),
        ];
        let cases = [
            (
                Command::subscribe_orderbook(1, tickers, NoSidePricing::YesLeg),
                "ws_cmd_subscribe_orderbook.json",
            ),
            (
                Command::subscribe_channels(2, vec![Channel::Fill, Channel::UserOrders]),
                "ws_cmd_subscribe_private.json",
            ),
            (Command::unsubscribe(3, vec![1]), "ws_cmd_unsubscribe.json"),
            (
                Command::add_markets(4, 1, vec!["NEW-TICKER".into()]),
                "ws_cmd_add_markets.json",
            ),
            (
                Command::get_snapshot(5, 456, vec!["MARKET-1".into(), "MARKET-2".into()]),
                "ws_cmd_get_snapshot.json",
            ),
            (
                Command::list_subscriptions(6),
                "ws_cmd_list_subscriptions.json",
            ),
        ];
        for (cmd, file) in cases {
            assert_eq!(json(&cmd.to_json()), json(&fixture(file)), "{file}");
        }
    }

    #[test]
    fn orderbook_subscription_always_states_use_yes_price() {
        let off = Command::subscribe_orderbook(9, vec!["A".into()], NoSidePricing::NoLeg);
        assert_eq!(
            json(&off.to_json())["params"]["use_yes_price"],
            json("false")
        );
        assert_eq!(NoSidePricing::default(), NoSidePricing::YesLeg);
    }

    #[test]
    fn parses_control_responses() {
        assert_eq!(
            parse(&fixture("ws_subscribed.json")).unwrap(),
            KalshiMessage::Subscribed(Subscribed {
                id: Some(1),
                msg: SubscribedMsg {
                    channel: "orderbook_delta".into(),
                    sid: 1
                }
            })
        );
        assert_eq!(
            parse(&fixture("ws_unsubscribed.json")).unwrap(),
            KalshiMessage::Unsubscribed(Unsubscribed {
                id: Some(3),
                sid: 1,
                seq: Some(7)
            })
        );
        let KalshiMessage::Ok(ok) = parse(&fixture("ws_ok_update_subscription.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!((ok.sid, ok.seq), (Some(1), Some(8)));
        let KalshiMessage::Ok(list) = parse(&fixture("ws_ok_list_subscriptions.json")).unwrap()
        else {
            panic!()
        };
        assert!(list.msg.is_array());
        let KalshiMessage::Error(e) = parse(&fixture("ws_error.json")).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.id, e.msg.code, e.msg.msg.as_str()),
            (Some(123), 2, "Params required")
        );
    }

    #[test]
    fn parses_current_snapshot_as_exact_levels() {
        let KalshiMessage::OrderbookSnapshot(s) =
            parse(&fixture("ws_orderbook_snapshot.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!((s.sid, s.seq), (2, 2));
        assert_eq!(s.msg.market_ticker, "FED-23DEC-T3.00");
        assert_eq!(s.msg.yes_dollars_fp.len(), 2);
        assert_eq!(s.msg.yes_dollars_fp[1].price.value(), dec!(0.22));
        assert_eq!(s.msg.yes_dollars_fp[1].count.value(), dec!(333));
        assert_eq!(s.msg.no_dollars_fp[0].price.value(), dec!(0.54));
    }

    #[test]
    fn snapshot_side_absent_when_empty() {
        let text = r#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"T","market_id":"m"}}"#;
        let KalshiMessage::OrderbookSnapshot(s) = parse(text).unwrap() else {
            panic!()
        };
        assert!(s.msg.yes_dollars_fp.is_empty() && s.msg.no_dollars_fp.is_empty());
    }

    #[test]
    fn parses_current_delta_with_signed_change() {
        let KalshiMessage::OrderbookDelta(d) = parse(&fixture("ws_orderbook_delta.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!((d.sid, d.seq), (2, 3));
        assert_eq!(d.msg.price_dollars.value(), dec!(0.96));
        assert_eq!(d.msg.delta_fp.value(), dec!(-54));
        assert_eq!(d.msg.side, Outcome::Yes);
        assert_eq!(d.msg.ts_ms, Some(1669149841000));
    }

    #[test]
    fn legacy_snapshot_and_delta_are_refused_as_legacy() {
        for file in [
            "ws_orderbook_snapshot_legacy.json",
            "ws_orderbook_delta_legacy.json",
        ] {
            assert!(
                matches!(parse(&fixture(file)), Err(ParseError::Legacy { .. })),
                "{file}"
            );
        }
        let legacy_fill = r#"{"type":"fill","sid":1,"msg":{"yes_price":75,"count":2}}"#;
        assert!(matches!(
            parse(legacy_fill),
            Err(ParseError::Legacy { field, .. }) if field == "yes_price"
        ));
    }

    #[test]
    fn integer_or_float_where_a_fixed_point_string_belongs_is_malformed() {
        for bad in [
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"T","market_id":"m","price_dollars":0.96,"delta_fp":"-54.00","side":"yes"}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"T","market_id":"m","price_dollars":"0.96","delta_fp":-54,"side":"yes"}}"#,
            r#"{"type":"orderbook_snapshot","sid":2,"seq":2,"msg":{"market_ticker":"T","yes_dollars_fp":[["0.08",300]]}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"T","market_id":"m","price_dollars":"1.00","delta_fp":"1","side":"yes"}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"T","market_id":"m","price_dollars":"0.5","delta_fp":"1","side":"maybe"}}"#,
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn unknown_type_and_garbage_are_told_apart() {
        assert_eq!(
            parse(&fixture("ws_ticker.json")),
            Err(ParseError::Unknown("ticker".into()))
        );
        for bad in ["", "null", "[]", "{}", r#"{"type":5}"#, "{\"type\":\"ok\""] {
            assert!(matches!(parse(bad), Err(ParseError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn parses_fill() {
        let KalshiMessage::Fill(f) = parse(&fixture("ws_fill.json")).unwrap() else {
            panic!()
        };
        assert_eq!(f.sid, 13);
        assert_eq!(f.msg.yes_price_dollars.value(), dec!(0.75));
        assert_eq!(f.msg.count_fp, Size::whole(278));
        assert_eq!(f.msg.post_position_fp, Some(dec!(500)));
        assert_eq!(f.msg.action, Some(Action::Buy));
        assert_eq!(f.msg.side, Some(Outcome::Yes));
        assert!(f.msg.is_taker);
    }

    #[test]
    fn parses_rest_orderbook_balance_and_order_response() {
        let ob: OrderbookResponse = serde_json::from_str(&fixture("rest_orderbook.json")).unwrap();
        assert_eq!(
            ob.orderbook_fp.yes_dollars.last().unwrap().price.value(),
            dec!(0.42)
        );
        assert_eq!(ob.orderbook_fp.no_dollars.len(), 3);

        let b: BalanceResponse = serde_json::from_str(
            r#"{"balance":12345,"balance_dollars":"123.4500","portfolio_value":0,"updated_ts":1}"#,
        )
        .unwrap();
        assert_eq!(b.available().unwrap().value(), dec!(123.45));
        let cents_only: BalanceResponse = serde_json::from_str(r#"{"balance":12345}"#).unwrap();
        assert_eq!(cents_only.available().unwrap().value(), dec!(123.45));

        let r: CreateOrderV2Response =
            serde_json::from_str(&fixture("rest_create_order_response.json")).unwrap();
        assert_eq!(r.fill_count, Size::whole(5));
        assert_eq!(r.average_fill_price.unwrap().value(), dec!(0.58));
        assert_eq!(r.average_fee_paid.unwrap().value(), dec!(0.0012));
        let unfilled: CreateOrderV2Response = serde_json::from_str(
            r#"{"order_id":"o","fill_count":"0.00","remaining_count":"10.00"}"#,
        )
        .unwrap();
        assert_eq!(unfilled.average_fill_price, None);
    }

    #[test]
    fn parses_market_with_rules_and_price_ranges() {
        let text = r#"{"market":{"ticker":"KXFED-26MAY-T4.00","event_ticker":"KXFED-26MAY","market_type":"binary",
            "status":"active","yes_bid_dollars":"0.4200","yes_ask_dollars":"0.4400","no_bid_dollars":"0.5600",
            "no_ask_dollars":"0.5800","last_price_dollars":"0.0000","yes_bid_size_fp":"13.00","volume_fp":"1000.00",
            "close_time":"2026-05-06T18:00:00Z","rules_primary":"If the upper bound is above 4.00%...",
            "rules_secondary":"Source: FOMC statement","price_level_structure":"linear_cent",
            "price_ranges":[{"start":"0.0100","end":"0.9900","step":"0.0100"}],"exchange_index":0,
            "some_new_field":{"x":1}}}"#;
        let m: MarketResponse = serde_json::from_str(text).unwrap();
        assert_eq!(m.market.status, MarketStatus::Active);
        assert_eq!(m.market.last_price_dollars, Some(dec!(0)));
        assert!(m.market.rules_primary.starts_with("If the upper bound"));
        assert_eq!(m.market.price_ranges[0].step, dec!(0.01));
        let odd: MarketResponse =
            serde_json::from_str(r#"{"market":{"ticker":"X","status":"brand_new_state"}}"#)
                .unwrap();
        assert_eq!(odd.market.status, MarketStatus::Unknown);
    }

    mod fuzz {
        use super::*;
        use crate::domain::PairId;
        use crate::venues::kalshi::book::KalshiBookSync;
        use proptest::prelude::*;
        use std::collections::HashMap;

        const FIXTURES: &[&str] = &[
            "ws_subscribed.json",
            "ws_unsubscribed.json",
            "ws_ok_update_subscription.json",
            "ws_ok_list_subscriptions.json",
            "ws_error.json",
            "ws_orderbook_snapshot.json",
            "ws_orderbook_delta.json",
            "ws_orderbook_snapshot_legacy.json",
            "ws_orderbook_delta_legacy.json",
            "ws_fill.json",
            "ws_ticker.json",
        ];

        /// Keys worth inserting: the ones parse looks at, legacy ones, junk.
        const KEYS: &[&str] = &[
            "type",
            "sid",
            "seq",
            "id",
            "msg",
            "code",
            "market_ticker",
            "price_dollars",
            "delta_fp",
            "side",
            "yes_dollars_fp",
            "no_dollars_fp",
            "yes",
            "no",
            "price",
            "delta",
            "count",
            "yes_price",
            "fill_count",
            "channel",
            "zzz",
        ];

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                // Decimals written as JSON numbers, as a legacy or buggy sender would.
                (any::<i32>(), 0u32..1_000_000)
                    .prop_map(
                        |(a, b)| serde_json::from_str(&format!("{a}.{b}")).unwrap_or(Value::Null)
                    ),
                "[-+0-9.e]{0,14}".prop_map(Value::from),
                "\\PC{0,10}".prop_map(Value::from),
                prop::sample::select(vec![
                    "0",
                    "0.0000",
                    "1.0000",
                    "-0.5",
                    "0.1234567",
                    "1e5",
                    "NaN",
                    "yes",
                    "no",
                    "orderbook_delta",
                    "orderbook_snapshot",
                    "fill",
                    "error",
                    "ok",
                    "79228162514264337593543950336",
                    "-79228162514264337593543950336.5",
                ])
                .prop_map(Value::from),
                Just(serde_json::json!([["0.5", "1.00"]])),
                Just(serde_json::json!([["0.5"]])),
                Just(serde_json::json!([[]])),
                Just(serde_json::json!({})),
            ]
        }

        #[derive(Debug, Clone)]
        enum Mutation {
            Replace(Vec<usize>, Value),
            Remove(Vec<usize>),
            Insert(Vec<usize>, usize, Value),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            let path = prop::collection::vec(any::<usize>(), 0..5);
            prop_oneof![
                (path.clone(), leaf()).prop_map(|(p, v)| Mutation::Replace(p, v)),
                path.clone().prop_map(Mutation::Remove),
                (path, any::<usize>(), leaf()).prop_map(|(p, k, v)| Mutation::Insert(p, k, v)),
            ]
        }

        /// Walks `path` (indices modulo each container's size) and returns the
        /// container holding the target and the target's key/index.
        fn walk<'a>(v: &'a mut Value, path: &[usize]) -> Option<(&'a mut Value, usize)> {
            let (&first, rest) = path.split_first()?;
            let len = match v {
                Value::Object(m) => m.len(),
                Value::Array(a) => a.len(),
                _ => 0,
            };
            if len == 0 {
                return None;
            }
            let i = first % len;
            let descend = match v {
                Value::Object(m) => m
                    .values()
                    .nth(i)
                    .is_some_and(|c| c.is_object() || c.is_array()),
                Value::Array(a) => a[i].is_object() || a[i].is_array(),
                _ => false,
            };
            if rest.is_empty() || !descend {
                return Some((v, i));
            }
            let child = match v {
                Value::Object(m) => m.values_mut().nth(i)?,
                Value::Array(a) => &mut a[i],
                _ => return None,
            };
            walk(child, rest)
        }

        fn mutate(v: &mut Value, m: &Mutation) {
            match m {
                Mutation::Replace(p, new) => {
                    if let Some((c, i)) = walk(v, p) {
                        match c {
                            Value::Object(o) => {
                                if let Some(slot) = o.values_mut().nth(i) {
                                    *slot = new.clone();
                                }
                            }
                            Value::Array(a) => a[i] = new.clone(),
                            _ => {}
                        }
                    }
                }
                Mutation::Remove(p) => {
                    if let Some((c, i)) = walk(v, p) {
                        match c {
                            Value::Object(o) => {
                                if let Some(k) = o.keys().nth(i).cloned() {
                                    o.remove(&k);
                                }
                            }
                            Value::Array(a) => {
                                a.remove(i);
                            }
                            _ => {}
                        }
                    }
                }
                Mutation::Insert(p, k, new) => {
                    let target = match walk(v, p) {
                        Some((c, _)) => c,
                        None => v,
                    };
                    if let Value::Object(o) = target {
                        o.insert(KEYS[k % KEYS.len()].to_string(), new.clone());
                    }
                }
            }
        }

        fn feed(text: &str, sync: &mut KalshiBookSync) {
            // Whatever parses must also be safe to feed to the book state machine.
            if let Ok(msg) = parse(text) {
                let _ = sync.on_message(&msg, 0);
            }
        }

        fn sync() -> KalshiBookSync {
            KalshiBookSync::new(
                HashMap::from([("FED-23DEC-T3.00".to_string(), PairId("p".into()))]),
                NoSidePricing::YesLeg,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn parse_never_panics_on_arbitrary_text(text in "\\PC*") {
                let _ = parse(&text);
            }

            #[test]
            fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn parse_never_panics_on_mutated_fixtures(
                file in prop::sample::select(FIXTURES),
                muts in prop::collection::vec(mutation(), 1..6),
                cut in any::<prop::sample::Index>(),
            ) {
                let mut v: Value = serde_json::from_str(&fixture(file)).unwrap();
                for m in &muts {
                    mutate(&mut v, m);
                }
                let text = v.to_string();
                let mut s = sync();
                feed(&fixture("ws_orderbook_snapshot.json"), &mut s);
                feed(&text, &mut s);
                // And every prefix-truncation of it.
                let mut at = cut.index(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                prop_assert!(parse(&text[..at]).is_err() || at == text.len());
            }
        }

        #[test]
        fn deep_nesting_is_an_error_not_a_stack_overflow() {
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            assert!(matches!(parse(&deep), Err(ParseError::Malformed(_))));
            let deep_msg = format!(
                r#"{{"type":"ok","msg":{}{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            );
            assert!(matches!(parse(&deep_msg), Err(ParseError::Malformed(_))));
        }
    }
}

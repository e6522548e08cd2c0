//! Domain events: what happened, in domain terms. Adapters produce the book and
//! feed events, the strategy produces opportunities, the executor the rest.

use serde::Serialize;

use super::book::{Level, Side};
use super::market::{Outcome, PairId, UnixMicros, Venue};
use super::money::{Price, Size, SizeDelta};
use super::trade::{Opportunity, Order, Trade};

/// A full book for one outcome of one market on one venue.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBookSnapshotReceived {
    pub pair: PairId,
    pub venue: Venue,
    pub outcome: Outcome,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub received_at: UnixMicros,
}

/// How a single level changed, in each venue's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelChange {
    /// Kalshi: add this signed amount to the level.
    Delta(SizeDelta),
    /// Polymarket: the level's new absolute size (0 removes it).
    Absolute(Size),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBookDeltaReceived {
    pub pair: PairId,
    pub venue: Venue,
    pub outcome: Outcome,
    pub side: Side,
    pub price: Price,
    pub change: LevelChange,
    pub received_at: UnixMicros,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArbitrageOpportunityFound {
    pub opportunity: Opportunity,
}

/// The risk gate approved an opportunity: place both legs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecuteTrade {
    pub trade_id: String,
    pub opportunity: Opportunity,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeExecuted {
    pub trade: Trade,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegFailed {
    pub trade_id: String,
    pub order: Order,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedStatus {
    Connecting,
    Connected,
    /// Books cannot be trusted (sequence gap, silence); no trading on them.
    Stale,
    Reconnecting,
    Disconnected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedStatusChanged {
    pub venue: Venue,
    pub status: FeedStatus,
    pub detail: String,
    pub at: UnixMicros,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum PluginStatus {
    Loaded,
    Reloaded,
    /// A new file was refused; the previous version (if any) keeps running.
    Rejected(String),
    Faulted(String),
    Quarantined(String),
    Disabled,
    Unloaded,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginStatusChanged {
    pub plugin: String,
    pub status: PluginStatus,
    pub at: UnixMicros,
}

//! The pure trading domain: money, books, markets, fees, opportunities and events.
//!
//! No I/O, no tokio, no wire formats. Adapters translate into these types; the
//! strategy, risk gate and executor reason only in them.

pub mod book;
pub mod events;
pub mod fees;
pub mod market;
pub mod money;
pub mod trade;

pub use book::{BookError, Fillable, Level, OrderBook, Side};
pub use fees::{KalshiFeeType, KalshiFees, PairFees, PolymarketFees};
pub use market::{
    MarketOutcomes, MarketPair, MarketState, Outcome, PairId, TokenId, UnixMicros, Venue,
};
pub use money::{MoneyError, Price, Size, SizeDelta, Usd};
pub use trade::{Action, Fill, Leg, LegStatus, Opportunity, Order, TimeInForce, Trade};

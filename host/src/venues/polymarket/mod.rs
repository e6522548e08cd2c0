//! Polymarket CLOB adapter (PROTOCOLS.md §2): the pure, network-free core.
//!
//! `messages` mirrors the wire exactly (market and user WebSocket channels, REST
//! bodies); `book` translates market-channel messages and REST books into domain
//! book events; `auth` builds L1 (EIP-712 `ClobAuth`) and L2 (HMAC) headers;
//! `orders` turns a domain order into a signed CLOB V2/V3 order and its
//! `POST /order` body; `errors` classifies the venue's documented failures;
//! `user` follows our orders and trades (to `CONFIRMED` or `FAILED`) on the
//! authenticated user channel.
//! Sockets and HTTP live elsewhere and only move strings in and out of these
//! modules, so everything here is tested against the PROTOCOLS.md §3 vectors.

pub mod auth;
pub mod book;
pub mod errors;
pub mod messages;
pub mod orders;
pub mod presign;
pub mod rest;
pub mod user;
pub mod ws;

pub use auth::{ApiCreds, AuthError, L1Headers, L2Headers, PolySigner, VerifiedL2};
pub use book::{BookEvent, PolymarketBooks, book_hash};
pub use errors::PolymarketError;
pub use messages::{ParseError, PolyMessage, TradeStatus, parse, parse_each};
pub use orders::{
    ExchangeDomain, ExchangeOrder, ExchangeVersion, OrderArgs, OrderBuilder, OrderError, OrderSide,
    OrderType, SignatureType, SignedOrder, TickSize,
};
pub use user::{PolyOrderUpdate, PolyTrade, UserEvent, UserFeedConfig, run_user_feed};

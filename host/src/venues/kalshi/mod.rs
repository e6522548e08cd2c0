//! Kalshi Trade API v2 adapter (PROTOCOLS.md §1): the pure, network-free core.
//!
//! `messages` mirrors the current (post-2026-03-12, fixed-point) wire exactly:
//! WebSocket v2 commands and messages and the REST bodies; `book` turns
//! orderbook messages into domain book events and tracks `seq` per subscription;
//! `auth` signs requests and the WebSocket handshake (RSA-PSS); `orders` maps a
//! domain order to the V2 create-order body (everything quoted on the YES leg)
//! and its response back; `fills` turns private `fill` messages into domain
//! fills; `errors` classifies the venue's documented failures.
//! Sockets and HTTP live elsewhere and only move strings in and out of these
//! modules, so all of it is tested against the PROTOCOLS.md §1 and §3.7 samples.

pub mod auth;
pub mod book;
pub mod errors;
pub mod fills;
pub mod messages;
pub mod orders;
pub mod presign;
pub mod rest;
pub mod ws;

pub use auth::{AuthError, AuthHeaders, KalshiSigner, KalshiVerifier};
pub use book::{BookAction, BookEvent, BookStep, KalshiBookSync, ResyncReason};
pub use errors::{KalshiError, WsErrorCode};
pub use fills::{KalshiFillEvent, fill_event};
pub use messages::{Command, KalshiMessage, NoSidePricing, ParseError, parse};
pub use orders::{FillStatus, KalshiOrderResult, OrderError, create_order_request, order_result};

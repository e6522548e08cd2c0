//! The trade store: every opportunity decision, trade intent, order, fill,
//! position and P&L, durable across restarts and crashes.
//!
//! One [`TradeRepository`] trait, two implementations sharing the same SQL:
//! SQLite (the embedded default: one file, WAL) and PostgreSQL (production;
//! Supabase is PostgreSQL). Money is stored as exact decimal text and summed
//! by the host, never by the database's floating point.
//!
//! Crash safety rests on one rule: a trade's intent and its planned orders
//! are written **before** any order leaves the host: to the local intent
//! journal ([`journal`]), which the store catches up from at start-up, or,
//! with no journal, to the store itself. An intent still open at start-up is
//! reconciled with the venues ([`reconcile`]).
//!
//! Several hosts can share one PostgreSQL store, each owning a disjoint set of
//! market pairs: every row carries its host's id and a host claims its pairs
//! with a lease it keeps renewing ([`TradeRepository::claim_pairs`]).

pub mod decisions;
pub mod journal;
pub mod lease;
mod migrations;
pub mod reconcile;
mod sql;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::domain::{Fill, Opportunity, Order, PairId, Size, UnixMicros, Usd};
use crate::execution::{Position, TradeRecord};

pub use migrations::SCHEMA_VERSION;
pub use sql::{PostgresRepository, SqliteRepository};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed (the message never carries the URL).
    #[error("trade store: {0}")]
    Database(String),
    #[error("trade store: unreadable row: {0}")]
    Corrupt(String),
    /// The local intent journal could not be read or emptied.
    #[error("intent journal: {0}")]
    Journal(String),
    #[error(
        "trade store: its schema is version {found}, newer than this binary's {known}; upgrade the host"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("DATABASE_URL must start with sqlite: or postgres:// (or postgresql://)")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx's messages name tables and constraints, never the connection URL.
        StoreError::Database(e.to_string())
    }
}

/// Where an order stands, as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Written, not yet sent (or sent and the host died before the answer).
    Planned,
    /// The request went out; no answer yet.
    Sent,
    Filled,
    PartiallyFilled,
    /// Refused or killed without a fill.
    Rejected,
    /// Never sent: the trade was refused or dry run.
    NotSent,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Planned => "planned",
            OrderStatus::Sent => "sent",
            OrderStatus::Filled => "filled",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Rejected => "rejected",
            OrderStatus::NotSent => "not_sent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => OrderStatus::Planned,
            "sent" => OrderStatus::Sent,
            "filled" => OrderStatus::Filled,
            "partially_filled" => OrderStatus::PartiallyFilled,
            "rejected" => OrderStatus::Rejected,
            "not_sent" => OrderStatus::NotSent,
            _ => return None,
        })
    }

    /// Whether the venue might still hold or fill it (what reconciliation asks about).
    pub fn unresolved(self) -> bool {
        matches!(self, OrderStatus::Planned | OrderStatus::Sent)
    }
}

/// What the executor writes before the first order leaves: the trade and
/// every order it plans to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeIntent {
    pub trade_id: String,
    pub opportunity: Opportunity,
    pub orders: Vec<Order>,
    pub created_at: UnixMicros,
}

impl TradeIntent {
    /// The risk gate's approval of this trade, as the decision history keeps
    /// it. Booked beside the intent, not in it: nothing at start-up needs it,
    /// so it is written after the orders leave.
    pub fn approval(&self) -> OpportunityRecord {
        OpportunityRecord {
            pair: self.opportunity.pair.clone(),
            found_by: self.opportunity.found_by.clone(),
            approved: true,
            reason: None,
            message: None,
            trade_id: Some(self.trade_id.clone()),
            opportunity: Some(self.opportunity.clone()),
            at: self.created_at,
        }
    }
}

/// An order with what the store knows of its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub trade_id: String,
    pub order: Order,
    pub status: OrderStatus,
    pub venue_order_id: Option<String>,
    pub error: Option<String>,
}

/// A trade whose outcome was never written: the host stopped in the middle.
#[derive(Debug, Clone)]
pub struct OpenTrade {
    pub trade_id: String,
    pub opportunity: Opportunity,
    pub orders: Vec<StoredOrder>,
    pub fills: Vec<Fill>,
    pub created_at: UnixMicros,
}

/// What the risk gate decided about an opportunity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpportunityRecord {
    pub pair: PairId,
    pub found_by: String,
    pub approved: bool,
    /// The refusal reason code (`stale_book`, `paused`, ...).
    pub reason: Option<String>,
    /// The refusal in words.
    pub message: Option<String>,
    pub trade_id: Option<String>,
    /// The priced opportunity, when the decision carried it.
    pub opportunity: Option<Opportunity>,
    pub at: UnixMicros,
}

/// What a host booked, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Finished trades by outcome (`hedged`, `unwound`, `not_filled`, `refused`, `dry_run`).
    pub trades: std::collections::BTreeMap<String, u64>,
    /// Fills by venue (`kalshi`, `polymarket`).
    pub fills: std::collections::BTreeMap<String, u64>,
    /// Fees paid on every fill.
    pub fees: Usd,
    /// P&L of every finished trade.
    pub pnl: Usd,
}

/// Who holds a market pair after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairClaim {
    pub pair: PairId,
    /// The host whose lease is live (ours when the claim succeeded).
    pub owner: String,
}

/// The durable record of everything the host traded.
///
/// Every method is one transaction; a failure leaves the store as it was.
pub trait TradeRepository: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Takes (or renews) the lease on `pairs` for `host`: a pair whose lease
    /// another host renewed within `lease` stays theirs.
    fn claim_pairs<'a>(
        &'a self,
        host: &'a str,
        pairs: &'a [PairId],
        now: UnixMicros,
        lease: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<PairClaim>>>;

    /// Gives up every lease `host` holds (clean shutdown).
    fn release_pairs<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<()>>;

    fn record_opportunity<'a>(
        &'a self,
        host: &'a str,
        record: &'a OpportunityRecord,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Newest first.
    fn opportunities<'a>(
        &'a self,
        host: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<OpportunityRecord>>>;

    /// The trade and its planned orders, written before any order is sent, in
    /// one round trip and all or nothing. Writing the same trade id twice is
    /// refused (a retry never doubles a trade). The approval is booked apart,
    /// with [`TradeRepository::record_opportunity`] and [`TradeIntent::approval`].
    fn begin_trade<'a>(
        &'a self,
        host: &'a str,
        intent: &'a TradeIntent,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// One more order of an open trade (a retry or an unwind), written before it is sent.
    fn add_order<'a>(
        &'a self,
        host: &'a str,
        trade_id: &'a str,
        order: &'a Order,
        at: UnixMicros,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// What became of an order.
    fn update_order<'a>(
        &'a self,
        client_order_id: &'a str,
        status: OrderStatus,
        venue_order_id: Option<&'a str>,
        error: Option<&'a str>,
        at: UnixMicros,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Books a fill once: the same `fill.client_order_id` is recorded only the
    /// first time (returns whether it was new).
    fn record_fill<'a>(
        &'a self,
        host: &'a str,
        trade_id: &'a str,
        fill: &'a Fill,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Writes the outcome and P&L; the trade is no longer open.
    fn finish_trade<'a>(
        &'a self,
        host: &'a str,
        record: &'a TradeRecord,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// `host`'s trades without an outcome, oldest first, with their orders and fills.
    fn open_trades<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<OpenTrade>>>;

    /// Finished trades, newest first.
    fn trades<'a>(&'a self, limit: u32) -> BoxFuture<'a, StoreResult<Vec<TradeRecord>>>;

    fn trade<'a>(&'a self, trade_id: &'a str) -> BoxFuture<'a, StoreResult<Option<TradeRecord>>>;

    /// Whether the trade is in the store at all, open or finished.
    fn has_trade<'a>(&'a self, trade_id: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Contracts `host` holds per pair, venue and outcome, from its fills (non-zero only).
    fn positions<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Vec<Position>>>;

    /// Counts and sums of everything `host` booked, for `/metrics`.
    fn totals<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<Totals>>;

    /// The P&L of `host`'s trades finished at or after `since`.
    fn pnl_since<'a>(&'a self, host: &'a str, since: UnixMicros)
    -> BoxFuture<'a, StoreResult<Usd>>;
}

/// The repository and the host writing to it: what the executor and the API hold.
#[derive(Clone)]
pub struct TradeStore {
    pub repo: std::sync::Arc<dyn TradeRepository>,
    pub host: std::sync::Arc<str>,
}

impl TradeStore {
    pub fn new(repo: std::sync::Arc<dyn TradeRepository>, host: &str) -> Self {
        TradeStore {
            repo,
            host: host.into(),
        }
    }

    /// Opens `url` for `host`.
    pub async fn open(url: &str, host: &str) -> StoreResult<Self> {
        Ok(TradeStore::new(open(url).await?, host))
    }
}

impl std::fmt::Debug for TradeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("TradeStore")
            .field("backend", &self.repo.backend())
            .field("host", &self.host)
            .finish()
    }
}

/// Opens the store named by a `DATABASE_URL` and brings its schema up to date.
pub async fn open(url: &str) -> StoreResult<std::sync::Arc<dyn TradeRepository>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteRepository::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PostgresRepository::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// Sums the sizes of fills as signed contracts (buys minus sales).
pub(crate) fn signed_size(fill: &Fill) -> rust_decimal::Decimal {
    match fill.action {
        crate::domain::Action::Buy => fill.size.value(),
        crate::domain::Action::Sell => -fill.size.value(),
    }
}

/// Parses exact decimal text written by the store.
pub(crate) fn size_of(text: &str) -> StoreResult<Size> {
    text.parse::<rust_decimal::Decimal>()
        .ok()
        .and_then(|d| Size::new(d).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("size '{text}'")))
}

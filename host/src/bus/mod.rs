//! The typed event bus: how feeds, strategy, risk, executor, store and API talk.
//!
//! Producers never block and never wait for a consumer. What a lagging consumer
//! gets depends on the topic, chosen by what the data means:
//!
//! | topic | kind | when a consumer lags |
//! |---|---|---|
//! | `books` (a market's book changed) | [`Coalescing`] per pair | pending changes of the same pair merge into one: the consumer reads the current book, so nothing is lost but stale intermediate states |
//! | `opportunities` | [`Coalescing`] per pair | a newer opportunity for a pair supersedes an unprocessed older one (trading a stale price is the loss to avoid) |
//! | `executions`, `trades` | [`Lossless`] | queued without bound, in order: an order or a fill is never dropped |
//! | `status` (feed/plugin status, observability) | [`Broadcast`] ring | the oldest events are dropped for that consumer and counted |
//!
//! Every topic counts what it published, merged and dropped ([`TopicStats`]).

mod coalescing;
mod topics;

pub use coalescing::{Coalescing, CoalescingReceiver, InlineSubscription};
pub use topics::{Broadcast, BroadcastReceiver, Lossless, LosslessReceiver};

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::domain::events::{
    ArbitrageOpportunityFound, ExecuteTrade, FeedStatusChanged, LegFailed, PluginStatusChanged,
    TradeExecuted,
};
use crate::domain::{PairId, UnixMicros, Venue};

/// Counters one topic keeps.
#[derive(Debug, Default)]
pub struct Counters {
    published: AtomicU64,
    coalesced: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }
    fn coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }
    fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> TopicStats {
        TopicStats {
            published: self.published.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// What a topic has seen since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TopicStats {
    pub published: u64,
    /// Deliveries merged into a newer one (coalescing topics only).
    pub coalesced: u64,
    /// Deliveries lost by a lagging consumer (broadcast topics only).
    pub dropped: u64,
}

/// A pair's book changed on one venue. Consumers read the current book from the
/// book store, so merging several of these loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookChanged {
    pub venue: Venue,
    /// Receive time of the first wire message not yet seen by this consumer
    /// (kept across coalescing so tick-to-decision latency stays honest).
    pub first_received_at: UnixMicros,
    /// How many book changes this delivery stands for.
    pub changes: u32,
}

/// Merges two pending book notifications of one pair.
fn merge_book(old: BookChanged, new: BookChanged) -> BookChanged {
    BookChanged {
        venue: new.venue,
        first_received_at: old.first_received_at.min(new.first_received_at),
        changes: old.changes.saturating_add(new.changes),
    }
}

/// Events that leave the executor.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TradeEvent {
    Executed(Box<TradeExecuted>),
    LegFailed(LegFailed),
}

/// Status changes for the API and the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StatusEvent {
    Feed(FeedStatusChanged),
    Plugin(PluginStatusChanged),
}

/// All topics of one host.
pub struct Bus {
    pub books: Coalescing<PairId, BookChanged>,
    pub opportunities: Coalescing<PairId, ArbitrageOpportunityFound>,
    pub executions: Lossless<ExecuteTrade>,
    pub trades: Lossless<TradeEvent>,
    pub status: Broadcast<StatusEvent>,
}

impl Bus {
    /// `status_capacity`: events a status consumer may fall behind before losing the oldest.
    pub fn new(status_capacity: usize) -> Self {
        Bus {
            books: Coalescing::new(merge_book),
            opportunities: Coalescing::new(|_, new| new),
            executions: Lossless::new(),
            trades: Lossless::new(),
            status: Broadcast::new(status_capacity),
        }
    }

    /// Counters of every topic, by name.
    pub fn stats(&self) -> Vec<(&'static str, TopicStats)> {
        vec![
            ("books", self.books.stats()),
            ("opportunities", self.opportunities.stats()),
            ("executions", self.executions.stats()),
            ("trades", self.trades.stats()),
            ("status", self.status.stats()),
        ]
    }
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_notifications_merge_keeping_the_first_receive_time() {
        let bus = Bus::default();
        let rx = bus.books.subscribe();
        let pair = PairId("a".into());
        bus.books.publish(
            pair.clone(),
            BookChanged {
                venue: Venue::Kalshi,
                first_received_at: 10,
                changes: 1,
            },
        );
        bus.books.publish(
            pair.clone(),
            BookChanged {
                venue: Venue::Polymarket,
                first_received_at: 20,
                changes: 1,
            },
        );
        let (k, v) = rx.try_recv().unwrap();
        assert_eq!(k, pair);
        assert_eq!(
            v,
            BookChanged {
                venue: Venue::Polymarket,
                first_received_at: 10,
                changes: 2
            }
        );
        assert!(rx.try_recv().is_none());
        assert_eq!(
            bus.stats()[0].1,
            TopicStats {
                published: 2,
                coalesced: 1,
                dropped: 0
            }
        );
    }
}

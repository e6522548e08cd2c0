//! Parse → book → plugins without sockets: the replay adapters writing into a
//! book store and bus that a strategy runtime evaluates, as live.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rust_decimal::Decimal;

use crate::books::BookStore;
use crate::bus::Bus;
use crate::domain::{MarketPair, PairFees, PolymarketFees, Size, Venue};
use crate::replay::venues::{KalshiReplay, PolymarketReplay};
use crate::strategy::{FaultPolicy, PluginHost, StrategyRuntime, now_micros};
use crate::venues::feed::{BookWriter, FeedStats};

pub struct Pipeline {
    pub bus: Arc<Bus>,
    pub strategy: Arc<StrategyRuntime>,
    pub feed: Feed,
}

/// Both venues' adapters; owned by whichever thread feeds.
pub struct Feed {
    kalshi: KalshiReplay,
    polymarket: PolymarketReplay,
}

impl Feed {
    pub fn on_text(&mut self, venue: Venue, text: &str) {
        match venue {
            Venue::Kalshi => self.kalshi.on_text(text, now_micros()),
            Venue::Polymarket => self.polymarket.on_text(text, now_micros()),
        }
    }

    pub fn book_updates(&self) -> u64 {
        self.kalshi
            .writer
            .stats
            .book_updates
            .load(Ordering::Relaxed)
            + self
                .polymarket
                .writer
                .stats
                .book_updates
                .load(Ordering::Relaxed)
    }

    /// Bad messages and gaps: a synthetic session must have none.
    pub fn problems(&self) -> u64 {
        [&self.kalshi.writer.stats, &self.polymarket.writer.stats]
            .iter()
            .map(|s| s.bad_messages().values().sum::<u64>() + s.resyncs.load(Ordering::Relaxed))
            .sum()
    }
}

impl Pipeline {
    pub fn new(host: &PluginHost, pairs: &[MarketPair]) -> Pipeline {
        let books = Arc::new(BookStore::new());
        let fees = PairFees {
            polymarket: PolymarketFees {
                rate: Decimal::new(4, 2),
                exponent: 1,
            },
            ..PairFees::default()
        };
        for p in pairs {
            books.add(p.clone(), fees, Size::whole(5));
        }
        let bus = Arc::new(Bus::default());
        let strategy = StrategyRuntime::start(
            host.clone(),
            books.clone(),
            bus.clone(),
            FaultPolicy::default(),
        );
        let writer = |venue| {
            BookWriter::new(
                venue,
                books.clone(),
                bus.clone(),
                Arc::new(FeedStats::default()),
            )
        };
        let feed = Feed {
            kalshi: KalshiReplay::new(writer(Venue::Kalshi), pairs),
            polymarket: PolymarketReplay::new(writer(Venue::Polymarket), books.clone(), pairs),
        };
        Pipeline {
            bus,
            strategy,
            feed,
        }
    }

    pub fn load(&self, plugins: &[(String, Arc<Vec<u8>>)]) -> anyhow::Result<()> {
        for (name, bytes) in plugins {
            self.strategy
                .load_bytes(name, bytes)
                .map_err(|e| anyhow::anyhow!("loading {name}: {e}"))?;
        }
        Ok(())
    }
}

//! The adapter half of each live feed session without its socket: a recorded
//! message goes through the venue's parser and book translation into the
//! shared books and the bus, exactly as `venues/*/ws.rs` does it live.
//!
//! What a live session would *send* in answer (a Kalshi resubscription, a
//! Polymarket REST re-fetch after a drift) cannot happen here: the answers the
//! venue gave are in the recording when they came over the socket, and the
//! event is counted as a gap either way.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::domain::{MarketPair, PairId, UnixMicros};
use crate::venues::feed::BookWriter;
use crate::venues::kalshi::{self, KalshiBookSync, NoSidePricing};
use crate::venues::polymarket::{self, PolymarketBooks};

/// The Kalshi order-book feed, fed from a recording.
pub struct KalshiReplay {
    pub writer: BookWriter,
    sync: KalshiBookSync,
    tickers: HashMap<PairId, String>,
}

impl KalshiReplay {
    pub fn new(writer: BookWriter, pairs: &[MarketPair]) -> Self {
        let by_ticker: HashMap<String, PairId> = pairs
            .iter()
            .map(|p| (p.kalshi_ticker.clone(), p.id.clone()))
            .collect();
        KalshiReplay {
            writer,
            // The live feed always subscribes with YES-leg pricing.
            sync: KalshiBookSync::new(by_ticker, NoSidePricing::YesLeg),
            tickers: pairs
                .iter()
                .map(|p| (p.id.clone(), p.kalshi_ticker.clone()))
                .collect(),
        }
    }

    pub fn on_text(&mut self, text: &str, received: UnixMicros) {
        let Some(msg) = kalshi::ws::parse_counted(&self.writer, text) else {
            return;
        };
        // Live, the session resubscribes here; the venue's answer follows in
        // the recording.
        for gap in kalshi::ws::apply_book_message(
            &mut self.sync,
            &self.writer,
            &self.tickers,
            &msg,
            received,
        ) {
            kalshi::ws::retire(&mut self.sync, &self.writer, &gap);
        }
    }
}

/// The Polymarket market channel, fed from a recording.
pub struct PolymarketReplay {
    pub writer: BookWriter,
    sync: PolymarketBooks,
    books: std::sync::Arc<crate::books::BookStore>,
}

impl PolymarketReplay {
    pub fn new(
        writer: BookWriter,
        books: std::sync::Arc<crate::books::BookStore>,
        pairs: &[MarketPair],
    ) -> Self {
        PolymarketReplay {
            writer,
            sync: PolymarketBooks::from_pairs(pairs),
            books,
        }
    }

    pub fn on_text(&mut self, text: &str, received: UnixMicros) {
        // A drift is a lost message; live re-fetches the book by REST, which a
        // recording of the socket does not hold: the book stays stale until the
        // venue's next full `book`.
        for (pair, _) in
            polymarket::ws::apply_frame(&mut self.sync, &self.writer, &self.books, text, received)
        {
            self.writer.stats.resyncs.fetch_add(1, Ordering::Relaxed);
            self.writer.stale(&pair);
        }
    }
}

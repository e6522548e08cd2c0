//! The adapter half of each live feed session without its socket: a recorded
//! message goes through the venue's parser and book translation into the
//! shared books and the bus, exactly as `venues/*/ws.rs` does it live.
//!
//! What a live session would *send* in answer (a Kalshi resubscription, a
//! Polymarket REST re-fetch after a drift) cannot happen here: the answers the
//! venue gave are in the recording when they came over the socket, and the
//! event is counted as a gap either way.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use crate::domain::{MarketPair, Outcome, PairId, Price, UnixMicros, Venue};
use crate::venues::feed::BookWriter;
use crate::venues::kalshi::{self, BookAction, KalshiBookSync, NoSidePricing};
use crate::venues::polymarket::{self, PolyMessage, PolymarketBooks};

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
        self.writer.stats.messages.fetch_add(1, Ordering::Relaxed);
        let msg = match kalshi::parse(text) {
            Ok(m) => m,
            Err(e) => {
                let kind = match e {
                    kalshi::ParseError::Legacy { .. } => "legacy",
                    kalshi::ParseError::Unknown(_) => "unknown",
                    kalshi::ParseError::Malformed(_) => "malformed",
                };
                return self
                    .writer
                    .stats
                    .bad_message(Venue::Kalshi, kind, &e.to_string());
            }
        };
        let step = self.sync.on_message(&msg, received);
        for ev in step.events {
            match ev {
                kalshi::BookEvent::Snapshot(s) => self.writer.snapshot(&s),
                kalshi::BookEvent::Delta(d) => {
                    if self.writer.delta(&d).is_err() {
                        let ticker = self.tickers.get(&d.pair).cloned().unwrap_or_default();
                        if let Some(action) = self.sync.invalidate(&ticker) {
                            self.gap(action);
                        }
                    }
                }
            }
        }
        if let Some(action) = step.action {
            self.gap(action);
        }
    }

    /// Live, the session resubscribes here; the venue's answer follows in the recording.
    fn gap(&mut self, action: BookAction) {
        for pair in action.stale_pairs() {
            self.writer.stale(pair);
        }
        self.writer.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        match action {
            BookAction::Resync { sid, .. } | BookAction::Resubscribe { sid: Some(sid), .. } => {
                self.sync.forget_sid(sid)
            }
            BookAction::Resubscribe { sid: None, .. } => {}
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
        self.writer.stats.messages.fetch_add(1, Ordering::Relaxed);
        let kind = |e: &polymarket::ParseError| match e {
            polymarket::ParseError::Legacy => "legacy",
            polymarket::ParseError::Unknown { .. } => "unknown",
            polymarket::ParseError::Malformed { .. } => "malformed",
        };
        let events = match polymarket::parse_each(text) {
            Ok(events) => events,
            Err(e) => {
                return self
                    .writer
                    .stats
                    .bad_message(Venue::Polymarket, kind(&e), &e.to_string());
            }
        };
        let mut checks: BTreeMap<(PairId, Outcome), (Option<Price>, Option<Price>)> =
            BTreeMap::new();
        for event in events {
            let msg = match event {
                Ok(PolyMessage::Pong) => continue,
                Ok(m) => m,
                Err(e) => {
                    self.writer
                        .stats
                        .bad_message(Venue::Polymarket, kind(&e), &e.to_string());
                    continue;
                }
            };
            for ev in self.sync.on_message(&msg, received) {
                match ev {
                    polymarket::BookEvent::Snapshot(s) => self.writer.snapshot(&s),
                    polymarket::BookEvent::Delta(d) => {
                        let _ = self.writer.delta(&d);
                    }
                    polymarket::BookEvent::TopOfBook {
                        pair,
                        outcome,
                        best_bid,
                        best_ask,
                        ..
                    } => {
                        checks.insert((pair, outcome), (best_bid, best_ask));
                    }
                    polymarket::BookEvent::TickSizeChanged { .. } => {}
                }
            }
        }
        // A drift is a lost message; live re-fetches the book by REST, which a
        // recording of the socket does not hold: the book stays stale until the
        // venue's next full `book`.
        for ((pair, outcome), venue_top) in checks {
            let ours = self.books.get(&pair).map(|e| {
                let st = e.state();
                let b = st.venue(Venue::Polymarket).book(outcome);
                (b.best_bid().map(|l| l.price), b.best_ask().map(|l| l.price))
            });
            if ours.is_some_and(|o| o != venue_top) {
                self.writer.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                self.writer.stale(&pair);
            }
        }
    }
}

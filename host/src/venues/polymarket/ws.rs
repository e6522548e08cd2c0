//! The market-channel WebSocket: connect, subscribe by token ids, keep alive
//! with text PINGs, apply `book`/`price_change` to the shared books, check the
//! venue's top of book against ours (Polymarket has no sequence numbers: a
//! mismatch is how a lost message shows) and re-fetch a drifted book by REST,
//! reconnect with backoff and resubscribe (PROTOCOLS.md §2.4).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::book::{BookEvent, PolymarketBooks};
use super::messages::{BookResponse, MarketSubscribe, PolyMessage, parse_each};
use crate::books::BookStore;
use crate::domain::events::FeedStatus;
use crate::domain::{MarketPair, Outcome, PairId, Price, TokenId, UnixMicros, Venue};
use crate::strategy::now_micros;
use crate::venues::feed::{Backoff, BookWriter, Frame, Recorder};

#[derive(Debug, Clone)]
pub struct MarketFeedConfig {
    pub ws_url: String,
    pub rest_url: String,
    pub pairs: Vec<MarketPair>,
    /// The venue expects a text PING every 10 s.
    pub ping_every: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl MarketFeedConfig {
    pub fn new(
        ws_url: impl Into<String>,
        rest_url: impl Into<String>,
        pairs: Vec<MarketPair>,
    ) -> Self {
        MarketFeedConfig {
            ws_url: ws_url.into(),
            rest_url: rest_url.into(),
            pairs,
            ping_every: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

struct Session<'a> {
    cfg: &'a MarketFeedConfig,
    writer: &'a BookWriter,
    books: &'a BookStore,
    http: &'a reqwest::Client,
    sync: PolymarketBooks,
    recorder: Option<&'a Recorder>,
}

impl Session<'_> {
    fn token(&self, pair: &PairId, outcome: Outcome) -> Option<TokenId> {
        let p = self.cfg.pairs.iter().find(|p| &p.id == pair)?;
        Some(match outcome {
            Outcome::Yes => p.polymarket_yes_token.clone(),
            Outcome::No => p.polymarket_no_token.clone(),
        })
    }

    /// Re-fetches one token's book by REST and replaces ours.
    async fn resync(&mut self, pair: &PairId, outcome: Outcome) {
        self.writer.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        self.writer.stale(pair);
        let Some(token) = self.token(pair, outcome) else {
            return;
        };
        let url = format!("{}/book?token_id={}", self.cfg.rest_url, token);
        let body = match self.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            Ok(r) => {
                self.writer.stats.bad_message(
                    Venue::Polymarket,
                    "rest_book_status",
                    &r.status().to_string(),
                );
                return;
            }
            Err(e) => {
                self.writer
                    .stats
                    .bad_message(Venue::Polymarket, "rest_book_error", &e.to_string());
                return;
            }
        };
        match serde_json::from_str::<BookResponse>(&body) {
            Ok(book) => {
                if let Some(snapshot) = self.sync.on_rest_book(&book, now_micros()) {
                    self.writer.snapshot(&snapshot);
                }
            }
            Err(e) => self.writer.stats.bad_message(
                Venue::Polymarket,
                "rest_book_malformed",
                &e.to_string(),
            ),
        }
    }

    /// Applies a frame; returns the books that drifted, for [`Self::resync`]
    /// once the batch is in (a REST round trip must not hold the plugins).
    fn on_text(&mut self, text: &str, drifted: &mut Vec<(PairId, Outcome)>) {
        let received = now_micros();
        if let Some(r) = self.recorder {
            r.record(Venue::Polymarket, received, text);
        }
        for key in apply_frame(&mut self.sync, self.writer, self.books, text, received) {
            if !drifted.contains(&key) {
                drifted.push(key);
            }
        }
    }

    async fn resync_drifted(&mut self, drifted: Vec<(PairId, Outcome)>) {
        for (pair, outcome) in drifted {
            tracing::info!(%pair, %outcome, "polymarket book drifted from the venue's top of book; re-fetching");
            self.resync(&pair, outcome).await;
        }
    }
}

/// One market-channel frame into the shared books, for the live session and
/// replay alike: parsed (bad events counted), translated, written, tick
/// changes noted. Returns the books that drifted from the venue's top of book
/// after the whole frame: Polymarket has no sequence numbers, so a mismatch is
/// how a lost message shows. Live re-fetches them by REST.
pub fn apply_frame(
    sync: &mut PolymarketBooks,
    writer: &BookWriter,
    books: &BookStore,
    text: &str,
    received: UnixMicros,
) -> Vec<(PairId, Outcome)> {
    writer.stats.messages.fetch_add(1, Ordering::Relaxed);
    let events = match parse_each(text) {
        Ok(events) => events,
        Err(e) => {
            writer
                .stats
                .bad_message(Venue::Polymarket, e.kind(), &e.to_string());
            return Vec::new();
        }
    };
    // The last top of book per token in this frame (each entry carries the top
    // after its own change; only the final one must match ours).
    let mut checks: std::collections::BTreeMap<(PairId, Outcome), (Option<Price>, Option<Price>)> =
        Default::default();
    let mut frame = Frame::default();
    for event in events {
        let msg = match event {
            Ok(PolyMessage::Pong) => continue,
            Ok(m) => m,
            Err(e) => {
                writer
                    .stats
                    .bad_message(Venue::Polymarket, e.kind(), &e.to_string());
                continue;
            }
        };
        for ev in sync.on_message(&msg, received) {
            match ev {
                BookEvent::Snapshot(s) => writer.snapshot_in(&s, &mut frame),
                // Absolute sizes cannot make a book inconsistent.
                BookEvent::Delta(d) => {
                    let _ = writer.delta_in(&d, &mut frame);
                }
                BookEvent::TopOfBook {
                    pair,
                    outcome,
                    best_bid,
                    best_ask,
                    ..
                } => {
                    checks.insert((pair, outcome), (best_bid, best_ask));
                }
                // The next order on that token is signed on the new tick.
                BookEvent::TickSizeChanged {
                    pair,
                    outcome,
                    tick,
                } => {
                    if let Some(e) = books.get(&pair) {
                        e.set_polymarket_tick(outcome, tick.value());
                    }
                }
            }
        }
    }
    writer.end_frame(frame);
    checks
        .into_iter()
        .filter(|((pair, outcome), venue_top)| {
            books.get(pair).is_some_and(|e| {
                let st = e.state();
                let b = st.venue(Venue::Polymarket).book(*outcome);
                (b.best_bid().map(|l| l.price), b.best_ask().map(|l| l.price)) != *venue_top
            })
        })
        .map(|(key, _)| key)
        .collect()
}

/// Runs until `shutdown` turns true, reconnecting as needed.
pub async fn run_market_feed(
    cfg: MarketFeedConfig,
    writer: BookWriter,
    books: Arc<BookStore>,
    recorder: Option<Arc<Recorder>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = reqwest::Client::new();
    let tokens: Vec<TokenId> = cfg
        .pairs
        .iter()
        .flat_map(|p| {
            [
                p.polymarket_yes_token.clone(),
                p.polymarket_no_token.clone(),
            ]
        })
        .collect();
    let subscribe = serde_json::to_string(&MarketSubscribe::new(&tokens)).unwrap_or_default();
    let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    while !*shutdown.borrow() {
        writer.status(FeedStatus::Connecting, cfg.ws_url.clone());
        let mut ws = match tokio_tungstenite::connect_async(cfg.ws_url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                writer.status(FeedStatus::Reconnecting, format!("connect failed: {e}"));
                let wait = backoff.next_delay();
                tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = shutdown.changed() => return }
            }
        };
        if ws
            .send(Message::Text(subscribe.clone().into()))
            .await
            .is_err()
        {
            continue;
        }
        backoff.reset();
        writer.status(
            FeedStatus::Connected,
            format!("subscribed to {} tokens", tokens.len()),
        );
        let mut session = Session {
            cfg: &cfg,
            writer: &writer,
            books: &books,
            http: &http,
            sync: PolymarketBooks::from_pairs(&cfg.pairs),
            recorder: recorder.as_deref(),
        };
        let mut ping = tokio::time::interval(cfg.ping_every);
        ping.tick().await;
        let reason = 'session: loop {
            crate::execution::let_queued_trades_go().await;
            let frame = tokio::select! {
                frame = ws.next() => frame,
                _ = ping.tick() => {
                    if ws.send(Message::Text("PING".into())).await.is_err() { break "ping failed".to_string(); }
                    continue;
                }
                _ = shutdown.changed() => {
                    let _ = ws.close(None).await;
                    writer.status(FeedStatus::Disconnected, "shutdown");
                    return;
                }
            };
            // Frames already waiting go into the books before the plugins
            // look; books that drifted are re-fetched once they have.
            let mut drifted = Vec::new();
            let applied = writer
                .batch()
                .apply(&mut ws, frame, |text| {
                    session.on_text(text, &mut drifted);
                    Vec::new()
                })
                .await;
            if let Err(reason) = applied {
                break 'session reason;
            }
            session.resync_drifted(drifted).await;
        };
        // No sequence numbers: after a break nothing can be trusted until the new snapshots.
        writer.session_lost(cfg.pairs.iter().map(|p| &p.id), reason);
        let wait = backoff.next_delay();
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = shutdown.changed() => return }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BookChanged, Bus};
    use crate::domain::{MarketPair, PairFees, Size};
    use crate::venues::feed::FeedStats;
    use crate::venues::polymarket::messages::tests::fixture;
    use std::sync::Mutex;

    const YES: &str =
        "71321045679252212594626385532706912750332728571942532289631379312455583992563";
    const NO: &str =
        "52114319501245915516055106046884209969926127482827954674443846427813813222426";

    #[test]
    fn a_frame_is_published_once_per_pair_after_all_of_it_is_in_the_books() {
        let pair = MarketPair {
            id: PairId("fed".into()),
            kalshi_ticker: "KX-FED".into(),
            polymarket_condition_id: "0x1".into(),
            polymarket_yes_token: TokenId::new(YES).unwrap(),
            polymarket_no_token: TokenId::new(NO).unwrap(),
            neg_risk: false,
            kalshi_rules: String::new(),
            polymarket_rules: String::new(),
            rules_match: true,
        };
        let books = Arc::new(BookStore::new());
        let entry = books.add(pair.clone(), PairFees::default(), Size::whole(5));
        let bus = Arc::new(Bus::default());
        let writer = BookWriter::new(
            Venue::Polymarket,
            books.clone(),
            bus.clone(),
            Arc::new(FeedStats::default()),
        );
        // What an inline consumer (the plugins) sees when the change is published.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let watched = entry.clone();
        let _sub = bus
            .books
            .subscribe_inline(move |pair, changed: BookChanged| {
                let st = watched.state();
                let venue = st.venue(Venue::Polymarket);
                let yes_bid = venue.book(Outcome::Yes).best_bid().map(|l| l.price);
                let no_ask = venue.book(Outcome::No).best_ask().map(|l| l.price);
                log.lock().unwrap().push((
                    pair,
                    changed.changes,
                    changed.first_received_at,
                    yes_bid,
                    no_ask,
                ));
            });
        let mut sync = PolymarketBooks::from_pairs([&pair]);
        let drifted = apply_frame(
            &mut sync,
            &writer,
            &books,
            &fixture("ws_price_change.json"),
            42,
        );
        let seen = seen.lock().unwrap();
        // Two entries (YES bid, NO ask) in one frame: one change, both applied.
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (p, changes, received, yes_bid, no_ask) = &seen[0];
        assert_eq!(p, &pair.id);
        assert_eq!((*changes, *received), (2, 42));
        assert!(yes_bid.is_some() && no_ask.is_some(), "{seen:?}");
        assert_eq!(writer.stats.book_updates.load(Ordering::Relaxed), 2);
        assert!(
            drifted.is_empty(),
            "the frame's tops match the books: {drifted:?}"
        );
    }
}

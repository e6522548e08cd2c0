//! What every venue adapter shares: applying domain book events to the book
//! store and telling the strategy, reconnect backoff, counting bad messages,
//! and recording raw messages for replay.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::books::BookStore;
use crate::bus::{BookChanged, Bus, StatusEvent};
use crate::domain::events::{
    FeedStatus, FeedStatusChanged, OrderBookDeltaReceived, OrderBookSnapshotReceived,
};
use crate::domain::{BookError, PairId, UnixMicros, Venue};

/// Most frames a feed applies in one go, from those already waiting on its
/// socket, before the plugins see the result (`feed_batch_frames`): in a
/// burst, each pair is decided on its latest book once, and the host keeps
/// up with the venue; the first frame's decision waits for at most this many
/// others (1–3 µs each). 1 decides after every frame.
pub const BATCH_FRAMES: usize = 8;

/// One read from a venue's WebSocket, sorted the way every feed treats it.
enum SocketRead {
    Text(Utf8Bytes),
    /// Answered by flushing: tungstenite queues the pong.
    Ping,
    /// Binary, pong or raw frames: nothing a feed reads.
    Other,
    /// The session is over, and why.
    Ended(String),
}

impl SocketRead {
    fn of(read: Option<Result<Message, WsError>>) -> Self {
        match read {
            Some(Ok(Message::Text(t))) => SocketRead::Text(t),
            Some(Ok(Message::Ping(_))) => SocketRead::Ping,
            Some(Ok(Message::Close(f))) => SocketRead::Ended(format!("closed by venue: {f:?}")),
            Some(Ok(_)) => SocketRead::Other,
            Some(Err(e)) => SocketRead::Ended(format!("socket error: {e}")),
            None => SocketRead::Ended("socket ended".to_string()),
        }
    }
}

/// The frames a feed applies before the plugins look ([`BookWriter::batch`]).
pub struct FrameBatch {
    left: usize,
    _hold: Option<crate::strategy::EvaluationHold>,
}

impl FrameBatch {
    /// The next read already waiting on `ws`, while the batch has room; `None`
    /// once it is full or nothing waits. A read is taken only when it will be
    /// applied: a frame read is never dropped.
    fn next_read<S: Stream + Unpin>(&mut self, ws: &mut S) -> Option<Option<S::Item>> {
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            return None;
        }
        ws.next().now_or_never()
    }

    /// Applies `first`, just read, and then the reads already waiting on
    /// `ws` while the batch has room: each text goes to `on_text`, whose
    /// replies are sent back, and a ping is answered by flushing the pong
    /// tungstenite queued. `Err(why)` once the session is over.
    pub async fn apply<S>(
        &mut self,
        ws: &mut S,
        first: Option<Result<Message, WsError>>,
        mut on_text: impl FnMut(&str) -> Vec<Message>,
    ) -> Result<(), String>
    where
        S: Stream<Item = Result<Message, WsError>> + Sink<Message> + Unpin,
    {
        let mut read = first;
        loop {
            match SocketRead::of(read) {
                SocketRead::Text(t) => {
                    for reply in on_text(t.as_str()) {
                        if ws.send(reply).await.is_err() {
                            return Err("send failed".to_string());
                        }
                    }
                }
                SocketRead::Ping => {
                    let _ = ws.flush().await;
                }
                SocketRead::Other => {}
                SocketRead::Ended(reason) => return Err(reason),
            }
            match self.next_read(ws) {
                Some(next) => read = next,
                None => return Ok(()),
            }
        }
    }
}

/// The pairs one venue frame changed, published together when it ends: a
/// frame is one change of the venue's books (a Polymarket `price_change`
/// carries every level one order moved, often on both outcomes), and a book
/// between two of its entries never existed on the venue. Evaluated inline,
/// each entry would also make every later one wait for the plugins.
#[derive(Debug, Default)]
pub struct Frame {
    /// Pair, receive time, changes: a frame names a handful of pairs at most.
    pairs: Vec<(PairId, UnixMicros, u32)>,
}

impl Frame {
    fn note(&mut self, pair: &PairId, received_at: UnixMicros) {
        match self.pairs.iter_mut().find(|(p, _, _)| p == pair) {
            Some((_, _, changes)) => *changes += 1,
            None => self.pairs.push((pair.clone(), received_at, 1)),
        }
    }
}

/// Applies a venue's book events to the shared books and publishes "pair changed".
pub struct BookWriter {
    venue: Venue,
    books: Arc<BookStore>,
    bus: Arc<Bus>,
    pub stats: Arc<FeedStats>,
    /// The plugins this feed's changes reach, for [`Self::batch`].
    strategy: Option<Arc<crate::strategy::StrategyRuntime>>,
    batch_frames: usize,
}

impl BookWriter {
    pub fn new(venue: Venue, books: Arc<BookStore>, bus: Arc<Bus>, stats: Arc<FeedStats>) -> Self {
        BookWriter {
            venue,
            books,
            bus,
            stats,
            strategy: None,
            batch_frames: BATCH_FRAMES,
        }
    }

    /// Most waiting frames applied before the plugins look (at least 1).
    pub fn with_batch_frames(mut self, frames: usize) -> Self {
        self.batch_frames = frames.max(1);
        self
    }

    /// Lets the feed hold the plugins' inline evaluation over a batch of
    /// frames (see [`Self::batch`]).
    pub fn with_strategy(mut self, strategy: Arc<crate::strategy::StrategyRuntime>) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// A batch of frames, starting with one just read: the plugins' inline
    /// evaluation is held until it is dropped, which evaluates what its
    /// frames changed, each pair once.
    pub fn batch(&self) -> FrameBatch {
        FrameBatch {
            left: self.batch_frames,
            _hold: self.strategy.as_ref().map(|s| s.hold()),
        }
    }

    fn changed(&self, pair: &PairId, received_at: UnixMicros, changes: u32) {
        self.bus.books.publish(
            pair.clone(),
            BookChanged {
                venue: self.venue,
                first_received_at: received_at,
                changes,
            },
        );
    }

    pub fn snapshot(&self, e: &OrderBookSnapshotReceived) {
        if self.apply_snapshot(e) {
            self.changed(&e.pair, e.received_at, 1);
        }
    }

    /// [`Self::snapshot`], published with the rest of its frame.
    pub fn snapshot_in(&self, e: &OrderBookSnapshotReceived, frame: &mut Frame) {
        if self.apply_snapshot(e) {
            frame.note(&e.pair, e.received_at);
        }
    }

    /// Applies a delta, published with the rest of its frame. A refused
    /// delta leaves the book untouched; the caller re-synchronises.
    pub fn delta_in(&self, e: &OrderBookDeltaReceived, frame: &mut Frame) -> Result<(), BookError> {
        if self.apply_delta(e)? {
            frame.note(&e.pair, e.received_at);
        }
        Ok(())
    }

    /// Publishes each pair the frame changed, once, now that all of it is in.
    pub fn end_frame(&self, frame: Frame) {
        for (pair, received_at, changes) in frame.pairs {
            self.changed(&pair, received_at, changes);
        }
    }

    fn apply_snapshot(&self, e: &OrderBookSnapshotReceived) -> bool {
        let Some(entry) = self.books.get(&e.pair) else {
            return false;
        };
        entry.state().apply_snapshot(e);
        self.stats.book_updates.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn apply_delta(&self, e: &OrderBookDeltaReceived) -> Result<bool, BookError> {
        let Some(entry) = self.books.get(&e.pair) else {
            return Ok(false);
        };
        entry.state().apply_delta(e)?;
        self.stats.book_updates.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    pub fn stale(&self, pair: &PairId) {
        if let Some(entry) = self.books.get(pair) {
            entry.state().mark_stale(self.venue);
            self.changed(pair, crate::strategy::now_micros(), 1);
        }
    }

    /// A session that ended without a shutdown: its books cannot be trusted
    /// until the next session's snapshots; the loss is counted and reported.
    pub fn session_lost<'a>(&self, pairs: impl IntoIterator<Item = &'a PairId>, reason: String) {
        for pair in pairs {
            self.stale(pair);
        }
        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        self.status(FeedStatus::Reconnecting, reason);
    }

    pub fn status(&self, status: FeedStatus, detail: impl Into<String>) {
        let detail = detail.into();
        *self.stats.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
        self.bus
            .status
            .publish(StatusEvent::Feed(FeedStatusChanged {
                venue: self.venue,
                status,
                detail,
                at: crate::strategy::now_micros(),
            }));
    }
}

/// Counters of one venue feed (exported on /metrics).
#[derive(Debug)]
pub struct FeedStats {
    pub messages: AtomicU64,
    pub book_updates: AtomicU64,
    pub reconnects: AtomicU64,
    pub resyncs: AtomicU64,
    /// Messages that did not parse or were not understood, by kind.
    bad: Mutex<HashMap<String, u64>>,
    pub status: Mutex<FeedStatus>,
}

impl Default for FeedStats {
    fn default() -> Self {
        FeedStats {
            messages: AtomicU64::new(0),
            book_updates: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            bad: Mutex::new(HashMap::new()),
            status: Mutex::new(FeedStatus::Disconnected),
        }
    }
}

impl FeedStats {
    /// Counts a bad message; logs only the first of each kind, so a venue that
    /// changes its format cannot flood the log.
    pub fn bad_message(&self, venue: Venue, kind: &str, detail: &str) {
        let mut bad = self.bad.lock().unwrap_or_else(|e| e.into_inner());
        let n = bad.entry(kind.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            let detail: String = detail.chars().take(200).collect();
            tracing::warn!(%venue, kind, detail, "bad feed message (further ones of this kind are only counted)");
        }
    }

    pub fn bad_messages(&self) -> HashMap<String, u64> {
        self.bad.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Exponential backoff with full jitter for reconnects.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next wait: random in [0, min(max, base × 2^attempt)].
    pub fn next_delay(&mut self) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let ms = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
    }

    /// After a connection that worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// One raw message as received, for record and replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Receive time, µs since the epoch.
    pub t: UnixMicros,
    pub venue: Venue,
    pub msg: String,
}

/// Appends raw feed messages to a JSON-lines file.
pub struct Recorder {
    out: Mutex<(std::io::BufWriter<std::fs::File>, u32)>,
}

/// Lines between flushes: a crash loses at most this many messages.
const FLUSH_EVERY: u32 = 256;

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Recorder {
    pub fn create(path: &Path) -> std::io::Result<Arc<Recorder>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Arc::new(Recorder {
            out: Mutex::new((std::io::BufWriter::new(file), 0)),
        }))
    }

    pub fn record(&self, venue: Venue, t: UnixMicros, msg: &str) {
        let line = serde_json::to_string(&Recorded {
            t,
            venue,
            msg: msg.to_string(),
        })
        .unwrap_or_default();
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(out.0, "{line}") {
            tracing::warn!(error = %e, "recording failed");
        }
        out.1 += 1;
        if out.1 >= FLUSH_EVERY {
            out.1 = 0;
            let _ = out.0.flush();
        }
    }

    pub fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_secs(1), "{late:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn bad_messages_are_counted_by_kind() {
        let s = FeedStats::default();
        for _ in 0..3 {
            s.bad_message(Venue::Kalshi, "malformed", "{");
        }
        s.bad_message(Venue::Kalshi, "legacy", "{}");
        let bad = s.bad_messages();
        assert_eq!(bad["malformed"], 3);
        assert_eq!(bad["legacy"], 1);
    }

    #[test]
    fn recorder_writes_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let r = Recorder::create(&path).unwrap();
        r.record(Venue::Polymarket, 5, "PONG");
        r.record(Venue::Kalshi, 6, "{\"type\":\"x\"}");
        r.flush();
        let lines: Vec<Recorded> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[1],
            Recorded {
                t: 6,
                venue: Venue::Kalshi,
                msg: "{\"type\":\"x\"}".into()
            }
        );
    }
}

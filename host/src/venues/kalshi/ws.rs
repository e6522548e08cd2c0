//! The Kalshi WebSocket v2 order-book feed: a signed handshake, one
//! `orderbook_delta` subscription for every configured ticker (with
//! `use_yes_price` sent explicitly), snapshots and deltas applied to the shared
//! books, `seq` gaps and terminal errors answered by resubscribing, pings
//! answered, reconnects with backoff, a fresh signature and the subscription
//! restored (PROTOCOLS.md §1.2, §1.4).
//!
//! With a fill sender ([`OrderbookFeedConfig::with_fills`]) the same
//! connection also subscribes to the private `fill` channel and publishes
//! each of our fills as a [`KalshiFillEvent`] on that broadcast channel. A
//! subscriber that lags loses events (broadcast semantics), so consumers that
//! must not miss one reconcile with `GET /portfolio/fills` after a lag.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::auth::KalshiSigner;
use super::book::{BookAction, BookEvent, KalshiBookSync};
use super::errors::WsErrorCode;
use super::fills::{KalshiFillEvent, fill_event};
use super::messages::{Channel, Command, KalshiMessage, NoSidePricing, parse};
use crate::domain::events::FeedStatus;
use crate::domain::{MarketPair, PairId, UnixMicros, Venue};
use crate::strategy::now_micros;
use crate::venues::feed::{Backoff, BookWriter, Frame, Recorder};

#[derive(Clone)]
pub struct OrderbookFeedConfig {
    pub ws_url: String,
    pub pairs: Vec<MarketPair>,
    /// Signs the handshake; `None` only against a simulator that does not check.
    pub signer: Option<Arc<KalshiSigner>>,
    /// Kalshi will make YES-leg pricing the default; we always say which we want.
    pub pricing: NoSidePricing,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Where our fills go; `None` = no `fill` subscription. Kalshi only serves
    /// private channels on a signed connection (§1.4).
    pub fills: Option<broadcast::Sender<KalshiFillEvent>>,
}

impl OrderbookFeedConfig {
    pub fn new(
        ws_url: impl Into<String>,
        pairs: Vec<MarketPair>,
        signer: Option<Arc<KalshiSigner>>,
    ) -> Self {
        OrderbookFeedConfig {
            ws_url: ws_url.into(),
            pairs,
            signer,
            pricing: NoSidePricing::YesLeg,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            fills: None,
        }
    }

    /// Also subscribe to the private `fill` channel and publish our fills on `tx`.
    pub fn with_fills(mut self, tx: broadcast::Sender<KalshiFillEvent>) -> Self {
        self.fills = Some(tx);
        self
    }
}

/// The `Connected` status detail once the `fill` subscription is confirmed.
pub const FILLS_SUBSCRIBED: &str = "subscribed to fills";

/// Parses one frame of either channel; a bad one is counted on the feed's
/// stats and dropped.
pub fn parse_counted(writer: &BookWriter, text: &str) -> Option<KalshiMessage> {
    writer.stats.messages.fetch_add(1, Ordering::Relaxed);
    parse(text)
        .map_err(|e| {
            writer
                .stats
                .bad_message(Venue::Kalshi, e.kind(), &e.to_string())
        })
        .ok()
}

/// One order-book message into the shared books, for the live session and
/// replay alike. Returns the gaps it revealed: a live session answers each
/// by resubscribing; in a replay the venue's answer is in the recording.
pub fn apply_book_message(
    sync: &mut KalshiBookSync,
    writer: &BookWriter,
    tickers: &HashMap<PairId, String>,
    msg: &KalshiMessage,
    received: UnixMicros,
) -> Vec<BookAction> {
    let step = sync.on_message(msg, received);
    let mut gaps = Vec::new();
    // A snapshot is both sides of a market: evaluated once, whole.
    let mut frame = Frame::default();
    for ev in step.events {
        match ev {
            BookEvent::Snapshot(s) => writer.snapshot_in(&s, &mut frame),
            BookEvent::Delta(d) => {
                if writer.delta_in(&d, &mut frame).is_err() {
                    // Our book and the venue's disagree: never trade on it.
                    let ticker = tickers.get(&d.pair).cloned().unwrap_or_default();
                    gaps.extend(sync.invalidate(&ticker));
                }
            }
        }
    }
    writer.end_frame(frame);
    gaps.extend(step.action);
    gaps
}

/// What every gap does first, live or replayed: its books are stale until
/// resynchronised, it is counted, and its dropped subscription is retired
/// (what still arrives on it is ignored).
pub fn retire(sync: &mut KalshiBookSync, writer: &BookWriter, gap: &BookAction) {
    for pair in gap.stale_pairs() {
        writer.stale(pair);
    }
    writer.stats.resyncs.fetch_add(1, Ordering::Relaxed);
    match gap {
        BookAction::Resync { sid, .. } | BookAction::Resubscribe { sid: Some(sid), .. } => {
            sync.forget_sid(*sid)
        }
        BookAction::Resubscribe { sid: None, .. } => {}
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(cfg: &OrderbookFeedConfig) -> Result<Socket, String> {
    let mut request = cfg
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad URL: {e}"))?;
    if let Some(signer) = &cfg.signer {
        // A fresh timestamp and signature on every (re)connect (§1.2).
        let ts = now_micros() / 1_000;
        let headers = signer
            .sign_ws_handshake(ts)
            .map_err(|e| format!("signing the handshake: {e}"))?;
        for (name, value) in headers.pairs() {
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            request.headers_mut().insert(name, value);
        }
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    Ok(ws)
}

struct Session<'a> {
    cfg: &'a OrderbookFeedConfig,
    writer: &'a BookWriter,
    recorder: Option<&'a Recorder>,
    sync: KalshiBookSync,
    tickers: HashMap<PairId, String>,
    next_id: u64,
    /// The `fill` subscription: the command id until `subscribed`, then its sid.
    fill_cmd: Option<u64>,
    fill_sid: Option<u64>,
}

impl Session<'_> {
    fn command(&mut self, make: impl FnOnce(u64) -> Command) -> Message {
        self.next_id += 1;
        Message::Text(make(self.next_id).to_json().into())
    }

    /// What to send so the books can be trusted again.
    fn answer(&mut self, action: BookAction) -> Vec<Message> {
        retire(&mut self.sync, self.writer, &action);
        let pricing = self.cfg.pricing;
        match action {
            // A new subscription restarts `seq` unambiguously (whether a
            // get_snapshot reply continues the old series is not documented).
            BookAction::Resync {
                sid,
                market_tickers,
                reason,
                ..
            } => {
                tracing::info!(
                    sid,
                    ?reason,
                    markets = market_tickers.len(),
                    "kalshi book resync: resubscribing"
                );
                vec![
                    self.command(|id| Command::unsubscribe(id, vec![sid])),
                    self.command(|id| Command::subscribe_orderbook(id, market_tickers, pricing)),
                ]
            }
            BookAction::Resubscribe {
                sid,
                market_tickers,
                code,
                ..
            } => {
                tracing::warn!(
                    ?sid,
                    ?code,
                    "kalshi subscription ended by the venue: resubscribing"
                );
                vec![self.command(|id| Command::subscribe_orderbook(id, market_tickers, pricing))]
            }
        }
    }

    fn subscribe_fills(&mut self) -> Message {
        let msg = self.command(|id| Command::subscribe_channels(id, vec![Channel::Fill]));
        self.fill_cmd = Some(self.next_id);
        self.fill_sid = None;
        msg
    }

    /// Fill-channel messages; `None` when the message is not about it.
    fn on_fill_channel(&mut self, msg: &KalshiMessage, received: u64) -> Option<Vec<Message>> {
        let tx = self.cfg.fills.as_ref()?;
        match msg {
            KalshiMessage::Subscribed(s) if s.msg.channel == "fill" => {
                self.fill_sid = Some(s.msg.sid);
                // Said on the bus so an operator (and a test) knows fills flow now.
                self.writer
                    .status(FeedStatus::Connected, FILLS_SUBSCRIBED.to_string());
                Some(Vec::new())
            }
            KalshiMessage::Fill(f) => {
                match fill_event(&f.msg, received) {
                    // No receiver is not an error: nobody is trading right now.
                    Ok(ev) => {
                        let _ = tx.send(ev);
                    }
                    Err(e) => self
                        .writer
                        .stats
                        .bad_message(Venue::Kalshi, "fill", &e.to_string()),
                }
                Some(Vec::new())
            }
            KalshiMessage::Error(e)
                if (e.sid.is_some() && e.sid == self.fill_sid)
                    || (e.id.is_some() && e.id == self.fill_cmd && self.fill_sid.is_none()) =>
            {
                let code = WsErrorCode::from_code(e.msg.code);
                tracing::warn!(?code, msg = %e.msg.msg, "kalshi fill subscription error");
                if code.requires_resubscribe() {
                    Some(vec![self.subscribe_fills()])
                } else {
                    Some(Vec::new())
                }
            }
            _ => None,
        }
    }

    fn on_text(&mut self, text: &str) -> Vec<Message> {
        let received = now_micros();
        if let Some(r) = self.recorder {
            r.record(Venue::Kalshi, received, text);
        }
        let Some(msg) = parse_counted(self.writer, text) else {
            return Vec::new();
        };
        if let Some(out) = self.on_fill_channel(&msg, received) {
            return out;
        }
        apply_book_message(&mut self.sync, self.writer, &self.tickers, &msg, received)
            .into_iter()
            .flat_map(|gap| self.answer(gap))
            .collect()
    }
}

/// Runs until `shutdown` turns true, reconnecting as needed.
pub async fn run_orderbook_feed(
    cfg: OrderbookFeedConfig,
    writer: BookWriter,
    recorder: Option<Arc<Recorder>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let by_ticker: HashMap<String, PairId> = cfg
        .pairs
        .iter()
        .map(|p| (p.kalshi_ticker.clone(), p.id.clone()))
        .collect();
    let tickers: Vec<String> = cfg.pairs.iter().map(|p| p.kalshi_ticker.clone()).collect();
    let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    while !*shutdown.borrow() {
        writer.status(FeedStatus::Connecting, cfg.ws_url.clone());
        let mut ws = match connect(&cfg).await {
            Ok(ws) => ws,
            Err(e) => {
                writer.status(FeedStatus::Reconnecting, e);
                let wait = backoff.next_delay();
                tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = shutdown.changed() => return }
            }
        };
        let mut session = Session {
            cfg: &cfg,
            writer: &writer,
            recorder: recorder.as_deref(),
            sync: KalshiBookSync::new(by_ticker.clone(), cfg.pricing),
            tickers: by_ticker
                .iter()
                .map(|(t, p)| (p.clone(), t.clone()))
                .collect(),
            next_id: 0,
            fill_cmd: None,
            fill_sid: None,
        };
        let subscribe =
            session.command(|id| Command::subscribe_orderbook(id, tickers.clone(), cfg.pricing));
        if ws.send(subscribe).await.is_err() {
            continue;
        }
        if cfg.fills.is_some() {
            let fills = session.subscribe_fills();
            if ws.send(fills).await.is_err() {
                continue;
            }
        }
        backoff.reset();
        writer.status(
            FeedStatus::Connected,
            format!("subscribed to {} markets", tickers.len()),
        );
        let reason = 'session: loop {
            crate::execution::let_queued_trades_go().await;
            let frame = tokio::select! {
                frame = ws.next() => frame,
                _ = shutdown.changed() => {
                    let _ = ws.close(None).await;
                    writer.status(FeedStatus::Disconnected, "shutdown");
                    return;
                }
            };
            // Frames already waiting go into the books before the plugins
            // look. Kalshi pings every 10 s; the batch answers.
            let applied = writer
                .batch()
                .apply(&mut ws, frame, |text| session.on_text(text))
                .await;
            if let Err(reason) = applied {
                break 'session reason;
            }
        };
        writer.session_lost(cfg.pairs.iter().map(|p| &p.id), reason);
        let wait = backoff.next_delay();
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = shutdown.changed() => return }
    }
}

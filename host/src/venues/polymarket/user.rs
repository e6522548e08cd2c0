//! The Polymarket user channel (PROTOCOLS.md §2.4 "User channel", §2.5): our
//! own orders and trades, authenticated with the L2 API credentials in the
//! subscribe frame and filtered by **condition ids**.
//!
//! A matched order is not a done trade: the trade is settled on-chain by the
//! operator and its `status` goes `MATCHED` → `MINED` → `CONFIRMED`, or ends
//! `FAILED` (possibly after `RETRYING`), in which case the leg did not happen.
//! [`run_user_feed`] publishes every `order` and `trade` event as a typed
//! [`UserEvent`] on the `tokio::sync::broadcast` sender it is given, plus
//! `Connected`/`Disconnected` so a consumer knows when updates may have been
//! missed (the channel replays nothing: reconcile with `GET /data/trades`).
//! The venue answers bad credentials by dropping the connection; the feed
//! then reconnects with backoff like any other drop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::Message;

use super::auth::ApiCreds;
use super::messages::{
    OrderEventType, OrderStatus, PING, ParseError, PolyMessage, TradeStatus, UserOrderMsg,
    UserTradeMsg, WireSide, parse_each, user_subscribe_json,
};
use super::orders::parse_plain_decimal;
use crate::domain::{Action, Outcome, Price, Size, TokenId, UnixMicros, Venue};
use crate::strategy::now_micros;
use crate::venues::feed::{Backoff, FeedStats, Recorder};

/// One of our trades, from the user channel or `GET /data/trades`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolyTrade {
    pub trade_id: String,
    pub status: TradeStatus,
    /// Condition id.
    pub market: String,
    pub token: TokenId,
    /// `Yes`/`No` when the venue names it.
    pub outcome: Option<Outcome>,
    /// The taker's direction (BUY/SELL).
    pub side: Action,
    pub price: Price,
    pub size: Size,
    /// Our order when we were the taker (every order the executor sends).
    pub taker_order_id: Option<String>,
    /// The resting orders matched against.
    pub maker_order_ids: Vec<String>,
    pub transaction_hash: Option<String>,
    /// When we read it, µs since the epoch.
    pub received_at: UnixMicros,
}

impl PolyTrade {
    /// Whether `order_id` (an order hash) took part in this trade.
    pub fn involves(&self, order_id: &str) -> bool {
        self.taker_order_id
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(order_id))
            || self
                .maker_order_ids
                .iter()
                .any(|m| m.eq_ignore_ascii_case(order_id))
    }

    /// `CONFIRMED` or `FAILED`: nothing will change any more.
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// One of our orders changed (placed, partly filled, cancelled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolyOrderUpdate {
    pub order_id: String,
    pub kind: OrderEventType,
    pub status: Option<OrderStatus>,
    pub market: String,
    pub token: TokenId,
    pub outcome: Option<Outcome>,
    pub side: Action,
    pub price: Price,
    pub original_size: Size,
    pub size_matched: Size,
    pub trade_ids: Vec<String>,
    pub received_at: UnixMicros,
}

/// What the user feed publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEvent {
    Trade(PolyTrade),
    Order(PolyOrderUpdate),
    /// The subscribe frame went out on a fresh connection.
    Connected,
    /// The connection ended; events until the next `Connected` are lost.
    Disconnected {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user-channel {kind} has a bad {field}")]
pub struct UserEventError {
    pub kind: &'static str,
    pub field: &'static str,
}

fn price(s: &str, kind: &'static str) -> Result<Price, UserEventError> {
    parse_plain_decimal(s)
        .and_then(|d| Price::new(d).ok())
        .ok_or(UserEventError {
            kind,
            field: "price",
        })
}

fn size(s: &str, kind: &'static str, field: &'static str) -> Result<Size, UserEventError> {
    parse_plain_decimal(s)
        .and_then(|d| Size::new(d).ok())
        .ok_or(UserEventError { kind, field })
}

fn token(s: &str, kind: &'static str) -> Result<TokenId, UserEventError> {
    TokenId::new(s).map_err(|_| UserEventError {
        kind,
        field: "asset_id",
    })
}

fn outcome(s: Option<&str>) -> Option<Outcome> {
    match s?.trim().to_ascii_lowercase().as_str() {
        "yes" => Some(Outcome::Yes),
        "no" => Some(Outcome::No),
        _ => None,
    }
}

fn action(side: WireSide) -> Action {
    match side {
        WireSide::Buy => Action::Buy,
        WireSide::Sell => Action::Sell,
    }
}

/// A wire `trade` (user channel or REST) in domain terms.
pub fn trade(t: &UserTradeMsg, received_at: UnixMicros) -> Result<PolyTrade, UserEventError> {
    const KIND: &str = "trade";
    Ok(PolyTrade {
        trade_id: t.id.clone(),
        status: t.status,
        market: t.market.clone(),
        token: token(&t.asset_id, KIND)?,
        outcome: outcome(t.outcome.as_deref()),
        side: action(t.side),
        price: price(&t.price, KIND)?,
        size: size(&t.size, KIND, "size")?,
        taker_order_id: t.taker_order_id.clone().filter(|s| !s.is_empty()),
        maker_order_ids: t.maker_orders.iter().map(|m| m.order_id.clone()).collect(),
        transaction_hash: t.transaction_hash.clone().filter(|s| !s.is_empty()),
        received_at,
    })
}

/// A wire `order` event in domain terms.
pub fn order_update(
    o: &UserOrderMsg,
    received_at: UnixMicros,
) -> Result<PolyOrderUpdate, UserEventError> {
    const KIND: &str = "order";
    Ok(PolyOrderUpdate {
        order_id: o.id.clone(),
        kind: o.kind,
        status: o.status,
        market: o.market.clone(),
        token: token(&o.asset_id, KIND)?,
        outcome: outcome(o.outcome.as_deref()),
        side: action(o.side),
        price: price(&o.price, KIND)?,
        original_size: size(&o.original_size, KIND, "original_size")?,
        size_matched: size(&o.size_matched, KIND, "size_matched").or_else(|e| {
            // "0" is not a Size: nothing matched yet.
            if parse_plain_decimal(&o.size_matched).is_some_and(|d| d.is_zero()) {
                Ok(Size::ZERO)
            } else {
                Err(e)
            }
        })?,
        trade_ids: o.associate_trades.clone().unwrap_or_default(),
        received_at,
    })
}

#[derive(Clone)]
pub struct UserFeedConfig {
    pub ws_url: String,
    pub creds: ApiCreds,
    /// Condition ids to follow; empty follows every market of the account.
    pub markets: Vec<String>,
    /// The venue expects a text PING every 10 s.
    pub ping_every: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl std::fmt::Debug for UserFeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserFeedConfig")
            .field("ws_url", &self.ws_url)
            .field("creds", &self.creds)
            .field("markets", &self.markets.len())
            .finish()
    }
}

impl UserFeedConfig {
    pub fn new(ws_url: impl Into<String>, creds: ApiCreds, markets: Vec<String>) -> Self {
        UserFeedConfig {
            ws_url: ws_url.into(),
            creds,
            markets,
            ping_every: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

fn kind(e: &ParseError) -> &'static str {
    match e {
        ParseError::Legacy => "legacy",
        ParseError::Unknown { .. } => "unknown",
        ParseError::Malformed { .. } => "malformed",
    }
}

/// Parses one frame and publishes its events; bad ones are counted.
fn on_text(
    text: &str,
    events: &broadcast::Sender<UserEvent>,
    stats: &FeedStats,
    recorder: Option<&Recorder>,
) {
    let received = now_micros();
    stats.messages.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = recorder {
        r.record(Venue::Polymarket, received, text);
    }
    let parsed = match parse_each(text) {
        Ok(p) => p,
        Err(e) => return stats.bad_message(Venue::Polymarket, kind(&e), &e.to_string()),
    };
    for msg in parsed {
        let event = match msg {
            Ok(PolyMessage::Pong) => continue,
            Ok(PolyMessage::Trade(t)) => trade(&t, received).map(UserEvent::Trade),
            Ok(PolyMessage::Order(o)) => order_update(&o, received).map(UserEvent::Order),
            Ok(_) => {
                stats.bad_message(
                    Venue::Polymarket,
                    "user_unexpected",
                    "market event on /ws/user",
                );
                continue;
            }
            Err(e) => {
                stats.bad_message(Venue::Polymarket, kind(&e), &e.to_string());
                continue;
            }
        };
        match event {
            // No receiver is not an error: nobody is trading right now.
            Ok(ev) => {
                let _ = events.send(ev);
            }
            Err(e) => stats.bad_message(Venue::Polymarket, "user_event", &e.to_string()),
        }
    }
}

/// Runs until `shutdown` turns true, reconnecting with backoff.
pub async fn run_user_feed(
    cfg: UserFeedConfig,
    events: broadcast::Sender<UserEvent>,
    stats: Arc<FeedStats>,
    recorder: Option<Arc<Recorder>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let subscribe = user_subscribe_json(&cfg.creds, &cfg.markets);
    let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    while !*shutdown.borrow() {
        let mut ws = match tokio_tungstenite::connect_async(cfg.ws_url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                let _ = events.send(UserEvent::Disconnected {
                    reason: format!("connect failed: {e}"),
                });
                let wait = backoff.next_delay();
                tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = shutdown.changed() => return }
            }
        };
        if ws
            .send(Message::Text(subscribe.clone().into()))
            .await
            .is_err()
        {
            let wait = backoff.next_delay();
            tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = shutdown.changed() => return }
        }
        let _ = events.send(UserEvent::Connected);
        let mut ping = tokio::time::interval(cfg.ping_every);
        ping.tick().await;
        let mut heard = false;
        let reason = loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        heard = true;
                        on_text(t.as_str(), &events, &stats, recorder.as_deref());
                    }
                    Some(Ok(Message::Ping(_))) => { let _ = ws.flush().await; }
                    Some(Ok(Message::Close(f))) => break format!("closed by venue: {f:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("socket error: {e}"),
                    None => break "socket ended".to_string(),
                },
                _ = ping.tick() => {
                    if ws.send(Message::Text(PING.into())).await.is_err() { break "ping failed".to_string(); }
                }
                _ = shutdown.changed() => {
                    let _ = ws.close(None).await;
                    let _ = events.send(UserEvent::Disconnected { reason: "shutdown".into() });
                    return;
                }
            }
        };
        // A connection that worked resets the backoff; one dropped before a
        // single frame (how the venue refuses credentials) keeps growing it.
        if heard {
            backoff.reset();
        }
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%reason, "polymarket user channel disconnected");
        let _ = events.send(UserEvent::Disconnected { reason });
        let wait = backoff.next_delay();
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = shutdown.changed() => return }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venues::polymarket::messages::parse;
    use rust_decimal_macros::dec;

    #[test]
    fn documented_trade_and_order_events_become_domain_updates() {
        let text = r#"[{"event_type": "trade", "id": "28c4d2eb-bbea-40e7-a9f0-b2fdb56b2c2e",
 "asset_id": "52114319501245915516055106046884209969926127482827954674443846427813813222426",
 "market": "0xbd31dc8a20211944f6b70f31557f1001557b59905b7738480ca09bd4532f84af",
 "price": "0.57", "size": "10", "side": "BUY", "status": "MATCHED", "timestamp": "1672290701",
 "maker_orders": [{"order_id": "0xff354cd7ca7539dfa9c28d90943ab5779a4eac34b9b37a757d7b32bdfb11790b", "price": "0.57", "matched_amount": "10"}]},
{"event_type": "order", "id": "0xff354cd7ca7539dfa9c28d90943ab5779a4eac34b9b37a757d7b32bdfb11790b", "type": "PLACEMENT",
 "asset_id": "52114319501245915516055106046884209969926127482827954674443846427813813222426",
 "market": "0xbd31dc8a20211944f6b70f31557f1001557b59905b7738480ca09bd4532f84af",
 "price": "0.57", "original_size": "10", "size_matched": "0", "side": "SELL", "timestamp": "1672290687"}]"#;
        let msgs = parse(text).unwrap();
        let PolyMessage::Trade(t) = &msgs[0] else {
            panic!()
        };
        let t = trade(t, 5).unwrap();
        assert_eq!(t.status, TradeStatus::Matched);
        assert!(!t.is_final());
        assert_eq!(
            (t.side, t.price.value(), t.size.value()),
            (Action::Buy, dec!(0.57), dec!(10))
        );
        assert!(t.involves("0xFF354cd7ca7539dfa9c28d90943ab5779a4eac34b9b37a757d7b32bdfb11790b"));
        assert!(!t.involves("0x01"));
        let PolyMessage::Order(o) = &msgs[1] else {
            panic!()
        };
        let o = order_update(o, 5).unwrap();
        assert_eq!(o.kind, OrderEventType::Placement);
        assert_eq!((o.side, o.size_matched), (Action::Sell, Size::ZERO));
        assert_eq!(o.original_size, Size::whole(10));
    }

    #[test]
    fn bad_numbers_are_errors_not_panics() {
        let text = r#"{"event_type":"trade","id":"t","asset_id":"1","market":"0x1","price":"1.5","size":"10","side":"BUY","status":"MINED"}"#;
        let PolyMessage::Trade(t) = &parse(text).unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            trade(t, 0),
            Err(UserEventError {
                kind: "trade",
                field: "price"
            })
        );
        let stats = FeedStats::default();
        let (tx, mut rx) = broadcast::channel(4);
        on_text(text, &tx, &stats, None);
        on_text("{not json", &tx, &stats, None);
        assert!(rx.try_recv().is_err());
        assert_eq!(stats.bad_messages()["user_event"], 1);
        assert_eq!(stats.bad_messages()["malformed"], 1);
    }
}

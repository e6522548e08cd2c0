//! Simulated Kalshi: WebSocket v2 (`orderbook_delta` with snapshots, deltas,
//! `seq`, heartbeats, error codes) and the public market REST endpoints, in the
//! current fixed-point format (PROTOCOLS.md §1.4, §1.5).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::{FeedEvent, KalshiAuth, Shared, fixed, read};
use crate::domain::{Level, OrderBook, Venue};

#[derive(Clone)]
struct Ctx {
    state: Shared,
    auth: Option<KalshiAuth>,
}

pub fn router(state: Shared, auth: Option<KalshiAuth>) -> Router {
    Router::new()
        .route("/trade-api/ws/v2", get(ws))
        .route("/trade-api/v2/markets/{ticker}", get(market))
        .route("/trade-api/v2/markets/{ticker}/orderbook", get(orderbook))
        .with_state(Ctx { state, auth })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn ws(State(ctx): State<Ctx>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    // The handshake is signed like a REST GET of the WebSocket path (§1.2).
    if let Some(auth) = &ctx.auth
        && let Err(e) = auth(&headers, "GET", "/trade-api/ws/v2")
    {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", &e);
    }
    upgrade.on_upgrade(move |socket| session(ctx.state, socket))
}

/// Levels as Kalshi lists them: ascending, best bid last.
fn levels(book: &OrderBook, yes_priced: bool) -> Vec<Value> {
    let mut out: Vec<(rust_decimal::Decimal, String)> = book
        .bids()
        .map(|l: Level| {
            let p = if yes_priced {
                l.price.complement().value()
            } else {
                l.price.value()
            };
            (p, fixed(l.size.value(), 2))
        })
        .collect();
    out.sort_by_key(|a| a.0);
    out.into_iter()
        .map(|(p, s)| json!([fixed(p, 4), s]))
        .collect()
}

struct Sub {
    sid: u64,
    tickers: BTreeSet<String>,
    use_yes_price: bool,
    seq: u64,
}

fn snapshot(state: &Shared, sub: &mut Sub, ticker: &str) -> Option<String> {
    let st = read(state);
    let i = st.pairs.iter().position(|p| p.kalshi_ticker == ticker)?;
    let b = st.markets[i].books();
    sub.seq += 1;
    let mut msg = serde_json::Map::new();
    msg.insert("market_ticker".into(), json!(ticker));
    msg.insert("market_id".into(), json!(format!("sim-{i}")));
    // Keys are absent when a side is empty (§1.4).
    let yes = levels(&b.kalshi_yes, false);
    let no = levels(&b.kalshi_no, sub.use_yes_price);
    if !yes.is_empty() {
        msg.insert("yes_dollars_fp".into(), Value::Array(yes));
    }
    if !no.is_empty() {
        msg.insert("no_dollars_fp".into(), Value::Array(no));
    }
    Some(
        json!({"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.seq, "msg": msg})
            .to_string(),
    )
}

async fn session(state: Shared, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut feed = read(&state).feed.subscribe();
    let mut sub: Option<Sub> = None;
    let mut next_sid = 1u64;
    let mut skip_seq = false;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(10));
    loop {
        let mut out: Vec<String> = Vec::new();
        tokio::select! {
            incoming = rx.next() => {
                let Some(Ok(frame)) = incoming else { return };
                let Message::Text(text) = frame else { continue };
                let Ok(cmd) = serde_json::from_str::<Value>(text.as_str()) else {
                    out.push(json!({"id": 0, "type": "error", "msg": {"code": 1, "msg": "Unable to process message"}}).to_string());
                    for m in out { let _ = tx.send(Message::Text(m.into())).await; }
                    continue;
                };
                let id = cmd.get("id").cloned().unwrap_or(json!(0));
                let params = cmd.get("params").cloned().unwrap_or(json!({}));
                match cmd.get("cmd").and_then(Value::as_str) {
                    Some("subscribe") => {
                        let channels: Vec<&str> = params.get("channels").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                        if channels.is_empty() {
                            out.push(json!({"id": id, "type": "error", "msg": {"code": 3, "msg": "Channels required"}}).to_string());
                        }
                        for ch in channels {
                            let sid = next_sid;
                            next_sid += 1;
                            match ch {
                                "orderbook_delta" => {
                                    let tickers: BTreeSet<String> = params.get("market_tickers").and_then(Value::as_array)
                                        .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
                                        .or_else(|| params.get("market_ticker").and_then(Value::as_str).map(|t| BTreeSet::from([t.to_string()])))
                                        .unwrap_or_default();
                                    if tickers.is_empty() {
                                        out.push(json!({"id": id, "type": "error", "msg": {"code": 14, "msg": "Market Ticker required"}}).to_string());
                                        continue;
                                    }
                                    let use_yes_price = params.get("use_yes_price").and_then(Value::as_bool).unwrap_or(false);
                                    let mut s = Sub { sid, tickers: tickers.clone(), use_yes_price, seq: 0 };
                                    out.push(json!({"id": id, "type": "subscribed", "msg": {"channel": ch, "sid": sid}}).to_string());
                                    // Snapshot and feed subscription under one read lock: no change missed or repeated.
                                    feed = read(&state).feed.subscribe();
                                    for t in &tickers {
                                        match snapshot(&state, &mut s, t) {
                                            Some(m) => out.push(m),
                                            None => out.push(json!({"id": id, "type": "error", "msg": {"code": 16, "msg": "Market not found", "market_ticker": t}}).to_string()),
                                        }
                                    }
                                    sub = Some(s);
                                }
                                "fill" | "user_orders" | "ticker" | "trade" => {
                                    out.push(json!({"id": id, "type": "subscribed", "msg": {"channel": ch, "sid": sid}}).to_string());
                                }
                                _ => out.push(json!({"id": id, "type": "error", "msg": {"code": 8, "msg": "Unknown channel name"}}).to_string()),
                            }
                        }
                    }
                    Some("update_subscription") if params.get("action").and_then(Value::as_str) == Some("get_snapshot") => {
                        if let Some(s) = sub.as_mut() {
                            let tickers: Vec<String> = params.get("market_tickers").and_then(Value::as_array)
                                .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default();
                            // Resynchronise under the lock so later deltas follow the snapshot.
                            feed = read(&state).feed.subscribe();
                            for t in tickers {
                                if let Some(m) = snapshot(&state, s, &t) { out.push(m); }
                            }
                        } else {
                            out.push(json!({"id": id, "type": "error", "msg": {"code": 7, "msg": "Unknown subscription ID"}}).to_string());
                        }
                    }
                    Some("unsubscribe") => {
                        if let Some(s) = sub.take() {
                            out.push(json!({"id": id, "sid": s.sid, "seq": s.seq + 1, "type": "unsubscribed"}).to_string());
                        }
                    }
                    Some("list_subscriptions") => {
                        let list: Vec<Value> = sub.iter().map(|s| json!({"channel": "orderbook_delta", "sid": s.sid})).collect();
                        out.push(json!({"id": id, "type": "ok", "msg": list}).to_string());
                    }
                    Some(_) | None => out.push(json!({"id": id, "type": "error", "msg": {"code": 5, "msg": "Unknown command"}}).to_string()),
                }
            }
            event = feed.recv() => match event {
                Ok(FeedEvent::Book { pair, diff, at_ms }) => {
                    let Some(s) = sub.as_mut() else { continue };
                    let ticker = read(&state).pairs.get(pair).map(|p| p.kalshi_ticker.clone());
                    let Some(ticker) = ticker.filter(|t| s.tickers.contains(t)) else { continue };
                    for (side, changes) in [("yes", &diff.kalshi_yes), ("no", &diff.kalshi_no)] {
                        for c in changes.iter() {
                            let price = if side == "no" && s.use_yes_price { c.price.complement().value() } else { c.price.value() };
                            s.seq += if skip_seq { 2 } else { 1 };
                            skip_seq = false;
                            out.push(json!({
                                "type": "orderbook_delta", "sid": s.sid, "seq": s.seq,
                                "msg": {"market_ticker": ticker, "market_id": format!("sim-{pair}"),
                                        "price_dollars": fixed(price, 4), "delta_fp": fixed(c.delta, 2), "side": side,
                                        "ts_ms": at_ms}
                            }).to_string());
                        }
                    }
                }
                Ok(FeedEvent::Gap { venue: Venue::Kalshi }) => skip_seq = true,
                Ok(FeedEvent::Disconnect { venue: Venue::Kalshi }) => {
                    let _ = tx.send(Message::Close(None)).await;
                    return;
                }
                Ok(FeedEvent::Malformed { venue: Venue::Kalshi }) => out.push("{\"type\":\"orderbook_delta\",\"sid\":".to_string()),
                Ok(_) => {}
                // This session fell behind the feed: a real venue would send
                // error 25 (subscription buffer overflow) and drop the subscription.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if sub.take().is_some() {
                        out.push(json!({"id": 0, "type": "error", "msg": {"code": 25, "msg": "Subscription buffer overflow"}}).to_string());
                    }
                }
                Err(_) => return,
            },
            _ = heartbeat.tick() => {
                if tx.send(Message::Ping(axum::body::Bytes::from_static(b"heartbeat"))).await.is_err() { return; }
            }
        }
        for m in out {
            if tx.send(Message::Text(m.into())).await.is_err() {
                return;
            }
        }
    }
}

async fn market(State(ctx): State<Ctx>, Path(ticker): Path<String>) -> Response {
    let st = read(&ctx.state);
    let Some(p) = st.pairs.iter().find(|p| p.kalshi_ticker == ticker) else {
        return error(StatusCode::NOT_FOUND, "not_found", "market not found");
    };
    axum::Json(json!({"market": {
        "ticker": p.kalshi_ticker, "event_ticker": p.kalshi_ticker.split('-').next().unwrap_or(""),
        "market_type": "binary", "status": "active", "rules_primary": p.rules, "rules_secondary": "",
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0100", "end": "0.9900", "step": "0.0100"}],
        "exchange_index": 0
    }}))
    .into_response()
}

async fn orderbook(State(ctx): State<Ctx>, Path(ticker): Path<String>) -> Response {
    let st = read(&ctx.state);
    let Some(i) = st.pairs.iter().position(|p| p.kalshi_ticker == ticker) else {
        return error(StatusCode::NOT_FOUND, "not_found", "market not found");
    };
    let b = st.markets[i].books();
    // REST NO prices are NO prices; there is no use_yes_price on REST (§1.5).
    axum::Json(json!({"orderbook_fp": {"yes_dollars": levels(&b.kalshi_yes, false), "no_dollars": levels(&b.kalshi_no, false)}})).into_response()
}

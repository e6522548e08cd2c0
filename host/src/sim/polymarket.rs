//! Simulated Polymarket CLOB: the market WebSocket (`book`, current-format
//! `price_change`, text PING/PONG) and `GET /book` with the server's book hash
//! (PROTOCOLS.md §2.3, §2.4, §3.5).

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{FeedEvent, Shared, SimState, read};
use crate::domain::{Level, OrderBook, Side, Venue};

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/ws/market", get(ws))
        .route("/book", get(book))
        .with_state(state)
}

/// Polymarket writes prices and sizes without trailing zeros ("0.5", "200").
fn num(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

fn token_book<'a>(st: &'a SimState, token: &str) -> Option<(usize, bool, &'a OrderBook)> {
    st.pairs.iter().enumerate().find_map(|(i, p)| {
        if p.yes_token == token {
            Some((i, true, &st.markets[i].books().poly_yes))
        } else if p.no_token == token {
            Some((i, false, &st.markets[i].books().poly_no))
        } else {
            None
        }
    })
}

fn level_json(levels: &[Level]) -> String {
    let items: Vec<String> = levels
        .iter()
        .map(|l| {
            format!(
                "{{\"price\":\"{}\",\"size\":\"{}\"}}",
                num(l.price.value()),
                num(l.size.value())
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Both sides worst-first, as the live venue lists them (§2.3).
fn sides(book: &OrderBook) -> (Vec<Level>, Vec<Level>) {
    let mut bids: Vec<Level> = book.bids().collect();
    bids.reverse();
    let mut asks: Vec<Level> = book.asks().collect();
    asks.reverse();
    (bids, asks)
}

/// The server's book hash: SHA-1 of the compact JSON with `hash` empty, keys in
/// this exact order (§2.3, py-clob-client-v2 `generate_orderbook_summary_hash`).
#[allow(clippy::too_many_arguments)] // one argument per field of the hashed summary
pub fn book_hash(
    market: &str,
    asset_id: &str,
    timestamp: &str,
    bids: &[Level],
    asks: &[Level],
    min_order_size: &str,
    tick_size: &str,
    neg_risk: bool,
    last_trade_price: &str,
) -> String {
    let text = format!(
        "{{\"market\":\"{market}\",\"asset_id\":\"{asset_id}\",\"timestamp\":\"{timestamp}\",\"hash\":\"\",\"bids\":{},\"asks\":{},\"min_order_size\":\"{min_order_size}\",\"tick_size\":\"{tick_size}\",\"neg_risk\":{neg_risk},\"last_trade_price\":\"{last_trade_price}\"}}",
        level_json(bids),
        level_json(asks)
    );
    hex::encode(Sha1::digest(text.as_bytes()))
}

fn book_event(st: &SimState, token: &str) -> Option<Value> {
    let (i, _, b) = token_book(st, token)?;
    let (bids, asks) = sides(b);
    let ts = (st.started.elapsed().as_millis() as u64 + 1_760_000_000_000).to_string();
    let market = &st.pairs[i].condition_id;
    let hash = book_hash(market, token, &ts, &bids, &asks, "5", "0.01", false, "0.5");
    let lv = |v: &[Level]| -> Vec<Value> {
        v.iter()
            .map(|l| json!({"price": num(l.price.value()), "size": num(l.size.value())}))
            .collect()
    };
    Some(
        json!({"event_type": "book", "asset_id": token, "market": market, "bids": lv(&bids), "asks": lv(&asks),
                "timestamp": ts, "hash": hash, "tick_size": "0.01", "last_trade_price": "0.5"}),
    )
}

async fn ws(State(state): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    // The market channel needs no auth (§2.4).
    upgrade.on_upgrade(move |socket| session(state, socket))
}

async fn session(state: Shared, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut feed = read(&state).feed.subscribe();
    let mut assets: BTreeSet<String> = BTreeSet::new();
    // A scripted gap: the next change is lost on the way, as on a flaky link.
    let mut drop_next = false;
    loop {
        let mut out: Vec<String> = Vec::new();
        tokio::select! {
            incoming = rx.next() => {
                let Some(Ok(frame)) = incoming else { return };
                let Message::Text(text) = frame else { continue };
                if text.as_str() == "PING" {
                    out.push("PONG".into());
                } else if let Ok(v) = serde_json::from_str::<Value>(text.as_str()) {
                    let ids: Vec<String> = v.get("assets_ids").and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default();
                    if v.get("operation").and_then(Value::as_str) == Some("unsubscribe") {
                        for id in &ids { assets.remove(id); }
                    } else {
                        // Books of new assets, then changes: under one read lock.
                        let st = read(&state);
                        feed = st.feed.subscribe();
                        let books: Vec<Value> = ids.iter().filter(|id| !assets.contains(*id)).filter_map(|id| book_event(&st, id)).collect();
                        drop(st);
                        assets.extend(ids);
                        if !books.is_empty() {
                            out.push(Value::Array(books).to_string());
                        }
                    }
                }
                // Anything else is ignored, as the venue does.
            }
            event = feed.recv() => match event {
                Ok(FeedEvent::Book { pair, diff, at_ms }) => {
                    if std::mem::take(&mut drop_next) {
                        continue;
                    }
                    let st = read(&state);
                    let Some(p) = st.pairs.get(pair) else { continue };
                    let mut changes = Vec::new();
                    for (token, book, lv) in [(&p.yes_token, &st.markets[pair].books().poly_yes, &diff.poly_yes), (&p.no_token, &st.markets[pair].books().poly_no, &diff.poly_no)] {
                        if !assets.contains(token) { continue; }
                        let best_bid = book.best_bid().map_or("0".to_string(), |l| num(l.price.value()));
                        let best_ask = book.best_ask().map_or("1".to_string(), |l| num(l.price.value()));
                        for c in lv.iter() {
                            changes.push(json!({"asset_id": token, "price": num(c.price.value()), "size": num(c.new_size.value()),
                                "side": if c.side == Side::Bid { "BUY" } else { "SELL" },
                                "hash": hex::encode(Sha1::digest(format!("{token}{at_ms}{}", c.price).as_bytes())),
                                "best_bid": best_bid, "best_ask": best_ask}));
                        }
                    }
                    if !changes.is_empty() {
                        out.push(json!({"market": p.condition_id, "price_changes": changes,
                            "timestamp": (at_ms + 1_760_000_000_000).to_string(), "event_type": "price_change"}).to_string());
                    }
                }
                Ok(FeedEvent::Disconnect { venue: Venue::Polymarket }) => {
                    let _ = tx.send(Message::Close(None)).await;
                    return;
                }
                Ok(FeedEvent::Malformed { venue: Venue::Polymarket }) => out.push("[{\"event_type\":\"price_change\",".into()),
                // No sequence numbers on this venue: a gap is a silently lost change;
                // the client notices through best_bid/best_ask or the hash.
                Ok(FeedEvent::Gap { venue: Venue::Polymarket }) => drop_next = true,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Re-send full books, as the venue does after a trade.
                    let st = read(&state);
                    let books: Vec<Value> = assets.iter().filter_map(|id| book_event(&st, id)).collect();
                    out.push(Value::Array(books).to_string());
                }
                Err(_) => return,
            },
        }
        for m in out {
            if tx.send(Message::Text(m.into())).await.is_err() {
                return;
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct BookQuery {
    token_id: String,
}

async fn book(State(state): State<Shared>, Query(q): Query<BookQuery>) -> Response {
    let st = read(&state);
    let Some((i, _, b)) = token_book(&st, &q.token_id) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "No orderbook exists for the requested token id"})),
        )
            .into_response();
    };
    let (bids, asks) = sides(b);
    let ts = (st.started.elapsed().as_millis() as u64 + 1_760_000_000_000).to_string();
    let market = st.pairs[i].condition_id.clone();
    let hash = book_hash(
        &market,
        &q.token_id,
        &ts,
        &bids,
        &asks,
        "5",
        "0.01",
        false,
        "0.5",
    );
    let lv = |v: &[Level]| -> Vec<Value> {
        v.iter()
            .map(|l| json!({"price": num(l.price.value()), "size": num(l.size.value())}))
            .collect()
    };
    axum::Json(json!({"market": market, "asset_id": q.token_id, "timestamp": ts, "hash": hash,
        "bids": lv(&bids), "asks": lv(&asks), "min_order_size": "5", "tick_size": "0.01", "neg_risk": false, "last_trade_price": "0.5"}))
    .into_response()
}

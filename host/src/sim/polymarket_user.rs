//! Simulated Polymarket private side: the user channel (`/ws/user`, L2
//! credentials in the subscribe frame, condition-id filter, text PING/PONG),
//! on-chain settlement of every trade (`MATCHED` → `MINED` → `CONFIRMED`, or
//! `RETRYING` → `FAILED` when the settlement knob says so, the fill then taken
//! back from the account), and the reads a crash recovery needs:
//! `GET /data/trades` and `GET /data/order/{id}` (PROTOCOLS.md §2.4–§2.6).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::accounts::{SimOrder, SimOrderStatus, SimTrade, SimTradeStatus, now_ms, write};
use super::{PrivateEvent, Shared, SimState, read};

/// The venue's own number format ("0.5", "200").
fn num(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

fn owner(st: &SimState) -> String {
    st.accounts
        .polymarket_accepted()
        .first()
        .map(|c| c.api_key.clone())
        .unwrap_or_default()
}

/// A trade as both the user channel and `GET /data/trades` describe it
/// (seconds timestamps, as the user-channel examples use, §2.4).
pub fn trade_json(t: &SimTrade, owner: &str) -> Value {
    json!({
        "id": t.trade_id, "taker_order_id": t.taker_order_id, "market": t.market,
        "asset_id": t.asset_id, "side": t.side, "size": num(t.size.value()),
        "fee_rate_bps": "0", "price": num(t.price.value()), "status": t.status.as_str(),
        "match_time": t.match_time_s.to_string(),
        "last_update": t.last_update_s.to_string(), "timestamp": t.last_update_s.to_string(),
        "outcome": t.outcome, "owner": owner, "trade_owner": owner,
        "transaction_hash": t.transaction_hash.clone().unwrap_or_default(),
        "trader_side": "TAKER",
        "maker_orders": [{"order_id": t.maker_order_id, "owner": "sim-maker", "matched_amount": num(t.size.value()),
            "price": num(t.price.value()), "asset_id": t.asset_id, "outcome": t.outcome}],
    })
}

fn user_trade_event(t: &SimTrade, owner: &str) -> Value {
    let mut v = trade_json(t, owner);
    // The channel names it `matchtime` (REST: `match_time`).
    if let Some(m) = v.as_object_mut().and_then(|o| o.remove("match_time")) {
        v["matchtime"] = m;
    }
    v["event_type"] = json!("trade");
    v["type"] = json!("TRADE");
    v
}

/// Our order as `order` events and `GET /data/order/{id}` describe it.
pub fn order_json(st: &SimState, o: &SimOrder, owner: &str) -> Value {
    let market = st
        .pairs
        .iter()
        .find(|p| p.yes_token == o.market || p.no_token == o.market);
    let outcome = market.map_or("", |p| if p.yes_token == o.market { "Yes" } else { "No" });
    let status = match o.status {
        SimOrderStatus::Resting => "LIVE",
        SimOrderStatus::Canceled => "CANCELED",
        SimOrderStatus::Executed if o.filled.is_zero() => "UNMATCHED",
        SimOrderStatus::Executed => "MATCHED",
    };
    let trades: Vec<&str> = st
        .accounts
        .polymarket_trades
        .iter()
        .filter(|t| t.taker_order_id == o.order_id)
        .map(|t| t.trade_id.as_str())
        .collect();
    json!({"id": o.order_id, "status": status, "owner": owner, "order_owner": owner,
        "market": market.map_or("", |p| p.condition_id.as_str()), "asset_id": o.market,
        "side": o.side, "original_size": num(o.count.value()), "size_matched": num(o.filled.value()),
        "price": num(o.price), "outcome": outcome, "expiration": "0", "order_type": o.time_in_force,
        "associate_trades": trades, "created_at": o.ts_ms / 1_000, "timestamp": (o.ts_ms / 1_000).to_string()})
}

/// Pushes an `order` event of `kind` (PLACEMENT, UPDATE, CANCELLATION).
pub fn push_order(st: &SimState, o: &SimOrder, kind: &str) {
    let owner = owner(st);
    let mut v = order_json(st, o, &owner);
    v["event_type"] = json!("order");
    v["type"] = json!(kind);
    let market = v["market"].as_str().unwrap_or_default().to_string();
    let _ = st.private.send(PrivateEvent::PolymarketUser {
        market,
        event: Arc::new(v),
    });
}

fn push_trade(st: &SimState, t: &SimTrade) {
    let _ = st.private.send(PrivateEvent::PolymarketUser {
        market: t.market.clone(),
        event: Arc::new(user_trade_event(t, &owner(st))),
    });
}

/// Records freshly matched trades and announces them `MATCHED`; called under
/// the write lock that booked their fills.
pub fn matched(st: &mut SimState, trades: Vec<SimTrade>) {
    for t in trades {
        push_trade(st, &t);
        st.accounts.polymarket_trades.push(t);
    }
}

/// Moves the trades of one match through the chain: `MINED`, then
/// `CONFIRMED` — or `RETRYING` then `FAILED` for the trades the settlement
/// knob fails, each failed fill taken back from the account.
pub async fn settle(state: Shared, trade_ids: Vec<String>) {
    if trade_ids.is_empty() {
        return;
    }
    const CONFIRM: &[SimTradeStatus] = &[SimTradeStatus::Mined, SimTradeStatus::Confirmed];
    const FAIL: &[SimTradeStatus] = &[
        SimTradeStatus::Mined,
        SimTradeStatus::Retrying,
        SimTradeStatus::Failed,
    ];
    let settlement = read(&state).accounts.polymarket_settlement;
    let paths: Vec<&[SimTradeStatus]> = (0..trade_ids.len())
        .map(|i| {
            if settlement.outcome.fails(i) {
                FAIL
            } else {
                CONFIRM
            }
        })
        .collect();
    let steps = paths.iter().map(|p| p.len()).max().unwrap_or(0);
    for step in 0..steps {
        tokio::time::sleep(settlement.step).await;
        let mut guard = write(&state);
        let st = &mut *guard;
        let now_s = now_ms() / 1_000;
        for (id, path) in trade_ids.iter().zip(&paths) {
            let Some(&status) = path.get(step) else {
                continue;
            };
            let Some(i) = st
                .accounts
                .polymarket_trades
                .iter()
                .position(|t| &t.trade_id == id)
            else {
                continue;
            };
            let t = &mut st.accounts.polymarket_trades[i];
            t.status = status;
            t.last_update_s = now_s;
            if status == SimTradeStatus::Mined {
                t.transaction_hash = Some(format!(
                    "0x{}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()))
                ));
            }
            let t = t.clone();
            if status == SimTradeStatus::Failed {
                // The trade did not happen: cash, shares and fee go back.
                let a = &mut st.accounts.polymarket;
                a.cash -= t.cash_delta - t.fee;
                *a.positions.entry(t.asset_id.clone()).or_default() -= t.position_delta;
                *a.fees_paid.entry(t.asset_id.clone()).or_default() -= t.fee;
                *a.traded.entry(t.asset_id.clone()).or_default() -=
                    t.price.value() * t.size.value();
            }
            push_trade(st, &t);
        }
    }
}

// ------------------------------------------------------------------ socket --

pub async fn ws(State(state): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| session(state, socket))
}

/// Credentials in the subscribe frame must be ones the CLOB issued; with none
/// configured any are accepted, like the REST side.
fn authenticated(st: &SimState, auth: &Value) -> bool {
    let accepted = st.accounts.polymarket_accepted();
    if accepted.is_empty() {
        return true;
    }
    let field = |k: &str| auth.get(k).and_then(Value::as_str).unwrap_or_default();
    accepted.iter().any(|c| {
        c.api_key == field("apiKey")
            && c.secret().expose() == field("secret")
            && c.passphrase().expose() == field("passphrase")
    })
}

fn condition_ids(v: &Value) -> BTreeSet<String> {
    v.get("markets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn session(state: Shared, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    // The first frame must be the authenticated subscribe.
    let first = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        return;
    };
    let sub: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
    let (ok, mut private) = {
        let st = read(&state);
        let ok = sub.get("type").and_then(Value::as_str) == Some("user")
            && authenticated(&st, sub.get("auth").unwrap_or(&Value::Null));
        (ok, st.private.subscribe())
    };
    if !ok {
        // The venue drops the connection without a word (no close frame).
        read(&state).polymarket_user.send_modify(|s| s.refused += 1);
        return;
    }
    let mut markets = condition_ids(&sub);
    read(&state).polymarket_user.send_modify(|s| s.live += 1);
    loop {
        let out: Option<String> = tokio::select! {
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(t))) if t.as_str() == "PING" => Some("PONG".into()),
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                        let ids = condition_ids(&v);
                        match v.get("operation").and_then(Value::as_str) {
                            Some("subscribe") => markets.extend(ids),
                            Some("unsubscribe") => markets.retain(|m| !ids.contains(m)),
                            _ => {}
                        }
                    }
                    None
                }
                Some(Ok(_)) => None,
                Some(Err(_)) | None => break,
            },
            event = private.recv() => match event {
                Ok(PrivateEvent::PolymarketUser { market, event }) => {
                    (markets.is_empty() || markets.contains(&market)).then(|| event.to_string())
                }
                Ok(_) => None,
                // Lost events: drop the client, which reconnects and reconciles.
                Err(_) => break,
            },
        };
        if let Some(m) = out
            && tx.send(Message::Text(m.into())).await.is_err()
        {
            break;
        }
    }
    read(&state).polymarket_user.send_modify(|s| s.live -= 1);
}

// ------------------------------------------------------------------- reads --

/// `GET /data/trades?id=&market=&asset_id=&after=&before=` (L2), one page.
pub async fn trades(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = super::polymarket::authorize(&state, &headers, "GET", "/data/trades", "") {
        return r.into_response();
    }
    let st = read(&state);
    let owner = owner(&st);
    let after: Option<u64> = q.get("after").and_then(|s| s.parse().ok());
    let before: Option<u64> = q.get("before").and_then(|s| s.parse().ok());
    let data: Vec<Value> = st
        .accounts
        .polymarket_trades
        .iter()
        .filter(|t| q.get("id").is_none_or(|x| *x == t.trade_id))
        .filter(|t| q.get("market").is_none_or(|x| *x == t.market))
        .filter(|t| q.get("asset_id").is_none_or(|x| *x == t.asset_id))
        .filter(|t| after.is_none_or(|a| t.match_time_s >= a))
        .filter(|t| before.is_none_or(|b| t.match_time_s <= b))
        .map(|t| trade_json(t, &owner))
        .collect();
    let count = data.len();
    axum::Json(json!({"data": data, "next_cursor": "LTE=", "limit": 500, "count": count}))
        .into_response()
}

/// `GET /data/order/{id}` (L2): any of our orders, resting or not.
pub async fn order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/data/order/{id}");
    if let Err(r) = super::polymarket::authorize(&state, &headers, "GET", &path, "") {
        return r.into_response();
    }
    let st = read(&state);
    match st
        .accounts
        .polymarket
        .orders
        .iter()
        .find(|o| o.order_id.eq_ignore_ascii_case(&id))
    {
        Some(o) => axum::Json(order_json(&st, o, &owner(&st))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "order not found"})),
        )
            .into_response(),
    }
}

//! Simulated Kalshi: WebSocket v2 (`orderbook_delta` with snapshots, deltas,
//! `seq`, heartbeats, error codes), the public market REST endpoints, and the
//! signed portfolio endpoints: V2 order creation matched against the simulated
//! book (a good-till-canceled remainder rests in it), cancel one or a batch,
//! order(s), balance, positions, fills — in the current fixed-point
//! format (PROTOCOLS.md §1.2, §1.4–§1.6). Every fill of an order is pushed
//! on each connection subscribed to the private `fill` channel.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use std::collections::HashMap;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::accounts::{
    SimFill, SimOrder, SimOrderStatus, broadcast, expire_due, lift, now_ms, take, total, walk,
    write,
};
use super::market::{BookDiff, QuoteBook, RestingQuote};
use super::{FeedEvent, KalshiAuth, PrivateEvent, Shared, SimState, fixed, read};
use crate::domain::{Level, OrderBook, Price, Side, Size, Venue};

#[derive(Clone)]
struct Ctx {
    state: Shared,
    auth: Option<KalshiAuth>,
}

pub fn router(state: Shared, auth: Option<KalshiAuth>) -> Router {
    let ctx = Ctx { state, auth };
    let portfolio = Router::new()
        .route("/trade-api/v2/portfolio/events/orders", post(create_order))
        .route(
            "/trade-api/v2/portfolio/events/orders/batched",
            delete(cancel_batch),
        )
        .route(
            "/trade-api/v2/portfolio/events/orders/{order_id}",
            delete(cancel_order),
        )
        .route("/trade-api/v2/portfolio/orders", get(list_orders))
        .route("/trade-api/v2/portfolio/orders/{order_id}", get(get_order))
        .route("/trade-api/v2/portfolio/balance", get(balance))
        .route("/trade-api/v2/portfolio/positions", get(positions))
        .route("/trade-api/v2/portfolio/fills", get(fills))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            require_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            (Venue::Kalshi, "/trade-api/v2/portfolio/events/orders"),
            super::note_order_arrivals,
        ));
    Router::new()
        .route("/trade-api/ws/v2", get(ws))
        .route("/trade-api/v2/markets/{ticker}", get(market))
        .route("/trade-api/v2/markets/{ticker}/orderbook", get(orderbook))
        .route("/trade-api/v2/series/fee_changes", get(series_fee_changes))
        .route("/trade-api/v2/series/{series_ticker}", get(series))
        .merge(portfolio)
        .with_state(ctx)
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
    let (mut feed, mut private) = {
        let st = read(&state);
        (st.feed.subscribe(), st.private.subscribe())
    };
    let mut sub: Option<Sub> = None;
    // The private `fill` subscription's sid (the handshake was authenticated).
    let mut fill_sid: Option<u64> = None;
    let mut next_sid = 1u64;
    let mut skip_seq = false;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(10));
    loop {
        let mut out: Vec<String> = Vec::new();
        // A scripted disconnect found while re-subscribing the feed.
        let mut hang_up = false;
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
                                    let fresh = read(&state).feed.subscribe();
                                    hang_up |= keep_control_events(&mut feed, &mut skip_seq, &mut out);
                                    feed = fresh;
                                    for t in &tickers {
                                        match snapshot(&state, &mut s, t) {
                                            Some(m) => out.push(m),
                                            None => out.push(json!({"id": id, "type": "error", "msg": {"code": 16, "msg": "Market not found", "market_ticker": t}}).to_string()),
                                        }
                                    }
                                    sub = Some(s);
                                }
                                "fill" => {
                                    if fill_sid.is_some() {
                                        out.push(json!({"id": id, "type": "error", "msg": {"code": 6, "msg": "Already subscribed"}}).to_string());
                                        continue;
                                    }
                                    fill_sid = Some(sid);
                                    out.push(json!({"id": id, "type": "subscribed", "msg": {"channel": ch, "sid": sid}}).to_string());
                                }
                                "user_orders" | "ticker" | "trade" => {
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
                            let fresh = read(&state).feed.subscribe();
                            hang_up |= keep_control_events(&mut feed, &mut skip_seq, &mut out);
                            feed = fresh;
                            for t in tickers {
                                if let Some(m) = snapshot(&state, s, &t) { out.push(m); }
                            }
                        } else {
                            out.push(json!({"id": id, "type": "error", "msg": {"code": 7, "msg": "Unknown subscription ID"}}).to_string());
                        }
                    }
                    Some("unsubscribe") => {
                        let sids: Vec<u64> = params.get("sids").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
                        if sids.is_empty() {
                            out.push(json!({"id": id, "type": "error", "msg": {"code": 4, "msg": "Subscription IDs required"}}).to_string());
                        }
                        if sub.as_ref().is_some_and(|s| sids.contains(&s.sid))
                            && let Some(s) = sub.take()
                        {
                            out.push(json!({"id": id, "sid": s.sid, "seq": s.seq + 1, "type": "unsubscribed"}).to_string());
                        }
                        if let Some(f) = fill_sid.filter(|f| sids.contains(f)) {
                            fill_sid = None;
                            out.push(json!({"id": id, "sid": f, "type": "unsubscribed"}).to_string());
                        }
                    }
                    Some("list_subscriptions") => {
                        let mut list: Vec<Value> = sub.iter().map(|s| json!({"channel": "orderbook_delta", "sid": s.sid})).collect();
                        list.extend(fill_sid.map(|f| json!({"channel": "fill", "sid": f})));
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
                Ok(FeedEvent::Malformed { venue: Venue::Kalshi }) => out.push(MALFORMED_DELTA.to_string()),
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
            event = private.recv() => match event {
                Ok(PrivateEvent::KalshiFill(msg)) => {
                    if let Some(sid) = fill_sid {
                        out.push(json!({"type": "fill", "sid": sid, "msg": *msg}).to_string());
                    }
                }
                Ok(_) => {}
                // Fills were lost: as Kalshi does on a slow reader, end the subscription (§1.4 code 25).
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(sid) = fill_sid.take() {
                        out.push(json!({"id": 0, "sid": sid, "type": "error", "msg": {"code": 25, "msg": "Subscription buffer overflow"}}).to_string());
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
        if hang_up {
            let _ = tx.send(Message::Close(None)).await;
            return;
        }
    }
}

/// What a scripted malformed Kalshi frame looks like: a delta cut short.
const MALFORMED_DELTA: &str = "{\"type\":\"orderbook_delta\",\"sid\":";

/// Empties a feed receiver about to be replaced (a re-subscription takes a
/// fresh one so queued book changes already in the new snapshot are not sent
/// twice) without losing the scripted events queued on it: a gap still skips,
/// a malformed frame is still sent, and `true` means hang up.
fn keep_control_events(
    feed: &mut tokio::sync::broadcast::Receiver<FeedEvent>,
    skip_seq: &mut bool,
    out: &mut Vec<String>,
) -> bool {
    let mut hang_up = false;
    while let Ok(ev) = feed.try_recv() {
        match ev {
            FeedEvent::Gap {
                venue: Venue::Kalshi,
            } => *skip_seq = true,
            FeedEvent::Malformed {
                venue: Venue::Kalshi,
            } => out.push(MALFORMED_DELTA.to_string()),
            FeedEvent::Disconnect {
                venue: Venue::Kalshi,
            } => hang_up = true,
            _ => {}
        }
    }
    hang_up
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

// ---------------------------------------------------------------------------
// Portfolio: orders, balance, positions, fills (§1.5, §1.6).

/// Every portfolio request is signed over its path without the query (§1.2);
/// the 401 to answer when it is not.
/// Every portfolio route checks the request's signature first, as Kalshi does.
async fn require_auth(
    State(ctx): State<Ctx>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(auth) = ctx.auth.as_ref()
        && let Err(e) = auth(
            request.headers(),
            request.method().as_str(),
            request.uri().path(),
        )
    {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", &e);
    }
    next.run(request).await
}

/// The V2 `BookSide`: `bid` buys YES, `ask` sells YES (= buys NO), both at a YES price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BookSide {
    Bid,
    Ask,
}

impl BookSide {
    fn as_str(self) -> &'static str {
        match self {
            BookSide::Bid => "bid",
            BookSide::Ask => "ask",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tif {
    FillOrKill,
    ImmediateOrCancel,
    GoodTillCanceled,
}

impl Tif {
    fn as_str(self) -> &'static str {
        match self {
            Tif::FillOrKill => "fill_or_kill",
            Tif::ImmediateOrCancel => "immediate_or_cancel",
            Tif::GoodTillCanceled => "good_till_canceled",
        }
    }
}

/// Largest count the simulator accepts in one order.
const MAX_COUNT: u64 = 1_000_000_000;

struct CreateV2 {
    ticker: String,
    client_order_id: String,
    side: BookSide,
    count: Size,
    price: Price,
    tif: Tif,
    /// `expiration_time` (Unix seconds): a good-till-canceled order with one
    /// is good till then.
    expiration: Option<u64>,
}

/// Reads `CreateOrderV2Request` (§1.6) with the venue's validation: every
/// required field present, counts with ≤ 2 decimals and ≥ 0.01, a price
/// strictly inside (0, 1).
fn parse_create(body: &str) -> Result<CreateV2, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| "body is not JSON".to_string())?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{k} is required"))
    };
    let ticker = text("ticker")?;
    let client_order_id = text("client_order_id")?;
    if client_order_id.trim().is_empty() {
        return Err("client_order_id is required".into());
    }
    let side = match text("side")?.as_str() {
        "bid" => BookSide::Bid,
        "ask" => BookSide::Ask,
        _ => return Err("side must be bid or ask".into()),
    };
    let count = Size::parse(&text("count")?).map_err(|_| "count is not a count".to_string())?;
    // Far above any real order; keeps the money arithmetic clear of overflow.
    if count.is_zero()
        || count.value().normalize().scale() > 2
        || count.value() > Decimal::from(MAX_COUNT)
    {
        return Err("invalid_order_size".into());
    }
    let price = Price::parse(&text("price")?).map_err(|_| "price is not a price".to_string())?;
    let tif = match text("time_in_force")?.as_str() {
        "fill_or_kill" => Tif::FillOrKill,
        "immediate_or_cancel" => Tif::ImmediateOrCancel,
        "good_till_canceled" => Tif::GoodTillCanceled,
        _ => return Err("unknown time_in_force".into()),
    };
    match text("self_trade_prevention_type")?.as_str() {
        "taker_at_cross" | "maker" => {}
        _ => return Err("unknown self_trade_prevention_type".into()),
    }
    let expiration = match v.get("expiration_time") {
        None | Some(Value::Null) => None,
        Some(e) => match e.as_u64() {
            Some(e) if e > now_ms() / 1_000 => Some(e),
            _ => return Err("expiration_time must be a future Unix time".into()),
        },
    };
    Ok(CreateV2 {
        ticker,
        client_order_id,
        side,
        count,
        price,
        tif,
        expiration,
    })
}

/// Contracts of an order that open a position (the rest closes one), and the
/// collateral each opening contract locks at the order's limit.
fn opening(side: BookSide, position: Decimal, count: Size, yes_price: Price) -> (Decimal, Decimal) {
    let c = count.value();
    match side {
        BookSide::Bid => (
            (c - (-position).max(Decimal::ZERO).min(c)),
            yes_price.value(),
        ),
        BookSide::Ask => (
            (c - position.max(Decimal::ZERO).min(c)),
            Decimal::ONE - yes_price.value(),
        ),
    }
}

/// Cash for one fill of `size` at YES price `yes`, given the position before it
/// (fees apart): opening pays the leg's price, closing receives the other's.
fn fill_cash(side: BookSide, position: Decimal, size: Size, yes: Price) -> Decimal {
    let s = size.value();
    let y = yes.value();
    match side {
        BookSide::Bid => {
            let closing = (-position).max(Decimal::ZERO).min(s);
            closing * (Decimal::ONE - y) - (s - closing) * y
        }
        BookSide::Ask => {
            let closing = position.max(Decimal::ZERO).min(s);
            closing * y - (s - closing) * (Decimal::ONE - y)
        }
    }
}

async fn create_order(State(ctx): State<Ctx>, body: String) -> Response {
    let req = match parse_create(&body) {
        Ok(r) => r,
        Err(m) if m == "invalid_order_size" => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_order_size",
                "invalid order size",
            );
        }
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_parameters", &m),
    };
    let mut guard = write(&ctx.state);
    let st = &mut *guard;
    expire_due(st);
    let Some(i) = st.pairs.iter().position(|p| p.kalshi_ticker == req.ticker) else {
        return error(
            StatusCode::NOT_FOUND,
            "market_not_found",
            "market not found",
        );
    };
    if st.accounts.kalshi.used_ids.contains(&req.client_order_id) {
        return error(
            StatusCode::CONFLICT,
            "order_already_exists",
            "an order with this client_order_id already exists",
        );
    }
    // Buying YES takes the YES asks, i.e. the NO bids at n ≥ 1 − price; selling
    // YES (buying NO) takes the YES bids at ≥ price (§1.5: asks are derived).
    let books = st.markets[i].books();
    let taken: Vec<Level> = match req.side {
        BookSide::Bid => walk(books.kalshi_no.bids(), req.count, |n| {
            n.complement() <= req.price
        }),
        BookSide::Ask => walk(books.kalshi_yes.bids(), req.count, |y| y >= req.price),
    };
    let filled = total(&taken);
    if req.tif == Tif::FillOrKill && filled < req.count {
        // As observed live (§1.6): HTTP 409 with this code.
        return error(
            StatusCode::CONFLICT,
            "fill_or_kill_insufficient_resting_volume",
            "fill or kill insufficient resting volume",
        );
    }
    let fees = st.accounts.kalshi_fees;
    let account = &st.accounts.kalshi;
    let position = account.position(&req.ticker);
    let (open, per_contract) = opening(req.side, position, req.count, req.price);
    let required = open * per_contract + fees.taker_fee(req.price, req.count).value();
    let mut pos = position;
    let mut net = Decimal::ZERO;
    for l in &taken {
        let yes = yes_price(req.side, l.price);
        net += fill_cash(req.side, pos, l.size, yes) - fees.taker_fee(yes, l.size).value();
        pos += signed(req.side, l.size);
    }
    if account.cash < required || account.cash + net < Decimal::ZERO {
        return error(
            StatusCode::BAD_REQUEST,
            "available_balance_too_low",
            "available balance too low",
        );
    }

    let order_id = st.accounts.new_uuid();
    let ts_ms = now_ms();
    let mut diff = BookDiff::default();
    let mut fee_total = Decimal::ZERO;
    let mut notional = Decimal::ZERO;
    let mut pushed = Vec::new();
    for l in &taken {
        let yes = yes_price(req.side, l.price);
        let (book, changes) = match req.side {
            BookSide::Bid => (
                &mut st.markets[i].books_mut().kalshi_no,
                &mut diff.kalshi_no,
            ),
            BookSide::Ask => (
                &mut st.markets[i].books_mut().kalshi_yes,
                &mut diff.kalshi_yes,
            ),
        };
        take(book, Side::Bid, l.price, l.size, changes);
        let fee = fees.taker_fee(yes, l.size).value();
        let fill_id = st.accounts.new_uuid();
        let account = &mut st.accounts.kalshi;
        let before = account.position(&req.ticker);
        let cash = fill_cash(req.side, before, l.size, yes);
        let after = before + signed(req.side, l.size);
        let (outcome, action) = fill_direction(req.side, before);
        // The `fill` channel's message (§1.4), current fields only.
        pushed.push(json!({
            "trade_id": fill_id, "order_id": order_id, "market_ticker": req.ticker,
            "is_taker": true, "side": outcome, "action": action,
            "outcome_side": outcome, "book_side": req.side.as_str(),
            "yes_price_dollars": fixed(yes.value(), 4), "count_fp": fixed(l.size.value(), 2),
            "fee_cost": fixed(fee, 4), "post_position_fp": fixed(after, 2),
            "client_order_id": req.client_order_id, "ts": ts_ms / 1_000, "ts_ms": ts_ms,
        }));
        account.book_fill(
            SimFill {
                fill_id,
                order_id: order_id.clone(),
                market: req.ticker.clone(),
                side: req.side.as_str().into(),
                price: yes,
                size: l.size,
                fee,
                position_before: before,
                ts_ms,
            },
            cash,
            signed(req.side, l.size),
        );
        fee_total += fee;
        notional += yes.value() * l.size.value();
    }
    let remaining = req.count.checked_sub(filled).unwrap_or(Size::ZERO);
    let status = if req.tif == Tif::GoodTillCanceled && !remaining.is_zero() {
        SimOrderStatus::Resting
    } else {
        SimOrderStatus::Executed
    };
    // What rests shows in the book: a YES bid, or (selling YES) a NO bid at 1 − price.
    let rest = (status == SimOrderStatus::Resting).then(|| {
        let (book, price) = match req.side {
            BookSide::Bid => (QuoteBook::KalshiYes, req.price),
            BookSide::Ask => (QuoteBook::KalshiNo, req.price.complement()),
        };
        RestingQuote {
            order_id: order_id.clone(),
            book,
            side: Side::Bid,
            price,
            size: remaining,
        }
    });
    let account = &mut st.accounts.kalshi;
    account.used_ids.insert(req.client_order_id.clone());
    if let (Some(until), SimOrderStatus::Resting) = (req.expiration, status) {
        account.expiries.insert(order_id.clone(), until);
    }
    account.orders.push(SimOrder {
        order_id: order_id.clone(),
        client_order_id: req.client_order_id.clone(),
        market: req.ticker.clone(),
        side: req.side.as_str().into(),
        price: req.price.value(),
        count: req.count,
        filled,
        fees: fee_total,
        time_in_force: req.tif.as_str().into(),
        status,
        ts_ms,
    });
    broadcast(st, i, diff);
    if let Some(q) = rest {
        let shown = st.markets[i].rest(vec![q]);
        broadcast(st, i, shown);
    }
    for msg in pushed {
        let _ = st
            .private
            .send(PrivateEvent::KalshiFill(std::sync::Arc::new(msg)));
    }
    drop(guard);

    let mut out = serde_json::Map::new();
    out.insert("order_id".into(), json!(order_id));
    out.insert("client_order_id".into(), json!(req.client_order_id));
    out.insert("fill_count".into(), json!(fixed(filled.value(), 2)));
    // IOC: the final state after the unfilled rest is cancelled; GTC: what rests.
    out.insert("remaining_count".into(), json!(fixed(remaining.value(), 2)));
    if !filled.is_zero() {
        let f = filled.value();
        out.insert("average_fill_price".into(), json!(fixed(notional / f, 4)));
        // Per contract, rounded up so that average × count never understates
        // the fee actually charged (Kalshi folds its own rounding in, §1.6).
        let per = (fee_total / f).round_dp_with_strategy(4, RoundingStrategy::ToPositiveInfinity);
        out.insert("average_fee_paid".into(), json!(fixed(per, 4)));
    }
    out.insert("ts_ms".into(), json!(ts_ms));
    (StatusCode::CREATED, axum::Json(Value::Object(out))).into_response()
}

/// Names a fill as the legacy fields did: a bid that closes NO sells NO, an
/// ask that closes YES sells YES, anything else buys.
fn fill_direction(side: BookSide, position_before: Decimal) -> (&'static str, &'static str) {
    match side {
        BookSide::Bid if position_before < Decimal::ZERO => ("no", "sell"),
        BookSide::Bid => ("yes", "buy"),
        BookSide::Ask if position_before > Decimal::ZERO => ("yes", "sell"),
        BookSide::Ask => ("no", "buy"),
    }
}

/// The YES price of a fill against a level of the book the side takes.
fn yes_price(side: BookSide, level_price: Price) -> Price {
    match side {
        BookSide::Bid => level_price.complement(),
        BookSide::Ask => level_price,
    }
}

fn signed(side: BookSide, size: Size) -> Decimal {
    match side {
        BookSide::Bid => size.value(),
        BookSide::Ask => -size.value(),
    }
}

fn order_json(o: &SimOrder) -> Value {
    let status = match o.status {
        SimOrderStatus::Executed => "executed",
        SimOrderStatus::Resting => "resting",
        SimOrderStatus::Canceled => "canceled",
    };
    json!({
        "order_id": o.order_id, "client_order_id": o.client_order_id, "ticker": o.market,
        "status": status, "book_side": o.side, "time_in_force": o.time_in_force,
        "yes_price_dollars": fixed(o.price, 4), "no_price_dollars": fixed(Decimal::ONE - o.price, 4),
        "initial_count_fp": fixed(o.count.value(), 2), "fill_count_fp": fixed(o.filled.value(), 2),
        "remaining_count_fp": fixed(if o.status == SimOrderStatus::Resting { o.remaining().value() } else { Decimal::ZERO }, 2),
        "taker_fees_dollars": fixed(o.fees, 4), "created_ts_ms": o.ts_ms,
    })
}

async fn get_order(State(ctx): State<Ctx>, Path(order_id): Path<String>) -> Response {
    let mut st = write(&ctx.state);
    expire_due(&mut st);
    match st
        .accounts
        .kalshi
        .orders
        .iter()
        .find(|o| o.order_id == order_id)
    {
        Some(o) => axum::Json(json!({"order": order_json(o)})).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "order not found"),
    }
}

/// `GET /portfolio/orders?ticker=&status=&min_ts=&max_ts=` (one page).
async fn list_orders(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let ts = |k: &str| q.get(k).and_then(|s| s.parse::<u64>().ok());
    let (min_ts, max_ts) = (ts("min_ts"), ts("max_ts"));
    let mut st = write(&ctx.state);
    expire_due(&mut st);
    let list: Vec<Value> = st
        .accounts
        .kalshi
        .orders
        .iter()
        .filter(|o| q.get("ticker").is_none_or(|t| *t == o.market))
        .map(order_json)
        .filter(|o| {
            q.get("status")
                .is_none_or(|s| o["status"].as_str() == Some(s.as_str()))
        })
        .filter(|o| {
            let created = o["created_ts_ms"].as_u64().unwrap_or(0) / 1_000;
            min_ts.is_none_or(|m| created >= m) && max_ts.is_none_or(|m| created <= m)
        })
        .collect();
    axum::Json(json!({"orders": list, "cursor": ""})).into_response()
}

/// The series of a simulated ticker: its first dash-separated part.
fn series_of(ticker: &str) -> &str {
    ticker.split('-').next().unwrap_or("")
}

/// A number as the venue sends `fee_multiplier` (a JSON number).
fn json_number(d: Decimal) -> Value {
    d.normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// `GET /series/{series_ticker}`: the account's fee model for every series.
async fn series(State(ctx): State<Ctx>, Path(series_ticker): Path<String>) -> Response {
    let st = read(&ctx.state);
    if !st
        .pairs
        .iter()
        .any(|p| series_of(&p.kalshi_ticker) == series_ticker)
    {
        return error(StatusCode::NOT_FOUND, "not_found", "series not found");
    }
    let fees = st.accounts.kalshi_fees;
    let fee_type = match fees.fee_type {
        crate::domain::KalshiFeeType::Quadratic => "quadratic",
        crate::domain::KalshiFeeType::QuadraticWithMakerFees => "quadratic_with_maker_fees",
    };
    axum::Json(
        json!({"series": {"ticker": series_ticker, "title": format!("Simulated {series_ticker}"),
        "frequency": "custom", "category": "Simulated", "fee_type": fee_type,
        "fee_multiplier": json_number(fees.multiplier), "settlement_sources": []}}),
    )
    .into_response()
}

/// `GET /series/fee_changes?series_ticker=&show_historical=`.
async fn series_fee_changes(
    State(ctx): State<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let st = read(&ctx.state);
    let list: Vec<Value> = st
        .accounts
        .kalshi_fee_changes
        .iter()
        .filter(|c| q.get("series_ticker").is_none_or(|t| *t == c.series_ticker))
        .map(|c| {
            json!({"id": c.id, "series_ticker": c.series_ticker, "fee_type": c.fee_type,
                "fee_multiplier": json_number(c.fee_multiplier), "scheduled_ts": c.scheduled_ts})
        })
        .collect();
    axum::Json(json!({"series_fee_change_arr": list})).into_response()
}

async fn cancel_order(State(ctx): State<Ctx>, Path(order_id): Path<String>) -> Response {
    let mut st = write(&ctx.state);
    expire_due(&mut st);
    match cancel_resting(&mut st, &order_id) {
        Ok(done) => axum::Json(done).into_response(),
        Err(why) => error(StatusCode::NOT_FOUND, "not_found", why),
    }
}

/// Cancels one resting order (out of the book too); its cancel answer (§1.6).
fn cancel_resting(st: &mut SimState, order_id: &str) -> Result<Value, &'static str> {
    let Some(o) = st.accounts.kalshi.order_mut(order_id) else {
        return Err("order not found");
    };
    if o.status != SimOrderStatus::Resting {
        return Err("order is not resting");
    }
    o.status = SimOrderStatus::Canceled;
    let reduced = o.remaining();
    let done = json!({"order_id": o.order_id, "client_order_id": o.client_order_id,
        "reduced_by": fixed(reduced.value(), 2), "ts_ms": now_ms()});
    lift(st, order_id);
    Ok(done)
}

/// `DELETE /portfolio/events/orders/batched` with `{"orders": [{"order_id": ...}]}`
/// (or the deprecated `{"ids": [...]}`): one answer per order under `orders`,
/// a refused one carrying `error` (§1.5 names the endpoint; the body is the
/// documented batch-cancel one).
async fn cancel_batch(State(ctx): State<Ctx>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let from_orders = v.get("orders").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|o| o.get("order_id").and_then(Value::as_str).map(String::from))
            .collect::<Vec<_>>()
    });
    let from_ids = v.get("ids").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|o| o.as_str().map(String::from))
            .collect::<Vec<_>>()
    });
    let Some(ids) = from_orders.or(from_ids).filter(|ids| !ids.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameters",
            "orders is required",
        );
    };
    let mut st = write(&ctx.state);
    expire_due(&mut st);
    let answers: Vec<Value> = ids
        .iter()
        .map(|id| match cancel_resting(&mut st, id) {
            Ok(done) => done,
            Err(why) => json!({"order_id": id, "error": {"code": "not_found", "message": why}}),
        })
        .collect();
    axum::Json(json!({ "orders": answers })).into_response()
}

async fn balance(State(ctx): State<Ctx>) -> Response {
    let st = read(&ctx.state);
    let cash = st.accounts.kalshi.cash;
    // `balance` is integer cents (floored, as Kalshi floors balance changes to
    // the member's precision, §1.8); `balance_dollars` carries 4 decimals.
    let cents = (cash * Decimal::ONE_HUNDRED).floor().to_i64().unwrap_or(0);
    axum::Json(json!({"balance": cents, "balance_dollars": fixed(cash, 4),
        "portfolio_value": cents, "updated_ts": now_ms() / 1_000}))
    .into_response()
}

async fn positions(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let st = read(&ctx.state);
    let a = &st.accounts.kalshi;
    let list: Vec<Value> = a
        .positions
        .iter()
        .filter(|(t, _)| q.get("ticker").is_none_or(|want| want == *t))
        .map(|(t, pos)| {
            let fees = a.fees_paid.get(t).copied().unwrap_or_default();
            let traded = a.traded.get(t).copied().unwrap_or_default();
            json!({"ticker": t, "position_fp": fixed(*pos, 2),
                "fees_paid_dollars": fixed(fees, 4), "total_traded_dollars": fixed(traded, 4),
                "realized_pnl_dollars": "0.0000", "last_updated_ts": now_ms() / 1_000})
        })
        .collect();
    axum::Json(json!({"market_positions": list, "event_positions": [], "cursor": ""}))
        .into_response()
}

async fn fills(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let st = read(&ctx.state);
    let list: Vec<Value> = st
        .accounts
        .kalshi
        .fills
        .iter()
        .filter(|f| q.get("ticker").is_none_or(|t| *t == f.market))
        .filter(|f| q.get("order_id").is_none_or(|o| *o == f.order_id))
        .map(|f| {
            let side = if f.side == "bid" {
                BookSide::Bid
            } else {
                BookSide::Ask
            };
            let (outcome, action) = fill_direction(side, f.position_before);
            json!({"fill_id": f.fill_id, "trade_id": f.fill_id, "order_id": f.order_id,
                "ticker": f.market, "side": outcome, "action": action, "outcome_side": outcome,
                "book_side": f.side, "count_fp": fixed(f.size.value(), 2),
                "yes_price_dollars": fixed(f.price.value(), 4),
                "no_price_dollars": fixed(f.price.complement().value(), 4),
                "is_taker": true, "fee_cost": fixed(f.fee, 4), "ts": f.ts_ms / 1_000})
        })
        .collect();
    axum::Json(json!({"fills": list, "cursor": ""})).into_response()
}

//! Simulated Polymarket CLOB: the market WebSocket (`book`, current-format
//! `price_change`, text PING/PONG) and `GET /book` with the server's book hash
//! (PROTOCOLS.md §2.3, §2.4, §3.5); the L2-authenticated trading endpoints;
//! API-key creation and derivation over L1 auth, `/version`, and the compact
//! market info `GET /clob-markets/{condition_id}` (§2.1, §2.2, §2.5). GTC/GTD
//! orders rest in the book until cancelled (`DELETE /order`, `/orders`,
//! `/cancel-all`, §2.6). The user channel and trade settlement live in
//! `polymarket_user`.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{FeedEvent, Shared, SimState, read};
use crate::domain::{Level, OrderBook, Side, Venue};

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/ws/market", get(ws))
        .route("/book", get(book))
        .route("/order", post(post_order).delete(cancel_order))
        .route("/orders", delete(cancel_orders))
        .route("/cancel-all", delete(cancel_all))
        .route("/data/orders", get(open_orders))
        .route("/data/order/{id}", get(super::polymarket_user::order))
        .route("/data/trades", get(super::polymarket_user::trades))
        .route("/ws/user", get(super::polymarket_user::ws))
        .route("/balance-allowance", get(balance_allowance))
        .route("/version", get(version))
        .route("/clob-markets/{condition_id}", get(clob_market))
        .route("/auth/api-key", post(create_api_key))
        .route("/auth/derive-api-key", get(derive_api_key))
        .layer(axum::middleware::from_fn_with_state(
            (Venue::Polymarket, "/order"),
            super::note_order_arrivals,
        ))
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
                Ok(FeedEvent::TickSize { pair, old, new }) => {
                    let st = read(&state);
                    let Some(p) = st.pairs.get(pair) else { continue };
                    for token in [&p.yes_token, &p.no_token] {
                        if assets.contains(token) {
                            out.push(json!({"event_type": "tick_size_change", "asset_id": token, "market": p.condition_id,
                                "old_tick_size": num(old), "new_tick_size": num(new), "timestamp": "1760000000000"}).to_string());
                        }
                    }
                }
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

// ---------------------------------------------------------------------------
// Trading: L2-authenticated order placement, cancel, reads (§2.5, §2.6).

use std::collections::HashMap;
use std::str::FromStr;

use ethers_core::types::{Address, H256, Signature};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::accounts::{
    SimFill, SimOrder, SimOrderStatus, SimTrade, SimTradeStatus, broadcast, expire_due, lift,
    now_ms, take, total, walk, write,
};
use super::market::{BookDiff, QuoteBook, RestingQuote};
use super::polymarket_user;
use crate::domain::{Price, Size, TokenId};
use crate::venues::polymarket::ApiCreds;
use crate::venues::polymarket::auth::verify_l2;
use crate::venues::polymarket::orders::{
    CTF_EXCHANGE_V2, ExchangeDomain, ExchangeOrder, ExchangeVersion, GTD_THRESHOLD_S, OrderSide,
    POLYGON, SignatureType,
};

/// The killed-FOK and unmatched-FAK texts, verbatim from live captures (§2.6).
pub const FOK_KILLED: &str =
    "order couldn't be fully filled. FOK orders are fully filled or killed.";
pub const FAK_NO_MATCH: &str = "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found.";
const MARKET_BUY_PRECISION: &str = "invalid amounts, the market buy orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals";
const NOT_ENOUGH: &str = "not enough balance / allowance";
/// The simulated books' `min_order_size`.
const MIN_ORDER_SIZE: i64 = 5;
const UNITS: i64 = 1_000_000;

fn reject(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// Checks the five L2 headers against the configured credentials; the HMAC
/// covers the exact body bytes received. Returns the claimed `POLY_ADDRESS`.
pub(crate) fn authorize(
    state: &Shared,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Option<String>, Unauthorized> {
    let accepted = read(state).accounts.polymarket_accepted();
    if accepted.is_empty() {
        return Ok(None);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header(crate::venues::polymarket::auth::POLY_API_KEY).unwrap_or_default();
    let creds = accepted
        .iter()
        .find(|c| c.api_key == key)
        .ok_or(Unauthorized)?;
    verify_l2(creds, header, method, path, body)
        .map(|v| Some(v.address))
        .map_err(|_| Unauthorized)
}

/// A refused L2 check: the CLOB answers 401 without saying which part failed.
pub(crate) struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        reject(StatusCode::UNAUTHORIZED, "Unauthorized/Invalid api key")
    }
}

fn owner_matches(state: &Shared, owner: &str) -> bool {
    let accepted = read(state).accounts.polymarket_accepted();
    accepted.is_empty() || accepted.iter().any(|c| c.api_key == owner)
}

struct WireOrder {
    order: ExchangeOrder,
    signature: String,
    order_type: String,
    owner: String,
}

fn units(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("invalid {key}"))
}

/// Reads the `POST /order` body (§2.6): salt a number; amounts, tokenId,
/// timestamp, expiration strings; side a word; signatureType a number.
fn parse_order(body: &str) -> Result<WireOrder, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| "Invalid order payload".to_string())?;
    let o = v.get("order").ok_or("Invalid order payload: no order")?;
    let text = |k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .ok_or(format!("invalid {k}"))
    };
    let address =
        |k: &str| text(k).and_then(|s| Address::from_str(s).map_err(|_| format!("invalid {k}")));
    let word =
        |k: &str| text(k).and_then(|s| H256::from_str(s).map_err(|_| format!("invalid {k}")));
    let side = match text("side")? {
        "BUY" => OrderSide::Buy,
        "SELL" => OrderSide::Sell,
        _ => return Err("invalid side".into()),
    };
    let signature_type = match o.get("signatureType").and_then(Value::as_u64) {
        Some(0) => SignatureType::Eoa,
        Some(1) => SignatureType::PolyProxy,
        Some(2) => SignatureType::PolyGnosisSafe,
        Some(3) => SignatureType::Poly1271,
        _ => return Err("invalid signatureType".into()),
    };
    let order = ExchangeOrder {
        salt: o
            .get("salt")
            .and_then(Value::as_u64)
            .ok_or("invalid salt")?,
        maker: address("maker")?,
        signer: address("signer")?,
        token_id: TokenId::new(text("tokenId")?).map_err(|_| "invalid tokenId".to_string())?,
        maker_amount: units(o, "makerAmount")?,
        taker_amount: units(o, "takerAmount")?,
        side,
        signature_type,
        timestamp_ms: units(o, "timestamp")?,
        metadata: word("metadata")?,
        builder: word("builder")?,
        expiration: units(o, "expiration")?,
    };
    Ok(WireOrder {
        order,
        signature: text("signature")?.to_string(),
        order_type: v
            .get("orderType")
            .and_then(Value::as_str)
            .unwrap_or("GTC")
            .to_string(),
        owner: v
            .get("owner")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

fn dollars(units: u64) -> Decimal {
    Decimal::from(units) / Decimal::from(UNITS)
}

async fn post_order(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let address = match authorize(&state, &headers, "POST", "/order", &body) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let wire = match parse_order(&body) {
        Ok(w) => w,
        Err(m) => return reject(StatusCode::BAD_REQUEST, &m),
    };
    if !owner_matches(&state, &wire.owner) {
        return reject(
            StatusCode::BAD_REQUEST,
            "the order owner has to be the owner of the API KEY",
        );
    }
    let o = &wire.order;
    if address.is_some_and(|a| Address::from_str(&a).ok() != Some(o.signer)) {
        return reject(
            StatusCode::BAD_REQUEST,
            "the order signer address has to be the address of the API KEY",
        );
    }
    // The order hash is the order id; the signature must recover to `signer`
    // under the exchange domain `/version` announces (the simulated markets
    // are not neg-risk). Signed for the other version: `order_version_mismatch`
    // (§2.1), which clients answer by re-reading `/version` and re-signing.
    let current = match read(&state).accounts.polymarket_version {
        3 => ExchangeVersion::V3,
        _ => ExchangeVersion::V2,
    };
    let signed_under = |version| {
        let domain = ExchangeDomain::for_market(version, POLYGON, false).ok()?;
        let hash = o.hash(&domain).ok()?;
        let recovered = Signature::from_str(wire.signature.trim_start_matches("0x"))
            .ok()
            .and_then(|s| s.recover(hash).ok());
        (recovered == Some(o.signer)).then_some(hash)
    };
    let other = match current {
        ExchangeVersion::V2 => ExchangeVersion::V3,
        ExchangeVersion::V3 => ExchangeVersion::V2,
    };
    let Some(hash) = signed_under(current) else {
        if signed_under(other).is_some() {
            return reject(
                StatusCode::BAD_REQUEST,
                &format!(
                    "order_version_mismatch: expected version {}",
                    current.domain_version()
                ),
            );
        }
        return reject(StatusCode::BAD_REQUEST, "invalid signature");
    };
    let order_id = format!("{hash:#x}");
    let order_type = wire.order_type.as_str();
    if !matches!(order_type, "FOK" | "FAK" | "GTC" | "GTD") {
        return reject(StatusCode::BAD_REQUEST, "invalid order type");
    }
    if o.maker_amount == 0 || o.taker_amount == 0 {
        return reject(StatusCode::BAD_REQUEST, "invalid amounts");
    }
    let marketable = matches!(order_type, "FOK" | "FAK");
    // A GTD must outlive the venue's one-minute security threshold (§2.6).
    if order_type == "GTD" && o.expiration <= now_ms() / 1_000 + GTD_THRESHOLD_S {
        return reject(StatusCode::BAD_REQUEST, "invalid expiration");
    }
    // Server-side precision of marketable BUYs: dollars ≤ 2 dp, shares ≤ 4 dp (§2.6).
    if marketable
        && o.side == OrderSide::Buy
        && (o.maker_amount % 10_000 != 0 || o.taker_amount % 100 != 0)
    {
        return reject(StatusCode::BAD_REQUEST, MARKET_BUY_PRECISION);
    }
    let (shares, collateral) = match o.side {
        OrderSide::Buy => (dollars(o.taker_amount), dollars(o.maker_amount)),
        OrderSide::Sell => (dollars(o.maker_amount), dollars(o.taker_amount)),
    };
    let (Ok(shares), Ok(limit)) = (Size::new(shares), Price::new(collateral / shares)) else {
        return reject(StatusCode::BAD_REQUEST, "invalid amounts");
    };
    if shares.value() < Decimal::from(MIN_ORDER_SIZE) {
        return reject(
            StatusCode::BAD_REQUEST,
            &format!(
                "order {order_id} is invalid. Size ({}) lower than the minimum: {MIN_ORDER_SIZE}",
                shares.value().normalize()
            ),
        );
    }
    let token = o.token_id.as_str().to_string();

    let mut guard = write(&state);
    let st = &mut *guard;
    expire_due(st);
    let Some((i, is_yes)) = st.pairs.iter().enumerate().find_map(|(i, p)| {
        if p.yes_token == token {
            Some((i, true))
        } else if p.no_token == token {
            Some((i, false))
        } else {
            None
        }
    }) else {
        return reject(StatusCode::BAD_REQUEST, "invalid tokenId: market not found");
    };
    if st.accounts.polymarket.used_ids.contains(&order_id) {
        return reject(
            StatusCode::BAD_REQUEST,
            &format!("order {order_id} is invalid. Duplicated."),
        );
    }
    let fees = st.accounts.polymarket_fees;
    let account = &st.accounts.polymarket;
    let enough = match o.side {
        // The whole order's collateral plus its fee at the limit, as the
        // exchange checks balance before matching (§2.9: fees on top).
        OrderSide::Buy => account.cash >= collateral + fees.taker_fee(limit, shares).value(),
        OrderSide::Sell => account.position(&token) >= shares.value(),
    };
    if !enough {
        return reject(StatusCode::BAD_REQUEST, NOT_ENOUGH);
    }
    let m = st.markets[i].books();
    let book = if is_yes { &m.poly_yes } else { &m.poly_no };
    let taken = match o.side {
        OrderSide::Buy => walk(book.asks(), shares, |p| p <= limit),
        OrderSide::Sell => walk(book.bids(), shares, |p| p >= limit),
    };
    let filled = total(&taken);
    if order_type == "FOK" && filled < shares {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": FOK_KILLED, "orderID": order_id})),
        )
            .into_response();
    }
    if order_type == "FAK" && filled.is_zero() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": FAK_NO_MATCH, "orderID": order_id})),
        )
            .into_response();
    }

    let ts_ms = now_ms();
    let mut diff = BookDiff::default();
    let mut notional = Decimal::ZERO;
    let mut fee_total = Decimal::ZERO;
    let mut trade_ids = Vec::new();
    let mut trades = Vec::new();
    let condition_id = st.pairs[i].condition_id.clone();
    let outcome_word = if is_yes { "Yes" } else { "No" };
    let (taken_side, mirror_side) = match o.side {
        OrderSide::Buy => (Side::Ask, Side::Bid),
        OrderSide::Sell => (Side::Bid, Side::Ask),
    };
    for l in &taken {
        // The two tokens' books mirror each other (§2.3): a YES ask at p is a
        // NO bid at 1 − p, so taking one removes the other too.
        let books = st.markets[i].books_mut();
        let (own, other, own_diff, other_diff) = if is_yes {
            (
                &mut books.poly_yes,
                &mut books.poly_no,
                &mut diff.poly_yes,
                &mut diff.poly_no,
            )
        } else {
            (
                &mut books.poly_no,
                &mut books.poly_yes,
                &mut diff.poly_no,
                &mut diff.poly_yes,
            )
        };
        take(own, taken_side, l.price, l.size, own_diff);
        take(other, mirror_side, l.price.complement(), l.size, other_diff);
        let fee = fees.taker_fee(l.price, l.size).value();
        let fill_id = st.accounts.new_uuid();
        let cost = l.price.value() * l.size.value();
        let (cash, shares_delta) = match o.side {
            OrderSide::Buy => (-cost, l.size.value()),
            OrderSide::Sell => (cost, -l.size.value()),
        };
        let account = &mut st.accounts.polymarket;
        let before = account.position(&token);
        account.book_fill(
            SimFill {
                fill_id: fill_id.clone(),
                order_id: order_id.clone(),
                market: token.clone(),
                side: side_word(o.side).into(),
                price: l.price,
                size: l.size,
                fee,
                position_before: before,
                ts_ms,
            },
            cash,
            shares_delta,
        );
        trades.push(SimTrade {
            trade_id: fill_id.clone(),
            taker_order_id: order_id.clone(),
            maker_order_id: format!(
                "0x{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    format!("maker-{fill_id}").as_bytes()
                ))
            ),
            market: condition_id.clone(),
            asset_id: token.clone(),
            outcome: outcome_word,
            side: side_word(o.side).into(),
            price: l.price,
            size: l.size,
            fee,
            status: SimTradeStatus::Matched,
            match_time_s: ts_ms / 1_000,
            last_update_s: ts_ms / 1_000,
            transaction_hash: None,
            cash_delta: cash,
            position_delta: shares_delta,
        });
        trade_ids.push(fill_id);
        notional += cost;
        fee_total += fee;
    }
    let rests = order_type != "FOK" && order_type != "FAK" && filled < shares;
    let account = &mut st.accounts.polymarket;
    account.used_ids.insert(order_id.clone());
    if rests && order_type == "GTD" {
        account
            .expiries
            .insert(order_id.clone(), o.expiration - GTD_THRESHOLD_S);
    }
    account.orders.push(SimOrder {
        order_id: order_id.clone(),
        client_order_id: String::new(),
        market: token.clone(),
        side: side_word(o.side).into(),
        price: limit.value(),
        count: shares,
        filled,
        fees: fee_total,
        time_in_force: order_type.to_string(),
        status: if rests {
            SimOrderStatus::Resting
        } else {
            SimOrderStatus::Executed
        },
        ts_ms,
    });
    broadcast(st, i, diff);
    if rests {
        // What rests shows in the token's book and, mirrored, in the other's (§2.3).
        let left = shares.checked_sub(filled).unwrap_or(Size::ZERO);
        let (own, other) = if is_yes {
            (QuoteBook::PolyYes, QuoteBook::PolyNo)
        } else {
            (QuoteBook::PolyNo, QuoteBook::PolyYes)
        };
        let quote = |book, side, price| RestingQuote {
            order_id: order_id.clone(),
            book,
            side,
            price,
            size: left,
        };
        let shown = st.markets[i].rest(vec![
            quote(own, mirror_side, limit),
            quote(other, taken_side, limit.complement()),
        ]);
        broadcast(st, i, shown);
    }
    // The user channel: the order, then its trades as MATCHED; the chain
    // settles them afterwards.
    if let Some(placed) = st.accounts.polymarket.orders.last().cloned() {
        polymarket_user::push_order(st, &placed, "PLACEMENT");
    }
    polymarket_user::matched(st, trades);
    drop(guard);
    tokio::spawn(polymarket_user::settle(state.clone(), trade_ids.clone()));

    // BUY: making = collateral paid, taking = shares received; SELL mirrors it.
    let (making, taking) = match o.side {
        OrderSide::Buy => (notional, filled.value()),
        OrderSide::Sell => (filled.value(), notional),
    };
    let hashes: Vec<String> = trade_ids
        .iter()
        .map(|t| format!("0x{}", hex::encode(Sha1::digest(t.as_bytes()))))
        .collect();
    axum::Json(json!({
        "success": true, "errorMsg": "", "orderID": order_id,
        "status": if filled.is_zero() { "live" } else { "matched" },
        "takingAmount": num(taking), "makingAmount": num(making),
        "tradeIDs": trade_ids, "transactionsHashes": hashes,
    }))
    .into_response()
}

fn side_word(side: OrderSide) -> &'static str {
    match side {
        OrderSide::Buy => "BUY",
        OrderSide::Sell => "SELL",
    }
}

async fn cancel_order(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = authorize(&state, &headers, "DELETE", "/order", &body) {
        return r.into_response();
    }
    let Some(id) = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("orderID").and_then(Value::as_str).map(String::from))
    else {
        return reject(StatusCode::BAD_REQUEST, "Invalid order payload: orderID");
    };
    let mut st = write(&state);
    cancelled(&mut st, &[id])
}

/// Cancels each of `ids` that rests (out of the book, a CANCELLATION on the
/// user channel); the venue's answer `{"canceled": [...], "not_canceled": {id: reason}}`.
fn cancelled(st: &mut SimState, ids: &[String]) -> Response {
    expire_due(st);
    let mut canceled = Vec::new();
    let mut not_canceled = serde_json::Map::new();
    for id in ids {
        match st.accounts.polymarket.order_mut(id) {
            Some(o) if o.status == SimOrderStatus::Resting => {
                o.status = SimOrderStatus::Canceled;
                let o = o.clone();
                polymarket_user::push_order(st, &o, "CANCELLATION");
                lift(st, id);
                canceled.push(id.clone());
            }
            Some(_) => {
                not_canceled.insert(
                    id.clone(),
                    json!("order can't be canceled: already matched or canceled"),
                );
            }
            None => {
                not_canceled.insert(id.clone(), json!("Order not found"));
            }
        }
    }
    axum::Json(json!({"canceled": canceled, "not_canceled": not_canceled})).into_response()
}

/// `DELETE /orders` with a JSON array of order ids (§2.6).
async fn cancel_orders(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = authorize(&state, &headers, "DELETE", "/orders", &body) {
        return r.into_response();
    }
    let Ok(ids) = serde_json::from_str::<Vec<String>>(&body) else {
        return reject(StatusCode::BAD_REQUEST, "Invalid order payload");
    };
    let mut st = write(&state);
    cancelled(&mut st, &ids)
}

/// `DELETE /cancel-all`: every resting order of the account (§2.6).
async fn cancel_all(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers, "DELETE", "/cancel-all", "") {
        return r.into_response();
    }
    let mut st = write(&state);
    expire_due(&mut st);
    let ids: Vec<String> = st
        .accounts
        .polymarket
        .orders
        .iter()
        .filter(|o| o.status == SimOrderStatus::Resting)
        .map(|o| o.order_id.clone())
        .collect();
    cancelled(&mut st, &ids)
}

async fn open_orders(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers, "GET", "/data/orders", "") {
        return r.into_response();
    }
    let mut st = write(&state);
    expire_due(&mut st);
    let owner = st
        .accounts
        .polymarket_creds
        .as_ref()
        .map(|c| c.api_key.clone())
        .unwrap_or_default();
    let data: Vec<Value> = st
        .accounts
        .polymarket
        .orders
        .iter()
        .filter(|o| o.status == SimOrderStatus::Resting)
        .map(|o| {
            let market = st
                .pairs
                .iter()
                .find(|p| p.yes_token == o.market || p.no_token == o.market);
            let outcome = market.map_or("", |p| if p.yes_token == o.market { "Yes" } else { "No" });
            json!({"id": o.order_id, "status": "LIVE", "owner": owner,
                "market": market.map_or("", |p| p.condition_id.as_str()), "asset_id": o.market,
                "side": o.side, "original_size": num(o.count.value()), "size_matched": num(o.filled.value()),
                "price": num(o.price), "outcome": outcome, "expiration": "0", "order_type": o.time_in_force,
                "associate_trades": [], "created_at": o.ts_ms / 1_000})
        })
        .collect();
    let count = data.len();
    axum::Json(json!({"data": data, "next_cursor": "LTE=", "limit": 100, "count": count}))
        .into_response()
}

async fn balance_allowance(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, "GET", "/balance-allowance", "") {
        return r.into_response();
    }
    let st = read(&state);
    let a = &st.accounts.polymarket;
    let amount = match q.get("asset_type").map(String::as_str) {
        Some("COLLATERAL") => a.cash,
        Some("CONDITIONAL") => match q.get("token_id") {
            Some(t) => a.position(t),
            None => return reject(StatusCode::BAD_REQUEST, "token_id is required"),
        },
        _ => return reject(StatusCode::BAD_REQUEST, "invalid asset_type"),
    };
    // 6-dp base units, floored (§2.6).
    let units = (amount * Decimal::from(UNITS))
        .floor()
        .to_u64()
        .unwrap_or(0);
    axum::Json(json!({"balance": units.to_string(),
        "allowances": {CTF_EXCHANGE_V2: "115792089237316195423570985008687907853269984665640564039457584007913129639935"}}))
    .into_response()
}

// ---------------------------------------------------------------------------
// Versions, market info and API keys (§2.1, §2.2, §2.5).

/// `GET /version`: which order domain the exchange expects.
async fn version(State(state): State<Shared>) -> Response {
    axum::Json(json!({"version": read(&state).accounts.polymarket_version})).into_response()
}

/// `GET /clob-markets/{condition_id}`: the compact market info the V2 clients
/// cache (§2.2). The simulated markets: tick 0.01, min size 5, not neg-risk,
/// the account's fee model, accepting orders, no taker delay.
async fn clob_market(State(state): State<Shared>, Path(condition_id): Path<String>) -> Response {
    let st = read(&state);
    let Some(p) = st.pairs.iter().find(|p| p.condition_id == condition_id) else {
        return reject(StatusCode::NOT_FOUND, "market not found");
    };
    let fees = st.accounts.polymarket_fees;
    let mut v = json!({"c": p.condition_id,
        "t": [{"t": p.yes_token, "o": "Yes"}, {"t": p.no_token, "o": "No"}],
        "mts": 0.01, "mbf": 0, "tbf": 0, "r": null, "ao": true, "mos": MIN_ORDER_SIZE, "sd": 0,
        "cbos": false, "rfqe": false, "itode": false, "ibce": false});
    // `fd` and `nr` are omitted when empty/false, as the venue does.
    if !fees.rate.is_zero() {
        // A JSON number, as the venue sends it; read back through its text.
        let rate: serde_json::Number = fees
            .rate
            .normalize()
            .to_string()
            .parse()
            .unwrap_or_else(|_| serde_json::Number::from(0));
        v["fd"] = json!({"r": rate, "e": fees.exponent, "to": true});
    }
    axum::Json(v).into_response()
}

/// Checks the four L1 headers: an EIP-712 `ClobAuth` signature by
/// `POLY_ADDRESS` over `POLY_TIMESTAMP` (within 5 minutes) and `POLY_NONCE`.
/// Refused L1 headers: 401, as for L2.
struct L1Refused;

impl IntoResponse for L1Refused {
    fn into_response(self) -> Response {
        reject(StatusCode::UNAUTHORIZED, "Invalid L1 Request headers")
    }
}

fn l1_signer(headers: &HeaderMap) -> Result<(Address, u64), L1Refused> {
    use crate::venues::polymarket::auth::{
        POLY_ADDRESS, POLY_NONCE, POLY_SIGNATURE, POLY_TIMESTAMP, clob_auth_digest,
    };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let refused = || L1Refused;
    let address = header(POLY_ADDRESS)
        .and_then(|a| Address::from_str(a).ok())
        .ok_or_else(refused)?;
    let timestamp = header(POLY_TIMESTAMP).ok_or_else(refused)?;
    let ts: u64 = timestamp.parse().map_err(|_| refused())?;
    if (now_ms() / 1_000).abs_diff(ts) > 300 {
        return Err(refused());
    }
    let nonce: u64 = header(POLY_NONCE)
        .unwrap_or("0")
        .parse()
        .map_err(|_| refused())?;
    let digest = clob_auth_digest(POLYGON, address, timestamp, nonce);
    let recovered = header(POLY_SIGNATURE)
        .and_then(|s| Signature::from_str(s.trim_start_matches("0x")).ok())
        .and_then(|s| s.recover(digest).ok());
    if recovered != Some(address) {
        return Err(refused());
    }
    Ok((address, nonce))
}

fn creds_json(c: &ApiCreds) -> Response {
    axum::Json(json!({"apiKey": c.api_key, "secret": c.secret().expose(),
        "passphrase": c.passphrase().expose()}))
    .into_response()
}

/// `POST /auth/api-key`: a new key for this wallet and nonce; refused when one
/// exists (clients then derive it).
async fn create_api_key(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (address, nonce) = match l1_signer(&headers) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let mut st = write(&state);
    let accounts = &mut st.accounts;
    if accounts
        .polymarket_api_keys
        .iter()
        .any(|(a, n, _)| *a == address && *n == nonce)
    {
        return reject(StatusCode::BAD_REQUEST, "Could not create api key");
    }
    use base64::Engine;
    use rand::Rng;
    let bytes: [u8; 32] = rand::thread_rng().r#gen();
    let pass: [u8; 32] = rand::thread_rng().r#gen();
    let creds = ApiCreds::new(
        accounts.new_uuid(),
        crate::config::Secret::new(base64::engine::general_purpose::URL_SAFE.encode(bytes)),
        crate::config::Secret::new(hex::encode(pass)),
    );
    accounts
        .polymarket_api_keys
        .push((address, nonce, creds.clone()));
    creds_json(&creds)
}

/// `GET /auth/derive-api-key`: the key this wallet created for this nonce.
async fn derive_api_key(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (address, nonce) = match l1_signer(&headers) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let st = read(&state);
    match st
        .accounts
        .polymarket_api_keys
        .iter()
        .find(|(a, n, _)| *a == address && *n == nonce)
    {
        Some((_, _, c)) => creds_json(c),
        None => reject(StatusCode::BAD_REQUEST, "Could not derive api key!"),
    }
}

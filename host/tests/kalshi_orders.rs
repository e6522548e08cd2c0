//! Kalshi orders over real HTTP: the REST client against the simulator's V2
//! order endpoints on 127.0.0.1 — FOK fills at the book price with the taker
//! fee, refusals come back typed, taken liquidity leaves the book a feed sees.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use doubletime::books::BookStore;
use doubletime::bus::Bus;
use doubletime::domain::{
    Action, KalshiFees, Outcome, PairFees, PairId, Size, TimeInForce, Usd, Venue,
};
use doubletime::sim::{self, SimHandle};
use doubletime::venues::feed::{BookWriter, FeedStats};
use doubletime::venues::http::RetryPolicy;
use doubletime::venues::kalshi::rest::KalshiRest;
use doubletime::venues::kalshi::ws::{OrderbookFeedConfig, run_orderbook_feed};
use doubletime::venues::kalshi::{FillStatus, KalshiError, KalshiSigner};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use support::{WAIT, p};

const KEY_ID: &str = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c";

struct Venue1 {
    sim: SimHandle,
    rest: KalshiRest,
    signer: Arc<KalshiSigner>,
}

/// Pairs "fed" and "cpi" with [`support::order_books`], requests signed and checked.
async fn venue() -> Venue1 {
    let (private, public) = support::rsa_pems();
    let pairs = [support::pair("fed"), support::pair("cpi")];
    let sim = support::signed_sim(&pairs, 3, &public).await;
    sim.replace_books(0, support::order_books()).await;
    sim.replace_books(1, support::order_books()).await;
    let signer = Arc::new(KalshiSigner::from_pem(KEY_ID, &private, Path::new("test")).unwrap());
    let rest = KalshiRest::new(&sim.kalshi_rest_url, Some(signer.clone())).unwrap();
    Venue1 { sim, rest, signer }
}

fn buy(
    id: &str,
    outcome: Outcome,
    limit: &str,
    size: u64,
    tif: TimeInForce,
) -> doubletime::domain::Order {
    support::order(Venue::Kalshi, id, outcome, limit, size, tif)
}

fn usd(d: Decimal) -> Usd {
    Usd::new(d)
}

fn kalshi_books(
    sim: &SimHandle,
    pair: usize,
) -> (doubletime::domain::OrderBook, doubletime::domain::OrderBook) {
    let st = sim::read(&sim.state);
    let b = st.markets[pair].books();
    (b.kalshi_yes.clone(), b.kalshi_no.clone())
}

#[tokio::test]
async fn fok_buy_yes_and_buy_no_fill_at_the_book_price_with_the_taker_fee() {
    let v = venue().await;
    assert_eq!(v.rest.balance().await.unwrap(), usd(dec!(1000)));
    // One shard's balance: the query is not part of the signed path.
    assert_eq!(v.rest.balance_on(Some(0)).await.unwrap(), usd(dec!(1000)));

    // Buy 10 YES at ≤ 0.45: the YES ask is the NO bid 0.55 (§1.5).
    let o = buy("yes-1", Outcome::Yes, "0.45", 10, TimeInForce::FillOrKill);
    let r = v.rest.create_order(&o, "KX-fed").await.unwrap();
    assert_eq!(r.status, FillStatus::Filled);
    assert_eq!((r.filled, r.remaining), (Size::whole(10), Size::ZERO));
    assert_eq!(r.average_price, Some(p("0.45")));
    // ceil_to_cent(0.07 × 10 × 0.45 × 0.55 = 0.17325) = 0.18.
    let fee = KalshiFees::default().taker_fee(p("0.45"), Size::whole(10));
    assert_eq!(fee, usd(dec!(0.18)));
    assert_eq!(r.fees, fee);
    assert_eq!(v.rest.balance().await.unwrap(), usd(dec!(995.32)));

    // Buy 5 NO at ≤ 0.60 = an ask at YES 0.40, taking the YES bid 0.40.
    let o = buy("no-1", Outcome::No, "0.60", 5, TimeInForce::FillOrKill);
    let r = v.rest.create_order(&o, "KX-cpi").await.unwrap();
    assert_eq!(r.status, FillStatus::Filled);
    assert_eq!(r.average_yes_price, Some(p("0.40")));
    assert_eq!(r.average_price, Some(p("0.60")));
    // ceil_to_cent(0.07 × 5 × 0.4 × 0.6 = 0.084) = 0.09.
    assert_eq!(r.fees, usd(dec!(0.09)));
    assert_eq!(
        v.rest.balance().await.unwrap(),
        usd(dec!(995.32) - dec!(3.00) - dec!(0.09))
    );

    let positions: HashMap<String, Decimal> = v
        .rest
        .positions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.ticker, p.position))
        .collect();
    assert_eq!(positions.get("KX-fed"), Some(&dec!(10)));
    assert_eq!(positions.get("KX-cpi"), Some(&dec!(-5)));

    let fills = v.rest.fills(&r.order_id).await.unwrap();
    assert_eq!(fills.len(), 1);
    let f = &fills[0];
    assert_eq!(
        (f.outcome, f.action, f.count, f.yes_price, f.fee, f.is_taker),
        (
            Outcome::No,
            Action::Buy,
            Size::whole(5),
            p("0.40"),
            usd(dec!(0.09)),
            true
        )
    );
    // Only the taken levels are gone.
    let (yes, no) = kalshi_books(&v.sim, 0);
    assert_eq!(no.best_bid().unwrap().price, p("0.54"));
    assert_eq!(yes.best_bid().unwrap().price, p("0.40"));
    let (yes, _) = kalshi_books(&v.sim, 1);
    assert_eq!(yes.best_bid().unwrap().size, Size::whole(5));
}

#[tokio::test]
async fn fok_too_large_is_refused_typed_and_changes_nothing() {
    let v = venue().await;
    let before = kalshi_books(&v.sim, 0);
    // 30 contracts offered at ≤ 0.46; 31 cannot fill completely.
    let o = buy("big", Outcome::Yes, "0.46", 31, TimeInForce::FillOrKill);
    let e = v.rest.create_order(&o, "KX-fed").await.unwrap_err();
    assert!(
        matches!(e, KalshiError::FillOrKillNotFillable { .. }),
        "{e:?}"
    );
    assert_eq!(kalshi_books(&v.sim, 0), before);
    assert_eq!(v.rest.balance().await.unwrap(), usd(dec!(1000)));
    assert!(v.rest.positions().await.unwrap().is_empty());
    assert!(v.sim.fills(Venue::Kalshi).is_empty());
}

#[tokio::test]
async fn ioc_fills_what_it_can_and_cancels_the_rest() {
    let v = venue().await;
    let o = buy(
        "ioc",
        Outcome::Yes,
        "0.45",
        15,
        TimeInForce::ImmediateOrCancel,
    );
    let r = v.rest.create_order(&o, "KX-fed").await.unwrap();
    assert_eq!(r.status, FillStatus::PartiallyFilled);
    assert_eq!((r.filled, r.remaining), (Size::whole(10), Size::whole(5)));
    assert_eq!(r.fees, usd(dec!(0.18)));
    assert_eq!(v.sim.position(Venue::Kalshi, "KX-fed"), dec!(10));

    // Nothing at ≤ 0.30: a 2xx with nothing filled.
    let o = buy(
        "ioc-none",
        Outcome::Yes,
        "0.30",
        5,
        TimeInForce::ImmediateOrCancel,
    );
    let r = v.rest.create_order(&o, "KX-fed").await.unwrap();
    assert_eq!(
        (r.status, r.filled, r.remaining),
        (FillStatus::NotFilled, Size::ZERO, Size::whole(5))
    );
    assert_eq!(r.fees, Usd::ZERO);
}

#[tokio::test]
async fn a_reused_client_order_id_is_refused() {
    let v = venue().await;
    let o = buy("same-id", Outcome::Yes, "0.45", 1, TimeInForce::FillOrKill);
    v.rest.create_order(&o, "KX-fed").await.unwrap();
    let e = v.rest.create_order(&o, "KX-fed").await.unwrap_err();
    assert!(
        matches!(e, KalshiError::DuplicateClientOrderId { .. }),
        "{e:?}"
    );
    assert_eq!(v.sim.position(Venue::Kalshi, "KX-fed"), dec!(1));
}

#[tokio::test]
async fn an_order_the_balance_cannot_cover_is_refused() {
    let v = venue().await;
    v.sim.set_balance(Venue::Kalshi, dec!(4.50));
    // 10 × 0.45 = 4.50 plus a 0.18 fee.
    let o = buy("poor", Outcome::Yes, "0.45", 10, TimeInForce::FillOrKill);
    let e = v.rest.create_order(&o, "KX-fed").await.unwrap_err();
    assert!(
        matches!(e, KalshiError::InsufficientBalance { .. }),
        "{e:?}"
    );
    assert_eq!(v.sim.balance(Venue::Kalshi), dec!(4.50));
    assert!(v.sim.fills(Venue::Kalshi).is_empty());
}

#[tokio::test]
async fn a_key_the_venue_does_not_know_is_a_typed_401() {
    let v = venue().await;
    let (other, _) = support::rsa_pems();
    let stranger = Arc::new(KalshiSigner::from_pem(KEY_ID, &other, Path::new("other")).unwrap());
    let rest = KalshiRest::new(&v.sim.kalshi_rest_url, Some(stranger)).unwrap();
    let e = rest.balance().await.unwrap_err();
    assert!(
        matches!(e, KalshiError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    let o = buy("anon", Outcome::Yes, "0.45", 1, TimeInForce::FillOrKill);
    let e = rest.create_order(&o, "KX-fed").await.unwrap_err();
    assert!(
        matches!(e, KalshiError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    // Unsigned requests are refused too; the real key still works.
    let unsigned = KalshiRest::new(&v.sim.kalshi_rest_url, None).unwrap();
    assert!(matches!(
        unsigned.balance().await,
        Err(KalshiError::Unauthorized { .. })
    ));
    assert!(v.sim.fills(Venue::Kalshi).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_liquidity_leaves_the_book_the_feed_sees() {
    let v = venue().await;
    let pair = support::pair("fed");
    let books = Arc::new(BookStore::new());
    books.add(pair.clone(), PairFees::default(), Size::whole(5));
    let bus = Arc::new(Bus::default());
    let changed = bus.books.subscribe();
    let mut cfg = OrderbookFeedConfig::new(
        v.sim.kalshi_ws_url.clone(),
        vec![pair.clone()],
        Some(v.signer.clone()),
    );
    cfg.backoff_base = Duration::from_millis(20);
    let writer = BookWriter::new(
        Venue::Kalshi,
        books.clone(),
        bus.clone(),
        Arc::new(FeedStats::default()),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let feed = tokio::spawn(run_orderbook_feed(cfg, writer, None, shutdown));
    let ours = books.get(&PairId("fed".into())).unwrap();
    let no_bid = |price: &str| {
        ours.state()
            .kalshi
            .no
            .bids()
            .find(|l| l.price == p(price))
            .map(|l| l.size)
    };
    let wait = |cond: Box<dyn Fn() -> bool + Send>| {
        let changed = &changed;
        async move {
            tokio::time::timeout(WAIT, async {
                while !cond() {
                    changed.recv().await;
                }
            })
            .await
            .expect("feed never showed the change")
        }
    };
    let ours2 = ours.clone();
    wait(Box::new(move || {
        ours2.state().kalshi.no.best_bid().map(|l| l.price) == Some(p("0.55"))
    }))
    .await;
    assert_eq!(no_bid("0.55"), Some(Size::whole(10)));

    // 12 YES take all of the NO bid 0.55 and 2 of 0.54.
    let o = buy("feed", Outcome::Yes, "0.46", 12, TimeInForce::FillOrKill);
    let r = v.rest.create_order(&o, "KX-fed").await.unwrap();
    assert_eq!(r.filled, Size::whole(12));
    // 10 at 0.45 and 2 at 0.46, each fill's fee rounded up to the cent.
    let fees = KalshiFees::default();
    assert_eq!(
        v.sim.balance(Venue::Kalshi),
        dec!(1000)
            - dec!(4.50)
            - dec!(0.92)
            - fees.taker_fee(p("0.45"), Size::whole(10)).value()
            - fees.taker_fee(p("0.46"), Size::whole(2)).value()
    );
    let ours3 = ours.clone();
    wait(Box::new(move || {
        let st = ours3.state();
        st.kalshi.no.best_bid().map(|l| (l.price, l.size)) == Some((p("0.54"), Size::whole(18)))
    }))
    .await;
    assert_eq!(no_bid("0.55"), None);
    let (_, theirs) = kalshi_books(&v.sim, 0);
    assert_eq!(ours.state().kalshi.no, theirs);

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, feed).await.unwrap().unwrap();
}

/// A stand-in venue answering 429 a set number of times before the real answer.
async fn throttling_venue(throttled: u32, then: (u16, &'static str)) -> (String, Arc<AtomicU32>) {
    use axum::http::StatusCode;
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let handler = move || {
        let h = h.clone();
        async move {
            let n = h.fetch_add(1, Ordering::SeqCst);
            if n < throttled {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    r#"{"error": "too many requests"}"#,
                )
            } else {
                (StatusCode::from_u16(then.0).unwrap(), then.1)
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/trade-api/v2/portfolio/balance",
            axum::routing::get(handler.clone()),
        )
        .route(
            "/trade-api/v2/portfolio/events/orders",
            axum::routing::post(handler),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/trade-api/v2"), hits)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn rate_limits_are_retried_with_backoff_but_an_order_answered_5xx_is_never_resent() {
    let (url, hits) = throttling_venue(
        2,
        (200, r#"{"balance": 12345, "balance_dollars": "123.4500"}"#),
    )
    .await;
    let rest = KalshiRest::new(&url, None)
        .unwrap()
        .with_retry(fast_retries());
    assert_eq!(rest.balance().await.unwrap(), usd(dec!(123.45)));
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Throttled beyond the bound: the typed 429 comes back.
    let (url, hits) = throttling_venue(10, (200, "{}")).await;
    let rest = KalshiRest::new(&url, None)
        .unwrap()
        .with_retry(fast_retries());
    assert!(matches!(
        rest.balance().await,
        Err(KalshiError::RateLimited { .. })
    ));
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // A 429 proves the order was not taken: resent. A 5xx does not: returned.
    let body = r#"{"order_id":"x","fill_count":"1.00","remaining_count":"0.00","average_fill_price":"0.4500","average_fee_paid":"0.0200"}"#;
    let (url, hits) = throttling_venue(1, (201, body)).await;
    let rest = KalshiRest::new(&url, None)
        .unwrap()
        .with_retry(fast_retries());
    let o = buy("r", Outcome::Yes, "0.45", 1, TimeInForce::FillOrKill);
    assert_eq!(
        rest.create_order(&o, "KX-fed").await.unwrap().filled,
        Size::whole(1)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let (url, hits) = throttling_venue(0, (503, "")).await;
    let rest = KalshiRest::new(&url, None)
        .unwrap()
        .with_retry(fast_retries());
    assert!(matches!(
        rest.create_order(&o, "KX-fed").await,
        Err(KalshiError::Other { status: 503, .. })
    ));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

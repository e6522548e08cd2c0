//! Polymarket orders over real HTTP: the REST client builds and signs V2
//! orders, authenticates with L2 HMAC, and the simulator's `POST /order`
//! matches them against the book — FOK at the book price with the fee on top,
//! FAK partial fills, typed refusals, taken liquidity gone from the feed's book.

mod support;

use std::sync::Arc;
use std::time::Duration;

use doubletime::books::BookStore;
use doubletime::bus::Bus;
use doubletime::config::Secret;
use doubletime::domain::{
    Outcome, PairFees, PairId, PolymarketFees, Size, TimeInForce, TokenId, Usd, Venue,
};
use doubletime::sim::{self, SimHandle};
use doubletime::venues::feed::{BookWriter, FeedStats};
use doubletime::venues::polymarket::auth::l2_headers;
use doubletime::venues::polymarket::messages::OrderStatus;
use doubletime::venues::polymarket::orders::{
    ExchangeDomain, ExchangeVersion, OrderArgs, OrderBuilder, OrderSide, OrderType, POLYGON,
};
use doubletime::venues::polymarket::rest::PolymarketRest;
use doubletime::venues::polymarket::ws::{MarketFeedConfig, run_market_feed};
use doubletime::venues::polymarket::{ApiCreds, PolySigner, PolymarketError, TickSize};
use rust_decimal_macros::dec;
use support::{WAIT, p};

/// The Hardhat/Anvil key of the §3 vectors.
const WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const API_KEY: &str = "0f3b5f2c-7d0e-4a55-9a3e-3c0a4b1d2e6f";

fn creds(secret: &str) -> ApiCreds {
    ApiCreds::new(API_KEY, Secret::new(secret), Secret::new("passphrase-1"))
}

fn good_creds() -> ApiCreds {
    creds("c2ltdWxhdGVkLWNsb2ItYXBpLXNlY3JldC0wMTIzNDU2Nzg=")
}

fn wallet() -> PolySigner {
    PolySigner::from_private_key(&Secret::new(WALLET_KEY)).unwrap()
}

struct Clob {
    sim: SimHandle,
    rest: PolymarketRest,
    yes: TokenId,
    no: TokenId,
}

/// One pair with [`support::order_books`], L2 credentials required, fee 0.04.
async fn clob() -> Clob {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    sim.set_polymarket_creds(good_creds());
    sim.set_polymarket_fees(fees());
    sim.replace_books(0, support::order_books()).await;
    let rest =
        PolymarketRest::new(&sim.polymarket_rest_url, Some(good_creds()), Some(wallet())).unwrap();
    Clob {
        sim,
        rest,
        yes: pair.polymarket_yes_token,
        no: pair.polymarket_no_token,
    }
}

fn fees() -> PolymarketFees {
    PolymarketFees {
        rate: dec!(0.04),
        exponent: 1,
    }
}

fn buy(outcome: Outcome, limit: &str, size: u64, tif: TimeInForce) -> doubletime::domain::Order {
    support::order(Venue::Polymarket, "leg", outcome, limit, size, tif)
}

fn poly_books(sim: &SimHandle) -> (doubletime::domain::OrderBook, doubletime::domain::OrderBook) {
    let st = sim::read(&sim.state);
    let b = st.markets[0].books();
    (b.poly_yes.clone(), b.poly_no.clone())
}

const TICK: TickSize = TickSize::Hundredth;

/// A level's price and size.
type Top = (doubletime::domain::Price, Size);

#[tokio::test]
async fn fok_buy_yes_and_buy_no_fill_at_the_book_price_with_the_fee_on_top() {
    let c = clob().await;
    assert_eq!(c.rest.balance().await.unwrap(), Usd::new(dec!(1000)));

    let o = buy(Outcome::Yes, "0.45", 10, TimeInForce::FillOrKill);
    let r = c.rest.post_order(&o, &c.yes, TICK, false).await.unwrap();
    assert_eq!(r.status, Some(OrderStatus::Matched));
    assert_eq!(r.filled, Size::whole(10));
    assert_eq!(r.collateral, Usd::new(dec!(4.5)));
    assert_eq!(r.average_price, Some(p("0.45")));
    assert!(r.order_id.starts_with("0x") && r.order_id.len() == 66);
    // 10 × 0.04 × 0.45 × 0.55 = 0.099, charged on top (§2.9).
    let fee = fees().taker_fee(p("0.45"), Size::whole(10));
    assert_eq!(fee, Usd::new(dec!(0.099)));
    assert_eq!(r.to_fill(&o, &fees(), 0).unwrap().fee, fee);
    let after_yes = dec!(1000) - dec!(4.5) - dec!(0.099);
    assert_eq!(c.rest.balance().await.unwrap(), Usd::new(after_yes));
    assert_eq!(c.sim.position(Venue::Polymarket, c.yes.as_str()), dec!(10));

    // Buy NO reads the NO token's asks directly (§2.3).
    let o = buy(Outcome::No, "0.57", 10, TimeInForce::FillOrKill);
    let r = c.rest.post_order(&o, &c.no, TICK, false).await.unwrap();
    assert_eq!(
        (r.filled, r.average_price),
        (Size::whole(10), Some(p("0.57")))
    );
    // 10 × 0.04 × 0.57 × 0.43 = 0.09804 → 0.0981 (rounded up to $0.0001).
    assert_eq!(
        c.rest.balance().await.unwrap(),
        Usd::new(after_yes - dec!(5.7) - dec!(0.0981))
    );
    assert_eq!(c.sim.position(Venue::Polymarket, c.no.as_str()), dec!(10));

    // Taken levels and their mirrors are gone; the rest is untouched.
    let (yes, no) = poly_books(&c.sim);
    assert_eq!(yes.best_ask().unwrap().price, p("0.46"));
    assert_eq!(no.best_ask().unwrap().price, p("0.58"));
    assert_eq!(no.best_bid().unwrap().price, p("0.54"));
    assert_eq!(yes.best_bid().unwrap().price, p("0.42"));
    assert!(c.rest.open_orders().await.unwrap().is_empty());
}

#[tokio::test]
async fn fok_too_large_is_killed_typed_and_changes_nothing() {
    let c = clob().await;
    let before = poly_books(&c.sim);
    let o = buy(Outcome::Yes, "0.46", 31, TimeInForce::FillOrKill);
    let e = c
        .rest
        .post_order(&o, &c.yes, TICK, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PolymarketError::FokNotFilled { order_id: Some(id), .. } if id.starts_with("0x")),
        "{e:?}"
    );
    assert_eq!(poly_books(&c.sim), before);
    assert_eq!(c.rest.balance().await.unwrap(), Usd::new(dec!(1000)));
    assert!(c.sim.fills(Venue::Polymarket).is_empty());
}

#[tokio::test]
async fn fak_fills_what_it_can_and_an_unmatched_fak_is_typed() {
    let c = clob().await;
    let o = buy(Outcome::Yes, "0.45", 15, TimeInForce::ImmediateOrCancel);
    let r = c.rest.post_order(&o, &c.yes, TICK, false).await.unwrap();
    assert_eq!(
        (r.filled, r.collateral),
        (Size::whole(10), Usd::new(dec!(4.5)))
    );
    assert_eq!(c.sim.position(Venue::Polymarket, c.yes.as_str()), dec!(10));

    let o = buy(Outcome::Yes, "0.30", 5, TimeInForce::ImmediateOrCancel);
    let e = c
        .rest
        .post_order(&o, &c.yes, TICK, false)
        .await
        .unwrap_err();
    assert!(matches!(e, PolymarketError::FakNoMatch { .. }), "{e:?}");
}

#[tokio::test]
async fn the_same_signed_order_twice_is_refused_as_duplicated() {
    let c = clob().await;
    let signer = wallet();
    let args = OrderArgs {
        token_id: c.yes.clone(),
        side: OrderSide::Buy,
        price: p("0.45"),
        size: Size::whole(5),
        order_type: OrderType::Fok,
        tick: TICK,
        expiration: 0,
    };
    let domain = ExchangeDomain::for_market(ExchangeVersion::V2, POLYGON, false).unwrap();
    let body = OrderBuilder::eoa(signer.address())
        .build(&args, 1_760_000_000_000)
        .unwrap()
        .sign(&signer, &domain)
        .unwrap()
        .post_body(API_KEY, OrderType::Fok, false)
        .unwrap()
        .to_json();
    let http = reqwest::Client::new();
    let post = |body: String| async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = l2_headers(
            &good_creds(),
            &signer.checksum_address(),
            now,
            "POST",
            "/order",
            &body,
        )
        .unwrap();
        let mut req = http.post(format!("{}/order", c.sim.polymarket_rest_url));
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    };
    // An amount changed after signing: the EIP-712 signature no longer matches.
    let tampered = body.replace("\"takerAmount\":\"5000000\"", "\"takerAmount\":\"4000000\"");
    assert_ne!(tampered, body);
    let (status, text) = post(tampered).await;
    let e = PolymarketError::from_http(status, &text, None);
    assert!(
        matches!(e, PolymarketError::InvalidSignature { .. }),
        "{status} {text}"
    );
    let (status, _) = post(body.clone()).await;
    assert_eq!(status, 200);
    let (status, text) = post(body.clone()).await;
    let e = PolymarketError::from_http(status, &text, None);
    assert!(
        matches!(e, PolymarketError::Duplicated { .. }),
        "{status} {text}"
    );
    assert_eq!(c.sim.position(Venue::Polymarket, c.yes.as_str()), dec!(5));
}

#[tokio::test]
async fn an_order_the_balance_cannot_cover_is_refused() {
    let c = clob().await;
    // 10 × 0.45 = 4.50 plus the 0.099 fee.
    c.sim.set_balance(Venue::Polymarket, dec!(4.5));
    let o = buy(Outcome::Yes, "0.45", 10, TimeInForce::FillOrKill);
    let e = c
        .rest
        .post_order(&o, &c.yes, TICK, false)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PolymarketError::InsufficientBalance { .. }),
        "{e:?}"
    );
    assert_eq!(c.sim.balance(Venue::Polymarket), dec!(4.5));
    assert!(c.sim.fills(Venue::Polymarket).is_empty());
}

#[tokio::test]
async fn a_bad_hmac_is_a_typed_401() {
    let c = clob().await;
    let wrong = creds("d3JvbmctY2xvYi1hcGktc2VjcmV0LTAxMjM0NTY3ODkwMTI=");
    let rest =
        PolymarketRest::new(&c.sim.polymarket_rest_url, Some(wrong), Some(wallet())).unwrap();
    let e = rest.balance().await.unwrap_err();
    assert!(
        matches!(e, PolymarketError::Auth { status: 401, .. }),
        "{e:?}"
    );
    let o = buy(Outcome::Yes, "0.45", 10, TimeInForce::FillOrKill);
    let e = rest.post_order(&o, &c.yes, TICK, false).await.unwrap_err();
    assert!(
        matches!(e, PolymarketError::Auth { status: 401, .. }),
        "{e:?}"
    );
    assert!(!e.to_string().contains("passphrase-1"));
    assert!(c.sim.fills(Venue::Polymarket).is_empty());
    // Without keys nothing private is even sent.
    let public = PolymarketRest::new(&c.sim.polymarket_rest_url, None, None).unwrap();
    assert!(matches!(
        public.balance().await,
        Err(PolymarketError::InvalidRequest { .. })
    ));
    assert_eq!(public.book(&c.yes).await.unwrap().asks.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_liquidity_leaves_the_book_the_feed_sees() {
    let c = clob().await;
    let pair = support::pair("fed");
    let books = Arc::new(BookStore::new());
    books.add(pair.clone(), PairFees::default(), Size::whole(5));
    let bus = Arc::new(Bus::default());
    let changed = bus.books.subscribe();
    let writer = BookWriter::new(
        Venue::Polymarket,
        books.clone(),
        bus.clone(),
        Arc::new(FeedStats::default()),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut cfg = MarketFeedConfig::new(
        c.sim.polymarket_ws_url.clone(),
        c.sim.polymarket_rest_url.clone(),
        vec![pair.clone()],
    );
    cfg.backoff_base = Duration::from_millis(20);
    let feed = tokio::spawn(run_market_feed(cfg, writer, books.clone(), None, shutdown));
    let ours = books.get(&PairId("fed".into())).unwrap();
    let top = || {
        let st = ours.state();
        (
            st.polymarket.yes.best_ask().map(|l| (l.price, l.size)),
            st.polymarket.no.best_bid().map(|l| (l.price, l.size)),
        )
    };
    let until = |want: (Option<Top>, Option<Top>)| {
        let changed = &changed;
        let top = &top;
        async move {
            tokio::time::timeout(WAIT, async {
                while top() != want {
                    changed.recv().await;
                }
            })
            .await
            .expect("feed never showed the change")
        }
    };
    until((
        Some((p("0.45"), Size::whole(10))),
        Some((p("0.55"), Size::whole(10))),
    ))
    .await;

    // 12 YES take the 0.45 ask and 2 of the 0.46 one (and their NO mirrors).
    let o = buy(Outcome::Yes, "0.46", 12, TimeInForce::FillOrKill);
    let r = c.rest.post_order(&o, &c.yes, TICK, false).await.unwrap();
    assert_eq!(r.filled, Size::whole(12));
    assert_eq!(r.collateral, Usd::new(dec!(5.42)));
    let fee = fees().taker_fee(p("0.45"), Size::whole(10)).value()
        + fees().taker_fee(p("0.46"), Size::whole(2)).value();
    assert_eq!(
        c.sim.balance(Venue::Polymarket),
        dec!(1000) - dec!(5.42) - fee
    );
    until((
        Some((p("0.46"), Size::whole(18))),
        Some((p("0.54"), Size::whole(18))),
    ))
    .await;
    let (yes, no) = poly_books(&c.sim);
    assert_eq!(ours.state().polymarket.yes, yes);
    assert_eq!(ours.state().polymarket.no, no);

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, feed).await.unwrap().unwrap();
}

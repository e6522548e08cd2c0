//! The host's hot path piece by piece: parsing each venue's book messages,
//! applying a change to a book, the derived prices and depth walk, building a
//! plugin's view, request signing (Kalshi RSA-PSS, Polymarket EIP-712 + HMAC),
//! and sending an order request on loopback (the order line against reqwest).
//!
//! Run: `cargo bench -p doubletime --bench hot_path`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use doubletime::config::Secret;
use doubletime::domain::{
    MarketPair, MarketState, Outcome, PairFees, PairId, Price, Side, Size, SizeDelta, TokenId,
    Venue,
};
use doubletime::strategy::view::{empty_view, fill_quotes, fill_view, top_of_book};
use doubletime::venues::{kalshi, polymarket};

const KALSHI_DELTA: &str = r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"FED-23DEC-T3.00","market_id":"9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1","price_dollars":"0.960","delta_fp":"-54.00","side":"yes","ts":"2022-11-22T20:44:01Z","ts_ms":1669149841000}}"#;
const POLY_PRICE_CHANGE: &str = r#"{"market":"0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1","price_changes":[{"asset_id":"71321045679252212594626385532706912750332728571942532289631379312455583992563","price":"0.5","size":"200","side":"BUY","hash":"56621a121a47ed9333273e21c83b660cff37ae50","best_bid":"0.5","best_ask":"1"},{"asset_id":"52114319501245915516055106046884209969926127482827954674443846427813813222426","price":"0.5","size":"200","side":"SELL","hash":"1895759e4df7a796bf4f1c5a5950b748306923e2","best_bid":"0","best_ask":"0.5"}],"timestamp":"1757908892351","event_type":"price_change"}"#;

fn pair() -> MarketPair {
    MarketPair {
        id: PairId("fed".into()),
        kalshi_ticker: "FED-23DEC-T3.00".into(),
        polymarket_condition_id:
            "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1".into(),
        polymarket_yes_token: TokenId::new(
            "71321045679252212594626385532706912750332728571942532289631379312455583992563",
        )
        .unwrap(),
        polymarket_no_token: TokenId::new(
            "52114319501245915516055106046884209969926127482827954674443846427813813222426",
        )
        .unwrap(),
        neg_risk: false,
        kalshi_rules: String::new(),
        polymarket_rules: String::new(),
        rules_match: true,
    }
}

fn cents(c: i64) -> Price {
    Price::new(rust_decimal::Decimal::new(c, 2)).unwrap()
}

fn state() -> MarketState {
    let mut m = MarketState::new(pair());
    for c in 1..50 {
        m.kalshi
            .yes
            .set_level(Side::Bid, cents(c), Size::whole(100));
        m.kalshi.no.set_level(Side::Bid, cents(c), Size::whole(100));
        m.polymarket
            .yes
            .set_level(Side::Bid, cents(c), Size::whole(100));
        m.polymarket
            .yes
            .set_level(Side::Ask, cents(50 + c), Size::whole(100));
        m.polymarket
            .no
            .set_level(Side::Bid, cents(c), Size::whole(100));
        m.polymarket
            .no
            .set_level(Side::Ask, cents(50 + c), Size::whole(100));
    }
    m.kalshi.touch(1);
    m.polymarket.touch(1);
    m
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.bench_function("kalshi-orderbook-delta", |b| {
        b.iter(|| kalshi::parse(black_box(KALSHI_DELTA)).unwrap())
    });
    g.bench_function("polymarket-price-change", |b| {
        b.iter(|| polymarket::parse(black_box(POLY_PRICE_CHANGE)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("book");
    let mut m = state();
    let up = SizeDelta::new(rust_decimal::Decimal::from(5)).unwrap();
    let down = SizeDelta::new(rust_decimal::Decimal::from(-5)).unwrap();
    g.bench_function("kalshi-delta-apply", |b| {
        b.iter(|| {
            m.kalshi.yes.apply_delta(Side::Bid, cents(42), up).unwrap();
            m.kalshi
                .yes
                .apply_delta(Side::Bid, cents(42), down)
                .unwrap();
        })
    });
    g.bench_function("polymarket-level-set", |b| {
        b.iter(|| {
            m.polymarket
                .no
                .set_level(Side::Ask, cents(55), black_box(Size::whole(100)))
        })
    });
    g.bench_function("kalshi-derived-yes-ask", |b| {
        b.iter(|| black_box(m.kalshi_derived_yes_ask()))
    });
    g.bench_function("walk-asks-5-levels", |b| {
        b.iter(|| black_box(m.polymarket.no.walk_asks_to(cents(55))))
    });
    let fees = PairFees::default();
    let mut view = empty_view();
    g.bench_function("fill-plugin-view", |b| {
        b.iter(|| fill_view(&mut view, 0, black_box(&m), &fees, Size::whole(5), 2))
    });
    // What a `top-of-book` plugin is given: the scalars, no ladders.
    g.bench_function("fill-top-of-book-view", |b| {
        b.iter(|| {
            fill_quotes(&mut view, 0, black_box(&m), &fees, Size::whole(5), 2);
            black_box(top_of_book(&view))
        })
    });
    let _ = (Venue::Kalshi, Outcome::Yes);
    g.finish();

    let mut g = c.benchmark_group("sign");
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    };
    let signer =
        kalshi::KalshiSigner::from_pem("bench", &pem, std::path::Path::new("<bench>")).unwrap();
    g.bench_function("kalshi-rsa-pss", |b| {
        b.iter(|| {
            signer
                .sign(
                    1_703_123_456_789,
                    "POST",
                    "/trade-api/v2/portfolio/events/orders",
                )
                .unwrap()
        })
    });
    let secret = Secret::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let body = r#"{"order":{"salt":479249096354},"owner":"x","orderType":"FOK"}"#;
    g.bench_function("polymarket-l2-hmac", |b| {
        b.iter(|| {
            polymarket::auth::l2_signature(&secret, "1710000000", "POST", "/order", black_box(body))
                .unwrap()
        })
    });
    let wallet = polymarket::PolySigner::from_private_key(&Secret::new(
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ))
    .unwrap();
    let domain =
        polymarket::ExchangeDomain::for_market(polymarket::ExchangeVersion::V2, 137, false)
            .unwrap();
    let mut builder = polymarket::OrderBuilder::eoa(wallet.address());
    let args = polymarket::OrderArgs {
        token_id: pair().polymarket_no_token,
        side: polymarket::OrderSide::Buy,
        price: cents(55),
        size: Size::whole(10),
        order_type: polymarket::OrderType::Fok,
        tick: polymarket::TickSize::parse("0.01").unwrap(),
        expiration: 0,
    };
    g.bench_function("polymarket-eip712-order", |b| {
        b.iter(|| {
            builder
                .build(black_box(&args), 1_710_000_000_000)
                .unwrap()
                .sign(&wallet, &domain)
                .unwrap()
        })
    });
    // The order path's form: the nonce, R and k⁻¹ made ahead of time (each
    // batch's setup, not timed), only s = k⁻¹(z + r·d) on the path.
    let pool = polymarket::presign::Presignatures::unstarted(1);
    let presigned = wallet.clone().with_presignature_pool(pool.clone());
    g.bench_function("polymarket-eip712-order-presigned", |b| {
        b.iter_batched(
            || pool.fill_now(),
            |()| {
                builder
                    .build(black_box(&args), 1_710_000_000_000)
                    .unwrap()
                    .sign(&presigned, &domain)
                    .unwrap()
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function("polymarket-nonce-ahead", |b| {
        b.iter_batched(
            || {
                let _ = builder
                    .build(&args, 1_710_000_000_000)
                    .unwrap()
                    .sign(&presigned, &domain);
            },
            |()| pool.fill_now(),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// An order request to a loopback server through reqwest's pool and through
/// the order line: the first poll of its send (what the order's task spends
/// before it moves on: reqwest hands the request to a connection task that
/// writes it later, the order line writes it), and the whole exchange.
fn send(c: &mut Criterion) {
    use doubletime::venues::http::{self, Call, Headers, Retry, RetryPolicy, Via};
    use doubletime::venues::order_line::OrderLine;
    use std::time::{Duration, Instant};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base, client, line) = rt.block_on(async {
        let app = axum::Router::new().route(
            "/order",
            axum::routing::post(|| async { r#"{"orderID":"1"}"# }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let line = OrderLine::new(&base).unwrap();
        (base, http::client().unwrap(), line)
    });
    let url = format!("{base}/order");
    let headers = || {
        Ok::<Headers, ()>(vec![
            (
                "poly_address",
                "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".into(),
            ),
            ("poly_signature", "x".repeat(44)),
            ("poly_timestamp", "1757908892".into()),
        ])
    };
    let body = r#"{"order":{"salt":1,"maker":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","tokenId":"1","makerAmount":"5500000","takerAmount":"10000000","side":"BUY","signature":"0x00"},"owner":"k","orderType":"FOK"}"#;
    let policy = RetryPolicy {
        max_retries: 0,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    let mut g = c.benchmark_group("send");
    for (name, via) in [
        ("reqwest", Via::Pool(&client)),
        ("order-line", Via::Line(&line)),
    ] {
        let call = Call {
            via,
            method: &reqwest::Method::POST,
            url: &url,
            target: "/order",
            body: Some(body),
        };
        let send = || {
            http::send_with_retries(
                "bench",
                &policy,
                Retry::NotAccepted,
                call,
                |_, _| None,
                headers,
            )
        };
        g.bench_function(format!("{name}-first-poll"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut first_polls = Duration::ZERO;
                    for _ in 0..iters {
                        let mut sending = std::pin::pin!(send());
                        let started = Instant::now();
                        let early = futures_util::poll!(sending.as_mut());
                        first_polls += started.elapsed();
                        if early.is_pending() {
                            black_box(sending.await.unwrap());
                        }
                    }
                    first_polls
                })
            })
        });
        g.bench_function(format!("{name}-round-trip"), |b| {
            b.iter(|| rt.block_on(async { black_box(send().await.unwrap()) }))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, send);
criterion_main!(benches);

//! Shared helpers for the host's integration tests: where the built plugins are,
//! a plugin host with the shared compile cache, a pair with books.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use doubletime::books::{BookStore, PairEntry};
use doubletime::domain::{
    MarketPair, PairFees, PairId, PolymarketFees, Price, Side, Size, TokenId,
};
use doubletime::strategy::{PluginHost, RuntimeLimits};

/// The folder `scripts/build-plugins` writes (the test command builds it first).
pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("DOUBLETIME_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"));
    assert!(
        dir.join("buy-both.wasm").is_file(),
        "no plugins in {}: run scripts/build-plugins first",
        dir.display()
    );
    dir
}

pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let dir = plugins_dir();
    let path = if name.starts_with("test-") {
        dir.join("testing").join(format!("{name}.wasm"))
    } else {
        dir.join(format!("{name}.wasm"))
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compiled components are cached here across tests and runs: the Python and
/// JavaScript plugins take seconds to compile.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugin-cache")
}

pub fn limits() -> RuntimeLimits {
    RuntimeLimits {
        cache_dir: Some(cache_dir()),
        ..RuntimeLimits::default()
    }
}

pub fn host() -> PluginHost {
    PluginHost::new(limits()).expect("plugin host")
}

pub fn pair(id: &str) -> MarketPair {
    MarketPair {
        id: PairId(id.into()),
        kalshi_ticker: format!("KX-{id}"),
        polymarket_condition_id: format!("0x{id}"),
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

pub fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

/// Adds a pair whose books hold the worked example: Kalshi YES ask 0.40 (a NO bid
/// at 0.60), Polymarket NO ask 0.55, 100 contracts each; Polymarket fee 0.04.
pub fn arb_pair(books: &BookStore, id: &str) -> Arc<PairEntry> {
    let fees = PairFees {
        polymarket: PolymarketFees {
            rate: rust_decimal::Decimal::new(4, 2),
            exponent: 1,
        },
        ..PairFees::default()
    };
    let e = books.add(pair(id), fees, Size::whole(5));
    {
        let mut st = e.state();
        st.kalshi
            .no
            .set_level(Side::Bid, p("0.60"), Size::whole(100));
        st.kalshi
            .yes
            .set_level(Side::Bid, p("0.30"), Size::whole(100));
        st.polymarket
            .no
            .set_level(Side::Ask, p("0.55"), Size::whole(100));
        st.polymarket
            .yes
            .set_level(Side::Ask, p("0.70"), Size::whole(100));
        st.kalshi.touch(doubletime::strategy::now_micros());
        st.polymarket.touch(doubletime::strategy::now_micros());
    }
    e
}

pub const WAIT: Duration = Duration::from_secs(60);

/// Puts [`arb_pair`]'s books (Kalshi YES ask 0.40, Polymarket NO ask 0.55, 100
/// contracts each) on a pair that already exists, keeping its rules and fees.
pub fn arb_books(entry: &PairEntry) {
    let mut st = entry.state();
    st.kalshi
        .no
        .set_level(Side::Bid, p("0.60"), Size::whole(100));
    st.kalshi
        .yes
        .set_level(Side::Bid, p("0.30"), Size::whole(100));
    st.polymarket
        .no
        .set_level(Side::Ask, p("0.55"), Size::whole(100));
    st.polymarket
        .yes
        .set_level(Side::Ask, p("0.70"), Size::whole(100));
    st.kalshi.touch(doubletime::strategy::now_micros());
    st.polymarket.touch(doubletime::strategy::now_micros());
}

/// A simulator serving `pairs` whose books move only when a test injects an event.
pub async fn quiet_sim(pairs: &[MarketPair]) -> doubletime::sim::SimHandle {
    use doubletime::sim::{Scenario, SimConfig, SimPair};
    doubletime::sim::start(SimConfig {
        pairs: pairs.iter().map(SimPair::from).collect(),
        scenario: Scenario {
            seed: 11,
            tick_ms: 3_600_000,
            events: Vec::new(),
        },
        kalshi_auth: None,
    })
    .await
    .expect("simulator")
}

/// A simulator like [`quiet_sim`] (with its scenario's `seed`) that checks
/// every Kalshi request's RSA-PSS signature against `public_pem`.
pub async fn signed_sim(
    pairs: &[MarketPair],
    seed: u64,
    public_pem: &str,
) -> doubletime::sim::SimHandle {
    use doubletime::sim::{Scenario, SimConfig, SimPair};
    use doubletime::venues::kalshi::KalshiVerifier;
    doubletime::sim::start(SimConfig {
        pairs: pairs.iter().map(SimPair::from).collect(),
        scenario: Scenario {
            seed,
            tick_ms: 3_600_000,
            events: Vec::new(),
        },
        kalshi_auth: Some(doubletime::sim::kalshi_signature_check(
            KalshiVerifier::from_public_pem(public_pem).expect("public key"),
        )),
    })
    .await
    .expect("simulator")
}

/// An arbitrage window event for `pair`.
pub fn window(
    pair: &str,
    direction: doubletime::sim::ArbDirection,
    edge: &str,
) -> doubletime::sim::ScenarioEvent {
    doubletime::sim::ScenarioEvent {
        at_ms: 0,
        pair: Some(pair.into()),
        kind: doubletime::sim::EventKind::ArbWindow,
        direction: Some(direction),
        edge: Some(edge.parse().unwrap()),
        size: Some(rust_decimal::Decimal::from(50)),
        duration_ms: Some(3_600_000),
        venue: None,
    }
}

/// A venue event (gap, disconnect, malformed) with no pair.
pub fn venue_event(
    kind: doubletime::sim::EventKind,
    venue: doubletime::domain::Venue,
) -> doubletime::sim::ScenarioEvent {
    doubletime::sim::ScenarioEvent {
        at_ms: 0,
        pair: None,
        kind,
        direction: None,
        edge: None,
        size: None,
        duration_ms: None,
        venue: Some(venue),
    }
}

/// A fresh RSA key pair as PEM (private PKCS#8, public SPKI) for Kalshi signing tests.
pub fn rsa_pems() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (private, public)
}

/// A book from `(price, size)` levels.
pub fn levels(bids: &[(&str, u64)], asks: &[(&str, u64)]) -> doubletime::domain::OrderBook {
    let mut b = doubletime::domain::OrderBook::new();
    for (px, size) in bids {
        b.set_level(Side::Bid, p(px), Size::whole(*size));
    }
    for (px, size) in asks {
        b.set_level(Side::Ask, p(px), Size::whole(*size));
    }
    b
}

/// Exact books for the order tests. Kalshi: YES bids 0.40×10, 0.39×20; NO bids
/// 0.55×10, 0.54×20 (YES asks 0.45×10, 0.46×20). Polymarket YES: bids
/// 0.43×10, 0.42×20, asks 0.45×10, 0.46×20; NO is its mirror.
pub fn order_books() -> doubletime::sim::VenueBooks {
    doubletime::sim::VenueBooks {
        kalshi_yes: levels(&[("0.40", 10), ("0.39", 20)], &[]),
        kalshi_no: levels(&[("0.55", 10), ("0.54", 20)], &[]),
        poly_yes: levels(&[("0.43", 10), ("0.42", 20)], &[("0.45", 10), ("0.46", 20)]),
        poly_no: levels(&[("0.55", 10), ("0.54", 20)], &[("0.57", 10), ("0.58", 20)]),
    }
}

/// A domain order for the order tests.
pub fn order(
    venue: doubletime::domain::Venue,
    id: &str,
    outcome: doubletime::domain::Outcome,
    limit: &str,
    size: u64,
    time_in_force: doubletime::domain::TimeInForce,
) -> doubletime::domain::Order {
    doubletime::domain::Order {
        client_order_id: id.into(),
        venue,
        pair: PairId("fed".into()),
        outcome,
        action: doubletime::domain::Action::Buy,
        limit: p(limit),
        size: Size::whole(size),
        time_in_force,
    }
}

/// A configured market pair like [`pair`], with the fees of [`arb_pair`] and
/// the given `rules_match`.
pub fn market_config(id: &str, rules_match: bool) -> doubletime::config::MarketConfig {
    let p = pair(id);
    serde_json::from_value(serde_json::json!({
        "id": id,
        "kalshi_ticker": p.kalshi_ticker,
        "polymarket_condition_id": p.polymarket_condition_id,
        "polymarket_yes_token": p.polymarket_yes_token.as_str(),
        "polymarket_no_token": p.polymarket_no_token.as_str(),
        "rules_match": rules_match,
        "polymarket_fee_rate": "0.04",
    }))
    .expect("market config")
}

/// The opportunity a plugin finds on [`arb_books`]: YES on Kalshi at 0.40, NO on
/// Polymarket at 0.55, 100 contracts, priced with the pair's fees now.
pub fn arb_opportunity(entry: &PairEntry) -> doubletime::domain::events::ArbitrageOpportunityFound {
    doubletime::domain::events::ArbitrageOpportunityFound {
        opportunity: doubletime::domain::Opportunity::price(
            entry.pair.id.clone(),
            "test",
            doubletime::domain::Venue::Kalshi,
            p("0.40"),
            p("0.55"),
            Size::whole(100),
            &entry.fees,
            doubletime::strategy::now_micros(),
        ),
    }
}

/// The simulated Polymarket account's wallet key (a well-known test key).
pub const WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// L2 credentials the simulated CLOB is told to accept.
pub fn creds() -> doubletime::venues::polymarket::ApiCreds {
    doubletime::venues::polymarket::ApiCreds::new(
        "0f3b5f2c-7d0e-4a55-9a3e-3c0a4b1d2e6f",
        doubletime::config::Secret::new("c2ltdWxhdGVkLWNsb2ItYXBpLXNlY3JldC0wMTIzNDU2Nzg="),
        doubletime::config::Secret::new("pp"),
    )
}

/// A host started from `config` with its REST API served on a free loopback
/// port, as the API, risk and kill-switch tests use it.
pub struct ServedHost {
    pub host: Arc<doubletime::app::Host>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub http: reqwest::Client,
    /// Sending (or dropping) it stops the server.
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn serve_host(config: doubletime::config::Config) -> ServedHost {
    let host = tokio::task::spawn_blocking(move || doubletime::app::Host::start(config))
        .await
        .unwrap()
        .unwrap();
    let host = Arc::new(host);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(doubletime::api::serve(host.clone(), listener, async {
        let _ = stopped.await;
    }));
    ServedHost {
        host,
        base,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        stop,
        server,
    }
}

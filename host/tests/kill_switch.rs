//! The kill switch end to end: a host trading against the simulated venues,
//! orders resting on both venues' books (placed by hand, as GTC and GTD), and
//! `POST /kill` on the operator's API. Every resting order is cancelled at the
//! venues — checked in the simulator's own state and books — trading halts,
//! and a second kill finds nothing left and does no harm. The executor's kill
//! report is awaited, never slept for.

mod support;

use std::sync::Arc;

use doubletime::app::{Host, Trading, start_trading};
use doubletime::config::{ApiConfig, Config, Secret};
use doubletime::domain::{Outcome, PairId, TimeInForce, Venue};
use doubletime::execution::{KillReport, VenueClients};
use doubletime::risk::{Refusal, RiskDecision};
use doubletime::sim::SimHandle;
use doubletime::sim::accounts::SimOrderStatus;
use doubletime::venues::kalshi::rest::KalshiRest;
use doubletime::venues::polymarket::rest::PolymarketRest;
use doubletime::venues::polymarket::{PolySigner, TickSize};
use serde_json::Value;
use support::{WAIT, WALLET_KEY, creds};

const TOKEN: &str = "kill-test-token-5d1e09b7";

fn kalshi(sim: &SimHandle) -> KalshiRest {
    KalshiRest::new(&sim.kalshi_rest_url, None).unwrap()
}

fn polymarket(sim: &SimHandle) -> PolymarketRest {
    PolymarketRest::new(
        &sim.polymarket_rest_url,
        Some(creds()),
        Some(PolySigner::from_private_key(&Secret::new(WALLET_KEY)).unwrap()),
    )
    .unwrap()
}

struct Rig {
    sim: SimHandle,
    host: Arc<Host>,
    trading: Trading,
    api: String,
    http: reqwest::Client,
    _root: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A live (not dry-run) host on one market of the simulator, its API served.
async fn rig() -> Rig {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    sim.set_polymarket_creds(creds());
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = Config {
        dry_run: false,
        plugins_dir: plugins,
        plugin_cache_dir: root.path().join("cache"),
        api: ApiConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            token: Secret::new(TOKEN),
        },
        markets: vec![support::market_config("fed", true)],
        database_url: Secret::new(format!(
            "sqlite://{}",
            root.path().join("trades.db").display()
        )),
        ..Config::default()
    };
    let served = support::serve_host(config).await;
    let clients = VenueClients {
        kalshi: kalshi(&sim),
        polymarket: polymarket(&sim),
    };
    let trading = start_trading(&served.host, clients).await.unwrap();
    Rig {
        sim,
        host: served.host,
        trading,
        api: served.base,
        http: served.http,
        _root: root,
        _stop: served.stop,
    }
}

impl Rig {
    /// `POST /kill` as the operator sends it.
    async fn kill(&self) -> Value {
        let resp = tokio::time::timeout(
            WAIT,
            self.http
                .post(format!("{}/kill", self.api))
                .bearer_auth(TOKEN)
                .send(),
        )
        .await
        .expect("the API answers in time")
        .expect("the API is up");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// A public GET on a simulated venue, as JSON.
    async fn venue_json(&self, url: String) -> Value {
        let resp = tokio::time::timeout(WAIT, self.http.get(url).send())
            .await
            .expect("the venue answers in time")
            .expect("the venue is up");
        resp.json().await.unwrap()
    }

    /// Kalshi's REST book: the YES bids as `[price, size]` strings.
    async fn kalshi_yes_bids(&self) -> Vec<Value> {
        let b = self
            .venue_json(format!(
                "{}/markets/KX-fed/orderbook",
                self.sim.kalshi_rest_url
            ))
            .await;
        b["orderbook_fp"]["yes_dollars"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polymarket's REST book of a token: its bids.
    async fn polymarket_bids(&self, outcome: Outcome) -> Vec<Value> {
        let pair = support::pair("fed");
        let token = match outcome {
            Outcome::Yes => pair.polymarket_yes_token,
            Outcome::No => pair.polymarket_no_token,
        };
        let b = self
            .venue_json(format!(
                "{}/book?token_id={}",
                self.sim.polymarket_rest_url,
                token.as_str()
            ))
            .await;
        b["bids"].as_array().cloned().unwrap_or_default()
    }

    fn resting(&self, venue: Venue) -> usize {
        self.sim
            .orders(venue)
            .iter()
            .filter(|o| o.status == SimOrderStatus::Resting)
            .count()
    }
}

/// Far below the market, so they rest: Kalshi buy YES 3 at 0.02 (GTC) and buy
/// NO 2 at 0.03 (GTD); Polymarket buy YES 10 at 0.02 (GTC) and NO 5 at 0.03 (GTD).
async fn rest_orders_by_hand(rig: &Rig) {
    let in_an_hour = TimeInForce::GoodTillDate {
        until: (doubletime::strategy::now_micros() / 1_000_000) as u64 + 3_600,
    };
    let orders = [
        (
            Venue::Kalshi,
            "hand-1",
            Outcome::Yes,
            "0.02",
            3,
            TimeInForce::GoodTillCancelled,
        ),
        (Venue::Kalshi, "hand-2", Outcome::No, "0.03", 2, in_an_hour),
        (
            Venue::Polymarket,
            "hand-3",
            Outcome::Yes,
            "0.02",
            10,
            TimeInForce::GoodTillCancelled,
        ),
        (
            Venue::Polymarket,
            "hand-4",
            Outcome::No,
            "0.03",
            5,
            in_an_hour,
        ),
    ];
    let pair = support::pair("fed");
    for (venue, id, outcome, price, size, tif) in orders {
        let order = support::order(venue, id, outcome, price, size, tif);
        match venue {
            Venue::Kalshi => {
                let r = kalshi(&rig.sim)
                    .create_order(&order, "KX-fed")
                    .await
                    .unwrap();
                assert!(r.filled.is_zero(), "{id} rests, it does not fill");
            }
            Venue::Polymarket => {
                let token = match outcome {
                    Outcome::Yes => &pair.polymarket_yes_token,
                    Outcome::No => &pair.polymarket_no_token,
                };
                let r = polymarket(&rig.sim)
                    .post_order(&order, token, TickSize::parse("0.01").unwrap(), false)
                    .await
                    .unwrap();
                assert!(r.filled.is_zero(), "{id} rests, it does not fill");
            }
        }
    }
}

async fn next_report(reports: &mut tokio::sync::watch::Receiver<Option<KillReport>>) -> KillReport {
    tokio::time::timeout(WAIT, reports.changed())
        .await
        .expect("the kill's cancels end in time")
        .expect("the executor is alive");
    reports.borrow_and_update().clone().expect("a report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_cancels_every_resting_order_on_both_venues_and_halts_trading() {
    let rig = rig().await;
    rest_orders_by_hand(&rig).await;
    // They rest: on the venues' order lists and in their books.
    assert_eq!(rig.resting(Venue::Kalshi), 2);
    assert_eq!(rig.resting(Venue::Polymarket), 2);
    assert_eq!(kalshi(&rig.sim).resting_orders().await.unwrap().len(), 2);
    assert_eq!(polymarket(&rig.sim).open_orders().await.unwrap().len(), 2);
    let ours =
        |levels: &[Value], price: &str| levels.iter().any(|l| l[0] == price || l["price"] == price);
    assert!(ours(&rig.kalshi_yes_bids().await, "0.0200"));
    assert!(ours(&rig.polymarket_bids(Outcome::Yes).await, "0.02"));
    assert!(ours(&rig.polymarket_bids(Outcome::No).await, "0.03"));

    let mut reports = rig.trading.executor.kill_reports();
    let state = rig.kill().await;
    assert_eq!(state["kill_switch"], true);
    let report = next_report(&mut reports).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        (report.kalshi.cancelled, report.polymarket.cancelled),
        (2, 2)
    );
    // The operator's answer waited for the venues and says the same.
    let cancels = &state["cancels"];
    assert_eq!(cancels["kalshi"]["cancelled"], 2, "{state}");
    assert_eq!(cancels["polymarket"]["cancelled"], 2, "{state}");
    for venue in ["kalshi", "polymarket"] {
        assert_eq!(cancels[venue]["still_resting"], serde_json::json!([]));
        assert!(cancels[venue]["error"].is_null());
    }
    // The venues' own word: nothing rests, nothing shows in the books.
    assert_eq!(rig.resting(Venue::Kalshi), 0);
    assert_eq!(rig.resting(Venue::Polymarket), 0);
    assert!(
        rig.sim
            .orders(Venue::Kalshi)
            .iter()
            .chain(&rig.sim.orders(Venue::Polymarket))
            .all(|o| o.status == SimOrderStatus::Canceled),
        "every order cancelled"
    );
    assert!(!ours(&rig.kalshi_yes_bids().await, "0.0200"));
    assert!(!ours(&rig.polymarket_bids(Outcome::Yes).await, "0.02"));
    assert!(!ours(&rig.polymarket_bids(Outcome::No).await, "0.03"));

    // Trading is halted: the next opportunity is refused for the kill switch.
    let mut decisions = rig.host.risk.decisions();
    let entry = rig.host.books.get(&PairId("fed".into())).unwrap();
    support::arb_books(&entry);
    rig.host
        .bus
        .opportunities
        .publish(PairId("fed".into()), support::arb_opportunity(&entry));
    let decided = tokio::time::timeout(WAIT, decisions.recv())
        .await
        .expect("the gate decides in time")
        .expect("the gate is running");
    let RiskDecision::Refused(r) = decided else {
        panic!("expected a refusal, got {decided:?}")
    };
    assert_eq!(r.refusal, Refusal::KillSwitch);

    // A second kill finds nothing left and harms nothing.
    let state = rig.kill().await;
    assert_eq!(state["kill_switch"], true);
    let again = next_report(&mut reports).await;
    assert!(again.is_clean(), "{again:?}");
    assert_eq!(again.cancelled(), 0);
    assert_eq!(state["cancels"]["kalshi"]["cancelled"], 0, "{state}");
    assert_eq!(state["cancels"]["polymarket"]["cancelled"], 0, "{state}");
    assert_eq!(rig.sim.orders(Venue::Kalshi).len(), 2, "no order was sent");
    assert_eq!(rig.sim.orders(Venue::Polymarket).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_that_cannot_be_asked_is_reported_and_the_other_still_cancelled() {
    let rig = rig().await;
    rest_orders_by_hand(&rig).await;
    // An executor whose Kalshi client points at a closed port (nothing listens on port 1).
    let risk = rig.host.risk.clone();
    let executor = doubletime::execution::Executor::new(
        Arc::new(VenueClients {
            kalshi: KalshiRest::new("http://127.0.0.1:1/trade-api/v2", None).unwrap(),
            polymarket: polymarket(&rig.sim),
        }),
        rig.host.books.clone(),
        rig.host.bus.clone(),
        risk,
        doubletime::execution::ExecutionPolicy::default(),
        rig.host.trades.clone(),
    );
    let report = tokio::time::timeout(WAIT, executor.cancel_open_orders())
        .await
        .expect("a dead venue does not hang the kill");
    assert!(!report.is_clean());
    let err = report
        .kalshi
        .error
        .clone()
        .expect("Kalshi could not be asked");
    assert!(err.contains("listing resting orders"), "{err}");
    assert!(report.polymarket.is_clean(), "{report:?}");
    assert_eq!(report.polymarket.cancelled, 2);
    assert_eq!(rig.resting(Venue::Polymarket), 0);
    assert_eq!(rig.resting(Venue::Kalshi), 2, "left for a person to see to");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_till_date_order_rests_until_its_time_and_not_after() {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    sim.set_polymarket_creds(creds());
    let now_s = (doubletime::strategy::now_micros() / 1_000_000) as u64;
    let tick = TickSize::parse("0.01").unwrap();
    // A time already past is refused by both venues.
    let past = TimeInForce::GoodTillDate { until: now_s - 1 };
    let late = support::order(Venue::Kalshi, "late-1", Outcome::Yes, "0.02", 3, past);
    assert!(kalshi(&sim).create_order(&late, "KX-fed").await.is_err());
    let late = support::order(Venue::Polymarket, "late-2", Outcome::Yes, "0.02", 5, past);
    let refused = polymarket(&sim)
        .post_order(&late, &pair.polymarket_yes_token, tick, false)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("invalid expiration"),
        "{refused}"
    );
    // Good for a few seconds (a loaded machine is slow): resting, then gone.
    let until = (doubletime::strategy::now_micros() / 1_000_000) as u64 + 5;
    let gtd = TimeInForce::GoodTillDate { until };
    let k = support::order(Venue::Kalshi, "gtd-1", Outcome::Yes, "0.02", 3, gtd);
    kalshi(&sim).create_order(&k, "KX-fed").await.unwrap();
    let p = support::order(Venue::Polymarket, "gtd-2", Outcome::Yes, "0.02", 5, gtd);
    polymarket(&sim)
        .post_order(&p, &pair.polymarket_yes_token, tick, false)
        .await
        .unwrap();
    assert_eq!(kalshi(&sim).resting_orders().await.unwrap().len(), 1);
    assert_eq!(polymarket(&sim).open_orders().await.unwrap().len(), 1);
    // Waiting for the clock itself: the venues drop the orders at `until`.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(until + 1);
    let wait = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(wait < WAIT);
    tokio::time::sleep(wait).await;
    assert!(kalshi(&sim).resting_orders().await.unwrap().is_empty());
    assert!(polymarket(&sim).open_orders().await.unwrap().is_empty());
    assert!(
        sim.orders(Venue::Kalshi)
            .iter()
            .chain(&sim.orders(Venue::Polymarket))
            .all(|o| o.status == SimOrderStatus::Canceled)
    );
}

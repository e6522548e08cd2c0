//! The Polymarket user channel against the simulator on 127.0.0.1: our order
//! and its trades arrive typed, each trade followed MATCHED → MINED →
//! CONFIRMED (or → RETRYING → FAILED, the fill then taken back); bad
//! credentials are dropped by the venue and retried; `GET /data/trades` and
//! `GET /data/order/{id}` tell the same story for crash reconciliation.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use doubletime::config::Secret;
use doubletime::domain::{Action, Outcome, PolymarketFees, Size, TimeInForce, TokenId, Usd, Venue};
use doubletime::sim::SimHandle;
use doubletime::sim::accounts::{Settlement, TradeOutcome};
use doubletime::venues::feed::FeedStats;
use doubletime::venues::polymarket::messages::OrderEventType;
use doubletime::venues::polymarket::rest::{PolymarketRest, TradeQuery};
use doubletime::venues::polymarket::{
    ApiCreds, PolySigner, PolyTrade, TickSize, TradeStatus, UserEvent, UserFeedConfig,
    run_user_feed,
};
use rust_decimal_macros::dec;
use support::{WAIT, p};
use tokio::sync::broadcast;

const WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const API_KEY: &str = "0f3b5f2c-7d0e-4a55-9a3e-3c0a4b1d2e6f";

fn creds(secret: &str) -> ApiCreds {
    ApiCreds::new(API_KEY, Secret::new(secret), Secret::new("passphrase-1"))
}

fn good_creds() -> ApiCreds {
    creds("c2ltdWxhdGVkLWNsb2ItYXBpLXNlY3JldC0wMTIzNDU2Nzg=")
}

fn fees() -> PolymarketFees {
    PolymarketFees {
        rate: dec!(0.04),
        exponent: 1,
    }
}

struct Clob {
    sim: SimHandle,
    rest: PolymarketRest,
    yes: TokenId,
    condition_id: String,
}

async fn clob() -> Clob {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    sim.set_polymarket_creds(good_creds());
    sim.set_polymarket_fees(fees());
    sim.replace_books(0, support::order_books()).await;
    let wallet = PolySigner::from_private_key(&Secret::new(WALLET_KEY)).unwrap();
    let rest =
        PolymarketRest::new(&sim.polymarket_rest_url, Some(good_creds()), Some(wallet)).unwrap();
    Clob {
        sim,
        rest,
        yes: pair.polymarket_yes_token,
        condition_id: pair.polymarket_condition_id,
    }
}

/// Starts the user feed with `creds`; returns its events and the stop switch.
fn user_feed(
    c: &Clob,
    creds: ApiCreds,
) -> (
    broadcast::Receiver<UserEvent>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = broadcast::channel(256);
    let mut cfg = UserFeedConfig::new(
        c.sim.polymarket_user_ws_url.clone(),
        creds,
        vec![c.condition_id.clone()],
    );
    cfg.backoff_base = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(200);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_user_feed(
        cfg,
        tx,
        Arc::new(FeedStats::default()),
        None,
        shutdown,
    ));
    (rx, stop, task)
}

async fn subscribed(sim: &SimHandle) {
    let mut w = sim.polymarket_user_channel();
    tokio::time::timeout(WAIT, w.wait_for(|s| s.live >= 1))
        .await
        .expect("user channel never subscribed")
        .unwrap();
}

/// Every trade event until each of `n` trades reached a final status.
async fn until_final(rx: &mut broadcast::Receiver<UserEvent>, n: usize) -> Vec<UserEvent> {
    tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        let mut done: HashMap<String, bool> = HashMap::new();
        loop {
            let ev = rx.recv().await.expect("user events closed");
            if let UserEvent::Trade(t) = &ev {
                done.insert(t.trade_id.clone(), t.is_final());
            }
            seen.push(ev);
            if done.len() == n && done.values().all(|f| *f) {
                return seen;
            }
        }
    })
    .await
    .expect("trades never settled")
}

fn statuses(events: &[UserEvent], trade_id: &str) -> Vec<TradeStatus> {
    events
        .iter()
        .filter_map(|e| match e {
            UserEvent::Trade(t) if t.trade_id == trade_id => Some(t.status),
            _ => None,
        })
        .collect()
}

fn trades(events: &[UserEvent]) -> Vec<PolyTrade> {
    events
        .iter()
        .filter_map(|e| match e {
            UserEvent::Trade(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matched_order_is_followed_to_confirmed_on_the_user_channel_and_by_rest() {
    let c = clob().await;
    let (mut events, stop, task) = user_feed(&c, good_creds());
    subscribed(&c.sim).await;

    // Buy 15 YES at ≤ 0.46: asks 0.45×10 and 0.46×5 → two trades.
    let o = support::order(
        Venue::Polymarket,
        "leg",
        Outcome::Yes,
        "0.46",
        15,
        TimeInForce::FillOrKill,
    );
    let r = c
        .rest
        .post_order(&o, &c.yes, TickSize::Hundredth, false)
        .await
        .unwrap();
    assert_eq!(r.trade_ids.len(), 2);
    let seen = until_final(&mut events, 2).await;

    let placed = seen
        .iter()
        .find_map(|e| match e {
            UserEvent::Order(o) => Some(o.clone()),
            _ => None,
        })
        .expect("no order event");
    assert_eq!(placed.order_id, r.order_id);
    assert_eq!(placed.kind, OrderEventType::Placement);
    assert_eq!(
        (placed.side, placed.size_matched, placed.outcome),
        (Action::Buy, Size::whole(15), Some(Outcome::Yes))
    );
    assert_eq!(placed.market, c.condition_id);

    for id in &r.trade_ids {
        assert_eq!(
            statuses(&seen, id),
            vec![
                TradeStatus::Matched,
                TradeStatus::Mined,
                TradeStatus::Confirmed
            ],
            "{id}"
        );
    }
    let first = trades(&seen)
        .into_iter()
        .find(|t| t.trade_id == r.trade_ids[0])
        .unwrap();
    assert!(first.involves(&r.order_id));
    assert_eq!((first.price, first.size), (p("0.45"), Size::whole(10)));
    assert_eq!(
        (first.side, first.token.clone()),
        (Action::Buy, c.yes.clone())
    );
    let confirmed = trades(&seen)
        .into_iter()
        .find(|t| t.trade_id == r.trade_ids[1] && t.status == TradeStatus::Confirmed)
        .unwrap();
    assert_eq!(
        (confirmed.price, confirmed.size),
        (p("0.46"), Size::whole(5))
    );
    assert!(confirmed.transaction_hash.is_some());
    // Confirmed: the money stays spent (4.5 + 2.3, fees 0.099 + 0.04968 → 0.0497).
    assert_eq!(
        c.rest.balance().await.unwrap(),
        Usd::new(dec!(1000) - dec!(6.8) - dec!(0.099) - dec!(0.0497))
    );

    // The same story by REST, for reconciliation after a crash.
    let rest_trades = c
        .rest
        .trades(&TradeQuery {
            market: Some(c.condition_id.clone()),
            ..TradeQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rest_trades.len(), 2);
    assert!(
        rest_trades
            .iter()
            .all(|t| t.status == TradeStatus::Confirmed && t.involves(&r.order_id))
    );
    let one = c
        .rest
        .trades(&TradeQuery {
            id: Some(r.trade_ids[1].clone()),
            ..TradeQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].size, Size::whole(5));
    let order = c.rest.order(&r.order_id).await.unwrap().expect("order");
    assert_eq!(order.status, "MATCHED");
    assert_eq!(order.size_matched, "15");
    assert_eq!(order.associate_trades, r.trade_ids);
    assert_eq!(
        c.rest
            .order(&format!("0x{}", "ab".repeat(32)))
            .await
            .unwrap(),
        None
    );

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_trade_is_reported_and_the_fill_is_taken_back() {
    let c = clob().await;
    c.sim.set_polymarket_settlement(Settlement {
        outcome: TradeOutcome::Fail,
        step: Duration::from_millis(10),
    });
    let (mut events, stop, task) = user_feed(&c, good_creds());
    subscribed(&c.sim).await;

    let o = support::order(
        Venue::Polymarket,
        "leg",
        Outcome::Yes,
        "0.45",
        10,
        TimeInForce::FillOrKill,
    );
    let r = c
        .rest
        .post_order(&o, &c.yes, TickSize::Hundredth, false)
        .await
        .unwrap();
    // The order answer says matched: only the user channel tells the truth.
    assert_eq!(r.filled, Size::whole(10));
    let seen = until_final(&mut events, 1).await;
    assert_eq!(
        statuses(&seen, &r.trade_ids[0]),
        vec![
            TradeStatus::Matched,
            TradeStatus::Mined,
            TradeStatus::Retrying,
            TradeStatus::Failed
        ]
    );
    // The leg did not happen.
    assert_eq!(c.rest.balance().await.unwrap(), Usd::new(dec!(1000)));
    assert_eq!(c.sim.position(Venue::Polymarket, c.yes.as_str()), dec!(0));
    let t = c.rest.trades(&TradeQuery::default()).await.unwrap();
    assert_eq!(t[0].status, TradeStatus::Failed);

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_dropped_and_the_feed_keeps_retrying() {
    let c = clob().await;
    let (mut events, stop, task) = user_feed(&c, creds("d3Jvbmctc2VjcmV0"));
    let mut w = c.sim.polymarket_user_channel();
    // Refused twice: the feed reconnected after the venue dropped it.
    tokio::time::timeout(WAIT, w.wait_for(|s| s.refused >= 2))
        .await
        .expect("never refused twice")
        .unwrap();
    assert_eq!(w.borrow().live, 0);
    let first = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, UserEvent::Connected);
    let dropped = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(dropped, UserEvent::Disconnected { .. }),
        "{dropped:?}"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_trades_scenario_event_makes_matched_trades_fail() {
    use doubletime::sim::{EventKind, Scenario, ScenarioEvent, SimConfig, SimPair};
    let pair = support::pair("fed");
    // Applied on the driver's first pass, before it draws the first books,
    // which `replace_books` waits for.
    let sim = doubletime::sim::start(SimConfig {
        pairs: vec![SimPair::from(&pair)],
        scenario: Scenario {
            seed: 11,
            tick_ms: 3_600_000,
            events: vec![ScenarioEvent {
                at_ms: 0,
                pair: None,
                kind: EventKind::FailTrades,
                direction: None,
                edge: None,
                size: None,
                duration_ms: Some(3_600_000),
                venue: Some(Venue::Polymarket),
            }],
        },
        kalshi_auth: None,
    })
    .await
    .unwrap();
    sim.set_polymarket_creds(good_creds());
    // Returns once the driver drew the first books, i.e. after its first pass
    // applied the event. A scripted event wakes the driver once more, which
    // may draw new books: the order below takes whatever is there.
    sim.replace_books(0, support::order_books()).await;
    let wallet = PolySigner::from_private_key(&Secret::new(WALLET_KEY)).unwrap();
    let c = Clob {
        rest: PolymarketRest::new(&sim.polymarket_rest_url, Some(good_creds()), Some(wallet))
            .unwrap(),
        sim,
        yes: pair.polymarket_yes_token,
        condition_id: pair.polymarket_condition_id,
    };
    let (mut events, stop, task) = user_feed(&c, good_creds());
    subscribed(&c.sim).await;
    let o = support::order(
        Venue::Polymarket,
        "leg",
        Outcome::Yes,
        "0.99",
        5,
        TimeInForce::FillOrKill,
    );
    let r = c
        .rest
        .post_order(&o, &c.yes, TickSize::Hundredth, false)
        .await
        .unwrap();
    let seen = until_final(&mut events, r.trade_ids.len()).await;
    assert_eq!(
        statuses(&seen, &r.trade_ids[0]).last(),
        Some(&TradeStatus::Failed)
    );
    assert_eq!(c.sim.position(Venue::Polymarket, c.yes.as_str()), dec!(0));

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

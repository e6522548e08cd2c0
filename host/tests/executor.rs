//! The executor against the simulated venues over real HTTP: both legs fill;
//! a leg that will not fill is retried, then the other leg is unwound with its
//! loss recorded; a dry run sends nothing; a balance short on one venue refuses
//! the trade before any order.

mod stores;
mod support;

use std::sync::Arc;

use doubletime::books::BookStore;
use doubletime::bus::{Bus, TradeEvent};
use doubletime::config::{Config, Secret};
use doubletime::domain::events::ExecuteTrade;
use doubletime::domain::{Opportunity, PairFees, PairId, PolymarketFees, Size, TimeInForce, Venue};
use doubletime::execution::{
    ExecutionPolicy, Executor, LegMode, Position, TradeOutcome, TradeRecord, VenueClients,
};
use doubletime::risk::{RiskGate, RiskHandle, RiskLimits};
use doubletime::sim::SimHandle;
use doubletime::store::journal::IntentJournal;
use doubletime::venues::kalshi::rest::KalshiRest;
use doubletime::venues::polymarket::PolySigner;
use doubletime::venues::polymarket::rest::PolymarketRest;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use support::{WAIT, WALLET_KEY, creds, p};

struct Rig {
    sim: SimHandle,
    bus: Arc<Bus>,
    executor: Arc<Executor>,
    fees: PairFees,
    /// The intent journal's file, in the store's folder.
    journal: Option<std::path::PathBuf>,
    _store: stores::TestStore,
}

impl Rig {
    /// Finished trades from the store, newest first.
    async fn trades(&self) -> Vec<TradeRecord> {
        self.executor.store.repo.trades(100).await.unwrap()
    }

    async fn positions(&self) -> Vec<Position> {
        let s = &self.executor.store;
        s.repo.positions(&s.host).await.unwrap()
    }
}

/// One pair on exact books ([`support::order_books`]): Kalshi YES ask 0.45×10
/// (YES bids 0.40×10), Polymarket NO asks 0.57×10 then 0.58×20.
async fn rig(dry_run: bool, retry_tolerance: Decimal) -> Rig {
    rig_with(dry_run, retry_tolerance, LegMode::Concurrent).await
}

async fn rig_with(dry_run: bool, retry_tolerance: Decimal, leg_mode: LegMode) -> Rig {
    rig_full(Setup {
        dry_run,
        retry_tolerance,
        leg_mode,
        ..Setup::default()
    })
    .await
}

/// How a rig's executor is set up; the default journals intents, as the host does.
struct Setup {
    dry_run: bool,
    retry_tolerance: Decimal,
    leg_mode: LegMode,
    /// The executor's Kalshi REST client points at a closed port.
    kalshi_down: bool,
    leg_order: TimeInForce,
    journal: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            dry_run: false,
            retry_tolerance: dec!(0.0),
            leg_mode: LegMode::Concurrent,
            kalshi_down: false,
            leg_order: TimeInForce::FillOrKill,
            journal: true,
        }
    }
}

async fn rig_full(
    Setup {
        dry_run,
        retry_tolerance,
        leg_mode,
        kalshi_down,
        leg_order,
        journal,
    }: Setup,
) -> Rig {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    let fees = PairFees {
        polymarket: PolymarketFees {
            rate: dec!(0.04),
            exponent: 1,
        },
        ..PairFees::default()
    };
    sim.set_polymarket_creds(creds());
    sim.set_polymarket_fees(fees.polymarket);
    sim.replace_books(0, support::order_books()).await;
    let books = Arc::new(BookStore::new());
    let entry = books.add(pair.clone(), fees, Size::whole(5));
    // Our copy of the books, as the feeds would have it (the unwind prices from it).
    *entry.state() = {
        let mut st = entry.state().clone();
        let b = support::order_books();
        st.kalshi.yes = b.kalshi_yes;
        st.kalshi.no = b.kalshi_no;
        st.polymarket.yes = b.poly_yes;
        st.polymarket.no = b.poly_no;
        st
    };
    let bus = Arc::new(Bus::default());
    let kalshi_url = if kalshi_down {
        // Port 1 on loopback: nothing listens, every request is refused.
        "http://127.0.0.1:1/trade-api/v2".to_string()
    } else {
        sim.kalshi_rest_url.clone()
    };
    let clients = Arc::new(VenueClients {
        kalshi: KalshiRest::new(&kalshi_url, None).unwrap(),
        polymarket: PolymarketRest::new(
            &sim.polymarket_rest_url,
            Some(creds()),
            Some(PolySigner::from_private_key(&Secret::new(WALLET_KEY)).unwrap()),
        )
        .unwrap(),
    });
    let risk = RiskHandle::new(RiskGate::new(
        RiskLimits::from_config(&Config::default()),
        dry_run,
    ));
    let policy = ExecutionPolicy {
        dry_run,
        retry_tolerance,
        leg_mode,
        leg_order,
        ..ExecutionPolicy::default()
    };
    let store = stores::sqlite();
    let executor = Executor::new(
        clients,
        books,
        bus.clone(),
        risk,
        policy,
        store.for_host("test-host").await,
    );
    let journal = journal.then(|| {
        let path = store.dir().join("trades.db.intents");
        executor.journal_intents(Arc::new(IntentJournal::open(&path).unwrap()));
        path
    });
    Rig {
        sim,
        bus,
        executor,
        fees,
        journal,
        _store: store,
    }
}

fn execute(rig: &Rig, id: &str, yes: &str, no: &str, size: u64) -> ExecuteTrade {
    ExecuteTrade {
        trade_id: id.into(),
        opportunity: Opportunity::price(
            PairId("fed".into()),
            "test",
            Venue::Kalshi,
            p(yes),
            p(no),
            Size::whole(size),
            &rig.fees,
            0,
        ),
    }
}

async fn next_trade(rx: &mut doubletime::bus::LosslessReceiver<TradeEvent>) -> TradeEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a trade event")
        .expect("bus open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_legs_fill_the_same_size_and_the_position_is_hedged() {
    let rig = rig(false, dec!(0.01)).await;
    let mut trades = rig.bus.trades.subscribe();
    rig.executor
        .execute(execute(&rig, "t1", "0.45", "0.57", 10))
        .await;
    let TradeEvent::Executed(done) = next_trade(&mut trades).await else {
        panic!("expected an executed trade")
    };
    assert_eq!(done.trade.hedged_size(), Size::whole(10));
    assert_eq!(
        rig.sim.position(Venue::Kalshi, "KX-fed"),
        dec!(10),
        "10 YES on Kalshi"
    );
    assert_eq!(
        rig.sim.position(
            Venue::Polymarket,
            &support::pair("fed").polymarket_no_token.to_string()
        ),
        dec!(10),
        "10 NO on Polymarket"
    );
    let record = &rig.trades().await[0];
    assert_eq!(record.outcome, TradeOutcome::Hedged);
    // $10 payout − 4.50 − 5.70 − fees: this test's books had no edge, and the P&L says so.
    assert!(record.pnl.value() < dec!(-0.2), "{}", record.pnl);
    // Our positions agree with the venues'.
    let held: Vec<_> = rig
        .positions()
        .await
        .into_iter()
        .map(|p| (p.venue, p.outcome, p.contracts))
        .collect();
    assert_eq!(
        held,
        vec![
            (Venue::Kalshi, doubletime::domain::Outcome::Yes, dec!(10)),
            (Venue::Polymarket, doubletime::domain::Outcome::No, dec!(10))
        ]
    );
    // Client order ids come from the trade id: a retry cannot double an order.
    assert_eq!(done.trade.yes_leg.order.client_order_id, "t1-yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_leg_is_retried_within_the_tolerance() {
    let rig = rig(false, dec!(0.01)).await;
    let mut trades = rig.bus.trades.subscribe();
    // NO at 0.56 cannot fill (ask 0.57); one cent of tolerance reaches it.
    rig.executor
        .execute(execute(&rig, "t2", "0.45", "0.56", 10))
        .await;
    let TradeEvent::Executed(done) = next_trade(&mut trades).await else {
        panic!("expected an executed trade")
    };
    assert_eq!(done.trade.hedged_size(), Size::whole(10));
    assert_eq!(rig.trades().await[0].outcome, TradeOutcome::Hedged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_that_will_not_fill_gets_the_other_unwound_with_its_loss() {
    let rig = rig(false, dec!(0.0)).await;
    let mut trades = rig.bus.trades.subscribe();
    rig.executor
        .execute(execute(&rig, "t3", "0.45", "0.50", 10))
        .await;
    let TradeEvent::LegFailed(failed) = next_trade(&mut trades).await else {
        panic!("expected a failed leg first")
    };
    assert_eq!(failed.order.venue, Venue::Polymarket);
    assert!(
        failed.reason.to_lowercase().contains("fill"),
        "{}",
        failed.reason
    );
    let TradeEvent::Executed(done) = next_trade(&mut trades).await else {
        panic!("then the trade")
    };
    assert_eq!(done.trade.hedged_size(), Size::ZERO);
    // Bought 10 YES at 0.45, sold them back at the 0.40 bid: flat, with the loss booked.
    assert_eq!(rig.sim.position(Venue::Kalshi, "KX-fed"), dec!(0));
    let record = &rig.trades().await[0];
    assert_eq!(record.outcome, TradeOutcome::Unwound);
    let held = rig.positions().await;
    assert!(held.is_empty(), "flat after the unwind: {held:?}");
    assert!(record.pnl.value() <= dec!(-0.50), "{}", record.pnl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_records_the_trade_and_sends_nothing() {
    let rig = rig(true, dec!(0.01)).await;
    rig.executor
        .execute(execute(&rig, "t4", "0.45", "0.57", 10))
        .await;
    assert_eq!(rig.trades().await[0].outcome, TradeOutcome::DryRun);
    assert!(rig.sim.fills(Venue::Kalshi).is_empty() && rig.sim.fills(Venue::Polymarket).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_short_on_one_venue_refuses_before_any_order() {
    let rig = rig(false, dec!(0.01)).await;
    rig.sim.set_balance(Venue::Polymarket, dec!(3));
    rig.executor
        .execute(execute(&rig, "t5", "0.45", "0.57", 10))
        .await;
    let record = &rig.trades().await[0];
    assert!(
        matches!(&record.outcome, TradeOutcome::Refused(why) if why.contains("polymarket")),
        "{:?}",
        record.outcome
    );
    assert!(
        rig.sim.fills(Venue::Kalshi).is_empty(),
        "the first leg was never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trade_id_sent_again_never_doubles_an_order() {
    // The journal refuses the second intent.
    sent_twice(rig(false, dec!(0.01)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_journal_a_trade_id_sent_again_never_doubles_an_order() {
    // The store refuses the second intent before any order.
    sent_twice(
        rig_full(Setup {
            retry_tolerance: dec!(0.01),
            journal: false,
            ..Setup::default()
        })
        .await,
    )
    .await;
}

async fn sent_twice(rig: Rig) {
    rig.executor
        .execute(execute(&rig, "t6", "0.45", "0.57", 5))
        .await;
    let kalshi = rig.sim.fills(Venue::Kalshi).len();
    let poly = rig.sim.fills(Venue::Polymarket).len();
    assert!(kalshi > 0 && poly > 0, "the first run traded");
    // The same approval delivered twice (a replayed message, a retry):
    // nothing is sent the second time.
    rig.executor
        .execute(execute(&rig, "t6", "0.45", "0.57", 5))
        .await;
    assert_eq!(rig.sim.fills(Venue::Kalshi).len(), kalshi);
    assert_eq!(rig.sim.fills(Venue::Polymarket).len(), poly);
    assert_eq!(rig.trades().await.len(), 1);
    assert_eq!(rig.executor.store_errors(), 1, "the refusal is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_and_fill_is_booked_and_nothing_is_left_open() {
    let rig = rig(false, dec!(0.0)).await;
    rig.executor
        .execute(execute(&rig, "t7", "0.45", "0.50", 10))
        .await;
    let store = &rig.executor.store;
    assert!(
        store
            .repo
            .open_trades(&store.host)
            .await
            .unwrap()
            .is_empty()
    );
    let t = store.repo.trade("t7").await.unwrap().expect("booked");
    assert_eq!(t.outcome, TradeOutcome::Unwound);
    assert!(t.unwind_fill.is_some(), "the unwind sale is on the record");
    let approvals = store.repo.opportunities(&store.host, 10).await.unwrap();
    assert_eq!(approvals[0].trade_id.as_deref(), Some("t7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_legs_send_the_thinner_leg_first_and_stop_when_it_fails() {
    let rig = rig_with(false, dec!(0.0), LegMode::Sequential).await;
    // NO at 0.50 has no depth on Polymarket (asks start at 0.57): it goes
    // first, fails, and the Kalshi leg is never sent — no leg risk at all.
    rig.executor
        .execute(execute(&rig, "t8", "0.45", "0.50", 10))
        .await;
    assert!(
        rig.sim.fills(Venue::Kalshi).is_empty(),
        "the second leg was not sent"
    );
    assert!(matches!(
        rig.trades().await[0].outcome,
        TradeOutcome::NotFilled(_)
    ));
    assert!(rig.positions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_legs_hedge_when_both_fill() {
    let rig = rig_with(false, dec!(0.0), LegMode::Sequential).await;
    rig.executor
        .execute(execute(&rig, "t9", "0.45", "0.57", 10))
        .await;
    assert_eq!(rig.trades().await[0].outcome, TradeOutcome::Hedged);
    assert_eq!(rig.positions().await.len(), 2);
}

/// A previous run wrote the intent, bought 10 YES on Kalshi and booked it,
/// had the Polymarket leg refused and booked that, then died before settling.
async fn crashed_between_the_legs(rig: &Rig, trade_id: &str) {
    use doubletime::store::{OrderStatus, TradeIntent};
    let cmd = execute(rig, trade_id, "0.45", "0.50", 10);
    let yes = support::order(
        Venue::Kalshi,
        &format!("{trade_id}-yes"),
        doubletime::domain::Outcome::Yes,
        "0.45",
        10,
        doubletime::domain::TimeInForce::FillOrKill,
    );
    let no = support::order(
        Venue::Polymarket,
        &format!("{trade_id}-no"),
        doubletime::domain::Outcome::No,
        "0.50",
        10,
        doubletime::domain::TimeInForce::FillOrKill,
    );
    let store = &rig.executor.store;
    store
        .repo
        .begin_trade(
            &store.host,
            &TradeIntent {
                trade_id: trade_id.into(),
                opportunity: cmd.opportunity.clone(),
                orders: vec![yes.clone(), no.clone()],
                created_at: 1,
            },
        )
        .await
        .unwrap();
    // The Kalshi leg really went to the venue.
    let kalshi = KalshiRest::new(&rig.sim.kalshi_rest_url, None).unwrap();
    let r = kalshi.create_order(&yes, "KX-fed").await.unwrap();
    let fill = r.to_fill(&yes, 2).expect("the YES leg filled");
    store
        .repo
        .update_order(
            &yes.client_order_id,
            OrderStatus::Filled,
            Some(&r.order_id),
            None,
            2,
        )
        .await
        .unwrap();
    store
        .repo
        .record_fill(&store.host, trade_id, &fill)
        .await
        .unwrap();
    store
        .repo
        .update_order(
            &no.client_order_id,
            OrderStatus::Rejected,
            None,
            Some("FOK not filled"),
            2,
        )
        .await
        .unwrap();
    assert_eq!(rig.sim.position(Venue::Kalshi, "KX-fed"), dec!(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trade_left_open_by_a_crash_is_settled_at_start_up() {
    let rig = rig(false, dec!(0.0)).await;
    crashed_between_the_legs(&rig, "t10").await;
    // The restarted host reconciles before trading.
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let store = &rig.executor.store;
    assert!(
        store
            .repo
            .open_trades(&store.host)
            .await
            .unwrap()
            .is_empty()
    );
    let t = store.repo.trade("t10").await.unwrap().expect("settled");
    assert_eq!(t.outcome, TradeOutcome::Unwound);
    assert!(
        t.pnl.value() < dec!(0),
        "the unwind's loss is booked: {}",
        t.pnl
    );
    assert_eq!(
        rig.sim.position(Venue::Kalshi, "KX-fed"),
        dec!(0),
        "the lone leg was sold back at the venue"
    );
    assert!(rig.positions().await.is_empty());
    // Nothing is left to reconcile on the next start.
    assert_eq!(rig.executor.reconcile().await, Default::default());
}

/// A previous run wrote the intent for both legs and died: `sent` says which
/// orders really went out before it did. Nothing of the answers was booked.
async fn crashed_after_the_intent(rig: &Rig, trade_id: &str, no_price: &str, sent: (bool, bool)) {
    crashed_after_sending(rig, trade_id, ("0.45", no_price), 10, sent).await
}

/// As [`crashed_after_the_intent`], any YES price and size.
async fn crashed_after_sending(
    rig: &Rig,
    trade_id: &str,
    prices: (&str, &str),
    size: u64,
    sent: (bool, bool),
) {
    let intent = planned(rig, trade_id, prices, size);
    let store = &rig.executor.store;
    store.repo.begin_trade(&store.host, &intent).await.unwrap();
    send_at_the_venues(rig, &intent, sent).await;
}

/// A trade's intent as the executor plans it: YES on Kalshi, NO on Polymarket.
fn planned(
    rig: &Rig,
    trade_id: &str,
    (yes_price, no_price): (&str, &str),
    size: u64,
) -> doubletime::store::TradeIntent {
    let cmd = execute(rig, trade_id, yes_price, no_price, size);
    let yes = support::order(
        Venue::Kalshi,
        &format!("{trade_id}-yes"),
        doubletime::domain::Outcome::Yes,
        yes_price,
        size,
        doubletime::domain::TimeInForce::FillOrKill,
    );
    let no = support::order(
        Venue::Polymarket,
        &format!("{trade_id}-no"),
        doubletime::domain::Outcome::No,
        no_price,
        size,
        doubletime::domain::TimeInForce::FillOrKill,
    );
    doubletime::store::TradeIntent {
        trade_id: trade_id.into(),
        opportunity: cmd.opportunity,
        orders: vec![yes, no],
        created_at: doubletime::strategy::now_micros(),
    }
}

/// Sends the intent's orders (`sent` says which) as a host that then died.
async fn send_at_the_venues(
    rig: &Rig,
    intent: &doubletime::store::TradeIntent,
    sent: (bool, bool),
) {
    use doubletime::venues::polymarket::TickSize;
    let (yes, no) = (&intent.orders[0], &intent.orders[1]);
    if sent.0 {
        let kalshi = KalshiRest::new(&rig.sim.kalshi_rest_url, None).unwrap();
        kalshi.create_order(yes, "KX-fed").await.unwrap();
    }
    if sent.1 {
        let poly = PolymarketRest::new(
            &rig.sim.polymarket_rest_url,
            Some(creds()),
            Some(PolySigner::from_private_key(&Secret::new(WALLET_KEY)).unwrap()),
        )
        .unwrap();
        let pair = support::pair("fed");
        poly.post_order(
            no,
            &pair.polymarket_no_token,
            TickSize::parse("0.01").unwrap(),
            false,
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_that_left_with_their_intent_only_in_the_journal_are_settled_at_start_up() {
    let rig = rig(false, dec!(0.01)).await;
    let path = rig.journal.clone().unwrap();
    // The host journalled the intent, sent both orders and died before the
    // store write landed.
    let intent = planned(&rig, "t30", ("0.45", "0.57"), 10);
    IntentJournal::open(&path).unwrap().append(&intent).unwrap();
    send_at_the_venues(&rig, &intent, (true, true)).await;
    assert!(!rig.executor.store.repo.has_trade("t30").await.unwrap());

    // The restart: the journal is replayed, then reconciliation runs.
    let journal = IntentJournal::open(&path).unwrap();
    let replayed = journal.replay(&rig.executor.store).await.unwrap();
    assert_eq!(replayed.written, 1);
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let t = rig.executor.store.repo.trade("t30").await.unwrap().unwrap();
    assert_eq!(t.outcome, TradeOutcome::Hedged, "{t:?}");
    assert_eq!(
        rig.positions().await.len(),
        2,
        "both legs booked from the venues"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "the journal starts again empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journalled_trade_is_booked_in_full_and_its_intent_kept_until_a_restart() {
    let rig = rig(false, dec!(0.01)).await;
    rig.executor
        .execute(execute(&rig, "t31", "0.45", "0.57", 5))
        .await;
    let t = rig.executor.store.repo.trade("t31").await.unwrap().unwrap();
    assert_eq!(t.outcome, TradeOutcome::Hedged);
    assert_eq!(rig.positions().await.len(), 2);
    assert_eq!(rig.executor.store_errors(), 0);
    // The line stays (short journals are not compacted); a restart finds
    // the trade in the store and empties the journal.
    let path = rig.journal.clone().unwrap();
    let journal = IntentJournal::open(&path).unwrap();
    let replayed = journal.replay(&rig.executor.store).await.unwrap();
    assert_eq!((replayed.written, replayed.present), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_a_journalled_intent_makes_the_next_trades_wait_for_it() {
    let rig = rig(false, dec!(0.01)).await;
    let store = &rig.executor.store;
    // Rows the store already has under these trade ids: it refuses their
    // intents (as a full disk or a lost database would), the journal does not.
    for id in ["t32", "t33"] {
        let stale = planned(&rig, id, ("0.45", "0.57"), 1);
        store.repo.begin_trade(&store.host, &stale).await.unwrap();
    }
    let fills =
        |rig: &Rig| rig.sim.fills(Venue::Kalshi).len() + rig.sim.fills(Venue::Polymarket).len();
    // Journalled: the orders left beside the store write that failed.
    rig.executor
        .execute(execute(&rig, "t32", "0.45", "0.57", 5))
        .await;
    let after_first = fills(&rig);
    assert_eq!(after_first, 2, "both legs of t32 went out");
    assert_eq!(rig.executor.store_errors(), 1, "the refusal is counted");
    // Now the store is asked first, and its refusal stops the orders.
    rig.executor
        .execute(execute(&rig, "t33", "0.45", "0.57", 5))
        .await;
    assert_eq!(fills(&rig), after_first, "nothing of t33 went out");
    assert_eq!(rig.executor.store_errors(), 2);
    // Its orders never left, so the journal has no line a restart would
    // turn into a trade.
    let journal = std::fs::read_to_string(rig.journal.as_ref().unwrap()).unwrap();
    assert!(
        journal.contains("\"t32\"") && !journal.contains("\"t33\""),
        "{journal}"
    );
    // A store that takes an intent again is trusted again.
    rig.executor
        .execute(execute(&rig, "t34", "0.45", "0.57", 5))
        .await;
    let t = store.repo.trade("t34").await.unwrap().unwrap();
    assert_eq!(t.outcome, TradeOutcome::Hedged);
    assert_eq!(fills(&rig), after_first + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_both_orders_went_out_is_found_at_the_venues_and_hedged() {
    let rig = rig(false, dec!(0.01)).await;
    crashed_after_the_intent(&rig, "t13", "0.57", (true, true)).await;
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let t = rig.executor.store.repo.trade("t13").await.unwrap().unwrap();
    assert_eq!(t.outcome, TradeOutcome::Hedged, "{t:?}");
    assert_eq!(t.yes_fill.as_ref().unwrap().size, Size::whole(10));
    assert_eq!(t.no_fill.as_ref().unwrap().size, Size::whole(10));
    assert_eq!(
        rig.positions().await.len(),
        2,
        "both legs booked from the venues"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_legs_is_found_and_the_lone_leg_unwound() {
    let rig = rig(false, dec!(0.0)).await;
    // NO at 0.50 cannot fill (asks start at 0.57): the retry fails too.
    crashed_after_the_intent(&rig, "t14", "0.50", (true, false)).await;
    assert_eq!(rig.sim.position(Venue::Kalshi, "KX-fed"), dec!(10));
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let t = rig.executor.store.repo.trade("t14").await.unwrap().unwrap();
    assert_eq!(t.outcome, TradeOutcome::Unwound, "{t:?}");
    assert_eq!(rig.sim.position(Venue::Kalshi, "KX-fed"), dec!(0));
    let no_token = support::pair("fed").polymarket_no_token.to_string();
    assert_eq!(rig.sim.position(Venue::Polymarket, &no_token), dec!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_any_order_settles_as_not_filled() {
    let rig = rig(false, dec!(0.01)).await;
    crashed_after_the_intent(&rig, "t15", "0.57", (false, false)).await;
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let t = rig.executor.store.repo.trade("t15").await.unwrap().unwrap();
    assert!(matches!(t.outcome, TradeOutcome::NotFilled(_)), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_venues_cannot_account_for_holds_its_market_back() {
    // Kalshi cannot be asked (connection refused): whether the YES leg
    // filled is unknown, so the trade stays open and the market is not traded.
    let rig = rig_full(Setup {
        retry_tolerance: dec!(0.01),
        kalshi_down: true,
        ..Setup::default()
    })
    .await;
    crashed_after_the_intent(&rig, "t11", "0.57", (true, false)).await;
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (0, 1));
    let store = &rig.executor.store;
    assert_eq!(store.repo.open_trades(&store.host).await.unwrap().len(), 1);
    let fills_before = rig.sim.fills(Venue::Polymarket).len();
    rig.executor
        .execute(execute(&rig, "t12", "0.45", "0.57", 10))
        .await;
    let t = store.repo.trade("t12").await.unwrap().unwrap();
    assert!(
        matches!(&t.outcome, TradeOutcome::Refused(why) if why.contains("previous run")),
        "{:?}",
        t.outcome
    );
    assert_eq!(
        rig.sim.fills(Venue::Polymarket).len(),
        fills_before,
        "nothing sent"
    );
}

/// Follows the simulator's Polymarket user channel, as the host does; returns
/// once the channel is connected.
async fn follow_settlement(rig: &Rig) -> tokio::sync::watch::Sender<bool> {
    let (stop, watch) = settlement_feed(rig).await;
    rig.executor.watch_polymarket_settlement(watch);
    stop
}

/// The simulator's Polymarket user channel followed by a settlement watch of
/// the test's own; returns once the channel is connected.
async fn settlement_feed(
    rig: &Rig,
) -> (
    tokio::sync::watch::Sender<bool>,
    Arc<doubletime::execution::SettlementWatch>,
) {
    use doubletime::execution::SettlementWatch;
    use doubletime::venues::polymarket::{UserEvent, UserFeedConfig, run_user_feed};
    let (tx, mut seen) = tokio::sync::broadcast::channel(256);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (watch, _task) = SettlementWatch::spawn(tx.subscribe());
    let cfg = UserFeedConfig::new(rig.sim.polymarket_user_ws_url.clone(), creds(), vec![]);
    tokio::spawn(run_user_feed(
        cfg,
        tx,
        Arc::new(doubletime::venues::feed::FeedStats::default()),
        None,
        shutdown,
    ));
    tokio::time::timeout(WAIT, async {
        while !matches!(seen.recv().await, Ok(UserEvent::Connected)) {}
    })
    .await
    .expect("the user channel connects");
    (stop, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polymarket_trade_that_fails_on_chain_is_a_failed_leg() {
    use doubletime::sim::accounts::{Settlement, TradeOutcome as Chain};
    let rig = rig(false, dec!(0.01)).await;
    let _feed = follow_settlement(&rig).await;
    rig.sim.set_polymarket_settlement(Settlement {
        outcome: Chain::Fail,
        step: std::time::Duration::from_millis(5),
    });
    rig.executor
        .execute(execute(&rig, "t20", "0.45", "0.57", 10))
        .await;
    // Matched, then FAILED: the Polymarket leg did not happen, the retry fails
    // the same way, and the Kalshi leg is sold back.
    let t = rig.trades().await.remove(0);
    assert_eq!(t.outcome, TradeOutcome::Unwound, "{t:?}");
    assert!(t.no_fill.is_none(), "a FAILED trade is no fill");
    let no_token = support::pair("fed").polymarket_no_token.to_string();
    assert_eq!(rig.sim.position(Venue::Polymarket, &no_token), dec!(0));
    assert_eq!(rig.sim.position(Venue::Kalshi, "KX-fed"), dec!(0));
    assert!(rig.positions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_polymarket_trade_completes_the_hedge() {
    let rig = rig(false, dec!(0.01)).await;
    let _feed = follow_settlement(&rig).await;
    rig.executor
        .execute(execute(&rig, "t21", "0.45", "0.57", 10))
        .await;
    assert_eq!(rig.trades().await[0].outcome, TradeOutcome::Hedged);
    let no_token = support::pair("fed").polymarket_no_token.to_string();
    assert_eq!(rig.sim.position(Venue::Polymarket, &no_token), dec!(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_checked_against_the_venues() {
    let rig = rig(false, dec!(0.01)).await;
    rig.executor
        .execute(execute(&rig, "t16", "0.45", "0.57", 5))
        .await;
    assert_eq!(
        rig.executor.check_positions().await,
        vec![],
        "booked = held"
    );
    // Someone trades the account by hand: 3 more YES on Kalshi the store never saw.
    let kalshi = KalshiRest::new(&rig.sim.kalshi_rest_url, None).unwrap();
    let by_hand = support::order(
        Venue::Kalshi,
        "by-hand",
        doubletime::domain::Outcome::Yes,
        "0.45",
        3,
        doubletime::domain::TimeInForce::FillOrKill,
    );
    kalshi.create_order(&by_hand, "KX-fed").await.unwrap();
    let m = rig.executor.check_positions().await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].venue, Venue::Kalshi);
    assert_eq!((m[0].booked, m[0].at_venue), (dec!(5), dec!(8)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_trade_the_cash_check_counts_what_it_spent() {
    let rig = rig(false, dec!(0.01)).await;
    // Enough on Polymarket for one leg of 5 at 0.57 or less (plus its fee), not two.
    rig.sim.set_balance(Venue::Polymarket, dec!(4));
    rig.executor
        .execute(execute(&rig, "t17", "0.45", "0.57", 5))
        .await;
    assert_eq!(rig.trades().await[0].outcome, TradeOutcome::Hedged);
    // The balance read for t17 is still young: it is trusted less what t17
    // could spend, so t18 is refused without reading the venue again.
    rig.executor
        .execute(execute(&rig, "t18", "0.45", "0.57", 5))
        .await;
    let t = rig.executor.store.repo.trade("t18").await.unwrap().unwrap();
    assert!(
        matches!(&t.outcome, TradeOutcome::Refused(why) if why.contains("polymarket balance")),
        "{:?}",
        t.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_fills_leave_only_the_matched_quantity_hedged() {
    let rig = rig_full(Setup {
        leg_order: TimeInForce::ImmediateOrCancel,
        ..Setup::default()
    })
    .await;
    // 15 wanted: Kalshi has 10 YES at 0.45; Polymarket 10 NO at 0.57 and 20 at
    // 0.58, all reachable at 0.58. YES fills 10, NO fills 15; the missing 5 YES
    // are retried at 0.45 (no tolerance: nothing left), then the 5 extra NO are sold back.
    rig.executor
        .execute(execute(&rig, "t19", "0.45", "0.58", 15))
        .await;
    let t = rig.trades().await.remove(0);
    assert_eq!(t.outcome, TradeOutcome::Unwound, "{t:?}");
    assert_eq!(t.yes_fill.as_ref().unwrap().size, Size::whole(10));
    assert_eq!(t.no_fill.as_ref().unwrap().size, Size::whole(15));
    assert_eq!(t.unwind_fill.as_ref().unwrap().size, Size::whole(5));
    // 10 hedged, nothing left over, on the venues and in the store.
    holds(&rig, dec!(10), dec!(10)).await;
}

/// The venues and the store agree that `yes` YES contracts on Kalshi and `no`
/// NO shares on Polymarket are held, and the position check finds nothing.
async fn holds(rig: &Rig, yes: Decimal, no: Decimal) {
    let no_token = support::pair("fed").polymarket_no_token.to_string();
    assert_eq!(rig.sim.position(Venue::Kalshi, "KX-fed"), yes);
    assert_eq!(rig.sim.position(Venue::Polymarket, &no_token), no);
    let mut held: Vec<_> = rig
        .positions()
        .await
        .into_iter()
        .map(|p| (p.venue, p.contracts))
        .collect();
    held.sort();
    assert_eq!(held, vec![(Venue::Kalshi, yes), (Venue::Polymarket, no)]);
    assert_eq!(rig.executor.check_positions().await, vec![]);
}

/// The Polymarket NO asks: 0.57×10 then 0.58×`deeper` (Kalshi as in [`support::order_books`]).
async fn poly_no_asks(rig: &Rig, deeper: u64) {
    let mut books = support::order_books();
    books.poly_no = support::levels(&[("0.55", 10)], &[("0.57", 10), ("0.58", deeper)]);
    rig.sim.replace_books(0, books).await;
}

/// One match, two trades: the first (10 at 0.57) confirms, the second (5 at 0.58) FAILS.
async fn second_trade_of_each_match_fails(rig: &Rig) -> tokio::sync::watch::Sender<bool> {
    use doubletime::sim::accounts::{Settlement, TradeOutcome as Chain};
    let feed = follow_settlement(rig).await;
    rig.sim.set_polymarket_settlement(Settlement {
        outcome: Chain::FailAfterFirst(1),
        step: std::time::Duration::from_millis(5),
    });
    feed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_failed_polymarket_leg_counts_its_confirmed_trades_and_unwinds_the_rest() {
    let rig = rig(false, dec!(0.0)).await;
    // Only 5 at 0.58: once the failed 5 are taken back, nothing is left to retry into.
    poly_no_asks(&rig, 5).await;
    let _feed = second_trade_of_each_match_fails(&rig).await;
    // 15 YES fill on Kalshi (10 at 0.45, 5 at 0.46); 15 NO match on Polymarket
    // as two trades, of which the 5 at 0.58 FAIL: the NO leg holds 10.
    rig.executor
        .execute(execute(&rig, "t22", "0.46", "0.58", 15))
        .await;
    let t = rig.trades().await.remove(0);
    assert_eq!(t.outcome, TradeOutcome::Unwound, "{t:?}");
    let no = t.no_fill.clone().expect("the confirmed trade is a fill");
    assert_eq!((no.size, no.price), (Size::whole(10), p("0.57")));
    assert_eq!(no.fee, rig.fees.polymarket.taker_fee(p("0.57"), no.size));
    let yes = t.yes_fill.clone().expect("YES filled");
    assert_eq!(yes.size, Size::whole(15));
    // The 5 YES over the hedge are sold back at the 0.40 bid.
    let sold = t.unwind_fill.clone().expect("the excess is unwound");
    assert_eq!((sold.size, sold.price), (Size::whole(5), p("0.40")));
    // $1 for each of the 10 hedged contracts, less every leg's cost, plus
    // what the unwind brought in: the realised loss, exactly.
    let expected =
        dec!(10) - (yes.price * yes.size + yes.fee).value() - (no.price * no.size + no.fee).value()
            + (sold.price * sold.size - sold.fee).value();
    assert_eq!(t.pnl.value(), expected);
    holds(&rig, dec!(10), dec!(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failed_part_of_a_polymarket_leg_is_retried_like_a_partial_fill() {
    let rig = rig(false, dec!(0.0)).await;
    let _feed = second_trade_of_each_match_fails(&rig).await;
    let mut trades = rig.bus.trades.subscribe();
    // As above, but 20 rest at 0.58: the 5 that FAILED are bought again
    // (one trade, which confirms) and the trade ends hedged.
    rig.executor
        .execute(execute(&rig, "t23", "0.46", "0.58", 15))
        .await;
    let t = rig.trades().await.remove(0);
    assert_eq!(t.outcome, TradeOutcome::Hedged, "{t:?}");
    let no = t.no_fill.clone().expect("NO filled");
    assert_eq!(no.size, Size::whole(15));
    // The NO leg is the confirmed 10 at 0.57 and the retried 5 at 0.58, and
    // the P&L is charged their exact cost (their average, 0.5733…, would round).
    let TradeEvent::Executed(done) = next_trade(&mut trades).await else {
        panic!("expected the executed trade")
    };
    let parts: Vec<_> = done
        .trade
        .no_leg
        .fills
        .iter()
        .map(|f| (f.size, f.price))
        .collect();
    assert_eq!(
        parts,
        vec![(Size::whole(10), p("0.57")), (Size::whole(5), p("0.58"))]
    );
    let fee = |price: &str, size: u64| {
        rig.fees
            .polymarket
            .taker_fee(p(price), Size::whole(size))
            .value()
    };
    let no_cost = dec!(5.70) + fee("0.57", 10) + dec!(2.90) + fee("0.58", 5);
    let expected = dec!(15) - done.trade.yes_leg.cost().value() - no_cost;
    assert_eq!(t.pnl.value(), expected);
    // The store booked the confirmed 10 and the retried 5, never the failed 5.
    holds(&rig, dec!(15), dec!(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_counts_only_the_confirmed_trades_of_a_partly_failed_leg() {
    use doubletime::execution::Settled;
    use doubletime::sim::accounts::{Settlement, TradeOutcome as Chain};
    let rig = rig(false, dec!(0.0)).await;
    poly_no_asks(&rig, 5).await;
    let (_feed, watch) = settlement_feed(&rig).await;
    rig.sim.set_polymarket_settlement(Settlement {
        outcome: Chain::FailAfterFirst(1),
        step: std::time::Duration::from_millis(5),
    });
    // Both legs went out, then the host died; the NO match settles meanwhile.
    crashed_after_sending(&rig, "t24", ("0.46", "0.58"), 15, (true, true)).await;
    let ids: Vec<String> = rig
        .sim
        .polymarket_trades()
        .into_iter()
        .map(|t| t.trade_id)
        .collect();
    assert_eq!(ids.len(), 2, "one match, two trades");
    let Settled::Final { failed } = watch.wait(&ids, WAIT).await else {
        panic!("the trades settle")
    };
    assert_eq!(failed.len(), 1);
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let t = rig.executor.store.repo.trade("t24").await.unwrap().unwrap();
    assert_eq!(t.outcome, TradeOutcome::Unwound, "{t:?}");
    let no = t.no_fill.clone().expect("the confirmed trade");
    assert_eq!((no.size, no.price), (Size::whole(10), p("0.57")));
    assert_eq!(t.unwind_fill.as_ref().unwrap().size, Size::whole(5));
    holds(&rig, dec!(10), dec!(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_waits_for_polymarket_trades_still_on_their_way() {
    use doubletime::sim::accounts::{Settlement, TradeOutcome as Chain};
    let rig = rig(false, dec!(0.0)).await;
    poly_no_asks(&rig, 5).await;
    // Slow chain (final after 2 and 3 s): the host restarts while neither
    // trade is final.
    rig.sim.set_polymarket_settlement(Settlement {
        outcome: Chain::FailAfterFirst(1),
        step: std::time::Duration::from_secs(1),
    });
    crashed_after_sending(&rig, "t25", ("0.46", "0.58"), 15, (true, true)).await;
    use doubletime::sim::accounts::SimTradeStatus as Chained;
    assert!(
        rig.sim
            .polymarket_trades()
            .iter()
            .all(|t| !matches!(t.status, Chained::Confirmed | Chained::Failed)),
        "not final when reconciliation starts"
    );
    let done = rig.executor.reconcile().await;
    assert_eq!((done.settled, done.unresolved), (1, 0));
    let t = rig.executor.store.repo.trade("t25").await.unwrap().unwrap();
    let no = t.no_fill.clone().expect("the confirmed trade");
    assert_eq!(
        no.size,
        Size::whole(10),
        "the trade that FAILED is not held"
    );
    assert_eq!(t.outcome, TradeOutcome::Unwound, "{t:?}");
    holds(&rig, dec!(10), dec!(10)).await;
}

//! One test suite, run against both trade repositories: SQLite (a file) and
//! PostgreSQL (a real server that scripts/test or .ci/run starts).

mod stores;

use std::sync::Arc;
use std::time::Duration;

use doubletime::domain::{
    Action, Fill, Opportunity, Order, Outcome, PairFees, PairId, Price, Size, TimeInForce, Usd,
    Venue,
};
use doubletime::execution::{TradeOutcome, TradeRecord};
use doubletime::store::{
    OpportunityRecord, OrderStatus, SCHEMA_VERSION, StoreError, TradeIntent, TradeRepository,
};
use rust_decimal_macros::dec;

const HOST: &str = "host-a";

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn opportunity(pair: &str) -> Opportunity {
    Opportunity::price(
        PairId(pair.into()),
        "buy-both",
        Venue::Kalshi,
        p("0.45"),
        p("0.52"),
        Size::whole(10),
        &PairFees::default(),
        1_000,
    )
}

fn order(trade: &str, leg: &str, venue: Venue, outcome: Outcome, pair: &str) -> Order {
    Order {
        client_order_id: format!("{trade}-{leg}"),
        venue,
        pair: PairId(pair.into()),
        outcome,
        action: Action::Buy,
        limit: p("0.50"),
        size: Size::whole(10),
        time_in_force: TimeInForce::FillOrKill,
    }
}

fn intent(trade: &str, pair: &str) -> TradeIntent {
    TradeIntent {
        trade_id: trade.into(),
        opportunity: opportunity(pair),
        orders: vec![
            order(trade, "yes", Venue::Kalshi, Outcome::Yes, pair),
            order(trade, "no", Venue::Polymarket, Outcome::No, pair),
        ],
        created_at: 5_000,
    }
}

fn fill(o: &Order, action: Action, size: u64, price: &str) -> Fill {
    Fill {
        client_order_id: o.client_order_id.clone(),
        venue: o.venue,
        outcome: o.outcome,
        action,
        price: p(price),
        size: Size::whole(size),
        fee: Usd::parse("0.07").unwrap(),
        at: 6_000,
    }
}

fn record(trade: &str, pair: &str, outcome: TradeOutcome, pnl: &str, at: u64) -> TradeRecord {
    TradeRecord {
        trade_id: trade.into(),
        opportunity: opportunity(pair),
        outcome,
        yes_fill: None,
        no_fill: None,
        unwind_fill: None,
        pnl: Usd::parse(pnl).unwrap(),
        at,
    }
}

async fn intent_is_open_with_planned_orders_until_finished(repo: Arc<dyn TradeRepository>) {
    let i = intent("t1", "fed");
    repo.begin_trade(HOST, &i).await.unwrap();
    let open = repo.open_trades(HOST).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].trade_id, "t1");
    assert_eq!(open[0].opportunity, i.opportunity);
    assert_eq!(open[0].orders.len(), 2);
    assert!(
        open[0]
            .orders
            .iter()
            .all(|o| o.status == OrderStatus::Planned)
    );
    assert!(repo.open_trades("host-b").await.unwrap().is_empty());

    repo.update_order("t1-yes", OrderStatus::Filled, Some("K-1"), None, 6_000)
        .await
        .unwrap();
    let f = fill(&i.orders[0], Action::Buy, 10, "0.45");
    assert!(repo.record_fill(HOST, "t1", &f).await.unwrap());
    let open = repo.open_trades(HOST).await.unwrap();
    let yes = open[0]
        .orders
        .iter()
        .find(|o| o.order.client_order_id == "t1-yes")
        .unwrap();
    assert_eq!(yes.status, OrderStatus::Filled);
    assert_eq!(yes.venue_order_id.as_deref(), Some("K-1"));
    assert_eq!(open[0].fills, vec![f.clone()]);

    let mut r = record("t1", "fed", TradeOutcome::Unwound, "-0.31", 7_000);
    r.yes_fill = Some(f);
    repo.finish_trade(HOST, &r).await.unwrap();
    assert!(repo.open_trades(HOST).await.unwrap().is_empty());
    let stored = repo.trade("t1").await.unwrap().expect("the finished trade");
    assert_eq!(stored.outcome, TradeOutcome::Unwound);
    assert_eq!(stored.pnl.value(), dec!(-0.31));
    assert_eq!(stored.yes_fill, r.yes_fill);
    assert!(repo.trade("nope").await.unwrap().is_none());
}

async fn a_fill_is_booked_once(repo: Arc<dyn TradeRepository>) {
    let i = intent("t1", "fed");
    repo.begin_trade(HOST, &i).await.unwrap();
    let f = fill(&i.orders[0], Action::Buy, 10, "0.45");
    assert!(repo.record_fill(HOST, "t1", &f).await.unwrap());
    assert!(
        !repo.record_fill(HOST, "t1", &f).await.unwrap(),
        "the same order's fill again is not new"
    );
    let positions = repo.positions(HOST).await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].contracts, dec!(10), "not doubled");
    let unknown = repo.record_fill(HOST, "ghost", &f).await;
    assert!(
        matches!(unknown, Err(StoreError::Corrupt(_))),
        "{unknown:?}"
    );
}

async fn a_trade_id_is_written_once(repo: Arc<dyn TradeRepository>) {
    repo.begin_trade(HOST, &intent("t1", "fed")).await.unwrap();
    let mut again = intent("t1", "fed");
    again.orders[0].client_order_id = "other".into();
    assert!(repo.begin_trade(HOST, &again).await.is_err());
    let open = repo.open_trades(HOST).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        open[0].orders.len(),
        2,
        "the refused write left nothing behind"
    );
}

async fn a_failed_intent_leaves_nothing(repo: Arc<dyn TradeRepository>) {
    let mut bad = intent("t2", "fed");
    // Two orders with one client order id: the second insert fails, the whole intent rolls back.
    bad.orders[1].client_order_id = bad.orders[0].client_order_id.clone();
    assert!(repo.begin_trade(HOST, &bad).await.is_err());
    assert!(repo.open_trades(HOST).await.unwrap().is_empty());
    assert!(repo.opportunities(HOST, 10).await.unwrap().is_empty());
    repo.begin_trade(HOST, &intent("t2", "fed")).await.unwrap();
}

async fn a_failed_intent_leaves_no_transaction_open(store: stores::TestStore) {
    let repo = store.open().await;
    repo.begin_trade(HOST, &intent("t1", "fed")).await.unwrap();
    // Refused half-way through its batch: the trade row is a duplicate.
    assert!(repo.begin_trade(HOST, &intent("t1", "fed")).await.is_err());
    // A transaction left open on a pooled connection would swallow later
    // writes made on it (or refuse them); every one must land for good.
    for i in 0..8 {
        repo.begin_trade(HOST, &intent(&format!("u{i}"), "fed"))
            .await
            .unwrap();
    }
    let fresh = store.open().await;
    let open = fresh.open_trades(HOST).await.unwrap();
    assert_eq!(open.len(), 9, "seen from other connections");
    assert!(open.iter().all(|t| t.orders.len() == 2));
}

async fn an_intent_without_orders_is_the_trade_alone(repo: Arc<dyn TradeRepository>) {
    // Refusals and dry runs book an intent that plans no order.
    let mut refused = intent("r1", "fed");
    refused.orders.clear();
    repo.begin_trade(HOST, &refused).await.unwrap();
    let open = repo.open_trades(HOST).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].trade_id, "r1");
    assert!(open[0].orders.is_empty());
    assert!(
        repo.begin_trade(HOST, &refused).await.is_err(),
        "written once"
    );
}

async fn planned_orders_never_sent_are_marked_so(repo: Arc<dyn TradeRepository>) {
    repo.begin_trade(HOST, &intent("t3", "fed")).await.unwrap();
    repo.add_order(
        HOST,
        "t3",
        &order("t3", "yes-retry1", Venue::Kalshi, Outcome::Yes, "fed"),
        5_500,
    )
    .await
    .unwrap();
    repo.update_order("t3-yes", OrderStatus::Rejected, None, Some("fok"), 6_000)
        .await
        .unwrap();
    let open = repo.open_trades(HOST).await.unwrap();
    assert_eq!(open[0].orders.len(), 3);
    let rejected = open[0]
        .orders
        .iter()
        .find(|o| o.order.client_order_id == "t3-yes")
        .unwrap();
    assert_eq!(rejected.error.as_deref(), Some("fok"));
    repo.finish_trade(HOST, &record("t3", "fed", TradeOutcome::DryRun, "0", 7_000))
        .await
        .unwrap();
    assert!(
        repo.update_order("ghost", OrderStatus::Filled, None, None, 1)
            .await
            .is_err(),
        "an unknown order is an error, not a silent no-op"
    );
}

async fn positions_are_buys_minus_sales_per_host(repo: Arc<dyn TradeRepository>) {
    let a = intent("ta", "fed");
    repo.begin_trade(HOST, &a).await.unwrap();
    repo.record_fill(HOST, "ta", &fill(&a.orders[0], Action::Buy, 10, "0.45"))
        .await
        .unwrap();
    repo.record_fill(HOST, "ta", &fill(&a.orders[1], Action::Buy, 10, "0.52"))
        .await
        .unwrap();
    let unwind = order("ta", "no-unwind", Venue::Polymarket, Outcome::No, "fed");
    repo.add_order(HOST, "ta", &unwind, 6_500).await.unwrap();
    repo.record_fill(HOST, "ta", &fill(&unwind, Action::Sell, 4, "0.50"))
        .await
        .unwrap();
    // Another host's trade on another pair is not ours.
    let b = intent("tb", "cpi");
    repo.begin_trade("host-b", &b).await.unwrap();
    repo.record_fill("host-b", "tb", &fill(&b.orders[0], Action::Buy, 3, "0.45"))
        .await
        .unwrap();

    let mut held = repo.positions(HOST).await.unwrap();
    held.sort_by_key(|p| p.venue);
    assert_eq!(held.len(), 2);
    assert_eq!(
        (held[0].venue, held[0].outcome, held[0].contracts),
        (Venue::Kalshi, Outcome::Yes, dec!(10))
    );
    assert_eq!(
        (held[1].venue, held[1].outcome, held[1].contracts),
        (Venue::Polymarket, Outcome::No, dec!(6))
    );
    let theirs = repo.positions("host-b").await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].pair, PairId("cpi".into()));
}

async fn pnl_sums_exactly_since_a_time(repo: Arc<dyn TradeRepository>) {
    for (id, pnl, at) in [
        ("p1", "0.10", 100),
        ("p2", "0.20", 200),
        ("p3", "-0.05", 300),
    ] {
        repo.begin_trade(HOST, &intent(id, "fed")).await.unwrap();
        repo.finish_trade(HOST, &record(id, "fed", TradeOutcome::Hedged, pnl, at))
            .await
            .unwrap();
    }
    assert_eq!(repo.pnl_since(HOST, 0).await.unwrap().value(), dec!(0.25));
    assert_eq!(repo.pnl_since(HOST, 200).await.unwrap().value(), dec!(0.15));
    assert_eq!(repo.pnl_since("host-b", 0).await.unwrap().value(), dec!(0));
    let listed: Vec<String> = repo
        .trades(2)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.trade_id)
        .collect();
    assert_eq!(listed, vec!["p3", "p2"], "newest first, limited");
}

async fn a_live_lease_keeps_a_pair_with_its_host(repo: Arc<dyn TradeRepository>) {
    let lease = Duration::from_secs(10);
    let pairs = [PairId("fed".into()), PairId("cpi".into())];
    let a = repo
        .claim_pairs("host-a", &pairs, 1_000_000, lease)
        .await
        .unwrap();
    assert!(a.iter().all(|c| c.owner == "host-a"));
    // host-b asks 5 s later: host-a's lease is live.
    let b = repo
        .claim_pairs("host-b", &pairs[..1], 6_000_000, lease)
        .await
        .unwrap();
    assert_eq!(b[0].owner, "host-a");
    // host-a renews; host-b asks after the first lease would have run out: still host-a's.
    repo.claim_pairs("host-a", &pairs[..1], 9_000_000, lease)
        .await
        .unwrap();
    let b = repo
        .claim_pairs("host-b", &pairs[..1], 15_000_000, lease)
        .await
        .unwrap();
    assert_eq!(b[0].owner, "host-a");
    // host-a stops renewing: after its lease, host-b takes the pair.
    let b = repo
        .claim_pairs("host-b", &pairs[..1], 30_000_000, lease)
        .await
        .unwrap();
    assert_eq!(b[0].owner, "host-b");
    // A clean shutdown frees at once.
    repo.release_pairs("host-a").await.unwrap();
    let b = repo
        .claim_pairs("host-b", &pairs[1..], 30_000_001, lease)
        .await
        .unwrap();
    assert_eq!(b[0].owner, "host-b");
}

async fn decisions_are_kept_newest_first(repo: Arc<dyn TradeRepository>) {
    let refused = OpportunityRecord {
        pair: PairId("fed".into()),
        found_by: "buy-both".into(),
        approved: false,
        reason: Some("stale_book".into()),
        message: Some("the kalshi book is stale".into()),
        trade_id: None,
        opportunity: None,
        at: 10,
    };
    repo.record_opportunity(HOST, &refused).await.unwrap();
    let approved = intent("t9", "fed");
    repo.begin_trade(HOST, &approved).await.unwrap();
    // The executor books the approval after the orders leave, apart from the intent.
    repo.record_opportunity(HOST, &approved.approval())
        .await
        .unwrap();
    let seen = repo.opportunities(HOST, 10).await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].approved, "the approval is recorded");
    assert_eq!(seen[0].trade_id.as_deref(), Some("t9"));
    assert_eq!(seen[0].opportunity, Some(opportunity("fed")));
    assert_eq!(seen[1], refused);
}

async fn totals_count_trades_fills_fees_and_pnl(repo: Arc<dyn TradeRepository>) {
    let i = intent("tt", "fed");
    repo.begin_trade(HOST, &i).await.unwrap();
    repo.record_fill(HOST, "tt", &fill(&i.orders[0], Action::Buy, 10, "0.45"))
        .await
        .unwrap();
    repo.record_fill(HOST, "tt", &fill(&i.orders[1], Action::Buy, 10, "0.52"))
        .await
        .unwrap();
    repo.finish_trade(HOST, &record("tt", "fed", TradeOutcome::Hedged, "0.16", 9))
        .await
        .unwrap();
    repo.begin_trade(HOST, &intent("td", "fed")).await.unwrap();
    repo.finish_trade(HOST, &record("td", "fed", TradeOutcome::DryRun, "0", 10))
        .await
        .unwrap();
    let t = repo.totals(HOST).await.unwrap();
    assert_eq!(t.trades.get("hedged"), Some(&1));
    assert_eq!(t.trades.get("dry_run"), Some(&1));
    assert_eq!(t.fills.get("kalshi"), Some(&1));
    assert_eq!(t.fills.get("polymarket"), Some(&1));
    assert_eq!(t.fees.value(), dec!(0.14));
    assert_eq!(t.pnl.value(), dec!(0.16));
    assert_eq!(repo.totals("host-b").await.unwrap(), Default::default());
}

macro_rules! both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let store = super::stores::sqlite();
                    super::$test(store.open().await).await;
                }
            )*

            #[tokio::test]
            async fn the_schema_is_migrated_once_and_a_newer_one_refused() {
                super::schema_is_migrated_once_and_a_newer_one_refused(super::stores::sqlite()).await;
            }

            #[tokio::test]
            async fn a_failed_intent_leaves_no_transaction_open() {
                super::a_failed_intent_leaves_no_transaction_open(super::stores::sqlite()).await;
            }
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let store = super::stores::postgres().await;
                    super::$test(store.open().await).await;
                }
            )*

            #[tokio::test]
            async fn the_schema_is_migrated_once_and_a_newer_one_refused() {
                super::schema_is_migrated_once_and_a_newer_one_refused(super::stores::postgres().await).await;
            }

            #[tokio::test]
            async fn a_failed_intent_leaves_no_transaction_open() {
                super::a_failed_intent_leaves_no_transaction_open(super::stores::postgres().await).await;
            }
        }
    };
}

async fn schema_is_migrated_once_and_a_newer_one_refused(store: stores::TestStore) {
    let repo = store.open().await;
    repo.begin_trade(HOST, &intent("kept", "fed"))
        .await
        .unwrap();
    drop(repo);
    // Reopening migrates nothing again and keeps the data.
    let repo = store.open().await;
    assert_eq!(repo.open_trades(HOST).await.unwrap().len(), 1);
    drop(repo);
    // A newer binary's schema is refused, not guessed at.
    let future = SCHEMA_VERSION + 1;
    if store.url.starts_with("sqlite:") {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&store.url).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)",
        )
        .bind(future)
        .execute(&mut c)
        .await
        .unwrap();
    } else {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&store.url).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)",
        )
        .bind(future)
        .execute(&mut c)
        .await
        .unwrap();
    }
    match doubletime::store::open(&store.url).await {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (future, SCHEMA_VERSION))
        }
        Err(e) => panic!("expected SchemaTooNew, got {e}"),
        Ok(_) => panic!("expected SchemaTooNew, the store opened"),
    }
}

/// A host died with intents only in its journal: the next start writes
/// those the store lacks, skips what it has and a line torn mid-write, and
/// leaves the journal empty.
async fn a_journal_replays_what_the_store_lacks_once(repo: Arc<dyn TradeRepository>) {
    use doubletime::store::journal::{IntentJournal, Replayed};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("intents");
    let journal = IntentJournal::open(&path).unwrap();
    let (stored, lost) = (intent("t1", "fed"), intent("t2", "cpi"));
    journal.append(&stored).unwrap();
    repo.begin_trade(HOST, &stored).await.unwrap();
    journal.append(&lost).unwrap();
    drop(journal);
    // The crash tore the next write.
    let mut text = std::fs::read(&path).unwrap();
    text.extend_from_slice(br#"{"trade_id":"t3","opportunity":{"pa"#);
    std::fs::write(&path, text).unwrap();

    let store = doubletime::store::TradeStore::new(repo.clone(), HOST);
    let journal = IntentJournal::open(&path).unwrap();
    let replayed = journal.replay(&store).await.unwrap();
    assert_eq!(
        replayed,
        Replayed {
            written: 1,
            present: 1,
            unreadable: 1
        }
    );
    let open = repo.open_trades(HOST).await.unwrap();
    let t2 = open
        .iter()
        .find(|t| t.trade_id == "t2")
        .expect("t2 written");
    assert_eq!(t2.opportunity, lost.opportunity);
    let mut orders: Vec<_> = t2.orders.iter().map(|o| o.order.clone()).collect();
    orders.sort_by(|a, b| b.client_order_id.cmp(&a.client_order_id));
    assert_eq!(orders, lost.orders, "t2-yes, t2-no");
    assert!(t2.orders.iter().all(|o| o.status == OrderStatus::Planned));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(journal.replay(&store).await.unwrap(), Replayed::default());
    assert!(
        journal.append(&lost).is_err(),
        "a replayed trade id is not journalled again"
    );
}

both_stores!(
    a_journal_replays_what_the_store_lacks_once,
    intent_is_open_with_planned_orders_until_finished,
    a_fill_is_booked_once,
    a_trade_id_is_written_once,
    a_failed_intent_leaves_nothing,
    an_intent_without_orders_is_the_trade_alone,
    planned_orders_never_sent_are_marked_so,
    positions_are_buys_minus_sales_per_host,
    pnl_sums_exactly_since_a_time,
    a_live_lease_keeps_a_pair_with_its_host,
    decisions_are_kept_newest_first,
    totals_count_trades_fills_fees_and_pnl,
);

#[tokio::test]
async fn a_url_of_another_database_is_refused_without_echoing_it() {
    let err = doubletime::store::open("mysql://root:hunter2@db/x")
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::UnsupportedUrl));
    assert!(!err.to_string().contains("hunter2"));
}

//! The Kalshi order-book feed against the simulator on 127.0.0.1: a signed
//! handshake (and a refused one), snapshot then deltas build the venue's book,
//! a `seq` gap re-synchronises, bad frames are counted, a drop reconnects.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use doubletime::books::BookStore;
use doubletime::bus::{Bus, StatusEvent};
use doubletime::domain::events::FeedStatus;
use doubletime::domain::{PairFees, PairId, Size, Venue};
use doubletime::sim::{self, ArbDirection, EventKind, Scenario, SimConfig, SimHandle, SimPair};
use doubletime::venues::feed::{BookWriter, FeedStats};
use doubletime::venues::kalshi::KalshiSigner;
use doubletime::venues::kalshi::ws::{OrderbookFeedConfig, run_orderbook_feed};
use support::WAIT;

fn in_sync(books: &BookStore, sim: &SimHandle) -> bool {
    let ours = books.get(&PairId("fed".into())).unwrap();
    let ours = ours.state();
    let st = sim::read(&sim.state);
    let theirs = st.markets[0].books();
    ours.kalshi.yes == theirs.kalshi_yes
        && ours.kalshi.no == theirs.kalshi_no
        && !theirs.kalshi_no.is_empty()
}

async fn until(
    rx: &doubletime::bus::CoalescingReceiver<PairId, doubletime::bus::BookChanged>,
    cond: impl Fn() -> bool,
) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            rx.recv().await;
        }
    })
    .await
    .expect("condition not reached");
}

async fn feed_status(
    rx: &mut doubletime::bus::BroadcastReceiver<StatusEvent>,
    want: FeedStatus,
) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(StatusEvent::Feed(f)) = rx.recv().await
                && f.venue == Venue::Kalshi
                && f.status == want
            {
                return f.detail;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?}"))
}

fn signer(dir: &std::path::Path, pem: &str) -> Arc<KalshiSigner> {
    let path = dir.join("kalshi.pem");
    std::fs::write(&path, pem).unwrap();
    Arc::new(KalshiSigner::from_pem_file("a952bcbe-ec3b-4b5b-b8f9-11dae589608c", &path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_feed_builds_books_resyncs_on_gaps_and_reconnects() {
    let (private, public) = support::rsa_pems();
    let dir = tempfile::tempdir().unwrap();
    let pair = support::pair("fed");
    let sim = support::signed_sim(std::slice::from_ref(&pair), 5, &public).await;
    let books = Arc::new(BookStore::new());
    books.add(pair.clone(), PairFees::default(), Size::whole(5));
    let bus = Arc::new(Bus::default());
    let changed = bus.books.subscribe();
    let mut status = bus.status.subscribe();
    let stats = Arc::new(FeedStats::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);

    // A key the venue does not know: refused at the handshake, retried.
    let (other_private, _) = support::rsa_pems();
    let other_dir = tempfile::tempdir().unwrap();
    let mut bad = OrderbookFeedConfig::new(
        sim.kalshi_ws_url.clone(),
        vec![pair.clone()],
        Some(signer(other_dir.path(), &other_private)),
    );
    bad.backoff_base = Duration::from_millis(20);
    let bad_writer = BookWriter::new(
        Venue::Kalshi,
        books.clone(),
        bus.clone(),
        Arc::new(FeedStats::default()),
    );
    let (stop_bad, shutdown_bad) = tokio::sync::watch::channel(false);
    let bad_feed = tokio::spawn(run_orderbook_feed(bad, bad_writer, None, shutdown_bad));
    let detail = feed_status(&mut status, FeedStatus::Reconnecting).await;
    assert!(detail.contains("401"), "{detail}");
    stop_bad.send(true).unwrap();
    tokio::time::timeout(WAIT, bad_feed).await.unwrap().unwrap();

    let mut cfg = OrderbookFeedConfig::new(
        sim.kalshi_ws_url.clone(),
        vec![pair.clone()],
        Some(signer(dir.path(), &private)),
    );
    cfg.backoff_base = Duration::from_millis(20);
    let writer = BookWriter::new(Venue::Kalshi, books.clone(), bus.clone(), stats.clone());
    let feed = tokio::spawn(run_orderbook_feed(cfg, writer, None, shutdown));
    feed_status(&mut status, FeedStatus::Connected).await;
    until(&changed, || in_sync(&books, &sim)).await;

    // Deltas (signed changes) follow the venue; the derived YES ask is the window's.
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.04"));
    until(&changed, || {
        in_sync(&books, &sim)
            && books
                .get(&PairId("fed".into()))
                .unwrap()
                .state()
                .kalshi_derived_yes_ask()
                .unwrap()
                .size
                == Size::whole(50)
    })
    .await;

    // Malformed frames are counted, never applied.
    sim.inject(support::venue_event(EventKind::Malformed, Venue::Kalshi));
    sim.inject(support::window("fed", ArbDirection::PolymarketYes, "0.03"));
    until(&changed, || {
        in_sync(&books, &sim) && stats.bad_messages().get("malformed") == Some(&1)
    })
    .await;

    // A skipped seq: the book is discarded (stale) and re-synchronised.
    sim.inject(support::venue_event(EventKind::Gap, Venue::Kalshi));
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.05"));
    until(&changed, || {
        stats.resyncs.load(Ordering::Relaxed) >= 1
            && in_sync(&books, &sim)
            && !books
                .get(&PairId("fed".into()))
                .unwrap()
                .state()
                .kalshi
                .stale
    })
    .await;

    // A dropped connection: reconnect with a fresh signature, subscription restored.
    sim.inject(support::venue_event(EventKind::Disconnect, Venue::Kalshi));
    feed_status(&mut status, FeedStatus::Reconnecting).await;
    feed_status(&mut status, FeedStatus::Connected).await;
    sim.inject(support::window("fed", ArbDirection::PolymarketYes, "0.06"));
    until(&changed, || {
        in_sync(&books, &sim)
            && !books
                .get(&PairId("fed".into()))
                .unwrap()
                .state()
                .kalshi
                .stale
    })
    .await;
    assert_eq!(stats.reconnects.load(Ordering::Relaxed), 1);

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, feed).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_simulator_notes_each_order_request_on_arrival_before_checking_it_with_its_write_time()
{
    // The latency harness times tick-to-order to these notes; no other test
    // in this file sends orders.
    let sim = support::quiet_sim(&[support::pair("fed")]).await;
    sim::order_arrivals(true);
    let http = reqwest::Client::new();
    // Each venue refuses these (no body it can read, no credentials): they
    // still arrived.
    let kalshi = http
        .post(format!("{}/portfolio/events/orders", sim.kalshi_rest_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    let poly = http
        .post(format!("{}/order", sim.polymarket_rest_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(kalshi.status().is_client_error(), "{}", kalshi.status());
    assert!(poly.status().is_client_error(), "{}", poly.status());
    // Not orders: a read, and a cancel.
    http.get(format!("{}/portfolio/balance", sim.kalshi_rest_url))
        .send()
        .await
        .unwrap();
    http.delete(format!("{}/order", sim.polymarket_rest_url))
        .send()
        .await
        .unwrap();
    let arrivals = sim::order_arrivals(false);
    let venues: Vec<Venue> = arrivals.iter().map(|a| a.venue).collect();
    assert_eq!(venues, vec![Venue::Kalshi, Venue::Polymarket]);
    // Each carries the kernel's stamp of when its bytes were written, which
    // comes before the server parsed them.
    for a in &arrivals {
        if cfg!(target_os = "linux") {
            let written = a.written_at.expect("a receive timestamp");
            assert!(written <= a.parsed_at, "{a:?}");
            assert!(a.parsed_at - written < 5_000_000, "{a:?}");
        }
    }
}

/// A burst longer than one batch (the feed applies at most
/// `feed::BATCH_FRAMES` waiting frames at a time): 100 markets' snapshots
/// arrive together on subscribing, and every frame is applied, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_frames_longer_than_a_batch_is_applied_whole() {
    let pairs: Vec<_> = (0..100).map(|i| support::pair(&format!("m{i}"))).collect();
    assert!(pairs.len() > 3 * doubletime::venues::feed::BATCH_FRAMES);
    let sim = sim::start(SimConfig {
        pairs: pairs.iter().map(SimPair::from).collect(),
        scenario: Scenario {
            seed: 9,
            tick_ms: 3_600_000,
            events: Vec::new(),
        },
        kalshi_auth: None,
    })
    .await
    .unwrap();
    let books = Arc::new(BookStore::new());
    for p in &pairs {
        books.add(p.clone(), PairFees::default(), Size::whole(5));
    }
    let bus = Arc::new(Bus::default());
    let changed = bus.books.subscribe();
    let stats = Arc::new(FeedStats::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let cfg = OrderbookFeedConfig::new(sim.kalshi_ws_url.clone(), pairs.clone(), None);
    let writer = BookWriter::new(Venue::Kalshi, books.clone(), bus.clone(), stats.clone());
    let feed = tokio::spawn(run_orderbook_feed(cfg, writer, None, shutdown));
    let all_in = || {
        let st = sim::read(&sim.state);
        pairs.iter().enumerate().all(|(i, p)| {
            let ours = books.get(&p.id).unwrap();
            let ours = ours.state();
            let theirs = st.markets[i].books();
            !theirs.kalshi_no.is_empty()
                && ours.kalshi.yes == theirs.kalshi_yes
                && ours.kalshi.no == theirs.kalshi_no
        })
    };
    until(&changed, all_in).await;
    assert_eq!(stats.resyncs.load(Ordering::Relaxed), 0, "no frame lost");
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, feed).await.unwrap().unwrap();
}

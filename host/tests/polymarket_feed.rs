//! The Polymarket market feed against the simulator on 127.0.0.1: snapshot and
//! changes build the venue's books, a lost change is detected and the book
//! re-fetched, bad frames are counted, a dropped connection reconnects.

mod support;

use std::sync::Arc;
use std::time::Duration;

use doubletime::books::BookStore;
use doubletime::bus::{Bus, StatusEvent};
use doubletime::domain::events::FeedStatus;
use doubletime::domain::{PairFees, PairId, Size, Venue};
use doubletime::sim::{self, ArbDirection, EventKind, SimHandle};
use doubletime::venues::feed::{BookWriter, FeedStats};
use doubletime::venues::polymarket::ws::{MarketFeedConfig, run_market_feed};
use support::WAIT;

/// Our Polymarket books equal the simulator's.
fn in_sync(books: &BookStore, sim: &SimHandle) -> bool {
    let ours = books.get(&PairId("fed".into())).unwrap();
    let ours = ours.state();
    let st = sim::read(&sim.state);
    let theirs = st.markets[0].books();
    ours.polymarket.yes == theirs.poly_yes
        && ours.polymarket.no == theirs.poly_no
        && !theirs.poly_no.is_empty()
}

/// Waits, one book notification at a time, until `cond` holds.
async fn until(
    bus: &Bus,
    rx: &doubletime::bus::CoalescingReceiver<PairId, doubletime::bus::BookChanged>,
    cond: impl Fn() -> bool,
) {
    let _ = bus;
    tokio::time::timeout(WAIT, async {
        while !cond() {
            rx.recv().await;
        }
    })
    .await
    .expect("condition not reached");
}

async fn feed_status(rx: &mut doubletime::bus::BroadcastReceiver<StatusEvent>, want: FeedStatus) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(StatusEvent::Feed(f)) = rx.recv().await
                && f.venue == Venue::Polymarket
                && f.status == want
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_then_changes_build_the_venue_book_and_a_drop_reconnects() {
    let pair = support::pair("fed");
    let books = Arc::new(BookStore::new());
    books.add(pair.clone(), PairFees::default(), Size::whole(5));
    let bus = Arc::new(Bus::default());
    let changed = bus.books.subscribe();
    let mut status = bus.status.subscribe();
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    let stats = Arc::new(FeedStats::default());
    let writer = BookWriter::new(Venue::Polymarket, books.clone(), bus.clone(), stats.clone());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut cfg = MarketFeedConfig::new(
        sim.polymarket_ws_url.clone(),
        sim.polymarket_rest_url.clone(),
        vec![pair.clone()],
    );
    cfg.backoff_base = Duration::from_millis(20);
    let feed = tokio::spawn(run_market_feed(cfg, writer, books.clone(), None, shutdown));

    feed_status(&mut status, FeedStatus::Connected).await;
    until(&bus, &changed, || in_sync(&books, &sim)).await;

    // Changes (absolute sizes) follow the venue.
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.04"));
    until(&bus, &changed, || {
        in_sync(&books, &sim)
            && books
                .get(&PairId("fed".into()))
                .unwrap()
                .state()
                .polymarket
                .no
                .best_ask()
                .unwrap()
                .size
                == Size::whole(50)
    })
    .await;

    // A malformed frame is counted and changes nothing.
    sim.inject(support::venue_event(
        EventKind::Malformed,
        Venue::Polymarket,
    ));
    sim.inject(support::window("fed", ArbDirection::PolymarketYes, "0.03"));
    until(&bus, &changed, || {
        in_sync(&books, &sim) && stats.bad_messages().get("malformed") == Some(&1)
    })
    .await;

    // A lost change shows as a top-of-book mismatch on the next one: re-fetched
    // by REST. The window's cheap NO ask is lost; the same window again moves
    // only sizes, so the NO frame that follows names a best ask we never saw.
    sim.inject(support::venue_event(EventKind::Gap, Venue::Polymarket));
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.05"));
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.05"));
    until(&bus, &changed, || {
        in_sync(&books, &sim) && stats.resyncs.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;

    // A dropped connection: stale, reconnect, resubscribe, fresh books.
    sim.inject(support::venue_event(
        EventKind::Disconnect,
        Venue::Polymarket,
    ));
    feed_status(&mut status, FeedStatus::Reconnecting).await;
    feed_status(&mut status, FeedStatus::Connected).await;
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.06"));
    until(&bus, &changed, || {
        in_sync(&books, &sim)
            && !books
                .get(&PairId("fed".into()))
                .unwrap()
                .state()
                .polymarket
                .stale
    })
    .await;
    assert_eq!(
        stats.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, feed).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_size_change_is_kept_for_the_next_order() {
    use doubletime::domain::Outcome;
    let pair = support::pair("fed");
    let books = Arc::new(BookStore::new());
    let entry = books.add(pair.clone(), PairFees::default(), Size::whole(5));
    assert_eq!(
        entry.polymarket_tick(Outcome::Yes),
        rust_decimal_macros::dec!(0.01)
    );
    let bus = Arc::new(Bus::default());
    let changed = bus.books.subscribe();
    let mut status = bus.status.subscribe();
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    let writer = BookWriter::new(
        Venue::Polymarket,
        books.clone(),
        bus.clone(),
        Arc::new(FeedStats::default()),
    );
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let cfg = MarketFeedConfig::new(
        sim.polymarket_ws_url.clone(),
        sim.polymarket_rest_url.clone(),
        vec![pair.clone()],
    );
    tokio::spawn(run_market_feed(cfg, writer, books.clone(), None, shutdown));
    feed_status(&mut status, FeedStatus::Connected).await;
    until(&bus, &changed, || in_sync(&books, &sim)).await;

    // The venue moves the market to a 0.001 tick, then the books move.
    sim.inject(doubletime::sim::ScenarioEvent {
        pair: Some("fed".into()),
        size: Some(rust_decimal_macros::dec!(0.001)),
        venue: Some(Venue::Polymarket),
        ..support::venue_event(EventKind::TickSize, Venue::Polymarket)
    });
    sim.inject(support::window("fed", ArbDirection::KalshiYes, "0.04"));
    until(&bus, &changed, || {
        entry.polymarket_tick(Outcome::Yes) == rust_decimal_macros::dec!(0.001)
            && entry.polymarket_tick(Outcome::No) == rust_decimal_macros::dec!(0.001)
    })
    .await;
}

//! Our Kalshi fills over the private `fill` channel: the signed feed subscribes
//! to `fill`, the simulator pushes a message for every fill its matcher makes,
//! and the feed publishes them as domain fills on the broadcast channel it was
//! given — also after a dropped connection.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use doubletime::books::BookStore;
use doubletime::bus::{Bus, StatusEvent};
use doubletime::domain::events::FeedStatus;
use doubletime::domain::{Action, Outcome, PairFees, Size, TimeInForce, Usd, Venue};
use doubletime::sim::{EventKind, SimHandle};
use doubletime::venues::feed::{BookWriter, FeedStats};
use doubletime::venues::kalshi::rest::KalshiRest;
use doubletime::venues::kalshi::ws::{FILLS_SUBSCRIBED, OrderbookFeedConfig, run_orderbook_feed};
use doubletime::venues::kalshi::{KalshiFillEvent, KalshiSigner};
use rust_decimal_macros::dec;
use support::{WAIT, p};
use tokio::sync::broadcast;

const KEY_ID: &str = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c";

async fn signed_sim(public: &str) -> SimHandle {
    let sim = support::signed_sim(&[support::pair("fed")], 3, public).await;
    sim.replace_books(0, support::order_books()).await;
    sim
}

async fn fills_subscribed(rx: &mut doubletime::bus::BroadcastReceiver<StatusEvent>) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(StatusEvent::Feed(f)) = rx.recv().await
                && f.venue == Venue::Kalshi
                && f.status == FeedStatus::Connected
                && f.detail == FILLS_SUBSCRIBED
            {
                return;
            }
        }
    })
    .await
    .expect("fill channel never subscribed");
}

async fn next_fill(rx: &mut broadcast::Receiver<KalshiFillEvent>) -> KalshiFillEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no fill pushed")
        .expect("fill channel closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_arrive_as_domain_fills_and_survive_a_reconnect() {
    let (private, public) = support::rsa_pems();
    let sim = signed_sim(&public).await;
    let signer = Arc::new(KalshiSigner::from_pem(KEY_ID, &private, Path::new("test")).unwrap());
    let rest = KalshiRest::new(&sim.kalshi_rest_url, Some(signer.clone())).unwrap();

    let pair = support::pair("fed");
    let books = Arc::new(BookStore::new());
    books.add(pair.clone(), PairFees::default(), Size::whole(5));
    let bus = Arc::new(Bus::default());
    let mut status = bus.status.subscribe();
    let (fills_tx, mut fills) = broadcast::channel(64);
    let mut cfg = OrderbookFeedConfig::new(sim.kalshi_ws_url.clone(), vec![pair], Some(signer))
        .with_fills(fills_tx);
    cfg.backoff_base = Duration::from_millis(20);
    let writer = BookWriter::new(
        Venue::Kalshi,
        books,
        bus.clone(),
        Arc::new(FeedStats::default()),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let feed = tokio::spawn(run_orderbook_feed(cfg, writer, None, shutdown));
    fills_subscribed(&mut status).await;

    // Buy 15 YES at ≤ 0.46: two levels (NO bids 0.55×10, 0.54×20) → two fills.
    let o = support::order(
        Venue::Kalshi,
        "leg-yes",
        Outcome::Yes,
        "0.46",
        15,
        TimeInForce::FillOrKill,
    );
    let r = rest.create_order(&o, "KX-fed").await.unwrap();
    let a = next_fill(&mut fills).await;
    let b = next_fill(&mut fills).await;
    for f in [&a, &b] {
        assert_eq!(f.order_id, r.order_id);
        assert_eq!(f.client_order_id.as_deref(), Some("leg-yes"));
        assert_eq!(f.fill.client_order_id, "leg-yes");
        assert_eq!((f.fill.outcome, f.fill.action), (Outcome::Yes, Action::Buy));
        assert_eq!(f.fill.venue, Venue::Kalshi);
        assert_eq!(f.ticker, "KX-fed");
    }
    assert_ne!(a.trade_id, b.trade_id);
    assert_eq!((a.fill.price, a.fill.size), (p("0.45"), Size::whole(10)));
    assert_eq!((b.fill.price, b.fill.size), (p("0.46"), Size::whole(5)));
    // ceil_to_cent(0.07 × 10 × 0.45 × 0.55) = 0.18; 0.07 × 5 × 0.46 × 0.54 → 0.09.
    assert_eq!(a.fill.fee, Usd::new(dec!(0.18)));
    assert_eq!(b.fill.fee, Usd::new(dec!(0.09)));
    assert_eq!(b.post_position, Some(dec!(15)));
    // The REST fills of the order say the same.
    let rest_fills = rest.fills(&r.order_id).await.unwrap();
    assert_eq!(rest_fills.len(), 2);
    assert_eq!(
        rest_fills
            .iter()
            .map(|f| f.fill_id.clone())
            .collect::<Vec<_>>(),
        vec![a.trade_id.clone(), b.trade_id.clone()]
    );

    // Dropped: the new connection subscribes to `fill` again.
    sim.inject(support::venue_event(EventKind::Disconnect, Venue::Kalshi));
    fills_subscribed(&mut status).await;
    // (An injected event also steps the random books: put the exact ones back.)
    sim.replace_books(0, support::order_books()).await;
    // Buy 5 NO at ≤ 0.60 = an ask at YES 0.40, taking the YES bid 0.40.
    let o = support::order(
        Venue::Kalshi,
        "leg-no",
        Outcome::No,
        "0.60",
        5,
        TimeInForce::FillOrKill,
    );
    rest.create_order(&o, "KX-fed").await.unwrap();
    let c = next_fill(&mut fills).await;
    // Kalshi nets positions: buying NO while holding 15 YES sells 5 of them.
    assert_eq!(
        (c.fill.outcome, c.fill.action),
        (Outcome::Yes, Action::Sell)
    );
    assert_eq!((c.fill.price, c.yes_price), (p("0.40"), p("0.40")));
    assert_eq!(c.fill.size, Size::whole(5));
    assert_eq!(c.post_position, Some(dec!(10)));
    assert_eq!(c.fill.client_order_id, "leg-no");

    // A refused order fills nothing and pushes nothing.
    let o = support::order(
        Venue::Kalshi,
        "leg-big",
        Outcome::Yes,
        "0.46",
        500,
        TimeInForce::FillOrKill,
    );
    assert!(rest.create_order(&o, "KX-fed").await.is_err());
    assert!(fills.try_recv().is_err());

    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, feed).await.unwrap().unwrap();
}

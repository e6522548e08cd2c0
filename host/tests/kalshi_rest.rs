//! Kalshi REST reads beyond orders, against the simulator: a series' fee type
//! and multiplier and the scheduled fee changes (§1.5, §1.8), and our orders
//! looked up by venue id or by our `client_order_id` (crash reconciliation).

mod support;

use std::path::Path;
use std::sync::Arc;

use doubletime::domain::{KalshiFeeType, KalshiFees, Outcome, TimeInForce, Venue};
use doubletime::sim::accounts::SimFeeChange;
use doubletime::venues::kalshi::messages::{OrderStatus, SeriesFeeType};
use doubletime::venues::kalshi::rest::{KalshiRest, OrderQuery};
use doubletime::venues::kalshi::{KalshiError, KalshiSigner};
use rust_decimal_macros::dec;

#[tokio::test]
async fn series_fee_info_and_scheduled_fee_changes_are_typed() {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    let fees = KalshiFees {
        multiplier: dec!(0.5),
        fee_type: KalshiFeeType::QuadraticWithMakerFees,
        ..KalshiFees::default()
    };
    sim.set_kalshi_fees(fees);
    let rest = KalshiRest::new(&sim.kalshi_rest_url, None).unwrap();

    // The simulated ticker "KX-fed" belongs to series "KX".
    let s = rest.series("KX").await.unwrap();
    assert_eq!(s.ticker, "KX");
    assert_eq!(s.fee_type, SeriesFeeType::QuadraticWithMakerFees);
    assert_eq!(s.fee_multiplier, dec!(0.5));
    assert_eq!(s.fee_type.fees(s.fee_multiplier), Some(fees));
    let e = rest.series("NOPE").await.unwrap_err();
    assert!(matches!(e, KalshiError::Other { status: 404, .. }), "{e:?}");

    assert!(
        rest.series_fee_changes(None, false)
            .await
            .unwrap()
            .is_empty()
    );
    sim.add_kalshi_fee_change(SimFeeChange {
        id: "chg-1".into(),
        series_ticker: "KX".into(),
        fee_type: "quadratic".into(),
        fee_multiplier: dec!(1),
        scheduled_ts: "2026-12-01T00:00:00Z".into(),
    });
    sim.add_kalshi_fee_change(SimFeeChange {
        id: "chg-2".into(),
        series_ticker: "KXOTHER".into(),
        fee_type: "flat".into(),
        fee_multiplier: dec!(0.25),
        scheduled_ts: "2026-12-02T00:00:00Z".into(),
    });
    let all = rest.series_fee_changes(None, false).await.unwrap();
    assert_eq!(all.len(), 2);
    let ours = rest.series_fee_changes(Some("KX"), false).await.unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(
        (
            ours[0].id.as_str(),
            &ours[0].fee_type,
            ours[0].fee_multiplier
        ),
        ("chg-1", &SeriesFeeType::Quadratic, dec!(1))
    );
    assert_eq!(ours[0].scheduled_ts, "2026-12-01T00:00:00Z");
    // A fee type the domain does not model is not turned into a guess.
    assert_eq!(all[1].fee_type, SeriesFeeType::Flat);
    assert_eq!(all[1].fee_type.fees(all[1].fee_multiplier), None);
}

#[tokio::test]
async fn orders_are_found_by_venue_id_and_by_client_order_id() {
    let (private, public) = support::rsa_pems();
    let pair = support::pair("fed");
    let sim = support::signed_sim(std::slice::from_ref(&pair), 3, &public).await;
    sim.replace_books(0, support::order_books()).await;
    let signer = Arc::new(
        KalshiSigner::from_pem(
            "a952bcbe-ec3b-4b5b-b8f9-11dae589608c",
            &private,
            Path::new("test"),
        )
        .unwrap(),
    );
    let rest = KalshiRest::new(&sim.kalshi_rest_url, Some(signer)).unwrap();

    let fok = leg_1();
    let r1 = rest.create_order(&fok, "KX-fed").await.unwrap();
    // An IOC that finds nothing at 0.30 is still an order the venue keeps.
    let ioc = support::order(
        Venue::Kalshi,
        "leg-2",
        Outcome::Yes,
        "0.30",
        5,
        TimeInForce::ImmediateOrCancel,
    );
    let r2 = rest.create_order(&ioc, "KX-fed").await.unwrap();

    let by_ticker = OrderQuery {
        ticker: Some("KX-fed".into()),
        ..OrderQuery::default()
    };
    let all = rest.orders(&by_ticker).await.unwrap();
    assert_eq!(all.len(), 2);
    let one = rest
        .order_by_client_order_id("leg-1", &by_ticker)
        .await
        .unwrap()
        .expect("leg-1");
    assert_eq!(one.order_id, r1.order_id);
    assert_eq!(one.status, OrderStatus::Executed);
    assert_eq!(one.fill_count_fp, Some(dec!(10)));
    assert_eq!(one.yes_price_dollars, Some(support::p("0.45")));
    let two = rest.order(&r2.order_id).await.unwrap().expect("leg-2");
    assert_eq!(two.client_order_id.as_deref(), Some("leg-2"));
    assert_eq!(two.fill_count_fp, Some(dec!(0)));
    assert!(
        rest.order_by_client_order_id("never-sent", &by_ticker)
            .await
            .unwrap()
            .is_none()
    );
    assert!(rest.order("no-such-order").await.unwrap().is_none());
    let other_market = OrderQuery {
        ticker: Some("KX-other".into()),
        ..OrderQuery::default()
    };
    assert!(rest.orders(&other_market).await.unwrap().is_empty());
}

/// Orders and balance reads go with signatures made ahead of time (2.5 ms of
/// RSA each, off the runtime), and the venue's signature check accepts them.
#[tokio::test]
async fn orders_and_balance_reads_use_signatures_made_ahead() {
    let (private, public) = support::rsa_pems();
    let pair = support::pair("fed");
    let sim = support::signed_sim(std::slice::from_ref(&pair), 3, &public).await;
    sim.replace_books(0, support::order_books()).await;
    let signer = Arc::new(KalshiSigner::from_pem("key-id", &private, Path::new("test")).unwrap());
    let rest = KalshiRest::new(&sim.kalshi_rest_url, Some(signer))
        .unwrap()
        .with_presigned_orders(2, std::time::Duration::from_secs(30));
    tokio::time::timeout(std::time::Duration::from_secs(60), rest.presigned_filled())
        .await
        .expect("signatures made within 60 s");
    assert_eq!((rest.presigned_ready(), rest.balance_reads_ready()), (2, 2));

    // Each finds a signature ready (none misses), so none signs inline; which
    // presigner serves which request is checked in `rest.rs`'s unit tests.
    rest.balance()
        .await
        .expect("a presigned balance read is accepted");
    let fok = leg_1();
    rest.create_order(&fok, "KX-fed")
        .await
        .expect("a presigned order is accepted");
    assert_eq!(
        (
            rest.orders_signed_inline(),
            rest.balance_reads_signed_inline()
        ),
        (0, 0)
    );
}

/// A fill-or-kill buy of 10 YES at 0.45, which the order books fill.
fn leg_1() -> doubletime::domain::Order {
    support::order(
        Venue::Kalshi,
        "leg-1",
        Outcome::Yes,
        "0.45",
        10,
        TimeInForce::FillOrKill,
    )
}

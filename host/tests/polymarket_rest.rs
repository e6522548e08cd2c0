//! Polymarket REST beyond orders, against the simulator: API credentials
//! created then derived over L1 (`ClobAuth`) and accepted for L2, market info
//! from `/clob-markets`, and an exchange version change answered by reading
//! `/version` and re-signing the refused order once.

mod support;

use doubletime::config::Secret;
use doubletime::domain::{Outcome, Size, TimeInForce, Usd, Venue};
use doubletime::venues::polymarket::rest::PolymarketRest;
use doubletime::venues::polymarket::{
    ApiCreds, ExchangeVersion, PolySigner, PolymarketError, TickSize,
};
use rust_decimal_macros::dec;

const WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// Another well-known Anvil key, for a wallet the venue has not seen.
const OTHER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn wallet(key: &str) -> PolySigner {
    PolySigner::from_private_key(&Secret::new(key)).unwrap()
}

#[tokio::test]
async fn api_keys_are_created_then_derived_over_l1_and_accepted_for_l2() {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    let l1 = PolymarketRest::new(&sim.polymarket_rest_url, None, Some(wallet(WALLET_KEY))).unwrap();

    let created = l1.create_api_key(0).await.unwrap();
    assert!(!created.api_key.is_empty());
    // One key per nonce: a second create is refused, derive returns it.
    assert!(l1.create_api_key(0).await.is_err());
    assert_eq!(l1.derive_api_key(0).await.unwrap(), created);
    assert_eq!(l1.create_or_derive_api_key(0).await.unwrap(), created);
    assert!(l1.derive_api_key(1).await.is_err());
    // Another wallet has no key of its own.
    let other =
        PolymarketRest::new(&sim.polymarket_rest_url, None, Some(wallet(OTHER_KEY))).unwrap();
    assert!(other.derive_api_key(0).await.is_err());

    // The created credentials work for L2; made-up ones are refused now.
    let l2 = l1.with_creds(created);
    assert_eq!(l2.balance().await.unwrap(), Usd::new(dec!(1000)));
    let forged = PolymarketRest::new(
        &sim.polymarket_rest_url,
        Some(ApiCreds::new(
            "not-a-key",
            Secret::new("c2VjcmV0"),
            Secret::new("p"),
        )),
        Some(wallet(WALLET_KEY)),
    )
    .unwrap();
    let e = forged.balance().await.unwrap_err();
    assert!(
        matches!(e, PolymarketError::Auth { status: 401, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn market_info_names_tokens_tick_size_minimum_and_fees() {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    sim.set_polymarket_fees(doubletime::domain::PolymarketFees {
        rate: dec!(0.04),
        exponent: 1,
    });
    let rest = PolymarketRest::new(&sim.polymarket_rest_url, None, None).unwrap();
    let m = rest
        .market_info(&pair.polymarket_condition_id)
        .await
        .unwrap();
    assert_eq!(m.condition_id, pair.polymarket_condition_id);
    assert_eq!(
        (m.yes_token, m.no_token),
        (pair.polymarket_yes_token, pair.polymarket_no_token)
    );
    assert_eq!(m.tick, TickSize::Hundredth);
    assert!(!m.neg_risk);
    assert_eq!(m.min_order_size, dec!(5));
    assert_eq!((m.fees.rate, m.fees.exponent), (dec!(0.04), 1));
    assert!(m.accepting_orders);
    let e = rest.market_info("0xnope").await.unwrap_err();
    assert!(matches!(e, PolymarketError::NotFound { .. }), "{e:?}");
}

/// A simulator with books to trade against, and a client with API keys the
/// venue knows, synchronised on the exchange version (V2).
async fn trading_client() -> (
    doubletime::domain::MarketPair,
    doubletime::sim::SimHandle,
    PolymarketRest,
) {
    let pair = support::pair("fed");
    let sim = support::quiet_sim(std::slice::from_ref(&pair)).await;
    sim.replace_books(0, support::order_books()).await;
    let creds = ApiCreds::new(
        "0f3b5f2c-7d0e-4a55-9a3e-3c0a4b1d2e6f",
        Secret::new("c2ltdWxhdGVkLWNsb2ItYXBpLXNlY3JldC0wMTIzNDU2Nzg="),
        Secret::new("passphrase-1"),
    );
    sim.set_polymarket_creds(creds.clone());
    let rest = PolymarketRest::new(
        &sim.polymarket_rest_url,
        Some(creds),
        Some(wallet(WALLET_KEY)),
    )
    .unwrap();
    assert_eq!(rest.sync_version().await.unwrap(), ExchangeVersion::V2);
    (pair, sim, rest)
}

#[tokio::test]
async fn an_order_version_change_is_followed_by_one_re_signed_order() {
    let (pair, sim, rest) = trading_client().await;

    // The exchange moves to V3: our V2-signed order is refused, then re-signed.
    sim.set_polymarket_version(3);
    let o = support::order(
        Venue::Polymarket,
        "leg",
        Outcome::Yes,
        "0.45",
        10,
        TimeInForce::FillOrKill,
    );
    let r = rest
        .post_order(&o, &pair.polymarket_yes_token, TickSize::Hundredth, false)
        .await
        .unwrap();
    assert_eq!(r.filled, Size::whole(10));
    assert_eq!(rest.exchange_version(), ExchangeVersion::V3);
    // Exactly one order reached the book.
    assert_eq!(sim.fills(Venue::Polymarket).len(), 1);
    assert_eq!(
        sim.position(Venue::Polymarket, pair.polymarket_yes_token.as_str()),
        dec!(10)
    );
}

#[tokio::test]
async fn an_order_signed_ahead_is_signed_again_if_the_version_moved_before_it_left() {
    let (pair, sim, rest) = trading_client().await;
    let order = |leg: &str| {
        support::order(
            Venue::Polymarket,
            leg,
            Outcome::Yes,
            "0.45",
            5,
            TimeInForce::FillOrKill,
        )
    };
    let token = &pair.polymarket_yes_token;

    // Signed, then posted as it is.
    let first = order("first");
    let signed = rest
        .sign_order(&first, token, TickSize::Hundredth, false)
        .unwrap();
    let r = rest.post_signed_order(&first, signed).await.unwrap();
    assert_eq!(r.filled, Size::whole(5));

    // A signature is for its order only: posting it for another is refused unsent.
    let signed = rest
        .sign_order(&order("a"), token, TickSize::Hundredth, false)
        .unwrap();
    let e = rest
        .post_signed_order(&order("b"), signed)
        .await
        .unwrap_err();
    assert!(matches!(e, PolymarketError::InvalidRequest { .. }), "{e:?}");
    assert_eq!(sim.fills(Venue::Polymarket).len(), 1, "nothing sent");

    // Signed for V2; the host learns of V3 before sending: signed again, filled.
    let second = order("second");
    let signed = rest
        .sign_order(&second, token, TickSize::Hundredth, false)
        .unwrap();
    sim.set_polymarket_version(3);
    assert_eq!(rest.sync_version().await.unwrap(), ExchangeVersion::V3);
    let r = rest.post_signed_order(&second, signed).await.unwrap();
    assert_eq!(r.filled, Size::whole(5));
    assert_eq!(sim.fills(Venue::Polymarket).len(), 2);
    assert_eq!(sim.position(Venue::Polymarket, token.as_str()), dec!(10));
}

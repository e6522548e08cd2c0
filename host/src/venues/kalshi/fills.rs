//! Our own Kalshi fills from the private `fill` WebSocket channel (PROTOCOLS.md
//! §1.4 "Other channels"), turned into domain [`Fill`]s.
//!
//! The feed publishes one [`KalshiFillEvent`] per fill message on the
//! `tokio::sync::broadcast` channel passed to it
//! ([`OrderbookFeedConfig::with_fills`](super::ws::OrderbookFeedConfig::with_fills)),
//! so the executor and the trade store learn about fills even when an order's
//! HTTP answer was lost. Fill messages quote the YES leg (`yes_price_dollars`);
//! a NO fill's price is `1 − yes` here. Direction comes from `outcome_side` +
//! `book_side` (since 2026-05-06), falling back to the deprecated `side` +
//! `action`.

use crate::domain::{Action, Fill, Outcome, Price, Size, UnixMicros, Usd, Venue};

use super::messages::{BookSide, WsFill};

/// One of our fills as the `fill` channel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KalshiFillEvent {
    /// The domain fill. `fill.client_order_id` is the message's
    /// `client_order_id`, or empty when the message has none (Kalshi sends it
    /// on some payloads only): match on `order_id` then.
    pub fill: Fill,
    /// Kalshi's order id (as in the create-order response).
    pub order_id: String,
    pub client_order_id: Option<String>,
    pub trade_id: String,
    pub ticker: String,
    /// As reported, on the YES leg.
    pub yes_price: Price,
    pub is_taker: bool,
    /// Contracts held after this fill: + YES, − NO (`post_position_fp`).
    pub post_position: Option<rust_decimal::Decimal>,
    pub ts_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("fill {trade_id} says neither outcome_side/book_side nor side/action")]
    NoDirection { trade_id: String },
}

/// The outcome and direction of a fill. V2 quotes the YES leg: a `bid` buys
/// YES or sells NO, an `ask` sells YES or buys NO (§1.6 mapping table).
fn direction(f: &WsFill) -> Option<(Outcome, Action)> {
    match (f.outcome_side, f.book_side) {
        (Some(Outcome::Yes), Some(BookSide::Bid)) => Some((Outcome::Yes, Action::Buy)),
        (Some(Outcome::Yes), Some(BookSide::Ask)) => Some((Outcome::Yes, Action::Sell)),
        (Some(Outcome::No), Some(BookSide::Ask)) => Some((Outcome::No, Action::Buy)),
        (Some(Outcome::No), Some(BookSide::Bid)) => Some((Outcome::No, Action::Sell)),
        _ => Some((f.outcome_side.or(f.side)?, f.action?)),
    }
}

/// A parsed `fill` message as a domain event. `received_at` stamps the fill
/// when the message has no `ts_ms`.
pub fn fill_event(f: &WsFill, received_at: UnixMicros) -> Result<KalshiFillEvent, FillError> {
    let (outcome, action) = direction(f).ok_or_else(|| FillError::NoDirection {
        trade_id: f.trade_id.clone(),
    })?;
    let price = match outcome {
        Outcome::Yes => f.yes_price_dollars,
        Outcome::No => f.yes_price_dollars.complement(),
    };
    let at = f.ts_ms.map(|ms| ms * 1_000).unwrap_or(received_at);
    Ok(KalshiFillEvent {
        fill: Fill {
            client_order_id: f.client_order_id.clone().unwrap_or_default(),
            venue: Venue::Kalshi,
            outcome,
            action,
            price,
            size: f.count_fp,
            fee: f.fee_cost.unwrap_or(Usd::ZERO),
            at,
        },
        order_id: f.order_id.clone(),
        client_order_id: f.client_order_id.clone(),
        trade_id: f.trade_id.clone(),
        ticker: f.market_ticker.clone(),
        yes_price: f.yes_price_dollars,
        is_taker: f.is_taker,
        post_position: f.post_position_fp,
        ts_ms: f.ts_ms,
    })
}

/// Contracts of a fill, for callers summing fills of one order.
pub fn total_size(events: &[KalshiFillEvent]) -> Size {
    let sum = events.iter().map(|e| e.fill.size.value()).sum();
    Size::new(sum).unwrap_or(Size::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venues::kalshi::messages::{KalshiMessage, parse};
    use rust_decimal_macros::dec;

    fn ws_fill(text: &str) -> WsFill {
        match parse(text).unwrap() {
            KalshiMessage::Fill(f) => f.msg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn documented_fill_is_a_yes_buy_at_the_yes_price() {
        // §1.4 example (legacy side/action only).
        let f = ws_fill(
            r#"{"type": "fill", "sid": 13, "msg": {"trade_id": "d91bc706-ee49-470d-82d8-11418bda6fed", "order_id": "ee587a1c-8b87-4dcf-b721-9f6f790619fa",
             "market_ticker": "HIGHNY-22DEC23-B53.5", "is_taker": true, "side": "yes", "yes_price_dollars": "0.750", "count_fp": "278.00",
             "action": "buy", "ts": 1671899397, "ts_ms": 1671899397000, "post_position_fp": "500.00", "purchased_side": "yes", "subaccount": 3}}"#,
        );
        let e = fill_event(&f, 7).unwrap();
        assert_eq!((e.fill.outcome, e.fill.action), (Outcome::Yes, Action::Buy));
        assert_eq!(e.fill.price.value(), dec!(0.75));
        assert_eq!(e.fill.size.value(), dec!(278));
        assert_eq!(e.fill.fee, Usd::ZERO);
        assert_eq!(e.fill.at, 1_671_899_397_000_000);
        assert_eq!(e.order_id, "ee587a1c-8b87-4dcf-b721-9f6f790619fa");
        assert_eq!(e.trade_id, "d91bc706-ee49-470d-82d8-11418bda6fed");
        assert_eq!(e.client_order_id, None);
        assert_eq!(e.post_position, Some(dec!(500)));
    }

    #[test]
    fn an_ask_on_no_buys_no_at_one_minus_the_yes_price() {
        let f = ws_fill(
            r#"{"type":"fill","sid":2,"msg":{"trade_id":"t","order_id":"o","market_ticker":"KX","is_taker":true,
              "yes_price_dollars":"0.5600","count_fp":"10.00","outcome_side":"no","book_side":"ask",
              "fee_cost":"0.1800","client_order_id":"leg-1"}}"#,
        );
        let e = fill_event(&f, 99).unwrap();
        assert_eq!((e.fill.outcome, e.fill.action), (Outcome::No, Action::Buy));
        assert_eq!(e.fill.price.value(), dec!(0.44));
        assert_eq!(e.yes_price.value(), dec!(0.56));
        assert_eq!(e.fill.fee, Usd::new(dec!(0.18)));
        assert_eq!(e.fill.client_order_id, "leg-1");
        assert_eq!(e.fill.at, 99);
        assert_eq!(total_size(&[e.clone(), e]), Size::whole(20));
    }

    #[test]
    fn a_fill_without_direction_is_refused() {
        let f = ws_fill(
            r#"{"type":"fill","sid":2,"msg":{"trade_id":"t","order_id":"o","market_ticker":"KX","is_taker":true,
              "yes_price_dollars":"0.5600","count_fp":"10.00"}}"#,
        );
        assert!(matches!(
            fill_event(&f, 0),
            Err(FillError::NoDirection { .. })
        ));
    }
}

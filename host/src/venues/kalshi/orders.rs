//! Domain orders to Kalshi V2 create-order bodies, and Kalshi's answers back to
//! typed results (PROTOCOLS.md §1.6).
//!
//! The V2 endpoint (`POST /trade-api/v2/portfolio/events/orders`) quotes
//! everything on the YES leg: buying NO at n is *selling* YES (`side: "ask"`) at
//! `1 − n`, and the response's average price is a YES price too. Getting this
//! wrong buys the same side twice (§5 pitfall 2), so the mapping lives in one
//! place and is tested with the documented examples. Counts are never rounded:
//! an order whose size Kalshi cannot express is refused, since a rounded leg
//! would no longer match the other venue's (§5 pitfall 9).

use rust_decimal::Decimal;

use crate::domain::{
    Action, Fill, Order, Outcome, Price, Size, TimeInForce, UnixMicros, Usd, Venue,
};

use super::errors::KalshiError;
use super::messages::{
    BookSide, CreateOrderV2Request, CreateOrderV2Response, SelfTradePrevention, WireTimeInForce,
};

/// Path of the V2 create-order endpoint, as signed (§1.2, §1.5).
pub const CREATE_ORDER_PATH: &str = "/trade-api/v2/portfolio/events/orders";

/// Auto-route by ticker (§1.6 example; §1.9: slower than naming the shard).
pub const AUTO_ROUTE: i32 = -1;

/// Kalshi counts: 0–2 decimals in requests, minimum 0.01 (§1.3).
const COUNT_DECIMALS: u32 = 2;
/// Prices: responses use 4 decimals, requests accept up to 6 (§1.3).
const PRICE_MIN_DECIMALS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order {client_order_id} is for {venue}, not kalshi")]
    WrongVenue {
        client_order_id: String,
        venue: Venue,
    },
    #[error(
        "order {client_order_id}: size {size} needs more than 2 decimals (Kalshi counts are hundredths)"
    )]
    CountPrecision { client_order_id: String, size: Size },
    #[error("order {client_order_id}: size must be at least 0.01")]
    ZeroCount { client_order_id: String },
    #[error("order has an empty client_order_id")]
    EmptyClientOrderId,
    #[error("order {client_order_id}: Kalshi reports {filled} filled for an order of {size}")]
    Overfilled {
        client_order_id: String,
        filled: Size,
        size: Size,
    },
}

/// The YES-leg `side` and `price` of an order (§1.6 mapping table).
pub fn yes_leg_quote(action: Action, outcome: Outcome, limit: Price) -> (BookSide, Price) {
    match (action, outcome) {
        (Action::Buy, Outcome::Yes) => (BookSide::Bid, limit),
        (Action::Sell, Outcome::Yes) => (BookSide::Ask, limit),
        (Action::Buy, Outcome::No) => (BookSide::Ask, limit.complement()),
        (Action::Sell, Outcome::No) => (BookSide::Bid, limit.complement()),
    }
}

/// A price as Kalshi writes it: at least 4 decimals ("0.5600"), up to 6 when needed.
pub fn format_price(price: Price) -> String {
    let mut v = price.value();
    v.rescale(v.scale().max(PRICE_MIN_DECIMALS));
    v.to_string()
}

/// A count as Kalshi writes it ("10.00"), refusing sizes finer than 0.01.
pub fn format_count(size: Size) -> Option<String> {
    let mut v = size.value().normalize();
    if v.scale() > COUNT_DECIMALS {
        return None;
    }
    v.rescale(COUNT_DECIMALS);
    Some(v.to_string())
}

/// The wire time in force, and `expiration_time` (Unix seconds): Kalshi has
/// no GTD of its own, a good-till-canceled order with an expiration is one (§1.6).
fn time_in_force(tif: TimeInForce) -> (WireTimeInForce, Option<u64>) {
    match tif {
        TimeInForce::FillOrKill => (WireTimeInForce::FillOrKill, None),
        TimeInForce::ImmediateOrCancel => (WireTimeInForce::ImmediateOrCancel, None),
        TimeInForce::GoodTillCancelled => (WireTimeInForce::GoodTillCanceled, None),
        TimeInForce::GoodTillDate { until } => (WireTimeInForce::GoodTillCanceled, Some(until)),
    }
}

/// The V2 create-order body for `order` on market `ticker`. `exchange_index` is
/// the market's shard, [`AUTO_ROUTE`], or `None` to leave the field out.
pub fn create_order_request(
    order: &Order,
    ticker: &str,
    exchange_index: Option<i32>,
) -> Result<CreateOrderV2Request, OrderError> {
    let id = &order.client_order_id;
    if id.trim().is_empty() {
        return Err(OrderError::EmptyClientOrderId);
    }
    if order.venue != Venue::Kalshi {
        return Err(OrderError::WrongVenue {
            client_order_id: id.clone(),
            venue: order.venue,
        });
    }
    if order.size.is_zero() {
        return Err(OrderError::ZeroCount {
            client_order_id: id.clone(),
        });
    }
    let count = format_count(order.size).ok_or_else(|| OrderError::CountPrecision {
        client_order_id: id.clone(),
        size: order.size,
    })?;
    let (side, price) = yes_leg_quote(order.action, order.outcome, order.limit);
    let (time_in_force, expiration_time) = time_in_force(order.time_in_force);
    Ok(CreateOrderV2Request {
        ticker: ticker.to_string(),
        client_order_id: id.clone(),
        side,
        count,
        price: format_price(price),
        time_in_force,
        expiration_time,
        // Required by V2; "taker_at_cross" is Kalshi's own example value.
        self_trade_prevention_type: SelfTradePrevention::TakerAtCross,
        post_only: None,
        reduce_only: None,
        subaccount: None,
        exchange_index,
    })
}

/// How much of an immediate order executed. V2 has no `status` field (§1.6);
/// this is derived from `fill_count` against the order's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillStatus {
    Filled,
    PartiallyFilled,
    /// An IOC that found nothing (2xx, `fill_count "0.00"`).
    NotFilled,
}

/// A create-order response in the order's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KalshiOrderResult {
    pub order_id: String,
    pub client_order_id: String,
    pub status: FillStatus,
    pub filled: Size,
    /// Cancelled rest for IOC ("the final state after unfilled contracts are canceled").
    pub remaining: Size,
    /// Average price in the order's outcome: for a NO order, 1 − the YES price Kalshi reports.
    pub average_price: Option<Price>,
    /// As reported: the YES-leg price.
    pub average_yes_price: Option<Price>,
    /// Per contract, as reported (includes Kalshi's fee rounding).
    pub fee_per_contract: Option<Usd>,
    /// `fee_per_contract × filled`. The per-contract figure is itself rounded to
    /// 4 decimals by Kalshi, so reconcile with the fills' `fee_cost`.
    pub fees: Usd,
    pub ts_ms: Option<u64>,
}

impl KalshiOrderResult {
    /// The fill as a domain event, if anything executed.
    pub fn to_fill(&self, order: &Order, at: UnixMicros) -> Option<Fill> {
        if self.filled.is_zero() {
            return None;
        }
        Some(Fill {
            client_order_id: order.client_order_id.clone(),
            venue: Venue::Kalshi,
            outcome: order.outcome,
            action: order.action,
            price: self.average_price.unwrap_or(order.limit),
            size: self.filled,
            fee: self.fees,
            at,
        })
    }
}

/// Reads a 2xx create-order response for `order`.
pub fn order_result(
    order: &Order,
    resp: &CreateOrderV2Response,
) -> Result<KalshiOrderResult, OrderError> {
    let filled = resp.fill_count;
    if filled > order.size {
        return Err(OrderError::Overfilled {
            client_order_id: order.client_order_id.clone(),
            filled,
            size: order.size,
        });
    }
    let status = if filled.is_zero() {
        FillStatus::NotFilled
    } else if filled == order.size {
        FillStatus::Filled
    } else {
        FillStatus::PartiallyFilled
    };
    let average_price = resp.average_fill_price.map(|yes| match order.outcome {
        Outcome::Yes => yes,
        Outcome::No => yes.complement(),
    });
    let fees = resp
        .average_fee_paid
        .map(|f| Usd::new(f.value() * Decimal::from(filled)))
        .unwrap_or(Usd::ZERO);
    Ok(KalshiOrderResult {
        order_id: resp.order_id.clone(),
        client_order_id: resp
            .client_order_id
            .clone()
            .unwrap_or_else(|| order.client_order_id.clone()),
        status,
        filled,
        remaining: resp.remaining_count,
        average_price,
        average_yes_price: resp.average_fill_price,
        fee_per_contract: resp.average_fee_paid,
        fees,
        ts_ms: resp.ts_ms,
    })
}

/// Classifies a create-order HTTP answer: 2xx → the result; anything else → a
/// typed [`KalshiError`]. A 2xx whose body cannot be read is
/// [`KalshiError::UnreadableResponse`]: the order may have executed.
pub fn parse_create_order_response(
    order: &Order,
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> Result<KalshiOrderResult, KalshiError> {
    if !(200..300).contains(&status) {
        return Err(KalshiError::from_http(status, retry_after, body));
    }
    let resp: CreateOrderV2Response =
        serde_json::from_str(body).map_err(|e| KalshiError::UnreadableResponse {
            status,
            detail: e.to_string(),
        })?;
    order_result(order, &resp).map_err(|e| KalshiError::UnreadableResponse {
        status,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PairId;
    use crate::venues::kalshi::messages::tests::fixture;
    use rust_decimal_macros::dec;
    use serde_json::Value;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn order(action: Action, outcome: Outcome, limit: &str, size: &str, tif: TimeInForce) -> Order {
        Order {
            client_order_id: "8c35ecb3-328f-4f52-8c7c-0f4b9862f8d1".into(),
            venue: Venue::Kalshi,
            pair: PairId("fed".into()),
            outcome,
            action,
            limit: p(limit),
            size: Size::parse(size).unwrap(),
            time_in_force: tif,
        }
    }

    fn body(req: &CreateOrderV2Request) -> Value {
        serde_json::to_value(req).unwrap()
    }

    #[test]
    fn buy_no_is_an_ask_at_one_minus_the_price_exactly_as_documented() {
        // §1.6: "buy 10 NO at $0.44".
        let o = order(
            Action::Buy,
            Outcome::No,
            "0.44",
            "10",
            TimeInForce::FillOrKill,
        );
        let req = create_order_request(&o, "KXFED-26MAY-T4.00", Some(AUTO_ROUTE)).unwrap();
        let expected: Value =
            serde_json::from_str(&fixture("rest_create_order_buy_no.json")).unwrap();
        assert_eq!(body(&req), expected);
    }

    #[test]
    fn the_four_intents_map_per_the_table() {
        let cases = [
            (Action::Buy, Outcome::Yes, "bid", "0.4200"),
            (Action::Sell, Outcome::Yes, "ask", "0.4200"),
            (Action::Buy, Outcome::No, "ask", "0.5800"),
            (Action::Sell, Outcome::No, "bid", "0.5800"),
        ];
        for (action, outcome, side, price) in cases {
            let o = order(action, outcome, "0.42", "1", TimeInForce::ImmediateOrCancel);
            let b = body(&create_order_request(&o, "T", None).unwrap());
            assert_eq!(
                (b["side"].as_str(), b["price"].as_str()),
                (Some(side), Some(price)),
                "{action:?} {outcome:?}"
            );
            assert_eq!(b["time_in_force"], "immediate_or_cancel");
            assert!(b.get("exchange_index").is_none());
        }
    }

    #[test]
    fn quick_start_buy_yes_at_one_cent() {
        // Kalshi's quick-start example (its "count": "1" is written "1.00" here;
        // 0–2 decimals are accepted).
        let o = order(
            Action::Buy,
            Outcome::Yes,
            "0.01",
            "1",
            TimeInForce::FillOrKill,
        );
        let b = body(&create_order_request(&o, "T", None).unwrap());
        assert_eq!(b["side"], "bid");
        assert_eq!(b["price"], "0.0100");
        assert_eq!(b["count"], "1.00");
        assert_eq!(b["time_in_force"], "fill_or_kill");
        assert_eq!(b["self_trade_prevention_type"], "taker_at_cross");
    }

    #[test]
    fn resting_orders_are_good_till_canceled_and_gtd_carries_its_expiration() {
        // The quick-start example itself is a GTC buy of 1 YES at 1 cent (§1.6).
        let gtc = order(
            Action::Buy,
            Outcome::Yes,
            "0.01",
            "1",
            TimeInForce::GoodTillCancelled,
        );
        let b = body(&create_order_request(&gtc, "T", None).unwrap());
        assert_eq!(b["time_in_force"], "good_till_canceled");
        assert!(b.get("expiration_time").is_none(), "{b}");
        let gtd = order(
            Action::Buy,
            Outcome::No,
            "0.03",
            "2",
            TimeInForce::GoodTillDate {
                until: 1_790_000_000,
            },
        );
        let b = body(&create_order_request(&gtd, "T", None).unwrap());
        assert_eq!(b["time_in_force"], "good_till_canceled");
        assert_eq!(b["expiration_time"], 1_790_000_000u64);
        // Buying NO at 0.03 is selling YES at 0.97.
        assert_eq!(
            (b["side"].as_str(), b["price"].as_str()),
            (Some("ask"), Some("0.9700"))
        );
    }

    #[test]
    fn prices_keep_subpenny_decimals_and_counts_refuse_them() {
        assert_eq!(format_price(p("0.5")), "0.5000");
        assert_eq!(format_price(p("0.12345")), "0.12345");
        assert_eq!(format_price(p("0.123456")), "0.123456");
        assert_eq!(
            format_count(Size::parse("0.01").unwrap()).as_deref(),
            Some("0.01")
        );
        assert_eq!(
            format_count(Size::parse("12.5").unwrap()).as_deref(),
            Some("12.50")
        );
        assert_eq!(format_count(Size::parse("1.005").unwrap()), None);
        // Buy NO at 0.0025 (a 0.1c tick market) is an ask at 0.9975.
        let o = order(
            Action::Buy,
            Outcome::No,
            "0.0025",
            "3",
            TimeInForce::FillOrKill,
        );
        assert_eq!(
            body(&create_order_request(&o, "T", None).unwrap())["price"],
            "0.9975"
        );
    }

    #[test]
    fn orders_kalshi_cannot_express_are_refused() {
        let mut o = order(
            Action::Buy,
            Outcome::Yes,
            "0.5",
            "1.005",
            TimeInForce::FillOrKill,
        );
        assert!(matches!(
            create_order_request(&o, "T", None),
            Err(OrderError::CountPrecision { .. })
        ));
        o.size = Size::ZERO;
        assert!(matches!(
            create_order_request(&o, "T", None),
            Err(OrderError::ZeroCount { .. })
        ));
        o.size = Size::whole(1);
        o.venue = Venue::Polymarket;
        assert!(matches!(
            create_order_request(&o, "T", None),
            Err(OrderError::WrongVenue { .. })
        ));
        o.venue = Venue::Kalshi;
        o.client_order_id = " ".into();
        assert_eq!(
            create_order_request(&o, "T", None),
            Err(OrderError::EmptyClientOrderId)
        );
    }

    #[test]
    fn documented_response_for_a_yes_buy() {
        let o = order(
            Action::Buy,
            Outcome::Yes,
            "0.60",
            "5",
            TimeInForce::FillOrKill,
        );
        let r =
            parse_create_order_response(&o, 201, None, &fixture("rest_create_order_response.json"))
                .unwrap();
        assert_eq!(r.status, FillStatus::Filled);
        assert_eq!(r.filled, Size::whole(5));
        assert_eq!(r.remaining, Size::ZERO);
        assert_eq!(r.average_price, Some(p("0.58")));
        assert_eq!(r.fee_per_contract.unwrap().value(), dec!(0.0012));
        assert_eq!(r.fees.value(), dec!(0.006));
        assert_eq!(r.client_order_id, "2a0e3fc9-b593-4aa3-96e5-82f7f7566c2a");
        assert_eq!(r.ts_ms, Some(1715793600456));
        let f = r.to_fill(&o, 9).unwrap();
        assert_eq!(
            (f.price, f.size, f.fee.value(), f.at),
            (p("0.58"), Size::whole(5), dec!(0.006), 9)
        );
    }

    #[test]
    fn a_no_buy_reports_its_price_as_one_minus_the_yes_average() {
        let o = order(
            Action::Buy,
            Outcome::No,
            "0.44",
            "10",
            TimeInForce::ImmediateOrCancel,
        );
        let r = parse_create_order_response(
            &o,
            201,
            None,
            r#"{"order_id":"x","fill_count":"4.00","remaining_count":"6.00","average_fill_price":"0.5700","average_fee_paid":"0.0175"}"#,
        )
        .unwrap();
        assert_eq!(r.status, FillStatus::PartiallyFilled);
        assert_eq!(r.average_yes_price, Some(p("0.57")));
        assert_eq!(r.average_price, Some(p("0.43")));
        assert_eq!(r.fees.value(), dec!(0.07));
        assert_eq!(
            r.client_order_id, o.client_order_id,
            "taken from the order when absent"
        );
    }

    #[test]
    fn ioc_that_finds_nothing_is_not_filled_and_fok_kill_is_an_error() {
        let o = order(
            Action::Buy,
            Outcome::Yes,
            "0.44",
            "10",
            TimeInForce::ImmediateOrCancel,
        );
        let r = parse_create_order_response(
            &o,
            201,
            None,
            r#"{"order_id":"x","fill_count":"0.00","remaining_count":"10.00"}"#,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.fees, r.average_price),
            (FillStatus::NotFilled, Usd::ZERO, None)
        );
        assert_eq!(r.to_fill(&o, 0), None);
        let e = parse_create_order_response(&o, 409, None, &fixture("rest_error_fok_409.json"))
            .unwrap_err();
        assert!(matches!(e, KalshiError::FillOrKillNotFillable { .. }));
    }

    #[test]
    fn unreadable_or_impossible_success_bodies_are_flagged_as_unknown_state() {
        let o = order(
            Action::Buy,
            Outcome::Yes,
            "0.44",
            "1",
            TimeInForce::FillOrKill,
        );
        for b in [
            "",
            "{}",
            r#"{"order_id":"x","fill_count":5,"remaining_count":"0.00"}"#,
            r#"{"order_id":"x","fill_count":"2.00","remaining_count":"0.00"}"#,
        ] {
            assert!(
                matches!(
                    parse_create_order_response(&o, 201, None, b),
                    Err(KalshiError::UnreadableResponse { status: 201, .. })
                ),
                "{b}"
            );
        }
    }
}

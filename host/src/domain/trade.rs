//! Opportunities, orders, fills and trades: what the strategy finds and what the
//! executor turns it into.

use serde::{Deserialize, Serialize};

use super::fees::PairFees;
use super::market::{Outcome, PairId, UnixMicros, Venue};
use super::money::{Price, Size, Usd};

/// A buy-both trade: YES on one venue, NO on the other, the same size on each.
/// The host recomputes fees and edge itself; a plugin's own estimate is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opportunity {
    pub pair: PairId,
    /// The plugin that found it.
    pub found_by: String,
    pub buy_yes_on: Venue,
    pub buy_no_on: Venue,
    pub yes_price: Price,
    pub no_price: Price,
    pub size: Size,
    pub yes_fee: Usd,
    pub no_fee: Usd,
    /// What both legs cost before fees.
    pub cost: Usd,
    /// Payout ($1 per contract) minus cost minus both fees, for the whole size.
    pub net_edge: Usd,
    pub net_edge_per_contract: Usd,
    pub found_at: UnixMicros,
}

impl Opportunity {
    #[allow(clippy::too_many_arguments)]
    pub fn price(
        pair: PairId,
        found_by: impl Into<String>,
        buy_yes_on: Venue,
        yes_price: Price,
        no_price: Price,
        size: Size,
        fees: &PairFees,
        found_at: UnixMicros,
    ) -> Opportunity {
        let buy_no_on = buy_yes_on.other();
        let yes_fee = fees.taker_fee(buy_yes_on, yes_price, size);
        let no_fee = fees.taker_fee(buy_no_on, no_price, size);
        let cost = yes_price * size + no_price * size;
        let payout = Usd::new(size.value());
        let net_edge = payout - cost - yes_fee - no_fee;
        Opportunity {
            pair,
            found_by: found_by.into(),
            buy_yes_on,
            buy_no_on,
            yes_price,
            no_price,
            size,
            yes_fee,
            no_fee,
            cost,
            net_edge,
            net_edge_per_contract: net_edge.per(size),
            found_at,
        }
    }

    /// Cash needed on `venue` to place its leg: price × size + worst-case fee.
    pub fn cash_needed(&self, venue: Venue) -> Usd {
        if venue == self.buy_yes_on {
            self.yes_price * self.size + self.yes_fee
        } else {
            self.no_price * self.size + self.no_fee
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Fill completely at once or not at all.
    FillOrKill,
    /// Fill what can be filled now, cancel the rest.
    ImmediateOrCancel,
    /// Fill what can be filled now and rest the rest on the book until
    /// cancelled: a manual order, never a leg (a resting leg is leg risk).
    GoodTillCancelled,
    /// As [`TimeInForce::GoodTillCancelled`], until `until` (Unix seconds);
    /// the venue cancels it then.
    GoodTillDate { until: u64 },
}

impl TimeInForce {
    /// Whether what does not fill at once stays on the book.
    pub fn rests(self) -> bool {
        matches!(
            self,
            TimeInForce::GoodTillCancelled | TimeInForce::GoodTillDate { .. }
        )
    }
}

impl std::str::FromStr for TimeInForce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fok" | "fill_or_kill" => Ok(TimeInForce::FillOrKill),
            "ioc" | "fak" | "immediate_or_cancel" => Ok(TimeInForce::ImmediateOrCancel),
            other => Err(format!("'{other}' is not fok or ioc")),
        }
    }
}

/// An order one leg sends to one venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Derived from the trade id, so a retry can never double an order.
    pub client_order_id: String,
    pub venue: Venue,
    pub pair: PairId,
    pub outcome: Outcome,
    pub action: Action,
    /// Worst price accepted.
    pub limit: Price,
    pub size: Size,
    pub time_in_force: TimeInForce,
}

/// (Part of) an order executed by a venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub client_order_id: String,
    pub venue: Venue,
    pub outcome: Outcome,
    pub action: Action,
    pub price: Price,
    pub size: Size,
    pub fee: Usd,
    pub at: UnixMicros,
}

/// Where one leg of a trade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegStatus {
    Pending,
    Filled,
    PartiallyFilled,
    Rejected,
    Unwound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub order: Order,
    pub status: LegStatus,
    pub fills: Vec<Fill>,
}

impl Leg {
    pub fn filled_size(&self) -> Size {
        self.fills.iter().fold(Size::ZERO, |acc, f| acc + f.size)
    }
    pub fn cost(&self) -> Usd {
        self.fills.iter().map(|f| f.price * f.size + f.fee).sum()
    }
}

/// Two legs executed for one opportunity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub id: String,
    pub opportunity: Opportunity,
    pub yes_leg: Leg,
    pub no_leg: Leg,
}

impl Trade {
    /// Contracts held on both venues: each pays $1 at settlement whatever happens.
    pub fn hedged_size(&self) -> Size {
        self.yes_leg.filled_size().min(self.no_leg.filled_size())
    }

    /// Locked-in profit of the hedged part: $1 per hedged contract minus what both legs cost.
    pub fn locked_pnl(&self) -> Usd {
        Usd::new(self.hedged_size().value()) - self.yes_leg.cost() - self.no_leg.cost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fees::{PairFees, PolymarketFees};
    use rust_decimal_macros::dec;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    #[test]
    fn opportunity_prices_both_fees_and_the_net_edge() {
        let fees = PairFees {
            polymarket: PolymarketFees {
                rate: dec!(0.04),
                exponent: 1,
            },
            ..PairFees::default()
        };
        let o = Opportunity::price(
            PairId("a".into()),
            "buy-both",
            Venue::Kalshi,
            p("0.40"),
            p("0.55"),
            Size::whole(100),
            &fees,
            7,
        );
        assert_eq!(o.buy_no_on, Venue::Polymarket);
        assert_eq!(o.yes_fee.value(), dec!(1.68));
        assert_eq!(o.no_fee.value(), dec!(0.99));
        assert_eq!(o.cost.value(), dec!(95));
        assert_eq!(o.net_edge.value(), dec!(2.33));
        assert_eq!(o.net_edge_per_contract.value(), dec!(0.0233));
        assert_eq!(o.cash_needed(Venue::Kalshi).value(), dec!(41.68));
        assert_eq!(o.cash_needed(Venue::Polymarket).value(), dec!(55.99));
    }

    #[test]
    fn fees_can_eat_the_edge() {
        let fees = PairFees {
            polymarket: PolymarketFees {
                rate: dec!(0.07),
                exponent: 1,
            },
            ..PairFees::default()
        };
        let o = Opportunity::price(
            PairId("a".into()),
            "x",
            Venue::Polymarket,
            p("0.50"),
            p("0.48"),
            Size::whole(100),
            &fees,
            0,
        );
        // cost 98, fees 1.75 + 1.75 (0.07 × 100 × 0.48 × 0.52 = 1.7472 → 1.75) → net −1.50.
        assert_eq!(o.net_edge.value(), dec!(-1.50));
        assert!(!o.net_edge.is_positive());
    }

    #[test]
    fn trade_pnl_counts_only_the_hedged_size() {
        let fees = PairFees::default();
        let o = Opportunity::price(
            PairId("a".into()),
            "x",
            Venue::Kalshi,
            p("0.40"),
            p("0.55"),
            Size::whole(10),
            &fees,
            0,
        );
        let order = |v, outcome| Order {
            client_order_id: format!("t1-{v}"),
            venue: v,
            pair: PairId("a".into()),
            outcome,
            action: Action::Buy,
            limit: p("0.5"),
            size: Size::whole(10),
            time_in_force: TimeInForce::FillOrKill,
        };
        let fill = |v, price: &str, size| Fill {
            client_order_id: String::new(),
            venue: v,
            outcome: Outcome::Yes,
            action: Action::Buy,
            price: p(price),
            size: Size::whole(size),
            fee: Usd::parse("0.10").unwrap(),
            at: 0,
        };
        let t = Trade {
            id: "t1".into(),
            opportunity: o,
            yes_leg: Leg {
                order: order(Venue::Kalshi, Outcome::Yes),
                status: LegStatus::Filled,
                fills: vec![fill(Venue::Kalshi, "0.40", 10)],
            },
            no_leg: Leg {
                order: order(Venue::Polymarket, Outcome::No),
                status: LegStatus::Filled,
                fills: vec![fill(Venue::Polymarket, "0.55", 10)],
            },
        };
        assert_eq!(t.hedged_size(), Size::whole(10));
        // 10 − 4.10 − 5.60 = 0.30
        assert_eq!(t.locked_pnl().value(), dec!(0.30));
    }
}

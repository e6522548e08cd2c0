//! Fee models of both venues (PROTOCOLS.md §1.8 and §2.9).
//!
//! Fees are rounded against us: Kalshi's per-order fee up to the cent (its
//! worst case after the fee accumulator), Polymarket's up to $0.0001.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::market::Venue;
use super::money::{Price, Size, Usd};

/// Kalshi series `fee_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KalshiFeeType {
    /// Takers pay, makers pay nothing.
    #[default]
    Quadratic,
    /// Makers pay too, at the maker rate.
    QuadraticWithMakerFees,
}

/// Kalshi: `fee = ceil_to_cent(rate × multiplier × C × P × (1 − P))` per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KalshiFees {
    /// Taker coefficient, 0.07 since July 2025 (`KALSHI_FEE_RATE`).
    pub taker_rate: Decimal,
    /// Maker coefficient on `quadratic_with_maker_fees` series, 0.0175.
    pub maker_rate: Decimal,
    /// The series' `fee_multiplier` (for example 0.5 on KXINX, 0 on fee-free series).
    pub multiplier: Decimal,
    pub fee_type: KalshiFeeType,
}

impl Default for KalshiFees {
    fn default() -> Self {
        KalshiFees {
            taker_rate: Decimal::new(7, 2),
            maker_rate: Decimal::new(175, 4),
            multiplier: Decimal::ONE,
            fee_type: KalshiFeeType::Quadratic,
        }
    }
}

impl KalshiFees {
    fn quadratic(coefficient: Decimal, price: Price, size: Size) -> Usd {
        let p = price.value();
        Usd::new(coefficient * size.value() * p * (Decimal::ONE - p)).ceil_to(2)
    }

    /// The effective taker coefficient (rate × series multiplier).
    pub fn taker_coefficient(&self) -> Decimal {
        self.taker_rate * self.multiplier
    }

    /// Fee for one order taking liquidity.
    pub fn taker_fee(&self, price: Price, size: Size) -> Usd {
        Self::quadratic(self.taker_coefficient(), price, size)
    }

    /// Fee for one resting order that gets filled.
    pub fn maker_fee(&self, price: Price, size: Size) -> Usd {
        match self.fee_type {
            KalshiFeeType::Quadratic => Usd::ZERO,
            KalshiFeeType::QuadraticWithMakerFees => {
                Self::quadratic(self.maker_rate * self.multiplier, price, size)
            }
        }
    }
}

/// Polymarket: `fee = C × rate × (p × (1 − p))^exponent`, takers only, charged on
/// top of the collateral spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolymarketFees {
    /// The market's `fd.r` (0 on fee-free markets).
    pub rate: Decimal,
    /// The market's `fd.e` (1 on current markets).
    pub exponent: u32,
}

impl Default for PolymarketFees {
    fn default() -> Self {
        PolymarketFees {
            rate: Decimal::ZERO,
            exponent: 1,
        }
    }
}

impl PolymarketFees {
    pub fn taker_fee(&self, price: Price, size: Size) -> Usd {
        let p = price.value();
        let base = p * (Decimal::ONE - p);
        let curve = (0..self.exponent).fold(Decimal::ONE, |acc, _| acc * base);
        Usd::new(size.value() * self.rate * curve).ceil_to(4)
    }

    /// Makers pay nothing on Polymarket.
    pub fn maker_fee(&self, _price: Price, _size: Size) -> Usd {
        Usd::ZERO
    }
}

/// The fees of one market pair on both venues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PairFees {
    pub kalshi: KalshiFees,
    pub polymarket: PolymarketFees,
}

impl PairFees {
    pub fn taker_fee(&self, venue: Venue, price: Price, size: Size) -> Usd {
        match venue {
            Venue::Kalshi => self.kalshi.taker_fee(price, size),
            Venue::Polymarket => self.polymarket.taker_fee(price, size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    #[test]
    fn kalshi_taker_fee_worked_examples() {
        let k = KalshiFees::default();
        // PROTOCOLS.md §1.8: max 1.75c/contract at 0.50 → $0.02 for 1 contract, $1.75 for 100.
        assert_eq!(k.taker_fee(p("0.50"), Size::whole(1)).value(), dec!(0.02));
        assert_eq!(k.taker_fee(p("0.50"), Size::whole(100)).value(), dec!(1.75));
        // 0.07 × 100 × 0.40 × 0.60 = 1.68 exactly.
        assert_eq!(k.taker_fee(p("0.40"), Size::whole(100)).value(), dec!(1.68));
        // 0.07 × 10 × 0.12 × 0.88 = 0.07392 → rounded up to 0.08.
        assert_eq!(k.taker_fee(p("0.12"), Size::whole(10)).value(), dec!(0.08));
        // Fractional contracts: 0.07 × 0.01 × 0.5 × 0.5 = 0.000175 → 0.01.
        assert_eq!(
            k.taker_fee(p("0.5"), Size::parse("0.01").unwrap()).value(),
            dec!(0.01)
        );
    }

    #[test]
    fn kalshi_series_multiplier_scales_the_coefficient() {
        let inx = KalshiFees {
            multiplier: dec!(0.5),
            ..KalshiFees::default()
        };
        assert_eq!(inx.taker_coefficient(), dec!(0.035));
        // 0.035 × 100 × 0.25 = 0.875 → 0.88.
        assert_eq!(
            inx.taker_fee(p("0.50"), Size::whole(100)).value(),
            dec!(0.88)
        );
        let free = KalshiFees {
            multiplier: dec!(0),
            ..KalshiFees::default()
        };
        assert_eq!(free.taker_fee(p("0.50"), Size::whole(100)), Usd::ZERO);
    }

    #[test]
    fn kalshi_maker_fee_only_on_maker_fee_series() {
        let plain = KalshiFees::default();
        assert_eq!(plain.maker_fee(p("0.50"), Size::whole(100)), Usd::ZERO);
        let nba = KalshiFees {
            fee_type: KalshiFeeType::QuadraticWithMakerFees,
            ..KalshiFees::default()
        };
        // 0.0175 × 100 × 0.25 = 0.4375 → 0.44.
        assert_eq!(
            nba.maker_fee(p("0.50"), Size::whole(100)).value(),
            dec!(0.44)
        );
    }

    #[test]
    fn polymarket_fee_worked_examples() {
        // Crypto 0.07, exponent 1: rate/4 per share at 0.5 → 1.75c/share.
        let crypto = PolymarketFees {
            rate: dec!(0.07),
            exponent: 1,
        };
        assert_eq!(
            crypto.taker_fee(p("0.5"), Size::whole(100)).value(),
            dec!(1.75)
        );
        // Politics 0.04: 100 × 0.04 × 0.55 × 0.45 = 0.99.
        let politics = PolymarketFees {
            rate: dec!(0.04),
            exponent: 1,
        };
        assert_eq!(
            politics.taker_fee(p("0.55"), Size::whole(100)).value(),
            dec!(0.99)
        );
        // Early-2026 crypto up/down: rate 0.25, exponent 2: 0.25 × 0.0625 = 0.015625 → 0.0157.
        let updown = PolymarketFees {
            rate: dec!(0.25),
            exponent: 2,
        };
        assert_eq!(
            updown.taker_fee(p("0.5"), Size::whole(1)).value(),
            dec!(0.0157)
        );
        // Fee-free markets (the default) and makers pay nothing.
        assert_eq!(
            PolymarketFees::default().taker_fee(p("0.5"), Size::whole(100)),
            Usd::ZERO
        );
        assert_eq!(crypto.maker_fee(p("0.5"), Size::whole(100)), Usd::ZERO);
    }

    #[test]
    fn pair_fees_pick_the_venue_model() {
        let f = PairFees {
            polymarket: PolymarketFees {
                rate: dec!(0.04),
                exponent: 1,
            },
            ..PairFees::default()
        };
        assert_eq!(
            f.taker_fee(Venue::Kalshi, p("0.4"), Size::whole(100))
                .value(),
            dec!(1.68)
        );
        assert_eq!(
            f.taker_fee(Venue::Polymarket, p("0.55"), Size::whole(100))
                .value(),
            dec!(0.99)
        );
    }
}

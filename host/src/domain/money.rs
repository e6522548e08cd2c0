//! Exact money: prices, sizes and dollar amounts as fixed-point decimals.
//!
//! Newtypes keep a price from being added to a size. Conversions from the venues'
//! strings ("0.4400", "10.00") check range and precision, and the integer units used
//! across the plugin boundary (micro-dollars, hundredths of a contract) live here too.

use std::fmt;
use std::ops::{Add, Mul, Neg, Sub};
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Most decimals either venue uses: Kalshi accepts 6 in requests, Polymarket's
/// base units are 6-dp.
pub const MAX_PRICE_DECIMALS: u32 = 6;
/// Sizes: Kalshi uses hundredths, Polymarket up to 6 dp (its base unit).
pub const MAX_SIZE_DECIMALS: u32 = 6;

/// Why a venue string or integer did not convert to money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not a decimal number")]
    NotANumber(String),
    #[error("price {0} is outside (0, 1)")]
    PriceOutOfRange(Decimal),
    #[error("size {0} is negative")]
    NegativeSize(Decimal),
    #[error("{value} has more than {max} decimals")]
    TooManyDecimals { value: Decimal, max: u32 },
}

fn parse_decimal(s: &str) -> Result<Decimal, MoneyError> {
    let t = s.trim();
    // `Decimal::from_str` accepts things like "1e5" only via from_scientific, which
    // no venue sends; reject anything that is not plain digits, sign and a point.
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
    {
        return Err(MoneyError::NotANumber(s.to_string()));
    }
    Decimal::from_str(t).map_err(|_| MoneyError::NotANumber(s.to_string()))
}

fn check_decimals(value: Decimal, max: u32) -> Result<Decimal, MoneyError> {
    let n = value.normalize();
    if n.scale() > max {
        return Err(MoneyError::TooManyDecimals { value, max });
    }
    Ok(n)
}

/// Price of one contract/share in dollars, strictly inside (0, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Price(Decimal);

impl TryFrom<Decimal> for Price {
    type Error = MoneyError;
    fn try_from(d: Decimal) -> Result<Self, MoneyError> {
        Price::new(d)
    }
}

impl From<Price> for Decimal {
    fn from(p: Price) -> Decimal {
        p.0
    }
}

impl Price {
    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        let v = check_decimals(value, MAX_PRICE_DECIMALS)?;
        if v <= Decimal::ZERO || v >= Decimal::ONE {
            return Err(MoneyError::PriceOutOfRange(value));
        }
        Ok(Price(v))
    }

    /// Parses a venue price string such as "0.4400".
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        Self::new(parse_decimal(s)?)
    }

    /// From micro-dollars (the plugin boundary unit): 440000 -> 0.44.
    pub fn from_micros(micros: u32) -> Result<Self, MoneyError> {
        Self::new(Decimal::new(i64::from(micros), 6))
    }

    /// To micro-dollars; exact because a price has at most 6 decimals.
    pub fn to_micros(self) -> u32 {
        scaled_floor(self.0, 6)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0)
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// The price of the other outcome of a binary contract: 1 - p. Used for
    /// Kalshi's derived asks (a NO bid at p is a YES ask at 1 - p).
    pub fn complement(self) -> Price {
        Price(Decimal::ONE - self.0)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Price {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A number of contracts (Kalshi) or shares (Polymarket), never negative.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Size(Decimal);

impl TryFrom<Decimal> for Size {
    type Error = MoneyError;
    fn try_from(d: Decimal) -> Result<Self, MoneyError> {
        Size::new(d)
    }
}

impl From<Size> for Decimal {
    fn from(s: Size) -> Decimal {
        s.0
    }
}

impl Size {
    pub const ZERO: Size = Size(Decimal::ZERO);

    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        let v = check_decimals(value, MAX_SIZE_DECIMALS)?;
        if v.is_sign_negative() && !v.is_zero() {
            return Err(MoneyError::NegativeSize(value));
        }
        Ok(Size(v))
    }

    /// Parses a venue size string such as "10.00" or "1500".
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        Self::new(parse_decimal(s)?)
    }

    /// From hundredths of a contract (Kalshi's internal unit, the plugin unit).
    pub fn from_hundredths(h: u64) -> Self {
        Size(Decimal::from(h) / Decimal::from(100))
    }

    /// To hundredths, rounded down: the plugin must never see more size than exists.
    pub fn to_hundredths(self) -> u64 {
        scaled_floor(self.0, 2)
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(u64::MAX)
    }

    pub fn whole(n: u64) -> Self {
        Size(Decimal::from(n))
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Rounds down to a multiple of `step` (a buy's size is never rounded up).
    pub fn floor_to(self, step: Size) -> Size {
        if step.is_zero() {
            return self;
        }
        Size(((self.0 / step.0).floor() * step.0).normalize())
    }

    pub fn min(self, other: Size) -> Size {
        if other < self { other } else { self }
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn checked_sub(self, other: Size) -> Option<Size> {
        (self.0 >= other.0).then(|| Size((self.0 - other.0).normalize()))
    }
}

impl Add for Size {
    type Output = Size;
    fn add(self, rhs: Size) -> Size {
        Size((self.0 + rhs.0).normalize())
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A signed change in size at one price level (Kalshi `delta_fp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeDelta(Decimal);

impl SizeDelta {
    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        Ok(SizeDelta(check_decimals(value, MAX_SIZE_DECIMALS)?))
    }
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        Self::new(parse_decimal(s)?)
    }
    pub fn value(self) -> Decimal {
        self.0
    }
}

/// An amount of dollars: costs, fees, edges, P&L. Signed, any precision.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Usd(Decimal);

impl Usd {
    pub const ZERO: Usd = Usd(Decimal::ZERO);

    pub fn new(value: Decimal) -> Self {
        Usd(value.normalize())
    }
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        Ok(Usd::new(parse_decimal(s)?))
    }
    pub fn from_micros(micros: i64) -> Self {
        Usd::new(Decimal::new(micros, 6))
    }
    /// To micro-dollars, rounded toward negative infinity (conservative for an edge).
    pub fn to_micros_floor(self) -> i64 {
        (self.0 * Decimal::from(1_000_000))
            .floor()
            .to_i64()
            .unwrap_or(i64::MIN)
    }
    pub fn value(self) -> Decimal {
        self.0
    }
    /// Rounds up to a multiple of `10^-dp` dollars (fees are rounded against us).
    pub fn ceil_to(self, dp: u32) -> Usd {
        Usd::new(
            self.0
                .round_dp_with_strategy(dp, RoundingStrategy::ToPositiveInfinity),
        )
    }
    /// Divides by a size (per-contract figures); zero size gives zero.
    pub fn per(self, size: Size) -> Usd {
        if size.is_zero() {
            Usd::ZERO
        } else {
            Usd::new(self.0 / size.0)
        }
    }
    /// A per-contract amount times a size.
    pub fn times(self, size: Size) -> Usd {
        Usd::new(self.0 * size.0)
    }

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd::new(self.0 + rhs.0)
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, rhs: Usd) -> Usd {
        Usd::new(self.0 - rhs.0)
    }
}

impl Neg for Usd {
    type Output = Usd;
    fn neg(self) -> Usd {
        Usd(-self.0)
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

/// Price × size is money: the only way the two meet.
impl Mul<Size> for Price {
    type Output = Usd;
    fn mul(self, rhs: Size) -> Usd {
        Usd::new(self.0 * rhs.0)
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0)
    }
}

/// `floor(d × 10^dp)` from the mantissa and scale alone: the conversions into
/// the plugins' integer units run on every evaluation, and a `Decimal` multiply,
/// floor and cast cost ten times this. `None` when it does not fit an `i128`.
pub(crate) fn scaled_floor(d: Decimal, dp: u32) -> Option<i128> {
    let (m, scale) = (d.mantissa(), d.scale());
    if scale <= dp {
        m.checked_mul(10i128.checked_pow(dp - scale)?)
    } else {
        Some(m.div_euclid(10i128.checked_pow(scale - dp)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    proptest::proptest! {
        /// The mantissa shortcut is the Decimal multiply and floor it replaces.
        #[test]
        fn scaled_floor_is_the_decimal_floor(m in -(1i64 << 62)..(1i64 << 62), scale in 0u32..=18, dp in 0u32..=6) {
            let d = Decimal::new(m, scale);
            let want = (d * Decimal::from(10i64.pow(dp))).floor().to_i128();
            proptest::prop_assert_eq!(scaled_floor(d, dp), want);
        }
    }

    #[test]
    fn parses_venue_price_strings() {
        assert_eq!(Price::parse("0.4400").unwrap().value(), dec!(0.44));
        assert_eq!(Price::parse("0.000001").unwrap().to_micros(), 1);
        assert_eq!(
            Price::parse("0.44").unwrap(),
            Price::parse("0.4400").unwrap()
        );
    }

    #[test]
    fn rejects_prices_outside_the_open_unit_interval() {
        for bad in ["0", "0.0000", "1", "1.00", "-0.5", "1.5"] {
            assert!(
                matches!(Price::parse(bad), Err(MoneyError::PriceOutOfRange(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_too_many_decimals_and_garbage() {
        assert!(matches!(
            Price::parse("0.1234567"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            Size::parse("1.0000001"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        for bad in ["", "abc", "1e5", "0x10", "NaN", " "] {
            assert!(
                matches!(Price::parse(bad), Err(MoneyError::NotANumber(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn sizes_are_never_negative() {
        assert_eq!(Size::parse("10.00").unwrap().value(), dec!(10));
        assert!(Size::parse("0").unwrap().is_zero());
        assert!(matches!(
            Size::parse("-1"),
            Err(MoneyError::NegativeSize(_))
        ));
    }

    #[test]
    fn plugin_units_round_trip() {
        assert_eq!(Price::from_micros(440_000).unwrap().value(), dec!(0.44));
        assert!(Price::from_micros(0).is_err());
        assert!(Price::from_micros(1_000_000).is_err());
        assert_eq!(Size::from_hundredths(1001).value(), dec!(10.01));
        assert_eq!(
            Size::parse("10.019").unwrap().to_hundredths(),
            1001,
            "rounded down"
        );
        assert_eq!(Usd::from_micros(-2_330_000).value(), dec!(-2.33));
    }

    #[test]
    fn size_floors_to_step_never_up() {
        let s = Size::parse("10.999").unwrap();
        assert_eq!(
            s.floor_to(Size::parse("0.01").unwrap()).value(),
            dec!(10.99)
        );
        assert_eq!(s.floor_to(Size::whole(5)).value(), dec!(10));
        assert_eq!(s.floor_to(Size::ZERO), s);
    }

    #[test]
    fn money_arithmetic_is_exact() {
        let cost = Price::parse("0.1").unwrap() * Size::whole(3);
        assert_eq!(cost.value(), dec!(0.3));
        assert_eq!((cost - Usd::parse("0.3").unwrap()), Usd::ZERO);
        assert_eq!(
            Usd::parse("0.01001").unwrap().ceil_to(2).value(),
            dec!(0.02)
        );
        assert_eq!(
            Usd::parse("-0.019").unwrap().ceil_to(2).value(),
            dec!(-0.01)
        );
        assert_eq!(
            Usd::parse("1").unwrap().per(Size::whole(4)).value(),
            dec!(0.25)
        );
        assert_eq!(Price::parse("0.3").unwrap().complement().value(), dec!(0.7));
    }
}

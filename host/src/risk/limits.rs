//! The operator's risk limits: what the gate allows, with the defaults a cautious
//! trader starts a new buy-both book with.
//!
//! Dollars are [`Usd`] (exact decimals, sent and read as strings such as
//! `"0.01"`), contracts are a [`Size`], times are milliseconds.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::{Size, Usd};

/// Limits the gate applies to every opportunity. Replaced whole by `PUT /risk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    /// Net profit per contract after both fees (MIN_PROFIT_THRESHOLD). Default $0.01:
    /// a cent is about the smallest edge that survives a one-tick slip on one leg.
    pub min_profit_per_contract: Usd,
    /// Net profit of the whole trade. Default $0.50: below that the leg risk
    /// (one side filling, the other not) is not paid for.
    pub min_profit_per_trade: Usd,
    /// Largest size of one trade, contracts. Default 250: about what both venues
    /// show at the top of a liquid book, so a fill-or-kill leg is likely to fill.
    pub max_contracts_per_trade: Size,
    /// Cash committed to one market (held positions plus the trade in flight),
    /// dollars. Default $500: one mis-matched settlement must not hurt much.
    pub max_exposure_per_market: Usd,
    /// Cash committed across all markets, dollars. Default $2,500.
    pub max_total_exposure: Usd,
    /// Oldest book (either venue) a trade may be priced on, milliseconds. Default
    /// 5,000: the feeds flag gaps and silence themselves; this guards a feed that
    /// is connected but has not confirmed a price for a while.
    pub max_book_age_ms: u64,
    /// Realised loss today (UTC) after which no new trade is opened, dollars (a
    /// positive number). Default $100.
    pub daily_loss_limit: Usd,
    /// Pause on a market after one of its legs failed, milliseconds. Default
    /// 60,000: a failed leg usually means the book moved or the venue is unwell.
    pub cooldown_after_leg_failure_ms: u64,
    /// Balance each venue needs for a new trade (MINIMUM_WALLET_BALANCE).
    pub minimum_balance: Usd,
    /// Balance below which trading stops until an operator resumes it
    /// (SHUTDOWN_BALANCE).
    pub shutdown_balance: Usd,
}

impl Default for RiskLimits {
    fn default() -> Self {
        RiskLimits {
            min_profit_per_contract: Usd::new(Decimal::new(1, 2)),
            min_profit_per_trade: Usd::new(Decimal::new(50, 2)),
            max_contracts_per_trade: Size::whole(250),
            max_exposure_per_market: Usd::new(Decimal::from(500)),
            max_total_exposure: Usd::new(Decimal::from(2_500)),
            max_book_age_ms: 5_000,
            daily_loss_limit: Usd::new(Decimal::from(100)),
            cooldown_after_leg_failure_ms: 60_000,
            minimum_balance: Usd::ZERO,
            shutdown_balance: Usd::ZERO,
        }
    }
}

/// A limit that makes no sense; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadLimit {
    pub field: &'static str,
    pub message: String,
}

impl RiskLimits {
    /// The defaults, with the thresholds the configuration sets.
    pub fn from_config(config: &Config) -> Self {
        RiskLimits {
            min_profit_per_contract: Usd::new(config.min_profit_threshold),
            minimum_balance: Usd::new(config.minimum_wallet_balance),
            shutdown_balance: Usd::new(config.shutdown_balance),
            ..RiskLimits::default()
        }
    }

    /// Reads limits from a JSON object (as `PUT /risk` sends them), naming the
    /// field that is missing, unknown or of the wrong kind, then validates them.
    pub fn from_json(value: serde_json::Value) -> Result<Self, BadLimit> {
        const FIELDS: [&str; 10] = [
            "min_profit_per_contract",
            "min_profit_per_trade",
            "max_contracts_per_trade",
            "max_exposure_per_market",
            "max_total_exposure",
            "max_book_age_ms",
            "daily_loss_limit",
            "cooldown_after_leg_failure_ms",
            "minimum_balance",
            "shutdown_balance",
        ];
        let serde_json::Value::Object(mut object) = value else {
            return Err(BadLimit {
                field: "body",
                message: "must be a JSON object of limits".into(),
            });
        };
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(BadLimit {
                field: "body",
                message: format!(
                    "unknown limit '{}'",
                    unknown.chars().take(80).collect::<String>()
                ),
            });
        }
        fn take<T: serde::de::DeserializeOwned>(
            object: &mut serde_json::Map<String, serde_json::Value>,
            field: &'static str,
        ) -> Result<T, BadLimit> {
            let value = object.remove(field).ok_or_else(|| BadLimit {
                field,
                message: "missing".into(),
            })?;
            serde_json::from_value(value).map_err(|e| BadLimit {
                field,
                message: e.to_string(),
            })
        }
        let limits = RiskLimits {
            min_profit_per_contract: take(&mut object, "min_profit_per_contract")?,
            min_profit_per_trade: take(&mut object, "min_profit_per_trade")?,
            max_contracts_per_trade: take(&mut object, "max_contracts_per_trade")?,
            max_exposure_per_market: take(&mut object, "max_exposure_per_market")?,
            max_total_exposure: take(&mut object, "max_total_exposure")?,
            max_book_age_ms: take(&mut object, "max_book_age_ms")?,
            daily_loss_limit: take(&mut object, "daily_loss_limit")?,
            cooldown_after_leg_failure_ms: take(&mut object, "cooldown_after_leg_failure_ms")?,
            minimum_balance: take(&mut object, "minimum_balance")?,
            shutdown_balance: take(&mut object, "shutdown_balance")?,
        };
        limits.validate()?;
        Ok(limits)
    }

    /// Refuses negative amounts, a zero size or book age, and a minimum balance
    /// below the shutdown balance (trading would start only to stop at once).
    pub fn validate(&self) -> Result<(), BadLimit> {
        let bad = |field, message: &str| {
            Err(BadLimit {
                field,
                message: message.to_string(),
            })
        };
        for (field, value) in [
            ("min_profit_per_contract", self.min_profit_per_contract),
            ("min_profit_per_trade", self.min_profit_per_trade),
            ("max_exposure_per_market", self.max_exposure_per_market),
            ("max_total_exposure", self.max_total_exposure),
            ("daily_loss_limit", self.daily_loss_limit),
            ("minimum_balance", self.minimum_balance),
            ("shutdown_balance", self.shutdown_balance),
        ] {
            if value.value().is_sign_negative() && !value.value().is_zero() {
                return bad(field, "must not be negative");
            }
        }
        if self.max_contracts_per_trade.is_zero() {
            return bad("max_contracts_per_trade", "must be more than 0");
        }
        if self.max_book_age_ms == 0 {
            return bad("max_book_age_ms", "must be more than 0");
        }
        if self.minimum_balance < self.shutdown_balance {
            return bad(
                "minimum_balance",
                "must be at least shutdown_balance, or trading would stop as it starts",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn defaults_are_valid_and_take_the_configured_thresholds() {
        assert_eq!(RiskLimits::default().validate(), Ok(()));
        let config = Config {
            min_profit_threshold: dec!(0.02),
            minimum_wallet_balance: dec!(100),
            shutdown_balance: dec!(25),
            ..Config::default()
        };
        let limits = RiskLimits::from_config(&config);
        assert_eq!(limits.min_profit_per_contract.value(), dec!(0.02));
        assert_eq!(limits.minimum_balance.value(), dec!(100));
        assert_eq!(limits.shutdown_balance.value(), dec!(25));
        assert_eq!(limits.validate(), Ok(()));
    }

    #[test]
    fn negative_zero_and_inverted_limits_are_refused_by_field() {
        let negative = RiskLimits {
            daily_loss_limit: Usd::new(dec!(-1)),
            ..RiskLimits::default()
        };
        assert_eq!(negative.validate().unwrap_err().field, "daily_loss_limit");
        let zero_size = RiskLimits {
            max_contracts_per_trade: Size::ZERO,
            ..RiskLimits::default()
        };
        assert_eq!(
            zero_size.validate().unwrap_err().field,
            "max_contracts_per_trade"
        );
        let zero_age = RiskLimits {
            max_book_age_ms: 0,
            ..RiskLimits::default()
        };
        assert_eq!(zero_age.validate().unwrap_err().field, "max_book_age_ms");
        let inverted = RiskLimits {
            minimum_balance: Usd::new(dec!(10)),
            shutdown_balance: Usd::new(dec!(20)),
            ..RiskLimits::default()
        };
        assert_eq!(inverted.validate().unwrap_err().field, "minimum_balance");
    }

    #[test]
    fn limits_read_dollars_as_decimal_strings_and_refuse_unknown_fields() {
        let json = serde_json::to_value(RiskLimits::default()).unwrap();
        assert_eq!(json["min_profit_per_contract"], "0.01");
        let back: RiskLimits = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, RiskLimits::default());
        assert_eq!(
            RiskLimits::from_json(json.clone()),
            Ok(RiskLimits::default())
        );
        let mut extra = json;
        extra["max_leverage"] = serde_json::json!("2");
        assert!(serde_json::from_value::<RiskLimits>(extra.clone()).is_err());
        assert!(
            RiskLimits::from_json(extra)
                .unwrap_err()
                .message
                .contains("max_leverage")
        );
    }

    #[test]
    fn limits_read_from_json_name_the_bad_field() {
        let good = serde_json::to_value(RiskLimits::default()).unwrap();
        for (field, value) in [
            ("max_total_exposure", serde_json::json!("lots")),
            ("max_contracts_per_trade", serde_json::json!("-1")),
            ("max_book_age_ms", serde_json::json!(-1)),
            ("daily_loss_limit", serde_json::json!("-5")),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            assert_eq!(RiskLimits::from_json(bad).unwrap_err().field, field);
        }
        let mut missing = good;
        missing.as_object_mut().unwrap().remove("shutdown_balance");
        let err = RiskLimits::from_json(missing).unwrap_err();
        assert_eq!(
            (err.field, err.message.as_str()),
            ("shutdown_balance", "missing")
        );
        assert_eq!(
            RiskLimits::from_json(serde_json::json!([1]))
                .unwrap_err()
                .field,
            "body"
        );
    }
}

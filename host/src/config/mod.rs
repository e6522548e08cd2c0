//! Configuration: one TOML file, then `.env`, then the environment (each
//! overriding the one before), validated once at start-up.
//!
//! The environment variable names are the ones users of the original bot know
//! (`APP_ENV`, `KALSHI_DEMO_API_KEY`, `DRY_RUN`, ...). Any problem stops the
//! program with one line naming the setting. Secrets are [`Secret`]s.

mod secret;

pub use secret::Secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{KalshiFeeType, MarketPair, PairId, TokenId};

/// A setting that could not be used. Display is the one line shown to the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("setting {setting}: {message}")]
    Invalid { setting: String, message: String },
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Prod,
    #[default]
    Demo,
}

impl FromStr for AppEnv {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "prod" => Ok(AppEnv::Prod),
            "demo" => Ok(AppEnv::Demo),
            other => Err(format!("'{other}' is not prod or demo")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KalshiConfig {
    pub rest_url: String,
    pub ws_url: String,
    /// Access key id (`KALSHI_{DEMO,PROD}_API_KEY`).
    pub api_key: Secret,
    /// PEM file with the RSA private key (`KALSHI_{DEMO,PROD}_PRIVATE_KEY_PATH`).
    pub private_key_path: Option<PathBuf>,
    /// Taker fee coefficient (`KALSHI_FEE_RATE`), 0.07 since July 2025.
    pub fee_rate: Decimal,
    /// Order signatures are made ahead of time and used once within this many
    /// milliseconds (`KALSHI_PRESIGN_MAX_AGE_MS`; 0 signs every order inline).
    /// Kalshi does not publish how old a timestamp it accepts: keep it short.
    pub presign_max_age_ms: u64,
}

impl Default for KalshiConfig {
    fn default() -> Self {
        KalshiConfig {
            rest_url: "https://demo-api.kalshi.co/trade-api/v2".into(),
            ws_url: "wss://demo-api.kalshi.co/trade-api/ws/v2".into(),
            api_key: Secret::default(),
            private_key_path: None,
            fee_rate: Decimal::new(7, 2),
            presign_max_age_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolymarketConfig {
    pub rest_url: String,
    pub ws_url: String,
    pub api_key: Secret,
    pub wallet_private_key: Secret,
    pub wallet_addr: String,
}

impl Default for PolymarketConfig {
    fn default() -> Self {
        PolymarketConfig {
            rest_url: "https://clob.polymarket.com".into(),
            ws_url: "wss://ws-subscriptions-clob.polymarket.com/ws/market".into(),
            api_key: Secret::default(),
            wallet_private_key: Secret::default(),
            wallet_addr: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    /// Bearer token for mutating endpoints; required to bind a non-loopback address.
    pub token: Secret,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8001)),
            token: Secret::default(),
        }
    }
}

/// One market pair as written in the config file, with its fee parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    pub id: String,
    pub kalshi_ticker: String,
    pub polymarket_condition_id: String,
    pub polymarket_yes_token: String,
    pub polymarket_no_token: String,
    #[serde(default)]
    pub neg_risk: bool,
    #[serde(default)]
    pub kalshi_rules: String,
    #[serde(default)]
    pub polymarket_rules: String,
    /// Set only after checking both venues settle the question the same way.
    #[serde(default)]
    pub rules_match: bool,
    #[serde(default = "one")]
    pub kalshi_fee_multiplier: Decimal,
    #[serde(default)]
    pub kalshi_fee_type: KalshiFeeType,
    #[serde(default)]
    pub polymarket_fee_rate: Decimal,
    #[serde(default = "one_u32")]
    pub polymarket_fee_exponent: u32,
}

fn one() -> Decimal {
    Decimal::ONE
}
fn one_u32() -> u32 {
    1
}

impl MarketConfig {
    pub fn pair(&self) -> Result<MarketPair, ConfigError> {
        let setting = format!("markets[{}]", self.id);
        let token = |s: &str, field: &str| {
            TokenId::new(s).map_err(|e| invalid(&format!("{setting}.{field}"), e.to_string()))
        };
        Ok(MarketPair {
            id: PairId::from(self.id.as_str()),
            kalshi_ticker: self.kalshi_ticker.clone(),
            polymarket_condition_id: self.polymarket_condition_id.clone(),
            polymarket_yes_token: token(&self.polymarket_yes_token, "polymarket_yes_token")?,
            polymarket_no_token: token(&self.polymarket_no_token, "polymarket_no_token")?,
            neg_risk: self.neg_risk,
            kalshi_rules: self.kalshi_rules.clone(),
            polymarket_rules: self.polymarket_rules.clone(),
            rules_match: self.rules_match,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub app_env: AppEnv,
    /// No order leaves the host; would-be trades are recorded as such.
    pub dry_run: bool,
    /// Minimum net profit per contract after fees, dollars.
    pub min_profit_threshold: Decimal,
    /// Trading stops when either venue's balance falls below this (dollars).
    pub shutdown_balance: Decimal,
    /// Trading starts only with at least this on each venue (dollars).
    pub minimum_wallet_balance: Decimal,
    /// `sqlite://path` (default) or `postgres://...`.
    pub database_url: Secret,
    /// This host's name in a shared trade store: it owns the market pairs it
    /// trades, and finds its own unfinished trades after a restart. Keep it
    /// stable across restarts (default: `doubletime-<hostname>`).
    pub host_id: String,
    /// The local file a trade's intent is appended to before its orders
    /// leave (`DOUBLETIME_INTENT_JOURNAL`); the store write then runs beside
    /// the orders. Default: beside a SQLite file (`<file>.intents`), or
    /// `var/<host_id>.intents` with PostgreSQL. `off` writes the store first.
    pub intent_journal: Option<PathBuf>,
    /// How both legs go out: `concurrent` (default) or `sequential` (the less
    /// liquid leg first, the other only after it fills).
    pub leg_mode: crate::execution::LegMode,
    /// Legs as `fill_or_kill` (default) or `immediate_or_cancel` (`DOUBLETIME_LEG_ORDER`).
    pub leg_order: crate::domain::TimeInForce,
    /// Folder of `*.wasm` strategy plugins, watched for changes.
    pub plugins_dir: PathBuf,
    /// Where compiled plugins are cached by content hash.
    pub plugin_cache_dir: PathBuf,
    /// Microseconds the strategy thread polls for the next book change before
    /// it sleeps (`DOUBLETIME_STRATEGY_SPIN_US`, default 50, at most 1 s). A
    /// change that finds it polling is evaluated at once; one that finds it
    /// asleep pays a wake-up of tens of µs. The poll burns its core meanwhile:
    /// raise it where the strategy thread has a core of its own.
    pub strategy_spin_us: u64,
    /// Evaluates plugins on a strategy thread of their own instead of inline,
    /// on the feed's task that applied the book change
    /// (`DOUBLETIME_STRATEGY_THREAD`, default off). Inline there is no
    /// hand-off between a book message and the decision, but a feed reads
    /// its next message only once every plugin has decided: with slow
    /// plugins (Python, JavaScript) in a burst, the thread, which coalesces
    /// changes per pair while it is busy, keeps the feeds current.
    pub strategy_thread: bool,
    /// Most frames a feed applies from those already waiting on its socket
    /// before the plugins look (`DOUBLETIME_FEED_BATCH_FRAMES`, default 8,
    /// 1 to 1024). In a burst each pair is then decided once, on its latest
    /// book, and the host keeps up with the venue; the first frame's decision
    /// waits for the others (1–3 µs each). 1 decides after every frame.
    pub feed_batch_frames: usize,
    /// Pins each async worker to a core of its own (`DOUBLETIME_PIN_WORKERS`,
    /// default off; Linux only). Keeps a worker woken mid-order from taking
    /// the order's core, at a cost to the feeds (BENCHMARKS.md); only for a
    /// machine the host has to itself.
    pub pin_workers: bool,
    pub api: ApiConfig,
    pub kalshi: KalshiConfig,
    pub polymarket: PolymarketConfig,
    pub markets: Vec<MarketConfig>,
    /// Parameters per plugin (`[plugins.buy-both] min-profit = 10000`), in the
    /// plugin's own integer units. A plugin declaring `min-profit` gets
    /// MIN_PROFIT_THRESHOLD (converted to micro-dollars) unless set here.
    pub plugins: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app_env: AppEnv::Demo,
            dry_run: true,
            min_profit_threshold: Decimal::new(1, 2),
            shutdown_balance: Decimal::ZERO,
            minimum_wallet_balance: Decimal::ZERO,
            database_url: Secret::new("sqlite://var/doubletime.db"),
            host_id: default_host_id(),
            intent_journal: None,
            leg_mode: crate::execution::LegMode::Concurrent,
            leg_order: crate::domain::TimeInForce::FillOrKill,
            plugins_dir: PathBuf::from("var/plugins"),
            plugin_cache_dir: PathBuf::from("var/cache/components"),
            strategy_spin_us: 50,
            strategy_thread: false,
            feed_batch_frames: crate::venues::feed::BATCH_FRAMES,
            pin_workers: false,
            api: ApiConfig::default(),
            kalshi: KalshiConfig::default(),
            polymarket: PolymarketConfig::default(),
            markets: Vec::new(),
            plugins: Default::default(),
        }
    }
}

/// `doubletime-<hostname>`: stable across restarts of the same machine.
fn default_host_id() -> String {
    let name = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into());
    format!("doubletime-{name}")
}

fn parse_env<T: FromStr>(name: &str, raw: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    raw.trim()
        .parse::<T>()
        .map_err(|e| invalid(name, format!("'{raw}' is not valid: {e}")))
}

fn parse_bool(name: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, format!("'{raw}' is not true or false"))),
    }
}

impl Config {
    /// Where trade intents are journalled ([`Config::intent_journal`]);
    /// `None` when off or when the store is an in-memory SQLite, which a
    /// crash loses anyway.
    pub fn intent_journal_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.intent_journal {
            return (path.as_os_str() != "off").then(|| path.clone());
        }
        let url = self.database_url.expose();
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Some(PathBuf::from(format!("var/{}.intents", self.host_id)));
        };
        let (file, options) = rest.split_once('?').unwrap_or((rest, ""));
        let file = file.trim_start_matches("//");
        if file.is_empty() || file == ":memory:" || options.contains("mode=memory") {
            return None;
        }
        Some(PathBuf::from(format!("{file}.intents")))
    }

    /// Reads the file (if given), then applies environment variables read through
    /// `env` (the process environment in production; a map in tests), then validates.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::File {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                toml::from_str::<Config>(&text).map_err(|e| ConfigError::File {
                    path: p.display().to_string(),
                    message: e.message().to_string(),
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env(&env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("APP_ENV") {
            self.app_env = parse_env("APP_ENV", &v)?;
        }
        let (key_var, path_var) = match self.app_env {
            AppEnv::Demo => ("KALSHI_DEMO_API_KEY", "KALSHI_DEMO_PRIVATE_KEY_PATH"),
            AppEnv::Prod => ("KALSHI_PROD_API_KEY", "KALSHI_PROD_PRIVATE_KEY_PATH"),
        };
        if let Some(v) = env(key_var) {
            self.kalshi.api_key = Secret::new(v);
        }
        if let Some(v) = env(path_var) {
            self.kalshi.private_key_path = Some(PathBuf::from(v));
        }
        if let Some(v) = env("POLYMARKET_API_KEY") {
            self.polymarket.api_key = Secret::new(v);
        }
        if let Some(v) = env("POLYMARKET_WALLET_PRIVATE_KEY") {
            self.polymarket.wallet_private_key = Secret::new(v);
        }
        if let Some(v) = env("POLYMARKET_WALLET_ADDR") {
            self.polymarket.wallet_addr = v;
        }
        if let Some(v) = env("DATABASE_URL") {
            self.database_url = Secret::new(v);
        }
        if let Some(v) = env("DOUBLETIME_HOST_ID") {
            self.host_id = v;
        }
        if let Some(v) = env("DOUBLETIME_INTENT_JOURNAL") {
            self.intent_journal = Some(PathBuf::from(v));
        }
        if let Some(v) = env("DOUBLETIME_LEG_ORDER") {
            self.leg_order = parse_env("DOUBLETIME_LEG_ORDER", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_LEG_MODE") {
            self.leg_mode = parse_env("DOUBLETIME_LEG_MODE", &v)?;
        }
        if let Some(v) = env("KALSHI_PRESIGN_MAX_AGE_MS") {
            self.kalshi.presign_max_age_ms = parse_env("KALSHI_PRESIGN_MAX_AGE_MS", &v)?;
        }
        if let Some(v) = env("KALSHI_FEE_RATE") {
            self.kalshi.fee_rate = parse_env("KALSHI_FEE_RATE", &v)?;
        }
        if let Some(v) = env("MIN_PROFIT_THRESHOLD") {
            self.min_profit_threshold = parse_env("MIN_PROFIT_THRESHOLD", &v)?;
        }
        if let Some(v) = env("DRY_RUN") {
            self.dry_run = parse_bool("DRY_RUN", &v)?;
        }
        if let Some(v) = env("SHUTDOWN_BALANCE") {
            self.shutdown_balance = parse_env("SHUTDOWN_BALANCE", &v)?;
        }
        if let Some(v) = env("MINIMUM_WALLET_BALANCE") {
            self.minimum_wallet_balance = parse_env("MINIMUM_WALLET_BALANCE", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_PLUGINS_DIR") {
            self.plugins_dir = PathBuf::from(v);
        }
        if let Some(v) = env("DOUBLETIME_PLUGIN_CACHE_DIR") {
            self.plugin_cache_dir = PathBuf::from(v);
        }
        if let Some(v) = env("DOUBLETIME_STRATEGY_SPIN_US") {
            self.strategy_spin_us = parse_env("DOUBLETIME_STRATEGY_SPIN_US", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_STRATEGY_THREAD") {
            self.strategy_thread = parse_bool("DOUBLETIME_STRATEGY_THREAD", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_FEED_BATCH_FRAMES") {
            self.feed_batch_frames = parse_env("DOUBLETIME_FEED_BATCH_FRAMES", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_PIN_WORKERS") {
            self.pin_workers = parse_bool("DOUBLETIME_PIN_WORKERS", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_API_BIND") {
            self.api.bind = parse_env("DOUBLETIME_API_BIND", &v)?;
        }
        if let Some(v) = env("DOUBLETIME_API_TOKEN") {
            self.api.token = Secret::new(v);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let non_negative = |name: &str, v: Decimal| {
            if v.is_sign_negative() && !v.is_zero() {
                Err(invalid(name, format!("{v} is negative")))
            } else {
                Ok(())
            }
        };
        if !(1..=1024).contains(&self.feed_batch_frames) {
            return Err(invalid(
                "DOUBLETIME_FEED_BATCH_FRAMES",
                format!("{} is not between 1 and 1024", self.feed_batch_frames),
            ));
        }
        if self.strategy_spin_us > 1_000_000 {
            return Err(invalid(
                "DOUBLETIME_STRATEGY_SPIN_US",
                format!(
                    "{} µs is over a second of polling per book change",
                    self.strategy_spin_us
                ),
            ));
        }
        if self.leg_order.rests() {
            return Err(invalid(
                "DOUBLETIME_LEG_ORDER",
                "legs are fill_or_kill or immediate_or_cancel; a resting leg is leg risk"
                    .to_string(),
            ));
        }
        non_negative("MIN_PROFIT_THRESHOLD", self.min_profit_threshold)?;
        non_negative("SHUTDOWN_BALANCE", self.shutdown_balance)?;
        non_negative("MINIMUM_WALLET_BALANCE", self.minimum_wallet_balance)?;
        if self.kalshi.fee_rate.is_sign_negative() || self.kalshi.fee_rate > Decimal::ONE {
            return Err(invalid(
                "KALSHI_FEE_RATE",
                format!("{} is outside [0, 1]", self.kalshi.fee_rate),
            ));
        }
        if let Some(p) = &self.kalshi.private_key_path {
            let setting = match self.app_env {
                AppEnv::Demo => "KALSHI_DEMO_PRIVATE_KEY_PATH",
                AppEnv::Prod => "KALSHI_PROD_PRIVATE_KEY_PATH",
            };
            if !p.is_file() {
                return Err(invalid(
                    setting,
                    format!("key file {} does not exist", p.display()),
                ));
            }
        }
        if !self.api.bind.ip().is_loopback() && self.api.token.is_empty() {
            return Err(invalid(
                "DOUBLETIME_API_BIND",
                format!(
                    "{} is not a loopback address; set DOUBLETIME_API_TOKEN to expose the API",
                    self.api.bind
                ),
            ));
        }
        let url = self.database_url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            // The URL may hold a password: name the setting, never print the value.
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if self.host_id.trim().is_empty() || self.host_id.len() > 100 {
            return Err(invalid(
                "DOUBLETIME_HOST_ID",
                "must be 1 to 100 characters, the same across restarts",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &self.markets {
            if m.id.is_empty()
                || !m
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    "markets.id",
                    format!("'{}' must be letters, digits, '-' or '_'", m.id),
                ));
            }
            if !seen.insert(m.id.as_str()) {
                return Err(invalid("markets.id", format!("'{}' appears twice", m.id)));
            }
            if m.polymarket_fee_exponent > 4 {
                return Err(invalid(
                    &format!("markets[{}].polymarket_fee_exponent", m.id),
                    "must be at most 4",
                ));
            }
            m.pair()?;
        }
        Ok(())
    }

    /// Parameters each plugin starts with: `[plugins.*]` over the global
    /// `min-profit` derived from MIN_PROFIT_THRESHOLD.
    pub fn plugin_params(&self) -> crate::strategy::runtime::InitialParams {
        use rust_decimal::prelude::ToPrimitive;
        let min_profit = (self.min_profit_threshold * Decimal::from(1_000_000))
            .ceil()
            .to_i64()
            .unwrap_or(i64::MAX);
        crate::strategy::runtime::InitialParams {
            global: std::collections::BTreeMap::from([("min-profit".to_string(), min_profit)]),
            per_plugin: self.plugins.clone(),
        }
    }

    /// Each configured pair with its fees, as the book store holds them.
    pub fn pair_setups(&self) -> Vec<(MarketPair, crate::domain::PairFees)> {
        use crate::domain::{KalshiFees, PairFees, PolymarketFees};
        self.markets
            .iter()
            .filter_map(|m| {
                let pair = m.pair().ok()?;
                let fees = PairFees {
                    kalshi: KalshiFees {
                        taker_rate: self.kalshi.fee_rate,
                        multiplier: m.kalshi_fee_multiplier,
                        fee_type: m.kalshi_fee_type,
                        ..KalshiFees::default()
                    },
                    polymarket: PolymarketFees {
                        rate: m.polymarket_fee_rate,
                        exponent: m.polymarket_fee_exponent,
                    },
                };
                Some((pair, fees))
            })
            .collect()
    }

    /// The configured market pairs as domain pairs (validated by `load`).
    pub fn pairs(&self) -> Vec<MarketPair> {
        self.markets.iter().filter_map(|m| m.pair().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_intent_journal_sits_beside_a_sqlite_file_and_is_named_for_the_host_with_postgres() {
        let journal = |pairs: &[(&str, &str)]| {
            let mut e = vec![("DOUBLETIME_HOST_ID", "east-1")];
            e.extend_from_slice(pairs);
            Config::load(None, env(&e)).unwrap().intent_journal_path()
        };
        assert_eq!(
            journal(&[]),
            Some(PathBuf::from("var/doubletime.db.intents"))
        );
        assert_eq!(
            journal(&[("DATABASE_URL", "sqlite:/data/t.db?mode=rwc")]),
            Some(PathBuf::from("/data/t.db.intents"))
        );
        assert_eq!(journal(&[("DATABASE_URL", "sqlite::memory:")]), None);
        assert_eq!(
            journal(&[("DATABASE_URL", "sqlite://x.db?mode=memory")]),
            None
        );
        assert_eq!(
            journal(&[("DATABASE_URL", "postgres://u:p@db/trades")]),
            Some(PathBuf::from("var/east-1.intents"))
        );
        assert_eq!(
            journal(&[("DOUBLETIME_INTENT_JOURNAL", "/fast/j")]),
            Some(PathBuf::from("/fast/j"))
        );
        assert_eq!(journal(&[("DOUBLETIME_INTENT_JOURNAL", "off")]), None);
    }

    #[test]
    fn the_commented_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../doubletime.example.toml");
        let cfg = Config::load(Some(&path), env(&[])).unwrap();
        assert!(cfg.dry_run);
        assert!(cfg.markets.len() >= 2);
        assert!(
            cfg.pairs()
                .iter()
                .all(|p| p.polymarket_yes_token.as_str().len() > 20)
        );
    }

    #[test]
    fn environment_overrides_the_file_with_the_original_names() {
        let cfg = Config::load(
            None,
            env(&[
                ("APP_ENV", "prod"),
                ("KALSHI_PROD_API_KEY", "key-123"),
                ("KALSHI_DEMO_API_KEY", "ignored-in-prod"),
                ("DRY_RUN", "false"),
                ("MIN_PROFIT_THRESHOLD", "0.02"),
                ("KALSHI_FEE_RATE", "0.035"),
                ("SHUTDOWN_BALANCE", "5"),
                ("MINIMUM_WALLET_BALANCE", "100.50"),
                ("DATABASE_URL", "postgres://u:pw@localhost/db"),
                (
                    "POLYMARKET_WALLET_ADDR",
                    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.app_env, AppEnv::Prod);
        assert_eq!(cfg.kalshi.api_key.expose(), "key-123");
        assert!(!cfg.dry_run);
        assert_eq!(cfg.min_profit_threshold, Decimal::new(2, 2));
        assert_eq!(cfg.kalshi.fee_rate, Decimal::new(35, 3));
        assert_eq!(cfg.minimum_wallet_balance, Decimal::new(10050, 2));
    }

    #[test]
    fn pinning_the_workers_is_off_by_default_and_set_from_the_file_or_the_environment() {
        assert!(!Config::default().pin_workers);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doubletime.toml");
        std::fs::write(&path, "pin_workers = true\n").unwrap();
        assert!(Config::load(Some(&path), env(&[])).unwrap().pin_workers);
        let cfg = Config::load(Some(&path), env(&[("DOUBLETIME_PIN_WORKERS", "off")])).unwrap();
        assert!(!cfg.pin_workers, "the environment wins");
        let err = Config::load(None, env(&[("DOUBLETIME_PIN_WORKERS", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("DOUBLETIME_PIN_WORKERS"), "{err}");
    }

    #[test]
    fn plugins_are_evaluated_inline_unless_a_strategy_thread_is_asked_for() {
        assert!(!Config::default().strategy_thread);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doubletime.toml");
        std::fs::write(&path, "strategy_thread = true\n").unwrap();
        assert!(Config::load(Some(&path), env(&[])).unwrap().strategy_thread);
        let cfg =
            Config::load(Some(&path), env(&[("DOUBLETIME_STRATEGY_THREAD", "false")])).unwrap();
        assert!(!cfg.strategy_thread, "the environment wins");
    }

    #[test]
    fn the_feed_batch_is_set_from_the_file_or_the_environment_and_bounded() {
        assert_eq!(Config::default().feed_batch_frames, 8);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doubletime.toml");
        std::fs::write(&path, "feed_batch_frames = 1\n").unwrap();
        assert_eq!(
            Config::load(Some(&path), env(&[]))
                .unwrap()
                .feed_batch_frames,
            1
        );
        let cfg =
            Config::load(Some(&path), env(&[("DOUBLETIME_FEED_BATCH_FRAMES", "32")])).unwrap();
        assert_eq!(cfg.feed_batch_frames, 32, "the environment wins");
        let err = Config::load(None, env(&[("DOUBLETIME_FEED_BATCH_FRAMES", "0")])).unwrap_err();
        assert!(
            err.to_string().contains("DOUBLETIME_FEED_BATCH_FRAMES"),
            "{err}"
        );
    }

    #[test]
    fn the_strategy_poll_is_set_from_the_file_or_the_environment_and_bounded() {
        assert_eq!(Config::default().strategy_spin_us, 50);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doubletime.toml");
        std::fs::write(&path, "strategy_spin_us = 200\n").unwrap();
        let cfg = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(cfg.strategy_spin_us, 200);
        let cfg = Config::load(Some(&path), env(&[("DOUBLETIME_STRATEGY_SPIN_US", "0")])).unwrap();
        assert_eq!(cfg.strategy_spin_us, 0, "the environment wins");
        let err =
            Config::load(None, env(&[("DOUBLETIME_STRATEGY_SPIN_US", "2000000")])).unwrap_err();
        assert!(
            err.to_string().contains("DOUBLETIME_STRATEGY_SPIN_US"),
            "{err}"
        );
    }

    #[test]
    fn a_resting_leg_order_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doubletime.toml");
        std::fs::write(&path, "leg_order = \"good_till_cancelled\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("DOUBLETIME_LEG_ORDER"), "{err}");
    }

    #[test]
    fn a_bad_number_names_the_setting() {
        let err = Config::load(None, env(&[("MIN_PROFIT_THRESHOLD", "lots")])).unwrap_err();
        assert!(
            err.to_string().starts_with("setting MIN_PROFIT_THRESHOLD:"),
            "{err}"
        );
        let err = Config::load(None, env(&[("DRY_RUN", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("DRY_RUN"), "{err}");
        let err = Config::load(None, env(&[("SHUTDOWN_BALANCE", "-1")])).unwrap_err();
        assert!(err.to_string().contains("SHUTDOWN_BALANCE"), "{err}");
    }

    #[test]
    fn a_missing_key_file_names_the_setting() {
        let err = Config::load(
            None,
            env(&[("KALSHI_DEMO_PRIVATE_KEY_PATH", "/nonexistent/key.pem")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting KALSHI_DEMO_PRIVATE_KEY_PATH: key file /nonexistent/key.pem does not exist"
        );
    }

    #[test]
    fn non_loopback_api_needs_a_token() {
        let err = Config::load(None, env(&[("DOUBLETIME_API_BIND", "0.0.0.0:8001")])).unwrap_err();
        assert!(err.to_string().contains("DOUBLETIME_API_TOKEN"), "{err}");
        assert!(
            Config::load(
                None,
                env(&[
                    ("DOUBLETIME_API_BIND", "0.0.0.0:8001"),
                    ("DOUBLETIME_API_TOKEN", "t")
                ])
            )
            .is_ok()
        );
    }

    #[test]
    fn secrets_never_print() {
        let cfg = Config::load(
            None,
            env(&[
                ("KALSHI_DEMO_API_KEY", "kalshi-secret-key"),
                (
                    "POLYMARKET_WALLET_PRIVATE_KEY",
                    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
                ),
                ("POLYMARKET_API_KEY", "poly-secret"),
                ("DATABASE_URL", "postgres://user:hunter2@db/x"),
                ("DOUBLETIME_API_TOKEN", "api-token-secret"),
            ]),
        )
        .unwrap();
        let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        for secret in [
            "kalshi-secret-key",
            "ac0974bec39a",
            "poly-secret",
            "hunter2",
            "api-token-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
        assert!(shown.contains("[redacted]"));
        let err = Config::load(None, env(&[("DATABASE_URL", "mysql://u:hunter2@x")])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn bad_market_pairs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[markets]]\nid = \"a\"\nkalshi_ticker = \"K\"\npolymarket_condition_id = \"0x1\"\npolymarket_yes_token = \"12x\"\npolymarket_no_token = \"2\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("markets[a].polymarket_yes_token"),
            "{err}"
        );
        std::fs::write(&path, "dry_runn = true\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("dry_runn"), "{err}");
    }
}

//! Scenario files: what the simulated venues do, and when.
//!
//! ```toml
//! seed = 7          # random walk seed (same seed, same books)
//! tick_ms = 100     # how often books move
//!
//! [[events]]
//! at_ms = 2000
//! pair = "fed-dec-hold"
//! kind = "arb_window"      # arb_window | gap | disconnect | malformed | stale | thin | fail_trades
//! direction = "kalshi_yes" # arb_window: kalshi_yes | polymarket_yes
//! edge = "0.04"            # arb_window: 1 − (YES + NO)
//! size = "50"              # arb_window: contracts at that price; thin: cap per level;
//!                          # fail_trades: trades of each match that still confirm (default 0)
//! duration_ms = 1500       # arb_window, stale, thin, fail_trades
//! venue = "kalshi"         # gap, disconnect, malformed, stale
//! ```

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::market::ArbDirection;
use crate::domain::Venue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// YES + NO across venues cost `1 − edge` for `size` contracts.
    ArbWindow,
    /// Skip one Kalshi sequence number (Polymarket has none: its books jump instead).
    Gap,
    /// Close every WebSocket of the venue.
    Disconnect,
    /// Send a frame that is not valid JSON.
    Malformed,
    /// Stop sending updates for the pair on that venue for a while.
    Stale,
    /// Cap every level's size for a while.
    Thin,
    /// Polymarket trades matched for a while end `FAILED` on the chain
    /// (§2.4): the order answer says matched, the leg did not happen. With
    /// `size = n` the first n trades of each match still confirm: an order
    /// that took several resting orders is only partly undone.
    FailTrades,
    /// Polymarket changes the pair's tick to `size` (e.g. 0.001 near the
    /// edges, §2.4) and says so with `tick_size_change` on both tokens.
    TickSize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioEvent {
    pub at_ms: u64,
    #[serde(default)]
    pub pair: Option<String>,
    pub kind: EventKind,
    #[serde(default)]
    pub direction: Option<ArbDirection>,
    #[serde(default)]
    pub edge: Option<Decimal>,
    #[serde(default)]
    pub size: Option<Decimal>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub venue: Option<Venue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub seed: u64,
    pub tick_ms: u64,
    pub events: Vec<ScenarioEvent>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 7,
            tick_ms: 100,
            events: Vec::new(),
        }
    }
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for (i, e) in s.events.iter().enumerate() {
            let need = |what: &str, ok: bool| {
                if ok {
                    Ok(())
                } else {
                    Err(format!("events[{i}] ({:?}) needs {what}", e.kind))
                }
            };
            match e.kind {
                EventKind::ArbWindow => {
                    need("direction", e.direction.is_some())?;
                    need(
                        "edge in (0, 1)",
                        e.edge
                            .is_some_and(|x| x > Decimal::ZERO && x < Decimal::ONE),
                    )?;
                    need("duration_ms", e.duration_ms.is_some())?;
                }
                EventKind::Gap | EventKind::Disconnect | EventKind::Malformed => {
                    need("venue", e.venue.is_some())?
                }
                EventKind::Stale => need(
                    "venue and duration_ms",
                    e.venue.is_some() && e.duration_ms.is_some(),
                )?,
                EventKind::Thin => need(
                    "size and duration_ms",
                    e.size.is_some() && e.duration_ms.is_some(),
                )?,
                EventKind::FailTrades => need("duration_ms", e.duration_ms.is_some())?,
                EventKind::TickSize => need(
                    "pair and size (the new tick)",
                    e.pair.is_some() && e.size.is_some(),
                )?,
            }
        }
        Ok(s)
    }

    /// A demo scenario: an arbitrage window on each pair every few seconds,
    /// alternating direction and edge (some too thin to survive fees).
    pub fn demo(pairs: &[String]) -> Scenario {
        let mut events = Vec::new();
        for (i, pair) in pairs.iter().enumerate() {
            for k in 0..200u64 {
                let wide = k % 3 != 2;
                events.push(ScenarioEvent {
                    at_ms: 3_000 + k * 7_000 + i as u64 * 1_500,
                    pair: Some(pair.clone()),
                    kind: EventKind::ArbWindow,
                    direction: Some(if k % 2 == 0 {
                        ArbDirection::KalshiYes
                    } else {
                        ArbDirection::PolymarketYes
                    }),
                    edge: Some(if wide {
                        Decimal::new(5, 2)
                    } else {
                        Decimal::new(1, 2)
                    }),
                    size: Some(Decimal::from(50)),
                    duration_ms: Some(2_000),
                    venue: None,
                });
            }
        }
        Scenario {
            seed: 7,
            tick_ms: 200,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_a_scenario() {
        let s = Scenario::from_toml(
            "seed = 1\ntick_ms = 50\n[[events]]\nat_ms = 10\npair = \"a\"\nkind = \"arb_window\"\ndirection = \"kalshi_yes\"\nedge = \"0.04\"\nsize = \"50\"\nduration_ms = 100\n[[events]]\nat_ms = 20\nkind = \"gap\"\nvenue = \"kalshi\"\n",
        )
        .unwrap();
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[0].edge, Some(Decimal::new(4, 2)));
        let err =
            Scenario::from_toml("[[events]]\nat_ms = 1\nkind = \"arb_window\"\n").unwrap_err();
        assert!(err.contains("direction"), "{err}");
        assert!(Scenario::from_toml("[[events]]\nat_ms = 1\nkind = \"earthquake\"\n").is_err());
        let s = Scenario::from_toml(
            "[[events]]\nat_ms = 5\nkind = \"fail_trades\"\nduration_ms = 100\n",
        )
        .unwrap();
        assert_eq!(s.events[0].kind, EventKind::FailTrades);
        assert!(Scenario::from_toml("[[events]]\nat_ms = 5\nkind = \"fail_trades\"\n").is_err());
    }
}

//! The executor's record of every trade it handled (in memory; the durable
//! trade store comes with the store work).

use std::sync::Mutex;

use serde::Serialize;

use crate::domain::{Fill, Opportunity, UnixMicros, Usd};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum TradeOutcome {
    /// Both legs filled the same size: a riskless position.
    Hedged,
    /// One leg failed; the other was sold back (realised loss in `pnl`).
    Unwound,
    /// Nothing filled.
    NotFilled(String),
    /// Refused before any order was sent (grid, balances).
    Refused(String),
    /// DRY_RUN: everything but the order requests.
    DryRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct TradeRecord {
    pub trade_id: String,
    pub opportunity: Opportunity,
    pub outcome: TradeOutcome,
    pub yes_fill: Option<Fill>,
    pub no_fill: Option<Fill>,
    /// Locked-in (hedged) or realised (unwound) profit and loss.
    pub pnl: Usd,
    pub at: UnixMicros,
}

#[derive(Default)]
pub struct Ledger {
    trades: Mutex<Vec<TradeRecord>>,
}

impl Ledger {
    pub fn record(&self, t: TradeRecord) {
        self.trades
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
    }

    pub fn trades(&self) -> Vec<TradeRecord> {
        self.trades
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One trade by id.
    pub fn get(&self, trade_id: &str) -> Option<TradeRecord> {
        self.trades
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|t| t.trade_id == trade_id)
            .cloned()
    }

    /// Sum of every trade's P&L.
    pub fn pnl(&self) -> Usd {
        self.trades
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|t| t.pnl)
            .sum()
    }
}

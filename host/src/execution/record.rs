//! The executor's record of every trade it handled (in memory; the durable
//! trade store comes with the store work).

use std::sync::Mutex;

use serde::Serialize;

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::{Action, Fill, Opportunity, Outcome, PairId, UnixMicros, Usd, Venue};

/// Contracts held on one venue in one outcome of one pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub pair: PairId,
    pub venue: Venue,
    pub outcome: Outcome,
    /// Signed: negative would mean more sold than bought.
    pub contracts: Decimal,
}

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
    /// The sale that undid a leg whose partner did not fill.
    pub unwind_fill: Option<Fill>,
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

    /// Contracts held per pair, venue and outcome (buys minus unwind sales),
    /// non-zero only.
    pub fn positions(&self) -> Vec<Position> {
        let mut held: BTreeMap<(PairId, Venue, Outcome), Decimal> = BTreeMap::new();
        for t in self.trades.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for f in t
                .yes_fill
                .iter()
                .chain(t.no_fill.iter())
                .chain(t.unwind_fill.iter())
            {
                let signed = match f.action {
                    Action::Buy => f.size.value(),
                    Action::Sell => -f.size.value(),
                };
                *held
                    .entry((t.opportunity.pair.clone(), f.venue, f.outcome))
                    .or_default() += signed;
            }
        }
        held.into_iter()
            .filter(|(_, c)| !c.is_zero())
            .map(|((pair, venue, outcome), contracts)| Position {
                pair,
                venue,
                outcome,
                contracts,
            })
            .collect()
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

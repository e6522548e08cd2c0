//! What the executor books for every trade it handled (kept by the trade
//! store) and the positions read back from the fills.

use serde::{Deserialize, Serialize};

use rust_decimal::Decimal;

use crate::domain::{Fill, Opportunity, Outcome, PairId, UnixMicros, Usd, Venue};

/// Contracts held on one venue in one outcome of one pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub pair: PairId,
    pub venue: Venue,
    pub outcome: Outcome,
    /// Signed: negative would mean more sold than bought.
    pub contracts: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl TradeOutcome {
    /// The outcome's code, as serialised (`hedged`, `unwound`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            TradeOutcome::Hedged => "hedged",
            TradeOutcome::Unwound => "unwound",
            TradeOutcome::NotFilled(_) => "not_filled",
            TradeOutcome::Refused(_) => "refused",
            TradeOutcome::DryRun => "dry_run",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

//! The risk gate: the last word before money moves.
//!
//! Sits between the strategy and the executor (`strategy → risk → execution`):
//! every opportunity a plugin publishes on the bus is checked against the
//! operator's [`RiskLimits`] (profit minimums, size, exposure, book freshness,
//! daily loss, cooldowns, balances, cash on both venues) and the switches that
//! stop trading (pause, the latched kill switch). An approval marks the market
//! in flight and becomes an `ExecuteTrade`, handed straight to the registered
//! executor and published on the lossless `executions` topic; the executor
//! reports back through [`RiskHandle::trade_finished`].
//!
//! [`gate`] is pure (no clock, no I/O) and tested rule by rule; [`task`] runs it
//! inline on the bus's `opportunities` topic and shares its state with the API.

pub mod gate;
pub mod limits;
pub mod log;
pub mod task;

pub use gate::{
    Approved, BookFacts, InFlight, KillSwitchLatched, MarketFacts, PauseCause, Refusal, RiskGate,
    RiskState,
};
pub use limits::{BadLimit, RiskLimits};
pub use log::{RECENT_REFUSALS, RefusalLog, RefusalRecord};
pub use task::{
    CancelOpenOrdersHook, ExecuteHook, ExecutorRegistration, RiskDecision, RiskHandle,
    RiskSnapshot, start_risk_gate,
};

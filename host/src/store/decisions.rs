//! Books the risk gate's refusals: what was found, refused, and why.
//!
//! An opportunity is re-found on every book update while it lasts, and the
//! gate refuses it each time for the same reason: a refusal is written when
//! its reason for the market changes, or again after [`REPEAT_AFTER`] — the
//! per-reason counts in `/risk` and `/metrics` keep every single one.
//! Approvals are booked by the executor once the trade's orders are out
//! (the intent written before them is what start-up needs; this is history).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{OpportunityRecord, TradeStore};
use crate::domain::PairId;
use crate::risk::{RiskDecision, RiskHandle};

/// A refusal that persists is written again this often.
pub const REPEAT_AFTER: Duration = Duration::from_secs(10);

pub fn spawn_decision_recorder(
    risk: &RiskHandle,
    store: TradeStore,
) -> tokio::task::JoinHandle<()> {
    let mut decisions = risk.decisions();
    tokio::spawn(async move {
        let mut last: HashMap<PairId, (String, tokio::time::Instant)> = HashMap::new();
        loop {
            let record = match decisions.recv().await {
                Ok(RiskDecision::Refused(r)) => r,
                Ok(RiskDecision::Approved { .. }) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "refusal recorder fell behind; counts in /risk are complete"
                    );
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let key = format!("{}/{}", record.found_by, record.refusal.reason());
            let now = tokio::time::Instant::now();
            if let Some((k, at)) = last.get(&record.market)
                && *k == key
                && now.duration_since(*at) < REPEAT_AFTER
            {
                continue;
            }
            last.insert(record.market.clone(), (key, now));
            let row = OpportunityRecord {
                pair: record.market.clone(),
                found_by: record.found_by.clone(),
                approved: false,
                reason: Some(record.refusal.reason().to_owned()),
                message: Some(record.message.clone()),
                trade_id: None,
                opportunity: None,
                at: record.at,
            };
            if let Err(e) = store.repo.record_opportunity(&store.host, &row).await {
                tracing::warn!(error = %e, "could not book a refusal");
            }
        }
    })
}

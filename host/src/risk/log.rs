//! What the gate refused: a count per reason since start and the most recent
//! refusals, for `GET /risk` and `/metrics`.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::gate::Refusal;
use crate::domain::{PairId, UnixMicros};

/// Refusals kept for `GET /risk`.
pub const RECENT_REFUSALS: usize = 200;

/// One refused opportunity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalRecord {
    pub at: UnixMicros,
    pub market: PairId,
    /// The plugin that found the opportunity.
    pub found_by: String,
    /// `reason` plus the refusal's details (`venue`, `age_ms`).
    #[serde(flatten)]
    pub refusal: Refusal,
    /// The refusal in words.
    pub message: String,
}

impl RefusalRecord {
    pub fn new(at: UnixMicros, market: PairId, found_by: String, refusal: Refusal) -> Self {
        RefusalRecord {
            at,
            market,
            found_by,
            message: refusal.to_string(),
            refusal,
        }
    }
}

/// Counts by reason and a ring of the newest refusals.
#[derive(Debug, Clone)]
pub struct RefusalLog {
    counts: BTreeMap<&'static str, u64>,
    recent: VecDeque<RefusalRecord>,
    capacity: usize,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog::new(RECENT_REFUSALS)
    }
}

impl RefusalLog {
    pub fn new(capacity: usize) -> Self {
        RefusalLog {
            counts: Refusal::REASONS.iter().map(|r| (*r, 0)).collect(),
            recent: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn record(&mut self, record: RefusalRecord) {
        *self.counts.entry(record.refusal.reason()).or_default() += 1;
        if self.capacity == 0 {
            return;
        }
        if self.recent.len() == self.capacity {
            self.recent.pop_back();
        }
        self.recent.push_front(record);
    }

    /// Every reason with its count (zeros included), by reason code.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    pub fn newest_first(&self) -> Vec<RefusalRecord> {
        self.recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Venue;

    fn record(at: UnixMicros, refusal: Refusal) -> RefusalRecord {
        RefusalRecord::new(at, PairId("fed".into()), "buy-both".into(), refusal)
    }

    #[test]
    fn refusals_are_counted_by_reason_with_every_reason_listed() {
        let mut log = RefusalLog::default();
        log.record(record(1, Refusal::Paused));
        log.record(record(2, Refusal::Paused));
        log.record(record(
            3,
            Refusal::StaleBook {
                venue: Venue::Kalshi,
            },
        ));
        assert_eq!(log.counts()["paused"], 2);
        assert_eq!(log.counts()["stale_book"], 1);
        assert_eq!(log.counts()["kill_switch"], 0);
        assert_eq!(log.counts().len(), Refusal::REASONS.len());
    }

    #[test]
    fn only_the_newest_refusals_are_kept_newest_first() {
        let mut log = RefusalLog::new(3);
        for at in 1..=5 {
            log.record(record(at, Refusal::Cooldown));
        }
        let ats: Vec<_> = log.newest_first().iter().map(|r| r.at).collect();
        assert_eq!(ats, vec![5, 4, 3]);
        assert_eq!(log.counts()["cooldown"], 5, "counts keep everything");
    }

    #[test]
    fn a_record_serialises_its_reason_details_and_message() {
        let json = serde_json::to_value(record(
            7,
            Refusal::BookTooOld {
                venue: Venue::Polymarket,
                age_ms: 6_000,
            },
        ))
        .unwrap();
        assert_eq!(json["reason"], "book_too_old");
        assert_eq!(json["venue"], "polymarket");
        assert_eq!(json["age_ms"], 6_000);
        assert_eq!(json["market"], "fed");
        assert_eq!(json["message"], "the polymarket book is 6000 ms old");
    }
}

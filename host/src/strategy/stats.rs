//! Per-plugin counters, a lock-free latency histogram, and the exact tally of
//! the opportunities a plugin found (for replay reports).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::domain::{Opportunity, Price, Size, Usd, Venue};

/// Log-linear buckets: 16 per power of two from 1 ns to ~17 s; quantiles
/// are accurate to about 6 %.
const SUB: usize = 16;
const OCTAVES: usize = 35;

pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..SUB * OCTAVES).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    let ns = ns.max(1);
    let octave = 63 - ns.leading_zeros() as usize;
    let frac = if octave >= 4 {
        ((ns >> (octave - 4)) & 0xf) as usize
    } else {
        ((ns << (4 - octave)) & 0xf) as usize
    };
    (octave * SUB + frac).min(SUB * OCTAVES - 1)
}

fn bucket_upper(b: usize) -> u64 {
    let octave = b / SUB;
    let frac = (b % SUB) as u64;
    let base = 1u64 << octave;
    base + ((frac + 1) * base) / SUB as u64
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        self.record_ns(d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    pub fn record_ns(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Upper bound of the bucket holding quantile `q` (0..=1), in nanoseconds.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        quantile_ns(&self.counts_since(&HistogramMark::default()), q)
    }

    pub fn summary(&self) -> LatencySummary {
        self.summary_since(&HistogramMark::default())
    }

    /// The counts now, for [`Self::summary_since`].
    pub fn mark(&self) -> HistogramMark {
        HistogramMark(
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        )
    }

    /// The latencies recorded after `mark` was taken (a bench leaves its
    /// start-up out this way).
    pub fn summary_since(&self, mark: &HistogramMark) -> LatencySummary {
        let counts = self.counts_since(mark);
        LatencySummary {
            count: counts.iter().sum(),
            p50_ns: quantile_ns(&counts, 0.50),
            p99_ns: quantile_ns(&counts, 0.99),
            p999_ns: quantile_ns(&counts, 0.999),
        }
    }

    fn counts_since(&self, mark: &HistogramMark) -> Vec<u64> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let before = mark.0.get(i).copied().unwrap_or(0);
                b.load(Ordering::Relaxed).saturating_sub(before)
            })
            .collect()
    }
}

/// A histogram's counts at one moment ([`Histogram::mark`]).
#[derive(Debug, Clone, Default)]
pub struct HistogramMark(Vec<u64>);

fn quantile_ns(counts: &[u64], q: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return bucket_upper(i);
        }
    }
    bucket_upper(counts.len() - 1)
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
}

/// One opportunity as a trader tells two apart: the same pair, direction,
/// prices and size found again on the next book change is the same one.
type OpportunityKey = (Venue, Price, Price, Size);

/// The opportunities one plugin found, priced by the host's fee models (exact).
#[derive(Debug, Clone, Default)]
pub struct EdgeTally {
    /// Opportunities that differ from the pair's previous one.
    pub distinct: u64,
    /// Net edge (after both fees, whole size) summed over the distinct ones.
    pub total_net_edge: Usd,
    /// The largest net edge of any opportunity found.
    pub best_net_edge: Option<Usd>,
    last: HashMap<u32, OpportunityKey>,
}

impl EdgeTally {
    pub fn record(&mut self, market: u32, o: &Opportunity) {
        let key = (o.buy_yes_on, o.yes_price, o.no_price, o.size);
        if self.last.insert(market, key) != Some(key) {
            self.distinct += 1;
            self.total_net_edge = self.total_net_edge + o.net_edge;
        }
        if self.best_net_edge.is_none_or(|b| o.net_edge > b) {
            self.best_net_edge = Some(o.net_edge);
        }
    }
}

#[derive(Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub opportunities: AtomicU64,
    pub faults: AtomicU64,
    pub latency: Histogram,
    pub last_error: Mutex<Option<String>>,
    /// Only touched when an opportunity is found, never on a plain evaluation.
    pub edges: Mutex<EdgeTally>,
}

impl PluginStats {
    pub fn found(&self, market: u32, o: &Opportunity) {
        self.edges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(market, o);
    }
    pub fn edges(&self) -> EdgeTally {
        self.edges.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn fault(&self, message: String) {
        self.faults.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_within_a_bucket_of_the_truth() {
        let h = Histogram::default();
        for ns in 1..=10_000u64 {
            h.record_ns(ns);
        }
        let p50 = h.quantile_ns(0.5);
        assert!((5_000..=5_400).contains(&p50), "{p50}");
        let p99 = h.quantile_ns(0.99);
        assert!((9_900..=10_600).contains(&p99), "{p99}");
        assert_eq!(h.count(), 10_000);
        assert_eq!(Histogram::default().quantile_ns(0.5), 0);
    }

    #[test]
    fn a_summary_since_a_mark_leaves_out_what_came_before() {
        let h = Histogram::default();
        for _ in 0..1_000 {
            h.record_ns(50_000_000);
        }
        let mark = h.mark();
        for ns in 1..=100u64 {
            h.record_ns(ns * 1_000);
        }
        let since = h.summary_since(&mark);
        assert_eq!(since.count, 100);
        assert!(since.p999_ns <= 106_000, "{since:?}");
        assert!(h.summary().p50_ns >= 50_000_000);
    }

    #[test]
    fn the_same_opportunity_found_again_counts_once_in_the_edge_total() {
        use crate::domain::{PairFees, PairId};
        let price = |s| Price::parse(s).unwrap();
        let opp = |yes, size| {
            Opportunity::price(
                PairId("a".into()),
                "p",
                Venue::Kalshi,
                price(yes),
                price("0.50"),
                Size::whole(size),
                &PairFees::default(),
                0,
            )
        };
        let mut t = EdgeTally::default();
        let first = opp("0.40", 10);
        t.record(0, &first);
        t.record(0, &first);
        assert_eq!((t.distinct, t.total_net_edge), (1, first.net_edge));
        let better = opp("0.38", 10);
        t.record(0, &better);
        t.record(1, &first);
        assert_eq!(t.distinct, 3);
        assert_eq!(
            t.total_net_edge,
            first.net_edge + better.net_edge + first.net_edge
        );
        assert_eq!(t.best_net_edge, Some(better.net_edge));
        assert!(better.net_edge > first.net_edge);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for ns in [1u64, 2, 3, 15, 16, 17, 31, 32, 1000, 1 << 20, 1 << 33] {
            let b = bucket_of(ns);
            assert!(b >= last);
            assert!(bucket_upper(b) >= ns, "{ns}");
            last = b;
        }
    }
}

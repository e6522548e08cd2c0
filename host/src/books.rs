//! The live books of every market pair: written by the feed adapters, read by
//! the strategy runtime and the API.
//!
//! Each pair gets a stable index when it is added (the number plugins see in
//! `market-view.market`); indexes are never reused, so a plugin can never
//! confuse a removed pair with a new one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rust_decimal::Decimal;

use crate::domain::{MarketPair, MarketState, Outcome, PairFees, PairId, Size};

/// One pair's books and trading parameters.
#[derive(Debug)]
pub struct PairEntry {
    pub index: u32,
    pub pair: MarketPair,
    pub fees: PairFees,
    /// Polymarket's minimum order size for this market (shares).
    pub polymarket_min_size: Size,
    /// Polymarket's price tick per outcome token (YES, NO), kept current from
    /// `tick_size_change`: orders are signed on it.
    polymarket_ticks: Mutex<[Decimal; 2]>,
    state: Mutex<MarketState>,
}

impl PairEntry {
    /// The pair's books. Hold the guard briefly: feeds write under it.
    pub fn state(&self) -> MutexGuard<'_, MarketState> {
        // Book updates are applied whole (a delta is checked before it changes
        // anything), so a panic elsewhere cannot leave a half-applied book.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current Polymarket tick of `outcome`'s token (0.01 until told otherwise).
    pub fn polymarket_tick(&self, outcome: Outcome) -> Decimal {
        self.polymarket_ticks
            .lock()
            .unwrap_or_else(|e| e.into_inner())[outcome as usize]
    }

    pub fn set_polymarket_tick(&self, outcome: Outcome, tick: Decimal) {
        self.polymarket_ticks
            .lock()
            .unwrap_or_else(|e| e.into_inner())[outcome as usize] = tick;
    }
}

#[derive(Default)]
struct Inner {
    /// In id order, for listings.
    by_id: BTreeMap<PairId, Arc<PairEntry>>,
    /// The same entries hashed: the feeds and the strategy look a pair up on
    /// every book change.
    lookup: rustc_hash::FxHashMap<PairId, Arc<PairEntry>>,
    next_index: u32,
}

#[derive(Default)]
pub struct BookStore {
    inner: RwLock<Inner>,
}

impl BookStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair (or replaces its parameters, keeping its index and books).
    pub fn add(
        &self,
        pair: MarketPair,
        fees: PairFees,
        polymarket_min_size: Size,
    ) -> Arc<PairEntry> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let (index, state, ticks) = match inner.by_id.get(&pair.id) {
            Some(old) => (
                old.index,
                old.state().clone(),
                *old.polymarket_ticks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            ),
            None => {
                inner.next_index += 1;
                (
                    inner.next_index - 1,
                    MarketState::new(pair.clone()),
                    [Decimal::new(1, 2); 2],
                )
            }
        };
        let entry = Arc::new(PairEntry {
            index,
            pair: pair.clone(),
            fees,
            polymarket_min_size,
            polymarket_ticks: Mutex::new(ticks),
            state: Mutex::new(state),
        });
        inner.lookup.insert(pair.id.clone(), entry.clone());
        inner.by_id.insert(pair.id, entry.clone());
        entry
    }

    pub fn remove(&self, id: &PairId) -> Option<Arc<PairEntry>> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.lookup.remove(id);
        inner.by_id.remove(id)
    }

    pub fn get(&self, id: &PairId) -> Option<Arc<PairEntry>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup
            .get(id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<PairEntry>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Price, Side, TokenId};

    fn pair(id: &str) -> MarketPair {
        MarketPair {
            id: PairId(id.into()),
            kalshi_ticker: "K".into(),
            polymarket_condition_id: "0x1".into(),
            polymarket_yes_token: TokenId::new("1").unwrap(),
            polymarket_no_token: TokenId::new("2").unwrap(),
            neg_risk: false,
            kalshi_rules: String::new(),
            polymarket_rules: String::new(),
            rules_match: true,
        }
    }

    #[test]
    fn indexes_are_stable_and_never_reused() {
        let store = BookStore::new();
        let a = store.add(pair("a"), PairFees::default(), Size::whole(5));
        let b = store.add(pair("b"), PairFees::default(), Size::whole(5));
        assert_eq!((a.index, b.index), (0, 1));
        a.state()
            .kalshi
            .yes
            .set_level(Side::Bid, Price::parse("0.4").unwrap(), Size::whole(1));
        let a2 = store.add(pair("a"), PairFees::default(), Size::whole(1));
        assert_eq!(a2.index, 0, "re-adding keeps the index");
        assert!(a2.state().kalshi.yes.best_bid().is_some(), "and the books");
        store.remove(&PairId("b".into()));
        let c = store.add(pair("c"), PairFees::default(), Size::whole(5));
        assert_eq!(c.index, 2);
        assert_eq!(store.len(), 2);
    }
}

//! The order book of one outcome token on one venue.
//!
//! Bids and asks by price level. Two ways to change a level, one per venue:
//! Kalshi sends signed deltas, Polymarket sends the absolute new size. A level is
//! present only with a positive size, so the book never holds zero or negative levels.

use std::collections::BTreeMap;

use super::money::{Price, Size, SizeDelta, Usd};

/// Which side of the book a level rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Bid,
    Ask,
}

/// A price level as a venue reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub price: Price,
    pub size: Size,
}

impl Level {
    pub fn new(price: Price, size: Size) -> Self {
        Level { price, size }
    }
}

/// A change that would break the book; the book is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("delta of {delta} at {price} would leave {side:?} size negative (had {had})")]
    NegativeLevel {
        side: Side,
        price: Price,
        had: Size,
        delta: rust_decimal::Decimal,
    },
}

/// What a walk of the asks up to a limit price finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fillable {
    /// Total size offered at or below the limit.
    pub size: Size,
    /// What buying all of it costs, before fees.
    pub cost: Usd,
    /// The worst (highest) price touched, if any.
    pub worst_price: Option<Price>,
}

impl Fillable {
    /// Average price per contract, if anything is fillable.
    pub fn average_price(&self) -> Option<rust_decimal::Decimal> {
        (!self.size.is_zero()).then(|| self.cost.value() / self.size.value())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderBook {
    bids: BTreeMap<Price, Size>,
    asks: BTreeMap<Price, Size>,
}

impl OrderBook {
    pub fn new() -> Self {
        Self::default()
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Price, Size> {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    /// Replaces the whole book. Zero-size levels are dropped; a price repeated in
    /// the snapshot keeps its last size (venues never do this, but it must not
    /// corrupt the book if one does).
    pub fn apply_snapshot(&mut self, bids: &[Level], asks: &[Level]) {
        self.bids.clear();
        self.asks.clear();
        for l in bids {
            self.set_level(Side::Bid, l.price, l.size);
        }
        for l in asks {
            self.set_level(Side::Ask, l.price, l.size);
        }
    }

    /// Polymarket `price_change`: the level's new absolute size; 0 removes it.
    pub fn set_level(&mut self, side: Side, price: Price, size: Size) {
        let levels = self.side_mut(side);
        if size.is_zero() {
            levels.remove(&price);
        } else {
            levels.insert(price, size);
        }
    }

    /// Kalshi `orderbook_delta`: a signed change to the level's size. A result of
    /// zero removes the level; a negative result is refused (the feed and our book
    /// disagree, so the caller must re-synchronise).
    pub fn apply_delta(
        &mut self,
        side: Side,
        price: Price,
        delta: SizeDelta,
    ) -> Result<(), BookError> {
        let levels = self.side_mut(side);
        let had = levels.get(&price).copied().unwrap_or(Size::ZERO);
        let new = had.value() + delta.value();
        if new.is_sign_negative() && !new.is_zero() {
            return Err(BookError::NegativeLevel {
                side,
                price,
                had,
                delta: delta.value(),
            });
        }
        // `new` has at most 6 decimals and is non-negative, so this cannot fail.
        let size = Size::new(new).map_err(|_| BookError::NegativeLevel {
            side,
            price,
            had,
            delta: delta.value(),
        })?;
        self.set_level(side, price, size);
        Ok(())
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids
            .iter()
            .next_back()
            .map(|(p, s)| Level::new(*p, *s))
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.iter().next().map(|(p, s)| Level::new(*p, *s))
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids.iter().rev().map(|(p, s)| Level::new(*p, *s))
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.iter().map(|(p, s)| Level::new(*p, *s))
    }

    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    /// Size offered at or below `limit` and what it costs: what a buy with that
    /// limit could fill.
    pub fn walk_asks_to(&self, limit: Price) -> Fillable {
        walk(self.asks.range(..=limit).map(|(p, s)| Level::new(*p, *s)))
    }
}

/// Sums a best-first ladder of levels.
pub fn walk(levels: impl Iterator<Item = Level>) -> Fillable {
    let mut out = Fillable {
        size: Size::ZERO,
        cost: Usd::ZERO,
        worst_price: None,
    };
    for l in levels {
        out.size = out.size + l.size;
        out.cost = out.cost + l.price * l.size;
        out.worst_price = Some(l.price);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }
    fn s(v: &str) -> Size {
        Size::parse(v).unwrap()
    }
    fn d(v: &str) -> SizeDelta {
        SizeDelta::parse(v).unwrap()
    }

    #[test]
    fn snapshot_sets_best_prices_regardless_of_order() {
        let mut b = OrderBook::new();
        // Polymarket sends both sides worst-first; order must not matter.
        b.apply_snapshot(
            &[
                Level::new(p("0.01"), s("1500")),
                Level::new(p("0.23"), s("40")),
                Level::new(p("0.22"), s("120")),
            ],
            &[
                Level::new(p("0.99"), s("800")),
                Level::new(p("0.24"), s("35")),
                Level::new(p("0.25"), s("60")),
            ],
        );
        assert_eq!(b.best_bid(), Some(Level::new(p("0.23"), s("40"))));
        assert_eq!(b.best_ask(), Some(Level::new(p("0.24"), s("35"))));
        assert_eq!(
            b.bids().map(|l| l.price).collect::<Vec<_>>(),
            vec![p("0.23"), p("0.22"), p("0.01")]
        );
    }

    #[test]
    fn snapshot_replaces_everything_and_drops_zero_levels() {
        let mut b = OrderBook::new();
        b.apply_snapshot(&[Level::new(p("0.5"), s("1"))], &[]);
        b.apply_snapshot(
            &[Level::new(p("0.4"), s("0"))],
            &[Level::new(p("0.6"), s("2"))],
        );
        assert_eq!(b.best_bid(), None);
        assert_eq!(b.best_ask(), Some(Level::new(p("0.6"), s("2"))));
    }

    #[test]
    fn kalshi_delta_adds_and_removes() {
        let mut b = OrderBook::new();
        b.apply_delta(Side::Bid, p("0.42"), d("10.00")).unwrap();
        b.apply_delta(Side::Bid, p("0.42"), d("-2.50")).unwrap();
        assert_eq!(b.best_bid(), Some(Level::new(p("0.42"), s("7.5"))));
        b.apply_delta(Side::Bid, p("0.42"), d("-7.50")).unwrap();
        assert_eq!(b.best_bid(), None, "a level that reaches zero is removed");
    }

    #[test]
    fn kalshi_delta_below_zero_is_refused_and_book_untouched() {
        let mut b = OrderBook::new();
        b.apply_delta(Side::Bid, p("0.42"), d("1")).unwrap();
        let before = b.clone();
        let err = b.apply_delta(Side::Bid, p("0.42"), d("-2")).unwrap_err();
        assert!(matches!(err, BookError::NegativeLevel { .. }));
        assert_eq!(b, before);
        assert!(
            b.apply_delta(Side::Ask, p("0.5"), d("-1")).is_err(),
            "negative on an empty level"
        );
    }

    #[test]
    fn polymarket_change_sets_absolute_size() {
        let mut b = OrderBook::new();
        b.set_level(Side::Ask, p("0.55"), s("100"));
        b.set_level(Side::Ask, p("0.55"), s("30"));
        assert_eq!(b.best_ask(), Some(Level::new(p("0.55"), s("30"))));
        b.set_level(Side::Ask, p("0.55"), s("0"));
        assert!(b.is_empty());
    }

    #[test]
    fn walk_asks_to_limit_sums_size_and_cost() {
        let mut b = OrderBook::new();
        b.apply_snapshot(
            &[],
            &[
                Level::new(p("0.40"), s("10")),
                Level::new(p("0.41"), s("5")),
                Level::new(p("0.45"), s("100")),
            ],
        );
        let f = b.walk_asks_to(p("0.41"));
        assert_eq!(f.size, s("15"));
        assert_eq!(f.cost.value(), dec!(6.05));
        assert_eq!(f.worst_price, Some(p("0.41")));
        assert_eq!(f.average_price().unwrap().round_dp(6), dec!(0.403333));
        let none = b.walk_asks_to(p("0.39"));
        assert!(none.size.is_zero());
        assert_eq!(none.average_price(), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Snapshot(Vec<(u32, u32)>, Vec<(u32, u32)>),
        Delta(bool, u32, i32),
        Set(bool, u32, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let lvl = (1u32..100, 0u32..50);
        prop_oneof![
            (
                prop::collection::vec(lvl.clone(), 0..8),
                prop::collection::vec(lvl, 0..8)
            )
                .prop_map(|(b, a)| Op::Snapshot(b, a)),
            (any::<bool>(), 1u32..100, -30i32..30).prop_map(|(s, p, d)| Op::Delta(s, p, d)),
            (any::<bool>(), 1u32..100, 0u32..50).prop_map(|(s, p, z)| Op::Set(s, p, z)),
        ]
    }

    fn cents(c: u32) -> Price {
        Price::new(rust_decimal::Decimal::new(i64::from(c), 2)).unwrap()
    }
    fn side(bid: bool) -> Side {
        if bid { Side::Bid } else { Side::Ask }
    }

    proptest! {
        /// Any sequence of snapshots, deltas and absolute changes keeps the book
        /// sorted with only positive levels, and equals a model rebuilt from scratch.
        #[test]
        fn any_update_sequence_keeps_book_valid(ops in prop::collection::vec(op(), 0..60)) {
            let mut book = OrderBook::new();
            let mut model: [BTreeMap<u32, i64>; 2] = Default::default();
            for o in &ops {
                match o {
                    Op::Snapshot(b, a) => {
                        let lv = |v: &Vec<(u32, u32)>| v.iter().map(|(pc, z)| Level::new(cents(*pc), Size::whole(u64::from(*z)))).collect::<Vec<_>>();
                        book.apply_snapshot(&lv(b), &lv(a));
                        for (i, src) in [b, a].into_iter().enumerate() {
                            model[i].clear();
                            for (pc, z) in src { if *z > 0 { model[i].insert(*pc, i64::from(*z)); } else { model[i].remove(pc); } }
                        }
                    }
                    Op::Delta(bid, pc, dz) => {
                        let i = usize::from(!*bid);
                        let had = model[i].get(pc).copied().unwrap_or(0);
                        let res = book.apply_delta(side(*bid), cents(*pc), SizeDelta::new((*dz).into()).unwrap());
                        let new = had + i64::from(*dz);
                        prop_assert_eq!(res.is_ok(), new >= 0);
                        if new > 0 { model[i].insert(*pc, new); } else if new == 0 { model[i].remove(pc); }
                    }
                    Op::Set(bid, pc, z) => {
                        let i = usize::from(!*bid);
                        book.set_level(side(*bid), cents(*pc), Size::whole(u64::from(*z)));
                        if *z > 0 { model[i].insert(*pc, i64::from(*z)); } else { model[i].remove(pc); }
                    }
                }
                let bids: Vec<Level> = book.bids().collect();
                let asks: Vec<Level> = book.asks().collect();
                prop_assert!(bids.windows(2).all(|w| w[0].price > w[1].price));
                prop_assert!(asks.windows(2).all(|w| w[0].price < w[1].price));
                prop_assert!(bids.iter().chain(&asks).all(|l| !l.size.is_zero()));
                // Rebuilt from scratch from the model, the book is identical.
                let mut rebuilt = OrderBook::new();
                let lv = |m: &BTreeMap<u32, i64>| m.iter().map(|(pc, z)| Level::new(cents(*pc), Size::whole(*z as u64))).collect::<Vec<_>>();
                rebuilt.apply_snapshot(&lv(&model[0]), &lv(&model[1]));
                prop_assert_eq!(&book, &rebuilt);
            }
        }
    }
}

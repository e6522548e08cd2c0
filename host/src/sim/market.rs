//! The simulated markets: one fair value per pair, walking at random, and the
//! books both venues show around it (loosely tied: each venue adds its own
//! noise). Scripted arbitrage windows override the top of book for a while.
//!
//! Pure: the caller supplies the random numbers and the time, and receives the
//! level changes to put on each venue's wire.

use rand::Rng;
use rust_decimal::Decimal;

use crate::domain::{Level, OrderBook, Price, Side, Size};

/// Tick of both simulated venues.
const TICK: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
const LEVELS: i64 = 3;

/// Which way an arbitrage window opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArbDirection {
    /// Kalshi YES + Polymarket NO cost less than $1.
    KalshiYes,
    /// Polymarket YES + Kalshi NO cost less than $1.
    PolymarketYes,
}

/// A scripted window: the two legs cost `1 − edge` for `size` contracts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArbWindow {
    pub direction: ArbDirection,
    pub edge: Decimal,
    pub size: Size,
    pub until_us: u64,
}

/// The four books of one pair as the venues publish them: Kalshi bids only
/// (YES bids and NO bids, NO in NO-leg prices), Polymarket a full book per token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VenueBooks {
    pub kalshi_yes: OrderBook,
    pub kalshi_no: OrderBook,
    pub poly_yes: OrderBook,
    pub poly_no: OrderBook,
}

/// One level that changed: the new size (0 = gone) and the signed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelDiff {
    pub side: Side,
    pub price: Price,
    pub new_size: Size,
    pub delta: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookDiff {
    pub kalshi_yes: Vec<LevelDiff>,
    pub kalshi_no: Vec<LevelDiff>,
    pub poly_yes: Vec<LevelDiff>,
    pub poly_no: Vec<LevelDiff>,
}

impl BookDiff {
    pub fn is_empty(&self) -> bool {
        self.kalshi_yes.is_empty()
            && self.kalshi_no.is_empty()
            && self.poly_yes.is_empty()
            && self.poly_no.is_empty()
    }
}

fn diff_book(old: &OrderBook, new: &OrderBook) -> Vec<LevelDiff> {
    let mut out = Vec::new();
    for side in [Side::Bid, Side::Ask] {
        let levels = |b: &OrderBook| -> Vec<Level> {
            match side {
                Side::Bid => b.bids().collect(),
                Side::Ask => b.asks().collect(),
            }
        };
        let (o, n) = (levels(old), levels(new));
        for l in &n {
            let had = o
                .iter()
                .find(|x| x.price == l.price)
                .map_or(Size::ZERO, |x| x.size);
            if had != l.size {
                out.push(LevelDiff {
                    side,
                    price: l.price,
                    new_size: l.size,
                    delta: l.size.value() - had.value(),
                });
            }
        }
        for l in &o {
            if !n.iter().any(|x| x.price == l.price) {
                out.push(LevelDiff {
                    side,
                    price: l.price,
                    new_size: Size::ZERO,
                    delta: -l.size.value(),
                });
            }
        }
    }
    out
}

/// Which of a pair's four books a resting order shows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteBook {
    KalshiYes,
    KalshiNo,
    PolyYes,
    PolyNo,
}

/// One level's worth of a resting (GTC/GTD) order: shown in the book until
/// cancelled, through every rebuild. The simulator has no flow that would
/// fill it (takers that reach it take the level, not the order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestingQuote {
    pub order_id: String,
    pub book: QuoteBook,
    pub side: Side,
    pub price: Price,
    pub size: Size,
}

fn book_of(b: &mut VenueBooks, which: QuoteBook) -> &mut OrderBook {
    match which {
        QuoteBook::KalshiYes => &mut b.kalshi_yes,
        QuoteBook::KalshiNo => &mut b.kalshi_no,
        QuoteBook::PolyYes => &mut b.poly_yes,
        QuoteBook::PolyNo => &mut b.poly_no,
    }
}

/// Adds (or removes) quotes' sizes at their levels.
fn overlay(b: &mut VenueBooks, quotes: &[RestingQuote], add: bool) {
    for q in quotes {
        let book = book_of(b, q.book);
        let levels: Vec<Level> = match q.side {
            Side::Bid => book.bids().collect(),
            Side::Ask => book.asks().collect(),
        };
        let had = levels
            .iter()
            .find(|l| l.price == q.price)
            .map_or(Size::ZERO, |l| l.size);
        let now = if add {
            had + q.size
        } else {
            had.checked_sub(q.size).unwrap_or(Size::ZERO)
        };
        book.set_level(q.side, q.price, now);
    }
}

pub struct SimMarket {
    /// Fair probability of YES, in ticks (1..99).
    fair_ticks: i64,
    /// Each venue's own offset from the fair value, in ticks (loose tie).
    poly_offset: i64,
    pub window: Option<ArbWindow>,
    /// Scripted "thin depth": every level holds at most this much.
    pub max_level_size: Option<Size>,
    /// Polymarket's tick for both tokens (what `tick_size_change` announces).
    pub polymarket_tick: Decimal,
    books: VenueBooks,
    /// Resting orders, laid over every rebuilt book.
    resting: Vec<RestingQuote>,
}

fn price(ticks: i64) -> Option<Price> {
    Price::new(TICK * Decimal::from(ticks)).ok()
}

impl SimMarket {
    pub fn new(fair_ticks: i64) -> Self {
        SimMarket {
            fair_ticks: fair_ticks.clamp(10, 90),
            poly_offset: 0,
            window: None,
            polymarket_tick: Decimal::new(1, 2),
            max_level_size: None,
            books: VenueBooks::default(),
            resting: Vec::new(),
        }
    }

    /// Shows a resting order's quotes in the book; returns the change to broadcast.
    pub fn rest(&mut self, quotes: Vec<RestingQuote>) -> BookDiff {
        let mut next = self.books.clone();
        overlay(&mut next, &quotes, true);
        self.resting.extend(quotes);
        self.diff_to(next)
    }

    /// Takes a cancelled order's quotes out of the book; returns the change.
    pub fn unrest(&mut self, order_id: &str) -> BookDiff {
        let (gone, kept) = std::mem::take(&mut self.resting)
            .into_iter()
            .partition::<Vec<_>, _>(|q| q.order_id == order_id);
        self.resting = kept;
        let mut next = self.books.clone();
        overlay(&mut next, &gone, false);
        self.diff_to(next)
    }

    fn diff_to(&mut self, next: VenueBooks) -> BookDiff {
        let diff = BookDiff {
            kalshi_yes: diff_book(&self.books.kalshi_yes, &next.kalshi_yes),
            kalshi_no: diff_book(&self.books.kalshi_no, &next.kalshi_no),
            poly_yes: diff_book(&self.books.poly_yes, &next.poly_yes),
            poly_no: diff_book(&self.books.poly_no, &next.poly_no),
        };
        self.books = next;
        diff
    }

    pub fn books(&self) -> &VenueBooks {
        &self.books
    }

    /// For the order endpoints: taken liquidity leaves the book until the next
    /// step rebuilds it (the caller broadcasts what it changed).
    pub fn books_mut(&mut self) -> &mut VenueBooks {
        &mut self.books
    }

    /// Puts `next` in place of the books (tests script exact liquidity this
    /// way) and returns the change to broadcast.
    pub fn replace_books(&mut self, mut next: VenueBooks) -> BookDiff {
        overlay(&mut next, &self.resting, true);
        self.diff_to(next)
    }

    pub fn fair(&self) -> Decimal {
        TICK * Decimal::from(self.fair_ticks)
    }

    /// A random step of the fair value and the venues' noise, then the new books.
    pub fn step(&mut self, rng: &mut impl Rng, now_us: u64) -> BookDiff {
        match rng.gen_range(0..10) {
            0 => self.fair_ticks = (self.fair_ticks - 1).max(10),
            1 => self.fair_ticks = (self.fair_ticks + 1).min(90),
            _ => {}
        }
        if rng.gen_range(0..8) == 0 {
            self.poly_offset = rng.gen_range(-1..=1);
        }
        let sizes: Vec<u64> = (0..4 * LEVELS)
            .map(|_| rng.gen_range(1..=20) * 10)
            .collect();
        self.rebuild(&sizes, now_us)
    }

    /// Rebuilds the books from the fair value, the sizes (one per level, in
    /// order: Kalshi YES, Kalshi NO, Polymarket YES, Polymarket NO) and any
    /// window still open; returns what changed.
    pub fn rebuild(&mut self, sizes: &[u64], now_us: u64) -> BookDiff {
        if self.window.is_some_and(|w| w.until_us <= now_us) {
            self.window = None;
        }
        let size_at = |i: usize| {
            let s = Size::whole(sizes.get(i).copied().unwrap_or(100));
            self.max_level_size.map_or(s, |m| s.min(m))
        };
        let f = self.fair_ticks;
        let mut next = VenueBooks::default();
        // Spreads of two ticks around fair on both venues, so quotes do not cross
        // each other by themselves: no arbitrage without a scripted window.
        for k in 0..LEVELS {
            let i = k as usize;
            if let Some(p) = price(f - 1 - k) {
                next.kalshi_yes.set_level(Side::Bid, p, size_at(i));
            }
            if let Some(p) = price(100 - f - 1 - k) {
                next.kalshi_no
                    .set_level(Side::Bid, p, size_at(LEVELS as usize + i));
            }
            let pf = f + self.poly_offset;
            if let (Some(bid), Some(ask)) = (price(pf - 1 - k), price(pf + 1 + k)) {
                next.poly_yes
                    .set_level(Side::Bid, bid, size_at(2 * LEVELS as usize + i));
                next.poly_yes
                    .set_level(Side::Ask, ask, size_at(2 * LEVELS as usize + i));
            }
            if let (Some(bid), Some(ask)) = (price(100 - pf - 1 - k), price(100 - pf + 1 + k)) {
                next.poly_no
                    .set_level(Side::Bid, bid, size_at(3 * LEVELS as usize + i));
                next.poly_no
                    .set_level(Side::Ask, ask, size_at(3 * LEVELS as usize + i));
            }
        }
        if let Some(w) = self.window {
            apply_window(&mut next, f, &w);
        }
        overlay(&mut next, &self.resting, true);
        self.diff_to(next)
    }
}

/// Puts the window's two legs at the top of their books: YES at the fair price
/// on one venue and NO at `1 − edge − fair` on the other.
fn apply_window(b: &mut VenueBooks, fair_ticks: i64, w: &ArbWindow) {
    let yes = TICK * Decimal::from(fair_ticks);
    let no = Decimal::ONE - w.edge - yes;
    let (Ok(yes), Ok(no)) = (Price::new(yes), Price::new(no)) else {
        return;
    };
    match w.direction {
        ArbDirection::KalshiYes => {
            // Kalshi YES ask at `yes` = a NO bid at 1 − yes, above every other NO bid.
            clear_above(&mut b.kalshi_no, Side::Bid, yes.complement());
            b.kalshi_no.set_level(Side::Bid, yes.complement(), w.size);
            clear_below(&mut b.poly_no, Side::Ask, no);
            b.poly_no.set_level(Side::Ask, no, w.size);
        }
        ArbDirection::PolymarketYes => {
            clear_below(&mut b.poly_yes, Side::Ask, yes);
            b.poly_yes.set_level(Side::Ask, yes, w.size);
            // Kalshi NO ask at `no` = a YES bid at 1 − no.
            clear_above(&mut b.kalshi_yes, Side::Bid, no.complement());
            b.kalshi_yes.set_level(Side::Bid, no.complement(), w.size);
        }
    }
}

fn clear_above(book: &mut OrderBook, side: Side, p: Price) {
    let levels: Vec<Level> = book.bids().filter(|l| l.price >= p).collect();
    for l in levels {
        book.set_level(side, l.price, Size::ZERO);
    }
}

fn clear_below(book: &mut OrderBook, side: Side, p: Price) {
    let levels: Vec<Level> = book.asks().filter(|l| l.price <= p).collect();
    for l in levels {
        book.set_level(side, l.price, Size::ZERO);
    }
    // The mirror side may now cross the new ask: drop bids at or above it.
    let crossing: Vec<Level> = book.bids().filter(|l| l.price >= p).collect();
    for l in crossing {
        book.set_level(Side::Bid, l.price, Size::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MarketOutcomes, Outcome, Venue};
    use rand::SeedableRng;

    fn outcomes(yes: &OrderBook, no: &OrderBook) -> MarketOutcomes {
        MarketOutcomes {
            yes: yes.clone(),
            no: no.clone(),
            updated_at: Some(0),
            stale: false,
        }
    }

    fn best_cost(b: &VenueBooks, d: ArbDirection) -> Decimal {
        let k = outcomes(&b.kalshi_yes, &b.kalshi_no);
        let p = outcomes(&b.poly_yes, &b.poly_no);
        match d {
            ArbDirection::KalshiYes => {
                k.best_ask(Venue::Kalshi, Outcome::Yes)
                    .unwrap()
                    .price
                    .value()
                    + p.best_ask(Venue::Polymarket, Outcome::No)
                        .unwrap()
                        .price
                        .value()
            }
            ArbDirection::PolymarketYes => {
                p.best_ask(Venue::Polymarket, Outcome::Yes)
                    .unwrap()
                    .price
                    .value()
                    + k.best_ask(Venue::Kalshi, Outcome::No)
                        .unwrap()
                        .price
                        .value()
            }
        }
    }

    #[test]
    fn random_walk_never_opens_an_arbitrage_by_itself() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut m = SimMarket::new(50);
        for t in 0..2_000 {
            m.step(&mut rng, t);
            for d in [ArbDirection::KalshiYes, ArbDirection::PolymarketYes] {
                assert!(best_cost(m.books(), d) >= Decimal::ONE, "t={t} {d:?}");
            }
        }
    }

    #[test]
    fn a_window_prices_both_legs_at_one_minus_edge_until_it_closes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut m = SimMarket::new(40);
        m.step(&mut rng, 0);
        for d in [ArbDirection::KalshiYes, ArbDirection::PolymarketYes] {
            m.window = Some(ArbWindow {
                direction: d,
                edge: Decimal::new(4, 2),
                size: Size::whole(50),
                until_us: 100,
            });
            let diff = m.rebuild(&[100; 12], 10);
            assert!(!diff.is_empty());
            assert_eq!(best_cost(m.books(), d), Decimal::new(96, 2), "{d:?}");
            m.rebuild(&[100; 12], 100);
            assert!(best_cost(m.books(), d) >= Decimal::ONE, "closed {d:?}");
        }
    }

    #[test]
    fn diffs_rebuild_the_new_books_from_the_old() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut m = SimMarket::new(60);
        let mut replica = VenueBooks::default();
        for t in 0..500 {
            let d = m.step(&mut rng, t);
            for (book, changes) in [
                (&mut replica.kalshi_yes, &d.kalshi_yes),
                (&mut replica.kalshi_no, &d.kalshi_no),
                (&mut replica.poly_yes, &d.poly_yes),
                (&mut replica.poly_no, &d.poly_no),
            ] {
                for c in changes {
                    book.set_level(c.side, c.price, c.new_size);
                }
            }
            assert_eq!(&replica, m.books());
        }
    }

    #[test]
    fn a_resting_order_stays_in_the_book_through_rebuilds_until_lifted() {
        let mut m = SimMarket::new(50);
        m.rebuild(&[100; 12], 0);
        let bid = Price::new(Decimal::new(5, 2)).unwrap();
        let d = m.rest(vec![RestingQuote {
            order_id: "o1".into(),
            book: QuoteBook::KalshiYes,
            side: Side::Bid,
            price: bid,
            size: Size::whole(7),
        }]);
        assert_eq!(d.kalshi_yes.len(), 1);
        let at = |m: &SimMarket| {
            m.books()
                .kalshi_yes
                .bids()
                .find(|l| l.price == bid)
                .map(|l| l.size)
        };
        assert_eq!(at(&m), Some(Size::whole(7)));
        m.rebuild(&[90; 12], 1);
        assert_eq!(at(&m), Some(Size::whole(7)), "kept through a rebuild");
        let d = m.unrest("o1");
        assert_eq!(d.kalshi_yes[0].new_size, Size::ZERO);
        assert_eq!(at(&m), None);
        m.rebuild(&[90; 12], 2);
        assert_eq!(at(&m), None, "gone for good");
    }

    #[test]
    fn thin_depth_caps_every_level() {
        let mut m = SimMarket::new(50);
        m.max_level_size = Some(Size::whole(2));
        m.rebuild(&[100; 12], 0);
        assert!(m.books().poly_no.asks().all(|l| l.size <= Size::whole(2)));
    }
}

//! Domain state → the numbers-only `market-view` a plugin sees.
//!
//! Prices become micro-dollars, sizes hundredths (rounded down: a plugin must
//! never see more size than exists), fees parts per million (rounded up: never
//! cheaper than the venue charges).

use rust_decimal::Decimal;

use super::bindings::top::{MarketTerms, TopView, VenueTerms, VenueTop};
use super::bindings::{MarketView, VenueQuote};
use crate::books::PairEntry;
use crate::domain::{
    Level, MarketOutcomes, MarketState, Outcome, PairFees, Size, UnixMicros, Venue,
};

/// Levels per ladder in every view.
pub const DEPTH: u32 = 5;

fn ppm(rate: Decimal) -> u32 {
    // ceil(x) = -floor(-x), without a Decimal multiply on every evaluation.
    crate::domain::money::scaled_floor(-rate, 6)
        .and_then(|m| u32::try_from(-m).ok())
        .unwrap_or(u32::MAX)
}

fn top(level: Option<Level>) -> (u32, u64) {
    level.map_or((0, 0), |l| (l.price.to_micros(), l.size.to_hundredths()))
}

fn quote(
    venue: Venue,
    book: &MarketOutcomes,
    fees: &PairFees,
    min_size: Size,
    now: UnixMicros,
) -> VenueQuote {
    let (yes_ask, yes_ask_size) = top(book.best_ask(venue, Outcome::Yes));
    let (no_ask, no_ask_size) = top(book.best_ask(venue, Outcome::No));
    let (taker_fee_ppm, fee_exponent) = match venue {
        Venue::Kalshi => (ppm(fees.kalshi.taker_coefficient()), 1),
        Venue::Polymarket => (ppm(fees.polymarket.rate), fees.polymarket.exponent),
    };
    VenueQuote {
        yes_ask,
        yes_ask_size,
        no_ask,
        no_ask_size,
        yes_bid: book
            .best_bid(Outcome::Yes)
            .map_or(0, |l| l.price.to_micros()),
        no_bid: book
            .best_bid(Outcome::No)
            .map_or(0, |l| l.price.to_micros()),
        book_age_us: book.age(now).unwrap_or(u64::MAX),
        taker_fee_ppm,
        fee_exponent,
        min_size: min_size.to_hundredths().max(1),
        size_step: 1,
    }
}

/// Builds the view of one pair into `out`, reusing its ladder buffer.
pub fn fill_view(
    out: &mut MarketView,
    index: u32,
    state: &MarketState,
    fees: &PairFees,
    poly_min: Size,
    now: UnixMicros,
) {
    fill_quotes(out, index, state, fees, poly_min, now);
    fill_ladders(out, state);
}

/// The view's scalars (everything but the ladders): all a `top-of-book`
/// plugin is given.
pub fn fill_quotes(
    out: &mut MarketView,
    index: u32,
    state: &MarketState,
    fees: &PairFees,
    poly_min: Size,
    now: UnixMicros,
) {
    out.market = index;
    out.now_us = now;
    out.kalshi = quote(
        Venue::Kalshi,
        &state.kalshi,
        fees,
        Size::from_hundredths(1),
        now,
    );
    out.polymarket = quote(Venue::Polymarket, &state.polymarket, fees, poly_min, now);
}

/// The view's ladders: `DEPTH` ask levels per outcome and venue.
pub fn fill_ladders(out: &mut MarketView, state: &MarketState) {
    out.depth = DEPTH;
    out.ladders.clear();
    for (venue, outcome) in [
        (Venue::Kalshi, Outcome::Yes),
        (Venue::Kalshi, Outcome::No),
        (Venue::Polymarket, Outcome::Yes),
        (Venue::Polymarket, Outcome::No),
    ] {
        let mut n = 0;
        for l in state
            .venue(venue)
            .ask_ladder(venue, outcome)
            .take(DEPTH as usize)
        {
            out.ladders.push(l.price.to_micros());
            out.ladders
                .push(u32::try_from(l.size.to_hundredths()).unwrap_or(u32::MAX));
            n += 1;
        }
        for _ in n..DEPTH {
            out.ladders.extend([0, 0]);
        }
    }
}

/// The `top-of-book` call's argument and the pair's terms, from a view's scalars.
pub fn top_of_book(v: &MarketView) -> (TopView, MarketTerms) {
    let top = |q: &VenueQuote| VenueTop {
        yes_ask: q.yes_ask,
        yes_ask_size: q.yes_ask_size,
        no_ask: q.no_ask,
        no_ask_size: q.no_ask_size,
        book_age_us: q.book_age_us,
    };
    let terms = |q: &VenueQuote| VenueTerms {
        taker_fee_ppm: q.taker_fee_ppm,
        fee_exponent: q.fee_exponent,
        min_size: q.min_size,
        size_step: q.size_step,
    };
    (
        TopView {
            market: v.market,
            now_us: v.now_us,
            kalshi: top(&v.kalshi),
            polymarket: top(&v.polymarket),
        },
        MarketTerms {
            market: v.market,
            kalshi: terms(&v.kalshi),
            polymarket: terms(&v.polymarket),
        },
    )
}

pub fn empty_view() -> MarketView {
    let q = VenueQuote {
        yes_ask: 0,
        yes_ask_size: 0,
        no_ask: 0,
        no_ask_size: 0,
        yes_bid: 0,
        no_bid: 0,
        book_age_us: u64::MAX,
        taker_fee_ppm: 0,
        fee_exponent: 1,
        min_size: 1,
        size_step: 1,
    };
    MarketView {
        market: 0,
        now_us: 0,
        kalshi: q,
        polymarket: q,
        depth: DEPTH,
        ladders: Vec::with_capacity(8 * DEPTH as usize),
    }
}

/// The view of one pair now.
pub fn market_view(entry: &PairEntry, now: UnixMicros) -> MarketView {
    let mut v = empty_view();
    fill_view(
        &mut v,
        entry.index,
        &entry.state(),
        &entry.fees,
        entry.polymarket_min_size,
        now,
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MarketPair, PairId, PolymarketFees, Price, Side, TokenId};
    use rust_decimal_macros::dec;

    #[test]
    fn view_carries_derived_kalshi_asks_fees_and_padded_ladders() {
        let pair = MarketPair {
            id: PairId("a".into()),
            kalshi_ticker: "K".into(),
            polymarket_condition_id: "0x1".into(),
            polymarket_yes_token: TokenId::new("1").unwrap(),
            polymarket_no_token: TokenId::new("2").unwrap(),
            neg_risk: false,
            kalshi_rules: String::new(),
            polymarket_rules: String::new(),
            rules_match: true,
        };
        let mut st = MarketState::new(pair);
        let p = |s| Price::parse(s).unwrap();
        st.kalshi
            .no
            .set_level(Side::Bid, p("0.60"), Size::parse("12.345").unwrap());
        st.kalshi.touch(1_000);
        st.polymarket
            .no
            .set_level(Side::Ask, p("0.55"), Size::whole(100));
        st.polymarket
            .no
            .set_level(Side::Ask, p("0.56"), Size::whole(50));
        let fees = PairFees {
            polymarket: PolymarketFees {
                rate: dec!(0.04),
                exponent: 1,
            },
            ..PairFees::default()
        };
        let mut v = empty_view();
        fill_view(&mut v, 7, &st, &fees, Size::whole(5), 3_000);
        assert_eq!(v.market, 7);
        assert_eq!(
            (v.kalshi.yes_ask, v.kalshi.yes_ask_size),
            (400_000, 1234),
            "1 - 0.60, size rounded down"
        );
        assert_eq!(v.kalshi.no_ask, 0, "no YES bids: nothing to buy NO against");
        assert_eq!(v.kalshi.taker_fee_ppm, 70_000);
        assert_eq!(v.kalshi.book_age_us, 2_000);
        assert_eq!(v.polymarket.book_age_us, u64::MAX, "never synchronised");
        assert_eq!(
            (
                v.polymarket.no_ask,
                v.polymarket.no_ask_size,
                v.polymarket.min_size
            ),
            (550_000, 10_000, 500)
        );
        assert_eq!(v.polymarket.taker_fee_ppm, 40_000);
        assert_eq!(v.ladders.len(), 4 * 2 * DEPTH as usize);
        let l = |ladder: usize, i: usize| {
            (
                v.ladders[2 * (ladder * DEPTH as usize + i)],
                v.ladders[2 * (ladder * DEPTH as usize + i) + 1],
            )
        };
        assert_eq!(l(0, 0), (400_000, 1234));
        assert_eq!(l(0, 1), (0, 0));
        assert_eq!(l(3, 0), (550_000, 10_000));
        assert_eq!(l(3, 1), (560_000, 5_000));
    }
}

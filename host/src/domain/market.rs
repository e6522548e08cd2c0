//! Venues, outcomes, matched market pairs and the live state of one pair.
//!
//! Kalshi publishes only bids for YES and NO; buying YES there means taking a NO
//! bid, so its YES ask is 1 − best NO bid and its NO ask is 1 − best YES bid.
//! Polymarket publishes a full book per outcome token, so its asks are read directly.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::book::{BookError, Level, OrderBook};
use super::events::{LevelChange, OrderBookDeltaReceived, OrderBookSnapshotReceived};
use super::money::Size;

/// Microseconds since the Unix epoch. The domain never reads a clock; callers pass time in.
pub type UnixMicros = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Venue {
    Kalshi,
    Polymarket,
}

impl Venue {
    pub const ALL: [Venue; 2] = [Venue::Kalshi, Venue::Polymarket];

    pub fn other(self) -> Venue {
        match self {
            Venue::Kalshi => Venue::Polymarket,
            Venue::Polymarket => Venue::Kalshi,
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Venue::Kalshi => "kalshi",
            Venue::Polymarket => "polymarket",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Yes,
    No,
}

impl Outcome {
    pub fn other(self) -> Outcome {
        match self {
            Outcome::Yes => Outcome::No,
            Outcome::No => Outcome::Yes,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Yes => "yes",
            Outcome::No => "no",
        })
    }
}

/// Our id for a market pair (from the configuration), e.g. "fed-dec-hold".
/// Shared text: every book change carries it, so a copy must not allocate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairId(pub std::sync::Arc<str>);

impl PairId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PairId {
    fn from(s: &str) -> Self {
        PairId(s.into())
    }
}

impl From<String> for PairId {
    fn from(s: String) -> Self {
        PairId(s.into())
    }
}

impl Serialize for PairId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PairId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(PairId::from)
    }
}

impl fmt::Display for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Polymarket outcome token id: a 256-bit decimal integer, kept as its exact
/// digits (never as a number type that would lose them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token id '{0}' is not a decimal integer of at most 78 digits")]
pub struct BadTokenId(pub String);

impl TokenId {
    pub fn new(s: impl Into<String>) -> Result<Self, BadTokenId> {
        let s = s.into();
        // 2^256 has 78 decimal digits.
        if s.is_empty() || s.len() > 78 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadTokenId(s));
        }
        Ok(TokenId(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenId {
    type Error = BadTokenId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TokenId::new(s)
    }
}

impl From<TokenId> for String {
    fn from(t: TokenId) -> String {
        t.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One question listed on both venues: a Kalshi ticker matched to a Polymarket
/// condition with its two outcome tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketPair {
    pub id: PairId,
    pub kalshi_ticker: String,
    pub polymarket_condition_id: String,
    pub polymarket_yes_token: TokenId,
    pub polymarket_no_token: TokenId,
    /// Neg-risk markets are traded through Polymarket's neg-risk exchange.
    #[serde(default)]
    pub neg_risk: bool,
    /// Each venue's resolution rule text, kept with the pair for the operator.
    #[serde(default)]
    pub kalshi_rules: String,
    #[serde(default)]
    pub polymarket_rules: String,
    /// Someone checked that both venues settle the same question the same way.
    /// Only such pairs are traded: different settlement sources are the main
    /// real-world loss of this strategy.
    #[serde(default)]
    pub rules_match: bool,
}

/// The YES and NO books of one venue for one market, and when they last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketOutcomes {
    pub yes: OrderBook,
    pub no: OrderBook,
    /// When the last snapshot or change was applied; `None` before the first snapshot.
    pub updated_at: Option<UnixMicros>,
    /// The feed said this book cannot be trusted (sequence gap, disconnect).
    pub stale: bool,
}

impl MarketOutcomes {
    pub fn book(&self, outcome: Outcome) -> &OrderBook {
        match outcome {
            Outcome::Yes => &self.yes,
            Outcome::No => &self.no,
        }
    }

    pub fn book_mut(&mut self, outcome: Outcome) -> &mut OrderBook {
        match outcome {
            Outcome::Yes => &mut self.yes,
            Outcome::No => &mut self.no,
        }
    }

    /// Microseconds since the last change, `None` if never synchronised.
    pub fn age(&self, now: UnixMicros) -> Option<u64> {
        self.updated_at.map(|t| now.saturating_sub(t))
    }

    pub fn touch(&mut self, now: UnixMicros) {
        self.updated_at = Some(now);
        self.stale = false;
    }

    /// Kalshi: buying YES takes the best NO bid, so YES ask = 1 − best NO bid.
    pub fn kalshi_derived_yes_ask(&self) -> Option<Level> {
        self.no
            .best_bid()
            .map(|l| Level::new(l.price.complement(), l.size))
    }

    /// Kalshi: buying NO takes the best YES bid, so NO ask = 1 − best YES bid.
    pub fn kalshi_derived_no_ask(&self) -> Option<Level> {
        self.yes
            .best_bid()
            .map(|l| Level::new(l.price.complement(), l.size))
    }

    /// The best price to buy `outcome` on `venue`, with its size.
    pub fn best_ask(&self, venue: Venue, outcome: Outcome) -> Option<Level> {
        match (venue, outcome) {
            (Venue::Kalshi, Outcome::Yes) => self.kalshi_derived_yes_ask(),
            (Venue::Kalshi, Outcome::No) => self.kalshi_derived_no_ask(),
            (Venue::Polymarket, o) => self.book(o).best_ask(),
        }
    }

    /// The ladder of prices to buy `outcome` on `venue`, best first.
    pub fn ask_ladder(
        &self,
        venue: Venue,
        outcome: Outcome,
    ) -> Box<dyn Iterator<Item = Level> + '_> {
        match venue {
            Venue::Kalshi => Box::new(
                self.book(outcome.other())
                    .bids()
                    .map(|l| Level::new(l.price.complement(), l.size)),
            ),
            Venue::Polymarket => Box::new(self.book(outcome).asks()),
        }
    }

    /// Best bid for `outcome` (what selling it would fetch).
    pub fn best_bid(&self, outcome: Outcome) -> Option<Level> {
        self.book(outcome).best_bid()
    }
}

/// One market pair across both venues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketState {
    pub pair: MarketPair,
    pub kalshi: MarketOutcomes,
    pub polymarket: MarketOutcomes,
}

impl MarketState {
    pub fn new(pair: MarketPair) -> Self {
        MarketState {
            pair,
            kalshi: MarketOutcomes::default(),
            polymarket: MarketOutcomes::default(),
        }
    }

    pub fn venue(&self, venue: Venue) -> &MarketOutcomes {
        match venue {
            Venue::Kalshi => &self.kalshi,
            Venue::Polymarket => &self.polymarket,
        }
    }

    pub fn venue_mut(&mut self, venue: Venue) -> &mut MarketOutcomes {
        match venue {
            Venue::Kalshi => &mut self.kalshi,
            Venue::Polymarket => &mut self.polymarket,
        }
    }

    pub fn kalshi_derived_yes_ask(&self) -> Option<Level> {
        self.kalshi.kalshi_derived_yes_ask()
    }

    /// Replaces one outcome's book on one venue.
    pub fn apply_snapshot(&mut self, e: &OrderBookSnapshotReceived) {
        let v = self.venue_mut(e.venue);
        v.book_mut(e.outcome).apply_snapshot(&e.bids, &e.asks);
        v.touch(e.received_at);
    }

    /// Applies one level change. A Kalshi delta that would go negative is
    /// refused and leaves the book as it was (the caller re-synchronises).
    pub fn apply_delta(&mut self, e: &OrderBookDeltaReceived) -> Result<(), BookError> {
        let v = self.venue_mut(e.venue);
        let book = v.book_mut(e.outcome);
        match e.change {
            LevelChange::Delta(d) => book.apply_delta(e.side, e.price, d)?,
            LevelChange::Absolute(size) => book.set_level(e.side, e.price, size),
        }
        v.touch(e.received_at);
        Ok(())
    }

    /// The feed can no longer vouch for this venue's books (gap, disconnect).
    pub fn mark_stale(&mut self, venue: Venue) {
        self.venue_mut(venue).stale = true;
    }

    pub fn kalshi_derived_no_ask(&self) -> Option<Level> {
        self.kalshi.kalshi_derived_no_ask()
    }

    pub fn best_ask(&self, venue: Venue, outcome: Outcome) -> Option<Level> {
        self.venue(venue).best_ask(venue, outcome)
    }

    pub fn book_age(&self, venue: Venue, now: UnixMicros) -> Option<u64> {
        self.venue(venue).age(now)
    }

    /// YES on `yes_venue` plus NO on the other venue, before fees, per contract.
    /// `None` if either side has no offer.
    pub fn gross_cost(&self, yes_venue: Venue) -> Option<rust_decimal::Decimal> {
        let yes = self.best_ask(yes_venue, Outcome::Yes)?;
        let no = self.best_ask(yes_venue.other(), Outcome::No)?;
        Some(yes.price.value() + no.price.value())
    }

    /// Size available at the best price on both legs of a direction.
    pub fn top_size(&self, yes_venue: Venue) -> Size {
        match (
            self.best_ask(yes_venue, Outcome::Yes),
            self.best_ask(yes_venue.other(), Outcome::No),
        ) {
            (Some(y), Some(n)) => y.size.min(n.size),
            _ => Size::ZERO,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::book::Side;
    use crate::domain::money::Price;
    use rust_decimal_macros::dec;

    pub fn pair(id: &str) -> MarketPair {
        MarketPair {
            id: PairId(id.into()),
            kalshi_ticker: format!("KX-{id}"),
            polymarket_condition_id: "0xabc".into(),
            polymarket_yes_token: TokenId::new(
                "71321045679252212594626385532706912750332728571942532289631379312455583992563",
            )
            .unwrap(),
            polymarket_no_token: TokenId::new("2").unwrap(),
            neg_risk: false,
            kalshi_rules: String::new(),
            polymarket_rules: String::new(),
            rules_match: true,
        }
    }

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    #[test]
    fn kalshi_asks_are_derived_from_the_opposite_bids() {
        let mut m = MarketState::new(pair("a"));
        m.kalshi.yes.set_level(Side::Bid, p("0.40"), Size::whole(7));
        m.kalshi.no.set_level(Side::Bid, p("0.55"), Size::whole(3));
        m.kalshi.no.set_level(Side::Bid, p("0.50"), Size::whole(9));
        assert_eq!(
            m.kalshi_derived_yes_ask(),
            Some(Level::new(p("0.45"), Size::whole(3)))
        );
        assert_eq!(
            m.kalshi_derived_no_ask(),
            Some(Level::new(p("0.60"), Size::whole(7)))
        );
        let ladder: Vec<_> = m
            .kalshi
            .ask_ladder(Venue::Kalshi, Outcome::Yes)
            .map(|l| l.price)
            .collect();
        assert_eq!(ladder, vec![p("0.45"), p("0.50")], "best (cheapest) first");
    }

    #[test]
    fn polymarket_asks_are_read_directly() {
        let mut m = MarketState::new(pair("a"));
        m.polymarket
            .no
            .set_level(Side::Ask, p("0.52"), Size::whole(10));
        m.polymarket
            .yes
            .set_level(Side::Bid, p("0.47"), Size::whole(10)); // mirror: not added to NO asks
        assert_eq!(
            m.best_ask(Venue::Polymarket, Outcome::No),
            Some(Level::new(p("0.52"), Size::whole(10)))
        );
        assert_eq!(m.best_ask(Venue::Polymarket, Outcome::Yes), None);
    }

    #[test]
    fn gross_cost_and_top_size_per_direction() {
        let mut m = MarketState::new(pair("a"));
        m.kalshi.no.set_level(Side::Bid, p("0.60"), Size::whole(5)); // Kalshi YES ask 0.40
        m.polymarket
            .no
            .set_level(Side::Ask, p("0.55"), Size::whole(8));
        assert_eq!(m.gross_cost(Venue::Kalshi), Some(dec!(0.95)));
        assert_eq!(m.top_size(Venue::Kalshi), Size::whole(5));
        assert_eq!(m.gross_cost(Venue::Polymarket), None);
        assert_eq!(m.top_size(Venue::Polymarket), Size::ZERO);
    }

    #[test]
    fn events_apply_per_venue_and_outcome() {
        use crate::domain::money::SizeDelta;
        let mut m = MarketState::new(pair("a"));
        m.apply_snapshot(&OrderBookSnapshotReceived {
            pair: PairId("a".into()),
            venue: Venue::Kalshi,
            outcome: Outcome::No,
            bids: vec![Level::new(p("0.60"), Size::whole(10))],
            asks: vec![],
            received_at: 5,
        });
        assert_eq!(
            m.kalshi_derived_yes_ask(),
            Some(Level::new(p("0.40"), Size::whole(10)))
        );
        let delta = |change| OrderBookDeltaReceived {
            pair: PairId("a".into()),
            venue: Venue::Kalshi,
            outcome: Outcome::No,
            side: Side::Bid,
            price: p("0.60"),
            change,
            received_at: 9,
        };
        m.apply_delta(&delta(LevelChange::Delta(
            SizeDelta::new(dec!(-4)).unwrap(),
        )))
        .unwrap();
        assert_eq!(m.kalshi_derived_yes_ask().unwrap().size, Size::whole(6));
        assert_eq!(m.book_age(Venue::Kalshi, 10), Some(1));
        m.mark_stale(Venue::Kalshi);
        assert!(m.kalshi.stale);
        let before = m.clone();
        assert!(
            m.apply_delta(&delta(LevelChange::Delta(
                SizeDelta::new(dec!(-7)).unwrap()
            )))
            .is_err()
        );
        assert_eq!(
            m, before,
            "a refused delta changes nothing, not even the age"
        );
        m.apply_delta(&OrderBookDeltaReceived {
            venue: Venue::Polymarket,
            side: Side::Ask,
            change: LevelChange::Absolute(Size::whole(3)),
            ..delta(LevelChange::Absolute(Size::ZERO))
        })
        .unwrap();
        assert_eq!(
            m.best_ask(Venue::Polymarket, Outcome::No),
            Some(Level::new(p("0.60"), Size::whole(3)))
        );
    }

    #[test]
    fn book_age_per_venue() {
        let mut m = MarketState::new(pair("a"));
        assert_eq!(m.book_age(Venue::Kalshi, 100), None);
        m.kalshi.touch(1_000);
        m.polymarket.touch(1_500);
        assert_eq!(m.book_age(Venue::Kalshi, 2_000), Some(1_000));
        assert_eq!(m.book_age(Venue::Polymarket, 2_000), Some(500));
        assert_eq!(
            m.book_age(Venue::Polymarket, 1_000),
            Some(0),
            "clock skew never underflows"
        );
    }

    #[test]
    fn token_ids_keep_all_256_bit_digits() {
        let t = TokenId::new(
            "115792089237316195423570985008687907853269984665640564039457584007913129639935",
        )
        .unwrap();
        assert_eq!(t.as_str().len(), 78);
        assert!(TokenId::new("12a").is_err());
        assert!(TokenId::new("").is_err());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            "\"115792089237316195423570985008687907853269984665640564039457584007913129639935\""
        );
        assert!(
            serde_json::from_str::<TokenId>("12345678901234567890123").is_err(),
            "a JSON number is refused"
        );
    }
}

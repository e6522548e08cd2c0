//! Kalshi order-book synchronisation: parsed WebSocket messages in, domain book
//! events out (PROTOCOLS.md §1.4).
//!
//! `KalshiBookSync` is a pure state machine. It tracks `seq` per subscription
//! (`sid`); one orderbook subscription covers many markets and every message of
//! it, for any market, takes the next `seq`. A gap means messages were lost for
//! some market of that `sid`, so every book of that `sid` is discarded: the
//! caller gets a [`BookAction::Resync`] and those books stay silent until each
//! receives a fresh snapshot. WebSocket errors 10, 17 and 25 kill a subscription
//! ([`BookAction::Resubscribe`]). Kalshi books hold bids only (YES bids and NO
//! bids), so the events carry bids and empty asks; NO prices are always emitted
//! as NO-leg prices whatever the subscription's [`NoSidePricing`].

use std::collections::{BTreeMap, HashMap};

use crate::domain::events::{LevelChange, OrderBookDeltaReceived, OrderBookSnapshotReceived};
use crate::domain::{Level, Outcome, PairId, Price, Side, UnixMicros, Venue};

use super::errors::WsErrorCode;
use super::messages::{
    KalshiMessage, NoSidePricing, OrderbookDelta, OrderbookFp, OrderbookSnapshot, WireLevel,
};

/// A domain event produced from the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum BookEvent {
    Snapshot(OrderBookSnapshotReceived),
    Delta(OrderBookDeltaReceived),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// `seq` jumped: messages for this subscription were lost.
    SeqGap { expected: u64, got: u64 },
    /// A delta for a market that has had no snapshot on this subscription.
    DeltaBeforeSnapshot,
    /// The book owner found the book inconsistent (e.g. a delta below zero).
    BookInconsistent,
}

/// What the connection must do so the books can be trusted again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookAction {
    /// Get fresh snapshots for these markets: preferably unsubscribe `sid` and
    /// subscribe them again (a new sid restarts `seq` unambiguously), or
    /// `update_subscription`/`get_snapshot`. Until then their books are stale.
    Resync {
        sid: u64,
        market_tickers: Vec<String>,
        pairs: Vec<PairId>,
        reason: ResyncReason,
    },
    /// The subscription is dead (§1.4 codes 10, 17, 25): subscribe these markets
    /// again. `sid` is `None` when the error did not say which subscription; then
    /// every orderbook subscription is listed.
    Resubscribe {
        sid: Option<u64>,
        market_tickers: Vec<String>,
        pairs: Vec<PairId>,
        code: WsErrorCode,
    },
}

impl BookAction {
    /// The pairs whose Kalshi books must be marked stale now.
    pub fn stale_pairs(&self) -> &[PairId] {
        match self {
            BookAction::Resync { pairs, .. } | BookAction::Resubscribe { pairs, .. } => pairs,
        }
    }
}

/// The result of one message: events to publish, then at most one action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookStep {
    pub events: Vec<BookEvent>,
    pub action: Option<BookAction>,
}

impl BookStep {
    fn action(action: BookAction) -> BookStep {
        BookStep {
            events: Vec::new(),
            action: Some(action),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarketSync {
    Live,
    AwaitingSnapshot,
}

#[derive(Debug, Clone, Default)]
struct SidState {
    /// `None` before the first snapshot and after a gap: no continuity to check.
    last_seq: Option<u64>,
    markets: BTreeMap<String, MarketSync>,
}

/// Per-subscription `seq` tracking and wire-to-domain translation of Kalshi books.
#[derive(Debug, Clone)]
pub struct KalshiBookSync {
    pairs: HashMap<String, PairId>,
    pricing: NoSidePricing,
    sids: BTreeMap<u64, SidState>,
    /// Subscriptions we dropped and asked the venue to end: what is still in
    /// flight on them is ignored until `unsubscribed` confirms. Acting on it
    /// would start a resync per in-flight delta, each replacing the last.
    retired: std::collections::BTreeSet<u64>,
}

impl KalshiBookSync {
    /// `pairs` maps Kalshi tickers to our pair ids; other tickers are tracked for
    /// `seq` but produce no events. `pricing` must be what the subscribe command sent.
    pub fn new(pairs: HashMap<String, PairId>, pricing: NoSidePricing) -> Self {
        KalshiBookSync {
            pairs,
            pricing,
            sids: BTreeMap::new(),
            retired: Default::default(),
        }
    }

    /// Feeds one parsed message. Messages of other channels give an empty step.
    pub fn on_message(&mut self, msg: &KalshiMessage, received_at: UnixMicros) -> BookStep {
        let sid = match msg {
            KalshiMessage::OrderbookSnapshot(s) => Some(s.sid),
            KalshiMessage::OrderbookDelta(d) => Some(d.sid),
            KalshiMessage::Ok(ok) => ok.sid,
            _ => None,
        };
        if sid.is_some_and(|sid| self.retired.contains(&sid)) {
            return BookStep::default();
        }
        match msg {
            KalshiMessage::OrderbookSnapshot(s) => self.on_snapshot(s, received_at),
            KalshiMessage::OrderbookDelta(d) => self.on_delta(d, received_at),
            KalshiMessage::Subscribed(s) if s.msg.channel == "orderbook_delta" => {
                self.sids.entry(s.msg.sid).or_default();
                BookStep::default()
            }
            // `ok` to update_subscription and `unsubscribed` carry the sid's seq (§1.4
            // examples), so they count in its series.
            KalshiMessage::Ok(ok) => match (ok.sid, ok.seq) {
                (Some(sid), Some(seq)) => self.on_control_seq(sid, seq),
                _ => BookStep::default(),
            },
            KalshiMessage::Unsubscribed(u) => {
                self.sids.remove(&u.sid);
                self.retired.remove(&u.sid);
                BookStep::default()
            }
            KalshiMessage::Error(e) => {
                let code = WsErrorCode::from_code(e.msg.code);
                if !code.requires_resubscribe() {
                    return BookStep::default();
                }
                self.on_terminal_error(e.sid, e.msg.market_ticker.as_deref(), code)
            }
            _ => BookStep::default(),
        }
    }

    /// The book owner found a Kalshi book inconsistent (a delta would make a level
    /// negative): discard it and resync. `None` if the market is not tracked.
    pub fn invalidate(&mut self, market_ticker: &str) -> Option<BookAction> {
        let (sid, st) = self
            .sids
            .iter_mut()
            .find(|(_, st)| st.markets.get(market_ticker) == Some(&MarketSync::Live))?;
        st.markets
            .insert(market_ticker.to_string(), MarketSync::AwaitingSnapshot);
        let sid = *sid;
        Some(self.resync(
            sid,
            vec![market_ticker.to_string()],
            ResyncReason::BookInconsistent,
        ))
    }

    /// Drops a subscription's state as it is being unsubscribed (or ended by
    /// the venue); messages still arriving on it are ignored.
    pub fn forget_sid(&mut self, sid: u64) {
        self.sids.remove(&sid);
        self.retired.insert(sid);
    }

    /// The market has a snapshot and no gap since on some subscription.
    pub fn is_live(&self, market_ticker: &str) -> bool {
        self.sids
            .values()
            .any(|st| st.markets.get(market_ticker) == Some(&MarketSync::Live))
    }

    fn on_snapshot(&mut self, s: &OrderbookSnapshot, received_at: UnixMicros) -> BookStep {
        let ticker = &s.msg.market_ticker;
        let st = self.sids.entry(s.sid).or_default();
        // A snapshot is authoritative for its own market and restarts `seq` (§1.4
        // "treat the snapshot as authoritative"); but if `seq` jumped, the other
        // live markets of this sid may have lost deltas.
        let mut others_lost = Vec::new();
        if let Some(last) = st.last_seq
            && s.seq != last.wrapping_add(1)
        {
            for (t, m) in st.markets.iter_mut() {
                if t != ticker && *m == MarketSync::Live {
                    *m = MarketSync::AwaitingSnapshot;
                    others_lost.push(t.clone());
                }
            }
        }
        let expected = st.last_seq.map(|l| l.wrapping_add(1));
        st.last_seq = Some(s.seq);
        st.markets.insert(ticker.clone(), MarketSync::Live);

        let mut step = BookStep::default();
        if let Some(pair) = self.pairs.get(ticker) {
            let no_bids = s
                .msg
                .no_dollars_fp
                .iter()
                .map(|l| Level::new(self.no_leg_price(l.price), l.count))
                .collect();
            step.events = vec![
                BookEvent::Snapshot(snapshot(
                    pair,
                    Outcome::Yes,
                    levels(&s.msg.yes_dollars_fp),
                    received_at,
                )),
                BookEvent::Snapshot(snapshot(pair, Outcome::No, no_bids, received_at)),
            ];
        }
        if !others_lost.is_empty() {
            step.action = Some(self.resync(
                s.sid,
                others_lost,
                ResyncReason::SeqGap {
                    expected: expected.unwrap_or(0),
                    got: s.seq,
                },
            ));
        }
        step
    }

    fn on_delta(&mut self, d: &OrderbookDelta, received_at: UnixMicros) -> BookStep {
        let ticker = &d.msg.market_ticker;
        let Some(st) = self.sids.get_mut(&d.sid) else {
            // Never saw a snapshot on this sid.
            let mut st = SidState::default();
            st.markets
                .insert(ticker.clone(), MarketSync::AwaitingSnapshot);
            self.sids.insert(d.sid, st);
            return BookStep::action(self.resync(
                d.sid,
                vec![ticker.clone()],
                ResyncReason::DeltaBeforeSnapshot,
            ));
        };
        match st.last_seq {
            Some(last) if d.seq != last.wrapping_add(1) => {
                return self.gap(d.sid, last.wrapping_add(1), d.seq, Some(ticker));
            }
            Some(_) => st.last_seq = Some(d.seq),
            // Stale since a gap (resync already requested) or subscribed with no
            // snapshot yet: nothing to check against.
            None => {}
        }
        match st.markets.get(ticker) {
            Some(MarketSync::Live) => {}
            Some(MarketSync::AwaitingSnapshot) => return BookStep::default(),
            None => {
                st.markets
                    .insert(ticker.clone(), MarketSync::AwaitingSnapshot);
                return BookStep::action(self.resync(
                    d.sid,
                    vec![ticker.clone()],
                    ResyncReason::DeltaBeforeSnapshot,
                ));
            }
        }
        let Some(pair) = self.pairs.get(ticker) else {
            return BookStep::default();
        };
        let (outcome, price) = match d.msg.side {
            Outcome::Yes => (Outcome::Yes, d.msg.price_dollars),
            Outcome::No => (Outcome::No, self.no_leg_price(d.msg.price_dollars)),
        };
        BookStep {
            events: vec![BookEvent::Delta(OrderBookDeltaReceived {
                pair: pair.clone(),
                venue: Venue::Kalshi,
                outcome,
                side: Side::Bid,
                price,
                change: LevelChange::Delta(d.msg.delta_fp),
                received_at,
            })],
            action: None,
        }
    }

    fn on_control_seq(&mut self, sid: u64, seq: u64) -> BookStep {
        let Some(st) = self.sids.get_mut(&sid) else {
            return BookStep::default();
        };
        match st.last_seq {
            Some(last) if seq != last.wrapping_add(1) => {
                self.gap(sid, last.wrapping_add(1), seq, None)
            }
            Some(_) => {
                st.last_seq = Some(seq);
                BookStep::default()
            }
            None => BookStep::default(),
        }
    }

    /// Every market of `sid` is stale; `seq` checking stops until a new snapshot.
    fn gap(&mut self, sid: u64, expected: u64, got: u64, also: Option<&String>) -> BookStep {
        let Some(st) = self.sids.get_mut(&sid) else {
            return BookStep::default();
        };
        st.last_seq = None;
        if let Some(t) = also {
            st.markets.entry(t.clone()).or_insert(MarketSync::Live);
        }
        for m in st.markets.values_mut() {
            *m = MarketSync::AwaitingSnapshot;
        }
        let tickers = st.markets.keys().cloned().collect();
        BookStep::action(self.resync(sid, tickers, ResyncReason::SeqGap { expected, got }))
    }

    fn on_terminal_error(
        &mut self,
        sid: Option<u64>,
        market_ticker: Option<&str>,
        code: WsErrorCode,
    ) -> BookStep {
        // Which subscription died: the error's sid if given, else the sid of the
        // named market, else all of them (the safe reading of an unattributed error).
        let sid = sid.filter(|s| self.sids.contains_key(s)).or_else(|| {
            market_ticker.and_then(|t| {
                self.sids
                    .iter()
                    .find(|(_, st)| st.markets.contains_key(t))
                    .map(|(s, _)| *s)
            })
        });
        let mut tickers = Vec::new();
        for (s, st) in self.sids.iter_mut() {
            if sid.is_none_or(|x| x == *s) {
                st.last_seq = None;
                for (t, m) in st.markets.iter_mut() {
                    *m = MarketSync::AwaitingSnapshot;
                    tickers.push(t.clone());
                }
            }
        }
        tickers.sort();
        tickers.dedup();
        let pairs = self.pairs_of(&tickers);
        BookStep::action(BookAction::Resubscribe {
            sid,
            market_tickers: tickers,
            pairs,
            code,
        })
    }

    /// The subscription is dropped and made again, so the action names every
    /// market on it, not only those found out of step: the others would
    /// otherwise lose their feed with the old `sid`.
    fn resync(&self, sid: u64, market_tickers: Vec<String>, reason: ResyncReason) -> BookAction {
        let mut market_tickers = market_tickers;
        if let Some(st) = self.sids.get(&sid) {
            market_tickers.extend(st.markets.keys().cloned());
        }
        market_tickers.sort();
        market_tickers.dedup();
        let pairs = self.pairs_of(&market_tickers);
        BookAction::Resync {
            sid,
            market_tickers,
            pairs,
            reason,
        }
    }

    fn pairs_of(&self, tickers: &[String]) -> Vec<PairId> {
        tickers
            .iter()
            .filter_map(|t| self.pairs.get(t).cloned())
            .collect()
    }

    /// §1.4 "NO-side price convention": with `use_yes_price` a NO bid at q
    /// arrives as 1 − q; the domain's NO book holds NO-leg prices.
    fn no_leg_price(&self, wire: Price) -> Price {
        match self.pricing {
            NoSidePricing::NoLeg => wire,
            NoSidePricing::YesLeg => wire.complement(),
        }
    }
}

fn levels(wire: &[WireLevel]) -> Vec<Level> {
    wire.iter().map(|l| Level::new(l.price, l.count)).collect()
}

fn snapshot(
    pair: &PairId,
    outcome: Outcome,
    bids: Vec<Level>,
    received_at: UnixMicros,
) -> OrderBookSnapshotReceived {
    OrderBookSnapshotReceived {
        pair: pair.clone(),
        venue: Venue::Kalshi,
        outcome,
        bids,
        asks: Vec::new(),
        received_at,
    }
}

/// The YES and NO snapshots of a REST order book (`GET /markets/{t}/orderbook`),
/// whose NO prices are always NO-leg prices (§1.5). It carries no `seq`, so it
/// seeds or checks a book but does not make a WebSocket subscription live.
pub fn rest_book_snapshots(
    pair: &PairId,
    book: &OrderbookFp,
    received_at: UnixMicros,
) -> [OrderBookSnapshotReceived; 2] {
    [
        snapshot(pair, Outcome::Yes, levels(&book.yes_dollars), received_at),
        snapshot(pair, Outcome::No, levels(&book.no_dollars), received_at),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MarketOutcomes, Size, SizeDelta};
    use crate::venues::kalshi::messages::tests::fixture;
    use crate::venues::kalshi::messages::{OrderbookResponse, parse};
    use proptest::prelude::*;

    const T: &str = "FED-23DEC-T3.00";

    fn pair() -> PairId {
        PairId("fed-dec".into())
    }

    fn sync(pricing: NoSidePricing) -> KalshiBookSync {
        KalshiBookSync::new(HashMap::from([(T.to_string(), pair())]), pricing)
    }

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn snap(
        sid: u64,
        seq: u64,
        ticker: &str,
        yes: &[(&str, &str)],
        no: &[(&str, &str)],
    ) -> KalshiMessage {
        let side = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(p, c)| format!(r#"["{p}","{c}"]"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        parse(&format!(
            r#"{{"type":"orderbook_snapshot","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"{ticker}","market_id":"m","yes_dollars_fp":[{}],"no_dollars_fp":[{}]}}}}"#,
            side(yes),
            side(no)
        ))
        .unwrap()
    }

    fn delta(sid: u64, seq: u64, ticker: &str, side: &str, price: &str, d: &str) -> KalshiMessage {
        parse(&format!(
            r#"{{"type":"orderbook_delta","sid":{sid},"seq":{seq},"msg":{{"market_ticker":"{ticker}","market_id":"m","price_dollars":"{price}","delta_fp":"{d}","side":"{side}"}}}}"#
        ))
        .unwrap()
    }

    /// Applies a step's events to a venue's books, like the book owner will.
    fn apply(books: &mut MarketOutcomes, step: &BookStep) {
        for e in &step.events {
            match e {
                BookEvent::Snapshot(s) => {
                    books.book_mut(s.outcome).apply_snapshot(&s.bids, &s.asks)
                }
                BookEvent::Delta(d) => {
                    let LevelChange::Delta(x) = d.change else {
                        panic!()
                    };
                    books
                        .book_mut(d.outcome)
                        .apply_delta(d.side, d.price, x)
                        .unwrap();
                }
            }
        }
    }

    #[test]
    fn snapshot_with_yes_leg_no_prices_becomes_no_leg_bids() {
        let mut s = sync(NoSidePricing::YesLeg);
        let msg = parse(&fixture("ws_orderbook_snapshot.json")).unwrap();
        let step = s.on_message(&msg, 42);
        assert_eq!(step.action, None);
        let [BookEvent::Snapshot(yes), BookEvent::Snapshot(no)] = step.events.as_slice() else {
            panic!("{step:?}")
        };
        assert_eq!((yes.outcome, no.outcome), (Outcome::Yes, Outcome::No));
        assert_eq!(yes.venue, Venue::Kalshi);
        assert_eq!(yes.pair, pair());
        assert_eq!(yes.received_at, 42);
        assert!(
            yes.asks.is_empty() && no.asks.is_empty(),
            "Kalshi books are bids only"
        );
        assert_eq!(
            yes.bids,
            vec![
                Level::new(p("0.08"), Size::whole(300)),
                Level::new(p("0.22"), Size::whole(333))
            ]
        );
        // use_yes_price: the NO level "0.5400" is the YES-leg price of a NO bid at 0.46.
        assert_eq!(
            no.bids,
            vec![
                Level::new(p("0.46"), Size::whole(20)),
                Level::new(p("0.44"), Size::whole(146))
            ]
        );
        let mut books = MarketOutcomes::default();
        apply(&mut books, &step);
        // Buying YES takes the best NO bid (0.46 NO = 0.54 YES ask).
        assert_eq!(books.kalshi_derived_yes_ask().unwrap().price, p("0.54"));
        assert_eq!(books.kalshi_derived_no_ask().unwrap().price, p("0.78"));
    }

    #[test]
    fn snapshot_with_no_leg_prices_is_taken_as_is() {
        let mut s = sync(NoSidePricing::NoLeg);
        let step = s.on_message(&parse(&fixture("ws_orderbook_snapshot.json")).unwrap(), 0);
        let BookEvent::Snapshot(no) = &step.events[1] else {
            panic!()
        };
        assert_eq!(no.bids[1], Level::new(p("0.56"), Size::whole(146)));
        // REST matches this convention (§1.5: best YES bid 0.42, YES ask 1 − 0.56).
        let ob: OrderbookResponse = serde_json::from_str(&fixture("rest_orderbook.json")).unwrap();
        let [yes, no] = rest_book_snapshots(&pair(), &ob.orderbook_fp, 7);
        let mut books = MarketOutcomes::default();
        books.yes.apply_snapshot(&yes.bids, &yes.asks);
        books.no.apply_snapshot(&no.bids, &no.asks);
        assert_eq!(books.yes.best_bid().unwrap().price, p("0.42"));
        assert_eq!(books.kalshi_derived_yes_ask().unwrap().price, p("0.44"));
    }

    #[test]
    fn delta_after_snapshot_is_a_signed_level_change() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&parse(&fixture("ws_orderbook_snapshot.json")).unwrap(), 0);
        let step = s.on_message(&parse(&fixture("ws_orderbook_delta.json")).unwrap(), 5);
        assert_eq!(
            step.events,
            vec![BookEvent::Delta(OrderBookDeltaReceived {
                pair: pair(),
                venue: Venue::Kalshi,
                outcome: Outcome::Yes,
                side: Side::Bid,
                price: p("0.96"),
                change: LevelChange::Delta(SizeDelta::parse("-54").unwrap()),
                received_at: 5,
            })]
        );
        // A NO delta in YES-leg pricing lands on the NO-leg price.
        let step = s.on_message(&delta(2, 4, T, "no", "0.5400", "5.00"), 6);
        let BookEvent::Delta(d) = &step.events[0] else {
            panic!()
        };
        assert_eq!((d.outcome, d.price), (Outcome::No, p("0.46")));
    }

    #[test]
    fn gap_in_seq_discards_book_and_resyncs() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&snap(2, 2, T, &[("0.40", "1")], &[]), 0);
        let step = s.on_message(&delta(2, 4, T, "yes", "0.40", "1"), 0);
        assert!(step.events.is_empty(), "the delta after a gap is discarded");
        assert_eq!(
            step.action,
            Some(BookAction::Resync {
                sid: 2,
                market_tickers: vec![T.into()],
                pairs: vec![pair()],
                reason: ResyncReason::SeqGap {
                    expected: 3,
                    got: 4
                },
            })
        );
        assert!(!s.is_live(T));
        // Stale: further deltas are silent and ask for nothing more.
        assert_eq!(
            s.on_message(&delta(2, 5, T, "yes", "0.40", "1"), 0),
            BookStep::default()
        );
        // A fresh snapshot makes it live again and restarts seq from it.
        let step = s.on_message(&snap(2, 17, T, &[("0.41", "2")], &[]), 0);
        assert_eq!(step.events.len(), 2);
        assert_eq!(step.action, None);
        assert!(s.is_live(T));
        assert_eq!(
            s.on_message(&delta(2, 18, T, "yes", "0.41", "1"), 0)
                .events
                .len(),
            1
        );
    }

    #[test]
    fn delta_before_snapshot_resyncs_once() {
        let mut s = sync(NoSidePricing::YesLeg);
        let step = s.on_message(&delta(9, 1, T, "yes", "0.40", "1"), 0);
        assert!(step.events.is_empty());
        assert!(matches!(
            step.action,
            Some(BookAction::Resync {
                sid: 9,
                reason: ResyncReason::DeltaBeforeSnapshot,
                ..
            })
        ));
        assert_eq!(
            s.on_message(&delta(9, 2, T, "yes", "0.40", "1"), 0),
            BookStep::default()
        );
    }

    #[test]
    fn delta_for_a_market_without_snapshot_on_a_live_sid_resyncs_that_market() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        let step = s.on_message(&delta(1, 2, "OTHER", "yes", "0.40", "1"), 0);
        assert!(matches!(
            &step.action,
            Some(BookAction::Resync { market_tickers, reason: ResyncReason::DeltaBeforeSnapshot, pairs, .. })
                if market_tickers == &{ let mut v = vec!["OTHER".to_string(), T.to_string()]; v.sort(); v } && pairs == &vec![pair()]
        ));
        assert!(
            s.is_live(T),
            "the sid's seq was continuous: T's book stays good until its subscription is remade"
        );
    }

    #[test]
    fn gap_on_a_snapshot_keeps_it_but_resyncs_the_other_markets() {
        let mut pairs = HashMap::from([(T.to_string(), pair())]);
        pairs.insert("B".into(), PairId("b".into()));
        let mut s = KalshiBookSync::new(pairs, NoSidePricing::YesLeg);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        s.on_message(&snap(1, 2, "B", &[("0.40", "1")], &[]), 0);
        let step = s.on_message(&snap(1, 5, T, &[("0.30", "1")], &[]), 0);
        assert_eq!(step.events.len(), 2);
        assert!(matches!(
            &step.action,
            // The subscription is remade for both: unsubscribing it ends T's feed too.
            Some(BookAction::Resync { market_tickers, reason: ResyncReason::SeqGap { expected: 3, got: 5 }, .. })
                if market_tickers == &vec!["B".to_string(), T.to_string()]
        ));
        assert!(s.is_live(T) && !s.is_live("B"));
    }

    #[test]
    fn deltas_in_flight_on_a_dropped_subscription_start_no_further_resync() {
        let mut pairs = HashMap::from([(T.to_string(), pair())]);
        pairs.insert("B".into(), PairId("b".into()));
        let mut s = KalshiBookSync::new(pairs, NoSidePricing::YesLeg);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        s.on_message(&snap(1, 2, "B", &[("0.40", "1")], &[]), 0);
        let gap = s.on_message(&delta(1, 4, T, "yes", "0.40", "1"), 0);
        assert!(matches!(
            &gap.action,
            Some(BookAction::Resync { sid: 1, market_tickers, .. })
                if market_tickers == &vec!["B".to_string(), T.to_string()]
        ));
        // The session unsubscribes sid 1 and subscribes both again; the venue
        // keeps sending on sid 1 until it has read the unsubscribe.
        s.forget_sid(1);
        for (seq, ticker) in [(5, T), (6, "B"), (7, T)] {
            let step = s.on_message(&delta(1, seq, ticker, "yes", "0.40", "1"), 0);
            assert!(step.action.is_none() && step.events.is_empty(), "seq {seq}");
        }
        s.on_message(&parse(&fixture("ws_unsubscribed.json")).unwrap(), 0);
        // The new subscription is tracked as any other.
        s.on_message(&snap(2, 1, T, &[("0.40", "1")], &[]), 0);
        s.on_message(&snap(2, 2, "B", &[("0.40", "1")], &[]), 0);
        assert!(s.is_live(T) && s.is_live("B"));
    }

    #[test]
    fn unmapped_markets_count_in_seq_but_emit_nothing() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        assert!(
            s.on_message(&snap(1, 2, "X", &[("0.40", "1")], &[]), 0)
                .events
                .is_empty()
        );
        assert!(
            s.on_message(&delta(1, 3, "X", "yes", "0.40", "1"), 0)
                .events
                .is_empty()
        );
        let step = s.on_message(&delta(1, 4, T, "yes", "0.40", "1"), 0);
        assert_eq!((step.events.len(), step.action), (1, None));
    }

    #[test]
    fn ok_with_seq_counts_in_the_series() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&snap(1, 7, T, &[("0.40", "1")], &[]), 0);
        let ok = parse(&fixture("ws_ok_update_subscription.json")).unwrap(); // sid 1, seq 8
        assert_eq!(s.on_message(&ok, 0), BookStep::default());
        assert_eq!(
            s.on_message(&delta(1, 9, T, "yes", "0.40", "1"), 0)
                .events
                .len(),
            1
        );
    }

    #[test]
    fn terminal_ws_errors_require_resubscribe_others_do_not() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&parse(&fixture("ws_subscribed.json")).unwrap(), 0);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        let benign = parse(&fixture("ws_error.json")).unwrap();
        assert_eq!(s.on_message(&benign, 0), BookStep::default());
        for code in [10, 17, 25] {
            s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
            let err = parse(&format!(
                r#"{{"id":7,"type":"error","msg":{{"code":{code},"msg":"x"}}}}"#
            ))
            .unwrap();
            let step = s.on_message(&err, 0);
            assert_eq!(
                step.action,
                Some(BookAction::Resubscribe {
                    sid: None,
                    market_tickers: vec![T.into()],
                    pairs: vec![pair()],
                    code: WsErrorCode::from_code(code),
                }),
                "code {code}"
            );
            assert!(!s.is_live(T));
        }
    }

    #[test]
    fn terminal_error_naming_a_market_resubscribes_only_its_sid() {
        let mut pairs = HashMap::from([(T.to_string(), pair())]);
        pairs.insert("B".into(), PairId("b".into()));
        let mut s = KalshiBookSync::new(pairs, NoSidePricing::YesLeg);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        s.on_message(&snap(2, 1, "B", &[("0.40", "1")], &[]), 0);
        let err = parse(
            r#"{"id":7,"type":"error","msg":{"code":25,"msg":"overflow","market_ticker":"B"}}"#,
        )
        .unwrap();
        let step = s.on_message(&err, 0);
        assert!(
            matches!(&step.action, Some(BookAction::Resubscribe { sid: Some(2), pairs, .. }) if pairs == &vec![PairId("b".into())])
        );
        assert!(s.is_live(T));
    }

    #[test]
    fn invalidate_and_unsubscribe() {
        let mut s = sync(NoSidePricing::YesLeg);
        s.on_message(&snap(1, 1, T, &[("0.40", "1")], &[]), 0);
        let a = s.invalidate(T).unwrap();
        assert_eq!(a.stale_pairs(), &[pair()]);
        assert!(s.invalidate(T).is_none(), "already awaiting a snapshot");
        s.on_message(&parse(&fixture("ws_unsubscribed.json")).unwrap(), 0);
        assert!(matches!(
            s.on_message(&delta(1, 2, T, "yes", "0.40", "1"), 0).action,
            Some(BookAction::Resync {
                reason: ResyncReason::DeltaBeforeSnapshot,
                ..
            })
        ));
    }

    proptest! {
        /// Whatever messages are lost, after every delivered message a live book
        /// built from the emitted events equals the venue's true book; a lost
        /// message is always noticed at the next delivered one.
        #[test]
        fn emitted_events_rebuild_the_true_book(
            ops in prop::collection::vec((any::<bool>(), 1u32..5, 1i64..4, prop::bool::weighted(0.15)), 1..60),
        ) {
            let mut s = sync(NoSidePricing::YesLeg);
            let mut truth = MarketOutcomes::default();
            let mut seen = MarketOutcomes::default();
            let mut seq = 1u64;
            apply(&mut seen, &s.on_message(&snap(1, seq, T, &[], &[]), 0));
            for (i, (add, cents, n, drop)) in ops.iter().enumerate() {
                seq += 1;
                let price = p(&format!("0.{cents:02}"));
                let outcome = if i % 2 == 0 { Outcome::Yes } else { Outcome::No };
                let had = truth.book(outcome).bids().find(|l| l.price == price).map(|l| l.size.value()).unwrap_or_default();
                let d = if *add || had.is_zero() { rust_decimal::Decimal::from(*n) } else { -had };
                truth.book_mut(outcome).apply_delta(Side::Bid, price, SizeDelta::new(d).unwrap()).unwrap();
                if *drop {
                    continue;
                }
                // use_yes_price: NO levels travel as their YES-leg price.
                let (side, wire) = match outcome {
                    Outcome::Yes => ("yes", price),
                    Outcome::No => ("no", price.complement()),
                };
                apply(&mut seen, &s.on_message(&delta(1, seq, T, side, &wire.to_string(), &d.to_string()), 0));
                if !s.is_live(T) {
                    // The venue answers the resync with a snapshot of the true book.
                    seq += 1;
                    let yes: Vec<(String, String)> = truth.yes.bids().map(|l| (l.price.to_string(), l.size.to_string())).collect();
                    let no: Vec<(String, String)> = truth.no.bids().map(|l| (l.price.complement().to_string(), l.size.to_string())).collect();
                    let yes: Vec<(&str, &str)> = yes.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                    let no: Vec<(&str, &str)> = no.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                    apply(&mut seen, &s.on_message(&snap(1, seq, T, &yes, &no), 0));
                    prop_assert!(s.is_live(T));
                }
                prop_assert_eq!(&seen.yes, &truth.yes);
                prop_assert_eq!(&seen.no, &truth.no);
            }
        }
    }
}

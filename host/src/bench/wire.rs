//! Synthetic sessions in both venues' exact wire formats (as the simulator and
//! the venues send them) for N market pairs: a snapshot of every book, then
//! one level change per message, round-robin over the pairs and venues.
//!
//! The top of book never moves and no window opens, so every plugin call is
//! the common case (books changed, nothing to buy) and no Polymarket drift
//! check fails; what is measured is the host, not a market.

use crate::domain::{MarketPair, PairId, TokenId, Venue};

pub fn pairs(n: usize) -> Vec<MarketPair> {
    (0..n)
        .map(|i| MarketPair {
            id: PairId::from(format!("p{i}")),
            kalshi_ticker: format!("KXBENCH-{i}"),
            polymarket_condition_id: format!("0x{i:x}"),
            polymarket_yes_token: TokenId::new(format!("{}", 1_000_000 + 2 * i)).expect("digits"),
            polymarket_no_token: TokenId::new(format!("{}", 1_000_001 + 2 * i)).expect("digits"),
            neg_risk: false,
            kalshi_rules: String::new(),
            polymarket_rules: String::new(),
            rules_match: true,
        })
        .collect()
}

/// The subscription acknowledgement and every book's snapshot.
pub fn snapshots(pairs: &[MarketPair]) -> Vec<(Venue, String)> {
    let mut out = vec![(
        Venue::Kalshi,
        r#"{"id":1,"msg":{"channel":"orderbook_delta","sid":1},"type":"subscribed"}"#.to_string(),
    )];
    for (i, p) in pairs.iter().enumerate() {
        out.push((
            Venue::Kalshi,
            format!(
                r#"{{"msg":{{"market_id":"m-{i}","market_ticker":"{}","no_dollars_fp":[["0.5300","100.00"],["0.5400","100.00"],["0.5500","100.00"]],"yes_dollars_fp":[["0.3800","100.00"],["0.3900","100.00"],["0.4000","100.00"]]}},"seq":{},"sid":1,"type":"orderbook_snapshot"}}"#,
                p.kalshi_ticker,
                i + 1
            ),
        ));
        for (token, bids, asks) in [
            (
                &p.polymarket_yes_token,
                ["0.40", "0.39", "0.38"],
                ["0.44", "0.45", "0.46"],
            ),
            (
                &p.polymarket_no_token,
                ["0.54", "0.53", "0.52"],
                ["0.58", "0.59", "0.60"],
            ),
        ] {
            let levels = |ps: [&str; 3]| {
                ps.iter()
                    .map(|p| format!(r#"{{"price":"{p}","size":"100"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            out.push((
                Venue::Polymarket,
                format!(
                    r#"{{"asks":[{}],"asset_id":"{token}","bids":[{}],"event_type":"book","hash":"0","market":"{}","tick_size":"0.01","timestamp":"1"}}"#,
                    levels(asks),
                    levels(bids),
                    p.polymarket_condition_id
                ),
            ));
        }
    }
    out
}

/// `n` single-level changes after [`snapshots`], alternating venues.
pub fn updates(pairs: &[MarketPair], n: usize) -> Vec<(Venue, String)> {
    (0..n).map(|k| update(pairs, k)).collect()
}

/// The `k`-th change after [`snapshots`]: made on demand, so a long run
/// need not hold its whole session in memory.
pub fn update(pairs: &[MarketPair], k: usize) -> (Venue, String) {
    let p = &pairs[(k / 2) % pairs.len()];
    let round = k / (2 * pairs.len());
    if k.is_multiple_of(2) {
        // Kalshi messages are every other one, each the next `seq`.
        let seq = (pairs.len() + k / 2 + 1) as u64;
        // +5 then −5 on a level behind the top: sizes never go negative.
        let (side, price) = if round % 4 < 2 {
            ("yes", "0.3900")
        } else {
            ("no", "0.5400")
        };
        let delta = if round.is_multiple_of(2) {
            "5.00"
        } else {
            "-5.00"
        };
        (
            Venue::Kalshi,
            format!(
                r#"{{"msg":{{"delta_fp":"{delta}","market_id":"m","market_ticker":"{}","price_dollars":"{price}","side":"{side}","ts_ms":1}},"seq":{seq},"sid":1,"type":"orderbook_delta"}}"#,
                p.kalshi_ticker
            ),
        )
    } else {
        // The second ask level's absolute size, alternating; the top stays.
        let (token, price, bid, ask) = if round.is_multiple_of(2) {
            (&p.polymarket_yes_token, "0.45", "0.40", "0.44")
        } else {
            (&p.polymarket_no_token, "0.59", "0.54", "0.58")
        };
        let size = if round % 4 < 2 { "105" } else { "100" };
        (
            Venue::Polymarket,
            format!(
                r#"{{"event_type":"price_change","market":"{}","price_changes":[{{"asset_id":"{token}","best_ask":"{ask}","best_bid":"{bid}","hash":"0","price":"{price}","side":"SELL","size":"{size}"}}],"timestamp":"1"}}"#,
                p.polymarket_condition_id
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::pipeline::Pipeline;
    use crate::strategy::{PluginHost, RuntimeLimits};

    #[test]
    fn the_synthetic_session_applies_cleanly_and_every_change_is_evaluated() {
        let host = PluginHost::new(RuntimeLimits::default()).unwrap();
        let market = pairs(3);
        let mut p = Pipeline::new(&host, &market);
        for (venue, text) in snapshots(&market).iter().chain(&updates(&market, 600)) {
            p.feed.on_text(*venue, text);
        }
        p.strategy.drain();
        assert_eq!(p.feed.problems(), 0, "no bad message, no gap, no drift");
        // 3 Kalshi snapshots (YES and NO books each), 6 Polymarket books,
        // 600 single-level changes.
        assert_eq!(p.feed.book_updates(), 6 + 6 + 600);
        assert_eq!(p.strategy.changes_evaluated(), p.feed.book_updates());
        assert!(p.strategy.evaluations() > 0);
        p.strategy.shutdown();
    }
}

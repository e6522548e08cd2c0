//! Every shipped plugin, loaded by the real runtime, gives the same decisions on
//! one shared table of scenarios, and the same as the native Rust rule.

mod support;

use doubletime::strategy::bindings::{MarketView, Opportunity, Param, Venue, VenueQuote};
use doubletime::strategy::view::{DEPTH, empty_view};
use strategy_rules::buy_both;

const K: Venue = Venue::Kalshi;
const P: Venue = Venue::Polymarket;

fn quote(
    yes_ask: u32,
    yes_size: u64,
    no_ask: u32,
    no_size: u64,
    fee_ppm: u32,
    min_size: u64,
) -> VenueQuote {
    VenueQuote {
        yes_ask,
        yes_ask_size: yes_size,
        no_ask,
        no_ask_size: no_size,
        yes_bid: 0,
        no_bid: 0,
        book_age_us: 1_000,
        taker_fee_ppm: fee_ppm,
        fee_exponent: 1,
        min_size,
        size_step: 1,
    }
}

fn view(kalshi: VenueQuote, polymarket: VenueQuote) -> MarketView {
    let mut v = empty_view();
    v.market = 3;
    v.now_us = 1;
    v.kalshi = kalshi;
    v.polymarket = polymarket;
    // Top of book as the only ladder level, so depth-aware rules see the same book.
    v.ladders = vec![0; 8 * DEPTH as usize];
    for (l, (price, size)) in [
        (kalshi.yes_ask, kalshi.yes_ask_size),
        (kalshi.no_ask, kalshi.no_ask_size),
        (polymarket.yes_ask, polymarket.yes_ask_size),
        (polymarket.no_ask, polymarket.no_ask_size),
    ]
    .into_iter()
    .enumerate()
    {
        if price != 0 {
            v.ladders[2 * l * DEPTH as usize] = price;
            v.ladders[2 * l * DEPTH as usize + 1] = size as u32;
        }
    }
    v
}

struct Scenario {
    name: &'static str,
    view: MarketView,
    /// (buy YES on, buy NO on, yes limit, no limit, size, net) or nothing.
    expect: Vec<(Venue, Venue, u32, u32, u64, i64)>,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "no edge",
            view: view(
                quote(500_000, 10_000, 500_000, 10_000, 0, 1),
                quote(500_000, 10_000, 500_000, 10_000, 0, 500),
            ),
            expect: vec![],
        },
        Scenario {
            name: "edge below threshold (0.5c < 1c per contract)",
            view: view(
                quote(485_000, 10_000, 0, 0, 0, 1),
                quote(0, 0, 510_000, 10_000, 0, 500),
            ),
            expect: vec![],
        },
        Scenario {
            name: "edge exactly at threshold",
            view: view(
                quote(480_000, 10_000, 0, 0, 0, 1),
                quote(0, 0, 510_000, 10_000, 0, 500),
            ),
            expect: vec![(K, P, 480_000, 510_000, 10_000, 1_000_000)],
        },
        Scenario {
            name: "YES on Kalshi, NO on Polymarket (worked example)",
            view: view(
                quote(400_000, 10_000, 0, 0, 70_000, 1),
                quote(0, 0, 550_000, 10_000, 40_000, 500),
            ),
            expect: vec![(K, P, 400_000, 550_000, 10_000, 2_330_000)],
        },
        Scenario {
            name: "YES on Polymarket, NO on Kalshi",
            view: view(
                quote(0, 0, 500_000, 1_000, 70_000, 1),
                quote(400_000, 1_000, 0, 0, 0, 500),
            ),
            expect: vec![(P, K, 400_000, 500_000, 1_000, 820_000)],
        },
        Scenario {
            name: "fees eat the edge",
            view: view(
                quote(490_000, 10_000, 0, 0, 70_000, 1),
                quote(0, 0, 490_000, 10_000, 70_000, 500),
            ),
            expect: vec![],
        },
        Scenario {
            name: "thin depth caps the size",
            view: view(
                quote(400_000, 300, 0, 0, 0, 1),
                quote(0, 0, 500_000, 10_000, 0, 1),
            ),
            expect: vec![(K, P, 400_000, 500_000, 300, 300_000)],
        },
        Scenario {
            name: "depth below Polymarket's minimum size",
            view: view(
                quote(400_000, 300, 0, 0, 0, 1),
                quote(0, 0, 500_000, 10_000, 0, 500),
            ),
            expect: vec![],
        },
        Scenario {
            name: "max-size caps a deep book",
            view: view(
                quote(400_000, 50_000, 0, 0, 0, 1),
                quote(0, 0, 500_000, 50_000, 0, 500),
            ),
            expect: vec![(K, P, 400_000, 500_000, 10_000, 10_000_000)],
        },
        Scenario {
            name: "empty books",
            view: view(quote(0, 0, 0, 0, 0, 1), quote(0, 0, 0, 0, 0, 500)),
            expect: vec![],
        },
    ]
}

fn decisions(out: &[Opportunity]) -> Vec<(Venue, Venue, u32, u32, u64, i64)> {
    out.iter()
        .map(|o| {
            (
                o.buy_yes_on,
                o.buy_no_on,
                o.yes_limit,
                o.no_limit,
                o.size,
                o.expected_net_edge,
            )
        })
        .collect()
}

fn native(v: &MarketView) -> Vec<(Venue, Venue, u32, u32, u64, i64)> {
    let q = |q: &VenueQuote| buy_both::Quote {
        yes_ask: q.yes_ask,
        yes_ask_size: q.yes_ask_size,
        no_ask: q.no_ask,
        no_ask_size: q.no_ask_size,
        taker_fee_ppm: q.taker_fee_ppm,
        fee_exponent: q.fee_exponent,
        min_size: q.min_size,
        size_step: q.size_step,
    };
    let venue = |v: buy_both::Venue| if v == buy_both::Venue::Kalshi { K } else { P };
    let mut out = Vec::new();
    buy_both::evaluate(
        &q(&v.kalshi),
        &q(&v.polymarket),
        &buy_both::Params::default(),
        &mut out,
    );
    out.iter()
        .map(|f| {
            (
                venue(f.buy_yes_on),
                venue(f.buy_no_on),
                f.yes_limit,
                f.no_limit,
                f.size,
                f.net,
            )
        })
        .collect()
}

#[test]
fn every_shipped_plugin_decides_the_same_on_the_scenario_table() {
    let host = support::host();
    let table = scenarios();
    for s in &table {
        assert_eq!(
            native(&s.view),
            s.expect,
            "native rule, scenario '{}'",
            s.name
        );
    }
    // walk-books sizes by depth; with only the top level in the ladders it must
    // agree with buy-both everywhere.
    for plugin in ["buy-both", "buy-both-py", "buy-both-js", "walk-books"] {
        let (code, mut instance) = host
            .load(plugin, &support::plugin_bytes(plugin))
            .unwrap_or_else(|e| panic!("{plugin}: {e}"));
        let names: Vec<_> = code
            .info
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.default_value))
            .collect();
        assert_eq!(
            names,
            vec![("min-profit", 10_000), ("max-size", 10_000)],
            "{plugin} describe()"
        );
        instance.configure(&[]).unwrap().unwrap();
        for s in &table {
            let out = instance
                .evaluate(&s.view)
                .unwrap_or_else(|f| panic!("{plugin}, '{}': {f}", s.name));
            assert_eq!(decisions(&out), s.expect, "{plugin}, scenario '{}'", s.name);
            assert!(out.iter().all(|o| o.market == 3));
        }
        // Parameters change the decision, and bad ones are refused with a readable error.
        let p = |name: &str, value| Param {
            name: name.into(),
            value,
        };
        instance
            .configure(&[p("min-profit", 300_000)])
            .unwrap()
            .unwrap();
        assert!(
            instance.evaluate(&table[3].view).unwrap().is_empty(),
            "{plugin}: 23.3c edge is below a 30c threshold"
        );
        instance
            .configure(&[p("min-profit", 10_000), p("max-size", 1_000)])
            .unwrap()
            .unwrap();
        assert_eq!(
            instance.evaluate(&table[3].view).unwrap()[0].size,
            1_000,
            "{plugin}: max-size"
        );
        let err = instance
            .configure(&[p("max-size", 0)])
            .unwrap()
            .unwrap_err();
        assert!(err.contains("max-size"), "{plugin}: '{err}'");
        let err = instance.configure(&[p("bogus", 1)]).unwrap().unwrap_err();
        assert!(err.contains("bogus"), "{plugin}: '{err}'");
    }
}

#[test]
fn walk_books_takes_deeper_levels_only_while_they_pay() {
    let host = support::host();
    let (_, mut instance) = host
        .load("walk-books", &support::plugin_bytes("walk-books"))
        .unwrap();
    instance.configure(&[]).unwrap().unwrap();
    // Kalshi YES: 10 @0.40, 10 @0.42, 10 @0.47; Polymarket NO: 30 @0.50, fee-free.
    let mut v = view(
        quote(400_000, 1_000, 0, 0, 0, 1),
        quote(0, 0, 500_000, 3_000, 0, 1),
    );
    let d = DEPTH as usize;
    v.ladders[0..6].copy_from_slice(&[400_000, 1_000, 420_000, 1_000, 470_000, 1_000]);
    v.ladders[2 * 3 * d..2 * 3 * d + 2].copy_from_slice(&[500_000, 3_000]);
    let out = instance.evaluate(&v).unwrap();
    // Level 3 (0.47 + 0.50 = 0.97) still earns 3c > 1c per contract: take all 30.
    assert_eq!(
        decisions(&out),
        vec![(
            K,
            P,
            470_000,
            500_000,
            3_000,
            3_000 * 10_000 - (4_000_000 + 4_200_000 + 4_700_000 + 15_000_000)
        )]
    );
    // buy-both only sees the top level.
    let (_, mut bb) = host
        .load("buy-both", &support::plugin_bytes("buy-both"))
        .unwrap();
    bb.configure(&[]).unwrap().unwrap();
    assert_eq!(bb.evaluate(&v).unwrap()[0].size, 1_000);
}

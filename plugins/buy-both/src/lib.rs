//! `buy-both`: the original bot's rule as a strategy plugin. Buys YES on one
//! venue and NO on the other when together they cost less than $1 after both
//! venues' taker fees, by at least `min-profit` per contract, in both directions,
//! sized to the depth at the best price.

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::{Cell, RefCell};

    use strategy_rules::buy_both::{self as rule, Params};

    // `strategy-top`: the 1.0 world plus the 1.1 fast hot call, `evaluate-top`.
    wit_bindgen::generate!({ path: "../../wit", world: "strategy-top" });

    use doubletime::strategy::host::{LogLevel, log};
    use doubletime::strategy::types::{ParamSpec, Venue, VenueQuote};
    use exports::doubletime::strategy::top_of_book::{
        Guest as TopOfBook, MarketTerms, TopView, VenueTerms, VenueTop,
    };

    thread_local! {
        // A `Cell` of a `Copy` value, initialised in a `const`: reading it on
        // the hot call is a plain load, with no borrow flag and no lazy init.
        static PARAMS: Cell<Params> = const { Cell::new(Params::DEFAULT) };
        /// Each market's (Kalshi, Polymarket) terms, by market index.
        static TERMS: RefCell<Vec<Option<(VenueTerms, VenueTerms)>>> = const { RefCell::new(Vec::new()) };
    }

    fn top_quote(top: &VenueTop, terms: &VenueTerms) -> rule::Quote {
        rule::Quote {
            yes_ask: top.yes_ask,
            yes_ask_size: top.yes_ask_size,
            no_ask: top.no_ask,
            no_ask_size: top.no_ask_size,
            taker_fee_ppm: terms.taker_fee_ppm,
            fee_exponent: terms.fee_exponent,
            min_size: terms.min_size,
            size_step: terms.size_step,
        }
    }

    fn opportunity(market: u32, f: rule::Found) -> Opportunity {
        Opportunity {
            market,
            buy_yes_on: venue(f.buy_yes_on),
            buy_no_on: venue(f.buy_no_on),
            yes_limit: f.yes_limit,
            no_limit: f.no_limit,
            size: f.size,
            expected_net_edge: f.net,
        }
    }

    fn quote(q: &VenueQuote) -> rule::Quote {
        rule::Quote {
            yes_ask: q.yes_ask,
            yes_ask_size: q.yes_ask_size,
            no_ask: q.no_ask,
            no_ask_size: q.no_ask_size,
            taker_fee_ppm: q.taker_fee_ppm,
            fee_exponent: q.fee_exponent,
            min_size: q.min_size,
            size_step: q.size_step,
        }
    }

    fn venue(v: rule::Venue) -> Venue {
        match v {
            rule::Venue::Kalshi => Venue::Kalshi,
            rule::Venue::Polymarket => Venue::Polymarket,
        }
    }

    struct BuyBoth;

    impl Guest for BuyBoth {
        fn describe() -> PluginInfo {
            let d = Params::default();
            PluginInfo {
                name: "buy-both".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Buy YES on one venue and NO on the other when both cost less than $1 after fees".into(),
                params: vec![
                    ParamSpec {
                        name: "min-profit".into(),
                        description: "Minimum net edge per contract after fees".into(),
                        unit: "micro-dollars per contract".into(),
                        default_value: d.min_profit,
                    },
                    ParamSpec {
                        name: "max-size".into(),
                        description: "Largest trade".into(),
                        unit: "hundredths of a contract".into(),
                        default_value: d.max_size,
                    },
                ],
            }
        }

        fn configure(params: Vec<Param>) -> Result<(), String> {
            PARAMS.with(|cell| {
                let mut next = cell.get();
                for p in &params {
                    next.set(&p.name, p.value)?;
                }
                cell.set(next);
                log(
                    LogLevel::Info,
                    &format!("min-profit={} max-size={}", next.min_profit, next.max_size),
                );
                Ok(())
            })
        }

        fn register_markets(_markets: Vec<MarketInfo>) {}

        fn evaluate(view: MarketView) -> Vec<Opportunity> {
            let params = PARAMS.get();
            let mut found = Vec::new();
            rule::evaluate(
                &quote(&view.kalshi),
                &quote(&view.polymarket),
                &params,
                &mut found,
            );
            found
                .into_iter()
                .map(|f| opportunity(view.market, f))
                .collect()
        }
    }

    impl TopOfBook for BuyBoth {
        fn set_terms(terms: Vec<MarketTerms>) {
            TERMS.with(|cell| {
                let mut all = cell.borrow_mut();
                for t in terms {
                    let i = t.market as usize;
                    if all.len() <= i {
                        all.resize(i + 1, None);
                    }
                    all[i] = Some((t.kalshi, t.polymarket));
                }
            })
        }

        fn evaluate_top(view: TopView) -> Option<Opportunity> {
            // The host always sends a market's terms before asking about it.
            let (k, p) = TERMS.with(|c| c.borrow().get(view.market as usize).copied().flatten())?;
            let params = PARAMS.get();
            rule::best(
                &top_quote(&view.kalshi, &k),
                &top_quote(&view.polymarket, &p),
                &params,
            )
            .map(|f| opportunity(view.market, f))
        }
    }

    export!(BuyBoth);
}

//! `walk-books`: the buy-both trade sized by walking both venues' ask ladders to
//! the most profitable size (rule in `strategy-rules`).

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    use strategy_rules::buy_both::{self as rule, Params};

    wit_bindgen::generate!({ path: "../../wit", world: "strategy" });

    use doubletime::strategy::types::{ParamSpec, Venue, VenueQuote};

    thread_local! {
        static PARAMS: RefCell<Params> = RefCell::new(Params::default());
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

    fn ladder(view: &MarketView, l: u32) -> Vec<(u32, u64)> {
        let d = view.depth as usize;
        let start = 2 * (l as usize) * d;
        view.ladders
            .get(start..start + 2 * d)
            .unwrap_or(&[])
            .chunks_exact(2)
            .take_while(|c| c[0] != 0)
            .map(|c| (c[0], u64::from(c[1])))
            .collect()
    }

    fn venue(v: rule::Venue) -> Venue {
        match v {
            rule::Venue::Kalshi => Venue::Kalshi,
            rule::Venue::Polymarket => Venue::Polymarket,
        }
    }

    struct WalkBooks;

    impl Guest for WalkBooks {
        fn describe() -> PluginInfo {
            let d = Params::default();
            PluginInfo {
                name: "walk-books".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description:
                    "Buy-both sized by walking both ask ladders to the most profitable size".into(),
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
                let mut next = *cell.borrow();
                for p in &params {
                    next.set(&p.name, p.value)?;
                }
                *cell.borrow_mut() = next;
                Ok(())
            })
        }

        fn register_markets(_markets: Vec<MarketInfo>) {}

        fn evaluate(view: MarketView) -> Vec<Opportunity> {
            let params = PARAMS.with(|c| *c.borrow());
            let (k, p) = (quote(&view.kalshi), quote(&view.polymarket));
            let (ky, kn, py, pn) = (
                ladder(&view, 0),
                ladder(&view, 1),
                ladder(&view, 2),
                ladder(&view, 3),
            );
            let found = [
                strategy_rules::walk_books::best_walk(
                    rule::Venue::Kalshi,
                    &k,
                    &ky,
                    rule::Venue::Polymarket,
                    &p,
                    &pn,
                    &params,
                ),
                strategy_rules::walk_books::best_walk(
                    rule::Venue::Polymarket,
                    &p,
                    &py,
                    rule::Venue::Kalshi,
                    &k,
                    &kn,
                    &params,
                ),
            ];
            found
                .into_iter()
                .flatten()
                .map(|f| Opportunity {
                    market: view.market,
                    buy_yes_on: venue(f.buy_yes_on),
                    buy_no_on: venue(f.buy_no_on),
                    yes_limit: f.yes_limit,
                    no_limit: f.no_limit,
                    size: f.size,
                    expected_net_edge: f.net,
                })
                .collect()
        }
    }

    export!(WalkBooks);
}

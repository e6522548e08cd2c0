//! The buy-both rule built against the frozen `doubletime:strategy@1.0.0` WIT
//! (`wit/` here is a copy of the 1.0.0 file, never edited): the host's tests load
//! it to show a plugin built for 1.0 keeps working in every later 1.x host.

#[cfg(target_arch = "wasm32")]
mod component {
    use strategy_rules::buy_both::{self as rule, Params};

    wit_bindgen::generate!({ path: "wit", world: "strategy" });

    use doubletime::strategy::types::{Venue, VenueQuote};

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

    struct WitOneZero;

    impl Guest for WitOneZero {
        fn describe() -> PluginInfo {
            doubletime::strategy::host::log(
                doubletime::strategy::host::LogLevel::Debug,
                "built against doubletime:strategy@1.0.0",
            );
            PluginInfo {
                name: "test-wit-1-0".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "buy-both built against the 1.0.0 WIT".into(),
                params: vec![],
            }
        }

        fn configure(_params: Vec<Param>) -> Result<(), String> {
            Ok(())
        }

        fn register_markets(_markets: Vec<MarketInfo>) {}

        fn evaluate(view: MarketView) -> Vec<Opportunity> {
            let mut found = Vec::new();
            rule::evaluate(
                &quote(&view.kalshi),
                &quote(&view.polymarket),
                &Params::default(),
                &mut found,
            );
            found
                .into_iter()
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

    export!(WitOneZero);
}

//! The `strategy-top` world with no rule behind it: `evaluate-top` answers a
//! fixed opportunity without looking at the book. The plugin bench sets it
//! beside the call floor and `buy-both` to split a hot call's cost between
//! its shape (twelve scalars in, an `option<record>` out) and the rule.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "strategy-top" });

    use doubletime::strategy::types::Venue;
    use exports::doubletime::strategy::top_of_book::{Guest as TopOfBook, MarketTerms, TopView};

    fn fixed(market: u32) -> Opportunity {
        Opportunity {
            market,
            buy_yes_on: Venue::Kalshi,
            buy_no_on: Venue::Polymarket,
            yes_limit: 400_000,
            no_limit: 500_000,
            size: 100,
            expected_net_edge: 100_000,
        }
    }

    struct EmptyTop;

    impl Guest for EmptyTop {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: "test-empty-top".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "answers without a rule (benchmarks only)".into(),
                params: Vec::new(),
            }
        }

        fn configure(_params: Vec<Param>) -> Result<(), String> {
            Ok(())
        }

        fn register_markets(_markets: Vec<MarketInfo>) {}

        fn evaluate(view: MarketView) -> Vec<Opportunity> {
            vec![fixed(view.market)]
        }
    }

    impl TopOfBook for EmptyTop {
        fn set_terms(_terms: Vec<MarketTerms>) {}

        fn evaluate_top(view: TopView) -> Option<Opportunity> {
            Some(fixed(view.market))
        }
    }

    export!(EmptyTop);
}

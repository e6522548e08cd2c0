//! A plugin built against the frozen `doubletime:strategy@1.0.0` WIT (`wit/`
//! here is a copy of the 1.0.0 file, never edited): the host's tests load it to
//! show that a plugin built for 1.0 keeps working in every later 1.x host. Its
//! rule only echoes the view, so the test can see the view arrive intact.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "strategy" });

    use doubletime::strategy::host::{LogLevel, log};
    use doubletime::strategy::types::Venue;

    struct WitOneZero;

    impl Guest for WitOneZero {
        fn describe() -> PluginInfo {
            log(LogLevel::Debug, "built against doubletime:strategy@1.0.0");
            PluginInfo {
                name: "test-wit-1-0".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "echoes Kalshi's YES ask and Polymarket's NO ask".into(),
                params: vec![],
            }
        }

        fn configure(_params: Vec<Param>) -> Result<(), String> {
            Ok(())
        }

        fn register_markets(_markets: Vec<MarketInfo>) {}

        /// YES on Kalshi and NO on Polymarket at their asks, for the smaller
        /// size, whenever both are offered: the edge is $1 less both prices.
        fn evaluate(view: MarketView) -> Vec<Opportunity> {
            let (k, p) = (&view.kalshi, &view.polymarket);
            if k.yes_ask == 0 || p.no_ask == 0 {
                return vec![];
            }
            vec![Opportunity {
                market: view.market,
                buy_yes_on: Venue::Kalshi,
                buy_no_on: Venue::Polymarket,
                yes_limit: k.yes_ask,
                no_limit: p.no_ask,
                size: k.yes_ask_size.min(p.no_ask_size).max(1),
                expected_net_edge: 1_000_000 - i64::from(k.yes_ask) - i64::from(p.no_ask),
            }]
        }
    }

    export!(WitOneZero);
}

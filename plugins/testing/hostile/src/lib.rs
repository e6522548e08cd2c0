//! A plugin for the host's containment tests. `configure(mode = N)` picks how
//! `evaluate` misbehaves: 0 behaves (returns one valid opportunity), 1 loops
//! forever, 2 allocates until memory runs out, 3 traps, 4 returns a price of 0,
//! 5 returns the same venue on both legs, 6 returns a zero size, 7 sleeps for
//! an hour (a WASI clock wait, which no wasm deadline can interrupt), 8
//! behaves but prints to stdout and stderr on every call (blocking WASI
//! writes, which must not fault it wherever the host evaluates it).

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::Cell;

    wit_bindgen::generate!({ path: "../../../wit", world: "strategy" });

    use doubletime::strategy::types::{ParamSpec, Venue};

    thread_local! {
        static MODE: Cell<i64> = const { Cell::new(0) };
    }

    struct Hostile;

    fn good(market: u32) -> Opportunity {
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

    impl Guest for Hostile {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: "test-hostile".into(),
                version: "1.0.0".into(),
                description: "misbehaves on demand".into(),
                params: vec![ParamSpec {
                    name: "mode".into(),
                    description: "how to misbehave".into(),
                    unit: "enum".into(),
                    default_value: 0,
                }],
            }
        }

        fn configure(params: Vec<Param>) -> Result<(), String> {
            for p in params {
                match p.name.as_str() {
                    "mode" => MODE.with(|m| m.set(p.value)),
                    other => return Err(format!("unknown parameter '{other}'")),
                }
            }
            Ok(())
        }

        fn register_markets(_markets: Vec<MarketInfo>) {}

        fn evaluate(view: MarketView) -> Vec<Opportunity> {
            match MODE.with(|m| m.get()) {
                1 => {
                    let mut x: u64 = view.now_us;
                    loop {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                2 => {
                    // Reserve without touching: memory.grow as fast as possible.
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(Vec::with_capacity(16 << 20));
                        std::hint::black_box(&hoard);
                    }
                }
                3 => panic!("hostile plugin traps on purpose"),
                4 => vec![Opportunity {
                    yes_limit: 0,
                    ..good(view.market)
                }],
                5 => vec![Opportunity {
                    buy_no_on: Venue::Kalshi,
                    ..good(view.market)
                }],
                6 => vec![Opportunity {
                    size: 0,
                    ..good(view.market)
                }],
                7 => {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    vec![good(view.market)]
                }
                8 => {
                    println!("evaluating market {}", view.market);
                    eprintln!("still evaluating market {}", view.market);
                    vec![good(view.market)]
                }
                _ => vec![good(view.market)],
            }
        }
    }

    export!(Hostile);
}

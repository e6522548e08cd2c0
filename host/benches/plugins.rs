//! Cost of one `evaluate` per plugin language, beside the same rule as a native
//! Rust function, the bare component-call floor (an exported `u32 -> u32`) and
//! the Rust plugin's 1.1 `evaluate-top`.
//!
//! Run: `scripts/build-plugins && cargo bench -p doubletime --bench plugins`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use doubletime::strategy::bindings::{MarketView, VenueQuote};
use doubletime::strategy::view::{DEPTH, empty_view, top_of_book};
use doubletime::strategy::{PluginHost, RuntimeLimits};
use strategy_rules::buy_both;

fn plugins() -> PathBuf {
    std::env::var_os("DOUBLETIME_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

fn quote(yes: u32, no: u32, ppm: u32, min: u64) -> VenueQuote {
    VenueQuote {
        yes_ask: yes,
        yes_ask_size: 10_000,
        no_ask: no,
        no_ask_size: 10_000,
        yes_bid: 0,
        no_bid: 0,
        book_age_us: 1_000,
        taker_fee_ppm: ppm,
        fee_exponent: 1,
        min_size: min,
        size_step: 1,
    }
}

/// The worked example: an opportunity in one direction, none in the other.
fn view() -> MarketView {
    let mut v = empty_view();
    v.kalshi = quote(400_000, 520_000, 70_000, 1);
    v.polymarket = quote(500_000, 550_000, 40_000, 500);
    // Top of book as the one level of each ladder, so depth-aware rules see the same book.
    v.ladders = vec![0; 8 * DEPTH as usize];
    for (l, (price, size)) in [
        (v.kalshi.yes_ask, v.kalshi.yes_ask_size),
        (v.kalshi.no_ask, v.kalshi.no_ask_size),
        (v.polymarket.yes_ask, v.polymarket.yes_ask_size),
        (v.polymarket.no_ask, v.polymarket.no_ask_size),
    ]
    .into_iter()
    .enumerate()
    {
        v.ladders[2 * l * DEPTH as usize] = price;
        v.ladders[2 * l * DEPTH as usize + 1] = size as u32;
    }
    v
}

fn bench(c: &mut Criterion) {
    let dir = plugins();
    let host = PluginHost::new(RuntimeLimits {
        cache_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugin-cache")),
        ..RuntimeLimits::default()
    })
    .expect("plugin host");
    let v = view();
    let mut g = c.benchmark_group("evaluate");

    let native_quote = |q: &VenueQuote| buy_both::Quote {
        yes_ask: q.yes_ask,
        yes_ask_size: q.yes_ask_size,
        no_ask: q.no_ask,
        no_ask_size: q.no_ask_size,
        taker_fee_ppm: q.taker_fee_ppm,
        fee_exponent: q.fee_exponent,
        min_size: q.min_size,
        size_step: q.size_step,
    };
    let (k, p) = (native_quote(&v.kalshi), native_quote(&v.polymarket));
    let params = buy_both::Params::default();
    let mut out = Vec::with_capacity(2);
    g.bench_function("native-rust-rule", |b| {
        b.iter(|| {
            out.clear();
            buy_both::evaluate(black_box(&k), black_box(&p), &params, &mut out);
            black_box(out.len())
        })
    });

    let floor_bytes = std::fs::read(dir.join("testing/test-wrong-world.wasm"))
        .expect("run scripts/build-plugins");
    let mut floor = host.floor_probe(&floor_bytes).expect("floor probe");
    g.bench_function("component-call-floor", |b| {
        b.iter(|| floor.call(black_box(7)).unwrap())
    });
    let sync_answer = floor.call(7).unwrap();
    assert_eq!(
        floor
            .call_async_polled_once(7)
            .expect("done in one poll")
            .unwrap(),
        sync_answer
    );
    g.bench_function("component-call-floor-async", |b| {
        b.iter(|| floor.call_async_polled_once(black_box(7)).unwrap().unwrap())
    });

    for name in ["buy-both", "walk-books", "buy-both-py", "buy-both-js"] {
        let bytes =
            std::fs::read(dir.join(format!("{name}.wasm"))).expect("run scripts/build-plugins");
        let (_, mut instance) = host.load(name, &bytes).expect("load");
        instance.configure(&[]).unwrap().unwrap();
        assert_eq!(instance.evaluate(&v).unwrap().len(), 1);
        g.bench_function(format!("plugin-{name}"), |b| {
            b.iter(|| black_box(instance.evaluate(black_box(&v)).unwrap().len()))
        });
    }

    // The 1.1 fast hot call: twelve scalars in registers, the answer in a
    // fixed return area. Terms were given once, as the runtime does.
    let (code, mut instance) = host
        .load(
            "buy-both",
            &std::fs::read(dir.join("buy-both.wasm")).unwrap(),
        )
        .expect("load");
    assert!(code.top_of_book);
    instance.configure(&[]).unwrap().unwrap();
    let (top, terms) = top_of_book(&v);
    assert!(instance.evaluate_top(&top, &terms).unwrap().is_some());
    g.bench_function("plugin-buy-both-top-of-book", |b| {
        b.iter(|| {
            black_box(
                instance
                    .evaluate_top(black_box(&top), &terms)
                    .unwrap()
                    .is_some(),
            )
        })
    });
    g.finish();

    // The target is a ratio to the floor "in the same run", and on a shared
    // VM the floor alone moves 1.5x between criterion runs. So: the calls
    // interleaved in short rounds, each ratio taken per round. `test-empty-top`
    // has `evaluate-top`'s shape and no rule: it splits the gap between the two.
    let (_, mut empty) = host
        .load(
            "test-empty-top",
            &std::fs::read(dir.join("testing/test-empty-top.wasm"))
                .expect("run scripts/build-plugins"),
        )
        .expect("load");
    assert!(empty.evaluate_top(&top, &terms).unwrap().is_some());
    // Most book changes open no window: the same books with the asks a cent
    // dearer, so both directions cost more than $1.
    let mut quiet = v.clone();
    quiet.kalshi.yes_ask = 460_000;
    quiet.polymarket.no_ask = 560_000;
    let (quiet, _) = top_of_book(&quiet);
    assert!(instance.evaluate_top(&quiet, &terms).unwrap().is_none());
    // Two of the rounds' calls go to this one instance.
    let instance = std::cell::RefCell::new(instance);
    let mut rounds = Rounds::default();
    for _ in 0..301 {
        rounds.run([
            &mut || {
                black_box(floor.call(black_box(7)).unwrap());
            },
            &mut || {
                black_box(empty.evaluate_top(black_box(&top), &terms).unwrap());
            },
            &mut || {
                black_box(
                    instance
                        .borrow_mut()
                        .evaluate_top(black_box(&top), &terms)
                        .unwrap(),
                );
            },
            &mut || {
                black_box(
                    instance
                        .borrow_mut()
                        .evaluate_top(black_box(&quiet), &terms)
                        .unwrap(),
                );
            },
        ]);
    }
    let [floor_ns, empty_ns, top_ns, quiet_ns] = rounds.ns.map(median);
    let [_, empty_x, top_x, quiet_x] = rounds.ratios.map(median);
    println!(
        "evaluate/paired: component-call floor {floor_ns:.0} ns; evaluate-top without a rule \
         {empty_ns:.0} ns ({empty_x:.2}x); buy-both evaluate-top {top_ns:.0} ns ({top_x:.2}x), \
         on books with no window {quiet_ns:.0} ns ({quiet_x:.2}x) \
         (medians of 301 interleaved rounds of {CALLS} calls each)"
    );
}

const CALLS: u32 = 2_000;

/// Per round: ns per call of each function (the floor first), and each
/// one's ratio to the floor.
#[derive(Default)]
struct Rounds {
    ns: [Vec<f64>; 4],
    ratios: [Vec<f64>; 4],
}

impl Rounds {
    fn run(&mut self, calls: [&mut dyn FnMut(); 4]) {
        let ns = calls.map(|f| {
            let start = std::time::Instant::now();
            for _ in 0..CALLS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        });
        for (i, x) in ns.into_iter().enumerate() {
            self.ns[i].push(x);
            self.ratios[i].push(x / ns[0]);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

criterion_group!(benches, bench);
criterion_main!(benches);

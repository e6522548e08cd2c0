//! The plugin runtime with real components: fault containment, load errors,
//! hot reload from a folder, swaps that lose no update, no leak over 1,000 reloads.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use doubletime::books::BookStore;
use doubletime::bus::{BookChanged, Bus, StatusEvent};
use doubletime::domain::events::PluginStatus;
use doubletime::domain::{PairId, Venue};
use doubletime::strategy::bindings::{MarketView, Opportunity, VenueQuote};
use doubletime::strategy::view::{DEPTH, empty_view, top_of_book};
use doubletime::strategy::{
    FaultPolicy, LoadError, PluginHost, PluginMode, RuntimeLimits, StrategyRuntime, now_micros,
};
use support::WAIT;

fn changed() -> BookChanged {
    BookChanged {
        venue: Venue::Kalshi,
        first_received_at: now_micros(),
        changes: 1,
    }
}

fn runtime(limits: RuntimeLimits) -> (Arc<StrategyRuntime>, Arc<BookStore>, Arc<Bus>) {
    let books = Arc::new(BookStore::new());
    let bus = Arc::new(Bus::new(4096));
    let rt = StrategyRuntime::start(
        PluginHost::new(limits).unwrap(),
        books.clone(),
        bus.clone(),
        FaultPolicy::default(),
    );
    (rt, books, bus)
}

/// Writes like a build tool: a temp file, then an atomic rename.
fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

/// Waits (bounded) for a status event for `plugin` that `want` accepts.
async fn status(
    rx: &mut doubletime::bus::BroadcastReceiver<StatusEvent>,
    plugin: &str,
    want: impl Fn(&PluginStatus) -> bool,
) -> PluginStatus {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(StatusEvent::Plugin(e)) = rx.recv().await
                && e.plugin == plugin
                && want(&e.status)
            {
                return e.status;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching status for {plugin}"))
}

/// Plugins evaluated on the publisher's thread: here a tokio worker, as a
/// feed's task is, where a WASI call that blocks on the runtime would panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_contained_while_a_good_plugin_keeps_evaluating_inline() {
    contain_hostile_plugins(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_contained_while_a_good_plugin_keeps_evaluating_on_its_thread() {
    contain_hostile_plugins(false).await
}

async fn contain_hostile_plugins(inline: bool) {
    let limits = RuntimeLimits {
        memory_cap: 64 << 20,
        evaluate_budget: Duration::from_millis(20),
        inline,
        ..support::limits()
    };
    let (rt, books, bus) = runtime(limits);
    let mut status_rx = bus.status.subscribe();
    let opps = bus.opportunities.subscribe();
    support::arb_pair(&books, "fed");
    rt.sync_markets();
    rt.load_bytes("buy-both", &support::plugin_bytes("buy-both"))
        .unwrap();
    let hostile = support::plugin_bytes("test-hostile");
    let modes = [
        ("looper", 1),
        ("bomber", 2),
        ("trapper", 3),
        ("zero-price", 4),
        ("same-venue", 5),
        ("zero-size", 6),
        ("sleeper", 7),
        ("chatty", 8),
    ];
    for (name, mode) in modes {
        rt.load_bytes(name, &hostile).unwrap();
        rt.configure(name, &BTreeMap::from([("mode".to_string(), mode)]))
            .unwrap();
    }
    let pair = PairId("fed".into());
    // Each round: one book change; the good plugin's opportunity arrives every time.
    for round in 0..4 {
        bus.books.publish(pair.clone(), changed());
        let (p, found) = tokio::time::timeout(WAIT, opps.recv())
            .await
            .expect("good plugin keeps deciding");
        assert_eq!(p, pair);
        assert_eq!(found.opportunity.found_by, "buy-both", "round {round}");
        assert_eq!(
            found.opportunity.net_edge.value(),
            rust_decimal::Decimal::new(233, 2)
        );
    }
    let expect = [
        ("looper", "deadline"),
        ("bomber", "memory cap"),
        ("trapper", "wasm `unreachable`"),
        ("zero-price", "invalid output: yes-limit 0"),
        ("same-venue", "invalid output: both legs"),
        ("zero-size", "invalid output: size is zero"),
        ("sleeper", "may not wait"),
    ];
    for (name, fragment) in expect {
        let r = rt.report(name).unwrap();
        assert_eq!(r.faults, 3, "{name}: one fault per round until quarantined");
        assert!(
            matches!(&r.mode, PluginMode::Quarantined(reason) if reason.contains(fragment)),
            "{name}: {:?}",
            r.mode
        );
        assert!(
            r.last_error
                .as_deref()
                .unwrap_or("")
                .contains(fragment.trim_start_matches("invalid output: ")),
            "{name}: {:?}",
            r.last_error
        );
    }
    // Each quarantine was announced on the bus.
    let mut announced = HashSet::new();
    while announced.len() < expect.len() {
        match tokio::time::timeout(WAIT, status_rx.recv())
            .await
            .expect("quarantine events")
        {
            Some(StatusEvent::Plugin(e)) if matches!(e.status, PluginStatus::Quarantined(_)) => {
                announced.insert(e.plugin);
            }
            Some(_) => {}
            None => panic!("status topic closed"),
        }
    }
    assert!(
        expect.iter().all(|(n, _)| announced.contains(*n)),
        "{announced:?}"
    );
    let good = rt.report("buy-both").unwrap();
    assert_eq!((good.calls, good.faults, good.opportunities), (4, 0, 4));
    // Printing is not waiting: stdout and stderr take every line at once.
    let chatty = rt.report("chatty").unwrap();
    assert_eq!(
        (chatty.calls, chatty.faults, chatty.opportunities),
        (4, 0, 4),
        "{:?}",
        chatty.last_error
    );
    // Quarantined plugins are no longer called; re-enabling gives a fresh start.
    assert_eq!(rt.report("trapper").unwrap().calls, 3);
    rt.set_enabled("zero-price", true);
    rt.configure("zero-price", &BTreeMap::from([("mode".to_string(), 0)]))
        .unwrap();
    bus.books.publish(pair.clone(), changed());
    tokio::time::timeout(WAIT, opps.recv()).await.unwrap();
    let revived = rt.report("zero-price").unwrap();
    assert_eq!(revived.mode, PluginMode::Active);
    assert_eq!((revived.calls, revived.opportunities), (4, 1));
    rt.shutdown();
}

#[test]
fn broken_files_are_rejected_with_a_clear_error() {
    let host = support::host();
    let good = support::plugin_bytes("buy-both");
    type Expect = fn(&LoadError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("garbage", b"definitely not wasm".to_vec(), |e| {
            matches!(e, LoadError::NotWasm)
        }),
        ("empty", Vec::new(), |e| matches!(e, LoadError::NotWasm)),
        ("core-module", b"\0asm\x01\0\0\0".to_vec(), |e| {
            matches!(e, LoadError::CoreModule)
        }),
        ("truncated", good[..good.len() / 2].to_vec(), |e| {
            matches!(e, LoadError::Invalid(_))
        }),
        (
            "wrong-world",
            support::plugin_bytes("test-wrong-world"),
            |e| matches!(e, LoadError::WrongWorld(_)),
        ),
    ];
    for (name, bytes, ok) in cases {
        let err = host.load(name, &bytes).expect_err(name);
        assert!(ok(&err), "{name}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(
        host.load("../etc/passwd", &good),
        Err(LoadError::BadName(_))
    ));
    assert!(matches!(
        host.load("Upper", &good),
        Err(LoadError::BadName(_))
    ));
}

/// A deterministic pseudo-random sequence (xorshift64) from `seed`.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A deterministic pseudo-random view: quotes on both venues, sometimes empty
/// sides, fees and minimum sizes that vary.
fn random_view(next: &mut impl FnMut() -> u64, market: u32) -> MarketView {
    let mut quote = |ppm: u32| {
        let price = |n: &mut dyn FnMut() -> u64| match n() % 8 {
            0 => 0,
            _ => 300_000 + (n() % 400_000) as u32,
        };
        let yes_ask = price(next);
        let no_ask = price(next);
        VenueQuote {
            yes_ask,
            yes_ask_size: if yes_ask == 0 { 0 } else { next() % 20_000 },
            no_ask,
            no_ask_size: if no_ask == 0 { 0 } else { next() % 20_000 },
            yes_bid: 0,
            no_bid: 0,
            book_age_us: next() % 10_000,
            taker_fee_ppm: ppm + (next() % 3) as u32 * 10_000,
            fee_exponent: 1,
            min_size: [1, 100, 500][(next() % 3) as usize],
            size_step: 1,
        }
    };
    let mut v = empty_view();
    v.market = market;
    v.now_us = 1_700_000_000_000_000;
    v.kalshi = quote(70_000);
    v.polymarket = quote(40_000);
    v.ladders = vec![0; 8 * DEPTH as usize];
    v
}

#[test]
fn the_top_of_book_call_decides_what_the_full_view_decides() {
    let host = support::host();
    let (code, mut full) = host
        .load("buy-both", &support::plugin_bytes("buy-both"))
        .unwrap();
    assert!(
        code.top_of_book,
        "buy-both exports the 1.1 top-of-book call"
    );
    let (walk, _) = host
        .load("walk-books", &support::plugin_bytes("walk-books"))
        .unwrap();
    assert!(!walk.top_of_book, "walk-books needs the ladders");
    let mut fast = host.instantiate(&code).unwrap();
    for i in [&mut full, &mut fast] {
        i.configure(&[]).unwrap().unwrap();
        i.register_markets(&[]).unwrap();
    }
    assert!(fast.has_top_of_book());
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    let (mut found, mut both) = (0, 0);
    // Four markets whose terms change from view to view: a plugin answering
    // with another market's terms, or stale ones, decides differently.
    for n in 0..3_000u32 {
        let v = random_view(&mut next, n % 4);
        let all = full.evaluate(&v).unwrap();
        // The host's pick: the highest edge, the first on a tie.
        let best = all.iter().fold(None::<&Opportunity>, |b, o| match b {
            Some(b) if b.expected_net_edge >= o.expected_net_edge => Some(b),
            _ => Some(o),
        });
        let (top, terms) = top_of_book(&v);
        let got = fast.evaluate_top(&top, &terms).unwrap();
        assert_eq!(got.as_ref(), best, "view {n}: {v:?}");
        found += usize::from(got.is_some());
        both += usize::from(all.len() == 2);
    }
    // The sweep exercised both answers and both directions at once.
    assert!(found > 300 && found < 2_700, "{found} opportunities");
    assert!(both > 10, "{both} views open in both directions");
    // New markets: the terms are given again before the next call.
    fast.register_markets(&[]).unwrap();
    let v = random_view(&mut next, 2);
    let (top, terms) = top_of_book(&v);
    let all = full.evaluate(&v).unwrap();
    let got = fast.evaluate_top(&top, &terms).unwrap();
    assert_eq!(got.is_some(), !all.is_empty());
}

#[test]
fn a_plugin_built_for_wit_1_0_loads_and_evaluates_in_this_host() {
    let host = support::host();
    let (old, mut inst) = host
        .load("test-wit-1-0", &support::plugin_bytes("test-wit-1-0"))
        .unwrap();
    assert!(!old.top_of_book);
    assert!(!inst.has_top_of_book());
    assert_eq!(old.info.name, "test-wit-1-0");
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    let mut echoed = 0;
    for n in 0..200u32 {
        let v = random_view(&mut next, n % 3);
        let got = inst.evaluate(&v).unwrap();
        let (k, p) = (&v.kalshi, &v.polymarket);
        if k.yes_ask == 0 || p.no_ask == 0 {
            assert!(got.is_empty());
            continue;
        }
        // The 1.0 plugin echoes the view: it crossed the boundary intact.
        let o = &got[0];
        assert_eq!(got.len(), 1);
        assert_eq!(
            (o.market, o.yes_limit, o.no_limit),
            (v.market, k.yes_ask, p.no_ask)
        );
        assert_eq!(o.size, k.yes_ask_size.min(p.no_ask_size).max(1));
        echoed += 1;
    }
    assert!(echoed > 100, "{echoed}");
}

#[test]
fn compiled_components_are_cached_by_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let limits = RuntimeLimits {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeLimits::default()
    };
    let bytes = support::plugin_bytes("walk-books");
    let (first, _) = PluginHost::new(limits.clone())
        .unwrap()
        .load("walk-books", &bytes)
        .unwrap();
    assert!(!first.from_cache);
    // A restart (a new engine with the same settings) does not recompile.
    let (second, mut inst) = PluginHost::new(limits)
        .unwrap()
        .load("walk-books", &bytes)
        .unwrap();
    assert!(second.from_cache);
    assert_eq!(first.sha256, second.sha256);
    assert_eq!(inst.describe().unwrap().name, "walk-books");
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cached.len(), 1);
    assert!(
        cached[0].starts_with(&first.sha256) && cached[0].ends_with(".cwasm"),
        "{cached:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_rejects_garbage_and_unloads_on_delete() {
    let (rt, books, bus) = runtime(support::limits());
    let mut status_rx = bus.status.subscribe();
    let opps = bus.opportunities.subscribe();
    support::arb_pair(&books, "fed");
    rt.sync_markets();
    let dir = tempfile::tempdir().unwrap();
    rt.watch(dir.path(), Duration::from_millis(50)).unwrap();
    let pair = PairId("fed".into());

    install(dir.path(), "rule", &support::plugin_bytes("buy-both"));
    status(&mut status_rx, "rule", |s| *s == PluginStatus::Loaded).await;
    let v1 = rt.report("rule").unwrap();
    assert_eq!(v1.plugin_name, "buy-both");

    // A new version is swapped in.
    install(dir.path(), "rule", &support::plugin_bytes("walk-books"));
    status(&mut status_rx, "rule", |s| *s == PluginStatus::Reloaded).await;
    let v2 = rt.report("rule").unwrap();
    assert_eq!(v2.plugin_name, "walk-books");
    assert_ne!(v2.sha256, v1.sha256);
    assert_eq!(v2.reloads, 1);

    // Garbage, a half-written file and an incompatible component are refused;
    // the running version stays and keeps deciding.
    let good = support::plugin_bytes("buy-both");
    for (what, bytes) in [
        ("garbage", b"garbage".to_vec()),
        ("half a file", good[..good.len() / 3].to_vec()),
        ("wrong world", support::plugin_bytes("test-wrong-world")),
    ] {
        install(dir.path(), "rule", &bytes);
        let st = status(&mut status_rx, "rule", |s| {
            matches!(s, PluginStatus::Rejected(_))
        })
        .await;
        let r = rt.report("rule").unwrap();
        assert_eq!(r.sha256, v2.sha256, "{what}: old version still running");
        assert!(r.last_rejection.is_some(), "{what}: {st:?}");
        bus.books.publish(pair.clone(), changed());
        let (_, found) = tokio::time::timeout(WAIT, opps.recv()).await.unwrap();
        assert_eq!(found.opportunity.found_by, "rule", "{what}");
    }

    // Temporary and hidden files are ignored: only `later` appears.
    std::fs::write(dir.path().join("ignored.wasm.tmp"), &good).unwrap();
    std::fs::write(dir.path().join(".hidden.wasm"), &good).unwrap();
    install(dir.path(), "later", &good);
    status(&mut status_rx, "later", |s| *s == PluginStatus::Loaded).await;
    let names: HashSet<String> = rt.reports().into_iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        HashSet::from(["rule".to_string(), "later".to_string()])
    );

    // Deleting a file unloads its plugin.
    std::fs::remove_file(dir.path().join("rule.wasm")).unwrap();
    status(&mut status_rx, "rule", |s| *s == PluginStatus::Unloaded).await;
    assert!(rt.report("rule").is_none());
    rt.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_lands_between_evaluations_and_loses_no_update() {
    let (rt, books, bus) = runtime(support::limits());
    let opps = bus.opportunities.subscribe();
    support::arb_pair(&books, "a");
    support::arb_pair(&books, "b");
    support::arb_pair(&books, "marker");
    rt.sync_markets();
    let versions = [
        support::plugin_bytes("buy-both"),
        support::plugin_bytes("walk-books"),
    ];
    rt.load_bytes("rule", &versions[0]).unwrap();
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                let pair = if i % 2 == 0 { "a" } else { "b" };
                bus.books.publish(PairId(pair.into()), changed());
            }
        })
    };
    for i in 0..20 {
        rt.load_bytes("rule", &versions[(i + 1) % 2]).unwrap();
    }
    publisher.join().unwrap();
    // The marker changes last; once it is decided, everything before it was too.
    bus.books.publish(PairId("marker".into()), changed());
    tokio::time::timeout(WAIT, async {
        loop {
            let (p, _) = opps.recv().await;
            if p.as_str() == "marker" {
                break;
            }
        }
    })
    .await
    .unwrap();
    let r = rt.report("rule").unwrap();
    assert_eq!(r.reloads, 20);
    assert_eq!(r.faults, 0);
    // Every evaluated book change was seen by exactly one version of the plugin.
    assert_eq!(r.calls, rt.evaluations());
    assert!(r.calls >= 3, "{}", r.calls);
    rt.shutdown();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn reloading_1000_times_leaks_no_memory() {
    let (rt, books, _bus) = runtime(support::limits());
    support::arb_pair(&books, "a");
    rt.sync_markets();
    let versions = [
        support::plugin_bytes("buy-both"),
        support::plugin_bytes("walk-books"),
    ];
    let started = Instant::now();
    // Warm up: allocator pools, the cache, the pooling slots.
    for i in 0..200 {
        rt.load_bytes("rule", &versions[i % 2]).unwrap();
    }
    let before = rss_bytes();
    for i in 0..1_000 {
        rt.load_bytes("rule", &versions[i % 2]).unwrap();
    }
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    // A leak of even one 50 KB component per reload would be 50 MB here.
    assert!(
        grown < 16 << 20,
        "RSS grew {} KiB over 1,000 reloads ({:?})",
        grown >> 10,
        started.elapsed()
    );
    assert_eq!(rt.report("rule").unwrap().reloads, 1_199);
    rt.shutdown();
}

/// A feed applying a batch of waiting frames holds inline evaluation: the
/// plugins see each pair's latest book once, when the batch is in.
#[test]
fn a_held_batch_is_evaluated_once_per_pair_when_the_hold_ends() {
    let (rt, books, bus) = runtime(support::limits());
    support::arb_pair(&books, "fed");
    rt.sync_markets();
    rt.load_bytes("buy-both", &support::plugin_bytes("buy-both"))
        .unwrap();
    let opps = bus.opportunities.subscribe();
    let pair = PairId("fed".into());
    let (evaluations, changes) = (rt.evaluations(), rt.changes_evaluated());

    let hold = rt.hold();
    for _ in 0..3 {
        bus.books.publish(pair.clone(), changed());
    }
    assert_eq!(
        rt.evaluations(),
        evaluations,
        "nothing evaluated while held"
    );
    assert!(opps.try_recv().is_none());
    drop(hold);
    assert_eq!(rt.evaluations(), evaluations + 1, "once, for the pair");
    assert_eq!(
        rt.changes_evaluated(),
        changes + 3,
        "standing for all three"
    );
    assert!(opps.try_recv().is_some(), "its decision published");

    // Unheld, each change is evaluated as it is published.
    bus.books.publish(pair.clone(), changed());
    assert_eq!(rt.evaluations(), evaluations + 2);
    rt.shutdown();
}

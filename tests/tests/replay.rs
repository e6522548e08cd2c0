//! End-to-end: `doubletime replay` of the committed sample recording (made
//! with the simulator from recordings/sample-scenario.toml) through the real
//! binary's parsers, books and the shipped plugins, each plugin's trades
//! executed against the binary's simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;
use tokio::process::Command;

use doubletime_e2e::{binary, plugins, workspace};

const WAIT: Duration = Duration::from_secs(120);

fn sample() -> PathBuf {
    workspace().join("recordings/sample.jsonl")
}

/// `doubletime` with the sample's configuration and the shared plugin cache.
fn doubletime() -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(workspace().join("recordings/sample.toml"))
        .env(
            "DOUBLETIME_PLUGIN_CACHE_DIR",
            workspace().join("target/plugin-cache"),
        )
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to its end (bounded); returns its stdout. It must succeed.
async fn stdout_of(mut cmd: Command) -> String {
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the command ends by itself")
        .unwrap();
    assert!(
        out.status.success(),
        "doubletime failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `doubletime replay FILE --plugins DIR`; returns its stdout.
async fn replay_with(file: &Path, plugins: &Path, json: bool) -> String {
    let mut cmd = doubletime();
    cmd.arg("replay").arg(file).arg("--plugins").arg(plugins);
    if json {
        cmd.arg("--json");
    }
    stdout_of(cmd).await
}

/// Replays with every shipped plugin.
async fn replay(file: &Path, json: bool) -> String {
    replay_with(file, &plugins(), json).await
}

async fn replay_json(file: &Path) -> Value {
    let text = replay(file, true).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn plugin<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

fn pair<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pair"] == id)
        .unwrap_or_else(|| panic!("{id} not in {report}"))
}

fn feed<'a>(report: &'a Value, venue: &str) -> &'a Value {
    report["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["venue"] == venue)
        .unwrap()
}

/// The report without what is measured rather than computed (latencies, memory).
fn counts_and_edges(report: &Value) -> Value {
    let mut r = report.clone();
    let obj = r.as_object_mut().unwrap();
    obj.remove("tick_to_decision");
    obj.remove("memory");
    obj.remove("file");
    obj.remove("lines");
    obj.remove("bad_lines");
    for p in obj["plugins"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("latency");
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_shows_the_wide_window_to_buy_both_and_the_narrow_one_to_no_plugin() {
    let report = replay_json(&sample()).await;
    let buy_both = plugin(&report, "buy-both");
    assert!(
        buy_both["opportunities"].as_u64().unwrap() > 0,
        "{buy_both}"
    );
    assert_eq!(buy_both["faults"], 0);
    let best: rust_decimal::Decimal = buy_both["best_net_edge"].as_str().unwrap().parse().unwrap();
    let total: rust_decimal::Decimal = buy_both["total_net_edge"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        best > rust_decimal::Decimal::ZERO && total >= best,
        "{buy_both}"
    );
    assert!(
        buy_both["evaluations"].as_u64().unwrap() >= report["evaluations"].as_u64().unwrap(),
        "every change evaluated by every plugin: {report}"
    );

    assert!(pair(&report, "wide")["opportunities"].as_u64().unwrap() > 0);
    let narrow = pair(&report, "narrow");
    assert_eq!(
        narrow["opportunities"], 0,
        "a 1c window does not pay both fees: {narrow}"
    );
    assert_eq!(narrow["best_net_edge"], Value::Null);

    // The scenario's malformed frame and Kalshi gap are in the recording.
    assert_eq!(feed(&report, "polymarket")["bad_messages"]["malformed"], 1);
    assert!(feed(&report, "kalshi")["gaps"].as_u64().unwrap() > 0);
    assert!(feed(&report, "kalshi")["book_updates"].as_u64().unwrap() > 100);
    assert_eq!(report["bad_lines"], 0);
    let memory = &report["memory"];
    if let Some(first) = memory["first_kib"].as_u64() {
        let (last, peak) = (memory["last_kib"].as_u64(), memory["peak_kib"].as_u64());
        assert!(first > 0 && peak >= last && peak >= Some(first), "{memory}");
    }

    let text = replay(&sample(), false).await;
    assert!(text.contains("| narrow | 0 | — |"), "{text}");
    assert!(text.contains("| buy-both | 1.0.0 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_gives_the_same_report_twice_and_bad_lines_are_counted_not_fatal() {
    let first = replay_json(&sample()).await;
    let second = replay_json(&sample()).await;
    assert!(
        plugin(&first, "buy-both")["backtest"]["trades"]["hedged"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the trades, fills, fees and P&L are compared too: {first}"
    );
    assert_eq!(counts_and_edges(&first), counts_and_edges(&second));

    // Garbage and a line cut short in the middle of the recording.
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.jsonl");
    let text = std::fs::read_to_string(sample()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let cut = &lines[10][..lines[10].len() / 2].to_string();
    lines.insert(10, "not a recording");
    lines.insert(20, cut);
    std::fs::write(&damaged, lines.join("\n")).unwrap();
    let report = replay_json(&damaged).await;
    assert_eq!(report["bad_lines"], 2);
    assert_eq!(report["lines"], first["lines"].as_u64().unwrap() + 2);
    assert_eq!(counts_and_edges(&report), counts_and_edges(&first));
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// Rounds up to `dp` decimals, as both venues round fees.
fn ceil(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::AwayFromZero)
}

/// The venues' taker fees for the sample's markets (recordings/sample.toml:
/// Kalshi's 0.07 quadratic, Polymarket rate 0.04, exponent 1), from
/// PROTOCOLS.md rather than the host's fee code.
fn taker_fee(venue: &str, price: Decimal, size: Decimal) -> Decimal {
    let curve = price * (Decimal::ONE - price);
    match venue {
        "kalshi" => ceil(Decimal::new(7, 2) * size * curve, 2),
        "polymarket" => ceil(Decimal::new(4, 2) * size * curve, 4),
        other => panic!("venue {other}"),
    }
}

/// Every price the recording offered to buy each outcome of `wide` at, per
/// venue: Polymarket asks of the outcome's token; on Kalshi, 1 − the other
/// outcome's bids (buying YES takes a NO bid).
fn recorded_asks() -> BTreeMap<(String, String), BTreeSet<Decimal>> {
    // recordings/sample.toml: `wide` is KXWIDE-26DEC and tokens 111 (YES) / 112 (NO).
    let token_outcome = |t: &str| match t {
        "111" => Some("yes"),
        "112" => Some("no"),
        _ => None,
    };
    let mut asks: BTreeMap<(String, String), BTreeSet<Decimal>> = BTreeMap::new();
    let mut add = |venue: &str, outcome: &str, price: Decimal| {
        asks.entry((venue.to_string(), outcome.to_string()))
            .or_default()
            .insert(price.normalize());
    };
    let text = std::fs::read_to_string(sample()).unwrap();
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let Ok(msg) = serde_json::from_str::<Value>(rec["msg"].as_str().unwrap()) else {
            continue; // the scripted malformed frame
        };
        if rec["venue"] == "kalshi" {
            let m = &msg["msg"];
            if m["market_ticker"] != "KXWIDE-26DEC" {
                continue;
            }
            // A NO-side price is a YES ask; a YES bid at p is a NO ask at 1 − p.
            let ask = |side: &str, p: Decimal| match side {
                "no" => ("yes", p),
                _ => ("no", Decimal::ONE - p),
            };
            for side in ["yes", "no"] {
                for level in m[format!("{side}_dollars_fp")]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let (outcome, p) = ask(side, dec(&level[0]));
                    add("kalshi", outcome, p);
                }
                if m["side"] == side {
                    let (outcome, p) = ask(side, dec(&m["price_dollars"]));
                    add("kalshi", outcome, p);
                }
            }
        } else {
            let events = match msg {
                Value::Array(a) => a,
                one => vec![one],
            };
            for e in events {
                if let Some(o) = e["asset_id"].as_str().and_then(token_outcome) {
                    for level in e["asks"].as_array().into_iter().flatten() {
                        add("polymarket", o, dec(&level["price"]));
                    }
                }
                for c in e["price_changes"].as_array().into_iter().flatten() {
                    if let (Some(o), "SELL") = (
                        c["asset_id"].as_str().and_then(token_outcome),
                        c["side"].as_str().unwrap_or(""),
                    ) {
                        add("polymarket", o, dec(&c["price"]));
                    }
                }
            }
        }
    }
    asks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_backtest_hedges_at_recorded_prices_with_exact_fees_and_pnl() {
    let report = replay_json(&sample()).await;
    let asks = recorded_asks();
    let buy_both = plugin(&report, "buy-both");
    let bt = &buy_both["backtest"];
    let hedged = bt["trades"]["hedged"].as_u64().unwrap_or(0);
    assert!(hedged >= 1, "the wide window is traded: {bt}");
    let listed = bt["trades_listed"].as_array().unwrap();
    assert_eq!(
        listed.len() as u64,
        bt["trades"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        "every trade listed"
    );

    let mut fees: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut fills: BTreeMap<String, u64> = BTreeMap::new();
    let (mut locked_in, mut contracts) = (Decimal::ZERO, Decimal::ZERO);
    for t in listed {
        assert_eq!(t["pair"], "wide", "nothing pays both fees on narrow: {t}");
        assert_eq!(t["outcome"], "hedged", "{t}");
        let (yes, no) = (&t["yes"], &t["no"]);
        assert_eq!(yes["outcome"], "yes");
        assert_eq!(no["outcome"], "no");
        assert_ne!(yes["venue"], no["venue"], "one leg on each venue: {t}");
        let size = dec(&yes["size"]);
        assert_eq!(size, dec(&no["size"]), "both legs the same contracts: {t}");
        assert!(size <= dec(&t["planned_size"]));
        let mut cost = Decimal::ZERO;
        for leg in [yes, no] {
            let venue = leg["venue"].as_str().unwrap();
            let price = dec(&leg["price"]);
            assert!(
                asks[&(
                    venue.to_string(),
                    leg["outcome"].as_str().unwrap().to_string()
                )]
                    .contains(&price.normalize()),
                "filled at a price the recording offered: {leg}"
            );
            let fee = dec(&leg["fee"]);
            assert_eq!(fee, taker_fee(venue, price, size), "the venue's fee: {leg}");
            assert_eq!(leg["action"], "buy");
            cost += price * size + fee;
            *fees.entry(venue.to_string()).or_default() += fee;
            *fills.entry(venue.to_string()).or_default() += 1;
        }
        assert!(
            dec(&yes["price"]) + dec(&no["price"]) < Decimal::ONE,
            "bought both for less than $1: {t}"
        );
        // Each hedged contract pays $1 whatever happens.
        assert_eq!(
            dec(&t["pnl"]),
            size - cost,
            "P&L = payout − cost − fees: {t}"
        );
        assert!(dec(&t["pnl"]) > Decimal::ZERO, "{t}");
        locked_in += dec(&t["pnl"]);
        contracts += size;
    }
    for (venue, fee) in &fees {
        assert_eq!(dec(&bt["fees"][venue]), *fee, "{venue} fees add up: {bt}");
        assert_eq!(
            bt["fills"][venue].as_u64().unwrap(),
            fills[venue],
            "{venue} fills: {bt}"
        );
    }
    assert_eq!(dec(&bt["fees_total"]), fees.values().sum::<Decimal>());
    assert_eq!(dec(&bt["locked_in_pnl"]), locked_in);
    assert_eq!(dec(&bt["realised_pnl"]), Decimal::ZERO);
    assert_eq!(dec(&bt["pnl"]), locked_in);
    assert_eq!(dec(&bt["contracts_hedged"]), contracts);
    assert_eq!(bt["approved"].as_u64().unwrap(), listed.len() as u64);

    // Every plugin is backtested on its own; the same rule in three languages trades alike.
    for name in ["buy-both-py", "buy-both-js"] {
        assert_eq!(plugin(&report, name)["backtest"], *bt, "{name}");
    }
    assert!(
        plugin(&report, "walk-books")["backtest"]["trades"]["hedged"]
            .as_u64()
            .unwrap()
            >= 1
    );

    let text = replay(&sample(), false).await;
    assert!(
        text.contains(&format!(
            "| buy-both | {} | {hedged} hedged |",
            bt["approved"]
        )),
        "{text}"
    );
}

/// A longer recording than the sample: the simulator's books stepping every
/// 10 ms (recordings/hour-scenario.toml) for `seconds`, recorded by the demo.
async fn record_with_the_simulator(dir: &Path, seconds: u64) -> PathBuf {
    let file = dir.join("long.jsonl");
    let empty = dir.join("no-plugins");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = doubletime();
    cmd.arg("--record")
        .arg(&file)
        .args(["demo", "--duration", &seconds.to_string(), "--scenario"])
        .arg(workspace().join("recordings/hour-scenario.toml"))
        .env("DOUBLETIME_API_BIND", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/demo.db", dir.display()),
        )
        .env("DOUBLETIME_PLUGINS_DIR", &empty);
    stdout_of(cmd).await;
    file
}

/// Catches memory kept per message (about 1.5 KiB a line would show over
/// this recording); the hour-long measurement is in BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_along_a_longer_replay() {
    let dir = tempfile::tempdir().unwrap();
    let file = record_with_the_simulator(dir.path(), 5).await;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        doubletime_e2e::plugins().join("buy-both.wasm"),
        plugins.join("buy-both.wasm"),
    )
    .unwrap();
    let text = replay_with(&file, &plugins, true).await;
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let lines = report["lines"].as_u64().unwrap();
    assert!(
        lines > 4_000,
        "a longer recording than the sample: {lines} lines"
    );
    let memory = &report["memory"];
    let series: Vec<u64> = memory["series_kib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    if series.is_empty() {
        return; // not Linux: nothing sampled
    }
    // From the second sample on the books, stores and plugin memory are at
    // their working size (BENCHMARKS.md: +0.2 MiB over 242,000 lines).
    let warm = series[1.min(series.len() - 1)];
    let last = memory["last_kib"].as_u64().unwrap();
    assert!(
        last <= warm + 8 * 1024,
        "resident memory grew from {warm} KiB to {last} KiB over {lines} lines: {memory}"
    );
    assert!(
        plugin(&report, "buy-both")["backtest"]["trades"]["hedged"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the order path ran too: {report}"
    );
}

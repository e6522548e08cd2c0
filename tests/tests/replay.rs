//! End-to-end: `doubletime replay` of the committed sample recording (made
//! with the simulator from recordings/sample-scenario.toml) through the real
//! binary's parsers, books and the shipped plugins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use doubletime_e2e::{binary, plugins, workspace};

const WAIT: Duration = Duration::from_secs(120);

fn sample() -> PathBuf {
    workspace().join("recordings/sample.jsonl")
}

/// Runs `doubletime replay FILE`; returns its stdout. The replay must succeed.
async fn replay(file: &Path, json: bool) -> String {
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(workspace().join("recordings/sample.toml"))
        .arg("replay")
        .arg(file)
        .arg("--plugins")
        .arg(plugins())
        .env(
            "DOUBLETIME_PLUGIN_CACHE_DIR",
            workspace().join("target/plugin-cache"),
        )
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    if json {
        cmd.arg("--json");
    }
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("replay ends by itself")
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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

/// The report without what is measured rather than computed (latencies).
fn counts_and_edges(report: &Value) -> Value {
    let mut r = report.clone();
    let obj = r.as_object_mut().unwrap();
    obj.remove("tick_to_decision");
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

    let text = replay(&sample(), false).await;
    assert!(text.contains("| narrow | 0 | — |"), "{text}");
    assert!(text.contains("| buy-both | 1.0.0 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_gives_the_same_report_twice_and_bad_lines_are_counted_not_fatal() {
    let first = replay_json(&sample()).await;
    let second = replay_json(&sample()).await;
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

//! End-to-end: the real `doubletime demo` binary, its simulated venues, both
//! feeds, the shipped plugins and the REST API, driven by a scenario file and
//! observed only from outside (the API and its event stream).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use doubletime_e2e::{binary, plugins, strip_ansi, workspace};

const WAIT: Duration = Duration::from_secs(120);

const PAIRS: &str = r#"
dry_run = true
min_profit_threshold = "0.01"

[[markets]]
id = "wide"
kalshi_ticker = "KXWIDE-26DEC"
polymarket_condition_id = "0x01"
polymarket_yes_token = "111"
polymarket_no_token = "112"
rules_match = true
polymarket_fee_rate = "0.04"

[[markets]]
id = "narrow"
kalshi_ticker = "KXNARROW-26DEC"
polymarket_condition_id = "0x02"
polymarket_yes_token = "221"
polymarket_no_token = "222"
rules_match = true
polymarket_fee_rate = "0.04"
"#;

/// The narrow window opens first and is thinner than the fees; the wide one
/// opens after it, so once the wide one is decided the narrow one was too.
const SCENARIO: &str = r#"
seed = 3
tick_ms = 3600000

[[events]]
at_ms = 1500
pair = "narrow"
kind = "arb_window"
direction = "kalshi_yes"
edge = "0.01"
size = "50"
duration_ms = 600000

[[events]]
at_ms = 2500
pair = "wide"
kind = "arb_window"
direction = "polymarket_yes"
edge = "0.06"
size = "50"
duration_ms = 600000
"#;

struct Demo {
    child: Child,
    api: String,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The test's configuration (plugins from the build, the shared compile cache)
/// and scenario, written into `dir`.
fn write_config(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let config = dir.join("doubletime.toml");
    let cache = workspace().join("target/plugin-cache");
    let text = format!(
        "plugins_dir = {:?}\nplugin_cache_dir = {:?}\ndatabase_url = {:?}\n{PAIRS}",
        plugins().display().to_string(),
        cache.display().to_string(),
        format!("sqlite://{}", dir.join("trades.db").display())
    );
    std::fs::write(&config, text).unwrap();
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    (config, scenario)
}

async fn start_demo() -> Demo {
    start_demo_in(tempfile::tempdir().unwrap()).await
}

/// The demo with its config, scenario and trade store in `dir` (kept across restarts).
async fn start_demo_in(dir: tempfile::TempDir) -> Demo {
    let (config, scenario) = write_config(dir.path());
    let mut child = Command::new(binary())
        .args([
            "--config",
            config.to_str().unwrap(),
            "demo",
            "--duration",
            "300",
            "--scenario",
            scenario.to_str().unwrap(),
        ])
        .env("DOUBLETIME_API_BIND", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting doubletime");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let api = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = strip_ansi(&line);
            if let Some(rest) = line.split("API listening addr=").nth(1) {
                return format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        }
        panic!("doubletime exited before the API came up");
    })
    .await
    .expect("API did not come up");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo {
        child,
        api,
        _dir: dir,
    }
}

/// The host's server-sent event stream, read line by line.
struct Events {
    lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
}

impl Events {
    /// Opens `/events`; once this returns the stream is subscribed (the
    /// status line and headers come after the subscription).
    async fn subscribe(api: &str) -> Events {
        let addr = api.trim_start_matches("http://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut lines = BufReader::new(stream).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.is_empty() {
                break;
            }
        }
        Events { lines }
    }

    /// The data of the next `name` event that `want` accepts.
    async fn next_matching(&mut self, name: &str, want: impl Fn(&Value) -> bool) -> Value {
        let mut event = String::new();
        while let Some(line) = self.lines.next_line().await.unwrap() {
            if let Some(n) = line.strip_prefix("event:") {
                event = n.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:")
                && event == name
                && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                && want(&v)
            {
                return v;
            }
        }
        panic!("event stream ended");
    }
}

/// An opportunity for `pair`: from the recent list if it already happened,
/// otherwise the next `opportunity` event on the server-sent event stream
/// (subscribed before looking at the list, so nothing falls in between).
async fn await_opportunity(api: &str, pair: &str) -> Value {
    let mut events = Events::subscribe(api).await;
    let recent: Value = reqwest::get(format!("{api}/opportunities"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if let Some(found) = recent.as_array().and_then(|a| {
        a.iter()
            .find(|o| o.to_string().contains(&format!("\"{pair}\"")))
    }) {
        return found.clone();
    }
    events
        .next_matching("opportunity", |v| {
            v.to_string().contains(&format!("\"{pair}\""))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_window_is_found_and_one_narrower_than_fees_is_ignored() {
    let demo = start_demo().await;
    let http = reqwest::Client::new();
    let found = tokio::time::timeout(WAIT, await_opportunity(&demo.api, "wide"))
        .await
        .expect("no opportunity for the wide window");
    let text = found.to_string();
    assert!(text.contains("polymarket"), "{text}");

    // The narrow window is in the books (a positive gross edge)...
    let narrow: Value = http
        .get(format!("{}/markets/narrow", demo.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        narrow.to_string().contains("0.01"),
        "narrow window visible in the books: {narrow}"
    );
    // ...but no plugin called it an opportunity: fees eat a 1c edge.
    let recent: Value = http
        .get(format!("{}/opportunities", demo.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recent = recent.to_string();
    assert!(recent.contains("\"wide\""), "{recent}");
    assert!(!recent.contains("\"narrow\""), "{recent}");

    // The plugins that found it are the shipped ones, loaded from the folder.
    let plugins: Value = http
        .get(format!("{}/plugins", demo.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for name in ["buy-both", "buy-both-py", "buy-both-js", "walk-books"] {
        assert!(
            plugins.to_string().contains(&format!("\"{name}\"")),
            "{name} missing: {plugins}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_both_venues_raw_messages_with_receive_times() {
    let dir = tempfile::tempdir().unwrap();
    let (config, scenario) = write_config(dir.path());
    let recording = dir.path().join("session.jsonl");
    let status = tokio::time::timeout(
        WAIT,
        Command::new(binary())
            .args([
                "--config",
                config.to_str().unwrap(),
                "--record",
                recording.to_str().unwrap(),
            ])
            .args([
                "demo",
                "--duration",
                "4",
                "--scenario",
                scenario.to_str().unwrap(),
            ])
            .env("DOUBLETIME_API_BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .expect("demo --duration ends by itself")
    .unwrap();
    assert!(status.success());
    let lines: Vec<Value> = std::fs::read_to_string(&recording)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for venue in ["kalshi", "polymarket"] {
        let mine: Vec<&Value> = lines.iter().filter(|l| l["venue"] == venue).collect();
        assert!(!mine.is_empty(), "no {venue} messages recorded");
        assert!(
            mine.iter()
                .all(|l| l["t"].as_u64().unwrap_or(0) > 1_700_000_000_000_000),
            "receive times in µs since the epoch"
        );
    }
    assert!(lines.iter().any(|l| {
        l["msg"]
            .as_str()
            .unwrap_or("")
            .contains("orderbook_snapshot")
    }));
    assert!(
        lines
            .iter()
            .any(|l| l["msg"].as_str().unwrap_or("").contains("\"book\""))
    );
}

/// The first executed trade of `pair`: from `GET /trades` if it already
/// happened, otherwise the next `trade` event (subscribed before looking).
async fn await_trade(api: &str, pair: &str) -> Value {
    let mut events = Events::subscribe(api).await;
    let listed: Value = reqwest::get(format!("{api}/trades"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if let Some(t) = listed["trades"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["opportunity"]["pair"] == pair))
    {
        return t["trade_id"].clone();
    }
    events
        .next_matching("trade", |v| v["opportunity"]["pair"] == pair)
        .await["id"]
        .clone()
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_both_legs_and_the_trade_survives_a_kill() {
    let mut demo = start_demo().await;
    let id = tokio::time::timeout(WAIT, await_trade(&demo.api, "wide"))
        .await
        .expect("the wide window is traded");
    let id = id.as_str().expect("a trade id").to_string();
    // Both legs filled the same size: a hedged position, on both venues.
    // A trade is announced once it is booked.
    let trade = get_json(format!("{}/trades/{id}", demo.api)).await;
    assert_eq!(trade["outcome"]["kind"], "hedged", "{trade}");
    let (yes, no) = (&trade["yes_fill"], &trade["no_fill"]);
    assert_eq!(yes["size"], no["size"], "{trade}");
    assert_eq!(yes["venue"], "polymarket");
    assert_eq!(no["venue"], "kalshi");
    let pnl: rust_decimal::Decimal = trade["pnl"].as_str().unwrap().parse().unwrap();
    assert!(
        pnl > rust_decimal::Decimal::ZERO,
        "a 6c window nets a profit: {trade}"
    );
    let held = get_json(format!("{}/positions", demo.api)).await;
    let wide: Vec<&Value> = held
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pair"] == "wide")
        .collect();
    assert_eq!(wide.len(), 2, "YES on one venue, NO on the other: {held}");
    assert_eq!(wide[0]["contracts"], wide[1]["contracts"], "{held}");

    // kill -9, then start again on the same store: the trade is still there.
    demo.child.start_kill().unwrap();
    demo.child.wait().await.unwrap();
    let dir = std::mem::replace(&mut demo._dir, tempfile::tempdir().unwrap());
    drop(demo);
    let again = start_demo_in(dir).await;
    let kept = get_json(format!("{}/trades/{id}", again.api)).await;
    assert_eq!(kept["trade_id"], id.as_str(), "{kept}");
    assert_eq!(kept["outcome"], trade["outcome"]);
    assert_eq!(kept["pnl"], trade["pnl"]);
}

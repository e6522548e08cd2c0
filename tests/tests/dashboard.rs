//! End-to-end: the dashboard in headless Chromium. The real `doubletime demo`
//! binary runs a scenario with an arbitrage window; Chromium (Debian's
//! `chromium` package, or `DOUBLETIME_CHROMIUM`) opens the page the host serves
//! and is driven over the DevTools protocol. The test asserts what a user sees
//! (markets with prices, plugins, trades and P&L, live events), pauses trading
//! with the page's button and confirms it over HTTP, checks that the API token
//! is never rendered and that the page raised no JavaScript error.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use doubletime_e2e::{binary, plugins, strip_ansi, workspace};

/// The demo's start (compiling the interpreted plugins takes a while on a cold cache).
const START: Duration = Duration::from_secs(120);
/// Chromium's start.
const LAUNCH: Duration = Duration::from_secs(60);
/// One DevTools command.
const CALL: Duration = Duration::from_secs(30);
/// One condition on the page or the API.
const STEP: Duration = Duration::from_secs(60);
/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(100);

fn chromium() -> PathBuf {
    let path = std::env::var_os("DOUBLETIME_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "{} missing: the dashboard test drives headless Chromium. Install Debian's chromium \
         package (`apt-get install -y chromium`) or point DOUBLETIME_CHROMIUM at a Chromium binary",
        path.display()
    );
    path
}

const PAIRS: &str = r#"
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

/// Books move every 200 ms, so while the wide window is open (the whole run)
/// every move is a fresh opportunity: the page always has live events to show.
/// The narrow window is thinner than the fees: in the books, never traded.
const SCENARIO: &str = r#"
seed = 3
tick_ms = 200

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

/// The names of the shipped plugins in `target/plugins`.
const PLUGINS: [&str; 4] = ["buy-both", "buy-both-py", "buy-both-js", "walk-books"];

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

/// A token for this run only (never printed): the test enters it on the page.
fn session_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dash-{:x}-{nanos:x}", std::process::id())
}

async fn start_demo(token: &str) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("doubletime.toml");
    let text = format!(
        "plugins_dir = {:?}\nplugin_cache_dir = {:?}\ndatabase_url = {:?}\n{PAIRS}",
        plugins().display().to_string(),
        workspace()
            .join("target/plugin-cache")
            .display()
            .to_string(),
        format!("sqlite://{}", dir.path().join("trades.db").display())
    );
    std::fs::write(&config, text).unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let mut child = Command::new(binary())
        .args(["--config", config.to_str().unwrap()])
        .args(["demo", "--duration", "300"])
        .args(["--scenario", scenario.to_str().unwrap()])
        // No `.env` of the working tree: the test's settings only.
        .current_dir(dir.path())
        .env("DOUBLETIME_API_BIND", "127.0.0.1:0")
        .env("DOUBLETIME_API_TOKEN", token)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting doubletime");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let api = tokio::time::timeout(START, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = strip_ansi(&line);
            if let Some(rest) = line.split("API listening addr=").nth(1) {
                return format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        }
        panic!("doubletime exited before the API came up");
    })
    .await
    .expect("the demo's API did not come up");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo {
        child,
        api,
        _dir: dir,
    }
}

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A DevTools protocol connection: commands matched to their replies by id,
/// every event kept in arrival order.
struct Cdp {
    sink: tokio::sync::Mutex<Sink>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Cdp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio::time::timeout(CALL, tokio_tungstenite::connect_async(url))
            .await
            .expect("connecting to Chromium's DevTools timed out")
            .expect("connecting to Chromium's DevTools");
        let (sink, mut stream) = ws.split();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let reader = tokio::spawn({
            let (pending, events) = (pending.clone(), events.clone());
            async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    match v["id"].as_u64() {
                        Some(id) => {
                            if let Some(reply) = pending.lock().unwrap().remove(&id) {
                                let _ = reply.send(v);
                            }
                        }
                        None => events.lock().unwrap().push(v),
                    }
                }
            }
        });
        Cdp {
            sink: tokio::sync::Mutex::new(sink),
            pending,
            events,
            next_id: AtomicU64::new(1),
            reader,
        }
    }

    /// Sends a command (to a page session if given) and returns its result.
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            msg["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.sink
            .lock()
            .await
            .send(Message::text(msg.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{method}: sending to Chromium: {e}"));
        let reply = tokio::time::timeout(CALL, rx)
            .await
            .unwrap_or_else(|_| panic!("{method}: no reply from Chromium in {CALL:?}"))
            .unwrap_or_else(|_| panic!("{method}: Chromium closed the connection"));
        if let Some(error) = reply.get("error") {
            panic!("{method}: {error}");
        }
        reply["result"].clone()
    }
}

struct Browser {
    cdp: Cdp,
    _child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(path: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--no-proxy-server",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(LAUNCH, async {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    return url.to_string();
                }
                seen.push(line);
            }
            panic!(
                "Chromium exited before DevTools came up:\n{}",
                seen.join("\n")
            );
        })
        .await
        .expect("Chromium did not start its DevTools server");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Browser {
            cdp: Cdp::connect(&url).await,
            _child: child,
            _profile: profile,
        }
    }

    /// A fresh tab, with the runtime, page and log domains reporting.
    async fn new_page(&self) -> Page<'_> {
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let page = Page {
            cdp: &self.cdp,
            session: attached["sessionId"].as_str().unwrap().to_string(),
        };
        for domain in ["Runtime", "Page", "Log"] {
            page.call(&format!("{domain}.enable"), json!({})).await;
        }
        page
    }
}

struct Page<'a> {
    cdp: &'a Cdp,
    session: String,
}

impl Page<'_> {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// The value of a JavaScript expression (promises awaited).
    async fn eval(&self, expression: &str) -> Value {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(e) = reply.get("exceptionDetails") {
            panic!("evaluating {expression}: {e}");
        }
        reply["result"]["value"].clone()
    }

    /// Evaluates `expression` until it gives something other than null or
    /// false, and returns that.
    async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let mut last = Value::Null;
        let mut poll = tokio::time::interval(POLL);
        let found = tokio::time::timeout(STEP, async {
            loop {
                poll.tick().await;
                let v = self.eval(expression).await;
                if !(v.is_null() || v == Value::Bool(false)) {
                    return v;
                }
                last = v;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("page: {what} not seen in {STEP:?} (last: {last})"))
    }

    /// A real mouse click in the middle of the element `selector`.
    async fn click(&self, selector: &str) {
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
            ))
            .await;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Every error the page reported so far: uncaught exceptions and rejections,
    /// `console.error`, and error entries of the browser's log (failed loads).
    fn errors(&self) -> Vec<Value> {
        let events = self.cdp.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e["sessionId"] == self.session.as_str())
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(p["exceptionDetails"].clone()),
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                    {
                        Some(p["args"].clone())
                    }
                    "Log.entryAdded" if p["entry"]["level"] == "error" => Some(p["entry"].clone()),
                    _ => None,
                }
            })
            .collect()
    }
}

/// `GET {api}{path}` as JSON.
async fn get(api: &str, path: &str) -> Value {
    tokio::time::timeout(CALL, async {
        reqwest::get(format!("{api}{path}"))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    })
    .await
    .unwrap_or_else(|_| panic!("GET {path} timed out"))
}

/// The rows of a table on the page, as the text of their cells.
fn table_rows(id: &str) -> String {
    format!(
        "[...document.querySelectorAll('#{id} tbody tr')].map((r) => [...r.cells].map((c) => c.textContent.trim()))"
    )
}

fn rows(v: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(v.clone()).unwrap()
}

/// A price as the page shows it: a decimal strictly between 0 and 1.
fn is_price(cell: &str) -> bool {
    cell.parse::<f64>().is_ok_and(|p| p > 0.0 && p < 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_host_live_and_pauses_trading() {
    let chromium = chromium();
    let token = session_token();
    let demo = start_demo(&token).await;
    let api = demo.api.clone();
    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page().await;

    page.call("Page.navigate", json!({ "url": format!("{api}/") }))
        .await;
    page.wait_for(
        "the dashboard loaded",
        "document.readyState === 'complete' && document.title === 'Double Time'",
    )
    .await;

    // Markets: both configured pairs, every venue's YES and NO ask, and the
    // scripted windows' gross edges (6c and 1c) once they are open.
    let markets = rows(
        &page
            .wait_for(
                "both markets with prices and the windows' edges",
                &format!(
                    "(() => {{ const rows = {}; \
                     const edge = (id, e) => rows.some((r) => r[0] === id && r[5] === e); \
                     return edge('wide', '0.0600') && edge('narrow', '0.0100') ? rows : null; }})()",
                    table_rows("markets")
                ),
            )
            .await,
    );
    let ids: BTreeSet<&str> = markets.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["narrow", "wide"]), "{markets:?}");
    for row in &markets {
        assert_eq!(row.len(), 7, "{row:?}");
        assert!(
            row[1..5].iter().all(|c| is_price(c)),
            "four asks on {}: {row:?}",
            row[0]
        );
        assert_eq!(row[6], "yes", "rules match: {row:?}");
    }

    // Plugins: exactly the loaded ones, as the API lists them, all active.
    let listed: BTreeSet<String> = get(&api, "/plugins")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    for name in PLUGINS {
        assert!(listed.contains(name), "{name} not loaded: {listed:?}");
    }
    let plugins = rows(
        &page
            .wait_for(
                "the plugins table",
                &format!(
                    "(() => {{ const rows = {}; return rows.length === {} ? rows : null; }})()",
                    table_rows("plugins"),
                    listed.len()
                ),
            )
            .await,
    );
    let shown: BTreeSet<String> = plugins.iter().map(|r| r[0].clone()).collect();
    assert_eq!(shown, listed, "{plugins:?}");
    for row in &plugins {
        assert_eq!(row[2], "active", "{row:?}");
        assert!(!row[1].is_empty(), "a version: {row:?}");
        assert_eq!(row[7], "disable", "{row:?}");
    }

    // Live events: the page's log is written only by the event stream.
    let line = page
        .wait_for(
            "a live opportunity event for the wide window",
            "[...document.querySelectorAll('#log div')].map((d) => d.textContent) \
             .find((t) => t.includes('  opportunity  wide ')) ?? null",
        )
        .await;
    let line = line.as_str().unwrap();
    assert!(
        PLUGINS
            .iter()
            .any(|p| line.contains(&format!(" wide {p} "))),
        "found by a shipped plugin: {line}"
    );
    assert!(
        line.contains("yes@polymarket") && line.contains("no@kalshi"),
        "{line}"
    );
    let net: f64 = line.rsplit(" net ").next().unwrap().parse().unwrap();
    assert!(net > 0.0, "positive net edge: {line}");

    // Trades and P&L, once the demo traded the wide window.
    let trades = rows(
        &page
            .wait_for(
                "a trade of the wide window",
                &format!(
                    "(() => {{ const rows = {}; return rows.some((r) => r[1] === 'wide') ? rows : null; }})()",
                    table_rows("trades")
                ),
            )
            .await,
    );
    assert!(
        trades.iter().all(|r| r[1] == "wide"),
        "only the wide window is worth trading: {trades:?}"
    );
    let first = &trades[0];
    let booked = get(&api, &format!("/trades/{}", first[0])).await;
    assert_eq!(booked["opportunity"]["pair"], "wide", "{booked}");
    assert_eq!(booked["outcome"]["kind"], first[2].as_str(), "{booked}");
    assert_eq!(booked["opportunity"]["size"], first[3].as_str(), "{booked}");
    assert!(first[4].parse::<f64>().is_ok(), "P&L: {first:?}");
    let pnl = page
        .eval("document.getElementById('pnl').textContent")
        .await;
    let pnl = pnl.as_str().unwrap();
    assert!(
        pnl.strip_prefix("· P&L $")
            .is_some_and(|v| v.parse::<f64>().is_ok()),
        "total P&L: {pnl:?}"
    );

    // Pause: trading runs, and the page says so.
    let risk = get(&api, "/risk").await;
    assert!(risk["state"]["paused"].is_null(), "not paused yet: {risk}");
    page.wait_for(
        "the trading state",
        "document.getElementById('trading').textContent === 'trading'",
    )
    .await;

    // Without the token the button is refused and says why...
    let before = page.errors().len();
    page.click("#pause").await;
    page.wait_for(
        "the refusal of a pause without the token",
        "[...document.querySelectorAll('#log div')].some((d) => d.textContent.includes('  error  ') \
         && d.textContent.includes('Authorization: Bearer'))",
    )
    .await;
    let risk = get(&api, "/risk").await;
    assert!(
        risk["state"]["paused"].is_null(),
        "a pause without the token changed nothing: {risk}"
    );
    // ...the browser logs the refused request (401) and nothing else.
    let refused: Vec<Value> = page.errors().split_off(before);
    assert!(
        refused.iter().all(|e| e["source"] == "network"
            && e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/trading/pause"))),
        "{refused:?}"
    );

    // ...with the token typed into its field, it pauses trading.
    page.eval("document.getElementById('token').focus()").await;
    page.call("Input.insertText", json!({ "text": token }))
        .await;
    page.click("#pause").await;
    let mut poll = tokio::time::interval(POLL);
    let risk = tokio::time::timeout(STEP, async {
        loop {
            poll.tick().await;
            let risk = get(&api, "/risk").await;
            if !risk["state"]["paused"].is_null() {
                return risk;
            }
        }
    })
    .await
    .expect("the pause button did not pause trading");
    assert_eq!(
        risk["state"]["paused"]["by"], "operator",
        "paused by the operator: {risk}"
    );
    assert_eq!(risk["state"]["kill_switch"], false, "{risk}");
    page.wait_for(
        "the page showing trading paused",
        "document.getElementById('trading').textContent === 'paused'",
    )
    .await;

    // The token is used, never shown: not in the served page, not in the
    // document or its text, and its field is a password field.
    let served = tokio::time::timeout(CALL, async {
        reqwest::get(format!("{api}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await
    .expect("GET / timed out");
    assert!(
        !served.contains(&token),
        "the served page carries the token"
    );
    let rendered = page
        .eval(
            "document.documentElement.outerHTML + '\\n' + document.body.innerText + '\\n' + \
             document.title + '\\n' + location.href",
        )
        .await;
    assert!(
        !rendered.as_str().unwrap().contains(&token),
        "the page renders the API token"
    );
    assert_eq!(
        page.eval("document.getElementById('token').type").await,
        "password"
    );

    // No JavaScript error in the whole session (the expected 401 aside).
    let mut errors = page.errors();
    errors.drain(before..before + refused.len());
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

//! The REST control API over real HTTP: a host with the built `buy-both` plugin
//! and one market pair, served on 127.0.0.1 with an ephemeral port, driven with
//! reqwest. Every response is checked never to carry the API token.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use doubletime::app::Host;
use doubletime::bus::BookChanged;
use doubletime::config::{ApiConfig, Config, MarketConfig, Secret};
use doubletime::domain::{PairId, Venue};
use doubletime::strategy::now_micros;
use reqwest::{Method, RequestBuilder, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::WAIT;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN: &str = "api-test-token-5d1e0c9b";
const MARKET: &str = "fed";

/// The configured pair, with rule texts and the fees of `support::arb_pair`.
fn fed_market() -> MarketConfig {
    let p = support::pair(MARKET);
    serde_json::from_value(json!({
        "id": MARKET,
        "kalshi_ticker": p.kalshi_ticker,
        "polymarket_condition_id": p.polymarket_condition_id,
        "polymarket_yes_token": p.polymarket_yes_token.as_str(),
        "polymarket_no_token": p.polymarket_no_token.as_str(),
        "kalshi_rules": "Resolves Yes if the Fed holds rates in December.",
        "polymarket_rules": "Resolves Yes if the FOMC leaves the target range unchanged.",
        "rules_match": true,
        "polymarket_fee_rate": "0.04",
    }))
    .unwrap()
}

/// A decimal the API sent as a string ("0.4" and "0.40" are the same price).
fn num(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A host behind the API on an ephemeral port.
struct TestApi {
    base: String,
    host: Arc<Host>,
    http: reqwest::Client,
    /// Holds `plugins/` (the host's plugins folder) and room to plant files outside it.
    root: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// The message of a JSON error response.
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.body))
            .to_string()
    }
    fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        self
    }
}

impl TestApi {
    async fn start() -> TestApi {
        Self::start_with(Some(TOKEN)).await
    }

    async fn start_with(token: Option<&str>) -> TestApi {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::write(
            plugins.join("buy-both.wasm"),
            support::plugin_bytes("buy-both"),
        )
        .unwrap();
        let config = Config {
            plugins_dir: plugins,
            plugin_cache_dir: support::cache_dir(),
            api: ApiConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                token: Secret::new(token.unwrap_or_default()),
            },
            markets: vec![fed_market()],
            database_url: Secret::new(format!(
                "sqlite://{}",
                root.path().join("store").join("trades.db").display()
            )),
            ..Config::default()
        };
        let served = support::serve_host(config).await;
        assert!(served.host.strategy.report("buy-both").is_some());
        TestApi {
            base: served.base,
            host: served.host,
            http: served.http,
            root,
            stop: Some(served.stop),
            server: served.server,
        }
    }

    fn plugins_dir(&self) -> PathBuf {
        self.root.path().join("plugins")
    }

    fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn authed(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(TOKEN)
    }

    /// Sends, reads the whole reply, and checks the token is nowhere in it.
    async fn send(&self, request: RequestBuilder) -> Reply {
        let resp = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("the API answers in time")
            .expect("the request reaches the API");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        assert!(!body.contains(TOKEN), "the token leaked in a body: {body}");
        for (name, value) in &headers {
            assert!(
                !value
                    .as_bytes()
                    .windows(TOKEN.len())
                    .any(|w| w == TOKEN.as_bytes()),
                "the token leaked in header {name}"
            );
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.anon(Method::GET, path)).await
    }

    /// Opens `/events`; once this returns the stream is subscribed.
    async fn events(&self) -> Events {
        let resp = self.anon(Method::GET, "/events").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Events {
            resp,
            buf: String::new(),
        }
    }

    /// Puts an arbitrage on the pair's books and tells the plugins, as a feed would.
    fn arbitrage_on_the_books(&self) {
        let entry = self.host.books.get(&PairId(MARKET.into())).unwrap();
        support::arb_books(&entry);
        self.host.bus.books.publish(
            PairId(MARKET.into()),
            BookChanged {
                venue: Venue::Kalshi,
                first_received_at: now_micros(),
                changes: 1,
            },
        );
    }
}

/// A server-sent events reader.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    /// The next named event (keep-alive comments skipped); `None` when the stream ends.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(name) = name {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let chunk = self.resp.chunk().await.ok()??;
            let text = String::from_utf8(chunk.to_vec()).unwrap();
            assert!(!text.contains(TOKEN), "the token leaked in an event");
            self.buf.push_str(&text);
        }
    }

    /// Waits (bounded) for an event named `name` whose data `want` accepts.
    async fn until(&mut self, name: &str, want: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.next().await {
                    Some((n, data)) if n == name && want(&data) => return data,
                    Some(_) => {}
                    None => panic!("the event stream ended before a matching {name} event"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no matching {name} event"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_status_describe_the_running_host() {
    let api = TestApi::start().await;
    assert_eq!(
        api.get("/health").await.expect(StatusCode::OK).json(),
        json!({"status": "ok"})
    );

    let status = api.get("/status").await.expect(StatusCode::OK).json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["app_env"], "demo");
    assert_eq!(status["dry_run"], true);
    assert_eq!(status["markets"], 1);
    assert_eq!(status["plugins"][0]["name"], "buy-both");
    assert_eq!(status["plugins"][0]["mode"]["state"], "active");
    assert_eq!(status["plugins"][0]["faults"], 0);
    for topic in ["books", "opportunities", "executions", "trades", "status"] {
        assert!(
            status["bus"][topic]["published"].is_u64(),
            "{topic}: {status}"
        );
    }
    assert!(status["evaluations"].is_u64());
    assert!(status["tick_to_decision"]["p99_ns"].is_u64());
    let books = status["books"].as_array().unwrap();
    assert_eq!(books.len(), 2, "one per venue: {status}");
    assert!(
        books
            .iter()
            .all(|b| b["market"] == MARKET && b["age_seconds"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_bearer_token() {
    let api = TestApi::start().await;
    let without = api
        .send(api.anon(Method::DELETE, "/plugins/buy-both"))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(without.error().contains("Bearer"), "{}", without.error());
    assert_eq!(without.headers["www-authenticate"], "Bearer");
    let wrong = api
        .send(
            api.anon(Method::DELETE, "/plugins/buy-both")
                .bearer_auth(format!("{TOKEN}x")),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), "wrong bearer token");
    let basic = api
        .send(
            api.anon(Method::POST, "/plugins/buy-both/disable")
                .basic_auth("u", Some(TOKEN)),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    api.send(api.anon(Method::POST, "/markets").json(&json!({})))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    api.send(api.anon(Method::PUT, "/plugins/buy-both").body("x"))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    let report = api.host.strategy.report("buy-both").unwrap();
    assert_eq!(report.mode, doubletime::strategy::PluginMode::Active);
    assert!(
        api.plugins_dir().join("buy-both.wasm").is_file(),
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_api_is_read_only() {
    let api = TestApi::start_with(None).await;
    api.get("/plugins").await.expect(StatusCode::OK);
    let refused = api
        .send(
            api.anon(Method::POST, "/plugins/buy-both/disable")
                .bearer_auth(""),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        refused.error().contains("DOUBLETIME_API_TOKEN"),
        "{}",
        refused.error()
    );
    api.send(api.anon(Method::DELETE, "/markets/fed"))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(api.host.books.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markets_are_listed_added_and_removed() {
    let api = TestApi::start().await;
    let listed = api.get("/markets").await.expect(StatusCode::OK).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], MARKET);
    assert_eq!(listed[0]["index"], 0);

    let cpi = json!({
        "id": "cpi-may",
        "kalshi_ticker": "KXCPI-25MAY",
        "polymarket_condition_id": "0xc0ffee",
        "polymarket_yes_token": "123456",
        "polymarket_no_token": "654321",
        "rules_match": false,
        "polymarket_fee_rate": "0.02",
    });
    let added = api
        .send(api.authed(Method::POST, "/markets").json(&cpi))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(added["id"], "cpi-may");
    assert_eq!(added["index"], 1);
    assert_eq!(num(&added["fees"]["polymarket"]["rate"]), dec("0.02"));
    assert_eq!(
        num(&added["fees"]["kalshi"]["taker_rate"]),
        dec("0.07"),
        "from the config"
    );
    assert_eq!(api.host.books.len(), 2);

    let dup = api
        .send(api.authed(Method::POST, "/markets").json(&cpi))
        .await
        .expect(StatusCode::CONFLICT);
    assert!(dup.error().contains("cpi-may"), "{}", dup.error());

    let detail = api
        .get("/markets/cpi-may")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(detail["kalshi_ticker"], "KXCPI-25MAY");
    assert_eq!(detail["rules_match"], false);

    let removed = api
        .send(api.authed(Method::DELETE, "/markets/cpi-may"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(removed["id"], "cpi-may");
    assert_eq!(api.host.books.len(), 1);
    api.send(api.authed(Method::DELETE, "/markets/cpi-may"))
        .await
        .expect(StatusCode::NOT_FOUND);
    let missing = api
        .get("/markets/cpi-may")
        .await
        .expect(StatusCode::NOT_FOUND);
    assert!(missing.error().contains("cpi-may"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_market_bodies_are_refused_with_the_reason() {
    let api = TestApi::start().await;
    let post = |body: &'static str| {
        api.authed(Method::POST, "/markets")
            .header("content-type", "application/json")
            .body(body)
    };
    let malformed = api
        .send(post("{\"id\": "))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        malformed.error().starts_with("invalid JSON body"),
        "{}",
        malformed.error()
    );
    let unknown_field = api
        .send(post(r#"{"id":"x","kalshi_ticker":"K","polymarket_condition_id":"0x1","polymarket_yes_token":"1","polymarket_no_token":"2","colour":"red"}"#))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        unknown_field.error().contains("colour"),
        "{}",
        unknown_field.error()
    );
    let bad_token = api
        .send(post(r#"{"id":"x","kalshi_ticker":"K","polymarket_condition_id":"0x1","polymarket_yes_token":"12x","polymarket_no_token":"2"}"#))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_token.error().contains("polymarket_yes_token"),
        "{}",
        bad_token.error()
    );
    let bad_id = api
        .send(post(r#"{"id":"../x","kalshi_ticker":"K","polymarket_condition_id":"0x1","polymarket_yes_token":"1","polymarket_no_token":"2"}"#))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_id.error().contains("market id"), "{}", bad_id.error());

    // Exactly one byte over: the server has read the whole body when it refuses
    // it, so closing the connection cannot reset the client mid-request.
    let oversized = "x".repeat(doubletime::api::BODY_LIMIT + 1);
    let too_large = api
        .send(api.authed(Method::POST, "/markets").body(oversized))
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_large.error().contains("too large"),
        "{}",
        too_large.error()
    );
    assert_eq!(api.host.books.len(), 1, "nothing was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_detail_shows_books_derived_asks_and_gross_edge() {
    let api = TestApi::start().await;
    let empty = api.get("/markets/fed").await.expect(StatusCode::OK).json();
    assert!(empty["kalshi"]["best_yes_ask"].is_null());
    assert!(empty["directions"][0]["gross_cost"].is_null());
    assert!(empty["kalshi"]["age_seconds"].is_null());

    api.arbitrage_on_the_books();
    let d = api.get("/markets/fed").await.expect(StatusCode::OK).json();
    assert_eq!(d["id"], MARKET);
    assert_eq!(d["rules_match"], true);
    assert!(d["kalshi_rules"].as_str().unwrap().contains("Fed holds"));
    assert!(d["polymarket_rules"].as_str().unwrap().contains("FOMC"));
    // Kalshi publishes bids only; its asks are derived from the other side.
    assert_eq!(num(&d["kalshi"]["no"]["bids"][0]["price"]), dec("0.60"));
    assert_eq!(num(&d["kalshi"]["no"]["bids"][0]["size"]), dec("100"));
    assert_eq!(num(&d["kalshi"]["best_yes_ask"]["price"]), dec("0.40"));
    assert_eq!(num(&d["kalshi"]["best_no_ask"]["price"]), dec("0.70"));
    assert_eq!(num(&d["polymarket"]["no"]["asks"][0]["price"]), dec("0.55"));
    assert_eq!(num(&d["polymarket"]["best_no_ask"]["price"]), dec("0.55"));
    assert_eq!(num(&d["polymarket"]["best_yes_ask"]["price"]), dec("0.70"));
    assert_eq!(d["polymarket"]["stale"], false);
    assert!(d["polymarket"]["age_seconds"].as_f64().unwrap() >= 0.0);

    let dirs = d["directions"].as_array().unwrap();
    let kalshi_yes = dirs.iter().find(|x| x["buy_yes_on"] == "kalshi").unwrap();
    assert_eq!(kalshi_yes["buy_no_on"], "polymarket");
    assert_eq!(num(&kalshi_yes["yes_ask"]["price"]), dec("0.40"));
    assert_eq!(num(&kalshi_yes["no_ask"]["price"]), dec("0.55"));
    assert_eq!(num(&kalshi_yes["gross_cost"]), dec("0.95"));
    assert_eq!(num(&kalshi_yes["gross_edge"]), dec("0.05"));
    assert_eq!(num(&kalshi_yes["top_size"]), dec("100"));
    let poly_yes = dirs
        .iter()
        .find(|x| x["buy_yes_on"] == "polymarket")
        .unwrap();
    assert_eq!(num(&poly_yes["gross_cost"]), dec("1.40"));
    assert_eq!(num(&poly_yes["gross_edge"]), dec("-0.40"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_reported_disabled_enabled_and_configured() {
    let api = TestApi::start().await;
    let all = api.get("/plugins").await.expect(StatusCode::OK).json();
    assert_eq!(all[0]["name"], "buy-both");
    let one = api
        .get("/plugins/buy-both")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(one["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(one["mode"]["state"], "active");
    assert_eq!(one["wit_version"], "1.1.0");
    assert_eq!(
        one["hot_call"], "evaluate-top",
        "buy-both exports top-of-book"
    );

    let off = api
        .send(api.authed(Method::POST, "/plugins/buy-both/disable"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(off["mode"]["state"], "disabled");
    let on = api
        .send(api.authed(Method::POST, "/plugins/buy-both/enable"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(on["mode"]["state"], "active");

    let set = api
        .send(
            api.authed(Method::PUT, "/plugins/buy-both/config")
                .json(&json!({"max-size": 7})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    let max_size = |report: &Value| {
        report["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "max-size")
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(max_size(&set), 7);

    let refused = api
        .send(
            api.authed(Method::PUT, "/plugins/buy-both/config")
                .json(&json!({"max-size": 0})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.error().contains("max-size must be > 0"),
        "{}",
        refused.error()
    );
    let unknown = api
        .send(
            api.authed(Method::PUT, "/plugins/buy-both/config")
                .json(&json!({"colour": 1})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.error().contains("colour"));
    let not_integer = api
        .send(
            api.authed(Method::PUT, "/plugins/buy-both/config")
                .json(&json!({"max-size": 1.5})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        not_integer.error().contains("max-size"),
        "{}",
        not_integer.error()
    );
    api.send(
        api.authed(Method::PUT, "/plugins/buy-both/config")
            .json(&json!([1])),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert_eq!(
        max_size(&api.get("/plugins/buy-both").await.json()),
        7,
        "refusals changed nothing"
    );

    for (method, path) in [
        (Method::GET, "/plugins/nope"),
        (Method::POST, "/plugins/nope/enable"),
        (Method::POST, "/plugins/nope/disable"),
        (Method::DELETE, "/plugins/nope"),
    ] {
        let r = api
            .send(api.authed(method, path))
            .await
            .expect(StatusCode::NOT_FOUND);
        assert!(r.error().contains("nope"), "{path}: {}", r.error());
    }
    api.send(
        api.authed(Method::PUT, "/plugins/nope/config")
            .json(&json!({"max-size": 1})),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_names_are_refused_without_touching_files() {
    let api = TestApi::start().await;
    let outside = api.root.path().join("victim.wasm");
    std::fs::write(&outside, b"keep me").unwrap();
    for path in [
        "/plugins/..%2Fvictim",
        "/plugins/%2E%2E%2Fvictim",
        "/plugins/..%2F..%2Fetc",
    ] {
        for request in [
            api.anon(Method::GET, path),
            api.authed(Method::DELETE, path),
            api.authed(Method::PUT, path).body(b"\0asm".to_vec()),
            api.authed(Method::POST, &format!("{path}/disable")),
        ] {
            let r = api.send(request).await;
            assert!(
                matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
                "{path}: {} {}",
                r.status,
                r.body
            );
            r.error();
        }
    }
    let upper = api
        .get("/plugins/Buy-Both")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        upper.error().contains("bad plugin name"),
        "{}",
        upper.error()
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    let outside_files: Vec<_> = std::fs::read_dir(api.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside_files.len(),
        3,
        "only plugins/, store/ and victim.wasm: {outside_files:?}"
    );
    assert_eq!(api.host.strategy.reports().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_keeps_the_old_version_running() {
    let api = TestApi::start().await;
    let before = api.host.strategy.report("buy-both").unwrap();
    let refused = api
        .send(
            api.authed(Method::PUT, "/plugins/buy-both")
                .body(b"\0asm garbage".to_vec()),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!refused.error().is_empty());
    let after = api
        .get("/plugins/buy-both")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(after["sha256"], before.sha256.as_str());
    assert_eq!(after["mode"]["state"], "active");
    assert!(after["last_rejection"].is_string(), "{after}");
    assert_eq!(
        std::fs::read(api.plugins_dir().join("buy-both.wasm")).unwrap(),
        support::plugin_bytes("buy-both"),
        "the file on disk is untouched"
    );

    // Larger than the 1 MiB JSON limit but within the upload limit: refused
    // by validation, not by size.
    let big = api
        .send(
            api.authed(Method::PUT, "/plugins/big")
                .body(vec![0u8; 2 << 20]),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        big.error().contains("not a WebAssembly component"),
        "{}",
        big.error()
    );
    assert!(!api.plugins_dir().join("big.wasm").exists());
    api.get("/plugins/big").await.expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_plugin_is_used_by_the_next_evaluation() {
    let api = TestApi::start().await;
    let mut events = api.events().await;
    // Only the new plugin evaluates, so the opportunity on the bus is its own.
    api.send(api.authed(Method::POST, "/plugins/buy-both/disable"))
        .await
        .expect(StatusCode::OK);

    let walk_books = support::plugin_bytes("walk-books");
    let installed = api
        .send(
            api.authed(Method::PUT, "/plugins/walk-deep")
                .header("content-type", "application/wasm")
                .body(walk_books.clone()),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(installed["name"], "walk-deep");
    assert_eq!(installed["mode"]["state"], "active");
    // Saved whole under its name; no temp file left for the watcher to find.
    assert_eq!(
        std::fs::read(api.plugins_dir().join("walk-deep.wasm")).unwrap(),
        walk_books
    );
    let leftovers: Vec<_> = std::fs::read_dir(api.plugins_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    api.arbitrage_on_the_books();
    let found = events
        .until("opportunity", |o| o["found_by"] == "walk-deep")
        .await;
    assert_eq!(found["pair"], MARKET);
    assert_eq!(found["buy_yes_on"], "kalshi");
    assert_eq!(num(&found["yes_price"]), dec("0.40"));
    assert_eq!(num(&found["no_price"]), dec("0.55"));

    // The ring buffer has its own subscription: wait (bounded) for it to catch up.
    let recent = tokio::time::timeout(WAIT, async {
        loop {
            let recent = api
                .get("/opportunities")
                .await
                .expect(StatusCode::OK)
                .json();
            if recent.as_array().is_some_and(|r| !r.is_empty()) {
                return recent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the opportunity reaches /opportunities");
    assert_eq!(recent[0]["found_by"], "walk-deep");
    let report = api.get("/plugins/walk-deep").await.json();
    assert!(report["calls"].as_u64().unwrap() >= 1);
    assert!(report["opportunities"].as_u64().unwrap() >= 1);

    let removed = api
        .send(api.authed(Method::DELETE, "/plugins/walk-deep"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        removed,
        json!({"name": "walk-deep", "unloaded": true, "file_removed": true})
    );
    assert!(!api.plugins_dir().join("walk-deep.wasm").exists());
    api.get("/plugins/walk-deep")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_delivers_plugin_status_changes() {
    let api = TestApi::start().await;
    let mut events = api.events().await;
    api.send(api.authed(Method::POST, "/plugins/buy-both/disable"))
        .await
        .expect(StatusCode::OK);
    let changed = events.until("plugin", |p| p["plugin"] == "buy-both").await;
    assert_eq!(changed["status"]["state"], "disabled");
    assert!(changed["at"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_event_streams() {
    let mut api = TestApi::start().await;
    let mut events = api.events().await;
    api.stop.take().unwrap().send(()).unwrap();
    let ended = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("the stream ends on shutdown");
    assert!(ended.is_none());
    let served = tokio::time::timeout(WAIT, &mut api.server)
        .await
        .expect("the server stops");
    served.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_plugin_bus_and_book_series() {
    let api = TestApi::start().await;
    let mut events = api.events().await;
    api.arbitrage_on_the_books();
    events
        .until("opportunity", |o| o["found_by"] == "buy-both")
        .await;

    let r = api.get("/metrics").await.expect(StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.body;
    for series in [
        "doubletime_plugin_calls_total{plugin=\"buy-both\"} 1",
        "doubletime_plugin_opportunities_total{plugin=\"buy-both\"} ",
        "doubletime_plugin_faults_total{plugin=\"buy-both\"} 0",
        "doubletime_plugin_active{plugin=\"buy-both\"} 1",
        "doubletime_plugin_latency_seconds{plugin=\"buy-both\",quantile=\"0.99\"} ",
        "doubletime_plugin_latency_seconds_count{plugin=\"buy-both\"} 1",
        "doubletime_evaluations_total 1",
        "doubletime_tick_to_decision_seconds{quantile=\"0.5\"} ",
        "doubletime_bus_published_total{topic=\"books\"} 1",
        "doubletime_bus_coalesced_total{topic=\"opportunities\"} ",
        "doubletime_bus_dropped_total{topic=\"status\"} ",
        "doubletime_markets 1",
        "doubletime_book_age_seconds{market=\"fed\",venue=\"kalshi\"} ",
        "doubletime_book_age_seconds{market=\"fed\",venue=\"polymarket\"} ",
        "doubletime_book_stale{market=\"fed\",venue=\"kalshi\"} 0",
        "# TYPE doubletime_plugin_latency_seconds summary",
        "# TYPE doubletime_plugin_calls_total counter",
        "# TYPE doubletime_trades_total counter",
        "# TYPE doubletime_fills_total counter",
        "# TYPE doubletime_pnl_dollars gauge",
        "doubletime_pnl_dollars 0",
    ] {
        assert!(text.contains(series), "missing {series}\n{text}");
    }
    // Every sample line is `name{labels} value` with a number.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_are_listed_newest_first_with_the_total_pnl() {
    use doubletime::domain::{Opportunity, PairFees, PairId, Size, Venue};
    use doubletime::execution::{TradeOutcome, TradeRecord};
    let api = TestApi::start().await;
    let record = |id: &str, pnl: &str, outcome| TradeRecord {
        trade_id: id.into(),
        opportunity: Opportunity::price(
            PairId("fed".into()),
            "buy-both",
            Venue::Kalshi,
            support::p("0.40"),
            support::p("0.55"),
            Size::whole(10),
            &PairFees::default(),
            1,
        ),
        outcome,
        yes_fill: None,
        no_fill: None,
        unwind_fill: None,
        pnl: doubletime::domain::Usd::parse(pnl).unwrap(),
        at: 1,
    };
    let store = &api.host.trades;
    for (t, at) in [
        (record("dt-1", "0.40", TradeOutcome::Hedged), 1),
        (record("dt-2", "-0.25", TradeOutcome::Unwound), 2),
    ] {
        let intent = doubletime::store::TradeIntent {
            trade_id: t.trade_id.clone(),
            opportunity: t.opportunity.clone(),
            orders: vec![],
            created_at: at,
        };
        store.repo.begin_trade(&store.host, &intent).await.unwrap();
        let t = TradeRecord { at, ..t };
        store.repo.finish_trade(&store.host, &t).await.unwrap();
    }
    let list = api.get("/trades").await.expect(StatusCode::OK).json();
    assert_eq!(list["count"], 2);
    assert_eq!(dec(list["total_pnl"].as_str().unwrap()), dec("0.15"));
    assert_eq!(list["trades"][0]["trade_id"], "dt-2", "newest first");
    assert_eq!(list["trades"][0]["outcome"]["kind"], "unwound");
    let one = api.get("/trades/dt-1").await.expect(StatusCode::OK).json();
    assert_eq!(one["outcome"]["kind"], "hedged");
    api.get("/trades/dt-404")
        .await
        .expect(StatusCode::NOT_FOUND);
    // No fills recorded: nothing is held.
    let held = api.get("/positions").await.expect(StatusCode::OK).json();
    assert_eq!(held, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_endpoint() {
    let api = TestApi::start().await;
    let doc = api.get("/openapi.json").await.expect(StatusCode::OK).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/health", &["get"][..]),
        ("/status", &["get"]),
        ("/markets", &["get", "post"]),
        ("/markets/{id}", &["get", "delete"]),
        ("/plugins", &["get"]),
        ("/plugins/{name}", &["get", "put", "delete"]),
        ("/plugins/{name}/enable", &["post"]),
        ("/plugins/{name}/disable", &["post"]),
        ("/plugins/{name}/config", &["put"]),
        ("/opportunities", &["get"]),
        ("/events", &["get"]),
        ("/trading/pause", &["post"]),
        ("/trading/resume", &["post"]),
        ("/kill", &["post"]),
        ("/kill/reset", &["post"]),
        ("/risk", &["get", "put"]),
        ("/trades", &["get"]),
        ("/trades/{id}", &["get"]),
        ("/positions", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path} missing");
        }
    }
    assert_eq!(paths.len(), 21);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_in_json() {
    let api = TestApi::start().await;
    let r = api.get("/nowhere").await.expect(StatusCode::NOT_FOUND);
    assert!(r.error().contains("openapi.json"));
    let r = api
        .send(api.authed(Method::PATCH, "/health"))
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    r.error();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_in_no_response() {
    // `TestApi::send` checks every response; this walks every endpoint once,
    // successes and failures, with the right and a wrong token.
    let api = TestApi::start().await;
    api.arbitrage_on_the_books();
    for path in [
        "/health",
        "/status",
        "/markets",
        "/markets/fed",
        "/plugins",
        "/plugins/buy-both",
        "/opportunities",
        "/metrics",
        "/openapi.json",
    ] {
        api.get(path).await.expect(StatusCode::OK);
    }
    for token in [TOKEN, "wrong"] {
        for (method, path) in [
            (Method::POST, "/plugins/buy-both/disable"),
            (Method::POST, "/plugins/buy-both/enable"),
            (Method::DELETE, "/markets/none"),
            (Method::POST, "/markets"),
        ] {
            api.send(api.anon(method, path).bearer_auth(token)).await;
        }
    }
    api.send(
        api.authed(Method::PUT, "/plugins/buy-both/config")
            .json(&json!({"min-profit": 1})),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_and_uses_the_api() {
    let api = TestApi::start().await;
    let page = api.get("/").await.expect(StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    for wanted in [
        "<title>Double Time</title>",
        "new EventSource(\"/events\")",
        "get(\"/markets\")",
        "get(\"/plugins\")",
        "get(\"/trades\")",
        "post(\"/kill\")",
    ] {
        assert!(page.body.contains(wanted), "dashboard lacks {wanted}");
    }
    // Every endpoint the page reads answers with the fields it uses.
    let markets = api.get("/markets").await.expect(StatusCode::OK).json();
    let id = markets[0]["id"].as_str().unwrap().to_string();
    let detail = api
        .get(&format!("/markets/{id}"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert!(
        detail["kalshi"].get("best_yes_ask").is_some()
            && detail["directions"][0].get("gross_edge").is_some(),
        "{detail}"
    );
    let risk = api.get("/risk").await.expect(StatusCode::OK).json();
    assert!(risk["state"].get("kill_switch").is_some());
    let trades = api.get("/trades").await.expect(StatusCode::OK).json();
    assert!(trades.get("total_pnl").is_some() && trades["trades"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_delivers_trades_their_fills_and_failed_legs() {
    use doubletime::bus::TradeEvent;
    use doubletime::domain::events::{LegFailed, TradeExecuted};
    use doubletime::domain::{
        Action, Fill, Leg, LegStatus, Opportunity, Order, Outcome, PairFees, PairId, Size,
        TimeInForce, Trade, Usd, Venue,
    };
    let api = TestApi::start().await;
    let mut events = api.events().await;
    let order = |venue, outcome| Order {
        client_order_id: format!("dt-7-{outcome:?}"),
        venue,
        pair: PairId("fed".into()),
        outcome,
        action: Action::Buy,
        limit: support::p("0.50"),
        size: Size::whole(5),
        time_in_force: TimeInForce::FillOrKill,
    };
    let leg = |venue, outcome, price: &str| {
        let o: Order = order(venue, outcome);
        Leg {
            fills: vec![Fill {
                client_order_id: o.client_order_id.clone(),
                venue,
                outcome,
                action: Action::Buy,
                price: support::p(price),
                size: Size::whole(5),
                fee: Usd::parse("0.05").unwrap(),
                at: 3,
            }],
            order: o,
            status: LegStatus::Filled,
        }
    };
    let trade = Trade {
        id: "dt-7".into(),
        opportunity: Opportunity::price(
            PairId("fed".into()),
            "buy-both",
            Venue::Kalshi,
            support::p("0.40"),
            support::p("0.55"),
            Size::whole(5),
            &PairFees::default(),
            1,
        ),
        yes_leg: leg(Venue::Kalshi, Outcome::Yes, "0.40"),
        no_leg: leg(Venue::Polymarket, Outcome::No, "0.55"),
    };
    api.host
        .bus
        .trades
        .publish(TradeEvent::Executed(Box::new(TradeExecuted { trade })));
    api.host
        .bus
        .trades
        .publish(TradeEvent::LegFailed(LegFailed {
            trade_id: "dt-8".into(),
            order: order(Venue::Polymarket, Outcome::No),
            reason: "fill-or-kill not filled".into(),
        }));
    let t = events.until("trade", |t| t["id"] == "dt-7").await;
    assert_eq!(t["yes_leg"]["status"], "filled");
    let (n, yes) = events.next().await.unwrap();
    assert_eq!(
        (n.as_str(), &yes["venue"]),
        ("fill", &serde_json::json!("kalshi"))
    );
    let (n, no) = events.next().await.unwrap();
    assert_eq!(
        (n.as_str(), &no["venue"]),
        ("fill", &serde_json::json!("polymarket"))
    );
    assert_eq!(no["price"], "0.55");
    let failed = events
        .until("leg_failed", |f| f["trade_id"] == "dt-8")
        .await;
    assert!(failed["reason"].as_str().unwrap().contains("fill-or-kill"));
}

//! The risk gate and trading control over real HTTP: a host with no plugins and
//! two market pairs (`fed`, whose rules match, and `loose`, whose do not),
//! served on 127.0.0.1 with an ephemeral port. Opportunities are injected on the
//! bus as a plugin would publish them; the gate's decisions and the
//! `ExecuteTrade`s it sends are awaited, never slept for.

mod support;

use std::sync::Arc;

use doubletime::app::Host;
use doubletime::config::{ApiConfig, Config, Secret};
use doubletime::domain::PairId;
use doubletime::domain::events::ExecuteTrade;
use doubletime::risk::{Refusal, RiskDecision};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use support::WAIT;
use tokio::sync::{broadcast, oneshot};

const TOKEN: &str = "risk-test-token-8c2f41aa";

struct TestApi {
    base: String,
    host: Arc<Host>,
    http: reqwest::Client,
    _root: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

struct Reply {
    status: StatusCode,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
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
        let config = Config {
            plugins_dir: plugins,
            plugin_cache_dir: root.path().join("cache"),
            api: ApiConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                token: Secret::new(token.unwrap_or_default()),
            },
            markets: vec![
                support::market_config("fed", true),
                support::market_config("loose", false),
            ],
            database_url: Secret::new(format!(
                "sqlite://{}",
                root.path().join("trades.db").display()
            )),
            ..Config::default()
        };
        let served = support::serve_host(config).await;
        TestApi {
            base: served.base,
            host: served.host,
            http: served.http,
            _root: root,
            _stop: served.stop,
        }
    }

    fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn authed(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(TOKEN)
    }

    /// Sends, reads the whole reply, and checks the token is not in the body.
    async fn send(&self, request: RequestBuilder) -> Reply {
        let resp = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("the API answers in time")
            .expect("the request reaches the API");
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(!body.contains(TOKEN), "the token leaked in a body: {body}");
        Reply { status, body }
    }

    async fn post(&self, path: &str) -> Reply {
        self.send(self.authed(Method::POST, path)).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.anon(Method::GET, path)).await
    }

    async fn put_limits(&self, limits: &Value) -> Reply {
        self.send(self.authed(Method::PUT, "/risk").json(limits))
            .await
    }

    /// Fresh arbitrage books on `market`, then its opportunity on the bus, as a
    /// plugin would publish it.
    fn opportunity_on(&self, market: &str) {
        let id = PairId(market.into());
        let entry = self.host.books.get(&id).expect("a configured market");
        support::arb_books(&entry);
        self.host
            .bus
            .opportunities
            .publish(id, support::arb_opportunity(&entry));
    }
}

/// The gate's next decision.
async fn decision(rx: &mut broadcast::Receiver<RiskDecision>) -> RiskDecision {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the gate decides in time")
        .expect("the gate is running")
}

async fn refused(rx: &mut broadcast::Receiver<RiskDecision>) -> Refusal {
    match decision(rx).await {
        RiskDecision::Refused(r) => r.refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn execution(rx: &mut doubletime::bus::LosslessReceiver<ExecuteTrade>) -> ExecuteTrade {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an ExecuteTrade in time")
        .expect("the executions topic is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_trading_refuses_and_resumed_trading_sends_execute_trade() {
    let api = TestApi::start().await;
    let mut executions = api.host.bus.executions.subscribe();
    let mut decisions = api.host.risk.decisions();

    let r = api
        .post("/trading/pause")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(r["paused"], true);
    assert_eq!(r["pause_cause"]["by"], "operator");
    assert_eq!(r["kill_switch"], false);
    api.opportunity_on("fed");
    assert_eq!(refused(&mut decisions).await, Refusal::Paused);
    assert!(
        executions.try_recv().is_none(),
        "a refused opportunity sends nothing (decided after publishing)"
    );
    let risk = api.get("/risk").await.expect(StatusCode::OK).json();
    assert_eq!(risk["refusals"]["paused"], 1);
    assert_eq!(risk["recent_refusals"][0]["reason"], "paused");
    assert_eq!(risk["recent_refusals"][0]["market"], "fed");
    assert_eq!(risk["recent_refusals"][0]["found_by"], "test");

    let r = api
        .post("/trading/resume")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(r["paused"], false);
    api.opportunity_on("fed");
    let sent = execution(&mut executions).await;
    assert_eq!(sent.opportunity.pair, PairId("fed".into()));
    assert_eq!(sent.opportunity.net_edge.value().to_string(), "2.33");
    assert!(!sent.trade_id.is_empty());
    let risk = api.get("/risk").await.expect(StatusCode::OK).json();
    assert_eq!(risk["approved"], 1);
    assert_eq!(risk["state"]["in_flight"]["fed"]["trade_id"], sent.trade_id);
    assert_eq!(risk["total_exposure"], "97.67");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_refuses_and_blocks_resume_until_reset() {
    let api = TestApi::start().await;
    let mut executions = api.host.bus.executions.subscribe();
    let mut decisions = api.host.risk.decisions();

    let r = api.post("/kill").await.expect(StatusCode::OK).json();
    assert_eq!(r["kill_switch"], true);
    assert_eq!(r["paused"], true);
    assert_eq!(r["pause_cause"]["by"], "kill_switch");
    api.opportunity_on("fed");
    assert_eq!(refused(&mut decisions).await, Refusal::KillSwitch);
    assert!(executions.try_recv().is_none());

    let r = api
        .post("/trading/resume")
        .await
        .expect(StatusCode::CONFLICT);
    assert!(r.error().contains("/kill/reset"), "{}", r.error());
    api.post("/trading/pause").await.expect(StatusCode::OK);
    api.post("/trading/resume")
        .await
        .expect(StatusCode::CONFLICT);

    let r = api.post("/kill/reset").await.expect(StatusCode::OK).json();
    assert_eq!(r["kill_switch"], false);
    assert_eq!(r["paused"], true, "a reset does not resume by itself");
    api.opportunity_on("fed");
    assert_eq!(refused(&mut decisions).await, Refusal::Paused);

    api.post("/trading/resume").await.expect(StatusCode::OK);
    api.opportunity_on("fed");
    assert_eq!(
        execution(&mut executions).await.opportunity.pair.as_str(),
        "fed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_whose_rules_do_not_match_is_refused() {
    let api = TestApi::start().await;
    let mut executions = api.host.bus.executions.subscribe();
    let mut decisions = api.host.risk.decisions();
    api.opportunity_on("loose");
    assert_eq!(refused(&mut decisions).await, Refusal::RulesNotMatched);
    assert!(executions.try_recv().is_none());
    let risk = api.get("/risk").await.expect(StatusCode::OK).json();
    assert_eq!(risk["refusals"]["rules_not_matched"], 1);
    assert_eq!(risk["recent_refusals"][0]["market"], "loose");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_trade_frees_the_market_for_the_next_one() {
    let api = TestApi::start().await;
    let mut executions = api.host.bus.executions.subscribe();
    let mut decisions = api.host.risk.decisions();
    api.opportunity_on("fed");
    let first = execution(&mut executions).await;
    decision(&mut decisions).await;
    api.opportunity_on("fed");
    assert_eq!(refused(&mut decisions).await, Refusal::TradeInFlight);

    api.host.risk.trade_finished(
        &PairId("fed".into()),
        doubletime::domain::Usd::parse("2.33").unwrap(),
        false,
    );
    api.opportunity_on("fed");
    let second = execution(&mut executions).await;
    assert!(second.trade_id > first.trade_id, "ids are time-ordered");
    let risk = api.get("/risk").await.expect(StatusCode::OK).json();
    assert_eq!(risk["state"]["realised_pnl_today"], "2.33");
    assert_eq!(risk["state"]["exposure"]["fed"], "97.67");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_limits_are_replaced_and_nonsense_is_refused() {
    let api = TestApi::start().await;
    let risk = api.get("/risk").await.expect(StatusCode::OK).json();
    let defaults = risk["limits"].clone();
    assert_eq!(defaults["min_profit_per_contract"], "0.01");
    assert_eq!(defaults["max_book_age_ms"], 5000);
    assert_eq!(risk["dry_run"], true);

    let mut strict = defaults.clone();
    strict["min_profit_per_trade"] = json!("5");
    let r = api.put_limits(&strict).await.expect(StatusCode::OK).json();
    assert_eq!(r["min_profit_per_trade"], "5");
    assert_eq!(
        api.get("/risk").await.json()["limits"]["min_profit_per_trade"],
        "5"
    );
    let mut decisions = api.host.risk.decisions();
    api.opportunity_on("fed");
    assert_eq!(
        refused(&mut decisions).await,
        Refusal::BelowMinProfitPerTrade,
        "the new limit applies to the next opportunity ($2.33 < $5)"
    );

    for (field, value, mentions) in [
        ("daily_loss_limit", json!("-5"), "daily_loss_limit"),
        (
            "max_contracts_per_trade",
            json!("-1"),
            "max_contracts_per_trade",
        ),
        (
            "max_contracts_per_trade",
            json!("0"),
            "max_contracts_per_trade",
        ),
        ("max_book_age_ms", json!(-1), "max_book_age_ms"),
        ("max_book_age_ms", json!(0), "max_book_age_ms"),
        ("shutdown_balance", json!("1000000"), "minimum_balance"),
        ("max_total_exposure", json!("lots"), "max_total_exposure"),
    ] {
        let mut bad = strict.clone();
        bad[field] = value.clone();
        let r = api
            .put_limits(&bad)
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.error().contains(mentions),
            "{field} = {value}: {}",
            r.error()
        );
    }
    let mut missing = strict.clone();
    missing.as_object_mut().unwrap().remove("daily_loss_limit");
    let r = api
        .put_limits(&missing)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.error().contains("daily_loss_limit: missing"),
        "{}",
        r.error()
    );
    let mut unknown = strict.clone();
    unknown["max_leverage"] = json!("3");
    let r = api
        .put_limits(&unknown)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("max_leverage"), "{}", r.error());
    api.send(api.authed(Method::PUT, "/risk").body("{not json"))
        .await
        .expect(StatusCode::BAD_REQUEST);

    assert_eq!(
        api.get("/risk").await.json()["limits"],
        normalised(&strict),
        "refused changes leave the limits as they were"
    );
}

/// `strict` as the API writes it back (decimals normalised).
fn normalised(limits: &Value) -> Value {
    let parsed: doubletime::risk::RiskLimits = serde_json::from_value(limits.clone()).unwrap();
    serde_json::to_value(parsed).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trading_control_needs_the_bearer_token() {
    let api = TestApi::start().await;
    let limits = api.get("/risk").await.expect(StatusCode::OK).json()["limits"].clone();
    for (method, path) in [
        (Method::POST, "/trading/pause"),
        (Method::POST, "/trading/resume"),
        (Method::POST, "/kill"),
        (Method::POST, "/kill/reset"),
        (Method::PUT, "/risk"),
    ] {
        for request in [
            api.anon(method.clone(), path),
            api.anon(method.clone(), path).bearer_auth("wrong"),
        ] {
            api.send(request.json(&limits))
                .await
                .expect(StatusCode::UNAUTHORIZED);
        }
    }
    let state = api.host.risk.state();
    assert!(
        state.paused.is_none() && !state.kill_switch,
        "refused requests changed nothing"
    );

    let read_only = TestApi::start_with(None).await;
    read_only
        .send(read_only.anon(Method::POST, "/kill").bearer_auth(TOKEN))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    read_only.get("/risk").await.expect(StatusCode::OK);
    assert!(!read_only.host.risk.state().kill_switch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_refusals_by_reason_and_show_the_trading_state() {
    let api = TestApi::start().await;
    let mut decisions = api.host.risk.decisions();
    api.post("/trading/pause").await.expect(StatusCode::OK);
    api.opportunity_on("fed");
    assert_eq!(refused(&mut decisions).await, Refusal::Paused);

    let text = api.get("/metrics").await.expect(StatusCode::OK).body;
    for series in [
        "# TYPE doubletime_risk_refusals_total counter",
        "doubletime_risk_refusals_total{reason=\"paused\"} 1",
        "doubletime_risk_refusals_total{reason=\"kill_switch\"} 0",
        "doubletime_risk_refusals_total{reason=\"insufficient_cash\"} 0",
        "doubletime_risk_approved_total 0",
        "doubletime_trading_paused 1",
        "doubletime_kill_switch 0",
        "doubletime_trades_in_flight 0",
        "doubletime_exposure_dollars 0",
        "doubletime_realised_pnl_today_dollars 0",
    ] {
        assert!(text.contains(series), "missing {series}\n{text}");
    }
    api.post("/kill").await.expect(StatusCode::OK);
    let text = api.get("/metrics").await.body;
    assert!(text.contains("doubletime_kill_switch 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_trading_endpoints() {
    let api = TestApi::start().await;
    let doc = api.get("/openapi.json").await.expect(StatusCode::OK).json();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/trading/pause", "post"),
        ("/trading/resume", "post"),
        ("/kill", "post"),
        ("/kill/reset", "post"),
        ("/risk", "get"),
        ("/risk", "put"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
}

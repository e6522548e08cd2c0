//! The Kalshi REST client (PROTOCOLS.md §1.2, §1.5–§1.7): one pooled HTTP
//! client, every request signed (`timestamp + METHOD + /trade-api/v2/...`, no
//! query, body unsigned), answers classified into [`KalshiError`].
//!
//! Retries (§1.7: token buckets, 429 with no `Retry-After`): reads and cancels
//! retry 429, 5xx and transport failures with bounded exponential backoff.
//! Order creation retries only when the answer proves the order was *not*
//! accepted: a 429 (the rate limiter refuses before the order reaches the
//! book) or a connection that never opened. A 5xx, a timeout or a dropped
//! connection after sending leaves the order's state unknown — it may have
//! filled — so it is returned to the caller, who reconciles with
//! [`KalshiRest::fills`] rather than risk buying the leg twice. The retried
//! body carries the same `client_order_id`, so even a misjudged retry would be
//! refused as a duplicate (409) rather than executed twice.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::auth::KalshiSigner;
use super::errors::KalshiError;
use super::messages::{
    BalanceResponse, Market, MarketResponse, OrderbookResponse, Series, SeriesFeeChange,
    SeriesFeeChangesResponse, SeriesResponse, WireOrder,
};
use super::orders::{
    AUTO_ROUTE, KalshiOrderResult, create_order_request, parse_create_order_response,
};
use crate::domain::{Action, Order, Outcome, Price, Size, Usd};
use crate::venues::http::{self, Retry, RetryPolicy, Sent};
use crate::venues::order_line::OrderLine;

/// One market position (`GET /portfolio/positions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KalshiPosition {
    pub ticker: String,
    /// Contracts: positive = YES, negative = NO (`position_fp`).
    pub position: Decimal,
    pub fees_paid: Usd,
    pub total_traded: Usd,
}

/// One fill (`GET /portfolio/fills`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KalshiFill {
    pub fill_id: String,
    pub order_id: String,
    pub ticker: String,
    pub outcome: Outcome,
    pub action: Action,
    pub count: Size,
    pub yes_price: Price,
    /// `fee_cost`: the fee charged for this fill.
    pub fee: Usd,
    pub is_taker: bool,
}

/// The V2 create-order endpoint (below the base path).
const ORDER_PATH: &str = "/portfolio/events/orders";
const BALANCE_PATH: &str = "/portfolio/balance";
/// Balance reads come once a second from the executor's refresh, and now
/// and then from a trade's pre-check.
const BALANCE_READS_KEPT: usize = 2;

/// A cancel's answer; `reduced_by` is parsed defensively (§1.6 names two forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KalshiCancel {
    pub order_id: String,
    pub reduced_by: Option<Size>,
}

/// One order's answer in a batch cancel: `error` when it was not cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCancelled {
    pub order_id: String,
    pub error: Option<String>,
}

/// Filters of `GET /portfolio/orders`; `None`s are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderQuery {
    pub ticker: Option<String>,
    /// `resting`, `canceled` or `executed`.
    pub status: Option<String>,
    /// Unix seconds.
    pub min_ts: Option<u64>,
    pub max_ts: Option<u64>,
}

impl OrderQuery {
    fn query(&self, cursor: &str) -> String {
        let mut parts = vec!["limit=1000".to_string()];
        for (k, v) in [
            ("ticker", self.ticker.clone()),
            ("status", self.status.clone()),
            ("min_ts", self.min_ts.map(|x| x.to_string())),
            ("max_ts", self.max_ts.map(|x| x.to_string())),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={}", http::segment(&v)));
            }
        }
        if !cursor.is_empty() {
            parts.push(format!("cursor={}", http::segment(cursor)));
        }
        format!("?{}", parts.join("&"))
    }
}

pub struct KalshiRest {
    http: reqwest::Client,
    /// Order placement's own connections, written from the order's task.
    orders: OrderLine,
    base: String,
    /// The base URL's path (`/trade-api/v2`), part of every signed path.
    prefix: String,
    signer: Option<Arc<KalshiSigner>>,
    /// Signatures made ahead of time for the order and balance endpoints
    /// ([`KalshiRest::with_presigned_orders`]).
    presigned: Vec<Arc<super::presign::Presigner>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for KalshiRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KalshiRest")
            .field("base", &self.base)
            .field("signed", &self.signer.is_some())
            .finish()
    }
}

fn unreadable(status: u16, e: impl std::fmt::Display) -> KalshiError {
    KalshiError::UnreadableResponse {
        status,
        detail: e.to_string(),
    }
}

fn decimal(v: &Value, key: &str) -> Option<Decimal> {
    v.get(key)?.as_str()?.trim().parse().ok()
}

impl KalshiRest {
    /// `base_url` includes `/trade-api/v2` (e.g. the simulator's
    /// `kalshi_rest_url`). Without a signer only public endpoints work.
    pub fn new(
        base_url: impl AsRef<str>,
        signer: Option<Arc<KalshiSigner>>,
    ) -> Result<Self, KalshiError> {
        let invalid = |message| KalshiError::InvalidRequest { message };
        let (base, prefix) = http::split_base(base_url.as_ref()).map_err(invalid)?;
        Ok(KalshiRest {
            http: http::client().map_err(invalid)?,
            orders: OrderLine::new(&base).map_err(invalid)?,
            base,
            prefix,
            signer,
            presigned: Vec::new(),
            retry: RetryPolicy::default(),
        })
    }

    /// Keeps `keep` signatures of the order endpoint ready, each used once and
    /// at most `max_age` old, so placing an order does not sign on its path
    /// (the body is not signed, §1.2), and a few of the balance endpoint's.
    /// Needs a signer; the signing runs on low-priority threads of its own.
    pub fn with_presigned_orders(mut self, keep: usize, max_age: Duration) -> Self {
        if let Some(signer) = &self.signer
            && !max_age.is_zero()
        {
            let start = |method, path, keep| {
                let signed_path = format!("{}{path}", self.prefix);
                super::presign::Presigner::start(signer.clone(), method, signed_path, keep, max_age)
            };
            self.presigned = vec![
                start("POST", ORDER_PATH, keep),
                // The executor reads balances every second, on a runtime
                // worker: signed there, each read held it (and any order or
                // book message behind it) for 2.5 ms.
                start("GET", BALANCE_PATH, BALANCE_READS_KEPT),
            ];
        }
        self
    }

    /// Order signatures ready now (0 without presigning).
    pub fn presigned_ready(&self) -> usize {
        self.order_presigner().map_or(0, |p| p.ready())
    }

    /// Orders that found no presigned signature ready and signed inline
    /// (about 2.5 ms on the order's path); 0 without presigning.
    pub fn orders_signed_inline(&self) -> u64 {
        self.order_presigner().map_or(0, |p| p.misses())
    }

    /// Balance-read signatures ready now (0 without presigning).
    pub fn balance_reads_ready(&self) -> usize {
        self.presigner("GET", BALANCE_PATH).map_or(0, |p| p.ready())
    }

    /// Returns once every presigner holds all the signatures it keeps.
    pub async fn presigned_filled(&self) {
        for p in &self.presigned {
            p.filled().await;
        }
    }

    /// Balance reads that found no presigned signature ready and signed inline.
    pub fn balance_reads_signed_inline(&self) -> u64 {
        self.presigner("GET", BALANCE_PATH)
            .map_or(0, |p| p.misses())
    }

    fn order_presigner(&self) -> Option<&super::presign::Presigner> {
        self.presigner("POST", ORDER_PATH)
    }

    fn presigner(&self, method: &str, path: &str) -> Option<&super::presign::Presigner> {
        self.presigned
            .iter()
            .find(|p| p.method == method && p.path.strip_prefix(&self.prefix) == Some(path))
            .map(|p| &**p)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `GET /markets/{ticker}`.
    pub async fn market(&self, ticker: &str) -> Result<Market, KalshiError> {
        let path = format!("/markets/{}", http::segment(ticker));
        let (status, body) = self.get(&path, "").await?;
        serde_json::from_str::<MarketResponse>(&body)
            .map(|m| m.market)
            .map_err(|e| unreadable(status, e))
    }

    /// `GET /markets/{ticker}/orderbook` (bids only, NO in NO prices, §1.5).
    pub async fn orderbook(&self, ticker: &str) -> Result<OrderbookResponse, KalshiError> {
        let path = format!("/markets/{}/orderbook", http::segment(ticker));
        let (status, body) = self.get(&path, "").await?;
        serde_json::from_str(&body).map_err(|e| unreadable(status, e))
    }

    /// Cash available (`GET /portfolio/balance`).
    pub async fn balance(&self) -> Result<Usd, KalshiError> {
        self.balance_on(None).await
    }

    /// Cash on one exchange shard (`?exchange_index=`): since the 2026-08-24
    /// sharding, collateral is allocated per shard (§0, §1.9). `None` is the
    /// account's default view.
    pub async fn balance_on(&self, exchange_index: Option<i32>) -> Result<Usd, KalshiError> {
        let query = exchange_index.map_or(String::new(), |i| format!("?exchange_index={i}"));
        let (status, body) = self.get(BALANCE_PATH, &query).await?;
        serde_json::from_str::<BalanceResponse>(&body)
            .map_err(|e| unreadable(status, e))?
            .available()
            .ok_or_else(|| unreadable(status, "no balance field"))
    }

    /// Open market positions (`GET /portfolio/positions`, first page of 1000).
    pub async fn positions(&self) -> Result<Vec<KalshiPosition>, KalshiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            market_positions: Vec<Value>,
        }
        let (status, body) = self
            .get("/portfolio/positions", "?count_filter=position&limit=1000")
            .await?;
        let page: Page = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        page.market_positions
            .iter()
            .map(|p| {
                let usd = |k: &str| decimal(p, k).map(Usd::new).unwrap_or(Usd::ZERO);
                Ok(KalshiPosition {
                    ticker: p
                        .get("ticker")
                        .and_then(Value::as_str)
                        .ok_or_else(|| unreadable(status, "position without ticker"))?
                        .to_string(),
                    position: decimal(p, "position_fp")
                        .ok_or_else(|| unreadable(status, "position without position_fp"))?,
                    fees_paid: usd("fees_paid_dollars"),
                    total_traded: usd("total_traded_dollars"),
                })
            })
            .collect()
    }

    /// The fills of one order (`GET /portfolio/fills?order_id=`): how an order
    /// whose answer was lost is reconciled.
    pub async fn fills(&self, order_id: &str) -> Result<Vec<KalshiFill>, KalshiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            fills: Vec<Value>,
        }
        let query = format!("?order_id={}", http::segment(order_id));
        let (status, body) = self.get("/portfolio/fills", &query).await?;
        let page: Page = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        page.fills
            .iter()
            .map(|f| parse_fill(f).ok_or_else(|| unreadable(status, "fill missing fields")))
            .collect()
    }

    /// A series' fee type and multiplier (`GET /series/{series_ticker}`, §1.5);
    /// [`SeriesFeeType::fees`](super::messages::SeriesFeeType::fees) gives the domain model.
    pub async fn series(&self, series_ticker: &str) -> Result<Series, KalshiError> {
        let path = format!("/series/{}", http::segment(series_ticker));
        let (status, body) = self.get(&path, "").await?;
        serde_json::from_str::<SeriesResponse>(&body)
            .map(|s| s.series)
            .map_err(|e| unreadable(status, e))
    }

    /// Scheduled series fee changes (`GET /series/fee_changes`, §1.8), for one
    /// series or all; `show_historical` includes those already in effect.
    pub async fn series_fee_changes(
        &self,
        series_ticker: Option<&str>,
        show_historical: bool,
    ) -> Result<Vec<SeriesFeeChange>, KalshiError> {
        let mut query = format!("?show_historical={show_historical}");
        if let Some(t) = series_ticker {
            query.push_str(&format!("&series_ticker={}", http::segment(t)));
        }
        let (status, body) = self.get("/series/fee_changes", &query).await?;
        serde_json::from_str::<SeriesFeeChangesResponse>(&body)
            .map(|r| r.series_fee_change_arr)
            .map_err(|e| unreadable(status, e))
    }

    /// Our orders (`GET /portfolio/orders`, every page). Terminal orders older
    /// than the historical cutoff (~3 months, §1.9) are not listed here.
    pub async fn orders(&self, q: &OrderQuery) -> Result<Vec<WireOrder>, KalshiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            orders: Vec<WireOrder>,
            #[serde(default)]
            cursor: Option<String>,
        }
        http::all_pages(&[], |cursor| async move {
            let (status, body) = self.get("/portfolio/orders", &q.query(&cursor)).await?;
            let page: Page = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
            Ok((page.orders, page.cursor))
        })
        .await
    }

    /// One order (`GET /portfolio/orders/{order_id}`); `None` on 404.
    pub async fn order(&self, order_id: &str) -> Result<Option<WireOrder>, KalshiError> {
        #[derive(Deserialize)]
        struct One {
            order: WireOrder,
        }
        let path = format!("/portfolio/orders/{}", http::segment(order_id));
        match self.get(&path, "").await {
            Ok((status, body)) => serde_json::from_str::<One>(&body)
                .map(|o| Some(o.order))
                .map_err(|e| unreadable(status, e)),
            Err(KalshiError::Other { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The order we sent with `client_order_id` (crash reconciliation: the
    /// id is ours, the venue's order id may never have reached us). Narrow
    /// with `q` (ticker, time window) to keep the listing short.
    pub async fn order_by_client_order_id(
        &self,
        client_order_id: &str,
        q: &OrderQuery,
    ) -> Result<Option<WireOrder>, KalshiError> {
        Ok(self
            .orders(q)
            .await?
            .into_iter()
            .find(|o| o.client_order_id.as_deref() == Some(client_order_id)))
    }

    /// Places `order` on `ticker` (V2, auto-routed to the market's shard) and
    /// reads the answer; a refused FOK is [`KalshiError::FillOrKillNotFillable`].
    pub async fn create_order(
        &self,
        order: &Order,
        ticker: &str,
    ) -> Result<KalshiOrderResult, KalshiError> {
        self.create_order_on(order, ticker, Some(AUTO_ROUTE)).await
    }

    /// As [`create_order`](Self::create_order) with an explicit shard (§1.9:
    /// naming it skips the auto-routing hop).
    pub async fn create_order_on(
        &self,
        order: &Order,
        ticker: &str,
        exchange_index: Option<i32>,
    ) -> Result<KalshiOrderResult, KalshiError> {
        let req = create_order_request(order, ticker, exchange_index).map_err(|e| {
            KalshiError::InvalidRequest {
                message: e.to_string(),
            }
        })?;
        let body = serde_json::to_string(&req).map_err(|e| KalshiError::InvalidRequest {
            message: e.to_string(),
        })?;
        let (status, retry_after, text) = self
            .send(Method::POST, ORDER_PATH, "", Some(body), Retry::NotAccepted)
            .await?;
        parse_create_order_response(order, status, retry_after.as_deref(), &text)
    }

    /// `DELETE /portfolio/events/orders/{order_id}`.
    pub async fn cancel(&self, order_id: &str) -> Result<KalshiCancel, KalshiError> {
        let path = format!("/portfolio/events/orders/{}", http::segment(order_id));
        let (status, _, body) = self
            .send(Method::DELETE, &path, "", None, Retry::Idempotent)
            .await?;
        if !(200..300).contains(&status) {
            return Err(KalshiError::from_http(status, None, &body));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        let count = |k: &str| decimal(&v, k).and_then(|d| Size::new(d).ok());
        let reduced_by = count("reduced_by")
            .or_else(|| count("reduced_by_fp"))
            .or_else(|| {
                v.get("reduced_by_centicount")
                    .and_then(Value::as_u64)
                    .map(Size::from_hundredths)
            });
        Ok(KalshiCancel {
            order_id: v
                .get("order_id")
                .and_then(Value::as_str)
                .unwrap_or(order_id)
                .to_string(),
            reduced_by,
        })
    }

    /// Every order of ours resting on the book (`GET /portfolio/orders?status=resting`).
    pub async fn resting_orders(&self) -> Result<Vec<WireOrder>, KalshiError> {
        let q = OrderQuery {
            status: Some("resting".into()),
            ..Default::default()
        };
        self.orders(&q).await
    }

    /// Cancels `order_ids` in one request (`DELETE /portfolio/events/orders/batched`,
    /// billed per item, §1.5/§1.7); the answer per order. §1.5 names the
    /// endpoint but not its body: this sends the documented batch-cancel body
    /// `{"orders": [{"order_id": ...}]}` (the older `ids` form is deprecated)
    /// and reads the per-order results under `orders` defensively.
    pub async fn cancel_batch(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<BatchCancelled>, KalshiError> {
        let orders: Vec<Value> = order_ids
            .iter()
            .map(|id| serde_json::json!({ "order_id": id }))
            .collect();
        let body = serde_json::json!({ "orders": orders }).to_string();
        let (status, _, text) = self
            .send(
                Method::DELETE,
                "/portfolio/events/orders/batched",
                "",
                Some(body),
                Retry::Idempotent,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(KalshiError::from_http(status, None, &text));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| unreadable(status, e))?;
        let items = v
            .get("orders")
            .and_then(Value::as_array)
            .ok_or_else(|| unreadable(status, "no orders in the batch-cancel answer"))?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let order_id = item.get("order_id").and_then(Value::as_str)?.to_string();
                let error = item.get("error").filter(|e| !e.is_null()).map(|e| {
                    e.get("message")
                        .or_else(|| e.get("code"))
                        .and_then(Value::as_str)
                        .unwrap_or("refused")
                        .to_string()
                });
                Some(BatchCancelled { order_id, error })
            })
            .collect())
    }

    async fn get(&self, path: &str, query: &str) -> Result<(u16, String), KalshiError> {
        let (status, retry_after, body) = self
            .send(Method::GET, path, query, None, Retry::Idempotent)
            .await?;
        if (200..300).contains(&status) {
            Ok((status, body))
        } else {
            Err(KalshiError::from_http(
                status,
                retry_after.as_deref(),
                &body,
            ))
        }
    }

    /// Sends one request, signing each attempt afresh (the timestamp must be
    /// current, §1.2), and retries per `retry`. Returns the final answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<String>,
        retry: Retry,
    ) -> Result<(u16, Option<String>, String), KalshiError> {
        let signed_path = format!("{}{path}", self.prefix);
        let url = format!("{}{path}{query}", self.base);
        let target = format!("{signed_path}{query}");
        let placing = method == Method::POST && path == ORDER_PATH;
        let call = http::Call {
            via: http::Via::choose(placing, &self.http, &self.orders),
            method: &method,
            url: &url,
            target: &target,
            body: body.as_deref(),
        };
        let sent = http::send_with_retries(
            "kalshi",
            &self.retry,
            retry,
            call,
            // Kalshi's 429 rarely says how long; when it does, in seconds.
            |status, retry_after| (status == 429).then(|| retry_after.and_then(secs)),
            || {
                // A ready-made signature, if any; else sign now.
                let presigned = self.presigner(method.as_str(), path).and_then(|p| p.take());
                let headers = match (presigned, &self.signer) {
                    (Some(h), _) => Some(h),
                    (None, Some(signer)) => Some(
                        signer
                            .sign(http::now_ms(), method.as_str(), &signed_path)
                            .map_err(|e| KalshiError::InvalidRequest {
                                message: e.to_string(),
                            })?,
                    ),
                    (None, None) => None,
                };
                Ok(headers
                    .iter()
                    .flat_map(|h| h.pairs())
                    .map(|(name, value)| (name, value.to_string()))
                    .collect())
            },
        )
        .await?;
        match sent {
            Sent::Answer {
                status,
                retry_after,
                body,
            } => Ok((status, retry_after, body)),
            Sent::Unreadable { status, detail } => {
                Err(KalshiError::UnreadableResponse { status, detail })
            }
            Sent::Failed { message, sent } => Err(KalshiError::Transport { message, sent }),
        }
    }
}

fn secs(s: &str) -> Option<Duration> {
    s.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn parse_fill(f: &Value) -> Option<KalshiFill> {
    let text = |k: &str| f.get(k).and_then(Value::as_str);
    let outcome = match text("side").or(text("outcome_side"))? {
        "yes" => Outcome::Yes,
        "no" => Outcome::No,
        _ => return None,
    };
    let action = match text("action")? {
        "buy" => Action::Buy,
        "sell" => Action::Sell,
        _ => return None,
    };
    Some(KalshiFill {
        fill_id: text("fill_id")?.to_string(),
        order_id: text("order_id")?.to_string(),
        ticker: text("ticker")?.to_string(),
        outcome,
        action,
        count: Size::parse(text("count_fp")?).ok()?,
        yes_price: Price::parse(text("yes_price_dollars")?).ok()?,
        // `fee_cost` is a dollar string; absent means no fee was reported.
        fee: decimal(f, "fee_cost").map(Usd::new).unwrap_or(Usd::ZERO),
        is_taker: f.get("is_taker").and_then(Value::as_bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each request takes from the presigner of its own method and path:
    /// orders from `POST …/orders`, balance reads from `GET …/balance`, and
    /// nothing else from either.
    #[test]
    fn requests_find_the_presigner_of_their_method_and_path() {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let signer = KalshiSigner::from_pem("key-id", &pem, std::path::Path::new("t")).unwrap();
        let rest = KalshiRest::new("http://127.0.0.1:9/trade-api/v2", Some(Arc::new(signer)))
            .unwrap()
            .with_presigned_orders(2, Duration::from_secs(30));
        let found = |method, path| {
            rest.presigner(method, path)
                .map(|p| (p.method, p.path.clone()))
        };
        assert_eq!(
            found("POST", ORDER_PATH),
            Some(("POST", format!("/trade-api/v2{ORDER_PATH}")))
        );
        assert_eq!(
            found("GET", BALANCE_PATH),
            Some(("GET", format!("/trade-api/v2{BALANCE_PATH}")))
        );
        assert_eq!(found("GET", ORDER_PATH), None);
        assert_eq!(found("POST", BALANCE_PATH), None);
        assert_eq!(found("GET", "/portfolio/positions"), None);
        let unsigned = KalshiRest::new("http://127.0.0.1:9/trade-api/v2", None)
            .unwrap()
            .with_presigned_orders(2, Duration::from_secs(30));
        assert!(
            unsigned.presigner("POST", ORDER_PATH).is_none(),
            "nothing to sign with"
        );
    }

    #[test]
    fn fills_are_read_from_the_documented_fields() {
        let f: Value = serde_json::from_str(
            r#"{"fill_id":"f","trade_id":"t","order_id":"o","ticker":"KX","side":"no","action":"buy",
                "outcome_side":"no","book_side":"ask","count_fp":"10.00","yes_price_dollars":"0.5600",
                "no_price_dollars":"0.4400","is_taker":true,"fee_cost":"0.1800","ts":1}"#,
        )
        .unwrap();
        let f = parse_fill(&f).unwrap();
        assert_eq!(f.outcome, Outcome::No);
        assert_eq!(f.yes_price, Price::parse("0.56").unwrap());
        assert_eq!(f.fee, Usd::parse("0.18").unwrap());
        assert!(parse_fill(&serde_json::json!({"fill_id": "x"})).is_none());
    }

    #[test]
    fn fee_changes_read_both_documented_spellings() {
        use crate::venues::kalshi::messages::{SeriesFeeChangesResponse, SeriesFeeType};
        // The API reference's example (PascalCase, a numeric multiplier) and
        // the SDK model's snake_case.
        let pascal: SeriesFeeChangesResponse = serde_json::from_str(
            r#"{"series_fee_change_arr":[{"FeeMultiplier":123,"FeeType":"quadratic","ID":"a",
                "ScheduledTs":"2023-11-07T05:31:56Z","SeriesTicker":"KXINX"}]}"#,
        )
        .unwrap();
        let snake: SeriesFeeChangesResponse = serde_json::from_str(
            r#"{"series_fee_change_arr":[{"fee_multiplier":"0.5","fee_type":"something_new","id":"b",
                "scheduled_ts":"2026-01-01T00:00:00Z","series_ticker":"KXNBA"}]}"#,
        )
        .unwrap();
        let a = &pascal.series_fee_change_arr[0];
        assert_eq!(
            (a.fee_multiplier, &a.fee_type),
            (Decimal::from(123), &SeriesFeeType::Quadratic)
        );
        let b = &snake.series_fee_change_arr[0];
        assert_eq!(b.fee_multiplier, Decimal::new(5, 1));
        assert_eq!(b.fee_type, SeriesFeeType::Other("something_new".into()));
        assert_eq!(b.fee_type.fees(b.fee_multiplier), None);
    }

    #[test]
    fn bad_base_urls_are_refused_up_front() {
        assert!(matches!(
            KalshiRest::new("not a url", None),
            Err(KalshiError::InvalidRequest { .. })
        ));
    }
}

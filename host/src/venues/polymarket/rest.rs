//! The Polymarket CLOB REST client (PROTOCOLS.md §2.3, §2.5–§2.7, §2.9): one
//! pooled HTTP client, L2 HMAC headers on every private request, orders built
//! and EIP-712-signed with [`OrderBuilder`], answers classified into
//! [`PolymarketError`].
//!
//! The HMAC covers the exact body bytes (§2.5), so a body is serialised once
//! and that same string is signed and sent. Retries: reads and cancels retry
//! 429/425/5xx and transport failures with bounded backoff; `POST /order`
//! retries only answers that prove the order was not taken — 429 (throttled
//! before the engine) and 425 (engine restarting, §2.7) — and a connection
//! that never opened. The retry sends the *same* signed order, whose hash is
//! its id, so a repeat the engine had in fact seen is refused as "Duplicated"
//! instead of filling twice. Timeouts and 5xx after sending are returned: the
//! order's state is unknown and the caller reconciles.
//!
//! The order version follows `GET /version` ([`PolymarketRest::sync_version`],
//! worth calling at start-up); an `order_version_mismatch` refusal re-reads it,
//! re-signs and sends once more — safe, since the venue refused the order
//! unseen. Reconciliation after a crash reads our trades (`GET /data/trades`,
//! with their settlement status) and single orders (`GET /data/order/{id}`).
//! API credentials are created or derived over L1 auth (`/auth/*`).

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::auth::{ApiCreds, PolySigner, l1_headers, l2_headers};
use super::errors::PolymarketError;
use super::messages::{
    BalanceAllowance, BookResponse, CancelResponse, ClobMarket, OrderStatus, PostOrderResponse,
    UserTradeMsg, VersionResponse,
};
use super::orders::{
    ExchangeDomain, ExchangeVersion, OrderArgs, OrderBuilder, OrderSide, POLYGON, SignatureType,
    TickSize,
};
use super::user::{PolyTrade, trade};
use crate::domain::{Fill, Order, PolymarketFees, Price, Size, TokenId, UnixMicros, Usd, Venue};
use crate::venues::http::{self, Retry, RetryPolicy, Sent};
use crate::venues::order_line::OrderLine;

/// What `POST /order` reports, in the order's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolyOrderResult {
    /// The order hash.
    pub order_id: String,
    pub status: Option<OrderStatus>,
    /// Shares bought or sold.
    pub filled: Size,
    /// Collateral paid (BUY) or received (SELL), fees apart.
    pub collateral: Usd,
    /// `collateral / filled`, when something filled.
    pub average_price: Option<Price>,
    pub trade_ids: Vec<String>,
}

impl PolyOrderResult {
    /// The fill as a domain event. The response carries no fee (it is charged
    /// on top, §2.9), so it is computed from the market's fee model at the
    /// average price; a fill across several levels may differ by rounding.
    pub fn to_fill(&self, order: &Order, fees: &PolymarketFees, at: UnixMicros) -> Option<Fill> {
        if self.filled.is_zero() {
            return None;
        }
        let price = self.average_price.unwrap_or(order.limit);
        Some(Fill {
            client_order_id: order.client_order_id.clone(),
            venue: Venue::Polymarket,
            outcome: order.outcome,
            action: order.action,
            price,
            size: self.filled,
            fee: fees.taker_fee(price, self.filled),
            at,
        })
    }
}

/// One resting order (`GET /data/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenOrder {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub market: String,
    #[serde(default)]
    pub asset_id: String,
    #[serde(default)]
    pub side: String,
    #[serde(default)]
    pub original_size: String,
    #[serde(default)]
    pub size_matched: String,
    #[serde(default)]
    pub price: String,
    /// `Yes`/`No`.
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub order_type: String,
    /// Ids of the trades this order took part in.
    #[serde(default)]
    pub associate_trades: Vec<String>,
}

/// A market's trading parameters from `GET /clob-markets/{condition_id}` (§2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketInfo {
    pub condition_id: String,
    pub yes_token: TokenId,
    pub no_token: TokenId,
    /// Signs on the neg-risk exchange when true (§2.6).
    pub neg_risk: bool,
    pub tick: TickSize,
    /// Minimum order size in shares (`mos`).
    pub min_order_size: Decimal,
    /// The taker fee (`fd`); zero rate when the market has none.
    pub fees: PolymarketFees,
    pub accepting_orders: bool,
    /// Taker delay in seconds (sports markets answer `delayed`, §2.7).
    pub seconds_delay: u64,
}

/// Filters of `GET /data/trades`; empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradeQuery {
    pub id: Option<String>,
    /// Condition id.
    pub market: Option<String>,
    pub asset_id: Option<String>,
    /// Unix seconds, inclusive.
    pub after: Option<u64>,
    pub before: Option<u64>,
}

impl TradeQuery {
    fn query(&self, cursor: &str) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("id", self.id.clone()),
            ("market", self.market.clone()),
            ("asset_id", self.asset_id.clone()),
            ("after", self.after.map(|x| x.to_string())),
            ("before", self.before.map(|x| x.to_string())),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={}", http::segment(&v)));
            }
        }
        if !cursor.is_empty() {
            parts.push(format!("next_cursor={}", http::segment(cursor)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// The end of cursor pagination (§2.6).
const END_CURSOR: &str = "LTE=";

pub struct PolymarketRest {
    http: reqwest::Client,
    /// Order placement's own connections, written from the order's task.
    orders: OrderLine,
    base: String,
    prefix: String,
    creds: Option<ApiCreds>,
    signer: Option<PolySigner>,
    funder: Option<(ethers_core::types::Address, SignatureType)>,
    /// Changes when `/version` says so (between orders, never during one).
    version: std::sync::Mutex<ExchangeVersion>,
    chain_id: u64,
    retry: RetryPolicy,
}

impl std::fmt::Debug for PolymarketRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolymarketRest")
            .field("base", &self.base)
            .field("api_key", &self.creds.as_ref().map(|c| c.api_key.as_str()))
            .field("signer", &self.signer)
            .finish()
    }
}

fn unreadable(status: u16, e: impl std::fmt::Display) -> PolymarketError {
    PolymarketError::Other {
        status,
        message: format!("unreadable response: {e}"),
    }
}

fn invalid(message: impl std::fmt::Display) -> PolymarketError {
    PolymarketError::InvalidRequest {
        message: message.to_string(),
    }
}

impl PolymarketRest {
    /// `base_url` is the CLOB host (e.g. `https://clob.polymarket.com`, or the
    /// simulator's `polymarket_rest_url`). Without creds and signer only public
    /// endpoints work.
    pub fn new(
        base_url: impl AsRef<str>,
        creds: Option<ApiCreds>,
        signer: Option<PolySigner>,
    ) -> Result<Self, PolymarketError> {
        let (base, prefix) = http::split_base(base_url.as_ref()).map_err(invalid)?;
        Ok(PolymarketRest {
            http: http::client().map_err(invalid)?,
            orders: OrderLine::new(&base).map_err(invalid)?,
            base,
            prefix,
            creds,
            signer,
            funder: None,
            version: std::sync::Mutex::new(ExchangeVersion::V2),
            chain_id: POLYGON,
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The exchange version the server asks for (`GET /version`) and the chain.
    pub fn with_exchange(mut self, version: ExchangeVersion, chain_id: u64) -> Self {
        self.version = std::sync::Mutex::new(version);
        self.chain_id = chain_id;
        self
    }

    /// The order version orders are signed for now.
    pub fn exchange_version(&self) -> ExchangeVersion {
        *self.version.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `GET /version` (public) and signs later orders for it.
    pub async fn sync_version(&self) -> Result<ExchangeVersion, PolymarketError> {
        let (status, body) = self.call(Method::GET, "/version", "", None, false).await?;
        let v: VersionResponse = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        let version = ExchangeVersion::from_server(v.version).map_err(|e| unreadable(status, e))?;
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = version;
        Ok(version)
    }

    /// A market's tick, neg-risk flag, tokens, minimum size and fee
    /// (`GET /clob-markets/{condition_id}`, public).
    pub async fn market_info(&self, condition_id: &str) -> Result<MarketInfo, PolymarketError> {
        let path = format!("/clob-markets/{}", http::segment(condition_id));
        let (status, body) = self.call(Method::GET, &path, "", None, false).await?;
        let m: ClobMarket = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        let tokens = m.outcome_tokens().map_err(|e| unreadable(status, e))?;
        let tick = TickSize::from_decimal(
            m.mts
                .ok_or_else(|| unreadable(status, "no minimum tick size"))?,
        )
        .map_err(|e| unreadable(status, e))?;
        let fees = match &m.fd {
            Some(fd) => PolymarketFees {
                rate: fd.r.unwrap_or_default(),
                exponent: fd.e.unwrap_or(1),
            },
            None => PolymarketFees::default(),
        };
        Ok(MarketInfo {
            condition_id: m.c.clone(),
            yes_token: tokens.yes,
            no_token: tokens.no,
            neg_risk: m.nr,
            tick,
            min_order_size: m.mos.unwrap_or_default(),
            fees,
            accepting_orders: m.ao.unwrap_or(true),
            seconds_delay: m.sd.unwrap_or(0),
        })
    }

    /// `POST /auth/api-key` over L1 auth: new credentials for `nonce`.
    pub async fn create_api_key(&self, nonce: u64) -> Result<ApiCreds, PolymarketError> {
        self.l1_request(Method::POST, "/auth/api-key", nonce).await
    }

    /// `GET /auth/derive-api-key` over L1 auth: the credentials of `nonce`.
    pub async fn derive_api_key(&self, nonce: u64) -> Result<ApiCreds, PolymarketError> {
        self.l1_request(Method::GET, "/auth/derive-api-key", nonce)
            .await
    }

    /// Create, or derive when the key exists (the clients' `createOrDeriveApiKey`).
    pub async fn create_or_derive_api_key(&self, nonce: u64) -> Result<ApiCreds, PolymarketError> {
        match self.create_api_key(nonce).await {
            // A bad signature or no connection: deriving would fail the same way.
            Err(e @ (PolymarketError::Transport { .. } | PolymarketError::Auth { .. })) => Err(e),
            Err(_) => self.derive_api_key(nonce).await,
            ok => ok,
        }
    }

    /// Uses `creds` for L2 from now on (e.g. after [`create_or_derive_api_key`](Self::create_or_derive_api_key)).
    pub fn with_creds(mut self, creds: ApiCreds) -> Self {
        self.creds = Some(creds);
        self
    }

    /// Our trades (`GET /data/trades`, every page), with settlement status.
    pub async fn trades(&self, q: &TradeQuery) -> Result<Vec<PolyTrade>, PolymarketError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<UserTradeMsg>,
            #[serde(default)]
            next_cursor: Option<String>,
        }
        http::all_pages(&[END_CURSOR], |cursor| async move {
            let (status, body) = self
                .call(Method::GET, "/data/trades", &q.query(&cursor), None, true)
                .await?;
            let page: Page = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
            let now = crate::strategy::now_micros();
            let trades = page
                .data
                .iter()
                .map(|t| trade(t, now).map_err(|e| unreadable(status, e)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((trades, page.next_cursor))
        })
        .await
    }

    /// One of our orders (`GET /data/order/{id}`); `None` when the venue does
    /// not know it (a killed FOK is never stored).
    pub async fn order(&self, order_id: &str) -> Result<Option<OpenOrder>, PolymarketError> {
        let path = format!("/data/order/{}", http::segment(order_id));
        match self.call(Method::GET, &path, "", None, true).await {
            Ok((status, body)) => {
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
                // The CLOB answers an unknown id with an empty body or `null` too.
                if v.is_null() || v.as_object().is_some_and(|o| o.is_empty()) {
                    return Ok(None);
                }
                serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| unreadable(status, e))
            }
            Err(PolymarketError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn l1_request(
        &self,
        method: Method,
        path: &str,
        nonce: u64,
    ) -> Result<ApiCreds, PolymarketError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| invalid("no Polymarket wallet key configured"))?;
        let h =
            l1_headers(signer, self.chain_id, http::now_ms() / 1_000, nonce).map_err(invalid)?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in h.pairs() {
            req = req.header(name, value);
        }
        let (status, retry_after, text) = match req.send().await {
            Ok(resp) => match http::read(resp).await {
                (status, ra, Ok(text)) => (status, ra, text),
                (_, _, Err(message)) => {
                    return Err(PolymarketError::Transport {
                        message,
                        sent: true,
                    });
                }
            },
            Err(e) => {
                let (message, sent) = http::describe(&e);
                return Err(PolymarketError::Transport { message, sent });
            }
        };
        let (status, body) = ok_or_error(status, retry_after, text)?;
        // Never echo the body on error: it holds the secret.
        serde_json::from_str::<ApiCreds>(&body)
            .map_err(|_| unreadable(status, "no credentials in the answer"))
    }

    /// A proxy / Safe account: `funder` holds the funds, the signer signs.
    pub fn with_funder(
        mut self,
        funder: ethers_core::types::Address,
        signature_type: SignatureType,
    ) -> Self {
        self.funder = Some((funder, signature_type));
        self
    }

    /// `GET /book?token_id=` (public).
    pub async fn book(&self, token: &TokenId) -> Result<BookResponse, PolymarketError> {
        let query = format!("?token_id={}", http::segment(token.as_str()));
        let (status, body) = self.call(Method::GET, "/book", &query, None, false).await?;
        serde_json::from_str(&body).map_err(|e| unreadable(status, e))
    }

    /// Collateral available (`GET /balance-allowance?asset_type=COLLATERAL`).
    pub async fn balance(&self) -> Result<Usd, PolymarketError> {
        let (status, body) = self
            .call(
                Method::GET,
                "/balance-allowance",
                "?asset_type=COLLATERAL",
                None,
                true,
            )
            .await?;
        let b: BalanceAllowance = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        let units: Decimal = b
            .balance
            .trim()
            .parse()
            .map_err(|e| unreadable(status, e))?;
        Ok(Usd::new(units / Decimal::from(1_000_000)))
    }

    /// Shares of one outcome token held (`GET /balance-allowance?asset_type=CONDITIONAL&token_id=`).
    pub async fn token_balance(&self, token: &TokenId) -> Result<Size, PolymarketError> {
        let query = format!(
            "?asset_type=CONDITIONAL&token_id={}",
            http::segment(token.as_str())
        );
        let (status, body) = self
            .call(Method::GET, "/balance-allowance", &query, None, true)
            .await?;
        let b: BalanceAllowance = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
        let units: Decimal = b
            .balance
            .trim()
            .parse()
            .map_err(|e| unreadable(status, e))?;
        Size::new(units / Decimal::from(1_000_000)).map_err(|e| unreadable(status, e))
    }

    /// Builds, signs and posts `order` on `token` (FOK → `FOK`, IOC → `FAK`).
    /// A killed FOK is [`PolymarketError::FokNotFilled`], an unmatched FAK
    /// [`PolymarketError::FakNoMatch`].
    pub async fn post_order(
        &self,
        order: &Order,
        token: &TokenId,
        tick: TickSize,
        neg_risk: bool,
    ) -> Result<PolyOrderResult, PolymarketError> {
        let signed = self.sign_order(order, token, tick, neg_risk)?;
        self.post_signed_order(order, signed).await
    }

    /// Builds and signs `order` for `POST /order` without sending it, so the
    /// signature (an EIP-712 hash and a secp256k1 signature, ~0.1 ms) can be
    /// made while something else on the order path waits, e.g. the trade
    /// intent's write. Only once the trade is priced: the signed struct
    /// covers the token and both amounts (§2.5), so it cannot be made before
    /// the decision. Its timestamp is the signing time and its salt is fresh;
    /// a signed order never posted commits to nothing (V2 signs no nonce).
    pub fn sign_order(
        &self,
        order: &Order,
        token: &TokenId,
        tick: TickSize,
        neg_risk: bool,
    ) -> Result<SignedOrder, PolymarketError> {
        if order.venue != Venue::Polymarket {
            return Err(invalid(format!(
                "order {} is for {}",
                order.client_order_id, order.venue
            )));
        }
        let args = OrderArgs::from_domain(order, token.clone(), tick);
        self.sign_args(order, args, neg_risk)
    }

    fn sign_args(
        &self,
        order: &Order,
        args: OrderArgs,
        neg_risk: bool,
    ) -> Result<SignedOrder, PolymarketError> {
        let (creds, signer) = self.keys()?;
        let mut builder = match self.funder {
            Some((funder, kind)) => OrderBuilder::with_funder(signer.address(), funder, kind),
            None => OrderBuilder::eoa(signer.address()),
        };
        let version = self.exchange_version();
        let domain =
            ExchangeDomain::for_market(version, self.chain_id, neg_risk).map_err(invalid)?;
        let signed = builder
            .build(&args, http::now_ms())
            .map_err(invalid)?
            .sign(signer, &domain)
            .map_err(invalid)?;
        // Serialise once; this exact string is signed and sent (§2.5).
        let body = signed
            .post_body(&creds.api_key, args.order_type, false)
            .map_err(invalid)?
            .to_json();
        Ok(SignedOrder {
            client_order_id: order.client_order_id.clone(),
            version,
            neg_risk,
            args,
            body,
        })
    }

    /// Posts an order [`Self::sign_order`] signed. Signed for an exchange
    /// version the server has since left, it is signed again first; refused
    /// unseen for its version, the version is re-read and it is re-signed, once.
    pub async fn post_signed_order(
        &self,
        order: &Order,
        signed: SignedOrder,
    ) -> Result<PolyOrderResult, PolymarketError> {
        if signed.client_order_id != order.client_order_id {
            return Err(invalid(format!(
                "the order signed is {}, not {}",
                signed.client_order_id, order.client_order_id
            )));
        }
        let signed = if signed.version == self.exchange_version() {
            signed
        } else {
            self.sign_args(order, signed.args, signed.neg_risk)?
        };
        match self.post_signed(order, &signed).await {
            // The venue refused it unseen: re-read the version, re-sign, once.
            Err(e) if e.needs_resign() => {
                let was = self.exchange_version();
                let now = self.sync_version().await?;
                tracing::info!(?was, ?now, "polymarket order version changed: re-signing");
                let again = self.sign_args(order, signed.args, signed.neg_risk)?;
                self.post_signed(order, &again).await
            }
            other => other,
        }
    }

    async fn post_signed(
        &self,
        order: &Order,
        signed: &SignedOrder,
    ) -> Result<PolyOrderResult, PolymarketError> {
        let args = &signed.args;
        let body = signed.body.clone();
        let (status, text) = self
            .send(
                Method::POST,
                "/order",
                "",
                Some(body),
                true,
                Retry::NotAccepted,
            )
            .await
            .and_then(|(s, ra, t)| ok_or_error(s, ra, t))?;
        let resp: PostOrderResponse =
            serde_json::from_str(&text).map_err(|e| unreadable(status, e))?;
        if let Some(e) = PolymarketError::from_order_response(&resp) {
            return Err(e);
        }
        let amount = |s: &Option<String>| -> Decimal {
            s.as_deref()
                .and_then(|x| x.trim().parse().ok())
                .unwrap_or_default()
        };
        // BUY: taking = shares received, making = collateral paid; SELL mirrors.
        let (shares, collateral) = match args.side {
            OrderSide::Buy => (amount(&resp.taking_amount), amount(&resp.making_amount)),
            OrderSide::Sell => (amount(&resp.making_amount), amount(&resp.taking_amount)),
        };
        let filled = Size::new(shares).map_err(|e| unreadable(status, e))?;
        if filled > order.size {
            return Err(unreadable(
                status,
                format!("{filled} filled for an order of {}", order.size),
            ));
        }
        let average_price = (!filled.is_zero())
            .then(|| Price::new((collateral / shares).round_dp(6)).ok())
            .flatten();
        Ok(PolyOrderResult {
            order_id: resp.order_id,
            status: resp.status,
            filled,
            collateral: Usd::new(collateral),
            average_price,
            trade_ids: resp.trade_ids,
        })
    }

    /// `DELETE /order` with `{"orderID": ...}`.
    pub async fn cancel(&self, order_id: &str) -> Result<CancelResponse, PolymarketError> {
        let body = serde_json::json!({ "orderID": order_id }).to_string();
        let (status, text) = self
            .call(Method::DELETE, "/order", "", Some(body), true)
            .await?;
        serde_json::from_str(&text).map_err(|e| unreadable(status, e))
    }

    /// Cancels every open order of the account (`DELETE /cancel-all`, §2.6).
    pub async fn cancel_all(&self) -> Result<CancelResponse, PolymarketError> {
        let (status, text) = self
            .call(Method::DELETE, "/cancel-all", "", None, true)
            .await?;
        serde_json::from_str(&text).map_err(|e| unreadable(status, e))
    }

    /// Cancels `order_ids` in one request (`DELETE /orders` with a JSON array, §2.6).
    pub async fn cancel_orders(
        &self,
        order_ids: &[String],
    ) -> Result<CancelResponse, PolymarketError> {
        let body = serde_json::to_string(order_ids).map_err(invalid)?;
        let (status, text) = self
            .call(Method::DELETE, "/orders", "", Some(body), true)
            .await?;
        serde_json::from_str(&text).map_err(|e| unreadable(status, e))
    }

    /// Every resting order (`GET /data/orders`, following `next_cursor`).
    pub async fn open_orders(&self) -> Result<Vec<OpenOrder>, PolymarketError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<OpenOrder>,
            #[serde(default)]
            next_cursor: Option<String>,
        }
        http::all_pages(&[END_CURSOR], |cursor| async move {
            let query = if cursor.is_empty() {
                String::new()
            } else {
                format!("?next_cursor={}", http::segment(&cursor))
            };
            let (status, body) = self
                .call(Method::GET, "/data/orders", &query, None, true)
                .await?;
            let page: Page = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
            Ok((page.data, page.next_cursor))
        })
        .await
    }

    fn keys(&self) -> Result<(&ApiCreds, &PolySigner), PolymarketError> {
        match (&self.creds, &self.signer) {
            (Some(c), Some(s)) => Ok((c, s)),
            _ => Err(invalid(
                "no Polymarket API credentials and wallet key configured",
            )),
        }
    }

    /// A read or cancel: retried when idempotent-safe, non-2xx classified.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<String>,
        private: bool,
    ) -> Result<(u16, String), PolymarketError> {
        self.send(method, path, query, body, private, Retry::Idempotent)
            .await
            .and_then(|(s, ra, t)| ok_or_error(s, ra, t))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<String>,
        private: bool,
        retry: Retry,
    ) -> Result<(u16, Option<String>, String), PolymarketError> {
        let signed_path = format!("{}{path}", self.prefix);
        let url = format!("{}{path}{query}", self.base);
        let target = format!("{signed_path}{query}");
        let call = http::Call {
            via: http::Via::choose(
                method == Method::POST && path == "/order",
                &self.http,
                &self.orders,
            ),
            method: &method,
            url: &url,
            target: &target,
            body: body.as_deref(),
        };
        let sent = http::send_with_retries(
            "polymarket",
            &self.retry,
            retry,
            call,
            // 425: the matching engine is restarting; 429: throttled (§2.7).
            |status, retry_after| {
                matches!(status, 425 | 429).then(|| {
                    PolymarketError::from_http(status, "", retry_after)
                        .retry_after()
                        .map(|h| h.min(MAX_HINT))
                })
            },
            || {
                if !private {
                    return Ok(http::Headers::new());
                }
                let (creds, signer) = self.keys()?;
                // Fresh timestamp per attempt; the signed body never changes.
                let h = l2_headers(
                    creds,
                    &signer.checksum_address(),
                    http::now_ms() / 1_000,
                    method.as_str(),
                    &signed_path,
                    body.as_deref().unwrap_or(""),
                )
                .map_err(invalid)?;
                Ok(h.pairs()
                    .into_iter()
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
            // The request reached the venue either way.
            Sent::Unreadable { detail, .. } => Err(PolymarketError::Transport {
                message: detail,
                sent: true,
            }),
            Sent::Failed { message, sent } => Err(PolymarketError::Transport { message, sent }),
        }
    }
}

/// An order signed by [`PolymarketRest::sign_order`], ready to post.
pub struct SignedOrder {
    client_order_id: String,
    /// The exchange version it was signed for.
    version: ExchangeVersion,
    neg_risk: bool,
    args: OrderArgs,
    /// The exact `POST /order` body: it carries the API key's owner id and the
    /// signature, so it is never logged.
    body: String,
}

impl std::fmt::Debug for SignedOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedOrder")
            .field("client_order_id", &self.client_order_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A venue hint longer than this is not waited for inside one call.
const MAX_HINT: Duration = Duration::from_secs(5);

fn ok_or_error(
    status: u16,
    retry_after: Option<String>,
    body: String,
) -> Result<(u16, String), PolymarketError> {
    if (200..300).contains(&status) {
        Ok((status, body))
    } else {
        Err(PolymarketError::from_http(
            status,
            &body,
            retry_after.as_deref(),
        ))
    }
}

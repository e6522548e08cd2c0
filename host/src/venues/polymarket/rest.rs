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

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::auth::{ApiCreds, PolySigner, l2_headers};
use super::errors::PolymarketError;
use super::messages::{
    BalanceAllowance, BookResponse, CancelResponse, OrderStatus, PostOrderResponse,
};
use super::orders::{
    ExchangeDomain, ExchangeVersion, OrderArgs, OrderBuilder, OrderSide, POLYGON, SignatureType,
    TickSize,
};
use crate::domain::{Fill, Order, PolymarketFees, Price, Size, TokenId, UnixMicros, Usd, Venue};
use crate::venues::http::{self, RetryPolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    NotAccepted,
}

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
}

pub struct PolymarketRest {
    http: reqwest::Client,
    base: String,
    prefix: String,
    creds: Option<ApiCreds>,
    signer: Option<PolySigner>,
    funder: Option<(ethers_core::types::Address, SignatureType)>,
    version: ExchangeVersion,
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
            base,
            prefix,
            creds,
            signer,
            funder: None,
            version: ExchangeVersion::V2,
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
        self.version = version;
        self.chain_id = chain_id;
        self
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
        if order.venue != Venue::Polymarket {
            return Err(invalid(format!(
                "order {} is for {}",
                order.client_order_id, order.venue
            )));
        }
        let (creds, signer) = self.keys()?;
        let args = OrderArgs::from_domain(order, token.clone(), tick);
        let mut builder = match self.funder {
            Some((funder, kind)) => OrderBuilder::with_funder(signer.address(), funder, kind),
            None => OrderBuilder::eoa(signer.address()),
        };
        let domain =
            ExchangeDomain::for_market(self.version, self.chain_id, neg_risk).map_err(invalid)?;
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

    /// Every resting order (`GET /data/orders`, following `next_cursor`).
    pub async fn open_orders(&self) -> Result<Vec<OpenOrder>, PolymarketError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<OpenOrder>,
            #[serde(default)]
            next_cursor: Option<String>,
        }
        const END: &str = "LTE=";
        const MAX_PAGES: usize = 100;
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let query = if cursor.is_empty() {
                String::new()
            } else {
                format!("?next_cursor={}", http::segment(&cursor))
            };
            let (status, body) = self
                .call(Method::GET, "/data/orders", &query, None, true)
                .await?;
            let page: Page = serde_json::from_str(&body).map_err(|e| unreadable(status, e))?;
            out.extend(page.data);
            match page.next_cursor {
                Some(c) if !c.is_empty() && c != END && c != cursor => cursor = c,
                _ => return Ok(out),
            }
        }
        Ok(out)
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
        let mut attempt = 0;
        loop {
            let mut req = self.http.request(method.clone(), &url);
            if private {
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
                for (name, value) in h.pairs() {
                    req = req.header(name, value);
                }
            }
            if let Some(b) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            let outcome = match req.send().await {
                Ok(resp) => match http::read(resp).await {
                    (status, retry_after, Ok(text)) => Ok((status, retry_after, text)),
                    (_, _, Err(message)) => Err(PolymarketError::Transport {
                        message,
                        sent: true,
                    }),
                },
                Err(e) => {
                    let (message, sent) = http::describe(&e);
                    Err(PolymarketError::Transport { message, sent })
                }
            };
            let (retryable, hint) = match (&outcome, retry) {
                (Ok((s @ (425 | 429), ra, _)), _) => (
                    true,
                    PolymarketError::from_http(*s, "", ra.as_deref()).retry_after(),
                ),
                (Ok((s, _, _)), Retry::Idempotent) => (*s >= 500, None),
                (Ok(_), Retry::NotAccepted) => (false, None),
                (Err(PolymarketError::Transport { sent: false, .. }), _) => (true, None),
                (Err(PolymarketError::Transport { .. }), Retry::Idempotent) => (true, None),
                (Err(_), _) => (false, None),
            };
            if !retryable || attempt >= self.retry.max_retries {
                return outcome;
            }
            let wait = self.retry.delay(attempt, hint.map(|h| h.min(MAX_HINT)));
            tracing::debug!(%method, path, attempt, ?wait, "polymarket request retried");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
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

//! The CLOB's documented failures as one typed error (PROTOCOLS.md §2.6, §2.7,
//! §5 items 13 and 15), built from an HTTP status and body.
//!
//! The venue reports most order failures as free text in `{"error": "..."}`
//! (or `errorMsg` in a 200 with `success: false`), so classification matches
//! the documented message fragments first and falls back to the status. The
//! variants say what the executor should do: re-sign after a version change,
//! treat a killed FOK as "leg did not fill", wait and retry on 425/429, stop
//! trading on balance or auth problems. Messages are bounded and carry only
//! what the venue sent, never our credentials.

use std::time::Duration;

use super::messages::{ErrorBody, PostOrderResponse};

/// Longest venue message kept, in characters.
const MAX_MESSAGE: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolymarketError {
    /// The exchange moved to another order version (§2.1): re-query
    /// `GET /version`, re-sign with that domain, resend.
    #[error("order version mismatch, re-sign: {message}")]
    OrderVersionMismatch { message: String },
    /// HTTP 400 "order couldn't be fully filled. FOK orders are fully filled or
    /// killed." — nothing was bought; the leg failed cleanly (§2.6).
    #[error("FOK order killed: {message}")]
    FokNotFilled {
        order_id: Option<String>,
        message: String,
    },
    /// "no orders found to match with FAK order" — nothing filled.
    #[error("FAK order found no match: {message}")]
    FakNoMatch {
        order_id: Option<String>,
        message: String,
    },
    /// "not enough balance / allowance": top up pUSD or redo approvals and
    /// `/balance-allowance/update` (§2.6, §5 item 12). A circuit-breaker trip.
    #[error("insufficient balance or allowance: {message}")]
    InsufficientBalance { message: String },
    /// "Price (...) breaks minimum tick size rule" — the cached tick is stale
    /// (`tick_size_change`, §2.4).
    #[error("price breaks the tick size: {message}")]
    InvalidTick { message: String },
    /// "Size (...) lower than the minimum".
    #[error("size below the market minimum: {message}")]
    BelowMinimumSize { message: String },
    /// "invalid amounts, ... max accuracy of N decimals" (§2.6 precision rules).
    #[error("amount precision rejected: {message}")]
    InvalidAmounts { message: String },
    /// "invalid signature": usually the wrong exchange contract (neg-risk) or
    /// domain version (§5 item 8).
    #[error("invalid order signature: {message}")]
    InvalidSignature { message: String },
    #[error("post-only order would cross the book: {message}")]
    PostOnlyCrosses { message: String },
    #[error("duplicated order: {message}")]
    Duplicated { message: String },
    /// Account or address in close-only mode (regulatory / geoblock, §2.7).
    #[error("account is in close-only mode: {message}")]
    ClosedOnly { message: String },
    /// "the market is not yet ready to process new orders".
    #[error("market not ready: {message}")]
    MarketNotReady { message: String },
    /// HTTP 401, wrong owner/signer for the API key, or an L2 header problem.
    #[error("authentication rejected (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// HTTP 403 without a more specific message: geoblock or a ban (§2.7).
    #[error("forbidden (HTTP 403): {message}")]
    Forbidden { message: String },
    /// HTTP 429: Cloudflare throttling (§2.7, §2.8).
    #[error("rate limited, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// HTTP 425: the matching engine is restarting — retry after 1–2 s (§2.7).
    #[error("matching engine restarting (HTTP 425), retry after {retry_after:?}")]
    EngineRestarting { retry_after: Duration },
    /// HTTP 503: trading paused or cancel-only (§2.7).
    #[error("exchange unavailable or cancel-only (HTTP 503): {message}")]
    Unavailable { message: String },
    #[error("not found: {message}")]
    NotFound { message: String },
    /// Anything else, with the venue's status and words.
    #[error("HTTP {status}: {message}")]
    Other { status: u16, message: String },
    /// No HTTP answer. `sent: false` means the connection was never made, so
    /// the venue cannot have seen the request; otherwise its state is unknown.
    #[error("transport error ({message}; request sent: {sent})")]
    Transport { message: String, sent: bool },
    /// The request was refused before sending (a bad order, no key configured).
    #[error("request not sent: {message}")]
    InvalidRequest { message: String },
}

/// Default waits when the venue gives no `Retry-After`.
const RESTART_WAIT: Duration = Duration::from_secs(2);
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

fn clip(s: &str) -> String {
    s.chars().take(MAX_MESSAGE).collect()
}

impl PolymarketError {
    /// Classifies a non-2xx response. `retry_after` is the `Retry-After` header
    /// (seconds), if any.
    pub fn from_http(status: u16, body: &str, retry_after: Option<&str>) -> Self {
        let (message, order_id) = match serde_json::from_str::<ErrorBody>(body) {
            Ok(b) if !b.error.is_empty() => (b.error, b.order_id),
            _ => (body.trim().to_string(), None),
        };
        let wait = retry_after
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Self::classify(status, &message, order_id, wait)
    }

    /// A 200 `POST /order` with `success: false` and an `errorMsg`; `None` when
    /// the order was accepted.
    pub fn from_order_response(r: &PostOrderResponse) -> Option<Self> {
        if r.success && r.error_msg.is_empty() {
            return None;
        }
        let order_id = (!r.order_id.is_empty()).then(|| r.order_id.clone());
        Some(Self::classify(200, &r.error_msg, order_id, None))
    }

    fn classify(
        status: u16,
        message: &str,
        order_id: Option<String>,
        wait: Option<Duration>,
    ) -> Self {
        let m = message.to_ascii_lowercase();
        let message = clip(message);
        let has = |s: &str| m.contains(s);
        // Message fragments first: the same status (400) covers most of them.
        if has("order_version_mismatch") {
            return Self::OrderVersionMismatch { message };
        }
        if has("fok orders are fully filled or killed") || has("couldn't be fully filled") {
            return Self::FokNotFilled { order_id, message };
        }
        if has("no orders found to match with fak order") {
            return Self::FakNoMatch { order_id, message };
        }
        if has("not enough balance") || has("allowance") {
            return Self::InsufficientBalance { message };
        }
        if has("minimum tick size") {
            return Self::InvalidTick { message };
        }
        if has("lower than the minimum") {
            return Self::BelowMinimumSize { message };
        }
        if has("invalid amount") || has("max accuracy") {
            return Self::InvalidAmounts { message };
        }
        if has("invalid signature") {
            return Self::InvalidSignature { message };
        }
        if has("crosses book") {
            return Self::PostOnlyCrosses { message };
        }
        if has("duplicated") {
            return Self::Duplicated { message };
        }
        if has("closed only mode") || has("close-only") || has("close only") {
            return Self::ClosedOnly { message };
        }
        if has("not yet ready") {
            return Self::MarketNotReady { message };
        }
        if has("owner has to be") || has("signer address has to be") || has("unauthorized") {
            return Self::Auth { status, message };
        }
        match status {
            401 => Self::Auth { status, message },
            403 => Self::Forbidden { message },
            404 => Self::NotFound { message },
            425 => Self::EngineRestarting {
                retry_after: wait.unwrap_or(RESTART_WAIT),
            },
            429 => Self::RateLimited {
                retry_after: wait.unwrap_or(RATE_LIMIT_WAIT),
            },
            503 => Self::Unavailable { message },
            _ => Self::Other { status, message },
        }
    }

    /// How long to wait before the same request may succeed, if it may.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::EngineRestarting { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// The order must be signed again (new `/version`) before resending.
    pub fn needs_resign(&self) -> bool {
        matches!(self, Self::OrderVersionMismatch { .. })
    }

    /// The order was accepted but did not fill: a clean leg failure, not a fault.
    pub fn is_no_fill(&self) -> bool {
        matches!(self, Self::FokNotFilled { .. } | Self::FakNoMatch { .. })
    }

    /// Trading must stop until an operator looks (money or identity problems).
    pub fn halts_trading(&self) -> bool {
        matches!(
            self,
            Self::InsufficientBalance { .. }
                | Self::Auth { .. }
                | Self::Forbidden { .. }
                | Self::ClosedOnly { .. }
                | Self::InvalidSignature { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venues::polymarket::messages::tests::fixture;

    fn err(status: u16, msg: &str) -> PolymarketError {
        PolymarketError::from_http(
            status,
            &serde_json::json!({ "error": msg }).to_string(),
            None,
        )
    }

    #[test]
    fn killed_fok_is_a_no_fill_with_its_order_id() {
        let e = PolymarketError::from_http(400, &fixture("rest_error_fok_killed.json"), None);
        assert!(matches!(
            &e,
            PolymarketError::FokNotFilled { order_id: Some(id), .. } if id == "0x..."
        ));
        assert!(e.is_no_fill());
        assert!(!e.halts_trading());
        let e = err(
            400,
            "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found.",
        );
        assert!(matches!(e, PolymarketError::FakNoMatch { .. }));
    }

    #[test]
    fn version_mismatch_asks_for_a_resign() {
        let e = err(400, "order_version_mismatch: expected version 3");
        assert!(e.needs_resign());
    }

    #[test]
    fn documented_order_errors_map_to_their_variants() {
        use PolymarketError as E;
        type Check = fn(&E) -> bool;
        let cases: [(&str, Check); 10] = [
            ("not enough balance / allowance", |e| {
                matches!(e, E::InsufficientBalance { .. })
            }),
            (
                "order 0xab is invalid. Price (0.555) breaks minimum tick size rule: 0.01",
                |e| matches!(e, E::InvalidTick { .. }),
            ),
            (
                "order 0xab is invalid. Size (1) lower than the minimum: 5",
                |e| matches!(e, E::BelowMinimumSize { .. }),
            ),
            (
                "invalid amounts, the market buy orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals",
                |e| matches!(e, E::InvalidAmounts { .. }),
            ),
            ("invalid post-only order: order crosses book", |e| {
                matches!(e, E::PostOnlyCrosses { .. })
            }),
            ("order 0xab is invalid. Duplicated.", |e| {
                matches!(e, E::Duplicated { .. })
            }),
            ("'0xabc' address in closed only mode", |e| {
                matches!(e, E::ClosedOnly { .. })
            }),
            ("the market is not yet ready to process new orders", |e| {
                matches!(e, E::MarketNotReady { .. })
            }),
            ("the order owner has to be the owner of the API KEY", |e| {
                matches!(e, E::Auth { .. })
            }),
            ("invalid signature", |e| {
                matches!(e, E::InvalidSignature { .. })
            }),
        ];
        for (msg, is) in cases {
            let e = err(400, msg);
            assert!(is(&e), "{msg} -> {e:?}");
        }
        assert!(err(400, "not enough balance / allowance").halts_trading());
    }

    #[test]
    fn statuses_without_a_known_message() {
        let e = PolymarketError::from_http(425, "Too Early", None);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = PolymarketError::from_http(429, "", Some("7"));
        assert_eq!(
            e,
            PolymarketError::RateLimited {
                retry_after: Duration::from_secs(7)
            }
        );
        assert!(matches!(
            PolymarketError::from_http(
                503,
                r#"{"error":"trading is currently cancel-only"}"#,
                None
            ),
            PolymarketError::Unavailable { .. }
        ));
        assert!(matches!(
            PolymarketError::from_http(401, r#"{"error":"Unauthorized/Invalid api key"}"#, None),
            PolymarketError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            PolymarketError::from_http(404, "<html>", None),
            PolymarketError::NotFound { .. }
        ));
        let e = PolymarketError::from_http(500, &"x".repeat(10_000), None);
        let PolymarketError::Other {
            status: 500,
            message,
        } = e
        else {
            panic!()
        };
        assert_eq!(message.len(), MAX_MESSAGE, "venue text is bounded");
    }

    #[test]
    fn unsuccessful_200_responses_are_errors_too() {
        let ok: PostOrderResponse =
            serde_json::from_str(&fixture("rest_post_order_response.json")).unwrap();
        assert_eq!(PolymarketError::from_order_response(&ok), None);
        let bad: PostOrderResponse = serde_json::from_str(
            r#"{"success":false,"errorMsg":"not enough balance / allowance","orderID":""}"#,
        )
        .unwrap();
        assert!(matches!(
            PolymarketError::from_order_response(&bad),
            Some(PolymarketError::InsufficientBalance { .. })
        ));
    }
}

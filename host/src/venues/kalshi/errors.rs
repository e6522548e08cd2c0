//! Kalshi's failures, typed: REST errors classified from the HTTP status and the
//! error body (PROTOCOLS.md §1.6, §1.7), and WebSocket error codes (§1.4).
//!
//! The executor decides on these variants, never on strings: a FOK that could not
//! fill is an ordinary "no trade", an insufficient balance must trip the breaker
//! (the POK audit in §4), a duplicate `client_order_id` means the order already
//! exists and must be looked up rather than re-sent.

use std::time::Duration;

use serde_json::Value;

/// A failed Kalshi REST request, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KalshiError {
    /// HTTP 409 `fill_or_kill_insufficient_resting_volume` (§1.6, observed 2026-09-28).
    #[error("kalshi: fill-or-kill order could not be filled completely ({message})")]
    FillOrKillNotFillable { message: String },
    /// `available_balance_too_low` (§1.6) or `insufficient_balance` (§4 POK audit).
    #[error("kalshi: insufficient balance ({code}: {message})")]
    InsufficientBalance { code: String, message: String },
    /// `MARKET_INACTIVE` after `close_time` or while paused (§1.6, §1.9).
    #[error("kalshi: market is not open for trading ({code}: {message})")]
    MarketInactive { code: String, message: String },
    /// Any other HTTP 409: the `client_order_id` already exists (§1.6).
    #[error("kalshi: client_order_id already used ({code}: {message})")]
    DuplicateClientOrderId { code: String, message: String },
    /// HTTP 429. Kalshi sends no `Retry-After` today (§1.7); honoured if it ever does.
    #[error("kalshi: rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// HTTP 401/403: wrong key, clock in seconds, bad signed path (§1.2 "Common Issues").
    #[error("kalshi: authentication failed (HTTP {status}: {message})")]
    Unauthorized { status: u16, message: String },
    /// HTTP 410: a legacy endpoint (`/portfolio/orders` mutations since ~2026-06-21, §0).
    #[error("kalshi: endpoint deprecated (HTTP 410 {code}: {message})")]
    DeprecatedEndpoint { code: String, message: String },
    /// A 2xx whose body could not be read: the order may have executed, so look
    /// it up by `client_order_id` before doing anything else.
    /// No HTTP answer. `sent: false` means the connection was never made, so
    /// the venue cannot have seen the request; otherwise its state is unknown.
    #[error("kalshi: transport error ({message}; request sent: {sent})")]
    Transport { message: String, sent: bool },
    /// The request was refused before sending (a bad order, no key configured).
    #[error("kalshi: request not sent: {message}")]
    InvalidRequest { message: String },
    #[error("kalshi: HTTP {status} with an unreadable body ({detail}); order state unknown")]
    UnreadableResponse { status: u16, detail: String },
    /// Anything else, with what the venue said.
    #[error("kalshi: HTTP {status} {code}: {message}")]
    Other {
        status: u16,
        code: String,
        message: String,
    },
}

/// The error codes Kalshi documents (§1.6), matched case-insensitively because the
/// docs spell `MARKET_INACTIVE` upper case and the body codes lower case.
const FOK_NOT_FILLABLE: &str = "fill_or_kill_insufficient_resting_volume";
const BALANCE_CODES: &[&str] = &["available_balance_too_low", "insufficient_balance"];
const INACTIVE_CODES: &[&str] = &["market_inactive", "market_closed"];

impl KalshiError {
    /// Classifies a non-2xx response. `retry_after` is the raw `Retry-After`
    /// header, if any (seconds). Never fails: an unreadable body becomes `Other`.
    pub fn from_http(status: u16, retry_after: Option<&str>, body: &str) -> KalshiError {
        let parsed = ApiErrorBody::parse(body);
        let code = parsed.code.unwrap_or_default();
        let message = parsed.message.unwrap_or_else(|| truncate(body, 200));
        let is = |c: &str| code.eq_ignore_ascii_case(c);

        if status == 429 {
            let retry_after = retry_after
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return KalshiError::RateLimited { retry_after };
        }
        if is(FOK_NOT_FILLABLE) {
            return KalshiError::FillOrKillNotFillable { message };
        }
        if BALANCE_CODES.iter().any(|c| is(c)) {
            return KalshiError::InsufficientBalance { code, message };
        }
        if INACTIVE_CODES.iter().any(|c| is(c)) {
            return KalshiError::MarketInactive { code, message };
        }
        match status {
            401 | 403 => KalshiError::Unauthorized { status, message },
            409 => KalshiError::DuplicateClientOrderId { code, message },
            410 => KalshiError::DeprecatedEndpoint { code, message },
            _ => KalshiError::Other {
                status,
                code,
                message,
            },
        }
    }

    /// Worth retrying the same request later (with the same `client_order_id`).
    pub fn is_retryable(&self) -> bool {
        match self {
            KalshiError::RateLimited { .. } => true,
            KalshiError::Transport { sent, .. } => !sent,
            KalshiError::Other { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A Kalshi REST error body. Three shapes exist (§1.6, §1.7):
/// `{"code","message","details"}` (documented schema), `{"error":{"code","message"}}`
/// (observed on the V2 order endpoint) and `{"error":"too many requests"}` (429).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub details: Option<String>,
}

impl ApiErrorBody {
    /// Reads any of the three shapes; anything else gives an empty body.
    pub fn parse(body: &str) -> ApiErrorBody {
        let Ok(Value::Object(root)) = serde_json::from_str::<Value>(body) else {
            return ApiErrorBody::default();
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        match root.get("error") {
            Some(Value::Object(inner)) => ApiErrorBody {
                code: text(inner.get("code")),
                message: text(inner.get("message")),
                details: text(inner.get("details")),
            },
            Some(Value::String(s)) => ApiErrorBody {
                code: None,
                message: Some(s.clone()),
                details: None,
            },
            _ => ApiErrorBody {
                code: text(root.get("code")),
                message: text(root.get("message")),
                details: text(root.get("details")),
            },
        }
    }
}

/// WebSocket error codes (§1.4, docs 2026).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsErrorCode {
    UnableToProcess,
    ParamsRequired,
    ChannelsRequired,
    SubscriptionIdsRequired,
    UnknownCommand,
    AlreadySubscribed,
    UnknownSubscriptionId,
    UnknownChannel,
    AuthenticationRequired,
    ChannelError,
    InvalidParameter,
    ExactlyOneSidRequired,
    UnsupportedAction,
    MarketTickerRequired,
    ActionRequired,
    MarketNotFound,
    InternalError,
    CommandTimeout,
    /// 19–22: `shard_factor`/`shard_key` validation.
    ShardValidation(u32),
    MatchIdsRequired,
    IndexIdsRequired,
    SubscriptionBufferOverflow,
    SubscriptionMarketLimitExceeded,
    TooManyRequests,
    Unknown(u32),
}

impl WsErrorCode {
    pub fn from_code(code: u32) -> WsErrorCode {
        use WsErrorCode::*;
        match code {
            1 => UnableToProcess,
            2 => ParamsRequired,
            3 => ChannelsRequired,
            4 => SubscriptionIdsRequired,
            5 => UnknownCommand,
            6 => AlreadySubscribed,
            7 => UnknownSubscriptionId,
            8 => UnknownChannel,
            9 => AuthenticationRequired,
            10 => ChannelError,
            11 => InvalidParameter,
            12 => ExactlyOneSidRequired,
            13 => UnsupportedAction,
            14 => MarketTickerRequired,
            15 => ActionRequired,
            16 => MarketNotFound,
            17 => InternalError,
            18 => CommandTimeout,
            19..=22 => ShardValidation(code),
            23 => MatchIdsRequired,
            24 => IndexIdsRequired,
            25 => SubscriptionBufferOverflow,
            26 => SubscriptionMarketLimitExceeded,
            27 => TooManyRequests,
            other => Unknown(other),
        }
    }

    /// "Codes 10, 17, 25 are terminal for the subscription — resubscribe" (§1.4).
    /// 25 also means messages were lost, so the books of that subscription are gone.
    pub fn requires_resubscribe(self) -> bool {
        matches!(
            self,
            WsErrorCode::ChannelError
                | WsErrorCode::InternalError
                | WsErrorCode::SubscriptionBufferOverflow
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../tests/fixtures/kalshi/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn fok_409_is_not_fillable_not_duplicate() {
        let e = KalshiError::from_http(409, None, &fixture("rest_error_fok_409.json"));
        assert_eq!(
            e,
            KalshiError::FillOrKillNotFillable {
                message: "fill or kill insufficient resting volume".into()
            }
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn other_409_is_duplicate_client_order_id() {
        let body = r#"{"code":"order_already_exists","message":"client order id exists"}"#;
        assert!(matches!(
            KalshiError::from_http(409, None, body),
            KalshiError::DuplicateClientOrderId { .. }
        ));
    }

    #[test]
    fn rate_limit_without_and_with_retry_after() {
        let body = fixture("rest_error_429.json");
        assert_eq!(
            KalshiError::from_http(429, None, &body),
            KalshiError::RateLimited { retry_after: None }
        );
        let e = KalshiError::from_http(429, Some(" 3 "), &body);
        assert_eq!(
            e,
            KalshiError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn balance_inactive_auth_and_deprecated_are_classified() {
        let b = r#"{"code":"available_balance_too_low","message":"low","details":"x"}"#;
        assert!(matches!(
            KalshiError::from_http(400, None, b),
            KalshiError::InsufficientBalance { .. }
        ));
        let b = r#"{"error":{"code":"insufficient_balance","message":"no"}}"#;
        assert!(matches!(
            KalshiError::from_http(400, None, b),
            KalshiError::InsufficientBalance { .. }
        ));
        let b = r#"{"code":"MARKET_INACTIVE","message":"market closed"}"#;
        assert!(matches!(
            KalshiError::from_http(400, None, b),
            KalshiError::MarketInactive { .. }
        ));
        assert!(matches!(
            KalshiError::from_http(401, None, r#"{"code":"unauthorized","message":"bad sig"}"#),
            KalshiError::Unauthorized { status: 401, .. }
        ));
        assert!(matches!(
            KalshiError::from_http(
                410,
                None,
                r#"{"error":{"code":"deprecated_v1_order_endpoint","message":"Please switch to the V2 endpoints"}}"#
            ),
            KalshiError::DeprecatedEndpoint { .. }
        ));
    }

    #[test]
    fn unreadable_body_keeps_status_and_a_bounded_message() {
        let body = "<html>".repeat(100);
        match KalshiError::from_http(502, None, &body) {
            KalshiError::Other {
                status,
                code,
                message,
            } => {
                assert_eq!(status, 502);
                assert!(code.is_empty());
                assert!(message.chars().count() <= 201);
            }
            e => panic!("{e:?}"),
        }
        assert!(KalshiError::from_http(503, None, "").is_retryable());
    }

    #[test]
    fn error_body_reads_all_three_shapes() {
        let a = ApiErrorBody::parse(r#"{"code":"c","message":"m","details":"d"}"#);
        assert_eq!(
            (
                a.code.as_deref(),
                a.message.as_deref(),
                a.details.as_deref()
            ),
            (Some("c"), Some("m"), Some("d"))
        );
        let b = ApiErrorBody::parse(&fixture("rest_error_fok_409.json"));
        assert_eq!(b.code.as_deref(), Some(FOK_NOT_FILLABLE));
        let c = ApiErrorBody::parse(&fixture("rest_error_429.json"));
        assert_eq!(c.message.as_deref(), Some("too many requests"));
        assert_eq!(ApiErrorBody::parse("[1,2]"), ApiErrorBody::default());
    }

    #[test]
    fn ws_codes_10_17_25_require_resubscribe_and_no_others() {
        let terminal: Vec<u32> = (0..40)
            .filter(|c| WsErrorCode::from_code(*c).requires_resubscribe())
            .collect();
        assert_eq!(terminal, vec![10, 17, 25]);
        assert_eq!(WsErrorCode::from_code(21), WsErrorCode::ShardValidation(21));
        assert_eq!(WsErrorCode::from_code(99), WsErrorCode::Unknown(99));
    }
}

//! Bearer-token check for every request that changes something.
//!
//! Reads (GET, HEAD, OPTIONS) are open: the API binds to loopback by default and
//! the configuration refuses a non-loopback address without a token. Anything
//! else needs `Authorization: Bearer <DOUBLETIME_API_TOKEN>`; with no token
//! configured the API is read-only. Tokens are compared in constant time, and
//! neither the expected nor the offered token is ever echoed or logged.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{ApiError, ApiState};

pub async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let expected = &state.host.config.api.token;
    if expected.is_empty() {
        return ApiError::unauthorized(
            "the API is read-only: set DOUBLETIME_API_TOKEN to enable changes",
        )
        .into_response();
    }
    let offered = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match offered {
        Some(token) if tokens_match(token, expected.expose()) => next.run(req).await,
        Some(_) => ApiError::unauthorized("wrong bearer token").into_response(),
        None => ApiError::unauthorized("this request needs Authorization: Bearer <token>")
            .into_response(),
    }
}

/// Constant time in the tokens' contents and lengths: both are hashed to 32
/// bytes first, then every byte is compared.
fn tokens_match(offered: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(offered), Sha256::digest(expected));
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Declares the bearer scheme in the OpenAPI document.
pub struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match("s3cret", "s3cret"));
        assert!(!tokens_match("s3cre", "s3cret"));
        assert!(!tokens_match("s3cret!", "s3cret"));
        assert!(!tokens_match("", "s3cret"));
    }
}

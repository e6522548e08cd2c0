//! What the two REST clients share: one pooled HTTP client each, bounded
//! exponential backoff, and safe path building.
//!
//! Neither venue sends `Retry-After` reliably (Kalshi's 429 has none, §1.7),
//! so the delay doubles from `base_delay` up to `max_delay`, with up to 25 %
//! jitter so that two clients throttled together do not retry in lockstep.

use std::time::Duration;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based); a venue's hint wins
    /// when it is longer.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        use rand::Rng;
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let jitter = exp.mul_f64(rand::thread_rng().gen_range(0.0..0.25));
        (exp + jitter).max(hint.unwrap_or_default())
    }
}

/// A pooled client with bounded timeouts: an order request must not hang an
/// arbitrage leg forever.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.without_url().to_string())
}

/// Splits a base URL into the URL to prefix requests with (no trailing `/`)
/// and its path, which both venues include in what they sign (§1.2, §2.5).
pub fn split_base(base_url: &str) -> Result<(String, String), String> {
    let url = reqwest::Url::parse(base_url.trim())
        .map_err(|e| format!("base URL '{base_url}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("base URL '{base_url}' is not http(s)"));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("base URL must not carry a query or credentials".into());
    }
    let prefix = url.path().trim_end_matches('/').to_string();
    let base = url.as_str().trim_end_matches('/').to_string();
    Ok((base, prefix))
}

/// One path segment with everything but RFC 3986 unreserved characters
/// percent-encoded, so an id can never add a segment or a query.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reqwest error as text without the URL, and whether the request left.
pub fn describe(e: &reqwest::Error) -> (String, bool) {
    let sent = !(e.is_connect() || e.is_builder());
    let text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        let mut s = e.to_string();
        // `to_string` may carry the URL; the variants above never do.
        if let Some(i) = s.find(" for url") {
            s.truncate(i);
        }
        s
    };
    (text, sent)
}

/// What came back: the status, the `Retry-After` header, and the body text (or
/// why it could not be read — the request reached the venue either way).
pub async fn read(resp: reqwest::Response) -> (u16, Option<String>, Result<String, String>) {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.map_err(|e| describe(&e).0);
    (status, retry_after, text)
}

/// Which failures a request may be sent again after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads and cancels, harmless twice: throttling, 5xx, transport failures.
    Idempotent,
    /// Order creation: only outcomes proving the venue did not take the order
    /// (throttled, or the request never left).
    NotAccepted,
}

/// One request's final outcome, as both venue clients read it.
#[derive(Debug)]
pub enum Sent {
    /// The venue answered: status, `Retry-After`, body.
    Answer {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// The venue answered but the body could not be read.
    Unreadable { status: u16, detail: String },
    /// No answer; `sent` says whether the request may have reached the venue.
    Failed { message: String, sent: bool },
}

/// Which connections a request goes out on.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// The client's pool (reqwest): every request but order placement.
    Pool(&'a reqwest::Client),
    /// The venue's order line: written from the caller's task.
    Line(&'a super::order_line::OrderLine),
}

impl<'a> Via<'a> {
    /// The order line for order placement, the pool for everything else.
    pub fn choose(
        placing: bool,
        pool: &'a reqwest::Client,
        line: &'a super::order_line::OrderLine,
    ) -> Via<'a> {
        if placing {
            Via::Line(line)
        } else {
            Via::Pool(pool)
        }
    }
}

/// One request, as both transports need it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub via: Via<'a>,
    pub method: &'a reqwest::Method,
    /// The whole URL (for the pool).
    pub url: &'a str,
    /// The path with the base URL's prefix, and the query (for the line).
    pub target: &'a str,
    /// A JSON body.
    pub body: Option<&'a str>,
}

/// Header names and values to send (signatures, keys).
pub type Headers = Vec<(&'static str, String)>;

/// Sends `call` with the headers `headers` makes until its outcome is final,
/// making them again for every attempt (signatures carry a fresh
/// timestamp). A status `throttled` recognises is sent again after the
/// venue's hint (if it gives one) or the policy's backoff; so is a 5xx, an
/// unreadable answer or a lost one when `retry` allows, and a request that
/// never left, always. At most `policy.max_retries` times.
pub async fn send_with_retries<E>(
    venue: &str,
    policy: &RetryPolicy,
    retry: Retry,
    call: Call<'_>,
    throttled: impl Fn(u16, Option<&str>) -> Option<Option<Duration>>,
    mut headers: impl FnMut() -> Result<Headers, E>,
) -> Result<Sent, E> {
    let mut attempt = 0;
    loop {
        let headers = headers()?;
        let outcome = match call.via {
            Via::Pool(client) => send_pooled(client, &call, &headers).await,
            Via::Line(line) => {
                line.send(&super::order_line::Request {
                    method: call.method.as_str(),
                    target: call.target,
                    headers: &headers,
                    body: call.body,
                })
                .await
            }
        };
        let idempotent = retry == Retry::Idempotent;
        let (again, hint) = match &outcome {
            Sent::Answer {
                status,
                retry_after,
                ..
            } => match throttled(*status, retry_after.as_deref()) {
                Some(hint) => (true, hint),
                None => (idempotent && *status >= 500, None),
            },
            Sent::Unreadable { .. } => (idempotent, None),
            Sent::Failed { sent: false, .. } => (true, None),
            Sent::Failed { sent: true, .. } => (idempotent, None),
        };
        if !again || attempt >= policy.max_retries {
            return Ok(outcome);
        }
        let wait = policy.delay(attempt, hint);
        tracing::debug!(venue, attempt, ?wait, "request retried");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// One attempt through reqwest's pool.
async fn send_pooled(client: &reqwest::Client, call: &Call<'_>, headers: &Headers) -> Sent {
    let mut req = client.request(call.method.clone(), call.url);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    if let Some(b) = call.body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.to_owned());
    }
    match req.send().await {
        Ok(resp) => match read(resp).await {
            (status, retry_after, Ok(body)) => Sent::Answer {
                status,
                retry_after,
                body,
            },
            (status, _, Err(detail)) => Sent::Unreadable { status, detail },
        },
        Err(e) => {
            let (message, sent) = describe(&e);
            Sent::Failed { message, sent }
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Pages followed at most, so a venue that keeps returning cursors cannot loop us.
pub const MAX_PAGES: usize = 100;

/// Every item of a cursor-paged listing. `page(cursor)` fetches one page (the
/// first with an empty cursor) and returns its items and the next cursor. The
/// listing ends at an empty cursor, at one of the venue's `ends` markers, at a
/// cursor that repeats, or after [`MAX_PAGES`].
pub async fn all_pages<T, E, Fut>(
    ends: &[&str],
    mut page: impl FnMut(String) -> Fut,
) -> Result<Vec<T>, E>
where
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), E>>,
{
    let mut out = Vec::new();
    let mut cursor = String::new();
    for _ in 0..MAX_PAGES {
        let (items, next) = page(cursor.clone()).await?;
        out.extend(items);
        match next {
            Some(c) if !c.is_empty() && !ends.contains(&c.as_str()) && c != cursor => cursor = c,
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback venue answering `statuses` in turn (then 200), counting hits.
    async fn venue(statuses: Vec<u16>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/x",
            axum::routing::any(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let status = statuses.get(n).copied().unwrap_or(200);
                async move { (axum::http::StatusCode::from_u16(status).unwrap(), "body") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    /// The final status of a POST to `url` (`http://addr/x`) with `retry`,
    /// through the pool or through an order line.
    async fn status_of(url: &str, retry: Retry, line: bool) -> u16 {
        let http = reqwest::Client::new();
        let order_line = super::super::order_line::OrderLine::new(&url[..url.len() - 2]).unwrap();
        let call = Call {
            via: if line {
                Via::Line(&order_line)
            } else {
                Via::Pool(&http)
            },
            method: &reqwest::Method::POST,
            url,
            target: "/x",
            body: Some("{}"),
        };
        let throttled = |s: u16, _: Option<&str>| (s == 429).then_some(None);
        match send_with_retries("test", &quick(), retry, call, throttled, || {
            Ok::<_, ()>(Headers::new())
        })
        .await
        .unwrap()
        {
            Sent::Answer { status, .. } => status,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_for_any_request_a_5xx_only_for_an_idempotent_one() {
        use std::sync::atomic::Ordering;
        for line in [false, true] {
            for retry in [Retry::Idempotent, Retry::NotAccepted] {
                let (url, hits) = venue(vec![429, 429]).await;
                assert_eq!(status_of(&url, retry, line).await, 200);
                assert_eq!(hits.load(Ordering::SeqCst), 3, "{retry:?} line {line}");
            }
            let (url, hits) = venue(vec![503]).await;
            assert_eq!(status_of(&url, Retry::Idempotent, line).await, 200);
            assert_eq!(hits.load(Ordering::SeqCst), 2);
            // An order answered 5xx may have been taken: never sent again.
            let (url, hits) = venue(vec![503]).await;
            assert_eq!(status_of(&url, Retry::NotAccepted, line).await, 503);
            assert_eq!(hits.load(Ordering::SeqCst), 1);
            // Retries stop at the policy's count: the last answer stands.
            let (url, hits) = venue(vec![429; 10]).await;
            assert_eq!(status_of(&url, Retry::NotAccepted, line).await, 429);
            assert_eq!(hits.load(Ordering::SeqCst), 4);
        }
    }

    #[tokio::test]
    async fn a_request_that_never_left_is_retried_even_for_an_order() {
        let http = reqwest::Client::new();
        // Nothing listens on port 1: the connection is refused, nothing was sent.
        let order_line = super::super::order_line::OrderLine::new("http://127.0.0.1:1").unwrap();
        for via in [Via::Pool(&http), Via::Line(&order_line)] {
            let mut attempts = 0;
            let call = Call {
                via,
                method: &reqwest::Method::POST,
                url: "http://127.0.0.1:1/x",
                target: "/x",
                body: None,
            };
            let sent = send_with_retries(
                "test",
                &quick(),
                Retry::NotAccepted,
                call,
                |_, _| None,
                || {
                    attempts += 1;
                    Ok::<_, ()>(Headers::new())
                },
            )
            .await
            .unwrap();
            assert!(matches!(sent, Sent::Failed { sent: false, .. }), "{sent:?}");
            assert_eq!(attempts, 4);
        }
    }

    #[tokio::test]
    async fn paging_stops_at_the_end_a_repeated_cursor_or_the_page_limit() {
        // Three pages, then the venue's end marker.
        let pages = |cursor: String| async move {
            let n: u32 = cursor.parse().unwrap_or(0);
            let next = if n < 2 {
                (n + 1).to_string()
            } else {
                "END".into()
            };
            Ok::<_, ()>((vec![n], Some(next)))
        };
        assert_eq!(all_pages(&["END"], pages).await, Ok(vec![0, 1, 2]));
        // A venue that answers the same cursor again is not followed.
        let stuck = |_c: String| async { Ok::<_, ()>((vec![7], Some("same".to_string()))) };
        assert_eq!(all_pages(&[], stuck).await, Ok(vec![7, 7]));
        // One that never ends is cut at MAX_PAGES.
        let endless = |c: String| async move { Ok::<_, ()>((vec![()], Some(format!("{c}x")))) };
        assert_eq!(all_pages(&[], endless).await.unwrap().len(), MAX_PAGES);
        // An error on any page is the answer.
        let failing = |c: String| async move {
            if c.is_empty() {
                Ok((vec![1], Some("a".to_string())))
            } else {
                Err("down")
            }
        };
        assert_eq!(all_pages(&[], failing).await, Err("down"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_longer_hints() {
        let p = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        for (attempt, lo) in [(0, 100), (1, 200), (2, 400), (3, 500), (30, 500)] {
            let d = p.delay(attempt, None);
            assert!(d >= Duration::from_millis(lo), "{attempt}: {d:?}");
            assert!(d <= Duration::from_millis(lo * 5 / 4), "{attempt}: {d:?}");
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn bases_and_segments() {
        assert_eq!(
            split_base("http://127.0.0.1:5/trade-api/v2/").unwrap(),
            (
                "http://127.0.0.1:5/trade-api/v2".to_string(),
                "/trade-api/v2".to_string()
            )
        );
        assert_eq!(
            split_base("https://clob.polymarket.com").unwrap().1,
            String::new()
        );
        assert!(split_base("ftp://x").is_err());
        assert!(split_base("https://u:p@x").is_err());
        assert_eq!(segment("KX-FED.26"), "KX-FED.26");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }
}

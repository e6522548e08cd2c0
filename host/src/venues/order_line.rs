//! The order line: keep-alive HTTP/1.1 connections to one venue on which an
//! order request is written by the order's own task.
//!
//! Through reqwest, a request is handed to a connection task that writes it
//! later. On two shared cores that hop can wait a scheduler slice
//! (BENCHMARKS.md), and handing over the second leg's request pushed the
//! first one's task to another worker. Here the caller's first poll formats
//! the request into one buffer and writes it to an open connection, then
//! reads the answer in the same task. Only order placement takes this path;
//! everything else stays on the venue client's pool.
//!
//! One connection is kept open and checked from a background task, so an
//! order does not pay a TCP (and TLS) handshake; more are opened when
//! orders overlap and kept up to [`MAX_IDLE`].

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::http::Sent;

/// Idle connections kept at most; more are closed when answered.
pub const MAX_IDLE: usize = 8;
/// Open connections the background task keeps ready.
const KEEP_OPEN: usize = 1;
/// How often the background task looks at the idle connections.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// An answer's head larger than this is refused.
const MAX_HEAD: usize = 64 * 1024;
/// An answer's body larger than this is refused.
const MAX_BODY: usize = 16 * 1024 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    io: Box<dyn Io>,
    /// Bytes read past the last answer (none on a well-behaved connection).
    buf: Vec<u8>,
}

struct Inner {
    host: String,
    port: u16,
    /// The `Host` header: the authority as the base URL spells it.
    authority: String,
    tls: Option<tokio_native_tls::TlsConnector>,
    idle: Mutex<Vec<Conn>>,
    connect_timeout: Duration,
    timeout: Duration,
}

/// Keep-alive connections to one venue's REST origin, for its order requests.
#[derive(Clone)]
pub struct OrderLine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OrderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderLine")
            .field("authority", &self.inner.authority)
            .field("tls", &self.inner.tls.is_some())
            .finish()
    }
}

/// A request's parts; the target is the path (with the base URL's prefix) and query.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(&'static str, String)],
    pub body: Option<&'a str>,
}

impl OrderLine {
    /// A line to `base_url`'s origin, with the venue client's timeouts. Inside
    /// a runtime, a task keeps a connection open until the line is dropped.
    pub fn new(base_url: &str) -> Result<OrderLine, String> {
        Self::with_tls(base_url, || {
            tokio_native_tls::native_tls::TlsConnector::new().map_err(|e| format!("TLS: {e}"))
        })
    }

    /// [`Self::new`] with the TLS settings `tls` makes (tests trust their
    /// own certificate this way).
    fn with_tls(
        base_url: &str,
        tls: impl FnOnce() -> Result<tokio_native_tls::native_tls::TlsConnector, String>,
    ) -> Result<OrderLine, String> {
        let url = reqwest::Url::parse(base_url.trim())
            .map_err(|e| format!("base URL '{base_url}' is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some(tokio_native_tls::TlsConnector::from(tls()?)),
            _ => return Err(format!("base URL '{base_url}' is not http(s)")),
        };
        let host = url
            .host_str()
            .ok_or_else(|| format!("base URL '{base_url}' has no host"))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("base URL '{base_url}' has no port"))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let line = OrderLine {
            inner: Arc::new(Inner {
                // An IPv6 literal is bracketed in the URL, not in a socket address.
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
                authority,
                tls,
                idle: Mutex::new(Vec::new()),
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(15),
            }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(keep_open(Arc::downgrade(&line.inner)));
        }
        Ok(line)
    }

    /// Open connections waiting for a request (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Sends `req` once and reads the answer, on an open connection if one is
    /// idle (else a new one). The request is written during the first poll.
    pub async fn send(&self, req: &Request<'_>) -> Sent {
        let head = match request_bytes(&self.inner.authority, req) {
            Ok(bytes) => bytes,
            Err(message) => {
                return Sent::Failed {
                    message,
                    sent: false,
                };
            }
        };
        let inner = &self.inner;
        let (mut conn, reused) = match take_open(inner) {
            Some(conn) => (conn, true),
            None => match connect(inner).await {
                Ok(conn) => (conn, false),
                Err(message) => {
                    return Sent::Failed {
                        message,
                        sent: false,
                    };
                }
            },
        };
        match tokio::time::timeout(inner.timeout, exchange(&mut conn, &head)).await {
            Ok(Ok((answer, keep))) => {
                if keep {
                    let mut idle = inner.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.len() < MAX_IDLE {
                        idle.push(conn);
                    }
                }
                answer
            }
            Ok(Err(Lost { message, written })) => Sent::Failed {
                // A reused connection the venue had closed fails before
                // anything is written; after a write the order may be in.
                message: if reused && !written {
                    format!("{message} (an idle connection had closed)")
                } else {
                    message
                },
                sent: written,
            },
            Err(_) => Sent::Failed {
                message: "timed out".into(),
                sent: true,
            },
        }
    }
}

/// The request head and body in one buffer, for one `write`. Header values
/// and the target are ours, but a CR or LF in one would split the request.
fn request_bytes(authority: &str, req: &Request<'_>) -> Result<Vec<u8>, String> {
    let unsafe_text = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    if unsafe_text(req.method)
        || unsafe_text(req.target)
        || req
            .headers
            .iter()
            .any(|(n, v)| unsafe_text(n) || unsafe_text(v))
    {
        return Err("a request line or header holds a line break".into());
    }
    let body = req.body.unwrap_or("");
    let mut out = Vec::with_capacity(256 + body.len());
    use std::io::Write;
    let _ = write!(
        out,
        "{} {} HTTP/1.1\r\nhost: {authority}\r\n",
        req.method, req.target
    );
    for (name, value) in req.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if req.body.is_some() {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    let _ = write!(out, "content-length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body.as_bytes());
    Ok(out)
}

/// An idle connection still open, dropping the ones the venue closed.
fn take_open(inner: &Inner) -> Option<Conn> {
    let mut idle = inner.idle.lock().unwrap_or_else(|e| e.into_inner());
    while let Some(mut conn) = idle.pop() {
        if still_open(&mut conn) {
            return Some(conn);
        }
    }
    None
}

/// Whether an idle connection is open: nothing to read yet. A close (EOF),
/// an error or unasked-for bytes all retire it.
fn still_open(conn: &mut Conn) -> bool {
    if !conn.buf.is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    matches!(
        Pin::new(&mut conn.io).poll_read(&mut cx, &mut buf),
        Poll::Pending
    )
}

/// A new connection (TLS for `https`), within the connect timeout.
async fn connect(inner: &Inner) -> Result<Conn, String> {
    tokio::time::timeout(inner.connect_timeout, open(inner))
        .await
        .unwrap_or_else(|_| Err("connection failed: timed out".into()))
}

async fn open(inner: &Inner) -> Result<Conn, String> {
    let tcp = TcpStream::connect((inner.host.as_str(), inner.port))
        .await
        .map_err(|e| format!("connection failed: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match &inner.tls {
        None => Box::new(tcp),
        Some(tls) => Box::new(
            tls.connect(&inner.host, tcp)
                .await
                .map_err(|e| format!("connection failed: TLS: {e}"))?,
        ),
    };
    Ok(Conn {
        io,
        buf: Vec::with_capacity(8 * 1024),
    })
}

/// Keeps [`KEEP_OPEN`] connections idle and open while the line lives.
async fn keep_open(line: Weak<Inner>) {
    loop {
        let Some(inner) = line.upgrade() else { return };
        let open = {
            let mut idle = inner.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain_mut(still_open);
            idle.len()
        };
        for _ in open..KEEP_OPEN {
            match connect(&inner).await {
                Ok(conn) => inner
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn),
                Err(e) => {
                    tracing::debug!(venue = %inner.authority, error = %e, "order line: could not open a connection ahead")
                }
            }
        }
        drop(inner);
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Why an exchange failed, and whether any of the request was written.
struct Lost {
    message: String,
    written: bool,
}

/// Writes `request`, reads one answer. `Ok((answer, keep))`: `keep` when the
/// connection can carry the next request.
async fn exchange(conn: &mut Conn, request: &[u8]) -> Result<(Sent, bool), Lost> {
    let mut written = 0;
    while written < request.len() {
        match conn.io.write(&request[written..]).await {
            Ok(0) => {
                return Err(Lost {
                    message: "connection closed while writing".into(),
                    written: written > 0,
                });
            }
            Ok(n) => written += n,
            Err(e) => {
                return Err(Lost {
                    message: format!("write failed: {}", e.kind()),
                    written: written > 0,
                });
            }
        }
    }
    if let Err(e) = conn.io.flush().await {
        return Err(Lost {
            message: format!("write failed: {}", e.kind()),
            written: true,
        });
    }
    read_answer(conn).await.map_err(|message| Lost {
        message,
        written: true,
    })
}

/// Reads bytes into the connection's buffer; `Ok(false)` at the end of the stream.
async fn fill(conn: &mut Conn) -> Result<bool, String> {
    conn.buf.reserve(8 * 1024);
    match conn.io.read_buf(&mut conn.buf).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(format!("read failed: {}", e.kind())),
    }
}

/// How an answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// Until the venue closes the connection.
    Close,
}

/// An answer's head, taken off the connection's buffer.
struct Head {
    status: u16,
    retry_after: Option<String>,
    framing: Framing,
    /// The venue keeps the connection open after this answer.
    keep: bool,
}

/// The next final (non-1xx) head.
async fn read_head(conn: &mut Conn) -> Result<Head, String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(&conn.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if conn.buf.len() > MAX_HEAD => {
                return Err("answer head too large".into());
            }
            Ok(httparse::Status::Partial) => {
                if !fill(conn).await? {
                    return Err("connection closed before the answer".into());
                }
                continue;
            }
            Err(e) => return Err(format!("unreadable answer: {e}")),
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) {
            conn.buf.drain(..len);
            continue;
        }
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
        };
        let retry_after = header("retry-after").map(str::to_string);
        let chunked = header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"));
        let close = header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("close"))
            || resp.version == Some(0);
        let framing = if matches!(status, 204 | 304) {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(v) = header("content-length") {
            Framing::Length(v.parse().map_err(|_| format!("bad content-length '{v}'"))?)
        } else {
            Framing::Close
        };
        conn.buf.drain(..len);
        return Ok(Head {
            status,
            retry_after,
            framing,
            keep: !close,
        });
    }
}

/// One answer: its final head, and the body as the head frames it.
async fn read_answer(conn: &mut Conn) -> Result<(Sent, bool), String> {
    let Head {
        status,
        retry_after,
        framing,
        keep,
    } = read_head(conn).await?;
    // A body that cannot be read is an unreadable answer, not a lost one:
    // the head came, so the venue has the request.
    let body = match read_body(conn, &framing).await {
        Ok(body) => body,
        Err(detail) => return Ok((Sent::Unreadable { status, detail }, false)),
    };
    let keep = keep && !matches!(framing, Framing::Close) && conn.buf.is_empty();
    Ok(match String::from_utf8(body) {
        Ok(body) => (
            Sent::Answer {
                status,
                retry_after,
                body,
            },
            keep,
        ),
        Err(_) => (
            Sent::Unreadable {
                status,
                detail: "body is not UTF-8".into(),
            },
            keep,
        ),
    })
}

/// The body `framing` delimits, taken off the connection's buffer.
async fn read_body(conn: &mut Conn, framing: &Framing) -> Result<Vec<u8>, String> {
    let closed = || "connection closed inside the body".to_string();
    match *framing {
        Framing::Length(n) if n > MAX_BODY => Err("body too large".into()),
        Framing::Length(n) => {
            while conn.buf.len() < n {
                if !fill(conn).await? {
                    return Err(closed());
                }
            }
            Ok(conn.buf.drain(..n).collect())
        }
        Framing::Chunked => loop {
            match dechunk(&conn.buf)? {
                Some((body, used)) => {
                    conn.buf.drain(..used);
                    return Ok(body);
                }
                None if conn.buf.len() > MAX_BODY => return Err("body too large".into()),
                None => {
                    if !fill(conn).await? {
                        return Err(closed());
                    }
                }
            }
        },
        Framing::Close => {
            while fill(conn).await? {
                if conn.buf.len() > MAX_BODY {
                    return Err("body too large".into());
                }
            }
            Ok(std::mem::take(&mut conn.buf))
        }
    }
}

/// A complete chunked body at the start of `buf`: the body and the bytes it
/// took, or `None` while more are needed. Trailers are read and dropped.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&buf[at..]) else {
            return Ok(None);
        };
        let line =
            std::str::from_utf8(&buf[at..at + eol]).map_err(|_| "bad chunk size".to_string())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size".to_string())?;
        if size > MAX_BODY || body.len() + size > MAX_BODY {
            return Err("body too large".into());
        }
        at += eol + 2;
        if size == 0 {
            // Trailers, each ending in CRLF, then an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at += size + 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    fn post<'a>(headers: &'a [(&'static str, String)], body: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            target: "/v2/order?x=1",
            headers,
            body: Some(body),
        }
    }

    /// Reads one request (head and content-length body) off `reader`; `None` at EOF.
    async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
        reader: &mut R,
    ) -> Option<(String, String)> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await.ok()?;
        Some((head, String::from_utf8(body).unwrap()))
    }

    /// A venue answering each request on a connection with the next of
    /// `answers` (raw bytes), counting connections; the heads it got go to `seen`.
    async fn venue(
        answers: Vec<&'static str>,
    ) -> (
        String,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    ) {
        venue_over(answers, None).await
    }

    /// The test certificate's files (`host/testdata/loopback-tls`).
    const TLS_CERT: &str = include_str!("../../testdata/loopback-tls/cert.pem");
    const TLS_KEY: &str = include_str!("../../testdata/loopback-tls/key.pem");

    /// [`venue`], over TLS with the test certificate when `tls`.
    async fn venue_over(
        answers: Vec<&'static str>,
        tls: Option<tokio_native_tls::TlsAcceptor>,
    ) -> (
        String,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/v2", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
        let count = connections.clone();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (answers, seen_tx, tls) = (answers.clone(), seen_tx.clone(), tls.clone());
                tokio::spawn(async move {
                    let socket: Box<dyn Io> = match tls {
                        None => Box::new(socket),
                        // A handshake the client refused ends the connection.
                        Some(tls) => match tls.accept(socket).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                    };
                    let (r, mut w) = tokio::io::split(socket);
                    let mut r = tokio::io::BufReader::new(r);
                    while let Some(req) = read_request(&mut r).await {
                        let _ = seen_tx.send(req);
                        let Some(answer) = answers.lock().unwrap().next() else {
                            return;
                        };
                        if w.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        if answer.contains("connection: close") {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections, seen)
    }

    fn answer(sent: Sent) -> (u16, String) {
        match sent {
            Sent::Answer { status, body, .. } => (status, body),
            other => panic!("{other:?}"),
        }
    }

    /// Waits (bounded) until the line's background task holds an open connection.
    async fn until_idle(line: &OrderLine, n: usize) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while line.idle() < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the line opened no connection ahead");
    }

    #[tokio::test]
    async fn requests_reuse_one_open_connection_and_read_both_framings() {
        reuse_one_connection_and_read_both_framings(false).await;
    }

    #[tokio::test]
    async fn over_https_requests_reuse_one_verified_connection() {
        reuse_one_connection_and_read_both_framings(true).await;
    }

    /// Three exchanges on one connection, plain or TLS with the test certificate.
    async fn reuse_one_connection_and_read_both_framings(tls: bool) {
        let answers = vec![
            // An interim 1xx head first: skipped, the final answer read.
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
            "HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"e\"\r\n6;x=y\r\n:\"no\"}\r\n0\r\nz: 1\r\n\r\n",
            "HTTP/1.1 429 Too Many\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n",
        ];
        let (url, connections, mut seen) = venue_over(answers, tls.then(tls_acceptor)).await;
        let line = if tls {
            assert!(url.starts_with("https://127.0.0.1:"), "{url}");
            trusting_line(&url)
        } else {
            OrderLine::new(&url).unwrap()
        };
        until_idle(&line, 1).await;
        let headers = [("kalshi-access-key", "k".to_string())];
        assert_eq!(
            answer(line.send(&post(&headers, "{\"a\":1}")).await),
            (201, "{\"ok\":true}".into())
        );
        assert_eq!(
            answer(line.send(&post(&headers, "{}")).await),
            (400, "{\"e\":\"no\"}".into())
        );
        match line.send(&post(&headers, "{}")).await {
            Sent::Answer {
                status: 429,
                retry_after,
                ..
            } => assert_eq!(retry_after.as_deref(), Some("2")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "one keep-alive connection"
        );
        let (head, body) = seen.recv().await.unwrap();
        assert!(
            head.starts_with("POST /v2/order?x=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!(
                "host: {}\r\n",
                url.split("://").nth(1).unwrap().trim_end_matches("/v2")
            )),
            "{head}"
        );
        assert!(head.contains("kalshi-access-key: k\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert_eq!(body, "{\"a\":1}");
    }

    fn tls_acceptor() -> tokio_native_tls::TlsAcceptor {
        use tokio_native_tls::native_tls::{Identity, TlsAcceptor};
        let identity = Identity::from_pkcs8(TLS_CERT.as_bytes(), TLS_KEY.as_bytes()).unwrap();
        TlsAcceptor::new(identity).unwrap().into()
    }

    /// A line that trusts the test certificate, as a venue's CA.
    fn trusting_line(url: &str) -> OrderLine {
        use tokio_native_tls::native_tls::{Certificate, TlsConnector};
        OrderLine::with_tls(url, || {
            let cert = Certificate::from_pem(TLS_CERT.as_bytes()).unwrap();
            TlsConnector::builder()
                .add_root_certificate(cert)
                .build()
                .map_err(|e| format!("TLS: {e}"))
        })
        .unwrap()
    }

    #[tokio::test]
    async fn over_https_a_certificate_no_root_vouches_for_is_refused_unsent() {
        let (url, connections, mut seen) = venue_over(
            vec!["HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"],
            Some(tls_acceptor()),
        )
        .await;
        // The system's roots only: the self-signed certificate is not trusted.
        let line = OrderLine::new(&url).unwrap();
        match line.send(&post(&[], "{}")).await {
            Sent::Failed { sent, message } => {
                assert!(!sent, "nothing may leave before the handshake");
                assert!(message.contains("TLS"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(connections.load(Ordering::SeqCst) >= 1, "it did try");
        assert_eq!(line.idle(), 0);
        assert!(seen.try_recv().is_err(), "no request reached the venue");
    }

    #[tokio::test]
    async fn a_closed_connection_is_replaced_and_a_close_answer_is_not_reused() {
        let (url, connections, _seen) = venue(vec![
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi",
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nho",
        ])
        .await;
        let line = OrderLine::new(&url).unwrap();
        until_idle(&line, 1).await;
        assert_eq!(answer(line.send(&post(&[], "")).await).1, "hi");
        // The venue closed it: not kept; the next request opens another.
        assert_eq!(line.idle(), 0);
        assert_eq!(answer(line.send(&post(&[], "")).await).1, "ho");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_the_venue_closed_is_never_written_to() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let line = OrderLine::new(&url).unwrap();
        // The first connection is closed at once; the second answers.
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut r = tokio::io::BufReader::new(socket);
            let req = read_request(&mut r).await.unwrap();
            r.get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            req
        });
        // Until the close is seen, the idle connection still looks open.
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let closed = {
                    let mut idle = line.inner.idle.lock().unwrap();
                    idle.len() == 1 && !still_open(&mut idle[0])
                };
                if closed {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(answer(line.send(&post(&[], "{}")).await).0, 200);
        let (_, body) = server.await.unwrap();
        assert_eq!(body, "{}");
    }

    #[tokio::test]
    async fn failures_say_whether_the_request_left() {
        // Nothing listens: not sent.
        let line = OrderLine::new("http://127.0.0.1:1").unwrap();
        assert!(matches!(
            line.send(&post(&[], "{}")).await,
            Sent::Failed { sent: false, .. }
        ));
        // A line break in a header value is refused before anything is sent.
        let (url, connections, _seen) = venue(vec![]).await;
        let line = OrderLine::new(&url).unwrap();
        let evil = [("x", "a\r\nx-admin: 1".to_string())];
        match line.send(&post(&evil, "{}")).await {
            Sent::Failed {
                sent: false,
                message,
            } => assert!(message.contains("line break")),
            other => panic!("{other:?}"),
        }
        // The venue reads the request and closes without answering: sent.
        match line.send(&post(&[], "{}")).await {
            Sent::Failed { sent: true, .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(connections.load(Ordering::SeqCst) >= 1);
        // A head that is not HTTP: sent, and the message says why.
        let (url, _, _seen) = venue(vec!["SMTP ready\r\n\r\n"]).await;
        let line = OrderLine::new(&url).unwrap();
        match line.send(&post(&[], "{}")).await {
            Sent::Failed {
                sent: true,
                message,
            } => assert!(message.contains("unreadable"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chunked_bodies_decode_only_when_complete() {
        let full = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT";
        assert_eq!(
            dechunk(full).unwrap(),
            Some((b"abcde".to_vec(), full.len() - 4))
        );
        for cut in 0..full.len() - 4 {
            assert_eq!(dechunk(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(dechunk(b"zz\r\n").is_err());
        assert!(dechunk(b"3\r\nabcX\r\n").is_err());
        assert!(dechunk(b"ffffffffff\r\n").is_err());
    }
}

//! Order-endpoint signatures made ahead of time.
//!
//! Kalshi signs `timestamp + METHOD + path` only — never the body (§1.2) — so
//! the ~2.5 ms RSA-PSS signature of `POST /portfolio/events/orders` can be
//! made before the order exists. A background thread keeps a few fresh ones;
//! each is used once and none older than `max_age` (the venue checks the
//! timestamp against its clock), so an order goes out without signing on its
//! path. When none is ready the request signs inline, as before. The signing
//! runs on a thread of its own at the lowest priority ([`background`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::auth::{AuthError, AuthHeaders, KalshiSigner};
use crate::venues::background::{self, Nudge};

pub struct Presigner {
    /// The signed method, e.g. `POST`.
    pub method: &'static str,
    /// The signed path, e.g. `/trade-api/v2/portfolio/events/orders`.
    pub path: String,
    keep: usize,
    max_age: Duration,
    ready: Mutex<VecDeque<(Instant, AuthHeaders)>>,
    used: Arc<Nudge>,
    refilled: Notify,
    /// Asked for a signature and none was ready: a request signed inline.
    misses: AtomicU64,
}

impl Drop for Presigner {
    fn drop(&mut self) {
        self.used.close();
    }
}

impl Presigner {
    /// Starts keeping `keep` signatures for `method path`, each at most
    /// `max_age` old. The signing thread ends with the presigner.
    pub fn start(
        signer: Arc<KalshiSigner>,
        method: &'static str,
        path: String,
        keep: usize,
        max_age: Duration,
    ) -> Arc<Self> {
        let me = Arc::new(Presigner {
            method,
            path,
            keep: keep.max(1),
            max_age,
            ready: Mutex::new(VecDeque::new()),
            used: Arc::new(Nudge::default()),
            refilled: Notify::new(),
            misses: AtomicU64::new(0),
        });
        let taken = me.used.clone();
        let refill = move |p: &Presigner| p.refill(|at_ms| signer.sign(at_ms, p.method, &p.path));
        if let Err(e) = background::keep_topped_up("kalshi-presign", &me, taken, refill) {
            tracing::warn!(error = %e, "no Kalshi presigning thread; orders sign inline");
        }
        me
    }

    /// A fresh, unused signature, if one is ready.
    pub fn take(&self) -> Option<AuthHeaders> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        // Newest last: the oldest are dropped first when stale.
        while let Some((at, h)) = ready.pop_back() {
            if at.elapsed() <= self.max_age {
                drop(ready);
                self.used.nudge();
                return Some(h);
            }
        }
        drop(ready);
        self.used.nudge();
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// How often [`Self::take`] found none ready (each a request signed inline).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Returns once `keep` signatures are ready.
    pub async fn filled(&self) {
        loop {
            let refilled = self.refilled.notified();
            if self.ready() >= self.keep {
                return;
            }
            refilled.await;
        }
    }

    /// Signatures ready now (for tests and metrics).
    pub fn ready(&self) -> usize {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        ready
            .iter()
            .filter(|(at, _)| at.elapsed() <= self.max_age)
            .count()
    }

    /// Signatures made less than `renew_after` ago.
    fn fresh(&self, renew_after: Duration) -> usize {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        ready
            .iter()
            .filter(|(at, _)| at.elapsed() < renew_after)
            .count()
    }

    /// Makes up to `keep` signatures to replace those past half their life,
    /// then drops those; returns when to look again. `sign` signs the path
    /// at a Unix time in milliseconds.
    fn refill(&self, mut sign: impl FnMut(u64) -> Result<AuthHeaders, AuthError>) -> Duration {
        // Renewed at half their life, so a taken one always has time left.
        let renew_after = self.max_age / 2;
        // Make before break: the old ones are still valid while their
        // replacements are signed (2.5 ms each, at nice 19), and an order
        // that comes meanwhile takes one instead of signing inline.
        // At most `keep` signatures a round: where they go stale faster than
        // they are made, the thread still waits (and sees the client go).
        for _ in 0..self.keep {
            if self.fresh(renew_after) >= self.keep {
                break;
            }
            // Aged from the timestamp it signs, not from when signing ended:
            // at nice 19 on busy cores that can be much later.
            let (signed_at, at_ms) = (Instant::now(), crate::venues::http::now_ms());
            match sign(at_ms) {
                Ok(h) => {
                    self.ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back((signed_at, h));
                    self.refilled.notify_waiters();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kalshi presigning failed; orders sign inline");
                    break;
                }
            }
        }
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(at, _)| at.elapsed() < renew_after);
        renew_after.max(Duration::from_millis(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Arc<KalshiSigner> {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        Arc::new(KalshiSigner::from_pem("key-id", &pem, std::path::Path::new("test")).unwrap())
    }

    /// The next signature, waiting for the refill task (bounded).
    async fn next(p: &Presigner) -> AuthHeaders {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let refilled = p.refilled.notified();
                if let Some(h) = p.take() {
                    return h;
                }
                refilled.await;
            }
        })
        .await
        .expect("a presigned signature")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signatures_are_ready_used_once_and_verify() {
        let signer = signer();
        let verifier = signer.verifier();
        let path = "/trade-api/v2/portfolio/events/orders".to_string();
        let p = Presigner::start(signer, "POST", path.clone(), 2, Duration::from_secs(10));
        let first = next(&p).await;
        verifier.verify(&first, "POST", &path).unwrap();
        let second = next(&p).await;
        verifier.verify(&second, "POST", &path).unwrap();
        assert_ne!(first, second, "each signature is used once");
    }

    fn headers(signature: &str) -> AuthHeaders {
        AuthHeaders {
            key: "k".into(),
            timestamp: "1".into(),
            signature: signature.into(),
        }
    }

    /// Signatures past half their life are replaced, but stay takeable
    /// while their replacements are signed: an order arriving during a
    /// renewal must not find the stock empty and sign inline (2.5 ms).
    #[test]
    fn old_signatures_stay_usable_until_their_replacements_are_made() {
        // Past half of a 10 s life: due for renewal, still valid.
        let old = Instant::now() - Duration::from_secs(6);
        let p = Presigner {
            method: "POST",
            path: "/x".into(),
            keep: 2,
            max_age: Duration::from_secs(10),
            ready: Mutex::new(VecDeque::from([(old, headers("a")), (old, headers("b"))])),
            used: Arc::new(Nudge::default()),
            refilled: Notify::new(),
            misses: AtomicU64::new(0),
        };
        let mut ready_while_signing = Vec::new();
        let mut made = 0;
        p.refill(|_| {
            ready_while_signing.push(p.ready());
            made += 1;
            Ok(headers(&format!("new{made}")))
        });
        assert_eq!(
            ready_while_signing,
            [2, 3],
            "the old ones stay until replaced"
        );
        assert_eq!(p.ready(), 2, "then the old ones go");
        let mut left = [p.take().unwrap(), p.take().unwrap()].map(|h| h.signature);
        left.sort();
        assert_eq!(left, ["new1", "new2"]);
        // Fresh enough: the next round signs nothing.
        let mut signed = 0;
        p.refill(|_| {
            signed += 1;
            Ok(headers("x"))
        });
        assert_eq!(signed, 2, "both were taken, so both are made again");
        p.refill(|_| panic!("the stock is full and fresh"));
    }

    #[tokio::test]
    async fn a_stale_signature_is_never_handed_out() {
        let p = Presigner {
            method: "POST",
            path: "/x".into(),
            keep: 1,
            max_age: Duration::from_millis(1),
            ready: Mutex::new(VecDeque::from([(
                Instant::now() - Duration::from_secs(1),
                AuthHeaders {
                    key: "k".into(),
                    timestamp: "1".into(),
                    signature: "s".into(),
                },
            )])),
            used: Arc::new(Nudge::default()),
            refilled: Notify::new(),
            misses: AtomicU64::new(0),
        };
        assert!(p.take().is_none());
        assert_eq!(p.misses(), 1, "a miss is counted");
    }
}

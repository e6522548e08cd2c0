//! ECDSA signatures half-made ahead of time.
//!
//! A Polymarket order is signed over its EIP-712 digest, which covers the
//! priced order (§3.3), so unlike Kalshi's (§1.2) it cannot be signed before
//! the order exists. But nearly all of an ECDSA signature does not depend on
//! the message: the nonce `k`, the point `R = k·G` (one scalar multiplication,
//! most of the cost), `r = R.x mod n` and `k⁻¹`. Those are made off the order
//! path and kept; signing an order is then `s = k⁻¹·(z + r·d)`, two scalar
//! multiplications and an addition.
//!
//! Each nonce is random (from the OS), secret and used exactly once: one
//! reused or leaked nonce gives the private key away. A taken one is moved
//! out of the pool and wiped when dropped; `Debug` shows none of them. When
//! none is ready, orders sign with RFC 6979 as before. Nonces are made on a
//! thread of their own at the lowest priority ([`background`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ethers_core::types::H256;
use k256::elliptic_curve::ff::PrimeField;
use k256::elliptic_curve::ops::{MulByGenerator, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::scalar::IsHigh;
use k256::elliptic_curve::zeroize::Zeroize;
use k256::{NonZeroScalar, ProjectivePoint, Scalar, U256};
use tokio::sync::Notify;

use crate::venues::background::{self, Nudge};

/// The message-independent half of one ECDSA signature.
struct Nonce {
    /// `k⁻¹ mod n`.
    k_inv: Scalar,
    /// `R.x mod n`: the signature's `r`.
    r: Scalar,
    /// Whether `R.y` is odd: the recovery id before low-s normalisation.
    y_odd: bool,
}

impl Nonce {
    /// A fresh random nonce, or `None` in the negligible cases Ethereum
    /// cannot express (`r = 0`, or `R.x ≥ n`, whose recovery id needs v > 28).
    fn new() -> Option<Nonce> {
        let mut k = NonZeroScalar::random(&mut rand::rngs::OsRng);
        let big_r = ProjectivePoint::mul_by_generator(&*k).to_affine();
        let x = big_r.x();
        let r = <Scalar as Reduce<U256>>::reduce_bytes(&x);
        let usable = !bool::from(r.is_zero()) && r.to_repr() == x;
        let k_inv: Option<Scalar> = if usable { k.invert().into() } else { None };
        // Only k⁻¹ is kept: k itself is wiped, whichever way this ends.
        k.zeroize();
        Some(Nonce {
            k_inv: k_inv?,
            r,
            y_odd: big_r.y_is_odd().into(),
        })
    }

    /// Finishes the signature of `digest` with private key `d`: `r‖s‖v`,
    /// low-s (as Ethereum contracts require), v ∈ {27, 28}. Consumes the
    /// nonce; `None` only if `s` came out zero (probability 2⁻²⁵⁶).
    fn sign(self, d: &Scalar, digest: H256) -> Option<[u8; 65]> {
        let z = <Scalar as Reduce<U256>>::reduce_bytes(&digest.0.into());
        let mut s = self.k_inv * (z + self.r * d);
        if bool::from(s.is_zero()) {
            return None;
        }
        let mut y_odd = self.y_odd;
        if bool::from(s.is_high()) {
            // (r, n − s) verifies too, with R mirrored: the other parity.
            s = -s;
            y_odd = !y_odd;
        }
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r.to_repr());
        out[32..64].copy_from_slice(&s.to_repr());
        out[64] = 27 + u8::from(y_odd);
        Some(out)
    }
}

impl Drop for Nonce {
    fn drop(&mut self) {
        self.k_inv.zeroize();
        self.r.zeroize();
    }
}

/// A pool of nonces kept full by a background thread.
pub struct Presignatures {
    keep: usize,
    ready: Mutex<Vec<Nonce>>,
    used: Arc<Nudge>,
    refilled: Notify,
}

impl Drop for Presignatures {
    fn drop(&mut self) {
        self.used.close();
    }
}

impl std::fmt::Debug for Presignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presignatures")
            .field("keep", &self.keep)
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl Presignatures {
    /// Starts keeping `keep` nonces ready. The thread that makes them ends
    /// with the pool.
    pub fn start(keep: usize) -> Arc<Self> {
        let me = Arc::new(Self::empty(keep));
        let taken = me.used.clone();
        let refill = |p: &Presignatures| {
            p.fill_now();
            p.refilled.notify_waiters();
            // Nonces do not age: only a take calls for more.
            Duration::from_secs(60)
        };
        if let Err(e) = background::keep_topped_up("polymarket-nonces", &me, taken, refill) {
            tracing::warn!(error = %e, "no Polymarket nonce thread; orders sign with RFC 6979");
        }
        me
    }

    /// A pool no task refills: [`Self::fill_now`] tops it up (benches).
    pub fn unstarted(keep: usize) -> Arc<Self> {
        Arc::new(Self::empty(keep))
    }

    fn empty(keep: usize) -> Self {
        Presignatures {
            keep: keep.max(1),
            ready: Mutex::new(Vec::with_capacity(keep.max(1))),
            used: Arc::new(Nudge::default()),
            refilled: Notify::new(),
        }
    }

    /// Tops the pool up now, on this thread.
    pub fn fill_now(&self) {
        while self.ready() < self.keep {
            if let Some(n) = Nonce::new() {
                self.ready.lock().unwrap_or_else(|e| e.into_inner()).push(n);
            }
        }
    }

    /// Nonces ready now (for tests and metrics).
    pub fn ready(&self) -> usize {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Signs `digest` with `d` using a ready nonce, which leaves the pool for
    /// good; `None` when none is ready.
    pub(crate) fn sign(&self, d: &Scalar, digest: H256) -> Option<[u8; 65]> {
        let nonce = {
            let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            // Copied out and wiped in place first: `pop` alone would leave the
            // used k⁻¹ in the vector's spare capacity, and with its published
            // signature a used k⁻¹ gives the private key away.
            let taken = ready.last_mut().map(|n| {
                let copy = Nonce {
                    k_inv: n.k_inv,
                    r: n.r,
                    y_odd: n.y_odd,
                };
                n.k_inv.zeroize();
                copy
            });
            ready.pop();
            taken
        };
        self.used.nudge();
        nonce?.sign(d, digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethers_core::types::Signature;
    use std::str::FromStr;

    fn key() -> (Scalar, ethers_core::types::Address) {
        let wallet = ethers_signers::LocalWallet::from_str(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        let d = *wallet.signer().as_nonzero_scalar().as_ref();
        (d, ethers_signers::Signer::address(&wallet))
    }

    #[test]
    fn presigned_signatures_recover_to_the_signer_are_low_s_and_never_repeat_r() {
        let (d, address) = key();
        let pool = Presignatures::empty(64);
        pool.fill_now();
        let mut rs = std::collections::HashSet::new();
        let mut parities = [0usize; 2];
        for i in 0..64u8 {
            let digest = H256::from(ethers_core::utils::keccak256([i]));
            let sig = pool.sign(&d, digest).expect("a ready nonce");
            let parsed = Signature::try_from(&sig[..]).unwrap();
            assert_eq!(parsed.recover(digest).unwrap(), address, "signature {i}");
            let s = Scalar::from_repr(<[u8; 32]>::try_from(&sig[32..64]).unwrap().into()).unwrap();
            assert!(!bool::from(s.is_high()), "s is low");
            assert!(rs.insert(sig[..32].to_vec()), "a nonce was used twice");
            parities[usize::from(sig[64] - 27)] += 1;
        }
        // Both recovery ids occur, so the parity flip of low-s is exercised.
        assert!(parities[0] > 0 && parities[1] > 0, "{parities:?}");
        assert_eq!(pool.ready(), 0);
        assert!(
            pool.sign(&d, H256::zero()).is_none(),
            "an empty pool signs nothing"
        );
    }

    #[tokio::test]
    async fn the_pool_refills_after_use() {
        let (d, _) = key();
        let pool = Presignatures::start(2);
        let wait_full = || async {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let refilled = pool.refilled.notified();
                    if pool.ready() == 2 {
                        return;
                    }
                    refilled.await;
                }
            })
            .await
            .expect("the pool fills")
        };
        wait_full().await;
        assert!(pool.sign(&d, H256::repeat_byte(7)).is_some());
        assert!(pool.sign(&d, H256::repeat_byte(8)).is_some());
        assert_eq!(pool.ready(), 0);
        wait_full().await;
        assert!(format!("{pool:?}").contains("ready: 2"));
    }
}

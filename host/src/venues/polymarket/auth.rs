//! Polymarket authentication (PROTOCOLS.md §2.5): L1 headers signed with the
//! wallet key over the EIP-712 `ClobAuth` struct (only used to create or derive
//! API credentials), and L2 HMAC-SHA256 headers on every private REST call.
//!
//! Both schemes are unchanged by the 2026-04-28 CLOB V2 cut-over (§2.1). The
//! private key, the API secret and the passphrase are held in [`Secret`]s or
//! inside the signer and never appear in `Debug`, `Display` or an error; the
//! simulator uses [`verify_l2`] to check the headers our REST client sends.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ethers_core::types::{Address, H256, U256};
use ethers_core::utils::{keccak256, to_checksum};
use ethers_signers::LocalWallet;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::Secret;

/// The fixed statement signed in every `ClobAuth` message (§2.5).
pub const CLOB_AUTH_MESSAGE: &str = "This message attests that I control the given wallet";

/// Header names, exactly as the CLOB expects them (§2.5).
pub const POLY_ADDRESS: &str = "POLY_ADDRESS";
pub const POLY_SIGNATURE: &str = "POLY_SIGNATURE";
pub const POLY_TIMESTAMP: &str = "POLY_TIMESTAMP";
pub const POLY_NONCE: &str = "POLY_NONCE";
pub const POLY_API_KEY: &str = "POLY_API_KEY";
pub const POLY_PASSPHRASE: &str = "POLY_PASSPHRASE";

/// base64url *with* `=` padding on output (§2.5: "keeps '=' padding, uses '-'
/// and '_'"); on input padding is optional, because secrets are copied around
/// by hand and Python's `urlsafe_b64decode` is lenient too.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a signature or header could not be produced or did not verify. No
/// variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Polymarket wallet private key is not 32 bytes of hex")]
    BadPrivateKey,
    #[error("the Polymarket API secret is not base64url")]
    BadSecret,
    #[error("signing failed")]
    Signing,
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("header {0} does not match the credentials")]
    Mismatch(&'static str),
    #[error("POLY_SIGNATURE does not verify")]
    BadSignature,
    #[error("POLY_TIMESTAMP '{0}' is not Unix seconds")]
    BadTimestamp(String),
}

/// L2 API credentials as `POST /auth/api-key` / `GET /auth/derive-api-key`
/// return them: `{"apiKey": "<uuid>", "secret": "<base64url>", "passphrase": "..."}`.
/// The key is an identifier (it is also the order `owner`), the other two are secrets.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ApiCreds {
    #[serde(rename = "apiKey")]
    pub api_key: String,
    secret: Secret,
    passphrase: Secret,
}

impl ApiCreds {
    pub fn new(api_key: impl Into<String>, secret: Secret, passphrase: Secret) -> Self {
        ApiCreds {
            api_key: api_key.into(),
            secret,
            passphrase,
        }
    }
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
    pub fn passphrase(&self) -> &Secret {
        &self.passphrase
    }
}

impl fmt::Debug for ApiCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCreds")
            .field("api_key", &self.api_key)
            .field("secret", &self.secret)
            .field("passphrase", &self.passphrase)
            .finish()
    }
}

/// The wallet key that signs `ClobAuth` and orders. `Debug` shows the address only.
#[derive(Clone)]
pub struct PolySigner {
    wallet: LocalWallet,
    /// Nonces made ahead of time for order signatures ([`Self::with_presignatures`]).
    presigned: Option<std::sync::Arc<super::presign::Presignatures>>,
}

impl PolySigner {
    /// From a 32-byte hex private key, with or without `0x`. Errors never echo
    /// the input (a hex error would name the offending character).
    pub fn from_private_key(key: &Secret) -> Result<Self, AuthError> {
        let hex_key = key.expose().trim();
        let hex_key = hex_key.strip_prefix("0x").unwrap_or(hex_key);
        let bytes = hex::decode(hex_key).map_err(|_| AuthError::BadPrivateKey)?;
        if bytes.len() != 32 {
            return Err(AuthError::BadPrivateKey);
        }
        let wallet = LocalWallet::from_bytes(&bytes).map_err(|_| AuthError::BadPrivateKey)?;
        Ok(PolySigner {
            wallet,
            presigned: None,
        })
    }

    pub fn address(&self) -> Address {
        ethers_signers::Signer::address(&self.wallet)
    }

    /// EIP-55 checksummed address, the form `POLY_ADDRESS` and order bodies use.
    pub fn checksum_address(&self) -> String {
        to_checksum(&self.address(), None)
    }

    /// Signs a 32-byte EIP-712 digest as is (no `\x19Ethereum Signed Message`
    /// prefix). Returns `0x` + 65 bytes `r‖s‖v` with v ∈ {27, 28} (§3).
    /// RFC 6979 makes this deterministic, which is what lets §3 give vectors.
    pub fn sign_digest(&self, digest: H256) -> Result<String, AuthError> {
        let sig = self
            .wallet
            .sign_hash(digest)
            .map_err(|_| AuthError::Signing)?;
        Ok(format!("0x{}", hex::encode(sig.to_vec())))
    }

    /// Keeps `keep` ECDSA nonces ready, so an order's signature is finished
    /// in a few microseconds instead of made on the order path
    /// ([`super::presign`]), made on a low-priority thread of its own.
    pub fn with_presignatures(self, keep: usize) -> Self {
        self.with_presignature_pool(super::presign::Presignatures::start(keep))
    }

    /// Signs orders from `pool` (which something else keeps filled).
    pub fn with_presignature_pool(
        mut self,
        pool: std::sync::Arc<super::presign::Presignatures>,
    ) -> Self {
        self.presigned = Some(pool);
        self
    }

    /// Signs an order's EIP-712 digest like [`Self::sign_digest`], with a
    /// nonce made ahead of time when one is ready (then not deterministic).
    pub fn sign_order_digest(&self, digest: H256) -> Result<String, AuthError> {
        if let Some(pool) = &self.presigned {
            let d = self.wallet.signer().as_nonzero_scalar();
            if let Some(sig) = pool.sign(d, digest) {
                return Ok(format!("0x{}", hex::encode(sig)));
            }
        }
        self.sign_digest(digest)
    }
}

impl fmt::Debug for PolySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolySigner")
            .field("address", &self.checksum_address())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- EIP-712 --

/// One 32-byte ABI word per static EIP-712 member; `string` members are hashed.
pub(crate) fn word_u256(v: U256) -> [u8; 32] {
    let mut w = [0u8; 32];
    v.to_big_endian(&mut w);
    w
}

pub(crate) fn word_address(a: Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a.as_bytes());
    w
}

pub(crate) fn hash_words(words: &[[u8; 32]]) -> H256 {
    let mut buf = Vec::with_capacity(words.len() * 32);
    for w in words {
        buf.extend_from_slice(w);
    }
    H256(keccak256(buf))
}

/// `keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash)` (EIP-712).
pub(crate) fn eip712_digest(domain_separator: H256, struct_hash: H256) -> H256 {
    let mut buf = Vec::with_capacity(66);
    buf.extend_from_slice(&[0x19, 0x01]);
    buf.extend_from_slice(domain_separator.as_bytes());
    buf.extend_from_slice(struct_hash.as_bytes());
    H256(keccak256(buf))
}

/// The `ClobAuthDomain` separator: name, version and chainId only — no
/// verifyingContract and no salt (§2.5), so the type string has three members.
pub fn clob_auth_domain_separator(chain_id: u64) -> H256 {
    let type_hash = keccak256("EIP712Domain(string name,string version,uint256 chainId)");
    hash_words(&[
        type_hash,
        keccak256("ClobAuthDomain"),
        keccak256("1"),
        word_u256(U256::from(chain_id)),
    ])
}

/// The EIP-712 digest of `ClobAuth(address address,string timestamp,uint256 nonce,string message)`.
/// `timestamp` is Unix seconds *as a string* field (§5 item 16), hashed like any string.
pub fn clob_auth_digest(chain_id: u64, address: Address, timestamp: &str, nonce: u64) -> H256 {
    let type_hash =
        keccak256("ClobAuth(address address,string timestamp,uint256 nonce,string message)");
    let struct_hash = hash_words(&[
        type_hash,
        word_address(address),
        keccak256(timestamp),
        word_u256(U256::from(nonce)),
        keccak256(CLOB_AUTH_MESSAGE),
    ]);
    eip712_digest(clob_auth_domain_separator(chain_id), struct_hash)
}

/// L1 headers for `POST /auth/api-key` and `GET /auth/derive-api-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Headers {
    pub address: String,
    pub signature: String,
    pub timestamp: String,
    pub nonce: String,
}

impl L1Headers {
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (POLY_ADDRESS, &self.address),
            (POLY_SIGNATURE, &self.signature),
            (POLY_TIMESTAMP, &self.timestamp),
            (POLY_NONCE, &self.nonce),
        ]
    }
}

/// Signs `ClobAuth` for `timestamp_s` (the same string goes into the header)
/// and `nonce` (0 unless several keys are kept for one wallet).
pub fn l1_headers(
    signer: &PolySigner,
    chain_id: u64,
    timestamp_s: u64,
    nonce: u64,
) -> Result<L1Headers, AuthError> {
    let timestamp = timestamp_s.to_string();
    let digest = clob_auth_digest(chain_id, signer.address(), &timestamp, nonce);
    Ok(L1Headers {
        address: signer.checksum_address(),
        signature: signer.sign_digest(digest)?,
        timestamp,
        nonce: nonce.to_string(),
    })
}

// ------------------------------------------------------------------- HMAC --

/// `base64url(HMAC_SHA256(base64url_decode(secret), timestamp + METHOD + path + body))`
/// (§2.5). `path` has no query string; `body` must be the exact bytes sent —
/// one space changes the signature (§3.1 rows 1 and 2) — so callers serialise
/// once, sign that string and send that string.
pub fn l2_signature(
    secret: &Secret,
    timestamp: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<String, AuthError> {
    let mac = l2_mac(secret, timestamp, method, path, body)?;
    Ok(B64URL.encode(mac.finalize().into_bytes()))
}

fn l2_mac(
    secret: &Secret,
    timestamp: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Hmac<Sha256>, AuthError> {
    let key = B64URL
        .decode(secret.expose().trim())
        .map_err(|_| AuthError::BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| AuthError::BadSecret)?;
    mac.update(timestamp.as_bytes());
    mac.update(method.as_bytes());
    mac.update(path.as_bytes());
    mac.update(body.as_bytes());
    Ok(mac)
}

/// The five L2 headers. `Debug` hides the passphrase; [`L2Headers::pairs`]
/// is the one place it leaves, to go on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct L2Headers {
    pub address: String,
    pub signature: String,
    pub timestamp: String,
    pub api_key: String,
    passphrase: Secret,
}

impl L2Headers {
    pub fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            (POLY_ADDRESS, &self.address),
            (POLY_SIGNATURE, &self.signature),
            (POLY_TIMESTAMP, &self.timestamp),
            (POLY_API_KEY, &self.api_key),
            (POLY_PASSPHRASE, self.passphrase.expose()),
        ]
    }
}

impl fmt::Debug for L2Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("L2Headers")
            .field("address", &self.address)
            .field("signature", &self.signature)
            .field("timestamp", &self.timestamp)
            .field("api_key", &self.api_key)
            .field("passphrase", &self.passphrase)
            .finish()
    }
}

/// L2 headers for one request. `address` is the signer EOA — also for proxy and
/// Safe accounts (§2.5) — in checksummed form.
pub fn l2_headers(
    creds: &ApiCreds,
    address: &str,
    timestamp_s: u64,
    method: &str,
    path: &str,
    body: &str,
) -> Result<L2Headers, AuthError> {
    let timestamp = timestamp_s.to_string();
    Ok(L2Headers {
        address: address.to_string(),
        signature: l2_signature(&creds.secret, &timestamp, method, path, body)?,
        timestamp,
        api_key: creds.api_key.clone(),
        passphrase: creds.passphrase.clone(),
    })
}

/// What a verified L2 request claims; the caller decides whether the
/// timestamp is fresh enough and the address is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedL2 {
    pub address: String,
    pub timestamp_s: u64,
}

/// Checks a request's L2 headers against `creds` (for the exchange simulator).
/// `header` looks a header up by its exact name. The HMAC comparison is
/// constant-time (`Mac::verify_slice`), as is the passphrase comparison.
pub fn verify_l2<'h>(
    creds: &ApiCreds,
    header: impl Fn(&str) -> Option<&'h str>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<VerifiedL2, AuthError> {
    let get = |name: &'static str| header(name).ok_or(AuthError::MissingHeader(name));
    let address = get(POLY_ADDRESS)?;
    let signature = get(POLY_SIGNATURE)?;
    let timestamp = get(POLY_TIMESTAMP)?;
    if get(POLY_API_KEY)? != creds.api_key {
        return Err(AuthError::Mismatch(POLY_API_KEY));
    }
    if !constant_time_eq(
        get(POLY_PASSPHRASE)?.as_bytes(),
        creds.passphrase.expose().as_bytes(),
    ) {
        return Err(AuthError::Mismatch(POLY_PASSPHRASE));
    }
    let timestamp_s: u64 = timestamp
        .parse()
        .map_err(|_| AuthError::BadTimestamp(timestamp.chars().take(32).collect()))?;
    let given = B64URL
        .decode(signature.trim())
        .map_err(|_| AuthError::BadSignature)?;
    l2_mac(&creds.secret, timestamp, method, path, body)?
        .verify_slice(&given)
        .map_err(|_| AuthError::BadSignature)?;
    Ok(VerifiedL2 {
        address: address.to_string(),
        timestamp_s,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The Hardhat/Anvil key every §3 vector uses.
    pub const TEST_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    pub const TEST_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    const ZERO_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    pub fn test_signer() -> PolySigner {
        PolySigner::from_private_key(&Secret::new(TEST_KEY)).unwrap()
    }

    fn creds() -> ApiCreds {
        ApiCreds::new(
            "00000000-0000-0000-0000-000000000000",
            Secret::new(ZERO_SECRET),
            Secret::new("a".repeat(64)),
        )
    }

    #[test]
    fn test_key_derives_the_hardhat_address() {
        assert_eq!(test_signer().checksum_address(), TEST_ADDRESS);
    }

    #[test]
    fn hmac_vectors_3_1() {
        let s = Secret::new(ZERO_SECRET);
        assert_eq!(
            l2_signature(
                &s,
                "1000000",
                "test-sign",
                "/orders",
                r#"{"hash": "0x123"}"#
            )
            .unwrap(),
            "ZwAdJKvoYRlEKDkNMwd5BuwNNtg93kNaR_oU2HrfVvc="
        );
        assert_eq!(
            l2_signature(&s, "1000000", "test-sign", "/orders", r#"{"hash":"0x123"}"#).unwrap(),
            "4gJVbox-R6XlDK4nlaicig0_ANVL1qdcahiL8CXfXLM="
        );
        assert_eq!(
            l2_signature(&s, "1", "GET", "/", "").unwrap(),
            "eHaylCwqRSOa2LFD77Nt_SaTpbsxzN8eTEI3LryhEj4="
        );
    }

    #[test]
    fn secret_without_padding_decodes_the_same() {
        let s = Secret::new(ZERO_SECRET.trim_end_matches('='));
        assert_eq!(
            l2_signature(&s, "1", "GET", "/", "").unwrap(),
            "eHaylCwqRSOa2LFD77Nt_SaTpbsxzN8eTEI3LryhEj4="
        );
    }

    #[test]
    fn l2_headers_match_the_rs_client_vector() {
        let h = l2_headers(&creds(), TEST_ADDRESS, 1, "GET", "/", "").unwrap();
        let pairs = h.pairs();
        assert_eq!(pairs[0], (POLY_ADDRESS, TEST_ADDRESS));
        assert_eq!(
            pairs[1],
            (
                POLY_SIGNATURE,
                "eHaylCwqRSOa2LFD77Nt_SaTpbsxzN8eTEI3LryhEj4="
            )
        );
        assert_eq!(pairs[2], (POLY_TIMESTAMP, "1"));
        assert_eq!(
            pairs[3],
            (POLY_API_KEY, "00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(pairs[4].1, "a".repeat(64));
    }

    #[test]
    fn verify_l2_accepts_our_headers_and_rejects_tampering() {
        let c = creds();
        let body = r#"{"order":{}}"#;
        let h = l2_headers(&c, TEST_ADDRESS, 1_700_000_000, "POST", "/order", body).unwrap();
        let pairs = h.pairs();
        let lookup = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let ok = verify_l2(&c, lookup, "POST", "/order", body).unwrap();
        assert_eq!(ok.timestamp_s, 1_700_000_000);
        assert_eq!(ok.address, TEST_ADDRESS);
        assert_eq!(
            verify_l2(&c, lookup, "POST", "/order", r#"{"order": {}}"#),
            Err(AuthError::BadSignature),
            "one space in the body breaks the signature"
        );
        assert_eq!(
            verify_l2(&c, lookup, "DELETE", "/order", body),
            Err(AuthError::BadSignature)
        );
        let other = ApiCreds::new(c.api_key.clone(), c.secret().clone(), Secret::new("wrong"));
        assert_eq!(
            verify_l2(&other, lookup, "POST", "/order", body),
            Err(AuthError::Mismatch(POLY_PASSPHRASE))
        );
        let missing = |name: &str| {
            if name == POLY_SIGNATURE {
                None
            } else {
                lookup(name)
            }
        };
        assert_eq!(
            verify_l2(&c, missing, "POST", "/order", body),
            Err(AuthError::MissingHeader(POLY_SIGNATURE))
        );
    }

    #[test]
    fn clob_auth_vectors_3_2() {
        let s = test_signer();
        let amoy = clob_auth_digest(80002, s.address(), "10000000", 23);
        assert_eq!(
            s.sign_digest(amoy).unwrap(),
            "0xf62319a987514da40e57e2f4d7529f7bac38f0355bd88bb5adbb3768d80de6c1682518e0af677d5260366425f4361e7b70c25ae232aff0ab2331e2b164a1aedc1b"
        );
        let h = l1_headers(&s, 137, 100_000, 0).unwrap();
        assert_eq!(
            h,
            L1Headers {
                address: TEST_ADDRESS.into(),
                signature: "0xfdfb5abf512e439ea61c8595c18e527e718bf16010acf57cef51d09e15893098275d3c6f73038f36ec0cd0ce55436fca14dc64b11611f4dce896e354207508cc1b".into(),
                timestamp: "100000".into(),
                nonce: "0".into(),
            }
        );
    }

    #[test]
    fn three_member_domain_matches_the_foundry_vectors() {
        // §3.3: the V1 exchange domain without verifyingContract has the same
        // shape as ClobAuthDomain; checks the encoder independently of ClobAuth.
        let sep = |chain: u64| {
            hash_words(&[
                keccak256("EIP712Domain(string name,string version,uint256 chainId)"),
                keccak256("Polymarket CTF Exchange"),
                keccak256("1"),
                word_u256(U256::from(chain)),
            ])
        };
        assert_eq!(
            format!("{:#x}", sep(80002)),
            "0xf231a704e0942ea4f4f4a68a19fa01e198ddae4595d821697230159c60e562b0"
        );
        assert_eq!(
            format!("{:#x}", sep(137)),
            "0xaee1d7dd93bb10f6c6a59417017905bc5dbec7ddbd71475cd19d8a95845e632d"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let c = ApiCreds::new("key", Secret::new("c2VjcmV0"), Secret::new("hunter2"));
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("c2VjcmV0") && !dbg.contains("hunter2"),
            "{dbg}"
        );
        let h = l2_headers(&c, TEST_ADDRESS, 1, "GET", "/", "").unwrap();
        assert!(!format!("{h:?}").contains("hunter2"));
        let signer = test_signer();
        let dbg = format!("{signer:?}");
        assert!(!dbg.contains("ac0974bec39a17e3"), "{dbg}");
        assert!(dbg.contains(TEST_ADDRESS));
        let bad = PolySigner::from_private_key(&Secret::new("0xzz0974bec39a")).unwrap_err();
        assert!(!bad.to_string().contains("zz0974"));
        let bad = l2_signature(&Secret::new("not base64 !!"), "1", "GET", "/", "").unwrap_err();
        assert!(!bad.to_string().contains("base64 !!"));
    }

    #[test]
    fn api_creds_parse_from_the_create_key_response() {
        let c: ApiCreds = serde_json::from_str(
            r#"{"apiKey": "00000000-0000-0000-0000-000000000000", "secret": "AAAA", "passphrase": "p"}"#,
        )
        .unwrap();
        assert_eq!(c.api_key, "00000000-0000-0000-0000-000000000000");
        assert_eq!(c.secret().expose(), "AAAA");
        assert_eq!(c.passphrase().expose(), "p");
    }
}

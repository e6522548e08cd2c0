//! Kalshi request signing (PROTOCOLS.md §1.2): RSA-PSS over
//! `timestamp_ms + METHOD + path`, the path from the host root including
//! `/trade-api/v2` (or `/trade-api/ws/v2` for the WebSocket handshake) and without
//! the query string; the body is not signed.
//!
//! PSS uses SHA-256, MGF1(SHA-256) and a salt as long as the digest (32 bytes,
//! Python's `PSS.DIGEST_LENGTH`). The salt is random, so signatures are not
//! reproducible (§3.7): tests sign and verify. [`KalshiVerifier`] checks
//! signatures with the public key, for tests and for the simulator.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::pss::{BlindedSigningKey, Signature, VerifyingKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

pub const HEADER_KEY: &str = "KALSHI-ACCESS-KEY";
pub const HEADER_TIMESTAMP: &str = "KALSHI-ACCESS-TIMESTAMP";
pub const HEADER_SIGNATURE: &str = "KALSHI-ACCESS-SIGNATURE";

/// The path every REST request starts with, and the WebSocket handshake path.
pub const REST_PATH_PREFIX: &str = "/trade-api/v2";
pub const WS_PATH: &str = "/trade-api/ws/v2";

/// PSS salt length: the digest length (§1.2). A verifier set to another length
/// rejects the signature, so this is part of the protocol.
const SALT_LEN: usize = 32;

/// Why signing could not be set up or a signature is refused. Never contains key
/// material: only the file's path and what kind of problem it has.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read Kalshi private key file {path}: {source}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "Kalshi private key file {path} is password-protected; export it unencrypted (PKCS#1 or PKCS#8 PEM)"
    )]
    EncryptedKey { path: PathBuf },
    #[error(
        "Kalshi private key file {path} is not an RSA private key in PEM (PKCS#1 or PKCS#8): {reason}"
    )]
    MalformedKey { path: PathBuf, reason: String },
    #[error("Kalshi public key is not an RSA public key in PEM (SPKI or PKCS#1)")]
    MalformedPublicKey,
    #[error("Kalshi access key id is empty")]
    EmptyKeyId,
    #[error("path '{0}' to sign must start with /trade-api/ (§1.2: sign the full path)")]
    PathNotRooted(String),
    #[error("RSA-PSS signing failed")]
    Sign,
    #[error("signature is not valid base64")]
    SignatureEncoding,
    #[error("signature does not verify")]
    BadSignature,
}

/// The three `KALSHI-ACCESS-*` header values of one request.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    pub key: String,
    pub timestamp: String,
    pub signature: String,
}

impl AuthHeaders {
    /// `(name, value)` pairs, ready for an HTTP client or the WebSocket upgrade.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (HEADER_KEY, &self.key),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

impl fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A signature is replayable for its timestamp's validity window.
        f.debug_struct("AuthHeaders")
            .field("key", &self.key)
            .field("timestamp", &self.timestamp)
            .field("signature", &"[redacted]")
            .finish()
    }
}

/// The exact text Kalshi verifies: `timestamp_ms + METHOD + path`, the method
/// upper-cased and the path stripped of any scheme/host and query string.
pub fn string_to_sign(timestamp_ms: u64, method: &str, path: &str) -> Result<String, AuthError> {
    let path = signed_path(path)?;
    Ok(format!(
        "{timestamp_ms}{}{path}",
        method.trim().to_ascii_uppercase()
    ))
}

/// The part of a URL or path that is signed (§1.2, §3.7): no scheme or host,
/// no `?query`, and it must start with `/trade-api/`.
pub fn signed_path(url_or_path: &str) -> Result<&str, AuthError> {
    let mut p = url_or_path.trim();
    // "The hostname never enters the signature": accept a full URL too.
    if let Some(rest) = p.split_once("://").map(|(_, r)| r) {
        p = rest.find('/').map_or("", |i| &rest[i..]);
    }
    let p = p.split(['?', '#']).next().unwrap_or("");
    if !p.starts_with("/trade-api/") {
        return Err(AuthError::PathNotRooted(url_or_path.to_string()));
    }
    Ok(p)
}

/// Signs Kalshi requests with the account's RSA key.
pub struct KalshiSigner {
    key_id: String,
    key: BlindedSigningKey<Sha256>,
    public: RsaPublicKey,
}

impl KalshiSigner {
    /// Loads a PEM private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1
    /// `BEGIN RSA PRIVATE KEY`, as Kalshi's download is).
    pub fn from_pem_file(
        key_id: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|source| AuthError::ReadKey {
            path: path.to_path_buf(),
            source,
        })?;
        let result = Self::from_pem(key_id, &pem, path);
        wipe(pem);
        result
    }

    /// As [`from_pem_file`](Self::from_pem_file) with the PEM text in hand;
    /// `origin` names where it came from in errors.
    pub fn from_pem(
        key_id: impl Into<String>,
        pem: &str,
        origin: &Path,
    ) -> Result<Self, AuthError> {
        let key_id = key_id.into();
        if key_id.trim().is_empty() {
            return Err(AuthError::EmptyKeyId);
        }
        let path = origin.to_path_buf();
        if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(AuthError::EncryptedKey { path });
        }
        let key = match RsaPrivateKey::from_pkcs8_pem(pem) {
            Ok(k) => k,
            Err(p8) => RsaPrivateKey::from_pkcs1_pem(pem).map_err(|p1| {
                // These errors name the encoding problem (ASN.1, label), never bytes.
                let reason = if pem.contains("BEGIN RSA PRIVATE KEY") {
                    format!("PKCS#1: {p1}")
                } else if pem.contains("PUBLIC KEY") && !pem.contains("PRIVATE KEY") {
                    "it is a public key".to_string()
                } else {
                    format!("PKCS#8: {p8}")
                };
                AuthError::MalformedKey {
                    path: path.clone(),
                    reason,
                }
            })?,
        };
        let public = key.to_public_key();
        Ok(KalshiSigner {
            key_id,
            key: BlindedSigningKey::new_with_salt_len(key, SALT_LEN),
            public,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Headers for one request. `path` is the full path (`/trade-api/v2/...`,
    /// or [`WS_PATH`] for the handshake) or a full URL; a query is ignored.
    pub fn sign(
        &self,
        timestamp_ms: u64,
        method: &str,
        path: &str,
    ) -> Result<AuthHeaders, AuthError> {
        let message = string_to_sign(timestamp_ms, method, path)?;
        let signature: Signature = self
            .key
            .try_sign_with_rng(&mut rand::thread_rng(), message.as_bytes())
            .map_err(|_| AuthError::Sign)?;
        Ok(AuthHeaders {
            key: self.key_id.clone(),
            timestamp: timestamp_ms.to_string(),
            signature: STANDARD.encode(signature.to_bytes()),
        })
    }

    /// Headers for the WebSocket upgrade; a fresh one for every reconnect.
    pub fn sign_ws_handshake(&self, timestamp_ms: u64) -> Result<AuthHeaders, AuthError> {
        self.sign(timestamp_ms, "GET", WS_PATH)
    }

    /// The verifier matching this key.
    pub fn verifier(&self) -> KalshiVerifier {
        KalshiVerifier::from_key(self.public.clone())
    }
}

impl fmt::Debug for KalshiSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalshiSigner")
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Checks Kalshi signatures with the public key (PSS, SHA-256, salt 32).
#[derive(Clone)]
pub struct KalshiVerifier {
    key: VerifyingKey<Sha256>,
    fingerprint: String,
}

impl KalshiVerifier {
    /// From a PEM public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub fn from_public_pem(pem: &str) -> Result<Self, AuthError> {
        let key = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|_| AuthError::MalformedPublicKey)?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: RsaPublicKey) -> Self {
        use rsa::traits::PublicKeyParts;
        let digest = Sha256::digest(key.n().to_bytes_be());
        KalshiVerifier {
            fingerprint: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            key: VerifyingKey::new_with_salt_len(key, SALT_LEN),
        }
    }

    /// Verifies a request's headers against its method and path.
    pub fn verify(&self, headers: &AuthHeaders, method: &str, path: &str) -> Result<(), AuthError> {
        let ts: u64 = headers
            .timestamp
            .parse()
            .map_err(|_| AuthError::BadSignature)?;
        self.verify_signature(ts, method, path, &headers.signature)
    }

    /// Verifies a base64 signature of `timestamp_ms + METHOD + path`.
    pub fn verify_signature(
        &self,
        timestamp_ms: u64,
        method: &str,
        path: &str,
        signature_b64: &str,
    ) -> Result<(), AuthError> {
        let message = string_to_sign(timestamp_ms, method, path)?;
        let bytes = STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| AuthError::SignatureEncoding)?;
        let signature =
            Signature::try_from(bytes.as_slice()).map_err(|_| AuthError::SignatureEncoding)?;
        self.key
            .verify(message.as_bytes(), &signature)
            .map_err(|_| AuthError::BadSignature)
    }
}

impl fmt::Debug for KalshiVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalshiVerifier")
            .field("modulus_sha256", &self.fingerprint)
            .finish()
    }
}

/// Overwrites the PEM text before freeing it, so the key does not linger in freed
/// heap memory (the parsed key zeroises itself on drop).
fn wipe(pem: String) {
    let mut bytes = pem.into_bytes();
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use std::sync::OnceLock;

    const KEY_ID: &str = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c";
    const TS: u64 = 1703123456789;

    /// One 2048-bit key (the size Kalshi issues) for all tests: generation is slow.
    fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
    }

    fn pkcs8_file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            key().to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        f
    }

    fn signer() -> KalshiSigner {
        KalshiSigner::from_pem_file(KEY_ID, pkcs8_file().path()).unwrap()
    }

    fn public_pem() -> String {
        key()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn string_to_sign_matches_the_documented_vectors() {
        // §1.2 and §3.7.
        assert_eq!(
            string_to_sign(TS, "GET", "/trade-api/v2/portfolio/balance").unwrap(),
            "1703123456789GET/trade-api/v2/portfolio/balance"
        );
        assert_eq!(
            string_to_sign(
                TS,
                "GET",
                "https://external-api.kalshi.com/trade-api/v2/portfolio/orders?limit=5"
            )
            .unwrap(),
            "1703123456789GET/trade-api/v2/portfolio/orders"
        );
        assert_eq!(
            string_to_sign(TS, "GET", WS_PATH).unwrap(),
            "1703123456789GET/trade-api/ws/v2"
        );
        assert_eq!(
            string_to_sign(TS, "post", "/trade-api/v2/portfolio/events/orders").unwrap(),
            "1703123456789POST/trade-api/v2/portfolio/events/orders"
        );
    }

    #[test]
    fn a_path_without_the_api_prefix_is_refused() {
        // "signing the path without /trade-api/v2" is a documented 401 cause.
        for bad in [
            "/portfolio/balance",
            "portfolio/balance",
            "https://x.com",
            "",
        ] {
            assert!(
                matches!(
                    string_to_sign(TS, "GET", bad),
                    Err(AuthError::PathNotRooted(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn signature_verifies_with_the_public_key_and_headers_are_complete() {
        let s = signer();
        let h = s
            .sign(TS, "GET", "/trade-api/v2/portfolio/balance")
            .unwrap();
        assert_eq!(h.key, KEY_ID);
        assert_eq!(h.timestamp, "1703123456789");
        let raw = STANDARD.decode(&h.signature).unwrap();
        assert_eq!(raw.len(), 256, "2048-bit key, standard base64 with padding");
        let names: Vec<_> = h.pairs().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [HEADER_KEY, HEADER_TIMESTAMP, HEADER_SIGNATURE]);

        let v = KalshiVerifier::from_public_pem(&public_pem()).unwrap();
        v.verify(&h, "GET", "/trade-api/v2/portfolio/balance")
            .unwrap();
        v.verify_signature(TS, "GET", "/trade-api/v2/portfolio/balance", &h.signature)
            .unwrap();
        // Anything else signed is refused.
        assert!(matches!(
            v.verify(&h, "POST", "/trade-api/v2/portfolio/balance"),
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            v.verify(&h, "GET", "/trade-api/v2/portfolio/orders"),
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            v.verify_signature(
                TS + 1,
                "GET",
                "/trade-api/v2/portfolio/balance",
                &h.signature
            ),
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            v.verify_signature(TS, "GET", "/trade-api/v2/portfolio/balance", "!!"),
            Err(AuthError::SignatureEncoding)
        ));
    }

    #[test]
    fn query_string_is_not_signed() {
        let s = signer();
        let h = s
            .sign(
                TS,
                "GET",
                "/trade-api/v2/portfolio/orders?limit=5&status=resting",
            )
            .unwrap();
        s.verifier()
            .verify(&h, "GET", "/trade-api/v2/portfolio/orders")
            .unwrap();
        let ws = s.sign_ws_handshake(TS).unwrap();
        s.verifier().verify(&ws, "GET", WS_PATH).unwrap();
    }

    #[test]
    fn signatures_are_randomised_pss_with_a_32_byte_salt() {
        let s = signer();
        let a = s
            .sign(TS, "GET", "/trade-api/v2/portfolio/balance")
            .unwrap();
        let b = s
            .sign(TS, "GET", "/trade-api/v2/portfolio/balance")
            .unwrap();
        assert_ne!(a.signature, b.signature, "PSS salt is random (§3.7)");
        // A verifier expecting another salt length refuses it: the length is checked.
        let other = VerifyingKey::<Sha256>::new_with_salt_len(key().to_public_key(), 20);
        let sig = Signature::try_from(STANDARD.decode(&a.signature).unwrap().as_slice()).unwrap();
        assert!(
            other
                .verify(b"1703123456789GET/trade-api/v2/portfolio/balance", &sig)
                .is_err()
        );
    }

    #[test]
    fn loads_pkcs1_keys_and_pkcs1_public_keys() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            key().to_pkcs1_pem(LineEnding::CRLF).unwrap().as_bytes(),
        )
        .unwrap();
        let s = KalshiSigner::from_pem_file(KEY_ID, f.path()).unwrap();
        let h = s
            .sign(TS, "DELETE", "/trade-api/v2/portfolio/events/orders/abc")
            .unwrap();
        let pub1 = key().to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        KalshiVerifier::from_public_pem(&pub1)
            .unwrap()
            .verify(&h, "DELETE", "/trade-api/v2/portfolio/events/orders/abc")
            .unwrap();
    }

    #[test]
    fn missing_and_malformed_key_files_name_the_path_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = KalshiSigner::from_pem_file(KEY_ID, &missing).unwrap_err();
        assert!(matches!(e, AuthError::ReadKey { .. }));
        assert!(e.to_string().contains("nope.pem"), "{e}");

        let bad = dir.path().join("bad.pem");
        // A truncated key: must be refused without echoing any of its content.
        let pem = key().to_pkcs8_pem(LineEnding::LF).unwrap();
        let truncated: String = pem.lines().take(5).collect::<Vec<_>>().join("\n");
        std::fs::write(&bad, &truncated).unwrap();
        let e = KalshiSigner::from_pem_file(KEY_ID, &bad).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, AuthError::MalformedKey { .. }), "{e:?}");
        assert!(text.contains("bad.pem"));
        for line in truncated.lines().skip(1) {
            assert!(!text.contains(&line[..16]) && !format!("{e:?}").contains(&line[..16]));
        }

        let public = dir.path().join("pub.pem");
        std::fs::write(&public, public_pem()).unwrap();
        let e = KalshiSigner::from_pem_file(KEY_ID, &public).unwrap_err();
        assert!(e.to_string().contains("public key"), "{e}");

        let enc = dir.path().join("enc.pem");
        std::fs::write(
            &enc,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(
            KalshiSigner::from_pem_file(KEY_ID, &enc),
            Err(AuthError::EncryptedKey { .. })
        ));

        assert!(matches!(
            KalshiSigner::from_pem_file("  ", pkcs8_file().path()),
            Err(AuthError::EmptyKeyId)
        ));
    }

    #[test]
    fn debug_output_redacts_the_key_and_signature() {
        let s = signer();
        let text = format!("{s:?}");
        assert!(text.contains("[redacted]") && text.contains(KEY_ID));
        assert!(!text.contains("BEGIN") && text.len() < 200, "{text}");
        let h = s.sign(TS, "GET", WS_PATH).unwrap();
        assert!(!format!("{h:?}").contains(&h.signature));
        assert!(format!("{:?}", s.verifier()).len() < 100);
    }
}

//! Request verification: serenity's Ed25519 `Verifier` over timestamp + body, plus a freshness
//! check on the timestamp so a captured request cannot be replayed later.

pub const SIGNATURE_HEADER: &str = "X-Signature-Ed25519";
pub const TIMESTAMP_HEADER: &str = "X-Signature-Timestamp";

/// How far a request's timestamp may be from now, either way.
const MAX_SKEW_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("DISCORD_PUBLIC_KEY is not a 64-digit hex Ed25519 public key")]
    BadKey,
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("timestamp `{0}` is not a number of seconds")]
    BadTimestamp(String),
    #[error("timestamp is {0} s away from now, more than 5 minutes")]
    Stale(i64),
    #[error("signature does not match")]
    BadSignature,
}

/// Checks requests against the application's public key.
#[derive(Clone)]
pub struct Verifier(serenity::interactions_endpoint::Verifier);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// `public_key` is the application's hex public key (Discord's developer portal shows it).
    /// Checked here, so a bad key fails at start-up instead of on every request
    /// (serenity's `Verifier::new` would panic).
    pub fn new(public_key: &str) -> Result<Verifier, VerifyError> {
        let key = public_key.trim();
        if key.len() != 64 {
            return Err(VerifyError::BadKey);
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(key.get(2 * i..2 * i + 2).ok_or(VerifyError::BadKey)?, 16)
                .map_err(|_| VerifyError::BadKey)?;
        }
        serenity::interactions_endpoint::Verifier::try_new(bytes)
            .map(Verifier)
            .map_err(|_| VerifyError::BadKey)
    }

    /// Verifies one request; `now` is the current Unix time in seconds.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let signature = signature.ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
        let timestamp = timestamp.ok_or(VerifyError::Missing(TIMESTAMP_HEADER))?;
        let at: i64 = timestamp
            .parse()
            .map_err(|_| VerifyError::BadTimestamp(timestamp.chars().take(20).collect()))?;
        let skew = now.saturating_sub(at);
        if skew.abs() > MAX_SKEW_SECS {
            return Err(VerifyError::Stale(skew));
        }
        self.0
            .verify(signature, timestamp, body)
            .map_err(|()| VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn verifier() -> Verifier {
        Verifier::new(&hex::encode(key().verifying_key().to_bytes())).unwrap()
    }

    fn sign(ts: &str, body: &[u8]) -> String {
        hex::encode(key().sign(&[ts.as_bytes(), body].concat()).to_bytes())
    }

    #[test]
    fn a_fresh_correctly_signed_request_passes() {
        let sig = sign("1000", b"{}");
        assert_eq!(
            verifier().verify(Some(&sig), Some("1000"), b"{}", 1010),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_incomplete_requests_fail() {
        let v = verifier();
        let sig = sign("1000", b"{}");
        assert_eq!(
            v.verify(Some(&sig), Some("1000"), b"{\"x\":1}", 1000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(&sig), Some("1000"), b"{}", 1000 + 301),
            Err(VerifyError::Stale(301))
        );
        assert_eq!(
            v.verify(None, Some("1000"), b"{}", 1000),
            Err(VerifyError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            v.verify(Some("zz"), Some("1000"), b"{}", 1000),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            v.verify(Some(&sig), Some("soon"), b"{}", 1000),
            Err(VerifyError::BadTimestamp(_))
        ));
    }

    #[test]
    fn a_malformed_public_key_is_refused_instead_of_panicking() {
        assert_eq!(Verifier::new("abc").unwrap_err(), VerifyError::BadKey);
        assert_eq!(
            Verifier::new(&"zz".repeat(32)).unwrap_err(),
            VerifyError::BadKey
        );
    }
}

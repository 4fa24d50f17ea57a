//! Request signing: Slack's v0 HMAC over `v0:timestamp:body`, checked with slack-morphism's verifier.

use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

pub const SIGNATURE_HEADER: &str = SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER;
pub const TIMESTAMP_HEADER: &str = SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A wrong signature, or a timestamp more than five minutes from now.
    #[error("request signature or timestamp is not valid: {0}")]
    Invalid(String),
}

/// Checks a request's signature and that its timestamp is within five minutes of now.
pub fn verify_request(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &str,
) -> Result<(), VerifyError> {
    let ts = timestamp.ok_or(VerifyError::Missing(TIMESTAMP_HEADER))?;
    let sig = signature.ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
    let verifier = SlackEventSignatureVerifier::new(&SlackSigningSecret::new(secret.to_string()));
    verifier
        .verify(sig, body, ts)
        .map_err(|e| VerifyError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn sign(secret: &str, ts: &str, body: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn now() -> String {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    }

    #[test]
    fn a_correctly_signed_fresh_request_passes() {
        let ts = now();
        let sig = sign("s3cret", &ts, "text=hi");
        assert_eq!(
            verify_request("s3cret", Some(&ts), Some(&sig), "text=hi"),
            Ok(())
        );
    }

    #[test]
    fn wrong_secret_tampered_body_stale_or_missing_headers_fail() {
        let ts = now();
        let sig = sign("s3cret", &ts, "text=hi");
        assert!(verify_request("other", Some(&ts), Some(&sig), "text=hi").is_err());
        assert!(verify_request("s3cret", Some(&ts), Some(&sig), "text=hI").is_err());
        let old = (now().parse::<i64>().unwrap() - 301).to_string();
        let stale = sign("s3cret", &old, "text=hi");
        assert!(verify_request("s3cret", Some(&old), Some(&stale), "text=hi").is_err());
        assert_eq!(
            verify_request("s3cret", None, Some(&sig), "text=hi"),
            Err(VerifyError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify_request("s3cret", Some(&ts), None, "text=hi"),
            Err(VerifyError::Missing(SIGNATURE_HEADER))
        );
    }
}

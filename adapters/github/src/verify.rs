//! Delivery verification with octocrab's `WebhookVerifier`: HMAC-SHA256 of the body under the
//! webhook secret, in `X-Hub-Signature-256`; legacy `sha1=` signatures are refused.

use octocrab::models::webhook_events::verification::{WebhookVerificationError, WebhookVerifier};

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const EVENT_HEADER: &str = "X-GitHub-Event";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("sha1 signatures are not accepted; GitHub sends X-Hub-Signature-256")]
    Sha1,
    #[error("signature does not match")]
    BadSignature,
}

/// Verifies one delivery against the webhook secret.
pub fn verify(secret: &str, signature: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
    let signature = signature.ok_or(VerifyError::Missing)?;
    WebhookVerifier::new(secret)
        .verify(signature, body)
        .map_err(|e| match e {
            WebhookVerificationError::DeprecatedSha1 => VerifyError::Sha1,
            _ => VerifyError::BadSignature,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_correct_signature_passes_and_anything_else_fails() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        assert_eq!(verify("s3cret", Some(&sign("s3cret", body)), body), Ok(()));
        assert_eq!(
            verify("s3cret", Some(&sign("other", body)), body),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(verify("s3cret", None, body), Err(VerifyError::Missing));
        assert_eq!(
            verify(
                "s3cret",
                Some("sha1=0123456789abcdef0123456789abcdef01234567"),
                body
            ),
            Err(VerifyError::Sha1)
        );
        assert_eq!(
            verify("s3cret", Some("md5=00"), body),
            Err(VerifyError::BadSignature)
        );
    }
}

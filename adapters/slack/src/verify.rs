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

/// Checks a request's signature over the body's bytes, whatever they are: the signature comes
/// before anything else about the body, so a forged body that is not UTF-8 is refused as forged.
/// UTF-8 bodies go through slack-morphism's verifier; it takes `&str`, so the rare other body is
/// checked here with the same HMAC and the same five-minute window.
pub fn verify_request_bytes(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    if let Ok(text) = std::str::from_utf8(body) {
        return verify_request(secret, timestamp, signature, text);
    }
    use hmac::{Hmac, Mac};
    let ts = timestamp.ok_or(VerifyError::Missing(TIMESTAMP_HEADER))?;
    let sig = signature.ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
    let invalid = |why: &str| VerifyError::Invalid(why.to_string());
    let when: i64 = ts.trim().parse().map_err(|_| invalid("bad timestamp"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if (now - when).abs() > 5 * 60 {
        return Err(invalid("timestamp is more than five minutes from now"));
    }
    let given = sig
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| invalid("signature is not v0=<hex>"))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| invalid("unusable signing secret"))?;
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| invalid("signature does not match"))
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

    #[test]
    fn a_body_that_is_not_utf8_is_checked_over_its_bytes() {
        let ts = now();
        let body: &[u8] = b"text=caf\xe9";
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            verify_request_bytes("s3cret", Some(&ts), Some(&sig), body),
            Ok(())
        );
        assert!(verify_request_bytes("other", Some(&ts), Some(&sig), body).is_err());
        assert!(verify_request_bytes("s3cret", Some(&ts), Some("v0=00"), body).is_err());
        let old = (now().parse::<i64>().unwrap() - 301).to_string();
        assert!(verify_request_bytes("s3cret", Some(&old), Some(&sig), body).is_err());
        // UTF-8 bodies take slack-morphism's path.
        let sig = sign("s3cret", &ts, "text=hi");
        assert_eq!(
            verify_request_bytes("s3cret", Some(&ts), Some(&sig), b"text=hi"),
            Ok(())
        );
    }
}

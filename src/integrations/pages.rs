//! Page webhooks: an escalation step's JSON document POSTed to a paging bridge (SMS, phone), signed with HMAC-SHA256 under `OPSLEDGER_PAGE_WEBHOOK_SECRET`, through the outbox.
//!
//! Written here with reqwest and hmac rather than in an adapter: it is opsledger's own small
//! protocol, not a platform's (`X-Opsledger-Signature: sha256=<hex of the HMAC of the body>`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::domain::reply::Event;
use crate::ledger::Router;
use crate::outbox::{outbox_op, Deliver, DeliveryError, NewOutbox};
use crate::store::OutboxItem;

/// The outbox platform of page webhooks.
pub const PLATFORM: &str = "webhook";
/// The header a bridge verifies.
pub const SIGNATURE_HEADER: &str = "X-Opsledger-Signature";

outbox_op! {
    /// What the page webhook deliverer does.
    pub enum WebhookOp {
        /// POST `payload.body` to the item's channel (the URL), signed.
        Page = "page",
    }
}

/// The router and deliverer of page webhooks, on while the secret is set.
#[derive(Clone)]
pub struct PageWebhooks {
    secret: Arc<SecretString>,
    client: reqwest::Client,
    /// Told of each page delivered.
    pub ledger: super::LedgerCell,
}

impl PageWebhooks {
    pub fn new(secret: SecretString) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(PageWebhooks {
            secret: Arc::new(secret),
            client,
            ledger: super::LedgerCell::default(),
        })
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Router for PageWebhooks {
    fn route(&self, event: &Event) -> Vec<NewOutbox> {
        match event {
            Event::PageWebhook {
                incident,
                url,
                body,
            } => vec![NewOutbox::new(
                PLATFORM,
                url,
                WebhookOp::Page,
                Some(incident),
                json!({ "body": body }),
            )],
            _ => Vec::new(),
        }
    }
}

#[async_trait]
impl Deliver for PageWebhooks {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let WebhookOp::Page = item.op()?;
        let body = crate::integrations::chat::field(&item.payload, "body")?.to_string();
        let sig = signature(self.secret.expose_secret(), body.as_bytes());
        let resp = self
            .client
            .post(&item.channel)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryError::Retry {
                after: None,
                reason: format!("page webhook {}: {e}", item.channel),
            })?;
        let status = resp.status();
        if status.is_success() {
            if let Some(record) = &item.record {
                super::page_delivered(&self.ledger, record, "webhook".to_string()).await;
            }
            return Ok(());
        }
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let reason = format!("page webhook {} answered {status}", item.channel);
        if status.as_u16() == 429 || status.is_server_error() {
            Err(DeliveryError::Retry { after, reason })
        } else {
            Err(DeliveryError::Permanent(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

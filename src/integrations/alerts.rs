//! Alert notifications from Alertmanager and Grafana: the adapter's parsed payload turned into the ledger's `Command::Alert`, run as `alerts:<receiver>`.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::domain::alerts::{AlertItem, AlertNotification, AlertSource};
use crate::domain::command::Command;
use crate::domain::ids::Actor;
use crate::domain::reply::Outcome;
use crate::ledger::Ledger;

/// The settings the alert endpoints need: on while the token is set.
#[derive(Clone)]
pub struct AlertsConfig {
    pub token: Arc<SecretString>,
}

/// Whether the request's `Authorization` carries the token: as a bearer token, or as the
/// password of basic auth (any user name), compared in constant time. Alertmanager's
/// `http_config` and Grafana's webhook contact point can send either.
pub fn authorized(authorization: Option<&str>, token: &SecretString) -> bool {
    use base64::Engine;
    let want = token.expose_secret().as_bytes();
    let Some(value) = authorization.map(str::trim) else {
        return false;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let given: Vec<u8> = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
            return false;
        };
        match decoded.iter().position(|b| *b == b':') {
            Some(i) => decoded[i + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    constant_time_eq::constant_time_eq(&given, want)
}

/// The ledger's notification from the adapter's payload.
pub fn notification(m: opsledger_alerts::Message, source: AlertSource) -> AlertNotification {
    AlertNotification {
        source,
        firing: m.firing(),
        receiver: m.receiver,
        group_key: m.group_key,
        group_labels: m.group_labels,
        common_labels: m.common_labels,
        common_annotations: m.common_annotations,
        external_url: m.external_url,
        truncated_alerts: m.truncated_alerts,
        alerts: m
            .alerts
            .into_iter()
            .map(|a| AlertItem {
                firing: a.firing(),
                labels: a.labels,
                annotations: a.annotations,
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                generator_url: a.generator_url,
                fingerprint: a.fingerprint,
            })
            .collect(),
    }
}

/// What one notification led to, for the answer and `/metrics`.
pub struct Received {
    pub receiver: String,
    /// `raised`, `updated`, `unchanged`, `refused` or `failed` (nothing recorded: the sender
    /// should retry).
    pub result: &'static str,
    pub answer: Value,
}

/// Runs a parsed notification through the ledger.
pub async fn receive(ledger: &Ledger, n: AlertNotification) -> Received {
    let receiver = n.receiver.clone();
    let actor = Actor::alerts(&receiver);
    let handled = ledger.handle(actor, Command::Alert(Box::new(n))).await;
    let raised = handled
        .events
        .iter()
        .any(|e| matches!(e, crate::domain::reply::Event::IncidentRaised { .. }));
    let result = match handled.reply.outcome {
        Outcome::Failed => "failed",
        Outcome::Ok if raised => "raised",
        Outcome::Ok if handled.reply.text.contains(": no change") => "unchanged",
        Outcome::Ok => "updated",
        _ => "refused",
    };
    ledger.metrics().alert(&receiver, result);
    Received {
        receiver,
        result,
        answer: json!({
            "ok": handled.reply.text,
            "group": handled.reply.record,
            "outcome": handled.reply.outcome.label(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn bearer_or_basic_with_the_token_as_password() {
        let token = SecretString::from("s3cret");
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(authorized(Some("Bearer s3cret"), &token));
        assert!(authorized(Some("bearer s3cret"), &token));
        assert!(authorized(Some(&basic("alertmanager:s3cret")), &token));
        assert!(authorized(Some(&basic(":s3cret")), &token));
        assert!(!authorized(None, &token));
        assert!(!authorized(Some("Bearer wrong"), &token));
        assert!(!authorized(Some("Bearer "), &token));
        assert!(!authorized(Some(&basic("s3cret:x")), &token));
        assert!(!authorized(Some(&basic("s3cret")), &token));
        assert!(!authorized(Some("Basic !!!"), &token));
        assert!(!authorized(Some("Token s3cret"), &token));
    }
}

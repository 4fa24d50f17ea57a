//! Alertmanager's webhook payload (version 4), and Grafana's, which is a superset of it: parsed and checked, nothing more.
//!
//! No maintained crate models this payload (Alertmanager's own types are Go, in
//! `notify/webhook/webhook.go` and `template/template.go`), so the types are written here from
//! those, and from Grafana's documented sample. Unknown fields are ignored: Grafana adds its own
//! (`orgId`, `values`, `silenceURL`, ...), and newer Alertmanagers add some
//! (`notification_reason` in 0.34, `routeLabels`).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a body is not a notification: said to the sender with a 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the body is not an alert notification: {0}")]
    Json(String),
    #[error("`{field}` is {value:?}; it must be \"firing\" or \"resolved\"")]
    Status { field: String, value: String },
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
}

/// A notification as Alertmanager's webhook receiver (and Grafana's webhook contact point)
/// sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `4` from Alertmanager, `1` from Grafana.
    #[serde(default)]
    pub version: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "time")]
    pub starts_at: Option<DateTime<Utc>>,
    /// `None` for a firing alert (Alertmanager sends Go's zero time, `0001-01-01T00:00:00Z`).
    #[serde(default, deserialize_with = "time")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's hash of the labels; computed the same way when a sender leaves it out.
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn firing(&self) -> bool {
        self.status == "firing"
    }
}

impl Message {
    pub fn firing(&self) -> bool {
        self.status == "firing"
    }
}

/// Go's zero time (and anything before 1970) is no time.
fn time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let t: Option<DateTime<Utc>> = Option::deserialize(d)?;
    Ok(t.filter(|t| t.year() >= 1970))
}

/// Parses and checks a notification body.
pub fn parse(body: &[u8]) -> Result<Message, ParseError> {
    let mut m: Message =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if m.group_key.is_empty() {
        return Err(ParseError::Empty("groupKey"));
    }
    if m.receiver.is_empty() {
        return Err(ParseError::Empty("receiver"));
    }
    let status = |field: String, value: &str| match value {
        "firing" | "resolved" => Ok(()),
        other => Err(ParseError::Status {
            field,
            value: other.to_string(),
        }),
    };
    status("status".to_string(), &m.status)?;
    for (i, a) in m.alerts.iter_mut().enumerate() {
        status(format!("alerts[{i}].status"), &a.status)?;
        if a.fingerprint.is_empty() {
            a.fingerprint = fingerprint(&a.labels);
        }
    }
    Ok(m)
}

/// A stable 16-hex-digit fingerprint of a label set, for senders that leave it out.
/// (Alertmanager's own is FNV-64a over the sorted labels; any stable hash serves here, since
/// it is only compared with fingerprints computed the same way.)
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xff]);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &str =
        include_str!("../../../tests/fixtures/alerts/alertmanager-0.25-firing.json");
    const RESOLVED: &str =
        include_str!("../../../tests/fixtures/alerts/alertmanager-0.25-resolved.json");
    const DOCS: &str = include_str!("../../../tests/fixtures/alerts/alertmanager-docs-sample.json");
    const GRAFANA: &str = include_str!("../../../tests/fixtures/alerts/grafana-docs-sample.json");

    #[test]
    fn alertmanagers_own_notifications_parse() {
        let m = parse(FIRING.as_bytes()).unwrap();
        assert_eq!(m.version, "4");
        assert!(m.firing());
        assert!(!m.alerts.is_empty());
        let a = &m.alerts[0];
        assert!(a.firing());
        assert!(a.starts_at.is_some());
        assert_eq!(a.ends_at, None, "Go's zero time is no time");
        assert!(!a.fingerprint.is_empty());
        assert!(a.generator_url.starts_with("http"));

        let r = parse(RESOLVED.as_bytes()).unwrap();
        assert!(!r.firing());
        assert!(r.alerts.iter().all(|a| !a.firing() && a.ends_at.is_some()));
    }

    #[test]
    fn the_documented_samples_parse() {
        let m = parse(DOCS.as_bytes()).unwrap();
        assert_eq!(m.version, "4");
        assert!(!m.group_key.is_empty());
        let g = parse(GRAFANA.as_bytes()).unwrap();
        assert_eq!(g.receiver, "My Super Webhook");
        assert_eq!(g.alerts.len(), 2);
        assert_eq!(g.alerts[0].fingerprint, "c6eadffa33fcdf37");
        assert_eq!(
            g.alerts[0].generator_url,
            "https://play.grafana.org/alerting/1afz29v7z/edit"
        );
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        assert!(matches!(parse(b"not json"), Err(ParseError::Json(_))));
        assert!(matches!(parse(b"[]"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(br#"{"receiver":"r","status":"firing","alerts":[]}"#),
            Err(ParseError::Json(e)) if e.contains("groupKey")
        ));
        assert_eq!(
            parse(br#"{"groupKey":"","receiver":"r","status":"firing","alerts":[]}"#),
            Err(ParseError::Empty("groupKey"))
        );
        let bad =
            br#"{"groupKey":"k","receiver":"r","status":"firing","alerts":[{"status":"burning"}]}"#;
        assert_eq!(
            parse(bad).unwrap_err().to_string(),
            "`alerts[0].status` is \"burning\"; it must be \"firing\" or \"resolved\""
        );
    }

    #[test]
    fn a_missing_fingerprint_is_computed_from_the_labels() {
        let body = br#"{"groupKey":"k","receiver":"r","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"A","b":"1"}},
            {"status":"firing","labels":{"b":"1","alertname":"A"}}]}"#;
        let m = parse(body).unwrap();
        assert_eq!(m.alerts[0].fingerprint.len(), 16);
        assert_eq!(m.alerts[0].fingerprint, m.alerts[1].fingerprint);
    }
}

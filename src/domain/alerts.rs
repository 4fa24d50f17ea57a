//! Alerts from Alertmanager and Grafana, pure: what a notification says, the `[alerts]` rules, and how a notification changes its alert group.
//!
//! The use case (`usecase::alert`) turns what `AlertGroup::merge` reports into incidents, notes,
//! problems and suspected-change links.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::command::Level;
use super::records::{AlertGroup, AlertGroupStatus, AlertInstance, RaisedIncident};
use super::text::neutralize;

/// Where a notification came from: both send Alertmanager's webhook payload (version 4);
/// Grafana's adds fields that are not needed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSource {
    Alertmanager,
    Grafana,
}

impl AlertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Alertmanager => "alertmanager",
            AlertSource::Grafana => "grafana",
        }
    }
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertItem {
    pub firing: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    pub fingerprint: String,
}

/// A webhook notification: one alert group as the monitoring system sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertNotification {
    pub source: AlertSource,
    pub receiver: String,
    pub group_key: String,
    pub firing: bool,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: String,
    pub truncated_alerts: u64,
    pub alerts: Vec<AlertItem>,
}

impl AlertNotification {
    /// The notification with its free text made recordable: a control or bidirectional
    /// character becomes U+FFFD (`domain::text`). A monitoring system's text cannot be refused
    /// like a person's, and it must not reach the store as it is.
    pub fn neutralized(&self) -> AlertNotification {
        let n = |s: &str| neutralize(s).into_owned();
        let map = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (n(k), n(v))).collect();
        AlertNotification {
            source: self.source,
            receiver: n(&self.receiver),
            group_key: n(&self.group_key),
            firing: self.firing,
            group_labels: map(&self.group_labels),
            common_labels: map(&self.common_labels),
            common_annotations: map(&self.common_annotations),
            external_url: n(&self.external_url),
            truncated_alerts: self.truncated_alerts,
            alerts: self
                .alerts
                .iter()
                .map(|a| AlertItem {
                    firing: a.firing,
                    labels: map(&a.labels),
                    annotations: map(&a.annotations),
                    starts_at: a.starts_at,
                    ends_at: a.ends_at,
                    generator_url: n(&a.generator_url),
                    fingerprint: n(&a.fingerprint),
                })
                .collect(),
        }
    }

    /// The key of the group's record: the same for every notification of one group.
    pub fn group_id(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.source.as_str(), &self.receiver, &self.group_key] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        format!("alert-{}", &hex::encode(h.finalize())[..16])
    }

    /// A label's value for the whole group: from the group or common labels, else the value
    /// every alert that has the label agrees on.
    pub fn label(&self, name: &str) -> Option<String> {
        if let Some(v) = self.group_labels.get(name).or(self.common_labels.get(name)) {
            return Some(v.clone());
        }
        let mut values = self.alerts.iter().filter_map(|a| a.labels.get(name));
        let first = values.next()?;
        values.all(|v| v == first).then(|| first.clone())
    }

    /// The incident's title: `commonAnnotations.summary`, else `alertname` and the other group
    /// labels.
    pub fn title(&self) -> String {
        if let Some(s) = self
            .common_annotations
            .get("summary")
            .filter(|s| !s.trim().is_empty())
        {
            return clip(s.trim(), 200);
        }
        // Alerts of different names grouped together (Grafana groups by rule folder): name
        // a few of them.
        let name = self.label("alertname").unwrap_or_else(|| {
            let mut all: Vec<&str> = Vec::new();
            for n in self.alerts.iter().filter_map(|a| a.labels.get("alertname")) {
                if !all.contains(&n.as_str()) {
                    all.push(n);
                }
            }
            match all.len() {
                0 => "Alert".to_string(),
                1..=3 => all.join(", "),
                n => format!("{} and {} more", all[..3].join(", "), n - 3),
            }
        });
        let others: Vec<String> = self
            .group_labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if others.is_empty() {
            clip(&name, 200)
        } else {
            clip(&format!("{name} ({})", others.join(", ")), 200)
        }
    }

    /// The incident's description: the common annotations, then each alert with what it says
    /// of itself beyond them and its `generatorURL`.
    pub fn description(&self) -> String {
        let mut lines: Vec<String> = self
            .common_annotations
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        for a in &self.alerts {
            let own: Vec<String> = a
                .annotations
                .iter()
                .filter(|(k, _)| !self.common_annotations.contains_key(*k))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let mut line = format!("- {}", alert_name(a));
            if !own.is_empty() {
                line.push_str(&format!(" ({})", own.join("; ")));
            }
            if !a.generator_url.is_empty() {
                line.push_str(&format!(" {}", a.generator_url));
            }
            lines.push(line);
        }
        if self.truncated_alerts > 0 {
            lines.push(format!(
                "({} more alerts not sent by {})",
                self.truncated_alerts,
                self.source.as_str()
            ));
        }
        clip(&lines.join("\n"), 8000)
    }

    /// Impact and urgency from the severity label: the group's, else the most severe alert's
    /// that the map knows.
    pub fn levels(&self, rules: &AlertRules) -> Option<(Level, Level)> {
        let label = &rules.severity_label;
        if let Some(v) = self.label(label) {
            if let Some(l) = rules.severity.get(&v.to_ascii_lowercase()) {
                return Some(*l);
            }
        }
        self.alerts
            .iter()
            .filter(|a| a.firing)
            .filter_map(|a| a.labels.get(label))
            .filter_map(|v| rules.severity.get(&v.to_ascii_lowercase()).copied())
            .min_by_key(|(impact, urgency)| (impact.index(), urgency.index()))
    }
}

/// `alertname`, else the fingerprint.
fn alert_name(a: &AlertItem) -> String {
    a.labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| a.fingerprint.clone())
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// The `[alerts]` section of the rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// The label naming the service (default `service`).
    pub service_label: String,
    /// The label naming the configuration item (default `instance`).
    pub ci_label: String,
    /// The label read for the severity (default `severity`).
    pub severity_label: String,
    /// Severity (lower case) to impact and urgency.
    pub severity: BTreeMap<String, (Level, Level)>,
    /// Resolve the incident when every alert of its group is resolved.
    pub auto_resolve: bool,
    /// A group firing again this soon after its incident was resolved reopens it.
    pub reopen_within: Duration,
    /// This many incidents from one group within `problem_window` open a problem.
    pub problem_after: u32,
    pub problem_window: Duration,
    /// A change completed this recently on the incident's service or CI is a suspected cause.
    pub change_window: Duration,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            service_label: "service".to_string(),
            ci_label: "instance".to_string(),
            severity_label: "severity".to_string(),
            severity: BTreeMap::from([
                ("critical".to_string(), (Level::High, Level::High)),
                ("warning".to_string(), (Level::Medium, Level::Medium)),
                ("info".to_string(), (Level::Low, Level::Low)),
            ]),
            auto_resolve: false,
            reopen_within: Duration::from_secs(24 * 3600),
            problem_after: 3,
            problem_window: Duration::from_secs(7 * 24 * 3600),
            change_window: Duration::from_secs(2 * 3600),
        }
    }
}

/// At most this many alerts are kept per group; resolved ones go first past it.
pub const MAX_ALERTS: usize = 1000;
/// At most this many incidents are remembered per group (enough for any `problem_after`).
pub const MAX_INCIDENTS: usize = 100;

/// What a notification changed in its group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Alerts that began firing: new to the group, or firing again after they resolved (names).
    pub fired: Vec<String>,
    /// Their fingerprints, in the same order.
    pub fired_fingerprints: Vec<String>,
    /// Alerts that were firing and are now resolved.
    pub resolved: Vec<String>,
}

impl Merged {
    pub fn is_empty(&self) -> bool {
        self.fired.is_empty() && self.resolved.is_empty()
    }
}

impl AlertGroup {
    /// A group seen for the first time, with no alerts yet (`merge` adds them).
    pub fn new(n: &AlertNotification, rules: &AlertRules, now: DateTime<Utc>) -> AlertGroup {
        AlertGroup {
            id: n.group_id(),
            title: n.title(),
            status: AlertGroupStatus::Resolved,
            source: n.source.as_str().to_string(),
            receiver: n.receiver.clone(),
            group_key: n.group_key.clone(),
            external_url: n.external_url.clone(),
            service: n.label(&rules.service_label),
            ci: n.label(&rules.ci_label),
            alerts: Vec::new(),
            incident: None,
            incidents: Vec::new(),
            problem: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Takes in a notification's alerts. An alert is one firing of a fingerprint, told apart
    /// by `startsAt`: a repeat of what is known, or a replay of an older notification, changes
    /// nothing; a resolved firing is never revived by a replay.
    pub fn merge(&mut self, n: &AlertNotification) -> Merged {
        let mut out = Merged::default();
        for a in &n.alerts {
            let name = alert_name(a);
            let status = if a.firing {
                AlertGroupStatus::Firing
            } else {
                AlertGroupStatus::Resolved
            };
            let incoming = || AlertInstance {
                fingerprint: a.fingerprint.clone(),
                name: name.clone(),
                status,
                labels: a.labels.clone(),
                summary: a.annotations.get("summary").cloned(),
                generator_url: a.generator_url.clone(),
                starts_at: a.starts_at,
                ends_at: a.ends_at.filter(|_| !a.firing),
            };
            match self
                .alerts
                .iter_mut()
                .find(|k| k.fingerprint == a.fingerprint)
            {
                // A resolved alert never seen firing: nothing to act on.
                None if !a.firing => {}
                None => {
                    self.alerts.push(incoming());
                    out.fired.push(name.clone());
                    out.fired_fingerprints.push(a.fingerprint.clone());
                }
                Some(known) => {
                    let newer = match (a.starts_at, known.starts_at) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        _ => std::cmp::Ordering::Equal,
                    };
                    match newer {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Greater => {
                            let was_firing = known.status == AlertGroupStatus::Firing;
                            *known = incoming();
                            match (was_firing, a.firing) {
                                (false, true) => {
                                    out.fired.push(name.clone());
                                    out.fired_fingerprints.push(a.fingerprint.clone());
                                }
                                (true, false) => out.resolved.push(name.clone()),
                                _ => {}
                            }
                        }
                        std::cmp::Ordering::Equal => {
                            if known.status == AlertGroupStatus::Firing && !a.firing {
                                known.status = AlertGroupStatus::Resolved;
                                known.ends_at = a.ends_at;
                                out.resolved.push(name.clone());
                            }
                        }
                    }
                }
            }
        }
        self.trim();
        self.status = if self.firing() > 0 {
            AlertGroupStatus::Firing
        } else {
            AlertGroupStatus::Resolved
        };
        out
    }

    /// Keeps at most `MAX_ALERTS`, dropping the oldest resolved ones first.
    fn trim(&mut self) {
        while self.alerts.len() > MAX_ALERTS {
            let i = self
                .alerts
                .iter()
                .position(|a| a.status == AlertGroupStatus::Resolved)
                .unwrap_or(0);
            self.alerts.remove(i);
        }
    }

    pub fn firing(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertGroupStatus::Firing)
            .count()
    }

    /// Notes that the group raised `id`; returns the incidents it raised within `window`
    /// (this one included), oldest first.
    pub fn raised(
        &mut self,
        id: super::ids::RecordId,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Vec<super::ids::RecordId> {
        self.incident = Some(id);
        self.incidents.push(RaisedIncident { id, at: now });
        if self.incidents.len() > MAX_INCIDENTS {
            self.incidents.remove(0);
        }
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        self.incidents
            .iter()
            .filter(|r| r.at > since)
            .map(|r| r.id)
            .collect()
    }

    /// "2 of 10 firing: HighLatency, DiskFull".
    pub fn firing_text(&self) -> String {
        let names: Vec<&str> = self
            .alerts
            .iter()
            .filter(|a| a.status == AlertGroupStatus::Firing)
            .map(|a| a.name.as_str())
            .collect();
        format!(
            "{} of {} firing: {}",
            names.len(),
            self.alerts.len(),
            names.join(", ")
        )
    }
}

/// "HighLatency, DiskFull" (each name once, in order).
pub fn names(list: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for n in list {
        if !seen.contains(&n.as_str()) {
            seen.push(n);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn alert(fp: &str, firing: bool, starts: &str) -> AlertItem {
        AlertItem {
            firing,
            labels: BTreeMap::from([("alertname".to_string(), format!("A{fp}"))]),
            annotations: BTreeMap::new(),
            starts_at: Some(at(starts)),
            ends_at: (!firing).then(|| at("2026-12-01T11:00:00Z")),
            generator_url: format!("http://prom/graph?{fp}"),
            fingerprint: fp.to_string(),
        }
    }

    fn notification(alerts: Vec<AlertItem>) -> AlertNotification {
        AlertNotification {
            source: AlertSource::Alertmanager,
            receiver: "ops".to_string(),
            group_key: "{}:{alertname=\"A\"}".to_string(),
            firing: alerts.iter().any(|a| a.firing),
            group_labels: BTreeMap::from([("alertname".to_string(), "A".to_string())]),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: String::new(),
            truncated_alerts: 0,
            alerts,
        }
    }

    const T0: &str = "2026-12-01T10:00:00Z";
    const T1: &str = "2026-12-01T12:00:00Z";

    fn group() -> AlertGroup {
        let n = notification(vec![]);
        AlertGroup::new(&n, &AlertRules::default(), at(T0))
    }

    #[test]
    fn a_new_fingerprint_fires_and_a_repeat_changes_nothing() {
        let mut g = group();
        let first = notification(vec![alert("1", true, T0)]);
        assert_eq!(g.merge(&first).fired, vec!["A1"]);
        let before = g.clone();
        assert!(g.merge(&first).is_empty());
        assert_eq!(g, before);
        let second = notification(vec![alert("1", true, T0), alert("2", true, T0)]);
        assert_eq!(g.merge(&second).fired, vec!["A2"]);
        assert_eq!(g.firing(), 2);
    }

    #[test]
    fn resolution_is_final_for_a_firing_and_a_replay_does_not_revive_it() {
        let mut g = group();
        let firing = notification(vec![alert("1", true, T0)]);
        g.merge(&firing);
        let resolved = notification(vec![alert("1", false, T0)]);
        assert_eq!(g.merge(&resolved).resolved, vec!["A1"]);
        assert_eq!(g.status, AlertGroupStatus::Resolved);
        // The firing notification delivered again: the same firing, already over.
        assert!(g.merge(&firing).is_empty());
        assert!(g.merge(&resolved).is_empty());
        assert_eq!(g.status, AlertGroupStatus::Resolved);
    }

    #[test]
    fn a_later_firing_of_the_same_alert_fires_again_and_an_older_one_is_ignored() {
        let mut g = group();
        g.merge(&notification(vec![alert("1", true, T0)]));
        g.merge(&notification(vec![alert("1", false, T0)]));
        let again = notification(vec![alert("1", true, T1)]);
        assert_eq!(g.merge(&again).fired, vec!["A1"]);
        // A stale notification from the first firing changes nothing now.
        assert!(g
            .merge(&notification(vec![alert("1", false, T0)]))
            .is_empty());
        assert_eq!(g.firing(), 1);
    }

    #[test]
    fn an_unknown_resolved_alert_is_not_acted_on() {
        let mut g = group();
        assert!(g
            .merge(&notification(vec![alert("9", false, T0)]))
            .is_empty());
        assert!(g.alerts.is_empty());
    }

    #[test]
    fn the_title_is_the_summary_else_the_alertname_and_group_labels() {
        let mut n = notification(vec![alert("1", true, T0)]);
        n.group_labels
            .insert("service".to_string(), "shop".to_string());
        assert_eq!(n.title(), "A (service=shop)");
        n.common_annotations
            .insert("summary".to_string(), "Checkout is slow".to_string());
        assert_eq!(n.title(), "Checkout is slow");
    }

    #[test]
    fn the_description_holds_every_generator_url() {
        let n = notification(vec![alert("1", true, T0), alert("2", true, T0)]);
        let d = n.description();
        assert!(d.contains("http://prom/graph?1"), "{d}");
        assert!(d.contains("http://prom/graph?2"), "{d}");
    }

    #[test]
    fn severity_maps_to_levels_from_the_group_or_the_worst_alert() {
        let rules = AlertRules::default();
        let mut n = notification(vec![alert("1", true, T0), alert("2", true, T0)]);
        assert_eq!(n.levels(&rules), None);
        n.alerts[0]
            .labels
            .insert("severity".to_string(), "warning".to_string());
        n.alerts[1]
            .labels
            .insert("severity".to_string(), "critical".to_string());
        assert_eq!(n.levels(&rules), Some((Level::High, Level::High)));
        n.common_labels
            .insert("severity".to_string(), "INFO".to_string());
        assert_eq!(n.levels(&rules), Some((Level::Low, Level::Low)));
    }

    #[test]
    fn a_label_is_the_groups_or_the_one_value_all_alerts_agree_on() {
        let mut n = notification(vec![alert("1", true, T0), alert("2", true, T0)]);
        for a in &mut n.alerts {
            a.labels.insert("service".to_string(), "shop".to_string());
        }
        assert_eq!(n.label("service").as_deref(), Some("shop"));
        n.alerts[1]
            .labels
            .insert("service".to_string(), "cart".to_string());
        assert_eq!(n.label("service"), None);
    }

    #[test]
    fn control_characters_in_a_notification_are_neutralized() {
        let mut n = notification(vec![alert("1", true, T0)]);
        n.common_annotations
            .insert("summary".to_string(), "bad\u{202e}text\u{7}".to_string());
        let clean = n.neutralized();
        assert_eq!(clean.title(), "bad\u{fffd}text\u{fffd}");
    }

    #[test]
    fn recurrence_counts_incidents_within_the_window() {
        let mut g = group();
        let week = Duration::from_secs(7 * 24 * 3600);
        let id = |n| super::super::ids::RecordId::new(super::super::ids::Kind::Incident, n);
        assert_eq!(g.raised(id(1), at("2026-11-01T00:00:00Z"), week).len(), 1);
        assert_eq!(
            g.raised(id(2), at("2026-12-01T00:00:00Z"), week),
            vec![id(2)]
        );
        assert_eq!(
            g.raised(id(3), at("2026-12-02T00:00:00Z"), week),
            vec![id(2), id(3)]
        );
    }
}

//! The service report (ISO/IEC 20000-1 9.1, monitoring results), pure: records are folded in one
//! at a time, so a report over a million incidents needs memory for the totals only.
//!
//! The period is whole UTC days, `from` to `to` inclusive. An incident, change, release or
//! nonconformity belongs to the period it was created in; a deployment to the period it
//! happened in. Problems and known errors are counted as they are now (open ones only).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::ids::Kind;
use super::records::Record;
use super::status::{ChangeStatus, NcStatus, ProblemStatus};

/// The kinds of record a report reads.
pub const KINDS: [Kind; 5] = [
    Kind::Incident,
    Kind::Change,
    Kind::Release,
    Kind::Problem,
    Kind::Nonconformity,
];

/// The period asked for, with the defaults: `to` today, `from` 29 days before `to` (30 days).
pub fn period(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> (NaiveDate, NaiveDate) {
    let to = to.unwrap_or_else(|| now.date_naive());
    let from = from.unwrap_or_else(|| to - chrono::Duration::days(29));
    (from, to)
}

/// The instants a period of whole UTC days covers: from `from`'s midnight up to, not including,
/// the midnight after `to`.
pub fn bounds(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (midnight(from), midnight(to.succ_opt().unwrap_or(to)))
}

/// The name incidents and changes with no service are reported under.
pub const NO_SERVICE: &str = "(no service)";

/// Figures for one service, or for all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Section {
    pub service: String,
    pub incidents: u64,
    /// `P1`..`P4` → count.
    pub incidents_by_priority: BTreeMap<String, u64>,
    /// Mean time from raised to acknowledged, in seconds, over acknowledged incidents.
    pub mean_time_to_acknowledge_secs: Option<f64>,
    /// Mean time from raised to resolved, in seconds, over resolved incidents.
    pub mean_time_to_resolve_secs: Option<f64>,
    /// Incidents whose SLA is decided: resolved, or breached.
    pub sla_measured: u64,
    pub sla_met: u64,
    pub sla_attainment_pct: Option<f64>,
    pub sla_breaches: u64,
    pub changes: u64,
    /// `standard`, `normal`, `emergency` → count.
    pub changes_by_type: BTreeMap<String, u64>,
    /// `successful`, `failed`, `rejected`, `open` → count.
    pub changes_by_outcome: BTreeMap<String, u64>,
    /// Successful over successful plus failed, in percent.
    pub change_success_rate_pct: Option<f64>,
    /// Emergency changes over all changes, in percent.
    pub emergency_change_share_pct: Option<f64>,
    /// Incidents raised by alerts (Alertmanager, Grafana).
    pub incidents_from_alerts: u64,
    /// Alert-born incidents over all incidents, in percent.
    pub alert_incident_share_pct: Option<f64>,
    /// Mean time from raised to acknowledged, in seconds, over acknowledged alert-born incidents.
    pub alert_mean_time_to_acknowledge_secs: Option<f64>,
    /// Changes counted as failed because an incident is linked to them as a suspected cause and
    /// no reviewer cleared it.
    pub changes_failed_by_incidents: u64,
    /// Pages to people (not to channels or webhooks) by escalation chains.
    pub pages: u64,
    pub pages_by_person: BTreeMap<String, u64>,
    /// Of those, sent outside the working hours of the rules file.
    pub pages_outside_working_hours: u64,
    /// Mean time from a page to the acknowledgement that answered it, in seconds.
    pub mean_time_page_to_acknowledge_secs: Option<f64>,
    /// Incidents whose chain ran out of steps with nobody acknowledging.
    pub escalations_ran_out: u64,
    #[serde(skip)]
    page_ack_total: f64,
    #[serde(skip)]
    page_ack_n: u64,
    #[serde(skip)]
    alert_ack_total: f64,
    #[serde(skip)]
    alert_ack_n: u64,
    #[serde(skip)]
    ack_total: f64,
    #[serde(skip)]
    ack_n: u64,
    #[serde(skip)]
    resolve_total: f64,
    #[serde(skip)]
    resolve_n: u64,
}

/// A release of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseLine {
    pub id: String,
    pub version: String,
    pub repo: Option<String>,
    pub changes: Vec<String>,
    /// Deployments in the period: `env` (at RFC 3339).
    pub deployments: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total: Section,
    pub services: Vec<Section>,
    pub releases: Vec<ReleaseLine>,
    pub deployments: u64,
    pub open_problems: u64,
    pub known_errors: u64,
    pub nonconformities_raised: u64,
    pub nonconformities_open: u64,
    pub nonconformities_corrected: u64,
}

/// Folds records into a report.
#[derive(Debug)]
pub struct ReportBuilder {
    from: NaiveDate,
    to: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    total: Section,
    services: BTreeMap<String, Section>,
    releases: Vec<ReleaseLine>,
    deployments: u64,
    open_problems: u64,
    known_errors: u64,
    nc_raised: u64,
    nc_open: u64,
    nc_corrected: u64,
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

impl Section {
    fn named(service: &str) -> Self {
        Section {
            service: service.to_string(),
            ..Section::default()
        }
    }

    fn finish(mut self) -> Self {
        self.mean_time_to_acknowledge_secs =
            (self.ack_n > 0).then(|| (self.ack_total / self.ack_n as f64).round());
        self.mean_time_to_resolve_secs =
            (self.resolve_n > 0).then(|| (self.resolve_total / self.resolve_n as f64).round());
        self.sla_attainment_pct = pct(self.sla_met, self.sla_measured);
        self.alert_incident_share_pct = pct(self.incidents_from_alerts, self.incidents);
        self.mean_time_page_to_acknowledge_secs =
            (self.page_ack_n > 0).then(|| (self.page_ack_total / self.page_ack_n as f64).round());
        self.alert_mean_time_to_acknowledge_secs = (self.alert_ack_n > 0)
            .then(|| (self.alert_ack_total / self.alert_ack_n as f64).round());
        let ok = *self.changes_by_outcome.get("successful").unwrap_or(&0);
        let failed = *self.changes_by_outcome.get("failed").unwrap_or(&0);
        self.change_success_rate_pct = pct(ok, ok + failed);
        let emergency = *self.changes_by_type.get("emergency").unwrap_or(&0);
        self.emergency_change_share_pct = pct(emergency, self.changes);
        self
    }
}

impl ReportBuilder {
    /// A report for `from`..=`to` (UTC days).
    pub fn new(from: NaiveDate, to: NaiveDate) -> Self {
        let (start, end) = bounds(from, to);
        ReportBuilder {
            from,
            to,
            start,
            end,
            total: Section::named("all services"),
            services: BTreeMap::new(),
            releases: Vec::new(),
            deployments: 0,
            open_problems: 0,
            known_errors: 0,
            nc_raised: 0,
            nc_open: 0,
            nc_corrected: 0,
        }
    }

    fn within(&self, at: DateTime<Utc>) -> bool {
        at >= self.start && at < self.end
    }

    /// Applies `f` to the total and to the service's section.
    fn both(&mut self, service: Option<&str>, f: impl Fn(&mut Section)) {
        f(&mut self.total);
        let name = service.unwrap_or(NO_SERVICE);
        f(self
            .services
            .entry(name.to_string())
            .or_insert_with(|| Section::named(name)));
    }

    pub fn add(&mut self, record: &Record) {
        match record {
            Record::Incident(i) if self.within(i.created_at) => {
                let ack = i
                    .acknowledged_at
                    .map(|a| (a - i.created_at).num_milliseconds() as f64 / 1000.0);
                let resolve = i
                    .resolved_at
                    .map(|r| (r - i.created_at).num_milliseconds() as f64 / 1000.0);
                let decided = i.breached || i.resolved_at.is_some();
                let priority = i.priority.to_string();
                let from_alert = i.alert.is_some();
                let people_pages: Vec<&crate::domain::escalation::Page> = i
                    .escalation
                    .iter()
                    .flat_map(|e| e.pages.iter())
                    .filter(|p| !matches!(p.who.as_str(), "channel" | "webhook" | "nobody"))
                    .collect();
                let ran_out = i
                    .escalation
                    .as_ref()
                    .is_some_and(|e| e.stopped.as_deref() == Some("ran out of steps"));
                self.both(i.service.as_deref(), |s| {
                    s.incidents += 1;
                    for p in &people_pages {
                        s.pages += 1;
                        *s.pages_by_person.entry(p.who.clone()).or_default() += 1;
                        if p.outside_hours {
                            s.pages_outside_working_hours += 1;
                        }
                        if let Some(a) = p.acknowledged_at {
                            s.page_ack_total += (a - p.at).num_milliseconds() as f64 / 1000.0;
                            s.page_ack_n += 1;
                        }
                    }
                    if ran_out {
                        s.escalations_ran_out += 1;
                    }
                    if from_alert {
                        s.incidents_from_alerts += 1;
                        if let Some(a) = ack {
                            s.alert_ack_total += a;
                            s.alert_ack_n += 1;
                        }
                    }
                    *s.incidents_by_priority.entry(priority.clone()).or_default() += 1;
                    if let Some(a) = ack {
                        s.ack_total += a;
                        s.ack_n += 1;
                    }
                    if let Some(r) = resolve {
                        s.resolve_total += r;
                        s.resolve_n += 1;
                    }
                    if decided {
                        s.sla_measured += 1;
                        if !i.breached {
                            s.sla_met += 1;
                        }
                    }
                    if i.breached {
                        s.sla_breaches += 1;
                    }
                });
            }
            Record::Change(c) if self.within(c.created_at) => {
                let outcome = match (c.status, c.outcome) {
                    (ChangeStatus::Rejected, _) => "rejected",
                    (_, Some(ChangeStatus::Completed)) | (ChangeStatus::Completed, _) => {
                        "successful"
                    }
                    (_, Some(ChangeStatus::Failed | ChangeStatus::RolledBack))
                    | (ChangeStatus::Failed | ChangeStatus::RolledBack, _) => "failed",
                    _ => "open",
                };
                // An incident suspected of being caused by the change, not cleared by a
                // reviewer, makes it a failed change.
                let by_incident = outcome != "rejected" && c.uncleared_incidents().next().is_some();
                let outcome = if by_incident { "failed" } else { outcome };
                let kind = c.change_type.as_str().to_string();
                self.both(c.service.as_deref(), |s| {
                    s.changes += 1;
                    if by_incident {
                        s.changes_failed_by_incidents += 1;
                    }
                    *s.changes_by_type.entry(kind.clone()).or_default() += 1;
                    *s.changes_by_outcome.entry(outcome.to_string()).or_default() += 1;
                });
            }
            Record::Release(r) => {
                let deployments: Vec<String> = r
                    .deployments
                    .iter()
                    .filter(|d| self.within(d.at))
                    .map(|d| format!("{} ({})", d.env, d.at.format("%Y-%m-%dT%H:%M:%SZ")))
                    .collect();
                self.deployments += deployments.len() as u64;
                if self.within(r.created_at) || !deployments.is_empty() {
                    self.releases.push(ReleaseLine {
                        id: r.id.to_string(),
                        version: r.version.clone(),
                        repo: r.repo.clone(),
                        changes: r.changes.iter().map(|c| c.to_string()).collect(),
                        deployments,
                    });
                }
            }
            Record::Problem(p) => match p.status {
                ProblemStatus::Open => self.open_problems += 1,
                ProblemStatus::KnownError => self.known_errors += 1,
                _ => {}
            },
            Record::Nonconformity(n) if self.within(n.created_at) => {
                self.nc_raised += 1;
                if n.status == NcStatus::Open {
                    self.nc_open += 1;
                } else {
                    self.nc_corrected += 1;
                }
            }
            _ => {}
        }
    }

    pub fn finish(self) -> ServiceReport {
        ServiceReport {
            from: self.from,
            to: self.to,
            total: self.total.finish(),
            services: self.services.into_values().map(Section::finish).collect(),
            releases: self.releases,
            deployments: self.deployments,
            open_problems: self.open_problems,
            known_errors: self.known_errors,
            nonconformities_raised: self.nc_raised,
            nonconformities_open: self.nc_open,
            nonconformities_corrected: self.nc_corrected,
        }
    }
}

fn duration(secs: Option<f64>) -> String {
    match secs {
        None => "n/a".to_string(),
        Some(s) => {
            let s = s.max(0.0) as u64;
            match s {
                0..=59 => format!("{s}s"),
                60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
                _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
            }
        }
    }
}

fn percent(p: Option<f64>) -> String {
    p.map(|p| format!("{p}%")).unwrap_or_else(|| "n/a".into())
}

impl ServiceReport {
    /// The few lines chat shows; the full report is at `link`.
    pub fn summary(&self, link: &str) -> String {
        let t = &self.total;
        let by_priority: Vec<String> = ["P1", "P2", "P3", "P4"]
            .iter()
            .map(|p| format!("{p} {}", t.incidents_by_priority.get(*p).unwrap_or(&0)))
            .collect();
        format!(
            "Service report {}..{}\nIncidents: {} ({}); MTTA {}, MTTR {}; SLA {} met, {} breaches; from alerts {} ({}), their MTTA {}\nChanges: {} ({} successful, {} failed, {} of them by incidents, {} emergency); success rate {}\nPages: {} ({} outside working hours), page to acknowledgement {}; escalations that ran out of steps: {}\nReleases: {}, deployments: {}; open problems {}, known errors {}\nNonconformities: {} raised ({} open, {} corrected)\nFull report: {link}",
            self.from,
            self.to,
            t.incidents,
            by_priority.join(", "),
            duration(t.mean_time_to_acknowledge_secs),
            duration(t.mean_time_to_resolve_secs),
            percent(t.sla_attainment_pct),
            t.sla_breaches,
            t.incidents_from_alerts,
            percent(t.alert_incident_share_pct),
            duration(t.alert_mean_time_to_acknowledge_secs),
            t.changes,
            t.changes_by_outcome.get("successful").unwrap_or(&0),
            t.changes_by_outcome.get("failed").unwrap_or(&0),
            t.changes_failed_by_incidents,
            t.changes_by_type.get("emergency").unwrap_or(&0),
            percent(t.change_success_rate_pct),
            t.pages,
            t.pages_outside_working_hours,
            duration(t.mean_time_page_to_acknowledge_secs),
            t.escalations_ran_out,
            self.releases.len(),
            self.deployments,
            self.open_problems,
            self.known_errors,
            self.nonconformities_raised,
            self.nonconformities_open,
            self.nonconformities_corrected,
        )
    }

    /// The full report as plain text, one block per service.
    pub fn to_text(&self) -> String {
        let mut out = format!("Service report {} to {} (UTC days)\n", self.from, self.to);
        for s in std::iter::once(&self.total).chain(self.services.iter()) {
            out.push_str(&format!(
                "\n{}\n  incidents: {} {:?}\n  mean time to acknowledge: {}; to resolve: {}\n  SLA attainment: {} ({} of {}); breaches: {}\n  from alerts: {} ({}); their mean time to acknowledge: {}\n  pages: {} {:?}; outside working hours: {}; mean time from page to acknowledgement: {}; escalations that ran out of steps: {}\n  changes: {} {:?} {:?}\n  change success rate: {}; emergency share: {}; failed by incidents not cleared: {}\n",
                s.service,
                s.incidents,
                s.incidents_by_priority,
                duration(s.mean_time_to_acknowledge_secs),
                duration(s.mean_time_to_resolve_secs),
                percent(s.sla_attainment_pct),
                s.sla_met,
                s.sla_measured,
                s.sla_breaches,
                s.incidents_from_alerts,
                percent(s.alert_incident_share_pct),
                duration(s.alert_mean_time_to_acknowledge_secs),
                s.pages,
                s.pages_by_person,
                s.pages_outside_working_hours,
                duration(s.mean_time_page_to_acknowledge_secs),
                s.escalations_ran_out,
                s.changes,
                s.changes_by_type,
                s.changes_by_outcome,
                percent(s.change_success_rate_pct),
                percent(s.emergency_change_share_pct),
                s.changes_failed_by_incidents,
            ));
        }
        out.push_str(&format!(
            "\nreleases: {}; deployments: {}\n",
            self.releases.len(),
            self.deployments
        ));
        for r in &self.releases {
            out.push_str(&format!(
                "  {} {} changes [{}] deployments [{}]\n",
                r.id,
                r.version,
                r.changes.join(", "),
                r.deployments.join(", ")
            ));
        }
        out.push_str(&format!(
            "open problems: {}; known errors: {}\nnonconformities raised: {} ({} open, {} corrected)\n",
            self.open_problems,
            self.known_errors,
            self.nonconformities_raised,
            self.nonconformities_open,
            self.nonconformities_corrected
        ));
        out
    }
}

//! The service report (ISO/IEC 20000-1 9.1, monitoring results), pure: records are folded in one
//! at a time, so a report over a million incidents needs memory for the totals only.
//!
//! The period is whole UTC days, `from` to `to` inclusive. An incident, change, release or
//! nonconformity belongs to the period it was created in; a deployment to the period it
//! happened in. Problems and known errors are counted as they are now (open ones only).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::command::ChangeType;
use super::ids::Kind;
use super::priority::Priority;
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

/// The kinds a report reads record by record; incidents and changes, the big kinds, it reads
/// from their rollups (`Tally`, `contribution`).
pub const LISTED_KINDS: [Kind; 3] = [Kind::Release, Kind::Problem, Kind::Nonconformity];

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

/// The additive figures of a report bucket: counters and millisecond sums, all integers, so a
/// record's old contribution can be taken away exactly when it changes. Indexed by `Counter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: [i64; COUNTERS.len()],
    /// Pages to people, by who was paged.
    pub pages_by_person: BTreeMap<String, i64>,
}

/// The counters of a `Tally`, in the order of `COUNTERS` (which names their store columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Incidents,
    P1,
    P2,
    P3,
    P4,
    AckMs,
    AckN,
    ResolveMs,
    ResolveN,
    SlaMeasured,
    SlaMet,
    SlaBreaches,
    FromAlerts,
    AlertAckMs,
    AlertAckN,
    Pages,
    PagesOutsideHours,
    PageAckMs,
    PageAckN,
    RanOut,
    Changes,
    Standard,
    Normal,
    Emergency,
    Successful,
    Failed,
    Rejected,
    Open,
    FailedByIncidents,
}

/// The names of the counters, in `Counter` order: also the columns of the store's rollup rows.
pub const COUNTERS: [&str; 29] = [
    "incidents",
    "p1",
    "p2",
    "p3",
    "p4",
    "ack_ms",
    "ack_n",
    "resolve_ms",
    "resolve_n",
    "sla_measured",
    "sla_met",
    "sla_breaches",
    "from_alerts",
    "alert_ack_ms",
    "alert_ack_n",
    "pages",
    "pages_outside_hours",
    "page_ack_ms",
    "page_ack_n",
    "ran_out",
    "changes",
    "type_standard",
    "type_normal",
    "type_emergency",
    "outcome_successful",
    "outcome_failed",
    "outcome_rejected",
    "outcome_open",
    "failed_by_incidents",
];

const PRIORITIES: [(Counter, &str); 4] = [
    (Counter::P1, "P1"),
    (Counter::P2, "P2"),
    (Counter::P3, "P3"),
    (Counter::P4, "P4"),
];
const TYPES: [(Counter, &str); 3] = [
    (Counter::Standard, "standard"),
    (Counter::Normal, "normal"),
    (Counter::Emergency, "emergency"),
];
const OUTCOMES: [(Counter, &str); 4] = [
    (Counter::Successful, "successful"),
    (Counter::Failed, "failed"),
    (Counter::Rejected, "rejected"),
    (Counter::Open, "open"),
];

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds()
}

/// The mean of a millisecond sum over `n`, in whole seconds.
fn mean_secs(ms: i64, n: i64) -> Option<f64> {
    (n > 0).then(|| (ms as f64 / (n as f64 * 1000.0)).round())
}

impl Tally {
    pub fn get(&self, c: Counter) -> i64 {
        self.counts[c as usize]
    }

    fn bump(&mut self, c: Counter, by: i64) {
        self.counts[c as usize] += by;
    }

    /// Adds `other` times `sign` (1 to add, -1 to take away).
    pub fn add(&mut self, other: &Tally, sign: i64) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b * sign;
        }
        for (who, n) in &other.pages_by_person {
            let e = self.pages_by_person.entry(who.clone()).or_default();
            *e += n * sign;
            if *e == 0 {
                self.pages_by_person.remove(who);
            }
        }
    }

    /// Nothing counted (every counter zero, no pages).
    pub fn is_zero(&self) -> bool {
        self.counts.iter().all(|c| *c == 0) && self.pages_by_person.is_empty()
    }

    /// No incident and no change counted: such a bucket is not a section of the report.
    fn is_empty(&self) -> bool {
        self.get(Counter::Incidents) == 0 && self.get(Counter::Changes) == 0
    }

    fn count(&self, c: Counter) -> u64 {
        u64::try_from(self.get(c)).unwrap_or(0)
    }

    fn named(&self, names: &[(Counter, &str)]) -> BTreeMap<String, u64> {
        names
            .iter()
            .filter(|(c, _)| self.get(*c) > 0)
            .map(|(c, name)| (name.to_string(), self.count(*c)))
            .collect()
    }

    /// The figures of a report section.
    fn section(&self, service: &str) -> Section {
        use Counter as C;
        let ok = self.count(C::Successful);
        let failed = self.count(C::Failed);
        Section {
            service: service.to_string(),
            incidents: self.count(C::Incidents),
            incidents_by_priority: self.named(&PRIORITIES),
            mean_time_to_acknowledge_secs: mean_secs(self.get(C::AckMs), self.get(C::AckN)),
            mean_time_to_resolve_secs: mean_secs(self.get(C::ResolveMs), self.get(C::ResolveN)),
            sla_measured: self.count(C::SlaMeasured),
            sla_met: self.count(C::SlaMet),
            sla_attainment_pct: pct(self.count(C::SlaMet), self.count(C::SlaMeasured)),
            sla_breaches: self.count(C::SlaBreaches),
            changes: self.count(C::Changes),
            changes_by_type: self.named(&TYPES),
            changes_by_outcome: self.named(&OUTCOMES),
            change_success_rate_pct: pct(ok, ok + failed),
            emergency_change_share_pct: pct(self.count(C::Emergency), self.count(C::Changes)),
            incidents_from_alerts: self.count(C::FromAlerts),
            alert_incident_share_pct: pct(self.count(C::FromAlerts), self.count(C::Incidents)),
            alert_mean_time_to_acknowledge_secs: mean_secs(
                self.get(C::AlertAckMs),
                self.get(C::AlertAckN),
            ),
            changes_failed_by_incidents: self.count(C::FailedByIncidents),
            pages: self.count(C::Pages),
            pages_by_person: self
                .pages_by_person
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(who, n)| (who.clone(), u64::try_from(*n).unwrap_or(0)))
                .collect(),
            pages_outside_working_hours: self.count(C::PagesOutsideHours),
            mean_time_page_to_acknowledge_secs: mean_secs(
                self.get(C::PageAckMs),
                self.get(C::PageAckN),
            ),
            escalations_ran_out: self.count(C::RanOut),
        }
    }
}

/// What a record adds to the report: its bucket (the UTC day it was created, the service it is
/// reported under) and its figures. Only incidents and changes are counted this way.
pub fn contribution(record: &Record) -> Option<(NaiveDate, String, Tally)> {
    use Counter as C;
    let mut t = Tally::default();
    let (created, service) = match record {
        Record::Incident(i) => {
            t.bump(C::Incidents, 1);
            t.bump(
                match i.priority {
                    Priority::P1 => C::P1,
                    Priority::P2 => C::P2,
                    Priority::P3 => C::P3,
                    Priority::P4 => C::P4,
                },
                1,
            );
            let ack = i.acknowledged_at.map(|a| millis(i.created_at, a));
            if let Some(a) = ack {
                t.bump(C::AckMs, a);
                t.bump(C::AckN, 1);
            }
            if let Some(r) = i.resolved_at {
                t.bump(C::ResolveMs, millis(i.created_at, r));
                t.bump(C::ResolveN, 1);
            }
            if i.breached || i.resolved_at.is_some() {
                t.bump(C::SlaMeasured, 1);
                if !i.breached {
                    t.bump(C::SlaMet, 1);
                }
            }
            if i.breached {
                t.bump(C::SlaBreaches, 1);
            }
            if i.alert.is_some() {
                t.bump(C::FromAlerts, 1);
                if let Some(a) = ack {
                    t.bump(C::AlertAckMs, a);
                    t.bump(C::AlertAckN, 1);
                }
            }
            let people = i
                .escalation
                .iter()
                .flat_map(|e| e.pages.iter())
                .filter(|p| !matches!(p.who.as_str(), "channel" | "webhook" | "nobody"));
            for p in people {
                t.bump(C::Pages, 1);
                *t.pages_by_person.entry(p.who.clone()).or_default() += 1;
                if p.outside_hours {
                    t.bump(C::PagesOutsideHours, 1);
                }
                if let Some(a) = p.acknowledged_at {
                    t.bump(C::PageAckMs, millis(p.at, a));
                    t.bump(C::PageAckN, 1);
                }
            }
            if i.escalation
                .as_ref()
                .is_some_and(|e| e.stopped.as_deref() == Some("ran out of steps"))
            {
                t.bump(C::RanOut, 1);
            }
            (i.created_at, i.service.as_deref())
        }
        Record::Change(c) => {
            let outcome = match (c.status, c.outcome) {
                (ChangeStatus::Rejected, _) => C::Rejected,
                (_, Some(ChangeStatus::Completed)) | (ChangeStatus::Completed, _) => C::Successful,
                (_, Some(ChangeStatus::Failed | ChangeStatus::RolledBack))
                | (ChangeStatus::Failed | ChangeStatus::RolledBack, _) => C::Failed,
                _ => C::Open,
            };
            // An incident suspected of being caused by the change, not cleared by a reviewer,
            // makes it a failed change.
            let by_incident = outcome != C::Rejected && c.uncleared_incidents().next().is_some();
            t.bump(C::Changes, 1);
            if by_incident {
                t.bump(C::FailedByIncidents, 1);
            }
            t.bump(if by_incident { C::Failed } else { outcome }, 1);
            t.bump(
                match c.change_type {
                    ChangeType::Standard => C::Standard,
                    ChangeType::Normal => C::Normal,
                    ChangeType::Emergency => C::Emergency,
                },
                1,
            );
            (c.created_at, c.service.as_deref())
        }
        _ => return None,
    };
    Some((
        created.date_naive(),
        service.unwrap_or(NO_SERVICE).to_string(),
        t,
    ))
}

/// The change a batch of writes makes to the report's buckets, by (UTC day, service): what the
/// store adds to its rollups in the same transaction as the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollups(pub BTreeMap<(NaiveDate, String), Tally>);

impl Rollups {
    /// Adds (`sign` 1) or takes away (`sign` -1) a contribution.
    pub fn add(&mut self, contribution: Option<&(NaiveDate, String, Tally)>, sign: i64) {
        if let Some((day, service, t)) = contribution {
            self.0
                .entry((*day, service.clone()))
                .or_default()
                .add(t, sign);
        }
    }

    /// A record's move from `before` (its contribution as stored, `None` when new) to `after`.
    pub fn replace(
        &mut self,
        before: Option<&(NaiveDate, String, Tally)>,
        after: Option<&(NaiveDate, String, Tally)>,
    ) {
        self.add(before, -1);
        self.add(after, 1);
    }

    /// The buckets that changed (a record written again unchanged changes none).
    pub fn changed(&self) -> impl Iterator<Item = (&(NaiveDate, String), &Tally)> {
        self.0.iter().filter(|(_, t)| !t.is_zero())
    }

    pub fn is_empty(&self) -> bool {
        self.changed().next().is_none()
    }
}

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
    total: Tally,
    services: BTreeMap<String, Tally>,
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

impl ReportBuilder {
    /// A report for `from`..=`to` (UTC days).
    pub fn new(from: NaiveDate, to: NaiveDate) -> Self {
        let (start, end) = bounds(from, to);
        ReportBuilder {
            from,
            to,
            start,
            end,
            total: Tally::default(),
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

    /// Adds a bucket's figures to the service's section and the total: a record's
    /// contribution (`add`), or a stored rollup of the period (the report without the records).
    pub fn add_tally(&mut self, service: &str, tally: &Tally) {
        self.total.add(tally, 1);
        match self.services.get_mut(service) {
            Some(s) => s.add(tally, 1),
            None => {
                self.services.insert(service.to_string(), tally.clone());
            }
        }
    }

    pub fn add(&mut self, record: &Record) {
        match record {
            Record::Incident(_) | Record::Change(_) => {
                if let Some((day, service, tally)) = contribution(record) {
                    if day >= self.from && day <= self.to {
                        self.add_tally(&service, &tally);
                    }
                }
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
            total: self.total.section("all services"),
            services: self
                .services
                .iter()
                .filter(|(_, t)| !t.is_empty())
                .map(|(name, t)| t.section(name))
                .collect(),
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

//! The ISO/IEC 20000 records: incidents, requests, problems, changes, releases, nonconformities, services and CIs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::{ChangeType, Level, Window};
use super::ids::{Actor, Kind, RecordId};
use super::priority::Priority;
use super::status::{
    ChangeStatus, IncidentStatus, NcStatus, ProblemStatus, ReleaseStatus, RequestStatus,
};

/// A dated remark on a record's work log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: RecordId,
    pub title: String,
    pub status: IncidentStatus,
    pub impact: Level,
    pub urgency: Level,
    pub priority: Priority,
    pub service: Option<String>,
    pub ci: Option<String>,
    /// An information security incident (ISO/IEC 20000-1 8.7.3.3).
    pub security: bool,
    pub assignee: Option<Actor>,
    pub reporter: Actor,
    pub response_due: DateTime<Utc>,
    pub resolve_due: DateTime<Utc>,
    pub breached: bool,
    /// When the deadline timer saw the response or resolution target missed (each raises one NC).
    #[serde(default)]
    pub response_breached_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resolve_breached_at: Option<DateTime<Utc>>,
    /// A major incident: it gets a linked problem record (ISO/IEC 20000-1 8.6.3).
    #[serde(default)]
    pub major: bool,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub problems: Vec<RecordId>,
    pub notes: Vec<Note>,
    /// What the incident is about beyond its title: for an alert-born incident, the alerts'
    /// annotations and their links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The alert group that raised it, for an alert-born incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<IncidentAlert>,
    /// Changes in progress or just completed on its service or CI when it was raised: suspected
    /// causes, until a reviewer clears them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspected_changes: Vec<RecordId>,
    /// Earlier incidents of the same alert group that this one recurs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recurs: Vec<RecordId>,
    /// Who took which role in the response (`commander`, `comms`, `scribe`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub roles: std::collections::BTreeMap<super::command::IncidentRole, Actor>,
    /// A major incident: by when it needs a commander (`[incidents] commander_within` after it
    /// became major), and when its room was reminded that it has none (once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander_due: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander_reminded_at: Option<DateTime<Utc>>,
    /// When an open incident is stale if nobody acts on it (`[incidents] stale_after` after the
    /// last action by a person or an alert); cleared when its room is nudged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_due: Option<DateTime<Utc>>,
    /// Its escalation chain, once one started: the steps run and every page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Box<super::escalation::Escalation>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where an alert-born incident came from, and how its alerts stand now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentAlert {
    /// The alert group record (`Kind::Alert`) that raised it.
    pub group: String,
    /// `alertmanager` or `grafana`.
    pub source: String,
    pub firing: u32,
    pub total: u32,
    /// The alerts' `generatorURL`s (each once, at most `alerts::MAX_LINKS`).
    #[serde(default)]
    pub links: Vec<String>,
}

/// The state of one alert group from a monitoring system (an ISO/IEC 20000-1 9.1 monitoring
/// result): its alerts as last reported, and the incidents and problem it led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    /// `alert-` and the first 16 hex digits of the SHA-256 of the source, receiver and group key.
    pub id: String,
    pub title: String,
    pub status: AlertGroupStatus,
    /// `alertmanager` or `grafana`.
    pub source: String,
    pub receiver: String,
    pub group_key: String,
    #[serde(default)]
    pub external_url: String,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub alerts: Vec<AlertInstance>,
    /// The incident its alerts are about now.
    pub incident: Option<RecordId>,
    /// Every incident the group raised (newest last; the oldest are dropped past a bound), for
    /// recurrence.
    pub incidents: Vec<RaisedIncident>,
    /// The problem opened when the group kept raising incidents (ISO/IEC 20000-1 8.6.3).
    pub problem: Option<RecordId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertGroupStatus {
    Firing,
    Resolved,
}

impl AlertGroup {
    pub fn status_str(&self) -> &'static str {
        match self.status {
            AlertGroupStatus::Firing => "firing",
            AlertGroupStatus::Resolved => "resolved",
        }
    }
}

/// One alert of a group, identified by its fingerprint; `starts_at` tells one firing of it
/// from the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInstance {
    pub fingerprint: String,
    /// `alertname`, or the fingerprint when it has none.
    pub name: String,
    pub status: AlertGroupStatus,
    pub labels: std::collections::BTreeMap<String, String>,
    pub summary: Option<String>,
    pub generator_url: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaisedIncident {
    pub id: RecordId,
    pub at: DateTime<Utc>,
}

/// The overrides of one on-call schedule (the schedule itself is in the rules file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OncallRecord {
    /// The schedule's name.
    pub id: String,
    pub title: String,
    /// `active`.
    pub status: String,
    pub overrides: Vec<super::oncall::Override>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An incident suspected of being caused by a change, and whether a reviewer cleared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectedIncident {
    pub incident: RecordId,
    pub linked_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_by: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRequest {
    pub id: RecordId,
    pub title: String,
    pub status: RequestStatus,
    pub service: Option<String>,
    pub requester: Actor,
    pub fulfilment: Option<String>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub notes: Vec<Note>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A problem; with a root cause or workaround recorded it is a known error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: RecordId,
    pub title: String,
    pub status: ProblemStatus,
    pub incidents: Vec<RecordId>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub resolution: Option<String>,
    pub opened_by: Actor,
    /// The major incident this problem was opened for, if any: it cannot close without a root cause.
    #[serde(default)]
    pub major_incident: Option<RecordId>,
    pub closed_at: Option<DateTime<Utc>>,
    pub notes: Vec<Note>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// One CAB member's vote; a later vote by the same voter replaces the earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub voter: Actor,
    pub decision: Decision,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    PullRequest,
    Commit,
}

/// A pull request or commit linked to a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub kind: LinkKind,
    pub repo: String,
    pub number: Option<u64>,
    pub sha: Option<String>,
    pub url: String,
    /// Who wrote the pull request or commit, when known: they may not vote on the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Actor>,
    /// Every change the pull request names: its status is the worst of theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<RecordId>,
}

impl Link {
    pub fn pull_request(repo: &str, number: u64) -> Self {
        Link {
            kind: LinkKind::PullRequest,
            repo: repo.to_string(),
            number: Some(number),
            sha: None,
            url: format!("https://github.com/{repo}/pull/{number}"),
            author: None,
            changes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: RecordId,
    pub title: String,
    pub status: ChangeStatus,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub risk: Level,
    pub service: Option<String>,
    pub requester: Actor,
    pub window: Option<Window>,
    pub template: Option<String>,
    /// Approvals needed when it was submitted (from the policy then in force).
    pub required_approvals: u32,
    pub approvals: Vec<Approval>,
    pub links: Vec<Link>,
    pub review: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How the implementation ended (completed, failed, rolled_back), kept after the change
    /// closes, for the change success rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ChangeStatus>,
    pub reviewed_at: Option<DateTime<Utc>>,
    /// Emergency changes: the post-implementation review is due by then.
    #[serde(default)]
    pub review_due: Option<DateTime<Utc>>,
    /// When the deadline timer found the review overdue (and raised a nonconformity).
    #[serde(default)]
    pub review_overdue_at: Option<DateTime<Utc>>,
    /// Incidents raised by alerts on its service or CI while it was in progress or just after:
    /// the change counts as failed in the service report unless a reviewer clears each one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspected_incidents: Vec<SuspectedIncident>,
    pub closed_at: Option<DateTime<Utc>>,
    pub notes: Vec<Note>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub env: String,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: RecordId,
    pub title: String,
    pub status: ReleaseStatus,
    pub version: String,
    pub repo: Option<String>,
    pub changes: Vec<RecordId>,
    pub commits: Vec<String>,
    /// Commits that belong to no approved change: flagged, and a nonconformity raised.
    #[serde(default)]
    pub unapproved_commits: Vec<String>,
    pub deployments: Vec<Deployment>,
    pub created_by: Actor,
    pub notes: Vec<Note>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rule broken where opsledger could not prevent it, and its corrective action (ISO/IEC 20000-1 10.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nonconformity {
    pub id: RecordId,
    pub title: String,
    pub status: NcStatus,
    /// The rule that was broken, for example `sla.resolve` or `manual`.
    pub rule: String,
    pub record: Option<RecordId>,
    pub raised_by: Actor,
    pub corrective_action: Option<String>,
    pub corrected_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Services are named, not numbered: the ID is the name.
    pub id: String,
    pub title: String,
    pub status: String,
    pub owner: Option<Actor>,
    /// The escalation chain its incidents page through (else the default chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A configuration item and the items it depends on (ISO/IEC 20000-1 8.2.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub id: String,
    pub title: String,
    pub status: String,
    #[serde(rename = "type")]
    pub ci_type: Option<String>,
    pub service: Option<String>,
    pub depends: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Any record, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Incident(Incident),
    Request(ServiceRequest),
    Problem(Problem),
    Change(Change),
    Release(Release),
    Nonconformity(Nonconformity),
    Service(Service),
    Ci(ConfigItem),
    Alert(AlertGroup),
    Oncall(OncallRecord),
}

/// Calls `$body` with the inner record bound to `$r`, whatever its kind.
macro_rules! each_record {
    ($rec:expr, $r:ident => $body:expr) => {
        match $rec {
            Record::Incident($r) => $body,
            Record::Request($r) => $body,
            Record::Problem($r) => $body,
            Record::Change($r) => $body,
            Record::Release($r) => $body,
            Record::Nonconformity($r) => $body,
            Record::Service($r) => $body,
            Record::Ci($r) => $body,
            Record::Alert($r) => $body,
            Record::Oncall($r) => $body,
        }
    };
}

#[derive(Debug, thiserror::Error)]
#[error("stored {kind} record is not valid: {source}")]
pub struct BadStoredRecord {
    pub kind: Kind,
    #[source]
    pub source: serde_json::Error,
}

/// A record's link to another record or to a page elsewhere, as its page lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLink {
    /// What the other end is to this record: `problem`, `pull request`, `suspected change`...
    pub relation: &'static str,
    /// The other record's key, or the text of an outside link.
    pub label: String,
    /// An outside page's web address, when it has one that is safe to link.
    pub url: Option<String>,
    /// Whether the other end is a record (its page is `/records/{label}`).
    pub is_record: bool,
}

impl RecordLink {
    /// A page elsewhere. Only an `http(s)` address becomes a link: an address from a payload
    /// (an alert's `generatorURL`) could otherwise be `javascript:`; any other stays text.
    fn outside(relation: &'static str, label: impl ToString, url: &str) -> RecordLink {
        let web = ["https://", "http://"].iter().any(|p| {
            url.get(..p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
        });
        RecordLink {
            relation,
            label: label.to_string(),
            url: web.then(|| url.to_string()),
            is_record: false,
        }
    }

    /// A link to another record.
    pub fn record(relation: &'static str, key: impl ToString) -> RecordLink {
        RecordLink {
            relation,
            label: key.to_string(),
            url: None,
            is_record: true,
        }
    }
}

impl Record {
    /// Everything this record links to: records (problems, changes, incidents, releases'
    /// changes, the alert group, the service and configuration item) and pull requests and
    /// commits on GitHub, in the order a reader wants them.
    pub fn links(&self) -> Vec<RecordLink> {
        let mut out = Vec::new();
        let service = |out: &mut Vec<RecordLink>, s: &Option<String>| {
            if let Some(s) = s {
                out.push(RecordLink::record("service", s));
            }
        };
        match self {
            Record::Incident(i) => {
                out.extend(i.problems.iter().map(|p| RecordLink::record("problem", p)));
                out.extend(
                    i.suspected_changes
                        .iter()
                        .map(|c| RecordLink::record("suspected change", c)),
                );
                if let Some(a) = &i.alert {
                    out.push(RecordLink::record("alert group", &a.group));
                    out.extend(
                        a.links
                            .iter()
                            .map(|u| RecordLink::outside("alert source", u, u)),
                    );
                }
                service(&mut out, &i.service);
                if let Some(ci) = &i.ci {
                    out.push(RecordLink::record("configuration item", ci));
                }
            }
            Record::Problem(p) => {
                out.extend(
                    p.incidents
                        .iter()
                        .map(|i| RecordLink::record("incident", i)),
                );
                if let Some(m) = &p.major_incident {
                    out.push(RecordLink::record("major incident", m));
                }
            }
            Record::Change(c) => {
                for l in &c.links {
                    let label = match (&l.kind, l.number, &l.sha) {
                        (LinkKind::PullRequest, Some(n), _) => format!("{}#{n}", l.repo),
                        (_, _, Some(sha)) => format!("{}@{}", l.repo, &sha[..sha.len().min(7)]),
                        _ => l.repo.clone(),
                    };
                    let relation = match l.kind {
                        LinkKind::PullRequest => "pull request",
                        LinkKind::Commit => "commit",
                    };
                    out.push(RecordLink::outside(relation, label, &l.url));
                }
                out.extend(
                    c.suspected_incidents
                        .iter()
                        .map(|s| RecordLink::record("suspected by incident", s.incident)),
                );
                service(&mut out, &c.service);
            }
            Record::Release(r) => {
                out.extend(r.changes.iter().map(|c| RecordLink::record("change", c)));
            }
            Record::Nonconformity(n) => {
                if let Some(r) = &n.record {
                    out.push(RecordLink::record("about", r));
                }
            }
            _ => {}
        }
        out
    }

    pub fn kind(&self) -> Kind {
        match self {
            Record::Incident(_) => Kind::Incident,
            Record::Request(_) => Kind::Request,
            Record::Problem(_) => Kind::Problem,
            Record::Change(_) => Kind::Change,
            Record::Release(_) => Kind::Release,
            Record::Nonconformity(_) => Kind::Nonconformity,
            Record::Service(_) => Kind::Service,
            Record::Ci(_) => Kind::Ci,
            Record::Alert(_) => Kind::Alert,
            Record::Oncall(_) => Kind::Oncall,
        }
    }

    /// The store key: `INC-3`, or the name of a service or CI.
    pub fn key(&self) -> String {
        match self {
            Record::Service(s) => s.id.clone(),
            Record::Ci(c) => c.id.clone(),
            Record::Alert(a) => a.id.clone(),
            Record::Oncall(o) => o.id.clone(),
            other => other.number().map(|id| id.to_string()).unwrap_or_default(),
        }
    }

    pub fn number(&self) -> Option<RecordId> {
        match self {
            Record::Incident(r) => Some(r.id),
            Record::Request(r) => Some(r.id),
            Record::Problem(r) => Some(r.id),
            Record::Change(r) => Some(r.id),
            Record::Release(r) => Some(r.id),
            Record::Nonconformity(r) => Some(r.id),
            Record::Service(_) | Record::Ci(_) | Record::Alert(_) | Record::Oncall(_) => None,
        }
    }

    pub fn title(&self) -> &str {
        each_record!(self, r => &r.title)
    }

    pub fn status(&self) -> String {
        each_record!(self, r => status_name(&r.status))
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        each_record!(self, r => r.created_at)
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        each_record!(self, r => r.updated_at)
    }

    pub fn set_updated_at(&mut self, at: DateTime<Utc>) {
        each_record!(self, r => r.updated_at = at)
    }

    /// The service a record belongs to, where it has one (for reports and indexes).
    pub fn service(&self) -> Option<&str> {
        match self {
            Record::Incident(r) => r.service.as_deref(),
            Record::Request(r) => r.service.as_deref(),
            Record::Change(r) => r.service.as_deref(),
            Record::Ci(r) => r.service.as_deref(),
            Record::Alert(r) => r.service.as_deref(),
            Record::Service(r) => Some(&r.id),
            _ => None,
        }
    }

    /// The next time the deadline timer must look at this record (an SLA target or a review
    /// due), if any.
    /// An open incident's SLA deadline (`Incident::sla_due`); none for other records.
    pub fn sla_due(&self) -> Option<DateTime<Utc>> {
        match self {
            Record::Incident(i) => i.sla_due(),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        match self {
            Record::Incident(i) => i.next_deadline(),
            Record::Change(c) => c.next_deadline(),
            _ => None,
        }
    }

    /// The keys the store indexes this record by, so that GitHub's events find the records
    /// they are about without a scan: for a change, each pull request it links; for a release
    /// of a repository, the repository, its tag and each of its commits. Sorted, no repeats.
    pub fn index_terms(&self) -> Vec<String> {
        let mut terms: Vec<String> = match self {
            Record::Change(c) => c
                .links
                .iter()
                .filter(|l| l.kind == LinkKind::PullRequest)
                .filter_map(|l| l.number.map(|n| pr_term(&l.repo, n)))
                .collect(),
            Record::Release(r) => {
                let mut terms: Vec<String> = match &r.repo {
                    Some(repo) => [repo_term(repo), tag_term(repo, &r.version)]
                        .into_iter()
                        .chain(r.commits.iter().map(|sha| sha_term(repo, sha)))
                        .collect(),
                    None => Vec::new(),
                };
                // A change's page lists the releases that ship it.
                terms.extend(r.changes.iter().map(|c| change_term(&c.to_string())));
                terms
            }
            _ => Vec::new(),
        };
        terms.sort();
        terms.dedup();
        terms
    }

    /// The JSON the API serves and the store keeps.
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising these plain structs cannot fail: every map key is a string.
        each_record!(self, r => serde_json::to_value(r).unwrap_or(serde_json::Value::Null))
    }

    pub fn to_json_string(&self) -> String {
        each_record!(self, r => serde_json::to_string(r).unwrap_or_default())
    }

    pub fn from_json(kind: Kind, json: &str) -> Result<Record, BadStoredRecord> {
        let wrap = |source| BadStoredRecord { kind, source };
        Ok(match kind {
            Kind::Incident => Record::Incident(serde_json::from_str(json).map_err(wrap)?),
            Kind::Request => Record::Request(serde_json::from_str(json).map_err(wrap)?),
            Kind::Problem => Record::Problem(serde_json::from_str(json).map_err(wrap)?),
            Kind::Change => Record::Change(serde_json::from_str(json).map_err(wrap)?),
            Kind::Release => Record::Release(serde_json::from_str(json).map_err(wrap)?),
            Kind::Nonconformity => Record::Nonconformity(serde_json::from_str(json).map_err(wrap)?),
            Kind::Service => Record::Service(serde_json::from_str(json).map_err(wrap)?),
            Kind::Ci => Record::Ci(serde_json::from_str(json).map_err(wrap)?),
            Kind::Alert => Record::Alert(serde_json::from_str(json).map_err(wrap)?),
            Kind::Oncall => Record::Oncall(serde_json::from_str(json).map_err(wrap)?),
        })
    }
}

/// Whether records of `kind` carry index terms (`Record::index_terms`): the store keeps the
/// terms of these kinds only, and replaces them whenever such a record is written.
pub fn has_index_terms(kind: Kind) -> bool {
    matches!(kind, Kind::Change | Kind::Release)
}

/// The index term of pull request `repo#number`, carried by the changes that link it.
pub fn pr_term(repo: &str, number: u64) -> String {
    format!("pr:{repo}#{number}")
}

/// The index term of a repository, carried by its releases.
/// The term a release carries for each change it ships: `change:CHG-7`.
pub fn change_term(change: &str) -> String {
    format!("change:{change}")
}

pub fn repo_term(repo: &str) -> String {
    format!("repo:{repo}")
}

/// The index term of tag `version` of `repo`, carried by the release of that version.
pub fn tag_term(repo: &str, version: &str) -> String {
    format!("tag:{repo}@{version}")
}

/// The index term of commit `sha` of `repo`, carried by the releases that contain it.
pub fn sha_term(repo: &str, sha: &str) -> String {
    format!("sha:{repo}@{sha}")
}

/// The serde name of a status value (`in_progress`), which is also what the API shows.
fn status_name<T: Serialize>(status: &T) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::NewChange;

    fn at() -> DateTime<Utc> {
        "2026-11-30T10:00:00Z".parse().unwrap()
    }

    fn change(links: Vec<Link>) -> Record {
        let new = NewChange {
            title: "Upgrade db".into(),
            change_type: ChangeType::Normal,
            risk: None,
            service: None,
            window: None,
            template: None,
        };
        let actor = Actor::parse("console:alice").unwrap();
        let mut c = Change::request(RecordId::new(Kind::Change, 4), new, &actor, at());
        c.links = links;
        Record::Change(c)
    }

    fn release(repo: Option<&str>, commits: &[&str]) -> Record {
        let actor = Actor::parse("console:alice").unwrap();
        let mut r = Release::create(
            RecordId::new(Kind::Release, 2),
            "v1.2.0".into(),
            repo.map(str::to_string),
            Vec::new(),
            &actor,
            at(),
        );
        r.commits = commits.iter().map(|c| c.to_string()).collect();
        Record::Release(r)
    }

    #[test]
    fn a_change_is_found_by_each_pull_request_it_links_and_not_by_commits() {
        let commit = Link {
            kind: LinkKind::Commit,
            number: None,
            sha: Some("abc1234".into()),
            ..Link::pull_request("acme/api", 0)
        };
        let rec = change(vec![
            Link::pull_request("acme/web", 12),
            commit,
            Link::pull_request("acme/api", 7),
            Link::pull_request("acme/api", 7),
        ]);
        assert_eq!(
            rec.index_terms(),
            vec![pr_term("acme/api", 7), pr_term("acme/web", 12)]
        );
        assert_eq!(pr_term("acme/api", 7), "pr:acme/api#7");
        assert!(change(Vec::new()).index_terms().is_empty());
    }

    #[test]
    fn a_change_page_links_its_pull_requests_and_commits_and_only_web_addresses_are_links() {
        let commit = Link {
            kind: LinkKind::Commit,
            number: None,
            sha: Some("abc1234def".into()),
            url: "javascript:alert(1)".into(),
            ..Link::pull_request("acme/api", 0)
        };
        let rec = change(vec![Link::pull_request("acme/web", 12), commit]);
        let links = rec.links();
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].relation, "pull request");
        assert_eq!(links[0].label, "acme/web#12");
        assert_eq!(
            links[0].url.as_deref(),
            Some("https://github.com/acme/web/pull/12")
        );
        assert_eq!(links[1].relation, "commit");
        assert_eq!(links[1].label, "acme/api@abc1234");
        assert_eq!(links[1].url, None, "not a web address: shown as text");
        let rel = release(Some("acme/api"), &[]);
        assert!(rel.links().is_empty());
    }

    #[test]
    fn a_release_is_found_by_its_repository_tag_and_commits() {
        let rec = release(Some("acme/api"), &["bbb", "aaa", "bbb"]);
        assert_eq!(
            rec.index_terms(),
            vec![
                "repo:acme/api".to_string(),
                "sha:acme/api@aaa".into(),
                "sha:acme/api@bbb".into(),
                "tag:acme/api@v1.2.0".into(),
            ]
        );
        assert_eq!(sha_term("acme/api", "aaa"), "sha:acme/api@aaa");
        assert_eq!(tag_term("acme/api", "v1.2.0"), "tag:acme/api@v1.2.0");
        assert_eq!(repo_term("acme/api"), "repo:acme/api");
    }

    #[test]
    fn a_release_of_no_repository_and_other_kinds_carry_no_terms() {
        assert!(release(None, &["aaa"]).index_terms().is_empty());
        assert!(has_index_terms(Kind::Change) && has_index_terms(Kind::Release));
        assert!(!has_index_terms(Kind::Incident));
    }
}

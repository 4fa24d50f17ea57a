//! The process rules in force: roles, people, the priority matrix, SLA targets, change approval and freezes.
//!
//! Loaded from the TOML rules file (`OPSLEDGER_POLICY`) or the built-in defaults. Parsing is pure:
//! the caller reads the file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alerts::AlertRules;
use super::command::{ChangeType, Level, Role};
use super::escalation::{Chain, Step, Target};
use super::ids::Actor;
use super::oncall::{self as oncall_rules, Schedule};
use super::priority::{Priority, PriorityMatrix, SlaTarget, SlaTargets};

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRule {
    pub approvals: u32,
    pub voters: Role,
    /// Emergency changes only: the post-implementation review must happen within this.
    pub review_within: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Freeze {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub allow: Vec<ChangeType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub roles: BTreeMap<Role, BTreeSet<Actor>>,
    /// One person, several accounts: person name to accounts.
    pub people: BTreeMap<String, BTreeSet<Actor>>,
    pub priority: PriorityMatrix,
    pub sla: SlaTargets,
    pub normal: ApprovalRule,
    pub emergency: ApprovalRule,
    pub standard_templates: Vec<String>,
    pub freezes: Vec<Freeze>,
    pub protected_branches: Vec<String>,
    pub change_pattern: String,
    /// Deployments to a service are refused while it has an open incident of one of these.
    pub block_deploys_during: Vec<Priority>,
    pub alerts: AlertRules,
    /// On-call schedules, in the rules file's order.
    pub oncall: Vec<Schedule>,
    /// Escalation chains, in the rules file's order; at most one is the default.
    pub escalations: Vec<Chain>,
    /// The hours pages count as inside of, in the service report.
    pub working_hours: super::oncall::WorkingHours,
    /// A major incident with no commander this long after it was raised gets one reminder.
    pub commander_within: Duration,
    /// An open incident nobody acted on for this long gets one nudge in its room; per priority
    /// where the rules file says, else `stale_after_default`.
    pub stale_after: BTreeMap<Priority, Duration>,
    pub stale_after_default: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            // The console's root account bootstraps the other roles with `role grant`; a rules
            // file that lists admins replaces it.
            roles: BTreeMap::from([(
                Role::Admin,
                BTreeSet::from([Actor::parse("console:root").expect("valid built-in actor")]),
            )]),
            people: BTreeMap::new(),
            priority: PriorityMatrix::default(),
            sla: SlaTargets::default(),
            normal: ApprovalRule {
                approvals: 2,
                voters: Role::Cab,
                review_within: None,
            },
            emergency: ApprovalRule {
                approvals: 1,
                voters: Role::Ecab,
                review_within: Some(Duration::from_secs(72 * 3600)),
            },
            standard_templates: Vec::new(),
            freezes: Vec::new(),
            protected_branches: Vec::new(),
            change_pattern: r"CHG-(\d+)".to_string(),
            block_deploys_during: Vec::new(),
            alerts: AlertRules::default(),
            oncall: Vec::new(),
            escalations: Vec::new(),
            working_hours: super::oncall::WorkingHours::default(),
            commander_within: Duration::from_secs(600),
            stale_after: BTreeMap::new(),
            stale_after_default: Duration::from_secs(4 * 3600),
        }
    }
}

/// A rules file that cannot be used, pointing at the key: `change.normal.approvals must be at least 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct PolicyError {
    pub key: String,
    pub problem: String,
}

impl PolicyError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        PolicyError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The rules file's schema, as written: read by `Policy::from_toml`, written by
/// `Policy::to_toml` (`policy_toml.rs`). Fields are in the contract's order, which is the order
/// they are written in.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub people: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<RawPriority>,
    #[serde(default)]
    pub sla: BTreeMap<String, RawSla>,
    #[serde(default)]
    pub change: RawChange,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<RawFreeze>,
    #[serde(default)]
    pub github: RawGithub,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<RawAlerts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oncall: Vec<RawOncall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<RawEscalation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<RawIncidents>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncidents {
    /// `Mon-Fri 09:00-17:00`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commander_within: Option<String>,
    /// `"4h"`, or a table by priority: `{ P1 = "30m", P2 = "1h" }` (others: 4h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<RawStale>,
}

#[derive(Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum RawStale {
    All(String),
    ByPriority(BTreeMap<String, String>),
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub name: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub page: Vec<String>,
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub repeat: u32,
}

/// One step, as an inline table: `{ notify = "oncall:payments", next = true }`,
/// `{ wait = "5m" }` or `{ webhook = "https://..." }`.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOncall {
    pub name: String,
    pub members: Vec<String>,
    pub rotation: String,
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
    pub timezone: String,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_resolve: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopen_within: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_within: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_window: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub severity: BTreeMap<String, RawLevels>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLevels {
    pub impact: String,
    pub urgency: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPriority {
    pub matrix: Vec<Vec<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<String>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normal: Option<RawApproval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency: Option<RawApproval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard: Option<RawStandard>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voters: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_within: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStandard {
    #[serde(default)]
    pub templates: Vec<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFreeze {
    pub name: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGithub {
    #[serde(default)]
    pub protected: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_pattern: Option<String>,
    #[serde(default)]
    pub block_deploys_during: Vec<String>,
}

impl Policy {
    /// Every account the rules name, with the key that names it: the roles, `[people]`, the
    /// on-call members and the escalation steps that name an account rather than a person.
    pub fn accounts(&self) -> Vec<(String, Actor)> {
        let mut all = Vec::new();
        for (role, members) in &self.roles {
            all.extend(
                members
                    .iter()
                    .map(|a| (format!("roles.{}", role.as_str()), a.clone())),
            );
        }
        for (name, accounts) in &self.people {
            all.extend(
                accounts
                    .iter()
                    .map(|a| (format!("people.{name}"), a.clone())),
            );
        }
        let account = |text: &str| {
            (!self.people.contains_key(text))
                .then(|| Actor::parse(text).ok())
                .flatten()
        };
        for (i, schedule) in self.oncall.iter().enumerate() {
            for m in &schedule.members {
                all.extend(account(m).map(|a| (format!("oncall[{i}].members"), a)));
            }
        }
        for (i, chain) in self.escalations.iter().enumerate() {
            for (j, step) in chain.steps.iter().enumerate() {
                if let Step::Notify(Target::Person(p)) = step {
                    all.extend(
                        account(p).map(|a| (format!("escalation[{i}].steps[{j}].notify"), a)),
                    );
                }
            }
        }
        all
    }

    /// Parses and validates a rules file's text.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            // serde's messages name the field but not where it is: add the line.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let key = match line {
                Some(l) => format!("line {l}:"),
                None => "rules file:".to_string(),
            };
            PolicyError::new(key, e.message().to_string())
        })?;
        let mut p = Policy::default();
        for (name, members) in raw.roles {
            let key = format!("roles.{name}");
            let role = Role::parse(&name).ok_or_else(|| {
                PolicyError::new(
                    &key,
                    "is not a role (admin, incident-manager, change-manager, cab, ecab)",
                )
            })?;
            p.roles.insert(role, actors(&key, &members)?);
        }
        for (person, accounts) in raw.people {
            let key = format!("people.{person}");
            p.people.insert(person, actors(&key, &accounts)?);
        }
        if let Some(prio) = raw.priority {
            p.priority = matrix(&prio.matrix)?;
        }
        for (name, sla) in raw.sla {
            let key = format!("sla.{name}");
            let prio = Priority::parse(&name)
                .ok_or_else(|| PolicyError::new(&key, "must name a priority P1, P2, P3 or P4"))?;
            let mut target: SlaTarget = p.sla.target(prio);
            if let Some(r) = sla.respond {
                target.respond = duration(&format!("{key}.respond"), &r)?;
            }
            if let Some(r) = sla.resolve {
                target.resolve = duration(&format!("{key}.resolve"), &r)?;
            }
            if target.resolve < target.respond {
                return Err(PolicyError::new(
                    key,
                    "resolve must not be shorter than respond",
                ));
            }
            p.sla.targets[prio as usize] = target;
        }
        if let Some(n) = raw.change.normal {
            apply_approval("change.normal", &mut p.normal, n)?;
        }
        if let Some(e) = raw.change.emergency {
            apply_approval("change.emergency", &mut p.emergency, e)?;
        }
        if let Some(s) = raw.change.standard {
            p.standard_templates = s.templates;
        }
        for (i, f) in raw.freeze.into_iter().enumerate() {
            let key = format!("freeze[{i}]");
            let at = |field: &str, v: &str| {
                DateTime::parse_from_rfc3339(v)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        PolicyError::new(
                            format!("{key}.{field}"),
                            "must be an RFC 3339 time such as 2026-12-20T00:00:00Z",
                        )
                    })
            };
            let (start, end) = (at("start", &f.start)?, at("end", &f.end)?);
            if end <= start {
                return Err(PolicyError::new(
                    format!("{key}.end"),
                    "must be after start",
                ));
            }
            let allow = f
                .allow
                .iter()
                .map(|t| {
                    change_type(t).ok_or_else(|| {
                        PolicyError::new(
                            format!("{key}.allow"),
                            "may list only standard, normal, emergency",
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            p.freezes.push(Freeze {
                name: f.name,
                start,
                end,
                allow,
            });
        }
        p.protected_branches = raw.github.protected;
        if let Some(pattern) = raw.github.change_pattern {
            regex::Regex::new(&pattern).map_err(|_| {
                PolicyError::new(
                    "github.change_pattern",
                    "must be a valid regular expression",
                )
            })?;
            p.change_pattern = pattern;
        }
        p.block_deploys_during = raw
            .github
            .block_deploys_during
            .iter()
            .map(|name| {
                Priority::parse(name).ok_or_else(|| {
                    PolicyError::new(
                        "github.block_deploys_during",
                        format!("has `{name}`; allowed: P1, P2, P3, P4"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if let Some(a) = raw.alerts {
            apply_alerts(&mut p.alerts, a)?;
        }
        for (i, o) in raw.oncall.into_iter().enumerate() {
            let schedule = schedule(&p, i, o)?;
            p.oncall.push(schedule);
        }
        for (i, e) in raw.escalation.into_iter().enumerate() {
            let chain = chain(&p, i, e)?;
            p.escalations.push(chain);
        }
        if let Some(inc) = raw.incidents {
            let text = inc
                .working_hours
                .unwrap_or_else(|| p.working_hours.text.clone());
            let zone = inc.timezone.unwrap_or_else(|| "UTC".to_string());
            p.working_hours = super::oncall::WorkingHours::parse(&text, &zone)
                .map_err(|e| PolicyError::new(format!("incidents.{}", e.field), e.problem))?;
            if let Some(d) = inc.commander_within {
                p.commander_within = duration("incidents.commander_within", &d)?;
            }
            match inc.stale_after {
                Some(RawStale::All(d)) => {
                    p.stale_after_default = duration("incidents.stale_after", &d)?;
                }
                Some(RawStale::ByPriority(map)) => {
                    for (name, d) in map {
                        let key = format!("incidents.stale_after.{name}");
                        let prio = Priority::parse(&name).ok_or_else(|| {
                            PolicyError::new(&key, "must name a priority P1, P2, P3 or P4")
                        })?;
                        p.stale_after.insert(prio, duration(&key, &d)?);
                    }
                }
                None => {}
            }
        }
        Ok(p)
    }

    /// How long an open incident of this priority may go without an action before its nudge.
    pub fn stale_after(&self, p: Priority) -> Duration {
        self.stale_after
            .get(&p)
            .copied()
            .unwrap_or(self.stale_after_default)
    }

    /// The escalation chain of that name.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.escalations.iter().find(|c| c.name == name)
    }

    /// The chain marked `default = true`, if any.
    pub fn default_chain(&self) -> Option<&Chain> {
        self.escalations.iter().find(|c| c.default)
    }

    /// The on-call schedule of that name.
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.oncall.iter().find(|s| s.name == name)
    }

    /// The accounts a schedule member (a `[people]` name or an account) acts from.
    pub fn accounts_of(&self, member: &str) -> Vec<Actor> {
        match self.people.get(member) {
            Some(accounts) => accounts.iter().cloned().collect(),
            None => Actor::parse(member).into_iter().collect(),
        }
    }

    /// Whether the person behind `actor` holds `role` through any of their accounts.
    pub fn has_role(&self, actor: &Actor, role: Role) -> bool {
        self.roles
            .get(&role)
            .is_some_and(|members| members.iter().any(|m| self.same_person(m, actor)))
    }

    /// Whether the person holds any of `roles`.
    pub fn has_any_role(&self, actor: &Actor, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has_role(actor, *r))
    }

    /// This policy with run-time grants added (`role grant` keeps them in the store).
    pub fn with_grants<'a>(&self, grants: impl IntoIterator<Item = (&'a Actor, Role)>) -> Policy {
        let mut p = self.clone();
        for (actor, role) in grants {
            p.roles.entry(role).or_default().insert(actor.clone());
        }
        p
    }

    /// The members of a role, for messages.
    pub fn members(&self, role: Role) -> Vec<String> {
        self.roles
            .get(&role)
            .map(|m| m.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default()
    }

    /// The freeze in force at `at` that does not allow `change_type`, if any.
    pub fn freeze_at(&self, at: DateTime<Utc>, change_type: ChangeType) -> Option<&Freeze> {
        self.freezes
            .iter()
            .find(|f| f.start <= at && at < f.end && !f.allow.contains(&change_type))
    }

    /// The first freeze overlapping `[start, end]` that does not allow `change_type`, if any.
    pub fn freeze_overlapping(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        change_type: ChangeType,
    ) -> Option<&Freeze> {
        self.freezes
            .iter()
            .find(|f| start < f.end && f.start < end && !f.allow.contains(&change_type))
    }

    /// The person an account belongs to, if the `[people]` table names one.
    pub fn person_of(&self, actor: &Actor) -> Option<&str> {
        self.people
            .iter()
            .find(|(_, accounts)| accounts.contains(actor))
            .map(|(name, _)| name.as_str())
    }

    /// Whether two accounts are the same person (the same account, or joined in `[people]`).
    pub fn same_person(&self, a: &Actor, b: &Actor) -> bool {
        a == b || matches!((self.person_of(a), self.person_of(b)), (Some(x), Some(y)) if x == y)
    }
}

fn actors(key: &str, list: &[String]) -> Result<BTreeSet<Actor>, PolicyError> {
    list.iter()
        .map(|s| Actor::parse(s).map_err(|e| PolicyError::new(key, format!("has {e}"))))
        .collect()
}

fn matrix(rows: &[Vec<String>]) -> Result<PriorityMatrix, PolicyError> {
    let key = "priority.matrix";
    if rows.len() != 3 || rows.iter().any(|r| r.len() != 3) {
        return Err(PolicyError::new(
            key,
            "must be 3 rows (impact high, medium, low) of 3 priorities (urgency high, medium, low)",
        ));
    }
    let mut m = PriorityMatrix::default();
    for (i, row) in rows.iter().enumerate() {
        for (j, cell) in row.iter().enumerate() {
            m.matrix[i][j] = Priority::parse(cell).ok_or_else(|| {
                PolicyError::new(key, format!("has `{cell}`; allowed: P1, P2, P3, P4"))
            })?;
        }
    }
    Ok(m)
}

fn duration(key: &str, text: &str) -> Result<Duration, PolicyError> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            PolicyError::new(
                key,
                format!("is `{text}`; it must be a duration such as 15m, 4h or 3d"),
            )
        })
}

fn change_type(s: &str) -> Option<ChangeType> {
    match s {
        "standard" => Some(ChangeType::Standard),
        "normal" => Some(ChangeType::Normal),
        "emergency" => Some(ChangeType::Emergency),
        _ => None,
    }
}

/// One `[[oncall]]` schedule, checked: a known zone, a rotation, a start at the handoff, and
/// members who are `[people]` names or accounts.
fn schedule(p: &Policy, i: usize, o: RawOncall) -> Result<Schedule, PolicyError> {
    let key = |field: &str| format!("oncall[{i}].{field}");
    let err = |e: oncall_rules::ScheduleError| PolicyError::new(key(e.field), e.problem);
    if !o
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || o.name.is_empty()
    {
        return Err(PolicyError::new(
            key("name"),
            format!("is `{}`; use letters, digits, `-`, `_` or `.`", o.name),
        ));
    }
    if p.oncall.iter().any(|s| s.name == o.name) {
        return Err(PolicyError::new(
            key("name"),
            format!("`{}` names another schedule too", o.name),
        ));
    }
    if o.members.is_empty() {
        return Err(PolicyError::new(
            key("members"),
            "must name at least one person",
        ));
    }
    for m in &o.members {
        if !p.people.contains_key(m) && Actor::parse_person(m).is_err() {
            return Err(PolicyError::new(
                key("members"),
                format!("has `{m}`, which is neither a name in [people] nor an account such as slack:U024BE7LH"),
            ));
        }
    }
    let rotation = oncall_rules::parse_rotation(&o.rotation).map_err(err)?;
    let start = oncall_rules::parse_start(&o.start).map_err(err)?;
    let timezone = oncall_rules::parse_timezone(&o.timezone).map_err(err)?;
    if let Some(h) = &o.handoff {
        oncall_rules::check_handoff(h, rotation, start).map_err(err)?;
    }
    Ok(Schedule {
        name: o.name,
        members: o.members,
        rotation,
        start,
        handoff: o.handoff,
        timezone,
    })
}

/// One `[[escalation]]` chain, checked: known schedules, roles and people, at least one
/// `notify` step, waits of at least a minute, one default at most.
fn chain(p: &Policy, i: usize, e: RawEscalation) -> Result<Chain, PolicyError> {
    let key = |field: &str| format!("escalation[{i}].{field}");
    if e.name.is_empty() || p.escalations.iter().any(|c| c.name == e.name) {
        return Err(PolicyError::new(
            key("name"),
            format!("`{}` is empty or names another chain too", e.name),
        ));
    }
    if e.default {
        if let Some(d) = p.default_chain() {
            return Err(PolicyError::new(
                key("default"),
                format!(
                    "is set on `{}` too: one chain at most is the default",
                    d.name
                ),
            ));
        }
    }
    let page = e
        .page
        .iter()
        .map(|name| {
            Priority::parse(name).ok_or_else(|| {
                PolicyError::new(
                    key("page"),
                    format!("has `{name}`; allowed: P1, P2, P3, P4"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut steps = Vec::new();
    for (j, s) in e.steps.into_iter().enumerate() {
        let skey = format!("escalation[{i}].steps[{j}]");
        let step = match (s.notify, s.wait, s.webhook) {
            (Some(n), None, None) => Step::Notify(target(p, &skey, &n, s.next.unwrap_or(false))?),
            (None, Some(w), None) if s.next.is_none() => {
                let d = duration(&format!("{skey}.wait"), &w)?;
                if d < Duration::from_secs(60) {
                    return Err(PolicyError::new(
                        format!("{skey}.wait"),
                        format!("is `{w}`; a wait is at least 1m"),
                    ));
                }
                Step::Wait(d)
            }
            (None, None, Some(url)) if s.next.is_none() => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(PolicyError::new(
                        format!("{skey}.webhook"),
                        format!("is `{url}`; it must be an http(s) URL"),
                    ));
                }
                Step::Webhook(url)
            }
            _ => {
                return Err(PolicyError::new(
                    skey,
                    "must be one of { notify = \"...\" } (with `next` for oncall), { wait = \"5m\" }, { webhook = \"https://...\" }",
                ))
            }
        };
        steps.push(step);
    }
    if !steps.iter().any(|s| matches!(s, Step::Notify(_))) {
        return Err(PolicyError::new(
            key("steps"),
            "must have at least one notify step",
        ));
    }
    Ok(Chain {
        name: e.name,
        default: e.default,
        page,
        steps,
        repeat: e.repeat,
    })
}

/// A `notify` target: `oncall:<schedule>`, `role:<role>`, `channel`, a `[people]` name, or an
/// account.
fn target(p: &Policy, key: &str, text: &str, next: bool) -> Result<Target, PolicyError> {
    let key = format!("{key}.notify");
    if next && !text.starts_with("oncall:") {
        return Err(PolicyError::new(
            key,
            "`next` applies to oncall:<schedule> only",
        ));
    }
    if let Some(schedule) = text.strip_prefix("oncall:") {
        if p.schedule(schedule).is_none() {
            return Err(PolicyError::new(
                key,
                format!("names the schedule `{schedule}`, which no [[oncall]] defines"),
            ));
        }
        return Ok(Target::Oncall {
            schedule: schedule.to_string(),
            next,
        });
    }
    if let Some(role) = text.strip_prefix("role:") {
        return Role::parse(role).map(Target::Role).ok_or_else(|| {
            PolicyError::new(
                key,
                format!("names `{role}`, not a role (admin, incident-manager, change-manager, cab, ecab)"),
            )
        });
    }
    if text == "channel" {
        return Ok(Target::Channel);
    }
    if p.people.contains_key(text) || Actor::parse_person(text).is_ok() {
        return Ok(Target::Person(text.to_string()));
    }
    Err(PolicyError::new(
        key,
        format!("is `{text}`: use oncall:<schedule>, role:<role>, channel, a name from [people] or an account"),
    ))
}

fn apply_alerts(rules: &mut AlertRules, raw: RawAlerts) -> Result<(), PolicyError> {
    let label = |key: &str, v: Option<String>, into: &mut String| match v {
        Some(v) if v.trim().is_empty() => Err(PolicyError::new(
            format!("alerts.{key}"),
            "must name a label",
        )),
        Some(v) => {
            *into = v;
            Ok(())
        }
        None => Ok(()),
    };
    label("service_label", raw.service_label, &mut rules.service_label)?;
    label("ci_label", raw.ci_label, &mut rules.ci_label)?;
    label(
        "severity_label",
        raw.severity_label,
        &mut rules.severity_label,
    )?;
    if let Some(b) = raw.auto_resolve {
        rules.auto_resolve = b;
    }
    if let Some(d) = raw.reopen_within {
        rules.reopen_within = duration("alerts.reopen_within", &d)?;
    }
    if let Some(d) = raw.problem_within {
        rules.problem_window = duration("alerts.problem_within", &d)?;
    }
    if let Some(d) = raw.change_window {
        rules.change_window = duration("alerts.change_window", &d)?;
    }
    if let Some(n) = raw.problem_after {
        rules.problem_after = u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| PolicyError::new("alerts.problem_after", "must be at least 1"))?;
    }
    for (name, levels) in raw.severity {
        let key = format!("alerts.severity.{name}");
        let level = |field: &str, v: &str| {
            Level::parse(v).ok_or_else(|| {
                PolicyError::new(format!("{key}.{field}"), "must be high, medium or low")
            })
        };
        rules.severity.insert(
            name.to_ascii_lowercase(),
            (
                level("impact", &levels.impact)?,
                level("urgency", &levels.urgency)?,
            ),
        );
    }
    Ok(())
}

fn apply_approval(key: &str, rule: &mut ApprovalRule, raw: RawApproval) -> Result<(), PolicyError> {
    if let Some(n) = raw.approvals {
        if n < 1 {
            return Err(PolicyError::new(
                format!("{key}.approvals"),
                "must be at least 1",
            ));
        }
        rule.approvals = u32::try_from(n)
            .map_err(|_| PolicyError::new(format!("{key}.approvals"), "is too large"))?;
    }
    if let Some(v) = raw.voters {
        rule.voters = Role::parse(&v).ok_or_else(|| {
            PolicyError::new(
                format!("{key}.voters"),
                "must be a role such as cab or ecab",
            )
        })?;
    }
    if let Some(r) = raw.review_within {
        rule.review_within = Some(duration(&format!("{key}.review_within"), &r)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"
[roles]
admin = ["console:root"]
cab   = ["slack:U0CAB1", "slack:U0CAB2", "discord:4242"]
ecab  = ["slack:U0CAB1"]

[people]
alice = ["slack:U0ALICE", "discord:4141", "github:alice"]

[priority]
matrix = [["P1", "P2", "P3"], ["P2", "P3", "P4"], ["P3", "P4", "P4"]]

[sla.P1]
respond = "15m"
resolve = "4h"

[change.normal]
approvals = 2
[change.emergency]
approvals = 1
voters = "ecab"
review_within = "72h"
[change.standard]
templates = ["restart-service", "rotate-certificate"]

[[freeze]]
name = "year-end"
start = "2026-12-20T00:00:00Z"
end = "2027-01-04T00:00:00Z"
allow = ["emergency"]

[github]
protected = ["acme/shop:main"]
change_pattern = "CHG-(\\d+)"
"#;

    #[test]
    fn the_contract_example_loads() {
        let p = Policy::from_toml(CONTRACT_EXAMPLE).unwrap();
        let u1 = Actor::parse("slack:U0CAB1").unwrap();
        assert!(p.has_role(&u1, Role::Ecab));
        assert_eq!(p.normal.approvals, 2);
        assert_eq!(
            p.emergency.review_within,
            Some(Duration::from_secs(72 * 3600))
        );
        assert_eq!(p.freezes[0].allow, vec![ChangeType::Emergency]);
        let slack = Actor::parse("slack:U0ALICE").unwrap();
        let gh = Actor::parse("github:alice").unwrap();
        assert!(p.same_person(&slack, &gh));
    }

    #[test]
    fn errors_point_at_the_key() {
        let err = Policy::from_toml("[change.normal]\napprovals = 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "change.normal.approvals must be at least 1"
        );
        let err = Policy::from_toml("[sla.P1]\nrespond = \"soon\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with("sla.P1.respond is `soon`"),
            "{err}"
        );
    }

    #[test]
    fn a_role_held_by_one_account_counts_for_all_of_a_persons_accounts() {
        let p = Policy::from_toml(CONTRACT_EXAMPLE).unwrap();
        let granted = p.with_grants([(&Actor::parse("slack:U0ALICE").unwrap(), Role::Cab)]);
        assert!(granted.has_role(&Actor::parse("github:alice").unwrap(), Role::Cab));
        assert!(!p.has_role(&Actor::parse("github:alice").unwrap(), Role::Cab));
    }

    #[test]
    fn freezes_block_types_they_do_not_allow() {
        let p = Policy::from_toml(CONTRACT_EXAMPLE).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-12-24T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            p.freeze_at(at, ChangeType::Normal).map(|f| f.name.as_str()),
            Some("year-end")
        );
        assert!(p.freeze_at(at, ChangeType::Emergency).is_none());
        let before = DateTime::parse_from_rfc3339("2026-12-19T22:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(p
            .freeze_overlapping(before, at, ChangeType::Normal)
            .is_some());
        assert!(p
            .freeze_overlapping(
                before,
                before + chrono::Duration::hours(1),
                ChangeType::Normal
            )
            .is_none());
    }

    #[test]
    fn console_root_is_the_built_in_admin_until_the_file_names_admins() {
        let root = Actor::parse("console:root").unwrap();
        assert!(Policy::default().has_role(&root, Role::Admin));
        let p = Policy::from_toml("[roles]\nadmin = [\"slack:U1\"]\n").unwrap();
        assert!(!p.has_role(&root, Role::Admin));
    }

    #[test]
    fn unknown_keys_and_bad_toml_name_the_line() {
        let err = Policy::from_toml("[change.normal]\napproval = 2\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 2: unknown field `approval`"),
            "{err}"
        );
        let err = Policy::from_toml("[roles\n").unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }

    #[test]
    fn an_empty_file_means_the_built_in_defaults() {
        assert_eq!(Policy::from_toml("").unwrap(), Policy::default());
    }
}

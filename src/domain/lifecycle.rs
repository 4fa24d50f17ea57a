//! What each action does to a record: pure functions that check the rules and update the record or refuse.

use chrono::{DateTime, Utc};

use super::command::{ChangeType, Level, Role, Window};
use super::ids::{Actor, RecordId};
use super::policy::{ApprovalRule, Freeze, Policy};
use super::records::{
    Approval, Change, ConfigItem, Decision, Deployment, Incident, Link, Nonconformity, Note,
    Problem, Release, Service, ServiceRequest, SuspectedIncident,
};
use super::status::{
    transition, ChangeStatus, IncidentStatus, NcStatus, ProblemStatus, ReleaseStatus,
    RequestStatus, TransitionError,
};

/// A rule refused an action. `rule` names the rule; `message` says what would satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            rule,
            message: message.into(),
        }
    }
}

impl From<TransitionError> for Refusal {
    fn from(e: TransitionError) -> Self {
        Refusal::new("lifecycle", e.to_string())
    }
}

fn note(notes: &mut Vec<Note>, actor: &Actor, now: DateTime<Utc>, text: Option<&str>) {
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        notes.push(Note {
            actor: actor.clone(),
            at: now,
            text: text.to_string(),
        });
    }
}

/// The fields of a new incident, as the raise command gives them.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub security: bool,
}

impl Incident {
    /// Whether the incident gets a room of its own in chat (a Slack channel, a Discord thread):
    /// a major incident, whether it was raised at P1 or P2, declared major, or re-prioritised
    /// to P1 or P2. The one rule every chat platform applies.
    pub fn gets_room(&self) -> bool {
        self.major
            || matches!(
                self.priority,
                super::priority::Priority::P1 | super::priority::Priority::P2
            )
    }

    /// Opens an incident; priority from the matrix, due times from the SLA targets.
    /// Impact and urgency default to medium, as most service desks do.
    pub fn raise(
        id: RecordId,
        new: NewIncident,
        reporter: &Actor,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Incident {
        let impact = new.impact.unwrap_or(Level::Medium);
        let urgency = new.urgency.unwrap_or(Level::Medium);
        let priority = policy.priority.priority(impact, urgency);
        let (response_due, resolve_due) = policy.sla.due(priority, now);
        Incident {
            id,
            title: new.title,
            status: IncidentStatus::New,
            impact,
            urgency,
            priority,
            service: new.service,
            ci: new.ci,
            security: new.security,
            assignee: None,
            reporter: reporter.clone(),
            response_due,
            resolve_due,
            breached: false,
            response_breached_at: None,
            resolve_breached_at: None,
            major: false,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            resolution: None,
            problems: Vec::new(),
            notes: Vec::new(),
            description: None,
            alert: None,
            suspected_changes: Vec::new(),
            recurs: Vec::new(),
            roles: Default::default(),
            commander_due: None,
            commander_reminded_at: None,
            stale_due: None,
            escalation: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Resolves an incident whose alerts all resolved, as the alert receiver (`auto_resolve`).
    /// One nobody acknowledged passes through `acknowledged`, as the state machine requires,
    /// but keeps no acknowledgement time: nobody responded, so it counts for no one's
    /// time to acknowledge.
    pub fn resolve_by_monitoring(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: &str,
    ) -> Result<(), Refusal> {
        if self.status == IncidentStatus::New {
            transition(&self.key(), &mut self.status, IncidentStatus::Acknowledged)?;
        }
        self.resolve(actor, now, Some(text))
    }

    fn key(&self) -> String {
        self.id.to_string()
    }

    pub fn acknowledge(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        transition(&self.key(), &mut self.status, IncidentStatus::Acknowledged)?;
        if self.acknowledged_at.is_none() {
            self.acknowledged_at = Some(now);
            // A response after its due time is an SLA breach even if no timer saw it happen.
            self.breached |= now > self.response_due;
        }
        if self.assignee.is_none() {
            self.assignee = Some(actor.clone());
        }
        // The first acknowledgement, by anyone, stops the paging.
        if let Some(e) = &mut self.escalation {
            e.stop(format!("acknowledged by {actor}"), Some(actor), now);
        }
        note(&mut self.notes, actor, now, text);
        Ok(())
    }

    pub fn resolve(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        transition(&self.key(), &mut self.status, IncidentStatus::Resolved)?;
        self.resolved_at = Some(now);
        if let Some(e) = &mut self.escalation {
            e.stop(format!("resolved by {actor}"), None, now);
        }
        self.breached |= now > self.resolve_due;
        if let Some(t) = text {
            self.resolution = Some(t.to_string());
        }
        note(&mut self.notes, actor, now, text);
        Ok(())
    }

    pub fn close(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        transition(&self.key(), &mut self.status, IncidentStatus::Closed)?;
        self.closed_at = Some(now);
        note(&mut self.notes, actor, now, text);
        Ok(())
    }

    pub fn reopen(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        if self.status != IncidentStatus::Resolved {
            return Err(Refusal::new(
                "lifecycle",
                format!(
                    "{} is {}; only a resolved incident can be reopened",
                    self.id, self.status
                ),
            ));
        }
        transition(&self.key(), &mut self.status, IncidentStatus::Acknowledged)?;
        self.resolved_at = None;
        note(&mut self.notes, actor, now, text.or(Some("reopened")));
        Ok(())
    }

    pub fn assign(&mut self, assignee: &Actor) -> Result<(), Refusal> {
        if self.status == IncidentStatus::Closed {
            return Err(Refusal::new(
                "lifecycle",
                format!(
                    "{} is closed; reopen is not possible after close, raise a new incident",
                    self.id
                ),
            ));
        }
        self.assignee = Some(assignee.clone());
        Ok(())
    }

    pub fn add_note(&mut self, actor: &Actor, now: DateTime<Utc>, text: &str) {
        note(&mut self.notes, actor, now, Some(text));
    }

    /// The next SLA target the deadline timer must watch: response until acknowledged,
    /// resolution until resolved; each only until its breach is recorded.
    /// The deadline its SLA countdown shows: respond-by while new, resolve-by while
    /// acknowledged, none once resolved. The dashboard orders open incidents by it.
    pub fn sla_due(&self) -> Option<DateTime<Utc>> {
        match self.status {
            IncidentStatus::New => Some(self.response_due),
            s if s.is_open() => Some(self.resolve_due),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let respond = (self.acknowledged_at.is_none()
            && self.response_breached_at.is_none()
            && self.status == IncidentStatus::New)
            .then_some(self.response_due);
        let resolve = (self.resolved_at.is_none()
            && self.resolve_breached_at.is_none()
            && self.status.is_open())
        .then_some(self.resolve_due);
        let page = self
            .escalation
            .as_ref()
            .filter(|e| e.is_running() && self.status.is_open())
            .and_then(|e| e.next_at);
        respond
            .into_iter()
            .chain(resolve)
            .chain(page)
            .chain(self.commander_reminder_due())
            .chain(self.stale_due.filter(|_| self.status.is_open()))
            .min()
    }

    /// When a major incident with no commander is to be reminded of it, until it was.
    pub fn commander_reminder_due(&self) -> Option<DateTime<Utc>> {
        use super::command::IncidentRole;
        self.commander_due.filter(|_| {
            self.major
                && self.status.is_open()
                && self.commander_reminded_at.is_none()
                && !self.roles.contains_key(&IncidentRole::Commander)
        })
    }

    /// Records every target missed by `now`; returns which (`response`, `resolution`).
    pub fn record_breaches(&mut self, now: DateTime<Utc>) -> Vec<&'static str> {
        let mut missed = Vec::new();
        if self.acknowledged_at.is_none()
            && self.response_breached_at.is_none()
            && self.status == IncidentStatus::New
            && self.response_due <= now
        {
            self.response_breached_at = Some(now);
            missed.push("response");
        }
        if self.resolved_at.is_none()
            && self.resolve_breached_at.is_none()
            && self.status.is_open()
            && self.resolve_due <= now
        {
            self.resolve_breached_at = Some(now);
            missed.push("resolution");
        }
        if !missed.is_empty() {
            self.breached = true;
        }
        missed
    }

    /// Re-assesses impact and urgency; the priority and both due times follow from the
    /// policy, counted from when the incident was opened.
    pub fn reprioritize(
        &mut self,
        impact: Option<Level>,
        urgency: Option<Level>,
        policy: &Policy,
    ) -> Result<(), Refusal> {
        if self.status == IncidentStatus::Closed {
            return Err(Refusal::new(
                "lifecycle",
                format!("{} is closed; its priority can no longer change", self.id),
            ));
        }
        self.impact = impact.unwrap_or(self.impact);
        self.urgency = urgency.unwrap_or(self.urgency);
        self.priority = policy.priority.priority(self.impact, self.urgency);
        let (respond, resolve) = policy.sla.due(self.priority, self.created_at);
        self.response_due = respond;
        self.resolve_due = resolve;
        Ok(())
    }

    /// Whether a due time has passed unmet at `now` (or was missed before).
    pub fn is_breached_at(&self, now: DateTime<Utc>) -> bool {
        self.breached
            || (self.acknowledged_at.is_none() && now > self.response_due)
            || (self.resolved_at.is_none()
                && self.status != IncidentStatus::Closed
                && now > self.resolve_due)
    }
}

impl ServiceRequest {
    pub fn raise(
        id: RecordId,
        title: String,
        service: Option<String>,
        requester: &Actor,
        now: DateTime<Utc>,
    ) -> Self {
        ServiceRequest {
            id,
            title,
            status: RequestStatus::New,
            service,
            requester: requester.clone(),
            fulfilment: None,
            fulfilled_at: None,
            closed_at: None,
            notes: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    pub fn fulfil(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        transition(
            &self.id.to_string(),
            &mut self.status,
            RequestStatus::Fulfilled,
        )?;
        self.fulfilled_at = Some(now);
        self.fulfilment = text.map(str::to_string);
        note(&mut self.notes, actor, now, text);
        Ok(())
    }

    pub fn close(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        transition(
            &self.id.to_string(),
            &mut self.status,
            RequestStatus::Closed,
        )?;
        self.closed_at = Some(now);
        note(&mut self.notes, actor, now, text);
        Ok(())
    }
}

impl Problem {
    pub fn open(
        id: RecordId,
        title: String,
        incidents: Vec<RecordId>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Self {
        Problem {
            id,
            title,
            status: ProblemStatus::Open,
            incidents,
            root_cause: None,
            workaround: None,
            resolution: None,
            opened_by: actor.clone(),
            major_incident: None,
            closed_at: None,
            notes: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn still_open(&self, what: &str) -> Result<(), Refusal> {
        match self.status {
            ProblemStatus::Open | ProblemStatus::KnownError => Ok(()),
            s => Err(Refusal::new(
                "lifecycle",
                format!(
                    "{} is {s}; {what} can only be recorded while it is open or a known error",
                    self.id
                ),
            )),
        }
    }

    /// Recording a root cause or a workaround makes the problem a known error.
    fn become_known_error(&mut self) -> Result<(), Refusal> {
        if self.status == ProblemStatus::Open {
            transition(
                &self.id.to_string(),
                &mut self.status,
                ProblemStatus::KnownError,
            )?;
        }
        Ok(())
    }

    pub fn set_root_cause(&mut self, text: &str) -> Result<(), Refusal> {
        self.still_open("a root cause")?;
        self.root_cause = Some(text.to_string());
        self.become_known_error()
    }

    pub fn set_workaround(&mut self, text: &str) -> Result<(), Refusal> {
        self.still_open("a workaround")?;
        self.workaround = Some(text.to_string());
        self.become_known_error()
    }

    pub fn resolve(&mut self, text: &str) -> Result<(), Refusal> {
        if self.status == ProblemStatus::Open {
            return Err(Refusal::new(
                "lifecycle",
                format!("{id} is open; record what was found first with `problem rootcause {id} <text>` or `problem workaround {id} <text>`", id = self.id),
            ));
        }
        transition(
            &self.id.to_string(),
            &mut self.status,
            ProblemStatus::Resolved,
        )?;
        self.resolution = Some(text.to_string());
        Ok(())
    }

    pub fn close(&mut self, actor: &Actor, now: DateTime<Utc>, text: &str) -> Result<(), Refusal> {
        if let (Some(inc), None) = (self.major_incident, &self.root_cause) {
            return Err(Refusal::new(
                "major-incident-root-cause",
                format!("{id} was opened for major incident {inc}, so it needs a root cause before it closes: `problem rootcause {id} <cause>`", id = self.id),
            ));
        }
        transition(
            &self.id.to_string(),
            &mut self.status,
            ProblemStatus::Closed,
        )?;
        self.closed_at = Some(now);
        note(&mut self.notes, actor, now, Some(text));
        Ok(())
    }

    pub fn link_incident(&mut self, incident: RecordId) -> Result<bool, Refusal> {
        if self.status == ProblemStatus::Closed {
            return Err(Refusal::new(
                "lifecycle",
                format!("{} is closed; open a new problem instead", self.id),
            ));
        }
        if self.incidents.contains(&incident) {
            return Ok(false);
        }
        self.incidents.push(incident);
        Ok(true)
    }
}

/// "the year-end freeze (until 2027-01-04T00:00Z) allows only emergency changes".
pub fn freeze_message(what: &str, f: &Freeze, change_type: ChangeType) -> String {
    let allowed = if f.allow.is_empty() {
        "no changes".to_string()
    } else {
        let names: Vec<&str> = f.allow.iter().map(|t| t.as_str()).collect();
        format!("only {} changes", names.join(" and "))
    };
    format!(
        "{what} is a {} change and the {} freeze ({}..{}) allows {allowed}; it ends {}",
        change_type.as_str(),
        f.name,
        f.start.format("%Y-%m-%dT%H:%MZ"),
        f.end.format("%Y-%m-%dT%H:%MZ"),
        f.end.format("%Y-%m-%dT%H:%MZ")
    )
}

/// Refuses a change window that falls in a freeze the change type is not allowed in.
pub fn check_schedule(
    window: &Window,
    change_type: ChangeType,
    policy: &Policy,
) -> Result<(), Refusal> {
    match policy.freeze_overlapping(window.start, window.end, change_type) {
        Some(f) => Err(Refusal::new(
            "change-freeze",
            format!(
                "{}; pick a window after it ends",
                freeze_message("this change", f, change_type)
            ),
        )),
        None => Ok(()),
    }
}

/// The fields of a new change, as the request command gives them.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub title: String,
    pub change_type: ChangeType,
    pub risk: Option<Level>,
    pub service: Option<String>,
    pub window: Option<Window>,
    pub template: Option<String>,
}

/// What a vote did to a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// The vote was counted; the change still waits for more.
    Counted,
    /// The vote decided the change (approved or rejected).
    Decided(ChangeStatus),
}

impl Change {
    pub fn request(id: RecordId, new: NewChange, requester: &Actor, now: DateTime<Utc>) -> Change {
        Change {
            id,
            title: new.title,
            status: ChangeStatus::Draft,
            change_type: new.change_type,
            risk: new.risk.unwrap_or(Level::Medium),
            service: new.service,
            requester: requester.clone(),
            window: new.window,
            template: new.template,
            required_approvals: 0,
            approvals: Vec::new(),
            links: Vec::new(),
            review: None,
            submitted_at: None,
            decided_at: None,
            started_at: None,
            finished_at: None,
            outcome: None,
            reviewed_at: None,
            review_due: None,
            review_overdue_at: None,
            suspected_incidents: Vec::new(),
            closed_at: None,
            notes: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn key(&self) -> String {
        self.id.to_string()
    }

    /// Whether an alert-born incident raised at `now` on the change's service may have been
    /// caused by it: it is in progress, or completed within `window`.
    pub fn may_have_caused(&self, now: DateTime<Utc>, window: std::time::Duration) -> bool {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        match self.status {
            ChangeStatus::InProgress => true,
            ChangeStatus::Completed => self.finished_at.is_some_and(|f| now - f <= window),
            _ => false,
        }
    }

    /// Links an incident suspected of being caused by the change; false if it already was.
    pub fn suspect(&mut self, incident: RecordId, now: DateTime<Utc>) -> bool {
        if self
            .suspected_incidents
            .iter()
            .any(|s| s.incident == incident)
        {
            return false;
        }
        self.suspected_incidents.push(SuspectedIncident {
            incident,
            linked_at: now,
            cleared_by: None,
            cleared_at: None,
            clearance: None,
        });
        true
    }

    /// A reviewer finds the incident was not caused by the change. The change's requester
    /// (any of their accounts) may not clear their own change.
    pub fn clear_suspect(
        &mut self,
        incident: RecordId,
        actor: &Actor,
        now: DateTime<Utc>,
        text: &str,
        policy: &Policy,
    ) -> Result<(), Refusal> {
        if policy.same_person(actor, &self.requester) {
            return Err(Refusal::new(
                "segregation-of-duties",
                format!(
                    "{actor} requested {}; another change manager must clear {incident}",
                    self.id
                ),
            ));
        }
        let id = self.id;
        let s = self
            .suspected_incidents
            .iter_mut()
            .find(|s| s.incident == incident)
            .ok_or_else(|| {
                Refusal::new(
                    "lifecycle",
                    format!("{incident} is not linked to {id} as a suspected incident"),
                )
            })?;
        if let (Some(by), Some(at)) = (&s.cleared_by, s.cleared_at) {
            return Err(Refusal::new(
                "lifecycle",
                format!(
                    "{incident} was already cleared for {id} by {by} at {}",
                    at.format("%Y-%m-%d %H:%MZ")
                ),
            ));
        }
        s.cleared_by = Some(actor.clone());
        s.cleared_at = Some(now);
        s.clearance = Some(text.to_string());
        self.notes.push(Note {
            actor: actor.clone(),
            at: now,
            text: format!("cleared {incident}: {text}"),
        });
        Ok(())
    }

    /// Incidents still suspected of being caused by the change (not cleared).
    pub fn uncleared_incidents(&self) -> impl Iterator<Item = RecordId> + '_ {
        self.suspected_incidents
            .iter()
            .filter(|s| s.cleared_at.is_none())
            .map(|s| s.incident)
    }

    /// Submits for approval. A standard change from a listed template is approved at once.
    pub fn submit(&mut self, now: DateTime<Utc>, policy: &Policy) -> Result<VoteResult, Refusal> {
        if self.change_type == ChangeType::Standard {
            let listed = self
                .template
                .as_ref()
                .is_some_and(|t| policy.standard_templates.contains(t));
            if !listed {
                let templates = if policy.standard_templates.is_empty() {
                    "the rules file lists none; use type:normal".to_string()
                } else {
                    format!(
                        "use template:{}",
                        policy.standard_templates.join(" or template:")
                    )
                };
                return Err(Refusal::new(
                    "standard-change-template",
                    format!("{} is a standard change, which must name a pre-approved template; {templates}", self.id),
                ));
            }
        }
        transition(&self.key(), &mut self.status, ChangeStatus::Submitted)?;
        self.submitted_at = Some(now);
        self.required_approvals = match self.change_type {
            ChangeType::Standard => 0,
            ChangeType::Normal => policy.normal.approvals,
            ChangeType::Emergency => policy.emergency.approvals,
        };
        if self.change_type == ChangeType::Standard {
            transition(&self.key(), &mut self.status, ChangeStatus::Approved)?;
            self.decided_at = Some(now);
            return Ok(VoteResult::Decided(ChangeStatus::Approved));
        }
        Ok(VoteResult::Counted)
    }

    /// Whether `voter` may vote on this change now: it is submitted, they are not its requester
    /// nor the author of a linked pull request or commit (segregation of duties, across all of a
    /// person's accounts), and they hold the voter role of its type.
    pub fn may_vote(&self, voter: &Actor, policy: &Policy) -> Result<(), Refusal> {
        if self.status != ChangeStatus::Submitted {
            let why = match self.status {
                ChangeStatus::Draft => format!(
                    "{id} is a draft; submit it first with `change submit {id}`",
                    id = self.id
                ),
                s => format!(
                    "{} is {s}; votes are closed once a change is decided",
                    self.id
                ),
            };
            return Err(Refusal::new("lifecycle", why));
        }
        if policy.same_person(voter, &self.requester) {
            return Err(Refusal::new(
                "segregation-of-duties",
                format!("you requested {}, so you cannot vote on it", self.id),
            ));
        }
        if let Some(link) = self.links.iter().find(|l| {
            l.author
                .as_ref()
                .is_some_and(|a| policy.same_person(a, voter))
        }) {
            let what = match (link.number, &link.sha) {
                (Some(n), _) => format!("{}#{n}", link.repo),
                (None, Some(sha)) => format!("{}@{}", link.repo, sha.get(..7).unwrap_or(sha)),
                (None, None) => link.repo.clone(),
            };
            return Err(Refusal::new(
                "segregation-of-duties",
                format!(
                    "you wrote {what}, which is linked to {}, so you cannot vote on it",
                    self.id
                ),
            ));
        }
        let rule = self.approval_rule(policy);
        if !policy.has_role(voter, rule.voters) {
            let voters = rule.voters.as_str();
            return Err(Refusal::new(
                "cab-membership",
                format!(
                    "only {voters} members vote on {} changes and {voter} is not one; an admin can add them with `role grant @{voter} {voters}`",
                    self.change_type.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// Whether the person behind `voter` (any of their accounts) has voted on this change.
    pub fn has_voted(&self, voter: &Actor, policy: &Policy) -> bool {
        self.approvals
            .iter()
            .any(|a| policy.same_person(&a.voter, voter))
    }

    /// Counts a vote: one reject rejects; enough approvals approve. A person votes once;
    /// a later vote replaces their earlier one while the change is undecided.
    pub fn vote(
        &mut self,
        voter: &Actor,
        decision: Decision,
        comment: Option<&str>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<VoteResult, Refusal> {
        self.may_vote(voter, policy)?;
        self.approvals
            .retain(|a| !policy.same_person(&a.voter, voter));
        self.approvals.push(Approval {
            voter: voter.clone(),
            decision,
            comment: comment.map(str::to_string),
            at: now,
        });
        let to = if decision == Decision::Reject {
            Some(ChangeStatus::Rejected)
        } else if self.approval_count() >= self.required_approvals as usize {
            Some(ChangeStatus::Approved)
        } else {
            None
        };
        match to {
            Some(to) => {
                transition(&self.key(), &mut self.status, to)?;
                self.decided_at = Some(now);
                Ok(VoteResult::Decided(to))
            }
            None => Ok(VoteResult::Counted),
        }
    }

    /// Whether `voter` may vote on this change now and has not: what "waiting for my vote"
    /// lists. `roles` are those `change approve` needs (the role table's; empty: anyone).
    pub fn awaits_vote_of(&self, voter: &Actor, roles: &[Role], policy: &Policy) -> bool {
        (roles.is_empty() || policy.has_any_role(voter, roles))
            && self.may_vote(voter, policy).is_ok()
            && !self
                .approvals
                .iter()
                .any(|a| policy.same_person(&a.voter, voter))
    }

    pub fn approval_count(&self) -> usize {
        self.approvals
            .iter()
            .filter(|a| a.decision == Decision::Approve)
            .count()
    }

    /// Starts implementation, only inside the approved window when there is one.
    pub fn start(&mut self, now: DateTime<Utc>, policy: &Policy) -> Result<(), Refusal> {
        if self.status == ChangeStatus::Submitted {
            let rule = self.approval_rule(policy);
            let approvers: Vec<String> = self
                .approvals
                .iter()
                .filter(|a| a.decision == Decision::Approve)
                .map(|a| a.voter.to_string())
                .collect();
            let has = if approvers.is_empty() {
                "it has none".to_string()
            } else {
                format!("it has {} ({})", approvers.len(), approvers.join(", "))
            };
            return Err(Refusal::new(
                "cab-quorum",
                format!(
                    "{} needs {} approval{} from {}; {has}",
                    self.id,
                    self.required_approvals,
                    if self.required_approvals == 1 {
                        ""
                    } else {
                        "s"
                    },
                    rule.voters.as_str()
                ),
            ));
        }
        if self.status == ChangeStatus::Approved {
            if let Some(f) = policy.freeze_at(now, self.change_type) {
                return Err(Refusal::new(
                    "change-freeze",
                    freeze_message(&self.id.to_string(), f, self.change_type),
                ));
            }
            if let Some(w) = self.window {
                if now < w.start || now > w.end {
                    return Err(Refusal::new(
                        "change-window",
                        format!(
                            "{} may start only inside its approved window {}..{}; it is now {}",
                            self.id,
                            w.start.format("%Y-%m-%dT%H:%MZ"),
                            w.end.format("%Y-%m-%dT%H:%MZ"),
                            now.format("%Y-%m-%dT%H:%MZ")
                        ),
                    ));
                }
            }
        }
        transition(&self.key(), &mut self.status, ChangeStatus::InProgress)?;
        self.started_at = Some(now);
        Ok(())
    }

    /// Ends implementation as completed, failed or rolled back.
    pub fn finish(
        &mut self,
        to: ChangeStatus,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
        policy: &Policy,
    ) -> Result<(), Refusal> {
        transition(&self.key(), &mut self.status, to)?;
        self.finished_at = Some(now);
        self.outcome = Some(to);
        if self.change_type == ChangeType::Emergency {
            self.review_due = policy
                .emergency
                .review_within
                .map(|d| crate::domain::priority::add(now, d));
        }
        note(&mut self.notes, actor, now, text);
        Ok(())
    }

    /// The approval rule for this change's type (standard changes use none).
    pub fn approval_rule<'p>(&self, policy: &'p Policy) -> &'p ApprovalRule {
        match self.change_type {
            ChangeType::Emergency => &policy.emergency,
            _ => &policy.normal,
        }
    }

    /// An emergency change's review deadline, until reviewed or found overdue.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.review_due
            .filter(|_| self.review.is_none() && self.review_overdue_at.is_none())
    }

    /// Marks the review overdue if its deadline has passed; true when it just became overdue.
    pub fn record_review_overdue(&mut self, now: DateTime<Utc>) -> bool {
        match self.next_deadline() {
            Some(due) if due <= now => {
                self.review_overdue_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Records the post-implementation review.
    pub fn record_review(&mut self, text: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
        match self.status {
            ChangeStatus::Completed | ChangeStatus::Failed | ChangeStatus::RolledBack => {
                self.review = Some(text.to_string());
                self.reviewed_at = Some(now);
                Ok(())
            }
            s => Err(Refusal::new(
                "lifecycle",
                format!(
                    "{} is {s}; a review is recorded after it is completed, failed or rolled back",
                    self.id
                ),
            )),
        }
    }

    /// Closes the change; a post-implementation review must be on record first.
    pub fn close(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        if self.status.next().contains(&ChangeStatus::Closed) && self.review.is_none() {
            return Err(Refusal::new(
                "post-implementation-review",
                format!("{id} needs a review before it closes: `change review {id} <what happened and what we learned>`", id = self.id),
            ));
        }
        transition(&self.key(), &mut self.status, ChangeStatus::Closed)?;
        self.closed_at = Some(now);
        note(&mut self.notes, actor, now, text);
        Ok(())
    }

    /// Links a pull request; returns false when it was already linked.
    pub fn link(&mut self, link: Link) -> bool {
        if self.links.iter().any(|l| {
            l.kind == link.kind
                && l.repo == link.repo
                && l.number == link.number
                && l.sha == link.sha
        }) {
            return false;
        }
        self.links.push(link);
        true
    }
}

use super::status::Lifecycle as _;

impl Release {
    pub fn create(
        id: RecordId,
        version: String,
        repo: Option<String>,
        changes: Vec<RecordId>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Release {
        Release {
            id,
            title: version.clone(),
            status: ReleaseStatus::Planned,
            version,
            repo,
            changes,
            commits: Vec::new(),
            unapproved_commits: Vec::new(),
            deployments: Vec::new(),
            created_by: actor.clone(),
            notes: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Records a deployment; a deployed release may go on to further environments.
    pub fn deploy(&mut self, env: &str, actor: &Actor, now: DateTime<Utc>) -> Result<(), Refusal> {
        if self.status != ReleaseStatus::Deployed {
            transition(
                &self.id.to_string(),
                &mut self.status,
                ReleaseStatus::Deployed,
            )?;
        }
        self.deployments.push(Deployment {
            env: env.to_string(),
            actor: actor.clone(),
            at: now,
        });
        Ok(())
    }

    pub fn roll_back(
        &mut self,
        actor: &Actor,
        now: DateTime<Utc>,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        transition(
            &self.id.to_string(),
            &mut self.status,
            ReleaseStatus::RolledBack,
        )?;
        note(&mut self.notes, actor, now, text);
        Ok(())
    }
}

impl Nonconformity {
    pub fn raise(
        id: RecordId,
        title: String,
        rule: &str,
        record: Option<RecordId>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Self {
        Nonconformity {
            id,
            title,
            status: NcStatus::Open,
            rule: rule.to_string(),
            record,
            raised_by: actor.clone(),
            corrective_action: None,
            corrected_at: None,
            closed_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn correct(&mut self, action: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
        transition(&self.id.to_string(), &mut self.status, NcStatus::Corrected)?;
        self.corrective_action = Some(action.to_string());
        self.corrected_at = Some(now);
        Ok(())
    }

    pub fn close(&mut self, now: DateTime<Utc>) -> Result<(), Refusal> {
        if self.status == NcStatus::Open {
            return Err(Refusal::new(
                "corrective-action",
                format!(
                    "{id} has no corrective action yet: `nc correct {id} <what was done>`",
                    id = self.id
                ),
            ));
        }
        transition(&self.id.to_string(), &mut self.status, NcStatus::Closed)?;
        self.closed_at = Some(now);
        Ok(())
    }
}

impl Service {
    pub fn new(name: &str, owner: Option<Actor>, now: DateTime<Utc>) -> Self {
        Service {
            id: name.to_string(),
            title: name.to_string(),
            status: "active".to_string(),
            owner,
            escalation: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl ConfigItem {
    pub fn new(
        name: &str,
        ci_type: Option<String>,
        service: Option<String>,
        depends: Vec<String>,
        now: DateTime<Utc>,
    ) -> Self {
        ConfigItem {
            id: name.to_string(),
            title: name.to_string(),
            status: "active".to_string(),
            ci_type,
            service,
            depends,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Kind;
    use crate::domain::priority::Priority;
    use crate::domain::records::Link;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
    }

    fn actor(s: &str) -> Actor {
        Actor::parse(s).unwrap()
    }

    /// The built-in policy with console:cab1..3 on the CAB and console:cab1 on the ECAB.
    fn cab_policy() -> Policy {
        let p = Policy::default();
        let cab = ["console:cab1", "console:cab2", "console:cab3"].map(actor);
        p.with_grants(
            cab.iter()
                .map(|a| (a, crate::domain::command::Role::Cab))
                .chain([(&cab[0], crate::domain::command::Role::Ecab)]),
        )
    }

    fn incident(impact: Level, urgency: Level) -> Incident {
        let new = NewIncident {
            title: "Checkout down".into(),
            impact: Some(impact),
            urgency: Some(urgency),
            service: None,
            ci: None,
            security: false,
        };
        Incident::raise(
            RecordId::new(Kind::Incident, 1),
            new,
            &actor("console:alice"),
            now(),
            &Policy::default(),
        )
    }

    #[test]
    fn a_room_for_p1_p2_and_major_incidents_only() {
        assert!(incident(Level::High, Level::High).gets_room()); // P1
        assert!(incident(Level::High, Level::Medium).gets_room()); // P2
        let mut p3 = incident(Level::Medium, Level::Medium);
        assert!(!p3.gets_room());
        p3.major = true;
        assert!(p3.gets_room(), "declared major");
        let mut p4 = incident(Level::Low, Level::Low);
        assert!(!p4.gets_room());
        p4.reprioritize(Some(Level::High), Some(Level::Medium), &Policy::default())
            .unwrap();
        assert!(p4.gets_room(), "re-prioritised to P2");
    }

    fn change(t: ChangeType) -> Change {
        let new = NewChange {
            title: "Upgrade db".into(),
            change_type: t,
            risk: None,
            service: None,
            window: None,
            template: None,
        };
        Change::request(
            RecordId::new(Kind::Change, 4),
            new,
            &actor("console:alice"),
            now(),
        )
    }

    #[test]
    fn raise_takes_priority_from_matrix_and_due_times_from_sla() {
        let inc = incident(Level::High, Level::High);
        assert_eq!(inc.priority, Priority::P1);
        assert_eq!(inc.response_due, now() + chrono::Duration::minutes(15));
        assert_eq!(inc.resolve_due, now() + chrono::Duration::hours(4));
    }

    #[test]
    fn late_acknowledgement_marks_the_incident_breached() {
        let mut inc = incident(Level::High, Level::High);
        inc.acknowledge(
            &actor("console:bob"),
            now() + chrono::Duration::minutes(16),
            None,
        )
        .unwrap();
        assert!(inc.breached);
        assert_eq!(inc.assignee, Some(actor("console:bob")));
    }

    #[test]
    fn resolve_before_acknowledge_is_refused_with_the_allowed_step() {
        let mut inc = incident(Level::Low, Level::Low);
        let err = inc.resolve(&actor("console:bob"), now(), None).unwrap_err();
        assert_eq!(err.rule, "lifecycle");
        assert!(err.message.contains("INC-1 is new"), "{}", err.message);
        assert!(
            err.message.contains("allowed next: acknowledged"),
            "{}",
            err.message
        );
    }

    #[test]
    fn normal_change_needs_quorum_and_one_reject_rejects() {
        let p = cab_policy();
        let mut c = change(ChangeType::Normal);
        c.submit(now(), &p).unwrap();
        assert_eq!(
            c.vote(&actor("console:cab1"), Decision::Approve, None, now(), &p)
                .unwrap(),
            VoteResult::Counted
        );
        assert_eq!(
            c.vote(&actor("console:cab2"), Decision::Approve, None, now(), &p)
                .unwrap(),
            VoteResult::Decided(ChangeStatus::Approved)
        );
        let mut c = change(ChangeType::Normal);
        c.submit(now(), &p).unwrap();
        assert_eq!(
            c.vote(
                &actor("console:cab1"),
                Decision::Reject,
                Some("no rollback plan"),
                now(),
                &p
            )
            .unwrap(),
            VoteResult::Decided(ChangeStatus::Rejected)
        );
    }

    #[test]
    fn a_voter_counts_once_and_the_requester_cannot_vote() {
        let p = cab_policy();
        let mut c = change(ChangeType::Normal);
        c.submit(now(), &p).unwrap();
        c.vote(&actor("console:cab1"), Decision::Approve, None, now(), &p)
            .unwrap();
        assert_eq!(
            c.vote(&actor("console:cab1"), Decision::Approve, None, now(), &p)
                .unwrap(),
            VoteResult::Counted
        );
        assert_eq!(c.approval_count(), 1);
        let err = c
            .vote(&actor("console:alice"), Decision::Approve, None, now(), &p)
            .unwrap_err();
        assert_eq!(err.message, "you requested CHG-4, so you cannot vote on it");
    }

    #[test]
    fn the_author_of_a_linked_pull_request_cannot_vote_from_any_of_their_accounts() {
        let mut p = cab_policy();
        p.people.insert(
            "carol".into(),
            [actor("console:cab3"), actor("github:carol")].into(),
        );
        let mut c = change(ChangeType::Normal);
        let mut pr = Link::pull_request("acme/shop", 42);
        pr.author = Some(actor("github:carol"));
        c.link(pr);
        c.submit(now(), &p).unwrap();
        let err = c
            .vote(&actor("console:cab3"), Decision::Approve, None, now(), &p)
            .unwrap_err();
        assert_eq!(err.rule, "segregation-of-duties");
        assert_eq!(
            err.message,
            "you wrote acme/shop#42, which is linked to CHG-4, so you cannot vote on it"
        );
        assert!(c
            .vote(&actor("console:cab1"), Decision::Approve, None, now(), &p)
            .is_ok());
    }

    #[test]
    fn emergency_review_falls_due_after_review_within_and_is_flagged_once() {
        let p = cab_policy();
        let mut c = change(ChangeType::Emergency);
        c.submit(now(), &p).unwrap();
        c.vote(&actor("console:cab1"), Decision::Approve, None, now(), &p)
            .unwrap();
        c.start(now(), &p).unwrap();
        c.finish(
            ChangeStatus::Completed,
            &actor("console:alice"),
            now(),
            None,
            &p,
        )
        .unwrap();
        assert_eq!(c.next_deadline(), Some(now() + chrono::Duration::hours(72)));
        assert!(!c.record_review_overdue(now() + chrono::Duration::hours(71)));
        assert!(c.record_review_overdue(now() + chrono::Duration::hours(73)));
        assert!(!c.record_review_overdue(now() + chrono::Duration::hours(74)));
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn incident_deadlines_stop_once_met_or_breached() {
        let mut inc = incident(Level::High, Level::High);
        assert_eq!(inc.next_deadline(), Some(inc.response_due));
        assert_eq!(
            inc.record_breaches(now() + chrono::Duration::minutes(16)),
            vec!["response"]
        );
        assert_eq!(inc.next_deadline(), Some(inc.resolve_due));
        inc.acknowledge(
            &actor("console:bob"),
            now() + chrono::Duration::minutes(20),
            None,
        )
        .unwrap();
        inc.resolve(
            &actor("console:bob"),
            now() + chrono::Duration::hours(1),
            None,
        )
        .unwrap();
        assert_eq!(inc.next_deadline(), None);
        assert!(inc
            .record_breaches(now() + chrono::Duration::hours(5))
            .is_empty());
    }

    #[test]
    fn a_change_awaits_the_vote_of_a_cab_member_who_has_not_voted_and_did_not_request_it() {
        let p = cab_policy();
        let cab = [Role::Cab];
        let mut c = change(ChangeType::Normal);
        let (cab1, cab2) = (actor("console:cab1"), actor("console:cab2"));
        assert!(!c.awaits_vote_of(&cab1, &cab, &p), "a draft awaits no vote");
        c.submit(now(), &p).unwrap();
        assert!(c.awaits_vote_of(&cab1, &cab, &p) && c.awaits_vote_of(&cab2, &cab, &p));
        assert!(
            !c.awaits_vote_of(&c.requester.clone(), &cab, &p),
            "not its requester's"
        );
        assert!(
            !c.awaits_vote_of(&actor("console:bob"), &cab, &p),
            "not a non-member's"
        );
        c.vote(&cab1, Decision::Approve, None, now(), &p).unwrap();
        assert!(!c.awaits_vote_of(&cab1, &cab, &p), "voted already");
        assert!(c.awaits_vote_of(&cab2, &cab, &p));
    }

    #[test]
    fn votes_after_the_decision_are_refused() {
        let p = cab_policy();
        let mut c = change(ChangeType::Normal);
        c.submit(now(), &p).unwrap();
        c.vote(&actor("console:cab1"), Decision::Reject, None, now(), &p)
            .unwrap();
        let err = c
            .vote(&actor("console:cab2"), Decision::Approve, None, now(), &p)
            .unwrap_err();
        assert!(err.message.contains("votes are closed"), "{}", err.message);
    }

    #[test]
    fn start_outside_the_window_is_refused() {
        let p = cab_policy();
        let mut c = change(ChangeType::Normal);
        c.window = Some(Window {
            start: now() + chrono::Duration::hours(1),
            end: now() + chrono::Duration::hours(2),
        });
        c.submit(now(), &p).unwrap();
        c.vote(&actor("console:cab1"), Decision::Approve, None, now(), &p)
            .unwrap();
        c.vote(&actor("console:cab2"), Decision::Approve, None, now(), &p)
            .unwrap();
        let err = c.start(now(), &p).unwrap_err();
        assert_eq!(err.rule, "change-window");
        c.start(now() + chrono::Duration::minutes(90), &p).unwrap();
        assert_eq!(c.status, ChangeStatus::InProgress);
    }

    #[test]
    fn close_needs_a_review() {
        let mut c = change(ChangeType::Normal);
        c.status = ChangeStatus::Completed;
        let err = c.close(&actor("console:alice"), now(), None).unwrap_err();
        assert_eq!(err.rule, "post-implementation-review");
        c.record_review("went fine", now()).unwrap();
        c.close(&actor("console:alice"), now(), None).unwrap();
        assert_eq!(c.status, ChangeStatus::Closed);
    }

    #[test]
    fn standard_change_without_listed_template_is_refused_and_lists_templates() {
        let p = Policy {
            standard_templates: vec!["restart-service".into()],
            ..Policy::default()
        };
        let mut c = change(ChangeType::Standard);
        let err = c.submit(now(), &p).unwrap_err();
        assert!(
            err.message.contains("template:restart-service"),
            "{}",
            err.message
        );
        c.template = Some("restart-service".into());
        assert_eq!(
            c.submit(now(), &p).unwrap(),
            VoteResult::Decided(ChangeStatus::Approved)
        );
    }

    #[test]
    fn problem_becomes_known_error_with_a_root_cause_and_resolves_after() {
        let mut p = Problem::open(
            RecordId::new(Kind::Problem, 1),
            "Pool exhaustion".into(),
            vec![],
            &actor("console:alice"),
            now(),
        );
        assert!(p.resolve("fixed").is_err());
        p.set_root_cause("connection leak").unwrap();
        assert_eq!(p.status, ProblemStatus::KnownError);
        p.resolve("patched").unwrap();
        p.close(&actor("console:alice"), now(), "verified").unwrap();
        assert_eq!(p.status, ProblemStatus::Closed);
    }

    #[test]
    fn nonconformity_closes_only_after_corrective_action() {
        let mut nc = Nonconformity::raise(
            RecordId::new(Kind::Nonconformity, 1),
            "Unapproved merge".into(),
            "manual",
            None,
            &actor("console:alice"),
            now(),
        );
        assert_eq!(nc.close(now()).unwrap_err().rule, "corrective-action");
        nc.correct("branch protection re-enabled", now()).unwrap();
        nc.close(now()).unwrap();
        assert_eq!(nc.status, NcStatus::Closed);
    }
}

//! The typed commands of the chat grammar: what the parser produces and the use cases consume.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ids::RecordId;

/// One of three levels: impact, urgency and change risk all use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    High,
    Medium,
    Low,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        [Level::High, Level::Medium, Level::Low]
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
    }

    /// Row or column index in the priority matrix (high first).
    pub fn index(self) -> usize {
        match self {
            Level::High => 0,
            Level::Medium => 1,
            Level::Low => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Standard,
    Normal,
    Emergency,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Standard => "standard",
            ChangeType::Normal => "normal",
            ChangeType::Emergency => "emergency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    IncidentManager,
    ChangeManager,
    Cab,
    Ecab,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::IncidentManager,
        Role::ChangeManager,
        Role::Cab,
        Role::Ecab,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::IncidentManager => "incident-manager",
            Role::ChangeManager => "change-manager",
            Role::Cab => "cab",
            Role::Ecab => "ecab",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// A person named in a command, before it is resolved to an actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mention {
    /// A platform mention such as Slack's `<@U123>` or Discord's `<@80351110224678912>`:
    /// the ID belongs to the platform the command came from.
    PlatformId(String),
    /// A plain `@name`, or an explicit actor `@slack:U123`.
    Name(String),
}

/// A change window: `window:2026-12-01T22:00Z..2026-12-01T23:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help {
        topic: Option<String>,
    },
    Incident(IncidentCmd),
    Request(RequestCmd),
    Problem(ProblemCmd),
    Change(ChangeCmd),
    Release(ReleaseCmd),
    Service(ServiceCmd),
    Ci(CiCmd),
    Nc(NcCmd),
    Role(RoleCmd),
    Oncall(OncallCmd),
    Sla {
        id: RecordId,
    },
    Report {
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    },
    /// `audit ID`: the timeline of one record (a record ID, or a service or CI name).
    Audit {
        record: String,
    },
    /// Not typed by people: the deadline timer asks the ledger to act on every deadline now due.
    Tick,
    /// Not typed by people: what a GitHub webhook (or an API answer it led to) reports.
    Github(GithubCmd),
    /// Not typed by people: the outbox delivered a page of `incident` through `via` (an account,
    /// or `webhook`); run as opsledger itself.
    PageDelivered {
        incident: RecordId,
        via: String,
    },
    /// Not typed by people: an alert notification from Alertmanager or Grafana, run as
    /// `alerts:<receiver>`.
    Alert(Box<super::alerts::AlertNotification>),
    /// Not typed in chat: `opsledger outbox drop ID` marks a parked or failed outgoing message
    /// dropped (it stays in the table); audited, for admins.
    OutboxDrop {
        id: i64,
    },
}

/// A pull request as GitHub describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    /// `owner/name`.
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub branch: String,
    pub base: String,
    pub head_sha: String,
    /// The author's GitHub login.
    pub author: String,
    pub url: String,
    pub merged: bool,
    pub merge_sha: Option<String>,
}

/// A commit: its SHA and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRef {
    pub sha: String,
    pub message: String,
}

/// What GitHub reported, as commands of the ledger (audited like any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubCmd {
    /// A pull request was opened, edited, pushed to, closed or merged: link it to the changes it
    /// names, set its status, and record a merge into a protected branch without approval.
    PullRequest {
        pr: PullRequestRef,
        installation: Option<u64>,
    },
    /// Commits pushed to a branch: a protected branch's commits need an approved change.
    Push {
        repo: String,
        branch: String,
        commits: Vec<CommitRef>,
    },
    /// A published release or a pushed tag: a release record, whose commits are then collected.
    Release {
        repo: String,
        tag: String,
        installation: Option<u64>,
    },
    /// The commits of a release, collected from the compare API.
    ReleaseCommits {
        id: RecordId,
        commits: Vec<CommitRef>,
    },
    /// A successful deployment of a commit or ref to an environment.
    Deployed {
        repo: String,
        sha: String,
        reference: String,
        environment: String,
    },
    /// A deployment waiting on opsledger's protection rule.
    DeploymentGate {
        repo: String,
        sha: String,
        reference: String,
        environment: String,
        callback_url: String,
        installation: Option<u64>,
    },
}

impl GithubCmd {
    /// The command with GitHub's free text (titles, bodies, commit messages, environments)
    /// made recordable: a control or bidirectional character becomes U+FFFD. Refusing it would
    /// refuse GitHub's event, and it must not reach the store as it is (`domain::text`).
    pub fn neutralized(&self) -> GithubCmd {
        let n = |s: &str| super::text::neutralize(s).into_owned();
        let commits = |cs: &[CommitRef]| {
            cs.iter()
                .map(|c| CommitRef {
                    sha: n(&c.sha),
                    message: n(&c.message),
                })
                .collect()
        };
        let mut cmd = self.clone();
        match &mut cmd {
            GithubCmd::PullRequest { pr, .. } => {
                for s in [
                    &mut pr.repo,
                    &mut pr.title,
                    &mut pr.body,
                    &mut pr.branch,
                    &mut pr.base,
                    &mut pr.author,
                    &mut pr.url,
                ] {
                    *s = n(s);
                }
            }
            GithubCmd::Push {
                repo,
                branch,
                commits: cs,
            } => {
                *repo = n(repo);
                *branch = n(branch);
                *cs = commits(cs);
            }
            GithubCmd::Release { repo, tag, .. } => {
                *repo = n(repo);
                *tag = n(tag);
            }
            GithubCmd::ReleaseCommits { commits: cs, .. } => *cs = commits(cs),
            GithubCmd::Deployed {
                repo,
                reference,
                environment,
                ..
            }
            | GithubCmd::DeploymentGate {
                repo,
                reference,
                environment,
                ..
            } => {
                *repo = n(repo);
                *reference = n(reference);
                *environment = n(environment);
            }
        }
        cmd
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentAction {
    Ack,
    Resolve,
    Close,
    Reopen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncidentFilter {
    #[default]
    Open,
    Mine,
    Breached,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentCmd {
    Raise {
        title: String,
        impact: Option<Level>,
        urgency: Option<Level>,
        service: Option<String>,
        ci: Option<String>,
        security: bool,
    },
    Act {
        action: IncidentAction,
        id: RecordId,
        text: Option<String>,
    },
    Show {
        id: RecordId,
    },
    Assign {
        id: RecordId,
        assignee: Mention,
    },
    Note {
        id: RecordId,
        text: String,
    },
    List {
        filter: IncidentFilter,
    },
    /// `incident major INC-n`: declare a major incident (it gets a linked problem).
    Major {
        id: RecordId,
    },
    /// `incident escalate INC-n`: run the incident's escalation chain's next steps now, not
    /// after the wait (a paged person's "Escalate now").
    Escalate {
        id: RecordId,
    },
    /// `incident role INC-n commander|comms|scribe @user`.
    Role {
        id: RecordId,
        role: IncidentRole,
        who: Mention,
    },
    /// `incident priority INC-n [impact:..] [urgency:..]`: re-assess; SLA due times follow.
    Priority {
        id: RecordId,
        impact: Option<Level>,
        urgency: Option<Level>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestCmd {
    Raise {
        title: String,
        service: Option<String>,
    },
    Fulfil {
        id: RecordId,
        text: Option<String>,
    },
    Close {
        id: RecordId,
        text: Option<String>,
    },
    Show {
        id: RecordId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemAction {
    RootCause,
    Workaround,
    Resolve,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemCmd {
    Open {
        title: String,
        from: Vec<RecordId>,
    },
    Link {
        id: RecordId,
        incident: RecordId,
    },
    Act {
        action: ProblemAction,
        id: RecordId,
        text: String,
    },
    Show {
        id: RecordId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    Submit,
    Approve,
    Reject,
    Start,
    Complete,
    Fail,
    Rollback,
    Review,
    Close,
}

impl ChangeAction {
    pub fn verb(self) -> &'static str {
        match self {
            ChangeAction::Submit => "submit",
            ChangeAction::Approve => "approve",
            ChangeAction::Reject => "reject",
            ChangeAction::Start => "start",
            ChangeAction::Complete => "complete",
            ChangeAction::Fail => "fail",
            ChangeAction::Rollback => "rollback",
            ChangeAction::Review => "review",
            ChangeAction::Close => "close",
        }
    }
}

/// A role someone takes in the response to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentRole {
    Commander,
    Comms,
    Scribe,
}

impl IncidentRole {
    pub const ALL: [IncidentRole; 3] = [
        IncidentRole::Commander,
        IncidentRole::Comms,
        IncidentRole::Scribe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentRole::Commander => "commander",
            IncidentRole::Comms => "comms",
            IncidentRole::Scribe => "scribe",
        }
    }
}

/// Which changes `change list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeFilter {
    /// Those not yet closed or rejected.
    #[default]
    Open,
    /// Submitted ones the caller may vote on and has not voted on yet: a CAB member's queue.
    Waiting,
    /// The open ones the caller (any of their accounts) requested.
    Mine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeCmd {
    Request {
        title: String,
        change_type: ChangeType,
        risk: Option<Level>,
        service: Option<String>,
        window: Option<Window>,
        template: Option<String>,
    },
    Act {
        action: ChangeAction,
        id: RecordId,
        text: Option<String>,
    },
    Show {
        id: RecordId,
    },
    /// `change link CHG-n owner/repo#123`
    Link {
        id: RecordId,
        repo: String,
        number: u64,
    },
    /// `change list [open|waiting|mine]`
    List {
        filter: ChangeFilter,
    },
    /// `change review CHG-n cleared INC-m <why>`: a reviewer finds that an incident suspected
    /// of being caused by the change was not.
    Clear {
        id: RecordId,
        incident: RecordId,
        text: String,
    },
}

/// `oncall who [schedule]`, `oncall show <schedule>`, `oncall override ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OncallCmd {
    Who {
        schedule: Option<String>,
    },
    Show {
        schedule: String,
    },
    Override {
        schedule: String,
        who: Mention,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseCmd {
    Create {
        version: String,
        repo: Option<String>,
        changes: Vec<RecordId>,
    },
    Deploy {
        id: RecordId,
        env: String,
    },
    Rollback {
        id: RecordId,
        text: Option<String>,
    },
    Show {
        id: RecordId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCmd {
    Add {
        name: String,
        owner: Option<Mention>,
        /// The escalation chain of its incidents.
        escalation: Option<String>,
    },
    Show {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiCmd {
    Add {
        name: String,
        ci_type: Option<String>,
        service: Option<String>,
        depends: Vec<String>,
    },
    Show {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NcCmd {
    /// `nc raise <title> [record:ID]`: an auditor or manager records a nonconformity by hand.
    Raise {
        title: String,
        record: Option<RecordId>,
    },
    List {
        open_only: bool,
    },
    Correct {
        id: RecordId,
        action: String,
    },
    Close {
        id: RecordId,
    },
    Show {
        id: RecordId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleCmd {
    Grant { user: Mention, role: Role },
    Revoke { user: Mention, role: Role },
}

impl Command {
    /// A short stable name for metrics and the audit trail: `incident raise`, `change approve`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help { .. } => "help",
            Command::Incident(c) => match c {
                IncidentCmd::Raise { .. } => "incident raise",
                IncidentCmd::Act { action, .. } => match action {
                    IncidentAction::Ack => "incident ack",
                    IncidentAction::Resolve => "incident resolve",
                    IncidentAction::Close => "incident close",
                    IncidentAction::Reopen => "incident reopen",
                },
                IncidentCmd::Show { .. } => "incident show",
                IncidentCmd::Assign { .. } => "incident assign",
                IncidentCmd::Note { .. } => "incident note",
                IncidentCmd::List { .. } => "incident list",
                IncidentCmd::Major { .. } => "incident major",
                IncidentCmd::Escalate { .. } => "incident escalate",
                IncidentCmd::Role { .. } => "incident role",
                IncidentCmd::Priority { .. } => "incident priority",
            },
            Command::Request(c) => match c {
                RequestCmd::Raise { .. } => "request raise",
                RequestCmd::Fulfil { .. } => "request fulfil",
                RequestCmd::Close { .. } => "request close",
                RequestCmd::Show { .. } => "request show",
            },
            Command::Problem(c) => match c {
                ProblemCmd::Open { .. } => "problem open",
                ProblemCmd::Link { .. } => "problem link",
                ProblemCmd::Act { action, .. } => match action {
                    ProblemAction::RootCause => "problem rootcause",
                    ProblemAction::Workaround => "problem workaround",
                    ProblemAction::Resolve => "problem resolve",
                    ProblemAction::Close => "problem close",
                },
                ProblemCmd::Show { .. } => "problem show",
            },
            Command::Change(c) => match c {
                ChangeCmd::Request { .. } => "change request",
                ChangeCmd::Act { action, .. } => match action {
                    ChangeAction::Submit => "change submit",
                    ChangeAction::Approve => "change approve",
                    ChangeAction::Reject => "change reject",
                    ChangeAction::Start => "change start",
                    ChangeAction::Complete => "change complete",
                    ChangeAction::Fail => "change fail",
                    ChangeAction::Rollback => "change rollback",
                    ChangeAction::Review => "change review",
                    ChangeAction::Close => "change close",
                },
                ChangeCmd::Show { .. } => "change show",
                ChangeCmd::Link { .. } => "change link",
                ChangeCmd::List { .. } => "change list",
                ChangeCmd::Clear { .. } => "change review",
            },
            Command::Release(c) => match c {
                ReleaseCmd::Create { .. } => "release create",
                ReleaseCmd::Deploy { .. } => "release deploy",
                ReleaseCmd::Rollback { .. } => "release rollback",
                ReleaseCmd::Show { .. } => "release show",
            },
            Command::Service(c) => match c {
                ServiceCmd::Add { .. } => "service add",
                ServiceCmd::Show { .. } => "service show",
            },
            Command::Ci(c) => match c {
                CiCmd::Add { .. } => "ci add",
                CiCmd::Show { .. } => "ci show",
            },
            Command::Nc(c) => match c {
                NcCmd::Raise { .. } => "nc raise",
                NcCmd::List { .. } => "nc list",
                NcCmd::Correct { .. } => "nc correct",
                NcCmd::Close { .. } => "nc close",
                NcCmd::Show { .. } => "nc show",
            },
            Command::Role(c) => match c {
                RoleCmd::Grant { .. } => "role grant",
                RoleCmd::Revoke { .. } => "role revoke",
            },
            Command::Oncall(c) => match c {
                OncallCmd::Who { .. } => "oncall who",
                OncallCmd::Show { .. } => "oncall show",
                OncallCmd::Override { .. } => "oncall override",
            },
            Command::Sla { .. } => "sla",
            Command::Report { .. } => "report",
            Command::Audit { .. } => "audit",
            Command::Tick => "sla check",
            Command::PageDelivered { .. } => "page delivered",
            Command::Github(c) => match c {
                GithubCmd::PullRequest { .. } => "github pull_request",
                GithubCmd::Push { .. } => "github push",
                GithubCmd::Release { .. } => "github release",
                GithubCmd::ReleaseCommits { .. } => "github release commits",
                GithubCmd::Deployed { .. } => "github deployment_status",
                GithubCmd::DeploymentGate { .. } => "github deployment_protection_rule",
            },
            Command::Alert(_) => "alert",
            Command::OutboxDrop { .. } => "outbox drop",
        }
    }
}

impl Command {
    /// The record a command is about, if it names one: used to file refusals on that record's timeline.
    pub fn target(&self) -> Option<String> {
        let id = |id: &RecordId| Some(id.to_string());
        match self {
            Command::Incident(c) => match c {
                IncidentCmd::Act { id: i, .. }
                | IncidentCmd::Show { id: i }
                | IncidentCmd::Assign { id: i, .. }
                | IncidentCmd::Note { id: i, .. }
                | IncidentCmd::Major { id: i }
                | IncidentCmd::Escalate { id: i }
                | IncidentCmd::Role { id: i, .. }
                | IncidentCmd::Priority { id: i, .. } => id(i),
                IncidentCmd::Raise { .. } | IncidentCmd::List { .. } => None,
            },
            Command::Request(
                RequestCmd::Fulfil { id: i, .. }
                | RequestCmd::Close { id: i, .. }
                | RequestCmd::Show { id: i },
            ) => id(i),
            Command::Problem(
                ProblemCmd::Link { id: i, .. }
                | ProblemCmd::Act { id: i, .. }
                | ProblemCmd::Show { id: i },
            ) => id(i),
            Command::Change(
                ChangeCmd::Act { id: i, .. }
                | ChangeCmd::Show { id: i }
                | ChangeCmd::Link { id: i, .. }
                | ChangeCmd::Clear { id: i, .. },
            ) => id(i),
            Command::Alert(n) => Some(n.group_id()),
            Command::PageDelivered { incident, .. } => id(incident),
            Command::Oncall(
                OncallCmd::Show { schedule } | OncallCmd::Override { schedule, .. },
            ) => Some(schedule.clone()),
            Command::Release(
                ReleaseCmd::Deploy { id: i, .. }
                | ReleaseCmd::Rollback { id: i, .. }
                | ReleaseCmd::Show { id: i },
            ) => id(i),
            Command::Nc(
                NcCmd::Correct { id: i, .. } | NcCmd::Close { id: i } | NcCmd::Show { id: i },
            ) => id(i),
            Command::Service(ServiceCmd::Add { name, .. } | ServiceCmd::Show { name }) => {
                Some(name.clone())
            }
            Command::Ci(CiCmd::Add { name, .. } | CiCmd::Show { name }) => Some(name.clone()),
            Command::Sla { id: i } => id(i),
            Command::Audit { record } => Some(record.clone()),
            Command::Github(GithubCmd::ReleaseCommits { id: i, .. }) => id(i),
            _ => None,
        }
    }
}

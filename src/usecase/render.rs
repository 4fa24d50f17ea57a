//! Renders records as neutral replies: a headline naming the ID, fields, and the buttons that fit the status.

use chrono::{DateTime, Utc};

use crate::domain::priority::countdown;
use crate::domain::records::{
    AlertGroup, Change, ConfigItem, Decision, Incident, Nonconformity, Problem, Release, Service,
    ServiceRequest,
};
use crate::domain::reply::{ButtonStyle, Reply};
use crate::domain::status::{ChangeStatus, IncidentStatus};

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%MZ").to_string()
}

fn opt(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

pub fn incident(i: &Incident, now: DateTime<Utc>, headline: String) -> Reply {
    let id = i.id.to_string();
    let mut r = Reply::ok(Some(id.clone()), headline)
        .field("Status", i.status.as_str())
        .field(
            "Priority",
            format!(
                "{} (impact {}, urgency {})",
                i.priority,
                i.impact.as_str(),
                i.urgency.as_str()
            ),
        );
    if let Some(s) = &i.service {
        r = r.field("Service", s.clone());
    }
    if let Some(c) = &i.ci {
        r = r.field("CI", c.clone());
    }
    if i.security {
        r = r.field("Security", "information security incident");
    }
    r = r.field("Assignee", opt(i.assignee.as_ref().map(|a| a.as_str())));
    for (role, who) in &i.roles {
        let name = match role {
            crate::domain::command::IncidentRole::Commander => "Commander",
            crate::domain::command::IncidentRole::Comms => "Comms",
            crate::domain::command::IncidentRole::Scribe => "Scribe",
        };
        r = r.field(name, who.to_string());
    }
    if i.acknowledged_at.is_none() {
        r = r.field(
            "Respond by",
            format!(
                "{} ({})",
                time(i.response_due),
                countdown(now, i.response_due)
            ),
        );
    }
    if i.status.is_open() {
        r = r.field(
            "Resolve by",
            format!(
                "{} ({})",
                time(i.resolve_due),
                countdown(now, i.resolve_due)
            ),
        );
    }
    if i.is_breached_at(now) {
        r = r.field("SLA", "breached");
    }
    if !i.problems.is_empty() {
        r = r.field(
            "Problems",
            i.problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if let Some(a) = &i.alert {
        let state = if a.firing == 0 {
            format!("all {} resolved", a.total)
        } else {
            format!("{} of {} firing", a.firing, a.total)
        };
        r = r.field("Alerts", format!("{state} ({}, {})", a.source, a.group));
    }
    if let Some(e) = &i.escalation {
        let pages = match e.pages.len() {
            1 => "1 page".to_string(),
            n => format!("{n} pages"),
        };
        let state = match (&e.stopped, e.next_at) {
            (Some(why), _) => format!("{} ({pages}): {why}", e.chain),
            (None, Some(next)) => format!("{} ({pages}); next step {}", e.chain, time(next)),
            (None, None) => format!("{} ({pages})", e.chain),
        };
        r = r.field("Paging", state);
    }
    if !i.suspected_changes.is_empty() {
        r = r.field("Suspected changes", ids(&i.suspected_changes));
    }
    if !i.recurs.is_empty() {
        r = r.field("Recurs", ids(&i.recurs));
    }
    // Every alert resolved: resolving the incident is the next step, so it comes first.
    let alerts_over = i.alert.as_ref().is_some_and(|a| a.firing == 0);
    match i.status {
        IncidentStatus::New if alerts_over => r
            .button("Resolve", "incident resolve", &id, ButtonStyle::Primary)
            .button("Acknowledge", "incident ack", &id, ButtonStyle::Default),
        IncidentStatus::New => r
            .button("Acknowledge", "incident ack", &id, ButtonStyle::Primary)
            .button("Resolve", "incident resolve", &id, ButtonStyle::Default),
        IncidentStatus::Acknowledged => {
            r.button("Resolve", "incident resolve", &id, ButtonStyle::Primary)
        }
        _ => r,
    }
}

fn ids(list: &[crate::domain::ids::RecordId]) -> String {
    list.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn alert_group(g: &AlertGroup, headline: String) -> Reply {
    let mut r = Reply::ok(Some(g.id.clone()), headline)
        .field("Status", g.status_str())
        .field("Source", format!("{} (receiver {})", g.source, g.receiver))
        .field("Alerts", g.firing_text());
    if let Some(s) = &g.service {
        r = r.field("Service", s.clone());
    }
    if let Some(c) = &g.ci {
        r = r.field("CI", c.clone());
    }
    if let Some(i) = g.incident {
        r = r.field("Incident", i.to_string());
    }
    if let Some(p) = g.problem {
        r = r.field("Problem", p.to_string());
    }
    r
}

pub fn change(c: &Change, headline: String) -> Reply {
    let id = c.id.to_string();
    let mut r = Reply::ok(Some(id.clone()), headline)
        .field("Status", c.status.as_str())
        .field("Type", c.change_type.as_str())
        .field("Risk", c.risk.as_str())
        .field("Requester", c.requester.to_string());
    if let Some(s) = &c.service {
        r = r.field("Service", s.clone());
    }
    if let Some(w) = &c.window {
        r = r.field("Window", format!("{} .. {}", time(w.start), time(w.end)));
    }
    if c.status != ChangeStatus::Draft && c.required_approvals > 0 {
        let votes = c
            .approvals
            .iter()
            .map(|a| {
                format!(
                    "{} {}",
                    a.voter,
                    if a.decision == Decision::Approve {
                        "approved"
                    } else {
                        "rejected"
                    }
                )
            })
            .collect::<Vec<_>>();
        let tally = format!("{}/{} approvals", c.approval_count(), c.required_approvals);
        r = r.field(
            "Votes",
            if votes.is_empty() {
                tally
            } else {
                format!("{tally}: {}", votes.join(", "))
            },
        );
    }
    if !c.links.is_empty() {
        r = r.field(
            "Links",
            c.links
                .iter()
                .map(|l| l.url.clone())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if !c.suspected_incidents.is_empty() {
        let list: Vec<String> = c
            .suspected_incidents
            .iter()
            .map(|s| match &s.cleared_by {
                Some(by) => format!("{} (cleared by {by})", s.incident),
                None => s.incident.to_string(),
            })
            .collect();
        r = r.field("Suspected incidents", list.join(", "));
    }
    if let Some(rev) = &c.review {
        r = r.field("Review", rev.clone());
    }
    if c.status == ChangeStatus::Submitted {
        r = r
            .button("Approve", "change approve", &id, ButtonStyle::Primary)
            .button("Reject", "change reject", &id, ButtonStyle::Danger);
    }
    r
}

pub fn request(q: &ServiceRequest, headline: String) -> Reply {
    let mut r = Reply::ok(Some(q.id.to_string()), headline)
        .field("Status", q.status.as_str())
        .field("Requester", q.requester.to_string());
    if let Some(s) = &q.service {
        r = r.field("Service", s.clone());
    }
    if let Some(f) = &q.fulfilment {
        r = r.field("Fulfilment", f.clone());
    }
    r
}

pub fn problem(p: &Problem, headline: String) -> Reply {
    let mut r = Reply::ok(Some(p.id.to_string()), headline).field("Status", p.status.as_str());
    if !p.incidents.is_empty() {
        r = r.field(
            "Incidents",
            p.incidents
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    r.field("Root cause", opt(p.root_cause.as_deref()))
        .field("Workaround", opt(p.workaround.as_deref()))
}

pub fn release(rel: &Release, headline: String) -> Reply {
    let mut r = Reply::ok(Some(rel.id.to_string()), headline)
        .field("Status", rel.status.as_str())
        .field("Version", rel.version.clone());
    if let Some(repo) = &rel.repo {
        r = r.field("Repo", repo.clone());
    }
    if !rel.changes.is_empty() {
        r = r.field(
            "Changes",
            rel.changes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if !rel.deployments.is_empty() {
        let d = rel
            .deployments
            .iter()
            .map(|d| format!("{} at {}", d.env, time(d.at)))
            .collect::<Vec<_>>();
        r = r.field("Deployments", d.join(", "));
    }
    r
}

pub fn nonconformity(n: &Nonconformity, headline: String) -> Reply {
    let mut r = Reply::ok(Some(n.id.to_string()), headline)
        .field("Status", n.status.as_str())
        .field("Rule", n.rule.clone());
    if let Some(rec) = n.record {
        r = r.field("Record", rec.to_string());
    }
    let r = r.field("Corrective action", opt(n.corrective_action.as_deref()));
    if n.status == crate::domain::status::NcStatus::Open {
        r.button(
            "Record corrective action",
            "nc correct",
            &n.id.to_string(),
            ButtonStyle::Primary,
        )
    } else {
        r
    }
}

pub fn service(s: &Service, headline: String) -> Reply {
    Reply::ok(Some(s.id.clone()), headline)
        .field("Owner", opt(s.owner.as_ref().map(|a| a.as_str())))
}

pub fn ci(c: &ConfigItem, headline: String) -> Reply {
    let mut r = Reply::ok(Some(c.id.clone()), headline)
        .field("Type", opt(c.ci_type.as_deref()))
        .field("Service", opt(c.service.as_deref()));
    if !c.depends.is_empty() {
        r = r.field("Depends on", c.depends.join(", "));
    }
    r
}

/// Any record as it stands, for posts and in-place updates in chat; `bold` is what goes either
/// side of bold text in the platform's markup (`*` in Slack's mrkdwn, `**` in Markdown).
pub fn record(r: &crate::domain::records::Record, now: DateTime<Utc>, bold: &str) -> Reply {
    use crate::domain::records::Record;
    let headline =
        |id: &str, title: &str, status: &str| format!("{bold}{id}{bold} {title} ({status})");
    match r {
        Record::Incident(i) => {
            let h = headline(&i.id.to_string(), &i.title, i.status.as_str());
            incident(i, now, format!("{h} {}", i.priority))
        }
        Record::Change(c) => change(c, headline(&c.id.to_string(), &c.title, c.status.as_str())),
        Record::Request(q) => request(q, headline(&q.id.to_string(), &q.title, q.status.as_str())),
        Record::Problem(p) => problem(p, headline(&p.id.to_string(), &p.title, p.status.as_str())),
        Record::Release(rel) => release(
            rel,
            headline(&rel.id.to_string(), &rel.title, rel.status.as_str()),
        ),
        Record::Nonconformity(n) => {
            nonconformity(n, headline(&n.id.to_string(), &n.title, n.status.as_str()))
        }
        Record::Service(s) => service(s, format!("service {}", s.id)),
        Record::Ci(c) => ci(c, format!("configuration item {}", c.id)),
        Record::Alert(g) => alert_group(g, headline(&g.id, &g.title, g.status_str())),
        Record::Oncall(o) => Reply::ok(Some(o.id.clone()), format!("on-call schedule {}", o.id))
            .field("Overrides", o.overrides.len().to_string()),
    }
}

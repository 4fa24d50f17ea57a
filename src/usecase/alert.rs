//! Alert notifications: one incident per alert group, deduplicated, resolved, reopened or raised again, recurrence made a problem, and suspected changes linked.
//!
//! What a notification changed in its group is decided by the pure `AlertGroup::merge`; this
//! turns it into records. A notification that changes nothing (a repeat, a replay) writes no
//! record, only its audit entry.

use crate::domain::alerts::{names, AlertNotification};
use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::lifecycle::{NewIncident, Refusal};
use crate::domain::priority::Priority;
use crate::domain::records::{AlertGroup, Change, Incident, IncidentAlert, Problem, Record};
use crate::domain::reply::{Event, Reply};
use crate::domain::status::{IncidentStatus, ProblemStatus};
use crate::store::{ListQuery, RecordPager, StoreError};

use super::incident::{declare_major, updated};
use super::{Ctx, Fail, Handled, Outcome, UnitOfWork};

const ACTION: &str = "alert";
/// At most this many alert links are kept on an incident.
const MAX_LINKS: usize = 20;

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    n: &AlertNotification,
) -> Outcome {
    let rules = &ctx.policy.alerts;
    let key = n.group_id();
    let before = uow.get(Kind::Alert, &key).await?;
    let mut group = match &before {
        Some(Record::Alert(g)) => g.clone(),
        Some(_) => {
            return Err(Fail::Store(StoreError::Invalid(format!(
                "{key} is not an alert group"
            ))))
        }
        None => AlertGroup::new(n, rules, ctx.now),
    };
    let merged = group.merge(n);
    if merged.is_empty() {
        uow.audit_outcome(
            ctx,
            actor,
            Some(key.clone()),
            ACTION,
            "ok: no change (a repeat or a replay)".to_string(),
        );
        let text = match group.incident {
            Some(id) => format!("{key}: no change ({id})"),
            None => format!("{key}: no change"),
        };
        return Ok(Handled::reply(Reply::ok(Some(key), text)));
    }

    let mut events = Vec::new();
    let mut said = Vec::new();
    // The incident the group's alerts are about, as it stands, and as it was (`None` for one
    // raised by this notification).
    let mut current: Option<(Incident, Option<Record>)> = match group.incident {
        Some(id) => match uow.get(Kind::Incident, &id.to_string()).await? {
            Some(Record::Incident(i)) => Some((i.clone(), Some(Record::Incident(i)))),
            _ => None,
        },
        None => None,
    };
    let mut notes = Vec::new();

    if !merged.fired.is_empty() {
        let fired = fired_text(&group, &merged.fired_fingerprints);
        let reopen_by = |resolved_at: Option<chrono::DateTime<chrono::Utc>>| {
            let window =
                chrono::Duration::from_std(rules.reopen_within).unwrap_or(chrono::Duration::MAX);
            resolved_at.is_some_and(|at| ctx.now - at <= window)
        };
        match &mut current {
            Some((inc, _)) if inc.status.is_open() => {
                notes.push(format!("alert firing: {fired}"));
                said.push(format!(
                    "{}: alert firing ({})",
                    inc.id,
                    names(&merged.fired)
                ));
            }
            Some((inc, _))
                if inc.status == IncidentStatus::Resolved && reopen_by(inc.resolved_at) =>
            {
                let text = format!("reopened: its alerts fire again: {fired}");
                inc.reopen(actor, ctx.now, Some(&text))
                    .map_err(|r| refused(inc.id, r))?;
                said.push(format!("{} reopened: its alerts fire again", inc.id));
            }
            _ => {
                let earlier = current.take().map(|(inc, _)| inc.id);
                let inc = raise(uow, ctx, actor, n, &mut group, earlier, &mut events).await?;
                said.push(format!(
                    "{} raised from {key}: {} ({})",
                    inc.id, inc.title, inc.priority
                ));
                current = Some((inc, None));
            }
        }
    }

    if !merged.resolved.is_empty() {
        if let Some((inc, _)) = current.as_mut().filter(|(i, _)| i.status.is_open()) {
            let gone = names(&merged.resolved);
            if group.firing() == 0 {
                let text = format!(
                    "all {} alerts of {key} resolved (last: {gone})",
                    group.alerts.len()
                );
                if rules.auto_resolve {
                    inc.resolve_by_monitoring(
                        actor,
                        ctx.now,
                        &format!("resolved by monitoring: {text}"),
                    )
                    .map_err(|r| refused(inc.id, r))?;
                    said.push(format!("{} resolved: {text}", inc.id));
                } else {
                    notes.push(format!(
                        "{text}; resolve the incident once the service is confirmed"
                    ));
                    said.push(format!("{}: {text}", inc.id));
                }
            } else {
                notes.push(format!("alert resolved: {gone}; {}", group.firing_text()));
                said.push(format!("{}: alert resolved ({gone})", inc.id));
            }
        }
    }

    if let Some((mut inc, before_inc)) = current {
        for text in notes {
            inc.add_note(actor, ctx.now, &text);
        }
        inc.alert = Some(incident_alert(&group));
        uow.save(ctx, actor, ACTION, before_inc.as_ref(), inc.clone());
        if before_inc.is_some() {
            events.push(updated(&inc));
        }
    }
    group.updated_at = ctx.now;
    uow.save(ctx, actor, ACTION, before.as_ref(), group);
    Ok(Handled::with(Reply::ok(Some(key), said.join("\n")), events))
}

fn refused(id: RecordId, refusal: Refusal) -> Fail {
    Fail::Refused {
        record: Some(id.to_string()),
        refusal,
    }
}

/// "HighLatency http://prometheus/graph?..., DiskFull http://...": each alert that began
/// firing, with its link (the first 10, then how many more).
fn fired_text(group: &AlertGroup, fingerprints: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut parts: Vec<String> = fingerprints
        .iter()
        .take(SHOWN)
        .filter_map(|fp| group.alerts.iter().find(|a| &a.fingerprint == fp))
        .map(|a| {
            if a.generator_url.is_empty() {
                a.name.clone()
            } else {
                format!("{} {}", a.name, a.generator_url)
            }
        })
        .collect();
    if fingerprints.len() > SHOWN {
        parts.push(format!("and {} more", fingerprints.len() - SHOWN));
    }
    parts.join(", ")
}

fn incident_alert(group: &AlertGroup) -> IncidentAlert {
    let mut links: Vec<String> = Vec::new();
    for a in &group.alerts {
        if !a.generator_url.is_empty() && !links.contains(&a.generator_url) {
            links.push(a.generator_url.clone());
        }
    }
    links.truncate(MAX_LINKS);
    IncidentAlert {
        group: group.id.clone(),
        source: group.source.clone(),
        firing: group.firing() as u32,
        total: group.alerts.len() as u32,
        links,
    }
}

/// Raises the group's incident: priority from the severity, service and CI from the labels,
/// the earlier incident (if any) linked; then recurrence and suspected changes.
async fn raise(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    n: &AlertNotification,
    group: &mut AlertGroup,
    earlier: Option<RecordId>,
    events: &mut Vec<Event>,
) -> Outcome<Incident> {
    let rules = &ctx.policy.alerts;
    let id = uow.next_id(Kind::Incident).await?;
    let levels = n.levels(rules);
    let new = NewIncident {
        title: n.title(),
        impact: levels.map(|l| l.0),
        urgency: levels.map(|l| l.1),
        service: group.service.clone(),
        ci: group.ci.clone(),
        security: false,
    };
    let mut inc = Incident::raise(id, new, actor, ctx.now, ctx.policy);
    inc.description = Some(n.description());
    inc.recurs = earlier.into_iter().collect();
    events.push(Event::IncidentRaised {
        id: id.to_string(),
        priority: inc.priority.to_string(),
        room: inc.gets_room(),
    });
    if inc.priority == Priority::P1 {
        events.extend(declare_major(uow, ctx, actor, &mut inc).await?);
    }
    super::escalate::begin(uow, ctx, &mut inc, events).await?;
    let recent = group.raised(id, ctx.now, rules.problem_window);
    if recent.len() as u32 >= rules.problem_after {
        recurring_problem(uow, ctx, actor, group, &mut inc, &recent, events).await?;
    }
    suspect_changes(uow, ctx, actor, group, &mut inc, events).await?;
    Ok(inc)
}

/// The group raised `problem_after` incidents within the window: they are one problem
/// (ISO/IEC 20000-1 8.6.3). The group's problem takes the new incident while it is not
/// closed; otherwise a problem is opened, linked to all of them.
async fn recurring_problem(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    group: &mut AlertGroup,
    inc: &mut Incident,
    recent: &[RecordId],
    events: &mut Vec<Event>,
) -> Outcome<()> {
    if let Some(pid) = group.problem {
        if let Some(Record::Problem(p)) = uow.get(Kind::Problem, &pid.to_string()).await? {
            if p.status != ProblemStatus::Closed {
                uow.update(ctx, actor, ACTION, pid, |p: &mut Problem| {
                    p.link_incident(inc.id).map(|_| ())
                })
                .await?;
                inc.problems.push(pid);
                events.push(Event::RecordUpdated {
                    id: pid.to_string(),
                });
                return Ok(());
            }
        }
    }
    let pid = uow.next_id(Kind::Problem).await?;
    let prb = Problem::open(
        pid,
        format!(
            "Recurring alert: {} ({} incidents within {})",
            group.title,
            recent.len(),
            humantime::format_duration(ctx.policy.alerts.problem_window)
        ),
        recent.to_vec(),
        actor,
        ctx.now,
    );
    uow.save(ctx, actor, ACTION, None, prb);
    group.problem = Some(pid);
    inc.problems.push(pid);
    for earlier in recent.iter().filter(|i| **i != inc.id) {
        uow.update(ctx, actor, ACTION, *earlier, |i: &mut Incident| {
            if !i.problems.contains(&pid) {
                i.problems.push(pid);
            }
            Ok::<_, Refusal>(())
        })
        .await?;
        events.push(Event::RecordUpdated {
            id: earlier.to_string(),
        });
    }
    events.push(Event::RecordUpdated {
        id: pid.to_string(),
    });
    Ok(())
}

/// Links the changes in progress, or completed within `change_window`, on the incident's
/// service (or its CI's service) as suspected causes, on both records.
async fn suspect_changes(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    group: &AlertGroup,
    inc: &mut Incident,
    events: &mut Vec<Event>,
) -> Outcome<()> {
    let mut services: Vec<String> = group.service.iter().cloned().collect();
    if let Some(ci) = &group.ci {
        if let Some(Record::Ci(c)) = uow.get(Kind::Ci, ci).await? {
            services.extend(c.service);
        }
    }
    if services.is_empty() {
        return Ok(());
    }
    let mut q = ListQuery::new(Kind::Change, 200);
    q.statuses = vec!["in_progress".to_string(), "completed".to_string()];
    let mut suspects: Vec<Change> = Vec::new();
    let mut pager = RecordPager::new(&mut *uow, q);
    while let Some(page) = pager.next_page().await? {
        suspects.extend(page.into_iter().filter_map(|r| match r {
            Record::Change(c)
                if c.service.as_ref().is_some_and(|s| services.contains(s))
                    && c.may_have_caused(ctx.now, ctx.policy.alerts.change_window) =>
            {
                Some(c)
            }
            _ => None,
        }));
    }
    for c in suspects {
        let (chg, _) = uow
            .update(ctx, actor, ACTION, c.id, |c: &mut Change| {
                c.suspect(inc.id, ctx.now);
                Ok::<_, Refusal>(())
            })
            .await?;
        inc.suspected_changes.push(chg.id);
        inc.add_note(
            actor,
            ctx.now,
            &format!(
                "suspected cause: {} ({}, {} on {})",
                chg.id,
                chg.title,
                chg.status,
                chg.service.as_deref().unwrap_or("-")
            ),
        );
        events.push(Event::ChangeUpdated {
            id: chg.id.to_string(),
            status: chg.status.to_string(),
        });
    }
    Ok(())
}

//! Incident commands: raise, acknowledge, resolve, close, reopen, assign, note, show, list.

use crate::domain::command::{IncidentAction, IncidentCmd, IncidentFilter};
use crate::domain::ids::{Actor, Kind};
use crate::domain::lifecycle::{NewIncident, Refusal};
use crate::domain::permissions;
use crate::domain::priority::Priority;
use crate::domain::records::{Incident, Problem, Record};
use crate::domain::reply::{Event, Reply};
use crate::domain::status::IncidentStatus;
use crate::store::{ListQuery, RecordPager};

use super::{refuse, render, resolve_mention, Ctx, Fail, Handled, Outcome, RefusedOn, UnitOfWork};

/// How many records a chat list shows; the API pages through the rest.
pub(crate) const LIST_LIMIT: i64 = 25;

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &IncidentCmd,
) -> Outcome {
    let action = crate::domain::command::Command::Incident(cmd.clone()).name();
    match cmd {
        IncidentCmd::Raise {
            title,
            impact,
            urgency,
            service,
            ci,
            security,
        } => {
            let id = uow.next_id(Kind::Incident).await?;
            let new = NewIncident {
                title: title.clone(),
                impact: *impact,
                urgency: *urgency,
                service: service.clone(),
                ci: ci.clone(),
                security: *security,
            };
            let mut inc = Incident::raise(id, new, actor, ctx.now, ctx.policy);
            let mut events = vec![Event::IncidentRaised {
                id: id.to_string(),
                priority: inc.priority.to_string(),
                room: inc.gets_room(),
            }];
            if inc.priority == Priority::P1 {
                events.extend(declare_major(uow, ctx, actor, &mut inc).await?);
            }
            super::escalate::begin(uow, ctx, &mut inc, &mut events).await?;
            uow.save(ctx, actor, action, None, inc.clone());
            let headline = format!("{id} raised: {} ({})", inc.title, inc.priority);
            Ok(Handled::with(
                render::incident(&inc, ctx.now, headline),
                events,
            ))
        }
        IncidentCmd::Act {
            action: act,
            id,
            text,
        } => {
            let text = text.as_deref();
            let (inc, verb) = uow
                .update(ctx, actor, action, *id, |inc: &mut Incident| match act {
                    IncidentAction::Ack => inc
                        .acknowledge(actor, ctx.now, text)
                        .map(|_| "acknowledged"),
                    IncidentAction::Resolve => {
                        inc.resolve(actor, ctx.now, text).map(|_| "resolved")
                    }
                    IncidentAction::Close => permissions::check_owner_or(
                        action,
                        actor,
                        &inc.reporter,
                        permissions::INCIDENT_CLOSERS,
                        ctx.policy,
                    )
                    .and_then(|_| inc.close(actor, ctx.now, text))
                    .map(|_| "closed"),
                    IncidentAction::Reopen => inc.reopen(actor, ctx.now, text).map(|_| "reopened"),
                })
                .await?;
            let headline = format!("{id} {verb} by {actor}: {}", inc.title);
            let events = vec![updated(&inc)];
            Ok(Handled::with(
                render::incident(&inc, ctx.now, headline),
                events,
            ))
        }
        IncidentCmd::Assign { id, assignee } => {
            // The mention is resolved after the load, so a missing incident is reported first;
            // its refusal names no record.
            let (inc, who) = uow
                .update(ctx, actor, action, *id, |inc: &mut Incident| {
                    let who = resolve_mention(ctx, actor, assignee)?;
                    inc.assign(&who).on(id)?;
                    Ok::<_, Fail>(who)
                })
                .await?;
            let events = vec![updated(&inc)];
            Ok(Handled::with(
                render::incident(&inc, ctx.now, format!("{id} assigned to {who}")),
                events,
            ))
        }
        IncidentCmd::Note { id, text } => {
            uow.update(ctx, actor, action, *id, |inc: &mut Incident| {
                inc.add_note(actor, ctx.now, text);
                Ok::<_, Refusal>(())
            })
            .await?;
            let events = vec![Event::RecordUpdated { id: id.to_string() }];
            Ok(Handled::with(
                Reply::ok(Some(id.to_string()), format!("{id}: note added")),
                events,
            ))
        }
        IncidentCmd::Major { id } => {
            let mut inc: Incident = uow.load_id(*id).await?;
            if inc.major {
                let problems: Vec<String> = inc.problems.iter().map(|p| p.to_string()).collect();
                return refuse(
                    Some(id.to_string()),
                    "major-incident",
                    format!(
                        "{id} is already a major incident (problem {})",
                        problems.join(", ")
                    ),
                );
            }
            if inc.status == IncidentStatus::Closed {
                return refuse(
                    Some(id.to_string()),
                    "lifecycle",
                    format!("{id} is closed; raise a new incident instead"),
                );
            }
            let before = Record::Incident(inc.clone());
            let mut events = declare_major(uow, ctx, actor, &mut inc).await?;
            uow.save(ctx, actor, action, Some(&before), inc.clone());
            events.push(updated(&inc));
            let problem = inc
                .problems
                .last()
                .map(|p| p.to_string())
                .unwrap_or_default();
            Ok(Handled::with(
                render::incident(
                    &inc,
                    ctx.now,
                    format!(
                        "{id} is now a major incident; {problem} opened to find its root cause"
                    ),
                ),
                events,
            ))
        }
        IncidentCmd::Role { id, role, who } => {
            let (inc, person) = uow
                .update(ctx, actor, action, *id, |inc: &mut Incident| {
                    if inc.status == IncidentStatus::Closed {
                        return Err(Fail::Refused {
                            record: Some(id.to_string()),
                            refusal: Refusal::new("lifecycle", format!("{id} is closed")),
                        });
                    }
                    let person = resolve_mention(ctx, actor, who)?;
                    inc.roles.insert(*role, person.clone());
                    inc.add_note(actor, ctx.now, &format!("{person} is {}", role.as_str()));
                    Ok::<_, Fail>(person)
                })
                .await?;
            // Shown on the card and, for an incident with a room, posted there.
            let events = vec![updated(&inc)];
            Ok(Handled::with(
                render::incident(
                    &inc,
                    ctx.now,
                    format!("{id}: {person} is {}", role.as_str()),
                ),
                events,
            ))
        }
        IncidentCmd::Escalate { id } => {
            let mut inc: Incident = uow.load_id(*id).await?;
            let before = Record::Incident(inc.clone());
            let running =
                inc.status.is_open() && inc.escalation.as_ref().is_some_and(|e| e.is_running());
            if !running {
                return refuse(
                    Some(id.to_string()),
                    "lifecycle",
                    format!("{id} has no escalation under way: it is {}, or acknowledged, or its chain ran out", inc.status),
                );
            }
            let paged_before = inc.escalation.as_ref().map_or(0, |e| e.pages.len());
            if let Some(e) = inc.escalation.as_mut() {
                e.next_at = Some(ctx.now);
            }
            let mut events = Vec::new();
            super::escalate::step(uow, ctx, &mut inc, &mut events).await?;
            let who: Vec<String> = inc
                .escalation
                .as_ref()
                .map(|e| {
                    e.pages[paged_before..]
                        .iter()
                        .map(|p| p.who.clone())
                        .collect()
                })
                .unwrap_or_default();
            uow.save(ctx, actor, action, Some(&before), inc.clone());
            events.push(updated(&inc));
            let headline = if who.is_empty() {
                format!("{id} escalated by {actor}: nobody more to page")
            } else {
                format!("{id} escalated by {actor}: paged {}", who.join(", "))
            };
            Ok(Handled::with(
                render::incident(&inc, ctx.now, headline),
                events,
            ))
        }
        IncidentCmd::Priority {
            id,
            impact,
            urgency,
        } => {
            let mut inc: Incident = uow.load_id(*id).await?;
            let before = Record::Incident(inc.clone());
            let was = inc.priority;
            let had_room = inc.gets_room();
            inc.reprioritize(*impact, *urgency, ctx.policy).on(id)?;
            let mut events = vec![updated(&inc)];
            if let Some(Event::IncidentUpdated { room, .. }) = events.first_mut() {
                // Lowered from P2: the room it has hears of the change.
                *room |= had_room;
            }
            if inc.priority == Priority::P1 && !inc.major {
                events.extend(declare_major(uow, ctx, actor, &mut inc).await?);
            }
            // Re-prioritised into a paging priority: the chain starts, unless someone is on it.
            super::escalate::begin(uow, ctx, &mut inc, &mut events).await?;
            uow.save(ctx, actor, action, Some(&before), inc.clone());
            let headline = format!(
                "{id} re-prioritised {was} -> {}; SLA due times follow",
                inc.priority
            );
            Ok(Handled::with(
                render::incident(&inc, ctx.now, headline),
                events,
            ))
        }
        IncidentCmd::Show { id } => {
            let inc: Incident = uow.load_id(*id).await?;
            uow.audit_read(ctx, actor, Some(id.to_string()), action);
            Ok(Handled::reply(render::incident(
                &inc,
                ctx.now,
                format!("{id}: {}", inc.title),
            )))
        }
        IncidentCmd::List { filter } => {
            let mut q = ListQuery::new(Kind::Incident, LIST_LIMIT);
            let open = || vec!["new".to_string(), "acknowledged".to_string()];
            match filter {
                IncidentFilter::Open => q.statuses = open(),
                IncidentFilter::Mine => {
                    q.statuses = open();
                    q.involving = Some(actor.to_string());
                }
                IncidentFilter::Breached => q.breached = Some(true),
                IncidentFilter::All => {}
            }
            let name = match filter {
                IncidentFilter::Open => "open incidents",
                IncidentFilter::Mine => "your open incidents",
                IncidentFilter::Breached => "incidents that breached their SLA",
                IncidentFilter::All => "incidents",
            };
            listed(uow, ctx, actor, action, &q, name).await
        }
    }
}

/// Marks the incident major and opens its linked problem (ISO/IEC 20000-1 8.6.3).
pub(crate) async fn declare_major(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    inc: &mut Incident,
) -> Outcome<Vec<Event>> {
    let pid = uow.next_id(Kind::Problem).await?;
    let mut prb = Problem::open(
        pid,
        format!("Root cause of major incident {}: {}", inc.id, inc.title),
        vec![inc.id],
        actor,
        ctx.now,
    );
    prb.major_incident = Some(inc.id);
    uow.save(ctx, actor, "problem open", None, prb);
    inc.major = true;
    inc.commander_due =
        Some(ctx.now + chrono::Duration::from_std(ctx.policy.commander_within).unwrap_or_default());
    inc.problems.push(pid);
    Ok(vec![Event::RecordUpdated {
        id: pid.to_string(),
    }])
}

/// Runs a chat list: reads the records, files the list in the audit trail, and answers with
/// one line per record.
pub(crate) async fn listed(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    q: &ListQuery,
    name: &str,
) -> Outcome {
    listed_where(uow, ctx, actor, action, q, name, |_| true).await
}

/// `listed`, keeping only the records `keep` accepts (a rule the store's query cannot say):
/// reads on, a page at a time, until a list is full or the records run out.
pub(crate) async fn listed_where(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    q: &ListQuery,
    name: &str,
    keep: impl Fn(&Record) -> bool,
) -> Outcome {
    let mut rows = Vec::new();
    let mut pager = RecordPager::new(&mut *uow, q.clone());
    while let Some(page) = pager.next_page().await? {
        rows.extend(page.into_iter().filter(|r| keep(r)));
        if rows.len() as i64 >= LIST_LIMIT {
            break;
        }
    }
    rows.truncate(LIST_LIMIT as usize);
    uow.audit_outcome(
        ctx,
        actor,
        None,
        action,
        format!("ok: {} listed", rows.len()),
    );
    Ok(Handled::reply(list_reply(name, &rows, ctx)))
}

/// One line per record: `INC-3 [P1 acknowledged] Checkout down`.
fn list_reply(name: &str, rows: &[Record], ctx: &Ctx<'_>) -> Reply {
    if rows.is_empty() {
        return Reply::ok(None, format!("No {name}."));
    }
    let mut text = format!("{name} ({}):", rows.len());
    for r in rows {
        let extra = match r {
            Record::Incident(i) if i.is_breached_at(ctx.now) => {
                format!("{} {}, SLA breached", i.priority, i.status)
            }
            Record::Incident(i) => format!("{} {}", i.priority, i.status),
            other => other.status(),
        };
        text.push_str(&format!("\n{} [{extra}] {}", r.key(), r.title()));
    }
    if rows.len() as i64 == LIST_LIMIT {
        text.push_str(&format!(
            "\n(first {LIST_LIMIT}; see {}/api/v1 for the rest)",
            ctx.public_url
        ));
    }
    Reply::ok(None, text)
}

/// The event for a changed incident: whether it gets a room is read after the change. An
/// incident lowered from P2 to P3 is told so in its room, and nothing after that.
pub(crate) fn updated(inc: &Incident) -> Event {
    Event::IncidentUpdated {
        id: inc.id.to_string(),
        status: inc.status.to_string(),
        room: inc.gets_room(),
    }
}

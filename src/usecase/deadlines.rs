//! The deadline timer's command, `Command::Tick`: act on every deadline that has come, once,
//! inside the batch's lock.
//!
//! Two replicas may both ask; the second finds the deadlines already handled, because it reads
//! them inside its own transaction after the first committed.

use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{Nonconformity, Record};
use crate::domain::reply::{Event, Reply};

use super::{Ctx, Handled, Outcome, UnitOfWork};

/// The most deadlines one tick handles; the timer ticks again at once when more are due.
const TICK_LIMIT: i64 = 200;

pub(crate) async fn tick(uow: &mut UnitOfWork, ctx: &Ctx<'_>) -> Outcome {
    let system = Actor::system();
    let due = uow.due(ctx.now, TICK_LIMIT).await?;
    let mut events = Vec::new();
    let mut handled = Vec::new();
    for record in due {
        match record {
            Record::Incident(mut inc) => {
                let before = Record::Incident(inc.clone());
                let missed = inc.record_breaches(ctx.now);
                let paging = inc.status.is_open()
                    && inc
                        .escalation
                        .as_ref()
                        .is_some_and(|e| e.is_running() && e.next_at.is_some_and(|t| t <= ctx.now));
                let remind = inc.commander_reminder_due().is_some_and(|t| t <= ctx.now);
                let stale = inc.status.is_open() && inc.stale_due.is_some_and(|t| t <= ctx.now);
                if missed.is_empty() && !paging && !remind && !stale {
                    continue;
                }
                let id = inc.id;
                if stale {
                    inc.stale_due = None;
                    let quiet = humantime::format_duration(ctx.policy.stale_after(inc.priority));
                    let whom = match &inc.assignee {
                        Some(a) => format!("{a}, its assignee"),
                        None => match super::escalate::on_call_for(uow, ctx, &inc).await? {
                            Some(p) => format!("{p}, on call"),
                            None => "nobody is assigned: take it with `incident ack`".to_string(),
                        },
                    };
                    events.push(Event::RoomNotice {
                        incident: id.to_string(),
                        text: format!(
                            ":hourglass: {id} ({}) has had no update for {quiet}: {whom}",
                            inc.priority
                        ),
                    });
                    uow.audit_outcome(
                        ctx,
                        &system,
                        Some(id.to_string()),
                        "stale nudge",
                        format!("ok: nudged after {quiet} without an update ({whom})"),
                    );
                    handled.push(format!("{id}: nudged, no update for {quiet}"));
                }
                if remind {
                    inc.commander_reminded_at = Some(ctx.now);
                    events.push(Event::RoomNotice {
                        incident: id.to_string(),
                        text: format!(
                            ":warning: {id} is a major incident with no commander yet: take it with `incident role {id} commander @you`"
                        ),
                    });
                    uow.audit_outcome(
                        ctx,
                        &system,
                        Some(id.to_string()),
                        "commander reminder",
                        "ok: reminded the room that the major incident has no commander".into(),
                    );
                    handled.push(format!("{id}: reminded that it has no commander"));
                }
                if paging {
                    let pages = inc.escalation.as_ref().map_or(0, |e| e.pages.len());
                    super::escalate::step(uow, ctx, &mut inc, &mut events).await?;
                    let now_paged = inc.escalation.as_ref().map_or(0, |e| e.pages.len());
                    handled.push(format!("{id}: {} paged", now_paged - pages));
                }
                if missed.is_empty() {
                    uow.save(ctx, &system, "escalation", Some(&before), inc);
                    continue;
                }
                let target = ctx.policy.sla.target(inc.priority);
                let mut ncs = Vec::new();
                for which in &missed {
                    let (rule, due, allowed) = match *which {
                        "response" => ("sla.response", inc.response_due, target.respond),
                        _ => ("sla.resolution", inc.resolve_due, target.resolve),
                    };
                    let nid = uow.next_id(Kind::Nonconformity).await?;
                    let title = format!(
                        "{id} ({}) missed its {which} target of {} (due {})",
                        inc.priority,
                        humantime::format_duration(allowed),
                        due.format("%Y-%m-%dT%H:%M:%SZ")
                    );
                    let nc = Nonconformity::raise(nid, title, rule, Some(id), &system, ctx.now);
                    uow.save(ctx, &system, "nc raise", None, nc);
                    events.push(Event::NonconformityRaised {
                        id: nid.to_string(),
                    });
                    events.push(Event::SlaBreached {
                        id: id.to_string(),
                        target: (*which).to_string(),
                        priority: inc.priority.to_string(),
                        nonconformity: nid.to_string(),
                    });
                    ncs.push(nid.to_string());
                }
                uow.save(ctx, &system, "sla breach", Some(&before), inc);
                handled.push(format!(
                    "{id} breached its {} target ({})",
                    missed.join(" and "),
                    ncs.join(", ")
                ));
            }
            Record::Change(mut chg) => {
                let before = Record::Change(chg.clone());
                if !chg.record_review_overdue(ctx.now) {
                    continue;
                }
                let id = chg.id;
                let nid = uow.next_id(Kind::Nonconformity).await?;
                let title = format!("Emergency change {id} was not reviewed in time");
                let nc = Nonconformity::raise(
                    nid,
                    title,
                    "emergency-review",
                    Some(id),
                    &system,
                    ctx.now,
                );
                uow.save(ctx, &system, "nc raise", None, nc);
                let requester = chg.requester.to_string();
                uow.save(ctx, &system, "review overdue", Some(&before), chg);
                events.push(Event::NonconformityRaised {
                    id: nid.to_string(),
                });
                events.push(Event::ChangeReviewOverdue {
                    id: id.to_string(),
                    nonconformity: nid.to_string(),
                    requester,
                });
                handled.push(format!("{id} review overdue ({nid})"));
            }
            _ => {}
        }
    }
    let text = if handled.is_empty() {
        "no deadlines due".to_string()
    } else {
        handled.join("\n")
    };
    Ok(Handled::with(Reply::ok(None, text), events))
}

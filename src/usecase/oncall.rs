//! On-call commands: who is on call, the next two weeks, and overrides (records, audited, never overlapping).

use chrono::Duration;

use crate::domain::command::{Command, OncallCmd, Role};
use crate::domain::ids::{Actor, Kind};
use crate::domain::oncall::{overlapping, rotation_text, Override, Schedule, Shift};
use crate::domain::records::{OncallRecord, Record};
use crate::domain::reply::Reply;

use super::{refuse, resolve_mention, Ctx, Fail, Handled, Outcome, UnitOfWork};

/// How far `oncall show` looks ahead.
const SHOW_DAYS: i64 = 14;

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &OncallCmd,
) -> Outcome {
    let action = Command::Oncall(cmd.clone()).name();
    match cmd {
        OncallCmd::Who { schedule } => {
            let schedules: Vec<&Schedule> = match schedule {
                Some(name) => vec![find(ctx, name)?],
                None => ctx.policy.oncall.iter().collect(),
            };
            if schedules.is_empty() {
                uow.audit_outcome(ctx, actor, None, action, "ok: no schedules".into());
                return Ok(Handled::reply(Reply::ok(
                    None,
                    "No on-call schedules: add [[oncall]] to the rules file.",
                )));
            }
            let mut lines = Vec::new();
            for s in schedules {
                let overrides = overrides(uow, &s.name).await?;
                lines.push(who_line(ctx, s, &overrides));
            }
            uow.audit_read(ctx, actor, schedule.clone(), action);
            Ok(Handled::reply(Reply::ok(
                schedule.clone(),
                lines.join("\n"),
            )))
        }
        OncallCmd::Show { schedule } => {
            let s = find(ctx, schedule)?;
            let overrides = overrides(uow, schedule).await?;
            let shifts = s.shifts(ctx.now, ctx.now + Duration::days(SHOW_DAYS), &overrides);
            let mut text = format!(
                "{} ({}, {}), the next {SHOW_DAYS} days:",
                s.name,
                rotation_text(s.rotation),
                s.timezone.name()
            );
            if shifts.is_empty() {
                text.push_str(&format!("\nnobody: it starts {}", s.local(s.boundary(0))));
            }
            for shift in &shifts {
                text.push_str(&format!(
                    "\n{} to {}: {}",
                    s.local(shift.from),
                    s.local(shift.until),
                    shown(ctx, shift)
                ));
            }
            uow.audit_read(ctx, actor, Some(schedule.clone()), action);
            Ok(Handled::reply(Reply::ok(Some(schedule.clone()), text)))
        }
        OncallCmd::Override {
            schedule,
            who,
            from,
            to,
        } => {
            let s = find(ctx, schedule)?;
            // A member of the schedule arranges cover; so may an incident manager.
            let member = s.members.iter().any(|m| {
                ctx.policy
                    .accounts_of(m)
                    .iter()
                    .any(|a| ctx.policy.same_person(a, actor))
            });
            if !member
                && !ctx
                    .policy
                    .has_any_role(actor, &[Role::IncidentManager, Role::Admin])
            {
                return refuse(
                    Some(schedule.clone()),
                    "role",
                    format!(
                        "`oncall override` on {schedule} is for its members ({}) or an incident manager; {actor} is neither",
                        s.members.join(", ")
                    ),
                );
            }
            if *to <= ctx.now {
                return refuse(
                    Some(schedule.clone()),
                    "oncall-override",
                    format!("the override ends at {to}, which has passed"),
                );
            }
            let person = resolve_mention(ctx, actor, who)?;
            let name = ctx
                .policy
                .person_of(&person)
                .map(str::to_string)
                .unwrap_or_else(|| person.to_string());
            let before = uow.get(Kind::Oncall, schedule).await?;
            let mut record = match &before {
                Some(Record::Oncall(r)) => r.clone(),
                _ => OncallRecord {
                    id: schedule.clone(),
                    title: format!("on-call schedule {schedule}"),
                    status: "active".to_string(),
                    overrides: Vec::new(),
                    created_at: ctx.now,
                    updated_at: ctx.now,
                },
            };
            if let Some(o) = overlapping(&record.overrides, *from, *to) {
                return refuse(
                    Some(schedule.clone()),
                    "oncall-override",
                    format!(
                        "{} is already on call instead from {} to {} (set by {}); overrides may not overlap",
                        o.who,
                        s.local(o.from),
                        s.local(o.to),
                        o.by
                    ),
                );
            }
            let instead = s
                .rotation_at(*from)
                .map(|r| format!(" (instead of {})", r.who))
                .unwrap_or_default();
            record.overrides.push(Override {
                who: name.clone(),
                from: *from,
                to: *to,
                by: actor.clone(),
                at: ctx.now,
            });
            record.overrides.sort_by_key(|o| o.from);
            uow.save(ctx, actor, action, before.as_ref(), record);
            Ok(Handled::reply(Reply::ok(
                Some(schedule.clone()),
                format!(
                    "{schedule}: {name} on call from {} to {}{instead}",
                    s.local(*from),
                    s.local(*to)
                ),
            )))
        }
    }
}

fn find<'p>(ctx: &Ctx<'p>, name: &str) -> Outcome<&'p Schedule> {
    ctx.policy.schedule(name).ok_or_else(|| {
        let known: Vec<&str> = ctx.policy.oncall.iter().map(|s| s.name.as_str()).collect();
        Fail::NotFound {
            record: name.to_string(),
            message: if known.is_empty() {
                format!("no on-call schedule {name}: the rules file has none")
            } else {
                format!(
                    "no on-call schedule {name}: the rules file has {}",
                    known.join(", ")
                )
            },
        }
    })
}

/// The overrides made for a schedule, oldest first.
pub(crate) async fn overrides(uow: &mut UnitOfWork, schedule: &str) -> Outcome<Vec<Override>> {
    Ok(match uow.get(Kind::Oncall, schedule).await? {
        Some(Record::Oncall(r)) => r.overrides,
        _ => Vec::new(),
    })
}

/// "payments: alice until Mon 07 Dec 09:00 CET, then bob until Mon 14 Dec 09:00 CET".
fn who_line(ctx: &Ctx<'_>, s: &Schedule, overrides: &[Override]) -> String {
    let Some(now) = s.on_call(ctx.now, overrides) else {
        return format!(
            "{}: nobody yet; it starts {}",
            s.name,
            s.local(s.boundary(0))
        );
    };
    let next = s
        .on_call(now.until, overrides)
        .map(|n| format!(", then {} until {}", shown(ctx, &n), s.local(n.until)))
        .unwrap_or_default();
    format!(
        "{}: {} until {}{next}",
        s.name,
        shown(ctx, &now),
        s.local(now.until)
    )
}

/// A shift's person with their accounts, and whether an override put them there.
fn shown(ctx: &Ctx<'_>, shift: &Shift) -> String {
    let accounts: Vec<String> = ctx
        .policy
        .accounts_of(&shift.who)
        .iter()
        .map(|a| a.to_string())
        .filter(|a| *a != shift.who)
        .collect();
    let mut out = shift.who.clone();
    if !accounts.is_empty() {
        out.push_str(&format!(" ({})", accounts.join(", ")));
    }
    if shift.overridden {
        out.push_str(" [override]");
    }
    out
}

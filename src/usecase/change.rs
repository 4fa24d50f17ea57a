//! Change commands: request, submit, vote, implement, review, close, link, list.

use crate::domain::command::{ChangeAction, ChangeCmd, ChangeFilter, Command};
use crate::domain::ids::{Actor, Kind};
use crate::domain::lifecycle::{check_schedule, NewChange, VoteResult};
use crate::domain::permissions;
use crate::domain::records::{Change, Decision, Link, Record};
use crate::domain::reply::{Event, Reply};
use crate::domain::status::{ChangeStatus, Lifecycle};
use crate::store::ListQuery;

use super::incident::{listed_where, LIST_LIMIT};
use super::{refuse, render, Ctx, Fail, Handled, Outcome, RefusedOn, UnitOfWork};

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &ChangeCmd,
) -> Outcome {
    let action = Command::Change(cmd.clone()).name();
    match cmd {
        ChangeCmd::Request {
            title,
            change_type,
            risk,
            service,
            window,
            template,
        } => {
            if let Some(w) = window {
                check_schedule(w, *change_type, ctx.policy).map_err(|refusal| Fail::Refused {
                    record: None,
                    refusal,
                })?;
            }
            let id = uow.next_id(Kind::Change).await?;
            let new = NewChange {
                title: title.clone(),
                change_type: *change_type,
                risk: *risk,
                service: service.clone(),
                window: *window,
                template: template.clone(),
            };
            let chg = Change::request(id, new, actor, ctx.now);
            uow.save(ctx, actor, action, None, chg.clone());
            let headline = format!(
                "{id} requested: {} ({} change, draft). Submit it with `change submit {id}`",
                chg.title,
                change_type.as_str()
            );
            Ok(Handled::with(
                render::change(&chg, headline),
                vec![Event::RecordUpdated { id: id.to_string() }],
            ))
        }
        ChangeCmd::Act {
            action: act,
            id,
            text,
        } => {
            let text = text.as_deref();
            let (chg, (headline, events)) = uow
                .update(ctx, actor, action, *id, |chg: &mut Change| {
                    act_on(chg, act, actor, ctx, text)
                })
                .await?;
            Ok(Handled::with(render::change(&chg, headline), events))
        }
        ChangeCmd::Clear { id, incident, text } => {
            let (chg, ()) = uow
                .update(ctx, actor, action, *id, |chg: &mut Change| {
                    chg.clear_suspect(*incident, actor, ctx.now, text, ctx.policy)
                })
                .await?;
            let headline = format!(
                "{id}: {incident} cleared by {actor}; it no longer counts against the change"
            );
            let events = vec![
                Event::ChangeUpdated {
                    id: id.to_string(),
                    status: chg.status.to_string(),
                },
                Event::RecordUpdated {
                    id: incident.to_string(),
                },
            ];
            Ok(Handled::with(render::change(&chg, headline), events))
        }
        ChangeCmd::Show { id } => {
            let chg: Change = uow.load_id(*id).await?;
            uow.audit_read(ctx, actor, Some(id.to_string()), action);
            Ok(Handled::reply(render::change(
                &chg,
                format!("{id}: {}", chg.title),
            )))
        }
        ChangeCmd::Link { id, repo, number } => {
            let mut chg: Change = uow.load_id(*id).await?;
            let before = Record::Change(chg.clone());
            if !chg.link(Link::pull_request(repo, *number)) {
                uow.audit_outcome(
                    ctx,
                    actor,
                    Some(id.to_string()),
                    action,
                    "ok: already linked".into(),
                );
                return Ok(Handled::reply(Reply::ok(
                    Some(id.to_string()),
                    format!("{id} is already linked to {repo}#{number}"),
                )));
            }
            uow.save(ctx, actor, action, Some(&before), chg.clone());
            let events = vec![Event::RecordUpdated { id: id.to_string() }];
            Ok(Handled::with(
                render::change(&chg, format!("{id} linked to {repo}#{number}")),
                events,
            ))
        }
        ChangeCmd::List { filter } => list(uow, ctx, actor, action, *filter).await,
    }
}

/// `change list`: open changes; those waiting for the caller's vote (the rule the vote itself
/// applies, `Change::may_vote`, and no vote of theirs yet); or the caller's own open ones.
async fn list(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    filter: ChangeFilter,
) -> Outcome {
    let mut q = ListQuery::new(Kind::Change, LIST_LIMIT);
    q.statuses = match filter {
        ChangeFilter::Waiting => vec![ChangeStatus::Submitted.to_string()],
        ChangeFilter::Open | ChangeFilter::Mine => ChangeStatus::ALL
            .iter()
            .filter(|s| !s.next().is_empty())
            .map(|s| s.to_string())
            .collect(),
    };
    let name = match filter {
        ChangeFilter::Open => "open changes",
        ChangeFilter::Waiting => "changes waiting for your vote",
        ChangeFilter::Mine => "your open changes",
    };
    let keep = |r: &Record| match (filter, r) {
        (ChangeFilter::Open, _) => true,
        (ChangeFilter::Waiting, Record::Change(c)) => {
            c.may_vote(actor, ctx.policy).is_ok() && !c.has_voted(actor, ctx.policy)
        }
        (ChangeFilter::Mine, Record::Change(c)) => ctx.policy.same_person(&c.requester, actor),
        (ChangeFilter::Waiting | ChangeFilter::Mine, _) => false,
    };
    listed_where(uow, ctx, actor, action, &q, name, keep).await
}

/// Applies a submit, vote or implementation step to a change: the reply's headline and the
/// events it raises.
fn act_on(
    chg: &mut Change,
    act: &ChangeAction,
    actor: &Actor,
    ctx: &Ctx<'_>,
    text: Option<&str>,
) -> Outcome<(String, Vec<Event>)> {
    let id = chg.id;
    let mut events = Vec::new();
    let headline = match act {
        ChangeAction::Submit => match chg.submit(ctx.now, ctx.policy).on(id)? {
            VoteResult::Decided(_) => {
                events.push(Event::ChangeDecided {
                    id: id.to_string(),
                    status: "approved".into(),
                });
                format!("{id} submitted and approved as a pre-approved standard change")
            }
            VoteResult::Counted => {
                events.push(Event::ChangeSubmitted { id: id.to_string() });
                format!(
                    "{id} submitted for approval: needs {}",
                    approvals(chg.required_approvals)
                )
            }
        },
        ChangeAction::Approve | ChangeAction::Reject => {
            let decision = if *act == ChangeAction::Approve {
                Decision::Approve
            } else {
                Decision::Reject
            };
            let result = chg
                .vote(actor, decision, text, ctx.now, ctx.policy)
                .on(id)?;
            events.push(Event::ChangeVoted { id: id.to_string() });
            match result {
                VoteResult::Decided(s) => {
                    events.push(Event::ChangeDecided {
                        id: id.to_string(),
                        status: s.to_string(),
                    });
                    format!("{id} {s} after {actor}'s vote")
                }
                VoteResult::Counted => format!(
                    "{id}: {actor} voted to {}; {}/{} approvals",
                    act.verb(),
                    chg.approval_count(),
                    chg.required_approvals
                ),
            }
        }
        ChangeAction::Start => {
            implementer(chg, ctx, actor, "change start")?;
            chg.start(ctx.now, ctx.policy).on(id)?;
            format!("{id} started by {actor}")
        }
        ChangeAction::Complete => finish(chg, ChangeStatus::Completed, actor, ctx, text)?,
        ChangeAction::Fail => finish(chg, ChangeStatus::Failed, actor, ctx, text)?,
        ChangeAction::Rollback => finish(chg, ChangeStatus::RolledBack, actor, ctx, text)?,
        ChangeAction::Review => {
            let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
                return refuse(
                    Some(id.to_string()),
                    "post-implementation-review",
                    format!("say what the review found: `change review {id} <findings>`"),
                );
            };
            chg.record_review(text, ctx.now).on(id)?;
            format!("{id} reviewed")
        }
        ChangeAction::Close => {
            chg.close(actor, ctx.now, text).on(id)?;
            format!("{id} closed")
        }
    };
    if !matches!(
        act,
        ChangeAction::Submit | ChangeAction::Approve | ChangeAction::Reject
    ) {
        events.push(Event::ChangeUpdated {
            id: id.to_string(),
            status: chg.status.to_string(),
        });
    }
    Ok((headline, events))
}

fn finish(
    chg: &mut Change,
    to: ChangeStatus,
    actor: &Actor,
    ctx: &Ctx<'_>,
    text: Option<&str>,
) -> Outcome<String> {
    let id = chg.id;
    let verb = match to {
        ChangeStatus::Completed => "change complete",
        ChangeStatus::Failed => "change fail",
        _ => "change rollback",
    };
    implementer(chg, ctx, actor, verb)?;
    chg.finish(to, actor, ctx.now, text, ctx.policy).on(id)?;
    Ok(format!(
        "{id} {to}. Record the post-implementation review with `change review {id} <findings>`"
    ))
}

/// Implementing a change is for its requester or a change manager.
fn implementer(chg: &Change, ctx: &Ctx<'_>, actor: &Actor, action: &str) -> Outcome<()> {
    permissions::check_owner_or(
        action,
        actor,
        &chg.requester,
        permissions::CHANGE_IMPLEMENTERS,
        ctx.policy,
    )
    .on(chg.id)
}

/// "1 approval", "2 approvals".
pub(crate) fn approvals(n: u32) -> String {
    if n == 1 {
        "1 approval".to_string()
    } else {
        format!("{n} approvals")
    }
}

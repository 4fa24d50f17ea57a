//! Service request, problem, nonconformity, service, CI and role commands.

use crate::domain::command::{
    CiCmd, Command, NcCmd, ProblemAction, ProblemCmd, RequestCmd, RoleCmd, ServiceCmd,
};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{
    ConfigItem, Incident, Nonconformity, Problem, Record, Service, ServiceRequest,
};
use crate::domain::reply::{Event, Reply};
use crate::store::{Grant, GrantChange, ListQuery};

use super::incident::{list_reply, LIST_LIMIT};
use super::{
    refuse, render, resolve_mention, AuditNote, Ctx, Fail, Handled, Outcome, RefusedOn, UnitOfWork,
};

fn updated(id: impl ToString) -> Vec<Event> {
    vec![Event::RecordUpdated { id: id.to_string() }]
}

pub(crate) async fn request(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &RequestCmd,
) -> Outcome {
    let action = Command::Request(cmd.clone()).name();
    match cmd {
        RequestCmd::Raise { title, service } => {
            let id = uow.next_id(Kind::Request).await?;
            let req = ServiceRequest::raise(id, title.clone(), service.clone(), actor, ctx.now);
            uow.save(ctx, actor, action, None, req.clone());
            Ok(Handled::with(
                render::request(&req, format!("{id} raised: {title}")),
                updated(id),
            ))
        }
        RequestCmd::Fulfil { id, text } | RequestCmd::Close { id, text } => {
            let (req, verb) = uow
                .update(ctx, actor, action, *id, |req: &mut ServiceRequest| {
                    if matches!(cmd, RequestCmd::Fulfil { .. }) {
                        req.fulfil(actor, ctx.now, text.as_deref())
                            .map(|_| "fulfilled")
                    } else {
                        req.close(actor, ctx.now, text.as_deref()).map(|_| "closed")
                    }
                })
                .await?;
            Ok(Handled::with(
                render::request(&req, format!("{id} {verb}")),
                updated(id),
            ))
        }
        RequestCmd::Show { id } => {
            let req: ServiceRequest = uow.load_id(*id).await?;
            uow.audit_read(ctx, actor, Some(id.to_string()), action);
            Ok(Handled::reply(render::request(
                &req,
                format!("{id}: {}", req.title),
            )))
        }
    }
}

pub(crate) async fn problem(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &ProblemCmd,
) -> Outcome {
    let action = Command::Problem(cmd.clone()).name();
    match cmd {
        ProblemCmd::Open { title, from } => {
            let mut incidents = Vec::new();
            for i in from {
                incidents.push(uow.load_id::<Incident>(*i).await?);
            }
            let id = uow.next_id(Kind::Problem).await?;
            let prb = Problem::open(id, title.clone(), from.clone(), actor, ctx.now);
            uow.save(ctx, actor, action, None, prb.clone());
            for mut inc in incidents {
                let before = Record::Incident(inc.clone());
                if !inc.problems.contains(&id) {
                    inc.problems.push(id);
                    uow.save(ctx, actor, action, Some(&before), inc);
                }
            }
            Ok(Handled::with(
                render::problem(&prb, format!("{id} opened: {title}")),
                updated(id),
            ))
        }
        ProblemCmd::Link { id, incident } => {
            let mut prb: Problem = uow.load_id(*id).await?;
            let mut inc: Incident = uow.load_id(*incident).await?;
            let (prb_before, inc_before) =
                (Record::Problem(prb.clone()), Record::Incident(inc.clone()));
            let added = prb.link_incident(*incident).on(id)?;
            if added {
                uow.save(ctx, actor, action, Some(&prb_before), prb.clone());
            }
            if !inc.problems.contains(id) {
                inc.problems.push(*id);
                uow.save(ctx, actor, action, Some(&inc_before), inc);
            }
            Ok(Handled::with(
                render::problem(&prb, format!("{id} linked to {incident}")),
                updated(id),
            ))
        }
        ProblemCmd::Act {
            action: act,
            id,
            text,
        } => {
            let (prb, verb) = uow
                .update(ctx, actor, action, *id, |prb: &mut Problem| match act {
                    ProblemAction::RootCause => {
                        prb.set_root_cause(text).map(|_| "root cause recorded")
                    }
                    ProblemAction::Workaround => {
                        prb.set_workaround(text).map(|_| "workaround recorded")
                    }
                    ProblemAction::Resolve => prb.resolve(text).map(|_| "resolved"),
                    ProblemAction::Close => prb.close(actor, ctx.now, text).map(|_| "closed"),
                })
                .await?;
            Ok(Handled::with(
                render::problem(&prb, format!("{id} {verb} ({})", prb.status)),
                updated(id),
            ))
        }
        ProblemCmd::Show { id } => {
            let prb: Problem = uow.load_id(*id).await?;
            uow.audit_read(ctx, actor, Some(id.to_string()), action);
            Ok(Handled::reply(render::problem(
                &prb,
                format!("{id}: {}", prb.title),
            )))
        }
    }
}

pub(crate) async fn nc(uow: &mut UnitOfWork, ctx: &Ctx<'_>, actor: &Actor, cmd: &NcCmd) -> Outcome {
    let action = Command::Nc(cmd.clone()).name();
    match cmd {
        NcCmd::Raise { title, record } => {
            if let Some(rec) = record {
                if uow.get(rec.kind, &rec.to_string()).await?.is_none() {
                    return Err(Fail::NotFound {
                        record: rec.to_string(),
                        message: format!("no such {} {rec}", rec.kind.noun()),
                    });
                }
            }
            let id = uow.next_id(Kind::Nonconformity).await?;
            let nc = Nonconformity::raise(id, title.clone(), "manual", *record, actor, ctx.now);
            uow.save(ctx, actor, action, None, nc.clone());
            let events = vec![Event::NonconformityRaised { id: id.to_string() }];
            Ok(Handled::with(
                render::nonconformity(&nc, format!("{id} raised: {title}")),
                events,
            ))
        }
        NcCmd::List { open_only } => {
            let mut q = ListQuery::new(Kind::Nonconformity, LIST_LIMIT);
            if *open_only {
                q.statuses = vec!["open".into()];
            }
            let rows = uow.list(&q).await?;
            uow.audit(AuditNote {
                at: ctx.now,
                actor,
                record: None,
                action,
                before: None,
                after: None,
                outcome: format!("ok: {} listed", rows.len()),
            });
            Ok(Handled::reply(list_reply(
                if *open_only {
                    "open nonconformities"
                } else {
                    "nonconformities"
                },
                &rows,
                ctx,
            )))
        }
        NcCmd::Correct { id, action: what } => {
            let (nc, _) = uow
                .update(ctx, actor, action, *id, |nc: &mut Nonconformity| {
                    nc.correct(what, ctx.now)
                })
                .await?;
            Ok(Handled::with(
                render::nonconformity(&nc, format!("{id} corrected")),
                updated(id),
            ))
        }
        NcCmd::Close { id } => {
            let (nc, _) = uow
                .update(ctx, actor, action, *id, |nc: &mut Nonconformity| {
                    nc.close(ctx.now)
                })
                .await?;
            Ok(Handled::with(
                render::nonconformity(&nc, format!("{id} closed")),
                updated(id),
            ))
        }
        NcCmd::Show { id } => {
            let nc: Nonconformity = uow.load_id(*id).await?;
            uow.audit_read(ctx, actor, Some(id.to_string()), action);
            Ok(Handled::reply(render::nonconformity(
                &nc,
                format!("{id}: {}", nc.title),
            )))
        }
    }
}

pub(crate) async fn service(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &ServiceCmd,
) -> Outcome {
    let action = Command::Service(cmd.clone()).name();
    match cmd {
        ServiceCmd::Add { name, owner } => {
            if uow.get(Kind::Service, name).await?.is_some() {
                return refuse(
                    Some(name.clone()),
                    "unique-name",
                    format!("service {name} already exists"),
                );
            }
            let owner = owner
                .as_ref()
                .map(|m| resolve_mention(ctx, actor, m))
                .transpose()?;
            let svc = Service::new(name, owner, ctx.now);
            uow.save(ctx, actor, action, None, svc.clone());
            Ok(Handled::with(
                render::service(&svc, format!("service {name} added")),
                updated(name),
            ))
        }
        ServiceCmd::Show { name } => {
            let svc: Service = uow.load(name).await?;
            uow.audit_read(ctx, actor, Some(name.clone()), action);
            Ok(Handled::reply(render::service(
                &svc,
                format!("service {name}"),
            )))
        }
    }
}

pub(crate) async fn ci(uow: &mut UnitOfWork, ctx: &Ctx<'_>, actor: &Actor, cmd: &CiCmd) -> Outcome {
    let action = Command::Ci(cmd.clone()).name();
    match cmd {
        CiCmd::Add {
            name,
            ci_type,
            service,
            depends,
        } => {
            if uow.get(Kind::Ci, name).await?.is_some() {
                return refuse(
                    Some(name.clone()),
                    "unique-name",
                    format!("configuration item {name} already exists"),
                );
            }
            if let Some(s) = service {
                if uow.get(Kind::Service, s).await?.is_none() {
                    return refuse(
                        Some(name.clone()),
                        "cmdb-integrity",
                        format!("no such service {s}; add it first with `service add {s}`"),
                    );
                }
            }
            for d in depends {
                if d == name {
                    return refuse(
                        Some(name.clone()),
                        "cmdb-integrity",
                        format!("{name} cannot depend on itself"),
                    );
                }
                if uow.get(Kind::Ci, d).await?.is_none() {
                    return refuse(Some(name.clone()), "cmdb-integrity", format!("{name} depends on {d}, which is not a configuration item; add it first with `ci add {d}`"));
                }
            }
            let item = ConfigItem::new(
                name,
                ci_type.clone(),
                service.clone(),
                depends.clone(),
                ctx.now,
            );
            uow.save(ctx, actor, action, None, item.clone());
            Ok(Handled::with(
                render::ci(&item, format!("configuration item {name} added")),
                updated(name),
            ))
        }
        CiCmd::Show { name } => {
            let item: ConfigItem = uow.load(name).await?;
            uow.audit_read(ctx, actor, Some(name.clone()), action);
            Ok(Handled::reply(render::ci(
                &item,
                format!("configuration item {name}"),
            )))
        }
    }
}

pub(crate) async fn role(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &RoleCmd,
) -> Outcome {
    let action = Command::Role(cmd.clone()).name();
    let (RoleCmd::Grant { user, role } | RoleCmd::Revoke { user, role }) = cmd;
    let who = resolve_mention(ctx, actor, user)?;
    let held = uow
        .grants()
        .await?
        .iter()
        .any(|g| g.actor == who && g.role == *role);
    let (change, text) = match cmd {
        RoleCmd::Grant { .. } if held => (None, format!("{who} already holds {}", role.as_str())),
        RoleCmd::Grant { .. } => (
            Some(GrantChange::Add(Grant {
                actor: who.clone(),
                role: *role,
                granted_by: actor.clone(),
                granted_at: crate::domain::audit::format_time(ctx.now),
            })),
            format!("{who} now holds {}", role.as_str()),
        ),
        RoleCmd::Revoke { .. } if !held => (
            None,
            format!(
                "{who} does not hold {} (roles from the rules file are changed there)",
                role.as_str()
            ),
        ),
        RoleCmd::Revoke { .. } => (
            Some(GrantChange::Remove {
                actor: who.clone(),
                role: *role,
            }),
            format!("{who} no longer holds {}", role.as_str()),
        ),
    };
    let outcome = if change.is_some() {
        "ok"
    } else {
        "ok: unchanged"
    };
    let after = change.as_ref().map(|_| serde_json::json!({"actor": who.as_str(), "role": role.as_str(), "held": matches!(cmd, RoleCmd::Grant { .. })}).to_string());
    if let Some(c) = change {
        uow.grant(c);
    }
    uow.audit(AuditNote {
        at: ctx.now,
        actor,
        record: Some(who.to_string()),
        action,
        before: None,
        after,
        outcome: outcome.into(),
    });
    Ok(Handled::reply(Reply::ok(Some(who.to_string()), text)))
}

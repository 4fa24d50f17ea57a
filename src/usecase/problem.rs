//! Problem commands: open from incidents, link, root cause, workaround, resolve, close, show.

use crate::domain::command::{Command, ProblemAction, ProblemCmd};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{Incident, Problem, Record};

use super::{render, updated, Ctx, Handled, Outcome, RefusedOn, UnitOfWork};

pub(crate) async fn run(
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

//! Nonconformity commands: raise, list, correct, close, show.

use crate::domain::command::{Command, NcCmd};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::Nonconformity;
use crate::domain::reply::Event;
use crate::store::ListQuery;

use super::incident::{listed, LIST_LIMIT};
use super::{render, updated, Ctx, Fail, Handled, Outcome, UnitOfWork};

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &NcCmd,
) -> Outcome {
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
            let name = if *open_only {
                "open nonconformities"
            } else {
                "nonconformities"
            };
            listed(uow, ctx, actor, action, &q, name).await
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

//! Service request commands: raise, fulfil, close, show.

use crate::domain::command::{Command, RequestCmd};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::ServiceRequest;

use super::{render, updated, Ctx, Handled, Outcome, UnitOfWork};

pub(crate) async fn run(
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

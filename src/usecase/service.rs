//! Service catalogue commands: add, show.

use crate::domain::command::{Command, ServiceCmd};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::Service;

use super::{refuse, render, resolve_mention, updated, Ctx, Handled, Outcome, UnitOfWork};

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &ServiceCmd,
) -> Outcome {
    let action = Command::Service(cmd.clone()).name();
    match cmd {
        ServiceCmd::Add {
            name,
            owner,
            escalation,
        } => {
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
            if let Some(chain) = escalation {
                if ctx.policy.chain(chain).is_none() {
                    let known: Vec<&str> = ctx
                        .policy
                        .escalations
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    return refuse(
                        Some(name.clone()),
                        "escalation",
                        format!(
                            "no escalation chain {chain} in the rules file (it has: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
            }
            let mut svc = Service::new(name, owner, ctx.now);
            svc.escalation = escalation.clone();
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

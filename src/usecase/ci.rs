//! Configuration item commands: add (checked against the CMDB), show.

use crate::domain::command::{CiCmd, Command};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::ConfigItem;

use super::{refuse, render, updated, Ctx, Handled, Outcome, UnitOfWork};

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &CiCmd,
) -> Outcome {
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

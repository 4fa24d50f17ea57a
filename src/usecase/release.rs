//! Release commands: create, deploy, roll back, show.

use crate::domain::command::{Command, ReleaseCmd};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{Change, Release};
use crate::domain::reply::Event;

use super::{render, Ctx, Handled, Outcome, UnitOfWork};

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &ReleaseCmd,
) -> Outcome {
    let action = Command::Release(cmd.clone()).name();
    match cmd {
        ReleaseCmd::Create {
            version,
            repo,
            changes,
        } => {
            for c in changes {
                let _: Change = uow.load_id(*c).await?;
            }
            let id = uow.next_id(Kind::Release).await?;
            let rel = Release::create(
                id,
                version.clone(),
                repo.clone(),
                changes.clone(),
                actor,
                ctx.now,
            );
            uow.save(ctx, actor, action, None, rel.clone());
            let mut events = vec![Event::ReleaseCreated { id: id.to_string() }];
            // With a repository named, GitHub's integration collects its commits.
            if repo.is_some() {
                events.push(Event::ReleaseNeedsCommits {
                    id: id.to_string(),
                    installation: None,
                });
            }
            Ok(Handled::with(
                render::release(&rel, format!("{id} created: release {version}")),
                events,
            ))
        }
        ReleaseCmd::Deploy { id, env } => {
            let (rel, _) = uow
                .update(ctx, actor, action, *id, |rel: &mut Release| {
                    rel.deploy(env, actor, ctx.now)
                })
                .await?;
            let events = vec![Event::ReleaseDeployed {
                id: id.to_string(),
                env: env.clone(),
            }];
            Ok(Handled::with(
                render::release(&rel, format!("{id} deployed to {env}")),
                events,
            ))
        }
        ReleaseCmd::Rollback { id, text } => {
            let (rel, _) = uow
                .update(ctx, actor, action, *id, |rel: &mut Release| {
                    rel.roll_back(actor, ctx.now, text.as_deref())
                })
                .await?;
            Ok(Handled::with(
                render::release(&rel, format!("{id} rolled back")),
                vec![Event::RecordUpdated { id: id.to_string() }],
            ))
        }
        ReleaseCmd::Show { id } => {
            let rel: Release = uow.load_id(*id).await?;
            uow.audit_read(ctx, actor, Some(id.to_string()), action);
            Ok(Handled::reply(render::release(
                &rel,
                format!("{id}: release {}", rel.version),
            )))
        }
    }
}

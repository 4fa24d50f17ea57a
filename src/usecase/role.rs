//! Role commands: grant and revoke a role held in the store, beside the rules file's roles.

use crate::domain::command::{Command, RoleCmd};
use crate::domain::ids::Actor;
use crate::domain::reply::Reply;
use crate::store::{Grant, GrantChange};

use super::{resolve_mention, AuditNote, Ctx, Handled, Outcome, UnitOfWork};

pub(crate) async fn run(
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

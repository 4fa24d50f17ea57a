//! `Command::OutboxDrop`: an operator drops a parked or failed outgoing message. Audited; the row stays, marked.

use crate::domain::ids::Actor;
use crate::domain::reply::Reply;
use crate::store::{OutboxEntry, OutboxState};

use super::{refuse, AuditNote, Ctx, Fail, Handled, Outcome, UnitOfWork};

/// The audit trail's name for an outbox item, so `audit outbox:ID` shows what happened to it.
fn audit_key(id: i64) -> String {
    format!("outbox:{id}")
}

/// An outbox item as the audit entry records it, before and after.
fn describe(e: &OutboxEntry, state: OutboxState) -> String {
    serde_json::json!({
        "id": e.id,
        "platform": e.platform,
        "channel": e.channel,
        "op": e.op,
        "record": e.record,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "state": state.as_str(),
    })
    .to_string()
}

pub(crate) async fn drop_item(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: i64,
) -> Outcome {
    let key = audit_key(id);
    let Some(entry) = uow.outbox_entry(id).await? else {
        return Err(Fail::NotFound {
            record: key,
            message: format!("no outbox item {id}"),
        });
    };
    if !uow.drop_outbox(id, ctx.now, actor).await? {
        return refuse(
            Some(key),
            "outbox",
            format!(
                "outbox item {id} is {}; only parked or failed items can be dropped",
                entry.state.as_str()
            ),
        );
    }
    uow.audit(AuditNote {
        at: ctx.now,
        actor,
        record: Some(key),
        action: "outbox drop",
        before: Some(describe(&entry, entry.state)),
        after: Some(describe(&entry, OutboxState::Dropped)),
        outcome: "ok".to_string(),
    });
    Ok(Handled::reply(Reply::ok(
        None,
        format!(
            "dropped outbox item {id} ({} {} to {}{}); it stays in the outbox, marked dropped",
            entry.platform,
            entry.op,
            entry.channel,
            entry.record.map(|r| format!(", {r}")).unwrap_or_default()
        ),
    )))
}

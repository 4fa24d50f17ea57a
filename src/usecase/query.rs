//! Read-only commands: help, the SLA clock of one incident, one record's audit timeline, the report.

use chrono::NaiveDate;

use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::parser;
use crate::domain::priority::countdown;
use crate::domain::records::Incident;
use crate::domain::reply::Reply;

use super::{refuse, Ctx, Fail, Handled, Outcome, UnitOfWork};

/// How many entries `audit ID` shows in chat.
const TIMELINE_LIMIT: i64 = 50;

pub fn help(topic: Option<&str>) -> Handled {
    match parser::help(topic) {
        Ok(text) => Handled::reply(Reply::ok(None, text)),
        Err(e) => Handled::reply(Reply::usage(e.to_string())),
    }
}

pub(crate) async fn sla(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: RecordId,
) -> Outcome {
    if id.kind != Kind::Incident {
        return refuse(
            Some(id.to_string()),
            "usage",
            format!("sla takes an incident ID such as INC-1, not {id}"),
        );
    }
    let inc: Incident = uow.load_id(id).await?;
    uow.audit_read(ctx, actor, Some(id.to_string()), "sla");
    let target = ctx.policy.sla.target(inc.priority);
    let state = |done: Option<chrono::DateTime<chrono::Utc>>, due| match done {
        Some(at) if at <= due => format!("met at {}", at.format("%Y-%m-%d %H:%MZ")),
        Some(at) => format!("missed: done at {}", at.format("%Y-%m-%d %H:%MZ")),
        None => countdown(ctx.now, due),
    };
    let breached = inc.is_breached_at(ctx.now);
    let reply = Reply::ok(
        Some(id.to_string()),
        format!(
            "{id} SLA ({}): {}",
            inc.priority,
            if breached {
                "breached"
            } else {
                "within target"
            }
        ),
    )
    .field(
        "Respond",
        format!(
            "target {}; due {}; {}",
            humantime::format_duration(target.respond),
            inc.response_due.format("%Y-%m-%d %H:%MZ"),
            state(inc.acknowledged_at, inc.response_due)
        ),
    )
    .field(
        "Resolve",
        format!(
            "target {}; due {}; {}",
            humantime::format_duration(target.resolve),
            inc.resolve_due.format("%Y-%m-%d %H:%MZ"),
            state(inc.resolved_at, inc.resolve_due)
        ),
    );
    Ok(Handled::reply(reply))
}

pub(crate) async fn audit(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    record: &str,
) -> Outcome {
    let entries = uow.audit_for(record, TIMELINE_LIMIT).await?;
    if entries.is_empty() {
        return Err(Fail::NotFound {
            record: record.to_string(),
            message: format!("no audit entries for {record}"),
        });
    }
    uow.audit_read(ctx, actor, Some(record.to_string()), "audit");
    let mut text = format!("{record} timeline ({} entries):", entries.len());
    for e in &entries {
        text.push_str(&format!(
            "\n#{} {} {} {}: {}",
            e.seq, e.at, e.actor, e.action, e.outcome
        ));
    }
    if entries.len() as i64 == TIMELINE_LIMIT {
        text.push_str(&format!(
            "\n(first {TIMELINE_LIMIT}; the full trail is at {}/api/v1/audit?record={record})",
            ctx.public_url
        ));
    }
    Ok(Handled::reply(Reply::ok(Some(record.to_string()), text)))
}

pub(crate) async fn report(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Outcome {
    // The ledger reads the report before the command reaches the writer; read here only when
    // it could not.
    let report = match ctx.report {
        Some(r) => r.clone(),
        None => {
            let (from, to) = crate::domain::report::period(from, to, ctx.now);
            crate::reports::report_from(&mut *uow, from, to).await?
        }
    };
    let (from, to) = (report.from, report.to);
    uow.audit_read(ctx, actor, None, "report");
    let link = format!(
        "{}/report?from={from}&to={to}",
        ctx.public_url.trim_end_matches('/')
    );
    Ok(Handled::reply(Reply::ok(None, report.summary(&link))))
}

//! Paging: an incident of a paging priority walks its escalation chain; each step's pages are events (for chat and webhooks) and audit entries.
//!
//! The chain is the one its service names (`service add shop escalation:payments`), else the
//! default chain. It starts when such an incident is raised (from chat, `exec`, the API or an
//! alert) or re-prioritised into a paging priority while nobody has acknowledged it; the steps
//! after a wait run on the SLA clock's tick (`deadlines`), inside the writer's lock.

use serde_json::json;

use crate::domain::escalation::{Chain, Escalation, Page, Step, Target};
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{Incident, Record};
use crate::domain::reply::Event;

use super::{Ctx, Outcome, UnitOfWork};

/// Starts the incident's chain if its priority pages and none is running, and runs its first
/// steps now.
pub(crate) async fn begin(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    inc: &mut Incident,
    events: &mut Vec<Event>,
) -> Outcome<()> {
    if inc.escalation.as_ref().is_some_and(|e| e.is_running())
        || inc.acknowledged_at.is_some()
        || !inc.status.is_open()
    {
        return Ok(());
    }
    let Some(chain) = chain_for(uow, ctx, inc).await? else {
        return Ok(());
    };
    if !chain.pages(inc.priority) {
        return Ok(());
    }
    inc.escalation = Some(Box::new(Escalation::start(chain, ctx.now)));
    step(uow, ctx, inc, events).await
}

/// Who is on call for the incident now: the person on call on the first schedule its chain
/// pages, if any.
pub(crate) async fn on_call_for(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    inc: &Incident,
) -> Outcome<Option<String>> {
    let Some(chain) = chain_for(uow, ctx, inc).await? else {
        return Ok(None);
    };
    let first = chain.steps.iter().find_map(|s| match s {
        Step::Notify(t @ Target::Oncall { .. }) => Some(t.clone()),
        _ => None,
    });
    match first {
        Some(t) => Ok(whom(uow, ctx, &t).await?.into_iter().next()),
        None => Ok(None),
    }
}

/// The chain of the incident's service, else the default one.
async fn chain_for<'p>(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'p>,
    inc: &Incident,
) -> Outcome<Option<&'p Chain>> {
    if let Some(service) = &inc.service {
        if let Some(Record::Service(s)) = uow.get(Kind::Service, service).await? {
            if let Some(name) = &s.escalation {
                if let Some(c) = ctx.policy.chain(name) {
                    return Ok(Some(c));
                }
            }
        }
    }
    Ok(ctx.policy.default_chain())
}

/// Runs the steps due now: pages are recorded on the incident, audited one by one, and raised
/// as events for the routers.
pub(crate) async fn step(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    inc: &mut Incident,
    events: &mut Vec<Event>,
) -> Outcome<()> {
    let system = Actor::system();
    let id = inc.id.to_string();
    let Some(esc) = inc.escalation.as_mut() else {
        return Ok(());
    };
    let Some(chain) = ctx.policy.chain(&esc.chain) else {
        esc.stop(
            format!("its chain `{}` is no longer in the rules file", esc.chain),
            None,
            ctx.now,
        );
        return Ok(());
    };
    let due = esc.advance(chain, ctx.now);
    let mut paged_now: Vec<String> = Vec::new();
    for i in due {
        let step_no = i + 1;
        let mut pages: Vec<Page> = Vec::new();
        let page = |target: String, who: String, via: Vec<String>| Page {
            step: step_no,
            round: esc.round,
            target,
            who,
            via,
            at: ctx.now,
            outside_hours: !ctx.policy.working_hours.contains(ctx.now),
            delivered: Vec::new(),
            acknowledged_by: None,
            acknowledged_at: None,
        };
        match &chain.steps[i] {
            Step::Notify(Target::Channel) => {
                events.push(Event::PagedChannel {
                    incident: id.clone(),
                    text: format!(
                        ":rotating_light: {id} ({}) is not acknowledged: {}, step {step_no} of escalation {}",
                        inc.priority, inc.title, chain.name
                    ),
                });
                pages.push(page(
                    "channel".into(),
                    "channel".into(),
                    vec!["channel".into()],
                ));
            }
            Step::Notify(target) => {
                for who in whom(uow, ctx, target).await? {
                    // Chat accounts only: the terminal and GitHub have no direct messages.
                    let accounts: Vec<String> = ctx
                        .policy
                        .accounts_of(&who)
                        .iter()
                        .filter(|a| a.is_chat())
                        .map(|a| a.to_string())
                        .collect();
                    events.push(Event::Paged {
                        incident: id.clone(),
                        who: who.clone(),
                        accounts: accounts.clone(),
                        chain: chain.name.clone(),
                        step: step_no,
                    });
                    paged_now.push(who.clone());
                    pages.push(page(target.text(), who, accounts));
                }
                if pages.is_empty() {
                    pages.push(page(target.text(), "nobody".into(), Vec::new()));
                }
            }
            Step::Webhook(url) => {
                let body = json!({
                    "incident": id,
                    "priority": inc.priority.to_string(),
                    "title": inc.title,
                    "link": format!("{}/records/{id}", ctx.public_url),
                    "paged": paged_now,
                    "chain": chain.name,
                    "step": step_no,
                });
                events.push(Event::PageWebhook {
                    incident: id.clone(),
                    url: url.clone(),
                    body: body.to_string(),
                });
                pages.push(page(url.clone(), "webhook".into(), vec!["webhook".into()]));
            }
            Step::Wait(_) => {}
        }
        for p in pages {
            let via = if p.via.is_empty() {
                "no chat account (only a webhook step reaches them)".to_string()
            } else {
                p.via.join(", ")
            };
            uow.audit_outcome(
                ctx,
                &system,
                Some(id.clone()),
                "page",
                format!(
                    "ok: paged {} via {via}, step {step_no} ({}) of escalation {}, round {}",
                    p.who,
                    p.target,
                    chain.name,
                    p.round + 1
                ),
            );
            esc.pages.push(p);
        }
    }
    if esc.stopped.as_deref() == Some("ran out of steps") {
        uow.audit_outcome(
            ctx,
            &system,
            Some(id.clone()),
            "page",
            format!(
                "ok: escalation {} ran out of steps with nobody acknowledging",
                chain.name
            ),
        );
    }
    Ok(())
}

/// Whom a `notify` step names now: the person on call (or the next), a role's holders, or a
/// person.
async fn whom(uow: &mut UnitOfWork, ctx: &Ctx<'_>, target: &Target) -> Outcome<Vec<String>> {
    Ok(match target {
        Target::Oncall { schedule, next } => {
            let Some(s) = ctx.policy.schedule(schedule) else {
                return Ok(Vec::new());
            };
            let overrides = super::oncall::overrides(uow, schedule).await?;
            let now = s.on_call(ctx.now, &overrides);
            let shift = match (now, next) {
                (Some(n), true) => s.on_call(n.until, &overrides),
                (now, _) => now,
            };
            shift.map(|s| s.who).into_iter().collect()
        }
        Target::Role(role) => {
            let mut people: Vec<String> = Vec::new();
            for m in ctx.policy.members(*role) {
                let name = Actor::parse(&m)
                    .ok()
                    .and_then(|a| ctx.policy.person_of(&a).map(str::to_string))
                    .unwrap_or(m);
                if !people.contains(&name) {
                    people.push(name);
                }
            }
            people
        }
        Target::Person(p) => vec![p.clone()],
        Target::Channel => Vec::new(),
    })
}

/// The outbox delivered a page of the incident through `via`: noted on the latest page that
/// went there and is not yet noted, and audited saying to whom and how.
pub(crate) async fn delivered(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: crate::domain::ids::RecordId,
    via: &str,
) -> super::Outcome {
    use crate::domain::escalation::Delivered;
    let mut inc: Incident = uow.load_id(id).await?;
    let before = Record::Incident(inc.clone());
    let page = inc.escalation.as_mut().and_then(|e| {
        e.pages
            .iter_mut()
            .rev()
            .find(|p| p.via.iter().any(|v| v == via) && !p.delivered.iter().any(|d| d.via == via))
    });
    let Some(page) = page else {
        uow.audit_outcome(
            ctx,
            actor,
            Some(id.to_string()),
            "page delivered",
            format!("ok: no page of {id} was waiting on {via}"),
        );
        return Ok(super::Handled::reply(crate::domain::reply::Reply::ok(
            Some(id.to_string()),
            format!("{id}: no page waiting on {via}"),
        )));
    };
    page.delivered.push(Delivered {
        via: via.to_string(),
        at: ctx.now,
    });
    let text = format!(
        "page to {} (step {}) delivered via {via}",
        page.who, page.step
    );
    uow.save_saying(
        ctx,
        actor,
        "page delivered",
        Some(&before),
        inc,
        format!("ok: {text}"),
    );
    Ok(super::Handled::reply(crate::domain::reply::Reply::ok(
        Some(id.to_string()),
        format!("{id}: {text}"),
    )))
}

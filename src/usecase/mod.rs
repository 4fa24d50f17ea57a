//! The use cases: one entry point, `execute`, that applies a typed command through the unit of work.
//!
//! Every command that reaches here leaves an audit entry, accepted or refused.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use crate::domain::command::{Command, Mention};
use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::lifecycle::Refusal;
use crate::domain::permissions;
use crate::domain::policy::Policy;
use crate::domain::records::{
    AlertGroup, Change, ConfigItem, Incident, Nonconformity, OncallRecord, Problem, Record,
    Release, Service, ServiceRequest,
};
use crate::domain::reply::{Event, Reply};
use crate::store::StoreError;

mod alert;
mod change;
mod ci;
mod deadlines;
mod escalate;
mod github;
mod incident;
mod nonconformity;
mod oncall;
mod outbox;
mod problem;
mod query;
mod release;
pub mod render;
mod request;
mod role;
mod service;
mod uow;

pub use query::help;
pub use uow::{AuditNote, UnitOfWork};

/// What the rules and the time source say for one command.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    /// Base URL for links in replies.
    pub public_url: &'a str,
    /// The service report a `report` command shows, read from the store before the command
    /// reached the writer (so the writer only records who asked).
    pub report: Option<&'a crate::domain::report::ServiceReport>,
    /// The platforms an account can be on (the chat platforms this build has, and the domain's
    /// own), for accounts named in a command.
    pub platforms: &'static [&'static str],
}

/// The reply to a command and the events it raised, for adapters to act on after commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub reply: Reply,
    pub events: Vec<Event>,
}

impl Handled {
    pub fn reply(reply: Reply) -> Self {
        Handled {
            reply,
            events: Vec::new(),
        }
    }

    pub fn with(reply: Reply, events: Vec<Event>) -> Self {
        Handled { reply, events }
    }
}

/// Why a command did not go through.
#[derive(Debug)]
pub(crate) enum Fail {
    Store(StoreError),
    Refused {
        record: Option<String>,
        refusal: Refusal,
    },
    NotFound {
        record: String,
        message: String,
    },
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

pub(crate) type Outcome<T = Handled> = Result<T, Fail>;

/// Attaches the record ID to a domain refusal.
pub(crate) trait RefusedOn<T> {
    fn on(self, record: impl Display) -> Outcome<T>;
}

impl<T> RefusedOn<T> for Result<T, Refusal> {
    fn on(self, record: impl Display) -> Outcome<T> {
        self.map_err(|refusal| Fail::Refused {
            record: Some(record.to_string()),
            refusal,
        })
    }
}

/// What an `update` closure may fail with: a domain refusal, filed against the record being
/// updated, or a `Fail` that already says which record (if any) it is about.
pub(crate) trait IntoFail {
    fn into_fail(self, record: RecordId) -> Fail;
}

impl IntoFail for Refusal {
    fn into_fail(self, record: RecordId) -> Fail {
        Fail::Refused {
            record: Some(record.to_string()),
            refusal: self,
        }
    }
}

impl IntoFail for Fail {
    fn into_fail(self, _: RecordId) -> Fail {
        self
    }
}

pub(crate) fn refuse<T>(
    record: Option<String>,
    rule: &'static str,
    message: impl Into<String>,
) -> Outcome<T> {
    Err(Fail::Refused {
        record,
        refusal: Refusal::new(rule, message),
    })
}

/// Converts between `Record` and the record type a handler works on.
pub(crate) trait Typed: Sized {
    const KIND: Kind;
    fn from_record(r: Record) -> Option<Self>;
    fn into_record(self) -> Record;
}

macro_rules! typed {
    ($t:ty, $variant:ident) => {
        impl Typed for $t {
            const KIND: Kind = Kind::$variant;
            fn from_record(r: Record) -> Option<Self> {
                match r {
                    Record::$variant(x) => Some(x),
                    _ => None,
                }
            }
            fn into_record(self) -> Record {
                Record::$variant(self)
            }
        }
    };
}

typed!(Incident, Incident);
typed!(ServiceRequest, Request);
typed!(Problem, Problem);
typed!(Change, Change);
typed!(Release, Release);
typed!(Nonconformity, Nonconformity);
typed!(Service, Service);
typed!(ConfigItem, Ci);
typed!(AlertGroup, Alert);
typed!(OncallRecord, Oncall);

impl UnitOfWork {
    /// Loads a record by key, or fails with `no such incident INC-99`.
    pub(crate) async fn load<T: Typed>(&mut self, key: &str) -> Outcome<T> {
        match self.get(T::KIND, key).await? {
            Some(r) => T::from_record(r).ok_or_else(|| {
                Fail::Store(StoreError::Invalid(format!("{key} has the wrong kind")))
            }),
            None => Err(Fail::NotFound {
                record: key.to_string(),
                message: format!("no such {} {key}", T::KIND.noun()),
            }),
        }
    }

    pub(crate) async fn load_id<T: Typed>(&mut self, id: RecordId) -> Outcome<T> {
        self.load(&id.to_string()).await
    }

    /// Files a successful read (`show`, `sla`, `audit`) in the audit trail.
    pub(crate) fn audit_read(
        &mut self,
        ctx: &Ctx<'_>,
        actor: &Actor,
        record: Option<String>,
        action: &str,
    ) {
        self.audit_outcome(ctx, actor, record, action, "ok".to_string());
    }

    /// Files a command that changed no record (a read, a list, a no-op, a refusal) with how it
    /// ended.
    pub(crate) fn audit_outcome(
        &mut self,
        ctx: &Ctx<'_>,
        actor: &Actor,
        record: Option<String>,
        action: &str,
        outcome: String,
    ) {
        self.audit(AuditNote {
            at: ctx.now,
            actor,
            record,
            action,
            before: None,
            after: None,
            outcome,
        });
    }

    /// Stages a record's new state and its audit entry (before and after as stored JSON).
    pub(crate) fn save<T: Typed>(
        &mut self,
        ctx: &Ctx<'_>,
        actor: &Actor,
        action: &str,
        before: Option<&Record>,
        after: T,
    ) {
        self.save_saying(ctx, actor, action, before, after, "ok".to_string());
    }

    /// `save`, with the audit entry's outcome saying more than `ok` (`ok: page to alice
    /// delivered via slack:U1`).
    pub(crate) fn save_saying<T: Typed>(
        &mut self,
        ctx: &Ctx<'_>,
        actor: &Actor,
        action: &str,
        before: Option<&Record>,
        after: T,
        outcome: String,
    ) {
        let mut after = after.into_record();
        after.set_updated_at(ctx.now);
        // A person's (or an alert's) action on an open incident re-arms its stale nudge; the
        // clock's own saves do not.
        if let Record::Incident(inc) = &mut after {
            if *actor != Actor::system() {
                inc.stale_due = inc.status.is_open().then(|| {
                    ctx.now
                        + chrono::Duration::from_std(ctx.policy.stale_after(inc.priority))
                            .unwrap_or(chrono::Duration::MAX)
                });
            } else if !inc.status.is_open() {
                inc.stale_due = None;
            }
        }
        let before_json = before.map(Record::to_json_string);
        let after_json = after.to_json_string();
        self.audit(AuditNote {
            at: ctx.now,
            actor,
            record: Some(after.key()),
            action,
            before: before_json,
            after: Some(after_json.clone()),
            outcome,
        });
        self.put(after, after_json);
    }

    /// Loads a record, lets `change` act on it, and stages the result with its audit entry
    /// (before and after), as `load` then `save` would. A refusal from `change` leaves nothing
    /// staged; a bare `Refusal` is filed against the record's ID. Returns the record as saved,
    /// for the reply, with what `change` returned.
    pub(crate) async fn update<T, R, E>(
        &mut self,
        ctx: &Ctx<'_>,
        actor: &Actor,
        action: &str,
        id: RecordId,
        change: impl FnOnce(&mut T) -> Result<R, E>,
    ) -> Outcome<(T, R)>
    where
        T: Typed + Clone,
        E: IntoFail,
    {
        let mut record: T = self.load_id(id).await?;
        let before = record.clone().into_record();
        let result = change(&mut record).map_err(|e| e.into_fail(id))?;
        self.save(ctx, actor, action, Some(&before), record.clone());
        Ok((record, result))
    }
}

/// Reads ahead, for a batch, the records its commands would otherwise look up one statement at
/// a time: a few statements for the whole batch, each of which costs a round trip to the
/// database's thread (about 60 µs on SQLite here, `cargo bench --bench roundtrip`). GitHub's
/// pull-request deliveries read the changes they name and those linking their pull request.
pub async fn prefetch(
    uow: &mut UnitOfWork,
    policy: &Policy,
    commands: &[&Command],
) -> Result<(), StoreError> {
    let mut changes = Vec::new();
    let mut terms = Vec::new();
    for command in commands {
        if let Command::Github(cmd) = command {
            github::reads_ahead(policy, cmd, &mut changes, &mut terms);
        }
    }
    uow.prefetch_records(Kind::Change, changes).await?;
    uow.prefetch_terms(Kind::Change, terms).await
}

/// Runs one command: the single use-case entry point every adapter reaches through the ledger.
pub async fn execute(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    command: &Command,
) -> Result<Handled, StoreError> {
    let action = command.name();
    let allowed = permissions::check(command, actor, ctx.policy).map_err(|refusal| Fail::Refused {
        record: command.target(),
        refusal,
    });
    let result = match (allowed, command) {
        (Err(refused), _) => Err(refused),
        (Ok(()), command) => run(uow, ctx, actor, command).await,
    };
    finish(uow, ctx, actor, action, result)
}

async fn run(uow: &mut UnitOfWork, ctx: &Ctx<'_>, actor: &Actor, command: &Command) -> Outcome {
    match command {
        Command::Help { topic } => Ok(query::help(topic.as_deref())),
        Command::Tick => deadlines::tick(uow, ctx).await,
        Command::PageDelivered { incident, via } => {
            escalate::delivered(uow, ctx, actor, *incident, via).await
        }
        // GitHub's text cannot be refused like a person's; it is recorded neutralized.
        Command::Github(c) => github::run(uow, ctx, actor, &c.neutralized()).await,
        Command::Incident(c) => incident::run(uow, ctx, actor, c).await,
        Command::Change(c) => change::run(uow, ctx, actor, c).await,
        Command::Release(c) => release::run(uow, ctx, actor, c).await,
        Command::Request(c) => request::run(uow, ctx, actor, c).await,
        Command::Problem(c) => problem::run(uow, ctx, actor, c).await,
        Command::Nc(c) => nonconformity::run(uow, ctx, actor, c).await,
        Command::Service(c) => service::run(uow, ctx, actor, c).await,
        Command::Ci(c) => ci::run(uow, ctx, actor, c).await,
        Command::Role(c) => role::run(uow, ctx, actor, c).await,
        Command::Oncall(c) => oncall::run(uow, ctx, actor, c).await,
        Command::Sla { id } => query::sla(uow, ctx, actor, *id).await,
        Command::Audit { record } => query::audit(uow, ctx, actor, record).await,
        Command::Report { from, to } => query::report(uow, ctx, actor, *from, *to).await,
        Command::OutboxDrop { id } => outbox::drop_item(uow, ctx, actor, *id).await,
        // A monitoring system's text cannot be refused like a person's; it is recorded neutralized.
        Command::Alert(n) => alert::run(uow, ctx, actor, &n.neutralized()).await,
    }
}

/// Files a refusal or a missing record in the audit trail and turns it into a reply.
fn finish(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    result: Outcome,
) -> Result<Handled, StoreError> {
    match result {
        Ok(h) => Ok(h),
        Err(Fail::Store(e)) => Err(e),
        Err(Fail::Refused { record, refusal }) => {
            let outcome = format!("refused ({}): {}", refusal.rule, refusal.message);
            uow.audit_outcome(ctx, actor, record.clone(), action, outcome);
            Ok(Handled::reply(Reply::refused(
                record,
                refusal.rule,
                refusal.message,
            )))
        }
        Err(Fail::NotFound { record, message }) => {
            uow.audit_outcome(
                ctx,
                actor,
                Some(record.clone()),
                action,
                format!("not found: {message}"),
            );
            Ok(Handled::reply(Reply::not_found(record, message)))
        }
    }
}

/// The event most commands raise: a record changed.
pub(crate) fn updated(id: impl ToString) -> Vec<Event> {
    vec![Event::RecordUpdated { id: id.to_string() }]
}

/// Turns a mention into an actor on the platform the command came from. A `[people]` name maps
/// to that person's account on the same platform.
pub(crate) fn resolve_mention(ctx: &Ctx<'_>, actor: &Actor, m: &Mention) -> Outcome<Actor> {
    let text = match m {
        Mention::PlatformId(id) => format!("{}:{id}", actor.platform()),
        Mention::Name(name) if name.contains(':') => name.clone(),
        Mention::Name(name) => {
            let same_platform =
                ctx.policy.people.get(name).and_then(|accounts| {
                    accounts.iter().find(|a| a.platform() == actor.platform())
                });
            match same_platform {
                Some(a) => a.to_string(),
                None => format!("{}:{name}", actor.platform()),
            }
        }
    };
    let refused = |why: String| Fail::Refused {
        record: None,
        refusal: Refusal::new("mention", why),
    };
    let actor = Actor::parse_person(&text).map_err(|e| refused(e.to_string()))?;
    actor
        .known_on(ctx.platforms)
        .map_err(|e| refused(e.to_string()))?;
    Ok(actor)
}

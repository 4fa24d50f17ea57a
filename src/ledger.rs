//! The ledger: every command goes through one writer that commits them in batches (group commit).
//!
//! Callers wait for their reply, which is sent only after the batch's transaction committed. While
//! one batch commits, the next fills up, so concurrent commands share one fsync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::domain::command::Command;
use crate::domain::ids::Actor;
use crate::domain::parser;
use crate::domain::policy::Policy;
use crate::domain::reply::{Event, Reply};
use crate::domain::report::ServiceReport;
use crate::metrics::Metrics;
use crate::store::{NewOutbox, Store, StoreError};
use crate::usecase::{self, Ctx, Handled, UnitOfWork};

/// The most commands one transaction takes: enough that a burst of thousands commits in a few
/// fsyncs, few enough that one batch's staged records and replies stay a few MiB.
const MAX_BATCH: usize = 1024;

/// Where the time comes from; tests pin it.
pub trait TimeSource: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTimeSource;

impl TimeSource for SystemTimeSource {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

struct Job {
    actor: Actor,
    command: Command,
    delivery: Option<Delivery>,
    /// A `report` command's report, read before the job was queued.
    report: Option<ServiceReport>,
    reply: oneshot::Sender<Handled>,
}

/// The platform delivery a command arrived in (a Slack `trigger_id` or `event_id`, a Discord
/// interaction `id`). The writer notes it in the command's own transaction and answers a second
/// delivery of it with `Outcome::Duplicate`, changing nothing: so a replayed request is acted on
/// once, and one whose command failed is acted on when the platform retries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub platform: &'static str,
    pub id: String,
}

impl Delivery {
    pub fn new(platform: &'static str, id: impl Into<String>) -> Self {
        Delivery {
            platform,
            id: id.into(),
        }
    }
}

/// The use-case entry point for every adapter: `handle(actor, command) -> reply + events`.
#[derive(Clone)]
pub struct Ledger {
    jobs: mpsc::Sender<Job>,
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    metrics: Arc<Metrics>,
    time: Arc<dyn TimeSource>,
    bus: Arc<Bus>,
}

/// What the writer tells the rest of the process after each commit.
struct Bus {
    /// Events of committed commands, in commit order, for adapters and the deadline timer.
    events: broadcast::Sender<Event>,
    /// Signalled after every commit: deadlines may have moved.
    committed: Notify,
    /// Counts the commits the store reported from any connection (`committed_elsewhere`):
    /// watchers that have no events for those (an open dashboard page) look again.
    elsewhere: watch::Sender<u64>,
}

/// Settings for the writer.
pub struct LedgerConfig {
    pub store: Arc<dyn Store>,
    pub policy: Arc<Policy>,
    pub time: Arc<dyn TimeSource>,
    pub metrics: Arc<Metrics>,
    pub public_url: String,
    /// Turns events into outgoing messages, written in the same transaction as the command.
    pub routers: Vec<Arc<dyn Router>>,
}

/// Decides which messages an event sends (a chat post, a message update, a GitHub status).
/// Runs inside the batch, so the messages are durable exactly when the command is.
pub trait Router: Send + Sync + 'static {
    fn route(&self, event: &Event) -> Vec<NewOutbox>;
}

impl Ledger {
    /// Starts the writer. The handle finishes once every `Ledger` clone is dropped and the
    /// queued commands are written.
    pub fn start(cfg: LedgerConfig) -> (Ledger, JoinHandle<()>) {
        // Four batches queued behind the one being written: callers beyond that wait to enqueue
        // (back-pressure) rather than growing the queue without bound.
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let bus = Arc::new(Bus {
            events: broadcast::channel(4096).0,
            committed: Notify::new(),
            elsewhere: watch::channel(0).0,
        });
        let ledger = Ledger {
            jobs: tx,
            store: cfg.store.clone(),
            policy: cfg.policy.clone(),
            metrics: cfg.metrics.clone(),
            time: cfg.time.clone(),
            bus: bus.clone(),
        };
        let writer = tokio::spawn(run_writer(rx, cfg, bus));
        (ledger, writer)
    }

    /// Events of every committed command from now on. A receiver that falls more than 4096
    /// events behind loses the oldest (and is told so by `broadcast`).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.bus.events.subscribe()
    }

    /// A future that resolves after the next commit; `enable` it before checking state so a
    /// commit in between is not missed.
    pub fn committed(&self) -> tokio::sync::futures::Notified<'_> {
        self.bus.committed.notified()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where the time commands are stamped with comes from (a hand-moved one in tests).
    pub fn time(&self) -> &Arc<dyn TimeSource> {
        &self.time
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Signals a commit made by another process (another replica, `opsledger exec`), which the
    /// store reported: the deadline timer and the outbox worker look again, as after a local
    /// commit.
    pub fn committed_elsewhere(&self) {
        self.bus.committed.notify_waiters();
        self.bus.elsewhere.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever the store reports a commit of any process, this one's included (it
    /// cannot tell them apart): for readers that must see other replicas' and `exec`'s commits,
    /// whose events this process never has.
    pub fn commits_seen(&self) -> watch::Receiver<u64> {
        self.bus.elsewhere.subscribe()
    }

    /// Parses chat text and runs it. Usage errors and help are answered here: they touch no record.
    pub async fn handle_text(&self, actor: Actor, text: &str) -> Handled {
        self.handle_parsed(actor, parser::parse(text)).await
    }

    /// `handle_text` for text a platform delivered, acted on once per `delivery`.
    pub async fn handle_text_once(&self, actor: Actor, text: &str, delivery: Delivery) -> Handled {
        self.handle_parsed_once(actor, parser::parse(text), Some(delivery))
            .await
    }

    /// Runs what a parser made of a command (the text grammar, or Discord's structured
    /// commands): a usage error is answered with the command's usage line, `help` at once.
    pub async fn handle_parsed(
        &self,
        actor: Actor,
        parsed: Result<Command, parser::UsageError>,
    ) -> Handled {
        self.handle_parsed_once(actor, parsed, None).await
    }

    /// `handle_parsed`, acted on once per `delivery` when one is given.
    pub async fn handle_parsed_once(
        &self,
        actor: Actor,
        parsed: Result<Command, parser::UsageError>,
        delivery: Option<Delivery>,
    ) -> Handled {
        match parsed {
            Ok(Command::Help { topic }) => {
                self.metrics.command("help", "ok");
                usecase::help(topic.as_deref())
            }
            Ok(command) => self.handle_once(actor, command, delivery).await,
            Err(e) => {
                self.metrics.command(
                    if e.command.is_empty() {
                        "unknown"
                    } else {
                        e.command
                    },
                    "usage",
                );
                Handled::reply(Reply::usage(e.to_string()))
            }
        }
    }

    /// Runs a typed command and waits until it is committed.
    pub async fn handle(&self, actor: Actor, command: Command) -> Handled {
        self.handle_once(actor, command, None).await
    }

    /// `handle`, acted on once per `delivery` when one is given.
    pub async fn handle_once(
        &self,
        actor: Actor,
        command: Command,
        delivery: Option<Delivery>,
    ) -> Handled {
        let name = command.name();
        let report = self.read_report(&command).await;
        let (tx, rx) = oneshot::channel();
        let sent = self
            .jobs
            .send(Job {
                actor,
                command,
                delivery,
                report,
                reply: tx,
            })
            .await;
        let handled = match sent {
            Ok(()) => rx.await.unwrap_or_else(|_| unavailable()),
            Err(_) => unavailable(),
        };
        self.metrics.command(name, handled.reply.outcome.label());
        handled
    }

    /// A `report` command's report, read from the committed store (its rollups) by the caller's
    /// task, so the writer does not wait on it; `None` for other commands, or when the read
    /// failed (the writer then reads it in its batch).
    async fn read_report(&self, command: &Command) -> Option<ServiceReport> {
        let Command::Report { from, to } = command else {
            return None;
        };
        crate::reports::service_report(&*self.store, *from, *to, self.time.now())
            .await
            .map_err(|e| tracing::warn!(error = %e, "could not read the report outside the writer"))
            .ok()
    }
}

fn unavailable() -> Handled {
    Handled::reply(Reply::failed(
        "opsledger is shutting down; nothing was changed. Try again in a moment.",
    ))
}

async fn run_writer(mut rx: mpsc::Receiver<Job>, cfg: LedgerConfig, bus: Arc<Bus>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = rx.recv().await {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let replies = write_isolated(&cfg, &batch).await;
        cfg.metrics.batch(batch.len(), started.elapsed());
        // Only committed commands carry events: a failed one's reply has none.
        for handled in &replies {
            for e in &handled.events {
                if let Event::SlaBreached { target, .. } = e {
                    cfg.metrics.sla_breach(target);
                }
                // No subscriber is fine: nothing listens until the adapters do.
                let _ = bus.events.send(e.clone());
            }
        }
        bus.committed.notify_waiters();
        for (job, handled) in batch.drain(..).zip(replies) {
            // The caller may have gone away (client timeout); the command stands regardless.
            let _ = job.reply.send(handled);
        }
    }
}

/// How often a batch is tried when the whole store fails for a moment, and the first pause.
const TRANSIENT_TRIES: u32 = 6;
const TRANSIENT_PAUSE: Duration = Duration::from_millis(50);

/// Writes a batch so that one command's failure is that command's alone.
///
/// The batch is tried as one transaction. If the store refuses it for a reason of the data (a
/// value the database will not take), the batch is split in two and each half tried in order,
/// down to the single command that fails, which alone is answered with a failure: so a poison
/// command costs about 2·log2(batch) extra transactions, and none when there is none. A
/// failure of the whole store (`StoreError::is_transient`) is retried as it is, with a growing
/// pause, before anyone is told to try again.
async fn write_isolated(cfg: &LedgerConfig, jobs: &[Job]) -> Vec<Handled> {
    let mut out = Vec::with_capacity(jobs.len());
    // Ranges still to write, the next one on top, so halves are written in their order.
    let mut todo = Vec::with_capacity(8);
    todo.push(0..jobs.len());
    while let Some(range) = todo.pop() {
        let part = &jobs[range.clone()];
        match write_retrying(cfg, part).await {
            Ok(replies) => out.extend(replies),
            Err(e) if e.is_transient() => {
                tracing::error!(error = %e, commands = part.len(), "the store is failing; nothing in this batch was saved");
                out.extend(part.iter().map(|_| {
                    Handled::reply(Reply::failed(
                        "the database is not answering, so nothing was changed; try again in a moment",
                    ))
                }));
            }
            Err(e) if part.len() > 1 => {
                tracing::warn!(error = %e, commands = part.len(), "a write batch failed; retrying it in halves to find the command at fault");
                let mid = range.start + part.len() / 2;
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
            Err(e) => {
                let job = &part[0];
                tracing::error!(error = %e, command = job.command.name(), actor = %job.actor, "the store refused one command's writes; it alone failed");
                out.push(Handled::reply(Reply::failed(
                    "the ledger could not save this command, so nothing was changed (other commands were not affected); \
                     if it fails again, ask your opsledger operator to check the server log",
                )));
            }
        }
    }
    out
}

/// `write_batch`, tried again after a transient store failure, a bounded number of times.
async fn write_retrying(cfg: &LedgerConfig, jobs: &[Job]) -> Result<Vec<Handled>, StoreError> {
    let mut pause = TRANSIENT_PAUSE;
    let mut tries = 1;
    loop {
        match write_batch(cfg, jobs).await {
            Err(e) if e.is_transient() && tries < TRANSIENT_TRIES => {
                tracing::warn!(error = %e, tries, retry_in = ?pause, "the store failed for a moment; trying the batch again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            done => return done,
        }
    }
}

async fn write_batch(cfg: &LedgerConfig, batch: &[Job]) -> Result<Vec<Handled>, StoreError> {
    let tx = cfg.store.begin().await?;
    let mut uow = UnitOfWork::new(tx);
    uow.prefetch_deliveries(
        batch
            .iter()
            .filter_map(|job| job.delivery.as_ref())
            .map(|d| (d.platform.to_string(), d.id.clone()))
            .collect(),
    )
    .await?;
    // The rules file's roles plus the grants made at run time, as of this batch.
    let mut policy = with_grants(&cfg.policy, &mut uow).await?;
    let commands: Vec<&Command> = batch.iter().map(|job| &job.command).collect();
    usecase::prefetch(&mut uow, &policy, &commands).await?;
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        let ctx = Ctx {
            policy: &policy,
            now: cfg.time.now(),
            public_url: &cfg.public_url,
            report: job.report.as_ref(),
            platforms: crate::integrations::platform::actor_platforms(),
        };
        if let Some(d) = &job.delivery {
            if !uow.first_delivery(d.platform, &d.id, ctx.now).await? {
                replies.push(Handled::reply(Reply::duplicate()));
                continue;
            }
        }
        let handled = usecase::execute(&mut uow, &ctx, &job.actor, &job.command).await?;
        for event in &handled.events {
            for router in &cfg.routers {
                for item in router.route(event) {
                    uow.enqueue(item, ctx.now);
                }
            }
        }
        replies.push(handled);
        if matches!(job.command, Command::Role(_)) {
            policy = with_grants(&cfg.policy, &mut uow).await?;
        }
    }
    uow.commit().await?;
    Ok(replies)
}

async fn with_grants(policy: &Policy, uow: &mut UnitOfWork) -> Result<Policy, StoreError> {
    let grants = uow.grants().await?;
    Ok(policy.with_grants(grants.iter().map(|g| (&g.actor, g.role))))
}

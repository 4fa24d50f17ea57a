//! The outbox worker: delivers the outgoing messages that commands enqueued, after they committed, with retries.
//!
//! A command that must tell a chat channel or GitHub something stages a `NewOutbox` with
//! `UnitOfWork::enqueue`; it is written in the command's own transaction, so a message exists if
//! and only if its command committed. This worker then delivers the items through one `Deliver`
//! per platform:
//!
//! - **Order.** `Store::outbox_due` hands out only the oldest pending item of each
//!   (platform, channel), so a later message never overtakes an earlier one that is still being
//!   retried. Items of different channels are delivered concurrently, so a channel that keeps
//!   failing holds up no other.
//! - **Retries.** `DeliveryError::Retry` schedules the item again after `retry_delay`: the
//!   platform's `Retry-After` when it sent one (at most `MAX_RETRY_AFTER`), else an exponential
//!   backoff (base · 2^(attempts-1)) capped by the deliverer's `Deliver::max_backoff` (30 s for
//!   chat, `MAX_BACKOFF` otherwise). While a platform fails, one of its waiting items is tried
//!   at least every `PROBE` so its recovery is noticed soon; the first success after failures
//!   makes every item of that platform that waits on a backoff due at once
//!   (`Store::outbox_retry_platform_now`).
//! - **Parking.** A head item still failing after `OutboxSettings::park_after` since its first
//!   failure, or after `park_attempts` attempts, is parked: it stays in the store, marked, and
//!   its channel's next message goes. `opsledger outbox retry ID` makes it pending again,
//!   `opsledger outbox drop ID` (audited) marks it dropped.
//! - **Giving up.** `DeliveryError::Permanent` (a channel that does not exist, a token without the
//!   scope) marks the item failed, logs it, and lets the channel's next message go.
//! - **At least once.** An item is marked delivered only after `deliver` returned `Ok`; a crash in
//!   between delivers it again. Before each attempt the worker claims the item in the store
//!   (`Store::outbox_claim_many`, a pass's items at once) in the name of its instance, so with several replicas on one
//!   database each attempt is made by one of them only; a claim lapses after `LEASE` if its
//!   worker died, and a restarted instance takes its own claims back at once
//!   (`Store::outbox_release_claims`), so a crash costs no lease.
//!
//! Like the deadline timer, the worker reads timestamps from the `TimeSource` but sleeps in real
//! time: until the next item is due (`Store::outbox_next_attempt`), at most `MAX_SLEEP`, or until
//! woken (`OutboxWorker::wake` or an `OutboxWaker`, to be called after a commit that enqueued).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::domain::audit::format_time;
use crate::ledger::TimeSource;
use crate::metrics::Metrics;
use crate::store::{OutboxItem, Store, StoreError};

pub use crate::store::NewOutbox;

/// The most items one pass delivers (at most one per channel).
pub const BATCH: i64 = 100;
/// The base of the exponential backoff in production.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff between two attempts (a `Retry-After` may ask for longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest backoff for chat messages, which people wait for.
pub const CHAT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While a platform keeps failing, one of its waiting items is tried at least this often, so
/// the platform's recovery is noticed within seconds even when every backoff is long.
pub const PROBE: Duration = Duration::from_secs(4);
/// Park a head item after it failed for this long (`OPSLEDGER_OUTBOX_PARK_AFTER`) ...
pub const DEFAULT_PARK_AFTER: Duration = Duration::from_secs(15 * 60);
/// ... or after this many attempts (`OPSLEDGER_OUTBOX_PARK_ATTEMPTS`), whichever comes first.
pub const DEFAULT_PARK_ATTEMPTS: u32 = 10;
/// The longest `Retry-After` honoured, so a bogus header cannot stall a channel for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
/// How long one `deliver` call may take before it counts as a retryable failure.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a claim holds an item for one attempt; longer than `DELIVERY_TIMEOUT`.
pub const LEASE: Duration = Duration::from_secs(120);
/// The longest the worker sleeps without looking (another replica may have enqueued).
/// The same cap as the deadline timer's, whose `until` the worker shares.
const MAX_SLEEP: Duration = crate::deadline_timer::MAX_SLEEP;
use crate::deadline_timer::until;
/// After a store failure, wait this long before trying again.
const STORE_RETRY: Duration = Duration::from_secs(2);
/// How long `stop` lets deliveries in flight finish.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why a delivery failed, as the deliverer judges it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again (a 429, a 5xx, a timeout, the network). `after` is the platform's
    /// `Retry-After`, when it sent one.
    #[error("{reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Will never work (`channel_not_found`, a missing scope, a malformed payload): give it up.
    #[error("{0}")]
    Permanent(String),
}

/// Sends outbox items to one platform.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// The `NewOutbox::platform` this deliverer handles (`slack`, `github`, ...).
    fn platform(&self) -> &'static str;
    /// Delivers one item. Called at least once per item, in order within its channel, never
    /// for two items of one channel at the same time.
    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError>;
    /// The longest backoff between two attempts at one item of this platform.
    fn max_backoff(&self) -> Duration {
        MAX_BACKOFF
    }
}

/// An outbox operation kind, typed: the column holds its text, which a deliverer parses back.
/// Define one with `outbox_op!`; each kind reads the names it was stored under before too.
pub trait OutboxOp: Copy + std::str::FromStr<Err = DeliveryError> {
    /// The text stored in the `op` column (and shown by `opsledger outbox list`).
    fn as_str(self) -> &'static str;
}

/// Declares an outbox operation enum: each variant's stored name, then any older names rows may
/// still carry (`Variant = "name" | "old_name"`). An unknown name is a permanent failure.
macro_rules! outbox_op {
    ($(#[$m:meta])* $vis:vis enum $name:ident {
        $($(#[$vm:meta])* $variant:ident = $text:literal $(| $old:literal)*,)+
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $crate::outbox::OutboxOp for $name {
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::outbox::DeliveryError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text $(| $old)* => Ok($name::$variant),)+
                    other => Err($crate::outbox::DeliveryError::Permanent(format!(
                        "unknown outbox op `{other}`"
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::outbox::OutboxOp::as_str(*self))
            }
        }
    };
}
pub(crate) use outbox_op;

impl NewOutbox {
    /// An item for `platform`'s deliverer, on `channel` (items of one channel go in order).
    pub fn new(
        platform: &str,
        channel: &str,
        op: impl OutboxOp,
        record: Option<&str>,
        payload: serde_json::Value,
    ) -> NewOutbox {
        NewOutbox {
            platform: platform.to_string(),
            channel: channel.to_string(),
            op: op.as_str().to_string(),
            record: record.map(String::from),
            payload,
        }
    }
}

impl OutboxItem {
    /// The item's operation, read as the deliverer's kind (an unknown one is a permanent failure).
    pub fn op<O: OutboxOp>(&self) -> Result<O, DeliveryError> {
        self.op.parse().map_err(|e: DeliveryError| match e {
            DeliveryError::Permanent(why) => DeliveryError::Permanent(format!(
                "{} outbox item {}: {why}",
                self.platform, self.id
            )),
            retry => retry,
        })
    }
}

/// How long to wait before the next attempt after `attempts` failed ones: the platform's
/// `Retry-After` when it sent one (at most `MAX_RETRY_AFTER`: it knows when it will answer),
/// else base · 2^(attempts-1), at most `cap`.
pub fn retry_delay(
    base: Duration,
    attempts: u32,
    retry_after: Option<Duration>,
    cap: Duration,
) -> Duration {
    match retry_after {
        Some(after) => after.min(MAX_RETRY_AFTER),
        None => {
            let doubling = attempts.saturating_sub(1).min(20);
            base.saturating_mul(1 << doubling).min(cap)
        }
    }
}

/// Whether a head item that just failed its `attempts`-th attempt is parked: it has been
/// failing since `failing_since` (its first failure, or now) for `park_after` or longer, or has
/// used up `park_attempts` attempts (0: no bound on attempts).
pub fn should_park(
    attempts: u32,
    failing_since: DateTime<Utc>,
    now: DateTime<Utc>,
    park_after: Duration,
    park_attempts: u32,
) -> bool {
    let failing = (now - failing_since).to_std().unwrap_or(Duration::ZERO);
    (park_attempts > 0 && attempts >= park_attempts) || failing >= park_after
}

/// The wait for an item of a failing platform whose next probe is due at `next_probe`: its
/// `backoff` when another attempt probes the platform within `PROBE`; otherwise at most `PROBE`,
/// and this attempt is the probe (the new probe time is returned).
pub fn probe_delay(
    next_probe: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    backoff: Duration,
) -> (Duration, Option<DateTime<Utc>>) {
    let probe_by = now + chrono::Duration::from_std(PROBE).unwrap_or_default();
    match next_probe {
        Some(at) if at > now && at <= probe_by => (backoff, None),
        _ => {
            let delay = backoff.min(PROBE);
            let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            (delay, Some(at))
        }
    }
}

/// How the worker bounds failures and names itself.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Park a head item that has been failing for this long ...
    pub park_after: Duration,
    /// ... or has failed this many attempts (0: no bound on attempts).
    pub park_attempts: u32,
    /// Who claims items: stable across restarts of one deployment (`OPSLEDGER_INSTANCE`), and
    /// different for every process running at the same time.
    pub instance: String,
    /// The base of the exponential backoff (tests use milliseconds).
    pub base_backoff: Duration,
}

impl Default for OutboxSettings {
    /// Production bounds and a name no other worker has (this process's id and a counter).
    fn default() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        OutboxSettings {
            park_after: DEFAULT_PARK_AFTER,
            park_attempts: DEFAULT_PARK_ATTEMPTS,
            instance: format!(
                "pid-{}-worker-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            base_backoff: DEFAULT_BASE_BACKOFF,
        }
    }
}

/// A cloneable handle that makes the worker look again now.
#[derive(Clone, Debug)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A running outbox worker. Dropping it does not stop it; call `stop`.
pub struct OutboxWorker {
    task: JoinHandle<()>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
}

impl OutboxWorker {
    /// Starts the worker with the production backoff (`DEFAULT_BASE_BACKOFF`).
    ///
    /// With `metrics`, each attempt is counted by platform and result.
    pub fn spawn(
        store: Arc<dyn Store>,
        deliverers: Vec<Arc<dyn Deliver>>,
        time: Arc<dyn TimeSource>,
        metrics: Option<Arc<Metrics>>,
    ) -> OutboxWorker {
        Self::spawn_with(store, deliverers, time, metrics, DEFAULT_BASE_BACKOFF)
    }

    /// Starts the worker with another backoff base (tests use milliseconds).
    pub fn spawn_with(
        store: Arc<dyn Store>,
        deliverers: Vec<Arc<dyn Deliver>>,
        time: Arc<dyn TimeSource>,
        metrics: Option<Arc<Metrics>>,
        base_backoff: Duration,
    ) -> OutboxWorker {
        let settings = OutboxSettings {
            base_backoff,
            ..OutboxSettings::default()
        };
        Self::start(store, deliverers, time, metrics, settings)
    }

    /// Starts the worker with these settings. It first takes back the claims its instance
    /// left behind (a crash), so they are retried at once.
    pub fn start(
        store: Arc<dyn Store>,
        deliverers: Vec<Arc<dyn Deliver>>,
        time: Arc<dyn TimeSource>,
        metrics: Option<Arc<Metrics>>,
        settings: OutboxSettings,
    ) -> OutboxWorker {
        let mut by_platform: HashMap<&'static str, Arc<dyn Deliver>> = HashMap::new();
        for d in deliverers {
            if by_platform.insert(d.platform(), d.clone()).is_some() {
                tracing::warn!(
                    platform = d.platform(),
                    "two outbox deliverers for one platform; using the last"
                );
            }
        }
        let wake = Arc::new(Notify::new());
        // Every platform counts as failing until its first success here: then waits left by a
        // crashed process, or by another replica, are cut short too.
        let failing = by_platform.keys().map(|p| p.to_string()).collect();
        let worker = Arc::new(Worker {
            store,
            deliverers: by_platform,
            time,
            settings,
            missing: Mutex::new(HashSet::new()),
            metrics,
            failing: Mutex::new(failing),
            probes: Mutex::new(HashMap::new()),
            recovered_at: Mutex::new(HashMap::new()),
            wake: wake.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(worker, wake.clone(), stopped));
        OutboxWorker { task, wake, stop }
    }

    /// Makes the worker look again now; call it after a commit that enqueued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A handle to wake the worker from elsewhere (the ledger, an adapter).
    pub fn waker(&self) -> OutboxWaker {
        OutboxWaker(self.wake.clone())
    }

    /// Stops the worker: deliveries in flight may finish (for a few seconds), no new one starts.
    /// Anything not delivered stays in the outbox for the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

struct Worker {
    store: Arc<dyn Store>,
    deliverers: HashMap<&'static str, Arc<dyn Deliver>>,
    time: Arc<dyn TimeSource>,
    settings: OutboxSettings,
    /// Platforms with items but no deliverer here, already logged.
    missing: Mutex<HashSet<String>>,
    metrics: Option<Arc<Metrics>>,
    /// Platforms that failed since their last success here.
    failing: Mutex<HashSet<String>>,
    /// Per platform, when the next attempt that probes it is due.
    probes: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Per platform, when its waiting items were last made due after a success. At most once
    /// per `PROBE`, so one channel that keeps failing while the others succeed is not retried
    /// on every success of theirs.
    recovered_at: Mutex<HashMap<String, std::time::Instant>>,
    wake: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn run(worker: Arc<Worker>, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    // False once the `OutboxWorker` was dropped without `stop`: then it runs on, as documented.
    let mut stoppable = true;
    // This instance's claims from before a crash: no attempt of ours is in flight, so they are
    // due now rather than when their lease ends.
    let now = worker.time.now();
    match worker
        .store
        .outbox_release_claims(&worker.settings.instance, &format_time(now))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            instance = %worker.settings.instance,
            released = n,
            "outbox took back the claims this instance held before it restarted"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "outbox cannot release this instance's old claims; they lapse with their lease")
        }
    }
    loop {
        if *stopped.borrow() {
            return;
        }
        let wait = match worker.pass().await {
            // A full batch: there may be more due right now.
            Ok(true) => Duration::ZERO,
            Ok(false) => match worker.store.outbox_next_attempt().await {
                Ok(next) => until(next.as_deref(), worker.time.now()),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox cannot read when the next item is due; retrying");
                    STORE_RETRY
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "outbox pass failed at the store; retrying");
                STORE_RETRY
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            changed = stopped.changed(), if stoppable => stoppable = changed.is_ok(),
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

impl Worker {
    /// Delivers what is due, each channel's head concurrently. True when the batch was full.
    ///
    /// The pass claims its items in one transaction and marks the delivered ones in another
    /// once its attempts are done: two commits a pass rather than two an item, each of which
    /// took the database's write lock (and on SQLite an fsync) away from the ledger's writer.
    /// The next pass starts only after this one's attempts anyway, so no channel's next
    /// message waits longer for its predecessor's mark.
    async fn pass(self: &Arc<Self>) -> Result<bool, StoreError> {
        let now = self.time.now();
        let items = self.store.outbox_due(&format_time(now), BATCH).await?;
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= BATCH;
        let (items, missing): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|item| self.deliverers.contains_key(item.platform.as_str()));
        if !missing.is_empty() {
            // Left pending (another replica or a later start may have the deliverer), but out
            // of the way for a while so they are not fetched on every pass.
            for item in &missing {
                if lock(&self.missing).insert(item.platform.clone()) {
                    tracing::warn!(
                        platform = %item.platform,
                        "outbox items for a platform this process has no deliverer for; they stay pending"
                    );
                }
            }
            let ids: Vec<i64> = missing.iter().map(|item| item.id).collect();
            self.store
                .outbox_claim_many(
                    &ids,
                    &format_time(now),
                    &later(now, MAX_SLEEP),
                    &self.settings.instance,
                )
                .await?;
        }
        let ids: Vec<i64> = items.iter().map(|item| item.id).collect();
        let claimed: HashSet<i64> = self
            .store
            .outbox_claim_many(
                &ids,
                &format_time(now),
                &later(now, LEASE),
                &self.settings.instance,
            )
            .await?
            .into_iter()
            .collect();
        let mut attempts = JoinSet::new();
        // The others are another worker's.
        for item in items.into_iter().filter(|item| claimed.contains(&item.id)) {
            let worker = self.clone();
            attempts.spawn(async move { worker.attempt(item).await });
        }
        let mut failed = None;
        let mut delivered = Vec::new();
        while let Some(done) = attempts.join_next().await {
            match done {
                Ok(Ok(Some(mark))) => delivered.push(mark),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => failed = Some(e),
                // The item stays claimed until its lease ends, then is tried again.
                Err(e) => tracing::error!(error = %e, "outbox delivery task panicked"),
            }
        }
        // Unmarked (the store failing now), the items are delivered again when their lease
        // ends: at least once, as for a worker that dies between delivery and mark.
        self.store.outbox_delivered_many(&delivered).await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(full),
        }
    }

    /// One attempt at one claimed item: deliver, and settle a failure. A delivered item is
    /// returned with its time, for the pass to mark.
    async fn attempt(&self, item: OutboxItem) -> Result<Option<(i64, String)>, StoreError> {
        let Some(deliverer) = self.deliverers.get(item.platform.as_str()) else {
            return Ok(None); // `pass` claims only items it has a deliverer for
        };
        let result = match tokio::time::timeout(DELIVERY_TIMEOUT, deliverer.deliver(&item)).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Retry {
                after: None,
                reason: format!("delivery timed out after {}s", DELIVERY_TIMEOUT.as_secs()),
            }),
        };
        let now = self.time.now();
        let mut mark = None;
        let outcome = match result {
            Ok(()) => {
                mark = Some((item.id, format_time(now)));
                tracing::debug!(id = item.id, platform = %item.platform, channel = %item.channel, op = %item.op, "outbox item delivered");
                // The flag stays until a recovery runs, so a success inside the `PROBE` window
                // is followed up by the next one after it.
                let failing = lock(&self.failing).contains(&item.platform);
                if failing && self.may_recover(&item.platform) {
                    lock(&self.failing).remove(&item.platform);
                    // Not `?`: this item's mark must not be lost with it. The platform's
                    // waiting items then keep their backoff and are tried when it ends.
                    if let Err(e) = self.recovered(&item.platform, now).await {
                        tracing::warn!(error = %e, platform = %item.platform, "outbox cannot make the recovered platform's waiting items due; they keep their backoff");
                    }
                }
                "delivered"
            }
            Err(DeliveryError::Retry { after, reason }) => {
                lock(&self.failing).insert(item.platform.clone());
                let attempts = item.attempts.saturating_add(1);
                let since = item
                    .first_failed_at
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(now, |t| t.with_timezone(&Utc));
                if should_park(
                    attempts,
                    since,
                    now,
                    self.settings.park_after,
                    self.settings.park_attempts,
                ) {
                    self.store
                        .outbox_park(item.id, attempts, &format_time(now), &reason)
                        .await?;
                    tracing::error!(
                        id = item.id, platform = %item.platform, channel = %item.channel, op = %item.op,
                        record = ?item.record, attempts, error = %reason,
                        "outbox item kept failing; parked it so its channel moves on (see `opsledger outbox list`)"
                    );
                    "parked"
                } else {
                    let backoff = retry_delay(
                        self.settings.base_backoff,
                        attempts,
                        after,
                        deliverer.max_backoff(),
                    );
                    let delay = match after {
                        Some(_) => backoff,
                        None => self.probe(&item.platform, now, backoff),
                    };
                    self.store
                        .outbox_retry(
                            item.id,
                            attempts,
                            &format_time(now),
                            &later(now, delay),
                            &reason,
                            after.is_some(),
                        )
                        .await?;
                    tracing::warn!(
                        id = item.id, platform = %item.platform, channel = %item.channel, op = %item.op,
                        attempts, retry_in = ?delay, error = %reason,
                        "outbox delivery failed; will retry"
                    );
                    "retry"
                }
            }
            Err(DeliveryError::Permanent(reason)) => {
                self.store
                    .outbox_give_up(item.id, &format_time(now), &reason)
                    .await?;
                tracing::error!(
                    id = item.id, platform = %item.platform, channel = %item.channel, op = %item.op,
                    record = ?item.record, error = %reason,
                    "outbox delivery failed permanently; gave the message up"
                );
                "failed"
            }
        };
        if let Some(m) = &self.metrics {
            m.outbound(&item.platform, outcome);
        }
        Ok(mark)
    }

    /// The wait for an item of a failing platform: its backoff, unless no other attempt probes
    /// the platform within `PROBE`; then this one does.
    fn probe(&self, platform: &str, now: DateTime<Utc>, backoff: Duration) -> Duration {
        let mut probes = lock(&self.probes);
        let (delay, next) = probe_delay(probes.get(platform).copied(), now, backoff);
        if let Some(at) = next {
            probes.insert(platform.to_string(), at);
        }
        delay
    }

    /// Whether a success may make the platform's waiting items due (not done within `PROBE`).
    fn may_recover(&self, platform: &str) -> bool {
        let mut last = lock(&self.recovered_at);
        let now = std::time::Instant::now();
        match last.get(platform) {
            Some(at) if now.duration_since(*at) < PROBE => false,
            _ => {
                last.insert(platform.to_string(), now);
                true
            }
        }
    }

    /// A platform answered again after failures: everything of it that waits on a backoff is
    /// due now.
    async fn recovered(&self, platform: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        lock(&self.probes).remove(platform);
        let n = self
            .store
            .outbox_retry_platform_now(platform, &format_time(now))
            .await?;
        if n > 0 {
            tracing::info!(%platform, waiting = n, "platform answers again; retrying its waiting messages now");
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// `now + d`, formatted for the store.
fn later(now: DateTime<Utc>, d: Duration) -> String {
    let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    format_time(
        now.checked_add_signed(d)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(1), 1, None, MAX_BACKOFF), s(1));
        assert_eq!(retry_delay(s(1), 2, None, MAX_BACKOFF), s(2));
        assert_eq!(retry_delay(s(1), 4, None, MAX_BACKOFF), s(8));
        assert_eq!(retry_delay(s(1), 9, None, MAX_BACKOFF), s(256));
        assert_eq!(retry_delay(s(1), 10, None, MAX_BACKOFF), MAX_BACKOFF);
        assert_eq!(retry_delay(s(1), u32::MAX, None, MAX_BACKOFF), MAX_BACKOFF);
        assert_eq!(retry_delay(s(1), 0, None, MAX_BACKOFF), s(1));
    }

    #[test]
    fn chat_backoff_stops_at_thirty_seconds() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(1), 5, None, CHAT_MAX_BACKOFF), s(16));
        assert_eq!(retry_delay(s(1), 6, None, CHAT_MAX_BACKOFF), s(30));
        assert_eq!(retry_delay(s(1), 40, None, CHAT_MAX_BACKOFF), s(30));
    }

    #[test]
    fn retry_after_is_the_wait_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(1), 1, Some(s(30)), CHAT_MAX_BACKOFF), s(30));
        // Not a floor under a backoff that kept doubling: the platform said 3 s.
        assert_eq!(retry_delay(s(1), 6, Some(s(3)), CHAT_MAX_BACKOFF), s(3));
        assert_eq!(
            retry_delay(s(1), 1, Some(s(86_400)), MAX_BACKOFF),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn one_waiting_item_probes_a_failing_platform_at_least_every_probe_interval() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let s = Duration::from_secs;
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        // No probe yet: this item becomes it, its 30 s backoff cut to `PROBE`.
        assert_eq!(probe_delay(None, now, s(30)), (PROBE, Some(at(4))));
        // A short backoff stays as it is, and still counts as the probe.
        assert_eq!(probe_delay(None, now, s(1)), (s(1), Some(at(1))));
        // A probe is due within `PROBE`: the others keep their backoff.
        assert_eq!(probe_delay(Some(at(3)), now, s(30)), (s(30), None));
        // The last probe time has passed (it was delivered, parked or pulled forward).
        assert_eq!(probe_delay(Some(at(-1)), now, s(16)), (PROBE, Some(at(4))));
    }

    #[test]
    fn parks_after_the_time_bound_or_the_attempts_whichever_comes_first() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let min = |m: i64| t0 + chrono::Duration::minutes(m);
        let bound = Duration::from_secs(15 * 60);
        assert!(!should_park(1, t0, t0, bound, 10));
        assert!(!should_park(9, t0, min(14), bound, 10));
        assert!(should_park(10, t0, min(3), bound, 10));
        assert!(should_park(2, t0, min(15), bound, 10));
        // 0 attempts: only the time bound.
        assert!(!should_park(1_000, t0, min(14), bound, 0));
        assert!(should_park(1, t0, min(16), bound, 0));
    }

    #[test]
    fn sleeps_until_the_next_item_but_never_longer_than_the_cap() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        assert_eq!(
            until(Some("2026-11-29T10:00:00.250000Z"), now),
            Duration::from_millis(250)
        );
        assert_eq!(
            until(Some("2026-11-29T09:00:00.000000Z"), now),
            Duration::ZERO
        );
        assert_eq!(until(Some("2026-11-29T11:00:00.000000Z"), now), MAX_SLEEP);
        assert_eq!(until(None, now), MAX_SLEEP);
        assert_eq!(
            later(now, Duration::from_millis(1500)),
            "2026-11-29T10:00:01.500000Z"
        );
    }
}

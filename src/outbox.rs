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
//! - **Retries.** `DeliveryError::Retry` schedules the item again after `retry_delay`: an
//!   exponential backoff (base · 2^(attempts-1), at most `MAX_BACKOFF`), and never sooner than the
//!   platform's `Retry-After` when it sent one. Retryable failures are retried for as long as it
//!   takes; nothing is dropped.
//! - **Giving up.** `DeliveryError::Permanent` (a channel that does not exist, a token without the
//!   scope) marks the item failed, logs it, and lets the channel's next message go.
//! - **At least once.** An item is marked delivered only after `deliver` returned `Ok`; a crash in
//!   between delivers it again. Before each attempt the worker claims the item in the store
//!   (`Store::outbox_claim`), so with several replicas on one database each attempt is made by
//!   one of them only; a claim lapses after `LEASE` if its worker died.
//!
//! Like the SLA clock, the worker reads timestamps from the `Clock` but sleeps in real time: until
//! the next item is due (`Store::outbox_next_attempt`), at most `MAX_SLEEP`, or until woken
//! (`OutboxWorker::wake` or an `OutboxWaker`, to be called after a commit that enqueued).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::domain::audit::format_time;
use crate::ledger::Clock;
use crate::metrics::Metrics;
use crate::store::{OutboxItem, Store, StoreError};

pub use crate::store::NewOutbox;

/// The most items one pass delivers (at most one per channel).
pub const BATCH: i64 = 100;
/// The base of the exponential backoff in production.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff between two attempts (a `Retry-After` may ask for longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest `Retry-After` honoured, so a bogus header cannot stall a channel for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
/// How long one `deliver` call may take before it counts as a retryable failure.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a claim holds an item for one attempt; longer than `DELIVERY_TIMEOUT`.
pub const LEASE: Duration = Duration::from_secs(120);
/// The longest the worker sleeps without looking (another replica may have enqueued).
/// The same cap as the SLA clock's, whose `until` the worker shares.
const MAX_SLEEP: Duration = crate::sla_clock::MAX_SLEEP;
use crate::sla_clock::until;
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
}

/// How long to wait before the next attempt after `attempts` failed ones: base · 2^(attempts-1),
/// at most `MAX_BACKOFF`, but never less than the platform's `Retry-After` (itself at most
/// `MAX_RETRY_AFTER`).
pub fn retry_delay(base: Duration, attempts: u32, retry_after: Option<Duration>) -> Duration {
    let doubling = attempts.saturating_sub(1).min(20);
    let backoff = base.saturating_mul(1 << doubling).min(MAX_BACKOFF);
    match retry_after {
        Some(after) => after.min(MAX_RETRY_AFTER).max(backoff),
        None => backoff,
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
        clock: Arc<dyn Clock>,
        metrics: Option<Arc<Metrics>>,
    ) -> OutboxWorker {
        Self::spawn_with(store, deliverers, clock, metrics, DEFAULT_BASE_BACKOFF)
    }

    /// Starts the worker with another backoff base (tests use milliseconds).
    pub fn spawn_with(
        store: Arc<dyn Store>,
        deliverers: Vec<Arc<dyn Deliver>>,
        clock: Arc<dyn Clock>,
        metrics: Option<Arc<Metrics>>,
        base_backoff: Duration,
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
        let worker = Arc::new(Worker {
            store,
            deliverers: by_platform,
            clock,
            base_backoff,
            missing: Mutex::new(HashSet::new()),
            metrics,
        });
        let wake = Arc::new(Notify::new());
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
    clock: Arc<dyn Clock>,
    base_backoff: Duration,
    /// Platforms with items but no deliverer here, already logged.
    missing: Mutex<HashSet<String>>,
    metrics: Option<Arc<Metrics>>,
}

async fn run(worker: Arc<Worker>, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    // False once the `OutboxWorker` was dropped without `stop`: then it runs on, as documented.
    let mut stoppable = true;
    loop {
        if *stopped.borrow() {
            return;
        }
        let wait = match worker.pass().await {
            // A full batch: there may be more due right now.
            Ok(true) => Duration::ZERO,
            Ok(false) => match worker.store.outbox_next_attempt().await {
                Ok(next) => until(next.as_deref(), worker.clock.now()),
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
    async fn pass(self: &Arc<Self>) -> Result<bool, StoreError> {
        let now = format_time(self.clock.now());
        let items = self.store.outbox_due(&now, BATCH).await?;
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= BATCH;
        let mut attempts = JoinSet::new();
        for item in items {
            let worker = self.clone();
            attempts.spawn(async move { worker.attempt(item).await });
        }
        let mut failed = None;
        while let Some(done) = attempts.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = Some(e),
                // The item stays claimed until its lease ends, then is tried again.
                Err(e) => tracing::error!(error = %e, "outbox delivery task panicked"),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(full),
        }
    }

    /// One attempt at one item: claim, deliver, settle.
    async fn attempt(&self, item: OutboxItem) -> Result<(), StoreError> {
        let now = self.clock.now();
        let Some(deliverer) = self.deliverers.get(item.platform.as_str()) else {
            // Leave it pending (another replica or a later start may have the deliverer), but
            // out of the way for a while so it is not fetched on every pass.
            if self
                .missing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(item.platform.clone())
            {
                tracing::warn!(
                    platform = %item.platform,
                    "outbox items for a platform this process has no deliverer for; they stay pending"
                );
            }
            self.store
                .outbox_claim(item.id, &format_time(now), &later(now, MAX_SLEEP))
                .await?;
            return Ok(());
        };
        if !self
            .store
            .outbox_claim(item.id, &format_time(now), &later(now, LEASE))
            .await?
        {
            return Ok(()); // another worker has it
        }
        let result = match tokio::time::timeout(DELIVERY_TIMEOUT, deliverer.deliver(&item)).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Retry {
                after: None,
                reason: format!("delivery timed out after {}s", DELIVERY_TIMEOUT.as_secs()),
            }),
        };
        let now = self.clock.now();
        if let Some(m) = &self.metrics {
            let outcome = match &result {
                Ok(()) => "delivered",
                Err(DeliveryError::Retry { .. }) => "retry",
                Err(DeliveryError::Permanent(_)) => "failed",
            };
            m.outbound(&item.platform, outcome);
        }
        match result {
            Ok(()) => {
                self.store
                    .outbox_delivered(item.id, &format_time(now))
                    .await?;
                tracing::debug!(id = item.id, platform = %item.platform, channel = %item.channel, op = %item.op, "outbox item delivered");
            }
            Err(DeliveryError::Retry { after, reason }) => {
                let attempts = item.attempts.saturating_add(1);
                let delay = retry_delay(self.base_backoff, attempts, after);
                self.store
                    .outbox_retry(item.id, attempts, &later(now, delay), &reason)
                    .await?;
                tracing::warn!(
                    id = item.id, platform = %item.platform, channel = %item.channel, op = %item.op,
                    attempts, retry_in = ?delay, error = %reason,
                    "outbox delivery failed; will retry"
                );
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
            }
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
        assert_eq!(retry_delay(s(1), 1, None), s(1));
        assert_eq!(retry_delay(s(1), 2, None), s(2));
        assert_eq!(retry_delay(s(1), 4, None), s(8));
        assert_eq!(retry_delay(s(1), 9, None), s(256));
        assert_eq!(retry_delay(s(1), 10, None), MAX_BACKOFF);
        assert_eq!(retry_delay(s(1), u32::MAX, None), MAX_BACKOFF);
        assert_eq!(retry_delay(s(1), 0, None), s(1));
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(1), 1, Some(s(30))), s(30));
        assert_eq!(retry_delay(s(1), 6, Some(s(3))), s(32));
        assert_eq!(retry_delay(s(1), 1, Some(s(86_400))), MAX_RETRY_AFTER);
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

//! The deadline timer (the "SLA clock" of the README): sleeps until the next deadline any record
//! waits on, then asks the ledger to act.
//!
//! It never scans the records: the store keeps each record's next deadline in an indexed
//! column, and the timer reads only the earliest. It wakes early after every commit (a new
//! incident may be due sooner) and at least every `MAX_SLEEP` (another replica may have
//! written one). Acting on a deadline is an ordinary command, `Command::Tick`, so it is
//! audited, and with several replicas each deadline is handled once: the tick reads due
//! records inside the batch's lock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::domain::command::Command;
use crate::domain::ids::Actor;
use crate::domain::reply::Outcome;
use crate::ledger::{Ledger, TimeSource};

/// The longest the timer sleeps without looking.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(30);
/// After a failure (database down), wait this long before trying again.
const RETRY: Duration = Duration::from_secs(2);

/// A running timer. Dropping it does not stop it; call `stop`.
pub struct DeadlineTimer {
    task: JoinHandle<()>,
    wake: Arc<Notify>,
}

impl DeadlineTimer {
    pub fn spawn(ledger: Ledger, time: Arc<dyn TimeSource>) -> DeadlineTimer {
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(ledger, time, wake.clone()));
        DeadlineTimer { task, wake }
    }

    /// Makes the timer look again now (tests move their time by hand).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn run(ledger: Ledger, time: Arc<dyn TimeSource>, wake: Arc<Notify>) {
    loop {
        let committed = ledger.committed();
        tokio::pin!(committed);
        committed.as_mut().enable();
        let wait = match ledger.store().next_due().await {
            Ok(next) => until(next.as_deref(), time.now()),
            Err(e) => {
                tracing::warn!(error = %e, "sla clock cannot read the next deadline; retrying");
                RETRY
            }
        };
        if wait.is_zero() {
            let handled = ledger.handle(Actor::system(), Command::Tick).await;
            match handled.reply.outcome {
                Outcome::Ok if handled.reply.text != "no deadlines due" => {
                    tracing::info!(deadlines = %handled.reply.text, "sla clock acted");
                }
                Outcome::Ok => {
                    // Due by the index but nothing to do: another replica got there first and
                    // our read raced its commit. Look again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    tracing::warn!(reply = %handled.reply.text, "sla clock tick failed; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut committed => {}
            _ = wake.notified() => {}
        }
    }
}

/// How long to sleep until `next` (an RFC 3339 time), at most `MAX_SLEEP`.
pub(crate) fn until(next: Option<&str>, now: DateTime<Utc>) -> Duration {
    let Some(next) = next.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return MAX_SLEEP;
    };
    match (next.with_timezone(&Utc) - now).to_std() {
        Ok(d) => d.min(MAX_SLEEP),
        Err(_) => Duration::ZERO, // already due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sleeps_until_the_deadline_but_never_longer_than_the_cap() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        assert_eq!(
            until(Some("2026-11-29T10:00:01.500000Z"), now),
            Duration::from_millis(1500)
        );
        assert_eq!(
            until(Some("2026-11-29T09:59:59.000000Z"), now),
            Duration::ZERO
        );
        assert_eq!(
            until(Some("2026-11-29T10:00:00.000000Z"), now),
            Duration::ZERO
        );
        assert_eq!(until(Some("2026-11-29T11:00:00.000000Z"), now), MAX_SLEEP);
        assert_eq!(until(None, now), MAX_SLEEP);
    }
}

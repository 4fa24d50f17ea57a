//! Retention: purges what only the traffic makes (delivered outbox items, inbound delivery IDs)
//! once it is old enough, in small batches, so the store's size follows the records. Records and
//! audit entries are never purged.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::audit::format_time;
use crate::store::{Store, StoreError};

/// Delivered outbox items are kept this long by default: long enough to look into what a
/// channel was sent last month.
pub const DEFAULT_OUTBOX: Duration = Duration::from_secs(30 * 86_400);
/// Delivery IDs are kept this long by default. A Slack retry comes within minutes and Discord
/// does not redeliver, but GitHub lets anyone redeliver a webhook for 3 days: a week covers it.
pub const DEFAULT_DELIVERIES: Duration = Duration::from_secs(7 * 86_400);
/// The shortest delivery-ID age `serve` accepts: GitHub's redelivery window. A shorter one would
/// let a redelivered webhook act twice.
pub const MIN_DELIVERIES: Duration = Duration::from_secs(3 * 86_400);
/// Rows deleted per statement: small, so the writer never waits long behind a purge.
pub const BATCH: i64 = 1_000;
/// How often `serve` purges.
pub const EVERY: Duration = Duration::from_secs(60);

/// How old purged rows must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub outbox: Duration,
    pub deliveries: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            outbox: DEFAULT_OUTBOX,
            deliveries: DEFAULT_DELIVERIES,
        }
    }
}

impl Retention {
    /// How often `serve` purges: every `EVERY`, or four times per age when an age is shorter
    /// (so rows outlive their age by at most a quarter of it), but not more than ten times a
    /// second.
    pub fn interval(&self) -> Duration {
        (self.outbox.min(self.deliveries) / 4)
            .min(EVERY)
            .max(Duration::from_millis(100))
    }
}

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub outbox: u64,
    pub deliveries: u64,
}

/// The cut-off time for rows older than `age` at `now`.
fn before(now: DateTime<Utc>, age: Duration) -> String {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    format_time(
        now.checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// Purges everything older than the ages at `now`, a batch at a time, yielding between batches.
pub async fn purge(
    store: &dyn Store,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    let cut = before(now, retention.outbox);
    loop {
        let n = store.purge_delivered_outbox(&cut, BATCH).await?;
        purged.outbox += n;
        if n < BATCH as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let cut = before(now, retention.deliveries);
    loop {
        let n = store.purge_deliveries(&cut, BATCH).await?;
        purged.deliveries += n;
        if n < BATCH as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_the_age_before_now_and_saturates() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            before(now, Duration::from_secs(86_400)),
            "2026-12-01T00:00:00.000000Z"
        );
        assert_eq!(Retention::default().interval(), EVERY);
        let short = Retention {
            outbox: Duration::from_secs(2),
            deliveries: Duration::from_secs(3 * 86_400),
        };
        assert_eq!(short.interval(), Duration::from_millis(500));
        // An absurd age keeps everything rather than wrapping around.
        assert!(before(now, Duration::from_secs(u64::MAX)).starts_with('-'));
    }
}

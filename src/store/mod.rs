//! The `Store` port: where records, counters, role grants and the audit chain live, with SQLite and PostgreSQL behind it.

use async_trait::async_trait;

use crate::domain::audit::AuditEntry;
use crate::domain::command::Role;
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{BadStoredRecord, Record};
use crate::domain::report::{Rollups, Tally};

#[macro_use]
mod sql;
mod paging;
mod postgres;
mod sqlite;

pub use paging::{AuditStream, ListRecords, RecordPager, AUDIT_PAGE};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Corrupt(#[from] BadStoredRecord),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the whole store failed for a moment (a connection reset, SQLite busy beyond its
    /// timeout, a PostgreSQL serialization failure or deadlock), so the same work may succeed
    /// when tried again. Anything else is about the data and fails again the same way.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
            _ => false,
        }
    }
}

/// SQLite's BUSY and LOCKED (with their extended codes, primary code = low byte) and
/// PostgreSQL's serialization failure, deadlock, connection and shutdown classes.
fn transient_code(code: &str) -> bool {
    // A SQLSTATE has five characters (and may be all digits, like 40001); SQLite's extended
    // result codes have at most four digits.
    if code.len() == 5 {
        return matches!(
            code,
            "40001" | "40P01" | "53300" | "55P03" | "57P01" | "57P02" | "57P03"
        ) || code.starts_with("08");
    }
    code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which records a list wants. Results come in ID order; `after` is the key of the last
/// record of the previous page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub kind: Kind,
    pub after: Option<String>,
    pub limit: i64,
    /// Only these statuses, when not empty.
    pub statuses: Vec<String>,
    /// Only records this actor reported or is assigned.
    pub involving: Option<String>,
    pub breached: Option<bool>,
    /// Only this priority (`P1` to `P4`).
    pub priority: Option<String>,
    /// Only records of this service.
    pub service: Option<String>,
    /// Only records assigned to this actor.
    pub assignee: Option<String>,
    /// Only records whose title has every one of these words, each as a word or the start of
    /// one, ignoring case (`text::search_words`), through the full-text index: SQLite FTS5,
    /// PostgreSQL `tsvector`. Numbered kinds only.
    pub words: Vec<String>,
    /// Most urgent first instead of in ID order: records with an SLA deadline only (open
    /// incidents), breached first, then the least time left, then priority, then ID
    /// (`records_by_urgency`). `after` is then an `urgency_cursor`.
    pub urgent_first: bool,
    /// Newest first (descending IDs) instead of oldest first; `after` is then the last key of
    /// the previous page as in ID order.
    pub newest_first: bool,
}

/// Where a page in urgency order ends, as `ListQuery::after`: the last record's place in that
/// order (`breached|sla_due|priority|number`). None for a record without an SLA deadline.
pub fn urgency_cursor(r: &Record) -> Option<String> {
    let Record::Incident(i) = r else { return None };
    let due = i.sla_due()?;
    Some(format!(
        "{}|{}|{}|{}",
        u8::from(i.breached),
        crate::domain::audit::format_time(due),
        i.priority.as_str(),
        i.id.n
    ))
}

/// An `urgency_cursor` read back: `(breached, sla_due, priority, number)`; None if malformed.
pub(crate) fn parse_urgency_cursor(cursor: &str) -> Option<(i64, String, String, i64)> {
    let mut parts = cursor.split('|');
    let breached = parts
        .next()?
        .parse::<i64>()
        .ok()
        .filter(|b| *b == 0 || *b == 1)?;
    let due = parts.next()?.to_string();
    let priority = parts.next()?.to_string();
    let num = parts.next()?.parse::<i64>().ok()?;
    parts
        .next()
        .is_none()
        .then_some((breached, due, priority, num))
}

impl ListQuery {
    pub fn new(kind: Kind, limit: i64) -> Self {
        ListQuery {
            kind,
            after: None,
            limit,
            statuses: Vec::new(),
            involving: None,
            breached: None,
            priority: None,
            service: None,
            assignee: None,
            words: Vec::new(),
            urgent_first: false,
            newest_first: false,
        }
    }
}

/// An audit entry as a timeline lists it: everything but the records' JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub record: Option<String>,
    pub action: String,
    pub outcome: String,
    pub hash: String,
}

/// A checked range of the audit chain with its entries in a period
/// (`Store::audit_check_in_period`).
pub type CheckedRange = (crate::domain::audit::Segment, Vec<TimelineRow>);

/// Checks a range's rows in sequence order and keeps those whose time is in the period: what
/// each backend's reader feeds its rows to.
pub(crate) struct RangeCheck<'p> {
    check: crate::domain::audit::SegmentCheck,
    period: Option<(&'p str, &'p str)>,
    timeline: Vec<TimelineRow>,
}

impl<'p> RangeCheck<'p> {
    pub(crate) fn new(period: Option<(&'p str, &'p str)>) -> Self {
        RangeCheck {
            check: Default::default(),
            period,
            timeline: Vec::new(),
        }
    }

    /// Takes the next row; false once a fault was found (the rows after it are not wanted).
    pub(crate) fn row(&mut self, e: &crate::domain::audit::EntryRow<'_>) -> bool {
        if self
            .period
            .is_some_and(|(start, end)| e.at >= start && e.at < end)
        {
            self.timeline.push(TimelineRow::from(e));
        }
        self.check.check(e)
    }

    pub(crate) fn finish(self) -> CheckedRange {
        (self.check.finish(), self.timeline)
    }
}

impl From<&crate::domain::audit::EntryRow<'_>> for TimelineRow {
    fn from(e: &crate::domain::audit::EntryRow<'_>) -> Self {
        TimelineRow {
            seq: e.seq,
            at: e.at.to_string(),
            actor: e.actor.to_string(),
            record: e.record.map(str::to_string),
            action: e.action.to_string(),
            outcome: e.outcome.to_string(),
            hash: e.hash.to_string(),
        }
    }
}

/// Which records carry an index term (`Record::index_terms`). Results come newest first
/// (highest number first), so the first is the latest record the term names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermQuery {
    pub kind: Kind,
    pub term: String,
    /// Only records numbered below this.
    pub before: Option<u64>,
    /// At most this many; all when `None`.
    pub limit: Option<i64>,
}

impl TermQuery {
    /// Every record of `kind` carrying `term`.
    pub fn new(kind: Kind, term: String) -> Self {
        TermQuery {
            kind,
            term,
            before: None,
            limit: None,
        }
    }
}

/// A role granted at run time with `role grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub actor: Actor,
    pub role: Role,
    pub granted_by: Actor,
    pub granted_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChange {
    Add(Grant),
    Remove { actor: Actor, role: Role },
}

/// An outgoing message to stage in the outbox, written in the same transaction as the command
/// that caused it and delivered afterwards by the outbox worker (`crate::outbox`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    /// Which deliverer sends it (`slack`, `github`, ...): `Deliver::platform`.
    pub platform: String,
    /// Where it goes on that platform. Items of one (platform, channel) go out strictly in order.
    pub channel: String,
    /// What to do there (`post`, `update`, ...); the deliverer's business.
    pub op: String,
    /// The record it is about, if any (`INC-7`), e.g. to find its message through `message_ref`.
    pub record: Option<String>,
    pub payload: serde_json::Value,
}

/// A pending outbox item, as the worker hands it to a deliverer.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Increasing in enqueue (commit) order.
    pub id: i64,
    pub platform: String,
    pub channel: String,
    pub op: String,
    pub record: Option<String>,
    pub payload: serde_json::Value,
    /// Attempts made so far (0 on the first delivery).
    pub attempts: u32,
    /// When it was enqueued (RFC 3339, as `format_time` writes it).
    pub created_at: String,
    /// When its current run of failed attempts began; `None` before the first failure.
    pub first_failed_at: Option<String>,
}

/// Where an outbox item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting to be delivered (or being retried).
    Pending,
    Delivered,
    /// Given up after a permanent failure.
    Failed,
    /// Failed for longer than the park bounds; no longer holds back its channel.
    Parked,
    /// Dropped by an operator (`opsledger outbox drop`); kept in the table, marked.
    Dropped,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
            OutboxState::Parked => "parked",
            OutboxState::Dropped => "dropped",
        }
    }
}

/// An outbox item as operators see it (`opsledger outbox list`, the dashboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub platform: String,
    pub channel: String,
    pub op: String,
    pub record: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub state: OutboxState,
    pub created_at: String,
    /// When it reached its state (parked, failed, dropped or delivered); `None` while pending.
    pub since: Option<String>,
}

/// Everything one write batch changes, applied in one transaction.
#[derive(Debug, Default)]
pub struct WriteSet {
    /// Records in their new state (inserted or replaced), with their JSON.
    pub records: Vec<(Record, String)>,
    /// The last number handed out per kind.
    pub counters: Vec<(Kind, u64)>,
    pub audit: Vec<AuditEntry>,
    pub grants: Vec<GrantChange>,
    /// Outgoing messages, in enqueue order, each with its enqueue time (`format_time`), which is
    /// also when it is first due.
    pub outbox: Vec<(NewOutbox, String)>,
    /// Inbound deliveries acted on, `(platform, delivery id, received at)`: written with the
    /// command they carried, so a delivery whose command failed is acted on when retried.
    pub deliveries: Vec<(String, String, String)>,
    /// What the records' new states change in the report's per-day, per-service rollups
    /// (their old contributions taken away, the new ones added): written in the same
    /// transaction, so the rollups always equal a fold of the committed records.
    pub rollups: Rollups,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.counters.is_empty()
            && self.audit.is_empty()
            && self.grants.is_empty()
            && self.outbox.is_empty()
            && self.deliveries.is_empty()
            && self.rollups.is_empty()
    }
}

/// How often SQLite is asked whether another connection committed (`PRAGMA data_version`).
pub const COMMIT_PROBE: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The storage port. Reads go straight to the database; writes go through a `StoreTx`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Starts a write transaction, holding the chain-head lock until commit so that writers,
    /// in this process or another, take turns.
    async fn begin(&self) -> Result<Box<dyn StoreTx>>;
    async fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>>;
    async fn list(&self, q: &ListQuery) -> Result<Vec<Record>>;
    /// Records by an index term, through the `record_terms` index (no scan).
    async fn find(&self, q: &TermQuery) -> Result<Vec<Record>>;
    /// Audit entries with `seq > after`, in order, at most `limit`.
    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Audit entries with `after < seq <= upto` whose time is in `[period.0, period.1)` (RFC 3339
    /// as `format_time` writes it, so text order is time order), in order, at most `limit`,
    /// without the records' JSON: an export's timeline.
    async fn audit_in_period(
        &self,
        after: i64,
        upto: i64,
        period: (&str, &str),
        limit: i64,
    ) -> Result<Vec<TimelineRow>>;
    /// Checks the audit entries with `from <= seq <= to`: each one's hash and the links
    /// between them, reading rows without building entries. `audit::join` joins the ranges.
    async fn audit_check(&self, from: i64, to: i64) -> Result<crate::domain::audit::Segment>;
    /// `audit_check`, also returning the checked entries whose time is in `[period.0,
    /// period.1)` as `audit_in_period` would, so an export reads the trail once. The entries
    /// stop where the check does, at a fault.
    async fn audit_check_in_period(
        &self,
        from: i64,
        to: i64,
        period: (&str, &str),
    ) -> Result<CheckedRange>;
    /// The earliest deadline any record is waiting on (RFC 3339, as `format_time` writes it).
    async fn next_due(&self) -> Result<Option<String>>;
    /// The chain head `(seq, hash)` as last committed.
    async fn chain_head(&self) -> Result<(i64, String)>;
    /// One record's timeline, oldest first, entries with `seq > after`.
    async fn audit_for(&self, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    async fn grants(&self) -> Result<Vec<Grant>>;
    /// The report rollups of the UTC days `from..=to`, summed per service (the name incidents
    /// and changes are reported under), in service order.
    async fn report_rollups(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<(String, Tally)>>;

    // The outbox. Items are written by `StoreTx::write` (through `UnitOfWork::enqueue`); the
    // worker in `crate::outbox` reads and settles them with the calls below, each its own
    // statement outside any write batch. Times are RFC 3339 as `format_time` writes them.

    /// Pending items (neither delivered nor given up) that are due (`next_attempt_at <= now`)
    /// and are the oldest pending item of their (platform, channel), earliest due first, at most
    /// `limit`. So at most one item per channel, and a later message never overtakes an earlier
    /// one that is still being retried.
    async fn outbox_due(&self, now: &str, limit: i64) -> Result<Vec<OutboxItem>>;
    /// When the worker must look next: the earliest `next_attempt_at` over the items
    /// `outbox_due` could return (the oldest pending item of each channel); `None` when nothing
    /// is pending.
    async fn outbox_next_attempt(&self) -> Result<Option<String>>;
    /// Claims a due item for one delivery attempt for instance `owner`: moves its
    /// `next_attempt_at` to `until` if it is still pending and due at `now`. True for exactly
    /// one caller, so with several replicas only one worker delivers it; if that worker dies,
    /// the item is due again at `until`, or at once when `owner` restarts
    /// (`outbox_release_claims`).
    async fn outbox_claim(&self, id: i64, now: &str, until: &str, owner: &str) -> Result<bool> {
        Ok(!self
            .outbox_claim_many(&[id], now, until, owner)
            .await?
            .is_empty())
    }
    /// `outbox_claim` for several items in one transaction: the ones this caller claimed.
    async fn outbox_claim_many(
        &self,
        ids: &[i64],
        now: &str,
        until: &str,
        owner: &str,
    ) -> Result<Vec<i64>>;
    /// Marks an item delivered (and counts the attempt).
    async fn outbox_delivered(&self, id: i64, now: &str) -> Result<()> {
        self.outbox_delivered_many(&[(id, now.to_string())]).await
    }
    /// `outbox_delivered` for several items, each with its own time, in one transaction.
    async fn outbox_delivered_many(&self, delivered: &[(i64, String)]) -> Result<()>;
    /// Records a failed attempt: `attempts` made so far, when to try again, and why.
    /// `rate_limited` says the wait is the platform's own `Retry-After`, which
    /// `outbox_retry_platform_now` leaves alone. The run of failures starts at `now` if none
    /// was under way.
    async fn outbox_retry(
        &self,
        id: i64,
        attempts: u32,
        now: &str,
        next_attempt_at: &str,
        error: &str,
        rate_limited: bool,
    ) -> Result<()>;
    /// Gives an item up for good (a permanent failure): it stays in the table, marked failed
    /// with the error, and no longer holds back its channel.
    async fn outbox_give_up(&self, id: i64, now: &str, error: &str) -> Result<()>;
    /// Parks an item that kept failing past the bounds: it stays in the table, marked parked
    /// with `attempts` and the last error, and no longer holds back its channel.
    async fn outbox_park(&self, id: i64, attempts: u32, now: &str, error: &str) -> Result<()>;
    /// Releases the claims `owner` holds (a restarted process taking its own back): those
    /// items are due at `now`. Returns how many.
    async fn outbox_release_claims(&self, owner: &str, now: &str) -> Result<u64>;
    /// Makes every pending item of `platform` that waits on a backoff due at `now` (the
    /// platform answers again); waits the platform asked for (`Retry-After`) and items claimed
    /// for an attempt are left alone. Returns how many.
    async fn outbox_retry_platform_now(&self, platform: &str, now: &str) -> Result<u64>;
    /// Parked and failed items that were not dropped, oldest first, at most `limit`.
    async fn outbox_stuck(&self, limit: i64) -> Result<Vec<OutboxEntry>>;
    /// How many items are parked (and not dropped).
    async fn outbox_parked(&self) -> Result<i64>;
    /// One item, in any state.
    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>>;
    /// Makes a parked or failed (not dropped) item pending again and due at `now`, its
    /// attempts counted afresh. False when the item is in no such state.
    async fn outbox_requeue(&self, id: i64, now: &str) -> Result<bool>;
    /// How many items are pending (the outbox depth).
    async fn outbox_pending(&self) -> Result<i64>;
    /// Notes that the outbox worker of `instance` is alive at `now`.
    async fn outbox_heartbeat(&self, instance: &str, now: &str) -> Result<()>;
    /// How many outbox workers were alive at or after `since`.
    async fn outbox_workers_since(&self, since: &str) -> Result<i64>;

    /// Where a record's message lives on a platform's channel (e.g. a Slack `ts`).
    async fn message_ref(
        &self,
        record: &str,
        platform: &str,
        channel: &str,
    ) -> Result<Option<String>>;
    /// Sets (inserts or replaces) where a record's message lives.
    async fn set_message_ref(
        &self,
        record: &str,
        platform: &str,
        channel: &str,
        reference: &str,
    ) -> Result<()>;
    /// Notes an inbound delivery (a Slack retry, a GitHub redelivery): true the first time a
    /// (platform, delivery id) is seen, false afterwards. Atomic across replicas on one database.
    async fn first_delivery(&self, platform: &str, delivery_id: &str, now: &str) -> Result<bool>;
    /// Forgets a delivery whose processing failed, so the platform's redelivery is processed.
    async fn forget_delivery(&self, platform: &str, delivery_id: &str) -> Result<()>;
    /// Whether a (platform, delivery id) was already acted on, as last committed.
    async fn delivery_seen(&self, platform: &str, delivery_id: &str) -> Result<bool>;

    // Retention: what only the traffic makes, never the records or the audit trail. Each call
    // deletes one small batch (oldest first) so it never holds the database for long; the
    // caller repeats while a full batch came back.

    /// Deletes at most `limit` outbox items delivered before `before`; returns how many.
    /// Pending, parked, failed and dropped items are kept.
    async fn purge_delivered_outbox(&self, before: &str, limit: i64) -> Result<u64>;
    /// Forgets at most `limit` inbound delivery IDs received before `before`; returns how many.
    async fn purge_deliveries(&self, before: &str, limit: i64) -> Result<u64>;
    /// Calls `on_commit` soon (within `COMMIT_PROBE` on SQLite, at once on PostgreSQL) after any
    /// connection, in this process or another, committed a write batch. Runs until the store
    /// closes; a lost connection is reopened, and `on_commit` called then too, since a commit
    /// may have been missed meanwhile. `serve` uses it to wake the deadline timer and the outbox
    /// worker on commits of `opsledger exec` and of other replicas.
    async fn watch_commits(&self, on_commit: std::sync::Arc<dyn Fn() + Send + Sync>) -> Result<()>;

    async fn close(&self);
}

/// A write transaction. Reads see the transaction's own earlier writes.
#[async_trait]
pub trait StoreTx: Send {
    /// The chain head `(seq, hash)`, locked for this transaction.
    fn head(&self) -> (i64, String);
    async fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>>;
    async fn list(&mut self, q: &ListQuery) -> Result<Vec<Record>>;
    /// Records by an index term, as committed before this transaction plus its own writes.
    async fn find(&mut self, q: &TermQuery) -> Result<Vec<Record>>;
    /// The records of `kind` with these keys that exist, a few statements for them all: a
    /// batch's reads made ahead (`UnitOfWork::prefetch_records`).
    async fn get_many(&mut self, kind: Kind, keys: &[String]) -> Result<Vec<Record>>;
    /// For each of `terms`, the records of `kind` carrying it, as `find` without a bound or a
    /// limit gives them (in no particular order), as (term, record) pairs.
    async fn find_many(&mut self, kind: Kind, terms: &[String]) -> Result<Vec<(String, Record)>>;
    async fn audit_for(&mut self, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    async fn grants(&mut self) -> Result<Vec<Grant>>;
    /// `Store::report_rollups`, seeing the transaction's own writes.
    async fn report_rollups(
        &mut self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<(String, Tally)>>;
    /// Records whose deadline is at or before `now` (RFC 3339), earliest first.
    async fn due(&mut self, now: &str, limit: i64) -> Result<Vec<Record>>;
    /// The last number handed out for `kind` (0 when none yet).
    async fn counter(&mut self, kind: Kind) -> Result<u64>;
    /// Whether a (platform, delivery id) was already acted on, seen under the batch's lock.
    async fn delivery_seen(&mut self, platform: &str, delivery_id: &str) -> Result<bool>;
    /// Which of these (platform, delivery id) pairs were already acted on, under the batch's
    /// lock: one statement for a whole batch's deliveries.
    async fn deliveries_seen(&mut self, keys: &[(String, String)])
        -> Result<Vec<(String, String)>>;
    async fn write(&mut self, w: WriteSet) -> Result<()>;
    async fn commit(self: Box<Self>) -> Result<()>;
    /// One outbox item, read inside the transaction.
    async fn outbox_entry(&mut self, id: i64) -> Result<Option<OutboxEntry>>;
    /// Marks a parked or failed item dropped by `by` (it stays in the table); false when the
    /// item is in no such state.
    async fn outbox_drop(&mut self, id: i64, now: &str, by: &str) -> Result<bool>;
}

/// Opens the store a database URL names: `sqlite://PATH` or `postgres://...`.
pub async fn open(url: &str) -> Result<Box<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "`{}` is not a database URL: use sqlite://PATH or postgres://USER@HOST/DB",
            redact(url)
        )))
    }
}

/// A URL with any password removed, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..s], &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_codes_are_busy_locked_and_postgres_retry_classes() {
        for code in [
            "5", "261", "517", "773", "6", "262", "40001", "40P01", "08006", "57P01",
        ] {
            assert!(super::transient_code(code), "{code}");
        }
        for code in ["19", "2067", "1", "22021", "23505", "42P01"] {
            assert!(!super::transient_code(code), "{code}");
        }
    }

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}

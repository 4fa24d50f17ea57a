//! The `Store` port: where records, counters, role grants and the audit chain live, with SQLite and PostgreSQL behind it.

use async_trait::async_trait;

use crate::domain::audit::AuditEntry;
use crate::domain::command::Role;
use crate::domain::ids::{Actor, Kind};
use crate::domain::records::{BadStoredRecord, Record};

#[macro_use]
mod sql;
mod postgres;
mod sqlite;

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

/// Everything one write batch changes, applied in one transaction.
#[derive(Debug, Default)]
pub struct WriteSet {
    /// Records in their new state (inserted or replaced), with their JSON.
    pub records: Vec<(Record, String)>,
    /// The last number handed out per kind.
    pub counters: Vec<(Kind, u64)>,
    pub audit: Vec<AuditEntry>,
    pub grants: Vec<GrantChange>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.counters.is_empty()
            && self.audit.is_empty()
            && self.grants.is_empty()
    }
}

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
    /// Audit entries with `seq > after`, in order, at most `limit`.
    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    /// The earliest deadline any record is waiting on (RFC 3339, as `format_time` writes it).
    async fn next_due(&self) -> Result<Option<String>>;
    /// The chain head `(seq, hash)` as last committed.
    async fn chain_head(&self) -> Result<(i64, String)>;
    /// One record's timeline, oldest first, entries with `seq > after`.
    async fn audit_for(&self, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    async fn grants(&self) -> Result<Vec<Grant>>;
    async fn close(&self);
}

/// A write transaction. Reads see the transaction's own earlier writes.
#[async_trait]
pub trait StoreTx: Send {
    /// The chain head `(seq, hash)`, locked for this transaction.
    fn head(&self) -> (i64, String);
    async fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>>;
    async fn list(&mut self, q: &ListQuery) -> Result<Vec<Record>>;
    async fn audit_for(&mut self, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    async fn grants(&mut self) -> Result<Vec<Grant>>;
    /// Records whose deadline is at or before `now` (RFC 3339), earliest first.
    async fn due(&mut self, now: &str, limit: i64) -> Result<Vec<Record>>;
    /// The last number handed out for `kind` (0 when none yet).
    async fn counter(&mut self, kind: Kind) -> Result<u64>;
    async fn write(&mut self, w: WriteSet) -> Result<()>;
    async fn commit(self: Box<Self>) -> Result<()>;
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
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}

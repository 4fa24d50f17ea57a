//! The embedded SQLite backend: WAL mode, the file created if missing, writers serialised by `BEGIN IMMEDIATE`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

sql_store!(
    SqliteStore,
    SqliteTx,
    sqlx::Sqlite,
    Backend::Sqlite,
    "BEGIN IMMEDIATE",
    "UPDATE chain_head SET batches = batches + 1 WHERE id = 1 RETURNING seq, hash"
);

/// Polls `PRAGMA data_version` on a connection of its own: its value changes when any other
/// connection, of this process or another, commits. SQLite has no notifications across
/// processes, and the probe is a read of a counter in shared memory, so polling costs nothing
/// worth counting.
async fn watch_commits(
    pool: &sqlx::SqlitePool,
    on_commit: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> Result<()> {
    use sqlx::Connection;
    let opts = pool.connect_options();
    let mut last: Option<i64> = None;
    let mut conn: Option<sqlx::SqliteConnection> = None;
    let mut tick = tokio::time::interval(crate::store::COMMIT_PROBE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            if let Some(c) = conn.take() {
                let _ = c.close().await;
            }
            return Ok(());
        }
        if conn.is_none() {
            match sqlx::SqliteConnection::connect_with(&opts).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the commit probe's connection; trying again");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match sqlx::query_as::<_, (i64,)>("PRAGMA data_version")
            .fetch_one(&mut *c)
            .await
        {
            Ok((v,)) => {
                if last.is_some_and(|l| l != v) {
                    on_commit();
                    // Copy the new WAL frames into the database here, on this connection's
                    // thread, so the writer's own automatic checkpoint (at 1,000 pages of WAL)
                    // mostly finds the frames copied already. PASSIVE waits on nobody; what it
                    // cannot copy now it copies next time.
                    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(&mut *c)
                        .await
                    {
                        tracing::debug!(error = %e, "a background WAL checkpoint failed; the writer's own will do");
                    }
                }
                last = Some(v);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the commit probe failed; reopening its connection");
                conn = None;
                // A new connection starts its own count: a commit meanwhile is looked at now.
                last = None;
                on_commit();
            }
        }
    }
}

/// The write batches' own connection (`SqliteStore::writer`), opened at the first batch.
fn writer_pool(opts: SqliteConnectOptions) -> sqlx::SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_lazy_with(opts)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `sqlite://PATH` and applies migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed batch survives power loss; group commit pays for the fsync.
            .synchronous(SqliteSynchronous::Full)
            // A batch's multi-row upserts each keep a statement journal (to undo that one
            // statement if it fails), which past 64 KiB SQLite spills to a temporary file it
            // opens and writes every batch: 11% of the writer's SQLite time in a profile.
            // In memory it is a copy. The queries sort through indexes or with a LIMIT, so
            // no unbounded temporary table is built in memory instead.
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The readers beside the write batches' own connection (`writer_pool`): the API and
        // dashboard, the outbox worker, the SLA clock, the commit probe. Eight covers them with
        // room; each connection's page cache is at most 2 MiB (SQLite's default), and one idle
        // for a minute is closed, so a quiet server holds few.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .idle_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await?;
        let store = SqliteStore {
            pool,
            writer: writer_pool(opts),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens a database that must exist, as it is: no migration, no change of journal mode.
    /// For copying a live store and checking the copy.
    pub async fn open_existing(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts.clone())
            .await?;
        Ok(SqliteStore {
            pool,
            writer: writer_pool(opts),
        })
    }

    /// Writes a consistent copy of the whole database to `path` (which must not exist) with
    /// `VACUUM INTO`: one read transaction, so writers carry on meanwhile and the copy is the
    /// database as of one commit, compacted. SQLite's own way to copy a live database; copying
    /// the file (and its WAL) by hand is not.
    pub async fn backup_into(&self, path: &std::path::Path) -> Result<()> {
        let path = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid("the backup path is not valid UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The migrations this backend knows, for tests that migrate step by step.
    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }
}

/// Bulk reads of the audit trail (verify, an export's timeline) on a rusqlite connection of
/// their own, stepped on a blocking thread. sqlx-sqlite runs each statement on a worker thread
/// and hands every row to the async side over a channel, a thread switch per row: for the
/// millions of rows a verify reads that switch, not SQLite, was the cost.
mod bulk {
    use std::path::Path;
    use std::time::Duration;

    use rusqlite::{Connection, OpenFlags};

    use crate::domain::audit::EntryRow;
    use crate::store::{CheckedRange, RangeCheck, StoreError, TimelineRow};

    fn fail(e: rusqlite::Error) -> StoreError {
        StoreError::Invalid(format!("cannot read the audit trail: {e}"))
    }

    fn open(path: &Path) -> Result<Connection, StoreError> {
        // Read-write without create: a WAL database's readers need its shared-memory file,
        // which a read-only connection may not be allowed to create. It only ever reads.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
        conn.pragma_update(None, "query_only", true).map_err(fail)?;
        Ok(conn)
    }

    /// Checks `from..=to`; with a period, also returns the entries whose time is in it (the
    /// export's timeline), so the trail is read once for both.
    pub(super) fn check(
        path: &Path,
        from: i64,
        to: i64,
        period: Option<(&str, &str)>,
    ) -> Result<CheckedRange, StoreError> {
        let conn = open(path)?;
        let mut stmt = conn
            .prepare(
                "SELECT seq, at, actor, record, action, before_json, after_json, outcome, prev_hash, hash \
                 FROM audit WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
            )
            .map_err(fail)?;
        let mut rows = stmt.query([from, to]).map_err(fail)?;
        let mut check = RangeCheck::new(period);
        while let Some(row) = rows.next().map_err(fail)? {
            let text = |i: usize| -> Result<&str, StoreError> {
                row.get_ref(i).and_then(|v| Ok(v.as_str()?)).map_err(fail)
            };
            let opt = |i: usize| -> Result<Option<&str>, StoreError> {
                row.get_ref(i)
                    .and_then(|v| Ok(v.as_str_or_null()?))
                    .map_err(fail)
            };
            let e = EntryRow {
                seq: row.get(0).map_err(fail)?,
                at: text(1)?,
                actor: text(2)?,
                record: opt(3)?,
                action: text(4)?,
                before: opt(5)?,
                after: opt(6)?,
                outcome: text(7)?,
                prev_hash: text(8)?,
                hash: text(9)?,
            };
            if !check.row(&e) {
                break;
            }
        }
        Ok(check.finish())
    }

    pub(super) fn timeline(
        path: &Path,
        after: i64,
        upto: i64,
        period: (&str, &str),
        limit: i64,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        let conn = open(path)?;
        let mut stmt = conn
            .prepare(
                "SELECT seq, at, actor, record, action, outcome, hash FROM audit \
                 WHERE seq > ?1 AND seq <= ?2 AND at >= ?3 AND at < ?4 ORDER BY seq LIMIT ?5",
            )
            .map_err(fail)?;
        let rows = stmt
            .query_map(
                rusqlite::params![after, upto, period.0, period.1, limit],
                |r| {
                    Ok(TimelineRow {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        record: r.get(3)?,
                        action: r.get(4)?,
                        outcome: r.get(5)?,
                        hash: r.get(6)?,
                    })
                },
            )
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }
}

impl SqliteStore {
    /// The database file, when there is one a second connection can open.
    fn file(&self) -> Option<std::path::PathBuf> {
        let path = self.pool.connect_options().get_filename().to_path_buf();
        path.is_file().then_some(path)
    }

    async fn check_audit_range(
        &self,
        from: i64,
        to: i64,
        period: Option<(&str, &str)>,
    ) -> Result<crate::store::CheckedRange> {
        let Some(path) = self.file() else {
            return self.check_audit_range_pooled(from, to, period).await;
        };
        let period = period.map(|(a, b)| (a.to_string(), b.to_string()));
        tokio::task::spawn_blocking(move || {
            bulk::check(
                &path,
                from,
                to,
                period.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            )
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("the audit reader stopped: {e}")))?
    }

    async fn timeline_page(
        &self,
        after: i64,
        upto: i64,
        period: (&str, &str),
        limit: i64,
    ) -> Result<Vec<crate::store::TimelineRow>> {
        let Some(path) = self.file() else {
            return self.timeline_page_pooled(after, upto, period, limit).await;
        };
        let period = (period.0.to_string(), period.1.to_string());
        tokio::task::spawn_blocking(move || {
            bulk::timeline(&path, after, upto, (&period.0, &period.1), limit)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("the audit reader stopped: {e}")))?
    }
}

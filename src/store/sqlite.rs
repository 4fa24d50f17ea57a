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

impl SqliteStore {
    /// Opens (creating if missing) the database at `sqlite://PATH` and applies migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed batch survives power loss; group commit pays for the fsync.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        let store = SqliteStore { pool };
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
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
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

//! The PostgreSQL backend for teams and several replicas: writers serialised by the chain-head row lock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

// Locking the chain head also queues the commit notification: PostgreSQL sends it to every
// listener when (and only if) the transaction commits, at no extra round trip.
sql_store!(
    PgStore,
    PgTx,
    sqlx::Postgres,
    Backend::Postgres,
    "BEGIN",
    "UPDATE chain_head SET batches = batches + 1 FROM (SELECT pg_notify('opsledger_commit', '')) n \
     WHERE id = 1 RETURNING seq, hash"
);

/// The channel every write batch notifies on commit.
const COMMIT_CHANNEL: &str = "opsledger_commit";
/// After the listener's connection failed, wait this long before connecting again.
const RELISTEN: Duration = Duration::from_secs(1);

/// `LISTEN`s for commit notifications on a connection of its own, reconnecting when it drops.
async fn watch_commits(
    pool: &sqlx::PgPool,
    on_commit: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> Result<()> {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) if pool.is_closed() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for commits; trying again");
                tokio::time::sleep(RELISTEN).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(COMMIT_CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for commits; trying again");
            tokio::time::sleep(RELISTEN).await;
            continue;
        }
        // Anything committed while no one listened is looked at now.
        on_commit();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => on_commit(),
                // The connection dropped; `try_recv` reconnects and re-listens on the next call.
                Ok(None) => {
                    tracing::warn!("the commit listener's connection dropped; reconnecting");
                    on_commit();
                }
                Err(e) if pool.is_closed() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "the commit listener failed; reconnecting");
                    tokio::time::sleep(RELISTEN).await;
                    break;
                }
            }
        }
    }
}

impl PgStore {
    /// Connects to `postgres://...` and applies migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        // The readers (API, dashboard, outbox worker, SLA clock) and `audit verify`'s parallel
        // ranges; the write batches and the commit listener have a connection each of their
        // own. Each connection is a server process on the PostgreSQL side, so replicas share
        // the server's `max_connections` (100 by default) eighteen at a time.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await?;
        // The write batches' own connection (`PgStore::writer`), opened at the first batch.
        let writer = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(opts);
        let store = PgStore { pool, writer };
        store.migrate().await?;
        Ok(store)
    }

    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }
}

impl PgStore {
    async fn check_audit_range(
        &self,
        from: i64,
        to: i64,
        period: Option<(&str, &str)>,
    ) -> Result<crate::store::CheckedRange> {
        self.check_audit_range_pooled(from, to, period).await
    }

    async fn timeline_page(
        &self,
        after: i64,
        upto: i64,
        period: (&str, &str),
        limit: i64,
    ) -> Result<Vec<crate::store::TimelineRow>> {
        self.timeline_page_pooled(after, upto, period, limit).await
    }
}

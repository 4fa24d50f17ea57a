//! What the benchmarks share: the raw store figure each reads its result against, the ledger's
//! metrics and their size settings.

use std::time::Instant;

use sqlx::Connection;

/// Single-row inserts, each its own transaction, on the same database and durability settings.
pub async fn raw_insert_rate(url: &str) -> f64 {
    const N: usize = 300;
    let started;
    if url.starts_with("sqlite") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use std::str::FromStr;
        let opts = SqliteConnectOptions::from_str(url)
            .unwrap()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, v TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        started = Instant::now();
        for i in 0..N {
            sqlx::query("INSERT INTO bench_raw (v) VALUES ($1)")
                .bind(format!("row {i}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id BIGSERIAL PRIMARY KEY, v TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        started = Instant::now();
        for i in 0..N {
            sqlx::query("INSERT INTO bench_raw (v) VALUES ($1)")
                .bind(format!("row {i}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    N as f64 / started.elapsed().as_secs_f64()
}

/// A counter or histogram sample from the ledger's metrics (0 when absent).
pub fn metric(ledger: &opsledger::ledger::Ledger, name: &str) -> f64 {
    ledger
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// A size setting from the environment (`BENCH_...`), else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

//! What one SQL statement costs the writer on SQLite through sqlx, against the same statement
//! run directly on SQLite's own thread (rusqlite), on the same database file in the same run.
//!
//! The ledger's writer sends each statement of a batch to sqlx-sqlite's worker thread and
//! awaits the answer, so a batch pays a hand-off per statement on top of SQLite's own work.
//! This measures that price on this machine: N point reads by primary key of a 100,000-row
//! table, and N single-row inserts, each awaited in turn inside one transaction (no fsync per
//! statement), first through a sqlx connection on a two-worker tokio runtime like `serve`'s,
//! then through rusqlite with a cached prepared statement. Prints microseconds a statement for
//! each and their difference: the part of each statement that is hand-off and driver, not
//! SQLite. It measures twice: with the machine otherwise idle, and with a thread spinning on
//! one core, since waking a thread whose core sleeps costs far more than one whose core runs.
//!
//! `cargo bench --bench roundtrip` (N=20000). Under `cargo test --all-targets` it is a smoke
//! test (N=500). `BENCH_STATEMENTS` overrides N.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::str::FromStr;
use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor};

const ROWS: i64 = 100_000;

/// A key spread over the table, so reads do not all hit one page.
fn key(i: u64) -> i64 {
    i64::try_from(i.wrapping_mul(7_919) % ROWS as u64).expect("small") + 1
}

/// Microseconds a statement for the reads and for the inserts, through sqlx.
async fn through_sqlx(url: &str, n: u64) -> (f64, f64) {
    let mut c = SqliteConnectOptions::from_str(url)
        .expect("url")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .expect("connect");
    c.execute("BEGIN IMMEDIATE").await.expect("begin");
    let started = Instant::now();
    for i in 0..n {
        let (v,): (String,) = sqlx::query_as("SELECT v FROM t WHERE id = $1")
            .bind(key(i))
            .fetch_one(&mut c)
            .await
            .expect("read");
        assert!(!v.is_empty());
    }
    let read = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for i in 0..n {
        sqlx::query("INSERT INTO u (id, v) VALUES ($1, $2)")
            .bind(i64::try_from(i).expect("small"))
            .bind("value of the inserted row")
            .execute(&mut c)
            .await
            .expect("insert");
    }
    let insert = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    c.execute("ROLLBACK").await.expect("rollback");
    c.close().await.expect("close");
    (read, insert)
}

/// The same, through rusqlite on the calling thread.
fn through_rusqlite(path: &std::path::Path, n: u64) -> (f64, f64) {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; BEGIN IMMEDIATE")
        .expect("begin");
    let started = Instant::now();
    for i in 0..n {
        let v: String = c
            .prepare_cached("SELECT v FROM t WHERE id = ?1")
            .expect("prepare")
            .query_row([key(i)], |r| r.get(0))
            .expect("read");
        assert!(!v.is_empty());
    }
    let read = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for i in 0..n {
        c.prepare_cached("INSERT INTO u (id, v) VALUES (?1, ?2)")
            .expect("prepare")
            .execute(rusqlite::params![
                i64::try_from(i).expect("small"),
                "value of the inserted row"
            ])
            .expect("insert");
    }
    let insert = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    c.execute_batch("ROLLBACK").expect("rollback");
    (read, insert)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = common::bench::env_u64("BENCH_STATEMENTS", if full { 20_000 } else { 500 }).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("roundtrip.db");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch(
            "PRAGMA journal_mode = WAL; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             BEGIN",
        )
        .expect("schema");
        let mut insert = c
            .prepare("INSERT INTO t (id, v) VALUES (?1, ?2)")
            .expect("prepare");
        for id in 1..=ROWS {
            insert
                .execute(rusqlite::params![id, format!("row {id} of the table")])
                .expect("seed");
        }
        drop(insert);
        c.execute_batch("COMMIT").expect("commit");
    }
    let url = format!("sqlite://{}", path.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for spinning in [false, true] {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = spinning.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        });
        // Each twice, alternating, so a warm cache is not the first one's advantage alone.
        let mut sqlx_runs = Vec::new();
        let mut direct_runs = Vec::new();
        for _ in 0..2 {
            sqlx_runs.push(rt.block_on(through_sqlx(&url, n)));
            direct_runs.push(through_rusqlite(&path, n));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = spinner {
            s.join().expect("spinner");
        }
        let best = |runs: &[(f64, f64)]| {
            (
                runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min),
                runs.iter().map(|r| r.1).fold(f64::INFINITY, f64::min),
            )
        };
        let (sr, si) = best(&sqlx_runs);
        let (dr, di) = best(&direct_runs);
        let load = if spinning {
            "a thread spinning on one core"
        } else {
            "the machine otherwise idle"
        };
        println!("{n} statements each, in one transaction, best of 2 runs, {load}:");
        println!(
            "  point read by key:  sqlx {sr:>6.1} µs  rusqlite {dr:>6.1} µs  -> {:>6.1} µs a statement is hand-off and driver ({:.1}x)",
            sr - dr,
            sr / dr
        );
        println!(
            "  single-row insert:  sqlx {si:>6.1} µs  rusqlite {di:>6.1} µs  -> {:>6.1} µs a statement is hand-off and driver ({:.1}x)",
            si - di,
            si / di
        );
    }
}

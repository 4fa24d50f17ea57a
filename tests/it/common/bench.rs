//! What the benchmarks share: the raw store figures each reads its result against (single-row
//! commits, and the store alone as a group commit with a run's own rows), the ledger's metrics
//! and their size settings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opsledger::domain::audit::AuditEntry;
use opsledger::domain::ids::Kind;
use opsledger::domain::records::Record;
use opsledger::domain::report::contribution;
use opsledger::store::{ListQuery, RecordPager, Store, WriteSet};
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

/// `serve`'s commit watcher on the store (on SQLite it also checkpoints the WAL after commits).
pub fn watch(store: &std::sync::Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        let _ = store.watch_commits(std::sync::Arc::new(|| {})).await;
    })
}

/// Every record and audit entry a run wrote, read back in order.
pub struct RunRows {
    pub records: Vec<Record>,
    pub audit: Vec<AuditEntry>,
}

pub async fn run_rows(from: &Arc<dyn Store>) -> RunRows {
    let mut records = Vec::new();
    let mut pager = RecordPager::new(&**from, ListQuery::new(Kind::Incident, 1_000));
    while let Some(page) = pager.next_page().await.expect("read the run's records") {
        records.extend(page);
    }
    let mut audit = Vec::new();
    loop {
        let after = audit.last().map_or(0, |e: &AuditEntry| e.seq);
        let page = from
            .audit_after(after, 10_000)
            .await
            .expect("read the run's audit");
        if page.is_empty() {
            break;
        }
        audit.extend(page);
    }
    RunRows { records, audit }
}

/// The store alone as a group commit: its latency percentiles and commands per commit.
pub struct GroupCommit {
    pub p50: Duration,
    pub p99: Duration,
    pub per_commit: f64,
}

/// One command's rows, ready to write: the record with its JSON and its audit entries.
type CommandRows = (Record, String, Vec<AuditEntry>);

/// `callers` concurrent callers each hand one command's rows at a time to a writer that commits
/// whatever is queued in one transaction (with the counter and rollups) and answers every
/// caller in it after the commit, as the ledger's writer does, but with no parsing, rules,
/// rendering or JSON making: the least latency these rows can have at this concurrency. With
/// `delivered_from` (a platform), each command also notes its inbound delivery, as a Slack
/// command does.
pub async fn store_alone_latency(
    rows: RunRows,
    into: &super::TestDb,
    callers: usize,
    delivered_from: Option<&str>,
) -> GroupCommit {
    let RunRows { records, audit } = rows;
    let mut by_record: std::collections::HashMap<String, Vec<AuditEntry>> = Default::default();
    for e in audit {
        if let Some(r) = e.record.clone() {
            by_record.entry(r).or_default().push(e);
        }
    }
    let mut lists: Vec<Vec<CommandRows>> = (0..callers).map(|_| Vec::new()).collect();
    for (i, r) in records.into_iter().enumerate() {
        let entries = by_record.remove(&r.key()).unwrap_or_default();
        let json = r.to_json_string();
        lists[i % callers].push((r, json, entries));
    }
    let store = into.store().await;
    let _watcher = watch(&store);
    let (queue, mut inbox) =
        tokio::sync::mpsc::channel::<(CommandRows, tokio::sync::oneshot::Sender<()>)>(callers);
    let platform = delivered_from.map(str::to_string);
    let writer = tokio::spawn(async move {
        let mut commits = 0u64;
        while let Some(first) = inbox.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = inbox.try_recv() {
                batch.push(more);
            }
            let mut w = WriteSet::default();
            for ((record, json, entries), _) in &batch {
                w.rollups.replace(None, contribution(record).as_ref());
                w.records.push((record.clone(), json.clone()));
                w.audit.extend(entries.iter().cloned());
                if let Some(platform) = &platform {
                    let at = entries.first().map_or_else(String::new, |e| e.at.clone());
                    let id = format!("replay-{}", record.key());
                    w.deliveries.push((platform.clone(), id, at));
                }
            }
            w.audit.sort_by_key(|e| e.seq);
            let last = w
                .records
                .iter()
                .filter_map(|(r, _)| r.number())
                .map(|id| id.n)
                .max();
            w.counters = last.map(|n| (Kind::Incident, n)).into_iter().collect();
            let mut tx = store.begin().await.expect("begin");
            tx.write(w).await.expect("write");
            tx.commit().await.expect("commit");
            commits += 1;
            for (_, done) in batch {
                let _ = done.send(());
            }
        }
        commits
    });
    let mut tasks = Vec::with_capacity(callers);
    for list in lists {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(list.len());
            for rows in list {
                let (done, committed) = tokio::sync::oneshot::channel();
                let s = Instant::now();
                queue.send((rows, done)).await.expect("writer running");
                committed.await.expect("committed");
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    drop(queue);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("caller"));
    }
    let commits = writer.await.expect("writer");
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    GroupCommit {
        p50: pct(0.50),
        p99: pct(0.99),
        per_commit: lat.len() as f64 / commits.max(1) as f64,
    }
}

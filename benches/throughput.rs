//! Throughput benchmark: N concurrent `incident raise` commands through the ledger, on SQLite and PostgreSQL.
//!
//! Prints commands/s, p50 and p99 latency, and the raw single-row-insert rate of the same
//! database measured in the same run (one transaction, so one fsync, per insert), so the
//! figures can be compared as a ratio on a noisy shared machine.
//!
//! A second run on a fresh database has the database refuse one command in `BENCH_POISON_EVERY`
//! (default 1,000): the cost of finding and failing that command alone (the writer splits its
//! batch in halves), as a ratio against the clean run.
//!
//! The ceiling beside it: the clean run's own rows (records and audit entries, their JSON made
//! beforehand) written again into a fresh database in batches of the size the writer made, with
//! nothing else: what the store alone does with these rows on this machine, so the ledger's
//! figure reads as a share of it. Both run with `serve`'s commit watcher, which on SQLite
//! checkpoints the WAL off the writer's path.
//!
//! The store alone is also timed as a group commit with the same number of concurrent callers
//! as the ledger had: each caller hands one command's rows (its record and audit entries, JSON
//! made beforehand) to a writer that commits whatever is queued, and waits for that commit. Its
//! p50 and p99 are the least latency any writer could give these rows at that concurrency on
//! this machine, so the ledger's p99 reads against it. A third clean run with 16 callers
//! (`BENCH_LATENCY_CALLERS`), as in the Slack target's "p99 at 16 clients", prints the same pair.
//!
//! `cargo bench --bench throughput` (PostgreSQL when `OPSLEDGER_TEST_POSTGRES_URL` is set).
//! `BENCH_COMMANDS` and `BENCH_CONCURRENCY` override the defaults.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::domain::reply::Outcome;
use opsledger::domain::report::{contribution, Rollups};
use opsledger::store::WriteSet;
use sqlx::Connection;

// The same allocator as the `opsledger` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    commands_per_sec: f64,
    p50: Duration,
    p99: Duration,
    raw_inserts_per_sec: f64,
    /// The store alone with the clean run's rows, commands/s (`store_alone`).
    store_alone: Option<f64>,
    /// The store alone as a group commit at the same concurrency (`store_alone_latency`).
    store_latency: Option<common::bench::GroupCommit>,
    batches_note: String,
}

/// Makes the database refuse any incident titled POISON, as a data error only the store sees.
async fn poison(url: &str) {
    use sqlx::Executor;
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        c.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.title LIKE 'POISON%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
        )
        .await
        .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        c.execute(
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.title LIKE 'POISON%' THEN RAISE EXCEPTION 'poisoned row'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .await
        .unwrap();
        c.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION poison()",
        )
        .await
        .unwrap();
    }
}

async fn drive(
    db: &common::TestDb,
    commands: usize,
    concurrency: usize,
    poison_every: Option<usize>,
) -> Figures {
    let store = db.store().await;
    let _watcher = common::bench::watch(&store);
    if poison_every.is_some() {
        poison(db.url()).await;
    }
    let clock = common::TestTime::at(common::TestTime::default_start());
    let (ledger, _writer) = common::ledger_on(store.clone(), Policy::default(), clock);
    // Warm up connections and caches.
    for _ in 0..50 {
        ledger
            .handle_text(common::actor("console:bench"), "incident raise warm up")
            .await;
    }
    let per_task = commands / concurrency;
    let busy_before = writer_seconds(&ledger);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for t in 0..concurrency {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let poisoned = poison_every.is_some_and(|k| (i * concurrency + t) % k == k - 1);
                let text = if poisoned {
                    format!("incident raise POISON {t}-{i} impact:high urgency:medium")
                } else {
                    format!("incident raise Bench {t}-{i} impact:high urgency:medium service:shop")
                };
                let s = Instant::now();
                let r = ledger
                    .handle_text(common::actor("console:bench"), &text)
                    .await;
                let want = if poisoned {
                    Outcome::Failed
                } else {
                    Outcome::Ok
                };
                assert_eq!(r.reply.outcome, want, "{text}: {}", r.reply.text);
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(commands);
    for t in tasks {
        lat.extend(t.await.expect("bench task"));
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let metric = |name: &str| common::bench::metric(&ledger, name);
    let batches = metric("opsledger_write_batch_commands_count");
    let writer_busy = (writer_seconds(&ledger) - busy_before) / elapsed.as_secs_f64();
    let per_commit = (lat.len() + 50) as f64 / batches.max(1.0);
    let (mut store_alone_rate, mut store_latency) = (None, None);
    if poison_every.is_none() {
        let rows = common::bench::run_rows(&store).await;
        if let Some(fresh) = db.fresh_like().await {
            store_alone_rate = Some(store_alone(&rows, &fresh, per_commit.round() as usize).await);
        }
        if let Some(fresh) = db.fresh_like().await {
            store_latency =
                Some(common::bench::store_alone_latency(rows, &fresh, concurrency, None).await);
        }
    }
    Figures {
        store_alone: store_alone_rate,
        store_latency,
        commands_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        raw_inserts_per_sec: common::bench::raw_insert_rate(db.url()).await,
        batches_note: format!(
            "{:.0} commands per commit on average, writer busy {:.0}% of the time",
            per_commit,
            writer_busy * 100.0
        ),
    }
}

/// What the store alone does with the rows a run wrote: every record and audit entry, their
/// JSON made, written into `into` in transactions of `batch` commands (with the counters and
/// rollups a batch writes), timed. Commands per second.
async fn store_alone(rows: &common::bench::RunRows, into: &common::TestDb, batch: usize) -> f64 {
    let common::bench::RunRows { records, audit } = rows;
    let batches = records.len().div_ceil(batch.max(1)).max(1);
    let per_batch = audit.len().div_ceil(batches).max(1);
    let mut sets = Vec::with_capacity(batches);
    let mut entries = audit.chunks(per_batch);
    for chunk in records.chunks(batch.max(1)) {
        let mut rollups = Rollups::default();
        for r in chunk {
            rollups.replace(None, contribution(r).as_ref());
        }
        let last = chunk.iter().filter_map(|r| r.number()).map(|id| id.n).max();
        sets.push(WriteSet {
            records: chunk
                .iter()
                .map(|r| (r.clone(), r.to_json_string()))
                .collect(),
            counters: last.map(|n| (Kind::Incident, n)).into_iter().collect(),
            audit: entries.next().map(<[_]>::to_vec).unwrap_or_default(),
            rollups,
            ..WriteSet::default()
        });
    }
    let store = into.store().await;
    let _watcher = common::bench::watch(&store);
    let started = Instant::now();
    for w in sets {
        let mut tx = store.begin().await.expect("begin");
        tx.write(w).await.expect("write");
        tx.commit().await.expect("commit");
    }
    records.len() as f64 / started.elapsed().as_secs_f64()
}

/// Seconds the ledger's writer has spent applying and committing batches so far.
fn writer_seconds(ledger: &opsledger::ledger::Ledger) -> f64 {
    ledger
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with("opsledger_write_batch_seconds_sum"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// What a printed run is read against.
enum Target {
    /// Commands per second.
    Rate(f64),
    /// p99 latency, in milliseconds.
    P99(f64),
    /// A smoke run in a test build.
    None,
}

fn print(backend: &str, f: &Figures, commands: usize, concurrency: usize, target: Target) {
    println!(
        "{backend:<10} {commands} incident raise, {concurrency} concurrent: {:>8.0} commands/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({})",
        f.commands_per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.batches_note
    );
    let p99_ms = f.p99.as_secs_f64() * 1e3;
    let verdict = match target {
        Target::Rate(t) if f.commands_per_sec >= t => format!("target {t:.0}/s: met"),
        Target::Rate(t) => format!("target {t:.0}/s: NOT met"),
        Target::P99(t) if p99_ms < t => format!("target p99 < {t} ms: met"),
        Target::P99(t) => format!("target p99 < {t} ms: NOT met"),
        Target::None => "smoke run in a test build; `cargo bench` gives the figures".to_string(),
    };
    println!(
        "{backend:<10} raw single-row inserts (one commit each): {:>8.0} rows/s  -> group commit is {:.1}x the raw insert rate; {verdict}",
        f.raw_inserts_per_sec,
        f.commands_per_sec / f.raw_inserts_per_sec,
    );
    if let Some(ceiling) = f.store_alone {
        println!(
            "{backend:<10} store alone, the run's rows written again in batches of the same size: {ceiling:>8.0} commands/s  -> the ledger makes {:.0}% of it",
            100.0 * f.commands_per_sec / ceiling,
        );
    }
    if let Some(g) = &f.store_latency {
        println!(
            "{backend:<10} store alone as a group commit, {concurrency} concurrent callers: p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.0} commands per commit)  -> the ledger's p99 is {:.1}x it",
            g.p50.as_secs_f64() * 1e3,
            g.p99.as_secs_f64() * 1e3,
            g.per_commit,
            f.p99.as_secs_f64() / g.p99.as_secs_f64(),
        );
    }
}

fn print_poisoned(backend: &str, clean: &Figures, poisoned: &Figures, every: usize) {
    println!(
        "{backend:<10} with 1 command in {every} refused by the database: {:>8.0} commands/s  p99 {:>7.2} ms  -> {:.0}% of the clean run ({})",
        poisoned.commands_per_sec,
        poisoned.p99.as_secs_f64() * 1e3,
        100.0 * poisoned.commands_per_sec / clean.commands_per_sec,
        poisoned.batches_note
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let commands = env_usize("BENCH_COMMANDS", if full { 20_000 } else { 512 });
    let concurrency = env_usize("BENCH_CONCURRENCY", if full { 256 } else { 32 }).max(1);
    let every = env_usize("BENCH_POISON_EVERY", if full { 1_000 } else { 100 }).max(2);
    let callers = env_usize("BENCH_LATENCY_CALLERS", 16).max(1);
    let latency_commands = env_usize("BENCH_LATENCY_COMMANDS", if full { 8_000 } else { 128 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sqlite = common::sqlite_db();
        let f = drive(&sqlite, commands, concurrency, None).await;
        let (rate, p99) = if full {
            (Target::Rate(25_000.0), Target::P99(5.0))
        } else {
            (Target::None, Target::None)
        };
        print("sqlite", &f, commands, concurrency, rate);
        let p = drive(&common::sqlite_db(), commands, concurrency, Some(every)).await;
        print_poisoned("sqlite", &f, &p, every);
        let l = drive(&common::sqlite_db(), latency_commands, callers, None).await;
        print("sqlite", &l, latency_commands, callers, p99);
        match common::postgres_db().await {
            Some(pg) => {
                let f = drive(&pg, commands, concurrency, None).await;
                let (rate, p99) = if full {
                    (Target::Rate(15_000.0), Target::P99(5.0))
                } else {
                    (Target::None, Target::None)
                };
                print("postgres", &f, commands, concurrency, rate);
                if let Some(pg2) = common::postgres_db().await {
                    let p = drive(&pg2, commands, concurrency, Some(every)).await;
                    print_poisoned("postgres", &f, &p, every);
                }
                if let Some(pg3) = common::postgres_db().await {
                    let l = drive(&pg3, latency_commands, callers, None).await;
                    print("postgres", &l, latency_commands, callers, p99);
                }
            }
            None => println!("postgres   skipped: set {} to measure it", common::PG_ENV),
        }
    });
}

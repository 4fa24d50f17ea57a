//! GitHub deliveries at scale: seeds 100,000 changes (one in ten linked from chat to a pull
//! request) and 10,000 releases straight through the store, then drives signed `pull_request`
//! deliveries through the real server (`app::serve`, `POST /github/webhook`) from concurrent
//! clients: four in five name a change in their title, one in five is about a pull request a
//! change links without naming it. Prints deliveries/s, p50 and p99, and the raw single-row
//! insert rate of the same database measured in the same run, to read the figure as a ratio.
//!
//! The ceiling beside it: what the run wrote (each delivery's change in its final state, the
//! audit entries, the outbox rows and the delivery IDs) written again, in transactions of the
//! size the writer made, into a fresh database seeded the same way, each transaction first
//! reading the changes it rewrites. That is the store alone with these rows at this size, with
//! nothing parsed, checked or rendered, so the deliveries/s read as a share of it.
//!
//! `cargo bench --bench github` (PostgreSQL too when `OPSLEDGER_TEST_POSTGRES_URL` is set).
//! `BENCH_CHANGES`, `BENCH_RELEASES`, `BENCH_DELIVERIES` and `BENCH_CONCURRENCY` override the
//! defaults. `cargo test --all-targets` runs it as a small smoke test.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use axum::{http::StatusCode, response::IntoResponse, Json, Router};
use chrono::Utc;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::audit::AuditEntry;
use opsledger::domain::command::ChangeType;
use opsledger::domain::ids::{Actor, Kind, RecordId};
use opsledger::domain::lifecycle::NewChange;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::{Change, Link, LinkKind, Record, Release};
use opsledger::store::{NewOutbox, Store, WriteSet};
use serde_json::{json, Value};
use sqlx::Connection;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-webhook-secret";
const REPO: &str = "acme/shop";

fn sha(n: u64) -> String {
    format!("{n:040x}")
}

/// Writes `changes` changes (every tenth linking pull request `REPO#n` from chat, n its
/// number) and `releases` releases of four repositories, 5,000 records a transaction.
async fn seed(store: &dyn Store, changes: u64, releases: u64) {
    let requester = Actor::parse("console:seed").unwrap();
    let now = Utc::now();
    let all: Vec<(Kind, u64)> = (1..=changes)
        .map(|n| (Kind::Change, n))
        .chain((1..=releases).map(|n| (Kind::Release, n)))
        .collect();
    for chunk in all.chunks(5_000) {
        let mut w = WriteSet::default();
        for &(kind, n) in chunk {
            let record = if kind == Kind::Change {
                let new = NewChange {
                    title: format!("Seeded change {n}"),
                    change_type: ChangeType::Normal,
                    risk: None,
                    service: Some(format!("svc-{}", n % 20)),
                    window: None,
                    template: None,
                };
                let mut c = Change::request(RecordId::new(kind, n), new, &requester, now);
                if n % 10 == 0 {
                    c.links.push(Link::pull_request(REPO, n));
                }
                Record::Change(c)
            } else {
                let mut r = Release::create(
                    RecordId::new(kind, n),
                    format!("v1.{n}.0"),
                    Some(format!("acme/repo-{}", n % 4)),
                    Vec::new(),
                    &requester,
                    now,
                );
                r.commits = vec![sha(n)];
                Record::Release(r)
            };
            let json = record.to_json_string();
            w.records.push((record, json));
        }
        let mut tx = store.begin().await.unwrap();
        tx.write(w).await.unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    let w = WriteSet {
        counters: vec![(Kind::Change, changes), (Kind::Release, releases)],
        ..WriteSet::default()
    };
    tx.write(w).await.unwrap();
    tx.commit().await.unwrap();
}

/// A GitHub REST API that accepts every call at once, for the outbox's statuses and comments.
async fn fake_github() -> String {
    async fn accept() -> axum::response::Response {
        let body = json!({"id": 1, "state": "pending", "context": "opsledger/change", "body": "", "name": ""});
        (StatusCode::CREATED, Json(body)).into_response()
    }
    common::fake::serve(Router::new().fallback(accept)).await
}

/// Delivery `i` of a client: a pull request naming change `named`, or (when `None`) pull
/// request `number`, which a change links from chat.
fn pull_request(number: u64, named: Option<u64>, head: u64) -> Vec<u8> {
    let title = match named {
        Some(c) => format!("CHG-{c}: bump the cache size"),
        None => "Bump the cache size".to_string(),
    };
    json!({
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "html_url": format!("https://github.com/{REPO}/pull/{number}"),
            "title": title,
            "body": "Part of the cache work.",
            "state": "open",
            "merged": false,
            "user": {"login": "octocat"},
            "head": {"ref": "cache-size", "sha": sha(head)},
            "base": {"ref": "main"}
        },
        "repository": {"full_name": REPO, "name": "shop", "owner": {"login": "acme"}},
        "sender": {"login": "octocat"}
    })
    .to_string()
    .into_bytes()
}

/// Posts one signed delivery, as GitHub does, and checks that it linked a change.
async fn deliver(client: &reqwest::Client, url: &str, id: String, body: Vec<u8>) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", id)
        .header(
            "X-Hub-Signature-256",
            common::github_signature(SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ok"]
            .as_str()
            .is_some_and(|t| t.contains(" is linked to CHG-")),
        "{answer}"
    );
}

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    raw_inserts_per_sec: f64,
    /// The run's writes again through the store alone, deliveries/s (`store_alone`).
    store_alone: Option<f64>,
    note: String,
}

/// The outbox rows a run queued, in order, as they were enqueued.
async fn outbox_rows(url: &str) -> Vec<(NewOutbox, String)> {
    type Row = (String, String, String, Option<String>, String, String);
    const SQL: &str =
        "SELECT platform, channel, op, record, payload, created_at FROM outbox ORDER BY id";
    let rows: Vec<Row> = if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&mut c).await.unwrap()
    };
    rows.into_iter()
        .map(|(platform, channel, op, record, payload, at)| {
            let payload = serde_json::from_str(&payload).unwrap();
            let item = NewOutbox {
                platform,
                channel,
                op,
                record,
                payload,
            };
            (item, at)
        })
        .collect()
}

/// What the run wrote into `from`, as transactions of `batch` deliveries to write again: the
/// changes each rewrites (read first, then written) and its write set.
type Replay = Vec<(Vec<String>, WriteSet)>;

async fn replay_of(from: &dyn Store, from_url: &str, batch: usize) -> (Replay, usize) {
    let mut audit: Vec<AuditEntry> = Vec::new();
    loop {
        let after = audit.last().map_or(0, |e| e.seq);
        let page = from.audit_after(after, 10_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        audit.extend(page);
    }
    let outbox = outbox_rows(from_url).await;
    let batches = audit.len().div_ceil(batch.max(1)).max(1);
    let mut outbox = outbox.chunks(outbox.len().div_ceil(batches).max(1));
    let mut sets = Vec::with_capacity(batches);
    for entries in audit.chunks(batch.max(1)) {
        let mut keys: Vec<String> = entries.iter().filter_map(|e| e.record.clone()).collect();
        // Deliveries here change changes only; any other record an entry names is not rewritten.
        keys.retain(|k| k.starts_with("CHG-"));
        keys.sort();
        keys.dedup();
        let mut w = WriteSet::default();
        for key in &keys {
            let record = from.get(Kind::Change, key).await.unwrap().unwrap();
            let json = record.to_json_string();
            w.records.push((record, json));
        }
        w.audit = entries.to_vec();
        w.outbox = outbox.next().map(<[_]>::to_vec).unwrap_or_default();
        w.deliveries = entries
            .iter()
            .map(|e| {
                (
                    "github".to_string(),
                    format!("replay-{}", e.seq),
                    e.at.clone(),
                )
            })
            .collect();
        sets.push((keys, w));
    }
    (sets, audit.len())
}

/// What the store alone does with a run's writes (see the top of the file): deliveries per
/// second, written into `into` seeded as the run's database was.
async fn store_alone(
    (sets, deliveries): (Replay, usize),
    into: &common::TestDb,
    (changes, releases): (u64, u64),
) -> f64 {
    let store = into.store().await;
    seed(&*store, changes, releases).await;
    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            let _ = store.watch_commits(std::sync::Arc::new(|| {})).await;
        })
    };
    let started = Instant::now();
    for (keys, w) in sets {
        let mut tx = store.begin().await.unwrap();
        let read = tx.get_many(Kind::Change, &keys).await.unwrap();
        assert_eq!(read.len(), keys.len(), "the replay's changes are seeded");
        tx.write(w).await.unwrap();
        tx.commit().await.unwrap();
    }
    let rate = deliveries as f64 / started.elapsed().as_secs_f64();
    watcher.abort();
    rate
}

async fn drive(
    db: &common::TestDb,
    changes: u64,
    releases: u64,
    deliveries: u64,
    concurrency: u64,
) -> Figures {
    let store = db.store().await;
    let t = Instant::now();
    seed(&*store, changes, releases).await;
    println!(
        "  seeded {changes} changes and {releases} releases in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // With a token, each linked pull request also queues its status and comment for GitHub's
    // API (a local fake here); `BENCH_GITHUB_API=0` leaves the API out, the webhook alone.
    let api = common::bench::env_u64("BENCH_GITHUB_API", 1) != 0;
    let args = ServeArgs {
        integrations: Integrations {
            github_webhook_secret: Some(SECRET.to_string().into()),
            github_token: api.then(|| "ghp_bench".to_string().into()),
            github_api_url: fake_github().await,
            ..Integrations::default()
        },
        ..common::serve_args(None)
    };
    let running = opsledger::app::serve(
        &args,
        store.clone(),
        Policy::default(),
        opsledger::app::system_time_source(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/github/webhook", running.addr);
    let client = reqwest::Client::new();
    // Warm up connections and caches.
    for i in 0..20 {
        let body = pull_request(900_000 + i, Some(i + 1), i);
        deliver(&client, &url, format!("warm-{i}"), body).await;
    }
    let per_task = deliveries / concurrency;
    let metric = |name: &str| common::bench::metric(&running.ledger, name);
    let (batches, busy) = (
        metric("opsledger_write_batch_commands_count"),
        metric("opsledger_write_batch_seconds_sum"),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task as usize);
            // A small LCG per client: which change or pull request each delivery is about.
            let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1);
            for i in 0..per_task {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let pick = (x >> 33) % changes + 1;
                let body = if i % 5 == 4 {
                    // A pull request linked from chat: found through the index only.
                    let linked = (pick / 10).clamp(1, changes / 10) * 10;
                    pull_request(linked, None, i)
                } else {
                    pull_request(1_000_000 + pick, Some(pick), i)
                };
                let s = Instant::now();
                deliver(&client, &url, format!("d-{t}-{i}"), body).await;
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let per_commit =
        lat.len() as f64 / (metric("opsledger_write_batch_commands_count") - batches).max(1.0);
    let note = format!(
        "{:.1} commands per commit, writer busy {:.0}% of the time, GitHub API {}, {} outbox items pending at the end",
        per_commit,
        100.0 * (metric("opsledger_write_batch_seconds_sum") - busy) / elapsed.as_secs_f64(),
        if api { "on" } else { "off" },
        metric("opsledger_outbox_pending"),
    );
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    // The deliveries did what they say: a chat-linked pull request keeps its change linked.
    let Some(Record::Change(c)) = store.get(Kind::Change, "CHG-10").await.unwrap() else {
        panic!("CHG-10 is stored")
    };
    assert!(c
        .links
        .iter()
        .any(|l| l.kind == LinkKind::PullRequest && l.number == Some(10)));
    let replay = replay_of(&*store, db.url(), per_commit.round() as usize).await;
    running.stop().await.unwrap();
    let store_alone = match db.fresh_like().await {
        Some(fresh) => Some(store_alone(replay, &fresh, (changes, releases)).await),
        None => None,
    };
    Figures {
        store_alone,
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        raw_inserts_per_sec: common::bench::raw_insert_rate(db.url()).await,
        note,
    }
}

fn print(
    backend: &str,
    f: &Figures,
    deliveries: u64,
    concurrency: u64,
    full: bool,
    target: Option<f64>,
) {
    println!(
        "{backend:<10} {deliveries} pull_request deliveries, {concurrency} concurrent clients: {:>7.0} deliveries/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({})",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.note,
    );
    let verdict = match target {
        Some(t) if f.per_sec >= t => format!("target {t:.0}/s: met"),
        Some(t) => format!("target {t:.0}/s: NOT met"),
        None if full => "no target set for this backend".to_string(),
        None => "smoke run in a test build; `cargo bench` gives the figures".to_string(),
    };
    println!(
        "{backend:<10} raw single-row inserts (one commit each): {:>8.0} rows/s  -> deliveries are {:.1}x the raw insert rate; {verdict}",
        f.raw_inserts_per_sec,
        f.per_sec / f.raw_inserts_per_sec,
    );
    if let Some(ceiling) = f.store_alone {
        println!(
            "{backend:<10} store alone, the run's writes again in transactions of the same size: {ceiling:>8.0} deliveries/s  -> the server makes {:.0}% of it",
            100.0 * f.per_sec / ceiling,
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let changes =
        common::bench::env_u64("BENCH_CHANGES", if full { 100_000 } else { 2_000 }).max(10);
    let releases = common::bench::env_u64("BENCH_RELEASES", if full { 10_000 } else { 200 });
    let deliveries = common::bench::env_u64("BENCH_DELIVERIES", if full { 20_000 } else { 200 });
    let concurrency = common::bench::env_u64("BENCH_CONCURRENCY", if full { 64 } else { 8 }).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = drive(
            &common::sqlite_db(),
            changes,
            releases,
            deliveries,
            concurrency,
        )
        .await;
        print(
            "sqlite",
            &f,
            deliveries,
            concurrency,
            full,
            full.then_some(5_000.0),
        );
        match common::postgres_db().await {
            Some(pg) => {
                let f = drive(&pg, changes, releases, deliveries, concurrency).await;
                print("postgres", &f, deliveries, concurrency, full, None);
            }
            None => println!("postgres   skipped: set {} to measure it", common::PG_ENV),
        }
    });
}

//! Storage over time: a steady stream of Slack commands, each with its delivery ID and an
//! incident card the outbox posts to a fake Slack, runs for a fixed time with short retention
//! ages. Every second it reads the SQLite file: what only the traffic leaves (delivered outbox
//! rows, delivery IDs) levels off once the retention age is reached, while the rest of the file
//! grows with the records and audit entries alone.
//!
//! `cargo bench --bench storage`; `BENCH_SECONDS`, `BENCH_RATE` (commands/s) and
//! `BENCH_RETENTION_MS` change the run. Under `cargo test --all-targets` it is a short smoke run.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use opsledger::config::{Integrations, RetentionArgs, ServeArgs};
use opsledger::domain::ids::Actor;
use opsledger::domain::policy::Policy;
use opsledger::integrations::slack::SlackSettings;
use opsledger::ledger::Delivery;
use serde_json::Value;
use sqlx::Connection;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Slack's Web API as far as the outbox uses it here: every call succeeds, as Slack answers.
async fn fake_slack(posts: Arc<AtomicU64>) -> String {
    let app = Router::new().route(
        "/api/{method}",
        post(move |Path(method): Path<String>, body: String| {
            let n = posts.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                let body: Value = serde_json::from_str(&body).unwrap_or_default();
                Json(common::fake::slack::ok(
                    &method,
                    &body,
                    &common::fake::slack::ts(n),
                    "C1",
                ))
            }
        }),
    );
    common::fake::serve(app).await
}

/// One reading of the database.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    /// Pages in use (file less free pages) and the WAL, in bytes.
    file: u64,
    /// Outbox and delivery-ID tables with their indexes, in bytes.
    traffic: u64,
    /// Records and audit entries with their indexes, in bytes.
    kept: u64,
    /// Delivered outbox rows (what retention purges) and rows still waiting to be sent.
    outbox_rows: i64,
    pending_rows: i64,
    delivery_rows: i64,
    audit_rows: i64,
}

async fn sample(url: &str, path: &std::path::Path) -> Sample {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let one = |sql: &'static str| sqlx::query_as::<_, (i64,)>(sql);
    let (pages,) = one("PRAGMA page_count").fetch_one(&mut c).await.unwrap();
    let (free,) = one("PRAGMA freelist_count")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let (page,) = one("PRAGMA page_size").fetch_one(&mut c).await.unwrap();
    let wal = std::fs::metadata(path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut s = Sample {
        file: ((pages - free) * page) as u64 + wal,
        ..Sample::default()
    };
    let sizes: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            .fetch_all(&mut c)
            .await
            .unwrap();
    for (name, bytes) in sizes {
        if name.starts_with("outbox") || name.contains("inbound_deliveries") {
            s.traffic += bytes as u64;
        } else if name.starts_with("records")
            || name.starts_with("audit")
            || name.contains("_records_")
            || name.contains("_audit_")
        {
            s.kept += bytes as u64;
        }
    }
    s.outbox_rows = one("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .0;
    s.pending_rows = one("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .0;
    s.delivery_rows = one("SELECT COUNT(*) FROM inbound_deliveries")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .0;
    s.audit_rows = one("SELECT COUNT(*) FROM audit")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .0;
    let _ = c.close().await;
    s
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = env_u64("BENCH_SECONDS", if full { 30 } else { 4 });
    // One incident channel takes every card, and its messages go out one after another (in
    // order, as Slack shows them): the rate is one the outbox keeps up with here, so what is
    // measured is what stays behind once delivered. (Slack itself takes about one message a
    // second per channel.)
    let rate = env_u64("BENCH_RATE", if full { 40 } else { 20 });
    let age = Duration::from_millis(env_u64(
        "BENCH_RETENTION_MS",
        if full { 5_000 } else { 1_000 },
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let posts = Arc::new(AtomicU64::new(0));
        let slack = fake_slack(posts.clone()).await;
        let db = common::sqlite_db();
        let path = std::path::PathBuf::from(db.url().trim_start_matches("sqlite://"));
        let store = db.store().await;
        let args = ServeArgs {
            integrations: Integrations {
                slack: SlackSettings {
                    slack_signing_secret: Some("bench".to_string().into()),
                    slack_bot_token: Some("xoxb-bench".to_string().into()),
                    slack_api_url: format!("{slack}/api"),
                    slack_incident_channel: Some("CINC".into()),
                    ..Default::default()
                },
                ..Integrations::default()
            },
            retention: RetentionArgs {
                outbox: age,
                deliveries: age,
            },
            ..common::serve_args(None)
        };
        let running = opsledger::app::serve(
            &args,
            store,
            Policy::default(),
            opsledger::app::system_time_source(),
        )
        .await
        .unwrap();
        let interval = args.retention.retention().interval();
        println!(
            "storage: {rate} Slack commands/s for {seconds} s, each an incident card through the \
             outbox; delivered outbox rows and delivery IDs kept {} ms (purged every {} ms)",
            age.as_millis(),
            interval.as_millis()
        );
        println!("   t   file MiB  traffic MiB  records+audit MiB  delivered rows  pending rows  delivery IDs  audit entries");

        // The load: `rate` commands a second, each with its own Slack trigger ID, spread evenly.
        let ledger = running.ledger.clone();
        let sent = Arc::new(AtomicU64::new(0));
        let load = tokio::spawn({
            let sent = sent.clone();
            async move {
                let start = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut tasks = tokio::task::JoinSet::new();
                while start.elapsed() < Duration::from_secs(seconds) {
                    tick.tick().await;
                    let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                    while sent.load(Ordering::Relaxed) < due {
                        let n = sent.fetch_add(1, Ordering::Relaxed);
                        let ledger = ledger.clone();
                        tasks.spawn(async move {
                            let handled = ledger
                                .handle_text_once(
                                    Actor::parse("slack:UBENCH").unwrap(),
                                    &format!("incident raise Storage bench {n} impact:low urgency:low"),
                                    Delivery::new("slack", format!("trigger-{n}")),
                                )
                                .await;
                            assert!(handled.reply.text.contains("INC-"), "{}", handled.reply.text);
                        });
                    }
                    while tasks.try_join_next().is_some() {}
                }
                while tasks.join_next().await.is_some() {}
            }
        });

        let start = Instant::now();
        let mut samples = Vec::new();
        while !load.is_finished() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = sample(db.url(), &path).await;
            let t = start.elapsed().as_secs_f64();
            println!(
                "{t:4.0} {:10.2} {:12.3} {:18.2} {:15} {:13} {:13} {:14}",
                mib(s.file),
                mib(s.traffic),
                mib(s.kept),
                s.outbox_rows,
                s.pending_rows,
                s.delivery_rows,
                s.audit_rows
            );
            samples.push((t, s));
        }
        load.await.unwrap();
        let commands = sent.load(Ordering::Relaxed);

        // Once rows older than the age are purged, the traffic tables hold about
        // rate × (age + interval) rows whatever the run's length; without retention they would
        // hold every command's.
        let settled = age.as_secs_f64() + 2.0 * interval.as_secs_f64() + 1.0;
        let late: Vec<&Sample> = samples.iter().filter(|(t, _)| *t > settled).map(|(_, s)| s).collect();
        let bound = (rate as f64 * (age + interval).as_secs_f64() * 2.0) as i64 + 100;
        let most = late.iter().map(|s| s.outbox_rows.max(s.delivery_rows)).max().unwrap_or(0);
        println!(
            "{commands} commands, {} Slack calls; after {settled:.1} s the traffic tables held at most \
             {most} rows (bound {bound}; {commands} without retention)",
            posts.load(Ordering::Relaxed)
        );
        if let (Some(first), Some(last)) = (late.first(), late.last()) {
            println!(
                "from then to the end: traffic {:.3} -> {:.3} MiB, records+audit {:.2} -> {:.2} MiB, \
                 file {:.2} -> {:.2} MiB",
                mib(first.traffic),
                mib(last.traffic),
                mib(first.kept),
                mib(last.kept),
                mib(first.file),
                mib(last.file)
            );
        }
        assert!(!late.is_empty(), "the run must outlast the retention age");
        assert!(most <= bound, "the traffic tables kept growing: {most} rows > {bound}");
        running.stop().await.unwrap();
    });
}

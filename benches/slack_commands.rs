//! Slack slash-command benchmark: N signed `POST /slack/commands` over HTTP to the real server, on SQLite and PostgreSQL.
//!
//! Starts `opsledger::app::serve` on 127.0.0.1:0 with Slack on (signing secret and bot token set,
//! the Web API pointed at an unused local port) but no incident or CAB channel, so nothing is
//! posted anywhere and the figures are the inbound path alone: HTTP, signature check, form
//! parsing, `Ledger::handle_text` (parse, rules, audit entry, group commit) and the Block Kit
//! answer. C concurrent HTTP clients each send their share of the N `/ops incident raise Bench ...`
//! commands, signed exactly as Slack signs them; every answer must be 200 and name an `INC-`
//! record, and afterwards the store must hold exactly N incidents.
//!
//! `cargo bench --bench slack_commands` (N=5000, C=64; PostgreSQL too when
//! `OPSLEDGER_TEST_POSTGRES_URL` is set). Under `cargo test --all-targets` it is a smoke test
//! (N=200, C=8). `BENCH_COMMANDS` and `BENCH_CONCURRENCY` override N and C.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use opsledger::app;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::integrations::slack::SlackSettings;
use opsledger::store::{ListQuery, Store};

// The same allocator as the `opsledger` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-signing-secret-0123456789ab";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Signs as Slack does: `v0=` + hex HMAC-SHA256(secret, "v0:{timestamp}:{body}").
fn sign(ts: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The form body Slack sends for `/ops <text>`.
fn slash_body(user: &str, text: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "legacy-verification-token"),
        ("team_id", "T0BENCH"),
        ("team_domain", "bench"),
        ("channel_id", "C0BENCH"),
        ("channel_name", "ops"),
        ("user_id", user),
        ("user_name", user),
        ("command", "/ops"),
        ("text", text),
        ("api_app_id", "A0BENCH"),
        ("is_enterprise_install", "false"),
        (
            "response_url",
            "https://hooks.slack.com/commands/T0BENCH/1/bench",
        ),
        // Slack gives every invocation its own trigger, and opsledger acts on each once.
        (
            "trigger_id",
            &format!("13345224609.738474920.{:x}", {
                use std::sync::atomic::{AtomicU64, Ordering};
                static N: AtomicU64 = AtomicU64::new(1);
                N.fetch_add(1, Ordering::Relaxed)
            }),
        ),
    ])
    .expect("form body")
}

/// Sends one signed slash command; returns the answer's `text` after checking the status.
async fn slash(client: &reqwest::Client, url: &str, user: &str, text: &str) -> String {
    let body = slash_body(user, text);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    let resp = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(&ts, &body))
        .body(body)
        .send()
        .await
        .expect("POST /slack/commands");
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.expect("a JSON answer");
    assert_eq!(status, 200, "`/ops {text}` answered {status}: {answer}");
    answer["text"].as_str().unwrap_or_default().to_string()
}

/// Incidents in the store, counted a page at a time through the store port.
async fn count_incidents(store: &dyn Store) -> usize {
    let mut q = ListQuery::new(Kind::Incident, 500);
    let mut n = 0;
    loop {
        let page = store.list(&q).await.expect("list incidents");
        n += page.len();
        match page.last() {
            Some(last) if page.len() == 500 => q.after = Some(last.key()),
            _ => return n,
        }
    }
}

struct Figures {
    requests_per_sec: f64,
    p50: Duration,
    p99: Duration,
    records: usize,
    outbox_pending: i64,
    per_commit: f64,
}

async fn drive(db: &common::TestDb, commands: usize, concurrency: usize) -> Figures {
    let store = db.store().await;
    let args = ServeArgs {
        bind: "127.0.0.1:0".parse().expect("bind address"),
        api_token: None,
        public_url: None,
        integrations: Integrations {
            slack: SlackSettings {
                slack_signing_secret: Some(SECRET.to_string().into()),
                slack_bot_token: Some("xoxb-bench".to_string().into()),
                // Nothing listens here, and with no channels set nothing is ever sent.
                slack_api_url: "http://127.0.0.1:9/api".into(),
                ..Default::default()
            },
            ..Integrations::default()
        },
        outbox: Default::default(),
        connections: Default::default(),
        retention: Default::default(),
        discord_defer_after: None,
    };
    let running = app::serve(
        &args,
        store.clone(),
        Policy::default(),
        app::system_time_source(),
    )
    .await
    .expect("serve");
    let url: Arc<str> = format!("http://{}/slack/commands", running.addr).into();

    // Warm up connections and caches with `help`, which touches no record.
    let clients: Vec<reqwest::Client> = (0..concurrency).map(|_| reqwest::Client::new()).collect();
    for c in &clients {
        let text = slash(c, &url, "U0WARM", "help").await;
        assert!(text.contains("commands"), "help answered: {text}");
    }
    let commits_before = metric(&running.ledger, "opsledger_write_batch_commands_count");

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for (t, client) in clients.into_iter().enumerate() {
        // Spread the remainder so exactly `commands` are sent.
        let share = commands / concurrency + usize::from(t < commands % concurrency);
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("U0BENCH{t:03}");
            let mut lat = Vec::with_capacity(share);
            for i in 0..share {
                let text = format!("incident raise Bench {t}-{i}");
                let s = Instant::now();
                let answer = slash(&client, &url, &user, &text).await;
                lat.push(s.elapsed());
                assert!(answer.contains("INC-"), "`/ops {text}` answered: {answer}");
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
    let commits = metric(&running.ledger, "opsledger_write_batch_commands_count") - commits_before;

    let records = count_incidents(store.as_ref()).await;
    let outbox_pending = store.outbox_pending().await.expect("outbox depth");
    running.stop().await.expect("clean stop");
    assert_eq!(
        records, commands,
        "every answered command must have left exactly one durable incident"
    );
    Figures {
        requests_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        records,
        outbox_pending,
        per_commit: lat.len() as f64 / commits.max(1.0),
    }
}

/// A counter or histogram sample from the ledger's metrics.
fn metric(ledger: &opsledger::ledger::Ledger, name: &str) -> f64 {
    ledger
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn print(backend: &str, f: &Figures, commands: usize, concurrency: usize, full: bool) {
    println!(
        "{backend:<10} {commands} signed POST /slack/commands, {concurrency} concurrent clients: {:>7.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  records {}  ({:.0} commands per commit; outbox pending {})",
        f.requests_per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.records,
        f.per_commit,
        f.outbox_pending,
    );
    if !full {
        println!("{backend:<10} smoke run in a test build; `cargo bench --bench slack_commands` gives the figures");
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let commands = env_usize("BENCH_COMMANDS", if full { 5_000 } else { 200 }).max(1);
    let concurrency = env_usize("BENCH_CONCURRENCY", if full { 64 } else { 8 }).clamp(1, commands);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sqlite = common::sqlite_db();
        let f = drive(&sqlite, commands, concurrency).await;
        print("sqlite", &f, commands, concurrency, full);
        match common::postgres_db().await {
            Some(pg) => {
                let f = drive(&pg, commands, concurrency).await;
                print("postgres", &f, commands, concurrency, full);
            }
            None => println!("postgres   skipped: set {} to measure it", common::PG_ENV),
        }
    });
}

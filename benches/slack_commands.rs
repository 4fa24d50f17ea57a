//! Slack slash-command benchmark: signed `POST /slack/commands` over HTTP to the `opsledger serve`
//! binary, on SQLite and PostgreSQL, with the server's memory.
//!
//! Runs the real binary as a child process with Slack on (signing secret and bot token set, the
//! Web API pointed at an unused local port) but no incident or CAB channel, so nothing is posted
//! anywhere and the figures are the inbound path alone: HTTP, signature check, form parsing,
//! `Ledger::handle_text_once` (parse, rules, delivery dedupe, audit entry, group commit) and the
//! Block Kit answer. The clients are bare HTTP/1.1 keep-alive connections (hyper) sending
//! requests signed before the clock starts, as `wrk` would with pre-signed requests, so the
//! figure is the server's, not the client library's. C connections send N
//! `/ops incident raise Bench ...` commands; every answer must be 200 and name an `INC-` record,
//! and afterwards the store must hold exactly one incident per command.
//!
//! Printed: the server's resident memory when idle (after start-up, before any request), then
//! for 16 and for 64 connections the requests/s, p50 and p99, and the resident memory after the
//! run and its peak. Beside them, the raw store in the same run: the 16-connection run's own rows
//! (each command's incident, audit entry and delivery ID) written again into a fresh database by
//! 16 callers through a bare group commit (`common::bench::store_alone_latency`), its p50 and p99:
//! the least latency these writes have at 16 clients on this machine, with no HTTP, signature
//! check, parsing, rules or rendering.
//!
//! `cargo bench --bench slack_commands` (N=20000 per run; PostgreSQL too when
//! `OPSLEDGER_TEST_POSTGRES_URL` is set). Under `cargo test --all-targets` it is a smoke test
//! (N=200). `BENCH_COMMANDS` overrides N.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use opsledger::domain::ids::Kind;
use opsledger::store::{ListQuery, Store};

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

/// One request as Slack sends `/ops <text>`: its form body and signature headers.
fn signed(user: &str, text: &str, trigger: u64) -> hyper::Request<Full<Bytes>> {
    let body = serde_urlencoded::to_string([
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
        ("trigger_id", &format!("13345224609.738474920.{trigger:x}")),
    ])
    .expect("form body");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    hyper::Request::post("/slack/commands")
        .header("host", "opsledger.bench")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(&ts, &body))
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

/// Resident memory and its peak of a process, in MiB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// `opsledger serve` on a free port with Slack on; returns it once `/healthz` answers.
fn start(db_url: &str) -> (Child, std::net::SocketAddr) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let child = common::scratch::bare(dir.path(), &["serve"])
        .env("OPSLEDGER_DATABASE_URL", db_url)
        .env("OPSLEDGER_BIND", addr.to_string())
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        // Nothing listens here, and with no channels set nothing is ever sent.
        .env("SLACK_API_URL", "http://127.0.0.1:9/api")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn opsledger serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// One keep-alive connection.
async fn connect(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

/// Sends one request; returns the answer's `text` after checking the status.
async fn send(
    conn: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> String {
    conn.ready().await.expect("connection ready");
    let resp = conn.send_request(req).await.expect("POST /slack/commands");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
    assert_eq!(status, 200, "answered {status}: {answer}");
    answer["text"].as_str().unwrap_or_default().to_string()
}

struct Run {
    requests_per_sec: f64,
    p50: Duration,
    p99: Duration,
    rss: f64,
    peak: f64,
}

/// `commands` signed slash commands over `connections` connections, signed beforehand.
async fn load(
    pid: u32,
    addr: std::net::SocketAddr,
    commands: usize,
    connections: usize,
    first_trigger: u64,
) -> Run {
    let mut shares: Vec<Vec<hyper::Request<Full<Bytes>>>> = Vec::new();
    let mut trigger = first_trigger;
    for c in 0..connections {
        let share = commands / connections + usize::from(c < commands % connections);
        let user = format!("U0BENCH{c:03}");
        shares.push(
            (0..share)
                .map(|i| {
                    trigger += 1;
                    signed(&user, &format!("incident raise Bench {c}-{i}"), trigger)
                })
                .collect(),
        );
    }
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(connect(addr).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut conn, reqs) in conns.into_iter().zip(shares) {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(reqs.len());
            for req in reqs {
                let s = Instant::now();
                let answer = send(&mut conn, req).await;
                lat.push(s.elapsed());
                assert!(answer.contains("INC-"), "answered: {answer}");
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(commands);
    for t in tasks {
        lat.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let (rss, peak) = rss(pid);
    Run {
        requests_per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        rss,
        peak,
    }
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

async fn drive(backend: &str, db: &common::TestDb, commands: usize) {
    // Migrated first, so the server's start-up is the same on both backends.
    db.store().await.close().await;
    let (mut child, addr) = start(db.url());
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss(pid);
    println!("{backend:<10} idle: resident memory {idle:.1} MiB");
    // Warm up: caches, the pool's connections, the allocator.
    let mut warm = connect(addr).await;
    for i in 0..16 {
        let text = send(&mut warm, signed("U0WARM", "help", u64::MAX - i)).await;
        assert!(text.contains("commands"), "help answered: {text}");
    }
    drop(warm);
    let mut sent = 0;
    let mut p99_at_16 = Duration::ZERO;
    for connections in [16, 64] {
        let r = load(pid, addr, commands, connections, (sent as u64) << 8).await;
        sent += commands;
        if connections == 16 {
            p99_at_16 = r.p99;
        }
        println!(
            "{backend:<10} {commands} signed POST /slack/commands over {connections:>2} connections: \
             {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  resident memory {:.1} MiB (peak {:.1} MiB)",
            r.requests_per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.rss,
            r.peak
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status}");
    let store = db.store().await;
    let records = count_incidents(store.as_ref()).await;
    assert_eq!(
        records, sent,
        "every answered command must have left exactly one durable incident"
    );
    // The raw store with the 16-connection run's rows (incidents 1 to `commands`).
    let mut rows = common::bench::run_rows(&store).await;
    store.close().await;
    rows.records
        .retain(|r| r.number().is_some_and(|id| id.n as usize <= commands));
    if let Some(fresh) = db.fresh_like().await {
        let g = common::bench::store_alone_latency(rows, &fresh, 16, Some("slack")).await;
        println!(
            "{backend:<10} store alone, the 16-connection run's rows through a bare group commit with 16 callers: \
             p50 {:>6.2} ms  p99 {:>6.2} ms  ({:.0} commands per commit)  -> the server's p99 at 16 connections is {:.2}x it",
            g.p50.as_secs_f64() * 1e3,
            g.p99.as_secs_f64() * 1e3,
            g.per_commit,
            p99_at_16.as_secs_f64() / g.p99.as_secs_f64(),
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let commands = env_usize("BENCH_COMMANDS", if full { 20_000 } else { 200 }).max(64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        drive("sqlite", &common::sqlite_db(), commands).await;
        match common::postgres_db().await {
            Some(pg) => drive("postgres", &pg, commands).await,
            None => println!("postgres   skipped: set {} to measure it", common::PG_ENV),
        }
        if !full {
            println!(
                "smoke run in a test build; `cargo bench --bench slack_commands` gives the figures"
            );
        }
    });
}

//! Alert webhook benchmark: Alertmanager notifications over HTTP to `POST /alerts/alertmanager` on the real server, on SQLite and PostgreSQL.
//!
//! Starts `opsledger::app::serve` on 127.0.0.1:0 with the alert endpoints on
//! (`Integrations.alerts_token` set) and no chat platform, so nothing is posted anywhere and the
//! figures are the inbound path alone: HTTP, the bearer token check, parsing the version-4
//! payload, `Ledger::handle` of `Command::Alert` (the group's record read and merged, the
//! incident raised or noted, audit entries, group commit) and the JSON answer.
//!
//! G alert groups of A alerts each (distinct fingerprints; labels `alertname`, `service`,
//! `instance`, `severity`, one in ten groups `critical` so its incident is major; a `summary`
//! annotation and a `generatorURL`), shaped exactly like Alertmanager 0.25's notifications in
//! `tests/fixtures/alerts/`. C concurrent HTTP clients share the groups. Phase 1, firing: one
//! notification per group with all its alerts firing (`endsAt` is Go's zero time), which raises
//! the group's incident; it runs in 4 equal slices, and the process's resident memory is read
//! after each, since memory must not grow with the number of groups beyond the store. Phase 2,
//! resolved: one notification per group with all its alerts resolved (same `startsAt`, `endsAt`
//! set). Every answer must be 200 and name the `alert-` group; afterwards the store must hold
//! exactly G incidents and G alert groups, every group resolved with its A alerts.
//!
//! Prints, per backend and phase, notifications/s, alerts/s (notifications x A) and p50/p99
//! latency; the resident memory after each firing slice; and one summary line per backend with
//! the overall alerts/s. Target: at least 5,000 alerts/s ingested on SQLite on a 2-core machine.
//!
//! `cargo bench --bench alerts` (G=1000, A=10, C=32; PostgreSQL too when
//! `OPSLEDGER_TEST_POSTGRES_URL` is set). Under `cargo test --all-targets` it is a smoke test
//! (G=50, A=4, C=8). `BENCH_ALERT_GROUPS`, `BENCH_ALERTS_PER_GROUP` and `BENCH_CONCURRENCY`
//! override G, A and C.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::bench::metric;
use opsledger::app;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Record;
use opsledger::store::{ListQuery, Store};
use serde_json::{json, Value};

// The same allocator as the `opsledger` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-alerts-token-0123456789abcdef";
/// How many equal slices the firing phase runs in, with the resident memory read after each.
const SLICES: usize = 4;
/// Alertmanager's "no end yet" (Go's zero time), as it sends it for a firing alert.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";
const ALERTNAMES: [&str; 4] = ["HighErrorRate", "HighLatency", "DiskFull", "InstanceDown"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's resident memory (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The body Alertmanager 0.25 sends for group `g` with all its `alerts` alerts firing, or all
/// resolved: its route groups by `alertname` and `service`.
fn notification(g: usize, alerts: usize, firing: bool, t0: DateTime<Utc>) -> String {
    let alertname = ALERTNAMES[g % ALERTNAMES.len()];
    let service = format!("svc-{g:05}");
    let severity = if g % 10 == 0 { "critical" } else { "warning" };
    let summary = format!("{alertname} on {service}");
    let status = if firing { "firing" } else { "resolved" };
    let generator_url = format!(
        "http://prometheus.bench:9090/graph?g0.expr=up%7Bservice%3D%22{service}%22%7D+%3D%3D+0&g0.tab=1"
    );
    // Each group's alerts began a few seconds apart, an hour ago; they all ended 30 minutes later.
    let group_start = t0 + chrono::Duration::milliseconds(g as i64);
    let ends_at = if firing {
        GO_ZERO_TIME.to_string()
    } else {
        rfc3339(group_start + chrono::Duration::minutes(30))
    };
    let items: Vec<Value> = (0..alerts)
        .map(|i| {
            json!({
                "status": status,
                "labels": {
                    "alertname": alertname,
                    "instance": format!("{service}-{i}:8080"),
                    "service": service,
                    "severity": severity,
                },
                "annotations": { "summary": summary },
                "startsAt": rfc3339(group_start + chrono::Duration::seconds(3 * i as i64)),
                "endsAt": ends_at,
                "generatorURL": generator_url,
                "fingerprint": format!("{g:08x}{i:08x}"),
            })
        })
        .collect();
    json!({
        "receiver": "opsledger",
        "status": status,
        "alerts": items,
        "groupLabels": { "alertname": alertname, "service": service },
        "commonLabels": { "alertname": alertname, "service": service, "severity": severity },
        "commonAnnotations": { "summary": summary },
        "externalURL": "http://alertmanager.bench:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\", service=\"{service}\"}}"),
        "truncatedAlerts": 0,
    })
    .to_string()
}

/// Sends one notification as Alertmanager does; returns the status and the JSON answer.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
) -> (reqwest::StatusCode, Value) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Alertmanager/0.25.0")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .expect("POST /alerts/alertmanager");
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    (status, answer)
}

/// Sends group `g`'s notification; checks the answer; returns its latency.
async fn notify(
    client: &reqwest::Client,
    url: &str,
    g: usize,
    alerts: usize,
    firing: bool,
    t0: DateTime<Utc>,
) -> Duration {
    let body = notification(g, alerts, firing, t0);
    let started = Instant::now();
    let (status, answer) = post(client, url, TOKEN, body).await;
    let lat = started.elapsed();
    let phase = if firing { "firing" } else { "resolved" };
    assert_eq!(status, 200, "group {g} {phase} answered {status}: {answer}");
    assert_eq!(answer["outcome"], "ok", "group {g} {phase}: {answer}");
    assert!(
        answer["group"]
            .as_str()
            .is_some_and(|k| k.starts_with("alert-")),
        "group {g} {phase} names no alert group: {answer}"
    );
    let text = answer["ok"].as_str().unwrap_or_default();
    let expected = if firing {
        " raised from alert-"
    } else {
        " resolved"
    };
    assert!(text.contains(expected), "group {g} {phase}: {answer}");
    lat
}

/// Sends the notification of every group in `groups`, spread over the clients (client `t`
/// takes every C-th group); returns the latencies and the wall time.
async fn send_all(
    clients: &[reqwest::Client],
    url: &Arc<str>,
    groups: std::ops::Range<usize>,
    alerts: usize,
    firing: bool,
    t0: DateTime<Utc>,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for (t, client) in clients.iter().enumerate() {
        let (client, url) = (client.clone(), url.clone());
        let mine: Vec<usize> = groups.clone().skip(t).step_by(clients.len()).collect();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(mine.len());
            for g in mine {
                lat.push(notify(&client, &url, g, alerts, firing, t0).await);
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(groups.len());
    for t in tasks {
        lat.extend(t.await.expect("bench task"));
    }
    (lat, started.elapsed())
}

/// One phase's figures.
struct Phase {
    notifications: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Phase {
    fn new(mut lat: Vec<Duration>, elapsed: Duration) -> Phase {
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Phase {
            notifications: lat.len(),
            elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
        }
    }

    fn per_sec(&self) -> f64 {
        self.notifications as f64 / self.elapsed.as_secs_f64()
    }
}

/// What the store holds after the run.
struct Stored {
    incidents: usize,
    groups: usize,
    resolved: usize,
}

/// Counts the records of `kind`, a page at a time through the store port, checking each with
/// `check`; returns how many there are and how many `check` accepted.
async fn count(store: &dyn Store, kind: Kind, check: impl Fn(&Record) -> bool) -> (usize, usize) {
    let mut q = ListQuery::new(kind, 500);
    let (mut n, mut ok) = (0, 0);
    loop {
        let page = store.list(&q).await.expect("list records");
        n += page.len();
        ok += page.iter().filter(|r| check(r)).count();
        match page.last() {
            Some(last) if page.len() == 500 => q.after = Some(last.key()),
            _ => return (n, ok),
        }
    }
}

struct Figures {
    firing: Phase,
    resolved: Phase,
    /// Resident memory before the run, after each firing slice, and after the resolved phase.
    rss_before: u64,
    rss_slices: Vec<u64>,
    rss_after: u64,
    stored: Stored,
    per_commit: f64,
    outbox_pending: i64,
}

async fn drive(db: &common::TestDb, groups: usize, alerts: usize, concurrency: usize) -> Figures {
    let store = db.store().await;
    let args = ServeArgs {
        bind: "127.0.0.1:0".parse().expect("bind address"),
        api_token: None,
        public_url: None,
        integrations: Integrations {
            alerts_token: Some(TOKEN.to_string().into()),
            ..Integrations::default()
        },
        outbox: Default::default(),
        connections: Default::default(),
        retention: Default::default(),
        sessions: Default::default(),
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
    let url: Arc<str> = format!("http://{}/alerts/alertmanager", running.addr).into();

    // Warm up the connections with a notification carrying the wrong token: refused before
    // parsing, so it records nothing.
    let clients: Vec<reqwest::Client> = (0..concurrency).map(|_| reqwest::Client::new()).collect();
    let t0 = Utc::now() - chrono::Duration::hours(1);
    for c in &clients {
        let (status, answer) =
            post(c, &url, "wrong-token", notification(0, alerts, true, t0)).await;
        assert_eq!(status, 401, "a wrong token answered {status}: {answer}");
    }
    let commits_before = metric(&running.ledger, "opsledger_write_batch_commands_count");
    let rss_before = rss_kib();

    // Phase 1: every group fires, in equal slices with the resident memory read after each.
    let slices = SLICES.min(groups);
    let mut lat = Vec::with_capacity(groups);
    let mut elapsed = Duration::ZERO;
    let mut rss_slices = Vec::with_capacity(slices);
    for s in 0..slices {
        let range = groups * s / slices..groups * (s + 1) / slices;
        let (l, e) = send_all(&clients, &url, range, alerts, true, t0).await;
        lat.extend(l);
        elapsed += e;
        rss_slices.push(rss_kib());
    }
    let firing = Phase::new(lat, elapsed);

    // Phase 2: every group's alerts resolve.
    let (lat, elapsed) = send_all(&clients, &url, 0..groups, alerts, false, t0).await;
    let resolved = Phase::new(lat, elapsed);
    let rss_after = rss_kib();
    let commits = metric(&running.ledger, "opsledger_write_batch_commands_count") - commits_before;

    let (incidents, _) = count(store.as_ref(), Kind::Incident, |_| true).await;
    let (group_records, resolved_groups) = count(store.as_ref(), Kind::Alert, |r| {
        r.status() == "resolved"
            && matches!(r, Record::Alert(g) if g.alerts.len() == alerts && g.incident.is_some())
    })
    .await;
    let outbox_pending = store.outbox_pending().await.expect("outbox depth");
    running.stop().await.expect("clean stop");
    assert_eq!(
        incidents, groups,
        "every alert group must have raised exactly one durable incident"
    );
    assert_eq!(
        group_records, groups,
        "every alert group must have exactly one durable record"
    );
    assert_eq!(
        resolved_groups, groups,
        "every alert group must be resolved, with its {alerts} alerts and its incident"
    );
    Figures {
        per_commit: (firing.notifications + resolved.notifications) as f64 / commits.max(1.0),
        firing,
        resolved,
        rss_before,
        rss_slices,
        rss_after,
        stored: Stored {
            incidents,
            groups: group_records,
            resolved: resolved_groups,
        },
        outbox_pending,
    }
}

fn print(
    backend: &str,
    f: &Figures,
    groups: usize,
    alerts: usize,
    concurrency: usize,
    full: bool,
    target: Option<f64>,
) {
    for (name, p) in [("firing", &f.firing), ("resolved", &f.resolved)] {
        println!(
            "{backend:<10} {name:<8} {} notifications x {alerts} alerts, {concurrency} concurrent clients: {:>7.0} notifications/s {:>8.0} alerts/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            p.notifications,
            p.per_sec(),
            p.per_sec() * alerts as f64,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
        );
    }
    let slices: Vec<String> = f
        .rss_slices
        .iter()
        .enumerate()
        .map(|(i, kib)| format!("{}/{}: {:.1} MiB", i + 1, f.rss_slices.len(), mib(*kib)))
        .collect();
    let first = f.rss_slices.first().copied().unwrap_or(0).max(1);
    let last = f.rss_slices.last().copied().unwrap_or(0);
    println!(
        "{backend:<10} resident memory: {:.1} MiB before; after firing {}; last/first slice {:.2}x; {:.1} MiB after resolving",
        mib(f.rss_before),
        slices.join(", "),
        last as f64 / first as f64,
        mib(f.rss_after),
    );
    let notifications = f.firing.notifications + f.resolved.notifications;
    let elapsed = f.firing.elapsed + f.resolved.elapsed;
    let alerts_per_sec = (notifications * alerts) as f64 / elapsed.as_secs_f64();
    let verdict = match target {
        Some(t) if alerts_per_sec >= t => format!("; target {t:.0} alerts/s: met"),
        Some(t) => format!("; target {t:.0} alerts/s: NOT met"),
        None => String::new(),
    };
    println!(
        "{backend:<10} {groups} alert groups x {alerts} alerts, fired then resolved ({notifications} authenticated POST /alerts/alertmanager, {concurrency} concurrent clients): {alerts_per_sec:>8.0} alerts/s overall  records {} incidents, {} alert groups ({} resolved)  ({:.0} notifications per commit; outbox pending {}){verdict}",
        f.stored.incidents,
        f.stored.groups,
        f.stored.resolved,
        f.per_commit,
        f.outbox_pending,
    );
    if !full {
        println!(
            "{backend:<10} smoke run in a test build; `cargo bench --bench alerts` gives the figures"
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let groups = env_usize("BENCH_ALERT_GROUPS", if full { 1_000 } else { 50 }).max(1);
    let alerts = env_usize("BENCH_ALERTS_PER_GROUP", if full { 10 } else { 4 }).max(1);
    let concurrency = env_usize("BENCH_CONCURRENCY", if full { 32 } else { 8 }).clamp(1, groups);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sqlite = common::sqlite_db();
        let f = drive(&sqlite, groups, alerts, concurrency).await;
        let target = full.then_some(5_000.0);
        print("sqlite", &f, groups, alerts, concurrency, full, target);
        match common::postgres_db().await {
            Some(pg) => {
                let f = drive(&pg, groups, alerts, concurrency).await;
                print("postgres", &f, groups, alerts, concurrency, full, None);
            }
            None => println!("postgres   skipped: set {} to measure it", common::PG_ENV),
        }
    });
}

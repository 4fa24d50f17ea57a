//! Shared test helpers: fresh SQLite and PostgreSQL databases, a pinned clock, and `spawn_app()`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use opsledger::app::{self, Running};
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::ids::Actor;
use opsledger::domain::policy::Policy;
use opsledger::domain::reply::{Outcome, Reply};
use opsledger::ledger::{Ledger, TimeSource};
use opsledger::store::Store;
use tokio::task::JoinHandle;

pub mod alertmanager;
pub mod bench;
pub mod fake;
pub mod scratch;
pub mod webdriver;

/// The variable naming the PostgreSQL server the conformance tests use.
pub const PG_ENV: &str = "OPSLEDGER_TEST_POSTGRES_URL";

/// A fresh, empty database: a temporary SQLite file or a new PostgreSQL database.
pub struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh, empty database on the same backend (`None` when PostgreSQL is not configured).
    pub async fn fresh_like(&self) -> Option<TestDb> {
        if self.url.starts_with("sqlite") {
            Some(sqlite_db())
        } else {
            postgres_db().await
        }
    }

    /// Opens the store (running migrations).
    pub async fn store(&self) -> Arc<dyn Store> {
        app::open_store(&self.url).await.expect("open test store")
    }
}

pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("opsledger.db").display());
    TestDb {
        url,
        _dir: Some(dir),
    }
}

/// A new database on the server `OPSLEDGER_TEST_POSTGRES_URL` names. Without the variable the
/// PostgreSQL half of a conformance test is skipped locally, but fails under CI (`CI` set).
pub async fn postgres_db() -> Option<TestDb> {
    let Ok(admin) = std::env::var(PG_ENV) else {
        assert!(
            std::env::var("CI").is_err(),
            "{PG_ENV} must be set in CI: the PostgreSQL conformance tests may not be skipped"
        );
        eprintln!("skipping the PostgreSQL half: {PG_ENV} is unset");
        return None;
    };
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}={admin}: {e}"));
    let name = format!("opsledger_t_{}", uuid_ish());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = match admin.rfind('/') {
        Some(i) if admin[..i].contains("://") && i > admin.find("://").unwrap_or(0) + 2 => {
            admin[..i].to_string()
        }
        _ => admin.clone(),
    };
    let query = admin
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Some(TestDb {
        url: format!("{base}/{name}{query}"),
        _dir: None,
    })
}

fn uuid_ish() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A time source tests move by hand.
pub struct TestTime(Mutex<DateTime<Utc>>);

impl TestTime {
    pub fn at(t: DateTime<Utc>) -> Arc<TestTime> {
        Arc::new(TestTime(Mutex::new(t)))
    }

    pub fn default_start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    pub fn advance(&self, d: chrono::Duration) {
        let mut t = self.0.lock().unwrap();
        *t += d;
    }
}

impl TimeSource for TestTime {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// The rules the tests' team works under: who sits on the CAB, who manages what.
pub const TEAM_POLICY: &str = r#"
[roles]
admin = ["console:root", "console:auditor"]
cab = ["console:cab1", "console:cab2", "console:cab3"]
ecab = ["console:cab1"]
change-manager = ["console:alice"]
incident-manager = ["console:alice"]
"#;

pub fn team_policy() -> Policy {
    Policy::from_toml(TEAM_POLICY).expect("team policy")
}

pub fn actor(s: &str) -> Actor {
    Actor::parse(s).expect("test actor")
}

/// Writes records straight through the store, in one transaction, as a batch would.
pub async fn write_records(store: &dyn Store, records: Vec<opsledger::domain::records::Record>) {
    let mut tx = store.begin().await.expect("begin");
    let w = opsledger::store::WriteSet {
        records: records
            .into_iter()
            .map(|r| {
                let json = r.to_json_string();
                (r, json)
            })
            .collect(),
        ..opsledger::store::WriteSet::default()
    };
    tx.write(w).await.expect("write");
    tx.commit().await.expect("commit");
}

/// Snapshot filters for what varies between runs: wall-clock times, Slack message timestamps
/// and countdowns.
pub const SNAPSHOT_FILTERS: &[(&str, &str)] = &[
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}| UTC)?",
        "[time]",
    ),
    (r"\b\d{10}\.\d{6}\b", "[ts]"),
    (r"\((in|overdue by) [0-9dhms ]+\)", "($1 [duration])"),
];

/// Runs a chat command as `who`; returns the whole reply.
pub async fn run(ledger: &Ledger, who: &str, text: &str) -> Reply {
    ledger.handle_text(actor(who), text).await.reply
}

/// Runs a chat command that must succeed; returns the reply's text.
pub async fn ok(ledger: &Ledger, who: &str, text: &str) -> String {
    let r = run(ledger, who, text).await;
    assert_eq!(r.outcome, Outcome::Ok, "`{text}` by {who}: {}", r.text);
    r.text
}

/// Runs a chat command that the process rule `rule` must refuse; returns the message.
pub async fn refused(ledger: &Ledger, who: &str, text: &str, rule: &str) -> String {
    let r = run(ledger, who, text).await;
    assert_eq!(
        r.outcome,
        Outcome::Refused { rule: rule.into() },
        "`{text}` by {who}: {}",
        r.text
    );
    r.text
}

/// A ledger on a store, with a test clock, without the HTTP server.
pub fn ledger_on(
    store: Arc<dyn Store>,
    policy: Policy,
    clock: Arc<TestTime>,
) -> (Ledger, JoinHandle<()>) {
    app::start_ledger(store, policy, clock, "http://opsledger.test".into())
}

/// Serves on 127.0.0.1:0 with a fresh SQLite database, these platform settings and rules, and
/// the system clock (platform signatures carry real time); returns the server and its base URL.
pub async fn serve_platforms(
    integrations: Integrations,
    rules: &str,
    discord_defer_after: Option<std::time::Duration>,
) -> (Running, String, TestDb) {
    let db = sqlite_db();
    let args = ServeArgs {
        integrations,
        discord_defer_after,
        ..serve_args(None)
    };
    let (running, base) = serve_on(&db, &args, rules).await;
    (running, base, db)
}

/// Serves on `db` with these settings and rules, and the system clock (platform signatures
/// carry real time); returns the server and its base URL.
pub async fn serve_on(db: &TestDb, args: &ServeArgs, rules: &str) -> (Running, String) {
    serve_on_clock(db, args, rules, app::system_time_source()).await
}

/// As `serve_on`, on the given clock (a `TestTime` moves escalation waits and outbox retries).
pub async fn serve_on_clock(
    db: &TestDb,
    args: &ServeArgs,
    rules: &str,
    time: Arc<dyn TimeSource>,
) -> (Running, String) {
    let running = app::serve(
        args,
        db.store().await,
        Policy::from_toml(rules).expect("test rules"),
        time,
    )
    .await
    .expect("serve");
    let base = format!("http://{}", running.addr);
    (running, base)
}

/// A fresh Slack `trigger_id`: Slack gives every invocation and interaction its own, and
/// opsledger acts on each once.
pub fn trigger_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "13345224609.{}.{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The current Unix time in seconds, as platforms stamp signed requests.
pub fn now_ts() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Signs exactly as Slack does: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}").
pub fn slack_signature(secret: &str, ts: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A form POST to a Slack endpoint, signed as Slack signs it, timestamped now.
pub fn slack_post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: String,
) -> reqwest::RequestBuilder {
    let ts = now_ts();
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", slack_signature(secret, ts, &body))
        .body(body)
}

/// The keys (`INC-1`, ...) of the records a list query finds, in its order.
pub async fn keys(store: &dyn Store, q: &opsledger::store::ListQuery) -> Vec<String> {
    store
        .list(q)
        .await
        .unwrap()
        .iter()
        .map(opsledger::domain::records::Record::key)
        .collect()
}

/// Signs exactly as GitHub does: `sha256=` + hex HMAC-SHA256 of the raw body.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A server on 127.0.0.1:0 with a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub db: TestDb,
    pub clock: Arc<TestTime>,
}

impl TestApp {
    pub fn ledger(&self) -> &Ledger {
        &self.running.as_ref().expect("running").ledger
    }

    /// Runs a chat command as `actor` through the ledger and returns the reply text.
    pub async fn exec(&self, actor_id: &str, text: &str) -> opsledger::domain::reply::Reply {
        self.ledger().handle_text(actor(actor_id), text).await.reply
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }
}

pub fn serve_args(token: Option<&str>) -> ServeArgs {
    ServeArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        api_token: token.map(|t| t.to_string().into()),
        public_url: None,
        integrations: Integrations::default(),
        outbox: Default::default(),
        connections: Default::default(),
        retention: Default::default(),
        sessions: Default::default(),
        discord_defer_after: None,
    }
}

/// Starts the app on a fresh SQLite database and port 0, with no API token.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(sqlite_db(), None).await
}

pub async fn spawn_app_with(db: TestDb, token: Option<&str>) -> TestApp {
    let clock = TestTime::at(TestTime::default_start());
    let store = db.store().await;
    let running = app::serve(&serve_args(token), store, team_policy(), clock.clone())
        .await
        .expect("serve");
    let addr = running.addr;
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        running: Some(running),
        db,
        clock,
    }
}

/// Generates, for each named scenario `async fn name(db: TestDb)`, one test per backend.
#[allow(unused_macros)]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::sqlite_db()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = crate::common::postgres_db().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

//! The fault suite: the real `opsledger serve` and `exec` binaries against a local fake Slack,
//! on SQLite and PostgreSQL. A kill -9 under load of signed slash commands loses no
//! acknowledged record; a deadline set by another process is acted on within a second of its
//! due time, once, with two replicas too; and `exec` queues the same messages as chat, which a
//! running `serve` delivers (or the next one to start).
use crate::common::{self, fake};

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::{now_ts, slack_signature, TestDb};
use opsledger::domain::ids::Kind;
use opsledger::domain::records::Record;
use opsledger::store::{ListQuery, Store};
use serde_json::Value;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["console:cab1", "console:cab2"]
incident-manager = ["console:alice"]

[sla.P1]
respond = "3s"
resolve = "1h"
"#;

/// A fake Slack Web API that answers as Slack does: HTTP 200 with `{"ok": true, ...}`.
#[derive(Clone, Default)]
struct FakeSlack {
    rec: common::fake::Recorder<(String, Value)>,
    ts: Arc<Mutex<u64>>,
}

impl std::ops::Deref for FakeSlack {
    type Target = common::fake::Recorder<(String, Value)>;
    fn deref(&self) -> &Self::Target {
        &self.rec
    }
}

impl FakeSlack {
    async fn start() -> (FakeSlack, String) {
        let fake = FakeSlack::default();
        async fn method(
            State((fake, name)): State<(FakeSlack, &'static str)>,
            body: String,
        ) -> axum::response::Response {
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            fake.push((name.to_string(), body.clone()));
            let ts = {
                let mut n = fake.ts.lock().unwrap();
                *n += 1;
                fake::slack::ts(*n)
            };
            Json(fake::slack::ok(name, &body, &ts, &format!("CINC{ts}"))).into_response()
        }
        let mut app = Router::new();
        for name in [
            "chat.postMessage",
            "chat.update",
            "chat.postEphemeral",
            "conversations.create",
            "conversations.invite",
        ] {
            app = app.route(
                &format!("/api/{name}"),
                post(method).with_state((fake.clone(), name)),
            );
        }
        let base = format!("{}/api", fake::serve(app).await);
        (fake, base)
    }

    /// Waits until `pred` holds for the calls so far.
    async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&[(String, Value)]) -> bool,
    ) {
        fake::until(
            what,
            within,
            || pred(&self.calls()).then_some(()),
            || self.calls(),
        )
        .await
    }
}

/// A scratch directory with the rules file, and the settings every process here shares.
struct Site {
    dir: tempfile::TempDir,
    db_url: String,
    slack_api: String,
}

impl Site {
    fn new(db: &TestDb, slack_api: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
        Site {
            dir,
            db_url: db.url().to_string(),
            slack_api: slack_api.to_string(),
        }
    }

    /// `opsledger ARGS` with this site's settings and none of the host's.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = common::scratch::bare(self.dir.path(), args);
        cmd.env("OPSLEDGER_DATABASE_URL", &self.db_url)
            .env("OPSLEDGER_POLICY", self.dir.path().join("rules.toml"))
            .env("SLACK_SIGNING_SECRET", SECRET)
            .env("SLACK_BOT_TOKEN", "xoxb-test")
            .env("SLACK_API_URL", &self.slack_api)
            .env("SLACK_INCIDENT_CHANNEL", "CINCIDENTS")
            .env("SLACK_CAB_CHANNEL", "CCAB")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `serve` on a free port and waits until it answers; returns it and its base URL.
    fn serve(&self) -> Serve {
        let mut child = self
            .cmd(&["serve"])
            .env("OPSLEDGER_BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        std::thread::spawn({
            let log = log.clone();
            move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !sent {
                        if let Some(addr) = line
                            .split("addr=")
                            .nth(1)
                            .and_then(|rest| rest.split_whitespace().next())
                        {
                            let _ = tx.send(addr.to_string());
                            sent = true;
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "serve never said where it listens:\n{}",
                    log.lock().unwrap()
                )
            });
        Serve {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    fn exec(&self, text: &str) -> std::process::Output {
        self.exec_as("console:alice", text)
    }

    fn exec_as(&self, actor: &str, text: &str) -> std::process::Output {
        self.cmd(&["exec", "--as", actor, text])
            .output()
            .expect("run exec")
    }
}

struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok_output(o: &std::process::Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "exec failed: {}{}",
        out,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A signed slash command, as Slack sends it.
async fn slash(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    text: &str,
    trigger: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = serde_urlencoded::to_string([
        ("token", "x"),
        ("team_id", "T1"),
        ("team_domain", "acme"),
        ("channel_id", "C1"),
        ("channel_name", "ops"),
        ("user_id", user),
        ("user_name", "u"),
        ("command", "/ops"),
        ("text", text),
        ("response_url", "http://127.0.0.1:9/respond"),
        ("trigger_id", trigger),
    ])
    .unwrap();
    let ts = now_ts();
    client
        .post(format!("{base}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", slack_signature(SECRET, ts, &body))
        .body(body)
        .send()
        .await
}

async fn all_incidents(store: &dyn Store) -> Vec<Record> {
    store
        .list(&ListQuery::new(Kind::Incident, 100_000))
        .await
        .unwrap()
}

/// kill -9 in the middle of 2,400 signed slash commands over 16 connections: after a restart
/// every acknowledged incident exists, the chain verifies, and the load goes on.
async fn kill_9_under_load_loses_no_acknowledged_record(db: TestDb) {
    let (_slack, api) = FakeSlack::start().await;
    let site = Site::new(&db, &api);
    let mut serve = site.serve();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const TOTAL: usize = 2_400;
    const KILL_AT: usize = 1_000;
    let run_load = |base: String, from: usize, to: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
        for _ in 0..16 {
            let (client, base, acked, next, sent) = (
                client.clone(),
                base.clone(),
                acked.clone(),
                next.clone(),
                sent.clone(),
            );
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= to {
                        return;
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let text = format!("incident raise load {i} impact:low urgency:low");
                    let Ok(resp) = slash(&client, &base, "U0LOAD", &text, &format!("t.{i}")).await
                    else {
                        continue; // not acknowledged: the server was gone
                    };
                    if resp.status() != 200 {
                        continue;
                    }
                    let Ok(body) = resp.json::<Value>().await else {
                        continue;
                    };
                    let text = body.to_string();
                    if text.contains("INC-") {
                        acked.lock().unwrap().insert(format!("load {i}"));
                    }
                }
            });
        }
        tasks
    };
    let mut first = run_load(serve.base.clone(), 0, TOTAL);
    // Kill once about KILL_AT commands were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < KILL_AT {
        assert!(
            Instant::now() < deadline,
            "the load is too slow:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    serve.kill9();
    while first.join_next().await.is_some() {}
    let before_restart = acked.lock().unwrap().len();
    assert!(before_restart >= KILL_AT);
    assert!(before_restart < TOTAL, "the kill came after the whole load");

    // Restart: every acknowledged record is there and the chain verifies.
    let verify = site.cmd(&["audit", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let serve = site.serve();
    // The rest of the load on the restarted server: trigger ids it never saw are acted on.
    let resumed = sent.load(std::sync::atomic::Ordering::SeqCst);
    let mut rest = run_load(serve.base.clone(), TOTAL, TOTAL + 400);
    while rest.join_next().await.is_some() {}
    let store = db.store().await;
    let titles: BTreeSet<String> = all_incidents(&*store)
        .await
        .iter()
        .map(|r| r.title().to_string())
        .collect();
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<&String> = acked.iter().filter(|t| !titles.contains(*t)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(
        acked.len() >= before_restart + 400,
        "the restarted server took the rest"
    );
    assert!(
        resumed + 400 >= 2_000,
        "at least 2,000 signed commands were sent"
    );
    // Nothing was recorded twice.
    assert_eq!(titles.len(), all_incidents(&*store).await.len());
    let verify = site.cmd(&["audit", "verify"]).output().unwrap();
    assert!(verify.status.success());
    store.close().await;
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// When the `sla breach` entry of `id` was written, and the incident's response deadline.
async fn breach_times(
    store: &dyn Store,
    id: &str,
) -> Option<(DateTime<Utc>, DateTime<Utc>, usize)> {
    let entries = store.audit_for(id, 0, 1000).await.unwrap();
    let breaches: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "sla breach")
        .collect();
    let first = breaches.first()?;
    let Some(Record::Incident(inc)) = store.get(Kind::Incident, id).await.unwrap() else {
        return None;
    };
    let due = inc.response_due;
    Some((parse_time(&first.at), due, breaches.len()))
}

/// A P1 raised with `exec` beside running `serve` processes: its 3 s response deadline is acted
/// on within a second of its due time, exactly once however many replicas run, with its
/// nonconformity and its escalation posted to Slack once.
async fn a_deadline_set_by_another_process_is_acted_on_within_a_second(
    db: TestDb,
    replicas: usize,
) {
    let (slack, api) = FakeSlack::start().await;
    let site = Site::new(&db, &api);
    let serves: Vec<Serve> = (0..replicas).map(|_| site.serve()).collect();
    // Let the clocks settle into their long sleep (nothing is due yet).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = ok_output(&site.exec("incident raise Checkout down impact:high urgency:high"));
    assert!(out.contains("INC-1") && out.contains("P1"), "{out}");
    let store = db.store().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (at, due, n) = loop {
        if let Some(found) = breach_times(&*store, "INC-1").await {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no breach recorded 10 s after the P1 was raised; logs:\n{}",
            serves
                .iter()
                .map(Serve::log)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let late = at - due;
    assert!(
        late >= chrono::Duration::zero() && late <= chrono::Duration::milliseconds(1000),
        "breach recorded {late} after its due time"
    );
    // Give every replica its chance to act again, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, _, n_after) = breach_times(&*store, "INC-1").await.unwrap();
    assert_eq!((n, n_after), (1, 1), "the breach was handled once");
    let ncs: Vec<Record> = store
        .list(&ListQuery::new(Kind::Nonconformity, 100))
        .await
        .unwrap();
    assert_eq!(ncs.len(), 1, "{ncs:?}");
    assert!(ncs[0].title().contains("INC-1"), "{}", ncs[0].title());
    // The escalation: posted in the incident's room once, by one replica.
    slack
        .wait_for("the SLA escalation", Duration::from_secs(10), |calls| {
            calls.iter().any(|(m, b)| {
                m == "chat.postMessage" && b.to_string().contains("missed its response target")
            })
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (The nonconformity's own card, in the CAB channel, names the missed target too.)
    let escalations = slack
        .calls()
        .iter()
        .filter(|(m, b)| {
            m == "chat.postMessage" && b.to_string().contains("missed its response target;")
        })
        .count();
    assert_eq!(escalations, 1, "{:#?}", slack.calls());
    store.close().await;
    drop(serves);
}

/// The commit listener's connection is killed: `serve` listens again, and a deadline set by
/// `exec` afterwards is still acted on within a second.
async fn the_commit_listener_reconnects(db: TestDb) {
    use sqlx::Connection;
    let (_slack, api) = FakeSlack::start().await;
    let site = Site::new(&db, &api);
    let serve = site.serve();
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut killed = 0;
    for _ in 0..100 {
        let rows: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        killed += rows.len();
        if killed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed > 0, "serve never listened:\n{}", serve.log());
    // It reconnects after a second; give it that, then set a deadline from elsewhere.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = ok_output(&site.exec("incident raise Checkout down impact:high urgency:high"));
    assert!(out.contains("INC-1"), "{out}");
    let store = db.store().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (at, due, _) = loop {
        if let Some(found) = breach_times(&*store, "INC-1").await {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no breach after the listener was killed:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        at - due <= chrono::Duration::milliseconds(1000),
        "late by {}",
        at - due
    );
    store.close().await;
    drop(serve);
}

/// A change approved from the terminal updates its CAB card like one approved in chat: `exec`
/// queues the card, and the running `serve`, woken by the commit, delivers it.
async fn exec_queues_what_chat_would_and_serve_delivers_it(db: TestDb) {
    let (slack, api) = FakeSlack::start().await;
    let site = Site::new(&db, &api);
    // No serve yet: the submitted change's CAB card waits in the outbox, and exec says so.
    ok_output(&site.exec("change request Upgrade db type:normal risk:low"));
    let out = site.exec("change submit CHG-1");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("queued 1 message")
                && l.contains("no opsledger serve is running")),
        "exec's line about queued messages: {err}"
    );
    let store = db.store().await;
    let pending_before = store.outbox_pending().await.unwrap();
    assert!(pending_before > 0, "exec queued the CAB card");
    // Start serve: what waited is delivered.
    let serve = site.serve();
    slack
        .wait_for("the CAB card", Duration::from_secs(10), |calls| {
            calls.iter().any(|(m, b)| {
                m == "chat.postMessage" && b["channel"] == "CCAB" && b.to_string().contains("CHG-1")
            })
        })
        .await;
    // With serve running, a vote from the terminal updates the card within a second or so.
    let started = Instant::now();
    let out = ok_output(&site.exec_as("console:cab1", "change approve CHG-1"));
    assert!(out.contains("CHG-1"), "{out}");
    let out = site.exec_as("console:cab2", "change approve CHG-1");
    let err2 = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err2}");
    assert!(
        !err2.contains("no opsledger serve is running"),
        "serve is running: {err2}"
    );
    slack
        .wait_for(
            "the card updated to approved",
            Duration::from_secs(5),
            |calls| {
                calls
                    .iter()
                    .any(|(m, b)| m == "chat.update" && b.to_string().contains("approved"))
            },
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    store.close().await;
    drop(serve);
}

/// `exec` with no `serve` running says, in one line, that its messages wait in the outbox.
async fn exec_without_serve_says_its_messages_wait(db: TestDb) {
    let (_slack, api) = FakeSlack::start().await;
    let site = Site::new(&db, &api);
    let out = site.exec("incident raise Checkout down impact:high urgency:high");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("no opsledger serve is running"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("queued "), "{}", lines[0]);
    // A command that queues nothing says nothing of it.
    let out = site.exec("incident list");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("queued"), "{err}");
}

/// `exec` refuses NUL, other controls and bytes that are not UTF-8 as usage errors naming them
/// (exit 2, never the store's exit 3), line by line: the good lines around them still run.
async fn exec_refuses_bad_text_before_the_store(db: TestDb) {
    use std::io::Write;
    let (_slack, api) = FakeSlack::start().await;
    let site = Site::new(&db, &api);
    // An argument cannot hold NUL (the OS ends it there); an escape can.
    let out = site.exec_as(
        "console:root",
        "incident raise a\u{1b}[2Jb impact:low urgency:low",
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("escape, U+001B"), "{err}");
    let mut child = site
        .cmd(&["exec", "--as", "console:root", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"incident raise first impact:low\nincident raise a\x00b impact:low\nincident raise caf\xe9 impact:low\nincident raise last impact:low\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stdout}{err}");
    assert!(err.contains("NUL, U+0000"), "{err}");
    assert!(err.contains("line 3: the text is not valid UTF-8"), "{err}");
    assert!(
        stdout.contains("INC-1") && stdout.contains("INC-2"),
        "{stdout}"
    );
    let store = db.store().await;
    let titles: Vec<String> = all_incidents(&*store)
        .await
        .iter()
        .map(|r| r.title().to_string())
        .collect();
    assert_eq!(titles, ["first", "last"]);
    store.close().await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_refuses_bad_text_before_the_store() {
        super::exec_refuses_bad_text_before_the_store(common::sqlite_db()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn kill_9_under_load_loses_no_acknowledged_record() {
        super::kill_9_under_load_loses_no_acknowledged_record(common::sqlite_db()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_set_by_exec_is_acted_on_within_a_second() {
        super::a_deadline_set_by_another_process_is_acted_on_within_a_second(
            common::sqlite_db(),
            1,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_queues_what_chat_would_and_serve_delivers_it() {
        super::exec_queues_what_chat_would_and_serve_delivers_it(common::sqlite_db()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_without_serve_says_its_messages_wait() {
        super::exec_without_serve_says_its_messages_wait(common::sqlite_db()).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_refuses_bad_text_before_the_store() {
        if let Some(db) = common::postgres_db().await {
            super::exec_refuses_bad_text_before_the_store(db).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn kill_9_under_load_loses_no_acknowledged_record() {
        if let Some(db) = common::postgres_db().await {
            super::kill_9_under_load_loses_no_acknowledged_record(db).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_set_by_exec_is_acted_on_within_a_second() {
        if let Some(db) = common::postgres_db().await {
            super::a_deadline_set_by_another_process_is_acted_on_within_a_second(db, 1).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_commit_listener_reconnects() {
        if let Some(db) = common::postgres_db().await {
            super::the_commit_listener_reconnects(db).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_two_replicas_a_deadline_is_acted_on_once_within_a_second() {
        if let Some(db) = common::postgres_db().await {
            super::a_deadline_set_by_another_process_is_acted_on_within_a_second(db, 2).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_queues_what_chat_would_and_serve_delivers_it() {
        if let Some(db) = common::postgres_db().await {
            super::exec_queues_what_chat_would_and_serve_delivers_it(db).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_without_serve_says_its_messages_wait() {
        if let Some(db) = common::postgres_db().await {
            super::exec_without_serve_says_its_messages_wait(db).await;
        }
    }
}

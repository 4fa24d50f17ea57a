//! The outbox under faults: a message that cannot succeed is parked and never blocks its channel,
//! a 2xx the client cannot read counts as delivered, `Retry-After` is the wait, a platform's
//! recovery is acted on at once (crash or not), `name_taken` is answered with a suffixed name,
//! and operators see, retry and drop parked messages (`opsledger outbox`, `/metrics`, dashboard).
use crate::common::{self, fake};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use common::scratch::{stderr, stdout, Scratch};
use common::TestDb;
use opsledger::app::{self, Running};
use opsledger::config::{Integrations, OutboxArgs, ServeArgs};
use opsledger::domain::audit::format_time;
use opsledger::domain::command::Command;
use opsledger::domain::reply::{Outcome, Reply};
use opsledger::integrations::slack::SlackSettings;
use opsledger::ledger::{SystemTimeSource, TimeSource};
use opsledger::outbox::{Deliver, DeliveryError, OutboxSettings, OutboxWorker};
use opsledger::store::{NewOutbox, OutboxItem, OutboxState, Store};
use opsledger::usecase::UnitOfWork;
use serde_json::{json, Value};

conformance!(
    a_head_failing_past_the_attempt_bound_is_parked_and_its_channel_moves_on,
    a_head_failing_past_the_time_bound_is_parked,
    a_retry_after_is_the_wait_however_many_attempts_came_before,
    a_platform_that_answers_again_gets_its_waiting_channels_retried_at_once,
    a_restarted_instance_takes_back_its_own_claims_at_once,
    retry_makes_a_parked_item_pending_and_drop_is_audited,
    two_serve_replicas_deliver_each_item_exactly_once,
);

// --- Helpers ---------------------------------------------------------------------------------

fn item(platform: &str, channel: &str, n: i64) -> NewOutbox {
    NewOutbox {
        platform: platform.into(),
        channel: channel.into(),
        op: "post".into(),
        record: Some(format!("INC-{n}")),
        payload: json!({ "n": n }),
    }
}

/// A Slack `reply` item: the deliverer posts `text` to `channel`.
fn slack_reply(channel: &str, text: &str) -> NewOutbox {
    NewOutbox {
        platform: "slack".into(),
        channel: channel.into(),
        op: "reply".into(),
        record: None,
        payload: json!({ "reply": Reply::ok(None, text) }),
    }
}

async fn enqueue(store: &Arc<dyn Store>, items: Vec<NewOutbox>) {
    let mut uow = UnitOfWork::new(store.begin().await.expect("begin"));
    for i in items {
        uow.enqueue(i, Utc::now());
    }
    uow.commit().await.expect("commit");
}

fn clock() -> Arc<dyn TimeSource> {
    Arc::new(SystemTimeSource)
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deliverer whose channels answer from a script (then succeed), or fail while `down`, or
/// always fail when listed in `dead`; it logs every attempt.
#[derive(Default)]
struct Fake {
    script: Mutex<HashMap<String, VecDeque<DeliveryError>>>,
    dead: Mutex<HashSet<String>>,
    down: Mutex<bool>,
    log: Mutex<Vec<(String, i64, Instant, bool)>>,
}

impl Fake {
    fn script(&self, channel: &str, errors: Vec<DeliveryError>) {
        self.script
            .lock()
            .unwrap()
            .insert(channel.into(), errors.into());
    }

    fn delivered(&self, channel: &str) -> Vec<i64> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(c, _, _, ok)| *ok && c == channel)
            .map(|(_, n, _, _)| *n)
            .collect()
    }

    fn attempts(&self, channel: &str) -> Vec<Instant> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(c, ..)| c == channel)
            .map(|(_, _, at, _)| *at)
            .collect()
    }
}

fn server_error() -> DeliveryError {
    DeliveryError::Retry {
        after: None,
        reason: "HTTP 500".into(),
    }
}

#[async_trait]
impl Deliver for Fake {
    fn platform(&self) -> &'static str {
        "slack"
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let n = item.payload["n"].as_i64().unwrap_or(-1);
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&item.channel)
            .and_then(|q| q.pop_front());
        let failure = scripted.or_else(|| {
            let dead = self.dead.lock().unwrap().contains(&item.channel);
            (dead || *self.down.lock().unwrap()).then(server_error)
        });
        self.log
            .lock()
            .unwrap()
            .push((item.channel.clone(), n, Instant::now(), failure.is_none()));
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn max_backoff(&self) -> Duration {
        opsledger::outbox::CHAT_MAX_BACKOFF
    }
}

fn settings(park_after: Duration, park_attempts: u32, base: Duration) -> OutboxSettings {
    OutboxSettings {
        park_after,
        park_attempts,
        base_backoff: base,
        ..OutboxSettings::default()
    }
}

fn start(store: &Arc<dyn Store>, fake: &Arc<Fake>, s: OutboxSettings) -> OutboxWorker {
    OutboxWorker::start(
        store.clone(),
        vec![fake.clone() as Arc<dyn Deliver>],
        clock(),
        None,
        s,
    )
}

/// The one item of the store with this state, if any.
async fn stuck(store: &Arc<dyn Store>) -> Vec<opsledger::store::OutboxEntry> {
    store.outbox_stuck(100).await.unwrap()
}

// --- The worker, on both backends --------------------------------------------------------------

async fn a_head_failing_past_the_attempt_bound_is_parked_and_its_channel_moves_on(db: TestDb) {
    let store = db.store().await;
    let fake = Arc::new(Fake::default());
    fake.dead.lock().unwrap().insert("A".into());
    enqueue(
        &store,
        vec![
            item("slack", "A", 1),
            item("slack", "B", 2),
            item("slack", "A", 3),
            item("slack", "B", 4),
        ],
    )
    .await;
    let worker = start(
        &store,
        &fake,
        settings(Duration::from_secs(3600), 3, Duration::from_millis(10)),
    );
    eventually(
        "everything but the stuck head settled",
        Duration::from_secs(15),
        || async { store.outbox_pending().await.unwrap() == 0 },
    )
    .await;
    worker.stop().await;

    // Channel B never waited. Channel A's head was tried three times and parked, then its next
    // message went (and, the channel staying dead, was parked in turn).
    assert_eq!(fake.delivered("B"), vec![2, 4]);
    assert_eq!(fake.delivered("A"), Vec::<i64>::new());
    let a: Vec<i64> = fake
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.0 == "A")
        .map(|x| x.1)
        .collect();
    assert_eq!(a, vec![1, 1, 1, 3, 3, 3]);
    let parked = stuck(&store).await;
    let summary: Vec<_> = parked
        .iter()
        .map(|e| (e.record.clone().unwrap(), e.state, e.attempts))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("INC-1".to_string(), OutboxState::Parked, 3),
            ("INC-3".to_string(), OutboxState::Parked, 3)
        ]
    );
    assert_eq!(parked[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(store.outbox_parked().await.unwrap(), 2);
}

async fn a_head_failing_past_the_time_bound_is_parked(db: TestDb) {
    let store = db.store().await;
    let fake = Arc::new(Fake::default());
    fake.dead.lock().unwrap().insert("A".into());
    enqueue(&store, vec![item("slack", "A", 1), item("slack", "A", 2)]).await;
    let started = Instant::now();
    // No bound on attempts: 600 ms of failures park it.
    let worker = start(
        &store,
        &fake,
        settings(Duration::from_millis(600), 0, Duration::from_millis(50)),
    );
    eventually("the head parked", Duration::from_secs(10), || async {
        stuck(&store)
            .await
            .iter()
            .any(|e| e.record.as_deref() == Some("INC-1"))
    })
    .await;
    let parked_after = started.elapsed();
    fake.dead.lock().unwrap().clear();
    eventually(
        "the next message delivered",
        Duration::from_secs(10),
        || async { fake.delivered("A") == vec![2] },
    )
    .await;
    worker.stop().await;
    assert!(
        parked_after >= Duration::from_millis(600),
        "parked after {parked_after:?}, before the bound"
    );
    let e = &stuck(&store).await[0];
    assert_eq!(e.state, OutboxState::Parked);
    assert!(e.attempts >= 2, "{e:?}");
}

async fn a_retry_after_is_the_wait_however_many_attempts_came_before(db: TestDb) {
    let store = db.store().await;
    enqueue(&store, vec![item("slack", "A", 1)]).await;
    // The item has failed six times already: its backoff alone would be 2^6 = 64 s.
    let id = store
        .outbox_due(&format_time(Utc::now()), 10)
        .await
        .unwrap()[0]
        .id;
    let t = format_time(Utc::now());
    store
        .outbox_retry(id, 6, &t, &t, "HTTP 500", false)
        .await
        .unwrap();
    let fake = Arc::new(Fake::default());
    fake.script(
        "A",
        vec![DeliveryError::Retry {
            after: Some(Duration::from_secs(3)),
            reason: "rate limited (429)".into(),
        }],
    );
    let worker = start(
        &store,
        &fake,
        settings(Duration::from_secs(3600), 0, Duration::from_secs(1)),
    );
    eventually(
        "delivered after the 429",
        Duration::from_secs(10),
        || async { fake.delivered("A") == vec![1] },
    )
    .await;
    worker.stop().await;
    let at = fake.attempts("A");
    assert_eq!(at.len(), 2);
    let gap = at[1] - at[0];
    assert!(
        gap >= Duration::from_secs(3) && gap < Duration::from_millis(3_800),
        "retried {gap:?} after a 429 asking for 3 s"
    );
}

async fn a_platform_that_answers_again_gets_its_waiting_channels_retried_at_once(db: TestDb) {
    let store = db.store().await;
    let fake = Arc::new(Fake::default());
    *fake.down.lock().unwrap() = true;
    let channels = ["C1", "C2", "C3", "C4", "C5"];
    enqueue(
        &store,
        channels
            .iter()
            .enumerate()
            .map(|(i, c)| item("slack", c, i as i64))
            .collect(),
    )
    .await;
    // Base 1 s as in production: after 7 s down, every channel waits 4-8 s more.
    let worker = start(
        &store,
        &fake,
        settings(Duration::from_secs(3600), 0, Duration::from_secs(1)),
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    *fake.down.lock().unwrap() = false;
    let recovered = Instant::now();
    eventually(
        "every channel delivered",
        Duration::from_secs(15),
        || async { store.outbox_pending().await.unwrap() == 0 },
    )
    .await;
    let took = recovered.elapsed();
    worker.stop().await;
    for (i, c) in channels.iter().enumerate() {
        assert_eq!(fake.delivered(c), vec![i as i64], "{c}");
    }
    // One probe within `PROBE` (4 s) notices the recovery; the rest follow at once.
    assert!(
        took < Duration::from_millis(5_500),
        "took {took:?} after the platform answered again"
    );
    let last = channels
        .iter()
        .map(|c| *fake.attempts(c).last().unwrap())
        .collect::<Vec<_>>();
    let first_ok = *last.iter().min().unwrap();
    let last_ok = *last.iter().max().unwrap();
    assert!(
        last_ok - first_ok < Duration::from_secs(1),
        "the other channels waited {:?} after the first success",
        last_ok - first_ok
    );
}

async fn a_restarted_instance_takes_back_its_own_claims_at_once(db: TestDb) {
    let store = db.store().await;
    enqueue(&store, vec![item("slack", "A", 1), item("slack", "B", 2)]).await;
    let now = Utc::now();
    let t = format_time(now);
    let lease = format_time(now + chrono::Duration::seconds(120));
    let due = store.outbox_due(&t, 10).await.unwrap();
    // Instance "a" claimed A1 and died; "b" holds B2.
    assert!(store
        .outbox_claim(due[0].id, &t, &lease, "a")
        .await
        .unwrap());
    assert!(store
        .outbox_claim(due[1].id, &t, &lease, "b")
        .await
        .unwrap());
    assert!(store.outbox_due(&t, 10).await.unwrap().is_empty());
    assert_eq!(store.outbox_release_claims("c", &t).await.unwrap(), 0);

    // "a" restarts: its claim is released at start, so A1 goes at once, not in 120 s.
    let fake = Arc::new(Fake::default());
    let mut s = settings(Duration::from_secs(3600), 10, Duration::from_millis(10));
    s.instance = "a".into();
    let worker = start(&store, &fake, s);
    eventually("A1 delivered at once", Duration::from_secs(5), || async {
        fake.delivered("A") == vec![1]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    assert!(
        fake.delivered("B").is_empty(),
        "another instance's claim is left to its lease"
    );
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
}

async fn retry_makes_a_parked_item_pending_and_drop_is_audited(db: TestDb) {
    let store = db.store().await;
    enqueue(
        &store,
        vec![
            item("slack", "A", 1),
            item("slack", "B", 2),
            item("slack", "C", 3),
        ],
    )
    .await;
    let t = format_time(Utc::now());
    let due = store.outbox_due(&t, 10).await.unwrap();
    let (a, b, c) = (due[0].id, due[1].id, due[2].id);
    store.outbox_park(a, 10, &t, "HTTP 500").await.unwrap();
    store
        .outbox_give_up(b, &t, "channel_not_found")
        .await
        .unwrap();
    assert_eq!(store.outbox_parked().await.unwrap(), 1);
    let listed: Vec<_> = stuck(&store)
        .await
        .iter()
        .map(|e| (e.id, e.state, e.attempts))
        .collect();
    assert_eq!(
        listed,
        vec![(a, OutboxState::Parked, 10), (b, OutboxState::Failed, 1)]
    );

    // Retry: pending, due now, counted afresh; a pending item cannot be retried.
    assert!(store.outbox_requeue(a, &t).await.unwrap());
    assert!(!store.outbox_requeue(c, &t).await.unwrap());
    let due: Vec<_> = store
        .outbox_due(&t, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.attempts))
        .collect();
    assert!(due.contains(&(a, 0)), "{due:?}");
    assert_eq!(store.outbox_parked().await.unwrap(), 0);

    // Drop: for admins only, audited, the row kept and marked.
    let (ledger, writer) = common::ledger_on(
        store.clone(),
        common::team_policy(),
        common::TestTime::at(Utc::now()),
    );
    let drop_as = |who: &str, id: i64| {
        let ledger = ledger.clone();
        let who = common::actor(who);
        async move { ledger.handle(who, Command::OutboxDrop { id }).await.reply }
    };
    let refused = drop_as("console:bob", b).await;
    assert!(
        matches!(refused.outcome, Outcome::Refused { .. }),
        "{refused:?}"
    );
    let pending = drop_as("console:root", c).await;
    assert!(
        matches!(pending.outcome, Outcome::Refused { .. }),
        "{pending:?}"
    );
    let missing = drop_as("console:root", 999_999).await;
    assert_eq!(missing.outcome, Outcome::NotFound);
    let dropped = drop_as("console:root", b).await;
    assert_eq!(dropped.outcome, Outcome::Ok, "{dropped:?}");
    assert!(dropped.text.contains(&format!("dropped outbox item {b}")));
    drop(ledger);
    writer.await.unwrap();

    let entry = store.outbox_entry(b).await.unwrap().expect("kept");
    assert_eq!(entry.state, OutboxState::Dropped);
    assert!(stuck(&store).await.is_empty() || stuck(&store).await.iter().all(|e| e.id != b));
    let trail = store.audit_after(0, 100).await.unwrap();
    let entry = trail
        .iter()
        .find(|e| e.action == "outbox drop" && e.outcome == "ok")
        .expect("an audit entry for the drop");
    assert_eq!(entry.actor, "console:root");
    assert_eq!(
        entry.record.as_deref(),
        Some(format!("outbox:{b}").as_str())
    );
    assert!(entry.before.as_deref().unwrap_or("").contains("\"failed\""));
    assert!(entry.after.as_deref().unwrap_or("").contains("\"dropped\""));
    assert!(
        trail.iter().filter(|e| e.action == "outbox drop").count() >= 4,
        "refusals and the missing item are audited too"
    );
    assert!(app::verify_audit(&*store).await.unwrap().is_ok());
}

// --- A fake Slack Web API that answers as Slack does --------------------------------------------

/// One call the fake Slack API answered.
#[derive(Debug, Clone)]
struct SlackCall {
    method: String,
    channel: String,
    /// The message text, or the channel name asked for.
    text: String,
    status: u16,
    at: Instant,
}

#[derive(Default)]
struct SlackState {
    calls: Vec<SlackCall>,
    /// Answer every chat call with this status (an outage).
    down: Option<u16>,
    /// Hold every chat call this long before answering (a call in flight at a crash).
    hang: Option<Duration>,
    /// Channels whose chat calls always answer 500.
    dead: HashSet<String>,
    /// `chat.postMessage` answers `200 ok` as text/plain, as a proxy or an odd gateway might.
    plain_ok: bool,
    /// The next chat calls answer 429 with these `Retry-After` seconds.
    rate_limits: VecDeque<u64>,
    /// Channel names already taken in the workspace.
    taken: HashSet<String>,
    ts: u64,
}

#[derive(Clone, Default)]
struct SlackFake(Arc<Mutex<SlackState>>);

impl SlackFake {
    async fn start() -> (SlackFake, String) {
        let fake = SlackFake::default();
        let app = Router::new()
            .route("/api/{method}", post(slack_method))
            .route("/respond", post(slack_respond))
            .with_state(fake.clone());
        (fake, fake::serve(app).await)
    }

    fn with<T>(&self, f: impl FnOnce(&mut SlackState) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn calls(&self) -> Vec<SlackCall> {
        self.with(|s| s.calls.clone())
    }

    /// Texts posted successfully to `channel`, in order.
    fn posted(&self, channel: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "chat.postMessage" && c.channel == channel && c.status == 200)
            .map(|c| c.text)
            .collect()
    }
}

async fn slack_method(
    State(fake): State<SlackFake>,
    Path(method): Path<String>,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let channel = body["channel"].as_str().unwrap_or_default().to_string();
    let text = body["text"]
        .as_str()
        .or(body["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let chat = method.starts_with("chat.");
    let hang = fake.with(|s| if chat { s.hang } else { None });
    if let Some(d) = hang {
        // The caller may be gone by now: this call never counts as an answer.
        tokio::time::sleep(d).await;
        return fake::plain(503, "upstream timed out");
    }
    let mut s = fake.0.lock().unwrap();
    let record = |s: &mut SlackState, status: u16| {
        s.calls.push(SlackCall {
            method: method.clone(),
            channel: channel.clone(),
            text: text.clone(),
            status,
            at: Instant::now(),
        })
    };
    if chat {
        if let Some(status) = s.down {
            record(&mut s, status);
            return fake::plain(status, "upstream unavailable");
        }
        if s.dead.contains(&channel) {
            record(&mut s, 500);
            return fake::plain(500, "internal error");
        }
        if let Some(after) = s.rate_limits.pop_front() {
            record(&mut s, 429);
            return fake::slack::ratelimited(after);
        }
    }
    record(&mut s, 200);
    s.ts += 1;
    let ts = fake::slack::ts(s.ts);
    match method.as_str() {
        "chat.postMessage" if s.plain_ok => fake::plain(200, "ok"),
        "conversations.create" => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            if !s.taken.insert(name) {
                return fake::slack::error("name_taken");
            }
            Json(fake::slack::ok(&method, &body, &ts, &format!("C{}", s.ts))).into_response()
        }
        _ => Json(fake::slack::ok(&method, &body, &ts, "")).into_response(),
    }
}

/// A `response_url` answers a bare `ok`, text/plain, as Slack's does.
async fn slack_respond(State(fake): State<SlackFake>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.with(|s| {
        s.calls.push(SlackCall {
            method: "response_url".into(),
            channel: String::new(),
            text: body["text"].as_str().unwrap_or_default().to_string(),
            status: 200,
            at: Instant::now(),
        })
    });
    fake::plain(200, "ok")
}

fn slack_integrations(fake_base: &str) -> Integrations {
    Integrations {
        slack: SlackSettings {
            slack_signing_secret: Some("8f742231b10e8888abcd99yyyzzz85a5".to_string().into()),
            slack_bot_token: Some("xoxb-test".to_string().into()),
            slack_api_url: format!("{fake_base}/api"),
            slack_incident_channel: Some("CINC".into()),
            slack_cab_channel: Some("CCAB".into()),
            ..Default::default()
        },
        ..Integrations::default()
    }
}

async fn serve_slack(db: &TestDb, fake_base: &str, outbox: OutboxArgs) -> Running {
    let args = ServeArgs {
        integrations: slack_integrations(fake_base),
        outbox,
        ..common::serve_args(None)
    };
    app::serve(
        &args,
        db.store().await,
        common::team_policy(),
        app::system_time_source(),
    )
    .await
    .expect("serve")
}

fn bounds(after: Duration, attempts: u32) -> OutboxArgs {
    OutboxArgs {
        park_after: after,
        park_attempts: attempts,
        instance: None,
    }
}

async fn raise(running: &Running, title: &str) -> String {
    let reply = running
        .ledger
        .handle_text(
            common::actor("console:root"),
            &format!("incident raise {title}"),
        )
        .await
        .reply;
    assert_eq!(reply.outcome, Outcome::Ok, "{}", reply.text);
    reply.record.expect("an incident ID")
}

/// Requests and submits a change, which posts it to the CAB channel; returns its ID.
async fn submit_change(running: &Running, title: &str) -> String {
    let root = common::actor("console:root");
    let reply = running
        .ledger
        .handle_text(
            root.clone(),
            &format!("change request \"{title}\" type:normal"),
        )
        .await
        .reply;
    let id = reply.record.expect("a change");
    let submitted = running
        .ledger
        .handle_text(root, &format!("change submit {id}"))
        .await
        .reply;
    assert_eq!(submitted.outcome, Outcome::Ok, "{}", submitted.text);
    id
}

/// Whether `text` names the record `id` (as a word: INC-1 is not INC-12).
fn mentions(text: &str, id: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric() && c != '-')
        .any(|w| w == id)
}

/// Every id in `ids` appears in exactly one posted text.
fn each_posted_once(posted: &[String], ids: &[String]) {
    for id in ids {
        let n = posted.iter().filter(|t| mentions(t, id)).count();
        assert_eq!(n, 1, "{id} posted {n} times: {posted:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_answering_plain_ok_counts_as_delivered_and_is_not_repeated() {
    let (fake, base) = SlackFake::start().await;
    fake.with(|s| s.plain_ok = true);
    let db = common::sqlite_db();
    let running = serve_slack(&db, &base, OutboxArgs::default()).await;
    let first = raise(&running, "Disk full").await;
    let second = raise(&running, "Disk still full").await;
    let store = running.ledger.store().clone();
    eventually("both cards delivered", Duration::from_secs(10), || async {
        store.outbox_pending().await.unwrap() == 0
    })
    .await;
    // Give a wrongly retried post time to show.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let posted = fake.posted("CINC");
    assert_eq!(posted.len(), 2, "{posted:#?}");
    each_posted_once(&posted, &[first, second]);
    assert_eq!(store.outbox_parked().await.unwrap(), 0);
    assert!(stuck(&store).await.is_empty());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_url_answering_bare_ok_is_delivered_once() {
    let (fake, base) = SlackFake::start().await;
    let db = common::sqlite_db();
    // Queued before the server starts, whose worker looks at once.
    enqueue(
        &db.store().await,
        vec![NewOutbox {
            platform: "slack".into(),
            channel: "respond:1".into(),
            op: "respond".into(),
            record: None,
            payload: json!({
                "reply": Reply::ok(None, "Only you can see this"),
                "response_url": format!("{base}/respond"),
            }),
        }],
    )
    .await;
    let running = serve_slack(&db, &base, OutboxArgs::default()).await;
    let store = running.ledger.store().clone();
    eventually("the answer delivered", Duration::from_secs(10), || async {
        store.outbox_pending().await.unwrap() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let answers: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "response_url")
        .collect();
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert!(stuck(&store).await.is_empty());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_taken_is_answered_with_a_suffixed_channel_name() {
    let (fake, base) = SlackFake::start().await;
    // Another install in the workspace already opened its INC-1 and INC-1's "-2".
    fake.with(|s| {
        s.taken.insert("inc-1-checkout-down".into());
        s.taken.insert("inc-1-checkout-down-2".into());
    });
    let db = common::sqlite_db();
    let running = serve_slack(&db, &base, OutboxArgs::default()).await;
    let id = raise(&running, "Checkout down impact:high urgency:high").await;
    assert_eq!(id, "INC-1");
    let store = running.ledger.store().clone();
    eventually(
        "the incident's channel opened",
        Duration::from_secs(10),
        || async { store.outbox_pending().await.unwrap() == 0 },
    )
    .await;
    let creates: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "conversations.create")
        .map(|c| c.text)
        .collect();
    assert_eq!(
        creates,
        vec![
            "inc-1-checkout-down",
            "inc-1-checkout-down-2",
            "inc-1-checkout-down-3"
        ]
    );
    let own = store
        .message_ref("INC-1", "slack-incident-channel", "")
        .await
        .unwrap()
        .expect("the channel is remembered");
    let posted = fake.posted(&own);
    assert_eq!(posted.len(), 1, "the card is posted in the new channel");
    assert!(stuck(&store).await.is_empty(), "nothing failed or parked");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_429_is_retried_after_its_retry_after_not_longer() {
    let (fake, base) = SlackFake::start().await;
    fake.with(|s| s.rate_limits.extend([3, 3]));
    let db = common::sqlite_db();
    let running = serve_slack(&db, &base, OutboxArgs::default()).await;
    let id = raise(&running, "Disk full").await;
    let store = running.ledger.store().clone();
    eventually("the card delivered", Duration::from_secs(15), || async {
        store.outbox_pending().await.unwrap() == 0
    })
    .await;
    let calls: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.channel == "CINC")
        .collect();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![429, 429, 200]
    );
    for w in calls.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(2_900) && gap < Duration::from_millis(3_800),
            "retried {gap:?} after Retry-After: 3"
        );
    }
    each_posted_once(&fake.posted("CINC"), &[id]);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_answering_500_past_the_bound_is_parked_and_every_other_message_arrives() {
    let (fake, base) = SlackFake::start().await;
    fake.with(|s| {
        s.dead.insert("CINC".into());
    });
    let db = common::sqlite_db();
    let running = serve_slack(&db, &base, bounds(Duration::from_secs(2), 0)).await;
    let inc = raise(&running, "Disk full").await;
    let mut changes = Vec::new();
    for i in 0..3 {
        changes.push(submit_change(&running, &format!("Patch {i}")).await);
    }
    let store = running.ledger.store().clone();
    eventually(
        "the dead channel's head parked",
        Duration::from_secs(15),
        || async { store.outbox_parked().await.unwrap() >= 1 },
    )
    .await;
    eventually(
        "the CAB channel served",
        Duration::from_secs(10),
        || async { fake.posted("CCAB").len() == 3 },
    )
    .await;
    each_posted_once(&fake.posted("CCAB"), &changes);
    let parked = stuck(&store).await;
    assert_eq!(parked[0].record.as_deref(), Some(inc.as_str()));
    assert_eq!(parked[0].state, OutboxState::Parked);
    assert!(parked[0].last_error.as_deref().unwrap().contains("500"));

    // /metrics and the dashboard show it.
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("http://{}/metrics", running.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parked_now = store.outbox_parked().await.unwrap();
    assert!(
        metrics.contains(&format!("opsledger_outbox_parked {parked_now}")),
        "{metrics}"
    );
    let page = client
        .get(format!("http://{}/", running.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Parked messages"), "{page}");
    assert!(page.contains(&format!("/records/{inc}")), "{page}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_bound_parks_the_head_and_every_later_message_arrives() {
    let (fake, base) = SlackFake::start().await;
    fake.with(|s| s.down = Some(503));
    let db = common::sqlite_db();
    let running = serve_slack(&db, &base, bounds(Duration::from_secs(2), 0)).await;
    let store = running.ledger.store().clone();
    let first = raise(&running, "Disk full").await;
    eventually(
        "the head parked during the outage",
        Duration::from_secs(15),
        || async { store.outbox_parked().await.unwrap() == 1 },
    )
    .await;
    // Still down: later messages, on this channel and another, wait.
    let later = raise(&running, "Disk still full").await;
    let change = submit_change(&running, "Patch").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.with(|s| s.down = None);
    let recovered = Instant::now();
    eventually(
        "every later message delivered",
        Duration::from_secs(10),
        || async { store.outbox_pending().await.unwrap() == 0 },
    )
    .await;
    assert!(recovered.elapsed() < Duration::from_secs(10));
    each_posted_once(&fake.posted("CINC"), std::slice::from_ref(&later));
    each_posted_once(&fake.posted("CCAB"), &[change]);
    assert!(
        !fake.posted("CINC").iter().any(|t| mentions(t, &first)),
        "the parked card stays parked"
    );
    let parked = stuck(&store).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].record.as_deref(), Some(first.as_str()));
    running.stop().await.unwrap();
}

async fn two_serve_replicas_deliver_each_item_exactly_once(db: TestDb) {
    let (fake, base) = SlackFake::start().await;
    let one = serve_slack(&db, &base, OutboxArgs::default()).await;
    let two = serve_slack(&db, &base, OutboxArgs::default()).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let running = if i % 2 == 0 { &one } else { &two };
        ids.push(raise(running, &format!("Outage {i}")).await);
    }
    let store = one.ledger.store().clone();
    eventually("every card delivered", Duration::from_secs(20), || async {
        store.outbox_pending().await.unwrap() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posted = fake.posted("CINC");
    assert_eq!(posted.len(), ids.len(), "{posted:#?}");
    each_posted_once(&posted, &ids);
    // In order on the one channel.
    let order: Vec<usize> = ids
        .iter()
        .map(|id| posted.iter().position(|t| mentions(t, id)).unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "delivered out of order: {posted:#?}");
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

// --- The real binary: kill -9 during an outage --------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_serve(scratch: &Scratch, fake_base: &str, port: u16, log: &str) -> Serve {
    let log = std::fs::File::create(scratch.path(log)).unwrap();
    let child = scratch
        .cmd(&["serve"])
        .env("OPSLEDGER_BIND", format!("127.0.0.1:{port}"))
        .env("OPSLEDGER_INSTANCE", "replica-a")
        .env("OPSLEDGER_OUTBOX_PARK_AFTER", "8s")
        .env("OPSLEDGER_OUTBOX_PARK_ATTEMPTS", "0")
        .env("SLACK_BOT_TOKEN", "xoxb-test")
        .env("SLACK_SIGNING_SECRET", "8f742231b10e8888abcd99yyyzzz85a5")
        .env("SLACK_API_URL", format!("{fake_base}/api"))
        .env("RUST_LOG", "info,opsledger=debug")
        .stderr(log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start opsledger serve");
    Serve(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_outage_then_recovery_delivers_everything_within_ten_seconds() {
    let (fake, base) = SlackFake::start().await;
    let scratch = Scratch::new();
    let store = app::open_store(&scratch.db_url()).await.unwrap();
    let channels = ["C1", "C2", "C3"];
    let mut texts: HashMap<&str, Vec<String>> = HashMap::new();
    let mut items = Vec::new();
    for round in 0..3 {
        for c in channels {
            let text = format!("message {c}-{round}");
            texts.entry(c).or_default().push(text.clone());
            items.push(slack_reply(c, &text));
        }
    }
    items.push(slack_reply("CDEAD", "message CDEAD-0"));
    enqueue(&store, items).await;
    fake.with(|s| {
        s.dead.insert("CDEAD".into());
        // The first attempts hang: they are in flight (claimed) when the process dies.
        s.hang = Some(Duration::from_secs(60));
    });
    let port = free_port();

    let mut first = spawn_serve(&scratch, &base, port, "serve-1.log");
    eventually("attempts in flight", Duration::from_secs(20), || async {
        let t = format_time(Utc::now());
        // Every channel head claimed: none due now.
        store.outbox_due(&t, 10).await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    first.0.wait().unwrap();
    drop(first);

    // Down now (503 at once), and restarted: the old claims are taken back, not leased out.
    fake.with(|s| {
        s.hang = None;
        s.down = Some(503);
    });
    let _second = spawn_serve(&scratch, &base, port, "serve-2.log");
    eventually(
        "the restarted process is retrying",
        Duration::from_secs(20),
        || async { fake.calls().iter().filter(|c| c.status == 503).count() >= 4 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    fake.with(|s| s.down = None);
    let recovered = Instant::now();
    let log = || std::fs::read_to_string(scratch.path("serve-2.log")).unwrap_or_default();
    let all = || {
        channels
            .iter()
            .all(|c| fake.posted(c).len() >= texts[c].len())
    };
    while !all() {
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "not every message arrived within 10 s of recovery: {:#?}\n{}",
            channels.iter().map(|c| fake.posted(c)).collect::<Vec<_>>(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in channels {
        assert_eq!(fake.posted(c), texts[c], "{c}: in order, each once");
    }
    eventually(
        "the dead channel's message parked",
        Duration::from_secs(20),
        || async { store.outbox_parked().await.unwrap() == 1 },
    )
    .await;
    assert!(fake.posted("CDEAD").is_empty());
    assert!(
        log().contains("took back the claims"),
        "the restart released its claims: {}",
        log()
    );

    // The operator sees it, and drops it; the audit chain still verifies.
    let list = scratch.run(&["outbox", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let out = stdout(&list);
    assert!(out.contains("parked\tslack\tCDEAD\treply\t-\t"), "{out}");
    let id = out
        .lines()
        .nth(1)
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    assert!(out.contains("HTTP 500"), "{out}");
    let refused = scratch.run(&["outbox", "drop", &id, "--as", "console:bob"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let dropped = scratch.run(&["outbox", "drop", &id, "--as", "console:root"]);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert!(stdout(&dropped).contains(&format!("dropped outbox item {id}")));
    let again = scratch.run(&["outbox", "retry", &id]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a dropped message is not retried"
    );
    assert!(stderr(&again).contains("is dropped"), "{}", stderr(&again));
    let list = scratch.run(&["outbox", "list"]);
    assert_eq!(stdout(&list).trim(), "no parked or failed messages");
    let verify = scratch.run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_retry_sends_a_parked_message_again_through_a_running_serve() {
    let (fake, base) = SlackFake::start().await;
    let scratch = Scratch::new();
    let store = app::open_store(&scratch.db_url()).await.unwrap();
    enqueue(&store, vec![slack_reply("C9", "message C9-0")]).await;
    let t = format_time(Utc::now());
    let id = store.outbox_due(&t, 1).await.unwrap()[0].id;
    store.outbox_park(id, 10, &t, "HTTP 503").await.unwrap();
    let _serve = spawn_serve(&scratch, &base, free_port(), "serve.log");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(fake.posted("C9").is_empty(), "a parked message waits");

    let retried = scratch.run(&["outbox", "retry", &id.to_string()]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    assert!(stdout(&retried).contains("pending again"));
    // The retry is a commit the running serve sees: it sends the message within seconds.
    eventually("delivered after retry", Duration::from_secs(5), || async {
        fake.posted("C9") == vec!["message C9-0".to_string()]
    })
    .await;
    let missing = scratch.run(&["outbox", "retry", "424242"]);
    assert_eq!(missing.status.code(), Some(1));
}

// --- Discord's and GitHub's answers, sorted as the outbox needs them ----------------------------

/// One canned answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

/// A fake HTTP API answering the queued answers in turn, recording each path.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<(VecDeque<Answer>, Vec<String>)>>);

async fn scripted(State(s): State<Scripted>, uri: axum::http::Uri) -> Response {
    let mut g = s.0.lock().unwrap();
    g.1.push(uri.path().to_string());
    let (status, headers, body) = g.0.pop_front().unwrap_or((200, vec![], "{}"));
    let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in headers {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

async fn start_scripted(answers: Vec<Answer>) -> (Scripted, String) {
    let s = Scripted::default();
    s.0.lock().unwrap().0.extend(answers);
    let app = Router::new().fallback(scripted).with_state(s.clone());
    (s, fake::serve(app).await)
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn discord_answers_are_sorted_and_a_429_waits_as_long_as_discord_says() {
    use opsledger_discord::{DiscordApi, DiscordApiError};
    let (fake, origin) = start_scripted(vec![
        (
            429,
            vec![JSON, ("retry-after", "2"), ("x-ratelimit-scope", "user")],
            r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#,
        ),
        // Posted, but the answer is not the JSON a message is: done, ID unknown.
        (200, vec![("content-type", "text/plain")], "ok"),
        (
            404,
            vec![JSON],
            r#"{"message": "Unknown Channel", "code": 10003}"#,
        ),
        (
            502,
            vec![("content-type", "text/html")],
            "<html>Bad Gateway</html>",
        ),
        (
            200,
            vec![JSON],
            r#"{"id": "1300000000000000099", "channel_id": "1"}"#,
        ),
    ])
    .await;
    let api = DiscordApi::new("bot-token", "1200000000000000001", &origin).unwrap();
    let view = opsledger_view::View {
        text: "INC-1".into(),
        fields: vec![],
        buttons: vec![],
    };
    let post = || api.post_message("1300000000000000001", &view);
    assert_eq!(
        post().await,
        Err(DiscordApiError::Retry {
            after: Some(Duration::from_millis(1500)),
            reason: "HTTP 429 You are being rate limited.".into()
        })
    );
    assert_eq!(post().await, Ok(None));
    assert_eq!(
        post().await,
        Err(DiscordApiError::Permanent(
            "HTTP 404 Unknown Channel".into()
        ))
    );
    assert!(matches!(
        post().await,
        Err(DiscordApiError::Retry { after: None, .. })
    ));
    assert_eq!(post().await, Ok(Some("1300000000000000099".into())));
    let paths = fake.0.lock().unwrap().1.clone();
    assert_eq!(paths.len(), 5);
    assert!(paths
        .iter()
        .all(|p| p == "/api/v10/channels/1300000000000000001/messages"));
}

#[tokio::test]
async fn github_writes_whose_answer_cannot_be_read_count_as_done() {
    use opsledger_github::{Auth, CommitStatus, GithubApi, GithubApiError};
    let (fake, base) = start_scripted(vec![
        (201, vec![("content-type", "text/plain")], "ok"),
        (201, vec![JSON], ""),
        (
            503,
            vec![("content-type", "text/html")],
            "<html>unavailable</html>",
        ),
        (
            422,
            vec![JSON],
            r#"{"message": "Validation Failed", "documentation_url": "https://docs.github.com"}"#,
        ),
    ])
    .await;
    let api = GithubApi::new(Auth::Token("ghp_test".into()), &base).unwrap();
    let status = CommitStatus {
        state: "pending".into(),
        description: "CHG-1 awaits approval".into(),
        target_url: None,
        context: "opsledger/change".into(),
    };
    assert_eq!(api.set_status("o/r", "abc123", &status, None).await, Ok(()));
    assert_eq!(
        api.upsert_comment("o/r", 7, None, "hello", None).await,
        Ok(None),
        "created, ID unknown: not created again"
    );
    assert!(matches!(
        api.set_status("o/r", "abc123", &status, None).await,
        Err(GithubApiError::Retry { .. })
    ));
    assert!(matches!(
        api.set_status("o/r", "abc123", &status, None).await,
        Err(GithubApiError::Permanent(_))
    ));
    let paths = fake.0.lock().unwrap().1.clone();
    assert_eq!(
        paths,
        vec![
            "/repos/o/r/statuses/abc123",
            "/repos/o/r/issues/7/comments",
            "/repos/o/r/statuses/abc123",
            "/repos/o/r/statuses/abc123"
        ]
    );
}

//! Slack end to end: signed requests in, a local fake Slack Web API out (`SLACK_API_URL`).
use crate::common::{self, fake};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use opsledger::app::{self, Running};
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Record;
use opsledger::integrations::slack::SlackSettings;
use serde_json::{json, Value};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const ALERTS_TOKEN: &str = "alerts-token";
const GITHUB_SECRET: &str = "github-secret";

/// One call the fake Slack API received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    body: Value,
}

/// A fake Slack Web API: records calls; answers the queued failure statuses first.
#[derive(Clone, Default)]
struct FakeSlack {
    rec: common::fake::Recorder<Call>,
    ts: Arc<Mutex<u64>>,
}

impl std::ops::Deref for FakeSlack {
    type Target = common::fake::Recorder<Call>;
    fn deref(&self) -> &Self::Target {
        &self.rec
    }
}

async fn fake_method(
    State(fake): State<(FakeSlack, &'static str)>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let (fake, method) = fake;
    if let Some(status) = fake.next_failure() {
        return match status {
            429 => fake::slack::ratelimited(1),
            _ => (StatusCode::from_u16(status).unwrap(), "failure").into_response(),
        };
    }
    // Web API methods carry the bot token; response URLs are capabilities of their own.
    if method != "response_url" {
        assert_eq!(
            headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer xoxb-test"),
            "the bot token is sent"
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.push(Call {
        method: method.to_string(),
        body: body.clone(),
    });
    let ts = {
        let mut n = fake.ts.lock().unwrap();
        *n += 1;
        fake::slack::ts(*n)
    };
    if method == "response_url" {
        // A response URL answers a bare `ok`, not JSON.
        return fake::plain(200, "ok");
    }
    Json(fake::slack::ok(method, &body, &ts, "COWN1")).into_response()
}

impl FakeSlack {
    async fn start() -> (FakeSlack, String) {
        let fake = FakeSlack::default();
        let app = Router::new()
            .route(
                "/api/chat.postMessage",
                post(fake_method).with_state((fake.clone(), "chat.postMessage")),
            )
            .route(
                "/api/chat.update",
                post(fake_method).with_state((fake.clone(), "chat.update")),
            )
            .route(
                "/api/views.open",
                post(fake_method).with_state((fake.clone(), "views.open")),
            )
            .route(
                "/api/conversations.create",
                post(fake_method).with_state((fake.clone(), "conversations.create")),
            )
            .route(
                "/api/conversations.invite",
                post(fake_method).with_state((fake.clone(), "conversations.invite")),
            )
            .route(
                "/api/conversations.open",
                post(fake_method).with_state((fake.clone(), "conversations.open")),
            )
            .route(
                "/respond",
                post(fake_method).with_state((fake.clone(), "response_url")),
            );
        (fake, fake::serve(app).await)
    }
}

struct SlackApp {
    running: Option<Running>,
    base: String,
    client: reqwest::Client,
    fake: FakeSlack,
    fake_base: String,
    _db: common::TestDb,
}

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["slack:UCAB1", "slack:UCAB2"]

[sla.P1]
respond = "2s"
resolve = "4h"
"#;

async fn spawn_slack_app() -> SlackApp {
    spawn_slack_app_with(RULES).await
}

async fn spawn_slack_app_with(rules: &str) -> SlackApp {
    let (fake, fake_base) = FakeSlack::start().await;
    let integrations = Integrations {
        slack: SlackSettings {
            slack_signing_secret: Some(SECRET.to_string().into()),
            slack_bot_token: Some("xoxb-test".to_string().into()),
            slack_api_url: format!("{fake_base}/api"),
            slack_incident_channel: Some("CINC".into()),
            slack_cab_channel: Some("CCAB".into()),
            ..Default::default()
        },
        alerts_token: Some(ALERTS_TOKEN.to_string().into()),
        // GitHub's webhook too (no API credentials: nothing is sent to GitHub), for what its
        // deliveries post in Slack.
        github_webhook_secret: Some(GITHUB_SECRET.to_string().into()),
        ..Integrations::default()
    };
    let (running, base, db) = common::serve_platforms(integrations, rules, None).await;
    SlackApp {
        running: Some(running),
        base,
        client: reqwest::Client::new(),
        fake,
        fake_base,
        _db: db,
    }
}

use common::{now_ts, slack_signature as sign};

impl SlackApp {
    async fn post_signed(
        &self,
        path: &str,
        body: &str,
        ts: i64,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sign(secret, ts, body))
            .body(body.to_string());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn slash(&self, user: &str, text: &str) -> Value {
        let body = serde_urlencoded::to_string([
            ("token", "x"),
            ("team_id", "T1"),
            ("team_domain", "acme"),
            ("channel_id", "CWORK"),
            ("channel_name", "work"),
            ("user_id", user),
            ("user_name", user),
            ("command", "/ops"),
            ("text", text),
            ("response_url", &format!("{}/respond", self.fake_base)),
            ("trigger_id", &common::trigger_id()),
        ])
        .unwrap();
        let resp = self
            .post_signed("/slack/commands", &body, now_ts(), SECRET, &[])
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    async fn press(
        &self,
        user: &str,
        action: &str,
        record: &str,
        message_ts: &str,
        channel: &str,
    ) -> reqwest::StatusCode {
        let payload = json!({
            "type": "block_actions",
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "username": user, "team_id": "T1"},
            "api_app_id": "A1",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
            "trigger_id": common::trigger_id(),
            "channel": {"id": channel, "name": "chan"},
            "response_url": format!("{}/respond", self.fake_base),
            "actions": [{"type": "button", "action_id": action, "block_id": "b", "value": record, "action_ts": "1700000001.000200"}]
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.post_signed("/slack/interactions", &body, now_ts(), SECRET, &[])
            .await
            .status()
    }

    fn ledger(&self) -> &opsledger::ledger::Ledger {
        &self.running.as_ref().unwrap().ledger
    }

    async fn record(&self, kind: Kind, key: &str) -> Option<Record> {
        self.ledger().store().get(kind, key).await.unwrap()
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

fn button_actions(call: &Call) -> Vec<String> {
    call.body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["action_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_command_raises_an_incident_and_posts_it_with_buttons() {
    let app = spawn_slack_app().await;

    let answer = app
        .slash(
            "U1",
            "incident raise Checkout down impact:high urgency:medium",
        )
        .await;

    assert_eq!(answer["response_type"], "in_channel");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .starts_with("INC-1 raised: Checkout down (P2)"),
        "{answer}"
    );
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!("no INC-1")
    };
    assert_eq!(inc.reporter.as_str(), "slack:U1");
    let calls = app
        .fake
        .wait_for("the incident post", |c| {
            c.iter().any(|x| x.body["channel"] == "CINC")
        })
        .await;
    let post = calls.iter().find(|x| x.body["channel"] == "CINC").unwrap();
    assert_eq!(post.method, "chat.postMessage");
    assert_eq!(
        button_actions(post),
        vec!["incident ack", "incident resolve"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_and_refusals_are_ephemeral() {
    let app = spawn_slack_app().await;
    let usage = app.slash("U1", "incident frobnicate").await;
    assert_eq!(usage["response_type"], "ephemeral");
    assert!(
        usage["text"].as_str().unwrap().contains("usage:"),
        "{usage}"
    );
    let refused = app.slash("U1", "incident close INC-9").await;
    assert_eq!(refused["response_type"], "ephemeral");
    assert_eq!(refused["text"], "no such incident INC-9");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_and_stale_timestamps_get_401_and_change_nothing() {
    let app = spawn_slack_app().await;
    let body = "team_id=T1&channel_id=C1&user_id=U1&command=%2Fops&text=incident+raise+x&response_url=http%3A%2F%2Fx&trigger_id=1";
    let forged = app
        .post_signed("/slack/commands", body, now_ts(), "not-the-secret", &[])
        .await;
    assert_eq!(forged.status(), 401);
    let stale = app
        .post_signed("/slack/commands", body, now_ts() - 301, SECRET, &[])
        .await;
    assert_eq!(stale.status(), 401);
    let unsigned = app
        .client
        .post(format!("{}/slack/commands", app.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(
        app.record(Kind::Incident, "INC-1").await.is_none(),
        "a rejected request created a record"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_button_updates_the_incident_and_its_message_in_place() {
    let app = spawn_slack_app().await;
    app.slash("U1", "incident raise Disk full").await;
    let posted = app.fake.wait_for("the post", |c| !c.is_empty()).await;
    let ts = "1700000000.000001";
    assert_eq!(posted[0].body["channel"], "CINC");

    assert_eq!(
        app.press("U2", "incident ack", "INC-1", ts, "CINC").await,
        200
    );

    let calls = app
        .fake
        .wait_for("the update", |c| {
            c.iter().any(|x| x.method == "chat.update")
        })
        .await;
    let update = calls.iter().find(|x| x.method == "chat.update").unwrap();
    assert_eq!(update.body["ts"], ts);
    assert_eq!(update.body["channel"], "CINC");
    assert_eq!(button_actions(update), vec!["incident resolve"]);
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert_eq!(inc.status.as_str(), "acknowledged");
    assert_eq!(inc.assignee.unwrap().as_str(), "slack:U2");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cab_vote_by_buttons_updates_the_message_each_time_and_refuses_a_self_vote() {
    let app = spawn_slack_app().await;
    app.slash("U1", "change request \"Upgrade Postgres\" type:normal")
        .await;
    let submitted = app.slash("U1", "change submit CHG-1").await;
    assert_eq!(submitted["response_type"], "in_channel");
    let calls = app
        .fake
        .wait_for("the CAB post", |c| {
            c.iter().any(|x| x.body["channel"] == "CCAB")
        })
        .await;
    let post = calls.iter().find(|x| x.body["channel"] == "CCAB").unwrap();
    assert_eq!(
        button_actions(post),
        vec!["change approve", "change reject"]
    );
    let ts = "1700000000.000001";

    // The requester's own vote is refused, and only they are told.
    assert_eq!(
        app.press("U1", "change approve", "CHG-1", ts, "CCAB").await,
        200
    );
    let calls = app
        .fake
        .wait_for("the refusal", |c| {
            c.iter().any(|x| x.method == "response_url")
        })
        .await;
    let refusal = calls.iter().find(|x| x.method == "response_url").unwrap();
    assert_eq!(
        refusal.body["text"],
        "you requested CHG-1, so you cannot vote on it"
    );

    assert_eq!(
        app.press("UCAB1", "change approve", "CHG-1", ts, "CCAB")
            .await,
        200
    );
    app.fake
        .wait_for("the first vote's update", |c| {
            c.iter().filter(|x| x.method == "chat.update").count() >= 1
        })
        .await;
    assert_eq!(
        app.press("UCAB2", "change approve", "CHG-1", ts, "CCAB")
            .await,
        200
    );
    let calls = app
        .fake
        .wait_for("the decision", |c| {
            c.iter().any(|x| {
                x.method == "chat.update"
                    && x.body["text"].as_str().unwrap_or("").contains("(approved)")
            })
        })
        .await;
    let updates: Vec<&Call> = calls.iter().filter(|x| x.method == "chat.update").collect();
    assert!(updates
        .iter()
        .all(|u| u.body["ts"] == ts && u.body["channel"] == "CCAB"));
    let first = serde_json::to_string(&updates[0].body).unwrap();
    assert!(
        first.contains("1/2 approvals: slack:UCAB1 approved"),
        "{first}"
    );
    let last = serde_json::to_string(&updates.last().unwrap().body).unwrap();
    assert!(last.contains("2/2 approvals"), "{last}");
    assert!(
        button_actions(updates.last().unwrap()).is_empty(),
        "no buttons once decided"
    );
    let Some(Record::Change(chg)) = app.record(Kind::Change, "CHG-1").await else {
        panic!()
    };
    assert_eq!(chg.status.as_str(), "approved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_500s_and_429s_and_arrive_in_order() {
    let app = spawn_slack_app().await;
    // Slack is down for a while: two 500s, then a 429 with Retry-After: 1.
    app.fake.fail_next(&[500, 500, 429]);
    for i in 1..=3 {
        app.slash("U1", &format!("incident raise Outage {i}")).await;
    }
    let calls = app
        .fake
        .wait_for("all three posts", |c| {
            c.iter().filter(|x| x.method == "chat.postMessage").count() == 3
        })
        .await;
    let texts: Vec<String> = calls
        .iter()
        .filter(|x| x.method == "chat.postMessage")
        .map(|x| x.body["text"].as_str().unwrap_or("").to_string())
        .collect();
    for (i, t) in texts.iter().enumerate() {
        assert!(
            t.starts_with(&format!("*INC-{}*", i + 1)),
            "out of order: {texts:?}"
        );
    }
    assert_eq!(app.fake.failures_left(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_answer_url_verification_and_a_retried_mention_creates_one_record() {
    let app = spawn_slack_app().await;
    let challenge = app
        .post_signed(
            "/slack/events",
            r#"{"type":"url_verification","token":"t","challenge":"c-123"}"#,
            now_ts(),
            SECRET,
            &[],
        )
        .await;
    assert_eq!(challenge.status(), 200);
    assert_eq!(
        challenge.json::<Value>().await.unwrap()["challenge"],
        "c-123"
    );

    let mention = json!({
        "type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev42", "event_time": 1700000000,
        "event": {"type": "app_mention", "user": "U1", "channel": "CWORK", "text": "<@UBOT> incident raise Mentioned outage", "ts": "1700000000.000100"}
    })
    .to_string();
    for retry in ["", "1", "2"] {
        let extra: Vec<(&str, &str)> = if retry.is_empty() {
            vec![]
        } else {
            vec![
                ("x-slack-retry-num", retry),
                ("x-slack-retry-reason", "http_timeout"),
            ]
        };
        let resp = app
            .post_signed("/slack/events", &mention, now_ts(), SECRET, &extra)
            .await;
        assert_eq!(resp.status(), 200);
    }
    let calls = app
        .fake
        .wait_for("the reply in the channel", |c| {
            c.iter().any(|x| x.body["channel"] == "CWORK")
        })
        .await;
    let reply = calls.iter().find(|x| x.body["channel"] == "CWORK").unwrap();
    assert!(reply.body["text"]
        .as_str()
        .unwrap()
        .starts_with("INC-1 raised: Mentioned outage"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.record(Kind::Incident, "INC-1").await.is_some());
    assert!(
        app.record(Kind::Incident, "INC-2").await.is_none(),
        "a retried delivery created a second record"
    );
    app.stop().await;
}

impl SlackApp {
    async fn submit_modal(
        &self,
        user: &str,
        callback_id: &str,
        record: &str,
        text: &str,
    ) -> reqwest::Response {
        let payload = json!({
            "type": "view_submission",
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "username": user, "team_id": "T1"},
            "api_app_id": "A1",
            "trigger_id": common::trigger_id(),
            "view": {
                "id": "V1", "team_id": "T1", "hash": "h1", "type": "modal",
                "title": {"type": "plain_text", "text": "x"}, "blocks": [],
                "callback_id": callback_id, "private_metadata": record,
                "state": {"values": {"text": {"value": {"type": "plain_text_input", "value": text}}}}
            }
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.post_signed("/slack/interactions", &body, now_ts(), SECRET, &[])
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_and_reject_buttons_ask_for_text_in_a_modal() {
    let app = spawn_slack_app().await;
    app.slash("U1", "incident raise Disk full").await;
    app.slash("U2", "incident ack INC-1").await;

    // Resolve opens a form instead of resolving at once.
    assert_eq!(
        app.press(
            "U2",
            "incident resolve",
            "INC-1",
            "1700000000.000001",
            "CINC"
        )
        .await,
        200
    );
    let calls = app
        .fake
        .wait_for("the modal", |c| c.iter().any(|x| x.method == "views.open"))
        .await;
    let modal = &calls
        .iter()
        .find(|x| x.method == "views.open")
        .unwrap()
        .body;
    // The modal opens with the press's own trigger.
    assert!(modal["trigger_id"]
        .as_str()
        .is_some_and(|t| t.starts_with("13345224609.")));
    assert_eq!(modal["view"]["callback_id"], "incident resolve");
    assert_eq!(modal["view"]["private_metadata"], "INC-1");
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert_eq!(
        inc.status.as_str(),
        "acknowledged",
        "pressing the button alone changes nothing"
    );

    // Submitting the form resolves with its text, quotes and all.
    let resp = app
        .submit_modal(
            "U2",
            "incident resolve",
            "INC-1",
            "restarted the 'api' pod; it's fine",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert_eq!(inc.status.as_str(), "resolved");
    assert_eq!(
        inc.resolution.as_deref(),
        Some("restarted the 'api' pod; it's fine")
    );

    // A refused submission shows the reason in the form itself.
    app.slash("U1", "change request Patch type:normal").await;
    app.slash("U1", "change submit CHG-1").await;
    let resp = app
        .submit_modal("U1", "change reject", "CHG-1", "I changed my mind")
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response_action"], "errors");
    assert_eq!(
        body["errors"]["text"],
        "you requested CHG-1, so you cannot vote on it"
    );
    let resp = app
        .submit_modal("UCAB1", "change reject", "CHG-1", "no rollback plan")
        .await;
    assert_eq!(resp.status(), 200);
    let Some(Record::Change(chg)) = app.record(Kind::Change, "CHG-1").await else {
        panic!()
    };
    assert_eq!(chg.status.as_str(), "rejected");
    assert_eq!(
        chg.approvals[0].comment.as_deref(),
        Some("no rollback plan")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p1_incident_gets_its_own_channel_with_the_reporter_updates_and_escalations() {
    let app = spawn_slack_app().await;

    app.slash(
        "U1",
        "incident raise Checkout down impact:high urgency:high",
    )
    .await;

    let calls = app
        .fake
        .wait_for("the channel and its summary", |c| {
            c.iter()
                .any(|x| x.method == "chat.postMessage" && x.body["channel"] == "COWN1")
        })
        .await;
    let create = calls
        .iter()
        .find(|x| x.method == "conversations.create")
        .unwrap();
    assert_eq!(create.body["name"], "inc-1-checkout-down");
    let invite = calls
        .iter()
        .find(|x| x.method == "conversations.invite")
        .unwrap();
    assert_eq!(invite.body["channel"], "COWN1");
    assert_eq!(
        invite.body["users"],
        json!(["U1"]),
        "the reporter is invited: {}",
        invite.body
    );
    let summary = calls
        .iter()
        .find(|x| x.method == "chat.postMessage" && x.body["channel"] == "COWN1")
        .unwrap();
    assert!(summary.body["text"]
        .as_str()
        .unwrap()
        .starts_with("*INC-1* Checkout down"));

    // The response target is 2 s in these rules: the SLA clock escalates into the channel.
    let calls = app
        .fake
        .wait_for("the escalation", |c| {
            c.iter().any(|x| {
                x.body["channel"] == "COWN1"
                    && x.body["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("missed its response target")
            })
        })
        .await;
    let escalation = calls
        .iter()
        .find(|x| {
            x.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("missed its response target")
        })
        .unwrap();
    assert!(escalation.body["text"].as_str().unwrap().contains("NC-1"));

    // Later updates to the record are posted in its channel too.
    app.slash("U2", "incident ack INC-1").await;
    app.fake
        .wait_for("the update in the channel", |c| {
            c.iter().any(|x| {
                x.body["channel"] == "COWN1"
                    && x.body["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("(acknowledged)")
            })
        })
        .await;
    app.stop().await;
}

/// A local stand-in for Slack's Socket Mode: `apps.connections.open` hands out a ws:// URL whose
/// server says hello, sends one slash command envelope and reports the acknowledgement.
async fn fake_socket_mode(command_text: &str) -> (String, tokio::sync::mpsc::Receiver<Value>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_url = format!("ws://{}/link", ws_listener.local_addr().unwrap());
    let (acks, acks_rx) = tokio::sync::mpsc::channel(8);
    let text = command_text.to_string();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((stream, _)) = ws_listener.accept().await {
            let acks = acks.clone();
            let send_command = std::mem::take(&mut first);
            let text = text.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                let hello = json!({"type": "hello", "num_connections": 1,
                    "debug_info": {"host": "fake", "build_number": 1, "approximate_connection_time": 3600},
                    "connection_info": {"app_id": "A1"}});
                ws.send(Message::text(hello.to_string())).await.unwrap();
                if send_command {
                    let envelope = json!({"envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": true,
                        "payload": {"token": "x", "team_id": "T1", "team_domain": "acme", "channel_id": "CWORK", "channel_name": "work",
                            "user_id": "U1", "user_name": "u1", "command": "/ops", "text": text,
                            "response_url": "https://hooks.slack.com/commands/1", "trigger_id": "13.9.z", "api_app_id": "A1"}});
                    ws.send(Message::text(envelope.to_string())).await.unwrap();
                }
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                            if v["envelope_id"] == "env-1" {
                                let _ = acks.send(v).await;
                            }
                        }
                    }
                }
            });
        }
    });
    (ws_url, acks_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_takes_a_slash_command_over_a_websocket_with_no_public_url() {
    // Arrange: Slack reachable only through Socket Mode (no signing secret, an app token).
    let (ws_url, mut acks) = fake_socket_mode("incident raise Socket outage").await;
    let opened = Arc::new(Mutex::new(Vec::<String>::new()));
    let api = Router::new().route(
        "/api/apps.connections.open",
        post({
            let (opened, ws_url) = (opened.clone(), ws_url.clone());
            move |headers: HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                opened.lock().unwrap().push(auth);
                Json(json!({"ok": true, "url": ws_url}))
            }
        }),
    );
    let api_base = format!("{}/api", fake::serve(api).await);
    let db = common::sqlite_db();
    let args = ServeArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        api_token: None,
        public_url: None,
        integrations: Integrations {
            slack: SlackSettings {
                slack_bot_token: Some("xoxb-test".to_string().into()),
                slack_app_token: Some("xapp-test".to_string().into()),
                slack_api_url: api_base,
                ..Default::default()
            },
            ..Integrations::default()
        },
        outbox: Default::default(),
        connections: Default::default(),
        retention: Default::default(),
        sessions: Default::default(),
        discord_defer_after: None,
    };

    // Act
    let running = app::serve(
        &args,
        db.store().await,
        Policy::from_toml(RULES).unwrap(),
        app::system_time_source(),
    )
    .await
    .expect("serve");
    let ack = tokio::time::timeout(Duration::from_secs(15), acks.recv())
        .await
        .expect("no acknowledgement")
        .unwrap();

    // Assert: the command ran through the same handlers and was answered on the socket.
    assert!(
        opened
            .lock()
            .unwrap()
            .iter()
            .all(|a| a == "Bearer xapp-test"),
        "{:?}",
        opened.lock().unwrap()
    );
    assert!(
        ack["payload"]["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("INC-1 raised: Socket outage"),
        "{ack}"
    );
    assert_eq!(ack["payload"]["response_type"], "in_channel");
    let Some(Record::Incident(inc)) = running
        .ledger
        .store()
        .get(Kind::Incident, "INC-1")
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(inc.reporter.as_str(), "slack:U1");
    // Over HTTP, Slack is off without a signing secret.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/slack/commands", running.addr))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_and_answers_render_as_snapshotted() {
    // Arrange
    let app = spawn_slack_app().await;

    // Act: an incident card, a CAB card with its vote buttons, a refusal.
    let raised = app
        .slash(
            "U1",
            "incident raise Checkout down impact:high urgency:medium service:shop",
        )
        .await;
    app.slash("U1", "change request \"Rotate keys\" type:normal risk:low")
        .await;
    app.slash("U1", "change submit CHG-1").await;
    let refused = app.slash("U1", "incident close INC-9").await;
    let calls = app
        .fake
        .wait_for("both cards", |c| {
            ["CINC", "CCAB"]
                .iter()
                .all(|ch| c.iter().any(|x| x.body["channel"] == *ch))
        })
        .await;
    let card = |channel: &str| {
        calls
            .iter()
            .find(|x| x.method == "chat.postMessage" && x.body["channel"] == channel)
            .unwrap()
            .body
            .clone()
    };

    // Assert
    insta::with_settings!({filters => common::SNAPSHOT_FILTERS.to_vec()}, {
        insta::assert_json_snapshot!("slack_raise_answer", raised);
        insta::assert_json_snapshot!("slack_incident_card", card("CINC"));
        insta::assert_json_snapshot!("slack_cab_card", card("CCAB"));
        insta::assert_json_snapshot!("slack_refusal", refused);
    });
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_alerts_updates_the_incident_card_in_place() {
    // Arrange: a group that grows one alert per notification, as Alertmanager sends it when
    // alerts keep joining, and each notification sent twice (a repeat).
    let app = spawn_slack_app().await;
    let notification = |n: usize, firing: bool| {
        let alerts: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "status": if firing { "firing" } else { "resolved" },
                    "labels": {"alertname": "HighLatency", "service": "shop", "severity": "warning", "instance": format!("shop-{i}")},
                    "annotations": {"summary": "Shop latency above 1s"},
                    "startsAt": "2026-12-01T09:00:00Z",
                    "endsAt": if firing { "0001-01-01T00:00:00Z" } else { "2026-12-01T10:00:00Z" },
                    "generatorURL": format!("http://prometheus.example/graph?i={i}"),
                    "fingerprint": format!("fp{i}"),
                })
            })
            .collect();
        json!({
            "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
            "status": if firing { "firing" } else { "resolved" }, "receiver": "ops",
            "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {"alertname": "HighLatency", "service": "shop"},
            "commonAnnotations": {"summary": "Shop latency above 1s"}, "externalURL": "http://am", "alerts": alerts,
        })
    };
    let send = |body: Value| {
        let req = app
            .client
            .post(format!("{}/alerts/alertmanager", app.base))
            .bearer_auth(ALERTS_TOKEN)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    };

    // Act: ten alerts join one by one, then all resolve.
    for n in 1..=10 {
        send(notification(n, true)).await;
        send(notification(n, true)).await;
    }
    send(notification(10, false)).await;

    // Assert: one card posted; every later change is an update of that card, and the last
    // shows the alerts resolved with Resolve first.
    let calls = app
        .fake
        .wait_for("the card updated to all resolved", |c| {
            c.iter().any(|x| {
                x.method == "chat.update" && x.body.to_string().contains("all 10 resolved")
            })
        })
        .await;
    let posts: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].body["channel"], "CINC");
    let last = calls
        .iter()
        .rev()
        .find(|c| c.method == "chat.update")
        .unwrap();
    assert_eq!(button_actions(last)[0], "incident resolve");
    let updates = calls.iter().filter(|c| c.method == "chat.update").count();
    assert!(
        updates <= 10,
        "one update per change at most, not per alert: {updates}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_alert_gets_a_card_and_a_room_like_any_major_incident() {
    // Arrange: Alertmanager's own first notification of a group (severity critical: a P1).
    let app = spawn_slack_app().await;
    let path = format!(
        "{}/tests/fixtures/alerts/alertmanager-0.25-firing.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read_to_string(path).unwrap();

    // Act
    let resp = app
        .client
        .post(format!("{}/alerts/alertmanager", app.base))
        .bearer_auth(ALERTS_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    // Assert: the card in the incident channel and a room, through the outbox.
    assert_eq!(resp.status(), 200);
    let calls = app
        .fake
        .wait_for("the card and the room", |c| {
            c.iter()
                .any(|x| x.method == "chat.postMessage" && x.body["channel"] == "CINC")
                && c.iter().any(|x| x.method == "conversations.create")
        })
        .await;
    let card = calls
        .iter()
        .find(|x| x.method == "chat.postMessage" && x.body["channel"] == "CINC")
        .unwrap();
    assert!(
        card.body
            .to_string()
            .contains("Checkout error rate above 5%"),
        "{}",
        card.body
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_a_direct_message_whose_acknowledge_button_stops_the_chain() {
    // Arrange: alice is on call (her Slack account in [people]); a P1 pages her, then waits.
    let rules = r#"
[roles]
admin = ["console:root"]

[people]
alice = ["slack:UALICE"]

[[oncall]]
name = "payments"
members = ["alice"]
rotation = "weekly"
start = "2026-01-05T09:00:00"
timezone = "Europe/Berlin"

[[escalation]]
name = "payments"
default = true
page = ["P1"]
steps = [{ notify = "oncall:payments" }, { wait = "10m" }, { notify = "channel" }]
"#;
    let app = spawn_slack_app_with(rules).await;

    // Act
    app.slash(
        "UCARL",
        "incident raise Payments down impact:high urgency:high",
    )
    .await;

    // Assert: Slack's conversations.open for alice, then the page posted in that DM.
    let calls = app
        .fake
        .wait_for("the page in alice's DM", |c| {
            c.iter()
                .any(|x| x.method == "chat.postMessage" && x.body["channel"] == "DUALICE")
        })
        .await;
    let open = calls
        .iter()
        .find(|x| x.method == "conversations.open")
        .expect("conversations.open");
    assert_eq!(open.body["users"], "UALICE");
    let page = calls
        .iter()
        .find(|x| x.body["channel"] == "DUALICE")
        .unwrap();
    assert!(
        page.body.to_string().contains("You are paged"),
        "{}",
        page.body
    );
    assert_eq!(
        button_actions(page),
        vec!["incident ack", "incident escalate"]
    );

    // Act 2: alice presses Acknowledge in her DM.
    let status = app
        .press(
            "UALICE",
            "incident ack",
            "INC-1",
            "1700000000.000009",
            "DUALICE",
        )
        .await;

    // Assert 2: acknowledged by her, and the chain stopped there.
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let inc = loop {
        if let Some(Record::Incident(i)) = app.record(Kind::Incident, "INC-1").await {
            if i.status.as_str() == "acknowledged" {
                break i;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "INC-1 was not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let esc = inc.escalation.unwrap();
    assert_eq!(esc.stopped.as_deref(), Some("acknowledged by slack:UALICE"));
    assert_eq!(esc.pages[0].who, "alice");
    assert_eq!(
        esc.pages[0].acknowledged_by.as_ref().unwrap().as_str(),
        "slack:UALICE"
    );
    // The delivery through her Slack account is noted on the page, with its time.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let Some(Record::Incident(i)) = app.record(Kind::Incident, "INC-1").await else {
            panic!("INC-1")
        };
        let page = i.escalation.unwrap().pages.remove(0);
        if let Some(d) = page.delivered.first() {
            assert_eq!(d.via, "slack:UALICE");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery not noted: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonconformity_goes_to_the_cab_channel_with_a_corrective_action_button() {
    let app = spawn_slack_app().await;

    // Act
    app.slash("U1", "nc raise Backups were not tested this quarter")
        .await;

    // Assert: the NC's card in the CAB channel; its button asks for the corrective action.
    let calls = app
        .fake
        .wait_for("the NC in the CAB channel", |c| {
            c.iter()
                .any(|x| x.method == "chat.postMessage" && x.body["channel"] == "CCAB")
        })
        .await;
    let post = calls
        .iter()
        .find(|x| x.method == "chat.postMessage" && x.body["channel"] == "CCAB")
        .unwrap();
    assert!(post.body.to_string().contains("NC-1"), "{}", post.body);
    assert_eq!(button_actions(post), vec!["nc correct"]);
    let status = app
        .press("UCAB1", "nc correct", "NC-1", "1700000000.000001", "CCAB")
        .await;
    assert_eq!(status, 200);
    let calls = app
        .fake
        .wait_for("the corrective action form", |c| {
            c.iter().any(|x| x.method == "views.open")
        })
        .await;
    // Once: one post of the NC to the CAB channel.
    let posts = calls
        .iter()
        .filter(|x| x.method == "chat.postMessage" && x.body["channel"] == "CCAB")
        .count();
    assert_eq!(posts, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_review_is_posted_to_the_cab_and_told_to_its_requester() {
    // Arrange: emergency changes are to be reviewed within a second.
    let rules = r#"
[roles]
admin = ["console:root"]
ecab = ["slack:UCAB1"]

[change.emergency]
approvals = 1
voters = "ecab"
review_within = "1s"
"#;
    let app = spawn_slack_app_with(rules).await;
    for (who, text) in [
        (
            "UREQ",
            "change request Hotfix the payment timeout type:emergency",
        ),
        ("UREQ", "change submit CHG-1"),
        ("UCAB1", "change approve CHG-1"),
        ("UREQ", "change start CHG-1"),
        ("UREQ", "change complete CHG-1"),
    ] {
        app.slash(who, text).await;
    }

    // Assert: the clock finds the review overdue; the CAB channel hears of it, and the requester
    // by direct message.
    let calls = app
        .fake
        .wait_for(
            "the requester's direct message and the CAB channel's notice",
            |c| {
                let posted = |channel: &str| {
                    c.iter().any(|x| {
                        x.method == "chat.postMessage"
                            && x.body["channel"] == channel
                            && x.body.to_string().contains("is overdue")
                    })
                };
                posted("DUREQ") && posted("CCAB")
            },
        )
        .await;
    let dm = calls.iter().find(|x| x.body["channel"] == "DUREQ").unwrap();
    assert!(
        dm.body.to_string().contains("review of *CHG-1* is overdue"),
        "{}",
        dm.body
    );
    let opened: Vec<&Value> = calls
        .iter()
        .filter(|x| x.method == "conversations.open")
        .map(|x| &x.body["users"])
        .collect();
    assert_eq!(opened, [&Value::String("UREQ".into())]);
    // Once each, however many ticks come after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let told = |channel: &str| {
        app.fake
            .calls()
            .iter()
            .filter(|x| {
                x.method == "chat.postMessage"
                    && x.body["channel"] == channel
                    && x.body.to_string().contains("review of *CHG-1* is overdue")
            })
            .count()
    };
    assert_eq!((told("DUREQ"), told("CCAB")), (1, 1));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_incident_is_nudged_in_chat_once() {
    // Arrange: incidents go stale after a second here.
    let rules = r#"
[roles]
admin = ["console:root"]

[incidents]
stale_after = "1s"
"#;
    let app = spawn_slack_app_with(rules).await;

    // Act: a P3 nobody touches.
    app.slash("U1", "incident raise Search is slow").await;

    // Assert: one nudge, in the incident channel (a P3 has no room of its own).
    app.fake
        .wait_for("the nudge", |c| {
            c.iter()
                .any(|x| x.body.to_string().contains("has had no update for 1s"))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let nudges: Vec<_> = app
        .fake
        .calls()
        .into_iter()
        .filter(|x| x.body.to_string().contains("has had no update for 1s"))
        .collect();
    assert_eq!(nudges.len(), 1, "{nudges:#?}");
    assert_eq!(nudges[0].body["channel"], "CINC");
    assert!(
        nudges[0].body.to_string().contains("nobody is assigned"),
        "{}",
        nudges[0].body
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_escape_reaches_the_cab_channel_once() {
    // Arrange: main of GitHub's example repository is protected.
    let fixture = |name: &str| -> Value {
        let path = format!(
            "{}/tests/fixtures/github/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut push = fixture("push.json");
    let repo = push["repository"]["full_name"]
        .as_str()
        .unwrap()
        .to_string();
    let rules = format!("{RULES}\n[github]\nprotected = [\"{repo}:main\"]\n");
    let app = spawn_slack_app_with(&rules).await;
    let mut commit = push["head_commit"].clone();
    commit["id"] = json!("1000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    commit["message"] = json!("Hotfix straight to main");
    push["ref"] = json!("refs/heads/main");
    push["after"] = commit["id"].clone();
    push["head_commit"] = commit.clone();
    push["commits"] = json!([commit]);
    let body = push.to_string();
    let signature = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };

    // Act: the push, and its redelivery.
    for _ in 0..2 {
        let resp = app
            .client
            .post(format!("{}/github/webhook", app.base))
            .header("content-type", "application/json")
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", "escape-1")
            .header("X-Hub-Signature-256", &signature)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    // Assert: its nonconformity, posted to the CAB channel once, with the button.
    let calls = app
        .fake
        .wait_for("the NC in the CAB channel", |c| {
            c.iter()
                .any(|x| x.method == "chat.postMessage" && x.body["channel"] == "CCAB")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts: Vec<Call> = app
        .fake
        .calls()
        .into_iter()
        .filter(|x| x.method == "chat.postMessage" && x.body["channel"] == "CCAB")
        .collect();
    assert_eq!(posts.len(), 1, "{calls:#?}");
    assert!(
        posts[0].body.to_string().contains("github.unapproved-push"),
        "{}",
        posts[0].body
    );
    assert_eq!(button_actions(&posts[0]), vec!["nc correct"]);
    app.stop().await;
}

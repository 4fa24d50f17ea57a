//! Paging end to end on a fake clock: a chain walks its steps in order through both platforms' direct messages and a signed webhook, and an Acknowledge pressed in a DM stops it.
use crate::common::{self, fake, TestTime};

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::command::Command;
use opsledger::domain::ids::{Actor, Kind};
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Record;
use opsledger::integrations::discord::DiscordSettings;
use opsledger::integrations::slack::SlackSettings;
use serde_json::{json, Value};

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const HOOK_SECRET: &str = "bridge-secret";

/// One call the fake got: (method, path, headers, body).
type Call = (String, String, HeaderMap, Value);
/// Every call the fake Slack, Discord and bridge got, in order.
type Calls = Arc<Mutex<Vec<Call>>>;
/// What a test waits for among the calls.
type Wanted = Box<dyn Fn(&Call) -> bool>;

/// One fake for all three, answering as each platform does (`common::fake`'s answers).
async fn fake_api(
    State(calls): State<Calls>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = {
        let mut c = calls.lock().unwrap();
        c.push((method.to_string(), path.clone(), headers, body.clone()));
        c.len() as u64
    };
    match path.as_str() {
        "/slack/api/conversations.open" => {
            Json(fake::slack::ok("conversations.open", &body, "", "")).into_response()
        }
        // The P1's own room, as for any major incident.
        "/slack/api/conversations.create" => {
            Json(fake::slack::ok("conversations.create", &body, "", "CROOM")).into_response()
        }
        "/slack/api/chat.postMessage" => Json(fake::slack::ok(
            "chat.postMessage",
            &body,
            &fake::slack::ts(n),
            "",
        ))
        .into_response(),
        "/api/v10/users/@me/channels" => Json(fake::discord::dm_channel(
            &fake::discord::snowflake(n),
            body["recipient_id"].as_str().unwrap_or_default(),
        ))
        .into_response(),
        p if p.starts_with("/api/v10/channels/") && p.ends_with("/messages") => {
            let channel = p.split('/').nth(4).unwrap_or_default().to_string();
            Json(fake::discord::message(
                &fake::discord::snowflake(n),
                &channel,
                &body,
            ))
            .into_response()
        }
        "/hook" => "ok".into_response(),
        _ => (axum::http::StatusCode::NOT_FOUND, "no such route").into_response(),
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_pages_discord_then_the_bridge_and_slack_and_a_dm_acknowledge_stops_it() {
    // Arrange: bob on Discord first; after five minutes the bridge and alice on Slack; after
    // five more the incident managers, whom nobody should need.
    let calls: Calls = Arc::default();
    let api = fake::serve(Router::new().fallback(fake_api).with_state(calls.clone())).await;
    let rules = format!(
        r#"
[roles]
admin = ["console:root"]
incident-manager = ["slack:UIM"]

[people]
alice = ["slack:UALICE"]
bob = ["discord:4242"]

[[escalation]]
name = "payments"
default = true
page = ["P1"]
steps = [
  {{ notify = "bob" }},
  {{ wait = "5m" }},
  {{ webhook = "{api}/hook" }},
  {{ notify = "alice" }},
  {{ wait = "5m" }},
  {{ notify = "role:incident-manager" }},
]
"#
    );
    let integrations = Integrations {
        slack: SlackSettings {
            slack_signing_secret: Some(SLACK_SECRET.to_string().into()),
            slack_bot_token: Some("xoxb-test".to_string().into()),
            slack_api_url: format!("{api}/slack/api"),
            ..Default::default()
        },
        discord: DiscordSettings {
            discord_public_key: Some(hex::encode(
                ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
                    .verifying_key()
                    .to_bytes(),
            )),
            discord_bot_token: Some("discord-test-token".to_string().into()),
            discord_application_id: Some(fake::discord::APP_ID.into()),
            discord_api_url: api.clone(),
            ..Default::default()
        },
        page_webhook_secret: Some(HOOK_SECRET.to_string().into()),
        ..Integrations::default()
    };
    let db = common::sqlite_db();
    let clock = TestTime::at(at("2026-12-01T10:00:00Z"));
    let args = ServeArgs {
        integrations,
        ..common::serve_args(None)
    };
    let running = opsledger::app::serve(
        &args,
        db.store().await,
        Policy::from_toml(&rules).unwrap(),
        clock.clone(),
    )
    .await
    .expect("serve");
    let base = format!("http://{}", running.addr);
    // Borrowed, not cloned: `stop` waits for every handle of the ledger to go.
    let ledger = &running.ledger;
    let tick = || ledger.handle(Actor::system(), Command::Tick);
    let seen = |pred: &dyn Fn(&Call) -> bool| calls.lock().unwrap().iter().any(pred);
    let wait = |what: &'static str, pred: Wanted| {
        let calls = calls.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while !calls.lock().unwrap().iter().any(&pred) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "timed out waiting for {what}: {:#?}",
                    calls
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|c| (&c.0, &c.1))
                        .collect::<Vec<_>>()
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };

    // Act 1: a P1 is raised: bob is paged on Discord.
    let raised = ledger
        .handle_text(
            common::actor("console:carl"),
            "incident raise Card payments failing impact:high urgency:high",
        )
        .await
        .reply;
    assert!(raised.text.starts_with("INC-1 raised"), "{}", raised.text);
    wait(
        "bob's page on Discord",
        Box::new(|c| {
            c.1.starts_with("/api/v10/channels/") && c.3.to_string().contains("You are paged")
        }),
    )
    .await;
    assert!(
        !seen(&|c| c.1 == "/slack/api/conversations.open" || c.1 == "/hook"),
        "nothing else before the wait ends: {:?}",
        calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| (&c.0, &c.1))
            .collect::<Vec<_>>()
    );

    // Act 2: five minutes on the clock: the bridge and alice.
    clock.set(at("2026-12-01T10:05:00Z"));
    tick().await;
    wait(
        "alice's page on Slack",
        Box::new(|c| c.1 == "/slack/api/chat.postMessage" && c.3["channel"] == "DUALICE"),
    )
    .await;
    wait("the bridge", Box::new(|c| c.1 == "/hook")).await;

    // Assert 2: in order, DM channels opened as each platform does, the webhook signed.
    let order: Vec<String> = calls.lock().unwrap().iter().map(|c| c.1.clone()).collect();
    let pos = |p: &str| order.iter().position(|o| o == p).unwrap_or(usize::MAX);
    assert!(
        pos("/api/v10/users/@me/channels") < pos("/hook"),
        "{order:?}"
    );
    // (The bridge and alice's DM are separate outbox queues, delivered side by side, so either
    // may go first; the record keeps the steps' order, checked below.)
    assert!(
        pos("/api/v10/users/@me/channels") < pos("/slack/api/conversations.open"),
        "{order:?}"
    );
    let (hook_headers, hook_body) = calls
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.1 == "/hook")
        .map(|c| (c.2.clone(), c.3.clone()))
        .unwrap();
    let want = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
        mac.update(hook_body.to_string().as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    // The body is the JSON the bridge got, byte for byte as serde_json writes it back.
    assert_eq!(hook_headers["x-opsledger-signature"], want.as_str());
    assert_eq!(hook_body["incident"], "INC-1");
    assert_eq!(hook_body["step"], 3);

    // Act 3: alice presses Acknowledge in her DM.
    let payload = json!({
        "type": "block_actions",
        "team": {"id": "T1", "domain": "acme"},
        "user": {"id": "UALICE", "username": "alice", "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": "1700000000.000009", "channel_id": "DUALICE", "is_ephemeral": false},
        "trigger_id": common::trigger_id(),
        "channel": {"id": "DUALICE", "name": "directmessage"},
        "response_url": format!("{api}/respond"),
        "actions": [{"type": "button", "action_id": "incident ack", "block_id": "b", "value": "INC-1", "action_ts": "1700000001.000200"}]
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let resp = common::slack_post(
        &reqwest::Client::new(),
        &format!("{base}/slack/interactions"),
        SLACK_SECRET,
        body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(Record::Incident(i)) =
            ledger.store().get(Kind::Incident, "INC-1").await.unwrap()
        {
            if i.status.as_str() == "acknowledged" {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "not acknowledged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Act 4: the next wait ends; nobody more is paged.
    clock.set(at("2026-12-01T10:10:00Z"));
    tick().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Assert: the incident managers were never paged, and the record holds the walk.
    assert!(
        !seen(&|c| c.3["users"] == "UIM"),
        "the chain stopped at the ack"
    );
    let Some(Record::Incident(inc)) = ledger.store().get(Kind::Incident, "INC-1").await.unwrap()
    else {
        panic!("INC-1")
    };
    let esc = inc.escalation.unwrap();
    let walk: Vec<(usize, &str)> = esc.pages.iter().map(|p| (p.step, p.who.as_str())).collect();
    assert_eq!(walk, [(1, "bob"), (3, "webhook"), (4, "alice")]);
    assert_eq!(esc.stopped.as_deref(), Some("acknowledged by slack:UALICE"));
    running.stop().await.unwrap();
}

//! One rule for an incident's own room, shown once for every chat platform: a Slack channel, a
//! Discord thread and a Mattermost channel open for an incident raised at P1/P2, declared major,
//! or re-prioritised to P1/P2, and for no other.
use crate::common::{self, fake};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::IntoResponse;
use axum::{Json, Router};
use opsledger::app;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::integrations::discord::DiscordSettings;
use opsledger::integrations::mattermost::MattermostSettings;
use opsledger::integrations::slack::SlackSettings;
use serde_json::Value;

const SLACK_INCIDENTS: &str = "CINCIDENTS";
const DISCORD_INCIDENTS: &str = "1300000000000000001";
const MATTERMOST_INCIDENTS: &str = "chincidents";

/// Every call either platform's fake API received: method, path and JSON body.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(Method, String, Value)>>>);

impl Calls {
    fn all(&self) -> Vec<(Method, String, Value)> {
        self.0.lock().unwrap().clone()
    }

    /// The Slack channels created, by name.
    fn slack_rooms(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(_, p, _)| p.ends_with("/conversations.create"))
            .map(|(_, _, b)| b["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The Discord threads started, by name.
    fn discord_rooms(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(m, p, _)| m == Method::POST && p.ends_with("/threads"))
            .map(|(_, _, b)| b["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The Mattermost channels opened, by name.
    fn mattermost_rooms(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(m, p, _)| m == Method::POST && p == "/mm/api/v4/channels")
            .map(|(_, _, b)| b["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The cards posted in a Mattermost channel.
    fn mattermost_posts(&self, channel: &str) -> usize {
        self.all()
            .iter()
            .filter(|(_, p, b)| p == "/mm/api/v4/posts" && b["channel_id"] == channel)
            .count()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Calls) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !pred(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; calls: {:#?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Answers as the platforms do, with the fields opsledger reads: Slack's `{"ok": true, ...}`
/// with a `ts` or a channel, Discord's created object with its snowflake `id`, Mattermost's
/// `201 Created` with the new post's or channel's `id`.
async fn fake_api(
    State(calls): State<Calls>,
    method: Method,
    uri: Uri,
    body: String,
) -> axum::response::Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    let n = {
        let mut c = calls.0.lock().unwrap();
        c.push((method.clone(), path.clone(), body.clone()));
        c.len()
    };
    if let Some(method) = path.strip_prefix("/slack/api/") {
        let ts = fake::slack::ts(n as u64);
        return Json(fake::slack::ok(method, &body, &ts, &format!("CROOM{n}"))).into_response();
    }
    if let Some(rest) = path.strip_prefix("/mm/api/v4/") {
        let created = serde_json::json!({"id": format!("mm{n}"), "channel_id": body["channel_id"], "name": body["name"]});
        return match rest.ends_with("/patch") {
            true => Json(created).into_response(),
            false => (axum::http::StatusCode::CREATED, Json(created)).into_response(),
        };
    }
    let id = fake::discord::snowflake(n as u64);
    match path.ends_with("/threads") {
        true => Json(fake::discord::thread(&id, DISCORD_INCIDENTS, &body["name"])),
        false => Json(fake::discord::message(&id, DISCORD_INCIDENTS, &body)),
    }
    .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_gets_a_room_on_every_platform_exactly_when_it_is_major() {
    // Arrange: Slack, Discord and Mattermost all on, against one fake API.
    let calls = Calls::default();
    let base = fake::serve(Router::new().fallback(fake_api).with_state(calls.clone())).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let integrations = Integrations {
        slack: SlackSettings {
            slack_signing_secret: Some("secret".to_string().into()),
            slack_bot_token: Some("xoxb-test".to_string().into()),
            slack_api_url: format!("{base}/slack/api"),
            slack_incident_channel: Some(SLACK_INCIDENTS.into()),
            ..Default::default()
        },
        discord: DiscordSettings {
            discord_public_key: Some(hex::encode(key.verifying_key().to_bytes())),
            discord_bot_token: Some("bot-token".to_string().into()),
            discord_application_id: Some("1100000000000000001".into()),
            discord_api_url: base.clone(),
            discord_incident_channel: Some(DISCORD_INCIDENTS.into()),
            ..Default::default()
        },
        mattermost: MattermostSettings {
            mattermost_url: format!("{base}/mm"),
            mattermost_bot_token: Some("bot-token".to_string().into()),
            mattermost_team_id: Some("team1".into()),
            mattermost_command_token: Some("command-token".to_string().into()),
            mattermost_action_secret: Some("action-secret".to_string().into()),
            mattermost_incident_channel: Some(MATTERMOST_INCIDENTS.into()),
            mattermost_cab_channel: None,
        },
        ..Integrations::default()
    };
    let db = common::sqlite_db();
    let args = ServeArgs {
        integrations,
        ..common::serve_args(None)
    };
    let running = app::serve(
        &args,
        db.store().await,
        common::team_policy(),
        app::system_time_source(),
    )
    .await
    .expect("serve");
    let ledger = running.ledger.clone();

    // Act and assert: a P4 and a P3 get cards, no room.
    common::ok(
        &ledger,
        "console:alice",
        "incident raise Slow search impact:low urgency:low",
    )
    .await;
    common::ok(
        &ledger,
        "console:alice",
        "incident raise Login errors impact:medium urgency:medium",
    )
    .await;
    calls
        .wait_for("both cards on every platform", |c| {
            let all = c.all();
            let slack = all
                .iter()
                .filter(|(_, p, _)| p.ends_with("/chat.postMessage"))
                .count();
            let discord = all
                .iter()
                .filter(|(m, p, _)| {
                    m == Method::POST
                        && p.ends_with(&format!("/channels/{DISCORD_INCIDENTS}/messages"))
                })
                .count();
            slack >= 2 && discord >= 2 && c.mattermost_posts(MATTERMOST_INCIDENTS) >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(calls.slack_rooms().is_empty(), "{:?}", calls.slack_rooms());
    assert!(
        calls.discord_rooms().is_empty(),
        "{:?}",
        calls.discord_rooms()
    );
    assert!(
        calls.mattermost_rooms().is_empty(),
        "{:?}",
        calls.mattermost_rooms()
    );

    // Declared major: a room on each.
    common::ok(&ledger, "console:alice", "incident major INC-2").await;
    calls
        .wait_for("INC-2's rooms", |c| {
            c.slack_rooms().iter().any(|n| n.starts_with("inc-2-"))
                && c.discord_rooms().iter().any(|n| n.contains("INC-2"))
                && c.mattermost_rooms().iter().any(|n| n.starts_with("inc-2-"))
        })
        .await;

    // Re-prioritised to P2: a room on each.
    common::ok(
        &ledger,
        "console:alice",
        "incident priority INC-1 impact:high urgency:medium",
    )
    .await;
    calls
        .wait_for("INC-1's rooms", |c| {
            c.slack_rooms().iter().any(|n| n.starts_with("inc-1-"))
                && c.discord_rooms().iter().any(|n| n.contains("INC-1"))
                && c.mattermost_rooms().iter().any(|n| n.starts_with("inc-1-"))
        })
        .await;

    // Raised at P1: a room on each.
    common::ok(
        &ledger,
        "console:alice",
        "incident raise Checkout down impact:high urgency:high",
    )
    .await;
    calls
        .wait_for("INC-3's rooms", |c| {
            c.slack_rooms().iter().any(|n| n.starts_with("inc-3-"))
                && c.discord_rooms().iter().any(|n| n.contains("INC-3"))
                && c.mattermost_rooms().iter().any(|n| n.starts_with("inc-3-"))
        })
        .await;

    // Later updates post into the rooms; none is opened twice.
    common::ok(&ledger, "console:alice", "incident ack INC-3").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(calls.slack_rooms().len(), 3, "{:?}", calls.slack_rooms());
    assert_eq!(
        calls.discord_rooms().len(),
        3,
        "{:?}",
        calls.discord_rooms()
    );
    assert_eq!(
        calls.mattermost_rooms().len(),
        3,
        "{:?}",
        calls.mattermost_rooms()
    );
    // The writer finishes once every handle on the ledger is gone.
    drop(ledger);
    running.stop().await.unwrap();
}

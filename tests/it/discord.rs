//! Discord end to end: interactions signed with an Ed25519 key exactly as Discord signs them, and
//! a local fake Discord REST API (`DISCORD_API_URL`) that records what opsledger sends.
use crate::common::{self, fake};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::{Json, Router};
use ed25519_dalek::{Signer, SigningKey};
use opsledger::app::Running;
use opsledger::config::Integrations;
use opsledger::domain::ids::Kind;
use opsledger::domain::records::Record;
use opsledger::integrations::discord::DiscordSettings;
use opsledger::integrations::slack::SlackSettings;
use serde_json::{json, Value};

use fake::discord::{APP_ID, GUILD};
const BOT_TOKEN: &str = "discord-test-token";
const INCIDENTS: &str = "1300000000000000001";
const CAB: &str = "1300000000000000002";
const WORK: &str = "1300000000000000003";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// Request headers as (name, value) pairs.
type Headers = Vec<(&'static str, String)>;

/// One call the fake Discord API received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

/// A fake Discord REST API: records calls, and answers queued failure statuses first.
#[derive(Clone, Default)]
struct FakeDiscord {
    rec: common::fake::Recorder<Call>,
    ids: Arc<AtomicU64>,
}

impl std::ops::Deref for FakeDiscord {
    type Target = common::fake::Recorder<Call>;
    fn deref(&self) -> &Self::Target {
        &self.rec
    }
}

async fn fake_api(
    State(fake): State<FakeDiscord>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let path = uri.path().to_string();
    if let Some(status) = fake.next_failure() {
        return fake::discord::failure(status);
    }
    // Interaction webhooks are authorised by their token; everything else by the bot token.
    if !path.starts_with("/api/v10/webhooks/") {
        assert_eq!(
            headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bot {BOT_TOKEN}").as_str()),
            "the bot token is sent"
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.push(Call {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
    });
    let id = fake::discord::snowflake(fake.ids.fetch_add(1, Ordering::SeqCst));
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["channels", channel, "messages"]) => {
            Json(fake::discord::message(&id, channel, &body)).into_response()
        }
        ("PATCH", ["channels", channel, "messages", message]) => {
            Json(fake::discord::message(message, channel, &body)).into_response()
        }
        ("POST", ["channels", channel, "messages", _, "threads"]) => {
            Json(fake::discord::thread(&id, channel, &body["name"])).into_response()
        }
        ("POST", ["users", "@me", "channels"]) => {
            let recipient = body["recipient_id"].as_str().unwrap_or_default();
            Json(fake::discord::dm_channel(&id, recipient)).into_response()
        }
        ("POST", ["webhooks", _, _]) => {
            Json(fake::discord::message(&id, WORK, &body)).into_response()
        }
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) => {
            Json(fake::discord::message(&id, WORK, &body)).into_response()
        }
        ("PUT", ["applications", _, "commands"])
        | ("PUT", ["applications", _, "guilds", _, "commands"]) => {
            let registered: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["id"] = json!(format!("150000000000000000{i}"));
                    c["application_id"] = json!(APP_ID);
                    c["version"] = json!("1");
                    c
                })
                .collect();
            Json(Value::Array(registered)).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Unknown route", "code": 0})),
        )
            .into_response(),
    }
}

impl FakeDiscord {
    async fn start() -> (FakeDiscord, String) {
        let fake = FakeDiscord::default();
        let app = Router::new().fallback(fake_api).with_state(fake.clone());
        (fake, fake::serve(app).await)
    }
}

fn posts_to<'a>(calls: &'a [Call], channel: &str) -> Vec<&'a Call> {
    let path = format!("/api/v10/channels/{channel}/messages");
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == path)
        .collect()
}

fn custom_ids(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_string))
        .collect()
}

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["slack:UCAB1", "discord:4242", "discord:4343"]

incident-manager = ["discord:4444"]

[people]
alice = ["slack:U0ALICE", "discord:4141"]

[change.normal]
approvals = 2
"#;

struct DiscordApp {
    running: Option<Running>,
    base: String,
    client: reqwest::Client,
    fake: FakeDiscord,
    seq: AtomicU64,
    _db: common::TestDb,
}

async fn spawn_discord_app() -> DiscordApp {
    spawn_discord_app_with(None).await
}

/// Discord (and Slack over HTTP, for votes from both) against the fake API.
async fn spawn_discord_app_with(defer_after: Option<Duration>) -> DiscordApp {
    spawn_discord_app_ruled(defer_after, RULES).await
}

async fn spawn_discord_app_ruled(defer_after: Option<Duration>, rules: &str) -> DiscordApp {
    spawn_app_on(defer_after, rules, |_, _| {}).await
}

/// Discord and Slack, with `more` adding settings (another platform) to theirs.
async fn spawn_app_on(
    defer_after: Option<Duration>,
    rules: &str,
    more: impl FnOnce(&mut Integrations, &str),
) -> DiscordApp {
    let (fake, fake_base) = FakeDiscord::start().await;
    let mut integrations = Integrations {
        discord: DiscordSettings {
            discord_public_key: Some(public_key_hex()),
            discord_bot_token: Some(BOT_TOKEN.to_string().into()),
            discord_application_id: Some(APP_ID.into()),
            discord_api_url: fake_base.clone(),
            discord_incident_channel: Some(INCIDENTS.into()),
            discord_cab_channel: Some(CAB.into()),
        },
        slack: SlackSettings {
            slack_signing_secret: Some(SLACK_SECRET.to_string().into()),
            slack_bot_token: Some("xoxb-test".to_string().into()),
            // No fake Slack here: its posts fail and stay queued, which these tests do not read.
            slack_api_url: format!("{fake_base}/slack"),
            ..Default::default()
        },
        ..Integrations::default()
    };
    more(&mut integrations, &fake_base);
    let (running, base, db) = common::serve_platforms(integrations, rules, defer_after).await;
    DiscordApp {
        running: Some(running),
        base,
        client: reqwest::Client::new(),
        fake,
        seq: AtomicU64::new(1),
        _db: db,
    }
}

use common::{now_ts, slack_signature};

/// Signs exactly as Discord does: Ed25519 over the timestamp followed by the body, hex-encoded.
fn sign(key: &SigningKey, ts: &str, body: &str) -> String {
    hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes())
}

fn user(id: &str) -> Value {
    json!({"id": id, "username": format!("user{id}"), "discriminator": "0", "global_name": null, "avatar": null, "public_flags": 0})
}

fn member(id: &str) -> Value {
    json!({
        "user": user(id), "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "premium_since": null, "deaf": false, "mute": false, "flags": 0, "pending": false,
        "nick": null, "avatar": null, "permissions": "2147483647", "communication_disabled_until": null
    })
}

fn slash_data(
    name: &str,
    sub: Option<&str>,
    options: &[(&str, &str)],
    focused: Option<&str>,
) -> Value {
    let opts: Vec<Value> = options
        .iter()
        .map(|(k, v)| {
            let mut o = json!({"name": k, "type": 3, "value": v});
            if focused == Some(*k) {
                o["focused"] = json!(true);
            }
            o
        })
        .collect();
    let options = match sub {
        Some(s) => json!([{"name": s, "type": 1, "options": opts}]),
        None => Value::Array(opts),
    };
    json!({"id": "1600000000000000001", "name": name, "type": 1, "options": options})
}

impl DiscordApp {
    /// A guild interaction of `kind` by `user_id`, as Discord sends it.
    fn interaction(&self, kind: u8, user_id: &str, data: Value, message: Option<Value>) -> Value {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let mut i = json!({
            "id": format!("17000000000000{n:05}"), "application_id": APP_ID, "type": kind,
            "data": data, "guild_id": GUILD, "channel_id": WORK, "member": member(user_id),
            "token": format!("interaction-token-{n}"), "version": 1,
            "app_permissions": "2147483647", "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": GUILD}, "context": 0,
            "attachment_size_limit": 10485760
        });
        if let Some(m) = message {
            i["message"] = m;
        }
        i
    }

    async fn post_raw(&self, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/discord/interactions", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap()
    }

    async fn post_signed(&self, body: &Value) -> Value {
        let body = body.to_string();
        let ts = now_ts().to_string();
        let resp = self
            .post_raw(
                &body,
                &[
                    ("X-Signature-Timestamp", ts.clone()),
                    ("X-Signature-Ed25519", sign(&signing_key(), &ts, &body)),
                ],
            )
            .await;
        assert_eq!(resp.status(), 200, "a signed interaction is accepted");
        resp.json().await.unwrap()
    }

    async fn slash(
        &self,
        user_id: &str,
        name: &str,
        sub: Option<&str>,
        options: &[(&str, &str)],
    ) -> Value {
        let i = self.interaction(2, user_id, slash_data(name, sub, options, None), None);
        self.post_signed(&i).await
    }

    async fn ops(&self, user_id: &str, text: &str) -> Value {
        self.slash(user_id, "ops", None, &[("command", text)]).await
    }

    /// Presses a button on a posted message (whose JSON the fake API recorded).
    async fn press(&self, user_id: &str, custom_id: &str, message: &Value) -> Value {
        let data = json!({"custom_id": custom_id, "component_type": 2});
        let i = self.interaction(3, user_id, data, Some(message.clone()));
        self.post_signed(&i).await
    }

    async fn submit(
        &self,
        user_id: &str,
        custom_id: &str,
        text: &str,
        message: Option<&Value>,
    ) -> Value {
        let data = json!({"custom_id": custom_id, "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "text", "value": text}]}
        ]});
        let i = self.interaction(5, user_id, data, message.cloned());
        self.post_signed(&i).await
    }

    /// Votes from Slack: a signed `/ops` slash command, as Slack sends it.
    async fn slack_slash(&self, user_id: &str, text: &str) -> Value {
        let body = serde_urlencoded::to_string([
            ("team_id", "T1"),
            ("channel_id", "CWORK"),
            ("user_id", user_id),
            ("user_name", user_id),
            ("command", "/ops"),
            ("text", text),
            ("response_url", "http://127.0.0.1:9/respond"),
            ("trigger_id", &common::trigger_id()),
        ])
        .unwrap();
        let ts = now_ts();
        let sig = slack_signature(SLACK_SECRET, ts, &body);
        let resp = self
            .client
            .post(format!("{}/slack/commands", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    fn ledger(&self) -> &opsledger::ledger::Ledger {
        &self.running.as_ref().unwrap().ledger
    }

    async fn record(&self, kind: Kind, key: &str) -> Option<Record> {
        self.ledger().store().get(kind, key).await.unwrap()
    }

    async fn audit_len(&self) -> i64 {
        self.ledger().store().chain_head().await.unwrap().0
    }

    /// The message (or thread) opsledger remembers for `record`. The fake records a call before
    /// it answers, and the reference is written after the answer arrives: wait for it as for
    /// any other delivery.
    async fn message_ref(&self, record: &str, platform: &str, channel: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let store = self.ledger().store();
            if let Some(id) = store.message_ref(record, platform, channel).await.unwrap() {
                return id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {platform} reference for {record} in {channel:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The message the fake API last stored for a record's card in `channel`.
    async fn posted_card(&self, channel: &str, record: &str) -> Value {
        let calls = self
            .fake
            .wait_for(&format!("{record} posted to {channel}"), |calls| {
                posts_to(calls, channel)
                    .iter()
                    .any(|c| c.body["content"].as_str().unwrap_or("").contains(record))
            })
            .await;
        let post = posts_to(&calls, channel)
            .into_iter()
            .find(|c| c.body["content"].as_str().unwrap_or("").contains(record))
            .unwrap()
            .clone();
        let id = self.message_ref(record, "discord", channel).await;
        fake::discord::message(&id, channel, &post.body)
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong() {
    // Arrange
    let app = spawn_discord_app().await;
    let ping = json!({"id": "1", "application_id": APP_ID, "type": 1, "token": "t", "version": 1});

    // Act
    let answer = app.post_signed(&ping).await;

    // Assert
    assert_eq!(answer["type"], 1);
    app.stop().await;
}

#[tokio::test]
async fn invalid_signatures_missing_headers_and_stale_timestamps_get_401_and_change_nothing() {
    // Arrange
    let app = spawn_discord_app().await;
    let body = app
        .interaction(
            2,
            "4141",
            slash_data("ops", None, &[("command", "incident raise Forged")], None),
            None,
        )
        .to_string();
    let before = app.audit_len().await;
    let now = now_ts().to_string();
    let stale = (now_ts() - 301).to_string();
    let future = (now_ts() + 301).to_string();
    let other_key = SigningKey::from_bytes(&[9u8; 32]);
    let tampered = body.replace("Forged", "Tampered");
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("no headers", vec![], &body),
        (
            "no signature",
            vec![("X-Signature-Timestamp", now.clone())],
            &body,
        ),
        (
            "no timestamp",
            vec![("X-Signature-Ed25519", sign(&signing_key(), &now, &body))],
            &body,
        ),
        (
            "signed by another key",
            vec![
                ("X-Signature-Timestamp", now.clone()),
                ("X-Signature-Ed25519", sign(&other_key, &now, &body)),
            ],
            &body,
        ),
        (
            "body changed after signing",
            vec![
                ("X-Signature-Timestamp", now.clone()),
                ("X-Signature-Ed25519", sign(&signing_key(), &now, &body)),
            ],
            &tampered,
        ),
        (
            "stale timestamp",
            vec![
                ("X-Signature-Timestamp", stale.clone()),
                ("X-Signature-Ed25519", sign(&signing_key(), &stale, &body)),
            ],
            &body,
        ),
        (
            "timestamp from the future",
            vec![
                ("X-Signature-Timestamp", future.clone()),
                ("X-Signature-Ed25519", sign(&signing_key(), &future, &body)),
            ],
            &body,
        ),
        (
            "signature not hex",
            vec![
                ("X-Signature-Timestamp", now.clone()),
                ("X-Signature-Ed25519", "zz".repeat(64)),
            ],
            &body,
        ),
    ];

    // Act
    let mut statuses = Vec::new();
    for (what, headers, body) in &cases {
        statuses.push((*what, app.post_raw(body, headers).await.status().as_u16()));
    }

    // Assert
    for (what, status) in statuses {
        assert_eq!(status, 401, "{what} is refused with 401");
    }
    assert_eq!(app.audit_len().await, before, "nothing was recorded");
    assert!(app.record(Kind::Incident, "INC-1").await.is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_text_command_raises_an_incident_posts_it_with_buttons_and_opens_a_thread_for_a_p1() {
    // Arrange
    let app = spawn_discord_app().await;

    // Act
    let answer = app
        .ops(
            "4141",
            "incident raise \"Checkout down\" impact:high urgency:high service:shop",
        )
        .await;

    // Assert: answered at once in the channel, naming the record.
    assert_eq!(answer["type"], 4);
    assert!(answer["data"]["content"]
        .as_str()
        .unwrap()
        .contains("INC-1"));
    assert_ne!(
        answer["data"]["flags"], 64,
        "a change is shown to the channel"
    );
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!("INC-1 exists");
    };
    assert_eq!(inc.reporter.as_str(), "discord:4141");
    assert_eq!(inc.priority.as_str(), "P1");
    // The card goes to the incident channel with its buttons, then a thread opens on it.
    let calls = app
        .fake
        .wait_for("a thread with the card in it", |calls| {
            calls.iter().any(|c| c.path.ends_with("/threads"))
                && calls
                    .iter()
                    .filter(|c| c.method == "POST" && c.path.ends_with("/messages"))
                    .count()
                    >= 2
        })
        .await;
    let card = posts_to(&calls, INCIDENTS)[0];
    assert_eq!(
        custom_ids(&card.body),
        ["incident ack:INC-1", "incident resolve:INC-1"]
    );
    assert!(card.body["embeds"][0]["fields"].as_array().unwrap().len() > 2);
    let thread_call = calls.iter().find(|c| c.path.ends_with("/threads")).unwrap();
    assert!(thread_call
        .path
        .starts_with(&format!("/api/v10/channels/{INCIDENTS}/messages/")));
    assert_eq!(thread_call.body["name"], "INC-1 Checkout down");
    app.stop().await;
}

#[tokio::test]
async fn an_incident_declared_major_later_gets_its_thread_then_updates_in_it() {
    // Arrange: a P4 gets no thread.
    let app = spawn_discord_app().await;
    app.ops(
        "4141",
        "incident raise \"Slow search\" impact:low urgency:low",
    )
    .await;
    app.posted_card(INCIDENTS, "INC-1").await;
    let threads = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| c.path.ends_with("/threads"))
            .count()
    };

    // Act
    let major = app.ops("4444", "incident major INC-1").await;
    let calls = app
        .fake
        .wait_for("a thread for the major incident", |calls| {
            threads(calls) == 1
        })
        .await;
    let thread_id = app.message_ref("INC-1", "discord-thread", "").await;
    app.ops("4141", "incident ack INC-1").await;

    // Assert
    assert_eq!(major["type"], 4, "{major}");
    assert_eq!(threads(&calls), 1);
    app.fake
        .wait_for("the acknowledgement posted in the thread", |calls| {
            posts_to(calls, &thread_id)
                .iter()
                .any(|c| c.body.to_string().contains("acknowledged"))
        })
        .await;
    assert_eq!(
        threads(&app.fake.calls()),
        1,
        "one thread, however many updates"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_public_key_stops_serve_with_a_message_naming_the_variable() {
    // Arrange
    let integrations = Integrations {
        discord: DiscordSettings {
            discord_public_key: Some("not-a-key".into()),
            discord_bot_token: Some(BOT_TOKEN.to_string().into()),
            discord_application_id: Some(APP_ID.into()),
            ..Default::default()
        },
        ..Integrations::default()
    };
    let db = common::sqlite_db();
    let args = opsledger::config::ServeArgs {
        integrations,
        ..common::serve_args(None)
    };

    // Act
    let result = opsledger::app::serve(
        &args,
        db.store().await,
        common::team_policy(),
        opsledger::app::system_time_source(),
    )
    .await;

    // Assert
    let err = result.err().expect("serve refuses to start").to_string();
    assert!(err.contains("DISCORD_PUBLIC_KEY"), "{err}");
}

#[tokio::test]
async fn a_structured_subcommand_takes_typed_options_and_keeps_the_title_literally() {
    // Arrange
    let app = spawn_discord_app().await;

    // Act
    let answer = app
        .slash(
            "4141",
            "incident",
            Some("raise"),
            &[
                ("title", "DB slow impact:high \"quoted\""),
                ("impact", "low"),
                ("urgency", "medium"),
                ("service", "db"),
            ],
        )
        .await;
    let bad = app
        .slash(
            "4141",
            "change",
            Some("request"),
            &[
                ("title", "Upgrade"),
                ("type", "normal"),
                ("window", "tonight"),
            ],
        )
        .await;

    // Assert
    assert_eq!(answer["type"], 4);
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!("INC-1 exists");
    };
    assert_eq!(inc.title, "DB slow impact:high \"quoted\"");
    assert_eq!(inc.service.as_deref(), Some("db"));
    assert_eq!(inc.priority.as_str(), "P4");
    // A bad option gets the command's usage, to the sender alone, and records nothing.
    assert_eq!(bad["data"]["flags"], 64);
    assert!(bad["data"]["content"].as_str().unwrap().contains("window:"));
    assert!(app.record(Kind::Change, "CHG-1").await.is_none());
    app.stop().await;
}

#[tokio::test]
async fn record_id_options_autocomplete_from_open_records_matching_what_was_typed() {
    // Arrange
    let app = spawn_discord_app().await;
    for title in ["Upgrade DB", "Rotate keys", "Add index"] {
        app.ops("4141", &format!("change request \"{title}\" type:normal"))
            .await;
    }
    app.ops("4141", "change submit CHG-1").await;
    app.ops("4141", "change submit CHG-2").await;
    let complete = |typed: &str| {
        app.interaction(
            4,
            "4242",
            slash_data("change", Some("approve"), &[("id", typed)], Some("id")),
            None,
        )
    };

    // Act
    let all = app.post_signed(&complete("")).await;
    let filtered = app.post_signed(&complete("rotate")).await;

    // Assert: only submitted changes (CHG-3 is a draft), newest first.
    assert_eq!(all["type"], 8);
    let values: Vec<&str> = all["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["CHG-2", "CHG-1"]);
    assert_eq!(filtered["data"]["choices"][0]["value"], "CHG-2");
    assert!(filtered["data"]["choices"][0]["name"]
        .as_str()
        .unwrap()
        .contains("Rotate keys"));
    assert_eq!(filtered["data"]["choices"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn button_votes_update_the_card_with_the_tally_and_the_decision() {
    // Arrange
    let app = spawn_discord_app().await;
    app.ops("4141", "change request \"Upgrade DB\" type:normal")
        .await;
    app.ops("4141", "change submit CHG-1").await;
    let card = app.posted_card(CAB, "CHG-1").await;
    assert_eq!(
        custom_ids(&card),
        ["change approve:CHG-1", "change reject:CHG-1"]
    );

    // Act
    let first = app.press("4242", "change approve:CHG-1", &card).await;
    let self_vote = app.press("4141", "change approve:CHG-1", &card).await;
    let second = app.press("4343", "change approve:CHG-1", &card).await;

    // Assert: each vote redraws the message it was pressed on.
    assert_eq!(first["type"], 7);
    let first_text = first["data"].to_string();
    assert!(first_text.contains("1/2 approvals"), "{first_text}");
    assert_eq!(self_vote["type"], 4, "a refusal is a separate message");
    assert_eq!(self_vote["data"]["flags"], 64, "shown to the presser alone");
    let refusal = self_vote["data"].to_string();
    assert!(refusal.contains("you requested CHG-1"), "{refusal}");
    assert!(refusal.contains("segregation-of-duties"), "{refusal}");
    assert_eq!(second["type"], 7);
    let second_text = second["data"].to_string();
    assert!(second_text.contains("2/2 approvals"), "{second_text}");
    assert!(second_text.contains("approved"));
    assert!(
        custom_ids(&second["data"]).is_empty(),
        "no more votes once decided"
    );
    let Some(Record::Change(c)) = app.record(Kind::Change, "CHG-1").await else {
        panic!("CHG-1 exists");
    };
    assert_eq!(c.status.to_string(), "approved");
    // The CAB channel's message is also edited in place through the outbox.
    app.fake
        .wait_for("the CAB card edited", |calls| {
            calls.iter().any(|c| {
                c.method == "PATCH"
                    && c.path
                        .starts_with(&format!("/api/v10/channels/{CAB}/messages/"))
                    && c.body.to_string().contains("2/2 approvals")
            })
        })
        .await;
    app.stop().await;
}

#[tokio::test]
async fn resolve_and_reject_buttons_open_a_modal_whose_text_is_recorded() {
    // Arrange
    let app = spawn_discord_app().await;
    app.ops(
        "4141",
        "incident raise \"Queue stuck\" impact:low urgency:low",
    )
    .await;
    app.ops("4141", "change request \"Drop table\" type:normal")
        .await;
    app.ops("4141", "change submit CHG-1").await;
    let incident_card = app.posted_card(INCIDENTS, "INC-1").await;
    let change_card = app.posted_card(CAB, "CHG-1").await;

    app.ops("4141", "incident ack INC-1").await;

    // Act
    let modal = app
        .press("4141", "incident resolve:INC-1", &incident_card)
        .await;
    let resolved = app
        .submit(
            "4141",
            "incident resolve:INC-1",
            "Restarted the consumer",
            Some(&incident_card),
        )
        .await;
    let reject_modal = app.press("4242", "change reject:CHG-1", &change_card).await;
    let rejected = app
        .submit(
            "4242",
            "change reject:CHG-1",
            "No rollback plan",
            Some(&change_card),
        )
        .await;
    let refused = app
        .submit("4242", "change reject:CHG-1", "again", Some(&change_card))
        .await;

    // Assert
    assert_eq!(modal["type"], 9);
    assert_eq!(modal["data"]["custom_id"], "incident resolve:INC-1");
    assert_eq!(
        modal["data"]["components"][0]["components"][0]["custom_id"],
        "text"
    );
    assert_eq!(reject_modal["type"], 9);
    assert_eq!(resolved["type"], 7, "the card is redrawn: {resolved}");
    assert_eq!(rejected["type"], 7);
    let Some(Record::Incident(inc)) = app.record(Kind::Incident, "INC-1").await else {
        panic!("INC-1 exists");
    };
    assert_eq!(inc.status.to_string(), "resolved");
    let Some(Record::Change(c)) = app.record(Kind::Change, "CHG-1").await else {
        panic!("CHG-1 exists");
    };
    assert_eq!(c.status.to_string(), "rejected");
    assert_eq!(c.approvals[0].comment.as_deref(), Some("No rollback plan"));
    assert_eq!(refused["type"], 4);
    assert_eq!(refused["data"]["flags"], 64);
    app.stop().await;
}

#[tokio::test]
async fn a_cab_decision_is_reached_with_one_vote_from_slack_and_one_from_discord() {
    // Arrange: alice requests on Slack; her Discord account may not vote on it.
    let app = spawn_discord_app().await;
    app.slack_slash("U0ALICE", "change request \"Upgrade DB\" type:normal")
        .await;
    app.slack_slash("U0ALICE", "change submit CHG-1").await;
    let card = app.posted_card(CAB, "CHG-1").await;

    // Act
    let alice_on_discord = app.press("4141", "change approve:CHG-1", &card).await;
    let from_slack = app.slack_slash("UCAB1", "change approve CHG-1").await;
    let from_discord = app.press("4242", "change approve:CHG-1", &card).await;

    // Assert
    assert_eq!(alice_on_discord["data"]["flags"], 64);
    let refusal = alice_on_discord["data"].to_string();
    assert!(refusal.contains("segregation-of-duties"), "{refusal}");
    assert!(from_slack["text"].as_str().unwrap().contains("CHG-1"));
    assert_eq!(from_discord["type"], 7);
    let Some(Record::Change(c)) = app.record(Kind::Change, "CHG-1").await else {
        panic!("CHG-1 exists");
    };
    assert_eq!(c.status.to_string(), "approved");
    let voters: Vec<&str> = c.approvals.iter().map(|a| a.voter.as_str()).collect();
    assert_eq!(voters, ["slack:UCAB1", "discord:4242"]);
    app.stop().await;
}

const MM_SECRET: &str = "mattermost-action-secret";

#[tokio::test]
async fn a_cab_decision_counts_one_vote_from_each_of_slack_discord_and_mattermost() {
    // Arrange: three approvals needed; one CAB member on each platform. Mattermost's API is not
    // faked here (its cards fail and stay queued); its click carries the context its card's
    // Approve button carries, signed with the action secret.
    const RULES3: &str = r#"
[roles]
cab = ["slack:UCAB1", "discord:4242", "mattermost:mmcab1"]

[change.normal]
approvals = 3
"#;
    let app = spawn_app_on(None, RULES3, |i, fake| {
        i.mattermost = opsledger::integrations::mattermost::MattermostSettings {
            mattermost_url: format!("{fake}/mm"),
            mattermost_bot_token: Some("mm-bot".to_string().into()),
            mattermost_command_token: Some("mm-command-token".to_string().into()),
            mattermost_action_secret: Some(MM_SECRET.to_string().into()),
            ..Default::default()
        };
    })
    .await;
    app.slack_slash("U0REQ", "change request \"Upgrade DB\" type:normal")
        .await;
    app.slack_slash("U0REQ", "change submit CHG-1").await;
    let card = app.posted_card(CAB, "CHG-1").await;
    let context = opsledger_mattermost::sign_context(MM_SECRET, "change approve", "CHG-1");

    // Act
    let from_slack = app.slack_slash("UCAB1", "change approve CHG-1").await;
    let from_discord = app.press("4242", "change approve:CHG-1", &card).await;
    let from_mattermost = app
        .client
        .post(format!("{}/mattermost/actions", app.base))
        .json(&json!({"user_id": "mmcab1", "user_name": "mmcab1", "channel_id": "mmcab", "team_id": "mmteam",
                      "post_id": "mmpost1", "trigger_id": common::trigger_id(), "type": "", "data_source": "",
                      "context": context}))
        .send()
        .await
        .unwrap();

    // Assert
    assert!(from_slack["text"].as_str().unwrap().contains("CHG-1"));
    assert_eq!(from_discord["type"], 7);
    assert_eq!(from_mattermost.status(), 200);
    let answer: Value = from_mattermost.json().await.unwrap();
    assert!(
        answer["update"]["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("approved"),
        "{answer}"
    );
    let Some(Record::Change(c)) = app.record(Kind::Change, "CHG-1").await else {
        panic!("CHG-1 exists");
    };
    assert_eq!(c.status.to_string(), "approved");
    let voters: Vec<&str> = c.approvals.iter().map(|a| a.voter.as_str()).collect();
    assert_eq!(voters, ["slack:UCAB1", "discord:4242", "mattermost:mmcab1"]);
    app.stop().await;
}

#[tokio::test]
async fn a_structured_change_list_shows_a_cab_members_queue_as_the_text_command_does() {
    // Arrange: alice requests a change on Slack; discord:4242 is on the CAB.
    let app = spawn_discord_app().await;
    app.slack_slash("U0ALICE", "change request \"Upgrade DB\" type:normal")
        .await;
    app.slack_slash("U0ALICE", "change submit CHG-1").await;
    let content = |answer: &Value| answer["data"]["content"].as_str().unwrap().to_string();

    // Act
    let queue = app
        .slash("4242", "change", Some("list"), &[("filter", "waiting")])
        .await;
    let by_text = app.ops("4242", "change list waiting").await;
    let from_slack = app.slack_slash("UCAB1", "change list waiting").await;
    let alice_waiting = app
        .slash("4141", "change", Some("list"), &[("filter", "waiting")])
        .await;
    let alice_mine = app
        .slash("4141", "change", Some("list"), &[("filter", "mine")])
        .await;
    let open = app.slash("4343", "change", Some("list"), &[]).await;
    let bad = app
        .slash("4242", "change", Some("list"), &[("filter", "breached")])
        .await;

    // Assert
    let expected = "changes waiting for your vote (1):\nCHG-1 [submitted] Upgrade DB";
    assert_eq!(content(&queue), expected);
    assert_eq!(content(&by_text), expected);
    assert!(
        from_slack["text"].as_str().unwrap().contains(expected),
        "{from_slack}"
    );
    // alice requested it (from her Slack account), so it is not hers to vote on, but it is hers.
    assert_eq!(content(&alice_waiting), "No changes waiting for your vote.");
    assert!(content(&alice_mine).starts_with("your open changes (1):\nCHG-1"));
    assert!(content(&open).starts_with("open changes (1):\nCHG-1"));
    assert_eq!(bad["data"]["flags"], 64);
    assert!(content(&bad).contains("usage: change list [open|waiting|mine]"));
    // Registered with its filter as a choice.
    let specs = opsledger::integrations::discord_commands::command_specs();
    let change = specs.iter().find(|s| s.name == "change").unwrap();
    let list = change
        .subcommands
        .iter()
        .find(|s| s.name == "list")
        .unwrap();
    assert_eq!(list.options[0].name, "filter");
    assert!(!list.options[0].required);
    assert_eq!(list.options[0].choices, ["open", "waiting", "mine"]);
    app.stop().await;
}

#[tokio::test]
async fn a_429_from_discord_delays_the_post_until_it_is_delivered() {
    // Arrange
    let app = spawn_discord_app().await;
    app.fake.fail_next(&[429, 500]);

    // Act
    let started = std::time::Instant::now();
    app.ops(
        "4141",
        "incident raise \"Search slow\" impact:low urgency:low",
    )
    .await;
    let calls = app
        .fake
        .wait_for("the card delivered after the failures", |calls| {
            !posts_to(calls, INCIDENTS).is_empty()
        })
        .await;

    // Assert: delivered once, after backing off from the 429 and the 500.
    assert_eq!(posts_to(&calls, INCIDENTS).len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(app.fake.failures_left(), 0);
    app.stop().await;
}

#[tokio::test]
async fn work_past_the_time_budget_is_deferred_and_finished_by_editing_the_response() {
    // Arrange: a zero budget defers every command.
    let app = spawn_discord_app_with(Some(Duration::ZERO)).await;

    // Act
    let answer = app.ops("4141", "incident raise \"Login failing\"").await;

    // Assert
    assert_eq!(answer["type"], 5, "deferred: Discord shows 'thinking'");
    let calls = app
        .fake
        .wait_for("the deferred response edited", |calls| {
            calls
                .iter()
                .any(|c| c.method == "PATCH" && c.path.ends_with("/messages/@original"))
        })
        .await;
    let edit = calls
        .iter()
        .find(|c| c.path.ends_with("/messages/@original"))
        .unwrap();
    assert!(edit
        .path
        .starts_with(&format!("/api/v10/webhooks/{APP_ID}/interaction-token-")));
    assert!(edit.body["content"].as_str().unwrap().contains("INC-1"));
    assert!(app.record(Kind::Incident, "INC-1").await.is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_deferred_vote_redraws_the_card_and_a_deferred_refusal_goes_to_the_presser_alone() {
    // Arrange
    let app = spawn_discord_app_with(Some(Duration::ZERO)).await;
    app.ops("4141", "change request \"Upgrade DB\" type:normal")
        .await;
    app.ops("4141", "change submit CHG-1").await;
    let card = app.posted_card(CAB, "CHG-1").await;

    // Act
    let vote = app.press("4242", "change approve:CHG-1", &card).await;
    let self_vote = app.press("4141", "change approve:CHG-1", &card).await;

    // Assert: both acknowledged at once without a new message.
    assert_eq!(vote["type"], 6);
    assert_eq!(self_vote["type"], 6);
    let calls = app
        .fake
        .wait_for("the card redrawn and the refusal sent", |calls| {
            calls.iter().any(|c| {
                c.path.ends_with("/messages/@original")
                    && c.body.to_string().contains("1/2 approvals")
            }) && calls
                .iter()
                .any(|c| c.method == "POST" && c.path.starts_with("/api/v10/webhooks/"))
                // Each interaction's answer is its own outbox channel, so the arranging
                // commands' edits may land after the vote's.
                && calls
                    .iter()
                    .filter(|c| c.path.ends_with("/messages/@original"))
                    .count()
                    >= 3
        })
        .await;
    // The arranging commands were deferred too: only they and the vote edit a response.
    let edits = calls
        .iter()
        .filter(|c| c.path.ends_with("/messages/@original"))
        .count();
    assert_eq!(edits, 3, "request, submit and the vote; not the refusal");
    let refusal = calls
        .iter()
        .find(|c| c.method == "POST" && c.path.starts_with("/api/v10/webhooks/"))
        .unwrap();
    assert_eq!(refusal.body["flags"], 64);
    assert!(refusal.body.to_string().contains("segregation-of-duties"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_register_puts_the_commands_globally_or_in_one_server() {
    // Arrange
    let (fake, fake_base) = FakeDiscord::start().await;
    let scratch = common::scratch::Scratch::new();
    // The binary blocks this thread; the fake API keeps running on the other worker.
    let run = |args: &[&str]| {
        tokio::task::block_in_place(|| {
            scratch
                .cmd(args)
                .env("DISCORD_BOT_TOKEN", BOT_TOKEN)
                .env("DISCORD_APPLICATION_ID", APP_ID)
                .env("DISCORD_API_URL", &fake_base)
                .output()
                .unwrap()
        })
    };

    // Act
    let guild = run(&["discord", "register", "--guild", GUILD]);
    let global = run(&["discord", "register"]);
    let missing = scratch.run(&["discord", "register"]);

    // Assert
    let out = common::scratch::stdout(&guild);
    assert!(
        guild.status.success(),
        "{}",
        common::scratch::stderr(&guild)
    );
    assert!(out.contains("registered 4 commands in server"), "{out}");
    assert!(global.status.success());
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].method, "PUT");
    assert_eq!(
        calls[0].path,
        format!("/api/v10/applications/{APP_ID}/guilds/{GUILD}/commands")
    );
    assert_eq!(
        calls[1].path,
        format!("/api/v10/applications/{APP_ID}/commands")
    );
    let names: Vec<&str> = calls[0]
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ops", "incident", "change", "release"]);
    let raise = &calls[0].body[1]["options"][0];
    assert_eq!(raise["name"], "raise");
    assert_eq!(raise["options"][1]["choices"][0]["value"], "high");
    assert_eq!(calls[0].body, calls[1].body, "the same commands either way");
    insta::assert_json_snapshot!("discord_registered_commands", calls[0].body);
    assert!(!missing.status.success());
    assert!(common::scratch::stderr(&missing).contains("DISCORD_BOT_TOKEN"));
    assert!(
        !scratch.db().exists(),
        "registration does not touch the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_and_answers_render_as_snapshotted() {
    // Arrange
    let app = spawn_discord_app().await;

    // Act: an incident card, a CAB card with its vote buttons, a refusal.
    let raised = app
        .ops(
            "4141",
            "incident raise \"Checkout down\" impact:high urgency:medium service:shop",
        )
        .await;
    app.ops(
        "4141",
        "change request \"Rotate keys\" type:normal risk:low",
    )
    .await;
    app.ops("4141", "change submit CHG-1").await;
    let refused = app.ops("4141", "incident close INC-9").await;
    app.posted_card(INCIDENTS, "INC-1").await;
    app.posted_card(CAB, "CHG-1").await;
    let calls = app.fake.calls();
    let card = |channel: &str| posts_to(&calls, channel)[0].body.clone();
    let (incident_card, cab_card) = (card(INCIDENTS), card(CAB));

    // Assert
    insta::with_settings!({filters => common::SNAPSHOT_FILTERS.to_vec()}, {
        insta::assert_json_snapshot!("discord_raise_answer", raised);
        insta::assert_json_snapshot!("discord_incident_card", incident_card);
        insta::assert_json_snapshot!("discord_cab_card", cab_card);
        insta::assert_json_snapshot!("discord_refusal", refused);
    });
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opens_a_direct_message_with_acknowledge_and_escalate_now() {
    // Arrange: alice's Discord account is paged by the default chain for a P1.
    let rules = format!(
        "{RULES}\n[[escalation]]\nname = \"all\"\ndefault = true\npage = [\"P1\"]\nsteps = [{{ notify = \"alice\" }}]\n"
    );
    let app = spawn_discord_app_ruled(None, &rules).await;

    // Act
    let raised = app
        .running
        .as_ref()
        .unwrap()
        .ledger
        .handle_text(
            common::actor("console:carl"),
            "incident raise Checkout down impact:high urgency:high",
        )
        .await
        .reply;
    assert!(raised.text.starts_with("INC-1 raised"), "{}", raised.text);

    // Assert: the DM channel is opened for 4141, and the page posted in it with both buttons.
    let calls = app
        .fake
        .wait_for("the page in the DM", |c| {
            let dm = c
                .iter()
                .find(|x| x.path == "/api/v10/users/@me/channels")
                .map(|x| x.path.clone());
            dm.is_some()
                && c.iter().any(|x| {
                    x.method == "POST"
                        && x.body["content"]
                            .as_str()
                            .is_some_and(|t| t.contains("You are paged"))
                })
        })
        .await;
    let open = calls
        .iter()
        .find(|x| x.path == "/api/v10/users/@me/channels")
        .unwrap();
    assert_eq!(open.body["recipient_id"], "4141");
    let page = calls
        .iter()
        .find(|x| {
            x.body["content"]
                .as_str()
                .is_some_and(|t| t.contains("You are paged"))
        })
        .unwrap();
    assert!(
        !page.path.contains(INCIDENTS),
        "the page goes to the DM, not the incident channel: {}",
        page.path
    );
    let ids = custom_ids(&page.body);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids[0].contains("incident ack") && ids[1].contains("incident escalate"),
        "{ids:?}"
    );
    app.stop().await;
}

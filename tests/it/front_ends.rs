//! Bad input and replays at every front end, on SQLite and PostgreSQL: Slack, Discord and the
//! API refuse control characters and bytes that are not UTF-8 with a message naming them (after
//! the signature), and a replayed Slack slash command, button, event or Discord interaction is
//! acted on once and counted as a duplicate.
use crate::common;

use std::time::Duration;

use common::{now_ts, slack_signature, trigger_id, TestDb};
use ed25519_dalek::{Signer, SigningKey};
use opsledger::app::{self, Running};
use opsledger::config::{Integrations, ServeArgs};
use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::integrations::discord::DiscordSettings;
use opsledger::integrations::slack::SlackSettings;
use opsledger::store::ListQuery;
use serde_json::{json, Value};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const APP_ID: &str = "1100000000000000001";

const RULES: &str = r#"
[roles]
admin = ["console:root"]
incident-manager = ["slack:U0ALICE", "discord:1200000000000000001"]
"#;

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

struct App {
    running: Option<Running>,
    base: String,
    client: reqwest::Client,
    _db: TestDb,
}

/// Slack and Discord over HTTP on `db`; their Web APIs point nowhere (posts stay queued,
/// which these tests do not read).
async fn spawn(db: TestDb) -> App {
    let integrations = Integrations {
        slack: SlackSettings {
            slack_signing_secret: Some(SECRET.to_string().into()),
            slack_bot_token: Some("xoxb-test".to_string().into()),
            slack_api_url: "http://127.0.0.1:9/api".into(),
            ..Default::default()
        },
        discord: DiscordSettings {
            discord_public_key: Some(hex::encode(signing_key().verifying_key().to_bytes())),
            discord_bot_token: Some("bot-token".to_string().into()),
            discord_application_id: Some(APP_ID.into()),
            discord_api_url: "http://127.0.0.1:9".into(),
            ..Default::default()
        },
        ..Integrations::default()
    };
    let store = db.store().await;
    let args = ServeArgs {
        integrations,
        ..common::serve_args(None)
    };
    let running = app::serve(
        &args,
        store,
        Policy::from_toml(RULES).unwrap(),
        app::system_time_source(),
    )
    .await
    .expect("serve");
    App {
        base: format!("http://{}", running.addr),
        running: Some(running),
        client: reqwest::Client::new(),
        _db: db,
    }
}

impl App {
    async fn post_slack(&self, path: &str, body: Vec<u8>, sign_with: &str) -> reqwest::Response {
        use hmac::{Hmac, Mac};
        let ts = now_ts();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(sign_with.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(&body);
        let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    fn slash_body(text: &str, trigger: &str) -> String {
        serde_urlencoded::to_string([
            ("token", "x"),
            ("team_id", "T1"),
            ("channel_id", "C1"),
            ("user_id", "U0ALICE"),
            ("user_name", "alice"),
            ("command", "/ops"),
            ("text", text),
            ("response_url", "http://127.0.0.1:9/respond"),
            ("trigger_id", trigger),
        ])
        .unwrap()
    }

    async fn slash(&self, text: &str, trigger: &str) -> (u16, Value) {
        let body = Self::slash_body(text, trigger);
        let resp = self
            .post_slack("/slack/commands", body.into_bytes(), SECRET)
            .await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn event(&self, event_id: &str, text: &str) -> u16 {
        let body = json!({
            "token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id, "event_time": 1700000000,
            "event": {"type": "app_mention", "user": "U0ALICE", "text": format!("<@UBOT> {text}"),
                      "ts": "1700000000.000100", "channel": "C1", "event_ts": "1700000000.000100"}
        })
        .to_string();
        let ts = now_ts();
        self.client
            .post(format!("{}/slack/events", self.base))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", slack_signature(SECRET, ts, &body))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A Discord `/ops command:<text>` or structured command, signed as Discord signs it.
    async fn discord(
        &self,
        id: &str,
        name: &str,
        sub: Option<&str>,
        options: &[(&str, &str)],
    ) -> (u16, Value) {
        let opts: Vec<Value> = options
            .iter()
            .map(|(k, v)| json!({"name": k, "type": 3, "value": v}))
            .collect();
        let options = match sub {
            Some(s) => json!([{"name": s, "type": 1, "options": opts}]),
            None => Value::Array(opts),
        };
        let user = json!({"id": "1200000000000000001", "username": "alice", "discriminator": "0",
            "global_name": null, "avatar": null, "public_flags": 0});
        let body = json!({
            "id": id, "application_id": APP_ID, "type": 2,
            "data": {"id": "1600000000000000001", "name": name, "type": 1, "options": options},
            "guild_id": "1000000000000000001", "channel_id": "1300000000000000003",
            "member": {"user": user, "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "premium_since": null, "deaf": false, "mute": false, "flags": 0, "pending": false,
                "nick": null, "avatar": null, "permissions": "2147483647", "communication_disabled_until": null},
            "token": format!("interaction-token-{id}"), "version": 1,
            "app_permissions": "2147483647", "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": "1000000000000000001"}, "context": 0,
            "attachment_size_limit": 10485760
        })
        .to_string();
        let ts = now_ts().to_string();
        let sig = hex::encode(
            signing_key()
                .sign(format!("{ts}{body}").as_bytes())
                .to_bytes(),
        );
        let resp = self
            .client
            .post(format!("{}/discord/interactions", self.base))
            .header("content-type", "application/json")
            .header("X-Signature-Timestamp", ts)
            .header("X-Signature-Ed25519", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn incident_titles(&self) -> Vec<String> {
        let store = self.running.as_ref().unwrap().ledger.store().clone();
        store
            .list(&ListQuery::new(Kind::Incident, 1000))
            .await
            .unwrap()
            .iter()
            .map(|r| r.title().to_string())
            .collect()
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

/// The count of `opsledger_inbound_requests_total` for a platform and result, 0 when absent.
fn inbound(metrics: &str, platform: &str, result: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("opsledger_inbound")
                && l.contains(&format!("platform=\"{platform}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|n| n as u64)
        .unwrap_or(0)
}

async fn control_characters_and_bad_utf8_are_usage_errors_at_every_front_end(db: TestDb) {
    let app = spawn(db).await;
    // Slack: NUL in the text is the person's usage error, shown to them alone, naming it.
    let (status, body) = app
        .slash(
            "incident raise a\u{0}b impact:low urgency:low",
            &trigger_id(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["response_type"], "ephemeral", "{body}");
    assert!(body.to_string().contains("NUL, U+0000"), "{body}");
    // A right-to-left override, likewise.
    let (_, body) = app
        .slash(
            "incident raise pay \u{202e}gnp.exe impact:low",
            &trigger_id(),
        )
        .await;
    assert!(body.to_string().contains("U+202E"), "{body}");
    // Text whose bytes are not UTF-8 (percent-encoded, as a form carries them).
    let raw = App::slash_body("incident raise PLACEHOLDER", &trigger_id())
        .replace("PLACEHOLDER", "caf%E9");
    let resp = app
        .post_slack("/slack/commands", raw.into_bytes(), SECRET)
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("not valid UTF-8"), "{body}");
    // A raw body that is not UTF-8: forged is 401 (the signature comes first), signed is 400.
    let mut raw = App::slash_body("incident raise x", &trigger_id()).into_bytes();
    raw.extend_from_slice(b"&junk=\xff\xfe");
    let forged = app
        .post_slack("/slack/commands", raw.clone(), "not-the-secret")
        .await;
    assert_eq!(forged.status(), 401);
    let signed = app.post_slack("/slack/commands", raw, SECRET).await;
    assert_eq!(signed.status(), 400);
    let text = signed.text().await.unwrap();
    assert!(text.contains("not valid UTF-8"), "{text}");
    // Discord: a structured option and a text command with control characters.
    let (status, body) = app
        .discord(
            "1700000000000000101",
            "incident",
            Some("raise"),
            &[
                ("title", "bell\u{7}"),
                ("impact", "low"),
                ("urgency", "low"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.to_string().contains("U+0007"), "{body}");
    let (_, body) = app
        .discord(
            "1700000000000000102",
            "ops",
            None,
            &[("command", "incident raise a\u{2066}b impact:low")],
        )
        .await;
    assert!(body.to_string().contains("U+2066"), "{body}");
    // The API: a query or path that decodes to control characters or to bytes that are not
    // UTF-8 is a 400 naming the problem, not a store error.
    for path in [
        "/api/v1/incidents?status=%00",
        "/api/v1/incidents?cursor=INC-1%E2%80%AE",
        "/api/v1/incidents/INC-1%00",
        "/api/v1/audit?record=%FF",
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        let e = body["error"].as_str().unwrap_or_default();
        assert!(e.contains("U+") || e.contains("UTF-8"), "{path}: {e}");
    }
    // Nothing was recorded, and an ordinary command still works.
    assert!(app.incident_titles().await.is_empty());
    let (_, body) = app
        .slash(
            "incident raise Checkout down impact:low urgency:low",
            &trigger_id(),
        )
        .await;
    assert!(body.to_string().contains("INC-1"), "{body}");
    app.stop().await;
}

async fn replays_are_acted_on_once_and_counted_as_duplicates(db: TestDb) {
    let app = spawn(db).await;
    // Five sends of one Slack slash command (one trigger_id): one incident.
    let trigger = trigger_id();
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(
            app.slash("incident raise from slack impact:low", &trigger)
                .await,
        );
    }
    assert!(answers.iter().all(|(s, _)| *s == 200));
    assert!(answers[0].1.to_string().contains("INC-1"), "{answers:?}");
    for (_, body) in &answers[1..] {
        assert!(body.to_string().contains("already received"), "{body}");
        assert_eq!(body["response_type"], "ephemeral");
    }
    // Five sends of one Discord interaction (one id): one incident.
    let mut discord = Vec::new();
    for _ in 0..5 {
        discord.push(
            app.discord(
                "1700000000000000201",
                "ops",
                None,
                &[("command", "incident raise from discord impact:low")],
            )
            .await,
        );
    }
    assert!(discord.iter().all(|(s, _)| *s == 200));
    assert!(discord[0].1.to_string().contains("INC-2"), "{discord:?}");
    for (_, body) in &discord[1..] {
        assert!(body.to_string().contains("already received"), "{body}");
    }
    // A Slack event delivered twice: one incident; the retry is counted as a duplicate.
    assert_eq!(
        app.event("Ev0DUPLICATE1", "incident raise from a mention impact:low")
            .await,
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.incident_titles().await.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mention was never acted on"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        app.event("Ev0DUPLICATE1", "incident raise from a mention impact:low")
            .await,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.incident_titles().await,
        ["from slack", "from discord", "from a mention"]
    );
    let m = app.metrics().await;
    assert_eq!(
        inbound(&m, "slack", "duplicate"),
        5,
        "4 commands and 1 event:\n{m}"
    );
    assert_eq!(inbound(&m, "discord", "duplicate"), 4, "{m}");
    assert_eq!(inbound(&m, "slack", "ok"), 2, "{m}");
    app.stop().await;
}

/// The report's reproduction: 64 valid slash commands at once with 20 carrying `%00` mixed in.
/// Every valid one gets its incident; each NUL one gets a usage error naming NUL.
async fn nul_commands_among_valid_ones_fail_alone(db: TestDb) {
    let app = std::sync::Arc::new(spawn(db).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..84 {
        let app = app.clone();
        let poisoned = i % 4 == 1 && i < 80;
        tasks.spawn(async move {
            let text = if poisoned {
                format!("incident raise bad\u{0}{i} impact:low urgency:low")
            } else {
                format!("incident raise good {i} impact:low urgency:low")
            };
            let (status, body) = app.slash(&text, &trigger_id()).await;
            (poisoned, status, body)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (poisoned, status, body) = done.unwrap();
        assert_eq!(status, 200);
        if poisoned {
            assert!(body.to_string().contains("NUL, U+0000"), "{body}");
        } else {
            assert!(body.to_string().contains("INC-"), "{body}");
        }
    }
    let titles = app.incident_titles().await;
    assert_eq!(titles.len(), 64, "{titles:?}");
    let Ok(app) = std::sync::Arc::try_unwrap(app) else {
        panic!("tasks still hold the app")
    };
    app.stop().await;
}

conformance!(
    nul_commands_among_valid_ones_fail_alone,
    control_characters_and_bad_utf8_are_usage_errors_at_every_front_end,
    replays_are_acted_on_once_and_counted_as_duplicates,
);

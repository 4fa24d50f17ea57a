//! Mattermost end to end against a fake of its REST API v4 (answers shaped as Mattermost's API
//! reference shows them): slash commands checked by their token, buttons and dialogs by
//! opsledger's signed context, cards posted and patched, a channel for a major incident, and a
//! 429 waited out as `X-Ratelimit-Reset` says.
use crate::common::{self, fake};

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use opsledger::app::Running;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::integrations::mattermost::MattermostSettings;
use serde_json::{json, Value};

const COMMAND_TOKEN: &str = "xr3j5x3p4pfk7cy8p8x4jr5nue";
const ACTION_SECRET: &str = "action-secret-for-tests";

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["mattermost:ucab1", "mattermost:ucab2"]
"#;

#[derive(Debug, Clone)]
struct Call {
    path: String,
    body: Value,
    at: Instant,
}

async fn record(
    State(fake): State<fake::Recorder<Call>>,
    path: String,
    headers: &HeaderMap,
    body: &str,
) -> Option<Response> {
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer bot-token"),
        "the bot token is sent"
    );
    let status = fake.next_failure();
    fake.push(Call {
        path,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    status.map(|s| {
        if s == 429 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-ratelimit-limit", "10"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
                Json(json!({"id": "api.context.rate_limit", "message": "Too many requests", "status_code": 429})),
            )
                .into_response()
        } else {
            (StatusCode::from_u16(s).unwrap(), "failure").into_response()
        }
    })
}

/// A fake Mattermost server: every call recorded, created things answered with their new ID and
/// `201 Created`, as the API reference gives for posts, channels and members.
async fn fake_mattermost() -> (fake::Recorder<Call>, String) {
    let rec = fake::Recorder::<Call>::default();
    async fn posts(s: State<fake::Recorder<Call>>, h: HeaderMap, body: String) -> Response {
        let n = s.calls().len();
        if let Some(r) = record(s, "/posts".into(), &h, &body).await {
            return r;
        }
        let b: Value = serde_json::from_str(&body).unwrap();
        (StatusCode::CREATED, Json(json!({"id": format!("post{n}"), "channel_id": b["channel_id"], "message": b["message"], "props": b["props"], "create_at": 1700000000000u64}))).into_response()
    }
    async fn patch(
        s: State<fake::Recorder<Call>>,
        Path(id): Path<String>,
        h: HeaderMap,
        body: String,
    ) -> Response {
        if let Some(r) = record(s, format!("/posts/{id}/patch"), &h, &body).await {
            return r;
        }
        Json(json!({"id": id})).into_response()
    }
    async fn channels(s: State<fake::Recorder<Call>>, h: HeaderMap, body: String) -> Response {
        if let Some(r) = record(s, "/channels".into(), &h, &body).await {
            return r;
        }
        let b: Value = serde_json::from_str(&body).unwrap();
        (StatusCode::CREATED, Json(json!({"id": "chinc1", "team_id": b["team_id"], "name": b["name"], "display_name": b["display_name"], "type": "O"}))).into_response()
    }
    async fn members(
        s: State<fake::Recorder<Call>>,
        Path(id): Path<String>,
        h: HeaderMap,
        body: String,
    ) -> Response {
        if let Some(r) = record(s, format!("/channels/{id}/members"), &h, &body).await {
            return r;
        }
        let b: Value = serde_json::from_str(&body).unwrap();
        (
            StatusCode::CREATED,
            Json(json!({"channel_id": id, "user_id": b["user_id"], "roles": "channel_user"})),
        )
            .into_response()
    }
    // An ephemeral post: `201 Created` with the post, as for any post.
    async fn ephemeral(s: State<fake::Recorder<Call>>, h: HeaderMap, body: String) -> Response {
        if let Some(r) = record(s, "/posts/ephemeral".into(), &h, &body).await {
            return r;
        }
        let b: Value = serde_json::from_str(&body).unwrap();
        let post = json!({"id": "ephemeral1", "user_id": b["user_id"], "channel_id": b["post"]["channel_id"],
                          "message": b["post"]["message"], "props": b["post"]["props"], "type": "system_ephemeral"});
        (StatusCode::CREATED, Json(post)).into_response()
    }
    // Opening a dialog: `200` with `StatusOK`.
    async fn dialog(s: State<fake::Recorder<Call>>, h: HeaderMap, body: String) -> Response {
        if let Some(r) = record(s, "/actions/dialogs/open".into(), &h, &body).await {
            return r;
        }
        Json(json!({"status": "OK"})).into_response()
    }
    // Anything else: recorded, and answered as Mattermost answers a route it does not have.
    async fn other(
        s: State<fake::Recorder<Call>>,
        Path(rest): Path<String>,
        h: HeaderMap,
        body: String,
    ) -> Response {
        record(s, format!("/{rest}"), &h, &body).await;
        (
            StatusCode::NOT_FOUND,
            Json(json!({"id": "api.context.404.app_error", "message": "Sorry, we could not find the page.",
                        "status_code": 404})),
        )
            .into_response()
    }
    async fn me(s: State<fake::Recorder<Call>>, h: HeaderMap) -> Response {
        if let Some(r) = record(s, "/users/me".into(), &h, "").await {
            return r;
        }
        Json(json!({"id": "bot1", "username": "opsledger", "is_bot": true})).into_response()
    }
    // The users Mattermost knows of those asked for, as `User` objects; the others left out.
    async fn usernames(s: State<fake::Recorder<Call>>, h: HeaderMap, body: String) -> Response {
        if let Some(r) = record(s, "/users/usernames".into(), &h, &body).await {
            return r;
        }
        let asked: Vec<String> = serde_json::from_str(&body).unwrap();
        let users: Vec<Value> = asked
            .iter()
            .filter(|n| ["carol", "dave"].contains(&n.as_str()))
            .map(|n| json!({"id": format!("u{n}"), "username": n, "email": format!("{n}@example.com"),
                            "first_name": "", "last_name": "", "roles": "system_user", "locale": "en"}))
            .collect();
        Json(users).into_response()
    }
    // `201 Created` with the channel: type `D`, named by the two user IDs in order.
    async fn direct(s: State<fake::Recorder<Call>>, h: HeaderMap, body: String) -> Response {
        if let Some(r) = record(s, "/channels/direct".into(), &h, &body).await {
            return r;
        }
        let mut users: Vec<String> = serde_json::from_str(&body).unwrap();
        users.sort();
        let channel = json!({"id": format!("dm{}", users[1]), "type": "D",
                             "name": users.join("__"), "display_name": "", "team_id": ""});
        (StatusCode::CREATED, Json(channel)).into_response()
    }
    let app = Router::new()
        .route("/api/v4/posts", post(posts))
        .route("/api/v4/posts/{id}/patch", put(patch))
        .route("/api/v4/channels", post(channels))
        .route("/api/v4/channels/direct", post(direct))
        .route("/api/v4/channels/{id}/members", post(members))
        .route("/api/v4/users/me", get(me))
        .route("/api/v4/users/usernames", post(usernames))
        .route("/api/v4/posts/ephemeral", post(ephemeral))
        .route("/api/v4/actions/dialogs/open", post(dialog))
        .route("/api/v4/{*rest}", post(other))
        .with_state(rec.clone());
    (rec, fake::serve(app).await)
}

async fn serve(db: &common::TestDb) -> (Running, String, fake::Recorder<Call>) {
    serve_with(db, RULES, opsledger::app::system_time_source()).await
}

/// As `serve`, under these rules and on this clock.
async fn serve_with(
    db: &common::TestDb,
    rules: &str,
    time: std::sync::Arc<dyn opsledger::ledger::TimeSource>,
) -> (Running, String, fake::Recorder<Call>) {
    let (rec, mm) = fake_mattermost().await;
    let args = ServeArgs {
        integrations: Integrations {
            mattermost: MattermostSettings {
                mattermost_url: mm,
                mattermost_bot_token: Some("bot-token".to_string().into()),
                mattermost_team_id: Some("team1".into()),
                mattermost_command_token: Some(COMMAND_TOKEN.to_string().into()),
                mattermost_action_secret: Some(ACTION_SECRET.to_string().into()),
                mattermost_incident_channel: Some("chincidents".into()),
                mattermost_cab_channel: Some("chcab".into()),
            },
            ..Integrations::default()
        },
        ..common::serve_args(None)
    };
    let (running, base) = common::serve_on_clock(db, &args, rules, time).await;
    (running, base, rec)
}

async fn slash(base: &str, user: &str, text: &str, token: &str) -> reqwest::Response {
    let body = serde_urlencoded::to_string([
        ("channel_id", "chwork"),
        ("channel_name", "work"),
        ("command", "/ops"),
        ("team_domain", "acme"),
        ("team_id", "team1"),
        ("text", text),
        ("token", token),
        ("trigger_id", &common::trigger_id()),
        ("user_id", user),
        ("user_name", user),
        ("response_url", "http://127.0.0.1:9/hooks/commands/x"),
    ])
    .unwrap();
    reqwest::Client::new()
        .post(format!("{base}/mattermost/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn click(base: &str, user: &str, post: &str, context: &Value) -> reqwest::Response {
    click_in(base, "chcab", user, post, context).await
}

async fn click_in(
    base: &str,
    channel: &str,
    user: &str,
    post: &str,
    context: &Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/mattermost/actions"))
        .json(&json!({
            "user_id": user, "user_name": user, "channel_id": channel, "channel_name": channel,
            "team_id": "team1", "team_domain": "acme", "post_id": post, "trigger_id": common::trigger_id(),
            "type": "", "data_source": "", "context": context,
        }))
        .send()
        .await
        .unwrap()
}

/// Waits until the outbox has delivered everything queued so far.
async fn outbox_idle(running: &Running) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = running.ledger.store().outbox_pending().await.unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} messages still in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The incident as stored.
async fn incident(running: &Running, id: &str) -> opsledger::domain::records::Incident {
    match running
        .ledger
        .store()
        .get(opsledger::domain::ids::Kind::Incident, id)
        .await
        .unwrap()
    {
        Some(opsledger::domain::records::Record::Incident(i)) => i,
        other => panic!("{id}: {other:?}"),
    }
}

/// Who approved the change, in order.
async fn voters(running: &Running, id: &str) -> Vec<String> {
    match running
        .ledger
        .store()
        .get(opsledger::domain::ids::Kind::Change, id)
        .await
        .unwrap()
    {
        Some(opsledger::domain::records::Record::Change(c)) => {
            c.approvals.iter().map(|a| a.voter.to_string()).collect()
        }
        other => panic!("{id}: {other:?}"),
    }
}

/// The signed context of the button labelled `label` on the last card the fake received.
fn button(rec: &fake::Recorder<Call>, label: &str) -> (String, Value) {
    let calls = rec.calls();
    let (i, call) = calls
        .iter()
        .enumerate()
        .rev()
        .find(|(_, c)| {
            c.path == "/posts" && c.body["props"]["attachments"][0]["actions"].is_array()
        })
        .expect("a card with buttons");
    let action = call.body["props"]["attachments"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == label)
        .unwrap_or_else(|| panic!("no {label} button in {:#}", call.body));
    (format!("post{i}"), action["integration"]["context"].clone())
}

conformance!(
    forged_tokens_and_contexts_get_401_and_change_nothing,
    a_major_incident_gets_its_card_and_a_channel_with_its_reporter,
    a_cab_vote_by_button_updates_the_card_in_place_and_a_refusal_goes_to_the_presser,
    a_429_is_waited_out_as_x_ratelimit_reset_says,
    resolving_by_button_opens_a_dialog_whose_submission_resolves_the_incident,
    a_page_goes_by_direct_message_through_the_outbox_and_an_acknowledge_there_stops_the_chain,
    an_at_username_names_that_user_s_account_and_no_lookup_means_nothing_is_done,
    a_vote_cast_elsewhere_updates_the_cab_card_in_place_through_the_api,
    segregation_of_duties_holds_across_one_person_s_slack_discord_and_mattermost_accounts,
);

async fn forged_tokens_and_contexts_get_401_and_change_nothing(db: common::TestDb) {
    // Arrange
    let (running, base, _rec) = serve(&db).await;
    common::ok(
        &running.ledger,
        "console:bob",
        "change request \"Upgrade\" type:normal",
    )
    .await;
    common::ok(&running.ledger, "console:bob", "change submit CHG-1").await;
    let mut forged = opsledger_mattermost::sign_context(ACTION_SECRET, "change approve", "CHG-1");
    forged["record"] = "CHG-2".into();
    let other_key = opsledger_mattermost::sign_context("not-the-secret", "change approve", "CHG-1");

    // Act
    let bad_token = slash(
        &base,
        "u1",
        "incident raise \"Forged\" impact:low urgency:low",
        "nope",
    )
    .await;
    let altered = click(&base, "ucab1", "p1", &forged).await;
    let other = click(&base, "ucab1", "p1", &other_key).await;
    let unsigned = click(
        &base,
        "ucab1",
        "p1",
        &json!({"action": "change approve", "record": "CHG-1"}),
    )
    .await;
    let dialog = reqwest::Client::new()
        .post(format!("{base}/mattermost/dialogs"))
        .json(&json!({"type": "dialog_submission", "callback_id": "opsledger", "state": forged.to_string(),
                      "user_id": "ucab1", "channel_id": "chcab", "team_id": "team1",
                      "submission": {"text": "no"}, "cancelled": false}))
        .send()
        .await
        .unwrap();

    // Assert
    for (what, r) in [
        ("token", &bad_token),
        ("altered", &altered),
        ("other key", &other),
        ("unsigned", &unsigned),
        ("dialog", &dialog),
    ] {
        assert_eq!(r.status(), 401, "{what}");
    }
    let store = running.ledger.store().clone();
    assert!(store
        .get(opsledger::domain::ids::Kind::Incident, "INC-1")
        .await
        .unwrap()
        .is_none());
    assert!(voters(&running, "CHG-1").await.is_empty());
    running.stop().await.unwrap();
}

async fn a_major_incident_gets_its_card_and_a_channel_with_its_reporter(db: common::TestDb) {
    // Arrange
    let (running, base, rec) = serve(&db).await;

    // Act
    let resp = slash(
        &base,
        "u1",
        "incident raise \"Checkout down\" impact:high urgency:high",
        COMMAND_TOKEN,
    )
    .await;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    let calls = fake::until(
        "the card, the channel and its member",
        Duration::from_secs(10),
        || {
            let calls = rec.calls();
            calls
                .iter()
                .any(|c| c.path.ends_with("/members"))
                .then_some(calls)
        },
        || rec.calls(),
    )
    .await;

    // Assert
    assert_eq!(status, 200);
    assert!(
        answer["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("INC-1"),
        "{answer}"
    );
    let card = calls
        .iter()
        .find(|c| c.path == "/posts" && c.body["channel_id"] == "chincidents")
        .expect("the incident card");
    assert!(card.body["props"]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Checkout down"));
    let channel = calls
        .iter()
        .find(|c| c.path == "/channels")
        .expect("the incident channel");
    assert_eq!(channel.body["team_id"], "team1");
    assert_eq!(channel.body["name"], "inc-1-checkout-down");
    let member = calls
        .iter()
        .find(|c| c.path == "/channels/chinc1/members")
        .unwrap();
    assert_eq!(member.body, json!({"user_id": "u1"}));
    running.stop().await.unwrap();
}

async fn a_cab_vote_by_button_updates_the_card_in_place_and_a_refusal_goes_to_the_presser(
    db: common::TestDb,
) {
    // Arrange: a change submitted from Mattermost, its card in the CAB channel.
    let (running, base, rec) = serve(&db).await;
    slash(
        &base,
        "ureq",
        "change request \"Upgrade the DB\" type:normal",
        COMMAND_TOKEN,
    )
    .await;
    slash(&base, "ureq", "change submit CHG-1", COMMAND_TOKEN).await;
    fake::until(
        "the CAB card",
        Duration::from_secs(10),
        || {
            rec.calls()
                .iter()
                .any(|c| c.body["channel_id"] == "chcab")
                .then_some(())
        },
        || rec.calls(),
    )
    .await;
    let (post, approve) = button(&rec, "Approve");

    // Act
    let vote = click(&base, "ucab1", &post, &approve).await;
    let vote: Value = vote.json().await.unwrap();
    let refused = click(&base, "ureq", &post, &approve).await;
    let refused: Value = refused.json().await.unwrap();

    // Assert
    let card = vote["update"]["props"]["attachments"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(card.contains("CHG-1"), "{vote}");
    assert!(vote.get("ephemeral_text").is_none(), "{vote}");
    assert!(refused.get("update").is_none(), "{refused}");
    assert!(
        refused["ephemeral_text"]
            .as_str()
            .unwrap_or_default()
            .contains("segregation")
            || refused["ephemeral_text"]
                .as_str()
                .unwrap_or_default()
                .contains("requested"),
        "{refused}"
    );
    assert_eq!(voters(&running, "CHG-1").await, ["mattermost:ucab1"]);
    running.stop().await.unwrap();
}

async fn a_429_is_waited_out_as_x_ratelimit_reset_says(db: common::TestDb) {
    // Arrange: the first post is refused with 429 and X-Ratelimit-Reset: 1.
    let (running, base, rec) = serve(&db).await;
    rec.fail_next(&[429]);

    // Act
    slash(
        &base,
        "u1",
        "incident raise \"Slow search\" impact:low urgency:low",
        COMMAND_TOKEN,
    )
    .await;
    let calls = fake::until(
        "the card posted after the wait",
        Duration::from_secs(15),
        || {
            let calls = rec.calls();
            (calls.iter().filter(|c| c.path == "/posts").count() >= 2).then_some(calls)
        },
        || rec.calls(),
    )
    .await;

    // Assert: the retry came at least the second Mattermost asked for after the refusal.
    let posts: Vec<&Call> = calls.iter().filter(|c| c.path == "/posts").collect();
    let waited = posts[1].at - posts[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert_eq!(posts[0].body, posts[1].body, "the same card");
    running.stop().await.unwrap();
}

async fn resolving_by_button_opens_a_dialog_whose_submission_resolves_the_incident(
    db: common::TestDb,
) {
    // Arrange: an acknowledged incident; its card's Resolve button carries this context.
    let (running, base, rec) = serve(&db).await;
    slash(
        &base,
        "u1",
        "incident raise \"Printer jam\" impact:low urgency:low",
        COMMAND_TOKEN,
    )
    .await;
    slash(&base, "u1", "incident ack INC-1", COMMAND_TOKEN).await;
    let resolve = opsledger_mattermost::sign_context(ACTION_SECRET, "incident resolve", "INC-1");
    let submit = |state: String, text: &'static str| {
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/mattermost/dialogs"))
                .json(
                    &json!({"type": "dialog_submission", "callback_id": "opsledger", "state": state,
                              "user_id": "u1", "channel_id": "chwork", "team_id": "team1",
                              "submission": {"text": text}, "cancelled": false}),
                )
                .send()
                .await
                .unwrap()
        }
    };

    // Act: the click opens a dialog (through the API, with the click's trigger).
    let clicked = click(&base, "u1", "post0", &resolve).await;
    let clicked_status = clicked.status();
    let dialog = fake::until(
        "the dialog",
        Duration::from_secs(5),
        || {
            rec.calls()
                .into_iter()
                .find(|c| c.path == "/actions/dialogs/open")
        },
        || rec.calls(),
    )
    .await;
    let state = dialog.body["dialog"]["state"].as_str().unwrap().to_string();
    let bad_text = submit(state.clone(), "fixed\u{202e}").await;
    let bad_text: Value = bad_text.json().await.unwrap();
    let done = submit(state, "replaced the fuser").await;
    let done_status = done.status();
    let done: Value = done.json().await.unwrap();

    // Assert
    assert_eq!(clicked_status, 200);
    assert!(dialog.body["trigger_id"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    // Submissions come back to this server's own address (here the port it bound).
    assert_eq!(dialog.body["url"], format!("{base}/mattermost/dialogs"));
    assert_eq!(dialog.body["dialog"]["elements"][0]["name"], "text");
    assert!(bad_text["errors"]["text"].as_str().is_some(), "{bad_text}");
    assert_eq!((done_status.as_u16(), done), (200, json!({})));
    let inc = incident(&running, "INC-1").await;
    assert_eq!(inc.status.to_string(), "resolved");
    assert_eq!(inc.resolution.as_deref(), Some("replaced the fuser"));
    running.stop().await.unwrap();
}

/// Carol is paged a minute after a P1 is raised, and Dave five minutes after her.
const PAGING_RULES: &str = r#"
[roles]
admin = ["console:root"]

[people]
carol = ["mattermost:ucarol"]
dave = ["mattermost:udave"]

[[escalation]]
name = "payments"
default = true
page = ["P1"]
steps = [{ wait = "1m" }, { notify = "carol" }, { wait = "5m" }, { notify = "dave" }]
"#;

async fn a_page_goes_by_direct_message_through_the_outbox_and_an_acknowledge_there_stops_the_chain(
    db: common::TestDb,
) {
    // Arrange: a P1 raised from Mattermost, its card and channel delivered; then Mattermost
    // fails the next call (the page's first) with a 503.
    let clock = common::TestTime::at(common::TestTime::default_start());
    let (running, base, rec) = serve_with(&db, PAGING_RULES, clock.clone()).await;
    let tick = || {
        running.ledger.handle(
            opsledger::domain::ids::Actor::system(),
            opsledger::domain::command::Command::Tick,
        )
    };
    slash(
        &base,
        "ucarl",
        "incident raise \"Card payments failing\" impact:high urgency:high",
        COMMAND_TOKEN,
    )
    .await;
    rec.wait_for("the card and the incident channel", |c| {
        c.iter().any(|c| c.path.ends_with("/members"))
    })
    .await;
    assert!(
        !rec.calls().iter().any(|c| c.path == "/channels/direct"),
        "nobody paged before the wait"
    );
    // Every earlier message delivered, so the failure meets the page and nothing else.
    outbox_idle(&running).await;
    rec.fail_next(&[503]);

    // Act 1: the wait ends; once the 503 is answered, the clock moves past the retry's backoff.
    clock.advance(chrono::Duration::minutes(1));
    tick().await;
    fake::until(
        "the page's first attempt",
        Duration::from_secs(10),
        || (rec.failures_left() == 0).then_some(()),
        || rec.calls(),
    )
    .await;
    clock.advance(chrono::Duration::seconds(5));
    let calls = rec
        .wait_for("the page in carol's direct channel", |c| {
            c.iter()
                .any(|c| c.path == "/posts" && c.body["channel_id"] == "dmucarol")
        })
        .await;

    // Assert 1: the direct channel is the bot's with carol, and the page carries Acknowledge.
    let direct = calls
        .iter()
        .rfind(|c| c.path == "/channels/direct")
        .expect("the direct channel opened");
    assert_eq!(direct.body, json!(["bot1", "ucarol"]));
    let (i, page) = calls
        .iter()
        .enumerate()
        .find(|(_, c)| c.path == "/posts" && c.body["channel_id"] == "dmucarol")
        .unwrap();
    let card = &page.body["props"]["attachments"][0];
    assert!(
        card["text"]
            .as_str()
            .unwrap_or_default()
            .contains("You are paged"),
        "{card:#}"
    );
    let ack = card["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "Acknowledge"))
        .unwrap_or_else(|| panic!("no Acknowledge on the page: {card:#}"));
    let labels: Vec<&str> = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(labels, ["Acknowledge", "Escalate now"]);
    let attempts = calls
        .iter()
        .filter(|c| c.path == "/users/me" || c.path == "/channels/direct")
        .count();
    assert!(attempts >= 3, "the failed call was tried again: {calls:#?}");

    // Act 2: carol presses Acknowledge in the direct channel; then Dave's turn would come.
    let pressed = click_in(
        &base,
        "dmucarol",
        "ucarol",
        &format!("post{i}"),
        &ack["integration"]["context"],
    )
    .await;
    let pressed_status = pressed.status();
    clock.advance(chrono::Duration::minutes(10));
    tick().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert 2: acknowledged by carol's Mattermost account; the chain stopped before Dave.
    assert_eq!(pressed_status, 200);
    let inc = incident(&running, "INC-1").await;
    assert_eq!(inc.status.to_string(), "acknowledged");
    let esc = inc.escalation.expect("the chain's record");
    let walk: Vec<(usize, &str)> = esc.pages.iter().map(|p| (p.step, p.who.as_str())).collect();
    assert_eq!(walk, [(2, "carol")]);
    assert_eq!(
        esc.stopped.as_deref(),
        Some("acknowledged by mattermost:ucarol")
    );
    assert!(
        !rec.calls()
            .iter()
            .any(|c| c.body.to_string().contains("udave")),
        "dave was never paged"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_and_answers_render_as_snapshotted() {
    // Arrange
    let db = common::sqlite_db();
    let (running, base, rec) = serve(&db).await;
    let ops = |text: &'static str| {
        let base = base.clone();
        async move {
            slash(&base, "u1", text, COMMAND_TOKEN)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // Act: an incident card, a CAB card with its vote buttons, a refusal.
    let raised =
        ops("incident raise \"Checkout down\" impact:high urgency:medium service:shop").await;
    ops("change request \"Rotate keys\" type:normal risk:low").await;
    ops("change submit CHG-1").await;
    let refused = ops("incident close INC-9").await;
    let calls = rec
        .wait_for("both cards", |c| {
            ["chincidents", "chcab"].iter().all(|ch| {
                c.iter()
                    .any(|x| x.path == "/posts" && x.body["channel_id"] == *ch)
            })
        })
        .await;
    let card = |channel: &str| {
        calls
            .iter()
            .find(|x| x.path == "/posts" && x.body["channel_id"] == channel)
            .unwrap()
            .body
            .clone()
    };

    // Assert: the buttons post back to this server, whose port changes from run to run.
    let mut filters = common::SNAPSHOT_FILTERS.to_vec();
    filters.push((r"http://127\.0\.0\.1:\d+", "[opsledger]"));
    insta::with_settings!({filters => filters}, {
        insta::assert_json_snapshot!("mattermost_raise_answer", raised);
        insta::assert_json_snapshot!("mattermost_incident_card", card("chincidents"));
        insta::assert_json_snapshot!("mattermost_cab_card", card("chcab"));
        insta::assert_json_snapshot!("mattermost_refusal", refused);
    });
    running.stop().await.unwrap();
}

async fn an_at_username_names_that_user_s_account_and_no_lookup_means_nothing_is_done(
    db: common::TestDb,
) {
    // Arrange: a submitted change; an admin on Mattermost.
    let rules = "[roles]\nadmin = [\"mattermost:uadmin\"]\n";
    let (running, base, rec) = serve_with(&db, rules, opsledger::app::system_time_source()).await;
    let ops = |user: &'static str, text: &'static str| {
        let base = base.clone();
        async move {
            slash(&base, user, text, COMMAND_TOKEN)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let said = |answer: &Value| {
        answer["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    ops("ureq", "change request \"Upgrade the DB\" type:normal").await;
    ops("ureq", "change submit CHG-1").await;

    // Act: @Carol is granted cab by her username; then the lookup fails for @dave.
    let granted = ops("uadmin", "role grant @Carol cab").await;
    let carol = ops("ucarol", "change approve CHG-1").await;
    // The card's update delivered, so the failure meets the lookup and nothing else.
    outbox_idle(&running).await;
    rec.fail_next(&[503]);
    let unlooked = ops("uadmin", "role grant @dave cab").await;
    let dave = ops("udave", "change approve CHG-1").await;

    // Assert: carol's Mattermost ID got the role and her vote counts.
    assert!(said(&granted).contains("mattermost:ucarol"), "{granted}");
    let lookups: Vec<Value> = rec
        .calls()
        .into_iter()
        .filter(|c| c.path == "/users/usernames")
        .map(|c| c.body)
        .collect();
    assert_eq!(lookups, [json!(["carol"]), json!(["dave"])]);
    assert!(!said(&carol).contains("refused"), "{carol}");
    // The failed lookup ran nothing and told only the sender why.
    assert_eq!(unlooked["response_type"], "ephemeral", "{unlooked}");
    assert_eq!(
        said(&unlooked),
        "could not look up @dave in Mattermost; nothing was done, try again in a moment"
    );
    assert!(said(&dave).contains("cab"), "{dave}");
    assert_eq!(voters(&running, "CHG-1").await, ["mattermost:ucarol"]);
    running.stop().await.unwrap();
}

async fn a_vote_cast_elsewhere_updates_the_cab_card_in_place_through_the_api(db: common::TestDb) {
    // Arrange: a change's card in the CAB channel.
    let (running, base, rec) = serve(&db).await;
    slash(
        &base,
        "ureq",
        "change request \"Rotate keys\" type:normal",
        COMMAND_TOKEN,
    )
    .await;
    slash(&base, "ureq", "change submit CHG-1", COMMAND_TOKEN).await;
    let calls = rec
        .wait_for("the CAB card", |c| {
            c.iter()
                .any(|c| c.path == "/posts" && c.body["channel_id"] == "chcab")
        })
        .await;
    let (i, _) = calls
        .iter()
        .enumerate()
        .find(|(_, c)| c.path == "/posts" && c.body["channel_id"] == "chcab")
        .unwrap();
    let post = format!("post{i}");

    // Act: a vote from outside Mattermost (here the terminal, as the same CAB member).
    common::ok(&running.ledger, "mattermost:ucab2", "change approve CHG-1").await;
    let calls = rec
        .wait_for("the card's patch", |c| {
            c.iter().any(|c| c.path == format!("/posts/{post}/patch"))
        })
        .await;

    // Assert: the same post, redrawn with the vote; no second card.
    let patch = calls
        .iter()
        .find(|c| c.path == format!("/posts/{post}/patch"))
        .unwrap();
    let card = patch.body["props"]["attachments"][0].to_string();
    assert!(card.contains("1/2 approvals"), "{card}");
    assert!(card.contains("mattermost:ucab2"), "{card}");
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.path == "/posts" && c.body["channel_id"] == "chcab")
            .count(),
        1
    );
    running.stop().await.unwrap();
}

async fn segregation_of_duties_holds_across_one_person_s_slack_discord_and_mattermost_accounts(
    db: common::TestDb,
) {
    // Arrange: Alice sits on the CAB through her Discord account and requested a change from
    // Slack; her Mattermost account is joined to both by [people].
    let rules = r#"
[roles]
admin = ["console:root"]
cab = ["discord:4141", "mattermost:ucab1"]

[people]
alice = ["slack:U0ALICE", "discord:4141", "mattermost:ualice"]
"#;
    let (running, base, _rec) = serve_with(&db, rules, opsledger::app::system_time_source()).await;
    common::ok(
        &running.ledger,
        "slack:U0ALICE",
        "change request \"Rotate keys\" type:normal",
    )
    .await;
    common::ok(&running.ledger, "slack:U0ALICE", "change submit CHG-1").await;
    let approve = opsledger_mattermost::sign_context(ACTION_SECRET, "change approve", "CHG-1");

    // Act: Alice clicks Approve in Mattermost; then another CAB member does.
    let alice: Value = click(&base, "ualice", "p1", &approve)
        .await
        .json()
        .await
        .unwrap();
    let other: Value = click(&base, "ucab1", "p1", &approve)
        .await
        .json()
        .await
        .unwrap();

    // Assert: her vote is refused as the requester's (her CAB role counts, her request too).
    let refusal = alice["ephemeral_text"].as_str().unwrap_or_default();
    assert!(refusal.contains("you requested CHG-1"), "{alice}");
    assert!(other.get("ephemeral_text").is_none(), "{other}");
    assert_eq!(voters(&running, "CHG-1").await, ["mattermost:ucab1"]);
    running.stop().await.unwrap();
}

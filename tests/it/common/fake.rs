//! The one helper every fake platform API in the tests is built on: a local server on a free
//! port, a recorder of what it received, and the answers the real platforms give, taken from
//! their reference docs rather than from what an SDK's model expects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Serves `app` on 127.0.0.1 at a free port for the rest of the test; returns its base URL
/// (`http://127.0.0.1:PORT`, no trailing slash).
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a fake platform API");
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Polls `probe` until it gives a value (the outbox delivers asynchronously); fails the test
/// after `within`, showing `state()`.
pub async fn until<T, S: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Option<T>,
    state: impl Fn() -> S,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; state: {:#?}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What a fake platform API received, and the failure statuses it is to answer first; shared
/// between the fake's handlers and the test that waits on it.
#[derive(Clone)]
pub struct Recorder<T> {
    calls: Arc<Mutex<Vec<T>>>,
    failures: Arc<Mutex<std::collections::VecDeque<u16>>>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder {
            calls: Arc::default(),
            failures: Arc::default(),
        }
    }
}

impl<T: Clone + std::fmt::Debug> Recorder<T> {
    pub fn push(&self, call: T) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<T> {
        self.calls.lock().unwrap().clone()
    }

    /// Queues statuses to answer instead of the next calls.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.failures.lock().unwrap().extend(statuses);
    }

    /// The next queued failure, if any (the fake answers it and records nothing).
    pub fn next_failure(&self) -> Option<u16> {
        self.failures.lock().unwrap().pop_front()
    }

    pub fn failures_left(&self) -> usize {
        self.failures.lock().unwrap().len()
    }

    /// Waits until `pred` holds for the calls so far (the outbox delivers asynchronously).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[T]) -> bool) -> Vec<T> {
        until(
            what,
            Duration::from_secs(15),
            || {
                let calls = self.calls();
                pred(&calls).then_some(calls)
            },
            || self.calls(),
        )
        .await
    }
}

/// A text/plain answer, as Slack's `response_url` (a bare `ok`) or a proxy in front of an API
/// gives.
pub fn plain(status: u16, body: &'static str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Slack's Web API (api.slack.com/methods): HTTP 200 with `{"ok": ...}` whatever happened, except
/// a rate limit, which is HTTP 429 with `Retry-After`.
pub mod slack {
    use super::*;

    /// The success answer of `method` to `body`: `ts` names a new message, `channel_id` a
    /// channel `conversations.create` made.
    pub fn ok(method: &str, body: &Value, ts: &str, channel_id: &str) -> Value {
        let channel = body["channel"].as_str().unwrap_or("C0");
        match method {
            "chat.postMessage" => {
                json!({"ok": true, "channel": channel, "ts": ts, "message": {"ts": ts, "text": body["text"]}})
            }
            "chat.update" => {
                json!({"ok": true, "channel": channel, "ts": body["ts"], "text": body["text"], "message": {"text": body["text"]}})
            }
            "views.open" => json!({"ok": true, "view": {
                "id": "V1", "team_id": "T1", "hash": "h1", "type": "modal",
                "title": {"type": "plain_text", "text": "x"}, "blocks": []
            }}),
            "conversations.create" => {
                json!({"ok": true, "channel": {"id": channel_id, "name": body["name"], "created": 1700000000}})
            }
            // As Slack's reference shows it: the direct-message channel's ID (here `D` and the
            // user's ID, so a test can tell whose it is).
            "conversations.open" => {
                json!({"ok": true, "channel": {"id": format!("D{}", body["users"].as_str().unwrap_or(""))}})
            }
            _ => json!({"ok": true}),
        }
    }

    /// A message timestamp, `1700000000.00000n`.
    pub fn ts(n: u64) -> String {
        format!("1700000000.{n:06}")
    }

    /// A refusal at HTTP 200, e.g. `name_taken`.
    pub fn error(error: &str) -> Response {
        Json(json!({"ok": false, "error": error})).into_response()
    }

    /// HTTP 429 with `Retry-After: after` seconds.
    pub fn ratelimited(after: u64) -> Response {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
        r.headers_mut()
            .insert("retry-after", after.to_string().parse().unwrap());
        r
    }
}

/// Discord's REST API (discord.com/developers/docs): created objects come back whole, with
/// their snowflake `id`.
pub mod discord {
    use super::*;

    /// The application's user ID, as the author of its own messages.
    pub const APP_ID: &str = "1100000000000000001";
    pub const GUILD: &str = "1200000000000000001";

    /// A message as Discord returns it.
    pub fn message(id: &str, channel: &str, body: &Value) -> Value {
        json!({
            "id": id, "channel_id": channel, "type": 0,
            "author": {"id": APP_ID, "username": "opsledger", "discriminator": "0000", "global_name": null, "avatar": null, "bot": true},
            "content": body["content"], "embeds": body["embeds"], "components": body["components"],
            "timestamp": "2026-11-29T10:00:00.000000+00:00", "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "pinned": false, "flags": 0
        })
    }

    /// A thread started on a message, as Discord returns it.
    pub fn thread(id: &str, parent: &str, name: &Value) -> Value {
        json!({
            "id": id, "type": 11, "parent_id": parent, "guild_id": GUILD,
            "name": name, "owner_id": APP_ID, "message_count": 0, "member_count": 1,
            "thread_metadata": {"archived": false, "auto_archive_duration": 1440, "archive_timestamp": "2026-11-29T10:00:00.000000+00:00", "locked": false}
        })
    }

    /// The direct-message channel `POST /users/@me/channels` returns.
    pub fn dm_channel(id: &str, recipient: &str) -> Value {
        json!({
            "id": id, "type": 1, "last_message_id": null, "flags": 0,
            "recipients": [{"id": recipient, "username": format!("user{recipient}"), "discriminator": "0", "global_name": null, "avatar": null, "public_flags": 0}]
        })
    }

    /// A snowflake, distinct per `n`.
    pub fn snowflake(n: u64) -> String {
        (1_400_000_000_000_000_000 + n).to_string()
    }

    /// An error status with Discord's JSON body; a 429 carries `Retry-After` too.
    pub fn failure(status: u16) -> Response {
        let mut resp = (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false})),
        )
            .into_response();
        if status == 429 {
            resp.headers_mut()
                .insert("retry-after", "1".parse().unwrap());
        }
        resp
    }
}

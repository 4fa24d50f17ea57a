//! REST API v4 calls for the bot: posts created and patched in place, channels opened for major
//! incidents with their members added, direct-message channels, and interactive dialogs; with
//! failures sorted into "try again later" and "will never work".
//!
//! Plain reqwest with typed serde structs: no crate fits. `mattermost_api` is built around a
//! websocket session, and the generated clients (`mattermost-rust-client`,
//! `mattermost-client`) bring reqwest 0.11 as a second HTTP stack, type a post's `props` as a
//! string, and drop the rate-limit headers a 429 carries, which the outbox needs to wait right.
//! Answers are read for the one field needed (the new ID), so a field Mattermost adds cannot
//! fail a call that already happened.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MattermostApiError {
    /// Rate limited, a 5xx, or the network: try again (after `after` when Mattermost said).
    #[error("mattermost is unavailable: {reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// A request Mattermost will never accept as it is (no such channel, no permission, ...).
    #[error("mattermost refused the request: {0}")]
    Permanent(String),
}

/// A Mattermost REST client for one bot account.
#[derive(Clone)]
pub struct MattermostApi {
    http: reqwest::Client,
    /// `MATTERMOST_URL`, without a trailing slash; calls go to `<base>/api/v4/...`.
    base: String,
    token: String,
}

impl std::fmt::Debug for MattermostApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MattermostApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// What Mattermost answers for anything it creates: only the ID is needed.
#[derive(Deserialize)]
struct Created {
    id: String,
}

/// The `id` of what an answer describes (a post, a channel, a user), or why it has none.
fn id_in(answer: &[u8], what: &str) -> Result<String, MattermostApiError> {
    serde_json::from_slice::<Created>(answer)
        .map(|c| c.id)
        .map_err(|e| MattermostApiError::Permanent(format!("no ID in the answer to {what}: {e}")))
}

/// Mattermost's error body: `{"id": "...", "message": "...", "status_code": 403}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// How long a 429 says to wait: `Retry-After` (seconds), else `X-Ratelimit-Reset`, which
/// Mattermost sends as the seconds until its limit resets (a Unix time, as other servers send it,
/// is read as such).
fn wait_of(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(s) = number("retry-after") {
        return Some(Duration::from_secs_f64(s));
    }
    let reset = number("x-ratelimit-reset")?;
    if reset > 1_000_000_000.0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        return Some(Duration::from_secs_f64((reset - now).max(0.0)));
    }
    Some(Duration::from_secs_f64(reset))
}

/// The error IDs Mattermost answers `POST /channels` with when the name is taken, by a channel
/// or by an archived one.
const NAME_TAKEN: [&str; 2] = [
    "store.sql_channel.save_channel.exists.app_error",
    "store.sql_channel.save_channel.previously.app_error",
];

/// How many names an incident channel tries: its own, then `-2`, `-3`, ...
const CHANNEL_NAME_TRIES: u32 = 10;

/// `name`, or for the `n`th try `name-n`, cut so it stays within Mattermost's 64 characters.
fn suffixed_channel_name(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_string();
    }
    let suffix = format!("-{n}");
    let base: String = name.chars().take(64 - suffix.len()).collect();
    format!("{}{suffix}", base.trim_end_matches('-'))
}

/// An answer that was not a success, before it is sorted.
struct Refusal {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Refusal {
    /// Mattermost's error ID, when the body is its error.
    fn error_id(&self) -> Option<String> {
        serde_json::from_slice::<ErrorBody>(&self.body)
            .ok()
            .map(|e| e.id)
    }

    fn sorted(self) -> MattermostApiError {
        classify(self.status, &self.headers, &self.body)
    }
}

/// Sorts an answer that was not a success.
fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> MattermostApiError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| format!("{} ({})", e.message, e.id))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    match status {
        429 => MattermostApiError::Retry {
            after: wait_of(headers),
            reason: format!("HTTP 429: {detail}"),
        },
        500..=599 | 408 => MattermostApiError::Retry {
            after: None,
            reason: format!("HTTP {status}: {detail}"),
        },
        _ => MattermostApiError::Permanent(format!("HTTP {status}: {detail}")),
    }
}

impl MattermostApi {
    pub fn new(base: &str, token: &str) -> Result<MattermostApi, MattermostApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                MattermostApiError::Permanent(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(MattermostApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<u8>, MattermostApiError> {
        self.send(method, path, body)
            .await?
            .map_err(Refusal::sorted)
    }

    /// One request: the body of a success, or the refusal as answered; `Err` when no answer came.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Result<Vec<u8>, Refusal>, MattermostApiError> {
        let mut req = self
            .http
            .request(method, format!("{}/api/v4{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| MattermostApiError::Retry {
            after: None,
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| MattermostApiError::Retry {
            after: None,
            reason: e.to_string(),
        })?;
        if (200..300).contains(&status) {
            Ok(Ok(bytes.to_vec()))
        } else {
            Ok(Err(Refusal {
                status,
                headers,
                body: bytes.to_vec(),
            }))
        }
    }

    async fn create(&self, path: &str, body: Value) -> Result<String, MattermostApiError> {
        let bytes = self.call(reqwest::Method::POST, path, Some(body)).await?;
        id_in(&bytes, &format!("POST {path}"))
    }

    /// The bot's own user ID (`GET /users/me`), for direct-message channels.
    pub async fn me(&self) -> Result<String, MattermostApiError> {
        let bytes = self.call(reqwest::Method::GET, "/users/me", None).await?;
        id_in(&bytes, "GET /users/me")
    }

    /// The user IDs of these usernames (`POST /users/usernames`), by username; a name Mattermost
    /// does not know is left out, as Mattermost leaves it out of its answer.
    pub async fn user_ids(
        &self,
        usernames: &[String],
    ) -> Result<HashMap<String, String>, MattermostApiError> {
        #[derive(Deserialize)]
        struct User {
            id: String,
            username: String,
        }
        let bytes = self
            .call(
                reqwest::Method::POST,
                "/users/usernames",
                Some(json!(usernames)),
            )
            .await?;
        serde_json::from_slice::<Vec<User>>(&bytes)
            .map(|users| users.into_iter().map(|u| (u.username, u.id)).collect())
            .map_err(|e| {
                MattermostApiError::Permanent(format!("no users in /users/usernames: {e}"))
            })
    }

    /// Posts a card (`POST /posts`); its ID, for updating it later.
    pub async fn create_post(
        &self,
        channel_id: &str,
        attachments: Value,
    ) -> Result<String, MattermostApiError> {
        self.create(
            "/posts",
            json!({ "channel_id": channel_id, "message": "", "props": { "attachments": attachments } }),
        )
        .await
    }

    /// Posts plain text (`POST /posts`).
    pub async fn create_text_post(
        &self,
        channel_id: &str,
        text: &str,
    ) -> Result<String, MattermostApiError> {
        self.create(
            "/posts",
            json!({ "channel_id": channel_id, "message": text }),
        )
        .await
    }

    /// Shows a card to one person in a channel (`POST /posts/ephemeral`).
    pub async fn ephemeral_post(
        &self,
        user_id: &str,
        channel_id: &str,
        attachments: Value,
    ) -> Result<(), MattermostApiError> {
        self.call(
            reqwest::Method::POST,
            "/posts/ephemeral",
            Some(json!({
                "user_id": user_id,
                "post": { "channel_id": channel_id, "message": "", "props": { "attachments": attachments } },
            })),
        )
        .await
        .map(drop)
    }

    /// Updates a card in place (`PUT /posts/{id}/patch`).
    pub async fn patch_post(
        &self,
        post_id: &str,
        attachments: Value,
    ) -> Result<(), MattermostApiError> {
        self.call(
            reqwest::Method::PUT,
            &format!("/posts/{post_id}/patch"),
            Some(json!({ "message": "", "props": { "attachments": attachments } })),
        )
        .await
        .map(drop)
    }

    /// Opens a public channel in the team (`POST /channels`); its name and ID. When the name is
    /// taken (another opsledger on the team, an earlier database, a channel someone made or
    /// archived), tries `name-2`, `name-3`, ... up to `CHANNEL_NAME_TRIES` names.
    pub async fn create_channel(
        &self,
        team_id: &str,
        name: &str,
        display_name: &str,
    ) -> Result<(String, String), MattermostApiError> {
        for n in 1..=CHANNEL_NAME_TRIES {
            let candidate = suffixed_channel_name(name, n);
            let body = json!({ "team_id": team_id, "name": candidate, "display_name": display_name, "type": "O" });
            match self
                .send(reqwest::Method::POST, "/channels", Some(body))
                .await?
            {
                Ok(bytes) => return Ok((candidate, id_in(&bytes, "POST /channels")?)),
                Err(r)
                    if r.status == 400
                        && r.error_id()
                            .is_some_and(|id| NAME_TAKEN.contains(&id.as_str())) =>
                {
                    continue
                }
                Err(r) => return Err(r.sorted()),
            }
        }
        Err(MattermostApiError::Permanent(format!(
            "the channel name {name} and {} suffixed names are all taken",
            CHANNEL_NAME_TRIES - 1
        )))
    }

    /// Adds a member to a channel (`POST /channels/{id}/members`).
    pub async fn add_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<(), MattermostApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/channels/{channel_id}/members"),
            Some(json!({ "user_id": user_id })),
        )
        .await
        .map(drop)
    }

    /// The direct-message channel between the bot and a person (`POST /channels/direct`).
    pub async fn direct_channel(
        &self,
        bot_id: &str,
        user_id: &str,
    ) -> Result<String, MattermostApiError> {
        self.create("/channels/direct", json!([bot_id, user_id]))
            .await
    }

    /// Opens an interactive dialog for the person who clicked (`POST /actions/dialogs/open`).
    pub async fn open_dialog(
        &self,
        trigger_id: &str,
        url: &str,
        dialog: Value,
    ) -> Result<(), MattermostApiError> {
        self.call(
            reqwest::Method::POST,
            "/actions/dialogs/open",
            Some(json!({ "trigger_id": trigger_id, "url": url, "dialog": dialog })),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_429_waits_as_long_as_mattermost_says() {
        let body =
            br#"{"id":"api.context.rate_limit","message":"Too many requests","status_code":429}"#;
        let e = classify(429, &headers(&[("x-ratelimit-reset", "7")]), body);
        assert_eq!(
            e,
            MattermostApiError::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 429: Too many requests (api.context.rate_limit)".into()
            }
        );
        let e = classify(
            429,
            &headers(&[("retry-after", "2"), ("x-ratelimit-reset", "9")]),
            b"",
        );
        assert!(
            matches!(e, MattermostApiError::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
        let e = classify(429, &headers(&[]), b"");
        assert!(matches!(e, MattermostApiError::Retry { after: None, .. }));
    }

    #[test]
    fn a_taken_channel_name_gets_a_suffix_within_64_characters() {
        assert_eq!(suffixed_channel_name("inc-4-db-down", 1), "inc-4-db-down");
        assert_eq!(suffixed_channel_name("inc-4-db-down", 2), "inc-4-db-down-2");
        let long = format!("inc-4-{}", "a".repeat(58));
        assert_eq!(long.len(), 64);
        let tenth = suffixed_channel_name(&long, 10);
        assert_eq!(tenth.len(), 64);
        assert!(tenth.ends_with("a-10"), "{tenth}");
    }

    #[test]
    fn a_5xx_is_retried_and_a_4xx_is_given_up_with_mattermost_s_reason() {
        assert!(matches!(
            classify(503, &headers(&[]), b"down"),
            MattermostApiError::Retry { .. }
        ));
        let e = classify(
            403,
            &headers(&[]),
            br#"{"id":"api.context.permissions.app_error","message":"You do not have the appropriate permissions.","status_code":403}"#,
        );
        assert_eq!(
            e,
            MattermostApiError::Permanent(
                "HTTP 403: You do not have the appropriate permissions. (api.context.permissions.app_error)".into()
            )
        );
    }
}

#[cfg(test)]
mod wire {
    //! The client against a local server that answers as Mattermost does, one request each.
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// Each request as the server read it: its request line, authorization and body.
    type Seen = Vec<(String, String, String)>;

    /// Serves `answers` in turn; returns the base URL and what each request was.
    fn server(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut auth = String::new();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end().to_string();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "authorization" => auth = v.trim().to_string(),
                        "content-length" => length = v.trim().parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                seen.push((
                    line.trim_end().to_string(),
                    auth,
                    String::from_utf8(body).unwrap(),
                ));
                let mut stream = stream;
                stream.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (base, handle)
    }

    #[tokio::test]
    async fn a_card_is_posted_then_patched_and_a_429_says_how_long_to_wait() {
        let (base, handle) = server(vec![
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 41\r\n\r\n{\"id\":\"p1xyz\",\"channel_id\":\"c1\",\"x\":true}",
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 14\r\n\r\n{\"id\":\"p1xyz\"}",
            "HTTP/1.1 429 Too Many Requests\r\nX-Ratelimit-Limit: 10\r\nX-Ratelimit-Remaining: 0\r\nX-Ratelimit-Reset: 3\r\nConnection: close\r\nContent-Length: 81\r\n\r\n{\"id\":\"api.context.rate_limit\",\"message\":\"Too many requests\",\"status_code\":429}   ",
        ]);
        let api = MattermostApi::new(&format!("{base}/"), "bot-token").unwrap();
        let cards = json!([{ "text": "INC-1" }]);

        let id = api.create_post("c1", cards.clone()).await.unwrap();
        api.patch_post(&id, cards).await.unwrap();
        let limited = api.create_text_post("c1", "hello").await.unwrap_err();

        let seen = handle.join().unwrap();
        assert_eq!(id, "p1xyz");
        assert_eq!(seen[0].0, "POST /api/v4/posts HTTP/1.1");
        assert_eq!(seen[0].1, "Bearer bot-token");
        let posted: Value = serde_json::from_str(&seen[0].2).unwrap();
        assert_eq!(
            posted,
            json!({"channel_id": "c1", "message": "", "props": {"attachments": [{"text": "INC-1"}]}})
        );
        assert_eq!(seen[1].0, "PUT /api/v4/posts/p1xyz/patch HTTP/1.1");
        assert!(
            matches!(limited, MattermostApiError::Retry { after: Some(d), .. } if d == Duration::from_secs(3)),
            "{limited:?}"
        );
    }

    #[tokio::test]
    async fn a_taken_channel_name_is_tried_again_with_a_suffix() {
        let (base, handle) = server(vec![
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 182\r\n\r\n{\"id\":\"store.sql_channel.save_channel.exists.app_error\",\"message\":\"A channel with that name already exists on the same team.\",\"detailed_error\":\"\",\"request_id\":\"r1\",\"status_code\":400}",
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 94\r\n\r\n{\"id\":\"ch2\",\"team_id\":\"t1\",\"name\":\"inc-4-db-down-2\",\"display_name\":\"INC-4 DB down\",\"type\":\"O\"}",
        ]);
        let api = MattermostApi::new(&base, "bot-token").unwrap();

        let made = api
            .create_channel("t1", "inc-4-db-down", "INC-4 DB down")
            .await;

        let seen = handle.join().unwrap();
        assert_eq!(made, Ok(("inc-4-db-down-2".to_string(), "ch2".to_string())));
        let names: Vec<Value> = seen
            .iter()
            .map(|s| serde_json::from_str::<Value>(&s.2).unwrap()["name"].clone())
            .collect();
        assert_eq!(names, [json!("inc-4-db-down"), json!("inc-4-db-down-2")]);
    }
}

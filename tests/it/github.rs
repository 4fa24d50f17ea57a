//! GitHub end to end: deliveries signed exactly as GitHub signs them (HMAC-SHA256 of the body in
//! `X-Hub-Signature-256`), payloads shaped like GitHub's (tests/fixtures/github), and a local fake
//! GitHub REST API (`GITHUB_API_URL`) that records what opsledger sends.
use crate::common::{self, fake, github_signature as signature};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::{Json, Router};
use opsledger::app::Running;
use opsledger::config::Integrations;
use opsledger::domain::ids::{Actor, Kind};
use opsledger::domain::records::Record;
use serde_json::{json, Value};

const SECRET: &str = "It's a Secret to Everybody";
const TOKEN: &str = "ghp_test_token";

/// One call the fake GitHub API received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    auth: String,
    body: Value,
}

/// A fake GitHub REST API: records calls, answers queued failures first, and serves the
/// commits and pull request a test sets.
#[derive(Clone, Default)]
struct FakeGithub {
    rec: common::fake::Recorder<Call>,
    commits: Arc<Mutex<Vec<Value>>>,
    pull: Arc<Mutex<Value>>,
    ids: Arc<AtomicU64>,
    /// Installation tokens are handed out already expired, so each call needs a new one.
    expired_tokens: Arc<std::sync::atomic::AtomicBool>,
}

impl std::ops::Deref for FakeGithub {
    type Target = common::fake::Recorder<Call>;
    fn deref(&self) -> &Self::Target {
        &self.rec
    }
}

fn page_of(all: &[Value], query: &str) -> Vec<Value> {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let per_page = param("per_page").unwrap_or(30);
    let page = param("page").unwrap_or(1);
    all.iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

async fn fake_api(
    State(fake): State<FakeGithub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    if let Some(status) = fake.next_failure() {
        let message = match status {
            403 => "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            _ => "Server Error",
        };
        let mut resp = (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest"})),
        )
            .into_response();
        resp.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        return resp;
    }
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.push(Call {
        method: method.to_string(),
        path: path.clone(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: body.clone(),
    });
    let id = 9000 + fake.ids.fetch_add(1, Ordering::SeqCst);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["repos", _, _, "statuses", _]) => {
            (StatusCode::CREATED, Json(json!({"id": id, "state": body["state"], "context": body["context"]}))).into_response()
        }
        ("POST", ["repos", _, _, "check-runs"]) => {
            (StatusCode::CREATED, Json(json!({"id": id, "name": body["name"]}))).into_response()
        }
        ("POST", ["repos", _, _, "issues", _, "comments"]) => {
            (StatusCode::CREATED, Json(json!({"id": id, "body": body["body"]}))).into_response()
        }
        ("PATCH", ["repos", _, _, "issues", "comments", existing]) => {
            Json(json!({"id": existing.parse::<u64>().unwrap(), "body": body["body"]})).into_response()
        }
        ("GET", ["repos", _, _, "commits"]) => {
            // Newest first, as GitHub lists them.
            let mut all = fake.commits.lock().unwrap().clone();
            all.reverse();
            Json(Value::Array(page_of(&all, &query))).into_response()
        }
        ("GET", ["repos", _, _, "compare", _]) => {
            let all = fake.commits.lock().unwrap().clone();
            Json(json!({"total_commits": all.len(), "commits": page_of(&all, &query)})).into_response()
        }
        ("GET", ["repos", _, _, "pulls", _]) => Json(fake.pull.lock().unwrap().clone()).into_response(),
        ("GET", ["repos", _, _, "installation"]) => Json(json!({"id": 77})).into_response(),
        ("POST", ["app", "installations", _, "access_tokens"]) => (
            StatusCode::CREATED,
            Json(json!({
                "token": "ghs_installation_token",
                "expires_at": if fake.expired_tokens.load(Ordering::SeqCst) { "2000-01-01T00:00:00Z" } else { "2099-01-01T00:00:00Z" },
                "permissions": {"statuses": "write", "checks": "write", "pull_requests": "write"},
                "repository_selection": "all"
            })),
        )
            .into_response(),
        ("POST", [.., "deployment_protection_rule"]) => StatusCode::NO_CONTENT.into_response(),
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

impl FakeGithub {
    async fn start() -> (FakeGithub, String) {
        let fake = FakeGithub::default();
        let app = Router::new().fallback(fake_api).with_state(fake.clone());
        (fake, fake::serve(app).await)
    }
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The repository every fixture is about.
fn repo() -> String {
    fixture("push.json")["repository"]["full_name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A commit SHA whose first seven digits (the short form) differ for each `n`.
fn sha(n: u64) -> String {
    format!("{:07x}{}", 0x1000000 + n, "e".repeat(33))
}

/// A `pull_request` delivery built from GitHub's example.
fn pull_request(
    action: &str,
    number: u64,
    title: &str,
    branch: &str,
    head: &str,
    merged: bool,
) -> Value {
    let mut p = fixture("pull_request_opened.json");
    p["repository"] = fixture("push.json")["repository"].clone();
    p["action"] = json!(action);
    p["number"] = json!(number);
    let pr = &mut p["pull_request"];
    pr["number"] = json!(number);
    pr["title"] = json!(title);
    pr["body"] = json!("Upgrades the database.");
    pr["head"]["ref"] = json!(branch);
    pr["head"]["sha"] = json!(head);
    pr["base"]["ref"] = json!("main");
    pr["user"]["login"] = json!("octocat");
    pr["merged"] = json!(merged);
    pr["state"] = json!(if action == "closed" { "closed" } else { "open" });
    pr["merge_commit_sha"] = json!(sha(0xfeed));
    if merged {
        pr["merged_at"] = json!("2026-11-29T12:00:00Z");
    }
    p
}

fn commit(sha: &str, message: &str) -> Value {
    json!({"sha": sha, "commit": {"message": message}})
}

/// A `push` delivery to `main` with these (sha, message) commits.
fn push(commits: &[(&str, &str)]) -> Value {
    let mut p = fixture("push.json");
    let template = p["head_commit"].clone();
    let list: Vec<Value> = commits
        .iter()
        .map(|(sha, message)| {
            let mut c = template.clone();
            c["id"] = json!(sha);
            c["message"] = json!(message);
            c
        })
        .collect();
    p["ref"] = json!("refs/heads/main");
    p["after"] = json!(commits.last().map(|c| c.0).unwrap_or("0"));
    p["head_commit"] = list.last().cloned().unwrap_or(Value::Null);
    p["commits"] = Value::Array(list);
    p
}

fn rules(repo: &str, extra: &str) -> String {
    format!(
        r#"
[roles]
admin = ["console:root"]
cab = ["console:carol", "console:dave", "github:octocat"]
change-manager = ["console:alice"]

[github]
protected = ["{repo}:main"]
{extra}
"#
    )
}

struct GithubApp {
    running: Option<Running>,
    base: String,
    client: reqwest::Client,
    fake: FakeGithub,
    fake_base: String,
    seq: AtomicU64,
    _db: common::TestDb,
}

async fn spawn_github_app(extra_rules: &str, app_auth: bool) -> GithubApp {
    let (fake, fake_base) = FakeGithub::start().await;
    let mut integrations = Integrations {
        github_webhook_secret: Some(SECRET.to_string().into()),
        github_api_url: fake_base.clone(),
        ..Integrations::default()
    };
    if app_auth {
        integrations.github_app_id = Some("4242".into());
        integrations.github_app_private_key = Some(
            format!(
                "{}/tests/fixtures/github-app-test-key.pem",
                env!("CARGO_MANIFEST_DIR")
            )
            .into(),
        );
    } else {
        integrations.github_token = Some(TOKEN.to_string().into());
    }
    let (running, base, db) =
        common::serve_platforms(integrations, &rules(&repo(), extra_rules), None).await;
    GithubApp {
        running: Some(running),
        base,
        client: reqwest::Client::new(),
        fake,
        fake_base,
        seq: AtomicU64::new(1),
        _db: db,
    }
}

impl GithubApp {
    async fn post(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<String>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/github/webhook", self.base))
            .header("content-type", "application/json")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        req.send().await.unwrap()
    }

    /// Sends a signed delivery with a fresh delivery ID; returns the answer's body.
    async fn deliver(&self, event: &str, payload: &Value) -> Value {
        let id = format!("delivery-{}", self.seq.fetch_add(1, Ordering::SeqCst));
        self.deliver_as(event, &id, payload).await
    }

    async fn deliver_as(&self, event: &str, delivery: &str, payload: &Value) -> Value {
        let body = payload.to_string();
        let resp = self
            .post(
                event,
                delivery,
                body.as_bytes(),
                Some(signature(SECRET, body.as_bytes())),
            )
            .await;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{event} delivery accepted: {answer}");
        answer
    }

    fn ledger(&self) -> &opsledger::ledger::Ledger {
        &self.running.as_ref().unwrap().ledger
    }

    async fn exec(&self, actor: &str, text: &str) -> opsledger::domain::reply::Reply {
        self.ledger()
            .handle_text(Actor::parse(actor).unwrap(), text)
            .await
            .reply
    }

    async fn record(&self, kind: Kind, key: &str) -> Option<Record> {
        self.ledger().store().get(kind, key).await.unwrap()
    }

    /// The release once its commits have been collected (the outbox does that after the delivery).
    async fn collected(&self, id: &str) -> opsledger::domain::records::Release {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(Record::Release(r)) = self.record(Kind::Release, id).await {
                if !r.commits.is_empty() {
                    return r;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} got no commits"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn count(&self, kind: Kind) -> usize {
        let q = opsledger::store::ListQuery::new(kind, 1000);
        self.ledger().store().list(&q).await.unwrap().len()
    }

    /// A submitted normal change requested by alice.
    async fn submitted_change(&self, title: &str) {
        let r = self
            .exec(
                "console:alice",
                &format!("change request \"{title}\" type:normal"),
            )
            .await;
        let id = r.record.clone().unwrap();
        self.exec("console:alice", &format!("change submit {id}"))
            .await;
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

/// The first `opsledger/change` status with `state` set on `head`.
fn status_call<'a>(calls: &'a [Call], head: &str, state: &str) -> Option<&'a Call> {
    calls.iter().find(|c| {
        c.method == "POST"
            && c.path.ends_with(&format!("/statuses/{head}"))
            && c.body["state"] == state
            && c.body["context"] == "opsledger/change"
    })
}

fn has_status(calls: &[Call], head: &str, state: &str) -> bool {
    status_call(calls, head, state).is_some()
}

#[tokio::test]
async fn forged_sha1_and_missing_signatures_get_401_and_change_nothing() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let payload = push(&[(&sha(1), "Hotfix straight to main")]).to_string();
    let body = payload.as_bytes();
    let sha1 = "sha1=0123456789abcdef0123456789abcdef01234567".to_string();
    let before = app.ledger().store().chain_head().await.unwrap().0;

    // Act
    let forged = app
        .post("push", "d-1", body, Some(signature("not the secret", body)))
        .await;
    let old_algorithm = app.post("push", "d-2", body, Some(sha1)).await;
    let missing = app.post("push", "d-3", body, None).await;
    let tampered = app
        .post(
            "push",
            "d-4",
            b"{\"ref\":\"refs/heads/main\"}",
            Some(signature(SECRET, body)),
        )
        .await;

    // Assert
    assert_eq!(forged.status(), 401);
    assert_eq!(old_algorithm.status(), 401);
    assert_eq!(missing.status(), 401);
    assert_eq!(tampered.status(), 401);
    assert_eq!(app.ledger().store().chain_head().await.unwrap().0, before);
    assert_eq!(app.count(Kind::Nonconformity).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_ping_gets_pong_and_an_event_it_does_not_use_gets_200() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let comment = fixture("issue_comment_created.json");

    // Act
    let ping = app.deliver("ping", &fixture("ping.json")).await;
    let ignored = app.deliver("issue_comment", &comment).await;
    let star = app
        .deliver(
            "star",
            &json!({"action": "created", "starred_at": "2026-11-29T10:00:00Z", "repository": fixture("push.json")["repository"], "sender": fixture("push.json")["sender"]}),
        )
        .await;

    // Assert
    assert_eq!(ping["ok"], "pong");
    assert!(
        ignored["ok"].as_str().unwrap().contains("not used"),
        "{ignored}"
    );
    assert!(star["ok"].as_str().unwrap().contains("not used"), "{star}");
    app.stop().await;
}

#[tokio::test]
async fn the_change_gates_the_merge_the_release_and_the_deployment() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let repo = repo();
    app.submitted_change("Upgrade the database").await;
    let head = sha(0xabc);

    // Act 1: a pull request names CHG-1 in its branch.
    let opened = pull_request(
        "opened",
        12,
        "Upgrade the database",
        "CHG-1-upgrade-db",
        &head,
        false,
    );
    app.deliver("pull_request", &opened).await;

    // Assert 1: pending, with one comment; the change knows the pull request and its author.
    let calls = app
        .fake
        .wait_for("a pending status and a comment", |c| {
            has_status(c, &head, "pending")
                && c.iter().any(|c| c.path.ends_with("/issues/12/comments"))
        })
        .await;
    let pending = status_call(&calls, &head, "pending").unwrap();
    assert!(pending.body["description"]
        .as_str()
        .unwrap()
        .contains("CHG-1 waits for votes (0/2"));
    assert_eq!(pending.auth, format!("Bearer {TOKEN}"));
    let Some(Record::Change(chg)) = app.record(Kind::Change, "CHG-1").await else {
        panic!("CHG-1")
    };
    assert_eq!(chg.links[0].number, Some(12));
    assert_eq!(chg.links[0].sha.as_deref(), Some(head.as_str()));
    assert_eq!(
        chg.links[0].author.as_ref().unwrap().as_str(),
        "github:octocat"
    );

    // Act 2: the pull request's author may not vote; the CAB approves.
    let self_vote = app.exec("github:octocat", "change approve CHG-1").await;
    app.exec("console:carol", "change approve CHG-1").await;
    app.exec("console:dave", "change approve CHG-1").await;

    // Assert 2: success, and the comment is edited rather than repeated.
    assert!(self_vote.text.contains("you wrote"), "{}", self_vote.text);
    let calls = app
        .fake
        .wait_for("a success status and an edited comment", |c| {
            has_status(c, &head, "success")
                && c.iter().any(|c| {
                    c.method == "PATCH"
                        && c.body["body"].as_str().unwrap_or("").contains("approved")
                })
        })
        .await;
    let created = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/comments"))
        .count();
    assert_eq!(created, 1, "one comment per pull request");

    // Act 3: merged, pushed to main, released with two commits of the change.
    let merged = pull_request(
        "closed",
        12,
        "Upgrade the database",
        "CHG-1-upgrade-db",
        &head,
        true,
    );
    app.deliver("pull_request", &merged).await;
    let merge_commit = sha(0xfeed);
    app.deliver(
        "push",
        &push(&[(
            &merge_commit,
            "Merge pull request #12 from acme/CHG-1-upgrade-db\n\nUpgrade the database",
        )]),
    )
    .await;
    *app.fake.commits.lock().unwrap() = vec![
        commit(&head, "Upgrade the database schema for CHG-1"),
        commit(
            &merge_commit,
            "Merge pull request #12 from acme/CHG-1-upgrade-db",
        ),
    ];
    let mut release = fixture("release_published.json");
    release["release"]["tag_name"] = json!("v1.2.0");
    let answer = app.deliver("release", &release).await;

    // Assert 3: no nonconformity; REL-1 holds both commits and the change.
    assert_eq!(answer["record"], "REL-1", "{answer}");
    let rel = app.collected("REL-1").await;
    assert_eq!(rel.repo.as_deref(), Some(repo.as_str()));
    assert_eq!(rel.commits, [head.clone(), merge_commit.clone()]);
    assert_eq!(
        rel.changes
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
        ["CHG-1"]
    );
    assert!(rel.unapproved_commits.is_empty());
    assert_eq!(app.count(Kind::Nonconformity).await, 0);

    // Act 4: the production deployment waits on opsledger, then succeeds.
    let mut gate = fixture("deployment_protection_rule_requested.json");
    gate["deployment"]["sha"] = json!(merge_commit);
    gate["deployment"]["ref"] = json!("v1.2.0");
    gate["deployment_callback_url"] = json!(format!(
        "{}/repos/{repo}/actions/runs/1234/deployment_protection_rule",
        app.fake_base
    ));
    app.deliver("deployment_protection_rule", &gate).await;
    let mut status = fixture("deployment_status_created.json");
    status["deployment"]["sha"] = json!(merge_commit);
    status["deployment"]["ref"] = json!("v1.2.0");
    app.deliver("deployment_status", &status).await;

    // Assert 4
    let calls = app
        .fake
        .wait_for("the deployment approved", |c| {
            c.iter()
                .any(|c| c.path.ends_with("/deployment_protection_rule"))
        })
        .await;
    let answer = calls
        .iter()
        .find(|c| c.path.ends_with("/deployment_protection_rule"))
        .unwrap();
    assert_eq!(answer.body["state"], "approved", "{}", answer.body);
    assert_eq!(answer.body["environment_name"], "production");
    assert!(answer.body["comment"]
        .as_str()
        .unwrap()
        .contains("CHG-1 approved"));
    let Some(Record::Release(rel)) = app.record(Kind::Release, "REL-1").await else {
        panic!("REL-1")
    };
    assert_eq!(rel.deployments[0].env, "production");
    assert_eq!(
        rel.deployments[0].actor.as_str(),
        format!(
            "github:{}",
            status["deployment_status"]["creator"]["login"]
                .as_str()
                .unwrap()
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deployment_during_a_freeze_is_rejected_with_the_reason() {
    // Arrange: a freeze around now that allows only emergency changes.
    let now = chrono::Utc::now();
    let freeze = format!(
        "[[freeze]]\nname = \"year-end\"\nstart = \"{}\"\nend = \"{}\"\nallow = [\"emergency\"]\n",
        (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let app = spawn_github_app(&freeze, false).await;
    let repo = repo();
    app.submitted_change("Upgrade the database").await;
    app.exec("console:carol", "change approve CHG-1").await;
    app.exec("console:dave", "change approve CHG-1").await;
    *app.fake.commits.lock().unwrap() = vec![commit(&sha(7), "Upgrade the database for CHG-1")];
    let mut release = fixture("release_published.json");
    release["release"]["tag_name"] = json!("v2.0.0");
    app.deliver("release", &release).await;
    app.collected("REL-1").await;
    let mut gate = fixture("deployment_protection_rule_requested.json");
    gate["deployment"]["sha"] = json!(sha(7));
    gate["deployment"]["ref"] = json!("v2.0.0");
    gate["deployment_callback_url"] = json!(format!(
        "{}/repos/{repo}/actions/runs/99/deployment_protection_rule",
        app.fake_base
    ));

    // Act
    app.deliver("deployment_protection_rule", &gate).await;

    // Assert
    let calls = app
        .fake
        .wait_for("the deployment rejected", |c| {
            c.iter()
                .any(|c| c.path.ends_with("/deployment_protection_rule"))
        })
        .await;
    let answer = calls
        .iter()
        .find(|c| c.path.ends_with("/deployment_protection_rule"))
        .unwrap();
    assert_eq!(answer.body["state"], "rejected");
    assert!(
        answer.body["comment"]
            .as_str()
            .unwrap()
            .contains("year-end freeze"),
        "{}",
        answer.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pull_request_to_a_protected_branch_naming_no_change_fails_with_how_to_fix() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let head = sha(0x51);

    // Act
    app.deliver(
        "pull_request",
        &pull_request("opened", 3, "Quick fix", "quick-fix", &head, false),
    )
    .await;

    // Assert
    let calls = app
        .fake
        .wait_for("a failure status", |c| has_status(c, &head, "failure"))
        .await;
    let failure = status_call(&calls, &head, "failure").unwrap();
    assert!(failure.body["description"]
        .as_str()
        .unwrap()
        .contains("put CHG-n in the title"));
    app.stop().await;
}

#[tokio::test]
async fn new_commits_and_a_rejection_update_the_status() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Drop the old table").await;
    let (first, second) = (sha(0x1), sha(0x2));
    app.deliver(
        "pull_request",
        &pull_request("opened", 5, "CHG-1 drop table", "drop", &first, false),
    )
    .await;

    // Act
    let mut sync = pull_request("synchronize", 5, "CHG-1 drop table", "drop", &second, false);
    sync["before"] = json!(first);
    sync["after"] = json!(second);
    app.deliver("pull_request", &sync).await;
    app.fake
        .wait_for("pending on the new head", |c| {
            has_status(c, &second, "pending")
        })
        .await;
    app.exec("console:carol", "change reject CHG-1 no rollback plan")
        .await;

    // Assert
    let calls = app
        .fake
        .wait_for("failure on the new head", |c| {
            has_status(c, &second, "failure")
        })
        .await;
    let failure = status_call(&calls, &second, "failure").unwrap();
    assert!(failure.body["description"]
        .as_str()
        .unwrap()
        .contains("CHG-1 was rejected"));
    app.stop().await;
}

#[tokio::test]
async fn escapes_past_the_process_are_recorded_as_nonconformities() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Not yet approved").await;

    // Act: an admin merges past branch protection; someone pushes straight to main.
    app.deliver(
        "pull_request",
        &pull_request("closed", 8, "CHG-1 early merge", "early", &sha(8), true),
    )
    .await;
    app.deliver(
        "pull_request",
        &pull_request("closed", 9, "No change at all", "nothing", &sha(9), true),
    )
    .await;
    app.deliver(
        "push",
        &push(&[
            (&sha(10), "Hotfix straight to main"),
            (&sha(11), "Merge pull request #9 from acme/nothing"),
        ]),
    )
    .await;

    // Assert
    let titles: Vec<(String, String)> = {
        let q = opsledger::store::ListQuery::new(Kind::Nonconformity, 10);
        app.ledger()
            .store()
            .list(&q)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| match r {
                Record::Nonconformity(n) => Some((n.rule, n.title)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert_eq!(titles[0].0, "github.unapproved-merge");
    assert!(
        titles[0]
            .1
            .contains("#8 was merged into main without an approved change (CHG-1 is submitted)"),
        "{titles:?}"
    );
    assert!(titles[1].1.contains("#9") && titles[1].1.contains("names no change"));
    assert_eq!(titles[2].0, "github.unapproved-push");
    assert!(
        titles[2].1.contains("1 commit pushed") && titles[2].1.contains(&sha(10)[..7]),
        "{titles:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn replaying_one_delivery_a_hundred_times_records_it_once() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let payload = push(&[(&sha(0x77), "Hotfix straight to main")]);

    // Act
    let mut answers = Vec::new();
    for _ in 0..100 {
        answers.push(app.deliver_as("push", "same-delivery-id", &payload).await);
    }

    // Assert
    assert_eq!(app.count(Kind::Nonconformity).await, 1);
    assert!(answers[1..].iter().all(|a| a["ok"] == "already processed"));
    app.stop().await;
}

#[tokio::test]
async fn a_release_with_an_unapproved_commit_is_flagged_and_raises_a_nonconformity() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Approved work").await;
    app.exec("console:carol", "change approve CHG-1").await;
    app.exec("console:dave", "change approve CHG-1").await;
    let commits: Vec<Value> = (1..=150)
        .map(|n| {
            let message = if n == 42 {
                "sneaky change".to_string()
            } else {
                format!("CHG-1 part {n}")
            };
            commit(&sha(n), &message)
        })
        .collect();
    *app.fake.commits.lock().unwrap() = commits;

    // Act: a chat release naming the repository collects its commits the same way.
    let reply = app
        .exec(
            "console:alice",
            &format!("release create v3.0.0 repo:{}", repo()),
        )
        .await;

    // Assert: all 150 commits over two pages, one flagged.
    assert_eq!(reply.record.as_deref(), Some("REL-1"), "{}", reply.text);
    let rel = app.collected("REL-1").await;
    assert_eq!(rel.commits.len(), 150);
    assert_eq!(rel.unapproved_commits, [sha(42)[..7].to_string()]);
    let Some(Record::Nonconformity(nc)) = app.record(Kind::Nonconformity, "NC-1").await else {
        panic!("NC-1")
    };
    assert_eq!(nc.rule, "github.unapproved-release");
    let pages = app
        .fake
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/commits"))
        .count();
    assert_eq!(pages, 2, "paginated");
    app.stop().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_until_the_status_arrives() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Resilient").await;
    app.fake.fail_next(&[403, 502]);
    let head = sha(0x99);

    // Act
    let started = std::time::Instant::now();
    app.deliver(
        "pull_request",
        &pull_request("opened", 21, "CHG-1 resilient", "r", &head, false),
    )
    .await;

    // Assert
    app.fake
        .wait_for("the status after the failures", |c| {
            has_status(c, &head, "pending")
        })
        .await;
    assert_eq!(app.fake.failures_left(), 0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited at least the Retry-After"
    );
    app.stop().await;
}

#[tokio::test]
async fn as_a_github_app_it_uses_an_installation_token_and_also_creates_check_runs() {
    // Arrange
    let app = spawn_github_app("", true).await;
    app.submitted_change("App-gated").await;
    let head = sha(0x42);

    // Act
    app.deliver(
        "pull_request",
        &pull_request("opened", 30, "CHG-1 via app", "app", &head, false),
    )
    .await;

    // Assert
    let calls = app
        .fake
        .wait_for("a status and a check run", |c| {
            has_status(c, &head, "pending") && c.iter().any(|c| c.path.ends_with("/check-runs"))
        })
        .await;
    let token = calls
        .iter()
        .find(|c| c.path.starts_with("/app/installations/"))
        .expect("a token request");
    let installation = &fixture("pull_request_opened.json")["installation"]["id"];
    assert_eq!(
        token.path,
        format!("/app/installations/{installation}/access_tokens"),
        "the installation the delivery named"
    );
    let jwt = token.auth.strip_prefix("Bearer ").unwrap();
    assert_eq!(jwt.split('.').count(), 3, "a signed JWT");
    let status = calls
        .iter()
        .find(|c| c.path.contains("/statuses/"))
        .unwrap();
    assert_eq!(status.auth, "Bearer ghs_installation_token");
    let run = calls
        .iter()
        .find(|c| c.path.ends_with("/check-runs"))
        .unwrap();
    assert_eq!(run.body["name"], "opsledger/change");
    assert_eq!(run.body["head_sha"], head);
    assert_eq!(run.body["status"], "in_progress");
    app.stop().await;
}

#[tokio::test]
async fn a_chat_link_fetches_the_pull_request_and_sets_its_status() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Linked from chat").await;
    let head = sha(0x5151);
    let mut pr = pull_request("opened", 44, "Unrelated title", "feature", &head, false)
        ["pull_request"]
        .clone();
    pr["user"]["login"] = json!("hubot");
    *app.fake.pull.lock().unwrap() = pr;

    // Act
    let reply = app
        .exec("console:alice", &format!("change link CHG-1 {}#44", repo()))
        .await;

    // Assert
    assert!(reply.text.contains("linked"), "{}", reply.text);
    app.fake
        .wait_for("a status on the fetched head", |c| {
            has_status(c, &head, "pending")
        })
        .await;
    let Some(Record::Change(chg)) = app.record(Kind::Change, "CHG-1").await else {
        panic!("CHG-1")
    };
    assert_eq!(
        chg.links[0].author.as_ref().unwrap().as_str(),
        "github:hubot"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pushed_tag_becomes_a_release_and_the_next_release_compares_with_it() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Tagged work").await;
    app.exec("console:carol", "change approve CHG-1").await;
    app.exec("console:dave", "change approve CHG-1").await;
    *app.fake.commits.lock().unwrap() = vec![commit(&sha(1), "CHG-1 first")];
    let mut tag = fixture("push.json");
    tag["ref"] = json!("refs/tags/v0.2.1");

    // Act 1: the tag's push, then its `create` event, arrive.
    let first = app.deliver("push", &tag).await;
    let mut created = fixture("create_tag.json");
    created["ref"] = json!("v0.2.1");
    let again = app.deliver("create", &created).await;

    // Assert 1: one release for the tag.
    assert_eq!(first["record"], "REL-1", "{first}");
    assert_eq!(again["record"], "REL-1", "{again}");
    assert!(again["ok"].as_str().unwrap().contains("already recorded"));
    app.collected("REL-1").await;

    // Act 2: the next release is compared with the tag before it, over several pages.
    *app.fake.commits.lock().unwrap() = (10..=240).map(|n| commit(&sha(n), "CHG-1 more")).collect();
    let mut release = fixture("release_published.json");
    release["release"]["tag_name"] = json!("v0.3.0");
    app.deliver("release", &release).await;

    // Assert 2
    let rel = app.collected("REL-2").await;
    assert_eq!(rel.commits.len(), 231);
    let compares: Vec<Call> = app
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/compare/"))
        .collect();
    assert_eq!(compares.len(), 3, "three pages of 100");
    assert!(
        compares[0].path.ends_with("/compare/v0.2.1...v0.3.0"),
        "{}",
        compares[0].path
    );
    app.stop().await;
}

#[tokio::test]
async fn a_status_delivered_late_says_what_is_true_when_it_arrives() {
    // Arrange: GitHub is down when the pull request is opened.
    let app = spawn_github_app("", false).await;
    app.submitted_change("Late but right").await;
    app.fake.fail_next(&[502, 502]);
    let head = sha(0x1a7e);

    // Act: the CAB approves while the pending status waits to be retried.
    app.deliver(
        "pull_request",
        &pull_request("opened", 50, "CHG-1 late", "late", &head, false),
    )
    .await;
    app.exec("console:carol", "change approve CHG-1").await;
    app.exec("console:dave", "change approve CHG-1").await;

    // Assert: the first status GitHub accepts is already `success`.
    let calls = app
        .fake
        .wait_for("a status", |c| {
            c.iter()
                .any(|c| c.path.ends_with(&format!("/statuses/{head}")))
        })
        .await;
    let first = calls
        .iter()
        .find(|c| c.path.ends_with(&format!("/statuses/{head}")))
        .unwrap();
    assert_eq!(first.body["state"], "success", "{}", first.body);
    app.stop().await;
}

#[tokio::test]
async fn a_requested_check_suite_sends_its_pull_requests_status_again_and_a_deployment_is_only_logged(
) {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Checked again").await;
    let head = sha(0xc5);
    let mut pr =
        pull_request("opened", 12, "CHG-1 checks", "checks", &head, false)["pull_request"].clone();
    pr["number"] = json!(12);
    *app.fake.pull.lock().unwrap() = pr;
    let mut suite = fixture("check_suite_requested.json");
    suite["check_suite"]["head_sha"] = json!(head);

    // Act
    let answer = app.deliver("check_suite", &suite).await;
    let deployment = app
        .deliver("deployment", &fixture("deployment_created.json"))
        .await;

    // Assert
    assert!(
        answer["ok"].as_str().unwrap().contains("sent again"),
        "{answer}"
    );
    app.fake
        .wait_for("the pull request read and its status set", |c| {
            c.iter()
                .any(|c| c.method == "GET" && c.path.ends_with("/pulls/12"))
                && has_status(c, &head, "pending")
        })
        .await;
    assert!(
        deployment["ok"].as_str().unwrap().contains("not used"),
        "{deployment}"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_deliveries_in_and_out_and_show_the_outbox_depth() {
    // Arrange
    let app = spawn_github_app("", false).await;
    app.submitted_change("Metered").await;
    app.fake.fail_next(&[502]);
    let head = sha(0x3e7);
    let opened = pull_request("opened", 60, "CHG-1 metered", "m", &head, false);

    // Act
    app.deliver_as("pull_request", "m-1", &opened).await;
    app.deliver_as("pull_request", "m-1", &opened).await;
    let forged = app
        .post("push", "m-2", b"{}", Some("sha256=00".into()))
        .await;
    app.fake
        .wait_for("the status", |c| has_status(c, &head, "pending"))
        .await;
    let comment_sent = |c: &[Call]| c.iter().any(|c| c.path.ends_with("/issues/60/comments"));
    app.fake.wait_for("the comment", comment_sent).await;
    // The fake records a call before the worker marks it delivered: scrape until it has.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = app
            .client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("opsledger_outbox_pending 0") || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };

    // Assert
    assert_eq!(forged.status(), 401);
    for line in [
        r#"opsledger_inbound_deliveries_total{platform="github",result="ok"} 1"#,
        r#"opsledger_inbound_deliveries_total{platform="github",result="duplicate"} 1"#,
        r#"opsledger_inbound_deliveries_total{platform="github",result="bad_signature"} 1"#,
        r#"opsledger_outbox_deliveries_total{platform="github",result="retry"} 1"#,
        "opsledger_outbox_pending 0",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    // The status and the comment, plus the change's own refreshes.
    let delivered: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"opsledger_outbox_deliveries_total{platform="github",result="delivered"} "#,
            )
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(delivered >= 2, "{text}");
    app.stop().await;
}

/// GitHub's own example deliveries (npm `@octokit/webhooks-examples` 7.6.1), one file each, named
/// `<X-GitHub-Event>[.<action>][.<n>].json`; see tests/fixtures/github/examples/README.md.
fn examples() -> Vec<(String, String, Vec<u8>)> {
    let dir = format!(
        "{}/tests/fixtures/github/examples",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut out: Vec<(String, String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let event = file.split('.').next().unwrap().to_string();
            (file, event, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The number of examples in `@octokit/webhooks-examples` 7.6.1 (`api.github.com/index.json`).
const EXAMPLES: usize = 329;

#[tokio::test]
async fn every_example_delivery_github_publishes_is_accepted() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let examples = examples();
    assert_eq!(
        examples.len(),
        EXAMPLES,
        "the vendored examples are all there"
    );

    // Act: each body exactly as vendored, signed as GitHub signs it, with its own delivery ID.
    let mut refused = Vec::new();
    for (file, event, body) in &examples {
        let resp = app
            .post(
                event,
                &format!("example-{file}"),
                body,
                Some(signature(SECRET, body)),
            )
            .await;
        let status = resp.status();
        if !status.is_success() {
            let answer = resp.text().await.unwrap_or_default();
            refused.push(format!("{file} ({event}): {status} {answer}"));
        }
    }

    // Assert
    assert!(
        refused.is_empty(),
        "{} of {} example deliveries were refused:\n{}",
        refused.len(),
        examples.len(),
        refused.join("\n")
    );
    app.stop().await;
}

#[tokio::test]
async fn only_a_forged_signature_missing_headers_or_a_body_not_json_is_refused() {
    // Arrange
    let app = spawn_github_app("", false).await;
    let not_json = b"payload=%7B%22zen%22%3A%22hi%22%7D".as_slice();
    let mut lacking = pull_request("opened", 70, "CHG-1 lacking", "l", &sha(0x70), false);
    lacking.as_object_mut().unwrap().remove("pull_request");
    let lacking = lacking.to_string();
    let signed = |body: &[u8]| Some(signature(SECRET, body));
    let before = app.ledger().store().chain_head().await.unwrap().0;

    // Act
    let forged_not_json = app
        .post(
            "push",
            "r-1",
            not_json,
            Some(signature("not the secret", not_json)),
        )
        .await;
    let form_encoded = app.post("push", "r-2", not_json, signed(not_json)).await;
    let no_event = app
        .client
        .post(format!("{}/github/webhook", app.base))
        .header("X-GitHub-Delivery", "r-3")
        .header("X-Hub-Signature-256", signature(SECRET, lacking.as_bytes()))
        .body(lacking.clone())
        .send()
        .await
        .unwrap();
    let ignored = app
        .post(
            "pull_request",
            "r-4",
            lacking.as_bytes(),
            signed(lacking.as_bytes()),
        )
        .await;

    // Assert: the signature first; then only headers and JSON; a delivery lacking what
    // opsledger needs is acknowledged, says why, and changes nothing.
    assert_eq!(forged_not_json.status(), 401);
    assert_eq!(form_encoded.status(), 400);
    assert_eq!(no_event.status(), 400);
    assert_eq!(ignored.status(), 200);
    let answer: Value = ignored.json().await.unwrap();
    assert!(
        answer["ok"]
            .as_str()
            .unwrap()
            .contains("ignored: no `pull_request`"),
        "{answer}"
    );
    assert_eq!(app.ledger().store().chain_head().await.unwrap().0, before);
    app.stop().await;
}

#[tokio::test]
async fn a_deployment_made_through_the_rest_api_is_recorded_on_its_release() {
    // Arrange: GitHub's examples of a deployment made through the REST API (no `workflow`, no
    // `workflow_run`) and of its successful status, and a release of their repository that
    // holds the deployed commit.
    let file = |name: &str| {
        examples()
            .into_iter()
            .find(|(f, ..)| f == name)
            .unwrap_or_else(|| panic!("example {name}"))
            .2
    };
    let created: Value = serde_json::from_slice(&file("deployment.created.json")).unwrap();
    let status: Value = serde_json::from_slice(&file("deployment_status.created.json")).unwrap();
    assert!(created.get("workflow").is_none(), "made without a workflow");
    assert_eq!(status["deployment_status"]["state"], "success");
    let app = spawn_github_app("", false).await;
    let deployed_sha = created["deployment"]["sha"].as_str().unwrap().to_string();
    *app.fake.commits.lock().unwrap() = vec![commit(&deployed_sha, "Deploy me")];
    let mut release = fixture("release_published.json");
    release["repository"] = created["repository"].clone();
    release["release"]["tag_name"] = json!("v1.0.0");
    app.deliver("release", &release).await;
    app.collected("REL-1").await;

    // Act: the deliveries exactly as GitHub publishes them.
    let deployment = app.deliver("deployment", &created).await;
    let succeeded = app.deliver("deployment_status", &status).await;

    // Assert: the deployment is logged, and its success recorded on the release.
    assert!(
        deployment["ok"].as_str().unwrap().contains("not used"),
        "{deployment}"
    );
    assert_eq!(succeeded["record"], "REL-1", "{succeeded}");
    let Some(Record::Release(rel)) = app.record(Kind::Release, "REL-1").await else {
        panic!("REL-1")
    };
    assert_eq!(rel.deployments.len(), 1, "{:?}", rel.deployments);
    assert_eq!(rel.deployments[0].env, "production");
    assert_eq!(
        rel.deployments[0].actor.as_str(),
        format!(
            "github:{}",
            status["deployment_status"]["creator"]["login"]
                .as_str()
                .unwrap()
        )
    );
    app.stop().await;
}

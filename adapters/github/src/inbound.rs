//! Webhook deliveries, parsed with octocrab's webhook event types and reduced to plain values:
//! what happened, in which repository, to which commits and changes' pull requests.
//!
//! Any JSON object is a delivery opsledger answers: events it does not use are not read at all;
//! one octocrab's model refuses is read by the tolerant reader (`tolerant.rs`) and, failing that,
//! is `Ignored` with the reason. Only a body that is not a JSON object is an error.

use octocrab::models::webhook_events::payload::PullRequestWebhookEventAction;
use octocrab::models::webhook_events::{WebhookEvent, WebhookEventPayload};
use serde_json::Value;

/// A commit as opsledger needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub message: String,
}

/// A pull request as opsledger needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `owner/name`.
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    /// The head branch.
    pub branch: String,
    /// The branch it merges into.
    pub base: String,
    pub head_sha: String,
    /// The author's login.
    pub author: String,
    pub url: String,
    pub merged: bool,
    pub merge_sha: Option<String>,
}

/// One delivery, in platform-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubEvent {
    Ping,
    /// Any pull-request action; `action` is GitHub's (`opened`, `synchronize`, `closed`, ...).
    PullRequest {
        action: String,
        pull_request: PullRequest,
        /// Who acted (opened, pushed, merged).
        sender: String,
        installation: Option<u64>,
    },
    /// Commits pushed to a branch (`branch`) or a tag pushed (`tag`).
    Push {
        repo: String,
        branch: Option<String>,
        tag: Option<String>,
        after: String,
        commits: Vec<Commit>,
        pusher: String,
        installation: Option<u64>,
    },
    /// A release; only `published` ones become release records.
    Release {
        action: String,
        repo: String,
        tag: String,
        url: String,
        sender: String,
        installation: Option<u64>,
    },
    /// A branch or tag created.
    Create {
        repo: String,
        ref_type: String,
        name: String,
        sender: String,
        installation: Option<u64>,
    },
    Deployment {
        repo: String,
        sha: String,
        reference: String,
        environment: String,
    },
    DeploymentStatus {
        repo: String,
        sha: String,
        reference: String,
        environment: String,
        state: String,
        creator: String,
    },
    /// A deployment waiting on opsledger's protection rule: answer on `callback_url`.
    DeploymentProtectionRule {
        repo: String,
        sender: String,
        environment: String,
        sha: String,
        reference: String,
        callback_url: String,
        installation: Option<u64>,
    },
    /// A check suite (re)requested on a commit: its pull requests' statuses are sent again.
    CheckSuite {
        action: String,
        repo: String,
        head_sha: String,
        pull_requests: Vec<u64>,
        installation: Option<u64>,
    },
    IssueComment {
        action: String,
        repo: String,
        number: u64,
        on_pull_request: bool,
        body: String,
        author: String,
    },
    /// An event opsledger does not act on.
    Other {
        event: String,
    },
    /// A delivery of an event opsledger acts on that lacks what it needs (`reason` names the
    /// field); it is acknowledged, and logged, rather than refused.
    Ignored {
        event: String,
        reason: String,
    },
}

/// The events `parse_event` reads; any other is `Other` without being read.
const READ: [&str; 10] = [
    "ping",
    "pull_request",
    "push",
    "release",
    "create",
    "deployment",
    "deployment_status",
    "deployment_protection_rule",
    "check_suite",
    "issue_comment",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not a JSON object, so it is no webhook delivery.
    #[error("`{event}` delivery is malformed: {reason}")]
    Malformed { event: String, reason: String },
}

fn action<T: serde::Serialize>(a: &T) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Whether octocrab refused the delivery only for its `action`, one newer than its enums.
fn is_new_action(error: &serde_json::Error, body: &Value) -> bool {
    body["action"].as_str().is_some_and(|a| {
        error
            .to_string()
            .contains(&format!("unknown variant `{a}`"))
    })
}

/// Parses a verified delivery; `event` is the `X-GitHub-Event` header. Only a body that is not a
/// JSON object is an error.
pub fn parse_event(event: &str, body: &[u8]) -> Result<GithubEvent, ParseError> {
    let malformed = |reason: String| ParseError::Malformed {
        event: event.to_string(),
        reason,
    };
    let json: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    if !json.is_object() {
        return Err(malformed("not a JSON object".into()));
    }
    let other = || GithubEvent::Other {
        event: event.to_string(),
    };
    // Reading an event opsledger does not use could only fail it (octocrab reads `repository`,
    // `sender` and the action of every event).
    if !READ.contains(&event) {
        return Ok(other());
    }
    let read = match WebhookEvent::try_from_header_and_body(event, body) {
        Ok(parsed) => from_model(event, parsed),
        // An action GitHub added after this octocrab was released: one opsledger does not act on.
        Err(e) if is_new_action(&e, &json) => {
            tracing::warn!(%event, error = %e, "a GitHub action this version does not know; ignored");
            return Ok(other());
        }
        Err(e) => {
            tracing::warn!(
                %event, error = %e,
                "octocrab cannot read this GitHub delivery; reading the fields opsledger needs from the JSON"
            );
            crate::tolerant::read(event, &json)
        }
    };
    Ok(read.unwrap_or_else(|reason| {
        tracing::warn!(%event, %reason, "a GitHub delivery without what opsledger needs; ignored");
        GithubEvent::Ignored {
            event: event.to_string(),
            reason,
        }
    }))
}

/// A delivery octocrab read, reduced; `Err` names what it lacks.
fn from_model(event: &str, parsed: WebhookEvent) -> Result<GithubEvent, String> {
    let repo = parsed
        .repository
        .as_ref()
        .and_then(|r| r.full_name.clone())
        .unwrap_or_default();
    let installation = parsed.installation.as_ref().map(|i| i.id().0);
    let sender = parsed
        .sender
        .as_ref()
        .map(|s| s.login.clone())
        .unwrap_or_default();
    Ok(match parsed.specific {
        WebhookEventPayload::Ping(_) => GithubEvent::Ping,
        WebhookEventPayload::PullRequest(p) => {
            let pr = &p.pull_request;
            GithubEvent::PullRequest {
                action: action(&p.action),
                pull_request: PullRequest {
                    repo,
                    number: p.number,
                    title: pr.title.clone().unwrap_or_default(),
                    body: pr.body.clone().unwrap_or_default(),
                    branch: pr.head.ref_field.clone(),
                    base: pr.base.ref_field.clone(),
                    head_sha: pr.head.sha.clone(),
                    author: pr
                        .user
                        .as_ref()
                        .map(|u| u.login.clone())
                        .unwrap_or_else(|| sender.clone()),
                    url: pr
                        .html_url
                        .as_ref()
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    merged: pr.merged.unwrap_or(false)
                        || (p.action == PullRequestWebhookEventAction::Closed
                            && pr.merged_at.is_some()),
                    merge_sha: pr.merge_commit_sha.clone(),
                },
                sender,
                installation,
            }
        }
        WebhookEventPayload::Push(p) => {
            let (branch, tag) = branch_or_tag(&p.r#ref);
            GithubEvent::Push {
                repo,
                branch,
                tag,
                after: p.after.clone(),
                commits: p
                    .commits
                    .iter()
                    .map(|c| Commit {
                        sha: c.id.clone(),
                        message: c.message.clone(),
                    })
                    .collect(),
                pusher: p.pusher.username.clone().unwrap_or(sender),
                installation,
            }
        }
        WebhookEventPayload::Release(r) => GithubEvent::Release {
            action: action(&r.action),
            repo,
            tag: text(&r.release, &["tag_name"]),
            url: text(&r.release, &["html_url"]),
            sender,
            installation,
        },
        WebhookEventPayload::Create(c) => GithubEvent::Create {
            repo,
            ref_type: action(&c.ref_type),
            name: c.r#ref.clone(),
            sender,
            installation,
        },
        WebhookEventPayload::Deployment(d) => GithubEvent::Deployment {
            repo,
            sha: text(&d.deployment, &["sha"]),
            reference: text(&d.deployment, &["ref"]),
            environment: text(&d.deployment, &["environment"]),
        },
        WebhookEventPayload::DeploymentStatus(d) => GithubEvent::DeploymentStatus {
            repo,
            sha: text(&d.deployment, &["sha"]),
            reference: text(&d.deployment, &["ref"]),
            environment: {
                let env = text(&d.deployment_status, &["environment"]);
                if env.is_empty() {
                    text(&d.deployment, &["environment"])
                } else {
                    env
                }
            },
            state: text(&d.deployment_status, &["state"]),
            creator: {
                let c = text(&d.deployment_status, &["creator", "login"]);
                if c.is_empty() {
                    sender
                } else {
                    c
                }
            },
        },
        WebhookEventPayload::DeploymentProtectionRule(d) => {
            let deployment = d.deployment.clone().unwrap_or(Value::Null);
            GithubEvent::DeploymentProtectionRule {
                repo,
                sender,
                environment: d.environment.clone().unwrap_or_default(),
                sha: text(&deployment, &["sha"]),
                reference: text(&deployment, &["ref"]),
                callback_url: d
                    .deployment_callback_url
                    .clone()
                    .ok_or("no `deployment_callback_url`")?,
                installation,
            }
        }
        WebhookEventPayload::CheckSuite(c) => GithubEvent::CheckSuite {
            action: action(&c.action),
            repo,
            head_sha: text(&c.check_suite, &["head_sha"]),
            pull_requests: c.check_suite["pull_requests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["number"].as_u64())
                .collect(),
            installation,
        },
        WebhookEventPayload::IssueComment(c) => GithubEvent::IssueComment {
            action: action(&c.action),
            repo,
            number: c.issue.number,
            on_pull_request: c.issue.pull_request.is_some(),
            body: c.comment.body.clone().unwrap_or_default(),
            author: c.comment.user.login.clone(),
        },
        _ => GithubEvent::Other {
            event: event.to_string(),
        },
    })
}

/// A pushed ref's branch (`refs/heads/...`) or tag (`refs/tags/...`); neither for other refs.
pub(crate) fn branch_or_tag(reference: &str) -> (Option<String>, Option<String>) {
    match (
        reference.strip_prefix("refs/heads/"),
        reference.strip_prefix("refs/tags/"),
    ) {
        (Some(b), _) => (Some(b.to_string()), None),
        (_, Some(t)) => (None, Some(t.to_string())),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (file, event, body) of every vendored delivery whose event name the file name gives:
    /// GitHub's examples and the fixtures `<event>_<action>.json` of tests/fixtures/github.
    fn deliveries() -> Vec<(String, String, Vec<u8>)> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/github");
        let mut out = Vec::new();
        for dir in [root.to_string(), format!("{root}/examples")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let file = path.file_name().unwrap().to_string_lossy().into_owned();
                let Some(stem) = file.strip_suffix(".json") else {
                    continue;
                };
                let event = if dir.ends_with("examples") {
                    stem.split('.').next().unwrap().to_string()
                } else {
                    // `deployment_status_created` → `deployment_status`: the longest event named.
                    let Some(e) = READ
                        .iter()
                        .filter(|e| stem == **e || stem.starts_with(&format!("{e}_")))
                        .max_by_key(|e| e.len())
                    else {
                        continue;
                    };
                    e.to_string()
                };
                out.push((file, event, std::fs::read(&path).unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_tolerant_reader_reads_what_octocrab_reads_the_same_way() {
        // Arrange
        let deliveries = deliveries();
        let mut compared = 0;
        let mut differ = Vec::new();

        for (file, event, body) in &deliveries {
            if !READ.contains(&event.as_str()) {
                continue;
            }
            let Ok(parsed) = WebhookEvent::try_from_header_and_body(event, body) else {
                continue;
            };

            // Act
            let model = from_model(event, parsed);
            let json: Value = serde_json::from_slice(body).unwrap();
            let tolerant = crate::tolerant::read(event, &json);

            // Assert (below): the same event, or the same field missing.
            compared += 1;
            if model != tolerant {
                differ.push(format!(
                    "{file}:\n  octocrab {model:?}\n  tolerant {tolerant:?}"
                ));
            }
        }
        // GitHub's examples alone give 83 (every one of these events but the REST-made deployment).
        assert!(
            compared >= 83,
            "compared only {compared} of {}",
            deliveries.len()
        );
        assert!(differ.is_empty(), "{}", differ.join("\n"));
    }

    #[test]
    fn a_pull_request_octocrab_cannot_read_is_read_from_the_json() {
        // Arrange: a head repository GitHub sent in a shape octocrab's model does not expect.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/github/pull_request_opened.json"
        );
        let original = std::fs::read(path).unwrap();
        let mut body: Value = serde_json::from_slice(&original).unwrap();
        body["pull_request"]["head"]["repo"] = Value::String("not an object".into());
        let body = serde_json::to_vec(&body).unwrap();
        assert!(
            WebhookEvent::try_from_header_and_body("pull_request", &body).is_err(),
            "the arrangement must defeat octocrab's model"
        );

        // Act
        let event = parse_event("pull_request", &body);

        // Assert: the same pull request the unchanged delivery gives.
        assert!(
            matches!(event, Ok(GithubEvent::PullRequest { .. })),
            "{event:?}"
        );
        assert_eq!(event, parse_event("pull_request", &original));
    }
}

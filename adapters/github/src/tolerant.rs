//! The tolerant reader: the fields opsledger needs, read straight from a delivery's JSON, for a
//! delivery octocrab's model refuses (a field GitHub omits, such as `workflow` on a deployment
//! made through the REST API). It reads the same fields `inbound` takes from octocrab's types,
//! with the same defaults, and needs only what opsledger cannot do without.

use serde_json::Value;

use crate::inbound::{branch_or_tag, Commit, GithubEvent, PullRequest};

/// A string (or number) at `pointer`, if there is one.
fn opt(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A string (or number) at `pointer`, or the reason the delivery cannot be read: the field.
fn req(v: &Value, pointer: &str) -> Result<String, String> {
    opt(v, pointer).ok_or_else(|| missing(pointer))
}

/// The object at `pointer`, or the reason the delivery cannot be read.
fn object<'a>(v: &'a Value, pointer: &str) -> Result<&'a Value, String> {
    v.pointer(pointer)
        .filter(|o| o.is_object())
        .ok_or_else(|| missing(pointer))
}

/// `/pull_request/head/sha` → ``no `pull_request.head.sha` ``.
fn missing(pointer: &str) -> String {
    format!("no `{}`", pointer.trim_start_matches('/').replace('/', "."))
}

/// Reads one delivery of an event `inbound` maps; `Err` names the field it lacks.
pub(crate) fn read(event: &str, v: &Value) -> Result<GithubEvent, String> {
    let repo = opt(v, "/repository/full_name").unwrap_or_default();
    let installation = v.pointer("/installation/id").and_then(Value::as_u64);
    let sender = opt(v, "/sender/login").unwrap_or_default();
    let action = opt(v, "/action").unwrap_or_default();
    let text = |pointer: &str| opt(v, pointer).unwrap_or_default();
    Ok(match event {
        "ping" => GithubEvent::Ping,
        "pull_request" => {
            let pr = object(v, "/pull_request")?;
            let number = v["number"]
                .as_u64()
                .or_else(|| pr["number"].as_u64())
                .ok_or_else(|| missing("/number"))?;
            // As octocrab reads `merged_at`: present and not null.
            let merged_at = pr.get("merged_at").is_some_and(|m| !m.is_null());
            GithubEvent::PullRequest {
                pull_request: PullRequest {
                    repo,
                    number,
                    title: text("/pull_request/title"),
                    body: text("/pull_request/body"),
                    branch: req(v, "/pull_request/head/ref")?,
                    base: req(v, "/pull_request/base/ref")?,
                    head_sha: req(v, "/pull_request/head/sha")?,
                    author: opt(v, "/pull_request/user/login").unwrap_or_else(|| sender.clone()),
                    url: text("/pull_request/html_url"),
                    merged: pr["merged"].as_bool().unwrap_or(false)
                        || (action == "closed" && merged_at),
                    merge_sha: opt(v, "/pull_request/merge_commit_sha"),
                },
                action,
                sender,
                installation,
            }
        }
        "push" => {
            let reference = req(v, "/ref")?;
            let (branch, tag) = branch_or_tag(&reference);
            GithubEvent::Push {
                repo,
                branch,
                tag,
                after: req(v, "/after")?,
                commits: v["commits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| Commit {
                        sha: opt(c, "/id").unwrap_or_default(),
                        message: opt(c, "/message").unwrap_or_default(),
                    })
                    .collect(),
                pusher: opt(v, "/pusher/username").unwrap_or(sender),
                installation,
            }
        }
        "release" => GithubEvent::Release {
            action,
            repo,
            tag: req(v, "/release/tag_name")?,
            url: text("/release/html_url"),
            sender,
            installation,
        },
        "create" => GithubEvent::Create {
            repo,
            ref_type: req(v, "/ref_type")?,
            name: req(v, "/ref")?,
            sender,
            installation,
        },
        "deployment" => {
            object(v, "/deployment")?;
            GithubEvent::Deployment {
                repo,
                sha: text("/deployment/sha"),
                reference: text("/deployment/ref"),
                environment: text("/deployment/environment"),
            }
        }
        "deployment_status" => {
            object(v, "/deployment")?;
            object(v, "/deployment_status")?;
            GithubEvent::DeploymentStatus {
                repo,
                sha: text("/deployment/sha"),
                reference: text("/deployment/ref"),
                environment: opt(v, "/deployment_status/environment")
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| text("/deployment/environment")),
                state: text("/deployment_status/state"),
                creator: opt(v, "/deployment_status/creator/login")
                    .filter(|c| !c.is_empty())
                    .unwrap_or(sender),
            }
        }
        "deployment_protection_rule" => GithubEvent::DeploymentProtectionRule {
            repo,
            sender,
            environment: text("/environment"),
            sha: text("/deployment/sha"),
            reference: text("/deployment/ref"),
            callback_url: req(v, "/deployment_callback_url")?,
            installation,
        },
        "check_suite" => {
            object(v, "/check_suite")?;
            GithubEvent::CheckSuite {
                action,
                repo,
                head_sha: text("/check_suite/head_sha"),
                pull_requests: v["check_suite"]["pull_requests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["number"].as_u64())
                    .collect(),
                installation,
            }
        }
        "issue_comment" => GithubEvent::IssueComment {
            action,
            repo,
            number: v
                .pointer("/issue/number")
                .and_then(Value::as_u64)
                .ok_or_else(|| missing("/issue/number"))?,
            on_pull_request: v
                .pointer("/issue/pull_request")
                .is_some_and(|p| !p.is_null()),
            body: text("/comment/body"),
            author: req(v, "/comment/user/login")?,
        },
        _ => GithubEvent::Other {
            event: event.to_string(),
        },
    })
}

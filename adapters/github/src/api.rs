//! REST calls through octocrab (commit statuses, check runs, pull-request comments, compare,
//! commits, pull requests, deployment protection callbacks), authenticated with a token or as a
//! GitHub App, with errors sorted into "try again later" and "will never work".
//!
//! Answers are read as JSON for the fields opsledger needs rather than as octocrab's full
//! models, so a field GitHub adds or omits cannot fail a call that already took effect; a write
//! whose 2xx answer cannot be read at all counts as done (the body is logged), never as a
//! failure that would repeat it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use octocrab::models::{AppId, InstallationId};
use octocrab::Octocrab;
use serde_json::{json, Value};

use crate::inbound::Commit;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubApiError {
    /// Rate limited (429, or a 403 from a secondary rate limit), a 5xx, or the network: try
    /// again, after `after` when GitHub said how long.
    #[error("github is unavailable: {reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// A request GitHub will never accept as it is (not found, no permission, invalid).
    #[error("github refused the request: {0}")]
    Permanent(String),
}

/// How opsledger authenticates to GitHub.
#[derive(Clone)]
pub enum Auth {
    /// A personal access or fine-grained token (`GITHUB_TOKEN`).
    Token(String),
    /// A GitHub App (`GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY`): octocrab signs a JWT, then gets
    /// and refreshes each installation's access token.
    App {
        app_id: u64,
        private_key_pem: String,
    },
}

/// The commit status (and, as an App, check run) opsledger sets on a pull request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// `success`, `pending` or `failure`.
    pub state: String,
    pub description: String,
    pub target_url: Option<String>,
    /// `opsledger/change`.
    pub context: String,
}

/// What a pull request is now, read from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestHead {
    pub pull_request: crate::inbound::PullRequest,
}

/// A GitHub REST client pointed at `GITHUB_API_URL`.
pub struct GithubApi {
    root: Octocrab,
    app: bool,
    /// Installation clients by installation ID (octocrab refreshes their tokens).
    installations: Mutex<HashMap<u64, Octocrab>>,
    /// Installation IDs by repository, for calls no webhook named the installation for.
    repo_installations: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for GithubApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApi")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

fn classify(e: octocrab::Error) -> GithubApiError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code;
            let header = |name: &str| {
                source
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let retry_after = header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let exhausted = header("x-ratelimit-remaining").as_deref() == Some("0");
            let until_reset = source.rate_limit_reset.map(|reset| {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                Duration::from_secs(reset.saturating_sub(now).max(1))
            });
            let reason = format!("HTTP {} {}", status.as_u16(), source.message);
            let rate_limited = matches!(status.as_u16(), 408 | 429)
                || (status.as_u16() == 403
                    && (retry_after.is_some()
                        || exhausted
                        || source.message.to_lowercase().contains("rate limit")));
            if rate_limited || status.is_server_error() {
                let after = retry_after.or(if exhausted { until_reset } else { None });
                GithubApiError::Retry { after, reason }
            } else {
                GithubApiError::Permanent(reason)
            }
        }
        octocrab::Error::JWT { source, .. } => {
            GithubApiError::Permanent(format!("cannot sign the App JWT: {source}"))
        }
        // A read whose 2xx answer is not the JSON expected: asking again gets the same answer.
        // (Writes never get here: `write` reads their answers leniently.)
        octocrab::Error::Json { source, .. } => {
            GithubApiError::Permanent(format!("GitHub's answer could not be read: {source}"))
        }
        octocrab::Error::Serde { source, .. } => {
            GithubApiError::Permanent(format!("GitHub's answer could not be read: {source}"))
        }
        other => GithubApiError::Retry {
            after: None,
            reason: other.to_string(),
        },
    }
}

fn commits(v: &Value) -> Vec<Commit> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| Commit {
            sha: c["sha"].as_str().unwrap_or_default().to_string(),
            message: c["commit"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .filter(|c| !c.sha.is_empty())
        .collect()
}

const PAGE: usize = 100;

impl GithubApi {
    /// `base_url` is the REST base, normally `https://api.github.com`.
    pub fn new(auth: Auth, base_url: &str) -> Result<GithubApi, GithubApiError> {
        let builder = Octocrab::builder()
            .base_uri(base_url.trim_end_matches('/'))
            .map_err(|e| GithubApiError::Permanent(format!("GITHUB_API_URL: {e}")))?;
        let (builder, app) = match auth {
            Auth::Token(t) => (builder.personal_token(t), false),
            Auth::App {
                app_id,
                private_key_pem,
            } => (
                builder
                    .app_from_rsa_pem(AppId(app_id), private_key_pem.as_bytes())
                    .map_err(|e| {
                        GithubApiError::Permanent(format!(
                            "GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM form: {e}"
                        ))
                    })?,
                true,
            ),
        };
        let root = builder
            .build()
            .map_err(|e| GithubApiError::Permanent(format!("cannot build the client: {e}")))?;
        Ok(GithubApi {
            root,
            app,
            installations: Mutex::default(),
            repo_installations: Mutex::default(),
        })
    }

    /// Whether this is a GitHub App (which can also create check runs).
    pub fn is_app(&self) -> bool {
        self.app
    }

    /// The client for calls about `repo`: the token's, or the App installation's.
    async fn client(
        &self,
        repo: &str,
        installation: Option<u64>,
    ) -> Result<Octocrab, GithubApiError> {
        if !self.app {
            return Ok(self.root.clone());
        }
        let known = installation.or_else(|| {
            self.repo_installations
                .lock()
                .ok()
                .and_then(|m| m.get(repo).copied())
        });
        let id = match known {
            Some(id) => id,
            None => {
                let v: Value = self
                    .root
                    .get(format!("/repos/{repo}/installation"), None::<&()>)
                    .await
                    .map_err(classify)?;
                v["id"].as_u64().ok_or_else(|| {
                    GithubApiError::Permanent(format!("the App is not installed on {repo}"))
                })?
            }
        };
        if let Ok(mut m) = self.repo_installations.lock() {
            m.insert(repo.to_string(), id);
        }
        if let Some(c) = self
            .installations
            .lock()
            .ok()
            .and_then(|m| m.get(&id).cloned())
        {
            return Ok(c);
        }
        let client = self
            .root
            .installation(InstallationId(id))
            .map_err(|e| GithubApiError::Permanent(format!("installation {id}: {e}")))?;
        if let Ok(mut m) = self.installations.lock() {
            m.insert(id, client.clone());
        }
        Ok(client)
    }

    /// A write (`POST` or `PATCH` of `body` to `route`). A non-2xx is sorted by `classify`; a
    /// 2xx answer is read as JSON, and one that cannot be read is `None`, logged with its body:
    /// the write took effect, so it must not be retried.
    async fn write(
        &self,
        client: &Octocrab,
        patch: bool,
        route: &str,
        body: &Value,
    ) -> Result<Option<Value>, GithubApiError> {
        // A path without a host, as octocrab's own calls send: it adds the API base and, only
        // for such URIs (or api.github.com), the credentials.
        let uri = route.to_string();
        let response = if patch {
            client._patch(uri, Some(body)).await
        } else {
            client._post(uri, Some(body)).await
        }
        .map_err(classify)?;
        let response = octocrab::map_github_error(response)
            .await
            .map_err(classify)?;
        let text = match client.body_to_string(response).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%route, error = %e, "GitHub's 2xx answer could not be read; counting the call as done");
                return Ok(None);
            }
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                tracing::warn!(%route, body = %text, error = %e, "GitHub's 2xx answer is not JSON; counting the call as done");
                Ok(None)
            }
        }
    }

    /// Sets a commit status on `sha`.
    pub async fn set_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
        installation: Option<u64>,
    ) -> Result<(), GithubApiError> {
        let body = json!({
            "state": status.state,
            "description": status.description.chars().take(140).collect::<String>(),
            "target_url": status.target_url,
            "context": status.context,
        });
        let client = self.client(repo, installation).await?;
        self.write(
            &client,
            false,
            &format!("/repos/{repo}/statuses/{sha}"),
            &body,
        )
        .await?;
        Ok(())
    }

    /// Creates a check run on `sha` with the status's outcome (GitHub Apps only).
    pub async fn check_run(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
        installation: Option<u64>,
    ) -> Result<(), GithubApiError> {
        let (run_status, conclusion) = match status.state.as_str() {
            "success" => ("completed", Some("success")),
            "failure" => ("completed", Some("failure")),
            _ => ("in_progress", None),
        };
        let mut body = json!({
            "name": status.context,
            "head_sha": sha,
            "status": run_status,
            "details_url": status.target_url,
            "output": {"title": status.description, "summary": status.description},
        });
        if let Some(c) = conclusion {
            body["conclusion"] = json!(c);
        }
        let client = self.client(repo, installation).await?;
        self.write(&client, false, &format!("/repos/{repo}/check-runs"), &body)
            .await?;
        Ok(())
    }

    /// Edits comment `existing` on the pull request, or creates one; returns the comment's ID
    /// (`None` when a new comment's answer did not say: it was created all the same).
    pub async fn upsert_comment(
        &self,
        repo: &str,
        number: u64,
        existing: Option<u64>,
        body: &str,
        installation: Option<u64>,
    ) -> Result<Option<u64>, GithubApiError> {
        let client = self.client(repo, installation).await?;
        let payload = json!({ "body": body });
        let v = match existing {
            Some(id) => {
                self.write(
                    &client,
                    true,
                    &format!("/repos/{repo}/issues/comments/{id}"),
                    &payload,
                )
                .await?
            }
            None => {
                self.write(
                    &client,
                    false,
                    &format!("/repos/{repo}/issues/{number}/comments"),
                    &payload,
                )
                .await?
            }
        };
        Ok(v.and_then(|v| v["id"].as_u64()).or(existing))
    }

    /// The commits in `head` that are not in `base`, oldest first, every page of them.
    pub async fn compare(
        &self,
        repo: &str,
        base: &str,
        head: &str,
        installation: Option<u64>,
    ) -> Result<Vec<Commit>, GithubApiError> {
        let client = self.client(repo, installation).await?;
        let mut out = Vec::new();
        for page in 1.. {
            let v: Value = client
                .get(
                    format!("/repos/{repo}/compare/{base}...{head}"),
                    Some(&[("per_page", PAGE), ("page", page)]),
                )
                .await
                .map_err(classify)?;
            let batch = commits(&v["commits"]);
            let done = batch.len() < PAGE;
            out.extend(batch);
            let total = v["total_commits"].as_u64().unwrap_or(0) as usize;
            if done || out.len() >= total {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `max` commits reachable from `head`, oldest first (a repository's first release).
    pub async fn list_commits(
        &self,
        repo: &str,
        head: &str,
        max: usize,
        installation: Option<u64>,
    ) -> Result<Vec<Commit>, GithubApiError> {
        let client = self.client(repo, installation).await?;
        let mut out = Vec::new();
        for page in 1.. {
            let v: Value = client
                .get(
                    format!("/repos/{repo}/commits"),
                    Some(&[
                        ("sha", head.to_string()),
                        ("per_page", PAGE.to_string()),
                        ("page", page.to_string()),
                    ]),
                )
                .await
                .map_err(classify)?;
            let batch = commits(&v);
            let done = batch.len() < PAGE;
            out.extend(batch);
            if done || out.len() >= max {
                break;
            }
        }
        out.truncate(max);
        out.reverse();
        Ok(out)
    }

    /// A pull request as it is now.
    pub async fn pull_request(
        &self,
        repo: &str,
        number: u64,
        installation: Option<u64>,
    ) -> Result<PullRequestHead, GithubApiError> {
        let v: Value = self
            .client(repo, installation)
            .await?
            .get(format!("/repos/{repo}/pulls/{number}"), None::<&()>)
            .await
            .map_err(classify)?;
        let s = |p: &[&str]| {
            let mut cur = &v;
            for k in p {
                cur = &cur[*k];
            }
            cur.as_str().unwrap_or_default().to_string()
        };
        Ok(PullRequestHead {
            pull_request: crate::inbound::PullRequest {
                repo: repo.to_string(),
                number,
                title: s(&["title"]),
                body: s(&["body"]),
                branch: s(&["head", "ref"]),
                base: s(&["base", "ref"]),
                head_sha: s(&["head", "sha"]),
                author: s(&["user", "login"]),
                url: s(&["html_url"]),
                merged: v["merged"].as_bool().unwrap_or(false),
                merge_sha: v["merge_commit_sha"].as_str().map(String::from),
            },
        })
    }

    /// Answers a deployment protection rule on its callback URL.
    pub async fn answer_deployment(
        &self,
        repo: &str,
        callback_url: &str,
        environment: &str,
        approved: bool,
        comment: &str,
        installation: Option<u64>,
    ) -> Result<(), GithubApiError> {
        let body = json!({
            "environment_name": environment,
            "state": if approved { "approved" } else { "rejected" },
            "comment": comment.chars().take(1024).collect::<String>(),
        });
        let response = self
            .client(repo, installation)
            .await?
            ._post(callback_url, Some(&body))
            .await
            .map_err(classify)?;
        octocrab::map_github_error(response)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

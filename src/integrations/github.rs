//! GitHub integration: turns verified webhook deliveries into ledger commands (each delivery
//! once), routes the events they raise to outbox items, and delivers those with the
//! `opsledger-github` adapter: commit statuses and check runs, one comment per pull request,
//! release commits from the compare API, and deployment protection answers.
//!
//! Statuses and comments are computed when they are sent, from the changes as they are then, so
//! one delivered late is still right. Every API call about one pull request goes through that
//! pull request's outbox channel, so they happen in order and its comment is created once.

use std::sync::Arc;

use async_trait::async_trait;
use opsledger_github::{CommitStatus, GithubApi, GithubApiError, GithubEvent};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::domain::command::{Command, CommitRef, GithubCmd, PullRequestRef};
use crate::domain::gitflow::{pr_status, GateChange, STATUS_CONTEXT};
use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::records::{repo_term, Change, LinkKind, Record};
use crate::domain::reply::Event;
use crate::ledger::{Ledger, Router};
use crate::outbox::{outbox_op, Deliver, DeliveryError};
use crate::store::{NewOutbox, OutboxItem, Store, TermQuery};

use super::{load, store_retry};

pub const PLATFORM: &str = "github";

outbox_op! {
    /// What the GitHub deliverer does with an outbox item.
    pub enum GithubOp {
        /// Set `opsledger/change` (and, as an App, a check run) on a pull request's head.
        PrStatus = "pr_status",
        /// Create or edit opsledger's one comment on a pull request.
        PrComment = "pr_comment",
        /// A change's state moved: queue status and comment updates for each pull request it
        /// links.
        RefreshChange = "refresh_change",
        /// Read a pull request from the API and run it through the ledger (a chat link, a re-run
        /// check suite).
        SyncPullRequest = "sync_pull_request",
        /// Collect a release's commits with the compare API and record them.
        CollectRelease = "collect_release",
        /// Answer a deployment protection rule on its callback URL.
        AnswerDeployment = "answer_deployment",
    }
}

/// The `message_refs` platform under which a pull request's comment ID is kept.
const COMMENT: &str = "github-comment";
/// The most commits read for a repository's first release (no earlier tag to compare with).
const FIRST_RELEASE_COMMITS: usize = 1000;

#[derive(Clone)]
pub struct GithubConfig {
    pub webhook_secret: SecretString,
    /// Without API credentials, deliveries are still recorded but nothing is sent to GitHub.
    pub api: Option<Arc<GithubApi>>,
    /// Base URL for the links in statuses and comments.
    pub public_url: String,
}

impl std::fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubConfig")
            .field("api", &self.api.is_some())
            .finish_non_exhaustive()
    }
}

fn item(channel: &str, op: GithubOp, record: Option<&str>, payload: Value) -> NewOutbox {
    NewOutbox::new(PLATFORM, channel, op, record, payload)
}

/// One outbox channel per pull request.
fn pr_channel(repo: &str, number: u64) -> String {
    format!("{repo}#{number}")
}

/// The status and comment items for one pull request.
fn pr_items(
    repo: &str,
    number: u64,
    sha: &str,
    changes: &[String],
    protected: bool,
    installation: Option<u64>,
) -> Vec<NewOutbox> {
    let payload = json!({
        "repo": repo, "number": number, "sha": sha, "changes": changes,
        "protected": protected, "installation": installation,
    });
    let channel = pr_channel(repo, number);
    let record = changes.first().map(String::as_str);
    let mut out = vec![item(&channel, GithubOp::PrStatus, record, payload.clone())];
    if !changes.is_empty() || protected {
        out.push(item(&channel, GithubOp::PrComment, record, payload));
    }
    out
}

impl Router for GithubConfig {
    fn route(&self, event: &Event) -> Vec<NewOutbox> {
        if self.api.is_none() {
            return Vec::new();
        }
        match event {
            Event::PullRequestLinked {
                repo,
                number,
                sha,
                changes,
                protected,
                installation,
            } => pr_items(repo, *number, sha, changes, *protected, *installation),
            Event::ChangeSubmitted { id }
            | Event::ChangeVoted { id }
            | Event::ChangeDecided { id, .. }
            | Event::ChangeUpdated { id, .. } => vec![item(
                &format!("change:{id}"),
                GithubOp::RefreshChange,
                Some(id),
                Value::Null,
            )],
            Event::RecordUpdated { id } if id.starts_with("CHG-") => vec![item(
                &format!("change:{id}"),
                GithubOp::RefreshChange,
                Some(id),
                Value::Null,
            )],
            Event::ReleaseNeedsCommits { id, installation } => vec![item(
                &format!("release:{id}"),
                GithubOp::CollectRelease,
                Some(id),
                json!({ "installation": installation }),
            )],
            Event::DeploymentGateDecided {
                repo,
                callback_url,
                environment,
                approved,
                comment,
                installation,
            } => vec![item(
                &format!("deployment:{repo}:{environment}"),
                GithubOp::AnswerDeployment,
                None,
                json!({
                    "repo": repo, "callback_url": callback_url, "environment": environment,
                    "approved": approved, "comment": comment, "installation": installation,
                }),
            )],
            _ => Vec::new(),
        }
    }
}

/// Sends GitHub outbox items.
pub struct GithubDeliverer {
    pub config: GithubConfig,
    pub api: Arc<GithubApi>,
    pub ledger: Ledger,
}

/// The changes as a pull request's status sees them.
fn gate(changes: &[Change]) -> Vec<GateChange> {
    changes
        .iter()
        .map(|c| GateChange {
            id: c.id,
            status: c.status,
            approvals: c.approval_count(),
            required: c.required_approvals,
        })
        .collect()
}

super::delivery_errors!(GithubApiError);

fn field<'a>(item: &'a OutboxItem, name: &str) -> Result<&'a Value, DeliveryError> {
    item.payload
        .get(name)
        .ok_or_else(|| DeliveryError::Permanent(format!("outbox item {} has no {name}", item.id)))
}

fn text(item: &OutboxItem, name: &str) -> Result<String, DeliveryError> {
    Ok(field(item, name)?.as_str().unwrap_or_default().to_string())
}

fn installation(item: &OutboxItem) -> Option<u64> {
    item.payload.get("installation").and_then(Value::as_u64)
}

impl GithubDeliverer {
    fn store(&self) -> &Arc<dyn Store> {
        self.ledger.store()
    }

    /// The named changes as they are now; ones that no longer exist are left out, and a store
    /// failure is retried.
    async fn changes(&self, ids: &[String]) -> Result<Vec<Change>, DeliveryError> {
        let mut out = Vec::new();
        for id in ids {
            match load(&**self.store(), id).await {
                Ok(Record::Change(c)) => out.push(c),
                Ok(_) | Err(DeliveryError::Permanent(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn link(&self, change: Option<&str>) -> Option<String> {
        change.map(|c| {
            format!(
                "{}/api/v1/changes/{c}",
                self.config.public_url.trim_end_matches('/')
            )
        })
    }

    async fn pr_status(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let repo = text(item, "repo")?;
        let sha = text(item, "sha")?;
        let ids: Vec<String> = serde_json::from_value(field(item, "changes")?.clone())
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let protected = field(item, "protected")?.as_bool().unwrap_or(false);
        let changes = gate(&self.changes(&ids).await?);
        let Some(status) = pr_status(protected, &changes) else {
            return Ok(());
        };
        let status = CommitStatus {
            state: status.state.to_string(),
            description: status.description,
            target_url: self.link(ids.first().map(String::as_str)),
            context: STATUS_CONTEXT.to_string(),
        };
        let inst = installation(item);
        self.api
            .set_status(&repo, &sha, &status, inst)
            .await
            .map_err(DeliveryError::from)?;
        if self.api.is_app() {
            self.api
                .check_run(&repo, &sha, &status, inst)
                .await
                .map_err(DeliveryError::from)?;
        }
        Ok(())
    }

    async fn pr_comment(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let repo = text(item, "repo")?;
        let number = field(item, "number")?.as_u64().unwrap_or_default();
        let ids: Vec<String> = serde_json::from_value(field(item, "changes")?.clone())
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let protected = field(item, "protected")?.as_bool().unwrap_or(false);
        let changes = self.changes(&ids).await?;
        let mut lines = vec!["**opsledger** change control".to_string(), String::new()];
        for c in &changes {
            let tally = if c.required_approvals > 0 {
                format!(
                    ", {}/{} approvals",
                    c.approval_count(),
                    c.required_approvals
                )
            } else {
                String::new()
            };
            let id = c.id.to_string();
            let link = self.link(Some(&id)).unwrap_or_default();
            lines.push(format!(
                "- [{id}]({link}) {}: **{}**{tally}",
                c.title, c.status
            ));
        }
        if let Some(status) = pr_status(protected, &gate(&changes)) {
            lines.push(String::new());
            lines.push(format!(
                "`{STATUS_CONTEXT}`: {} ({})",
                status.state, status.description
            ));
        }
        let body = lines.join("\n");
        let key = pr_channel(&repo, number);
        let existing = self
            .store()
            .message_ref(&key, COMMENT, "")
            .await
            .map_err(store_retry)?
            .and_then(|id| id.parse::<u64>().ok());
        let id = self
            .api
            .upsert_comment(&repo, number, existing, &body, installation(item))
            .await
            .map_err(DeliveryError::from)?;
        let Some(id) = id else {
            tracing::warn!(%key, "created the pull request's comment but could not read its ID");
            return Ok(());
        };
        if existing != Some(id) {
            self.store()
                .set_message_ref(&key, COMMENT, "", &id.to_string())
                .await
                .map_err(store_retry)?;
        }
        Ok(())
    }

    /// Queues status and comment updates for each pull request the change links, in each
    /// pull request's own channel; a link made from chat (no head commit known yet) is synced
    /// from the API first.
    async fn refresh_change(&self, record: &str) -> Result<(), DeliveryError> {
        let Record::Change(chg) = load(&**self.store(), record).await? else {
            return Ok(());
        };
        let mut items = Vec::new();
        for l in chg.links.iter().filter(|l| l.kind == LinkKind::PullRequest) {
            let Some(number) = l.number else { continue };
            match &l.sha {
                Some(sha) => {
                    let mut ids: Vec<String> = l.changes.iter().map(|c| c.to_string()).collect();
                    if ids.is_empty() {
                        ids.push(chg.id.to_string());
                    }
                    items.extend(pr_items(&l.repo, number, sha, &ids, false, None));
                }
                None => items.push(item(
                    &pr_channel(&l.repo, number),
                    GithubOp::SyncPullRequest,
                    Some(record),
                    json!({ "repo": l.repo, "number": number }),
                )),
            }
        }
        // No wake-up needed: the worker looks for due items again after every pass.
        for i in items {
            super::enqueue(self.store(), None, i).await;
        }
        Ok(())
    }

    /// Runs a GitHub command; a store failure (or shutdown) is worth retrying.
    async fn run(&self, actor: Actor, cmd: GithubCmd) -> Result<(), DeliveryError> {
        let handled = self.ledger.handle(actor, Command::Github(cmd)).await;
        match handled.reply.outcome {
            crate::domain::reply::Outcome::Failed => Err(DeliveryError::Retry {
                after: None,
                reason: handled.reply.text,
            }),
            _ => Ok(()),
        }
    }

    async fn sync_pull_request(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let repo = text(item, "repo")?;
        let number = field(item, "number")?.as_u64().unwrap_or_default();
        let inst = installation(item);
        let pr = self
            .api
            .pull_request(&repo, number, inst)
            .await
            .map_err(DeliveryError::from)?
            .pull_request;
        let actor =
            Actor::parse(&format!("github:{}", pr.author)).unwrap_or_else(|_| Actor::system());
        self.run(
            actor,
            GithubCmd::PullRequest {
                pr: pull_request_ref(pr),
                installation: inst,
            },
        )
        .await
    }

    async fn collect_release(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let id = item.record.clone().unwrap_or_default();
        let Record::Release(rel) = load(&**self.store(), &id).await? else {
            return Ok(());
        };
        if !rel.commits.is_empty() {
            return Ok(());
        }
        let Some(repo) = rel.repo.clone() else {
            return Ok(());
        };
        let inst = installation(item);
        // The previous release of the same repository is the compare base.
        let mut q = TermQuery::new(Kind::Release, repo_term(&repo));
        q.before = Some(rel.id.n);
        q.limit = Some(1);
        let previous = self
            .store()
            .find(&q)
            .await
            .map_err(store_retry)?
            .into_iter()
            .find_map(|r| match r {
                Record::Release(r) if r.repo.as_deref() == Some(&repo) => Some(r),
                _ => None,
            });
        let commits = match previous {
            Some(p) => {
                self.api
                    .compare(&repo, &p.version, &rel.version, inst)
                    .await
            }
            None => {
                self.api
                    .list_commits(&repo, &rel.version, FIRST_RELEASE_COMMITS, inst)
                    .await
            }
        }
        .map_err(DeliveryError::from)?;
        let id: RecordId = id
            .parse()
            .map_err(|_| DeliveryError::Permanent(format!("bad record {id}")))?;
        self.run(
            Actor::system(),
            GithubCmd::ReleaseCommits {
                id,
                commits: commits
                    .into_iter()
                    .map(|c| CommitRef {
                        sha: c.sha,
                        message: c.message,
                    })
                    .collect(),
            },
        )
        .await
    }
}

#[async_trait]
impl Deliver for GithubDeliverer {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        match item.op::<GithubOp>()? {
            GithubOp::PrStatus => self.pr_status(item).await,
            GithubOp::PrComment => self.pr_comment(item).await,
            GithubOp::RefreshChange => {
                self.refresh_change(item.record.as_deref().unwrap_or_default())
                    .await
            }
            GithubOp::SyncPullRequest => self.sync_pull_request(item).await,
            GithubOp::CollectRelease => self.collect_release(item).await,
            GithubOp::AnswerDeployment => self
                .api
                .answer_deployment(
                    &text(item, "repo")?,
                    &text(item, "callback_url")?,
                    &text(item, "environment")?,
                    field(item, "approved")?.as_bool().unwrap_or(false),
                    &text(item, "comment")?,
                    installation(item),
                )
                .await
                .map_err(DeliveryError::from),
        }
    }
}

fn pull_request_ref(pr: opsledger_github::PullRequest) -> PullRequestRef {
    PullRequestRef {
        repo: pr.repo,
        number: pr.number,
        title: pr.title,
        body: pr.body,
        branch: pr.branch,
        base: pr.base,
        head_sha: pr.head_sha,
        author: pr.author,
        url: pr.url,
        merged: pr.merged,
        merge_sha: pr.merge_sha,
    }
}

fn github_actor(login: &str) -> Actor {
    Actor::parse(&format!("github:{login}")).unwrap_or_else(|_| Actor::system())
}

/// What a delivery asks of the ledger, and as whom; `None` for events only logged.
pub fn command_for(event: GithubEvent) -> Option<(Actor, GithubCmd)> {
    match event {
        GithubEvent::PullRequest {
            pull_request,
            sender,
            installation,
            ..
        } => Some((
            github_actor(&sender),
            GithubCmd::PullRequest {
                pr: pull_request_ref(pull_request),
                installation,
            },
        )),
        GithubEvent::Push {
            repo,
            branch: Some(branch),
            after,
            commits,
            pusher,
            ..
        } if !after.trim_matches('0').is_empty() => Some((
            github_actor(&pusher),
            GithubCmd::Push {
                repo,
                branch,
                commits: commits
                    .into_iter()
                    .map(|c| CommitRef {
                        sha: c.sha,
                        message: c.message,
                    })
                    .collect(),
            },
        )),
        GithubEvent::Push {
            repo,
            tag: Some(tag),
            after,
            pusher,
            installation,
            ..
        } if !after.trim_matches('0').is_empty() => Some((
            github_actor(&pusher),
            GithubCmd::Release {
                repo,
                tag,
                installation,
            },
        )),
        GithubEvent::Create {
            repo,
            ref_type,
            name,
            sender,
            installation,
        } if ref_type == "tag" => Some((
            github_actor(&sender),
            GithubCmd::Release {
                repo,
                tag: name,
                installation,
            },
        )),
        GithubEvent::Release {
            action,
            repo,
            tag,
            sender,
            installation,
            ..
        } if action == "published" => Some((
            github_actor(&sender),
            GithubCmd::Release {
                repo,
                tag,
                installation,
            },
        )),
        GithubEvent::DeploymentStatus {
            repo,
            sha,
            reference,
            environment,
            state,
            creator,
        } if state == "success" => Some((
            github_actor(&creator),
            GithubCmd::Deployed {
                repo,
                sha,
                reference,
                environment,
            },
        )),
        GithubEvent::DeploymentProtectionRule {
            repo,
            sender,
            environment,
            sha,
            reference,
            callback_url,
            installation,
        } => Some((
            github_actor(&sender),
            GithubCmd::DeploymentGate {
                repo,
                sha,
                reference,
                environment,
                callback_url,
                installation,
            },
        )),
        _ => None,
    }
}

/// The work a check suite asks for: its pull requests' statuses again, read fresh.
pub fn resync_items(event: &GithubEvent) -> Vec<NewOutbox> {
    match event {
        GithubEvent::CheckSuite {
            action,
            repo,
            pull_requests,
            installation,
            ..
        } if action != "completed" => pull_requests
            .iter()
            .map(|n| {
                item(
                    &pr_channel(repo, *n),
                    GithubOp::SyncPullRequest,
                    None,
                    json!({ "repo": repo, "number": n, "installation": installation }),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The webhook's handlers: the ledger, the settings and the outbox.
pub type GithubHandlers = super::Handlers<GithubConfig>;

impl super::Handlers<GithubConfig> {
    /// Acts on one verified, parsed delivery, once per `X-GitHub-Delivery`; returns the body of
    /// the 200 answer.
    pub async fn delivery(
        &self,
        event_name: &str,
        delivery_id: &str,
        event: GithubEvent,
    ) -> Result<Value, crate::store::StoreError> {
        match &event {
            GithubEvent::Ping => return Ok(json!({ "ok": "pong" })),
            // Answered 2xx all the same: GitHub disables a hook whose deliveries keep failing,
            // and sending it again would not help. The adapter has logged why.
            GithubEvent::Ignored { reason, .. } => {
                return Ok(json!({ "ok": format!("`{event_name}` delivery ignored: {reason}") }));
            }
            _ => {}
        }
        let already = || json!({ "ok": "already processed", "delivery": delivery_id });
        let resync = resync_items(&event);
        let command = if resync.is_empty() {
            command_for(event)
        } else {
            None
        };
        let Some((actor, cmd)) = command else {
            let now = crate::domain::audit::format_time(chrono::Utc::now());
            if !self
                .ledger
                .store()
                .first_delivery(PLATFORM, delivery_id, &now)
                .await?
            {
                tracing::debug!(%delivery_id, "dropped a redelivered GitHub delivery");
                return Ok(already());
            }
            if !resync.is_empty() {
                if self.config.api.is_some() {
                    for i in resync {
                        super::enqueue(self.ledger.store(), self.outbox.as_ref(), i).await;
                    }
                }
                return Ok(json!({ "ok": "statuses will be sent again" }));
            }
            tracing::debug!(event = %event_name, %delivery_id, "ignored a GitHub event opsledger does not use");
            return Ok(json!({ "ok": format!("`{event_name}` is not used") }));
        };
        // The delivery is noted in the command's own write batch (one commit for both, shared
        // with the batch's other commands), so a delivery whose command failed is acted on
        // when GitHub sends it again.
        let delivery = crate::ledger::Delivery::new(PLATFORM, delivery_id);
        let handled = self
            .ledger
            .handle_once(actor, Command::Github(cmd), Some(delivery))
            .await;
        if handled.reply.outcome == crate::domain::reply::Outcome::Duplicate {
            tracing::debug!(%delivery_id, "dropped a redelivered GitHub delivery");
            return Ok(already());
        }
        if handled.reply.outcome == crate::domain::reply::Outcome::Failed {
            // Nothing was recorded: forget the delivery so GitHub's redelivery is processed.
            self.ledger
                .store()
                .forget_delivery(PLATFORM, delivery_id)
                .await?;
            return Err(crate::store::StoreError::Invalid(handled.reply.text));
        }
        Ok(json!({
            "ok": handled.reply.text,
            "record": handled.reply.record,
            "outcome": handled.reply.outcome.label(),
        }))
    }
}

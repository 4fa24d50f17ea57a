//! What GitHub reports, applied to the records: pull requests linked to the changes they name,
//! escapes past the process recorded as nonconformities, releases and their commits, and the
//! deployment gate's decision. GitHub API calls happen outside, in the outbox.

use crate::domain::command::{CommitRef, GithubCmd, PullRequestRef};
use crate::domain::gitflow::{changes_named, is_protected, pull_requests_merged};
use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::lifecycle::freeze_message;
use crate::domain::records::{
    pr_term, sha_term, tag_term, Change, Incident, Link, LinkKind, Nonconformity, Record, Release,
};
use crate::domain::reply::{Event, Reply};
use crate::store::{ListQuery, RecordPager, TermQuery};

use super::{render, Ctx, Handled, Outcome, RefusedOn, UnitOfWork};

/// The records of a kind carrying an index term, newest first, through the store's index.
async fn carrying(uow: &mut UnitOfWork, kind: Kind, term: String) -> Outcome<Vec<Record>> {
    Ok(uow.find(&TermQuery::new(kind, term)).await?)
}

async fn change(uow: &mut UnitOfWork, id: RecordId) -> Outcome<Option<Change>> {
    Ok(match uow.get(Kind::Change, &id.to_string()).await? {
        Some(Record::Change(c)) => Some(c),
        _ => None,
    })
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Nothing to change: files the outcome in the audit trail and answers with it.
fn noted(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    record: Option<String>,
    text: String,
) -> Handled {
    uow.audit_outcome(ctx, actor, record.clone(), action, format!("ok: {text}"));
    Handled::reply(Reply::ok(record, text))
}

/// Files a nonconformity and returns its event.
fn raise(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    id: RecordId,
    title: String,
    rule: &str,
    record: Option<RecordId>,
) -> Event {
    let nc = Nonconformity::raise(id, title, rule, record, actor, ctx.now);
    uow.save(ctx, actor, "nc raise", None, nc);
    Event::NonconformityRaised { id: id.to_string() }
}

/// The changes a command will read by key, and the terms it will `find` changes by, for
/// `usecase::prefetch`: what `pull_request` reads.
pub(crate) fn reads_ahead(
    policy: &crate::domain::policy::Policy,
    cmd: &GithubCmd,
    changes: &mut Vec<String>,
    terms: &mut Vec<String>,
) {
    if let GithubCmd::PullRequest { pr, .. } = cmd {
        changes.extend(
            changes_named(policy, &[&pr.title, &pr.body, &pr.branch])
                .iter()
                .map(|id| id.to_string()),
        );
        terms.push(pr_term(&pr.repo, pr.number));
    }
}

pub(crate) async fn run(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    cmd: &GithubCmd,
) -> Outcome {
    let action = crate::domain::command::Command::Github(cmd.clone()).name();
    match cmd {
        GithubCmd::PullRequest { pr, installation } => {
            pull_request(uow, ctx, actor, action, pr, *installation).await
        }
        GithubCmd::Push {
            repo,
            branch,
            commits,
        } => push(uow, ctx, actor, action, repo, branch, commits).await,
        GithubCmd::Release {
            repo,
            tag,
            installation,
        } => release(uow, ctx, actor, action, repo, tag, *installation).await,
        GithubCmd::ReleaseCommits { id, commits } => {
            release_commits(uow, ctx, actor, action, *id, commits).await
        }
        GithubCmd::Deployed {
            repo,
            sha,
            reference,
            environment,
        } => deployed(uow, ctx, actor, action, repo, sha, reference, environment).await,
        GithubCmd::DeploymentGate {
            repo,
            sha,
            reference,
            environment,
            callback_url,
            installation,
        } => {
            let (approved, comment, record) =
                gate(uow, ctx, repo, sha, reference, environment).await?;
            let verdict = if approved { "approved" } else { "rejected" };
            let text = format!("deployment to {environment} {verdict}: {comment}");
            let noted = noted(uow, ctx, actor, action, record, text);
            Ok(Handled::with(
                noted.reply,
                vec![Event::DeploymentGateDecided {
                    repo: repo.clone(),
                    callback_url: callback_url.clone(),
                    environment: environment.clone(),
                    approved,
                    comment,
                    installation: *installation,
                }],
            ))
        }
    }
}

async fn pull_request(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    pr: &PullRequestRef,
    installation: Option<u64>,
) -> Outcome {
    let named = changes_named(ctx.policy, &[&pr.title, &pr.body, &pr.branch]);
    let protected = is_protected(ctx.policy, &pr.repo, &pr.base);
    let author = Actor::parse(&format!("github:{}", pr.author)).ok();
    let mut found: Vec<Change> = Vec::new();
    for id in &named {
        if let Some(c) = change(uow, *id).await? {
            found.push(c);
        }
    }
    // A change linked from chat (`change link CHG-n owner/repo#123`) stays linked though the
    // pull request does not name it.
    for c in changes_linking(uow, &pr.repo, pr.number).await? {
        if !found.iter().any(|f| f.id == c.id) {
            found.push(c);
        }
    }
    let ids: Vec<RecordId> = found.iter().map(|c| c.id).collect();
    let name = format!("{}#{}", pr.repo, pr.number);
    for chg in &found {
        let before = Record::Change(chg.clone());
        let mut chg = chg.clone();
        let existing = chg.links.iter_mut().find(|l| {
            l.kind == LinkKind::PullRequest && l.repo == pr.repo && l.number == Some(pr.number)
        });
        let changed = match existing {
            Some(l) => {
                let new_sha = Some(pr.head_sha.clone());
                let same = l.sha == new_sha
                    && l.author == author
                    && l.changes == ids
                    && (pr.url.is_empty() || l.url == pr.url);
                l.sha = new_sha;
                l.author = author.clone();
                l.changes = ids.clone();
                if !pr.url.is_empty() {
                    l.url = pr.url.clone();
                }
                !same
            }
            None => {
                let mut link = Link::pull_request(&pr.repo, pr.number);
                link.sha = Some(pr.head_sha.clone());
                link.author = author.clone();
                link.changes = ids.clone();
                if !pr.url.is_empty() {
                    link.url = pr.url.clone();
                }
                chg.links.push(link);
                true
            }
        };
        if changed {
            uow.save(ctx, actor, action, Some(&before), chg);
        }
    }
    let first = ids.first().map(|i| i.to_string());
    let mut events = Vec::new();
    if !found.is_empty() || protected {
        events.push(Event::PullRequestLinked {
            repo: pr.repo.clone(),
            number: pr.number,
            sha: pr.head_sha.clone(),
            changes: ids.iter().map(|i| i.to_string()).collect(),
            protected,
            installation,
        });
    }
    // A merge into a protected branch that GitHub let through (an admin bypassing branch
    // protection, or protection not set up) is an escape: recorded, since it cannot be undone.
    if pr.merged && protected {
        let unapproved: Vec<String> = found
            .iter()
            .filter(|c| !c.status.is_approved_or_later())
            .map(|c| format!("{} is {}", c.id, c.status))
            .collect();
        if found.is_empty() || !unapproved.is_empty() {
            let why = if found.is_empty() {
                "it names no change".to_string()
            } else {
                unapproved.join(", ")
            };
            let nid = uow.next_id(Kind::Nonconformity).await?;
            let title = format!(
                "{name} was merged into {} without an approved change ({why})",
                pr.base
            );
            events.push(raise(
                uow,
                ctx,
                actor,
                nid,
                title,
                "github.unapproved-merge",
                ids.first().copied(),
            ));
        }
    }
    let text = match (ids.is_empty(), named.len() > ids.len()) {
        (false, _) => format!(
            "{name} is linked to {}",
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (true, true) => format!("{name} names changes that do not exist"),
        (true, false) => format!("{name} names no change"),
    };
    if found.is_empty() {
        let noted = noted(uow, ctx, actor, action, None, text);
        return Ok(Handled::with(noted.reply, events));
    }
    Ok(Handled::with(Reply::ok(first, text), events))
}

/// Whether a commit belongs to an approved change, by the changes its message names.
async fn approved_commit(uow: &mut UnitOfWork, ctx: &Ctx<'_>, commit: &CommitRef) -> Outcome<bool> {
    for id in changes_named(ctx.policy, &[&commit.message]) {
        if let Some(c) = change(uow, id).await? {
            if c.status.is_approved_or_later() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

async fn push(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    repo: &str,
    branch: &str,
    commits: &[CommitRef],
) -> Outcome {
    if !is_protected(ctx.policy, repo, branch) || commits.is_empty() {
        let text = format!("{repo}:{branch}: nothing to check");
        return Ok(noted(uow, ctx, actor, action, None, text));
    }
    let mut escaped = Vec::new();
    for c in commits {
        // A merged pull request's commits are judged by its merge (`github.unapproved-merge`).
        if !pull_requests_merged(&c.message).is_empty() {
            continue;
        }
        if !approved_commit(uow, ctx, c).await? {
            escaped.push(short(&c.sha).to_string());
        }
    }
    if escaped.is_empty() {
        let text = format!("{repo}:{branch}: every commit belongs to an approved change");
        return Ok(noted(uow, ctx, actor, action, None, text));
    }
    let nid = uow.next_id(Kind::Nonconformity).await?;
    let title = format!(
        "{} pushed to {repo}:{branch} without an approved change: {}",
        if escaped.len() == 1 {
            "1 commit".to_string()
        } else {
            format!("{} commits", escaped.len())
        },
        escaped.join(", ")
    );
    let event = raise(
        uow,
        ctx,
        actor,
        nid,
        title.clone(),
        "github.unapproved-push",
        None,
    );
    Ok(Handled::with(
        Reply::ok(Some(nid.to_string()), title),
        vec![event],
    ))
}

/// The newest release of `repo` that is `reference` (a tag) or contains `sha`.
async fn release_for(
    uow: &mut UnitOfWork,
    repo: &str,
    sha: &str,
    reference: &str,
) -> Outcome<Option<Release>> {
    let tag = reference.trim_start_matches("refs/tags/");
    let mut candidates = carrying(uow, Kind::Release, tag_term(repo, tag)).await?;
    if !sha.is_empty() {
        candidates.extend(carrying(uow, Kind::Release, sha_term(repo, sha)).await?);
    }
    // The terms name the candidates; the test below is the definition, as the scan had it.
    Ok(candidates
        .into_iter()
        .filter_map(|r| match r {
            Record::Release(r) if r.repo.as_deref() == Some(repo) => Some(r),
            _ => None,
        })
        .filter(|r| r.version == tag || (!sha.is_empty() && r.commits.iter().any(|c| c == sha)))
        .max_by_key(|r| r.id.n))
}

async fn release(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    repo: &str,
    tag: &str,
    installation: Option<u64>,
) -> Outcome {
    // A published release and its tag's push both arrive: the first makes the record.
    if let Some(existing) = release_for(uow, repo, "", tag).await? {
        let text = format!("{repo} {tag} is already recorded as {}", existing.id);
        let record = Some(existing.id.to_string());
        return Ok(noted(uow, ctx, actor, action, record, text));
    }
    let id = uow.next_id(Kind::Release).await?;
    let rel = Release::create(
        id,
        tag.to_string(),
        Some(repo.to_string()),
        Vec::new(),
        actor,
        ctx.now,
    );
    uow.save(ctx, actor, action, None, rel.clone());
    Ok(Handled::with(
        render::release(
            &rel,
            format!("{id} created: {repo} {tag}; collecting its commits"),
        ),
        vec![
            Event::ReleaseCreated { id: id.to_string() },
            Event::ReleaseNeedsCommits {
                id: id.to_string(),
                installation,
            },
        ],
    ))
}

/// The changes that link pull request `repo#number`.
async fn changes_linking(uow: &mut UnitOfWork, repo: &str, number: u64) -> Outcome<Vec<Change>> {
    let mut found: Vec<Change> = carrying(uow, Kind::Change, pr_term(repo, number))
        .await?
        .into_iter()
        .filter_map(|r| match r {
            Record::Change(c)
                if c.links.iter().any(|l| {
                    l.kind == LinkKind::PullRequest && l.repo == repo && l.number == Some(number)
                }) =>
            {
                Some(c)
            }
            _ => None,
        })
        .collect();
    // In number order, as the scan found them.
    found.reverse();
    Ok(found)
}

async fn release_commits(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    id: RecordId,
    commits: &[CommitRef],
) -> Outcome {
    let mut rel: Release = uow.load_id(id).await?;
    if !rel.commits.is_empty() {
        let text = format!("{id} already holds its commits");
        return Ok(noted(uow, ctx, actor, action, Some(id.to_string()), text));
    }
    let before = Record::Release(rel.clone());
    let repo = rel.repo.clone().unwrap_or_default();
    let mut unapproved = Vec::new();
    for c in commits {
        let mut owners: Vec<Change> = Vec::new();
        for cid in changes_named(ctx.policy, &[&c.message]) {
            if let Some(chg) = change(uow, cid).await? {
                owners.push(chg);
            }
        }
        for n in pull_requests_merged(&c.message) {
            owners.extend(changes_linking(uow, &repo, n).await?);
        }
        for o in &owners {
            if !rel.changes.contains(&o.id) {
                rel.changes.push(o.id);
            }
        }
        if !owners.iter().any(|o| o.status.is_approved_or_later()) {
            unapproved.push(short(&c.sha).to_string());
        }
    }
    rel.commits = commits.iter().map(|c| c.sha.clone()).collect();
    rel.unapproved_commits = unapproved.clone();
    let mut events = vec![Event::RecordUpdated { id: id.to_string() }];
    uow.save(ctx, actor, action, Some(&before), rel.clone());
    let mut text = format!(
        "{id} holds {} commits of {} changes",
        rel.commits.len(),
        rel.changes.len()
    );
    if !unapproved.is_empty() {
        let nid = uow.next_id(Kind::Nonconformity).await?;
        let title = format!(
            "{id} ({repo} {}) contains commits with no approved change: {}",
            rel.version,
            unapproved.join(", ")
        );
        events.push(raise(
            uow,
            ctx,
            actor,
            nid,
            title,
            "github.unapproved-release",
            Some(id),
        ));
        text.push_str(&format!(
            "; {} unapproved commits recorded as {nid}",
            unapproved.len()
        ));
    }
    Ok(Handled::with(render::release(&rel, text), events))
}

#[allow(clippy::too_many_arguments)]
async fn deployed(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    actor: &Actor,
    action: &str,
    repo: &str,
    sha: &str,
    reference: &str,
    environment: &str,
) -> Outcome {
    let Some(mut rel) = release_for(uow, repo, sha, reference).await? else {
        let text = format!("no release of {repo} holds {}", short(sha));
        return Ok(noted(uow, ctx, actor, action, None, text));
    };
    let id = rel.id;
    let before = Record::Release(rel.clone());
    rel.deploy(environment, actor, ctx.now).on(id)?;
    uow.save(ctx, actor, action, Some(&before), rel.clone());
    Ok(Handled::with(
        render::release(&rel, format!("{id} deployed to {environment}")),
        vec![Event::ReleaseDeployed {
            id: id.to_string(),
            env: environment.to_string(),
        }],
    ))
}

/// Decides a deployment: approved only when a release covers it, every change in it is
/// approved, none of its commits escaped, and no freeze forbids any of its changes now.
async fn gate(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    repo: &str,
    sha: &str,
    reference: &str,
    environment: &str,
) -> Outcome<(bool, String, Option<String>)> {
    let Some(rel) = release_for(uow, repo, sha, reference).await? else {
        return Ok((
            false,
            format!(
                "no release of {repo} holds {}: publish a release for it first",
                if sha.is_empty() {
                    reference
                } else {
                    short(sha)
                }
            ),
            None,
        ));
    };
    let record = Some(rel.id.to_string());
    if rel.changes.is_empty() {
        return Ok((false, format!("{} belongs to no change", rel.id), record));
    }
    if !rel.unapproved_commits.is_empty() {
        return Ok((
            false,
            format!(
                "{} contains commits with no approved change: {}",
                rel.id,
                rel.unapproved_commits.join(", ")
            ),
            record,
        ));
    }
    let mut approved = Vec::new();
    let mut services: Vec<String> = Vec::new();
    for id in &rel.changes {
        let Some(c) = change(uow, *id).await? else {
            return Ok((false, format!("{id} does not exist"), record));
        };
        if !c.status.is_approved_or_later() {
            return Ok((false, format!("{id} is {}, not approved", c.status), record));
        }
        if let Some(f) = ctx.policy.freeze_at(ctx.now, c.change_type) {
            let why = freeze_message(&id.to_string(), f, c.change_type);
            return Ok((
                false,
                format!("{why}; deploy to {environment} after it"),
                record,
            ));
        }
        approved.push(id.to_string());
        if let Some(service) = &c.service {
            services.push(service.clone());
        }
    }
    if let Some(fire) = on_fire(uow, ctx, &services).await? {
        return Ok((
            false,
            format!(
                "{} ({}, {}) is open on service {}; deploy to {environment} after it is resolved",
                fire.id,
                fire.priority,
                fire.status,
                fire.service.as_deref().unwrap_or("-")
            ),
            record,
        ));
    }
    Ok((
        true,
        format!("{}: {} approved", rel.id, approved.join(", ")),
        record,
    ))
}

/// An open incident of a priority in `[github] block_deploys_during` on one of `services`, if
/// any: deployments to a service on fire wait.
async fn on_fire(
    uow: &mut UnitOfWork,
    ctx: &Ctx<'_>,
    services: &[String],
) -> Outcome<Option<Incident>> {
    let blocking = &ctx.policy.block_deploys_during;
    if blocking.is_empty() || services.is_empty() {
        return Ok(None);
    }
    let mut q = ListQuery::new(Kind::Incident, 200);
    q.statuses = vec!["new".to_string(), "acknowledged".to_string()];
    let mut pager = RecordPager::new(&mut *uow, q);
    while let Some(page) = pager.next_page().await? {
        for r in page {
            if let Record::Incident(i) = r {
                if blocking.contains(&i.priority)
                    && i.service.as_ref().is_some_and(|s| services.contains(s))
                {
                    return Ok(Some(i));
                }
            }
        }
    }
    Ok(None)
}

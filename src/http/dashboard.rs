//! The dashboard at `/`: server-rendered HTML pages with inline SVG charts, from the templates
//! under `templates/dashboard/`; this module gathers what they show. Open incidents most urgent
//! first with their SLA countdowns, the CAB queue, the change calendar, recent releases, record
//! pages with their links, votes and timeline, and charts of the last twelve weeks. The lists
//! and search are in `lists.rs`, live updates (`/events`, `assets/live.js`) in `live.rs`,
//! sign-in in `session.rs`; every page works without JavaScript.
//!
//! It follows the API's auth: with `OPSLEDGER_API_TOKEN` set, a request needs the bearer token
//! or a signed-in session unless it comes from the machine itself (loopback, and not forwarded
//! by a proxy).

use std::collections::VecDeque;
use std::net::SocketAddr;

use askama::Template;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Datelike, Duration, Utc};

use crate::domain::audit::AuditEntry;
use crate::domain::ids::{Kind, RecordId};
use crate::domain::priority::{countdown, Urgency};
use crate::domain::records::{Change, Record, Release};
use crate::domain::report::ServiceReport;
use crate::domain::status::{ChangeStatus, IncidentStatus};
use crate::store::{ListQuery, OutboxEntry, OutboxState, RecordPager, Store, StoreError};

use super::error::ApiError;
use super::lists::{Filters, ListParams};
use super::AppState;

/// The most rows the overview's small tables show (the CAB queue, parked messages); the lists
/// page through the rest.
const ROWS: i64 = 200;
/// Open incidents a page of the overview shows; its next-page link has the rest.
const OVERVIEW_ROWS: i64 = super::lists::PAGE_ROWS;
const PAGE: i64 = 1000;
const WEEKS: i64 = 12;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/calendar", get(calendar))
        .route("/oncall", get(oncall))
        .route("/releases", get(releases))
        .route("/charts", get(charts))
        .route("/report", get(report))
        .route("/records/{id}", get(record))
        .route("/list/{collection}", get(super::lists::list))
        .route("/search", get(super::lists::search))
        .route("/mine", get(super::lists::mine))
        .route("/events", get(super::live::events))
        .route_layer(axum::middleware::from_fn_with_state(state, require_viewer))
        // Added after the layer, so open to all: they hold nothing private.
        .route("/assets/dashboard.css", get(stylesheet))
        .route("/assets/live.js", get(super::live::script))
}

/// The dashboard's one stylesheet, compiled into the binary so no page needs a CDN.
pub const STYLESHEET: &str = include_str!("../../assets/dashboard.css");

async fn stylesheet() -> impl IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLESHEET,
    )
}

/// The bearer token, a signed-in session, or a request from this machine, when a token is
/// configured.
async fn require_viewer(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &app.api_token {
        // A reverse proxy on this machine connects from loopback too: a request it forwarded
        // (it says so in a forwarding header) is not local.
        let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| req.headers().contains_key(*h));
        let local = !forwarded
            && req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|c| c.0.ip().is_loopback());
        let ok = super::has_bearer(&req, token) || app.sessions.viewer(req.headers()).is_some();
        if !local && !ok {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

/// A page rendered from its template (which extends `dashboard/base.html`).
pub(super) fn html(page: &impl Template) -> Result<Html<String>, ApiError> {
    page.render()
        .map(Html)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("cannot render the page")))
}

/// Records of a kind in some statuses, in ID order: the first page of at most `limit`.
async fn listed(
    store: &dyn Store,
    kind: Kind,
    statuses: &[&str],
    limit: i64,
) -> Result<Vec<Record>, StoreError> {
    let mut q = ListQuery::new(kind, limit);
    q.statuses = statuses.iter().map(|s| s.to_string()).collect();
    Ok(RecordPager::new(store, q)
        .next_page()
        .await?
        .unwrap_or_default())
}

/// Every record of a kind, a page at a time.
async fn each(
    store: &dyn Store,
    kind: Kind,
    f: impl FnMut(&Record) + Send,
) -> Result<(), StoreError> {
    RecordPager::new(store, ListQuery::new(kind, PAGE))
        .for_each(f)
        .await
}

/// A change's window, `start – end` in UTC.
fn window(c: &Change) -> Option<String> {
    c.window.map(|w| {
        format!(
            "{} – {}",
            w.start.format("%Y-%m-%d %H:%M"),
            w.end.format("%Y-%m-%d %H:%M")
        )
    })
}

pub(super) struct IncidentRow {
    pub(super) id: String,
    pub(super) priority: String,
    pub(super) title: String,
    pub(super) status: String,
    pub(super) service: String,
    pub(super) assignee: String,
    /// `p1` to `p4`: the priority's CSS class.
    pub(super) priority_class: String,
    /// `respond` or `resolve`: the deadline the clock counts to.
    pub(super) target: &'static str,
    pub(super) clock: String,
    /// `breached`, `overdue`, `soon` or `ok` (`Urgency::as_str`): the row's CSS class.
    pub(super) urgency: &'static str,
    pub(super) breached: bool,
}

/// An open incident's row, with its SLA countdown and urgency, as of `now`.
pub(super) fn incident_row(
    now: DateTime<Utc>,
    i: &crate::domain::records::Incident,
) -> IncidentRow {
    let (target, due) = if i.status == IncidentStatus::New {
        ("respond", i.response_due)
    } else {
        ("resolve", i.resolve_due)
    };
    IncidentRow {
        id: i.id.to_string(),
        priority: i.priority.to_string(),
        priority_class: i.priority.to_string().to_lowercase(),
        title: i.title.clone(),
        status: i.status.to_string(),
        service: i.service.clone().unwrap_or_default(),
        assignee: i
            .assignee
            .as_ref()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default(),
        target,
        clock: countdown(now, due),
        urgency: Urgency::of(now, i.created_at, due, i.breached).as_str(),
        breached: i.breached,
    }
}

struct QueueRow {
    id: String,
    title: String,
    change_type: &'static str,
    risk: &'static str,
    requester: String,
    approved: usize,
    required: u32,
    /// `voter (decision)`, comma-separated; empty before the first vote.
    voters: String,
    window: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview {
    title: &'static str,
    filters: Filters,
    /// The next page of open incidents, when there is one.
    next: Option<String>,
    incidents: Vec<IncidentRow>,
    queue: Vec<QueueRow>,
    /// Outgoing messages parked after failing past the bounds: what an operator should look
    /// at (`opsledger outbox retry ID` or `drop ID`). Shown only when there are some.
    parked: Vec<OutboxEntry>,
}

async fn overview(
    State(app): State<AppState>,
    p: Result<Query<ListParams>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let p = super::lists::params(p)?;
    let store = &**app.ledger.store();
    let now = app.ledger.time().now();
    // Most urgent first, in the query itself: breached, then least time left, then priority;
    // a page at a time, the next one after the last row's place in that order.
    const OPEN: [&str; 2] = ["new", "acknowledged"];
    let mut q = ListQuery::new(Kind::Incident, OVERVIEW_ROWS + 1);
    q.statuses = OPEN.iter().map(|s| s.to_string()).collect();
    q.urgent_first = true;
    p.apply(&mut q, &OPEN);
    if let Some(after) = p.after.as_deref().filter(|a| !a.is_empty()) {
        if crate::store::parse_urgency_cursor(after).is_none() {
            return Err(ApiError::BadRequest(format!(
                "`{after}` is not a page of the open incidents: start again from /"
            )));
        }
        q.after = Some(after.to_string());
    }
    let mut incidents = store.list(&q).await?;
    let next = if incidents.len() as i64 > OVERVIEW_ROWS {
        incidents.truncate(OVERVIEW_ROWS as usize);
        incidents
            .last()
            .and_then(crate::store::urgency_cursor)
            .map(|c| p.next_page("/", &c))
    } else {
        None
    };
    let filters = p.form("/", &OPEN, true);
    let incidents = incidents
        .iter()
        .filter_map(|r| match r {
            Record::Incident(i) => Some(incident_row(now, i)),
            _ => None,
        })
        .collect();
    let queue = listed(store, Kind::Change, &["submitted"], ROWS)
        .await?
        .iter()
        .filter_map(|r| match r {
            Record::Change(c) => Some(QueueRow {
                id: c.id.to_string(),
                title: c.title.clone(),
                change_type: c.change_type.as_str(),
                risk: c.risk.as_str(),
                requester: c.requester.as_str().to_string(),
                approved: c.approval_count(),
                required: c.required_approvals,
                voters: c
                    .approvals
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({})",
                            a.voter.as_str(),
                            format!("{:?}", a.decision).to_lowercase()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                window: window(c),
            }),
            _ => None,
        })
        .collect();
    let parked = store
        .outbox_stuck(ROWS)
        .await?
        .into_iter()
        .filter(|e| e.state == OutboxState::Parked)
        .collect();
    html(&Overview {
        title: "Overview",
        filters,
        next,
        incidents,
        queue,
        parked,
    })
}

/// A bar of the change calendar's timeline: a freeze or a change's window.
struct CalendarBar {
    label: String,
    x: f64,
    y: usize,
    width: f64,
    freeze: bool,
}

struct WindowRow {
    id: String,
    title: String,
    change_type: &'static str,
    status: String,
    window: Option<String>,
}

struct FreezeRow {
    name: String,
    from: String,
    to: String,
    allows: String,
}

/// One schedule on the on-call page: who is on call now and next, and two weeks of shifts.
struct OncallBoard {
    name: String,
    about: String,
    now: Option<ShiftRow>,
    next: Option<ShiftRow>,
    shifts: Vec<ShiftRow>,
}

struct ShiftRow {
    who: String,
    from: String,
    until: String,
    overridden: bool,
}

#[derive(Template)]
#[template(path = "dashboard/oncall.html")]
struct OncallPage {
    title: &'static str,
    boards: Vec<OncallBoard>,
}

/// Who is on call on each schedule of the rules file, with its overrides, for two weeks from
/// the start of today.
async fn oncall(State(app): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = &**app.ledger.store();
    let now = app.ledger.time().now();
    let mut boards = Vec::new();
    for s in &app.ledger.policy().oncall {
        let overrides = match store.get(Kind::Oncall, &s.name).await? {
            Some(Record::Oncall(r)) => r.overrides,
            _ => Vec::new(),
        };
        let row = |sh: crate::domain::oncall::Shift| ShiftRow {
            who: sh.who,
            from: s.local(sh.from),
            until: s.local(sh.until),
            overridden: sh.overridden,
        };
        let current = s.on_call(now, &overrides);
        let next = current
            .as_ref()
            .and_then(|c| s.on_call(c.until, &overrides))
            .map(row);
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        boards.push(OncallBoard {
            name: s.name.clone(),
            about: format!(
                "{}, {}: {}",
                crate::domain::oncall::rotation_text(s.rotation),
                s.timezone.name(),
                s.members.join(", ")
            ),
            now: current.map(row),
            next,
            shifts: s
                .shifts(today, today + Duration::days(14), &overrides)
                .into_iter()
                .map(row)
                .collect(),
        });
    }
    html(&OncallPage {
        title: "On call",
        boards,
    })
}

#[derive(Template)]
#[template(path = "dashboard/calendar.html")]
struct Calendar {
    title: &'static str,
    start: String,
    end: String,
    height: usize,
    /// Where each week starts on the timeline.
    weeks: Vec<f64>,
    bars: Vec<CalendarBar>,
    changes: Vec<WindowRow>,
    freezes: Vec<FreezeRow>,
}

async fn calendar(State(app): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = &**app.ledger.store();
    let now = app.ledger.time().now();
    let policy = app.ledger.policy();
    let mut changes: Vec<Change> = listed(store, Kind::Change, &["approved", "in_progress"], ROWS)
        .await?
        .into_iter()
        .filter_map(|r| match r {
            Record::Change(c) if c.window.is_some() => Some(c),
            _ => None,
        })
        .collect();
    changes.sort_by_key(|c| c.window.map(|w| w.start));
    // The timeline shows four weeks from the start of this week.
    let start = (now - Duration::days(now.weekday().num_days_from_monday() as i64))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let end = start + Duration::weeks(4);
    let x = |t: DateTime<Utc>| {
        let span = (end - start).num_seconds() as f64;
        120.0 + 680.0 * ((t - start).num_seconds() as f64 / span).clamp(0.0, 1.0)
    };
    let freezes = policy.freezes.iter().map(|f| CalendarBar {
        label: format!("freeze {}", f.name),
        x: x(f.start),
        y: 0,
        width: (x(f.end) - x(f.start)).max(1.0),
        freeze: true,
    });
    let windows = changes.iter().filter_map(|c| {
        c.window.map(|w| CalendarBar {
            label: c.id.to_string(),
            x: x(w.start),
            y: 0,
            width: (x(w.end) - x(w.start)).max(2.0),
            freeze: false,
        })
    });
    let bars: Vec<CalendarBar> = freezes
        .chain(windows)
        .enumerate()
        .map(|(row, bar)| CalendarBar {
            y: 30 + 22 * row,
            ..bar
        })
        .collect();
    html(&Calendar {
        title: "Change calendar",
        start: start.format("%Y-%m-%d").to_string(),
        end: end.format("%Y-%m-%d").to_string(),
        height: 40 + 22 * (changes.len() + policy.freezes.len()).max(1),
        weeks: (0..=4).map(|w| x(start + Duration::weeks(w))).collect(),
        bars,
        changes: changes
            .iter()
            .map(|c| WindowRow {
                id: c.id.to_string(),
                title: c.title.clone(),
                change_type: c.change_type.as_str(),
                status: c.status.to_string(),
                window: window(c),
            })
            .collect(),
        freezes: policy
            .freezes
            .iter()
            .map(|f| {
                let allows: Vec<&str> = f.allow.iter().map(|t| t.as_str()).collect();
                FreezeRow {
                    name: f.name.clone(),
                    from: f.start.format("%Y-%m-%d %H:%M").to_string(),
                    to: f.end.format("%Y-%m-%d %H:%M").to_string(),
                    allows: if allows.is_empty() {
                        "no changes".to_string()
                    } else {
                        allows.join(", ")
                    },
                }
            })
            .collect(),
    })
}

/// A pull request of a release's changes.
struct PullRequest {
    url: String,
    /// `owner/repo#n`.
    label: String,
}

struct ReleaseRow {
    id: String,
    version: String,
    repo: String,
    changes: Vec<String>,
    pull_requests: Vec<PullRequest>,
    /// `env YYYY-MM-DD HH:MM`.
    deployments: Vec<String>,
    commits: usize,
    unapproved: usize,
}

#[derive(Template)]
#[template(path = "dashboard/releases.html")]
struct Releases {
    title: &'static str,
    releases: Vec<ReleaseRow>,
}

async fn releases(State(app): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = &**app.ledger.store();
    let mut recent: VecDeque<Release> = VecDeque::new();
    each(store, Kind::Release, |r| {
        if let Record::Release(r) = r {
            if recent.len() == 20 {
                recent.pop_front();
            }
            recent.push_back(r.clone());
        }
    })
    .await?;
    let mut releases = Vec::new();
    for rel in recent.iter().rev() {
        let mut pull_requests = Vec::new();
        for id in &rel.changes {
            if let Some(Record::Change(c)) = store.get(Kind::Change, &id.to_string()).await? {
                for l in &c.links {
                    if let Some(n) = l.number {
                        pull_requests.push(PullRequest {
                            url: l.url.clone(),
                            label: format!("{}#{n}", l.repo),
                        });
                    }
                }
            }
        }
        releases.push(ReleaseRow {
            id: rel.id.to_string(),
            version: rel.version.clone(),
            repo: rel.repo.clone().unwrap_or_default(),
            changes: rel.changes.iter().map(|c| c.to_string()).collect(),
            pull_requests,
            deployments: rel
                .deployments
                .iter()
                .map(|d| format!("{} {}", d.env, d.at.format("%Y-%m-%d %H:%M")))
                .collect(),
            commits: rel.commits.len(),
            unapproved: rel.unapproved_commits.len(),
        });
    }
    html(&Releases {
        title: "Recent releases",
        releases,
    })
}

/// A week's bar of a chart.
struct WeekBar {
    x: String,
    /// The week, `MM-DD`.
    label: String,
    /// None for a week without a value (no incident resolved, no change finished).
    value: Option<BarValue>,
}

struct BarValue {
    y: String,
    width: String,
    height: String,
    text_y: String,
    /// The value to one decimal, with its unit (the bar's tooltip).
    exact: String,
    rounded: String,
}

struct Chart {
    title: &'static str,
    bars: Vec<WeekBar>,
}

#[derive(Template)]
#[template(path = "dashboard/charts.html")]
struct Charts {
    title: &'static str,
    charts: Vec<Chart>,
}

/// A bar chart of `values` (one per week, oldest first).
fn bars(title: &'static str, unit: &str, values: &[(String, Option<f64>)]) -> Chart {
    let max = values
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let width = 480.0 / values.len().max(1) as f64;
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, (label, v))| {
            let x = 30.0 + i as f64 * width;
            WeekBar {
                x: format!("{x:.1}"),
                label: label.clone(),
                value: v.map(|v| {
                    let h = 160.0 * v / max;
                    BarValue {
                        y: format!("{:.1}", 190.0 - h),
                        width: format!("{:.1}", width * 0.8),
                        height: format!("{h:.1}"),
                        text_y: format!("{:.1}", 186.0 - h),
                        exact: format!("{v:.1}{unit}"),
                        rounded: format!("{v:.0}"),
                    }
                }),
            }
        })
        .collect();
    Chart { title, bars }
}

async fn charts(State(app): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = &**app.ledger.store();
    let now = app.ledger.time().now();
    let monday = (now - Duration::days(now.weekday().num_days_from_monday() as i64))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let first = monday - Duration::weeks(WEEKS - 1);
    let week = |t: DateTime<Utc>| {
        let w = (t - first).num_days().div_euclid(7);
        (0..WEEKS).contains(&w).then_some(w as usize)
    };
    let mut incidents = vec![0u64; WEEKS as usize];
    let mut resolve = vec![(0.0_f64, 0u64); WEEKS as usize];
    each(store, Kind::Incident, |r| {
        if let Record::Incident(i) = r {
            if let Some(w) = week(i.created_at) {
                incidents[w] += 1;
            }
            if let (Some(done), Some(w)) = (i.resolved_at, i.resolved_at.and_then(week)) {
                resolve[w].0 += (done - i.created_at).num_seconds() as f64 / 3600.0;
                resolve[w].1 += 1;
            }
        }
    })
    .await?;
    let mut outcomes = vec![(0u64, 0u64); WEEKS as usize];
    each(store, Kind::Change, |r| {
        if let Record::Change(c) = r {
            if let (Some(done), Some(outcome)) = (c.finished_at, c.outcome) {
                if let Some(w) = week(done) {
                    outcomes[w].1 += 1;
                    if outcome == ChangeStatus::Completed {
                        outcomes[w].0 += 1;
                    }
                }
            }
        }
    })
    .await?;
    let label = |w: usize| {
        (first + Duration::weeks(w as i64))
            .format("%m-%d")
            .to_string()
    };
    let per_week: Vec<_> = (0..WEEKS as usize)
        .map(|w| (label(w), Some(incidents[w] as f64)))
        .collect();
    let mttr: Vec<_> = (0..WEEKS as usize)
        .map(|w| {
            (
                label(w),
                (resolve[w].1 > 0).then(|| resolve[w].0 / resolve[w].1 as f64),
            )
        })
        .collect();
    let success: Vec<_> = (0..WEEKS as usize)
        .map(|w| {
            let (ok, all) = outcomes[w];
            (label(w), (all > 0).then(|| ok as f64 * 100.0 / all as f64))
        })
        .collect();
    html(&Charts {
        title: "Charts",
        charts: vec![
            bars("Incidents per week", "", &per_week),
            bars("Mean time to resolve (hours)", "h", &mttr),
            bars("Change success rate (%)", "%", &success),
        ],
    })
}

#[derive(Template)]
#[template(path = "dashboard/record.html")]
struct RecordPage {
    title: String,
    /// The record's ID: the page reloads when it changes.
    id: String,
    links: Vec<crate::domain::records::RecordLink>,
    /// A change's CAB votes.
    tally: Option<Tally>,
    /// The record's JSON fields, each value as text.
    fields: Vec<(String, String)>,
    entries: Vec<AuditEntry>,
}

/// A change's approval tally: the votes against the quorum, and who voted what.
struct Tally {
    approved: usize,
    rejected: usize,
    required: u32,
    votes: Vec<VoteRow>,
}

struct VoteRow {
    voter: String,
    decision: &'static str,
    comment: String,
    at: String,
}

impl Tally {
    fn of(c: &Change) -> Tally {
        use crate::domain::records::Decision;
        Tally {
            approved: c.approval_count(),
            rejected: c
                .approvals
                .iter()
                .filter(|a| a.decision == Decision::Reject)
                .count(),
            required: c.required_approvals,
            votes: c
                .approvals
                .iter()
                .map(|a| VoteRow {
                    voter: a.voter.to_string(),
                    decision: match a.decision {
                        Decision::Approve => "approve",
                        Decision::Reject => "reject",
                    },
                    comment: a.comment.clone().unwrap_or_default(),
                    at: a.at.format("%Y-%m-%d %H:%M").to_string(),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/not_found.html")]
struct NotFound<'a> {
    title: &'static str,
    id: &'a str,
}

async fn record(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let store = &**app.ledger.store();
    let kind = match id.parse::<RecordId>() {
        Ok(r) => Some(r.kind),
        Err(_) => None,
    };
    let mut found = None;
    for k in kind
        .map(|k| vec![k])
        .unwrap_or_else(|| vec![Kind::Service, Kind::Ci, Kind::Alert, Kind::Oncall])
    {
        if let Some(r) = store.get(k, &id).await? {
            found = Some(r);
            break;
        }
    }
    let Some(rec) = found else {
        let page = html(&NotFound {
            title: "Not found",
            id: &id,
        })?;
        return Ok((StatusCode::NOT_FOUND, page).into_response());
    };
    let fields = match rec.to_json() {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .map(|(k, v)| {
                let shown = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, shown)
            })
            .collect(),
        _ => Vec::new(),
    };
    let entries = store.audit_for(&rec.key(), 0, 500).await?;
    let mut links = rec.links();
    if let Record::Change(c) = &rec {
        // The releases that ship this change, through the term index (no scan).
        let q = crate::store::TermQuery::new(
            Kind::Release,
            crate::domain::records::change_term(&c.id.to_string()),
        );
        for r in store.find(&q).await?.iter().rev() {
            links.push(crate::domain::records::RecordLink::record(
                "release",
                r.key(),
            ));
        }
    }
    let page = html(&RecordPage {
        title: format!("{} {}", rec.key(), rec.title()),
        id: rec.key(),
        links,
        tally: match &rec {
            Record::Change(c) => Some(Tally::of(c)),
            _ => None,
        },
        fields,
        entries,
    })?;
    Ok(page.into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct ReportParams {
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
}

fn opt_secs(s: Option<f64>) -> String {
    s.map(|s| format!("{:.1} h", s / 3600.0))
        .unwrap_or_else(|| "n/a".into())
}

fn opt_pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p}%")).unwrap_or_else(|| "n/a".into())
}

/// One row of the report's table: all services, or one.
struct SectionRow {
    service: String,
    incidents: u64,
    /// `P1 n, P2 n, ...`.
    by_priority: String,
    mtta: String,
    mttr: String,
    sla: String,
    breaches: u64,
    changes: u64,
    by_outcome: String,
    success: String,
    emergency: String,
}

#[derive(Template)]
#[template(path = "dashboard/report.html")]
struct ReportPage {
    title: &'static str,
    sections: Vec<SectionRow>,
    r: ServiceReport,
}

/// The full service report for a period (chat's `report` links here).
async fn report(
    State(app): State<AppState>,
    q: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let Query(p) = q.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let r = crate::reports::service_report(
        &**app.ledger.store(),
        p.from,
        p.to,
        app.ledger.time().now(),
    )
    .await?;
    let by = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sections = std::iter::once(&r.total)
        .chain(r.services.iter())
        .map(|s| SectionRow {
            service: s.service.clone(),
            incidents: s.incidents,
            by_priority: by(&s.incidents_by_priority),
            mtta: opt_secs(s.mean_time_to_acknowledge_secs),
            mttr: opt_secs(s.mean_time_to_resolve_secs),
            sla: opt_pct(s.sla_attainment_pct),
            breaches: s.sla_breaches,
            changes: s.changes,
            by_outcome: by(&s.changes_by_outcome),
            success: opt_pct(s.change_success_rate_pct),
            emergency: opt_pct(s.emergency_change_share_pct),
        })
        .collect();
    html(&ReportPage {
        title: "Service report",
        sections,
        r,
    })
}

#[cfg(test)]
mod tests {
    use super::STYLESHEET;

    /// The `--name: #rrggbb` variables of the first block after `marker`.
    fn palette(marker: &str) -> std::collections::HashMap<String, [f64; 3]> {
        let from = STYLESHEET
            .find(marker)
            .expect("the stylesheet has the block");
        let block = &STYLESHEET[from..];
        let block = &block[block.find(":root").expect(":root")..];
        let block = &block[block.find('{').expect("the block opens") + 1..];
        let block = &block[..block.find('}').expect("the block ends")];
        block
            .split(';')
            .filter_map(|decl| {
                let (name, value) = decl.split_once(':')?;
                let hex = value.trim().strip_prefix('#')?;
                let c = |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
                Some((name.trim().to_string(), [c(0), c(2), c(4)]))
            })
            .collect()
    }

    /// WCAG 2.x contrast ratio of two sRGB colours.
    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let lum = |c: [f64; 3]| {
            let lin = |v: f64| {
                let v = v / 255.0;
                if v <= 0.039_28 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
        };
        let (x, y) = (lum(a), lum(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_text_colour_meets_wcag_aa_on_its_background_in_both_schemes() {
        // (text, background) as the rules pair them.
        const PAIRS: &[(&str, &str)] = &[
            ("--fg", "--bg"),
            ("--fg", "--head"),
            ("--muted", "--bg"),
            ("--link", "--bg"),
            ("--p1-fg", "--p1-bg"),
            ("--p2-fg", "--p2-bg"),
            ("--p3-fg", "--p3-bg"),
            ("--p4-fg", "--p4-bg"),
            ("--fg", "--breached-row"),
            ("--breached-fg", "--breached-row"),
            ("--link", "--breached-row"),
            ("--muted", "--breached-row"),
            ("--overdue-fg", "--bg"),
            ("--overdue-fg", "--breached-row"),
            ("--fg", "--soon-row"),
            ("--soon-fg", "--soon-row"),
            ("--soon-fg", "--bg"),
            ("--link", "--soon-row"),
            ("--muted", "--soon-row"),
            ("--badge-fg", "--badge-bg"),
        ];
        for (scheme, marker) in [("light", ":root"), ("dark", "prefers-color-scheme: dark")] {
            let p = palette(marker);
            assert!(p.len() >= 20, "{scheme}: {} colours read", p.len());
            for (fg, bg) in PAIRS {
                let (Some(f), Some(b)) = (p.get(*fg), p.get(*bg)) else {
                    panic!("{scheme}: {fg} or {bg} is not among {:?}", p.keys());
                };
                let ratio = contrast(*f, *b);
                assert!(ratio >= 4.5, "{scheme}: {fg} on {bg} is {ratio:.2}:1");
            }
        }
    }
}

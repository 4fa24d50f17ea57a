//! The dashboard at `/`: server-rendered HTML pages with inline SVG charts and no JavaScript.
//! Open incidents with their SLA countdowns, the CAB queue, the change calendar, recent
//! releases, record pages with their timeline, and charts of the last twelve weeks.
//!
//! It follows the API's auth: with `OPSLEDGER_API_TOKEN` set, a request needs the bearer token
//! unless it comes from the machine itself (loopback, and not forwarded by a proxy).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Datelike, Duration, Utc};

use crate::domain::ids::{Kind, RecordId};
use crate::domain::priority::countdown;
use crate::domain::records::{Change, Record, Release};
use crate::domain::status::{ChangeStatus, IncidentStatus};
use crate::export::esc;
use crate::store::{ListQuery, OutboxState, Store, StoreError};

use super::error::ApiError;
use super::AppState;

/// The most rows a table shows; the API has the rest.
const ROWS: i64 = 200;
const PAGE: i64 = 1000;
const WEEKS: i64 = 12;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/calendar", get(calendar))
        .route("/releases", get(releases))
        .route("/charts", get(charts))
        .route("/report", get(report))
        .route("/records/{id}", get(record))
        .route_layer(axum::middleware::from_fn_with_state(state, require_viewer))
}

/// The bearer token, or a request from this machine, when a token is configured.
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
        let ok = super::has_bearer(&req, token);
        if !local && !ok {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{t} · opsledger</title>\
         <style>{STYLE}</style></head><body>\n<nav><b>opsledger</b> \
         <a href=\"/\">Overview</a> <a href=\"/calendar\">Change calendar</a> \
         <a href=\"/releases\">Releases</a> <a href=\"/charts\">Charts</a> <a href=\"/report\">Report</a></nav>\n<h1>{t}</h1>\n{body}\
         </body></html>\n",
        t = esc(title)
    ))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
nav{margin-bottom:1rem}nav a{margin-right:1rem}table{border-collapse:collapse;margin-bottom:1.5rem}\
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
.breached{color:#fff;background:#c0392b;padding:0 .3rem;border-radius:3px}\
.overdue{color:#c0392b;font-weight:bold}.muted{color:#777}svg{margin:0 1rem 1rem 0}";

fn link(id: &str) -> String {
    format!("<a href=\"/records/{0}\">{0}</a>", esc(id))
}

/// Records of a kind in some statuses, in ID order, at most `limit`.
async fn listed(
    store: &dyn Store,
    kind: Kind,
    statuses: &[&str],
    limit: i64,
) -> Result<Vec<Record>, StoreError> {
    let mut q = ListQuery::new(kind, limit);
    q.statuses = statuses.iter().map(|s| s.to_string()).collect();
    store.list(&q).await
}

/// Every record of a kind, a page at a time.
async fn each(store: &dyn Store, kind: Kind, mut f: impl FnMut(&Record)) -> Result<(), StoreError> {
    let mut q = ListQuery::new(kind, PAGE);
    loop {
        let batch = store.list(&q).await?;
        let full = batch.len() as i64 == PAGE;
        for r in &batch {
            f(r);
        }
        q.after = batch.last().map(|r| r.key());
        if !full {
            return Ok(());
        }
    }
}

fn votes(c: &Change) -> String {
    let voters: Vec<String> = c
        .approvals
        .iter()
        .map(|a| {
            format!(
                "{} ({})",
                esc(a.voter.as_str()),
                esc(&format!("{:?}", a.decision).to_lowercase())
            )
        })
        .collect();
    format!(
        "{}/{} {}",
        c.approval_count(),
        c.required_approvals,
        if voters.is_empty() {
            String::new()
        } else {
            format!("<span class=\"muted\">{}</span>", voters.join(", "))
        }
    )
}

fn window(c: &Change) -> String {
    c.window
        .map(|w| {
            format!(
                "{} – {}",
                w.start.format("%Y-%m-%d %H:%M"),
                w.end.format("%Y-%m-%d %H:%M")
            )
        })
        .unwrap_or_else(|| "<span class=\"muted\">none</span>".into())
}

async fn overview(State(app): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = &**app.ledger.store();
    let now = app.ledger.time().now();
    let mut body = String::new();
    let incidents = listed(store, Kind::Incident, &["new", "acknowledged"], ROWS).await?;
    let mut rows: Vec<_> = incidents
        .iter()
        .filter_map(|r| match r {
            Record::Incident(i) => Some(i),
            _ => None,
        })
        .collect();
    rows.sort_by_key(|i| (i.priority, i.created_at));
    let _ = write!(
        body,
        "<h2>Open incidents ({})</h2><table><thead><tr><th>ID</th><th>Priority</th><th>Title</th>\
         <th>Status</th><th>Service</th><th>Assignee</th><th>SLA</th></tr></thead><tbody>",
        rows.len()
    );
    for i in &rows {
        let (target, due) = if i.status == IncidentStatus::New {
            ("respond", i.response_due)
        } else {
            ("resolve", i.resolve_due)
        };
        let clock = countdown(now, due);
        let class = if due < now { " class=\"overdue\"" } else { "" };
        let breached = if i.breached {
            " <span class=\"breached\">breached</span>"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><span{class}>{target} {}</span>{breached}</td></tr>",
            link(&i.id.to_string()),
            i.priority,
            esc(&i.title),
            i.status,
            esc(i.service.as_deref().unwrap_or("")),
            esc(i.assignee.as_ref().map(|a| a.as_str()).unwrap_or("")),
            esc(&clock),
        );
    }
    body.push_str("</tbody></table>");
    let queue = listed(store, Kind::Change, &["submitted"], ROWS).await?;
    let _ = write!(
        body,
        "<h2>CAB queue ({})</h2><table><thead><tr><th>ID</th><th>Title</th><th>Type</th><th>Risk</th>\
         <th>Requester</th><th>Votes / quorum</th><th>Window</th></tr></thead><tbody>",
        queue.len()
    );
    for r in &queue {
        if let Record::Change(c) = r {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                link(&c.id.to_string()),
                esc(&c.title),
                c.change_type.as_str(),
                c.risk.as_str(),
                esc(c.requester.as_str()),
                votes(c),
                window(c)
            );
        }
    }
    body.push_str("</tbody></table>");
    parked_messages(store, &mut body).await?;
    Ok(page("Overview", &body))
}

/// Outgoing messages parked after failing past the bounds: what an operator should look at
/// (`opsledger outbox retry ID` or `drop ID`). Shown only when there are some.
async fn parked_messages(store: &dyn Store, body: &mut String) -> Result<(), ApiError> {
    let parked: Vec<_> = store
        .outbox_stuck(ROWS)
        .await?
        .into_iter()
        .filter(|e| e.state == OutboxState::Parked)
        .collect();
    if parked.is_empty() {
        return Ok(());
    }
    let _ = write!(
        body,
        "<h2 id=\"parked\">Parked messages ({})</h2><p class=\"muted\">Retry with \
         <code>opsledger outbox retry ID</code>, or drop with <code>opsledger outbox drop ID</code>.</p>\
         <table><thead><tr><th>ID</th><th>Platform</th><th>Channel</th><th>Op</th><th>Record</th>\
         <th>Attempts</th><th>Parked at</th><th>Last error</th></tr></thead><tbody>",
        parked.len()
    );
    for e in &parked {
        let record = e.record.as_deref().map(link).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{record}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.id,
            esc(&e.platform),
            esc(&e.channel),
            esc(&e.op),
            e.attempts,
            esc(e.since.as_deref().unwrap_or("")),
            esc(e.last_error.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table>");
    Ok(())
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
    let rows = changes.len() + policy.freezes.len();
    let height = 40 + 22 * rows.max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"820\" height=\"{height}\" role=\"img\" \
         aria-label=\"Change calendar\"><text x=\"0\" y=\"14\" font-size=\"12\">{} to {}</text>",
        start.format("%Y-%m-%d"),
        end.format("%Y-%m-%d")
    );
    for w in 0..=4 {
        let wx = x(start + Duration::weeks(w));
        let _ = write!(
            svg,
            "<line x1=\"{wx}\" y1=\"20\" x2=\"{wx}\" y2=\"{height}\" stroke=\"#ddd\"/>"
        );
    }
    let mut y = 30;
    for f in &policy.freezes {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"11\">freeze {}</text><rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"16\" fill=\"#e74c3c\" opacity=\"0.6\"/>",
            y + 12,
            esc(&f.name),
            x(f.start),
            (x(f.end) - x(f.start)).max(1.0)
        );
        y += 22;
    }
    for c in &changes {
        if let Some(w) = c.window {
            let _ = write!(
                svg,
                "<text x=\"0\" y=\"{}\" font-size=\"11\">{}</text><rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"16\" fill=\"#2e86c1\"/>",
                y + 12,
                c.id,
                x(w.start),
                (x(w.end) - x(w.start)).max(2.0)
            );
            y += 22;
        }
    }
    svg.push_str("</svg>");
    let mut body = svg;
    body.push_str("<h2>Approved windows</h2><table><thead><tr><th>ID</th><th>Title</th><th>Type</th><th>Status</th><th>Window</th></tr></thead><tbody>");
    for c in &changes {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            link(&c.id.to_string()),
            esc(&c.title),
            c.change_type.as_str(),
            c.status,
            window(c)
        );
    }
    body.push_str("</tbody></table><h2>Freezes</h2><table><thead><tr><th>Name</th><th>From</th><th>To</th><th>Allows</th></tr></thead><tbody>");
    for f in &policy.freezes {
        let allows: Vec<&str> = f.allow.iter().map(|t| t.as_str()).collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.name),
            f.start.format("%Y-%m-%d %H:%M"),
            f.end.format("%Y-%m-%d %H:%M"),
            if allows.is_empty() {
                "no changes".to_string()
            } else {
                allows.join(", ")
            }
        );
    }
    body.push_str("</tbody></table>");
    Ok(page("Change calendar", &body))
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
    let mut body = String::from(
        "<table><thead><tr><th>ID</th><th>Version</th><th>Repository</th><th>Changes</th>\
         <th>Pull requests</th><th>Deployments</th><th>Commits</th></tr></thead><tbody>",
    );
    for rel in recent.iter().rev() {
        let mut prs = Vec::new();
        for id in &rel.changes {
            if let Some(Record::Change(c)) = store.get(Kind::Change, &id.to_string()).await? {
                for l in &c.links {
                    if let Some(n) = l.number {
                        prs.push(format!(
                            "<a href=\"{}\">{}#{n}</a>",
                            esc(&l.url),
                            esc(&l.repo)
                        ));
                    }
                }
            }
        }
        let changes: Vec<String> = rel.changes.iter().map(|c| link(&c.to_string())).collect();
        let deployments: Vec<String> = rel
            .deployments
            .iter()
            .map(|d| format!("{} {}", esc(&d.env), d.at.format("%Y-%m-%d %H:%M")))
            .collect();
        let flag = if rel.unapproved_commits.is_empty() {
            String::new()
        } else {
            format!(
                " <span class=\"breached\">{} unapproved</span>",
                rel.unapproved_commits.len()
            )
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{flag}</td></tr>",
            link(&rel.id.to_string()),
            esc(&rel.version),
            esc(rel.repo.as_deref().unwrap_or("")),
            changes.join(", "),
            prs.join(", "),
            deployments.join(", "),
            rel.commits.len()
        );
    }
    body.push_str("</tbody></table>");
    Ok(page("Recent releases", &body))
}

/// A bar chart of `values` (one per week, oldest first).
fn bars(title: &str, unit: &str, values: &[(String, Option<f64>)]) -> String {
    let max = values
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"520\" height=\"230\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">{t}</text>",
        t = esc(title)
    );
    let width = 480.0 / values.len().max(1) as f64;
    for (i, (label, v)) in values.iter().enumerate() {
        let x = 30.0 + i as f64 * width;
        if let Some(v) = v {
            let h = 160.0 * v / max;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#2e86c1\"><title>{} {v:.1}{unit}</title></rect>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"9\">{v:.0}</text>",
                190.0 - h,
                width * 0.8,
                esc(label),
                186.0 - h
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"205\" font-size=\"8\">{}</text>",
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
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
    let body = format!(
        "<p>The twelve weeks up to this one, by week starting (UTC).</p>{}{}{}",
        bars("Incidents per week", "", &per_week),
        bars("Mean time to resolve (hours)", "h", &mttr),
        bars("Change success rate (%)", "%", &success)
    );
    Ok(page("Charts", &body))
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
        .unwrap_or_else(|| vec![Kind::Service, Kind::Ci])
    {
        if let Some(r) = store.get(k, &id).await? {
            found = Some(r);
            break;
        }
    }
    let Some(rec) = found else {
        return Ok((
            StatusCode::NOT_FOUND,
            page("Not found", &format!("<p>No record {}.</p>", esc(&id))),
        )
            .into_response());
    };
    let mut body = String::from("<table><tbody>");
    if let serde_json::Value::Object(fields) = rec.to_json() {
        for (k, v) in fields {
            let shown = match &v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let _ = write!(
                body,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(&k),
                esc(&shown)
            );
        }
    }
    body.push_str("</tbody></table><h2>Timeline</h2><table><thead><tr><th>#</th><th>At</th><th>Who</th><th>Action</th><th>Outcome</th></tr></thead><tbody>");
    let entries = store.audit_for(&rec.key(), 0, 500).await?;
    for e in &entries {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            esc(&e.at),
            esc(&e.actor),
            esc(&e.action),
            esc(&e.outcome)
        );
    }
    body.push_str("</tbody></table>");
    Ok(page(&format!("{} {}", rec.key(), rec.title()), &body).into_response())
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
    let mut body = format!(
        "<p>{} to {} (UTC days). <a href=\"/api/v1/reports?from={}&amp;to={}\">JSON</a></p>\
         <table><thead><tr><th>Service</th><th>Incidents</th><th>By priority</th><th>MTTA</th><th>MTTR</th>\
         <th>SLA attainment</th><th>Breaches</th><th>Changes</th><th>By outcome</th><th>Success rate</th>\
         <th>Emergency share</th></tr></thead><tbody>",
        r.from, r.to, r.from, r.to
    );
    for s in std::iter::once(&r.total).chain(r.services.iter()) {
        let by = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{} {v}", esc(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.service),
            s.incidents,
            by(&s.incidents_by_priority),
            opt_secs(s.mean_time_to_acknowledge_secs),
            opt_secs(s.mean_time_to_resolve_secs),
            opt_pct(s.sla_attainment_pct),
            s.sla_breaches,
            s.changes,
            by(&s.changes_by_outcome),
            opt_pct(s.change_success_rate_pct),
            opt_pct(s.emergency_change_share_pct)
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p>Releases: {}; deployments: {}. Open problems: {}; known errors: {}. \
         Nonconformities raised: {} ({} open, {} corrected).</p>",
        r.releases.len(),
        r.deployments,
        r.open_problems,
        r.known_errors,
        r.nonconformities_raised,
        r.nonconformities_open,
        r.nonconformities_corrected
    );
    Ok(page("Service report", &body))
}

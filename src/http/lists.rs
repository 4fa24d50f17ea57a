//! The dashboard's lists and search: every numbered kind listed newest first with filters by
//! status, priority, service, assignee and title words, paged by cursor; and the search box,
//! which opens a record by its ID or lists the records whose titles have the words.
//!
//! Filters and search are the store's (`ListQuery`: indexed columns and the full-text index),
//! so a page costs one query however many records are stored.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::domain::ids::{Kind, RecordId};
use crate::domain::records::Record;
use crate::domain::status;
use crate::domain::text::search_words;
use crate::store::{ListQuery, RecordPager};

use super::error::ApiError;
use super::AppState;

/// Rows a list page shows; the next page's link has the rest.
pub const PAGE_ROWS: i64 = 50;
/// Records of each kind the search page shows before "more".
const SEARCH_ROWS: i64 = 10;
const PRIORITIES: [&str; 4] = ["P1", "P2", "P3", "P4"];

/// A list page's query string. An HTML form sends every field, so empty means no filter.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ListParams {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub service: Option<String>,
    pub assignee: Option<String>,
    pub q: Option<String>,
    pub after: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl ListParams {
    /// Narrows `q` to these filters; the status only to one of `allowed`, when given.
    pub fn apply(&self, q: &mut ListQuery, allowed: &[&str]) {
        if let Some(s) = given(&self.status) {
            if allowed.is_empty() || allowed.contains(&s.as_str()) {
                q.statuses = vec![s];
            } else {
                // A status the list does not hold: nothing matches, rather than everything.
                q.statuses = vec![String::new()];
            }
        }
        q.priority = given(&self.priority).map(|p| p.to_uppercase());
        q.service = given(&self.service);
        q.assignee = given(&self.assignee);
        q.words = self.q.as_deref().map(search_words).unwrap_or_default();
    }

    /// The link to the same list from `after` on.
    pub fn next_page(&self, path: &str, after: &str) -> String {
        self.link(path, Some(after))
    }

    /// The link to this list with these filters, from `after` on or from the start.
    pub fn link(&self, path: &str, after: Option<&str>) -> String {
        let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let mut parts: Vec<String> = [
            ("status", &self.status),
            ("priority", &self.priority),
            ("service", &self.service),
            ("assignee", &self.assignee),
            ("q", &self.q),
        ]
        .into_iter()
        .filter_map(|(k, v)| given(v).map(|v| format!("{k}={}", enc(&v))))
        .collect();
        if let Some(after) = after {
            parts.push(format!("after={}", enc(after)));
        }
        format!("{path}?{}", parts.join("&"))
    }

    /// The filter form, with these values filled in.
    pub fn form(&self, action: &str, statuses: &[&str], priorities: bool) -> Filters {
        let status = given(&self.status).unwrap_or_default();
        let priority = given(&self.priority).unwrap_or_default().to_uppercase();
        Filters {
            action: action.to_string(),
            statuses: statuses
                .iter()
                .map(|s| (s.to_string(), *s == status))
                .collect(),
            priorities: if priorities {
                PRIORITIES
                    .iter()
                    .map(|p| (p.to_string(), *p == priority))
                    .collect()
            } else {
                Vec::new()
            },
            service: given(&self.service).unwrap_or_default(),
            assignee: given(&self.assignee).unwrap_or_default(),
            q: given(&self.q).unwrap_or_default(),
            filtered: [
                &self.status,
                &self.priority,
                &self.service,
                &self.assignee,
                &self.q,
            ]
            .iter()
            .any(|v| given(v).is_some()),
        }
    }
}

/// The filter form's fields as a page shows them (`dashboard/macros.html`, `filters`).
pub struct Filters {
    pub action: String,
    /// `(status, selected)`.
    pub statuses: Vec<(String, bool)>,
    /// `(priority, selected)`; empty for kinds without priorities.
    pub priorities: Vec<(String, bool)>,
    pub service: String,
    pub assignee: String,
    pub q: String,
    /// Whether any filter is set (the form offers to clear them).
    pub filtered: bool,
}

/// A query string, or a 400 saying what was wrong with it.
pub fn params<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|r| ApiError::BadRequest(r.body_text()))
}

/// One record in a list.
pub struct ListRow {
    pub id: String,
    pub title: String,
    pub status: String,
    /// `(P1, p1)`: the priority and its CSS class, for incidents.
    pub priority: Option<(String, String)>,
    pub service: String,
    /// Who has it: an incident's assignee, a change's requester.
    pub who: String,
    pub updated: String,
}

impl ListRow {
    pub fn of(r: &Record) -> ListRow {
        let (priority, who) = match r {
            Record::Incident(i) => (
                Some((
                    i.priority.to_string(),
                    i.priority.to_string().to_lowercase(),
                )),
                i.assignee
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            ),
            Record::Change(c) => (None, c.requester.to_string()),
            _ => (None, String::new()),
        };
        ListRow {
            id: r.key(),
            title: r.title().to_string(),
            status: r.status().to_string(),
            priority,
            service: r.service().unwrap_or_default().to_string(),
            who,
            updated: r.updated_at().format("%Y-%m-%d %H:%M").to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/list.html")]
struct ListPage {
    title: String,
    /// The ID prefix the page reloads for (`INC-`).
    live: String,
    filters: Filters,
    rows: Vec<ListRow>,
    /// The next page's link, when there is one.
    next: Option<String>,
}

/// `/list/{collection}`: a numbered kind's records, newest first, filtered, a page at a time.
pub async fn list(
    State(app): State<AppState>,
    Path(collection): Path<String>,
    p: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(p)?;
    let kind = Kind::from_collection(&collection)
        .filter(|k| k.is_numbered())
        .ok_or_else(|| ApiError::NotFound(format!("no list `{collection}`")))?;
    let statuses = status::names(kind);
    let mut q = ListQuery::new(kind, PAGE_ROWS);
    q.newest_first = true;
    p.apply(&mut q, &statuses);
    if let Some(after) = given(&p.after) {
        match after.parse::<RecordId>() {
            Ok(id) if id.kind == kind => q.after = Some(id.to_string()),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`{after}` is not a page of this list: start again from /list/{collection}"
                )))
            }
        }
    }
    let path = format!("/list/{collection}");
    let mut pager = RecordPager::new(&**app.ledger.store(), q);
    let rows = pager.next_page().await?.unwrap_or_default();
    let next = pager.cursor().map(|c| p.next_page(&path, c));
    let page = ListPage {
        title: capitalised(kind.collection()),
        live: kind.prefix().map(|p| format!("{p}-")).unwrap_or_default(),
        filters: p.form(&path, &statuses, kind == Kind::Incident),
        rows: rows.iter().map(ListRow::of).collect(),
        next,
    };
    Ok(super::dashboard::html(&page)?.into_response())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct SearchParams {
    q: Option<String>,
}

/// The records of one kind a search found.
struct Found {
    kind: String,
    rows: Vec<ListRow>,
    /// The kind's list with the same words, when it has more.
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/search.html")]
struct SearchPage {
    title: String,
    q: String,
    found: Vec<Found>,
}

/// `/search?q=`: a record's ID opens its page; words list the records whose titles have them.
pub async fn search(
    State(app): State<AppState>,
    p: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let text = given(&params(p)?.q).unwrap_or_default();
    let store = &**app.ledger.store();
    if let Ok(id) = text.parse::<RecordId>() {
        if store.get(id.kind, &id.to_string()).await?.is_some() {
            return Ok(Redirect::to(&format!("/records/{id}")).into_response());
        }
    }
    let words = search_words(&text);
    let mut found = Vec::new();
    if !words.is_empty() {
        for kind in Kind::ALL.into_iter().filter(|k| k.is_numbered()) {
            let mut q = ListQuery::new(kind, SEARCH_ROWS);
            q.newest_first = true;
            q.words = words.clone();
            let mut pager = RecordPager::new(store, q);
            let rows = pager.next_page().await?.unwrap_or_default();
            if rows.is_empty() {
                continue;
            }
            let more = pager.cursor().map(|_| {
                ListParams {
                    q: Some(text.clone()),
                    ..ListParams::default()
                }
                .link(&format!("/list/{}", kind.collection()), None)
            });
            found.push(Found {
                kind: capitalised(kind.collection()),
                rows: rows.iter().map(ListRow::of).collect(),
                more,
            });
        }
    }
    let page = SearchPage {
        title: if text.is_empty() {
            "Search".to_string()
        } else {
            format!("Search: {text}")
        },
        q: text,
        found,
    };
    Ok(super::dashboard::html(&page)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_narrow_the_query_and_the_next_page_keeps_them() {
        let p = ListParams {
            status: Some("acknowledged".into()),
            priority: Some("p1".into()),
            service: Some(" shop ".into()),
            assignee: Some(String::new()),
            q: Some("Disk full!".into()),
            after: None,
        };
        let mut q = ListQuery::new(Kind::Incident, 10);
        p.apply(&mut q, &["new", "acknowledged"]);
        assert_eq!(q.statuses, ["acknowledged"]);
        assert_eq!(q.priority.as_deref(), Some("P1"));
        assert_eq!(q.service.as_deref(), Some("shop"));
        assert_eq!(q.assignee, None);
        assert_eq!(q.words, ["disk", "full"]);
        assert_eq!(
            p.next_page("/list/incidents", "INC-7"),
            "/list/incidents?status=acknowledged&priority=p1&service=shop&q=Disk%20full%21&after=INC%2D7"
        );
        let mut q = ListQuery::new(Kind::Incident, 10);
        p.apply(&mut q, &["new"]);
        assert_eq!(
            q.statuses,
            [""],
            "a status outside the list matches nothing"
        );
    }
}

#[derive(Template)]
#[template(path = "dashboard/mine.html")]
struct MinePage {
    title: &'static str,
    /// The signed-in account; None: the page asks to sign in.
    who: Option<String>,
    /// The person's other accounts (`[people]`), comma-separated.
    accounts: String,
    incidents: Vec<super::dashboard::IncidentRow>,
    votes: Vec<ListRow>,
}

/// `/mine`: the signed-in person's open incidents (assigned to or raised by any of their
/// accounts, most urgent first) and the changes waiting for their vote.
pub async fn mine(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(me) = app.sessions.viewer(&headers) else {
        let page = MinePage {
            title: "My work",
            who: None,
            accounts: String::new(),
            incidents: Vec::new(),
            votes: Vec::new(),
        };
        return Ok(super::dashboard::html(&page)?.into_response());
    };
    let store = &**app.ledger.store();
    let now = app.ledger.time().now();
    // The rules in force: the rules file and the roles granted at run time.
    let grants = store.grants().await?;
    let policy = app
        .ledger
        .policy()
        .with_grants(grants.iter().map(|g| (&g.actor, g.role)));
    let accounts = match policy.person_of(&me) {
        Some(person) => policy.accounts_of(person),
        None => vec![me.clone()],
    };
    let mut mine: Vec<crate::domain::records::Incident> = Vec::new();
    for account in &accounts {
        let mut q = ListQuery::new(Kind::Incident, PAGE_ROWS);
        q.statuses = vec!["new".into(), "acknowledged".into()];
        q.involving = Some(account.to_string());
        q.urgent_first = true;
        for r in store.list(&q).await? {
            if let Record::Incident(i) = r {
                if !mine.iter().any(|m| m.id == i.id) {
                    mine.push(i);
                }
            }
        }
    }
    mine.sort_by_key(|i| (!i.breached, i.sla_due(), i.priority, i.id.n));
    let roles = crate::domain::parser::roles_of("change approve").unwrap_or(&[]);
    let mut votes = Vec::new();
    let mut q = ListQuery::new(Kind::Change, 500);
    q.statuses = vec!["submitted".into()];
    RecordPager::new(store, q)
        .for_each(|r| {
            if let Record::Change(c) = r {
                if c.awaits_vote_of(&me, roles, &policy) {
                    votes.push(ListRow::of(r));
                }
            }
        })
        .await?;
    let page = MinePage {
        title: "My work",
        who: Some(me.to_string()),
        accounts: accounts
            .iter()
            .filter(|a| **a != me)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        incidents: mine
            .iter()
            .map(|i| super::dashboard::incident_row(now, i))
            .collect(),
        votes,
    };
    Ok(super::dashboard::html(&page)?.into_response())
}

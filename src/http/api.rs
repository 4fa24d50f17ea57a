//! `/api/v1`: read access to every record and the audit trail, with cursor pagination.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::ids::{Kind, RecordId};
use crate::store::{ListQuery, RecordPager};

use super::error::ApiError;
use super::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<i64>,
    status: Option<String>,
}

fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {n}"
        ))),
    }
}

fn kind_of(collection: &str) -> Result<Kind, ApiError> {
    Kind::from_collection(collection).ok_or_else(|| {
        let known = Kind::ALL.map(Kind::collection).join(", ");
        ApiError::NotFound(format!("no collection `{collection}`; try one of {known}"))
    })
}

/// The query string, or a 400 in the API's JSON error shape saying what was wrong with it.
fn params<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// A list cursor is the key of the last record of the previous page: for numbered kinds an ID
/// of that kind, which is checked so that a mistyped cursor is not read as "from the start".
fn cursor(kind: Kind, c: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(c) = c.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if !kind.is_numbered() {
        return Ok(Some(c));
    }
    match c.parse::<RecordId>() {
        Ok(id) if id.kind == kind => Ok(Some(id.to_string())),
        _ => Err(ApiError::BadRequest(format!(
            "cursor `{c}` is not one this API gave out"
        ))),
    }
}

pub async fn list(
    State(app): State<AppState>,
    Path(collection): Path<String>,
    p: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&collection)?;
    let p = params(p)?;
    let limit = limit(p.limit)?;
    let mut q = ListQuery::new(kind, limit);
    q.after = cursor(kind, p.cursor)?;
    if let Some(s) = p.status {
        q.statuses = s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    let mut pager = RecordPager::new(&**app.ledger.store(), q);
    let rows = pager.next_page().await?.unwrap_or_default();
    let next = pager.cursor();
    let items: Vec<Value> = rows.iter().map(|r| r.to_json()).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

pub async fn get(
    State(app): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&collection)?;
    let key = if kind.is_numbered() {
        let rid: RecordId = id
            .parse()
            .map_err(|e: crate::domain::ids::BadRecordId| ApiError::BadRequest(e.to_string()))?;
        if rid.kind != kind {
            return Err(ApiError::NotFound(format!(
                "{rid} is not in {collection}; try /api/v1/{}/{rid}",
                rid.kind.collection()
            )));
        }
        rid.to_string()
    } else {
        id
    };
    match app.ledger.store().get(kind, &key).await? {
        Some(r) => Ok(Json(r.to_json())),
        None => Err(ApiError::NotFound(format!("no such {} {key}", kind.noun()))),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    record: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn audit(
    State(app): State<AppState>,
    p: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = params(p)?;
    let record = p.record.filter(|r| !r.is_empty()).ok_or_else(|| {
        ApiError::BadRequest("give the record: /api/v1/audit?record=INC-1".into())
    })?;
    let record = record
        .parse::<RecordId>()
        .map(|id| id.to_string())
        .unwrap_or(record);
    let limit = limit(p.limit)?;
    let after = match p.cursor.filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("cursor `{c}` is not one this API gave out"))
        })?,
    };
    let mut entries = app
        .ledger
        .store()
        .audit_for(&record, after, limit + 1)
        .await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = more
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(
        json!({ "record": record, "items": entries, "next": next }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
}

fn date(name: &str, v: Option<String>) -> Result<Option<chrono::NaiveDate>, ApiError> {
    v.filter(|v| !v.is_empty())
        .map(|v| {
            chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| {
                ApiError::BadRequest(format!("{name}=`{v}` is not a date such as 2026-11-01"))
            })
        })
        .transpose()
}

/// `GET /api/v1/reports?from=YYYY-MM-DD&to=YYYY-MM-DD`: the service report for the period.
pub async fn report(
    State(app): State<AppState>,
    q: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = params(q)?;
    let (from, to) = (date("from", p.from)?, date("to", p.to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::BadRequest(format!("from={f} is after to={t}")));
        }
    }
    let report =
        crate::reports::service_report(&**app.ledger.store(), from, to, app.ledger.time().now())
            .await?;
    Ok(Json(
        serde_json::to_value(report).map_err(anyhow::Error::from)?,
    ))
}

//! The SQL both backends share, written once as a macro over the concrete sqlx database type.
//!
//! A macro rather than generic code: sqlx's generic executor bounds for two databases would
//! be longer than the queries. The SQL itself is portable (`$n` binds work in SQLite too).

/// Maps one audit row to an entry.
pub(crate) type AuditRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

pub(crate) fn audit_from_row(r: AuditRow) -> crate::domain::audit::AuditEntry {
    crate::domain::audit::AuditEntry {
        seq: r.0,
        at: r.1,
        actor: r.2,
        record: r.3,
        action: r.4,
        before: r.5,
        after: r.6,
        outcome: r.7,
        prev_hash: r.8,
        hash: r.9,
    }
}

/// One outbox row, as `OUTBOX_COLUMNS` selects it.
pub(crate) type OutboxRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
    Option<String>,
);

pub(crate) const OUTBOX_COLUMNS: &str =
    "o.id, o.platform, o.channel, o.op, o.record, o.payload, o.attempts, o.created_at, o.first_failed_at";

/// Pending outbox items that head their (platform, channel): the oldest one not yet delivered,
/// given up or parked. Joined as `h` against `outbox o`.
pub(crate) const OUTBOX_HEADS: &str = "(SELECT MIN(id) AS id FROM outbox \
     WHERE delivered_at IS NULL AND failed_at IS NULL AND parked_at IS NULL GROUP BY platform, channel) h";

/// What "pending" means in the outbox's statements (the partial indexes use the same).
pub(crate) const OUTBOX_PENDING: &str =
    "delivered_at IS NULL AND failed_at IS NULL AND parked_at IS NULL";

/// Parked or failed, and not dropped: what an operator may retry or drop.
pub(crate) const OUTBOX_STUCK: &str =
    "(parked_at IS NOT NULL OR failed_at IS NOT NULL) AND dropped_at IS NULL";

/// One outbox row as operators see it, as `OUTBOX_ENTRY_COLUMNS` selects it.
pub(crate) type OutboxEntryRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) const OUTBOX_ENTRY_COLUMNS: &str =
    "id, platform, channel, op, record, attempts, last_error, created_at, \
     delivered_at, failed_at, parked_at, dropped_at";

pub(crate) fn outbox_entry_from_row(r: OutboxEntryRow) -> crate::store::OutboxEntry {
    use crate::store::OutboxState;
    let (state, since) = match (r.8, r.9, r.10, r.11) {
        (_, _, _, Some(at)) => (OutboxState::Dropped, Some(at)),
        (Some(at), _, _, _) => (OutboxState::Delivered, Some(at)),
        (_, Some(at), _, _) => (OutboxState::Failed, Some(at)),
        (_, _, Some(at), _) => (OutboxState::Parked, Some(at)),
        _ => (OutboxState::Pending, None),
    };
    crate::store::OutboxEntry {
        id: r.0,
        platform: r.1,
        channel: r.2,
        op: r.3,
        record: r.4,
        attempts: u32::try_from(r.5).unwrap_or(0),
        last_error: r.6,
        state,
        created_at: r.7,
        since,
    }
}

pub(crate) fn outbox_from_row(
    r: OutboxRow,
) -> Result<crate::store::OutboxItem, crate::store::StoreError> {
    let payload = serde_json::from_str(&r.5).map_err(|e| {
        crate::store::StoreError::Invalid(format!("outbox item {} has a bad payload: {e}", r.0))
    })?;
    Ok(crate::store::OutboxItem {
        id: r.0,
        platform: r.1,
        channel: r.2,
        op: r.3,
        record: r.4,
        payload,
        attempts: u32::try_from(r.6).unwrap_or(0),
        created_at: r.7,
        first_failed_at: r.8,
    })
}

/// The sort number of a key: the `n` of `INC-n`, 0 for named records.
/// The rowids of a kind's rows in SQLite's full-text index (migration 0011 computes the same):
/// the kind's code times 2^40 plus the record's number.
pub(crate) fn search_rowids(kind: crate::domain::ids::Kind) -> (i64, i64) {
    use crate::domain::ids::Kind;
    let code: i64 = match kind {
        Kind::Incident => 1,
        Kind::Request => 2,
        Kind::Problem => 3,
        Kind::Change => 4,
        Kind::Release => 5,
        Kind::Nonconformity => 6,
        // No rows: these kinds are not indexed.
        _ => 0,
    };
    (code << 40, (code << 40) + (1 << 40) - 1)
}

/// An FTS5 query for every one of `words` as a word or a word's start: each quoted, so it is a
/// string to FTS5 and never syntax (`text::search_words` leaves only letters and digits anyway).
pub(crate) fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A PostgreSQL `tsquery` for every one of `words` as a word or a word's start. `to_tsquery`
/// reads operators, so each word is quoted as a lexeme (quotes doubled, backslashes escaped).
pub(crate) fn tsquery(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}':*", w.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" & ")
}

pub(crate) fn key_number(key: &str) -> i64 {
    key.parse::<crate::domain::ids::RecordId>()
        .map(|id| i64::try_from(id.n).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) const AUDIT_COLUMNS: &str =
    "seq, at, actor, record, action, before_json, after_json, outcome, prev_hash, hash";

/// Splits rows into multi-row INSERTs of a few fixed sizes. Few distinct statement texts means
/// each is prepared once and then served from the statement cache, whatever the batch size;
/// 256 rows keep every statement under SQLite's and PostgreSQL's bind limits.
/// `fixed_chunks` for owned rows, so their strings move into the statement instead of being copied.
pub(crate) fn fixed_chunks_owned<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let sizes: Vec<usize> = fixed_chunks(&rows).iter().map(|c| c.len()).collect();
    sizes
        .into_iter()
        .map(|n| rows.drain(..n).collect())
        .collect()
}

pub(crate) fn fixed_chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
    const SIZES: [usize; 5] = [256, 64, 16, 4, 1];
    let mut out = Vec::new();
    for size in SIZES {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            out.push(chunk);
            rows = rest;
        }
    }
    out
}

/// The SQL of the report rollups, built once from `domain::report::COUNTERS` (the columns).
pub(crate) struct RollupSql {
    /// `INSERT INTO report_rollups (day, service, <counters>) `, rows to be pushed.
    pub insert: String,
    /// The additive upsert clause for that insert.
    pub on_conflict: String,
    /// The period's sums per service: binds `$1` first day, `$2` last day (YYYY-MM-DD).
    pub select: String,
}

pub(crate) fn rollup_sql() -> &'static RollupSql {
    use crate::domain::report::COUNTERS;
    static SQL: std::sync::OnceLock<RollupSql> = std::sync::OnceLock::new();
    SQL.get_or_init(|| RollupSql {
        insert: format!("INSERT INTO report_rollups (day, service, {}) ", COUNTERS.join(", ")),
        on_conflict: format!(
            " ON CONFLICT (day, service) DO UPDATE SET {}",
            COUNTERS
                .iter()
                .map(|c| format!("{c} = report_rollups.{c} + excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        select: format!(
            "SELECT service, {} FROM report_rollups WHERE day >= $1 AND day <= $2 GROUP BY service ORDER BY service",
            COUNTERS
                .iter()
                .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

pub(crate) const ROLLUP_PAGES_SELECT: &str =
    "SELECT service, person, CAST(SUM(pages) AS BIGINT) FROM report_rollup_pages \
     WHERE day >= $1 AND day <= $2 GROUP BY service, person";

/// The bucket day as the rollup tables key it.
pub(crate) fn rollup_day(day: chrono::NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Which kinds the rollups are built from, when a database first gets them.
pub(crate) const ROLLUP_KINDS: [crate::domain::ids::Kind; 2] = [
    crate::domain::ids::Kind::Incident,
    crate::domain::ids::Kind::Change,
];

macro_rules! sql_store {
    ($store:ident, $tx:ident, $db:ty, $backend:expr, $begin:literal, $lock_head:literal) => {
        use async_trait::async_trait;
        use sqlx::{Executor, QueryBuilder, Row};

        use $crate::domain::audit::AuditEntry;
        use $crate::domain::command::Role;
        use $crate::domain::ids::{Actor, Kind};
        use $crate::domain::records::{has_index_terms, Record};
        use $crate::store::sql::{
            audit_from_row, fixed_chunks_owned, fixed_chunks, key_number, outbox_entry_from_row, outbox_from_row, AuditRow,
            OutboxEntryRow, OutboxRow, AUDIT_COLUMNS, OUTBOX_COLUMNS, OUTBOX_ENTRY_COLUMNS, OUTBOX_HEADS, OUTBOX_PENDING,
            OUTBOX_STUCK, rollup_sql, rollup_day, ROLLUP_PAGES_SELECT, ROLLUP_KINDS,
        };
        use $crate::domain::report::{Rollups, Tally};
        use $crate::store::{
            Backend, Grant, GrantChange, ListQuery, ListRecords, OutboxEntry, OutboxItem, RecordPager, Result, Store,
            StoreError, StoreTx, TermQuery, WriteSet,
        };

        /// The store on this backend: a connection pool, and one connection of its own for the
        /// write batches (`begin`).
        #[derive(Debug, Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
            /// One connection, opened at the first batch and kept: batches taken from the shared
            /// pool moved from connection to connection, and on SQLite a connection that did not
            /// make the last commit starts its transaction with its page cache thrown away.
            writer: sqlx::Pool<$db>,
        }

        /// A write transaction holding the chain-head lock.
        pub struct $tx {
            tx: sqlx::Transaction<'static, $db>,
            head: (i64, String),
        }

        impl $store {
            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }
        }

        async fn get_in<'e, E: Executor<'e, Database = $db>>(e: E, kind: Kind, key: &str) -> Result<Option<Record>> {
            let row: Option<(String,)> = sqlx::query_as("SELECT data FROM records WHERE kind = $1 AND key = $2")
                .bind(kind.as_str())
                .bind(key)
                .fetch_optional(e)
                .await?;
            Ok(row.map(|(d,)| Record::from_json(kind, &d)).transpose()?)
        }

        async fn list_in<'e, E: Executor<'e, Database = $db>>(e: E, q: &ListQuery) -> Result<Vec<Record>> {
            // On SQLite a search in ID order walks the full-text index in rowid order (the ID
            // order) and joins each match to its record, stopping at the limit: a word in every
            // title costs a page, not a million-row list (`IN (...)` built the whole list first).
            let fts_first = matches!($backend, Backend::Sqlite) && !q.words.is_empty() && !q.urgent_first;
            let mut qb = if fts_first {
                let (from, to) = $crate::store::sql::search_rowids(q.kind);
                let mut qb = QueryBuilder::<$db>::new("SELECT r.data FROM records_fts f JOIN records r ON r.num = f.rowid - ");
                qb.push_bind(from);
                qb.push(" WHERE records_fts MATCH ").push_bind($crate::store::sql::fts5_query(&q.words));
                qb.push(" AND f.rowid BETWEEN ").push_bind(from).push(" AND ").push_bind(to);
                qb.push(" AND r.kind = ");
                qb
            } else {
                QueryBuilder::<$db>::new("SELECT data FROM records WHERE kind = ")
            };
            qb.push_bind(q.kind.as_str().to_string());
            match q.after.as_ref() {
                Some(after) if q.urgent_first => {
                    // After the cursor's place in the order `breached DESC, sla_due, priority,
                    // num`; a malformed cursor lists from the start.
                    if let Some((breached, due, priority, num)) = $crate::store::parse_urgency_cursor(after) {
                        qb.push(" AND (breached < ").push_bind(breached);
                        qb.push(" OR (breached = ").push_bind(breached);
                        qb.push(" AND (sla_due > ").push_bind(due.clone());
                        qb.push(" OR (sla_due = ").push_bind(due);
                        qb.push(" AND (priority > ").push_bind(priority.clone());
                        qb.push(" OR (priority = ").push_bind(priority);
                        qb.push(" AND num > ").push_bind(num).push("))))))");
                    }
                }
                Some(after) => {
                    let num = key_number(after);
                    let (cmp, eq) = if q.newest_first { (" < ", " AND key < ") } else { (" > ", " AND key > ") };
                    if num > 0 {
                        // Numbered kinds have one key per number: a plain range the index serves,
                        // so paging through a million records costs a seek per page, not a scan.
                        qb.push(" AND num").push(cmp).push_bind(num);
                    } else {
                        qb.push(" AND (num").push(cmp).push_bind(num);
                        qb.push(" OR (num = ").push_bind(num).push(eq).push_bind(after.clone()).push("))");
                    }
                }
                None => {}
            }
            for (column, value) in [("priority", &q.priority), ("service", &q.service), ("assignee", &q.assignee)] {
                if let Some(v) = value {
                    qb.push(format!(" AND {column} = ")).push_bind(v.clone());
                }
            }
            if !q.words.is_empty() && !fts_first {
                match $backend {
                    Backend::Sqlite => {
                        // The FTS5 rows of this kind are a rowid range (migration 0011).
                        let (from, to) = $crate::store::sql::search_rowids(q.kind);
                        qb.push(" AND num IN (SELECT rowid - ").push_bind(from);
                        qb.push(" FROM records_fts WHERE records_fts MATCH ").push_bind($crate::store::sql::fts5_query(&q.words));
                        qb.push(" AND rowid BETWEEN ").push_bind(from).push(" AND ").push_bind(to).push(")");
                    }
                    Backend::Postgres => {
                        qb.push(" AND title_words @@ to_tsquery('simple', ").push_bind($crate::store::sql::tsquery(&q.words)).push(")");
                    }
                }
            }
            if !q.statuses.is_empty() {
                qb.push(" AND status IN ");
                push_in(&mut qb, &q.statuses);
            }
            if let Some(a) = &q.involving {
                qb.push(" AND (assignee = ").push_bind(a.clone());
                qb.push(" OR reporter = ").push_bind(a.clone()).push(")");
            }
            if let Some(b) = q.breached {
                qb.push(" AND breached = ").push_bind(i64::from(b));
            }
            if q.urgent_first {
                qb.push(" AND sla_due IS NOT NULL ORDER BY breached DESC, sla_due, priority, num, key LIMIT ");
            } else if fts_first {
                // Numbered kinds only (the index holds no others): one record a number.
                qb.push(if q.newest_first { " ORDER BY f.rowid DESC LIMIT " } else { " ORDER BY f.rowid LIMIT " });
            } else if q.newest_first {
                qb.push(" ORDER BY num DESC, key DESC LIMIT ");
            } else {
                qb.push(" ORDER BY num, key LIMIT ");
            }
            qb.push_bind(q.limit.max(0));
            let rows: Vec<(String,)> = qb.build_query_as().fetch_all(e).await?;
            rows.into_iter()
                .map(|(d,)| Record::from_json(q.kind, &d).map_err(StoreError::from))
                .collect()
        }

        /// Pushes `(v1, v2, ...)`, each value bound: the list of an `IN`.
        fn push_in<'args, T>(qb: &mut QueryBuilder<'args, $db>, values: &[T])
        where
            T: Clone + 'args + sqlx::Encode<'args, $db> + sqlx::Type<$db>,
        {
            qb.push("(");
            let mut list = qb.separated(", ");
            for v in values {
                list.push_bind(v.clone());
            }
            qb.push(")");
        }

        /// The records carrying index terms, joined: `t` the term rows, `r` their records.
        const TERMS_JOIN: &str = "FROM record_terms t JOIN records r ON r.kind = t.kind AND r.key = t.key";

        async fn find_in<'e, E: Executor<'e, Database = $db>>(e: E, q: &TermQuery) -> Result<Vec<Record>> {
            let mut qb = QueryBuilder::<$db>::new(format!("SELECT r.data {TERMS_JOIN} WHERE t.kind = "));
            qb.push_bind(q.kind.as_str().to_string());
            qb.push(" AND t.term = ").push_bind(q.term.clone());
            if let Some(before) = q.before {
                qb.push(" AND t.num < ").push_bind(i64::try_from(before).unwrap_or(i64::MAX));
            }
            // The primary key (kind, term, num, key) serves the order: a seek, then a short walk.
            qb.push(" ORDER BY t.num DESC, t.key DESC");
            if let Some(limit) = q.limit {
                qb.push(" LIMIT ").push_bind(limit.max(0));
            }
            let rows: Vec<(String,)> = qb.build_query_as().fetch_all(e).await?;
            rows.into_iter()
                .map(|(d,)| Record::from_json(q.kind, &d).map_err(StoreError::from))
                .collect()
        }

        /// Replaces the index terms of `records` (of the kinds that have any) with their current ones.
        async fn replace_terms(conn: &mut <$db as sqlx::Database>::Connection, records: &[&Record]) -> Result<()> {
            let mut keys: std::collections::BTreeMap<Kind, Vec<String>> = std::collections::BTreeMap::new();
            let mut rows: Vec<(Kind, String, i64, String)> = Vec::new();
            for r in records.iter().filter(|r| has_index_terms(r.kind())) {
                let key = r.key();
                let num = key_number(&key);
                for term in r.index_terms() {
                    rows.push((r.kind(), term, num, key.clone()));
                }
                keys.entry(r.kind()).or_default().push(key);
            }
            for (kind, keys) in keys {
                for chunk in fixed_chunks(&keys) {
                    let mut qb = QueryBuilder::<$db>::new("DELETE FROM record_terms WHERE kind = ");
                    qb.push_bind(kind.as_str().to_string()).push(" AND key IN ");
                    push_in(&mut qb, chunk);
                    qb.build().execute(&mut *conn).await?;
                }
            }
            for chunk in fixed_chunks_owned(rows) {
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO record_terms (kind, term, num, key) ");
                qb.push_values(chunk, |mut b, (kind, term, num, key)| {
                    b.push_bind(kind.as_str().to_string()).push_bind(term).push_bind(num).push_bind(key);
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Takes a one-time backfill's marker row (`table`, left by its migration): the
        /// transaction to do the backfill in, or `None` when there is none to do or another
        /// process took it first.
        async fn take_backfill(pool: &sqlx::Pool<$db>, table: &str) -> Result<Option<sqlx::Transaction<'static, $db>>> {
            let (pending,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await?;
            if pending == 0 {
                return Ok(None);
            }
            let mut tx = pool.begin_with($begin).await?;
            let taken = sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
            Ok((taken.rows_affected() > 0).then_some(tx))
        }

        /// Builds the index terms of the records stored before migration 0008 added the index,
        /// once: the first process to take the marker row does it, in one transaction.
        async fn backfill_terms(pool: &sqlx::Pool<$db>) -> Result<()> {
            let Some(mut tx) = take_backfill(pool, "record_terms_backfill").await? else {
                return Ok(());
            };
            for kind in Kind::ALL.into_iter().filter(|k| has_index_terms(*k)) {
                let mut q = ListQuery::new(kind, 1000);
                loop {
                    let page = list_in(&mut *tx, &q).await?;
                    let Some(last) = page.last() else { break };
                    q.after = Some(last.key());
                    replace_terms(&mut *tx, &page.iter().collect::<Vec<_>>()).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        }

        /// Fills `sla_due` once for the open incidents a database held before migration 0010.
        async fn backfill_sla_due(pool: &sqlx::Pool<$db>) -> Result<()> {
            let Some(mut tx) = take_backfill(pool, "sla_due_backfill").await? else {
                return Ok(());
            };
            let mut q = ListQuery::new(Kind::Incident, 1000);
            q.statuses = vec!["new".into(), "acknowledged".into()];
            loop {
                let page = list_in(&mut *tx, &q).await?;
                let Some(last) = page.last() else { break };
                q.after = Some(last.key());
                for r in &page {
                    sqlx::query("UPDATE records SET sla_due = $1 WHERE kind = $2 AND key = $3")
                        .bind(r.sla_due().map($crate::domain::audit::format_time))
                        .bind(r.kind().as_str())
                        .bind(r.key())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        }

        async fn audit_for_in<'e, E: Executor<'e, Database = $db>>(e: E, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
            let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE record = $1 AND seq > $2 ORDER BY seq LIMIT $3");
            let rows: Vec<AuditRow> = sqlx::query_as(&sql).bind(record).bind(after).bind(limit).fetch_all(e).await?;
            Ok(rows.into_iter().map(audit_from_row).collect())
        }

        async fn grants_in<'e, E: Executor<'e, Database = $db>>(e: E) -> Result<Vec<Grant>> {
            let rows: Vec<(String, String, String, String)> =
                sqlx::query_as("SELECT actor, role, granted_by, granted_at FROM role_grants ORDER BY actor, role")
                    .fetch_all(e)
                    .await?;
            rows.into_iter()
                .map(|(actor, role, by, at)| {
                    let bad = |what: &str| StoreError::Invalid(format!("stored role grant has a bad {what}"));
                    Ok(Grant {
                        actor: Actor::parse(&actor).map_err(|_| bad("actor"))?,
                        role: Role::parse(&role).ok_or_else(|| bad("role"))?,
                        granted_by: Actor::parse(&by).map_err(|_| bad("granter"))?,
                        granted_at: at,
                    })
                })
                .collect()
        }

        async fn delivery_seen_in<'e, E: Executor<'e, Database = $db>>(e: E, platform: &str, delivery_id: &str) -> Result<bool> {
            let row: (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM inbound_deliveries WHERE platform = $1 AND delivery_id = $2")
                    .bind(platform)
                    .bind(delivery_id)
                    .fetch_one(e)
                    .await?;
            Ok(row.0 > 0)
        }

        impl $store {
            /// `audit_in_period` through the pool.
            #[allow(dead_code)]
            async fn timeline_page_pooled(
                &self,
                after: i64,
                upto: i64,
                period: (&str, &str),
                limit: i64,
            ) -> Result<Vec<$crate::store::TimelineRow>> {
                let rows: Vec<(i64, String, String, Option<String>, String, String, String)> = sqlx::query_as(
                    "SELECT seq, at, actor, record, action, outcome, hash FROM audit \
                     WHERE seq > $1 AND seq <= $2 AND at >= $3 AND at < $4 ORDER BY seq LIMIT $5",
                )
                .bind(after)
                .bind(upto)
                .bind(period.0)
                .bind(period.1)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| $crate::store::TimelineRow {
                        seq: r.0,
                        at: r.1,
                        actor: r.2,
                        record: r.3,
                        action: r.4,
                        outcome: r.5,
                        hash: r.6,
                    })
                    .collect())
            }

            /// `audit_check` through the pool, rows borrowed as they stream.
            #[allow(dead_code)]
            async fn check_audit_range_pooled(
                &self,
                from: i64,
                to: i64,
                period: Option<(&str, &str)>,
            ) -> Result<$crate::store::CheckedRange> {
                use futures_util::TryStreamExt;
                use sqlx::Row;
                let mut rows = sqlx::query(
                    "SELECT seq, at, actor, record, action, before_json, after_json, outcome, prev_hash, hash \
                     FROM audit WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
                )
                .bind(from)
                .bind(to)
                .fetch(&self.pool);
                let mut check = $crate::store::RangeCheck::new(period);
                while let Some(row) = rows.try_next().await? {
                    let e = $crate::domain::audit::EntryRow {
                        seq: row.try_get(0)?,
                        at: row.try_get(1)?,
                        actor: row.try_get(2)?,
                        record: row.try_get(3)?,
                        action: row.try_get(4)?,
                        before: row.try_get(5)?,
                        after: row.try_get(6)?,
                        outcome: row.try_get(7)?,
                        prev_hash: row.try_get(8)?,
                        hash: row.try_get(9)?,
                    };
                    if !check.row(&e) {
                        break;
                    }
                }
                Ok(check.finish())
            }
        }

        /// The period's rollups summed per service (`from..=to`, UTC days), with the pages by person.
        async fn rollups_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            from: chrono::NaiveDate,
            to: chrono::NaiveDate,
        ) -> Result<Vec<(String, Tally)>> {
            let (from, to) = (rollup_day(from), rollup_day(to));
            let rows = sqlx::query(&rollup_sql().select).bind(&from).bind(&to).fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut t = Tally::default();
                for (i, c) in t.counts.iter_mut().enumerate() {
                    *c = row.try_get::<i64, _>(i + 1)?;
                }
                out.push((row.try_get::<String, _>(0)?, t));
            }
            let pages: Vec<(String, String, i64)> =
                sqlx::query_as(ROLLUP_PAGES_SELECT).bind(&from).bind(&to).fetch_all(&mut *conn).await?;
            for (service, person, n) in pages {
                if n == 0 {
                    continue;
                }
                match out.iter_mut().find(|(s, _)| *s == service) {
                    Some((_, t)) => {
                        t.pages_by_person.insert(person, n);
                    }
                    None => {
                        let mut t = Tally::default();
                        t.pages_by_person.insert(person, n);
                        out.push((service, t));
                    }
                }
            }
            Ok(out)
        }

        /// Adds a batch's changes to the rollups: one additive upsert row per bucket touched.
        async fn write_rollups_in(conn: &mut <$db as sqlx::Database>::Connection, rollups: &Rollups) -> Result<()> {
            let buckets: Vec<_> = rollups.changed().collect();
            let sql = rollup_sql();
            for chunk in fixed_chunks(&buckets) {
                let mut qb = QueryBuilder::<$db>::new(&sql.insert);
                qb.push_values(chunk, |mut b, ((day, service), t)| {
                    b.push_bind(rollup_day(*day)).push_bind(service.clone());
                    for c in t.counts {
                        b.push_bind(c);
                    }
                });
                qb.push(&sql.on_conflict);
                qb.build().execute(&mut *conn).await?;
            }
            let pages: Vec<(String, &String, &String, i64)> = buckets
                .iter()
                .flat_map(|((day, service), t)| {
                    t.pages_by_person.iter().map(move |(who, n)| (rollup_day(*day), service, who, *n))
                })
                .collect();
            for chunk in fixed_chunks(&pages) {
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO report_rollup_pages (day, service, person, pages) ");
                qb.push_values(chunk, |mut b, (day, service, who, n)| {
                    b.push_bind(day.clone()).push_bind((*service).clone()).push_bind((*who).clone()).push_bind(*n);
                });
                qb.push(" ON CONFLICT (day, service, person) DO UPDATE SET pages = report_rollup_pages.pages + excluded.pages");
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        impl $store {
            async fn begin_tx(&self) -> Result<$tx> {
                let mut tx = self.writer.begin_with($begin).await?;
                // The first statement writes, so the lock is taken now and held to commit.
                let head: (i64, String) =
                    sqlx::query_as($lock_head)
                        .fetch_one(&mut *tx)
                        .await?;
                Ok($tx { tx, head })
            }

            /// Builds the report rollups from the records, once: for a database that held
            /// records before it had rollups. Under the writer's lock, so no write is missed
            /// and two processes migrating at once build them once.
            async fn build_rollups(&self) -> Result<()> {
                let mut tx = self.begin_tx().await?;
                let (built,): (i64,) = sqlx::query_as("SELECT CAST(built AS BIGINT) FROM report_rollup_state WHERE id = 1")
                    .fetch_one(&mut *tx.tx)
                    .await?;
                if built != 0 {
                    return Ok(());
                }
                sqlx::query("DELETE FROM report_rollups").execute(&mut *tx.tx).await?;
                sqlx::query("DELETE FROM report_rollup_pages").execute(&mut *tx.tx).await?;
                let mut rollups = Rollups::default();
                for kind in ROLLUP_KINDS {
                    RecordPager::new(&mut tx, ListQuery::new(kind, 1000))
                        .for_each(|r| rollups.add($crate::domain::report::contribution(r).as_ref(), 1))
                        .await?;
                }
                write_rollups_in(&mut *tx.tx, &rollups).await?;
                sqlx::query("UPDATE report_rollup_state SET built = 1 WHERE id = 1").execute(&mut *tx.tx).await?;
                tx.tx.commit().await?;
                Ok(())
            }
        }

        #[async_trait]
        impl ListRecords for &mut $tx {
            async fn list_records(&mut self, q: &ListQuery) -> Result<Vec<Record>> {
                list_in(&mut *self.tx, q).await
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn migrate(&self) -> Result<()> {
                MIGRATOR.run(&self.pool).await?;
                backfill_terms(&self.pool).await?;
                backfill_sla_due(&self.pool).await?;
                self.build_rollups().await
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn begin(&self) -> Result<Box<dyn StoreTx>> {
                Ok(Box::new(self.begin_tx().await?))
            }

            async fn report_rollups(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<(String, Tally)>> {
                let mut conn = self.pool.acquire().await?;
                rollups_in(&mut conn, from, to).await
            }

            async fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>> {
                get_in(&self.pool, kind, key).await
            }

            async fn list(&self, q: &ListQuery) -> Result<Vec<Record>> {
                list_in(&self.pool, q).await
            }

            async fn find(&self, q: &TermQuery) -> Result<Vec<Record>> {
                find_in(&self.pool, q).await
            }

            async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
                let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2");
                let rows: Vec<AuditRow> = sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(audit_from_row).collect())
            }

            async fn audit_for(&self, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
                audit_for_in(&self.pool, record, after, limit).await
            }

            async fn audit_in_period(
                &self,
                after: i64,
                upto: i64,
                period: (&str, &str),
                limit: i64,
            ) -> Result<Vec<$crate::store::TimelineRow>> {
                self.timeline_page(after, upto, period, limit).await
            }

            async fn next_due(&self) -> Result<Option<String>> {
                let row: (Option<String>,) = sqlx::query_as("SELECT MIN(due_at) FROM records WHERE due_at IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.0)
            }

            async fn chain_head(&self) -> Result<(i64, String)> {
                Ok(sqlx::query_as("SELECT seq, hash FROM chain_head WHERE id = 1").fetch_one(&self.pool).await?)
            }

            async fn grants(&self) -> Result<Vec<Grant>> {
                grants_in(&self.pool).await
            }

            async fn outbox_due(&self, now: &str, limit: i64) -> Result<Vec<OutboxItem>> {
                let sql = format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox o JOIN {OUTBOX_HEADS} ON h.id = o.id \
                     WHERE o.next_attempt_at <= $1 ORDER BY o.next_attempt_at, o.id LIMIT $2"
                );
                let rows: Vec<OutboxRow> =
                    sqlx::query_as(&sql).bind(now).bind(limit.max(0)).fetch_all(&self.pool).await?;
                rows.into_iter().map(outbox_from_row).collect()
            }

            async fn outbox_next_attempt(&self) -> Result<Option<String>> {
                let sql = format!("SELECT MIN(o.next_attempt_at) FROM outbox o JOIN {OUTBOX_HEADS} ON h.id = o.id");
                let row: (Option<String>,) = sqlx::query_as(&sql).fetch_one(&self.pool).await?;
                Ok(row.0)
            }

            async fn outbox_claim_many(&self, ids: &[i64], now: &str, until: &str, owner: &str) -> Result<Vec<i64>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                // One transaction, so a pass's claims cost one commit (one fsync on SQLite)
                // and hold the write lock the writer's batches also need once.
                let mut tx = self.pool.begin().await?;
                let mut claimed = Vec::with_capacity(ids.len());
                for chunk in fixed_chunks(ids) {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE outbox SET next_attempt_at = ");
                    qb.push_bind(until)
                        .push(", claimed_by = ")
                        .push_bind(owner)
                        .push(" WHERE next_attempt_at <= ")
                        .push_bind(now)
                        .push(format!(" AND {OUTBOX_PENDING} AND id IN "));
                    push_in(&mut qb, chunk);
                    qb.push(" RETURNING id");
                    let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    claimed.extend(rows.into_iter().map(|(id,)| id));
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn outbox_delivered_many(&self, delivered: &[(i64, String)]) -> Result<()> {
                if delivered.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for chunk in fixed_chunks(delivered) {
                    let mut qb = QueryBuilder::<$db>::new("WITH d (id, at) AS (");
                    qb.push_values(chunk, |mut b, (id, at)| {
                        b.push_bind(*id).push_bind(at.clone());
                    });
                    qb.push(
                        ") UPDATE outbox SET delivered_at = (SELECT d.at FROM d WHERE d.id = outbox.id), \
                         attempts = attempts + 1, last_error = NULL, claimed_by = NULL \
                         WHERE id IN (SELECT id FROM d) AND delivered_at IS NULL",
                    );
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn outbox_retry(
                &self,
                id: i64,
                attempts: u32,
                now: &str,
                next_attempt_at: &str,
                error: &str,
                rate_limited: bool,
            ) -> Result<()> {
                let sql = format!(
                    "UPDATE outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, claimed_by = NULL, \
                     rate_limited = $5, first_failed_at = COALESCE(first_failed_at, $6) WHERE id = $1 AND {OUTBOX_PENDING}"
                );
                sqlx::query(&sql)
                    .bind(id)
                    .bind(i64::from(attempts))
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(i64::from(rate_limited))
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn outbox_give_up(&self, id: i64, now: &str, error: &str) -> Result<()> {
                let sql = format!(
                    "UPDATE outbox SET failed_at = $2, attempts = attempts + 1, last_error = $3, claimed_by = NULL \
                     WHERE id = $1 AND {OUTBOX_PENDING}"
                );
                sqlx::query(&sql).bind(id).bind(now).bind(error).execute(&self.pool).await?;
                Ok(())
            }

            async fn outbox_park(&self, id: i64, attempts: u32, now: &str, error: &str) -> Result<()> {
                let sql = format!(
                    "UPDATE outbox SET parked_at = $3, attempts = $2, last_error = $4, claimed_by = NULL, \
                     first_failed_at = COALESCE(first_failed_at, $3) WHERE id = $1 AND {OUTBOX_PENDING}"
                );
                sqlx::query(&sql)
                    .bind(id)
                    .bind(i64::from(attempts))
                    .bind(now)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn outbox_release_claims(&self, owner: &str, now: &str) -> Result<u64> {
                let sql = format!(
                    "UPDATE outbox SET next_attempt_at = $2, claimed_by = NULL WHERE claimed_by = $1 AND {OUTBOX_PENDING}"
                );
                let done = sqlx::query(&sql).bind(owner).bind(now).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn outbox_retry_platform_now(&self, platform: &str, now: &str) -> Result<u64> {
                let sql = format!(
                    "UPDATE outbox SET next_attempt_at = $2 WHERE platform = $1 AND {OUTBOX_PENDING} \
                     AND attempts > 0 AND claimed_by IS NULL AND rate_limited = 0 AND next_attempt_at > $2"
                );
                let done = sqlx::query(&sql).bind(platform).bind(now).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn outbox_stuck(&self, limit: i64) -> Result<Vec<OutboxEntry>> {
                let sql = format!("SELECT {OUTBOX_ENTRY_COLUMNS} FROM outbox WHERE {OUTBOX_STUCK} ORDER BY id LIMIT $1");
                let rows: Vec<OutboxEntryRow> =
                    sqlx::query_as(&sql).bind(limit.max(0)).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(outbox_entry_from_row).collect())
            }

            async fn outbox_parked(&self) -> Result<i64> {
                let row: (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM outbox WHERE parked_at IS NOT NULL AND dropped_at IS NULL \
                     AND delivered_at IS NULL AND failed_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(row.0)
            }

            async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>> {
                let sql = format!("SELECT {OUTBOX_ENTRY_COLUMNS} FROM outbox WHERE id = $1");
                let row: Option<OutboxEntryRow> = sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(outbox_entry_from_row))
            }

            async fn outbox_requeue(&self, id: i64, now: &str) -> Result<bool> {
                let sql = format!(
                    "UPDATE outbox SET parked_at = NULL, failed_at = NULL, attempts = 0, first_failed_at = NULL, \
                     claimed_by = NULL, rate_limited = 0, next_attempt_at = $2 WHERE id = $1 AND {OUTBOX_STUCK} \
                     AND delivered_at IS NULL"
                );
                let done = sqlx::query(&sql).bind(id).bind(now).execute(&self.pool).await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                // An empty write batch: a commit every `serve` sees (`watch_commits`), so the
                // item goes out at once rather than at the worker's next look.
                self.begin().await?.commit().await?;
                Ok(true)
            }

            async fn outbox_pending(&self) -> Result<i64> {
                let sql = format!("SELECT COUNT(*) FROM outbox WHERE {OUTBOX_PENDING}");
                let row: (i64,) = sqlx::query_as(&sql).fetch_one(&self.pool).await?;
                Ok(row.0)
            }

            async fn outbox_heartbeat(&self, instance: &str, now: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO outbox_workers (instance, seen_at) VALUES ($1, $2) \
                     ON CONFLICT (instance) DO UPDATE SET seen_at = excluded.seen_at",
                )
                .bind(instance)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn outbox_workers_since(&self, since: &str) -> Result<i64> {
                let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox_workers WHERE seen_at >= $1")
                    .bind(since)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.0)
            }

            async fn message_ref(&self, record: &str, platform: &str, channel: &str) -> Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT ref FROM message_refs WHERE record = $1 AND platform = $2 AND channel = $3",
                )
                .bind(record)
                .bind(platform)
                .bind(channel)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(r,)| r))
            }

            async fn set_message_ref(&self, record: &str, platform: &str, channel: &str, reference: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO message_refs (record, platform, channel, ref) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (record, platform, channel) DO UPDATE SET ref = excluded.ref",
                )
                .bind(record)
                .bind(platform)
                .bind(channel)
                .bind(reference)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn first_delivery(&self, platform: &str, delivery_id: &str, now: &str) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO inbound_deliveries (platform, delivery_id, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (platform, delivery_id) DO NOTHING",
                )
                .bind(platform)
                .bind(delivery_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn forget_delivery(&self, platform: &str, delivery_id: &str) -> Result<()> {
                sqlx::query("DELETE FROM inbound_deliveries WHERE platform = $1 AND delivery_id = $2")
                    .bind(platform)
                    .bind(delivery_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delivery_seen(&self, platform: &str, delivery_id: &str) -> Result<bool> {
                delivery_seen_in(&self.pool, platform, delivery_id).await
            }

            async fn audit_check(&self, from: i64, to: i64) -> Result<$crate::domain::audit::Segment> {
                Ok(self.check_audit_range(from, to, None).await?.0)
            }

            async fn audit_check_in_period(
                &self,
                from: i64,
                to: i64,
                period: (&str, &str),
            ) -> Result<$crate::store::CheckedRange> {
                self.check_audit_range(from, to, Some(period)).await
            }

            async fn purge_delivered_outbox(&self, before: &str, limit: i64) -> Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                     WHERE delivered_at IS NOT NULL AND delivered_at < $1 ORDER BY delivered_at LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn purge_deliveries(&self, before: &str, limit: i64) -> Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM inbound_deliveries WHERE (platform, delivery_id) IN \
                     (SELECT platform, delivery_id FROM inbound_deliveries \
                     WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn watch_commits(&self, on_commit: std::sync::Arc<dyn Fn() + Send + Sync>) -> Result<()> {
                watch_commits(&self.pool, on_commit).await
            }

            async fn close(&self) {
                self.writer.close().await;
                self.pool.close().await;
            }
        }

        #[async_trait]
        impl StoreTx for $tx {
            fn head(&self) -> (i64, String) {
                self.head.clone()
            }

            async fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>> {
                get_in(&mut *self.tx, kind, key).await
            }

            async fn list(&mut self, q: &ListQuery) -> Result<Vec<Record>> {
                list_in(&mut *self.tx, q).await
            }

            async fn find(&mut self, q: &TermQuery) -> Result<Vec<Record>> {
                find_in(&mut *self.tx, q).await
            }

            async fn audit_for(&mut self, record: &str, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
                audit_for_in(&mut *self.tx, record, after, limit).await
            }

            async fn get_many(&mut self, kind: Kind, keys: &[String]) -> Result<Vec<Record>> {
                let mut found = Vec::with_capacity(keys.len());
                for chunk in fixed_chunks(keys) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT data FROM records WHERE kind = ");
                    qb.push_bind(kind.as_str().to_string()).push(" AND key IN ");
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *self.tx).await?;
                    for (data,) in rows {
                        found.push(Record::from_json(kind, &data)?);
                    }
                }
                Ok(found)
            }

            async fn find_many(&mut self, kind: Kind, terms: &[String]) -> Result<Vec<(String, Record)>> {
                let mut found = Vec::new();
                for chunk in fixed_chunks(terms) {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT t.term, r.data {TERMS_JOIN} WHERE t.kind = "));
                    qb.push_bind(kind.as_str().to_string()).push(" AND t.term IN ");
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *self.tx).await?;
                    for (term, data) in rows {
                        found.push((term, Record::from_json(kind, &data)?));
                    }
                }
                Ok(found)
            }

            async fn grants(&mut self) -> Result<Vec<Grant>> {
                grants_in(&mut *self.tx).await
            }

            async fn report_rollups(&mut self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<(String, Tally)>> {
                rollups_in(&mut *self.tx, from, to).await
            }

            async fn due(&mut self, now: &str, limit: i64) -> Result<Vec<Record>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT kind, data FROM records WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?;
                rows.into_iter()
                    .map(|(kind, data)| {
                        let kind = Kind::from_str_name(&kind)
                            .ok_or_else(|| StoreError::Invalid(format!("stored record has unknown kind `{kind}`")))?;
                        Ok(Record::from_json(kind, &data)?)
                    })
                    .collect()
            }

            async fn counter(&mut self, kind: Kind) -> Result<u64> {
                let row: Option<(i64,)> = sqlx::query_as("SELECT last FROM counters WHERE kind = $1")
                    .bind(kind.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.map(|(n,)| u64::try_from(n).unwrap_or(0)).unwrap_or(0))
            }

            async fn delivery_seen(&mut self, platform: &str, delivery_id: &str) -> Result<bool> {
                delivery_seen_in(&mut *self.tx, platform, delivery_id).await
            }

            async fn deliveries_seen(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
                let mut seen = Vec::new();
                for chunk in fixed_chunks(keys) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT platform, delivery_id FROM inbound_deliveries WHERE (platform, delivery_id) IN (",
                    );
                    qb.push_values(chunk, |mut b, (platform, id)| {
                        b.push_bind(platform.clone()).push_bind(id.clone());
                    });
                    qb.push(")");
                    let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *self.tx).await?;
                    seen.extend(rows);
                }
                Ok(seen)
            }

            async fn write(&mut self, w: WriteSet) -> Result<()> {
                let WriteSet { records, counters, audit, grants, outbox, deliveries, rollups } = w;
                write_rollups_in(&mut *self.tx, &rollups).await?;
                for chunk in fixed_chunks_owned(deliveries) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO inbound_deliveries (platform, delivery_id, received_at) ",
                    );
                    qb.push_values(chunk, |mut b, (platform, id, at)| {
                        b.push_bind(platform).push_bind(id).push_bind(at);
                    });
                    qb.push(" ON CONFLICT (platform, delivery_id) DO NOTHING");
                    qb.build().execute(&mut *self.tx).await?;
                }
                replace_terms(&mut *self.tx, &records.iter().map(|(r, _)| r).collect::<Vec<_>>()).await?;
                for chunk in fixed_chunks_owned(records) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO records (kind, key, num, title, status, service, priority, assignee, reporter, breached, created_at, updated_at, data, due_at, sla_due) ",
                    );
                    qb.push_values(chunk, |mut b, (r, json)| {
                        let key = r.key();
                        let (priority, assignee, reporter, breached) = match &r {
                            Record::Incident(i) => (
                                Some(i.priority.as_str().to_string()),
                                i.assignee.as_ref().map(|a| a.to_string()),
                                Some(i.reporter.to_string()),
                                i64::from(i.breached),
                            ),
                            _ => (None, None, None, 0),
                        };
                        b.push_bind(r.kind().as_str().to_string())
                            .push_bind(key.clone())
                            .push_bind(key_number(&key))
                            .push_bind(r.title().to_string())
                            .push_bind(r.status())
                            .push_bind(r.service().map(str::to_string))
                            .push_bind(priority)
                            .push_bind(assignee)
                            .push_bind(reporter)
                            .push_bind(breached)
                            .push_bind($crate::domain::audit::format_time(r.created_at()))
                            .push_bind($crate::domain::audit::format_time(r.updated_at()))
                            .push_bind(json)
                            .push_bind(r.next_deadline().map($crate::domain::audit::format_time))
                            .push_bind(r.sla_due().map($crate::domain::audit::format_time));
                    });
                    qb.push(
                        " ON CONFLICT (kind, key) DO UPDATE SET num = excluded.num, title = excluded.title, \
                         status = excluded.status, service = excluded.service, priority = excluded.priority, \
                         assignee = excluded.assignee, reporter = excluded.reporter, breached = excluded.breached, \
                         updated_at = excluded.updated_at, data = excluded.data, due_at = excluded.due_at, \
                         sla_due = excluded.sla_due",
                    );
                    qb.build().execute(&mut *self.tx).await?;
                }
                for (kind, last) in &counters {
                    sqlx::query("INSERT INTO counters (kind, last) VALUES ($1, $2) ON CONFLICT (kind) DO UPDATE SET last = excluded.last")
                        .bind(kind.as_str())
                        .bind(i64::try_from(*last).map_err(|_| StoreError::Invalid("counter overflow".into()))?)
                        .execute(&mut *self.tx)
                        .await?;
                }
                let last = audit.last().map(|e| (e.seq, e.hash.clone()));
                for chunk in fixed_chunks_owned(audit) {
                    let mut qb = QueryBuilder::<$db>::new(format!("INSERT INTO audit ({AUDIT_COLUMNS}) "));
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.seq)
                            .push_bind(e.at)
                            .push_bind(e.actor)
                            .push_bind(e.record)
                            .push_bind(e.action)
                            .push_bind(e.before)
                            .push_bind(e.after)
                            .push_bind(e.outcome)
                            .push_bind(e.prev_hash)
                            .push_bind(e.hash);
                    });
                    qb.build().execute(&mut *self.tx).await?;
                }
                if let Some((seq, hash)) = last {
                    sqlx::query("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1")
                        .bind(seq)
                        .bind(&hash)
                        .execute(&mut *self.tx)
                        .await?;
                    self.head = (seq, hash);
                }
                for g in &grants {
                    match g {
                        GrantChange::Add(g) => {
                            sqlx::query("INSERT INTO role_grants (actor, role, granted_by, granted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (actor, role) DO NOTHING")
                                .bind(g.actor.as_str())
                                .bind(g.role.as_str())
                                .bind(g.granted_by.as_str())
                                .bind(&g.granted_at)
                                .execute(&mut *self.tx)
                                .await?;
                        }
                        GrantChange::Remove { actor, role } => {
                            sqlx::query("DELETE FROM role_grants WHERE actor = $1 AND role = $2")
                                .bind(actor.as_str())
                                .bind(role.as_str())
                                .execute(&mut *self.tx)
                                .await?;
                        }
                    }
                }
                // In enqueue order, so ids (and with them each channel's delivery order) follow it.
                for chunk in fixed_chunks(&outbox) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO outbox (platform, channel, op, record, payload, created_at, attempts, next_attempt_at) ",
                    );
                    qb.push_values(chunk, |mut b, (item, at)| {
                        b.push_bind(item.platform.clone())
                            .push_bind(item.channel.clone())
                            .push_bind(item.op.clone())
                            .push_bind(item.record.clone())
                            .push_bind(item.payload.to_string())
                            .push_bind(at.clone())
                            .push_bind(0_i64)
                            .push_bind(at.clone());
                    });
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn commit(self: Box<Self>) -> Result<()> {
                self.tx.commit().await?;
                Ok(())
            }

            async fn outbox_entry(&mut self, id: i64) -> Result<Option<OutboxEntry>> {
                let sql = format!("SELECT {OUTBOX_ENTRY_COLUMNS} FROM outbox WHERE id = $1");
                let row: Option<OutboxEntryRow> = sqlx::query_as(&sql).bind(id).fetch_optional(&mut *self.tx).await?;
                Ok(row.map(outbox_entry_from_row))
            }

            async fn outbox_drop(&mut self, id: i64, now: &str, by: &str) -> Result<bool> {
                let sql = format!(
                    "UPDATE outbox SET dropped_at = $2, dropped_by = $3 WHERE id = $1 AND {OUTBOX_STUCK} AND delivered_at IS NULL"
                );
                let done = sqlx::query(&sql).bind(id).bind(now).bind(by).execute(&mut *self.tx).await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_chunks_cover_every_row_once_in_order() {
        let rows: Vec<u32> = (0..347).collect();
        let chunks = super::fixed_chunks(&rows);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![256, 64, 16, 4, 4, 1, 1, 1]);
        assert_eq!(chunks.concat(), rows);
    }
}

//! The page pass: the pack's HTML pages, rendered from their templates (`templates/export/`),
//! and its stylesheet.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::records::Record;

use super::records::Records;
use super::{create, Clause, ExportSummary, CLAUSES, HTML_ROWS};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
code{word-break:break-all}";

/// One record's row on a clause page.
pub(super) struct Row {
    id: String,
    title: String,
    status: String,
    created: String,
    /// Where the record came from, when a monitoring system raised it: the alerts' links.
    links: Vec<String>,
}

/// The rows of a clause page, gathered as records arrive: at most `HTML_ROWS` of them, and
/// the count of all.
pub(super) struct ClauseRows {
    pub clause: Clause,
    rows: Vec<Row>,
    /// Every record of the clause, listed or not.
    pub count: u64,
}

impl ClauseRows {
    pub fn new(clause: Clause) -> Self {
        ClauseRows {
            clause,
            rows: Vec::new(),
            count: 0,
        }
    }

    pub fn add(&mut self, r: &Record) {
        if self.count < HTML_ROWS {
            self.rows.push(Row {
                id: r.key(),
                title: r.title().to_string(),
                status: r.status(),
                created: r.created_at().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                links: match r {
                    Record::Incident(i) => i
                        .alert
                        .as_ref()
                        .map(|a| a.links.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
            });
        }
        self.count += 1;
    }
}

/// A clause of ISO/IEC 20000-1 and its records.
#[derive(Template)]
#[template(path = "export/clause.html")]
struct ClausePage<'a> {
    /// The pack's root, relative to the page.
    root: &'static str,
    clause: &'a Clause,
    from: NaiveDate,
    to: NaiveDate,
    rows: &'a [Row],
    count: u64,
    limit: u64,
    /// The service report's text, on the page of clause 9.1.
    report: Option<String>,
    /// The page of alert-born incidents: rows show their alert links.
    alerts: bool,
}

/// The pack's front page.
#[derive(Template)]
#[template(path = "export/index.html")]
struct IndexPage<'a> {
    root: &'static str,
    from: NaiveDate,
    to: NaiveDate,
    exported_at: String,
    clauses: Vec<(&'a Clause, u64)>,
    summary: &'a ExportSummary,
}

/// Writes the clause pages, the index and the stylesheet.
pub(super) fn pass(
    out: &Path,
    records: &Records,
    summary: &ExportSummary,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for c in &records.clauses {
        let page = ClausePage {
            root: "../",
            clause: &c.clause,
            from,
            to,
            rows: &c.rows,
            count: c.count,
            limit: HTML_ROWS,
            report: (c.clause.number == "9.1").then(|| records.report.to_text()),
            alerts: c.clause.number == "9.1",
        };
        render(out, c.clause.page, &page)?;
    }
    let index = IndexPage {
        root: "",
        from,
        to,
        exported_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        clauses: CLAUSES
            .iter()
            .zip(&summary.clause_records)
            .map(|(c, (_, n))| (c, *n))
            .collect(),
        summary,
    };
    render(out, "index.html", &index)?;
    std::fs::write(out.join("style.css"), STYLE).context("cannot write style.css")
}

/// Writes a page of the pack from its template.
fn render(dir: &Path, name: &str, page: &impl Template) -> anyhow::Result<()> {
    let mut out = create(dir, name)?;
    Template::write_into(page, &mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", dir.join(name).display()))
}

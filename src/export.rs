//! The ISO/IEC 20000 evidence pack (`opsledger export`): for a period, one CSV and one JSON file
//! per record type, a page per clause of ISO/IEC 20000-1 listing its records, the audit trail's
//! entries of the period (each record's timeline), the service report, and a proof section with
//! the audit chain's first and last hash and the result of verifying it.
//!
//! Everything streams: records and audit entries are read a page at a time and written as they
//! come, so memory stays flat however many records there are. A clause page lists at most
//! `HTML_ROWS` records; its CSV and JSON files hold them all.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::domain::audit::{ChainVerifier, GENESIS};
use crate::domain::ids::Kind;
use crate::domain::records::Record;
use crate::domain::report::{bounds, period, ReportBuilder};
use crate::store::{ListQuery, Store};

const PAGE: i64 = 1000;
const AUDIT_PAGE: i64 = 10_000;
/// The most records a clause page lists; the CSV and JSON files hold all of them.
pub const HTML_ROWS: u64 = 1000;

/// One clause of ISO/IEC 20000-1 and the evidence for it.
#[derive(Debug, Clone, Copy)]
pub struct Clause {
    pub number: &'static str,
    pub title: &'static str,
    /// The clause page, relative to the pack.
    pub page: &'static str,
    /// The data files it points to.
    pub files: &'static [&'static str],
}

/// The clauses the pack maps, in the standard's order.
pub const CLAUSES: [Clause; 10] = [
    Clause {
        number: "8.2.6",
        title: "Configuration information: services and configuration items",
        page: "clauses/8.2.6.html",
        files: &["services.csv", "services.json", "cis.csv", "cis.json"],
    },
    Clause {
        number: "8.5.1.2",
        title: "Requests for change and their approvals",
        page: "clauses/8.5.1.2.html",
        files: &["changes.csv", "changes.json", "approvals.csv"],
    },
    Clause {
        number: "8.5.3",
        title: "Release and deployment management",
        page: "clauses/8.5.3.html",
        files: &["releases.csv", "releases.json"],
    },
    Clause {
        number: "8.6.1",
        title: "Incident management",
        page: "clauses/8.6.1.html",
        files: &["incidents.csv", "incidents.json"],
    },
    Clause {
        number: "8.6.2",
        title: "Service request management",
        page: "clauses/8.6.2.html",
        files: &["requests.csv", "requests.json"],
    },
    Clause {
        number: "8.6.3",
        title: "Problem management and known errors",
        page: "clauses/8.6.3.html",
        files: &["problems.csv", "problems.json"],
    },
    Clause {
        number: "8.7.3.3",
        title: "Information security incidents",
        page: "clauses/8.7.3.3.html",
        files: &["security-incidents.csv", "security-incidents.json"],
    },
    Clause {
        number: "9.1",
        title: "Monitoring, measurement, analysis and evaluation: the service report",
        page: "clauses/9.1.html",
        files: &["report.json", "report.txt"],
    },
    Clause {
        number: "10.1",
        title: "Nonconformity and corrective action",
        page: "clauses/10.1.html",
        files: &["nonconformities.csv", "nonconformities.json"],
    },
    Clause {
        number: "10.2",
        title: "Continual improvement: post-implementation reviews of changes",
        page: "clauses/10.2.html",
        files: &["change-reviews.csv"],
    },
];

/// What an export wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    /// Records per clause number.
    pub clause_records: Vec<(&'static str, u64)>,
    pub timeline_entries: u64,
    pub audit_entries: u64,
    pub first_hash: String,
    pub last_hash: String,
    /// `verified` or what is broken.
    pub verify: String,
}

/// The CSV columns of each kind, after `id, title, status, created_at, updated_at`.
fn columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Incident => &[
            "priority",
            "impact",
            "urgency",
            "service",
            "ci",
            "security",
            "reporter",
            "assignee",
            "response_due",
            "resolve_due",
            "breached",
            "major",
            "acknowledged_at",
            "resolved_at",
            "closed_at",
            "problems",
        ],
        Kind::Request => &["service", "requester", "fulfilled_at", "closed_at"],
        Kind::Problem => &[
            "incidents",
            "root_cause",
            "workaround",
            "resolution",
            "opened_by",
            "major_incident",
            "closed_at",
        ],
        Kind::Change => &[
            "type",
            "risk",
            "service",
            "requester",
            "template",
            "required_approvals",
            "submitted_at",
            "decided_at",
            "started_at",
            "finished_at",
            "outcome",
            "review",
            "reviewed_at",
            "closed_at",
        ],
        Kind::Release => &[
            "version",
            "repo",
            "changes",
            "commits",
            "unapproved_commits",
            "created_by",
        ],
        Kind::Nonconformity => &[
            "rule",
            "record",
            "raised_by",
            "corrective_action",
            "corrected_at",
            "closed_at",
        ],
        Kind::Service => &["owner"],
        Kind::Ci => &["type", "service", "depends"],
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join("; "),
        Value::Object(_) => v.to_string(),
        other => other.to_string(),
    }
}

/// A CSV and a JSON array of one record type, written as records arrive.
struct DataFiles {
    csv: csv::Writer<BufWriter<File>>,
    json: Option<BufWriter<File>>,
    rows: u64,
    kind: Kind,
}

fn create(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    let path = dir.join(name);
    Ok(BufWriter::new(File::create(&path).with_context(|| {
        format!("cannot create {}", path.display())
    })?))
}

impl DataFiles {
    fn new(dir: &Path, stem: &str, kind: Kind, json: bool) -> anyhow::Result<Self> {
        let mut csv = csv::Writer::from_writer(create(dir, &format!("{stem}.csv"))?);
        let mut header = vec!["id", "title", "status", "created_at", "updated_at"];
        header.extend(columns(kind));
        csv.write_record(&header)?;
        let json = if json {
            let mut f = create(dir, &format!("{stem}.json"))?;
            f.write_all(b"[\n")?;
            Some(f)
        } else {
            None
        };
        Ok(DataFiles {
            csv,
            json,
            rows: 0,
            kind,
        })
    }

    fn add(&mut self, r: &Record, json: &Value) -> anyhow::Result<()> {
        let mut row = vec![
            r.key(),
            r.title().to_string(),
            r.status(),
            json["created_at"].as_str().unwrap_or_default().to_string(),
            json["updated_at"].as_str().unwrap_or_default().to_string(),
        ];
        row.extend(columns(self.kind).iter().map(|c| cell(&json[*c])));
        self.csv.write_record(&row)?;
        if let Some(f) = &mut self.json {
            if self.rows > 0 {
                f.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut *f, json)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        self.csv.flush()?;
        if let Some(mut f) = self.json.take() {
            f.write_all(b"\n]\n")?;
            f.flush()?;
        }
        Ok(self.rows)
    }
}

/// One record's row on a clause page.
struct Row {
    id: String,
    title: String,
    status: String,
    created: String,
}

/// A clause page: rows as records arrive (up to `HTML_ROWS`), rendered when the pass ends.
#[derive(askama::Template)]
#[template(path = "export/clause.html")]
struct ClausePage {
    root: &'static str,
    clause: Clause,
    from: NaiveDate,
    to: NaiveDate,
    rows: Vec<Row>,
    /// Every record of the clause, listed or not.
    count: u64,
    limit: u64,
    /// The service report's text, on the page of clause 9.1.
    report: Option<String>,
}

impl ClausePage {
    fn new(clause: Clause, from: NaiveDate, to: NaiveDate) -> Self {
        ClausePage {
            root: "../",
            clause,
            from,
            to,
            rows: Vec::new(),
            count: 0,
            limit: HTML_ROWS,
            report: None,
        }
    }

    fn add(&mut self, r: &Record) {
        if self.count < HTML_ROWS {
            self.rows.push(Row {
                id: r.key(),
                title: r.title().to_string(),
                status: r.status(),
                created: r.created_at().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            });
        }
        self.count += 1;
    }

    fn write(&self, dir: &Path) -> anyhow::Result<(&'static str, u64)> {
        render(dir, self.clause.page, self)?;
        Ok((self.clause.number, self.count))
    }
}

/// Writes a page of the pack from its template.
fn render(dir: &Path, name: &str, page: &impl askama::Template) -> anyhow::Result<()> {
    let mut out = create(dir, name)?;
    askama::Template::write_into(page, &mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", dir.join(name).display()))
}

fn progress(show: bool) -> indicatif::ProgressBar {
    if show {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Writes the evidence pack for `from..=to` into `out` (created if missing; it must be empty).
/// `show_progress` draws a progress line on stderr (for a terminal).
pub async fn export(
    store: &dyn Store,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    out: &Path,
    now: DateTime<Utc>,
    show_progress: bool,
) -> anyhow::Result<ExportSummary> {
    let (from, to) = period(from, to, now);
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: export into a new or empty directory",
            out.display()
        );
    }
    std::fs::create_dir_all(out.join("clauses"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let (start, end) = bounds(from, to);
    let within = |at: DateTime<Utc>| at >= start && at < end;
    let bar = progress(show_progress);

    let mut pages: Vec<ClausePage> = CLAUSES
        .iter()
        .map(|c| ClausePage::new(*c, from, to))
        .collect();
    let page = |n: &str| CLAUSES.iter().position(|c| c.number == n).unwrap_or(0);
    let mut security = DataFiles::new(out, "security-incidents", Kind::Incident, true)?;
    let mut reviews = DataFiles::new(out, "change-reviews", Kind::Change, false)?;
    let mut approvals = csv::Writer::from_writer(create(out, "approvals.csv")?);
    approvals.write_record(["change", "voter", "decision", "comment", "at"])?;
    let mut report = ReportBuilder::new(from, to);

    for kind in Kind::ALL {
        let mut files = DataFiles::new(out, kind.collection(), kind, true)?;
        let clause = match kind {
            Kind::Service | Kind::Ci => page("8.2.6"),
            Kind::Change => page("8.5.1.2"),
            Kind::Release => page("8.5.3"),
            Kind::Incident => page("8.6.1"),
            Kind::Request => page("8.6.2"),
            Kind::Problem => page("8.6.3"),
            Kind::Nonconformity => page("10.1"),
        };
        let mut q = ListQuery::new(kind, PAGE);
        loop {
            let batch = store.list(&q).await.context("cannot read the records")?;
            let full = batch.len() as i64 == PAGE;
            for r in &batch {
                report.add(r);
                // Configuration information is the current state; the rest is what the
                // period created.
                let current = matches!(kind, Kind::Service | Kind::Ci);
                if !current && !within(r.created_at()) {
                    continue;
                }
                let json = r.to_json();
                files.add(r, &json)?;
                pages[clause].add(r);
                match r {
                    Record::Incident(i) if i.security => {
                        security.add(r, &json)?;
                        pages[page("8.7.3.3")].add(r);
                    }
                    Record::Change(c) => {
                        for a in &c.approvals {
                            approvals.write_record([
                                c.id.to_string(),
                                a.voter.to_string(),
                                cell(&serde_json::to_value(a.decision).unwrap_or_default()),
                                a.comment.clone().unwrap_or_default(),
                                a.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                            ])?;
                        }
                        if c.review.is_some() {
                            reviews.add(r, &json)?;
                            pages[page("10.2")].add(r);
                        }
                    }
                    _ => {}
                }
                bar.set_message(format!("{}: {}", kind.collection(), files.rows));
                bar.tick();
            }
            q.after = batch.last().map(|r| r.key());
            if !full {
                break;
            }
        }
        files.finish()?;
    }
    security.finish()?;
    reviews.finish()?;
    approvals.flush()?;

    // 9.1: the service report of the period.
    let report = report.finish();
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)
        .context("cannot write report.json")?;
    std::fs::write(out.join("report.txt"), report.to_text()).context("cannot write report.txt")?;

    // Every entry of the chain is verified; those of the period make the timelines.
    let (head_seq, head_hash) = store
        .chain_head()
        .await
        .context("cannot read the audit chain head")?;
    let mut timeline = csv::Writer::from_writer(create(out, "timeline.csv")?);
    timeline.write_record(["record", "seq", "at", "actor", "action", "outcome", "hash"])?;
    let mut verifier = ChainVerifier::default();
    let mut broken = None;
    let (mut first_hash, mut in_period, mut after) = (String::new(), 0u64, 0i64);
    while after < head_seq {
        let entries = store
            .audit_after(after, AUDIT_PAGE)
            .await
            .context("cannot read the audit trail")?;
        for e in entries.iter().take_while(|e| e.seq <= head_seq) {
            if first_hash.is_empty() {
                first_hash = e.hash.clone();
            }
            if broken.is_none() {
                if let Err(b) = verifier.check(e) {
                    broken = Some(b.to_string());
                }
            }
            let at = DateTime::parse_from_rfc3339(&e.at).map(|t| t.with_timezone(&Utc));
            if at.is_ok_and(within) {
                timeline.write_record([
                    e.record.clone().unwrap_or_default(),
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.outcome.clone(),
                    e.hash.clone(),
                ])?;
                in_period += 1;
            }
        }
        bar.set_message(format!("audit trail: {}", verifier.checked));
        bar.tick();
        match entries.last() {
            Some(last) if entries.len() as i64 == AUDIT_PAGE => after = last.seq,
            _ => break,
        }
    }
    timeline.flush()?;
    if broken.is_none() {
        if let Err(b) = verifier.finish(head_seq, &head_hash) {
            broken = Some(b.to_string());
        }
    }
    let verify = broken.unwrap_or_else(|| "verified".to_string());
    if first_hash.is_empty() {
        first_hash = GENESIS.to_string();
    }
    bar.finish_and_clear();

    let mut clause_records = Vec::new();
    for mut p in pages {
        if p.clause.number == "9.1" {
            p.report = Some(report.to_text());
        }
        clause_records.push(p.write(out)?);
    }
    let summary = ExportSummary {
        clause_records,
        timeline_entries: in_period,
        audit_entries: verifier.checked,
        first_hash,
        last_hash: head_hash,
        verify,
    };
    write_index(out, &summary, from, to, now)?;
    std::fs::write(out.join("style.css"), STYLE).context("cannot write style.css")?;
    Ok(summary)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
code{word-break:break-all}";

/// The pack's front page.
#[derive(askama::Template)]
#[template(path = "export/index.html")]
struct IndexPage<'a> {
    root: &'static str,
    from: NaiveDate,
    to: NaiveDate,
    exported_at: String,
    clauses: Vec<(&'a Clause, u64)>,
    summary: &'a ExportSummary,
}

fn write_index(
    out: &Path,
    s: &ExportSummary,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let page = IndexPage {
        root: "",
        from,
        to,
        exported_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        clauses: CLAUSES
            .iter()
            .zip(&s.clause_records)
            .map(|(c, (_, n))| (c, *n))
            .collect(),
        summary: s,
    };
    render(out, "index.html", &page)
}

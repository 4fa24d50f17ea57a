//! The record pass: every record read once, a page at a time, into the data files (a CSV and
//! a JSON array per record type, the approvals, the security incidents and the change reviews),
//! the clause pages' rows and the service report.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::domain::ids::Kind;
use crate::domain::records::Record;
use crate::domain::report::{ReportBuilder, ServiceReport};
use crate::store::{ListQuery, RecordPager, Store};

use super::pages::ClauseRows;
use super::{create, Period, CLAUSES};

const PAGE: i64 = 1000;

/// What the record pass gathered for the pages.
pub(super) struct Records {
    /// The rows of each clause page, in `CLAUSES` order.
    pub clauses: Vec<ClauseRows>,
    pub report: ServiceReport,
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
        Kind::Alert => &[
            "source",
            "receiver",
            "group_key",
            "service",
            "ci",
            "incident",
            "incidents",
            "problem",
        ],
        Kind::Oncall => &["overrides"],
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

/// What the reading side hands the writing side: a record type starts, or a page of it.
enum Part {
    Kind(Kind),
    Page(Vec<Record>),
}

/// Reads every record once and writes the data files; returns the clause rows and the report.
/// Pages are read (and their stored JSON decoded) here while the page before is written on a
/// blocking thread, since the two take about as long.
pub(super) async fn pass(
    store: &dyn Store,
    out: &Path,
    days: Period,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Records> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Part>(2);
    let (dir, progress) = (out.to_path_buf(), bar.clone());
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<Records> {
        let mut sink = Sink::new(&dir, days)?;
        while let Some(part) = rx.blocking_recv() {
            match part {
                Part::Kind(kind) => sink.start(kind)?,
                Part::Page(page) => sink.page(&page, &progress)?,
            }
        }
        sink.finish()
    });
    let read = async move {
        for kind in Kind::ALL {
            // A send fails only when the writer stopped; its error is the one returned.
            if tx.send(Part::Kind(kind)).await.is_err() {
                return anyhow::Ok(());
            }
            let mut pager = RecordPager::new(store, ListQuery::new(kind, PAGE));
            while let Some(page) = pager.next_page().await.context("cannot read the records")? {
                if tx.send(Part::Page(page)).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    let read = read.await;
    let written = writer.await.context("the record writer stopped")?;
    read?;
    written
}

/// The files, clause rows and report the record pass writes into, a page at a time.
struct Sink {
    out: std::path::PathBuf,
    days: Period,
    clauses: Vec<ClauseRows>,
    security: DataFiles,
    reviews: DataFiles,
    approvals: csv::Writer<BufWriter<File>>,
    pages: csv::Writer<BufWriter<File>>,
    report: ReportBuilder,
    /// The record type being written: its files, its clause page, whether its records are
    /// listed there, and whether it is current state (all of it) or what the period created.
    kind: Option<(Kind, DataFiles, usize, bool, bool)>,
}

fn page_of(number: &str) -> usize {
    CLAUSES.iter().position(|c| c.number == number).unwrap_or(0)
}

impl Sink {
    fn new(out: &Path, days: Period) -> anyhow::Result<Self> {
        let security = DataFiles::new(out, "security-incidents", Kind::Incident, true)?;
        let reviews = DataFiles::new(out, "change-reviews", Kind::Change, false)?;
        let mut approvals = csv::Writer::from_writer(create(out, "approvals.csv")?);
        approvals.write_record(["change", "voter", "decision", "comment", "at"])?;
        let mut pages = csv::Writer::from_writer(create(out, "pages.csv")?);
        pages.write_record([
            "incident",
            "chain",
            "step",
            "round",
            "target",
            "who",
            "via",
            "at",
            "outside_working_hours",
            "delivered",
            "acknowledged_by",
            "acknowledged_at",
        ])?;
        Ok(Sink {
            out: out.to_path_buf(),
            days,
            clauses: CLAUSES.iter().map(|c| ClauseRows::new(*c)).collect(),
            security,
            reviews,
            approvals,
            pages,
            report: ReportBuilder::new(days.from, days.to),
            kind: None,
        })
    }

    /// Closes the previous type's files and opens this one's.
    fn start(&mut self, kind: Kind) -> anyhow::Result<()> {
        if let Some((_, files, ..)) = self.kind.take() {
            files.finish()?;
        }
        let files = DataFiles::new(&self.out, kind.collection(), kind, true)?;
        let clause = match kind {
            Kind::Service | Kind::Ci => page_of("8.2.6"),
            Kind::Change => page_of("8.5.1.2"),
            Kind::Release => page_of("8.5.3"),
            Kind::Incident => page_of("8.6.1"),
            Kind::Request => page_of("8.6.2"),
            Kind::Problem => page_of("8.6.3"),
            Kind::Nonconformity => page_of("10.1"),
            // Alert groups are 9.1's data files; its page lists the incidents they raised.
            Kind::Alert => page_of("9.1"),
            // Who was on call, beyond the rules file's rotation: data files of 8.6.1.
            Kind::Oncall => page_of("8.6.1"),
        };
        let listed = !matches!(kind, Kind::Alert | Kind::Oncall);
        // Configuration information is the current state; the rest is what the period created.
        let current = matches!(kind, Kind::Service | Kind::Ci);
        self.kind = Some((kind, files, clause, listed, current));
        Ok(())
    }

    fn page(&mut self, batch: &[Record], bar: &indicatif::ProgressBar) -> anyhow::Result<()> {
        let Sink {
            days,
            clauses,
            security,
            reviews,
            approvals,
            pages,
            report,
            kind,
            ..
        } = self;
        let Some((kind, files, clause, listed, current)) = kind.as_mut() else {
            anyhow::bail!("a page of records came before its type");
        };
        let (kind, clause, listed, current) = (*kind, *clause, *listed, *current);
        for r in batch {
            report.add(r);
            if !current && !days.contains(r.created_at()) {
                continue;
            }
            let json = r.to_json();
            files.add(r, &json)?;
            if listed {
                clauses[clause].add(r);
            }
            if let Record::Incident(i) = r {
                let time =
                    |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                if let Some(e) = &i.escalation {
                    for p in &e.pages {
                        pages.write_record([
                            i.id.to_string(),
                            e.chain.clone(),
                            p.step.to_string(),
                            (p.round + 1).to_string(),
                            p.target.clone(),
                            p.who.clone(),
                            p.via.join("; "),
                            time(p.at),
                            p.outside_hours.to_string(),
                            p.delivered
                                .iter()
                                .map(|d| format!("{} {}", d.via, time(d.at)))
                                .collect::<Vec<_>>()
                                .join("; "),
                            p.acknowledged_by
                                .as_ref()
                                .map(|a| a.to_string())
                                .unwrap_or_default(),
                            p.acknowledged_at.map(time).unwrap_or_default(),
                        ])?;
                    }
                }
            }
            match r {
                Record::Incident(i) if i.alert.is_some() => {
                    clauses[page_of("9.1")].add(r);
                    if i.security {
                        security.add(r, &json)?;
                        clauses[page_of("8.7.3.3")].add(r);
                    }
                }
                Record::Incident(i) if i.security => {
                    security.add(r, &json)?;
                    clauses[page_of("8.7.3.3")].add(r);
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
                        clauses[page_of("10.2")].add(r);
                    }
                }
                _ => {}
            }
            bar.set_message(format!("{}: {}", kind.collection(), files.rows));
            bar.tick();
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<Records> {
        if let Some((_, files, ..)) = self.kind.take() {
            files.finish()?;
        }
        self.security.finish()?;
        self.reviews.finish()?;
        self.approvals.flush()?;
        self.pages.flush()?;
        // 9.1: the service report of the period.
        let report = self.report.finish();
        std::fs::write(
            self.out.join("report.json"),
            serde_json::to_vec_pretty(&report)?,
        )
        .context("cannot write report.json")?;
        std::fs::write(self.out.join("report.txt"), report.to_text())
            .context("cannot write report.txt")?;
        Ok(Records {
            clauses: self.clauses,
            report,
        })
    }
}

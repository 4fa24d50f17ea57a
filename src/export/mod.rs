//! The ISO/IEC 20000 evidence pack (`opsledger export`): for a period, one CSV and one JSON file
//! per record type, a page per clause of ISO/IEC 20000-1 listing its records, the audit trail's
//! entries of the period (each record's timeline), the service report, and a proof section with
//! the audit chain's first and last hash and the result of verifying it.
//!
//! Records and audit entries are read a page at a time and the data files written as they come,
//! so memory stays flat however many records there are. A clause page lists at most `HTML_ROWS`
//! records, kept until the page pass renders them; its CSV and JSON files hold them all.
//!
//! Three passes: the record pass (`records.rs`) writes the data files and gathers the clause
//! pages' rows and the service report; the audit pass (`timeline.rs`), at the same time,
//! verifies the whole chain and writes the period's timeline; then the page pass (`pages.rs`)
//! renders the HTML pages from their templates.

use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::report::{bounds, period};
use crate::store::Store;

mod pages;
mod records;
mod timeline;

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
        files: &[
            "incidents.csv",
            "incidents.json",
            "pages.csv",
            "oncall.csv",
            "oncall.json",
        ],
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
        files: &["report.json", "report.txt", "alerts.csv", "alerts.json"],
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
    let bar = progress(show_progress);
    let days = Period::new(from, to);
    // The passes write different files: they run side by side.
    let (records, chain) = tokio::try_join!(
        records::pass(store, out, days, &bar),
        timeline::pass(store, out, days, &bar)
    )?;
    bar.finish_and_clear();
    let summary = ExportSummary {
        clause_records: records
            .clauses
            .iter()
            .map(|c| (c.clause.number, c.count))
            .collect(),
        timeline_entries: chain.in_period,
        audit_entries: chain.checked,
        first_hash: chain.first_hash,
        last_hash: chain.last_hash,
        verify: chain.verify,
    };
    pages::pass(out, &records, &summary, from, to, now)?;
    Ok(summary)
}

/// The days exported, and the instants they span (UTC).
#[derive(Debug, Clone, Copy)]
struct Period {
    from: NaiveDate,
    to: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Period {
    fn new(from: NaiveDate, to: NaiveDate) -> Self {
        let (start, end) = bounds(from, to);
        Period {
            from,
            to,
            start,
            end,
        }
    }

    fn contains(&self, at: DateTime<Utc>) -> bool {
        at >= self.start && at < self.end
    }
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

/// Creates a file of the pack, buffered.
fn create(dir: &Path, name: &str) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let path = dir.join(name);
    Ok(std::io::BufWriter::new(
        std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?,
    ))
}

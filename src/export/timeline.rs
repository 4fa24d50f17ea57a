//! The audit pass: the whole chain verified up to its head (ranges in parallel, as `audit
//! verify` does) while the entries of the period are written to `timeline.csv`, each naming its
//! record.

use std::path::Path;

use anyhow::Context;

use crate::domain::audit::{format_time, GENESIS};
use crate::store::{Store, TimelineRow, AUDIT_PAGE};

use super::{create, Period};

/// What the audit pass found.
pub(super) struct Chain {
    /// Entries of the period, written to the timeline.
    pub in_period: u64,
    /// Entries verified.
    pub checked: u64,
    pub first_hash: String,
    pub last_hash: String,
    /// `verified` or what is broken.
    pub verify: String,
}

/// Verifies every entry of the chain up to its head and writes the period's timeline, reading
/// the trail once: ranges are checked in parallel, each returning its entries of the period,
/// which are written in order on a blocking thread (so the record pass runs beside it). A break
/// is noted and the rest of the timeline is still written.
pub(super) async fn pass(
    store: &dyn Store,
    out: &Path,
    days: Period,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Chain> {
    use futures_util::{StreamExt, TryStreamExt};

    let (head_seq, head_hash) = store
        .chain_head()
        .await
        .context("cannot read the audit chain head")?;
    let mut file = csv::Writer::from_writer(create(out, "timeline.csv")?);
    file.write_record(["record", "seq", "at", "actor", "action", "outcome", "hash"])?;
    let period = (format_time(days.start), format_time(days.end));
    let mut checks = futures_util::stream::iter(crate::app::audit_ranges(head_seq, RANGE))
        .map(|(from, to)| store.audit_check_in_period(from, to, (&period.0, &period.1)))
        .buffered(crate::app::audit_readers());
    let mut segments = Vec::new();
    // The file is either idle here or being written on a blocking thread (while the next
    // ranges are read), which hands it back.
    let mut idle = Some(file);
    let mut writing = None;
    let (mut after, mut written, mut stopped) = (0, 0u64, false);
    while let Some((seg, rows)) = checks
        .try_next()
        .await
        .context("cannot read the audit trail")?
    {
        let file = take(&mut idle, &mut writing).await?;
        if let Some(last) = rows.last() {
            after = last.seq;
        }
        written += rows.len() as u64;
        writing = Some(tokio::task::spawn_blocking(move || write(file, &rows)));
        bar.set_message(format!("audit trail: {written} entries of the period"));
        bar.tick();
        // The first fault decides the verdict; the ranges after it are not checked.
        stopped = seg.fault.is_some();
        segments.push(seg);
        if stopped {
            break;
        }
    }
    drop(checks);
    let mut file = take(&mut idle, &mut writing).await?;
    let (checked, verdict) = crate::domain::audit::join(segments, head_seq, &head_hash);
    if stopped {
        // Past a break the entries are not checked, but the period's are still listed.
        written += rest(store, &mut file, (&period.0, &period.1), after, head_seq).await?;
    }
    file.flush()?;
    let first_hash = store
        .audit_after(0, 1)
        .await
        .context("cannot read the audit trail")?
        .pop()
        .map_or_else(|| GENESIS.to_string(), |e| e.hash);
    Ok(Chain {
        in_period: written,
        checked,
        first_hash,
        last_hash: head_hash,
        verify: verdict.map_or_else(|b| b.to_string(), |_| "verified".to_string()),
    })
}

/// Audit entries per range the export checks: smaller than `audit verify`'s, since each
/// range's entries of the period are held until written (about 10 MB for 25,000).
const RANGE: i64 = 25_000;

type Writer = csv::Writer<std::io::BufWriter<std::fs::File>>;

/// The timeline file, once it is no longer being written.
async fn take(
    idle: &mut Option<Writer>,
    writing: &mut Option<tokio::task::JoinHandle<anyhow::Result<Writer>>>,
) -> anyhow::Result<Writer> {
    match writing.take() {
        Some(task) => task.await.context("the timeline writer stopped")?,
        None => idle.take().context("the timeline file is missing"),
    }
}

/// Writes timeline entries, each naming its record; hands the file back.
fn write(mut file: Writer, rows: &[TimelineRow]) -> anyhow::Result<Writer> {
    for e in rows {
        row(&mut file, e)?;
    }
    Ok(file)
}

fn row(file: &mut Writer, e: &TimelineRow) -> anyhow::Result<()> {
    let mut seq = itoa::Buffer::new();
    file.write_record([
        e.record.as_deref().unwrap_or_default(),
        seq.format(e.seq),
        &e.at,
        &e.actor,
        &e.action,
        &e.outcome,
        &e.hash,
    ])?;
    Ok(())
}

/// Writes the period's entries after `after` up to the head, read without checking them (past a
/// break in the chain); returns how many.
async fn rest(
    store: &dyn Store,
    file: &mut Writer,
    period: (&str, &str),
    mut after: i64,
    head_seq: i64,
) -> anyhow::Result<u64> {
    let mut written = 0;
    loop {
        let page = store
            .audit_in_period(after, head_seq, period, AUDIT_PAGE)
            .await
            .context("cannot read the audit trail")?;
        let full = page.len() as i64 >= AUDIT_PAGE;
        for e in &page {
            after = e.seq;
            row(file, e)?;
            written += 1;
        }
        if !full {
            return Ok(written);
        }
    }
}

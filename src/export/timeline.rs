//! The audit pass: the whole chain verified up to its head (ranges in parallel, as `audit
//! verify` does) while the entries of the period are written to `timeline.csv`, each naming its
//! record.

use std::path::Path;

use anyhow::Context;

use crate::domain::audit::{format_time, GENESIS};
use crate::store::{Store, AUDIT_PAGE};

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

/// Verifies every entry of the chain up to its head and writes the period's timeline. A break
/// is noted and the timeline still written.
pub(super) async fn pass(
    store: &dyn Store,
    out: &Path,
    days: Period,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Chain> {
    let (head_seq, head_hash) = store
        .chain_head()
        .await
        .context("cannot read the audit chain head")?;
    let ((checked, verdict), in_period) = tokio::try_join!(
        crate::app::verify_audit_upto(store, head_seq, &head_hash),
        timeline(store, out, days, head_seq, bar),
    )?;
    let first_hash = store
        .audit_after(0, 1)
        .await
        .context("cannot read the audit trail")?
        .pop()
        .map_or_else(|| GENESIS.to_string(), |e| e.hash);
    Ok(Chain {
        in_period,
        checked,
        first_hash,
        last_hash: head_hash,
        verify: verdict.map_or_else(|b| b.to_string(), |_| "verified".to_string()),
    })
}

/// Writes the entries up to the head whose time is in the period, in order; returns how many.
async fn timeline(
    store: &dyn Store,
    out: &Path,
    days: Period,
    head_seq: i64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    let mut file = csv::Writer::from_writer(create(out, "timeline.csv")?);
    file.write_record(["record", "seq", "at", "actor", "action", "outcome", "hash"])?;
    let period = (format_time(days.start), format_time(days.end));
    let (mut after, mut written) = (0, 0u64);
    loop {
        let page = store
            .audit_in_period(after, head_seq, (&period.0, &period.1), AUDIT_PAGE)
            .await
            .context("cannot read the audit trail")?;
        let full = page.len() as i64 >= AUDIT_PAGE;
        for e in page {
            after = e.seq;
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
            written += 1;
        }
        bar.set_message(format!("audit trail: {written} entries of the period"));
        bar.tick();
        if !full {
            break;
        }
    }
    file.flush()?;
    Ok(written)
}

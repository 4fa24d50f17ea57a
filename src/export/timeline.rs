//! The audit pass: the whole chain streamed through the verifier, in order; the entries of the
//! period are written to `timeline.csv`, each naming its record.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::domain::audit::{ChainVerifier, GENESIS};
use crate::store::{AuditStream, Store, AUDIT_PAGE};

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
    let mut stream = AuditStream::open(store, AUDIT_PAGE)
        .await
        .context("cannot read the audit chain head")?;
    let mut timeline = csv::Writer::from_writer(create(out, "timeline.csv")?);
    timeline.write_record(["record", "seq", "at", "actor", "action", "outcome", "hash"])?;
    let mut verifier = ChainVerifier::default();
    let mut broken = None;
    let (mut first_hash, mut in_period) = (None, 0u64);
    while let Some(entries) = stream
        .next_page()
        .await
        .context("cannot read the audit trail")?
    {
        for e in entries {
            first_hash.get_or_insert_with(|| e.hash.clone());
            if broken.is_none() {
                if let Err(b) = verifier.check(&e) {
                    broken = Some(b.to_string());
                }
            }
            let at = DateTime::parse_from_rfc3339(&e.at).map(|t| t.with_timezone(&Utc));
            if at.is_ok_and(|at| days.contains(at)) {
                timeline.write_record([
                    e.record.unwrap_or_default(),
                    e.seq.to_string(),
                    e.at,
                    e.actor,
                    e.action,
                    e.outcome,
                    e.hash,
                ])?;
                in_period += 1;
            }
        }
        bar.set_message(format!("audit trail: {}", verifier.checked));
        bar.tick();
    }
    timeline.flush()?;
    let (head_seq, head_hash) = stream.head();
    if broken.is_none() {
        if let Err(b) = verifier.finish(head_seq, head_hash) {
            broken = Some(b.to_string());
        }
    }
    Ok(Chain {
        in_period,
        checked: verifier.checked,
        first_hash: first_hash.unwrap_or_else(|| GENESIS.to_string()),
        last_hash: head_hash.to_string(),
        verify: broken.unwrap_or_else(|| "verified".to_string()),
    })
}

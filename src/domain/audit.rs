//! The tamper-evident audit trail: entries chained with SHA-256, and the pure chain check.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash that the first entry's `prev_hash` holds.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One append-only audit entry: who did what to which record, when, with what result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub record: Option<String>,
    pub action: String,
    /// The record's JSON before and after the command, as stored text (hashed as is).
    pub before: Option<String>,
    pub after: Option<String>,
    /// `ok`, or `refused: <why>`, `not_found: <why>`.
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The timestamp format the chain hashes: fixed, so both backends hash the same bytes.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl AuditEntry {
    /// Builds the next entry after `prev` (sequence number and hash), hashing its content.
    #[allow(clippy::too_many_arguments)]
    pub fn next(
        prev_seq: i64,
        prev_hash: &str,
        at: DateTime<Utc>,
        actor: &str,
        record: Option<String>,
        action: &str,
        before: Option<String>,
        after: Option<String>,
        outcome: String,
    ) -> AuditEntry {
        let mut e = AuditEntry {
            seq: prev_seq + 1,
            at: format_time(at),
            actor: actor.to_string(),
            record,
            action: action.to_string(),
            before,
            after,
            outcome,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// SHA-256 over every field but the hash itself, each length-prefixed so no two entries
    /// can produce the same byte stream.
    pub fn compute_hash(&self) -> String {
        hex::encode(self.as_row().digest())
    }

    /// The entry's fields, borrowed.
    pub fn as_row(&self) -> EntryRow<'_> {
        EntryRow {
            seq: self.seq,
            at: &self.at,
            actor: &self.actor,
            record: self.record.as_deref(),
            action: &self.action,
            before: self.before.as_deref(),
            after: self.after.as_deref(),
            outcome: &self.outcome,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// One audit entry's fields borrowed from a database row, so a verify can check millions of
/// rows without building an `AuditEntry` (ten owned strings) for each.
#[derive(Debug, Clone, Copy)]
pub struct EntryRow<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub record: Option<&'a str>,
    pub action: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub outcome: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

impl EntryRow<'_> {
    /// The SHA-256 `AuditEntry::compute_hash` gives in hex. (`sha2` uses the processor's SHA
    /// extensions when it has them, detected at run time.)
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut put = |tag: &str, v: Option<&str>| {
            h.update(tag.as_bytes());
            match v {
                Some(v) => {
                    h.update((v.len() as u64).to_be_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update(u64::MAX.to_be_bytes()),
            }
        };
        let mut seq = itoa::Buffer::new();
        put("seq", Some(seq.format(self.seq)));
        put("at", Some(self.at));
        put("actor", Some(self.actor));
        put("record", self.record);
        put("action", Some(self.action));
        put("before", self.before);
        put("after", self.after);
        put("outcome", Some(self.outcome));
        put("prev", Some(self.prev_hash));
        h.finalize().into()
    }

    /// Whether the stored hash is the hash of the content.
    pub fn intact(&self) -> bool {
        let mut hex = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        hex::encode_to_slice(self.digest(), &mut hex).is_ok() && hex == self.hash.as_bytes()
    }
}

/// Why the chain is broken, naming the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("audit entry {seq} was altered: its stored hash does not match its content")]
    Altered { seq: i64 },
    #[error("audit entry {seq} does not follow entry {prev}: its previous-hash link is broken")]
    Unlinked { seq: i64, prev: i64 },
    #[error("audit entry {seq} is out of sequence: expected entry {expected} (an entry was removed or inserted)")]
    Gap { seq: i64, expected: i64 },
    #[error("the audit trail ends at entry {last} but the chain head records entry {head}: the newest entries were removed or altered")]
    Truncated { last: i64, head: i64 },
}

/// Checks entries one at a time, in sequence order, so a verify can stream the whole trail.
#[derive(Debug)]
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: String,
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            last_seq: 0,
            last_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, e: &AuditEntry) -> Result<(), ChainError> {
        if e.seq != self.last_seq + 1 {
            return Err(ChainError::Gap {
                seq: e.seq,
                expected: self.last_seq + 1,
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Altered { seq: e.seq });
        }
        if e.prev_hash != self.last_hash {
            return Err(ChainError::Unlinked {
                seq: e.seq,
                prev: self.last_seq,
            });
        }
        self.last_seq = e.seq;
        self.last_hash.clone_from(&e.hash);
        self.checked += 1;
        Ok(())
    }

    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// After the last entry: the chain must end where the separately kept head says it does,
    /// which catches entries cut from the end.
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Result<(), ChainError> {
        if head_seq != self.last_seq || head_hash != self.last_hash {
            return Err(ChainError::Truncated {
                last: self.last_seq,
                head: head_seq,
            });
        }
        Ok(())
    }
}

/// What checking one run of the trail (a range of sequence numbers) found: enough to join it
/// to its neighbours, so ranges can be checked in parallel, each entry's hash and each link
/// inside a range by its own reader, and the links between ranges by `join`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// The first row's sequence number and previous-hash link.
    pub first: Option<(i64, String)>,
    /// The last row checked: its sequence number and hash.
    pub last: Option<(i64, String)>,
    pub checked: u64,
    /// The first fault inside the range; checking stopped there. The first row's own hash is
    /// checked here; its gap and link to the range before are `join`'s to check.
    pub fault: Option<ChainError>,
}

/// Checks rows of one range in sequence order (see `Segment`).
#[derive(Debug, Default)]
pub struct SegmentCheck {
    seg: Segment,
    last_seq: i64,
    last_hash: Vec<u8>,
}

impl SegmentCheck {
    /// Checks the next row; false once a fault was found (later rows are not looked at).
    pub fn check(&mut self, e: &EntryRow<'_>) -> bool {
        if self.seg.fault.is_some() {
            return false;
        }
        if self.seg.first.is_none() {
            self.seg.first = Some((e.seq, e.prev_hash.to_string()));
        } else if e.seq != self.last_seq + 1 {
            self.seg.fault = Some(ChainError::Gap {
                seq: e.seq,
                expected: self.last_seq + 1,
            });
            return false;
        }
        if !e.intact() {
            self.seg.fault = Some(ChainError::Altered { seq: e.seq });
            return false;
        }
        if self.seg.checked > 0 && e.prev_hash.as_bytes() != self.last_hash.as_slice() {
            self.seg.fault = Some(ChainError::Unlinked {
                seq: e.seq,
                prev: self.last_seq,
            });
            return false;
        }
        self.last_seq = e.seq;
        self.last_hash.clear();
        self.last_hash.extend_from_slice(e.hash.as_bytes());
        self.seg.checked += 1;
        true
    }

    pub fn finish(mut self) -> Segment {
        if self.seg.checked > 0 {
            self.seg.last = Some((
                self.last_seq,
                String::from_utf8_lossy(&self.last_hash).into_owned(),
            ));
        }
        self.seg
    }
}

/// Joins the segments of consecutive ranges, in order, into the verdict a sequential check
/// (`ChainVerifier`) gives: the same first fault, or the last hash, which is the chain head's
/// `(head_seq, head_hash)`. With the number of entries that verified before any fault.
pub fn join(
    segments: impl IntoIterator<Item = Segment>,
    head_seq: i64,
    head_hash: &str,
) -> (u64, Result<String, ChainError>) {
    let mut checked = 0;
    let verdict = join_counting(segments, head_seq, head_hash, &mut checked);
    (checked, verdict)
}

fn join_counting(
    segments: impl IntoIterator<Item = Segment>,
    head_seq: i64,
    head_hash: &str,
    checked: &mut u64,
) -> Result<String, ChainError> {
    let (mut last_seq, mut last_hash) = (0, GENESIS.to_string());
    for seg in segments {
        let Some((first_seq, first_prev)) = &seg.first else {
            continue;
        };
        // The first row's checks in ChainVerifier's order: gap, hash, link.
        if *first_seq != last_seq + 1 {
            return Err(ChainError::Gap {
                seq: *first_seq,
                expected: last_seq + 1,
            });
        }
        if seg.fault == Some(ChainError::Altered { seq: *first_seq }) {
            return Err(ChainError::Altered { seq: *first_seq });
        }
        if *first_prev != last_hash {
            return Err(ChainError::Unlinked {
                seq: *first_seq,
                prev: last_seq,
            });
        }
        *checked += seg.checked;
        if let Some(fault) = seg.fault {
            return Err(fault);
        }
        if let Some((seq, hash)) = seg.last {
            (last_seq, last_hash) = (seq, hash);
        }
    }
    if head_seq != last_seq || head_hash != last_hash {
        return Err(ChainError::Truncated {
            last: last_seq,
            head: head_seq,
        });
    }
    Ok(last_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let (seq, hash) = out
                .last()
                .map(|e| (e.seq, e.hash.clone()))
                .unwrap_or((0, GENESIS.into()));
            out.push(AuditEntry::next(
                seq,
                &hash,
                Utc::now(),
                "console:alice",
                Some(format!("INC-{i}")),
                "incident raise",
                None,
                Some("{}".into()),
                "ok".into(),
            ));
        }
        out
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let mut v = ChainVerifier::default();
        for e in chain(5) {
            v.check(&e).unwrap();
        }
        assert_eq!(v.checked, 5);
    }

    #[test]
    fn an_altered_entry_is_named() {
        let mut entries = chain(5);
        entries[2].outcome = "refused: nothing".into();
        let mut v = ChainVerifier::default();
        let err = entries.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err, ChainError::Altered { seq: 3 });
    }

    #[test]
    fn a_rehashed_entry_breaks_the_next_link() {
        let mut entries = chain(5);
        entries[1].actor = "console:mallory".into();
        entries[1].hash = entries[1].compute_hash();
        let mut v = ChainVerifier::default();
        let err = entries.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err, ChainError::Unlinked { seq: 3, prev: 2 });
    }

    #[test]
    fn entries_cut_from_the_end_are_caught_by_the_head() {
        let entries = chain(4);
        let mut v = ChainVerifier::default();
        entries[..3].iter().try_for_each(|e| v.check(e)).unwrap();
        let err = v.finish(4, &entries[3].hash).unwrap_err();
        assert_eq!(err, ChainError::Truncated { last: 3, head: 4 });
        v.check(&entries[3]).unwrap();
        v.finish(4, &entries[3].hash).unwrap();
    }

    /// The sequential verdict, for comparison.
    fn sequential(entries: &[AuditEntry], head: (i64, &str)) -> Result<u64, ChainError> {
        let mut v = ChainVerifier::default();
        entries.iter().try_for_each(|e| v.check(e))?;
        v.finish(head.0, head.1)?;
        Ok(v.checked)
    }

    /// Split into ranges by sequence number (`bounds` are the first seq of each range after
    /// the first), checked apart and joined.
    fn segmented(
        entries: &[AuditEntry],
        bounds: &[i64],
        head: (i64, &str),
    ) -> Result<u64, ChainError> {
        let mut segs = Vec::new();
        let mut cut = bounds.iter().copied().chain([i64::MAX]);
        let mut end = cut.next().unwrap();
        let mut check = SegmentCheck::default();
        for e in entries {
            while e.seq >= end {
                segs.push(std::mem::take(&mut check).finish());
                end = cut.next().unwrap();
            }
            check.check(&e.as_row());
        }
        segs.push(check.finish());
        let (checked, verdict) = join(segs, head.0, head.1);
        verdict.map(|_| checked)
    }

    #[test]
    fn segments_checked_apart_and_joined_give_the_sequential_verdict() {
        let base = chain(12);
        let head = (12, base[11].hash.clone());
        // Each way of breaking the chain, at every position, under several ways of cutting it.
        type Tamper = fn(&mut Vec<AuditEntry>, usize);
        let tampers: [(&str, Tamper); 5] = [
            ("none", |_, _| {}),
            ("alter", |v, i| v[i].outcome = "refused: forged".into()),
            ("rehash", |v, i| {
                v[i].actor = "console:mallory".into();
                v[i].hash = v[i].compute_hash();
            }),
            ("remove", |v, i| {
                v.remove(i);
            }),
            ("truncate", |v, i| v.truncate(i)),
        ];
        let cuts: [&[i64]; 5] = [
            &[],
            &[2],
            &[5, 9],
            &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            &[13],
        ];
        for (name, tamper) in tampers {
            for i in 0..12 {
                let mut entries = base.clone();
                tamper(&mut entries, i);
                let want = sequential(&entries, (head.0, &head.1));
                for bounds in cuts {
                    assert_eq!(
                        segmented(&entries, bounds, (head.0, &head.1)),
                        want,
                        "{name} at {i}, ranges starting at {bounds:?}"
                    );
                }
            }
        }
        assert_eq!(segmented(&base, &[4], (head.0, &head.1)), Ok(12));
    }

    #[test]
    fn a_removed_entry_is_a_gap() {
        let mut entries = chain(4);
        entries.remove(1);
        let mut v = ChainVerifier::default();
        let err = entries.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(
            err,
            ChainError::Gap {
                seq: 3,
                expected: 2
            }
        );
    }
}

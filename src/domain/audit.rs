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
        put("seq", Some(&self.seq.to_string()));
        put("at", Some(&self.at));
        put("actor", Some(&self.actor));
        put("record", self.record.as_deref());
        put("action", Some(&self.action));
        put("before", self.before.as_deref());
        put("after", self.after.as_deref());
        put("outcome", Some(&self.outcome));
        put("prev", Some(&self.prev_hash));
        hex::encode(h.finalize())
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

//! Reading the store a page at a time: the record pager (every record a `ListQuery` selects, in
//! ID order) and the audit stream (the chain in order, up to the head read when it opened).
//! Every reader that walks records or the chain goes through these, so none pages by hand.

use crate::domain::audit::AuditEntry;

use super::{Result, Store};

/// How many audit entries the stream reads at a time.
pub const AUDIT_PAGE: i64 = 10_000;

/// The audit chain from its first entry, in order, a page at a time. It reads the chain head
/// first and stops there: entries committed meanwhile extend past it and are left out, and the
/// head it read is what a verifier checks the end of the chain against.
pub struct AuditStream<'a> {
    store: &'a dyn Store,
    head: (i64, String),
    after: i64,
    page: i64,
    done: bool,
}

impl std::fmt::Debug for AuditStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStream")
            .field("head", &self.head)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<'a> AuditStream<'a> {
    /// Reads the chain head; entries up to it follow, `page` at a time.
    pub async fn open(store: &'a dyn Store, page: i64) -> Result<Self> {
        let head = store.chain_head().await?;
        Ok(AuditStream {
            store,
            head,
            after: 0,
            page: page.max(1),
            done: false,
        })
    }

    /// The chain head `(seq, hash)` as read when the stream opened.
    pub fn head(&self) -> (i64, &str) {
        (self.head.0, &self.head.1)
    }

    /// The next entries in sequence order, none past the head; `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<AuditEntry>>> {
        if self.done || self.after >= self.head.0 {
            return Ok(None);
        }
        let mut entries = self.store.audit_after(self.after, self.page).await?;
        match entries.last() {
            Some(last) if entries.len() as i64 == self.page => self.after = last.seq,
            _ => self.done = true,
        }
        entries.retain(|e| e.seq <= self.head.0);
        if entries.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(entries))
    }
}

//! Reading the store a page at a time: the record pager (every record a `ListQuery` selects, in
//! ID order) and the audit stream (the chain in order, up to the head read when it opened).
//! Every reader that walks records or the chain goes through these, so none pages by hand.

use async_trait::async_trait;

use crate::domain::audit::AuditEntry;
use crate::domain::records::Record;

use super::{ListQuery, Result, Store};

/// Where records are listed from: the store, outside any transaction, or a write transaction
/// (the use cases' `UnitOfWork`, which sees its batch's own writes).
#[async_trait]
pub trait ListRecords: Send {
    async fn list_records(&mut self, q: &ListQuery) -> Result<Vec<Record>>;
}

#[async_trait]
impl ListRecords for &dyn Store {
    async fn list_records(&mut self, q: &ListQuery) -> Result<Vec<Record>> {
        self.list(q).await
    }
}

/// A reader borrowed for a while (one pager after another over the same source).
#[async_trait]
impl<T: ListRecords> ListRecords for &mut T {
    async fn list_records(&mut self, q: &ListQuery) -> Result<Vec<Record>> {
        (**self).list_records(q).await
    }
}

/// The records a query selects, a page of `q.limit` at a time, in ID order.
#[derive(Debug)]
pub struct RecordPager<S> {
    source: S,
    q: ListQuery,
    done: bool,
}

impl<S: ListRecords> RecordPager<S> {
    /// Pages through what `q` selects, starting after `q.after`, `q.limit` records a page.
    pub fn new(source: S, q: ListQuery) -> Self {
        RecordPager {
            source,
            q,
            done: false,
        }
    }

    /// The next page; `None` once every record has been read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Record>>> {
        if self.done {
            return Ok(None);
        }
        let size = self.q.limit.max(0);
        // One more than a page, to know without another query whether a page follows.
        let mut q = self.q.clone();
        q.limit = size.saturating_add(1);
        let mut page = self.source.list_records(&q).await?;
        if page.len() as i64 > size {
            page.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        } else {
            self.done = true;
        }
        self.q.after = page.last().map(Record::key);
        if page.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(page))
    }

    /// Where the next page starts (the key of the last record read) while another page
    /// follows; `None` once the last page has been read. The API hands it out as its cursor.
    pub fn cursor(&self) -> Option<&str> {
        (!self.done).then_some(self.q.after.as_deref()).flatten()
    }

    /// Calls `f` with every record, a page at a time.
    pub async fn for_each(mut self, mut f: impl FnMut(&Record) + Send) -> Result<()> {
        while let Some(page) = self.next_page().await? {
            page.iter().for_each(&mut f);
        }
        Ok(())
    }

    /// Every record, in one list (for the few readers that need them all at once).
    pub async fn collect(mut self) -> Result<Vec<Record>> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

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

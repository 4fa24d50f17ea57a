//! The unit of work a batch of commands shares: reads through the transaction, writes staged and flushed together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::audit::AuditEntry;
use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::records::Record;
use crate::domain::report::{self, Rollups, Tally};
use crate::store::{
    Grant, GrantChange, ListQuery, ListRecords, NewOutbox, Result, StoreTx, TermQuery, WriteSet,
};

/// One audit entry to append: who did what to which record, the record's stored JSON before
/// and after (when it changed), and how it ended (`ok`, `refused (rule): ...`).
pub struct AuditNote<'a> {
    pub at: DateTime<Utc>,
    pub actor: &'a Actor,
    pub record: Option<String>,
    pub action: &'a str,
    pub before: Option<String>,
    pub after: Option<String>,
    pub outcome: String,
}

/// Staged writes over one store transaction. Reads see staged writes first, so commands later
/// in a batch see what earlier ones did.
pub struct UnitOfWork {
    tx: Box<dyn StoreTx>,
    staged: BTreeMap<(Kind, String), (Record, String)>,
    /// What `get` read from the store in this unit, found or not, so a batch of commands that
    /// look up the same record (their service, say) reads it once. A record staged here is
    /// dropped from it, so after a flush it is read back as written.
    read: BTreeMap<(Kind, String), Option<Record>>,
    /// Stored records by index term, read ahead for the batch (`prefetch_terms`): what an
    /// unbounded `find` of the transaction would return, until a flush writes to it.
    terms: HashMap<(Kind, String), Vec<Record>>,
    counters: BTreeMap<Kind, u64>,
    dirty_counters: Vec<Kind>,
    audit: Vec<AuditEntry>,
    grants: Vec<GrantChange>,
    outbox: Vec<(NewOutbox, String)>,
    deliveries: Vec<(String, String, String)>,
    /// Every delivery noted in this unit, flushed or not.
    seen: BTreeSet<(String, String)>,
    /// Deliveries looked up ahead (`prefetch_deliveries`), and which of them the store held.
    looked_up: BTreeSet<(String, String)>,
    delivered_before: BTreeSet<(String, String)>,
    head: (i64, String),
    /// What each incident and change read or written in this unit contributes to the report
    /// as it stands in the transaction (`None`: not there yet), so a flush can take the old
    /// contribution away from the rollups without reading the record again.
    stored: HashMap<(Kind, String), Option<Contribution>>,
}

/// A record's place and figures in the report's rollups (`report::contribution`).
type Contribution = (NaiveDate, String, Tally);

/// Whether a record of this kind is counted in the report's rollups.
fn rolled_up(kind: Kind) -> bool {
    matches!(kind, Kind::Incident | Kind::Change)
}

impl UnitOfWork {
    pub fn new(tx: Box<dyn StoreTx>) -> Self {
        let head = tx.head();
        UnitOfWork {
            tx,
            staged: BTreeMap::new(),
            read: BTreeMap::new(),
            terms: HashMap::new(),
            counters: BTreeMap::new(),
            dirty_counters: Vec::new(),
            audit: Vec::new(),
            grants: Vec::new(),
            outbox: Vec::new(),
            deliveries: Vec::new(),
            seen: BTreeSet::new(),
            looked_up: BTreeSet::new(),
            delivered_before: BTreeSet::new(),
            head,
            stored: HashMap::new(),
        }
    }

    pub async fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>> {
        let id = (kind, key.to_string());
        if let Some((r, _)) = self.staged.get(&id) {
            return Ok(Some(r.clone()));
        }
        if let Some(r) = self.read.get(&id) {
            return Ok(r.clone());
        }
        let found = self.tx.get(kind, key).await?;
        if rolled_up(kind) {
            self.remember_stored(kind, key.to_string(), found.as_ref());
        }
        self.read.insert(id, found.clone());
        Ok(found)
    }

    /// Notes a record as the transaction holds it (read from it, or just written to it).
    fn remember_stored(&mut self, kind: Kind, key: String, record: Option<&Record>) {
        self.stored
            .insert((kind, key), record.and_then(report::contribution));
    }

    fn remember_all(&mut self, records: &[Record]) {
        for r in records.iter().filter(|r| rolled_up(r.kind())) {
            self.remember_stored(r.kind(), r.key(), Some(r));
        }
    }

    /// Hands out the next number of a kind. Numbers are never reused: the counter is kept in
    /// the store and advanced under the batch's lock.
    pub async fn next_id(&mut self, kind: Kind) -> Result<RecordId> {
        let last = match self.counters.get(&kind) {
            Some(n) => *n,
            None => self.tx.counter(kind).await?,
        };
        let n = last + 1;
        self.counters.insert(kind, n);
        if rolled_up(kind) {
            // Numbers are never reused, so no record has this one yet.
            self.stored
                .insert((kind, RecordId::new(kind, n).to_string()), None);
        }
        if !self.dirty_counters.contains(&kind) {
            self.dirty_counters.push(kind);
        }
        Ok(RecordId::new(kind, n))
    }

    /// Stages a record's new state with its JSON (serialised once, for the audit entry and the row).
    pub fn put(&mut self, record: Record, json: String) {
        let id = (record.kind(), record.key());
        self.read.remove(&id);
        self.staged.insert(id, (record, json));
    }

    pub fn grant(&mut self, change: GrantChange) {
        self.grants.push(change);
    }

    /// Stages an outgoing message, written with the batch and so committed (or rolled back)
    /// with the command that caused it; the outbox worker delivers it after commit. `now` is
    /// the command's time: the item's `created_at` and when it is first due. Items of one
    /// (platform, channel) are delivered in the order they were enqueued.
    pub fn enqueue(&mut self, item: NewOutbox, now: DateTime<Utc>) {
        self.outbox
            .push((item, crate::domain::audit::format_time(now)));
    }

    /// Notes an inbound delivery (a Slack trigger, a Discord interaction, an event): true the
    /// first time its (platform, id) is seen, in the store or earlier in this unit. The note is
    /// written with the unit, so it commits, or rolls back, with the command it carried.
    pub async fn first_delivery(
        &mut self,
        platform: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let key = (platform.to_string(), id.to_string());
        let stored = if self.looked_up.contains(&key) {
            self.delivered_before.contains(&key)
        } else {
            self.tx.delivery_seen(platform, id).await?
        };
        if self.seen.contains(&key) || stored {
            return Ok(false);
        }
        self.deliveries.push((
            key.0.clone(),
            key.1.clone(),
            crate::domain::audit::format_time(now),
        ));
        self.seen.insert(key);
        Ok(true)
    }

    /// Looks up a batch's deliveries in one statement, so `first_delivery` need not ask the
    /// store for each.
    /// Reads these records ahead, in a few statements, for the batch's commands to `get`
    /// without a round trip each to the database. Records staged or read already are left.
    pub async fn prefetch_records(&mut self, kind: Kind, keys: Vec<String>) -> Result<()> {
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                let id = (kind, k.clone());
                !self.staged.contains_key(&id) && !self.read.contains_key(&id)
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let found = self.tx.get_many(kind, &keys).await?;
        let mut by_key: HashMap<String, Record> = found.into_iter().map(|r| (r.key(), r)).collect();
        for key in keys {
            let record = by_key.remove(&key);
            if rolled_up(kind) {
                self.remember_stored(kind, key.clone(), record.as_ref());
            }
            self.read.insert((kind, key), record);
        }
        Ok(())
    }

    /// Reads ahead the stored records carrying each of these terms, for the batch's unbounded
    /// `find`s; dropped at the next flush, after which `find` asks the transaction again.
    pub async fn prefetch_terms(&mut self, kind: Kind, terms: Vec<String>) -> Result<()> {
        let terms: Vec<String> = terms
            .into_iter()
            .filter(|t| !self.terms.contains_key(&(kind, t.clone())))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if terms.is_empty() {
            return Ok(());
        }
        for term in &terms {
            self.terms.insert((kind, term.clone()), Vec::new());
        }
        for (term, record) in self.tx.find_many(kind, &terms).await? {
            if let Some(records) = self.terms.get_mut(&(kind, term)) {
                records.push(record);
            }
        }
        Ok(())
    }

    pub async fn prefetch_deliveries(&mut self, keys: Vec<(String, String)>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.delivered_before
            .extend(self.tx.deliveries_seen(&keys).await?);
        self.looked_up.extend(keys);
        Ok(())
    }

    /// Appends an entry to the audit chain.
    pub fn audit(&mut self, note: AuditNote<'_>) {
        let e = AuditEntry::next(
            self.head.0,
            &self.head.1,
            note.at,
            note.actor.as_str(),
            note.record,
            note.action,
            note.before,
            note.after,
            note.outcome,
        );
        self.head = (e.seq, e.hash.clone());
        self.audit.push(e);
    }

    pub async fn list(&mut self, q: &ListQuery) -> Result<Vec<Record>> {
        self.flush().await?;
        let records = self.tx.list(q).await?;
        self.remember_all(&records);
        Ok(records)
    }

    /// Records by an index term (`Record::index_terms`), newest first, seeing this batch's
    /// staged writes without flushing them: a staged record counts by its staged terms, its
    /// stored ones no longer.
    pub async fn find(&mut self, q: &TermQuery) -> Result<Vec<Record>> {
        let staged = self
            .staged
            .keys()
            .filter(|(kind, _)| *kind == q.kind)
            .count();
        let ahead = match (q.before, q.limit) {
            (None, None) => self.terms.get(&(q.kind, q.term.clone())).cloned(),
            _ => None,
        };
        let stored = match ahead {
            Some(records) => records,
            None if staged == 0 => self.tx.find(q).await?,
            None => {
                // Stored records that are staged are dropped below: ask for as many more.
                let mut wider = q.clone();
                wider.limit = q
                    .limit
                    .map(|l| l.saturating_add(i64::try_from(staged).unwrap_or(i64::MAX)));
                self.tx.find(&wider).await?
            }
        };
        let mut found: Vec<Record> = stored
            .into_iter()
            .filter(|r| !self.staged.contains_key(&(r.kind(), r.key())))
            .collect();
        // As the transaction holds them, so a flush that saves one need not read it again.
        self.remember_all(&found);
        let number = |r: &Record| r.number().map_or(0, |id| id.n);
        found.extend(
            self.staged
                .iter()
                .filter(|((kind, _), _)| *kind == q.kind)
                .map(|(_, (r, _))| r)
                .filter(|r| q.before.is_none_or(|b| number(r) < b))
                .filter(|r| r.index_terms().contains(&q.term))
                .cloned(),
        );
        found.sort_by_key(|r| std::cmp::Reverse((number(r), r.key())));
        if let Some(limit) = q.limit {
            found.truncate(usize::try_from(limit).unwrap_or(0));
        }
        Ok(found)
    }

    pub async fn audit_for(&mut self, record: &str, limit: i64) -> Result<Vec<AuditEntry>> {
        self.flush().await?;
        self.tx.audit_for(record, 0, limit).await
    }

    /// Records whose deadline has come by `now`, seeing this batch's own writes.
    pub async fn due(
        &mut self,
        now: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> Result<Vec<Record>> {
        self.flush().await?;
        let records = self
            .tx
            .due(&crate::domain::audit::format_time(now), limit)
            .await?;
        self.remember_all(&records);
        Ok(records)
    }

    /// The report rollups of `from..=to`, seeing this batch's own writes.
    pub async fn report_rollups(
        &mut self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, Tally)>> {
        self.flush().await?;
        self.tx.report_rollups(from, to).await
    }

    pub async fn grants(&mut self) -> Result<Vec<Grant>> {
        self.flush().await?;
        self.tx.grants().await
    }

    /// Writes everything staged so far into the transaction (not yet committed).
    pub async fn flush(&mut self) -> Result<()> {
        // What was read ahead by term may be about to change in the transaction.
        self.terms.clear();
        let records: Vec<(Record, String)> =
            std::mem::take(&mut self.staged).into_values().collect();
        let mut rollups = Rollups::default();
        for (r, _) in records.iter().filter(|(r, _)| rolled_up(r.kind())) {
            let key = (r.kind(), r.key());
            let before = match self.stored.remove(&key) {
                Some(before) => before,
                // Saved without being read through this unit (not expected): read it now.
                None => self
                    .tx
                    .get(key.0, &key.1)
                    .await?
                    .as_ref()
                    .and_then(report::contribution),
            };
            let after = report::contribution(r);
            rollups.replace(before.as_ref(), after.as_ref());
            self.stored.insert(key, after);
        }
        let w = WriteSet {
            records,
            rollups,
            counters: self
                .dirty_counters
                .drain(..)
                .map(|k| (k, self.counters[&k]))
                .collect(),
            audit: std::mem::take(&mut self.audit),
            grants: std::mem::take(&mut self.grants),
            outbox: std::mem::take(&mut self.outbox),
            deliveries: std::mem::take(&mut self.deliveries),
        };
        if w.is_empty() {
            return Ok(());
        }
        self.tx.write(w).await
    }

    /// One outbox item, read inside the batch's transaction.
    pub async fn outbox_entry(&mut self, id: i64) -> Result<Option<crate::store::OutboxEntry>> {
        self.tx.outbox_entry(id).await
    }

    /// Marks a parked or failed outbox item dropped, in the batch's transaction (so it commits,
    /// or rolls back, with the audit entry saying who dropped it).
    pub async fn drop_outbox(&mut self, id: i64, now: DateTime<Utc>, by: &Actor) -> Result<bool> {
        self.tx
            .outbox_drop(id, &crate::domain::audit::format_time(now), by.as_str())
            .await
    }

    pub async fn commit(mut self) -> Result<()> {
        self.flush().await?;
        self.tx.commit().await
    }
}

/// A `RecordPager` over the unit of work sees the batch's own writes, as `list` does.
#[async_trait::async_trait]
impl ListRecords for &mut UnitOfWork {
    async fn list_records(&mut self, q: &ListQuery) -> Result<Vec<Record>> {
        self.list(q).await
    }
}

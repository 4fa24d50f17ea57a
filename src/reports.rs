//! The service report read from the store: incidents and changes from their per-day,
//! per-service rollups (a few hundred rows for a month), the few other kinds a page at a time;
//! so it neither holds the records in memory nor waits on the ledger's writer.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::report::{period, ReportBuilder, ServiceReport, Tally, KINDS, LISTED_KINDS};
use crate::store::{ListQuery, ListRecords, RecordPager, Store, StoreError};
use crate::usecase::UnitOfWork;

const PAGE: i64 = 1000;

/// Where a report reads from: the store as committed, or a write batch (which sees its own
/// writes).
#[async_trait]
pub trait ReportSource: ListRecords {
    /// `Store::report_rollups`.
    async fn rollups(
        &mut self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, Tally)>, StoreError>;
}

#[async_trait]
impl ReportSource for &dyn Store {
    async fn rollups(
        &mut self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, Tally)>, StoreError> {
        self.report_rollups(from, to).await
    }
}

#[async_trait]
impl ReportSource for &mut UnitOfWork {
    async fn rollups(
        &mut self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, Tally)>, StoreError> {
        self.report_rollups(from, to).await
    }
}

/// The report for `from..=to` (UTC days), from the rollups and the listed kinds.
pub async fn report_from<S: ReportSource>(
    mut source: S,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ServiceReport, StoreError> {
    let mut builder = ReportBuilder::new(from, to);
    for (service, tally) in source.rollups(from, to).await? {
        builder.add_tally(&service, &tally);
    }
    for kind in LISTED_KINDS {
        RecordPager::new(&mut source, ListQuery::new(kind, PAGE))
            .for_each(|r| builder.add(r))
            .await?;
    }
    Ok(builder.finish())
}

/// The report for `from..=to` (defaults: the 30 days up to today).
pub async fn service_report(
    store: &dyn Store,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<ServiceReport, StoreError> {
    let (from, to) = period(from, to, now);
    report_from(store, from, to).await
}

/// The same report folded from every record, without the rollups: what they must equal (the
/// tests compare the two), and the figure the evidence bench measures them against.
pub async fn service_report_full(
    store: &dyn Store,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<ServiceReport, StoreError> {
    let (from, to) = period(from, to, now);
    let mut builder = ReportBuilder::new(from, to);
    for kind in KINDS {
        RecordPager::new(store, ListQuery::new(kind, PAGE))
            .for_each(|r| builder.add(r))
            .await?;
    }
    Ok(builder.finish())
}

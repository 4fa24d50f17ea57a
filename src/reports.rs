//! The service report read straight from the store (for the API and the CLI), a page at a time,
//! so it neither holds the records in memory nor waits on the ledger's writer.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::report::{period, ReportBuilder, ServiceReport, KINDS};
use crate::store::{ListQuery, RecordPager, Store, StoreError};

const PAGE: i64 = 1000;

/// The report for `from..=to` (defaults: the 30 days up to today).
pub async fn service_report(
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

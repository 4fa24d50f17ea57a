//! The service report read straight from the store (for the API and the CLI), a page at a time,
//! so it neither holds the records in memory nor waits on the ledger's writer.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::report::{period, ReportBuilder, ServiceReport, KINDS};
use crate::store::{ListQuery, Store, StoreError};

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
        let mut q = ListQuery::new(kind, PAGE);
        loop {
            let page = store.list(&q).await?;
            let full = page.len() as i64 == PAGE;
            for r in &page {
                builder.add(r);
            }
            q.after = page.last().map(|r| r.key());
            if !full {
                break;
            }
        }
    }
    Ok(builder.finish())
}

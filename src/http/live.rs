//! Live updates for open dashboard pages: `GET /events`, server-sent events naming the records
//! each commit changed, and `/assets/live.js`, the small script that reloads a page's content.
//!
//! One feed per process follows commits: the ledger's bus says when this process committed, and
//! `Ledger::commits_seen` when any process did (another replica, `opsledger exec`). The feed
//! then reads the audit entries added since it last looked (a commit changes no record without
//! one) and tells every open page which records changed. So a page sees every commit, whoever
//! made it, and only what is in the database. A page that cannot keep up (its connection reads
//! slower than the updates come) is told to reload whole rather than miss one.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::{stream, Stream, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::ledger::Ledger;

use super::AppState;

/// The script of every dashboard page, compiled into the binary.
pub const SCRIPT: &str = include_str!("../../assets/live.js");

/// The feed looks at the store at most this often, so a busy ledger costs one read of the
/// audit trail per interval, however many commits and pages there are.
const INTERVAL: Duration = Duration::from_millis(100);
/// An update naming more records than this says "anything" instead: each page reloads.
const MOST_NAMED: i64 = 256;
/// Updates a page may fall behind by before it is told to reload (about 3 s of a busy ledger).
const BEHIND: usize = 32;
/// A comment this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What an open page is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// These records changed.
    Records(Arc<BTreeSet<String>>),
    /// Too many records changed to name: whatever a page shows may have.
    Anything,
    /// The page fell behind and missed updates: it reloads whole. The last a stream sends.
    Reload,
}

impl Update {
    fn to_sse(&self) -> Event {
        match self {
            Update::Records(ids) => Event::default()
                .event("change")
                .data(ids.iter().cloned().collect::<Vec<_>>().join(" ")),
            Update::Anything => Event::default().event("change").data("*"),
            Update::Reload => Event::default().event("reload").data("behind"),
        }
    }
}

/// The process's feed of updates, and the signal that ends every page's stream at shutdown.
#[derive(Clone)]
pub struct Live {
    updates: broadcast::Sender<Update>,
    stopping: watch::Receiver<bool>,
}

impl Live {
    /// A feed that nothing fills and whose streams end at once: for a router built without
    /// `serve` (tests of other routes).
    pub fn off() -> Live {
        Live {
            updates: broadcast::channel(1).0,
            stopping: watch::channel(true).1,
        }
    }

    /// A page's stream: the updates from now on, ending at shutdown, or with `Reload` once the
    /// page has fallen `BEHIND` updates behind.
    pub fn subscribe(&self) -> impl Stream<Item = Update> + Send + 'static {
        updates(self.updates.subscribe(), self.stopping.clone())
    }
}

/// Starts the feed: it runs until `stopping` turns true (as `serve`'s stop does). The audit
/// trail's head is read before it returns, so every commit after that is told to open pages.
pub async fn start(ledger: Ledger, stopping: watch::Receiver<bool>) -> (Live, JoinHandle<()>) {
    let (tx, _) = broadcast::channel(BEHIND);
    let live = Live {
        updates: tx.clone(),
        stopping: stopping.clone(),
    };
    let last = match ledger.store().chain_head().await {
        Ok((head, _)) => Some(head),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit trail's head for the open dashboard pages");
            None
        }
    };
    let task = tokio::spawn(follow(ledger, tx, stopping, last));
    (live, task)
}

/// Reads what each commit changed and sends it to the open pages.
async fn follow(
    ledger: Ledger,
    tx: broadcast::Sender<Update>,
    mut stopping: watch::Receiver<bool>,
    mut last: Option<i64>,
) {
    let store = ledger.store().clone();
    let mut seen = ledger.commits_seen();
    loop {
        // Armed before the store is read, so a commit in between wakes the next wait.
        let local = ledger.committed();
        tokio::pin!(local);
        local.as_mut().enable();
        match store.chain_head().await {
            Ok((head, _)) => {
                if let Some(from) = last.filter(|&from| head > from && tx.receiver_count() > 0) {
                    match changed_since(&*store, from, head).await {
                        // Entries about no record (a role grant) change nothing a page shows.
                        Ok(Update::Records(ids)) if ids.is_empty() => {}
                        Ok(update) => {
                            // No receiver is fine: every page closed meanwhile.
                            let _ = tx.send(update);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read what changed for the open dashboard pages");
                            let _ = tx.send(Update::Anything);
                        }
                    }
                }
                last = Some(head);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit trail's head for the open dashboard pages")
            }
        }
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            _ = &mut local => {}
            changed = seen.changed() => if changed.is_err() { return },
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// The records the audit entries `from < seq <= to` name.
async fn changed_since(
    store: &dyn crate::store::Store,
    from: i64,
    to: i64,
) -> Result<Update, crate::store::StoreError> {
    if to - from > MOST_NAMED {
        return Ok(Update::Anything);
    }
    let rows = store
        .audit_in_period(from, to, ("", "~"), MOST_NAMED)
        .await?;
    let ids: BTreeSet<String> = rows.into_iter().filter_map(|r| r.record).collect();
    Ok(Update::Records(Arc::new(ids)))
}

/// One page's stream over the feed.
fn updates(
    rx: broadcast::Receiver<Update>,
    stopping: watch::Receiver<bool>,
) -> impl Stream<Item = Update> + Send + 'static {
    stream::unfold(Some((rx, stopping)), |state| async move {
        let (mut rx, mut stopping) = state?;
        let got = tokio::select! {
            biased;
            _ = stopping.wait_for(|s| *s) => return None,
            got = rx.recv() => got,
        };
        match got {
            Ok(u) => Some((u, Some((rx, stopping)))),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((Update::Reload, None)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// `GET /events`: the page's stream, as server-sent events (`change` with the records' IDs, or
/// `*`; `reload` when it fell behind).
pub async fn events(State(app): State<AppState>) -> impl IntoResponse {
    let stream = app
        .live
        .subscribe()
        .map(|u| Ok::<_, Infallible>(u.to_sse()));
    (
        // nginx buffers a response unless told not to, which would hold the events back.
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    )
}

/// `/assets/live.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(ids: &[&str]) -> Update {
        Update::Records(Arc::new(ids.iter().map(|s| s.to_string()).collect()))
    }

    #[tokio::test]
    async fn a_page_gets_each_update_in_order_and_its_stream_ends_at_shutdown() {
        let (tx, _) = broadcast::channel(BEHIND);
        let (stop, stopping) = watch::channel(false);
        let mut page = Box::pin(updates(tx.subscribe(), stopping));
        tx.send(named(&["INC-1"])).unwrap();
        tx.send(named(&["CHG-2", "INC-1"])).unwrap();
        assert_eq!(page.next().await, Some(named(&["INC-1"])));
        assert_eq!(page.next().await, Some(named(&["CHG-2", "INC-1"])));
        stop.send(true).unwrap();
        assert_eq!(page.next().await, None);
    }

    #[tokio::test]
    async fn a_page_that_falls_behind_is_told_to_reload_and_nothing_after() {
        let (tx, _) = broadcast::channel(BEHIND);
        let (_stop, stopping) = watch::channel(false);
        let mut slow = Box::pin(updates(tx.subscribe(), stopping.clone()));
        let mut keeping_up = Box::pin(updates(tx.subscribe(), stopping));
        for n in 0..=BEHIND {
            tx.send(named(&[&format!("INC-{n}")])).unwrap();
            // The other page reads each as it comes, and misses none.
            assert_eq!(keeping_up.next().await, Some(named(&[&format!("INC-{n}")])));
        }
        assert_eq!(slow.next().await, Some(Update::Reload));
        tx.send(named(&["INC-99"])).unwrap();
        assert_eq!(slow.next().await, None);
    }
}

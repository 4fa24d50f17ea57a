//! The HTTP listener: hyper connections with a header-read timeout, a cap on open connections that sheds idle ones first, and graceful shutdown.
//!
//! `axum::serve` sets no header-read timeout and accepts without bound, so clients that opened
//! connections and sent half a request head held them for ever and used up the process's file
//! descriptors: `accept` failed with "Too many open files" and `/healthz` went unanswered. This
//! accept loop drives hyper's HTTP/1 connections itself, as axum does, with three limits:
//!
//! - **Header-read timeout.** hyper closes a connection whose request head has not arrived within
//!   `OPSLEDGER_HEADER_READ_TIMEOUT`, counted from the accept or from the end of the previous
//!   response, so idle keep-alive connections are closed after it too.
//! - **Connection cap.** At most `OPSLEDGER_MAX_CONNECTIONS` are open. A connection is *waiting*
//!   from its accept, and again from the end of each response, until hyper has read a complete
//!   request head; while a request runs it is *busy*. A connection that arrives at the cap
//!   displaces the one that has been waiting longest: that one has not delivered a request head
//!   (a slow or idle client), so closing it loses no work. The newcomer is served once that
//!   socket is closed, so the cap bounds descriptors. Only when every connection is busy is
//!   the newcomer refused, at once, with a 503, rather than left in the kernel's backlog. So a
//!   flood of slow or idle connections cannot keep out a client that sends its request promptly:
//!   to be displaced, it would have to still be sending its head after `max` newer connections
//!   arrived. Busy connections are bounded by the router's 30-second request timeout.
//! - **File descriptors.** `serve` first raises the soft `RLIMIT_NOFILE` to the hard limit, and
//!   the cap defaults to that limit less a reserve for the database, the outgoing API clients
//!   and logs, so `accept` never runs out of descriptors.
//!
//! Shutdown stops accepting, closes the waiting connections at once (hyper's own graceful
//! shutdown would wait for a half-sent head until the timeout) and lets busy ones finish their
//! request (hyper-util's `GracefulShutdown`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tower::ServiceExt;

use crate::config::ConnectionLimits;
use crate::metrics::Metrics;

/// The default cap whatever the open-file limit: each connection holds buffers and a task, and
/// a chat-ops server's peers (platform webhooks, a scraper, a few browsers) need far fewer.
pub const MAX_CONNECTIONS_CEILING: usize = 4096;

/// The limits `run` enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// Raises the open-file limit, then settles the cap: the configured one, else what the
    /// open-file limit allows (at most `MAX_CONNECTIONS_CEILING`); never more than it allows.
    pub fn at_start_up(cfg: &ConnectionLimits) -> Limits {
        let fd_limit = raise_nofile_limit();
        let limits = Limits {
            header_read_timeout: cfg.header_read_timeout,
            max_connections: max_connections(cfg.max_connections, fd_limit),
        };
        tracing::info!(
            max_connections = limits.max_connections,
            header_read_timeout = %humantime::format_duration(limits.header_read_timeout),
            "connection limits"
        );
        limits
    }
}

/// Descriptors kept back from the cap for everything but inbound connections: the database
/// pool, the outgoing API clients, the listener, log files.
fn reserved_fds(fd_limit: u64) -> u64 {
    (fd_limit / 4).clamp(32, 256)
}

/// The cap: `configured` when the open-file limit allows it, else what the limit allows.
fn max_connections(configured: Option<usize>, fd_limit: Option<u64>) -> usize {
    let budget = fd_limit.map(|l| {
        usize::try_from(l.saturating_sub(reserved_fds(l)))
            .unwrap_or(usize::MAX)
            .max(1)
    });
    match (configured, budget) {
        (Some(n), Some(b)) if n > b => {
            tracing::warn!(
                configured = n,
                using = b,
                "OPSLEDGER_MAX_CONNECTIONS is more than the open-file limit (RLIMIT_NOFILE) allows"
            );
            b
        }
        (Some(n), _) => n,
        (None, Some(b)) => b.min(MAX_CONNECTIONS_CEILING),
        (None, None) => MAX_CONNECTIONS_CEILING,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so that the connection cap rather than a
/// soft limit of 1,024 bounds the connections; returns the soft limit in force afterwards.
#[cfg(unix)]
pub fn raise_nofile_limit() -> Option<u64> {
    use rlimit::Resource;
    let (soft, hard) = match Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE)");
            return None;
        }
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) if now > soft => {
            tracing::info!(
                from = soft,
                to = now,
                "raised the open-file limit (RLIMIT_NOFILE)"
            )
        }
        Ok(now) => tracing::debug!(soft = now, hard, "the open-file limit is at its hard limit"),
        Err(e) => tracing::warn!(
            error = %e,
            soft,
            hard,
            "cannot raise the open-file limit (RLIMIT_NOFILE)"
        ),
    }
    Resource::NOFILE.get().ok().map(|(soft, _)| soft)
}

/// Other platforms have no `RLIMIT_NOFILE` to raise or read.
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> Option<u64> {
    None
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then stops accepting,
/// closes waiting connections and waits for busy ones to finish their request. Handlers get the
/// peer address as `ConnectInfo<SocketAddr>`.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // As axum::serve does; with the cap below the open-file limit, EMFILE
                    // means something else in the process holds descriptors.
                    tracing::warn!(error = %e, "cannot accept a connection; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Answers are small and written whole: send them at once rather than wait to fill a
        // segment (Nagle) behind the peer's delayed acknowledgement.
        let _ = stream.set_nodelay(true);
        let (id, displaced, evicted) = match registry.admit().await {
            Admission::Admitted {
                id,
                displaced,
                evicted,
            } => (id, displaced, evicted),
            Admission::Full => {
                metrics.connection_shed("refused");
                refuse(stream);
                continue;
            }
        };
        if evicted {
            metrics.connection_shed("displaced");
        }
        let service = {
            let (registry, app) = (registry.clone(), app.clone());
            hyper::service::service_fn(move |req| {
                handle(registry.clone(), id, peer, app.clone(), req)
            })
        };
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = OpenConnection {
            registry: registry.clone(),
            id,
            metrics: metrics.clone(),
        };
        metrics.connections_open(1);
        tokio::spawn(async move {
            tokio::select! {
                done = conn => match done {
                    Ok(()) => {}
                    Err(e) if e.is_timeout() => {
                        open.metrics.connection_shed("header_timeout");
                        tracing::debug!(%peer, "closed a connection: no request head in time");
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                },
                // Dropping the connection closes the socket; it has no request in flight.
                _ = displaced => tracing::debug!(%peer, "closed a waiting connection to make room"),
            }
            drop(open);
        });
    }
    drop(listener);
    registry.close_waiting();
    graceful.shutdown().await;
}

/// Runs one request through the router, marking the connection busy until its response body
/// has been sent.
async fn handle(
    registry: Arc<Registry>,
    id: u64,
    peer: SocketAddr,
    app: Router,
    mut req: Request<Incoming>,
) -> Result<Response<Tracked>, Infallible> {
    let Some(busy) = Busy::begin(registry, id) else {
        // Displaced a moment ago, while hyper was reading this head; the socket is closing.
        let resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close"), (header::RETRY_AFTER, "1")],
            "too many connections; retry\n",
        )
            .into_response();
        return Ok(resp.map(|body| Tracked { body, _busy: None }));
    };
    // The peer address lets the dashboard admit this machine without the token.
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = match app.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    Ok(resp.map(|body| Tracked {
        body,
        _busy: Some(busy),
    }))
}

/// Refuses a connection over the cap at once. Best effort: a client that already sent its
/// request may see a reset instead, which is as clear.
fn refuse(stream: TcpStream) {
    const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 27\r\n\r\ntoo many connections; retry";
    let _ = stream.try_write(FULL);
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Held by a connection's task: leaves the registry and the open count when the task ends.
struct OpenConnection {
    registry: Arc<Registry>,
    id: u64,
    metrics: Arc<Metrics>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.registry.remove(self.id);
        self.metrics.connections_open(-1);
    }
}

/// A request in flight; dropped with the response body, once hyper has sent it.
struct Busy {
    registry: Arc<Registry>,
    id: u64,
}

impl Busy {
    fn begin(registry: Arc<Registry>, id: u64) -> Option<Busy> {
        registry.begin_request(id).then_some(Busy { registry, id })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.registry.end_request(self.id);
    }
}

/// The router's response body, holding the connection busy until hyper drops it.
struct Tracked {
    body: Body,
    _busy: Option<Busy>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // `Body` is a boxed body, so `Tracked` is `Unpin`.
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What `Registry::admit` decided for a new connection.
#[derive(Debug)]
enum Admission {
    /// Serve it; `displaced` resolves if a later connection displaces this one, and `evicted`
    /// says whether this one displaced another.
    Admitted {
        id: u64,
        displaced: oneshot::Receiver<()>,
        evicted: bool,
    },
    /// Every open connection has a request in flight.
    Full,
}

/// What `Registry::try_admit` found.
#[derive(Debug)]
enum TryAdmit {
    Admitted {
        id: u64,
        displaced: oneshot::Receiver<()>,
    },
    /// It told the connection waiting longest to close: wait for its socket to be closed.
    Displaced,
    /// A displaced connection's socket is still closing: wait for it.
    Closing,
    Full,
}

/// How long admission waits for a displaced connection's task to close its socket; it takes
/// no I/O, so only a stalled runtime takes this long, and then the newcomer is refused.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The open connections and which of them wait for a request head, oldest wait first.
///
/// Hand-written: hyper and hyper-util count no connections, and a `Semaphore` (or tower's
/// concurrency limit) can only refuse or queue the newcomer, never displace an idle connection.
#[derive(Debug)]
struct Registry {
    max: usize,
    inner: Mutex<Inner>,
    /// Signalled each time a connection's socket is closed.
    closed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Every socket still open, displaced ones included until their task has closed them, so
    /// the cap bounds file descriptors, not just connections being served.
    conns: HashMap<u64, Conn>,
    /// (connection, epoch) in the order the connections started waiting. An entry goes stale
    /// when its connection starts a request, is displaced or closes; stale entries are skipped.
    waiting: VecDeque<(u64, u64)>,
    /// Connections told to close whose socket is not closed yet.
    closing: usize,
}

#[derive(Debug)]
struct Conn {
    /// Bumped each time the connection starts waiting again, so its older entries go stale.
    epoch: u64,
    in_flight: u32,
    /// Taken when the connection is told to close (displaced, or at shutdown).
    displace: Option<oneshot::Sender<()>>,
}

impl Registry {
    fn new(max: usize) -> Registry {
        Registry {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The bookkeeping stays consistent between statements, so a panic elsewhere cannot
        // leave it half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection, displacing the one waiting longest at the cap, and only once a
    /// socket has actually been closed to make room.
    async fn admit(&self) -> Admission {
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        let mut evicted = false;
        loop {
            match self.try_admit() {
                TryAdmit::Admitted { id, displaced } => {
                    return Admission::Admitted {
                        id,
                        displaced,
                        evicted,
                    }
                }
                TryAdmit::Full => return Admission::Full,
                TryAdmit::Displaced => evicted = true,
                TryAdmit::Closing => {}
            }
            // `notify_one` keeps a permit, so a socket closed since `try_admit` is not missed.
            if tokio::time::timeout_at(deadline, self.closed.notified())
                .await
                .is_err()
            {
                return Admission::Full;
            }
        }
    }

    fn try_admit(&self) -> TryAdmit {
        let mut inner = self.lock();
        if inner.conns.len() >= self.max {
            if inner.closing > 0 {
                return TryAdmit::Closing;
            }
            return match inner.longest_waiting() {
                Some(victim) => {
                    inner.displace(victim);
                    TryAdmit::Displaced
                }
                None => TryAdmit::Full,
            };
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (displace, displaced) = oneshot::channel();
        inner.conns.insert(
            id,
            Conn {
                epoch: 0,
                in_flight: 0,
                displace: Some(displace),
            },
        );
        inner.waiting.push_back((id, 0));
        inner.compact();
        TryAdmit::Admitted { id, displaced }
    }

    /// Marks the connection busy; false when it has been told to close.
    fn begin_request(&self, id: u64) -> bool {
        match self.lock().conns.get_mut(&id) {
            Some(conn) if conn.displace.is_some() => {
                conn.in_flight += 1;
                true
            }
            _ => false,
        }
    }

    fn end_request(&self, id: u64) {
        let mut inner = self.lock();
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        conn.in_flight = conn.in_flight.saturating_sub(1);
        if conn.in_flight == 0 && conn.displace.is_some() {
            conn.epoch += 1;
            let epoch = conn.epoch;
            inner.waiting.push_back((id, epoch));
            inner.compact();
        }
    }

    /// The connection's socket is closed.
    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(conn) = inner.conns.remove(&id) {
            if conn.displace.is_none() {
                inner.closing -= 1;
            }
        }
        drop(inner);
        self.closed.notify_one();
    }

    /// At shutdown: closes every connection without a request in flight.
    fn close_waiting(&self) {
        let mut inner = self.lock();
        let idle: Vec<u64> = inner
            .conns
            .iter()
            .filter(|(_, c)| c.in_flight == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            inner.displace(id);
        }
    }
}

impl Inner {
    fn is_current(&self, (id, epoch): (u64, u64)) -> bool {
        matches!(
            self.conns.get(&id),
            Some(c) if c.in_flight == 0 && c.epoch == epoch && c.displace.is_some()
        )
    }

    fn longest_waiting(&mut self) -> Option<u64> {
        while let Some(entry) = self.waiting.pop_front() {
            if self.is_current(entry) {
                return Some(entry.0);
            }
        }
        None
    }

    /// Tells the connection's task to close it; it keeps its slot until its socket is closed.
    fn displace(&mut self, id: u64) {
        if let Some(tx) = self.conns.get_mut(&id).and_then(|c| c.displace.take()) {
            self.closing += 1;
            let _ = tx.send(());
        }
    }

    /// Long-lived keep-alive connections leave a stale entry per request: drop them once they
    /// outnumber the live ones, so the queue stays proportional to the open connections.
    fn compact(&mut self) {
        if self.waiting.len() > 2 * self.conns.len() + 64 {
            let waiting = std::mem::take(&mut self.waiting);
            self.waiting = waiting
                .into_iter()
                .filter(|e| self.is_current(*e))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: TryAdmit) -> (u64, oneshot::Receiver<()>) {
        match a {
            TryAdmit::Admitted { id, displaced } => (id, displaced),
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn at_the_cap_the_connection_waiting_longest_makes_room_once_closed() {
        // Arrange: three connections; the first served a request, so it waits since then.
        let r = Registry::new(3);
        let (a, mut a_gone) = admitted(r.try_admit());
        let (b, mut b_gone) = admitted(r.try_admit());
        let (_c, _) = admitted(r.try_admit());
        assert!(r.begin_request(a));
        r.end_request(a);

        // Act
        let first = r.try_admit();
        let again = r.try_admit();
        r.remove(b);
        let after = r.try_admit();

        // Assert: b, which has waited since its accept, is told to close, and its slot is
        // free once its socket is closed; a stays.
        assert!(matches!(first, TryAdmit::Displaced), "{first:?}");
        assert!(matches!(again, TryAdmit::Closing), "{again:?}");
        assert!(matches!(after, TryAdmit::Admitted { .. }), "{after:?}");
        assert_eq!(b_gone.try_recv(), Ok(()));
        assert!(a_gone.try_recv().is_err());
        assert!(
            !r.begin_request(b),
            "a displaced connection runs no request"
        );
    }

    #[test]
    fn when_every_connection_is_busy_the_newcomer_is_refused() {
        // Arrange
        let r = Registry::new(2);
        let (a, _) = admitted(r.try_admit());
        let (b, _) = admitted(r.try_admit());
        assert!(r.begin_request(a));
        assert!(r.begin_request(b));

        // Act
        let full = r.try_admit();
        r.end_request(b);
        let after = r.try_admit();

        // Assert: refused while both ran a request; once b is done, b makes room.
        assert!(matches!(full, TryAdmit::Full), "{full:?}");
        assert!(matches!(after, TryAdmit::Displaced), "{after:?}");
    }

    #[tokio::test]
    async fn admission_waits_for_the_displaced_socket_to_close() {
        // Arrange: a full registry whose one connection waits for a request head.
        let r = Arc::new(Registry::new(1));
        let (a, a_gone) = admitted(r.try_admit());
        let closer = tokio::spawn({
            let r = r.clone();
            async move {
                // The connection's task: closes its socket when displaced.
                let _ = a_gone.await;
                r.remove(a);
            }
        });

        // Act
        let admission = r.admit().await;
        closer.await.unwrap();

        // Assert
        assert!(matches!(
            admission,
            Admission::Admitted { evicted: true, .. }
        ));
        assert_eq!(r.lock().conns.len(), 1);
    }

    #[test]
    fn closed_connections_free_their_slot_and_stale_entries_are_compacted() {
        let r = Registry::new(4);
        let (a, _) = admitted(r.try_admit());
        for _ in 0..1000 {
            assert!(r.begin_request(a));
            r.end_request(a);
        }
        let (waiting, open) = {
            let inner = r.lock();
            (inner.waiting.len(), inner.conns.len())
        };
        assert!(
            waiting <= 2 * open + 65,
            "{waiting} entries for {open} connections"
        );
        r.remove(a);
        for _ in 0..4 {
            assert!(matches!(r.try_admit(), TryAdmit::Admitted { .. }));
        }
    }

    #[test]
    fn shutdown_closes_waiting_connections_and_keeps_busy_ones() {
        let r = Registry::new(4);
        let (a, mut a_gone) = admitted(r.try_admit());
        let (b, mut b_gone) = admitted(r.try_admit());
        assert!(r.begin_request(b));

        r.close_waiting();

        assert_eq!(a_gone.try_recv(), Ok(()));
        assert!(b_gone.try_recv().is_err());
        assert!(!r.begin_request(a));
    }

    #[test]
    fn the_default_cap_keeps_a_reserve_of_the_open_file_limit() {
        assert_eq!(max_connections(None, Some(1024)), 768);
        assert_eq!(max_connections(None, Some(256)), 192);
        assert_eq!(
            max_connections(None, Some(1 << 20)),
            MAX_CONNECTIONS_CEILING
        );
        assert_eq!(max_connections(None, None), MAX_CONNECTIONS_CEILING);
        assert_eq!(max_connections(Some(64), Some(1024)), 64);
        assert_eq!(
            max_connections(Some(5000), Some(1024)),
            768,
            "never more than the limit allows"
        );
        assert_eq!(max_connections(Some(5000), Some(1 << 20)), 5000);
    }

    #[cfg(unix)]
    #[test]
    fn start_up_raises_the_soft_open_file_limit_to_the_hard_limit() {
        // Raising only: lowering it here could starve the other tests in this process.
        let (_, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
        let soft = raise_nofile_limit().expect("the limit is readable");
        assert_eq!(soft, hard);
    }
}

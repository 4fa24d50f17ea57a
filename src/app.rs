//! Wiring: opens the store, loads the rules, starts the ledger, and runs the server or a one-off command.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Integrations, ServeArgs};
use crate::deadline_timer::DeadlineTimer;
use crate::domain::policy::Policy;
use crate::http::{self, AppState};
use crate::integrations::github::{GithubConfig, GithubDeliverer};
use crate::integrations::platform::{ChatOn, Task, CHAT_PLATFORMS};
use crate::integrations::Handlers;
use crate::ledger::{Ledger, LedgerConfig, Router, SystemTimeSource, TimeSource};
use crate::metrics::Metrics;
use crate::outbox::{Deliver, OutboxSettings, OutboxWorker};
use crate::store::{self, Store};
use secrecy::ExposeSecret;

/// Opens the store named by `OPSLEDGER_DATABASE_URL`, running migrations; errors name the variable.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::open(url).await.with_context(|| {
        let mut msg = format!("cannot open OPSLEDGER_DATABASE_URL={}", store::redact(url));
        if let Some(hint) = sqlite_dir_hint(url) {
            msg.push_str(&format!(" ({hint})"));
        }
        msg
    })?;
    Ok(Arc::from(store))
}

/// Why a SQLite file cannot be created, when its directory is the reason: SQLite itself only
/// says "unable to open database file".
fn sqlite_dir_hint(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let dir = match Path::new(path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Err(_) => Some(format!("the directory {} does not exist", dir.display())),
        Ok(m) if !m.is_dir() => Some(format!("{} is not a directory", dir.display())),
        Ok(m) if m.permissions().readonly() => {
            Some(format!("the directory {} is read-only", dir.display()))
        }
        Ok(_) => None,
    }
}

/// Loads the rules file named by `OPSLEDGER_POLICY`, or the built-in defaults.
pub fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read OPSLEDGER_POLICY={}", path.display()))?;
    crate::integrations::platform::policy_from_toml(&text).with_context(|| {
        format!(
            "OPSLEDGER_POLICY={} is not a valid rules file",
            path.display()
        )
    })
}

/// Starts the ledger's writer on a store.
pub fn start_ledger(
    store: Arc<dyn Store>,
    policy: Policy,
    time: Arc<dyn TimeSource>,
    public_url: String,
) -> (Ledger, JoinHandle<()>) {
    start_ledger_with(store, policy, time, public_url, Vec::new())
}

/// Starts the ledger with routers that turn events into outgoing messages.
pub fn start_ledger_with(
    store: Arc<dyn Store>,
    policy: Policy,
    time: Arc<dyn TimeSource>,
    public_url: String,
    routers: Vec<Arc<dyn Router>>,
) -> (Ledger, JoinHandle<()>) {
    Ledger::start(LedgerConfig {
        store,
        policy: Arc::new(policy),
        time,
        metrics: Arc::new(Metrics::default()),
        public_url,
        routers,
    })
}

/// The GitHub API client from `GITHUB_TOKEN`, or from `GITHUB_APP_ID` and
/// `GITHUB_APP_PRIVATE_KEY` (the PEM itself, or the path of a PEM file).
pub fn github_api(i: &Integrations) -> anyhow::Result<Option<opsledger_github::GithubApi>> {
    let auth = match (&i.github_token, &i.github_app_id, &i.github_app_private_key) {
        (_, Some(app_id), Some(key)) => {
            let app_id = app_id
                .trim()
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("GITHUB_APP_ID must be the App's numeric ID"))?;
            let key = key.expose_secret();
            let pem = if key.trim_start().starts_with("-----BEGIN") {
                key.to_string()
            } else {
                std::fs::read_to_string(key.trim())
                    .with_context(|| "cannot read the GITHUB_APP_PRIVATE_KEY file".to_string())?
            };
            opsledger_github::Auth::App {
                app_id,
                private_key_pem: pem,
            }
        }
        (Some(token), _, _) => opsledger_github::Auth::Token(token.expose_secret().to_string()),
        _ => return Ok(None),
    };
    opsledger_github::GithubApi::new(auth, &i.github_api_url)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("cannot set up the GitHub client: {e}"))
}

/// The GitHub settings when the webhook secret is set.
pub fn github_config(i: &Integrations, public_url: &str) -> anyhow::Result<Option<GithubConfig>> {
    let Some(secret) = &i.github_webhook_secret else {
        return Ok(None);
    };
    Ok(Some(GithubConfig {
        webhook_secret: secret.clone(),
        api: github_api(i)?.map(Arc::new),
        public_url: public_url.to_string(),
    }))
}

/// The platforms the settings turn on. Every entry point builds its routers from these, so a
/// command has the same side effects (cards, statuses, rooms) whether it came from chat, the
/// terminal or another replica.
pub struct Platforms {
    /// The chat platforms that are on, in the order of `CHAT_PLATFORMS`, with their names.
    pub chat: Vec<(&'static str, Box<dyn ChatOn>)>,
    pub github: Option<GithubConfig>,
    /// Escalation webhook pages, while their signing secret is set.
    pub webhooks: Option<crate::integrations::pages::PageWebhooks>,
}

impl Platforms {
    pub fn from_settings(i: &Integrations, public_url: &str) -> anyhow::Result<Platforms> {
        let mut chat = Vec::new();
        for p in CHAT_PLATFORMS {
            if let Some(on) = p.configure(i)? {
                chat.push((p.name(), on));
            }
        }
        let webhooks = i
            .page_webhook_secret
            .clone()
            .map(crate::integrations::pages::PageWebhooks::new)
            .transpose()?;
        Ok(Platforms {
            chat,
            github: github_config(i, public_url)?,
            webhooks,
        })
    }

    /// The routers that turn events into outbox items: the chat platforms', then GitHub's.
    pub fn routers(&self) -> Vec<Arc<dyn Router>> {
        let mut routers: Vec<Arc<dyn Router>> =
            self.chat.iter().map(|(_, on)| on.router()).collect();
        if let Some(cfg) = &self.github {
            routers.push(Arc::new(cfg.clone()));
        }
        if let Some(w) = &self.webhooks {
            routers.push(Arc::new(w.clone()));
        }
        routers
    }
}

/// How often a running outbox worker says it is alive (`Store::outbox_heartbeat`).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// A worker not heard from for this long is taken to be gone.
pub const HEARTBEAT_STALE: std::time::Duration = std::time::Duration::from_secs(15);

/// Whether some `serve` is delivering the outbox now (heard from within `HEARTBEAT_STALE`).
pub async fn outbox_worker_alive(store: &dyn Store) -> anyhow::Result<bool> {
    let since = chrono::Utc::now()
        - chrono::Duration::from_std(HEARTBEAT_STALE).unwrap_or(chrono::Duration::zero());
    let n = store
        .outbox_workers_since(&crate::domain::audit::format_time(since))
        .await
        .context("cannot read which outbox workers are running")?;
    Ok(n > 0)
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub ledger: Ledger,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    writer: JoinHandle<()>,
    /// The deadline timer, so tests can wake it after moving their time.
    pub deadline_timer: DeadlineTimer,
    outbox: OutboxWorker,
    outbox_waker: JoinHandle<()>,
    /// The commit watcher and the outbox heartbeat.
    background: Vec<JoinHandle<()>>,
    /// The chat platforms' own tasks (Slack's Socket Mode).
    platform_tasks: Vec<Box<dyn Task>>,
}

impl Running {
    /// Stops accepting requests, lets in-flight ones finish, then waits for queued writes.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Running {
            ledger,
            stop,
            server,
            writer,
            deadline_timer,
            outbox,
            outbox_waker,
            background,
            platform_tasks,
            ..
        } = self;
        for task in background {
            task.abort();
            let _ = task.await;
        }
        for task in platform_tasks {
            task.stop().await;
        }
        let _ = stop.send(true);
        server.await.context("server task panicked")?;
        deadline_timer.stop().await;
        outbox_waker.abort();
        let _ = outbox_waker.await;
        // Undelivered messages stay in the outbox for the next start.
        outbox.stop().await;
        let store = ledger.store().clone();
        drop(ledger);
        writer.await.context("ledger writer panicked")?;
        store.close().await;
        Ok(())
    }

    /// Runs until the server stops by itself (it only does on error).
    pub async fn wait_for(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        shutdown.await;
        tracing::info!("shutting down: finishing requests and queued writes");
        self.stop().await
    }
}

/// Binds and starts serving. Refuses a non-loopback address without an API token.
pub async fn serve(
    args: &ServeArgs,
    store: Arc<dyn Store>,
    policy: Policy,
    time: Arc<dyn TimeSource>,
) -> anyhow::Result<Running> {
    if !http::is_loopback(&args.bind) && args.api_token.is_none() {
        bail!(
            "refusing to listen on {} without OPSLEDGER_API_TOKEN: set a token, or bind to 127.0.0.1",
            args.bind
        );
    }
    // Before binding: the cap depends on the open-file limit this raises.
    let limits = http::server::Limits::at_start_up(&args.connections);
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on OPSLEDGER_BIND={}", args.bind))?;
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut platforms = Platforms::from_settings(&args.integrations, &public_url)?;
    for (_, on) in &mut platforms.chat {
        on.serve_settings(args, &public_url);
    }
    let routers = platforms.routers();
    let Platforms {
        chat,
        github,
        webhooks,
    } = platforms;
    // Deliverers tell the ledger of pages delivered; it starts after them (it needs the routers).
    let ledger_cell = crate::integrations::LedgerCell::default();
    let mut deliverers: Vec<Arc<dyn Deliver>> = chat
        .iter()
        .map(|(_, on)| on.deliverer(&store, &time, &ledger_cell))
        .collect();
    if let Some(mut w) = webhooks {
        w.ledger = ledger_cell.clone();
        deliverers.push(Arc::new(w));
    }
    let (ledger, writer) = start_ledger_with(
        store.clone(),
        policy,
        time.clone(),
        public_url.clone(),
        routers,
    );
    let _ = ledger_cell.set(ledger.clone());
    // GitHub's deliverer runs commands (a release's commits, a synced pull request), so it
    // needs the ledger, which needs the routers first.
    if let Some(cfg) = &github {
        if let Some(api) = cfg.api.clone() {
            deliverers.push(Arc::new(GithubDeliverer {
                config: cfg.clone(),
                api,
                ledger: ledger.clone(),
            }));
        }
    }
    let deadline_timer = DeadlineTimer::spawn(ledger.clone(), time.clone());
    let settings = outbox_settings(&args.outbox, addr);
    let instance = settings.instance.clone();
    let background = vec![
        // Commits of other processes (`exec`, another replica) wake the deadline timer and the
        // outbox worker as this process's own do.
        tokio::spawn({
            let (store, ledger) = (store.clone(), ledger.clone());
            async move {
                let wake: Arc<dyn Fn() + Send + Sync> =
                    Arc::new(move || ledger.committed_elsewhere());
                if let Err(e) = store.watch_commits(wake).await {
                    tracing::debug!(error = %e, "the commit watcher stopped");
                }
            }
        }),
        tokio::spawn({
            let store = store.clone();
            async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                loop {
                    tick.tick().await;
                    let now = crate::domain::audit::format_time(chrono::Utc::now());
                    if let Err(e) = store.outbox_heartbeat(&instance, &now).await {
                        tracing::warn!(error = %e, "cannot note that the outbox worker is alive");
                    }
                }
            }
        }),
        tokio::spawn({
            let (store, retention) = (store.clone(), args.retention.retention());
            async move {
                let mut tick = tokio::time::interval(retention.interval());
                loop {
                    tick.tick().await;
                    match crate::retention::purge(&*store, retention, chrono::Utc::now()).await {
                        Ok(p) if p.outbox + p.deliveries > 0 => tracing::info!(
                            outbox = p.outbox,
                            deliveries = p.deliveries,
                            "purged delivered outbox messages and delivery IDs past their retention"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "retention purge failed; trying again later")
                        }
                    }
                }
            }
        }),
    ];
    let outbox = OutboxWorker::start(
        store,
        deliverers,
        time,
        Some(ledger.metrics().clone()),
        settings,
    );
    // Every commit may have queued messages: tell the worker (a stored permit, so none is missed).
    let outbox_waker = tokio::spawn({
        let (ledger, waker) = (ledger.clone(), outbox.waker());
        async move {
            loop {
                ledger.committed().await;
                waker.wake();
            }
        }
    });
    let waker = Some(outbox.waker());
    let mut chat_handlers = BTreeMap::new();
    let mut platform_tasks = Vec::new();
    for (name, on) in chat {
        let started = on
            .start(ledger.clone(), waker.clone(), &args.integrations)
            .await?;
        chat_handlers.insert(name, started.handlers);
        platform_tasks.extend(started.task);
    }
    let github = github.map(|c| Handlers::new(ledger.clone(), c, waker));
    // Stopping ends the server and every open page's event stream, which would otherwise keep
    // its connection busy and the graceful shutdown waiting.
    let (stop, stopping) = watch::channel(false);
    let (live, feed) = http::live::start(ledger.clone(), stopping.clone()).await;
    let sessions = http::session::Sessions::new(
        &args.sessions,
        &public_url,
        args.api_token.clone().map(Arc::new),
        crate::integrations::slack::sign_in(&args.integrations.slack),
    )?;
    tracing::info!(
        "dashboard sign-in: {}{}",
        if sessions.slack_on() {
            "Sign in with Slack, and "
        } else {
            ""
        },
        if args.api_token.is_some() {
            "the API token"
        } else {
            "naming an account (loopback only, no token)"
        }
    );
    if args.sessions.session_secret.is_none() {
        tracing::info!("OPSLEDGER_SESSION_SECRET is not set: dashboard sessions end when this process does and hold on this replica only");
    }
    let mut background = background;
    background.push(feed);
    let state = AppState {
        ledger: ledger.clone(),
        api_token: args.api_token.clone().map(Arc::new),
        chat: Arc::new(chat_handlers),
        github,
        alerts: args.integrations.alerts_token.clone().map(|token| {
            crate::integrations::alerts::AlertsConfig {
                token: Arc::new(token),
            }
        }),
        live,
        sessions,
    };
    let mut stopped = stopping;
    let app = http::router(state);
    let server = tokio::spawn(http::server::run(
        listener,
        app,
        limits,
        ledger.metrics().clone(),
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    Ok(Running {
        addr,
        ledger,
        stop,
        server,
        writer,
        deadline_timer,
        outbox,
        outbox_waker,
        background,
        platform_tasks,
    })
}

/// The outbox worker's settings for `serve`: the park bounds, and the instance name
/// (`OPSLEDGER_INSTANCE`, else this host's name and the address it listens on, which stay the
/// same across restarts of one deployment and differ between replicas).
pub fn outbox_settings(args: &crate::config::OutboxArgs, addr: SocketAddr) -> OutboxSettings {
    let instance = args
        .instance
        .clone()
        .filter(|i| !i.trim().is_empty())
        .unwrap_or_else(|| format!("{}/{addr}", hostname()));
    OutboxSettings {
        park_after: args.park_after,
        park_attempts: args.park_attempts,
        instance,
        ..OutboxSettings::default()
    }
}

/// This machine's name, as the kernel has it (`localhost` when it cannot be read).
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The result of `audit verify`.
#[derive(Debug)]
pub struct VerifyReport {
    pub entries: u64,
    pub last_hash: String,
}

/// Streams the whole audit trail through the chain check, a page at a time.
pub async fn verify_audit(
    store: &dyn Store,
) -> anyhow::Result<Result<VerifyReport, crate::domain::audit::ChainError>> {
    // The head is read first: verify checks the chain up to it (entries committed meanwhile
    // extend past it) and that no entry before it is missing.
    let (head_seq, head_hash) = store
        .chain_head()
        .await
        .context("cannot read the audit chain head")?;
    let (entries, verdict) = verify_audit_upto(store, head_seq, &head_hash).await?;
    Ok(verdict.map(|last_hash| VerifyReport { entries, last_hash }))
}

/// Verifies the chain up to the head `(head_seq, head_hash)`: the entries that verified before
/// any fault, and the last hash or the first fault. Entries are never changed once written, so
/// ranges read at different moments make one consistent trail; they are checked in parallel,
/// each on its own connection, and joined in order.
pub async fn verify_audit_upto(
    store: &dyn Store,
    head_seq: i64,
    head_hash: &str,
) -> anyhow::Result<(u64, Result<String, crate::domain::audit::ChainError>)> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut checks = futures_util::stream::iter(audit_ranges(head_seq, VERIFY_RANGE))
        .map(|(from, to)| store.audit_check(from, to))
        .buffered(audit_readers());
    let mut segments = Vec::new();
    while let Some(seg) = checks
        .try_next()
        .await
        .context("cannot read the audit trail")?
    {
        // The first fault decides; the ranges after it need not be read.
        let faulty = seg.fault.is_some();
        segments.push(seg);
        if faulty {
            break;
        }
    }
    Ok(crate::domain::audit::join(segments, head_seq, head_hash))
}

/// Audit entries per range a verify reads as one query.
const VERIFY_RANGE: i64 = 100_000;

/// How many ranges of the audit trail are read at once: one reader a core (at least 2, so a
/// reader waiting on the disk leaves the other working; at most 8 connections).
pub(crate) fn audit_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// `1..=head_seq` cut into consecutive ranges of `size` entries, `(from, to)` inclusive.
pub(crate) fn audit_ranges(head_seq: i64, size: i64) -> impl Iterator<Item = (i64, i64)> {
    (1..=head_seq.max(0))
        .step_by(usize::try_from(size.max(1)).unwrap_or(1))
        .map(move |from| (from, (from + size - 1).min(head_seq)))
}

/// What `opsledger backup` did.
#[derive(Debug)]
pub enum Backup {
    /// The copy was written and its audit chain verifies.
    Verified(VerifyReport),
    /// The copy was written, but its audit chain is broken (so is the store's).
    Broken(crate::domain::audit::ChainError),
    /// PostgreSQL: opsledger does not copy it; this says how to, with PostgreSQL's own tools.
    UsePgDump(String),
}

/// `opsledger backup --out FILE`: a consistent copy of a SQLite store (safe while `serve`
/// writes to it), whose audit chain is then verified from the copy itself.
pub async fn backup(url: &str, out: &Path) -> anyhow::Result<Backup> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backup::UsePgDump(pg_dump_help(url, out)));
    }
    if !url.starts_with("sqlite:") {
        // The same message as every other command gives for a URL it does not know.
        open_store(url).await?;
    }
    if out.exists() {
        anyhow::bail!(
            "{} already exists: a backup never overwrites a file; choose a new name",
            out.display()
        );
    }
    let source = store::SqliteStore::open_existing(url)
        .await
        .with_context(|| format!("cannot open OPSLEDGER_DATABASE_URL={}", store::redact(url)))?;
    let copied = source.backup_into(out).await;
    source.close().await;
    copied.with_context(|| format!("cannot write the backup to {}", out.display()))?;
    let copy_url = format!("sqlite://{}", out.display());
    let copy = store::SqliteStore::open_existing(&copy_url)
        .await
        .with_context(|| format!("cannot open the backup {}", out.display()))?;
    let verified = verify_audit(&copy).await;
    copy.close().await;
    Ok(match verified? {
        Ok(report) => Backup::Verified(report),
        Err(broken) => Backup::Broken(broken),
    })
}

fn pg_dump_help(url: &str, out: &Path) -> String {
    let url = store::redact(url);
    let file = out.display();
    format!(
        "opsledger backup copies SQLite stores; back up PostgreSQL with its own tools, which \
         take a consistent snapshot while serve runs:\n\n  \
         pg_dump --format=custom --file {file} '{url}'\n\n\
         To check a backup, restore it into a new database and verify its audit chain there:\n\n  \
         createdb opsledger_restore\n  \
         pg_restore --no-owner --dbname opsledger_restore {file}\n  \
         OPSLEDGER_DATABASE_URL=postgres://HOST/opsledger_restore opsledger audit verify\n"
    )
}

/// The system's time, shared.
pub fn system_time_source() -> Arc<dyn TimeSource> {
    Arc::new(SystemTimeSource)
}

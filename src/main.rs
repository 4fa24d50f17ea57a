//! The `opsledger` binary: parses the command line and runs serve, exec, migrate, audit verify or policy check/show.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use opsledger::app;
use opsledger::config::{
    AuditCommand, Cli, CliCommand, DiscordCommand, ExecArgs, ExportArgs, OutboxCommand,
    PolicyCommand, ReportArgs, StoreArgs,
};
use opsledger::domain::ids::Actor;
use opsledger::domain::policy::Policy;
use opsledger::domain::reply::Outcome;
use opsledger::ledger::Ledger;
use opsledger::store::Store;

// mimalloc: the write path allocates many short-lived strings (JSON, bind values); glibc's
// allocator spent a fifth of the benchmark's CPU in malloc and free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth saying.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("warning: .env not read: {e}");
        }
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files or journald.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (database errors repeat their source inside their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        // The rules commands read at most the rules file: they neither open nor create the database.
        CliCommand::Policy { command } => Ok(policy(command, cli.store.policy.as_deref())),
        CliCommand::Migrate => {
            // Opening the store applied any pending migrations.
            let (_, store) = open(&cli.store).await?;
            store.close().await;
            println!(
                "migrations applied to {}",
                opsledger::store::redact(&cli.store.database_url)
            );
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Audit {
            command: AuditCommand::Verify,
        } => {
            let (_, store) = open(&cli.store).await?;
            let verified = app::verify_audit(&*store).await;
            store.close().await;
            match verified? {
                Ok(report) => {
                    println!(
                        "audit chain verified: {} entries, last hash {}",
                        report.entries, report.last_hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(broken) => {
                    println!("audit chain BROKEN: {broken}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CliCommand::Backup { out } => match app::backup(&cli.store.database_url, &out).await? {
            app::Backup::Verified(report) => {
                println!(
                    "backup written to {}; its audit chain verified: {} entries, last hash {}",
                    out.display(),
                    report.entries,
                    report.last_hash
                );
                Ok(ExitCode::SUCCESS)
            }
            app::Backup::Broken(broken) => {
                println!(
                    "backup written to {}, but its audit chain is BROKEN: {broken}",
                    out.display()
                );
                Ok(ExitCode::FAILURE)
            }
            app::Backup::UsePgDump(help) => {
                eprint!("{help}");
                Ok(ExitCode::FAILURE)
            }
        },
        CliCommand::Exec(args) => {
            let (policy, store) = open(&cli.store).await?;
            exec(*args, store, policy).await
        }
        // Registration talks to Discord only: it neither opens nor creates the database.
        CliCommand::Discord {
            command:
                DiscordCommand::Register {
                    guild,
                    integrations,
                },
        } => {
            let Some(api) = opsledger::integrations::discord::api(&integrations)? else {
                anyhow::bail!(
                    "discord register needs DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID"
                );
            };
            let specs = opsledger::integrations::discord_commands::command_specs();
            let names = api
                .register_commands(guild.as_deref(), &specs)
                .await
                .context("cannot register the Discord commands")?;
            let scope = match &guild {
                Some(g) => format!("in server {g}"),
                None => "globally (they can take up to an hour to appear)".to_string(),
            };
            println!(
                "registered {} commands {scope}: /{}",
                names.len(),
                names.join(", /")
            );
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Export(args) => {
            let (_, store) = open(&cli.store).await?;
            let done = export(&args, &*store).await;
            store.close().await;
            done
        }
        CliCommand::Report(args) => {
            let (_, store) = open(&cli.store).await?;
            let report = report(&args, &*store).await;
            store.close().await;
            println!("{}", report?);
            Ok(ExitCode::SUCCESS)
        }
        CliCommand::Outbox { command } => {
            let (policy, store) = open(&cli.store).await?;
            let done = outbox(command, store.clone(), policy).await;
            store.close().await;
            done
        }
        CliCommand::Serve(args) => {
            let (policy, store) = open(&cli.store).await?;
            let running = app::serve(&args, store, policy, app::system_time_source()).await?;
            tracing::info!(addr = %running.addr, backend = ?running.ledger.store().backend(), "opsledger listening");
            for line in args.integrations.status_lines() {
                tracing::info!("{line}");
            }
            running.wait_for(app::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What every command that touches records needs: the rules (read first, so a broken rules file
/// is reported before any database is created) and the store, migrated.
async fn open(args: &StoreArgs) -> anyhow::Result<(Policy, Arc<dyn Store>)> {
    let policy = app::load_policy(args.policy.as_deref())?;
    let store = app::open_store(&args.database_url).await?;
    Ok((policy, store))
}

/// `policy check FILE` and `policy show`; exit 0 when the rules are usable, 1 when not.
fn policy(command: PolicyCommand, in_force: Option<&Path>) -> ExitCode {
    match command {
        PolicyCommand::Check { file } => {
            let name = file.display();
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("{name}: cannot be read: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match opsledger::integrations::platform::policy_from_toml(&text) {
                Ok(policy) => {
                    println!("{name}: ok");
                    println!("{}", policy.summary());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        PolicyCommand::Show => match app::load_policy(in_force) {
            Ok(policy) => {
                let source = match in_force {
                    // A comment ends at the line's end, so a path cannot break out of it.
                    Some(path) => {
                        format!("OPSLEDGER_POLICY={}", path.display()).replace(['\n', '\r'], " ")
                    }
                    None => "the built-in defaults (OPSLEDGER_POLICY is unset)".to_string(),
                };
                println!("# The process rules in force, from {source}.");
                print!("{}", policy.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", describe(&e));
                ExitCode::FAILURE
            }
        },
    }
}

/// Exit codes: 0 every command succeeded, 1 a rule refused one or a record was missing,
/// 2 a usage error, 3 the store failed.
async fn exec(args: ExecArgs, store: Arc<dyn Store>, policy: Policy) -> anyhow::Result<ExitCode> {
    let actor = opsledger::integrations::platform::parse_person(&args.actor)
        .context("--as must be platform:id, for example console:alice")?;
    // The same routers as `serve`: their messages are written with each command, and a
    // running `serve` (woken by the commit) delivers them.
    let routers = app::Platforms::from_settings(&args.integrations, &args.public_url)?.routers();
    let (ledger, writer) = app::start_ledger_with(
        store.clone(),
        policy,
        app::system_time_source(),
        args.public_url.clone(),
        routers.clone(),
    );
    let mut run = Run {
        ledger: &ledger,
        actor: &actor,
        routers: &routers,
        worst: 0,
        queued: 0,
    };
    if args.text.len() == 1 && args.text[0] == "-" {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("reading commands from stdin, one per line (Ctrl-D to end)");
        }
        // Lines as bytes: one that is not UTF-8 is a usage error of its own, not the end of
        // the input, so the lines after it still run.
        for (n, line) in stdin.lock().split(b'\n').enumerate() {
            let line = line.context("cannot read stdin")?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            match opsledger::domain::text::utf8(line) {
                Ok(line) if line.trim().is_empty() || line.trim_start().starts_with('#') => {}
                Ok(line) => run.one(line).await,
                Err(e) => {
                    eprintln!("line {}: {e}", n + 1);
                    run.worst = run.worst.max(2);
                }
            }
        }
    } else {
        run.one(&args.text.join(" ")).await;
    }
    let (worst, queued) = (run.worst, run.queued);
    drop(ledger);
    writer.await.context("ledger writer panicked")?;
    if queued > 0 && !app::outbox_worker_alive(&*store).await.unwrap_or(false) {
        eprintln!(
            "queued {queued} message(s) for chat or GitHub; no opsledger serve is running to deliver them, so they wait in the outbox until one starts"
        );
    }
    store.close().await;
    Ok(ExitCode::from(worst))
}

/// One `exec` run: the worst exit code so far and how many messages the commands queued.
struct Run<'a> {
    ledger: &'a Ledger,
    actor: &'a Actor,
    routers: &'a [Arc<dyn opsledger::ledger::Router>],
    worst: u8,
    queued: usize,
}

impl Run<'_> {
    async fn one(&mut self, text: &str) {
        let handled = self.ledger.handle_text(self.actor.clone(), text).await;
        // Routing is pure: the same routers, asked again, say what the writer queued.
        self.queued += handled
            .events
            .iter()
            .flat_map(|e| self.routers.iter().map(move |r| r.route(e).len()))
            .sum::<usize>();
        self.worst = self.worst.max(print_reply(&handled.reply));
    }
}

/// Prints a reply (to stderr when it is not a success); returns its exit code.
fn print_reply(reply: &opsledger::domain::reply::Reply) -> u8 {
    let code = match reply.outcome {
        Outcome::Ok | Outcome::Duplicate => 0,
        Outcome::Refused { .. } | Outcome::NotFound => 1,
        Outcome::Usage => 2,
        Outcome::Failed => 3,
    };
    if code == 0 {
        println!("{}", reply.to_plain_text());
    } else {
        eprintln!("{}", reply.to_plain_text());
    }
    code
}

/// `outbox list|retry ID|drop ID`. `list` and `retry` act on the store directly (a running
/// `serve` sees the retry's commit and sends the message at once); `drop` is a command through the ledger,
/// so it needs the admin role and leaves an audit entry. Exit 1 when the item is missing or in
/// the wrong state (or a rule refused), 3 when the store failed.
async fn outbox(
    command: OutboxCommand,
    store: Arc<dyn Store>,
    policy: Policy,
) -> anyhow::Result<ExitCode> {
    let now = opsledger::domain::audit::format_time(chrono::Utc::now());
    match command {
        OutboxCommand::List => {
            let items = store
                .outbox_stuck(10_000)
                .await
                .context("cannot read the outbox")?;
            if items.is_empty() {
                println!("no parked or failed messages");
                return Ok(ExitCode::SUCCESS);
            }
            println!("ID\tSTATE\tPLATFORM\tCHANNEL\tOP\tRECORD\tATTEMPTS\tSINCE\tLAST ERROR");
            for e in items {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    e.id,
                    e.state.as_str(),
                    e.platform,
                    e.channel,
                    e.op,
                    e.record.as_deref().unwrap_or("-"),
                    e.attempts,
                    e.since.as_deref().unwrap_or("-"),
                    e.last_error
                        .as_deref()
                        .unwrap_or("-")
                        .replace(['\n', '\t'], " ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Retry { id } => {
            let Some(entry) = store
                .outbox_entry(id)
                .await
                .context("cannot read the outbox")?
            else {
                eprintln!("no outbox item {id}");
                return Ok(ExitCode::from(1));
            };
            if store
                .outbox_requeue(id, &now)
                .await
                .context("cannot update the outbox")?
            {
                println!(
                    "outbox item {id} ({} {} to {}) is pending again and due now; a running serve sends it at once",
                    entry.platform, entry.op, entry.channel
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "outbox item {id} is {}; only parked or failed items can be retried",
                    entry.state.as_str()
                );
                Ok(ExitCode::from(1))
            }
        }
        OutboxCommand::Drop { id, actor } => {
            let actor = opsledger::integrations::platform::parse_person(&actor)
                .context("--as must be platform:id, for example console:alice")?;
            let (ledger, writer) = app::start_ledger(
                store,
                policy,
                app::system_time_source(),
                "http://127.0.0.1:8080".to_string(),
            );
            let handled = ledger
                .handle(
                    actor,
                    opsledger::domain::command::Command::OutboxDrop { id },
                )
                .await;
            drop(ledger);
            writer.await.context("ledger writer panicked")?;
            // The same exit codes and output as `exec`.
            Ok(ExitCode::from(print_reply(&handled.reply)))
        }
    }
}

/// The report as text or JSON.
async fn report(args: &ReportArgs, store: &dyn Store) -> anyhow::Result<String> {
    if let (Some(f), Some(t)) = (args.from, args.to) {
        anyhow::ensure!(f <= t, "--from {f} is after --to {t}");
    }
    let report = opsledger::reports::service_report(store, args.from, args.to, chrono::Utc::now())
        .await
        .context("cannot read the records")?;
    Ok(if args.json {
        serde_json::to_string_pretty(&report).context("cannot write the report as JSON")?
    } else {
        report.to_text()
    })
}

/// Writes the evidence pack; exits 1 when the audit chain does not verify (the pack says why).
async fn export(args: &ExportArgs, store: &dyn Store) -> anyhow::Result<ExitCode> {
    let s = opsledger::export::export(
        store,
        args.from,
        args.to,
        &args.out,
        chrono::Utc::now(),
        std::io::stderr().is_terminal(),
    )
    .await?;
    let records: u64 = s.clause_records.iter().map(|(_, n)| n).sum();
    println!(
        "wrote the evidence pack to {}: {records} records under {} clauses, {} audit entries of the period; audit chain ({} entries): {}",
        args.out.display(),
        s.clause_records.len(),
        s.timeline_entries,
        s.audit_entries,
        s.verify
    );
    Ok(if s.verify == "verified" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

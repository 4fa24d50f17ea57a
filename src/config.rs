//! Configuration: one clap struct that reads flags and the environment (a `.env` file is read first when present).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(
    name = "opsledger",
    version,
    about = "Incident, change and release control in chat, with auditor-ready ISO/IEC 20000 records"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "OPSLEDGER_DATABASE_URL",
        default_value = "sqlite://opsledger.db",
        global = true
    )]
    pub database_url: String,
    /// Process-rules file (TOML); the built-in defaults apply when unset.
    #[arg(long, env = "OPSLEDGER_POLICY", global = true)]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the HTTP server: Slack and Discord endpoints, the read API, health and metrics.
    // Boxed: the platform settings make it far larger than the other variants.
    Serve(Box<ServeArgs>),
    /// Run one command (or, with `-`, one per line from stdin) and print the reply.
    // Boxed like `Serve`: it carries the same platform settings.
    Exec(Box<ExecArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the service report for a period, by service (ISO/IEC 20000-1 9.1).
    Report(ReportArgs),
    /// Write the ISO/IEC 20000 evidence pack for a period into a directory.
    Export(ExportArgs),
    /// Copy a SQLite store to a new file while `serve` runs, then verify the copy's audit
    /// chain. (For PostgreSQL it prints how to back up with pg_dump and check the restore.)
    Backup {
        /// The file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Discord set-up: register the slash commands with Discord.
    Discord {
        #[command(subcommand)]
        command: DiscordCommand,
    },
    /// Check a process-rules file, or show the rules in force; neither touches the database.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Outgoing messages that were not delivered: list them, retry one, or drop one.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List parked and failed messages: id, platform, channel, op, record, attempts, last error.
    List,
    /// Make a parked or failed message pending and due now; a running `serve` sends it on its
    /// next pass (within 30 s).
    Retry {
        /// The message's id, as `outbox list` shows it.
        id: i64,
    },
    /// Mark a parked or failed message dropped: it stays in the outbox, marked, and the audit
    /// trail records who dropped it. Needs the admin role.
    Drop {
        /// The message's id, as `outbox list` shows it.
        id: i64,
        /// Who drops it, as platform:id (for example console:alice).
        #[arg(
            long = "as",
            value_name = "ACTOR",
            default_value = "console:operator",
            value_parser = valid_actor
        )]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a rules file: prints `FILE: ok` and a summary, or `FILE: <key> <problem>` on stderr and exits 1.
    Check {
        /// The rules file (TOML) to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the rules in force (OPSLEDGER_POLICY, or the built-in defaults) as a rules file.
    Show,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// First day of the period (UTC), such as 2026-11-01; default 29 days before --to.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<chrono::NaiveDate>,
    /// Last day of the period (UTC), included; default today.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<chrono::NaiveDate>,
    /// Print JSON (the same document as GET /api/v1/reports) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// First day of the period (UTC), such as 2026-11-01; default 29 days before --to.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<chrono::NaiveDate>,
    /// Last day of the period (UTC), included; default today.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<chrono::NaiveDate>,
    /// The directory to write (created if missing; it must be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// Register (replace) the slash commands /ops, /incident, /change and /release; needs
    /// DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID.
    Register {
        /// Register in this server only, where they appear at once (global commands can take
        /// up to an hour to show).
        #[arg(long, value_name = "ID")]
        guild: Option<String>,
        #[command(flatten)]
        integrations: Box<Integrations>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole SHA-256 chain and name the first broken entry.
    Verify,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Who runs the command, as platform:id (for example console:alice).
    #[arg(
        long = "as",
        value_name = "ACTOR",
        default_value = "console:operator",
        value_parser = valid_actor
    )]
    pub actor: String,
    /// The command text, for example "incident raise Checkout down impact:high"; `-` reads stdin.
    #[arg(required = true, num_args = 1.., value_name = "COMMAND")]
    pub text: Vec<String>,
    /// Base URL used in links in replies.
    #[arg(
        long,
        env = "OPSLEDGER_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    /// The same platform settings as `serve`: a command typed here queues the same cards,
    /// statuses and rooms, which a running `serve` delivers.
    #[command(flatten)]
    pub integrations: Integrations,
}

/// Checks `--as` while parsing, so a bad actor is a usage error (exit 2) like any other.
fn valid_actor(s: &str) -> Result<String, String> {
    crate::integrations::platform::parse_person(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{e}; for example console:alice"))
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP listen address.
    #[arg(long, env = "OPSLEDGER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Bearer token for /api/v1 and the dashboard; required on a non-loopback address.
    #[arg(long, env = "OPSLEDGER_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,
    /// Base URL for links posted to chat and GitHub (default http://<bind>).
    #[arg(long, env = "OPSLEDGER_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub integrations: Integrations,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub connections: ConnectionLimits,
    #[command(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    pub sessions: SessionArgs,
    /// How long a Discord command may run before its answer is deferred; tests shorten it.
    #[arg(skip)]
    pub discord_defer_after: Option<std::time::Duration>,
}

/// Dashboard sign-in sessions: signed cookies naming the person.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Key that signs session cookies (at least 32 characters). Set it, the same on every
    /// replica, for sessions that last across restarts and replicas; unset, each start picks a
    /// random one.
    #[arg(long, env = "OPSLEDGER_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<SecretString>,
    /// How long a dashboard sign-in lasts (e.g. 12h, 7d).
    #[arg(
        long,
        env = "OPSLEDGER_SESSION_LIFETIME",
        default_value = "12h",
        value_parser = humantime::parse_duration
    )]
    pub session_lifetime: std::time::Duration,
}

impl Default for SessionArgs {
    fn default() -> Self {
        SessionArgs {
            session_secret: None,
            session_lifetime: std::time::Duration::from_secs(12 * 3600),
        }
    }
}

/// How the outbox bounds a message that keeps failing, and who this process is when it claims one.
#[derive(Debug, Clone, Args)]
pub struct OutboxArgs {
    /// Park a message whose delivery has kept failing for this long (e.g. 15m, 90s), so the
    /// rest of its channel moves on.
    #[arg(
        long = "outbox-park-after",
        env = "OPSLEDGER_OUTBOX_PARK_AFTER",
        default_value = "15m",
        value_parser = humantime::parse_duration
    )]
    pub park_after: std::time::Duration,
    /// ... or after this many failed attempts, whichever comes first (0: no bound on attempts).
    #[arg(
        long = "outbox-park-attempts",
        env = "OPSLEDGER_OUTBOX_PARK_ATTEMPTS",
        default_value_t = crate::outbox::DEFAULT_PARK_ATTEMPTS
    )]
    pub park_attempts: u32,
    /// This process's name in outbox claims: the same across restarts, different for every
    /// replica (default: hostname/bind address).
    #[arg(long, env = "OPSLEDGER_INSTANCE")]
    pub instance: Option<String>,
}

impl Default for OutboxArgs {
    fn default() -> Self {
        OutboxArgs {
            park_after: crate::outbox::DEFAULT_PARK_AFTER,
            park_attempts: crate::outbox::DEFAULT_PARK_ATTEMPTS,
            instance: None,
        }
    }
}

/// How long what only the traffic makes is kept (see `crate::retention`). Records and audit
/// entries are never purged.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Delivered outbox messages older than this are deleted (e.g. 30d, 12h).
    #[arg(
        long = "outbox-retention",
        env = "OPSLEDGER_OUTBOX_RETENTION",
        default_value = "30d",
        value_parser = positive_duration
    )]
    pub outbox: std::time::Duration,
    /// Inbound delivery IDs (Slack retries, GitHub redeliveries) older than this are forgotten;
    /// at least 3d, GitHub's redelivery window.
    #[arg(
        long = "delivery-retention",
        env = "OPSLEDGER_DELIVERY_RETENTION",
        default_value = "7d",
        value_parser = delivery_retention
    )]
    pub deliveries: std::time::Duration,
}

impl Default for RetentionArgs {
    fn default() -> Self {
        let r = crate::retention::Retention::default();
        RetentionArgs {
            outbox: r.outbox,
            deliveries: r.deliveries,
        }
    }
}

impl RetentionArgs {
    pub fn retention(&self) -> crate::retention::Retention {
        crate::retention::Retention {
            outbox: self.outbox,
            deliveries: self.deliveries,
        }
    }
}

fn delivery_retention(s: &str) -> Result<std::time::Duration, String> {
    let d = positive_duration(s)?;
    if d < crate::retention::MIN_DELIVERIES {
        return Err(
            "must be at least 3d: GitHub lets a webhook be redelivered for 3 days, and a \
             forgotten delivery ID would let it act twice"
                .into(),
        );
    }
    Ok(d)
}

/// What keeps slow or idle clients from using up the server's connections (see
/// `http::server`).
#[derive(Debug, Clone, Args)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers, and how long an idle keep-alive
    /// connection is kept, before the connection is closed (for example 10s).
    #[arg(
        long,
        env = "OPSLEDGER_HEADER_READ_TIMEOUT",
        default_value = "10s",
        value_parser = positive_duration
    )]
    pub header_read_timeout: std::time::Duration,
    /// Most connections open at once; when full, a new one displaces the connection that has
    /// waited longest for a request. Default: the open-file limit less a reserve, at most 4096.
    #[arg(long, env = "OPSLEDGER_MAX_CONNECTIONS", value_parser = positive_count)]
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    /// The same as clap's defaults, for code that builds `ServeArgs` by hand.
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: None,
        }
    }
}

fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}; for example 10s")),
    }
}

fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("must be a whole number, for example 1000".into()),
    }
}

/// The platform settings. The adapters read them; `serve` reports which are on and why.
#[derive(Debug, Clone, Default, Args)]
pub struct Integrations {
    // One flattened struct per chat platform, defined in its glue file.
    #[command(flatten)]
    pub slack: crate::integrations::slack::SlackSettings,
    #[command(flatten)]
    pub discord: crate::integrations::discord::DiscordSettings,
    #[command(flatten)]
    pub mattermost: crate::integrations::mattermost::MattermostSettings,
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<SecretString>,
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<SecretString>,
    #[arg(long, env = "GITHUB_APP_ID")]
    pub github_app_id: Option<String>,
    #[arg(long, env = "GITHUB_APP_PRIVATE_KEY", hide_env_values = true)]
    pub github_app_private_key: Option<SecretString>,
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// Token Alertmanager and Grafana send (bearer, or basic auth password) to /alerts/...;
    /// the alert endpoints answer 404 while it is unset.
    #[arg(long, env = "OPSLEDGER_ALERTS_TOKEN", hide_env_values = true)]
    pub alerts_token: Option<SecretString>,
    /// Signs escalation chains' webhook pages (`X-Opsledger-Signature`); without it they are
    /// recorded but not sent.
    #[arg(long, env = "OPSLEDGER_PAGE_WEBHOOK_SECRET", hide_env_values = true)]
    pub page_webhook_secret: Option<SecretString>,
}

impl Integrations {
    /// One line per integration: on or off, and why (each chat platform's from its glue file).
    pub fn status_lines(&self) -> Vec<String> {
        use crate::integrations::platform::{off_line, CHAT_PLATFORMS};
        let mut lines: Vec<String> = CHAT_PLATFORMS.iter().map(|p| p.status_line(self)).collect();
        let github = if self.github_webhook_secret.is_some() {
            let api = match (
                &self.github_token,
                &self.github_app_id,
                &self.github_app_private_key,
            ) {
                (_, Some(id), Some(_)) => format!("API {} as GitHub App {id}", self.github_api_url),
                (Some(_), _, _) => format!("API {} with GITHUB_TOKEN", self.github_api_url),
                _ => "no API credentials (GITHUB_TOKEN or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY unset): deliveries are recorded, nothing is sent to GitHub".to_string(),
            };
            format!("github: on (webhook /github/webhook; {api})")
        } else {
            off_line(
                "github",
                &[(
                    "GITHUB_WEBHOOK_SECRET",
                    self.github_webhook_secret.is_some(),
                )],
            )
        };
        lines.push(github);
        lines.push(if self.alerts_token.is_some() {
            "alerts: on (POST /alerts/alertmanager and /alerts/grafana)".to_string()
        } else {
            off_line("alerts", &[("OPSLEDGER_ALERTS_TOKEN", false)])
        });
        lines.push(if self.page_webhook_secret.is_some() {
            "page webhooks: on (escalation webhook steps are POSTed, signed)".to_string()
        } else {
            off_line("page webhooks", &[("OPSLEDGER_PAGE_WEBHOOK_SECRET", false)])
        });
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::discord::DiscordSettings;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn policy_check_takes_a_file_and_policy_show_takes_nothing() {
        // Arrange
        let check = ["opsledger", "policy", "check", "rules.toml"];
        let show = ["opsledger", "policy", "show"];

        // Act
        let check = Cli::try_parse_from(check).expect("policy check parses");
        let show = Cli::try_parse_from(show).expect("policy show parses");
        let missing = Cli::try_parse_from(["opsledger", "policy", "check"]);

        // Assert
        assert!(matches!(
            check.command,
            CliCommand::Policy {
                command: PolicyCommand::Check { ref file }
            } if file == &PathBuf::from("rules.toml")
        ));
        assert!(matches!(
            show.command,
            CliCommand::Policy {
                command: PolicyCommand::Show
            }
        ));
        assert!(missing.is_err());
    }

    #[test]
    fn outbox_commands_and_park_bounds_parse() {
        let list = Cli::try_parse_from(["opsledger", "outbox", "list"]).expect("list");
        let drop = Cli::try_parse_from(["opsledger", "outbox", "drop", "7", "--as", "console:ann"])
            .expect("drop");
        let serve = Cli::try_parse_from([
            "opsledger",
            "serve",
            "--outbox-park-after",
            "90s",
            "--outbox-park-attempts",
            "3",
        ])
        .expect("serve");
        assert!(matches!(
            list.command,
            CliCommand::Outbox {
                command: OutboxCommand::List
            }
        ));
        assert!(matches!(
            drop.command,
            CliCommand::Outbox {
                command: OutboxCommand::Drop { id: 7, ref actor }
            } if actor == "console:ann"
        ));
        let CliCommand::Serve(args) = serve.command else {
            panic!("serve expected");
        };
        assert_eq!(args.outbox.park_after, std::time::Duration::from_secs(90));
        assert_eq!(args.outbox.park_attempts, 3);
        assert!(Cli::try_parse_from(["opsledger", "outbox", "retry", "x"]).is_err());
    }

    #[test]
    fn connection_limits_default_to_10s_and_the_open_file_limit_and_refuse_zero() {
        let serve = |extra: &[&str]| {
            let mut argv = vec!["opsledger", "serve"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                CliCommand::Serve(args) => args.connections,
                _ => unreachable!("serve parses as serve"),
            })
        };

        let defaults = serve(&[]).expect("defaults");
        let set = serve(&["--header-read-timeout", "2s", "--max-connections", "64"]).expect("set");

        assert_eq!(
            defaults.header_read_timeout,
            ConnectionLimits::default().header_read_timeout
        );
        assert_eq!(defaults.max_connections, None);
        assert_eq!(set.header_read_timeout, std::time::Duration::from_secs(2));
        assert_eq!(set.max_connections, Some(64));
        assert!(serve(&["--max-connections", "0"]).is_err());
        assert!(serve(&["--header-read-timeout", "0s"]).is_err());
    }

    #[test]
    fn unset_integrations_say_which_variable_is_missing() {
        let lines = Integrations::default().status_lines();
        assert_eq!(
            lines[0],
            "slack: off (SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN unset)"
        );
        assert_eq!(
            lines[1],
            "discord: off (DISCORD_PUBLIC_KEY and DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID unset)"
        );
        assert_eq!(
            lines[2],
            "mattermost: off (MATTERMOST_URL and MATTERMOST_BOT_TOKEN and MATTERMOST_COMMAND_TOKEN and MATTERMOST_ACTION_SECRET unset)"
        );
        assert_eq!(lines[3], "github: off (GITHUB_WEBHOOK_SECRET unset)");
    }

    #[test]
    fn discord_is_on_when_its_three_variables_are_set() {
        let on = Integrations {
            discord: DiscordSettings {
                discord_public_key: Some("k".into()),
                discord_bot_token: Some("t".to_string().into()),
                discord_application_id: Some("1".into()),
                discord_incident_channel: Some("10".into()),
                discord_api_url: "https://discord.com".into(),
                ..Default::default()
            },
            ..Integrations::default()
        };
        let half = Integrations {
            discord: DiscordSettings {
                discord_public_key: Some("k".into()),
                ..Default::default()
            },
            ..Integrations::default()
        };
        assert_eq!(
            on.status_lines()[1],
            "discord: on (HTTP endpoint /discord/interactions; API https://discord.com; incident channel 10, CAB channel none)"
        );
        assert_eq!(
            half.status_lines()[1],
            "discord: off (DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID unset)"
        );
    }
}

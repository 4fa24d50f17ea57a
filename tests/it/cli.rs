//! The `opsledger` binary as a user runs it: `exec` (replies and exit codes, stdin), `migrate`,
//! `audit verify`, start-up errors that name the variable at fault, and `serve` start-up and
//! graceful shutdown on SIGTERM.
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use common::scratch::{stderr, stdout, Scratch};

/// Asserts the exit code, showing both streams when it is wrong.
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn read_all(r: Option<impl std::io::Read>) -> String {
    let mut s = String::new();
    if let Some(mut r) = r {
        let _ = r.read_to_string(&mut s);
    }
    s
}

#[test]
fn exec_raises_an_incident_and_prints_the_reply_naming_it() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.exec(
        "console:alice",
        "incident raise Checkout down impact:high urgency:high",
    );

    // Assert
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.starts_with("INC-1 raised: Checkout down (P1)"),
        "{text}"
    );
    assert!(text.contains("Priority: P1"), "{text}");
}

#[test]
fn exec_lists_open_changes_and_ones_own() {
    // Arrange
    let s = Scratch::new();
    assert_exit(
        &s.exec("console:alice", "change request Rotate keys type:normal"),
        0,
    );
    assert_exit(
        &s.exec("console:bob", "change request Patch type:normal"),
        0,
    );

    // Act
    let open = s.exec("console:carol", "change list");
    let mine = s.exec("console:alice", "change list mine");
    let bad = s.exec("console:alice", "change list everything");

    // Assert
    assert_exit(&open, 0);
    assert_eq!(
        stdout(&open).trim_end(),
        "open changes (2):\nCHG-1 [draft] Rotate keys\nCHG-2 [draft] Patch"
    );
    assert_exit(&mine, 0);
    assert_eq!(
        stdout(&mine).trim_end(),
        "your open changes (1):\nCHG-1 [draft] Rotate keys"
    );
    assert_exit(&bad, 2);
    assert!(stderr(&bad).contains("change list [open|waiting|mine]"));
}

#[test]
fn exec_keeps_records_between_processes() {
    // Arrange: one process raises an incident.
    let s = Scratch::new();
    assert_exit(&s.exec("console:alice", "incident raise First"), 0);

    // Act: a second process raises another and acknowledges the first.
    let second = s.exec("console:alice", "incident raise Second");
    let ack = s.exec("console:bob", "incident ack INC-1");

    // Assert
    assert_exit(&second, 0);
    assert!(
        stdout(&second).starts_with("INC-2 raised"),
        "{}",
        stdout(&second)
    );
    assert_exit(&ack, 0);
    assert!(
        stdout(&ack).starts_with("INC-1 acknowledged by console:bob"),
        "{}",
        stdout(&ack)
    );
}

#[test]
fn exec_refusal_exits_1_and_says_why_on_stderr() {
    // Arrange: a new incident cannot be closed before it is acknowledged.
    let s = Scratch::new();
    assert_exit(&s.exec("console:alice", "incident raise Checkout down"), 0);

    // Act
    let out = s.exec("console:alice", "incident close INC-1");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("INC-1"), "{err}");
    assert!(err.contains("acknowledged"), "{err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn exec_usage_error_exits_2_with_a_usage_line() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.exec("console:alice", "incident ack");

    // Assert
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.starts_with("usage: incident ack")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn exec_missing_record_exits_1_naming_it() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.exec("console:alice", "incident ack INC-99");

    // Assert
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("no such incident INC-99"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_with_a_bad_actor_says_what_an_actor_looks_like() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.exec("alice", "incident raise Checkout down");

    // Assert: a usage error, like any other malformed command line.
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("--as"), "{err}");
    assert!(err.contains("`alice` is not an actor"), "{err}");
    assert!(err.contains("platform:id"), "{err}");
    assert!(err.contains("console:alice"), "{err}");

    // An account on a platform this build does not have is refused as well, naming those it has.
    let out = s.exec("irc:alice", "incident raise Checkout down");
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("`irc:alice` is on no platform opsledger has: use one of slack, discord, mattermost, github, console"),
        "{err}"
    );
}

#[test]
fn exec_without_a_command_is_a_clap_usage_error() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.run(&["exec", "--as", "console:alice"]);

    // Assert
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("Usage: opsledger exec"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_dash_reads_one_command_per_line_skipping_comments_and_blanks() {
    // Arrange
    let s = Scratch::new();
    let script = "# morning checks\nincident raise Checkout down\n\n   # indented comment\nincident raise Search slow impact:low\nincident ack INC-2\n";

    // Act
    let mut child = s
        .cmd(&["exec", "--as", "console:alice", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");

    // Assert: three replies, in order, and nothing for the comments.
    assert_exit(&out, 0);
    let text = stdout(&out);
    let firsts: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        firsts,
        [
            "INC-1 raised: Checkout down (P3)",
            "INC-2 raised: Search slow (P4)",
            "INC-2 acknowledged by console:alice: Search slow",
        ]
    );
}

#[test]
fn exec_dash_exits_with_the_worst_outcome_but_runs_every_line() {
    // Arrange: a usage error between two good commands.
    let s = Scratch::new();

    // Act
    let mut child = s
        .cmd(&["exec", "--as", "console:alice", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"incident raise One\nincident frobnicate\nincident raise Two\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");

    // Assert
    assert_exit(&out, 2);
    let text = stdout(&out);
    assert!(text.contains("INC-1 raised"), "{text}");
    assert!(text.contains("INC-2 raised"), "{text}");
}

#[test]
fn migrate_creates_the_database_file() {
    // Arrange
    let s = Scratch::new();
    let db = s.path("fresh.db");
    assert!(!db.exists());

    // Act
    let out = s
        .cmd(&["migrate"])
        .env(
            "OPSLEDGER_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 0);
    assert!(db.is_file(), "{} was not created", db.display());
    assert!(
        stdout(&out).starts_with("migrations applied to sqlite://"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn audit_verify_on_a_fresh_database_reports_zero_entries() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.run(&["audit", "verify"]);

    // Assert
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with("audit chain verified: 0 entries"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn audit_verify_counts_the_entries_commands_left() {
    // Arrange: two accepted commands and one refused one, each audited.
    let s = Scratch::new();
    assert_exit(&s.exec("console:alice", "incident raise Checkout down"), 0);
    assert_exit(&s.exec("console:alice", "incident close INC-1"), 1);
    assert_exit(&s.exec("console:alice", "incident ack INC-1"), 0);

    // Act
    let out = s.run(&["audit", "verify"]);

    // Assert
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with("audit chain verified: 3 entries, last hash "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn database_in_a_missing_directory_is_a_start_up_error_naming_the_variable() {
    // Arrange
    let s = Scratch::new();
    let url = format!("sqlite://{}", s.path("no/such/dir/x.db").display());

    // Act
    let out = s
        .cmd(&["migrate"])
        .env("OPSLEDGER_DATABASE_URL", &url)
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(&format!("OPSLEDGER_DATABASE_URL={url}")),
        "{err}"
    );
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(
        err.matches("unable to open database file").count(),
        1,
        "{err}"
    );
}

#[test]
fn database_under_proc_is_a_start_up_error_naming_the_variable() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s
        .cmd(&["exec", "--as", "console:alice", "incident raise X"])
        .env("OPSLEDGER_DATABASE_URL", "sqlite:///proc/nope/x.db")
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("OPSLEDGER_DATABASE_URL"), "{err}");
    assert!(err.contains("/proc/nope"), "{err}");
}

#[test]
fn unknown_database_scheme_names_the_variable_and_the_accepted_forms() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s
        .cmd(&["migrate"])
        .env("OPSLEDGER_DATABASE_URL", "mysql://x")
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("OPSLEDGER_DATABASE_URL=mysql://x"), "{err}");
    assert!(err.contains("sqlite://PATH"), "{err}");
    assert!(err.contains("postgres://"), "{err}");
}

#[test]
fn missing_policy_file_names_opsledger_policy() {
    // Arrange
    let s = Scratch::new();
    let policy = s.path("rules.toml");

    // Act
    let out = s
        .cmd(&["migrate"])
        .env("OPSLEDGER_POLICY", &policy)
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("OPSLEDGER_POLICY={}", policy.display())),
        "{err}"
    );
}

#[test]
fn invalid_policy_file_names_opsledger_policy_and_the_problem() {
    // Arrange: a file that is not TOML.
    let s = Scratch::new();
    let policy = s.path("rules.toml");
    std::fs::write(&policy, "[roles\nadmin = ").expect("write policy");

    // Act
    let out = s
        .cmd(&["migrate"])
        .env("OPSLEDGER_POLICY", &policy)
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("OPSLEDGER_POLICY="), "{err}");
    assert!(err.contains("line 1:"), "{err}");
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s
        .cmd(&["serve"])
        .env("OPSLEDGER_BIND", "0.0.0.0:0")
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("OPSLEDGER_API_TOKEN"), "{err}");
    assert!(err.contains("0.0.0.0:0"), "{err}");
}

#[test]
fn serve_on_a_taken_port_names_opsledger_bind() {
    // Arrange: hold the port for the whole test.
    let s = Scratch::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");

    // Act
    let out = s
        .cmd(&["serve"])
        .env("OPSLEDGER_BIND", addr.to_string())
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains(&format!("OPSLEDGER_BIND={addr}")),
        "{}",
        stderr(&out)
    );
    drop(held);
}

/// Polls `/healthz` with a bare HTTP/1.0 request until it answers or the child exits.
fn wait_healthy(child: &mut Child, port: u16) -> Option<String> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = conn.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut response = String::new();
            if conn.read_to_string(&mut response).is_ok() && !response.is_empty() {
                return Some(response);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn serve_reports_integrations_answers_health_and_exits_0_on_sigterm() {
    // Arrange: a free port, and none of the host's platform settings.
    let s = Scratch::new();
    let port = free_port();
    let mut child = s
        .cmd(&["serve"])
        .env("OPSLEDGER_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");

    // Act: wait until it answers, then ask it to stop.
    let health = wait_healthy(&mut child, port);
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());

    // Assert
    let health = health.unwrap_or_else(|| panic!("/healthz never answered; stderr:\n{err}"));
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    assert!(killed.success());
    let status = status.unwrap_or_else(|| panic!("no exit within 10s of SIGTERM; stderr:\n{err}"));
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert_eq!(out, "", "logs go to stderr, not stdout");
    // One line per integration: off, and the unset variable that is why.
    for (prefix, why) in [
        ("slack: off (", "SLACK_SIGNING_SECRET"),
        ("discord: off (", "DISCORD_PUBLIC_KEY"),
        ("github: off (", "GITHUB_WEBHOOK_SECRET"),
    ] {
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(prefix)).collect();
        assert_eq!(lines.len(), 1, "want one `{prefix}` line in:\n{err}");
        assert!(
            lines[0].contains(why) && lines[0].ends_with("unset)"),
            "{}",
            lines[0]
        );
    }
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes in piped logs:\n{err}"
    );
    assert!(s.path("x.db").is_file());
}

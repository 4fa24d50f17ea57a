//! `opsledger policy check FILE` and `opsledger policy show` as a user runs them: what they print,
//! their exit codes, and that neither opens or creates the database.
use std::process::Output;

use crate::common;

/// The example from the contract's "Process rules file" section, verbatim.
const CONTRACT_EXAMPLE: &str = include_str!("../fixtures/contract-rules.toml");

use common::scratch::{stderr, stdout, Scratch};

/// Asserts the database was neither opened nor created, nor its WAL files.
fn assert_no_database(s: &Scratch) {
    for name in ["x.db", "x.db-wal", "x.db-shm", "opsledger.db"] {
        assert!(!s.path(name).exists(), "{name} was created");
    }
}

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

#[test]
fn check_of_the_contract_example_says_ok_with_a_summary() {
    // Arrange
    let s = Scratch::new();
    s.write("policy.toml", CONTRACT_EXAMPLE);

    // Act
    let out = s.run(&["policy", "check", "policy.toml"]);

    // Assert
    assert_exit(&out, 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "policy.toml: ok");
    assert!(lines[1].contains("roles admin 1, cab 3, ecab 1"), "{text}");
    assert!(
        lines[1].contains("normal changes need 2 approvals from cab"),
        "{text}"
    );
    assert!(lines[1].contains("1 freeze"), "{text}");
    assert_eq!(stderr(&out), "");
    assert_no_database(&s);
}

#[test]
fn check_of_zero_approvals_names_the_key_and_the_rule() {
    // Arrange
    let s = Scratch::new();
    s.write("policy.toml", "[change.normal]\napprovals = 0\n");

    // Act
    let out = s.run(&["policy", "check", "policy.toml"]);

    // Assert
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        "policy.toml: change.normal.approvals must be at least 1\n"
    );
    assert_eq!(stdout(&out), "");
    assert_no_database(&s);
}

#[test]
fn check_of_an_unknown_key_names_it() {
    // Arrange: `approval` for `approvals`.
    let s = Scratch::new();
    s.write("rules.toml", "[change.normal]\napproval = 2\n");

    // Act
    let out = s.run(&["policy", "check", "rules.toml"]);

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.starts_with("rules.toml: "), "{err}");
    assert!(err.contains("`approval`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn check_of_a_bad_duration_names_the_key() {
    // Arrange
    let s = Scratch::new();
    s.write("rules.toml", "[sla.P2]\nrespond = \"soon\"\n");

    // Act
    let out = s.run(&["policy", "check", "rules.toml"]);

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with("rules.toml: sla.P2.respond is `soon`"),
        "{err}"
    );
    assert!(err.contains("duration"), "{err}");
}

#[test]
fn check_of_an_account_on_a_platform_this_build_lacks_names_the_key() {
    // Arrange: `slak` for `slack`, in [people] and in an on-call rotation.
    let s = Scratch::new();
    s.write("rules.toml", "[people]\nalice = [\"slak:U0ALICE\"]\n");
    s.write(
        "oncall.toml",
        "[[oncall]]\nname = \"ops\"\nmembers = [\"mattermost:ubob\", \"slak:U0CAROL\"]\nrotation = \"weekly\"\nstart = \"2026-12-07T09:00:00\"\ntimezone = \"UTC\"\n",
    );

    // Act
    let people = s.run(&["policy", "check", "rules.toml"]);
    let oncall = s.run(&["policy", "check", "oncall.toml"]);

    // Assert
    assert_exit(&people, 1);
    assert_eq!(
        stderr(&people).trim_end(),
        "rules.toml: people.alice `slak:U0ALICE` is on no platform opsledger has: use one of slack, discord, mattermost, github, console"
    );
    assert_exit(&oncall, 1);
    assert!(
        stderr(&oncall)
            .starts_with("oncall.toml: oncall[0].members `slak:U0CAROL` is on no platform"),
        "{}",
        stderr(&oncall)
    );
}

#[test]
fn check_of_a_missing_file_says_it_cannot_be_read() {
    // Arrange
    let s = Scratch::new();

    // Act
    let out = s.run(&["policy", "check", "nowhere.toml"]);

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.starts_with("nowhere.toml: cannot be read: "), "{err}");
    assert_no_database(&s);
}

#[test]
fn check_ignores_a_broken_opsledger_policy() {
    // Arrange: the rules in force are broken, the file being checked is fine.
    let s = Scratch::new();
    s.write("broken.toml", "[roles\n");
    s.write("good.toml", CONTRACT_EXAMPLE);

    // Act
    let out = s
        .cmd(&["policy", "check", "good.toml"])
        .env("OPSLEDGER_POLICY", s.path("broken.toml"))
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with("good.toml: ok\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn show_without_a_policy_prints_the_defaults_as_a_valid_rules_file() {
    // Arrange
    let s = Scratch::new();

    // Act
    let show = s.run(&["policy", "show"]);
    s.write("shown.toml", &stdout(&show));
    let check = s.run(&["policy", "check", "shown.toml"]);

    // Assert
    assert_exit(&show, 0);
    let text = stdout(&show);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("# "), "{text}");
    assert!(first.contains("built-in defaults"), "{text}");
    assert!(
        text.contains("[sla.P1]\nrespond = \"15m\"\nresolve = \"4h\"\n"),
        "{text}"
    );
    assert!(text.contains("[change.normal]\napprovals = 2\n"), "{text}");
    assert_exit(&check, 0);
    assert!(stdout(&check).starts_with("shown.toml: ok\n"));
    assert_no_database(&s);
}

#[test]
fn show_with_opsledger_policy_reflects_the_file_and_says_where_it_came_from() {
    // Arrange
    let s = Scratch::new();
    let rules = s.path("rules.toml");
    s.write(
        "rules.toml",
        "[change.normal]\napprovals = 3\n\n[sla.P2]\nresolve = \"3days\"\n",
    );

    // Act
    let out = s
        .cmd(&["policy", "show"])
        .env("OPSLEDGER_POLICY", &rules)
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 0);
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("# "), "{text}");
    assert!(
        first.contains(&format!("OPSLEDGER_POLICY={}", rules.display())),
        "{text}"
    );
    assert!(text.contains("[change.normal]\napprovals = 3\n"), "{text}");
    assert!(
        text.contains("[sla.P2]\nrespond = \"30m\"\nresolve = \"72h\"\n"),
        "{text}"
    );
    assert_no_database(&s);
}

#[test]
fn show_with_the_policy_flag_reads_that_file() {
    // Arrange
    let s = Scratch::new();
    s.write("rules.toml", CONTRACT_EXAMPLE);

    // Act
    let out = s.run(&["policy", "show", "--policy", "rules.toml"]);

    // Assert
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("ecab = [\"slack:U0CAB1\"]\n"), "{text}");
    assert!(text.contains("name = \"year-end\"\n"), "{text}");
}

#[test]
fn show_with_a_broken_opsledger_policy_exits_1_naming_the_variable_and_key() {
    // Arrange
    let s = Scratch::new();
    let rules = s.path("rules.toml");
    s.write("rules.toml", "[change.normal]\napprovals = 0\n");

    // Act
    let out = s
        .cmd(&["policy", "show"])
        .env("OPSLEDGER_POLICY", &rules)
        .output()
        .expect("run");

    // Assert
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("OPSLEDGER_POLICY={}", rules.display())),
        "{err}"
    );
    assert!(
        err.contains("change.normal.approvals must be at least 1"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    assert_no_database(&s);
}

#[test]
fn show_output_of_the_contract_example_checks_ok_and_shows_the_same_rules() {
    // Arrange
    let s = Scratch::new();
    s.write("rules.toml", CONTRACT_EXAMPLE);

    // Act: show, save, show the saved copy.
    let first = s.run(&["policy", "show", "--policy", "rules.toml"]);
    s.write("copy.toml", &stdout(&first));
    let check = s.run(&["policy", "check", "copy.toml"]);
    let second = s.run(&["policy", "show", "--policy", "copy.toml"]);

    // Assert: the same rules, apart from the comment naming the source.
    assert_exit(&first, 0);
    assert_exit(&check, 0);
    assert_exit(&second, 0);
    let body = |o: &Output| stdout(o).lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&first), body(&second));
}

#[test]
fn policy_commands_do_not_create_the_default_database_either() {
    // Arrange: no OPSLEDGER_DATABASE_URL at all, so the default sqlite://opsledger.db applies.
    let s = Scratch::new();
    s.write("rules.toml", CONTRACT_EXAMPLE);

    // Act
    let check = s
        .cmd(&["policy", "check", "rules.toml"])
        .env_remove("OPSLEDGER_DATABASE_URL")
        .output()
        .expect("run");
    let show = s
        .cmd(&["policy", "show"])
        .env_remove("OPSLEDGER_DATABASE_URL")
        .output()
        .expect("run");

    // Assert
    assert_exit(&check, 0);
    assert_exit(&show, 0);
    assert_no_database(&s);
}

//! The parser's unit tests: every form, its errors, and the properties that hold for any text.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;
use crate::domain::command::*;
use crate::domain::ids::RecordId;

fn ok(text: &str) -> Command {
    parse(text).unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
}

fn err(text: &str) -> UsageError {
    match parse(text) {
        Err(e) => e,
        Ok(cmd) => panic!("`{text}` should be refused, got {cmd:?}"),
    }
}

fn id(s: &str) -> RecordId {
    s.parse().expect("test ID")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

fn raise(title: &str) -> IncidentCmd {
    IncidentCmd::Raise {
        title: title.into(),
        impact: None,
        urgency: None,
        service: None,
        ci: None,
        security: false,
    }
}

// ---- help ----

#[test]
fn help_without_topic() {
    let cmd = ok("help");
    assert_eq!(cmd, Command::Help { topic: None });
}

#[test]
fn help_with_topic_is_normalised_to_lower_case() {
    let cmd = ok("help Incident");
    assert_eq!(
        cmd,
        Command::Help {
            topic: Some("incident".into())
        }
    );
}

#[test]
fn help_with_unknown_topic_lists_topics() {
    let e = err("help frobnicate");
    assert_eq!(e.command, "help");
    assert!(
        e.message.contains("unknown help topic `frobnicate`"),
        "{}",
        e.message
    );
    assert!(e.message.contains("incident, request"), "{}", e.message);
}

#[test]
fn help_text_overview_names_every_topic() {
    let text = help(None).expect("overview");
    for topic in TOPICS.iter().map(|t| t.name) {
        assert!(
            text.lines().any(|l| l.starts_with(topic)),
            "{topic} missing from\n{text}"
        );
    }
    assert!(text.contains(
        "incident raise|ack|resolve|close|reopen|show|assign|note|list|major|escalate|role|priority"
    ));
}

#[test]
fn help_text_for_each_topic_has_usage_and_explanations() {
    for topic in TOPICS.iter().map(|t| t.name) {
        let text = help(Some(topic)).expect("topic help");
        assert!(text.starts_with(&format!("{topic}: ")), "{text}");
        for form in forms_of(topic) {
            assert!(text.contains(form.usage()), "{topic}: {}", form.usage());
            assert!(text.contains(form.about), "{topic}: {}", form.about);
        }
    }
}

#[test]
fn help_text_for_unknown_topic_is_an_error() {
    let e = help(Some("bogus")).expect_err("unknown topic");
    assert_eq!(e.command, "help");
    assert!(e.message.contains("topics: incident"), "{}", e.message);
}

#[test]
fn usage_of_a_command_and_of_a_topic() {
    assert_eq!(
        usage("change link"),
        Some("change link CHG-n owner/repo#123")
    );
    assert_eq!(
        usage("INCIDENT ACK"),
        Some("incident ack|resolve|close|reopen INC-n [text]")
    );
    let all = usage("nc").expect("topic usage");
    assert_eq!(all.lines().count(), 5);
    assert_eq!(usage("frobnicate"), None);
}

// ---- incident ----

#[test]
fn incident_raise_with_unquoted_title() {
    let cmd = ok("incident raise Checkout down");
    assert_eq!(cmd, Command::Incident(raise("Checkout down")));
}

#[test]
fn incident_raise_with_quoted_title_and_options() {
    let cmd = ok(
        r#"incident raise "Checkout down" impact:high urgency:low service:shop ci:db-1 security"#,
    );
    assert_eq!(
        cmd,
        Command::Incident(IncidentCmd::Raise {
            title: "Checkout down".into(),
            impact: Some(Level::High),
            urgency: Some(Level::Low),
            service: Some("shop".into()),
            ci: Some("db-1".into()),
            security: true,
        })
    );
}

#[test]
fn incident_raise_options_anywhere_and_case_insensitive() {
    let cmd = ok("  Incident   RAISE  Impact:High Checkout  SECURITY down  ");
    assert_eq!(
        cmd,
        Command::Incident(IncidentCmd::Raise {
            title: "Checkout down".into(),
            impact: Some(Level::High),
            urgency: None,
            service: None,
            ci: None,
            security: true,
        })
    );
}

#[test]
fn incident_raise_unknown_key_stays_in_title() {
    let cmd = ok("incident raise DB: slow queries on host:db1");
    assert_eq!(
        cmd,
        Command::Incident(raise("DB: slow queries on host:db1"))
    );
}

#[test]
fn incident_raise_with_curly_and_single_quotes() {
    let curly = ok("incident raise “Checkout down” impact:medium");
    let single = ok("incident raise 'it's down' ‘for real’");
    assert_eq!(
        curly,
        Command::Incident(IncidentCmd::Raise {
            title: "Checkout down".into(),
            impact: Some(Level::Medium),
            urgency: None,
            service: None,
            ci: None,
            security: false,
        })
    );
    assert_eq!(single, Command::Incident(raise("it's down for real")));
}

#[test]
fn incident_raise_quoted_option_and_flag_are_title_words() {
    let cmd = ok(r#"incident raise "impact:high" 'security' review"#);
    assert_eq!(cmd, Command::Incident(raise("impact:high security review")));
}

#[test]
fn incident_act_verbs_with_and_without_text() {
    let cases = [
        ("ack", IncidentAction::Ack),
        ("resolve", IncidentAction::Resolve),
        ("close", IncidentAction::Close),
        ("reopen", IncidentAction::Reopen),
    ];
    for (verb, action) in cases {
        let bare = ok(&format!("incident {verb} inc-3"));
        let noted = ok(&format!("incident {verb} INC-3 restarted the  pod"));
        assert_eq!(
            bare,
            Command::Incident(IncidentCmd::Act {
                action,
                id: id("INC-3"),
                text: None
            })
        );
        assert_eq!(
            noted,
            Command::Incident(IncidentCmd::Act {
                action,
                id: id("INC-3"),
                text: Some("restarted the pod".into())
            })
        );
    }
}

#[test]
fn incident_major_declares_a_major_incident() {
    // Arrange
    let text = "incident major inc-7";

    // Act
    let cmd = ok(text);

    // Assert
    assert_eq!(
        cmd,
        Command::Incident(IncidentCmd::Major { id: id("INC-7") })
    );
    assert_eq!(cmd.name(), "incident major");
}

#[test]
fn incident_major_without_an_id_is_refused() {
    let e = err("incident major");
    assert_eq!(e.command, "incident major");
    assert_eq!(e.message, "missing incident ID (INC-n)");
    assert_eq!(e.usage, "incident major INC-n");
}

#[test]
fn incident_major_with_another_kind_of_id_is_refused() {
    let e = err("incident major CHG-2");
    assert_eq!(e.command, "incident major");
    assert_eq!(
        e.message,
        "`CHG-2` is a change ID; expected an incident ID (INC-n)"
    );
}

#[test]
fn incident_major_with_text_after_the_id_is_refused() {
    for text in [
        "incident major INC-1 checkout is down",
        "incident major INC-1 impact:high",
    ] {
        let e = err(text);
        assert_eq!(e.command, "incident major", "{text}");
        assert!(
            e.message.starts_with("unexpected `")
                && e.message.ends_with("`incident major` takes nothing more"),
            "{text}: {}",
            e.message
        );
    }
}

#[test]
fn incident_priority_with_impact_urgency_or_both() {
    // Arrange
    let cases = [
        (
            "incident priority INC-4 impact:high",
            Some(Level::High),
            None,
        ),
        (
            "incident priority INC-4 urgency:Low",
            None,
            Some(Level::Low),
        ),
        (
            "Incident PRIORITY urgency:medium inc-4 IMPACT:low",
            Some(Level::Low),
            Some(Level::Medium),
        ),
    ];
    for (text, impact, urgency) in cases {
        // Act
        let cmd = ok(text);

        // Assert
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Priority {
                id: id("INC-4"),
                impact,
                urgency
            }),
            "{text}"
        );
        assert_eq!(cmd.name(), "incident priority");
    }
}

#[test]
fn incident_priority_without_impact_or_urgency_is_refused() {
    let e = err("incident priority INC-4");
    assert_eq!(e.command, "incident priority");
    assert_eq!(
        e.message,
        "missing impact:high|medium|low or urgency:high|medium|low; give at least one"
    );
    assert_eq!(
        e.usage,
        "incident priority INC-n [impact:high|medium|low] [urgency:high|medium|low]"
    );
}

#[test]
fn incident_priority_with_a_bad_level_lists_the_levels() {
    let impact = err("incident priority INC-4 impact:critical");
    let urgency = err("incident priority INC-4 impact:high urgency:asap");
    assert_eq!(impact.command, "incident priority");
    assert_eq!(
        impact.message,
        "`impact:critical` is not allowed: use impact:high|medium|low"
    );
    assert_eq!(
        urgency.message,
        "`urgency:asap` is not allowed: use urgency:high|medium|low"
    );
}

#[test]
fn incident_priority_without_an_id_or_with_a_wrong_id_is_refused() {
    let missing = err("incident priority impact:high");
    let wrong = err("incident priority REQ-4 impact:high");
    let stray = err("incident priority INC-4 impact:high now");
    assert_eq!(missing.command, "incident priority");
    assert_eq!(missing.message, "missing incident ID (INC-n)");
    assert_eq!(
        wrong.message,
        "`REQ-4` is a service request ID; expected an incident ID (INC-n)"
    );
    assert_eq!(
        stray.message,
        "unexpected `now`: `incident priority` takes nothing more"
    );
}

#[test]
fn incident_priority_option_given_twice_is_refused() {
    let e = err("incident priority INC-4 impact:high impact:low");
    assert_eq!(e.command, "incident priority");
    assert_eq!(e.message, "option `impact:` given twice");
}

#[test]
fn help_for_incident_explains_major_and_priority() {
    let text = help(Some("incident")).expect("topic help");
    assert!(text.contains("\nincident major INC-n\n    Declare a major incident"));
    assert!(text.contains(
        "\nincident priority INC-n [impact:high|medium|low] [urgency:high|medium|low]\n    Re-assess"
    ));
}

#[test]
fn the_deadline_timer_tick_cannot_be_typed() {
    // Arrange: the name the internal command carries in metrics and the audit trail.
    let name = Command::Tick.name();

    // Act
    let typed = parse(name);

    // Assert
    assert_eq!(usage(name), None);
    let e = typed.expect_err("`sla check` is not a chat command");
    assert_eq!(e.command, "sla");
}

#[test]
fn incident_show() {
    let cmd = ok("incident show INC-12");
    assert_eq!(
        cmd,
        Command::Incident(IncidentCmd::Show { id: id("INC-12") })
    );
}

#[test]
fn incident_assign_with_every_mention_form() {
    let cases = [
        ("<@U123>", Mention::PlatformId("U123".into())),
        ("<@U123|alice>", Mention::PlatformId("U123".into())),
        (
            "<@!80351110224678912>",
            Mention::PlatformId("80351110224678912".into()),
        ),
        ("<@123>", Mention::PlatformId("123".into())),
        ("@alice", Mention::Name("alice".into())),
        ("@slack:U123", Mention::Name("slack:U123".into())),
    ];
    for (mention, assignee) in cases {
        let cmd = ok(&format!("incident assign INC-1 {mention}"));
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Assign {
                id: id("INC-1"),
                assignee
            })
        );
    }
}

#[test]
fn incident_note() {
    let cmd = ok("incident note INC-2 customer says: impact:high");
    assert_eq!(
        cmd,
        Command::Incident(IncidentCmd::Note {
            id: id("INC-2"),
            text: "customer says: impact:high".into()
        })
    );
}

#[test]
fn incident_list_with_each_filter() {
    let cases = [
        ("incident list", IncidentFilter::Open),
        ("incident list open", IncidentFilter::Open),
        ("incident list MINE", IncidentFilter::Mine),
        ("incident list breached", IncidentFilter::Breached),
        ("incident list all", IncidentFilter::All),
    ];
    for (text, filter) in cases {
        let cmd = ok(text);
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::List { filter }),
            "{text}"
        );
    }
}

// ---- request ----

#[test]
fn request_raise_with_and_without_service() {
    let bare = ok("request raise New laptop");
    let with = ok("request raise New laptop service:it-desk");
    assert_eq!(
        bare,
        Command::Request(RequestCmd::Raise {
            title: "New laptop".into(),
            service: None
        })
    );
    assert_eq!(
        with,
        Command::Request(RequestCmd::Raise {
            title: "New laptop".into(),
            service: Some("it-desk".into())
        })
    );
}

#[test]
fn request_fulfil_and_close_with_and_without_text() {
    let fulfil = ok("request fulfil REQ-4");
    let fulfill = ok("request fulfill REQ-4 shipped");
    let close = ok("request close req-4 duplicate");
    assert_eq!(
        fulfil,
        Command::Request(RequestCmd::Fulfil {
            id: id("REQ-4"),
            text: None
        })
    );
    assert_eq!(
        fulfill,
        Command::Request(RequestCmd::Fulfil {
            id: id("REQ-4"),
            text: Some("shipped".into())
        })
    );
    assert_eq!(
        close,
        Command::Request(RequestCmd::Close {
            id: id("REQ-4"),
            text: Some("duplicate".into())
        })
    );
    assert_eq!(
        ok("request close REQ-4"),
        Command::Request(RequestCmd::Close {
            id: id("REQ-4"),
            text: None
        })
    );
}

#[test]
fn request_show() {
    let cmd = ok("request show REQ-9");
    assert_eq!(cmd, Command::Request(RequestCmd::Show { id: id("REQ-9") }));
}

// ---- problem ----

#[test]
fn problem_open_with_and_without_incidents() {
    let bare = ok("problem open Disk fills up");
    let from = ok("problem open Disk fills up from:inc-1,INC-2,INC-1");
    assert_eq!(
        bare,
        Command::Problem(ProblemCmd::Open {
            title: "Disk fills up".into(),
            from: vec![]
        })
    );
    assert_eq!(
        from,
        Command::Problem(ProblemCmd::Open {
            title: "Disk fills up".into(),
            from: vec![id("INC-1"), id("INC-2")]
        })
    );
}

#[test]
fn problem_link() {
    let cmd = ok("problem link PRB-1 INC-7");
    assert_eq!(
        cmd,
        Command::Problem(ProblemCmd::Link {
            id: id("PRB-1"),
            incident: id("INC-7")
        })
    );
}

#[test]
fn problem_act_verbs_take_text() {
    let cases = [
        ("rootcause", ProblemAction::RootCause),
        ("workaround", ProblemAction::Workaround),
        ("resolve", ProblemAction::Resolve),
        ("close", ProblemAction::Close),
    ];
    for (verb, action) in cases {
        let cmd = ok(&format!("problem {verb} PRB-2 log rotation was off"));
        assert_eq!(
            cmd,
            Command::Problem(ProblemCmd::Act {
                action,
                id: id("PRB-2"),
                text: "log rotation was off".into()
            })
        );
    }
}

#[test]
fn problem_show() {
    let cmd = ok("problem show PRB-2");
    assert_eq!(cmd, Command::Problem(ProblemCmd::Show { id: id("PRB-2") }));
}

// ---- change ----

#[test]
fn change_request_with_only_type() {
    let cmd = ok("change request Upgrade Postgres type:normal");
    assert_eq!(
        cmd,
        Command::Change(ChangeCmd::Request {
            title: "Upgrade Postgres".into(),
            change_type: ChangeType::Normal,
            risk: None,
            service: None,
            window: None,
            template: None,
        })
    );
}

#[test]
fn change_request_with_every_option() {
    let text = "change request type:Standard \"Rotate cert\" risk:LOW service:shop \
                window:2026-12-01T22:00Z..2026-12-01T23:00:30+01:00 template:rotate-certificate";
    let cmd = ok(text);
    assert_eq!(
        cmd,
        Command::Change(ChangeCmd::Request {
            title: "Rotate cert".into(),
            change_type: ChangeType::Standard,
            risk: Some(Level::Low),
            service: Some("shop".into()),
            window: Some(Window {
                start: at("2026-12-01T22:00:00Z"),
                end: at("2026-12-01T22:00:30Z")
            }),
            template: Some("rotate-certificate".into()),
        })
    );
}

#[test]
fn change_request_emergency_with_full_rfc3339_window() {
    let cmd = ok(
        "change request Hotfix type:emergency window:2026-12-01T22:00:00Z..2026-12-01T23:00:00Z",
    );
    let Command::Change(ChangeCmd::Request {
        change_type,
        window,
        ..
    }) = cmd
    else {
        panic!("not a change request: {cmd:?}");
    };
    assert_eq!(change_type, ChangeType::Emergency);
    assert_eq!(
        window,
        Some(Window {
            start: at("2026-12-01T22:00:00Z"),
            end: at("2026-12-01T23:00:00Z")
        })
    );
}

#[test]
fn change_act_verbs_with_and_without_text() {
    for action in CHANGE_ACTIONS {
        let bare = ok(&format!("change {} CHG-5", action.verb().to_uppercase()));
        let noted = ok(&format!("change {} chg-5 looks good", action.verb()));
        assert_eq!(
            bare,
            Command::Change(ChangeCmd::Act {
                action,
                id: id("CHG-5"),
                text: None
            })
        );
        assert_eq!(
            noted,
            Command::Change(ChangeCmd::Act {
                action,
                id: id("CHG-5"),
                text: Some("looks good".into())
            })
        );
    }
}

#[test]
fn change_show() {
    let cmd = ok("change show CHG-5");
    assert_eq!(cmd, Command::Change(ChangeCmd::Show { id: id("CHG-5") }));
}

#[test]
fn change_link_to_pull_request() {
    let cmd = ok("change link CHG-5 acme/shop.web#123");
    assert_eq!(
        cmd,
        Command::Change(ChangeCmd::Link {
            id: id("CHG-5"),
            repo: "acme/shop.web".into(),
            number: 123
        })
    );
}

#[test]
fn change_list_with_each_filter() {
    let list = |filter| Command::Change(ChangeCmd::List { filter });
    assert_eq!(ok("change list"), list(ChangeFilter::Open));
    assert_eq!(ok("change list open"), list(ChangeFilter::Open));
    assert_eq!(ok("change list waiting"), list(ChangeFilter::Waiting));
    assert_eq!(ok("Change List MINE"), list(ChangeFilter::Mine));
}

#[test]
fn change_list_refuses_an_unknown_filter_and_extra_words() {
    let e = err("change list breached");
    assert_eq!(e.command, "change list");
    assert_eq!(
        e.message,
        "`breached` is not allowed: use open|waiting|mine"
    );
    assert_eq!(e.usage, "change list [open|waiting|mine]");
    let e = err("change list mine CHG-1");
    assert_eq!(
        e.message,
        "unexpected `CHG-1`: `change list` takes nothing more"
    );
}

#[test]
fn help_for_change_explains_change_list() {
    let text = help(Some("change")).expect("change help");
    assert!(text.contains(
        "\nchange list [open|waiting|mine]\n    List open changes (the default), those waiting for your vote, or your own open ones."
    ), "{text}");
    let overview = help(None).expect("overview");
    assert!(overview.contains("change request|submit|approve|reject|start|complete|fail|rollback|review|close|show|link|list\n"), "{overview}");
}

// ---- release ----

#[test]
fn release_create_with_version_only() {
    let cmd = ok("release create 1.4.0");
    assert_eq!(
        cmd,
        Command::Release(ReleaseCmd::Create {
            version: "1.4.0".into(),
            repo: None,
            changes: vec![]
        })
    );
}

#[test]
fn release_create_with_repo_and_changes() {
    let cmd = ok("release create v2.0.0-rc.1 CHG-1 repo:acme/shop chg-2");
    assert_eq!(
        cmd,
        Command::Release(ReleaseCmd::Create {
            version: "v2.0.0-rc.1".into(),
            repo: Some("acme/shop".into()),
            changes: vec![id("CHG-1"), id("CHG-2")],
        })
    );
}

#[test]
fn release_deploy() {
    let cmd = ok("release deploy REL-3 env:production");
    assert_eq!(
        cmd,
        Command::Release(ReleaseCmd::Deploy {
            id: id("REL-3"),
            env: "production".into()
        })
    );
}

#[test]
fn release_rollback_with_and_without_text() {
    let bare = ok("release rollback REL-3");
    let noted = ok("release rollback REL-3 error rate up");
    assert_eq!(
        bare,
        Command::Release(ReleaseCmd::Rollback {
            id: id("REL-3"),
            text: None
        })
    );
    assert_eq!(
        noted,
        Command::Release(ReleaseCmd::Rollback {
            id: id("REL-3"),
            text: Some("error rate up".into())
        })
    );
}

#[test]
fn release_show() {
    let cmd = ok("release show rel-3");
    assert_eq!(cmd, Command::Release(ReleaseCmd::Show { id: id("REL-3") }));
}

// ---- service and ci ----

#[test]
fn service_add_with_and_without_owner() {
    let bare = ok("service add shop");
    let owned = ok("service add shop owner:<@U123|alice>");
    assert_eq!(
        bare,
        Command::Service(ServiceCmd::Add {
            name: "shop".into(),
            owner: None,
            escalation: None,
        })
    );
    assert_eq!(
        owned,
        Command::Service(ServiceCmd::Add {
            name: "shop".into(),
            owner: Some(Mention::PlatformId("U123".into())),
            escalation: None,
        })
    );
    assert_eq!(
        ok("service add shop escalation:payments"),
        Command::Service(ServiceCmd::Add {
            name: "shop".into(),
            owner: None,
            escalation: Some("payments".into()),
        })
    );
}

#[test]
fn service_show() {
    let cmd = ok("service show shop");
    assert_eq!(
        cmd,
        Command::Service(ServiceCmd::Show {
            name: "shop".into()
        })
    );
}

#[test]
fn ci_add_with_and_without_options() {
    let bare = ok("ci add db-1");
    let full = ok("ci add db-1 type:database service:shop depends:host-1,host_2,host-1");
    assert_eq!(
        bare,
        Command::Ci(CiCmd::Add {
            name: "db-1".into(),
            ci_type: None,
            service: None,
            depends: vec![]
        })
    );
    assert_eq!(
        full,
        Command::Ci(CiCmd::Add {
            name: "db-1".into(),
            ci_type: Some("database".into()),
            service: Some("shop".into()),
            depends: vec!["host-1".into(), "host_2".into()],
        })
    );
}

#[test]
fn ci_show() {
    let cmd = ok("ci show db-1");
    assert_eq!(
        cmd,
        Command::Ci(CiCmd::Show {
            name: "db-1".into()
        })
    );
}

// ---- nc ----

#[test]
fn nc_raise_with_and_without_record() {
    let bare = ok("nc raise Change started without approval");
    let with = ok("nc raise Change started without approval record:chg-4");
    assert_eq!(
        bare,
        Command::Nc(NcCmd::Raise {
            title: "Change started without approval".into(),
            record: None
        })
    );
    assert_eq!(
        with,
        Command::Nc(NcCmd::Raise {
            title: "Change started without approval".into(),
            record: Some(id("CHG-4"))
        })
    );
}

#[test]
fn nc_list_all_or_open() {
    let all = ok("nc list");
    let open = ok("nc list open");
    assert_eq!(all, Command::Nc(NcCmd::List { open_only: false }));
    assert_eq!(open, Command::Nc(NcCmd::List { open_only: true }));
}

#[test]
fn nc_correct_close_and_show() {
    let correct = ok("nc correct NC-1 added a CI check");
    let close = ok("nc close nc-1");
    let show = ok("nc show NC-1");
    assert_eq!(
        correct,
        Command::Nc(NcCmd::Correct {
            id: id("NC-1"),
            action: "added a CI check".into()
        })
    );
    assert_eq!(close, Command::Nc(NcCmd::Close { id: id("NC-1") }));
    assert_eq!(show, Command::Nc(NcCmd::Show { id: id("NC-1") }));
}

// ---- role, sla, report, audit ----

#[test]
fn role_grant_and_revoke_every_role() {
    for role in Role::ALL {
        let grant = ok(&format!(
            "role grant @alice {}",
            role.as_str().to_uppercase()
        ));
        let revoke = ok(&format!("role revoke <@U9> {}", role.as_str()));
        assert_eq!(
            grant,
            Command::Role(RoleCmd::Grant {
                user: Mention::Name("alice".into()),
                role
            })
        );
        assert_eq!(
            revoke,
            Command::Role(RoleCmd::Revoke {
                user: Mention::PlatformId("U9".into()),
                role
            })
        );
    }
}

#[test]
fn sla_of_an_incident() {
    let cmd = ok("sla inc-8");
    assert_eq!(cmd, Command::Sla { id: id("INC-8") });
}

#[test]
fn report_with_and_without_dates() {
    let bare = ok("report");
    let from = ok("report from:2026-01-01");
    let both = ok("report to:2026-03-31 from:2026-01-01");
    assert_eq!(
        bare,
        Command::Report {
            from: None,
            to: None
        }
    );
    assert_eq!(
        from,
        Command::Report {
            from: Some(day("2026-01-01")),
            to: None
        }
    );
    assert_eq!(
        both,
        Command::Report {
            from: Some(day("2026-01-01")),
            to: Some(day("2026-03-31"))
        }
    );
}

#[test]
fn audit_of_a_record_id_or_a_name() {
    let record = ok("audit inc-3");
    let name = ok("audit web-shop");
    assert_eq!(
        record,
        Command::Audit {
            record: "INC-3".into()
        }
    );
    assert_eq!(
        name,
        Command::Audit {
            record: "web-shop".into()
        }
    );
}

// ---- malformed input ----

#[test]
fn empty_input_points_at_help() {
    for text in ["", "   ", "\n\t"] {
        let e = err(text);
        assert_eq!(e.command, "");
        assert!(
            e.message.contains("empty command") && e.message.contains("help"),
            "{}",
            e.message
        );
    }
}

#[test]
fn unknown_command_gives_the_overview() {
    let e = err("frobnicate the thing");
    assert_eq!(e.command, "");
    assert_eq!(e.message, "unknown command `frobnicate`; try `help`");
    assert_eq!(e.usage, overview());
}

#[test]
fn unknown_verb_gives_all_forms_of_the_topic() {
    let e = err("incident frobnicate INC-1");
    assert_eq!(e.command, "incident");
    assert!(
        e.message.contains("unknown incident command `frobnicate`"),
        "{}",
        e.message
    );
    assert!(e.usage.contains("incident raise") && e.usage.contains("incident list"));
}

#[test]
fn missing_verb_gives_all_forms_of_the_topic() {
    let e = err("change");
    assert_eq!(e.command, "change");
    assert!(
        e.message.contains("missing change command"),
        "{}",
        e.message
    );
    assert!(e.usage.contains("change link"), "{}", e.usage);
}

#[test]
fn missing_id_is_refused() {
    let e = err("incident ack");
    assert_eq!(e.command, "incident ack");
    assert_eq!(e.message, "missing incident ID (INC-n)");
    assert_eq!(e.usage, "incident ack|resolve|close|reopen INC-n [text]");
}

#[test]
fn wrong_kind_of_id_names_the_expected_kind() {
    let e = err("incident ack CHG-1");
    assert_eq!(e.command, "incident ack");
    assert_eq!(
        e.message,
        "`CHG-1` is a change ID; expected an incident ID (INC-n)"
    );
}

#[test]
fn malformed_id_is_refused() {
    let e = err("problem link PRB-1 INC-0");
    assert_eq!(e.command, "problem link");
    assert!(
        e.message.contains("`INC-0` is not an incident ID"),
        "{}",
        e.message
    );
}

#[test]
fn bad_option_value_lists_allowed_values() {
    let e = err("incident raise Checkout down impact:huge");
    assert_eq!(e.command, "incident raise");
    assert_eq!(
        e.message,
        "`impact:huge` is not allowed: use impact:high|medium|low"
    );
}

#[test]
fn bad_change_type_and_missing_type_are_refused() {
    let bad = err("change request Upgrade type:yolo");
    let missing = err("change request Upgrade risk:low");
    assert_eq!(bad.command, "change request");
    assert!(
        bad.message.contains("type:standard|normal|emergency"),
        "{}",
        bad.message
    );
    assert_eq!(missing.message, "missing type:standard|normal|emergency");
}

#[test]
fn option_without_value_is_refused() {
    let e = err("incident raise Checkout down service: shop");
    assert_eq!(e.command, "incident raise");
    assert!(
        e.message.contains("`service:` needs a value"),
        "{}",
        e.message
    );
}

#[test]
fn duplicate_option_is_refused() {
    let e = err("incident raise Checkout impact:high IMPACT:low");
    assert_eq!(e.command, "incident raise");
    assert_eq!(e.message, "option `impact:` given twice");
}

#[test]
fn missing_title_is_refused() {
    let bare = err("incident raise impact:high");
    let empty = err(r#"request raise "" service:shop"#);
    assert_eq!(bare.command, "incident raise");
    assert_eq!(bare.message, "missing title");
    assert_eq!(empty.command, "request raise");
    assert_eq!(empty.message, "missing title");
}

#[test]
fn missing_text_is_refused_where_required() {
    let note = err("incident note INC-1");
    let cause = err("problem rootcause PRB-1");
    let correct = err("nc correct NC-1");
    assert_eq!(note.message, "missing note text");
    assert_eq!(cause.message, "missing root cause");
    assert_eq!(correct.message, "missing corrective action");
}

#[test]
fn unterminated_quote_is_refused() {
    let e = err(r#"incident raise "Checkout down impact:high"#);
    assert_eq!(e.command, "incident raise");
    assert!(e.message.contains("unterminated quote"), "{}", e.message);
    let curly = err("incident raise “Checkout down");
    assert!(
        curly.message.contains("unterminated quote"),
        "{}",
        curly.message
    );
}

#[test]
fn window_ending_before_it_starts_is_refused() {
    let e = err("change request X type:normal window:2026-12-01T23:00Z..2026-12-01T22:00Z");
    assert_eq!(e.command, "change request");
    assert!(e.message.contains("not after its start"), "{}", e.message);
}

#[test]
fn unparsable_window_is_refused() {
    for window in [
        "tomorrow",
        "2026-12-01T22:00Z",
        "2026-13-01T22:00Z..2026-12-01T23:00Z",
        "..",
    ] {
        let e = err(&format!("change request X type:normal window:{window}"));
        assert_eq!(e.command, "change request");
        assert!(
            e.message.contains("is not a window"),
            "{window}: {}",
            e.message
        );
    }
}

#[test]
fn bad_report_dates_are_refused() {
    let bad = err("report from:2026-02-30");
    let short = err("report to:2026-1-5");
    let reversed = err("report from:2026-03-01 to:2026-01-01");
    assert_eq!(bad.command, "report");
    assert_eq!(
        bad.message,
        "`from:2026-02-30` is not a date: use from:YYYY-MM-DD"
    );
    assert!(short.message.contains("is not a date"), "{}", short.message);
    assert_eq!(reversed.message, "from:2026-03-01 is after to:2026-01-01");
}

#[test]
fn bad_mentions_are_refused() {
    // (`@irc:alice` is shaped as an account; which platforms exist is the use case's check.)
    for mention in [
        "alice",
        "@",
        "<@>",
        "@Irc:alice",
        "@:alice",
        "<#C123>",
        "@a b",
    ] {
        let e = err(&format!("incident assign INC-1 {mention}"));
        assert_eq!(e.command, "incident assign");
        assert!(
            e.message.contains("is not a user") || e.message.contains("unexpected"),
            "{mention}: {}",
            e.message
        );
    }
    let missing = err("role grant");
    assert_eq!(missing.message, "missing user: @name or a mention");
}

#[test]
fn help_with_more_than_one_topic_is_refused() {
    let unknown = err("help a b");
    let extra = err("help incident raise");
    assert_eq!(unknown.command, "help");
    assert!(
        unknown.message.contains("unknown help topic `a`"),
        "{}",
        unknown.message
    );
    assert_eq!(
        extra.message,
        "unexpected `raise`: `help` takes nothing more"
    );
}

#[test]
fn audit_of_something_that_is_neither_id_nor_name_is_refused() {
    let e = err("audit a/b");
    assert_eq!(e.command, "audit");
    assert!(e.message.contains("neither a record ID"), "{}", e.message);
    assert_eq!(err("audit").message, "missing record ID or name");
}

#[test]
fn bad_role_is_refused() {
    let e = err("role grant @alice boss");
    assert_eq!(e.command, "role grant");
    assert!(e.message.contains("`boss` is not a role"), "{}", e.message);
}

#[test]
fn text_after_show_id_is_refused() {
    for text in [
        "incident show INC-1 now",
        "change show CHG-1 please",
        "nc close NC-1 done",
        "sla INC-1 x",
    ] {
        let e = err(text);
        assert!(
            e.message.starts_with("unexpected `"),
            "{text}: {}",
            e.message
        );
    }
    let e = err("change show CHG-1 please");
    assert_eq!(e.command, "change show");
    assert_eq!(
        e.message,
        "unexpected `please`: `change show` takes nothing more"
    );
}

#[test]
fn bad_names_are_refused() {
    let service = err("incident raise X service:a/b");
    let list = err("ci add db depends:a,,b");
    let spaced = err(r#"service add "web shop""#);
    assert!(
        service
            .message
            .contains("`service:a/b` is not a valid name"),
        "{}",
        service.message
    );
    assert!(list.message.contains("empty CI name"), "{}", list.message);
    assert!(
        spaced.message.contains("`web shop` is not a valid name"),
        "{}",
        spaced.message
    );
}

#[test]
fn bad_pull_request_links_are_refused() {
    for pull in [
        "acme/shop",
        "acme/shop#0",
        "acme shop#1",
        "acme/sh op#1",
        "acme/shop#99999999999999999999999",
    ] {
        let e = err(&format!("change link CHG-1 {pull}"));
        assert_eq!(e.command, "change link");
    }
    let e = err("change link CHG-1 acme/shop#0");
    assert!(
        e.message.contains("no valid pull request number"),
        "{}",
        e.message
    );
}

#[test]
fn release_create_refuses_stray_words_and_missing_version() {
    let stray = err("release create 1.0 CHG-1 hello");
    let missing = err("release create CHG-1 CHG-2");
    let repo = err("release create 1.0 repo:acme");
    assert!(
        stray.message.contains("`hello` is not a change ID"),
        "{}",
        stray.message
    );
    assert!(
        missing.message.contains("is not a version"),
        "{}",
        missing.message
    );
    assert!(
        repo.message.contains("is not a repository"),
        "{}",
        repo.message
    );
    assert!(err("release deploy REL-1")
        .message
        .contains("missing env:NAME"));
}

#[test]
fn oversized_input_is_refused_with_the_command_named() {
    let text = format!("incident raise {}", "é".repeat(MAX_CHARS));
    let e = err(&text);
    assert_eq!(e.command, "incident raise");
    assert!(e.message.starts_with("command too long"), "{}", e.message);
}

#[test]
fn input_at_the_limit_is_accepted() {
    let prefix = "incident raise ";
    let text = format!("{prefix}{}", "x".repeat(MAX_CHARS - prefix.len()));
    let cmd = parse(&text);
    assert!(cmd.is_ok(), "{cmd:?}");
}

// ---- commands given in parts ----

fn ok_parts(name: &str, parts: &[Part<'_>]) -> Command {
    parse_parts(name, parts).unwrap_or_else(|e| panic!("`{name}` {parts:?} should parse: {e}"))
}

fn err_parts(name: &str, parts: &[Part<'_>]) -> UsageError {
    match parse_parts(name, parts) {
        Err(e) => e,
        Ok(cmd) => panic!("`{name}` {parts:?} should be refused, got {cmd:?}"),
    }
}

#[test]
fn parts_literal_title_keeps_option_like_words_while_options_apply() {
    let parts = [
        Part::Literal("DB slow impact:high"),
        Part::Opt("impact", "low"),
        Part::Opt("service", "db"),
    ];

    let cmd = ok_parts("incident raise", &parts);

    assert_eq!(
        cmd,
        Command::Incident(IncidentCmd::Raise {
            title: "DB slow impact:high".into(),
            impact: Some(Level::Low),
            urgency: None,
            service: Some("db".into()),
            ci: None,
            security: false,
        })
    );
}

#[test]
fn parts_literal_with_quotes_and_flags_is_taken_verbatim() {
    let title = r#"Checkout down impact:high "x" security 'y"#;

    let cmd = ok_parts("incident raise", &[Part::Literal(title)]);

    assert_eq!(cmd, Command::Incident(raise(title)));
}

#[test]
fn parts_change_approve_with_id_and_quoted_text() {
    let parts = [Part::Word("CHG-3"), Part::Literal("looks \"fine\"")];

    let cmd = ok_parts("change approve", &parts);

    assert_eq!(
        cmd,
        Command::Change(ChangeCmd::Act {
            action: ChangeAction::Approve,
            id: id("CHG-3"),
            text: Some("looks \"fine\"".into()),
        })
    );
}

#[test]
fn parts_give_the_same_command_as_the_equivalent_text() {
    let cases: [(&str, &str, &[Part<'_>]); 5] = [
        (
            r#"change request "Upgrade DB" type:normal risk:high window:2026-12-01T22:00Z..2026-12-01T23:00Z"#,
            "change request",
            &[
                Part::Literal("Upgrade DB"),
                Part::Opt("type", "normal"),
                Part::Opt("risk", "high"),
                Part::Opt("window", "2026-12-01T22:00Z..2026-12-01T23:00Z"),
            ],
        ),
        (
            "release create 1.2.0 repo:acme/shop CHG-1 CHG-2",
            "release create",
            &[
                Part::Word("1.2.0"),
                Part::Opt("repo", "acme/shop"),
                Part::Word("CHG-1"),
                Part::Word("CHG-2"),
            ],
        ),
        (
            "incident raise \"Login fails\" security urgency:high",
            "incident raise",
            &[
                Part::Literal("Login fails"),
                Part::Word("security"),
                Part::Opt("urgency", "high"),
            ],
        ),
        (
            "role grant @alice cab",
            "role grant",
            &[Part::Word("@alice"), Part::Word("cab")],
        ),
        ("help incident", "help", &[Part::Word("incident")]),
    ];

    for (text, name, parts) in cases {
        let from_text = ok(text);

        let from_parts = ok_parts(name, parts);

        assert_eq!(from_parts, from_text, "{text}");
    }
}

#[test]
fn parts_give_the_same_errors_as_the_equivalent_text() {
    let cases: [(&str, &str, &[Part<'_>]); 5] = [
        (
            "incident raise Outage impact:huge",
            "incident raise",
            &[Part::Literal("Outage"), Part::Opt("impact", "huge")],
        ),
        (
            "change approve INC-3",
            "change approve",
            &[Part::Word("INC-3")],
        ),
        (
            "release create 1.2.0 repo:nope",
            "release create",
            &[Part::Word("1.2.0"), Part::Opt("repo", "nope")],
        ),
        ("incident frobnicate", "incident frobnicate", &[]),
        ("", "", &[]),
    ];

    for (text, name, parts) in cases {
        let from_text = err(text);

        let from_parts = err_parts(name, parts);

        assert_eq!(from_parts, from_text, "{text}");
    }
}

#[test]
fn parts_word_must_be_one_nonempty_word() {
    for word in ["CHG 3", "CHG-3\n", ""] {
        let e = err_parts("change show", &[Part::Word(word)]);

        assert_eq!(e.command, "change show", "{word:?}");
        assert!(e.message.contains("one word"), "{word:?}: {e}");
    }
}

#[test]
fn parts_option_value_with_a_space_is_refused_naming_the_option() {
    let parts = [Part::Word("my-ci"), Part::Opt("depends", "db, cache")];

    let e = err_parts("ci add", &parts);

    assert_eq!(e.command, "ci add");
    assert_eq!(e.message, "`depends:db, cache` must be one word");
}

#[test]
fn parts_option_with_a_malformed_key_is_refused() {
    for key in ["", "impact:x", "imp act"] {
        let parts = [Part::Literal("Outage"), Part::Opt(key, "low")];

        let e = err_parts("incident raise", &parts);

        assert!(e.message.contains("not an option name"), "{key:?}: {e}");
    }
}

#[test]
fn parts_blank_literal_counts_as_absent() {
    let act = ok_parts(
        "change approve",
        &[Part::Word("CHG-3"), Part::Literal("  ")],
    );
    let missing = err_parts("incident raise", &[Part::Literal("")]);

    assert_eq!(
        act,
        Command::Change(ChangeCmd::Act {
            action: ChangeAction::Approve,
            id: id("CHG-3"),
            text: None,
        })
    );
    assert_eq!(missing, err("incident raise"));
}

#[test]
fn parts_name_alone_names_the_command() {
    let e = err_parts("incident", &[Part::Word("raise"), Part::Literal("Outage")]);

    assert_eq!(e.command, "incident");
    assert!(e.message.starts_with("missing incident command"), "{e}");
}

#[test]
fn parts_longer_than_the_text_limit_are_refused() {
    let long = "x".repeat(MAX_CHARS);

    let e = err_parts("incident raise", &[Part::Literal(&long)]);

    assert_eq!(e.command, "incident raise");
    assert!(e.message.starts_with("command too long"), "{e}");
}

// ---- properties ----

const GRAMMARISH: &[&str] = &[
    "incident",
    "raise",
    "ack",
    "show",
    "assign",
    "note",
    "list",
    "major",
    "priority",
    "urgency:low",
    "impact:bogus",
    "check",
    "change",
    "request",
    "link",
    "release",
    "create",
    "deploy",
    "role",
    "grant",
    "audit",
    "report",
    "help",
    "nc",
    "ci",
    "service",
    "add",
    "sla",
    "problem",
    "open",
    "CHG-1",
    "INC-2",
    "REL-3",
    "NC-0",
    "impact:",
    "impact:high",
    "type:normal",
    "window:",
    "..",
    "2026-12-01T22:00Z",
    "from:2026-01-01",
    "\"",
    "'",
    "“",
    "”",
    "‘",
    "’",
    "\"a b\"",
    "<@",
    "<@U1>",
    "@",
    "@alice",
    "security",
    "#",
    "acme/shop#1",
    "depends:a,b",
    ":",
    "é",
    "\u{0}",
    "\n",
    "owner:@x",
    "env:prod",
];

fn grammarish() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let token = prop_oneof![
        3 => proptest::sample::select(GRAMMARISH).prop_map(String::from),
        1 => "\\PC{0,5}",
        1 => any::<char>().prop_map(String::from),
    ];
    let sep = proptest::sample::select(&[" ", "  ", "", "\t", "\u{a0}"][..]);
    proptest::collection::vec((token, sep), 0..10)
        .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
}

fn check_invariants(text: &str) {
    if text.chars().any(crate::domain::text::forbidden) {
        let e = parse(text).expect_err("text with control characters is refused");
        assert!(e.message.contains("character"), "{text:?}: {}", e.message);
        return;
    }
    match parse(text) {
        Ok(cmd) => {
            // The SLA clock's internal command is never typed.
            assert_ne!(cmd, Command::Tick, "{text:?}");
            // The command's name is what the text's first words say (modulo case and `fulfill`).
            let name = cmd.name();
            let toks = tokenize(text).expect("parsed text tokenises");
            let said: Vec<String> = toks
                .iter()
                .take(name.split(' ').count())
                .map(|t| t.text.to_lowercase().replace("fulfill", "fulfil"))
                .collect();
            assert_eq!(said.join(" "), name, "{text:?}");
            assert!(usage(name).is_some(), "{name}");
        }
        Err(e) => {
            assert!(!e.usage.is_empty(), "{text:?}");
            assert!(!e.message.is_empty(), "{text:?}");
            assert!(
                e.command.is_empty() || usage(e.command) == Some(e.usage),
                "{e:?}"
            );
        }
    }
}

#[test]
fn control_and_bidi_characters_are_usage_errors_that_name_them() {
    let e = parse("incident raise a\u{0}b impact:low urgency:low").unwrap_err();
    assert_eq!(e.command, "incident raise");
    assert!(e.message.contains("NUL, U+0000"), "{}", e.message);
    let e = parse("incident note INC-1 pay \u{202e}gnp.exe").unwrap_err();
    assert!(e.message.contains("bidirectional"), "{}", e.message);
    let e = parse_parts(
        "incident raise",
        &[Part::Literal("ok\u{1b}[2J"), Part::Opt("impact", "low")],
    )
    .unwrap_err();
    assert!(e.message.contains("escape, U+001B"), "{}", e.message);
    let e = parse_parts("incident raise", &[Part::Opt("service", "a\u{2066}")]).unwrap_err();
    assert!(e.message.contains("U+2066"), "{}", e.message);
    // Tab and newline stay ordinary white space.
    assert!(parse("incident raise a\tb\nc impact:low").is_ok());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in proptest::prelude::any::<String>()) {
        check_invariants(&text);
    }

    #[test]
    fn parse_never_panics_on_grammarish_text(text in grammarish()) {
        check_invariants(&text);
    }

    #[test]
    fn literal_titles_survive_parts(title in "\\PC{0,60}") {
        let cmd = parse_parts("incident raise", &[Part::Literal(&title), Part::Opt("impact", "low")]);
        if title.trim().is_empty() {
            proptest::prop_assert!(cmd.is_err(), "{title:?}: {cmd:?}");
        } else {
            let Ok(Command::Incident(IncidentCmd::Raise { title: got, impact, .. })) = cmd else {
                panic!("{title:?}: {cmd:?}");
            };
            proptest::prop_assert_eq!(got, title.trim());
            proptest::prop_assert_eq!(impact, Some(Level::Low));
        }
    }

    #[test]
    fn quoted_titles_survive_parsing(title in "[^\"\\s\\pC][^\"\\pC]{0,40}[^\"\\s\\pC]") {
        let cmd = parse(&format!("incident raise \"{title}\" impact:low"));
        let Ok(Command::Incident(IncidentCmd::Raise { title: got, impact, .. })) = cmd else {
            panic!("{title:?}: {cmd:?}");
        };
        proptest::prop_assert_eq!(got, title);
        proptest::prop_assert_eq!(impact, Some(Level::Low));
    }
}

// ---- the table, the usage lines and the parser agree ----

/// The usage lines as users have known them; the table must keep rendering exactly these.
const KNOWN_USAGES: &[&str] = &[
    "incident raise <title> [impact:high|medium|low] [urgency:high|medium|low] [service:NAME] [ci:NAME] [security]",
    "incident ack|resolve|close|reopen INC-n [text]",
    "incident show INC-n",
    "incident assign INC-n @user",
    "incident note INC-n <text>",
    "incident list [open|mine|breached|all]",
    "incident major INC-n",
    "incident escalate INC-n",
    "incident role INC-n commander|comms|scribe @user",
    "incident priority INC-n [impact:high|medium|low] [urgency:high|medium|low]",
    "request raise <title> [service:NAME]",
    "request fulfil|close REQ-n [text]",
    "request show REQ-n",
    "problem open <title> [from:INC-1,INC-2]",
    "problem link PRB-n INC-n",
    "problem rootcause|workaround|resolve|close PRB-n <text>",
    "problem show PRB-n",
    "change request <title> type:standard|normal|emergency [risk:low|medium|high] [service:NAME] [window:2026-12-01T22:00Z..2026-12-01T23:00Z] [template:NAME]",
    "change submit|approve|reject|start|complete|fail|rollback|review|close CHG-n [text]",
    "change show CHG-n",
    "change link CHG-n owner/repo#123",
    "change list [open|waiting|mine]",
    "release create <version> [repo:owner/name] [CHG-1 CHG-2 ...]",
    "release deploy REL-n env:NAME",
    "release rollback REL-n [text]",
    "release show REL-n",
    "service add <name> [owner:@user] [escalation:NAME]",
    "service show <name>",
    "ci add <name> [type:KIND] [service:NAME] [depends:NAME,...]",
    "ci show <name>",
    "nc raise <title> [record:ID]",
    "nc list [open]",
    "nc correct NC-n <corrective action>",
    "nc close NC-n",
    "nc show NC-n",
    "role grant|revoke @user admin|incident-manager|change-manager|cab|ecab",
    "oncall who [schedule]",
    "oncall show <schedule>",
    "oncall override <schedule> @user from:2026-12-24T18:00Z to:2026-12-27T09:00Z",
    "sla INC-n",
    "report [from:YYYY-MM-DD] [to:YYYY-MM-DD]",
    "audit ID",
    "help [topic]",
];

#[test]
fn the_table_renders_the_known_usage_lines() {
    let rendered: Vec<&str> = FORMS.iter().map(Form::usage).collect();
    assert_eq!(rendered, KNOWN_USAGES);
}

/// A valid word for a slot, so every form's usage can be turned back into text that parses.
pub(crate) fn example(slot: &Slot) -> String {
    let by_shape = |shown: &str| {
        let known = match shown {
            "NAME" | "KIND" | "<name>" => "db",
            "NAME,..." => "db,cache",
            "@user" => "@alice",
            "owner/name" => "acme/shop",
            "ID" => "INC-1",
            "YYYY-MM-DD" => "2026-01-01",
            "<version>" => "1.4.0",
            "[topic]" => "incident",
            "[schedule]" | "<schedule>" => "payments",
            "2026-12-24T18:00Z" | "2026-12-27T09:00Z" => shown,
            "owner/repo#123" | "INC-1,INC-2" | "2026-12-01T22:00Z..2026-12-01T23:00Z" => shown,
            other => match other.split_once('|') {
                Some((first, _)) => first,
                None => panic!("no example for `{other}`: add one to `example`"),
            },
        };
        known.to_string()
    };
    let prefix = |k: crate::domain::ids::Kind| k.prefix().unwrap_or("?");
    match slot.kind {
        SlotKind::Id(k) => format!("{}-1", prefix(k)),
        SlotKind::Ids(k) => format!("{p}-1 {p}-2", p = prefix(k)),
        SlotKind::Word(Some(shown)) => by_shape(shown),
        SlotKind::Word(None) if slot.required => by_shape(&format!("<{}>", slot.name)),
        SlotKind::Word(None) => by_shape(&format!("[{}]", slot.name)),
        SlotKind::Choice { values, .. } => values[0].to_string(),
        SlotKind::Opt {
            choices: [first, ..],
            ..
        } => format!("{}:{first}", slot.name),
        SlotKind::Opt { shown, .. } => format!("{}:{}", slot.name, by_shape(shown)),
        SlotKind::Flag => slot.name.to_string(),
        SlotKind::Text => "some words".to_string(),
    }
}

/// The text of `verb` with every slot of its form filled, but for `skip`.
fn example_text(verb: &Verb, form: &Form, skip: Option<usize>) -> String {
    let mut words = vec![verb.name.to_string()];
    for (i, slot) in form.slots.iter().enumerate() {
        if Some(i) != skip {
            words.push(example(slot));
        }
    }
    words.join(" ")
}

fn every_verb() -> impl Iterator<Item = (&'static Verb, &'static Form)> {
    FORMS
        .iter()
        .flat_map(|f| f.verbs.iter().map(move |v| (v, f)))
}

#[test]
fn every_verb_parses_back_from_its_usage_to_the_command_it_names() {
    for (verb, form) in every_verb() {
        let text = example_text(verb, form, None);
        let cmd = parse(&text).unwrap_or_else(|e| panic!("`{text}`: {e}"));
        assert_eq!(cmd.name(), verb.name, "{text}");
        assert_eq!(form_named(cmd.name()).map(|(v, _)| v.name), Some(verb.name));
    }
}

#[test]
fn leaving_out_a_required_slot_is_refused_naming_the_command() {
    for (verb, form) in every_verb() {
        for (i, _) in form.slots.iter().enumerate().filter(|(_, s)| s.required) {
            let text = example_text(verb, form, Some(i));
            let e = parse(&text).expect_err(&text);
            assert_eq!(e.command, verb.name, "{text}: {e}");
            assert_eq!(e.usage, form.usage(), "{text}");
        }
    }
}

#[test]
fn every_option_and_flag_of_a_usage_is_read_by_the_parser() {
    for (verb, form) in every_verb() {
        for slot in form.slots.iter().filter(|s| s.kind.is_named()) {
            let text = format!("{} {}", example_text(verb, form, None), example(slot));
            let e = parse(&text).expect_err(&text);
            assert!(e.message.contains("given twice"), "{text}: {e}");
        }
    }
}

#[test]
fn options_of_other_forms_are_not_read_as_options() {
    let mut keys: Vec<&Slot> = FORMS
        .iter()
        .flat_map(|f| f.slots.iter().filter(|s| s.kind.is_named()))
        .collect();
    keys.sort_by_key(|s| s.name);
    keys.dedup_by_key(|s| s.name);
    for (verb, form) in every_verb() {
        for other in keys.iter().filter(|k| form.slot(k.name).is_none()) {
            let word = example(other);
            let text = format!("{} {word} {word}", example_text(verb, form, None));
            if let Err(e) = parse(&text) {
                assert!(!e.message.contains("given twice"), "{text}: {e}");
            }
        }
    }
}

#[test]
fn every_choice_is_accepted_and_nothing_else() {
    for (verb, form) in every_verb() {
        for (i, slot) in form.slots.iter().enumerate() {
            let (shown, hidden, with_key) = match slot.kind {
                SlotKind::Choice { values, hidden } => (values, hidden, false),
                SlotKind::Opt { choices, .. } if !choices.is_empty() => (choices, &[][..], true),
                _ => continue,
            };
            let with = |value: &str| {
                let value = if with_key {
                    format!("{}:{value}", slot.name)
                } else {
                    value.to_string()
                };
                let mut words = vec![verb.name.to_string()];
                for (j, s) in form.slots.iter().enumerate() {
                    words.push(if i == j { value.clone() } else { example(s) });
                }
                words.join(" ")
            };
            for value in shown.iter().chain(hidden) {
                let text = with(value);
                assert!(parse(&text).is_ok(), "{text}: {:?}", parse(&text));
            }
            let text = with("bogus");
            let e = parse(&text).expect_err(&text);
            for value in shown.iter() {
                assert!(e.message.contains(value), "{text}: {e}");
            }
        }
    }
}

#[test]
fn the_role_choice_lists_every_role() {
    let (_, form) = form_named("role grant").expect("role grant");
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    assert!(matches!(
        form.slot("role").map(|s| s.kind),
        Some(SlotKind::Choice { values, .. }) if values == roles
    ));
}

#[test]
fn every_form_starts_with_a_topic_and_no_name_is_declared_twice() {
    let mut seen = Vec::new();
    for (verb, _) in every_verb() {
        let topic = verb.name.split(' ').next().unwrap_or_default();
        assert!(TOPICS.iter().any(|t| t.name == topic), "{}", verb.name);
        assert!(!seen.contains(&verb.name), "{} twice", verb.name);
        seen.push(verb.name);
    }
    for form in FORMS {
        let mut names: Vec<&str> = form.slots.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), form.slots.len(), "{}", form.usage());
    }
}

//! `parse_event` against webhook deliveries shaped like GitHub's: real ones recorded by octocrab's
//! test suite, and ones written from GitHub's webhook payload documentation
//! (see tests/fixtures/github/README.md).

use opsledger_github::{parse_event, Commit, GithubEvent, ParseError, PullRequest};
use serde_json::{json, Value};

macro_rules! fixture {
    ($file:literal) => {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/github/",
            $file
        ))
        .expect(concat!("fixture ", $file, " is readable"))
    };
}

/// The repository of every fixture written from GitHub's documentation, and of `push.json`.
const DOCS_REPO: &str = "gagbo/app-test-repo";
/// The repository of octocrab's recorded pull request and issue comment deliveries.
const RECORDED_REPO: &str = "gagbo/ouro-closures";
const RELEASE_SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("fixture is JSON")
}

#[test]
fn ping_parses_as_ping() {
    // Arrange
    let body = fixture!("ping.json");

    // Act
    let event = parse_event("ping", &body);

    // Assert
    assert_eq!(event, Ok(GithubEvent::Ping));
}

#[test]
fn opened_pull_request_carries_number_head_base_and_author() {
    // Arrange
    let body = fixture!("pull_request_opened.json");

    // Act
    let event = parse_event("pull_request", &body).expect("parses");

    // Assert
    assert_eq!(
        event,
        GithubEvent::PullRequest {
            action: "opened".into(),
            pull_request: PullRequest {
                repo: RECORDED_REPO.into(),
                number: 2,
                title: "[do not merge] test commit".into(),
                body: String::new(),
                branch: "test_pr".into(),
                base: "trunk".into(),
                head_sha: "36afaef2afdf0ce794d7e4663e7f327664aaa4d7".into(),
                author: "gagbo".into(),
                url: "https://github.com/gagbo/ouro-closures/pull/2".into(),
                merged: false,
                merge_sha: None,
            },
            sender: "gagbo".into(),
            installation: Some(7777777),
        }
    );
}

#[test]
fn closed_unmerged_pull_request_is_not_marked_merged() {
    // Arrange
    let body = fixture!("pull_request_closed.json");

    // Act
    let event = parse_event("pull_request", &body).expect("parses");

    // Assert
    let GithubEvent::PullRequest {
        action,
        pull_request,
        ..
    } = event
    else {
        panic!("expected a pull request event, got {event:?}");
    };
    assert_eq!(action, "closed");
    assert_eq!(pull_request.repo, RECORDED_REPO);
    assert_eq!(pull_request.number, 2);
    assert_eq!(pull_request.branch, "test_pr");
    assert_eq!(pull_request.base, "trunk");
    assert!(!pull_request.merged);
    // GitHub fills in the test merge commit even for a pull request closed without merging.
    assert_eq!(
        pull_request.merge_sha.as_deref(),
        Some("569605edb950caefdf9006dec7f9b40b232d05a7")
    );
}

#[test]
fn closed_pull_request_with_merged_at_is_marked_merged() {
    // Arrange
    let mut body = json_of(&fixture!("pull_request_closed.json"));
    body["pull_request"]["merged"] = json!(true);
    body["pull_request"]["merged_at"] = json!("2023-07-13T12:00:00Z");
    let body = serde_json::to_vec(&body).unwrap();

    // Act
    let event = parse_event("pull_request", &body).expect("parses");

    // Assert
    let GithubEvent::PullRequest { pull_request, .. } = event else {
        panic!("expected a pull request event, got {event:?}");
    };
    assert!(pull_request.merged);
}

#[test]
fn synchronized_pull_request_carries_the_new_head_sha() {
    // Arrange
    let body = fixture!("pull_request_synchronize.json");

    // Act
    let event = parse_event("pull_request", &body).expect("parses");

    // Assert
    let GithubEvent::PullRequest {
        action,
        pull_request,
        sender,
        installation,
    } = event
    else {
        panic!("expected a pull request event, got {event:?}");
    };
    assert_eq!(action, "synchronize");
    assert_eq!(pull_request.repo, RECORDED_REPO);
    assert_eq!(pull_request.number, 5);
    assert_eq!(pull_request.branch, "test_pr_O");
    assert_eq!(pull_request.base, "trunk");
    assert_eq!(
        pull_request.head_sha,
        "7e39d83fc6a99f2c6a02cc7637c4de8db50da6ca"
    );
    assert_eq!(pull_request.author, "gagbo");
    assert_eq!(sender, "gagbo");
    assert_eq!(installation, Some(7777777));
}

#[test]
fn every_documented_pull_request_action_parses() {
    // Arrange
    const ACTIONS: [&str; 21] = [
        "assigned",
        "auto_merge_disabled",
        "auto_merge_enabled",
        "closed",
        "converted_to_draft",
        "demilestoned",
        "dequeued",
        "edited",
        "enqueued",
        "labeled",
        "locked",
        "milestoned",
        "opened",
        "ready_for_review",
        "reopened",
        "review_request_removed",
        "review_requested",
        "synchronize",
        "unassigned",
        "unlabeled",
        "unlocked",
    ];
    let opened = json_of(&fixture!("pull_request_opened.json"));

    for expected in ACTIONS {
        let mut body = opened.clone();
        body["action"] = json!(expected);
        let body = serde_json::to_vec(&body).unwrap();

        // Act
        let event = parse_event("pull_request", &body);

        // Assert
        match event {
            Ok(GithubEvent::PullRequest { action, .. }) => assert_eq!(action, expected),
            other => panic!("action `{expected}` gave {other:?}"),
        }
    }
}

#[test]
fn tag_push_carries_the_tag_and_no_branch() {
    // Arrange
    let body = fixture!("push.json");

    // Act
    let event = parse_event("push", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Push {
            repo: DOCS_REPO.into(),
            branch: None,
            tag: Some("v0.2.1".into()),
            after: "f19c884ab35c8d243bf9d857d631a5d4f190079f".into(),
            commits: vec![],
            // The recorded pusher has no username, so the sender stands in.
            pusher: "gagbo".into(),
            installation: Some(88888888),
        })
    );
}

#[test]
fn branch_push_carries_the_branch_and_its_commits() {
    // Arrange: the recorded tag push, turned into a push of its head commit to `main`.
    let mut body = json_of(&fixture!("push.json"));
    body["ref"] = json!("refs/heads/main");
    body["before"] = json!("9049f1265b7d61be4a8904a9a27120d2064dab3b");
    body["after"] = json!("bd7a63727468ca899e6a43e40fe9d76b3501f3f4");
    body["created"] = json!(false);
    body["commits"] = json!([body["head_commit"].clone()]);
    body["pusher"]["username"] = json!("gagbo");
    let body = serde_json::to_vec(&body).unwrap();

    // Act
    let event = parse_event("push", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Push {
            repo: DOCS_REPO.into(),
            branch: Some("main".into()),
            tag: None,
            after: "bd7a63727468ca899e6a43e40fe9d76b3501f3f4".into(),
            commits: vec![Commit {
                sha: "bd7a63727468ca899e6a43e40fe9d76b3501f3f4".into(),
                message: "Merge pull request #2 from gagbo/add_slow_route\n\nAdd slow route".into(),
            }],
            pusher: "gagbo".into(),
            installation: Some(88888888),
        })
    );
}

#[test]
fn published_release_carries_tag_and_url() {
    // Arrange
    let body = fixture!("release_published.json");

    // Act
    let event = parse_event("release", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Release {
            action: "published".into(),
            repo: DOCS_REPO.into(),
            tag: "v1.2.0".into(),
            url: "https://github.com/gagbo/app-test-repo/releases/tag/v1.2.0".into(),
            sender: "gagbo".into(),
            installation: Some(77),
        })
    );
}

#[test]
fn created_tag_carries_ref_type_tag_and_name() {
    // Arrange
    let body = fixture!("create_tag.json");

    // Act
    let event = parse_event("create", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Create {
            repo: DOCS_REPO.into(),
            ref_type: "tag".into(),
            name: "v1.2.0".into(),
            sender: "gagbo".into(),
            installation: Some(77),
        })
    );
}

#[test]
fn created_deployment_carries_sha_ref_and_environment() {
    // Arrange
    let body = fixture!("deployment_created.json");

    // Act
    let event = parse_event("deployment", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Deployment {
            repo: DOCS_REPO.into(),
            sha: RELEASE_SHA.into(),
            reference: "v1.2.0".into(),
            environment: "production".into(),
        })
    );
}

#[test]
fn deployment_status_carries_state_environment_and_creator() {
    // Arrange
    let body = fixture!("deployment_status_created.json");

    // Act
    let event = parse_event("deployment_status", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::DeploymentStatus {
            repo: DOCS_REPO.into(),
            sha: RELEASE_SHA.into(),
            reference: "v1.2.0".into(),
            environment: "production".into(),
            state: "success".into(),
            creator: "gagbo".into(),
        })
    );
}

#[test]
fn deployment_protection_rule_carries_callback_url_and_environment() {
    // Arrange
    let body = fixture!("deployment_protection_rule_requested.json");

    // Act
    let event = parse_event("deployment_protection_rule", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::DeploymentProtectionRule {
            repo: DOCS_REPO.into(),
            sender: "gagbo".into(),
            environment: "production".into(),
            sha: RELEASE_SHA.into(),
            reference: "v1.2.0".into(),
            callback_url: "https://api.github.com/repos/gagbo/app-test-repo/actions/runs/1234/deployment_protection_rule".into(),
            installation: Some(77),
        })
    );
}

#[test]
fn deployment_protection_rule_without_callback_url_is_ignored_naming_the_field() {
    // Arrange
    let mut body = json_of(&fixture!("deployment_protection_rule_requested.json"));
    body.as_object_mut()
        .unwrap()
        .remove("deployment_callback_url");
    let body = serde_json::to_vec(&body).unwrap();

    // Act
    let event = parse_event("deployment_protection_rule", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Ignored {
            event: "deployment_protection_rule".into(),
            reason: "no `deployment_callback_url`".into(),
        })
    );
}

#[test]
fn requested_check_suite_carries_head_sha_and_pull_request_numbers() {
    // Arrange
    let body = fixture!("check_suite_requested.json");

    // Act
    let event = parse_event("check_suite", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::CheckSuite {
            action: "requested".into(),
            repo: DOCS_REPO.into(),
            head_sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
            pull_requests: vec![12],
            installation: Some(77),
        })
    );
}

#[test]
fn issue_comment_carries_issue_number_and_comment_author() {
    // Arrange
    let body = fixture!("issue_comment_created.json");

    // Act
    let event = parse_event("issue_comment", &body).expect("parses");

    // Assert
    let GithubEvent::IssueComment {
        action,
        repo,
        number,
        on_pull_request,
        body,
        author,
    } = event
    else {
        panic!("expected an issue comment event, got {event:?}");
    };
    assert_eq!(action, "created");
    assert_eq!(repo, RECORDED_REPO);
    assert_eq!(number, 1);
    assert!(!on_pull_request);
    assert!(body.starts_with("Just received an event for that issue"));
    assert_eq!(author, "gagbo-test-app[bot]");
}

#[test]
fn event_opsledger_does_not_act_on_is_other() {
    // Arrange: a `star` delivery as GitHub documents it, with the repository and sender it carries.
    let release = json_of(&fixture!("release_published.json"));
    let star = serde_json::to_vec(&json!({
        "action": "created",
        "starred_at": "2024-05-14T11:20:31Z",
        "repository": release["repository"],
        "sender": release["sender"],
    }))
    .unwrap();

    // Act
    let event = parse_event("star", &star);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Other {
            event: "star".into()
        })
    );
}

#[test]
fn event_type_unknown_to_octocrab_is_other() {
    // Arrange
    let body =
        serde_json::to_vec(&json!({ "action": "created", "something": { "id": 1 } })).unwrap();

    // Act
    let event = parse_event("some_future_event", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Other {
            event: "some_future_event".into()
        })
    );
}

#[test]
fn garbage_pull_request_body_is_malformed() {
    // Arrange
    let body = b"this is not { json";

    // Act
    let event = parse_event("pull_request", body);

    // Assert
    assert!(
        matches!(event, Err(ParseError::Malformed { ref event, .. }) if event == "pull_request"),
        "got {event:?}"
    );
}

#[test]
fn pull_request_body_missing_the_pull_request_is_ignored_naming_the_field() {
    // Arrange
    let mut body = json_of(&fixture!("pull_request_opened.json"));
    body.as_object_mut().unwrap().remove("pull_request");
    let body = serde_json::to_vec(&body).unwrap();

    // Act
    let event = parse_event("pull_request", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Ignored {
            event: "pull_request".into(),
            reason: "no `pull_request`".into(),
        })
    );
}

#[test]
fn a_json_body_that_is_not_an_object_is_malformed() {
    // Act
    let event = parse_event("push", b"[1, 2, 3]");

    // Assert
    assert!(
        matches!(event, Err(ParseError::Malformed { ref event, .. }) if event == "push"),
        "got {event:?}"
    );
}

#[test]
fn an_unused_event_is_other_whatever_its_shape() {
    // Arrange: nothing octocrab's `issues` model could read.
    let body = br#"{"action": "pinned", "issue": 7}"#;

    // Act
    let event = parse_event("issues", body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Other {
            event: "issues".into()
        })
    );
}

#[test]
fn a_pull_request_action_newer_than_octocrab_is_other_not_malformed() {
    // Arrange
    let mut payload: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/github/pull_request_opened.json"
        ))
        .unwrap(),
    )
    .unwrap();
    payload["action"] = serde_json::json!("some_new_action");

    // Act
    let parsed = opsledger_github::parse_event("pull_request", payload.to_string().as_bytes());

    // Assert
    assert!(matches!(
        parsed,
        Ok(opsledger_github::GithubEvent::Other { .. })
    ));
}

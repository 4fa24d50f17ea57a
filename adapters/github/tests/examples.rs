//! `parse_event` against every example delivery GitHub publishes (npm `@octokit/webhooks-examples`
//! 7.6.1, vendored in tests/fixtures/github/examples): each one is read, none is an error.

use opsledger_github::{parse_event, GithubEvent};

/// Every example as (file name, `X-GitHub-Event`, body), sorted by file name.
fn examples() -> Vec<(String, String, Vec<u8>)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/github/examples"
    );
    let mut out: Vec<(String, String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("the examples directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let event = file.split('.').next().unwrap().to_string();
            (file, event, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_example_delivery_parses_and_none_is_ignored() {
    // Arrange
    let examples = examples();
    assert_eq!(examples.len(), 329, "the vendored examples are all there");

    // Act
    let failed: Vec<String> = examples
        .iter()
        .filter_map(|(file, event, body)| match parse_event(event, body) {
            // What GitHub itself sends always has what opsledger needs.
            Ok(GithubEvent::Ignored { reason, .. }) => Some(format!("{file}: ignored, {reason}")),
            Ok(_) => None,
            Err(e) => Some(format!("{file}: {e}")),
        })
        .collect();

    // Assert
    assert!(
        failed.is_empty(),
        "{} of {} examples were not read:\n{}",
        failed.len(),
        examples.len(),
        failed.join("\n")
    );
}

fn example(name: &str) -> Vec<u8> {
    examples()
        .into_iter()
        .find(|(file, ..)| file == name)
        .unwrap_or_else(|| panic!("example {name}"))
        .2
}

#[test]
fn a_deployment_made_through_the_rest_api_carries_sha_ref_and_environment() {
    // Arrange: no `workflow` and no `workflow_run`, which octocrab's model requires.
    let body = example("deployment.created.json");

    // Act
    let event = parse_event("deployment", &body);

    // Assert
    assert_eq!(
        event,
        Ok(GithubEvent::Deployment {
            repo: "Codertocat/Hello-World".into(),
            sha: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into(),
            reference: "master".into(),
            environment: "production".into(),
        })
    );
}

#[test]
fn pinned_and_unpinned_issues_are_events_opsledger_does_not_use() {
    for name in ["issues.pinned.json", "issues.unpinned.json"] {
        // Act
        let event = parse_event("issues", &example(name));

        // Assert
        assert_eq!(
            event,
            Ok(GithubEvent::Other {
                event: "issues".into()
            }),
            "{name}"
        );
    }
}

//! The GitHub rules, pure: which changes a pull request or commit names, whether a branch is
//! protected, what status a pull request's head gets, and which commits escaped the process.

use std::sync::{Arc, Mutex};

use regex::Regex;

use super::ids::{Kind, RecordId};
use super::policy::Policy;
use super::status::ChangeStatus;

/// The status context opsledger sets on pull-request heads.
pub const STATUS_CONTEXT: &str = "opsledger/change";

/// `pattern` compiled. Compiling costs far more than matching, and every pull request, push
/// and release commit asks, so the last pattern compiled is kept (the rules rarely change).
fn change_regex(pattern: &str) -> Option<Arc<Regex>> {
    static LAST: Mutex<Option<(String, Arc<Regex>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, re)) = last.as_ref().filter(|(p, _)| p == pattern) {
        return Some(re.clone());
    }
    let re = Arc::new(Regex::new(pattern).ok()?);
    *last = Some((pattern.to_string(), re.clone()));
    Some(re)
}

/// The changes `texts` name under the rules' `change_pattern` (its first group is the number),
/// in order of first mention, without duplicates.
pub fn changes_named(policy: &Policy, texts: &[&str]) -> Vec<RecordId> {
    // The pattern was validated when the rules were loaded; an invalid one names nothing.
    let Some(re) = change_regex(&policy.change_pattern) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for text in texts {
        for caps in re.captures_iter(text) {
            let n = caps
                .get(1)
                .or_else(|| caps.get(0))
                .and_then(|m| m.as_str().trim_start_matches("CHG-").parse::<u64>().ok());
            if let Some(n) = n.filter(|n| *n > 0) {
                let id = RecordId::new(Kind::Change, n);
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    out
}

/// The pull requests a commit message says it merges: `Merge pull request #12 from ...` or a
/// squash merge's `Title (#12)`.
pub fn pull_requests_merged(message: &str) -> Vec<u64> {
    let first_line = message.lines().next().unwrap_or("");
    let mut out = Vec::new();
    if let Some(rest) = first_line.strip_prefix("Merge pull request #") {
        if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
            out.push(n);
        }
    }
    if let Some(open) = first_line.rfind("(#") {
        if let Some(n) = first_line[open + 2..]
            .strip_suffix(')')
            .and_then(|n| n.parse().ok())
        {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Whether merges into `repo`'s `branch` need an approved change (`[github] protected`).
pub fn is_protected(policy: &Policy, repo: &str, branch: &str) -> bool {
    policy
        .protected_branches
        .iter()
        .any(|p| p.eq_ignore_ascii_case(&format!("{repo}:{branch}")))
}

/// A change as a pull request's status sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateChange {
    pub id: RecordId,
    pub status: ChangeStatus,
    pub approvals: usize,
    pub required: u32,
}

/// A commit status: `success`, `pending` or `failure`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrStatus {
    pub state: &'static str,
    pub description: String,
}

/// The status a pull request's head gets from the changes it names: `None` when it names none
/// and its base is not protected (opsledger has nothing to say).
pub fn pr_status(protected: bool, changes: &[GateChange]) -> Option<PrStatus> {
    if changes.is_empty() {
        return protected.then(|| PrStatus {
            state: "failure",
            description: "names no change: put CHG-n in the title, body or branch name".into(),
        });
    }
    if let Some(c) = changes.iter().find(|c| c.status == ChangeStatus::Rejected) {
        return Some(PrStatus {
            state: "failure",
            description: format!("{} was rejected by the CAB", c.id),
        });
    }
    let ids = |cs: &[&GateChange]| cs.iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
    let waiting: Vec<&GateChange> = changes
        .iter()
        .filter(|c| !c.status.is_approved_or_later())
        .collect();
    if waiting.is_empty() {
        let all: Vec<&GateChange> = changes.iter().collect();
        return Some(PrStatus {
            state: "success",
            description: format!("{} approved", ids(&all).join(", ")),
        });
    }
    let detail: Vec<String> = waiting
        .iter()
        .map(|c| match c.status {
            ChangeStatus::Draft => format!("{} is a draft: submit it for CAB votes", c.id),
            _ => format!(
                "{} waits for votes ({}/{} approvals)",
                c.id, c.approvals, c.required
            ),
        })
        .collect();
    Some(PrStatus {
        state: "pending",
        description: detail.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chg(n: u64, status: ChangeStatus) -> GateChange {
        GateChange {
            id: RecordId::new(Kind::Change, n),
            status,
            approvals: 1,
            required: 2,
        }
    }

    #[test]
    fn changes_are_found_in_titles_bodies_and_branches_once_each() {
        let p = Policy::default();
        let named = changes_named(&p, &["Fix CHG-3 and CHG-12", "Closes CHG-3", "chg-4-lower"]);
        let ids: Vec<String> = named.iter().map(|i| i.to_string()).collect();
        assert_eq!(ids, ["CHG-3", "CHG-12"]);
        assert!(changes_named(&p, &["CHG-0", "no change"]).is_empty());
    }

    #[test]
    fn a_custom_pattern_reads_its_first_group() {
        let p = Policy {
            change_pattern: r"change[/-](\d+)".into(),
            ..Policy::default()
        };
        let ids: Vec<String> = changes_named(&p, &["feature/change-7"])
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(ids, ["CHG-7"]);
    }

    #[test]
    fn merge_and_squash_commits_name_their_pull_request() {
        assert_eq!(
            pull_requests_merged("Merge pull request #12 from acme/CHG-3-db\n\nUpgrade"),
            [12]
        );
        assert_eq!(pull_requests_merged("Upgrade the DB (#41)"), [41]);
        assert!(pull_requests_merged("Fix typo").is_empty());
    }

    #[test]
    fn protected_branches_are_repo_colon_branch() {
        let p = Policy {
            protected_branches: vec!["acme/shop:main".into()],
            ..Policy::default()
        };
        assert!(is_protected(&p, "acme/shop", "main"));
        assert!(!is_protected(&p, "acme/shop", "dev"));
        assert!(!is_protected(&p, "acme/other", "main"));
    }

    #[test]
    fn the_status_is_the_worst_of_the_named_changes() {
        assert_eq!(pr_status(false, &[]), None);
        assert_eq!(pr_status(true, &[]).unwrap().state, "failure");
        assert_eq!(
            pr_status(false, &[chg(1, ChangeStatus::Submitted)]).unwrap(),
            PrStatus {
                state: "pending",
                description: "CHG-1 waits for votes (1/2 approvals)".into()
            }
        );
        assert_eq!(
            pr_status(
                false,
                &[
                    chg(1, ChangeStatus::Approved),
                    chg(2, ChangeStatus::Completed)
                ]
            )
            .unwrap()
            .state,
            "success"
        );
        assert_eq!(
            pr_status(
                false,
                &[
                    chg(1, ChangeStatus::Approved),
                    chg(2, ChangeStatus::Rejected)
                ]
            )
            .unwrap()
            .description,
            "CHG-2 was rejected by the CAB"
        );
    }
}

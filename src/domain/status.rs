//! The status state machines of every numbered record, exactly as the contract lists them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A status with a fixed set of allowed next statuses.
pub trait Lifecycle: Copy + PartialEq + fmt::Display + 'static {
    fn next(self) -> &'static [Self];
}

/// A transition the contract does not allow, with the current status and the allowed next steps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record} is {from}; {to} is not allowed from there ({})", allowed_text(.allowed))]
pub struct TransitionError {
    pub record: String,
    pub from: String,
    pub to: String,
    pub allowed: Vec<String>,
}

fn allowed_text(allowed: &[String]) -> String {
    if allowed.is_empty() {
        "it is final".to_string()
    } else {
        format!("allowed next: {}", allowed.join(", "))
    }
}

/// Moves `status` to `to` if the state machine allows it.
pub fn transition<S: Lifecycle>(
    record: &str,
    status: &mut S,
    to: S,
) -> Result<(), TransitionError> {
    if status.next().contains(&to) {
        *status = to;
        Ok(())
    } else {
        Err(TransitionError {
            record: record.to_string(),
            from: status.to_string(),
            to: to.to_string(),
            allowed: status.next().iter().map(|s| s.to_string()).collect(),
        })
    }
}

macro_rules! statuses {
    ($name:ident { $($variant:ident = $text:literal => [$($next:ident),*]),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Lifecycle for $name {
            fn next(self) -> &'static [Self] {
                match self { $($name::$variant => &[$($name::$next),*]),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

statuses!(IncidentStatus {
    New = "new" => [Acknowledged],
    Acknowledged = "acknowledged" => [Resolved],
    Resolved = "resolved" => [Closed, Acknowledged],
    Closed = "closed" => [],
});

statuses!(RequestStatus {
    New = "new" => [Fulfilled],
    Fulfilled = "fulfilled" => [Closed],
    Closed = "closed" => [],
});

statuses!(ProblemStatus {
    Open = "open" => [KnownError],
    KnownError = "known_error" => [Resolved],
    Resolved = "resolved" => [Closed],
    Closed = "closed" => [],
});

statuses!(ChangeStatus {
    Draft = "draft" => [Submitted],
    Submitted = "submitted" => [Approved, Rejected],
    Approved = "approved" => [InProgress],
    Rejected = "rejected" => [],
    InProgress = "in_progress" => [Completed, Failed, RolledBack],
    Completed = "completed" => [Closed],
    Failed = "failed" => [Closed],
    RolledBack = "rolled_back" => [Closed],
    Closed = "closed" => [],
});

statuses!(ReleaseStatus {
    Planned = "planned" => [Deployed],
    Deployed = "deployed" => [RolledBack],
    RolledBack = "rolled_back" => [],
});

statuses!(NcStatus {
    Open = "open" => [Corrected],
    Corrected = "corrected" => [Closed],
    Closed = "closed" => [],
});

/// Every status a kind's records can have, in the order of its state machine (what the
/// dashboard's status filter offers). Empty for kinds without a state machine.
pub fn names(kind: crate::domain::ids::Kind) -> Vec<&'static str> {
    use crate::domain::ids::Kind;
    fn all<S: Copy>(all: &[S], name: fn(S) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|s| name(*s)).collect()
    }
    match kind {
        Kind::Incident => all(IncidentStatus::ALL, IncidentStatus::as_str),
        Kind::Request => all(RequestStatus::ALL, RequestStatus::as_str),
        Kind::Problem => all(ProblemStatus::ALL, ProblemStatus::as_str),
        Kind::Change => all(ChangeStatus::ALL, ChangeStatus::as_str),
        Kind::Release => all(ReleaseStatus::ALL, ReleaseStatus::as_str),
        Kind::Nonconformity => all(NcStatus::ALL, NcStatus::as_str),
        Kind::Service | Kind::Ci | Kind::Alert | Kind::Oncall => Vec::new(),
    }
}

impl IncidentStatus {
    pub fn is_open(self) -> bool {
        !matches!(self, IncidentStatus::Resolved | IncidentStatus::Closed)
    }
}

impl ChangeStatus {
    /// Approved, or any status that can only follow an approval.
    pub fn is_approved_or_later(self) -> bool {
        matches!(
            self,
            ChangeStatus::Approved
                | ChangeStatus::InProgress
                | ChangeStatus::Completed
                | ChangeStatus::Failed
                | ChangeStatus::RolledBack
                | ChangeStatus::Closed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_follows_the_contract_and_can_be_reopened() {
        let mut s = IncidentStatus::New;
        transition("INC-1", &mut s, IncidentStatus::Acknowledged).unwrap();
        transition("INC-1", &mut s, IncidentStatus::Resolved).unwrap();
        transition("INC-1", &mut s, IncidentStatus::Acknowledged).unwrap();
        transition("INC-1", &mut s, IncidentStatus::Resolved).unwrap();
        transition("INC-1", &mut s, IncidentStatus::Closed).unwrap();
        assert_eq!(s, IncidentStatus::Closed);
    }

    #[test]
    fn refused_transition_names_current_status_and_allowed_steps() {
        let mut s = IncidentStatus::New;
        let err = transition("INC-4", &mut s, IncidentStatus::Closed).unwrap_err();
        assert_eq!(
            s,
            IncidentStatus::New,
            "a refused transition changes nothing"
        );
        assert_eq!(
            err.to_string(),
            "INC-4 is new; closed is not allowed from there (allowed next: acknowledged)"
        );
    }

    #[test]
    fn final_statuses_allow_nothing() {
        let mut s = ChangeStatus::Rejected;
        let err = transition("CHG-2", &mut s, ChangeStatus::InProgress).unwrap_err();
        assert!(err.to_string().ends_with("(it is final)"), "{err}");
    }

    #[test]
    fn change_lifecycle_matches_the_contract() {
        use ChangeStatus::*;
        let allowed = |from: ChangeStatus| from.next().to_vec();
        assert_eq!(allowed(Draft), vec![Submitted]);
        assert_eq!(allowed(Submitted), vec![Approved, Rejected]);
        assert_eq!(allowed(Approved), vec![InProgress]);
        assert_eq!(allowed(InProgress), vec![Completed, Failed, RolledBack]);
        for done in [Completed, Failed, RolledBack] {
            assert_eq!(allowed(done), vec![Closed]);
        }
        assert_eq!(InProgress.as_str(), "in_progress");
        assert_eq!(
            serde_json::to_string(&RolledBack).unwrap(),
            "\"rolled_back\""
        );
    }

    #[test]
    fn other_lifecycles_match_the_contract() {
        assert_eq!(RequestStatus::New.next(), &[RequestStatus::Fulfilled]);
        assert_eq!(ProblemStatus::Open.next(), &[ProblemStatus::KnownError]);
        assert_eq!(ProblemStatus::KnownError.as_str(), "known_error");
        assert_eq!(ReleaseStatus::Deployed.next(), &[ReleaseStatus::RolledBack]);
        assert_eq!(NcStatus::Corrected.next(), &[NcStatus::Closed]);
    }
}

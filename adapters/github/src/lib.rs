//! The GitHub adapter: the only crate that knows octocrab.
//!
//! It verifies webhook deliveries with octocrab's verifier, turns octocrab's webhook event types
//! into plain values (`GithubEvent`), and calls the REST API through octocrab (commit statuses,
//! check runs, pull-request comments, compare, deployment protection callbacks) with a token or
//! as a GitHub App. It knows nothing of opsledger's records or rules.

mod api;
mod inbound;
mod tolerant;
mod verify;

pub use api::{Auth, CommitStatus, GithubApi, GithubApiError, PullRequestHead};
pub use inbound::{parse_event, Commit, GithubEvent, ParseError, PullRequest};
pub use verify::{verify, VerifyError, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};

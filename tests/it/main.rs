//! The integration tests, as one binary so they link once: each module is one area of behaviour,
//! run against a real server, the real binaries, both stores and local fakes of the platforms.
#[macro_use]
mod common;

mod alerts;
mod backup;
mod cli;
mod cli_policy;
mod conformance;
mod connections;
mod dashboard;
mod discord;
mod escalation;
mod export;
mod faults;
mod front_ends;
mod github;
mod help;
mod http_api;
mod isolation;
mod live;
mod mattermost;
mod oncall;
mod outbox;
mod outbox_faults;
mod paging;
mod process_rules;
mod record_terms;
mod report;
mod report_rollups;
mod rooms;
mod search;
mod signin;
mod slack;
mod smoke;
mod sqlite_store;
mod urgency;

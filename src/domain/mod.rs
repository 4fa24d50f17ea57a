//! The pure domain: records, state machines, priorities and SLAs, policy, the command grammar. No I/O here.

pub mod alerts;
pub mod audit;
pub mod command;
pub mod escalation;
pub mod gitflow;
pub mod ids;
pub mod lifecycle;
pub mod oncall;
pub mod parser;
pub mod permissions;
pub mod policy;
pub mod policy_toml;
pub mod priority;
pub mod records;
pub mod reply;
pub mod report;
pub mod status;
pub mod text;

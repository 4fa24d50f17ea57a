//! Integrations: the glue between the ledger and each platform adapter crate.
//!
//! Each integration routes committed events to outbox messages, delivers them through its
//! adapter, and turns the adapter's plain inbound values into ledger commands.

pub mod slack;
pub mod slack_handlers;

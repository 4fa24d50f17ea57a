//! opsledger: a chat-ops bot and integration hub for ISO/IEC 20000-1 service management.
//!
//! `domain` is pure (no I/O); `usecase` applies commands through the `store` port;
//! `ledger` batches commands into group commits; `http`, `cli` and the adapters are the edges.

pub mod app;
pub mod config;
pub mod deadline_timer;
pub mod domain;
pub mod export;
pub mod http;
pub mod integrations;
pub mod ledger;
pub mod metrics;
pub mod outbox;
pub mod reports;
pub mod retention;
pub mod store;
pub mod usecase;

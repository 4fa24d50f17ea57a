//! The chat platforms opsledger knows: the one list of them, and the trait each glue file
//! implements to be in it, so start-up, the HTTP routes and `serve`'s status lines name none.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Integrations, ServeArgs};
use crate::http::AppState;
use crate::ledger::{Ledger, Router, TimeSource};
use crate::outbox::{Deliver, OutboxWaker};
use crate::store::Store;

/// Every chat platform, in the order `serve` reports, routes and delivers them.
pub const CHAT_PLATFORMS: &[&dyn ChatPlatform] = &[&super::slack::Slack, &super::discord::Discord];

/// A chat platform as the rest of opsledger sees it, whether its settings turn it on or not.
pub trait ChatPlatform: Sync {
    /// Its name: the `<name>:` of its actors, its outbox items' platform, its `/<name>/` endpoints.
    fn name(&self) -> &'static str;
    /// Its line in `serve`'s start-up report: on and how, or off and which variables are unset.
    fn status_line(&self, settings: &Integrations) -> String;
    /// Its config from the settings: `None` when off, an error naming the variable when one is
    /// set wrongly.
    fn configure(&self, settings: &Integrations) -> anyhow::Result<Option<Box<dyn ChatOn>>>;
    /// Its endpoints; each answers 404 naming the variables to set while the platform is off.
    fn routes(&self) -> axum::Router<AppState>;
}

/// What every configured chat platform routes and delivers with: `ChatRouter` and
/// `ChatDeliverer` over its `ChatApi`, for any platform, so no glue file writes them.
pub trait ChatWiring {
    /// Its router, turning committed events into its outbox items.
    fn router(&self) -> Arc<dyn Router>;
    /// Its deliverer of those items.
    fn deliverer(&self, store: &Arc<dyn Store>, time: &Arc<dyn TimeSource>) -> Arc<dyn Deliver>;
}

impl<A: super::chat::ChatApi + Clone> ChatWiring for A {
    fn router(&self) -> Arc<dyn Router> {
        Arc::new(super::chat::ChatRouter(self.clone()))
    }

    fn deliverer(&self, store: &Arc<dyn Store>, time: &Arc<dyn TimeSource>) -> Arc<dyn Deliver> {
        Arc::new(super::chat::ChatDeliverer {
            api: self.clone(),
            store: store.clone(),
            time: time.clone(),
        })
    }
}

/// A chat platform its settings turn on: a `ChatApi` (hence `ChatWiring`) that can start.
#[async_trait]
pub trait ChatOn: ChatWiring + Send {
    /// Takes the settings only `serve` has (none by default).
    fn serve_settings(&mut self, _args: &ServeArgs) {}
    /// Starts its front end: the handlers its endpoints find in `AppState::chat`, and any task
    /// of its own (Slack's Socket Mode), stopped with the server.
    async fn start(
        self: Box<Self>,
        ledger: Ledger,
        outbox: Option<OutboxWaker>,
        settings: &Integrations,
    ) -> anyhow::Result<Started>;
}

/// A started chat platform.
pub struct Started {
    /// Its handlers, which its endpoints take back with `AppState::chat_handlers`.
    pub handlers: Arc<dyn Any + Send + Sync>,
    pub task: Option<Box<dyn Task>>,
}

/// A platform's own background task.
#[async_trait]
pub trait Task: Send + Sync {
    async fn stop(self: Box<Self>);
}

/// The status line of a platform that is off: what it needs and is unset.
pub fn off_line(name: &str, vars: &[(&str, bool)]) -> String {
    let unset = vars
        .iter()
        .filter(|(_, set)| !set)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" and ");
    format!("{name}: off ({unset} unset)")
}

/// A channel setting as status lines show it.
pub fn channel(c: &Option<String>) -> String {
    c.clone().unwrap_or_else(|| "none".into())
}

#[cfg(test)]
mod tests {
    use super::CHAT_PLATFORMS;

    /// The domain is pure and cannot read this list, so it keeps the actor platforms itself.
    #[test]
    fn every_chat_platform_is_an_actor_platform() {
        for p in CHAT_PLATFORMS {
            assert!(
                crate::domain::ids::PLATFORMS.contains(&p.name()),
                "add {} to domain::ids::PLATFORMS",
                p.name()
            );
        }
    }

    /// Names key the handlers in `AppState::chat` and the outbox, so two platforms cannot share one.
    #[test]
    fn chat_platform_names_are_unique() {
        let mut names: Vec<_> = CHAT_PLATFORMS.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHAT_PLATFORMS.len(), "{names:?}");
    }
}

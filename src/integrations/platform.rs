//! The chat platforms opsledger knows: the one list of them, and the trait each glue file
//! implements to be in it, so start-up, the HTTP routes and `serve`'s status lines name none.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Integrations, ServeArgs};
use crate::domain::ids::Actor;
use crate::http::AppState;
use crate::ledger::{Ledger, Router, TimeSource};
use crate::outbox::{Deliver, OutboxWaker};
use crate::store::Store;

/// Every chat platform, in the order `serve` reports, routes and delivers them.
pub const CHAT_PLATFORMS: &[&dyn ChatPlatform] = &[
    &Registered::<super::slack::SlackConfig>::NEW,
    &Registered::<super::discord::DiscordConfig>::NEW,
    &Registered::<super::mattermost::MattermostConfig>::NEW,
];

/// Every platform an actor can be on: the chat platforms here, then the domain's own (GitHub, the
/// terminal, opsledger itself and its alert receivers).
pub fn actor_platforms() -> &'static [&'static str] {
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        CHAT_PLATFORMS
            .iter()
            .map(|p| p.name())
            .chain(crate::domain::ids::OWN_PLATFORMS)
            .collect()
    })
}

/// Checks that an account a person gave (the rules file, `--as`, sign-in, a mention) is on a
/// platform this build has; the domain checks only its shape, so stored records always load.
pub fn known_account(actor: &Actor) -> Result<(), crate::domain::ids::UnknownPlatform> {
    actor.known_on(actor_platforms())
}

/// A person's account from text, checked for its shape and its platform.
pub fn parse_person(s: &str) -> anyhow::Result<Actor> {
    let actor = Actor::parse_person(s)?;
    known_account(&actor)?;
    Ok(actor)
}

/// The rules file, read and checked: its accounts must be on platforms this build has.
pub fn policy_from_toml(text: &str) -> anyhow::Result<crate::domain::policy::Policy> {
    let policy = crate::domain::policy::Policy::from_toml(text)?;
    for (key, account) in policy.accounts() {
        if let Err(e) = known_account(&account) {
            anyhow::bail!("{key} {e}");
        }
    }
    Ok(policy)
}

/// What a chat platform's glue file implements on its config, besides `ChatApi` and `ChatOn`,
/// to be in `CHAT_PLATFORMS`; its name is its `ChatApi::CHAT`'s.
pub trait ChatGlue: super::chat::ChatApi + ChatOn + Sized {
    /// Its line in `serve`'s start-up report: on and how, or off and which variables are unset.
    fn status_line(settings: &Integrations) -> String;
    /// Its config from the settings: `None` when off, an error naming the variable when one is
    /// set wrongly.
    fn configure(settings: &Integrations) -> anyhow::Result<Option<Self>>;
    /// Its endpoints; each answers 404 naming the variables to set while the platform is off.
    fn routes() -> axum::Router<AppState>;
}

/// A glue file's config type, as an entry of `CHAT_PLATFORMS`.
pub struct Registered<C>(std::marker::PhantomData<fn() -> C>);

impl<C> Registered<C> {
    pub const NEW: Self = Registered(std::marker::PhantomData);
}

impl<C: ChatGlue> ChatPlatform for Registered<C> {
    fn name(&self) -> &'static str {
        C::CHAT.name
    }

    fn status_line(&self, settings: &Integrations) -> String {
        C::status_line(settings)
    }

    fn configure(&self, settings: &Integrations) -> anyhow::Result<Option<Box<dyn ChatOn>>> {
        Ok(C::configure(settings)?.map(|c| Box::new(c) as Box<dyn ChatOn>))
    }

    fn routes(&self) -> axum::Router<AppState> {
        C::routes()
    }
}

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
    fn deliverer(
        &self,
        store: &Arc<dyn Store>,
        time: &Arc<dyn TimeSource>,
        ledger: &super::LedgerCell,
    ) -> Arc<dyn Deliver>;
}

impl<A: super::chat::ChatApi + Clone> ChatWiring for A {
    fn router(&self) -> Arc<dyn Router> {
        Arc::new(super::chat::ChatRouter(self.clone()))
    }

    fn deliverer(
        &self,
        store: &Arc<dyn Store>,
        time: &Arc<dyn TimeSource>,
        ledger: &super::LedgerCell,
    ) -> Arc<dyn Deliver> {
        Arc::new(super::chat::ChatDeliverer {
            api: self.clone(),
            store: store.clone(),
            time: time.clone(),
            ledger: ledger.clone(),
        })
    }
}

/// A chat platform its settings turn on: a `ChatApi` (hence `ChatWiring`) that can start.
#[async_trait]
pub trait ChatOn: ChatWiring + Send {
    /// Takes the settings only `serve` has, and the public URL it resolved (the bound address
    /// when `OPSLEDGER_PUBLIC_URL` is unset); none by default.
    fn serve_settings(&mut self, _args: &ServeArgs, _public_url: &str) {}
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

impl Started {
    /// A platform whose front end is its handlers alone (no task of its own).
    pub fn handlers<C: Send + Sync + 'static>(
        ledger: Ledger,
        config: C,
        outbox: Option<OutboxWaker>,
    ) -> anyhow::Result<Started> {
        Ok(Started {
            handlers: Arc::new(super::Handlers::new(ledger, config, outbox)),
            task: None,
        })
    }
}

/// A platform's own background task.
#[async_trait]
pub trait Task: Send + Sync {
    async fn stop(self: Box<Self>);
}

/// Declares a chat platform's settings (flags and environment variables, flattened into
/// `Integrations`): its own fields, then the three every chat platform has, `<PREFIX>_API_URL`
/// (with its default), `<PREFIX>_INCIDENT_CHANNEL` and `<PREFIX>_CAB_CHANNEL`. The fields keep
/// the platform's prefix: clap derives each flag, value name and argument id from the field's
/// name, and ids must be unique across all the flattened structs.
macro_rules! chat_settings {
    (
        $(#[$meta:meta])*
        $name:ident, $prefix:literal,
        $api:ident = $default:literal, $incident:ident, $cab:ident,
        { $($own:tt)* }
    ) => {
        $crate::integrations::platform::chat_settings! {
            $(#[$meta])*
            $name, $prefix, $api = $default, env concat!($prefix, "_API_URL"), $incident, $cab,
            { $($own)* }
        }
    };
    // A platform whose API address is named otherwise (Mattermost's server: `MATTERMOST_URL`).
    (
        $(#[$meta:meta])*
        $name:ident, $prefix:literal,
        $api:ident = $default:literal, env $env:expr, $incident:ident, $cab:ident,
        { $($own:tt)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct $name {
            $($own)*
            #[arg(long, env = $env, default_value = $default)]
            pub $api: String,
            #[arg(long, env = concat!($prefix, "_INCIDENT_CHANNEL"))]
            pub $incident: Option<String>,
            #[arg(long, env = concat!($prefix, "_CAB_CHANNEL"))]
            pub $cab: Option<String>,
        }

        impl $name {
            /// Its channels, as the router and deliverer take them.
            pub fn channels(&self) -> $crate::integrations::chat::Channels {
                $crate::integrations::chat::Channels {
                    incident_channel: self.$incident.clone(),
                    cab_channel: self.$cab.clone(),
                }
            }

            /// Its status line when on, reached `how`.
            pub fn on_line(&self, name: &str, how: &str) -> String {
                $crate::integrations::platform::on_line(name, how, &self.$api, &self.channels())
            }
        }
    };
}
pub(crate) use chat_settings;

/// The status line of a platform that is on: how it is reached, its API and its channels.
pub fn on_line(name: &str, how: &str, api: &str, channels: &super::chat::Channels) -> String {
    format!(
        "{name}: on ({how}; API {api}; incident channel {}, CAB channel {})",
        channel(&channels.incident_channel),
        channel(&channels.cab_channel)
    )
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

    /// A chat platform's name is the `<name>:` of its actors, beside the domain's own.
    #[test]
    fn every_chat_platform_names_its_own_actors() {
        for p in CHAT_PLATFORMS {
            assert!(
                crate::domain::ids::is_platform_name(p.name()),
                "{}",
                p.name()
            );
            assert!(!crate::domain::ids::OWN_PLATFORMS.contains(&p.name()));
            let actor = crate::domain::ids::Actor::parse(&format!("{}:U1", p.name())).unwrap();
            assert_eq!(super::known_account(&actor), Ok(()));
        }
        let unknown = crate::domain::ids::Actor::parse("irc:alice").unwrap();
        assert_eq!(
            super::known_account(&unknown).unwrap_err().to_string(),
            "`irc:alice` is on no platform opsledger has: use one of slack, discord, mattermost, github, console"
        );
    }

    /// The README's table of chat platforms has a column for each (CONTRIBUTING.md, step 6).
    #[test]
    fn the_readme_has_a_column_for_every_chat_platform() {
        let readme = include_str!("../../README.md");
        let header = readme
            .lines()
            .find(|l| l.starts_with("| | Slack |"))
            .expect("the README's table of chat platforms");
        let columns: Vec<String> = header
            .split('|')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        let names: Vec<&str> = CHAT_PLATFORMS.iter().map(|p| p.name()).collect();
        assert_eq!(columns, names, "{header}");
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

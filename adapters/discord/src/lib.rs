//! The Discord adapter: the only crate that knows serenity.
//!
//! It verifies signed interaction requests, turns them into plain inbound values
//! (`Interaction`), renders a neutral `View` as Discord messages, embeds and buttons, and calls
//! the REST API. It knows nothing of opsledger's records or rules; the opsledger package maps its
//! replies to `View`s and its commands to `CommandSpec`s. No gateway connection is needed.

mod api;
mod commands;
mod inbound;
mod render;
mod verify;

pub use api::{DiscordApi, DiscordApiError};
pub use commands::{CommandSpec, OptionSpec, SubcommandSpec};
pub use inbound::{parse_interaction, Interaction, ParseError};
pub use render::{
    autocomplete, custom_id, deferred, deferred_update, message_response, modal, pong,
    split_custom_id, thread_name, update_response, TextModal, View, ViewButton, MODAL_TEXT_INPUT,
};
pub use verify::{Verifier, VerifyError, SIGNATURE_HEADER, TIMESTAMP_HEADER};

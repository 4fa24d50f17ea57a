//! The Mattermost adapter: the only crate that knows Mattermost's wire format.
//!
//! It checks and parses what Mattermost sends (slash commands with their token, button clicks
//! and dialog submissions with opsledger's own signed context, since Mattermost signs nothing),
//! renders a neutral `View` as message attachments, and calls the REST API v4, sorting failures
//! into retry (429 with `X-Ratelimit-Reset`, 5xx, the network) and give up. It knows nothing of
//! opsledger's records or rules.

mod api;
mod inbound;
mod mentions;
mod render;

pub use api::{MattermostApi, MattermostApiError};
pub use inbound::{
    parse_action, parse_command, parse_dialog, sign_context, verify_context, verify_token,
    ActionRequest, DialogSubmission, ParseError, SignedAction, SlashCommand, VerifyError,
};
pub use mentions::{mentioned_usernames, with_user_ids};
pub use opsledger_view::{ButtonStyle, View, ViewButton};
pub use render::{
    action_response, attachments, command_response, incident_channel_name, text_dialog, Ephemeral,
};

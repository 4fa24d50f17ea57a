//! The Slack adapter: the only crate that knows slack-morphism.
//!
//! It turns signed Slack requests into plain inbound values (`SlashCommand`, `Interaction`,
//! `Push`), renders a neutral `View` as Block Kit, and calls the Web API. It knows nothing of
//! opsledger's records or rules; the opsledger package maps its replies to `View`s.

mod api;
mod blocks;
mod inbound;
pub mod oidc;
mod socket;
mod verify;

pub use api::{incident_channel_name, SlackApi, SlackApiError, TextModal, MODAL_TEXT_BLOCK};
pub use blocks::{command_response, render_blocks, ButtonStyle, View, ViewButton};
pub use inbound::{
    form_is_utf8, parse_command, parse_event, parse_interaction, Interaction, ParseError, Push,
    SlashCommand,
};
pub use socket::{SocketHandler, SocketMode};
pub use verify::{
    verify_request, verify_request_bytes, VerifyError, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

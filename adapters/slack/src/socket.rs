//! Socket Mode: `apps.connections.open`, then a WebSocket over which Slack sends the same slash
//! commands, interactions and events it would POST, so no public URL is needed.
//!
//! slack-morphism's listener owns the connections (hello, acknowledgements, reconnects); this
//! module turns its events into the adapter's plain values and hands them to a `SocketHandler`.

use std::sync::Arc;

use async_trait::async_trait;
use slack_morphism::prelude::*;

use crate::api::{https_connector, Connector, SlackApiError};
use crate::inbound::{
    command_from, interaction_from, push_from_callback, Interaction, Push, SlashCommand,
};

/// What to do with what arrives over the socket: the same handlers the HTTP endpoints use.
#[async_trait]
pub trait SocketHandler: Send + Sync + 'static {
    /// Returns the command's response body (`response_type`, `text`, `blocks`).
    async fn command(&self, command: SlashCommand) -> serde_json::Value;
    async fn interaction(&self, interaction: Interaction);
    async fn event(&self, push: Push);
}

struct Handler(Arc<dyn SocketHandler>);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn handler(states: &SlackClientEventsUserState) -> Result<Arc<dyn SocketHandler>, BoxError> {
    let guard = states.read().await;
    Ok(guard
        .get_user_state::<Handler>()
        .ok_or("socket mode handler missing")?
        .0
        .clone())
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> Result<SlackCommandEventResponse, BoxError> {
    let body = handler(&states).await?.command(command_from(event)).await;
    Ok(serde_json::from_value(body)?)
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> Result<(), BoxError> {
    let interaction = interaction_from(event)?;
    handler(&states).await?.interaction(interaction).await;
    Ok(())
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> Result<(), BoxError> {
    handler(&states)
        .await?
        .event(push_from_callback(event))
        .await;
    Ok(())
}

fn on_error(
    err: BoxError,
    _client: Arc<SlackClient<Connector>>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    tracing::warn!(error = %err, "slack socket mode event failed");
    // Acknowledge anyway: Slack would otherwise redeliver an event we cannot handle.
    HttpStatusCode::OK
}

/// A running Socket Mode connection.
pub struct SocketMode {
    listener: SlackClientSocketModeListener<Connector>,
}

impl std::fmt::Debug for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SocketMode")
    }
}

impl SocketMode {
    /// Opens the connection with the app-level token (`xapp-...`) and starts listening.
    pub async fn start(
        api_url: &str,
        app_token: &str,
        handler: Arc<dyn SocketHandler>,
    ) -> Result<SocketMode, SlackApiError> {
        let connector = SlackClientHyperConnector::with_connector(https_connector()?)
            .with_slack_api_url(api_url.trim_end_matches('/'));
        let client = Arc::new(SlackClient::new(connector));
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_command_events(on_command)
            .with_interaction_events(on_interaction)
            .with_push_events(on_push);
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(Handler(handler)),
        );
        let listener = SlackClientSocketModeListener::new(
            &SlackClientSocketModeConfig::new(),
            environment,
            callbacks,
        );
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.to_string()));
        listener
            .listen_for(&token)
            .await
            .map_err(|e| SlackApiError::Retry {
                after: None,
                reason: format!("socket mode: {e}"),
            })?;
        listener.start().await;
        Ok(SocketMode { listener })
    }

    pub async fn stop(self) {
        self.listener.shutdown().await;
    }
}

//! `/slack/commands`, `/slack/interactions`, `/slack/events`: verify Slack's signature, turn the
//! payload into a ledger command, and answer within Slack's three seconds.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;

use crate::domain::command::{ChangeAction, ChangeCmd, Command, IncidentAction, IncidentCmd};
use crate::domain::ids::{Actor, Kind, RecordId};
use crate::domain::reply::{Outcome, Reply};
use crate::integrations::slack::{self as integration, op, SlackConfig, PLATFORM};
use crate::store::{NewOutbox, WriteSet};

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
}

/// The Slack settings, or 404 when Slack is off.
fn slack(app: &AppState) -> Result<Arc<SlackConfig>, ApiError> {
    app.slack.clone().ok_or_else(|| {
        ApiError::NotFound(
            "Slack is not configured (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)".into(),
        )
    })
}

/// Checks the v0 signature and the timestamp; a failure is a 401 that changes nothing.
fn verified<'b>(
    cfg: &SlackConfig,
    headers: &HeaderMap,
    body: &'b Bytes,
) -> Result<&'b str, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    opsledger_slack::verify_request(
        cfg.signing_secret.expose_secret(),
        header(opsledger_slack::TIMESTAMP_HEADER),
        header(opsledger_slack::SIGNATURE_HEADER),
        text,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "rejected a Slack request");
        ApiError::Unauthorized
    })?;
    Ok(text)
}

fn person(user_id: &str) -> Result<Actor, ApiError> {
    Actor::parse_person(&format!("slack:{user_id}"))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Refusals, usage help and read-only answers go to the sender alone; changes to the channel.
fn ephemeral(reply: &Reply, changed: bool) -> bool {
    reply.outcome != Outcome::Ok || !changed
}

async fn commands(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cfg = slack(&app)?;
    let text = verified(&cfg, &headers, &body)?;
    let cmd =
        opsledger_slack::parse_command(text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let actor = person(&cmd.user_id)?;
    let handled = app.ledger.handle_text(actor, &cmd.text).await;
    let eph = ephemeral(&handled.reply, !handled.events.is_empty());
    Ok(Json(opsledger_slack::command_response(
        &integration::view(&handled.reply),
        eph,
    ))
    .into_response())
}

async fn interactions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cfg = slack(&app)?;
    let text = verified(&cfg, &headers, &body)?;
    let interaction = opsledger_slack::parse_interaction(text)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match interaction {
        opsledger_slack::Interaction::Button {
            user_id,
            action_id,
            value,
            response_url,
            channel_id,
            trigger_id,
            ..
        } => {
            let actor = person(&user_id)?;
            // Resolving and rejecting ask for text first: a modal, opened while the trigger lives.
            if let Some(modal) = modal_for(&action_id, &value) {
                if let Err(e) = cfg.api.open_modal(&trigger_id, &modal).await {
                    tracing::warn!(error = %e, "could not open a Slack modal");
                    if let Some(url) = response_url {
                        let hint = Reply::refused(Some(value.clone()), "slack", format!("could not open the form; type `/ops {action_id} {value} <text>` instead"));
                        let payload = serde_json::json!({ "reply": hint, "response_url": url });
                        enqueue(
                            &app,
                            &channel_id.unwrap_or_default(),
                            op::RESPOND,
                            Some(value),
                            payload,
                        )
                        .await;
                    }
                }
                return Ok(StatusCode::OK.into_response());
            }
            // Acknowledge at once; the vote or transition runs after, and its result reaches
            // Slack through the outbox: an updated card, or an explanation to the presser alone.
            tokio::spawn(async move {
                let command = format!("{action_id} {value}");
                let handled = app.ledger.handle_text(actor, &command).await;
                if handled.reply.outcome != Outcome::Ok {
                    if let Some(url) = response_url {
                        let channel = channel_id.unwrap_or_else(|| "response_url".into());
                        let payload =
                            serde_json::json!({ "reply": handled.reply, "response_url": url });
                        enqueue(&app, &channel, op::RESPOND, Some(value), payload).await;
                    }
                }
            });
            Ok(StatusCode::OK.into_response())
        }
        opsledger_slack::Interaction::ModalSubmit {
            user_id,
            callback_id,
            private_metadata,
            text,
        } => {
            let actor = person(&user_id)?;
            let Some(command) = modal_command(&callback_id, &private_metadata, &text) else {
                return Err(ApiError::BadRequest(format!(
                    "unknown modal `{callback_id}`"
                )));
            };
            // Fast enough to answer in the submission's own response: a refusal shows in the form.
            let handled = app.ledger.handle(actor, command).await;
            if handled.reply.outcome == Outcome::Ok {
                Ok(StatusCode::OK.into_response())
            } else {
                Ok(Json(serde_json::json!({
                    "response_action": "errors",
                    "errors": { opsledger_slack::MODAL_TEXT_BLOCK: handled.reply.text },
                }))
                .into_response())
            }
        }
        opsledger_slack::Interaction::Other { .. } => Ok(StatusCode::OK.into_response()),
    }
}

async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cfg = slack(&app)?;
    let text = verified(&cfg, &headers, &body)?;
    match opsledger_slack::parse_event(text).map_err(|e| ApiError::BadRequest(e.to_string()))? {
        opsledger_slack::Push::UrlVerification { challenge } => {
            Ok(Json(serde_json::json!({ "challenge": challenge })).into_response())
        }
        opsledger_slack::Push::AppMention {
            event_id,
            user_id,
            channel_id,
            text,
        } => {
            // Slack redelivers an event it thinks we missed (X-Slack-Retry-Num, same event_id):
            // the first delivery wins, retries are acknowledged and dropped.
            let now = crate::domain::audit::format_time(chrono::Utc::now());
            if !app
                .ledger
                .store()
                .first_delivery(PLATFORM, &event_id, &now)
                .await?
            {
                tracing::debug!(%event_id, "dropped a redelivered Slack event");
                return Ok(StatusCode::OK.into_response());
            }
            let actor = person(&user_id)?;
            tokio::spawn(async move {
                let handled = app.ledger.handle_text(actor, strip_mentions(&text)).await;
                let payload = serde_json::json!({ "reply": handled.reply });
                enqueue(
                    &app,
                    &channel_id,
                    op::REPLY,
                    handled.reply.record.clone(),
                    payload,
                )
                .await;
            });
            Ok(StatusCode::OK.into_response())
        }
        opsledger_slack::Push::Other { .. } => Ok(StatusCode::OK.into_response()),
    }
}

/// The form a button opens before its command runs, if it needs text.
fn modal_for(action_id: &str, record: &str) -> Option<opsledger_slack::TextModal> {
    let (title, label, submit) = match action_id {
        "incident resolve" => ("Resolve incident", "How was it resolved?", "Resolve"),
        "change reject" => ("Reject change", "Why is it rejected?", "Reject"),
        _ => return None,
    };
    Some(opsledger_slack::TextModal {
        callback_id: action_id.to_string(),
        private_metadata: record.to_string(),
        title: title.to_string(),
        label: format!("{label} ({record})"),
        submit: submit.to_string(),
    })
}

/// The typed command a submitted form runs; built directly so the free text is never re-parsed.
fn modal_command(callback_id: &str, record: &str, text: &str) -> Option<Command> {
    let id: RecordId = record.parse().ok()?;
    let text = Some(text.trim().to_string()).filter(|t| !t.is_empty());
    match (callback_id, id.kind) {
        ("incident resolve", Kind::Incident) => Some(Command::Incident(IncidentCmd::Act {
            action: IncidentAction::Resolve,
            id,
            text,
        })),
        ("change reject", Kind::Change) => Some(Command::Change(ChangeCmd::Act {
            action: ChangeAction::Reject,
            id,
            text,
        })),
        _ => None,
    }
}

/// `<@UBOT> incident list` → `incident list`.
fn strip_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<@") {
        match after.find('>') {
            Some(end) => rest = after[end + 1..].trim_start(),
            None => break,
        }
    }
    rest
}

/// Queues one message outside a command (a reply to a mention, an explanation to one person).
async fn enqueue(
    app: &AppState,
    channel: &str,
    op: &str,
    record: Option<String>,
    payload: serde_json::Value,
) {
    let item = NewOutbox {
        platform: PLATFORM.into(),
        channel: channel.into(),
        op: op.into(),
        record,
        payload,
    };
    let now = crate::domain::audit::format_time(chrono::Utc::now());
    let store = app.ledger.store().clone();
    let result = async {
        let mut tx = store.begin().await?;
        tx.write(WriteSet {
            outbox: vec![(item, now)],
            ..WriteSet::default()
        })
        .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => app.wake_outbox(),
        Err(e) => tracing::error!(error = %e, "could not queue a Slack reply"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn leading_mentions_are_stripped() {
        assert_eq!(
            super::strip_mentions("<@U123> incident list"),
            "incident list"
        );
        assert_eq!(super::strip_mentions("  <@U1> <@U2>help"), "help");
        assert_eq!(super::strip_mentions("<@U1 broken"), "<@U1 broken");
    }
}

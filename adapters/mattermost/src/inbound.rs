//! What Mattermost sends: slash commands (a form, checked by its token in constant time), and
//! button clicks and dialog submissions (JSON, checked by the HMAC opsledger put in each
//! button's context or dialog's state, since Mattermost signs none of its requests).
//!
//! Shapes from Mattermost's developer documentation (slash commands, interactive messages,
//! interactive dialogs) and `@mattermost/types` (`PostActionIntegrationRequest`,
//! `DialogSubmission`).

use hmac::{Hmac, Mac};
use serde::Deserialize;

/// A slash command as Mattermost POSTs it (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SlashCommand {
    pub channel_id: String,
    pub team_id: String,
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub response_url: String,
    #[serde(default)]
    pub trigger_id: String,
    pub token: String,
}

/// A button click: Mattermost POSTs the button's `integration.context` back with who clicked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActionRequest {
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub post_id: String,
    #[serde(default)]
    pub trigger_id: String,
    #[serde(default)]
    pub context: serde_json::Value,
}

/// An interactive dialog's submission.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DialogSubmission {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub callback_id: String,
    /// The signed context opsledger put in the dialog (`sign_context`'s JSON, as a string).
    #[serde(default)]
    pub state: String,
    pub user_id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub submission: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub cancelled: bool,
}

/// A verb and record whose signature held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAction {
    /// The command verb, such as `change approve`.
    pub action: String,
    /// The record, such as `CHG-7`.
    pub record: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the slash command's token is not this integration's")]
    BadToken,
    #[error("the action's context is missing or was not signed by opsledger")]
    BadContext,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Mattermost request opsledger understands: {0}")]
pub struct ParseError(pub String);

/// Compares a slash command's `token` with `MATTERMOST_COMMAND_TOKEN` in constant time.
pub fn verify_token(given: &str, expected: &str) -> Result<(), VerifyError> {
    if !expected.is_empty()
        && constant_time_eq::constant_time_eq(given.as_bytes(), expected.as_bytes())
    {
        Ok(())
    } else {
        Err(VerifyError::BadToken)
    }
}

fn mac(secret: &str, action: &str, record: &str) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    // Length-prefixed, so ("a b", "c") and ("a", "b c") sign differently.
    m.update(format!("{}:{action}{}:{record}", action.len(), record.len()).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A button's `context`: the verb, the record and their HMAC-SHA256 under
/// `MATTERMOST_ACTION_SECRET`.
pub fn sign_context(secret: &str, action: &str, record: &str) -> serde_json::Value {
    serde_json::json!({ "action": action, "record": record, "sig": mac(secret, action, record) })
}

/// The verb and record of a signed context (a button's, or a dialog's `state` as JSON).
pub fn verify_context(
    secret: &str,
    context: &serde_json::Value,
) -> Result<SignedAction, VerifyError> {
    let field = |k: &str| {
        context
            .get(k)
            .and_then(|v| v.as_str())
            .ok_or(VerifyError::BadContext)
    };
    let (action, record, sig) = (field("action")?, field("record")?, field("sig")?);
    if secret.is_empty()
        || !constant_time_eq::constant_time_eq(
            sig.as_bytes(),
            mac(secret, action, record).as_bytes(),
        )
    {
        return Err(VerifyError::BadContext);
    }
    Ok(SignedAction {
        action: action.to_string(),
        record: record.to_string(),
    })
}

/// A slash command's form body.
pub fn parse_command(body: &[u8]) -> Result<SlashCommand, ParseError> {
    serde_urlencoded::from_bytes(body).map_err(|e| ParseError(e.to_string()))
}

/// A button click's JSON body.
pub fn parse_action(body: &[u8]) -> Result<ActionRequest, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError(e.to_string()))
}

/// A dialog submission's JSON body.
pub fn parse_dialog(body: &[u8]) -> Result<DialogSubmission, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly_and_an_unset_one_matches_nothing() {
        assert!(verify_token("xyz", "xyz").is_ok());
        assert_eq!(verify_token("xy", "xyz"), Err(VerifyError::BadToken));
        assert_eq!(verify_token("", ""), Err(VerifyError::BadToken));
    }

    #[test]
    fn a_signed_context_verifies_and_an_altered_or_forged_one_does_not() {
        let ctx = sign_context("s3cret", "change approve", "CHG-7");
        assert_eq!(
            verify_context("s3cret", &ctx),
            Ok(SignedAction {
                action: "change approve".into(),
                record: "CHG-7".into()
            })
        );
        let mut other_record = ctx.clone();
        other_record["record"] = "CHG-8".into();
        assert_eq!(
            verify_context("s3cret", &other_record),
            Err(VerifyError::BadContext)
        );
        let mut other_action = ctx.clone();
        other_action["action"] = "change reject".into();
        assert_eq!(
            verify_context("s3cret", &other_action),
            Err(VerifyError::BadContext)
        );
        assert_eq!(
            verify_context("another", &ctx),
            Err(VerifyError::BadContext)
        );
        assert_eq!(verify_context("", &ctx), Err(VerifyError::BadContext));
        assert_eq!(
            verify_context(
                "s3cret",
                &serde_json::json!({"action": "change approve", "record": "CHG-7"})
            ),
            Err(VerifyError::BadContext)
        );
        // Moving a space between the verb and the record changes the signature.
        let a = sign_context("k", "a b", "c");
        let b = sign_context("k", "a", "b c");
        assert_ne!(a["sig"], b["sig"]);
    }

    #[test]
    fn a_slash_command_parses_from_mattermost_s_form() {
        let body = "channel_id=fukzawjtnpb8xcu66hzf4jd9tc&channel_name=town-square&command=%2Fops&response_url=https%3A%2F%2Fmm.example.com%2Fhooks%2Fcommands%2Fabc&team_domain=acme&team_id=4sp8e4s3h3yb5fpkqxzrhetohw&text=incident+raise+%22Disk+full%22&token=xr3j5x3p4pfk7cy8p8x4jr5nue&trigger_id=djFqOG1n&user_id=rnina9994bde8mua79zqcg5hmo&user_name=alice";
        let c = parse_command(body.as_bytes()).unwrap();
        assert_eq!(c.user_id, "rnina9994bde8mua79zqcg5hmo");
        assert_eq!(c.text, "incident raise \"Disk full\"");
        assert_eq!(c.token, "xr3j5x3p4pfk7cy8p8x4jr5nue");
        assert_eq!(c.trigger_id, "djFqOG1n");
        assert!(parse_command(b"text=x").is_err(), "no user or token");
    }

    #[test]
    fn a_click_and_a_dialog_parse_from_mattermost_s_json() {
        let click = br#"{"user_id":"u1","user_name":"alice","channel_id":"c1","channel_name":"cab","team_id":"t1","team_domain":"acme","post_id":"p1","trigger_id":"tr1","type":"","data_source":"","context":{"action":"change approve","record":"CHG-7","sig":"00"}}"#;
        let a = parse_action(click).unwrap();
        assert_eq!((a.user_id.as_str(), a.post_id.as_str()), ("u1", "p1"));
        assert_eq!(a.context["record"], "CHG-7");
        let dialog = br#"{"type":"dialog_submission","callback_id":"cb","state":"{}","user_id":"u1","channel_id":"c1","team_id":"t1","submission":{"text":"fixed"},"cancelled":false}"#;
        let d = parse_dialog(dialog).unwrap();
        assert_eq!(d.submission["text"], "fixed");
        assert!(!d.cancelled);
    }
}

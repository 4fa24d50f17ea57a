//! The neutral `View` as Mattermost message attachments (the Slack-compatible `attachments` of
//! a post's `props`), with each button an action whose `integration` posts a signed context back
//! to opsledger; and the JSON a slash command or a click is answered with.

use serde_json::{json, Value};

use opsledger_view::{ButtonStyle, View};

use crate::inbound::sign_context;

/// The post's `props.attachments` for `view`: one attachment with the text, the fields (short,
/// two to a row) and the buttons, each posting to `actions_url` with its signed context.
pub fn attachments(view: &View, actions_url: &str, secret: &str) -> Value {
    let fields: Vec<Value> = view
        .fields
        .iter()
        .map(|(title, value)| json!({ "title": title, "value": value, "short": true }))
        .collect();
    let actions: Vec<Value> = view
        .buttons
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({
                // Mattermost wants an ID of letters and digits, unique in the post.
                "id": format!("opsledger{i}"),
                "type": "button",
                "name": b.label,
                "style": match b.style {
                    ButtonStyle::Primary => "primary",
                    ButtonStyle::Danger => "danger",
                    ButtonStyle::Default => "default",
                },
                "integration": {
                    "url": actions_url,
                    "context": sign_context(secret, &b.action, &b.record),
                },
            })
        })
        .collect();
    let mut a = json!({ "fallback": view.text, "text": view.text });
    if !fields.is_empty() {
        a["fields"] = Value::Array(fields);
    }
    if !actions.is_empty() {
        a["actions"] = Value::Array(actions);
    }
    json!([a])
}

/// Whether an answer is for the person alone or for the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ephemeral {
    Yes,
    No,
}

/// A slash command's answer: `response_type`, `text` and the attachments.
pub fn command_response(view: &View, to: Ephemeral, actions_url: &str, secret: &str) -> Value {
    json!({
        "response_type": if to == Ephemeral::Yes { "ephemeral" } else { "in_channel" },
        "text": "",
        "props": { "attachments": attachments(view, actions_url, secret) },
    })
}

/// A click's answer: the card updated in place, or, when `refusal` is given, the post left as it
/// is and the refusal shown to the presser alone (`ephemeral_text`).
pub fn action_response(
    updated: Option<&View>,
    refusal: Option<&str>,
    actions_url: &str,
    secret: &str,
) -> Value {
    let mut out = json!({});
    if let Some(view) = updated {
        out["update"] = json!({
            "message": "",
            "props": { "attachments": attachments(view, actions_url, secret) },
        });
    }
    if let Some(text) = refusal {
        out["ephemeral_text"] = Value::String(text.to_string());
    }
    out
}

/// An interactive dialog asking for one text (a resolution, a reason), whose `state` carries the
/// signed verb and record back with the submission.
pub fn text_dialog(
    title: &str,
    label: &str,
    submit: &str,
    action: &str,
    record: &str,
    secret: &str,
) -> Value {
    json!({
        "callback_id": "opsledger",
        "title": title,
        "submit_label": submit,
        "state": sign_context(secret, action, record).to_string(),
        "elements": [{
            "display_name": label,
            "name": "text",
            "type": "textarea",
            "optional": false,
            "max_length": 3000,
        }],
    })
}

/// An incident's channel name: `inc-<n>-<words of the title>`, lowercase letters, digits and
/// dashes, at most 64 characters, as Mattermost requires of a channel's `name`.
pub fn incident_channel_name(n: u64, title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let name = format!("inc-{n}-{}", slug.trim_matches('-'));
    let name: String = name.chars().take(64).collect();
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::verify_context;
    use opsledger_view::ViewButton;

    fn card() -> View {
        View {
            text: "CHG-7 Upgrade the database (submitted)".into(),
            fields: vec![("Votes".into(), "1/2".into())],
            buttons: vec![
                ViewButton {
                    label: "Approve".into(),
                    action: "change approve".into(),
                    record: "CHG-7".into(),
                    style: ButtonStyle::Primary,
                },
                ViewButton {
                    label: "Reject".into(),
                    action: "change reject".into(),
                    record: "CHG-7".into(),
                    style: ButtonStyle::Danger,
                },
            ],
        }
    }

    #[test]
    fn a_card_is_one_attachment_whose_buttons_post_a_signed_context_back() {
        let a = attachments(&card(), "https://ops.example.com/mattermost/actions", "k");
        assert_eq!(a[0]["text"], "CHG-7 Upgrade the database (submitted)");
        assert_eq!(
            a[0]["fields"][0],
            json!({"title": "Votes", "value": "1/2", "short": true})
        );
        let approve = &a[0]["actions"][0];
        assert_eq!(approve["name"], "Approve");
        assert_eq!(approve["style"], "primary");
        assert_eq!(approve["id"], "opsledger0");
        assert_eq!(
            approve["integration"]["url"],
            "https://ops.example.com/mattermost/actions"
        );
        let signed = verify_context("k", &approve["integration"]["context"]).unwrap();
        assert_eq!(
            (signed.action.as_str(), signed.record.as_str()),
            ("change approve", "CHG-7")
        );
        assert_eq!(a[0]["actions"][1]["style"], "danger");
    }

    #[test]
    fn an_incident_channel_name_is_what_mattermost_accepts() {
        assert_eq!(
            incident_channel_name(12, "Checkout down: EU/West!"),
            "inc-12-checkout-down-eu-west"
        );
        assert!(incident_channel_name(1, &"x".repeat(100)).len() <= 64);
        assert_eq!(incident_channel_name(3, "¡¿"), "inc-3");
    }

    #[test]
    fn a_dialog_carries_its_signed_verb_and_record() {
        let d = text_dialog(
            "Reject change",
            "Why?",
            "Reject",
            "change reject",
            "CHG-7",
            "k",
        );
        let state: Value = serde_json::from_str(d["state"].as_str().unwrap()).unwrap();
        let signed = verify_context("k", &state).unwrap();
        assert_eq!(signed.action, "change reject");
        assert_eq!(d["elements"][0]["name"], "text");
    }

    #[test]
    fn answers_say_who_sees_them() {
        let c = command_response(&card(), Ephemeral::Yes, "u", "k");
        assert_eq!(c["response_type"], "ephemeral");
        assert!(c["props"]["attachments"].is_array());
        let update = action_response(Some(&card()), None, "u", "k");
        assert!(update["update"]["props"]["attachments"].is_array());
        assert!(update.get("ephemeral_text").is_none());
        let refused = action_response(
            None,
            Some("you requested CHG-7, so you cannot vote on it"),
            "u",
            "k",
        );
        assert!(refused.get("update").is_none());
        assert_eq!(
            refused["ephemeral_text"],
            "you requested CHG-7, so you cannot vote on it"
        );
    }
}

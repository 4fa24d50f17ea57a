//! Block Kit rendering of the neutral view: a headline, fields, and buttons whose `action_id` is
//! the command verb and whose `value` is the record ID.

use slack_morphism::prelude::*;

pub use opsledger_view::{ButtonStyle, View, ViewButton};

/// Slack allows at most 10 fields per section and 3,000 characters per text.
const MAX_FIELDS: usize = 10;
const MAX_TEXT: usize = 3000;

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_TEXT {
        s.to_string()
    } else {
        s.chars().take(MAX_TEXT - 1).chain(['…']).collect()
    }
}

fn blocks(view: &View) -> Vec<SlackBlock> {
    let mut out: Vec<SlackBlock> = vec![SlackSectionBlock::new()
        .with_text(md!("{}", clip(&view.text)))
        .into()];
    for chunk in view.fields.chunks(MAX_FIELDS) {
        let fields = chunk
            .iter()
            .map(|(k, v)| md!("*{}*\n{}", k, clip(v)))
            .collect();
        out.push(SlackSectionBlock::new().with_fields(fields).into());
    }
    if !view.buttons.is_empty() {
        let elements = view
            .buttons
            .iter()
            .map(|b| {
                let mut button = SlackBlockButtonElement::new(b.label.clone().into())
                    .with_action_id(SlackActionId(b.action.clone()))
                    .with_value(b.record.clone());
                match b.style {
                    ButtonStyle::Primary => {
                        button = button.with_style(SlackBlockButtonStyle::Primary)
                    }
                    ButtonStyle::Danger => {
                        button = button.with_style(SlackBlockButtonStyle::Danger)
                    }
                    ButtonStyle::Default => {}
                }
                SlackActionBlockElement::Button(button)
            })
            .collect();
        out.push(SlackActionsBlock::new(elements).into());
    }
    out
}

/// The message content for `chat.postMessage` / `chat.update`.
pub(crate) fn content(view: &View) -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text(clip(&view.text))
        .with_blocks(blocks(view))
}

/// The blocks as JSON.
pub fn render_blocks(view: &View) -> serde_json::Value {
    serde_json::to_value(blocks(view)).unwrap_or_default()
}

/// The immediate HTTP answer to a slash command: visible to the channel, or only to the sender.
pub fn command_response(view: &View, ephemeral: bool) -> serde_json::Value {
    serde_json::json!({
        "response_type": if ephemeral { "ephemeral" } else { "in_channel" },
        "text": clip(&view.text),
        "blocks": render_blocks(view),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_renders_headline_fields_and_buttons() {
        let view = View {
            text: "INC-1 raised: Checkout down (P1)".into(),
            fields: vec![("Status".into(), "new".into())],
            buttons: vec![ViewButton {
                label: "Acknowledge".into(),
                action: "incident ack".into(),
                record: "INC-1".into(),
                style: ButtonStyle::Primary,
            }],
        };
        let json = command_response(&view, true);
        assert_eq!(json["response_type"], "ephemeral");
        let blocks = json["blocks"].as_array().unwrap();
        assert_eq!(
            blocks[0]["text"]["text"],
            "INC-1 raised: Checkout down (P1)"
        );
        assert_eq!(blocks[1]["fields"][0]["text"], "*Status*\nnew");
        let button = &blocks[2]["elements"][0];
        assert_eq!(button["type"], "button");
        assert_eq!(button["action_id"], "incident ack");
        assert_eq!(button["value"], "INC-1");
        assert_eq!(button["style"], "primary");
    }
}

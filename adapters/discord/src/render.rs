//! Discord rendering of a neutral view: the headline as message content, the fields as one
//! embed, and buttons whose `custom_id` is `<command verb>:<record ID>`; and the interaction
//! responses built with serenity's builders.

use serenity::all::{
    ButtonStyle, CreateActionRow, CreateAutocompleteResponse, CreateButton, CreateEmbed,
    CreateInputText, CreateInteractionResponse, CreateInteractionResponseFollowup,
    CreateInteractionResponseMessage, CreateMessage, CreateModal, EditInteractionResponse,
    EditMessage, InputTextStyle,
};

pub use opsledger_view::{ButtonStyle as Style, View, ViewButton};

// Discord's limits: 2,000 characters of content, 25 fields of 256 / 1,024 characters,
// 5 buttons per row and 5 rows, 100 characters of custom_id, 80 of a button label.
const MAX_CONTENT: usize = 2000;
const MAX_FIELDS: usize = 25;
const MAX_FIELD_NAME: usize = 256;
const MAX_FIELD_VALUE: usize = 1024;
const MAX_ROWS: usize = 5;
const ROW: usize = 5;
const MAX_LABEL: usize = 80;
const MAX_CUSTOM_ID: usize = 100;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}

/// A button's `custom_id`: the verb and the record, such as `change approve:CHG-4`.
pub fn custom_id(action: &str, record: &str) -> String {
    clip(&format!("{action}:{record}"), MAX_CUSTOM_ID)
}

/// Splits a `custom_id` back into verb and record.
pub fn split_custom_id(id: &str) -> Option<(&str, &str)> {
    id.rsplit_once(':')
        .filter(|(a, r)| !a.is_empty() && !r.is_empty())
}

fn embed(view: &View) -> Option<CreateEmbed> {
    if view.fields.is_empty() {
        return None;
    }
    let fields = view.fields.iter().take(MAX_FIELDS).map(|(k, v)| {
        // An empty value is refused by Discord.
        let v = if v.trim().is_empty() { "—" } else { v };
        (clip(k, MAX_FIELD_NAME), clip(v, MAX_FIELD_VALUE), true)
    });
    Some(CreateEmbed::new().fields(fields))
}

fn rows(view: &View) -> Vec<CreateActionRow> {
    view.buttons
        .chunks(ROW)
        .take(MAX_ROWS)
        .map(|chunk| {
            CreateActionRow::Buttons(
                chunk
                    .iter()
                    .map(|b| {
                        let style = match b.style {
                            Style::Primary => ButtonStyle::Primary,
                            Style::Danger => ButtonStyle::Danger,
                            Style::Default => ButtonStyle::Secondary,
                        };
                        CreateButton::new(custom_id(&b.action, &b.record))
                            .label(clip(&b.label, MAX_LABEL))
                            .style(style)
                    })
                    .collect(),
            )
        })
        .collect()
}

fn content(view: &View) -> String {
    clip(&view.text, MAX_CONTENT)
}

/// A new channel message.
pub(crate) fn create_message(view: &View) -> CreateMessage {
    let m = CreateMessage::new()
        .content(content(view))
        .components(rows(view));
    match embed(view) {
        Some(e) => m.embed(e),
        None => m,
    }
}

/// The replacement of a message: embeds and buttons are always set, so stale ones go.
pub(crate) fn edit_message(view: &View) -> EditMessage {
    EditMessage::new()
        .content(content(view))
        .embeds(embed(view).into_iter().collect())
        .components(rows(view))
}

/// The edit of a deferred interaction's original response.
pub(crate) fn edit_response(view: &View) -> EditInteractionResponse {
    EditInteractionResponse::new()
        .content(content(view))
        .embeds(embed(view).into_iter().collect())
        .components(rows(view))
}

/// A follow-up message to an interaction.
pub(crate) fn followup_message(view: &View, ephemeral: bool) -> CreateInteractionResponseFollowup {
    let m = CreateInteractionResponseFollowup::new()
        .content(content(view))
        .components(rows(view))
        .ephemeral(ephemeral);
    match embed(view) {
        Some(e) => m.embed(e),
        None => m,
    }
}

fn response_message(view: &View) -> CreateInteractionResponseMessage {
    let m = CreateInteractionResponseMessage::new()
        .content(content(view))
        .components(rows(view));
    match embed(view) {
        Some(e) => m.embed(e),
        None => m,
    }
}

fn json(r: CreateInteractionResponse) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// The answer to a PING.
pub fn pong() -> serde_json::Value {
    json(CreateInteractionResponse::Pong)
}

/// A message answering a command or button: in the channel, or only for the person who acted.
pub fn message_response(view: &View, ephemeral: bool) -> serde_json::Value {
    json(CreateInteractionResponse::Message(
        response_message(view).ephemeral(ephemeral),
    ))
}

/// Replaces the message whose button was pressed.
pub fn update_response(view: &View) -> serde_json::Value {
    let m = response_message(view).embeds(embed(view).into_iter().collect());
    json(CreateInteractionResponse::UpdateMessage(m))
}

/// "Thinking…": the answer follows by editing the original response.
pub fn deferred(ephemeral: bool) -> serde_json::Value {
    json(CreateInteractionResponse::Defer(
        CreateInteractionResponseMessage::new().ephemeral(ephemeral),
    ))
}

/// Acknowledges a button; the message is edited later.
pub fn deferred_update() -> serde_json::Value {
    json(CreateInteractionResponse::Acknowledge)
}

/// Up to 25 choices for an autocomplete, as (shown name, value).
pub fn autocomplete(choices: &[(String, String)]) -> serde_json::Value {
    let mut r = CreateAutocompleteResponse::new();
    for (name, value) in choices.iter().take(25) {
        r = r.add_string_choice(clip(name, 100), clip(value, 100));
    }
    json(CreateInteractionResponse::Autocomplete(r))
}

/// The `custom_id` of a modal's text input.
pub const MODAL_TEXT_INPUT: &str = "text";

/// A one-field form asking for text before a command runs (a resolution, a reason to reject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextModal {
    /// Comes back as the submission's `custom_id`: `custom_id(verb, record)`.
    pub custom_id: String,
    pub title: String,
    pub label: String,
}

/// Opens a modal.
pub fn modal(m: &TextModal) -> serde_json::Value {
    let input = CreateInputText::new(
        InputTextStyle::Paragraph,
        clip(&m.label, 45),
        MODAL_TEXT_INPUT,
    )
    .max_length(1000);
    json(CreateInteractionResponse::Modal(
        CreateModal::new(clip(&m.custom_id, MAX_CUSTOM_ID), clip(&m.title, 45))
            .components(vec![CreateActionRow::InputText(input)]),
    ))
}

/// A thread name for an incident: `INC-12 Checkout down` within Discord's 100 characters.
pub fn thread_name(record: &str, title: &str) -> String {
    clip(&format!("{record} {title}"), 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            text: "CHG-1 submitted".into(),
            fields: vec![
                ("Status".into(), "submitted".into()),
                ("Owner".into(), "".into()),
            ],
            buttons: vec![ViewButton {
                label: "Approve".into(),
                action: "change approve".into(),
                record: "CHG-1".into(),
                style: Style::Primary,
            }],
        }
    }

    #[test]
    fn a_view_renders_content_embed_fields_and_buttons() {
        let r = message_response(&view(), true);
        assert_eq!(r["type"], 4);
        assert_eq!(r["data"]["content"], "CHG-1 submitted");
        assert_eq!(r["data"]["flags"], 64);
        assert_eq!(r["data"]["embeds"][0]["fields"][0]["name"], "Status");
        assert_eq!(r["data"]["embeds"][0]["fields"][1]["value"], "—");
        let button = &r["data"]["components"][0]["components"][0];
        assert_eq!(button["type"], 2);
        assert_eq!(button["custom_id"], "change approve:CHG-1");
        assert_eq!(button["style"], 1);
    }

    #[test]
    fn responses_have_discords_type_numbers() {
        assert_eq!(pong()["type"], 1);
        assert_eq!(deferred(false)["type"], 5);
        assert_eq!(deferred_update()["type"], 6);
        assert_eq!(update_response(&view())["type"], 7);
        assert_eq!(
            autocomplete(&[("INC-1 x".into(), "INC-1".into())])["type"],
            8
        );
        let m = modal(&TextModal {
            custom_id: custom_id("incident resolve", "INC-1"),
            title: "Resolve".into(),
            label: "How?".into(),
        });
        assert_eq!(m["type"], 9);
        assert_eq!(m["data"]["custom_id"], "incident resolve:INC-1");
        assert_eq!(
            m["data"]["components"][0]["components"][0]["custom_id"],
            "text"
        );
    }

    #[test]
    fn custom_ids_round_trip() {
        let id = custom_id("change reject", "CHG-12");
        assert_eq!(split_custom_id(&id), Some(("change reject", "CHG-12")));
        assert_eq!(split_custom_id("nonsense"), None);
        assert_eq!(split_custom_id(":CHG-1"), None);
    }
}

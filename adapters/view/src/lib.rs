//! The platform-neutral message view every chat adapter renders: a headline, fields and
//! buttons. It depends on nothing, so the adapters share it without knowing opsledger or each
//! other; opsledger maps its replies to it once for all platforms.

/// What to show, in platform-neutral terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub text: String,
    /// (name, value) pairs.
    pub fields: Vec<(String, String)>,
    pub buttons: Vec<ViewButton>,
}

/// A button that runs a command verb on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewButton {
    pub label: String,
    /// The command verb the button runs, such as `incident ack`.
    pub action: String,
    /// The record it runs on, such as `INC-3`.
    pub record: String,
    pub style: ButtonStyle,
}

/// How a button stands out: platforms map these to their own styles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ButtonStyle {
    #[default]
    Default,
    Primary,
    Danger,
}

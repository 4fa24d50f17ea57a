//! The chat command parser: text in, a typed `Command` or a usage error for that one command out.
//!
//! `table` holds the grammar as data (every form's verbs, arguments, options and free text, with
//! the usage lines and help built from it), `lexer` splits text into words, and `grammar` reads a
//! form's words into its `Command`.

mod grammar;
mod lexer;
mod table;
#[cfg(test)]
pub(crate) mod tests;

use std::borrow::Cow;

use super::command::{Command, Role};
#[cfg(test)]
use grammar::CHANGE_ACTIONS;
use grammar::{early_error, known_topic, parse_toks, resolve};
use lexer::{shown, tokenize, Tok};
use table::{overview, topic_usage};

pub use table::{
    form_named, forms_of, Form, Slot, SlotKind, Structured, Topic, Verb, FORMS, TOPICS,
};

/// The longest command text accepted, in characters: chat messages are short, and a bound keeps
/// every regex and error message cheap.
pub const MAX_CHARS: usize = 4000;

/// What went wrong with a command's text, with the usage line of the command it was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}\nusage: {usage}")]
pub struct UsageError {
    /// The command the text was meant to be, such as `incident raise`, or `""` when unknown.
    pub command: &'static str,
    pub message: String,
    pub usage: &'static str,
}

/// The usage of one command (`incident raise`) or of every command of a topic (`incident`).
pub fn usage(command: &str) -> Option<&'static str> {
    let command = command.trim().to_lowercase();
    form_named(&command)
        .map(|(_, f)| f.usage())
        .or_else(|| topic_usage(&command))
}

/// The roles, any one of which lets a person run the command named `command` (`incident major`);
/// `None` for a name no form declares.
pub fn roles_of(command: &str) -> Option<&'static [Role]> {
    form_named(command).map(|(v, _)| v.roles)
}

/// Help text: an overview of all commands, or the usage lines and explanations of one topic.
pub fn help(topic: Option<&str>) -> Result<String, UsageError> {
    let Some(topic) = topic else {
        return Ok(overview().to_string());
    };
    let t = known_topic(topic)?;
    let mut out = format!("{}: {}", t.name, t.about);
    for form in forms_of(t.name) {
        out.push_str(&format!("\n{}\n    {}", form.usage(), form.about));
    }
    Ok(out)
}

/// Parse one chat command. Adapters strip `/ops` and bot mentions before calling this.
pub fn parse(text: &str) -> Result<Command, UsageError> {
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        let message = format!("command too long: {chars} characters, at most {MAX_CHARS}");
        return Err(early_error(text, message));
    }
    // Before anything else reads it: such text is refused whatever command it was meant to be.
    if let Err(bad) = super::text::check(text) {
        return Err(early_error(text, bad.to_string()));
    }
    let toks = tokenize(text).map_err(|m| early_error(text, m))?;
    parse_toks(&toks)
}

/// One piece of a command given in parts (Discord's structured commands): a plain word such as a
/// record ID, a `key:value` option, or free text taken literally (never read as options or quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Read as an unquoted word of the text, so it may also be a flag such as `security`.
    Word(&'a str),
    /// Read as the unquoted word `key:value`; an unknown key leaves it a plain word, as in text.
    Opt(&'a str, &'a str),
    /// Blank text is left out, so an empty optional field means the same as an absent one.
    Literal(&'a str),
}

impl Part<'_> {
    /// Characters as typed, to apply the same `MAX_CHARS` bound as `parse`.
    fn chars(&self) -> usize {
        match self {
            Part::Word(s) | Part::Literal(s) => s.chars().count(),
            Part::Opt(k, v) => k.chars().count() + 1 + v.chars().count(),
        }
    }
}

/// Parses a command given as its name (`"incident raise"`, `"change approve"`) and parts; the
/// result and the errors are exactly those of `parse` for the equivalent text.
///
/// Only `name` names the command, so a part is never taken for its verb. Parts that text could
/// not express (a word or option value containing whitespace) are refused rather than split.
pub fn parse_parts(name: &str, parts: &[Part<'_>]) -> Result<Command, UsageError> {
    let chars = name.chars().count() + parts.iter().map(Part::chars).sum::<usize>();
    if chars > MAX_CHARS {
        let message = format!("command too long: {chars} characters, at most {MAX_CHARS}");
        return Err(early_error(name, message));
    }
    let texts = std::iter::once(name).chain(parts.iter().flat_map(|p| match *p {
        Part::Word(w) | Part::Literal(w) => [w, ""],
        Part::Opt(k, v) => [k, v],
    }));
    for t in texts {
        if let Err(bad) = super::text::check(t) {
            return Err(early_error(name, bad.to_string()));
        }
    }
    let mut words = name.split_whitespace();
    let Some(top) = words.next() else {
        return parse_toks(&[]);
    };
    let c = resolve(top, words.next())?.ctx;
    // The same whitespace as the tokeniser's `\s`, which is Unicode's White_Space.
    let spaced = |s: &str| s.chars().any(char::is_whitespace);
    // Options are joined into owned `key:value` words first, so the tokens can borrow them.
    let mut owned: Vec<(Cow<'_, str>, bool)> = name
        .split_whitespace()
        .map(|w| (Cow::Borrowed(w), false))
        .collect();
    for part in parts {
        match *part {
            Part::Word("") => return Err(c.err("empty value: give one word")),
            // Splitting would shift every later word, e.g. turn an ID's tail into a note.
            Part::Word(w) if spaced(w) => {
                return Err(c.err(format!("`{}` must be one word", shown(w))))
            }
            Part::Word(w) => owned.push((Cow::Borrowed(w), false)),
            Part::Opt(k, _) if k.is_empty() || k.contains(':') || spaced(k) => {
                return Err(c.err(format!("`{}` is not an option name", shown(k))))
            }
            // Some checks trim (lists such as `depends:db, cache`), so refuse rather than mend.
            Part::Opt(k, v) if spaced(v) => {
                return Err(c.err(format!("`{}` must be one word", shown(&format!("{k}:{v}")))))
            }
            Part::Opt(k, v) => owned.push((Cow::Owned(format!("{k}:{v}")), false)),
            Part::Literal(t) if t.trim().is_empty() => {}
            Part::Literal(t) => owned.push((Cow::Borrowed(t), true)),
        }
    }
    let toks: Vec<Tok<'_>> = owned
        .iter()
        .map(|(text, quoted)| Tok {
            text,
            quoted: *quoted,
        })
        .collect();
    parse_toks(&toks)
}

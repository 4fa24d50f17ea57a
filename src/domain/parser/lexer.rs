//! The lexer: command text into words, quoted groups kept whole; and the word patterns the grammar checks.

use std::sync::LazyLock;

use regex::Regex;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("parser regexes are valid")
}

/// A token is a quoted group (the closing quote must end the word, so `'it's down'` is one token),
/// a stray opening quote (unterminated), or a plain word.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?s)"(.*?)"(?:\s|$)|'(.*?)'(?:\s|$)|“(.*?)”(?:\s|$)|‘(.*?)’(?:\s|$)|(["'“‘])|([^\s"'“‘]\S*)"#,
    )
});
pub(super) static NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z0-9_.-]{1,100}$"));
pub(super) static VERSION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$"));
pub(super) static REPO: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"));
pub(super) static PULL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#([0-9]+)$"));
pub(super) static PLATFORM_MENTION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^<@!?([A-Za-z0-9]+)(?:\|[^<>]*)?>$"));
pub(super) static NAME_MENTION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^@([A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)?)$"));
/// RFC 3339 without seconds, which people type: `2026-12-01T22:00Z`.
pub(super) static SHORT_TIME: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2})([Zz]|[+-][0-9]{2}:[0-9]{2})$")
});
pub(super) static DATE: LazyLock<Regex> = LazyLock::new(|| regex(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tok<'a> {
    pub(super) text: &'a str,
    /// Quoted tokens are always literal words: never options, flags or IDs' companions.
    pub(super) quoted: bool,
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Tok<'_>>, String> {
    let mut toks = Vec::new();
    for caps in TOKEN.captures_iter(text) {
        if let Some(q) = (1..=4).find_map(|i| caps.get(i)) {
            toks.push(Tok {
                text: q.as_str(),
                quoted: true,
            });
        } else if let Some(word) = caps.get(6) {
            toks.push(Tok {
                text: word.as_str(),
                quoted: false,
            });
        } else {
            let from = caps
                .get(5)
                .map_or("", |m| text.get(m.start()..).unwrap_or(""));
            let start = from.split_whitespace().next().unwrap_or("");
            return Err(format!("unterminated quote in `{}`", shown(start)));
        }
    }
    Ok(toks)
}

/// User text quoted in an error, cut short so a long token cannot flood the reply.
pub(super) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

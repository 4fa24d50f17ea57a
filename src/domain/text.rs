//! What text may be recorded: no control characters but tab and newline, no bidirectional overrides.
//!
//! Every front end checks what people type with `check` before a command is parsed, so such
//! text is a usage error that names the character, never a store error: PostgreSQL refuses NUL
//! in text, and the bidirectional controls (the "Trojan Source" characters, CVE-2021-42574)
//! would make an audit trail read differently on screen from what it holds. Text opsledger does
//! not own (a pull request title from GitHub) is recorded with `neutralize` instead, since
//! refusing it would refuse the platform's event.

use std::borrow::Cow;

/// Why a piece of text cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadText {
    #[error("the text contains a control character ({name}, U+{code:04X}) at character {at}; remove it and try again")]
    Control {
        code: u32,
        name: &'static str,
        at: usize,
    },
    #[error("the text contains a bidirectional control character (U+{code:04X}) at character {at}, which can make text display differently from what is recorded; remove it and try again")]
    Bidi { code: u32, at: usize },
}

/// Whether `c` may not be recorded: a C0 or C1 control (`char::is_control`, category Cc)
/// other than tab and newline, or a bidirectional control.
pub fn forbidden(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n') || is_bidi(c)
}

/// The embeddings, overrides and isolates: U+202A..U+202E and U+2066..U+2069.
fn is_bidi(c: char) -> bool {
    ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The usual name of a C0 control, for messages.
fn control_name(c: char) -> &'static str {
    match c {
        '\0' => "NUL",
        '\r' => "carriage return",
        '\u{1b}' => "escape",
        '\u{7f}' => "delete",
        '\u{8}' => "backspace",
        '\u{7}' => "bell",
        '\u{b}' => "vertical tab",
        '\u{c}' => "form feed",
        _ => "control",
    }
}

/// Checks text typed by a person: `Ok` when it may be recorded as it is.
pub fn check(text: &str) -> Result<(), BadText> {
    match text.chars().enumerate().find(|(_, c)| forbidden(*c)) {
        None => Ok(()),
        Some((i, c)) if is_bidi(c) => Err(BadText::Bidi {
            code: u32::from(c),
            at: i + 1,
        }),
        Some((i, c)) => Err(BadText::Control {
            code: u32::from(c),
            name: control_name(c),
            at: i + 1,
        }),
    }
}

/// Text from elsewhere with every forbidden character replaced by U+FFFD, so it can be
/// recorded without hiding anything.
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if text.chars().any(forbidden) {
        Cow::Owned(
            text.chars()
                .map(|c| if forbidden(c) { '\u{fffd}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Bytes that should be text: the string, or a message saying where the UTF-8 breaks.
pub fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "the text is not valid UTF-8 (at byte {}); send it as UTF-8",
            e.valid_up_to() + 1
        )
    })
}

/// The most words a search uses, and the longest word: a search box is not a place for essays.
pub const SEARCH_WORDS: usize = 8;
const SEARCH_WORD_CHARS: usize = 64;

/// The words a search box's text asks for: runs of letters and digits, lowercased, at most
/// `SEARCH_WORDS` of at most 64 characters each. Punctuation separates words, as both backends'
/// full-text tokenizers split titles (SQLite FTS5 `unicode61`, PostgreSQL's `simple`), so
/// nothing the user types reaches a query as syntax.
pub fn search_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word: String = word
            .chars()
            .take(SEARCH_WORD_CHARS)
            .collect::<String>()
            .to_lowercase();
        if !words.contains(&word) {
            words.push(word);
        }
        if words.len() == SEARCH_WORDS {
            break;
        }
    }
    words
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_words_are_lowercased_runs_of_letters_and_digits_and_never_syntax() {
        use super::search_words;
        assert_eq!(search_words("Checkout  DOWN"), ["checkout", "down"]);
        assert_eq!(
            search_words("db-01: \"disk\"* OR x"),
            ["db", "01", "disk", "or", "x"]
        );
        assert_eq!(search_words("Zürich café"), ["zürich", "café"]);
        assert_eq!(search_words(" -*:()^ "), Vec::<String>::new());
        assert_eq!(
            search_words("a b c d e f g h i j").len(),
            super::SEARCH_WORDS
        );
        assert_eq!(search_words("a A a"), ["a"]);
        assert_eq!(search_words(&"x".repeat(500))[0].len(), 64);
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tab_newline_and_ordinary_unicode_pass() {
        assert_eq!(
            check("Checkout down\tin EU\nsince 10:00 – café ✓ 日本"),
            Ok(())
        );
    }

    #[test]
    fn nul_and_other_c0_controls_are_named() {
        let e = check("a\0b").unwrap_err();
        assert_eq!(
            e,
            BadText::Control {
                code: 0,
                name: "NUL",
                at: 2
            }
        );
        assert!(e.to_string().contains("NUL, U+0000"), "{e}");
        assert!(check("x\r").is_err());
        assert!(check("\u{1b}[31mred").is_err());
        assert!(check("\u{7f}").is_err());
        assert!(check("\u{85}").is_err());
    }

    #[test]
    fn every_bidi_override_and_isolate_is_refused() {
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            let e = check(&format!("ok{c}")).unwrap_err();
            assert_eq!(
                e,
                BadText::Bidi {
                    code: u32::from(c),
                    at: 3
                }
            );
            assert!(e.to_string().contains("bidirectional"), "{e}");
        }
        // The marks that only hint direction are harmless and common in RTL text.
        assert_eq!(check("\u{200e}\u{200f}"), Ok(()));
    }

    #[test]
    fn neutralize_replaces_only_forbidden_characters() {
        assert_eq!(neutralize("fine\ttext"), Cow::Borrowed("fine\ttext"));
        assert_eq!(neutralize("a\0b\u{202e}c"), "a\u{fffd}b\u{fffd}c");
    }

    #[test]
    fn invalid_utf8_says_where() {
        assert_eq!(utf8(b"ok"), Ok("ok"));
        let e = utf8(b"ab\xffcd").unwrap_err();
        assert!(e.contains("not valid UTF-8 (at byte 3)"), "{e}");
    }

    proptest! {
        #[test]
        fn neutralized_text_always_passes(s in any::<String>()) {
            prop_assert_eq!(check(&neutralize(&s)), Ok(()));
        }

        #[test]
        fn check_fails_exactly_when_a_forbidden_char_is_present(s in any::<String>()) {
            prop_assert_eq!(check(&s).is_err(), s.chars().any(forbidden));
        }
    }
}

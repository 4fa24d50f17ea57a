//! `@username` mentions in a slash command's text. Mattermost sends the text as typed (it has no
//! option to escape users, as Slack has), so the usernames are found outside quotes, looked up
//! (`POST /users/usernames`), and rewritten as `<@user ID|username>`: the platform-mention form
//! opsledger's grammar reads as this platform's user ID.

use std::collections::HashMap;
use std::ops::Range;

/// The quote pairs the command grammar groups words with.
const QUOTES: [(char, char); 4] = [('"', '"'), ('\'', '\''), ('“', '”'), ('‘', '’')];

/// The unquoted words of `text`, by byte range, as the grammar splits them: a quoted group (its
/// closing quote ends a word) is one word and skipped, so a title or note is left as written.
fn unquoted_words(text: &str) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if let Some((_, close)) = QUOTES.iter().find(|(open, _)| *open == c) {
            let body = i + c.len_utf8();
            let end = text[body..].char_indices().find(|&(j, d)| {
                d == *close
                    && text[body + j + d.len_utf8()..]
                        .chars()
                        .next()
                        .is_none_or(char::is_whitespace)
            });
            match end {
                Some((j, d)) => i = body + j + d.len_utf8(),
                // Unterminated: the grammar refuses the command, so nothing here matters.
                None => break,
            }
            continue;
        }
        let end = text[i..]
            .find(char::is_whitespace)
            .map_or(text.len(), |n| i + n);
        words.push(i..end);
        i = end;
    }
    words
}

/// The username a word mentions: `@` and a Mattermost username (a letter, then 2 to 21 letters,
/// digits, `.`, `-` or `_`), lowercased as Mattermost stores it.
fn username(word: &str) -> Option<String> {
    let name = word.strip_prefix('@')?;
    let ok = (3..=22).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    ok.then(|| name.to_ascii_lowercase())
}

/// The usernames mentioned outside quotes, each once, in order.
pub fn mentioned_usernames(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for w in unquoted_words(text) {
        if let Some(name) = username(&text[w]) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// `text` with each unquoted `@username` found in `ids` (username to user ID) written as
/// `<@ID|username>`; anything else (a `[people]` name, `@platform:id`) is left as typed.
pub fn with_user_ids(text: &str, ids: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for w in unquoted_words(text) {
        let Some(id) = username(&text[w.clone()]).and_then(|n| ids.get(&n).map(|id| (n, id)))
        else {
            continue;
        };
        out.push_str(&text[last..w.start]);
        out.push_str(&format!("<@{}|{}>", id.1, id.0));
        last = w.end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_outside_quotes_are_found_once_and_lowercased() {
        let text = "incident assign INC-1 @Bob.Smith \"ping @carol\" ‘@dave’ @bob.smith a@b.c @al @eve:x @erin";
        assert_eq!(mentioned_usernames(text), ["bob.smith", "erin"]);
        assert!(mentioned_usernames("incident raise 'unterminated @bob").is_empty());
    }

    #[test]
    fn known_usernames_become_platform_mentions_and_the_rest_stay_as_typed() {
        let ids = HashMap::from([
            ("bob".to_string(), "b1b2b3".to_string()),
            ("carol".to_string(), "c1c2c3".to_string()),
        ]);
        assert_eq!(
            with_user_ids("role grant @Bob cab", &ids),
            "role grant <@b1b2b3|bob> cab"
        );
        assert_eq!(
            with_user_ids(
                "incident note INC-1 \"asked @carol\"  @carol, @zoe @carol",
                &ids
            ),
            "incident note INC-1 \"asked @carol\"  @carol, @zoe <@c1c2c3|carol>"
        );
        assert_eq!(
            with_user_ids("“@bob” ünïcode @bob", &ids),
            "“@bob” ünïcode <@b1b2b3|bob>"
        );
    }
}

//! Makes hostile text safe to print on a terminal or write into a log line.
//!
//! Header fields and bodies come from strangers. A subject can carry a line break that forges a
//! second log line, an escape sequence that clears the screen, or a bidi override that makes
//! `gpj.exe` read as `exe.jpg`. This module owns the one escaping rule every printer uses, after
//! fd's `sanitize.rs`. It must not decide what to print; callers choose the fields.

use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;

/// Returns `text` with line breaks turned into spaces and every other control character, and
/// every character that reorders or separates text, shown as a visible `\u{..}` escape.
///
/// Letters of right-to-left scripts pass through untouched: Arabic and Farsi names must stay
/// readable. Only the invisible controls that override the terminal's own ordering are escaped.
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A CRLF pair is one line break, so it becomes one space.
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                out.push(' ');
            }
            '\r' | '\n' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) || is_line_separator(c) => {
                // Writing into a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Returns a message body (or any multi-line text) safe to print on a terminal: line breaks
/// (`\n`, CRLF, a lone CR) become `\n` and tabs stay, so the text keeps its layout; every other
/// control character (ESC and the rest of C0, DEL, C1), bidi control and line separator is shown
/// as a visible `\u{..}` escape, as [`for_terminal`] does. No escape sequence survives: no
/// clipboard write (OSC 52), title change, cursor movement or clear screen, and a lone CR cannot
/// move back over a line to hide it.
pub fn text_for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) || is_line_separator(c) => {
                // Writing into a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Returns `text` with every word that holds an `@` replaced by `<address>`, for error text
/// that can reach a log line above DEBUG (a store key such as `l/s/ADDRESS`, a record named by
/// its requester). Words end at white space and at the punctuation that surrounds addresses in
/// keys and mail (`/ < > " ' , ; ( ) [ ]`), which is kept.
pub fn without_addresses(text: &str) -> String {
    let is_separator = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '/' | '<' | '>' | '"' | '\'' | ',' | ';' | '(' | ')' | '[' | ']'
            )
    };
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str("<address>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_separator(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The Unicode bidirectional formatting characters (UAX #9): embeddings, overrides, isolates,
/// the implicit marks and the Arabic letter mark.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
    )
}

/// LINE SEPARATOR and PARAGRAPH SEPARATOR, which some terminals and log viewers treat as a line
/// break although they are not control characters.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// Removes format characters (Unicode category Cf: zero-width space and joiners, the BOM,
/// bidi marks, soft hyphen), which HTML clients insert and a reader does not see.
pub fn without_format(text: &str) -> String {
    static FORMAT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\p{Cf}+").ok());
    match FORMAT.as_ref() {
        Some(format) => format.replace_all(text, "").into_owned(),
        None => text.chars().filter(|c| !is_format_fallback(*c)).collect(),
    }
}

fn is_format_fallback(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::{for_terminal, text_for_terminal, without_addresses};

    #[test]
    fn bodies_keep_their_lines_and_tabs_and_lose_every_escape_sequence() {
        let body = "Dear team,\r\n\tline two\nthree\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}gpj.exe\rhidden\u{7f}\u{2028}";
        let shown = text_for_terminal(body);
        assert_eq!(
            shown,
            "Dear team,\n\tline two\nthree\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{9b}31m\\u{202e}gpj.exe\nhidden\\u{7f}\\u{2028}"
        );
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
        let arabic = "مرحبا\nأحتاج مساعدة";
        assert_eq!(text_for_terminal(arabic), arabic);
    }

    /// Nothing a terminal acts on: no control but a line break or tab, no bidi control or line
    /// separator.
    fn inert(shown: &str) -> bool {
        !shown.chars().any(|c| {
            (c.is_control() && c != '\n' && c != '\t')
                || super::is_bidi_control(c)
                || super::is_line_separator(c)
        })
    }

    proptest::proptest! {
        #[test]
        fn no_text_reaches_the_terminal_with_anything_it_acts_on(text in "(\\PC|\\p{Cc}|\\p{Cf}|[\u{2028}\u{2029}\u{9b}\r\n\t])*") {
            let body = text_for_terminal(&text);
            proptest::prop_assert!(inert(&body), "{body:?}");
            let field = for_terminal(&text);
            proptest::prop_assert!(inert(&field) && !field.contains('\n') && !field.contains('\t'), "{field:?}");
            // Line breaks survive in a body: one per LF, CRLF or lone CR.
            let breaks = text.replace("\r\n", "\n").replace('\r', "\n").matches('\n').count();
            proptest::prop_assert_eq!(body.matches('\n').count(), breaks);
        }
    }

    #[test]
    fn addresses_are_blanked_out_of_log_text() {
        assert_eq!(
            without_addresses("corrupt record under key l/s/Victim@Phone.example"),
            "corrupt record under key l/s/<address>"
        );
        assert_eq!(
            without_addresses("bad key r/fatima@x.example/00000000000000000042: \"a@b\", <c@d>"),
            "bad key r/<address>/00000000000000000042: \"<address>\", <<address>>"
        );
        assert_eq!(without_addresses("no address here"), "no address here");
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(for_terminal("Help with my housing"), "Help with my housing");
    }

    #[test]
    fn line_breaks_become_single_spaces() {
        assert_eq!(for_terminal("a\r\nb\nc\rd"), "a b c d");
    }

    #[test]
    fn forged_log_line_stays_on_one_line() {
        let hostile = "hello\n2024-04-08T20:20:20Z INFO ticket closed";
        assert!(!for_terminal(hostile).contains('\n'));
    }

    #[test]
    fn escape_sequences_are_made_visible() {
        assert_eq!(for_terminal("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(for_terminal("nul\0"), "nul\\u{0}");
        assert_eq!(for_terminal("tab\there"), "tab\\u{9}here");
        assert_eq!(for_terminal("c1\u{9b}"), "c1\\u{9b}");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        assert_eq!(for_terminal("\u{202e}exe.jpg"), "\\u{202e}exe.jpg");
        assert_eq!(for_terminal("a\u{2066}b\u{2069}"), "a\\u{2066}b\\u{2069}");
        assert_eq!(
            for_terminal("\u{200e}\u{200f}\u{61c}"),
            "\\u{200e}\\u{200f}\\u{61c}"
        );
    }

    #[test]
    fn line_separators_are_escaped() {
        assert_eq!(for_terminal("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn right_to_left_letters_and_joiners_pass_through() {
        let farsi = "نامه\u{200c}ی اداره";
        assert_eq!(for_terminal(farsi), farsi);
        assert_eq!(for_terminal("ሰላም፡ ሓገዝ"), "ሰላም፡ ሓገዝ");
    }
}

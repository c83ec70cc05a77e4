//! The scrubber of secrets: caseworkers' addresses (and names they asked to hide) and reply
//! tokens, found case-insensitively in text and bytes (ASCII and UTF-16, with format characters
//! between letters) and replaced by stand-ins. The relay gate (`casework::gate`) decides what
//! may leave; this only finds and removes.

use std::sync::LazyLock;

use regex::Regex;

/// What stands in the relayed text where a caseworker address (or a hidden name) was.
pub const ADDRESS_STAND_IN: &str = "[caseworker]";
/// What stands in the relayed text where a reply token was.
pub const TOKEN_STAND_IN: &str = "[removed]";

/// Anything shaped like a reply token (`cm.TICKET.AGENT.MAC`, see `token`), valid or not, for
/// this ticket or another: a forwarded notification may carry anyone's.
const TOKEN_SHAPE: &str = r"cm\.[0-9]+\.[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*";

/// What must never reach a requester: the caseworkers' addresses and the reply tokens.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Matches any secret in text; `None` only if no pattern could be built, in which case
    /// [`Secrets::scrub`] still removes tokens and [`Secrets::found_in`] reports everything.
    text: Option<Regex>,
    /// The same over bytes: ASCII case-insensitive, and UTF-16 in both byte orders.
    bytes: Option<regex::bytes::Regex>,
}

impl Secrets {
    /// `addresses`: every registered caseworker address; `tokens`: the reply tokens known to
    /// be in play (anything token-shaped is removed as well).
    pub fn new<'a>(
        addresses: impl IntoIterator<Item = &'a str>,
        tokens: impl IntoIterator<Item = &'a str>,
    ) -> Secrets {
        Secrets::with_names(addresses, tokens, [])
    }

    /// As [`Secrets::new`], and `names` (`[helpdesk] hide_names`: caseworkers' names an
    /// operator wants kept from requesters) replaced as whole words, in any case, with any
    /// white space between their words.
    pub fn with_names<'a>(
        addresses: impl IntoIterator<Item = &'a str>,
        tokens: impl IntoIterator<Item = &'a str>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Secrets {
        let mut names: Vec<&str> = names
            .into_iter()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
        let name_pattern = if names.is_empty() {
            String::new()
        } else {
            format!(
                r"|\b(?:{})\b",
                alternatives(&names, |name| {
                    name.split_whitespace()
                        .map(text_alternative)
                        .collect::<Vec<_>>()
                        .join(r"[\s\p{Cf}]+")
                })
            )
        };
        let mut needles: Vec<&str> = addresses
            .into_iter()
            .chain(tokens)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        // Longest first, so that at one position the whole secret wins over a shorter one
        // it contains.
        needles.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
        needles.dedup();
        let text_pattern = format!(
            r"(?i)(?P<token>\b{TOKEN_SHAPE})|(?P<secret>{}{name_pattern})",
            alternatives(&needles, text_alternative)
        );
        let bytes_pattern = format!(
            r"(?i-u)(?:\b{TOKEN_SHAPE}|{})",
            alternatives(&needles, |n| {
                format!(
                    "{}|{}|{}",
                    regex::escape(n),
                    utf16_alternative(n, Endian::Big),
                    utf16_alternative(n, Endian::Little)
                )
            })
        );
        Secrets {
            text: regex::RegexBuilder::new(&text_pattern)
                .size_limit(64 << 20)
                .build()
                .ok(),
            bytes: regex::bytes::RegexBuilder::new(&bytes_pattern)
                .size_limit(64 << 20)
                .build()
                .ok(),
        }
    }

    /// `text` with every secret replaced by a stand-in.
    pub fn scrub(&self, text: &str) -> String {
        match &self.text {
            Some(pattern) => pattern
                .replace_all(text, |captures: &regex::Captures<'_>| {
                    if captures.name("token").is_some() {
                        TOKEN_STAND_IN
                    } else {
                        ADDRESS_STAND_IN
                    }
                })
                .into_owned(),
            None => TOKEN_FALLBACK
                .replace_all(text, TOKEN_STAND_IN)
                .into_owned(),
        }
    }

    /// Whether any secret can be found in `bytes` (ASCII in any case, or UTF-16). Without a
    /// pattern, everything counts as found: the caller holds rather than guesses.
    pub fn found_in(&self, bytes: &[u8]) -> bool {
        self.bytes.as_ref().is_none_or(|p| p.is_match(bytes))
    }

    /// Whether any secret is in `text`.
    pub fn found_in_text(&self, text: &str) -> bool {
        self.text.as_ref().is_none_or(|p| p.is_match(text)) || self.found_in(text.as_bytes())
    }
}

static TOKEN_FALLBACK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("(?i){TOKEN_SHAPE}")).unwrap_or_else(|_| {
        // The shape is a fixed, valid pattern; an empty-matching pattern would be harmless.
        Regex::new("$^").unwrap_or_else(|_| unreachable!("a trivial pattern compiles"))
    })
});

fn alternatives(needles: &[&str], each: impl Fn(&str) -> String) -> String {
    if needles.is_empty() {
        // Matches nothing: an empty character class.
        return "[^\\s\\S]".to_owned();
    }
    needles
        .iter()
        .map(|n| each(n))
        .collect::<Vec<_>>()
        .join("|")
}

/// One secret as a pattern over text: its characters in order, any number of format characters
/// (zero-width spaces, soft hyphens, bidi marks) allowed between them.
fn text_alternative(needle: &str) -> String {
    needle
        .chars()
        .map(|c| regex::escape(c.encode_utf8(&mut [0; 4])))
        .collect::<Vec<_>>()
        .join(r"\p{Cf}*")
}

#[derive(Clone, Copy)]
enum Endian {
    Big,
    Little,
}

/// One secret as a pattern over UTF-16 bytes (PDF strings, Office files), letters in either
/// case. Characters outside the BMP are left to the ASCII and text patterns.
fn utf16_alternative(needle: &str, endian: Endian) -> String {
    let mut out = String::new();
    for unit in needle.encode_utf16() {
        let [high, low] = unit.to_be_bytes();
        let class = |byte: u8| {
            let c = char::from(byte);
            if c.is_ascii_alphabetic() {
                format!(
                    "[\\x{:02x}\\x{:02x}]",
                    c.to_ascii_lowercase() as u8,
                    c.to_ascii_uppercase() as u8
                )
            } else {
                format!("\\x{byte:02x}")
            }
        };
        match endian {
            Endian::Big => {
                out.push_str(&format!("\\x{high:02x}"));
                out.push_str(&class(low));
            }
            Endian::Little => {
                out.push_str(&class(low));
                out.push_str(&format!("\\x{high:02x}"));
            }
        }
    }
    format!("(?:{out})")
}

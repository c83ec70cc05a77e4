//! Keeps only what a caseworker wrote in a reply: the quoted history under or around it, the
//! signature and the "Sent from my iPhone" taglines go, so that what reaches the requester (and
//! the ticket) is the caseworker's own words.
//!
//! This module is pure: no I/O, no clock, and it never fails or panics. It must not decide
//! whether a reply is relayed, interpret the command lines (`#note`, `#close`, …) a reply may
//! start with, which it keeps as text, or read anything but the message it is given.
//!
//! When in doubt it keeps text: a reply that would come out empty is returned whole, a block of
//! `>` lines in the middle of the text is kept unless something says it is quoted mail, and a
//! forwarded message is kept. Quoted history is recognised, strongest signal first, by:
//!
//! 1. the [`REPLY_ABOVE`] line that heads every notification casemail sends: everything from it
//!    down is history, together with the attribution line or header block right above it;
//! 2. in an HTML body, the elements clients put quoted mail in (Gmail's `gmail_quote`, the
//!    `<blockquote type="cite">` of Apple Mail and Thunderbird, Outlook's `divRplyFwdMsg`, …),
//!    removed before the HTML becomes text;
//! 3. attribution lines ("On … wrote:" in many languages), Outlook header blocks
//!    (From/Sent/To/Subject and their translations), "Original Message" separators and blocks
//!    of `>` lines at the end.
//!
//! Answers typed between quoted lines (inline replies) are kept and the quoted lines between
//! them dropped.

use std::panic::{self, AssertUnwindSafe};

use serde::Serialize;

use crate::mail::parse::InboundMail;

mod body;
mod history;
mod html;
mod line;
mod patterns;
mod plain;
mod signature;
#[cfg(test)]
mod tests;

use body::Body;
use plain::strip_plain;

/// The first line of every notification casemail sends to a caseworker. In a reply, it and
/// everything under it is the notification being quoted.
pub const REPLY_ABOVE: &str = "##- Please type your reply above this line -##";

/// Stands, on a line of its own, for quoted history the HTML stage removed, so that the
/// plain-text rules can still drop the attribution line above it. A private-use character: no
/// client writes it, and it is removed from the HTML before the stage adds its own.
const REMOVED: &str = "\u{E000}";

/// What [`strip`] kept of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stripped {
    /// The caseworker's own text: line endings `\n`, no trailing white space on any line, no
    /// blank lines at either end and never more than one blank line in a row.
    pub text: String,
    /// Quoted history was found and left out.
    pub removed_quote: bool,
    /// A signature or a phone's tagline was found and left out.
    pub removed_signature: bool,
    /// Nothing was left once history and signature were removed, so `text` is the whole
    /// original text instead: the caseworker probably sent the quote without writing anything.
    /// The relay gate holds such a reply: the quote is never relayed in its place.
    pub only_history: bool,
}

impl Stripped {
    /// The original text, kept whole.
    fn whole(text: &str) -> Stripped {
        Stripped {
            text: text.trim_end().to_owned(),
            removed_quote: false,
            removed_signature: false,
            only_history: !text.trim().is_empty(),
        }
    }
}

/// How the text being stripped is laid out. Flowed text (RFC 3676, `format=flowed`) ends a line
/// with a space where the writer's paragraph goes on, and space-stuffs lines that start with a
/// space or `>`; with `delsp=yes` the space at a soft break is not part of the text. Text
/// converted from HTML has its lines trimmed, so its signature delimiter has lost the space that
/// marks "-- " in plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Fixed,
    Flowed,
    FlowedDelSp,
    FromHtml,
}

impl Format {
    fn is_flowed(self) -> bool {
        matches!(self, Format::Flowed | Format::FlowedDelSp)
    }

    /// The RFC 3676 signature delimiter, "-- ".
    fn is_signature_delimiter(self, line: &str) -> bool {
        let line = line.trim_start_matches(patterns::is_invisible);
        line == "-- " || (self == Format::FromHtml && line == "--")
    }
}

/// Whether a message passes on mail of its own (a forward) or answers the mail it quotes. Header
/// blocks in a forward introduce the forwarded mail, which is content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reply,
    Forward,
}

impl Purpose {
    fn of(subject: Option<&str>) -> Purpose {
        match subject {
            Some(subject) if patterns::is_forward_subject(subject) => Purpose::Forward,
            _ => Purpose::Reply,
        }
    }
}

/// The caseworker's own text of a reply. `raw` must be the bytes `mail` was parsed from: when
/// the message has an HTML body, quoted history is found in its structure, which the text
/// [`InboundMail::text`] holds has lost. Never fails and never panics.
pub fn strip(mail: &InboundMail, raw: &[u8]) -> Stripped {
    // Everything below is written not to panic, and mail-parser is guarded where it is called,
    // but the reply bridge must never lose a reply to a bug here: the whole text is a safe answer.
    panic::catch_unwind(AssertUnwindSafe(|| strip_unguarded(mail, raw)))
        .unwrap_or_else(|_| Stripped::whole(&mail.text))
}

/// The caseworker's own text of a plain-text reply, for text without the message around it.
/// Never fails and never panics.
pub fn strip_text(text: &str) -> Stripped {
    panic::catch_unwind(|| keep_something(strip_plain(text, Purpose::Reply, Format::Fixed), text))
        .unwrap_or_else(|_| Stripped::whole(text))
}

/// [`strip`] without its panic guard, so that tests see any panic.
pub(crate) fn strip_unguarded(mail: &InboundMail, raw: &[u8]) -> Stripped {
    let purpose = Purpose::of(mail.subject.as_deref());
    let body = Body::read(raw, purpose);
    if let Some(html) = body.html {
        let mut stripped = strip_plain(&html.text, purpose, Format::FromHtml);
        if !stripped.text.is_empty() {
            stripped.removed_signature |= html.removed_signature;
            return stripped;
        }
    }
    keep_something(strip_plain(&mail.text, purpose, body.format), &mail.text)
}

/// The stripped text, or the original when stripping left nothing.
fn keep_something(stripped: Stripped, original: &str) -> Stripped {
    if stripped.text.is_empty() {
        Stripped::whole(original)
    } else {
        stripped
    }
}

//! The relay gate: the one place a caseworker's answer passes on its way to a requester. It
//! decides whether the answer may go at all, and scrubs what goes. Pure: no I/O, no clock.
//!
//! Requesters may be read by the person they are hiding from, so the gate fails closed: what it
//! cannot clean is held (kept on the ticket as a note, never sent) and the caseworker is told.
//!
//! The policy, in the order [`decide`] applies it:
//!
//! 1. **Nothing typed, nothing sent.** When stripping found no new text above the quoted
//!    notification (a phone tagline over the quote, an accidental send, a reply carrying only
//!    files), the answer is held. The quote, the notification's header block or the ticket's
//!    previous message are never relayed in its place.
//! 2. **Commands are never relayed.** A first line that looks like a command once format
//!    characters (Unicode category Cf: zero-width spaces, the BOM, bidi marks) are removed, but
//!    is not one casemail knows, holds the answer; so does a known command whose line cannot be
//!    read. `#note` in any of its spellings is filed as a note before the gate is asked. A line
//!    further down that starts with a command casemail knows (`#note` under a greeting, `#close`
//!    under the text) holds the answer too: commands act only at the top, and what follows such
//!    a line may be meant for the caseworkers alone.
//! 3. **Text**: every registered caseworker address, every reply token (anything shaped like
//!    one, not only the current one) and the names listed in `[helpdesk] hide_names` are
//!    replaced, matched case-insensitively with Unicode simple
//!    case folding over the original text (so a Kelvin sign or an Ångström sign in the address
//!    matches too, and text before it in any script cannot shift where the cut falls), with
//!    format characters allowed between the letters. A text that still holds the notification
//!    marker line or its header block (`Ticket: #N` and `Status:` lines) is held: the quote got
//!    past stripping.
//! 4. **Files** (see [`files`]): a forwarded message becomes a plain-text file of its scrubbed
//!    subject, date and text (its headers and its own files are left out); a plain-text file is
//!    scrubbed; JPEG and PNG images lose every metadata segment or chunk (EXIF, XMP, IPTC,
//!    comments, text chunks); PDFs lose their Info dictionary (author, creator, producer, title),
//!    every XMP `Metadata` stream and the file identifier. vCards, S/MIME and PGP signatures,
//!    calendar invitations and the images of the message body (inline parts with a Content-ID,
//!    Outlook's `image001.png`) are dropped. Anything else (office documents, whose
//!    `docProps/core.xml` names the author, archives, HEIC photos, a PDF that does not load or is
//!    encrypted) holds the answer. A cleaned file in which an address or token can still be found
//!    as bytes holds it too. Files too large to keep are dropped.
//! 5. **Headers**: In-Reply-To and References name only messages the ticket's requester sent;
//!    after a merge, the other requester's Message-IDs stay out ([`threading`]).
//! 6. **The composed message** is parsed back, and every header and decoded part searched for
//!    the addresses and tokens once more ([`check_composed`]); a find holds the answer.
//!
//! What was dropped or cleaned is listed for the caseworker's confirmation.

use std::sync::LazyLock;

use regex::Regex;

use crate::casework::reply::Commands;
use crate::ids::MessageId;
use crate::mail::strip::{REPLY_ABOVE, Stripped};
use crate::model::{Direction, StoredMessage, Ticket};

pub mod files;
#[cfg(test)]
mod tests;

pub use crate::mail::compose::Cleared;
pub use crate::mail::scrub::{ADDRESS_STAND_IN, Secrets, TOKEN_STAND_IN};
pub use files::{File, FileOutcome};

/// Why an answer is held: kept on the ticket as a note, never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// No new text above the quote: a tagline, an accidental send, the quote alone.
    Empty,
    /// Files with no text.
    FilesOnly,
    /// The first line looks like a command but is none casemail knows.
    UnknownCommand(String),
    /// A known command whose line could not be read.
    UnreadableCommand(Vec<String>),
    /// A line under the text starts with a known command: commands act only at the top, and
    /// the text after it may be internal.
    CommandBelowText(String),
    /// The notification marker is still in the text.
    QuotedNotification,
    /// A file that cannot be cleaned.
    File { name: String, why: String },
    /// The composed answer still carried a caseworker address or a token.
    Leak,
}

impl Hold {
    /// What the caseworker is told, with how to answer.
    pub fn explain(&self, ticket: u64) -> String {
        let how = format!(
            "To answer, use Reply on the latest notification for ticket #{ticket} and type your answer above the line \"{REPLY_ABOVE}\"."
        );
        let why = match self {
            Hold::Empty => "nothing was written above the quoted notification (only a quote, a signature or a \"Sent from my phone\" line)".to_owned(),
            Hold::FilesOnly => "it carries files but no text; write a few words with the files".to_owned(),
            Hold::UnknownCommand(line) => format!(
                "its first line {line:?} looks like a command but is not one (commands: #note, #close, #reopen, #assign AGENT, #merge N, #spam, #notspam, #away [until DATE], #back); to send text starting with #, put a word before it"
            ),
            Hold::UnreadableCommand(errors) => format!(
                "a command line could not be read ({})",
                errors.join("; ")
            ),
            Hold::CommandBelowText(line) => format!(
                "the line {line:?} is a command, but commands act only at the top of an answer, above any text; nothing was done"
            ),
            Hold::QuotedNotification => "the quoted notification could not be separated from your answer".to_owned(),
            Hold::File { name, why } => format!("the file {name:?} {why}"),
            Hold::Leak => "a caseworker address or reply token was still found in the composed answer".to_owned(),
        };
        format!(
            "Your answer was NOT sent to the requester: {why}. It is kept on the ticket as a note. {how}"
        )
    }

    /// A short form for the ticket's event log and the stored note's anomaly.
    pub fn summary(&self) -> String {
        match self {
            Hold::Empty => "empty answer".to_owned(),
            Hold::FilesOnly => "files without text".to_owned(),
            Hold::UnknownCommand(_) => "unknown command".to_owned(),
            Hold::UnreadableCommand(_) => "unreadable command".to_owned(),
            Hold::CommandBelowText(_) => "command below the text".to_owned(),
            Hold::QuotedNotification => "quoted notification in the answer".to_owned(),
            Hold::File { .. } => "a file that cannot be cleaned".to_owned(),
            Hold::Leak => "caseworker identity in the composed answer".to_owned(),
        }
    }
}

/// The gate's answer for a caseworker's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Relay this, and nothing else.
    Relay(Cleared),
    /// Only commands: nothing to relay, nothing held.
    CommandsOnly,
    /// Keep it as a note and tell the caseworker.
    Hold(Hold),
}

/// Decides what of a caseworker's reply may reach the requester. `stripped` is the reply
/// without its history, `parsed` its command lines read from `stripped.text`, `files` its
/// attachments (see [`files::read`]).
pub fn decide(
    stripped: &Stripped,
    parsed: &Commands,
    files: &[File],
    secrets: &Secrets,
) -> Decision {
    if stripped.only_history {
        return Decision::Hold(if files.is_empty() {
            Hold::Empty
        } else {
            Hold::FilesOnly
        });
    }
    if !parsed.errors.is_empty() {
        return Decision::Hold(Hold::UnreadableCommand(parsed.errors.clone()));
    }
    if let Some(line) = looks_like_command(&parsed.body) {
        return Decision::Hold(Hold::UnknownCommand(line));
    }
    if let Some(line) = command_below_text(&parsed.body) {
        return Decision::Hold(Hold::CommandBelowText(line));
    }
    let body = parsed.body.trim();
    if body.is_empty()
        || crate::mail::sanitize::without_format(body)
            .trim()
            .is_empty()
    {
        return if files.is_empty() && !parsed.commands.is_empty() {
            Decision::CommandsOnly
        } else if files.is_empty() {
            Decision::Hold(Hold::Empty)
        } else {
            Decision::Hold(Hold::FilesOnly)
        };
    }
    if contains_marker(body) {
        return Decision::Hold(Hold::QuotedNotification);
    }
    let mut cleared = Cleared {
        text: secrets.scrub(body),
        attachments: Vec::new(),
        removed: Vec::new(),
    };
    for file in files {
        match files::clean(file, secrets) {
            FileOutcome::Relay { attachment, note } => {
                if let Some(note) = note {
                    cleared.removed.push(note);
                }
                cleared.attachments.push(attachment);
            }
            FileOutcome::Drop(note) => cleared.removed.push(note),
            FileOutcome::Hold(why) => {
                return Decision::Hold(Hold::File {
                    name: file.display_name(),
                    why,
                });
            }
        }
    }
    Decision::Relay(cleared)
}

/// The first line of `body`, when it looks like a command: `#` (or a full-width `＃`) and a
/// letter, once format characters are removed. `#1 priority` does not.
pub fn looks_like_command(body: &str) -> Option<String> {
    let first = body
        .lines()
        .map(crate::mail::sanitize::without_format)
        .find(|line| !line.trim().is_empty())?;
    let rest = first.trim().strip_prefix(['#', '\u{FF03}'])?.trim_start();
    rest.chars()
        .next()
        .is_some_and(char::is_alphabetic)
        .then(|| {
            first
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect()
        })
}

/// The words of the commands [`crate::casework::reply::commands`] reads.
const COMMAND_WORDS: &[&str] = &[
    "note", "notes", "close", "reopen", "assign", "merge", "spam", "notspam", "away", "back",
];

/// The first line of `body` that starts with a command casemail knows (`#note`, `# close:`,
/// behind format characters or a full-width `＃`), wherever it stands: a hashtag that is not a
/// command word (`#MeToo`) does not count.
fn command_below_text(body: &str) -> Option<String> {
    body.lines().find_map(|line| {
        let visible = crate::mail::sanitize::without_format(line);
        let rest = visible.trim().strip_prefix(['#', '\u{FF03}'])?.trim_start();
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        COMMAND_WORDS.contains(&word.as_str()).then(|| {
            visible
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect()
        })
    })
}

/// Whether `text` holds the notification's marker line, or its header block (a `Ticket: #N`
/// line and a `Status:` line, quoted or not): the quote got past stripping.
fn contains_marker(text: &str) -> bool {
    static HEADER_BLOCK: LazyLock<Option<(Regex, Regex)>> = LazyLock::new(|| {
        Some((
            Regex::new(r"(?mi)^[\s>]*Ticket:\s*#\d+").ok()?,
            Regex::new(r"(?mi)^[\s>]*Status:\s*\S").ok()?,
        ))
    });
    let visible = crate::mail::sanitize::without_format(text);
    match HEADER_BLOCK.as_ref() {
        Some((ticket, status)) if ticket.is_match(&visible) && status.is_match(&visible) => {
            return true;
        }
        Some(_) => {}
        None => return true,
    }
    contains_marker_line(&visible)
}

fn contains_marker_line(text: &str) -> bool {
    let marker: String = REPLY_ABOVE
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let plain: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    plain.contains(&marker)
}

/// In-Reply-To and References for the answer: only Message-IDs of messages the ticket's
/// requester sent (RFC 5322 §3.6.4), the latest last; never a caseworker's, a note's, or
/// another requester's merged into the ticket.
pub fn threading(
    ticket: &Ticket,
    messages: &[StoredMessage],
) -> (Option<MessageId>, Vec<MessageId>) {
    let own: Vec<MessageId> = messages
        .iter()
        .filter(|m| m.direction == Direction::In)
        .filter(|m| {
            m.from
                .as_deref()
                .is_some_and(|from| from.eq_ignore_ascii_case(&ticket.requester))
        })
        .filter_map(|m| m.message_id.clone())
        .collect();
    let references: Vec<MessageId> = own.iter().rev().take(10).rev().cloned().collect();
    (own.last().cloned(), references)
}

/// The last look at a composed answer: every header and every decoded part, searched for the
/// secrets. `true` when the answer is clean. `requester` (the recipient's address, which the
/// headers must carry) is left out of the search first, so that a requester whose address
/// happens to contain a caseworker's (`hana@x.example` and `ana@x.example`) still gets answers.
pub fn check_composed(raw: &[u8], secrets: &Secrets, requester: &str) -> bool {
    use mail_parser::MessageParser;
    let without_requester = |bytes: &[u8]| -> Vec<u8> {
        let lower = bytes.to_ascii_lowercase();
        let needle = requester.trim().to_ascii_lowercase().into_bytes();
        if needle.is_empty() {
            return lower;
        }
        let mut out = Vec::with_capacity(lower.len());
        let mut rest = lower.as_slice();
        while let Some(at) = rest
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
        {
            out.extend_from_slice(rest.get(..at).unwrap_or_default());
            rest = rest.get(at + needle.len()..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
        out
    };
    if secrets.found_in(&without_requester(raw)) {
        return false;
    }
    let Some(message) = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
    else {
        return false;
    };
    let header_text: String = message
        .parts
        .iter()
        .flat_map(|p| p.headers.iter())
        .map(|h| format!("{:?}\n", h.value))
        .collect();
    let header_text =
        String::from_utf8_lossy(&without_requester(header_text.as_bytes())).into_owned();
    if secrets.found_in_text(&header_text) {
        return false;
    }
    !message
        .parts
        .iter()
        .any(|part| secrets.found_in(&without_requester(part.contents())))
}

//! Turns the raw bytes of one message into an [`InboundMail`]: the addresses, threading
//! headers, loop signals, readable text, attachments and dedupe key that later stages need, plus
//! a list of [`Anomaly`] values saying what was wrong with the message.
//!
//! This module does no I/O, reads no clock and never fails: empty input, binary garbage, NUL
//! bytes, broken MIME and unknown charsets all come back as an `InboundMail` with anomalies, so
//! a hostile message becomes a flagged ticket and never a crash (DESIGN.md, "Bad input"). It
//! must not keep the raw bytes; the caller stores them next to the ticket or in quarantine.
//!
//! MIME decoding and charset conversion are mail-parser's. This module adds what mail-parser
//! leaves to its callers: choosing the first of repeated header fields, reading Message-ID lists
//! leniently, stripping scripts and styles before converting HTML, noticing structural damage
//! that mail-parser silently recovers from, and computing the dedupe key.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use jiff::Timestamp;
use mail_parser::{Message, MessageParser, PartType};
use serde::Serialize;

use crate::ids::{MailKey, MessageId};

mod addresses;
mod anomaly;
mod body;
mod checks;
mod headers;
pub(crate) mod html;
mod key;
mod message_id;
#[cfg(test)]
mod tests;

pub use addresses::is_sendable;
pub use anomaly::{Anomaly, MimeProblem, Truncation, Unparseable};
pub use message_id::{header_message_id, message_ids};

use body::clean_text;
use headers::read_message;
use html::html_to_text;
use key::content_hash;

/// The attachment size above which attachments are "kept as raw only" when the configuration
/// says nothing else: 25 MiB, the largest attachment common providers accept.
pub const DEFAULT_MAX_ATTACHMENT_SIZE: u64 = 25 * 1024 * 1024;

/// Limits that decide what parse copies out of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Attachments larger than this (decoded bytes) are listed but their content is not copied;
    /// they stay available in the raw message only.
    pub max_attachment_size: u64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_attachment_size: DEFAULT_MAX_ATTACHMENT_SIZE,
        }
    }
}

/// Everything later stages read from one message. Built only by [`parse`].
#[derive(Debug, Clone, Serialize)]
pub struct InboundMail {
    /// The dedupe key: the Message-ID, or a content hash when there is none.
    pub key: MailKey,
    /// Length of the raw message in bytes.
    pub size: usize,

    pub message_id: Option<MessageId>,
    /// In-Reply-To ids, in header order, without duplicates.
    pub in_reply_to: Vec<MessageId>,
    /// References ids, in header order, without duplicates.
    pub references: Vec<MessageId>,

    /// The first address of the first From field.
    pub from: Option<Mailbox>,
    /// How many addresses all From fields hold together. One person writes a message; a
    /// second From field or address is how a forger shows one name and is checked as another,
    /// so the authentication verdict (`auth.rs`) fails anything but 1.
    pub from_count: usize,
    /// The Sender field, set when someone sends on behalf of the From address.
    pub sender: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// The envelope sender the delivering server recorded in Return-Path, lower-cased. An empty
    /// string is the null reverse-path `<>` that bounces and auto-replies carry (RFC 5321
    /// §4.5.5); `None` means there was no Return-Path field.
    pub return_path: Option<String>,

    /// The decoded Subject.
    pub subject: Option<String>,
    /// The subject without `Re:`/`Fwd:` prefixes and leading `[...]` tags, by mail-parser's
    /// `thread_name`. The tags include ticket references such as `[#1042]`, so anything looking
    /// for a ticket number must read `subject`.
    pub thread_subject: Option<String>,
    /// The Date field; `None` when it is missing or cannot be read (see the anomalies).
    pub date: Option<Timestamp>,

    /// Auto-Submitted (RFC 3834), lower-cased, e.g. `auto-replied`. The value `no` means a
    /// person sent the message.
    pub auto_submitted: Option<String>,
    /// Precedence, lower-cased, e.g. `bulk`, `list`, `junk`.
    pub precedence: Option<String>,
    /// The id part of List-Id (RFC 2919), lower-cased, without angle brackets.
    pub list_id: Option<String>,
    pub list_unsubscribe: bool,
    /// An X-Autoreply or X-Autorespond field that does not say `no`.
    pub x_autoreply: bool,
    /// A multipart/report of report-type delivery-status, or a message/delivery-status part.
    pub is_delivery_report: bool,
    /// Raw values (unfolded, in order) of the fields in [`KEPT_HEADERS`], keyed by lower-case
    /// name, for the spam and loop checks.
    pub headers: BTreeMap<String, Vec<String>>,

    /// The readable text: the text/plain body, or text converted from HTML without scripts and
    /// styles. Line endings are `\n`; trailing white space is trimmed.
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub anomalies: Vec<Anomaly>,
}

/// The header fields copied verbatim into [`InboundMail::headers`].
pub const KEPT_HEADERS: &[&str] = &[
    "authentication-results",
    "delivered-to",
    "x-casemail-loop",
    "x-spam-flag",
    "x-spam-score",
    "x-spam-status",
    "x-spamd-result",
];

/// One address with its display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Mailbox {
    /// The decoded display name, when there is one.
    pub name: Option<String>,
    /// The address, lower-cased whole so that comparisons are plain string equality.
    pub address: String,
}

/// One attachment or inline part that is not the message text: photos, scans, forwarded mail.
///
/// The decoded content of a kept attachment is available through [`Attachment::content`]; it is
/// not serialised, so JSON output and logs stay small.
#[derive(Clone, Serialize)]
pub struct Attachment {
    /// The file name from Content-Disposition or Content-Type, RFC 2231 and 2047 decoded.
    pub name: Option<String>,
    /// `type/subtype`, lower-cased.
    pub content_type: String,
    /// Decoded size in bytes. Text parts are counted after conversion to UTF-8.
    pub size: u64,
    /// `false` when the content was not copied: too large, or not decodable (a truncated
    /// base64 part). The attachment then exists in the raw message only.
    pub kept: bool,
    #[serde(skip)]
    content: Vec<u8>,
}

impl Attachment {
    /// The decoded bytes of a kept attachment; `None` when it was kept as raw only. Text parts
    /// are returned converted to UTF-8.
    pub fn content(&self) -> Option<&[u8]> {
        self.kept.then_some(self.content.as_slice())
    }
}

impl fmt::Debug for Attachment {
    // The derived Debug would print every byte of a photo.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

/// The visible text of an HTML document (a file a requester attached, say): the text a reader
/// sees, with hidden elements (scripts, styles, the head) and every URL in the markup left out.
/// `None` only if the converter panicked, which it is written never to do; the caller then must
/// not pass the HTML on.
pub fn html_document_text(html: &str) -> Option<String> {
    panic::catch_unwind(|| html_to_text(html)).ok()
}

impl InboundMail {
    /// The sender's address cannot be written to (see [`Anomaly::UnusableAddress`]).
    pub fn has_unusable_address(&self) -> bool {
        self.anomalies
            .iter()
            .any(|anomaly| matches!(anomaly, Anomaly::UnusableAddress { .. }))
    }

    /// Nothing a person could read: no text, and the bytes did not even parse as a message.
    pub fn is_unreadable(&self) -> bool {
        self.text.is_empty()
            && self
                .anomalies
                .iter()
                .any(|anomaly| matches!(anomaly, Anomaly::Unparseable { .. }))
    }
}

/// Reads one raw message. Never fails and never panics; see the module documentation.
pub fn parse(raw: &[u8], limits: &ParseLimits) -> InboundMail {
    // Everything below is written not to panic, and mail-parser is guarded separately, but a
    // panic here would stop the single writer with the mail unfiled. Should one happen anyway,
    // the message is filed as unparseable and its raw bytes are kept by the caller.
    panic::catch_unwind(AssertUnwindSafe(|| parse_unguarded(raw, limits))).unwrap_or_else(|_| {
        let anomalies = vec![Anomaly::Unparseable {
            reason: Unparseable::ParserFailure,
        }];
        finish(unparseable_mail(raw), raw, None, anomalies)
    })
}

/// [`parse`] without its outer panic guard, so that tests see any panic in casemail's code.
pub(crate) fn parse_unguarded(raw: &[u8], limits: &ParseLimits) -> InboundMail {
    let mut anomalies = Vec::new();
    let mut unparseable = |reason| {
        anomalies.push(Anomaly::Unparseable { reason });
        let anomalies = std::mem::take(&mut anomalies);
        finish(unparseable_mail(raw), raw, None, anomalies)
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return unparseable(Unparseable::Empty);
    }
    // mail-parser 0.11 has `debug_assert!(false, ..)` branches that hostile input reaches (an
    // empty message/rfc822 part followed by another part does), so in a debug build it can
    // panic. The panic is contained here and the message filed as unparseable.
    let Ok(parsed) = panic::catch_unwind(|| MessageParser::default().parse(raw)) else {
        return unparseable(Unparseable::ParserFailure);
    };
    let Some(message) = parsed else {
        return unparseable(Unparseable::NoHeaders);
    };
    let Some(root) = message.parts.first() else {
        return unparseable(Unparseable::NoHeaders);
    };
    // Any line with a colon reads as a header field, so binary garbage "parses"; a message
    // needs at least one field casemail knows by name.
    if root.headers.iter().all(|header| header.name.is_other()) {
        return unparseable(Unparseable::NoHeaders);
    }
    if is_headers_only(root, raw.len()) {
        anomalies.push(Anomaly::Unparseable {
            reason: Unparseable::NoBody,
        });
    }
    let mail = read_message(&message, raw, limits, &mut anomalies);
    finish(mail, raw, Some(&message), anomalies)
}

/// The mail for bytes that are not a message: nothing but the size and, when the bytes are
/// plain text (a body saved without headers, say), that text. Binary garbage gets no text.
fn unparseable_mail(raw: &[u8]) -> InboundMail {
    let text = match std::str::from_utf8(raw) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            clean_text(text)
        }
        _ => String::new(),
    };
    InboundMail {
        key: MailKey::ContentHash(String::new()),
        size: raw.len(),
        message_id: None,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        from: None,
        from_count: 0,
        sender: None,
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        return_path: None,
        subject: None,
        thread_subject: None,
        date: None,
        auto_submitted: None,
        precedence: None,
        list_id: None,
        list_unsubscribe: false,
        x_autoreply: false,
        is_delivery_report: false,
        headers: BTreeMap::new(),
        text,
        attachments: Vec::new(),
        anomalies: Vec::new(),
    }
}

/// Adds the anomalies every path shares, then the anomaly list and the key.
fn finish(
    mut mail: InboundMail,
    raw: &[u8],
    message: Option<&Message<'_>>,
    mut anomalies: Vec<Anomaly>,
) -> InboundMail {
    let nul_count = raw.iter().filter(|&&byte| byte == 0).count();
    if nul_count > 0 {
        anomalies.push(Anomaly::NulBytes { count: nul_count });
    }
    if mail.text.is_empty() {
        anomalies.push(Anomaly::NoText);
    }
    mail.anomalies = anomalies;
    mail.key = match &mail.message_id {
        Some(id) => MailKey::MessageId(id.clone()),
        None => MailKey::ContentHash(content_hash(&mail, raw, message)),
    };
    mail
}

/// mail-parser's sign for "header fields up to the end of the data": a root part flagged as an
/// encoding problem, with an empty text body starting at the very end.
fn is_headers_only(root: &mail_parser::MessagePart<'_>, raw_len: usize) -> bool {
    root.is_encoding_problem
        && usize::try_from(root.offset_body).is_ok_and(|offset| offset >= raw_len)
        && matches!(&root.body, PartType::Text(text) if text.is_empty())
}

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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use jiff::Timestamp;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Header, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::ids::{MailKey, MessageId};

mod anomaly;
mod checks;
pub(crate) mod html;
#[cfg(test)]
mod tests;

pub use anomaly::{Anomaly, MimeProblem, Truncation, Unparseable};

use checks::{check_charsets, check_structure};
use html::html_to_text;

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

/// Whether casemail can send mail to `address`: the mail builder (lettre) parses it and can
/// build a message with it in the header fields and the envelope. (lettre parses a quoted
/// local part such as `"taro..yamada"@…` as an address but then finds no recipient in the
/// header it writes, so parsing alone is not enough.)
pub fn is_sendable(address: &str) -> bool {
    let Ok(address) = address.parse::<lettre::Address>() else {
        return false;
    };
    let mailbox = lettre::message::Mailbox::new(None, address);
    // A fixed date, or lettre would read the clock: the message is only built, never sent.
    lettre::Message::builder()
        .date(std::time::SystemTime::UNIX_EPOCH)
        .from(mailbox.clone())
        .to(mailbox)
        .body(String::new())
        .is_ok()
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

/// Everything except the key and the final anomaly list, from a message mail-parser read.
fn read_message(
    message: &Message<'_>,
    raw: &[u8],
    limits: &ParseLimits,
    anomalies: &mut Vec<Anomaly>,
) -> InboundMail {
    let headers: &[Header<'_>] = message
        .parts
        .first()
        .map(|root| root.headers.as_slice())
        .unwrap_or_default();
    let fields = Fields { headers, raw };

    for name in [
        "From",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
    ] {
        let count = fields.all(name).count();
        if count > 1 {
            anomalies.push(Anomaly::DuplicateHeader {
                name: name.to_owned(),
                count,
            });
        }
    }

    let message_id = fields.first_raw("Message-ID").and_then(|value| {
        bounded_message_ids("Message-ID", &value, usize::MAX, anomalies)
            .into_iter()
            .next()
    });
    if message_id.is_none() {
        anomalies.push(Anomaly::MissingMessageId);
    }
    let in_reply_to = fields
        .first_raw("In-Reply-To")
        .map(|v| bounded_message_ids("In-Reply-To", &v, MAX_IN_REPLY_TO, anomalies))
        .unwrap_or_default();
    let references = fields
        .first_raw("References")
        .map(|v| bounded_message_ids("References", &v, MAX_REFERENCES, anomalies))
        .unwrap_or_default();

    let parsed_from = fields
        .first("From")
        .and_then(|h| mailboxes(&h.value).into_iter().next());
    let mut from_count: usize = fields.all("From").map(|h| mailboxes(&h.value).len()).sum();
    // Bytes that are not UTF-8 in a display name can swallow the structure mail-parser reads
    // (a four-byte lead takes the `(` or `<` after it), leaving no address or a broken one; the
    // angle-addr in the raw field is still there. A bare addr-spec with a quoted local part
    // (`"fatima k"@example.org`) loses its local part to the display name: the raw field has it.
    // An address without a local part is none: every sender at that domain would share it.
    let from = match parsed_from {
        Some(mailbox) if looks_like_address(&mailbox.address) => Some(mailbox),
        broken => match fields
            .first_raw("From")
            .and_then(|raw| angle_addr(&raw).or_else(|| quoted_addr_spec(&raw)))
        {
            Some(recovered) => {
                from_count = from_count.max(1);
                Some(recovered)
            }
            None => broken.filter(|mailbox| has_local_part(&mailbox.address)),
        },
    };
    if from.is_none() {
        anomalies.push(Anomaly::MissingFrom);
    }
    let sender = fields
        .first("Sender")
        .and_then(|h| mailboxes(&h.value).into_iter().next());
    // Checked once, here, with the rules the mail builder applies when casemail writes back:
    // an address it refuses makes a flagged ticket, never a failure when an answer is composed.
    if let Some(unusable) = from
        .as_ref()
        .or(sender.as_ref())
        .filter(|m| !is_sendable(&m.address))
    {
        anomalies.push(Anomaly::UnusableAddress {
            address: unusable.address.clone(),
        });
    }
    let reply_to = fields
        .all("Reply-To")
        .flat_map(|h| mailboxes(&h.value))
        .collect();
    let to = fields.all("To").flat_map(|h| mailboxes(&h.value)).collect();
    let cc = fields.all("Cc").flat_map(|h| mailboxes(&h.value)).collect();
    let return_path = fields
        .first_raw("Return-Path")
        .map(|value| return_path(&value));

    let subject = fields
        .first("Subject")
        .and_then(|h| h.value.as_text())
        .map(|subject| bounded_subject(subject, anomalies));
    let thread_subject = subject
        .as_deref()
        .map(|subject| mail_parser::parsers::fields::thread::thread_name(subject).to_owned());

    let date = match fields.first("Date") {
        None => {
            anomalies.push(Anomaly::MissingDate);
            None
        }
        Some(header) => {
            let date = header.value.as_datetime().and_then(timestamp);
            if date.is_none() {
                anomalies.push(Anomaly::BadDate {
                    value: fields.raw_value(header),
                });
            }
            date
        }
    };

    let lower = |value: String| value.to_lowercase();
    let auto_submitted = fields.first_raw("Auto-Submitted").map(lower);
    let precedence = fields.first_raw("Precedence").map(lower);
    let list_id = fields.first_raw("List-Id").map(|value| list_id(&value));
    let list_unsubscribe = fields.first("List-Unsubscribe").is_some();
    let x_autoreply = ["X-Autoreply", "X-Autorespond"].iter().any(|name| {
        fields.all(name).any(|header| {
            let value = fields.raw_value(header);
            !["no", "false", "0"]
                .iter()
                .any(|no| value.eq_ignore_ascii_case(no))
        })
    });

    let mut kept_headers = BTreeMap::new();
    for name in KEPT_HEADERS {
        let values: Vec<String> = fields.all(name).map(|h| fields.raw_value(h)).collect();
        if !values.is_empty() {
            kept_headers.insert((*name).to_owned(), values);
        }
    }

    check_structure(message, raw, anomalies);
    check_charsets(message, raw, anomalies);

    let (text, text_part) = message_text(message, raw);
    let attachments = attachments(message, text_part, limits, anomalies);

    InboundMail {
        key: MailKey::ContentHash(String::new()),
        size: raw.len(),
        message_id,
        in_reply_to,
        references,
        from,
        from_count,
        sender,
        reply_to,
        to,
        cc,
        return_path,
        subject,
        thread_subject,
        date,
        auto_submitted,
        precedence,
        list_id,
        list_unsubscribe,
        x_autoreply,
        is_delivery_report: is_delivery_report(message),
        headers: kept_headers,
        text,
        attachments,
        anomalies: Vec::new(),
    }
}

/// The top-level header fields of a message, looked up by name. The first occurrence wins: it
/// is the one a mail client shows, and a second From or Subject further down is a spoofing
/// trick that the [`Anomaly::DuplicateHeader`] check reports.
struct Fields<'a, 'x> {
    headers: &'a [Header<'x>],
    raw: &'a [u8],
}

impl<'a, 'x> Fields<'a, 'x> {
    fn all(&self, name: &'a str) -> impl Iterator<Item = &'a Header<'x>> + 'a {
        self.headers
            .iter()
            .filter(move |header| header.name.as_str().eq_ignore_ascii_case(name))
    }

    fn first(&self, name: &'a str) -> Option<&'a Header<'x>> {
        self.all(name).next()
    }

    /// The unfolded raw value of the first field with this name.
    fn first_raw(&self, name: &'a str) -> Option<String> {
        self.first(name).map(|header| self.raw_value(header))
    }

    /// The field's value as written, unfolded and trimmed. Bytes that are not UTF-8 become
    /// replacement characters.
    fn raw_value(&self, header: &Header<'_>) -> String {
        let start = usize::try_from(header.offset_start).unwrap_or(usize::MAX);
        let end = usize::try_from(header.offset_end).unwrap_or(usize::MAX);
        let bytes = self.raw.get(start..end).unwrap_or_default();
        unfold(&String::from_utf8_lossy(bytes))
    }
}

/// Unfolds a raw field value (RFC 5322 §2.2.3) and trims it. Each line break, together with the
/// white space that indents the continuation line, becomes one space, so that a folded
/// Authentication-Results reads as one line.
fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' || c == '\n' {
            while chars
                .next_if(|&next| matches!(next, '\r' | '\n' | ' ' | '\t'))
                .is_some()
            {}
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// The most characters of a Subject kept: it travels into the ticket, every notification and
/// every listing, so a subject of megabytes would be copied into each of them.
const MAX_SUBJECT_CHARS: usize = 998;

/// The subject, cut to [`MAX_SUBJECT_CHARS`] with an anomaly when it is longer.
fn bounded_subject(subject: &str, anomalies: &mut Vec<Anomaly>) -> String {
    match subject.char_indices().nth(MAX_SUBJECT_CHARS) {
        None => subject.to_owned(),
        Some((cut, _)) => {
            anomalies.push(Anomaly::LongSubject {
                length: subject.chars().count(),
                kept: MAX_SUBJECT_CHARS,
            });
            subject.get(..cut).unwrap_or_default().to_owned()
        }
    }
}

/// The most Message-IDs kept from In-Reply-To (RFC 5322 §3.6.4 expects one; some clients list
/// a few).
const MAX_IN_REPLY_TO: usize = 8;
/// The most Message-IDs kept from References: the first (the thread's root) and the latest
/// ones, as RFC 5322 §3.6.4 suggests when a list grows long.
const MAX_REFERENCES: usize = 64;

/// [`message_ids`] of one field, within bounds: ids longer than [`MessageId::MAX_LEN`] are
/// dropped and at most `max` are kept (the first and the last ones), each with an anomaly.
fn bounded_message_ids(
    field: &str,
    value: &str,
    max: usize,
    anomalies: &mut Vec<Anomaly>,
) -> Vec<MessageId> {
    let longest = message_id_items(value)
        .map(str::len)
        .filter(|&length| length > MessageId::MAX_LEN)
        .max();
    if let Some(length) = longest {
        anomalies.push(Anomaly::LongMessageId {
            field: field.to_owned(),
            length,
            limit: MessageId::MAX_LEN,
        });
    }
    let mut ids = message_ids(value);
    if ids.len() > max {
        anomalies.push(Anomaly::TooManyMessageIds {
            field: field.to_owned(),
            count: ids.len(),
            kept: max,
        });
        let latest = ids.split_off(ids.len().saturating_sub(max.saturating_sub(1)));
        ids.truncate(1.min(max));
        ids.extend(latest);
    }
    ids
}

/// The raw items of a Message-ID list, as [`message_ids`] cuts them, trimmed of brackets and
/// white space.
fn message_id_items(value: &str) -> impl Iterator<Item = &str> {
    let bracketed = value.contains('<');
    let inside: Box<dyn Iterator<Item = &str>> = if bracketed {
        Box::new(
            value
                .split('<')
                .skip(1)
                .filter_map(|part| part.split_once('>').map(|(id, _)| id)),
        )
    } else {
        Box::new(value.split_whitespace())
    };
    inside.map(str::trim)
}

/// Reads a list of Message-IDs leniently: every `<...>` that holds a usable id, in order and
/// without duplicates, ignoring comments and junk between them. A field without any angle
/// brackets (some broken clients write bare ids) is read as white-space separated ids that
/// contain an `@`.
pub fn message_ids(value: &str) -> Vec<MessageId> {
    let mut ids: Vec<MessageId> = Vec::new();
    // A set keeps a hostile References field with thousands of ids linear.
    let mut seen = BTreeSet::new();
    let mut push = |candidate: &str| {
        if let Some(id) = MessageId::parse(candidate)
            && seen.insert(id.clone())
        {
            ids.push(id);
        }
    };
    if value.contains('<') {
        let mut rest = value;
        while let Some((_, after_open)) = rest.split_once('<') {
            let Some((inside, after_close)) = after_open.split_once('>') else {
                break;
            };
            // In `<junk <id@host>` the id is what follows the last `<`.
            push(inside.rsplit('<').next().unwrap_or(inside));
            rest = after_close;
        }
    } else {
        for token in value.split_whitespace() {
            let token = token.trim_matches(|c: char| matches!(c, ',' | ';' | '"' | '\''));
            if token.contains('@') {
                push(token);
            }
        }
    }
    ids
}

/// The mailboxes of an address field, groups flattened, skipping entries without an address.
fn mailboxes(value: &HeaderValue<'_>) -> Vec<Mailbox> {
    let Some(address) = value.as_address() else {
        return Vec::new();
    };
    address.iter().filter_map(mailbox).collect()
}

fn mailbox(addr: &Addr<'_>) -> Option<Mailbox> {
    let address = addr.address()?.trim();
    if address.is_empty() {
        return None;
    }
    let name = addr
        .name()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    Some(Mailbox {
        name,
        address: address.to_lowercase(),
    })
}

/// An address as mail-parser should have read it: one `@`-bearing word with a local part, no
/// white space and no replacement character left by bytes that are not UTF-8.
fn looks_like_address(address: &str) -> bool {
    has_local_part(address)
        && !address.contains('\u{FFFD}')
        && !address.chars().any(char::is_whitespace)
}

/// Something before the last `@`: `@example.org` names a domain, not a person.
fn has_local_part(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(local, _)| !local.is_empty())
}

/// A raw From value that is one addr-spec whose local part is a quoted string
/// (`"fatima k"@example.org`, RFC 5322 §3.4.1), read whole and without a display name.
fn quoted_addr_spec(raw: &str) -> Option<Mailbox> {
    let value = raw.trim();
    let inside = value.strip_prefix('"')?;
    let mut escaped = false;
    let close = inside.char_indices().find_map(|(at, c)| {
        let closes = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        closes.then_some(at)
    })?;
    let domain = inside.get(close + 1..)?.strip_prefix('@')?;
    let bad = |c: char| {
        c.is_whitespace()
            || c == '\u{FFFD}'
            || matches!(c, '@' | '<' | '>' | ',' | ';' | '"' | '(' | ')')
    };
    if domain.is_empty() || domain.contains(bad) {
        return None;
    }
    Some(Mailbox {
        name: None,
        address: value.to_lowercase(),
    })
}

/// The first `<local@domain>` of a raw From value, read without mail-parser, with what comes
/// before it as the display name (quotes and white space trimmed; bytes that were not UTF-8
/// are replacement characters).
fn angle_addr(raw: &str) -> Option<Mailbox> {
    let mut rest = raw;
    let mut before = String::new();
    while let Some((head, after_open)) = rest.split_once('<') {
        before.push_str(head);
        let (inside, after_close) = after_open.split_once('>')?;
        let address = inside.trim();
        if looks_like_address(address) && !address.contains(['<', ',', ';', '"']) {
            let name = before.trim().trim_matches('"').trim().to_owned();
            return Some(Mailbox {
                name: Some(name).filter(|name| !name.is_empty()),
                address: address.to_lowercase(),
            });
        }
        before.push('<');
        before.push_str(inside);
        before.push('>');
        rest = after_close;
    }
    None
}

fn return_path(value: &str) -> String {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let inside = match compact.split_once('<') {
        Some((_, after)) => after.split_once('>').map_or(after, |(inside, _)| inside),
        None => compact.as_str(),
    };
    inside.to_lowercase()
}

fn list_id(value: &str) -> String {
    let inside = match value.rsplit_once('<') {
        Some((_, after)) => after.split_once('>').map_or(after, |(inside, _)| inside),
        None => value,
    };
    inside.trim().to_lowercase()
}

/// A mail-parser date as a timestamp; `None` when a component is out of range. A leap second
/// (RFC 5322 allows `:60`) is read as `:59`, which jiff can represent.
fn timestamp(date: &mail_parser::DateTime) -> Option<Timestamp> {
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year).ok()?,
        i8::try_from(date.month).ok()?,
        i8::try_from(date.day).ok()?,
        i8::try_from(date.hour).ok()?,
        i8::try_from(date.minute).ok()?,
        i8::try_from(date.second.min(59)).ok()?,
        0,
    )
    .ok()?;
    let magnitude = i32::from(date.tz_hour) * 3600 + i32::from(date.tz_minute) * 60;
    let seconds = if date.tz_before_gmt {
        -magnitude
    } else {
        magnitude
    };
    let offset = jiff::tz::Offset::from_seconds(seconds).ok()?;
    offset.to_timestamp(civil).ok()
}

fn is_delivery_report(message: &Message<'_>) -> bool {
    message.parts.iter().any(|part| {
        part.content_type().is_some_and(|ct| {
            let subtype = ct.subtype().unwrap_or_default();
            (ct.ctype().eq_ignore_ascii_case("multipart")
                && subtype.eq_ignore_ascii_case("report")
                && ct
                    .attribute("report-type")
                    .is_some_and(|kind| kind.eq_ignore_ascii_case("delivery-status")))
                || (ct.ctype().eq_ignore_ascii_case("message")
                    && (subtype.eq_ignore_ascii_case("delivery-status")
                        || subtype.eq_ignore_ascii_case("global-delivery-status")))
        })
    })
}

/// The readable text of a message. When mail-parser found no body text because the MIME
/// structure is damaged, the text of the part that would have been the body is used instead,
/// and its index is returned so that it is not listed as an attachment too.
fn message_text(message: &Message<'_>, raw: &[u8]) -> (String, Option<usize>) {
    let mut pieces = Vec::new();
    for &id in &message.text_body {
        let Some(part) = usize::try_from(id)
            .ok()
            .and_then(|id| message.parts.get(id))
        else {
            continue;
        };
        // Inline images sit between text parts in the body list; they are attachments.
        if let Some(text) = part_text(part, raw) {
            pieces.push(text);
        }
    }
    pieces.retain(|piece| !piece.is_empty());
    if !pieces.is_empty() {
        return (pieces.join("\n\n"), None);
    }
    // A multipart whose boundary never occurs leaves its whole body as the root's text. A
    // text part cut off before its closing boundary is set aside as an attachment.
    let recovered = message.parts.iter().enumerate().find(|(index, part)| {
        let unnamed_text = part.attachment_name().is_none()
            && part.content_type().is_none_or(|ct| {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_some_and(|subtype| {
                        subtype.eq_ignore_ascii_case("plain")
                            || subtype.eq_ignore_ascii_case("html")
                    })
            });
        (*index == 0 || unnamed_text) && part_text(part, raw).is_some_and(|text| !text.is_empty())
    });
    match recovered {
        Some((index, part)) => (part_text(part, raw).unwrap_or_default(), Some(index)),
        None => match undivided_multipart_text(message) {
            Some(text) => (text, Some(0)),
            None => (String::new(), None),
        },
    }
}

/// The body of a multipart message without a boundary parameter, which cannot be split into
/// parts: mail-parser keeps it whole as one binary part. When it is plain text (UTF-8 without
/// control characters) it is the message's text, as the anomaly says; anything else stays an
/// attachment.
fn undivided_multipart_text(message: &Message<'_>) -> Option<String> {
    let root = message.parts.first()?;
    let multipart = root
        .content_type()
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"));
    let bytes = match &root.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) if multipart => bytes,
        _ => return None,
    };
    let text = std::str::from_utf8(bytes).ok()?;
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return None;
    }
    Some(clean_text(text)).filter(|text| !text.is_empty())
}

/// Decodes a text part that mail-parser left encoded because its closing boundary never came:
/// mail-parser's own base64 or quoted-printable decoder, run to the end of the data, then the
/// declared charset. `None` when the part was not encoded or still cannot be decoded.
fn redecode_text(part: &mail_parser::MessagePart<'_>, raw: &[u8]) -> Option<String> {
    if !part.is_encoding_problem {
        return None;
    }
    let encoding = part
        .content_transfer_encoding()?
        .trim()
        .to_ascii_lowercase();
    let start = usize::try_from(part.offset_body).ok()?;
    let end = usize::try_from(part.offset_end).ok()?;
    let mut stream = MessageStream::new(raw.get(start..end)?);
    // With no boundary to look for, the decoders read to the end of the data.
    let (status, bytes) = match encoding.as_str() {
        "base64" => stream.decode_base64_mime(b""),
        "quoted-printable" => stream.decode_quoted_printable_mime(b""),
        _ => return None,
    };
    if status == usize::MAX {
        return None;
    }
    let content_type = part.content_type();
    let text = match content_type
        .and_then(|ct| ct.attribute("charset"))
        .and_then(|charset| charset_decoder(charset.as_bytes()))
    {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let is_html = content_type
        .and_then(|ct| ct.subtype())
        .is_some_and(|subtype| subtype.eq_ignore_ascii_case("html"));
    Some(if is_html {
        html_to_text(&text)
    } else {
        clean_text(&text)
    })
}

/// The readable text of one text or HTML part; `None` for any other part.
fn part_text(part: &mail_parser::MessagePart<'_>, raw: &[u8]) -> Option<String> {
    match &part.body {
        PartType::Text(text) => redecode_text(part, raw).or_else(|| Some(clean_text(text))),
        PartType::Html(html) => redecode_text(part, raw).or_else(|| Some(html_to_text(html))),
        _ => None,
    }
}

/// Line endings to `\n`, leading blank lines and trailing white space removed.
fn clean_text(text: &str) -> String {
    let text = normalise_newlines(text);
    let trimmed = text.trim_end();
    let first_content = trimmed
        .find(|c: char| !c.is_whitespace())
        .map_or(trimmed.len(), |pos| {
            trimmed
                .get(..pos)
                .and_then(|blank| blank.rfind('\n'))
                .map_or(0, |newline| newline + 1)
        });
    trimmed.get(first_content..).unwrap_or_default().to_owned()
}

/// Removes every carriage return that ends a line, so CRLF and LF copies of a message give the
/// same text. A run of carriage returns before a line feed goes as a whole; lone ones stay.
pub(super) fn normalise_newlines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_cr = 0usize;
    for c in text.chars() {
        match c {
            '\r' => pending_cr += 1,
            '\n' => {
                pending_cr = 0;
                out.push('\n');
            }
            c => {
                out.extend(std::iter::repeat_n('\r', pending_cr));
                pending_cr = 0;
                out.push(c);
            }
        }
    }
    out.extend(std::iter::repeat_n('\r', pending_cr));
    out
}

/// The byte version of [`normalise_newlines`], for hashing raw data.
fn normalise_line_endings(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pending_cr = 0usize;
    for &byte in bytes {
        match byte {
            b'\r' => pending_cr += 1,
            b'\n' => {
                pending_cr = 0;
                out.push(b'\n');
            }
            byte => {
                out.extend(std::iter::repeat_n(b'\r', pending_cr));
                pending_cr = 0;
                out.push(byte);
            }
        }
    }
    out.extend(std::iter::repeat_n(b'\r', pending_cr));
    out
}

/// The message's attachments: every part mail-parser did not use as body text, inline photos
/// included. The part whose text became the message text is skipped.
fn attachments(
    message: &Message<'_>,
    text_part: Option<usize>,
    limits: &ParseLimits,
    anomalies: &mut Vec<Anomaly>,
) -> Vec<Attachment> {
    let mut attachments = Vec::new();
    for &id in &message.attachments {
        if usize::try_from(id).ok() == text_part {
            continue;
        }
        let Some(part) = usize::try_from(id)
            .ok()
            .and_then(|id| message.parts.get(id))
        else {
            continue;
        };
        let name = part.attachment_name().map(str::to_owned);
        let content_type = match part.content_type() {
            Some(ct) => match ct.subtype() {
                Some(subtype) => format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            },
            None => match part.body {
                PartType::Message(_) => "message/rfc822".to_owned(),
                PartType::Text(_) => "text/plain".to_owned(),
                _ => "application/octet-stream".to_owned(),
            },
        };
        let content = part.contents();
        let size = u64::try_from(content.len()).unwrap_or(u64::MAX);
        let undecodable = part.is_encoding_problem
            && part.content_transfer_encoding().is_some_and(|encoding| {
                let encoding = encoding.trim();
                encoding.eq_ignore_ascii_case("base64")
                    || encoding.eq_ignore_ascii_case("quoted-printable")
            });
        let too_large = size > limits.max_attachment_size;
        if too_large {
            anomalies.push(Anomaly::AttachmentTooLarge {
                name: name.clone(),
                size,
                limit: limits.max_attachment_size,
            });
        }
        let kept = !too_large && !undecodable;
        attachments.push(Attachment {
            name,
            content_type,
            size,
            kept,
            content: if kept { content.to_vec() } else { Vec::new() },
        });
    }
    attachments
}

/// The dedupe key of a message without a Message-ID: SHA-256 over the sender's address, the
/// Date field as written (white space collapsed), the subject, the text and a digest of every
/// attachment, each length-prefixed so that fields cannot run into each other. Data that did
/// not parse adds its raw bytes, or every piece of garbage would share one key. Line endings
/// are normalised throughout, so a CRLF and an LF copy of one message share a key.
fn content_hash(mail: &InboundMail, raw: &[u8], message: Option<&Message<'_>>) -> String {
    let from = mail
        .from
        .as_ref()
        .map(|m| m.address.as_str())
        .unwrap_or_default();
    let date = message
        .and_then(|message| {
            let headers = message.parts.first()?.headers.as_slice();
            let fields = Fields { headers, raw };
            fields.first_raw("Date")
        })
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let subject = mail.subject.as_deref().unwrap_or_default();

    let mut fields: Vec<Vec<u8>> = vec![
        b"casemail content v1".to_vec(),
        from.as_bytes().to_vec(),
        date.into_bytes(),
        normalise_newlines(subject).into_bytes(),
        mail.text.as_bytes().to_vec(),
    ];
    if let Some(message) = message {
        for &id in &message.attachments {
            if let Some(part) = usize::try_from(id)
                .ok()
                .and_then(|id| message.parts.get(id))
            {
                let digest = Sha256::digest(normalise_line_endings(part.contents()));
                fields.push(digest.to_vec());
            }
        }
    }
    if mail
        .anomalies
        .iter()
        .any(|a| matches!(a, Anomaly::Unparseable { .. }))
    {
        fields.push(normalise_line_endings(raw));
    }
    let borrowed: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    hash_fields(&borrowed)
}

fn hash_fields(fields: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update(u64::try_from(field.len()).unwrap_or(u64::MAX).to_le_bytes());
        hasher.update(field);
    }
    format!("{:x}", hasher.finalize())
}

/// The Message-ID in a raw message's header, read line by line without a MIME parser:
/// quarantined mail is there because parsing it failed.
pub fn header_message_id(raw: &[u8]) -> Option<MessageId> {
    let mut value: Option<String> = None;
    for line in raw.split(|byte| *byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(value) = value.as_mut() {
            if text.starts_with([' ', '\t']) {
                value.push_str(&text);
                continue;
            }
            break;
        }
        if let Some((name, rest)) = text.split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            value = Some(rest.to_owned());
        }
    }
    let value = value?;
    let start = value.find('<');
    let end = value.rfind('>');
    match (start, end) {
        (Some(start), Some(end)) if start < end => MessageId::parse(value.get(start..=end)?),
        _ => MessageId::parse(&value),
    }
}

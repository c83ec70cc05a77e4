//! Reading a message mail-parser read: its header fields (the first occurrence wins, raw
//! values unfolded), threading and loop signals, and the Date as a timestamp; the text and
//! attachments come from `body`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use mail_parser::{Header, Message, MimeHeaders};

use super::addresses::{
    angle_addr, has_local_part, is_sendable, looks_like_address, mailboxes, quoted_addr_spec,
    return_path,
};
use super::body::{attachments, message_text};
use super::checks::{check_charsets, check_structure};
use super::message_id::{MAX_IN_REPLY_TO, MAX_REFERENCES, bounded_message_ids};
use super::{Anomaly, InboundMail, KEPT_HEADERS, ParseLimits};
use crate::ids::MailKey;

/// Everything except the key and the final anomaly list, from a message mail-parser read.
pub(super) fn read_message(
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
pub(super) struct Fields<'a, 'x> {
    pub(super) headers: &'a [Header<'x>],
    pub(super) raw: &'a [u8],
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
    pub(super) fn first_raw(&self, name: &'a str) -> Option<String> {
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

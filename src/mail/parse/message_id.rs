//! Message-IDs: lists read leniently and within bounds, and the Message-ID of a raw header
//! read without a MIME parser.

use std::collections::BTreeSet;

use super::Anomaly;
use crate::ids::MessageId;

/// The most Message-IDs kept from In-Reply-To (RFC 5322 §3.6.4 expects one; some clients list
/// a few).
pub(super) const MAX_IN_REPLY_TO: usize = 8;
/// The most Message-IDs kept from References: the first (the thread's root) and the latest
/// ones, as RFC 5322 §3.6.4 suggests when a list grows long.
pub(super) const MAX_REFERENCES: usize = 64;

/// [`message_ids`] of one field, within bounds: ids longer than [`MessageId::MAX_LEN`] are
/// dropped and at most `max` are kept (the first and the last ones), each with an anomaly.
pub(super) fn bounded_message_ids(
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

//! Addresses: the mailboxes of an address field, a From recovered from its raw angle-addr,
//! the Return-Path, and whether casemail can write to an address at all.

use mail_parser::{Addr, HeaderValue};

use super::Mailbox;

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

/// The mailboxes of an address field, groups flattened, skipping entries without an address.
pub(super) fn mailboxes(value: &HeaderValue<'_>) -> Vec<Mailbox> {
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
pub(super) fn looks_like_address(address: &str) -> bool {
    has_local_part(address)
        && !address.contains('\u{FFFD}')
        && !address.chars().any(char::is_whitespace)
}

/// Something before the last `@`: `@example.org` names a domain, not a person.
pub(super) fn has_local_part(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(local, _)| !local.is_empty())
}

/// A raw From value that is one addr-spec whose local part is a quoted string
/// (`"fatima k"@example.org`, RFC 5322 §3.4.1), read whole and without a display name.
pub(super) fn quoted_addr_spec(raw: &str) -> Option<Mailbox> {
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
pub(super) fn angle_addr(raw: &str) -> Option<Mailbox> {
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

pub(super) fn return_path(value: &str) -> String {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let inside = match compact.split_once('<') {
        Some((_, after)) => after.split_once('>').map_or(after, |(inside, _)| inside),
        None => compact.as_str(),
    };
    inside.to_lowercase()
}

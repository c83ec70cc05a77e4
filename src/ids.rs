//! Typed identifiers shared by every stage.
//!
//! Nothing here does I/O. A `Uid` is never a bare `u32`, a `TicketId` never a `String`: the
//! compiler keeps an IMAP UID from being used where a ticket number is meant.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An IMAP UID inside one mailbox and one UIDVALIDITY epoch (RFC 3501 §2.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Uid(pub u32);

/// The UIDVALIDITY of a mailbox; when it changes, every UID the store remembers is void.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UidValidity(pub u32);

/// The human-friendly ticket number shown as `[#N]` in subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketId(pub u64);

/// A registered agent's identifier, chosen by the coordinator (`alice`, `coord-1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentId(pub String);

impl AgentId {
    /// The rule every new agent id follows (`agent add`, the rota): 1 to 12 characters of
    /// lower-case ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit, not
    /// ending with `.` and without `..`. The id travels in the local part of the reply address
    /// (`help+cm.{ticket}.{agent}.{mac}@…`), which must be an RFC 5322 dot-atom of at most 64
    /// octets (RFC 5321 §4.5.3.1.1): with the token's 30 fixed octets, ticket numbers below
    /// 10⁷ and a 12-character id, 15 octets are left for the helpdesk's own local part. Reply tokens are compared
    /// lower-cased.
    pub fn is_valid(id: &str) -> bool {
        let starts_well = id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        starts_well
            && id.len() <= 12
            && !id.ends_with('.')
            && !id.contains("..")
            && id.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            })
    }

    /// What [`AgentId::is_valid`] asks for, for error messages.
    pub const RULE: &str = "use 1 to 12 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, without '..' and not ending with '.'";
}

/// A Message-ID normalised for comparison: no angle brackets, no surrounding white space,
/// the domain part lower-cased (RFC 5322 §3.6.4 makes the local part case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(String);

impl MessageId {
    /// The longest Message-ID kept, in bytes without the angle brackets: a header line may hold
    /// at most 998 characters (RFC 5322 §2.1.1), so a longer id is not one a mail system made.
    pub const MAX_LEN: usize = 998;

    /// Normalises a raw header value; `None` when nothing usable is left or the id is longer
    /// than [`MessageId::MAX_LEN`].
    pub fn parse(raw: &str) -> Option<MessageId> {
        let trimmed = raw
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if trimmed.is_empty()
            || trimmed.len() > MessageId::MAX_LEN
            || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return None;
        }
        let normalised = match trimmed.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
            None => trimmed.to_owned(),
        };
        Some(MessageId(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key a message is deduplicated by: its Message-ID, or, when it has none, a hash of
/// sender, date, subject and body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MailKey {
    MessageId(MessageId),
    ContentHash(String),
}

impl MailKey {
    /// The key as stored in the index: a prefix tells the two kinds apart.
    pub fn to_index_string(&self) -> String {
        match self {
            MailKey::MessageId(id) => format!("mid:{}", id.as_str()),
            MailKey::ContentHash(hash) => format!("hash:{hash}"),
        }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_strips_brackets_and_lowercases_domain() {
        let id = MessageId::parse("  <AbC.123@Example.ORG> ").map(|id| id.as_str().to_owned());
        assert_eq!(id.as_deref(), Some("AbC.123@example.org"));
    }

    #[test]
    fn message_id_rejects_empty_and_spaced_values() {
        assert!(MessageId::parse("<>").is_none());
        assert!(MessageId::parse("a b@c").is_none());
    }

    #[test]
    fn message_id_longer_than_a_header_line_is_rejected() {
        let longest = format!("{}@x.org", "a".repeat(MessageId::MAX_LEN - 6));
        assert!(MessageId::parse(&format!("<{longest}>")).is_some());
        let too_long = format!("{}@x.org", "a".repeat(MessageId::MAX_LEN - 5));
        assert!(MessageId::parse(&format!("<{too_long}>")).is_none());
    }
}

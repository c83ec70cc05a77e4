//! The key layout: the typed prefix and fixed-width numbers each record is stored under, so that
//! a prefix scan finds exactly one ticket's, mailbox's or address's records, in order.

use crate::ids::{AgentId, MailKey, MessageId, TicketId};
use crate::model::Source;

pub(super) const KEY_SCHEMA: &[u8] = b"meta/schema";
pub(super) const KEY_NEXT_TICKET: &[u8] = b"meta/next_ticket";
pub(super) const KEY_IN_FLIGHT: &str = "meta/in_flight";
pub(super) const KEY_NEXT_OUTBOX: &[u8] = b"meta/next_outbox";
pub(super) const KEY_ROTA: &str = "meta/rota";
pub(super) const KEY_LAST_DIGEST: &str = "meta/last_digest";
pub(super) const KEY_NEXT_DELETION: &[u8] = b"meta/next_imap_deletion";
/// IMAP copies of purged or erased mail, waiting for the fetch side to delete them.
pub(super) const PREFIX_DELETION: &[u8] = b"p/";

pub(super) fn deletion_key(id: u64) -> String {
    format!("p/{id:020}")
}

pub(super) fn ticket_key(id: TicketId) -> String {
    format!("t/{:020}", id.0)
}

pub(super) fn message_key(id: TicketId, seq: u32) -> String {
    format!("m/{:020}/{seq:010}", id.0)
}

pub(super) fn raw_key(id: TicketId, seq: u32) -> String {
    format!("w/{:020}/{seq:010}", id.0)
}

pub(super) fn event_key(id: TicketId, seq: u32) -> String {
    format!("e/{:020}/{seq:010}", id.0)
}

pub(super) fn requester_key(address: &str, id: TicketId) -> String {
    format!("{}{:020}", requester_prefix(address), id.0)
}

pub(super) fn requester_prefix(address: &str) -> String {
    format!("r/{}/", exact(address))
}

/// A free-text key segment (an address) that is followed by more key, written so that no
/// value's segment is a prefix of another's: its length in bytes, `:`, then the text. A scan
/// for `r/{exact(a)}/` finds `a`'s keys only, whatever `a` or any other address holds.
pub(crate) fn exact(text: &str) -> String {
    format!("{}:{text}", text.len())
}

pub(super) fn mail_key_key(key: &MailKey) -> String {
    format!("k/{}", key.to_index_string())
}

pub(super) fn message_id_key(id: &MessageId) -> String {
    format!("i/{}", id.as_str())
}

pub(super) fn cursor_key(mailbox: &str) -> String {
    format!("c/{mailbox}")
}

pub(super) fn source_suffix(source: &Source) -> String {
    format!(
        "{}/{:010}/{:010}",
        source.mailbox, source.uidvalidity.0, source.uid.0
    )
}

pub(super) fn attempts_key(source: &Source) -> String {
    format!("a/{}", source_suffix(source))
}

pub(super) fn quarantine_key(source: &Source) -> String {
    format!("q/{}", source_suffix(source))
}

pub(super) fn quarantine_raw_key(source: &Source) -> String {
    format!("Q/{}", source_suffix(source))
}

pub(super) fn agent_key(id: &AgentId) -> String {
    format!("g/{}", id.0)
}

pub(super) fn outbox_key(id: u64) -> String {
    format!("o/{id:020}")
}

pub(super) fn outbox_raw_key(id: u64) -> String {
    format!("O/{id:020}")
}

pub(super) fn dead_letter_key(id: u64) -> String {
    format!("d/{id:020}")
}

pub(super) fn dead_letter_raw_key(id: u64) -> String {
    format!("D/{id:020}")
}

//! Two records kept in step with every ticket write, so that nothing on a regular path has to
//! read every ticket of a store that holds years of them:
//!
//! - `A/{ticket:020}` (empty value) exists exactly while the ticket is active (new, open,
//!   waiting): the sweep, the team's caseloads and the digest read these tickets only;
//! - `S/{ticket:020}` (empty value) exists exactly while the ticket is held as spam: the
//!   spam list and the purge after `[spam] keep_for` read these tickets only;
//! - `meta/figures` ([`TicketFigures`], JSON): tickets by status and by flag and the messages
//!   they hold, for `/metrics`.
//!
//! [`super::WriteTx::put_ticket`] updates both in the same transaction as the ticket, from the
//! ticket's previous and new versions. A store written before these records existed gets them
//! on open ([`rebuild`]), in one pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::TicketId;
use crate::model::Ticket;

pub(super) const KEY_FIGURES: &str = "meta/figures";

pub(super) fn active_key(id: TicketId) -> String {
    format!("A/{:020}", id.0)
}

pub(super) fn spam_key(id: TicketId) -> String {
    format!("S/{:020}", id.0)
}

/// What `/metrics` reports about the tickets, kept current by every ticket write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFigures {
    /// Tickets by status name (`new`, `open`, …).
    pub by_status: BTreeMap<String, u64>,
    /// Tickets by flag name (`suspected_spam`, …).
    pub by_flag: BTreeMap<String, u64>,
    /// Messages in all tickets.
    pub messages: u64,
}

impl TicketFigures {
    /// Counts `ticket` in (`add`) or out (its previous version, before a change).
    pub(super) fn count(&mut self, ticket: &Ticket, add: bool) {
        let apply = |value: &mut u64, by: u64| {
            *value = if add {
                value.saturating_add(by)
            } else {
                value.saturating_sub(by)
            };
        };
        apply(
            self.by_status
                .entry(ticket.status.as_str().to_owned())
                .or_insert(0),
            1,
        );
        for flag in &ticket.flags {
            if let Ok(serde_json::Value::String(name)) = serde_json::to_value(flag) {
                apply(self.by_flag.entry(name).or_insert(0), 1);
            }
        }
        apply(&mut self.messages, u64::from(ticket.message_count));
    }
}

/// Writes the active index and the figures for a store that has tickets but not these records.
pub(super) fn rebuild(tree: &sled::Tree) -> Result<(), super::Error> {
    let mut figures = TicketFigures::default();
    let mut batch = sled::Batch::default();
    for prefix in [&b"A/"[..], b"S/"] {
        for item in tree.scan_prefix(prefix) {
            let (key, _) = item?;
            batch.remove(key);
        }
    }
    for item in tree.scan_prefix(b"t/") {
        let (key, value) = item?;
        let ticket: Ticket = super::decode(&String::from_utf8_lossy(&key), &value)?;
        figures.count(&ticket, true);
        if ticket.status.is_active() {
            batch.insert(active_key(ticket.id).as_bytes(), Vec::new());
        }
        if ticket.status == crate::model::Status::Spam {
            batch.insert(spam_key(ticket.id).as_bytes(), Vec::new());
        }
    }
    let bytes = serde_json::to_vec(&figures).map_err(|source| super::Error::Encode {
        key: KEY_FIGURES.to_owned(),
        source,
    })?;
    batch.insert(KEY_FIGURES.as_bytes(), bytes);
    tree.apply_batch(batch)?;
    Ok(())
}

//! What backup, restore, retention and erasure need beyond the daily reads and writes: a
//! consistent snapshot, index entries by ticket, removals, and the queue of IMAP deletions.

use std::sync::{Arc, PoisonError};

use crate::ids::{MailKey, MessageId, TicketId};
use crate::model::{ImapDeletion, Source, Ticket};

use super::keys::{
    KEY_NEXT_DELETION, KEY_SCHEMA, PREFIX_DELETION, dead_letter_key, dead_letter_raw_key,
    deletion_key, mail_key_key, message_id_key, quarantine_key, quarantine_raw_key, requester_key,
    requester_prefix, ticket_key,
};
use super::spam::spam_record_key;
use super::{
    Error, Store, TicketFigures, TxResult, WriteTx, compact, decode, decode_u64, index, scan_json,
};

/// What the data-lifecycle operations (backup, restore, retention, erasure) need beyond the
/// daily reads and writes.
impl Store {
    /// Calls `visit` with every record, in key order, while no write transaction runs: writers
    /// wait at the gate until the snapshot is read, so it is consistent. Returns how many
    /// records were visited.
    pub fn snapshot<E>(
        &self,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<u64, SnapshotError<E>> {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let mut count = 0_u64;
        for item in self.tree.iter() {
            let (key, value) = item.map_err(|err| SnapshotError::Store(Error::Io(err)))?;
            visit(&key, &value).map_err(SnapshotError::Visit)?;
            count = count.saturating_add(1);
        }
        Ok(count)
    }

    /// Writes one record as a backup holds it. Only for a store being restored, which nothing
    /// else uses yet.
    pub fn restore_record(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.tree.insert(key, value)?;
        Ok(())
    }

    /// Whether the store holds anything besides its schema version.
    pub fn is_empty(&self) -> Result<bool, Error> {
        for item in self.tree.iter() {
            let (key, _) = item?;
            if key.as_ref() != KEY_SCHEMA {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The IMAP deletions still to be done, oldest first.
    pub fn imap_deletions(&self) -> Result<Vec<ImapDeletion>, Error> {
        scan_json(&self.tree, PREFIX_DELETION)
    }

    /// Wakes the caller after an IMAP deletion has been queued (at once when one was queued
    /// since the last wake-up).
    pub fn watch_imap_deletions(&self) -> Watch {
        Watch(self.deletions_queued.clone())
    }

    /// The index entries that point at any of `tickets`: threading-index keys (`i/…`) and
    /// requester-index keys (`r/…`), including those a merge added for another requester.
    pub fn index_keys_for(
        &self,
        tickets: &std::collections::BTreeSet<TicketId>,
    ) -> Result<Vec<IndexKey>, Error> {
        let mut keys = Vec::new();
        if tickets.is_empty() {
            return Ok(keys);
        }
        for item in self.tree.scan_prefix(b"i/") {
            let (key, value) = item?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let ticket: TicketId = decode(&text, &value)?;
            if tickets.contains(&ticket) {
                keys.push(IndexKey { key: text, ticket });
            }
        }
        for item in self.tree.scan_prefix(b"r/") {
            let (key, _) = item?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let number = text.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
            if let Some(ticket) = number.map(TicketId).filter(|t| tickets.contains(t)) {
                keys.push(IndexKey { key: text, ticket });
            }
        }
        Ok(keys)
    }

    /// Every requester-index key of `address` (`r/{len}:{address}/…`).
    pub fn requester_index_keys(&self, address: &str) -> Result<Vec<IndexKey>, Error> {
        let mut keys = Vec::new();
        for item in self.tree.scan_prefix(requester_prefix(address).as_bytes()) {
            let (key, _) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let ticket = key
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .map(TicketId)
                .ok_or_else(|| Error::Inconsistent(format!("bad requester index key {key}")))?;
            keys.push(IndexKey { key, ticket });
        }
        Ok(keys)
    }
}

/// An index entry found by [`Store::index_keys_for`], to be removed with
/// [`WriteTx::remove_index_key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexKey {
    key: String,
    /// The ticket the entry points at.
    pub ticket: TicketId,
}

/// Why [`Store::snapshot`] stopped: the store failed, or the visitor did.
#[derive(Debug)]
pub enum SnapshotError<E> {
    Store(Error),
    Visit(E),
}

/// A subscription to new entries of the IMAP deletion queue.
pub struct Watch(Arc<tokio::sync::Notify>);

impl Watch {
    /// Returns once a deletion has been queued since the last call.
    pub async fn changed(&mut self) {
        self.0.notified().await;
    }
}

/// Removals for retention and erasure.
impl WriteTx<'_> {
    /// Removes a ticket record, its requester-index and active-index entries, its spam verdict
    /// and its part of the ticket figures (messages, events and other index
    /// entries are removed one by one by the caller).
    pub fn remove_ticket(&self, ticket: &Ticket) -> TxResult<()> {
        // The stored record is what the figures and the active-ticket index counted.
        if let Some(stored) = self.get::<Ticket>(&ticket_key(ticket.id))? {
            let mut figures: TicketFigures = self.get(index::KEY_FIGURES)?.unwrap_or_default();
            figures.count(&stored, false);
            self.put(index::KEY_FIGURES, &figures)?;
        }
        self.tree.remove(index::active_key(ticket.id).as_bytes())?;
        self.tree.remove(index::spam_key(ticket.id).as_bytes())?;
        self.tree.remove(ticket_key(ticket.id).as_bytes())?;
        self.tree
            .remove(requester_key(&ticket.requester, ticket.id).as_bytes())?;
        self.tree.remove(spam_record_key(ticket.id).as_bytes())?;
        Ok(())
    }

    /// Removes a message's dedupe-index entry when it points at this very message.
    pub fn unindex_key(&self, key: &MailKey, ticket: TicketId, seq: u32) -> TxResult<()> {
        if self.find_key(key)? == Some((ticket, seq)) {
            self.tree.remove(mail_key_key(key).as_bytes())?;
        }
        Ok(())
    }

    /// Removes a Message-ID's threading-index entry when it points at `ticket`.
    pub fn unindex_message_id(&self, id: &MessageId, ticket: TicketId) -> TxResult<()> {
        if self.get::<TicketId>(&message_id_key(id))? == Some(ticket) {
            self.tree.remove(message_id_key(id).as_bytes())?;
        }
        Ok(())
    }

    pub fn remove_index_key(&self, key: &IndexKey) -> TxResult<()> {
        self.tree.remove(key.key.as_bytes())?;
        Ok(())
    }

    pub fn remove_dead_letter(&self, id: u64) -> TxResult<()> {
        self.tree.remove(dead_letter_key(id).as_bytes())?;
        self.tree.remove(dead_letter_raw_key(id).as_bytes())?;
        Ok(())
    }

    pub fn remove_quarantine(&self, source: &Source) -> TxResult<()> {
        self.tree.remove(quarantine_key(source).as_bytes())?;
        self.tree.remove(quarantine_raw_key(source).as_bytes())?;
        Ok(())
    }

    /// Queues the deletion of a message's IMAP copies; the entry's `id` is assigned here.
    pub fn queue_imap_deletion(&self, deletion: &ImapDeletion) -> TxResult<u64> {
        let id = match self.tree.get(KEY_NEXT_DELETION)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        self.tree.insert(
            KEY_NEXT_DELETION,
            id.saturating_add(1).to_be_bytes().to_vec(),
        )?;
        let entry = ImapDeletion {
            id,
            ..deletion.clone()
        };
        self.put(&deletion_key(id), &entry)?;
        self.queued.set(true);
        Ok(id)
    }

    /// Removes a done IMAP deletion from the queue.
    pub fn remove_imap_deletion(&self, id: u64) -> TxResult<()> {
        self.tree.remove(deletion_key(id).as_bytes())?;
        Ok(())
    }

    /// Asks for the store to be rewritten into a fresh directory at its next open, so that
    /// what this transaction removed is gone from disk too (erasure).
    pub fn request_compaction(&self) -> TxResult<()> {
        self.tree.insert(compact::KEY_COMPACT, b"1".to_vec())?;
        Ok(())
    }
}

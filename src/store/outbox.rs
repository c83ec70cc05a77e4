//! The outbox, written in the same transaction as the ticket change that caused each message, and
//! the dead letters the relay gave up on.

use crate::model::{DeadLetter, OutboxEntry};

use super::keys::{
    KEY_NEXT_OUTBOX, dead_letter_key, dead_letter_raw_key, outbox_key, outbox_raw_key,
};
use super::{Error, Store, TxResult, WriteTx, decode_u64, scan_json};

impl Store {
    /// The outbox in sending order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        scan_json(&self.tree, b"o/")
    }

    /// The bytes an outbox entry sends.
    pub fn outbox_raw(&self, id: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(outbox_raw_key(id).as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Messages the relay gave up on, in the order they had in the outbox.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        scan_json(&self.tree, b"d/")
    }

    /// The bytes a dead letter would have sent (missing when the outbox had lost them too).
    pub fn dead_letter_raw(&self, id: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(dead_letter_raw_key(id).as_bytes())?
            .map(|v| v.to_vec()))
    }
}

impl WriteTx<'_> {
    /// Adds a message to the outbox, in the same transaction as the ticket change that caused
    /// it. The entry's `id` is assigned here and returned.
    pub fn enqueue(&self, entry: &OutboxEntry, raw: &[u8]) -> TxResult<u64> {
        let id = match self.tree.get(KEY_NEXT_OUTBOX)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        self.tree
            .insert(KEY_NEXT_OUTBOX, id.saturating_add(1).to_be_bytes().to_vec())?;
        let entry = OutboxEntry {
            id,
            ..entry.clone()
        };
        self.put(&outbox_key(id), &entry)?;
        self.tree
            .insert(outbox_raw_key(id).as_bytes(), raw.to_vec())?;
        if let Some(ticket) = entry.ticket {
            self.index_message_id(&entry.message_id, ticket)?;
        }
        Ok(id)
    }

    /// Records a failed attempt (attempts, next try, error) on an outbox entry.
    pub fn update_outbox(&self, entry: &OutboxEntry) -> TxResult<()> {
        self.put(&outbox_key(entry.id), entry)
    }

    /// Removes a sent (or abandoned) message from the outbox.
    pub fn remove_outbox(&self, id: u64) -> TxResult<()> {
        self.tree.remove(outbox_key(id).as_bytes())?;
        self.tree.remove(outbox_raw_key(id).as_bytes())?;
        Ok(())
    }

    /// An outbox entry as this transaction sees it; the relay checks that an entry still exists
    /// before writing it back.
    pub fn outbox_entry(&self, id: u64) -> TxResult<Option<OutboxEntry>> {
        self.get(&outbox_key(id))
    }

    /// Puts a dead letter back in the outbox under its own id (so its Message-ID and place
    /// stay), due at `now` with a fresh count of attempts, and removes the dead letter. Returns
    /// the entry queued, or `None` when there is no such dead letter or it kept no bytes.
    pub fn requeue_dead_letter(
        &self,
        id: u64,
        now: jiff::Timestamp,
    ) -> TxResult<Option<OutboxEntry>> {
        let Some(dead) = self.get::<DeadLetter>(&dead_letter_key(id))? else {
            return Ok(None);
        };
        let Some(raw) = self.tree.get(dead_letter_raw_key(id).as_bytes())? else {
            return Ok(None);
        };
        let entry = OutboxEntry {
            attempts: 0,
            next_attempt: now,
            last_error: None,
            ..dead.entry
        };
        self.put(&outbox_key(id), &entry)?;
        self.tree
            .insert(outbox_raw_key(id).as_bytes(), raw.to_vec())?;
        self.tree.remove(dead_letter_key(id).as_bytes())?;
        self.tree.remove(dead_letter_raw_key(id).as_bytes())?;
        Ok(Some(entry))
    }

    /// Keeps a message the relay gave up on, under its outbox id, with its bytes when there
    /// are any. The caller removes it from the outbox in the same transaction.
    pub fn put_dead_letter(&self, dead: &DeadLetter, raw: Option<&[u8]>) -> TxResult<()> {
        self.put(&dead_letter_key(dead.entry.id), dead)?;
        if let Some(raw) = raw {
            self.tree
                .insert(dead_letter_raw_key(dead.entry.id).as_bytes(), raw.to_vec())?;
        }
        Ok(())
    }
}

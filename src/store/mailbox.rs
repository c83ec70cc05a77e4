//! What the process stage records about IMAP messages: each mailbox's cursor, failed attempts,
//! the batch in flight and the quarantine.

use crate::model::{Cursor, QuarantineEntry, Source};

use super::keys::{KEY_IN_FLIGHT, attempts_key, cursor_key, quarantine_key, quarantine_raw_key};
use super::{Error, Store, TxResult, WriteTx, get_json, scan_json};

impl Store {
    pub fn cursor(&self, mailbox: &str) -> Result<Option<Cursor>, Error> {
        get_json(&self.tree, &cursor_key(mailbox))
    }

    /// Failed processing attempts recorded for one IMAP message.
    pub fn attempts(&self, source: &Source) -> Result<u32, Error> {
        Ok(get_json(&self.tree, &attempts_key(source))?.unwrap_or(0))
    }

    /// The messages the process stage was working on when it last marked a batch as started;
    /// after a crash these are the suspects.
    pub fn in_flight(&self) -> Result<Vec<Source>, Error> {
        Ok(get_json(&self.tree, KEY_IN_FLIGHT)?.unwrap_or_default())
    }

    pub fn quarantine(&self) -> Result<Vec<QuarantineEntry>, Error> {
        scan_json(&self.tree, b"q/")
    }

    pub fn quarantined_raw(&self, source: &Source) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(quarantine_raw_key(source).as_bytes())?
            .map(|v| v.to_vec()))
    }
}

impl WriteTx<'_> {
    pub fn set_cursor(&self, mailbox: &str, cursor: &Cursor) -> TxResult<()> {
        self.put(&cursor_key(mailbox), cursor)
    }

    pub fn cursor(&self, mailbox: &str) -> TxResult<Option<Cursor>> {
        self.get(&cursor_key(mailbox))
    }

    pub fn set_in_flight(&self, sources: &[Source]) -> TxResult<()> {
        self.put(KEY_IN_FLIGHT, &sources)
    }

    pub fn set_attempts(&self, source: &Source, attempts: u32) -> TxResult<()> {
        self.put(&attempts_key(source), &attempts)
    }

    pub fn clear_attempts(&self, source: &Source) -> TxResult<()> {
        self.tree.remove(attempts_key(source).as_bytes())?;
        Ok(())
    }

    pub fn put_quarantine(&self, entry: &QuarantineEntry, raw: &[u8]) -> TxResult<()> {
        self.put(&quarantine_key(&entry.source), entry)?;
        self.tree
            .insert(quarantine_raw_key(&entry.source).as_bytes(), raw.to_vec())?;
        Ok(())
    }
}

//! What reconciliation needs from the store: which IMAP messages are accounted for, which
//! missing ones were already reported, and how far the processed folder has been checked.
//!
//! Records (see ARCHITECTURE.md, store layout):
//! - `n/{folder}/{uidvalidity}/{uid}`: a message that was filed without a stored message of its
//!   own (a caseworker's reply that held only commands), with the ticket it acted on.
//! - `x/{folder}/{uidvalidity}/{uid}`: a message reconciliation found missing and reported, so
//!   it is reported once, not at every run.
//! - `meta/reconciled/{folder}`: the processed folder's UIDVALIDITY and the highest UID whose
//!   Message-ID was checked.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Error, Store, TxResult, WriteTx, get_json, scan_json, source_suffix};
use crate::ids::{MessageId, TicketId, Uid, UidValidity};
use crate::model::{Cursor, Source, StoredMessage};

/// A missing message reconciliation has reported to the coordinators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedMissing {
    pub source: Source,
    pub message_id: Option<MessageId>,
    /// When it was first found missing.
    pub reported: Timestamp,
    /// Whether a notice went to the coordinators (none may have been registered yet).
    pub notified: bool,
}

/// How far the processed folder's Message-IDs have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub uidvalidity: UidValidity,
    pub up_to: Uid,
}

/// A record of a message filed without a stored message of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Noted {
    source: Source,
    ticket: TicketId,
    #[serde(default)]
    message_id: Option<MessageId>,
}

fn noted_key(source: &Source) -> String {
    format!("n/{}", source_suffix(source))
}

fn reported_key(source: &Source) -> String {
    format!("x/{}", source_suffix(source))
}

fn checked_key(folder: &str) -> String {
    format!("meta/reconciled/{folder}")
}

impl Store {
    /// The UIDs of `folder` (at `uidvalidity`) the store accounts for: a source of a stored
    /// message (first copies and duplicates alike), a quarantined message, or a message filed
    /// without a stored message of its own. Reads every stored message record once.
    pub fn accounted_uids(
        &self,
        folder: &str,
        uidvalidity: UidValidity,
    ) -> Result<BTreeSet<Uid>, Error> {
        let mut uids = BTreeSet::new();
        let mut take = |source: &Source| {
            if source.mailbox == folder && source.uidvalidity == uidvalidity {
                uids.insert(source.uid);
            }
        };
        for message in scan_json::<StoredMessage>(&self.tree, b"m/")? {
            message.sources.iter().for_each(&mut take);
        }
        for entry in self.quarantine()? {
            take(&entry.source);
        }
        for noted in scan_json::<Noted>(&self.tree, b"n/")? {
            take(&noted.source);
        }
        // Purged or erased mail whose copies the fetch side has yet to delete.
        for deletion in self.imap_deletions()? {
            deletion.sources.iter().for_each(&mut take);
        }
        Ok(uids)
    }

    /// The Message-IDs of messages filed without a stored message of their own.
    pub fn noted_message_ids(&self) -> Result<BTreeSet<MessageId>, Error> {
        Ok(scan_json::<Noted>(&self.tree, b"n/")?
            .into_iter()
            .filter_map(|noted| noted.message_id)
            .collect())
    }

    /// Every folder's cursor, by folder name.
    pub fn cursors(&self) -> Result<BTreeMap<String, Cursor>, Error> {
        let mut out = BTreeMap::new();
        for item in self.tree.scan_prefix(b"c/") {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let cursor: Cursor = super::decode(&key, &value)?;
            if let Some(folder) = key.strip_prefix("c/") {
                out.insert(folder.to_owned(), cursor);
            }
        }
        Ok(out)
    }

    /// Missing messages already reported, all folders.
    pub fn reported_missing(&self) -> Result<Vec<ReportedMissing>, Error> {
        scan_json(&self.tree, b"x/")
    }

    /// How far the Message-IDs of `folder` (the processed folder) have been checked.
    pub fn reconciled(&self, folder: &str) -> Result<Option<Checked>, Error> {
        get_json(&self.tree, &checked_key(folder))
    }
}

impl WriteTx<'_> {
    /// Records a message that was filed without a stored message of its own, so that
    /// reconciliation counts it as imported.
    pub fn note_filed_source(
        &self,
        source: &Source,
        ticket: TicketId,
        message_id: Option<&MessageId>,
    ) -> TxResult<()> {
        self.put(
            &noted_key(source),
            &Noted {
                source: source.clone(),
                ticket,
                message_id: message_id.cloned(),
            },
        )
    }

    pub fn put_reported_missing(&self, reported: &ReportedMissing) -> TxResult<()> {
        self.put(&reported_key(&reported.source), reported)
    }

    /// Forgets a reported message that is no longer missing (imported after all, or gone).
    pub fn remove_reported_missing(&self, source: &Source) -> TxResult<()> {
        self.tree.remove(reported_key(source).as_bytes())?;
        Ok(())
    }

    pub fn set_reconciled(&self, folder: &str, checked: &Checked) -> TxResult<()> {
        self.put(&checked_key(folder), checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MailKey;
    use crate::model::{Direction, QuarantineEntry};

    fn source(folder: &str, uidvalidity: u32, uid: u32) -> Source {
        Source {
            mailbox: folder.to_owned(),
            uidvalidity: UidValidity(uidvalidity),
            uid: Uid(uid),
        }
    }

    fn stored(ticket: TicketId, sources: Vec<Source>) -> StoredMessage {
        let id = MessageId::parse("a@example.org");
        StoredMessage {
            ticket,
            seq: 0,
            direction: Direction::In,
            key: MailKey::MessageId(id.clone().expect("valid id")),
            message_id: id,
            from: None,
            from_name: None,
            to: vec![],
            cc: vec![],
            subject: None,
            date: None,
            received: Timestamp::UNIX_EPOCH,
            in_reply_to: vec![],
            references: vec![],
            text: String::new(),
            attachments: vec![],
            anomalies: vec![],
            sources,
        }
    }

    #[test]
    fn stored_quarantined_and_noted_messages_are_accounted_for_in_their_folder_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let noted_id = MessageId::parse("commands@example.org").expect("valid id");
        store
            .write(|tx| {
                // A first copy and a duplicate in two folders, one in an older epoch.
                tx.put_message(
                    &stored(
                        TicketId(1),
                        vec![
                            source("INBOX", 7, 3),
                            source("Junk", 9, 1),
                            source("INBOX", 6, 5),
                        ],
                    ),
                    None,
                )?;
                tx.put_quarantine(
                    &QuarantineEntry {
                        source: source("INBOX", 7, 4),
                        at: Timestamp::UNIX_EPOCH,
                        attempts: 3,
                        reason: "parse panicked".to_owned(),
                        size: 3,
                    },
                    b"raw",
                )?;
                tx.note_filed_source(&source("INBOX", 7, 8), TicketId(1), Some(&noted_id))
            })
            .expect("write");
        let uids: Vec<u32> = store
            .accounted_uids("INBOX", UidValidity(7))
            .expect("accounted")
            .into_iter()
            .map(|uid| uid.0)
            .collect();
        assert_eq!(uids, [3, 4, 8]);
        assert_eq!(
            store
                .accounted_uids("Junk", UidValidity(9))
                .expect("accounted")
                .len(),
            1
        );
        assert!(
            store
                .noted_message_ids()
                .expect("noted")
                .contains(&noted_id)
        );
    }

    #[test]
    fn reported_messages_checked_marks_and_cursors_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let reported = ReportedMissing {
            source: source("INBOX", 7, 12),
            message_id: MessageId::parse("lost@example.org"),
            reported: Timestamp::UNIX_EPOCH,
            notified: true,
        };
        let checked = Checked {
            uidvalidity: UidValidity(3),
            up_to: Uid(40),
        };
        store
            .write(|tx| {
                tx.put_reported_missing(&reported)?;
                tx.set_reconciled("Processed", &checked)?;
                tx.set_cursor(
                    "INBOX",
                    &Cursor {
                        uidvalidity: UidValidity(7),
                        last_uid: Uid(12),
                    },
                )
            })
            .expect("write");
        assert_eq!(
            store.reported_missing().expect("read"),
            std::slice::from_ref(&reported)
        );
        assert_eq!(store.reconciled("Processed").expect("read"), Some(checked));
        assert_eq!(store.reconciled("INBOX").expect("read"), None);
        let cursors = store.cursors().expect("cursors");
        assert_eq!(cursors.len(), 1);
        assert_eq!(cursors["INBOX"].last_uid, Uid(12));
        store
            .write(|tx| tx.remove_reported_missing(&reported.source))
            .expect("remove");
        assert!(store.reported_missing().expect("read").is_empty());
    }
}

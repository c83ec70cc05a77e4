//! The records that let casemail check mail that claims to answer its own: who each message it
//! queued about a ticket went to (a delivery report counts only for those addresses), and which
//! answers were already relayed (the same answer under a new Message-ID is not relayed twice).
//! Both are kept with the ticket and removed with it.
//!
//! | key | value |
//! | --- | --- |
//! | `sent/{ticket:020}/{message-id}` | [`Sent`]: the recipients of a message queued about the ticket |
//! | `replay/{ticket:020}/{fingerprint}` | when an answer with this fingerprint (SHA-256 of its text and files, hex) was relayed |

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{MessageId, TicketId};

use super::{Error, Store, TxResult, WriteTx, get_json};

/// The recipients of one message casemail queued about a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub recipients: Vec<String>,
    pub at: Timestamp,
}

fn sent_key(ticket: TicketId, message_id: &MessageId) -> String {
    format!("sent/{:020}/{}", ticket.0, message_id.as_str())
}

fn replay_key(ticket: TicketId, fingerprint: &str) -> String {
    format!("replay/{:020}/{fingerprint}", ticket.0)
}

impl WriteTx<'_> {
    pub fn put_sent(&self, ticket: TicketId, message_id: &MessageId, sent: &Sent) -> TxResult<()> {
        self.put(&sent_key(ticket, message_id), sent)
    }

    /// When an answer with this fingerprint was relayed on the ticket, if it was.
    pub fn relayed_at(&self, ticket: TicketId, fingerprint: &str) -> TxResult<Option<Timestamp>> {
        self.get(&replay_key(ticket, fingerprint))
    }

    pub fn put_relayed(&self, ticket: TicketId, fingerprint: &str, at: Timestamp) -> TxResult<()> {
        self.put(&replay_key(ticket, fingerprint), &at)
    }

    /// Removes one record found by [`Store::reply_record_keys`].
    pub fn remove_reply_record(&self, key: &str) -> TxResult<()> {
        if key.starts_with("sent/") || key.starts_with("replay/") {
            self.tree.remove(key.as_bytes())?;
        }
        Ok(())
    }
}

impl Store {
    /// The recipients of a message casemail queued about `ticket`, if it recorded them.
    pub fn sent(&self, ticket: TicketId, message_id: &MessageId) -> Result<Option<Sent>, Error> {
        get_json(&self.tree, &sent_key(ticket, message_id))
    }

    /// The `sent/` keys of messages that went to `address`, in any ticket (for erasure).
    pub fn sent_keys_to(&self, address: &str) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        for item in self.tree.scan_prefix(b"sent/") {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let sent: Sent = super::decode(&key, &value)?;
            if sent
                .recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(address))
            {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Every `sent/` and `replay/` key of a ticket, to remove with it.
    pub fn reply_record_keys(&self, ticket: TicketId) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        for prefix in [
            format!("sent/{:020}/", ticket.0),
            format!("replay/{:020}/", ticket.0),
        ] {
            for item in self.tree.scan_prefix(prefix.as_bytes()) {
                let (key, _) = item?;
                keys.push(String::from_utf8_lossy(&key).into_owned());
            }
        }
        Ok(keys)
    }
}

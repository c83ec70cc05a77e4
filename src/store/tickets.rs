//! Tickets, their messages (with raw bytes) and events, and the indexes kept in step with them:
//! requester, dedupe key, Message-ID, active and spam tickets, and the ticket figures.

use crate::ids::{MailKey, MessageId, TicketId};
use crate::model::{Event, StoredMessage, Ticket};

use super::keys::{
    KEY_NEXT_TICKET, event_key, mail_key_key, message_id_key, message_key, raw_key, requester_key,
    requester_prefix, ticket_key,
};
use super::{
    Error, Store, TicketFigures, TxResult, WriteTx, decode_u64, get_json, index, scan_json,
};

impl Store {
    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, Error> {
        get_json(&self.tree, &ticket_key(id))
    }

    /// Every ticket, in ticket-number order.
    pub fn tickets(&self) -> Result<Vec<Ticket>, Error> {
        scan_json(&self.tree, b"t/")
    }

    /// The active tickets (new, open, waiting), in ticket-number order, read through the
    /// `A/` index rather than by reading every ticket.
    pub fn active_tickets(&self) -> Result<Vec<Ticket>, Error> {
        self.indexed_tickets(b"A/")
    }

    /// The tickets held as spam, in ticket-number order, read through the `S/` index.
    pub fn spam_tickets(&self) -> Result<Vec<Ticket>, Error> {
        self.indexed_tickets(b"S/")
    }

    fn indexed_tickets(&self, prefix: &[u8]) -> Result<Vec<Ticket>, Error> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (key, _) = item?;
            let ticket_key = format!(
                "t/{}",
                String::from_utf8_lossy(key.get(2..).unwrap_or_default())
            );
            match get_json(&self.tree, &ticket_key)? {
                Some(ticket) => out.push(ticket),
                None => {
                    return Err(Error::Inconsistent(format!(
                        "ticket index {} names {ticket_key}, which does not exist",
                        String::from_utf8_lossy(prefix)
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Tickets by status and flag, and the messages they hold, as of the last ticket write.
    pub fn ticket_figures(&self) -> Result<TicketFigures, Error> {
        Ok(get_json(&self.tree, index::KEY_FIGURES)?.unwrap_or_default())
    }

    pub fn messages(&self, id: TicketId) -> Result<Vec<StoredMessage>, Error> {
        scan_json(&self.tree, format!("m/{:020}/", id.0).as_bytes())
    }

    pub fn events(&self, id: TicketId) -> Result<Vec<Event>, Error> {
        scan_json(&self.tree, format!("e/{:020}/", id.0).as_bytes())
    }

    /// The raw bytes a message was received as.
    pub fn raw(&self, id: TicketId, seq: u32) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(raw_key(id, seq).as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// The ticket and position of the message with this dedupe key, if one was stored.
    pub fn find_key(&self, key: &MailKey) -> Result<Option<(TicketId, u32)>, Error> {
        get_json(&self.tree, &mail_key_key(key))
    }

    /// One stored message of a ticket.
    pub fn message(&self, id: TicketId, seq: u32) -> Result<Option<StoredMessage>, Error> {
        get_json(&self.tree, &message_key(id, seq))
    }

    /// The ticket holding a message (incoming or sent) with this Message-ID.
    pub fn find_message_id(&self, id: &MessageId) -> Result<Option<TicketId>, Error> {
        get_json(&self.tree, &message_id_key(id))
    }

    /// The requester's tickets, in ticket-number order.
    pub fn tickets_of_requester(&self, address: &str) -> Result<Vec<TicketId>, Error> {
        let prefix = requester_prefix(address);
        let mut ids = Vec::new();
        for item in self.tree.scan_prefix(prefix.as_bytes()) {
            let (key, _) = item?;
            let text = String::from_utf8_lossy(&key);
            let number = text
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| Error::Inconsistent(format!("bad requester index key {text}")))?;
            ids.push(TicketId(number));
        }
        Ok(ids)
    }

    /// The highest ticket number handed out so far (0 for an empty store).
    pub fn last_ticket_id(&self) -> Result<TicketId, Error> {
        Ok(TicketId(
            self.tree
                .get(KEY_NEXT_TICKET)?
                .map(|v| decode_u64(&v))
                .transpose()?
                .unwrap_or(1)
                .saturating_sub(1),
        ))
    }
}

impl WriteTx<'_> {
    /// Hands out the next ticket number; numbers are never reused.
    pub fn allocate_ticket_id(&self) -> TxResult<TicketId> {
        let next = match self.tree.get(KEY_NEXT_TICKET)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        self.tree.insert(
            KEY_NEXT_TICKET,
            next.saturating_add(1).to_be_bytes().to_vec(),
        )?;
        Ok(TicketId(next))
    }

    pub fn ticket(&self, id: TicketId) -> TxResult<Option<Ticket>> {
        self.get(&ticket_key(id))
    }

    /// Writes the ticket record and keeps the requester index, the active-ticket index and the
    /// ticket figures in step.
    pub fn put_ticket(&self, ticket: &Ticket) -> TxResult<()> {
        let key = ticket_key(ticket.id);
        let previous: Option<Ticket> = self.get(&key)?;
        let mut figures: TicketFigures = self.get(index::KEY_FIGURES)?.unwrap_or_default();
        if let Some(previous) = &previous {
            figures.count(previous, false);
        }
        figures.count(ticket, true);
        self.put(index::KEY_FIGURES, &figures)?;
        let active = index::active_key(ticket.id);
        if ticket.status.is_active() {
            self.tree.insert(active.as_bytes(), Vec::new())?;
        } else if previous.as_ref().is_some_and(|p| p.status.is_active()) {
            self.tree.remove(active.as_bytes())?;
        }
        let spam = index::spam_key(ticket.id);
        if ticket.status == crate::model::Status::Spam {
            self.tree.insert(spam.as_bytes(), Vec::new())?;
        } else if previous.is_some_and(|p| p.status == crate::model::Status::Spam) {
            self.tree.remove(spam.as_bytes())?;
        }
        self.put(&key, ticket)?;
        self.tree.insert(
            requester_key(&ticket.requester, ticket.id).as_bytes(),
            Vec::new(),
        )?;
        Ok(())
    }

    /// Raw bytes of a message, inside the transaction.
    pub fn raw(&self, id: TicketId, seq: u32) -> TxResult<Option<Vec<u8>>> {
        Ok(self
            .tree
            .get(raw_key(id, seq).as_bytes())?
            .map(|v| v.to_vec()))
    }

    pub fn event(&self, id: TicketId, seq: u32) -> TxResult<Option<Event>> {
        self.get(&event_key(id, seq))
    }

    /// Removes a message record and its raw bytes (the indexes are the caller's to repoint).
    pub fn remove_message(&self, id: TicketId, seq: u32) -> TxResult<()> {
        self.tree.remove(message_key(id, seq).as_bytes())?;
        self.tree.remove(raw_key(id, seq).as_bytes())?;
        Ok(())
    }

    pub fn remove_event(&self, id: TicketId, seq: u32) -> TxResult<()> {
        self.tree.remove(event_key(id, seq).as_bytes())?;
        Ok(())
    }

    /// Lists `ticket` among `address`'s tickets (a merge brings another requester along).
    pub fn index_requester(&self, address: &str, ticket: TicketId) -> TxResult<()> {
        self.tree
            .insert(requester_key(address, ticket).as_bytes(), Vec::new())?;
        Ok(())
    }

    pub fn message(&self, id: TicketId, seq: u32) -> TxResult<Option<StoredMessage>> {
        self.get(&message_key(id, seq))
    }

    /// Stores a message with its raw bytes and indexes its dedupe key and Message-ID.
    pub fn put_message(&self, message: &StoredMessage, raw: Option<&[u8]>) -> TxResult<()> {
        self.put(&message_key(message.ticket, message.seq), message)?;
        if let Some(raw) = raw {
            self.tree.insert(
                raw_key(message.ticket, message.seq).as_bytes(),
                raw.to_vec(),
            )?;
        }
        self.put(&mail_key_key(&message.key), &(message.ticket, message.seq))?;
        // A message filed under another key although it has a Message-ID reused that id
        // (`threading::Dedupe::Reused`): the id keeps naming the ticket it was first seen in.
        if let Some(id) = &message.message_id
            && !matches!(&message.key, MailKey::ContentHash(_))
        {
            self.index_message_id(id, message.ticket)?;
        }
        Ok(())
    }

    /// Records that a Message-ID belongs to a ticket (also used for mail the helpdesk sends,
    /// so replies to it thread back).
    pub fn index_message_id(&self, id: &MessageId, ticket: TicketId) -> TxResult<()> {
        self.put(&message_id_key(id), &ticket)
    }

    pub fn find_key(&self, key: &MailKey) -> TxResult<Option<(TicketId, u32)>> {
        self.get(&mail_key_key(key))
    }

    /// Appends an event to the ticket's log and bumps its event count. The caller writes the
    /// ticket back with [`WriteTx::put_ticket`].
    pub fn add_event(&self, ticket: &mut Ticket, event: &Event) -> TxResult<()> {
        self.put(&event_key(ticket.id, ticket.event_count), event)?;
        ticket.event_count = ticket.event_count.saturating_add(1);
        Ok(())
    }
}

//! Retention and erasure: removing tickets, messages and everything derived from them from the
//! store, and queuing the deletion of their copies on the IMAP server.
//!
//! - **Retention** (`[retention] closed_after`): closed tickets nobody has touched for that long
//!   are purged whole by the process stage's sweep.
//! - **Erasure** (`casemail erase --requester ADDR`): one person's tickets go whole, the
//!   messages about them in other people's tickets go one by one (from or to them, answers and
//!   notes on their tickets after a merge, notes naming them), and so do outbox entries, dead
//!   letters and quarantined messages from or to them, their loop-safety records and what the
//!   classifier learned from their messages. The last transaction marks the store for
//!   compaction, which rewrites its files at the next open (`store::compact`).
//!
//! Both run in the process stage, the single writer of filed mail (the CLI's erasure travels
//! there through the control socket), so nothing is filed into a ticket while it is removed.
//! Each ticket's removal is one transaction that also queues an [`ImapDeletion`] per message;
//! the fetch side (`imap::expunge`) deletes the IMAP copies and then the queue entry, so the
//! deletion survives a restart. Running an erasure again after a crash finishes it.
//!
//! This module must not speak IMAP or SMTP, and its logs carry ticket numbers and counts only.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;
use tracing::info;

use crate::ids::{MailKey, TicketId};
use crate::model::{
    Actor, Event, ImapDeletion, QuarantineEntry, Source, Status, StoredMessage, Ticket,
};
use crate::store::{self, IndexKey, Store, TxResult, WriteTx};

/// What a purge or erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub tickets: usize,
    pub messages: usize,
    pub events: usize,
    pub outbox: usize,
    pub dead_letters: usize,
    pub quarantine: usize,
    /// IMAP deletions queued for the fetch side.
    pub imap_deletions: usize,
    /// Messages the spam classifier had learned and unlearned (erasure only).
    pub classifier: usize,
}

impl Removed {
    fn add(&mut self, other: &Removed) {
        self.tickets += other.tickets;
        self.messages += other.messages;
        self.events += other.events;
        self.outbox += other.outbox;
        self.dead_letters += other.dead_letters;
        self.quarantine += other.quarantine;
        self.imap_deletions += other.imap_deletions;
        self.classifier += other.classifier;
    }
}

/// The closed tickets due for purging at `now`, and when the next one falls due.
pub fn expired(
    store: &Store,
    closed_after: std::time::Duration,
    now: Timestamp,
) -> Result<(BTreeSet<TicketId>, Option<Timestamp>), store::Error> {
    let keep_for =
        jiff::SignedDuration::try_from(closed_after).unwrap_or(jiff::SignedDuration::MAX);
    let tickets = store.tickets()?;
    let mut due = BTreeSet::new();
    let mut next: Option<Timestamp> = None;
    for ticket in &tickets {
        if ticket.status != Status::Closed {
            continue;
        }
        match ticket.updated.checked_add(keep_for) {
            Ok(at) if at <= now => {
                due.insert(ticket.id);
            }
            Ok(at) => next = Some(next.map_or(at, |n| n.min(at))),
            Err(_) => {}
        }
    }
    let all: BTreeSet<TicketId> = tickets.iter().map(|t| t.id).collect();
    add_dangling_merges(&tickets, &all, &mut due);
    Ok((due, next))
}

/// A merged ticket is a pointer to the ticket it was merged into: it goes with its target, and
/// when its target is gone.
fn add_dangling_merges(tickets: &[Ticket], all: &BTreeSet<TicketId>, set: &mut BTreeSet<TicketId>) {
    loop {
        let before = set.len();
        for ticket in tickets {
            if let Some(target) = ticket.merged_into
                && (set.contains(&target) || !all.contains(&target))
            {
                set.insert(ticket.id);
            }
        }
        if set.len() == before {
            return;
        }
    }
}

/// The retention pass of the sweep: purges the closed tickets due at `now`. Returns what went
/// and when the next closed ticket falls due.
pub fn retention_sweep(
    store: &Store,
    closed_after: Option<std::time::Duration>,
    now: Timestamp,
) -> Result<(Removed, Option<Timestamp>), store::Error> {
    let Some(closed_after) = closed_after else {
        return Ok((Removed::default(), None));
    };
    let (due, next) = expired(store, closed_after, now)?;
    if due.is_empty() {
        return Ok((Removed::default(), next));
    }
    let removed = remove_tickets(store, &due, now, "retention")?;
    store.flush()?;
    info!(
        tickets = removed.tickets,
        messages = removed.messages,
        events = removed.events,
        imap_deletions = removed.imap_deletions,
        "Retention: closed tickets purged."
    );
    Ok((removed, next))
}

/// Removes whole tickets, one transaction each: messages with their raw bytes, events, index
/// entries, outbox entries and dead letters of the ticket; queues the IMAP deletions. Each
/// ticket is logged with its number and counts, never its contents.
pub fn remove_tickets(
    store: &Store,
    ids: &BTreeSet<TicketId>,
    now: Timestamp,
    why: &'static str,
) -> Result<Removed, store::Error> {
    remove_tickets_and(store, ids, now, why, Classifier::Keep)
}

/// What a removal does to what the spam classifier learned from the removed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Classifier {
    /// Retention and the spam purge: the classifier keeps its counts (token counts hold no
    /// message, and unlearning expired spam would undo its training).
    Keep,
    /// Erasure: the person's messages are unlearned (`spam::bayes::forget`).
    Forget,
}

fn remove_tickets_and(
    store: &Store,
    ids: &BTreeSet<TicketId>,
    now: Timestamp,
    why: &'static str,
    classifier: Classifier,
) -> Result<Removed, store::Error> {
    let index = group_by_ticket(store.index_keys_for(ids)?);
    let mut outbox: BTreeMap<TicketId, Vec<u64>> = BTreeMap::new();
    for entry in store.outbox()? {
        if let Some(ticket) = entry.ticket.filter(|t| ids.contains(t)) {
            outbox.entry(ticket).or_default().push(entry.id);
        }
    }
    let mut dead: BTreeMap<TicketId, Vec<u64>> = BTreeMap::new();
    for letter in store.dead_letters()? {
        if let Some(ticket) = letter.entry.ticket.filter(|t| ids.contains(t)) {
            dead.entry(ticket).or_default().push(letter.entry.id);
        }
    }
    let mut total = Removed::default();
    for &id in ids {
        let no_keys = Vec::new();
        let keys = index.get(&id).unwrap_or(&no_keys);
        let no_ids = Vec::new();
        let outbox = outbox.get(&id).unwrap_or(&no_ids);
        let dead = dead.get(&id).unwrap_or(&no_ids);
        let reply_records = store.reply_record_keys(id)?;
        let removed = store.write(|tx| {
            let mut removed = Removed::default();
            let Some(ticket) = tx.ticket(id)? else {
                return Ok(removed);
            };
            for seq in 0..ticket.message_count {
                if let Some(message) = tx.message(id, seq)? {
                    remove_message(tx, &message, now, classifier, &mut removed)?;
                }
            }
            for seq in 0..ticket.event_count {
                tx.remove_event(id, seq)?;
            }
            removed.events = ticket.event_count as usize;
            for key in keys {
                tx.remove_index_key(key)?;
            }
            for key in &reply_records {
                tx.remove_reply_record(key)?;
            }
            for entry in outbox {
                tx.remove_outbox(*entry)?;
                removed.outbox += 1;
            }
            for entry in dead {
                tx.remove_dead_letter(*entry)?;
                removed.dead_letters += 1;
            }
            tx.remove_ticket(&ticket)?;
            removed.tickets = 1;
            Ok(removed)
        })?;
        if removed.tickets > 0 {
            info!(
                ticket = id.0,
                why,
                messages = removed.messages,
                events = removed.events,
                outbox = removed.outbox,
                imap_deletions = removed.imap_deletions,
                "Ticket purged."
            );
        }
        total.add(&removed);
    }
    Ok(total)
}

fn group_by_ticket(keys: Vec<IndexKey>) -> BTreeMap<TicketId, Vec<IndexKey>> {
    let mut grouped: BTreeMap<TicketId, Vec<IndexKey>> = BTreeMap::new();
    for key in keys {
        grouped.entry(key.ticket).or_default().push(key);
    }
    grouped
}

/// Removes one message with its raw bytes and index entries, and queues its IMAP deletion.
fn remove_message(
    tx: &WriteTx<'_>,
    message: &StoredMessage,
    now: Timestamp,
    classifier: Classifier,
    removed: &mut Removed,
) -> TxResult<()> {
    if classifier == Classifier::Forget && crate::casework::spam::bayes::forget(tx, message)? {
        removed.classifier += 1;
    }
    tx.unindex_key(&message.key, message.ticket, message.seq)?;
    if let Some(id) = &message.message_id {
        tx.unindex_message_id(id, message.ticket)?;
    }
    tx.remove_message(message.ticket, message.seq)?;
    removed.messages += 1;
    if !message.sources.is_empty() {
        let from = match &message.key {
            MailKey::ContentHash(_) => message.from.clone(),
            MailKey::MessageId(_) => None,
        };
        tx.queue_imap_deletion(&ImapDeletion {
            id: 0,
            queued: now,
            key: Some(message.key.clone()),
            from,
            sources: message.sources.clone(),
        })?;
        removed.imap_deletions += 1;
    }
    Ok(())
}

/// Everything an erasure of one requester removes, worked out before anything is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasurePlan {
    /// The address, lower-cased.
    pub requester: String,
    /// Tickets removed whole: the requester's own, and tickets merged into them.
    pub tickets: BTreeSet<TicketId>,
    /// The requester's messages in other people's tickets: ticket → positions.
    pub messages: BTreeMap<TicketId, Vec<u32>>,
    /// Outbox entries to or about them (ids).
    pub outbox: Vec<u64>,
    pub dead_letters: Vec<u64>,
    pub quarantine: Vec<Source>,
}

/// Works out what erasing `requester` removes, without changing anything.
pub fn plan_erasure(store: &Store, requester: &str) -> Result<ErasurePlan, store::Error> {
    let address = requester.trim().to_lowercase();
    let tickets = store.tickets()?;
    let all: BTreeSet<TicketId> = tickets.iter().map(|t| t.id).collect();
    let mut whole: BTreeSet<TicketId> = tickets
        .iter()
        .filter(|t| t.requester == address)
        .map(|t| t.id)
        .collect();
    let merged_before = whole.clone();
    add_dangling_merges(&tickets, &all, &mut whole);
    // Only stubs pointing into the requester's tickets, not every dangling one in the store.
    let mut extra: BTreeSet<TicketId> = whole.difference(&merged_before).copied().collect();
    extra.retain(|id| {
        tickets
            .iter()
            .find(|t| t.id == *id)
            .and_then(|t| t.merged_into)
            .is_some_and(|target| whole.contains(&target))
    });
    let whole: BTreeSet<TicketId> = merged_before.union(&extra).copied().collect();

    let indexed: BTreeSet<TicketId> = store.tickets_of_requester(&address)?.into_iter().collect();
    let mut messages = BTreeMap::new();
    for ticket in &tickets {
        if whole.contains(&ticket.id)
            || !(ticket.participants.contains(&address) || indexed.contains(&ticket.id))
        {
            continue;
        }
        let theirs: Vec<u32> = store
            .messages(ticket.id)?
            .iter()
            .filter(|m| concerns(m, &address, &whole))
            .map(|m| m.seq)
            .collect();
        if !theirs.is_empty() {
            messages.insert(ticket.id, theirs);
        }
    }

    let mentions = |entry: &crate::model::OutboxEntry, raw: Option<Vec<u8>>| {
        entry.ticket.is_some_and(|t| whole.contains(&t))
            || entry.envelope_from.eq_ignore_ascii_case(&address)
            || entry
                .recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&address))
            || raw.is_some_and(|raw| contains_address(&raw, &address))
    };
    let mut outbox = Vec::new();
    for entry in store.outbox()? {
        if mentions(&entry, store.outbox_raw(entry.id)?) {
            outbox.push(entry.id);
        }
    }
    let mut dead_letters = Vec::new();
    for dead in store.dead_letters()? {
        if mentions(&dead.entry, store.dead_letter_raw(dead.entry.id)?) {
            dead_letters.push(dead.entry.id);
        }
    }
    let mut quarantine = Vec::new();
    for entry in store.quarantine()? {
        if store
            .quarantined_raw(&entry.source)?
            .is_some_and(|raw| contains_address(&raw, &address))
        {
            quarantine.push(entry.source);
        }
    }
    Ok(ErasurePlan {
        requester: address,
        tickets: whole,
        messages,
        outbox,
        dead_letters,
        quarantine,
    })
}

fn is_from(message: &StoredMessage, address: &str) -> bool {
    message
        .from
        .as_deref()
        .is_some_and(|from| from.eq_ignore_ascii_case(address))
}

/// Whether a message in someone else's ticket is about the person being erased: written by
/// them, sent to them (To or Cc), a caseworker's answer or note on one of their own tickets
/// (`theirs`; after a merge these live in the other ticket: the reply token, `cm.{ticket}.…`,
/// in the sub-address it was sent to or in the notification Message-ID it answers, names the
/// ticket), or a note that names their address.
fn concerns(message: &StoredMessage, address: &str, theirs: &BTreeSet<TicketId>) -> bool {
    let to_them = message
        .to
        .iter()
        .chain(&message.cc)
        .any(|a| a.eq_ignore_ascii_case(address));
    let on_their_ticket = theirs.iter().any(|ticket| {
        let sub_address = format!("+cm.{}.", ticket.0);
        let in_message_id = format!(".cm.{}.", ticket.0);
        message
            .to
            .iter()
            .chain(&message.cc)
            .any(|a| a.to_ascii_lowercase().contains(&sub_address))
            || message
                .in_reply_to
                .iter()
                .chain(&message.references)
                .any(|id| id.as_str().to_ascii_lowercase().contains(&in_message_id))
    });
    let note_naming_them = message.direction == crate::model::Direction::Note
        && message.text.to_lowercase().contains(address);
    is_from(message, address) || to_them || on_their_ticket || note_naming_them
}

/// Whether raw mail bytes mention `address`, ignoring ASCII case.
fn contains_address(raw: &[u8], address: &str) -> bool {
    let needle = address.as_bytes();
    !needle.is_empty()
        && raw
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Carries out an erasure plan. Runs in the single writer; every step is idempotent, so running
/// the erasure again after an interruption finishes it.
pub fn erase(store: &Store, plan: &ErasurePlan, now: Timestamp) -> Result<Removed, store::Error> {
    let address = plan.requester.as_str();
    let mut total = remove_tickets_and(store, &plan.tickets, now, "erasure", Classifier::Forget)?;
    for (&ticket, seqs) in &plan.messages {
        let removed =
            store.write(|tx| remove_from_ticket(tx, ticket, seqs, address, &plan.tickets, now))?;
        if removed.messages > 0 {
            info!(
                ticket = ticket.0,
                messages = removed.messages,
                imap_deletions = removed.imap_deletions,
                "Erasure: a requester's messages removed from another ticket."
            );
        }
        total.add(&removed);
    }
    let leftover_index = store.requester_index_keys(address)?;
    let loop_keys = store.loop_keys_of(address)?;
    let sent_keys = store.sent_keys_to(address)?;
    let quarantined: Vec<QuarantineEntry> = store
        .quarantine()?
        .into_iter()
        .filter(|e| plan.quarantine.contains(&e.source))
        .collect();
    let mut quarantine_keys = Vec::new();
    for entry in &quarantined {
        let message_id = store
            .quarantined_raw(&entry.source)?
            .and_then(|raw| crate::mail::parse::header_message_id(&raw));
        quarantine_keys.push(message_id);
    }
    let rest = store.write(|tx| {
        let mut removed = Removed::default();
        tx.request_compaction()?;
        for key in &leftover_index {
            tx.remove_index_key(key)?;
        }
        for key in &loop_keys {
            tx.remove_loop_record(key)?;
        }
        for key in &sent_keys {
            tx.remove_reply_record(key)?;
        }
        for &id in &plan.outbox {
            if tx.outbox_entry(id)?.is_some() {
                tx.remove_outbox(id)?;
                removed.outbox += 1;
            }
        }
        for &id in &plan.dead_letters {
            tx.remove_dead_letter(id)?;
            removed.dead_letters += 1;
        }
        for (entry, message_id) in quarantined.iter().zip(&quarantine_keys) {
            tx.remove_quarantine(&entry.source)?;
            tx.queue_imap_deletion(&ImapDeletion {
                id: 0,
                queued: now,
                key: message_id.clone().map(MailKey::MessageId),
                from: None,
                sources: vec![entry.source.clone()],
            })?;
            removed.quarantine += 1;
            removed.imap_deletions += 1;
        }
        Ok(removed)
    })?;
    total.add(&rest);
    store.flush()?;
    info!(
        tickets = total.tickets,
        messages = total.messages,
        outbox = total.outbox,
        dead_letters = total.dead_letters,
        quarantine = total.quarantine,
        imap_deletions = total.imap_deletions,
        "Erasure of one requester done."
    );
    Ok(total)
}

/// Removes the requester's messages (`seqs`) from a ticket that is someone else's, with the
/// events that name them, and renumbers what is left so positions stay dense.
fn remove_from_ticket(
    tx: &WriteTx<'_>,
    id: TicketId,
    seqs: &[u32],
    address: &str,
    theirs: &BTreeSet<TicketId>,
    now: Timestamp,
) -> TxResult<Removed> {
    let mut removed = Removed::default();
    let Some(mut ticket) = tx.ticket(id)? else {
        return Ok(removed);
    };
    let mut kept = Vec::new();
    for seq in 0..ticket.message_count {
        let Some(message) = tx.message(id, seq)? else {
            continue;
        };
        if seqs.contains(&seq) && concerns(&message, address, theirs) {
            remove_message(tx, &message, now, Classifier::Forget, &mut removed)?;
        } else {
            let raw = tx.raw(id, seq)?;
            tx.remove_message(id, seq)?;
            kept.push((message, raw));
        }
    }
    if removed.messages == 0 {
        // Nothing of theirs here any more: put everything back as it was.
        for (message, raw) in &kept {
            tx.put_message(message, raw.as_deref())?;
        }
        return Ok(removed);
    }
    let kept_count = u32::try_from(kept.len()).unwrap_or(u32::MAX);
    for (position, (mut message, raw)) in kept.into_iter().enumerate() {
        message.seq = u32::try_from(position).unwrap_or(u32::MAX);
        tx.put_message(&message, raw.as_deref())?;
    }
    ticket.message_count = kept_count;
    let mut events = Vec::new();
    for seq in 0..ticket.event_count {
        if let Some(event) = tx.event(id, seq)? {
            events.push(event);
        }
        tx.remove_event(id, seq)?;
    }
    ticket.event_count = 0;
    for event in events {
        let names_them = matches!(&event.actor, Actor::Requester(who) if who.eq_ignore_ascii_case(address))
            || event.detail.to_lowercase().contains(address);
        if names_them {
            removed.events += 1;
        } else {
            tx.add_event(&mut ticket, &event)?;
        }
    }
    ticket.participants.remove(address);
    let erased = Event {
        at: now,
        actor: Actor::System,
        kind: "erased".to_owned(),
        detail: format!(
            "{} message(s) of a requester who asked to be erased removed",
            removed.messages
        ),
    };
    tx.add_event(&mut ticket, &erased)?;
    tx.put_ticket(&ticket)?;
    Ok(removed)
}

#[cfg(test)]
mod tests;

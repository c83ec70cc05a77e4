//! Putting composed mail in the outbox, tied to its ticket, once loop safety lets it go.

use jiff::Timestamp;

use crate::casework::mail_loops::{self, Admission};
use crate::config::Loops;
use crate::ids::TicketId;
use crate::mail::compose::Outgoing;
use crate::model::{DeadLetter, OutboxEntry, OutboxKind};
use crate::store::{self, TxResult, WriteTx};

/// Puts a composed message in the outbox, tied to its ticket, when loop safety lets it go
/// (`mail_loops::admit`: suppressed addresses, caps on automatic mail). Returns the outbox id, or
/// `None` when the message was held back; the ticket then records why. A caseworker's answer
/// to a suppressed address is not dropped: it is kept as a dead letter with its bytes, and the
/// sweep tells the caseworker, as for any answer that cannot be delivered.
pub(crate) fn enqueue(
    tx: &WriteTx<'_>,
    limits: &Loops,
    kind: OutboxKind,
    ticket: Option<TicketId>,
    outgoing: &Outgoing,
    now: Timestamp,
) -> TxResult<Option<u64>> {
    Ok(match queue(tx, limits, kind, ticket, outgoing, now)? {
        Queued::Outbox(id) => Some(id),
        Queued::DeadLetter { .. } | Queued::HeldBack => None,
    })
}

/// Where [`queue`] put a message.
pub(super) enum Queued {
    /// In the outbox, under this id.
    Outbox(u64),
    /// Kept as a dead letter under this id, never sent (a caseworker's answer to a suppressed
    /// address), and why.
    DeadLetter { id: u64, reason: String },
    /// Not kept (automatic mail over a cap or to a suppressed address); the ticket says why.
    HeldBack,
}

/// [`enqueue`], saying what became of the message.
pub(super) fn queue(
    tx: &WriteTx<'_>,
    limits: &Loops,
    kind: OutboxKind,
    ticket: Option<TicketId>,
    outgoing: &Outgoing,
    now: Timestamp,
) -> TxResult<Queued> {
    let entry = OutboxEntry {
        id: 0,
        kind,
        ticket,
        message_id: outgoing.message_id.clone(),
        envelope_from: outgoing.envelope_from.clone(),
        recipients: outgoing.recipients.clone(),
        created: now,
        attempts: 0,
        next_attempt: now,
        last_error: None,
    };
    let admission = mail_loops::admit(tx, limits, kind, ticket, &outgoing.recipients, now)?;
    if let Some(ticket) = ticket
        && matches!(admission, Admission::Send | Admission::Suppressed(_))
    {
        // Who it went to, so a delivery report can be checked against it.
        let sent = store::Sent {
            recipients: outgoing.recipients.clone(),
            at: now,
        };
        tx.put_sent(ticket, &outgoing.message_id, &sent)?;
    }
    match admission {
        Admission::Send => tx.enqueue(&entry, &outgoing.raw).map(Queued::Outbox),
        Admission::Suppressed(reason) if !mail_loops::is_automatic(kind) => {
            let id = tx.enqueue(&entry, &outgoing.raw)?;
            tx.remove_outbox(id)?;
            let error = format!("not sent: {reason}");
            let dead = DeadLetter {
                entry: OutboxEntry {
                    id,
                    last_error: Some(error.clone()),
                    ..entry
                },
                failed_at: now,
                error,
                reported: false,
                refused_code: None,
            };
            tx.put_dead_letter(&dead, Some(&outgoing.raw))?;
            Ok(Queued::DeadLetter { id, reason })
        }
        Admission::Suppressed(_) | Admission::OverCap(_) => Ok(Queued::HeldBack),
    }
}

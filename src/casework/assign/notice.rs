//! Notices to coordinators, and recording mail about a ticket that could not be composed.

use jiff::Timestamp;
use tracing::warn;

use crate::ids::TicketId;
use crate::mail::compose;
use crate::model::{Actor, Event, OutboxKind, Role, Ticket};
use crate::store::{TxResult, WriteTx};

use super::{Context, enqueue};

pub(crate) fn tell_coordinators(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &Ticket,
    what: &str,
) -> TxResult<()> {
    for (index, coordinator) in context
        .team
        .coordinators(context.now)
        .into_iter()
        .enumerate()
    {
        if coordinator.role != Role::Coordinator {
            continue;
        }
        let nonce = context.nonce.wrapping_add(1 + index as u64);
        match compose::coordinator_notice(
            context.sender,
            coordinator,
            ticket,
            what,
            nonce,
            context.now,
        ) {
            Ok(outgoing) => {
                enqueue(
                    tx,
                    &context.limits,
                    OutboxKind::Notification,
                    Some(ticket.id),
                    &outgoing,
                    context.now,
                )?;
            }
            Err(err) => {
                let what = format!("the notice to coordinator {}", coordinator.id);
                record_not_composed(tx, context.now, ticket.id, &what, &err);
            }
        }
    }
    Ok(())
}

/// Records that casemail could not compose mail about a ticket (an address the mail builder
/// refuses): an event on the ticket and a notice to the coordinators. Composing never stops
/// the process stage; the message that caused it is filed as usual. The log line carries no
/// address.
pub(crate) fn not_composed(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    what: &str,
    err: &compose::Error,
) -> TxResult<()> {
    warn!(
        ticket = ticket.id.0,
        what, "Cannot compose mail; the ticket's events say why."
    );
    let detail = format!("casemail could not compose {what}: {err}");
    tx.add_event(
        ticket,
        &Event {
            at: context.now,
            actor: Actor::System,
            kind: "not_composed".to_owned(),
            detail: detail.clone(),
        },
    )?;
    tell_coordinators(tx, context, ticket, &detail)
}

/// Mail to a caseworker or coordinator that cannot be composed, where telling someone else
/// could fail the same way: an event on the ticket (added after the caller's own writes, see
/// [`WriteTx::add_event_later`]) and a log line without the address.
pub(super) fn record_not_composed(
    tx: &WriteTx<'_>,
    now: Timestamp,
    ticket: TicketId,
    what: &str,
    err: &compose::Error,
) {
    warn!(
        ticket = ticket.0,
        what, "Cannot compose mail; the ticket's events say why."
    );
    tx.add_event_later(
        ticket,
        Event {
            at: now,
            actor: Actor::System,
            kind: "not_composed".to_owned(),
            detail: format!("casemail could not compose {what}: {err}"),
        },
    );
}

//! Applying a routing decision to a ticket: owner, events, the notification to the new owner
//! and notices to coordinators.

use crate::casework::route::{Decision, Reason};
use crate::ids::AgentId;
use crate::mail::compose::{self, AttachmentBytes, Why};
use crate::model::{Actor, Event, OutboxKind, StoredMessage, Ticket, TicketFlag};
use crate::store::{TxResult, WriteTx};

use super::{Context, TeamChange, enqueue, not_composed, tell_coordinators};

/// What applying a decision did, for logs and the caller's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    Assigned(AgentId, Reason),
    Waiting,
    NotRouted,
}

/// Applies a routing decision to `ticket` inside a transaction: owner, events, the
/// notification to the new owner (with `message` and its files), notices to coordinators.
/// The caller writes the ticket back.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of one decision.
pub(crate) fn apply(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    decision: &Decision,
    message: Option<&StoredMessage>,
    attachments: &[AttachmentBytes],
    why: Why,
    change: &mut TeamChange,
) -> TxResult<Applied> {
    let now = context.now;
    match decision {
        Decision::Assign { agent, reason } => {
            let Some(record) = context.team.agent(agent) else {
                return Ok(Applied::NotRouted);
            };
            let previous = ticket.owner.clone();
            let newly_assigned = previous.as_ref() != Some(agent);
            if newly_assigned {
                let sequence = context.team.next_sequence();
                let mut stored = tx.agent(agent)?.unwrap_or_else(|| record.clone());
                stored.last_assigned = Some(sequence);
                tx.put_agent(&stored)?;
                change.assigned = Some((agent.clone(), sequence));
                change.released = previous.clone();
                ticket.owner = Some(agent.clone());
                ticket.assigned_at = Some(now);
                ticket.flags.remove(&TicketFlag::Unassigned);
                let detail = match (&previous, reason) {
                    (Some(old), Reason::Handover) => {
                        format!("handed over from {old} to {agent}: no answer in time")
                    }
                    (Some(old), _) => format!("reassigned from {old} to {agent} ({reason:?})"),
                    (None, _) => format!("assigned to {agent} ({reason:?})"),
                };
                tx.add_event(
                    ticket,
                    &Event {
                        at: now,
                        actor: Actor::System,
                        kind: "assigned".to_owned(),
                        detail,
                    },
                )?;
            }
            let why = if newly_assigned && *reason == Reason::Handover {
                Why::Handover
            } else if newly_assigned {
                Why::Assigned
            } else {
                why
            };
            let Some(message) = message
                .cloned()
                .or_else(|| latest_from_requester(tx, ticket))
            else {
                return Ok(Applied::Assigned(agent.clone(), *reason));
            };
            let token = context.secret.sign(ticket.id, agent);
            let warnings = crate::casework::auth::warnings(&message.anomalies);
            let outgoing = match compose::ticket_notification(
                context.sender,
                record,
                ticket,
                &message,
                attachments,
                why,
                &warnings,
                &token,
                context.nonce,
                context.now,
            ) {
                Ok(outgoing) => outgoing,
                Err(err) => {
                    let what = format!("the notification to {agent}");
                    not_composed(tx, context, ticket, &what, &err)?;
                    return Ok(Applied::Assigned(agent.clone(), *reason));
                }
            };
            enqueue(
                tx,
                &context.limits,
                OutboxKind::Notification,
                Some(ticket.id),
                &outgoing,
                now,
            )?;
            if newly_assigned && *reason == Reason::Handover {
                let what = format!(
                    "handed over to {agent} after no answer from {}",
                    previous.as_ref().map_or("nobody", |p| p.0.as_str())
                );
                tell_coordinators(tx, context, ticket, &what)?;
            }
            Ok(Applied::Assigned(agent.clone(), *reason))
        }
        Decision::Wait { until } => {
            let detail = match until {
                Some(until) => {
                    format!("nobody on duty can take it; waits for the shift starting {until}")
                }
                None => "nobody on duty can take it and no shift is planned".to_owned(),
            };
            let already_waiting = ticket.flags.contains(&TicketFlag::Unassigned);
            if !already_waiting {
                ticket.flags.insert(TicketFlag::Unassigned);
                tx.add_event(
                    ticket,
                    &Event {
                        at: now,
                        actor: Actor::System,
                        kind: "waiting".to_owned(),
                        detail,
                    },
                )?;
                tell_coordinators(tx, context, ticket, "nobody on duty could take this ticket")?;
            }
            Ok(Applied::Waiting)
        }
    }
}

/// The message a notification quotes when nothing new arrived (a handover, a waiting ticket
/// assigned at the start of a shift, a reassignment): the latest one the requester wrote. Notes,
/// refused replies (kept as notes), delivery reports and answers sent are never quoted, so text
/// a stranger planted on the ticket is never shown as the requester's. Without a message from
/// the requester's address (a merged ticket's other requester), the latest inbound message is
/// quoted, and the notification names its real sender.
fn latest_from_requester(tx: &WriteTx<'_>, ticket: &Ticket) -> Option<StoredMessage> {
    let mut latest_inbound = None;
    for seq in (0..ticket.message_count).rev() {
        let Some(message) = tx.message(ticket.id, seq).ok().flatten() else {
            continue;
        };
        if message.direction != crate::model::Direction::In {
            continue;
        }
        if message.from.as_deref() == Some(ticket.requester.as_str()) {
            return Some(message);
        }
        latest_inbound.get_or_insert(message);
    }
    latest_inbound
}

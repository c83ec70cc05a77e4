//! Filing a caseworker's reply: relayed to the requester once the gate cleared it, held, refused,
//! or kept as an internal note.

use crate::casework::gate;
use crate::ids::{AgentId, TicketId};
use crate::mail::compose;
use crate::model::{Actor, Agent, Event, OutboxKind, StoredMessage, Ticket};
use crate::store::{TxResult, WriteTx};

use super::notice::record_not_composed;
use super::outbox::{Queued, queue};
use super::{Context, enqueue, not_composed, tell_coordinators};

/// What the relay gate must keep from the requester on `ticket`: every registered caseworker
/// address, the reply token of the agent answering, and the names the operator listed
/// (`[helpdesk] hide_names`).
pub(crate) fn secrets(
    context: &Context<'_>,
    names: &[String],
    ticket: TicketId,
    agent: &AgentId,
) -> gate::Secrets {
    let token = context.secret.sign(ticket, agent);
    gate::Secrets::with_names(
        context
            .team
            .agents()
            .flat_map(|a| a.emails.iter().map(String::as_str)),
        [token.as_str()],
        names.iter().map(String::as_str),
    )
}

/// What became of an answer the gate cleared.
#[derive(Debug)]
pub(crate) enum Relayed {
    /// Queued for the requester; the lines for the caseworker's confirmation (what the gate
    /// left out or cleaned), empty when there is nothing to say.
    Sent(Vec<String>),
    /// The composed answer failed the gate's last check and was held; the line tells the
    /// caseworker.
    Held(gate::Hold, String),
    /// The requester's address is one casemail cannot write to: the answer is kept as a note,
    /// and the caseworker and the coordinators are told.
    NotComposed,
    /// The answer was composed but not sent (the requester's address is suppressed): it is
    /// kept as a dead letter the sweep tells the caseworker about; the reason says why.
    NotSent(String),
}

/// Files a genuine caseworker reply the relay gate cleared: stores what they wrote as an
/// outgoing message, queues the answer to the requester (threaded under the requester's own
/// latest message), and marks the ticket as waiting on the requester. `message` is the stored
/// form of the reply.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of one reply.
pub(crate) fn relay_reply(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    agent: &AgentId,
    message: &StoredMessage,
    raw: &[u8],
    cleared: &gate::Cleared,
    secrets: &gate::Secrets,
) -> TxResult<Relayed> {
    let now = context.now;
    let messages: Vec<StoredMessage> = (0..ticket.message_count)
        .filter_map(|seq| tx.message(ticket.id, seq).ok().flatten())
        .collect();
    let (in_reply_to, references) = gate::threading(ticket, &messages);
    let outgoing = match compose::relay_to_requester(
        context.sender,
        ticket,
        cleared,
        in_reply_to.as_ref(),
        &references,
        secrets,
        context.nonce,
        now,
    ) {
        Ok(outgoing) => outgoing,
        Err(err) => {
            answer_not_composed(tx, context, ticket, agent, message, raw, &err)?;
            return Ok(Relayed::NotComposed);
        }
    };
    if !gate::check_composed(&outgoing.raw, secrets, &ticket.requester) {
        let mut message = message.clone();
        let line = hold_reply(
            tx,
            context,
            ticket,
            agent,
            &mut message,
            raw,
            &gate::Hold::Leak,
        )?;
        return Ok(Relayed::Held(gate::Hold::Leak, line));
    }
    let queued = queue(
        tx,
        &context.limits,
        OutboxKind::Relay,
        Some(ticket.id),
        &outgoing,
        now,
    )?;
    if let Queued::DeadLetter { id, reason } = queued {
        // Never shown as sent: the stored answer, its event and the log say it did not go.
        let not_sent = format!("{}{reason}", crate::model::ANSWER_NOT_SENT);
        let mut message = message.clone();
        message.anomalies.push(not_sent.clone());
        tx.put_message(&message, Some(raw))?;
        ticket.message_count = ticket.message_count.saturating_add(1);
        ticket.updated = now;
        ticket.last_agent_reply = Some(now);
        let event = Event {
            at: now,
            actor: Actor::Agent(agent.clone()),
            kind: "answer_not_sent".to_owned(),
            detail: format!(
                "{not_sent}; kept as dead letter {id} (casemail deadletter retry {id} once the address can receive mail)"
            ),
        };
        tx.add_event(ticket, &event)?;
        return Ok(Relayed::NotSent(reason));
    }
    tx.put_message(message, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.updated = now;
    ticket.status = crate::model::Status::Waiting;
    ticket.last_agent_reply = Some(now);
    let event = Event {
        at: now,
        actor: Actor::Agent(agent.clone()),
        kind: "replied".to_owned(),
        detail: format!(
            "answer relayed to the requester ({} attachment(s), {} file(s) left out or cleaned)",
            cleared.attachments.len(),
            cleared.removed.len()
        ),
    };
    tx.add_event(ticket, &event)?;
    if cleared.removed.is_empty() {
        return Ok(Relayed::Sent(Vec::new()));
    }
    let mut lines = vec!["Your answer was sent to the requester. About its files:".to_owned()];
    lines.extend(cleared.removed.iter().map(|line| format!("  {line}")));
    Ok(Relayed::Sent(lines))
}

/// Files a caseworker reply the relay gate held: kept on the ticket as an internal note, never
/// sent, recorded in the event log. Returns the line that tells the caseworker why and how to
/// answer.
pub(crate) fn hold_reply(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    agent: &AgentId,
    message: &mut StoredMessage,
    raw: &[u8],
    hold: &gate::Hold,
) -> TxResult<String> {
    message.direction = crate::model::Direction::Note;
    message
        .anomalies
        .push(format!("answer held, never relayed: {}", hold.summary()));
    tx.put_message(message, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.updated = context.now;
    let event = Event {
        at: context.now,
        actor: Actor::Agent(agent.clone()),
        kind: "reply_held".to_owned(),
        detail: format!("answer held, not relayed: {}", hold.summary()),
    };
    tx.add_event(ticket, &event)?;
    Ok(hold.explain(ticket.id.0))
}

/// A caseworker's answer that cannot be composed for the requester (their address is one
/// casemail cannot write to): kept with the ticket as an internal note, never sent, and the
/// caseworker and the coordinators are told how to go on.
fn answer_not_composed(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    agent: &AgentId,
    message: &StoredMessage,
    raw: &[u8],
    err: &compose::Error,
) -> TxResult<()> {
    let mut note = message.clone();
    note.direction = crate::model::Direction::Note;
    tx.put_message(&note, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.updated = context.now;
    tx.add_event(
        ticket,
        &Event {
            at: context.now,
            actor: Actor::Agent(agent.clone()),
            kind: "reply_not_sent".to_owned(),
            detail: format!("the answer could not be composed for the requester: {err}"),
        },
    )?;
    let address = context
        .team
        .agent(agent)
        .and_then(|a| a.emails.first().cloned())
        .or_else(|| message.from.clone());
    if let Some(address) = address {
        let body = format!(
            "Your answer on ticket #{} was NOT sent to the requester: casemail cannot send mail to their address ({err}).\n\nIt is kept with the ticket as an internal note. Ask a coordinator how to reach the requester another way; do not write to them from your own address.\n",
            ticket.id.0
        );
        if let Err(err) = queue_not_sent(tx, context, ticket, &address, body, 98)? {
            not_composed(tx, context, ticket, "the notice to the caseworker", &err)?;
        }
    }
    tell_coordinators(
        tx,
        context,
        ticket,
        &format!(
            "an answer by {agent} could not be sent: casemail cannot write to the requester's address"
        ),
    )
}

/// Queues a "Not sent:" notice about `ticket` to a caseworker's `address`. The outer result is
/// the store's; the inner one says whether the notice could be composed at all, so the caller
/// decides how to record a failure.
fn queue_not_sent(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &Ticket,
    address: &str,
    body: String,
    nonce_offset: u64,
) -> TxResult<Result<(), compose::Error>> {
    let subject = format!("Not sent: {}", compose::ticket_subject(ticket));
    match compose::plain_to(
        context.sender,
        address,
        &subject,
        body,
        "b",
        context.nonce.wrapping_add(nonce_offset),
        context.now,
    ) {
        Ok(outgoing) => {
            enqueue(
                tx,
                &context.limits,
                OutboxKind::Bounce,
                Some(ticket.id),
                &outgoing,
                context.now,
            )?;
            Ok(Ok(()))
        }
        Err(err) => Ok(Err(err)),
    }
}

/// Files a refused reply: kept as an internal note (never relayed), recorded in the event
/// log, explained to the sender when it is a registered agent address, and reported to the
/// coordinators.
pub(crate) fn refuse_reply(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    note: &StoredMessage,
    raw: &[u8],
    reason: &str,
    tell: Option<&str>,
) -> TxResult<()> {
    let now = context.now;
    tx.put_message(note, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.updated = now;
    let event = Event {
        at: now,
        actor: Actor::System,
        kind: "reply_refused".to_owned(),
        detail: reason.to_owned(),
    };
    tx.add_event(ticket, &event)?;
    if let Some(address) = tell {
        let body = format!(
            "Your message about ticket #{} was NOT sent to the requester.\n\nWhy: {reason}.\n\nTo answer, use Reply on the latest notification for this ticket from your registered address.\n",
            ticket.id.0
        );
        if let Err(err) = queue_not_sent(tx, context, ticket, address, body, 97)? {
            record_not_composed(tx, now, ticket.id, "the refusal notice", &err);
        }
    }
    // Who wrote is internal information the coordinators need (a caseworker writing from an
    // address nobody registered, say); it goes to them only, never to the sender or requester.
    let who = note
        .from
        .as_deref()
        .map(|from| format!(" from {}", crate::mail::sanitize::for_terminal(from)))
        .unwrap_or_default();
    tell_coordinators(
        tx,
        context,
        ticket,
        &format!("a reply{who} was refused: {reason}"),
    )
}

/// Stores a caseworker's `#note` and sends it to the ticket's other caseworkers (the owner and
/// the coordinators, except the writer); it never reaches the requester.
pub(crate) fn internal_note(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    writer: &AgentId,
    note: &StoredMessage,
    raw: &[u8],
) -> TxResult<()> {
    let now = context.now;
    tx.put_message(note, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.updated = now;
    let event = Event {
        at: now,
        actor: Actor::Agent(writer.clone()),
        kind: "note".to_owned(),
        detail: "internal note".to_owned(),
    };
    tx.add_event(ticket, &event)?;
    let mut readers: Vec<&Agent> = context.team.coordinators(now);
    if let Some(owner) = ticket.owner.as_ref().and_then(|o| context.team.agent(o))
        && !readers.iter().any(|r| r.id == owner.id)
    {
        readers.push(owner);
    }
    let subject = format!(
        "{} (internal note from {writer})",
        compose::ticket_subject(ticket)
    );
    for (index, reader) in readers.into_iter().filter(|r| &r.id != writer).enumerate() {
        let Some(to) = reader.emails.first() else {
            continue;
        };
        let body = format!(
            "Internal note on ticket #{} from {writer}; the requester does not see it.\n\n{}\n",
            ticket.id.0, note.text
        );
        match compose::plain_to(
            context.sender,
            to,
            &subject,
            body,
            "note",
            context.nonce.wrapping_add(200 + index as u64),
            now,
        ) {
            Ok(outgoing) => {
                enqueue(
                    tx,
                    &context.limits,
                    OutboxKind::Notification,
                    Some(ticket.id),
                    &outgoing,
                    now,
                )?;
            }
            Err(err) => {
                let what = format!("the note notification to {}", reader.id);
                record_not_composed(tx, now, ticket.id, &what, &err);
            }
        }
    }
    Ok(())
}

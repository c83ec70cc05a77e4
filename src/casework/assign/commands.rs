//! Ticket commands in a caseworker's reply (`#close`, `#spam`, `#assign`, …) and the confirmation
//! that answers them.

use crate::casework::route::{Decision, Reason};
use crate::ids::AgentId;
use crate::mail::compose::{self, Why};
use crate::model::{Actor, Event, OutboxKind, Ticket};
use crate::store::{TxResult, WriteTx};

use super::notice::record_not_composed;
use super::{Context, TeamChange, apply, enqueue};

/// Carries out ticket commands from a caseworker's reply and returns one line per command
/// saying what was done or why not. `#away` and `#back` are answered by the caller, which
/// changes the agent outside this transaction.
pub(crate) fn apply_commands(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &mut Ticket,
    actor: &AgentId,
    commands: &[crate::casework::reply::Command],
    change: &mut TeamChange,
) -> TxResult<Vec<String>> {
    use crate::casework::reply::Command;
    use crate::model::Status;
    let now = context.now;
    let mut results = Vec::new();
    for command in commands {
        let (kind, detail, line) = match command {
            Command::Note | Command::Away(_) | Command::Back | Command::Merge(_) => continue,
            Command::Close => {
                ticket.status = Status::Closed;
                (
                    "closed",
                    "closed by mail".to_owned(),
                    format!("#{} closed", ticket.id.0),
                )
            }
            Command::Reopen => {
                ticket.status = Status::Open;
                (
                    "reopened",
                    "reopened by mail".to_owned(),
                    format!("#{} reopened", ticket.id.0),
                )
            }
            Command::Spam => {
                ticket.status = Status::Spam;
                let learned = crate::casework::spam::bayes::learn_ticket(
                    tx,
                    ticket,
                    crate::casework::spam::bayes::Label::Spam,
                )?;
                let verdict = crate::casework::spam::Verdict {
                    spam: true,
                    score: 0.0,
                    reasons: vec![crate::casework::spam::Reason {
                        signal: "caseworker".to_owned(),
                        weight: 0.0,
                        detail: format!("marked as spam by {actor} with #spam"),
                    }],
                };
                tx.put_spam_record(
                    ticket.id,
                    &crate::casework::spam::held::SpamRecord { at: now, verdict },
                )?;
                (
                    "marked_spam",
                    format!("marked as spam by mail; {learned} message(s) learned as spam"),
                    format!("#{} marked as spam", ticket.id.0),
                )
            }
            Command::NotSpam => {
                if ticket.status == Status::Spam {
                    ticket.status = Status::Open;
                }
                let learned = crate::casework::spam::bayes::learn_ticket(
                    tx,
                    ticket,
                    crate::casework::spam::bayes::Label::Ham,
                )?;
                (
                    "marked_not_spam",
                    format!("marked as not spam by mail; {learned} message(s) learned as ham"),
                    format!("#{} is not spam", ticket.id.0),
                )
            }
            Command::Assign(target) => {
                let Some(agent) = context.team.agent(target) else {
                    results.push(format!("error: #assign {target}: no such caseworker"));
                    continue;
                };
                if crate::casework::admin::is_away(agent, now) {
                    results.push(format!("error: #assign {target}: {target} is away"));
                    continue;
                }
                let decision = Decision::Assign {
                    agent: target.clone(),
                    reason: Reason::CurrentOwner,
                };
                let previous = ticket.owner.clone();
                ticket.owner = None;
                apply(
                    tx,
                    context,
                    ticket,
                    &decision,
                    None,
                    &[],
                    Why::Assigned,
                    change,
                )?;
                if previous.as_ref() == Some(target) {
                    change.released = None;
                    change.assigned = None;
                } else {
                    change.released = previous;
                }
                (
                    "assigned_by_mail",
                    format!("assigned to {target} by {actor}"),
                    format!("#{} assigned to {target}", ticket.id.0),
                )
            }
        };
        tx.add_event(
            ticket,
            &Event {
                at: now,
                actor: Actor::Agent(actor.clone()),
                kind: kind.to_owned(),
                detail,
            },
        )?;
        results.push(line);
    }
    Ok(results)
}

/// Answers a caseworker's commands with what was done, to the address they wrote from (a
/// registered address: the bridge accepted the reply).
pub(crate) fn confirm(
    tx: &WriteTx<'_>,
    context: &Context<'_>,
    ticket: &Ticket,
    to: &str,
    results: &[String],
) -> TxResult<()> {
    let subject = format!("Done: {}", compose::ticket_subject(ticket));
    let body = format!("{}\n", results.join("\n"));
    match compose::plain_to(
        context.sender,
        to,
        &subject,
        body,
        "ok",
        context.nonce.wrapping_add(300),
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
            record_not_composed(tx, context.now, ticket.id, "the command confirmation", &err)
        }
    }
    Ok(())
}

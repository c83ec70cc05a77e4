//! The periodic sweep: waiting tickets assigned, overdue ones handed over, undeliverable mail
//! reported, the digest sent.

use jiff::Timestamp;

use crate::casework::mail_loops;
use crate::casework::route::{self, Decision, Reason};
use crate::casework::token::Secret;
use crate::config::{Config, Loops};
use crate::ids::{AgentId, TicketId};
use crate::mail::compose::{self, Sender, Why};
use crate::model::{Actor, Event, OutboxKind, Ticket, TicketFlag};
use crate::store::{self, Store};

use super::digest::{next_digest, send_digest_if_due};
use super::notice::record_not_composed;
use super::{Context, Team, TeamChange, apply, enqueue, previous_owner, sender, tell_coordinators};

/// What one sweep did, and when the next one is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sweep {
    pub assigned: Vec<(TicketId, AgentId)>,
    pub handed_over: Vec<(TicketId, AgentId)>,
    pub overdue_without_cover: Vec<TicketId>,
    pub digest_sent: bool,
    /// Mail that could not be delivered, now reported to the people who must act.
    pub failures_reported: usize,
    /// The earliest moment something may change (a shift starts, an answer falls due).
    pub next_due: Option<Timestamp>,
}

/// The periodic pass of the process stage: assigns waiting tickets when someone is on duty,
/// hands over tickets whose caseworker did not answer within `answer_within`, and sends the
/// daily digest. Each ticket's change is its own transaction.
pub(crate) fn sweep(
    store: &Store,
    config: &Config,
    team: &mut Team,
    secret: &Secret,
    now: Timestamp,
    nonce: u64,
) -> Result<Sweep, store::Error> {
    let helpdesk = sender(config);
    let answer_within = config.rota.answer_within;
    let mut outcome = Sweep::default();
    let mut next_due: Option<Timestamp> = None;
    let mut consider = |at: Timestamp| {
        next_due = Some(next_due.map_or(at, |due: Timestamp| due.min(at)));
    };
    let mut waiting = false;
    let mut newly_waiting = false;
    for (index, ticket) in store.active_tickets()?.into_iter().enumerate() {
        if !ticket.status.is_active() || ticket.flags.contains(&TicketFlag::Backfilled) {
            continue;
        }
        let nonce = nonce.wrapping_add((index as u64) << 8);
        match &ticket.owner {
            None => {
                let previous = previous_owner(store, &ticket.requester, Some(ticket.id))?;
                let decision = team.decide(&ticket, previous.as_ref(), None, now);
                if let Decision::Assign { agent, .. } = &decision {
                    apply_in_own_transaction(
                        store,
                        team,
                        secret,
                        &helpdesk,
                        config.loops,
                        now,
                        nonce,
                        ticket.id,
                        &decision,
                        Why::Assigned,
                    )?;
                    outcome.assigned.push((ticket.id, agent.clone()));
                } else {
                    waiting = true;
                    // A ticket handed back to routing (its caseworker stepped away or was
                    // removed) waits like a new one nobody could take: flagged, and the
                    // coordinators told once.
                    if !ticket.flags.contains(&TicketFlag::Unassigned) {
                        newly_waiting = true;
                        apply_in_own_transaction(
                            store,
                            team,
                            secret,
                            &helpdesk,
                            config.loops,
                            now,
                            nonce,
                            ticket.id,
                            &decision,
                            Why::Assigned,
                        )?;
                    }
                }
            }
            Some(owner) => {
                let Some(assigned_at) = ticket.assigned_at else {
                    continue;
                };
                if !route::is_overdue(assigned_at, ticket.last_agent_reply, answer_within, now) {
                    if let Ok(due) = assigned_at.checked_add(
                        jiff::SignedDuration::try_from(answer_within)
                            .unwrap_or(jiff::SignedDuration::MAX),
                    ) {
                        consider(due);
                    }
                    continue;
                }
                let unowned = Ticket {
                    owner: None,
                    ..ticket.clone()
                };
                let decision = team.decide(&unowned, None, Some(owner), now);
                match &decision {
                    Decision::Assign { agent, .. } => {
                        let handover = Decision::Assign {
                            agent: agent.clone(),
                            reason: Reason::Handover,
                        };
                        apply_in_own_transaction(
                            store,
                            team,
                            secret,
                            &helpdesk,
                            config.loops,
                            now,
                            nonce,
                            ticket.id,
                            &handover,
                            Why::Handover,
                        )?;
                        outcome.handed_over.push((ticket.id, agent.clone()));
                    }
                    Decision::Wait { .. } => {
                        // Nobody else can take it: tell the coordinators once per period and
                        // start the clock again rather than repeating the notice every sweep.
                        let context = Context {
                            team,
                            secret,
                            sender: &helpdesk,
                            limits: config.loops,
                            now,
                            nonce,
                        };
                        store.write(|tx| {
                            let Some(mut record) = tx.ticket(ticket.id)? else { return Ok(()) };
                            record.assigned_at = Some(now);
                            let event = Event {
                                at: now,
                                actor: Actor::System,
                                kind: "overdue".to_owned(),
                                detail: format!("no answer from {owner} in time and nobody else on duty to hand over to"),
                            };
                            tx.add_event(&mut record, &event)?;
                            tell_coordinators(tx, &context, &record, &format!("no answer from {owner} in time, nobody else on duty"))?;
                            tx.put_ticket(&record)
                        })?;
                        outcome.overdue_without_cover.push(ticket.id);
                    }
                }
            }
        }
    }
    if waiting && let Some(start) = team.rota().and_then(|r| r.next_shift_start(now)) {
        consider(start);
    }
    outcome.failures_reported =
        report_dead_letters(store, team, secret, &helpdesk, config.loops, now, nonce)?;
    outcome.digest_sent = send_digest_if_due(store, config, team, &helpdesk, now, nonce)?;
    let (hour, day) = mail_loops::windows(now);
    store.prune_loop_records(hour, day, now)?;
    if let Some(at) = next_digest(store, config, now)? {
        consider(at);
    }
    outcome.next_due = next_due;
    if !outcome.assigned.is_empty()
        || newly_waiting
        || !outcome.handed_over.is_empty()
        || outcome.digest_sent
        || outcome.failures_reported > 0
        || !outcome.overdue_without_cover.is_empty()
    {
        store.flush()?;
    }
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of one decision.
fn apply_in_own_transaction(
    store: &Store,
    team: &mut Team,
    secret: &Secret,
    helpdesk: &Sender,
    limits: Loops,
    now: Timestamp,
    nonce: u64,
    id: TicketId,
    decision: &Decision,
    why: Why,
) -> Result<(), store::Error> {
    let change = {
        let context = Context {
            team,
            secret,
            sender: helpdesk,
            limits,
            now,
            nonce,
        };
        store.write(|tx| {
            let mut change = TeamChange::default();
            let Some(mut record) = tx.ticket(id)? else {
                return Ok(change);
            };
            apply(
                tx,
                &context,
                &mut record,
                decision,
                None,
                &[],
                why,
                &mut change,
            )?;
            tx.put_ticket(&record)?;
            Ok(change)
        })?
    };
    team.committed(&change);
    Ok(())
}

/// Tells the ticket's caseworker (or, without one, the coordinators) about mail that could not
/// be delivered: a relayed answer that bounced permanently must not go unnoticed. Each dead
/// letter is reported once.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of the sweep.
fn report_dead_letters(
    store: &Store,
    team: &Team,
    secret: &Secret,
    helpdesk: &Sender,
    limits: Loops,
    now: Timestamp,
    nonce: u64,
) -> Result<usize, store::Error> {
    let mut reported = 0;
    for (index, dead) in store.dead_letters()?.into_iter().enumerate() {
        if dead.reported {
            continue;
        }
        let context = Context {
            team,
            secret,
            sender: helpdesk,
            limits,
            now,
            nonce: nonce.wrapping_add(1000 + index as u64),
        };
        store.write(|tx| {
            let mut done = dead.clone();
            done.reported = true;
            tx.put_dead_letter(&done, None)?;
            // An address the server refused for good gets nothing more for a while.
            if let Some(code) = dead.refused_code
                && mail_loops::refuses_address(code)
            {
                for recipient in &dead.entry.recipients {
                    mail_loops::suppress(
                        tx,
                        &limits,
                        recipient,
                        &format!("refused with {code}"),
                        dead.entry.ticket,
                        now,
                    )?;
                }
            }
            // Mail about mail that failed is never itself reported, so failures cannot chain.
            if dead.entry.kind != OutboxKind::Relay {
                return Ok(());
            }
            let Some(id) = dead.entry.ticket else {
                return Ok(());
            };
            let Some(ticket) = tx.ticket(id)? else {
                return Ok(());
            };
            let what = format!(
                "an answer to the requester could not be delivered: {}",
                dead.error
            );
            match ticket.owner.as_ref().and_then(|o| team.agent(o)) {
                Some(owner) => {
                    match compose::coordinator_notice(
                        helpdesk,
                        owner,
                        &ticket,
                        &what,
                        context.nonce,
                        now,
                    ) {
                        Ok(outgoing) => {
                            enqueue(
                                tx,
                                &context.limits,
                                OutboxKind::Notification,
                                Some(id),
                                &outgoing,
                                now,
                            )?;
                        }
                        Err(err) => {
                            let what = format!("the delivery failure notice to {}", owner.id);
                            record_not_composed(tx, now, id, &what, &err);
                        }
                    }
                }
                None => tell_coordinators(tx, &context, &ticket, &what)?,
            }
            Ok(())
        })?;
        reported += 1;
    }
    Ok(reported)
}

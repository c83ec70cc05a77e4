//! Casework glue: applies routing decisions to tickets and queues the mail that goes with them
//! (the notification to the caseworker, notices to coordinators), inside the same store
//! transaction as the ticket change.
//!
//! The routing rules themselves are the pure `route` module; this module keeps the process
//! stage's picture of the team (agents, rota, caseloads) and turns a decision into records.
//! It must not speak IMAP or SMTP: mail goes to the outbox, and `smtp` sends it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use tracing::warn;

use crate::casework::gate;
use crate::casework::mail_loops::{self, Admission};
use crate::casework::rota::{self, Rota};
use crate::casework::route::{self, Candidate, Decision, Reason, Request};
use crate::casework::token::Secret;
use crate::config::Config;
use crate::config::Loops;
use crate::ids::{AgentId, TicketId};
use crate::mail::compose::{self, AttachmentBytes, Outgoing, Sender, Why};
use crate::model::{
    Actor, Agent, DeadLetter, Event, OutboxEntry, OutboxKind, Role, StoredMessage, Ticket,
    TicketFlag,
};
use crate::store::{self, Store, TxResult, WriteTx};

/// The process stage's view of the team. Loaded once at start and kept in step with every
/// assignment the process stage makes (it is the only writer).
#[derive(Debug, Clone)]
pub struct Team {
    agents: BTreeMap<AgentId, Agent>,
    rota: Option<Rota>,
    open: BTreeMap<AgentId, u32>,
    sequence: u64,
    /// Set when tickets went back to routing outside a sweep, so the next sweep comes at once.
    sweep_requested: bool,
}

/// What applying a decision did, for logs and the caller's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Assigned(AgentId, Reason),
    Waiting,
    NotRouted,
}

impl Team {
    /// Loads the agents and the stored rota, whose times are in `timezone` (`rota.timezone`).
    pub fn load(store: &Store, timezone: &jiff::tz::TimeZone) -> Result<Team, store::Error> {
        let agents: BTreeMap<AgentId, Agent> = store
            .agents()?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let rota = match store.rota()? {
            None => None,
            Some(text) => match rota::parse(&text, timezone) {
                Ok(rota) => Some(rota),
                Err(err) => {
                    warn!(error = %err, "The stored rota is not valid; nobody is on duty until it is imported again.");
                    None
                }
            },
        };
        let mut open = BTreeMap::new();
        for ticket in store.active_tickets()? {
            if let (true, Some(owner)) = (ticket.status.is_active(), ticket.owner.as_ref()) {
                *open.entry(owner.clone()).or_insert(0u32) += 1;
            }
        }
        let sequence = agents
            .values()
            .filter_map(|a| a.last_assigned)
            .max()
            .unwrap_or(0);
        Ok(Team {
            agents,
            rota,
            open,
            sequence,
            sweep_requested: false,
        })
    }

    /// Whether `other` has different agents (names, addresses, roles, caps, away) or a
    /// different rota. Caseloads and the round-robin order are not compared: they change with
    /// every assignment.
    pub fn roster_differs(&self, other: &Team) -> bool {
        fn roster(team: &Team) -> (Vec<Agent>, Option<String>) {
            let agents = team
                .agents
                .values()
                .map(|a| Agent {
                    last_assigned: None,
                    ..a.clone()
                })
                .collect();
            (agents, team.rota.as_ref().map(Rota::to_toml))
        }
        roster(self) != roster(other)
    }

    /// Asks for a sweep as soon as possible (tickets went back to routing).
    pub fn request_sweep(&mut self) {
        self.sweep_requested = true;
    }

    /// Whether a sweep was asked for since the last call.
    pub fn take_sweep_request(&mut self) -> bool {
        std::mem::take(&mut self.sweep_requested)
    }

    pub fn rota(&self) -> Option<&Rota> {
        self.rota.as_ref()
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn candidates(&self, now: Timestamp) -> Vec<Candidate> {
        self.agents
            .values()
            .map(|a| {
                Candidate::new(
                    a,
                    self.open.get(&a.id).copied().unwrap_or(0),
                    a.last_assigned,
                    now,
                )
            })
            .collect()
    }

    /// Coordinators who are not away, to be told about tickets nobody could take.
    pub fn coordinators(&self, now: Timestamp) -> Vec<&Agent> {
        route::coordinators(&self.candidates(now))
            .iter()
            .filter_map(|id| self.agents.get(id))
            .collect()
    }

    /// Decides who gets a ticket. `previous_owner` is the requester's last caseworker.
    pub fn decide(
        &self,
        ticket: &Ticket,
        previous_owner: Option<&AgentId>,
        exclude: Option<&AgentId>,
        now: Timestamp,
    ) -> Decision {
        let Some(rota) = &self.rota else {
            return Decision::Wait { until: None };
        };
        let request = Request {
            previous_owner,
            current_owner: ticket.owner.as_ref(),
            exclude,
        };
        route::route(&request, &self.candidates(now), rota, now)
    }

    /// Records in memory what a committed transaction did.
    pub fn committed(&mut self, change: &TeamChange) {
        if let Some(old) = &change.released
            && let Some(count) = self.open.get_mut(old)
        {
            *count = count.saturating_sub(1);
        }
        if let Some((agent, sequence)) = &change.assigned {
            *self.open.entry(agent.clone()).or_insert(0) += 1;
            self.sequence = self.sequence.max(*sequence);
            if let Some(record) = self.agents.get_mut(agent) {
                record.last_assigned = Some(*sequence);
            }
        }
    }

    pub fn next_sequence(&self) -> u64 {
        self.sequence.saturating_add(1)
    }
}

/// A change to caseloads made by one transaction, applied to [`Team`] after it committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamChange {
    pub assigned: Option<(AgentId, u64)>,
    pub released: Option<AgentId>,
    /// Agents changed in ways only a reload shows (away, back).
    pub reload: bool,
}

/// The caseworker the requester had most recently on another ticket.
pub fn previous_owner(
    store: &Store,
    requester: &str,
    except: Option<TicketId>,
) -> Result<Option<AgentId>, store::Error> {
    for id in store.tickets_of_requester(requester)?.into_iter().rev() {
        if Some(id) == except {
            continue;
        }
        if let Some(ticket) = store.ticket(id)?
            && let Some(owner) = ticket.owner
        {
            return Ok(Some(owner));
        }
    }
    Ok(None)
}

pub fn sender(config: &Config) -> Sender {
    Sender {
        address: config.helpdesk.address.clone(),
        name: config.helpdesk.name.clone(),
    }
}

/// Puts a composed message in the outbox, tied to its ticket, when loop safety lets it go
/// (`mail_loops::admit`: suppressed addresses, caps on automatic mail). Returns the outbox id, or
/// `None` when the message was held back; the ticket then records why. A caseworker's answer
/// to a suppressed address is not dropped: it is kept as a dead letter with its bytes, and the
/// sweep tells the caseworker, as for any answer that cannot be delivered.
pub fn enqueue(
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
enum Queued {
    /// In the outbox, under this id.
    Outbox(u64),
    /// Kept as a dead letter under this id, never sent (a caseworker's answer to a suppressed
    /// address), and why.
    DeadLetter { id: u64, reason: String },
    /// Not kept (automatic mail over a cap or to a suppressed address); the ticket says why.
    HeldBack,
}

/// [`enqueue`], saying what became of the message.
fn queue(
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

/// Everything `apply` needs besides the ticket.
pub struct Context<'a> {
    pub team: &'a Team,
    pub secret: &'a Secret,
    pub sender: &'a Sender,
    /// Caps and suppression every queued message passes (`[loops]`).
    pub limits: Loops,
    pub now: Timestamp,
    /// Randomness for Message-IDs, drawn outside the transaction so a retried transaction
    /// composes the same messages.
    pub nonce: u64,
}

/// Applies a routing decision to `ticket` inside a transaction: owner, events, the
/// notification to the new owner (with `message` and its files), notices to coordinators.
/// The caller writes the ticket back.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of one decision.
pub fn apply(
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

pub fn tell_coordinators(
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

/// What one sweep did, and when the next one is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
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
pub fn sweep(
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

/// The moment today's digest is due, in the configured time zone.
fn digest_time_on(config: &Config, day: jiff::civil::Date) -> Option<Timestamp> {
    day.to_datetime(config.rota.digest_at)
        .to_zoned(config.rota.timezone.clone())
        .ok()
        .map(|z| z.timestamp())
}

fn today(config: &Config, now: Timestamp) -> Option<jiff::civil::Date> {
    Some(now.to_zoned(config.rota.timezone.clone()).date())
}

fn next_digest(
    store: &Store,
    config: &Config,
    now: Timestamp,
) -> Result<Option<Timestamp>, store::Error> {
    let Some(day) = today(config, now) else {
        return Ok(None);
    };
    let sent_today = store.last_digest()?.as_deref() == Some(day.to_string().as_str());
    let due_today = digest_time_on(config, day);
    Ok(match due_today {
        Some(due) if !sent_today && due > now => Some(due),
        _ => day.tomorrow().ok().and_then(|d| digest_time_on(config, d)),
    })
}

fn send_digest_if_due(
    store: &Store,
    config: &Config,
    team: &Team,
    helpdesk: &Sender,
    now: Timestamp,
    nonce: u64,
) -> Result<bool, store::Error> {
    let Some(day) = today(config, now) else {
        return Ok(false);
    };
    let Some(due) = digest_time_on(config, day) else {
        return Ok(false);
    };
    let day_text = day.to_string();
    if now < due || store.last_digest()?.as_deref() == Some(day_text.as_str()) {
        return Ok(false);
    }
    let body = digest_text(store, config, team, now)?;
    let subject = format!("casemail digest for {day_text}");
    let coordinators = team.coordinators(now);
    store.write(|tx| {
        for (index, coordinator) in coordinators.iter().enumerate() {
            let Some(to) = coordinator.emails.first() else {
                continue;
            };
            match compose::plain_to(
                helpdesk,
                to,
                &subject,
                body.clone(),
                "digest",
                nonce.wrapping_add(index as u64),
                now,
            ) {
                Ok(outgoing) => {
                    enqueue(tx, &config.loops, OutboxKind::Digest, None, &outgoing, now)?;
                }
                Err(err) => {
                    warn!(agent = %coordinator.id, error = %err, "Cannot compose the digest.")
                }
            }
        }
        tx.set_last_digest(&day_text)
    })?;
    Ok(true)
}

/// The daily digest: caseloads, overdue and unassigned tickets, spam held. Ticket numbers and
/// subjects only; no requester text.
pub fn digest_text(
    store: &Store,
    config: &Config,
    team: &Team,
    now: Timestamp,
) -> Result<String, store::Error> {
    let tickets = store.active_tickets()?;
    let mut out = String::from("Open tickets per caseworker:\n");
    for candidate in team.candidates(now) {
        let open = tickets
            .iter()
            .filter(|t| t.status.is_active() && t.owner.as_ref() == Some(&candidate.id))
            .count();
        let cap = candidate
            .max_open
            .map_or(String::new(), |cap| format!(" of {cap}"));
        let away = if candidate.away { " (away)" } else { "" };
        out.push_str(&format!("  {:<16} {open}{cap}{away}\n", candidate.id.0));
    }
    let overdue: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| t.status.is_active())
        .filter(|t| match (t.owner.as_ref(), t.assigned_at) {
            (Some(_), Some(at)) => {
                route::is_overdue(at, t.last_agent_reply, config.rota.answer_within, now)
            }
            _ => false,
        })
        .collect();
    let unassigned: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| {
            t.status.is_active() && t.owner.is_none() && !t.flags.contains(&TicketFlag::Backfilled)
        })
        .collect();
    let spam = store
        .ticket_figures()?
        .by_status
        .get(crate::model::Status::Spam.as_str())
        .copied()
        .unwrap_or(0);
    for (title, list) in [
        ("Unanswered past the answer time", &overdue),
        ("Unassigned", &unassigned),
    ] {
        out.push_str(&format!("\n{title}: {}\n", list.len()));
        for t in list.iter().take(50) {
            out.push_str(&format!(
                "  {}  ({})\n",
                compose::ticket_subject(t),
                t.owner.as_ref().map_or("nobody", |o| o.0.as_str())
            ));
        }
    }
    out.push_str(&format!("\nHeld as spam: {spam}\n"));
    Ok(out)
}

#[cfg(test)]
mod tests;

/// What the relay gate must keep from the requester on `ticket`: every registered caseworker
/// address, the reply token of the agent answering, and the names the operator listed
/// (`[helpdesk] hide_names`).
pub fn secrets(
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
pub enum Relayed {
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
pub fn relay_reply(
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
pub fn hold_reply(
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

/// Records that casemail could not compose mail about a ticket (an address the mail builder
/// refuses): an event on the ticket and a notice to the coordinators. Composing never stops
/// the process stage; the message that caused it is filed as usual. The log line carries no
/// address.
pub fn not_composed(
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
fn record_not_composed(
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
pub fn refuse_reply(
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
pub fn internal_note(
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

/// Carries out ticket commands from a caseworker's reply and returns one line per command
/// saying what was done or why not. `#away` and `#back` are answered by the caller, which
/// changes the agent outside this transaction.
pub fn apply_commands(
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
pub fn confirm(
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

/// A coordinator's `ticket assign N AGENT`: gives the ticket to the agent and sends them the
/// notification, as routing would.
pub fn assign_by_coordinator(
    store: &Store,
    config: &Config,
    ticket: TicketId,
    agent: &AgentId,
    now: Timestamp,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let team = Team::load(store, &config.rota.timezone)?;
    let record = team
        .agent(agent)
        .with_context(|| format!("no agent {agent}"))?;
    if crate::casework::admin::is_away(record, now) {
        anyhow::bail!("agent {agent} is away");
    }
    let ticket = crate::casework::admin::resolve_merged(store, ticket)?;
    let secret = Secret::load_or_create(&config.helpdesk.state_dir)?;
    let helpdesk = sender(config);
    let context = Context {
        team: &team,
        secret: &secret,
        sender: &helpdesk,
        limits: config.loops,
        now,
        nonce: rand::random(),
    };
    let found = store.write(|tx| {
        let Some(mut record) = tx.ticket(ticket)? else {
            return Ok(false);
        };
        let mut change = TeamChange::default();
        record.owner = None;
        let decision = Decision::Assign {
            agent: agent.clone(),
            reason: Reason::CurrentOwner,
        };
        apply(
            tx,
            &context,
            &mut record,
            &decision,
            None,
            &[],
            Why::Assigned,
            &mut change,
        )?;
        tx.put_ticket(&record)?;
        Ok(true)
    })?;
    if !found {
        anyhow::bail!("no ticket #{}", ticket.0);
    }
    store.flush()?;
    Ok(())
}

/// A coordinator's `ticket close N` / `ticket reopen N`.
pub fn set_status_by_coordinator(
    store: &Store,
    ticket: TicketId,
    status: crate::model::Status,
    now: Timestamp,
) -> anyhow::Result<()> {
    let ticket = crate::casework::admin::resolve_merged(store, ticket)?;
    let found = store.write(|tx| {
        let Some(mut record) = tx.ticket(ticket)? else {
            return Ok(false);
        };
        record.status = status;
        record.updated = now;
        let event = Event {
            at: now,
            actor: Actor::System,
            kind: status.as_str().to_owned(),
            detail: format!("set to {status} from the command line"),
        };
        tx.add_event(&mut record, &event)?;
        tx.put_ticket(&record)?;
        Ok(true)
    })?;
    if !found {
        anyhow::bail!("no ticket #{}", ticket.0);
    }
    store.flush()?;
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

/// A delivery report (RFC 3464) for mail casemail sent: the ticket it belongs to, found by the
/// Message-ID of the original that the report quotes, and every Message-ID of casemail's own
/// mail about that ticket the report quotes (the ticket as the index names it, before merges).
pub fn bounced_ticket(
    store: &Store,
    raw: &[u8],
) -> Result<Option<(TicketId, Vec<crate::ids::MessageId>)>, store::Error> {
    let text = String::from_utf8_lossy(raw);
    let mut found: Option<(TicketId, Vec<crate::ids::MessageId>)> = None;
    for id in bounce_candidates(&text) {
        if let Some(ticket) = store.find_message_id(&id)? {
            match &mut found {
                None => found = Some((ticket, vec![id])),
                Some((first, ids)) if *first == ticket && !ids.contains(&id) => ids.push(id),
                Some(_) => {}
            }
        }
    }
    Ok(found)
}

/// At most this many `casemail.…` ids of a delivery report are looked up: the report quotes one
/// original, and the domain of a help address may itself start with `casemail.`.
const MAX_BOUNCE_CANDIDATES: usize = 256;

/// The Message-IDs casemail could have made that `text` holds, in order: linear in the text,
/// since each is looked for only as far as a Message-ID may reach, and bounded in number.
fn bounce_candidates(text: &str) -> impl Iterator<Item = crate::ids::MessageId> + '_ {
    let max_len = crate::ids::MessageId::MAX_LEN;
    text.match_indices("casemail.")
        .take(MAX_BOUNCE_CANDIDATES)
        .filter_map(move |(start, _)| {
            let tail = text.get(start..).unwrap_or("");
            let (end, _) = tail
                .char_indices()
                .take(max_len.saturating_add(1))
                .find(|&(_, c)| c == '>' || c.is_whitespace())?;
            tail.get(..end).and_then(crate::ids::MessageId::parse)
        })
}

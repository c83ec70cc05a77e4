//! Coordinator operations on the store: registering agents, letting them step away and come
//! back, removing them. Nobody registers themselves; these run from the CLI, on the store or,
//! while the daemon runs, in the daemon through the control socket.
//!
//! Validation lives here so every entry point applies the same rules. This module must not
//! speak IMAP or SMTP.

use std::str::FromStr as _;

use jiff::Timestamp;

use crate::ids::{AgentId, TicketId};
use crate::model::{Actor, Agent, Away, Event, Role};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("agent id {0:?} is not valid: {rule}", rule = AgentId::RULE)]
    InvalidId(String),
    #[error("address {address:?} is not valid: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("address {address} already belongs to agent {agent}")]
    AddressTaken { address: String, agent: AgentId },
    #[error("address {0} is the helpdesk's own address and cannot be an agent's")]
    HelpdeskAddress(String),
    #[error("an agent needs at least one address")]
    NoAddress,
    #[error("agent name must not be empty or contain control characters")]
    InvalidName,
    #[error("agent {0} already exists")]
    AgentExists(AgentId),
    #[error("no agent {0}")]
    UnknownAgent(AgentId),
    #[error("address {address} is not one of agent {agent}'s addresses")]
    NotTheirAddress { address: String, agent: AgentId },
    #[error("address {address} is agent {agent}'s only address; add another one first")]
    LastAddress { address: String, agent: AgentId },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What a coordinator gives to register an agent.
#[derive(Debug, Clone)]
pub(crate) struct NewAgent {
    pub id: String,
    pub name: String,
    pub emails: Vec<String>,
    pub role: Role,
    pub max_open: Option<u32>,
}

/// Validates an address with the same rules the SMTP layer applies, and lower-cases it.
pub(crate) fn normalise_address(address: &str) -> Result<String, Error> {
    let trimmed = address.trim();
    lettre::Address::from_str(trimmed).map_err(|err| Error::InvalidAddress {
        address: trimmed.to_owned(),
        reason: err.to_string(),
    })?;
    if !crate::mail::parse::is_sendable(trimmed) {
        return Err(Error::InvalidAddress {
            address: trimmed.to_owned(),
            reason: "casemail cannot build a message to it".to_owned(),
        });
    }
    Ok(trimmed.to_lowercase())
}

pub(crate) fn add_agent(
    store: &Store,
    helpdesk_address: &str,
    new: NewAgent,
    now: Timestamp,
) -> Result<Agent, Error> {
    if !AgentId::is_valid(&new.id) {
        return Err(Error::InvalidId(new.id));
    }
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::InvalidName);
    }
    let mut emails = Vec::new();
    for address in &new.emails {
        let address = normalise_address(address)?;
        if address == helpdesk_address {
            return Err(Error::HelpdeskAddress(address));
        }
        if !emails.contains(&address) {
            emails.push(address);
        }
    }
    if emails.is_empty() {
        return Err(Error::NoAddress);
    }
    let id = AgentId(new.id);
    for other in store.agents()? {
        if other.id == id {
            return Err(Error::AgentExists(id));
        }
        if let Some(address) = emails.iter().find(|a| other.emails.contains(a)) {
            return Err(Error::AddressTaken {
                address: address.clone(),
                agent: other.id,
            });
        }
    }
    let agent = Agent {
        id,
        name,
        emails,
        role: new.role,
        max_open: new.max_open,
        away: None,
        created: now,
        last_assigned: None,
    };
    store.write(|tx| tx.put_agent(&agent))?;
    store.flush()?;
    Ok(agent)
}

fn existing(store: &Store, id: &AgentId) -> Result<Agent, Error> {
    store
        .agent(id)?
        .ok_or_else(|| Error::UnknownAgent(id.clone()))
}

/// Removes an agent; their open tickets go back to routing.
pub(crate) fn remove_agent(
    store: &Store,
    id: &AgentId,
    now: Timestamp,
) -> Result<Vec<TicketId>, Error> {
    existing(store, id)?;
    let released = release_tickets(store, id, now, "agent removed")?;
    store.write(|tx| tx.remove_agent(id))?;
    store.flush()?;
    Ok(released)
}

/// Marks an agent away (until a time, or until they come back); their open tickets go back to
/// routing so nobody waits on someone who is not there.
/// What `agent edit` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentEdit {
    pub name: Option<String>,
    pub max_open: Option<u32>,
    pub role: Option<Role>,
}

/// Changes an agent's name, cap or role in place. Their tickets stay with them: a lower cap
/// only limits what they are given next.
pub(crate) fn edit_agent(store: &Store, id: &AgentId, edit: AgentEdit) -> Result<Agent, Error> {
    let mut agent = existing(store, id)?;
    if let Some(name) = edit.name {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(Error::InvalidName);
        }
        agent.name = name;
    }
    if let Some(max_open) = edit.max_open {
        agent.max_open = Some(max_open);
    }
    if let Some(role) = edit.role {
        agent.role = role;
    }
    store.write(|tx| tx.put_agent(&agent))?;
    store.flush()?;
    Ok(agent)
}

/// Adds an address an agent receives tickets at and replies from, with the checks of
/// `agent add`; their tickets stay with them. The first address keeps receiving notifications.
pub(crate) fn add_address(
    store: &Store,
    helpdesk_address: &str,
    id: &AgentId,
    address: &str,
) -> Result<Agent, Error> {
    let mut agent = existing(store, id)?;
    let address = normalise_address(address)?;
    if address == helpdesk_address {
        return Err(Error::HelpdeskAddress(address));
    }
    for other in store.agents()? {
        if other.emails.contains(&address) {
            return Err(Error::AddressTaken {
                address,
                agent: other.id,
            });
        }
    }
    agent.emails.push(address);
    store.write(|tx| tx.put_agent(&agent))?;
    store.flush()?;
    Ok(agent)
}

/// Removes one of an agent's addresses (never the last); their tickets stay with them. Mail
/// from the removed address is no longer taken as theirs.
pub(crate) fn remove_address(store: &Store, id: &AgentId, address: &str) -> Result<Agent, Error> {
    let mut agent = existing(store, id)?;
    let address = address.trim().to_lowercase();
    if !agent.emails.contains(&address) {
        return Err(Error::NotTheirAddress {
            address,
            agent: agent.id,
        });
    }
    if agent.emails.len() == 1 {
        return Err(Error::LastAddress {
            address,
            agent: agent.id,
        });
    }
    agent.emails.retain(|e| *e != address);
    store.write(|tx| tx.put_agent(&agent))?;
    store.flush()?;
    Ok(agent)
}

pub(crate) fn set_away(
    store: &Store,
    id: &AgentId,
    until: Option<Timestamp>,
    now: Timestamp,
) -> Result<Vec<TicketId>, Error> {
    let mut agent = existing(store, id)?;
    agent.away = Some(Away { until });
    store.write(|tx| tx.put_agent(&agent))?;
    let released = release_tickets(store, id, now, "agent away")?;
    store.flush()?;
    Ok(released)
}

pub(crate) fn set_back(store: &Store, id: &AgentId) -> Result<Agent, Error> {
    let mut agent = existing(store, id)?;
    agent.away = None;
    store.write(|tx| tx.put_agent(&agent))?;
    store.flush()?;
    Ok(agent)
}

/// Whether an agent is away at `now` (an away period with an end date ends by itself).
pub(crate) fn is_away(agent: &Agent, now: Timestamp) -> bool {
    match agent.away {
        None => false,
        Some(Away { until: None }) => true,
        Some(Away { until: Some(until) }) => now < until,
    }
}

/// Open tickets owned by the agent, and how many there are.
pub(crate) fn open_tickets_of(store: &Store, id: &AgentId) -> Result<Vec<TicketId>, Error> {
    Ok(store
        .active_tickets()?
        .into_iter()
        .filter(|t| t.status.is_active() && t.owner.as_ref() == Some(id))
        .map(|t| t.id)
        .collect())
}

fn release_tickets(
    store: &Store,
    id: &AgentId,
    now: Timestamp,
    why: &str,
) -> Result<Vec<TicketId>, Error> {
    let owned = open_tickets_of(store, id)?;
    for ticket_id in &owned {
        store.write(|tx| {
            if let Some(mut ticket) = tx.ticket(*ticket_id)? {
                ticket.owner = None;
                let event = Event {
                    at: now,
                    actor: Actor::System,
                    kind: "unassigned".to_owned(),
                    detail: format!("{why}: {id}; back to routing"),
                };
                tx.add_event(&mut ticket, &event)?;
                tx.put_ticket(&ticket)?;
            }
            Ok(())
        })?;
    }
    Ok(owned)
}

#[cfg(test)]
mod tests;

/// Why a merge was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MergeError {
    #[error("no ticket #{0}")]
    NoTicket(TicketId),
    #[error("a ticket cannot be merged into itself")]
    Same,
    #[error("ticket #{0} was already merged into #{1}")]
    AlreadyMerged(TicketId, TicketId),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Follows merges: the ticket mail for `id` belongs to now.
pub(crate) fn resolve_merged(store: &Store, id: TicketId) -> Result<TicketId, store::Error> {
    let mut current = id;
    // A chain longer than this would mean a cycle, which merge refuses to create.
    for _ in 0..16 {
        match store.ticket(current)?.and_then(|t| t.merged_into) {
            Some(next) => current = next,
            None => return Ok(current),
        }
    }
    Ok(current)
}

/// Merges ticket `from` into `into` in one transaction: its messages (with raw bytes) and
/// events move over in order, the indexes follow, and `from` is closed with a pointer so future
/// mail for it joins `into`.
pub(crate) fn merge_tickets(
    tx: &store::WriteTx<'_>,
    from: TicketId,
    into: TicketId,
    actor: Actor,
    now: Timestamp,
) -> Result<(), store::TxError> {
    let missing = |id| store::TxError::from(store::Error::Inconsistent(format!("no ticket #{id}")));
    let mut source = tx.ticket(from)?.ok_or_else(|| missing(from))?;
    let mut target = tx.ticket(into)?.ok_or_else(|| missing(into))?;
    for seq in 0..source.message_count {
        let Some(mut message) = tx.message(from, seq)? else {
            continue;
        };
        let raw = tx.raw(from, seq)?;
        tx.remove_message(from, seq)?;
        message.ticket = into;
        message.seq = target.message_count;
        tx.put_message(&message, raw.as_deref())?;
        target.message_count = target.message_count.saturating_add(1);
    }
    for seq in 0..source.event_count {
        let Some(mut event) = tx.event(from, seq)? else {
            continue;
        };
        tx.remove_event(from, seq)?;
        event.detail = format!("(from #{}) {}", from.0, event.detail);
        tx.add_event(&mut target, &event)?;
    }
    target
        .participants
        .extend(source.participants.iter().cloned());
    target.flags.extend(source.flags.iter().copied());
    target.updated = now;
    if !target.status.is_active() && source.status.is_active() {
        target.status = crate::model::Status::Open;
    }
    tx.index_requester(&source.requester, into)?;
    let merged = Event {
        at: now,
        actor: actor.clone(),
        kind: "merged".to_owned(),
        detail: format!("#{} merged into this ticket", from.0),
    };
    tx.add_event(&mut target, &merged)?;
    tx.put_ticket(&target)?;
    source.message_count = 0;
    source.event_count = 0;
    source.status = crate::model::Status::Closed;
    source.merged_into = Some(into);
    source.owner = None;
    source.updated = now;
    let pointer = Event {
        at: now,
        actor,
        kind: "merged_into".to_owned(),
        detail: format!("merged into #{}", into.0),
    };
    tx.add_event(&mut source, &pointer)?;
    tx.put_ticket(&source)?;
    Ok(())
}

/// The CLI's `ticket merge A B`: checks, then [`merge_tickets`].
pub(crate) fn merge(
    store: &Store,
    from: TicketId,
    into: TicketId,
    now: Timestamp,
) -> Result<(), MergeError> {
    if from == into {
        return Err(MergeError::Same);
    }
    let source = store.ticket(from)?.ok_or(MergeError::NoTicket(from))?;
    if let Some(already) = source.merged_into {
        return Err(MergeError::AlreadyMerged(from, already));
    }
    let target = resolve_merged(store, into)?;
    if store.ticket(target)?.is_none() {
        return Err(MergeError::NoTicket(into));
    }
    if target == from {
        return Err(MergeError::Same);
    }
    store.write(|tx| merge_tickets(tx, from, target, Actor::System, now))?;
    store.flush()?;
    Ok(())
}

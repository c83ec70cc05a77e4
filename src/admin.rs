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
pub enum Error {
    #[error("agent id {0:?} is not valid: use 1 to 32 lower-case letters, digits, '-', '_' or '.'")]
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
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What a coordinator gives to register an agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: String,
    pub name: String,
    pub emails: Vec<String>,
    pub role: Role,
    pub max_open: Option<u32>,
}

/// Validates an address with the same rules the SMTP layer applies, and lower-cases it.
pub fn normalise_address(address: &str) -> Result<String, Error> {
    let trimmed = address.trim();
    lettre::Address::from_str(trimmed).map_err(|err| Error::InvalidAddress {
        address: trimmed.to_owned(),
        reason: err.to_string(),
    })?;
    Ok(trimmed.to_lowercase())
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

pub fn add_agent(
    store: &Store,
    helpdesk_address: &str,
    new: NewAgent,
    now: Timestamp,
) -> Result<Agent, Error> {
    if !valid_id(&new.id) {
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
pub fn remove_agent(store: &Store, id: &AgentId, now: Timestamp) -> Result<Vec<TicketId>, Error> {
    existing(store, id)?;
    let released = release_tickets(store, id, now, "agent removed")?;
    store.write(|tx| tx.remove_agent(id))?;
    store.flush()?;
    Ok(released)
}

/// Marks an agent away (until a time, or until they come back); their open tickets go back to
/// routing so nobody waits on someone who is not there.
pub fn set_away(
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

pub fn set_back(store: &Store, id: &AgentId) -> Result<Agent, Error> {
    let mut agent = existing(store, id)?;
    agent.away = None;
    store.write(|tx| tx.put_agent(&agent))?;
    store.flush()?;
    Ok(agent)
}

/// Whether an agent is away at `now` (an away period with an end date ends by itself).
pub fn is_away(agent: &Agent, now: Timestamp) -> bool {
    match agent.away {
        None => false,
        Some(Away { until: None }) => true,
        Some(Away { until: Some(until) }) => now < until,
    }
}

/// Open tickets owned by the agent, and how many there are.
pub fn open_tickets_of(store: &Store, id: &AgentId) -> Result<Vec<TicketId>, Error> {
    Ok(store
        .tickets()?
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

//! The process stage's picture of the team: agents, the rota and open caseloads, kept in step
//! with every assignment, and who gets a ticket by the pure `route` rules.

use std::collections::BTreeMap;

use jiff::Timestamp;
use tracing::warn;

use crate::casework::rota::{self, Rota};
use crate::casework::route::{self, Candidate, Decision, Request};
use crate::ids::{AgentId, TicketId};
use crate::model::{Agent, Ticket};
use crate::store::{self, Store};

/// The process stage's view of the team. Loaded once at start and kept in step with every
/// assignment the process stage makes (it is the only writer).
#[derive(Debug, Clone)]
pub(crate) struct Team {
    agents: BTreeMap<AgentId, Agent>,
    rota: Option<Rota>,
    open: BTreeMap<AgentId, u32>,
    sequence: u64,
    /// Set when tickets went back to routing outside a sweep, so the next sweep comes at once.
    sweep_requested: bool,
}

impl Team {
    /// Loads the agents and the stored rota, whose times are in `timezone` (`rota.timezone`).
    pub(crate) fn load(store: &Store, timezone: &jiff::tz::TimeZone) -> Result<Team, store::Error> {
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
    pub(crate) fn roster_differs(&self, other: &Team) -> bool {
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
    pub(crate) fn request_sweep(&mut self) {
        self.sweep_requested = true;
    }

    /// Whether a sweep was asked for since the last call.
    pub(crate) fn take_sweep_request(&mut self) -> bool {
        std::mem::take(&mut self.sweep_requested)
    }

    pub(crate) fn rota(&self) -> Option<&Rota> {
        self.rota.as_ref()
    }

    pub(crate) fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub(crate) fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub(crate) fn candidates(&self, now: Timestamp) -> Vec<Candidate> {
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
    pub(crate) fn coordinators(&self, now: Timestamp) -> Vec<&Agent> {
        route::coordinators(&self.candidates(now))
            .iter()
            .filter_map(|id| self.agents.get(id))
            .collect()
    }

    /// Decides who gets a ticket. `previous_owner` is the requester's last caseworker.
    pub(crate) fn decide(
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
    pub(crate) fn committed(&mut self, change: &TeamChange) {
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

    pub(crate) fn next_sequence(&self) -> u64 {
        self.sequence.saturating_add(1)
    }
}

/// A change to caseloads made by one transaction, applied to [`Team`] after it committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TeamChange {
    pub assigned: Option<(AgentId, u64)>,
    pub released: Option<AgentId>,
    /// Agents changed in ways only a reload shows (away, back).
    pub reload: bool,
}

/// The caseworker the requester had most recently on another ticket.
pub(crate) fn previous_owner(
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

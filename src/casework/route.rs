//! Routing: which caseworker gets a ticket, and when an assigned ticket must be handed over.
//!
//! This module owns the rules; it must not do I/O or read a clock. The caller gathers the facts
//! (the agents with their caseloads, the rota, the current instant), calls [`route`], and records
//! the [`Decision`]: it assigns the ticket, or keeps it waiting and tells the coordinators
//! ([`coordinators`]). Because the whole decision is a function of its arguments, the same inputs
//! always give the same agent, and the tests drive it over an injected `now`.
//!
//! The rules, first match wins:
//!
//! 1. A follow-up stays with the ticket's current owner, unless the owner is away, is being
//!    handed over from, or is no longer registered. Duty hours and caps do not apply: the ticket
//!    is already theirs and already counted in their caseload.
//! 2. The requester's previous caseworker, if eligible: one person, one caseworker.
//! 3. The eligible agent with the fewest open tickets; ties go to whoever was assigned a ticket
//!    longest ago (never first), then to the smaller id, so that agents with equal shifts take
//!    turns.
//! 4. Nobody is eligible: the ticket waits until the next agent comes on duty.
//!
//! An agent is eligible when they are on duty at `now` by the rota, not away, below their cap
//! (`max_open`), and not the agent a handover is taking the ticket from. Roles do not matter for
//! eligibility: a coordinator on the rota takes tickets like anyone else.

use std::time::Duration;

use jiff::Timestamp;

use crate::casework::rota::Rota;
use crate::ids::AgentId;
use crate::model::{Agent, Away, Role};

#[cfg(test)]
mod tests;

/// One registered agent as routing sees them at the moment of the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub id: AgentId,
    pub role: Role,
    /// Most open tickets the agent is given at once; `None` means no cap.
    pub max_open: Option<u32>,
    /// Stepped away at the moment of the decision.
    pub away: bool,
    pub open_tickets: u32,
    /// The caller's sequence number of the agent's latest assignment (it only grows, so smaller
    /// means longer ago); `None` if the agent has never been assigned a ticket.
    pub last_assigned: Option<u64>,
}

impl Candidate {
    /// The candidate for a registered agent, with their caseload, at `now`.
    pub(crate) fn new(
        agent: &Agent,
        open_tickets: u32,
        last_assigned: Option<u64>,
        now: Timestamp,
    ) -> Candidate {
        let away = match agent.away {
            None => false,
            Some(Away { until: None }) => true,
            Some(Away { until: Some(back) }) => now < back,
        };
        Candidate {
            id: agent.id.clone(),
            role: agent.role,
            max_open: agent.max_open,
            away,
            open_tickets,
            last_assigned,
        }
    }

    /// Records that this candidate was just given a ticket, as the caller's store does, so that
    /// a batch of tickets routed in one go spreads fairly.
    #[cfg(test)]
    pub(crate) fn assigned(&mut self, sequence: u64) {
        self.open_tickets = self.open_tickets.saturating_add(1);
        self.last_assigned = Some(sequence);
    }

    fn has_room(&self) -> bool {
        self.max_open.is_none_or(|cap| self.open_tickets < cap)
    }
}

/// What is known about the ticket being routed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    /// The caseworker of the requester's most recent earlier ticket.
    pub previous_owner: Option<&'a AgentId>,
    /// The ticket's owner, when a follow-up arrives on an owned ticket.
    pub current_owner: Option<&'a AgentId>,
    /// The agent a handover takes the ticket from; they are not chosen again.
    pub exclude: Option<&'a AgentId>,
}

/// Where a ticket goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Assign {
        agent: AgentId,
        reason: Reason,
    },
    /// Nobody can take the ticket now. `until` is when the next agent comes on duty, the moment
    /// to route it again (the caller should also retry when an on-duty agent's caseload drops
    /// below their cap); `None` when the rota has nobody coming. The coordinators should be told.
    Wait {
        until: Option<Timestamp>,
    },
}

/// Which rule chose the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A follow-up on a ticket the agent already owns.
    CurrentOwner,
    /// The requester's earlier caseworker.
    PreviousCaseworker,
    /// The fewest open tickets among the eligible agents.
    FewestOpen,
    /// The fewest open tickets among the eligible agents other than the one the ticket is being
    /// handed over from.
    Handover,
}

/// Decides who gets a ticket; see the module documentation for the rules.
pub(crate) fn route(
    request: &Request<'_>,
    candidates: &[Candidate],
    rota: &Rota,
    now: Timestamp,
) -> Decision {
    let excluded = |id: &AgentId| request.exclude == Some(id);

    if let Some(owner) = request.current_owner
        && !excluded(owner)
        && candidates
            .iter()
            .any(|candidate| &candidate.id == owner && !candidate.away)
    {
        return Decision::Assign {
            agent: owner.clone(),
            reason: Reason::CurrentOwner,
        };
    }

    let on_duty = rota.on_duty(now);
    let eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|candidate| {
            !candidate.away
                && candidate.has_room()
                && on_duty.contains(&candidate.id)
                && !excluded(&candidate.id)
        })
        .collect();

    if let Some(previous) = request.previous_owner
        && eligible.iter().any(|candidate| &candidate.id == previous)
    {
        return Decision::Assign {
            agent: previous.clone(),
            reason: Reason::PreviousCaseworker,
        };
    }

    // `None` sorts before `Some`, so an agent who has never had a ticket goes first.
    let fewest_open = eligible.into_iter().min_by(|left, right| {
        (left.open_tickets, left.last_assigned, &left.id).cmp(&(
            right.open_tickets,
            right.last_assigned,
            &right.id,
        ))
    });
    match fewest_open {
        Some(candidate) => Decision::Assign {
            agent: candidate.id.clone(),
            reason: if request.exclude.is_some() {
                Reason::Handover
            } else {
                Reason::FewestOpen
            },
        },
        None => Decision::Wait {
            until: rota.next_shift_start(now),
        },
    }
}

/// Whether an assigned ticket has gone unanswered for too long and must be handed over: no
/// reply from an agent since `assigned_at`, and `answer_within` has passed since then. The time
/// counts whether or not the owner is on duty, because the requester is waiting all the same.
pub(crate) fn is_overdue(
    assigned_at: Timestamp,
    last_agent_reply: Option<Timestamp>,
    answer_within: Duration,
    now: Timestamp,
) -> bool {
    if last_agent_reply.is_some_and(|reply| reply >= assigned_at) {
        return false;
    }
    // A deadline beyond the end of time is never reached.
    assigned_at
        .checked_add(answer_within)
        .is_ok_and(|deadline| now >= deadline)
}

/// The coordinators to tell about a ticket nobody could take or one that was handed over:
/// those not away, by id.
pub(crate) fn coordinators(candidates: &[Candidate]) -> Vec<AgentId> {
    let mut ids: Vec<AgentId> = candidates
        .iter()
        .filter(|candidate| candidate.role == Role::Coordinator && !candidate.away)
        .map(|candidate| candidate.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

//! Casework glue: applies routing decisions to tickets and queues the mail that goes with them
//! (the notification to the caseworker, notices to coordinators), inside the same store
//! transaction as the ticket change.
//!
//! The routing rules themselves are the pure `route` module; this module keeps the process
//! stage's picture of the team (agents, rota, caseloads) and turns a decision into records.
//! It must not speak IMAP or SMTP: mail goes to the outbox, and `smtp` sends it.
//!
//! - `team`: the team, its caseloads and who gets a ticket;
//! - `decision`: a routing decision applied to a ticket;
//! - `outbox`: queueing mail through loop safety; `notice`: notices to coordinators;
//! - `replies`, `commands`: a caseworker's answer and the commands in it;
//! - `coordinator`: a coordinator's ticket commands from the command line;
//! - `sweep`, `digest`: the periodic pass and the daily digest;
//! - `bounce`: which ticket a delivery report is about.

use jiff::Timestamp;

use crate::casework::token::Secret;
use crate::config::{Config, Loops};
use crate::mail::compose::Sender;

mod bounce;
mod commands;
mod coordinator;
mod decision;
mod digest;
mod notice;
mod outbox;
mod replies;
mod sweep;
mod team;

pub(crate) use bounce::bounced_ticket;
pub(crate) use commands::{apply_commands, confirm};
pub(crate) use coordinator::{assign_by_coordinator, set_status_by_coordinator};
pub(crate) use decision::apply;
pub(crate) use notice::{not_composed, tell_coordinators};
pub(crate) use outbox::enqueue;
pub(crate) use replies::{Relayed, hold_reply, internal_note, refuse_reply, relay_reply, secrets};
#[cfg(test)]
pub(crate) use sweep::Sweep;
pub(crate) use sweep::sweep;
pub(crate) use team::{Team, TeamChange, previous_owner};

pub(crate) fn sender(config: &Config) -> Sender {
    Sender {
        address: config.helpdesk.address.clone(),
        name: config.helpdesk.name.clone(),
    }
}

/// Everything `apply` needs besides the ticket.
pub(crate) struct Context<'a> {
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

#[cfg(test)]
mod tests;

//! The process stage: the single writer. Takes fetched raw messages in order, runs each through
//! parse → thread → store, and commits many messages with one durable flush (group commit).
//! Only after that flush does it tell the fetchers which UIDs they may acknowledge on IMAP.
//!
//! Parse and threading are pure; this module owns the glue, the per-message time budget and
//! the quarantine of messages that cannot be processed. It must not speak IMAP or SMTP.

use std::collections::BTreeMap;

use tracing::error;

use crate::casework::threading;
use crate::ids::TicketId;
use crate::store::{self, Store};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    NewTicket(TicketId),
    Added(TicketId, threading::Reason),
    Duplicate(TicketId),
    Quarantined(String),
    /// A caseworker's reply, relayed to the requester.
    Relayed(TicketId),
    /// Something that looked like a caseworker's reply and was refused.
    ReplyRefused(TicketId, String),
    /// A caseworker's genuine reply the relay gate held (kept as a note, never sent), and why.
    ReplyHeld(TicketId, String),
    /// A caseworker's answer the gate cleared that was not sent (the requester's address is
    /// suppressed): kept as a dead letter, and why.
    ReplyNotSent(TicketId, String),
    /// A delivery report for mail sent on a ticket, filed with that ticket.
    Bounced(TicketId),
}

impl Outcome {
    /// How the figures count it.
    fn counted(&self) -> crate::metrics::Filed {
        use crate::metrics::Filed;
        match self {
            Outcome::NewTicket(_) | Outcome::Added(..) => Filed::Ticket,
            Outcome::Duplicate(_) => Filed::Duplicate,
            Outcome::Quarantined(_) => Filed::Quarantined,
            Outcome::Relayed(_) => Filed::Relayed,
            Outcome::ReplyRefused(..) => Filed::ReplyRefused,
            Outcome::ReplyHeld(..) => Filed::ReplyHeld,
            Outcome::ReplyNotSent(..) => Filed::ReplyNotSent,
            Outcome::Bounced(_) => Filed::Bounced,
        }
    }
}

use crate::clock::Clock;

/// Work that must run in the single writer, between batches (an erasure from the control
/// socket). The team is reloaded after each job.
pub(crate) type Job = Box<dyn FnOnce(&Store) + Send>;

mod acknowledge;
mod attempts;
mod bounce;
mod filing;
mod replies;
mod run;

use acknowledge::*;
use attempts::*;
use filing::*;

pub(crate) use filing::{Filing, sender_address};
pub(crate) use run::run;

/// Why the process stage stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Secret(#[from] crate::casework::token::Error),
}

/// Logs a fatal store failure once; the daemon stops so that nothing is acknowledged.
pub(crate) fn report_fatal(err: &Error) {
    error!(error = %crate::telemetry::chain(&err), "Store failed; stopping so that no message is acknowledged without being saved.");
}

mod refile;
pub(crate) use refile::{Refiled, refile_quarantined};

#[cfg(test)]
mod desk;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

//! SMTP, and only SMTP: sends what the outbox holds through lettre, in outbox order, and settles
//! each entry in the store. A message the server accepted (250) leaves the outbox; one it
//! deferred, or that could not be offered at all (server down, TLS or login trouble), is retried
//! with capped, jittered exponential backoff; one it refused for good (5xx to MAIL, RCPT or DATA)
//! becomes a dead letter and its ticket records the failure.
//!
//! This module must not decide what is sent or to whom, nor change a message beyond what SMTP
//! transparency requires (line endings and dot-stuffing, see [`wire_data`]). It never logs a
//! body, and recipient addresses only at DEBUG; server replies are stored and logged with the
//! addresses in them blanked out.
//!
//! A failure that belongs to the server or the link rather than to the message (connection,
//! TLS, timeout, a refused login, 421) defers the other due entries too, without connecting
//! again, so an outage costs one connection per step rather than one per message. A recipient
//! refused at RCPT fails the whole entry, because lettre gives up the transaction: an entry
//! should carry several recipients only when they stand or fall together.
//!
//! Delivery is at least once. The entry leaves the outbox in a store transaction made after the
//! server's 250, and that transaction is flushed right away. A crash between the 250 and the
//! flush (or a connection lost after the final dot but before the 250 came back) sends the same
//! bytes again after the restart. They carry the Message-ID fixed when the entry was enqueued,
//! so the receiving side, and the requester's mail client, can recognise the copy. Never twice
//! by our own doing: an entry is settled before the next one is sent, and a settled entry is
//! gone from the outbox.

use std::sync::Arc;
use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config;
use crate::model::OutboxKind;
use crate::store::Store;

mod error;
mod outbox;
mod send;
mod settle;
#[cfg(test)]
mod tests;
mod transport;

pub use error::{Error, ReplyClass, classify, redact_reply};
pub use send::{send_deadline, wire_data};
pub use settle::{backoff_with_jitter, nominal_backoff, recipient_role};
pub use transport::{transport, transport_signed_in};

/// How long lettre may take to open the TCP connection. Its async client applies its timeout
/// to the connect only, so every send is also bounded as a whole (see [`send_deadline`]).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The transport every send goes through: one connection per message, no pool.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// What one [`Relay::step`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Messages the server accepted; they have left the outbox.
    pub sent: usize,
    /// Messages kept for a later attempt.
    pub deferred: usize,
    /// Outbox ids of the messages that became dead letters (the dead letter keeps the id), so
    /// the caller can tell the agent.
    pub failed: Vec<u64>,
}

/// How the relay settled one outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Sent,
    Deferred,
    Failed,
}

/// Told of every settled message once its store transaction is done (the daemon counts them).
pub type Observer = Arc<dyn Fn(OutboxKind, Settled) + Send + Sync>;

/// Sends the outbox. The only writer of outbox state after enqueueing: it removes, reschedules
/// and dead-letters entries, nothing else.
pub struct Relay {
    store: Store,
    transport: Transport,
    clock: Clock,
    /// Checked between messages; a send already under way is allowed to finish.
    cancel: CancellationToken,
    observer: Option<Observer>,
    /// With `[smtp] auth = "oauth2"`: the settings to rebuild the transport from, and the token
    /// it signs in with now.
    sign_in: Option<(config::Smtp, Option<crate::oauth::AccessToken>)>,
}

impl Relay {
    pub fn new(store: Store, transport: Transport, clock: Clock) -> Relay {
        Relay {
            store,
            transport,
            clock,
            cancel: CancellationToken::new(),
            observer: None,
            sign_in: None,
        }
    }

    /// Signs in with OAuth 2.0 when `config` says so (`auth = "oauth2"`): before each step the
    /// access token is checked, and the transport rebuilt with a new one when it changed.
    pub fn signing_in(mut self, config: &config::Smtp) -> Relay {
        if config.oauth2.is_some() {
            self.sign_in = Some((config.clone(), None));
        }
        self
    }

    /// Reports every settled message to `observer`.
    pub fn observed_by(mut self, observer: Observer) -> Relay {
        self.observer = Some(observer);
        self
    }

    fn settled(&self, kind: OutboxKind, settled: Settled) {
        if let Some(observer) = &self.observer {
            observer(kind, settled);
        }
    }
}

//! What can go wrong with SMTP, split the way the outbox needs (transient, permanent, the
//! server's fault or the message's), and server replies made safe to log and store.

use std::time::Duration;

use super::CONNECT_TIMEOUT;
use crate::mail::sanitize;
use crate::store;

/// Longest server reply kept in an error (and so in `last_error` and the dead letters).
pub(super) const MAX_REPLY_CHARS: usize = 200;

/// What went wrong with SMTP, split the way the outbox needs: [`Error::is_transient`] means
/// "keep the message and try again later", [`Error::is_permanent`] means "this message will
/// never go through as it is" (after lettre's `Error`).
///
/// Every message is free of recipient addresses and message text, so it can be logged and
/// stored: server replies pass through [`redact_reply`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[smtp]` settings cannot be turned into a transport, such as an unreadable `ca_file`.
    #[error("smtp settings unusable: {reason}")]
    Setup { reason: String },
    /// Connecting, the TLS handshake, or the conversation itself failed: refused, reset,
    /// closed early, a certificate the client does not trust, an unreadable reply.
    #[error("cannot talk to the smtp server: {detail}")]
    Connection { detail: String },
    /// Connecting, or a whole send, took longer than its deadline.
    #[error("smtp server did not finish within {0:?}")]
    Timeout(Duration),
    /// The server refused the session before the message could be offered: the greeting, EHLO,
    /// STARTTLS or AUTH failed (a wrong password, no STARTTLS where it is required). Not the
    /// message's fault, so it is kept; an operator has to act.
    #[error("smtp server refused the session: {detail}")]
    Session { detail: String },
    /// A 4xx reply: try again later.
    #[error("smtp server deferred the message: {code} {reply}")]
    Deferred { code: u16, reply: String },
    /// A 5xx reply to MAIL, RCPT or DATA, such as an unknown recipient.
    #[error("smtp server rejected the message: {code} {reply}")]
    Rejected { code: u16, reply: String },
    /// lettre will not offer this message to this server, such as 8-bit content to a server
    /// without 8BITMIME.
    #[error("message cannot be sent to this server: {detail}")]
    Unsendable { detail: String },
    /// The envelope sender or a recipient is not a usable address, or there is no recipient.
    #[error("invalid envelope: {reason}")]
    Envelope { reason: String },
    /// The entry's bytes are gone from the store (a corrupt or hand-edited store).
    #[error("outbox entry {id} has no message bytes in the store")]
    MissingRaw { id: u64 },
    /// Reading or settling the outbox failed; `step` returns this, never a settled entry.
    #[error("store failed")]
    Store(#[from] store::Error),
}

impl Error {
    /// Whether the message should stay in the outbox and be tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connection { .. }
                | Error::Timeout(_)
                | Error::Session { .. }
                | Error::Deferred { .. }
        )
    }

    /// Whether the message can never be sent as it is and becomes a dead letter.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::Rejected { .. }
                | Error::Unsendable { .. }
                | Error::Envelope { .. }
                | Error::MissingRaw { .. }
        )
    }

    /// Whether the failure is the server's or the link's rather than this message's, so the
    /// other due messages would fail the same way and are not tried in this step. 421 is the
    /// server closing the channel (RFC 5321 §3.8).
    pub(super) fn affects_every_message(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::Timeout(_) | Error::Session { .. } => true,
            Error::Deferred { code, .. } => *code == 421,
            _ => false,
        }
    }

    /// What the ticket's `send_failed` event says: a code or a cause, never an address.
    pub(super) fn event_summary(&self) -> String {
        match self {
            Error::Rejected { code, .. } | Error::Deferred { code, .. } => {
                format!("refused with {code}")
            }
            Error::Unsendable { .. } => "not accepted by the smtp client".to_owned(),
            Error::Envelope { .. } => "invalid envelope address".to_owned(),
            Error::MissingRaw { .. } => "message bytes missing from the store".to_owned(),
            other => other.to_string(),
        }
    }
}

/// How the relay reads an SMTP reply code (RFC 5321 §4.2.1): 2yz is done, 4yz means try again,
/// 5yz means never. Anything else is a confused server, which is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    Accepted,
    Transient,
    Permanent,
}

/// The class of a reply code; see [`ReplyClass`].
pub fn classify(code: u16) -> ReplyClass {
    match code {
        200..=299 => ReplyClass::Accepted,
        500..=599 => ReplyClass::Permanent,
        _ => ReplyClass::Transient,
    }
}

/// Blanks out anything that looks like an address in a server reply (servers echo the
/// recipient: "5.1.1 <x@y>: Recipient address rejected"), escapes control characters, and
/// caps its length, so the reply can go into logs, `last_error` and the dead letters.
pub fn redact_reply(reply: &str) -> String {
    let words: Vec<String> = sanitize::for_terminal(reply)
        .split_whitespace()
        .map(|word| {
            if word.contains('@') {
                let kept_punctuation = word.len() - word.trim_end_matches([':', ',', ';']).len();
                let suffix = word.get(word.len() - kept_punctuation..).unwrap_or("");
                format!("<address>{suffix}")
            } else {
                word.to_owned()
            }
        })
        .collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(MAX_REPLY_CHARS) {
        Some((cut, _)) => format!("{}…", joined.get(..cut).unwrap_or(&joined)),
        None => joined,
    }
}

/// Turns lettre's error into ours, before anything is known about whether the session or the
/// message was at fault (see [`Relay::explain`]).
pub(super) fn from_lettre(err: &lettre::transport::smtp::Error) -> Error {
    if let Some(code) = err.status() {
        let code = u16::from(code);
        let reply = std::error::Error::source(err)
            .map(|reply| redact_reply(&reply.to_string()))
            .unwrap_or_default();
        return match classify(code) {
            ReplyClass::Permanent => Error::Rejected { code, reply },
            ReplyClass::Transient => Error::Deferred { code, reply },
            ReplyClass::Accepted => Error::Connection {
                detail: format!("unexpected reply {code} {reply}"),
            },
        };
    }
    if err.is_timeout() {
        return Error::Timeout(CONNECT_TIMEOUT);
    }
    let detail = redact_reply(&err.to_string());
    if err.is_client() {
        Error::Unsendable { detail }
    } else {
        Error::Connection { detail }
    }
}

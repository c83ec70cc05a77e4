//! One SMTP transaction for one outbox entry: the envelope, the bytes on the wire, the deadline,
//! and telling a refused session from a refused message.

use std::borrow::Cow;
use std::time::Duration;

use lettre::AsyncTransport as _;
use lettre::address::{Address, Envelope};
use tracing::debug;

use super::error::from_lettre;
use super::{Error, Relay, ReplyClass, classify};
use crate::model::OutboxEntry;

/// The part of a send's deadline that does not depend on the message's size: connecting, TLS,
/// EHLO, AUTH, the envelope and the server's final answer.
const SESSION_ALLOWANCE: Duration = Duration::from_secs(60);
/// The slowest upload a send is allowed, so a large attachment on a slow link still gets there.
const SLOWEST_UPLOAD_BYTES_PER_SECOND: u64 = 32 * 1024;

/// The bytes handed to lettre for the DATA command.
///
/// Every line ending becomes CRLF, because lettre dot-stuffs (RFC 5321 §4.5.2) only after CRLF:
/// a bare LF followed by "." would go out unstuffed, and a server that takes a bare LF as a line
/// end (Postfix before `smtpd_forbid_bare_newline`) would read `LF . LF` as the end of the data
/// and whatever follows as new commands: SMTP smuggling. Then one final CRLF is dropped,
/// because lettre always ends the data with CRLF "." CRLF, so a message that already ends in
/// CRLF would otherwise gain an empty line.
pub fn wire_data(raw: &[u8]) -> Cow<'_, [u8]> {
    let has_bare_ending = raw.iter().enumerate().any(|(at, &byte)| match byte {
        b'\n' => at == 0 || raw.get(at - 1) != Some(&b'\r'),
        b'\r' => raw.get(at + 1) != Some(&b'\n'),
        _ => false,
    });
    let normalised: Cow<'_, [u8]> = if has_bare_ending {
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
        let mut bytes = raw.iter().copied().peekable();
        while let Some(byte) = bytes.next() {
            match byte {
                b'\r' => {
                    if bytes.peek() == Some(&b'\n') {
                        bytes.next();
                    }
                    out.extend_from_slice(b"\r\n");
                }
                b'\n' => out.extend_from_slice(b"\r\n"),
                other => out.push(other),
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    match normalised {
        Cow::Borrowed(bytes) => Cow::Borrowed(bytes.strip_suffix(b"\r\n").unwrap_or(bytes)),
        Cow::Owned(mut bytes) => {
            if bytes.ends_with(b"\r\n") {
                bytes.truncate(bytes.len() - 2);
            }
            Cow::Owned(bytes)
        }
    }
}

/// The whole-send deadline for a message of `size` bytes: a fixed allowance for the session
/// plus the upload at [`SLOWEST_UPLOAD_BYTES_PER_SECOND`].
pub fn send_deadline(size: usize) -> Duration {
    let size = u64::try_from(size).unwrap_or(u64::MAX);
    SESSION_ALLOWANCE.saturating_add(Duration::from_secs(size / SLOWEST_UPLOAD_BYTES_PER_SECOND))
}

impl Relay {
    /// One SMTP transaction for one entry.
    pub(super) async fn attempt(
        &self,
        entry: &OutboxEntry,
        raw: Option<&[u8]>,
    ) -> Result<(), Error> {
        let raw = raw.ok_or(Error::MissingRaw { id: entry.id })?;
        let envelope = envelope(entry)?;
        let data = wire_data(raw);
        debug!(outbox_id = entry.id, from = %entry.envelope_from, to = ?entry.recipients, size = data.len(), "Sending.");
        let deadline = send_deadline(data.len());
        // Not raced against cancellation: a transaction that has started is finished, so the
        // server's answer is settled in the store rather than guessed at after a restart.
        match tokio::time::timeout(deadline, self.transport.send_raw(&envelope, &data)).await {
            Err(_) => Err(Error::Timeout(deadline)),
            Ok(Ok(response)) => {
                let code = u16::from(response.code());
                match classify(code) {
                    ReplyClass::Accepted => Ok(()),
                    _ => Err(Error::Connection {
                        detail: format!("unexpected final reply {code}"),
                    }),
                }
            }
            Ok(Err(err)) => Err(self.explain(&err).await),
        }
    }

    /// lettre's `send_raw` connects, logs in and sends in one call, so a 5xx from AUTH (a wrong
    /// password) looks just like a 5xx from RCPT (an unknown recipient). Dead-lettering every
    /// message because of a bad password would be wrong, so a permanent-looking failure is
    /// checked with a session of its own (connect, TLS, AUTH, NOOP): if that fails too, the
    /// session was at fault and the message is kept.
    async fn explain(&self, err: &lettre::transport::smtp::Error) -> Error {
        let first = from_lettre(err);
        if !first.is_permanent() {
            return first;
        }
        debug!(error = %first, "Permanent failure; checking whether the session itself fails.");
        match tokio::time::timeout(SESSION_ALLOWANCE, self.transport.test_connection()).await {
            Err(_) => Error::Timeout(SESSION_ALLOWANCE),
            Ok(Ok(true)) => first,
            Ok(Ok(false)) => Error::Connection {
                detail: "the server did not answer NOOP".to_owned(),
            },
            Ok(Err(probe)) => match from_lettre(&probe) {
                Error::Rejected { code, reply } | Error::Deferred { code, reply } => {
                    Error::Session {
                        detail: format!("{code} {reply}"),
                    }
                }
                Error::Unsendable { detail } => Error::Session { detail },
                other => other,
            },
        }
    }
}

/// The envelope: `MAIL FROM` is the entry's sender (empty for the null sender `<>`, as bounces
/// use), `RCPT TO` each recipient. The addresses themselves are kept out of the error.
fn envelope(entry: &OutboxEntry) -> Result<Envelope, Error> {
    let from = if entry.envelope_from.is_empty() {
        None
    } else {
        Some(
            entry
                .envelope_from
                .parse::<Address>()
                .map_err(|err| Error::Envelope {
                    reason: format!("sender: {err}"),
                })?,
        )
    };
    let recipients = entry
        .recipients
        .iter()
        .enumerate()
        .map(|(position, recipient)| {
            recipient.parse::<Address>().map_err(|err| Error::Envelope {
                reason: format!("recipient {}: {err}", position + 1),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(from, recipients).map_err(|err| Error::Envelope {
        reason: err.to_string(),
    })
}

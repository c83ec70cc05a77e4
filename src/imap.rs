//! IMAP, and only IMAP: connect (TLS, STARTTLS or plaintext on loopback), select a watched
//! folder, hand every message above the cursor to the process stage, and acknowledge on the
//! server (flag `\Seen`, move to the processed folder) only what the process stage reports as
//! durably committed.
//!
//! One [`FolderWatch`] per folder, each with its own connection. The cursor (UIDVALIDITY, last
//! UID) is read from the store but written only by the process stage, in the same transaction
//! as the tickets it produced. A UIDVALIDITY change (RFC 3501 §2.3.1.1) restarts the folder from
//! UID 1 and relies on Message-ID dedupe, so nothing becomes a second ticket.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::ids::{Uid, UidValidity};
use crate::model::{Arrival, FolderKind, Source};

mod budget;
mod connect;
mod examine;
pub(crate) mod expunge;
#[cfg(test)]
mod tests;
mod watch;

pub(crate) use budget::{Budget, FetchPlan, plan_fetches};
pub(crate) use connect::connect;
pub(crate) use examine::{Envelope, Examiner};
pub(crate) use watch::{FolderWatch, Lag, OnDown, OnLag};

use budget::message_sizes;

/// Every IMAP command must answer within this; a silent server is a dead connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot reach {host}:{port}")]
    Network {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("tls setup with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("login as {username} refused: {reason}")]
    Auth { username: String, reason: String },
    #[error("oauth2 sign-in failed")]
    SignIn(#[from] crate::oauth::Error),
    #[error("imap command failed")]
    Protocol(#[from] async_imap::error::Error),
    #[error("imap server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("folder {folder} has no UIDVALIDITY; the server does not support UIDs")]
    NoUidValidity { folder: String },
    #[error("connection failed")]
    Io(#[from] std::io::Error),
    #[error("imap session was lost")]
    SessionLost,
    #[error("imap server closed the session: {0}")]
    ServerClosed(String),
    #[error("imap server keeps waking IDLE without new mail; reconnecting")]
    Spinning,
    #[error("store failed")]
    Store(#[from] crate::store::Error),
    #[error("the process stage stopped")]
    ProcessGone,
}

/// A raw message fetched from IMAP, on its way to the process stage.
pub(crate) struct Fetched {
    pub source: Source,
    pub kind: FolderKind,
    pub arrival: Arrival,
    pub raw: Vec<u8>,
    /// `Some(size)` when the message was over `[ingest] max_message_size` by the size the
    /// server reported: `raw` then holds only its header fields, and the whole message stays
    /// on the server.
    pub oversized: Option<u64>,
    /// Where the process stage reports the commit of this message.
    pub ack: mpsc::UnboundedSender<Committed>,
    /// This message's share of the fetch [`Budget`], given back when it is dropped (filed).
    _held: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("source", &self.source)
            .field("size", &self.raw.len())
            .field("oversized", &self.oversized)
            .finish_non_exhaustive()
    }
}

/// UIDs the process stage has durably committed (as tickets, duplicates or quarantine).
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub uidvalidity: UidValidity,
    pub uids: Vec<Uid>,
}

pub(crate) trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> ImapIo for T {}

pub(crate) type Session = async_imap::Session<Box<dyn ImapIo>>;

async fn timed<T, E>(fut: impl Future<Output = Result<T, E>>) -> Result<T, Error>
where
    Error: From<E>,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::Timeout(COMMAND_TIMEOUT)),
    }
}

/// Formats UIDs (any order) as a compact IMAP sequence set: `1:5,7,9:12`.
pub(crate) fn uid_set(uids: &[Uid]) -> String {
    let mut sorted: Vec<u32> = uids.iter().map(|u| u.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&end.saturating_add(1)) {
            end = end.saturating_add(1);
            iter.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
    }
    out
}

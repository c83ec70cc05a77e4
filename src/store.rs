//! The store: the only module that opens the database. Tickets, messages (with their raw
//! bytes), events, the dedupe and threading indexes, IMAP cursors and the quarantine.
//!
//! Everything lives in one sled tree under typed key prefixes, so that every change that belongs
//! together is one sled transaction (atomic across a crash). Transactions are not durable on
//! their own: [`Store::flush`] makes everything applied so far durable. The process stage
//! flushes twice per batch: once after marking the batch in flight, and once after applying all
//! its messages (group commit); only then may anything be acknowledged on IMAP.
//!
//! Callers never see sled: they read through [`Store`] and write through [`WriteTx`].
//!
//! One file per kind of record: `tickets` (tickets, messages, events and their indexes),
//! `mailbox` (IMAP cursors, attempts, the batch in flight, quarantine), `team` (agents, the rota,
//! the digest date), `outbox` (outbox and dead letters), `spam`, `loops`, `auth`, `accounting`
//! and `backfill`. `keys` is the key layout, `open` opens and checks the store, and `lifecycle`
//! serves backup, restore, retention and erasure.
//!
//! # Layout
//!
//! Every key of the tree, by prefix. Values are JSON unless noted. `{ticket}` and `{id}` are
//! 20 digits, `{seq}`, `{uidvalidity}`, `{uid}`, `{hour}` and `{day}` 10 digits, zero-padded;
//! `{source}` is `{folder}/{uidvalidity}/{uid}`; `{len}:{address}` is an address segment made
//! exact by `exact`, so that no address is a prefix of another's keys.
//!
//! | key | value |
//! | --- | --- |
//! | `meta/schema` | the schema version, as decimal text ([`SCHEMA_VERSION`]) |
//! | `meta/next_ticket`, `meta/next_outbox`, `meta/next_imap_deletion` | the next ticket number, outbox id and IMAP deletion id (u64, big-endian) |
//! | `meta/in_flight` | the sources of the batch the process stage is filing: after a crash, the suspects |
//! | `meta/rota` | the rota as last imported (its TOML source) |
//! | `meta/last_digest` | the local date (YYYY-MM-DD) of the last digest sent |
//! | `meta/figures` | [`TicketFigures`]: tickets by status and flag, for `/metrics` (`index`) |
//! | `meta/compact_pending` | set by an erasure: the next [`Store::open`] compacts the store (`compact`) |
//! | `meta/backfill/{folder}` | `Backfill`: the folder's first-run boundary (`backfill`) |
//! | `meta/reconciled/{folder}` | [`Checked`]: how far the processed folder was checked (`accounting`) |
//! | `t/{ticket}` | `Ticket` |
//! | `A/{ticket}`, `S/{ticket}` | empty: present exactly while the ticket is active, or held as spam (`index`) |
//! | `m/{ticket}/{seq}`, `w/{ticket}/{seq}`, `e/{ticket}/{seq}` | `StoredMessage`; its raw bytes; `Event` |
//! | `spam/{ticket}` | the spam verdict that opened the ticket, or a caseworker's `#spam` |
//! | `sent/{ticket}/{message-id}` | [`Sent`]: the recipients of a message queued about the ticket (`auth`) |
//! | `replay/{ticket}/{sha256}` | when an answer with this fingerprint was relayed on the ticket (`auth`) |
//! | `k/mid:{message-id}`, `k/hash:{sha256}` | dedupe index: (ticket, seq) |
//! | `i/{message-id}` | threading index: the ticket any stored Message-ID belongs to |
//! | `r/{len}:{address}/{ticket}` | empty: a requester's tickets |
//! | `c/{folder}` | `Cursor` |
//! | `a/{source}` | failed processing attempts (u32) |
//! | `q/{source}`, `Q/{source}` | `QuarantineEntry`; its raw bytes |
//! | `n/{source}` | a message filed without a stored message of its own: ticket and Message-ID (`accounting`) |
//! | `x/{source}` | [`ReportedMissing`]: a message reconciliation reported missing (`accounting`) |
//! | `g/{agent}` | `Agent` |
//! | `o/{id}`, `O/{id}` | `OutboxEntry`; the bytes it sends |
//! | `d/{id}`, `D/{id}` | `DeadLetter` (same id as the outbox entry it was); its bytes |
//! | `p/{id}` | `ImapDeletion`: IMAP copies of purged or erased mail still to delete |
//! | `l/r/{len}:{address}/{hour}` | messages sent to the address in that UTC hour, u32 (`mail_loops`) |
//! | `l/a/{len}:{address}/{day}` | acknowledgements sent to the address that UTC day, u32 (`mail_loops`) |
//! | `l/t/{ticket}/{day}` | messages sent about the ticket that UTC day, u32 (`mail_loops`) |
//! | `l/s/{address}` | `Suppression`: nothing is sent to the address until it ends (`mail_loops`) |
//! | `bayes/docs` | how many spam and ham messages the classifier learned |
//! | `bayes/t/{token}` | in how many learned spam and ham messages the token appeared |
//! | `bayes/m/{mid:…\|hash:…}` | the label a message (by dedupe key) was learned with |
//!
//! Free text that ends a key (`i/`, `k/`, `l/s/`, `bayes/`, `g/`, `c/`) is only read by exact
//! lookups; folder names come from the configuration, not from mail.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::ids::TicketId;
use crate::model::Event;

mod accounting;
mod auth;
mod backfill;
mod compact;
mod index;
mod keys;
mod lifecycle;
mod loops;
mod mailbox;
pub mod marker;
mod migrate;
mod open;
mod outbox;
mod spam;
mod team;
mod tickets;
pub mod verify;

pub use accounting::{Checked, ReportedMissing};
pub use auth::Sent;
pub use index::TicketFigures;
pub(crate) use keys::exact;
use keys::{KEY_SCHEMA, source_suffix};
pub use lifecycle::{IndexKey, SnapshotError, Watch};
pub use loops::Counter;
pub use open::prepare_state_dir;

/// The on-disk schema this build reads and writes. Bump it, with a migration, whenever the
/// meaning of a stored record changes.
///
/// - 1: requester and loop-safety keys held the address as it was (`r/{address}/{ticket}`),
///   so one address could be a prefix of another's key.
/// - 2: every free-text key segment followed by more key is length-prefixed ([`exact`]).
pub const SCHEMA_VERSION: u32 = 2;

/// The directory inside the state directory that holds the database.
pub const STORE_DIR: &str = "store";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store at {path} is in use by another process (is the daemon running?)")]
    Locked { path: PathBuf },
    #[error("cannot create or restrict the state directory {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("store at {path} has schema version {found}, this casemail supports {supported}")]
    Schema {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("store i/o failed")]
    Io(#[from] sled::Error),
    // Keys can hold an address (`r/`, `l/s/`…): logged at ERROR, they name no person.
    #[error(
        "corrupt record under key {}",
        crate::mail::sanitize::without_addresses(key)
    )]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "cannot encode record for key {}",
        crate::mail::sanitize::without_addresses(key)
    )]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("inconsistent store: {}", crate::mail::sanitize::without_addresses(.0))]
    Inconsistent(String),
    /// The store the marker outside sled records is missing, empty or holds less than it did.
    #[error(
        "store at {path} is missing or damaged: {reason}; restore it from a backup (`casemail restore --force FILE`), or remove {marker} to start an empty store on purpose",
        path = .path.display(),
        marker = .marker.display()
    )]
    Damaged {
        path: PathBuf,
        marker: PathBuf,
        reason: String,
    },
    #[error("cannot write the store marker {}", .path.display())]
    Marker {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot compact the store at {path}")]
    Compact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An error inside a write transaction; returned by [`WriteTx`] methods and propagated with `?`.
pub struct TxError(ConflictableTransactionError<Error>);

impl From<sled::transaction::UnabortableTransactionError> for TxError {
    fn from(err: sled::transaction::UnabortableTransactionError) -> Self {
        TxError(err.into())
    }
}

impl From<Error> for TxError {
    fn from(err: Error) -> Self {
        TxError(ConflictableTransactionError::Abort(err))
    }
}

pub type TxResult<T> = Result<T, TxError>;

/// A handle on the store. Cloning is cheap and shares the same database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    /// Every write transaction holds this shared; [`Store::snapshot`] holds it exclusively, so
    /// a snapshot sees the store between transactions, never in the middle of one.
    gate: Arc<RwLock<()>>,
    /// Notified after a transaction that queued an IMAP deletion has committed. (sled's own
    /// `watch_prefix` is not used: its bounded channel blocks writers when the watcher lags.)
    deletions_queued: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Makes every transaction applied so far durable (one fsync). Returns once it is on disk.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }

    /// Same as [`Store::flush`] without blocking the async runtime's worker.
    pub async fn flush_async(&self) -> Result<(), Error> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Runs `body` as one atomic transaction. `body` may run more than once when sled detects a
    /// conflicting writer, so it must not have side effects outside the transaction.
    pub fn write<T>(&self, body: impl Fn(&WriteTx<'_>) -> TxResult<T>) -> Result<T, Error> {
        // The gate protects no data of its own, so a panic elsewhere cannot leave it unusable.
        let _shared = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        let queued = std::cell::Cell::new(false);
        let result = self
            .tree
            .transaction(|tree| {
                // A retried attempt starts afresh.
                queued.set(false);
                let tx = WriteTx {
                    tree,
                    later: std::cell::RefCell::new(Vec::new()),
                    queued: &queued,
                };
                let value = body(&tx).map_err(|TxError(err)| err)?;
                tx.add_events_later().map_err(|TxError(err)| err)?;
                Ok(value)
            })
            .map_err(|err| match err {
                TransactionError::Abort(err) => err,
                TransactionError::Storage(err) => Error::Io(err),
            });
        if result.is_ok() && queued.get() {
            self.deletions_queued.notify_one();
        }
        result
    }
}

/// The write side of one transaction. Reads inside it see the transaction's own writes.
pub struct WriteTx<'a> {
    tree: &'a TransactionalTree,
    /// Events for tickets the body may hold a copy of (see [`WriteTx::add_event_later`]).
    later: std::cell::RefCell<Vec<(TicketId, Event)>>,
    /// Set when the transaction queues an IMAP deletion.
    queued: &'a std::cell::Cell<bool>,
}

impl WriteTx<'_> {
    fn get<T: DeserializeOwned>(&self, key: &str) -> TxResult<Option<T>> {
        match self.tree.get(key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> TxResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Encode {
            key: key.to_owned(),
            source,
        })?;
        self.tree.insert(key.as_bytes(), bytes)?;
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn decode_u64(bytes: &[u8]) -> Result<u64, Error> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Inconsistent("ticket counter is not 8 bytes".to_owned()))?;
    Ok(u64::from_be_bytes(array))
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>, Error> {
    match tree.get(key.as_bytes())? {
        None => Ok(None),
        Some(bytes) => Ok(Some(decode(key, &bytes)?)),
    }
}

fn scan_json<T: DeserializeOwned>(tree: &sled::Tree, prefix: &[u8]) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    for item in tree.scan_prefix(prefix) {
        let (key, value) = item?;
        out.push(decode(&String::from_utf8_lossy(&key), &value)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

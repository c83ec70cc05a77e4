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

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::ids::AgentId;
use crate::ids::{MailKey, MessageId, TicketId};
use crate::model::{
    Agent, Cursor, DeadLetter, Event, ImapDeletion, OutboxEntry, QuarantineEntry, Source,
    StoredMessage, Ticket,
};

mod compact;
mod index;
pub mod marker;
mod migrate;

pub use index::TicketFigures;

/// The on-disk schema this build reads and writes. Bump it, with a migration, whenever the
/// meaning of a stored record changes.
///
/// - 1: requester and loop-safety keys held the address as it was (`r/{address}/{ticket}`),
///   so one address could be a prefix of another's key.
/// - 2: every free-text key segment followed by more key is length-prefixed ([`exact`]).
pub const SCHEMA_VERSION: u32 = 2;

/// sled keeps recently used pages in memory; its default (1 GiB) is far more than a helpdesk
/// needs, and operators watch the daemon's memory.
const CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

/// The directory inside the state directory that holds the database.
pub const STORE_DIR: &str = "store";

const KEY_SCHEMA: &[u8] = b"meta/schema";
const KEY_NEXT_TICKET: &[u8] = b"meta/next_ticket";
const KEY_IN_FLIGHT: &str = "meta/in_flight";
const KEY_NEXT_OUTBOX: &[u8] = b"meta/next_outbox";
const KEY_ROTA: &str = "meta/rota";
const KEY_LAST_DIGEST: &str = "meta/last_digest";
const KEY_NEXT_DELETION: &[u8] = b"meta/next_imap_deletion";
/// IMAP copies of purged or erased mail, waiting for the fetch side to delete them.
const PREFIX_DELETION: &[u8] = b"p/";

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

/// Creates the state directory with mode 0700, or restricts an existing one to it: it holds
/// requesters' mail and the reply secret, so nobody but the service user may enter it.
pub fn prepare_state_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

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

/// How long opening waits for a lock sled's own threads still hold, and how often it tries.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

impl Store {
    /// Opens (creating if needed) the store in `state_dir/store`. The state directory is
    /// created, or restricted, to mode 0700 first, whichever command opens it. Finishes a
    /// compaction a crash interrupted, and compacts the store when an erasure asked for it
    /// (`compact`).
    ///
    /// A state directory whose marker (`store-marker.json`, outside sled) records a store refuses to
    /// open one that is missing, empty or holds fewer tickets than it did ([`Error::Damaged`]);
    /// every open brings the marker up to date.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        prepare_state_dir(state_dir).map_err(|source| Error::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        compact::recover(state_dir)?;
        let recorded = marker::read(state_dir)?;
        if let Some(recorded) = &recorded {
            marker::check_files(state_dir, recorded)?;
        }
        let store = Store::open_path(state_dir.join(STORE_DIR))?;
        let store = if store.tree.contains_key(compact::KEY_COMPACT)? {
            compact::run(store, state_dir)?
        } else {
            store
        };
        let holds_data = !store.is_empty()?;
        let last_ticket = store.last_ticket_id()?.0;
        if let Some(recorded) = &recorded {
            marker::check_contents(state_dir, recorded, holds_data, last_ticket)?;
        }
        // The marker records only what is on disk: what sled recovered after a crash is
        // flushed first, so no later open can find less without damage.
        store.flush()?;
        let generation = recorded.map_or(0, |m| m.generation).saturating_add(1);
        store.record_marker(state_dir, generation)?;
        Ok(store)
    }

    /// Brings the marker up to date with what the store holds now (the daemon does at a clean
    /// stop, after its last flush), keeping its generation.
    pub fn refresh_marker(&self, state_dir: &Path) -> Result<(), Error> {
        let generation = marker::read(state_dir)?.map_or(1, |m| m.generation);
        self.record_marker(state_dir, generation)
    }

    /// Writes the marker for this store, the one living in `state_dir`, as of now.
    pub fn record_marker(&self, state_dir: &Path, generation: u64) -> Result<(), Error> {
        marker::write(
            state_dir,
            &marker::Marker {
                schema: SCHEMA_VERSION,
                generation,
                last_ticket: self.last_ticket_id()?.0,
                holds_data: !self.is_empty()?,
            },
        )
    }

    /// Whether the store waits to be compacted at its next open (after an erasure).
    pub fn compaction_pending(&self) -> Result<bool, Error> {
        Ok(self.tree.contains_key(compact::KEY_COMPACT)?)
    }

    /// Opens (creating if needed) a store in exactly `path`; `restore` builds a store beside
    /// the live one before it takes its place.
    pub fn open_path(path: PathBuf) -> Result<Store, Error> {
        // sled releases its file lock only when its background threads let go of the database,
        // a moment after the last handle is dropped; a reopen in the same process (compaction,
        // erase, restore) can come sooner on a busy machine. Another process holding the store
        // keeps it locked for longer than this and is reported as `Locked`.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match Store::open_path_once(path.clone()) {
                Err(Error::Locked { .. }) if waited < LOCK_WAIT => {
                    std::thread::sleep(LOCK_RETRY);
                    waited += LOCK_RETRY;
                }
                result => return result,
            }
        }
    }

    fn open_path_once(path: PathBuf) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_CAPACITY)
            // The daemon flushes explicitly at each group commit; the background flusher only
            // bounds how much non-acknowledged work a crash can cost.
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|source| match &source {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    Error::Locked { path: path.clone() }
                }
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    Error::Locked { path: path.clone() }
                }
                _ => Error::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let tree = db.open_tree("casemail")?;
        let store = Store {
            db,
            tree,
            path,
            gate: Arc::new(RwLock::new(())),
            deletions_queued: Arc::new(tokio::sync::Notify::new()),
        };
        store.check_schema()?;
        if store.tree.get(index::KEY_FIGURES)?.is_none() {
            // A store from before the active-ticket index (or a new one): build it once.
            index::rebuild(&store.tree)?;
            store.db.flush()?;
        }
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), Error> {
        match self.tree.get(KEY_SCHEMA)? {
            None => {
                if self.tree.iter().next().is_some() {
                    return Err(Error::Schema {
                        path: self.path.clone(),
                        found: "none".to_owned(),
                        supported: SCHEMA_VERSION,
                    });
                }
                self.tree
                    .insert(KEY_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            Some(found) => {
                let text = String::from_utf8_lossy(&found).into_owned();
                match text.parse::<u32>() {
                    Ok(version) if version == SCHEMA_VERSION => Ok(()),
                    // An older store is brought forward in place, atomically (see `migrate`).
                    Ok(version) if (1..SCHEMA_VERSION).contains(&version) => {
                        migrate::forward(&self.tree, version)?;
                        self.db.flush()?;
                        Ok(())
                    }
                    _ => Err(Error::Schema {
                        path: self.path.clone(),
                        found: text,
                        supported: SCHEMA_VERSION,
                    }),
                }
            }
        }
    }

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

    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, Error> {
        get_json(&self.tree, &ticket_key(id))
    }

    /// Every ticket, in ticket-number order.
    pub fn tickets(&self) -> Result<Vec<Ticket>, Error> {
        scan_json(&self.tree, b"t/")
    }

    /// The active tickets (new, open, waiting), in ticket-number order, read through the
    /// `A/` index rather than by reading every ticket.
    pub fn active_tickets(&self) -> Result<Vec<Ticket>, Error> {
        self.indexed_tickets(b"A/")
    }

    /// The tickets held as spam, in ticket-number order, read through the `S/` index.
    pub fn spam_tickets(&self) -> Result<Vec<Ticket>, Error> {
        self.indexed_tickets(b"S/")
    }

    fn indexed_tickets(&self, prefix: &[u8]) -> Result<Vec<Ticket>, Error> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (key, _) = item?;
            let ticket_key = format!(
                "t/{}",
                String::from_utf8_lossy(key.get(2..).unwrap_or_default())
            );
            match get_json(&self.tree, &ticket_key)? {
                Some(ticket) => out.push(ticket),
                None => {
                    return Err(Error::Inconsistent(format!(
                        "ticket index {} names {ticket_key}, which does not exist",
                        String::from_utf8_lossy(prefix)
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Tickets by status and flag, and the messages they hold, as of the last ticket write.
    pub fn ticket_figures(&self) -> Result<TicketFigures, Error> {
        Ok(get_json(&self.tree, index::KEY_FIGURES)?.unwrap_or_default())
    }

    pub fn messages(&self, id: TicketId) -> Result<Vec<StoredMessage>, Error> {
        scan_json(&self.tree, format!("m/{:020}/", id.0).as_bytes())
    }

    pub fn events(&self, id: TicketId) -> Result<Vec<Event>, Error> {
        scan_json(&self.tree, format!("e/{:020}/", id.0).as_bytes())
    }

    /// The raw bytes a message was received as.
    pub fn raw(&self, id: TicketId, seq: u32) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(raw_key(id, seq).as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// The ticket and position of the message with this dedupe key, if one was stored.
    pub fn find_key(&self, key: &MailKey) -> Result<Option<(TicketId, u32)>, Error> {
        get_json(&self.tree, &mail_key_key(key))
    }

    /// One stored message of a ticket.
    pub fn message(&self, id: TicketId, seq: u32) -> Result<Option<StoredMessage>, Error> {
        get_json(&self.tree, &message_key(id, seq))
    }

    /// The ticket holding a message (incoming or sent) with this Message-ID.
    pub fn find_message_id(&self, id: &MessageId) -> Result<Option<TicketId>, Error> {
        get_json(&self.tree, &message_id_key(id))
    }

    /// The requester's tickets, in ticket-number order.
    pub fn tickets_of_requester(&self, address: &str) -> Result<Vec<TicketId>, Error> {
        let prefix = requester_prefix(address);
        let mut ids = Vec::new();
        for item in self.tree.scan_prefix(prefix.as_bytes()) {
            let (key, _) = item?;
            let text = String::from_utf8_lossy(&key);
            let number = text
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| Error::Inconsistent(format!("bad requester index key {text}")))?;
            ids.push(TicketId(number));
        }
        Ok(ids)
    }

    pub fn cursor(&self, mailbox: &str) -> Result<Option<Cursor>, Error> {
        get_json(&self.tree, &cursor_key(mailbox))
    }

    /// Failed processing attempts recorded for one IMAP message.
    pub fn attempts(&self, source: &Source) -> Result<u32, Error> {
        Ok(get_json(&self.tree, &attempts_key(source))?.unwrap_or(0))
    }

    /// The messages the process stage was working on when it last marked a batch as started;
    /// after a crash these are the suspects.
    pub fn in_flight(&self) -> Result<Vec<Source>, Error> {
        Ok(get_json(&self.tree, KEY_IN_FLIGHT)?.unwrap_or_default())
    }

    pub fn quarantine(&self) -> Result<Vec<QuarantineEntry>, Error> {
        scan_json(&self.tree, b"q/")
    }

    pub fn quarantined_raw(&self, source: &Source) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(quarantine_raw_key(source).as_bytes())?
            .map(|v| v.to_vec()))
    }

    pub fn agent(&self, id: &AgentId) -> Result<Option<Agent>, Error> {
        get_json(&self.tree, &agent_key(id))
    }

    /// Every registered agent, by id.
    pub fn agents(&self) -> Result<Vec<Agent>, Error> {
        scan_json(&self.tree, b"g/")
    }

    /// The local date (YYYY-MM-DD) of the last digest sent.
    pub fn last_digest(&self) -> Result<Option<String>, Error> {
        get_json(&self.tree, KEY_LAST_DIGEST)
    }

    /// The rota as last imported (its TOML source), if any.
    pub fn rota(&self) -> Result<Option<String>, Error> {
        get_json(&self.tree, KEY_ROTA)
    }

    /// The outbox in sending order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        scan_json(&self.tree, b"o/")
    }

    /// The bytes an outbox entry sends.
    pub fn outbox_raw(&self, id: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(outbox_raw_key(id).as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// The highest ticket number handed out so far (0 for an empty store).
    pub fn last_ticket_id(&self) -> Result<TicketId, Error> {
        Ok(TicketId(
            self.tree
                .get(KEY_NEXT_TICKET)?
                .map(|v| decode_u64(&v))
                .transpose()?
                .unwrap_or(1)
                .saturating_sub(1),
        ))
    }

    /// Messages the relay gave up on, in the order they had in the outbox.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        scan_json(&self.tree, b"d/")
    }

    /// The bytes a dead letter would have sent (missing when the outbox had lost them too).
    pub fn dead_letter_raw(&self, id: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(dead_letter_raw_key(id).as_bytes())?
            .map(|v| v.to_vec()))
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
    /// Hands out the next ticket number; numbers are never reused.
    pub fn allocate_ticket_id(&self) -> TxResult<TicketId> {
        let next = match self.tree.get(KEY_NEXT_TICKET)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        self.tree.insert(
            KEY_NEXT_TICKET,
            next.saturating_add(1).to_be_bytes().to_vec(),
        )?;
        Ok(TicketId(next))
    }

    pub fn ticket(&self, id: TicketId) -> TxResult<Option<Ticket>> {
        self.get(&ticket_key(id))
    }

    /// Writes the ticket record and keeps the requester index, the active-ticket index and the
    /// ticket figures in step.
    pub fn put_ticket(&self, ticket: &Ticket) -> TxResult<()> {
        let key = ticket_key(ticket.id);
        let previous: Option<Ticket> = self.get(&key)?;
        let mut figures: TicketFigures = self.get(index::KEY_FIGURES)?.unwrap_or_default();
        if let Some(previous) = &previous {
            figures.count(previous, false);
        }
        figures.count(ticket, true);
        self.put(index::KEY_FIGURES, &figures)?;
        let active = index::active_key(ticket.id);
        if ticket.status.is_active() {
            self.tree.insert(active.as_bytes(), Vec::new())?;
        } else if previous.as_ref().is_some_and(|p| p.status.is_active()) {
            self.tree.remove(active.as_bytes())?;
        }
        let spam = index::spam_key(ticket.id);
        if ticket.status == crate::model::Status::Spam {
            self.tree.insert(spam.as_bytes(), Vec::new())?;
        } else if previous.is_some_and(|p| p.status == crate::model::Status::Spam) {
            self.tree.remove(spam.as_bytes())?;
        }
        self.put(&key, ticket)?;
        self.tree.insert(
            requester_key(&ticket.requester, ticket.id).as_bytes(),
            Vec::new(),
        )?;
        Ok(())
    }

    /// Raw bytes of a message, inside the transaction.
    pub fn raw(&self, id: TicketId, seq: u32) -> TxResult<Option<Vec<u8>>> {
        Ok(self
            .tree
            .get(raw_key(id, seq).as_bytes())?
            .map(|v| v.to_vec()))
    }

    pub fn event(&self, id: TicketId, seq: u32) -> TxResult<Option<Event>> {
        self.get(&event_key(id, seq))
    }

    /// Removes a message record and its raw bytes (the indexes are the caller's to repoint).
    pub fn remove_message(&self, id: TicketId, seq: u32) -> TxResult<()> {
        self.tree.remove(message_key(id, seq).as_bytes())?;
        self.tree.remove(raw_key(id, seq).as_bytes())?;
        Ok(())
    }

    pub fn remove_event(&self, id: TicketId, seq: u32) -> TxResult<()> {
        self.tree.remove(event_key(id, seq).as_bytes())?;
        Ok(())
    }

    /// Lists `ticket` among `address`'s tickets (a merge brings another requester along).
    pub fn index_requester(&self, address: &str, ticket: TicketId) -> TxResult<()> {
        self.tree
            .insert(requester_key(address, ticket).as_bytes(), Vec::new())?;
        Ok(())
    }

    pub fn message(&self, id: TicketId, seq: u32) -> TxResult<Option<StoredMessage>> {
        self.get(&message_key(id, seq))
    }

    /// Stores a message with its raw bytes and indexes its dedupe key and Message-ID.
    pub fn put_message(&self, message: &StoredMessage, raw: Option<&[u8]>) -> TxResult<()> {
        self.put(&message_key(message.ticket, message.seq), message)?;
        if let Some(raw) = raw {
            self.tree.insert(
                raw_key(message.ticket, message.seq).as_bytes(),
                raw.to_vec(),
            )?;
        }
        self.put(&mail_key_key(&message.key), &(message.ticket, message.seq))?;
        // A message filed under another key although it has a Message-ID reused that id
        // (`threading::Dedupe::Reused`): the id keeps naming the ticket it was first seen in.
        if let Some(id) = &message.message_id
            && !matches!(&message.key, MailKey::ContentHash(_))
        {
            self.index_message_id(id, message.ticket)?;
        }
        Ok(())
    }

    /// Records that a Message-ID belongs to a ticket (also used for mail the helpdesk sends,
    /// so replies to it thread back).
    pub fn index_message_id(&self, id: &MessageId, ticket: TicketId) -> TxResult<()> {
        self.put(&message_id_key(id), &ticket)
    }

    pub fn find_key(&self, key: &MailKey) -> TxResult<Option<(TicketId, u32)>> {
        self.get(&mail_key_key(key))
    }

    /// Appends an event to the ticket's log and bumps its event count. The caller writes the
    /// ticket back with [`WriteTx::put_ticket`].
    pub fn add_event(&self, ticket: &mut Ticket, event: &Event) -> TxResult<()> {
        self.put(&event_key(ticket.id, ticket.event_count), event)?;
        ticket.event_count = ticket.event_count.saturating_add(1);
        Ok(())
    }

    pub fn set_cursor(&self, mailbox: &str, cursor: &Cursor) -> TxResult<()> {
        self.put(&cursor_key(mailbox), cursor)
    }

    pub fn cursor(&self, mailbox: &str) -> TxResult<Option<Cursor>> {
        self.get(&cursor_key(mailbox))
    }

    pub fn agent(&self, id: &AgentId) -> TxResult<Option<Agent>> {
        self.get(&agent_key(id))
    }

    pub fn put_agent(&self, agent: &Agent) -> TxResult<()> {
        self.put(&agent_key(&agent.id), agent)
    }

    pub fn remove_agent(&self, id: &AgentId) -> TxResult<()> {
        self.tree.remove(agent_key(id).as_bytes())?;
        Ok(())
    }

    pub fn set_last_digest(&self, date: &str) -> TxResult<()> {
        self.put(KEY_LAST_DIGEST, &date)
    }

    pub fn set_rota(&self, source: &str) -> TxResult<()> {
        self.put(KEY_ROTA, &source)
    }

    /// Adds a message to the outbox, in the same transaction as the ticket change that caused
    /// it. The entry's `id` is assigned here and returned.
    pub fn enqueue(&self, entry: &OutboxEntry, raw: &[u8]) -> TxResult<u64> {
        let id = match self.tree.get(KEY_NEXT_OUTBOX)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        self.tree
            .insert(KEY_NEXT_OUTBOX, id.saturating_add(1).to_be_bytes().to_vec())?;
        let entry = OutboxEntry {
            id,
            ..entry.clone()
        };
        self.put(&outbox_key(id), &entry)?;
        self.tree
            .insert(outbox_raw_key(id).as_bytes(), raw.to_vec())?;
        if let Some(ticket) = entry.ticket {
            self.index_message_id(&entry.message_id, ticket)?;
        }
        Ok(id)
    }

    /// Records a failed attempt (attempts, next try, error) on an outbox entry.
    pub fn update_outbox(&self, entry: &OutboxEntry) -> TxResult<()> {
        self.put(&outbox_key(entry.id), entry)
    }

    /// Removes a sent (or abandoned) message from the outbox.
    pub fn remove_outbox(&self, id: u64) -> TxResult<()> {
        self.tree.remove(outbox_key(id).as_bytes())?;
        self.tree.remove(outbox_raw_key(id).as_bytes())?;
        Ok(())
    }

    pub fn set_in_flight(&self, sources: &[Source]) -> TxResult<()> {
        self.put(KEY_IN_FLIGHT, &sources)
    }

    pub fn set_attempts(&self, source: &Source, attempts: u32) -> TxResult<()> {
        self.put(&attempts_key(source), &attempts)
    }

    pub fn clear_attempts(&self, source: &Source) -> TxResult<()> {
        self.tree.remove(attempts_key(source).as_bytes())?;
        Ok(())
    }

    pub fn put_quarantine(&self, entry: &QuarantineEntry, raw: &[u8]) -> TxResult<()> {
        self.put(&quarantine_key(&entry.source), entry)?;
        self.tree
            .insert(quarantine_raw_key(&entry.source).as_bytes(), raw.to_vec())?;
        Ok(())
    }

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

    /// An outbox entry as this transaction sees it; the relay checks that an entry still exists
    /// before writing it back.
    pub fn outbox_entry(&self, id: u64) -> TxResult<Option<OutboxEntry>> {
        self.get(&outbox_key(id))
    }

    /// Puts a dead letter back in the outbox under its own id (so its Message-ID and place
    /// stay), due at `now` with a fresh count of attempts, and removes the dead letter. Returns
    /// the entry queued, or `None` when there is no such dead letter or it kept no bytes.
    pub fn requeue_dead_letter(
        &self,
        id: u64,
        now: jiff::Timestamp,
    ) -> TxResult<Option<OutboxEntry>> {
        let Some(dead) = self.get::<DeadLetter>(&dead_letter_key(id))? else {
            return Ok(None);
        };
        let Some(raw) = self.tree.get(dead_letter_raw_key(id).as_bytes())? else {
            return Ok(None);
        };
        let entry = OutboxEntry {
            attempts: 0,
            next_attempt: now,
            last_error: None,
            ..dead.entry
        };
        self.put(&outbox_key(id), &entry)?;
        self.tree
            .insert(outbox_raw_key(id).as_bytes(), raw.to_vec())?;
        self.tree.remove(dead_letter_key(id).as_bytes())?;
        self.tree.remove(dead_letter_raw_key(id).as_bytes())?;
        Ok(Some(entry))
    }

    /// Keeps a message the relay gave up on, under its outbox id, with its bytes when there
    /// are any. The caller removes it from the outbox in the same transaction.
    pub fn put_dead_letter(&self, dead: &DeadLetter, raw: Option<&[u8]>) -> TxResult<()> {
        self.put(&dead_letter_key(dead.entry.id), dead)?;
        if let Some(raw) = raw {
            self.tree
                .insert(dead_letter_raw_key(dead.entry.id).as_bytes(), raw.to_vec())?;
        }
        Ok(())
    }
}

/// What the data-lifecycle operations (backup, restore, retention, erasure) need beyond the
/// daily reads and writes.
impl Store {
    /// Calls `visit` with every record, in key order, while no write transaction runs: writers
    /// wait at the gate until the snapshot is read, so it is consistent. Returns how many
    /// records were visited.
    pub fn snapshot<E>(
        &self,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<u64, SnapshotError<E>> {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let mut count = 0_u64;
        for item in self.tree.iter() {
            let (key, value) = item.map_err(|err| SnapshotError::Store(Error::Io(err)))?;
            visit(&key, &value).map_err(SnapshotError::Visit)?;
            count = count.saturating_add(1);
        }
        Ok(count)
    }

    /// Writes one record as a backup holds it. Only for a store being restored, which nothing
    /// else uses yet.
    pub fn restore_record(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.tree.insert(key, value)?;
        Ok(())
    }

    /// Whether the store holds anything besides its schema version.
    pub fn is_empty(&self) -> Result<bool, Error> {
        for item in self.tree.iter() {
            let (key, _) = item?;
            if key.as_ref() != KEY_SCHEMA {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The IMAP deletions still to be done, oldest first.
    pub fn imap_deletions(&self) -> Result<Vec<ImapDeletion>, Error> {
        scan_json(&self.tree, PREFIX_DELETION)
    }

    /// Wakes the caller after an IMAP deletion has been queued (at once when one was queued
    /// since the last wake-up).
    pub fn watch_imap_deletions(&self) -> Watch {
        Watch(self.deletions_queued.clone())
    }

    /// The index entries that point at any of `tickets`: threading-index keys (`i/…`) and
    /// requester-index keys (`r/…`), including those a merge added for another requester.
    pub fn index_keys_for(
        &self,
        tickets: &std::collections::BTreeSet<TicketId>,
    ) -> Result<Vec<IndexKey>, Error> {
        let mut keys = Vec::new();
        if tickets.is_empty() {
            return Ok(keys);
        }
        for item in self.tree.scan_prefix(b"i/") {
            let (key, value) = item?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let ticket: TicketId = decode(&text, &value)?;
            if tickets.contains(&ticket) {
                keys.push(IndexKey { key: text, ticket });
            }
        }
        for item in self.tree.scan_prefix(b"r/") {
            let (key, _) = item?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let number = text.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
            if let Some(ticket) = number.map(TicketId).filter(|t| tickets.contains(t)) {
                keys.push(IndexKey { key: text, ticket });
            }
        }
        Ok(keys)
    }

    /// Every requester-index key of `address` (`r/{len}:{address}/…`).
    pub fn requester_index_keys(&self, address: &str) -> Result<Vec<IndexKey>, Error> {
        let mut keys = Vec::new();
        for item in self.tree.scan_prefix(requester_prefix(address).as_bytes()) {
            let (key, _) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let ticket = key
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .map(TicketId)
                .ok_or_else(|| Error::Inconsistent(format!("bad requester index key {key}")))?;
            keys.push(IndexKey { key, ticket });
        }
        Ok(keys)
    }
}

/// An index entry found by [`Store::index_keys_for`], to be removed with
/// [`WriteTx::remove_index_key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexKey {
    key: String,
    /// The ticket the entry points at.
    pub ticket: TicketId,
}

/// Why [`Store::snapshot`] stopped: the store failed, or the visitor did.
#[derive(Debug)]
pub enum SnapshotError<E> {
    Store(Error),
    Visit(E),
}

/// A subscription to new entries of the IMAP deletion queue.
pub struct Watch(Arc<tokio::sync::Notify>);

impl Watch {
    /// Returns once a deletion has been queued since the last call.
    pub async fn changed(&mut self) {
        self.0.notified().await;
    }
}

/// Removals for retention and erasure.
impl WriteTx<'_> {
    /// Removes a ticket record, its requester-index and active-index entries, its spam verdict
    /// and its part of the ticket figures (messages, events and other index
    /// entries are removed one by one by the caller).
    pub fn remove_ticket(&self, ticket: &Ticket) -> TxResult<()> {
        // The stored record is what the figures and the active-ticket index counted.
        if let Some(stored) = self.get::<Ticket>(&ticket_key(ticket.id))? {
            let mut figures: TicketFigures = self.get(index::KEY_FIGURES)?.unwrap_or_default();
            figures.count(&stored, false);
            self.put(index::KEY_FIGURES, &figures)?;
        }
        self.tree.remove(index::active_key(ticket.id).as_bytes())?;
        self.tree.remove(index::spam_key(ticket.id).as_bytes())?;
        self.tree.remove(ticket_key(ticket.id).as_bytes())?;
        self.tree
            .remove(requester_key(&ticket.requester, ticket.id).as_bytes())?;
        self.tree.remove(spam_record_key(ticket.id).as_bytes())?;
        Ok(())
    }

    /// Removes a message's dedupe-index entry when it points at this very message.
    pub fn unindex_key(&self, key: &MailKey, ticket: TicketId, seq: u32) -> TxResult<()> {
        if self.find_key(key)? == Some((ticket, seq)) {
            self.tree.remove(mail_key_key(key).as_bytes())?;
        }
        Ok(())
    }

    /// Removes a Message-ID's threading-index entry when it points at `ticket`.
    pub fn unindex_message_id(&self, id: &MessageId, ticket: TicketId) -> TxResult<()> {
        if self.get::<TicketId>(&message_id_key(id))? == Some(ticket) {
            self.tree.remove(message_id_key(id).as_bytes())?;
        }
        Ok(())
    }

    pub fn remove_index_key(&self, key: &IndexKey) -> TxResult<()> {
        self.tree.remove(key.key.as_bytes())?;
        Ok(())
    }

    pub fn remove_dead_letter(&self, id: u64) -> TxResult<()> {
        self.tree.remove(dead_letter_key(id).as_bytes())?;
        self.tree.remove(dead_letter_raw_key(id).as_bytes())?;
        Ok(())
    }

    pub fn remove_quarantine(&self, source: &Source) -> TxResult<()> {
        self.tree.remove(quarantine_key(source).as_bytes())?;
        self.tree.remove(quarantine_raw_key(source).as_bytes())?;
        Ok(())
    }

    /// Queues the deletion of a message's IMAP copies; the entry's `id` is assigned here.
    pub fn queue_imap_deletion(&self, deletion: &ImapDeletion) -> TxResult<u64> {
        let id = match self.tree.get(KEY_NEXT_DELETION)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        self.tree.insert(
            KEY_NEXT_DELETION,
            id.saturating_add(1).to_be_bytes().to_vec(),
        )?;
        let entry = ImapDeletion {
            id,
            ..deletion.clone()
        };
        self.put(&deletion_key(id), &entry)?;
        self.queued.set(true);
        Ok(id)
    }

    /// Removes a done IMAP deletion from the queue.
    pub fn remove_imap_deletion(&self, id: u64) -> TxResult<()> {
        self.tree.remove(deletion_key(id).as_bytes())?;
        Ok(())
    }
}

fn deletion_key(id: u64) -> String {
    format!("p/{id:020}")
}

fn ticket_key(id: TicketId) -> String {
    format!("t/{:020}", id.0)
}

fn message_key(id: TicketId, seq: u32) -> String {
    format!("m/{:020}/{seq:010}", id.0)
}

fn raw_key(id: TicketId, seq: u32) -> String {
    format!("w/{:020}/{seq:010}", id.0)
}

fn event_key(id: TicketId, seq: u32) -> String {
    format!("e/{:020}/{seq:010}", id.0)
}

fn requester_key(address: &str, id: TicketId) -> String {
    format!("{}{:020}", requester_prefix(address), id.0)
}

fn requester_prefix(address: &str) -> String {
    format!("r/{}/", exact(address))
}

/// A free-text key segment (an address) that is followed by more key, written so that no
/// value's segment is a prefix of another's: its length in bytes, `:`, then the text. A scan
/// for `r/{exact(a)}/` finds `a`'s keys only, whatever `a` or any other address holds.
pub(crate) fn exact(text: &str) -> String {
    format!("{}:{text}", text.len())
}

fn mail_key_key(key: &MailKey) -> String {
    format!("k/{}", key.to_index_string())
}

fn message_id_key(id: &MessageId) -> String {
    format!("i/{}", id.as_str())
}

fn cursor_key(mailbox: &str) -> String {
    format!("c/{mailbox}")
}

fn source_suffix(source: &Source) -> String {
    format!(
        "{}/{:010}/{:010}",
        source.mailbox, source.uidvalidity.0, source.uid.0
    )
}

fn attempts_key(source: &Source) -> String {
    format!("a/{}", source_suffix(source))
}

fn quarantine_key(source: &Source) -> String {
    format!("q/{}", source_suffix(source))
}

fn quarantine_raw_key(source: &Source) -> String {
    format!("Q/{}", source_suffix(source))
}

fn agent_key(id: &AgentId) -> String {
    format!("g/{}", id.0)
}

fn outbox_key(id: u64) -> String {
    format!("o/{id:020}")
}

fn outbox_raw_key(id: u64) -> String {
    format!("O/{id:020}")
}

fn dead_letter_key(id: u64) -> String {
    format!("d/{id:020}")
}

fn dead_letter_raw_key(id: u64) -> String {
    format!("D/{id:020}")
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

mod loops;
pub use loops::Counter;
mod auth;
pub use auth::Sent;
/// The spam classifier's records (`bayes/…`) and the verdicts that held tickets as spam
/// (`spam/{ticket}`), stored as the spam rules give them.
const KEY_CLASSIFIER_DOCS: &str = "bayes/docs";

fn classifier_token_key(token: &str) -> String {
    format!("bayes/t/{token}")
}

fn classifier_learned_key(mail_key: &str) -> String {
    format!("bayes/m/{mail_key}")
}

fn spam_record_key(id: TicketId) -> String {
    format!("spam/{:020}", id.0)
}

impl Store {
    /// How many spam and ham messages the classifier has learned.
    pub fn classifier_docs(&self) -> Result<crate::model::Docs, Error> {
        Ok(get_json(&self.tree, KEY_CLASSIFIER_DOCS)?.unwrap_or_default())
    }

    /// In how many learned spam and ham messages a token appeared.
    pub fn classifier_counts(&self, token: &str) -> Result<Option<crate::model::Counts>, Error> {
        get_json(&self.tree, &classifier_token_key(token))
    }

    /// Why a ticket is held as spam.
    pub fn spam_record<R: serde::de::DeserializeOwned>(
        &self,
        id: TicketId,
    ) -> Result<Option<R>, Error> {
        get_json(&self.tree, &spam_record_key(id))
    }
}

impl WriteTx<'_> {
    pub fn classifier_docs(&self) -> TxResult<crate::model::Docs> {
        Ok(self.get(KEY_CLASSIFIER_DOCS)?.unwrap_or_default())
    }

    pub fn set_classifier_docs(&self, docs: crate::model::Docs) -> TxResult<()> {
        self.put(KEY_CLASSIFIER_DOCS, &docs)
    }

    pub fn classifier_counts(&self, token: &str) -> TxResult<Option<crate::model::Counts>> {
        self.get(&classifier_token_key(token))
    }

    /// Stores a token's counts; a token no learned message holds any more is removed.
    pub fn set_classifier_counts(&self, token: &str, counts: crate::model::Counts) -> TxResult<()> {
        if counts.spam == 0 && counts.ham == 0 {
            self.tree.remove(classifier_token_key(token).as_bytes())?;
            return Ok(());
        }
        self.put(&classifier_token_key(token), &counts)
    }

    /// The label a message (by its dedupe key) was learned with.
    pub fn trained_label(&self, mail_key: &str) -> TxResult<Option<crate::model::Label>> {
        self.get(&classifier_learned_key(mail_key))
    }

    pub fn set_trained_label(&self, mail_key: &str, label: crate::model::Label) -> TxResult<()> {
        self.put(&classifier_learned_key(mail_key), &label)
    }

    /// Asks for the store to be rewritten into a fresh directory at its next open, so that
    /// what this transaction removed is gone from disk too (erasure).
    pub fn request_compaction(&self) -> TxResult<()> {
        self.tree.insert(compact::KEY_COMPACT, b"1".to_vec())?;
        Ok(())
    }

    /// Forgets that a message was learned (erasure; its tokens are subtracted by the caller).
    pub fn remove_trained_label(&self, mail_key: &str) -> TxResult<()> {
        self.tree
            .remove(classifier_learned_key(mail_key).as_bytes())?;
        Ok(())
    }

    pub fn put_spam_record<R: Serialize>(&self, id: TicketId, record: &R) -> TxResult<()> {
        self.put(&spam_record_key(id), record)
    }
}
mod accounting;
pub use accounting::{Checked, ReportedMissing};
mod backfill;
pub mod verify;

#[cfg(test)]
mod tests;

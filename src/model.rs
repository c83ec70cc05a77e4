//! Domain types: tickets, the messages and events in them, IMAP cursors, quarantine entries.
//!
//! Pure data with no I/O. The store persists them as JSON records under a schema version
//! (see `store::SCHEMA_VERSION`); a change of meaning here needs a new version and a migration.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, MailKey, MessageId, TicketId, Uid, UidValidity};

/// Where a ticket stands. `Waiting` means waiting on the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Open,
    Waiting,
    Closed,
    Spam,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Waiting => "waiting",
            Status::Closed => "closed",
            Status::Spam => "spam",
        }
    }

    /// Open for threading: a requester's new mail joins such a ticket.
    pub fn is_active(self) -> bool {
        matches!(self, Status::New | Status::Open | Status::Waiting)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something about a ticket that a caseworker should see at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketFlag {
    /// A message in it could not be parsed; its raw bytes are kept.
    Unreadable,
    /// A message in it arrived in a junk folder.
    SuspectedSpam,
    /// An attachment was over the size limit and is kept in the raw message only.
    AttachmentTooLarge,
    /// Imported by the first-run backfill: never routed or notified automatically.
    Backfilled,
    /// Nobody on duty could take it yet; it is assigned when a shift starts.
    Unassigned,
    /// A message in it was over `[ingest] max_message_size`: only its header fields were
    /// fetched, the whole message stays on the mail server.
    TooLarge,
    /// The requester's address is one casemail cannot write to (see
    /// `parse::Anomaly::UnusableAddress`): answers must reach them another way.
    Unanswerable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub status: Status,
    pub subject: String,
    /// The requester's address, lower-cased.
    pub requester: String,
    pub requester_name: Option<String>,
    pub owner: Option<AgentId>,
    /// When the current owner was given the ticket (for handover after `answer_within`).
    #[serde(default)]
    pub assigned_at: Option<Timestamp>,
    /// When an agent last answered the requester or acted on the ticket.
    #[serde(default)]
    pub last_agent_reply: Option<Timestamp>,
    /// Set when this ticket was merged into another: its messages and events moved there, and
    /// mail that would have joined this ticket joins that one.
    #[serde(default)]
    pub merged_into: Option<TicketId>,
    /// Every address that has written into this ticket, lower-cased.
    pub participants: BTreeSet<String>,
    pub flags: BTreeSet<TicketFlag>,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub message_count: u32,
    pub event_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From a requester (or anyone outside) into the helpdesk.
    In,
    /// Sent by the helpdesk.
    Out,
    /// Internal, never sent to the requester.
    Note,
}

/// Where a fetched message came from on the IMAP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub mailbox: String,
    pub uidvalidity: UidValidity,
    pub uid: Uid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub name: Option<String>,
    pub content_type: String,
    pub size: u64,
    /// False when the attachment was over the size limit and lives in the raw message only.
    pub kept: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub ticket: TicketId,
    /// Position in the ticket, from 0.
    pub seq: u32,
    pub direction: Direction,
    pub key: MailKey,
    pub message_id: Option<MessageId>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub date: Option<Timestamp>,
    pub received: Timestamp,
    pub in_reply_to: Vec<MessageId>,
    pub references: Vec<MessageId>,
    pub text: String,
    pub attachments: Vec<AttachmentMeta>,
    /// What was wrong with the message, in words (empty for a clean message).
    pub anomalies: Vec<String>,
    /// Every IMAP copy this message was seen as (INBOX and Junk, two help addresses).
    pub sources: Vec<Source>,
}

/// How the anomaly of a caseworker's answer that was not sent to the requester begins; the
/// rest says why. `ticket show` marks such an answer as not sent.
pub const ANSWER_NOT_SENT: &str = "answer not sent to the requester: ";

/// Who did something to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Actor {
    System,
    Requester(String),
    Agent(AgentId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub actor: Actor,
    /// A stable machine-readable name (`created`, `message_added`, `duplicate_seen`, …).
    pub kind: String,
    /// Human-readable detail; never a message body.
    pub detail: String,
}

/// How far a mailbox has been imported (RFC 3501 §2.3.1.1: UIDs are only meaningful together
/// with the UIDVALIDITY they were issued under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub uidvalidity: UidValidity,
    /// Every UID up to and including this one is committed (or quarantined).
    pub last_uid: Uid,
}

/// A message that could not be processed; its raw bytes are kept with the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub source: Source,
    pub at: Timestamp,
    pub attempts: u32,
    pub reason: String,
    pub size: u64,
}

/// What an agent may do; coordinators also manage agents, the rota and merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Coordinator,
}

/// A caseworker, registered by a coordinator. Their addresses never leave the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    /// Every address the agent may reply from, lower-cased; the first receives notifications.
    pub emails: Vec<String>,
    pub role: Role,
    /// Most open tickets the agent is given at once; `None` means no cap.
    pub max_open: Option<u32>,
    /// Set while the agent has stepped away.
    pub away: Option<Away>,
    pub created: Timestamp,
    /// Position of this agent's latest assignment in the helpdesk-wide sequence; routing breaks
    /// ties by giving the ticket to whoever waited longest.
    #[serde(default)]
    pub last_assigned: Option<u64>,
}

/// An agent's time away. A separate record rather than `Option<Option<_>>`, whose two "none"
/// cases JSON cannot tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Away {
    /// When they are back; `None` means until they say so (`agent back`).
    pub until: Option<Timestamp>,
}

/// The requester recorded when a message has no usable sender at all.
pub const UNKNOWN_SENDER: &str = "unknown-sender@invalid";

/// Why casemail sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    Notification,
    Relay,
    Acknowledgement,
    Bounce,
    Digest,
}

impl OutboxKind {
    /// The outbox kind as stored (`notification`, `relay`, …), for events, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            OutboxKind::Notification => "notification",
            OutboxKind::Relay => "relay",
            OutboxKind::Acknowledgement => "acknowledgement",
            OutboxKind::Bounce => "bounce",
            OutboxKind::Digest => "digest",
        }
    }
}

/// A message waiting to be sent. Stored before the first attempt, with a Message-ID fixed at
/// creation, so a resend after a crash is recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox, from 1; sending goes in this order.
    pub id: u64,
    pub kind: OutboxKind,
    pub ticket: Option<TicketId>,
    pub message_id: MessageId,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub created: Timestamp,
    pub attempts: u32,
    pub next_attempt: Timestamp,
    pub last_error: Option<String>,
}

/// An outbox entry the SMTP server refused for good (or that could not be sent at all), kept
/// with its raw bytes under the same id so an agent or operator can act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The entry as it was when it failed, `attempts` and `last_error` included.
    pub entry: OutboxEntry,
    pub failed_at: Timestamp,
    /// Why it failed, in words; server replies have their addresses blanked out.
    pub error: String,
    /// Whether the caseworker (or the coordinators) have been told.
    #[serde(default)]
    pub reported: bool,
    /// The SMTP reply code when the server refused the message (a 5xx), so a refused address
    /// can be suppressed.
    #[serde(default)]
    pub refused_code: Option<u16>,
}

/// An address casemail sends nothing to until `until`, because mail to it bounced for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Lower-cased.
    pub address: String,
    pub since: Timestamp,
    pub until: Timestamp,
    /// Why, in words: the delivery status or SMTP reply code, never a message text.
    pub reason: String,
    /// The ticket whose mail bounced, when there is one.
    pub ticket: Option<TicketId>,
}

/// IMAP copies of a purged or erased message, queued in the store (in the same transaction as
/// the purge) for the fetch side to delete from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImapDeletion {
    /// Position in the queue, from 1.
    pub id: u64,
    pub queued: Timestamp,
    /// Finds the copies that a move to the processed folder gave new UIDs: a Message-ID is
    /// searched for as a header, a content hash is checked against candidates from `from`.
    pub key: Option<MailKey>,
    /// The sender, kept only for a message without a Message-ID (its copies are found by
    /// searching for the sender and checking each candidate's content hash).
    #[serde(default)]
    pub from: Option<String>,
    /// Where the message was fetched from: deleted by UID there when the UIDVALIDITY still
    /// matches (mail left in place, or not yet moved).
    pub sources: Vec<Source>,
}

/// Whether a folder's mail is ordinary requester mail or arrived in a junk folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    Requests,
    Junk,
}

/// Whether a message is new, or was already in the folder on the first run (backfill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Live,
    Backfill,
}

// The spam classifier's stored records (see `spam::bayes`).

/// Which way a message was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Spam,
    Ham,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Spam => "spam",
            Label::Ham => "ham",
        }
    }
}

/// How many messages of each kind a token appeared in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub spam: u32,
    pub ham: u32,
}

/// How many messages of each kind were learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Docs {
    pub spam: u64,
    pub ham: u64,
}

//! `casemail status`, the daemon's side: what it answers about itself (its health marks, each
//! watched folder, the relay) and the store's figures an operator watches. The CLI prints it
//! (`cli::status`), or reads the store itself when no daemon runs.

use std::collections::BTreeMap;

use anyhow::Context as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, StoreFigures};
use crate::model::Status as TicketStatus;
use crate::store::{self, Store};

/// The running daemon's answer to the control socket's `status` query, as JSON: the reply's stdout.
pub(crate) fn answer(store: &Store, metrics: &Metrics, now: Timestamp) -> anyhow::Result<String> {
    let figures = StoreReport::read(store).context("cannot read the store")?;
    let problems = metrics.problems(figures.outbox_oldest, now);
    let view = metrics.view();
    let answer = Answer {
        started: view.started,
        problems,
        folders: view
            .folders
            .into_iter()
            .map(|folder| Folder {
                state: if folder.down.is_some() {
                    FolderState::Down
                } else {
                    FolderState::Up
                },
                name: folder.name,
                paused: false,
                since: Some(folder.since),
                last_contact: folder.last_success,
                error: folder.down,
            })
            .collect(),
        relay: Relay {
            sent: view.relay_sent,
            deferred: view.relay_deferred,
            failed: view.relay_failed,
        },
        store: figures,
    };
    Ok(serde_json::to_string(&answer)?)
}

/// What the daemon sends back: its view and the store's figures.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) started: Timestamp,
    pub(crate) problems: Vec<String>,
    pub(crate) folders: Vec<Folder>,
    pub(crate) relay: Relay,
    pub(crate) store: StoreReport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FolderState {
    /// Logged in and selected.
    Up,
    /// Reconnecting, or never connected yet.
    Down,
    /// The daemon is not running, so nobody knows.
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Folder {
    pub(crate) name: String,
    pub(crate) state: FolderState,
    /// Watched but nothing filed from it (`imap.paused_folders`).
    pub(crate) paused: bool,
    /// When the folder entered its state.
    pub(crate) since: Option<Timestamp>,
    /// The last login or completed pass (fetch, poll or IDLE round).
    pub(crate) last_contact: Option<Timestamp>,
    /// Why the session is down.
    pub(crate) error: Option<String>,
}

/// Outbox messages the relay settled since the daemon started.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Relay {
    pub(crate) sent: u64,
    pub(crate) deferred: u64,
    pub(crate) failed: u64,
}

/// What the store holds that an operator watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoreReport {
    /// Tickets by status; every status is present.
    pub(crate) tickets: BTreeMap<String, u64>,
    pub(crate) outbox: u64,
    pub(crate) outbox_oldest: Option<Timestamp>,
    /// Outbox messages the relay tried and will try again (SMTP down, a 4xx).
    pub(crate) outbox_retrying: u64,
    /// Why the most recently deferred of those failed.
    pub(crate) last_send_error: Option<String>,
    pub(crate) dead_letters: u64,
    pub(crate) quarantine: u64,
    /// The local date (in `rota.timezone`) of the last digest sent.
    pub(crate) last_digest: Option<String>,
}

impl StoreReport {
    pub(crate) fn read(store: &Store) -> Result<StoreReport, store::Error> {
        let figures = StoreFigures::read(store)?;
        let tickets = [
            TicketStatus::New,
            TicketStatus::Open,
            TicketStatus::Waiting,
            TicketStatus::Closed,
            TicketStatus::Spam,
        ]
        .into_iter()
        .map(|status| {
            let count = figures.tickets.get(&status).copied().unwrap_or(0);
            (status.as_str().to_owned(), count)
        })
        .collect();
        let retrying: Vec<_> = store
            .outbox()?
            .into_iter()
            .filter(|entry| entry.attempts > 0)
            .collect();
        let last_send_error = retrying
            .iter()
            .filter(|entry| entry.last_error.is_some())
            .max_by_key(|entry| entry.next_attempt)
            .and_then(|entry| entry.last_error.clone());
        Ok(StoreReport {
            tickets,
            outbox: figures.outbox,
            outbox_oldest: figures.outbox_oldest,
            outbox_retrying: retrying.len() as u64,
            last_send_error,
            dead_letters: figures.dead_letters,
            quarantine: figures.quarantine,
            last_digest: store.last_digest()?,
        })
    }
}

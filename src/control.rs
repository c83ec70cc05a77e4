//! The running daemon's control surface, and the only module that listens on a socket.
//!
//! - **The Unix socket** (`[control] socket`, mode 0600, peers must be the daemon's own user or
//!   root). sled locks the store while the daemon runs, so the CLI sends its store commands
//!   here and the daemon runs them with [`ops::execute`](crate::ops::execute) on its own store handle. One request
//!   per connection: a JSON line `{"version":1,"command":{"op":"ticket_list",…}}` answered by a JSON line
//!   `{"ok":true,"stdout":"…"}` or `{"ok":false,"stdout":"…","error":"…","exit":1}`.
//!   `backup` is the one exception: after its reply line the daemon streams the snapshot (the
//!   backup file's bytes) and closes the connection. `{"op":"status"}` asks the daemon about
//!   itself (`casemail status`) and is answered from its health marks, beside the commands. A
//!   real erasure is run by the process stage, the single writer, as a
//!   [`process::Job`](crate::process::Job).
//! - **Health and metrics** over HTTP/1.1 on the loopback `[control] http` address:
//!   `GET /healthz` and `GET /metrics`, read-only, one request per connection.
//!
//! Commands run one at a time. They are small independent transactions (agent records, the
//! rota, an agent's tickets going back to routing) beside the process stage, which stays the
//! only writer of filed mail; after a command that changes agents or the rota, the process
//! stage is told to load its team again.
//!
//! A lock file next to the socket (`<socket>.lock`) is held for the daemon's life, so a second
//! daemon refuses to start instead of removing the first one's socket, while a socket left by
//! a daemon that died is replaced.
//!
//! This module must not hold business rules: what a command does is `cli` and `admin`, what
//! the figures mean is `metrics`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ops::StoreCommand;
use crate::store::Store;

mod client;
mod commands;
mod http;
mod listeners;
#[cfg(test)]
mod tests;

pub(crate) use client::{request, request_stream};
pub(crate) use listeners::Listeners;

/// The request format this build speaks; a request with another version is refused.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// The file, in the state directory, holding the address the HTTP listener is bound to (useful
/// when `[control] http` asks for port 0).
pub(crate) const HTTP_ADDR_FILE: &str = "http.addr";

/// Exit status the CLI uses for a command the daemon ran and that failed (a runtime failure).
const EXIT_FAILED: u8 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Request<C = StoreCommand> {
    version: u32,
    command: C,
}

/// A question about the daemon itself rather than the store, sent like a store command:
/// `{"version":1,"command":{"op":"status"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum DaemonQuery {
    /// `casemail status`: answered with [`cli::status::answer`]'s JSON as the reply's stdout.
    Status,
}

/// What a request on the socket asks for.
#[derive(Debug)]
enum Asked {
    Store(StoreCommand),
    Daemon(DaemonQuery),
}

/// The daemon's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub ok: bool,
    /// What the command printed, to be printed by the CLI as it is.
    #[serde(default)]
    pub stdout: String,
    /// Why the command failed (the whole error chain, as the CLI prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit status the CLI should end with when the command failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<u8>,
}

impl Reply {
    fn succeeded(stdout: String) -> Reply {
        Reply {
            ok: true,
            stdout,
            error: None,
            exit: None,
        }
    }

    fn failed(stdout: String, error: String) -> Reply {
        Reply {
            ok: false,
            stdout,
            error: Some(error),
            exit: Some(EXIT_FAILED),
        }
    }
}

/// What the control tasks share with the rest of the daemon.
pub(crate) struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Notified after a command that changed agents or the rota.
    pub team_changed: Arc<Notify>,
    /// Held while a command runs, so commands never interleave (two `agent add` with the same
    /// id cannot both pass the uniqueness check).
    commands: tokio::sync::Mutex<()>,
    /// The process stage, for commands that must run in the single writer (an erasure).
    writer: Option<tokio::sync::mpsc::Sender<crate::process::Job>>,
}

impl Shared {
    pub(crate) fn new(
        store: Store,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        team_changed: Arc<Notify>,
    ) -> Shared {
        Shared {
            store,
            config,
            metrics,
            team_changed,
            commands: tokio::sync::Mutex::new(()),
            writer: None,
        }
    }

    /// Runs erasures in the process stage through `writer` instead of beside it.
    pub(crate) fn with_writer(
        mut self,
        writer: tokio::sync::mpsc::Sender<crate::process::Job>,
    ) -> Shared {
        self.writer = Some(writer);
        self
    }
}

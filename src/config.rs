//! Configuration: defaults, then the TOML file, then `CASEMAIL__SECTION__KEY` environment
//! variables, validated once into the typed [`Config`] every other module reads.
//!
//! This module owns reading the file and secrets; it must not open sockets or the store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

/// A configuration that could not be loaded: names the file, the key and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct Error {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file the config was read from (for messages).
    pub source: PathBuf,
    pub helpdesk: Helpdesk,
    pub imap: Imap,
    pub smtp: Smtp,
    pub control: Control,
    pub threading: Threading,
    pub ingest: Ingest,
}

#[derive(Debug, Clone)]
pub struct Helpdesk {
    /// The shared address, lower-cased (`advocacy@charity.example`).
    pub address: String,
    /// Display name on outgoing mail.
    pub name: String,
    /// Store, secrets and quarantine live here.
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded by STARTTLS.
    StartTls,
    /// No encryption; only accepted towards a loopback host.
    Plain,
}

#[derive(Debug, Clone)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password: SecretString,
    pub ca_file: Option<PathBuf>,
    /// Folders whose mail is requester mail.
    pub folders: Vec<String>,
    /// Folders whose mail is imported as suspected spam (e.g. `Junk`).
    pub junk_folders: Vec<String>,
    /// Where processed mail is moved; `None` leaves it in place (flagged \Seen).
    pub processed_folder: Option<String>,
    pub poll_interval: Duration,
    /// IDLE is re-issued after this long (RFC 2177 asks for less than 29 minutes).
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Control {
    pub socket: PathBuf,
    pub http: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Threading {
    pub one_open_ticket_per_requester: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRun {
    /// Mail already in a folder the first time it is seen is imported silently.
    Backfill,
    /// Mail already there is handled like new mail.
    Notify,
}

#[derive(Debug, Clone)]
pub struct Ingest {
    /// Attachments larger than this are kept in the raw message only.
    pub max_attachment_size: u64,
    pub first_run: FirstRun,
    /// How long one message may take to process before it counts as a failed attempt.
    pub message_time_budget: Duration,
    /// Failed attempts before a message is quarantined.
    pub max_attempts: u32,
    /// How many messages one UID FETCH asks for, and at most how many share one commit.
    pub batch_size: u32,
}

impl Config {
    pub fn redacted_toml(&self) -> String {
        todo!()
    }

    pub fn redacted_json(&self) -> serde_json::Value {
        todo!()
    }
}

pub fn load(path: &Path) -> Result<Config, Error> {
    let _ = path;
    todo!()
}

//! Configuration: defaults, then the TOML file, then `CASEMAIL__SECTION__KEY` environment
//! variables, validated once into the typed [`Config`] every other module reads.
//!
//! This module owns reading the file and secrets; it must not open sockets or the store.
//!
//! Loading goes through three steps. The file is parsed with `toml` and its keys are checked
//! against `SCHEMA`, and so are the environment variables, so that a typo is reported with
//! its exact dotted key. The `config` crate then merges file and environment into a
//! `RawConfig`, whose fields are all optional. Finally `validate` applies the defaults,
//! checks every value and reads the password files, producing a [`Config`] in which nothing is
//! left to interpret: durations, sizes, the time zone and the digest time are typed values.
//!
//! The key check stays here rather than in the `config` crate's deserialisation because the
//! crate reports an unknown key only as serde's text ("unknown field `prot`, expected one of
//! …") attached to its section, takes the keys in hash order (so which of two typos is named
//! would vary from run to run) and cannot say which environment variable set it. Lists in
//! variables (`INBOX,Support`) are split by `StringList` because the crate splits lists only
//! when it also guesses types, which would turn a password "007" into the number 7.
//!
//! The parts, in the order a config passes them: `loading` reads the file and the environment,
//! `schema` checks their keys, `raw` holds what they say, and `validate` produces the
//! [`Config`], with `servers` for `[imap]` and `[smtp]`, `auth`, `oauth2`, `loops` and `spam`
//! for their sections, and `fields` and `values` for single keys; `redact` shows the result back
//! for `check-config`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

mod auth;
mod fields;
mod loading;
mod loops;
mod oauth2;
mod raw;
mod redact;
mod schema;
mod servers;
mod spam;
mod validate;
mod values;

pub use auth::{Auth, WithoutResults};
pub use loading::{load, load_with_env};
pub use loops::{Acknowledge, Loops};
pub use oauth2::{AuthMethod, Flow, OAuth2, Provider};
pub use spam::{Rule as SpamRule, Spam, Target as SpamTarget};

// The sections in their own files (`auth`, `oauth2`, `spam`, …) reach these through `super::`.
use fields::{ca_file, check_text, inline_password, read_password_file};
use raw::StringList;
use schema::{ABSOLUTE_PATH, DURATION, SIZE, expectation};

/// A configuration that could not be loaded: names the file, the key and what was wrong.
///
/// `key` is the dotted path (`imap.port`); it is empty when the problem is not tied to one key,
/// such as an unreadable file or broken TOML syntax. When the value came from an environment
/// variable, `reason` names that variable.
#[derive(Debug)]
pub struct Error {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file the config was read from (for messages).
    pub source: PathBuf,
    pub helpdesk: Helpdesk,
    pub imap: Imap,
    pub smtp: Smtp,
    pub control: Control,
    pub threading: Threading,
    pub auth: Auth,
    pub ingest: Ingest,
    pub rota: RotaSettings,
    pub loops: Loops,
    pub acknowledge: Acknowledge,
    pub spam: Spam,
    pub reconcile: Reconcile,
    pub retention: Retention,
}

/// `[reconcile]`: the scheduled comparison of the watched folders with the store.
#[derive(Debug, Clone)]
pub struct Reconcile {
    /// How often; `None` turns scheduled reconciliation off.
    pub every: Option<Duration>,
}

/// How long closed tickets are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Closed tickets untouched for this long are purged, IMAP copies included; `None` keeps
    /// them for ever.
    pub closed_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Helpdesk {
    /// The shared address, lower-cased (`advocacy@charity.example`).
    pub address: String,
    /// Display name on outgoing mail.
    pub name: String,
    /// Store, secrets and quarantine live here.
    pub state_dir: PathBuf,
    /// Caseworkers' names the relay gate removes from every answer to a requester.
    pub hide_names: Vec<String>,
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

impl Security {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Plain => "plain",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    /// Set when `auth = "password"` (the default); `None` with `auth = "oauth2"`.
    pub password: Option<SecretString>,
    /// Where `password` was read from, when it came from `password_file` (after expanding
    /// `$CREDENTIALS_DIRECTORY`); shown by `check-config` instead of the secret.
    pub password_file: Option<PathBuf>,
    /// The sign-in used instead of the password when `auth = "oauth2"`.
    pub oauth2: Option<OAuth2>,
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
    /// Watched folders casemail files nothing from for now: their lag is measured and they are
    /// reconciled, and their mail is filed once the folder is taken off this list.
    pub paused_folders: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Where `password` was read from, when it came from `password_file`.
    pub password_file: Option<PathBuf>,
    /// The sign-in used instead of the password when `auth = "oauth2"`; `username` is then the
    /// mailbox signed in to.
    pub oauth2: Option<OAuth2>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Control {
    pub socket: PathBuf,
    pub http: SocketAddr,
}

/// How the rota is read and enforced; the shifts themselves live in the store
/// (`casemail rota import`).
#[derive(Debug, Clone)]
pub struct RotaSettings {
    /// The helpdesk's one time zone (`Europe/Berlin`): shift times, the digest, dates given to
    /// the CLI and in `#away until`, and the times the CLI shows are all in it.
    pub timezone: jiff::tz::TimeZone,
    /// An assigned ticket with no agent reply after this long is handed over.
    pub answer_within: Duration,
    /// When the daily digest goes to coordinators, in `timezone`.
    pub digest_at: jiff::civil::Time,
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

impl FirstRun {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            FirstRun::Backfill => "backfill",
            FirstRun::Notify => "notify",
        }
    }
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
    /// A message larger than this (its `RFC822.SIZE`) is not fetched whole: it is filed from its
    /// header fields, flagged, and stays on the server.
    pub max_message_size: u64,
    /// At most this many bytes of mail are fetched by one UID FETCH, and held in memory between
    /// fetch and filing (one message at a time may be up to `max_message_size`).
    pub fetch_bytes: u64,
}

/// Where each value came from, so that messages can name the file or the variable.
struct Sources<'a> {
    file: &'a Path,
    /// Dotted key to the environment variable that set it.
    env_keys: BTreeMap<String, String>,
    env: &'a HashMap<String, String>,
}

impl Sources<'_> {
    fn error(&self, key: &str, reason: impl fmt::Display) -> Error {
        let base = key.split('[').next().unwrap_or(key);
        let reason = match self.env_keys.get(base) {
            Some(var) => format!("{reason} (set by environment variable {var})"),
            None => reason.to_string(),
        };
        Error {
            file: self.file.to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    fn translate(&self, err: ::config::ConfigError) -> Error {
        use ::config::ConfigError;
        match err {
            ConfigError::Type {
                key: Some(key),
                unexpected,
                expected,
                ..
            } => {
                let expects = expectation(&key).unwrap_or(expected);
                self.error(&key, format!("expected {expects}, found {unexpected}"))
            }
            ConfigError::At {
                error,
                key: Some(key),
                ..
            } => match *error {
                ConfigError::Type {
                    unexpected,
                    expected,
                    ..
                } => {
                    let expects = expectation(&key).unwrap_or(expected);
                    self.error(&key, format!("expected {expects}, found {unexpected}"))
                }
                other => self.error(&key, other),
            },
            ConfigError::NotFound(key) => self.error(&key, "missing required key"),
            other => Error {
                file: self.file.to_owned(),
                key: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests;

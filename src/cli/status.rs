//! `casemail status [--json]`: whether the daemon runs, what it sees of IMAP and SMTP, what
//! waits in the store (outbox, dead letters, quarantine), the last digest, and when the OAuth 2.0
//! access token expires.
//!
//! While the daemon runs it answers over the control socket ([`DaemonQuery::Status`]) with its
//! own view: each watched folder's session and last contact, what the relay settled since it
//! started, its health problems (the `/healthz` lines) and the store's figures, read on its
//! handle. When no daemon answers, the store is read here if it can be, and IMAP and SMTP are
//! unknown: this command never connects to a mail server itself, so it reports what the daemon
//! sees, not what this shell can reach.
//!
//! The exit status is 0 only when the daemon runs and has no problem. The JSON (`--json`) is an
//! interface: its keys are always present, `null` where a value cannot be known.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use jiff::Timestamp;
use serde::Serialize;

use crate::config::{Config, OAuth2};
use crate::control::{self, DaemonQuery};
use crate::mail::sanitize::for_terminal;
use crate::ops::status::{Answer, Folder, FolderState, StoreReport};
use crate::store::{self, Store};

/// `casemail status [--json]`.
pub(crate) fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let socket = &config.control.socket;
    let answer = match control::request(socket, &DaemonQuery::Status)? {
        Some(reply) => {
            if let Some(error) = reply.error {
                anyhow::bail!(
                    "the daemon answering on {} could not report its status: {error}",
                    socket.display()
                );
            }
            let answer: Answer = serde_json::from_str(&reply.stdout).with_context(|| {
                format!(
                    "the daemon answering on {} sent a status this casemail cannot read; \
                     use the casemail binary the daemon runs",
                    socket.display()
                )
            })?;
            Some(answer)
        }
        None => None,
    };
    let status = Status::new(config, answer, Timestamp::now());
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&status)?)?;
    } else {
        write!(stdout, "{}", status.text(config))?;
    }
    stdout.flush().context("cannot write to stdout")?;
    if !status.daemon.running {
        anyhow::bail!(
            "the daemon is not running: nothing answers on {}",
            socket.display()
        );
    }
    if !status.healthy {
        anyhow::bail!(
            "the daemon is running with {} problem(s)",
            status.daemon.problems.len()
        );
    }
    Ok(())
}

/// What `status` prints; `--json` is this, serialised.
#[derive(Debug, Serialize)]
struct Status {
    config: String,
    /// The daemon runs and reports no problem.
    healthy: bool,
    daemon: Daemon,
    imap: Imap,
    smtp: Smtp,
    store: StoreSection,
    /// Present when `imap.auth` or `smtp.auth` is `oauth2`.
    oauth2: Option<OAuth2Section>,
}

#[derive(Debug, Serialize)]
struct Daemon {
    running: bool,
    socket: String,
    started: Option<Timestamp>,
    /// What is wrong, one line each, as `/healthz` says it; empty when healthy or not running.
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Imap {
    host: String,
    port: u16,
    security: &'static str,
    folders: Vec<Folder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum SmtpState {
    /// Messages were sent since start and none waits for a retry.
    Ok,
    /// Nothing sent since start and nothing waits for a retry.
    Idle,
    /// Messages wait for another try (SMTP unreachable, a 4xx).
    Retrying,
    /// The daemon is not running.
    Unknown,
}

#[derive(Debug, Serialize)]
struct Smtp {
    host: String,
    port: u16,
    security: &'static str,
    state: SmtpState,
    /// Since the daemon started; `null` when it is not running.
    sent: Option<u64>,
    deferred: Option<u64>,
    failed: Option<u64>,
    /// Why the most recently deferred message in the outbox failed.
    last_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct StoreSection {
    state_dir: String,
    /// `daemon` (read by the running daemon), `direct` (read here) or `null` (not read).
    read_by: Option<&'static str>,
    /// Why the store could not be read.
    error: Option<String>,
    tickets: Option<BTreeMap<String, u64>>,
    outbox: Option<u64>,
    outbox_oldest: Option<Timestamp>,
    dead_letters: Option<u64>,
    quarantine: Option<u64>,
    last_digest: Option<String>,
}

#[derive(Debug, Serialize)]
struct OAuth2Section {
    /// `signed_in`, `not_signed_in` or `refused`; `null` when the token file cannot be read.
    state: Option<&'static str>,
    access_token_expires: Option<Timestamp>,
    access_token_valid: bool,
    refresh_token: bool,
    refused: Option<String>,
    token_file: String,
    /// Why the token file could not be read.
    error: Option<String>,
}

impl Status {
    fn new(config: &Config, answer: Option<Answer>, now: Timestamp) -> Status {
        let state_dir = &config.helpdesk.state_dir;
        let (daemon, folders, relay, report, read_by, store_error) = match answer {
            Some(answer) => {
                let daemon = Daemon {
                    running: true,
                    socket: config.control.socket.display().to_string(),
                    started: Some(answer.started),
                    problems: answer.problems,
                };
                (
                    daemon,
                    answer.folders,
                    Some(answer.relay),
                    Some(answer.store),
                    Some("daemon"),
                    None,
                )
            }
            None => {
                let daemon = Daemon {
                    running: false,
                    socket: config.control.socket.display().to_string(),
                    started: None,
                    problems: Vec::new(),
                };
                let folders = watched_folders(config)
                    .map(|name| Folder {
                        name,
                        state: FolderState::Unknown,
                        paused: false,
                        since: None,
                        last_contact: None,
                        error: None,
                    })
                    .collect();
                let (report, read_by, error) = match read_directly(state_dir) {
                    Ok(report) => (Some(report), Some("direct"), None),
                    Err(err) => (None, None, Some(format!("{err:#}"))),
                };
                (daemon, folders, None, report, read_by, error)
            }
        };
        let folders = folders
            .into_iter()
            .map(|folder| Folder {
                paused: config.imap.paused_folders.contains(&folder.name),
                ..folder
            })
            .collect();
        let retrying = report.as_ref().is_some_and(|r| r.outbox_retrying > 0);
        let smtp_state = match relay {
            None => SmtpState::Unknown,
            Some(_) if retrying => SmtpState::Retrying,
            Some(relay) if relay.sent > 0 => SmtpState::Ok,
            Some(_) => SmtpState::Idle,
        };
        let oauth2 = config
            .imap
            .oauth2
            .as_ref()
            .or(config.smtp.oauth2.as_ref())
            .map(|oauth2| OAuth2Section::read(oauth2, now));
        Status {
            config: config.source.display().to_string(),
            healthy: daemon.running && daemon.problems.is_empty(),
            daemon,
            imap: Imap {
                host: config.imap.host.clone(),
                port: config.imap.port,
                security: config.imap.security.as_str(),
                folders,
            },
            smtp: Smtp {
                host: config.smtp.host.clone(),
                port: config.smtp.port,
                security: config.smtp.security.as_str(),
                state: smtp_state,
                sent: relay.map(|r| r.sent),
                deferred: relay.map(|r| r.deferred),
                failed: relay.map(|r| r.failed),
                last_error: report.as_ref().and_then(|r| r.last_send_error.clone()),
            },
            store: StoreSection {
                state_dir: state_dir.display().to_string(),
                read_by,
                error: store_error,
                tickets: report.as_ref().map(|r| r.tickets.clone()),
                outbox: report.as_ref().map(|r| r.outbox),
                outbox_oldest: report.as_ref().and_then(|r| r.outbox_oldest),
                dead_letters: report.as_ref().map(|r| r.dead_letters),
                quarantine: report.as_ref().map(|r| r.quarantine),
                last_digest: report.and_then(|r| r.last_digest),
            },
            oauth2,
        }
    }

    /// The human form: one line per subject, every server- or store-supplied text escaped.
    fn text(&self, config: &Config) -> String {
        let zone = config.rota.timezone.clone();
        let when = |at: Timestamp| {
            at.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        };
        let mut out = String::new();
        let mut line = |name: &str, value: &str| {
            out.push_str(&format!("{name:<14}{value}\n"));
        };

        match self.daemon.started {
            Some(started) if self.daemon.running => line(
                "daemon",
                &format!(
                    "running since {}, answering on {}",
                    when(started),
                    self.daemon.socket
                ),
            ),
            _ => line(
                "daemon",
                &format!("not running (nothing answers on {})", self.daemon.socket),
            ),
        }
        if self.daemon.running {
            if self.daemon.problems.is_empty() {
                line("health", "ok");
            } else {
                line(
                    "health",
                    &format!("{} problem(s)", self.daemon.problems.len()),
                );
                for problem in &self.daemon.problems {
                    line("", &format!("- {}", for_terminal(problem)));
                }
            }
        }

        let unknown = if self.daemon.running {
            ""
        } else {
            ": unknown while the daemon is not running"
        };
        line(
            "imap",
            &format!(
                "{}:{} ({}){unknown}",
                for_terminal(&self.imap.host),
                self.imap.port,
                self.imap.security
            ),
        );
        for folder in &self.imap.folders {
            let paused = if folder.paused { " (paused)" } else { "" };
            let state = match folder.state {
                FolderState::Unknown => "unknown".to_owned(),
                FolderState::Up => format!(
                    "up since {}",
                    folder.since.map_or_else(|| "-".to_owned(), when)
                ),
                FolderState::Down => format!(
                    "down since {}: {}",
                    folder.since.map_or_else(|| "-".to_owned(), when),
                    for_terminal(folder.error.as_deref().unwrap_or("not connected"))
                ),
            };
            let contact = match (folder.state, folder.last_contact) {
                (FolderState::Unknown, _) => String::new(),
                (_, Some(at)) => format!("; last contact {}", when(at)),
                (_, None) => "; never reached".to_owned(),
            };
            line(
                "",
                &format!("{}{paused}: {state}{contact}", for_terminal(&folder.name)),
            );
        }

        let smtp = match self.smtp.state {
            SmtpState::Unknown => unknown.trim_start_matches(": ").to_owned(),
            SmtpState::Ok | SmtpState::Idle | SmtpState::Retrying => {
                let what = match self.smtp.state {
                    SmtpState::Ok => "ok",
                    SmtpState::Idle => "nothing sent yet",
                    _ => "retrying",
                };
                format!(
                    "{what}; since start {} sent, {} deferred, {} refused for good",
                    self.smtp.sent.unwrap_or(0),
                    self.smtp.deferred.unwrap_or(0),
                    self.smtp.failed.unwrap_or(0)
                )
            }
        };
        line(
            "smtp",
            &format!(
                "{}:{} ({}): {smtp}",
                for_terminal(&self.smtp.host),
                self.smtp.port,
                self.smtp.security
            ),
        );
        if let Some(error) = &self.smtp.last_error {
            line("", &format!("last error: {}", for_terminal(error)));
        }

        let store = &self.store;
        match store.outbox {
            None => line("outbox", "-"),
            Some(0) => line("outbox", "empty"),
            Some(waiting) => line(
                "outbox",
                &format!(
                    "{waiting} waiting, the oldest since {}",
                    store.outbox_oldest.map_or_else(|| "-".to_owned(), when)
                ),
            ),
        }
        match store.dead_letters {
            None => line("dead letters", "-"),
            Some(0) => line("dead letters", "none"),
            Some(count) => line(
                "dead letters",
                &format!("{count} (casemail deadletter list)"),
            ),
        }
        match store.quarantine {
            None => line("quarantine", "-"),
            Some(0) => line("quarantine", "empty"),
            Some(count) => line(
                "quarantine",
                &format!("{count} message(s) (casemail quarantine list)"),
            ),
        }
        if let Some(tickets) = &store.tickets {
            let counts: Vec<String> = tickets
                .iter()
                .filter(|(_, count)| **count > 0)
                .map(|(status, count)| format!("{count} {status}"))
                .collect();
            let counts = if counts.is_empty() {
                "none".to_owned()
            } else {
                counts.join(", ")
            };
            line("tickets", &counts);
        }
        let schedule = format!(
            "daily at {} {}",
            config.rota.digest_at.strftime("%H:%M"),
            for_terminal(crate::casework::rota::zone_name(&config.rota.timezone))
        );
        match (&store.last_digest, store.read_by) {
            (Some(date), _) => line(
                "last digest",
                &format!("{} ({schedule})", for_terminal(date)),
            ),
            (None, Some(_)) => line("last digest", &format!("none yet ({schedule})")),
            (None, None) => line("last digest", "-"),
        }

        if let Some(oauth2) = &self.oauth2 {
            line("oauth2", &oauth2.text(&when));
        }

        let read = match (store.read_by, &store.error) {
            (Some("daemon"), _) => "read by the daemon".to_owned(),
            (Some(_), _) => "read directly: the daemon is not running".to_owned(),
            (None, Some(error)) => format!("not readable: {}", for_terminal(error)),
            (None, None) => "not read".to_owned(),
        };
        line("store", &format!("{} ({read})", store.state_dir));
        out
    }
}

impl OAuth2Section {
    fn read(oauth2: &OAuth2, now: Timestamp) -> OAuth2Section {
        let token_file = oauth2.token_file.display().to_string();
        match crate::oauth::read(&oauth2.token_file) {
            Err(err) => OAuth2Section {
                state: None,
                access_token_expires: None,
                access_token_valid: false,
                refresh_token: false,
                refused: None,
                token_file,
                error: Some(err.to_string()),
            },
            Ok(stored) => {
                let stored = stored.as_ref();
                let state = match stored {
                    Some(stored) if stored.refused.is_some() => "refused",
                    Some(stored)
                        if stored.access_token.is_some() || stored.refresh_token.is_some() =>
                    {
                        "signed_in"
                    }
                    _ => "not_signed_in",
                };
                let expires = stored.and_then(|s| s.access_expires);
                OAuth2Section {
                    state: Some(state),
                    access_token_expires: expires,
                    access_token_valid: stored.is_some_and(|s| s.access_token.is_some())
                        && expires.is_some_and(|at| at > now),
                    refresh_token: stored.is_some_and(|s| s.refresh_token.is_some()),
                    refused: stored
                        .and_then(|s| s.refused.as_ref())
                        .map(|r| r.reason.clone()),
                    token_file,
                    error: None,
                }
            }
        }
    }

    fn text(&self, when: &dyn Fn(Timestamp) -> String) -> String {
        let details = "; see casemail auth status";
        match (self.state, &self.error) {
            (None, error) => format!(
                "cannot read {}: {}",
                self.token_file,
                for_terminal(error.as_deref().unwrap_or("unknown error"))
            ),
            (Some("not_signed_in"), _) => "not signed in: run casemail auth login".to_owned(),
            (Some("refused"), _) => format!(
                "sign-in refused: {}; run casemail auth login",
                for_terminal(self.refused.as_deref().unwrap_or("no reason given"))
            ),
            (Some(_), _) => {
                let access = match (self.access_token_expires, self.access_token_valid) {
                    (Some(at), true) => format!("access token valid until {}", when(at)),
                    (Some(at), false) => format!(
                        "access token expired at {}, renewed at the next connection",
                        when(at)
                    ),
                    (None, _) => "no access token yet".to_owned(),
                };
                let refresh = if self.refresh_token {
                    ", refresh token kept"
                } else {
                    ""
                };
                format!("signed in; {access}{refresh}{details}")
            }
        }
    }
}

/// The folders the daemon watches, in its order (by name, as its health marks are kept).
fn watched_folders(config: &Config) -> impl Iterator<Item = String> {
    let names: std::collections::BTreeSet<String> = config
        .imap
        .folders
        .iter()
        .chain(&config.imap.junk_folders)
        .cloned()
        .collect();
    names.into_iter()
}

/// The store's figures read here, with no daemon running. A state directory without a store is
/// not created: status changes nothing.
fn read_directly(state_dir: &Path) -> anyhow::Result<StoreReport> {
    let path = state_dir.join(store::STORE_DIR);
    if !path.exists() {
        anyhow::bail!(
            "no store in {}: casemail has not run with this config yet",
            state_dir.display()
        );
    }
    let store = Store::open(state_dir).context("cannot open the store")?;
    StoreReport::read(&store).context("cannot read the store")
}

#[cfg(test)]
mod tests;

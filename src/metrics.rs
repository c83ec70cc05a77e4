//! What the running daemon knows about itself: counters and latency histograms the stages
//! update, the health marks of each loop, and their rendering as Prometheus text (exposition
//! format 0.0.4) and as a health verdict.
//!
//! Figures the store already holds (tickets by status, outbox depth, quarantine) are read from
//! it when asked rather than counted here, so they always match what the CLI shows. Counters
//! start at zero with each daemon start, as Prometheus expects of a `_total`.
//!
//! No clock and no sockets here: callers pass the time, and `control` serves the text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use crate::fetch::{Budget, Lag};
use crate::ingest::Outcome;
use crate::model::{Cursor, OutboxKind, Status};
use crate::relay::{self, Settled};
use crate::store::{self, Store};

/// The process stage sweeps at least every 30 s and reports after every batch, so this long
/// without a report means it is stuck (a batch of pathological mail, or a store that hangs).
pub const PROCESS_STALL: Duration = Duration::from_secs(3 * 60);

/// The relay retries transient failures with backoff capped at 10 min, so mail older than this
/// in the outbox means it is not draining (SMTP down, credentials refused, relay stuck).
pub const OUTBOX_STUCK: Duration = Duration::from_secs(15 * 60);

/// Upper bounds of the latency buckets, in seconds: from a fast parse to a slow fsync.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A step of the process stage whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Parsing one message on its worker thread, per attempt.
    Parse,
    /// Threading, routing and writing one message's transaction.
    File,
    /// The durable flush that commits a batch (group commit).
    Commit,
}

impl Stage {
    const ALL: [Stage; 3] = [Stage::Parse, Stage::File, Stage::Commit];

    fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::File => "file",
            Stage::Commit => "commit",
        }
    }
}

/// A latency histogram with fixed buckets, updated without locks.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        if let Some(count) = self.counts.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Whether a watched folder's IMAP session is working.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FolderState {
    /// Logged in and selected; new mail is picked up by IDLE or the next poll.
    Up,
    /// Not connected, with the reason (the last error, or that it never connected yet).
    Down(String),
}

#[derive(Debug, Clone)]
struct FolderMark {
    state: FolderState,
    /// When the folder entered its current state.
    since: Timestamp,
    /// The last login or completed pass (fetch, poll or IDLE round).
    last_success: Option<Timestamp>,
}

/// What the last reconciliation found.
#[derive(Debug, Clone, Default)]
struct Reconciled {
    last_run: Option<Timestamp>,
    /// Missing messages per folder looked at.
    missing: BTreeMap<String, u64>,
    runs_ok: u64,
    runs_failed: u64,
}

#[derive(Debug)]
struct Marks {
    folders: BTreeMap<String, FolderMark>,
    process_alive: Timestamp,
    /// The lag of each watched folder at the last look (fetcher or reconciliation).
    lag: BTreeMap<String, Lag>,
    reconciled: Reconciled,
    /// The OAuth 2.0 sign-in's refusal, while it lasts: the health line.
    sign_in_refused: Option<String>,
}

/// Counters and health marks shared by the daemon's tasks through an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    started: Timestamp,
    ingested: AtomicU64,
    duplicates: AtomicU64,
    quarantined: AtomicU64,
    replies_relayed: AtomicU64,
    replies_refused: AtomicU64,
    replies_held: AtomicU64,
    replies_not_sent: AtomicU64,
    bounces: AtomicU64,
    sign_in_refusals: AtomicU64,
    parse: Histogram,
    file: Histogram,
    commit: Histogram,
    /// Outbox messages settled by the relay, by (outbox kind, result).
    relay: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    marks: Mutex<Marks>,
    /// The fetchers' memory budget, read at each scrape once the daemon has made it.
    fetch_budget: std::sync::OnceLock<Budget>,
}

/// A lock that a panicking holder left behind still guards plain numbers, which stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Fresh counters for a daemon watching `folders`, each not connected yet.
    pub fn new(folders: impl IntoIterator<Item = String>, now: Timestamp) -> Metrics {
        let folders = folders
            .into_iter()
            .map(|folder| {
                let mark = FolderMark {
                    state: FolderState::Down("not connected yet".to_owned()),
                    since: now,
                    last_success: None,
                };
                (folder, mark)
            })
            .collect();
        Metrics {
            started: now,
            ingested: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            replies_relayed: AtomicU64::new(0),
            replies_refused: AtomicU64::new(0),
            replies_held: AtomicU64::new(0),
            replies_not_sent: AtomicU64::new(0),
            bounces: AtomicU64::new(0),
            sign_in_refusals: AtomicU64::new(0),
            parse: Histogram::default(),
            file: Histogram::default(),
            commit: Histogram::default(),
            relay: Mutex::new(BTreeMap::new()),
            marks: Mutex::new(Marks {
                folders,
                process_alive: now,
                lag: BTreeMap::new(),
                reconciled: Reconciled::default(),
                sign_in_refused: None,
            }),
            fetch_budget: std::sync::OnceLock::new(),
        }
    }

    /// Shows the fetchers' memory budget in the figures (`casemail_fetch_held_bytes`).
    pub fn watch_fetch_budget(&self, budget: Budget) {
        let _ = self.fetch_budget.set(budget);
    }

    /// Counts a message the process stage has filed.
    pub fn message_filed(&self, outcome: &Outcome) {
        self.ingested.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Duplicate(_) => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Quarantined(_) => {
                self.quarantined.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Relayed(_) => {
                self.replies_relayed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::ReplyRefused(..) => {
                self.replies_refused.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::ReplyHeld(..) => {
                self.replies_held.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::ReplyNotSent(..) => {
                self.replies_not_sent.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Bounced(_) => {
                self.bounces.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::NewTicket(_) | Outcome::Added(..) => {}
        }
    }

    pub fn observe(&self, stage: Stage, elapsed: Duration) {
        self.histogram(stage).observe(elapsed);
    }

    fn histogram(&self, stage: Stage) -> &Histogram {
        match stage {
            Stage::Parse => &self.parse,
            Stage::File => &self.file,
            Stage::Commit => &self.commit,
        }
    }

    /// Counts an outbox message the relay has settled.
    pub fn relay_settled(&self, kind: OutboxKind, settled: Settled) {
        let kind = relay::kind_name(kind);
        let result = match settled {
            Settled::Sent => "sent",
            Settled::Deferred => "deferred",
            Settled::Failed => "failed",
        };
        let mut relay = lock(&self.relay);
        let count = relay.entry((kind, result)).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// A folder's fetcher logged in or completed a pass.
    pub fn folder_alive(&self, folder: &str, now: Timestamp) {
        let mut marks = lock(&self.marks);
        let mark = marks
            .folders
            .entry(folder.to_owned())
            .or_insert_with(|| FolderMark {
                state: FolderState::Up,
                since: now,
                last_success: None,
            });
        if mark.state != FolderState::Up {
            mark.state = FolderState::Up;
            mark.since = now;
        }
        mark.last_success = Some(now);
    }

    /// A folder's session failed; the fetcher is reconnecting. `since` keeps the start of the
    /// outage across failed reconnects.
    pub fn folder_down(&self, folder: &str, reason: String, now: Timestamp) {
        let mut marks = lock(&self.marks);
        let mark = marks
            .folders
            .entry(folder.to_owned())
            .or_insert_with(|| FolderMark {
                state: FolderState::Up,
                since: now,
                last_success: None,
            });
        if mark.state == FolderState::Up {
            mark.since = now;
        }
        mark.state = FolderState::Down(reason);
    }

    /// How far behind a watched folder casemail was at the last look.
    pub fn folder_lag(&self, folder: &str, lag: Lag) {
        let mut marks = lock(&self.marks);
        let entry = marks.lag.entry(folder.to_owned()).or_insert(lag);
        // UIDNEXT only grows within a UIDVALIDITY; a look that did not learn it keeps the last.
        let uid_next = lag.uid_next.or(entry.uid_next);
        *entry = Lag { uid_next, ..lag };
    }

    /// A reconciliation run finished: missing messages per folder looked at.
    pub fn reconciled(&self, missing: impl IntoIterator<Item = (String, u64)>, at: Timestamp) {
        let mut marks = lock(&self.marks);
        let reconciled = &mut marks.reconciled;
        reconciled.missing = missing.into_iter().collect();
        reconciled.last_run = Some(at);
        reconciled.runs_ok = reconciled.runs_ok.saturating_add(1);
    }

    /// A reconciliation run failed (IMAP or the store); the last figures stay.
    pub fn reconcile_failed(&self) {
        let mut marks = lock(&self.marks);
        marks.reconciled.runs_failed = marks.reconciled.runs_failed.saturating_add(1);
    }

    /// The token endpoint refused the OAuth 2.0 sign-in (`problem` says why and what to run);
    /// counted once per refusal.
    pub fn sign_in_refused(&self, problem: String) {
        let mut marks = lock(&self.marks);
        if marks.sign_in_refused.is_none() {
            self.sign_in_refusals.fetch_add(1, Ordering::Relaxed);
        }
        marks.sign_in_refused = Some(problem);
    }

    /// The OAuth 2.0 sign-in works again (someone signed in).
    pub fn sign_in_restored(&self) {
        lock(&self.marks).sign_in_refused = None;
    }

    /// Whether any watched folder has logged in at least once (systemd readiness).
    pub fn any_folder_reached(&self) -> bool {
        lock(&self.marks)
            .folders
            .values()
            .any(|mark| mark.last_success.is_some())
    }

    /// Whether the process stage finished a batch or sweep recently enough (systemd watchdog).
    pub fn process_responsive(&self, now: Timestamp) -> bool {
        seconds_between(lock(&self.marks).process_alive, now) <= PROCESS_STALL.as_secs_f64()
    }

    /// The process stage finished a batch or a sweep.
    pub fn process_alive(&self, now: Timestamp) {
        lock(&self.marks).process_alive = now;
    }

    /// The daemon's own view of its sessions now, for `casemail status`: each watched folder's
    /// state and last contact, and what the relay settled since start.
    pub fn view(&self) -> View {
        let (mut sent, mut deferred, mut failed) = (0_u64, 0_u64, 0_u64);
        for ((_, result), count) in lock(&self.relay).iter() {
            let total = match *result {
                "sent" => &mut sent,
                "deferred" => &mut deferred,
                "failed" => &mut failed,
                _ => continue,
            };
            *total = total.saturating_add(*count);
        }
        let marks = lock(&self.marks);
        View {
            started: self.started,
            folders: marks
                .folders
                .iter()
                .map(|(name, mark)| FolderView {
                    name: name.clone(),
                    down: match &mark.state {
                        FolderState::Up => None,
                        FolderState::Down(reason) => Some(reason.clone()),
                    },
                    since: mark.since,
                    last_success: mark.last_success,
                })
                .collect(),
            relay_sent: sent,
            relay_deferred: deferred,
            relay_failed: failed,
        }
    }

    /// What is wrong, one line each; empty when the daemon is healthy. `outbox_oldest` is the
    /// creation time of the oldest message waiting in the outbox.
    pub fn problems(&self, outbox_oldest: Option<Timestamp>, now: Timestamp) -> Vec<String> {
        let mut problems = Vec::new();
        let marks = lock(&self.marks);
        for (folder, mark) in &marks.folders {
            if let FolderState::Down(reason) = &mark.state {
                problems.push(format!(
                    "imap: folder {folder} not reachable since {} ({}s): {reason}",
                    mark.since,
                    seconds_between(mark.since, now).round()
                ));
            }
        }
        if let Some(problem) = &marks.sign_in_refused {
            problems.push(format!("oauth2: {problem}"));
        }
        let quiet = seconds_between(marks.process_alive, now);
        if quiet > PROCESS_STALL.as_secs_f64() {
            problems.push(format!(
                "process: no batch or sweep finished since {} ({}s)",
                marks.process_alive,
                quiet.round()
            ));
        }
        if let Some(oldest) = outbox_oldest {
            let waiting = seconds_between(oldest, now);
            if waiting > OUTBOX_STUCK.as_secs_f64() {
                problems.push(format!(
                    "outbox: not draining, the oldest message has waited since {oldest} ({}s)",
                    waiting.round()
                ));
            }
        }
        problems
    }

    /// The Prometheus text for everything known now: the counters here and `figures` from
    /// the store.
    pub fn render(&self, figures: &StoreFigures, now: Timestamp) -> String {
        let mut out = Text::default();
        out.gauge(
            "casemail_start_time_seconds",
            "When this daemon started, in seconds since the Unix epoch.",
        );
        out.sample(
            "casemail_start_time_seconds",
            &[],
            epoch_seconds(self.started),
        );

        out.counter(
            "casemail_messages_ingested_total",
            "Messages the process stage filed since start: new tickets, follow-ups, duplicates and quarantined.",
        );
        out.count("casemail_messages_ingested_total", &[], &self.ingested);
        out.counter(
            "casemail_duplicates_total",
            "Messages recognised as a copy of a stored message since start.",
        );
        out.count("casemail_duplicates_total", &[], &self.duplicates);
        out.counter(
            "casemail_quarantined_total",
            "Messages set aside in the quarantine since start.",
        );
        out.count("casemail_quarantined_total", &[], &self.quarantined);
        out.counter(
            "casemail_replies_relayed_total",
            "Caseworkers' replies the bridge accepted and relayed to requesters.",
        );
        out.count("casemail_replies_relayed_total", &[], &self.replies_relayed);
        out.counter(
            "casemail_replies_refused_total",
            "Replies the bridge refused (no valid token, wrong sender, DMARC failure, out of office).",
        );
        out.count("casemail_replies_refused_total", &[], &self.replies_refused);
        out.counter(
            "casemail_replies_held_total",
            "Caseworkers' genuine replies the relay gate held as notes (empty, only files, an unknown command, a file it cannot clean).",
        );
        out.count("casemail_replies_held_total", &[], &self.replies_held);
        out.counter(
            "casemail_replies_not_sent_total",
            "Caseworkers' answers the relay gate cleared that were not sent (the requester's address is suppressed); kept as dead letters.",
        );
        out.count(
            "casemail_replies_not_sent_total",
            &[],
            &self.replies_not_sent,
        );
        out.counter(
            "casemail_bounces_total",
            "Delivery reports received for mail casemail sent, filed into the ticket the mail was for.",
        );
        out.count("casemail_bounces_total", &[], &self.bounces);
        out.counter(
            "casemail_oauth2_refusals_total",
            "Times the OAuth 2.0 token endpoint refused casemail's sign-in (revoked or expired grant, bad client secret).",
        );
        out.count(
            "casemail_oauth2_refusals_total",
            &[],
            &self.sign_in_refusals,
        );

        out.gauge("casemail_tickets", "Tickets in the store, by status.");
        for status in [
            Status::New,
            Status::Open,
            Status::Waiting,
            Status::Closed,
            Status::Spam,
        ] {
            let count = figures.tickets.get(&status).copied().unwrap_or(0);
            out.sample(
                "casemail_tickets",
                &[("status", status.as_str())],
                count as f64,
            );
        }
        out.gauge(
            "casemail_tickets_flagged",
            "Tickets in the store carrying a flag; suspected_spam counts mail that arrived in a junk folder.",
        );
        for (flag, count) in &figures.flagged {
            out.sample("casemail_tickets_flagged", &[("flag", flag)], *count as f64);
        }
        out.gauge(
            "casemail_messages_stored",
            "Messages stored in tickets, both directions.",
        );
        out.sample("casemail_messages_stored", &[], figures.messages as f64);
        out.gauge(
            "casemail_quarantine_messages",
            "Messages in the quarantine, kept with their raw bytes.",
        );
        out.sample(
            "casemail_quarantine_messages",
            &[],
            figures.quarantine as f64,
        );

        out.gauge(
            "casemail_outbox_messages",
            "Messages waiting in the outbox.",
        );
        out.sample("casemail_outbox_messages", &[], figures.outbox as f64);
        out.gauge(
            "casemail_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox; 0 when it is empty.",
        );
        let oldest_age = figures
            .outbox_oldest
            .map_or(0.0, |oldest| seconds_between(oldest, now).max(0.0));
        out.sample("casemail_outbox_oldest_age_seconds", &[], oldest_age);
        out.gauge(
            "casemail_dead_letters",
            "Outbox messages the SMTP server refused for good, kept for an operator.",
        );
        out.sample("casemail_dead_letters", &[], figures.dead_letters as f64);

        let relay = lock(&self.relay).clone();
        for (result, help) in [
            (
                "sent",
                "Outbox messages the SMTP server accepted since start, by kind (bounce counts bounces sent).",
            ),
            (
                "deferred",
                "Sending attempts that failed transiently since start, by kind; the message stays in the outbox.",
            ),
            (
                "failed",
                "Outbox messages the SMTP server refused for good since start, by kind; they became dead letters.",
            ),
        ] {
            let name = format!("casemail_relay_{result}_total");
            out.counter(&name, help);
            for ((kind, _), count) in relay.iter().filter(|((_, r), _)| *r == result) {
                out.sample(&name, &[("kind", kind)], *count as f64);
            }
        }

        if let Some(budget) = self.fetch_budget.get() {
            out.gauge(
                "casemail_fetch_held_bytes",
                "Mail fetched and not yet filed, by the sizes the server reported, in bytes (KiB granularity).",
            );
            out.sample(
                "casemail_fetch_held_bytes",
                &[],
                f64::from(budget.in_use_kib()) * 1024.0,
            );
            out.gauge(
                "casemail_fetch_budget_bytes",
                "The most fetched mail held at once: ingest.fetch_bytes, or ingest.max_message_size if larger.",
            );
            out.sample(
                "casemail_fetch_budget_bytes",
                &[],
                f64::from(budget.total_kib()) * 1024.0,
            );
        }

        let marks = lock(&self.marks);
        out.gauge(
            "casemail_imap_up",
            "Whether the folder's IMAP session is logged in (1) or reconnecting (0).",
        );
        for (folder, mark) in &marks.folders {
            let up = if mark.state == FolderState::Up {
                1.0
            } else {
                0.0
            };
            out.sample("casemail_imap_up", &[("folder", folder)], up);
        }
        out.gauge(
            "casemail_imap_last_success_timestamp_seconds",
            "The folder's last login or completed pass (fetch, poll or IDLE round).",
        );
        for (folder, mark) in &marks.folders {
            if let Some(last) = mark.last_success {
                out.sample(
                    "casemail_imap_last_success_timestamp_seconds",
                    &[("folder", folder)],
                    epoch_seconds(last),
                );
            }
        }
        out.gauge(
            "casemail_imap_lag_seconds",
            "How far casemail may be behind the folder: 0 while its session is up, else the time since it was last in sync.",
        );
        for (folder, mark) in &marks.folders {
            let lag = match mark.state {
                FolderState::Up => 0.0,
                FolderState::Down(_) => {
                    seconds_between(mark.last_success.unwrap_or(self.started), now).max(0.0)
                }
            };
            out.sample("casemail_imap_lag_seconds", &[("folder", folder)], lag);
        }
        out.gauge(
            "casemail_imap_uidnext",
            "The UID the server gives the folder's next message (UIDNEXT) at the last look.",
        );
        for (folder, lag) in &marks.lag {
            if let Some(uid_next) = lag.uid_next {
                out.sample(
                    "casemail_imap_uidnext",
                    &[("folder", folder)],
                    f64::from(uid_next.0),
                );
            }
        }
        out.gauge(
            "casemail_imap_cursor_uid",
            "The highest UID of the folder whose processing is committed in the store.",
        );
        for (folder, cursor) in &figures.cursors {
            out.sample(
                "casemail_imap_cursor_uid",
                &[("folder", folder)],
                f64::from(cursor.last_uid.0),
            );
        }
        out.gauge(
            "casemail_imap_lag_messages",
            "Messages in the folder above the cursor at the last look: fetched but not committed, or not fetched yet (paused folders, ingest behind).",
        );
        for (folder, lag) in &marks.lag {
            out.sample(
                "casemail_imap_lag_messages",
                &[("folder", folder)],
                lag.pending as f64,
            );
        }
        let reconciled = &marks.reconciled;
        out.gauge(
            "casemail_reconcile_missing",
            "Messages the last reconciliation found in the folder but in no ticket and not in the quarantine.",
        );
        for (folder, missing) in &reconciled.missing {
            out.sample(
                "casemail_reconcile_missing",
                &[("folder", folder)],
                *missing as f64,
            );
        }
        out.gauge(
            "casemail_reconcile_last_run_timestamp_seconds",
            "When the last successful reconciliation ran; absent before the first.",
        );
        if let Some(last) = reconciled.last_run {
            out.sample(
                "casemail_reconcile_last_run_timestamp_seconds",
                &[],
                epoch_seconds(last),
            );
        }
        out.counter(
            "casemail_reconcile_runs_total",
            "Reconciliation runs since start, by result.",
        );
        out.sample(
            "casemail_reconcile_runs_total",
            &[("result", "ok")],
            reconciled.runs_ok as f64,
        );
        out.sample(
            "casemail_reconcile_runs_total",
            &[("result", "failed")],
            reconciled.runs_failed as f64,
        );
        out.gauge(
            "casemail_process_last_alive_timestamp_seconds",
            "When the process stage last finished a batch or a sweep.",
        );
        out.sample(
            "casemail_process_last_alive_timestamp_seconds",
            &[],
            epoch_seconds(marks.process_alive),
        );
        drop(marks);

        out.histogram_header(
            "casemail_stage_seconds",
            "Latency of the process stage's steps: parse and file per message, commit per batch.",
        );
        for stage in Stage::ALL {
            out.histogram(
                "casemail_stage_seconds",
                ("stage", stage.name()),
                self.histogram(stage),
            );
        }
        out.text
    }
}

/// One watched folder as the daemon sees it (see [`Metrics::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderView {
    pub name: String,
    /// Why the session is not logged in; `None` while it is.
    pub down: Option<String>,
    /// When the folder entered its current state.
    pub since: Timestamp,
    /// The last login or completed pass (fetch, poll or IDLE round).
    pub last_success: Option<Timestamp>,
}

/// The daemon's view of its sessions at one moment (see [`Metrics::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub started: Timestamp,
    /// The watched folders, by name.
    pub folders: Vec<FolderView>,
    /// Outbox messages the relay settled since start, all kinds together.
    pub relay_sent: u64,
    pub relay_deferred: u64,
    pub relay_failed: u64,
}

/// What the store holds, counted when `/metrics` or `/healthz` is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFigures {
    pub tickets: BTreeMap<Status, u64>,
    /// Tickets per flag, by the flag's JSON name; `suspected_spam` is always present.
    pub flagged: BTreeMap<String, u64>,
    pub messages: u64,
    pub quarantine: u64,
    pub outbox: u64,
    pub outbox_oldest: Option<Timestamp>,
    pub dead_letters: u64,
    /// Each folder's cursor.
    pub cursors: BTreeMap<String, Cursor>,
}

impl StoreFigures {
    /// Reads the store's figures: the ticket counts the store keeps with every ticket write
    /// (no ticket is read), and the quarantine, outbox and dead letters, which stay small.
    pub fn read(store: &Store) -> Result<StoreFigures, store::Error> {
        let mut figures = StoreFigures::default();
        figures.flagged.insert("suspected_spam".to_owned(), 0);
        let counted = store.ticket_figures()?;
        for status in [
            Status::New,
            Status::Open,
            Status::Waiting,
            Status::Closed,
            Status::Spam,
        ] {
            if let Some(&count) = counted.by_status.get(status.as_str())
                && count > 0
            {
                figures.tickets.insert(status, count);
            }
        }
        for (flag, &count) in &counted.by_flag {
            if count > 0 || flag == "suspected_spam" {
                figures.flagged.insert(flag.clone(), count);
            }
        }
        figures.messages = counted.messages;
        figures.quarantine = store.quarantine()?.len() as u64;
        let outbox = store.outbox()?;
        figures.outbox = outbox.len() as u64;
        figures.outbox_oldest = outbox_oldest(store)?;
        figures.dead_letters = store.dead_letters()?.len() as u64;
        figures.cursors = store.cursors()?;
        Ok(figures)
    }
}

/// The creation time of the oldest message waiting in the outbox.
pub fn outbox_oldest(store: &Store) -> Result<Option<Timestamp>, store::Error> {
    Ok(store.outbox()?.into_iter().map(|entry| entry.created).min())
}

fn epoch_seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

/// Prometheus text exposition format 0.0.4, built line by line.
#[derive(Default)]
struct Text {
    text: String,
}

impl Text {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str) {
        self.header(name, "counter", help);
    }

    fn gauge(&mut self, name: &str, help: &str) {
        self.header(name, "gauge", help);
    }

    fn histogram_header(&mut self, name: &str, help: &str) {
        self.header(name, "histogram", help);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    fn count(&mut self, name: &str, labels: &[(&str, &str)], counter: &AtomicU64) {
        self.sample(name, labels, counter.load(Ordering::Relaxed) as f64);
    }

    fn histogram(&mut self, name: &str, label: (&str, &str), histogram: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0_u64;
        for (bound, count) in BUCKETS.iter().zip(&histogram.counts) {
            cumulative = cumulative.saturating_add(count.load(Ordering::Relaxed));
            let le = number(*bound);
            self.sample(&bucket, &[label, ("le", &le)], cumulative as f64);
        }
        for count in histogram.counts.iter().skip(BUCKETS.len()) {
            cumulative = cumulative.saturating_add(count.load(Ordering::Relaxed));
        }
        // `_count` is the +Inf bucket by definition; deriving both from the same loads keeps
        // them equal while other tasks keep observing.
        self.sample(&bucket, &[label, ("le", "+Inf")], cumulative as f64);
        let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        self.sample(&format!("{name}_sum"), &[label], sum);
        self.sample(&format!("{name}_count"), &[label], cumulative as f64);
    }
}

/// A sample value: Rust prints finite floats the way Prometheus reads them ("0.25", "3").
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else if value.is_nan() {
        "NaN".to_owned()
    } else if value > 0.0 {
        "+Inf".to_owned()
    } else {
        "-Inf".to_owned()
    }
}

/// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escapes backslash and line feed.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests;

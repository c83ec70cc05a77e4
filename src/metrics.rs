//! What the running daemon knows about itself: counters and latency histograms the stages
//! update, the health marks of each loop, and their rendering as Prometheus text (exposition
//! format 0.0.4, written by `prometheus-client`) and as a health verdict.
//!
//! Figures the store already holds (tickets by status, outbox depth, quarantine) are read from
//! it when asked rather than counted here, so they always match what the CLI shows. Counters
//! start at zero with each daemon start, as Prometheus expects of a `_total`.
//!
//! No clock and no sockets here: callers pass the time, and `control` serves the text.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::imap::{Budget, Lag};
use crate::model::{Cursor, OutboxKind, Status};
use crate::smtp::Settled;
use crate::store::{self, Store};

/// The process stage sweeps at least every 30 s and reports after every batch, so this long
/// without a report means it is stuck (a batch of pathological mail, or a store that hangs).
pub(crate) const PROCESS_STALL: Duration = Duration::from_secs(3 * 60);

/// The relay retries transient failures with backoff capped at 10 min, so mail older than this
/// in the outbox means it is not draining (SMTP down, credentials refused, relay stuck).
pub(crate) const OUTBOX_STUCK: Duration = Duration::from_secs(15 * 60);

/// The media type of what [`Metrics::render`] writes.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds: from a fast parse to a slow fsync.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A step of the process stage whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
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
}

#[derive(Debug, Clone)]
struct Marks {
    folders: BTreeMap<String, FolderMark>,
    process_alive: Timestamp,
    /// The lag of each watched folder at the last look (fetcher or reconciliation).
    lag: BTreeMap<String, Lag>,
    reconciled: Reconciled,
    /// The OAuth 2.0 sign-in's refusal, while it lasts: the health line.
    sign_in_refused: Option<String>,
}

/// What became of a filed message, as the figures count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filed {
    /// A new ticket, or a message added to one.
    Ticket,
    Duplicate,
    Quarantined,
    Relayed,
    ReplyRefused,
    ReplyHeld,
    ReplyNotSent,
    Bounced,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Counters and health marks shared by the daemon's tasks through an `Arc`.
#[derive(Debug)]
pub(crate) struct Metrics {
    started: Timestamp,
    /// The counters and histograms below, under the names `/metrics` shows.
    registry: Registry,
    ingested: Counter,
    duplicates: Counter,
    quarantined: Counter,
    replies_relayed: Counter,
    replies_refused: Counter,
    replies_held: Counter,
    replies_not_sent: Counter,
    bounces: Counter,
    sign_in_refusals: Counter,
    /// Outbox messages settled by the relay, by result, each by outbox kind.
    relay_sent: Family<KindLabel, Counter>,
    relay_deferred: Family<KindLabel, Counter>,
    relay_failed: Family<KindLabel, Counter>,
    reconcile_runs: Family<ResultLabel, Counter>,
    stages: Family<StageLabel, Histogram>,
    marks: Mutex<Marks>,
    /// The fetchers' memory budget, read at each scrape once the daemon has made it.
    fetch_budget: OnceLock<Budget>,
}

/// Registers `metric` under `name` and hands it back. The registry ends `help` with a period,
/// and the text adds `_total` to a counter's name.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A lock that a panicking holder left behind still guards plain numbers, which stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Fresh counters for a daemon watching `folders`, each not connected yet.
    pub(crate) fn new(folders: impl IntoIterator<Item = String>, now: Timestamp) -> Metrics {
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
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            registered(registry, name, help, Counter::default())
        };
        let ingested = counter(
            &mut registry,
            "casemail_messages_ingested",
            "Messages the process stage filed since start: new tickets, follow-ups, duplicates and quarantined",
        );
        let duplicates = counter(
            &mut registry,
            "casemail_duplicates",
            "Messages recognised as a copy of a stored message since start",
        );
        let quarantined = counter(
            &mut registry,
            "casemail_quarantined",
            "Messages set aside in the quarantine since start",
        );
        let replies_relayed = counter(
            &mut registry,
            "casemail_replies_relayed",
            "Caseworkers' replies the bridge accepted and relayed to requesters",
        );
        let replies_refused = counter(
            &mut registry,
            "casemail_replies_refused",
            "Replies the bridge refused (no valid token, wrong sender, DMARC failure, out of office)",
        );
        let replies_held = counter(
            &mut registry,
            "casemail_replies_held",
            "Caseworkers' genuine replies the relay gate held as notes (empty, only files, an unknown command, a file it cannot clean)",
        );
        let replies_not_sent = counter(
            &mut registry,
            "casemail_replies_not_sent",
            "Caseworkers' answers the relay gate cleared that were not sent (the requester's address is suppressed); kept as dead letters",
        );
        let bounces = counter(
            &mut registry,
            "casemail_bounces",
            "Delivery reports received for mail casemail sent, filed into the ticket the mail was for",
        );
        let sign_in_refusals = counter(
            &mut registry,
            "casemail_oauth2_refusals",
            "Times the OAuth 2.0 token endpoint refused casemail's sign-in (revoked or expired grant, bad client secret)",
        );
        let relay_sent = registered(
            &mut registry,
            "casemail_relay_sent",
            "Outbox messages the SMTP server accepted since start, by kind (bounce counts bounces sent)",
            Family::default(),
        );
        let relay_deferred = registered(
            &mut registry,
            "casemail_relay_deferred",
            "Sending attempts that failed transiently since start, by kind; the message stays in the outbox",
            Family::default(),
        );
        let relay_failed = registered(
            &mut registry,
            "casemail_relay_failed",
            "Outbox messages the SMTP server refused for good since start, by kind; they became dead letters",
            Family::default(),
        );
        let reconcile_runs: Family<ResultLabel, Counter> = registered(
            &mut registry,
            "casemail_reconcile_runs",
            "Reconciliation runs since start, by result",
            Family::default(),
        );
        let stages: Family<StageLabel, Histogram> = registered(
            &mut registry,
            "casemail_stage_seconds",
            "Latency of the process stage's steps: parse and file per message, commit per batch",
            Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        );
        // Shown from the start, at zero, like the counters without labels.
        for result in ["ok", "failed"] {
            drop(reconcile_runs.get_or_create(&ResultLabel { result }));
        }
        for stage in Stage::ALL {
            let stage = stage.name();
            drop(stages.get_or_create(&StageLabel { stage }));
        }
        Metrics {
            started: now,
            registry,
            ingested,
            duplicates,
            quarantined,
            replies_relayed,
            replies_refused,
            replies_held,
            replies_not_sent,
            bounces,
            sign_in_refusals,
            relay_sent,
            relay_deferred,
            relay_failed,
            reconcile_runs,
            stages,
            marks: Mutex::new(Marks {
                folders,
                process_alive: now,
                lag: BTreeMap::new(),
                reconciled: Reconciled::default(),
                sign_in_refused: None,
            }),
            fetch_budget: OnceLock::new(),
        }
    }

    /// Shows the fetchers' memory budget in the figures (`casemail_fetch_held_bytes`).
    pub(crate) fn watch_fetch_budget(&self, budget: Budget) {
        let _ = self.fetch_budget.set(budget);
    }

    /// Counts a message the process stage has filed.
    pub(crate) fn message_filed(&self, filed: Filed) {
        self.ingested.inc();
        let counter = match filed {
            Filed::Duplicate => &self.duplicates,
            Filed::Quarantined => &self.quarantined,
            Filed::Relayed => &self.replies_relayed,
            Filed::ReplyRefused => &self.replies_refused,
            Filed::ReplyHeld => &self.replies_held,
            Filed::ReplyNotSent => &self.replies_not_sent,
            Filed::Bounced => &self.bounces,
            Filed::Ticket => return,
        };
        counter.inc();
    }

    pub(crate) fn observe(&self, stage: Stage, elapsed: Duration) {
        let label = StageLabel {
            stage: stage.name(),
        };
        self.stages
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an outbox message the relay has settled.
    pub(crate) fn relay_settled(&self, kind: OutboxKind, settled: Settled) {
        let family = match settled {
            Settled::Sent => &self.relay_sent,
            Settled::Deferred => &self.relay_deferred,
            Settled::Failed => &self.relay_failed,
        };
        let label = KindLabel { kind: kind.name() };
        family.get_or_create(&label).inc();
    }

    /// A folder's fetcher logged in or completed a pass.
    pub(crate) fn folder_alive(&self, folder: &str, now: Timestamp) {
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
    pub(crate) fn folder_down(&self, folder: &str, reason: String, now: Timestamp) {
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
    pub(crate) fn folder_lag(&self, folder: &str, lag: Lag) {
        let mut marks = lock(&self.marks);
        let entry = marks.lag.entry(folder.to_owned()).or_insert(lag);
        // UIDNEXT only grows within a UIDVALIDITY; a look that did not learn it keeps the last.
        let uid_next = lag.uid_next.or(entry.uid_next);
        *entry = Lag { uid_next, ..lag };
    }

    /// A reconciliation run finished: missing messages per folder looked at.
    pub(crate) fn reconciled(
        &self,
        missing: impl IntoIterator<Item = (String, u64)>,
        at: Timestamp,
    ) {
        let mut marks = lock(&self.marks);
        let reconciled = &mut marks.reconciled;
        reconciled.missing = missing.into_iter().collect();
        reconciled.last_run = Some(at);
        drop(marks);
        self.reconcile_runs
            .get_or_create(&ResultLabel { result: "ok" })
            .inc();
    }

    /// A reconciliation run failed (IMAP or the store); the last figures stay.
    pub(crate) fn reconcile_failed(&self) {
        self.reconcile_runs
            .get_or_create(&ResultLabel { result: "failed" })
            .inc();
    }

    /// The token endpoint refused the OAuth 2.0 sign-in (`problem` says why and what to run);
    /// counted once per refusal.
    pub(crate) fn sign_in_refused(&self, problem: String) {
        let mut marks = lock(&self.marks);
        if marks.sign_in_refused.is_none() {
            self.sign_in_refusals.inc();
        }
        marks.sign_in_refused = Some(problem);
    }

    /// The OAuth 2.0 sign-in works again (someone signed in).
    pub(crate) fn sign_in_restored(&self) {
        lock(&self.marks).sign_in_refused = None;
    }

    /// Whether any watched folder has logged in at least once (systemd readiness).
    pub(crate) fn any_folder_reached(&self) -> bool {
        lock(&self.marks)
            .folders
            .values()
            .any(|mark| mark.last_success.is_some())
    }

    /// Whether the process stage finished a batch or sweep recently enough (systemd watchdog).
    pub(crate) fn process_responsive(&self, now: Timestamp) -> bool {
        seconds_between(lock(&self.marks).process_alive, now) <= PROCESS_STALL.as_secs_f64()
    }

    /// The process stage finished a batch or a sweep.
    pub(crate) fn process_alive(&self, now: Timestamp) {
        lock(&self.marks).process_alive = now;
    }

    /// The daemon's own view of its sessions now, for `casemail status`: each watched folder's
    /// state and last contact, and what the relay settled since start.
    pub(crate) fn view(&self) -> View {
        let total = |family: &Family<KindLabel, Counter>| -> u64 {
            [
                OutboxKind::Notification,
                OutboxKind::Relay,
                OutboxKind::Acknowledgement,
                OutboxKind::Bounce,
                OutboxKind::Digest,
            ]
            .into_iter()
            .filter_map(|kind| {
                family
                    .get(&KindLabel { kind: kind.name() })
                    .map(|c| c.get())
            })
            .sum()
        };
        let (sent, deferred, failed) = (
            total(&self.relay_sent),
            total(&self.relay_deferred),
            total(&self.relay_failed),
        );
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
    pub(crate) fn problems(&self, outbox_oldest: Option<Timestamp>, now: Timestamp) -> Vec<String> {
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
    pub(crate) fn render(&self, figures: &StoreFigures, now: Timestamp) -> String {
        let fetch = self.fetch_budget.get().map(|budget| FetchFigures {
            held_bytes: u64::from(budget.in_use_kib()) * 1024,
            budget_bytes: u64::from(budget.total_kib()) * 1024,
        });
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(Scrape {
            started: self.started,
            now,
            store: figures.clone(),
            marks: lock(&self.marks).clone(),
            fetch,
        }));
        let mut text = String::new();
        // Writing to a String cannot fail, and no value here can fail to encode (only usize
        // and isize gauges past i64 can), so the text is always whole.
        let _ = prometheus_text::encode(&mut text, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut text, &scrape));
        text
    }
}

/// One watched folder as the daemon sees it (see [`Metrics::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FolderView {
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
pub(crate) struct View {
    pub started: Timestamp,
    /// The watched folders, by name.
    pub folders: Vec<FolderView>,
    /// Outbox messages the relay settled since start, all kinds together.
    pub relay_sent: u64,
    pub relay_deferred: u64,
    pub relay_failed: u64,
}

/// Every ticket status, in the order the text shows them.
const STATUSES: [Status; 5] = [
    Status::New,
    Status::Open,
    Status::Waiting,
    Status::Closed,
    Status::Spam,
];

/// What the store holds, counted when `/metrics` or `/healthz` is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StoreFigures {
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
    pub(crate) fn read(store: &Store) -> Result<StoreFigures, store::Error> {
        let mut figures = StoreFigures::default();
        figures.flagged.insert("suspected_spam".to_owned(), 0);
        let counted = store.ticket_figures()?;
        for status in STATUSES {
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
pub(crate) fn outbox_oldest(store: &Store) -> Result<Option<Timestamp>, store::Error> {
    Ok(store.outbox()?.into_iter().map(|entry| entry.created).min())
}

fn epoch_seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

mod scrape;
use scrape::{FetchFigures, Scrape};

#[cfg(test)]
mod tests;

//! Watching one folder: the session loop (connect, select, acknowledge what a restart left,
//! then one step after another), with reconnects under capped, jittered backoff. Fetching,
//! acknowledging and waiting for news are its parts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    BACKOFF_CAP, BACKOFF_START, Budget, Committed, Error, Fetched, Session, connect, timed, uid_set,
};
use crate::config;
use crate::ids::{Uid, UidValidity};
use crate::model::{Cursor, FolderKind};
use crate::store::Store;

mod acknowledge;
mod fetch;
mod idle;

/// What one pass of a folder's loop did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    /// New mail was handed to the process stage.
    Fetched(usize),
    /// Nothing new; the loop waited for the server (IDLE or the poll interval).
    Waited,
    /// Shutdown was requested.
    Cancelled,
}

/// State of one (re)connected session on one folder.
struct Selected {
    /// `None` only while IDLE holds the session, or after IDLE failed (then we reconnect).
    session: Option<Session>,
    uidvalidity: UidValidity,
    last: Uid,
    /// UIDNEXT from SELECT, raised to above the highest UID a search found since.
    uid_next: Option<Uid>,
    /// UIDs below this were in the folder at the first run (backfill).
    backfill_below: Option<Uid>,
    /// How far the backfill has come, for its progress lines.
    backfill: Option<Progress>,
    outstanding: usize,
    has_idle: bool,
    has_move: bool,
    /// IDLE wake-ups in a row that brought nothing new; a server that keeps waking us (a
    /// deleted folder, a broken connection) gets a fresh session instead of a busy loop.
    idle_wakeups_without_mail: u32,
}

impl Selected {
    fn session(&mut self) -> Result<&mut Session, Error> {
        self.session.as_mut().ok_or(Error::SessionLost)
    }
}

/// Told of a folder whose session failed, with the error.
pub(crate) type OnDown = Arc<dyn Fn(&str, &Error) + Send + Sync>;

/// How far casemail is behind a folder at the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lag {
    /// The UID the server will give the next message (UIDNEXT, or above the highest UID seen).
    pub uid_next: Option<Uid>,
    /// Messages in the folder above the committed cursor: fetched but not yet committed, and
    /// not fetched yet (all of them while the folder is paused).
    pub pending: u64,
}

/// Told of a folder's lag after each look at it (metrics).
pub(crate) type OnLag = Arc<dyn Fn(&str, Lag) + Send + Sync>;

/// Watches one IMAP folder.
pub(crate) struct FolderWatch {
    pub folder: String,
    pub kind: FolderKind,
    config: Arc<config::Config>,
    store: Store,
    to_process: mpsc::Sender<Fetched>,
    /// Memory for fetched mail not yet filed; shared by every folder of the daemon.
    budget: Budget,
    ack_tx: mpsc::UnboundedSender<Committed>,
    ack_rx: mpsc::UnboundedReceiver<Committed>,
    /// Called after each successful login and each completed pass (health, systemd watchdog).
    on_alive: Arc<dyn Fn(&str) + Send + Sync>,
    /// Called when a session fails, before the reconnect (health).
    on_down: OnDown,
    /// Called with the folder's lag after each look (metrics).
    on_lag: OnLag,
}

impl FolderWatch {
    pub(crate) fn new(
        folder: String,
        kind: FolderKind,
        config: Arc<config::Config>,
        store: Store,
        to_process: mpsc::Sender<Fetched>,
        on_alive: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> FolderWatch {
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let budget = Budget::new(&config.ingest);
        FolderWatch {
            folder,
            kind,
            config,
            store,
            to_process,
            budget,
            ack_tx,
            ack_rx,
            on_alive,
            on_down: Arc::new(|_folder: &str, _err: &Error| {}),
            on_lag: Arc::new(|_folder: &str, _lag: Lag| {}),
        }
    }

    /// Shares `budget` with the other folders, so the bound holds for the daemon as a whole.
    pub(crate) fn with_budget(mut self, budget: Budget) -> FolderWatch {
        self.budget = budget;
        self
    }

    /// Reports the folder's lag to `on_lag` after each look at it.
    pub(crate) fn on_lag(mut self, on_lag: OnLag) -> FolderWatch {
        self.on_lag = on_lag;
        self
    }

    fn paused(&self) -> bool {
        self.config.imap.paused_folders.contains(&self.folder)
    }

    fn report_lag(&self, selected: &Selected, not_fetched: usize) {
        let pending =
            u64::try_from(not_fetched.saturating_add(selected.outstanding)).unwrap_or(u64::MAX);
        (self.on_lag)(
            &self.folder,
            Lag {
                uid_next: selected.uid_next,
                pending,
            },
        );
    }

    /// Reports each failed session to `on_down`, so health shows the folder unreachable at
    /// once rather than after a timeout.
    pub(crate) fn on_down(mut self, on_down: OnDown) -> FolderWatch {
        self.on_down = on_down;
        self
    }

    /// Runs until `cancel`, reconnecting with capped, jittered exponential backoff.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = BACKOFF_START;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let started = tokio::time::Instant::now();
            let outcome = self.session(&cancel).await;
            // A session that lived a while was a working connection: the next outage starts
            // from a short delay again instead of the cap the last outage reached.
            if started.elapsed() > BACKOFF_CAP {
                backoff = BACKOFF_START;
            }
            match outcome {
                Ok(()) => return,
                Err(Error::ProcessGone) => return,
                Err(err) => {
                    warn!(folder = %self.folder, error = %crate::telemetry::chain(&err), retry_in = ?backoff, "IMAP session failed; reconnecting.");
                    (self.on_down)(&self.folder, &err);
                }
            }
            let jitter = rand::random_range(0.5..1.0);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                () = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    async fn session(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        let mut selected = self.connect_and_select().await?;
        (self.on_alive)(&self.folder);
        // Messages committed before a crash but never acknowledged are still in the folder
        // below the cursor: acknowledge them now.
        if selected.last.0 > 0 {
            let query = format!("UID 1:{}", selected.last.0);
            let leftovers: Vec<Uid> = timed(selected.session()?.uid_search(query))
                .await?
                .into_iter()
                .filter(|u| *u <= selected.last.0)
                .map(Uid)
                .collect();
            if !leftovers.is_empty() {
                // Only what the store records is acknowledged: a message below the cursor that
                // it does not know was passed over, and stays where it is, unflagged, for
                // reconciliation to report.
                // A scan of every stored message: off the async workers.
                let accounted = tokio::task::block_in_place(|| {
                    self.store
                        .accounted_uids(&self.folder, selected.uidvalidity)
                })?;
                let (known, unknown): (Vec<Uid>, Vec<Uid>) = leftovers
                    .into_iter()
                    .partition(|uid| accounted.contains(uid));
                if !unknown.is_empty() {
                    warn!(folder = %self.folder, count = unknown.len(), uids = %uid_set(&unknown), "Messages below the cursor are in no ticket; left in the folder for reconciliation to report.");
                }
                if !known.is_empty() {
                    info!(folder = %self.folder, count = known.len(), "Acknowledging messages committed before a restart.");
                    let uidvalidity = selected.uidvalidity;
                    self.acknowledge(&mut selected, uidvalidity, &known).await?;
                }
            }
        }
        loop {
            match self.step(&mut selected, cancel).await? {
                StepOutcome::Cancelled => {
                    if let Ok(session) = selected.session() {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
                    }
                    return Ok(());
                }
                StepOutcome::Fetched(_) | StepOutcome::Waited => (self.on_alive)(&self.folder),
            }
        }
    }

    async fn connect_and_select(&mut self) -> Result<Selected, Error> {
        let mut session = connect(&self.config.imap).await?;
        let capabilities = timed(session.capabilities()).await?;
        let has_idle = capabilities.has_str("IDLE");
        let has_move = capabilities.has_str("MOVE");
        if let Some(processed) = &self.config.imap.processed_folder {
            // CREATE fails when the folder exists; that is the common case and not an error.
            let _ = timed(session.create(processed)).await;
        }
        let mailbox = match timed(session.select(&self.folder)).await {
            Ok(mailbox) => mailbox,
            Err(Error::Protocol(async_imap::error::Error::No(reason))) => {
                // A configured folder that does not exist yet (a fresh account has no Junk) is
                // created rather than retried forever.
                info!(folder = %self.folder, %reason, "Watched folder missing; creating it.");
                timed(session.create(&self.folder)).await?;
                timed(session.select(&self.folder)).await?
            }
            Err(err) => return Err(err),
        };
        let uidvalidity =
            UidValidity(mailbox.uid_validity.ok_or_else(|| Error::NoUidValidity {
                folder: self.folder.clone(),
            })?);
        let cursor = self.store.cursor(&self.folder)?;
        let (last, backfill_below) = match cursor {
            Some(Cursor {
                uidvalidity: known,
                last_uid,
            }) if known == uidvalidity => {
                // A backlog interrupted by a reconnect or restart stays a backfill.
                let below = self
                    .store
                    .backfill(&self.folder, uidvalidity)?
                    .filter(|below| below.0 > last_uid.0.saturating_add(1));
                if let Some(below) = below {
                    let left = below.0.saturating_sub(last_uid.0).saturating_sub(1);
                    info!(folder = %self.folder, below = %below, at_most = left, "Continuing the first-run backfill: the messages that were in the folder at the first run are filed silently (no acknowledgements or notifications).");
                }
                (last_uid, below)
            }
            Some(Cursor {
                uidvalidity: known, ..
            }) => {
                warn!(folder = %self.folder, old = %known, new = %uidvalidity, "UIDVALIDITY changed; re-reading the folder, duplicates are recognised by Message-ID.");
                (Uid(0), None)
            }
            None => {
                let backfill = match (self.config.ingest.first_run, mailbox.uid_next) {
                    (config::FirstRun::Backfill, Some(next)) => Some(self.store.begin_backfill(
                        &self.folder,
                        uidvalidity,
                        Uid(next),
                    )?),
                    _ => None,
                };
                if backfill.is_some() {
                    info!(folder = %self.folder, existing = mailbox.exists, "First run on this folder: the messages already in it are filed silently as a backfill (no acknowledgements or notifications); progress is logged as it goes.");
                } else {
                    info!(folder = %self.folder, existing = mailbox.exists, "First run on this folder: the messages already in it are filed as new mail (ingest.first_run).");
                }
                (Uid(0), backfill)
            }
        };
        info!(folder = %self.folder, uidvalidity = %uidvalidity, last_uid = %last, idle = has_idle, "Folder selected.");
        if self.paused() {
            info!(folder = %self.folder, "Folder paused: nothing is filed from it until it is taken off imap.paused_folders.");
        }
        Ok(Selected {
            session: Some(session),
            uidvalidity,
            last,
            uid_next: mailbox.uid_next.map(Uid),
            backfill_below,
            backfill: backfill_below.map(|below| {
                let left = below.0.saturating_sub(last.0).saturating_sub(1);
                Progress::new(left.min(mailbox.exists))
            }),
            outstanding: 0,
            has_idle,
            has_move,
            idle_wakeups_without_mail: 0,
        })
    }

    /// One pass: apply acknowledgements, fetch what is new, or wait for the server.
    async fn step(
        &mut self,
        selected: &mut Selected,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, Error> {
        if cancel.is_cancelled() {
            return Ok(StepOutcome::Cancelled);
        }
        while let Ok(committed) = self.ack_rx.try_recv() {
            self.apply_ack(selected, committed).await?;
        }
        // `n:*` always matches the highest UID even when it is below n, hence the filter.
        let query = format!("UID {}:*", selected.last.0.saturating_add(1));
        let mut new: Vec<u32> = timed(selected.session()?.uid_search(query))
            .await?
            .into_iter()
            .filter(|u| *u > selected.last.0)
            .collect();
        new.sort_unstable();
        if let Some(highest) = new.last() {
            let above = Uid(highest.saturating_add(1));
            selected.uid_next = Some(selected.uid_next.map_or(above, |known| known.max(above)));
        }
        self.report_lag(selected, new.len());
        if self.paused() {
            // Nothing is fetched: the mail stays above the cursor, counted as lag, until the
            // folder is resumed. New arrivals still wake IDLE, which is not spinning.
            if !new.is_empty() {
                selected.idle_wakeups_without_mail = 0;
            }
            return self.wait_for_news(selected, cancel).await;
        }
        if !new.is_empty() {
            selected.idle_wakeups_without_mail = 0;
            let count = new.len();
            let batch = usize::try_from(self.config.ingest.batch_size)
                .unwrap_or(200)
                .max(1);
            for chunk in new.chunks(batch) {
                let uids: Vec<Uid> = chunk.iter().copied().map(Uid).collect();
                self.fetch_range(selected, &uids, cancel).await?;
                if cancel.is_cancelled() {
                    return Ok(StepOutcome::Cancelled);
                }
                while let Ok(committed) = self.ack_rx.try_recv() {
                    self.apply_ack(selected, committed).await?;
                }
            }
            return Ok(StepOutcome::Fetched(count));
        }
        // Everything handed over must be acknowledged before idling, so a processed message
        // leaves the folder promptly.
        let mut acknowledged = false;
        while selected.outstanding > 0 {
            tokio::select! {
                committed = self.ack_rx.recv() => match committed {
                    Some(committed) => {
                        self.apply_ack(selected, committed).await?;
                        acknowledged = true;
                    }
                    None => return Err(Error::ProcessGone),
                },
                () = cancel.cancelled() => return Ok(StepOutcome::Cancelled),
            }
        }
        // Everything the search found is committed now.
        self.report_lag(selected, 0);
        if acknowledged {
            // Mail that arrived while we waited was announced (EXISTS) in a response to the
            // acknowledgement's commands, which IDLE does not repeat: search again first.
            return Ok(StepOutcome::Waited);
        }
        self.wait_for_news(selected, cancel).await
    }
}

/// A backfill's progress: messages handed on out of how many, and when the last line was
/// logged, so a large first import says how far it is every few seconds instead of once per
/// message.
struct Progress {
    total: u32,
    done: u32,
    started: std::time::Instant,
    reported: std::time::Instant,
}

/// How often a backfill logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    fn new(total: u32) -> Progress {
        let now = std::time::Instant::now();
        Progress {
            total,
            done: 0,
            started: now,
            reported: now,
        }
    }

    /// Counts one message handed on; logs a line every `PROGRESS_EVERY` and at the end.
    fn handed_on(&mut self, folder: &str) {
        self.done = self.done.saturating_add(1);
        let finished = self.done >= self.total;
        if !finished && self.reported.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.reported = std::time::Instant::now();
        let elapsed = self.started.elapsed();
        let left = self.total.saturating_sub(self.done);
        let per_message = elapsed.checked_div(self.done.max(1)).unwrap_or_default();
        let estimate = per_message.saturating_mul(left);
        info!(
            folder = %folder,
            filed = self.done,
            of = self.total,
            remaining_secs = estimate.as_secs(),
            "Backfill progress."
        );
    }
}

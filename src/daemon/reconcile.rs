//! Reconciliation: on a schedule, compares what each watched folder holds with what the store
//! imported, so that mail casemail never filed cannot go unnoticed.
//!
//! A message in a watched folder at or below the folder's cursor has been passed over by
//! ingest: the cursor is written in the same transaction as the ticket change, so everything
//! at or below it must be in the store. Such a message is accounted for when the store records
//! its (folder, UIDVALIDITY, UID) as the source of a stored message, a quarantined message or a
//! message filed without a stored message of its own (a reply that held only commands), or
//! when its Message-ID is stored. Otherwise it is **missing**. A message above the cursor is
//! **pending**: not reached yet (arrived a moment ago, the folder is paused, ingest is behind),
//! counted as lag, never reported.
//!
//! With `processed_folder` set, casemail moves what it filed there, where the server gives it
//! a new UID. Those messages are checked by Message-ID, once each (the store remembers how far
//! the folder was checked): a message there whose Message-ID the store does not know (moved
//! there by hand before casemail read it, or moved there because it sat below the cursor) is
//! missing too. A message there without a Message-ID cannot be matched without downloading it
//! and is counted as unverifiable instead.
//!
//! Missing messages are logged (folder, UID, escaped Message-ID; never contents), counted on
//! `/metrics`, and mailed to the coordinators through the outbox, once per message: the store
//! remembers what was reported (`x/` records) and forgets it when the message is imported
//! after all or leaves the folder.
//!
//! IMAP goes through `imap::Examiner` (read-only EXAMINE sessions); this module only reads
//! the store and writes its own records and the notice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::casework::assign::{self, Team};
use crate::config::Config;
use crate::ids::{MailKey, MessageId, Uid, UidValidity};
use crate::imap::{self, Examiner, Lag};
use crate::mail::compose;
use crate::mail::sanitize;
use crate::metrics::Metrics;
use crate::model::{OutboxKind, Role, Source};
use crate::store::{self, Checked, ReportedMissing, Store};

/// The first scheduled run comes this soon after start (or after `every`, if shorter), so a
/// restart after trouble is checked promptly.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);
/// At most this many messages are listed in one notice; the log and the gauge have them all.
const NOTICE_LIST_LIMIT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("imap failed")]
    Imap(#[from] imap::Error),
    #[error("store failed")]
    Store(#[from] store::Error),
}

/// One message in the mailbox that is in no ticket and not in the quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Missing {
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub message_id: Option<String>,
    /// As the server's ENVELOPE gives it, decoded, not escaped.
    pub subject: Option<String>,
}

impl Missing {
    fn source(&self) -> Source {
        Source {
            mailbox: self.folder.clone(),
            uidvalidity: UidValidity(self.uidvalidity),
            uid: Uid(self.uid),
        }
    }
}

/// What one folder looked like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FolderCheck {
    pub folder: String,
    /// `watched` or `processed`.
    pub role: &'static str,
    pub exists: bool,
    pub uidvalidity: Option<u32>,
    pub uid_next: Option<u32>,
    /// Watched folders: messages above the cursor, not reached yet.
    pub pending: u64,
    /// Messages compared with the store in this run.
    pub checked: u64,
    /// Processed folder: messages without a Message-ID, which cannot be matched.
    pub unverifiable: u64,
    pub missing: Vec<Missing>,
}

impl FolderCheck {
    fn absent(folder: &str, role: &'static str) -> FolderCheck {
        FolderCheck {
            folder: folder.to_owned(),
            role,
            exists: false,
            uidvalidity: None,
            uid_next: None,
            pending: 0,
            checked: 0,
            unverifiable: 0,
            missing: Vec::new(),
        }
    }
}

/// What one run found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    pub at: Timestamp,
    pub folders: Vec<FolderCheck>,
    /// Missing messages the coordinators were told of in this run.
    pub newly_reported: usize,
    /// Notices queued in the outbox (one per coordinator).
    pub notices: usize,
}

impl Report {
    pub(crate) fn missing(&self) -> impl Iterator<Item = &Missing> {
        self.folders.iter().flat_map(|folder| folder.missing.iter())
    }
}

/// Runs reconciliation every `every` until `cancel`, reporting to `metrics` and waking the
/// relay when a notice was queued.
pub(crate) async fn run(
    store: Store,
    config: Arc<Config>,
    every: Duration,
    metrics: Arc<Metrics>,
    outbox_ready: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut wait = every.min(FIRST_RUN_AFTER);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return,
        }
        wait = every;
        let nonce = rand::random::<u64>();
        let outcome = tokio::select! {
            outcome = reconcile(&store, &config, Timestamp::now(), nonce) => outcome,
            // Reconciliation only reads IMAP, and its store writes are synchronous, so
            // dropping it between awaits leaves nothing half done.
            () = cancel.cancelled() => return,
        };
        match outcome {
            Ok(report) => {
                observe(&metrics, &report);
                if report.notices > 0 {
                    outbox_ready.notify_one();
                }
            }
            Err(err) => {
                metrics.reconcile_failed();
                error!(error = %crate::telemetry::chain(&err), "Reconciliation failed; trying again at the next run.");
            }
        }
    }
}

/// Hands a report's figures to the metrics.
pub(crate) fn observe(metrics: &Metrics, report: &Report) {
    for folder in &report.folders {
        if folder.role == "watched" && folder.exists {
            metrics.folder_lag(
                &folder.folder,
                Lag {
                    uid_next: folder.uid_next.map(Uid),
                    pending: folder.pending,
                },
            );
        }
    }
    metrics.reconciled(
        report
            .folders
            .iter()
            .map(|folder| (folder.folder.clone(), folder.missing.len() as u64)),
        report.at,
    );
}

/// One run: looks at every watched folder and the processed folder, records and reports what
/// is missing, and returns what it found.
pub(crate) async fn reconcile(
    store: &Store,
    config: &Config,
    now: Timestamp,
    nonce: u64,
) -> Result<Report, Error> {
    let mut examiner = Examiner::connect(&config.imap).await?;
    let outcome = look(&mut examiner, store, config).await;
    examiner.logout().await;
    let (folders, checked) = outcome?;
    let (newly_reported, notices) = tokio::task::block_in_place(|| {
        settle(store, config, &folders, checked.as_ref(), now, nonce)
    })?;
    store.flush_async().await?;
    let report = Report {
        at: now,
        folders,
        newly_reported,
        notices,
    };
    let missing = report.missing().count();
    if missing > 0 {
        warn!(
            missing,
            newly_reported, notices, "Reconciliation: messages in the mailbox are in no ticket."
        );
    } else {
        info!(
            folders = report.folders.len(),
            "Reconciliation: every message in the mailbox is accounted for."
        );
    }
    Ok(report)
}

async fn look(
    examiner: &mut Examiner,
    store: &Store,
    config: &Config,
) -> Result<(Vec<FolderCheck>, Option<(String, Checked)>), Error> {
    let mut folders = Vec::new();
    for folder in config.imap.folders.iter().chain(&config.imap.junk_folders) {
        folders.push(check_watched(examiner, store, folder).await?);
    }
    let mut checked = None;
    if let Some(processed) = &config.imap.processed_folder {
        let (check, up_to) = check_processed(examiner, store, processed).await?;
        folders.push(check);
        checked = up_to.map(|up_to| (processed.clone(), up_to));
    }
    Ok((folders, checked))
}

async fn check_watched(
    examiner: &mut Examiner,
    store: &Store,
    folder: &str,
) -> Result<FolderCheck, Error> {
    // The cursor first: everything at or below it was committed before the store is read.
    let cursor = store.cursor(folder)?;
    let Some(status) = examiner.examine(folder).await? else {
        return Ok(FolderCheck::absent(folder, "watched"));
    };
    let last = match cursor {
        Some(cursor) if cursor.uidvalidity == status.uidvalidity => cursor.last_uid.0,
        // A new UIDVALIDITY (or no cursor yet): the whole folder is still to be read.
        _ => 0,
    };
    let below = if last > 0 {
        examiner.uids(1, Some(last)).await?
    } else {
        Vec::new()
    };
    let pending = examiner.uids(last.saturating_add(1), None).await?.len() as u64;
    // With a processed folder, a watched folder holds little below its cursor: no store scan.
    let accounted = if below.is_empty() {
        BTreeSet::new()
    } else {
        // A scan of every stored message: off the async workers (the daemon's runtime is
        // multi-threaded).
        tokio::task::block_in_place(|| store.accounted_uids(folder, status.uidvalidity))?
    };
    let candidates: Vec<Uid> = below
        .iter()
        .copied()
        .filter(|uid| !accounted.contains(uid))
        .collect();
    let mut missing = Vec::new();
    if !candidates.is_empty() {
        let mut known = KnownIds::new(store);
        for envelope in examiner.envelopes(&candidates).await? {
            if let Some(id) = &envelope.message_id
                && known.contains(id)?
            {
                continue;
            }
            missing.push(missing_from(folder, status.uidvalidity, envelope));
        }
    }
    debug!(%folder, last_uid = last, checked = below.len(), pending, missing = missing.len(), "Reconciled a watched folder.");
    Ok(FolderCheck {
        folder: folder.to_owned(),
        role: "watched",
        exists: true,
        uidvalidity: Some(status.uidvalidity.0),
        uid_next: status.uid_next.map(|uid| uid.0),
        pending,
        checked: below.len() as u64,
        unverifiable: 0,
        missing,
    })
}

async fn check_processed(
    examiner: &mut Examiner,
    store: &Store,
    folder: &str,
) -> Result<(FolderCheck, Option<Checked>), Error> {
    let Some(status) = examiner.examine(folder).await? else {
        return Ok((FolderCheck::absent(folder, "processed"), None));
    };
    let from = match store.reconciled(folder)? {
        Some(checked) if checked.uidvalidity == status.uidvalidity => {
            checked.up_to.0.saturating_add(1)
        }
        _ => 1,
    };
    let fresh = examiner.uids(from, None).await?;
    // Messages reported before are looked at again: still there and still unknown, or not.
    let mut to_check: BTreeSet<Uid> = store
        .reported_missing()?
        .into_iter()
        .filter(|r| r.source.mailbox == folder && r.source.uidvalidity == status.uidvalidity)
        .map(|r| r.source.uid)
        .collect();
    to_check.extend(fresh.iter().copied());
    let to_check: Vec<Uid> = to_check.into_iter().collect();
    let mut missing = Vec::new();
    let mut unverifiable = 0_u64;
    if !to_check.is_empty() {
        let mut known = KnownIds::new(store);
        for envelope in examiner.envelopes(&to_check).await? {
            match &envelope.message_id {
                Some(id) if known.contains(id)? => {}
                Some(_) => missing.push(missing_from(folder, status.uidvalidity, envelope)),
                None => unverifiable += 1,
            }
        }
    }
    let up_to = fresh.last().copied().unwrap_or(Uid(from.saturating_sub(1)));
    debug!(%folder, from, checked = to_check.len(), unverifiable, missing = missing.len(), "Reconciled the processed folder.");
    let check = FolderCheck {
        folder: folder.to_owned(),
        role: "processed",
        exists: true,
        uidvalidity: Some(status.uidvalidity.0),
        uid_next: status.uid_next.map(|uid| uid.0),
        pending: 0,
        checked: to_check.len() as u64,
        unverifiable,
        missing,
    };
    let checked = Checked {
        uidvalidity: status.uidvalidity,
        up_to,
    };
    Ok((check, Some(checked)))
}

fn missing_from(folder: &str, uidvalidity: UidValidity, envelope: imap::Envelope) -> Missing {
    Missing {
        folder: folder.to_owned(),
        uidvalidity: uidvalidity.0,
        uid: envelope.uid.0,
        message_id: envelope.message_id.map(|id| id.as_str().to_owned()),
        subject: envelope.subject,
    }
}

/// Whether the store knows a Message-ID: a stored message (either direction), mail casemail
/// sent, a message filed without a stored message, or a quarantined message. The last two are
/// read once, on first need.
struct KnownIds<'a> {
    store: &'a Store,
    others: Option<BTreeSet<MessageId>>,
}

impl<'a> KnownIds<'a> {
    fn new(store: &'a Store) -> KnownIds<'a> {
        KnownIds {
            store,
            others: None,
        }
    }

    fn contains(&mut self, id: &MessageId) -> Result<bool, store::Error> {
        if self
            .store
            .find_key(&MailKey::MessageId(id.clone()))?
            .is_some()
            || self.store.find_message_id(id)?.is_some()
        {
            return Ok(true);
        }
        if self.others.is_none() {
            let mut others = self.store.noted_message_ids()?;
            for entry in self.store.quarantine()? {
                if let Some(raw) = self.store.quarantined_raw(&entry.source)?
                    && let Some(id) = crate::mail::parse::header_message_id(&raw)
                {
                    others.insert(id);
                }
            }
            // Purged or erased mail whose IMAP copies are still to be deleted is accounted
            // for: reporting it would mail its subject to the coordinators.
            for deletion in self.store.imap_deletions()? {
                if let Some(MailKey::MessageId(id)) = deletion.key {
                    others.insert(id);
                }
            }
            self.others = Some(others);
        }
        Ok(self
            .others
            .as_ref()
            .is_some_and(|others| others.contains(id)))
    }
}

/// Records what was found, forgets what is no longer missing, and tells the coordinators of
/// what they have not heard of yet, in one transaction. Returns (messages newly reported,
/// notices queued).
fn settle(
    store: &Store,
    config: &Config,
    folders: &[FolderCheck],
    checked: Option<&(String, Checked)>,
    now: Timestamp,
    nonce: u64,
) -> Result<(usize, usize), Error> {
    let examined: BTreeSet<&str> = folders
        .iter()
        .filter(|folder| folder.exists)
        .map(|folder| folder.folder.as_str())
        .collect();
    let missing: Vec<&Missing> = folders.iter().flat_map(|f| f.missing.iter()).collect();
    let known = store.reported_missing()?;
    let still_missing =
        |record: &ReportedMissing| missing.iter().any(|m| m.source() == record.source);
    // Gone from the mailbox or imported after all, in a folder looked at in this run.
    let stale: Vec<Source> = known
        .iter()
        .filter(|record| examined.contains(record.source.mailbox.as_str()))
        .filter(|record| !still_missing(record))
        .map(|record| record.source.clone())
        .collect();
    let untold: Vec<&Missing> = missing
        .iter()
        .copied()
        .filter(|m| {
            !known
                .iter()
                .any(|record| record.source == m.source() && record.notified)
        })
        .collect();
    for m in &untold {
        warn!(
            folder = %sanitize::for_terminal(&m.folder),
            uidvalidity = m.uidvalidity,
            uid = m.uid,
            message_id = %m.message_id.as_deref().map(sanitize::for_terminal).unwrap_or_default(),
            "Message in the mailbox is in no ticket and not in the quarantine."
        );
    }
    let team = Team::load(store, &config.rota.timezone)?;
    let coordinators: Vec<_> = team
        .coordinators(now)
        .into_iter()
        .filter(|agent| agent.role == Role::Coordinator)
        .collect();
    let mut outgoing = Vec::new();
    if !untold.is_empty() {
        let sender = assign::sender(config);
        let watched: Vec<&str> = config.imap.folders.iter().map(String::as_str).collect();
        let (subject, body) = notice_text(&untold, &watched);
        for (index, coordinator) in coordinators.iter().enumerate() {
            let Some(to) = coordinator.emails.first() else {
                continue;
            };
            match compose::plain_to(
                &sender,
                to,
                &subject,
                body.clone(),
                "reconcile",
                nonce.wrapping_add(index as u64),
                now,
            ) {
                Ok(mail) => outgoing.push(mail),
                Err(err) => {
                    warn!(agent = %coordinator.id, error = %err, "Cannot compose the reconciliation notice.")
                }
            }
        }
        if outgoing.is_empty() {
            warn!(
                missing = untold.len(),
                "No coordinator to tell of the missing messages; they are reported again at the next run."
            );
        }
    }
    let notified = !outgoing.is_empty();
    store.write(|tx| {
        for source in &stale {
            tx.remove_reported_missing(source)?;
        }
        for m in &untold {
            tx.put_reported_missing(&ReportedMissing {
                source: m.source(),
                message_id: m.message_id.as_deref().and_then(MessageId::parse),
                reported: now,
                notified,
            })?;
        }
        for mail in &outgoing {
            assign::enqueue(tx, &config.loops, OutboxKind::Notification, None, mail, now)?;
        }
        if let Some((folder, checked)) = checked {
            tx.set_reconciled(folder, checked)?;
        }
        Ok(())
    })?;
    let newly_reported = if notified { untold.len() } else { 0 };
    Ok((newly_reported, outgoing.len()))
}

/// The subject and body of the notice to coordinators. Header text is escaped.
pub(crate) fn notice_text(missing: &[&Missing], watched: &[&str]) -> (String, String) {
    let subject = format!(
        "casemail: {} message(s) in the mailbox are in no ticket",
        missing.len()
    );
    let mut body = format!(
        "casemail compared the mailbox with its tickets and found {} message(s) that were never\n\
         imported: they are in no ticket and not in the quarantine, and nobody has been told of\n\
         them until now.\n",
        missing.len()
    );
    for m in missing.iter().take(NOTICE_LIST_LIMIT) {
        body.push_str(&format!(
            "\n  Folder:     {}\n  UID:        {}\n  Message-ID: {}\n  Subject:    {}\n",
            sanitize::for_terminal(&m.folder),
            m.uid,
            m.message_id.as_deref().map_or_else(
                || "(none)".to_owned(),
                |id| format!("<{}>", sanitize::for_terminal(id))
            ),
            m.subject
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), sanitize::for_terminal),
        ));
    }
    if missing.len() > NOTICE_LIST_LIMIT {
        body.push_str(&format!(
            "\n  … and {} more; the casemail log lists every one.\n",
            missing.len() - NOTICE_LIST_LIMIT
        ));
    }
    body.push_str(&format!(
        "\nTo have casemail import one of them, copy or move it into a watched folder ({}) again.\n\
         A copy of mail that was imported after all is recognised and does not become a second\n\
         ticket.\n",
        watched.join(", ")
    ));
    (subject, body)
}

#[cfg(test)]
mod tests;

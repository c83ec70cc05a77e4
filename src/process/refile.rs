//! `quarantine retry`: a quarantined message's raw bytes filed again, after an upgrade fixed
//! what made it fail, say. It runs where filing runs: in the daemon's process stage (the single
//! writer) when the daemon is up, or on the store when it is not, since filing needs no server.
//! The parse keeps the protections of the process stage (a worker thread, the time budget, a
//! panic caught), so a message that still fails stays quarantined and stops nothing.

use std::panic::AssertUnwindSafe;

use jiff::Timestamp;

use super::{Filing, Outcome};
use crate::casework::assign::Team;
use crate::casework::token::Secret;
use crate::config::Config;
use crate::mail::parse::{self, InboundMail, ParseLimits};
use crate::model::{Arrival, FolderKind};
use crate::model::{QuarantineEntry, Source};
use crate::store::Store;

/// What became of a quarantined message filed again.
#[derive(Debug)]
pub(crate) enum Refiled {
    /// Filed; the quarantine entry is gone.
    Filed(Outcome),
    /// It failed again and stays quarantined, with this reason.
    StillFailing(String),
}

/// Files the quarantined message from `source` again. `None` when nothing is quarantined
/// under that source.
pub(crate) fn refile_quarantined(
    store: &Store,
    config: &Config,
    source: &Source,
    now: Timestamp,
) -> Result<Option<Refiled>, super::Error> {
    let Some(entry) = store
        .quarantine()?
        .into_iter()
        .find(|e| e.source == *source)
    else {
        return Ok(None);
    };
    let Some(raw) = store.quarantined_raw(source)? else {
        return Ok(None);
    };
    let limits = ParseLimits {
        max_attachment_size: config.ingest.max_attachment_size,
    };
    let mail = match parse_guarded(raw.clone(), limits, config.ingest.message_time_budget) {
        Ok(mail) => mail,
        Err(reason) => {
            let entry = QuarantineEntry {
                at: now,
                attempts: entry.attempts.saturating_add(1),
                reason: reason.clone(),
                ..entry
            };
            store.write(|tx| tx.put_quarantine(&entry, &raw))?;
            store.flush()?;
            return Ok(Some(Refiled::StillFailing(reason)));
        }
    };
    let kind = if config.imap.junk_folders.contains(&source.mailbox) {
        FolderKind::Junk
    } else {
        FolderKind::Requests
    };
    let team = Team::load(store, &config.rota.timezone)?;
    let secret = Secret::load_or_create(&config.helpdesk.state_dir)?;
    let filing = Filing {
        store,
        secret: &secret,
        config,
        now,
        nonce: rand::random(),
        // spamd is asked only for mail as it arrives; the rules and the classifier still judge.
        spamd: crate::casework::spam::SpamdAnswer::NotAsked,
    };
    // Filing moves the folder's cursor up to the message; the quarantine already did when it
    // took the message, and a source from an older UIDVALIDITY must not move it back.
    let cursor = store.cursor(&source.mailbox)?;
    let (outcome, _) = filing.file(&team, source, kind, Arrival::Live, &mail, &raw)?;
    // Filed first, then out of the quarantine: a crash in between leaves an entry whose next
    // retry is a harmless duplicate.
    store.write(|tx| {
        if let Some(cursor) = &cursor {
            tx.set_cursor(&source.mailbox, cursor)?;
        }
        tx.remove_quarantine(source)
    })?;
    store.flush()?;
    Ok(Some(Refiled::Filed(outcome)))
}

/// Parses on a worker thread, giving up after `budget` and catching a panic.
fn parse_guarded(
    raw: Vec<u8>,
    limits: ParseLimits,
    budget: std::time::Duration,
) -> Result<InboundMail, String> {
    let (done_tx, done) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("casemail-parse".to_owned())
        .spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| parse::parse(&raw, &limits)));
            let _ = done_tx.send(result);
        })
        .map_err(|err| format!("cannot start a parser thread: {err}"))?;
    match done.recv_timeout(budget) {
        Ok(Ok(mail)) => Ok(mail),
        Ok(Err(_)) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the parser failed on this message".to_owned())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("parsing took longer than {budget:?}"))
        }
    }
}

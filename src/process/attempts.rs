//! Each message's budget: parsing on its own thread under a time limit, the size cap, spamd,
//! and the quarantine of a message that failed too often, with the cursor moved past it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::warn;

use crate::casework::assign::Team;
use crate::casework::threading;
use crate::config::Config;
use crate::imap::Fetched;
use crate::mail::parse::{self, InboundMail, ParseLimits};
use crate::metrics::{Metrics, Stage};
use crate::model::Arrival;
use crate::model::{Cursor, QuarantineEntry, Source};
use crate::store::{self, Store, WriteTx};

use super::*;

/// A message filed from its header fields only, because it is over `[ingest]
/// max_message_size`: the anomaly says so, and the text, which the caseworker's notification
/// shows, says where the whole message is.
pub(super) fn mark_too_large(mail: &mut InboundMail, size: u64, limit: u64, folder: &str) {
    mail.anomalies.retain(|anomaly| {
        !matches!(
            anomaly,
            parse::Anomaly::NoText
                | parse::Anomaly::Unparseable {
                    reason: parse::Unparseable::NoBody
                }
        )
    });
    mail.anomalies
        .push(parse::Anomaly::TooLarge { size, limit });
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    mail.text = format!(
        "[casemail: this message is {:.1} MiB, over the {:.1} MiB limit, so only its header fields were fetched. The whole message, with its text and attachments, stays on the mail server, in the folder {folder:?}; ask whoever runs casemail for it.]",
        mib(size),
        mib(limit),
    );
    mail.attachments.clear();
}

pub(super) fn is_too_large(mail: &InboundMail) -> bool {
    mail.anomalies
        .iter()
        .any(|anomaly| matches!(anomaly, parse::Anomaly::TooLarge { .. }))
}

/// spamd's opinion of live mail, when `[spam] spamd` is set. Mail from the first-run backfill
/// (never routed) and from registered caseworkers is not sent.
pub(super) async fn ask_spamd(
    config: &Config,
    team: &Team,
    fetched: &Fetched,
    mail: &InboundMail,
) -> crate::casework::spam::SpamdAnswer {
    use crate::casework::spam::SpamdAnswer;
    let Some(address) = config.spam.spamd else {
        return SpamdAnswer::NotAsked;
    };
    if fetched.arrival == Arrival::Backfill {
        return SpamdAnswer::NotAsked;
    }
    let sender = sender_address(mail);
    if team.agents().any(|a| a.emails.contains(&sender)) {
        return SpamdAnswer::NotAsked;
    }
    let answer = crate::spamd::check(address, &fetched.raw, config.spam.spamd_timeout).await;
    if let SpamdAnswer::Unavailable(reason) = &answer {
        warn!(%reason, "spamd unavailable; the verdict goes on without it.");
    }
    answer
}

/// A parse running on a thread of its own, so a message that makes the parser spin costs one
/// thread, not the process stage; the parser is pure, so abandoning it is safe.
pub(super) struct Parsing {
    pub(super) started: std::time::Instant,
    pub(super) done: tokio::sync::oneshot::Receiver<(std::thread::Result<InboundMail>, Duration)>,
}

pub(super) fn start_parse(raw: Arc<[u8]>, limits: ParseLimits) -> Result<Parsing, String> {
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let started = std::time::Instant::now();
    std::thread::Builder::new()
        .name("casemail-parse".to_owned())
        .spawn(move || {
            let began = std::time::Instant::now();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| parse::parse(&raw, &limits)));
            let _ = done_tx.send((result, began.elapsed()));
        })
        .map_err(|err| format!("cannot start a parser thread: {err}"))?;
    Ok(Parsing { started, done })
}

/// Waits for a parse, giving up once `budget` has passed since it started.
pub(super) async fn finish_parse(
    parsing: Parsing,
    budget: Duration,
    metrics: &Metrics,
) -> Result<InboundMail, String> {
    let started = parsing.started;
    let left = budget.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, parsing.done).await {
        Err(_) => {
            metrics.observe(Stage::Parse, started.elapsed());
            Err(format!("parsing took longer than {budget:?}"))
        }
        Ok(Err(_)) => Err("the parser failed on this message".to_owned()),
        Ok(Ok((result, took))) => {
            metrics.observe(Stage::Parse, took);
            result.map_err(|_| "the parser failed on this message".to_owned())
        }
    }
}

pub(super) fn quarantine(
    store: &Store,
    now: Timestamp,
    fetched: &Fetched,
    reason: &str,
    attempts: u32,
) -> Result<Outcome, store::Error> {
    let entry = QuarantineEntry {
        source: fetched.source.clone(),
        at: now,
        attempts,
        reason: reason.to_owned(),
        size: fetched.raw.len() as u64,
    };
    store.write(|tx| {
        tx.put_quarantine(&entry, &fetched.raw)?;
        tx.clear_attempts(&entry.source)?;
        advance_cursor(tx, &entry.source)?;
        Ok(())
    })?;
    Ok(Outcome::Quarantined(reason.to_owned()))
}

pub(super) fn advance_cursor(tx: &WriteTx<'_>, source: &Source) -> store::TxResult<()> {
    let newer = match tx.cursor(&source.mailbox)? {
        Some(cursor) => cursor.uidvalidity != source.uidvalidity || cursor.last_uid < source.uid,
        None => true,
    };
    if newer {
        tx.set_cursor(
            &source.mailbox,
            &Cursor {
                uidvalidity: source.uidvalidity,
                last_uid: source.uid,
            },
        )?;
    }
    Ok(())
}

/// The warning a message carries into its notification: it failed authentication, or it
/// joined its ticket by a header match (`stranger`) from an address not on the ticket.
pub(super) fn warning(
    authentication: &crate::casework::auth::Verdict,
    stranger: Option<threading::Reason>,
) -> Option<String> {
    if let Some(failure) = authentication.failure() {
        return Some(crate::casework::auth::failed_warning(failure));
    }
    stranger.map(|reason| crate::casework::auth::stranger_warning(reason.as_str()))
}

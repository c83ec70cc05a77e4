//! Deleting the IMAP copies of purged and erased mail.
//!
//! Retention and erasure remove mail from the store and, in the same transaction, queue an
//! [`ImapDeletion`] for each message (`p/…` in the store). This task works through that queue
//! with a connection of its own, and removes each entry only after the server has expunged the
//! copies, so a deletion interrupted by a crash or an outage is done after the restart.
//!
//! Each message is looked for in two ways:
//! - by its sources (folder, UIDVALIDITY, UID) in the folders it was fetched from, which finds
//!   mail left in place (`processed_folder = ""`) or not yet moved. A UID is only used while
//!   the folder's UIDVALIDITY is the one it was recorded under (RFC 3501 §2.3.1.1);
//! - in the processed folder, where a move gave it a new UID: by `UID SEARCH HEADER
//!   Message-ID`, or, for a message without a Message-ID, by `UID SEARCH FROM` and the
//!   content hash of each candidate. Either way every candidate is checked against the stored
//!   dedupe key before it is deleted, since IMAP SEARCH matches substrings.
//!
//! Deleting is `UID STORE +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE` of exactly those UIDs
//! (RFC 4315), so other messages flagged `\Deleted` by a person are left alone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    BACKOFF_CAP, BACKOFF_START, Error, FetchPlan, Session, connect, message_sizes, plan_fetches,
    timed, uid_set,
};
use crate::config::Config;
use crate::ids::{MailKey, MessageId};
use crate::mail::parse::{self, ParseLimits};
use crate::model::ImapDeletion;
use crate::store::Store;

/// How often the queue is looked at when nothing wakes the task.
const RECHECK: Duration = Duration::from_secs(600);

/// Works through the IMAP deletion queue.
pub(crate) struct Expunger {
    config: Arc<Config>,
    store: Store,
}

impl Expunger {
    pub(crate) fn new(config: Arc<Config>, store: Store) -> Expunger {
        Expunger { config, store }
    }

    /// Runs until `cancel`: at start, whenever a deletion is queued, and every few minutes.
    /// A failed pass is retried with capped, jittered backoff.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let mut watch = self.store.watch_imap_deletions();
        let mut backoff = BACKOFF_START;
        loop {
            let pass = tokio::select! {
                pass = self.step(&cancel) => pass,
                () = cancel.cancelled() => return,
            };
            match pass {
                Ok(()) => backoff = BACKOFF_START,
                Err(err) => {
                    warn!(error = %crate::telemetry::chain(&err), retry_in = ?backoff, "Deleting IMAP copies of purged mail failed; retrying.");
                    let jitter = rand::random_range(0.5..1.0);
                    tokio::select! {
                        () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                        () = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    continue;
                }
            }
            tokio::select! {
                () = watch.changed() => {}
                () = tokio::time::sleep(RECHECK) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// One pass over the queue as it is now. Connects only when there is something to do.
    pub(crate) async fn step(&self, cancel: &CancellationToken) -> Result<(), Error> {
        let pending = self.store.imap_deletions()?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut session = connect(&self.config.imap).await?;
        let mut done = 0_usize;
        let mut copies = 0_usize;
        for entry in &pending {
            if cancel.is_cancelled() {
                break;
            }
            copies += self.delete(&mut session, entry).await?;
            let id = entry.id;
            self.store.write(|tx| tx.remove_imap_deletion(id))?;
            self.store.flush_async().await?;
            done += 1;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
        info!(
            messages = done,
            copies, "IMAP copies of purged or erased mail deleted."
        );
        Ok(())
    }

    /// Deletes every copy of one message; returns how many were expunged.
    async fn delete(&self, session: &mut Session, entry: &ImapDeletion) -> Result<usize, Error> {
        let mut expunged = 0;
        let watched: BTreeSet<&String> = self
            .config
            .imap
            .folders
            .iter()
            .chain(&self.config.imap.junk_folders)
            .collect();
        for source in &entry.sources {
            if !watched.contains(&source.mailbox) {
                continue;
            }
            let Some(uidvalidity) = select(session, &source.mailbox).await? else {
                continue;
            };
            if uidvalidity != source.uidvalidity.0 {
                debug!(folder = %source.mailbox, "UIDVALIDITY changed since the message was fetched; its UID is void.");
                continue;
            }
            let found: Vec<u32> = timed(session.uid_search(format!("UID {}", source.uid.0)))
                .await?
                .into_iter()
                .filter(|uid| *uid == source.uid.0)
                .collect();
            expunged += expunge(session, &found).await?;
        }
        let (Some(processed), Some(key)) = (&self.config.imap.processed_folder, &entry.key) else {
            return Ok(expunged);
        };
        if select(session, processed).await?.is_none() {
            return Ok(expunged);
        }
        let verified = match key {
            MailKey::MessageId(id) => self.by_message_id(session, id).await?,
            MailKey::ContentHash(_) => match &entry.from {
                Some(from) => self.by_content(session, from, key).await?,
                None => Vec::new(),
            },
        };
        expunged += expunge(session, &verified).await?;
        Ok(expunged)
    }

    /// Copies in the selected folder whose Message-ID header is `id`.
    async fn by_message_id(
        &self,
        session: &mut Session,
        id: &MessageId,
    ) -> Result<Vec<u32>, Error> {
        let Some(quoted) = quoted(id.as_str()) else {
            warn!(
                "A Message-ID that IMAP SEARCH cannot express; its copy in the processed folder stays."
            );
            return Ok(Vec::new());
        };
        let candidates = search(session, &format!("HEADER Message-ID {quoted}")).await?;
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let fetched: Vec<(u32, Vec<u8>)> = timed(async {
            let stream = session
                .uid_fetch(uid_set_of(&candidates), "(UID BODY.PEEK[HEADER])")
                .await?;
            let all: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                all.into_iter()
                    .filter_map(|f| Some((f.uid?, f.header().unwrap_or_default().to_vec())))
                    .collect(),
            )
        })
        .await?;
        Ok(fetched
            .into_iter()
            .filter(|(_, header)| {
                crate::mail::parse::header_message_id(header).as_ref() == Some(id)
            })
            .map(|(uid, _)| uid)
            .collect())
    }

    /// Copies in the selected folder from `from` whose content hash is `key`.
    async fn by_content(
        &self,
        session: &mut Session,
        from: &str,
        key: &MailKey,
    ) -> Result<Vec<u32>, Error> {
        let Some(quoted) = quoted(from) else {
            return Ok(Vec::new());
        };
        let candidates = search(session, &format!("FROM {quoted}")).await?;
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let limits = ParseLimits {
            max_attachment_size: self.config.ingest.max_attachment_size,
        };
        // Bounded in bytes like ingest: a sender may have sent many large messages. A copy over
        // max_message_size was filed from its header fields, so its whole bytes cannot give
        // the stored hash: it is not fetched.
        let sized = message_sizes(session, &uid_set_of(&candidates)).await?;
        let ingest = &self.config.ingest;
        let mut matching = Vec::new();
        for plan in plan_fetches(&sized, ingest.max_message_size, ingest.fetch_bytes) {
            let FetchPlan::Whole { uids, .. } = plan else {
                continue;
            };
            let set = uid_set(&uids);
            debug!(uids = %set, "UID FETCH for a content check.");
            let fetched: Vec<(u32, Vec<u8>)> = timed(async {
                let stream = session
                    .uid_fetch(uid_set(&uids), "(UID BODY.PEEK[])")
                    .await?;
                let all: Vec<_> = stream.try_collect().await?;
                Ok::<_, async_imap::error::Error>(
                    all.into_iter()
                        .filter_map(|f| Some((f.uid?, f.body().unwrap_or_default().to_vec())))
                        .collect(),
                )
            })
            .await?;
            matching.extend(
                fetched
                    .into_iter()
                    .filter(|(_, raw)| {
                        // The parser never panics on mail by design; a message that made it
                        // panic anyway is simply not this one.
                        std::panic::catch_unwind(|| parse::parse(raw, &limits).key)
                            .is_ok_and(|found| &found == key)
                    })
                    .map(|(uid, _)| uid),
            );
        }
        Ok(matching)
    }
}

/// Selects a folder; `None` when it does not exist. Returns its UIDVALIDITY.
async fn select(session: &mut Session, folder: &str) -> Result<Option<u32>, Error> {
    match timed(session.select(folder)).await {
        Ok(mailbox) => Ok(Some(mailbox.uid_validity.ok_or_else(|| {
            Error::NoUidValidity {
                folder: folder.to_owned(),
            }
        })?)),
        Err(Error::Protocol(async_imap::error::Error::No(_))) => Ok(None),
        Err(err) => Err(err),
    }
}

async fn search(session: &mut Session, query: &str) -> Result<Vec<u32>, Error> {
    let mut found: Vec<u32> = timed(session.uid_search(query))
        .await?
        .into_iter()
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Flags exactly these UIDs `\Deleted` and expunges them (UIDPLUS).
async fn expunge(session: &mut Session, uids: &[u32]) -> Result<usize, Error> {
    if uids.is_empty() {
        return Ok(0);
    }
    let set = uid_set_of(uids);
    timed(async {
        session
            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    timed(async {
        session
            .uid_expunge(&set)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(uids.len())
}

fn uid_set_of(uids: &[u32]) -> String {
    let uids: Vec<crate::ids::Uid> = uids.iter().copied().map(crate::ids::Uid).collect();
    uid_set(&uids)
}

/// An IMAP quoted string (RFC 3501 §4.3), or `None` for text a quoted string cannot hold
/// (non-ASCII, line breaks).
fn quoted(text: &str) -> Option<String> {
    if !text.is_ascii() || text.chars().any(|c| c.is_ascii_control()) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

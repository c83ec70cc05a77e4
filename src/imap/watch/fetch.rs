//! Fetching new mail in pieces bounded in bytes and handing it to the process stage.

use futures::TryStreamExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{FolderWatch, Selected};
use crate::ids::Uid;
use crate::imap::budget::kib;
use crate::imap::{Error, FetchPlan, Fetched, message_sizes, plan_fetches, timed, uid_set};
use crate::model::{Arrival, Source};

/// How much of an oversized message's header block is fetched (a partial FETCH, RFC 3501
/// §6.4.5): enough for any real header, bounded whatever the message holds.
const MAX_HEADER_FETCH: u32 = 256 * 1024;

impl FolderWatch {
    /// Fetches `uids` (one batch) in pieces bounded in bytes: the sizes first, then the whole
    /// messages up to `[ingest] fetch_bytes` per command, and only the header fields of each
    /// message over `[ingest] max_message_size`.
    pub(super) async fn fetch_range(
        &mut self,
        selected: &mut Selected,
        uids: &[Uid],
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let set = uid_set(uids);
        debug!(folder = %self.folder, uids = %set, "UID FETCH RFC822.SIZE.");
        let mut sized = message_sizes(selected.session()?, &set).await?;
        sized.retain(|(uid, _)| uid.0 > selected.last.0);
        let ingest = &self.config.ingest;
        for plan in plan_fetches(&sized, ingest.max_message_size, ingest.fetch_bytes) {
            let reserved = match &plan {
                FetchPlan::Whole { kib, .. } => kib.iter().fold(0_u32, |a, b| a.saturating_add(*b)),
                FetchPlan::HeaderOnly { .. } => kib(u64::from(MAX_HEADER_FETCH)),
            };
            // Waiting here is backpressure in bytes: mail fetched earlier is still being filed.
            let held = tokio::select! {
                held = self.budget.reserve(reserved) => held,
                () = cancel.cancelled() => return Ok(()),
            };
            let stop = match plan {
                FetchPlan::Whole { uids, kib } => {
                    self.fetch_whole(selected, &uids, &kib, held, cancel)
                        .await?
                }
                FetchPlan::HeaderOnly { uid, size } => {
                    self.fetch_header_only(selected, uid, size, held, cancel)
                        .await?
                }
            };
            if stop {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Fetches whole messages and hands them on, each with its share of `held`. Returns `true`
    /// when cancelled.
    async fn fetch_whole(
        &mut self,
        selected: &mut Selected,
        uids: &[Uid],
        kib: &[u32],
        mut held: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        let set = uid_set(uids);
        debug!(folder = %self.folder, uids = %set, "UID FETCH.");
        let session = selected.session()?;
        let fetched: Vec<(u32, Vec<u8>)> = timed(async {
            let stream = session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            let all: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                all.into_iter()
                    .filter_map(|f| Some((f.uid?, f.body().unwrap_or_default().to_vec())))
                    .collect(),
            )
        })
        .await?;
        let mut fetched = fetched;
        fetched.sort_by_key(|(uid, _)| *uid);
        for (uid, raw) in fetched {
            // The message's own share, by the size reserved for it; the last one takes what
            // is left.
            let share = uids
                .iter()
                .position(|u| u.0 == uid)
                .and_then(|index| kib.get(index))
                .copied()
                .unwrap_or(1);
            let mine = match held.as_mut() {
                Some(permit) if permit.num_permits() > share as usize => {
                    permit.split(share as usize)
                }
                _ => held.take(),
            };
            if self
                .hand_on(selected, Uid(uid), raw, None, mine, cancel)
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Fetches the header fields of a message over `[ingest] max_message_size` and hands them
    /// on; the message itself is never fetched and stays on the server. Returns `true` when
    /// cancelled.
    async fn fetch_header_only(
        &mut self,
        selected: &mut Selected,
        uid: Uid,
        size: u64,
        held: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        let set = uid.0.to_string();
        let query = format!("(UID BODY.PEEK[HEADER]<0.{MAX_HEADER_FETCH}>)");
        info!(folder = %self.folder, uid = %uid, size, limit = self.config.ingest.max_message_size, "Message over max_message_size; fetching its header fields only.");
        let session = selected.session()?;
        let header: Option<Vec<u8>> = timed(async {
            let stream = session.uid_fetch(&set, &query).await?;
            let all: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                all.iter()
                    .find(|f| f.uid == Some(uid.0))
                    .map(|f| f.header().unwrap_or_default().to_vec()),
            )
        })
        .await?;
        let Some(header) = header else {
            // Expunged meanwhile: nothing to file.
            return Ok(false);
        };
        self.hand_on(selected, uid, header, Some(size), held, cancel)
            .await
    }

    /// Sends one message to the process stage. Returns `true` when cancelled.
    async fn hand_on(
        &mut self,
        selected: &mut Selected,
        uid: Uid,
        raw: Vec<u8>,
        oversized: Option<u64>,
        held: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        let uid = uid.0;
        {
            if uid <= selected.last.0 {
                return Ok(false);
            }
            let arrival = match selected.backfill_below {
                Some(below) if uid < below.0 => Arrival::Backfill,
                _ => Arrival::Live,
            };
            if arrival == Arrival::Backfill
                && let Some(progress) = selected.backfill.as_mut()
            {
                progress.handed_on(&self.folder);
            }
            let item = Fetched {
                source: Source {
                    mailbox: self.folder.clone(),
                    uidvalidity: selected.uidvalidity,
                    uid: Uid(uid),
                },
                kind: self.kind,
                arrival,
                raw,
                oversized,
                ack: self.ack_tx.clone(),
                _held: held,
            };
            // A full channel is backpressure: the process stage is behind, so IMAP waits.
            tokio::select! {
                sent = self.to_process.send(item) => sent.map_err(|_| Error::ProcessGone)?,
                () = cancel.cancelled() => return Ok(true),
            }
            selected.outstanding += 1;
            selected.last = Uid(uid);
        }
        Ok(false)
    }
}

//! Fetched mail bounded in bytes: the sizes the server reports, fetches cut to fit
//! `[ingest] fetch_bytes` and `max_message_size`, and the budget of bytes fetched and not yet
//! filed.

use std::sync::Arc;

use futures::TryStreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Error, Session, timed};
use crate::config;
use crate::ids::Uid;

/// The memory fetched mail may take until it is filed, counted in KiB by the sizes the server
/// reports: every fetcher reserves its next UID FETCH here first, and each message gives its
/// share back once the process stage has filed it. So memory stays bounded in bytes whatever
/// the mailbox holds, and backpressure in bytes reaches IMAP.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    /// `[ingest] fetch_bytes`, or the largest message fetched whole if that is more.
    pub(crate) fn new(ingest: &config::Ingest) -> Budget {
        let total_kib = kib(ingest.fetch_bytes.max(ingest.max_message_size)).max(1);
        Budget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `kib` KiB are free (never more than the whole budget) and holds them.
    pub(crate) async fn reserve(&self, kib: u32) -> Option<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_many_owned(kib.clamp(1, self.total_kib))
            .await
            .ok()
    }

    /// KiB held by mail fetched and not yet filed.
    pub(crate) fn in_use_kib(&self) -> u32 {
        let free = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        self.total_kib.saturating_sub(free)
    }

    /// The whole budget, in KiB.
    pub(crate) fn total_kib(&self) -> u32 {
        self.total_kib
    }
}

/// Bytes in KiB, rounded up; at least 1, so every message holds a share.
pub(super) fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// The size the server reports (`RFC822.SIZE`) of each message of `set` in the selected
/// folder, by UID.
pub(super) async fn message_sizes(
    session: &mut Session,
    set: &str,
) -> Result<Vec<(Uid, u64)>, Error> {
    let mut sized: Vec<(Uid, u64)> = timed(async {
        let stream = session.uid_fetch(set, "(UID RFC822.SIZE)").await?;
        let all: Vec<_> = stream.try_collect().await?;
        Ok::<_, async_imap::error::Error>(
            all.into_iter()
                .filter_map(|f| Some((Uid(f.uid?), u64::from(f.size.unwrap_or(0)))))
                .collect(),
        )
    })
    .await?;
    sized.sort_unstable();
    sized.dedup_by_key(|(uid, _)| *uid);
    Ok(sized)
}

/// One UID FETCH of a batch: messages fetched whole, together up to `[ingest] fetch_bytes`, or
/// one message over `[ingest] max_message_size` of which only the header fields are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchPlan {
    Whole { uids: Vec<Uid>, kib: Vec<u32> },
    HeaderOnly { uid: Uid, size: u64 },
}

/// Cuts `sized` (UID and RFC822.SIZE, in UID order) into fetches: whole messages in runs of at
/// most `fetch_bytes` (a run holds at least one message), and each message over
/// `max_message_size` alone, headers only.
pub(crate) fn plan_fetches(
    sized: &[(Uid, u64)],
    max_message_size: u64,
    fetch_bytes: u64,
) -> Vec<FetchPlan> {
    let mut plans = Vec::new();
    let mut run: Vec<Uid> = Vec::new();
    let mut run_kib: Vec<u32> = Vec::new();
    let mut run_bytes: u64 = 0;
    for &(uid, size) in sized {
        if size > max_message_size {
            if !run.is_empty() {
                plans.push(FetchPlan::Whole {
                    uids: std::mem::take(&mut run),
                    kib: std::mem::take(&mut run_kib),
                });
                run_bytes = 0;
            }
            plans.push(FetchPlan::HeaderOnly { uid, size });
            continue;
        }
        if !run.is_empty() && run_bytes.saturating_add(size) > fetch_bytes {
            plans.push(FetchPlan::Whole {
                uids: std::mem::take(&mut run),
                kib: std::mem::take(&mut run_kib),
            });
            run_bytes = 0;
        }
        run.push(uid);
        run_kib.push(kib(size));
        run_bytes = run_bytes.saturating_add(size);
    }
    if !run.is_empty() {
        plans.push(FetchPlan::Whole {
            uids: run,
            kib: run_kib,
        });
    }
    plans
}

//! Compaction: rewriting the database into a fresh directory so that removed records are gone
//! from disk, not only from the tree. sled 0.34 keeps old versions of pages in its segment
//! files until it happens to reuse them and has no call to force that, so after an erasure the
//! person's data would stay in the files for an unknown time.
//!
//! An erasure marks the store (`meta/compact_pending`, in its last transaction). The next
//! [`super::Store::open`] of the state directory (the daemon's start, or the CLI's own open
//! right after an offline `erase`) copies every live record into `store.compacting`, flushes
//! and closes it, renames it `store.compacted` (the copy is complete), then swaps it in:
//! `store` → `store.replaced`, `store.compacted` → `store`, and removes `store.replaced`. Each
//! step is a rename or a removal of a directory nothing else reads, so a crash at any point
//! leaves either the old store or the new one, and the next open ([`recover`]) finishes or
//! cleans up: an incomplete `store.compacting` is removed, a complete `store.compacted` is
//! swapped in, a left-over `store.replaced` is removed. The removed files are unlinked, not
//! overwritten: what the file system or the disk keeps of them is out of casemail's reach.

use std::path::Path;

use tracing::{info, warn};

use super::{Error, STORE_DIR, Store};

pub(super) const KEY_COMPACT: &[u8] = b"meta/compact_pending";

fn sibling(state_dir: &Path, suffix: &str) -> std::path::PathBuf {
    state_dir.join(format!("{STORE_DIR}.{suffix}"))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Compact {
        path: path.to_owned(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| io(dir, err))
}

/// Finishes or cleans up a compaction a crash interrupted; see the module documentation.
pub(super) fn recover(state_dir: &Path) -> Result<(), Error> {
    let live = state_dir.join(STORE_DIR);
    let compacting = sibling(state_dir, "compacting");
    let compacted = sibling(state_dir, "compacted");
    let replaced = sibling(state_dir, "replaced");
    if compacting.exists() {
        std::fs::remove_dir_all(&compacting).map_err(|err| io(&compacting, err))?;
    }
    if compacted.exists() {
        if live.exists() {
            if replaced.exists() {
                std::fs::remove_dir_all(&replaced).map_err(|err| io(&replaced, err))?;
            }
            std::fs::rename(&live, &replaced).map_err(|err| io(&live, err))?;
        }
        std::fs::rename(&compacted, &live).map_err(|err| io(&compacted, err))?;
        sync_dir(state_dir)?;
    }
    if replaced.exists() {
        std::fs::remove_dir_all(&replaced).map_err(|err| io(&replaced, err))?;
    }
    Ok(())
}

/// Rewrites the store of `state_dir` (open as `store`) into a fresh directory and swaps it
/// in. Returns the store opened on the new directory. When the copy cannot be made (a full
/// disk), the store stays as it was, still marked, and is returned: a failed compaction must
/// not keep the daemon from starting.
pub(super) fn run(store: Store, state_dir: &Path) -> Result<Store, Error> {
    let records = match copy(&store, state_dir) {
        Ok(records) => records,
        Err(err) => {
            let mut why = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            warn!(
                error = %why,
                "Cannot compact the store; trying again at the next start."
            );
            let _ = std::fs::remove_dir_all(sibling(state_dir, "compacting"));
            return Ok(store);
        }
    };
    drop(store);
    recover(state_dir)?;
    info!(records, "Store compacted.");
    Store::open_path(state_dir.join(STORE_DIR))
}

/// Copies every live record but the compaction mark into `store.compacting`, flushes and
/// closes it, and renames it `store.compacted`. Returns how many records were copied.
fn copy(store: &Store, state_dir: &Path) -> Result<u64, Error> {
    let compacting = sibling(state_dir, "compacting");
    let compacted = sibling(state_dir, "compacted");
    if compacting.exists() {
        std::fs::remove_dir_all(&compacting).map_err(|err| io(&compacting, err))?;
    }
    let mut records = 0_u64;
    {
        let fresh = Store::open_path(compacting.clone())?;
        for item in store.tree.iter() {
            let (key, value) = item?;
            if key.as_ref() == KEY_COMPACT {
                continue;
            }
            fresh.tree.insert(key, value)?;
            records = records.saturating_add(1);
        }
        fresh.db.flush()?;
    }
    std::fs::rename(&compacting, &compacted).map_err(|err| io(&compacting, err))?;
    sync_dir(state_dir)?;
    Ok(records)
}

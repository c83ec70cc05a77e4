//! The first-run backfill boundary of each watched folder.
//!
//! Record (see ARCHITECTURE.md, store layout): `meta/backfill/{folder}`, the folder's UIDVALIDITY
//! and its UIDNEXT at the first SELECT. Mail below it was in the folder before casemail first
//! looked and is filed silently, however many sessions, reconnects and restarts the backlog
//! takes: the boundary is written and flushed before anything from the folder is filed.

use serde::{Deserialize, Serialize};

use super::{Error, Store, get_json};
use crate::ids::{Uid, UidValidity};

/// UIDs of the folder under `uidvalidity` below `below` are first-run backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Backfill {
    pub uidvalidity: UidValidity,
    pub below: Uid,
}

fn backfill_key(folder: &str) -> String {
    format!("meta/backfill/{folder}")
}

impl Store {
    /// The folder's backfill boundary under `uidvalidity`, if its first run recorded one.
    pub fn backfill(&self, folder: &str, uidvalidity: UidValidity) -> Result<Option<Uid>, Error> {
        let found: Option<Backfill> = get_json(&self.tree, &backfill_key(folder))?;
        Ok(found
            .filter(|b| b.uidvalidity == uidvalidity)
            .map(|b| b.below))
    }

    /// The boundary of a folder's first run: the one already recorded under `uidvalidity` (a
    /// reconnect or restart before the first message was filed), else `uid_next`, recorded and
    /// flushed before this returns.
    pub fn begin_backfill(
        &self,
        folder: &str,
        uidvalidity: UidValidity,
        uid_next: Uid,
    ) -> Result<Uid, Error> {
        if let Some(below) = self.backfill(folder, uidvalidity)? {
            return Ok(below);
        }
        let record = Backfill {
            uidvalidity,
            below: uid_next,
        };
        self.write(|tx| tx.put(&backfill_key(folder), &record))?;
        self.flush()?;
        Ok(uid_next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_boundary_is_kept_across_reopens_and_a_new_uidvalidity_starts_afresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(store.backfill("INBOX", UidValidity(7)).expect("read"), None);
            let below = store
                .begin_backfill("INBOX", UidValidity(7), Uid(1501))
                .expect("begin");
            assert_eq!(below, Uid(1501));
        }
        // sled lets go of its lock a moment after the last handle is dropped.
        let store = (0..100)
            .find_map(|_| match Store::open(dir.path()) {
                Err(Error::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                other => Some(other),
            })
            .expect("the lock is released")
            .expect("reopen");
        // A second first SELECT (nothing filed yet) sees a higher UIDNEXT: the first one holds.
        let again = store
            .begin_backfill("INBOX", UidValidity(7), Uid(1600))
            .expect("again");
        assert_eq!(again, Uid(1501));
        assert_eq!(
            store.backfill("INBOX", UidValidity(7)).expect("read"),
            Some(Uid(1501))
        );
        assert_eq!(store.backfill("INBOX", UidValidity(8)).expect("read"), None);
        assert_eq!(store.backfill("Junk", UidValidity(7)).expect("read"), None);
    }
}

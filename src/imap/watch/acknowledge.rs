//! Acknowledging on the server what the process stage committed: `\Seen`, then a move to the
//! processed folder.

use futures::TryStreamExt as _;
use tracing::debug;

use super::{FolderWatch, Selected};
use crate::ids::{Uid, UidValidity};
use crate::imap::{Committed, Error, timed, uid_set};

impl FolderWatch {
    pub(super) async fn apply_ack(
        &mut self,
        selected: &mut Selected,
        committed: Committed,
    ) -> Result<(), Error> {
        selected.outstanding = selected.outstanding.saturating_sub(committed.uids.len());
        if committed.uidvalidity != selected.uidvalidity {
            // The folder was recreated meanwhile; the leftover pass of the next session
            // acknowledges whatever is still there.
            return Ok(());
        }
        self.acknowledge(selected, committed.uidvalidity, &committed.uids)
            .await
    }

    /// Flags committed messages `\Seen` and moves them to the processed folder, one command
    /// per range rather than per message. Only called for durably committed UIDs.
    pub(super) async fn acknowledge(
        &mut self,
        selected: &mut Selected,
        _uidvalidity: UidValidity,
        uids: &[Uid],
    ) -> Result<(), Error> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        let has_move = selected.has_move;
        let session = selected.session()?;
        timed(async {
            session
                .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let Some(processed) = self.config.imap.processed_folder.clone() else {
            debug!(folder = %self.folder, uids = %set, "Flagged processed messages.");
            return Ok(());
        };
        if has_move {
            timed(session.uid_mv(&set, &processed)).await?;
        } else {
            // RFC 6851 is missing: COPY, mark deleted, and expunge only these UIDs (UIDPLUS).
            timed(session.uid_copy(&set, &processed)).await?;
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
        }
        debug!(folder = %self.folder, uids = %set, to = %processed, "Moved processed messages.");
        Ok(())
    }
}

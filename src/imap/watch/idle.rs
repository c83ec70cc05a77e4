//! Waiting for news: IDLE (RFC 2177) re-issued before its deadline, or the poll interval on a
//! server without it.

use async_imap::extensions::idle::IdleResponse;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{FolderWatch, Selected, StepOutcome};
use crate::imap::{Error, timed};

/// See `Selected::idle_wakeups_without_mail`.
const MAX_IDLE_WAKEUPS_WITHOUT_MAIL: u32 = 100;

impl FolderWatch {
    pub(super) async fn wait_for_news(
        &mut self,
        selected: &mut Selected,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, Error> {
        if !selected.has_idle {
            tokio::select! {
                () = tokio::time::sleep(self.config.imap.poll_interval) => return Ok(StepOutcome::Waited),
                () = cancel.cancelled() => return Ok(StepOutcome::Cancelled),
            }
        }
        // IDLE consumes the session and gives it back only on success; after an error the
        // slot stays empty and the next command forces a reconnect.
        let session = selected.session.take().ok_or(Error::SessionLost)?;
        let mut handle = session.idle();
        timed(handle.init()).await?;
        let idle_timeout = self.config.imap.idle_timeout;
        let outcome = {
            // The crate's own timeout restarts on every server keepalive (Dovecot sends one
            // every two minutes), so an overall deadline makes sure IDLE is re-issued before
            // the 29 minutes RFC 2177 allows; the DONE that follows, under COMMAND_TIMEOUT,
            // proves the connection is still alive.
            let (wait, stop) = handle.wait_with_timeout(idle_timeout);
            tokio::select! {
                response = tokio::time::timeout(idle_timeout, wait) => match response {
                    Ok(response) => Some(response?),
                    Err(_) => Some(IdleResponse::Timeout),
                },
                () = cancel.cancelled() => { drop(stop); None }
            }
        };
        match &outcome {
            Some(IdleResponse::NewData(data)) => {
                if let async_imap::imap_proto::Response::Data {
                    status: async_imap::imap_proto::Status::Bye,
                    information,
                    ..
                } = data.parsed()
                {
                    // RFC 3501 §7.1.5: the server is closing the connection (Dovecot does so
                    // when the selected folder is deleted).
                    return Err(Error::ServerClosed(
                        information.as_deref().unwrap_or("BYE").to_owned(),
                    ));
                }
                selected.idle_wakeups_without_mail += 1;
                if selected.idle_wakeups_without_mail > MAX_IDLE_WAKEUPS_WITHOUT_MAIL {
                    return Err(Error::Spinning);
                }
                debug!(folder = %self.folder, "IDLE woke up.");
            }
            Some(IdleResponse::Timeout) => {
                selected.idle_wakeups_without_mail = 0;
                debug!(folder = %self.folder, "IDLE re-issued.");
            }
            Some(IdleResponse::ManualInterrupt) | None => {}
        }
        selected.session = Some(timed(handle.done()).await?);
        Ok(match outcome {
            None => StepOutcome::Cancelled,
            Some(_) => StepOutcome::Waited,
        })
    }
}

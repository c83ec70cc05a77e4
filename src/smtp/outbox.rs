//! Working through the outbox: each due entry sent and settled before the next, and the wait
//! until the next one is due, woken early by whoever enqueued mail.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::settle::backoff;
use super::{Error, Relay, StepOutcome};
use crate::model::OutboxEntry;

/// How long `run` sleeps when the outbox is empty; a wake-up ends it earlier.
const IDLE_RECHECK: Duration = Duration::from_secs(10 * 60);

impl Relay {
    /// Sends every entry whose `next_attempt` has come, in outbox order, and settles each one
    /// in the store before the next is sent. Returns an error only when the store fails; SMTP
    /// failures are settled (deferred or dead-lettered) and counted in the outcome.
    pub async fn step(&mut self) -> Result<StepOutcome, Error> {
        let now = (self.clock)();
        let due: Vec<OutboxEntry> = self
            .store
            .outbox()?
            .into_iter()
            .filter(|entry| entry.next_attempt <= now)
            .collect();
        let mut outcome = StepOutcome::default();
        // Set when the server or the link is down: the rest of the due entries are deferred
        // with the same reason instead of each paying for its own failed connection.
        let mut server_trouble: Option<String> = None;
        if !due.is_empty() {
            server_trouble = self.renew_sign_in().await;
            if let Some(reason) = &server_trouble {
                error!(error = %reason, "Cannot sign in to SMTP; outgoing mail waits in the outbox.");
            }
        }
        let mut deferred_any = false;
        for entry in due {
            if self.cancel.is_cancelled() {
                break;
            }
            if let Some(reason) = &server_trouble {
                debug!(
                    outbox_id = entry.id,
                    "Deferred without trying, for the same server-side failure."
                );
                self.defer(&entry, reason)?;
                outcome.deferred += 1;
                deferred_any = true;
                continue;
            }
            let raw = self.store.outbox_raw(entry.id)?;
            match self.attempt(&entry, raw.as_deref()).await {
                Ok(()) => {
                    self.record_sent(&entry)?;
                    // The resend window of the at-least-once contract ends here.
                    self.store.flush_async().await?;
                    outcome.sent += 1;
                }
                Err(Error::Store(err)) => return Err(Error::Store(err)),
                Err(err) if err.is_permanent() => {
                    self.record_dead_letter(&entry, raw.as_deref(), &err)?;
                    self.store.flush_async().await?;
                    outcome.failed.push(entry.id);
                }
                Err(err) => {
                    let reason = err.to_string();
                    let attempts = entry.attempts.saturating_add(1);
                    if matches!(err, Error::Session { .. }) {
                        self.distrust_token().await;
                        error!(outbox_id = entry.id, attempts, error = %reason, "SMTP server refused the session; the message stays in the outbox until the [smtp] settings or the server are fixed.");
                    } else {
                        warn!(outbox_id = entry.id, attempts, error = %reason, "Sending failed; will retry.");
                    }
                    self.defer(&entry, &reason)?;
                    outcome.deferred += 1;
                    deferred_any = true;
                    if err.affects_every_message() {
                        server_trouble = Some(reason);
                    }
                }
            }
        }
        if deferred_any {
            // Losing a deferral to a crash only means an earlier retry; one flush is enough.
            self.store.flush_async().await?;
        }
        Ok(outcome)
    }

    /// Runs until `cancel`: a step, then a wait until the earliest `next_attempt`, a
    /// `wake.notify_one()` from whoever enqueued mail, or cancellation. A send already under
    /// way when `cancel` fires is finished and settled; the entries after it wait for the next
    /// start.
    pub async fn run(mut self, wake: Arc<Notify>, cancel: CancellationToken) {
        self.cancel = cancel.clone();
        let mut store_failures = 0_u32;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let pause = match self.step().await {
                Ok(outcome) => {
                    store_failures = 0;
                    if outcome != StepOutcome::default() {
                        debug!(
                            sent = outcome.sent,
                            deferred = outcome.deferred,
                            failed = outcome.failed.len(),
                            "Relay step done."
                        );
                    }
                    match self.until_next_due() {
                        Ok(pause) => pause,
                        Err(err) => {
                            store_failures = store_failures.saturating_add(1);
                            error!(error = %crate::telemetry::chain(&err), "Cannot read the outbox; retrying.");
                            backoff(store_failures)
                        }
                    }
                }
                Err(err) => {
                    store_failures = store_failures.saturating_add(1);
                    error!(error = %crate::telemetry::chain(&err), "Relay step failed; retrying.");
                    backoff(store_failures)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = wake.notified() => {}
                () = cancel.cancelled() => break,
            }
        }
        info!("Relay stopped.");
    }

    /// How long until the earliest entry is due (zero when one already is).
    fn until_next_due(&self) -> Result<Duration, Error> {
        let Some(earliest) = self
            .store
            .outbox()?
            .into_iter()
            .map(|entry| entry.next_attempt)
            .min()
        else {
            return Ok(IDLE_RECHECK);
        };
        let wait = earliest.duration_since((self.clock)());
        // Negative means overdue; a clock that jumped far back is re-read within the cap.
        Ok(Duration::try_from(wait)
            .unwrap_or(Duration::ZERO)
            .min(IDLE_RECHECK))
    }
}

//! Settling an outbox entry in the store after an attempt: removed once sent, rescheduled with
//! capped, jittered backoff, or kept as a dead letter, with the ticket's event and the log line.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tracing::{error, info};

use super::{Error, Relay, Settled};
use crate::model::{Actor, DeadLetter, Event, OutboxEntry, OutboxKind};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);

/// The delay before attempt number `attempts + 1`, before jitter: 1 s after the first failed
/// attempt, doubling each time, never more than 10 minutes.
pub fn nominal_backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    BACKOFF_START
        .saturating_mul(1_u32 << doublings)
        .min(BACKOFF_CAP)
}

/// [`nominal_backoff`] scaled by `jitter` (clamped to 0.5–1.0), so messages deferred together
/// do not all come back in the same second.
pub fn backoff_with_jitter(attempts: u32, jitter: f64) -> Duration {
    nominal_backoff(attempts).mul_f64(jitter.clamp(0.5, 1.0))
}

pub(super) fn backoff(attempts: u32) -> Duration {
    backoff_with_jitter(attempts, rand::random_range(0.75..=1.0))
}

impl Relay {
    pub(super) fn record_sent(&self, entry: &OutboxEntry) -> Result<(), Error> {
        let event = Event {
            at: (self.clock)(),
            actor: Actor::System,
            kind: "sent".to_owned(),
            detail: format!(
                "{} to {} recipient(s)",
                entry.kind.name(),
                entry.recipients.len()
            ),
        };
        self.store.write(|tx| {
            tx.remove_outbox(entry.id)?;
            if let Some(id) = entry.ticket
                && let Some(mut ticket) = tx.ticket(id)?
            {
                tx.add_event(&mut ticket, &event)?;
                tx.put_ticket(&ticket)?;
            }
            Ok(())
        })?;
        self.settled(entry.kind, Settled::Sent);
        match entry.ticket {
            Some(ticket) => {
                info!(outbox_id = entry.id, %ticket, kind = entry.kind.name(), to = recipient_role(entry.kind), recipients = entry.recipients.len(), "Sent.");
            }
            None => {
                info!(
                    outbox_id = entry.id,
                    kind = entry.kind.name(),
                    to = recipient_role(entry.kind),
                    recipients = entry.recipients.len(),
                    "Sent."
                );
            }
        }
        Ok(())
    }

    pub(super) fn defer(&self, entry: &OutboxEntry, reason: &str) -> Result<(), Error> {
        let attempts = entry.attempts.saturating_add(1);
        let delay = SignedDuration::try_from(backoff(attempts)).unwrap_or(SignedDuration::MAX);
        let updated = OutboxEntry {
            attempts,
            next_attempt: (self.clock)()
                .saturating_add(delay)
                .unwrap_or(Timestamp::MAX),
            last_error: Some(reason.to_owned()),
            ..entry.clone()
        };
        self.store.write(|tx| {
            // Something else (an erasure, an operator) may have removed the entry while it was
            // being sent; writing it back would resurrect it without its bytes.
            if tx.outbox_entry(updated.id)?.is_some() {
                tx.update_outbox(&updated)?;
            }
            Ok(())
        })?;
        self.settled(entry.kind, Settled::Deferred);
        Ok(())
    }

    pub(super) fn record_dead_letter(
        &self,
        entry: &OutboxEntry,
        raw: Option<&[u8]>,
        err: &Error,
    ) -> Result<(), Error> {
        let now = (self.clock)();
        let attempts = entry.attempts.saturating_add(1);
        let dead = DeadLetter {
            entry: OutboxEntry {
                attempts,
                last_error: Some(err.to_string()),
                ..entry.clone()
            },
            failed_at: now,
            error: err.to_string(),
            reported: false,
            refused_code: match err {
                Error::Rejected { code, .. } => Some(*code),
                _ => None,
            },
        };
        let event = Event {
            at: now,
            actor: Actor::System,
            kind: "send_failed".to_owned(),
            detail: format!(
                "{} to {} recipient(s) {}",
                entry.kind.name(),
                entry.recipients.len(),
                err.event_summary()
            ),
        };
        self.store.write(|tx| {
            // An erasure may have removed the entry while it was being sent: then nothing of
            // it may come back as a dead letter.
            if tx.outbox_entry(entry.id)?.is_none() {
                return Ok(());
            }
            tx.remove_outbox(entry.id)?;
            tx.put_dead_letter(&dead, raw)?;
            if let Some(id) = entry.ticket
                && let Some(mut ticket) = tx.ticket(id)?
            {
                tx.add_event(&mut ticket, &event)?;
                tx.put_ticket(&ticket)?;
            }
            Ok(())
        })?;
        self.settled(entry.kind, Settled::Failed);
        let error = err.to_string();
        match entry.ticket {
            Some(ticket) => {
                error!(outbox_id = entry.id, %ticket, kind = entry.kind.name(), attempts, %error, "Message refused for good; kept as a dead letter (casemail deadletter list), an agent or operator must act.");
            }
            None => {
                error!(outbox_id = entry.id, kind = entry.kind.name(), attempts, %error, "Message refused for good; kept as a dead letter (casemail deadletter list), an operator must act.");
            }
        }
        Ok(())
    }
}

/// Who a kind of mail goes to, by role, for logs that must not name addresses.
pub fn recipient_role(kind: OutboxKind) -> &'static str {
    match kind {
        OutboxKind::Relay | OutboxKind::Acknowledgement => "requester",
        // Notifications go to caseworkers, notices to coordinators; refusal notices go back to
        // the caseworker who wrote.
        OutboxKind::Notification | OutboxKind::Bounce => "team",
        OutboxKind::Digest => "coordinators",
    }
}

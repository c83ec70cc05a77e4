//! The coordinators' daily digest: when it is due, and its text.

use jiff::Timestamp;
use tracing::warn;

use crate::casework::route;
use crate::config::Config;
use crate::mail::compose::{self, Sender};
use crate::model::{OutboxKind, Ticket, TicketFlag};
use crate::store::{self, Store};

use super::{Team, enqueue};

/// The moment today's digest is due, in the configured time zone.
fn digest_time_on(config: &Config, day: jiff::civil::Date) -> Option<Timestamp> {
    day.to_datetime(config.rota.digest_at)
        .to_zoned(config.rota.timezone.clone())
        .ok()
        .map(|z| z.timestamp())
}

fn today(config: &Config, now: Timestamp) -> Option<jiff::civil::Date> {
    Some(now.to_zoned(config.rota.timezone.clone()).date())
}

pub(super) fn next_digest(
    store: &Store,
    config: &Config,
    now: Timestamp,
) -> Result<Option<Timestamp>, store::Error> {
    let Some(day) = today(config, now) else {
        return Ok(None);
    };
    let sent_today = store.last_digest()?.as_deref() == Some(day.to_string().as_str());
    let due_today = digest_time_on(config, day);
    Ok(match due_today {
        Some(due) if !sent_today && due > now => Some(due),
        _ => day.tomorrow().ok().and_then(|d| digest_time_on(config, d)),
    })
}

pub(super) fn send_digest_if_due(
    store: &Store,
    config: &Config,
    team: &Team,
    helpdesk: &Sender,
    now: Timestamp,
    nonce: u64,
) -> Result<bool, store::Error> {
    let Some(day) = today(config, now) else {
        return Ok(false);
    };
    let Some(due) = digest_time_on(config, day) else {
        return Ok(false);
    };
    let day_text = day.to_string();
    if now < due || store.last_digest()?.as_deref() == Some(day_text.as_str()) {
        return Ok(false);
    }
    // A new installation has nothing to report until its first ticket: no empty digest. The
    // day's digest goes once there is one.
    if store.active_tickets()?.is_empty() && store.tickets()?.is_empty() {
        return Ok(false);
    }
    let body = digest_text(store, config, team, now)?;
    let subject = format!("casemail digest for {day_text}");
    let coordinators = team.coordinators(now);
    store.write(|tx| {
        for (index, coordinator) in coordinators.iter().enumerate() {
            let Some(to) = coordinator.emails.first() else {
                continue;
            };
            match compose::plain_to(
                helpdesk,
                to,
                &subject,
                body.clone(),
                "digest",
                nonce.wrapping_add(index as u64),
                now,
            ) {
                Ok(outgoing) => {
                    enqueue(tx, &config.loops, OutboxKind::Digest, None, &outgoing, now)?;
                }
                Err(err) => {
                    warn!(agent = %coordinator.id, error = %err, "Cannot compose the digest.")
                }
            }
        }
        tx.set_last_digest(&day_text)
    })?;
    Ok(true)
}

/// The daily digest: caseloads, overdue and unassigned tickets, spam held. Ticket numbers and
/// subjects only; no requester text.
pub(crate) fn digest_text(
    store: &Store,
    config: &Config,
    team: &Team,
    now: Timestamp,
) -> Result<String, store::Error> {
    let tickets = store.active_tickets()?;
    let mut out = String::from("Open tickets per caseworker:\n");
    for candidate in team.candidates(now) {
        let open = tickets
            .iter()
            .filter(|t| t.status.is_active() && t.owner.as_ref() == Some(&candidate.id))
            .count();
        let cap = candidate
            .max_open
            .map_or(String::new(), |cap| format!(" of {cap}"));
        let away = if candidate.away { " (away)" } else { "" };
        out.push_str(&format!("  {:<16} {open}{cap}{away}\n", candidate.id.0));
    }
    let overdue: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| t.status.is_active())
        .filter(|t| match (t.owner.as_ref(), t.assigned_at) {
            (Some(_), Some(at)) => {
                route::is_overdue(at, t.last_agent_reply, config.rota.answer_within, now)
            }
            _ => false,
        })
        .collect();
    let unassigned: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| {
            t.status.is_active() && t.owner.is_none() && !t.flags.contains(&TicketFlag::Backfilled)
        })
        .collect();
    let spam = store
        .ticket_figures()?
        .by_status
        .get(crate::model::Status::Spam.as_str())
        .copied()
        .unwrap_or(0);
    for (title, list) in [
        ("Unanswered past the answer time", &overdue),
        ("Unassigned", &unassigned),
    ] {
        out.push_str(&format!("\n{title}: {}\n", list.len()));
        for t in list.iter().take(50) {
            out.push_str(&format!(
                "  {}  ({})\n",
                compose::ticket_subject(t),
                t.owner.as_ref().map_or("nobody", |o| o.0.as_str())
            ));
        }
    }
    out.push_str(&format!("\nHeld as spam: {spam}\n"));
    Ok(out)
}

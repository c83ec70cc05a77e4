//! `casemail deadletter list` and `deadletter retry`: the messages the relay gave up on (a
//! permanent SMTP refusal) or that were never sent (a caseworker's answer to a suppressed
//! address), and putting one back in the outbox once the cause is fixed.
//!
//! Dead letters name their recipients: this is operator output, like `suppression list`, and
//! every stored field is escaped for the terminal.

use std::io::Write;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::mail::sanitize::for_terminal;
use crate::model::{Actor, DeadLetter, Event};
use crate::store::Store;

fn dead_letter_json(dead: &DeadLetter, size: Option<usize>) -> Value {
    json!({
        "id": dead.entry.id,
        "kind": dead.entry.kind.name(),
        "ticket": dead.entry.ticket.map(|t| t.0),
        "recipients": dead.entry.recipients,
        "message_id": dead.entry.message_id.as_str(),
        "created": dead.entry.created.to_string(),
        "failed_at": dead.failed_at.to_string(),
        "attempts": dead.entry.attempts,
        "error": dead.error,
        "refused_code": dead.refused_code,
        "reported": dead.reported,
        "size": size,
    })
}

/// `deadletter list [--json]`, oldest first.
pub(super) fn list(store: &Store, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let letters = store.dead_letters()?;
    if json {
        let mut values = Vec::with_capacity(letters.len());
        for dead in &letters {
            let size = store.dead_letter_raw(dead.entry.id)?.map(|raw| raw.len());
            values.push(dead_letter_json(dead, size));
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
        return Ok(());
    }
    if letters.is_empty() {
        writeln!(out, "no dead letters")?;
        return Ok(());
    }
    for dead in &letters {
        let ticket = dead
            .entry
            .ticket
            .map(|t| format!("ticket #{}", t.0))
            .unwrap_or_else(|| "no ticket".to_owned());
        let recipients: Vec<String> = dead
            .entry
            .recipients
            .iter()
            .map(|r| for_terminal(r))
            .collect();
        writeln!(
            out,
            "{:<6} {:<15} {:<12} {}  to {}: {}",
            dead.entry.id,
            dead.entry.kind.name(),
            ticket,
            dead.failed_at,
            recipients.join(", "),
            for_terminal(&dead.error),
        )?;
    }
    Ok(())
}

/// `deadletter retry ID`: the same bytes and Message-ID go back to the outbox, due now. Refused
/// while a recipient is still suppressed (it would only fail again, or reach an address that
/// bounced for good); the ticket's events record the retry.
pub(super) fn retry(
    store: &Store,
    id: u64,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let dead = store
        .dead_letters()?
        .into_iter()
        .find(|d| d.entry.id == id)
        .with_context(|| format!("no dead letter {id} (casemail deadletter list shows them)"))?;
    for recipient in &dead.entry.recipients {
        if let Some(suppression) = store.suppression(&recipient.to_lowercase())?
            && suppression.until > now
        {
            anyhow::bail!(
                "dead letter {id} not retried: {} is suppressed until {} ({}); after fixing the cause, run `casemail suppression remove {}` first",
                for_terminal(recipient),
                suppression.until,
                for_terminal(&suppression.reason),
                for_terminal(recipient),
            );
        }
    }
    let queued = store.write(|tx| {
        let Some(entry) = tx.requeue_dead_letter(id, now)? else {
            return Ok(None);
        };
        if let Some(ticket_id) = entry.ticket
            && let Some(mut ticket) = tx.ticket(ticket_id)?
        {
            tx.add_event(
                &mut ticket,
                &Event {
                    at: now,
                    actor: Actor::System,
                    kind: "dead_letter_retried".to_owned(),
                    detail: format!(
                        "{} kept as dead letter {id} put back in the outbox by an operator",
                        entry.kind.name()
                    ),
                },
            )?;
            tx.put_ticket(&ticket)?;
        }
        Ok(Some(entry))
    })?;
    let Some(entry) = queued else {
        anyhow::bail!("dead letter {id} kept no bytes to send; it cannot be retried");
    };
    store.flush()?;
    writeln!(
        out,
        "dead letter {id} ({}{}) is back in the outbox and is sent next",
        entry.kind.name(),
        entry
            .ticket
            .map(|t| format!(", ticket #{}", t.0))
            .unwrap_or_default()
    )?;
    Ok(())
}

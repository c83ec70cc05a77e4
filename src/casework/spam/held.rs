//! What happens to spam: the record of why a ticket is held, `spam list`, `spam release`,
//! `spam train`, and the purge of spam older than `[spam] keep_for`.
//!
//! A held ticket has status `spam`: it is not routed and nobody is notified. Releasing it makes
//! it a new, unassigned ticket, which the process stage's next sweep routes like any other
//! (the daemon sweeps at once after a release; a stopped daemon routes it when it starts), and
//! teaches the classifier that its messages are ham.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::TicketId;
use crate::mail::parse::{self, ParseLimits};
use crate::mail::sanitize::for_terminal;
use crate::model::{Actor, Event, Status, Ticket, TicketFlag};
use crate::store::{self, Store};

use super::Verdict;
use super::bayes::{self, Label, Learned, Sample};

/// The spam verdict on the message that opened a ticket (kept for every new ticket), or a
/// caseworker's `#spam`; for a held ticket, why it is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpamRecord {
    pub at: Timestamp,
    pub verdict: Verdict,
}

/// The tickets held as spam, oldest first, with why.
pub fn list(store: &Store) -> Result<Vec<(Ticket, Option<SpamRecord>)>, store::Error> {
    let mut out = Vec::new();
    for ticket in store.spam_tickets()? {
        if ticket.merged_into.is_none() {
            let record = store.spam_record(ticket.id)?;
            out.push((ticket, record));
        }
    }
    Ok(out)
}

/// `spam list`: text or JSON.
pub fn print_list(store: &Store, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let held = list(store)?;
    if json {
        let values: Vec<serde_json::Value> = held
            .iter()
            .map(|(ticket, record)| {
                let mut value = crate::casework::report::ticket_summary(ticket);
                let (score, reasons, at) = match record {
                    Some(r) => (
                        serde_json::json!(r.verdict.score),
                        serde_json::to_value(&r.verdict.reasons).unwrap_or_default(),
                        serde_json::json!(r.at.to_string()),
                    ),
                    None => (
                        serde_json::Value::Null,
                        serde_json::json!([]),
                        serde_json::Value::Null,
                    ),
                };
                if let Some(object) = value.as_object_mut() {
                    object.insert("score".to_owned(), score);
                    object.insert("reasons".to_owned(), reasons);
                    object.insert("held_at".to_owned(), at);
                }
                value
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
        return Ok(());
    }
    if held.is_empty() {
        writeln!(out, "no ticket is held as spam")?;
        return Ok(());
    }
    for (ticket, record) in &held {
        writeln!(
            out,
            "#{} {} from {}: {}",
            ticket.id.0,
            ticket.created.strftime("%Y-%m-%d %H:%M"),
            for_terminal(&ticket.requester),
            for_terminal(&ticket.subject)
        )?;
        match record {
            Some(record) => {
                writeln!(out, "    score {:.2}", record.verdict.score)?;
                for reason in &record.verdict.reasons {
                    writeln!(
                        out,
                        "    {:+6.2}  {}: {}",
                        reason.weight,
                        for_terminal(&reason.signal),
                        for_terminal(&reason.detail)
                    )?;
                }
            }
            None => writeln!(out, "    (no verdict recorded)")?,
        }
    }
    Ok(())
}

/// `spam release N`: the ticket becomes a new, unassigned ticket for routing, and its messages
/// are learned as ham. Returns how many messages the classifier learned.
pub fn release(store: &Store, id: TicketId, now: Timestamp) -> anyhow::Result<usize> {
    let id = crate::casework::admin::resolve_merged(store, id)?;
    let learned = store.write(|tx| {
        let Some(mut ticket) = tx.ticket(id)? else {
            return Ok(None);
        };
        if ticket.status != Status::Spam {
            return Ok(Some(Err(ticket.status)));
        }
        ticket.status = Status::New;
        ticket.owner = None;
        ticket.assigned_at = None;
        ticket.flags.remove(&TicketFlag::SuspectedSpam);
        ticket.updated = now;
        let learned = bayes::learn_ticket(tx, &ticket, Label::Ham)?;
        tx.add_event(
            &mut ticket,
            &Event {
                at: now,
                actor: Actor::System,
                kind: "released".to_owned(),
                detail: "released from spam from the command line; goes to routing".to_owned(),
            },
        )?;
        tx.put_ticket(&ticket)?;
        Ok(Some(Ok(learned)))
    })?;
    store.flush()?;
    match learned {
        None => anyhow::bail!("no ticket #{}", id.0),
        Some(Err(status)) => anyhow::bail!("ticket #{} is not spam (it is {status})", id.0),
        Some(Ok(learned)) => Ok(learned),
    }
}

/// What `spam train` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trained {
    pub spam: usize,
    pub ham: usize,
    pub relabelled: usize,
    pub unchanged: usize,
}

/// Learns samples, each its own small transaction, and flushes once.
pub fn train(store: &Store, spam: &[Sample], ham: &[Sample]) -> Result<Trained, store::Error> {
    let mut trained = Trained::default();
    for (samples, label) in [(spam, Label::Spam), (ham, Label::Ham)] {
        for sample in samples {
            match store.write(|tx| bayes::learn(tx, sample, label))? {
                Learned::New => match label {
                    Label::Spam => trained.spam += 1,
                    Label::Ham => trained.ham += 1,
                },
                Learned::Relabelled => {
                    trained.relabelled += 1;
                    match label {
                        Label::Spam => trained.spam += 1,
                        Label::Ham => trained.ham += 1,
                    }
                }
                Learned::Unchanged => trained.unchanged += 1,
            }
        }
    }
    store.flush()?;
    Ok(trained)
}

/// `spam train`'s report line.
pub fn print_trained(store: &Store, trained: Trained, out: &mut dyn Write) -> anyhow::Result<()> {
    let docs = store.classifier_docs()?;
    writeln!(
        out,
        "learned {} spam and {} ham message(s) ({} relabelled, {} already known); the classifier now knows {} spam and {} ham",
        trained.spam, trained.ham, trained.relabelled, trained.unchanged, docs.spam, docs.ham
    )?;
    if docs.spam < bayes::MIN_PER_CLASS || docs.ham < bayes::MIN_PER_CLASS {
        writeln!(
            out,
            "the classifier gives no opinion until it knows at least {} of each",
            bayes::MIN_PER_CLASS
        )?;
    }
    Ok(())
}

/// The `.eml` files in each folder (not recursive), read and tokenised on the caller's side so
/// that only tokens travel to a running daemon.
pub fn samples_from_dirs(dirs: &[PathBuf]) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read folder {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.is_file()
                    && path
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("eml"))
            })
            .collect();
        files.sort();
        for file in files {
            let raw = std::fs::read(&file)
                .with_context(|| format!("cannot read message file {}", file.display()))?;
            samples.push(sample(&raw));
        }
    }
    Ok(samples)
}

/// One raw message as a training sample.
pub fn sample(raw: &[u8]) -> Sample {
    let mail = parse::parse(raw, &ParseLimits::default());
    Sample {
        key: mail.key.to_index_string(),
        tokens: bayes::tokens_of_mail(&mail).into_iter().collect(),
    }
}

/// Removes spam tickets unchanged for longer than `keep_for`; returns their numbers.
pub fn purge_expired(
    store: &Store,
    keep_for: std::time::Duration,
    now: Timestamp,
) -> Result<Vec<TicketId>, store::Error> {
    let Ok(keep_for) = jiff::SignedDuration::try_from(keep_for) else {
        return Ok(Vec::new());
    };
    let Ok(cutoff) = now.checked_sub(keep_for) else {
        return Ok(Vec::new());
    };
    let due: std::collections::BTreeSet<TicketId> = store
        .spam_tickets()?
        .into_iter()
        .filter(|t| t.updated < cutoff && t.merged_into.is_none())
        .map(|t| t.id)
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    // The same removal as retention: raw mail, events, indexes, and the IMAP copies queued.
    crate::casework::purge::remove_tickets(store, &due, now, "spam keep_for")?;
    store.flush()?;
    let purged: Vec<TicketId> = due.into_iter().collect();
    Ok(purged)
}

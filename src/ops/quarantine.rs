//! `casemail quarantine show ID` and `quarantine retry ID`. A quarantined message is named by
//! its IMAP source, `FOLDER/UIDVALIDITY/UID` (`INBOX/1700000000/42`), which `quarantine list`
//! prints: stable, and the same whether the daemon runs or not.

use std::io::Write;

use anyhow::Context as _;

use crate::casework::report;
use crate::config::Config;
use crate::ids::{Uid, UidValidity};
use crate::mail::sanitize::{for_terminal, text_for_terminal};
use crate::model::Source;
use crate::process::{Outcome, Refiled};
use crate::store::Store;

/// The id `quarantine list` prints for an entry.
pub(super) fn id(source: &Source) -> String {
    format!(
        "{}/{}/{}",
        source.mailbox, source.uidvalidity.0, source.uid.0
    )
}

/// Reads `FOLDER/UIDVALIDITY/UID`; the folder may itself hold `/`.
fn parse_id(text: &str) -> anyhow::Result<Source> {
    let mut parts = text.rsplitn(3, '/');
    let (Some(uid), Some(uidvalidity), Some(mailbox)) = (parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!(
            "{:?} is not a quarantine id: FOLDER/UIDVALIDITY/UID, as `casemail quarantine list` prints it",
            for_terminal(text)
        );
    };
    let number = |what: &str, value: &str| {
        value.parse::<u32>().with_context(|| {
            format!(
                "{:?} is not a quarantine id: its {what} is not a number",
                for_terminal(text)
            )
        })
    };
    Ok(Source {
        mailbox: mailbox.to_owned(),
        uidvalidity: UidValidity(number("UIDVALIDITY", uidvalidity)?),
        uid: Uid(number("UID", uid)?),
    })
}

/// `quarantine show ID [--json]`: the entry and its raw bytes, escaped for the terminal.
pub(super) fn show(
    store: &Store,
    text: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let source = parse_id(text)?;
    let entry = store
        .quarantine()?
        .into_iter()
        .find(|e| e.source == source)
        .with_context(|| format!("nothing is quarantined as {}", for_terminal(text)))?;
    let raw = store.quarantined_raw(&source)?.unwrap_or_default();
    let raw_text = String::from_utf8_lossy(&raw);
    if json {
        let mut value = report::quarantine_json(&entry);
        if let Some(object) = value.as_object_mut() {
            // The bytes as text (invalid UTF-8 replaced), escaped by the JSON encoder.
            object.insert("raw".to_owned(), serde_json::Value::from(raw_text.as_ref()));
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    writeln!(out, "Quarantined: {}", for_terminal(&id(&entry.source)))?;
    writeln!(out, "At:          {}", entry.at)?;
    writeln!(out, "Attempts:    {}", entry.attempts)?;
    writeln!(out, "Size:        {} bytes", entry.size)?;
    writeln!(out, "Reason:      {}", for_terminal(&entry.reason))?;
    writeln!(out, "\n{}", text_for_terminal(&raw_text))?;
    Ok(())
}

/// `quarantine retry ID`: files the raw bytes again (see `process::refile_quarantined`).
pub(super) fn retry(
    store: &Store,
    config: &Config,
    text: &str,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let source = parse_id(text)?;
    let refiled = crate::process::refile_quarantined(store, config, &source, now)?
        .with_context(|| format!("nothing is quarantined as {}", for_terminal(text)))?;
    match refiled {
        Refiled::StillFailing(reason) => anyhow::bail!(
            "{} failed again and stays quarantined: {}",
            for_terminal(text),
            for_terminal(&reason)
        ),
        Refiled::Filed(outcome) => {
            let what = match outcome {
                Outcome::NewTicket(id) => format!("new ticket #{}", id.0),
                Outcome::Added(id, _) => format!("added to ticket #{}", id.0),
                Outcome::Duplicate(id) => format!("a copy of a message in ticket #{}", id.0),
                Outcome::Relayed(id) => {
                    format!("a caseworker's answer on ticket #{}, relayed", id.0)
                }
                Outcome::ReplyRefused(id, _) | Outcome::ReplyHeld(id, _) => {
                    format!("a reply on ticket #{}, not relayed (see its events)", id.0)
                }
                Outcome::ReplyNotSent(id, _) => {
                    format!(
                        "a caseworker's answer on ticket #{}, not sent (see its events)",
                        id.0
                    )
                }
                Outcome::Bounced(id) => format!("a delivery report, filed with ticket #{}", id.0),
                Outcome::Quarantined(reason) => {
                    format!("quarantined again: {}", for_terminal(&reason))
                }
            };
            writeln!(out, "{} filed: {what}", for_terminal(text))?;
            Ok(())
        }
    }
}

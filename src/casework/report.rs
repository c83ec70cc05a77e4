//! What the CLI prints about tickets and the quarantine, as JSON values and as text.
//!
//! The JSON is a documented interface scripts rely on (README, "JSON output"): fields may be
//! added, never renamed or removed. Everything the text form prints from the store is escaped
//! before it reaches a terminal: header fields on one line (`for_terminal`), message bodies
//! with their line breaks (`text_for_terminal`). JSON is escaped by serde.

use serde_json::{Value, json};

use crate::casework::admin;
use crate::ids::{AgentId, TicketId};
use crate::mail::sanitize::{for_terminal, text_for_terminal};
use crate::model::{Direction, QuarantineEntry, Status, StoredMessage, Ticket};
use crate::store::{self, Store};

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
        Direction::Note => "note",
    }
}

pub(crate) fn ticket_summary(ticket: &Ticket) -> Value {
    json!({
        "number": ticket.id.0,
        "status": ticket.status.as_str(),
        "subject": ticket.subject,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "owner": ticket.owner.as_ref().map(|a| a.0.clone()),
        "message_count": ticket.message_count,
        "merged_into": ticket.merged_into.map(|t| t.0),
        "flags": ticket.flags,
        "created": ticket.created.to_string(),
        "updated": ticket.updated.to_string(),
    })
}

pub(crate) fn message_json(message: &StoredMessage) -> Value {
    json!({
        "seq": message.seq,
        "message_id": message.message_id.as_ref().map(|m| m.as_str()),
        "direction": direction(message.direction),
        "from": message.from,
        "from_name": message.from_name,
        "to": message.to,
        "cc": message.cc,
        "date": message.date.map(|d| d.to_string()),
        "received": message.received.to_string(),
        "subject": message.subject,
        "text": message.text,
        "attachments": message.attachments,
        "anomalies": message.anomalies,
        // Why an answer was not sent to the requester (a suppressed address), or null.
        "not_sent": message
            .anomalies
            .iter()
            .find_map(|a| a.strip_prefix(crate::model::ANSWER_NOT_SENT)),
        "sources": message.sources.iter().map(|s| json!({
            "folder": s.mailbox, "uidvalidity": s.uidvalidity.0, "uid": s.uid.0,
        })).collect::<Vec<_>>(),
    })
}

/// Which tickets `ticket list` shows; `None` lets every ticket through.
#[derive(Debug, Clone, Default)]
pub(crate) struct TicketFilter {
    pub status: Option<Status>,
    pub owner: Option<AgentId>,
    /// Tickets updated at or after this moment.
    pub since: Option<jiff::Timestamp>,
}

pub(crate) fn ticket_list(
    store: &Store,
    filter: &TicketFilter,
) -> Result<Vec<Ticket>, store::Error> {
    Ok(store
        .tickets()?
        .into_iter()
        .filter(|t| filter.status.is_none_or(|s| t.status == s))
        .filter(|t| filter.owner.is_none() || t.owner == filter.owner)
        .filter(|t| filter.since.is_none_or(|since| t.updated >= since))
        .collect())
}

pub(crate) fn ticket_detail(store: &Store, id: TicketId) -> Result<Option<Value>, store::Error> {
    let Some(ticket) = store.ticket(id)? else {
        return Ok(None);
    };
    let mut value = ticket_summary(&ticket);
    let messages: Vec<Value> = store.messages(id)?.iter().map(message_json).collect();
    let events: Vec<Value> = store
        .events(id)?
        .iter()
        .map(|e| json!({"at": e.at.to_string(), "actor": e.actor, "kind": e.kind, "detail": e.detail}))
        .collect();
    if let Some(object) = value.as_object_mut() {
        object.insert("participants".to_owned(), json!(ticket.participants));
        object.insert("messages".to_owned(), Value::Array(messages));
        object.insert("events".to_owned(), Value::Array(events));
        // The spam verdict on the message that opened the ticket (or a caseworker's #spam).
        let spam = store
            .spam_record(id)?
            .map(|record: crate::casework::spam::held::SpamRecord| {
                serde_json::to_value(record.verdict).unwrap_or_default()
            })
            .unwrap_or(Value::Null);
        object.insert("spam".to_owned(), spam);
    }
    Ok(Some(value))
}

pub(crate) fn ticket_list_text(tickets: &[Ticket]) -> String {
    let mut out = String::new();
    for t in tickets {
        out.push_str(&format!(
            "#{:<6} {:<8} {:<12} {:>3} msg  {:<30}  {}\n",
            t.id.0,
            t.status.as_str(),
            t.owner
                .as_ref()
                .map_or_else(|| "-".to_owned(), |o| for_terminal(&o.0)),
            t.message_count,
            for_terminal(&t.requester),
            for_terminal(&t.subject),
        ));
    }
    if tickets.is_empty() {
        out.push_str("no tickets\n");
    }
    out
}

/// A time from the JSON as a person reads it, in the helpdesk's `timezone`
/// (`2026-12-24 09:30 CET`); anything that is not an RFC 3339 time as it is.
fn local_time(value: &Value, timezone: &jiff::tz::TimeZone) -> String {
    match value.as_str().map(str::parse::<jiff::Timestamp>) {
        Some(Ok(at)) => crate::casework::rota::local_time(at, timezone),
        _ => for_terminal(value.as_str().unwrap_or("-")),
    }
}

/// `ticket show` as text, with its times in the helpdesk's `timezone`.
pub(crate) fn ticket_detail_text(detail: &Value, timezone: &jiff::tz::TimeZone) -> String {
    let s = |v: &Value| for_terminal(v.as_str().unwrap_or("-"));
    // `Name <address>`, or the address alone.
    let mailbox = |name: &Value, address: &Value| match name.as_str() {
        Some(name) => format!("{} <{}>", for_terminal(name), s(address)),
        None => s(address),
    };
    let mut out = format!(
        "Ticket #{}  [{}]  {}\nRequester: {}\nOwner: {}\n",
        detail["number"],
        s(&detail["status"]),
        s(&detail["subject"]),
        mailbox(&detail["requester_name"], &detail["requester"]),
        s(&detail["owner"]),
    );
    if let Some(messages) = detail["messages"].as_array() {
        for m in messages {
            let direction = match m["not_sent"].as_str() {
                Some(why) => format!("{} NOT SENT ({})", s(&m["direction"]), for_terminal(why)),
                None => s(&m["direction"]),
            };
            out.push_str(&format!(
                "\n--- {} from {} at {}\nSubject: {}\n\n{}\n",
                direction,
                mailbox(&m["from_name"], &m["from"]),
                local_time(&m["date"], timezone),
                s(&m["subject"]),
                text_for_terminal(m["text"].as_str().unwrap_or("")),
            ));
            if let Some(attachments) = m["attachments"].as_array() {
                for a in attachments {
                    out.push_str(&format!(
                        "[attachment] {} ({}, {} bytes{})\n",
                        s(&a["name"]),
                        s(&a["content_type"]),
                        a["size"],
                        if a["kept"].as_bool() == Some(false) {
                            ", raw only: over the size limit"
                        } else {
                            ""
                        },
                    ));
                }
            }
            for anomaly in m["anomalies"].as_array().into_iter().flatten() {
                out.push_str(&format!("[anomaly] {}\n", s(anomaly)));
            }
        }
    }
    let events = detail["events"].as_array().map_or(&[][..], Vec::as_slice);
    if !events.is_empty() {
        out.push_str("\nEvents:\n");
        for e in events {
            let actor = &e["actor"];
            let who = if actor["id"].is_string() {
                s(&actor["id"])
            } else {
                s(&actor["kind"])
            };
            out.push_str(&format!(
                "  {}  {:<16} {}: {}\n",
                local_time(&e["at"], timezone),
                s(&e["kind"]),
                who,
                s(&e["detail"]),
            ));
        }
    }
    out
}

pub(crate) fn quarantine_json(entry: &QuarantineEntry) -> Value {
    json!({
        "id": format!(
            "{}/{}/{}",
            entry.source.mailbox, entry.source.uidvalidity.0, entry.source.uid.0
        ),
        "folder": entry.source.mailbox,
        "uidvalidity": entry.source.uidvalidity.0,
        "uid": entry.source.uid.0,
        "at": entry.at.to_string(),
        "attempts": entry.attempts,
        "reason": entry.reason,
        "size": entry.size,
    })
}

/// A suppressed address as JSON (`address`, `since`, `until`, `reason`, `ticket`).
pub(crate) fn suppression_json(entry: &crate::model::Suppression) -> Value {
    json!({
        "address": entry.address,
        "since": entry.since.to_string(),
        "until": entry.until.to_string(),
        "reason": entry.reason,
        "ticket": entry.ticket.map(|t| t.0),
    })
}

/// Every agent with their open caseload, as JSON objects (`id`, `name`, `emails`, `role`,
/// `max_open`, `away`, `away_until`, `open_tickets`).
pub(crate) fn agents(store: &Store, now: jiff::Timestamp) -> Result<Vec<Value>, store::Error> {
    let tickets = store.tickets()?;
    Ok(store
        .agents()?
        .iter()
        .map(|agent| {
            let open = tickets
                .iter()
                .filter(|t| t.status.is_active() && t.owner.as_ref() == Some(&agent.id))
                .count();
            json!({
                "id": agent.id.0,
                "name": agent.name,
                "emails": agent.emails,
                "role": agent.role,
                "max_open": agent.max_open,
                "away": admin::is_away(agent, now),
                "away_until": agent.away.and_then(|a| a.until).map(|t| t.to_string()),
                "open_tickets": open,
                "created": agent.created.to_string(),
            })
        })
        .collect())
}

/// `agent list` as text, with `away until` in the helpdesk's `timezone`.
pub(crate) fn agents_text(agents: &[Value], timezone: &jiff::tz::TimeZone) -> String {
    let s = |v: &Value| for_terminal(v.as_str().unwrap_or("-"));
    let mut out = String::new();
    for a in agents {
        let emails: Vec<String> = a["emails"]
            .as_array()
            .map(|list| list.iter().map(s).collect())
            .unwrap_or_default();
        let cap = a["max_open"]
            .as_u64()
            .map_or("no cap".to_owned(), |n| format!("cap {n}"));
        let away = if a["away"].as_bool() == Some(true) {
            format!("  away until {}", local_time(&a["away_until"], timezone))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<16} {:<11} {:>3} open ({cap})  {}  <{}>{away}\n",
            s(&a["id"]),
            s(&a["role"]),
            a["open_tickets"],
            s(&a["name"]),
            emails.join(", "),
        ));
    }
    if agents.is_empty() {
        out.push_str("no agents\n");
    }
    out
}

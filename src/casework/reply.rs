//! The reply bridge: recognises a caseworker's answer to a notification and decides whether it
//! may be relayed to the requester. Pure over its inputs: no I/O, no clock.
//!
//! A reply is relayed only when it carries a valid reply token (in a recipient sub-address or
//! in In-Reply-To/References; made with the current key, or with the retired one during the
//! grace period after a rotation) AND comes from one of the registered addresses of the agent
//! the token was made for AND the message does not fail authentication (`auth::verdict`) AND
//! the ticket was not closed longer ago than `[auth] token_expiry` AND that agent may still act
//! on the ticket. Anything else that looks like an agent's reply is refused, recorded, and
//! never relayed. The same holds for an out-of-office answer: only one with a valid token from
//! the agent's own address, not failing authentication, marks the agent away; any other is
//! only noted for the coordinators.

use jiff::Timestamp;

use crate::casework::auth;
use crate::casework::threading::subject_tags;
use crate::casework::token::{self, Secret};
use crate::ids::{AgentId, TicketId};
use crate::mail::parse::InboundMail;
use crate::model::{Agent, Role, Status, Ticket};

/// What the bridge makes of an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not an agent's reply: ordinary ingest.
    NotAReply,
    /// A genuine reply from `agent` on `ticket`: relay it.
    Accepted { ticket: TicketId, agent: AgentId },
    /// An automatic answer (out of office) from `agent` to a notification: never relayed; the
    /// agent is marked away, until `until` when the message states a date.
    AutoReply {
        ticket: TicketId,
        agent: AgentId,
        until: Option<jiff::civil::Date>,
    },
    /// An automatic answer that claims to come from `agent` but carries no valid token or
    /// fails authentication: anybody could have sent it. Kept as a note and shown to the
    /// coordinators; nobody is marked away.
    AutoReplyNoted {
        ticket: TicketId,
        agent: AgentId,
        reason: String,
    },
    /// Looks like a reply but must not be relayed.
    Refused {
        ticket: TicketId,
        reason: String,
        /// A registered agent address to tell why; never a stranger (no backscatter).
        notify: Option<String>,
    },
}

/// At most this many token candidates are checked per message, recipients first: a MAC check
/// each, whatever the number of addresses and references.
const MAX_TOKEN_CANDIDATES: usize = 64;

/// Where the bridge looks for tokens: recipients and threading headers.
fn token_candidates(mail: &InboundMail) -> Vec<String> {
    let mut places: Vec<String> = mail
        .to
        .iter()
        .chain(mail.cc.iter())
        .map(|m| m.address.clone())
        .collect();
    if let Some(values) = mail.headers.get("delivered-to") {
        places.extend(values.iter().cloned());
    }
    places.extend(mail.in_reply_to.iter().map(|m| m.as_str().to_owned()));
    places.extend(mail.references.iter().map(|m| m.as_str().to_owned()));
    places
        .iter()
        .flat_map(|p| token::candidates(p))
        .take(MAX_TOKEN_CANDIDATES)
        .collect()
}

/// What the bridge needs besides the message.
pub struct Context<'a> {
    pub secret: &'a Secret,
    pub agents: &'a [&'a Agent],
    /// The message's authentication verdict (`auth::verdict`).
    pub auth: &'a auth::Verdict,
    /// `[auth]`: token expiry and the grace period of a rotated key.
    pub settings: &'a crate::config::Auth,
    pub now: Timestamp,
}

/// A ticket as the bridge sees it: the record, and when it was last closed.
#[derive(Debug, Clone)]
pub struct Known {
    pub ticket: Ticket,
    /// When the ticket was closed, while it is closed.
    pub closed_at: Option<Timestamp>,
}

/// When a closed ticket was closed: the last `closed` event, or its last change when no event
/// says so.
pub fn closed_at(ticket: &Ticket, events: &[crate::model::Event]) -> Option<Timestamp> {
    if ticket.status != Status::Closed {
        return None;
    }
    let closed = events
        .iter()
        .rev()
        .find(|e| e.kind == "closed" || e.kind == "merged_into")
        .map(|e| e.at);
    Some(closed.unwrap_or(ticket.updated))
}

/// Classifies a message against the registered agents. `ticket_of` looks a ticket up.
pub fn classify(
    mail: &InboundMail,
    sender: &str,
    context: &Context<'_>,
    ticket_of: impl Fn(TicketId) -> Option<Known>,
) -> Verdict {
    let (secret, agents) = (context.secret, context.agents);
    let candidates = token_candidates(mail);
    let valid = candidates
        .iter()
        .find_map(|c| secret.verify_at(c, context.now, context.settings.rotation_grace));
    let sending_agent = agents
        .iter()
        .find(|a| a.emails.iter().any(|e| e == sender))
        .copied();
    let notify_sender = sending_agent.map(|_| sender.to_owned());
    let Some((ticket_id, agent_id)) = valid else {
        // A registered agent writing about a ticket without a valid token: refused, so nobody
        // can answer a requester by guessing a subject tag.
        if sending_agent.is_some() {
            let tagged = mail
                .subject
                .as_deref()
                .map(subject_tags)
                .unwrap_or_default()
                .into_iter()
                .find(|id| ticket_of(*id).is_some());
            if let (Some(ticket), Some(agent)) = (tagged, sending_agent)
                && is_auto_reply(mail)
            {
                // Out-of-office tools often answer the plain address and drop the token, but
                // without it anybody could claim to be away for a caseworker: noted only.
                return Verdict::AutoReplyNoted {
                    ticket,
                    agent: agent.id.clone(),
                    reason: "the out-of-office answer carries no valid reply token".to_owned(),
                };
            }
            if let Some(ticket) = tagged {
                return Verdict::Refused {
                    ticket,
                    reason: "the reply carries no valid reply token; answer with Reply on the notification".to_owned(),
                    notify: notify_sender,
                };
            }
        }
        return Verdict::NotAReply;
    };
    let Some(Known { ticket, closed_at }) = ticket_of(ticket_id) else {
        return Verdict::NotAReply;
    };
    let refuse = |reason: &str| Verdict::Refused {
        ticket: ticket_id,
        reason: reason.to_owned(),
        notify: notify_sender.clone(),
    };
    let Some(agent) = agents.iter().find(|a| a.id == agent_id) else {
        return refuse("the caseworker this reply token was made for is no longer registered");
    };
    if !agent.emails.iter().any(|e| e == sender) {
        return refuse("the sender is not the caseworker this reply token was made for");
    }
    if let Some(failure) = context.auth.failure() {
        let reason = format!("the message failed sender authentication: {failure}");
        if is_auto_reply(mail) {
            return Verdict::AutoReplyNoted {
                ticket: ticket_id,
                agent: agent_id,
                reason,
            };
        }
        return refuse(&reason);
    }
    let tags = mail
        .subject
        .as_deref()
        .map(subject_tags)
        .unwrap_or_default();
    if !tags.is_empty() && !tags.contains(&ticket_id) {
        return refuse("the reply token is for another ticket than the one in the subject");
    }
    let expiry = jiff::SignedDuration::try_from(context.settings.token_expiry)
        .unwrap_or(jiff::SignedDuration::MAX);
    if let Some(closed) = closed_at
        && ticket.status == Status::Closed
        && context.now >= closed.saturating_add(expiry).unwrap_or(Timestamp::MAX)
    {
        return refuse(&format!(
            "the reply token has expired: ticket #{} was closed on {}, longer ago than reply tokens live after closing; a coordinator can reopen it",
            ticket.id.0,
            closed.strftime("%Y-%m-%d"),
        ));
    }
    if is_auto_reply(mail) {
        return Verdict::AutoReply {
            ticket: ticket_id,
            agent: agent_id,
            until: stated_return_date(&mail.text),
        };
    }
    let may_act = ticket.owner.as_ref() == Some(&agent.id) || agent.role == Role::Coordinator;
    if !may_act {
        return refuse("the ticket is no longer assigned to this caseworker");
    }
    Verdict::Accepted {
        ticket: ticket_id,
        agent: agent_id,
    }
}

static AUTO_REPLY_SUBJECT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)^\s*(auto(matic)?[ -]?reply|out of (the )?office|autoreply|abwesenheit|automatische antwort|réponse automatique|absence|respuesta automática|fuera de la oficina|risposta automatica|رد تلقائي|خارج المكتب)",
    )
    .expect("the auto-reply pattern is valid")
});

/// Whether a message is an automatic answer (RFC 3834 `Auto-Submitted`, the `X-Autoreply`
/// family, or a subject as out-of-office tools write it).
pub fn is_auto_reply(mail: &InboundMail) -> bool {
    let auto_submitted = mail
        .auto_submitted
        .as_deref()
        .is_some_and(|value| !value.trim().eq_ignore_ascii_case("no"));
    auto_submitted
        || mail.x_autoreply
        || mail
            .subject
            .as_deref()
            .is_some_and(|subject| AUTO_REPLY_SUBJECT.is_match(subject))
}

static DATES: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b|\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b")
        .expect("the date pattern is valid")
});

/// The return date an out-of-office message states, when it writes one as `2026-12-24`,
/// `24.12.2026` or `24/12/2026` (day first, as most of the world writes it): the latest date
/// found, which is the return rather than the start of the absence.
pub fn stated_return_date(text: &str) -> Option<jiff::civil::Date> {
    DATES
        .captures_iter(text)
        .filter_map(|c| {
            let number = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<i16>().ok());
            let (year, month, day) = match (number(1), number(2), number(3)) {
                (Some(y), Some(m), Some(d)) => (y, m, d),
                _ => (number(6)?, number(5)?, number(4)?),
            };
            jiff::civil::Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
        })
        .max()
}

/// A command a caseworker writes at the top of a reply (`#close`, `#assign jonas`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The reply is an internal note for the other caseworkers, never sent to the requester.
    Note,
    Close,
    Reopen,
    Assign(AgentId),
    Spam,
    NotSpam,
    /// Step away (until a date or time, when given).
    Away(Option<String>),
    Back,
    /// Merge this ticket into ticket N.
    Merge(TicketId),
}

/// A reply split into its leading command lines and the text to relay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commands {
    pub commands: Vec<Command>,
    /// Command lines that could not be read, with why.
    pub errors: Vec<String>,
    /// What remains to relay (or to store as the note).
    pub body: String,
}

/// Reads command lines at the top of a reply: each line that starts with `#` and a known
/// command word, up to the first other line. A `#` line that is not a command (`#1 priority`)
/// ends the commands and stays in the text; the relay gate holds a reply whose text starts with
/// something that looks like a command.
///
/// Lines are read as a reader sees them: format characters (Unicode category Cf: zero-width
/// spaces, the BOM, bidi marks, which HTML clients insert) are ignored, as are blank lines above
/// the first command, a full-width `＃`, and space between `#` and the word. `#note:`,
/// `#notes` and `#note -` all mean `#note`, whose text may follow on the same line.
pub fn commands(reply: &str) -> Commands {
    let mut parsed = Commands::default();
    let mut lines = reply.lines().peekable();
    while let Some(line) = lines.peek() {
        let visible = crate::mail::sanitize::without_format(line);
        let trimmed = visible.trim();
        if trimmed.is_empty() {
            lines.next();
            continue;
        }
        let Some(rest) = trimmed.strip_prefix(['#', '\u{FF03}']) else {
            break;
        };
        let rest = rest.trim_start();
        let word_end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        let word = word.to_lowercase();
        let after = after.strip_prefix(':').unwrap_or(after);
        if matches!(word.as_str(), "note" | "notes") {
            // The note's text may start on the command line itself: `#note: called the GP`.
            let first = after
                .trim_start()
                .trim_start_matches([':', '-', '\u{2013}', '\u{2014}', '.'])
                .trim();
            parsed.commands.push(Command::Note);
            lines.next();
            if first.is_empty() {
                continue;
            }
            let rest: Vec<&str> = lines.collect();
            parsed.body = std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned();
            return parsed;
        }
        let argument: Vec<&str> = after.split_whitespace().collect();
        let command = match (word.as_str(), argument.as_slice()) {
            ("close", []) => Command::Close,
            ("reopen", []) => Command::Reopen,
            ("spam", []) => Command::Spam,
            ("notspam", []) => Command::NotSpam,
            ("back", []) => Command::Back,
            ("away", []) => Command::Away(None),
            // A date or time casemail cannot read must not leave the caseworker away for good
            // while she is told she is back on that day.
            ("away", ["until", when]) if is_until(when) => Command::Away(Some((*when).to_owned())),
            ("away", ["until", _]) => {
                parsed.errors.push(format!(
                    "cannot read the date in {trimmed:?} (write it as 2027-01-25)"
                ));
                lines.next();
                continue;
            }
            ("assign", [agent]) => Command::Assign(AgentId(agent.to_ascii_lowercase())),
            ("merge", [number]) => match number.trim_start_matches('#').parse::<u64>() {
                Ok(number) => Command::Merge(TicketId(number)),
                Err(_) => {
                    parsed
                        .errors
                        .push(format!("cannot read the ticket number in {trimmed:?}"));
                    lines.next();
                    continue;
                }
            },
            ("close" | "reopen" | "spam" | "notspam" | "back" | "away" | "assign" | "merge", _) => {
                parsed
                    .errors
                    .push(format!("cannot read the command line {trimmed:?}"));
                lines.next();
                continue;
            }
            _ => break,
        };
        parsed.commands.push(command);
        lines.next();
    }
    parsed.body = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
    parsed
}

/// Whether `#away until` can read `text`: a date (`2027-01-25`, midnight in the rota's time
/// zone) or an RFC 3339 time, as `process::parse_until` reads it.
fn is_until(text: &str) -> bool {
    text.parse::<Timestamp>().is_ok() || text.parse::<jiff::civil::Date>().is_ok()
}

#[cfg(test)]
mod tests;

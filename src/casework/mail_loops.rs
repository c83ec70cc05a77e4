//! Loop and bounce safety for everything casemail sends: which inbound mail must never be
//! answered automatically, mail that is casemail's own coming back, caps on outgoing mail per
//! recipient and per ticket, and addresses suppressed after a hard bounce.
//!
//! The rules ([`no_answer`], [`is_own_mail`], [`hard_bounces`], [`decide`]) are pure. [`admit`]
//! applies them inside the transaction that queues a message, reading and bumping the counters
//! there, so a message and the count it adds are committed together. This module must not
//! speak SMTP or decide who gets what: it only says whether a message may go.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::config::Loops;
use crate::ids::TicketId;
use crate::mail::compose::LOOP_HEADER;
use crate::mail::parse::InboundMail;
use crate::model::{Event, OutboxKind, Suppression};
use crate::store::{Counter, TxResult, WriteTx};

/// Why a message must not be answered automatically (RFC 3834 §2, RFC 3464, RFC 2369/2919).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoAnswer {
    /// `Auto-Submitted` with a value other than `no` (RFC 3834 §5).
    AutoSubmitted(String),
    /// `Precedence: bulk`, `list` or `junk`.
    Precedence(String),
    /// `List-Id` or `List-Unsubscribe`: mail from a mailing list.
    MailingList,
    /// An empty envelope sender (`Return-Path: <>`) or no sender address at all.
    NullSender,
    /// From MAILER-DAEMON, postmaster or a similar system address.
    SystemSender(String),
    /// A delivery status notification (RFC 3464).
    DeliveryReport,
    /// An out-of-office answer (`X-Autoreply`, or a subject as such tools write it).
    AutoReply,
    /// Mail casemail itself sent, come back (its own loop header).
    OwnMail,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAnswer::AutoSubmitted(value) => write!(f, "Auto-Submitted: {value}"),
            NoAnswer::Precedence(value) => write!(f, "Precedence: {value}"),
            NoAnswer::MailingList => f.write_str("mailing list"),
            NoAnswer::NullSender => f.write_str("no sender address"),
            NoAnswer::SystemSender(local) => write!(f, "system sender {local}"),
            NoAnswer::DeliveryReport => f.write_str("delivery report"),
            NoAnswer::AutoReply => f.write_str("automatic reply"),
            NoAnswer::OwnMail => f.write_str("casemail's own mail"),
        }
    }
}

/// Local parts of addresses that only machines write from.
const SYSTEM_SENDERS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "mail-daemon",
    "maildaemon",
    "mailerdaemon",
    "bounce",
    "bounces",
    "noreply",
    "no-reply",
    "do-not-reply",
    "donotreply",
];

/// Why `mail` must not be answered automatically, or `None` when it may be. `sender` is the
/// address the ticket records (From, else Sender, else Return-Path).
pub(crate) fn no_answer(mail: &InboundMail, sender: &str, helpdesk: &str) -> Option<NoAnswer> {
    if is_own_mail(mail, helpdesk) {
        return Some(NoAnswer::OwnMail);
    }
    if mail.is_delivery_report {
        return Some(NoAnswer::DeliveryReport);
    }
    if let Some(value) = mail.auto_submitted.as_deref()
        && !value.trim().eq_ignore_ascii_case("no")
    {
        return Some(NoAnswer::AutoSubmitted(value.trim().to_owned()));
    }
    if let Some(value) = mail.precedence.as_deref() {
        let value = value.trim().to_ascii_lowercase();
        if ["bulk", "list", "junk"].contains(&value.as_str()) {
            return Some(NoAnswer::Precedence(value));
        }
    }
    if mail.list_id.is_some() || mail.list_unsubscribe {
        return Some(NoAnswer::MailingList);
    }
    // `Return-Path: <>` is how the delivering server records the null envelope sender that
    // bounces and other automatic reports use (RFC 5321 §4.5.5).
    let null_return_path = mail
        .return_path
        .as_deref()
        .is_some_and(|path| path.trim().trim_matches(['<', '>']).trim().is_empty());
    if null_return_path || !sender.contains('@') || sender == crate::model::UNKNOWN_SENDER {
        return Some(NoAnswer::NullSender);
    }
    for address in std::iter::once(sender).chain(mail.return_path.as_deref()) {
        let local = address
            .trim()
            .trim_matches(['<', '>'])
            .rsplit_once('@')
            .map_or(address, |(local, _)| local)
            .to_ascii_lowercase();
        let base = local.split('+').next().unwrap_or(&local);
        if SYSTEM_SENDERS.contains(&base) {
            return Some(NoAnswer::SystemSender(base.to_owned()));
        }
    }
    if crate::casework::reply::is_auto_reply(mail) {
        return Some(NoAnswer::AutoReply);
    }
    None
}

/// Whether `mail` carries casemail's loop header for this helpdesk: it is mail casemail sent
/// that came back (a forwarding loop, an agent's address that forwards to the help address).
pub(crate) fn is_own_mail(mail: &InboundMail, helpdesk: &str) -> bool {
    mail.headers
        .get(&LOOP_HEADER.to_ascii_lowercase())
        .is_some_and(|values| {
            values
                .iter()
                .any(|value| value.trim().eq_ignore_ascii_case(helpdesk.trim()))
        })
}

/// The recipients a delivery report (RFC 3464 §2.3) says failed for good: a per-recipient
/// block with `Status: 5.x.x` (or `Action: failed` without a status). Addresses are
/// lower-cased; `Final-Recipient` wins over `Original-Recipient`.
pub(crate) fn hard_bounces(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut found: Vec<(String, String)> = Vec::new();
    // The fields of one recipient are a block; blocks are separated by blank lines. Continuation
    // lines are rare in these fields and ignored.
    let normalised = text.replace("\r\n", "\n");
    for block in normalised.split("\n\n") {
        let mut recipient: Option<String> = None;
        let mut status: Option<String> = None;
        let mut failed = false;
        for line in block.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            match name.as_str() {
                "final-recipient" => recipient = address_of(value),
                "original-recipient" if recipient.is_none() => recipient = address_of(value),
                "status" => status = Some(value.split_whitespace().next().unwrap_or("").to_owned()),
                "action" => failed = value.eq_ignore_ascii_case("failed"),
                _ => {}
            }
        }
        let Some(recipient) = recipient else {
            continue;
        };
        let hard = match &status {
            Some(code) => code.starts_with("5."),
            None => failed,
        };
        if hard && !found.iter().any(|(address, _)| *address == recipient) {
            let code = status.unwrap_or_else(|| "failed".to_owned());
            found.push((recipient, code));
        }
    }
    found
}

/// Why a hard bounce a delivery report names must not suppress `address`, or `None` when it
/// counts. A report counts only when it comes from a mail system (the null reverse-path, or
/// MAILER-DAEMON / postmaster) and does not fail authentication, for an address that was a
/// recipient of the message it quotes (`recipients`: what casemail recorded sending, `None`
/// when it recorded nothing), and never for a registered caseworker's address: otherwise
/// anybody could silence a requester or a caseworker with a forged report.
pub(crate) fn bounce_not_counted(
    mail: &InboundMail,
    sender: &str,
    authentication: &crate::casework::auth::Verdict,
    address: &str,
    recipients: Option<&[String]>,
    agent_addresses: &[&str],
) -> Option<String> {
    let null_return_path = mail
        .return_path
        .as_deref()
        .is_some_and(|path| path.trim().trim_matches(['<', '>']).trim().is_empty());
    let local = sender
        .rsplit_once('@')
        .map_or(sender, |(local, _)| local)
        .to_ascii_lowercase();
    let system = matches!(
        local.as_str(),
        "mailer-daemon" | "postmaster" | "mail-daemon" | "maildaemon" | "mailerdaemon"
    );
    if !null_return_path && !system {
        return Some("the report does not come from a mail system (null sender, MAILER-DAEMON or postmaster)".to_owned());
    }
    if let Some(failure) = authentication.failure() {
        return Some(format!(
            "the report failed sender authentication: {failure}"
        ));
    }
    if agent_addresses
        .iter()
        .any(|a| a.eq_ignore_ascii_case(address))
    {
        return Some("the address is a registered caseworker's".to_owned());
    }
    let was_recipient =
        recipients.is_some_and(|list| list.iter().any(|r| r.eq_ignore_ascii_case(address)));
    if !was_recipient {
        return Some("the address was not a recipient of the message the report quotes".to_owned());
    }
    None
}

/// `rfc822; someone@example.org` → `someone@example.org`.
fn address_of(value: &str) -> Option<String> {
    let address = value
        .split_once(';')
        .map_or(value, |(_, address)| address)
        .trim()
        .trim_matches(['<', '>'])
        .to_lowercase();
    address.contains('@').then_some(address)
}

/// Whether an SMTP refusal means the address itself is bad (RFC 5321 §4.2.2: 550 mailbox
/// unavailable, 551 user not local, 553 mailbox name not allowed), rather than the message.
pub(crate) fn refuses_address(code: u16) -> bool {
    matches!(code, 550 | 551 | 553)
}

/// Whether casemail sends this kind of mail on its own, rather than on a person's behalf. A
/// caseworker's relayed answer is the only kind a person writes.
pub(crate) fn is_automatic(kind: OutboxKind) -> bool {
    !matches!(kind, OutboxKind::Relay)
}

/// The UTC hour and day a moment falls in, as counted since 1970.
pub(crate) fn windows(now: Timestamp) -> (i64, i64) {
    let seconds = now.as_second();
    (seconds.div_euclid(3600), seconds.div_euclid(86_400))
}

/// Whether a message may go, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    Send,
    /// Over a cap: the message is not sent (automatic mail only).
    OverCap(String),
    /// A recipient is suppressed after a hard bounce: nothing is sent to it.
    Suppressed(String),
}

/// What is known about one message's recipients and ticket when it is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// For each recipient: messages already sent to it this hour, and its suppression.
    pub recipients: Vec<(u32, Option<Suppression>)>,
    /// Messages already sent about the ticket today, when there is a ticket.
    pub ticket: Option<u32>,
}

/// The rule: a suppressed recipient gets nothing; automatic mail over a cap is not sent; a
/// caseworker's answer is never held back by a cap (it is counted, and a person wrote it, so
/// it cannot feed a loop by itself). A cap of 0 means no cap.
pub(crate) fn decide(
    kind: OutboxKind,
    counts: &Counts,
    limits: &Loops,
    now: Timestamp,
) -> Admission {
    for (_, suppression) in &counts.recipients {
        if let Some(suppression) = suppression
            && suppression.until > now
        {
            return Admission::Suppressed(format!(
                "the address is suppressed until {} after a hard bounce ({})",
                suppression.until, suppression.reason
            ));
        }
    }
    if !is_automatic(kind) {
        return Admission::Send;
    }
    let per_hour = limits.per_recipient_per_hour;
    if per_hour > 0 && counts.recipients.iter().any(|(sent, _)| *sent >= per_hour) {
        return Admission::OverCap(format!(
            "the recipient already got {per_hour} message(s) this hour"
        ));
    }
    let per_day = limits.per_ticket_per_day;
    if per_day > 0 && counts.ticket.is_some_and(|sent| sent >= per_day) {
        return Admission::OverCap(format!(
            "{per_day} message(s) were already sent about this ticket today"
        ));
    }
    Admission::Send
}

/// Decides, inside the queuing transaction, whether a message may go; when it may, counts it
/// against its recipients and ticket. When it may not, an event on the ticket says so
/// (added once the transaction's own ticket changes are written).
pub(crate) fn admit(
    tx: &WriteTx<'_>,
    limits: &Loops,
    kind: OutboxKind,
    ticket: Option<TicketId>,
    recipients: &[String],
    now: Timestamp,
) -> TxResult<Admission> {
    let (hour, day) = windows(now);
    let mut counts = Counts {
        recipients: Vec::with_capacity(recipients.len()),
        ticket: None,
    };
    for recipient in recipients {
        let address = recipient.to_lowercase();
        let sent = tx.counter(&Counter::Recipient {
            address: &address,
            hour,
        })?;
        counts.recipients.push((sent, tx.suppression(&address)?));
    }
    if let Some(ticket) = ticket {
        counts.ticket = Some(tx.counter(&Counter::Ticket { ticket, day })?);
    }
    let admission = decide(kind, &counts, limits, now);
    match &admission {
        Admission::Send => {
            for recipient in recipients {
                let address = recipient.to_lowercase();
                tx.bump_counter(&Counter::Recipient {
                    address: &address,
                    hour,
                })?;
            }
            if let Some(ticket) = ticket {
                tx.bump_counter(&Counter::Ticket { ticket, day })?;
            }
        }
        Admission::OverCap(reason) | Admission::Suppressed(reason) => {
            if let Some(ticket) = ticket {
                let kind_name = kind.name();
                let (event_kind, detail) = match &admission {
                    Admission::Suppressed(_) => {
                        ("mail_suppressed", format!("{kind_name} not sent: {reason}"))
                    }
                    _ => ("mail_capped", format!("{kind_name} not sent: {reason}")),
                };
                tx.add_event_later(
                    ticket,
                    Event {
                        at: now,
                        actor: crate::model::Actor::System,
                        kind: event_kind.to_owned(),
                        detail,
                    },
                );
            }
        }
    }
    Ok(admission)
}

/// Records that nothing goes to `address` for `limits.suppress_after_bounce`, with an event
/// on the ticket when there is one. A longer suppression already in place is kept.
pub(crate) fn suppress(
    tx: &WriteTx<'_>,
    limits: &Loops,
    address: &str,
    reason: &str,
    ticket: Option<TicketId>,
    now: Timestamp,
) -> TxResult<Suppression> {
    let address = address.to_lowercase();
    let period =
        SignedDuration::try_from(limits.suppress_after_bounce).unwrap_or(SignedDuration::MAX);
    let until = now.saturating_add(period).unwrap_or(Timestamp::MAX);
    let suppression = match tx.suppression(&address)? {
        Some(existing) if existing.until >= until => existing,
        _ => Suppression {
            address: address.clone(),
            since: now,
            until,
            reason: reason.to_owned(),
            ticket,
        },
    };
    tx.put_suppression(&suppression)?;
    if let Some(ticket) = ticket {
        tx.add_event_later(
            ticket,
            Event {
                at: now,
                actor: crate::model::Actor::System,
                kind: "address_suppressed".to_owned(),
                detail: format!(
                    "nothing is sent to {address} until {} after a hard bounce ({reason})",
                    suppression.until
                ),
            },
        );
    }
    Ok(suppression)
}

/// One acknowledgement per sender per day: whether `address` may get one now, counting it
/// when it may.
pub(crate) fn take_acknowledgement(
    tx: &WriteTx<'_>,
    address: &str,
    now: Timestamp,
) -> TxResult<bool> {
    let (_, day) = windows(now);
    let address = address.to_lowercase();
    let counter = Counter::Acknowledged {
        address: &address,
        day,
    };
    if tx.counter(&counter)? > 0 {
        return Ok(false);
    }
    tx.bump_counter(&counter)?;
    Ok(true)
}

/// Fills in an acknowledgement template in one pass, so a value that itself contains a
/// placeholder is not expanded again.
///
/// Nothing from the inbound mail goes in: anyone can send mail under a victim's address, and
/// an acknowledgement must not carry a stranger's subject or display name to her. `{subject}`
/// and `{name}`, which older templates may still use, are filled with the ticket reference
/// `[#N]` and with nothing.
pub(crate) fn render_template(template: &str, ticket: u64, helpdesk: &str) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let values = [
        ("{ticket}", ticket.to_string()),
        ("{subject}", format!("[#{ticket}]")),
        ("{name}", String::new()),
        ("{helpdesk}", clean(helpdesk)),
    ];
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (placeholder, value) in &values {
            if let Some(after) = rest.strip_prefix(placeholder) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests;

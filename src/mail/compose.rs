//! Composes the mail casemail sends about tickets: the notification that gives a ticket to its
//! caseworker, and notices to coordinators. Pure: no I/O, no clock; the caller stores the result
//! in the outbox in the same transaction as the ticket change, and `smtp` sends it.
//!
//! Composing is deterministic: the same arguments give the same bytes. The `Date:` header is the
//! time the caller passes (the time of the filing that causes the message), never the clock, and
//! a multipart message's MIME boundary is a hash of the message (see [`boundary`]), never random.
//!
//! Every message goes out from the shared address, to one recipient at a time, so one agent's
//! address is never shown to another. Everything casemail sends automatically carries
//! `Auto-Submitted: auto-generated` (RFC 3834) and its own loop header.

use std::time::SystemTime;

use jiff::Timestamp;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use sha2::{Digest as _, Sha256};

use crate::ids::MessageId;
use crate::model::{Agent, StoredMessage, Ticket};

mod safe_files;

/// Marks mail casemail sent, so it never processes its own mail as a request.
pub(crate) const LOOP_HEADER: &str = "X-Casemail-Loop";

/// The first line of every notification: what an agent writes above it is their reply, what
/// is below is history (`strip` owns the marker).
pub(crate) use crate::mail::strip::REPLY_ABOVE;

/// Why a message could not be composed. Errors are logged at WARN and ERROR, so their text
/// names no person: the address stays in the value, for DEBUG logs and tests.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("an address cannot be used in a message header")]
    Address(String),
    #[error("agent {0} has no address")]
    AgentWithoutAddress(crate::ids::AgentId),
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// The line a notification carries when the requester's address cannot be written to.
pub(crate) const UNANSWERABLE: &str = "Answer:   NOT BY MAIL. casemail cannot send mail to the requester's address, so a reply\n          to this notification will not reach them. Ask a coordinator how to reach them\n          another way; do not write to them from your own address.\n";

/// The helpdesk identity outgoing mail is sent as.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub address: String,
    pub name: String,
}

impl Sender {
    fn mailbox(&self) -> Result<Mailbox, Error> {
        let address = self
            .address
            .parse()
            .map_err(|_| Error::Address(self.address.clone()))?;
        Ok(Mailbox::new(Some(self.name.clone()), address))
    }

    fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map_or("localhost", |(_, domain)| domain)
    }

    /// The helpdesk address with a sub-address: `help+DETAIL@domain`.
    pub(crate) fn sub_address(&self, detail: &str) -> String {
        match self.address.rsplit_once('@') {
            Some((local, domain)) => format!("{local}+{detail}@{domain}"),
            None => self.address.clone(),
        }
    }

    /// A Message-ID fixed at creation: `kind.ticket.nonce@helpdesk-domain`.
    pub(crate) fn message_id(&self, kind: &str, ticket: u64, nonce: u64) -> MessageId {
        let text = format!("casemail.{kind}.{ticket}.{nonce:016x}@{}", self.domain());
        MessageId::parse(&text).unwrap_or_else(|| {
            // The parts are ASCII without white space, so parsing cannot fail; keep a usable id
            // all the same rather than a panic.
            MessageId::parse(&format!("casemail.{nonce:016x}@localhost"))
                .expect("a fixed ASCII id without spaces is a valid Message-ID")
        })
    }
}

/// A composed message, ready for the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub message_id: MessageId,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

/// An attachment to pass through, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentBytes {
    pub name: Option<String>,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// Why an agent is being sent a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The ticket was just assigned to them.
    Assigned,
    /// The requester wrote again on a ticket they own.
    FollowUp,
    /// It was handed over to them from someone who did not answer in time.
    Handover,
}

fn base(
    sender: &Sender,
    to: &str,
    subject: &str,
    message_id: &MessageId,
    now: Timestamp,
) -> Result<lettre::message::MessageBuilder, Error> {
    let to_mailbox: Mailbox = to.parse().map_err(|_| Error::Address(to.to_owned()))?;
    Ok(lettre::Message::builder()
        .date(header_date(now))
        .from(sender.mailbox()?)
        .to(to_mailbox)
        .subject(subject)
        .message_id(Some(format!("<{}>", message_id.as_str())))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(LOOP_HEADER),
            sender.address.clone(),
        ))
        .raw_header(no_reactions()))
}

/// The time for the `Date:` header. lettre would read the clock when given none; and its date
/// formatting (httpdate) panics before 1970, so an earlier time is held to 1970: a wrong date is
/// better than no message. (httpdate's other limit, the year 9999, is past jiff's last time.)
fn header_date(now: Timestamp) -> SystemTime {
    SystemTime::from(now.max(Timestamp::UNIX_EPOCH))
}

/// `X-MS-Reactions: disallow` on everything casemail sends: Outlook then offers no emoji
/// reactions, whose "… reacted to your message" mails are noise to a help desk (and would
/// otherwise have to be told from answers; see `reaction.rs` for those that come anyway).
fn no_reactions() -> HeaderValue {
    HeaderValue::new(
        HeaderName::new_from_ascii_str("X-MS-Reactions"),
        "disallow".to_owned(),
    )
}

/// The subject a ticket goes by in mail: `[#N] subject`.
pub(crate) fn ticket_subject(ticket: &Ticket) -> String {
    format!("[#{}] {}", ticket.id.0, clean_line(&ticket.subject))
}

/// Header text from mail is attacker-controlled: no line breaks or control characters may
/// travel into the headers or the header block of what casemail sends.
fn clean_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The notification that hands a ticket (and the message that caused it) to an agent.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of the notification.
pub(crate) fn ticket_notification(
    sender: &Sender,
    agent: &Agent,
    ticket: &Ticket,
    message: &StoredMessage,
    attachments: &[AttachmentBytes],
    why: Why,
    warnings: &[&str],
    reply_token: &str,
    nonce: u64,
    now: Timestamp,
) -> Result<Outgoing, Error> {
    let to = agent
        .emails
        .first()
        .ok_or_else(|| Error::AgentWithoutAddress(agent.id.clone()))?;
    // Files a client would render (HTML, SVG, forwarded mail, …) go as text, never as sent.
    let safe = safe_files::for_caseworker(attachments);
    let attachments = safe.files.as_slice();
    // The token rides in the Message-ID too, so a reply threads back to it even where the
    // sub-address of Reply-To is lost.
    let message_id = MessageId::parse(&format!(
        "casemail.n.{reply_token}.{nonce:016x}@{}",
        sender.domain()
    ))
    .unwrap_or_else(|| sender.message_id("n", ticket.id.0, nonce));
    let reply_to_address = sender.sub_address(reply_token);
    let reply_to: Mailbox = Mailbox::new(
        Some(sender.name.clone()),
        reply_to_address
            .parse()
            .map_err(|_| Error::Address(reply_to_address.clone()))?,
    );
    // The `From:` line names the quoted message's own sender, never the ticket's requester by
    // default: what someone else wrote on the ticket must not be shown as the requester's.
    let from = message.from.as_deref().unwrap_or("(unknown sender)");
    let by_requester = from == ticket.requester;
    let from_name = message
        .from_name
        .as_ref()
        .or(ticket.requester_name.as_ref().filter(|_| by_requester));
    let requester = match from_name {
        Some(name) => format!("{} <{}>", clean_line(name), clean_line(from)),
        None => clean_line(from),
    };
    let heading = match why {
        Why::Assigned => "New ticket for you",
        Why::FollowUp => "The requester wrote again",
        Why::Handover => "Handed over to you: the previous caseworker did not answer in time",
    };
    // A forged or stray message must not pass for the requester's: the warning comes first.
    let warning: String = warnings
        .iter()
        .map(|w| format!("WARNING: {}\n\n", clean_line(w)))
        .collect();
    let mut body = format!(
        "{REPLY_ABOVE}\n\n{warning}{heading}. Reply to this message to answer the requester; your address is not shown to them.\n\nTicket:   #{number}\nStatus:   {status}\nMessages: {count}\nFrom:     {requester}\nSubject:  {subject}\n",
        number = ticket.id.0,
        status = ticket.status,
        count = ticket.message_count,
        subject = clean_line(message.subject.as_deref().unwrap_or(&ticket.subject)),
    );
    let kept: Vec<&AttachmentBytes> = attachments.iter().collect();
    let skipped = message.attachments.iter().filter(|a| !a.kept).count();
    if !kept.is_empty() || skipped > 0 {
        body.push_str(&format!(
            "Files:    {} attached{}\n",
            kept.len(),
            if skipped > 0 {
                format!(", {skipped} too large to forward (kept with the ticket)")
            } else {
                String::new()
            }
        ));
    }
    if !safe.changed.is_empty() {
        body.push_str(
            "          changed so that nothing in them loads or runs (originals kept with the ticket):\n",
        );
        for line in &safe.changed {
            body.push_str(&format!("          - {line}\n"));
        }
    }
    if !by_requester {
        body.push_str(&format!(
            "Requester: {} (the message below is NOT from the requester)\n",
            clean_line(&ticket.requester)
        ));
    }
    if ticket
        .flags
        .contains(&crate::model::TicketFlag::Unanswerable)
    {
        body.push_str(UNANSWERABLE);
    }
    body.push_str("----------------------------------------------------------------------\n\n");
    body.push_str(&message.text);
    body.push('\n');
    let subject = ticket_subject(ticket);
    let builder = base(sender, to, &subject, &message_id, now)?.reply_to(reply_to);
    let kept: Vec<AttachmentBytes> = kept.into_iter().cloned().collect();
    let email = text_with_files(builder, &message_id, body, &kept, &[])?;
    Ok(Outgoing {
        message_id,
        envelope_from: sender.address.clone(),
        recipients: vec![to.clone()],
        raw: email.formatted(),
    })
}

/// A short notice to one coordinator (nobody could take a ticket, a handover happened).
pub(crate) fn coordinator_notice(
    sender: &Sender,
    coordinator: &Agent,
    ticket: &Ticket,
    what: &str,
    nonce: u64,
    now: Timestamp,
) -> Result<Outgoing, Error> {
    let to = coordinator
        .emails
        .first()
        .ok_or_else(|| Error::AgentWithoutAddress(coordinator.id.clone()))?;
    let message_id = sender.message_id("c", ticket.id.0, nonce);
    let subject = format!("{} ({})", ticket_subject(ticket), what);
    let body = format!(
        "{what}.\n\nTicket:   #{number}\nStatus:   {status}\nMessages: {count}\nOwner:    {owner}\n",
        number = ticket.id.0,
        status = ticket.status,
        count = ticket.message_count,
        owner = ticket.owner.as_ref().map_or("nobody", |o| o.0.as_str()),
    );
    let email = base(sender, to, &subject, &message_id, now)?
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body),
        )
        .map_err(|e| Error::Build(e.to_string()))?;
    Ok(Outgoing {
        message_id,
        envelope_from: sender.address.clone(),
        recipients: vec![to.clone()],
        raw: email.formatted(),
    })
}

/// A plain text message from the helpdesk to one coordinator (the daily digest).
pub(crate) fn plain_to(
    sender: &Sender,
    to: &str,
    subject: &str,
    body: String,
    kind: &str,
    nonce: u64,
    now: Timestamp,
) -> Result<Outgoing, Error> {
    let message_id = sender.message_id(kind, 0, nonce);
    let email = base(sender, to, subject, &message_id, now)?
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body),
        )
        .map_err(|e| Error::Build(e.to_string()))?;
    Ok(Outgoing {
        message_id,
        envelope_from: sender.address.clone(),
        recipients: vec![to.to_owned()],
        raw: email.formatted(),
    })
}

/// The subject of an acknowledgement, `[#N] Your message to HELPDESK`: the ticket number and
/// the helpdesk's own name, never the subject of the mail it answers.
fn acknowledgement_subject(sender: &Sender, ticket: &Ticket) -> String {
    format!(
        "[#{}] Your message to {}",
        ticket.id.0,
        clean_line(&sender.name)
    )
}

/// The acknowledgement of a new ticket: from the helpdesk to the requester, threaded under
/// their message, marked `Auto-Submitted: auto-replied` (RFC 3834 §5: an answer to their
/// message) with the loop header. `body` is the filled-in template; `hide` (every caseworker
/// address) is scrubbed from it and from the subject.
///
/// Anyone can send mail under someone else's address, so the acknowledgement may reach a
/// person who never wrote: it quotes nothing of the inbound mail. The subject is
/// `[#N] Your message to HELPDESK` and the recipient has no display name.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of the message.
pub(crate) fn acknowledgement(
    sender: &Sender,
    ticket: &Ticket,
    body: &str,
    in_reply_to: Option<&MessageId>,
    references: &[MessageId],
    hide: &[String],
    nonce: u64,
    now: Timestamp,
) -> Result<Outgoing, Error> {
    let message_id = sender.message_id("a", ticket.id.0, nonce);
    let to_address: lettre::Address = ticket
        .requester
        .parse()
        .map_err(|_| Error::Address(ticket.requester.clone()))?;
    let to = Mailbox::new(None, to_address);
    let mut builder = lettre::Message::builder()
        .date(header_date(now))
        .from(sender.mailbox()?)
        .to(to)
        .subject(scrub(&acknowledgement_subject(sender, ticket), hide))
        .message_id(Some(format!("<{}>", message_id.as_str())))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(LOOP_HEADER),
            sender.address.clone(),
        ))
        .raw_header(no_reactions());
    if let Some(parent) = in_reply_to {
        builder = builder.in_reply_to(format!("<{}>", parent.as_str()));
    }
    let mut chain: Vec<String> = references
        .iter()
        .chain(in_reply_to)
        .map(|r| format!("<{}>", r.as_str()))
        .collect();
    chain.dedup();
    if !chain.is_empty() {
        builder = builder.references(chain.join(" "));
    }
    let email = text_with_files(builder, &message_id, scrub(body, hide), &[], hide)?;
    Ok(Outgoing {
        message_id,
        envelope_from: sender.address.clone(),
        recipients: vec![ticket.requester.clone()],
        raw: email.formatted(),
    })
}

#[cfg(test)]
mod tests;

/// Replaces every occurrence of `secrets` (caseworker addresses, reply tokens) in `text`, with
/// the relay gate's matching (case-insensitive over the original text, Unicode-correct).
fn scrub(text: &str, secrets: &[String]) -> String {
    crate::mail::scrub::Secrets::new(secrets.iter().map(String::as_str), []).scrub(text)
}

/// What the relay gate (`casework::gate`) lets through to the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    pub text: String,
    pub attachments: Vec<AttachmentBytes>,
    /// One line per file dropped or cleaned, for the caseworker's confirmation.
    pub removed: Vec<String>,
}

/// The caseworker's answer as the requester receives it: a new message from the shared
/// address, threaded under the requester's own messages, carrying only what the relay gate
/// cleared (`cleared`: text and files already scrubbed). The subject and the requester's display
/// name, built from the ticket, pass `secrets` too. Only `gate` decides what goes; this only
/// composes it.
#[allow(clippy::too_many_arguments)] // Each argument is a distinct part of the message.
pub(crate) fn relay_to_requester(
    sender: &Sender,
    ticket: &Ticket,
    cleared: &Cleared,
    in_reply_to: Option<&MessageId>,
    references: &[MessageId],
    secrets: &crate::mail::scrub::Secrets,
    nonce: u64,
    now: Timestamp,
) -> Result<Outgoing, Error> {
    let message_id = sender.message_id("r", ticket.id.0, nonce);
    let to_address: lettre::Address = ticket
        .requester
        .parse()
        .map_err(|_| Error::Address(ticket.requester.clone()))?;
    // The requester's own display name is scrubbed like the subject: one that holds a
    // caseworker address would otherwise hold every answer at the last check.
    let name = ticket
        .requester_name
        .as_deref()
        .map(|name| secrets.scrub(&clean_line(name)));
    let to = Mailbox::new(name, to_address);
    let subject = format!("Re: {} [#{}]", clean_line(&ticket.subject), ticket.id.0);
    let mut builder = lettre::Message::builder()
        .date(header_date(now))
        .from(sender.mailbox()?)
        .to(to)
        .subject(secrets.scrub(&subject))
        .message_id(Some(format!("<{}>", message_id.as_str())))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(LOOP_HEADER),
            sender.address.clone(),
        ))
        .raw_header(no_reactions());
    if let Some(parent) = in_reply_to {
        builder = builder.in_reply_to(format!("<{}>", parent.as_str()));
    }
    if !references.is_empty() {
        let chain: Vec<String> = references
            .iter()
            .map(|r| format!("<{}>", r.as_str()))
            .collect();
        builder = builder.references(chain.join(" "));
    }
    let body = format!("{}\n", cleared.text);
    let email = text_with_files(builder, &message_id, body, &cleared.attachments, &[])?;
    Ok(Outgoing {
        message_id,
        envelope_from: sender.address.clone(),
        recipients: vec![ticket.requester.clone()],
        raw: email.formatted(),
    })
}

/// A plain-text body, with the files attached when there are any. File names go through the
/// same cleaning as header text, lose their bidi controls (a file that passes unchanged must not
/// read as `invoice\u{202e}fdp.exe` shows it, `invoiceexe.pdf`), and `hide` is scrubbed from
/// them.
fn text_with_files(
    builder: lettre::message::MessageBuilder,
    message_id: &MessageId,
    body: String,
    attachments: &[AttachmentBytes],
    hide: &[String],
) -> Result<lettre::Message, Error> {
    if attachments.is_empty() {
        return builder
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )
            .map_err(|e| Error::Build(e.to_string()));
    }
    let files: Vec<AttachmentBytes> = attachments
        .iter()
        .map(|attachment| AttachmentBytes {
            name: Some(
                attachment
                    .name
                    .as_deref()
                    .map(|n| scrub(&safe_files::visible_name(n), hide))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "attachment".to_owned()),
            ),
            content_type: attachment.content_type.clone(),
            content: attachment.content.clone(),
        })
        .collect();
    let mut parts = MultiPart::mixed()
        .boundary(boundary(message_id, &body, &files))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body),
        );
    for file in files {
        let content_type = ContentType::parse(&file.content_type).unwrap_or_else(|_| {
            ContentType::parse("application/octet-stream").unwrap_or(ContentType::TEXT_PLAIN)
        });
        let name = file.name.unwrap_or_default();
        parts = parts.singlepart(Attachment::new(name).body(file.content, content_type));
    }
    builder
        .multipart(parts)
        .map_err(|e| Error::Build(e.to_string()))
}

/// The MIME boundary of a multipart message: the hex of a SHA-256 over its Message-ID (unique to
/// the message) and its parts as sent, so the same message always gets the same boundary
/// (lettre's own is random). Only what the message itself carries goes into the hash, so the
/// boundary tells a recipient nothing the message does not (a scrubbed file name, say). A
/// boundary must never occur in the parts it separates (RFC 2046 §5.1.1): for that a part would
/// have to hold a hash of itself. 64 characters, within RFC 2046's limit of 70.
fn boundary(message_id: &MessageId, body: &str, files: &[AttachmentBytes]) -> String {
    let mut hash = Sha256::new();
    // Each field is preceded by its length, so that different messages never hash the same bytes.
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(message_id.as_str().as_bytes());
    field(body.as_bytes());
    for file in files {
        field(file.name.as_deref().unwrap_or_default().as_bytes());
        field(file.content_type.as_bytes());
        field(&file.content);
    }
    format!("{:x}", hash.finalize())
}

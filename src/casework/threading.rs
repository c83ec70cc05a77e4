//! Dedupe and threading: decides where an incoming message belongs.
//!
//! Pure over a read view of the store: no I/O of its own, no clock. The rules, first match wins
//! (DESIGN.md, "Threading"):
//! 1. the same message (dedupe key) is already stored → [`Placement::Duplicate`]. A stored
//!    Message-ID with different content ([`dedupe`]: the author's header fields and the body,
//!    not the fields servers add on the way) is not the same message: broken web forms,
//!    scanners and some phones reuse Message-IDs. It is filed under a key of its own and
//!    threaded by the rules below, never by that Message-ID;
//! 2. a valid reply token (checked by the reply bridge, passed in as [`Hints::token_ticket`]);
//! 3. a `[#N]` tag in the subject, from a sender already on ticket N — a stranger who copies the
//!    tag does not get into someone else's ticket;
//! 4. In-Reply-To / References naming any message stored in a ticket (RFC 5322 §3.6.4);
//! 5. the requester's open ticket, when one open ticket per requester is configured;
//! 6. otherwise a new ticket.

use std::sync::LazyLock;

use jiff::Timestamp;
use regex::Regex;
use sha2::{Digest as _, Sha256};

use crate::ids::{MailKey, MessageId, TicketId};
use crate::mail::parse::InboundMail;
use crate::model::{Direction, StoredMessage, Ticket};

/// What threading reads from the store.
pub(crate) trait ThreadView {
    type Error;
    fn find_key(&self, key: &MailKey) -> Result<Option<(TicketId, u32)>, Self::Error>;
    fn message(&self, ticket: TicketId, seq: u32) -> Result<Option<StoredMessage>, Self::Error>;
    fn find_message_id(&self, id: &MessageId) -> Result<Option<TicketId>, Self::Error>;
    fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, Self::Error>;
    fn tickets_of_requester(&self, address: &str) -> Result<Vec<TicketId>, Self::Error>;
}

/// Why a message joined an existing ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    ReplyToken,
    SubjectTag,
    Headers,
    OpenTicketOfRequester,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::ReplyToken => "reply token",
            Reason::SubjectTag => "subject tag",
            Reason::Headers => "In-Reply-To/References",
            Reason::OpenTicketOfRequester => "requester's open ticket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Duplicate { ticket: TicketId, seq: u32 },
    Existing { ticket: TicketId, reason: Reason },
    NewTicket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenTicketRule {
    /// One person, one open case: a requester's new mail joins their open ticket.
    OnePerRequester,
    /// Every message that matches nothing else starts a ticket.
    NewTicketEachTime,
}

/// The parts of a message threading looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inbound<'a> {
    pub key: &'a MailKey,
    pub sender: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub in_reply_to: &'a [MessageId],
    pub references: &'a [MessageId],
}

/// Facts established by earlier stages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hints {
    /// The ticket a valid reply token names.
    pub token_ticket: Option<TicketId>,
}

static SUBJECT_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[#(\d{1,18})\]").expect("the subject tag pattern is valid"));

/// The ticket numbers tagged in a subject, in order of appearance.
pub(crate) fn subject_tags(subject: &str) -> Vec<TicketId> {
    SUBJECT_TAG
        .captures_iter(subject)
        .filter_map(|c| c.get(1)?.as_str().parse().ok().map(TicketId))
        .collect()
}

/// What dedupe compares when a Message-ID is already stored: the fields the author wrote (From,
/// Date, Subject, To, Cc), the text and the attachments' names, types and sizes. The fields a
/// server adds on the way (Received, Delivered-To, Return-Path, X-…) are left out, so the copy of
/// one message in INBOX and in Junk, or fetched again after a UIDVALIDITY change, is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Content<'a> {
    pub from: &'a str,
    pub date: Option<Timestamp>,
    pub subject: Option<&'a str>,
    pub to: Vec<&'a str>,
    pub cc: Vec<&'a str>,
    pub text: &'a str,
    pub attachments: Vec<(Option<&'a str>, &'a str, u64)>,
}

impl<'a> Content<'a> {
    /// The content of an incoming message whose sender address is `sender`.
    pub(crate) fn of_mail(mail: &'a InboundMail, sender: &'a str) -> Self {
        Content {
            from: sender,
            date: mail.date,
            subject: mail.subject.as_deref(),
            to: mail.to.iter().map(|m| m.address.as_str()).collect(),
            cc: mail.cc.iter().map(|m| m.address.as_str()).collect(),
            text: &mail.text,
            attachments: mail
                .attachments
                .iter()
                .map(|a| (a.name.as_deref(), a.content_type.as_str(), a.size))
                .collect(),
        }
    }

    /// The content of a stored incoming message, as [`Content::of_mail`] read it.
    pub(crate) fn of_stored(message: &'a StoredMessage) -> Self {
        Content {
            from: message.from.as_deref().unwrap_or_default(),
            date: message.date,
            subject: message.subject.as_deref(),
            to: message.to.iter().map(String::as_str).collect(),
            cc: message.cc.iter().map(String::as_str).collect(),
            text: &message.text,
            attachments: message
                .attachments
                .iter()
                .map(|a| (a.name.as_deref(), a.content_type.as_str(), a.size))
                .collect(),
        }
    }

    /// SHA-256 over the fields, each length-prefixed so they cannot run into each other, with
    /// line endings normalised.
    fn digest(&self, message_id: &MessageId) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"casemail reused message-id v1");
        field(message_id.as_str().as_bytes());
        field(self.from.as_bytes());
        field(
            self.date
                .map(|d| d.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
        field(
            self.subject
                .unwrap_or_default()
                .replace("\r\n", "\n")
                .as_bytes(),
        );
        for list in [&self.to, &self.cc] {
            field(&u64::try_from(list.len()).unwrap_or(u64::MAX).to_le_bytes());
            for address in list {
                field(address.as_bytes());
            }
        }
        field(self.text.replace("\r\n", "\n").as_bytes());
        for (name, content_type, size) in &self.attachments {
            field(name.unwrap_or_default().as_bytes());
            field(content_type.as_bytes());
            field(&size.to_le_bytes());
        }
        format!("{:x}", hasher.finalize())
    }
}

/// What dedupe found for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dedupe {
    /// The same message is stored: a second copy.
    Stored { ticket: TicketId, seq: u32 },
    /// Nothing with this key is stored.
    New,
    /// A different message with an already stored Message-ID: it is filed under `key` (a
    /// content key of its own, so a second copy of it is caught too) and threaded by the other
    /// rules.
    Reused { key: MailKey },
}

/// Rule 1: is this message already stored? A Message-ID hit counts only when the content is the
/// same too. A stored message that is not incoming mail as it came (an answer, a note, whose
/// text casemail rewrote) keeps the old rule: its Message-ID alone decides.
pub(crate) fn dedupe<V: ThreadView>(
    key: &MailKey,
    content: &Content<'_>,
    view: &V,
) -> Result<Dedupe, V::Error> {
    let Some((ticket, seq)) = view.find_key(key)? else {
        return Ok(Dedupe::New);
    };
    let MailKey::MessageId(id) = key else {
        // A content key already covers the content.
        return Ok(Dedupe::Stored { ticket, seq });
    };
    let digest = content.digest(id);
    let differs = view.message(ticket, seq)?.is_some_and(|stored| {
        stored.direction == Direction::In && Content::of_stored(&stored).digest(id) != digest
    });
    if !differs {
        return Ok(Dedupe::Stored { ticket, seq });
    }
    let reused = MailKey::ContentHash(format!("reused:{digest}"));
    Ok(match view.find_key(&reused)? {
        Some((ticket, seq)) => Dedupe::Stored { ticket, seq },
        None => Dedupe::Reused { key: reused },
    })
}

/// Mail for a merged ticket joins the ticket it was merged into.
fn follow_merges<V: ThreadView>(view: &V, placement: Placement) -> Result<Placement, V::Error> {
    let Placement::Existing { mut ticket, reason } = placement else {
        return Ok(placement);
    };
    // Merges never form a cycle; the bound only guards against a damaged store.
    for _ in 0..16 {
        match view.ticket(ticket)?.and_then(|t| t.merged_into) {
            Some(next) => ticket = next,
            None => break,
        }
    }
    Ok(Placement::Existing { ticket, reason })
}

pub(crate) fn place<V: ThreadView>(
    mail: &Inbound<'_>,
    hints: Hints,
    rule: OpenTicketRule,
    view: &V,
) -> Result<Placement, V::Error> {
    let placement = place_unmerged(mail, hints, rule, view)?;
    follow_merges(view, placement)
}

fn place_unmerged<V: ThreadView>(
    mail: &Inbound<'_>,
    hints: Hints,
    rule: OpenTicketRule,
    view: &V,
) -> Result<Placement, V::Error> {
    if let Some((ticket, seq)) = view.find_key(mail.key)? {
        return Ok(Placement::Duplicate { ticket, seq });
    }
    if let Some(ticket) = hints.token_ticket
        && view.ticket(ticket)?.is_some()
    {
        return Ok(Placement::Existing {
            ticket,
            reason: Reason::ReplyToken,
        });
    }
    if let (Some(subject), Some(sender)) = (mail.subject, mail.sender) {
        for tagged in subject_tags(subject) {
            if let Some(ticket) = view.ticket(tagged)?
                && ticket.participants.contains(sender)
            {
                return Ok(Placement::Existing {
                    ticket: ticket.id,
                    reason: Reason::SubjectTag,
                });
            }
        }
    }
    // The nearest parent first: In-Reply-To, then References from the most recent backwards.
    for parent in mail.in_reply_to.iter().chain(mail.references.iter().rev()) {
        if let Some(ticket) = view.find_message_id(parent)? {
            return Ok(Placement::Existing {
                ticket,
                reason: Reason::Headers,
            });
        }
    }
    if rule == OpenTicketRule::OnePerRequester
        && let Some(sender) = mail.sender
    {
        // The most recent active ticket wins when, unusually, there are several.
        for id in view.tickets_of_requester(sender)?.into_iter().rev() {
            if let Some(ticket) = view.ticket(id)?
                && ticket.status.is_active()
            {
                return Ok(Placement::Existing {
                    ticket: id,
                    reason: Reason::OpenTicketOfRequester,
                });
            }
        }
    }
    Ok(Placement::NewTicket)
}

impl ThreadView for crate::store::Store {
    type Error = crate::store::Error;
    fn find_key(&self, key: &MailKey) -> Result<Option<(TicketId, u32)>, Self::Error> {
        crate::store::Store::find_key(self, key)
    }
    fn message(&self, ticket: TicketId, seq: u32) -> Result<Option<StoredMessage>, Self::Error> {
        crate::store::Store::message(self, ticket, seq)
    }
    fn find_message_id(&self, id: &MessageId) -> Result<Option<TicketId>, Self::Error> {
        crate::store::Store::find_message_id(self, id)
    }
    fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, Self::Error> {
        crate::store::Store::ticket(self, id)
    }
    fn tickets_of_requester(&self, address: &str) -> Result<Vec<TicketId>, Self::Error> {
        crate::store::Store::tickets_of_requester(self, address)
    }
}

#[cfg(test)]
mod tests;

//! Dedupe and threading: decides where an incoming message belongs.
//!
//! Pure over a read view of the store: no I/O of its own, no clock. The rules, first match wins
//! (DESIGN.md, "Threading"):
//! 1. the same message (dedupe key) is already stored → [`Placement::Duplicate`];
//! 2. a valid reply token (checked by the reply bridge, passed in as [`Hints::token_ticket`]);
//! 3. a `[#N]` tag in the subject, from a sender already on ticket N — a stranger who copies the
//!    tag does not get into someone else's ticket;
//! 4. In-Reply-To / References naming any message stored in a ticket (RFC 5322 §3.6.4);
//! 5. the requester's open ticket, when one open ticket per requester is configured;
//! 6. otherwise a new ticket.

use std::sync::LazyLock;

use regex::Regex;

use crate::ids::{MailKey, MessageId, TicketId};
use crate::model::Ticket;

/// What threading reads from the store.
pub trait ThreadView {
    type Error;
    fn find_key(&self, key: &MailKey) -> Result<Option<(TicketId, u32)>, Self::Error>;
    fn find_message_id(&self, id: &MessageId) -> Result<Option<TicketId>, Self::Error>;
    fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, Self::Error>;
    fn tickets_of_requester(&self, address: &str) -> Result<Vec<TicketId>, Self::Error>;
}

/// Why a message joined an existing ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ReplyToken,
    SubjectTag,
    Headers,
    OpenTicketOfRequester,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ReplyToken => "reply token",
            Reason::SubjectTag => "subject tag",
            Reason::Headers => "In-Reply-To/References",
            Reason::OpenTicketOfRequester => "requester's open ticket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Duplicate { ticket: TicketId, seq: u32 },
    Existing { ticket: TicketId, reason: Reason },
    NewTicket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenTicketRule {
    /// One person, one open case: a requester's new mail joins their open ticket.
    OnePerRequester,
    /// Every message that matches nothing else starts a ticket.
    NewTicketEachTime,
}

/// The parts of a message threading looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub key: &'a MailKey,
    pub sender: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub in_reply_to: &'a [MessageId],
    pub references: &'a [MessageId],
}

/// Facts established by earlier stages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints {
    /// The ticket a valid reply token names.
    pub token_ticket: Option<TicketId>,
}

static SUBJECT_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[#(\d{1,18})\]").expect("the subject tag pattern is valid"));

/// The ticket numbers tagged in a subject, in order of appearance.
pub fn subject_tags(subject: &str) -> Vec<TicketId> {
    SUBJECT_TAG
        .captures_iter(subject)
        .filter_map(|c| c.get(1)?.as_str().parse().ok().map(TicketId))
        .collect()
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

pub fn place<V: ThreadView>(
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

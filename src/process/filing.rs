//! Filing one parsed message: threading, spam, a new ticket or an addition, duplicates, and the
//! message kept as stored.

use std::collections::BTreeSet;

use jiff::Timestamp;
use tracing::{debug, info};

use crate::casework::assign::{self, Team, TeamChange};
use crate::casework::reply::{self, Verdict};
use crate::casework::threading::{self, Dedupe, Hints, Inbound, OpenTicketRule, Placement};
use crate::casework::token::Secret;
use crate::config::Config;
use crate::ids::TicketId;
use crate::mail::compose::{AttachmentBytes, Why};
use crate::mail::parse::{self, InboundMail};
use crate::model::{
    Actor, AttachmentMeta, Direction, Event, Source, Status, StoredMessage, Ticket, TicketFlag,
};
use crate::model::{Arrival, FolderKind};
use crate::store::{self, Store, WriteTx};

use super::*;

/// A delivery report about mail casemail sent: the ticket the quoted Message-IDs belong to (as
/// the index names it, before merges), those Message-IDs, and the report's authentication.
pub(super) struct Report<'a> {
    pub(super) ticket: TicketId,
    pub(super) quoted: &'a [crate::ids::MessageId],
    pub(super) authentication: &'a crate::casework::auth::Verdict,
}

/// What filing one message needs besides the message.
pub(crate) struct Filing<'a> {
    pub store: &'a Store,
    pub secret: &'a Secret,
    pub config: &'a Config,
    pub now: Timestamp,
    /// Randomness for the Message-IDs of mail this filing queues.
    pub nonce: u64,
    /// What spamd said about the message, asked before filing.
    pub spamd: crate::casework::spam::SpamdAnswer,
}

impl Filing<'_> {
    /// Threads a parsed message and writes it, its ticket change, its routing, the mail that
    /// goes with it and the folder cursor in one transaction.
    pub(crate) fn file(
        &self,
        team: &Team,
        source: &Source,
        kind: FolderKind,
        arrival: Arrival,
        mail: &InboundMail,
        raw: &[u8],
    ) -> Result<(Outcome, TeamChange), store::Error> {
        let (store, config, now) = (self.store, self.config, self.now);
        let sender = sender_address(mail);
        // One verdict for the whole message; everything below that changes state asks it.
        let authentication = crate::casework::auth::verdict(mail, &config.auth);
        let rule = if config.threading.one_open_ticket_per_requester {
            OpenTicketRule::OnePerRequester
        } else {
            OpenTicketRule::NewTicketEachTime
        };
        let dedupe = threading::dedupe(
            &mail.key,
            &threading::Content::of_mail(mail, &sender),
            store,
        )?;
        let reused;
        let mail = match &dedupe {
            Dedupe::Reused { key } => {
                info!("A different message with a stored Message-ID; filed on its own.");
                let mut copy = mail.clone();
                copy.key = key.clone();
                copy.anomalies.push(parse::Anomaly::ReusedMessageId);
                reused = copy;
                &reused
            }
            Dedupe::Stored { .. } | Dedupe::New => mail,
        };
        // Mail without a usable From has no requester to thread by: the placeholder address or
        // an envelope sender would join strangers' mail into one ticket.
        let author = mail
            .from
            .as_ref()
            .filter(|from| from.address.contains('@'))
            .map(|_| sender.as_str());
        let inbound = Inbound {
            key: &mail.key,
            sender: author,
            subject: mail.subject.as_deref(),
            in_reply_to: &mail.in_reply_to,
            references: &mail.references,
        };
        let placement = match dedupe {
            Dedupe::Stored { ticket, seq } => Placement::Duplicate { ticket, seq },
            Dedupe::New | Dedupe::Reused { .. } => {
                threading::place(&inbound, Hints::default(), rule, store)?
            }
        };
        // Mail casemail sent that came back (its own loop header) is kept as a note, never
        // routed, relayed or answered: answering it is how a loop starts.
        let own_mail = crate::casework::mail_loops::is_own_mail(mail, &config.helpdesk.address);
        // An Outlook reaction ("… reacted to your message") is no answer and no request: kept as
        // a note the same way, never relayed, never reopening or routing a ticket.
        let reaction = !own_mail && crate::mail::reaction::is_reaction(mail);
        let note_only = own_mail || reaction;
        // A caseworker's answer to a notification is not requester mail: the bridge decides
        // whether it is relayed. A second copy of it is an ordinary duplicate.
        let verdict = match placement {
            Placement::Duplicate { .. } => Verdict::NotAReply,
            // Without its text a message can carry no answer or command: one too large to
            // fetch is filed as mail to the ticket, never relayed.
            _ if arrival == Arrival::Backfill || note_only || is_too_large(mail) => {
                Verdict::NotAReply
            }
            _ => {
                let agents: Vec<&crate::model::Agent> = team.agents().collect();
                let context = reply::Context {
                    secret: self.secret,
                    agents: &agents,
                    auth: &authentication,
                    settings: &config.auth,
                    now,
                };
                reply::classify(mail, &sender, &context, |id| {
                    let id = crate::casework::admin::resolve_merged(store, id).ok()?;
                    let ticket = store.ticket(id).ok().flatten()?;
                    let closed_at = match ticket.status {
                        Status::Closed => reply::closed_at(&ticket, &store.events(id).ok()?),
                        _ => None,
                    };
                    Some(reply::Known { ticket, closed_at })
                })
            }
        };
        if verdict != Verdict::NotAReply {
            return self.file_reply(team, source, mail, raw, &sender, &verdict);
        }
        // A delivery report about mail casemail sent belongs to that mail's ticket, not to a
        // new ticket from MAILER-DAEMON.
        if mail.is_delivery_report
            && !matches!(placement, Placement::Duplicate { .. })
            && let Some((ticket, quoted)) = assign::bounced_ticket(store, raw)?
        {
            let report = Report {
                ticket,
                quoted: &quoted,
                authentication: &authentication,
            };
            return self.file_bounce(team, source, mail, raw, &sender, &report);
        }
        let spam = match placement {
            Placement::Duplicate { .. } => None,
            _ => Some(self.spam_verdict(kind, mail, raw, &sender)?),
        };
        let is_spam = spam.as_ref().is_some_and(|v| v.spam);
        if let Some(verdict) = spam.as_ref().filter(|v| v.spam) {
            // Signal names and weights only: the reasons' details may quote the message.
            info!(
                score = verdict.score,
                signals = %verdict.summary(),
                "Message judged spam."
            );
        }
        // Routing reads the store outside the transaction: this is the only writer, so
        // nothing changes in between. Mail judged spam is never routed; mail from a junk
        // folder that is not judged spam (an allow-listed sender) is routed like any other.
        let routable = arrival == Arrival::Live && !is_spam && !note_only;
        // Mail that fails authentication is not from who it claims: no acknowledgement goes to
        // the address it names.
        let acknowledge = routable
            && config.acknowledge.enabled
            && !authentication.is_fail()
            && self.may_acknowledge(team, mail, &sender);
        let decision = match placement {
            Placement::Duplicate { .. } => None,
            _ if !routable => None,
            Placement::NewTicket => {
                let previous = assign::previous_owner(store, &sender, None)?;
                let blank = blank_ticket(TicketId(0), &sender, now);
                Some(team.decide(&blank, previous.as_ref(), None, now))
            }
            Placement::Existing { ticket, .. } => match store.ticket(ticket)? {
                Some(record)
                    if record.status != Status::Spam
                        && !record.flags.contains(&TicketFlag::Backfilled) =>
                {
                    let previous = assign::previous_owner(store, &record.requester, Some(ticket))?;
                    Some(team.decide(&record, previous.as_ref(), None, now))
                }
                _ => None,
            },
        };
        let attachments = attachment_bytes(mail);
        let helpdesk = assign::sender(config);
        let context = assign::Context {
            team,
            secret: self.secret,
            sender: &helpdesk,
            limits: self.config.loops,
            now,
            nonce: self.nonce,
        };
        let (outcome, change) = store.write(|tx| {
            let mut change = TeamChange::default();
            let outcome = match placement {
                Placement::Duplicate { ticket, seq } => {
                    file_duplicate(tx, now, source, ticket, seq)?;
                    Outcome::Duplicate(ticket)
                }
                Placement::Existing { ticket, reason } => {
                    let mut record = tx.ticket(ticket)?.ok_or_else(|| {
                        store::Error::Inconsistent(format!(
                            "threading chose missing ticket {ticket}"
                        ))
                    })?;
                    // A header match (or tag) from an address that has not written in the ticket
                    // is how a stranger who knows a Message-ID reaches the caseworker.
                    let stranger = matches!(reason, threading::Reason::Headers | threading::Reason::SubjectTag)
                        && !record.participants.contains(&sender);
                    let mut message =
                        add_message(tx, now, &mut record, source, kind, mail, raw, &sender)?;
                    if let Some(warning) = warning(&authentication, stranger.then_some(reason)) {
                        message.anomalies.push(warning);
                        tx.put_message(&message, None)?;
                    }
                    if own_mail {
                        file_as_note(tx, now, &mut record, message.clone(), &OWN_MAIL)?;
                    } else if reaction {
                        file_as_note(tx, now, &mut record, message.clone(), &REACTION)?;
                    } else if matches!(record.status, Status::Waiting | Status::Closed) && !is_spam
                    {
                        record.status = Status::Open;
                    }
                    if let Some(verdict) = spam.as_ref().filter(|v| v.spam) {
                        record.flags.insert(TicketFlag::SuspectedSpam);
                        tx.add_event(
                            &mut record,
                            &Event {
                                at: now,
                                actor: Actor::System,
                                kind: "spam_suspected".to_owned(),
                                detail: format!(
                                    "a message judged spam (score {:.2}: {}) was added; the ticket keeps its status",
                                    verdict.score,
                                    verdict.summary()
                                ),
                            },
                        )?;
                    }
                    let event = Event {
                        at: now,
                        actor: Actor::Requester(sender.clone()),
                        kind: "message_added".to_owned(),
                        detail: format!("threaded by {}", reason.as_str()),
                    };
                    tx.add_event(&mut record, &event)?;
                    if let Some(decision) = &decision {
                        assign::apply(
                            tx,
                            &context,
                            &mut record,
                            decision,
                            Some(&message),
                            &attachments,
                            Why::FollowUp,
                            &mut change,
                        )?;
                    }
                    tx.put_ticket(&record)?;
                    Outcome::Added(ticket, reason)
                }
                Placement::NewTicket => {
                    let id = tx.allocate_ticket_id()?;
                    let mut record = blank_ticket(id, &sender, now);
                    if let Some(verdict) = &spam {
                        if verdict.spam {
                            record.status = Status::Spam;
                        }
                        // Kept for every new ticket, so `ticket show` explains the verdict
                        // either way.
                        tx.put_spam_record(
                            id,
                            &crate::casework::spam::held::SpamRecord {
                                at: now,
                                verdict: verdict.clone(),
                            },
                        )?;
                    }
                    record.subject = mail
                        .thread_subject
                        .clone()
                        .or_else(|| mail.subject.clone())
                        .unwrap_or_else(|| "(no subject)".to_owned());
                    record.requester_name = mail.from.as_ref().and_then(|f| f.name.clone());
                    let mut message =
                        add_message(tx, now, &mut record, source, kind, mail, raw, &sender)?;
                    if let Some(warning) = warning(&authentication, None) {
                        message.anomalies.push(warning);
                        tx.put_message(&message, None)?;
                    }
                    if arrival == Arrival::Backfill {
                        record.flags.insert(TicketFlag::Backfilled);
                    }
                    let detail = match arrival {
                        Arrival::Live => format!("from {}", source.mailbox),
                        Arrival::Backfill => format!(
                            "from {} (first-run backfill: nobody is notified)",
                            source.mailbox
                        ),
                    };
                    let event = Event {
                        at: now,
                        actor: Actor::Requester(sender.clone()),
                        kind: "created".to_owned(),
                        detail,
                    };
                    tx.add_event(&mut record, &event)?;
                    if own_mail {
                        record.status = Status::Closed;
                        file_as_note(tx, now, &mut record, message.clone(), &OWN_MAIL)?;
                    } else if reaction {
                        record.status = Status::Closed;
                        file_as_note(tx, now, &mut record, message.clone(), &REACTION)?;
                    }
                    if let Some(verdict) = spam.as_ref().filter(|v| v.spam) {
                        let event = Event {
                            at: now,
                            actor: Actor::System,
                            kind: "spam".to_owned(),
                            detail: format!(
                                "held as spam, score {:.2} (threshold {}): {}",
                                verdict.score,
                                config.spam.threshold,
                                verdict.summary()
                            ),
                        };
                        tx.add_event(&mut record, &event)?;
                    }
                    if let Some(decision) = &decision {
                        assign::apply(
                            tx,
                            &context,
                            &mut record,
                            decision,
                            Some(&message),
                            &attachments,
                            Why::Assigned,
                            &mut change,
                        )?;
                    }
                    // Spam is never acknowledged, whichever check set the status.
                    if acknowledge
                        && record.status != Status::Spam
                        && crate::casework::mail_loops::take_acknowledgement(tx, &sender, now)?
                    {
                        acknowledge_request(tx, &context, config, &record, mail)?;
                    }
                    tx.put_ticket(&record)?;
                    Outcome::NewTicket(id)
                }
            };
            tx.clear_attempts(source)?;
            advance_cursor(tx, source)?;
            Ok((outcome, change))
        })?;
        debug!(?outcome, "Message filed.");
        Ok((outcome, change))
    }
}

impl Filing<'_> {
    /// The spam verdict on ordinary inbound mail: whether the sender is a known requester and
    /// what the classifier says are read from the store, spamd's answer was asked before.
    pub(super) fn spam_verdict(
        &self,
        kind: FolderKind,
        mail: &InboundMail,
        raw: &[u8],
        sender: &str,
    ) -> Result<crate::casework::spam::Verdict, store::Error> {
        use crate::casework::spam::{self, Requester};
        let mut requester = Requester::New;
        for id in self.store.tickets_of_requester(sender)? {
            if let Some(ticket) = self.store.ticket(id)?
                && ticket.status != Status::Spam
            {
                requester = Requester::Known;
                break;
            }
        }
        let tokens = spam::bayes::tokens_of_mail(mail);
        let classifier = spam::bayes::classify(self.store, &tokens)?;
        let context = spam::Context {
            folder: kind,
            requester,
            spamd: self.spamd.clone(),
            classifier,
        };
        Ok(spam::assess(&self.config.spam, mail, raw, &context))
    }
}

/// Mail kept on its ticket as a note that nobody is told of and nothing answers: what the
/// stored message's anomaly and the ticket's event say.
pub(super) struct KeptAsNote {
    pub(super) anomaly: &'static str,
    pub(super) kind: &'static str,
    pub(super) detail: &'static str,
}

/// casemail's own mail come back (its loop header): answering it is how a loop starts.
pub(super) const OWN_MAIL: KeptAsNote = KeptAsNote {
    anomaly: "casemail's own mail came back (loop header); never answered",
    kind: "own_mail",
    detail: "mail casemail sent came back to the help address; kept as a note, not routed or answered",
};

/// An Outlook reaction ("… reacted to your message"): no answer and no request.
pub(super) const REACTION: KeptAsNote = KeptAsNote {
    anomaly: "an Outlook reaction, not an answer; never relayed or answered",
    kind: "reaction",
    detail: "an Outlook reaction arrived; kept as a note, nobody notified",
};

/// Marks a stored message as a note of the kind `what` says, with an event; the caller routes
/// nothing and answers nothing.
pub(super) fn file_as_note(
    tx: &WriteTx<'_>,
    now: Timestamp,
    ticket: &mut Ticket,
    mut message: StoredMessage,
    what: &KeptAsNote,
) -> store::TxResult<()> {
    message.direction = Direction::Note;
    message.anomalies.push(what.anomaly.to_owned());
    tx.put_message(&message, None)?;
    tx.add_event(
        ticket,
        &Event {
            at: now,
            actor: Actor::System,
            kind: what.kind.to_owned(),
            detail: what.detail.to_owned(),
        },
    )
}

/// The files of a message that were kept (under the size limit), with their bytes.
pub(super) fn attachment_bytes(mail: &InboundMail) -> Vec<AttachmentBytes> {
    mail.attachments
        .iter()
        .filter_map(|a| {
            Some(AttachmentBytes {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                content: a.content()?.to_vec(),
            })
        })
        .collect()
}

pub(super) fn blank_ticket(id: TicketId, requester: &str, now: Timestamp) -> Ticket {
    Ticket {
        id,
        status: Status::New,
        subject: String::new(),
        requester: requester.to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: now,
        updated: now,
        message_count: 0,
        event_count: 0,
    }
}

pub(super) fn file_duplicate(
    tx: &WriteTx<'_>,
    now: Timestamp,
    source: &Source,
    ticket: TicketId,
    seq: u32,
) -> store::TxResult<()> {
    let Some(mut message) = tx.message(ticket, seq)? else {
        return Err(store::Error::Inconsistent(format!(
            "dedupe index names missing message {ticket}/{seq}"
        ))
        .into());
    };
    if message.sources.contains(source) {
        // The same IMAP message again (a restart before acknowledging): nothing to record.
        return Ok(());
    }
    message.sources.push(source.clone());
    tx.put_message(&message, None)?;
    if let Some(mut record) = tx.ticket(ticket)? {
        let event = Event {
            at: now,
            actor: Actor::System,
            kind: "duplicate_seen".to_owned(),
            detail: format!("another copy in {}", source.mailbox),
        };
        tx.add_event(&mut record, &event)?;
        tx.put_ticket(&record)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // Each argument is a distinct fact about this one message.
pub(super) fn add_message(
    tx: &WriteTx<'_>,
    now: Timestamp,
    ticket: &mut Ticket,
    source: &Source,
    kind: FolderKind,
    mail: &InboundMail,
    raw: &[u8],
    sender: &str,
) -> store::TxResult<StoredMessage> {
    if mail.attachments.iter().any(|a| !a.kept) {
        ticket.flags.insert(TicketFlag::AttachmentTooLarge);
    }
    if mail.is_unreadable() {
        ticket.flags.insert(TicketFlag::Unreadable);
    }
    if kind == FolderKind::Junk {
        ticket.flags.insert(TicketFlag::SuspectedSpam);
    }
    if is_too_large(mail) {
        ticket.flags.insert(TicketFlag::TooLarge);
    }
    if mail.has_unusable_address() && ticket.requester == sender {
        ticket.flags.insert(TicketFlag::Unanswerable);
    }
    let message = stored_message(ticket, Direction::In, source, mail, sender, now);
    tx.put_message(&message, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.participants.insert(sender.to_owned());
    ticket.updated = now;
    Ok(message)
}

/// The stored form of a message, as the next message of `ticket`.
pub(super) fn stored_message(
    ticket: &Ticket,
    direction: Direction,
    source: &Source,
    mail: &InboundMail,
    sender: &str,
    now: Timestamp,
) -> StoredMessage {
    let attachments: Vec<AttachmentMeta> = mail
        .attachments
        .iter()
        .map(|a| AttachmentMeta {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            kept: a.kept,
        })
        .collect();
    StoredMessage {
        ticket: ticket.id,
        seq: ticket.message_count,
        direction,
        key: mail.key.clone(),
        message_id: mail.message_id.clone(),
        from: Some(sender.to_owned()),
        from_name: mail.from.as_ref().and_then(|f| f.name.clone()),
        to: mail.to.iter().map(|m| m.address.clone()).collect(),
        cc: mail.cc.iter().map(|m| m.address.clone()).collect(),
        subject: mail.subject.clone(),
        date: mail.date,
        received: now,
        in_reply_to: mail.in_reply_to.clone(),
        references: mail.references.clone(),
        text: mail.text.clone(),
        attachments,
        anomalies: mail.anomalies.iter().map(|a| a.to_string()).collect(),
        sources: vec![source.clone()],
    }
}

/// The address a message is from: From, else Return-Path. The Sender field never stands in
/// for From: it is as easy to write, and a message without From fails authentication anyway.
pub(crate) fn sender_address(mail: &InboundMail) -> String {
    mail.from
        .as_ref()
        .map(|m| m.address.clone())
        .or_else(|| mail.return_path.clone())
        .filter(|a| a.contains('@'))
        .map(|a| a.to_lowercase())
        .unwrap_or_else(|| crate::model::UNKNOWN_SENDER.to_owned())
}

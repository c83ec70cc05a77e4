use super::run::recover_in_flight;
use super::*;
use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::casework::threading;
use crate::ids::{TicketId, Uid, UidValidity};
use crate::mail::parse::{self, ParseLimits};
use crate::model::FolderKind;
use crate::model::{Cursor, Direction, Source, Status, TicketFlag};
use crate::store::Store;

fn source(uid: u32) -> Source {
    Source {
        mailbox: "INBOX".to_owned(),
        uidvalidity: UidValidity(9),
        uid: Uid(uid),
    }
}

#[test]
fn a_crash_counts_an_attempt_only_against_uncommitted_messages_in_flight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    store
        .write(|tx| {
            tx.set_in_flight(&[source(4), source(5), source(6)])?;
            tx.set_attempts(&source(6), 1)?;
            tx.set_cursor(
                "INBOX",
                &Cursor {
                    uidvalidity: UidValidity(9),
                    last_uid: Uid(4),
                },
            )
        })
        .expect("seed");

    let suspects = recover_in_flight(&store).expect("recover");

    assert_eq!(suspects, vec![source(5), source(6)]);
    assert_eq!(store.attempts(&source(4)).expect("attempts"), 0);
    assert_eq!(store.attempts(&source(5)).expect("attempts"), 1);
    assert_eq!(store.attempts(&source(6)).expect("attempts"), 2);
    assert!(store.in_flight().expect("in flight").is_empty());
    // A second recovery (nothing was in flight) blames nobody again.
    assert!(recover_in_flight(&store).expect("recover").is_empty());
}

#[test]
fn the_sender_falls_back_from_from_to_return_path_never_to_sender() {
    let limits = ParseLimits {
        max_attachment_size: 1024,
    };
    let with_from = parse::parse(
        b"From: A <A@Example.org>\r\nSubject: x\r\n\r\nhi\r\n",
        &limits,
    );
    assert_eq!(sender_address(&with_from), "a@example.org");
    let with_return_path = parse::parse(
        b"Return-Path: <b@example.org>\r\nSubject: x\r\n\r\nhi\r\n",
        &limits,
    );
    assert_eq!(sender_address(&with_return_path), "b@example.org");
    let with_sender = parse::parse(
        b"Sender: agent@example.org\r\nReturn-Path: <c@example.org>\r\nSubject: x\r\n\r\nhi\r\n",
        &limits,
    );
    assert_eq!(sender_address(&with_sender), "c@example.org");
    let nothing = parse::parse(b"Subject: x\r\n\r\nhi\r\n", &limits);
    assert_eq!(sender_address(&nothing), crate::model::UNKNOWN_SENDER);
}

use super::desk::Desk;

impl Desk {
    fn kinds(&self) -> Vec<crate::model::OutboxKind> {
        self.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

#[test]
fn a_refused_reply_planted_on_a_ticket_is_never_quoted_as_the_requesters_message() {
    let desk = Desk::new();
    desk.add_agent("amina");
    // Nobody is on duty (no rota): the ticket waits, unassigned.
    let request = "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nMy landlord wants me out by Friday.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a new ticket");
    };
    // A forged answer from the caseworker's address, without a reply token: refused and kept as
    // a note on the ticket.
    let forged = "From: Amina <amina@volunteers.example>\r\nTo: help@charity.example\r\nSubject: Re: [#1] Housing\r\nMessage-ID: <2@attacker.example>\r\n\r\nPLANTED: send your passport to the address below.\r\n";
    assert!(matches!(
        desk.file(2, FolderKind::Requests, forged),
        Outcome::ReplyRefused(..)
    ));
    assert_eq!(desk.store.messages(id).expect("messages").len(), 2);

    crate::casework::assign::assign_by_coordinator(
        &desk.store,
        &desk.config,
        id,
        &crate::ids::AgentId("amina".to_owned()),
        desk.now(),
    )
    .expect("assign");

    let notifications = desk.outbox_texts(crate::model::OutboxKind::Notification);
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    let text = &notifications[0];
    assert!(
        text.contains("My landlord wants me out by Friday."),
        "{text}"
    );
    assert!(!text.contains("PLANTED"), "{text}");
    assert!(
        text.contains("From:     Fatima <fatima@phone.example>"),
        "{text}"
    );
}

#[test]
fn a_notification_names_the_real_sender_of_a_message_not_from_the_requester() {
    let desk = Desk::new();
    desk.add_agent("amina");
    let request = "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nMy landlord wants me out by Friday.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a new ticket");
    };
    // Someone else who knows a Message-ID of the ticket writes into it, under her name.
    let stranger = "From: Fatima <stranger@elsewhere.example>\r\nTo: help@charity.example\r\nSubject: Re: Housing\r\nMessage-ID: <3@elsewhere.example>\r\nIn-Reply-To: <1@phone.example>\r\n\r\nIgnore my last message.\r\n";
    assert!(matches!(
        desk.file(2, FolderKind::Requests, stranger),
        Outcome::Added(..)
    ));
    crate::casework::assign::assign_by_coordinator(
        &desk.store,
        &desk.config,
        id,
        &crate::ids::AgentId("amina".to_owned()),
        desk.now(),
    )
    .expect("assign");
    let notifications = desk.outbox_texts(crate::model::OutboxKind::Notification);
    let text = notifications.last().expect("a notification");
    // The requester's own latest message is quoted, under her address.
    assert!(
        text.contains("My landlord wants me out by Friday."),
        "{text}"
    );
    assert!(!text.contains("Ignore my last message."), "{text}");
    assert!(text.contains("<fatima@phone.example>"), "{text}");
}

#[test]
fn an_acknowledgement_quotes_neither_the_subject_nor_the_name_a_sender_chose() {
    let desk = Desk::new();
    // Anyone can write under a victim's address: whatever they put in the subject and the
    // display name must not come back to her from the helpdesk.
    let forged = "From: =?utf-8?q?We_know_where_you_live?= <victim@phone.example>\r\nTo: help@charity.example\r\nSubject: Your husband has your new address\r\nMessage-ID: <1@attacker.example>\r\n\r\nx\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, forged) else {
        panic!("a new ticket");
    };
    let entry = desk
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .find(|e| e.kind == crate::model::OutboxKind::Acknowledgement)
        .expect("an acknowledgement");
    let raw = desk
        .store
        .outbox_raw(entry.id)
        .expect("raw")
        .expect("bytes");
    let read = parse::parse(&raw, &ParseLimits::default());
    let subject = read.subject.clone().unwrap_or_default();
    assert_eq!(subject, format!("[#{}] Your message to Helpdesk", id.0));
    assert_eq!(
        read.in_reply_to.first().map(|m| m.as_str()),
        Some("1@attacker.example"),
        "still threaded under the message it answers"
    );
    let to = read.to.first().expect("a recipient");
    assert_eq!(to.address, "victim@phone.example");
    assert_eq!(to.name, None);
    let shown = format!(
        "{subject}\n{}\n{}",
        read.text,
        String::from_utf8_lossy(&raw)
    );
    for chosen in ["husband", "new address", "We know", "We_know", "live"] {
        assert!(!shown.contains(chosen), "{chosen:?} in {shown}");
    }
    assert!(read.text.contains(&format!("#{}", id.0)), "{}", read.text);
}

#[test]
fn casemails_own_mail_coming_back_is_kept_as_a_closed_note_and_never_answered() {
    let desk = Desk::new();
    let raw = "From: Helpdesk <help@charity.example>\r\nTo: forwarder@phone.example\r\nSubject: [#1] Housing\r\nMessage-ID: <casemail.a.1.00@charity.example>\r\nAuto-Submitted: auto-replied\r\nX-Casemail-Loop: help@charity.example\r\n\r\nYour ticket number is: #1\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, raw) else {
        panic!("a ticket of its own");
    };
    let ticket = desk.store.ticket(id).expect("read").expect("ticket");
    assert_eq!(ticket.status, Status::Closed);
    let messages = desk.store.messages(id).expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].direction, Direction::Note);
    assert!(
        desk.store.raw(id, 0).expect("raw").is_some(),
        "raw bytes kept"
    );
    let events = desk.store.events(id).expect("events");
    assert!(events.iter().any(|e| e.kind == "own_mail"), "{events:?}");
    assert!(desk.kinds().is_empty(), "nothing is sent");
}

#[test]
fn a_new_request_is_acknowledged_in_the_same_transaction_and_junk_is_not() {
    let desk = Desk::new();
    let request = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    assert!(matches!(
        desk.file(1, FolderKind::Requests, request),
        Outcome::NewTicket(_)
    ));
    assert_eq!(
        desk.kinds(),
        vec![crate::model::OutboxKind::Acknowledgement]
    );
    let junk = "From: Jonas <jonas@phone.example>\r\nTo: help@charity.example\r\nSubject: Win\r\nMessage-ID: <2@phone.example>\r\n\r\nPrize.\r\n";
    let Outcome::NewTicket(id) = desk.file(2, FolderKind::Junk, junk) else {
        panic!("a ticket of its own");
    };
    assert_eq!(
        desk.store.ticket(id).expect("read").expect("ticket").status,
        Status::Spam
    );
    assert_eq!(desk.kinds().len(), 1, "spam is not acknowledged");
}

impl Desk {
    /// Files a request from `requester` and gives its ticket to `owner`.
    fn ticket_for(&self, uid: u32, requester: &str, owner: &str) -> TicketId {
        let raw = format!(
            "From: {requester}\r\nTo: help@charity.example\r\nSubject: Housing {uid}\r\nMessage-ID: <{uid}@phone.example>\r\n\r\nPlease help.\r\n"
        );
        let Outcome::NewTicket(id) = self.file(uid, FolderKind::Requests, &raw) else {
            panic!("a new ticket");
        };
        self.store
            .write(|tx| {
                let mut ticket = tx.ticket(id)?.expect("ticket");
                ticket.owner = Some(crate::ids::AgentId(owner.to_owned()));
                tx.put_ticket(&ticket)
            })
            .expect("assign");
        id
    }

    fn outbox_text(&self) -> Vec<(crate::model::OutboxKind, Vec<String>, String)> {
        self.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .map(|e| {
                let raw = self
                    .store
                    .outbox_raw(e.id)
                    .expect("raw")
                    .unwrap_or_default();
                let mail = parse::parse(&raw, &ParseLimits::default());
                (e.kind, e.recipients, mail.text)
            })
            .collect()
    }
}

#[test]
fn an_out_of_office_answer_without_a_token_marks_nobody_away_and_one_with_it_does() {
    use crate::model::Role;
    let desk = Desk::new();
    desk.add_agent_as("amina", Role::Agent);
    desk.add_agent_as("carol", Role::Coordinator);
    let id = desk.ticket_for(1, "r@phone.example", "amina");
    let forged = format!(
        "From: amina@volunteers.example\r\nTo: help@charity.example\r\nSubject: Automatic reply: [#{}] Housing\r\nMessage-ID: <ooo1@evil.example>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until 2099-12-31.\r\n",
        id.0
    );
    assert!(matches!(
        desk.file(2, FolderKind::Requests, &forged),
        Outcome::ReplyRefused(..)
    ));
    assert_eq!(desk.agent("amina").away, None, "nobody is marked away");
    let events = desk.store.events(id).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "auto_reply_noted"),
        "{events:?}"
    );
    assert!(
        desk.outbox_text().iter().any(|(_, to, text)| to
            == &["carol@volunteers.example".to_owned()]
            && text.contains("was not acted on")),
        "the coordinators are told"
    );
    let genuine = format!(
        "From: amina@volunteers.example\r\nTo: help+{}@charity.example\r\nSubject: Automatic reply: [#{}] Housing\r\nMessage-ID: <ooo2@volunteers.example>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until 2099-12-31.\r\n",
        desk.token(id, "amina"),
        id.0
    );
    desk.file(3, FolderKind::Requests, &genuine);
    assert!(
        desk.agent("amina").away.is_some(),
        "the real one marks away"
    );
}

/// A delivery report from `from` (with `return_path`) quoting `message_id`, naming `address`.
fn report(uid: u32, from: &str, return_path: &str, message_id: &str, address: &str) -> String {
    format!(
        "Return-Path: <{return_path}>\r\nFrom: {from}\r\nTo: help@charity.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn{uid}@relay.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{message_id}>\r\nSubject: x\r\n--b--\r\n"
    )
}

#[test]
fn a_delivery_report_suppresses_only_a_recipient_and_only_from_a_mail_system() {
    use crate::model::{OutboxKind, Role};
    let desk = Desk::new();
    desk.add_agent_as("amina", Role::Agent);
    let id = desk.ticket_for(1, "r@phone.example", "amina");
    // The acknowledgement went to the requester: a report about it may name her.
    let acknowledgement = desk
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .find(|e| e.kind == OutboxKind::Acknowledgement)
        .expect("acknowledged");
    let quoted = acknowledgement.message_id.as_str().to_owned();
    let suppressed = |address: &str| desk.store.suppression(address).expect("read").is_some();
    let daemon = "MAILER-DAEMON@relay.example";
    // A stranger's forged report.
    desk.file(
        2,
        FolderKind::Requests,
        &report(
            2,
            "mallory@evil.example",
            "mallory@evil.example",
            &quoted,
            "r@phone.example",
        ),
    );
    assert!(!suppressed("r@phone.example"));
    // A report naming someone the quoted message did not go to.
    desk.file(
        3,
        FolderKind::Requests,
        &report(3, daemon, "", &quoted, "victim@phone.example"),
    );
    assert!(!suppressed("victim@phone.example"));
    // A report naming a caseworker.
    desk.file(
        4,
        FolderKind::Requests,
        &report(4, daemon, "", &quoted, "amina@volunteers.example"),
    );
    assert!(!suppressed("amina@volunteers.example"));
    let events = desk.store.events(id).expect("events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "bounce_not_counted")
            .count(),
        3,
        "{events:?}"
    );
    assert!(
        desk.outbox_text().iter().any(|(_, to, text)| to
            == &["amina@volunteers.example".to_owned()]
            && text.contains("was not counted")),
        "the caseworker is told the report did not count"
    );
    // The real bounce of the requester's dead address still counts.
    assert!(matches!(
        desk.file(
            5,
            FolderKind::Requests,
            &report(5, daemon, "", &quoted, "r@phone.example")
        ),
        Outcome::Bounced(_)
    ));
    assert!(suppressed("r@phone.example"));
}

#[test]
fn the_same_answer_under_a_new_message_id_is_relayed_once() {
    use crate::model::{OutboxKind, Role};
    let desk = Desk::new();
    desk.add_agent_as("amina", Role::Agent);
    let id = desk.ticket_for(1, "r@phone.example", "amina");
    let answer = |uid: u32| {
        format!(
            "From: amina@volunteers.example\r\nTo: help+{}@charity.example\r\nSubject: Re: [#{}] Housing\r\nMessage-ID: <answer{uid}@volunteers.example>\r\n\r\nThe appointment is on Monday.\r\n",
            desk.token(id, "amina"),
            id.0
        )
    };
    assert!(matches!(
        desk.file(2, FolderKind::Requests, &answer(2)),
        Outcome::Relayed(_)
    ));
    assert!(matches!(
        desk.file(3, FolderKind::Requests, &answer(3)),
        Outcome::ReplyRefused(..)
    ));
    let relays = desk
        .outbox_text()
        .into_iter()
        .filter(|(kind, _, _)| *kind == OutboxKind::Relay)
        .count();
    assert_eq!(relays, 1);
    assert!(
        desk.outbox_text().iter().any(|(_, to, text)| to
            == &["amina@volunteers.example".to_owned()]
            && text.contains("not sent again")),
        "the caseworker is told"
    );
    let notes = desk
        .store
        .messages(id)
        .expect("messages")
        .into_iter()
        .filter(|m| m.direction == Direction::Note)
        .count();
    assert_eq!(notes, 1, "the copy is kept as a note");
}

#[test]
fn merge_needs_the_owner_of_both_tickets_or_a_coordinator() {
    use crate::model::Role;
    let desk = Desk::new();
    desk.add_agent_as("amina", Role::Agent);
    desk.add_agent_as("jonas", Role::Agent);
    desk.add_agent_as("carol", Role::Coordinator);
    let mine = desk.ticket_for(1, "r@phone.example", "amina");
    let other = desk.ticket_for(2, "s@phone.example", "jonas");
    let merge = |uid: u32, agent: &str, from: TicketId, into: TicketId| {
        format!(
            "From: {agent}@volunteers.example\r\nTo: help+{}@charity.example\r\nSubject: Re: [#{}] Housing\r\nMessage-ID: <merge{uid}@volunteers.example>\r\n\r\n#merge {}\r\n",
            desk.token(from, agent),
            from.0,
            into.0
        )
    };
    desk.file(3, FolderKind::Requests, &merge(3, "amina", mine, other));
    assert_eq!(
        desk.store
            .ticket(mine)
            .expect("read")
            .expect("ticket")
            .merged_into,
        None,
        "not merged into a ticket amina does not own"
    );
    assert!(
        desk.outbox_text().iter().any(|(_, to, text)| to
            == &["amina@volunteers.example".to_owned()]
            && text.contains("error: #merge: not merged into")),
        "amina is told why"
    );
    desk.store
        .write(|tx| {
            let mut ticket = tx.ticket(mine)?.expect("ticket");
            ticket.owner = Some(crate::ids::AgentId("carol".to_owned()));
            tx.put_ticket(&ticket)
        })
        .expect("give to carol");
    desk.file(4, FolderKind::Requests, &merge(4, "carol", mine, other));
    assert_eq!(
        desk.store
            .ticket(mine)
            .expect("read")
            .expect("ticket")
            .merged_into,
        Some(other),
        "a coordinator may"
    );
    // The merged ticket still knows which message came from which requester.
    let froms: Vec<Option<String>> = desk
        .store
        .messages(other)
        .expect("messages")
        .into_iter()
        .filter(|m| m.direction == Direction::In)
        .map(|m| m.from)
        .collect();
    assert!(
        froms.contains(&Some("r@phone.example".to_owned())),
        "{froms:?}"
    );
    assert!(
        froms.contains(&Some("s@phone.example".to_owned())),
        "{froms:?}"
    );
}

#[test]
fn notifications_warn_of_failed_authentication_and_strangers_joining_by_header() {
    use crate::model::{OutboxKind, Role};
    let desk = Desk::with("[auth]\ntrusted_authserv_ids = [\"mx.charity.example\"]\n");
    desk.add_agent_as("amina", Role::Agent);
    desk.store
        .write(|tx| {
            tx.set_rota("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"24:00\"\n")
        })
        .expect("rota");
    let id = desk.ticket_for(1, "r@phone.example", "amina");
    let notifications = || {
        desk.outbox_text()
            .into_iter()
            .filter(|(kind, _, _)| *kind == OutboxKind::Notification)
            .map(|(_, _, text)| text)
            .collect::<Vec<_>>()
    };
    let before = notifications().len();
    // The requester's own follow-up, authenticated: no warning.
    desk.file(2, FolderKind::Requests, "From: r@phone.example\r\nTo: help@charity.example\r\nSubject: Re: Housing 1\r\nMessage-ID: <2@phone.example>\r\nIn-Reply-To: <1@phone.example>\r\nAuthentication-Results: mx.charity.example; dmarc=pass header.from=phone.example\r\n\r\nMore.\r\n");
    let after_own = notifications();
    assert_eq!(after_own.len(), before + 1);
    assert!(!after_own.last().expect("one").contains("WARNING"));
    // Forged in the requester's name: dmarc=fail.
    desk.file(3, FolderKind::Requests, "From: r@phone.example\r\nTo: help@charity.example\r\nSubject: Re: Housing 1\r\nMessage-ID: <3@evil.example>\r\nIn-Reply-To: <1@phone.example>\r\nAuthentication-Results: mx.charity.example; dmarc=fail header.from=phone.example\r\n\r\nSend it to my new address.\r\n");
    let forged = notifications();
    assert!(
        forged
            .last()
            .expect("one")
            .contains("WARNING: this message failed sender authentication"),
        "{forged:?}"
    );
    // A stranger who knows a Message-ID of the ticket.
    desk.file(4, FolderKind::Requests, "From: mallory@evil.example\r\nTo: help@charity.example\r\nSubject: Re: Housing\r\nMessage-ID: <4@evil.example>\r\nReferences: <1@phone.example>\r\n\r\nI am her brother.\r\n");
    assert_eq!(
        desk.store
            .find_message_id(&crate::ids::MessageId::parse("4@evil.example").expect("id"))
            .expect("index"),
        Some(id)
    );
    let stranger = notifications();
    assert!(
        stranger
            .last()
            .expect("one")
            .contains("WARNING: this message joined the ticket by In-Reply-To/References"),
        "{stranger:?}"
    );
    // No acknowledgement went to the address the failing message named.
    let acknowledgements = desk
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .filter(|e| e.kind == OutboxKind::Acknowledgement)
        .count();
    assert_eq!(acknowledgements, 1);
}

#[test]
fn mail_failing_authentication_is_not_acknowledged() {
    let desk = Desk::with("[auth]\ntrusted_authserv_ids = [\"mx.charity.example\"]\n");
    let forged = "From: victim@phone.example\r\nTo: help@charity.example\r\nSubject: Help\r\nMessage-ID: <1@evil.example>\r\nAuthentication-Results: mx.charity.example; dmarc=fail header.from=phone.example\r\n\r\nHello.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, forged) else {
        panic!("a ticket of its own");
    };
    assert!(
        desk.kinds().is_empty(),
        "nothing goes to the forged address"
    );
    let messages = desk.store.messages(id).expect("messages");
    assert!(
        crate::casework::auth::warnings(&messages[0].anomalies)
            .iter()
            .any(|w| w.contains("failed sender authentication")),
        "{:?}",
        messages[0].anomalies
    );
}

#[test]
fn a_requester_casemail_cannot_write_to_gets_a_flagged_ticket_and_answers_are_kept_not_fatal() {
    let desk = Desk::new();
    desk.add_agent_as("amina", crate::model::Role::Agent);
    let request = "From: Taro <taro..yamada@docomo.ne.jp>\r\nTo: help@charity.example\r\nSubject: Visa\r\nMessage-ID: <1@docomo.ne.jp>\r\n\r\nPlease call 090-1234-5678.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a ticket of its own");
    };
    let ticket = desk.store.ticket(id).expect("read").expect("ticket");
    assert!(
        ticket.flags.contains(&TicketFlag::Unanswerable),
        "{:?}",
        ticket.flags
    );
    let events = desk.store.events(id).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "not_composed"),
        "the acknowledgement that could not be written is recorded: {events:?}"
    );
    assert!(
        !desk
            .kinds()
            .contains(&crate::model::OutboxKind::Acknowledgement)
    );

    let amina = crate::ids::AgentId("amina".to_owned());
    desk.store
        .write(|tx| {
            let mut ticket = tx.ticket(id)?.expect("ticket");
            ticket.owner = Some(amina.clone());
            ticket.status = Status::Open;
            tx.put_ticket(&ticket)
        })
        .expect("assign");
    let token = desk.secret.sign(id, &amina);
    let reply = format!(
        "From: Amina <amina@volunteers.example>\r\nTo: Help <help+{token}@charity.example>\r\nSubject: Re: [#{n}] Visa\r\nMessage-ID: <r1@volunteers.example>\r\n\r\nWe can meet on Monday.\r\n",
        n = id.0
    );
    // Filing returns normally: composing the answer failed, the process stage does not.
    desk.file(2, FolderKind::Requests, &reply);
    let messages = desk.store.messages(id).expect("messages");
    let last = messages.last().expect("the answer is filed");
    assert_eq!(last.direction, Direction::Note);
    assert!(last.text.contains("Monday"));
    let events = desk.store.events(id).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "reply_not_sent"),
        "{events:?}"
    );
    let outbox = desk.store.outbox().expect("outbox");
    assert!(
        !outbox
            .iter()
            .any(|e| e.kind == crate::model::OutboxKind::Relay),
        "nothing goes to the requester"
    );
    let told = outbox
        .iter()
        .find(|e| e.kind == crate::model::OutboxKind::Bounce)
        .expect("the caseworker is told");
    assert_eq!(told.recipients, vec!["amina@volunteers.example".to_owned()]);
    let body = String::from_utf8_lossy(&desk.store.outbox_raw(told.id).expect("raw").expect("raw"))
        .into_owned();
    assert!(body.contains("NOT sent"), "{body}");
}

#[test]
fn an_address_that_starts_with_a_victims_does_not_capture_her_next_message() {
    let desk = Desk::new();
    let attacker = "From: <victim@example.org/00000000000000000001@attacker.example>\r\nTo: help@charity.example\r\nSubject: Hello\r\nMessage-ID: <a1@attacker.example>\r\n\r\nhello\r\n";
    let Outcome::NewTicket(his) = desk.file(1, FolderKind::Requests, attacker) else {
        panic!("a ticket of its own");
    };
    let requester = desk
        .store
        .ticket(his)
        .expect("read")
        .expect("ticket")
        .requester;
    assert!(requester.starts_with("victim@example.org/"), "{requester}");
    let victim = "From: Victim <victim@example.org>\r\nTo: help@charity.example\r\nSubject: I need help\r\nMessage-ID: <v1@example.org>\r\n\r\nMy address is Kastanienallee 12.\r\n";
    let Outcome::NewTicket(hers) = desk.file(2, FolderKind::Requests, victim) else {
        panic!("her message opens a ticket of her own");
    };
    assert_ne!(his, hers);
    let ticket = desk.store.ticket(his).expect("read").expect("ticket");
    assert_eq!(ticket.message_count, 1, "nothing of hers in his ticket");
}

#[test]
fn a_notice_to_a_coordinator_casemail_cannot_write_to_is_recorded_on_the_ticket() {
    let desk = Desk::new();
    // Registered before addresses were checked for it: lettre parses it but builds no message.
    desk.store
        .write(|tx| {
            tx.put_agent(&crate::model::Agent {
                id: crate::ids::AgentId("carol".to_owned()),
                name: "Carol".to_owned(),
                emails: vec!["\"ca..rol\"@volunteers.example".to_owned()],
                role: crate::model::Role::Coordinator,
                max_open: None,
                away: None,
                created: Timestamp::UNIX_EPOCH,
                last_assigned: None,
            })
        })
        .expect("agent");
    let request = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a ticket of its own");
    };
    let events = desk.store.events(id).expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "not_composed" && e.detail.contains("coordinator carol")),
        "{events:#?}"
    );
}

#[test]
fn the_relay_gate_holds_an_empty_reply_and_relays_a_typed_one_scrubbed() {
    let desk = Desk::new();
    desk.add_agent_as("carol", crate::model::Role::Coordinator);
    let request = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a new ticket");
    };
    let token = desk
        .secret
        .sign(id, &crate::ids::AgentId("carol".to_owned()));
    let reply = |n: u32, answer: &str| {
        format!(
            "From: Carol <carol@volunteers.example>\r\nTo: help+{token}@charity.example\r\nSubject: Re: [#{}] Housing\r\nMessage-ID: <r{n}@volunteers.example>\r\n\r\n{answer}\r\n\r\nOn Monday, Helpdesk <help+{token}@charity.example> wrote:\r\n> {}\r\n> Ticket:   #{}\r\n> Status:   open\r\n",
            id.0,
            crate::mail::strip::REPLY_ABOVE,
            id.0
        )
    };
    let relays = |desk: &Desk| {
        desk.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .filter(|e| e.kind == crate::model::OutboxKind::Relay)
            .collect::<Vec<_>>()
    };

    // Nothing typed above the quote: held as a note, never relayed, the caseworker told.
    let outcome = desk.file(2, FolderKind::Requests, &reply(2, "Sent from my iPhone"));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    assert!(relays(&desk).is_empty(), "nothing for the requester");
    let messages = desk.store.messages(id).expect("messages");
    assert_eq!(messages.last().map(|m| m.direction), Some(Direction::Note));
    let told = desk
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .filter(|e| e.recipients == ["carol@volunteers.example"])
        .filter_map(|e| desk.store.outbox_raw(e.id).ok().flatten())
        .any(|raw| String::from_utf8_lossy(&raw).contains("NOT sent to the requester"));
    assert!(told, "the caseworker is told");
    let events = desk.store.events(id).expect("events");
    assert!(events.iter().any(|e| e.kind == "reply_held"), "{events:?}");

    // A typed answer goes, scrubbed of the caseworker's address in any case.
    let outcome = desk.file(
        3,
        FolderKind::Requests,
        &reply(3, "Write to CAROL@Volunteers.example any time."),
    );
    assert!(matches!(outcome, Outcome::Relayed(_)), "{outcome:?}");
    let [relay] = &relays(&desk)[..] else {
        panic!("one answer for the requester");
    };
    assert_eq!(relay.recipients, ["amina@phone.example"]);
    let raw = desk
        .store
        .outbox_raw(relay.id)
        .expect("raw")
        .expect("bytes");
    let read = parse::parse(&raw, &ParseLimits::default());
    assert!(
        read.text.contains("Write to [caseworker] any time."),
        "{}",
        read.text
    );
    assert!(!read.text.contains("Ticket:"), "no quote");
    assert!(
        !String::from_utf8_lossy(&raw)
            .to_lowercase()
            .contains("carol@")
    );
}

impl Desk {
    /// Files `raw` as fetch hands on a message over `max_message_size`: its header fields only.
    fn file_too_large(&self, uid: u32, raw: &str, size: u64) -> Outcome {
        let mut mail = parse::parse(raw.as_bytes(), &ParseLimits::default());
        mark_too_large(
            &mut mail,
            size,
            self.config.ingest.max_message_size,
            "Processed",
        );
        self.file_parsed(uid, FolderKind::Requests, &mail, raw.as_bytes())
    }
}

#[test]
fn a_message_too_large_to_fetch_is_a_flagged_ticket_that_says_where_the_message_is() {
    let desk = Desk::new();
    let header = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Scans of my papers\r\nMessage-ID: <big@phone.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
    let size = 40 * 1024 * 1024;
    let Outcome::NewTicket(id) = desk.file_too_large(1, header, size) else {
        panic!("a ticket of its own");
    };
    let ticket = desk.store.ticket(id).expect("read").expect("ticket");
    assert!(ticket.flags.contains(&TicketFlag::TooLarge), "{ticket:?}");
    assert_eq!(ticket.subject, "Scans of my papers");
    let messages = desk.store.messages(id).expect("messages");
    let message = &messages[0];
    assert!(
        message.text.contains("40.0 MiB, over the 25.0 MiB limit")
            && message.text.contains("in the folder \"Processed\""),
        "{}",
        message.text
    );
    assert!(
        message
            .anomalies
            .iter()
            .any(|a| a.contains("only its header fields were fetched")),
        "{:?}",
        message.anomalies
    );
    assert!(
        !message
            .anomalies
            .iter()
            .any(|a| a.contains("no readable text"))
    );
    assert_eq!(
        desk.store.raw(id, 0).expect("raw").as_deref(),
        Some(header.as_bytes()),
        "the header fields are kept as the raw message"
    );
}

#[test]
fn a_caseworker_reply_too_large_to_fetch_is_never_relayed() {
    let desk = Desk::new();
    let request = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(ticket) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a ticket of its own");
    };
    crate::casework::admin::add_agent(
        &desk.store,
        "help@charity.example",
        crate::casework::admin::NewAgent {
            id: "jonas".to_owned(),
            name: "Jonas".to_owned(),
            emails: vec!["jonas@charity.example".to_owned()],
            role: crate::model::Role::Agent,
            max_open: None,
        },
        Timestamp::from_second(1_800_000_000).expect("time"),
    )
    .expect("agent");
    desk.store
        .write(|tx| {
            let mut record = tx.ticket(ticket)?.expect("the ticket");
            record.owner = Some(crate::ids::AgentId("jonas".to_owned()));
            record.status = Status::Open;
            tx.put_ticket(&record)
        })
        .expect("assign");
    let token = desk
        .secret
        .sign(ticket, &crate::ids::AgentId("jonas".to_owned()));
    let reply = format!(
        "From: Jonas <jonas@charity.example>\r\nTo: help+{token}@charity.example\r\nSubject: Re: [#{}] Housing\r\nMessage-ID: <r1@charity.example>\r\n\r\n",
        ticket.0
    );
    let outcome = desk.file_too_large(2, &reply, 30 * 1024 * 1024);
    let whole = format!(
        "{}Here is the form.\r\n",
        reply.replace("<r1@charity.example>", "<r2@charity.example>")
    );
    assert!(
        !matches!(outcome, Outcome::Relayed(_)),
        "{outcome:?}: nothing of a reply casemail could not read goes to the requester"
    );
    assert!(
        !desk.kinds().contains(&crate::model::OutboxKind::Relay),
        "{:?}",
        desk.kinds()
    );
    // The same answer fetched whole is relayed: the token and sender were fine.
    assert_eq!(
        desk.file(3, FolderKind::Requests, &whole),
        Outcome::Relayed(ticket)
    );
}

#[test]
fn an_outlook_reaction_is_a_note_that_reopens_nothing_and_sends_nothing() {
    let desk = Desk::new();
    let request = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <r-1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a ticket of its own");
    };
    let sent_before = desk.kinds().len();
    let mut ticket = desk.store.ticket(id).expect("read").expect("ticket");
    ticket.status = Status::Closed;
    desk.store
        .write(|tx| tx.put_ticket(&ticket))
        .expect("close the ticket");

    let reaction = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Re: Housing\r\nMessage-ID: <r-2@phone.example>\r\nIn-Reply-To: <r-1@phone.example>\r\n\r\nAmina reacted to your message:\r\n\r\n\u{1F44D}\r\n";
    assert!(matches!(
        desk.file(2, FolderKind::Requests, reaction),
        Outcome::Added(added, _) if added == id
    ));
    let ticket = desk.store.ticket(id).expect("read").expect("ticket");
    assert_eq!(ticket.status, Status::Closed, "a reaction reopens nothing");
    let messages = desk.store.messages(id).expect("messages");
    assert_eq!(messages.last().expect("message").direction, Direction::Note);
    let events = desk.store.events(id).expect("events");
    assert!(events.iter().any(|e| e.kind == "reaction"), "{events:?}");
    assert_eq!(desk.kinds().len(), sent_before, "nothing is sent");

    // A real follow-up does reopen it.
    let answer = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Re: Housing\r\nMessage-ID: <r-3@phone.example>\r\nIn-Reply-To: <r-1@phone.example>\r\n\r\nI still need a room.\r\n";
    desk.file(3, FolderKind::Requests, answer);
    let ticket = desk.store.ticket(id).expect("read").expect("ticket");
    assert_eq!(ticket.status, Status::Open);
}

#[test]
fn an_answer_to_a_suppressed_address_is_never_shown_as_sent_and_can_be_retried() {
    use crate::ops::StoreCommand;
    let desk = Desk::new();
    desk.add_agent("carol");
    let request = "From: Amina <amina@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a new ticket");
    };
    crate::casework::assign::assign_by_coordinator(
        &desk.store,
        &desk.config,
        id,
        &crate::ids::AgentId("carol".to_owned()),
        desk.now(),
    )
    .expect("assign");
    desk.store
        .write(|tx| {
            crate::casework::mail_loops::suppress(
                tx,
                &desk.config.loops,
                "amina@phone.example",
                "refused with 550",
                Some(id),
                desk.now(),
            )
            .map(|_| ())
        })
        .expect("suppress");
    let token = desk
        .secret
        .sign(id, &crate::ids::AgentId("carol".to_owned()));
    let answer = format!(
        "From: carol <carol@volunteers.example>\r\nTo: help+{token}@charity.example\r\nSubject: Re: [#{}] Housing\r\nMessage-ID: <r2@volunteers.example>\r\n\r\nYour appointment is on Monday.\r\n",
        id.0
    );

    let outcome = desk.file(2, FolderKind::Requests, &answer);

    let Outcome::ReplyNotSent(_, reason) = &outcome else {
        panic!("not sent: {outcome:?}");
    };
    assert!(reason.contains("suppressed"), "{reason}");
    assert!(
        !desk.kinds().contains(&crate::model::OutboxKind::Relay),
        "nothing for the requester in the outbox"
    );
    let dead = desk.store.dead_letters().expect("dead letters");
    let [letter] = &dead[..] else {
        panic!("one dead letter: {dead:?}");
    };
    let show = |json: bool| {
        let mut out = Vec::new();
        crate::ops::execute(
            &desk.store,
            &desk.config,
            &StoreCommand::TicketShow { number: id.0, json },
            &mut out,
        )
        .expect("ticket show");
        String::from_utf8(out).expect("UTF-8")
    };
    let detail: serde_json::Value = serde_json::from_str(&show(true)).expect("JSON");
    let answer = &detail["messages"][1];
    assert_eq!(answer["direction"], "out");
    assert!(
        answer["not_sent"]
            .as_str()
            .is_some_and(|why| why.contains("suppressed")),
        "{answer:#}"
    );
    assert_eq!(detail["messages"][0]["not_sent"], serde_json::Value::Null);
    assert!(
        show(false).contains("--- out NOT SENT ("),
        "{}",
        show(false)
    );

    let run = |command: StoreCommand| {
        let mut out = Vec::new();
        let result = crate::ops::execute(&desk.store, &desk.config, &command, &mut out);
        (String::from_utf8(out).expect("UTF-8"), result)
    };
    let (listed, result) = run(StoreCommand::DeadletterList { json: true });
    result.expect("list");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed[0]["id"], letter.entry.id);
    assert_eq!(listed[0]["kind"], "relay");
    assert_eq!(listed[0]["ticket"], id.0);
    let (text, result) = run(StoreCommand::DeadletterList { json: false });
    result.expect("list");
    assert!(text.contains(&format!("ticket #{}", id.0)), "{text}");

    // While the address is suppressed a retry would only fail again.
    let (_, refused) = run(StoreCommand::DeadletterRetry {
        id: letter.entry.id,
    });
    let refused = format!("{:#}", refused.expect_err("refused"));
    assert!(refused.contains("suppression remove"), "{refused}");
    assert_eq!(desk.store.dead_letters().expect("dead").len(), 1);

    assert!(
        desk.store
            .remove_suppression("amina@phone.example")
            .expect("remove")
    );
    let (printed, result) = run(StoreCommand::DeadletterRetry {
        id: letter.entry.id,
    });
    result.expect("retry");
    assert!(printed.contains("back in the outbox"), "{printed}");
    assert!(desk.store.dead_letters().expect("dead").is_empty());
    let relays: Vec<_> = desk
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .filter(|e| e.kind == crate::model::OutboxKind::Relay)
        .collect();
    let [relay] = &relays[..] else {
        panic!("the answer is back in the outbox: {relays:?}");
    };
    assert_eq!(relay.id, letter.entry.id);
    assert_eq!(relay.message_id, letter.entry.message_id);
    assert_eq!(relay.attempts, 0);
    assert!(
        desk.store
            .outbox_raw(relay.id)
            .expect("raw")
            .is_some_and(|raw| String::from_utf8_lossy(&raw).contains("Monday"))
    );
    let events = desk.store.events(id).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "answer_not_sent"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e.kind == "dead_letter_retried"),
        "{events:#?}"
    );
    // Retrying it again finds nothing.
    let (_, again) = run(StoreCommand::DeadletterRetry {
        id: letter.entry.id,
    });
    assert!(again.is_err());
}

#[test]
fn a_reply_from_an_unregistered_address_is_named_to_the_coordinators_only() {
    let desk = Desk::new();
    desk.add_agent("amina");
    crate::casework::admin::add_agent(
        &desk.store,
        "help@charity.example",
        crate::casework::admin::NewAgent {
            id: "carol".to_owned(),
            name: "Carol".to_owned(),
            emails: vec!["carol@volunteers.example".to_owned()],
            role: crate::model::Role::Coordinator,
            max_open: None,
        },
        desk.now(),
    )
    .expect("coordinator");
    let request = "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a new ticket");
    };
    let token = desk
        .secret
        .sign(id, &crate::ids::AgentId("amina".to_owned()));
    // Amina answers from her phone's address, which nobody registered.
    let answer = format!(
        "From: Amina <amina.private@phone.example>\r\nTo: help+{token}@charity.example\r\nSubject: Re: [#{}] Housing\r\nMessage-ID: <r2@phone.example>\r\n\r\nI can see you on Monday.\r\n",
        id.0
    );
    let before = desk.store.outbox().expect("outbox").len();

    let outcome = desk.file(2, FolderKind::Requests, &answer);

    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    let queued: Vec<_> = desk
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .skip(before)
        .collect();
    assert!(
        queued
            .iter()
            .all(|e| e.recipients == ["carol@volunteers.example"]),
        "only the coordinator hears of it: {queued:?}"
    );
    let texts = desk.outbox_texts(crate::model::OutboxKind::Notification);
    assert!(
        texts.iter().any(
            |t| t.contains("a reply from amina.private@phone.example was refused")
                && t.contains(&format!("#{}", id.0))
        ),
        "{texts:#?}"
    );
}

#[test]
fn agent_addresses_and_details_change_in_place_without_rerouting() {
    use crate::ops::{RoleArg, StoreCommand};
    let desk = Desk::new();
    desk.add_agent("amina");
    let request = "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n\r\nPlease help.\r\n";
    let Outcome::NewTicket(id) = desk.file(1, FolderKind::Requests, request) else {
        panic!("a new ticket");
    };
    let amina = crate::ids::AgentId("amina".to_owned());
    crate::casework::assign::assign_by_coordinator(
        &desk.store,
        &desk.config,
        id,
        &amina,
        desk.now(),
    )
    .expect("assign");
    let run = |command: StoreCommand| {
        let mut out = Vec::new();
        let result = crate::ops::execute(&desk.store, &desk.config, &command, &mut out);
        result
            .map(|()| String::from_utf8(out).expect("UTF-8"))
            .map_err(|err| format!("{err:#}"))
    };
    let agent = || desk.store.agent(&amina).expect("read").expect("agent");
    let owner = || desk.store.ticket(id).expect("read").expect("ticket").owner;

    run(StoreCommand::AgentAddressAdd {
        id: "amina".to_owned(),
        address: " Amina.Phone@Example.org ".to_owned(),
    })
    .expect("address add");
    assert_eq!(
        agent().emails,
        ["amina@volunteers.example", "amina.phone@example.org"]
    );
    assert_eq!(owner(), Some(amina.clone()), "the ticket stays with her");
    // The same checks as `agent add`.
    desk.add_agent("bea");
    let taken = run(StoreCommand::AgentAddressAdd {
        id: "amina".to_owned(),
        address: "bea@volunteers.example".to_owned(),
    })
    .expect_err("taken");
    assert!(taken.contains("already belongs to agent bea"), "{taken}");
    assert!(
        run(StoreCommand::AgentAddressAdd {
            id: "amina".to_owned(),
            address: "help@charity.example".to_owned(),
        })
        .is_err()
    );
    assert!(
        run(StoreCommand::AgentAddressAdd {
            id: "nobody".to_owned(),
            address: "x@example.org".to_owned(),
        })
        .is_err()
    );

    run(StoreCommand::AgentAddressRemove {
        id: "amina".to_owned(),
        address: "AMINA@volunteers.example".to_owned(),
    })
    .expect("address remove");
    assert_eq!(agent().emails, ["amina.phone@example.org"]);
    let last = run(StoreCommand::AgentAddressRemove {
        id: "amina".to_owned(),
        address: "amina.phone@example.org".to_owned(),
    })
    .expect_err("the last address stays");
    assert!(last.contains("only address"), "{last}");
    assert!(
        run(StoreCommand::AgentAddressRemove {
            id: "amina".to_owned(),
            address: "bea@volunteers.example".to_owned(),
        })
        .is_err()
    );

    run(StoreCommand::AgentEdit {
        id: "amina".to_owned(),
        name: Some("Amina K.".to_owned()),
        max_open: Some(2),
        role: Some(RoleArg::Coordinator),
    })
    .expect("edit");
    let edited = agent();
    assert_eq!(edited.name, "Amina K.");
    assert_eq!(edited.max_open, Some(2));
    assert_eq!(edited.role, crate::model::Role::Coordinator);
    assert_eq!(owner(), Some(amina.clone()), "the ticket stays with her");
    assert!(
        run(StoreCommand::AgentEdit {
            id: "amina".to_owned(),
            name: None,
            max_open: None,
            role: None,
        })
        .is_err(),
        "nothing to change"
    );
    assert!(
        run(StoreCommand::AgentEdit {
            id: "amina".to_owned(),
            name: Some("\u{1b}[2J".to_owned()),
            max_open: None,
            role: None,
        })
        .is_err()
    );
    let events = desk.store.events(id).expect("events");
    assert!(
        !events
            .iter()
            .any(|e| e.kind.contains("released") || e.detail.contains("back to routing")),
        "{events:#?}"
    );
}

#[test]
fn a_quarantined_message_is_shown_and_filed_again_by_quarantine_retry() {
    use crate::ops::StoreCommand;
    let desk = Desk::new();
    let raw = "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nSubject: Housing\r\nMessage-ID: <q1@phone.example>\r\n\r\nPlease help.\r\n";
    let quarantined = Source {
        mailbox: "Archive/2026".to_owned(),
        uidvalidity: UidValidity(7),
        uid: Uid(42),
    };
    desk.store
        .write(|tx| {
            tx.put_quarantine(
                &crate::model::QuarantineEntry {
                    source: quarantined.clone(),
                    at: desk.now(),
                    attempts: 3,
                    reason: "parsing took longer than 10s".to_owned(),
                    size: raw.len() as u64,
                },
                raw.as_bytes(),
            )?;
            tx.set_cursor(
                "Archive/2026",
                &Cursor {
                    uidvalidity: UidValidity(8),
                    last_uid: Uid(5),
                },
            )
        })
        .expect("quarantine");
    let run = |command: StoreCommand| {
        let mut out = Vec::new();
        let result = crate::ops::execute(&desk.store, &desk.config, &command, &mut out);
        result
            .map(|()| String::from_utf8(out).expect("UTF-8"))
            .map_err(|err| format!("{err:#}"))
    };
    let listed: serde_json::Value =
        serde_json::from_str(&run(StoreCommand::QuarantineList { json: true }).expect("list"))
            .expect("JSON");
    assert_eq!(listed[0]["id"], "Archive/2026/7/42");
    let shown = run(StoreCommand::QuarantineShow {
        id: "Archive/2026/7/42".to_owned(),
        json: false,
    })
    .expect("show");
    assert!(
        shown.contains("Reason:      parsing took longer"),
        "{shown}"
    );
    assert!(shown.contains("Please help."), "{shown}");
    let shown: serde_json::Value = serde_json::from_str(
        &run(StoreCommand::QuarantineShow {
            id: "Archive/2026/7/42".to_owned(),
            json: true,
        })
        .expect("show"),
    )
    .expect("JSON");
    assert_eq!(shown["raw"], raw);
    assert_eq!(shown["attempts"], 3);
    for bad in ["INBOX", "INBOX/x/1", "INBOX/7/43"] {
        assert!(
            run(StoreCommand::QuarantineShow {
                id: bad.to_owned(),
                json: false
            })
            .is_err(),
            "{bad}"
        );
    }

    let filed = run(StoreCommand::QuarantineRetry {
        id: "Archive/2026/7/42".to_owned(),
    })
    .expect("retry");

    assert_eq!(filed, "Archive/2026/7/42 filed: new ticket #1\n");
    // The folder's cursor (a newer UIDVALIDITY) is left alone.
    assert_eq!(
        desk.store.cursor("Archive/2026").expect("cursor"),
        Some(Cursor {
            uidvalidity: UidValidity(8),
            last_uid: Uid(5),
        })
    );
    assert!(desk.store.quarantine().expect("quarantine").is_empty());
    let ticket = desk
        .store
        .ticket(TicketId(1))
        .expect("read")
        .expect("ticket");
    assert_eq!(ticket.requester, "fatima@phone.example");
    let messages = desk.store.messages(TicketId(1)).expect("messages");
    assert_eq!(messages[0].sources, [quarantined]);
    assert!(
        run(StoreCommand::QuarantineRetry {
            id: "Archive/2026/7/42".to_owned(),
        })
        .is_err(),
        "nothing left to retry"
    );
}

#[test]
fn ticket_list_filters_by_owner_status_and_date_and_shows_the_owner() {
    use crate::ops::{StatusFilter, StoreCommand};
    let desk = Desk::new();
    desk.add_agent("amina");
    for n in 1..=3_u32 {
        let request = format!(
            "From: R{n} <r{n}@phone.example>\r\nTo: help@charity.example\r\nSubject: Case {n}\r\nMessage-ID: <{n}@phone.example>\r\n\r\nPlease help.\r\n"
        );
        desk.file(n, FolderKind::Requests, &request);
    }
    crate::casework::assign::assign_by_coordinator(
        &desk.store,
        &desk.config,
        TicketId(2),
        &crate::ids::AgentId("amina".to_owned()),
        desk.now(),
    )
    .expect("assign");
    crate::casework::assign::set_status_by_coordinator(
        &desk.store,
        TicketId(3),
        crate::model::Status::Closed,
        desk.now(),
    )
    .expect("close");
    let list = |status: Option<StatusFilter>, owner: Option<&str>, since: Option<&str>| {
        let mut out = Vec::new();
        crate::ops::execute(
            &desk.store,
            &desk.config,
            &StoreCommand::TicketList {
                status,
                owner: owner.map(str::to_owned),
                since: since.map(str::to_owned),
                json: true,
            },
            &mut out,
        )
        .map(|()| {
            let listed: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
            listed
                .as_array()
                .expect("array")
                .iter()
                .map(|t| t["number"].as_u64().expect("number"))
                .collect::<Vec<_>>()
        })
        .map_err(|err| format!("{err:#}"))
    };
    assert_eq!(list(None, None, None), Ok(vec![1, 2, 3]));
    assert_eq!(list(None, Some("amina"), None), Ok(vec![2]));
    assert_eq!(list(Some(StatusFilter::Closed), None, None), Ok(vec![3]));
    assert_eq!(
        list(Some(StatusFilter::Closed), Some("amina"), None),
        Ok(vec![])
    );
    // The desk's clock is 2027-01-15T08:00:00Z.
    assert_eq!(list(None, None, Some("2027-01-15")), Ok(vec![1, 2, 3]));
    assert_eq!(list(None, None, Some("2027-01-16")), Ok(vec![]));
    assert_eq!(list(None, None, Some("2027-01-15T08:00:01Z")), Ok(vec![]));
    let bad = list(None, None, Some("last week")).expect_err("not a date");
    assert!(bad.contains("--since"), "{bad}");

    let mut out = Vec::new();
    crate::ops::execute(
        &desk.store,
        &desk.config,
        &StoreCommand::TicketList {
            status: None,
            owner: None,
            since: None,
            json: false,
        },
        &mut out,
    )
    .expect("list");
    let text = String::from_utf8(out).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].contains(" amina "), "{text}");
    assert!(lines[0].contains(" - "), "{text}");
}

#[test]
fn a_reused_message_id_files_the_new_message_and_a_true_second_copy_stays_one() {
    let desk = Desk::new();
    let first = "Received: from mx1.example by imap.charity.example; Mon, 7 Dec 2026 10:00:01 +0000\r\nDelivered-To: help@charity.example\r\nFrom: Amal <amal@example.org>\r\nTo: help@charity.example\r\nSubject: Form submission\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <form@webform.example>\r\n\r\nMy landlord changed the locks.\r\n";
    let Outcome::NewTicket(hers) = desk.file(1, FolderKind::Requests, first) else {
        panic!("the first message opens a ticket");
    };
    // The same message as the server delivered it again: other Received, Return-Path and X-
    // fields, in another folder. Still one message.
    let again = "Return-Path: <amal@example.org>\r\nReceived: from mx2.example by imap.charity.example; Mon, 7 Dec 2026 10:05:00 +0000\r\nX-Spam-Score: 0.3\r\nFrom: Amal <amal@example.org>\r\nTo: help@charity.example\r\nSubject: Form submission\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <form@webform.example>\r\n\r\nMy landlord changed the locks.\r\n";
    assert_eq!(
        desk.file(2, FolderKind::Junk, again),
        Outcome::Duplicate(hers)
    );
    // Another person's message through the same broken web form: same Message-ID.
    let other = "From: Bilal <bilal@example.net>\r\nTo: help@charity.example\r\nSubject: Form submission\r\nDate: Mon, 7 Dec 2026 11:00:00 +0000\r\nMessage-ID: <form@webform.example>\r\n\r\nI was refused at the hospital.\r\n";
    let Outcome::NewTicket(his) = desk.file(3, FolderKind::Requests, other) else {
        panic!("a different message with a stored Message-ID is filed on its own");
    };
    assert_ne!(his, hers, "not threaded by the reused Message-ID");
    let messages = desk.store.messages(his).expect("messages");
    let [message] = messages.as_slice() else {
        panic!("one message in his ticket: {messages:?}");
    };
    assert!(
        message
            .anomalies
            .iter()
            .any(|a| a.starts_with("reused Message-ID")),
        "{:?}",
        message.anomalies
    );
    let raw = desk.store.raw(his, 0).expect("raw").expect("raw kept");
    assert_eq!(raw, other.as_bytes());
    // A second copy of the second message is a duplicate of it, not of the first.
    assert_eq!(
        desk.file(4, FolderKind::Junk, other),
        Outcome::Duplicate(his)
    );
    // The Message-ID still names the ticket it was first seen in.
    let reply = "From: Amal <amal@example.org>\r\nTo: help@charity.example\r\nSubject: Re: Form submission\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\nMessage-ID: <r1@example.org>\r\nIn-Reply-To: <form@webform.example>\r\n\r\nAny news?\r\n";
    assert_eq!(
        desk.file(5, FolderKind::Requests, reply),
        Outcome::Added(hers, threading::Reason::Headers)
    );
    // The same requester reusing the id joins her ticket by the other rules.
    let hers_again = "From: Amal <amal@example.org>\r\nTo: help@charity.example\r\nSubject: Form submission\r\nDate: Mon, 7 Dec 2026 13:00:00 +0000\r\nMessage-ID: <form@webform.example>\r\n\r\nThey also took my post.\r\n";
    assert_eq!(
        desk.file(6, FolderKind::Requests, hers_again),
        Outcome::Added(hers, threading::Reason::OpenTicketOfRequester)
    );
    assert_eq!(desk.store.messages(hers).expect("messages").len(), 3);
}

#[test]
fn a_broken_display_name_keeps_the_requester_and_mail_without_from_never_joins_by_requester() {
    let desk = Desk::new();
    let broken =
        b"From: \xf0\x28\x8c\x28 <amal@example.org>\r\nTo: help@charity.example\r\nSubject: help\r\nMessage-ID: <b1@example.org>\r\n\r\nMy papers were taken.\r\n";
    let Outcome::NewTicket(hers) = desk.file_bytes(1, FolderKind::Requests, broken) else {
        panic!("a ticket");
    };
    let ticket = desk.store.ticket(hers).expect("read").expect("ticket");
    assert_eq!(ticket.requester, "amal@example.org");
    let next = "From: Amal <amal@example.org>\r\nTo: help@charity.example\r\nSubject: more\r\nMessage-ID: <b2@example.org>\r\n\r\nAnd my passport.\r\n";
    assert_eq!(
        desk.file(2, FolderKind::Requests, next),
        Outcome::Added(hers, threading::Reason::OpenTicketOfRequester)
    );
    // Mail without a From (or with one casemail cannot read) has no requester: each opens a
    // ticket of its own, whatever its envelope sender, and never joins another.
    let anonymous = [
        "To: help@charity.example\r\nSubject: hello\r\nMessage-ID: <n1@example.net>\r\n\r\nFirst.\r\n",
        "To: help@charity.example\r\nSubject: hello\r\nMessage-ID: <n2@example.net>\r\n\r\nSecond.\r\n",
        "Return-Path: <amal@example.org>\r\nTo: help@charity.example\r\nSubject: hello\r\nMessage-ID: <n3@example.net>\r\n\r\nThird.\r\n",
        "From: nobody\r\nTo: help@charity.example\r\nSubject: hello\r\nMessage-ID: <n4@example.net>\r\n\r\nFourth.\r\n",
    ];
    let mut seen = BTreeSet::from([hers]);
    for (uid, raw) in (3..).zip(anonymous) {
        let Outcome::NewTicket(id) = desk.file(uid, FolderKind::Requests, raw) else {
            panic!("a ticket of its own: {raw:?}");
        };
        assert!(seen.insert(id), "{raw:?} joined ticket {id}");
    }
}

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::mail::parse::{ParseLimits, parse};
use crate::model::{Status, Ticket};
use crate::process::sender_address;
use crate::store::Store;

const HELP: &str = "help@charity.example";

fn mail(extra: &str) -> InboundMail {
    let raw = format!(
        "From: Amina <amina@phone.example>\r\nTo: {HELP}\r\nSubject: Housing\r\nMessage-ID: <1@phone.example>\r\n{extra}\r\nPlease help.\r\n"
    );
    parse(raw.as_bytes(), &ParseLimits::default())
}

fn verdict(extra: &str) -> Option<NoAnswer> {
    let mail = mail(extra);
    no_answer(&mail, &sender_address(&mail), HELP)
}

#[test]
fn a_person_writing_may_be_answered() {
    assert_eq!(verdict(""), None);
    assert_eq!(verdict("Auto-Submitted: no\r\n"), None);
    assert_eq!(verdict("Precedence: first-class\r\n"), None);
    assert_eq!(verdict("Return-Path: <amina@phone.example>\r\n"), None);
}

#[test]
fn each_automatic_header_blocks_an_answer() {
    for value in [
        "auto-replied",
        "auto-generated",
        "auto-notified",
        "Auto-Replied",
    ] {
        assert!(
            matches!(
                verdict(&format!("Auto-Submitted: {value}\r\n")),
                Some(NoAnswer::AutoSubmitted(_))
            ),
            "{value}"
        );
    }
    for value in ["bulk", "list", "junk", "Bulk"] {
        assert_eq!(
            verdict(&format!("Precedence: {value}\r\n")),
            Some(NoAnswer::Precedence(value.to_ascii_lowercase()))
        );
    }
    assert_eq!(
        verdict("List-Id: Tenants <tenants.lists.example>\r\n"),
        Some(NoAnswer::MailingList)
    );
    assert_eq!(
        verdict("List-Unsubscribe: <mailto:leave@lists.example>\r\n"),
        Some(NoAnswer::MailingList)
    );
    assert_eq!(verdict("Return-Path: <>\r\n"), Some(NoAnswer::NullSender));
    assert_eq!(verdict("X-Autoreply: yes\r\n"), Some(NoAnswer::AutoReply));
    assert_eq!(
        verdict(&format!("X-Casemail-Loop: {HELP}\r\n")),
        Some(NoAnswer::OwnMail)
    );
}

#[test]
fn system_senders_are_never_answered() {
    for from in [
        "MAILER-DAEMON@relay.example",
        "postmaster@relay.example",
        "Mail Delivery System <mailer-daemon@relay.example>",
        "noreply@bank.example",
    ] {
        let raw = format!("From: {from}\r\nTo: {HELP}\r\nSubject: x\r\n\r\nx\r\n");
        let mail = parse(raw.as_bytes(), &ParseLimits::default());
        assert!(
            matches!(
                no_answer(&mail, &sender_address(&mail), HELP),
                Some(NoAnswer::SystemSender(_))
            ),
            "{from}"
        );
    }
    // The Return-Path names a bounce address while From looks personal.
    assert!(matches!(
        verdict("Return-Path: <MAILER-DAEMON@relay.example>\r\n"),
        Some(NoAnswer::SystemSender(_))
    ));
    // No usable sender at all.
    let raw = format!("To: {HELP}\r\nSubject: x\r\n\r\nx\r\n");
    let mail = parse(raw.as_bytes(), &ParseLimits::default());
    assert_eq!(
        no_answer(&mail, &sender_address(&mail), HELP),
        Some(NoAnswer::NullSender)
    );
}

const DSN: &str = "From: MAILER-DAEMON@relay.example\r\nTo: help@charity.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; Gone@Phone.example\r\nOriginal-Recipient: rfc822; alias@phone.example\r\nAction: failed\r\nStatus: 5.1.1 (user unknown)\r\n\r\nFinal-Recipient: rfc822; full@phone.example\r\nAction: delayed\r\nStatus: 4.2.2\r\n\r\nFinal-Recipient: rfc822;old@phone.example\r\nAction: failed\r\n--b--\r\n";

#[test]
fn delivery_reports_are_never_answered_and_name_the_hard_bounces() {
    let mail = parse(DSN.as_bytes(), &ParseLimits::default());
    assert_eq!(
        no_answer(&mail, &sender_address(&mail), HELP),
        Some(NoAnswer::DeliveryReport)
    );
    assert_eq!(
        hard_bounces(DSN.as_bytes()),
        vec![
            ("gone@phone.example".to_owned(), "5.1.1".to_owned()),
            ("old@phone.example".to_owned(), "failed".to_owned()),
        ],
        "the 4.x.x delay is not a hard bounce"
    );
    assert!(hard_bounces(b"Subject: hello\r\n\r\nStatus: 5.0.0\r\n").is_empty());
}

#[test]
fn own_mail_is_recognised_for_this_helpdesk_only() {
    assert!(is_own_mail(
        &mail("X-Casemail-Loop: Help@Charity.example\r\n"),
        HELP
    ));
    assert!(!is_own_mail(
        &mail("X-Casemail-Loop: help@other.example\r\n"),
        HELP
    ));
    assert!(!is_own_mail(&mail(""), HELP));
}

fn limits(per_hour: u32, per_day: u32) -> Loops {
    Loops {
        per_recipient_per_hour: per_hour,
        per_ticket_per_day: per_day,
        suppress_after_bounce: Duration::from_secs(3600),
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
}

#[test]
fn caps_hold_back_automatic_mail_but_never_a_caseworker_answer() {
    let capped = limits(3, 5);
    let uncapped = limits(0, 0);
    let limits = capped;
    let counts = |sent: u32, ticket: u32| Counts {
        recipients: vec![(sent, None)],
        ticket: Some(ticket),
    };
    let now = at(0);
    assert_eq!(
        decide(OutboxKind::Acknowledgement, &counts(2, 4), &limits, now),
        Admission::Send
    );
    assert!(matches!(
        decide(OutboxKind::Notification, &counts(3, 0), &limits, now),
        Admission::OverCap(_)
    ));
    assert!(matches!(
        decide(OutboxKind::Digest, &counts(0, 5), &limits, now),
        Admission::OverCap(_)
    ));
    assert_eq!(
        decide(OutboxKind::Relay, &counts(30, 50), &limits, now),
        Admission::Send
    );
    // 0 means no cap.
    assert_eq!(
        decide(
            OutboxKind::Notification,
            &counts(1000, 1000),
            &uncapped,
            now
        ),
        Admission::Send
    );
}

#[test]
fn a_suppressed_address_gets_nothing_until_the_suppression_ends() {
    let suppression = Suppression {
        address: "gone@phone.example".to_owned(),
        since: at(0),
        until: at(100),
        reason: "delivery status 5.1.1".to_owned(),
        ticket: None,
    };
    let counts = Counts {
        recipients: vec![(0, Some(suppression))],
        ticket: None,
    };
    let limits = limits(10, 10);
    for kind in [OutboxKind::Relay, OutboxKind::Acknowledgement] {
        assert!(matches!(
            decide(kind, &counts, &limits, at(99)),
            Admission::Suppressed(_)
        ));
        assert_eq!(decide(kind, &counts, &limits, at(100)), Admission::Send);
    }
}

fn ticket(id: u64) -> Ticket {
    Ticket {
        id: TicketId(id),
        status: Status::New,
        subject: "Housing".to_owned(),
        requester: "amina@phone.example".to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: at(0),
        updated: at(0),
        message_count: 0,
        event_count: 0,
    }
}

#[test]
fn admission_counts_in_the_store_per_hour_and_per_day_and_records_what_it_holds_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let limits = limits(2, 3);
    store.write(|tx| tx.put_ticket(&ticket(1))).expect("ticket");
    let admit_at = |recipient: &str, ticket: Option<u64>, now: Timestamp| {
        store
            .write(|tx| {
                admit(
                    tx,
                    &limits,
                    OutboxKind::Notification,
                    ticket.map(TicketId),
                    &[recipient.to_owned()],
                    now,
                )
            })
            .expect("admit")
    };
    // Two per recipient per hour; the count is by address, in any case.
    assert_eq!(admit_at("a@x.example", Some(1), at(0)), Admission::Send);
    assert_eq!(admit_at("A@x.example", Some(1), at(1)), Admission::Send);
    assert!(matches!(
        admit_at("a@x.example", Some(1), at(2)),
        Admission::OverCap(_)
    ));
    // A new hour starts a new count; the ticket's third message today is its last.
    let next_hour = at(3600);
    assert_eq!(admit_at("a@x.example", Some(1), next_hour), Admission::Send);
    assert!(matches!(
        admit_at("b@x.example", Some(1), next_hour),
        Admission::OverCap(_)
    ));
    // Mail without a ticket counts only against its recipient.
    assert_eq!(admit_at("b@x.example", None, next_hour), Admission::Send);
    let events = store.events(TicketId(1)).expect("events");
    let capped: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "mail_capped")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(capped.len(), 2, "{events:?}");
    assert!(
        capped
            .iter()
            .all(|d| d.starts_with("notification not sent"))
    );
    // Counters of past windows are pruned; the current ones stay.
    let (hour, day) = windows(next_hour);
    let pruned = store
        .prune_loop_records(hour, day, next_hour)
        .expect("prune");
    assert_eq!(pruned, 1, "only the first hour's counter for a@x.example");
}

#[test]
fn suppression_is_recorded_on_the_ticket_and_stops_every_kind_of_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let limits = limits(0, 0);
    store
        .write(|tx| {
            let mut record = ticket(7);
            tx.put_ticket(&record)?;
            suppress(
                tx,
                &limits,
                "Gone@Phone.example",
                "delivery status 5.1.1",
                Some(TicketId(7)),
                at(0),
            )?;
            // The caller's copy of the ticket is written back after the suppression: the event
            // must survive it.
            record.subject = "changed".to_owned();
            tx.put_ticket(&record)
        })
        .expect("suppress");
    let events = store.events(TicketId(7)).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "address_suppressed");
    assert_eq!(
        store
            .ticket(TicketId(7))
            .expect("read")
            .expect("ticket")
            .event_count,
        1
    );
    let listed = store.suppressions().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].address, "gone@phone.example");
    assert_eq!(listed[0].until, at(3600));
    let held = store
        .write(|tx| {
            admit(
                tx,
                &limits,
                OutboxKind::Relay,
                Some(TicketId(7)),
                &["gone@phone.example".to_owned()],
                at(10),
            )
        })
        .expect("admit");
    assert!(matches!(held, Admission::Suppressed(_)));
    assert!(
        store
            .remove_suppression("gone@phone.example")
            .expect("remove")
    );
    assert!(store.suppressions().expect("list").is_empty());
}

#[test]
fn one_acknowledgement_per_sender_per_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let take = |address: &str, now: Timestamp| {
        store
            .write(|tx| take_acknowledgement(tx, address, now))
            .expect("take")
    };
    assert!(take("amina@phone.example", at(0)));
    assert!(!take("Amina@Phone.example", at(60)));
    assert!(take("jonas@phone.example", at(60)));
    assert!(take("amina@phone.example", at(86_400)));
}

#[test]
fn templates_fill_placeholders_once_and_never_quote_the_mail() {
    let text = render_template(
        "#{ticket} {subject} {name} {helpdesk} {other}",
        42,
        "Help {name}\r\ndesk",
    );
    assert_eq!(text, "#42 [#42]  Help {name}  desk {other}");
}

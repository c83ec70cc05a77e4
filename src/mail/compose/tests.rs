use std::collections::BTreeSet;

use jiff::Timestamp;

use super::*;
use crate::ids::{AgentId, MailKey, TicketId};
use crate::mail::parse::{ParseLimits, parse};
use crate::model::{AttachmentMeta, Direction, Role, Status};

fn sender() -> Sender {
    Sender {
        address: "help@charity.example".to_owned(),
        name: "Charity Helpdesk".to_owned(),
    }
}

fn agent() -> Agent {
    Agent {
        id: AgentId("amina".to_owned()),
        name: "Amina".to_owned(),
        emails: vec!["amina@volunteers.example".to_owned()],
        role: Role::Agent,
        max_open: None,
        away: None,
        created: Timestamp::UNIX_EPOCH,
        last_assigned: None,
    }
}

fn ticket() -> Ticket {
    Ticket {
        id: TicketId(42),
        status: Status::New,
        subject: "Eviction\r\nBcc: evil@attacker.example".to_owned(),
        requester: "fatima@phone.example".to_owned(),
        requester_name: Some("فاطمة".to_owned()),
        owner: Some(AgentId("amina".to_owned())),
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: Timestamp::UNIX_EPOCH,
        message_count: 1,
        event_count: 0,
    }
}

fn message() -> StoredMessage {
    StoredMessage {
        ticket: TicketId(42),
        seq: 0,
        direction: Direction::In,
        key: MailKey::ContentHash("x".to_owned()),
        message_id: None,
        from: Some("fatima@phone.example".to_owned()),
        from_name: None,
        to: vec![],
        cc: vec![],
        subject: Some("Eviction".to_owned()),
        date: None,
        received: Timestamp::UNIX_EPOCH,
        in_reply_to: vec![],
        references: vec![],
        text: "My landlord wants me out by Friday.".to_owned(),
        attachments: vec![
            AttachmentMeta {
                name: Some("letter.jpg".to_owned()),
                content_type: "image/jpeg".to_owned(),
                size: 4,
                kept: true,
            },
            AttachmentMeta {
                name: Some("huge.pdf".to_owned()),
                content_type: "application/pdf".to_owned(),
                size: 90_000_000,
                kept: false,
            },
        ],
        anomalies: vec![],
        sources: vec![],
    }
}

#[test]
fn a_message_from_someone_else_is_shown_under_its_own_sender_not_the_requesters_name() {
    let mut other = message();
    other.from = Some("stranger@elsewhere.example".to_owned());
    other.from_name = None;
    other.text = "Ignore my last message.".to_owned();
    let out = ticket_notification(
        &sender(),
        &agent(),
        &ticket(),
        &other,
        &[],
        Why::FollowUp,
        &[],
        "cm.42.amina.0123456789abcdef01234567",
        7,
    )
    .expect("compose");
    let text = parse(&out.raw, &ParseLimits::default()).text;
    assert!(
        text.contains("From:     stranger@elsewhere.example\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Requester: fatima@phone.example (the message below is NOT from the requester)"
        ),
        "{text}"
    );
    assert!(
        !text.contains("فاطمة"),
        "the requester's name is not lent to a stranger: {text}"
    );
}

#[test]
fn a_composing_error_names_no_address() {
    let mut unusable = ticket();
    unusable.requester = "taro..yamada@docomo.ne.jp".to_owned();
    let err = acknowledgement(&sender(), &unusable, "Hello", None, &[], &[], 1)
        .expect_err("the address is refused by the mail builder");
    assert!(matches!(&err, Error::Address(a) if a == "taro..yamada@docomo.ne.jp"));
    assert!(!err.to_string().contains("taro"), "{err}");
    let mut nobody = agent();
    nobody.emails.clear();
    let err = coordinator_notice(&sender(), &nobody, &ticket(), "x", 1).expect_err("no address");
    assert_eq!(err.to_string(), "agent amina has no address");
}

#[test]
fn renderable_files_reach_the_caseworker_as_text_and_the_notification_says_so() {
    let page = AttachmentBytes {
        name: Some("letter.html".to_owned()),
        content_type: "text/html".to_owned(),
        content:
            b"<p>Eviction notice</p><img src=\"https://tracker.example/p.gif\"><script>x()</script>"
                .to_vec(),
    };
    let drawing = AttachmentBytes {
        name: Some("map.svg".to_owned()),
        content_type: "image/svg+xml".to_owned(),
        content: b"<svg><image href=\"https://tracker.example/i.png\"/></svg>".to_vec(),
    };
    let photo = AttachmentBytes {
        name: Some("letter.jpg".to_owned()),
        content_type: "image/jpeg".to_owned(),
        content: vec![0xFF, 0xD8, 0xFF, 0xD9],
    };
    let out = ticket_notification(
        &sender(),
        &agent(),
        &ticket(),
        &message(),
        &[page, drawing, photo],
        Why::Assigned,
        &[],
        "cm.42.amina.0123456789abcdef01234567",
        7,
    )
    .expect("compose");
    let read = parse(&out.raw, &ParseLimits::default());
    let files: Vec<(Option<&str>, &str)> = read
        .attachments
        .iter()
        .map(|a| (a.name.as_deref(), a.content_type.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            (Some("letter.html.txt"), "text/plain"),
            (Some("map.svg.txt"), "application/octet-stream"),
            (Some("letter.jpg"), "image/jpeg"),
        ]
    );
    let page_text = String::from_utf8_lossy(read.attachments[0].content().expect("kept"));
    assert!(page_text.contains("Eviction notice"), "{page_text}");
    assert!(!page_text.contains("tracker"), "{page_text}");
    assert!(read.text.contains("Files:    3 attached"), "{}", read.text);
    assert!(
        read.text
            .contains("- letter.html (a web page): sent as its text, letter.html.txt"),
        "{}",
        read.text
    );
    assert!(
        read.text.contains("- map.svg (an SVG image)"),
        "{}",
        read.text
    );
    let raw = String::from_utf8_lossy(&out.raw).to_lowercase();
    assert!(
        !raw.contains("text/html"),
        "no part a client renders: {raw}"
    );
    assert!(
        !raw.contains("image/svg"),
        "no part a client renders: {raw}"
    );
}

#[test]
fn a_notification_carries_the_ticket_the_text_and_the_files_to_one_agent() {
    let photo = AttachmentBytes {
        name: Some("letter.jpg".to_owned()),
        content_type: "image/jpeg".to_owned(),
        content: vec![0xFF, 0xD8, 0xFF, 0xD9],
    };
    let out = ticket_notification(
        &sender(),
        &agent(),
        &ticket(),
        &message(),
        &[photo],
        Why::Assigned,
        &[],
        "cm.42.amina.0123456789abcdef01234567",
        7,
    )
    .expect("compose");
    assert_eq!(out.recipients, ["amina@volunteers.example"]);
    assert_eq!(out.envelope_from, "help@charity.example");
    let read = parse(&out.raw, &ParseLimits::default());
    assert_eq!(read.message_id.as_ref(), Some(&out.message_id));
    let subject = read.subject.clone().unwrap_or_default();
    assert!(subject.starts_with("[#42] Eviction"), "{subject:?}");
    assert_eq!(read.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(
        read.headers.contains_key("x-casemail-loop"),
        "{:?}",
        read.headers
    );
    assert!(read.text.contains("My landlord wants me out by Friday."));
    assert!(read.text.contains("Ticket:   #42"));
    assert!(read.text.contains("1 too large to forward"));
    assert_eq!(read.attachments.len(), 1);
    assert_eq!(read.attachments[0].name.as_deref(), Some("letter.jpg"));
    let raw = String::from_utf8_lossy(&out.raw);
    assert!(
        !raw.contains("\r\nBcc:"),
        "header injection through the subject: {raw}"
    );
    assert!(read.cc.is_empty());
    assert_eq!(read.to.len(), 1);
}

#[test]
fn a_warning_comes_first_in_the_notification() {
    let out = ticket_notification(
        &sender(),
        &agent(),
        &ticket(),
        &message(),
        &[],
        Why::FollowUp,
        &["this message failed sender authentication (dmarc=fail)"],
        "cm.42.amina.0123456789abcdef01234567",
        7,
    )
    .expect("compose");
    let read = parse(&out.raw, &ParseLimits::default());
    let warning = read
        .text
        .find("WARNING: this message failed sender authentication (dmarc=fail)")
        .expect("the warning line is there");
    let heading = read
        .text
        .find("The requester wrote again")
        .expect("heading");
    assert!(warning < heading, "{}", read.text);
}

#[test]
fn message_ids_are_fixed_by_the_nonce_and_carry_the_helpdesk_domain() {
    let a = sender().message_id("n", 42, 1);
    let b = sender().message_id("n", 42, 1);
    let c = sender().message_id("n", 42, 2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.as_str().ends_with("@charity.example"));
}

#[test]
fn a_notification_about_a_requester_casemail_cannot_write_to_says_so() {
    let compose = |ticket: &Ticket| {
        let out = ticket_notification(
            &sender(),
            &agent(),
            ticket,
            &message(),
            &[],
            Why::Assigned,
            &[],
            "cm.42.amina.0123456789abcdef01234567",
            7,
        )
        .expect("compose");
        parse(&out.raw, &ParseLimits::default()).text
    };
    assert!(!compose(&ticket()).contains("NOT BY MAIL"));
    let mut flagged = ticket();
    flagged.flags.insert(crate::model::TicketFlag::Unanswerable);
    let text = compose(&flagged);
    assert!(text.contains("NOT BY MAIL"), "{text}");
    assert!(text.contains("Ask a coordinator"), "{text}");
}

#[test]
fn everything_casemail_sends_disallows_outlook_reactions() {
    let notification = ticket_notification(
        &sender(),
        &agent(),
        &ticket(),
        &message(),
        &[],
        Why::Assigned,
        &[],
        "cm.42.amina.0123456789abcdef01234567",
        7,
    )
    .expect("compose");
    let notice = plain_to(
        &sender(),
        "carol@charity.example",
        "Digest",
        "Hi".to_owned(),
        "d",
        1,
    )
    .expect("compose");
    let cleared = crate::casework::gate::Cleared {
        text: "Hello".to_owned(),
        attachments: Vec::new(),
        removed: Vec::new(),
    };
    let secrets = crate::casework::gate::Secrets::new(["amina@volunteers.example"], []);
    let answer = relay_to_requester(&sender(), &ticket(), &cleared, None, &[], &secrets, 3)
        .expect("compose");
    let acknowledgement =
        acknowledgement(&sender(), &ticket(), "We got it", None, &[], &[], 4).expect("compose");
    for out in [notification, notice, answer, acknowledgement] {
        let raw = String::from_utf8_lossy(&out.raw).into_owned();
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        assert!(
            head.contains("\r\nX-MS-Reactions: disallow\r\n"),
            "no X-MS-Reactions header in:\n{head}"
        );
    }
}

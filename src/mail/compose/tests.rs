use std::collections::BTreeSet;

use jiff::Timestamp;

use super::*;
use crate::ids::{AgentId, MailKey, TicketId};
use crate::mail::parse::{ParseLimits, parse};
use crate::model::{AttachmentMeta, Direction, Role, Status};

/// The time of the filing that composes the message.
fn now() -> Timestamp {
    Timestamp::constant(1_700_000_000, 0)
}

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
        now(),
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
    let err = acknowledgement(&sender(), &unusable, "Hello", None, &[], &[], 1, now())
        .expect_err("the address is refused by the mail builder");
    assert!(matches!(&err, Error::Address(a) if a == "taro..yamada@docomo.ne.jp"));
    assert!(!err.to_string().contains("taro"), "{err}");
    let mut nobody = agent();
    nobody.emails.clear();
    let err =
        coordinator_notice(&sender(), &nobody, &ticket(), "x", 1, now()).expect_err("no address");
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
        now(),
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
        now(),
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
        now(),
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
            now(),
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
        now(),
    )
    .expect("compose");
    let notice = plain_to(
        &sender(),
        "carol@charity.example",
        "Digest",
        "Hi".to_owned(),
        "d",
        1,
        now(),
    )
    .expect("compose");
    let cleared = crate::casework::gate::Cleared {
        text: "Hello".to_owned(),
        attachments: Vec::new(),
        removed: Vec::new(),
    };
    let secrets = crate::casework::gate::Secrets::new(["amina@volunteers.example"], []);
    let answer = relay_to_requester(
        &sender(),
        &ticket(),
        &cleared,
        None,
        &[],
        &secrets,
        3,
        now(),
    )
    .expect("compose");
    let acknowledgement =
        acknowledgement(&sender(), &ticket(), "We got it", None, &[], &[], 4, now())
            .expect("compose");
    for out in [notification, notice, answer, acknowledgement] {
        let raw = String::from_utf8_lossy(&out.raw).into_owned();
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        assert!(
            head.contains("\r\nX-MS-Reactions: disallow\r\n"),
            "no X-MS-Reactions header in:\n{head}"
        );
    }
}

/// The header block of a composed message, as text.
fn head_of(raw: &[u8]) -> String {
    let raw = String::from_utf8_lossy(raw);
    raw.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

/// Every kind of message this module composes, at `at`, with a file on the ones that carry
/// files, so that they are multipart.
fn every_kind_at(at: Timestamp) -> Vec<Outgoing> {
    let photo = AttachmentBytes {
        name: Some("letter.jpg".to_owned()),
        content_type: "image/jpeg".to_owned(),
        content: vec![0xFF, 0xD8, 0xFF, 0xD9],
    };
    let cleared = crate::mail::compose::Cleared {
        text: "Hello".to_owned(),
        attachments: vec![photo.clone()],
        removed: Vec::new(),
    };
    let secrets = crate::mail::scrub::Secrets::new(["amina@volunteers.example"], []);
    vec![
        ticket_notification(
            &sender(),
            &agent(),
            &ticket(),
            &message(),
            &[photo],
            Why::Assigned,
            &[],
            "cm.42.amina.0123456789abcdef01234567",
            7,
            at,
        )
        .expect("compose"),
        coordinator_notice(&sender(), &agent(), &ticket(), "handed over", 8, at).expect("compose"),
        plain_to(
            &sender(),
            "carol@charity.example",
            "Digest",
            "Hi".to_owned(),
            "d",
            9,
            at,
        )
        .expect("compose"),
        acknowledgement(&sender(), &ticket(), "We got it", None, &[], &[], 10, at)
            .expect("compose"),
        relay_to_requester(&sender(), &ticket(), &cleared, None, &[], &secrets, 11, at)
            .expect("compose"),
    ]
}

#[test]
fn composing_the_same_message_twice_gives_the_same_bytes_dated_at_the_time_passed() {
    let first = every_kind_at(now());
    let second = every_kind_at(now());
    assert_eq!(first.len(), second.len());
    for (one, other) in first.iter().zip(&second) {
        assert_eq!(
            String::from_utf8_lossy(&one.raw),
            String::from_utf8_lossy(&other.raw),
            "two composes of the same message differ"
        );
        let head = head_of(&one.raw);
        // 1_700_000_000 seconds after the epoch.
        assert!(
            head.contains("\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n")
                || head.starts_with("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"),
            "the Date header is not the time passed:\n{head}"
        );
        let read = parse(&one.raw, &ParseLimits::default());
        assert_eq!(read.date, Some(now()), "{head}");
    }
    // Another time is another Date header, and nothing else changes.
    let later = every_kind_at(Timestamp::constant(1_700_000_060, 0));
    for (one, other) in first.iter().zip(&later) {
        let one = String::from_utf8_lossy(&one.raw).replace("22:13:20", "22:14:20");
        assert_eq!(one, String::from_utf8_lossy(&other.raw));
    }
}

#[test]
fn a_multipart_boundary_is_a_hash_of_the_message_and_not_in_its_parts() {
    let multipart: Vec<Outgoing> = every_kind_at(now())
        .into_iter()
        .filter(|out| head_of(&out.raw).contains("multipart/mixed"))
        .collect();
    assert_eq!(
        multipart.len(),
        2,
        "the notification and the answer carry a file"
    );
    let boundary_of = |out: &Outgoing| {
        let head = head_of(&out.raw);
        let start = head.find("boundary=\"").expect("a boundary") + "boundary=\"".len();
        head[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let boundaries: Vec<String> = multipart.iter().map(boundary_of).collect();
    for (out, boundary) in multipart.iter().zip(&boundaries) {
        assert_eq!(boundary.len(), 64, "{boundary}");
        assert!(
            boundary.chars().all(|c| c.is_ascii_hexdigit()),
            "{boundary}"
        );
        let raw = String::from_utf8_lossy(&out.raw);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        // The delimiter lines and the closing one, and nowhere else.
        let parts = body.matches(boundary.as_str()).count();
        assert_eq!(parts, 3, "{raw}");
    }
    assert_ne!(boundaries[0], boundaries[1], "two messages, one boundary");
    // Another message (another nonce, so another Message-ID) has another boundary.
    let photo = AttachmentBytes {
        name: Some("letter.jpg".to_owned()),
        content_type: "image/jpeg".to_owned(),
        content: vec![0xFF, 0xD8, 0xFF, 0xD9],
    };
    let other = ticket_notification(
        &sender(),
        &agent(),
        &ticket(),
        &message(),
        &[photo],
        Why::Assigned,
        &[],
        "cm.42.amina.0123456789abcdef01234567",
        70,
        now(),
    )
    .expect("compose");
    assert_ne!(boundary_of(&other), boundaries[0]);
}

#[test]
fn a_time_outside_what_a_date_header_can_hold_is_held_to_its_range() {
    for (at, date) in [
        (Timestamp::MIN, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"),
        (
            Timestamp::constant(-1, 0),
            "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n",
        ),
        (Timestamp::MAX, "Date: Thu, 30 Dec 9999 22:00:00 +0000\r\n"),
    ] {
        for out in every_kind_at(at) {
            let head = head_of(&out.raw);
            assert!(head.contains(date), "{at}: {head}");
        }
    }
}

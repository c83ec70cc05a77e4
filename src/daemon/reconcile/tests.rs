use super::*;

fn missing(folder: &str, uid: u32, message_id: Option<&str>, subject: Option<&str>) -> Missing {
    Missing {
        folder: folder.to_owned(),
        uidvalidity: 7,
        uid,
        message_id: message_id.map(str::to_owned),
        subject: subject.map(str::to_owned),
    }
}

#[test]
fn the_message_id_is_read_from_the_header_only() {
    let raw = b"From: a@example.org\r\nMessage-ID:\r\n <Abc.1@Example.ORG>\r\nSubject: x\r\n\r\nMessage-ID: <body@example.org>\r\n";
    assert_eq!(
        crate::mail::parse::header_message_id(raw).map(|id| id.as_str().to_owned()),
        Some("Abc.1@example.org".to_owned())
    );
    let lf_only = b"message-id: <one@example.org>\nSubject: x\n\nbody\n";
    assert_eq!(
        crate::mail::parse::header_message_id(lf_only).map(|id| id.as_str().to_owned()),
        Some("one@example.org".to_owned())
    );
    assert_eq!(
        crate::mail::parse::header_message_id(b"Subject: x\r\n\r\nMessage-ID: <b@x>\r\n"),
        None
    );
    assert_eq!(
        crate::mail::parse::header_message_id(b"\xff\xfe garbage"),
        None
    );
}

#[test]
fn the_notice_lists_each_message_with_escaped_header_text() {
    let first = missing(
        "INBOX",
        12,
        Some("a@example.org"),
        Some("Help\u{202e}gpj.exe\r\nX: y"),
    );
    let second = missing("Processed", 3, None, None);
    let (subject, body) = notice_text(&[&first, &second], &["INBOX", "Support"]);
    assert_eq!(
        subject,
        "casemail: 2 message(s) in the mailbox are in no ticket"
    );
    assert!(
        body.contains("  Folder:     INBOX\n  UID:        12\n  Message-ID: <a@example.org>\n")
    );
    assert!(
        body.contains("Subject:    Help\\u{202e}gpj.exe X: y\n"),
        "{body}"
    );
    assert!(body.contains(
        "  Folder:     Processed\n  UID:        3\n  Message-ID: (none)\n  Subject:    (none)\n"
    ));
    assert!(body.contains("into a watched folder (INBOX, Support) again"));
}

#[test]
fn a_long_list_is_cut_in_the_notice() {
    let all: Vec<Missing> = (1..=NOTICE_LIST_LIMIT as u32 + 5)
        .map(|uid| missing("INBOX", uid, None, None))
        .collect();
    let refs: Vec<&Missing> = all.iter().collect();
    let (_, body) = notice_text(&refs, &["INBOX"]);
    assert_eq!(body.matches("  Folder:").count(), NOTICE_LIST_LIMIT);
    assert!(body.contains("… and 5 more"));
}

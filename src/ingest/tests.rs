use super::*;

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
fn the_sender_falls_back_from_from_to_sender_to_return_path() {
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
    let nothing = parse::parse(b"Subject: x\r\n\r\nhi\r\n", &limits);
    assert_eq!(sender_address(&nothing), UNKNOWN_SENDER);
}

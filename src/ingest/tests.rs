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

/// A store, secret and config in a temporary directory, for filing messages directly.
struct Desk {
    _dir: tempfile::TempDir,
    store: Store,
    secret: Secret,
    config: Config,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("casemail.toml");
        std::fs::write(
            &path,
            format!(
                "[helpdesk]\naddress = \"help@charity.example\"\nstate_dir = {:?}\n[imap]\nhost = \"imap.charity.example\"\nusername = \"help\"\npassword = \"x\"\n[smtp]\nhost = \"smtp.charity.example\"\n",
                dir.path().to_string_lossy()
            ),
        )
        .expect("write config");
        let config =
            crate::config::load_with_env(&path, &std::collections::HashMap::new()).expect("config");
        let store = Store::open(dir.path()).expect("store");
        let secret = Secret::load_or_create(dir.path()).expect("secret");
        Desk {
            _dir: dir,
            store,
            secret,
            config,
        }
    }

    fn file(&self, uid: u32, kind: FolderKind, raw: &str) -> Outcome {
        let team = Team::load(&self.store).expect("team");
        let mail = parse::parse(raw.as_bytes(), &ParseLimits::default());
        let filing = Filing {
            store: &self.store,
            secret: &self.secret,
            config: &self.config,
            now: Timestamp::from_second(1_800_000_000).expect("time"),
            nonce: u64::from(uid),
            spamd: crate::spam::SpamdAnswer::NotAsked,
        };
        filing
            .file(
                &team,
                &source(uid),
                kind,
                Arrival::Live,
                &mail,
                raw.as_bytes(),
            )
            .expect("file")
            .0
    }

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

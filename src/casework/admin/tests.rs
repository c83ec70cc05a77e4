use super::*;

fn new(id: &str, emails: &[&str]) -> NewAgent {
    NewAgent {
        id: id.to_owned(),
        name: "Amina K.".to_owned(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        role: Role::Agent,
        max_open: Some(4),
    }
}

#[test]
fn agents_are_validated_and_addresses_are_unique() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now = Timestamp::UNIX_EPOCH;
    let help = "help@charity.example";
    let amina = add_agent(
        &store,
        help,
        new(
            "amina",
            &["Amina@Volunteers.Example", "amina.k@gmail.example"],
        ),
        now,
    )
    .expect("add amina");
    assert_eq!(
        amina.emails,
        ["amina@volunteers.example", "amina.k@gmail.example"]
    );

    let taken = add_agent(
        &store,
        help,
        new("jonas", &["AMINA@volunteers.example"]),
        now,
    );
    assert!(
        matches!(taken, Err(Error::AddressTaken { .. })),
        "{taken:?}"
    );
    let twice = add_agent(
        &store,
        help,
        new("amina", &["other@volunteers.example"]),
        now,
    );
    assert!(matches!(twice, Err(Error::AgentExists(_))), "{twice:?}");
    let bad_id = add_agent(&store, help, new("Amina K", &["x@volunteers.example"]), now);
    assert!(matches!(bad_id, Err(Error::InvalidId(_))), "{bad_id:?}");
    let bad_address = add_agent(&store, help, new("jonas", &["not an address"]), now);
    assert!(
        matches!(bad_address, Err(Error::InvalidAddress { .. })),
        "{bad_address:?}"
    );
    // lettre parses a quoted local part but cannot build a message to it.
    let quoted = add_agent(
        &store,
        help,
        new("jonas", &["\"jo..nas\"@volunteers.example"]),
        now,
    );
    assert!(
        matches!(quoted, Err(Error::InvalidAddress { .. })),
        "{quoted:?}"
    );
    let helpdesk = add_agent(&store, help, new("jonas", &["HELP@charity.example"]), now);
    assert!(
        matches!(helpdesk, Err(Error::HelpdeskAddress(_))),
        "{helpdesk:?}"
    );
    assert_eq!(store.agents().expect("agents").len(), 1);
}

#[test]
fn away_with_an_end_date_ends_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now: Timestamp = "2026-11-22T10:00:00Z".parse().expect("time");
    let until: Timestamp = "2026-11-25T00:00:00Z".parse().expect("time");
    add_agent(
        &store,
        "help@x.example",
        new("amina", &["a@volunteers.example"]),
        now,
    )
    .expect("add");
    let id = AgentId("amina".to_owned());
    set_away(&store, &id, Some(until), now).expect("away");
    let agent = store.agent(&id).expect("read").expect("agent");
    assert!(is_away(&agent, now));
    assert!(!is_away(&agent, until));
    let back = set_back(&store, &id).expect("back");
    assert!(!is_away(&back, now));
    assert!(matches!(
        set_back(&store, &AgentId("nobody".to_owned())),
        Err(Error::UnknownAgent(_))
    ));
}

#[test]
fn merging_moves_messages_events_and_indexes_and_future_mail_follows() {
    use std::collections::BTreeSet;

    use crate::casework::threading::{self, Hints, Inbound, OpenTicketRule, Placement};
    use crate::ids::{MailKey, MessageId};
    use crate::model::{Direction, Status, StoredMessage, Ticket};

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now = Timestamp::UNIX_EPOCH;
    let ticket = |id: u64, requester: &str| Ticket {
        id: TicketId(id),
        status: Status::Open,
        subject: format!("case {id}"),
        requester: requester.to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::from([requester.to_owned()]),
        flags: BTreeSet::new(),
        created: now,
        updated: now,
        message_count: 0,
        event_count: 0,
    };
    let message = |id: u64, seq: u32, mid: &str| StoredMessage {
        ticket: TicketId(id),
        seq,
        direction: Direction::In,
        key: MailKey::MessageId(MessageId::parse(mid).expect("id")),
        message_id: MessageId::parse(mid),
        from: None,
        from_name: None,
        to: vec![],
        cc: vec![],
        subject: None,
        date: None,
        received: now,
        in_reply_to: vec![],
        references: vec![],
        text: mid.to_owned(),
        attachments: vec![],
        anomalies: vec![],
        sources: vec![],
    };
    store
        .write(|tx| {
            let mut a = ticket(1, "a@phone.example");
            let mut b = ticket(2, "b@phone.example");
            tx.put_message(&message(1, 0, "a0@x"), Some(b"raw a0"))?;
            tx.put_message(&message(1, 1, "a1@x"), Some(b"raw a1"))?;
            a.message_count = 2;
            tx.put_message(&message(2, 0, "b0@x"), Some(b"raw b0"))?;
            b.message_count = 1;
            let event = Event {
                at: now,
                actor: Actor::System,
                kind: "created".to_owned(),
                detail: String::new(),
            };
            tx.add_event(&mut a, &event)?;
            tx.put_ticket(&a)?;
            tx.put_ticket(&b)
        })
        .expect("seed");

    merge(&store, TicketId(1), TicketId(2), now).expect("merge");

    let texts: Vec<String> = store
        .messages(TicketId(2))
        .expect("messages")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["b0@x", "a0@x", "a1@x"]);
    assert_eq!(
        store.raw(TicketId(2), 2).expect("raw").as_deref(),
        Some(&b"raw a1"[..])
    );
    assert!(store.messages(TicketId(1)).expect("messages").is_empty());
    let a = store.ticket(TicketId(1)).expect("read").expect("a");
    assert_eq!(
        (a.status, a.merged_into),
        (Status::Closed, Some(TicketId(2)))
    );
    let key = MailKey::MessageId(MessageId::parse("a1@x").expect("id"));
    assert_eq!(store.find_key(&key).expect("key"), Some((TicketId(2), 2)));
    let b = store.ticket(TicketId(2)).expect("read").expect("b");
    assert!(b.participants.contains("a@phone.example"));
    let kinds: Vec<String> = store
        .events(TicketId(2))
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "merged"]);

    // A requester's reply to a message of the merged ticket, or with its tag, joins #2.
    let parent = [MessageId::parse("a0@x").expect("id")];
    let new_key = MailKey::MessageId(MessageId::parse("new@x").expect("id"));
    let by_tag = Inbound {
        key: &new_key,
        sender: Some("a@phone.example"),
        subject: Some("Re: [#1]"),
        in_reply_to: &[],
        references: &[],
    };
    let by_header = Inbound {
        in_reply_to: &parent,
        subject: None,
        ..by_tag
    };
    for inbound in [by_tag, by_header] {
        let placement = threading::place(
            &inbound,
            Hints::default(),
            OpenTicketRule::NewTicketEachTime,
            &store,
        )
        .expect("place");
        assert!(
            matches!(
                placement,
                Placement::Existing {
                    ticket: TicketId(2),
                    ..
                }
            ),
            "{placement:?}"
        );
    }
    assert!(matches!(
        merge(&store, TicketId(1), TicketId(2), now),
        Err(MergeError::AlreadyMerged(..))
    ));
    assert!(matches!(
        merge(&store, TicketId(2), TicketId(2), now),
        Err(MergeError::Same)
    ));
}

#[test]
fn agent_ids_that_would_break_the_reply_address_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now = Timestamp::UNIX_EPOCH;
    let help = "helpdesk-team@charity.example";
    for bad in [
        "ana.",
        ".ana",
        "a..b",
        "-ana",
        "ana b",
        "Ana",
        "",
        &"a".repeat(13),
    ] {
        let added = add_agent(&store, help, new(bad, &["x@volunteers.example"]), now);
        assert!(
            matches!(added, Err(Error::InvalidId(_))),
            "{bad:?}: {added:?}"
        );
    }
    // Every id the rule accepts gives a reply address the mail builder takes.
    let secret = crate::casework::token::Secret::from_bytes([7; 32]);
    let sender = crate::mail::compose::Sender {
        address: help.to_owned(),
        name: "Help".to_owned(),
    };
    for (n, good) in ["ana", "ana.k", "a-b_c.d", "0", "x9.y-z_", &"b".repeat(12)]
        .into_iter()
        .enumerate()
    {
        assert!(AgentId::is_valid(good), "{good:?}");
        let token = secret.sign(TicketId(9_999_999), &AgentId(good.to_owned()));
        let reply = sender.sub_address(&token);
        assert!(
            lettre::Address::from_str(&reply).is_ok(),
            "{good:?} gives {reply:?}"
        );
        add_agent(
            &store,
            help,
            new(good, &[&format!("a{n}@volunteers.example")]),
            now,
        )
        .expect("a valid id is accepted");
    }
}

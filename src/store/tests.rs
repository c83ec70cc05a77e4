use std::collections::BTreeSet;

use jiff::Timestamp;

use super::keys::ticket_key;
use super::*;
use crate::ids::{MailKey, MessageId, Uid, UidValidity};
use crate::model::{Cursor, Direction, Status, StoredMessage, Ticket};

fn ticket(id: TicketId, requester: &str) -> Ticket {
    Ticket {
        id,
        status: Status::New,
        subject: "Housing".to_owned(),
        requester: requester.to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::from([requester.to_owned()]),
        flags: BTreeSet::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: Timestamp::UNIX_EPOCH,
        message_count: 1,
        event_count: 0,
    }
}

fn message(ticket: TicketId, id: &str) -> StoredMessage {
    StoredMessage {
        ticket,
        seq: 0,
        direction: Direction::In,
        key: MailKey::MessageId(MessageId::parse(id).expect("valid id")),
        message_id: MessageId::parse(id),
        from: Some("a@example.org".to_owned()),
        from_name: None,
        to: vec![],
        cc: vec![],
        subject: Some("Housing".to_owned()),
        date: None,
        received: Timestamp::UNIX_EPOCH,
        in_reply_to: vec![],
        references: vec![],
        text: "hello".to_owned(),
        attachments: vec![],
        anomalies: vec![],
        sources: vec![],
    }
}

#[test]
fn a_transaction_writes_ticket_message_indexes_and_cursor_together() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .write(|tx| {
            let id = tx.allocate_ticket_id()?;
            tx.put_ticket(&ticket(id, "a@example.org"))?;
            tx.put_message(&message(id, "<x@example.org>"), Some(b"raw"))?;
            tx.set_cursor(
                "INBOX",
                &Cursor {
                    uidvalidity: UidValidity(7),
                    last_uid: Uid(3),
                },
            )?;
            Ok(id)
        })
        .expect("write");
    store.flush().expect("flush");
    assert_eq!(id, TicketId(1));
    assert_eq!(store.tickets().expect("tickets").len(), 1);
    assert_eq!(store.messages(id).expect("messages").len(), 1);
    assert_eq!(store.raw(id, 0).expect("raw").as_deref(), Some(&b"raw"[..]));
    let key = MailKey::MessageId(MessageId::parse("x@EXAMPLE.org").expect("id"));
    assert_eq!(store.find_key(&key).expect("key"), Some((id, 0)));
    let mid = MessageId::parse("x@example.org").expect("id");
    assert_eq!(store.find_message_id(&mid).expect("mid"), Some(id));
    assert_eq!(
        store.tickets_of_requester("a@example.org").expect("idx"),
        vec![id]
    );
    assert_eq!(
        store.cursor("INBOX").expect("cursor").map(|c| c.last_uid),
        Some(Uid(3))
    );
    assert_eq!(store.last_ticket_id().expect("last"), TicketId(1));
}

#[test]
fn store_errors_name_no_address() {
    let json_error = || serde_json::from_str::<u8>("x").expect_err("not a number");
    let corrupt = Error::Corrupt {
        key: "l/s/fatima@phone.example".to_owned(),
        source: json_error(),
    };
    let encode = Error::Encode {
        key: "r/fatima@phone.example/00000000000000000001".to_owned(),
        source: json_error(),
    };
    let inconsistent =
        Error::Inconsistent("bad requester index key r/fatima@phone.example".to_owned());
    for error in [corrupt, encode, inconsistent] {
        let text = format!("{error:#}");
        assert!(!text.contains("fatima"), "{text}");
        assert!(text.contains("<address>"), "{text}");
    }
}

#[test]
fn an_aborted_transaction_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let result: Result<(), Error> = store.write(|tx| {
        let id = tx.allocate_ticket_id()?;
        tx.put_ticket(&ticket(id, "a@example.org"))?;
        Err(Error::Inconsistent("stop here".to_owned()).into())
    });
    assert!(result.is_err());
    assert!(store.tickets().expect("tickets").is_empty());
    assert_eq!(store.last_ticket_id().expect("last"), TicketId(0));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_as_locked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _store = Store::open(dir.path()).expect("open");
    let second = Store::open(dir.path());
    assert!(
        matches!(second, Err(Error::Locked { .. })),
        "second open gave {second:?}"
    );
}

#[test]
fn a_store_with_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::open(dir.path()).expect("open");
        store
            .tree
            .insert(KEY_SCHEMA, b"99".to_vec())
            .expect("insert");
        store.flush().expect("flush");
    }
    let reopened = Store::open(dir.path());
    assert!(
        matches!(reopened, Err(Error::Schema { .. })),
        "{reopened:?}"
    );
}

#[test]
fn agents_rota_and_outbox_round_trip() {
    use crate::ids::AgentId;
    use crate::model::{Agent, OutboxEntry, OutboxKind, Role};

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let agent = Agent {
        id: AgentId("amina".to_owned()),
        name: "Amina".to_owned(),
        emails: vec!["amina@volunteers.example".to_owned()],
        role: Role::Coordinator,
        max_open: Some(5),
        away: None,
        created: Timestamp::UNIX_EPOCH,
        last_assigned: None,
    };
    let entry = OutboxEntry {
        id: 0,
        kind: OutboxKind::Notification,
        ticket: Some(TicketId(3)),
        message_id: MessageId::parse("n1@help.example").expect("id"),
        envelope_from: "help@help.example".to_owned(),
        recipients: vec!["amina@volunteers.example".to_owned()],
        created: Timestamp::UNIX_EPOCH,
        attempts: 0,
        next_attempt: Timestamp::UNIX_EPOCH,
        last_error: None,
    };
    let (first, second) = store
        .write(|tx| {
            tx.put_agent(&agent)?;
            tx.set_rota("timezone = \"Europe/Berlin\"")?;
            Ok((
                tx.enqueue(&entry, b"raw one")?,
                tx.enqueue(&entry, b"raw two")?,
            ))
        })
        .expect("write");
    assert_eq!((first, second), (1, 2));
    assert_eq!(store.agents().expect("agents"), vec![agent.clone()]);
    assert_eq!(
        store.rota().expect("rota").as_deref(),
        Some("timezone = \"Europe/Berlin\"")
    );
    let ids: Vec<u64> = store
        .outbox()
        .expect("outbox")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        store.outbox_raw(2).expect("raw").as_deref(),
        Some(&b"raw two"[..])
    );
    // A reply to a sent notification threads back to its ticket.
    let sent = MessageId::parse("n1@help.example").expect("id");
    assert_eq!(
        store.find_message_id(&sent).expect("index"),
        Some(TicketId(3))
    );

    store
        .write(|tx| {
            tx.remove_outbox(1)?;
            tx.remove_agent(&agent.id)
        })
        .expect("remove");
    assert_eq!(store.outbox().expect("outbox").len(), 1);
    assert!(store.outbox_raw(1).expect("raw").is_none());
    assert!(store.agents().expect("agents").is_empty());
}

/// What the active index and the figures must say: the same as reading every ticket.
fn counted_by_reading_every_ticket(store: &Store) -> (Vec<TicketId>, TicketFigures) {
    let mut figures = TicketFigures::default();
    let mut active = Vec::new();
    for ticket in store.tickets().expect("tickets") {
        figures.count(&ticket, true);
        if ticket.status.is_active() {
            active.push(ticket.id);
        }
    }
    (active, figures)
}

fn indexed(store: &Store) -> (Vec<TicketId>, TicketFigures) {
    let active = store
        .active_tickets()
        .expect("active tickets")
        .into_iter()
        .map(|t| t.id)
        .collect();
    // The spam index names exactly the tickets held as spam.
    let spam: Vec<TicketId> = store
        .spam_tickets()
        .expect("spam tickets")
        .into_iter()
        .map(|t| t.id)
        .collect();
    let held: Vec<TicketId> = store
        .tickets()
        .expect("tickets")
        .into_iter()
        .filter(|t| t.status == Status::Spam)
        .map(|t| t.id)
        .collect();
    assert_eq!(spam, held, "spam index");
    (active, store.ticket_figures().expect("figures"))
}

#[test]
fn the_active_index_and_figures_follow_every_ticket_write() {
    use crate::model::TicketFlag;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let statuses = [
        Status::New,
        Status::Open,
        Status::Waiting,
        Status::Closed,
        Status::Spam,
    ];
    // Tickets go through every status and back, gain and lose flags and messages.
    for round in 0..4u64 {
        for n in 0..12u64 {
            store
                .write(|tx| {
                    let id = TicketId(n + 1);
                    let mut t = match tx.ticket(id)? {
                        Some(t) => t,
                        None => {
                            let fresh = tx.allocate_ticket_id()?;
                            ticket(fresh, &format!("r{n}@example.org"))
                        }
                    };
                    let pick = usize::try_from((n * 7 + round * 3) % 5).expect("small");
                    t.status = statuses.get(pick).copied().expect("in range");
                    t.message_count = u32::try_from(n + round).expect("small");
                    t.flags.clear();
                    if (n + round).is_multiple_of(3) {
                        t.flags.insert(TicketFlag::SuspectedSpam);
                    }
                    tx.put_ticket(&t)?;
                    Ok(())
                })
                .expect("write");
            assert_eq!(indexed(&store), counted_by_reading_every_ticket(&store));
        }
    }
    let (active, figures) = indexed(&store);
    assert!(!active.is_empty() && active.len() < 12, "{active:?}");
    assert_eq!(figures.by_status.values().sum::<u64>(), 12);
}

#[test]
fn a_store_without_the_index_gets_it_when_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::open(dir.path()).expect("open");
        for status in [Status::New, Status::Closed, Status::Open] {
            store
                .write(|tx| {
                    let id = tx.allocate_ticket_id()?;
                    let mut t = ticket(id, "a@example.org");
                    t.status = status;
                    tx.put_ticket(&t)
                })
                .expect("write");
        }
        // As a store written before the index existed: no figures, no active entries.
        store.tree.remove(index::KEY_FIGURES).expect("remove");
        for key in store.tree.scan_prefix(b"A/").keys() {
            store.tree.remove(key.expect("key")).expect("remove");
        }
        store.flush().expect("flush");
    }
    let store = Store::open(dir.path()).expect("reopen");
    let (active, figures) = indexed(&store);
    assert_eq!(active, vec![TicketId(1), TicketId(3)]);
    assert_eq!((active, figures), counted_by_reading_every_ticket(&store));
}

/// Rewrites a store as schema version 1 wrote it: the address in requester and loop-safety
/// keys as it was, and `meta/schema` 1.
fn downgrade_to_schema_1(store: &Store) {
    let mut batch = sled::Batch::default();
    for prefix in ["r/", "l/r/", "l/a/"] {
        for item in store.tree.scan_prefix(prefix.as_bytes()) {
            let (key, value) = item.expect("scan");
            let text = String::from_utf8(key.to_vec()).expect("utf-8 key");
            let rest = text.strip_prefix(prefix).expect("prefix");
            let (len, tail) = rest.split_once(':').expect("length prefix");
            let len: usize = len.parse().expect("length");
            let (address, number) = tail.split_at(len);
            batch.remove(key);
            batch.insert(format!("{prefix}{address}{number}").into_bytes(), value);
        }
    }
    batch.insert(KEY_SCHEMA, b"1".to_vec());
    store.tree.apply_batch(batch).expect("batch");
    store.flush().expect("flush");
}

const VICTIM: &str = "victim@example.org";
/// An address the parser of schema 1's day accepted, whose key started with the victim's.
const PREFIXED: &str = "victim@example.org/00000000000000000001@attacker.example";

#[test]
fn an_address_is_never_a_prefix_of_another_addresses_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    store
        .write(|tx| {
            let attacker = tx.allocate_ticket_id()?;
            tx.put_ticket(&ticket(attacker, PREFIXED))?;
            for address in [PREFIXED, "victim@example.org/x"] {
                tx.bump_counter(&Counter::Recipient { address, hour: 7 })?;
                tx.bump_counter(&Counter::Acknowledged { address, day: 3 })?;
            }
            Ok(())
        })
        .expect("write");
    assert_eq!(store.tickets_of_requester(VICTIM).expect("idx"), vec![]);
    assert_eq!(store.requester_index_keys(VICTIM).expect("idx"), vec![]);
    assert_eq!(
        store.loop_keys_of(VICTIM).expect("keys"),
        Vec::<String>::new()
    );
    assert_eq!(
        store.tickets_of_requester(PREFIXED).expect("idx"),
        vec![TicketId(1)]
    );
    assert_eq!(store.loop_keys_of(PREFIXED).expect("keys").len(), 2);
}

#[test]
fn a_schema_1_store_is_migrated_on_open_and_finds_the_same_tickets() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::open(dir.path()).expect("open");
        store
            .write(|tx| {
                for requester in [VICTIM, PREFIXED, "other@example.org"] {
                    let id = tx.allocate_ticket_id()?;
                    tx.put_ticket(&ticket(id, requester))?;
                }
                // A merge lists the other requester on the victim's ticket too.
                tx.index_requester("other@example.org", TicketId(1))?;
                tx.bump_counter(&Counter::Recipient {
                    address: VICTIM,
                    hour: 490_000,
                })?;
                tx.bump_counter(&Counter::Acknowledged {
                    address: PREFIXED,
                    day: 20_000,
                })?;
                Ok(())
            })
            .expect("write");
        downgrade_to_schema_1(&store);
        // As schema 1 read it, the victim's scan found the attacker's ticket as well.
        let old = store
            .tree
            .scan_prefix(format!("r/{VICTIM}/").as_bytes())
            .count();
        assert_eq!(old, 2, "the old layout shows the prefix attack");
    }
    let store = Store::open(dir.path()).expect("open migrates");
    assert_eq!(
        store.tree.get(KEY_SCHEMA).expect("get").as_deref(),
        Some(SCHEMA_VERSION.to_string().as_bytes())
    );
    assert_eq!(
        store.tickets_of_requester(VICTIM).expect("idx"),
        vec![TicketId(1)]
    );
    assert_eq!(
        store.tickets_of_requester(PREFIXED).expect("idx"),
        vec![TicketId(2)]
    );
    assert_eq!(
        store
            .tickets_of_requester("other@example.org")
            .expect("idx"),
        vec![TicketId(1), TicketId(3)]
    );
    let counted = store
        .write(|tx| {
            Ok((
                tx.counter(&Counter::Recipient {
                    address: VICTIM,
                    hour: 490_000,
                })?,
                tx.counter(&Counter::Acknowledged {
                    address: PREFIXED,
                    day: 20_000,
                })?,
            ))
        })
        .expect("read counters");
    assert_eq!(counted, (1, 1));
    assert_eq!(store.loop_keys_of(VICTIM).expect("keys").len(), 1);
    // No key of the old layout is left behind.
    for item in store.tree.scan_prefix(b"r/") {
        let (key, _) = item.expect("scan");
        assert!(
            !key.starts_with(format!("r/{VICTIM}/").as_bytes()),
            "{key:?}"
        );
    }
    drop(store);
    // Opening again changes nothing.
    let store = Store::open(dir.path()).expect("open again");
    assert_eq!(
        store.tickets_of_requester(VICTIM).expect("idx"),
        vec![TicketId(1)]
    );
}

mod exact_keys {
    use proptest::prelude::*;

    use super::super::exact;
    use super::super::keys::{requester_key, requester_prefix};
    use crate::ids::TicketId;

    proptest! {
        /// No address's scan prefix matches another address's key, whatever the addresses
        /// hold (slashes, digits, `:`, anything).
        #[test]
        fn a_scan_for_one_address_never_finds_anothers_key(
            a in "[a-z0-9@./:]{0,12}",
            b in "[a-z0-9@./:]{0,12}",
            ticket in any::<u64>(),
        ) {
            prop_assume!(a != b);
            let key = requester_key(&b, TicketId(ticket));
            prop_assert!(!key.starts_with(&requester_prefix(&a)), "{a:?} finds {key:?}");
            prop_assert!(requester_key(&a, TicketId(ticket)).starts_with(&requester_prefix(&a)));
            let (segment_a, segment_b) = (format!("{}/", exact(&a)), format!("{}/", exact(&b)));
            prop_assert!(!segment_b.starts_with(&segment_a), "{} {}", segment_a, segment_b);
        }
    }
}

/// Opens the store of `state_dir` again: sled lets go of its lock a moment after the last
/// handle of the previous open is dropped.
fn reopen(state_dir: &std::path::Path) -> Result<Store, Error> {
    for _ in 0..100 {
        match Store::open(state_dir) {
            Err(Error::Locked { .. }) => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other,
        }
    }
    Store::open(state_dir)
}

fn with_tickets(state_dir: &std::path::Path, count: usize) {
    let store = reopen(state_dir).expect("open");
    for _ in 0..count {
        store
            .write(|tx| {
                let id = tx.allocate_ticket_id()?;
                tx.put_ticket(&ticket(id, "a@example.org"))
            })
            .expect("write");
    }
    store.flush().expect("flush");
}

#[test]
fn a_new_state_directory_gets_a_marker_and_each_open_a_generation() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_tickets(dir.path(), 2);
    let first = marker::read(dir.path()).expect("read").expect("marker");
    assert_eq!(first.generation, 1);
    assert_eq!(first.schema, SCHEMA_VERSION);
    drop(reopen(dir.path()).expect("reopen"));
    let second = marker::read(dir.path()).expect("read").expect("marker");
    assert_eq!(second.generation, 2);
    assert_eq!(second.last_ticket, 2);
    assert!(second.holds_data);
}

#[test]
fn a_deleted_store_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_tickets(dir.path(), 1);
    std::fs::remove_dir_all(dir.path().join(STORE_DIR)).expect("delete");
    let err = reopen(dir.path()).expect_err("refused");
    assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("is missing"), "{text}");
    assert!(text.contains("restore"), "{text}");
    assert!(
        !dir.path().join(STORE_DIR).exists(),
        "no empty store was created in its place"
    );
}

#[test]
fn a_store_truncated_to_nothing_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_tickets(dir.path(), 1);
    std::fs::File::create(dir.path().join(STORE_DIR).join("db")).expect("truncate");
    let err = reopen(dir.path()).expect_err("refused");
    assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("is empty"), "{err}");
}

#[test]
fn a_store_that_lost_tickets_or_all_its_records_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_tickets(dir.path(), 3);
    let mut recorded = marker::read(dir.path()).expect("read").expect("marker");
    recorded.last_ticket = 5;
    marker::write(dir.path(), &recorded).expect("write");
    let err = reopen(dir.path()).expect_err("refused");
    assert!(err.to_string().contains("records were lost"), "{err}");

    // A database sled opens as a new one (every record gone) where data was.
    let other = tempfile::tempdir().expect("temp dir");
    with_tickets(other.path(), 1);
    // A clean stop records what the run filed.
    reopen(other.path())
        .expect("reopen")
        .refresh_marker(other.path())
        .expect("refresh");
    std::fs::remove_dir_all(other.path().join(STORE_DIR)).expect("delete");
    {
        let fresh = Store::open_path(other.path().join(STORE_DIR)).expect("fresh");
        fresh.flush().expect("flush");
    }
    let err = reopen(other.path()).expect_err("refused");
    assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
}

#[test]
fn verify_reads_every_record_and_names_those_it_cannot_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    with_tickets(dir.path(), 2);
    drop(reopen(dir.path()).expect("reopen"));
    let healthy = verify::verify(dir.path()).expect("verify");
    assert!(healthy.is_ok(), "{healthy:?}");
    assert!(healthy.records > 2, "{healthy:?}");

    {
        let store = reopen(dir.path()).expect("open");
        store
            .tree
            .insert(ticket_key(TicketId(2)).as_bytes(), b"\x00garbage".to_vec())
            .expect("insert");
        store.flush().expect("flush");
    }
    let damaged = verify::verify(dir.path()).expect("verify");
    assert_eq!(damaged.unreadable, vec![ticket_key(TicketId(2))]);
    assert!(damaged.damage().is_some());

    std::fs::remove_dir_all(dir.path().join(STORE_DIR)).expect("delete");
    let missing = verify::verify(dir.path()).expect("verify");
    assert_eq!(missing.records, 0);
    assert!(
        missing.problems.iter().any(|p| p.contains("is missing")),
        "{missing:?}"
    );
    assert!(
        !dir.path().join(STORE_DIR).exists(),
        "verify creates no store"
    );
}

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::ids::{MessageId, Uid, UidValidity};
use crate::model::Direction;

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

fn at(days: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH
        .checked_add(SignedDuration::from_hours(24 * days))
        .expect("in range")
}

fn source(uid: u32) -> Source {
    Source {
        mailbox: "INBOX".to_owned(),
        uidvalidity: UidValidity(9),
        uid: Uid(uid),
    }
}

/// Files a ticket for `requester` with one message per sender in `senders`, and one event per
/// message whose actor is its sender. Returns the ticket number.
fn file(
    store: &Store,
    requester: &str,
    senders: &[&str],
    status: Status,
    updated: Timestamp,
) -> TicketId {
    store
        .write(|tx| {
            let id = tx.allocate_ticket_id()?;
            let mut ticket = Ticket {
                id,
                status,
                subject: "Housing".to_owned(),
                requester: requester.to_owned(),
                requester_name: None,
                owner: None,
                assigned_at: None,
                last_agent_reply: None,
                merged_into: None,
                participants: senders.iter().map(|s| (*s).to_owned()).collect(),
                flags: BTreeSet::new(),
                created: updated,
                updated,
                message_count: 0,
                event_count: 0,
            };
            for sender in senders {
                let seq = ticket.message_count;
                let mid = format!("{}.{seq}@{}", id.0, sender.replace('@', "."));
                let message = StoredMessage {
                    ticket: id,
                    seq,
                    direction: Direction::In,
                    key: MailKey::MessageId(MessageId::parse(&mid).expect("id")),
                    message_id: MessageId::parse(&mid),
                    from: Some((*sender).to_owned()),
                    from_name: None,
                    to: vec![],
                    cc: vec![],
                    subject: Some("Housing".to_owned()),
                    date: None,
                    received: updated,
                    in_reply_to: vec![],
                    references: vec![],
                    text: format!("text by {sender}"),
                    attachments: vec![],
                    anomalies: vec![],
                    sources: vec![source(id.0 as u32 * 100 + seq)],
                };
                tx.put_message(
                    &message,
                    Some(format!("From: {sender}\r\n\r\nraw").as_bytes()),
                )?;
                ticket.message_count += 1;
                tx.add_event(
                    &mut ticket,
                    &Event {
                        at: updated,
                        actor: Actor::Requester((*sender).to_owned()),
                        kind: "message_added".to_owned(),
                        detail: "threaded".to_owned(),
                    },
                )?;
            }
            tx.put_ticket(&ticket)?;
            Ok(id)
        })
        .expect("file")
}

/// Every key and value in the store, as text, but the IMAP deletion queue (whose Message-IDs
/// wait there for the fetch side).
fn dump(store: &Store) -> String {
    dump_all(store)
        .lines()
        .filter(|line| !line.starts_with("p/"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Empties the IMAP deletion queue, as the fetch side does once the copies are gone.
fn work_off_queue(store: &Store) {
    for entry in store.imap_deletions().expect("queue") {
        store
            .write(|tx| tx.remove_imap_deletion(entry.id))
            .expect("remove");
    }
}

fn dump_all(store: &Store) -> String {
    let mut text = String::new();
    store
        .snapshot(|key, value| -> Result<(), ()> {
            text.push_str(&String::from_utf8_lossy(key));
            text.push(' ');
            text.push_str(&String::from_utf8_lossy(value));
            text.push('\n');
            Ok(())
        })
        .map_err(|_| "snapshot")
        .expect("snapshot");
    text
}

#[test]
fn only_closed_tickets_past_the_period_expire_and_the_next_is_due_when_its_period_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let old_closed = file(
        &store,
        "a@example.org",
        &["a@example.org"],
        Status::Closed,
        at(0),
    );
    let _old_open = file(
        &store,
        "b@example.org",
        &["b@example.org"],
        Status::Open,
        at(0),
    );
    let _recent_closed = file(
        &store,
        "c@example.org",
        &["c@example.org"],
        Status::Closed,
        at(20),
    );
    let (due, next) = expired(&store, 30 * DAY, at(31)).expect("expired");
    assert_eq!(due, BTreeSet::from([old_closed]));
    assert_eq!(next, Some(at(50)));
}

#[test]
fn a_purged_ticket_leaves_no_record_index_or_outbox_entry_and_queues_its_imap_copies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let gone = file(
        &store,
        "a@example.org",
        &["a@example.org", "a@example.org"],
        Status::Closed,
        at(0),
    );
    let kept = file(
        &store,
        "b@example.org",
        &["b@example.org"],
        Status::Closed,
        at(0),
    );
    let (removed, _) = retention_sweep(&store, Some(DAY), at(0)).expect("nothing due yet");
    assert_eq!(removed, Removed::default());
    store
        .write(|tx| {
            let mut open = tx.ticket(kept)?.expect("kept");
            open.status = Status::Open;
            tx.put_ticket(&open)
        })
        .expect("reopen");
    let (removed, _) = retention_sweep(&store, Some(DAY), at(2)).expect("purge");
    assert_eq!(removed.tickets, 1);
    assert_eq!(removed.messages, 2);
    assert_eq!(removed.imap_deletions, 2);
    assert!(store.ticket(gone).expect("read").is_none());
    assert!(store.ticket(kept).expect("read").is_some());
    // The figures /metrics reports follow the removal.
    let figures = store.ticket_figures().expect("figures");
    assert_eq!(figures.by_status.values().sum::<u64>(), 1);
    assert_eq!(figures.by_status.get("closed"), Some(&0));
    assert_eq!(figures.messages, 1);
    let text = dump(&store);
    assert!(
        !text.contains("a@example.org") && !text.contains("a.example.org"),
        "{text}"
    );
    assert!(text.contains("b@example.org"), "{text}");
    assert_eq!(store.imap_deletions().expect("queue").len(), 2);
    assert!(
        store
            .tickets_of_requester("a@example.org")
            .expect("index")
            .is_empty()
    );
    work_off_queue(&store);
    assert!(!dump_all(&store).contains("a.example.org"));
}

#[test]
fn erasure_removes_their_tickets_and_their_messages_elsewhere_and_keeps_everything_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let theirs = file(
        &store,
        "a@example.org",
        &["a@example.org"],
        Status::Open,
        at(0),
    );
    let shared = file(
        &store,
        "b@example.org",
        &["b@example.org", "a@example.org", "b@example.org"],
        Status::Open,
        at(0),
    );
    // Loop-safety records name the address too: a counter, an acknowledgement and a
    // suppression after a bounce.
    store
        .write(|tx| {
            tx.bump_counter(&crate::store::Counter::Recipient {
                address: "a@example.org",
                hour: 1,
            })?;
            tx.bump_counter(&crate::store::Counter::Acknowledged {
                address: "a@example.org",
                day: 1,
            })?;
            tx.put_suppression(&crate::model::Suppression {
                address: "a@example.org".to_owned(),
                since: at(0),
                until: at(7),
                reason: "delivery status 5.1.1".to_owned(),
                ticket: Some(theirs),
            })
        })
        .expect("loop records");
    // What casemail recorded sending to the address, in their ticket and in the shared one.
    store
        .write(|tx| {
            let sent = crate::store::Sent {
                recipients: vec!["a@example.org".to_owned()],
                at: at(0),
            };
            for (ticket, id) in [
                (theirs, "casemail.r.1@help.example"),
                (shared, "casemail.a.2@help.example"),
            ] {
                tx.put_sent(ticket, &MessageId::parse(id).expect("id"), &sent)?;
            }
            tx.put_relayed(theirs, "00ff", at(0))
        })
        .expect("reply records");
    let plan = plan_erasure(&store, " A@Example.org ").expect("plan");
    assert_eq!(plan.tickets, BTreeSet::from([theirs]));
    assert_eq!(plan.messages.get(&shared), Some(&vec![1]));
    let before = dump(&store);
    let removed = erase(&store, &plan, at(1)).expect("erase");
    assert_eq!(removed.tickets, 1);
    assert_eq!(removed.messages, 2);
    let text = dump(&store);
    assert!(!text.contains("a@example.org"), "{text}");
    assert!(!text.contains("a.example.org"), "{text}");
    assert!(!text.contains("replay/"), "{text}");
    assert_ne!(before, text);
    let left = store.messages(shared).expect("messages");
    assert_eq!(left.len(), 2);
    assert_eq!(left.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![0, 1]);
    assert!(
        left.iter()
            .all(|m| m.from.as_deref() == Some("b@example.org"))
    );
    let ticket = store.ticket(shared).expect("read").expect("kept");
    assert_eq!(ticket.message_count, 2);
    // Their open ticket left the active index and the figures.
    let active: Vec<_> = store
        .active_tickets()
        .expect("active")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(active, vec![shared]);
    let figures = store.ticket_figures().expect("figures");
    assert_eq!(figures.by_status.get("open"), Some(&1));
    assert_eq!(figures.messages, 2);
    assert!(!ticket.participants.contains("a@example.org"));
    // The renumbered messages are still found by their dedupe keys.
    for message in &left {
        assert_eq!(
            store.find_key(&message.key).expect("key"),
            Some((shared, message.seq))
        );
    }
    // Running it again finds nothing more to do.
    let again = plan_erasure(&store, "a@example.org").expect("plan");
    assert!(again.tickets.is_empty() && again.messages.is_empty());
    assert_eq!(store.imap_deletions().expect("queue").len(), 2);
    work_off_queue(&store);
    assert!(!dump_all(&store).contains("a.example.org"));
}

#[test]
fn a_message_id_is_read_from_headers_without_the_parser() {
    let raw = b"Subject: x\r\nMessage-Id:\r\n <abc@Example.ORG>\r\n\r\nMessage-ID: <body@x>\r\n";
    assert_eq!(
        crate::mail::parse::header_message_id(raw).map(|id| id.as_str().to_owned()),
        Some("abc@example.org".to_owned())
    );
    assert_eq!(
        crate::mail::parse::header_message_id(b"Subject: x\r\n\r\nMessage-ID: <a@b>\r\n"),
        None
    );
}

#[tokio::test]
async fn queuing_many_deletions_never_blocks_the_writer_and_wakes_the_watcher() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let mut watch = store.watch_imap_deletions();
    // Far more than a bounded subscriber channel would hold, with nobody reading meanwhile.
    for uid in 0..3000 {
        store
            .write(|tx| {
                tx.queue_imap_deletion(&ImapDeletion {
                    id: 0,
                    queued: at(0),
                    key: None,
                    from: None,
                    sources: vec![source(uid)],
                })
            })
            .expect("queue");
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
        .await
        .expect("woken");
    let queued = store.imap_deletions().expect("queue");
    assert_eq!(queued.len(), 3000);
    assert_eq!(queued.first().map(|d| d.id), Some(1));
    for entry in &queued {
        store
            .write(|tx| tx.remove_imap_deletion(entry.id))
            .expect("remove");
    }
    assert!(store.imap_deletions().expect("queue").is_empty());
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).expect("read file")));
            }
        }
    }
    out
}

/// The files under `dir` that hold `needle`, ignoring ASCII case.
fn holding(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|(_, bytes)| contains_address(bytes, needle))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn after_erasure_and_compaction_no_file_of_the_state_directory_holds_the_person() {
    let victim = "taro.yamada@docomo.example";
    let phone = "+81 90 7731 5529";
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let theirs = file(&store, victim, &[victim, victim], Status::Open, at(0));
    let other = file(
        &store,
        "amina@phone.example",
        &["amina@phone.example", victim],
        Status::Open,
        at(0),
    );
    // Their own ticket was merged into `other` later: its answers to them now live there.
    let merged = file(&store, victim, &[victim], Status::Open, at(0));
    store
        .write(|tx| {
            for (ticket, seq) in [(theirs, 0), (theirs, 1), (other, 1), (merged, 0)] {
                let mut message = tx.message(ticket, seq)?.expect("message");
                message.from_name = Some("Taro Yamada".to_owned());
                message.text = format!("Please call me on {phone}. Kōenji street 4.");
                tx.put_message(
                    &message,
                    Some(format!("From: Taro Yamada <{victim}>\r\n\r\n{phone}\r\n").as_bytes()),
                )?;
            }
            // A caseworker's answer on their own ticket, later merged into `other`; a note
            // that names them and a message sent to them, in `other`.
            for (ticket_id, direction, to, in_reply_to, text) in [
                (
                    merged,
                    Direction::Out,
                    format!(
                        "help+cm.{}.amina.0123456789abcdef01234567@charity.example",
                        merged.0
                    ),
                    format!(
                        "casemail.n.cm.{}.amina.0123456789abcdef01234567.01@charity.example",
                        merged.0
                    ),
                    "I will call you at ten.".to_owned(),
                ),
                (
                    other,
                    Direction::Note,
                    "help@charity.example".to_owned(),
                    "x@y".to_owned(),
                    format!("#note {victim} is Amina's neighbour"),
                ),
                (
                    other,
                    Direction::Out,
                    victim.to_owned(),
                    "x@y".to_owned(),
                    "Copy for you.".to_owned(),
                ),
            ] {
                let mut ticket = tx.ticket(ticket_id)?.expect("ticket");
                let seq = ticket.message_count;
                let mid = format!("answer.{}.{seq}@volunteers.example", ticket_id.0);
                let message = StoredMessage {
                    ticket: ticket_id,
                    seq,
                    direction,
                    key: MailKey::MessageId(MessageId::parse(&mid).expect("id")),
                    message_id: MessageId::parse(&mid),
                    from: Some("amina@volunteers.example".to_owned()),
                    from_name: None,
                    to: vec![to],
                    cc: vec![],
                    subject: None,
                    date: None,
                    received: at(0),
                    in_reply_to: MessageId::parse(&in_reply_to).into_iter().collect(),
                    references: vec![],
                    text,
                    attachments: vec![],
                    anomalies: vec![],
                    sources: vec![],
                };
                tx.put_message(&message, Some(b"raw"))?;
                ticket.message_count += 1;
                tx.put_ticket(&ticket)?;
            }
            crate::casework::admin::merge_tickets(tx, merged, other, Actor::System, at(0))?;
            // The classifier learned their ticket (as ham) and a spam ticket of someone else.
            let ticket = tx.ticket(theirs)?.expect("ticket");
            crate::casework::spam::bayes::learn_ticket(
                tx,
                &ticket,
                crate::casework::spam::bayes::Label::Ham,
            )?;
            tx.bump_counter(&crate::store::Counter::Recipient {
                address: victim,
                hour: 1,
            })?;
            Ok(())
        })
        .expect("seed");
    let spam = file(
        &store,
        "offers@bulk.example",
        &["offers@bulk.example"],
        Status::Spam,
        at(0),
    );
    store
        .write(|tx| {
            let ticket = tx.ticket(spam)?.expect("ticket");
            crate::casework::spam::bayes::learn_ticket(
                tx,
                &ticket,
                crate::casework::spam::bayes::Label::Spam,
            )
        })
        .expect("learn spam");
    assert!(store.classifier_counts("7731").expect("counts").is_some());

    let plan = plan_erasure(&store, victim).expect("plan");
    assert_eq!(plan.tickets, BTreeSet::from([theirs, merged]));
    assert_eq!(plan.messages.get(&other), Some(&vec![1, 2, 3, 4, 5]));
    let removed = erase(&store, &plan, at(1)).expect("erase");
    assert_eq!(removed.classifier, 2, "both learned messages are unlearned");
    for token in ["7731", "5529", "name:yamada", "kōenji"] {
        assert_eq!(
            store.classifier_counts(token).expect("counts"),
            None,
            "{token}"
        );
    }
    assert_eq!(
        store.classifier_docs().expect("docs"),
        crate::casework::spam::bayes::Docs { spam: 1, ham: 0 }
    );
    let left = store.messages(other).expect("messages");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].from.as_deref(), Some("amina@phone.example"));
    work_off_queue(&store);
    assert!(store.compaction_pending().expect("pending"));
    // The records are gone, but sled's files still hold old pages with them.
    let dumped = dump_all(&store);
    let lines: Vec<&str> = dumped
        .lines()
        .filter(|l| l.to_lowercase().contains("yamada"))
        .collect();
    assert!(lines.is_empty(), "{lines:#?}");
    drop(store);
    assert!(
        !holding(dir.path(), "yamada").is_empty(),
        "before compaction the files still hold the address"
    );

    // The next open compacts.
    let store = Store::open(dir.path()).expect("open compacts");
    assert!(!store.compaction_pending().expect("pending"));
    assert_eq!(store.messages(other).expect("messages").len(), 1);
    drop(store);
    for needle in [victim, "yamada", "7731", "5529", "kōenji"] {
        assert_eq!(
            holding(dir.path(), needle),
            Vec::<std::path::PathBuf>::new(),
            "{needle}"
        );
    }
    assert!(
        !holding(dir.path(), "amina@phone.example").is_empty(),
        "the search finds what is left"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("store.")),
        "no staging directory is left: {names:?}"
    );
}

#[test]
fn a_compaction_interrupted_at_any_step_is_finished_or_undone_at_the_next_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path();
    let store = Store::open(state).expect("open");
    let id = file(
        &store,
        "a@example.org",
        &["a@example.org"],
        Status::Open,
        at(0),
    );
    drop(store);
    let live = state.join(crate::store::STORE_DIR);
    let copy = |to: &str| {
        let target = state.join(to);
        std::fs::create_dir_all(&target).expect("mkdir");
        for (path, bytes) in files_under(&live) {
            let relative = path.strip_prefix(&live).expect("under");
            let dest = target.join(relative);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::write(dest, bytes).expect("write");
        }
    };
    // Crash while the copy was written: the partial copy is dropped.
    copy("store.compacting");
    // Crash after the complete copy was renamed, before the swap.
    let opened = Store::open(state).expect("open");
    assert!(opened.ticket(id).expect("read").is_some());
    drop(opened);
    copy("store.compacted");
    std::fs::rename(&live, state.join("store.replaced")).expect("swap out");
    let opened = Store::open(state).expect("open finishes the swap");
    assert!(opened.ticket(id).expect("read").is_some());
    drop(opened);
    for leftover in ["store.compacting", "store.compacted", "store.replaced"] {
        assert!(!state.join(leftover).exists(), "{leftover}");
    }
}

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use jiff::Timestamp;

use super::*;
use crate::model::Status;

#[derive(Default)]
struct FakeView {
    keys: BTreeMap<String, (TicketId, u32)>,
    message_ids: BTreeMap<String, TicketId>,
    tickets: BTreeMap<TicketId, Ticket>,
}

impl FakeView {
    fn with_ticket(mut self, id: u64, requester: &str, status: Status, message_id: &str) -> Self {
        let ticket = Ticket {
            id: TicketId(id),
            status,
            subject: "help".to_owned(),
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
        };
        self.tickets.insert(TicketId(id), ticket);
        self.message_ids.insert(message_id.to_owned(), TicketId(id));
        self.keys
            .insert(format!("mid:{message_id}"), (TicketId(id), 0));
        self
    }
}

impl ThreadView for FakeView {
    type Error = Infallible;
    fn find_key(&self, key: &MailKey) -> Result<Option<(TicketId, u32)>, Infallible> {
        Ok(self.keys.get(&key.to_index_string()).copied())
    }
    fn message(&self, _ticket: TicketId, _seq: u32) -> Result<Option<StoredMessage>, Infallible> {
        Ok(None)
    }
    fn find_message_id(&self, id: &MessageId) -> Result<Option<TicketId>, Infallible> {
        Ok(self.message_ids.get(id.as_str()).copied())
    }
    fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, Infallible> {
        Ok(self.tickets.get(&id).cloned())
    }
    fn tickets_of_requester(&self, address: &str) -> Result<Vec<TicketId>, Infallible> {
        Ok(self
            .tickets
            .values()
            .filter(|t| t.requester == address)
            .map(|t| t.id)
            .collect())
    }
}

fn mid(s: &str) -> MessageId {
    MessageId::parse(s).expect("valid message id")
}

fn run(
    view: &FakeView,
    key: &str,
    sender: &str,
    subject: &str,
    parents: &[MessageId],
    rule: OpenTicketRule,
) -> Placement {
    let key = MailKey::MessageId(mid(key));
    let inbound = Inbound {
        key: &key,
        sender: Some(sender),
        subject: Some(subject),
        in_reply_to: parents,
        references: &[],
    };
    match place(&inbound, Hints::default(), rule, view) {
        Ok(placement) => placement,
        Err(never) => match never {},
    }
}

#[test]
fn the_same_message_twice_is_a_duplicate() {
    let view = FakeView::default().with_ticket(1, "a@x.org", Status::New, "m1@x.org");
    let placement = run(
        &view,
        "m1@x.org",
        "a@x.org",
        "hi",
        &[],
        OpenTicketRule::OnePerRequester,
    );
    assert_eq!(
        placement,
        Placement::Duplicate {
            ticket: TicketId(1),
            seq: 0
        }
    );
}

#[test]
fn a_reply_joins_by_in_reply_to() {
    let view = FakeView::default().with_ticket(1, "a@x.org", Status::Closed, "m1@x.org");
    let placement = run(
        &view,
        "m2@x.org",
        "b@y.org",
        "Re: hi",
        &[mid("m1@x.org")],
        OpenTicketRule::NewTicketEachTime,
    );
    assert_eq!(
        placement,
        Placement::Existing {
            ticket: TicketId(1),
            reason: Reason::Headers
        }
    );
}

#[test]
fn a_subject_tag_from_a_participant_joins_the_ticket() {
    let view = FakeView::default().with_ticket(7, "a@x.org", Status::Closed, "m1@x.org");
    let placement = run(
        &view,
        "m2@x.org",
        "a@x.org",
        "Re: my flat [#7]",
        &[],
        OpenTicketRule::NewTicketEachTime,
    );
    assert_eq!(
        placement,
        Placement::Existing {
            ticket: TicketId(7),
            reason: Reason::SubjectTag
        }
    );
}

#[test]
fn a_stranger_copying_a_subject_tag_starts_a_new_ticket() {
    let view = FakeView::default().with_ticket(7, "a@x.org", Status::Open, "m1@x.org");
    let placement = run(
        &view,
        "m2@x.org",
        "mallory@evil.example",
        "Re: [#7]",
        &[],
        OpenTicketRule::OnePerRequester,
    );
    assert_eq!(placement, Placement::NewTicket);
}

#[test]
fn a_requester_with_an_open_ticket_joins_it_only_when_configured() {
    let view = FakeView::default().with_ticket(3, "a@x.org", Status::Waiting, "m1@x.org");
    let joined = run(
        &view,
        "m2@x.org",
        "a@x.org",
        "another",
        &[],
        OpenTicketRule::OnePerRequester,
    );
    assert_eq!(
        joined,
        Placement::Existing {
            ticket: TicketId(3),
            reason: Reason::OpenTicketOfRequester
        }
    );
    let separate = run(
        &view,
        "m2@x.org",
        "a@x.org",
        "another",
        &[],
        OpenTicketRule::NewTicketEachTime,
    );
    assert_eq!(separate, Placement::NewTicket);
}

#[test]
fn closed_and_spam_tickets_are_not_joined_by_requester_rule() {
    let view = FakeView::default()
        .with_ticket(3, "a@x.org", Status::Closed, "m1@x.org")
        .with_ticket(4, "a@x.org", Status::Spam, "m9@x.org");
    let placement = run(
        &view,
        "m2@x.org",
        "a@x.org",
        "again",
        &[],
        OpenTicketRule::OnePerRequester,
    );
    assert_eq!(placement, Placement::NewTicket);
}

#[test]
fn subject_tags_are_found_anywhere_and_in_order() {
    assert_eq!(
        subject_tags("Re: [#12] housing [#3]"),
        vec![TicketId(12), TicketId(3)]
    );
    assert!(subject_tags("[#] [#x] #5").is_empty());
}

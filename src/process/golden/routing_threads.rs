//! Golden tests of threading (headers, subject tags, the requester's open ticket, strangers,
//! duplicates, merges, closed tickets reopening) and of mail-loop safety (automatic mail never
//! answered, one acknowledgement a day, casemail's own mail, bounces and suppression, caps).

use expect_test::expect;
use jiff::SignedDuration;

use super::routing::{
    EVERY_DAY, answer, ask, event_kinds, hours, owner, quiet, rota, run, sent_to, shift, status,
    summary,
};
use crate::casework::threading::Reason;
use crate::ids::TicketId;
use crate::model::{Direction, OutboxKind, Role, Status};
use crate::ops::StoreCommand;
use crate::process::Outcome;
use crate::process::desk::{Desk, HELP, request};

/// The desk config with one ticket per conversation instead of one open ticket per requester,
/// so the header and tag rules are seen on their own.
fn per_conversation(ack: bool) -> String {
    format!(
        "[acknowledge]\nenabled = {ack}\n[threading]\none_open_ticket_per_requester = false\n[rota]\ndigest_at = \"23:30\"\n"
    )
}

/// A requester's message answering `parent` (a full Message-ID, without brackets).
fn follow_up(from: &str, id: &str, subject: &str, parent: &str, text: &str) -> String {
    format!(
        "From: {from}\r\nTo: {HELP}\r\nDate: Fri, 15 Jan 2027 10:00:00 +0000\r\nSubject: {subject}\r\nMessage-ID: <{id}@phone.example>\r\nIn-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n\r\n{text}\r\n"
    )
}

/// A delivery status notification (RFC 3464) from `from` with envelope sender `return_path`,
/// quoting the Message-ID `quoted` and reporting `failed` as failed for good.
fn delivery_report(from: &str, return_path: &str, id: &str, quoted: &str, failed: &str) -> String {
    format!(
        "Return-Path: <{return_path}>\r\nFrom: {from}\r\nTo: {HELP}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{id}@relay.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{quoted}>\r\nSubject: [#1] Your message to Helpdesk\r\n--b--\r\n"
    )
}

/// The Message-ID of the first outbox message of `kind`.
fn outbox_id(desk: &Desk, kind: OutboxKind) -> String {
    desk.store
        .outbox()
        .expect("outbox")
        .into_iter()
        .find(|e| e.kind == kind)
        .expect("a message of that kind")
        .message_id
        .as_str()
        .to_owned()
}

fn acknowledgement_id(desk: &Desk) -> String {
    outbox_id(desk, OutboxKind::Acknowledgement)
}

fn message_count(desk: &Desk, n: u64) -> usize {
    desk.store.messages(TicketId(n)).expect("messages").len()
}

/// A desk with amina on duty all day every day.
fn staffed(config: &str) -> Desk {
    let desk = Desk::with(config);
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "00:00", "24:00")]));
    desk
}

// ---------------------------------------------------------------------------------------------
// Threading

#[test]
fn a_reply_to_the_acknowledgement_joins_the_ticket_by_its_headers() {
    let desk = Desk::with(&per_conversation(true));
    let id = ask(&desk, "fatima", "1");
    let ack = acknowledgement_id(&desk);
    let outcome = desk.receive(&follow_up(
        "fatima@phone.example",
        "2",
        "More documents",
        &ack,
        "Here is the letter.",
    ));
    assert_eq!(outcome, Outcome::Added(id, Reason::Headers));
    assert_eq!(
        sent_to(&desk, OutboxKind::Acknowledgement).len(),
        1,
        "a follow-up is not acknowledged"
    );
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +0
            | Here is the letter.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 message_added by requester fatima@phone.example: threaded by In-Reply-To/References
        outbox 1 acknowledgement ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: fatima@phone.example
          Subject: [#1] Your message to Helpdesk
          Auto-Submitted: auto-replied
          | Hello,
          | 
          | Thank you for writing to Helpdesk. We have received your message.
          | 
          | Your ticket number is: #1
          | 
          | What happens next: a caseworker will read your message and answer you by email. You do not need to write again. If you want to add something, reply to this email and keep [#1] in the subject.
          | 
          | This message was sent automatically.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_subject_tag_from_the_requester_joins_her_ticket() {
    let desk = Desk::with(&per_conversation(false));
    let id = ask(&desk, "fatima", "1");
    let outcome = desk.receive(&request(
        "fatima@phone.example",
        "2",
        "Re: [#1] Help for fatima",
        "I forgot the letter.",
    ));
    assert_eq!(outcome, Outcome::Added(id, Reason::SubjectTag));
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +0
            | I forgot the letter.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 message_added by requester fatima@phone.example: threaded by subject tag
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_stranger_who_copies_a_ticket_number_gets_a_ticket_of_her_own() {
    let desk = staffed(&quiet(""));
    let victim = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    let outcome = desk.receive(&request(
        "Fatima <someone@elsewhere.example>",
        "2",
        "Re: [#1] Housing",
        "Tell me her new address.",
    ));
    let Outcome::NewTicket(own) = outcome else {
        panic!("a ticket of her own, got {outcome:?}");
    };
    assert_ne!(own, victim);
    assert_eq!(message_count(&desk, victim.0), 1, "nothing joined #1");
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
        ticket #2 New owner=amina requester=someone@elsewhere.example subject="Housing"
          message 0 In from=someone@elsewhere.example +0
            | Tell me her new address.
          event +0 created by requester someone@elsewhere.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 2 notification ticket=#2 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.2.amina.13d35a539e321d31eca11b4e@charity.example>
          Subject: [#2] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #2
          | Status:   new
          | Messages: 1
          | From:     Fatima <someone@elsewhere.example>
          | Subject:  Re: [#1] Housing
          | ----------------------------------------------------------------------
          | 
          | Tell me her new address.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_requesters_new_mail_joins_her_open_ticket_and_reaches_its_caseworker() {
    let desk = staffed(&quiet(""));
    let id = ask(&desk, "fatima", "1");
    desk.advance(hours(1));
    let outcome = desk.receive(&request(
        "Fatima <fatima@phone.example>",
        "2",
        "Another thing",
        "They also cut the heating.",
    ));
    assert_eq!(outcome, Outcome::Added(id, Reason::OpenTicketOfRequester));
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["amina@volunteers.example", "amina@volunteers.example"]
    );
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +1h
            | They also cut the heating.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +1h message_added by requester fatima@phone.example: threaded by requester's open ticket
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Help for fatima
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     fatima@phone.example
          | Subject:  Help for fatima
          | ----------------------------------------------------------------------
          | 
          | Please help.
        outbox 2 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Help for fatima
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | The requester wrote again. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | From:     Fatima <fatima@phone.example>
          | Subject:  Another thing
          | ----------------------------------------------------------------------
          | 
          | They also cut the heating.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn with_one_ticket_per_conversation_a_new_subject_opens_a_second_ticket_for_the_same_caseworker() {
    let desk = staffed(&per_conversation(false));
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "00:00", "24:00"),
        shift("jonas", EVERY_DAY, "00:00", "24:00"),
    ]));
    let first = ask(&desk, "fatima", "1");
    let outcome = desk.receive(&request(
        "fatima@phone.example",
        "2",
        "Another thing",
        "They also cut the heating.",
    ));
    let Outcome::NewTicket(second) = outcome else {
        panic!("a second ticket, got {outcome:?}");
    };
    assert_ne!(first, second);
    // jonas has fewer open tickets, but fatima keeps her caseworker.
    assert_eq!(owner(&desk, second.0).as_deref(), Some("amina"));
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #2 to=amina@volunteers.example: [#2] Another thing
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_reply_by_headers_reopens_a_closed_ticket_with_its_caseworker() {
    let desk = staffed(&quiet(""));
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    answer(&desk, id.0, "amina", "#close");
    assert_eq!(status(&desk, id.0), Status::Closed);
    desk.advance(hours(3));
    let outcome = desk.receive(&follow_up(
        "Fatima <fatima@phone.example>",
        "2",
        "Re: Housing",
        "1@phone.example",
        "He changed the locks.",
    ));
    assert_eq!(outcome, Outcome::Added(id, Reason::Headers));
    assert_eq!(status(&desk, id.0), Status::Open);
    expect![[r#"
        ticket #1 Open owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          message 1 In from=fatima@phone.example +3h
            | He changed the locks.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 closed by agent amina: closed by mail
          event +3h message_added by requester fatima@phone.example: threaded by In-Reply-To/References
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 2 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          Auto-Submitted: auto-generated
          | #1 closed
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | The requester wrote again. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   open
          | Messages: 2
          | From:     Fatima <fatima@phone.example>
          | Subject:  Re: Housing
          | ----------------------------------------------------------------------
          | 
          | He changed the locks.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn the_same_message_delivered_twice_is_one_entry_acknowledged_once() {
    let desk = Desk::new();
    let raw = request(
        "fatima@phone.example",
        "1",
        "Housing",
        "My landlord wants me out.",
    );
    let id = desk.new_ticket(&raw);
    assert_eq!(desk.receive(&raw), Outcome::Duplicate(id));
    assert_eq!(message_count(&desk, id.0), 1);
    assert_eq!(sent_to(&desk, OutboxKind::Acknowledgement).len(), 1);
    let sources = &desk.store.messages(id).expect("messages")[0].sources;
    assert_eq!(sources.len(), 2, "both copies are recorded: {sources:?}");
    expect![[r#"
        #1 New owner=- requester=fatima@phone.example flags=[Unassigned]
        outbox 1 acknowledgement #1 to=fatima@phone.example: [#1] Your message to Helpdesk
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_redelivered_copy_with_other_server_headers_is_still_one_message() {
    let desk = Desk::with(&quiet(""));
    let raw = request(
        "fatima@phone.example",
        "1",
        "Housing",
        "My landlord wants me out.",
    );
    let id = desk.new_ticket(&raw);
    let redelivered = format!(
        "Received: from mx2.charity.example by imap.charity.example; Fri, 15 Jan 2027 08:05:00 +0000\r\nDelivered-To: help@charity.example\r\nReturn-Path: <bounces+fatima@phone.example>\r\nX-Spam-Status: No\r\n{raw}"
    );
    desk.advance(SignedDuration::from_mins(5));
    assert_eq!(desk.receive(&redelivered), Outcome::Duplicate(id));
    assert_eq!(message_count(&desk, id.0), 1);
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Housing"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +5m duplicate_seen by system: another copy in INBOX
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_copy_of_a_filed_request_in_the_junk_folder_is_not_held_as_spam() {
    let desk = staffed(&quiet(""));
    let raw = request(
        "fatima@phone.example",
        "1",
        "Housing",
        "My landlord wants me out.",
    );
    let id = desk.new_ticket(&raw);
    assert_eq!(desk.receive_junk(&raw), Outcome::Duplicate(id));
    assert_eq!(status(&desk, id.0), Status::New);
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Housing
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn mail_without_a_message_id_is_deduplicated_by_its_content() {
    let desk = Desk::with(&quiet(""));
    let raw = "From: fatima@phone.example\r\nTo: help@charity.example\r\nDate: Fri, 15 Jan 2027 08:00:00 +0000\r\nSubject: Housing\r\n\r\nMy landlord wants me out.\r\n";
    let id = desk.new_ticket(raw);
    assert_eq!(desk.receive(raw), Outcome::Duplicate(id));
    let edited = raw.replace("wants me out.", "wants me out by Friday.");
    assert_eq!(
        desk.receive(&edited),
        Outcome::Added(id, Reason::OpenTicketOfRequester),
        "other text is another message"
    );
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Housing"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            anomaly: there is no usable Message-ID; the dedupe key is a content hash
            | My landlord wants me out.
          message 1 In from=fatima@phone.example +0
            anomaly: there is no usable Message-ID; the dedupe key is a content hash
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 duplicate_seen by system: another copy in INBOX
          event +0 message_added by requester fatima@phone.example: threaded by requester's open ticket
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn mail_tagged_for_a_merged_ticket_joins_the_ticket_it_was_merged_into() {
    let desk = Desk::with(&per_conversation(false));
    let first = ask(&desk, "fatima", "1");
    let second = desk.new_ticket(&request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    ));
    let merged = run(
        &desk,
        StoreCommand::TicketMerge {
            from: second.0,
            into: first.0,
        },
    );
    assert_eq!(merged, "ticket #2 merged into #1\n");
    let outcome = desk.receive(&request(
        "fatima@phone.example",
        "3",
        "Re: [#2] Another letter",
        "And a third one.",
    ));
    assert_eq!(outcome, Outcome::Added(first, Reason::SubjectTag));
    assert_eq!(message_count(&desk, first.0), 3);
    assert_eq!(message_count(&desk, second.0), 0);
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +0
            | A new letter came.
          message 2 In from=fatima@phone.example +0
            | And a third one.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 created by requester fatima@phone.example: (from #2) from INBOX
          event +0 waiting by system: (from #2) nobody on duty can take it and no shift is planned
          event +0 merged by system: #2 merged into this ticket
          event +0 message_added by requester fatima@phone.example: threaded by subject tag
        ticket #2 Closed owner=- requester=fatima@phone.example subject="Another letter"
          merged into #1
          flags {Unassigned}
          event +0 merged_into by system: merged into #1
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn merging_an_open_ticket_into_a_closed_one_reopens_it() {
    let desk = staffed(&per_conversation(false));
    let first = ask(&desk, "fatima", "1");
    answer(&desk, first.0, "amina", "#close");
    let second = desk.new_ticket(&request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    ));
    assert_eq!(status(&desk, first.0), Status::Closed);
    run(
        &desk,
        StoreCommand::TicketMerge {
            from: second.0,
            into: first.0,
        },
    );
    assert_eq!(status(&desk, first.0), Status::Open);
    assert_eq!(status(&desk, second.0), Status::Closed);
    expect![[r#"
        #1 Open owner=amina requester=fatima@phone.example flags=[]
        #2 Closed owner=- requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: Done: [#1] Help for fatima
        outbox 3 notification #2 to=amina@volunteers.example: [#2] Another letter
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_merge_by_mail_from_the_caseworker_who_owns_both_tickets_moves_everything() {
    let desk = staffed(&per_conversation(false));
    let first = ask(&desk, "fatima", "1");
    let second = desk.new_ticket(&request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    ));
    assert_eq!(owner(&desk, second.0).as_deref(), Some("amina"));
    desk.advance(hours(1));
    answer(&desk, second.0, "amina", "#merge 1");
    let merged = desk.store.ticket(second).expect("read").expect("ticket");
    assert_eq!(merged.merged_into, Some(first));
    assert_eq!(message_count(&desk, first.0), 2);
    assert!(
        sent_to(&desk, OutboxKind::Relay).is_empty(),
        "a command is never relayed"
    );
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +0
            | A new letter came.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 created by requester fatima@phone.example: (from #2) from INBOX
          event +0 assigned by system: (from #2) assigned to amina (PreviousCaseworker)
          event +1h merged by agent amina: #2 merged into this ticket
        ticket #2 Closed owner=- requester=fatima@phone.example subject="Another letter"
          merged into #1
          event +1h merged_into by agent amina: merged into #1
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Help for fatima
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     fatima@phone.example
          | Subject:  Help for fatima
          | ----------------------------------------------------------------------
          | 
          | Please help.
        outbox 2 notification ticket=#2 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.2.amina.13d35a539e321d31eca11b4e@charity.example>
          Subject: [#2] Another letter
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #2
          | Status:   new
          | Messages: 1
          | From:     fatima@phone.example
          | Subject:  Another letter
          | ----------------------------------------------------------------------
          | 
          | A new letter came.
        outbox 3 notification ticket=#2 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#2] Another letter
          Auto-Submitted: auto-generated
          | #2 merged into #1
    "#]]
    .assert_eq(&desk.render());
}

// ---------------------------------------------------------------------------------------------
// Mail that is never answered automatically

/// Files a first request carrying `headers` (whole lines) from `from` on a desk with nobody
/// registered, and checks that it opened a ticket and was not acknowledged.
fn unanswered(from: &str, headers: &str, subject: &str) -> Desk {
    let desk = Desk::new();
    let raw = format!(
        "{headers}{}",
        request(from, "1", subject, "This is an automatic message.")
    );
    let outcome = desk.receive(&raw);
    assert!(matches!(outcome, Outcome::NewTicket(_)), "{outcome:?}");
    assert!(
        sent_to(&desk, OutboxKind::Acknowledgement).is_empty(),
        "never acknowledged"
    );
    desk
}

#[test]
fn an_auto_submitted_request_is_routed_to_the_caseworker_but_never_acknowledged() {
    let desk = staffed("");
    let raw = format!(
        "Auto-Submitted: auto-generated\r\n{}",
        request(
            "alerts@bank.example",
            "1",
            "Your account",
            "Your payment was refused."
        )
    );
    let id = desk.new_ticket(&raw);
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    assert_eq!(sent_to(&desk, OutboxKind::Acknowledgement).len(), 0);
    expect![[r#"
        #1 New owner=amina requester=alerts@bank.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Your account
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn an_auto_submitted_no_request_is_acknowledged_like_any_other() {
    let desk = Desk::new();
    let raw = format!(
        "Auto-Submitted: no\r\n{}",
        request("fatima@phone.example", "1", "Housing", "Please help.")
    );
    desk.new_ticket(&raw);
    assert_eq!(
        sent_to(&desk, OutboxKind::Acknowledgement),
        ["fatima@phone.example"]
    );
    expect![[r#"
        #1 New owner=- requester=fatima@phone.example flags=[Unassigned]
        outbox 1 acknowledgement #1 to=fatima@phone.example: [#1] Your message to Helpdesk
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn precedence_bulk_mail_is_never_acknowledged() {
    let desk = unanswered(
        "news@council.example",
        "Precedence: bulk\r\n",
        "Bin collection",
    );
    expect![[r#"
        ticket #1 New owner=- requester=news@council.example subject="Bin collection"
          flags {Unassigned}
          message 0 In from=news@council.example +0
            | This is an automatic message.
          event +0 created by requester news@council.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn mailing_list_mail_is_never_acknowledged() {
    let desk = unanswered(
        "refugee-support@lists.example",
        "List-Id: Refugee support <refugee-support.lists.example>\r\n",
        "[refugee-support] Meeting on Tuesday",
    );
    expect![[r#"
        #1 New owner=- requester=refugee-support@lists.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn an_x_autoreply_message_is_never_acknowledged() {
    let desk = unanswered("office@law.example", "X-Autoreply: yes\r\n", "Re: Housing");
    expect![[r#"
        #1 New owner=- requester=office@law.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn an_out_of_office_subject_is_never_acknowledged() {
    let desk = unanswered(
        "lawyer@law.example",
        "",
        "Réponse automatique : absent jusqu'au 20 janvier",
    );
    expect![[r#"
        #1 New owner=- requester=lawyer@law.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn mail_from_mailer_daemon_that_is_no_delivery_report_is_never_acknowledged() {
    let desk = unanswered(
        "MAILER-DAEMON@relay.example",
        "",
        "Warning: message delayed",
    );
    expect![[r#"
        #1 New owner=- requester=mailer-daemon@relay.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn mail_with_a_null_return_path_is_never_acknowledged() {
    let desk = unanswered(
        "notices@court.example",
        "Return-Path: <>\r\n",
        "Hearing date",
    );
    expect![[r#"
        #1 New owner=- requester=notices@court.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_no_reply_sender_is_never_acknowledged() {
    let desk = unanswered("no-reply@benefits.example", "", "Your claim");
    expect![[r#"
        #1 New owner=- requester=no-reply@benefits.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn one_address_gets_one_acknowledgement_a_day_however_many_tickets_it_opens() {
    let desk = Desk::with(&per_conversation(true));
    ask(&desk, "fatima", "1");
    desk.new_ticket(&request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    ));
    assert_eq!(sent_to(&desk, OutboxKind::Acknowledgement).len(), 1);
    // Saturday 00:00 UTC is a new day.
    desk.advance(hours(16));
    desk.new_ticket(&request(
        "fatima@phone.example",
        "3",
        "A third letter",
        "And another.",
    ));
    assert_eq!(sent_to(&desk, OutboxKind::Acknowledgement).len(), 2);
    expect![[r#"
        #1 New owner=- requester=fatima@phone.example flags=[Unassigned]
        #2 New owner=- requester=fatima@phone.example flags=[Unassigned]
        #3 New owner=- requester=fatima@phone.example flags=[Unassigned]
        outbox 1 acknowledgement #1 to=fatima@phone.example: [#1] Your message to Helpdesk
        outbox 2 acknowledgement #3 to=fatima@phone.example: [#3] Your message to Helpdesk
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn casemails_own_mail_threading_into_a_ticket_is_a_note_that_notifies_nobody() {
    let desk = staffed(&quiet(""));
    let id = ask(&desk, "fatima", "1");
    let before = desk.store.outbox().expect("outbox").len();
    let looped = format!(
        "From: Helpdesk <{HELP}>\r\nTo: fatima@forwarder.example\r\nSubject: Re: Help for fatima [#1]\r\nMessage-ID: <casemail.r.1.00@charity.example>\r\nIn-Reply-To: <1@phone.example>\r\nX-Casemail-Loop: {HELP}\r\n\r\nPlease send the letter.\r\n"
    );
    assert_eq!(desk.receive(&looped), Outcome::Added(id, Reason::Headers));
    let messages = desk.store.messages(id).expect("messages");
    assert_eq!(messages[1].direction, Direction::Note);
    assert_eq!(desk.store.outbox().expect("outbox").len(), before);
    assert_eq!(status(&desk, id.0), Status::New, "not reopened or changed");
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 Note from=help@charity.example +0
            anomaly: there is no Date field
            anomaly: warning: this message joined the ticket by In-Reply-To/References from an address that has not written in it before; it may not come from the requester
            anomaly: casemail's own mail came back (loop header); never answered
            | Please send the letter.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 own_mail by system: mail casemail sent came back to the help address; kept as a note, not routed or answered
          event +0 message_added by requester help@charity.example: threaded by In-Reply-To/References
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Help for fatima
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     fatima@phone.example
          | Subject:  Help for fatima
          | ----------------------------------------------------------------------
          | 
          | Please help.
    "#]]
    .assert_eq(&desk.render());
}

// ---------------------------------------------------------------------------------------------
// Bounces and suppression

#[test]
fn a_hard_bounce_of_an_acknowledgement_suppresses_the_requester_for_a_while() {
    let desk = Desk::with(&per_conversation(true));
    let id = ask(&desk, "fatima", "1");
    let ack = acknowledgement_id(&desk);
    let outcome = desk.receive(&delivery_report(
        "Mail Delivery System <MAILER-DAEMON@relay.example>",
        "",
        "dsn1",
        &ack,
        "fatima@phone.example",
    ));
    assert_eq!(outcome, Outcome::Bounced(id));
    // The next day a new request from her is filed, but nothing is sent to her.
    desk.advance(hours(24));
    let later = ask(&desk, "fatima", "2");
    assert_eq!(sent_to(&desk, OutboxKind::Acknowledgement).len(), 1);
    assert!(event_kinds(&desk, later.0).contains(&"mail_suppressed".to_owned()));
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 Note from=mailer-daemon@relay.example +0
            anomaly: there is no Date field
            anomaly: delivery report: mail sent for this ticket bounced
            | Your message could not be delivered.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 bounce by system: a delivery report came back for mail sent on this ticket
          event +0 address_suppressed by system: nothing is sent to fatima@phone.example until 2027-01-22T08:00:00Z after a hard bounce (delivery status 5.1.1)
        ticket #2 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +24h
            | Please help.
          event +24h created by requester fatima@phone.example: from INBOX
          event +24h waiting by system: nobody on duty can take it and no shift is planned
          event +24h mail_suppressed by system: acknowledgement not sent: the address is suppressed until 2027-01-22T08:00:00Z after a hard bounce (delivery status 5.1.1)
        outbox 1 acknowledgement ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: fatima@phone.example
          Subject: [#1] Your message to Helpdesk
          Auto-Submitted: auto-replied
          | Hello,
          | 
          | Thank you for writing to Helpdesk. We have received your message.
          | 
          | Your ticket number is: #1
          | 
          | What happens next: a caseworker will read your message and answer you by email. You do not need to write again. If you want to add something, reply to this email and keep [#1] in the subject.
          | 
          | This message was sent automatically.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_delivery_report_naming_an_address_that_was_never_a_recipient_suppresses_nothing() {
    let desk = Desk::with(&per_conversation(true));
    let id = ask(&desk, "fatima", "1");
    let ack = acknowledgement_id(&desk);
    let outcome = desk.receive(&delivery_report(
        "MAILER-DAEMON@relay.example",
        "",
        "dsn1",
        &ack,
        "nadia@phone.example",
    ));
    assert_eq!(outcome, Outcome::Bounced(id));
    assert!(desk.store.suppressions().expect("suppressions").is_empty());
    ask(&desk, "nadia", "2");
    assert_eq!(
        sent_to(&desk, OutboxKind::Acknowledgement),
        ["fatima@phone.example", "nadia@phone.example"]
    );
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 Note from=mailer-daemon@relay.example +0
            anomaly: there is no Date field
            anomaly: delivery report: mail sent for this ticket bounced
            | Your message could not be delivered.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 bounce by system: a delivery report came back for mail sent on this ticket
          event +0 bounce_not_counted by system: a delivery report named a failed recipient (status 5.1.1); nothing suppressed: the address was not a recipient of the message the report quotes
        ticket #2 New owner=- requester=nadia@phone.example subject="Help for nadia"
          flags {Unassigned}
          message 0 In from=nadia@phone.example +0
            | Please help.
          event +0 created by requester nadia@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
        outbox 1 acknowledgement ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: fatima@phone.example
          Subject: [#1] Your message to Helpdesk
          Auto-Submitted: auto-replied
          | Hello,
          | 
          | Thank you for writing to Helpdesk. We have received your message.
          | 
          | Your ticket number is: #1
          | 
          | What happens next: a caseworker will read your message and answer you by email. You do not need to write again. If you want to add something, reply to this email and keep [#1] in the subject.
          | 
          | This message was sent automatically.
        outbox 2 acknowledgement ticket=#2 to=nadia@phone.example
          From: Helpdesk <help@charity.example>
          To: nadia@phone.example
          Subject: [#2] Your message to Helpdesk
          Auto-Submitted: auto-replied
          | Hello,
          | 
          | Thank you for writing to Helpdesk. We have received your message.
          | 
          | Your ticket number is: #2
          | 
          | What happens next: a caseworker will read your message and answer you by email. You do not need to write again. If you want to add something, reply to this email and keep [#2] in the subject.
          | 
          | This message was sent automatically.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_delivery_report_about_no_mail_of_casemails_opens_a_ticket_that_is_never_answered() {
    let desk = Desk::new();
    let outcome = desk.receive(&delivery_report(
        "MAILER-DAEMON@relay.example",
        "",
        "dsn1",
        "unknown@elsewhere.example",
        "fatima@phone.example",
    ));
    assert!(matches!(outcome, Outcome::NewTicket(_)), "{outcome:?}");
    assert!(desk.store.outbox().expect("outbox").is_empty());
    assert!(desk.store.suppressions().expect("suppressions").is_empty());
    expect![[r#"
        #1 New owner=- requester=mailer-daemon@relay.example flags=[Unassigned]
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// Caps on what casemail sends

#[test]
fn the_hourly_cap_per_recipient_holds_back_automatic_mail_and_the_ticket_says_so() {
    let desk = Desk::with(&format!(
        "{}[loops]\nper_recipient_per_hour = 2\n",
        quiet("")
    ));
    desk.add_agent_as("carol", Role::Coordinator);
    ask(&desk, "fatima", "1");
    ask(&desk, "nadia", "2");
    let third = ask(&desk, "omar", "3");
    assert_eq!(sent_to(&desk, OutboxKind::Notification).len(), 2);
    assert!(event_kinds(&desk, third.0).contains(&"mail_capped".to_owned()));
    // The next clock hour, the cap starts again.
    desk.advance(hours(1));
    ask(&desk, "leila", "4");
    assert_eq!(sent_to(&desk, OutboxKind::Notification).len(), 3);
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
        ticket #2 New owner=- requester=nadia@phone.example subject="Help for nadia"
          flags {Unassigned}
          message 0 In from=nadia@phone.example +0
            | Please help.
          event +0 created by requester nadia@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
        ticket #3 New owner=- requester=omar@phone.example subject="Help for omar"
          flags {Unassigned}
          message 0 In from=omar@phone.example +0
            | Please help.
          event +0 created by requester omar@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 mail_capped by system: notification not sent: the recipient already got 2 message(s) this hour
        ticket #4 New owner=- requester=leila@phone.example subject="Help for leila"
          flags {Unassigned}
          message 0 In from=leila@phone.example +1h
            | Please help.
          event +1h created by requester leila@phone.example: from INBOX
          event +1h waiting by system: nobody on duty can take it and no shift is planned
        outbox 1 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Help for fatima (nobody on duty could take this ticket)
          Auto-Submitted: auto-generated
          | nobody on duty could take this ticket.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | Owner:    nobody
        outbox 2 notification ticket=#2 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#2] Help for nadia (nobody on duty could take this ticket)
          Auto-Submitted: auto-generated
          | nobody on duty could take this ticket.
          | 
          | Ticket:   #2
          | Status:   new
          | Messages: 1
          | Owner:    nobody
        outbox 3 notification ticket=#4 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#4] Help for leila (nobody on duty could take this ticket)
          Auto-Submitted: auto-generated
          | nobody on duty could take this ticket.
          | 
          | Ticket:   #4
          | Status:   new
          | Messages: 1
          | Owner:    nobody
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn the_daily_cap_per_ticket_holds_back_automatic_mail_but_never_a_caseworkers_answer() {
    let desk = staffed("[loops]\nper_ticket_per_day = 1\n[rota]\ndigest_at = \"23:30\"\n");
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    assert!(
        sent_to(&desk, OutboxKind::Acknowledgement).is_empty(),
        "the notification used the day's one message"
    );
    desk.advance(hours(1));
    let outcome = answer(&desk, id.0, "amina", "You can stay until a court order.");
    assert_eq!(outcome, Outcome::Relayed(id));
    assert_eq!(sent_to(&desk, OutboxKind::Relay), ["fatima@phone.example"]);
    expect![[r#"
        ticket #1 Waiting owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          message 1 Out from=amina@volunteers.example +1h
            | You can stay until a court order.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 mail_capped by system: acknowledgement not sent: 1 message(s) were already sent about this ticket today
          event +1h replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 2 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          | You can stay until a court order.
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_second_copy_of_a_message_in_a_merged_ticket_is_still_a_duplicate() {
    let desk = Desk::with(&per_conversation(false));
    let first = ask(&desk, "fatima", "1");
    let letter = request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    );
    let second = desk.new_ticket(&letter);
    run(
        &desk,
        StoreCommand::TicketMerge {
            from: second.0,
            into: first.0,
        },
    );
    desk.advance(hours(1));
    assert_eq!(desk.receive(&letter), Outcome::Duplicate(first));
    assert_eq!(message_count(&desk, first.0), 2);
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +0
            | A new letter came.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 created by requester fatima@phone.example: (from #2) from INBOX
          event +0 waiting by system: (from #2) nobody on duty can take it and no shift is planned
          event +0 merged by system: #2 merged into this ticket
          event +1h duplicate_seen by system: another copy in INBOX
        ticket #2 Closed owner=- requester=fatima@phone.example subject="Another letter"
          merged into #1
          flags {Unassigned}
          event +0 merged_into by system: merged into #1
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_bounce_of_a_relayed_answer_is_filed_with_the_ticket_and_its_caseworker_is_told() {
    let desk = staffed(&quiet(""));
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    desk.advance(hours(1));
    answer(&desk, id.0, "amina", "You can stay until a court order.");
    let relayed = outbox_id(&desk, OutboxKind::Relay);
    desk.advance(hours(1));
    let outcome = desk.receive(&delivery_report(
        "MAILER-DAEMON@relay.example",
        "",
        "dsn1",
        &relayed,
        "fatima@phone.example",
    ));
    assert_eq!(outcome, Outcome::Bounced(id));
    let suppressed = desk.store.suppressions().expect("suppressions");
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0].address, "fatima@phone.example");
    expect![[r#"
        ticket #1 Waiting owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          message 1 Out from=amina@volunteers.example +1h
            | You can stay until a court order.
          message 2 Note from=mailer-daemon@relay.example +2h
            anomaly: there is no Date field
            anomaly: delivery report: mail sent for this ticket bounced
            | Your message could not be delivered.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +1h replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
          event +2h bounce by system: a delivery report came back for mail sent on this ticket
          event +2h address_suppressed by system: nothing is sent to fatima@phone.example until 2027-01-22T10:00:00Z after a hard bounce (delivery status 5.1.1)
        outbox 1 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Reply-To: Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 2 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          | You can stay until a court order.
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: [#1] Housing (mail sent for this ticket bounced; see the delivery report in the ticket)
          Auto-Submitted: auto-generated
          | mail sent for this ticket bounced; see the delivery report in the ticket.
          | 
          | Ticket:   #1
          | Status:   waiting
          | Messages: 3
          | Owner:    amina
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_delivery_report_never_suppresses_a_caseworkers_address() {
    let desk = staffed(&quiet(""));
    let id = ask(&desk, "fatima", "1");
    let notification = outbox_id(&desk, OutboxKind::Notification);
    let outcome = desk.receive(&delivery_report(
        "MAILER-DAEMON@relay.example",
        "",
        "dsn1",
        &notification,
        "amina@volunteers.example",
    ));
    assert_eq!(outcome, Outcome::Bounced(id));
    assert!(desk.store.suppressions().expect("suppressions").is_empty());
    let events = desk.store.events(id).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "bounce_not_counted"
            && e.detail
                .ends_with("the address is a registered caseworker's")),
        "{events:?}"
    );
    // Her next notification still goes out.
    desk.receive(&request(
        "fatima@phone.example",
        "2",
        "Another thing",
        "They also cut the heating.",
    ));
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: [#1] Help for fatima (a delivery report about this ticket's mail arrived but was not counted (see the ticket's events); nothing was suppressed)
        outbox 3 notification #1 to=amina@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

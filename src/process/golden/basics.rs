use expect_test::expect;

use crate::process::Outcome;
use crate::process::desk::{Desk, request};

#[test]
fn a_first_request_opens_a_ticket_and_is_acknowledged() {
    let desk = Desk::new();
    let outcome = desk.receive(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    assert!(matches!(outcome, Outcome::NewTicket(_)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Housing"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
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
    "#]].assert_eq(&desk.render());
}

#[test]
fn a_request_on_duty_goes_to_the_caseworker_and_her_answer_to_the_requester() {
    let desk = Desk::new();
    desk.add_agent("amina");
    desk.rota(
        "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\nstart = \"08:00\"\nend = \"18:00\"\n",
    );
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    desk.sweep();
    desk.advance(jiff::SignedDuration::from_hours(1));
    let outcome = desk.receive(&desk.reply(id, "amina", "You can stay until a court order."));
    assert!(matches!(outcome, Outcome::Relayed(_)), "{outcome:?}");
    expect![[r#"
        ticket #1 Waiting owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          message 1 Out from=amina@volunteers.example +1h
            | You can stay until a court order.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
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
        outbox 2 acknowledgement ticket=#1 to=fatima@phone.example
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
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          | You can stay until a court order.
    "#]].assert_eq(&desk.render());
}

#[test]
fn mail_from_the_junk_folder_is_held_as_spam_and_never_acknowledged() {
    let desk = Desk::new();
    desk.receive_junk(&request(
        "Winner <prize@lottery.example>",
        "1",
        "You won",
        "Claim your prize today.",
    ));
    assert!(
        desk.outbox_texts(crate::model::OutboxKind::Acknowledgement)
            .is_empty()
    );
    expect![[r#"
        ticket #1 Spam owner=- requester=prize@lottery.example subject="You won"
          flags {SuspectedSpam}
          message 0 In from=prize@lottery.example +0
            | Claim your prize today.
          event +0 created by requester prize@lottery.example: from INBOX
          event +0 spam by system: held as spam, score 5.00 (threshold 5): junk_folder +5.0
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_new_desk_sends_no_empty_digest_and_the_days_digest_once_a_ticket_arrives() {
    let desk = Desk::with("[rota]\ndigest_at = \"09:00\"\n");
    desk.add_agent_as("carol", crate::model::Role::Coordinator);
    desk.advance(jiff::SignedDuration::from_hours(2));
    assert!(!desk.sweep().digest_sent, "no tickets yet: no digest");
    desk.receive(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    desk.advance(jiff::SignedDuration::from_mins(1));
    assert!(
        desk.sweep().digest_sent,
        "the day's digest goes once there is a ticket"
    );
    assert_eq!(
        desk.outbox_texts(crate::model::OutboxKind::Digest).len(),
        1,
        "{}",
        desk.render()
    );
}

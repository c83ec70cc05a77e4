//! Golden tests of routing: the rota (shifts, overnight and whole-day shifts, leave, extra
//! shifts), caseworkers stepping away and coming back, caps, nobody on duty, assignment when a
//! shift starts, handover after `[rota] answer_within`, the daily digest, the fewest-open choice
//! and its ties, a returning requester's previous caseworker, coordinators, and the operator's
//! ticket commands. The desk starts on Friday 15 January 2027, 08:00 UTC.
//!
//! The helpers here are shared with `routing_threads.rs`.

use std::fmt::Write as _;

use expect_test::expect;
use jiff::{SignedDuration, Timestamp};

use crate::ids::{AgentId, TicketId};
use crate::mail::parse::{self, ParseLimits};
use crate::model::{OutboxKind, Role, Status, TicketFlag};
use crate::ops::StoreCommand;
use crate::process::Outcome;
use crate::process::desk::{Desk, START, request};

/// Acknowledgements off and the digest late in the day, for tests about something else.
pub(super) fn quiet(rota_keys: &str) -> String {
    format!("[acknowledge]\nenabled = false\n[rota]\ndigest_at = \"23:30\"\n{rota_keys}")
}

pub(super) const EVERY_DAY: &str = "mon,tue,wed,thu,fri,sat,sun";
const WEEKDAYS: &str = "mon,tue,wed,thu,fri";

/// A rota made of `entries` (`shift`, `leave`, `extra`), in the config's time zone.
pub(super) fn rota(entries: &[String]) -> String {
    entries.concat()
}

/// A weekly shift; `days` is a comma-separated list (`"mon,fri"`).
pub(super) fn shift(agent: &str, days: &str, start: &str, end: &str) -> String {
    let days: Vec<String> = days.split(',').map(|day| format!("{day:?}")).collect();
    format!(
        "[[shift]]\nagent = {agent:?}\ndays = [{}]\nstart = {start:?}\nend = {end:?}\n",
        days.join(", ")
    )
}

pub(super) fn leave(agent: &str, from: &str, until: &str) -> String {
    format!("[[leave]]\nagent = {agent:?}\nfrom = {from:?}\nuntil = {until:?}\n")
}

pub(super) fn extra(agent: &str, date: &str, start: &str, end: &str) -> String {
    format!("[[extra]]\nagent = {agent:?}\ndate = {date:?}\nstart = {start:?}\nend = {end:?}\n")
}

pub(super) fn hours(hours: i64) -> SignedDuration {
    SignedDuration::from_hours(hours)
}

/// A first request from `who@phone.example`, with Message-ID `<{id}@phone.example>`.
pub(super) fn ask(desk: &Desk, who: &str, id: &str) -> TicketId {
    desk.new_ticket(&request(
        &format!("{who}@phone.example"),
        id,
        &format!("Help for {who}"),
        "Please help.",
    ))
}

/// The caseworker owning ticket `n`, if any.
pub(super) fn owner(desk: &Desk, n: u64) -> Option<String> {
    desk.store
        .ticket(TicketId(n))
        .expect("read")
        .expect("ticket")
        .owner
        .map(|o| o.0)
}

pub(super) fn status(desk: &Desk, n: u64) -> Status {
    desk.store
        .ticket(TicketId(n))
        .expect("read")
        .expect("ticket")
        .status
}

/// Recipients of every outbox message of `kind`, in order.
pub(super) fn sent_to(desk: &Desk, kind: OutboxKind) -> Vec<String> {
    desk.store
        .outbox()
        .expect("outbox")
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.recipients.join(","))
        .collect()
}

/// The kinds of the events of ticket `n`, in order.
pub(super) fn event_kinds(desk: &Desk, n: u64) -> Vec<String> {
    desk.store
        .events(TicketId(n))
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// A smaller rendering than `Desk::render`: each ticket on one line, then each outbox message
/// with its kind, ticket, recipient and subject.
pub(super) fn summary(desk: &Desk) -> String {
    let mut out = String::new();
    for ticket in desk.store.tickets().expect("tickets") {
        let flags: Vec<String> = ticket.flags.iter().map(|f| format!("{f:?}")).collect();
        let _ = writeln!(
            out,
            "#{} {:?} owner={} requester={} flags=[{}]",
            ticket.id.0,
            ticket.status,
            ticket.owner.as_ref().map_or("-", |o| o.0.as_str()),
            ticket.requester,
            flags.join(",")
        );
    }
    for entry in desk.store.outbox().expect("outbox") {
        let raw = desk
            .store
            .outbox_raw(entry.id)
            .expect("raw")
            .unwrap_or_default();
        let mail = parse::parse(&raw, &ParseLimits::default());
        let _ = writeln!(
            out,
            "outbox {} {} {} to={}: {}",
            entry.id,
            entry.kind.name(),
            entry.ticket.map_or("-".to_owned(), |t| format!("#{}", t.0)),
            entry.recipients.join(","),
            mail.subject.unwrap_or_default()
        );
    }
    out
}

pub(super) fn run(desk: &Desk, command: StoreCommand) -> String {
    match desk.run(command) {
        Ok(printed) => printed,
        Err(err) => panic!("the command failed: {err}"),
    }
}

fn away(desk: &Desk, id: &str, until: Option<&str>) -> String {
    run(
        desk,
        StoreCommand::AgentAway {
            id: id.to_owned(),
            until: until.map(str::to_owned),
        },
    )
}

fn cap(desk: &Desk, id: &str, max_open: u32) {
    run(
        desk,
        StoreCommand::AgentEdit {
            id: id.to_owned(),
            name: None,
            max_open: Some(max_open),
            role: None,
        },
    );
}

/// `agent` answers ticket `n` with `text` (commands or an answer).
pub(super) fn answer(desk: &Desk, n: u64, agent: &str, text: &str) -> Outcome {
    desk.receive(&desk.reply(TicketId(n), agent, text))
}

fn agent_id(id: &str) -> AgentId {
    AgentId(id.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Nobody on duty, and the start of a shift

#[test]
fn a_request_outside_every_shift_waits_and_the_coordinators_are_told() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent_as("carol", Role::Coordinator);
    desk.rota(&rota(&[shift("amina", WEEKDAYS, "09:00", "17:00")]));
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    assert_eq!(owner(&desk, id.0), None);
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["carol@volunteers.example"]
    );
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Housing"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-15T09:00:00Z
        outbox 1 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (nobody on duty could take this ticket)
          Auto-Submitted: auto-generated
          | nobody on duty could take this ticket.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | Owner:    nobody
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_waiting_ticket_goes_to_whoever_comes_on_duty_when_the_shift_starts() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", WEEKDAYS, "09:00", "17:00")]));
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    let early = desk.sweep();
    assert!(early.assigned.is_empty(), "{early:?}");
    assert_eq!(
        early.next_due,
        Some(Timestamp::from_second(START + 3600).expect("time")),
        "the next sweep is due when the shift starts"
    );
    desk.advance(hours(1));
    let swept = desk.sweep();
    assert_eq!(swept.assigned, [(id, agent_id("amina"))]);
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-15T09:00:00Z
          event +1h assigned by system: assigned to amina (FewestOpen)
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
    "#]]
    .assert_eq(&desk.render());
}

// ---------------------------------------------------------------------------------------------
// Shifts: overnight, whole-day, leave, extra shifts

#[test]
fn an_overnight_shift_covers_the_small_hours_of_the_next_day() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("tesfay");
    desk.rota(&rota(&[shift("tesfay", "fri", "22:00", "06:00")]));
    // Saturday 03:00.
    desk.advance(hours(19));
    let shown_rota = run(
        &desk,
        StoreCommand::RotaShow {
            at: Some("2027-01-16T03:00".to_owned()),
            json: false,
        },
    );
    expect![[r#"
        at Sat 2027-01-16 03:00 UTC (UTC)
        on duty: tesfay
        next shift starts Fri 2027-01-22 22:00 UTC
    "#]]
    .assert_eq(&shown_rota);
    let id = ask(&desk, "fatima", "1");
    assert_eq!(owner(&desk, id.0).as_deref(), Some("tesfay"));
    expect![[r#"
        #1 New owner=tesfay requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=tesfay@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn an_overnight_shift_ends_when_its_end_minute_begins() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("tesfay");
    desk.rota(&rota(&[shift("tesfay", "fri", "22:00", "06:00")]));
    // Saturday 05:59: still on duty; Saturday 06:00: off, until next Friday 22:00.
    desk.advance(SignedDuration::from_mins(21 * 60 + 59));
    let on = ask(&desk, "fatima", "1");
    desk.advance(SignedDuration::from_mins(1));
    let off = ask(&desk, "nadia", "2");
    assert_eq!(owner(&desk, on.0).as_deref(), Some("tesfay"));
    assert_eq!(owner(&desk, off.0), None);
    expect![[r#"
        ticket #1 New owner=tesfay requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +1319m
            | Please help.
          event +1319m created by requester fatima@phone.example: from INBOX
          event +1319m assigned by system: assigned to tesfay (FewestOpen)
        ticket #2 New owner=- requester=nadia@phone.example subject="Help for nadia"
          flags {Unassigned}
          message 0 In from=nadia@phone.example +22h
            | Please help.
          event +22h created by requester nadia@phone.example: from INBOX
          event +22h waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-22T22:00:00Z
        outbox 1 notification ticket=#1 to=tesfay@volunteers.example
          From: Helpdesk <help@charity.example>
          To: tesfay@volunteers.example
          Reply-To: Helpdesk <help+cm.1.tesfay.ba2835a50fff0c21a7098540@charity.example>
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

#[test]
fn a_shift_whose_end_equals_its_start_lasts_a_whole_day() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", "fri", "08:00", "08:00")]));
    // Saturday 07:59 is inside Friday's shift; Saturday 08:00 is not.
    desk.advance(SignedDuration::from_mins(23 * 60 + 59));
    let inside = ask(&desk, "fatima", "1");
    desk.advance(SignedDuration::from_mins(1));
    let after = ask(&desk, "nadia", "2");
    assert_eq!(owner(&desk, inside.0).as_deref(), Some("amina"));
    assert_eq!(owner(&desk, after.0), None);
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=- requester=nadia@phone.example flags=[Unassigned]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn leave_takes_a_caseworker_off_duty_even_during_her_shift() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "00:00", "24:00"),
        leave("amina", "2027-01-15", "2027-01-15"),
    ]));
    let id = ask(&desk, "fatima", "1");
    assert_eq!(owner(&desk, id.0), None);
    // The leave covers the whole of Friday; she is back at midnight.
    desk.advance(SignedDuration::from_mins(15 * 60 + 59));
    assert!(desk.sweep().assigned.is_empty());
    desk.advance(SignedDuration::from_mins(1));
    assert_eq!(desk.sweep().assigned, [(id, agent_id("amina"))]);
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-16T00:00:00Z
          event +16h assigned by system: assigned to amina (FewestOpen)
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

#[test]
fn a_leave_that_ends_mid_shift_brings_the_caseworker_on_duty_at_that_moment() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[
        shift("amina", "fri", "08:00", "18:00"),
        leave("amina", "2027-01-15T00:00", "2027-01-15T10:30"),
    ]));
    let id = ask(&desk, "fatima", "1");
    let swept = desk.sweep();
    let back = Timestamp::from_second(START + 2 * 3600 + 1800).expect("time");
    assert_eq!(swept.next_due, Some(back));
    desk.advance(SignedDuration::from_mins(150));
    assert_eq!(desk.sweep().assigned, [(id, agent_id("amina"))]);
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-15T10:30:00Z
          event +150m assigned by system: assigned to amina (FewestOpen)
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

#[test]
fn an_extra_shift_puts_a_caseworker_on_duty_on_its_date_only() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("leila");
    desk.rota(&rota(&[extra("leila", "2027-01-16", "10:00", "14:00")]));
    let first = ask(&desk, "fatima", "1");
    // Saturday 11:00, inside the extra shift.
    desk.advance(hours(27));
    assert_eq!(desk.sweep().assigned, [(first, agent_id("leila"))]);
    // A week later nobody is on duty, and nobody ever will be.
    desk.advance(hours(7 * 24));
    let later = ask(&desk, "nadia", "2");
    assert_eq!(owner(&desk, later.0), None);
    expect![[r#"
        ticket #1 New owner=leila requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-16T10:00:00Z
          event +27h assigned by system: assigned to leila (FewestOpen)
        ticket #2 New owner=- requester=nadia@phone.example subject="Help for nadia"
          flags {Unassigned}
          message 0 In from=nadia@phone.example +195h
            | Please help.
          event +195h created by requester nadia@phone.example: from INBOX
          event +195h waiting by system: nobody on duty can take it and no shift is planned
        outbox 1 notification ticket=#1 to=leila@volunteers.example
          From: Helpdesk <help@charity.example>
          To: leila@volunteers.example
          Reply-To: Helpdesk <help+cm.1.leila.4cd4420ec9e696d86d5a02e4@charity.example>
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
// Stepping away and coming back

#[test]
fn agent_away_from_the_cli_hands_her_open_tickets_back_to_routing() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "00:00", "24:00"),
        shift("jonas", EVERY_DAY, "00:00", "24:00"),
    ]));
    let id = ask(&desk, "fatima", "1");
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    let printed = away(&desk, "amina", None);
    assert_eq!(
        printed,
        "agent amina away; 1 open ticket(s) back to routing\n"
    );
    assert_eq!(owner(&desk, id.0), None);
    desk.advance(SignedDuration::from_mins(1));
    assert_eq!(desk.sweep().assigned, [(id, agent_id("jonas"))]);
    expect![[r#"
        ticket #1 New owner=jonas requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 unassigned by system: agent away: amina; back to routing
          event +1m assigned by system: assigned to jonas (FewestOpen)
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
        outbox 2 notification ticket=#1 to=jonas@volunteers.example
          From: Helpdesk <help@charity.example>
          To: jonas@volunteers.example
          Reply-To: Helpdesk <help+cm.1.jonas.4bab70982738bc1799079fc2@charity.example>
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

#[test]
fn a_caseworker_away_until_a_moment_gets_tickets_again_from_then() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "08:00", "18:00")]));
    let printed = away(&desk, "amina", Some("2027-01-15T12:00:00Z"));
    assert_eq!(
        printed,
        "agent amina away until 2027-01-15 12:00 UTC; 0 open ticket(s) back to routing\n"
    );
    let id = ask(&desk, "fatima", "1");
    desk.advance(SignedDuration::from_mins(3 * 60 + 59));
    assert!(desk.sweep().assigned.is_empty(), "still away at 11:59");
    desk.advance(SignedDuration::from_mins(1));
    assert_eq!(desk.sweep().assigned, [(id, agent_id("amina"))]);
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-16T08:00:00Z
          event +4h assigned by system: assigned to amina (FewestOpen)
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

#[test]
fn a_ticket_handed_back_when_nobody_else_is_on_duty_waits_and_the_coordinators_are_told() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent_as("carol", Role::Coordinator);
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "08:00", "18:00")]));
    let id = ask(&desk, "fatima", "1");
    away(&desk, "amina", None);
    desk.advance(SignedDuration::from_mins(1));
    assert!(desk.sweep().assigned.is_empty());
    assert!(
        desk.store
            .ticket(id)
            .expect("read")
            .expect("ticket")
            .flags
            .contains(&TicketFlag::Unassigned)
    );
    desk.advance(SignedDuration::from_mins(1));
    desk.sweep();
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["amina@volunteers.example", "carol@volunteers.example"],
        "the coordinators are told once"
    );
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 unassigned by system: agent away: amina; back to routing
          event +1m waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-16T08:00:00Z
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
        outbox 2 notification ticket=#1 to=carol@volunteers.example
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
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn agent_back_from_the_cli_makes_her_eligible_at_the_next_sweep() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "00:00", "24:00")]));
    away(&desk, "amina", None);
    let id = ask(&desk, "fatima", "1");
    desk.advance(hours(1));
    assert!(desk.sweep().assigned.is_empty(), "away with no end");
    assert_eq!(
        run(
            &desk,
            StoreCommand::AgentBack {
                id: "amina".to_owned()
            }
        ),
        "agent amina is back\n"
    );
    assert_eq!(desk.sweep().assigned, [(id, agent_id("amina"))]);
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// Caps

#[test]
fn a_caseworker_at_her_cap_gets_no_more_and_the_ticket_waits() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent_as("carol", Role::Coordinator);
    cap(&desk, "amina", 1);
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "08:00", "18:00")]));
    let first = ask(&desk, "fatima", "1");
    let second = ask(&desk, "nadia", "2");
    assert_eq!(owner(&desk, first.0).as_deref(), Some("amina"));
    assert_eq!(owner(&desk, second.0), None);
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
        ticket #2 New owner=- requester=nadia@phone.example subject="Help for nadia"
          flags {Unassigned}
          message 0 In from=nadia@phone.example +0
            | Please help.
          event +0 created by requester nadia@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it; waits for the shift starting 2027-01-16T08:00:00Z
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
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn a_ticket_waiting_on_a_cap_goes_out_once_the_caseworker_closes_one() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    cap(&desk, "amina", 1);
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "08:00", "18:00")]));
    let first = ask(&desk, "fatima", "1");
    let second = ask(&desk, "nadia", "2");
    desk.advance(hours(1));
    assert!(desk.sweep().assigned.is_empty(), "still at her cap");
    answer(&desk, first.0, "amina", "#close");
    assert_eq!(status(&desk, first.0), Status::Closed);
    assert!(
        sent_to(&desk, OutboxKind::Relay).is_empty(),
        "a command is not relayed"
    );
    assert_eq!(desk.sweep().assigned, [(second, agent_id("amina"))]);
    expect![[r#"
        #1 Closed owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=amina requester=nadia@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: Done: [#1] Help for fatima
        outbox 3 notification #2 to=amina@volunteers.example: [#2] Help for nadia
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// Fewest open tickets, and ties

#[test]
fn the_caseworker_with_the_fewest_open_tickets_gets_the_next_one() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("jonas", EVERY_DAY, "09:00", "18:00"),
    ]));
    ask(&desk, "fatima", "1");
    ask(&desk, "nadia", "2");
    desk.advance(hours(1));
    ask(&desk, "omar", "3");
    // amina has two open tickets, jonas one: jonas again.
    let fourth = ask(&desk, "leila", "4");
    assert_eq!(owner(&desk, fourth.0).as_deref(), Some("jonas"));
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=amina requester=nadia@phone.example flags=[]
        #3 New owner=jonas requester=omar@phone.example flags=[]
        #4 New owner=jonas requester=leila@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #2 to=amina@volunteers.example: [#2] Help for nadia
        outbox 3 notification #3 to=jonas@volunteers.example: [#3] Help for omar
        outbox 4 notification #4 to=jonas@volunteers.example: [#4] Help for leila
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_tie_goes_to_whoever_was_given_a_ticket_longest_ago() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("zara");
    desk.rota(&rota(&[
        shift("zara", EVERY_DAY, "08:00", "18:00"),
        shift("amina", EVERY_DAY, "09:00", "18:00"),
    ]));
    ask(&desk, "fatima", "1");
    desk.advance(hours(1));
    ask(&desk, "nadia", "2");
    // One open ticket each; zara's was given first, so zara, though "amina" sorts first.
    let third = ask(&desk, "omar", "3");
    assert_eq!(owner(&desk, third.0).as_deref(), Some("zara"));
    expect![[r#"
        #1 New owner=zara requester=fatima@phone.example flags=[]
        #2 New owner=amina requester=nadia@phone.example flags=[]
        #3 New owner=zara requester=omar@phone.example flags=[]
        outbox 1 notification #1 to=zara@volunteers.example: [#1] Help for fatima
        outbox 2 notification #2 to=amina@volunteers.example: [#2] Help for nadia
        outbox 3 notification #3 to=zara@volunteers.example: [#3] Help for omar
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_caseworker_never_given_a_ticket_goes_first_in_a_tie() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("zara");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("zara", EVERY_DAY, "08:00", "18:00"),
    ]));
    let first = ask(&desk, "fatima", "1");
    assert_eq!(owner(&desk, first.0).as_deref(), Some("amina"));
    answer(&desk, first.0, "amina", "#close");
    // Nobody has an open ticket; zara has never had one.
    let second = ask(&desk, "nadia", "2");
    assert_eq!(owner(&desk, second.0).as_deref(), Some("zara"));
    expect![[r#"
        #1 Closed owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=zara requester=nadia@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: Done: [#1] Help for fatima
        outbox 3 notification #2 to=zara@volunteers.example: [#2] Help for nadia
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// One person, one caseworker

#[test]
fn a_returning_requester_gets_her_previous_caseworker_even_when_she_is_busier() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("jonas", EVERY_DAY, "08:00", "18:00"),
    ]));
    let fatima = ask(&desk, "fatima", "1");
    let nadia = ask(&desk, "nadia", "2");
    ask(&desk, "omar", "3");
    answer(&desk, nadia.0, "jonas", "#close");
    answer(&desk, fatima.0, "amina", "#close");
    // amina has omar's ticket open, jonas nothing; fatima's new request still goes to amina.
    desk.advance(hours(2));
    let again = desk.new_ticket(&request(
        "fatima@phone.example",
        "4",
        "Another letter",
        "A new letter came.",
    ));
    assert_eq!(owner(&desk, again.0).as_deref(), Some("amina"));
    expect![[r#"
        #1 Closed owner=amina requester=fatima@phone.example flags=[]
        #2 Closed owner=jonas requester=nadia@phone.example flags=[]
        #3 New owner=amina requester=omar@phone.example flags=[]
        #4 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #2 to=jonas@volunteers.example: [#2] Help for nadia
        outbox 3 notification #3 to=amina@volunteers.example: [#3] Help for omar
        outbox 4 notification #2 to=jonas@volunteers.example: Done: [#2] Help for nadia
        outbox 5 notification #1 to=amina@volunteers.example: Done: [#1] Help for fatima
        outbox 6 notification #4 to=amina@volunteers.example: [#4] Another letter
    "#]]
    .assert_eq(&summary(&desk));
    let events = desk.store.events(again).expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.detail == "assigned to amina (PreviousCaseworker)"),
        "{events:?}"
    );
}

#[test]
fn a_returning_requester_whose_caseworker_is_off_duty_goes_to_someone_on_duty() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "10:00"),
        shift("jonas", EVERY_DAY, "10:00", "18:00"),
    ]));
    let first = ask(&desk, "fatima", "1");
    answer(&desk, first.0, "amina", "#close");
    desk.advance(hours(3));
    let again = desk.new_ticket(&request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    ));
    assert_eq!(owner(&desk, again.0).as_deref(), Some("jonas"));
    expect![[r#"
        #1 Closed owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=jonas requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: Done: [#1] Help for fatima
        outbox 3 notification #2 to=jonas@volunteers.example: [#2] Another letter
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// Coordinators

#[test]
fn a_coordinator_on_the_rota_takes_tickets_like_any_caseworker() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent_as("carol", Role::Coordinator);
    desk.rota(&rota(&[shift("carol", EVERY_DAY, "08:00", "18:00")]));
    let id = ask(&desk, "fatima", "1");
    assert_eq!(owner(&desk, id.0).as_deref(), Some("carol"));
    assert!(!event_kinds(&desk, id.0).contains(&"waiting".to_owned()));
    expect![[r#"
        ticket #1 New owner=carol requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to carol (FewestOpen)
        outbox 1 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Reply-To: Helpdesk <help+cm.1.carol.680b21e589cf3778aa1041f1@charity.example>
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

#[test]
fn an_away_coordinator_is_not_told_about_a_waiting_ticket() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent_as("carol", Role::Coordinator);
    desk.add_agent_as("dora", Role::Coordinator);
    away(&desk, "dora", None);
    let id = ask(&desk, "fatima", "1");
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["carol@volunteers.example"]
    );
    assert!(
        desk.store
            .ticket(id)
            .expect("read")
            .expect("ticket")
            .flags
            .contains(&TicketFlag::Unassigned)
    );
    expect![[r#"
        #1 New owner=- requester=fatima@phone.example flags=[Unassigned]
        outbox 1 notification #1 to=carol@volunteers.example: [#1] Help for fatima (nobody on duty could take this ticket)
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// Handover after [rota] answer_within

#[test]
fn an_unanswered_ticket_is_handed_over_after_answer_within_and_the_coordinators_are_told() {
    let desk = Desk::with(&quiet("answer_within = \"2h\"\n"));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.add_agent_as("carol", Role::Coordinator);
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("jonas", EVERY_DAY, "08:00", "18:00"),
    ]));
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    desk.advance(SignedDuration::from_mins(119));
    assert!(desk.sweep().handed_over.is_empty(), "not yet due");
    desk.advance(SignedDuration::from_mins(1));
    let swept = desk.sweep();
    assert_eq!(swept.handed_over, [(id, agent_id("jonas"))]);
    expect![[r#"
        ticket #1 New owner=jonas requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +2h assigned by system: handed over from amina to jonas: no answer in time
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
        outbox 2 notification ticket=#1 to=jonas@volunteers.example
          From: Helpdesk <help@charity.example>
          To: jonas@volunteers.example
          Reply-To: Helpdesk <help+cm.1.jonas.4bab70982738bc1799079fc2@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | Handed over to you: the previous caseworker did not answer in time. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (handed over to jonas after no answer from amina)
          Auto-Submitted: auto-generated
          | handed over to jonas after no answer from amina.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | Owner:    jonas
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn an_overdue_ticket_with_nobody_else_on_duty_is_reported_once_per_period() {
    let desk = Desk::with(&quiet("answer_within = \"2h\"\n"));
    desk.add_agent("amina");
    desk.add_agent_as("carol", Role::Coordinator);
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "08:00", "18:00")]));
    let id = ask(&desk, "fatima", "1");
    desk.advance(hours(2));
    assert_eq!(desk.sweep().overdue_without_cover, [id]);
    assert!(
        desk.sweep().overdue_without_cover.is_empty(),
        "told once, then the clock starts again"
    );
    desk.advance(hours(2));
    assert_eq!(desk.sweep().overdue_without_cover, [id]);
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Help for fatima"
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +2h overdue by system: no answer from amina in time and nobody else on duty to hand over to
          event +4h overdue by system: no answer from amina in time and nobody else on duty to hand over to
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
        outbox 2 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Help for fatima (no answer from amina in time, nobody else on duty)
          Auto-Submitted: auto-generated
          | no answer from amina in time, nobody else on duty.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | Owner:    amina
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Help for fatima (no answer from amina in time, nobody else on duty)
          Auto-Submitted: auto-generated
          | no answer from amina in time, nobody else on duty.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | Owner:    amina
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn an_answered_ticket_is_never_handed_over() {
    let desk = Desk::with(&quiet("answer_within = \"2h\"\n"));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("jonas", EVERY_DAY, "08:00", "18:00"),
    ]));
    let id = ask(&desk, "fatima", "1");
    desk.advance(hours(1));
    let relayed = answer(&desk, id.0, "amina", "Please send the letter.");
    assert!(matches!(relayed, Outcome::Relayed(_)), "{relayed:?}");
    desk.advance(hours(5));
    let swept = desk.sweep();
    assert!(swept.handed_over.is_empty(), "{swept:?}");
    assert!(swept.overdue_without_cover.is_empty(), "{swept:?}");
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    expect![[r#"
        #1 Waiting owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 relay #1 to=fatima@phone.example: Re: Help for fatima [#1]
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// The daily digest

#[test]
fn the_daily_digest_goes_to_the_coordinators_once_a_day_at_digest_at() {
    let desk = Desk::with("[acknowledge]\nenabled = false\n[rota]\ndigest_at = \"09:00\"\n");
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.add_agent_as("carol", Role::Coordinator);
    desk.add_agent_as("dora", Role::Coordinator);
    cap(&desk, "amina", 1);
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "08:00", "18:00")]));
    away(&desk, "jonas", None);
    ask(&desk, "fatima", "1");
    ask(&desk, "nadia", "2");
    assert!(!desk.sweep().digest_sent, "not before 09:00");
    desk.advance(hours(1));
    assert!(desk.sweep().digest_sent);
    assert!(!desk.sweep().digest_sent, "once a day");
    assert_eq!(
        sent_to(&desk, OutboxKind::Digest),
        ["carol@volunteers.example", "dora@volunteers.example"]
    );
    let digests = desk.outbox_texts(OutboxKind::Digest);
    assert_eq!(digests[0], digests[1]);
    assert!(!digests[0].contains("Please help."), "no requester text");
    expect![[r#"
        Open tickets per caseworker:
          amina            1 of 1
          carol            0
          dora             0
          jonas            0 (away)

        Unanswered past the answer time: 0

        Unassigned: 1
          [#2] Help for nadia  (nobody)

        Held as spam: 0"#]]
    .assert_eq(&digests[0]);
    desk.advance(hours(24));
    assert!(desk.sweep().digest_sent, "the next day's");
}

// ---------------------------------------------------------------------------------------------
// The operator's ticket commands

#[test]
fn ticket_close_and_reopen_from_the_cli_are_recorded_on_the_ticket() {
    let desk = Desk::with(&quiet(""));
    let id = ask(&desk, "fatima", "1");
    let closed = run(&desk, StoreCommand::TicketClose { number: id.0 });
    assert_eq!(closed, "ticket #1 closed\n");
    assert_eq!(status(&desk, id.0), Status::Closed);
    let reopened = run(&desk, StoreCommand::TicketReopen { number: id.0 });
    assert_eq!(reopened, "ticket #1 reopened\n");
    assert_eq!(status(&desk, id.0), Status::Open);
    expect![[r#"
        ticket #1 Open owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 closed by system: set to closed from the command line
          event +0 open by system: set to open from the command line
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn ticket_assign_from_the_cli_gives_a_waiting_ticket_to_the_caseworker_by_mail() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    let printed = run(
        &desk,
        StoreCommand::TicketAssign {
            number: id.0,
            agent: "amina".to_owned(),
        },
    );
    assert_eq!(printed, "ticket #1 assigned to amina\n");
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["amina@volunteers.example"]
    );
    expect![[r#"
        ticket #1 New owner=amina requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +0 assigned by system: assigned to amina (CurrentOwner)
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
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn ticket_assign_to_an_away_caseworker_or_an_unknown_one_is_refused() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    away(&desk, "amina", None);
    let id = ask(&desk, "fatima", "1");
    let to_away = desk.run(StoreCommand::TicketAssign {
        number: id.0,
        agent: "amina".to_owned(),
    });
    let to_nobody = desk.run(StoreCommand::TicketAssign {
        number: id.0,
        agent: "zara".to_owned(),
    });
    let no_ticket = desk.run(StoreCommand::TicketAssign {
        number: 9,
        agent: "jonas".to_owned(),
    });
    assert_eq!(owner(&desk, id.0), None);
    assert!(desk.store.outbox().expect("outbox").is_empty());
    expect![[r#"
        (
            Err(
                "agent amina is away",
            ),
            Err(
                "no agent zara",
            ),
            Err(
                "no ticket #9",
            ),
        )
    "#]]
    .assert_debug_eq(&(to_away, to_nobody, no_ticket));
}

#[test]
fn ticket_list_and_show_print_the_tickets_with_their_owners_and_events() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", "fri", "08:00", "09:00")]));
    desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    desk.advance(hours(2));
    ask(&desk, "nadia", "2");
    let list = run(
        &desk,
        StoreCommand::TicketList {
            status: None,
            owner: None,
            since: None,
            json: false,
        },
    );
    let show = run(
        &desk,
        StoreCommand::TicketShow {
            number: 1,
            json: false,
        },
    );
    assert!(list.contains("amina"), "{list}");
    expect![[r#"
        #1      new      amina          1 msg  fatima@phone.example            Housing
        #2      new      -              1 msg  nadia@phone.example             Help for nadia

        Ticket #1  [new]  Housing
        Requester: Fatima <fatima@phone.example>
        Owner: amina

        --- in from Fatima <fatima@phone.example> at 2027-01-15 08:00 UTC
        Subject: Housing

        My landlord wants me out by Friday.

        Events:
          2027-01-15 08:00 UTC  created          fatima@phone.example: from INBOX
          2027-01-15 08:00 UTC  assigned         system: assigned to amina (FewestOpen)
    "#]]
    .assert_eq(&format!("{list}\n{show}"));
}

#[test]
fn ticket_merge_from_the_cli_refuses_a_ticket_into_itself_a_missing_one_and_a_second_merge() {
    let desk = Desk::with(&quiet("").replace(
        "[rota]",
        "[threading]\none_open_ticket_per_requester = false\n[rota]",
    ));
    let first = ask(&desk, "fatima", "1");
    let second = desk.new_ticket(&request(
        "fatima@phone.example",
        "2",
        "Another letter",
        "A new letter came.",
    ));
    let merge = |from: u64, into: u64| desk.run(StoreCommand::TicketMerge { from, into });
    let itself = merge(first.0, first.0);
    let missing = merge(first.0, 9);
    let done = merge(second.0, first.0);
    let again = merge(second.0, first.0);
    expect![[r#"
        (
            Err(
                "a ticket cannot be merged into itself",
            ),
            Err(
                "no ticket #9",
            ),
            Ok(
                "ticket #2 merged into #1\n",
            ),
            Err(
                "ticket #2 was already merged into #1",
            ),
        )
    "#]]
    .assert_debug_eq(&(itself, missing, done, again));
}

// ---------------------------------------------------------------------------------------------
// More routing rules

#[test]
fn a_follow_up_stays_with_its_caseworker_even_after_her_shift_ends() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "10:00"),
        shift("jonas", EVERY_DAY, "10:00", "18:00"),
    ]));
    let id = ask(&desk, "fatima", "1");
    desk.advance(hours(3));
    let outcome = desk.receive(&request(
        "fatima@phone.example",
        "2",
        "Another thing",
        "They also cut the heating.",
    ));
    assert_eq!(
        outcome,
        Outcome::Added(
            id,
            crate::casework::threading::Reason::OpenTicketOfRequester
        )
    );
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["amina@volunteers.example", "amina@volunteers.example"]
    );
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_returning_requester_whose_caseworker_is_at_her_cap_goes_to_another() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    cap(&desk, "amina", 1);
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("jonas", EVERY_DAY, "08:00", "18:00"),
    ]));
    let fatima = ask(&desk, "fatima", "1");
    answer(&desk, fatima.0, "amina", "#close");
    ask(&desk, "nadia", "2");
    // amina takes omar's ticket (jonas has one open), which brings her to her cap.
    ask(&desk, "omar", "3");
    let again = desk.new_ticket(&request(
        "fatima@phone.example",
        "4",
        "Another letter",
        "A new letter came.",
    ));
    assert_eq!(owner(&desk, again.0).as_deref(), Some("jonas"));
    expect![[r#"
        #1 Closed owner=amina requester=fatima@phone.example flags=[]
        #2 New owner=jonas requester=nadia@phone.example flags=[]
        #3 New owner=amina requester=omar@phone.example flags=[]
        #4 New owner=jonas requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=amina@volunteers.example: Done: [#1] Help for fatima
        outbox 3 notification #2 to=jonas@volunteers.example: [#2] Help for nadia
        outbox 4 notification #3 to=amina@volunteers.example: [#3] Help for omar
        outbox 5 notification #4 to=jonas@volunteers.example: [#4] Another letter
    "#]]
    .assert_eq(&summary(&desk));
}

#[test]
fn a_closed_ticket_reopened_while_its_caseworker_is_away_goes_to_someone_on_duty() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[
        shift("amina", EVERY_DAY, "08:00", "18:00"),
        shift("jonas", EVERY_DAY, "08:00", "18:00"),
    ]));
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    answer(&desk, id.0, "amina", "#close");
    // A closed ticket is not handed back when she steps away: it stays hers until it reopens.
    assert_eq!(
        away(&desk, "amina", None),
        "agent amina away; 0 open ticket(s) back to routing\n"
    );
    desk.advance(hours(1));
    let outcome = desk.receive(
        "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nDate: Fri, 15 Jan 2027 09:00:00 +0000\r\nSubject: Re: Housing\r\nMessage-ID: <2@phone.example>\r\nIn-Reply-To: <1@phone.example>\r\n\r\nHe changed the locks.\r\n",
    );
    assert_eq!(
        outcome,
        Outcome::Added(id, crate::casework::threading::Reason::Headers)
    );
    assert_eq!(owner(&desk, id.0).as_deref(), Some("jonas"));
    assert_eq!(status(&desk, id.0), Status::Open);
    expect![[r#"
        ticket #1 Open owner=jonas requester=fatima@phone.example subject="Housing"
          message 0 In from=fatima@phone.example +0
            | My landlord wants me out by Friday.
          message 1 In from=fatima@phone.example +1h
            | He changed the locks.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 assigned by system: assigned to amina (FewestOpen)
          event +0 closed by agent amina: closed by mail
          event +1h message_added by requester fatima@phone.example: threaded by In-Reply-To/References
          event +1h assigned by system: reassigned from amina to jonas (FewestOpen)
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
        outbox 3 notification ticket=#1 to=jonas@volunteers.example
          From: Helpdesk <help@charity.example>
          To: jonas@volunteers.example
          Reply-To: Helpdesk <help+cm.1.jonas.4bab70982738bc1799079fc2@charity.example>
          Subject: [#1] Housing
          Auto-Submitted: auto-generated
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
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
fn a_second_message_on_a_waiting_ticket_does_not_tell_the_coordinators_again() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent_as("carol", Role::Coordinator);
    let id = ask(&desk, "fatima", "1");
    desk.advance(hours(1));
    let outcome = desk.receive(&request(
        "fatima@phone.example",
        "2",
        "Another thing",
        "They also cut the heating.",
    ));
    assert_eq!(
        outcome,
        Outcome::Added(
            id,
            crate::casework::threading::Reason::OpenTicketOfRequester
        )
    );
    assert_eq!(
        sent_to(&desk, OutboxKind::Notification),
        ["carol@volunteers.example"]
    );
    expect![[r#"
        ticket #1 New owner=- requester=fatima@phone.example subject="Help for fatima"
          flags {Unassigned}
          message 0 In from=fatima@phone.example +0
            | Please help.
          message 1 In from=fatima@phone.example +1h
            | They also cut the heating.
          event +0 created by requester fatima@phone.example: from INBOX
          event +0 waiting by system: nobody on duty can take it and no shift is planned
          event +1h message_added by requester fatima@phone.example: threaded by requester's open ticket
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
    "#]]
    .assert_eq(&desk.render());
}

#[test]
fn removing_an_agent_sends_her_open_tickets_to_someone_on_duty() {
    let desk = Desk::with(&quiet(""));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.rota(&rota(&[shift("jonas", EVERY_DAY, "09:00", "18:00")]));
    // Before jonas's shift, a coordinator gives the ticket to amina, who is not on the rota.
    let id = ask(&desk, "fatima", "1");
    run(
        &desk,
        StoreCommand::TicketAssign {
            number: id.0,
            agent: "amina".to_owned(),
        },
    );
    let printed = run(
        &desk,
        StoreCommand::AgentRemove {
            id: "amina".to_owned(),
        },
    );
    assert_eq!(
        printed,
        "agent amina removed; 1 open ticket(s) back to routing\n"
    );
    assert!(
        desk.store
            .agent(&agent_id("amina"))
            .expect("read")
            .is_none()
    );
    desk.advance(hours(1));
    assert_eq!(desk.sweep().assigned, [(id, agent_id("jonas"))]);
    expect![[r#"
        #1 New owner=jonas requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
        outbox 2 notification #1 to=jonas@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

// ---------------------------------------------------------------------------------------------
// Time zones

#[test]
fn shifts_are_read_in_the_configured_time_zone() {
    let desk = Desk::with(&quiet("timezone = \"Europe/Berlin\"\n"));
    desk.add_agent("amina");
    desk.add_agent("jonas");
    // 08:00 UTC is 09:00 in Berlin in January: amina's first minute, jonas's end.
    desk.rota(&format!(
        "{}{}",
        shift("amina", "fri", "09:00", "17:00"),
        shift("jonas", "fri", "07:00", "09:00"),
    ));
    let shown_rota = run(
        &desk,
        StoreCommand::RotaShow {
            at: Some("2027-01-15T08:00:00Z".to_owned()),
            json: false,
        },
    );
    expect![[r#"
        at Fri 2027-01-15 09:00 CET (Europe/Berlin)
        on duty: amina
        next shift starts Fri 2027-01-22 07:00 CET
    "#]]
    .assert_eq(&shown_rota);
    let id = ask(&desk, "fatima", "1");
    assert_eq!(owner(&desk, id.0).as_deref(), Some("amina"));
}

#[test]
fn agent_away_until_a_date_means_midnight_in_the_configured_time_zone() {
    let desk = Desk::with(&quiet("timezone = \"Europe/Berlin\"\n"));
    desk.add_agent("amina");
    desk.rota(&rota(&[shift("amina", EVERY_DAY, "00:00", "24:00")]));
    let printed = away(&desk, "amina", Some("2027-01-16"));
    assert_eq!(
        printed,
        "agent amina away until 2027-01-16 00:00 CET; 0 open ticket(s) back to routing\n"
    );
    let id = ask(&desk, "fatima", "1");
    desk.advance(SignedDuration::from_mins(14 * 60 + 59));
    assert!(
        desk.sweep().assigned.is_empty(),
        "22:59 UTC is 23:59 in Berlin"
    );
    desk.advance(SignedDuration::from_mins(1));
    assert_eq!(desk.sweep().assigned, [(id, agent_id("amina"))]);
    expect![[r#"
        #1 New owner=amina requester=fatima@phone.example flags=[]
        outbox 1 notification #1 to=amina@volunteers.example: [#1] Help for fatima
    "#]]
    .assert_eq(&summary(&desk));
}

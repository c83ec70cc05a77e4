use std::collections::BTreeSet;

use jiff::Timestamp;

use super::Team;
use super::bounce::{MAX_BOUNCE_CANDIDATES, bounce_candidates};
use crate::casework::admin::{self, NewAgent};
use crate::casework::route::{Decision, Reason};
use crate::ids::{AgentId, TicketId};
use crate::model::{Role, Status, Ticket};
use crate::store::Store;

const ALWAYS: &str = "days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"24:00\"\n";

fn ticket(id: u64) -> Ticket {
    Ticket {
        id: TicketId(id),
        status: Status::New,
        subject: "s".to_owned(),
        requester: format!("r{id}@phone.example"),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: Timestamp::UNIX_EPOCH,
        message_count: 0,
        event_count: 0,
    }
}

#[test]
fn an_agent_who_is_away_gets_nothing_even_with_the_fewest_tickets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now: Timestamp = "2026-11-22T10:00:00Z".parse().expect("time");
    for id in ["amina", "jonas"] {
        let new = NewAgent {
            id: id.to_owned(),
            name: id.to_owned(),
            emails: vec![format!("{id}@volunteers.example")],
            role: Role::Agent,
            max_open: None,
        };
        admin::add_agent(&store, "help@x.example", new, now).expect("add");
    }
    let rota = format!(
        "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}[[shift]]\nagent = \"jonas\"\n{ALWAYS}"
    );
    store.write(|tx| tx.set_rota(&rota)).expect("rota");
    store
        .write(|tx| {
            let mut owned = ticket(1);
            owned.owner = Some(AgentId("jonas".to_owned()));
            tx.put_ticket(&owned)
        })
        .expect("ticket");
    admin::set_away(&store, &AgentId("amina".to_owned()), None, now).expect("away");

    let team = Team::load(&store, &jiff::tz::TimeZone::UTC).expect("team");
    let decision = team.decide(&ticket(2), None, None, now);
    assert_eq!(
        decision,
        Decision::Assign {
            agent: AgentId("jonas".to_owned()),
            reason: Reason::FewestOpen
        }
    );
}

#[test]
fn a_delivery_report_is_searched_for_casemails_ids_in_bounded_time() {
    // One run of `casemail.` without an end: every occurrence used to be followed to the end
    // of the text, a quadratic amount of work in the single writer.
    let junk = "casemail.".repeat(120_000);
    assert_eq!(bounce_candidates(&junk).count(), 0);
    let many = "casemail.test ".repeat(100_000);
    assert_eq!(bounce_candidates(&many).count(), MAX_BOUNCE_CANDIDATES);
    // The original's id after the help address's domain a few times is still found.
    let report = format!(
        "{}Message-ID: <casemail.n.cm.5.amina.abc.00ff@charity.example>\r\n{junk}",
        "From: help@casemail.test\r\n".repeat(20)
    );
    let found: Vec<String> = bounce_candidates(&report)
        .map(|id| id.as_str().to_owned())
        .collect();
    assert!(
        found.contains(&"casemail.n.cm.5.amina.abc.00ff@charity.example".to_owned()),
        "{found:?}"
    );
}

#[test]
fn the_roster_differs_after_agent_or_rota_changes_not_after_assignments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let now: Timestamp = "2026-11-22T10:00:00Z".parse().expect("time");
    let new = NewAgent {
        id: "amina".to_owned(),
        name: "Amina".to_owned(),
        emails: vec!["amina@volunteers.example".to_owned()],
        role: Role::Agent,
        max_open: None,
    };
    admin::add_agent(&store, "help@x.example", new, now).expect("add");
    let first = Team::load(&store, &jiff::tz::TimeZone::UTC).expect("team");
    assert!(!first.roster_differs(&Team::load(&store, &jiff::tz::TimeZone::UTC).expect("team")));

    // Tickets and assignments change caseloads and the round-robin order, not the roster.
    store
        .write(|tx| {
            let mut owned = ticket(1);
            owned.owner = Some(AgentId("amina".to_owned()));
            tx.put_ticket(&owned)?;
            let mut amina = tx.agent(&AgentId("amina".to_owned()))?.expect("agent");
            amina.last_assigned = Some(7);
            tx.put_agent(&amina)
        })
        .expect("assign");
    let assigned = Team::load(&store, &jiff::tz::TimeZone::UTC).expect("team");
    assert!(!first.roster_differs(&assigned));

    store
        .write(|tx| {
            tx.set_rota(&format!(
                "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"
            ))
        })
        .expect("rota");
    let with_rota = Team::load(&store, &jiff::tz::TimeZone::UTC).expect("team");
    assert!(assigned.roster_differs(&with_rota));

    admin::edit_agent(
        &store,
        &AgentId("amina".to_owned()),
        admin::AgentEdit {
            max_open: Some(3),
            ..admin::AgentEdit::default()
        },
    )
    .expect("edit");
    assert!(with_rota.roster_differs(&Team::load(&store, &jiff::tz::TimeZone::UTC).expect("team")));
}

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::*;
use crate::mail::parse::{ParseLimits, parse};
use crate::model::Status;

fn secret() -> Secret {
    Secret::from_bytes([3; 32])
}

fn agent(id: &str, role: Role) -> Agent {
    Agent {
        id: AgentId(id.to_owned()),
        name: id.to_owned(),
        emails: vec![format!("{id}@volunteers.example")],
        role,
        max_open: None,
        away: None,
        created: Timestamp::UNIX_EPOCH,
        last_assigned: None,
    }
}

fn ticket(id: u64, owner: &str) -> Ticket {
    Ticket {
        id: TicketId(id),
        status: Status::Open,
        subject: "Housing".to_owned(),
        requester: "r@phone.example".to_owned(),
        requester_name: None,
        owner: Some(AgentId(owner.to_owned())),
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: Timestamp::UNIX_EPOCH,
        message_count: 1,
        event_count: 0,
    }
}

fn reply(from: &str, to: &str, subject: &str, extra: &str) -> InboundMail {
    let raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\nI called the landlord.\r\n"
    );
    parse(raw.as_bytes(), &ParseLimits::default())
}

fn settings() -> crate::config::Auth {
    crate::config::Auth {
        trusted_authserv_ids: vec!["mx.charity.example".to_owned()],
        ..crate::config::Auth::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("a valid time")
}

fn days(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(n * 86_400)
}

fn run_with(
    mail: &InboundMail,
    sender: &str,
    secret: &Secret,
    ticket_of: impl Fn(TicketId) -> Option<Known>,
) -> Verdict {
    let (amina, jonas, carol) = (
        agent("amina", Role::Agent),
        agent("jonas", Role::Agent),
        agent("carol", Role::Coordinator),
    );
    let agents = [&amina, &jonas, &carol];
    let settings = settings();
    let verdict = crate::casework::auth::verdict(mail, &settings);
    let context = Context {
        secret,
        agents: &agents,
        auth: &verdict,
        settings: &settings,
        now: now(),
    };
    classify(mail, sender, &context, ticket_of)
}

fn run(mail: &InboundMail, sender: &str) -> Verdict {
    run_with(mail, sender, &secret(), |id| {
        (id.0 <= 2).then(|| Known {
            ticket: ticket(id.0, "amina"),
            closed_at: None,
        })
    })
}

#[test]
fn a_reply_with_its_token_from_the_owner_is_accepted() {
    let token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let mail = reply(
        "amina@volunteers.example",
        &format!("help+{token}@charity.example"),
        "Re: [#1] Housing",
        "",
    );
    assert_eq!(
        run(&mail, "amina@volunteers.example"),
        Verdict::Accepted {
            ticket: TicketId(1),
            agent: AgentId("amina".to_owned())
        }
    );
    // The Message-ID route works when the sub-address was lost.
    let by_header = reply(
        "amina@volunteers.example",
        "help@charity.example",
        "Re: Housing",
        &format!("In-Reply-To: <casemail.n.{token}.00000000000000aa@charity.example>\r\n"),
    );
    assert!(matches!(
        run(&by_header, "amina@volunteers.example"),
        Verdict::Accepted { .. }
    ));
}

#[test]
fn forged_senders_wrong_tickets_and_missing_tokens_are_refused() {
    let token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let to = format!("help+{token}@charity.example");
    let forged = reply("mallory@evil.example", &to, "Re: [#1] Housing", "");
    assert!(
        matches!(
            run(&forged, "mallory@evil.example"),
            Verdict::Refused { notify: None, .. }
        ),
        "strangers get no bounce"
    );
    let other_agent = reply("jonas@volunteers.example", &to, "Re: [#1] Housing", "");
    assert!(matches!(
        run(&other_agent, "jonas@volunteers.example"),
        Verdict::Refused {
            notify: Some(_),
            ..
        }
    ));
    let wrong_ticket = reply("amina@volunteers.example", &to, "Re: [#2] Housing", "");
    assert!(matches!(
        run(&wrong_ticket, "amina@volunteers.example"),
        Verdict::Refused {
            ticket: TicketId(1),
            ..
        }
    ));
    let no_token = reply(
        "amina@volunteers.example",
        "help@charity.example",
        "Re: [#2] Housing",
        "",
    );
    assert!(matches!(
        run(&no_token, "amina@volunteers.example"),
        Verdict::Refused {
            ticket: TicketId(2),
            ..
        }
    ));
    let dmarc = reply(
        "amina@volunteers.example",
        &to,
        "Re: [#1] Housing",
        "Authentication-Results: mx.charity.example; dmarc=fail (p=reject) header.from=volunteers.example\r\n",
    );
    assert!(matches!(
        run(&dmarc, "amina@volunteers.example"),
        Verdict::Refused { .. }
    ));
    let not_owner_token = secret().sign(TicketId(1), &AgentId("jonas".to_owned()));
    let stale = reply(
        "jonas@volunteers.example",
        &format!("help+{not_owner_token}@charity.example"),
        "Re: [#1] Housing",
        "",
    );
    assert!(
        matches!(
            run(&stale, "jonas@volunteers.example"),
            Verdict::Refused { .. }
        ),
        "a handed-over ticket refuses its old caseworker"
    );
    let stranger = reply(
        "someone@phone.example",
        "help@charity.example",
        "Re: [#1] Housing",
        "",
    );
    assert_eq!(run(&stranger, "someone@phone.example"), Verdict::NotAReply);
}

#[test]
fn command_lines_at_the_top_are_read_and_removed() {
    let parsed = commands("#close\n#assign Jonas\n\nThank you, we will be in touch.");
    assert_eq!(
        parsed.commands,
        vec![Command::Close, Command::Assign(AgentId("jonas".to_owned()))]
    );
    assert_eq!(parsed.body, "Thank you, we will be in touch.");
    let note = commands("#note\nShe may need an interpreter.");
    assert_eq!(note.commands, vec![Command::Note]);
    assert_eq!(note.body, "She may need an interpreter.");
    let away = commands("#away until 2026-12-24");
    assert_eq!(
        away.commands,
        vec![Command::Away(Some("2026-12-24".to_owned()))]
    );
    let not_commands = commands("#1 priority is the appointment.");
    assert!(not_commands.commands.is_empty());
    assert_eq!(not_commands.body, "#1 priority is the appointment.");
    let bad = commands("#assign\nHello");
    assert_eq!(bad.errors.len(), 1);
    assert_eq!(bad.body, "Hello");
}

#[test]
fn an_out_of_office_answer_from_the_agent_is_recognised_with_its_date() {
    let token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let ooo = reply(
        "amina@volunteers.example",
        &format!("help+{token}@charity.example"),
        "Automatic reply: [#1] Housing",
        "Auto-Submitted: auto-replied\r\n",
    );
    assert!(matches!(
        run(&ooo, "amina@volunteers.example"),
        Verdict::AutoReply { .. }
    ));
    assert_eq!(
        stated_return_date("I am away from 20.12.2026 and back on 05.01.2027."),
        jiff::civil::Date::new(2027, 1, 5).ok()
    );
    assert_eq!(
        stated_return_date("Back 2026-12-28"),
        jiff::civil::Date::new(2026, 12, 28).ok()
    );
    assert_eq!(stated_return_date("I will be back soon"), None);
}

#[test]
fn an_out_of_office_answer_without_a_token_or_failing_authentication_is_only_noted() {
    let no_token = reply(
        "amina@volunteers.example",
        "help@charity.example",
        "Automatic reply: [#1] Housing",
        "Auto-Submitted: auto-replied\r\n",
    );
    assert!(matches!(
        run(&no_token, "amina@volunteers.example"),
        Verdict::AutoReplyNoted {
            ticket: TicketId(1),
            ..
        }
    ));
    let token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let failing = reply(
        "amina@volunteers.example",
        &format!("help+{token}@charity.example"),
        "Automatic reply: [#1] Housing",
        "Auto-Submitted: auto-replied\r\nAuthentication-Results: mx.charity.example; dmarc=fail header.from=volunteers.example\r\n",
    );
    assert!(matches!(
        run(&failing, "amina@volunteers.example"),
        Verdict::AutoReplyNoted {
            ticket: TicketId(1),
            ..
        }
    ));
}

#[test]
fn sender_never_stands_in_for_from_and_two_froms_are_refused() {
    let token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let to = format!("help+{token}@charity.example");
    let raw = format!(
        "Sender: amina@volunteers.example\r\nTo: {to}\r\nSubject: Re: [#1] Housing\r\n\r\nHello.\r\n"
    );
    let sender_only = parse(raw.as_bytes(), &ParseLimits::default());
    let sender = crate::process::sender_address(&sender_only);
    assert_ne!(sender, "amina@volunteers.example");
    assert!(!matches!(
        run(&sender_only, &sender),
        Verdict::Accepted { .. }
    ));
    let two = reply(
        "amina@volunteers.example",
        &to,
        "Re: [#1] Housing",
        "From: mallory@evil.example\r\n",
    );
    assert!(matches!(
        run(&two, "amina@volunteers.example"),
        Verdict::Refused { .. }
    ));
}

#[test]
fn a_token_for_a_ticket_closed_too_long_ago_is_refused_and_the_caseworker_told() {
    let token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let mail = reply(
        "amina@volunteers.example",
        &format!("help+{token}@charity.example"),
        "Re: [#1] Housing",
        "",
    );
    let closed = |ago: i64| {
        move |id: TicketId| {
            let mut ticket = ticket(id.0, "amina");
            ticket.status = Status::Closed;
            Some(Known {
                ticket,
                closed_at: now().checked_sub(days(ago)).ok(),
            })
        }
    };
    assert!(matches!(
        run_with(&mail, "amina@volunteers.example", &secret(), closed(89)),
        Verdict::Accepted { .. }
    ));
    let expired = run_with(&mail, "amina@volunteers.example", &secret(), closed(91));
    assert!(
        matches!(
            &expired,
            Verdict::Refused { reason, notify: Some(_), .. } if reason.contains("expired")
        ),
        "{expired:?}"
    );
}

#[test]
fn after_a_rotation_old_tokens_work_during_the_grace_period_only() {
    let old_token = secret().sign(TicketId(1), &AgentId("amina".to_owned()));
    let mail = reply(
        "amina@volunteers.example",
        &format!("help+{old_token}@charity.example"),
        "Re: [#1] Housing",
        "",
    );
    let lookup = |id: TicketId| {
        (id.0 <= 2).then(|| Known {
            ticket: ticket(id.0, "amina"),
            closed_at: None,
        })
    };
    let recent = Secret::rotated_from([4; 32], [3; 32], now().checked_sub(days(29)).expect("time"));
    assert!(matches!(
        run_with(&mail, "amina@volunteers.example", &recent, lookup),
        Verdict::Accepted { .. }
    ));
    let long_ago =
        Secret::rotated_from([4; 32], [3; 32], now().checked_sub(days(31)).expect("time"));
    assert!(matches!(
        run_with(&mail, "amina@volunteers.example", &long_ago, lookup),
        Verdict::Refused { .. }
    ));
}

#[test]
fn token_candidates_are_capped_per_message_recipients_first() {
    let token = secret().sign(TicketId(7), &AgentId("amina".to_owned()));
    let junk: Vec<String> = (0..500).map(|i| format!("cm.{i}.x@evil.example")).collect();
    let mail = reply(
        "amina@volunteers.example",
        &format!("help+{token}@charity.example, {}", junk.join(", ")),
        "Re: Housing",
        "",
    );
    let candidates = token_candidates(&mail);
    assert_eq!(candidates.len(), MAX_TOKEN_CANDIDATES);
    assert_eq!(candidates.first(), Some(&token));
}

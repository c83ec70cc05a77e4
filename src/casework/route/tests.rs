use std::collections::BTreeMap;

use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::*;
use crate::casework::rota;

fn id(name: &str) -> AgentId {
    AgentId(name.to_owned())
}

fn agent(name: &str) -> Candidate {
    Candidate {
        id: id(name),
        role: Role::Agent,
        max_open: None,
        away: false,
        open_tickets: 0,
        last_assigned: None,
    }
}

fn with_open(mut candidate: Candidate, open_tickets: u32) -> Candidate {
    candidate.open_tickets = open_tickets;
    candidate
}

fn berlin(year: i16, month: i8, day: i8, hour: i8, minute: i8) -> Timestamp {
    let timezone = TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    timezone
        .to_ambiguous_timestamp(date(year, month, day).at(hour, minute, 0, 0))
        .unambiguous()
        .expect("the test's time is neither skipped nor repeated")
}

/// A rota in Europe/Berlin, the zone the tests' files name.
fn berlin_rota(text: &str) -> Result<Rota, rota::Error> {
    let timezone = TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    rota::parse(text, &timezone)
}

fn utc(text: &str) -> Timestamp {
    text.parse().expect("the test's timestamp is valid")
}

/// amina and jonas work weekdays 09:00 to 17:00; leila works only Saturdays, 10:00 to 16:00.
fn rota() -> Rota {
    berlin_rota(
        r#"
timezone = "Europe/Berlin"
[[shift]]
agent = "amina"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"
[[shift]]
agent = "jonas"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"
[[shift]]
agent = "leila"
days = ["sat"]
start = "10:00"
end = "16:00"
"#,
    )
    .expect("the test's rota is valid")
}

/// Monday 2026-07-06, 10:00 in Berlin: amina and jonas are on duty, leila is not.
fn monday_morning() -> Timestamp {
    berlin(2026, 7, 6, 10, 0)
}

fn assign(name: &str, reason: Reason) -> Decision {
    Decision::Assign {
        agent: id(name),
        reason,
    }
}

fn new_ticket() -> Request<'static> {
    Request::default()
}

#[test]
fn fewest_open_tickets_among_agents_on_duty() {
    let candidates = [
        with_open(agent("amina"), 3),
        with_open(agent("jonas"), 1),
        with_open(agent("leila"), 0),
    ];
    assert_eq!(
        route(&new_ticket(), &candidates, &rota(), monday_morning()),
        assign("jonas", Reason::FewestOpen)
    );
}

#[test]
fn shift_boundaries_decide_who_is_eligible() {
    let candidates = [agent("amina"), agent("leila")];
    let rota = rota();
    // Monday 17:00 is the end of amina's shift; nobody is on until Tuesday 09:00.
    assert_eq!(
        route(
            &new_ticket(),
            &candidates,
            &rota,
            berlin(2026, 7, 6, 16, 59)
        ),
        assign("amina", Reason::FewestOpen)
    );
    assert_eq!(
        route(&new_ticket(), &candidates, &rota, berlin(2026, 7, 6, 17, 0)),
        Decision::Wait {
            until: Some(berlin(2026, 7, 7, 9, 0))
        }
    );
    assert_eq!(
        route(&new_ticket(), &candidates, &rota, berlin(2026, 7, 7, 9, 0)),
        assign("amina", Reason::FewestOpen)
    );
}

#[test]
fn nobody_on_duty_waits_for_the_next_shift() {
    let candidates = [agent("amina"), agent("jonas"), agent("leila")];
    // Friday 18:00: the next shift is leila's, Saturday 10:00.
    assert_eq!(
        route(
            &new_ticket(),
            &candidates,
            &rota(),
            berlin(2026, 7, 10, 18, 0)
        ),
        Decision::Wait {
            until: Some(berlin(2026, 7, 11, 10, 0))
        }
    );
    // An empty rota has nobody coming at all.
    let empty = rota::parse("timezone = \"UTC\"", &TimeZone::UTC).expect("an empty rota is valid");
    assert_eq!(
        route(&new_ticket(), &candidates, &empty, monday_morning()),
        Decision::Wait { until: None }
    );
}

#[test]
fn an_agent_on_the_rota_but_not_registered_gets_nothing() {
    // jonas is on duty by the rota but not among the candidates.
    let candidates = [agent("leila")];
    assert_eq!(
        route(&new_ticket(), &candidates, &rota(), monday_morning()),
        Decision::Wait {
            until: Some(berlin(2026, 7, 7, 9, 0))
        }
    );
}

#[test]
fn agents_at_or_over_their_cap_are_skipped() {
    let mut amina = with_open(agent("amina"), 2);
    amina.max_open = Some(2);
    let mut jonas = with_open(agent("jonas"), 5);
    jonas.max_open = Some(6);
    assert_eq!(
        route(
            &new_ticket(),
            &[amina.clone(), jonas.clone()],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::FewestOpen)
    );
    // Over the cap (lowered after tickets were given) counts as at it.
    jonas.max_open = Some(4);
    assert_eq!(
        route(&new_ticket(), &[amina, jonas], &rota(), monday_morning()),
        Decision::Wait {
            until: Some(berlin(2026, 7, 7, 9, 0))
        }
    );
}

#[test]
fn a_cap_of_zero_means_no_new_tickets() {
    let mut amina = agent("amina");
    amina.max_open = Some(0);
    assert_eq!(
        route(
            &new_ticket(),
            &[amina, with_open(agent("jonas"), 9)],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::FewestOpen)
    );
}

#[test]
fn away_agents_are_skipped() {
    let mut amina = agent("amina");
    amina.away = true;
    assert_eq!(
        route(
            &new_ticket(),
            &[amina, with_open(agent("jonas"), 4)],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::FewestOpen)
    );
}

#[test]
fn candidate_is_away_until_the_time_they_gave() {
    let back = berlin(2026, 7, 6, 12, 0);
    let registered = Agent {
        id: id("amina"),
        name: "Amina".to_owned(),
        emails: vec!["amina@example.org".to_owned()],
        role: Role::Agent,
        max_open: Some(5),
        away: Some(crate::model::Away { until: Some(back) }),
        created: Timestamp::UNIX_EPOCH,
        last_assigned: None,
    };
    assert!(Candidate::new(&registered, 1, Some(7), monday_morning()).away);
    let candidate = Candidate::new(&registered, 1, Some(7), back);
    assert!(!candidate.away);
    assert_eq!(candidate.max_open, Some(5));
    assert_eq!(candidate.open_tickets, 1);
    assert_eq!(candidate.last_assigned, Some(7));

    let indefinitely = Agent {
        away: Some(crate::model::Away { until: None }),
        ..registered.clone()
    };
    assert!(Candidate::new(&indefinitely, 0, None, back).away);
    let present = Agent {
        away: None,
        ..registered
    };
    assert!(!Candidate::new(&present, 0, None, back).away);
}

#[test]
fn previous_caseworker_on_duty_and_under_cap_keeps_the_requester() {
    let jonas = id("jonas");
    let request = Request {
        previous_owner: Some(&jonas),
        ..Request::default()
    };
    let mut busy_jonas = with_open(agent("jonas"), 4);
    busy_jonas.max_open = Some(5);
    assert_eq!(
        route(
            &request,
            &[agent("amina"), busy_jonas],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::PreviousCaseworker)
    );
}

#[test]
fn previous_caseworker_off_duty_at_cap_or_away_gives_way() {
    let jonas = id("jonas");
    let request = Request {
        previous_owner: Some(&jonas),
        ..Request::default()
    };
    let rota = rota();

    // Off duty: Saturday, when only leila works.
    assert_eq!(
        route(
            &request,
            &[agent("jonas"), with_open(agent("leila"), 3)],
            &rota,
            berlin(2026, 7, 11, 11, 0)
        ),
        assign("leila", Reason::FewestOpen)
    );

    let mut capped = agent("jonas");
    capped.max_open = Some(0);
    assert_eq!(
        route(
            &request,
            &[capped, with_open(agent("amina"), 3)],
            &rota,
            monday_morning()
        ),
        assign("amina", Reason::FewestOpen)
    );

    let mut away = agent("jonas");
    away.away = true;
    assert_eq!(
        route(
            &request,
            &[away, with_open(agent("amina"), 3)],
            &rota,
            monday_morning()
        ),
        assign("amina", Reason::FewestOpen)
    );
}

#[test]
fn follow_up_stays_with_its_owner_even_off_duty_or_at_cap() {
    let leila = id("leila");
    let request = Request {
        current_owner: Some(&leila),
        ..Request::default()
    };
    let mut capped_leila = with_open(agent("leila"), 3);
    capped_leila.max_open = Some(3);
    // Monday: leila is off duty and at her cap, but the ticket is already hers.
    assert_eq!(
        route(
            &request,
            &[agent("amina"), capped_leila],
            &rota(),
            monday_morning()
        ),
        assign("leila", Reason::CurrentOwner)
    );
}

#[test]
fn follow_up_to_an_away_or_unregistered_owner_is_routed_afresh() {
    let leila = id("leila");
    let request = Request {
        current_owner: Some(&leila),
        ..Request::default()
    };
    let mut away = agent("leila");
    away.away = true;
    assert_eq!(
        route(&request, &[agent("amina"), away], &rota(), monday_morning()),
        assign("amina", Reason::FewestOpen)
    );
    assert_eq!(
        route(&request, &[agent("amina")], &rota(), monday_morning()),
        assign("amina", Reason::FewestOpen)
    );
}

#[test]
fn handover_excludes_the_current_owner() {
    let amina = id("amina");
    let request = Request {
        current_owner: Some(&amina),
        previous_owner: Some(&amina),
        exclude: Some(&amina),
    };
    assert_eq!(
        route(
            &request,
            &[agent("amina"), with_open(agent("jonas"), 8)],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::Handover)
    );
    // With nobody else on duty, the ticket waits for the next shift.
    assert_eq!(
        route(
            &request,
            &[agent("amina"), agent("leila")],
            &rota(),
            monday_morning()
        ),
        Decision::Wait {
            until: Some(berlin(2026, 7, 7, 9, 0))
        }
    );
}

#[test]
fn handover_still_prefers_the_requesters_earlier_caseworker() {
    let amina = id("amina");
    let jonas = id("jonas");
    let request = Request {
        current_owner: Some(&amina),
        previous_owner: Some(&jonas),
        exclude: Some(&amina),
    };
    let candidates = [
        agent("amina"),
        with_open(agent("jonas"), 5),
        agent("tesfay"),
    ];
    assert_eq!(
        route(&request, &candidates, &rota(), monday_morning()),
        assign("jonas", Reason::PreviousCaseworker)
    );
}

#[test]
fn ties_go_to_whoever_waited_longest_then_to_the_smaller_id() {
    let mut amina = agent("amina");
    amina.last_assigned = Some(10);
    let mut jonas = agent("jonas");
    jonas.last_assigned = Some(4);
    assert_eq!(
        route(
            &new_ticket(),
            &[amina.clone(), jonas.clone()],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::FewestOpen)
    );
    // Never assigned goes before any assignment.
    jonas.last_assigned = None;
    amina.last_assigned = Some(0);
    assert_eq!(
        route(
            &new_ticket(),
            &[amina.clone(), jonas.clone()],
            &rota(),
            monday_morning()
        ),
        assign("jonas", Reason::FewestOpen)
    );
    amina.last_assigned = None;
    assert_eq!(
        route(&new_ticket(), &[jonas, amina], &rota(), monday_morning()),
        assign("amina", Reason::FewestOpen)
    );
}

#[test]
fn routing_follows_the_rota_across_a_daylight_saving_change() {
    // leila's Saturday-night shift runs to 06:00; on 2026-10-25 Berlin's clocks go back at
    // 03:00, so the shift lasts until 05:00 UTC instead of 04:00.
    let rota = berlin_rota(
        r#"
timezone = "Europe/Berlin"
[[shift]]
agent = "leila"
days = ["sat"]
start = "22:00"
end = "06:00"
[[shift]]
agent = "amina"
days = ["sun"]
start = "09:00"
end = "17:00"
"#,
    )
    .expect("the test's rota is valid");
    let candidates = [agent("leila"), agent("amina")];
    assert_eq!(
        route(
            &new_ticket(),
            &candidates,
            &rota,
            utc("2026-10-25T04:30:00Z")
        ),
        assign("leila", Reason::FewestOpen)
    );
    assert_eq!(
        route(
            &new_ticket(),
            &candidates,
            &rota,
            utc("2026-10-25T05:00:00Z")
        ),
        Decision::Wait {
            until: Some(utc("2026-10-25T08:00:00Z"))
        }
    );
}

#[test]
fn overdue_only_without_an_agent_reply_since_assignment() {
    let assigned = utc("2026-07-06T10:00:00Z");
    let day = Duration::from_secs(24 * 60 * 60);
    let after = |hours: i64| assigned + SignedDuration::from_hours(hours);
    assert!(!is_overdue(assigned, None, day, after(23)));
    assert!(is_overdue(assigned, None, day, after(24)));
    assert!(is_overdue(assigned, None, day, after(30)));
    // A reply after the assignment settles it.
    assert!(!is_overdue(assigned, Some(after(2)), day, after(30)));
    // A reply from before the assignment (another agent's, or an earlier round) does not.
    assert!(is_overdue(
        assigned,
        Some(assigned - SignedDuration::from_hours(1)),
        day,
        after(30)
    ));
    // A deadline past the end of time is never reached.
    assert!(!is_overdue(
        assigned,
        None,
        Duration::from_secs(u64::MAX),
        Timestamp::MAX
    ));
}

#[test]
fn coordinators_lists_those_present() {
    let mut head = agent("head");
    head.role = Role::Coordinator;
    let mut deputy = agent("deputy");
    deputy.role = Role::Coordinator;
    let mut holiday = agent("holiday");
    holiday.role = Role::Coordinator;
    holiday.away = true;
    assert_eq!(
        coordinators(&[head, agent("amina"), holiday, deputy]),
        vec![id("deputy"), id("head")]
    );
}

/// Routes `tickets` new tickets as the caller would: each assignment updates the chosen
/// candidate, a `Wait` moves the clock to the shift start it names, and between tickets the
/// clock advances a few minutes and, when `close_chance` is above zero, an open ticket may
/// close. Returns how many tickets each agent was given.
fn simulate(
    candidates: &mut [Candidate],
    rota: &Rota,
    tickets: u64,
    close_chance: f64,
    rng: &mut StdRng,
) -> BTreeMap<AgentId, u64> {
    let mut given: BTreeMap<AgentId, u64> = BTreeMap::new();
    let mut now = monday_morning();
    let mut sequence = 0;
    while sequence < tickets {
        match route(&Request::default(), candidates, rota, now) {
            Decision::Assign { agent, reason } => {
                assert_eq!(reason, Reason::FewestOpen);
                let least_open = candidates
                    .iter()
                    .filter(|candidate| rota.on_duty(now).contains(&candidate.id))
                    .map(|candidate| candidate.open_tickets)
                    .min();
                let chosen = candidates
                    .iter_mut()
                    .find(|candidate| candidate.id == agent)
                    .expect("route chooses among the candidates");
                assert_eq!(Some(chosen.open_tickets), least_open);
                chosen.assigned(sequence);
                *given.entry(agent).or_default() += 1;
                sequence += 1;
                now += SignedDuration::from_mins(7);
            }
            Decision::Wait { until } => {
                now = until.expect("the rota has weekly shifts");
            }
        }
        for candidate in candidates.iter_mut() {
            for _ in 0..candidate.open_tickets {
                if close_chance > 0.0 && rng.random_bool(close_chance) {
                    candidate.open_tickets -= 1;
                }
            }
        }
    }
    given
}

fn equal_shifts() -> (Vec<Candidate>, Rota) {
    let names = ["amina", "jonas", "leila", "tesfay", "yusuf"];
    let shifts: String = names
        .iter()
        .map(|name| {
            format!(
                "[[shift]]\nagent = \"{name}\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\nstart = \"09:00\"\nend = \"17:00\"\n"
            )
        })
        .collect();
    let rota = berlin_rota(&format!("timezone = \"Europe/Berlin\"\n{shifts}"))
        .expect("the test's rota is valid");
    (names.iter().map(|name| agent(name)).collect(), rota)
}

#[test]
fn a_thousand_tickets_spread_evenly_over_equal_shifts() {
    let (mut candidates, rota) = equal_shifts();
    let mut rng = StdRng::seed_from_u64(1);
    let given = simulate(&mut candidates, &rota, 1000, 0.0, &mut rng);
    assert_eq!(given.values().sum::<u64>(), 1000);
    assert_eq!(given.len(), 5);
    // 1000 tickets over five agents: exactly 200 each.
    assert!(given.values().all(|&count| count == 200), "{given:?}");

    // Stopped at any point, nobody is more than one ticket ahead of anyone else.
    let (mut candidates, rota) = equal_shifts();
    let given = simulate(&mut candidates, &rota, 998, 0.0, &mut rng);
    let most = given.values().max().copied().unwrap_or(0);
    let least = given.values().min().copied().unwrap_or(0);
    assert!(most - least <= 1, "{given:?}");
    let open: Vec<u32> = candidates.iter().map(|c| c.open_tickets).collect();
    assert!(
        open.iter()
            .max()
            .zip(open.iter().min())
            .is_some_and(|(most, least)| most - least <= 1),
        "{open:?}"
    );
}

#[test]
fn a_thousand_tickets_with_random_closures_go_to_the_least_loaded() {
    let (mut candidates, rota) = equal_shifts();
    let mut rng = StdRng::seed_from_u64(20_261_025);
    // `simulate` checks that each ticket went to an agent with the fewest open tickets.
    let given = simulate(&mut candidates, &rota, 1000, 0.05, &mut rng);
    assert_eq!(given.values().sum::<u64>(), 1000);
    assert_eq!(given.len(), 5);
    // Closures are random, so counts differ, but nobody is starved or swamped.
    assert!(
        given.values().all(|&count| (150..=250).contains(&count)),
        "{given:?}"
    );
}

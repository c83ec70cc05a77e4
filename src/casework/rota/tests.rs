use std::collections::BTreeSet;

use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::file::DAY_NAMES;
use super::wall_clock::occurrence;
use super::*;
use crate::casework::rota::file::Table;

fn rota(text: &str) -> Rota {
    parse_named(text).expect("the test's rota is valid")
}

/// Parses `text` with the helpdesk's zone set to the one its `timezone` line names (UTC without
/// one), as a file that names the config's zone is read.
fn parse_named(text: &str) -> Result<Rota, Error> {
    let named = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|table| table.get("timezone")?.as_str().map(str::to_owned));
    let timezone = named
        .and_then(|name| TimeZone::get(&name).ok())
        .unwrap_or(TimeZone::UTC);
    parse(text, &timezone)
}

/// A wall-clock time in a zone, for times that are neither skipped nor repeated.
fn local(zone: &str, year: i16, month: i8, day: i8, hour: i8, minute: i8) -> Timestamp {
    let timezone = TimeZone::get(zone).expect("the zone is in the bundled database");
    let datetime = date(year, month, day).at(hour, minute, 0, 0);
    timezone
        .to_ambiguous_timestamp(datetime)
        .unambiguous()
        .expect("the test's time is neither skipped nor repeated")
}

fn berlin(year: i16, month: i8, day: i8, hour: i8, minute: i8) -> Timestamp {
    local("Europe/Berlin", year, month, day, hour, minute)
}

/// An exact instant, for times around daylight-saving changes.
fn utc(text: &str) -> Timestamp {
    text.parse().expect("the test's timestamp is valid")
}

fn ids(names: &[&str]) -> BTreeSet<AgentId> {
    names
        .iter()
        .map(|name| AgentId((*name).to_owned()))
        .collect()
}

fn nobody() -> BTreeSet<AgentId> {
    BTreeSet::new()
}

fn one_shift(zone: &str, days: &str, start: &str, end: &str) -> Rota {
    rota(&format!(
        "timezone = {zone:?}\n[[shift]]\nagent = \"amina\"\ndays = {days}\nstart = {start:?}\nend = {end:?}\n"
    ))
}

fn just_before(at: Timestamp) -> Timestamp {
    at - SignedDuration::from_nanos(1)
}

/// The instants the shift starting on `day` covers, by the module's own arithmetic.
fn shift_on(zone: &str, day: Date, start: &str, end: &str) -> (Timestamp, Timestamp) {
    let timezone = TimeZone::get(zone).expect("the zone is in the bundled database");
    let start = ClockTime::parse(start).expect("the test's start is a time");
    let end = ClockTime::parse(end).expect("the test's end is a time");
    occurrence(&timezone, day, start, end).expect("the shift is in range")
}

// 2026-07-06 is a Monday; July has no daylight-saving change.

#[test]
fn start_is_included_and_end_is_not() {
    let rota = one_shift("Europe/Berlin", r#"["mon"]"#, "09:00", "17:00");
    assert_eq!(rota.on_duty(berlin(2026, 7, 6, 8, 59)), nobody());
    assert_eq!(
        rota.on_duty(just_before(berlin(2026, 7, 6, 9, 0))),
        nobody()
    );
    assert_eq!(rota.on_duty(berlin(2026, 7, 6, 9, 0)), ids(&["amina"]));
    assert_eq!(
        rota.on_duty(just_before(berlin(2026, 7, 6, 17, 0))),
        ids(&["amina"])
    );
    assert_eq!(rota.on_duty(berlin(2026, 7, 6, 17, 0)), nobody());
    // Only Mondays.
    assert_eq!(rota.on_duty(berlin(2026, 7, 7, 10, 0)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 7, 13, 10, 0)), ids(&["amina"]));
}

#[test]
fn shift_across_midnight_covers_the_next_morning() {
    let rota = one_shift("Europe/Berlin", r#"["fri"]"#, "22:00", "06:00");
    assert_eq!(rota.on_duty(berlin(2026, 7, 10, 21, 59)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 7, 10, 22, 0)), ids(&["amina"]));
    assert_eq!(rota.on_duty(berlin(2026, 7, 11, 0, 0)), ids(&["amina"]));
    assert_eq!(rota.on_duty(berlin(2026, 7, 11, 3, 0)), ids(&["amina"]));
    assert_eq!(rota.on_duty(berlin(2026, 7, 11, 6, 0)), nobody());
    // `days` names the day the shift starts: Friday morning and Saturday night are free.
    assert_eq!(rota.on_duty(berlin(2026, 7, 10, 3, 0)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 7, 11, 23, 0)), nobody());
}

#[test]
fn end_of_2400_is_the_midnight_after_the_day() {
    let rota = one_shift("Europe/Berlin", r#"["sun"]"#, "18:00", "24:00");
    assert_eq!(
        rota.on_duty(just_before(berlin(2026, 7, 13, 0, 0))),
        ids(&["amina"])
    );
    assert_eq!(rota.on_duty(berlin(2026, 7, 13, 0, 0)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 7, 12, 17, 59)), nobody());
    assert_eq!(
        shift_on("Europe/Berlin", date(2026, 7, 12), "18:00", "24:00"),
        (utc("2026-07-12T16:00:00Z"), utc("2026-07-12T22:00:00Z"))
    );
}

#[test]
fn end_equal_to_start_is_a_whole_day() {
    let rota = one_shift("Europe/Berlin", r#"["tue"]"#, "00:00", "00:00");
    assert_eq!(rota.on_duty(berlin(2026, 7, 6, 23, 59)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 7, 7, 0, 0)), ids(&["amina"]));
    assert_eq!(rota.on_duty(berlin(2026, 7, 7, 23, 59)), ids(&["amina"]));
    assert_eq!(rota.on_duty(berlin(2026, 7, 8, 0, 0)), nobody());
}

#[test]
fn several_agents_and_overlapping_shifts() {
    let rota = rota(
        r#"
timezone = "UTC"
[[shift]]
agent = "amina"
days = ["mon", "tue"]
start = "08:00"
end = "16:00"
[[shift]]
agent = "jonas"
days = ["mon"]
start = "12:00"
end = "20:00"
"#,
    );
    assert_eq!(rota.on_duty(utc("2026-07-06T10:00:00Z")), ids(&["amina"]));
    assert_eq!(
        rota.on_duty(utc("2026-07-06T13:00:00Z")),
        ids(&["amina", "jonas"])
    );
    assert_eq!(rota.on_duty(utc("2026-07-06T17:00:00Z")), ids(&["jonas"]));
    assert_eq!(rota.on_duty(utc("2026-07-07T13:00:00Z")), ids(&["amina"]));
}

// Berlin's clocks go forward from 02:00 CET (+01) to 03:00 CEST (+02) at 01:00 UTC on
// Sunday 2026-03-29.

#[test]
fn berlin_spring_forward_shortens_a_shift_by_an_hour() {
    let (start, end) = shift_on("Europe/Berlin", date(2026, 3, 28), "22:00", "06:00");
    assert_eq!(start, utc("2026-03-28T21:00:00Z"));
    assert_eq!(end, utc("2026-03-29T04:00:00Z"));
    assert_eq!(end.duration_since(start), SignedDuration::from_hours(7));
    // A normal Saturday night is eight hours.
    let (start, end) = shift_on("Europe/Berlin", date(2026, 3, 21), "22:00", "06:00");
    assert_eq!(end.duration_since(start), SignedDuration::from_hours(8));

    let rota = one_shift("Europe/Berlin", r#"["sat"]"#, "22:00", "06:00");
    assert_eq!(rota.on_duty(utc("2026-03-29T03:59:00Z")), ids(&["amina"]));
    assert_eq!(rota.on_duty(utc("2026-03-29T04:00:00Z")), nobody());
}

#[test]
fn berlin_spring_forward_reads_a_skipped_time_as_the_change() {
    // 02:30 does not exist that night: a shift starting then starts at 03:00 CEST.
    let rota = one_shift("Europe/Berlin", r#"["sun"]"#, "02:30", "06:00");
    let change = utc("2026-03-29T01:00:00Z");
    assert_eq!(rota.on_duty(just_before(change)), nobody());
    assert_eq!(rota.on_duty(change), ids(&["amina"]));
    assert_eq!(
        rota.next_shift_start(berlin(2026, 3, 28, 12, 0)),
        Some(change)
    );
    // A shift ending at 02:30 ends at the change too.
    let (start, end) = shift_on("Europe/Berlin", date(2026, 3, 29), "00:00", "02:30");
    assert_eq!(start, utc("2026-03-28T23:00:00Z"));
    assert_eq!(end, change);
    // A shift wholly inside the gap covers nothing.
    let (start, end) = shift_on("Europe/Berlin", date(2026, 3, 29), "02:10", "02:50");
    assert_eq!(start, end);
}

// Berlin's clocks go back from 03:00 CEST (+02) to 02:00 CET (+01) at 01:00 UTC on
// Sunday 2026-10-25, so 02:00 to 03:00 happens twice.

#[test]
fn berlin_fall_back_lengthens_a_shift_by_an_hour() {
    let (start, end) = shift_on("Europe/Berlin", date(2026, 10, 24), "22:00", "06:00");
    assert_eq!(start, utc("2026-10-24T20:00:00Z"));
    assert_eq!(end, utc("2026-10-25T05:00:00Z"));
    assert_eq!(end.duration_since(start), SignedDuration::from_hours(9));

    let rota = one_shift("Europe/Berlin", r#"["sat"]"#, "22:00", "06:00");
    assert_eq!(rota.on_duty(utc("2026-10-25T04:59:00Z")), ids(&["amina"]));
    assert_eq!(rota.on_duty(utc("2026-10-25T05:00:00Z")), nobody());
}

#[test]
fn berlin_fall_back_starts_at_the_first_and_ends_at_the_second_occurrence() {
    // A start at 02:30 is the first 02:30 (CEST, 00:30 UTC).
    let start_rota = one_shift("Europe/Berlin", r#"["sun"]"#, "02:30", "08:00");
    assert_eq!(
        start_rota.on_duty(just_before(utc("2026-10-25T00:30:00Z"))),
        nobody()
    );
    assert_eq!(
        start_rota.on_duty(utc("2026-10-25T00:30:00Z")),
        ids(&["amina"])
    );
    // An end at 02:30 is the second 02:30 (CET, 01:30 UTC).
    let end_rota = one_shift("Europe/Berlin", r#"["sat"]"#, "22:00", "02:30");
    assert_eq!(
        end_rota.on_duty(just_before(utc("2026-10-25T01:30:00Z"))),
        ids(&["amina"])
    );
    assert_eq!(end_rota.on_duty(utc("2026-10-25T01:30:00Z")), nobody());
    let (start, end) = shift_on("Europe/Berlin", date(2026, 10, 24), "22:00", "02:30");
    assert_eq!(
        end.duration_since(start),
        SignedDuration::from_mins(5 * 60 + 30)
    );
}

#[test]
fn back_to_back_shifts_meeting_in_the_repeated_hour_overlap_rather_than_leave_a_gap() {
    let rota = rota(
        r#"
timezone = "Europe/Berlin"
[[shift]]
agent = "amina"
days = ["sat"]
start = "20:00"
end = "02:30"
[[shift]]
agent = "jonas"
days = ["sun"]
start = "02:30"
end = "09:00"
"#,
    );
    let mut minute = utc("2026-10-24T18:00:00Z");
    while minute < utc("2026-10-25T08:00:00Z") {
        assert!(!rota.on_duty(minute).is_empty(), "nobody at {minute}");
        minute += SignedDuration::from_mins(1);
    }
    assert_eq!(
        rota.on_duty(utc("2026-10-25T01:00:00Z")),
        ids(&["amina", "jonas"])
    );
}

// New York's clocks go forward at 07:00 UTC on Sunday 2026-03-08 (EST -05 to EDT -04) and back
// at 06:00 UTC on Sunday 2026-11-01.

#[test]
fn new_york_changes_lengthen_and_shorten_overnight_shifts() {
    let (start, end) = shift_on("America/New_York", date(2026, 3, 7), "22:00", "06:00");
    assert_eq!(start, utc("2026-03-08T03:00:00Z"));
    assert_eq!(end, utc("2026-03-08T10:00:00Z"));
    assert_eq!(end.duration_since(start), SignedDuration::from_hours(7));

    let (start, end) = shift_on("America/New_York", date(2026, 10, 31), "22:00", "06:00");
    assert_eq!(start, utc("2026-11-01T02:00:00Z"));
    assert_eq!(end, utc("2026-11-01T11:00:00Z"));
    assert_eq!(end.duration_since(start), SignedDuration::from_hours(9));

    let rota = one_shift("America/New_York", r#"["sat"]"#, "22:00", "06:00");
    assert_eq!(rota.on_duty(utc("2026-03-08T09:59:00Z")), ids(&["amina"]));
    assert_eq!(rota.on_duty(utc("2026-03-08T10:00:00Z")), nobody());
    assert_eq!(
        rota.next_shift_start(utc("2026-03-08T10:00:00Z")),
        Some(local("America/New_York", 2026, 3, 14, 22, 0))
    );
}

const WEEKDAYS: &str = r#"
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
"#;

#[test]
fn leave_by_dates_includes_both_days() {
    let rota = rota(&format!(
        "{WEEKDAYS}[[leave]]\nagent = \"amina\"\nfrom = \"2026-07-07\"\nuntil = \"2026-07-08\"\n"
    ));
    assert_eq!(
        rota.on_duty(berlin(2026, 7, 6, 16, 59)),
        ids(&["amina", "jonas"])
    );
    assert_eq!(rota.on_duty(berlin(2026, 7, 7, 9, 0)), ids(&["jonas"]));
    assert_eq!(rota.on_duty(berlin(2026, 7, 8, 16, 59)), ids(&["jonas"]));
    assert_eq!(
        rota.on_duty(berlin(2026, 7, 9, 9, 0)),
        ids(&["amina", "jonas"])
    );
}

#[test]
fn leave_ending_mid_shift_brings_the_agent_on_duty_then() {
    let rota = rota(&format!(
        "{WEEKDAYS}[[leave]]\nagent = \"amina\"\nfrom = \"2026-07-06T00:00\"\nuntil = \"2026-07-07T13:00\"\n"
    ));
    assert_eq!(rota.on_duty(berlin(2026, 7, 7, 12, 59)), ids(&["jonas"]));
    assert_eq!(
        rota.on_duty(berlin(2026, 7, 7, 13, 0)),
        ids(&["amina", "jonas"])
    );
    // Someone new comes on duty at 13:00: amina, back from leave.
    assert_eq!(
        rota.next_shift_start(berlin(2026, 7, 7, 10, 0)),
        Some(berlin(2026, 7, 7, 13, 0))
    );
}

#[test]
fn extra_shift_counts_on_its_date_only() {
    let rota = rota(
        r#"
timezone = "Europe/Berlin"
[[extra]]
agent = "leila"
date = "2026-12-25"
start = "10:00"
end = "14:00"
[[extra]]
agent = "tesfay"
date = "2026-12-31"
start = "20:00"
end = "02:00"
"#,
    );
    assert_eq!(rota.on_duty(berlin(2026, 12, 25, 9, 59)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 12, 25, 10, 0)), ids(&["leila"]));
    assert_eq!(rota.on_duty(berlin(2026, 12, 25, 14, 0)), nobody());
    assert_eq!(rota.on_duty(berlin(2027, 1, 1, 10, 0)), nobody());
    // An extra shift may run across midnight as well.
    assert_eq!(rota.on_duty(berlin(2027, 1, 1, 1, 59)), ids(&["tesfay"]));
    assert_eq!(rota.on_duty(berlin(2027, 1, 1, 2, 0)), nobody());
    assert_eq!(
        rota.next_shift_start(berlin(2026, 12, 1, 0, 0)),
        Some(berlin(2026, 12, 25, 10, 0))
    );
    assert_eq!(
        rota.next_shift_start(berlin(2026, 12, 25, 10, 0)),
        Some(berlin(2026, 12, 31, 20, 0))
    );
    assert_eq!(rota.next_shift_start(berlin(2026, 12, 31, 20, 0)), None);
}

#[test]
fn leave_wins_over_an_extra_shift() {
    let rota = rota(
        r#"
timezone = "Europe/Berlin"
[[extra]]
agent = "leila"
date = "2026-12-25"
start = "10:00"
end = "14:00"
[[leave]]
agent = "leila"
from = "2026-12-24"
until = "2026-12-25T12:00"
"#,
    );
    assert_eq!(rota.on_duty(berlin(2026, 12, 25, 11, 0)), nobody());
    assert_eq!(rota.on_duty(berlin(2026, 12, 25, 12, 0)), ids(&["leila"]));
    assert_eq!(
        rota.next_shift_start(berlin(2026, 12, 20, 0, 0)),
        Some(berlin(2026, 12, 25, 12, 0))
    );
}

#[test]
fn next_shift_start_finds_monday_morning_from_friday_evening() {
    let rota = rota(WEEKDAYS);
    assert_eq!(
        rota.next_shift_start(berlin(2026, 7, 10, 18, 0)),
        Some(berlin(2026, 7, 13, 9, 0))
    );
}

#[test]
fn next_shift_start_is_strictly_after_the_given_instant() {
    let rota = rota(WEEKDAYS);
    assert_eq!(
        rota.next_shift_start(just_before(berlin(2026, 7, 6, 9, 0))),
        Some(berlin(2026, 7, 6, 9, 0))
    );
    assert_eq!(
        rota.next_shift_start(berlin(2026, 7, 6, 9, 0)),
        Some(berlin(2026, 7, 7, 9, 0))
    );
}

#[test]
fn next_shift_start_skips_a_shift_that_only_continues_an_agents_duty() {
    let rota = rota(
        r#"
timezone = "Europe/Berlin"
[[shift]]
agent = "amina"
days = ["mon"]
start = "09:00"
end = "13:00"
[[shift]]
agent = "amina"
days = ["mon"]
start = "13:00"
end = "17:00"
"#,
    );
    assert_eq!(rota.on_duty(berlin(2026, 7, 6, 13, 0)), ids(&["amina"]));
    assert_eq!(
        rota.next_shift_start(berlin(2026, 7, 6, 10, 0)),
        Some(berlin(2026, 7, 13, 9, 0))
    );
}

#[test]
fn next_shift_start_looks_past_a_long_leave() {
    let rota = rota(
        r#"
timezone = "Europe/Berlin"
[[shift]]
agent = "amina"
days = ["mon"]
start = "09:00"
end = "17:00"
[[leave]]
agent = "amina"
from = "2026-07-01"
until = "2026-09-20"
"#,
    );
    assert_eq!(
        rota.next_shift_start(berlin(2026, 7, 6, 10, 0)),
        Some(berlin(2026, 9, 21, 9, 0))
    );
}

#[test]
fn next_shift_start_is_none_when_nobody_ever_comes() {
    assert_eq!(
        rota("timezone = \"UTC\"").next_shift_start(utc("2026-07-06T00:00:00Z")),
        None
    );
    let always_on_leave = rota(
        r#"
timezone = "UTC"
[[shift]]
agent = "amina"
days = ["mon"]
start = "09:00"
end = "17:00"
[[leave]]
agent = "amina"
from = "2026-01-01"
until = "2026-12-31"
"#,
    );
    assert_eq!(
        always_on_leave.next_shift_start(utc("2026-12-31T23:00:00Z")),
        Some(utc("2027-01-04T09:00:00Z"))
    );
    assert_eq!(
        always_on_leave.next_shift_start(utc("2026-07-06T00:00:00Z")),
        Some(utc("2027-01-04T09:00:00Z"))
    );
}

#[test]
fn agents_lists_everyone_the_rota_names() {
    let berlin_zone = TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    let rota = parse(
        include_str!("../../../config/rota.example.toml"),
        &berlin_zone,
    )
    .expect("the example is valid");
    assert_eq!(rota.agents(), ids(&["amina", "jonas", "leila", "tesfay"]));
    assert_eq!(rota.timezone_name(), "Europe/Berlin");
}

#[test]
fn the_example_file_is_valid_and_round_trips() {
    let example = rota(include_str!("../../../config/rota.example.toml"));
    assert_eq!(example.shifts().len(), 4);
    assert_eq!(example.leave().len(), 2);
    assert_eq!(example.extras().len(), 1);
    let exported = example.to_toml();
    assert_eq!(parse(&exported, example.timezone()), Ok(example));
}

#[test]
fn export_writes_the_documented_format() {
    let rota = rota(
        r#"
timezone = "America/New_York"
[[shift]]
agent = "amina"
days = ["Mon", "fri"]
start = "22:00"
end = "24:00"
[[leave]]
agent = "amina"
from = 2026-12-24
until = 2026-12-27T12:30:00
[[extra]]
agent = "amina"
date = 2026-12-28
start = "00:00"
end = "06:00"
"#,
    );
    // The zone is the config's, so the export does not name it.
    assert_eq!(
        rota.to_toml(),
        r#"[[shift]]
agent = "amina"
days = ["mon", "fri"]
start = "22:00"
end = "24:00"

[[leave]]
agent = "amina"
from = "2026-12-24"
until = "2026-12-27T12:30"

[[extra]]
agent = "amina"
date = "2026-12-28"
start = "00:00"
end = "06:00"
"#
    );
    assert_eq!(parse(&rota.to_toml(), rota.timezone()), Ok(rota));
}

#[test]
fn toml_dates_and_strings_mean_the_same() {
    let as_strings = rota(
        "timezone = \"UTC\"\n[[leave]]\nagent = \"a\"\nfrom = \"2026-12-24\"\nuntil = \"2026-12-27T12:00\"\n",
    );
    let as_dates = rota(
        "timezone = \"UTC\"\n[[leave]]\nagent = \"a\"\nfrom = 2026-12-24\nuntil = 2026-12-27T12:00:00\n",
    );
    assert_eq!(as_strings, as_dates);
}

fn error(text: &str) -> String {
    match parse_named(text) {
        Ok(rota) => panic!("expected an error, parsed {rota:?}"),
        Err(err) => err.to_string(),
    }
}

const GOOD_SHIFT: &str =
    "[[shift]]\nagent = \"a\"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"17:00\"\n";

#[test]
fn errors_name_the_shift_and_the_field() {
    let text = format!(
        "timezone = \"UTC\"\n{GOOD_SHIFT}{GOOD_SHIFT}[[shift]]\nagent = \"a\"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"25:00\"\n"
    );
    assert_eq!(
        parse_named(&text),
        Err(Error::Entry {
            table: Table::Shift,
            index: 3,
            field: Some("end"),
            problem: "\"25:00\" is not a time (HH:MM, 00:00 to 24:00)".to_owned(),
        })
    );
    assert_eq!(
        error(&text),
        "shift 3: end \"25:00\" is not a time (HH:MM, 00:00 to 24:00)"
    );
}

#[test]
fn errors_for_bad_shift_values() {
    let shift = |days: &str, start: &str, end: &str| {
        error(&format!(
            "timezone = \"UTC\"\n[[shift]]\nagent = \"a\"\ndays = {days}\nstart = {start:?}\nend = {end:?}\n"
        ))
    };
    assert_eq!(
        shift(r#"["mon", "tuesday"]"#, "09:00", "17:00"),
        "shift 1: days list \"tuesday\", which is not a day (mon, tue, wed, thu, fri, sat, sun)"
    );
    assert_eq!(shift("[]", "09:00", "17:00"), "shift 1: days is empty");
    assert_eq!(
        shift(r#"["mon", "MON"]"#, "09:00", "17:00"),
        "shift 1: days list \"mon\" twice"
    );
    assert_eq!(
        shift(r#"["mon"]"#, "24:00", "17:00"),
        "shift 1: start \"24:00\" is not a time (HH:MM, 00:00 to 23:59)"
    );
    assert_eq!(
        shift(r#"["mon"]"#, "9:00", "17:00"),
        "shift 1: start \"9:00\" is not a time (HH:MM, 00:00 to 23:59)"
    );
    assert_eq!(
        shift(r#"["mon"]"#, "09:00", "17:60"),
        "shift 1: end \"17:60\" is not a time (HH:MM, 00:00 to 24:00)"
    );
    assert_eq!(
        shift(r#"["mon"]"#, "09:00", "24:01"),
        "shift 1: end \"24:01\" is not a time (HH:MM, 00:00 to 24:00)"
    );
    assert_eq!(
        error(
            "timezone = \"UTC\"\n[[shift]]\nagent = \" \"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"17:00\"\n"
        ),
        "shift 1: agent is empty"
    );
    assert_eq!(
        error(
            "timezone = \"UTC\"\n[[shift]]\nagent = \"ana.\"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"17:00\"\n"
        ),
        format!(
            "shift 1: agent \"ana.\" is not a valid agent id: {}",
            AgentId::RULE
        )
    );
}

#[test]
fn errors_for_unknown_and_missing_keys_name_the_table() {
    assert_eq!(
        error(&format!(
            "timezone = \"UTC\"\n{GOOD_SHIFT}[[shift]]\nagent = \"a\"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"17:00\"\ncolour = \"red\"\n"
        )),
        "shift 2: unknown field `colour`, expected one of `agent`, `days`, `start`, `end`"
    );
    assert_eq!(
        error(
            "timezone = \"UTC\"\n[[extra]]\nagent = \"a\"\ndate = \"2026-12-25\"\nstart = \"09:00\"\n"
        ),
        "extra 1: missing field `end`"
    );
    let unknown_table = error(&format!(
        "timezone = \"UTC\"\n{GOOD_SHIFT}[[holiday]]\nagent = \"a\"\n"
    ));
    assert!(
        unknown_table.contains("unknown field `holiday`"),
        "{unknown_table}"
    );
    assert!(unknown_table.contains("line 7"), "{unknown_table}");
}

#[test]
fn a_file_without_a_zone_is_read_in_the_helpdesks_zone() {
    let berlin_zone = TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    let in_berlin = parse(GOOD_SHIFT, &berlin_zone).expect("a rota without a zone is valid");
    assert_eq!(in_berlin.timezone_name(), "Europe/Berlin");
    // Monday 2026-12-07, 09:30 in Berlin is 08:30 UTC.
    assert_eq!(in_berlin.on_duty(berlin(2026, 12, 7, 9, 30)), ids(&["a"]));
    assert_eq!(in_berlin.on_duty(utc("2026-12-07T16:30:00Z")), nobody());
    let in_utc = parse(GOOD_SHIFT, &TimeZone::UTC).expect("a rota without a zone is valid");
    assert_eq!(in_utc.on_duty(utc("2026-12-07T16:30:00Z")), ids(&["a"]));
    // Naming the helpdesk's zone changes nothing, in any letter case.
    for named in ["Europe/Berlin", "europe/berlin"] {
        let text = format!("timezone = {named:?}\n{GOOD_SHIFT}");
        assert_eq!(parse(&text, &berlin_zone), Ok(in_berlin.clone()));
    }
}

#[test]
fn a_file_naming_another_zone_is_refused_naming_both_places() {
    let text = format!("timezone = \"Europe/Berlin\"\n{GOOD_SHIFT}");
    let refused = parse(&text, &TimeZone::UTC);
    assert_eq!(
        refused,
        Err(Error::OtherTimeZone {
            rota: "Europe/Berlin".to_owned(),
            config: "UTC".to_owned(),
        })
    );
    let message = refused.map(|_| ()).expect_err("refused").to_string();
    assert_eq!(
        message,
        "timezone \"Europe/Berlin\" is not the helpdesk's time zone \"UTC\" (rota.timezone in \
         the config file); casemail uses one time zone, so remove timezone from the rota file, \
         or set rota.timezone = \"Europe/Berlin\" in the config file"
    );
    // A zone with the same offset today is still another zone.
    let paris = TimeZone::get("Europe/Paris").expect("the zone is in the bundled database");
    assert!(matches!(
        parse(&text, &paris),
        Err(Error::OtherTimeZone { .. })
    ));
}

#[test]
fn dates_people_give_are_midnight_in_the_helpdesks_zone() {
    let berlin_zone = TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    assert_eq!(
        parse_date("2026-12-24", &berlin_zone),
        Ok(utc("2026-12-23T23:00:00Z"))
    );
    assert_eq!(
        parse_date("2026-07-01", &berlin_zone),
        Ok(utc("2026-06-30T22:00:00Z"))
    );
    assert_eq!(
        parse_date("2026-12-24", &TimeZone::UTC),
        Ok(utc("2026-12-24T00:00:00Z"))
    );
    // An exact time keeps its own offset.
    assert_eq!(
        parse_date("2026-12-24T10:00:00+05:00", &berlin_zone),
        Ok(utc("2026-12-24T05:00:00Z"))
    );
    let refused = parse_date("next week", &berlin_zone).expect_err("not a date");
    assert_eq!(
        refused.to_string(),
        "\"next week\" is neither a date (2026-12-24) nor an RFC 3339 time"
    );
    assert!(parse_date("2026-02-30", &berlin_zone).is_err());
}

#[test]
fn a_midnight_skipped_by_daylight_saving_is_the_moment_of_the_change() {
    // Chile moves its clocks from 00:00 to 01:00 on the first Sunday of September.
    let santiago = TimeZone::get("America/Santiago").expect("the zone is in the bundled database");
    assert_eq!(
        start_of_day(date(2026, 9, 6), &santiago),
        utc("2026-09-06T04:00:00Z")
    );
    assert_eq!(
        local_time(utc("2026-09-06T04:00:00Z"), &santiago),
        "2026-09-06 01:00 -03"
    );
}

#[test]
fn times_are_shown_in_the_helpdesks_zone() {
    let berlin_zone = TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    assert_eq!(
        local_time(utc("2026-12-23T23:00:00Z"), &berlin_zone),
        "2026-12-24 00:00 CET"
    );
    assert_eq!(
        local_time(utc("2026-07-01T08:05:00Z"), &berlin_zone),
        "2026-07-01 10:05 CEST"
    );
    assert_eq!(zone_name(&berlin_zone), "Europe/Berlin");
    assert_eq!(zone_name(&TimeZone::UTC), "UTC");
}

#[test]
fn errors_for_bad_time_zones_and_syntax() {
    assert_eq!(
        parse_named("timezone = \"Europe/Atlantis\""),
        Err(Error::UnknownTimeZone("Europe/Atlantis".to_owned()))
    );
    assert_eq!(
        error("timezone = \"Europe/Atlantis\""),
        "timezone \"Europe/Atlantis\" is not in the time-zone database"
    );
    let syntax = error("timezone = \"UTC\"\n[[shift]\n");
    assert!(syntax.contains("line 2"), "{syntax}");
}

#[test]
fn errors_for_bad_leave_and_extra_dates() {
    let leave = |from: &str, until: &str| {
        error(&format!(
            "timezone = \"UTC\"\n[[leave]]\nagent = \"a\"\nfrom = {from}\nuntil = {until}\n"
        ))
    };
    assert_eq!(
        leave("\"2026-12-24\"", "\"2026-12-20\""),
        "leave 1: until \"2026-12-20\" is before from \"2026-12-24\""
    );
    assert_eq!(
        leave("\"2026-12-24T10:00\"", "\"2026-12-24T10:00\""),
        "leave 1: until \"2026-12-24T10:00\" is not after from \"2026-12-24T10:00\""
    );
    assert_eq!(
        leave("\"2026-02-30\"", "\"2026-03-02\""),
        "leave 1: from \"2026-02-30\" is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)"
    );
    assert_eq!(
        leave("\"2026-12-24\"", "5"),
        "leave 1: until 5 is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)"
    );
    // A single day of leave is fine.
    assert!(parse_named("timezone = \"UTC\"\n[[leave]]\nagent = \"a\"\nfrom = \"2026-12-24\"\nuntil = \"2026-12-24\"\n").is_ok());
    assert_eq!(
        error(
            "timezone = \"UTC\"\n[[extra]]\nagent = \"a\"\ndate = \"2026-12-25T10:00\"\nstart = \"09:00\"\nend = \"17:00\"\n"
        ),
        "extra 1: date \"2026-12-25T10:00\" is not a date (YYYY-MM-DD)"
    );
}

/// Minutes since Monday 00:00 in the brute-force model.
const MINUTES_PER_WEEK: i64 = 7 * 1440;

#[derive(Debug, Clone)]
struct ModelShift {
    agent: &'static str,
    days: Vec<usize>,
    start: u16,
    end: u16,
}

impl ModelShift {
    /// Whether the shift covers minute `minute` of the week, by plain modular arithmetic.
    fn covers(&self, minute: i64) -> bool {
        let length = if self.end > self.start {
            self.end - self.start
        } else {
            self.end + 1440 - self.start
        };
        self.days.iter().any(|&day| {
            let start =
                i64::try_from(day).expect("a day index is small") * 1440 + i64::from(self.start);
            (minute - start).rem_euclid(MINUTES_PER_WEEK) < i64::from(length)
        })
    }

    fn toml(&self) -> String {
        let names: Vec<String> = self
            .days
            .iter()
            .map(|&day| format!("{:?}", DAY_NAMES.get(day).expect("a day index").0))
            .collect();
        format!(
            "[[shift]]\nagent = {:?}\ndays = [{}]\nstart = \"{}\"\nend = \"{}\"\n",
            self.agent,
            names.join(", "),
            ClockTime(self.start),
            ClockTime(self.end)
        )
    }
}

fn model_shift() -> impl Strategy<Value = ModelShift> {
    (
        prop::sample::select(vec!["a", "b", "c"]),
        prop::sample::subsequence((0..7).collect::<Vec<usize>>(), 1..=7),
        // Multiples of five minutes make boundaries coincide often.
        (0u16..288).prop_map(|step| step * 5),
        (1u16..=288).prop_map(|step| step * 5),
    )
        .prop_map(|(agent, days, start, end)| ModelShift {
            agent,
            days,
            start,
            end,
        })
}

fn model_on_duty(shifts: &[ModelShift], minute: i64) -> BTreeSet<AgentId> {
    shifts
        .iter()
        .filter(|shift| shift.covers(minute))
        .map(|shift| AgentId(shift.agent.to_owned()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// In weeks without a daylight-saving change, the rota agrees with minute arithmetic on a
    /// plain weekly clock, at every boundary and on a grid in between.
    #[test]
    fn on_duty_and_next_start_agree_with_minute_arithmetic(
        shifts in prop::collection::vec(model_shift(), 1..4),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
        probe in 0i64..MINUTES_PER_WEEK,
    ) {
        let text = format!(
            "timezone = {zone:?}\n{}",
            shifts.iter().map(ModelShift::toml).collect::<String>()
        );
        let rota = rota(&text);
        prop_assert_eq!(parse(&rota.to_toml(), rota.timezone()), Ok(rota.clone()));

        // Monday 2026-07-06, in a summer with no change for weeks either side.
        let monday = local(zone, 2026, 7, 6, 0, 0);
        let instant = |minute: i64| monday + SignedDuration::from_mins(minute);

        let mut minutes: BTreeSet<i64> = (0..MINUTES_PER_WEEK).step_by(11).collect();
        for shift in &shifts {
            for &day in &shift.days {
                let day = i64::try_from(day).expect("a day index is small");
                for edge in [shift.start, shift.end] {
                    let at = day * 1440 + i64::from(edge);
                    minutes.extend([at - 1, at, at + 1].map(|m| m.rem_euclid(MINUTES_PER_WEEK)));
                }
            }
        }
        for minute in minutes {
            prop_assert_eq!(
                rota.on_duty(instant(minute)),
                model_on_duty(&shifts, minute),
                "minute {} of the week", minute
            );
        }

        let arrives = |minute: i64| {
            let before = model_on_duty(&shifts, minute - 1);
            model_on_duty(&shifts, minute).iter().any(|agent| !before.contains(agent))
        };
        let expected = (probe + 1..probe + 2 * MINUTES_PER_WEEK).find(|&minute| arrives(minute));
        prop_assert_eq!(rota.next_shift_start(instant(probe)), expected.map(instant));
    }
}

#[test]
fn next_shift_start_jumps_over_years_without_changes() {
    let decades = rota(
        r#"
timezone = "Europe/Berlin"
[[shift]]
agent = "amina"
days = ["mon"]
start = "09:00"
end = "17:00"
[[leave]]
agent = "amina"
from = "2026-07-01"
until = "2099-12-31"
[[extra]]
agent = "jonas"
date = "2040-02-29"
start = "10:00"
end = "12:00"
"#,
    );
    let start = berlin(2026, 7, 6, 10, 0);
    assert_eq!(
        decades.next_shift_start(start),
        Some(berlin(2040, 2, 29, 10, 0))
    );
    assert_eq!(
        decades.next_shift_start(berlin(2040, 2, 29, 10, 0)),
        Some(berlin(2100, 1, 4, 9, 0))
    );

    let forever = rota(
        "timezone = \"UTC\"\n[[shift]]\nagent = \"a\"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"17:00\"\n[[leave]]\nagent = \"a\"\nfrom = \"2026-01-01\"\nuntil = \"9999-12-31\"\n",
    );
    assert_eq!(forever.next_shift_start(start), None);
}

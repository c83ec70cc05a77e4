//! The rota: who is on duty when, in the helpdesk's time zone.
//!
//! This module owns the rota file's format (parsing, validation, export) and the time-zone
//! arithmetic that turns weekly wall-clock shifts and dated exceptions into instants, and the
//! same arithmetic for every other date a person gives or reads (`--until`, `#away until`). It
//! is pure: it reads no clock (every question takes the instant it is about), does no I/O and
//! keeps no state. Storing the file and deciding who gets a ticket belong to `store` and `route`.
//!
//! # One time zone
//!
//! The helpdesk has one time zone, `rota.timezone` in the config, and [`parse`] is given it. A
//! rota file need not name a zone; one that does (as every file did before the zone moved to the
//! config) is accepted only when it names that same zone, so that no shift is silently read in
//! another zone than the one the digest, `--until` dates and the CLI's times are in.
//!
//! # Semantics
//!
//! A `[[shift]]` repeats every week on the `days` it names, from `start` to `end` in wall-clock
//! time in the helpdesk's time zone. `start` is included and `end` is not. A shift whose `end` is
//! not after its `start` runs across midnight and ends on the following day; `days` names the
//! day it starts, so `days = ["fri"]`, `start = "22:00"`, `end = "06:00"` covers Saturday 03:00.
//! `end = "24:00"` is midnight at the end of the start day.
//!
//! A `[[leave]]` takes an agent off duty from `from` until `until`, even during their shifts and
//! extra shifts: leave protects a volunteer who is away, so nothing in the rota overrides it. A
//! date includes the whole day (`until = "2026-12-27"` ends at midnight after the 27th); a date
//! and time is an exact wall-clock moment. An `[[extra]]` is a one-off shift on a `date`, with
//! the same `start` and `end` rules as a weekly shift.
//!
//! Daylight-saving changes make some wall-clock times happen never or twice:
//!
//! - A time skipped by a spring-forward change (Berlin's 02:30 on 2026-03-29) is read as the
//!   first instant after the gap, the moment of the change itself, for starts and ends alike. A
//!   shift from 01:00 to 05:00 on that night therefore lasts three hours.
//! - A time that happens twice in a fall-back change (Berlin's 02:30 on 2026-10-25) is read as
//!   its earlier occurrence when it starts a shift or a leave and as its later occurrence when it
//!   ends one. Ambiguity thus lengthens cover rather than opening a hole in it: a shift from
//!   22:00 to 06:00 across that night lasts nine hours, and two back-to-back shifts that meet
//!   inside the repeated hour overlap by an hour instead of leaving one uncovered.

use std::collections::BTreeSet;
use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

#[cfg(test)]
mod tests;

/// Weekly shifts and dated exceptions in one time zone; built only by [`parse`], so every value
/// in it has been validated.
#[derive(Debug, Clone)]
pub struct Rota {
    timezone_name: String,
    timezone: TimeZone,
    shifts: Vec<Shift>,
    leave: Vec<Leave>,
    extras: Vec<Extra>,
}

/// A shift that repeats every week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub agent: AgentId,
    /// The days the shift starts on, in the order the file lists them; never empty, no repeats.
    pub days: Vec<Weekday>,
    /// Never `24:00`.
    pub start: ClockTime,
    /// Not after `start` means the shift ends on the next day.
    pub end: ClockTime,
}

/// Time off: the agent is not on duty from `from` until `until`, whatever their shifts say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leave {
    pub agent: AgentId,
    pub from: LeaveBound,
    pub until: LeaveBound,
}

/// One end of a leave, in wall-clock terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveBound {
    /// A whole day: a leave starts at its first moment or ends after its last.
    Date(Date),
    /// An exact wall-clock moment.
    DateTime(DateTime),
}

/// A one-off shift on a given date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub agent: AgentId,
    pub date: Date,
    /// Never `24:00`.
    pub start: ClockTime,
    /// Not after `start` means the shift ends on the next day.
    pub end: ClockTime,
}

/// A wall-clock time of day in whole minutes, from `00:00` to `24:00` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

const MINUTES_PER_DAY: u16 = 24 * 60;

impl ClockTime {
    /// `00:00`.
    pub const MIDNIGHT: ClockTime = ClockTime(0);
    /// `24:00`, the midnight that ends a day.
    pub const END_OF_DAY: ClockTime = ClockTime(MINUTES_PER_DAY);

    /// `None` unless the time is between `00:00` and `24:00`.
    pub fn new(hour: u8, minute: u8) -> Option<ClockTime> {
        let minutes = u16::from(hour) * 60 + u16::from(minute);
        (minute < 60 && minutes <= MINUTES_PER_DAY).then_some(ClockTime(minutes))
    }

    pub fn hour(self) -> u8 {
        // At most 24, so the narrowing cannot lose anything.
        (self.0 / 60) as u8
    }

    pub fn minute(self) -> u8 {
        // Less than 60, so the narrowing cannot lose anything.
        (self.0 % 60) as u8
    }

    /// Reads exactly `HH:MM`; a lax reading (`9:00`, `0900`) would make typos look valid.
    fn parse(text: &str) -> Option<ClockTime> {
        let (hour, minute) = text.split_once(':')?;
        let two_digits = |part: &str| {
            if part.len() == 2 && part.bytes().all(|byte| byte.is_ascii_digit()) {
                part.parse::<u8>().ok()
            } else {
                None
            }
        };
        ClockTime::new(two_digits(hour)?, two_digits(minute)?)
    }

    /// The time of day, or `None` for `24:00`, which is the next day's midnight.
    fn to_time(self) -> Option<Time> {
        let hour = i8::try_from(self.hour()).ok()?;
        let minute = i8::try_from(self.minute()).ok()?;
        Time::new(hour, minute, 0, 0).ok()
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

impl fmt::Display for LeaveBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveBound::Date(date) => date.fmt(f),
            // Minutes are what the file is written in; seconds appear only when they were given.
            LeaveBound::DateTime(datetime)
                if datetime.second() == 0 && datetime.subsec_nanosecond() == 0 =>
            {
                write!(
                    f,
                    "{}T{:02}:{:02}",
                    datetime.date(),
                    datetime.hour(),
                    datetime.minute()
                )
            }
            LeaveBound::DateTime(datetime) => datetime.fmt(f),
        }
    }
}

/// Which kind of table in the rota file an [`Error::Entry`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Shift,
    Leave,
    Extra,
}

impl Table {
    fn as_str(self) -> &'static str {
        match self {
            Table::Shift => "shift",
            Table::Leave => "leave",
            Table::Extra => "extra",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rota file that cannot be used, saying where and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The text is not TOML, or a top-level key is missing, unknown or of the wrong type. The
    /// message is the TOML parser's, with line and column.
    Toml(String),
    /// `timezone` is not a name in the time-zone database.
    UnknownTimeZone(String),
    /// `timezone` names another zone than the helpdesk's (`rota.timezone` in the config).
    OtherTimeZone {
        /// The zone the rota file names.
        rota: String,
        /// The config's zone.
        config: String,
    },
    /// One `[[shift]]`, `[[leave]]` or `[[extra]]` table is wrong. `index` counts the tables of
    /// that kind from 1, in file order; `field` is the key at fault when one key is.
    Entry {
        table: Table,
        index: usize,
        field: Option<&'static str>,
        problem: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Toml(message) => f.write_str(message),
            Error::UnknownTimeZone(name) => {
                write!(f, "timezone {name:?} is not in the time-zone database")
            }
            Error::OtherTimeZone { rota, config } => write!(
                f,
                "timezone {rota:?} is not the helpdesk's time zone {config:?} (rota.timezone in \
                 the config file); casemail uses one time zone, so remove timezone from the \
                 rota file, or set rota.timezone = {rota:?} in the config file"
            ),
            Error::Entry {
                table,
                index,
                field: Some(field),
                problem,
            } => write!(f, "{table} {index}: {field} {problem}"),
            Error::Entry {
                table,
                index,
                field: None,
                problem,
            } => write!(f, "{table} {index}: {problem}"),
        }
    }
}

impl std::error::Error for Error {}

/// The file as written, before validation. Entries stay generic TOML values here so that each
/// one can be checked on its own and its error can name its table and index.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRota {
    /// Optional: the config states the zone; a file that names one must name the same.
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    shift: Vec<toml::Value>,
    #[serde(default)]
    leave: Vec<toml::Value>,
    #[serde(default)]
    extra: Vec<toml::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShift {
    agent: String,
    days: Vec<String>,
    start: String,
    end: String,
}

/// Dates are `toml::Value`s so that both a string (`"2026-12-24"`) and a TOML date
/// (`2026-12-24`) are accepted.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeave {
    agent: String,
    from: toml::Value,
    until: toml::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtra {
    agent: String,
    date: toml::Value,
    start: String,
    end: String,
}

/// What `to_toml` writes; empty lists are left out. The time zone is not written: it is the
/// config's, so a stored or exported rota follows `rota.timezone`.
#[derive(Serialize)]
struct Export {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shift: Vec<RawShift>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leave: Vec<RawLeave>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra: Vec<RawExtra>,
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

/// Reads and validates a rota file, whose times are in `timezone`, the helpdesk's time zone
/// (`rota.timezone` in the config). A `timezone` key in the file must name that same zone.
pub fn parse(text: &str, timezone: &TimeZone) -> Result<Rota, Error> {
    let raw: RawRota =
        toml::from_str(text).map_err(|err| Error::Toml(err.to_string().trim_end().to_owned()))?;
    let timezone_name = zone_name(timezone).to_owned();
    if let Some(named) = raw.timezone {
        let zone = TimeZone::get(&named).map_err(|_| Error::UnknownTimeZone(named.clone()))?;
        if zone != *timezone {
            return Err(Error::OtherTimeZone {
                rota: named,
                config: timezone_name,
            });
        }
    }
    let shifts = entries(raw.shift, Table::Shift, parse_shift)?;
    let leave = entries(raw.leave, Table::Leave, parse_leave)?;
    let extras = entries(raw.extra, Table::Extra, parse_extra)?;
    Ok(Rota {
        timezone_name,
        timezone: timezone.clone(),
        shifts,
        leave,
        extras,
    })
}

/// A problem with one table: the key at fault, if one is, and what is wrong with it.
type Problem = (Option<&'static str>, String);

fn entries<R, T>(
    values: Vec<toml::Value>,
    table: Table,
    check: fn(R) -> Result<T, Problem>,
) -> Result<Vec<T>, Error>
where
    R: serde::de::DeserializeOwned,
{
    values
        .into_iter()
        .enumerate()
        .map(|(position, value)| {
            let entry_error = |(field, problem): Problem| Error::Entry {
                table,
                index: position + 1,
                field,
                problem,
            };
            let raw: R = value.try_into().map_err(|err: toml::de::Error| {
                entry_error((None, err.message().trim_end().to_owned()))
            })?;
            check(raw).map_err(entry_error)
        })
        .collect()
}

fn parse_agent(agent: String) -> Result<AgentId, Problem> {
    if agent.trim().is_empty() {
        return Err((Some("agent"), "is empty".to_owned()));
    }
    if !AgentId::is_valid(&agent) {
        return Err((
            Some("agent"),
            format!("{agent:?} is not a valid agent id: {}", AgentId::RULE),
        ));
    }
    Ok(AgentId(agent))
}

fn parse_days(days: &[String]) -> Result<Vec<Weekday>, Problem> {
    if days.is_empty() {
        return Err((Some("days"), "is empty".to_owned()));
    }
    let mut parsed = Vec::with_capacity(days.len());
    for name in days {
        let lower = name.to_ascii_lowercase();
        let Some(&(_, day)) = DAY_NAMES.iter().find(|(known, _)| *known == lower) else {
            return Err((
                Some("days"),
                format!("list {name:?}, which is not a day (mon, tue, wed, thu, fri, sat, sun)"),
            ));
        };
        if parsed.contains(&day) {
            return Err((Some("days"), format!("list {:?} twice", day_name(day))));
        }
        parsed.push(day);
    }
    Ok(parsed)
}

fn parse_start(start: &str) -> Result<ClockTime, Problem> {
    match ClockTime::parse(start) {
        Some(time) if time < ClockTime::END_OF_DAY => Ok(time),
        _ => Err((
            Some("start"),
            format!("{start:?} is not a time (HH:MM, 00:00 to 23:59)"),
        )),
    }
}

fn parse_end(end: &str) -> Result<ClockTime, Problem> {
    ClockTime::parse(end).ok_or_else(|| {
        (
            Some("end"),
            format!("{end:?} is not a time (HH:MM, 00:00 to 24:00)"),
        )
    })
}

fn parse_shift(raw: RawShift) -> Result<Shift, Problem> {
    Ok(Shift {
        agent: parse_agent(raw.agent)?,
        days: parse_days(&raw.days)?,
        start: parse_start(&raw.start)?,
        end: parse_end(&raw.end)?,
    })
}

/// The text of a date field, whether written as a string or as a TOML date.
fn date_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Datetime(datetime) => Some(datetime.to_string()),
        _ => None,
    }
}

fn describe(value: &toml::Value) -> String {
    match date_text(value) {
        Some(text) => format!("{text:?}"),
        None => value.to_string(),
    }
}

fn parse_bound(field: &'static str, value: &toml::Value) -> Result<LeaveBound, Problem> {
    let invalid = || {
        (
            Some(field),
            format!(
                "{} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)",
                describe(value)
            ),
        )
    };
    let text = date_text(value).ok_or_else(invalid)?;
    // A bare date is exactly ten characters; anything longer must carry a time of day.
    if text.len() == 10 {
        text.parse::<Date>()
            .map(LeaveBound::Date)
            .map_err(|_| invalid())
    } else {
        text.parse::<DateTime>()
            .map(LeaveBound::DateTime)
            .map_err(|_| invalid())
    }
}

fn parse_leave(raw: RawLeave) -> Result<Leave, Problem> {
    let agent = parse_agent(raw.agent)?;
    let from = parse_bound("from", &raw.from)?;
    let until = parse_bound("until", &raw.until)?;
    let begins = leave_begins(from);
    if leave_ends(until) <= begins {
        let relation = match (from, until) {
            (LeaveBound::Date(_), LeaveBound::Date(_)) => "is before",
            _ => "is not after",
        };
        return Err((
            Some("until"),
            format!("\"{until}\" {relation} from \"{from}\""),
        ));
    }
    Ok(Leave { agent, from, until })
}

fn parse_extra(raw: RawExtra) -> Result<Extra, Problem> {
    let agent = parse_agent(raw.agent)?;
    let invalid = || {
        (
            Some("date"),
            format!("{} is not a date (YYYY-MM-DD)", describe(&raw.date)),
        )
    };
    let date = date_text(&raw.date)
        .filter(|text| text.len() == 10)
        .and_then(|text| text.parse::<Date>().ok())
        .ok_or_else(invalid)?;
    Ok(Extra {
        agent,
        date,
        start: parse_start(&raw.start)?,
        end: parse_end(&raw.end)?,
    })
}

/// The wall-clock moment a leave starts.
fn leave_begins(bound: LeaveBound) -> DateTime {
    match bound {
        LeaveBound::Date(date) => date.to_datetime(Time::midnight()),
        LeaveBound::DateTime(datetime) => datetime,
    }
}

/// The wall-clock moment a leave ends: after the whole day for a date. A leave until the last
/// day of the calendar (9999-12-31, a way of writing "until further notice") ends with it.
fn leave_ends(bound: LeaveBound) -> DateTime {
    match bound {
        LeaveBound::Date(date) => date
            .tomorrow()
            .map_or(DateTime::MAX, |next| next.to_datetime(Time::midnight())),
        LeaveBound::DateTime(datetime) => datetime,
    }
}

/// Which end of an interval a wall-clock time marks; it decides how a repeated time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Start,
    End,
}

/// The instant a wall-clock time stands for, by the rules in the module documentation. Civil
/// times at the very ends of the calendar, beyond the range of instants, are clamped to it.
fn instant(timezone: &TimeZone, datetime: DateTime, edge: Edge) -> Timestamp {
    let resolved = match timezone.to_ambiguous_timestamp(datetime).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(datetime).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the change, a skipped time lands before the change;
            // the change that follows is the first instant after the gap.
            after.to_timestamp(datetime).ok().and_then(|before_change| {
                timezone
                    .following(before_change)
                    .next()
                    .map(|transition| transition.timestamp())
            })
        }
        AmbiguousOffset::Fold { before, after } => match edge {
            Edge::Start => before.to_timestamp(datetime).ok(),
            Edge::End => after.to_timestamp(datetime).ok(),
        },
    };
    resolved.unwrap_or(if datetime.year() > 0 {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

/// The instants a shift starting on `date` covers, `[start, end)`. Empty (start == end) only for
/// a shift that lies wholly inside a spring-forward gap.
fn occurrence(
    timezone: &TimeZone,
    date: Date,
    start: ClockTime,
    end: ClockTime,
) -> Option<(Timestamp, Timestamp)> {
    let start_at = instant(timezone, date.to_datetime(start.to_time()?), Edge::Start);
    let end_date = if end <= start || end == ClockTime::END_OF_DAY {
        date.tomorrow().ok()?
    } else {
        date
    };
    let end_time = end.to_time().unwrap_or(Time::midnight());
    let end_at = instant(timezone, end_date.to_datetime(end_time), Edge::End);
    Some((start_at, end_at.max(start_at)))
}

/// Days without an exception after which [`Rota::next_shift_start`] stops walking day by day:
/// a week of weekly shifts, the day before it (whose overnight shifts reach into it) and a day
/// of margin.
const QUIET_DAYS: u32 = 9;

impl Rota {
    /// The time zone's name, as the config gives it.
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.timezone
    }

    pub fn shifts(&self) -> &[Shift] {
        &self.shifts
    }

    pub fn leave(&self) -> &[Leave] {
        &self.leave
    }

    pub fn extras(&self) -> &[Extra] {
        &self.extras
    }

    /// Every agent the rota names, in shifts, leave or extra shifts, so the caller can check
    /// that each is registered.
    pub fn agents(&self) -> BTreeSet<AgentId> {
        let shifts = self.shifts.iter().map(|shift| &shift.agent);
        let leave = self.leave.iter().map(|leave| &leave.agent);
        let extras = self.extras.iter().map(|extra| &extra.agent);
        shifts.chain(leave).chain(extras).cloned().collect()
    }

    /// The agents on duty at `at`: inside one of their shifts or extra shifts and not on leave.
    pub fn on_duty(&self, at: Timestamp) -> BTreeSet<AgentId> {
        let today = self.timezone.to_datetime(at).date();
        // A shift is at most a day and an hour long, so one that covers `at` started today or
        // yesterday; the day before is looked at too for a fall-back change at midnight.
        let days = [
            today.yesterday().ok().and_then(|day| day.yesterday().ok()),
            today.yesterday().ok(),
            Some(today),
        ];
        let mut agents = BTreeSet::new();
        for day in days.into_iter().flatten() {
            for (agent, start, end) in self.starting_on(day) {
                if start <= at && at < end && !self.on_leave(agent, at) {
                    agents.insert(agent.clone());
                }
            }
        }
        agents
    }

    /// The first instant after `after` at which an agent comes on duty who was not on duty just
    /// before it: a shift start, or the end of a leave in the middle of a shift. `None` when the
    /// rota will never have anyone new on duty.
    pub fn next_shift_start(&self, after: Timestamp) -> Option<Timestamp> {
        let exception_days = self.exception_days();
        let returns_from_leave: Vec<Timestamp> = self
            .leave
            .iter()
            .map(|leave| instant(&self.timezone, leave_ends(leave.until), Edge::End))
            .filter(|&ends| ends > after)
            .collect();

        let first_day = self.timezone.to_datetime(after).date();
        let mut day = first_day.yesterday().unwrap_or(first_day);
        let mut quiet_days = 0;
        loop {
            if quiet_days > QUIET_DAYS {
                // Without exceptions the rota repeats every week, so a week in which nobody
                // arrived means nobody arrives until the next exception changes the pattern.
                let next_exception = exception_days.iter().copied().find(|&date| date > day)?;
                day = next_exception
                    .yesterday()
                    .unwrap_or(next_exception)
                    .max(day);
                quiet_days = 0;
            }
            let mut candidates: Vec<Timestamp> = self
                .starting_on(day)
                .map(|(_, start, _)| start)
                .chain(
                    returns_from_leave
                        .iter()
                        .copied()
                        .filter(|&ends| self.timezone.to_datetime(ends).date() == day),
                )
                .filter(|&start| start > after)
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            if let Some(found) = candidates.into_iter().find(|&at| self.someone_arrives(at)) {
                return Some(found);
            }
            if exception_days.binary_search(&day).is_ok() {
                quiet_days = 0;
            } else {
                quiet_days += 1;
            }
            day = day.tomorrow().ok()?;
        }
    }

    /// Exports the rota as a file that [`parse`] reads back to an equal rota, given the same
    /// time zone.
    pub fn to_toml(&self) -> String {
        let export = Export {
            shift: self
                .shifts
                .iter()
                .map(|shift| RawShift {
                    agent: shift.agent.0.clone(),
                    days: shift
                        .days
                        .iter()
                        .map(|&day| day_name(day).to_owned())
                        .collect(),
                    start: shift.start.to_string(),
                    end: shift.end.to_string(),
                })
                .collect(),
            leave: self
                .leave
                .iter()
                .map(|leave| RawLeave {
                    agent: leave.agent.0.clone(),
                    from: toml::Value::String(leave.from.to_string()),
                    until: toml::Value::String(leave.until.to_string()),
                })
                .collect(),
            extra: self
                .extras
                .iter()
                .map(|extra| RawExtra {
                    agent: extra.agent.0.clone(),
                    date: toml::Value::String(extra.date.to_string()),
                    start: extra.start.to_string(),
                    end: extra.end.to_string(),
                })
                .collect(),
        };
        toml::to_string(&export)
            .expect("strings, lists of strings and tables of them always serialise to TOML")
    }

    /// Shifts and extra shifts that start on `date`, with the instants they cover.
    fn starting_on(&self, date: Date) -> impl Iterator<Item = (&AgentId, Timestamp, Timestamp)> {
        let weekday = date.weekday();
        let weekly = self
            .shifts
            .iter()
            .filter(move |shift| shift.days.contains(&weekday))
            .filter_map(move |shift| {
                let (start, end) = occurrence(&self.timezone, date, shift.start, shift.end)?;
                Some((&shift.agent, start, end))
            });
        let extras = self
            .extras
            .iter()
            .filter(move |extra| extra.date == date)
            .filter_map(move |extra| {
                let (start, end) = occurrence(&self.timezone, date, extra.start, extra.end)?;
                Some((&extra.agent, start, end))
            });
        weekly.chain(extras)
    }

    /// The days on which a leave or an extra shift begins or ends, sorted: the only days on
    /// which the weekly pattern of who is on duty changes.
    fn exception_days(&self) -> Vec<Date> {
        let leave = self.leave.iter().flat_map(|leave| {
            [
                leave_begins(leave.from).date(),
                leave_ends(leave.until).date(),
            ]
        });
        // An extra shift may run into the next day.
        let extras = self
            .extras
            .iter()
            .flat_map(|extra| [extra.date, extra.date.tomorrow().unwrap_or(extra.date)]);
        let mut days: Vec<Date> = leave.chain(extras).collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    fn on_leave(&self, agent: &AgentId, at: Timestamp) -> bool {
        self.leave
            .iter()
            .filter(|leave| &leave.agent == agent)
            .any(|leave| {
                let begins = instant(&self.timezone, leave_begins(leave.from), Edge::Start);
                let ends = instant(&self.timezone, leave_ends(leave.until), Edge::End);
                begins <= at && at < ends
            })
    }

    /// Whether someone is on duty at `at` who was not a moment before.
    fn someone_arrives(&self, at: Timestamp) -> bool {
        let now = self.on_duty(at);
        if now.is_empty() {
            return false;
        }
        let Ok(just_before) = at.checked_sub(SignedDuration::from_nanos(1)) else {
            return true;
        };
        let before = self.on_duty(just_before);
        now.iter().any(|agent| !before.contains(agent))
    }
}

/// Rotas are equal when their files say the same thing; the loaded time-zone rules follow from
/// the name.
impl PartialEq for Rota {
    fn eq(&self, other: &Rota) -> bool {
        self.timezone_name == other.timezone_name
            && self.shifts == other.shifts
            && self.leave == other.leave
            && self.extras == other.extras
    }
}

impl Eq for Rota {}

/// A zone's name as messages, `check-config` and the CLI show it: its tz-database name. Zones
/// are looked up by name (`TimeZone::get`), so they always have one.
pub fn zone_name(timezone: &TimeZone) -> &str {
    timezone.iana_name().unwrap_or("(unnamed time zone)")
}

/// A date or time as a person gives it (`--until`, `--since`, `#away until`): a date is its
/// first moment in `timezone` (a midnight skipped by a daylight-saving change is the moment of
/// the change, as for the start of a leave); an RFC 3339 time with an offset is taken as it is.
pub fn parse_date(text: &str, timezone: &TimeZone) -> Result<Timestamp, DateError> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp);
    }
    let date = text.parse::<Date>().map_err(|_| DateError {
        text: text.to_owned(),
    })?;
    Ok(start_of_day(date, timezone))
}

/// The first moment of `date` in `timezone`.
pub fn start_of_day(date: Date, timezone: &TimeZone) -> Timestamp {
    instant(timezone, date.to_datetime(Time::midnight()), Edge::Start)
}

/// An instant as a person reads it, in `timezone`: `2026-12-24 00:00 CET`.
pub fn local_time(at: Timestamp, timezone: &TimeZone) -> String {
    at.to_zoned(timezone.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// A date a person gave that is neither a date nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateError {
    text: String,
}

impl fmt::Display for DateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is neither a date (2026-12-24) nor an RFC 3339 time",
            self.text
        )
    }
}

impl std::error::Error for DateError {}

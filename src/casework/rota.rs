//! The rota: who is on duty when, in the helpdesk's time zone.
//!
//! This module owns the rota file's format (parsing, validation, export) and the time-zone
//! arithmetic that turns weekly wall-clock shifts and dated exceptions into instants, and the
//! same arithmetic for every other date a person gives or reads (`--until`, `#away until`). It
//! is pure: it reads no clock (every question takes the instant it is about), does no I/O and
//! keeps no state. Storing the file and deciding who gets a ticket belong to `store` and `route`.
//!
//! The parts: `file` reads, checks and exports the rota file; `wall_clock` turns wall-clock times
//! into instants; `duty` says who is on duty and when someone next comes on; `dates` reads and
//! shows the dates a person gives.
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
use jiff::tz::TimeZone;

use crate::ids::AgentId;

mod dates;
mod duty;
mod file;
mod wall_clock;

pub(crate) use dates::{local_time, parse_date, start_of_day, zone_name};
pub(crate) use file::{Error, parse};

/// Weekly shifts and dated exceptions in one time zone; built only by [`parse`], so every value
/// in it has been validated.
#[derive(Debug, Clone)]
pub(crate) struct Rota {
    timezone_name: String,
    timezone: TimeZone,
    shifts: Vec<Shift>,
    leave: Vec<Leave>,
    extras: Vec<Extra>,
}

/// A shift that repeats every week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shift {
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
pub(crate) struct Leave {
    pub agent: AgentId,
    pub from: LeaveBound,
    pub until: LeaveBound,
}

/// One end of a leave, in wall-clock terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaveBound {
    /// A whole day: a leave starts at its first moment or ends after its last.
    Date(Date),
    /// An exact wall-clock moment.
    DateTime(DateTime),
}

/// A one-off shift on a given date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extra {
    pub agent: AgentId,
    pub date: Date,
    /// Never `24:00`.
    pub start: ClockTime,
    /// Not after `start` means the shift ends on the next day.
    pub end: ClockTime,
}

/// A wall-clock time of day in whole minutes, from `00:00` to `24:00` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ClockTime(u16);

const MINUTES_PER_DAY: u16 = 24 * 60;

impl ClockTime {
    /// `24:00`, the midnight that ends a day.
    pub(crate) const END_OF_DAY: ClockTime = ClockTime(MINUTES_PER_DAY);

    /// `None` unless the time is between `00:00` and `24:00`.
    pub(crate) fn new(hour: u8, minute: u8) -> Option<ClockTime> {
        let minutes = u16::from(hour) * 60 + u16::from(minute);
        (minute < 60 && minutes <= MINUTES_PER_DAY).then_some(ClockTime(minutes))
    }

    pub(crate) fn hour(self) -> u8 {
        // At most 24, so the narrowing cannot lose anything.
        (self.0 / 60) as u8
    }

    pub(crate) fn minute(self) -> u8 {
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

impl Rota {
    /// The time zone's name, as the config gives it.
    pub(crate) fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    pub(crate) fn timezone(&self) -> &TimeZone {
        &self.timezone
    }

    pub(crate) fn shifts(&self) -> &[Shift] {
        &self.shifts
    }

    pub(crate) fn leave(&self) -> &[Leave] {
        &self.leave
    }

    pub(crate) fn extras(&self) -> &[Extra] {
        &self.extras
    }

    /// Every agent the rota names, in shifts, leave or extra shifts, so the caller can check
    /// that each is registered.
    pub(crate) fn agents(&self) -> BTreeSet<AgentId> {
        let shifts = self.shifts.iter().map(|shift| &shift.agent);
        let leave = self.leave.iter().map(|leave| &leave.agent);
        let extras = self.extras.iter().map(|extra| &extra.agent);
        shifts.chain(leave).chain(extras).cloned().collect()
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

#[cfg(test)]
mod tests;

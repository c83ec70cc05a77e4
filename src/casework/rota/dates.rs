//! Dates and times as a person gives or reads them (`--until`, `--since`, `#away until`, the
//! CLI's times), in the helpdesk's time zone.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use super::wall_clock::{Edge, instant};

/// A zone's name as messages, `check-config` and the CLI show it: its tz-database name. Zones
/// are looked up by name (`TimeZone::get`), so they always have one.
pub(crate) fn zone_name(timezone: &TimeZone) -> &str {
    timezone.iana_name().unwrap_or("(unnamed time zone)")
}

/// A date or time as a person gives it (`--until`, `--since`, `#away until`): a date is its
/// first moment in `timezone` (a midnight skipped by a daylight-saving change is the moment of
/// the change, as for the start of a leave); an RFC 3339 time with an offset is taken as it is.
pub(crate) fn parse_date(text: &str, timezone: &TimeZone) -> Result<Timestamp, DateError> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp);
    }
    let date = text.parse::<Date>().map_err(|_| DateError {
        text: text.to_owned(),
    })?;
    Ok(start_of_day(date, timezone))
}

/// The first moment of `date` in `timezone`.
pub(crate) fn start_of_day(date: Date, timezone: &TimeZone) -> Timestamp {
    instant(timezone, date.to_datetime(Time::midnight()), Edge::Start)
}

/// An instant as a person reads it, in `timezone`: `2026-12-24 00:00 CET`.
pub(crate) fn local_time(at: Timestamp, timezone: &TimeZone) -> String {
    at.to_zoned(timezone.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// A date a person gave that is neither a date nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateError {
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

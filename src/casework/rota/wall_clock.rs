//! From wall-clock times in the helpdesk's time zone to instants, by the daylight-saving rules in
//! the module documentation.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::{ClockTime, LeaveBound};

/// The wall-clock moment a leave starts.
pub(super) fn leave_begins(bound: LeaveBound) -> DateTime {
    match bound {
        LeaveBound::Date(date) => date.to_datetime(Time::midnight()),
        LeaveBound::DateTime(datetime) => datetime,
    }
}

/// The wall-clock moment a leave ends: after the whole day for a date. A leave until the last
/// day of the calendar (9999-12-31, a way of writing "until further notice") ends with it.
pub(super) fn leave_ends(bound: LeaveBound) -> DateTime {
    match bound {
        LeaveBound::Date(date) => date
            .tomorrow()
            .map_or(DateTime::MAX, |next| next.to_datetime(Time::midnight())),
        LeaveBound::DateTime(datetime) => datetime,
    }
}

/// Which end of an interval a wall-clock time marks; it decides how a repeated time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Edge {
    Start,
    End,
}

/// The instant a wall-clock time stands for, by the rules in the module documentation. Civil
/// times at the very ends of the calendar, beyond the range of instants, are clamped to it.
pub(super) fn instant(timezone: &TimeZone, datetime: DateTime, edge: Edge) -> Timestamp {
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
pub(super) fn occurrence(
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

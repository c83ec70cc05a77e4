//! The rota file's format: reading and validating it, with errors that name the table and key
//! at fault, and exporting a rota back to a file.

use std::fmt;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

use super::wall_clock::{leave_begins, leave_ends};
use super::{ClockTime, Extra, Leave, LeaveBound, Rota, Shift, zone_name};

/// Which kind of table in the rota file an [`Error::Entry`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
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
pub(crate) enum Error {
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

pub(super) const DAY_NAMES: [(&str, Weekday); 7] = [
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
pub(crate) fn parse(text: &str, timezone: &TimeZone) -> Result<Rota, Error> {
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

impl Rota {
    /// Exports the rota as a file that [`parse`] reads back to an equal rota, given the same
    /// time zone.
    pub(crate) fn to_toml(&self) -> String {
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
}

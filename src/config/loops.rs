//! The `[loops]` and `[acknowledge]` sections: caps on outgoing mail, how long an address that
//! bounced is left alone, and the acknowledgement sent for each new ticket.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{format_duration, parse_duration};
use super::{DURATION, Error, Sources};

/// Caps and suppression that keep casemail from starting or feeding a mail loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loops {
    /// Most messages sent to one address in one clock hour (UTC); 0 means no cap.
    pub per_recipient_per_hour: u32,
    /// Most messages sent about one ticket in one day (UTC); 0 means no cap.
    pub per_ticket_per_day: u32,
    /// How long nothing is sent to an address after a hard bounce.
    pub suppress_after_bounce: Duration,
}

/// The acknowledgement each new ticket's requester receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledge {
    pub enabled: bool,
    /// The body, with `{ticket}` and `{helpdesk}` filled in (`{subject}` and `{name}` of older
    /// templates become `[#N]` and nothing: see `mail_loops::render_template`).
    pub template: String,
}

pub(super) const SCHEMA: &[(&str, &str)] = &[
    ("per_recipient_per_hour", CAP),
    ("per_ticket_per_day", CAP),
    ("suppress_after_bounce", DURATION),
];

pub(super) const ACKNOWLEDGE_SCHEMA: &[(&str, &str)] = &[
    ("enabled", "true or false"),
    (
        "template",
        "text with the placeholders {ticket} and {helpdesk}",
    ),
];

const CAP: &str = "a whole number, 0 for no cap";

pub(super) const DEFAULT_PER_RECIPIENT_PER_HOUR: u32 = 60;
pub(super) const DEFAULT_PER_TICKET_PER_DAY: u32 = 20;
pub(super) const DEFAULT_SUPPRESS_AFTER_BOUNCE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Short sentences in plain words, which read well through a translation tool; the ticket
/// number is on a line of its own so it is easy to find and quote.
pub(super) const DEFAULT_TEMPLATE: &str = "Hello,\n\nThank you for writing to {helpdesk}. We have received your message.\n\nYour ticket number is: #{ticket}\n\nWhat happens next: a caseworker will read your message and answer you by email. You do not need to write again. If you want to add something, reply to this email and keep [#{ticket}] in the subject.\n\nThis message was sent automatically.\n";

/// The placeholders a template may use.
pub(super) const PLACEHOLDERS: &[&str] = &["ticket", "helpdesk"];

/// Placeholders older templates used, still accepted but no longer filled from the mail.
const RETIRED_PLACEHOLDERS: &[&str] = &["subject", "name"];

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLoops {
    per_recipient_per_hour: Option<i64>,
    per_ticket_per_day: Option<i64>,
    suppress_after_bounce: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAcknowledge {
    enabled: Option<bool>,
    template: Option<String>,
}

fn cap(sources: &Sources<'_>, key: &str, value: Option<i64>, default: u32) -> Result<u32, Error> {
    match value {
        None => Ok(default),
        Some(number) => u32::try_from(number)
            .map_err(|_| sources.error(key, format!("expected {CAP}, found {number}"))),
    }
}

pub(super) fn validate_loops(raw: RawLoops, sources: &Sources<'_>) -> Result<Loops, Error> {
    let suppress_after_bounce = match raw.suppress_after_bounce {
        None => DEFAULT_SUPPRESS_AFTER_BOUNCE,
        Some(text) => parse_duration(&text)
            .map_err(|reason| sources.error("loops.suppress_after_bounce", reason))?,
    };
    Ok(Loops {
        per_recipient_per_hour: cap(
            sources,
            "loops.per_recipient_per_hour",
            raw.per_recipient_per_hour,
            DEFAULT_PER_RECIPIENT_PER_HOUR,
        )?,
        per_ticket_per_day: cap(
            sources,
            "loops.per_ticket_per_day",
            raw.per_ticket_per_day,
            DEFAULT_PER_TICKET_PER_DAY,
        )?,
        suppress_after_bounce,
    })
}

pub(super) fn validate_acknowledge(
    raw: RawAcknowledge,
    sources: &Sources<'_>,
) -> Result<Acknowledge, Error> {
    let template = raw.template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
    if template.trim().is_empty() {
        return Err(sources.error("acknowledge.template", "must not be empty"));
    }
    if let Some(unknown) = unknown_placeholder(&template) {
        return Err(sources.error(
            "acknowledge.template",
            format!(
                "unknown placeholder {{{unknown}}}; use {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(Acknowledge {
        enabled: raw.enabled.unwrap_or(true),
        template,
    })
}

/// The first `{word}` in `template` that is not a known placeholder.
fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = rest.get(start + 1..).unwrap_or("");
        let end = after.find('}')?;
        let name = after.get(..end).unwrap_or("");
        if !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !PLACEHOLDERS.contains(&name)
            && !RETIRED_PLACEHOLDERS.contains(&name)
        {
            return Some(name.to_owned());
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    None
}

#[derive(Serialize)]
pub(super) struct LoopsView {
    per_recipient_per_hour: u32,
    per_ticket_per_day: u32,
    suppress_after_bounce: String,
}

impl LoopsView {
    pub(super) fn of(loops: &Loops) -> LoopsView {
        LoopsView {
            per_recipient_per_hour: loops.per_recipient_per_hour,
            per_ticket_per_day: loops.per_ticket_per_day,
            suppress_after_bounce: format_duration(loops.suppress_after_bounce),
        }
    }
}

#[derive(Serialize)]
pub(super) struct AcknowledgeView {
    enabled: bool,
    template: String,
}

impl AcknowledgeView {
    pub(super) fn of(acknowledge: &Acknowledge) -> AcknowledgeView {
        AcknowledgeView {
            enabled: acknowledge.enabled,
            template: acknowledge.template.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_checked() {
        assert_eq!(unknown_placeholder(DEFAULT_TEMPLATE), None);
        assert_eq!(unknown_placeholder("{ticket} {name}"), None);
        assert_eq!(
            unknown_placeholder("#{ticket} {agent}"),
            Some("agent".to_owned())
        );
        // Braces that are not a placeholder (a smiley, JSON) are left alone.
        assert_eq!(unknown_placeholder("{ :-) } {}"), None);
    }
}

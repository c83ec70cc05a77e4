//! Validation: defaults applied and every value checked once, turning a `RawConfig` into the
//! typed [`Config`]; the mail servers' sections are validated in `servers`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::fields::{absolute_path, check_text, duration, required};
use super::raw::{
    RawConfig, RawControl, RawHelpdesk, RawIngest, RawReconcile, RawRetention, RawRota,
};
use super::schema::BATCH_SIZE;
use super::servers::{validate_imap, validate_smtp};
use super::values::{is_loopback_ip, parse_address, parse_duration, parse_size};
use super::{
    AuthMethod, Config, Control, Error, FirstRun, Helpdesk, Ingest, Reconcile, Retention,
    RotaSettings, Sources, Threading, auth, loops, oauth2, spam,
};

const DEFAULT_NAME: &str = "Helpdesk";
const DEFAULT_STATE_DIR: &str = "/var/lib/casemail";
const DEFAULT_SOCKET: &str = "/run/casemail/casemail.sock";
const DEFAULT_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9187);
/// `sun_path` in `struct sockaddr_un` holds 108 bytes on Linux, including the final NUL.
const SOCKET_PATH_MAX: usize = 107;
const DEFAULT_MAX_ATTACHMENT_SIZE: u64 = 25 * 1024 * 1024;
const DEFAULT_MESSAGE_TIME_BUDGET: Duration = Duration::from_secs(30);
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const DEFAULT_BATCH_SIZE: u32 = 200;
/// 25 MiB: as much as common providers accept in one message, with room for encoding.
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 25 * 1024 * 1024;
const DEFAULT_FETCH_BYTES: u64 = 64 * 1024 * 1024;
const MAX_BATCH_SIZE: u32 = 5000;

pub(super) fn validate(raw: RawConfig, sources: &Sources<'_>) -> Result<Config, Error> {
    let helpdesk = validate_helpdesk(raw.helpdesk, sources)?;
    let imap_auth = oauth2::auth_method(sources, "imap.auth", raw.imap.auth.clone())?;
    let smtp_auth = oauth2::auth_method(sources, "smtp.auth", raw.smtp.auth.clone())?;
    let wanted_by = match (imap_auth, smtp_auth) {
        (AuthMethod::OAuth2, _) => Some("imap.auth"),
        (_, AuthMethod::OAuth2) => Some("smtp.auth"),
        _ => None,
    };
    let oauth2 = oauth2::validate(raw.oauth2, sources, wanted_by, &helpdesk.state_dir)?;
    let for_imap = oauth2.clone().filter(|_| imap_auth == AuthMethod::OAuth2);
    let for_smtp = oauth2.filter(|_| smtp_auth == AuthMethod::OAuth2);
    Ok(Config {
        source: sources.file.to_owned(),
        helpdesk,
        imap: validate_imap(raw.imap, sources, for_imap)?,
        smtp: validate_smtp(raw.smtp, sources, for_smtp)?,
        control: validate_control(raw.control, sources)?,
        threading: Threading {
            one_open_ticket_per_requester: raw
                .threading
                .one_open_ticket_per_requester
                .unwrap_or(true),
        },
        auth: auth::validate(raw.auth, sources)?,
        ingest: validate_ingest(raw.ingest, sources)?,
        rota: validate_rota(raw.rota, sources)?,
        loops: loops::validate_loops(raw.loops, sources)?,
        acknowledge: loops::validate_acknowledge(raw.acknowledge, sources)?,
        spam: spam::validate(raw.spam, sources)?,
        reconcile: validate_reconcile(raw.reconcile, sources)?,
        retention: validate_retention(raw.retention, sources)?,
    })
}

const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(60 * 60);

fn validate_reconcile(raw: RawReconcile, sources: &Sources<'_>) -> Result<Reconcile, Error> {
    let every = match raw.every.as_deref().map(str::trim) {
        None => Some(DEFAULT_RECONCILE_EVERY),
        Some("0") => None,
        Some(text) => {
            let every = parse_duration(text).map_err(|reason| {
                sources.error("reconcile.every", format!("{reason}; \"0\" turns it off"))
            })?;
            Some(every).filter(|every| !every.is_zero())
        }
    };
    Ok(Reconcile { every })
}

/// `""`, `"0"` or a zero duration turn retention off, which is the default: how long a
/// helpdesk keeps closed cases is the organisation's decision, and deleting data is not undone.
fn validate_retention(raw: RawRetention, sources: &Sources<'_>) -> Result<Retention, Error> {
    let closed_after = match raw.closed_after.as_deref().map(str::trim) {
        None | Some("" | "0") => None,
        Some(text) => Some(
            parse_duration(text)
                .map_err(|reason| sources.error("retention.closed_after", reason))?,
        )
        .filter(|d| !d.is_zero()),
    };
    Ok(Retention { closed_after })
}

const DEFAULT_ANSWER_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);

fn validate_rota(raw: RawRota, sources: &Sources<'_>) -> Result<RotaSettings, Error> {
    let timezone_name = raw.timezone.unwrap_or_else(|| "UTC".to_owned());
    let timezone = jiff::tz::TimeZone::get(&timezone_name).map_err(|err| {
        sources.error(
            "rota.timezone",
            format!("unknown time zone {timezone_name:?}: {err}"),
        )
    })?;
    let answer_within = duration(
        sources,
        "rota.answer_within",
        raw.answer_within,
        DEFAULT_ANSWER_WITHIN,
    )?;
    if answer_within.is_zero() {
        return Err(sources.error("rota.answer_within", "must not be zero"));
    }
    let digest_text = raw.digest_at.unwrap_or_else(|| "08:00".to_owned());
    let digest_at = digest_text
        .split_once(':')
        .filter(|_| {
            digest_text.len() == 5 && digest_text.bytes().filter(u8::is_ascii_digit).count() == 4
        })
        .and_then(|(h, m)| jiff::civil::Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok())
        .ok_or_else(|| {
            sources.error(
                "rota.digest_at",
                format!("expected a time of day as HH:MM, found {digest_text:?}"),
            )
        })?;
    Ok(RotaSettings {
        timezone,
        answer_within,
        digest_at,
    })
}

fn validate_helpdesk(raw: RawHelpdesk, sources: &Sources<'_>) -> Result<Helpdesk, Error> {
    let address = required(sources, "helpdesk.address", raw.address)?;
    let address =
        parse_address(&address).map_err(|reason| sources.error("helpdesk.address", reason))?;
    let name = raw.name.unwrap_or_else(|| DEFAULT_NAME.to_owned());
    // The name goes into the From header of every outgoing message.
    check_text(&name).map_err(|reason| sources.error("helpdesk.name", reason))?;
    let state_dir = absolute_path(
        sources,
        "helpdesk.state_dir",
        raw.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR),
    )?;
    let hide_names = raw.hide_names.map(|list| list.0).unwrap_or_default();
    for hidden in &hide_names {
        check_text(hidden).map_err(|reason| sources.error("helpdesk.hide_names", reason))?;
    }
    Ok(Helpdesk {
        address,
        name,
        state_dir,
        hide_names,
    })
}

fn validate_control(raw: RawControl, sources: &Sources<'_>) -> Result<Control, Error> {
    let socket = absolute_path(
        sources,
        "control.socket",
        raw.socket.as_deref().unwrap_or(DEFAULT_SOCKET),
    )?;
    if socket.as_os_str().len() > SOCKET_PATH_MAX {
        return Err(sources.error(
            "control.socket",
            format!(
                "must be at most {SOCKET_PATH_MAX} bytes long, the limit for a Unix socket path"
            ),
        ));
    }
    let http = match raw.http {
        None => DEFAULT_HTTP,
        Some(text) => {
            let address: SocketAddr = text.parse().map_err(|_| {
                sources.error(
                    "control.http",
                    format!(
                        "expected an address and port such as \"127.0.0.1:9187\", found {text:?}"
                    ),
                )
            })?;
            if !is_loopback_ip(address.ip()) {
                return Err(sources.error(
                    "control.http",
                    format!(
                        "must be a loopback address such as 127.0.0.1 or [::1], found {address}: \
                         health and metrics are not meant to be reachable from the network"
                    ),
                ));
            }
            address
        }
    };
    Ok(Control { socket, http })
}

fn validate_ingest(raw: RawIngest, sources: &Sources<'_>) -> Result<Ingest, Error> {
    let max_attachment_size = match raw.max_attachment_size {
        None => DEFAULT_MAX_ATTACHMENT_SIZE,
        Some(text) => parse_size(&text)
            .map_err(|reason| sources.error("ingest.max_attachment_size", reason))?,
    };
    let first_run = match raw
        .first_run
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backfill") => FirstRun::Backfill,
        Some("notify") => FirstRun::Notify,
        Some(other) => {
            return Err(sources.error(
                "ingest.first_run",
                format!("expected \"backfill\" or \"notify\", found {other:?}"),
            ));
        }
    };
    let message_time_budget = duration(
        sources,
        "ingest.message_time_budget",
        raw.message_time_budget,
        DEFAULT_MESSAGE_TIME_BUDGET,
    )?;
    if message_time_budget.is_zero() {
        return Err(sources.error("ingest.message_time_budget", "must not be zero"));
    }
    let max_attempts = match raw.max_attempts {
        None => DEFAULT_MAX_ATTEMPTS,
        Some(number) => u32::try_from(number)
            .ok()
            .filter(|attempts| *attempts >= 1)
            .ok_or_else(|| {
                sources.error(
                    "ingest.max_attempts",
                    format!("expected a whole number of at least 1, found {number}"),
                )
            })?,
    };
    let batch_size = match raw.batch_size {
        None => DEFAULT_BATCH_SIZE,
        Some(number) => u32::try_from(number)
            .ok()
            .filter(|size| (1..=MAX_BATCH_SIZE).contains(size))
            .ok_or_else(|| {
                sources.error(
                    "ingest.batch_size",
                    format!("expected {BATCH_SIZE}, found {number}"),
                )
            })?,
    };
    let nonzero_size = |key: &str, text: Option<String>, default: u64| match text {
        None => Ok(default),
        Some(text) => match parse_size(&text) {
            Ok(0) => Err(sources.error(key, "must not be zero")),
            Ok(size) => Ok(size),
            Err(reason) => Err(sources.error(key, reason)),
        },
    };
    let max_message_size = nonzero_size(
        "ingest.max_message_size",
        raw.max_message_size,
        DEFAULT_MAX_MESSAGE_SIZE,
    )?;
    let fetch_bytes = nonzero_size("ingest.fetch_bytes", raw.fetch_bytes, DEFAULT_FETCH_BYTES)?;
    Ok(Ingest {
        max_attachment_size,
        first_run,
        message_time_budget,
        max_attempts,
        batch_size,
        max_message_size,
        fetch_bytes,
    })
}

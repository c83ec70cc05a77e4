//! The mail servers' sections, `[imap]` and `[smtp]`: host, port, security, sign-in and folders.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::fields::{
    ca_file, check_text, duration, folder_list, inline_password, read_password_file, required,
};
use super::raw::{RawImap, RawSmtp};
use super::schema::{HOST, PORT, SECURITY};
use super::values::{format_duration, is_loopback_host};
use super::{Error, Imap, OAuth2, Security, Smtp, Sources};

const DEFAULT_FOLDER: &str = "INBOX";
const DEFAULT_PROCESSED_FOLDER: &str = "Processed";
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// RFC 2177 §3: servers may log a client out after 30 minutes of IDLE, so clients re-issue it
/// at least every 29 minutes.
const IDLE_LIMIT: Duration = Duration::from_secs(29 * 60);

pub(super) fn validate_imap(
    raw: RawImap,
    sources: &Sources<'_>,
    oauth2: Option<OAuth2>,
) -> Result<Imap, Error> {
    let preset = oauth2.as_ref().and_then(|o| o.preset().imap_host);
    let host = required(sources, "imap.host", raw.host.or(preset.map(str::to_owned)))?;
    check_host(&host, "imap.port").map_err(|reason| sources.error("imap.host", reason))?;
    let security = security(sources, "imap.security", raw.security, Security::Tls)?;
    let default_port = match security {
        Security::Tls => 993,
        Security::StartTls | Security::Plain => 143,
    };
    let port = port(sources, "imap.port", raw.port, default_port)?;
    refuse_plain_off_loopback(sources, "imap.security", security, &host)?;
    let username = required(sources, "imap.username", raw.username)?;
    check_text(&username).map_err(|reason| sources.error("imap.username", reason))?;
    let (password, password_file) = match (raw.password, raw.password_file) {
        (Some(_), _) | (_, Some(_)) if oauth2.is_some() => {
            return Err(sources.error(
                "imap.password",
                "imap.auth is \"oauth2\": casemail signs in with tokens, so remove \
                 imap.password and imap.password_file",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(sources.error(
                "imap.password",
                "set only one of imap.password and imap.password_file",
            ));
        }
        (Some(password), None) => (
            Some(inline_password(sources, "imap.password", password)?),
            None,
        ),
        (None, Some(path)) => {
            let (path, password) = read_password_file(sources, "imap.password_file", &path)?;
            (Some(password), Some(path))
        }
        (None, None) if oauth2.is_some() => (None, None),
        (None, None) => {
            return Err(sources.error(
                "imap.password",
                "missing required key: set imap.password_file (or imap.password)",
            ));
        }
    };
    let ca_file = ca_file(sources, "imap.ca_file", raw.ca_file)?;

    let folders = folder_list(
        sources,
        "imap.folders",
        raw.folders
            .map_or_else(|| vec![DEFAULT_FOLDER.to_owned()], |list| list.0),
    )?;
    if folders.is_empty() {
        return Err(sources.error("imap.folders", "must name at least one folder"));
    }
    let junk_folders = folder_list(
        sources,
        "imap.junk_folders",
        raw.junk_folders.map(|list| list.0).unwrap_or_default(),
    )?;
    if let Some(shared) = junk_folders.iter().find(|name| folders.contains(name)) {
        return Err(sources.error(
            "imap.junk_folders",
            format!("{shared:?} is also in imap.folders"),
        ));
    }
    let processed_folder = match raw.processed_folder {
        None => Some(DEFAULT_PROCESSED_FOLDER.to_owned()),
        Some(name) if name.is_empty() => None,
        Some(name) => Some(name),
    };
    if let Some(name) = &processed_folder {
        check_text(name).map_err(|reason| sources.error("imap.processed_folder", reason))?;
        if folders.contains(name) || junk_folders.contains(name) {
            return Err(sources.error(
                "imap.processed_folder",
                format!(
                    "{name:?} is a folder casemail reads, so processed mail would be read again"
                ),
            ));
        }
    }

    let poll_interval = duration(
        sources,
        "imap.poll_interval",
        raw.poll_interval,
        DEFAULT_POLL_INTERVAL,
    )?;
    if poll_interval < Duration::from_secs(1) {
        return Err(sources.error("imap.poll_interval", "must be at least 1s"));
    }
    let idle_timeout = duration(
        sources,
        "imap.idle_timeout",
        raw.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
    )?;
    if idle_timeout < Duration::from_secs(1) || idle_timeout >= IDLE_LIMIT {
        return Err(sources.error(
            "imap.idle_timeout",
            format!(
                "must be at least 1s and less than 29m (RFC 2177 lets servers end IDLE after \
                 30 minutes), found {}",
                format_duration(idle_timeout)
            ),
        ));
    }

    let paused_folders = folder_list(
        sources,
        "imap.paused_folders",
        raw.paused_folders.map(|list| list.0).unwrap_or_default(),
    )?;
    if let Some(unknown) = paused_folders
        .iter()
        .find(|name| !folders.contains(name) && !junk_folders.contains(name))
    {
        return Err(sources.error(
            "imap.paused_folders",
            format!("{unknown:?} is not in imap.folders or imap.junk_folders"),
        ));
    }

    Ok(Imap {
        host,
        port,
        security,
        username,
        password,
        password_file,
        oauth2,
        ca_file,
        folders,
        junk_folders,
        processed_folder,
        poll_interval,
        idle_timeout,
        paused_folders,
    })
}

pub(super) fn validate_smtp(
    raw: RawSmtp,
    sources: &Sources<'_>,
    oauth2: Option<OAuth2>,
) -> Result<Smtp, Error> {
    let preset = oauth2.as_ref().and_then(|o| o.preset().smtp_host);
    let host = required(sources, "smtp.host", raw.host.or(preset.map(str::to_owned)))?;
    check_host(&host, "smtp.port").map_err(|reason| sources.error("smtp.host", reason))?;
    let security = security(sources, "smtp.security", raw.security, Security::StartTls)?;
    let default_port = match security {
        Security::Tls => 465,
        Security::StartTls => 587,
        Security::Plain => 25,
    };
    let port = port(sources, "smtp.port", raw.port, default_port)?;
    refuse_plain_off_loopback(sources, "smtp.security", security, &host)?;
    if let Some(username) = &raw.username {
        check_text(username).map_err(|reason| sources.error("smtp.username", reason))?;
    }
    if oauth2.is_some() {
        if raw.password.is_some() || raw.password_file.is_some() {
            return Err(sources.error(
                "smtp.password",
                "smtp.auth is \"oauth2\": casemail signs in with tokens, so remove \
                 smtp.password and smtp.password_file",
            ));
        }
        let username = required(sources, "smtp.username", raw.username).map_err(|_| {
            sources.error(
                "smtp.username",
                "missing required key: smtp.auth is \"oauth2\", so name the mailbox signed in \
                 to (the shared address)",
            )
        })?;
        check_text(&username).map_err(|reason| sources.error("smtp.username", reason))?;
        let ca_file = ca_file(sources, "smtp.ca_file", raw.ca_file)?;
        return Ok(Smtp {
            host,
            port,
            security,
            username: Some(username),
            password: None,
            password_file: None,
            oauth2,
            ca_file,
        });
    }
    let (password, password_file) = match (raw.password, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(sources.error(
                "smtp.password",
                "set only one of smtp.password and smtp.password_file",
            ));
        }
        (Some(password), None) => (
            Some(inline_password(sources, "smtp.password", password)?),
            None,
        ),
        (None, Some(path)) => {
            let (path, password) = read_password_file(sources, "smtp.password_file", &path)?;
            (Some(password), Some(path))
        }
        (None, None) => (None, None),
    };
    match (&raw.username, &password) {
        (None, Some(_)) => {
            return Err(sources.error(
                "smtp.username",
                "missing required key: a password is set, so the user name is needed too",
            ));
        }
        (Some(_), None) => {
            return Err(sources.error(
                "smtp.password",
                "missing required key: smtp.username is set, so set smtp.password_file (or \
                 smtp.password) too",
            ));
        }
        (None, None) | (Some(_), Some(_)) => {}
    }
    let ca_file = ca_file(sources, "smtp.ca_file", raw.ca_file)?;
    Ok(Smtp {
        host,
        port,
        security,
        username: raw.username,
        password,
        password_file,
        oauth2: None,
        ca_file,
    })
}

fn check_host(host: &str, port_key: &str) -> Result<(), String> {
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!("expected {HOST}, found {host:?}"));
    }
    // A colon is only part of an IPv6 address; anything else is most likely "host:port".
    if host.contains(':') && host.parse::<Ipv6Addr>().is_err() {
        return Err(format!(
            "expected {HOST} without a port or brackets, found {host:?}; set the port with \
             {port_key}"
        ));
    }
    Ok(())
}

fn security(
    sources: &Sources<'_>,
    key: &str,
    value: Option<String>,
    default: Security,
) -> Result<Security, Error> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("tls") => Ok(Security::Tls),
        Some("starttls") => Ok(Security::StartTls),
        Some("plain") => Ok(Security::Plain),
        Some(other) => Err(sources.error(key, format!("expected {SECURITY}, found {other:?}"))),
    }
}

fn refuse_plain_off_loopback(
    sources: &Sources<'_>,
    key: &str,
    security: Security,
    host: &str,
) -> Result<(), Error> {
    if security == Security::Plain && !is_loopback_host(host) {
        return Err(sources.error(
            key,
            format!(
                "\"plain\" sends the password and mail unencrypted, so it is only allowed \
                 towards a loopback host (localhost, 127.0.0.0/8, ::1), not {host:?}; use \
                 \"tls\" or \"starttls\""
            ),
        ));
    }
    Ok(())
}

fn port(sources: &Sources<'_>, key: &str, value: Option<i64>, default: u16) -> Result<u16, Error> {
    let Some(number) = value else {
        return Ok(default);
    };
    u16::try_from(number)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| sources.error(key, format!("expected {PORT}, found {number}")))
}

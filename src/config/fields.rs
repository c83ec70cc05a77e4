//! Checks for one key at a time (required values, text, paths, password files, folder lists,
//! durations), each error naming the key and where its value came from.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::schema::ABSOLUTE_PATH;
use super::values::parse_duration;
use super::{Error, Sources};

pub(super) fn required(
    sources: &Sources<'_>,
    key: &str,
    value: Option<String>,
) -> Result<String, Error> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value),
        Some(_) => Err(sources.error(key, "must not be empty")),
        None => Err(sources.error(key, "missing required key")),
    }
}

/// Rejects control characters, which would let a value break a header line or a log line.
pub(super) fn check_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else if text.chars().any(char::is_control) {
        Err(format!(
            "must not contain control characters, found {text:?}"
        ))
    } else {
        Ok(())
    }
}

pub(super) fn absolute_path(
    sources: &Sources<'_>,
    key: &str,
    text: &str,
) -> Result<PathBuf, Error> {
    let path = PathBuf::from(text);
    // A relative path would depend on the directory casemail happens to be started from.
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(sources.error(key, format!("expected {ABSOLUTE_PATH}, found {text:?}")))
    }
}

pub(super) fn ca_file(
    sources: &Sources<'_>,
    key: &str,
    value: Option<String>,
) -> Result<Option<PathBuf>, Error> {
    let Some(text) = value else {
        return Ok(None);
    };
    let path = absolute_path(sources, key, &text)?;
    match std::fs::metadata(&path) {
        Ok(metadata) if metadata.is_file() => Ok(Some(path)),
        Ok(_) => Err(sources.error(key, format!("{} is not a file", path.display()))),
        Err(err) => Err(sources.error(
            key,
            format!("cannot read {}: {}", path.display(), describe_io(&err)),
        )),
    }
}

pub(super) fn inline_password(
    sources: &Sources<'_>,
    key: &str,
    password: SecretString,
) -> Result<SecretString, Error> {
    if password.expose_secret().is_empty() {
        Err(sources.error(key, "must not be empty"))
    } else {
        Ok(password)
    }
}

/// Reads a password file, as written by hand or provided by systemd's `LoadCredential=`.
///
/// A path starting with `$CREDENTIALS_DIRECTORY/` or `${CREDENTIALS_DIRECTORY}/` is taken
/// relative to the directory systemd names in that variable, so the unit and the config can
/// share one credential name. The trailing newline that editors and `echo` add is dropped.
pub(super) fn read_password_file(
    sources: &Sources<'_>,
    key: &str,
    text: &str,
) -> Result<(PathBuf, SecretString), Error> {
    let credential = text
        .strip_prefix("$CREDENTIALS_DIRECTORY/")
        .or_else(|| text.strip_prefix("${CREDENTIALS_DIRECTORY}/"));
    let path = match credential {
        Some(name) => match sources.env.get("CREDENTIALS_DIRECTORY") {
            Some(directory) => absolute_path(sources, key, directory)?.join(name),
            None => {
                return Err(sources.error(
                    key,
                    format!(
                        "{text:?} uses $CREDENTIALS_DIRECTORY, which is not set (systemd sets \
                         it for a unit with LoadCredential=)"
                    ),
                ));
            }
        },
        None => absolute_path(sources, key, text)?,
    };
    let mut contents = std::fs::read_to_string(&path).map_err(|err| {
        sources.error(
            key,
            format!("cannot read {}: {}", path.display(), describe_io(&err)),
        )
    })?;
    let length = contents.trim_end_matches(['\n', '\r']).len();
    // Truncating in place, rather than copying the trimmed text, leaves a single copy of the
    // secret in memory, which `SecretString` wipes on drop.
    contents.truncate(length);
    if contents.is_empty() {
        return Err(sources.error(key, format!("{} is empty", path.display())));
    }
    Ok((path, SecretString::from(contents)))
}

pub(super) fn folder_list(
    sources: &Sources<'_>,
    key: &str,
    names: Vec<String>,
) -> Result<Vec<String>, Error> {
    let mut seen: Vec<&String> = Vec::new();
    for name in &names {
        check_text(name).map_err(|reason| sources.error(key, format!("folder name {reason}")))?;
        if seen.contains(&name) {
            return Err(sources.error(key, format!("{name:?} is listed twice")));
        }
        seen.push(name);
    }
    Ok(names)
}

pub(super) fn duration(
    sources: &Sources<'_>,
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(&text).map_err(|reason| sources.error(key, reason)),
    }
}

pub(super) fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::InvalidData => "the file is not valid UTF-8".to_owned(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        _ => err.to_string(),
    }
}

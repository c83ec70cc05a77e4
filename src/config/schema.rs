//! Every section and key the file may hold, and the check that names an unknown key exactly and
//! suggests the nearest known one.

use std::path::Path;

use super::values::{display_key, suggestion};
use super::{Error, auth, loops, oauth2};

/// Every section and key the file may hold, with what each value should look like. The
/// pre-parse checks names against this table; the descriptions finish type errors.
pub(super) const SCHEMA: &[(&str, &[(&str, &str)])] = &[
    (
        "helpdesk",
        &[
            (
                "address",
                "an email address such as \"help@charity.example\"",
            ),
            ("name", "a display name"),
            ("state_dir", ABSOLUTE_PATH),
            (
                "hide_names",
                "a list of names such as [\"Amina Yusuf\", \"Jonas Berg\"]",
            ),
        ],
    ),
    (
        "imap",
        &[
            ("host", HOST),
            ("port", PORT),
            ("security", SECURITY),
            ("auth", AUTH),
            ("username", "a user name"),
            ("password", "a password"),
            ("password_file", ABSOLUTE_PATH),
            ("ca_file", ABSOLUTE_PATH),
            ("folders", FOLDERS),
            ("junk_folders", FOLDERS),
            (
                "processed_folder",
                "a folder name, or \"\" to leave mail where it is",
            ),
            ("poll_interval", DURATION),
            ("idle_timeout", DURATION),
            ("paused_folders", FOLDERS),
        ],
    ),
    (
        "smtp",
        &[
            ("host", HOST),
            ("port", PORT),
            ("security", SECURITY),
            ("auth", AUTH),
            ("username", "a user name"),
            ("password", "a password"),
            ("password_file", ABSOLUTE_PATH),
            ("ca_file", ABSOLUTE_PATH),
        ],
    ),
    (
        "control",
        &[
            ("socket", ABSOLUTE_PATH),
            (
                "http",
                "a loopback address and port such as \"127.0.0.1:9187\"",
            ),
        ],
    ),
    (
        "threading",
        &[("one_open_ticket_per_requester", "true or false")],
    ),
    ("auth", auth::SCHEMA),
    (
        "rota",
        &[
            (
                "timezone",
                "an IANA time zone name such as \"Europe/Berlin\"",
            ),
            ("answer_within", DURATION),
            ("digest_at", "a time of day such as \"08:00\""),
        ],
    ),
    (
        "retention",
        &[(
            "closed_after",
            "a duration such as \"365d\", or \"\" to keep closed tickets for ever",
        )],
    ),
    (
        "ingest",
        &[
            ("max_attachment_size", SIZE),
            ("first_run", "\"backfill\" or \"notify\""),
            ("message_time_budget", DURATION),
            ("max_attempts", "a whole number of at least 1"),
            ("batch_size", BATCH_SIZE),
            ("max_message_size", SIZE),
            ("fetch_bytes", SIZE),
        ],
    ),
    ("oauth2", oauth2::SCHEMA),
    ("loops", loops::SCHEMA),
    ("acknowledge", loops::ACKNOWLEDGE_SCHEMA),
    (
        "spam",
        &[
            ("threshold", "a number above 0"),
            ("keep_for", DURATION),
            (
                "spamd",
                "a loopback address and port such as \"127.0.0.1:783\", or \"\" for none",
            ),
            ("spamd_timeout", DURATION),
            ("allow_addresses", "a list of email addresses"),
            ("allow_domains", "a list of domains"),
            ("classifier_weight", "a number of at least 0"),
            (
                "rules",
                "a list of tables with name, target, pattern and weight",
            ),
        ],
    ),
    (
        "reconcile",
        &[("every", "a duration such as \"1h\", or \"0\" for never")],
    ),
];

pub(super) const ABSOLUTE_PATH: &str = "an absolute path";
pub(super) const HOST: &str = "a host name or IP address";
pub(super) const PORT: &str = "a port number from 1 to 65535";
pub(super) const SECURITY: &str = "\"tls\", \"starttls\" or \"plain\"";
const AUTH: &str = "\"password\" or \"oauth2\"";
const FOLDERS: &str = "a list of folder names";
pub(super) const DURATION: &str =
    "a duration such as \"500ms\", \"30s\", \"5m\", \"24h\" or \"7d\"";
pub(super) const SIZE: &str = "a size such as \"500KB\", \"25MiB\" or a number of bytes";
pub(super) const BATCH_SIZE: &str = "a whole number from 1 to 5000";

pub(super) fn schema_section(section: &str) -> Option<&'static [(&'static str, &'static str)]> {
    SCHEMA
        .iter()
        .find(|(name, _)| *name == section)
        .map(|(_, keys)| *keys)
}

/// What a key's value should look like, for keys such as `imap.folders[0]` too.
pub(super) fn expectation(dotted_key: &str) -> Option<&'static str> {
    let base = dotted_key.split('[').next().unwrap_or(dotted_key);
    let (section, key) = base.split_once('.')?;
    schema_section(section)?
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, expects)| *expects)
}

/// Rejects unknown sections and keys in the file, naming the dotted key and suggesting the
/// nearest known one, before the config crate would report them less precisely.
pub(super) fn check_file_keys(file: &Path, table: &toml::Table) -> Result<(), Error> {
    let error = |key: String, reason: String| Error {
        file: file.to_owned(),
        key,
        reason,
    };
    for (section, value) in table {
        let Some(keys) = schema_section(section) else {
            let section_names = SCHEMA.iter().map(|(name, _)| *name);
            let owner = SCHEMA
                .iter()
                .find(|(_, keys)| keys.iter().any(|(name, _)| name == section));
            let reason = match (value, owner) {
                (toml::Value::Table(_), _) => {
                    format!("unknown section{}", suggestion(section, section_names))
                }
                (_, Some((owner, _))) => {
                    format!("unknown key: {section} belongs in the [{owner}] section")
                }
                (_, None) => "unknown key: keys belong in a section such as [imap]".to_owned(),
            };
            return Err(error(display_key(section), reason));
        };
        let toml::Value::Table(entries) = value else {
            return Err(error(
                display_key(section),
                format!("expected a [{section}] section, found {value}"),
            ));
        };
        for key in entries.keys() {
            if !keys.iter().any(|(name, _)| name == key) {
                let names = keys.iter().map(|(name, _)| *name);
                return Err(error(
                    format!("{section}.{}", display_key(key)),
                    format!("unknown key{}", suggestion(key, names)),
                ));
            }
        }
    }
    Ok(())
}

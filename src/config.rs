//! Configuration: defaults, then the TOML file, then `CASEMAIL__SECTION__KEY` environment
//! variables, validated once into the typed [`Config`] every other module reads.
//!
//! This module owns reading the file and secrets; it must not open sockets or the store.
//!
//! Loading goes through three steps. The file is parsed with `toml` and its keys are checked
//! against `SCHEMA`, and so are the environment variables, so that a typo is reported with
//! its exact dotted key. The `config` crate then merges file and environment into a
//! `RawConfig`, whose fields are all optional. Finally `validate` applies the defaults,
//! checks every value and reads the password files, producing a [`Config`] in which nothing is
//! left to interpret: durations, sizes, the time zone and the digest time are typed values.
//!
//! The key check stays here rather than in the `config` crate's deserialisation because the
//! crate reports an unknown key only as serde's text ("unknown field `prot`, expected one of
//! …") attached to its section, takes the keys in hash order (so which of two typos is named
//! would vary from run to run) and cannot say which environment variable set it. Lists in
//! variables (`INBOX,Support`) are split by `StringList` because the crate splits lists only
//! when it also guesses types, which would turn a password "007" into the number 7.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

mod auth;
mod loops;
mod oauth2;
mod redact;
mod spam;
#[cfg(test)]
mod tests;
mod values;

pub use auth::{Auth, WithoutResults};
pub use loops::{Acknowledge, Loops};
pub use oauth2::{AuthMethod, Flow, OAuth2, Provider};

pub use spam::{Rule as SpamRule, Spam, Target as SpamTarget};
use values::{
    display_key, format_duration, is_loopback_host, is_loopback_ip, nearest, parse_address,
    parse_duration, parse_size, suggestion,
};

/// A configuration that could not be loaded: names the file, the key and what was wrong.
///
/// `key` is the dotted path (`imap.port`); it is empty when the problem is not tied to one key,
/// such as an unreadable file or broken TOML syntax. When the value came from an environment
/// variable, `reason` names that variable.
#[derive(Debug)]
pub struct Error {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file the config was read from (for messages).
    pub source: PathBuf,
    pub helpdesk: Helpdesk,
    pub imap: Imap,
    pub smtp: Smtp,
    pub control: Control,
    pub threading: Threading,
    pub auth: Auth,
    pub ingest: Ingest,
    pub rota: RotaSettings,
    pub loops: Loops,
    pub acknowledge: Acknowledge,
    pub spam: Spam,
    pub reconcile: Reconcile,
    pub retention: Retention,
}

/// `[reconcile]`: the scheduled comparison of the watched folders with the store.
#[derive(Debug, Clone)]
pub struct Reconcile {
    /// How often; `None` turns scheduled reconciliation off.
    pub every: Option<Duration>,
}

/// How long closed tickets are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Closed tickets untouched for this long are purged, IMAP copies included; `None` keeps
    /// them for ever.
    pub closed_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Helpdesk {
    /// The shared address, lower-cased (`advocacy@charity.example`).
    pub address: String,
    /// Display name on outgoing mail.
    pub name: String,
    /// Store, secrets and quarantine live here.
    pub state_dir: PathBuf,
    /// Caseworkers' names the relay gate removes from every answer to a requester.
    pub hide_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded by STARTTLS.
    StartTls,
    /// No encryption; only accepted towards a loopback host.
    Plain,
}

impl Security {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Plain => "plain",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    /// Set when `auth = "password"` (the default); `None` with `auth = "oauth2"`.
    pub password: Option<SecretString>,
    /// Where `password` was read from, when it came from `password_file` (after expanding
    /// `$CREDENTIALS_DIRECTORY`); shown by `check-config` instead of the secret.
    pub password_file: Option<PathBuf>,
    /// The sign-in used instead of the password when `auth = "oauth2"`.
    pub oauth2: Option<OAuth2>,
    pub ca_file: Option<PathBuf>,
    /// Folders whose mail is requester mail.
    pub folders: Vec<String>,
    /// Folders whose mail is imported as suspected spam (e.g. `Junk`).
    pub junk_folders: Vec<String>,
    /// Where processed mail is moved; `None` leaves it in place (flagged \Seen).
    pub processed_folder: Option<String>,
    pub poll_interval: Duration,
    /// IDLE is re-issued after this long (RFC 2177 asks for less than 29 minutes).
    pub idle_timeout: Duration,
    /// Watched folders casemail files nothing from for now: their lag is measured and they are
    /// reconciled, and their mail is filed once the folder is taken off this list.
    pub paused_folders: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Where `password` was read from, when it came from `password_file`.
    pub password_file: Option<PathBuf>,
    /// The sign-in used instead of the password when `auth = "oauth2"`; `username` is then the
    /// mailbox signed in to.
    pub oauth2: Option<OAuth2>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Control {
    pub socket: PathBuf,
    pub http: SocketAddr,
}

/// How the rota is read and enforced; the shifts themselves live in the store
/// (`casemail rota import`).
#[derive(Debug, Clone)]
pub struct RotaSettings {
    /// The helpdesk's one time zone (`Europe/Berlin`): shift times, the digest, dates given to
    /// the CLI and in `#away until`, and the times the CLI shows are all in it.
    pub timezone: jiff::tz::TimeZone,
    /// An assigned ticket with no agent reply after this long is handed over.
    pub answer_within: Duration,
    /// When the daily digest goes to coordinators, in `timezone`.
    pub digest_at: jiff::civil::Time,
}

#[derive(Debug, Clone)]
pub struct Threading {
    pub one_open_ticket_per_requester: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRun {
    /// Mail already in a folder the first time it is seen is imported silently.
    Backfill,
    /// Mail already there is handled like new mail.
    Notify,
}

impl FirstRun {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            FirstRun::Backfill => "backfill",
            FirstRun::Notify => "notify",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ingest {
    /// Attachments larger than this are kept in the raw message only.
    pub max_attachment_size: u64,
    pub first_run: FirstRun,
    /// How long one message may take to process before it counts as a failed attempt.
    pub message_time_budget: Duration,
    /// Failed attempts before a message is quarantined.
    pub max_attempts: u32,
    /// How many messages one UID FETCH asks for, and at most how many share one commit.
    pub batch_size: u32,
    /// A message larger than this (its `RFC822.SIZE`) is not fetched whole: it is filed from its
    /// header fields, flagged, and stays on the server.
    pub max_message_size: u64,
    /// At most this many bytes of mail are fetched by one UID FETCH, and held in memory between
    /// fetch and filing (one message at a time may be up to `max_message_size`).
    pub fetch_bytes: u64,
}

/// Reads the config file at `path`, applies `CASEMAIL__SECTION__KEY` variables from the
/// process environment, and validates the result.
pub fn load(path: &Path) -> Result<Config, Error> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(name.to_owned(), value);
            }
            Err(_) => {
                if let Some(key) = env_var_key(name) {
                    return Err(Error {
                        file: path.to_owned(),
                        key,
                        reason: format!("environment variable {name} is not valid UTF-8"),
                    });
                }
            }
        }
    }
    load_with_env(path, &env)
}

/// Like [`load`], with `env` standing in for the process environment. Only the
/// `CASEMAIL__SECTION__KEY` variables and `CREDENTIALS_DIRECTORY` are read from it.
pub fn load_with_env(path: &Path, env: &HashMap<String, String>) -> Result<Config, Error> {
    let file_error = |reason: String| Error {
        file: path.to_owned(),
        key: String::new(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        // The unit runs casemail as its own user, so a config installed root-only is the
        // first thing a new operator meets: say how to fix it.
        let hint = if err.kind() == std::io::ErrorKind::PermissionDenied {
            " (the service runs as the casemail user: make the directory and the file readable \
             by its group, e.g. `chgrp casemail` with modes 0750 and 0640)"
        } else {
            ""
        };
        file_error(format!(
            "cannot read the config file: {}{hint}",
            describe_io(&err)
        ))
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| file_error(describe_toml_error(&text, &err)))?;
    check_file_keys(path, &table)?;
    let overrides = EnvOverrides::collect(path, env)?;
    let sources = Sources {
        file: path,
        env_keys: overrides.keys,
        env,
    };

    // `try_parsing` stays off: it would turn a password such as "007" into the integer 7 and
    // back into "7". The config crate converts strings to numbers and booleans on demand, and
    // lists are split by `StringList`, so nothing is lost by leaving it off.
    let environment = ::config::Environment::with_prefix("CASEMAIL")
        .prefix_separator("__")
        .separator("__")
        .source(Some(overrides.vars));
    let raw: RawConfig = ::config::Config::builder()
        .add_source(::config::File::from_str(&text, ::config::FileFormat::Toml))
        .add_source(environment)
        .build()
        .and_then(::config::Config::try_deserialize)
        .map_err(|err| sources.translate(err))?;
    validate(raw, &sources)
}

/// Every section and key the file may hold, with what each value should look like. The
/// pre-parse checks names against this table; the descriptions finish type errors.
const SCHEMA: &[(&str, &[(&str, &str)])] = &[
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

const ABSOLUTE_PATH: &str = "an absolute path";
const HOST: &str = "a host name or IP address";
const PORT: &str = "a port number from 1 to 65535";
const SECURITY: &str = "\"tls\", \"starttls\" or \"plain\"";
const AUTH: &str = "\"password\" or \"oauth2\"";
const FOLDERS: &str = "a list of folder names";
const DURATION: &str = "a duration such as \"500ms\", \"30s\", \"5m\", \"24h\" or \"7d\"";
const SIZE: &str = "a size such as \"500KB\", \"25MiB\" or a number of bytes";
const BATCH_SIZE: &str = "a whole number from 1 to 5000";

fn schema_section(section: &str) -> Option<&'static [(&'static str, &'static str)]> {
    SCHEMA
        .iter()
        .find(|(name, _)| *name == section)
        .map(|(_, keys)| *keys)
}

/// What a key's value should look like, for keys such as `imap.folders[0]` too.
fn expectation(dotted_key: &str) -> Option<&'static str> {
    let base = dotted_key.split('[').next().unwrap_or(dotted_key);
    let (section, key) = base.split_once('.')?;
    schema_section(section)?
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, expects)| *expects)
}

/// Rejects unknown sections and keys in the file, naming the dotted key and suggesting the
/// nearest known one, before the config crate would report them less precisely.
fn check_file_keys(file: &Path, table: &toml::Table) -> Result<(), Error> {
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

/// The `CASEMAIL__SECTION__KEY` variables of an environment, checked against [`SCHEMA`].
struct EnvOverrides {
    /// Dotted key to the variable that sets it.
    keys: BTreeMap<String, String>,
    /// The variables themselves, as the config crate's environment source wants them.
    vars: HashMap<String, String>,
}

impl EnvOverrides {
    fn collect(file: &Path, env: &HashMap<String, String>) -> Result<Self, Error> {
        let mut keys = BTreeMap::new();
        let mut vars = HashMap::new();
        // Sorted, so that with several bad variables the same one is always reported.
        let sorted: BTreeMap<&String, &String> = env.iter().collect();
        for (name, value) in sorted {
            let Some(key) = env_var_key(name) else {
                continue;
            };
            let error = |reason: String| Error {
                file: file.to_owned(),
                key: key.clone(),
                reason,
            };
            let known = key.split_once('.').and_then(|(section, field)| {
                let fields = schema_section(section)?;
                Some((fields.iter().any(|(known, _)| *known == field), fields))
            });
            match known {
                Some((true, _)) => {}
                Some((false, fields)) => {
                    let (section, field) = key.split_once('.').unwrap_or_default();
                    let hint = nearest(field, fields.iter().map(|(name, _)| *name))
                        .map(|near| {
                            let var = format!("CASEMAIL__{section}__{near}").to_uppercase();
                            format!(" (did you mean {var}?)")
                        })
                        .unwrap_or_default();
                    return Err(error(format!(
                        "unknown key set by environment variable {name}{hint}"
                    )));
                }
                None => {
                    return Err(error(format!(
                        "unknown key set by environment variable {name} (expected \
                         CASEMAIL__SECTION__KEY with a section such as IMAP)"
                    )));
                }
            }
            if let Some(previous) = keys.insert(key.clone(), name.clone()) {
                return Err(error(format!(
                    "set by both environment variables {previous} and {name}"
                )));
            }
            vars.insert(name.clone(), value.clone());
        }
        Ok(EnvOverrides { keys, vars })
    }
}

/// The dotted key a `CASEMAIL__SECTION__KEY` variable sets, computed the way the config crate
/// does it (lower-cased, `__` read as `.`); `None` for any other variable.
fn env_var_key(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    let rest = lower.strip_prefix("casemail__")?;
    Some(rest.replace("__", "."))
}

/// Where each value came from, so that messages can name the file or the variable.
struct Sources<'a> {
    file: &'a Path,
    /// Dotted key to the environment variable that set it.
    env_keys: BTreeMap<String, String>,
    env: &'a HashMap<String, String>,
}

impl Sources<'_> {
    fn error(&self, key: &str, reason: impl fmt::Display) -> Error {
        let base = key.split('[').next().unwrap_or(key);
        let reason = match self.env_keys.get(base) {
            Some(var) => format!("{reason} (set by environment variable {var})"),
            None => reason.to_string(),
        };
        Error {
            file: self.file.to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    fn translate(&self, err: ::config::ConfigError) -> Error {
        use ::config::ConfigError;
        match err {
            ConfigError::Type {
                key: Some(key),
                unexpected,
                expected,
                ..
            } => {
                let expects = expectation(&key).unwrap_or(expected);
                self.error(&key, format!("expected {expects}, found {unexpected}"))
            }
            ConfigError::At {
                error,
                key: Some(key),
                ..
            } => match *error {
                ConfigError::Type {
                    unexpected,
                    expected,
                    ..
                } => {
                    let expects = expectation(&key).unwrap_or(expected);
                    self.error(&key, format!("expected {expects}, found {unexpected}"))
                }
                other => self.error(&key, other),
            },
            ConfigError::NotFound(key) => self.error(&key, "missing required key"),
            other => Error {
                file: self.file.to_owned(),
                key: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// The file and the environment merged, before validation. Every field is optional so that
/// defaults and "missing required key" are decided in one place, [`validate`].
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    helpdesk: RawHelpdesk,
    imap: RawImap,
    smtp: RawSmtp,
    oauth2: oauth2::RawOAuth2,
    control: RawControl,
    threading: RawThreading,
    auth: auth::RawAuth,
    ingest: RawIngest,
    rota: RawRota,
    loops: loops::RawLoops,
    acknowledge: loops::RawAcknowledge,
    spam: spam::RawSpam,
    reconcile: RawReconcile,
    retention: RawRetention,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReconcile {
    every: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRetention {
    closed_after: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRota {
    timezone: Option<String>,
    answer_within: Option<String>,
    digest_at: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawHelpdesk {
    address: Option<String>,
    name: Option<String>,
    state_dir: Option<String>,
    hide_names: Option<StringList>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawImap {
    host: Option<String>,
    port: Option<i64>,
    security: Option<String>,
    auth: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<String>,
    ca_file: Option<String>,
    folders: Option<StringList>,
    junk_folders: Option<StringList>,
    processed_folder: Option<String>,
    poll_interval: Option<String>,
    idle_timeout: Option<String>,
    paused_folders: Option<StringList>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<i64>,
    security: Option<String>,
    auth: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<String>,
    ca_file: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawControl {
    socket: Option<String>,
    http: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawThreading {
    one_open_ticket_per_requester: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawIngest {
    max_attachment_size: Option<String>,
    first_run: Option<String>,
    message_time_budget: Option<String>,
    max_attempts: Option<i64>,
    batch_size: Option<i64>,
    max_message_size: Option<String>,
    fetch_bytes: Option<String>,
}

/// A list of strings: a TOML array, or a comma-separated string as an environment variable
/// can only be (`CASEMAIL__IMAP__FOLDERS=INBOX,Support`).
struct StringList(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StringList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings or a comma-separated string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StringList, E> {
                if text.trim().is_empty() {
                    return Ok(StringList(Vec::new()));
                }
                Ok(StringList(
                    text.split(',').map(|item| item.trim().to_owned()).collect(),
                ))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

const DEFAULT_NAME: &str = "Helpdesk";
const DEFAULT_STATE_DIR: &str = "/var/lib/casemail";
const DEFAULT_FOLDER: &str = "INBOX";
const DEFAULT_PROCESSED_FOLDER: &str = "Processed";
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// RFC 2177 §3: servers may log a client out after 30 minutes of IDLE, so clients re-issue it
/// at least every 29 minutes.
const IDLE_LIMIT: Duration = Duration::from_secs(29 * 60);
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

fn validate(raw: RawConfig, sources: &Sources<'_>) -> Result<Config, Error> {
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

fn validate_imap(
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

fn validate_smtp(
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

fn required(sources: &Sources<'_>, key: &str, value: Option<String>) -> Result<String, Error> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value),
        Some(_) => Err(sources.error(key, "must not be empty")),
        None => Err(sources.error(key, "missing required key")),
    }
}

/// Rejects control characters, which would let a value break a header line or a log line.
fn check_text(text: &str) -> Result<(), String> {
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

fn absolute_path(sources: &Sources<'_>, key: &str, text: &str) -> Result<PathBuf, Error> {
    let path = PathBuf::from(text);
    // A relative path would depend on the directory casemail happens to be started from.
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(sources.error(key, format!("expected {ABSOLUTE_PATH}, found {text:?}")))
    }
}

fn ca_file(
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

fn inline_password(
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
fn read_password_file(
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

fn folder_list(sources: &Sources<'_>, key: &str, names: Vec<String>) -> Result<Vec<String>, Error> {
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

fn duration(
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

fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::InvalidData => "the file is not valid UTF-8".to_owned(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        _ => err.to_string(),
    }
}

/// Turns a TOML syntax error into one line with its position, instead of the multi-line
/// report with a source excerpt that `toml` renders.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end_matches('\n').replace('\n', "; ");
    let Some(span) = err.span() else {
        return format!("invalid TOML: {message}");
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |current| current.chars().count())
        + 1;
    format!("invalid TOML at line {line}, column {column}: {message}")
}

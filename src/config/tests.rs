use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret as _;

use super::schema::SCHEMA;
use super::values::{
    edit_distance, format_duration, format_size, is_loopback_host, nearest, parse_duration,
    parse_size,
};
use super::*;

/// The smallest file that validates: only the keys without a default.
const MINIMAL: &str = r#"
[helpdesk]
address = "Help@Charity.Example"

[imap]
host = "imap.charity.example"
username = "help"
password = "imap-secret"

[smtp]
host = "smtp.charity.example"
"#;

const EXAMPLE: &str = include_str!("../../config/casemail.example.toml");

/// A temporary directory holding config files and password files; removed on drop.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("a temporary directory can be created"),
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("the temporary directory is writable");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn load_text(text: &str) -> Result<Config, Error> {
    load_text_env(text, &[])
}

fn load_text_env(text: &str, pairs: &[(&str, &str)]) -> Result<Config, Error> {
    let scratch = Scratch::new();
    let path = scratch.write("casemail.toml", text);
    load_with_env(&path, &env(pairs))
}

/// `MINIMAL` with `line` added at the top of `[section]`, creating the section if needed.
fn minimal_with(section: &str, line: &str) -> String {
    let header = format!("[{section}]\n");
    if MINIMAL.contains(&header) {
        MINIMAL.replacen(&header, &format!("{header}{line}\n"), 1)
    } else {
        format!("{MINIMAL}\n{header}{line}\n")
    }
}

fn config_error(text: &str) -> Error {
    load_text(text).expect_err("the config is invalid")
}

/// Asserts that `text` is refused for `key` with a reason containing `reason`.
fn assert_refused(text: &str, key: &str, reason: &str) {
    let err = config_error(text);
    assert_eq!(err.key, key, "wrong key in: {err}");
    assert!(
        err.reason.contains(reason),
        "{err} does not contain {reason:?}"
    );
}

fn assert_refused_with(section: &str, line: &str, key: &str, reason: &str) {
    assert_refused(&minimal_with(section, line), key, reason);
}

fn accepted_with(section: &str, line: &str) -> Config {
    load_text(&minimal_with(section, line))
        .unwrap_or_else(|err| panic!("{line:?} in [{section}] is refused: {err}"))
}

#[test]
fn minimal_config_gets_every_default() {
    let config = load_text(MINIMAL).expect("the minimal config is valid");

    assert_eq!(config.helpdesk.address, "help@charity.example");
    assert_eq!(config.helpdesk.name, "Helpdesk");
    assert_eq!(config.helpdesk.state_dir, Path::new("/var/lib/casemail"));

    assert_eq!(config.imap.host, "imap.charity.example");
    assert_eq!(config.imap.port, 993);
    assert_eq!(config.imap.security, Security::Tls);
    assert_eq!(config.imap.username, "help");
    assert_eq!(
        config.imap.password.as_ref().unwrap().expose_secret(),
        "imap-secret"
    );
    assert_eq!(config.imap.password_file, None);
    assert_eq!(config.imap.ca_file, None);
    assert_eq!(config.imap.folders, ["INBOX"]);
    assert!(config.imap.junk_folders.is_empty());
    assert_eq!(config.imap.processed_folder.as_deref(), Some("Processed"));
    assert_eq!(config.imap.poll_interval, Duration::from_secs(60));
    assert_eq!(config.imap.idle_timeout, Duration::from_secs(25 * 60));

    assert_eq!(config.smtp.host, "smtp.charity.example");
    assert_eq!(config.smtp.port, 587);
    assert_eq!(config.smtp.security, Security::StartTls);
    assert_eq!(config.smtp.username, None);
    assert!(config.smtp.password.is_none());
    assert_eq!(config.smtp.ca_file, None);

    assert_eq!(
        config.control.socket,
        Path::new("/run/casemail/casemail.sock")
    );
    let http: SocketAddr = "127.0.0.1:9187".parse().expect("a valid address");
    assert_eq!(config.control.http, http);

    assert!(config.threading.one_open_ticket_per_requester);

    assert_eq!(config.ingest.max_attachment_size, 25 * 1024 * 1024);
    assert_eq!(config.ingest.first_run, FirstRun::Backfill);
    assert_eq!(config.ingest.message_time_budget, Duration::from_secs(30));
    assert_eq!(config.ingest.max_attempts, 3);
    assert_eq!(config.ingest.batch_size, 200);
    assert_eq!(config.ingest.max_message_size, 25 * 1024 * 1024);
    assert_eq!(config.ingest.fetch_bytes, 64 * 1024 * 1024);
}

#[test]
fn config_remembers_its_file() {
    let scratch = Scratch::new();
    let path = scratch.write("casemail.toml", MINIMAL);
    let config = load_with_env(&path, &HashMap::new()).expect("the minimal config is valid");
    assert_eq!(config.source, path);
}

#[test]
fn every_key_is_set_explicitly() {
    let scratch = Scratch::new();
    let ca_file = scratch.write("ca.pem", "not checked here\n");
    let smtp_password = scratch.write("smtp-password", "smtp-secret\n");
    let text = format!(
        r#"
[helpdesk]
address = "advocacy@charity.example"
name = "Advocacy desk"
state_dir = "/srv/casemail"

[imap]
host = "127.0.0.1"
port = 1143
security = "plain"
username = "advocacy"
password = "imap-secret"
ca_file = "{ca_file}"
folders = ["INBOX", "Support"]
junk_folders = ["Junk"]
processed_folder = ""
poll_interval = "2m"
idle_timeout = "20m"

[smtp]
host = "::1"
port = 2525
security = "plain"
username = "advocacy"
password_file = "{smtp_password}"
ca_file = "{ca_file}"

[control]
socket = "/run/casemail/control.sock"
http = "[::1]:0"

[threading]
one_open_ticket_per_requester = false

[ingest]
max_attachment_size = "10MB"
first_run = "notify"
message_time_budget = "1500ms"
max_attempts = 5
batch_size = 5000
"#,
        ca_file = ca_file.display(),
        smtp_password = smtp_password.display(),
    );
    let config = load_text(&text).expect("the full config is valid");

    assert_eq!(config.helpdesk.name, "Advocacy desk");
    assert_eq!(config.helpdesk.state_dir, Path::new("/srv/casemail"));
    assert_eq!(config.imap.port, 1143);
    assert_eq!(config.imap.security, Security::Plain);
    assert_eq!(config.imap.ca_file.as_deref(), Some(ca_file.as_path()));
    assert_eq!(config.imap.folders, ["INBOX", "Support"]);
    assert_eq!(config.imap.junk_folders, ["Junk"]);
    assert_eq!(config.imap.processed_folder, None);
    assert_eq!(config.imap.poll_interval, Duration::from_secs(120));
    assert_eq!(config.imap.idle_timeout, Duration::from_secs(20 * 60));
    assert_eq!(config.smtp.port, 2525);
    assert_eq!(config.smtp.username.as_deref(), Some("advocacy"));
    assert_eq!(
        config.smtp.password.as_ref().map(|p| p.expose_secret()),
        Some("smtp-secret")
    );
    assert_eq!(
        config.smtp.password_file.as_deref(),
        Some(smtp_password.as_path())
    );
    assert_eq!(config.control.http.to_string(), "[::1]:0");
    assert!(!config.threading.one_open_ticket_per_requester);
    assert_eq!(config.ingest.max_attachment_size, 10_000_000);
    assert_eq!(config.ingest.first_run, FirstRun::Notify);
    assert_eq!(
        config.ingest.message_time_budget,
        Duration::from_millis(1500)
    );
    assert_eq!(config.ingest.max_attempts, 5);
    assert_eq!(config.ingest.batch_size, 5000);

    // What check-config prints must load back into the same configuration.
    let printed = config.redacted_toml();
    let reloaded = load_text(&printed).expect("the printed config is valid");
    assert_eq!(reloaded.redacted_toml(), printed);
}

#[test]
fn ports_default_by_security() {
    let cases = [
        ("imap", "security = \"tls\"", 993),
        ("imap", "security = \"starttls\"", 143),
        ("smtp", "security = \"tls\"", 465),
        ("smtp", "security = \"starttls\"", 587),
    ];
    for (section, line, port) in cases {
        let config = accepted_with(section, line);
        let actual = if section == "imap" {
            config.imap.port
        } else {
            config.smtp.port
        };
        assert_eq!(actual, port, "{line} in [{section}]");
    }
    let plain_imap = load_text(
        &minimal_with("imap", "security = \"plain\"").replace("imap.charity.example", "localhost"),
    )
    .expect("plain towards localhost is valid");
    assert_eq!(plain_imap.imap.port, 143);
    let plain_smtp = load_text(
        &minimal_with("smtp", "security = \"plain\"").replace("smtp.charity.example", "127.0.0.1"),
    )
    .expect("plain towards 127.0.0.1 is valid");
    assert_eq!(plain_smtp.smtp.port, 25);
}

#[test]
fn bad_ports_name_the_key() {
    assert_refused_with("imap", "port = 0", "imap.port", "from 1 to 65535, found 0");
    assert_refused_with("imap", "port = 70000", "imap.port", "found 70000");
    assert_refused_with("imap", "port = -1", "imap.port", "found -1");
    assert_refused_with(
        "imap",
        "port = \"abc\"",
        "imap.port",
        "found string \"abc\"",
    );
    assert_refused_with("smtp", "port = 65536", "smtp.port", "from 1 to 65535");
    assert_eq!(accepted_with("imap", "port = 65535").imap.port, 65535);
    assert_eq!(accepted_with("imap", "port = \"995\"").imap.port, 995);
}

#[test]
fn error_display_is_file_key_reason() {
    let scratch = Scratch::new();
    let path = scratch.write("casemail.toml", &minimal_with("imap", "prot = 993"));
    let err = load_with_env(&path, &HashMap::new()).expect_err("prot is not a key");
    assert_eq!(err.file, path);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: imap.prot: unknown key (did you mean \"port\"?)",
            path.display()
        )
    );
}

#[test]
fn unknown_keys_and_sections_are_refused() {
    assert_refused_with("imap", "prot = 993", "imap.prot", "unknown key");
    assert_refused_with("smtp", "tls = true", "smtp.tls", "unknown key");
    assert_refused_with("ingest", "speed = 1", "ingest.speed", "unknown key");
    assert_refused(
        &format!("{MINIMAL}\n[imapp]\nport = 1\n"),
        "imapp",
        "unknown section (did you mean \"imap\"?)",
    );
    assert_refused(
        &format!("verbose = true\n{MINIMAL}"),
        "verbose",
        "unknown key: keys belong in a section",
    );
    assert_refused(
        &format!("port = 993\n{MINIMAL}"),
        "port",
        "belongs in the [imap] section",
    );
    assert_refused(
        &format!("imap = 1\n{}", "[helpdesk]\naddress = \"a@b\"\n"),
        "imap",
        "expected a [imap] section",
    );
    assert_refused_with("imap", "\"odd key\" = 1", "imap.\"odd key\"", "unknown key");
    // A sub-table is a key like any other.
    assert_refused(
        &format!("{MINIMAL}\n[imap.tls]\nverify = false\n"),
        "imap.tls",
        "unknown key",
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_refused(
        &MINIMAL.replace("address = \"Help@Charity.Example\"\n", ""),
        "helpdesk.address",
        "missing required key",
    );
    assert_refused(
        &MINIMAL.replace("host = \"imap.charity.example\"\n", ""),
        "imap.host",
        "missing required key",
    );
    assert_refused(
        &MINIMAL.replace("username = \"help\"\n", ""),
        "imap.username",
        "missing required key",
    );
    assert_refused(
        &MINIMAL.replace("password = \"imap-secret\"\n", ""),
        "imap.password",
        "missing required key",
    );
    assert_refused(
        &MINIMAL.replace("host = \"smtp.charity.example\"\n", ""),
        "smtp.host",
        "missing required key",
    );
    assert_refused("", "helpdesk.address", "missing required key");
    assert_refused(
        &MINIMAL.replace("imap.charity.example", ""),
        "imap.host",
        "must not be empty",
    );
}

#[test]
fn missing_file_is_named() {
    let scratch = Scratch::new();
    let path = scratch.path("absent.toml");
    let err = load_with_env(&path, &HashMap::new()).expect_err("the file does not exist");
    assert_eq!(err.file, path);
    assert_eq!(err.key, "");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read the config file: no such file",
            path.display()
        )
    );
}

#[test]
fn toml_syntax_errors_give_the_line() {
    let err = config_error("[helpdesk]\naddress = \"a@b\"\n\n[imap\nhost = \"x\"\n");
    assert_eq!(err.key, "");
    assert!(
        err.reason.starts_with("invalid TOML at line 4, column"),
        "{err}"
    );
    assert!(!err.reason.contains('\n'), "{err:?}");

    let err = config_error(&format!("{MINIMAL}\n[imap]\nport = 1\n"));
    assert!(err.reason.contains("invalid TOML at line"), "{err}");
}

#[test]
fn type_errors_say_what_was_expected() {
    assert_refused_with(
        "threading",
        "one_open_ticket_per_requester = \"maybe\"",
        "threading.one_open_ticket_per_requester",
        "expected true or false, found string \"maybe\"",
    );
    assert_refused_with(
        "helpdesk",
        "name = [\"a\"]",
        "helpdesk.name",
        "expected a display name, found sequence",
    );
    assert_refused_with("imap", "folders = 3", "imap.folders", "comma-separated");
    assert_refused_with(
        "ingest",
        "batch_size = \"many\"",
        "ingest.batch_size",
        "from 1 to 5000",
    );
}

#[test]
fn environment_overrides_the_file() {
    let config = load_text_env(
        &minimal_with("imap", "port = 1993"),
        &[
            ("CASEMAIL__IMAP__PORT", "2993"),
            ("CASEMAIL__IMAP__SECURITY", "STARTTLS"),
            ("CASEMAIL__IMAP__PASSWORD", "007"),
            ("CASEMAIL__IMAP__FOLDERS", "INBOX, Support"),
            ("CASEMAIL__IMAP__JUNK_FOLDERS", "Junk"),
            ("CASEMAIL__IMAP__PROCESSED_FOLDER", ""),
            ("CASEMAIL__HELPDESK__NAME", "true"),
            (
                "CASEMAIL__THREADING__ONE_OPEN_TICKET_PER_REQUESTER",
                "false",
            ),
            ("CASEMAIL__INGEST__MAX_ATTACHMENT_SIZE", "1024"),
            ("CASEMAIL__INGEST__BATCH_SIZE", "50"),
            ("casemail__smtp__port", "2525"),
            // Variables without the double underscore belong to someone else.
            ("CASEMAIL_CONFIG", "/elsewhere.toml"),
            ("CASEMAIL_IMAP_PORT", "1"),
            ("PATH", "/usr/bin"),
        ],
    )
    .expect("the overrides are valid");
    assert_eq!(config.imap.port, 2993);
    assert_eq!(config.imap.security, Security::StartTls);
    // Strings stay strings: no leading zero is lost to number parsing.
    assert_eq!(
        config.imap.password.as_ref().unwrap().expose_secret(),
        "007"
    );
    assert_eq!(config.imap.folders, ["INBOX", "Support"]);
    assert_eq!(config.imap.junk_folders, ["Junk"]);
    assert_eq!(config.imap.processed_folder, None);
    assert_eq!(config.helpdesk.name, "true");
    assert!(!config.threading.one_open_ticket_per_requester);
    assert_eq!(config.ingest.max_attachment_size, 1024);
    assert_eq!(config.ingest.batch_size, 50);
    assert_eq!(config.smtp.port, 2525);
}

#[test]
fn environment_can_supply_required_keys() {
    let config = load_text_env(
        "",
        &[
            ("CASEMAIL__HELPDESK__ADDRESS", "help@charity.example"),
            ("CASEMAIL__IMAP__HOST", "imap.charity.example"),
            ("CASEMAIL__IMAP__USERNAME", "help"),
            ("CASEMAIL__IMAP__PASSWORD", "secret"),
            ("CASEMAIL__SMTP__HOST", "smtp.charity.example"),
        ],
    )
    .expect("the environment is a complete config");
    assert_eq!(config.imap.host, "imap.charity.example");
}

#[test]
fn environment_errors_name_the_variable() {
    let err =
        load_text_env(MINIMAL, &[("CASEMAIL__IMAP__PORT", "abc")]).expect_err("abc is not a port");
    assert_eq!(err.key, "imap.port");
    assert!(err.reason.contains("found string \"abc\""), "{err}");
    assert!(
        err.reason
            .contains("set by environment variable CASEMAIL__IMAP__PORT"),
        "{err}"
    );

    let err =
        load_text_env(MINIMAL, &[("CASEMAIL__IMAP__PORT", "0")]).expect_err("0 is not a port");
    assert!(err.reason.contains("CASEMAIL__IMAP__PORT"), "{err}");

    let err = load_text_env(MINIMAL, &[("CASEMAIL__IMAP__SECURITY", "plain")])
        .expect_err("plain towards a remote host");
    assert_eq!(err.key, "imap.security");
    assert!(err.reason.contains("CASEMAIL__IMAP__SECURITY"), "{err}");

    let err =
        load_text_env(MINIMAL, &[("CASEMAIL__IMAP__PROT", "993")]).expect_err("prot is not a key");
    assert_eq!(err.key, "imap.prot");
    assert_eq!(
        err.reason,
        "unknown key set by environment variable CASEMAIL__IMAP__PROT (did you mean \
         CASEMAIL__IMAP__PORT?)"
    );

    let err = load_text_env(MINIMAL, &[("CASEMAIL__PORT", "993")]).expect_err("no section");
    assert_eq!(err.key, "port");
    assert!(err.reason.contains("CASEMAIL__PORT"), "{err}");

    let err =
        load_text_env(MINIMAL, &[("CASEMAIL__NOPE__PORT", "993")]).expect_err("unknown section");
    assert_eq!(err.key, "nope.port");

    let err = load_text_env(
        MINIMAL,
        &[("CASEMAIL__IMAP__PORT", "1"), ("casemail__imap__port", "2")],
    )
    .expect_err("two variables for one key");
    assert_eq!(err.key, "imap.port");
    assert!(err.reason.contains("set by both"), "{err}");
}

#[test]
fn secrets_never_reach_the_output() {
    let config = load_text(&minimal_with(
        "smtp",
        "username = \"relay\"\npassword = \"smtp-secret\"",
    ))
    .expect("valid");
    let toml_text = config.redacted_toml();
    let json_text = config.redacted_json().to_string();
    let debug_text = format!("{config:?}");
    for output in [&toml_text, &json_text, &debug_text] {
        assert!(!output.contains("imap-secret"), "{output}");
        assert!(!output.contains("smtp-secret"), "{output}");
    }
    assert!(
        toml_text.contains("password = \"<redacted>\""),
        "{toml_text}"
    );
    let json = config.redacted_json();
    assert_eq!(
        json.pointer("/imap/password").expect("the key is printed"),
        "<redacted>"
    );
    assert_eq!(
        json.pointer("/smtp/password").expect("the key is printed"),
        "<redacted>"
    );
    assert_eq!(
        json.pointer("/smtp/username").expect("the key is printed"),
        "relay"
    );
    assert_eq!(json.pointer("/imap/port").expect("the key is printed"), 993);
}

#[test]
fn toml_and_json_show_the_same_values() {
    let config = load_text(EXAMPLE).expect("the example is valid");
    let from_toml: toml::Table = config.redacted_toml().parse().expect("valid TOML");
    let from_toml = serde_json::to_value(from_toml).expect("TOML values convert to JSON");
    assert_eq!(from_toml, config.redacted_json());
}

#[test]
fn password_file_is_read_and_trimmed() {
    let scratch = Scratch::new();
    for (contents, expected) in [
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        ("  spaced  \n\n", "  spaced  "),
    ] {
        let path = scratch.write("imap-password", contents);
        let text = MINIMAL.replace(
            "password = \"imap-secret\"",
            &format!("password_file = \"{}\"", path.display()),
        );
        let config = load_text(&text).expect("the password file is readable");
        assert_eq!(
            config.imap.password.as_ref().unwrap().expose_secret(),
            expected
        );
        assert_eq!(config.imap.password_file.as_deref(), Some(path.as_path()));
        let printed = config.redacted_toml();
        assert!(
            printed.contains(&format!("password_file = \"{}\"", path.display())),
            "{printed}"
        );
        assert!(!printed.contains(expected), "{printed}");
        assert!(!printed.contains("<redacted>"), "{printed}");
    }
}

#[test]
fn password_file_problems_name_the_key_and_path() {
    let scratch = Scratch::new();
    let absent = scratch.path("absent");
    let text = MINIMAL.replace(
        "password = \"imap-secret\"",
        &format!("password_file = \"{}\"", absent.display()),
    );
    let err = config_error(&text);
    assert_eq!(err.key, "imap.password_file");
    assert_eq!(
        err.reason,
        format!("cannot read {}: no such file", absent.display())
    );

    let empty = scratch.write("empty", "\n");
    let text = MINIMAL.replace(
        "password = \"imap-secret\"",
        &format!("password_file = \"{}\"", empty.display()),
    );
    assert_refused(&text, "imap.password_file", "is empty");

    assert_refused(
        &MINIMAL.replace(
            "password = \"imap-secret\"",
            "password_file = \"secrets/imap\"",
        ),
        "imap.password_file",
        "expected an absolute path",
    );
    assert_refused_with(
        "imap",
        "password_file = \"/etc/casemail/imap\"",
        "imap.password",
        "set only one of imap.password and imap.password_file",
    );
    assert_refused(
        &MINIMAL.replace("\"imap-secret\"", "\"\""),
        "imap.password",
        "must not be empty",
    );
}

#[test]
fn password_file_in_the_credentials_directory() {
    let scratch = Scratch::new();
    scratch.write("imap", "from-systemd\n");
    let directory = scratch.dir.path().display().to_string();
    for spelling in [
        "$CREDENTIALS_DIRECTORY/imap",
        "${CREDENTIALS_DIRECTORY}/imap",
    ] {
        let text = MINIMAL.replace(
            "password = \"imap-secret\"",
            &format!("password_file = \"{spelling}\""),
        );
        let config = load_text_env(&text, &[("CREDENTIALS_DIRECTORY", &directory)])
            .expect("the credential is readable");
        assert_eq!(
            config.imap.password.as_ref().unwrap().expose_secret(),
            "from-systemd"
        );
        assert_eq!(config.imap.password_file, Some(scratch.path("imap")));

        let err = load_text(&text).expect_err("CREDENTIALS_DIRECTORY is not set");
        assert_eq!(err.key, "imap.password_file");
        assert!(err.reason.contains("LoadCredential="), "{err}");
    }
}

#[test]
fn smtp_login_needs_both_halves() {
    assert_refused_with(
        "smtp",
        "password = \"x\"",
        "smtp.username",
        "missing required key",
    );
    assert_refused_with(
        "smtp",
        "username = \"relay\"",
        "smtp.password",
        "missing required key",
    );
    assert_refused_with(
        "smtp",
        "username = \"relay\"\npassword = \"x\"\npassword_file = \"/x\"",
        "smtp.password",
        "set only one",
    );
}

#[test]
fn ca_file_must_exist() {
    let scratch = Scratch::new();
    let absent = scratch.path("absent.pem");
    let err = config_error(&minimal_with(
        "imap",
        &format!("ca_file = \"{}\"", absent.display()),
    ));
    assert_eq!(err.key, "imap.ca_file");
    assert!(err.reason.contains(&absent.display().to_string()), "{err}");
    let directory = scratch.dir.path().display().to_string();
    assert_refused_with(
        "smtp",
        &format!("ca_file = \"{directory}\""),
        "smtp.ca_file",
        "is not a file",
    );
}

#[test]
fn plain_is_refused_off_loopback() {
    let err = config_error(&minimal_with("imap", "security = \"plain\""));
    assert_eq!(err.key, "imap.security");
    assert!(
        err.reason.contains("only allowed towards a loopback host"),
        "{err}"
    );
    assert!(err.reason.contains("\"imap.charity.example\""), "{err}");

    assert_refused_with("smtp", "security = \"plain\"", "smtp.security", "loopback");
    for host in ["localhost", "LOCALHOST.", "127.0.0.1", "127.1.2.3", "::1"] {
        let text =
            minimal_with("imap", "security = \"plain\"").replace("imap.charity.example", host);
        load_text(&text).unwrap_or_else(|err| panic!("plain towards {host} is refused: {err}"));
    }
}

#[test]
fn loopback_detection() {
    for host in [
        "localhost",
        "Localhost",
        "localhost.",
        "127.0.0.1",
        "127.255.255.254",
        "::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(is_loopback_host(host), "{host} is loopback");
    }
    for host in [
        "imap.example.org",
        "localhost.example.org",
        "mylocalhost",
        "128.0.0.1",
        "10.0.0.1",
        "0.0.0.0",
        "::",
        "::2",
        "[::1]",
        "",
    ] {
        assert!(!is_loopback_host(host), "{host} is not loopback");
    }
}

#[test]
fn host_with_port_is_refused() {
    assert_refused(
        &MINIMAL.replace("imap.charity.example", "imap.charity.example:993"),
        "imap.host",
        "set the port with imap.port",
    );
    assert_refused(
        &MINIMAL.replace("smtp.charity.example", "smtp://smtp.charity.example"),
        "smtp.host",
        "expected a host name",
    );
    assert_eq!(
        load_text(&MINIMAL.replace("imap.charity.example", "2001:db8::1"))
            .expect("an IPv6 address is a host")
            .imap
            .host,
        "2001:db8::1"
    );
}

#[test]
fn helpdesk_values_are_checked() {
    for address in [
        "help",
        "@charity.example",
        "help@",
        "a@b@c",
        "he lp@x",
        "help@exa mple",
        "help@.example",
        "<help@x>",
    ] {
        let text = MINIMAL.replace("Help@Charity.Example", address);
        assert_refused(&text, "helpdesk.address", "expected an email address");
    }
    let config = load_text(&MINIMAL.replace("Help@Charity.Example", "Help.Desk+x@localhost"))
        .expect("a single-label domain is allowed");
    assert_eq!(config.helpdesk.address, "help.desk+x@localhost");

    assert_refused_with(
        "helpdesk",
        "name = \"Help\\r\\nBcc: x@y\"",
        "helpdesk.name",
        "control characters",
    );
    assert_refused_with(
        "helpdesk",
        "state_dir = \"var/lib/casemail\"",
        "helpdesk.state_dir",
        "expected an absolute path",
    );
}

#[test]
fn folders_are_checked() {
    assert_refused_with(
        "imap",
        "folders = []",
        "imap.folders",
        "at least one folder",
    );
    assert_refused_with(
        "imap",
        "folders = [\"\"]",
        "imap.folders",
        "must not be empty",
    );
    assert_refused_with(
        "imap",
        "folders = [\"INBOX\", \"INBOX\"]",
        "imap.folders",
        "listed twice",
    );
    assert_refused_with(
        "imap",
        "junk_folders = [\"INBOX\"]",
        "imap.junk_folders",
        "also in imap.folders",
    );
    assert_refused_with(
        "imap",
        "processed_folder = \"INBOX\"",
        "imap.processed_folder",
        "would be read again",
    );
    assert_refused_with(
        "imap",
        "junk_folders = [\"Junk\"]\nprocessed_folder = \"Junk\"",
        "imap.processed_folder",
        "would be read again",
    );
    let config = accepted_with("imap", "processed_folder = \"Done\"");
    assert_eq!(config.imap.processed_folder.as_deref(), Some("Done"));
}

#[test]
fn intervals_are_checked() {
    assert_refused_with(
        "imap",
        "idle_timeout = \"29m\"",
        "imap.idle_timeout",
        "less than 29m",
    );
    assert_refused_with(
        "imap",
        "idle_timeout = \"1h\"",
        "imap.idle_timeout",
        "RFC 2177",
    );
    assert_refused_with(
        "imap",
        "idle_timeout = \"0s\"",
        "imap.idle_timeout",
        "at least 1s",
    );
    assert_eq!(
        accepted_with("imap", "idle_timeout = \"28m59s\"")
            .imap
            .idle_timeout,
        Duration::from_secs(29 * 60 - 1)
    );
    assert_refused_with(
        "imap",
        "poll_interval = \"500ms\"",
        "imap.poll_interval",
        "at least 1s",
    );
    assert_refused_with(
        "imap",
        "poll_interval = 60",
        "imap.poll_interval",
        "has no unit",
    );
    assert_refused_with(
        "ingest",
        "message_time_budget = \"0ms\"",
        "ingest.message_time_budget",
        "must not be zero",
    );
}

#[test]
fn control_values_are_checked() {
    assert_refused_with(
        "control",
        "http = \"0.0.0.0:9187\"",
        "control.http",
        "must be a loopback address",
    );
    assert_refused_with(
        "control",
        "http = \"192.168.1.5:9187\"",
        "control.http",
        "must be a loopback address",
    );
    assert_refused_with(
        "control",
        "http = \"localhost:9187\"",
        "control.http",
        "expected an address and port",
    );
    assert_refused_with(
        "control",
        "http = \"127.0.0.1\"",
        "control.http",
        "expected an address and port",
    );
    assert_eq!(
        accepted_with("control", "http = \"127.0.0.1:0\"")
            .control
            .http
            .port(),
        0
    );
    assert_refused_with(
        "control",
        "socket = \"casemail.sock\"",
        "control.socket",
        "expected an absolute path",
    );
    let long = format!("socket = \"/{}\"", "s".repeat(107));
    assert_refused_with("control", &long, "control.socket", "at most 107 bytes");
}

#[test]
fn ingest_values_are_checked() {
    assert_refused_with(
        "ingest",
        "max_message_size = \"0\"",
        "ingest.max_message_size",
        "must not be zero",
    );
    assert_refused_with(
        "ingest",
        "fetch_bytes = \"lots\"",
        "ingest.fetch_bytes",
        "expected a size",
    );
    let config = accepted_with(
        "ingest",
        "max_message_size = \"1MiB\"\nfetch_bytes = \"2MB\"",
    );
    assert_eq!(config.ingest.max_message_size, 1024 * 1024);
    assert_eq!(config.ingest.fetch_bytes, 2_000_000);
    assert_refused_with(
        "ingest",
        "batch_size = 0",
        "ingest.batch_size",
        "from 1 to 5000",
    );
    assert_refused_with(
        "ingest",
        "batch_size = 5001",
        "ingest.batch_size",
        "found 5001",
    );
    assert_refused_with(
        "ingest",
        "max_attempts = 0",
        "ingest.max_attempts",
        "at least 1",
    );
    assert_refused_with(
        "ingest",
        "first_run = \"later\"",
        "ingest.first_run",
        "expected \"backfill\" or \"notify\"",
    );
    assert_refused_with(
        "ingest",
        "max_attachment_size = \"10 parsecs\"",
        "ingest.max_attachment_size",
        "expected a size",
    );
    assert_eq!(
        accepted_with("ingest", "max_attachment_size = 4096")
            .ingest
            .max_attachment_size,
        4096
    );
    assert_refused_with(
        "imap",
        "security = \"ssl\"",
        "imap.security",
        "expected \"tls\", \"starttls\" or \"plain\", found \"ssl\"",
    );
}

#[test]
fn durations_parse() {
    let cases = [
        ("500ms", Duration::from_millis(500)),
        ("2s", Duration::from_secs(2)),
        ("5m", Duration::from_secs(300)),
        ("24h", Duration::from_secs(86_400)),
        ("7d", Duration::from_secs(7 * 86_400)),
        ("1h30m", Duration::from_secs(5400)),
        (" 1m 30s ", Duration::from_secs(90)),
        ("0s", Duration::ZERO),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
    }
    for text in [
        "",
        "  ",
        "60",
        "5 m",
        "5min",
        "1.5s",
        "-1s",
        "s",
        "1h30",
        "99999999999999999999s",
        "213503982334602d",
    ] {
        assert!(parse_duration(text).is_err(), "{text:?} should be refused");
    }
}

#[test]
fn durations_format_back() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(1500), "1500ms"),
        (Duration::from_secs(30), "30s"),
        (Duration::from_secs(60), "1m"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(25 * 60), "25m"),
        (Duration::from_secs(3600), "1h"),
        (Duration::from_secs(86_400 * 7), "7d"),
    ];
    for (duration, text) in cases {
        assert_eq!(format_duration(duration), text);
        assert_eq!(parse_duration(text), Ok(duration));
    }
}

#[test]
fn sizes_parse_and_format() {
    let cases = [
        ("0", 0),
        ("1234", 1234),
        ("10B", 10),
        ("500KB", 500_000),
        ("500kb", 500_000),
        ("10MiB", 10 * 1024 * 1024),
        ("25 MiB", 25 * 1024 * 1024),
        ("2GB", 2_000_000_000),
        ("1GiB", 1 << 30),
        ("4KiB", 4096),
    ];
    for (text, bytes) in cases {
        assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
        assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
    }
    assert_eq!(format_size(25 * 1024 * 1024), "25MiB");
    assert_eq!(format_size(500_000), "500KB");
    assert_eq!(format_size(1234), "1234");
    for text in [
        "",
        "MiB",
        "1.5MiB",
        "-1",
        "10 TB",
        "10 bytes",
        "99999999999GiB",
    ] {
        assert!(parse_size(text).is_err(), "{text:?} should be refused");
    }
}

#[test]
fn suggestions_are_close_names() {
    assert_eq!(edit_distance("port", "port"), 0);
    assert_eq!(edit_distance("prot", "port"), 2);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("folder", "folders"), 1);
    assert_eq!(nearest("hots", ["host", "port"].into_iter()), Some("host"));
    assert_eq!(nearest("verbosity", ["host", "port"].into_iter()), None);
}

/// The example file, read line by line: `[section]` headers, and `key = value` lines that are
/// either set or commented out with a single `# `.
fn example_keys() -> Vec<(String, String, String, bool)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in EXAMPLE.lines() {
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = name.to_owned();
            continue;
        }
        let (body, commented) = match line.strip_prefix("# ") {
            Some(body) => (body, true),
            None => (line, false),
        };
        let Some((key, value)) = body.split_once(" = ") else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
            keys.push((section.clone(), key.to_owned(), value.to_owned(), commented));
        }
    }
    keys
}

#[test]
fn example_is_valid_and_documents_every_key() {
    let config = load_text(EXAMPLE).expect("the example config is valid");
    assert_eq!(
        config.imap.password.as_ref().unwrap().expose_secret(),
        "change-me"
    );

    let documented: Vec<(String, String)> = example_keys()
        .into_iter()
        .map(|(section, key, _, _)| (section, key))
        .collect();
    for (section, keys) in SCHEMA {
        for (key, _) in *keys {
            assert!(
                documented.iter().any(|(s, k)| s == section && k == key),
                "{section}.{key} is missing from the example"
            );
        }
    }
    for (section, key) in &documented {
        assert!(
            expectation(&format!("{section}.{key}")).is_some(),
            "the example documents {section}.{key}, which is not a key"
        );
    }
}

#[test]
fn example_shows_the_true_defaults() {
    // Lines that show an example value rather than the default.
    let examples_only = [
        ("imap", "password_file"),
        ("imap", "ca_file"),
        ("smtp", "username"),
        ("smtp", "password_file"),
        ("smtp", "password"),
        ("smtp", "ca_file"),
        // [oauth2] applies only with auth = "oauth2": each line is an example.
        ("oauth2", "provider"),
        ("oauth2", "tenant"),
        ("oauth2", "flow"),
        ("oauth2", "client_id"),
        ("oauth2", "client_secret_file"),
        ("oauth2", "client_secret"),
        ("oauth2", "issuer"),
        ("oauth2", "token_endpoint"),
        ("oauth2", "device_authorization_endpoint"),
        ("oauth2", "authorization_endpoint"),
        ("oauth2", "scopes"),
        ("oauth2", "ca_file"),
    ];
    let baseline = load_text(EXAMPLE)
        .expect("the example config is valid")
        .redacted_toml();
    let mut checked = 0;
    for (section, key, value, commented) in example_keys() {
        if !commented || examples_only.contains(&(section.as_str(), key.as_str())) {
            continue;
        }
        let line = format!("# {key} = {value}");
        let uncommented = EXAMPLE.replacen(&line, &format!("{key} = {value}"), 1);
        let config = load_text(&uncommented)
            .unwrap_or_else(|err| panic!("uncommenting {section}.{key} breaks the example: {err}"));
        assert_eq!(
            config.redacted_toml(),
            baseline,
            "{section}.{key} = {value} is not the default"
        );
        checked += 1;
    }
    // Every key but the five required ones and the examples above shows its default.
    let keys: usize = SCHEMA.iter().map(|(_, keys)| keys.len()).sum();
    assert_eq!(checked, keys - 5 - examples_only.len());
}

#[test]
fn reconciliation_runs_hourly_by_default_and_zero_turns_it_off() {
    let config = load_text(MINIMAL).expect("the minimal config is valid");
    assert_eq!(config.reconcile.every, Some(Duration::from_secs(60 * 60)));
    assert_eq!(
        accepted_with("reconcile", "every = \"15m\"")
            .reconcile
            .every,
        Some(Duration::from_secs(15 * 60))
    );
    assert_eq!(
        accepted_with("reconcile", "every = \"0\"").reconcile.every,
        None
    );
    assert_eq!(
        accepted_with("reconcile", "every = \"0s\"").reconcile.every,
        None
    );
    assert_refused_with(
        "reconcile",
        "every = \"hourly\"",
        "reconcile.every",
        "\"0\" turns it off",
    );
}

#[test]
fn paused_folders_must_be_watched_folders() {
    assert!(
        load_text(MINIMAL)
            .expect("valid")
            .imap
            .paused_folders
            .is_empty()
    );
    let config = accepted_with("imap", "paused_folders = [\"INBOX\"]");
    assert_eq!(config.imap.paused_folders, ["INBOX"]);
    assert_refused_with(
        "imap",
        "paused_folders = [\"Archive\"]",
        "imap.paused_folders",
        "not in imap.folders or imap.junk_folders",
    );
}

#[test]
fn retention_is_off_by_default_and_takes_a_duration() {
    assert_eq!(accepted_with("retention", "").retention.closed_after, None);
    for off in [
        "closed_after = \"\"",
        "closed_after = \"0\"",
        "closed_after = \"0s\"",
    ] {
        assert_eq!(
            accepted_with("retention", off).retention.closed_after,
            None,
            "{off}"
        );
    }
    assert_eq!(
        accepted_with("retention", "closed_after = \"365d\"")
            .retention
            .closed_after,
        Some(Duration::from_secs(365 * 86_400))
    );
    assert_refused_with(
        "retention",
        "closed_after = \"a year\"",
        "retention.closed_after",
        "expected a duration",
    );
}

#[test]
fn auth_trusts_no_server_by_default_and_checks_its_values() {
    let defaults = accepted_with("auth", "").auth;
    assert!(defaults.trusted_authserv_ids.is_empty());
    assert_eq!(
        defaults.without_results,
        crate::config::WithoutResults::Unverified
    );
    assert_eq!(defaults.token_expiry, Duration::from_secs(90 * 86_400));
    assert_eq!(defaults.rotation_grace, Duration::from_secs(30 * 86_400));
    let strict = accepted_with(
        "auth",
        "trusted_authserv_ids = [\"MX.Charity.example\", \"mx.charity.example\"]\nwithout_results = \"fail\"",
    )
    .auth;
    assert_eq!(strict.trusted_authserv_ids, ["mx.charity.example"]);
    assert_eq!(strict.without_results, crate::config::WithoutResults::Fail);
    assert_refused_with(
        "auth",
        "without_results = \"fail\"",
        "auth.without_results",
        "needs auth.trusted_authserv_ids",
    );
    assert_refused_with(
        "auth",
        "trusted_authserv_ids = [\"mx.charity.example; dmarc=pass\"]",
        "auth.trusted_authserv_ids[0]",
        "expected an authserv-id",
    );
    assert_refused_with(
        "auth",
        "token_expiry = \"soon\"",
        "auth.token_expiry",
        "expected a duration",
    );
}

#[test]
fn names_to_hide_from_requesters_are_a_list_of_visible_text() {
    let config = load_text(&minimal_with(
        "helpdesk",
        "hide_names = [\"Amina Yusuf\", \"Jonas\"]",
    ))
    .expect("config");
    assert_eq!(config.helpdesk.hide_names, ["Amina Yusuf", "Jonas"]);
    assert!(
        load_text(MINIMAL)
            .expect("config")
            .helpdesk
            .hide_names
            .is_empty()
    );
    let error = load_text(&minimal_with("helpdesk", "hide_names = [\"Amina\\u0007\"]"))
        .expect_err("a control character is refused");
    assert_eq!(error.key, "helpdesk.hide_names");
}

/// `MINIMAL` signing in to IMAP with OAuth 2.0, plus `oauth2` lines.
fn with_oauth2(oauth2: &str) -> String {
    MINIMAL.replace("password = \"imap-secret\"", "auth = \"oauth2\"") + "\n[oauth2]\n" + oauth2
}

#[test]
fn microsoft_preset_fills_in_servers_endpoints_and_scopes() {
    let text = with_oauth2(
        "provider = \"microsoft\"\ntenant = \"charity.onmicrosoft.com\"\nclient_id = \"app\"\n",
    )
    .replace("host = \"imap.charity.example\"\n", "");
    let config = load_text(&text).expect("valid");
    assert_eq!(config.imap.host, "outlook.office365.com");
    assert!(config.imap.password.is_none());
    let oauth2 = config
        .imap
        .oauth2
        .as_ref()
        .expect("imap signs in with oauth2");
    assert_eq!(oauth2.flow, Flow::Device);
    assert_eq!(
        oauth2.token_endpoint,
        "https://login.microsoftonline.com/charity.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        oauth2.device_authorization_endpoint.as_deref(),
        Some("https://login.microsoftonline.com/charity.onmicrosoft.com/oauth2/v2.0/devicecode")
    );
    assert!(oauth2.scopes.contains(&"offline_access".to_owned()));
    assert_eq!(
        oauth2.token_file,
        Path::new("/var/lib/casemail/oauth2-token.json")
    );
    // SMTP still logs in as before.
    assert!(config.smtp.oauth2.is_none());
    // check-config shows the sign-in, and its output loads again.
    let shown = config.redacted_toml();
    assert!(shown.contains("auth = \"oauth2\""), "{shown}");
    assert!(shown.contains("[oauth2]"), "{shown}");
    let again = load_text(&shown).expect("the printed config loads");
    assert_eq!(again.redacted_toml(), shown);
}

#[test]
fn client_credentials_need_a_secret_and_get_the_default_scope() {
    assert_refused(
        &with_oauth2(
            "provider = \"microsoft\"\nclient_id = \"app\"\nflow = \"client_credentials\"\n",
        ),
        "oauth2.client_secret_file",
        "client_credentials",
    );
    let config = load_text(&with_oauth2(
        "provider = \"microsoft\"\nclient_id = \"app\"\nflow = \"client_credentials\"\nclient_secret = \"s\"\n",
    ))
    .expect("valid");
    let oauth2 = config.imap.oauth2.as_ref().expect("oauth2");
    assert_eq!(oauth2.scopes, ["https://outlook.office365.com/.default"]);
    assert!(!config.redacted_toml().contains("\"s\""));
}

#[test]
fn oauth2_mistakes_are_named() {
    assert_refused(&with_oauth2(""), "oauth2.provider", "missing required key");
    assert_refused(
        &with_oauth2("provider = \"yahoo\"\nclient_id = \"a\"\n"),
        "oauth2.provider",
        "\"microsoft\", \"google\" or \"oidc\"",
    );
    assert_refused(
        &with_oauth2("provider = \"google\"\nclient_id = \"a\"\n"),
        "oauth2.client_secret_file",
        "Google",
    );
    assert_refused(
        &with_oauth2(
            "provider = \"google\"\nclient_id = \"a\"\nclient_secret = \"s\"\nflow = \"device\"\n",
        ),
        "oauth2.flow",
        "authorization_code",
    );
    assert_refused(
        &with_oauth2("provider = \"oidc\"\nclient_id = \"a\"\n"),
        "oauth2.token_endpoint",
        "missing required key",
    );
    assert_refused(
        &with_oauth2(
            "provider = \"oidc\"\nclient_id = \"a\"\nissuer = \"http://login.example/oidc\"\n",
        ),
        "oauth2.issuer",
        "use https",
    );
    assert_refused(
        &with_oauth2(
            "provider = \"oidc\"\nclient_id = \"a\"\nissuer = \"http://127.0.0.1:4593/api/oidc\"\n",
        ),
        "oauth2.scopes",
        "no default scopes",
    );
    assert_refused(
        &with_oauth2("provider = \"google\"\ntenant = \"x\"\nclient_id = \"a\"\n"),
        "oauth2.tenant",
        "only the \"microsoft\" provider",
    );
    // A password alongside oauth2, or an [oauth2] nothing uses.
    assert_refused(
        &with_oauth2("provider = \"microsoft\"\nclient_id = \"a\"\n")
            .replace("auth = \"oauth2\"", "auth = \"oauth2\"\npassword = \"x\""),
        "imap.password",
        "remove imap.password",
    );
    assert_refused(
        &format!("{MINIMAL}\n[oauth2]\nprovider = \"microsoft\"\n"),
        "oauth2",
        "neither imap.auth nor smtp.auth",
    );
    assert_refused_with(
        "imap",
        "auth = \"kerberos\"",
        "imap.auth",
        "\"password\" or \"oauth2\"",
    );
}

#[test]
fn oidc_endpoints_derive_from_the_issuer_and_smtp_can_sign_in_too() {
    let text = with_oauth2(
        "provider = \"oidc\"\nclient_id = \"a\"\nissuer = \"http://127.0.0.1:4593/api/oidc\"\nscopes = [\"mail\"]\n",
    )
    .replace("[smtp]\n", "[smtp]\nauth = \"oauth2\"\nusername = \"help@charity.example\"\n");
    let config = load_text(&text).expect("valid");
    let oauth2 = config
        .smtp
        .oauth2
        .as_ref()
        .expect("smtp signs in with oauth2");
    assert_eq!(
        oauth2.token_endpoint,
        "http://127.0.0.1:4593/api/oidc/token"
    );
    assert_eq!(
        oauth2.device_authorization_endpoint.as_deref(),
        Some("http://127.0.0.1:4593/api/oidc/device_authorization")
    );
    assert_eq!(
        config.smtp.username.as_deref(),
        Some("help@charity.example")
    );
    assert_refused(
        &text.replace("username = \"help@charity.example\"\n", ""),
        "smtp.username",
        "name the mailbox",
    );
}

#[test]
fn the_time_zone_and_the_digest_time_are_typed_once() {
    let defaults = load_text(MINIMAL).expect("the minimal config is valid");
    assert_eq!(defaults.rota.timezone, jiff::tz::TimeZone::UTC);
    assert_eq!(defaults.rota.digest_at, jiff::civil::time(8, 0, 0, 0));
    assert_eq!(
        defaults.rota.answer_within,
        Duration::from_secs(24 * 60 * 60)
    );

    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("a bundled zone");
    let config = accepted_with(
        "rota",
        "timezone = \"Europe/Berlin\"\ndigest_at = \"18:30\"",
    );
    assert_eq!(config.rota.timezone, berlin);
    assert_eq!(config.rota.digest_at, jiff::civil::time(18, 30, 0, 0));
    let printed = config.redacted_toml();
    assert!(
        printed.contains("timezone = \"Europe/Berlin\""),
        "{printed}"
    );
    assert!(printed.contains("digest_at = \"18:30\""), "{printed}");
    let reloaded = load_text(&printed).expect("the printed config is valid");
    assert_eq!(reloaded.rota.timezone, berlin);

    let from_env = load_text_env(MINIMAL, &[("CASEMAIL__ROTA__TIMEZONE", "America/New_York")])
        .expect("the zone is valid");
    assert_eq!(from_env.rota.timezone.iana_name(), Some("America/New_York"));

    assert_refused_with(
        "rota",
        "timezone = \"Europe/Atlantis\"",
        "rota.timezone",
        "unknown time zone \"Europe/Atlantis\"",
    );
    for bad in ["8:00", "+8:00", "24:00", "08:60", "08-00", "08:00:00"] {
        assert_refused_with(
            "rota",
            &format!("digest_at = {bad:?}"),
            "rota.digest_at",
            &format!("expected a time of day as HH:MM, found {bad:?}"),
        );
    }
    assert_eq!(
        accepted_with("rota", "digest_at = \"23:59\"")
            .rota
            .digest_at,
        jiff::civil::time(23, 59, 0, 0)
    );
}

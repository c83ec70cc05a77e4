//! `casemail check-config` and the command line around it, run as the real binary: what an
//! operator and the systemd unit's `ExecStartPre` see.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// EX_CONFIG from sysexits.h: the unit's `RestartPreventExitStatus=78` relies on it.
const EXIT_CONFIG: i32 = 78;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/casemail.example.toml");

const VALID: &str = r#"
[helpdesk]
address = "help@charity.example"

[imap]
host = "imap.charity.example"
username = "help"
password = "imap-secret"

[smtp]
host = "smtp.charity.example"
"#;

/// The binary with an environment free of the developer's own `CASEMAIL*` variables.
fn casemail() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_casemail"));
    for (name, _) in std::env::vars_os() {
        if name
            .to_string_lossy()
            .to_uppercase()
            .starts_with("CASEMAIL")
        {
            command.env_remove(name);
        }
    }
    command
}

fn check_config(config: &Path, envs: &[(&str, &str)]) -> Output {
    casemail()
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .envs(envs.iter().copied())
        .output()
        .expect("the casemail binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config file in its own temporary directory, removed when this is dropped.
struct ConfigFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(contents: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory can be created");
        let path = dir.path().join("casemail.toml");
        std::fs::write(&path, contents).expect("the temporary directory is writable");
        ConfigFile { dir, path }
    }
}

/// Runs check-config on `contents` and asserts it is refused with exit code 78 and one line
/// on stderr naming the file, the key and the reason.
fn assert_refused(contents: &str, envs: &[(&str, &str)], key: &str, reason: &str) -> String {
    let config = ConfigFile::new(contents);
    let output = check_config(&config.path, envs);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_CONFIG), "stderr: {stderr}");
    assert!(output.stdout.is_empty(), "stdout: {}", text(&output.stdout));
    let expected_start = format!("casemail: {}: {key}: ", config.path.display());
    assert!(
        stderr.starts_with(&expected_start),
        "{stderr:?} does not start with {expected_start:?}"
    );
    assert!(stderr.contains(reason), "{stderr:?} lacks {reason:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    stderr
}

#[test]
fn check_config_accepts_the_example() {
    let output = check_config(Path::new(EXAMPLE), &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(stdout.contains("[imap]"), "{stdout}");
    assert!(stdout.contains("password = \"<redacted>\""), "{stdout}");
    assert!(!stdout.contains("change-me"), "{stdout}");
}

#[test]
fn check_config_prints_json() {
    let config = ConfigFile::new(VALID);
    let output = casemail()
        .args(["check-config", "--json", "--config"])
        .arg(&config.path)
        .output()
        .expect("the casemail binary runs");
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(!stdout.contains("imap-secret"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(
        json.pointer("/imap/password"),
        Some(&serde_json::Value::from("<redacted>"))
    );
    assert_eq!(
        json.pointer("/imap/port"),
        Some(&serde_json::Value::from(993))
    );
}

#[test]
fn check_config_applies_the_environment() {
    let config = ConfigFile::new(VALID);
    let output = check_config(
        &config.path,
        &[
            ("CASEMAIL__IMAP__PORT", "1993"),
            ("CASEMAIL__IMAP__PASSWORD", "from-env"),
        ],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(stdout.contains("port = 1993"), "{stdout}");
    assert!(!stdout.contains("from-env"), "{stdout}");
}

#[test]
fn check_config_refuses_an_unknown_key() {
    let contents = VALID.replace("[imap]\n", "[imap]\nprot = 993\n");
    assert_refused(&contents, &[], "imap.prot", "unknown key");
}

#[test]
fn check_config_refuses_a_bad_port() {
    let contents = VALID.replace("[imap]\n", "[imap]\nport = 70000\n");
    assert_refused(&contents, &[], "imap.port", "from 1 to 65535, found 70000");

    let stderr = assert_refused(
        VALID,
        &[("CASEMAIL__IMAP__PORT", "abc")],
        "imap.port",
        "found string \"abc\"",
    );
    assert!(stderr.contains("CASEMAIL__IMAP__PORT"), "{stderr}");
}

#[test]
fn check_config_refuses_plain_towards_a_remote_host() {
    let contents = VALID.replace("[imap]\n", "[imap]\nsecurity = \"plain\"\n");
    assert_refused(
        &contents,
        &[],
        "imap.security",
        "only allowed towards a loopback host",
    );
}

#[test]
fn check_config_refuses_a_missing_password_file() {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let absent = dir.path().join("imap-password");
    let contents = VALID.replace(
        "password = \"imap-secret\"",
        &format!("password_file = \"{}\"", absent.display()),
    );
    assert_refused(
        &contents,
        &[],
        "imap.password_file",
        &format!("cannot read {}", absent.display()),
    );
}

#[test]
fn check_config_refuses_a_missing_file() {
    let config = ConfigFile::new(VALID);
    let absent = config.dir.path().join("absent.toml");
    let output = check_config(&absent, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_CONFIG), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "casemail: {}: cannot read the config file: no such file",
            absent.display()
        )
    );
}

#[test]
fn help_lists_the_subcommands() {
    let output = casemail()
        .arg("--help")
        .output()
        .expect("the casemail binary runs");
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    for subcommand in ["run", "check-config", "inspect", "ticket", "quarantine"] {
        assert!(
            stdout.contains(subcommand),
            "{subcommand} missing from {stdout}"
        );
    }
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let output = casemail()
        .args(["check-config", "--no-such-flag"])
        .output()
        .expect("the casemail binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--no-such-flag"),
        "{}",
        text(&output.stderr)
    );
}

/// The layout README's install section gives (directory 0750 and file 0640, owned by root with
/// the service's group) lets the unprivileged service user read its config; a root-only config
/// is refused with exit code 78 and a hint at the fix. Run as root: it changes owners and drops
/// to an unprivileged user and group (65534) with `setpriv`, as systemd's `User=` does.
#[test]
fn service_user_reads_the_config_installed_as_documented() {
    use std::os::unix::fs::{PermissionsExt, chown};
    const SERVICE_ID: u32 = 65534;
    let root = tempfile::tempdir().expect("a temporary directory can be created");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
        .expect("the temporary directory's mode can be set");
    // A copy of the binary where the unprivileged user can reach it, wherever the checkout is.
    let binary = root.path().join("casemail");
    std::fs::copy(env!("CARGO_BIN_EXE_casemail"), &binary).expect("the binary can be copied");
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).expect("the config directory can be created");
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o750))
        .expect("the config directory's mode can be set");
    let config = etc.join("casemail.toml");
    std::fs::write(&config, VALID).expect("the config can be written");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640))
        .expect("the config's mode can be set");
    let run_as_service = || {
        Command::new("setpriv")
            .arg(format!("--reuid={SERVICE_ID}"))
            .arg(format!("--regid={SERVICE_ID}"))
            .arg("--clear-groups")
            .arg(&binary)
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .env_clear()
            .output()
            .expect("setpriv runs")
    };

    // Owned by root:root, as `install` leaves it without -g: the service cannot read it.
    for path in [&etc, &config] {
        chown(path, Some(0), Some(0)).expect("this test runs as root and can change owners");
    }
    let refused = run_as_service();
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(EXIT_CONFIG), "stderr: {stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("chgrp casemail"), "{stderr}");

    // Owned by root with the service's group, as README's install section says.
    for path in [&etc, &config] {
        chown(path, Some(0), Some(SERVICE_ID)).expect("the group can be changed");
    }
    let accepted = run_as_service();
    assert!(
        accepted.status.success(),
        "stderr: {}",
        text(&accepted.stderr)
    );
}

/// Every command the CLI has, visible ones only, by its full name (`ticket show`).
fn command_names() -> Vec<String> {
    use clap::CommandFactory as _;
    fn walk(command: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}{}", sub.get_name());
            out.push(name.clone());
            walk(sub, &format!("{name} "), out);
        }
    }
    let mut names = Vec::new();
    walk(&casemail::cli::Cli::command(), "", &mut names);
    names
}

#[test]
fn completion_scripts_offer_every_command() {
    let top: Vec<String> = command_names()
        .into_iter()
        .filter(|n| !n.contains(' '))
        .collect();
    assert!(top.contains(&"ticket".to_owned()), "{top:?}");
    for shell in ["bash", "zsh", "fish"] {
        let output = casemail()
            .args(["completions", shell])
            .output()
            .expect("the casemail binary runs");
        assert!(output.status.success(), "{}", text(&output.stderr));
        let script = text(&output.stdout);
        for name in &top {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
        }
    }
}

#[test]
fn manual_pages_are_written_for_every_command() {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let pages = dir.path().join("man1");
    let output = casemail()
        .arg("man")
        .arg(&pages)
        .output()
        .expect("the casemail binary runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut names = vec!["casemail".to_owned()];
    names.extend(
        command_names()
            .iter()
            .map(|n| format!("casemail-{}", n.replace(' ', "-"))),
    );
    for name in names {
        let page = std::fs::read_to_string(pages.join(format!("{name}.1")))
            .unwrap_or_else(|err| panic!("{name}.1: {err}"));
        assert!(page.contains(&format!(".TH {name} 1")), "{name}.1:\n{page}");
        assert!(page.contains(".SH SYNOPSIS"), "{name}.1:\n{page}");
    }
}

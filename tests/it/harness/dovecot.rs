//! The bench's Dovecot: IMAP, IMAPS and LMTP on loopback, mail in maildirs under the bench.
//!
//! It runs as `dovecot -F` with a config rendered from `tests/servers/dovecot.conf.in`, as a
//! child of the test process. Accounts are one passwd-file each, so adding one never races
//! with Dovecot's once-a-second re-read of a shared passwd-file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::Context as _;

use super::process::{self, LogMark, StartError};
use super::{Ports, tls};

const DOVECOT: &str = "/usr/sbin/dovecot";

const TEMPLATE: &str = include_str!("../../servers/dovecot.conf.in");

/// The system user that owns the mailboxes: Dovecot refuses to access mail as root.
const MAIL_USER: &str = "mail";

fn dir(root: &Path) -> PathBuf {
    root.join("dovecot")
}

fn conf_path(root: &Path) -> PathBuf {
    dir(root).join("dovecot.conf")
}

fn users_dir(root: &Path) -> PathBuf {
    dir(root).join("users")
}

fn run_dir(root: &Path) -> PathBuf {
    dir(root).join("run")
}

fn mail_dir(root: &Path) -> PathBuf {
    root.join("mail")
}

fn stderr_path(root: &Path) -> PathBuf {
    dir(root).join("stderr.log")
}

pub(super) fn log_path(root: &Path) -> PathBuf {
    dir(root).join("dovecot.log")
}

/// Creates the directories Dovecot expects, owned by the users that write to them.
pub(super) fn prepare(root: &Path) -> anyhow::Result<()> {
    for path in [
        users_dir(root),
        run_dir(root),
        dir(root).join("state"),
        mail_dir(root),
    ] {
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
    }
    process::run(
        Command::new("chown")
            .arg(format!("{MAIL_USER}:{MAIL_USER}"))
            .arg(mail_dir(root)),
    )
}

pub(super) fn render(root: &Path, ports: Ports, extra: &str) -> anyhow::Result<()> {
    let root_text = root.to_str().context("the bench directory is not UTF-8")?;
    // Dovecot keys some shared state by instance name, so each bench gets its own.
    let instance = root
        .file_name()
        .and_then(|name| name.to_str())
        .context("the bench directory has no name")?;
    let config = process::render_template(
        &format!("{TEMPLATE}\n{extra}"),
        &[
            ("ROOT", root_text),
            ("INSTANCE", instance),
            ("IMAP_PORT", &ports.imap.to_string()),
            ("IMAPS_PORT", &ports.imaps.to_string()),
            ("LMTP_PORT", &ports.lmtp.to_string()),
            ("TLS_CERT", &tls::cert_path(root).to_string_lossy()),
            ("TLS_KEY", &tls::key_path(root).to_string_lossy()),
        ],
    )?;
    let path = conf_path(root);
    std::fs::write(&path, config).with_context(|| format!("write {}", path.display()))
}

/// Writes `address`'s passwd-file; Dovecot reads it at the first login or delivery.
pub(super) fn add_user(root: &Path, address: &str, password: &str) -> anyhow::Result<()> {
    // Fields: user, password, uid, gid, gecos, home, shell, extra; the config supplies the rest.
    let line = format!("{address}:{{PLAIN}}{password}::::::\n");
    let path = users_dir(root).join(address);
    let staging = users_dir(root).join(format!(".{address}.new"));
    // Written aside and renamed, so Dovecot never reads half a line.
    std::fs::write(&staging, line).with_context(|| format!("write {}", staging.display()))?;
    std::fs::rename(&staging, &path).with_context(|| format!("rename to {}", path.display()))
}

/// Starts Dovecot and waits until it greets on IMAP and LMTP.
pub(super) async fn start(root: &Path, ports: Ports) -> Result<Child, StartError> {
    let marks = [
        LogMark::at_end(&log_path(root)),
        LogMark::at_end(&stderr_path(root)),
    ];
    let mut child = process::spawn_server(
        Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(conf_path(root)),
        root,
        &stderr_path(root),
    )
    .map_err(StartError::Failed)?;
    let ready = process::wait_ready(&mut child, "Dovecot", || async {
        process::greets(ports.imap, "* OK").await && process::greets(ports.lmtp, "220 ").await
    })
    .await;
    match ready {
        Ok(()) => Ok(child),
        Err(err) => {
            stop_blocking(&mut child);
            Err(process::classify_start_failure(
                err.context("Dovecot did not start"),
                &marks,
            ))
        }
    }
}

/// Stops Dovecot with SIGTERM, which also ends its login, IMAP and LMTP processes.
pub(super) async fn stop(child: &mut Child) {
    process::signal(child.id(), "TERM");
    if !process::wait_exit(child, process::STOP_TIMEOUT).await {
        kill(child);
    }
}

/// [`stop`], blocking the thread; for `Drop` and failed start-ups.
pub(super) fn stop_blocking(child: &mut Child) {
    process::signal(child.id(), "TERM");
    if !process::wait_exit_blocking(child, process::STOP_TIMEOUT) {
        kill(child);
    }
}

fn kill(child: &mut Child) {
    // The master is the child itself; its helpers exit on their own once it is gone. Errors
    // mean it has exited after all.
    let _ = child.kill();
    let _ = child.wait();
}

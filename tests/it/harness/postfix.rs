//! The bench's Postfix: SMTP on loopback for casemail.test only, delivering to Dovecot by LMTP.
//!
//! A separate instance with its own config, queue and data directories, started with
//! `postfix -c <dir> start-fg` as a child of the test process. `start-fg` runs the usual
//! integrity checks and creates the queue directories with the ownership Postfix wants
//! (`postfix` user, `postdrop` group), then keeps the master in the foreground under it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::process::{self, LogMark, StartError};
use super::{Ports, tls};

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTMAP: &str = "/usr/sbin/postmap";
const POSTQUEUE: &str = "/usr/sbin/postqueue";

const MAIN_TEMPLATE: &str = include_str!("../../servers/postfix/main.cf.in");
const MASTER_TEMPLATE: &str = include_str!("../../servers/postfix/master.cf.in");

/// Postfix's `mail_owner`, which must own the data directory.
const MAIL_OWNER: &str = "postfix";

fn dir(root: &Path) -> PathBuf {
    root.join("postfix")
}

fn config_dir(root: &Path) -> PathBuf {
    dir(root).join("conf")
}

fn queue_dir(root: &Path) -> PathBuf {
    dir(root).join("queue")
}

fn data_dir(root: &Path) -> PathBuf {
    dir(root).join("data")
}

fn stderr_path(root: &Path) -> PathBuf {
    dir(root).join("stderr.log")
}

fn master_pid_file(root: &Path) -> PathBuf {
    queue_dir(root).join("pid").join("master.pid")
}

pub(super) fn log_path(root: &Path) -> PathBuf {
    dir(root).join("maillog")
}

/// Creates the instance's directories. The queue directory stays root's; `start-fg` fills it.
pub(super) fn prepare(root: &Path) -> anyhow::Result<()> {
    for path in [config_dir(root), queue_dir(root), data_dir(root)] {
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
    }
    process::run(
        Command::new("chown")
            .arg(format!("{MAIL_OWNER}:{MAIL_OWNER}"))
            .arg(data_dir(root)),
    )
}

pub(super) fn render(root: &Path, ports: Ports, main_extra: &str) -> anyhow::Result<()> {
    let root_text = root.to_str().context("the bench directory is not UTF-8")?;
    let cert = tls::cert_path(root);
    let key = tls::key_path(root);
    let values = [
        ("ROOT", root_text),
        ("LMTP_PORT", &ports.lmtp.to_string()),
        ("SMTP_PORT", &ports.smtp.to_string()),
        ("SMTPS_PORT", &ports.smtps.to_string()),
        ("TLS_CERT", &cert.to_string_lossy()),
        ("TLS_KEY", &key.to_string_lossy()),
    ];
    let main = format!("{MAIN_TEMPLATE}\n{main_extra}");
    for (template, name) in [(main.as_str(), "main.cf"), (MASTER_TEMPLATE, "master.cf")] {
        let path = config_dir(root).join(name);
        let text = process::render_template(template, &values)
            .with_context(|| format!("render {name}"))?;
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        backdate(&path)?;
    }
    Ok(())
}

/// Sets a config file's modification time an hour back.
///
/// Postfix distrusts a main.cf modified within the last second or two: fearing a half-written
/// file, every Postfix program (postmap, postfix, the daemons) re-reads it every 300 ms until it
/// looks settled, which would add seconds to each bench's start.
fn backdate(path: &Path) -> anyhow::Result<()> {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(an_hour_ago))
        .with_context(|| format!("backdate {}", path.display()))
}

/// Rewrites the map of accepted recipients, which Postfix consults at RCPT time.
///
/// The map is built aside and renamed into place. Each smtpd process checks before accepting a
/// connection whether an open table's file was replaced (its link count drops to zero) and
/// restarts if so; rewriting the file in place could go unnoticed for up to a second, because
/// that check otherwise compares modification times in whole seconds.
pub(super) fn write_accounts_map(root: &Path, addresses: &[String]) -> anyhow::Result<()> {
    let staging = dir(root).join("accounts.next");
    let mut source = String::new();
    for address in addresses {
        source.push_str(address);
        source.push_str(" OK\n");
    }
    std::fs::write(&staging, source).with_context(|| format!("write {}", staging.display()))?;
    process::run(
        Command::new(POSTMAP)
            .arg("-c")
            .arg(config_dir(root))
            .arg(format!("hash:{}", staging.display())),
    )?;
    let built = dir(root).join("accounts.next.db");
    let live = dir(root).join("accounts.db");
    std::fs::rename(&built, &live).with_context(|| format!("rename to {}", live.display()))
}

/// Asks the running Postfix to retry all deferred mail now, as `postqueue -f` does.
pub(super) fn flush(root: &Path) -> anyhow::Result<()> {
    process::run(
        Command::new(POSTQUEUE)
            .arg("-c")
            .arg(config_dir(root))
            .arg("-f"),
    )
    .context("flush Postfix's queue")
}

/// Starts Postfix and waits until it greets on its SMTP port.
pub(super) async fn start(root: &Path, ports: Ports) -> Result<Child, StartError> {
    let marks = [
        LogMark::at_end(&log_path(root)),
        LogMark::at_end(&stderr_path(root)),
    ];
    let mut child = process::spawn_server(
        Command::new(POSTFIX)
            .arg("-c")
            .arg(config_dir(root))
            .arg("start-fg"),
        root,
        &stderr_path(root),
    )
    .map_err(StartError::Failed)?;
    let ready = process::wait_ready(&mut child, "Postfix", || async {
        process::greets(ports.smtp, "220 ").await
    })
    .await;
    match ready {
        Ok(()) => Ok(child),
        Err(err) => {
            stop_blocking(root, &mut child);
            Err(process::classify_start_failure(
                err.context("Postfix did not start"),
                &marks,
            ))
        }
    }
}

/// Stops Postfix: SIGTERM to the master, which ends its whole process group, then waits for
/// `postfix start-fg` to return. Queued mail stays in the queue for the next start.
pub(super) async fn stop(root: &Path, child: &mut Child) {
    if let Some(master) = master_pid(root) {
        process::signal(master, "TERM");
    }
    if !process::wait_exit(child, process::STOP_TIMEOUT).await {
        kill(root, child);
    }
}

/// [`stop`], blocking the thread; for `Drop` and failed start-ups.
pub(super) fn stop_blocking(root: &Path, child: &mut Child) {
    if let Some(master) = master_pid(root) {
        process::signal(master, "TERM");
    }
    if !process::wait_exit_blocking(child, process::STOP_TIMEOUT) {
        kill(root, child);
    }
}

/// The running master's pid. It is a grandchild of the test process, in a session of its own.
fn master_pid(root: &Path) -> Option<u32> {
    process::running_master(&master_pid_file(root), &queue_dir(root))
}

fn kill(root: &Path, child: &mut Child) {
    if let Some(master) = master_pid(root) {
        process::signal(master, "KILL");
    }
    // Errors mean the script has exited after all.
    let _ = child.kill();
    let _ = child.wait();
}

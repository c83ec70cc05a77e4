//! SpamAssassin's spamd (Debian package `spamd`), for the tests that check casemail's spamd
//! client against the real server: started once per test run on a free loopback port, with a
//! site config of its own (local tests only: no DNS, no network checks, no Bayes), inside the
//! shared bench's directory so that the bench's watchdog stops it when the tests end.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

use super::{Bench, HOST, process};

const SPAMD: &str = "/usr/sbin/spamd";
/// spamd loads its rules before it listens; a few seconds on a slow machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);

const LOCAL_CF: &str = "# casemail's test spamd: local rules only.\n\
use_bayes 0\n\
bayes_auto_learn 0\n\
skip_rbl_checks 1\n\
dns_available no\n\
required_score 5.0\n";

/// The address of the test run's spamd, starting it on first use.
pub(crate) async fn shared_spamd() -> SocketAddr {
    static SPAMD_ADDRESS: OnceCell<SocketAddr> = OnceCell::const_new();
    *SPAMD_ADDRESS
        .get_or_init(|| async {
            let bench = super::shared().await;
            match start(bench).await {
                Ok(address) => address,
                Err(err) => panic!("{err:#}"),
            }
        })
        .await
}

async fn start(bench: &Bench) -> anyhow::Result<SocketAddr> {
    if !Path::new(SPAMD).exists() {
        bail!("{SPAMD} is missing: install the Debian package spamd (scripts/install-test-deps)");
    }
    let dir = bench.root().join("spamd");
    std::fs::create_dir_all(&dir).context("create spamd's directory")?;
    // The plugin loaders (*.pre) come from the system's config; the rules from the package.
    for entry in std::fs::read_dir("/etc/spamassassin").context("read /etc/spamassassin")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pre")
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, dir.join(name))
                .with_context(|| format!("copy {}", path.display()))?;
        }
    }
    std::fs::write(dir.join("local.cf"), LOCAL_CF).context("write spamd's local.cf")?;
    let port = std::net::TcpListener::bind((HOST, 0))?.local_addr()?.port();
    let address = SocketAddr::new(HOST.parse()?, port);
    let mut command = Command::new(SPAMD);
    command
        .current_dir(&dir)
        .arg("--local")
        .arg("--nouser-config")
        .arg("--max-children=2")
        .arg("--min-children=1")
        .arg(format!("--listen={address}"))
        .arg(format!("--siteconfigpath={}", dir.display()))
        .arg(format!("--pidfile={}", dir.join("spamd.pid").display()))
        .arg(format!("--helper-home-dir={}", dir.display()))
        .arg("--syslog=stderr");
    if is_root() {
        // spamd will not keep root; its children run as nobody, who can read the bench.
        command.arg("--username=nobody");
    }
    let log = dir.join("spamd.log");
    // Stopped by the bench's watchdog at the end of the run, like Dovecot and Postfix.
    let _child = process::spawn_server(&mut command, bench.root(), &log)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if ping(address).await {
            return Ok(address);
        }
        if Instant::now() >= deadline {
            bail!(
                "spamd did not answer PING on {address} within {START_TIMEOUT:?}:\n{}",
                process::tail(&log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether spamd answers its protocol's PING with PONG.
async fn ping(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return false;
    };
    if stream.write_all(b"PING SPAMC/1.5\r\n\r\n").await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    read.is_ok() && String::from_utf8_lossy(&answer).contains("PONG")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

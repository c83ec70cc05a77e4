//! Runs the real `casemail` binary against a bench: start, SIGKILL, SIGTERM, restart, the CLI
//! on the same config, and the daemon's health and metrics endpoints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::harness::{Account, Bench};

pub(crate) const CASEMAIL: &str = env!("CARGO_BIN_EXE_casemail");

/// A casemail daemon process with its own state directory and help mailbox.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub help: Account,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub state_dir: PathBuf,
    /// Holds the config, log and state directory; removed when the daemon is dropped.
    _state: tempfile::TempDir,
}

/// Overrides applied to the bench's config: `(section, key, value)`.
pub(crate) type Overrides<'a> = &'a [(&'a str, &'a str, toml::Value)];

pub(crate) fn config_text(
    bench: &Bench,
    help: &Account,
    state_dir: &Path,
    overrides: Overrides<'_>,
) -> String {
    let base = bench.casemail_config(help, state_dir);
    let mut table: toml::Table = base.parse().expect("the bench writes valid TOML");
    for (section, key, value) in overrides {
        let section = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(section) = section {
            section.insert(key.to_string(), value.clone());
        }
    }
    toml::to_string(&table).expect("serialise config")
}

impl Daemon {
    /// Prepares a daemon for a fresh help account without starting it.
    pub(crate) fn new(bench: &Bench, overrides: Overrides<'_>) -> Daemon {
        let help = bench.new_account("help");
        Daemon::for_account(bench, help, overrides)
    }

    /// A daemon for tests of routing and replies: everything it finds is new mail. Without this,
    /// a request that reaches the INBOX before the daemon's first look would be imported
    /// silently as first-run backfill and never routed.
    pub(crate) fn live(bench: &Bench, overrides: Overrides<'_>) -> Daemon {
        let mut all: Vec<(&str, &str, toml::Value)> = vec![(
            "ingest",
            "first_run",
            toml::Value::String("notify".to_owned()),
        )];
        all.extend(overrides.iter().cloned());
        Daemon::new(bench, &all)
    }

    pub(crate) fn for_account(bench: &Bench, help: Account, overrides: Overrides<'_>) -> Daemon {
        let state = tempfile::tempdir().expect("state dir");
        let state_dir = state.path().join("state");
        let config_path = state.path().join("casemail.toml");
        std::fs::write(
            &config_path,
            config_text(bench, &help, &state_dir, overrides),
        )
        .expect("write config");
        let log_path = state.path().join("casemail.log");
        Daemon {
            child: None,
            help,
            config_path,
            log_path,
            state_dir,
            _state: state,
        }
    }

    pub(crate) fn start(&mut self) -> &mut Daemon {
        self.start_with_env(&[])
    }

    /// Starts the daemon with extra environment variables (as systemd would set them).
    pub(crate) fn start_with_env(&mut self, env: &[(&str, String)]) -> &mut Daemon {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open daemon log");
        let child = Command::new(CASEMAIL)
            .arg("--config")
            .arg(&self.config_path)
            .arg("run")
            .env("RUST_LOG", "casemail=debug,info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn casemail run");
        self.child = Some(child);
        self
    }

    /// SIGKILL: no chance to flush or acknowledge anything.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL casemail");
            child.wait().expect("reap casemail");
        }
    }

    /// The daemon's process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then wait for a clean exit.
    pub(crate) async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("send SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "casemail exited with {status} after SIGTERM:\n{}",
                        self.log_tail()
                    );
                }
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                child.kill().ok();
                bail!(
                    "casemail did not stop within 30 s of SIGTERM:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails if the daemon has exited on its own.
    pub(crate) fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("casemail exited with {status}:\n{}", self.log_tail());
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Command::new(CASEMAIL)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .expect("run casemail CLI")
    }

    /// The control socket, as the bench's config names it.
    pub(crate) fn socket(&self) -> PathBuf {
        self.state_dir.join("casemail.sock")
    }

    /// Whether the daemon process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Where the running daemon serves health and metrics, once it has bound the address.
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        std::fs::read_to_string(self.state_dir.join("http.addr"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `GET path` on the daemon's health and metrics address: the status code and the body.
    pub(crate) async fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = self
            .http_addr()
            .context("the daemon has not recorded its HTTP address")?;
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            stream.read_to_string(&mut response),
        )
        .await
        .context("no HTTP response within 10 s")??;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("an HTTP response without a blank line")?;
        let status = head
            .split(' ')
            .nth(1)
            .context("no status code")?
            .parse()
            .context("a status code that is not a number")?;
        Ok((status, body.to_owned()))
    }

    /// `casemail ticket list --json`, through the daemon's socket while it runs, on the store
    /// otherwise.
    pub(crate) fn tickets(&self) -> Vec<Value> {
        let output = self.cli(&["ticket", "list", "--json"]);
        assert!(
            output.status.success(),
            "ticket list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("ticket list JSON")
    }

    /// `casemail ticket show N --json`.
    pub(crate) fn ticket(&self, number: u64) -> Value {
        let output = self.cli(&["ticket", "show", &number.to_string(), "--json"]);
        assert!(
            output.status.success(),
            "ticket show failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("ticket show JSON")
    }

    /// Every stored message with its ticket number: `(ticket, message JSON)`.
    pub(crate) fn all_messages(&self) -> Vec<(u64, Value)> {
        let mut out = Vec::new();
        for ticket in self.tickets() {
            let number = ticket["number"].as_u64().expect("ticket number");
            let detail = self.ticket(number);
            for message in detail["messages"].as_array().expect("messages") {
                out.push((number, message.clone()));
            }
        }
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

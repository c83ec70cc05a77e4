//! The mail bench: Debian's Dovecot and Postfix, started on 127.0.0.1 for the integration tests.
//!
//! [`shared`] boots one Dovecot + Postfix pair per test process. Every test that only sends and
//! reads mail uses it, with fresh accounts from [`Bench::new_account`], so tests never see each
//! other's mail. [`private`] boots a pair of its own for a test that stops or restarts a server,
//! and tears it down when the [`Bench`] is dropped.
//!
//! Mail flows SMTP → Postfix → LMTP → Dovecot, for the domain [`DOMAIN`] only. The configs are
//! rendered from `tests/servers/*.in` into a temporary directory that also holds the queue, the
//! mailboxes, the certificate and the logs. Nothing here reads or writes the system's
//! `/etc/dovecot` or `/etc/postfix`, uses the system's server instances, or listens anywhere but
//! 127.0.0.1.
//!
//! The servers are plain child processes that no async runtime owns, because each
//! `#[tokio::test]` has a runtime of its own that dies with the test. A small shell watchdog stops
//! them and removes the directory once the test process has exited, however it exits, because a
//! static is never dropped. Set `CASEMAIL_BENCH_KEEP=1` to keep the directory for a post-mortem.
//!
//! Every helper opens fresh connections, so it works from any test's runtime.

#![allow(
    dead_code,
    reason = "the harness serves every integration module, and each uses only some helpers"
)]

mod dovecot;
pub(crate) mod glewlwyd;
mod imap;
mod postfix;
mod process;
mod smtp;
mod spamd;
mod tls;

use std::fmt;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tokio::sync::OnceCell;

pub(crate) use glewlwyd::{OAuth2Bench, oauth2_exclusive};
#[allow(
    unused_imports,
    reason = "part of the harness's API for the integration modules, used by only some"
)]
pub(crate) use imap::{FetchedMail, ImapSession, ImapTransport};
use process::StartError;
pub(crate) use spamd::shared_spamd;

/// The only mail domain the bench accepts and delivers.
pub(crate) const DOMAIN: &str = "casemail.test";

/// Every server listens here, and every helper connects here.
const HOST: &str = "127.0.0.1";

/// How often [`wait_until`] and [`Bench::wait_for_mail`] look again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many times a bench picks new ports when another process took one of them first.
const PORT_ATTEMPTS: u32 = 5;

/// The binaries the bench runs, with the Debian package that ships each.
const REQUIRED_PROGRAMS: [(&str, &str); 6] = [
    ("/usr/sbin/dovecot", "dovecot-core"),
    ("/usr/lib/dovecot/imap", "dovecot-imapd"),
    ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
    ("/usr/sbin/postfix", "postfix"),
    ("/usr/sbin/postmap", "postfix"),
    ("/usr/bin/openssl", "openssl"),
];

/// The bench every test shares, started on first use and stopped when the test process exits.
///
/// Tests must not stop or restart its servers; [`private`] is there for that.
pub(crate) async fn shared() -> &'static Bench {
    static SHARED: OnceCell<Bench> = OnceCell::const_new();
    SHARED.get_or_init(|| Bench::start(Sharing::Shared)).await
}

/// A bench of one's own, on its own ports and in its own directory, for a test that stops or
/// restarts servers. Its servers are stopped and its directory removed when it is dropped.
pub(crate) async fn private() -> Bench {
    Bench::start(Sharing::Private).await
}

/// Polls `condition` every 50 ms until it holds, failing once `timeout` has passed.
///
/// Tests wait with this rather than sleeping a fixed time, so they are as fast as the servers
/// allow and still patient on a slow machine. The deadline uses the real clock, so a test that
/// pauses Tokio's clock still gets a real timeout.
pub(crate) async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("condition still false after {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A mailbox on the bench: an address Postfix accepts and an IMAP login on Dovecot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    /// `prefix-<pid>-<n>@casemail.test`.
    pub address: String,
    /// The IMAP login, which is the full address.
    pub username: String,
    pub password: String,
}

impl Account {
    /// `local+detail@casemail.test`: Postfix and Dovecot deliver it to this account's INBOX.
    pub(crate) fn sub_address(&self, detail: &str) -> String {
        match self.address.split_once('@') {
            Some((local, domain)) => format!("{local}+{detail}@{domain}"),
            None => format!("{}+{detail}", self.address),
        }
    }
}

/// How a client protects its connection, as in casemail's `security` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Security {
    /// No TLS at all.
    Plain,
    /// The plain port, upgraded with STARTTLS before logging in or sending.
    StartTls,
    /// Implicit TLS on the dedicated port (IMAPS, or SMTP's submissions-style wrapper).
    Tls,
}

impl Security {
    /// The word casemail's config uses for this mode.
    pub(crate) fn config_name(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        }
    }
}

/// Where a client connects to reach one of the bench's listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sharing {
    Shared,
    Private,
}

/// The loopback ports one bench listens on.
#[derive(Clone, Copy, Debug)]
struct Ports {
    imap: u16,
    imaps: u16,
    lmtp: u16,
    smtp: u16,
    smtps: u16,
}

impl Ports {
    /// Asks the kernel for five free ports. All five listeners are held at once so the ports
    /// differ; they are released before the servers bind them, so another process can still
    /// win the race, which [`Bench::start`] handles by trying again.
    fn pick() -> std::io::Result<Ports> {
        let imap = TcpListener::bind((HOST, 0))?;
        let imaps = TcpListener::bind((HOST, 0))?;
        let lmtp = TcpListener::bind((HOST, 0))?;
        let smtp = TcpListener::bind((HOST, 0))?;
        let smtps = TcpListener::bind((HOST, 0))?;
        Ok(Ports {
            imap: imap.local_addr()?.port(),
            imaps: imaps.local_addr()?.port(),
            lmtp: lmtp.local_addr()?.port(),
            smtp: smtp.local_addr()?.port(),
            smtps: smtps.local_addr()?.port(),
        })
    }
}

/// Settings appended to the bench's Dovecot config and Postfix main.cf (templates like them:
/// `{{ROOT}}` is the bench's directory), for a bench that signs in differently.
#[derive(Debug, Default)]
struct ServerExtras {
    dovecot: String,
    postfix: String,
}

/// One Dovecot + Postfix pair and the directory they live in.
pub(crate) struct Bench {
    sharing: Sharing,
    root: PathBuf,
    ports: Ports,
    tls: tls::ClientTls,
    dovecot: Mutex<Option<Child>>,
    postfix: Mutex<Option<Child>>,
    /// Every address created so far, which is what Postfix's recipient map lists.
    accounts: Mutex<Vec<String>>,
    watchdog: Option<process::Watchdog>,
}

impl Bench {
    /// Boots a bench, panicking with the servers' logs if it cannot: a test that cannot reach
    /// its servers must fail, never skip.
    async fn start(sharing: Sharing) -> Bench {
        Bench::start_with(sharing, &ServerExtras::default()).await
    }

    /// [`Bench::start`] with `extras` added to the rendered Dovecot and Postfix configs.
    async fn start_with(sharing: Sharing, extras: &ServerExtras) -> Bench {
        require_installed();
        let root = make_root();
        // The watchdog comes first, so whatever starts after it is stopped even if this function
        // panics half-way.
        let watchdog = process::Watchdog::spawn(&root).expect("start the bench watchdog");
        tls::generate(&root).expect("make the bench's TLS certificate");
        let tls = tls::ClientTls::load(&root).expect("load the bench's TLS certificate");
        dovecot::prepare(&root).expect("prepare Dovecot's directories");
        postfix::prepare(&root).expect("prepare Postfix's directories");

        let mut clashes = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let ports = Ports::pick().expect("pick free loopback ports");
            dovecot::render(&root, ports, &extras.dovecot).expect("render dovecot.conf");
            postfix::render(&root, ports, &extras.postfix)
                .expect("render Postfix's main.cf and master.cf");
            postfix::write_accounts_map(&root, &[]).expect("write Postfix's empty account map");

            let mut dovecot = match dovecot::start(&root, ports).await {
                Ok(child) => child,
                Err(StartError::PortTaken(err)) => {
                    clashes.push(format!("{err:#}"));
                    continue;
                }
                Err(StartError::Failed(err)) => panic!("{err:#}"),
            };
            let postfix = match postfix::start(&root, ports).await {
                Ok(child) => child,
                Err(StartError::PortTaken(err)) => {
                    clashes.push(format!("{err:#}"));
                    dovecot::stop_blocking(&mut dovecot);
                    continue;
                }
                Err(StartError::Failed(err)) => panic!("{err:#}"),
            };

            return Bench {
                sharing,
                root,
                ports,
                tls,
                dovecot: Mutex::new(Some(dovecot)),
                postfix: Mutex::new(Some(postfix)),
                accounts: Mutex::new(Vec::new()),
                watchdog: Some(watchdog),
            };
        }
        panic!(
            "the mail bench found its ports taken {PORT_ATTEMPTS} times in a row:\n{}",
            clashes.join("\n")
        );
    }

    /// Creates a mailbox `prefix-<pid>-<n>@casemail.test`, unique per call, that both servers
    /// know about by the time this returns.
    ///
    /// `prefix` is lowercase ASCII letters, digits and `-`, since it becomes part of file names.
    pub(crate) fn new_account(&self, prefix: &str) -> Account {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        assert!(
            !prefix.is_empty()
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "account prefix {prefix:?} must be lowercase ASCII letters, digits and '-'"
        );
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let address = format!("{prefix}-{}-{number}@{DOMAIN}", std::process::id());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let password = format!("bench-{number}-{nanos:x}");

        // One account at a time: the Postfix map is rewritten whole from the list.
        let mut accounts = lock(&self.accounts);
        dovecot::add_user(&self.root, &address, &password)
            .unwrap_or_else(|err| panic!("create Dovecot user {address}: {err:#}"));
        accounts.push(address.clone());
        postfix::write_accounts_map(&self.root, &accounts)
            .unwrap_or_else(|err| panic!("add {address} to Postfix's account map: {err:#}"));

        Account {
            username: address.clone(),
            address,
            password,
        }
    }

    /// IMAP without TLS, where STARTTLS is also offered.
    pub(crate) fn imap_endpoint(&self) -> Endpoint {
        endpoint(self.ports.imap)
    }

    /// IMAP over implicit TLS.
    pub(crate) fn imaps_endpoint(&self) -> Endpoint {
        endpoint(self.ports.imaps)
    }

    /// SMTP into the bench's Postfix, with STARTTLS offered.
    pub(crate) fn smtp_endpoint(&self) -> Endpoint {
        endpoint(self.ports.smtp)
    }

    /// SMTP into the bench's Postfix over implicit TLS.
    pub(crate) fn smtps_endpoint(&self) -> Endpoint {
        endpoint(self.ports.smtps)
    }

    /// The endpoint a client with `security` connects to for IMAP.
    pub(crate) fn imap_endpoint_for(&self, security: Security) -> Endpoint {
        match security {
            Security::Plain | Security::StartTls => self.imap_endpoint(),
            Security::Tls => self.imaps_endpoint(),
        }
    }

    /// The endpoint a client with `security` connects to for SMTP.
    pub(crate) fn smtp_endpoint_for(&self, security: Security) -> Endpoint {
        match security {
            Security::Plain | Security::StartTls => self.smtp_endpoint(),
            Security::Tls => self.smtps_endpoint(),
        }
    }

    /// The self-signed certificate both servers present (CN and SAN `localhost`, SAN IP
    /// 127.0.0.1), in PEM; clients trust it as their only CA.
    pub(crate) fn ca_file(&self) -> PathBuf {
        tls::cert_path(&self.root)
    }

    /// The bench's directory, which holds the rendered configs and the servers' logs.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A casemail config in TOML that points the daemon at this bench, watching `help`'s INBOX
    /// over plain IMAP and relaying through the bench's Postfix.
    pub(crate) fn casemail_config(&self, help: &Account, state_dir: &Path) -> String {
        let socket = state_dir.join("casemail.sock");
        format!(
            r#"[helpdesk]
address = {address}
name = "Casemail Test Helpdesk"
state_dir = {state_dir}

[imap]
host = {host}
port = {imap_port}
security = "plain"
username = {username}
password = {password}
folders = ["INBOX"]
junk_folders = ["Junk"]
processed_folder = "Processed"
poll_interval = "2s"

[smtp]
host = {host}
port = {smtp_port}
security = "plain"

[control]
socket = {socket}
http = "127.0.0.1:0"

# Tests that are not about acknowledgements count exactly the mail they cause.
[acknowledge]
enabled = false
"#,
            address = toml_string(&help.address),
            state_dir = toml_string(&state_dir.to_string_lossy()),
            host = toml_string(HOST),
            imap_port = self.ports.imap,
            username = toml_string(&help.username),
            password = toml_string(&help.password),
            smtp_port = self.ports.smtp,
            socket = toml_string(&socket.to_string_lossy()),
        )
    }

    /// Stops Dovecot, as an outage would. Private benches only.
    pub(crate) async fn stop_dovecot(&self) -> anyhow::Result<()> {
        self.require_private("stop Dovecot");
        let mut child = lock(&self.dovecot)
            .take()
            .context("Dovecot is not running on this bench")?;
        dovecot::stop(&mut child).await;
        Ok(())
    }

    /// Starts Dovecot again on the same ports, with the same mailboxes. Private benches only.
    pub(crate) async fn start_dovecot(&self) -> anyhow::Result<()> {
        self.require_private("start Dovecot");
        if lock(&self.dovecot).is_some() {
            bail!("Dovecot is already running on this bench");
        }
        let child = dovecot::start(&self.root, self.ports)
            .await
            .map_err(StartError::into_inner)?;
        *lock(&self.dovecot) = Some(child);
        // Mail deferred during the outage goes in now rather than at Postfix's next retry.
        self.flush_queue()
    }

    /// Stops Postfix, as an outage would; mail already queued stays queued. Private benches only.
    pub(crate) async fn stop_postfix(&self) -> anyhow::Result<()> {
        self.require_private("stop Postfix");
        let mut child = lock(&self.postfix)
            .take()
            .context("Postfix is not running on this bench")?;
        postfix::stop(&self.root, &mut child).await;
        Ok(())
    }

    /// Starts Postfix again on the same ports, with the same queue. Private benches only.
    pub(crate) async fn start_postfix(&self) -> anyhow::Result<()> {
        self.require_private("start Postfix");
        if lock(&self.postfix).is_some() {
            bail!("Postfix is already running on this bench");
        }
        let child = postfix::start(&self.root, self.ports)
            .await
            .map_err(StartError::into_inner)?;
        *lock(&self.postfix) = Some(child);
        Ok(())
    }

    /// Asks Postfix to retry deferred mail now, as `postqueue -f` does; nothing to do while
    /// Postfix is stopped.
    ///
    /// Postfix's own retries are quick on the bench (see main.cf.in), but one case is not: when
    /// a queue scan meets a file the delivery agent has not yet released after deferring it,
    /// Postfix sets that file aside for a fixed 60 seconds. A flush ignores such delays.
    pub(crate) fn flush_queue(&self) -> anyhow::Result<()> {
        if lock(&self.postfix).is_none() {
            return Ok(());
        }
        postfix::flush(&self.root)
    }

    /// The last lines of both servers' logs, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        format!(
            "--- {} ---\n{}\n--- {} ---\n{}",
            dovecot::log_path(&self.root).display(),
            process::tail(&dovecot::log_path(&self.root), 30),
            postfix::log_path(&self.root).display(),
            process::tail(&postfix::log_path(&self.root), 30),
        )
    }

    fn require_private(&self, what: &str) {
        assert!(
            self.sharing == Sharing::Private,
            "cannot {what} on the shared bench: other tests are using it; use harness::private()"
        );
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        // Only private benches are ever dropped: the shared one lives in a static, and its
        // watchdog cleans up after the test process. Here the watchdog is told to do the same
        // right away. Dovecot takes about a second to shut down, so the waiting happens on a
        // thread of its own and the test that dropped the bench need not wait.
        let children: Vec<Child> = [&self.postfix, &self.dovecot]
            .into_iter()
            .filter_map(|slot| lock(slot).take())
            .collect();
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        watchdog.release();
        let reap = move || {
            for mut child in children {
                process::wait_exit_blocking(&mut child, process::STOP_TIMEOUT);
            }
            watchdog.wait();
        };
        // Should no thread start, the watchdog still stops everything; the children are then
        // reaped when the test process exits.
        let _ = std::thread::Builder::new()
            .name("bench-cleanup".to_owned())
            .spawn(reap);
    }
}

/// Takes a lock even if a panicking test poisoned it: the data behind these locks is a process
/// handle or a list that a panic cannot leave half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: HOST.to_owned(),
        port,
    }
}

/// A TOML basic string holding `value`, escaped as TOML requires.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// Panics, saying how to fix it, when the servers are missing or the tests are not root.
fn require_installed() {
    let missing: Vec<String> = REQUIRED_PROGRAMS
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, package)| format!("{path} (package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the mail bench needs Debian's Dovecot, Postfix and openssl; run scripts/install-test-deps \
         (missing: {})",
        missing.join(", ")
    );
    // /proc/self belongs to the effective user, which tells whether we are root without libc.
    let uid = std::fs::metadata("/proc/self")
        .map(|meta| meta.uid())
        .expect("read /proc/self to learn the effective user");
    assert_eq!(
        uid, 0,
        "the mail bench must run as root: Postfix and Dovecot need root to start instances of \
         their own"
    );
}

/// Creates the bench's directory, kept on disk because the watchdog, not a destructor, removes it.
fn make_root() -> PathBuf {
    let root = tempfile::Builder::new()
        .prefix("casemail-bench-")
        .tempdir()
        .expect("create the bench directory")
        .keep();
    // Canonical, because the harness and the watchdog recognise the servers by comparing this
    // path with the working directories the kernel reports for them.
    let root = root
        .canonicalize()
        .expect("resolve the bench directory's path");
    // The servers' unprivileged processes (dovecot, dovenull, mail, postfix) must reach their
    // files inside it.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
        .expect("open the bench directory to the servers' users");
    root
}

//! Binding the control socket (behind its lock file) and the health and metrics port, and
//! serving both with a limit on connections at once.

use std::fs::{File, TryLockError};
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _,
    PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::commands::serve_command;
use super::http::serve_http;
use super::{HTTP_ADDR_FILE, Shared};
use crate::config::Config;

/// Connections served at once on the control socket; more are closed at once. The socket has
/// slots of its own, so clients of the HTTP port can never take the CLI's.
const MAX_COMMAND_CONNECTIONS: usize = 16;

/// Connections served at once on the health and metrics port, which any local user can reach;
/// more are closed at once, so a client that opens many and sends nothing cannot exhaust the
/// daemon's file descriptors.
const MAX_HTTP_CONNECTIONS: usize = 32;

/// The bound listeners. Binding is separate from serving so that the daemon fails at start,
/// before it opens the store, when another daemon runs or an address is taken.
pub(crate) struct Listeners {
    unix: UnixListener,
    socket: PathBuf,
    /// Held until the socket file is removed; see the module documentation.
    lock: File,
    /// The user the socket belongs to, which is the daemon's.
    owner: u32,
    http: TcpListener,
    http_addr_file: PathBuf,
}

impl Listeners {
    /// Takes the socket's lock, replaces a socket left by a daemon that died, binds the socket
    /// (mode 0600) and the HTTP address, and records the bound HTTP address in the state
    /// directory.
    pub(crate) async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let socket = config.control.socket.clone();
        if let Some(parent) = socket.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| {
                    format!(
                        "cannot create the control socket's directory {}",
                        parent.display()
                    )
                })?;
        }
        let lock_path = lock_path(&socket);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "another casemail is running: it holds {} and answers on {}",
                lock_path.display(),
                socket.display()
            ),
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        match std::fs::symlink_metadata(&socket) {
            Ok(meta) if meta.file_type().is_socket() => {
                // Holding the lock proves no daemon serves it any more.
                std::fs::remove_file(&socket).with_context(|| {
                    format!(
                        "cannot remove the stale control socket {}",
                        socket.display()
                    )
                })?;
                info!(socket = %socket.display(), "Removed a control socket left by a daemon that stopped.");
            }
            Ok(_) => bail!(
                "control.socket {} exists and is not a socket; refusing to replace it",
                socket.display()
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot inspect {}", socket.display()));
            }
        }
        let unix = UnixListener::bind(&socket)
            .with_context(|| format!("cannot listen on the control socket {}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict the control socket {}", socket.display()))?;
        let owner = std::fs::symlink_metadata(&socket)
            .with_context(|| format!("cannot inspect {}", socket.display()))?
            .uid();

        let http = TcpListener::bind(config.control.http)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for health and metrics on {}",
                    config.control.http
                )
            })?;
        let http_addr = http
            .local_addr()
            .context("cannot read the health and metrics address")?;
        let http_addr_file = config.helpdesk.state_dir.join(HTTP_ADDR_FILE);
        write_atomically(&http_addr_file, format!("{http_addr}\n").as_bytes())
            .with_context(|| format!("cannot write {}", http_addr_file.display()))?;
        info!(socket = %socket.display(), http = %http_addr, "Control socket and health endpoint listening.");
        Ok(Listeners {
            unix,
            socket,
            lock,
            owner,
            http,
            http_addr_file,
        })
    }

    /// The address `/healthz` and `/metrics` are served on.
    #[cfg(test)]
    pub(crate) fn http_addr(&self) -> std::net::SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves both listeners until `cancel`, then lets the requests under way finish, removes
    /// the socket and the address file, and releases the lock.
    pub(crate) async fn serve(self, shared: Arc<Shared>, cancel: CancellationToken) {
        // One tracker per listener: each counts its own connections against its own limit.
        let requests = TaskTracker::new();
        let scrapes = TaskTracker::new();
        let (mut refused_commands, mut refused_scrapes) =
            (Refusals::default(), Refusals::default());
        loop {
            tokio::select! {
                accepted = self.unix.accept() => match accepted {
                    Ok(_) if requests.len() >= MAX_COMMAND_CONNECTIONS => {
                        too_busy("control socket", MAX_COMMAND_CONNECTIONS, &mut refused_commands);
                    }
                    Ok((stream, _)) => {
                        requests.spawn(serve_command(stream, shared.clone(), self.owner, cancel.clone()));
                    }
                    Err(err) => accept_failed("control socket", &err).await,
                },
                accepted = self.http.accept() => match accepted {
                    Ok(_) if scrapes.len() >= MAX_HTTP_CONNECTIONS => {
                        too_busy("health and metrics", MAX_HTTP_CONNECTIONS, &mut refused_scrapes);
                    }
                    Ok((stream, _)) => {
                        scrapes.spawn(serve_http(stream, shared.clone(), cancel.clone()));
                    }
                    Err(err) => accept_failed("health and metrics", &err).await,
                },
                () = cancel.cancelled() => break,
            }
        }
        let Listeners {
            unix,
            socket,
            lock,
            http,
            http_addr_file,
            ..
        } = self;
        drop((unix, http));
        // The CLI sees no socket from here on and opens the store itself once the daemon has
        // released it.
        if let Err(err) = std::fs::remove_file(&socket) {
            warn!(socket = %socket.display(), error = %err, "Cannot remove the control socket.");
        }
        let _ = std::fs::remove_file(&http_addr_file);
        requests.close();
        scrapes.close();
        requests.wait().await;
        scrapes.wait().await;
        // Released last, so no other daemon binds the socket while ours still exists.
        drop(lock);
        info!("Control socket closed.");
    }
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    std::fs::write(&staging, contents)?;
    std::fs::rename(&staging, path)
}

/// How often, at most, refused connections are logged per listener: a client that opens
/// connections in a loop must not flood the journal (journald's rate limit would then drop the
/// daemon's other lines too).
pub(super) const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// Connections a listener closed for being over its limit, logged at most once per
/// [`REFUSALS_LOGGED_EVERY`] with the count since the last line.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    unlogged: u64,
    last_logged: Option<std::time::Instant>,
}

impl Refusals {
    /// Counts one refusal at `now`; returns how many to log when a line is due.
    pub(super) fn refused(&mut self, now: std::time::Instant) -> Option<u64> {
        self.unlogged = self.unlogged.saturating_add(1);
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= REFUSALS_LOGGED_EVERY);
        if !due {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

fn too_busy(listener: &str, limit: usize, refusals: &mut Refusals) {
    if let Some(closed) = refusals.refused(std::time::Instant::now()) {
        warn!(
            listener,
            limit, closed, "Too many connections at once; closed new ones."
        );
    }
}

/// Out of file descriptors and the like: the listener stays, and a short pause keeps a
/// persistent error from spinning.
async fn accept_failed(what: &str, err: &std::io::Error) {
    warn!(listener = what, error = %err, "Cannot accept a connection.");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

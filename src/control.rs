//! The running daemon's control surface, and the only module that listens on a socket.
//!
//! - **The Unix socket** (`[control] socket`, mode 0600, peers must be the daemon's own user or
//!   root). sled locks the store while the daemon runs, so the CLI sends its store commands
//!   here and the daemon runs them with [`cli::execute`] on its own store handle. One request
//!   per connection: a JSON line `{"version":1,"command":{"op":"ticket_list",…}}` answered by a JSON line
//!   `{"ok":true,"stdout":"…"}` or `{"ok":false,"stdout":"…","error":"…","exit":1}`.
//!   `backup` is the one exception: after its reply line the daemon streams the snapshot (the
//!   backup file's bytes) and closes the connection. `{"op":"status"}` asks the daemon about
//!   itself (`casemail status`) and is answered from its health marks, beside the commands. A
//!   real erasure is run by the process stage, the single writer, as an
//!   [`ingest::Job`](crate::ingest::Job).
//! - **Health and metrics** over HTTP/1.1 on the loopback `[control] http` address:
//!   `GET /healthz` and `GET /metrics`, read-only, one request per connection.
//!
//! Commands run one at a time. They are small independent transactions (agent records, the
//! rota, an agent's tickets going back to routing) beside the process stage, which stays the
//! only writer of filed mail; after a command that changes agents or the rota, the process
//! stage is told to load its team again.
//!
//! A lock file next to the socket (`<socket>.lock`) is held for the daemon's life, so a second
//! daemon refuses to start instead of removing the first one's socket, while a socket left by
//! a daemon that died is replaced.
//!
//! This module must not hold business rules: what a command does is `cli` and `admin`, what
//! the figures mean is `metrics`.

use std::fs::{File, TryLockError};
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _,
    PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::cli::{self, StoreCommand};
use crate::config::Config;
use crate::metrics::{self, Metrics, StoreFigures};
use crate::store::Store;

/// The request format this build speaks; a request with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest request accepted: a rota file travels inside `rota import`.
const MAX_REQUEST: u64 = 16 * 1024 * 1024;

/// How long a peer may take to send its request, or to take the reply.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the CLI waits for the daemon's answer; commands are small transactions, but one
/// may wait behind another.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest HTTP request head read; the two endpoints need only the request line.
const MAX_HTTP_HEAD: usize = 8 * 1024;

/// Connections served at once on the control socket; more are closed at once. The socket has
/// slots of its own, so clients of the HTTP port can never take the CLI's.
const MAX_COMMAND_CONNECTIONS: usize = 16;

/// Connections served at once on the health and metrics port, which any local user can reach;
/// more are closed at once, so a client that opens many and sends nothing cannot exhaust the
/// daemon's file descriptors.
const MAX_HTTP_CONNECTIONS: usize = 32;

/// How long an HTTP client may take to send its request head, and to take the response: a
/// scrape is a few hundred bytes each way, so an idle or slow client gives its slot back soon.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The file, in the state directory, holding the address the HTTP listener is bound to (useful
/// when `[control] http` asks for port 0).
pub const HTTP_ADDR_FILE: &str = "http.addr";

/// Exit status the CLI uses for a command the daemon ran and that failed (a runtime failure).
const EXIT_FAILED: u8 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Request<C = StoreCommand> {
    version: u32,
    command: C,
}

/// A question about the daemon itself rather than the store, sent like a store command:
/// `{"version":1,"command":{"op":"status"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DaemonQuery {
    /// `casemail status`: answered with [`cli::status::answer`]'s JSON as the reply's stdout.
    Status,
}

/// What a request on the socket asks for.
#[derive(Debug)]
enum Asked {
    Store(StoreCommand),
    Daemon(DaemonQuery),
}

/// The daemon's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// What the command printed, to be printed by the CLI as it is.
    #[serde(default)]
    pub stdout: String,
    /// Why the command failed (the whole error chain, as the CLI prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit status the CLI should end with when the command failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<u8>,
}

impl Reply {
    fn succeeded(stdout: String) -> Reply {
        Reply {
            ok: true,
            stdout,
            error: None,
            exit: None,
        }
    }

    fn failed(stdout: String, error: String) -> Reply {
        Reply {
            ok: false,
            stdout,
            error: Some(error),
            exit: Some(EXIT_FAILED),
        }
    }
}

/// Sends `command` (a [`StoreCommand`] or a [`DaemonQuery`]) to the daemon listening on
/// `socket` and returns its reply, or `None` when no daemon listens there (no socket, or one
/// left by a daemon that has stopped).
pub fn request<C: Serialize>(socket: &Path, command: &C) -> anyhow::Result<Option<Reply>> {
    use std::io::ErrorKind;
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(err) if err.kind() == ErrorKind::PermissionDenied => {
            return Err(err).with_context(|| {
                format!(
                    "cannot reach the running daemon at {}: run the command as the daemon's user",
                    socket.display()
                )
            });
        }
        Err(err) => {
            return Err(err).with_context(|| {
                format!("cannot reach the running daemon at {}", socket.display())
            });
        }
    };
    let talk = |stream: &mut std::os::unix::net::UnixStream| -> std::io::Result<Vec<u8>> {
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        let mut line = serde_json::to_vec(&Request {
            version: PROTOCOL_VERSION,
            command,
        })?;
        line.push(b'\n');
        stream.write_all(&line)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut answer = Vec::new();
        std::io::BufReader::new(stream).read_until(b'\n', &mut answer)?;
        Ok(answer)
    };
    let answer = talk(&mut stream)
        .with_context(|| format!("cannot talk to the running daemon at {}", socket.display()))?;
    if answer.is_empty() {
        bail!(
            "the running daemon at {} closed the connection without answering (see its log)",
            socket.display()
        );
    }
    let reply: Reply = serde_json::from_slice(&answer).with_context(|| {
        format!(
            "the running daemon at {} sent an answer this casemail cannot read",
            socket.display()
        )
    })?;
    Ok(Some(reply))
}

/// Sends `command` to the daemon and copies what it streams after its reply line to `out` (a
/// backup). `None` when no daemon listens there; an error when the daemon refused or failed.
pub fn request_stream(
    socket: &Path,
    command: &StoreCommand,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Option<()>> {
    use std::io::ErrorKind;
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(err) => {
            return Err(err).with_context(|| {
                format!("cannot reach the running daemon at {}", socket.display())
            });
        }
    };
    let context = || format!("cannot talk to the running daemon at {}", socket.display());
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = serde_json::to_vec(&Request {
        version: PROTOCOL_VERSION,
        command: command.clone(),
    })?;
    line.push(b'\n');
    stream.write_all(&line).with_context(context)?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .with_context(context)?;
    let mut reader = std::io::BufReader::new(stream);
    let mut answer = Vec::new();
    reader
        .read_until(b'\n', &mut answer)
        .with_context(context)?;
    if answer.is_empty() {
        bail!(
            "the running daemon at {} closed the connection without answering (see its log)",
            socket.display()
        );
    }
    let reply: Reply = serde_json::from_slice(&answer).with_context(|| {
        format!(
            "the running daemon at {} sent an answer this casemail cannot read",
            socket.display()
        )
    })?;
    if let Some(error) = reply.error {
        return Err(anyhow::Error::msg(error));
    }
    std::io::copy(&mut reader, out).with_context(context)?;
    Ok(Some(()))
}

/// What the control tasks share with the rest of the daemon.
pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Notified after a command that changed agents or the rota.
    pub team_changed: Arc<Notify>,
    /// Held while a command runs, so commands never interleave (two `agent add` with the same
    /// id cannot both pass the uniqueness check).
    commands: tokio::sync::Mutex<()>,
    /// The process stage, for commands that must run in the single writer (an erasure).
    writer: Option<tokio::sync::mpsc::Sender<crate::ingest::Job>>,
}

impl Shared {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        team_changed: Arc<Notify>,
    ) -> Shared {
        Shared {
            store,
            config,
            metrics,
            team_changed,
            commands: tokio::sync::Mutex::new(()),
            writer: None,
        }
    }

    /// Runs erasures in the process stage through `writer` instead of beside it.
    pub fn with_writer(mut self, writer: tokio::sync::mpsc::Sender<crate::ingest::Job>) -> Shared {
        self.writer = Some(writer);
        self
    }
}

/// The bound listeners. Binding is separate from serving so that the daemon fails at start,
/// before it opens the store, when another daemon runs or an address is taken.
pub struct Listeners {
    unix: UnixListener,
    socket: PathBuf,
    /// Held until the socket file is removed; see the module documentation.
    lock: File,
    /// The user the socket belongs to, which is the daemon's.
    owner: u32,
    http: TcpListener,
    http_addr: SocketAddr,
    http_addr_file: PathBuf,
}

impl Listeners {
    /// Takes the socket's lock, replaces a socket left by a daemon that died, binds the socket
    /// (mode 0600) and the HTTP address, and records the bound HTTP address in the state
    /// directory.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
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
            http_addr,
            http_addr_file,
        })
    }

    /// The address `/healthz` and `/metrics` are served on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serves both listeners until `cancel`, then lets the requests under way finish, removes
    /// the socket and the address file, and releases the lock.
    pub async fn serve(self, shared: Arc<Shared>, cancel: CancellationToken) {
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
const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// Connections a listener closed for being over its limit, logged at most once per
/// [`REFUSALS_LOGGED_EVERY`] with the count since the last line.
#[derive(Debug, Default)]
struct Refusals {
    unlogged: u64,
    last_logged: Option<std::time::Instant>,
}

impl Refusals {
    /// Counts one refusal at `now`; returns how many to log when a line is due.
    fn refused(&mut self, now: std::time::Instant) -> Option<u64> {
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

async fn serve_command(
    stream: UnixStream,
    shared: Arc<Shared>,
    owner: u32,
    cancel: CancellationToken,
) {
    // The socket's mode already keeps other users out; checking the peer also covers a
    // directory or mode changed after start.
    match stream.peer_cred() {
        Ok(peer) if peer.uid() == owner || peer.uid() == 0 => {}
        Ok(peer) => {
            warn!(
                uid = peer.uid(),
                "Control connection from another user refused."
            );
            return;
        }
        Err(err) => {
            warn!(error = %err, "Cannot identify a control connection's user; refused.");
            return;
        }
    }
    let (mut read, mut write) = stream.into_split();
    let reply = tokio::select! {
        request = tokio::time::timeout(PEER_TIMEOUT, read_request(&mut read)) => match request {
            Err(_) => Some(Reply::failed(String::new(), format!("no complete request within {PEER_TIMEOUT:?}"))),
            Ok(Err(reason)) => Some(Reply::failed(String::new(), reason)),
            Ok(Ok(Asked::Store(StoreCommand::Backup))) => None,
            Ok(Ok(Asked::Store(command))) => Some(run_command(&shared, command).await),
            Ok(Ok(Asked::Daemon(DaemonQuery::Status))) => Some(status(&shared).await),
        },
        () = cancel.cancelled() => Some(Reply::failed(String::new(), "casemail is shutting down; try again once it has stopped".to_owned())),
    };
    let Some(reply) = reply else {
        match read.reunite(write) {
            Ok(stream) => stream_backup(stream, &shared).await,
            Err(err) => warn!(error = %err, "Cannot take back a control connection."),
        }
        return;
    };
    let mut line = match serde_json::to_vec(&reply) {
        Ok(line) => line,
        Err(err) => {
            warn!(error = %err, "Cannot encode a control reply.");
            return;
        }
    };
    line.push(b'\n');
    let sent = tokio::time::timeout(PEER_TIMEOUT, async {
        write.write_all(&line).await?;
        write.shutdown().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        debug!("The CLI went away before taking its reply.");
    }
}

async fn read_request(read: &mut tokio::net::unix::OwnedReadHalf) -> Result<Asked, String> {
    let mut line = Vec::new();
    let mut limited = BufReader::new(read.take(MAX_REQUEST.saturating_add(1)));
    limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|err| format!("cannot read the request: {err}"))?;
    if line.len() as u64 > MAX_REQUEST {
        return Err(format!(
            "request larger than {} MiB refused",
            MAX_REQUEST / 1024 / 1024
        ));
    }
    let request: Request = match serde_json::from_slice(&line) {
        Ok(request) => request,
        Err(err) => {
            if let Ok(query) = serde_json::from_slice::<Request<DaemonQuery>>(&line) {
                check_version(query.version)?;
                return Ok(Asked::Daemon(query.command));
            }
            // An older or newer CLI: say so rather than that the JSON is wrong.
            let version = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|value| value.get("version").and_then(serde_json::Value::as_u64));
            return Err(match version {
                Some(version) if version != u64::from(PROTOCOL_VERSION) => format!(
                    "control protocol version {version} is not supported by this daemon, which speaks {PROTOCOL_VERSION}; use the casemail binary the daemon runs"
                ),
                _ => format!("malformed control request: {err}"),
            });
        }
    };
    check_version(request.version)?;
    Ok(Asked::Store(request.command))
}

fn check_version(version: u32) -> Result<(), String> {
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "control protocol version {version} is not supported by this daemon, which speaks {PROTOCOL_VERSION}; use the casemail binary the daemon runs"
        ));
    }
    Ok(())
}

/// `casemail status`: the daemon's own view and the store's figures, read beside the commands
/// (it takes no turn among them, so a long command does not hold it up).
async fn status(shared: &Arc<Shared>) -> Reply {
    let worker = shared.clone();
    let answered = tokio::task::spawn_blocking(move || {
        cli::status::answer(&worker.store, &worker.metrics, jiff::Timestamp::now())
    })
    .await;
    match answered {
        Ok(Ok(json)) => Reply::succeeded(json),
        Ok(Err(err)) => Reply::failed(String::new(), format!("{err:#}")),
        Err(join) => {
            warn!(error = %join, "Status crashed.");
            Reply::failed(
                String::new(),
                format!("the daemon failed to run status: {join}"),
            )
        }
    }
}

/// Streams a backup: the reply line, then the snapshot, from a worker thread that writes to
/// the socket directly. The snapshot holds the store's write gate, so filing waits for it; the
/// write timeout keeps a stalled client from holding it for long.
async fn stream_backup(stream: UnixStream, shared: &Arc<Shared>) {
    let _one_at_a_time = shared.commands.lock().await;
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(err) => {
            warn!(error = %err, "Cannot hand a control connection to a worker thread.");
            return;
        }
    };
    let store = shared.store.clone();
    let state_dir = shared.config.helpdesk.state_dir.clone();
    let streamed = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(PEER_TIMEOUT))?;
        let mut out = std::io::BufWriter::new(&stream);
        let mut line = serde_json::to_vec(&Reply::succeeded(String::new()))?;
        line.push(b'\n');
        out.write_all(&line)?;
        let records = crate::backup::write_snapshot(&store, &state_dir, &mut out)?;
        out.flush()?;
        drop(out);
        stream.shutdown(std::net::Shutdown::Write)?;
        Ok(records)
    })
    .await;
    match streamed {
        Ok(Ok(records)) => info!(records, "Backup streamed to the command line."),
        // The client sees a backup without its end marker and says so.
        Ok(Err(err)) => warn!(error = %format!("{err:#}"), "Backup failed."),
        Err(join) => warn!(error = %join, "Backup crashed."),
    }
}

async fn run_command(shared: &Arc<Shared>, command: StoreCommand) -> Reply {
    let _one_at_a_time = shared.commands.lock().await;
    let name = command.name();
    let changes_team = command.changes_team();
    let worker = shared.clone();
    let ran = match (&shared.writer, command.needs_single_writer()) {
        (Some(writer), true) => {
            // The process stage runs it between batches, so nothing is filed meanwhile.
            let (done, result) = tokio::sync::oneshot::channel();
            let config = shared.config.clone();
            let job: crate::ingest::Job = Box::new(move |store: &Store| {
                let mut out = Vec::new();
                let result = cli::execute(store, &config, &command, &mut out);
                let _ = done.send((String::from_utf8_lossy(&out).into_owned(), result));
            });
            match writer.send(job).await {
                Err(_) => Err("the process stage has stopped".to_owned()),
                Ok(()) => result
                    .await
                    .map_err(|_| "the process stage stopped before running the command".to_owned()),
            }
        }
        // The store's calls block; a worker thread keeps them off the runtime.
        _ => tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let result = cli::execute(&worker.store, &worker.config, &command, &mut out);
            (String::from_utf8_lossy(&out).into_owned(), result)
        })
        .await
        .map_err(|join| join.to_string()),
    };
    if changes_team {
        // Also after a failure: a command that failed half-way may have changed something.
        shared.team_changed.notify_one();
    }
    match ran {
        Ok((stdout, Ok(()))) => {
            if changes_team {
                info!(command = name, "Control command done.");
            } else {
                debug!(command = name, "Control command done.");
            }
            Reply::succeeded(stdout)
        }
        Ok((stdout, Err(err))) => {
            let error = format!("{err:#}");
            // The reason may name addresses, which are logged at DEBUG only; the CLI prints it.
            debug!(command = name, %error, "Control command failed.");
            info!(
                command = name,
                "Control command failed; the caller was told why."
            );
            Reply::failed(stdout, error)
        }
        Err(reason) => {
            warn!(command = name, error = %reason, "Control command crashed.");
            Reply::failed(
                String::new(),
                format!("the daemon failed to run {name}: {reason}"),
            )
        }
    }
}

/// An HTTP response: status line, plain-text body.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: String) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

async fn serve_http(mut stream: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let head = tokio::select! {
        head = tokio::time::timeout(HTTP_TIMEOUT, read_http_head(&mut stream)) => head,
        () = cancel.cancelled() => return,
    };
    let (response, head_only) = match head {
        Err(_) | Ok(Err(_)) => return,
        Ok(Ok(head)) => match parse_request_line(&head) {
            None => (
                Response::text(400, "Bad Request", "bad request\n".to_owned()),
                false,
            ),
            Some((method, path)) => {
                let head_only = method == "HEAD";
                let response = if method != "GET" && !head_only {
                    Response::text(405, "Method Not Allowed", "only GET and HEAD\n".to_owned())
                } else {
                    route(&shared, path).await
                };
                (response, head_only)
            }
        },
    };
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        response.reason,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    let _ = tokio::time::timeout(HTTP_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads up to the blank line that ends the request head.
async fn read_http_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(chunk.get(..read).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n")
            || head.windows(2).any(|w| w == b"\n\n")
            || head.len() >= MAX_HTTP_HEAD
        {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The method and the path (without a query) of a request line such as `GET /metrics HTTP/1.1`.
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split_ascii_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

async fn route(shared: &Arc<Shared>, path: &str) -> Response {
    match path {
        "/healthz" => healthz(shared).await,
        "/metrics" => metrics(shared).await,
        _ => Response::text(
            404,
            "Not Found",
            "not found; try /healthz or /metrics\n".to_owned(),
        ),
    }
}

async fn healthz(shared: &Arc<Shared>) -> Response {
    let store = shared.store.clone();
    let oldest = tokio::task::spawn_blocking(move || metrics::outbox_oldest(&store)).await;
    let now = jiff::Timestamp::now();
    let mut problems = match oldest {
        Ok(Ok(oldest)) => shared.metrics.problems(oldest, now),
        Ok(Err(err)) => vec![format!("store: cannot read the outbox: {err:#}")],
        Err(join) => vec![format!("store: reading the outbox failed: {join}")],
    };
    if problems.is_empty() {
        return Response::text(200, "OK", "ok\n".to_owned());
    }
    problems.push(String::new());
    Response::text(503, "Service Unavailable", problems.join("\n"))
}

async fn metrics(shared: &Arc<Shared>) -> Response {
    let store = shared.store.clone();
    let figures = tokio::task::spawn_blocking(move || StoreFigures::read(&store)).await;
    match figures {
        Ok(Ok(figures)) => Response {
            status: 200,
            reason: "OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: shared.metrics.render(&figures, jiff::Timestamp::now()),
        },
        Ok(Err(err)) => {
            warn!(error = %format!("{err:#}"), "Cannot read the store for /metrics.");
            Response::text(
                500,
                "Internal Server Error",
                format!("cannot read the store: {err:#}\n"),
            )
        }
        Err(join) => Response::text(
            500,
            "Internal Server Error",
            format!("reading the store failed: {join}\n"),
        ),
    }
}

#[cfg(test)]
mod tests;

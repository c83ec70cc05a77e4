//! One connection on the control socket: the peer checked, the request read, the command run
//! (one at a time, in the process stage when it must be), and the reply written or the backup
//! streamed.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Asked, DaemonQuery, PROTOCOL_VERSION, Reply, Request, Shared};
use crate::ops::{self, StoreCommand};
use crate::store::Store;

/// The largest request accepted: a rota file travels inside `rota import`.
const MAX_REQUEST: u64 = 16 * 1024 * 1024;

/// How long a peer may take to send its request, or to take the reply.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn serve_command(
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
        crate::ops::status::answer(&worker.store, &worker.metrics, jiff::Timestamp::now())
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
        let records = crate::ops::backup::write_snapshot(&store, &state_dir, &mut out)?;
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
            let job: crate::process::Job = Box::new(move |store: &Store| {
                let mut out = Vec::new();
                let result = ops::execute(store, &config, &command, &mut out);
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
            let result = ops::execute(&worker.store, &worker.config, &command, &mut out);
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

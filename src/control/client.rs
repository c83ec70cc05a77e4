//! The CLI's side of the control socket: one command sent, the daemon's reply read (and, for a
//! backup, the snapshot that follows it).

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use serde::Serialize;

use super::{PROTOCOL_VERSION, Reply, Request};
use crate::ops::StoreCommand;

/// How long the CLI waits for the daemon's answer; commands are small transactions, but one
/// may wait behind another.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `command` (a [`StoreCommand`] or a [`DaemonQuery`]) to the daemon listening on
/// `socket` and returns its reply, or `None` when no daemon listens there (no socket, or one
/// left by a daemon that has stopped).
pub(crate) fn request<C: Serialize>(socket: &Path, command: &C) -> anyhow::Result<Option<Reply>> {
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
pub(crate) fn request_stream(
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

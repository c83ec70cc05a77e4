//! Backup and restore: a consistent, versioned snapshot of the whole state directory's data in
//! one file, and rebuilding a state directory from it.
//!
//! The file holds every store record (tickets, messages with their raw bytes, events, indexes,
//! agents, the rota, the outbox, dead letters, cursors, the quarantine, the IMAP deletion
//! queue) and the reply-token secret, so that the reply addresses in caseworkers' mailboxes
//! keep working after a restore. It therefore holds secrets and personal data: it is written
//! with mode 0600.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! "casemail-backup\n"
//! header: one JSON line {"format":1,"schema":N,"created":"…","casemail":"…"}
//! items:  'F' u16 name-length, name, u64 length, bytes      a file of the state directory
//!         'R' u32 key-length, key, u64 length, value         a store record
//! end:    'E' u64 item count, 32 bytes SHA-256 of everything before the hash
//! ```
//!
//! Consistency: the records are read by [`Store::snapshot`], which holds the store's write gate
//! exclusively, so no transaction (the process stage's filing, the relay settling a send, a
//! control command) runs while they are read; writers wait and continue afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::store::{self, SCHEMA_VERSION, STORE_DIR, SnapshotError, Store};

/// The layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8] = b"casemail-backup\n";

/// Files of the state directory a backup carries besides the store.
/// The retired key is there only after `casemail secret rotate`, for its grace period.
const FILES: &[&str] = &["reply-secret", "reply-secret.previous"];

/// The largest header line accepted.
const MAX_HEADER: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub schema: u32,
    /// When the snapshot was taken (RFC 3339).
    pub created: String,
    /// The casemail version that wrote it.
    pub casemail: String,
}

/// What a backup holds, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub header: Header,
    pub records: u64,
    pub files: Vec<String>,
    pub tickets: u64,
    pub bytes: u64,
}

/// Why a backup file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a casemail backup (it does not start with the casemail-backup marker)")]
    NotABackup,
    #[error(
        "backup format version {found} is not supported; this casemail reads version {FORMAT_VERSION}"
    )]
    Format { found: u32 },
    #[error(
        "backup holds store schema version {found}; this casemail uses {SCHEMA_VERSION}: restore it with the casemail version that wrote it ({casemail})"
    )]
    Schema { found: u32, casemail: String },
    #[error("backup header is damaged: {0}")]
    Header(String),
    #[error("backup is truncated: it ends before its end marker (was it copied completely?)")]
    Truncated,
    #[error("backup is damaged: {0}")]
    Damaged(String),
    #[error("backup checksum does not match: the file was changed or damaged after it was written")]
    Checksum,
    #[error("cannot read the backup")]
    Io(#[source] std::io::Error),
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(buf.get(..written).unwrap_or_default());
        self.bytes = self.bytes.saturating_add(written as u64);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a snapshot of the store and the state directory's files to `out`. Returns how many
/// store records it holds.
pub fn write_snapshot(store: &Store, state_dir: &Path, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut out = Hashing {
        inner: out,
        hash: Sha256::new(),
        bytes: 0,
    };
    let header = Header {
        format: FORMAT_VERSION,
        schema: SCHEMA_VERSION,
        created: jiff::Timestamp::now().to_string(),
        casemail: env!("CARGO_PKG_VERSION").to_owned(),
    };
    out.write_all(MAGIC)?;
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let mut items = 0_u64;
    for name in FILES {
        let path = state_dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        out.write_all(b"F")?;
        out.write_all(&u16::try_from(name.len())?.to_be_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&(bytes.len() as u64).to_be_bytes())?;
        out.write_all(&bytes)?;
        items += 1;
    }
    let records = store
        .snapshot(|key, value| -> std::io::Result<()> {
            out.write_all(b"R")?;
            let key_len = u32::try_from(key.len()).map_err(std::io::Error::other)?;
            out.write_all(&key_len.to_be_bytes())?;
            out.write_all(key)?;
            out.write_all(&(value.len() as u64).to_be_bytes())?;
            out.write_all(value)
        })
        .map_err(|err| match err {
            SnapshotError::Store(err) => anyhow::Error::new(err).context("cannot read the store"),
            SnapshotError::Visit(err) => anyhow::Error::new(err).context("cannot write the backup"),
        })?;
    items += records;
    out.write_all(b"E")?;
    out.write_all(&items.to_be_bytes())?;
    let digest = out.hash.clone().finalize();
    out.inner.write_all(&digest)?;
    out.flush()?;
    Ok(records)
}

/// One item of a backup, as [`scan`] hands it over.
pub enum Item<'a> {
    File { name: &'a str, bytes: &'a [u8] },
    Record { key: &'a [u8], value: &'a [u8] },
}

/// A reader that hashes what it reads and tells a short file from a damaged one.
struct Reading<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Reading<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.inner.read_exact(buf).map_err(|err| {
            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Truncated
            } else {
                Error::Io(err)
            }
        })?;
        self.hash.update(&*buf);
        self.bytes = self.bytes.saturating_add(buf.len() as u64);
        Ok(())
    }

    fn bytes(&mut self, len: u64, what: &str) -> Result<Vec<u8>, Error> {
        // A damaged length must not make us allocate gigabytes: read in bounded steps.
        let mut out = Vec::new();
        let mut left = len;
        let mut chunk = vec![0_u8; 64 * 1024];
        while left > 0 {
            let step = usize::try_from(left.min(chunk.len() as u64))
                .map_err(|_| Error::Damaged(format!("{what} too long")))?;
            let part = chunk
                .get_mut(..step)
                .ok_or_else(|| Error::Damaged(format!("{what} too long")))?;
            self.exact(part)?;
            out.extend_from_slice(part);
            left -= step as u64;
        }
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        let mut buf = [0_u8; 1];
        self.exact(&mut buf)?;
        Ok(buf[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let mut buf = [0_u8; 2];
        self.exact(&mut buf)?;
        Ok(u16::from_be_bytes(buf))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let mut buf = [0_u8; 4];
        self.exact(&mut buf)?;
        Ok(u32::from_be_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let mut buf = [0_u8; 8];
        self.exact(&mut buf)?;
        Ok(u64::from_be_bytes(buf))
    }
}

/// Reads a whole backup, checking marker, versions, structure and checksum, and hands each item
/// to `visit`. Nothing a backup says is trusted before its checksum has been checked, so
/// callers that change anything scan twice: once to verify, once to act.
pub fn scan(
    input: impl Read,
    mut visit: impl FnMut(Item<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Summary> {
    let mut reader = Reading {
        inner: BufReader::new(input),
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut magic = [0_u8; MAGIC.len()];
    reader.exact(&mut magic).map_err(|err| match err {
        Error::Truncated => Error::NotABackup,
        other => other,
    })?;
    if magic != MAGIC {
        return Err(Error::NotABackup.into());
    }
    let mut line = Vec::new();
    (&mut reader.inner)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut line)
        .map_err(Error::Io)?;
    if line.last() != Some(&b'\n') {
        return Err(Error::Header("no complete header line".to_owned()).into());
    }
    reader.hash.update(&line);
    let value: serde_json::Value =
        serde_json::from_slice(&line).map_err(|err| Error::Header(err.to_string()))?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Error::Header("no format version".to_owned()))?;
    if format != u64::from(FORMAT_VERSION) {
        return Err(Error::Format {
            found: u32::try_from(format).unwrap_or(u32::MAX),
        }
        .into());
    }
    let header: Header =
        serde_json::from_value(value).map_err(|err| Error::Header(err.to_string()))?;
    // An older store's records are restored as they are and migrated when the store is opened.
    if !(1..=SCHEMA_VERSION).contains(&header.schema) {
        return Err(Error::Schema {
            found: header.schema,
            casemail: header.casemail.clone(),
        }
        .into());
    }
    let mut records = 0_u64;
    let mut tickets = 0_u64;
    let mut files = Vec::new();
    let mut items = 0_u64;
    loop {
        match reader.u8()? {
            b'F' => {
                let len = reader.u16()?;
                let name = reader.bytes(u64::from(len), "file name")?;
                let name = String::from_utf8(name)
                    .ok()
                    .filter(|n| FILES.contains(&n.as_str()))
                    .ok_or_else(|| Error::Damaged("unknown file in backup".to_owned()))?;
                let len = reader.u64()?;
                let bytes = reader.bytes(len, "file")?;
                visit(Item::File {
                    name: &name,
                    bytes: &bytes,
                })?;
                files.push(name);
            }
            b'R' => {
                let len = reader.u32()?;
                let key = reader.bytes(u64::from(len), "key")?;
                let len = reader.u64()?;
                let value = reader.bytes(len, "record")?;
                if key.starts_with(b"t/") {
                    tickets += 1;
                }
                visit(Item::Record {
                    key: &key,
                    value: &value,
                })?;
                records += 1;
            }
            b'E' => {
                let count = reader.u64()?;
                let expected = reader.hash.clone().finalize();
                let mut found = [0_u8; 32];
                reader.inner.read_exact(&mut found).map_err(|err| {
                    if err.kind() == std::io::ErrorKind::UnexpectedEof {
                        Error::Truncated
                    } else {
                        Error::Io(err)
                    }
                })?;
                if found.as_slice() != expected.as_slice() {
                    return Err(Error::Checksum.into());
                }
                if count != items {
                    return Err(Error::Damaged(format!(
                        "{items} items read, the end marker says {count}"
                    ))
                    .into());
                }
                let mut rest = [0_u8; 1];
                if reader.inner.read(&mut rest).map_err(Error::Io)? != 0 {
                    return Err(Error::Damaged("data after the end marker".to_owned()).into());
                }
                return Ok(Summary {
                    header,
                    records,
                    files,
                    tickets,
                    bytes: reader.bytes + 32 + line.len() as u64,
                });
            }
            other => {
                return Err(Error::Damaged(format!(
                    "unexpected item marker 0x{other:02x} at byte {}",
                    reader.bytes.saturating_add(line.len() as u64)
                ))
                .into());
            }
        }
        items += 1;
    }
}

/// Checks a backup file end to end without using its contents.
pub fn verify(file: &Path) -> anyhow::Result<Summary> {
    let input = std::fs::File::open(file)
        .with_context(|| format!("cannot open backup {}", file.display()))?;
    scan(input, |_| Ok(())).with_context(|| format!("backup {} cannot be used", file.display()))
}

/// Writes a backup file atomically: a temporary file (mode 0600) beside it, filled by `fill`,
/// flushed to disk, read back and verified, then renamed into place and the directory synced.
/// A failure leaves no file behind and an older backup of the same name untouched.
pub fn write_file(
    file: &Path,
    fill: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<Summary> {
    let name = file
        .file_name()
        .with_context(|| format!("{} is not a file name", file.display()))?;
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".partial-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let handle = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        let mut writer = std::io::BufWriter::new(handle);
        fill(&mut writer)?;
        let handle = writer
            .into_inner()
            .map_err(|err| err.into_error())
            .with_context(|| format!("cannot write {}", temp.display()))?;
        handle
            .sync_all()
            .with_context(|| format!("cannot flush {} to disk", temp.display()))?;
        drop(handle);
        let summary = verify(&temp)?;
        std::fs::rename(&temp, file)
            .with_context(|| format!("cannot move the backup into place at {}", file.display()))?;
        sync_dir(&dir)?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Whether `restore` may replace a state directory that already holds tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Refuse,
    Replace,
}

/// Rebuilds `state_dir` from a backup file. The backup is verified first; the store is built
/// beside the live one (`store.restoring`) and moved into place only when complete. Refuses a
/// store that holds data unless `overwrite` says so, and a store a running daemon holds.
pub fn restore(file: &Path, state_dir: &Path, overwrite: Overwrite) -> anyhow::Result<Summary> {
    let summary = verify(file)?;
    store::prepare_state_dir(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    let live = state_dir.join(STORE_DIR);
    if live.exists() {
        let existing = match Store::open(state_dir) {
            Ok(existing) => Some(existing),
            Err(store::Error::Locked { .. }) => anyhow::bail!(
                "the store in {} is in use (is the daemon running?); stop casemail before restoring",
                state_dir.display()
            ),
            Err(err) if overwrite == Overwrite::Refuse => {
                return Err(anyhow::Error::new(err).context(format!(
                    "the store in {} cannot be opened; use --force to replace it",
                    state_dir.display()
                )));
            }
            Err(err) => {
                tracing::warn!(error = %err, "Replacing a store that cannot be opened.");
                None
            }
        };
        if let Some(existing) = existing
            && !existing.is_empty()?
            && overwrite == Overwrite::Refuse
        {
            anyhow::bail!(
                "the store in {} already holds data; use --force to replace it with the backup",
                state_dir.display()
            );
        }
    }
    let staging = state_dir.join(format!("{STORE_DIR}.restoring"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    let mut staged_files = Vec::new();
    // The marker outside sled is rewritten for the restored store: a restored older backup
    // holds fewer tickets than the marker of the store it replaces records.
    let generation = store::marker::read(state_dir)
        .ok()
        .flatten()
        .map_or(0, |m| m.generation)
        .saturating_add(1);
    {
        let store = Store::open_path(staging.clone())
            .with_context(|| format!("cannot create a store in {}", staging.display()))?;
        let input = std::fs::File::open(file)
            .with_context(|| format!("cannot open backup {}", file.display()))?;
        scan(input, |item| {
            match item {
                Item::Record { key, value } => store.restore_record(key, value)?,
                Item::File { name, bytes } => {
                    let path = state_dir.join(format!("{name}.restoring"));
                    write_private(&path, bytes)?;
                    staged_files.push((path, state_dir.join(name)));
                }
            }
            Ok(())
        })
        .with_context(|| format!("backup {} cannot be used", file.display()))?;
        store.flush().context("cannot flush the restored store")?;
        // Recorded before the swap (sled holds this directory until the handle is gone): a
        // crash before the swap leaves the old store refused, and a second `restore --force`
        // finishes the job.
        store
            .record_marker(state_dir, generation)
            .context("cannot record the restored store's marker")?;
    }
    let replaced = state_dir.join(format!("{STORE_DIR}.replaced"));
    if live.exists() {
        if replaced.exists() {
            std::fs::remove_dir_all(&replaced)
                .with_context(|| format!("cannot remove {}", replaced.display()))?;
        }
        std::fs::rename(&live, &replaced).with_context(|| {
            format!("cannot move the old store aside to {}", replaced.display())
        })?;
    }
    std::fs::rename(&staging, &live)
        .with_context(|| format!("cannot move the restored store into {}", live.display()))?;
    for (staged, path) in &staged_files {
        std::fs::rename(staged, path)
            .with_context(|| format!("cannot move {} into place", path.display()))?;
    }
    sync_dir(state_dir)?;
    if replaced.exists() {
        std::fs::remove_dir_all(&replaced)
            .with_context(|| format!("cannot remove the old store {}", replaced.display()))?;
    }
    Ok(summary)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    handle
        .write_all(bytes)
        .and_then(|()| handle.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests;

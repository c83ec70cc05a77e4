//! The marker that says a store exists, kept outside sled.
//!
//! `state_dir/store-marker.json` (JSON, mode 0600) records that a store was created in this state
//! directory, its schema, how many times it was opened (generation) and the last ticket number
//! it held when it was last opened. sled starts a fresh, empty database wherever it finds none,
//! so without the marker a deleted or truncated `store/` would be opened as a new helpdesk with
//! nothing in it, and `/healthz` would say ok. With it, [`super::Store::open`] refuses.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, STORE_DIR};

pub const MARKER_FILE: &str = "store-marker.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub schema: u32,
    /// How many times the store was opened (restores and compactions included).
    pub generation: u64,
    /// The highest ticket number the store held when it was last opened: ticket numbers are
    /// never handed out twice, so a store that holds less lost its tail.
    pub last_ticket: u64,
    /// Whether the store held any record besides its schema version.
    pub holds_data: bool,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(MARKER_FILE)
}

/// The marker, if this state directory has one.
pub fn read(state_dir: &Path) -> Result<Option<Marker>, Error> {
    let path = path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Marker { path, source }),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|err| {
        damaged(
            state_dir,
            format!("its marker {} cannot be read ({err})", path.display()),
        )
    })
}

/// Writes the marker atomically: a temporary file, fsync, rename, fsync of the directory.
pub fn write(state_dir: &Path, marker: &Marker) -> Result<(), Error> {
    let path = path(state_dir);
    let staging = state_dir.join(format!("{MARKER_FILE}.new"));
    let io = |source| Error::Marker {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec(marker).map_err(|source| Error::Encode {
        key: MARKER_FILE.to_owned(),
        source,
    })?;
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .map_err(io)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&staging, &path).map_err(io)?;
    std::fs::File::open(state_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)
}

/// Checks, before sled opens it, that the store the marker records is still there: sled would
/// make a missing or zero-length database into a new, empty one.
pub fn check_files(state_dir: &Path, marker: &Marker) -> Result<(), Error> {
    let dir = state_dir.join(STORE_DIR);
    let db = dir.join("db");
    let problem = if !dir.is_dir() {
        format!("the directory {} is missing", dir.display())
    } else {
        match std::fs::metadata(&db) {
            Err(_) => format!("its database file {} is missing", db.display()),
            Ok(meta) if meta.len() == 0 => format!("its database file {} is empty", db.display()),
            Ok(_) => return Ok(()),
        }
    };
    Err(damaged(
        state_dir,
        format!(
            "{problem}, but a store (generation {}) was created here",
            marker.generation
        ),
    ))
}

/// Checks what the opened store holds against the marker.
pub fn check_contents(
    state_dir: &Path,
    marker: &Marker,
    holds_data: bool,
    last_ticket: u64,
) -> Result<(), Error> {
    if marker.holds_data && !holds_data {
        return Err(damaged(
            state_dir,
            format!(
                "it is empty, but it held data when it was last opened (generation {})",
                marker.generation
            ),
        ));
    }
    if last_ticket < marker.last_ticket {
        return Err(damaged(
            state_dir,
            format!(
                "its last ticket is #{last_ticket}, but it held #{} when it was last opened (generation {}): records were lost",
                marker.last_ticket, marker.generation
            ),
        ));
    }
    Ok(())
}

fn damaged(state_dir: &Path, reason: String) -> Error {
    Error::Damaged {
        path: state_dir.join(STORE_DIR),
        marker: path(state_dir),
        reason,
    }
}

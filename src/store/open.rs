//! Opening the store: the state directory's mode, sled's file lock, the schema version and the
//! marker outside sled that tells a damaged store from a new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::keys::KEY_SCHEMA;
use super::{Error, SCHEMA_VERSION, STORE_DIR, Store, compact, index, marker, migrate};

/// Creates the state directory with mode 0700, or restricts an existing one to it: it holds
/// requesters' mail and the reply secret, so nobody but the service user may enter it.
pub fn prepare_state_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// sled keeps recently used pages in memory; its default (1 GiB) is far more than a helpdesk
/// needs, and operators watch the daemon's memory.
const CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

/// How long opening waits for a lock sled's own threads still hold, and how often it tries.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

impl Store {
    /// Opens (creating if needed) the store in `state_dir/store`. The state directory is
    /// created, or restricted, to mode 0700 first, whichever command opens it. Finishes a
    /// compaction a crash interrupted, and compacts the store when an erasure asked for it
    /// (`compact`).
    ///
    /// A state directory whose marker (`store-marker.json`, outside sled) records a store refuses to
    /// open one that is missing, empty or holds fewer tickets than it did ([`Error::Damaged`]);
    /// every open brings the marker up to date.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        prepare_state_dir(state_dir).map_err(|source| Error::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        compact::recover(state_dir)?;
        let recorded = marker::read(state_dir)?;
        if let Some(recorded) = &recorded {
            marker::check_files(state_dir, recorded)?;
        }
        let store = Store::open_path(state_dir.join(STORE_DIR))?;
        let store = if store.tree.contains_key(compact::KEY_COMPACT)? {
            compact::run(store, state_dir)?
        } else {
            store
        };
        let holds_data = !store.is_empty()?;
        let last_ticket = store.last_ticket_id()?.0;
        if let Some(recorded) = &recorded {
            marker::check_contents(state_dir, recorded, holds_data, last_ticket)?;
        }
        // The marker records only what is on disk: what sled recovered after a crash is
        // flushed first, so no later open can find less without damage.
        store.flush()?;
        let generation = recorded.map_or(0, |m| m.generation).saturating_add(1);
        store.record_marker(state_dir, generation)?;
        Ok(store)
    }

    /// Brings the marker up to date with what the store holds now (the daemon does at a clean
    /// stop, after its last flush), keeping its generation.
    pub fn refresh_marker(&self, state_dir: &Path) -> Result<(), Error> {
        let generation = marker::read(state_dir)?.map_or(1, |m| m.generation);
        self.record_marker(state_dir, generation)
    }

    /// Writes the marker for this store, the one living in `state_dir`, as of now.
    pub fn record_marker(&self, state_dir: &Path, generation: u64) -> Result<(), Error> {
        marker::write(
            state_dir,
            &marker::Marker {
                schema: SCHEMA_VERSION,
                generation,
                last_ticket: self.last_ticket_id()?.0,
                holds_data: !self.is_empty()?,
            },
        )
    }

    /// Whether the store waits to be compacted at its next open (after an erasure).
    pub fn compaction_pending(&self) -> Result<bool, Error> {
        Ok(self.tree.contains_key(compact::KEY_COMPACT)?)
    }

    /// Opens (creating if needed) a store in exactly `path`; `restore` builds a store beside
    /// the live one before it takes its place.
    pub fn open_path(path: PathBuf) -> Result<Store, Error> {
        // sled releases its file lock only when its background threads let go of the database,
        // a moment after the last handle is dropped; a reopen in the same process (compaction,
        // erase, restore) can come sooner on a busy machine. Another process holding the store
        // keeps it locked for longer than this and is reported as `Locked`.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match Store::open_path_once(path.clone()) {
                Err(Error::Locked { .. }) if waited < LOCK_WAIT => {
                    std::thread::sleep(LOCK_RETRY);
                    waited += LOCK_RETRY;
                }
                result => return result,
            }
        }
    }

    fn open_path_once(path: PathBuf) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_CAPACITY)
            // The daemon flushes explicitly at each group commit; the background flusher only
            // bounds how much non-acknowledged work a crash can cost.
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|source| match &source {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    Error::Locked { path: path.clone() }
                }
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    Error::Locked { path: path.clone() }
                }
                _ => Error::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let tree = db.open_tree("casemail")?;
        let store = Store {
            db,
            tree,
            path,
            gate: Arc::new(RwLock::new(())),
            deletions_queued: Arc::new(tokio::sync::Notify::new()),
        };
        store.check_schema()?;
        if store.tree.get(index::KEY_FIGURES)?.is_none() {
            // A store from before the active-ticket index (or a new one): build it once.
            index::rebuild(&store.tree)?;
            store.db.flush()?;
        }
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), Error> {
        match self.tree.get(KEY_SCHEMA)? {
            None => {
                if self.tree.iter().next().is_some() {
                    return Err(Error::Schema {
                        path: self.path.clone(),
                        found: "none".to_owned(),
                        supported: SCHEMA_VERSION,
                    });
                }
                self.tree
                    .insert(KEY_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            Some(found) => {
                let text = String::from_utf8_lossy(&found).into_owned();
                match text.parse::<u32>() {
                    Ok(version) if version == SCHEMA_VERSION => Ok(()),
                    // An older store is brought forward in place, atomically (see `migrate`).
                    Ok(version) if (1..SCHEMA_VERSION).contains(&version) => {
                        migrate::forward(&self.tree, version)?;
                        self.db.flush()?;
                        Ok(())
                    }
                    _ => Err(Error::Schema {
                        path: self.path.clone(),
                        found: text,
                        supported: SCHEMA_VERSION,
                    }),
                }
            }
        }
    }
}

//! Moving a store written by an older casemail to [`super::SCHEMA_VERSION`] when it is opened.
//!
//! Each step rewrites the records whose layout changed and the schema version in one sled
//! batch, which sled applies atomically: a crash leaves the store either wholly at the old
//! version (and the next open migrates it again) or wholly at the new one. A store written by
//! a newer casemail is refused, never migrated.
//!
//! - 1 → 2: the requester index (`r/{address}/{ticket}`) and the per-address loop-safety
//!   counters (`l/r/{address}/{hour}`, `l/a/{address}/{day}`) get the length-prefixed address
//!   segment of [`super::exact`]. In version 1 an address could be a prefix of another's key
//!   (`victim@example.org/…@attacker.example`), so a scan for one address found the other's.

use tracing::info;

use super::{Error, KEY_SCHEMA};

/// Prefixes of keys whose second-to-last segment is an address (schema 1 → 2).
const ADDRESS_KEYED: [&str; 3] = ["r/", "l/r/", "l/a/"];

/// Brings a store at version `found` (older than [`super::SCHEMA_VERSION`]) up to date.
pub(super) fn forward(tree: &sled::Tree, found: u32) -> Result<(), Error> {
    let mut version = found;
    while version < super::SCHEMA_VERSION {
        match version {
            1 => to_2(tree)?,
            other => {
                return Err(Error::Inconsistent(format!(
                    "no migration from store schema version {other}"
                )));
            }
        }
        version = version.saturating_add(1);
    }
    Ok(())
}

fn to_2(tree: &sled::Tree) -> Result<(), Error> {
    let mut batch = sled::Batch::default();
    let mut rewritten = 0_u64;
    for prefix in ADDRESS_KEYED {
        for item in tree.scan_prefix(prefix.as_bytes()) {
            let (key, value) = item?;
            let Some(new_key) = key_2(prefix, &key) else {
                return Err(Error::Inconsistent(format!(
                    "cannot migrate index key {}",
                    String::from_utf8_lossy(&key)
                )));
            };
            batch.remove(key);
            batch.insert(new_key.into_bytes(), value);
            rewritten = rewritten.saturating_add(1);
        }
    }
    batch.insert(KEY_SCHEMA, b"2".to_vec());
    tree.apply_batch(batch)?;
    info!(
        keys = rewritten,
        "Store migrated from schema version 1 to 2."
    );
    Ok(())
}

/// A version-1 key (`{prefix}{address}/{number}`) in version 2's layout. The number after the
/// last `/` is the ticket or the window; everything between is the address.
fn key_2(prefix: &str, key: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(key).ok()?;
    let (address, number) = text.strip_prefix(prefix)?.rsplit_once('/')?;
    Some(format!("{prefix}{}/{number}", super::exact(address)))
}

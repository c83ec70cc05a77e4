//! `casemail verify`: reads every record of a stopped store and reports what cannot be read,
//! and what the marker outside sled (`store/marker.rs`) says is missing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Error, STORE_DIR, Store, marker};

/// Prefixes whose values are JSON; everything else is raw bytes (mail, outbox bodies), a
/// counter or an empty index entry, and only has to be readable.
const JSON_PREFIXES: &[&str] = &[
    "t/",
    "m/",
    "e/",
    "k/",
    "i/",
    "c/",
    "a/",
    "q/",
    "o/",
    "d/",
    "p/",
    "n/",
    "x/",
    "spam/",
    "sent/",
    "replay/",
    "l/s/",
    "meta/figures",
    "meta/backfill/",
    "meta/reconciled/",
];

/// Fixed-width big-endian counters.
const COUNTERS: &[&str] = &["meta/next_ticket", "meta/next_imap_deletion"];

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub store: PathBuf,
    pub marker: Option<marker::Marker>,
    /// What is missing or inconsistent as a whole (the marker's checks, a failed scan).
    pub problems: Vec<String>,
    /// Records read.
    pub records: u64,
    /// Keys whose values cannot be decoded.
    pub unreadable: Vec<String>,
}

/// What `casemail verify` fails with when it found damage (its report is printed first).
#[derive(Debug, thiserror::Error)]
#[error("the store at {} is damaged: {problems} problem(s), {unreadable} unreadable record(s)", .store.display())]
pub struct Damaged {
    pub store: PathBuf,
    pub problems: usize,
    pub unreadable: usize,
}

impl Report {
    /// The error to exit with, when the report found damage.
    pub fn damage(&self) -> Option<Damaged> {
        (!self.is_ok()).then(|| Damaged {
            store: self.store.clone(),
            problems: self.problems.len(),
            unreadable: self.unreadable.len(),
        })
    }

    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.unreadable.is_empty()
    }
}

/// Checks the store of `state_dir`. Fails only when the store cannot be opened at all (a
/// running daemon holds it); damage is in the report.
pub fn verify(state_dir: &Path) -> Result<Report, Error> {
    let mut report = Report {
        store: state_dir.join(STORE_DIR),
        marker: None,
        problems: Vec::new(),
        records: 0,
        unreadable: Vec::new(),
    };
    match marker::read(state_dir) {
        Ok(found) => report.marker = found,
        Err(err) => report.problems.push(err.to_string()),
    }
    if let Some(recorded) = &report.marker
        && let Err(err) = marker::check_files(state_dir, recorded)
    {
        // sled would create a fresh database in its place: nothing more to read.
        report.problems.push(err.to_string());
        return Ok(report);
    }
    if !report.store.is_dir() {
        report
            .problems
            .push(format!("there is no store at {}", report.store.display()));
        return Ok(report);
    }
    let store = Store::open_path(report.store.clone())?;
    // A damaged page can make sled panic while it reads; that is reported, not a crash.
    let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scan(&store)));
    match scanned {
        Ok((records, unreadable, failure)) => {
            report.records = records;
            report.unreadable = unreadable;
            report.problems.extend(failure);
        }
        Err(_) => report.problems.push(
            "reading the store failed part-way (the database panicked on a damaged page)"
                .to_owned(),
        ),
    }
    if let Some(recorded) = &report.marker {
        let checked = store.is_empty().and_then(|empty| {
            let last = store.last_ticket_id()?.0;
            marker::check_contents(state_dir, recorded, !empty, last)
        });
        if let Err(err) = checked {
            report.problems.push(err.to_string());
        }
    }
    Ok(report)
}

/// Every record: how many were read, the keys that could not be decoded, and the error that
/// stopped the scan, if one did.
fn scan(store: &Store) -> (u64, Vec<String>, Option<String>) {
    let mut records = 0_u64;
    let mut unreadable = Vec::new();
    for item in store.tree.iter() {
        let (key, value) = match item {
            Ok(pair) => pair,
            Err(err) => {
                return (
                    records,
                    unreadable,
                    Some(format!("reading stopped after {records} records: {err}")),
                );
            }
        };
        records = records.saturating_add(1);
        let key = String::from_utf8_lossy(&key).into_owned();
        let readable = if COUNTERS.contains(&key.as_str()) {
            value.len() == 8
        } else if key == "meta/schema" {
            std::str::from_utf8(&value).is_ok_and(|v| v.parse::<u32>().is_ok())
        } else if JSON_PREFIXES.iter().any(|prefix| key.starts_with(prefix)) {
            serde_json::from_slice::<serde::de::IgnoredAny>(&value).is_ok()
        } else {
            true
        };
        if !readable {
            unreadable.push(key);
        }
    }
    (records, unreadable, None)
}

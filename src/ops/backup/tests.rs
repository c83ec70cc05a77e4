use super::*;
use crate::ids::TicketId;

fn populated() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    store
        .write(|tx| {
            let id = tx.allocate_ticket_id()?;
            tx.set_rota("timezone = \"UTC\"\n")?;
            tx.index_requester("a@example.org", id)?;
            Ok(())
        })
        .expect("write");
    std::fs::write(dir.path().join("reply-secret"), [7_u8; 32]).expect("secret");
    (dir, store)
}

fn backup_bytes(store: &Store, state_dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_snapshot(store, state_dir, &mut out).expect("backup");
    out
}

fn scan_bytes(bytes: &[u8]) -> anyhow::Result<Summary> {
    scan(bytes, |_| Ok(()))
}

#[test]
fn a_backup_holds_every_record_and_the_secret() {
    let (dir, store) = populated();
    let bytes = backup_bytes(&store, dir.path());
    let mut records = Vec::new();
    let mut files = Vec::new();
    let summary = scan(bytes.as_slice(), |item| {
        match item {
            Item::Record { key, value } => records.push((key.to_vec(), value.to_vec())),
            Item::File { name, bytes } => files.push((name.to_owned(), bytes.to_vec())),
        }
        Ok(())
    })
    .expect("valid");
    let mut expected = Vec::new();
    store
        .snapshot(|k, v| -> Result<(), ()> {
            expected.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .map_err(|_| "snapshot")
        .expect("snapshot");
    assert_eq!(records, expected);
    assert_eq!(files, vec![("reply-secret".to_owned(), vec![7_u8; 32])]);
    assert_eq!(summary.records, expected.len() as u64);
    assert_eq!(summary.header.format, FORMAT_VERSION);
    assert_eq!(summary.header.schema, SCHEMA_VERSION);
    assert_eq!(summary.bytes, bytes.len() as u64);
}

#[test]
fn damaged_truncated_and_foreign_files_are_refused_with_the_reason() {
    let (dir, store) = populated();
    let bytes = backup_bytes(&store, dir.path());
    let reason = |bytes: &[u8]| format!("{:#}", scan_bytes(bytes).expect_err("refused"));

    for cut in [
        bytes.len() - 1,
        bytes.len() - 40,
        bytes.len() / 2,
        MAGIC.len() + 60,
    ] {
        let text = reason(&bytes[..cut]);
        assert!(
            text.contains("truncated") || text.contains("header"),
            "cut at {cut}: {text}"
        );
    }
    let mut flipped = bytes.clone();
    let middle = bytes.len() - 60;
    flipped[middle] ^= 0x20;
    assert!(
        reason(&flipped).contains("checksum"),
        "{}",
        reason(&flipped)
    );

    assert!(reason(b"From: someone\r\n\r\nnot a backup").contains("not a casemail backup"));
    assert!(reason(b"").contains("not a casemail backup"));

    let text = String::from_utf8_lossy(&bytes).replacen("\"format\":1", "\"format\":2", 1);
    assert!(reason(text.as_bytes()).contains("format version 2 is not supported"));
    let other_schema = String::from_utf8_lossy(&bytes).replacen(
        &format!("\"schema\":{SCHEMA_VERSION}"),
        "\"schema\":99",
        1,
    );
    assert!(reason(other_schema.as_bytes()).contains("schema version 99"));

    let mut longer = bytes.clone();
    longer.push(b'x');
    assert!(reason(&longer).contains("after the end marker"));
}

#[test]
fn restore_rebuilds_the_store_and_refuses_to_overwrite_data_without_force() {
    let (dir, store) = populated();
    let file = dir.path().join("casemail.backup");
    write_file(&file, |out| {
        write_snapshot(&store, dir.path(), out)?;
        Ok(())
    })
    .expect("backup file");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let target = tempfile::tempdir().expect("target");
    let state = target.path().join("state");
    restore(&file, &state, Overwrite::Refuse).expect("restore into an empty directory");
    {
        let restored = Store::open(&state).expect("open restored");
        assert_eq!(restored.last_ticket_id().expect("counter"), TicketId(1));
        assert_eq!(
            restored
                .tickets_of_requester("a@example.org")
                .expect("index"),
            vec![TicketId(1)]
        );
        assert_eq!(
            restored.rota().expect("rota").as_deref(),
            Some("timezone = \"UTC\"\n")
        );
    }
    assert_eq!(
        std::fs::read(state.join("reply-secret")).expect("secret"),
        vec![7_u8; 32]
    );
    let err = restore(&file, &state, Overwrite::Refuse).expect_err("holds data now");
    assert!(format!("{err:#}").contains("--force"), "{err:#}");
    restore(&file, &state, Overwrite::Replace).expect("forced");

    // A running daemon's store is never replaced.
    let held = Store::open(&state).expect("open");
    let err = restore(&file, &state, Overwrite::Replace).expect_err("locked");
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
    drop(held);
}

#[test]
fn after_a_rotation_a_backup_carries_the_retired_key_too() {
    let (dir, store) = populated();
    let at = jiff::Timestamp::from_second(1_800_000_000).expect("time");
    crate::casework::token::Secret::rotate(dir.path(), at).expect("rotate");
    let current = std::fs::read(dir.path().join("reply-secret")).expect("secret");
    let retired = std::fs::read(dir.path().join("reply-secret.previous")).expect("retired");
    let file = dir.path().join("casemail.backup");
    write_file(&file, |out| {
        write_snapshot(&store, dir.path(), out)?;
        Ok(())
    })
    .expect("backup file");
    let target = tempfile::tempdir().expect("target");
    let state = target.path().join("state");
    restore(&file, &state, Overwrite::Refuse).expect("restore");
    assert_eq!(
        std::fs::read(state.join("reply-secret")).expect("secret"),
        current
    );
    assert_eq!(
        std::fs::read(state.join("reply-secret.previous")).expect("retired"),
        retired
    );
    assert_eq!(retired.get(..32), Some(&[7_u8; 32][..]));
}

#[test]
fn a_backup_of_a_schema_1_store_restores_and_is_migrated_when_opened() {
    // A store as schema 1 wrote it: the requester's address in the key as it was.
    let old = tempfile::tempdir().expect("temp dir");
    let store = Store::open(old.path()).expect("open");
    let ticket = serde_json::json!({
        "id": 1, "status": "open", "subject": "Housing", "requester": "a@example.org",
        "requester_name": null, "owner": null, "merged_into": null,
        "participants": ["a@example.org"], "flags": [], "created": "2026-01-01T00:00:00Z",
        "updated": "2026-01-01T00:00:00Z", "message_count": 0, "event_count": 0
    });
    store
        .restore_record(b"t/00000000000000000001", ticket.to_string().as_bytes())
        .expect("ticket");
    store
        .restore_record(b"r/a@example.org/00000000000000000001", b"")
        .expect("index");
    store.restore_record(b"meta/schema", b"1").expect("schema");
    let mut bytes = backup_bytes(&store, old.path());
    drop(store);
    // Its header says schema 1, as that casemail wrote it, with the checksum to match.
    let header = format!("\"schema\":{SCHEMA_VERSION}");
    let at = bytes
        .windows(header.len())
        .position(|w| w == header.as_bytes())
        .expect("header");
    bytes.splice(at..at + header.len(), b"\"schema\":1".iter().copied());
    let body = bytes.len() - 32;
    let digest = Sha256::digest(&bytes[..body]);
    bytes.truncate(body);
    bytes.extend_from_slice(&digest);
    assert_eq!(scan_bytes(&bytes).expect("valid").header.schema, 1);

    let file = old.path().join("old.backup");
    std::fs::write(&file, &bytes).expect("write");
    let new = tempfile::tempdir().expect("temp dir");
    restore(&file, new.path(), Overwrite::Refuse).expect("restore");
    let restored = Store::open(new.path()).expect("open migrates");
    assert_eq!(
        restored
            .tickets_of_requester("a@example.org")
            .expect("index"),
        vec![TicketId(1)]
    );
    assert!(restored.ticket(TicketId(1)).expect("read").is_some());
}

#[test]
fn restore_force_brings_back_a_deleted_store_and_an_older_backup_opens() {
    let (dir, store) = populated();
    let file = dir.path().join("casemail.backup");
    write_file(&file, |out| {
        write_snapshot(&store, dir.path(), out)?;
        Ok(())
    })
    .expect("backup file");
    // More tickets after the backup, and a reopen that records them in the marker.
    store
        .write(|tx| tx.allocate_ticket_id().map(drop))
        .expect("write");
    store.flush().expect("flush");
    drop(store);
    drop(reopen(dir.path()).expect("reopen"));

    std::fs::remove_dir_all(dir.path().join(crate::store::STORE_DIR)).expect("delete");
    assert!(reopen(dir.path()).is_err(), "a deleted store is refused");
    restore(&file, dir.path(), Overwrite::Replace).expect("restore --force");
    let restored = reopen(dir.path()).expect("the older backup opens");
    assert_eq!(restored.last_ticket_id().expect("counter"), TicketId(1));
}

/// Opens the store of `state_dir` again: sled lets go of its lock a moment after the last
/// handle of the previous open is dropped.
fn reopen(state_dir: &Path) -> Result<Store, store::Error> {
    for _ in 0..100 {
        match Store::open(state_dir) {
            Err(store::Error::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other,
        }
    }
    Store::open(state_dir)
}

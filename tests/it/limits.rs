//! Bounded resources on the real bench: the offline CLI keeps a fresh state directory private,
//! a message over `[ingest] max_message_size` becomes a flagged headers-only ticket while the
//! whole message stays on the server, and idle clients of the health and metrics port can
//! neither lock the CLI out of the control socket nor hold a slot for long.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::daemon::Daemon;
use crate::harness;
use crate::routing::{add_agent, cli_ok};

/// Every path under `dir` (itself included) whose mode lets anyone but the owner in.
fn loose_modes(dir: &Path) -> Vec<String> {
    let mut loose = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = metadata.permissions().mode() & 0o777;
        let allowed = if metadata.is_dir() { 0o700 } else { 0o600 };
        if mode & !allowed != 0 {
            loose.push(format!("{} {mode:o}", path.display()));
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("dir entry").path());
            }
        }
    }
    loose
}

#[tokio::test]
async fn the_offline_cli_and_restore_keep_a_fresh_state_directory_private() {
    let bench = harness::shared().await;
    let daemon = Daemon::new(bench, &[]);
    let amina = bench.new_account("amina");
    assert!(!daemon.state_dir.exists());

    // No daemon runs: the CLI opens the store itself and creates the state directory.
    add_agent(&daemon, "amina", &amina, "agent");
    assert!(daemon.state_dir.join("store").is_dir());
    assert_eq!(loose_modes(&daemon.state_dir), Vec::<String>::new());

    // A directory someone loosened is restricted again by the next command.
    std::fs::set_permissions(&daemon.state_dir, std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    cli_ok(&daemon, &["agent", "list"]);
    assert_eq!(loose_modes(&daemon.state_dir), Vec::<String>::new());

    // A restore into a new directory, from a backup written offline.
    let scratch = tempfile::tempdir().expect("temp dir");
    let backup = scratch.path().join("casemail.backup");
    cli_ok(&daemon, &["backup", backup.to_str().expect("utf-8 path")]);
    let restored = scratch.path().join("restored");
    cli_ok(
        &daemon,
        &[
            "restore",
            backup.to_str().expect("utf-8 path"),
            "--state-dir",
            restored.to_str().expect("utf-8 path"),
        ],
    );
    assert!(restored.join("store").is_dir());
    assert_eq!(loose_modes(&restored), Vec::<String>::new());
    assert_eq!(loose_modes(&backup), Vec::<String>::new());
}

#[tokio::test]
async fn idle_clients_of_the_metrics_port_do_not_lock_the_cli_out() {
    use tokio::io::AsyncReadExt as _;
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    daemon.start();
    crate::control::wait_until_serving(&mut daemon).await;
    let addr = daemon.http_addr().expect("the HTTP address is recorded");

    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect to the metrics port"),
        );
    }
    // The daemon holds the store, so this answer came through the control socket.
    let listed = cli_ok(&daemon, &["ticket", "list"]);
    assert_eq!(listed, "no tickets\n");
    daemon.assert_running();

    // The daemon drops every idle client within a few seconds, and serves again after.
    let started = std::time::Instant::now();
    for stream in &mut idle {
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(15), stream.read(&mut byte))
            .await
            .expect("the daemon closes an idle client within 15 s");
        assert_eq!(read.unwrap_or(0), 0);
    }
    let waited = started.elapsed();
    let (status, body) = daemon.http_get("/healthz").await.expect("/healthz answers");
    assert!(matches!(status, 200 | 503), "{status} {body}");
    eprintln!("idle clients dropped after {waited:?}");
    daemon.terminate().await.expect("stop");
}

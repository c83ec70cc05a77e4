//! Running under systemd: readiness once IMAP is reached, watchdog pings, reload on SIGHUP,
//! all spoken over a real `$NOTIFY_SOCKET` datagram socket as systemd provides it.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::harness;

/// Collects what the daemon tells systemd until `until` holds or the time runs out.
fn collect(socket: &UnixDatagram, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline && !until(&seen) {
        if let Ok(n) = socket.recv(&mut buffer) {
            seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }
    seen
}

#[tokio::test]
async fn systemd_hears_ready_watchdog_reload_and_stopping() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    daemon.start_with_env(&[
        ("NOTIFY_SOCKET", path.to_string_lossy().into_owned()),
        ("WATCHDOG_USEC", "400000".to_owned()),
    ]);
    let seen = collect(&socket, |seen| {
        seen.iter().any(|s| s.starts_with("READY=1"))
            && seen.iter().filter(|s| *s == "WATCHDOG=1").count() >= 2
    });
    assert!(
        seen.iter().any(|s| s.starts_with("READY=1")),
        "no READY: {seen:?}\n{}",
        daemon.log_tail()
    );
    assert!(
        seen.iter().filter(|s| *s == "WATCHDOG=1").count() >= 2,
        "no watchdog pings: {seen:?}"
    );

    let pid = daemon.pid().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    let seen = collect(&socket, |seen| seen.iter().any(|s| s == "RELOADING=1"));
    assert!(
        seen.iter().any(|s| s == "RELOADING=1"),
        "no reload: {seen:?}"
    );

    daemon.terminate().await.expect("stop");
    let seen = collect(&socket, |seen| seen.iter().any(|s| s == "STOPPING=1"));
    assert!(
        seen.iter().any(|s| s == "STOPPING=1"),
        "no STOPPING: {seen:?}"
    );
}

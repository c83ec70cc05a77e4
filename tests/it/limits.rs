//! Bounded resources on the real bench: the offline CLI keeps a fresh state directory private,
//! a message over `[ingest] max_message_size` becomes a flagged headers-only ticket while the
//! whole message stays on the server, and idle clients of the health and metrics port can
//! neither lock the CLI out of the control socket nor hold a slot for long.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use std::time::Duration;

use casemail::mail::parse::{ParseLimits, parse};

use crate::bridge::register;
use crate::daemon::Daemon;
use crate::harness;
use crate::ingest::{mail, wait_drained};
use crate::routing::{add_agent, cli_ok, mail_containing};

const PATIENCE: Duration = Duration::from_secs(60);

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

#[tokio::test]
async fn a_message_over_the_size_cap_is_a_flagged_headers_only_ticket_and_stays_on_the_server() {
    let bench = harness::shared().await;
    let size = |text: &str| toml::Value::String(text.to_owned());
    let mut daemon = Daemon::live(
        bench,
        &[
            ("ingest", "max_message_size", size("64KiB")),
            // Two of the small messages below per UID FETCH.
            ("ingest", "fetch_bytes", size("96KiB")),
        ],
    );
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();

    // 280 KB of scans, then three ordinary messages of 40 KB from other people.
    let scans = format!(
        "{}END-OF-THE-SCANS\r\n",
        format!("{}\r\n", "A".repeat(68)).repeat(4000)
    );
    let big_sender = bench.new_account("big");
    let big = mail(
        &big_sender.address,
        &help.address,
        "Scans of my papers",
        Some("scans@phone.example"),
        "",
        &scans,
    );
    bench
        .send_mail(&big_sender.address, &[&help.address], &big)
        .await
        .expect("send the large message");
    let letter = format!("{}\r\n", "b".repeat(78)).repeat(500);
    for number in 1..=3 {
        let sender = bench.new_account(&format!("small{number}"));
        let raw = mail(
            &sender.address,
            &help.address,
            &format!("Letter {number}"),
            Some(&format!("letter-{number}@phone.example")),
            "",
            &letter,
        );
        bench
            .send_mail(&sender.address, &[&help.address], &raw)
            .await
            .expect("send");
    }
    bench
        .wait_for_mail(&help, "INBOX", 4, PATIENCE)
        .await
        .expect("all four delivered");
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], 4).await;

    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 4, "{tickets:?}");
    let flagged: Vec<u64> = tickets
        .iter()
        .filter(|t| {
            t["flags"]
                .as_array()
                .is_some_and(|flags| flags.iter().any(|f| f == "too_large"))
        })
        .map(|t| t["number"].as_u64().expect("number"))
        .collect();
    assert_eq!(flagged.len(), 1, "{tickets:?}");
    let detail = daemon.ticket(flagged[0]);
    assert_eq!(detail["subject"], "Scans of my papers", "{detail}");
    let message = &detail["messages"][0];
    let text = message["text"].as_str().expect("text");
    assert!(
        text.contains("only its header fields were fetched") && text.contains("\"Processed\""),
        "{text}"
    );
    assert!(!text.contains("AAAA"), "the body was never fetched: {text}");
    assert!(
        message["anomalies"]
            .as_array()
            .expect("anomalies")
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.contains("max_message_size"))),
        "{message}"
    );
    // The whole message is on the server, in the processed folder, byte for byte.
    let processed = bench.list(&help, "Processed").await.expect("list");
    let kept = processed
        .iter()
        .find(|m| m.contains("Message-ID: <scans@phone.example>"))
        .expect("the large message is in the processed folder");
    assert!(kept.contains("END-OF-THE-SCANS"));
    assert!(kept.raw.len() > 280_000, "{}", kept.raw.len());

    // Three whole messages of 40 KB under a 96 KiB fetch bound take two UID FETCH commands;
    // the large one was asked for by its header only.
    let log = std::fs::read_to_string(&daemon.log_path).expect("daemon log");
    let body_fetches = log
        .lines()
        .filter(|line| line.contains("UID FETCH.") && !line.contains("RFC822.SIZE"))
        .count();
    assert!(body_fetches >= 2, "{body_fetches} fetches:\n{log}");
    assert!(log.contains("fetching its header fields only"), "{log}");

    // Everything is filed, so no fetched mail is held; the bound is the larger of the two.
    let (status, figures) = daemon.http_get("/metrics").await.expect("/metrics");
    assert_eq!(status, 200);
    assert!(
        figures.contains("\ncasemail_fetch_held_bytes 0\n"),
        "{figures}"
    );
    assert!(
        figures.contains("\ncasemail_fetch_budget_bytes 98304\n"),
        "{figures}"
    );

    // The caseworker is told, in words, where the message is.
    let notification = mail_containing(bench, &mut daemon, &amina, "Scans of my papers").await;
    let read = parse(&notification.raw, &ParseLimits::default());
    assert!(
        read.text.contains("only its header fields were fetched"),
        "{}",
        read.text
    );
    assert!(read.attachments.is_empty(), "{:?}", read.attachments);

    // The daemon goes on; after a restart the large message is not fetched again.
    daemon.terminate().await.expect("stop");
    daemon.start();
    let later_sender = bench.new_account("later");
    let later = mail(
        &later_sender.address,
        &help.address,
        "One more",
        Some("later@phone.example"),
        "",
        "Hello again.",
    );
    bench
        .send_mail(&later_sender.address, &[&help.address], &later)
        .await
        .expect("send");
    wait_drained(bench, &mut daemon, &["INBOX"], 5).await;
    assert_eq!(daemon.tickets().len(), 5);
    let flagged_after: usize = daemon
        .tickets()
        .iter()
        .filter(|t| {
            t["flags"]
                .as_array()
                .is_some_and(|flags| flags.iter().any(|f| f == "too_large"))
        })
        .count();
    assert_eq!(flagged_after, 1);
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn erasure_never_fetches_a_copy_over_the_size_cap_whole() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[(
            "ingest",
            "max_message_size",
            toml::Value::String("64KiB".to_owned()),
        )],
    );
    let farah = bench.new_account("farah");
    let help = daemon.help.clone();
    daemon.start();
    // Two messages without a Message-ID, so erasure looks for them in the processed folder by
    // sender and content: one ordinary, one over the cap.
    let scans = format!("{}\r\n", "C".repeat(68)).repeat(4000);
    let messages = [
        mail(
            &farah.address,
            &help.address,
            "Interview",
            None,
            "",
            "Farah-small-text",
        ),
        mail(
            &farah.address,
            &help.address,
            "Scans",
            None,
            "",
            &format!("{scans}Farah-big-text"),
        ),
    ];
    for (count, raw) in messages.iter().enumerate() {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
        wait_drained(bench, &mut daemon, &["INBOX"], count + 1).await;
    }
    let processed = bench.list(&help, "Processed").await.expect("list");
    let small_uid = processed
        .iter()
        .find(|m| m.contains("Farah-small-text"))
        .expect("the small message is processed")
        .uid;

    let done = cli_ok(&daemon, &["erase", "--requester", &farah.address]);
    assert!(done.contains("removed"), "{done}");
    let gone = harness::wait_until(PATIENCE, || {
        let help = help.clone();
        async move {
            bench.list(&help, "Processed").await.is_ok_and(|list| {
                !list.iter().any(|m| m.contains("Farah-small-text"))
                    && list.iter().any(|m| m.contains("Farah-big-text"))
            })
        }
    })
    .await;
    if let Err(err) = gone {
        panic!("{err:#}\n{}", daemon.log_tail());
    }
    // Only the ordinary copy was fetched whole to compare its content.
    let log = std::fs::read_to_string(&daemon.log_path).expect("daemon log");
    let checked: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("UID FETCH for a content check."))
        .collect();
    assert!(!checked.is_empty(), "{log}");
    for line in checked {
        assert!(
            line.contains(&format!("uids={small_uid}"))
                && !line.contains(&format!("uids={small_uid}:"))
                && !line.contains(&format!("uids={small_uid},")),
            "{line}"
        );
    }
    daemon.terminate().await.expect("stop");
}

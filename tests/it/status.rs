//! `casemail status` against the real daemon: with the daemon up it reports the daemon's own
//! view (folders logged in, last IMAP contact, what the relay sent) and the store's figures
//! through the control socket, exits 0 and its JSON parses; with the daemon stopped it says so,
//! exits non-zero, and still shows what the store holds.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use casemail::ids::{MessageId, TicketId, Uid, UidValidity};
use casemail::model::{DeadLetter, OutboxEntry, OutboxKind, QuarantineEntry, Source};
use casemail::store::Store;

use crate::control::wait_until_serving;
use crate::daemon::Daemon;
use crate::harness;
use crate::ingest::mail;
use crate::routing::{ALWAYS, add_agent, import_rota, mail_containing};

const PATIENCE: Duration = Duration::from_secs(60);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn status_json(daemon: &Daemon) -> (Output, Value) {
    let output = daemon.cli(&["status", "--json"]);
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "status --json printed no JSON ({err}): {}\n{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (output, value)
}

/// A quarantined message and a dead letter the operator already knows of, so the figures are
/// not all zero.
fn seed_store(daemon: &Daemon) {
    let store = Store::open(&daemon.state_dir).expect("open the store");
    let now = jiff::Timestamp::now();
    let quarantined = QuarantineEntry {
        source: Source {
            mailbox: "INBOX".to_owned(),
            uidvalidity: UidValidity(1),
            uid: Uid(4242),
        },
        at: now,
        attempts: 3,
        reason: "parsing took longer than 10s".to_owned(),
        size: 5,
    };
    let dead = DeadLetter {
        entry: OutboxEntry {
            id: 77,
            kind: OutboxKind::Relay,
            ticket: Some(TicketId(1)),
            message_id: MessageId::parse("dead-77@casemail.test").expect("id"),
            envelope_from: daemon.help.address.clone(),
            recipients: vec!["gone@casemail.test".to_owned()],
            created: now,
            attempts: 1,
            next_attempt: now,
            last_error: Some("550 no such user".to_owned()),
        },
        failed_at: now,
        error: "550 no such user".to_owned(),
        reported: true,
        refused_code: Some(550),
    };
    store
        .write(|tx| {
            tx.put_quarantine(&quarantined, b"raw!\n")?;
            tx.put_dead_letter(&dead, Some(b"raw\r\n"))
        })
        .expect("seed");
    store.flush().expect("flush");
}

#[tokio::test]
async fn status_reports_the_daemons_view_and_the_store_with_the_daemon_up_and_down() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    let requester = bench.new_account("requester");
    seed_store(&daemon);
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );

    // Before the first start: no daemon, and the store as the CLI wrote it.
    let (output, before) = status_json(&daemon);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(before["daemon"]["running"], false);
    assert_eq!(before["store"]["quarantine"], 1);

    daemon.start();
    wait_until_serving(&mut daemon).await;
    let help = daemon.help.clone();
    let request = mail(
        &requester.address,
        &help.address,
        "Housing appeal",
        Some(&format!("status-{}@phone.example", rand::random::<u32>())),
        "",
        "The council turned down my application.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "Housing appeal").await;

    // Healthy once every watched folder has logged in and the relay has recorded the send.
    let last = std::sync::Mutex::new(None);
    let shared: &Daemon = &daemon;
    let healthy = harness::wait_until(PATIENCE, || {
        let last = &last;
        async move {
            let (output, value) = status_json(shared);
            let done = output.status.success() && value["smtp"]["sent"].as_u64() >= Some(1);
            *last.lock().expect("not poisoned") = Some((stderr(&output), value));
            done
        }
    })
    .await;
    let (_, up) = last
        .into_inner()
        .expect("not poisoned")
        .expect("status ran");
    daemon.assert_running();
    assert!(
        healthy.is_ok(),
        "status never healthy: {up:#}\n{}",
        daemon.log_tail()
    );
    assert_eq!(up["healthy"], true);
    assert_eq!(up["daemon"]["running"], true);
    assert!(up["daemon"]["started"].is_string(), "{up:#}");
    assert_eq!(up["daemon"]["problems"], serde_json::json!([]));
    let folders = up["imap"]["folders"].as_array().expect("folders");
    assert!(!folders.is_empty());
    for folder in folders {
        assert_eq!(folder["state"], "up", "{up:#}");
        let contact: jiff::Timestamp = folder["last_contact"]
            .as_str()
            .expect("a last contact")
            .parse()
            .expect("an RFC 3339 time");
        let started: jiff::Timestamp = up["daemon"]["started"]
            .as_str()
            .expect("started")
            .parse()
            .expect("an RFC 3339 time");
        assert!(contact >= started, "{up:#}");
    }
    assert_eq!(up["smtp"]["state"], "ok", "{up:#}");
    assert_eq!(up["smtp"]["failed"], 0);
    assert_eq!(up["store"]["read_by"], "daemon");
    assert_eq!(up["store"]["quarantine"], 1);
    assert_eq!(up["store"]["dead_letters"], 1);
    let tickets: u64 = up["store"]["tickets"]
        .as_object()
        .expect("tickets by status")
        .values()
        .map(|count| count.as_u64().expect("a count"))
        .sum();
    assert_eq!(tickets, 1, "{up:#}");
    assert_eq!(up["oauth2"], Value::Null);

    let text = daemon.cli(&["status"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let human = stdout(&text);
    assert!(human.starts_with("daemon        running since "), "{human}");
    assert!(human.contains("\nhealth        ok\n"), "{human}");
    assert!(human.contains("INBOX: up since "), "{human}");
    assert!(human.contains("; last contact "), "{human}");
    assert!(human.contains("): ok; since start "), "{human}");
    assert!(
        human.contains("dead letters  1 (casemail deadletter list)"),
        "{human}"
    );
    assert!(
        human.contains("quarantine    1 message(s) (casemail quarantine list)"),
        "{human}"
    );
    assert!(human.contains("(read by the daemon)"), "{human}");

    daemon.terminate().await.expect("stop");

    // Down: said so, non-zero, and the store's figures still there.
    let (output, down) = status_json(&daemon);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the daemon is not running"),
        "{}",
        stderr(&output)
    );
    assert_eq!(down["daemon"]["running"], false);
    assert_eq!(down["healthy"], false);
    assert_eq!(down["daemon"]["started"], Value::Null);
    assert_eq!(down["smtp"]["state"], "unknown");
    assert_eq!(down["smtp"]["sent"], Value::Null);
    for folder in down["imap"]["folders"].as_array().expect("folders") {
        assert_eq!(folder["state"], "unknown");
    }
    assert_eq!(down["store"]["read_by"], "direct");
    for key in [
        "tickets",
        "outbox",
        "dead_letters",
        "quarantine",
        "last_digest",
    ] {
        assert_eq!(down["store"][key], up["store"][key], "store.{key}");
    }
    let text = daemon.cli(&["status"]);
    assert_eq!(text.status.code(), Some(1));
    let human = stdout(&text);
    assert!(human.starts_with("daemon        not running"), "{human}");
    assert!(
        human.contains("unknown while the daemon is not running"),
        "{human}"
    );
    assert!(
        human.contains("(read directly: the daemon is not running)"),
        "{human}"
    );
    assert!(
        human.contains("dead letters  1 (casemail deadletter list)"),
        "{human}"
    );
}

//! Silent failures made loud, on the bench: reconciliation reports mail that ingest passed
//! over (and not mail that is merely waiting), the lag metrics count what waits in a paused
//! folder, and a SIGTERM while the relay is sending neither loses nor doubles a message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use casemail::ids::{Uid, UidValidity};
use casemail::mail::parse::header_message_id;
use casemail::model::Cursor;
use casemail::store::Store;

use crate::control::{parse_metrics, sample, wait_until_serving};
use crate::daemon::{Daemon, config_text};
use crate::harness::{self, Bench};
use crate::ingest::{mail, wait_drained};
use crate::routing::{ALWAYS, add_agent, import_rota};

const PATIENCE: Duration = Duration::from_secs(60);
const NOTICE_SUBJECT: &str = "in the mailbox are in no ticket";

/// Polls `/metrics` until `check` holds, and returns the samples.
async fn wait_for_metrics(
    daemon: &mut Daemon,
    what: &str,
    check: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let last = std::sync::Mutex::new(String::new());
    let shared: &Daemon = daemon;
    let check = &check;
    let reached = harness::wait_until(PATIENCE, || {
        let last = &last;
        async move {
            let Ok((200, text)) = shared.http_get("/metrics").await else {
                return false;
            };
            let hit = check(&parse_metrics(&text));
            *last.lock().expect("not poisoned") = text;
            hit
        }
    })
    .await;
    daemon.assert_running();
    let text = last.into_inner().expect("not poisoned");
    if let Err(err) = reached {
        panic!(
            "{err:#}: /metrics never showed {what}; last scrape:\n{text}\ncasemail log:\n{}",
            daemon.log_tail()
        );
    }
    parse_metrics(&text)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> Option<f64> {
    samples.get(series).copied()
}

fn folder_series(name: &str, folder: &str) -> String {
    format!("{name}{{folder=\"{folder}\"}}")
}

/// The Message-IDs of the messages in `account`'s `folder` whose bytes contain `needle`.
async fn message_ids(
    bench: &Bench,
    account: &harness::Account,
    folder: &str,
    needle: &str,
) -> Vec<String> {
    bench
        .list(account, folder)
        .await
        .expect("list folder")
        .iter()
        .filter(|m| m.contains(needle))
        .map(|m| {
            header_message_id(&m.raw)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn reconciliation_reports_a_passed_over_message_once_and_never_pending_mail() {
    let bench = harness::shared().await;
    let overrides = [
        (
            "imap",
            "folders",
            toml::Value::Array(vec!["INBOX".into(), "Held".into()]),
        ),
        (
            "imap",
            "paused_folders",
            toml::Value::Array(vec!["Held".into()]),
        ),
        ("reconcile", "every", toml::Value::String("1s".to_owned())),
    ];
    let mut daemon = Daemon::live(bench, &overrides);
    let help = daemon.help.clone();
    let coordinator = bench.new_account("coordinator");
    add_agent(&daemon, "carla", &coordinator, "coordinator");
    let requester = bench.new_account("requester");

    // An ordinary message is imported and moved to the processed folder.
    daemon.start();
    wait_until_serving(&mut daemon).await;
    let ordinary = mail(
        &requester.address,
        &help.address,
        "Housing benefit form",
        Some("ordinary-1@phone.example"),
        "",
        "Which page do I sign?",
    );
    bench
        .append(&help, "INBOX", &ordinary, &[])
        .await
        .expect("append");
    wait_drained(bench, &mut daemon, &["INBOX"], 1).await;
    daemon.terminate().await.expect("clean stop");

    // While the daemon is down, a message lands in the INBOX and the stored cursor is moved past
    // it, as a lost commit or a store restored from an older backup would leave things: ingest
    // will never fetch it. Another message is moved into the processed folder by hand before
    // casemail read it, and a third waits in the paused folder.
    let passed_over = mail(
        &requester.address,
        &help.address,
        "Eviction notice PRIVATE-SUBJECT",
        Some("passed-over-1@phone.example"),
        "",
        "PRIVATE-BODY the bailiffs come on Monday.",
    );
    bench
        .append(&help, "INBOX", &passed_over, &[])
        .await
        .expect("append");
    let hand_moved = mail(
        &requester.address,
        &help.address,
        "Council tax",
        Some("hand-moved-1@phone.example"),
        "",
        "Moved by a colleague.",
    );
    bench
        .append(&help, "Processed", &hand_moved, &[])
        .await
        .expect("append");
    let pending = mail(
        &requester.address,
        &help.address,
        "Waiting in Held",
        Some("pending-1@phone.example"),
        "",
        "Not read yet.",
    );
    bench
        .append(&help, "Held", &pending, &[])
        .await
        .expect("append");
    let inbox = bench.list(&help, "INBOX").await.expect("list INBOX");
    assert_eq!(
        inbox.len(),
        1,
        "only the passed-over message is in the INBOX"
    );
    let passed_uid = inbox[0].uid;
    let uidvalidity = bench
        .uidvalidity(&help, "INBOX")
        .await
        .expect("uidvalidity");
    {
        let store = Store::open(&daemon.state_dir).expect("open the store");
        store
            .write(|tx| {
                tx.set_cursor(
                    "INBOX",
                    &Cursor {
                        uidvalidity: UidValidity(uidvalidity),
                        last_uid: Uid(passed_uid),
                    },
                )
            })
            .expect("move the cursor");
        store.flush().expect("flush");
    }

    daemon.start();
    wait_until_serving(&mut daemon).await;
    let samples = wait_for_metrics(&mut daemon, "a reconciliation with missing mail", |s| {
        value(s, "casemail_reconcile_runs_total{result=\"ok\"}").unwrap_or(0.0) >= 1.0
            && value(s, &folder_series("casemail_reconcile_missing", "INBOX")) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(
            &samples,
            &folder_series("casemail_reconcile_missing", "Processed")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            &folder_series("casemail_reconcile_missing", "Held")
        ),
        0.0,
        "mail waiting in a paused folder is pending, not missing"
    );
    assert_eq!(
        sample(
            &samples,
            &folder_series("casemail_imap_lag_messages", "Held")
        ),
        1.0
    );
    assert!(sample(&samples, "casemail_reconcile_last_run_timestamp_seconds") > 0.0);

    // The passed-over message stays in the INBOX, unflagged, rather than being acknowledged
    // with the messages committed before the restart.
    let inbox = bench.list(&help, "INBOX").await.expect("list INBOX");
    assert_eq!(inbox.len(), 1);
    assert!(!inbox[0].flags.iter().any(|f| f == "\\Seen"), "{inbox:?}");

    // The coordinators hear of both missing messages, and of nothing pending.
    let found = harness::wait_until(PATIENCE, || {
        let coordinator = coordinator.clone();
        async move {
            bench
                .list(&coordinator, "INBOX")
                .await
                .is_ok_and(|list| list.iter().any(|m| m.contains(NOTICE_SUBJECT)))
        }
    })
    .await;
    if let Err(err) = found {
        panic!(
            "{err:#}: no notice reached the coordinator\n{}",
            daemon.log_tail()
        );
    }
    let notices: Vec<_> = bench
        .list(&coordinator, "INBOX")
        .await
        .expect("list")
        .into_iter()
        .filter(|m| m.contains(NOTICE_SUBJECT))
        .collect();
    assert_eq!(notices.len(), 1);
    let notice = &notices[0];
    assert!(notice.contains("<passed-over-1@phone.example>"));
    assert!(notice.contains("<hand-moved-1@phone.example>"));
    assert!(notice.contains(&format!("UID:        {passed_uid}")));
    assert!(!notice.contains("pending-1@phone.example"));
    assert!(!notice.contains("PRIVATE-BODY"));

    // Later runs do not mail the same messages again.
    let runs = sample(&samples, "casemail_reconcile_runs_total{result=\"ok\"}");
    wait_for_metrics(&mut daemon, "three more runs and an empty outbox", |s| {
        value(s, "casemail_reconcile_runs_total{result=\"ok\"}").unwrap_or(0.0) >= runs + 3.0
            && value(s, "casemail_outbox_messages") == Some(0.0)
    })
    .await;
    let notices = message_ids(bench, &coordinator, "INBOX", NOTICE_SUBJECT).await;
    assert_eq!(notices.len(), 1, "one notice, not one per run");

    // The log names folder, UID and Message-ID, never the contents.
    let log = std::fs::read_to_string(&daemon.log_path).expect("read log");
    let reported: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("is in no ticket and not in the quarantine"))
        .collect();
    assert_eq!(reported.len(), 2, "{reported:#?}");
    assert!(
        reported
            .iter()
            .any(|l| l.contains("passed-over-1@phone.example")
                && l.contains(&format!("uid={passed_uid}"))
                && l.contains("INBOX"))
    );
    assert!(!log.contains("PRIVATE-SUBJECT") && !log.contains("PRIVATE-BODY"));
    assert!(
        !reported
            .iter()
            .any(|l| l.contains("pending-1@phone.example"))
    );

    // Copying the message into the INBOX again imports it, and reconciliation forgets it.
    bench
        .append(&help, "INBOX", &passed_over, &[])
        .await
        .expect("append");
    wait_for_metrics(
        &mut daemon,
        "the INBOX reconciled after the re-import",
        |s| value(s, &folder_series("casemail_reconcile_missing", "INBOX")) == Some(0.0),
    )
    .await;
    let stored: Vec<String> = daemon
        .all_messages()
        .iter()
        .filter_map(|(_, m)| m["message_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        stored.iter().any(|id| id == "passed-over-1@phone.example"),
        "{stored:?}"
    );
    daemon.terminate().await.expect("clean stop");
}

#[tokio::test]
async fn lag_counts_the_mail_waiting_in_a_paused_folder_and_resuming_files_it() {
    let bench = harness::shared().await;
    let folders = toml::Value::Array(vec!["INBOX".into(), "Held".into()]);
    let paused = [
        ("imap", "folders", folders.clone()),
        (
            "imap",
            "paused_folders",
            toml::Value::Array(vec!["Held".into()]),
        ),
        ("reconcile", "every", toml::Value::String("0".to_owned())),
    ];
    let mut daemon = Daemon::new(bench, &paused);
    let help = daemon.help.clone();
    bench
        .create_folder(&help, "Held")
        .await
        .expect("create Held");
    daemon.start();
    wait_until_serving(&mut daemon).await;
    wait_for_metrics(&mut daemon, "the paused folder selected", |s| {
        value(s, &folder_series("casemail_imap_lag_messages", "Held")) == Some(0.0)
    })
    .await;

    const HELD: usize = 7;
    for n in 0..HELD {
        let raw = mail(
            &format!("held-requester-{n}@phone.example"),
            &help.address,
            &format!("Held request {n}"),
            Some(&format!("held-{n}@phone.example")),
            "",
            "Waiting.",
        );
        bench
            .append(&help, "Held", &raw, &[])
            .await
            .expect("append");
    }
    let samples = wait_for_metrics(&mut daemon, "the held mail counted as lag", |s| {
        value(s, &folder_series("casemail_imap_lag_messages", "Held")) == Some(HELD as f64)
    })
    .await;
    assert_eq!(
        sample(&samples, &folder_series("casemail_imap_uidnext", "Held")),
        HELD as f64 + 1.0
    );
    assert_eq!(
        sample(
            &samples,
            &folder_series("casemail_imap_lag_messages", "INBOX")
        ),
        0.0
    );
    assert!(
        !samples.contains_key(&folder_series("casemail_imap_cursor_uid", "Held")),
        "nothing committed from the paused folder"
    );
    assert!(daemon.tickets().is_empty());
    assert_eq!(bench.list(&help, "Held").await.expect("list").len(), HELD);
    daemon.terminate().await.expect("clean stop");

    // Resumed: everything that waited is filed and the lag is gone.
    let resumed = [
        ("imap", "folders", folders),
        ("reconcile", "every", toml::Value::String("0".to_owned())),
    ];
    std::fs::write(
        &daemon.config_path,
        config_text(bench, &help, &daemon.state_dir, &resumed),
    )
    .expect("rewrite config");
    daemon.start();
    wait_until_serving(&mut daemon).await;
    wait_drained(bench, &mut daemon, &["INBOX", "Held"], HELD).await;
    let samples = wait_for_metrics(&mut daemon, "no lag after resuming", |s| {
        value(s, &folder_series("casemail_imap_lag_messages", "Held")) == Some(0.0)
    })
    .await;
    assert_eq!(
        sample(&samples, &folder_series("casemail_imap_cursor_uid", "Held")),
        HELD as f64
    );
    assert_eq!(daemon.tickets().len(), HELD);
    daemon.terminate().await.expect("clean stop");
}

/// A request with a file of `size` bytes (base64 in the message), so the notification that
/// carries it takes a while to send.
fn request_with_file(from: &str, to: &str, n: usize, size: usize) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Request {n}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <relay-request-{n}@phone.example>\r\nMIME-Version: 1.0\r\n"
    );
    if size == 0 {
        raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\nPlease call me back.\r\n");
        return raw.into_bytes();
    }
    raw.push_str("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scan is attached.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    // Base64 of a repeating pattern: 76 characters a line, 57 bytes each.
    let line = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k";
    for _ in 0..size.div_ceil(57) {
        let _ = write!(raw, "{line}\r\n");
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

#[tokio::test]
async fn sigterm_while_the_relay_sends_loses_and_doubles_nothing() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let help = daemon.help.clone();
    let worker = bench.new_account("worker");
    add_agent(&daemon, "wren", &worker, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"wren\"\n{ALWAYS}"),
    );

    // A queue of notifications (one ticket per requester), every third carrying a 1 MB file.
    const REQUESTS: usize = 30;
    for n in 0..REQUESTS {
        let size = if n % 3 == 0 { 1024 * 1024 } else { 0 };
        let from = format!("requester-{n}@phone.example");
        let raw = request_with_file(&from, &help.address, n, size);
        bench
            .append(&help, "INBOX", &raw, &[])
            .await
            .expect("append");
    }
    daemon.start();
    wait_until_serving(&mut daemon).await;

    // SIGTERM as soon as the relay starts sending a large notification after the first one
    // (the daemon logs "Sending." with the size at DEBUG before each SMTP transaction).
    let log_path = daemon.log_path.clone();
    let large_sends = move || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("Sending."))
            .filter_map(|line| {
                line.split("size=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|size| *size >= 1024 * 1024)
            .count()
    };
    let started = harness::wait_until(PATIENCE, || {
        let large_sends = large_sends.clone();
        async move { large_sends() >= 2 }
    })
    .await;
    if let Err(err) = started {
        panic!("{err:#}: the relay never sent\n{}", daemon.log_tail());
    }
    let stopping = std::time::Instant::now();
    daemon
        .terminate()
        .await
        .expect("a clean exit within the unit's stop timeout");
    println!(
        "SIGTERM to exit during the relay: {:.2} s",
        stopping.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(&daemon.log_path).expect("read log");
    assert!(
        !log.contains("before the shutdown deadline"),
        "a stage was cut off at the shutdown deadline:\n{}",
        daemon.log_tail()
    );
    assert!(!log.contains("panicked"), "{}", daemon.log_tail());

    // What the relay had not sent stays in the outbox with the Message-ID it will carry.
    let waiting: BTreeSet<String> = {
        let store = Store::open(&daemon.state_dir).expect("open the store");
        store
            .outbox()
            .expect("outbox")
            .iter()
            .map(|entry| entry.message_id.as_str().to_owned())
            .collect()
    };
    println!(
        "at SIGTERM: {} of {REQUESTS} notifications still in the outbox",
        waiting.len()
    );

    daemon.start();
    wait_until_serving(&mut daemon).await;
    wait_for_metrics(&mut daemon, "an empty outbox", |s| {
        value(s, "casemail_outbox_messages") == Some(0.0)
    })
    .await;
    let delivered = match bench
        .wait_for_mail(&worker, "INBOX", REQUESTS, PATIENCE)
        .await
    {
        Ok(list) => list,
        Err(err) => panic!("{err:#}\n{}", daemon.log_tail()),
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for message in &delivered {
        let id = header_message_id(&message.raw)
            .map(|id| id.as_str().to_owned())
            .expect("every notification has a Message-ID");
        *counts.entry(id).or_insert(0) += 1;
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "delivered twice: {doubled:?}");
    assert_eq!(counts.len(), REQUESTS, "one notification per request");
    for id in &waiting {
        assert!(
            counts.contains_key(id),
            "{id} was queued at SIGTERM and never delivered"
        );
    }
    // Every ticket's notification, by the ticket number in its subject, and the relay's own
    // record of it: one `sent` event per ticket across both runs.
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), REQUESTS);
    for ticket in tickets {
        let number = ticket["number"].as_u64().expect("number");
        let tag = format!("[#{number}]");
        let carrying = delivered.iter().filter(|m| m.contains(&tag)).count();
        assert_eq!(carrying, 1, "notifications for ticket {number}");
        let detail = daemon.ticket(number);
        let sent = detail["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == "sent")
            .count();
        assert_eq!(sent, 1, "sent events of ticket {number}: {detail:#}");
    }
    daemon.terminate().await.expect("clean stop");
}

#[tokio::test]
async fn a_reply_holding_only_commands_is_not_reported_missing() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[("reconcile", "every", toml::Value::String("1s".to_owned()))],
    );
    let amina = bench.new_account("amina");
    crate::bridge::register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    wait_until_serving(&mut daemon).await;
    let request = mail(
        &requester.address,
        &help.address,
        "Asylum interview",
        Some("interview-1@phone.example"),
        "",
        "When is my interview?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = crate::bridge::wait_count(bench, &daemon, &amina, 1)
        .await
        .remove(0);
    // Nothing but a command: the reply is filed without a stored message of its own.
    let (reply_to, close) = crate::bridge::gmail_reply(&amina, &notification.raw, "#close");
    bench
        .send_mail(&amina.address, &[&reply_to], &close)
        .await
        .expect("send close");
    wait_drained(bench, &mut daemon, &["INBOX"], 2).await;
    assert_eq!(daemon.ticket(1)["status"], "closed");
    assert_eq!(
        daemon.ticket(1)["message_count"],
        1,
        "the reply is not stored"
    );

    let samples = wait_for_metrics(&mut daemon, "a first run", |s| {
        value(s, "casemail_reconcile_runs_total{result=\"ok\"}").unwrap_or(0.0) >= 1.0
    })
    .await;
    let runs = sample(&samples, "casemail_reconcile_runs_total{result=\"ok\"}");
    // A run that began after both messages reached the processed folder.
    let samples = wait_for_metrics(&mut daemon, "two more runs", |s| {
        value(s, "casemail_reconcile_runs_total{result=\"ok\"}").unwrap_or(0.0) >= runs + 2.0
    })
    .await;
    for folder in ["INBOX", "Junk", "Processed"] {
        assert_eq!(
            sample(
                &samples,
                &folder_series("casemail_reconcile_missing", folder)
            ),
            0.0,
            "{folder}"
        );
    }
    let log = std::fs::read_to_string(&daemon.log_path).expect("read log");
    assert!(!log.contains("is in no ticket"), "{}", daemon.log_tail());
    daemon.terminate().await.expect("clean stop");
}

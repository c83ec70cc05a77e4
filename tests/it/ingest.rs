//! Ingest against the bench's Dovecot and Postfix: every message in the watched folders lands
//! in exactly one ticket, and is moved out of the folder only after that.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;

use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench};

const PATIENCE: Duration = Duration::from_secs(60);

/// A small RFC 5322 message. `message_id` without brackets; `None` leaves the header out.
pub(crate) fn mail(
    from: &str,
    to: &str,
    subject: &str,
    message_id: Option<&str>,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let mut raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
    );
    if let Some(id) = message_id {
        raw.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    raw.push_str(extra);
    raw.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    raw.push_str(body);
    raw.push_str("\r\n");
    raw.into_bytes()
}

/// Waits until the given folders of the help mailbox are empty and Processed holds `processed`.
pub(crate) async fn wait_drained(
    bench: &Bench,
    daemon: &mut Daemon,
    folders: &[&str],
    processed: usize,
) {
    let help = daemon.help.clone();
    let folders: Vec<String> = folders.iter().map(|f| f.to_string()).collect();
    let result = harness::wait_until(PATIENCE, || {
        let (help, folders) = (help.clone(), folders.clone());
        async move {
            for folder in &folders {
                match bench.list(&help, folder).await {
                    Ok(list) if list.is_empty() => {}
                    _ => return false,
                }
            }
            bench
                .list(&help, "Processed")
                .await
                .map(|l| l.len())
                .unwrap_or(0)
                == processed
        }
    })
    .await;
    daemon.assert_running();
    if let Err(err) = result {
        panic!("{err:#}; casemail log:\n{}", daemon.log_tail());
    }
}

fn messages_of(ticket: &Value) -> &Vec<Value> {
    ticket["messages"].as_array().expect("messages array")
}

fn override_bool(
    section: &'static str,
    key: &'static str,
    value: bool,
) -> (&'static str, &'static str, toml::Value) {
    (section, key, toml::Value::Boolean(value))
}

#[tokio::test]
async fn replies_thread_by_headers_and_by_subject_tag_but_strangers_do_not() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(
        bench,
        &[override_bool(
            "threading",
            "one_open_ticket_per_requester",
            false,
        )],
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();

    let first = mail(
        &requester.address,
        &help.address,
        "Eviction notice",
        Some("first@phone.example"),
        "",
        "My landlord wants me out by Friday.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &first)
        .await
        .expect("send first");
    wait_drained(bench, &mut daemon, &["INBOX"], 1).await;

    let by_headers = mail(
        &requester.address,
        &help.address,
        "more documents",
        Some("second@phone.example"),
        "In-Reply-To: <first@phone.example>\r\nReferences: <first@phone.example>\r\n",
        "Here is the letter.",
    );
    let by_tag = mail(
        &requester.address,
        &help.address,
        "Re: my case [#1]",
        Some("third@phone.example"),
        "",
        "Any news?",
    );
    let stranger = mail(
        "mallory@elsewhere.example",
        &help.address,
        "Re: my case [#1]",
        Some("fourth@elsewhere.example"),
        "",
        "Let me in.",
    );
    for raw in [&by_headers, &by_tag, &stranger] {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
    }
    wait_drained(bench, &mut daemon, &["INBOX"], 4).await;
    daemon.terminate().await.expect("clean stop");

    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 2, "{tickets:#?}");
    let one = daemon.ticket(1);
    let ids: Vec<&str> = messages_of(&one)
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [
            "first@phone.example",
            "second@phone.example",
            "third@phone.example"
        ]
    );
    assert_eq!(one["requester"], requester.address.as_str());
    let two = daemon.ticket(2);
    assert_eq!(two["requester"], "mallory@elsewhere.example");
    assert_eq!(messages_of(&two).len(), 1);
}

#[tokio::test]
async fn the_same_message_delivered_twice_is_one_entry() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let in_both = mail(
        "amal@phone.example",
        &help.address,
        "Visa appointment",
        Some("both@phone.example"),
        "",
        "Where do I go?",
    );
    let two_aliases = mail(
        "bilal@phone.example",
        &help.address,
        "Housing",
        Some("aliases@phone.example"),
        "",
        "We sleep in the car.",
    );
    let no_id = mail(
        "chen@phone.example",
        &help.address,
        "No id here",
        None,
        "",
        "Please call me.",
    );
    bench
        .append(&help, "INBOX", &in_both, &[])
        .await
        .expect("append");
    bench.create_folder(&help, "Junk").await.ok();
    bench
        .append(&help, "Junk", &in_both, &[])
        .await
        .expect("append junk");
    for raw in [&two_aliases, &two_aliases, &no_id, &no_id] {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
    }
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX", "Junk"], 6).await;
    daemon.terminate().await.expect("clean stop");

    let messages = daemon.all_messages();
    assert_eq!(messages.len(), 3, "three distinct messages: {messages:#?}");
    let both = messages
        .iter()
        .find(|(_, m)| m["message_id"] == "both@phone.example")
        .expect("the INBOX+Junk message");
    let folders: BTreeSet<&str> = both.1["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["folder"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(folders, BTreeSet::from(["INBOX", "Junk"]));
    let aliases = messages
        .iter()
        .filter(|(_, m)| m["message_id"] == "aliases@phone.example")
        .count();
    assert_eq!(aliases, 1);
    let without_id = messages
        .iter()
        .filter(|(_, m)| m["message_id"].is_null())
        .count();
    assert_eq!(without_id, 1);
}

#[tokio::test]
async fn a_reused_message_id_keeps_both_messages_and_a_redelivery_stays_one() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let amal = bench.new_account("amal");
    let bilal = bench.new_account("bilal");
    daemon.start();
    // A web form that gives every submission the same Message-ID.
    let hers = mail(
        &amal.address,
        &help.address,
        "Contact form",
        Some("contact@form.example"),
        "",
        "My landlord changed the locks.",
    );
    let his = mail(
        &bilal.address,
        &help.address,
        "Contact form",
        Some("contact@form.example"),
        "",
        "I was refused at the hospital.",
    );
    // Each delivery through Postfix adds its own Received, Return-Path and Delivered-To.
    for (from, raw) in [(&amal, &hers), (&bilal, &his), (&amal, &hers)] {
        bench
            .send_mail(&from.address, &[&help.address], raw)
            .await
            .expect("send");
    }
    wait_drained(bench, &mut daemon, &["INBOX"], 3).await;
    daemon.terminate().await.expect("clean stop");

    let messages = daemon.all_messages();
    assert_eq!(messages.len(), 2, "both messages, once each: {messages:#?}");
    let tickets: BTreeSet<u64> = messages.iter().map(|(ticket, _)| *ticket).collect();
    assert_eq!(tickets.len(), 2, "one ticket each: {messages:#?}");
    let reused: Vec<&Value> = messages
        .iter()
        .map(|(_, m)| m)
        .filter(|m| {
            m["anomalies"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a.as_str().unwrap_or("").starts_with("reused Message-ID"))
            })
        })
        .collect();
    assert_eq!(reused.len(), 1, "{messages:#?}");
    assert!(
        reused[0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("refused at the hospital"),
        "{messages:#?}"
    );
    let first = messages
        .iter()
        .find(|(_, m)| {
            m["text"]
                .as_str()
                .unwrap_or("")
                .contains("changed the locks")
        })
        .expect("her message");
    assert_eq!(
        first.1["sources"].as_array().map(Vec::len),
        Some(2),
        "her second delivery is a source of the first: {messages:#?}"
    );
}

#[tokio::test]
async fn a_uidvalidity_change_reimports_nothing_twice() {
    let bench = harness::shared().await;
    let folders = toml::Value::Array(vec![toml::Value::String("Requests".into())]);
    let mut daemon = Daemon::new(
        bench,
        &[
            ("imap", "folders", folders),
            ("imap", "junk_folders", toml::Value::Array(vec![])),
        ],
    );
    let help = daemon.help.clone();
    bench
        .create_folder(&help, "Requests")
        .await
        .expect("create Requests");
    let originals: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            mail(
                &format!("person{i}@phone.example"),
                &help.address,
                &format!("case {i}"),
                Some(&format!("orig-{i}@phone.example")),
                "",
                "help",
            )
        })
        .collect();
    for raw in &originals {
        bench
            .append(&help, "Requests", raw, &[])
            .await
            .expect("append");
    }
    daemon.start();
    wait_drained(bench, &mut daemon, &["Requests"], 3).await;
    let before = bench
        .uidvalidity(&help, "Requests")
        .await
        .expect("uidvalidity");

    // The folder is deleted and recreated (a server migration does the same): the same mail
    // comes back under a new UIDVALIDITY, plus one new message.
    bench
        .delete_folder(&help, "Requests")
        .await
        .expect("delete");
    bench.create_folder(&help, "Requests").await.ok();
    for raw in &originals {
        bench
            .append(&help, "Requests", raw, &[])
            .await
            .expect("append again");
    }
    let new = mail(
        "newcomer@phone.example",
        &help.address,
        "new case",
        Some("new@phone.example"),
        "",
        "hello",
    );
    bench
        .append(&help, "Requests", &new, &[])
        .await
        .expect("append new");
    let after = bench
        .uidvalidity(&help, "Requests")
        .await
        .expect("uidvalidity");
    assert_ne!(before, after, "the bench must really change UIDVALIDITY");
    wait_drained(bench, &mut daemon, &["Requests"], 7).await;
    daemon.terminate().await.expect("clean stop");

    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 4, "{tickets:#?}");
    assert!(
        tickets.iter().all(|t| t["message_count"] == 1),
        "{tickets:#?}"
    );
}

/// How a test interrupts the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interruption {
    /// SIGKILL: nothing is flushed or acknowledged.
    Kill,
    /// SIGTERM: the daemon must stop cleanly (exit 0) within the deadline.
    Terminate,
}

#[tokio::test]
async fn sigkill_during_a_large_ingest_loses_and_doubles_nothing() {
    interrupted_ingest(Interruption::Kill, 6).await;
}

#[tokio::test]
async fn sigterm_during_a_large_ingest_stops_cleanly_and_loses_nothing() {
    interrupted_ingest(Interruption::Terminate, 3).await;
}

/// Appends 2,000 requests, interrupts the daemon `times` times at random points of the ingest,
/// lets it finish, and checks every message is in exactly one ticket.
async fn interrupted_ingest(how: Interruption, times: usize) {
    const COUNT: usize = 2000;
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(
        bench,
        &[("ingest", "batch_size", toml::Value::Integer(100))],
    );
    let help = daemon.help.clone();
    let mut session = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    for i in 0..COUNT {
        let raw = mail(
            &format!("p{i}@phone.example"),
            &help.address,
            &format!("request {i}"),
            Some(&format!("bulk-{i}@phone.example")),
            "",
            &format!("Message number {i}."),
        );
        session
            .append("INBOX", None, None, &raw)
            .await
            .expect("append");
    }
    session.logout().await.ok();

    // Each time the processed folder passes the next random threshold, the daemon is
    // interrupted at once, mid-way through whatever it is doing.
    let seed: u64 = rand::random();
    eprintln!("{how:?} schedule seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut thresholds: Vec<u32> = (0..times)
        .map(|_| rng.random_range(1..COUNT as u32 - 100))
        .collect();
    thresholds.sort_unstable();
    let mut watcher = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    let mut mid_ingest = 0;
    for threshold in thresholds {
        let before = processed_count(&mut watcher).await;
        daemon.start();
        // Interrupt only once this run has made progress of its own, so the interruption
        // lands in the ingest and not in process start-up.
        let threshold = threshold.max(before + 1);
        let reached = loop {
            let processed = processed_count(&mut watcher).await;
            if processed >= threshold {
                break processed;
            }
            daemon.assert_running();
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match how {
            Interruption::Kill => daemon.kill(),
            Interruption::Terminate => daemon
                .terminate()
                .await
                .expect("a clean exit after SIGTERM"),
        }
        eprintln!("{how:?} with {reached} of {COUNT} processed");
        if reached < COUNT as u32 {
            mid_ingest += 1;
        }
    }
    assert!(
        mid_ingest > 0,
        "at least one interruption happened mid-ingest"
    );
    watcher.logout().await.ok();
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], COUNT).await;
    daemon.terminate().await.expect("clean stop");

    let tickets = daemon.tickets();
    let subjects: BTreeSet<String> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(tickets.len(), COUNT, "one ticket per message");
    assert!(
        tickets.iter().all(|t| t["message_count"] == 1),
        "no message stored twice"
    );
    let expected: BTreeSet<String> = (0..COUNT).map(|i| format!("request {i}")).collect();
    assert_eq!(subjects, expected);
}

/// How many messages the help mailbox's Processed folder holds (IMAP STATUS; 0 before it exists).
pub(crate) async fn processed_count(session: &mut harness::ImapSession) -> u32 {
    session
        .status("Processed", "(MESSAGES)")
        .await
        .map(|mailbox| mailbox.exists)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_dovecot_restart_mid_ingest_is_survived() {
    const COUNT: usize = 300;
    let bench = harness::private().await;
    let mut daemon = Daemon::new(
        &bench,
        &[("ingest", "batch_size", toml::Value::Integer(20))],
    );
    let help = daemon.help.clone();
    let mut session = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    for i in 0..COUNT {
        let raw = mail(
            &format!("q{i}@phone.example"),
            &help.address,
            &format!("outage {i}"),
            Some(&format!("outage-{i}@phone.example")),
            "",
            "text",
        );
        session
            .append("INBOX", None, None, &raw)
            .await
            .expect("append");
    }
    session.logout().await.ok();
    daemon.start();
    let helper = help.clone();
    harness::wait_until(PATIENCE, || {
        let help = helper.clone();
        let bench = &bench;
        async move {
            bench
                .list(&help, "Processed")
                .await
                .map(|l| !l.is_empty())
                .unwrap_or(false)
        }
    })
    .await
    .expect("ingest started");
    let mut watcher = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    assert!(
        processed_count(&mut watcher).await < COUNT as u32,
        "Dovecot stops mid-ingest"
    );
    drop(watcher);
    bench.stop_dovecot().await.expect("stop dovecot");
    bench.start_dovecot().await.expect("start dovecot");
    wait_drained(&bench, &mut daemon, &["INBOX"], COUNT).await;
    daemon.terminate().await.expect("clean stop");
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), COUNT);
    assert!(tickets.iter().all(|t| t["message_count"] == 1));
}

#[tokio::test]
async fn broken_mail_becomes_a_flagged_ticket_and_later_mail_still_arrives() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let truncated = format!(
        "From: trunc@phone.example\r\nTo: {to}\r\nSubject: photo\r\nMessage-ID: <trunc@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee photo\r\n--b1\r\nContent-Type: image/jpeg; name=\"a.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQSkZJRgABAQ",
        to = help.address
    );
    let broken_mime = format!(
        "From: mime@phone.example\r\nTo: {to}\r\nSubject: broken\r\nMessage-ID: <mime@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"missing\"\r\n\r\nno parts at all, the boundary never appears\r\n",
        to = help.address
    );
    let unknown_charset = format!(
        "From: charset@phone.example\r\nTo: {to}\r\nSubject: charset\r\nMessage-ID: <charset@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\nhello in an odd charset\r\n",
        to = help.address
    );
    let garbage: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
    let good = mail(
        "good@phone.example",
        &help.address,
        "after the bad ones",
        Some("good@phone.example"),
        "",
        "I still need help.",
    );
    for raw in [
        truncated.as_bytes(),
        broken_mime.as_bytes(),
        unknown_charset.as_bytes(),
        garbage.as_slice(),
        good.as_slice(),
    ] {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
    }
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], 5).await;
    daemon.terminate().await.expect("clean stop");

    let quarantined: Vec<Value> = {
        let output = daemon.cli(&["quarantine", "list", "--json"]);
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).expect("quarantine JSON")
    };
    let messages = daemon.all_messages();
    assert_eq!(
        messages.len() + quarantined.len(),
        5,
        "every message is a ticket or quarantined"
    );
    let good = messages
        .iter()
        .find(|(_, m)| m["message_id"] == "good@phone.example")
        .expect("the good message after the bad ones");
    assert!(
        good.1["text"]
            .as_str()
            .unwrap_or("")
            .contains("I still need help.")
    );
    for id in [
        "trunc@phone.example",
        "mime@phone.example",
        "charset@phone.example",
    ] {
        let (_, message) = messages
            .iter()
            .find(|(_, m)| m["message_id"] == id)
            .unwrap_or_else(|| panic!("{id} stored"));
        assert!(
            !message["anomalies"]
                .as_array()
                .expect("anomalies")
                .is_empty(),
            "{id} says what was wrong: {message:#}"
        );
    }
}

#[tokio::test]
async fn mail_arriving_while_idle_is_picked_up_by_idle_not_polling() {
    let bench = harness::shared().await;
    // Polling once a minute: only IDLE can deliver within the wait below.
    let mut daemon = Daemon::new(
        bench,
        &[("imap", "poll_interval", toml::Value::String("60s".into()))],
    );
    let help = daemon.help.clone();
    let warmup = mail(
        "warm@phone.example",
        &help.address,
        "first",
        Some("warm@phone.example"),
        "",
        "hi",
    );
    bench
        .append(&help, "INBOX", &warmup, &[])
        .await
        .expect("append");
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], 1).await;
    let live = mail(
        "live@phone.example",
        &help.address,
        "while idle",
        Some("live@phone.example"),
        "",
        "hello",
    );
    bench
        .append(&help, "INBOX", &live, &[])
        .await
        .expect("append");
    let helper = help.clone();
    let picked_up = harness::wait_until(Duration::from_secs(10), || {
        let help = helper.clone();
        async move {
            bench
                .list(&help, "INBOX")
                .await
                .map(|l| l.is_empty())
                .unwrap_or(false)
                && bench
                    .list(&help, "Processed")
                    .await
                    .map(|l| l.len() == 2)
                    .unwrap_or(false)
        }
    })
    .await;
    assert!(
        picked_up.is_ok(),
        "IDLE did not pick up the message:\n{}",
        daemon.log_tail()
    );
    daemon.terminate().await.expect("clean stop");
    assert_eq!(daemon.tickets().len(), 2);
}

#[tokio::test]
async fn requests_in_many_scripts_html_and_photos_read_back_correctly() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help: Account = daemon.help.clone();
    let arabic = format!(
        "From: =?UTF-8?B?2YHYp9i32YXYqQ==?= <fatima@phone.example>\r\nTo: {to}\r\nSubject: =?UTF-8?B?2LfZhNioINmE2KzZiNih?=\r\nMessage-ID: <ar@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n2KPYrdiq2KfYrCDYpdmE2Ykg2YXYs9in2LnYr9ipINmB2Yog2LfZhNioINin2YTZhNis2YjYoS4=\r\n",
        to = help.address
    );
    let farsi_cp1256: Vec<u8> = {
        let mut raw = format!(
            "From: reza@phone.example\r\nTo: {to}\r\nSubject: =?windows-1256?B?mOOY?=\r\nMessage-ID: <fa@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=windows-1256\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            to = help.address
        )
        .into_bytes();
        // "سلام" in windows-1256.
        raw.extend_from_slice(&[0xD3, 0xE1, 0xC7, 0xE3, b'\r', b'\n']);
        raw
    };
    let tigrinya = mail(
        "selam@phone.example",
        &help.address,
        "ሓገዝ",
        Some("ti@phone.example"),
        "",
        "ሰላም፡ ሓገዝ የድልየኒ ኣሎ።",
    );
    let html_only = format!(
        "From: html@phone.example\r\nTo: {to}\r\nSubject: html\r\nMessage-ID: <html@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p {{color: red}}</style><script>alert(1)</script></head><body><p>I need a <b>lawyer</b> urgently.</p></body></html>\r\n",
        to = help.address
    );
    let photo = format!(
        "From: photo@phone.example\r\nTo: {to}\r\nSubject: my documents\r\nMessage-ID: <photo@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n--p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPhoto of my residence permit attached.\r\n--p\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"IMG_2024.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==\r\n--p--\r\n",
        to = help.address
    );
    for raw in [
        arabic.as_bytes(),
        farsi_cp1256.as_slice(),
        tigrinya.as_slice(),
        html_only.as_bytes(),
        photo.as_bytes(),
    ] {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
    }
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], 5).await;
    daemon.terminate().await.expect("clean stop");

    let messages = daemon.all_messages();
    let find = |id: &str| -> Value {
        messages
            .iter()
            .find(|(_, m)| m["message_id"] == id)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("{id} stored"))
    };
    let ar = find("ar@phone.example");
    assert_eq!(ar["subject"], "طلب لجوء");
    assert_eq!(ar["from_name"], "فاطمة");
    assert!(
        ar["text"]
            .as_str()
            .unwrap_or("")
            .contains("أحتاج إلى مساعدة في طلب اللجوء."),
        "{ar:#}"
    );
    let fa = find("fa@phone.example");
    assert!(fa["text"].as_str().unwrap_or("").contains("سلام"), "{fa:#}");
    assert_eq!(fa["subject"], "کمک");
    let ti = find("ti@phone.example");
    assert_eq!(ti["subject"], "ሓገዝ");
    assert!(ti["text"].as_str().unwrap_or("").contains("ሓገዝ የድልየኒ"));
    let html = find("html@phone.example");
    let text = html["text"].as_str().unwrap_or("");
    assert!(text.contains("I need a lawyer urgently"), "{text:?}");
    assert!(
        !text.contains("alert(1)") && !text.contains("color: red"),
        "{text:?}"
    );
    let photo = find("photo@phone.example");
    let attachments = photo["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{photo:#}");
    assert_eq!(attachments[0]["name"], "IMG_2024.jpg");
    assert_eq!(attachments[0]["content_type"], "image/jpeg");
    assert!(attachments[0]["size"].as_u64().unwrap_or(0) > 100);
}

#[tokio::test]
async fn the_daemon_reads_over_imaps_and_starttls_with_a_private_ca() {
    let bench = harness::shared().await;
    for (security, endpoint) in [
        ("tls", bench.imaps_endpoint()),
        ("starttls", bench.imap_endpoint()),
    ] {
        let ca_file = bench.ca_file().to_string_lossy().into_owned();
        let mut daemon = Daemon::new(
            bench,
            &[
                ("imap", "security", toml::Value::String(security.into())),
                (
                    "imap",
                    "port",
                    toml::Value::Integer(i64::from(endpoint.port)),
                ),
                ("imap", "ca_file", toml::Value::String(ca_file)),
            ],
        );
        let help = daemon.help.clone();
        let raw = mail(
            "tls@phone.example",
            &help.address,
            &format!("over {security}"),
            Some(&format!("{security}@phone.example")),
            "",
            "private",
        );
        bench
            .append(&help, "INBOX", &raw, &[])
            .await
            .expect("append");
        daemon.start();
        wait_drained(bench, &mut daemon, &["INBOX"], 1).await;
        daemon.terminate().await.expect("clean stop");
        let tickets = daemon.tickets();
        assert_eq!(tickets.len(), 1, "{security}");
        assert_eq!(tickets[0]["subject"], format!("over {security}"));
    }
}

#[tokio::test]
async fn with_no_processed_folder_mail_stays_in_place_flagged_and_is_not_read_twice() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(
        bench,
        &[(
            "imap",
            "processed_folder",
            toml::Value::String(String::new()),
        )],
    );
    let help = daemon.help.clone();
    let all_seen = |count: usize| {
        let help = help.clone();
        move || {
            let help = help.clone();
            async move {
                bench.list(&help, "INBOX").await.is_ok_and(|list| {
                    list.len() == count
                        && list.iter().all(|m| m.flags.iter().any(|f| f == "\\Seen"))
                })
            }
        }
    };
    for i in 0..2 {
        let raw = mail(
            &format!("stay{i}@phone.example"),
            &help.address,
            &format!("stay {i}"),
            Some(&format!("stay-{i}@phone.example")),
            "",
            "text",
        );
        bench
            .append(&help, "INBOX", &raw, &[])
            .await
            .expect("append");
    }
    daemon.start();
    harness::wait_until(PATIENCE, all_seen(2))
        .await
        .expect("both flagged \\Seen");
    daemon.terminate().await.expect("clean stop");
    // A restart must not read the flagged messages again.
    let raw = mail(
        "stay2@phone.example",
        &help.address,
        "stay 2",
        Some("stay-2@phone.example"),
        "",
        "text",
    );
    bench
        .append(&help, "INBOX", &raw, &[])
        .await
        .expect("append");
    daemon.start();
    harness::wait_until(PATIENCE, all_seen(3))
        .await
        .expect("the third flagged \\Seen");
    daemon.terminate().await.expect("clean stop");
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 3, "{tickets:#?}");
    assert!(tickets.iter().all(|t| t["message_count"] == 1));
    assert!(
        bench
            .folders(&help)
            .await
            .expect("folders")
            .iter()
            .all(|f| f != "Processed")
    );
}

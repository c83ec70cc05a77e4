//! The reply bridge on the bench: a caseworker answers a notification from their own mail
//! client and the requester receives only the answer, from the shared address, threaded under
//! their own message; forged or stray replies are refused and never relayed.

use std::time::Duration;

use casemail::mail::parse::{ParseLimits, parse};

use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench};
use crate::ingest::mail;
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota};

const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) async fn wait_count(
    bench: &Bench,
    daemon: &Daemon,
    account: &Account,
    count: usize,
) -> Vec<harness::FetchedMail> {
    match bench.wait_for_mail(account, "INBOX", count, PATIENCE).await {
        Ok(list) => list,
        Err(err) => panic!("{err:#}\ncasemail log:\n{}", daemon.log_tail()),
    }
}

/// Registers caseworkers `(id, account, role)` and a rota with `on_duty` on duty all week.
pub(crate) fn register(daemon: &Daemon, members: &[(&str, &Account, &str)], on_duty: &[&str]) {
    for (id, account, role) in members {
        add_agent(daemon, id, account, role);
    }
    let shifts: String = on_duty
        .iter()
        .map(|id| format!("[[shift]]\nagent = \"{id}\"\n{ALWAYS}"))
        .collect();
    import_rota(daemon, &format!("timezone = \"UTC\"\n{shifts}"));
}

/// A reply as Gmail builds it: the answer on top, an attribution line, the notification
/// quoted with `>` below.
pub(crate) fn gmail_reply(from: &Account, notification: &[u8], answer: &str) -> (String, Vec<u8>) {
    let read = parse(notification, &ParseLimits::default());
    let reply_to = read
        .reply_to
        .first()
        .expect("notification has a Reply-To")
        .address
        .clone();
    let parent = read.message_id.expect("notification has a Message-ID");
    let subject = read.subject.unwrap_or_default();
    let quoted: String = read.text.lines().map(|l| format!("> {l}\r\n")).collect();
    let raw = format!(
        "From: Amina Caseworker <{from}>\r\nTo: Casemail Test Helpdesk <{reply_to}>\r\nSubject: Re: {subject}\r\nMessage-ID: <CAF{nonce}@mail.gmail.example>\r\nIn-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\nDate: Sun, 22 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n{answer}\r\n\r\nOn Sun, 22 Nov 2026 at 10:00, Casemail Test Helpdesk <{help}> wrote:\r\n\r\n{quoted}",
        from = from.address,
        nonce = rand::random::<u32>(),
        help = reply_to,
    );
    (reply_to, raw.into_bytes())
}

#[tokio::test]
async fn a_caseworker_answer_reaches_the_requester_threaded_and_without_their_address() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("carol", &carol, "coordinator")],
        &["amina"],
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();

    let request = mail(
        &requester.address,
        &help.address,
        "Eviction",
        Some("evict-1@phone.example"),
        "",
        "My landlord wants me out by Friday.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);
    let (reply_to, answer) = gmail_reply(
        &amina,
        &notification.raw,
        "I called your landlord; he has agreed to wait until we meet on Tuesday.",
    );
    assert!(
        reply_to.contains('+'),
        "the notification answers to a sub-address: {reply_to}"
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send reply");

    let received = wait_count(bench, &daemon, &requester, 1).await;
    let relayed = &received[0];
    let read = parse(&relayed.raw, &ParseLimits::default());
    assert_eq!(
        read.from.as_ref().map(|f| f.address.as_str()),
        Some(help.address.as_str())
    );
    assert_eq!(
        read.in_reply_to.first().map(|m| m.as_str()),
        Some("evict-1@phone.example"),
        "threaded under the requester's own message"
    );
    assert!(read.subject.as_deref().unwrap_or("").contains("[#1]"));
    assert!(
        read.text
            .contains("he has agreed to wait until we meet on Tuesday")
    );
    assert!(
        !read.text.contains("My landlord wants me out"),
        "no quoted history: {}",
        read.text
    );
    assert!(
        !read.text.contains("wrote:"),
        "no attribution line: {}",
        read.text
    );
    let raw = String::from_utf8_lossy(&relayed.raw).to_lowercase();
    assert!(
        !raw.contains(&amina.address.to_lowercase()),
        "the caseworker's address leaked:\n{raw}"
    );
    let token = reply_to
        .split_once('+')
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(t, _)| t.to_lowercase())
        .expect("token");
    assert!(!raw.contains(&token), "the reply token leaked:\n{raw}");

    // A forged reply: the right token, someone else's From. Never relayed; the coordinator is
    // told; the forger gets no bounce.
    let mallory = bench.new_account("mallory");
    let (_, genuine) = gmail_reply(&amina, &notification.raw, "Send me your passport number.");
    let forged = String::from_utf8_lossy(&genuine)
        .replace(&amina.address, &mallory.address)
        .into_bytes();
    bench
        .send_mail(&mallory.address, &[&reply_to], &forged)
        .await
        .expect("send forged");
    // The coordinator's notice names who wrote, so a caseworker writing from an address
    // nobody registered can be found and registered (`casemail agent address add`).
    let notice = crate::routing::mail_containing(bench, &mut daemon, &carol, "was refused").await;
    let notice = parse(&notice.raw, &ParseLimits::default());
    assert!(
        notice.text.contains(&format!(
            "a reply from {} was refused",
            mallory.address.to_lowercase()
        )),
        "{}",
        notice.text
    );
    daemon.terminate().await.expect("stop");
    assert_eq!(
        bench.list(&requester, "INBOX").await.expect("list").len(),
        1,
        "the forged reply was not relayed"
    );
    assert!(
        bench
            .list(&mallory, "INBOX")
            .await
            .expect("list")
            .is_empty(),
        "no backscatter to the forger"
    );

    let ticket = daemon.ticket(1);
    assert_eq!(ticket["status"], "waiting");
    let kinds: Vec<&str> = ticket["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"replied") && kinds.contains(&"reply_refused"),
        "{kinds:?}"
    );
    let directions: Vec<&str> = ticket["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["direction"].as_str())
        .collect();
    assert_eq!(directions, ["in", "out", "note"]);
}

#[tokio::test]
async fn notes_assignments_and_closing_by_mail() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, jonas, carol) = (
        bench.new_account("amina"),
        bench.new_account("jonas"),
        bench.new_account("carol"),
    );
    register(
        &daemon,
        &[
            ("amina", &amina, "agent"),
            ("jonas", &jonas, "agent"),
            ("carol", &carol, "coordinator"),
        ],
        &["amina"],
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let request = mail(
        &requester.address,
        &help.address,
        "Family reunion",
        Some("family-1@phone.example"),
        "",
        "My daughter is still in Khartoum.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);

    let (reply_to, note) = gmail_reply(
        &amina,
        &notification.raw,
        "#note\nShe may need an Arabic interpreter for the embassy.",
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &note)
        .await
        .expect("send note");
    crate::routing::mail_containing(bench, &mut daemon, &carol, "interpreter for the embassy")
        .await;

    let (_, assign) = gmail_reply(&amina, &notification.raw, "#assign jonas");
    bench
        .send_mail(&amina.address, &[&reply_to], &assign)
        .await
        .expect("send assign");
    let handed = wait_count(bench, &daemon, &jonas, 1).await.remove(0);
    assert!(handed.contains("[#1] Family reunion"));
    let confirmations = wait_count(bench, &daemon, &amina, 2).await;
    assert!(
        confirmations
            .iter()
            .any(|m| m.contains("assigned to jonas")),
        "amina is told it was done"
    );

    let (jonas_reply_to, close) = gmail_reply(
        &jonas,
        &handed.raw,
        "#close\nWe have filed the reunion request; write again any time.",
    );
    bench
        .send_mail(&jonas.address, &[&jonas_reply_to], &close)
        .await
        .expect("send close");
    let received = wait_count(bench, &daemon, &requester, 1).await;
    assert!(received[0].contains("We have filed the reunion request"));
    assert!(!received[0].contains("#close"), "commands are not relayed");
    assert!(
        !received[0].contains("interpreter"),
        "notes never reach the requester"
    );
    daemon.terminate().await.expect("stop");
    let ticket = daemon.ticket(1);
    assert_eq!(ticket["status"], "closed");
    assert_eq!(ticket["owner"], "jonas");
    assert_eq!(
        bench.list(&requester, "INBOX").await.expect("list").len(),
        1
    );
}

#[tokio::test]
async fn an_out_of_office_answer_is_not_relayed_and_marks_the_caseworker_away() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, jonas) = (bench.new_account("amina"), bench.new_account("jonas"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("jonas", &jonas, "agent")],
        &["amina", "jonas"],
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let request = mail(
        &requester.address,
        &help.address,
        "Work permit",
        Some("permit-1@phone.example"),
        "",
        "Can I work while I wait?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);
    let read = parse(&notification.raw, &ParseLimits::default());
    let reply_to = read.reply_to.first().expect("reply-to").address.clone();
    let subject = read.subject.unwrap_or_default();
    let ooo = format!(
        "From: {from}\r\nTo: {reply_to}\r\nSubject: Automatic reply: {subject}\r\nAuto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\nMessage-ID: <ooo-{n}@volunteers.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI am on leave and back on 2030-01-07. For urgent matters call the office.\r\n",
        from = amina.address,
        n = rand::random::<u32>(),
    );
    bench
        .send_mail(&amina.address, &[&reply_to], ooo.as_bytes())
        .await
        .expect("send ooo");
    // The ticket goes back to routing and reaches Jonas; nothing reaches the requester.
    let handed = wait_count(bench, &daemon, &jonas, 1).await;
    assert!(handed[0].contains("[#1] Work permit"));
    daemon.terminate().await.expect("stop");
    assert!(
        bench
            .list(&requester, "INBOX")
            .await
            .expect("list")
            .is_empty(),
        "an out-of-office answer is never relayed"
    );
    let output = daemon.cli(&["agent", "show", "amina", "--json"]);
    let agent: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(agent["away"], true);
    assert_eq!(agent["away_until"], "2030-01-07T00:00:00Z");
}

#[tokio::test]
async fn replies_without_a_valid_token_for_the_ticket_are_never_relayed() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("carol", &carol, "coordinator")],
        &["amina"],
    );
    let help = daemon.help.clone();
    let (first, second) = (
        bench.new_account("requester"),
        bench.new_account("requester"),
    );
    daemon.start();
    for (who, id) in [
        (&first, "one@phone.example"),
        (&second, "two@phone.example"),
    ] {
        let request = mail(
            &who.address,
            &help.address,
            "Appeal deadline",
            Some(id),
            "",
            "When is the deadline?",
        );
        bench
            .send_mail(&who.address, &[&help.address], &request)
            .await
            .expect("send");
        wait_count(
            bench,
            &daemon,
            &amina,
            if id.starts_with("one") { 1 } else { 2 },
        )
        .await;
    }
    let notifications = bench.list(&amina, "INBOX").await.expect("list");
    let for_first = notifications
        .iter()
        .find(|m| m.contains("[#1]"))
        .expect("notification for #1");

    // 1. The right caseworker, but no token: straight to the help address with the tag.
    let no_token = mail(
        &amina.address,
        &help.address,
        "Re: [#2] Appeal deadline",
        Some("notoken@volunteers.example"),
        "",
        "The deadline is Friday.",
    );
    bench
        .send_mail(&amina.address, &[&help.address], &no_token)
        .await
        .expect("send");
    // 2. The token of ticket #1 on a reply about ticket #2.
    let (reply_to, other) = gmail_reply(&amina, &for_first.raw, "The deadline is Monday.");
    let other = String::from_utf8_lossy(&other)
        .replace("[#1]", "[#2]")
        .into_bytes();
    bench
        .send_mail(&amina.address, &[&reply_to], &other)
        .await
        .expect("send");
    // 3. A stranger copying the tag: a new ticket of their own, nothing relayed.
    let stranger = bench.new_account("stranger");
    let copied = mail(
        &stranger.address,
        &help.address,
        "Re: [#1] Appeal deadline",
        Some("copied@elsewhere.example"),
        "",
        "Tell me about #1.",
    );
    bench
        .send_mail(&stranger.address, &[&help.address], &copied)
        .await
        .expect("send");

    // Amina is told twice why her replies were not sent; the coordinator hears of both.
    let told = harness::wait_until(PATIENCE, || {
        let (amina, carol) = (amina.clone(), carol.clone());
        async move {
            let amina_told = bench
                .list(&amina, "INBOX")
                .await
                .map(|l| l.iter().filter(|m| m.contains("was NOT sent")).count())
                .unwrap_or(0);
            let carol_told = bench
                .list(&carol, "INBOX")
                .await
                .map(|l| l.iter().filter(|m| m.contains("was refused")).count())
                .unwrap_or(0);
            amina_told == 2 && carol_told == 2
        }
    })
    .await;
    assert!(
        told.is_ok(),
        "refusals not reported:\n{}",
        daemon.log_tail()
    );
    daemon.terminate().await.expect("stop");
    for requester in [&first, &second] {
        assert!(
            bench
                .list(requester, "INBOX")
                .await
                .expect("list")
                .is_empty(),
            "nothing was relayed"
        );
    }
    let tickets = daemon.tickets();
    assert_eq!(
        tickets.len(),
        3,
        "the stranger got a ticket of their own: {tickets:#?}"
    );
    assert_eq!(tickets[2]["requester"], stranger.address.as_str());
}

#[tokio::test]
async fn coordinators_merge_assign_and_close_from_the_command_line_while_the_daemon_runs() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, jonas) = (bench.new_account("amina"), bench.new_account("jonas"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("jonas", &jonas, "agent")],
        &["amina"],
    );
    let help = daemon.help.clone();
    let (mother, son) = (bench.new_account("mother"), bench.new_account("son"));
    daemon.start();
    let first = mail(
        &mother.address,
        &help.address,
        "Our asylum case",
        Some("mother-1@phone.example"),
        "",
        "I write for my family.",
    );
    bench
        .send_mail(&mother.address, &[&help.address], &first)
        .await
        .expect("send");
    wait_count(bench, &daemon, &amina, 1).await;
    let second = mail(
        &son.address,
        &help.address,
        "My mother's case",
        Some("son-1@phone.example"),
        "",
        "I am her son.",
    );
    bench
        .send_mail(&son.address, &[&help.address], &second)
        .await
        .expect("send");
    wait_count(bench, &daemon, &amina, 2).await;

    // Through the control socket, while the daemon holds the store.
    cli_ok(&daemon, &["ticket", "merge", "2", "1"]);
    cli_ok(&daemon, &["ticket", "assign", "1", "jonas"]);
    let handed = wait_count(bench, &daemon, &jonas, 1).await;
    assert!(handed[0].contains("[#1] Our asylum case"));
    // The son's reply to his own message now joins the merged ticket.
    let follow = mail(
        &son.address,
        &help.address,
        "Re: My mother's case",
        Some("son-2@phone.example"),
        "In-Reply-To: <son-1@phone.example>\r\n",
        "Here is her passport.",
    );
    bench
        .send_mail(&son.address, &[&help.address], &follow)
        .await
        .expect("send");
    let followed = wait_count(bench, &daemon, &jonas, 2).await;
    assert!(followed.iter().any(|m| m.contains("Here is her passport.")));
    cli_ok(&daemon, &["ticket", "close", "1"]);
    daemon.terminate().await.expect("stop");

    let one = daemon.ticket(1);
    assert_eq!(one["status"], "closed");
    assert_eq!(one["owner"], "jonas");
    let ids: Vec<&str> = one["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "mother-1@phone.example",
            "son-1@phone.example",
            "son-2@phone.example"
        ]
    );
    let two = daemon.ticket(2);
    assert_eq!(two["status"], "closed");
    assert!(two["messages"].as_array().expect("messages").is_empty());
}

#[tokio::test]
async fn undeliverable_answers_and_bounces_reach_the_caseworker_not_a_new_ticket() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();

    // 1. A requester whose mailbox no longer exists: the relay's SMTP refusal becomes a dead
    //    letter, and the caseworker is told.
    answer_a_requester_whose_mailbox_is_gone(bench, &mut daemon, &amina).await;

    // 2. A delivery report for a relayed answer joins its ticket and the caseworker is told.
    let request = mail(
        &requester.address,
        &help.address,
        "Shelter",
        Some("shelter-1@phone.example"),
        "",
        "Where can I sleep tonight?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = crate::routing::mail_containing(bench, &mut daemon, &amina, "Shelter").await;
    let (reply_to, answer) = gmail_reply(
        &amina,
        &notification.raw,
        "The night shelter on Main Street has beds.",
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    let relayed = wait_count(bench, &daemon, &requester, 1).await.remove(0);
    let relayed_id = parse(&relayed.raw, &ParseLimits::default())
        .message_id
        .expect("relayed Message-ID");
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@relay.example>\r\nTo: {help}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{n}@relay.example>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered: mailbox full.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.2.2\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{id}>\r\nSubject: Re: Shelter [#2]\r\n--b--\r\n",
        help = help.address,
        n = rand::random::<u32>(),
        to = requester.address,
        id = relayed_id.as_str(),
    );
    bench
        .send_mail("", &[&help.address], dsn.as_bytes())
        .await
        .expect("send dsn");
    crate::routing::mail_containing(bench, &mut daemon, &amina, "bounced").await;
    daemon.terminate().await.expect("stop");
    assert_eq!(
        daemon.tickets().len(),
        2,
        "the delivery report is not a ticket of its own"
    );
    let two = daemon.ticket(2);
    let kinds: Vec<&str> = two["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"bounce"), "{kinds:?}");
    let one = daemon.ticket(1);
    let kinds: Vec<&str> = one["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"send_failed"), "{kinds:?}");
}

/// A reply as Outlook builds it: the answer, then a From/Sent/To/Subject block over the
/// notification, unquoted.
fn outlook_reply(from: &Account, notification: &[u8], answer: &str) -> (String, Vec<u8>) {
    let read = parse(notification, &ParseLimits::default());
    let reply_to = read
        .reply_to
        .first()
        .expect("notification has a Reply-To")
        .address
        .clone();
    let parent = read.message_id.expect("notification has a Message-ID");
    let subject = read.subject.unwrap_or_default();
    let raw = format!(
        "From: Caseworker <{from}>\r\nTo: Casemail Test Helpdesk <{reply_to}>\r\nSubject: RE: {subject}\r\nMessage-ID: <AM0PR{nonce}@outlook.example>\r\nIn-Reply-To: <{parent}>\r\nThread-Topic: {subject}\r\nX-Mailer: Microsoft Outlook 16.0\r\nDate: Sun, 22 Nov 2026 11:05:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n{answer}\r\n\r\n________________________________\r\nFrom: Casemail Test Helpdesk <{reply_to}>\r\nSent: Sunday, November 22, 2026 10:00 AM\r\nTo: {from}\r\nSubject: {subject}\r\n\r\n{text}\r\n",
        from = from.address,
        nonce = rand::random::<u32>(),
        text = read.text.replace('\n', "\r\n"),
    );
    (reply_to, raw.into_bytes())
}

/// A request from an address the mail server does not know, answered by `amina` (who must be
/// on duty with nothing in her inbox yet): the answer is refused for good, and casemail tells
/// her. Returns the address.
pub(crate) async fn answer_a_requester_whose_mailbox_is_gone(
    bench: &Bench,
    daemon: &mut Daemon,
    amina: &Account,
) -> String {
    let gone = format!("gone-{}@casemail.test", rand::random::<u32>());
    let request = mail(
        &gone,
        &daemon.help.address,
        "Lost phone",
        Some(&format!("lost-{}@phone.example", rand::random::<u32>())),
        "",
        "Please write back.",
    );
    bench
        .append(&daemon.help, "INBOX", &request, &[])
        .await
        .expect("append");
    let notification = wait_count(bench, daemon, amina, 1).await.remove(0);
    let (reply_to, answer) = gmail_reply(amina, &notification.raw, "We will call you instead.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    crate::routing::mail_containing(bench, daemon, amina, "could not be delivered").await;
    gone
}

#[tokio::test]
async fn outlook_replies_merge_and_spam_and_notspam_by_mail() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "coordinator")], &["amina"]);
    let help = daemon.help.clone();
    let (wife, husband) = (bench.new_account("wife"), bench.new_account("husband"));
    daemon.start();
    let first = mail(
        &wife.address,
        &help.address,
        "Our visa",
        Some("wife-1@phone.example"),
        "",
        "We applied in May.",
    );
    bench
        .send_mail(&wife.address, &[&help.address], &first)
        .await
        .expect("send");
    let n1 = crate::routing::mail_containing(bench, &mut daemon, &amina, "[#1] Our visa").await;
    let second = mail(
        &husband.address,
        &help.address,
        "Visa for my wife",
        Some("husband-1@phone.example"),
        "",
        "I am her husband.",
    );
    bench
        .send_mail(&husband.address, &[&help.address], &second)
        .await
        .expect("send");
    let n2 =
        crate::routing::mail_containing(bench, &mut daemon, &amina, "[#2] Visa for my wife").await;
    let spam = mail(
        "offers@bulk.example",
        &help.address,
        "Cheap watches",
        Some("spam-1@bulk.example"),
        "",
        "Buy now.",
    );
    bench
        .append(&help, "INBOX", &spam, &[])
        .await
        .expect("append");
    let n3 =
        crate::routing::mail_containing(bench, &mut daemon, &amina, "[#3] Cheap watches").await;

    // An Outlook answer: only the new text reaches the wife.
    let (reply_to, answer) = outlook_reply(
        &amina,
        &n1.raw,
        "Your appointment is on 3 December at 10:00.",
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    let received = wait_count(bench, &daemon, &wife, 1).await.remove(0);
    let text = parse(&received.raw, &ParseLimits::default()).text;
    assert!(text.contains("3 December at 10:00"), "{text}");
    assert!(
        !text.contains("We applied in May") && !text.contains("Sent:"),
        "history was relayed: {text}"
    );

    // #merge by mail: the husband's ticket joins the wife's.
    let (reply_to, merge) = outlook_reply(&amina, &n2.raw, "#merge 1");
    bench
        .send_mail(&amina.address, &[&reply_to], &merge)
        .await
        .expect("send");
    crate::routing::mail_containing(bench, &mut daemon, &amina, "merged into #1").await;
    // #spam by mail.
    let (reply_to, spam_command) = outlook_reply(&amina, &n3.raw, "#spam");
    bench
        .send_mail(&amina.address, &[&reply_to], &spam_command)
        .await
        .expect("send");
    crate::routing::mail_containing(bench, &mut daemon, &amina, "#3 marked as spam").await;
    assert_eq!(daemon.ticket(3)["status"], "spam");
    // #spam explains itself in spam list and teaches the classifier the ticket's mail.
    let held: Vec<serde_json::Value> = serde_json::from_str(&crate::routing::cli_ok(
        &daemon,
        &["spam", "list", "--json"],
    ))
    .expect("spam list JSON");
    let entry = held
        .iter()
        .find(|t| t["number"] == 3)
        .expect("ticket 3 is listed");
    assert_eq!(entry["reasons"][0]["signal"], "caseworker", "{entry}");
    // #notspam by mail undoes it and teaches the classifier the other way.
    let (reply_to, not_spam) = outlook_reply(&amina, &n3.raw, "#notspam");
    bench
        .send_mail(&amina.address, &[&reply_to], &not_spam)
        .await
        .expect("send");
    crate::routing::mail_containing(bench, &mut daemon, &amina, "#3 is not spam").await;
    daemon.terminate().await.expect("stop");

    assert_eq!(daemon.ticket(2)["merged_into"], 1);
    let one = daemon.ticket(1);
    let ids: Vec<&str> = one["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert!(ids.contains(&"husband-1@phone.example"), "{ids:?}");
    assert_eq!(daemon.ticket(3)["status"], "open");
    let events = daemon.ticket(3)["events"].to_string();
    assert!(events.contains("message(s) learned as spam"), "{events}");
    assert!(events.contains("message(s) learned as ham"), "{events}");
    let held: Vec<serde_json::Value> = serde_json::from_str(&crate::routing::cli_ok(
        &daemon,
        &["spam", "list", "--json"],
    ))
    .expect("spam list JSON");
    assert!(held.iter().all(|t| t["number"] != 3), "{held:?}");
    assert!(
        bench
            .list(&husband, "INBOX")
            .await
            .expect("list")
            .is_empty(),
        "commands are never relayed"
    );
}

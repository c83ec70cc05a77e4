//! Loop and bounce safety on the bench: acknowledgements go once to people and never to
//! machines, a robot that answers everything cannot start a mail storm, a hard bounce
//! suppresses its address, and the first-run backfill sends nothing at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use casemail::mail::parse::{ParseLimits, parse};
use serde_json::Value;

use crate::bridge::{gmail_reply, register, wait_count};
use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench};
use crate::ingest::{mail, wait_drained};
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota, mail_containing};

const PATIENCE: Duration = Duration::from_secs(90);

fn acknowledgements_on() -> (&'static str, &'static str, toml::Value) {
    ("acknowledge", "enabled", toml::Value::Boolean(true))
}

fn new_ticket_each_time() -> (&'static str, &'static str, toml::Value) {
    (
        "threading",
        "one_open_ticket_per_requester",
        toml::Value::Boolean(false),
    )
}

/// One series of the daemon's `/metrics` (`name` or `name{label="value"}`); 0 when absent.
async fn metric(daemon: &Daemon, series: &str) -> f64 {
    let Ok((200, body)) = daemon.http_get("/metrics").await else {
        return f64::NAN;
    };
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn sent(daemon: &Daemon, kind: &str) -> f64 {
    metric(
        daemon,
        &format!("casemail_relay_sent_total{{kind=\"{kind}\"}}"),
    )
    .await
}

async fn count(bench: &Bench, account: &Account, folder: &str) -> usize {
    bench
        .list(account, folder)
        .await
        .map(|list| list.len())
        .unwrap_or(usize::MAX)
}

/// Every event of every ticket: `(ticket, kind, detail)`.
fn events(daemon: &Daemon) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    for ticket in daemon.tickets() {
        let number = ticket["number"].as_u64().expect("number");
        for event in daemon.ticket(number)["events"].as_array().expect("events") {
            out.push((
                number,
                event["kind"].as_str().unwrap_or("").to_owned(),
                event["detail"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    out
}

/// Messages of `kind` the relay has sent, as the tickets record them: the `sent` event is
/// written in the same transaction that takes the message out of the outbox, so the two never
/// disagree (the metric is counted just after).
fn sent_events(daemon: &Daemon, kind: &str) -> usize {
    events(daemon)
        .iter()
        .filter(|(_, event, detail)| event == "sent" && detail.starts_with(kind))
        .count()
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn only_a_new_request_from_a_person_is_acknowledged_once_a_day_in_its_thread() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[acknowledgements_on(), new_ticket_each_time()]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let person = bench.new_account("person");
    let newsletter = bench.new_account("newsletter");
    let shop = bench.new_account("shop");
    daemon.start();
    let n: u32 = rand::random();

    // Machines: bulk mail, an automatic notice, a message from MAILER-DAEMON.
    let bulk = mail(
        &newsletter.address,
        &help.address,
        "Our autumn news",
        Some(&format!("news-{n}@lists.example")),
        "Precedence: bulk\r\n",
        "Read all about it.",
    );
    let automatic = mail(
        &shop.address,
        &help.address,
        "Your order has shipped",
        Some(&format!("order-{n}@shop.example")),
        "Auto-Submitted: auto-generated\r\n",
        "Parcel 123 is on its way.",
    );
    let daemon_notice = mail(
        "Mail Delivery System <MAILER-DAEMON@casemail.test>",
        &help.address,
        "Delayed Mail (still being retried)",
        Some(&format!("delay-{n}@casemail.test")),
        "",
        "Your message could not be delivered yet.",
    );
    bench
        .send_mail(&newsletter.address, &[&help.address], &bulk)
        .await
        .expect("send");
    bench
        .send_mail(&shop.address, &[&help.address], &automatic)
        .await
        .expect("send");
    bench
        .send_mail("", &[&help.address], &daemon_notice)
        .await
        .expect("send");
    // A person's new request.
    let first_id = format!("first-{n}@phone.example");
    let first = mail(
        &format!("Person <{}>", person.address),
        &help.address,
        "Need a lawyer",
        Some(&first_id),
        &format!("References: <earlier-{n}@phone.example>\r\n"),
        "My hearing is next week.",
    );
    bench
        .send_mail(&person.address, &[&help.address], &first)
        .await
        .expect("send");
    // Every ticket reached the caseworker: all four are filed.
    wait_count(bench, &daemon, &amina, 4).await;
    // The same person's second new request that day.
    let second = mail(
        &person.address,
        &help.address,
        "Also my rent",
        Some(&format!("second-{n}@phone.example")),
        "",
        "And the landlord wants money.",
    );
    bench
        .send_mail(&person.address, &[&help.address], &second)
        .await
        .expect("send");
    wait_count(bench, &daemon, &amina, 5).await;
    let settled = harness::wait_until(PATIENCE, || async {
        metric(&daemon, "casemail_outbox_messages").await == 0.0
            && sent(&daemon, "acknowledgement").await == 1.0
            && count(bench, &person, "INBOX").await == 1
    })
    .await;
    assert!(settled.is_ok(), "{}", daemon.log_tail());

    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 5);
    let lawyer = tickets
        .iter()
        .find(|t| t["subject"] == "Need a lawyer")
        .expect("the request's ticket")["number"]
        .as_u64()
        .expect("number");
    let acknowledgement = bench.list(&person, "INBOX").await.expect("list").remove(0);
    let text = String::from_utf8_lossy(&acknowledgement.raw).into_owned();
    // The ticket number and the helpdesk's name, never the subject the sender chose.
    let subject = header(&text, "Subject").expect("a subject");
    assert!(
        subject.starts_with(&format!("[#{lawyer}] Your message to ")),
        "{subject}"
    );
    assert!(!subject.contains("lawyer"), "{subject}");
    assert_eq!(
        header(&text, "In-Reply-To"),
        Some(format!("<{first_id}>").as_str())
    );
    let read = parse(&acknowledgement.raw, &ParseLimits::default());
    let references: Vec<&str> = read.references.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        references,
        vec![format!("earlier-{n}@phone.example"), first_id.clone()]
    );
    assert_eq!(header(&text, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(
        header(&text, "X-Casemail-Loop"),
        Some(help.address.as_str())
    );
    assert_eq!(
        read.from.as_ref().map(|f| f.address.as_str()),
        Some(help.address.as_str())
    );
    assert!(read.text.contains(&format!("#{lawyer}")), "{}", read.text);
    assert!(read.text.contains("What happens next"));
    assert!(
        !acknowledgement.contains(&amina.address),
        "no caseworker address in an acknowledgement"
    );
    for machine in [&newsletter, &shop] {
        assert_eq!(count(bench, machine, "INBOX").await, 0);
    }
    // The store agrees: one acknowledgement was sent, on the person's first ticket.
    let acknowledged: Vec<u64> = events(&daemon)
        .into_iter()
        .filter(|(_, kind, detail)| kind == "sent" && detail.starts_with("acknowledgement"))
        .map(|(ticket, _, _)| ticket)
        .collect();
    assert_eq!(acknowledged, vec![lawyer]);
    daemon.terminate().await.expect("stop");
}

/// What the robot has done so far.
#[derive(Default)]
struct Robot {
    /// UIDs of the messages it has answered.
    answered: Vec<u32>,
    /// Messages sent to the help address (by the test and the robot).
    sent_to_help: usize,
}

/// A mailbox that answers every message it receives, through SMTP to the help address, with
/// `extra` headers (none for a naive robot). Its answers carry no threading headers and a
/// subject of their own. Returns how many it answered in this step.
async fn robot_step(
    bench: &Bench,
    robot: &Account,
    help: &Account,
    extra: &str,
    state: &Mutex<Robot>,
) -> usize {
    let Ok(inbox) = bench.list(robot, "INBOX").await else {
        return 0;
    };
    let mut answered = 0;
    for message in inbox {
        let seen = state
            .lock()
            .expect("robot state")
            .answered
            .contains(&message.uid);
        if seen {
            continue;
        }
        let answer = mail(
            &robot.address,
            &help.address,
            "Thank you for your message",
            Some(&format!("robot-{}@robot.example", rand::random::<u64>())),
            extra,
            "Thank you for your message. We will get back to you as soon as possible.",
        );
        bench
            .send_mail(&robot.address, &[&help.address], &answer)
            .await
            .expect("robot sends");
        let mut state = state.lock().expect("robot state");
        state.answered.push(message.uid);
        state.sent_to_help += 1;
        answered += 1;
    }
    answered
}

/// Runs the robot until nothing moves any more: every message sent to the help address is
/// processed, the outbox is empty, every message casemail sent has arrived and the robot has
/// answered all of them.
async fn run_robot_until_quiet(
    bench: &Bench,
    daemon: &Daemon,
    robot: &Account,
    caseworker: &Account,
    extra: &str,
    state: &Arc<Mutex<Robot>>,
) {
    let help = daemon.help.clone();
    let quiet = harness::wait_until(Duration::from_secs(180), || {
        let state = state.clone();
        let help = help.clone();
        async move {
            if robot_step(bench, robot, &help, extra, &state).await > 0 {
                return false;
            }
            let (sent_to_help, answered) = {
                let state = state.lock().expect("robot state");
                (state.sent_to_help, state.answered.len())
            };
            // Each mailbox is counted once, so every comparison is about the same moment; mail
            // that reached the robot after its step above is not answered yet.
            let at_robot = count(bench, robot, "INBOX").await;
            let at_caseworker = count(bench, caseworker, "INBOX").await;
            at_robot == answered
                && count(bench, &help, "INBOX").await == 0
                && count(bench, &help, "Processed").await == sent_to_help
                && metric(daemon, "casemail_outbox_messages").await == 0.0
                && at_robot == sent_events(daemon, "acknowledgement") + sent_events(daemon, "relay")
                && at_caseworker == sent_events(daemon, "notification")
        }
    })
    .await;
    assert!(quiet.is_ok(), "no quiescence: {}", daemon.log_tail());
}

async fn robot_exchange(extra: &str) {
    let bench = harness::shared().await;
    let per_hour = 3;
    let mut daemon = Daemon::live(
        bench,
        &[
            acknowledgements_on(),
            new_ticket_each_time(),
            (
                "loops",
                "per_recipient_per_hour",
                toml::Value::Integer(per_hour),
            ),
            ("loops", "per_ticket_per_day", toml::Value::Integer(5)),
        ],
    );
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let robot = bench.new_account("robot");
    let help = daemon.help.clone();
    daemon.start();
    let state = Arc::new(Mutex::new(Robot::default()));
    // Someone at the robot's address writes once; from then on the robot answers whatever
    // arrives, and every answer of its own would be a new ticket.
    let opening = mail(
        &robot.address,
        &help.address,
        "Question about my case",
        Some(&format!("opening-{}@robot.example", rand::random::<u32>())),
        "",
        "Can you help me?",
    );
    bench
        .send_mail(&robot.address, &[&help.address], &opening)
        .await
        .expect("send");
    state.lock().expect("robot state").sent_to_help += 1;
    run_robot_until_quiet(bench, &daemon, &robot, &amina, extra, &state).await;

    // The exchange stopped by itself: one acknowledgement, one answer from the robot.
    let received = count(bench, &robot, "INBOX").await;
    let answered = state.lock().expect("robot state").answered.len();
    assert_eq!(
        received,
        1,
        "casemail sent the robot one acknowledgement: {}",
        daemon.log_tail()
    );
    assert!(received <= per_hour as usize);
    assert_eq!(answered, 1, "{:?}\n{}", events(&daemon), daemon.log_tail());
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 2, "the request and the robot's answer");
    assert_eq!(count(bench, &amina, "INBOX").await, 2);
    let received = bench.list(&robot, "INBOX").await.expect("list").remove(0);
    assert!(received.contains("Auto-Submitted: auto-replied"));
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn a_naive_robot_that_answers_everything_exchanges_one_message_and_stops() {
    robot_exchange("").await;
}

#[tokio::test]
async fn a_robot_that_marks_its_answers_exchanges_one_message_and_stops() {
    robot_exchange("Auto-Submitted: auto-replied\r\n").await;
}

#[tokio::test]
async fn caps_hold_back_automatic_mail_and_record_it_on_the_ticket() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[("loops", "per_recipient_per_hour", toml::Value::Integer(2))],
    );
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    daemon.start();
    let senders: Vec<Account> = (0..4).map(|_| bench.new_account("requester")).collect();
    for (index, sender) in senders.iter().enumerate() {
        let request = mail(
            &sender.address,
            &help.address,
            &format!("Request {index}"),
            Some(&format!(
                "cap-{index}-{}@phone.example",
                rand::random::<u32>()
            )),
            "",
            "Please help.",
        );
        bench
            .send_mail(&sender.address, &[&help.address], &request)
            .await
            .expect("send");
    }
    wait_drained(bench, &mut daemon, &["INBOX"], 4).await;
    let settled = harness::wait_until(PATIENCE, || async {
        metric(&daemon, "casemail_outbox_messages").await == 0.0
            && sent(&daemon, "notification").await == 2.0
            && count(bench, &amina, "INBOX").await == 2
    })
    .await;
    assert!(settled.is_ok(), "{}", daemon.log_tail());
    let capped: Vec<(u64, String, String)> = events(&daemon)
        .into_iter()
        .filter(|(_, kind, _)| kind == "mail_capped")
        .collect();
    assert_eq!(capped.len(), 2, "{capped:?}");
    for (_, _, detail) in &capped {
        assert!(detail.starts_with("notification not sent"), "{detail}");
    }
    // Every ticket is still assigned: only the mail was held back.
    for ticket in daemon.tickets() {
        assert_eq!(ticket["owner"], "amina");
    }
    daemon.terminate().await.expect("stop");
}

fn suppressions(daemon: &Daemon) -> Vec<Value> {
    serde_json::from_str(&cli_ok(daemon, &["suppression", "list", "--json"]))
        .expect("suppression list JSON")
}

#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_and_a_later_answer_is_held_and_reported() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let request = mail(
        &requester.address,
        &help.address,
        "Shelter",
        Some(&format!("shelter-{}@phone.example", rand::random::<u32>())),
        "",
        "Where can I sleep tonight?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = mail_containing(bench, &mut daemon, &amina, "Shelter").await;
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "Try the night shelter.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    let relayed = wait_count(bench, &daemon, &requester, 1).await.remove(0);
    let relayed_id = parse(&relayed.raw, &ParseLimits::default())
        .message_id
        .expect("relayed Message-ID");

    // The requester's mailbox is gone: a delivery report with a 5.x.x status comes back.
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@relay.example>\r\nTo: {help}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{n}@relay.example>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.1.1\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{id}>\r\nSubject: Re: Shelter [#1]\r\n--b--\r\n",
        help = help.address,
        n = rand::random::<u32>(),
        to = requester.address.to_uppercase(),
        id = relayed_id.as_str(),
    );
    bench
        .send_mail("", &[&help.address], dsn.as_bytes())
        .await
        .expect("send dsn");
    mail_containing(bench, &mut daemon, &amina, "bounced").await;
    let listed = suppressions(&daemon);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["address"], requester.address.as_str());
    assert_eq!(listed[0]["ticket"], 1);
    assert_eq!(listed[0]["reason"], "delivery status 5.1.1");
    let text = cli_ok(&daemon, &["suppression", "list"]);
    assert!(text.contains(&requester.address), "{text}");

    // The caseworker answers again: nothing goes to the suppressed address, the ticket says
    // so, and the caseworker is told the answer could not be delivered.
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "Or call this number.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "could not be delivered").await;
    let ticket = daemon.ticket(1);
    let kinds: Vec<&str> = ticket["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["bounce", "address_suppressed", "mail_suppressed"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let texts: Vec<&str> = ticket["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("Or call this number.")),
        "the held answer is kept with the ticket"
    );
    assert_eq!(
        metric(&daemon, "casemail_outbox_messages").await,
        0.0,
        "nothing waits to be sent"
    );
    assert_eq!(count(bench, &requester, "INBOX").await, 1);
    // Never shown as delivered: not counted as relayed, and `ticket show` says it was not sent.
    assert_eq!(metric(&daemon, "casemail_replies_relayed_total").await, 1.0);
    assert_eq!(
        metric(&daemon, "casemail_replies_not_sent_total").await,
        1.0
    );
    let not_sent: Vec<&str> = ticket["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["not_sent"].as_str())
        .collect();
    assert_eq!(not_sent.len(), 1, "{ticket:#}");
    assert!(not_sent[0].contains("suppressed"), "{not_sent:?}");
    let letters: Vec<Value> =
        serde_json::from_str(&cli_ok(&daemon, &["deadletter", "list", "--json"]))
            .expect("deadletter list JSON");
    let [letter] = &letters[..] else {
        panic!("one dead letter: {letters:?}");
    };
    assert_eq!(letter["kind"], "relay");
    assert_eq!(letter["ticket"], 1);
    let id = letter["id"].as_u64().expect("id").to_string();
    // A retry while the address is suppressed is refused, through the daemon.
    let refused = daemon.cli(&["deadletter", "retry", &id]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("suppression remove"),
        "{refused:?}"
    );

    // Lifting the suppression and retrying the dead letter delivers the held answer.
    cli_ok(&daemon, &["suppression", "remove", &requester.address]);
    assert!(suppressions(&daemon).is_empty());
    let retried = cli_ok(&daemon, &["deadletter", "retry", &id]);
    assert!(retried.contains("back in the outbox"), "{retried}");
    mail_containing(bench, &mut daemon, &requester, "Or call this number.").await;
    assert_eq!(
        cli_ok(&daemon, &["deadletter", "list"]).trim(),
        "no dead letters"
    );
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "Your mailbox works again.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &requester, "Your mailbox works again.").await;
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn an_address_the_smtp_server_refuses_is_suppressed() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    daemon.start();
    let gone =
        crate::bridge::answer_a_requester_whose_mailbox_is_gone(bench, &mut daemon, &amina).await;
    let listed = suppressions(&daemon);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["address"], gone.as_str());
    assert!(
        listed[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("refused with 55")),
        "{listed:?}"
    );
    let kinds: Vec<String> = events(&daemon)
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect();
    assert!(kinds.iter().any(|k| k == "address_suppressed"), "{kinds:?}");
    daemon.terminate().await.expect("stop");
}

/// A time zone in which it is now between 01:00 and 02:00, so a digest due at noon there is
/// not due while the test runs.
fn zone_just_after_midnight() -> String {
    let hour = i64::from(
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .hour(),
    );
    let mut offset = (1 - hour).rem_euclid(24);
    if offset > 14 {
        offset -= 24;
    }
    // The Etc zones name the offset with the opposite sign (POSIX).
    match offset {
        0 => "UTC".to_owned(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    }
}

#[tokio::test]
async fn the_first_run_backfill_of_500_messages_sends_nothing_at_all() {
    const COUNT: usize = 500;
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(
        bench,
        &[
            acknowledgements_on(),
            ("ingest", "batch_size", toml::Value::Integer(100)),
            (
                "rota",
                "timezone",
                toml::Value::String(zone_just_after_midnight()),
            ),
            ("rota", "digest_at", toml::Value::String("12:00".to_owned())),
        ],
    );
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    add_agent(&daemon, "amina", &amina, "agent");
    add_agent(&daemon, "carol", &carol, "coordinator");
    import_rota(
        &daemon,
        &format!("[[shift]]\nagent = \"amina\"\n{ALWAYS}[[shift]]\nagent = \"carol\"\n{ALWAYS}"),
    );
    let help = daemon.help.clone();
    let requesters: Vec<Account> = (0..5).map(|_| bench.new_account("old")).collect();
    let mut session = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    for i in 0..COUNT {
        let requester = &requesters[i % requesters.len()];
        // A mix of what an old inbox holds: plain requests, follow-ups in a thread, bulk mail.
        let extra = match i % 10 {
            0 => "Precedence: bulk\r\n".to_owned(),
            1..=3 if i >= 10 => format!("In-Reply-To: <old-{}@phone.example>\r\n", i - 5),
            _ => String::new(),
        };
        let raw = mail(
            &requester.address,
            &help.address,
            &format!("old request {i}"),
            Some(&format!("old-{i}@phone.example")),
            &extra,
            &format!("Message number {i}."),
        );
        session
            .append("INBOX", None, None, &raw)
            .await
            .expect("append");
    }
    session.logout().await.ok();
    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], COUNT).await;

    // A team change makes the process stage sweep at once; wait until a sweep has finished
    // after the whole backfill, so waiting tickets would have been assigned by now.
    let marked = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    cli_ok(&daemon, &["agent", "back", "amina"]);
    let swept = harness::wait_until(PATIENCE, || async {
        metric(&daemon, "casemail_process_last_alive_timestamp_seconds").await > marked
    })
    .await;
    assert!(swept.is_ok(), "{}", daemon.log_tail());

    assert_eq!(metric(&daemon, "casemail_outbox_messages").await, 0.0);
    for kind in [
        "notification",
        "acknowledgement",
        "relay",
        "digest",
        "bounce",
    ] {
        assert_eq!(sent(&daemon, kind).await, 0.0, "{kind} sent");
    }
    for account in requesters.iter().chain([&amina, &carol]) {
        assert_eq!(
            count(bench, account, "INBOX").await,
            0,
            "{} received mail",
            account.address
        );
    }
    let tickets = daemon.tickets();
    assert!(!tickets.is_empty());
    for ticket in &tickets {
        assert!(ticket["owner"].is_null(), "{ticket}");
        let flags = ticket["flags"].as_array().expect("flags");
        assert!(flags.iter().any(|f| f == "backfilled"), "{ticket}");
    }
    daemon.terminate().await.expect("stop");

    // The log says it is a silent backfill and how far it came, not one line per message.
    let log = std::fs::read_to_string(&daemon.log_path).unwrap_or_default();
    assert!(
        log.contains("filed silently as a backfill"),
        "{}",
        daemon.log_tail()
    );
    let last = log
        .lines()
        .rfind(|line| line.contains("Backfill progress."))
        .unwrap_or_default();
    assert!(
        last.contains(&format!("filed={COUNT}")) && last.contains(&format!("of={COUNT}")),
        "{last}"
    );
    assert!(!log.contains("New ticket."), "{}", daemon.log_tail());
}

#[tokio::test]
async fn a_backfill_interrupted_by_sigkill_stays_a_backfill_after_the_restart() {
    const COUNT: usize = 600;
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(
        bench,
        &[
            acknowledgements_on(),
            ("ingest", "batch_size", toml::Value::Integer(50)),
            // No digest falls due while the test runs.
            (
                "rota",
                "timezone",
                toml::Value::String(zone_just_after_midnight()),
            ),
            ("rota", "digest_at", toml::Value::String("12:00".to_owned())),
        ],
    );
    let amina = bench.new_account("amina");
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(&daemon, &format!("[[shift]]\nagent = \"amina\"\n{ALWAYS}"));
    let help = daemon.help.clone();
    // The second half of the backlog comes from people who are not in the first half, so it
    // would open tickets of its own, routed and notified, if it were taken for live mail.
    let requesters: Vec<Account> = (0..8).map(|_| bench.new_account("old")).collect();
    let mut session = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    for i in 0..COUNT {
        let half = if i < COUNT / 2 { 0 } else { 4 };
        let raw = mail(
            &requesters[half + i % 4].address,
            &help.address,
            &format!("old request {i}"),
            Some(&format!("backlog-{i}@phone.example")),
            "",
            &format!("Message number {i}."),
        );
        session
            .append("INBOX", None, None, &raw)
            .await
            .expect("append");
    }
    session.logout().await.ok();

    // Killed once part of the backlog is filed: the cursor is stored, the backlog is not done.
    let mut watcher = bench
        .imap_session(&help, harness::Security::Plain)
        .await
        .expect("imap session");
    daemon.start();
    let reached = loop {
        let processed = crate::ingest::processed_count(&mut watcher).await;
        if processed >= 60 {
            break processed;
        }
        daemon.assert_running();
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    daemon.kill();
    watcher.logout().await.ok();
    assert!(
        reached < COUNT as u32 / 2,
        "killed in the first half of the backfill ({reached} of {COUNT})"
    );

    daemon.start();
    wait_drained(bench, &mut daemon, &["INBOX"], COUNT).await;
    let marked = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    cli_ok(&daemon, &["agent", "back", "amina"]);
    let swept = harness::wait_until(PATIENCE, || async {
        metric(&daemon, "casemail_process_last_alive_timestamp_seconds").await > marked
    })
    .await;
    assert!(swept.is_ok(), "{}", daemon.log_tail());
    assert_eq!(metric(&daemon, "casemail_outbox_messages").await, 0.0);
    for kind in ["notification", "acknowledgement"] {
        assert_eq!(sent(&daemon, kind).await, 0.0, "{kind} sent");
    }
    for account in requesters.iter().chain([&amina]) {
        assert_eq!(
            count(bench, account, "INBOX").await,
            0,
            "{} received mail",
            account.address
        );
    }
    let tickets = daemon.tickets();
    assert!(!tickets.is_empty());
    for ticket in &tickets {
        assert!(ticket["owner"].is_null(), "{ticket}");
        let flags = ticket["flags"].as_array().expect("flags");
        assert!(flags.iter().any(|f| f == "backfilled"), "{ticket}");
    }
    let log = std::fs::read_to_string(&daemon.log_path).expect("daemon log");
    assert!(
        log.contains("Continuing the first-run backfill:"),
        "{}",
        daemon.log_tail()
    );
    daemon.terminate().await.expect("stop");
}

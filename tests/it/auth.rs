//! Only authenticated mail changes state, on the bench: forged out-of-office answers and
//! delivery reports change nothing while real ones still do; replies that fail authentication,
//! carry two From fields or only a Sender, use an expired token or repeat an answer already
//! relayed are not relayed; a rotated secret keeps old tokens working for its grace period;
//! `#merge` needs the owner of both tickets; notifications warn of forged and stray mail.

use casemail::mail::parse::{ParseLimits, parse};
use serde_json::Value;

use crate::bridge::{gmail_reply, register, wait_count};
use crate::daemon::Daemon;
use crate::harness;
use crate::ingest::{mail, wait_drained};
use crate::routing::{cli_ok, mail_containing};

/// The authserv-id the tests' trusted Authentication-Results fields carry.
const TRUSTED: &str = "mx.bench.example";

fn trusting() -> (&'static str, &'static str, toml::Value) {
    (
        "auth",
        "trusted_authserv_ids",
        toml::Value::Array(vec![toml::Value::String(TRUSTED.to_owned())]),
    )
}

fn event_kinds(daemon: &Daemon, ticket: u64) -> Vec<String> {
    daemon.ticket(ticket)["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

fn suppressed(daemon: &Daemon) -> Vec<String> {
    let listed: Vec<Value> =
        serde_json::from_str(&cli_ok(daemon, &["suppression", "list", "--json"]))
            .expect("suppression list JSON");
    listed
        .iter()
        .filter_map(|s| s["address"].as_str().map(str::to_owned))
        .collect()
}

fn agent_away(daemon: &Daemon, id: &str) -> Value {
    serde_json::from_str::<Value>(&cli_ok(daemon, &["agent", "show", id, "--json"]))
        .expect("agent JSON")["away"]
        .clone()
}

/// A delivery report naming `address` as failed, quoting the message `quoted`.
fn delivery_report(from: &str, help: &str, quoted: &str, address: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {help}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{n}@relay.example>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\nFinal-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{quoted}>\r\nSubject: Re: Work permit [#1]\r\n--b--\r\n",
        n = rand::random::<u32>(),
    )
    .into_bytes()
}

/// The raw reply `gmail_reply` builds, with `extra` header lines added at the top.
fn with_headers(raw: &[u8], extra: &str) -> Vec<u8> {
    let mut out = extra.as_bytes().to_vec();
    out.extend_from_slice(raw);
    out
}

#[tokio::test]
async fn forged_out_of_office_answers_and_delivery_reports_change_nothing_real_ones_do() {
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
        &["amina", "jonas"],
    );
    let help = daemon.help.clone();
    let (requester, mallory, victim) = (
        bench.new_account("requester"),
        bench.new_account("mallory"),
        bench.new_account("victim"),
    );
    daemon.start();
    let request = mail(
        &requester.address,
        &help.address,
        "Work permit",
        Some(&format!("permit-{}@phone.example", rand::random::<u32>())),
        "",
        "Can I work while I wait?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);
    let subject = parse(&notification.raw, &ParseLimits::default())
        .subject
        .unwrap_or_default();

    // A stranger writes an out-of-office answer in Amina's name, to the plain help address.
    let forged_ooo = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Automatic reply: {subject}\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <ooo-{n}@evil.example>\r\n\r\nI am away until 2099-12-31.\r\n",
        from = amina.address,
        to = help.address,
        n = rand::random::<u32>(),
    );
    bench
        .send_mail(&mallory.address, &[&help.address], forged_ooo.as_bytes())
        .await
        .expect("send forged ooo");
    mail_containing(bench, &mut daemon, &carol, "was not acted on").await;
    assert_eq!(agent_away(&daemon, "amina"), false, "nobody is marked away");
    assert!(event_kinds(&daemon, 1).contains(&"auto_reply_noted".to_owned()));

    // Amina answers; the relayed answer's Message-ID is what a delivery report would quote.
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "Yes, after six months.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send answer");
    let relayed = wait_count(bench, &daemon, &requester, 1).await.remove(0);
    let quoted = parse(&relayed.raw, &ParseLimits::default())
        .message_id
        .expect("relayed Message-ID");
    let daemon_from = "Mail Delivery System <MAILER-DAEMON@relay.example>";

    // 1. From a stranger, not a mail system, naming the requester.
    let forged = delivery_report(
        &mallory.address,
        &help.address,
        quoted.as_str(),
        &requester.address,
    );
    bench
        .send_mail(&mallory.address, &[&help.address], &forged)
        .await
        .expect("send");
    // 2. From a mail system, naming someone the answer did not go to.
    let not_recipient =
        delivery_report(daemon_from, &help.address, quoted.as_str(), &victim.address);
    bench
        .send_mail("", &[&help.address], &not_recipient)
        .await
        .expect("send");
    // 3. From a mail system, naming a caseworker.
    let caseworker = delivery_report(daemon_from, &help.address, quoted.as_str(), &amina.address);
    bench
        .send_mail("", &[&help.address], &caseworker)
        .await
        .expect("send");
    // request, forged ooo, answer, three reports
    wait_drained(bench, &mut daemon, &["INBOX"], 6).await;
    let kinds = event_kinds(&daemon, 1);
    assert_eq!(
        kinds.iter().filter(|k| *k == "bounce_not_counted").count(),
        3,
        "{kinds:?}"
    );
    assert!(suppressed(&daemon).is_empty(), "{:?}", suppressed(&daemon));

    // The real bounce of the requester's dead mailbox still suppresses it.
    let real = delivery_report(
        daemon_from,
        &help.address,
        quoted.as_str(),
        &requester.address,
    );
    bench
        .send_mail("", &[&help.address], &real)
        .await
        .expect("send");
    wait_drained(bench, &mut daemon, &["INBOX"], 7).await;
    assert_eq!(suppressed(&daemon), vec![requester.address.clone()]);

    // A real out-of-office answer, through the notification's reply address, marks Amina away
    // and her ticket goes to Jonas.
    let real_ooo = format!(
        "From: {from}\r\nTo: {reply_to}\r\nSubject: Automatic reply: {subject}\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <ooo-{n}@volunteers.example>\r\n\r\nI am on leave and back on 2030-01-07.\r\n",
        from = amina.address,
        n = rand::random::<u32>(),
    );
    bench
        .send_mail(&amina.address, &[&reply_to], real_ooo.as_bytes())
        .await
        .expect("send ooo");
    mail_containing(bench, &mut daemon, &jonas, "Work permit").await;
    assert_eq!(agent_away(&daemon, "amina"), true);
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn replies_failing_authentication_or_repeated_are_not_relayed_and_forgeries_carry_a_warning()
{
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[trusting()]);
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("carol", &carol, "coordinator")],
        &["amina"],
    );
    let help = daemon.help.clone();
    let (requester, mallory) = (bench.new_account("requester"), bench.new_account("mallory"));
    daemon.start();
    let first_id = format!("visa-{}@phone.example", rand::random::<u32>());
    let request = mail(
        &requester.address,
        &help.address,
        "Visa",
        Some(&first_id),
        "",
        "When is my interview?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);
    let domain = amina.address.rsplit_once('@').expect("domain").1.to_owned();

    // dmarc=fail recorded by the trusted server: refused.
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "Forged answer one.");
    let failing = with_headers(
        &answer,
        &format!(
            "Authentication-Results: {TRUSTED}; spf=pass smtp.mailfrom={domain}; dmarc=fail (p=reject) header.from={domain}\r\n"
        ),
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &failing)
        .await
        .expect("send");
    // The same failure from another server's field is ignored: relayed.
    let (_, answer) = gmail_reply(&amina, &notification.raw, "Real answer one.");
    let untrusted = with_headers(
        &answer,
        &format!(
            "Authentication-Results: mx.elsewhere.example; dmarc=fail header.from={domain}\r\n"
        ),
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &untrusted)
        .await
        .expect("send");
    // Two From fields: refused.
    let (_, answer) = gmail_reply(&amina, &notification.raw, "Forged answer two.");
    let two_froms = String::from_utf8_lossy(&answer)
        .replacen(
            "\r\nTo: ",
            &format!("\r\nFrom: {}\r\nTo: ", mallory.address),
            1,
        )
        .into_bytes();
    bench
        .send_mail(&mallory.address, &[&reply_to], &two_froms)
        .await
        .expect("send");
    // Only a Sender field naming Amina, no From: refused. Put straight into the mailbox, as
    // Postfix would add a From line for a client on loopback.
    let (_, answer) = gmail_reply(&amina, &notification.raw, "Forged answer three.");
    let sender_only = String::from_utf8_lossy(&answer)
        .replacen("From: Amina Caseworker", "Sender: Amina Caseworker", 1)
        .into_bytes();
    bench
        .append(&help, "INBOX", &sender_only, &[])
        .await
        .expect("append");
    // The relayed answer again under a new Message-ID: not relayed twice.
    let (_, answer) = gmail_reply(&amina, &notification.raw, "Real answer one.");
    let replay = with_headers(
        &answer,
        &format!(
            "Authentication-Results: mx.elsewhere.example; dmarc=fail header.from={domain}\r\n"
        ),
    );
    bench
        .send_mail(&amina.address, &[&reply_to], &replay)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "not sent again").await;
    wait_drained(bench, &mut daemon, &["INBOX"], 6).await;
    let received = bench.list(&requester, "INBOX").await.expect("list");
    let texts: Vec<String> = received
        .iter()
        .map(|m| parse(&m.raw, &ParseLimits::default()).text)
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("Real answer one."), "{texts:?}");
    let kinds = event_kinds(&daemon, 1);
    assert_eq!(
        kinds.iter().filter(|k| *k == "reply_refused").count(),
        3,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"replay_refused".to_owned()), "{kinds:?}");
    // Refused replies are kept as notes, never as the requester's messages.
    let ticket = daemon.ticket(1);
    for message in ticket["messages"].as_array().expect("messages") {
        let text = message["text"].as_str().unwrap_or("");
        if text.contains("Forged answer") {
            assert_eq!(message["direction"], "note", "{message}");
        }
    }

    // Mail in the requester's name that fails authentication reaches Amina with a warning.
    let forged_follow_up = mail(
        &requester.address,
        &help.address,
        "Re: Visa",
        Some(&format!("forged-{}@evil.example", rand::random::<u32>())),
        &format!(
            "In-Reply-To: <{first_id}>\r\nAuthentication-Results: {TRUSTED}; dmarc=fail header.from={}\r\n",
            requester.address.rsplit_once('@').expect("domain").1
        ),
        "Please send everything to my new address.",
    );
    bench
        .send_mail(&mallory.address, &[&help.address], &forged_follow_up)
        .await
        .expect("send");
    let warned = mail_containing(bench, &mut daemon, &amina, "my new address").await;
    let text = parse(&warned.raw, &ParseLimits::default()).text;
    assert!(
        text.contains("WARNING: this message failed sender authentication"),
        "{text}"
    );
    // A stranger who knows a Message-ID of the ticket joins it by References, with a warning.
    let stranger = mail(
        &mallory.address,
        &help.address,
        "Re: Visa",
        Some(&format!("stranger-{}@evil.example", rand::random::<u32>())),
        &format!("References: <{first_id}>\r\n"),
        "I am her cousin, tell me where she lives.",
    );
    bench
        .send_mail(&mallory.address, &[&help.address], &stranger)
        .await
        .expect("send");
    let warned = mail_containing(bench, &mut daemon, &amina, "where she lives").await;
    let text = parse(&warned.raw, &ParseLimits::default()).text;
    assert!(
        text.contains("WARNING: this message joined the ticket by In-Reply-To/References"),
        "{text}"
    );
    // The requester's own follow-up carries no warning.
    let own = mail(
        &requester.address,
        &help.address,
        "Re: Visa",
        Some(&format!("own-{}@phone.example", rand::random::<u32>())),
        &format!("In-Reply-To: <{first_id}>\r\n"),
        "Thank you, see you on Monday.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &own)
        .await
        .expect("send");
    let plain = mail_containing(bench, &mut daemon, &amina, "see you on Monday").await;
    assert!(
        !plain.contains("WARNING"),
        "{}",
        String::from_utf8_lossy(&plain.raw)
    );
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn expired_tokens_rotated_secrets_and_merges_of_tickets_not_owned() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[("auth", "token_expiry", toml::Value::String("1s".to_owned()))],
    );
    let (amina, jonas) = (bench.new_account("amina"), bench.new_account("jonas"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("jonas", &jonas, "agent")],
        &["amina"],
    );
    let help = daemon.help.clone();
    let (first, second, third) = (
        bench.new_account("first"),
        bench.new_account("second"),
        bench.new_account("third"),
    );
    daemon.start();
    for (requester, subject) in [(&first, "Housing"), (&second, "Asylum"), (&third, "Work")] {
        let request = mail(
            &requester.address,
            &help.address,
            subject,
            Some(&format!(
                "{subject}-{}@phone.example",
                rand::random::<u32>()
            )),
            "",
            "Please help.",
        );
        bench
            .send_mail(&requester.address, &[&help.address], &request)
            .await
            .expect("send");
    }
    let n1 = mail_containing(bench, &mut daemon, &amina, "[#1] Housing").await;
    let n2 = mail_containing(bench, &mut daemon, &amina, "[#2] Asylum").await;
    mail_containing(bench, &mut daemon, &amina, "[#3] Work").await;

    // Ticket 1 is closed; a second later its token has expired.
    cli_ok(&daemon, &["ticket", "close", "1"]);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (reply_to, late) = gmail_reply(&amina, &n1.raw, "A late answer.");
    bench
        .send_mail(&amina.address, &[&reply_to], &late)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "the reply token has expired").await;

    // The secret is rotated while the daemon runs; the old token of ticket 2 still works.
    let rotated = cli_ok(&daemon, &["secret", "rotate"]);
    assert!(rotated.contains("reply secret rotated"), "{rotated}");
    let previous = std::fs::metadata(daemon.state_dir.join("reply-secret.previous"))
        .expect("the old key is kept");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(previous.permissions().mode() & 0o777, 0o600);
    let (reply_to, answer) = gmail_reply(&amina, &n2.raw, "Your hearing is on Friday.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &second, "Your hearing is on Friday.").await;

    // Ticket 3 goes to Jonas; Amina may not merge her ticket 2 into it.
    cli_ok(&daemon, &["ticket", "assign", "3", "jonas"]);
    let (reply_to, merge) = gmail_reply(&amina, &n2.raw, "#merge 3");
    bench
        .send_mail(&amina.address, &[&reply_to], &merge)
        .await
        .expect("send");
    mail_containing(
        bench,
        &mut daemon,
        &amina,
        "error: #merge: not merged into #3",
    )
    .await;
    daemon.terminate().await.expect("stop");
    assert_eq!(daemon.ticket(2)["merged_into"], Value::Null);
    assert!(
        bench.list(&first, "INBOX").await.expect("list").is_empty(),
        "the late answer was not relayed"
    );
    let kinds = event_kinds(&daemon, 1);
    assert!(kinds.contains(&"reply_refused".to_owned()), "{kinds:?}");
    // Without a daemon the command rotates the files itself.
    let before = std::fs::read(daemon.state_dir.join("reply-secret")).expect("secret");
    let offline = cli_ok(&daemon, &["secret", "rotate"]);
    assert!(offline.contains("reply secret rotated"), "{offline}");
    let retired = std::fs::read(daemon.state_dir.join("reply-secret.previous")).expect("retired");
    assert_eq!(retired.get(..32), Some(before.as_slice()));
}

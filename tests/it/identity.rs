//! Requesters' identities on the bench: an address casemail cannot write to (two dots in a row,
//! a quoted local part lettre cannot build a message to) makes a flagged ticket whose answer is
//! explained to the caseworker, never a stopped daemon.

use casemail::mail::parse::{ParseLimits, parse};

use crate::bridge::{gmail_reply, register};
use crate::daemon::Daemon;
use crate::harness;
use crate::ingest::mail;
use crate::routing::mail_containing;

fn text_of(raw: &[u8]) -> String {
    parse(raw, &ParseLimits::default()).text
}

#[tokio::test]
async fn answers_to_addresses_casemail_cannot_write_to_are_explained_and_filing_goes_on() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("carol", &carol, "coordinator")],
        &["amina"],
    );
    let help = daemon.help.clone();
    daemon.start();

    // A docomo-style address with two dots in a row, unquoted: lettre will not write to it.
    let request = mail(
        "Taro Yamada <taro..yamada@docomo.example>",
        &help.address,
        "Visa renewal",
        Some("taro-1@docomo.example"),
        "",
        "Please call me on 090-1234-5678.",
    );
    bench
        .append(&help, "INBOX", &request, &[])
        .await
        .expect("append");
    let notification = mail_containing(bench, &mut daemon, &amina, "[#1] Visa renewal").await;
    let text = text_of(&notification.raw);
    assert!(text.contains("NOT BY MAIL"), "{text}");
    assert!(text.contains("090-1234-5678"), "the request itself: {text}");
    let ticket = daemon.ticket(1);
    assert!(
        ticket.to_string().contains("unanswerable"),
        "the ticket is flagged: {ticket}"
    );

    let (reply_to, answer) =
        gmail_reply(&amina, &notification.raw, "We can meet on Monday at ten.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send reply");
    let not_sent = mail_containing(bench, &mut daemon, &amina, "Not sent: [#1]").await;
    let text = text_of(&not_sent.raw);
    assert!(text.contains("was NOT sent to the requester"), "{text}");
    assert!(text.contains("cannot send mail to their address"), "{text}");
    let notice = mail_containing(bench, &mut daemon, &carol, "could not be sent").await;
    assert!(text_of(&notice.raw).contains("amina"));
    daemon.assert_running();
    let ticket = daemon.ticket(1).to_string();
    assert!(ticket.contains("reply_not_sent"), "{ticket}");
    assert!(
        ticket.contains("We can meet on Monday"),
        "the answer is kept with the ticket: {ticket}"
    );

    // A quoted local part: lettre parses it but cannot build a message to it, so it is
    // flagged too, and the answer is explained the same way.
    let quoted = format!("\"taro..yamada.{}\"@casemail.test", rand::random::<u32>());
    let request = mail(
        &format!("Taro <{quoted}>"),
        &help.address,
        "Second address",
        Some("taro-2@docomo.example"),
        "",
        "This is my other address.",
    );
    bench
        .append(&help, "INBOX", &request, &[])
        .await
        .expect("append");
    let notification = mail_containing(bench, &mut daemon, &amina, "[#2] Second address").await;
    assert!(text_of(&notification.raw).contains("NOT BY MAIL"));
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "Noted, thank you.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send reply");
    mail_containing(bench, &mut daemon, &amina, "Not sent: [#2]").await;
    daemon.assert_running();

    // The daemon is still filing: an ordinary request after both is routed as usual.
    let requester = bench.new_account("requester");
    let later = mail(
        &requester.address,
        &help.address,
        "Housing",
        Some("later-1@phone.example"),
        "",
        "I need a room.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &later)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "[#3] Housing").await;
    daemon.assert_running();
}

/// Every file under `dir` that holds `needle`, ignoring ASCII case.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| crate::lifecycle::contains_ignoring_case(&bytes, needle))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn after_an_erasure_and_the_next_start_no_file_of_the_state_directory_holds_the_person() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let (taro, other) = (bench.new_account("taro"), bench.new_account("other"));
    daemon.start();

    let request = mail(
        &format!("Taro Yamada <{}>", taro.address),
        &help.address,
        "Visa renewal",
        Some("erase-taro-1@phone.example"),
        "",
        "Please call me on +81 90 7731 5529 about my visa.",
    );
    bench
        .send_mail(&taro.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = mail_containing(bench, &mut daemon, &amina, "[#1] Visa renewal").await;
    let (reply_to, answer) = gmail_reply(&amina, &notification.raw, "I will call you at ten.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send reply");
    mail_containing(bench, &mut daemon, &taro, "I will call you at ten").await;
    let kept = mail(
        &other.address,
        &help.address,
        "Housing",
        Some("erase-other-1@phone.example"),
        "",
        "Other-text-kept",
    );
    bench
        .send_mail(&other.address, &[&help.address], &kept)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "[#2] Housing").await;

    let said = crate::routing::cli_ok(&daemon, &["erase", "--requester", &taro.address]);
    assert!(said.contains("removed 1 ticket(s)"), "{said}");
    assert!(
        said.contains("compacted when the daemon next starts"),
        "{said}"
    );
    crate::lifecycle::wait_for_folder(
        bench,
        &mut daemon,
        "Processed",
        &["Other-text-kept"],
        &["7731 5529"],
    )
    .await;
    daemon.terminate().await.expect("stop");

    // The next start compacts the store before anything else.
    daemon.start();
    let log_path = daemon.log_path.clone();
    let compacted = harness::wait_until(std::time::Duration::from_secs(60), || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move {
            log.contains("Store compacted.") && log.matches("casemail is running.").count() == 2
        }
    })
    .await;
    assert!(compacted.is_ok(), "{}", daemon.log_tail());
    daemon.terminate().await.expect("stop");

    for needle in [taro.address.as_str(), "7731", "5529", "yamada"] {
        assert_eq!(
            files_holding(&daemon.state_dir, needle),
            Vec::<std::path::PathBuf>::new(),
            "{needle} is still on disk"
        );
    }
    assert!(
        !files_holding(&daemon.state_dir, &other.address).is_empty(),
        "the search finds what is kept"
    );
}

/// An attacker whose address starts with a victim's (`victim@…/…@attacker`, which mail parsers
/// accept) writes first; the victim's next request still opens a ticket of her own, and nothing
/// of hers reaches the attacker's ticket or its caseworker as part of it.
#[tokio::test]
async fn an_address_that_starts_with_a_victims_does_not_capture_her_mail() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let victim = bench.new_account("victim");
    daemon.start();

    let forged = format!("{}/00000000000000000001@attacker.example", victim.address);
    let attacker_mail = mail(
        &format!("<{forged}>"),
        &help.address,
        "Hello",
        Some("capture-1@attacker.example"),
        "",
        "Just saying hello.",
    );
    bench
        .append(&help, "INBOX", &attacker_mail, &[])
        .await
        .expect("append");
    mail_containing(bench, &mut daemon, &amina, "[#1] Hello").await;

    let hers = mail(
        &format!("Victim <{}>", victim.address),
        &help.address,
        "I need help",
        Some("capture-2@phone.example"),
        "",
        "My new address is Kastanienallee 12.",
    );
    bench
        .send_mail(&victim.address, &[&help.address], &hers)
        .await
        .expect("send");
    mail_containing(bench, &mut daemon, &amina, "[#2] I need help").await;

    let attackers = daemon.ticket(1);
    let theirs = attackers.to_string();
    assert!(!theirs.contains("Kastanienallee"), "{theirs}");
    assert_eq!(
        attackers["messages"].as_array().map(Vec::len),
        Some(1),
        "{theirs}"
    );
    let her_ticket = daemon.ticket(2);
    assert_eq!(
        her_ticket["requester"].as_str(),
        Some(victim.address.as_str()),
        "{her_ticket}"
    );
    daemon.assert_running();
}

//! Checks that the mail bench itself behaves as the other integration tests assume: mail sent to
//! Postfix reaches Dovecot, sub-addresses land in INBOX, nothing leaves casemail.test, folders
//! and UIDVALIDITY behave, TLS works, and a private bench survives server restarts.

use std::time::Duration;

use crate::harness::{self, Account, Bench, Security};

/// Delivery on the bench takes milliseconds; this is only the point at which a test gives up.
const MAIL_TIMEOUT: Duration = Duration::from_secs(20);

/// A small RFC 5322 message with CRLF line endings, as it would arrive from a mail client.
fn message(to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Requester <requester@example.org>\r\n\
         To: {to}\r\n\
         Subject: {subject}\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{subject}@example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}\r\n"
    )
    .into_bytes()
}

/// A subject no other test (or run) uses, made from the account's unique address.
fn subject_for(account: &Account, what: &str) -> String {
    let local = account.address.split('@').next().unwrap_or_default();
    format!("{what}-{local}")
}

async fn send_and_receive(bench: &Bench, account: &Account, what: &str) {
    let raw = message(
        &account.address,
        &subject_for(account, what),
        "Still flowing.",
    );
    bench
        .send_mail("requester@example.org", &[&account.address], &raw)
        .await
        .expect("Postfix accepts mail for a bench account");
    let mails = bench
        .wait_for_mail(account, "INBOX", 1, MAIL_TIMEOUT)
        .await
        .expect("the mail reaches the account's INBOX");
    assert!(mails.iter().any(|mail| mail.raw.ends_with(&raw)));
}

#[tokio::test]
async fn mail_sent_to_postfix_is_read_back_over_imap_and_imaps() {
    let bench = harness::shared().await;
    let help = bench.new_account("help");
    let subject = subject_for(&help, "hello");
    let body = "Bonjour, j'ai besoin d'aide pour mon dossier. — مرحبا";
    let raw = message(&help.address, &subject, body);

    bench
        .send_mail("requester@example.org", &[&help.address], &raw)
        .await
        .expect("Postfix accepts mail for a bench account");

    let over_plain = bench
        .wait_for_mail(&help, "INBOX", 1, MAIL_TIMEOUT)
        .await
        .expect("the mail reaches INBOX");
    assert_eq!(over_plain.len(), 1);
    let mail = over_plain.first().expect("one mail");
    // Delivery only prepends trace headers (Return-Path, Delivered-To, Received), so the
    // message as sent is the tail of the message as stored.
    assert!(
        mail.raw.ends_with(&raw),
        "stored message does not end with the sent one:\n{}",
        String::from_utf8_lossy(&mail.raw)
    );
    assert!(mail.contains(&format!("Subject: {subject}\r\n")));
    assert!(mail.contains(body));
    assert!(mail.contains(&format!("Delivered-To: {}", help.address)));
    assert!(
        mail.flags.is_empty(),
        "new mail has no flags: {:?}",
        mail.flags
    );

    let over_tls = bench
        .list_via(Security::Tls, &help, "INBOX")
        .await
        .expect("list INBOX over IMAPS");
    assert_eq!(over_tls, over_plain);
}

#[tokio::test]
async fn sub_address_is_delivered_to_the_users_inbox() {
    let bench = harness::shared().await;
    let agent = bench.new_account("agent");
    let tagged = agent.sub_address("ticket-1042");
    let raw = message(
        &tagged,
        &subject_for(&agent, "tagged"),
        "Reply to a ticket.",
    );

    bench
        .send_mail("requester@example.org", &[&tagged], &raw)
        .await
        .expect("Postfix accepts a sub-address of a bench account");

    let mails = bench
        .wait_for_mail(&agent, "INBOX", 1, MAIL_TIMEOUT)
        .await
        .expect("the sub-addressed mail reaches INBOX");
    let mail = mails.first().expect("one mail");
    assert!(mail.raw.ends_with(&raw));
    assert!(mail.contains(&format!("Delivered-To: {tagged}")));
    // No folder named after the detail, and the Junk folder the daemon files spam into exists.
    assert_eq!(
        bench.folders(&agent).await.expect("list folders"),
        ["INBOX", "Junk"]
    );
}

#[tokio::test]
async fn postfix_refuses_recipients_outside_the_bench_accounts() {
    let bench = harness::shared().await;
    let sender = bench.new_account("sender");

    for (recipient, code) in [
        ("someone@example.org", "554"),
        ("nobody-here@casemail.test", "550"),
    ] {
        let raw = message(
            recipient,
            &subject_for(&sender, "refused"),
            "Must not go anywhere.",
        );
        let err = bench
            .send_mail(&sender.address, &[recipient], &raw)
            .await
            .expect_err("Postfix refuses the recipient");
        let smtp = err
            .downcast_ref::<lettre::transport::smtp::Error>()
            .unwrap_or_else(|| panic!("an SMTP refusal, not {err:#}"));
        assert!(
            smtp.is_permanent(),
            "a permanent refusal for {recipient}: {err:#}"
        );
        assert_eq!(
            smtp.status().map(|status| status.to_string()).as_deref(),
            Some(code),
            "{err:#}"
        );
    }
}

#[tokio::test]
async fn recreating_a_folder_changes_its_uidvalidity() {
    let bench = harness::shared().await;
    let account = bench.new_account("folders");
    let raw = message(
        &account.address,
        &subject_for(&account, "appended"),
        "Filed by hand.",
    );

    bench
        .append(&account, "Cases", &raw, &["\\Seen", "$Casemail"])
        .await
        .expect("APPEND creates the folder and stores the message");
    let listed = bench.list(&account, "Cases").await.expect("list Cases");
    assert_eq!(listed.len(), 1);
    let mail = listed.first().expect("one mail");
    assert_eq!(mail.raw, raw, "APPEND stores the bytes as given");
    assert!(
        mail.flags.iter().any(|flag| flag == "\\Seen"),
        "{:?}",
        mail.flags
    );
    assert!(
        mail.flags.iter().any(|flag| flag == "$Casemail"),
        "{:?}",
        mail.flags
    );

    let before = bench
        .uidvalidity(&account, "Cases")
        .await
        .expect("UIDVALIDITY");
    bench
        .delete_folder(&account, "Cases")
        .await
        .expect("DELETE Cases");
    bench
        .create_folder(&account, "Cases")
        .await
        .expect("CREATE Cases");
    let after = bench
        .uidvalidity(&account, "Cases")
        .await
        .expect("UIDVALIDITY");

    assert_ne!(
        before, after,
        "a recreated folder is a new mailbox (RFC 3501 §2.3.1.1)"
    );
    assert!(
        bench
            .list(&account, "Cases")
            .await
            .expect("list Cases")
            .is_empty()
    );
}

#[tokio::test]
async fn tls_listeners_carry_mail_both_ways() {
    let bench = harness::shared().await;
    let account = bench.new_account("tls");
    let over_starttls = message(&account.address, &subject_for(&account, "starttls"), "One.");
    let over_wrapper = message(&account.address, &subject_for(&account, "wrapper"), "Two.");

    bench
        .send_mail_via(
            Security::StartTls,
            "requester@example.org",
            &[&account.address],
            &over_starttls,
        )
        .await
        .expect("send over SMTP with STARTTLS");
    bench
        .send_mail_via(
            Security::Tls,
            "requester@example.org",
            &[&account.address],
            &over_wrapper,
        )
        .await
        .expect("send over SMTP with implicit TLS");

    bench
        .wait_for_mail(&account, "INBOX", 2, MAIL_TIMEOUT)
        .await
        .expect("both mails reach INBOX");
    let mails = bench
        .list_via(Security::StartTls, &account, "INBOX")
        .await
        .expect("list INBOX over IMAP with STARTTLS");
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().any(|mail| mail.raw.ends_with(&over_starttls)));
    assert!(mails.iter().any(|mail| mail.raw.ends_with(&over_wrapper)));
}

#[tokio::test]
async fn casemail_config_points_at_the_bench() {
    let bench = harness::shared().await;
    let help = bench.new_account("help");
    let state_dir = tempfile::tempdir().expect("state dir");

    let text = bench.casemail_config(&help, state_dir.path());
    let config: toml::Table = toml::from_str(&text).expect("the config is valid TOML");

    let get = |section: &str, key: &str| {
        config
            .get(section)
            .and_then(|table| table.get(key))
            .unwrap_or_else(|| panic!("{section}.{key} is set"))
            .clone()
    };
    assert_eq!(
        get("helpdesk", "address").as_str(),
        Some(help.address.as_str())
    );
    assert_eq!(
        get("imap", "username").as_str(),
        Some(help.username.as_str())
    );
    assert_eq!(
        get("imap", "password").as_str(),
        Some(help.password.as_str())
    );
    assert_eq!(
        get("imap", "port").as_integer(),
        Some(i64::from(bench.imap_endpoint().port))
    );
    assert_eq!(
        get("smtp", "port").as_integer(),
        Some(i64::from(bench.smtp_endpoint().port))
    );
    let socket = state_dir.path().join("casemail.sock");
    assert_eq!(get("control", "socket").as_str(), socket.to_str());

    // The credentials in the config really open the mailbox.
    bench
        .list(&help, "INBOX")
        .await
        .expect("the configured account logs in");
}

#[tokio::test]
async fn private_bench_keeps_mail_flowing_across_a_postfix_restart() {
    let bench = harness::private().await;
    let account = bench.new_account("restart");

    bench.stop_postfix().await.expect("stop Postfix");
    let raw = message(
        &account.address,
        &subject_for(&account, "down"),
        "Nobody listens.",
    );
    let refused = bench
        .send_mail("requester@example.org", &[&account.address], &raw)
        .await;
    assert!(refused.is_err(), "a stopped Postfix takes no mail");

    bench.start_postfix().await.expect("start Postfix again");
    send_and_receive(&bench, &account, "after-restart").await;
}

#[tokio::test]
async fn private_bench_delivers_queued_mail_once_dovecot_is_back() {
    let bench = harness::private().await;
    let account = bench.new_account("outage");

    bench.stop_dovecot().await.expect("stop Dovecot");
    let raw = message(
        &account.address,
        &subject_for(&account, "queued"),
        "Wait for me.",
    );
    bench
        .send_mail("requester@example.org", &[&account.address], &raw)
        .await
        .expect("Postfix queues mail while Dovecot is down");

    bench.start_dovecot().await.expect("start Dovecot again");
    // start_dovecot has Postfix retry its deferred mail at once.
    let mails = bench
        .wait_for_mail(&account, "INBOX", 1, MAIL_TIMEOUT)
        .await
        .expect("the queued mail arrives after the outage");
    assert!(mails.iter().any(|mail| mail.raw.ends_with(&raw)));
}

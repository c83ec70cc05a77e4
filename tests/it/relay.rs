//! The relay against the bench's Postfix: what the outbox holds reaches real mailboxes exactly
//! once, survives an outage and a restart, turns a refusal into a dead letter, cannot be used
//! to smuggle a second message, and works over STARTTLS and implicit TLS.
//!
//! Each test has its own store and fresh accounts and calls `Relay::step` directly; the clock
//! the relay reads is a test clock, so backoff is skipped by moving it rather than by waiting.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use casemail::config::{self, Security};
use casemail::ids::{MessageId, TicketId};
use casemail::model::{OutboxEntry, OutboxKind, Status, Ticket};
use casemail::smtp::{self, Relay, StepOutcome};
use casemail::store::Store;

use crate::harness::{self, Account, Bench};

const PATIENCE: Duration = Duration::from_secs(60);
const T0: Timestamp = Timestamp::constant(1_800_000_000, 0);

/// A clock the test moves by hand.
#[derive(Clone)]
struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    fn new() -> TestClock {
        TestClock(Arc::new(Mutex::new(T0)))
    }

    fn clock(&self) -> casemail::clock::Clock {
        let now = self.0.clone();
        Arc::new(move || *now.lock().expect("clock lock"))
    }

    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now = now
            .checked_add(SignedDuration::try_from(by).expect("small duration"))
            .expect("timestamp in range");
    }
}

/// SMTP settings for the bench's Postfix over `security`, trusting the bench's certificate.
fn smtp_config(bench: &Bench, security: Security) -> config::Smtp {
    let harness_security = match security {
        Security::Plain => harness::Security::Plain,
        Security::StartTls => harness::Security::StartTls,
        Security::Tls => harness::Security::Tls,
    };
    let endpoint = bench.smtp_endpoint_for(harness_security);
    config::Smtp {
        host: endpoint.host,
        port: endpoint.port,
        security,
        username: None,
        password: None,
        oauth2: None,
        password_file: None,
        ca_file: (security != Security::Plain).then(|| bench.ca_file()),
    }
}

fn new_relay(store: &Store, config: &config::Smtp, clock: &TestClock) -> Relay {
    let transport = smtp::transport(config, Some("casemail.test")).expect("build the transport");
    Relay::new(store.clone(), transport, clock.clock())
}

fn open_store(dir: &Path) -> Store {
    Store::open(dir).unwrap_or_else(|err| panic!("open the store: {err:#}"))
}

/// A small message; `body` goes in as given, so tests choose its line endings.
fn message(from: &str, to: &str, message_id: &str, subject: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "From: Casemail Helpdesk <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn create_ticket(store: &Store) -> TicketId {
    store
        .write(|tx| {
            let id = tx.allocate_ticket_id()?;
            tx.put_ticket(&Ticket {
                id,
                status: Status::Open,
                subject: "Housing".to_owned(),
                requester: "requester@casemail.test".to_owned(),
                requester_name: None,
                owner: None,
                assigned_at: None,
                last_agent_reply: None,
                merged_into: None,
                participants: BTreeSet::new(),
                flags: BTreeSet::new(),
                created: T0,
                updated: T0,
                message_count: 0,
                event_count: 0,
            })?;
            Ok(id)
        })
        .expect("create a ticket")
}

fn enqueue(
    store: &Store,
    ticket: Option<TicketId>,
    from: &Account,
    recipients: &[&str],
    message_id: &str,
    raw: &[u8],
) -> u64 {
    let entry = OutboxEntry {
        id: 0,
        kind: OutboxKind::Notification,
        ticket,
        message_id: MessageId::parse(message_id).expect("valid Message-ID"),
        envelope_from: from.address.clone(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        created: T0,
        attempts: 0,
        next_attempt: T0,
        last_error: None,
    };
    let id = store.write(|tx| tx.enqueue(&entry, raw)).expect("enqueue");
    store.flush().expect("flush");
    id
}

/// Waits until everything Postfix accepted before now has been delivered to `account`: a
/// marker sent now through the same Postfix is delivered behind it. Returns the folder's
/// messages without the marker.
async fn settled_inbox(bench: &Bench, account: &Account) -> Vec<harness::FetchedMail> {
    let marker = format!("marker-{}", account.address);
    let raw = format!(
        "From: bench@casemail.test\r\nTo: {}\r\nSubject: {marker}\r\nMessage-ID: <{marker}>\r\n\r\nmarker\r\n",
        account.address
    );
    bench
        .send_mail("bench@casemail.test", &[&account.address], raw.as_bytes())
        .await
        .expect("send the marker");
    let subject = format!("Subject: {marker}");
    let outcome = harness::wait_until(PATIENCE, || async {
        bench
            .list(account, "INBOX")
            .await
            .map(|mails| mails.iter().any(|mail| mail.contains(&subject)))
            .unwrap_or(false)
    })
    .await;
    if let Err(err) = outcome {
        panic!("{err:#}\n{}", bench.log_tail());
    }
    bench
        .list(account, "INBOX")
        .await
        .expect("list INBOX")
        .into_iter()
        .filter(|mail| !mail.contains(&subject))
        .collect()
}

/// What the recipient's copy must end with: the message as sent, line endings normalised to
/// CRLF and ending in CRLF (Dovecot prepends its trace headers).
fn as_delivered(raw: &[u8]) -> Vec<u8> {
    let mut expected = smtp::wire_data(raw).into_owned();
    expected.extend_from_slice(b"\r\n");
    expected
}

#[tokio::test]
async fn an_enqueued_message_reaches_the_mailbox_exactly_once_and_is_recorded() {
    let bench = harness::shared().await;
    let help = bench.new_account("relay-help");
    let agent = bench.new_account("relay-agent");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path());
    let clock = TestClock::new();
    let ticket = create_ticket(&store);
    let raw = message(
        &help.address,
        &agent.address,
        "once-1@casemail.test",
        "[#1] New ticket",
        b"A new ticket for you.\r\n",
    );
    enqueue(
        &store,
        Some(ticket),
        &help,
        &[&agent.address],
        "once-1@casemail.test",
        &raw,
    );
    let mut relay = new_relay(&store, &smtp_config(bench, Security::Plain), &clock);

    let outcome = relay.step().await.expect("step");
    assert_eq!(
        outcome,
        StepOutcome {
            sent: 1,
            deferred: 0,
            failed: vec![]
        }
    );
    let mails = bench
        .wait_for_mail(&agent, "INBOX", 1, PATIENCE)
        .await
        .expect("the message arrives");
    assert!(mails[0].raw.ends_with(&as_delivered(&raw)));
    assert!(store.outbox().expect("outbox").is_empty());
    let events = store.events(ticket).expect("events");
    let last = events.last().expect("an event");
    assert_eq!(
        (last.kind.as_str(), last.detail.as_str()),
        ("sent", "notification to 1 recipient(s)")
    );

    clock.advance(Duration::from_secs(3600));
    assert_eq!(relay.step().await.expect("step"), StepOutcome::default());
    assert_eq!(settled_inbox(bench, &agent).await.len(), 1);
}

#[tokio::test]
async fn an_outage_defers_the_message_and_it_is_sent_once_after_postfix_and_casemail_restart() {
    let bench = harness::private().await;
    let help = bench.new_account("relay-help");
    let agent = bench.new_account("relay-agent");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = smtp_config(&bench, Security::Plain);
    let clock = TestClock::new();
    let raw = message(
        &help.address,
        &agent.address,
        "outage-1@casemail.test",
        "Deferred",
        b"Sent after the outage.\r\n",
    );

    bench.stop_postfix().await.expect("stop Postfix");
    {
        let store = open_store(dir.path());
        enqueue(
            &store,
            None,
            &help,
            &[&agent.address],
            "outage-1@casemail.test",
            &raw,
        );
        let mut relay = new_relay(&store, &config, &clock);
        let outcome = relay.step().await.expect("step");
        assert_eq!((outcome.sent, outcome.deferred), (0, 1), "{outcome:?}");
        let outbox = store.outbox().expect("outbox");
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].attempts, 1);
        assert!(outbox[0].next_attempt > T0);
        let error = outbox[0].last_error.as_deref().unwrap_or_default();
        assert!(error.contains("cannot talk to the smtp server"), "{error}");

        bench.start_postfix().await.expect("start Postfix");
        // Postfix is back, but the backoff has not passed: nothing is tried.
        assert_eq!(relay.step().await.expect("step"), StepOutcome::default());
    }

    // casemail restarts: the deferral was stored, and the retry goes out once it is due.
    {
        let store = open_store(dir.path());
        assert_eq!(store.outbox().expect("outbox")[0].attempts, 1);
        let mut relay = new_relay(&store, &config, &clock);
        clock.advance(smtp::nominal_backoff(1));
        let outcome = relay.step().await.expect("step");
        assert_eq!((outcome.sent, outcome.deferred), (1, 0), "{outcome:?}");
        bench
            .wait_for_mail(&agent, "INBOX", 1, PATIENCE)
            .await
            .expect("the message arrives");
        assert!(store.outbox().expect("outbox").is_empty());
    }

    // And once more: a sent message is not sent again after another restart.
    {
        let store = open_store(dir.path());
        let mut relay = new_relay(&store, &config, &clock);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(relay.step().await.expect("step"), StepOutcome::default());
    }
    let delivered = settled_inbox(&bench, &agent).await;
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].raw.ends_with(&as_delivered(&raw)));
}

#[tokio::test]
async fn an_unknown_recipient_becomes_a_dead_letter() {
    let bench = harness::shared().await;
    let help = bench.new_account("relay-help");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path());
    let clock = TestClock::new();
    let ticket = create_ticket(&store);
    let nobody = "nobody-xyz@casemail.test";
    let raw = message(
        &help.address,
        nobody,
        "dead-1@casemail.test",
        "Nobody",
        b"Nobody reads this.\r\n",
    );
    let id = enqueue(
        &store,
        Some(ticket),
        &help,
        &[nobody],
        "dead-1@casemail.test",
        &raw,
    );
    let mut relay = new_relay(&store, &smtp_config(bench, Security::Plain), &clock);

    let outcome = relay.step().await.expect("step");
    assert_eq!(
        outcome,
        StepOutcome {
            sent: 0,
            deferred: 0,
            failed: vec![id]
        }
    );
    assert!(store.outbox().expect("outbox").is_empty());
    let dead = store.dead_letters().expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entry.id, id);
    assert_eq!(dead[0].entry.recipients, [nobody]);
    assert!(dead[0].error.contains("550"), "{}", dead[0].error);
    assert!(!dead[0].error.contains("nobody-xyz"), "{}", dead[0].error);
    assert_eq!(
        store.dead_letter_raw(id).expect("raw").as_deref(),
        Some(raw.as_slice())
    );
    let events = store.events(ticket).expect("events");
    let last = events.last().expect("an event");
    assert_eq!(last.kind, "send_failed");
    assert_eq!(
        last.detail,
        "notification to 1 recipient(s) refused with 550"
    );
}

#[tokio::test]
async fn dots_and_smuggled_commands_arrive_as_one_message_with_the_body_intact() {
    let bench = harness::shared().await;
    let help = bench.new_account("relay-help");
    let agent = bench.new_account("relay-agent");
    let victim = bench.new_account("relay-victim");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path());
    let clock = TestClock::new();

    // Every way of ending the data early: CRLF.CRLF, LF.LF and LF.CRLF, each followed by a
    // complete second transaction to `victim`, plus lines that need dot-stuffing.
    let smuggled = |ending: &str| {
        format!(
            "{e}.{e}MAIL FROM:<evil@x>{e}RCPT TO:<{victim}>{e}DATA{e}Subject: smuggled{e}{e}\
             smuggled{e}.{e}",
            e = ending,
            victim = victim.address
        )
    };
    let mut body = Vec::new();
    body.extend_from_slice(b".\r\n..leading dots\r\n.single leading dot\r\nmiddle . dot\r\n");
    body.extend_from_slice(smuggled("\r\n").as_bytes());
    body.extend_from_slice(b"after crlf\n");
    body.extend_from_slice(smuggled("\n").as_bytes());
    body.extend_from_slice(b"after lf\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<");
    body.extend_from_slice(victim.address.as_bytes());
    body.extend_from_slice(b">\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n");
    body.extend_from_slice(b"last line\r\n.\r\n");
    let raw = message(
        &help.address,
        &agent.address,
        "dots-1@casemail.test",
        "Dots",
        &body,
    );
    enqueue(
        &store,
        None,
        &help,
        &[&agent.address],
        "dots-1@casemail.test",
        &raw,
    );
    let mut relay = new_relay(&store, &smtp_config(bench, Security::Plain), &clock);

    let outcome = relay.step().await.expect("step");
    assert_eq!(outcome.sent, 1, "{outcome:?}");
    bench
        .wait_for_mail(&agent, "INBOX", 1, PATIENCE)
        .await
        .expect("the message arrives");

    let delivered = settled_inbox(bench, &agent).await;
    assert_eq!(delivered.len(), 1);
    let expected = as_delivered(&raw);
    assert!(
        delivered[0].raw.ends_with(&expected),
        "delivered:\n{}\nexpected to end with:\n{}",
        String::from_utf8_lossy(&delivered[0].raw),
        String::from_utf8_lossy(&expected)
    );
    assert!(settled_inbox(bench, &victim).await.is_empty());
    assert!(settled_inbox(bench, &help).await.is_empty());
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_with_the_bench_certificate() {
    let bench = harness::shared().await;
    let help = bench.new_account("relay-help");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path());
    let clock = TestClock::new();

    for (security, name) in [
        (Security::StartTls, "starttls"),
        (Security::Tls, "implicit-tls"),
    ] {
        let agent = bench.new_account("relay-agent");
        let message_id = format!("{name}-1@casemail.test");
        let raw = message(
            &help.address,
            &agent.address,
            &message_id,
            name,
            b"Over TLS.\r\n",
        );
        enqueue(&store, None, &help, &[&agent.address], &message_id, &raw);
        let mut relay = new_relay(&store, &smtp_config(bench, security), &clock);
        let outcome = relay.step().await.expect("step");
        assert_eq!(
            (outcome.sent, outcome.deferred),
            (1, 0),
            "{name}: {outcome:?}"
        );
        let mails = bench
            .wait_for_mail(&agent, "INBOX", 1, PATIENCE)
            .await
            .expect("the message arrives");
        // The smtps port speaks nothing but TLS, and `starttls` is lettre's `Tls::Required`,
        // which fails rather than fall back to plain text (the next test shows the handshake
        // really happens on the plain port).
        assert_eq!(mails.len(), 1, "{name}");
        assert!(mails[0].raw.ends_with(&as_delivered(&raw)), "{name}");
    }
}

#[tokio::test]
async fn an_untrusted_certificate_defers_rather_than_dead_letters() {
    let bench = harness::shared().await;
    let help = bench.new_account("relay-help");
    let agent = bench.new_account("relay-agent");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path());
    let clock = TestClock::new();
    let raw = message(
        &help.address,
        &agent.address,
        "untrusted-1@casemail.test",
        "Untrusted",
        b"Never sent.\r\n",
    );
    enqueue(
        &store,
        None,
        &help,
        &[&agent.address],
        "untrusted-1@casemail.test",
        &raw,
    );
    // Without ca_file only the system's roots are trusted, and the bench's certificate is
    // self-signed.
    let mut config = smtp_config(bench, Security::StartTls);
    config.ca_file = None;
    let mut relay = new_relay(&store, &config, &clock);

    let outcome = relay.step().await.expect("step");
    assert_eq!((outcome.sent, outcome.deferred), (0, 1), "{outcome:?}");
    assert!(store.dead_letters().expect("dead letters").is_empty());
    let outbox = store.outbox().expect("outbox");
    let error = outbox[0].last_error.as_deref().unwrap_or_default();
    assert!(error.contains("certificate"), "{error}");
}

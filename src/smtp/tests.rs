// Tests fail by panicking: an index that is not there is a failed assertion.
#![allow(clippy::indexing_slicing)]

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::error::MAX_REPLY_CHARS;
use super::settle::backoff;
use super::*;
use crate::config::Security;
use crate::ids::{MessageId, TicketId};
use crate::model::{OutboxEntry, Status, Ticket};

const T0: Timestamp = Timestamp::constant(1_800_000_000, 0);

#[test]
fn backoff_starts_at_one_second_doubles_and_stops_at_ten_minutes() {
    let seconds: Vec<u64> = (1..=12).map(|n| nominal_backoff(n).as_secs()).collect();
    assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    assert_eq!(nominal_backoff(0), Duration::from_secs(1));
    assert_eq!(nominal_backoff(u32::MAX), Duration::from_secs(600));
    let all: Vec<Duration> = (0..200).map(nominal_backoff).collect();
    assert!(all.windows(2).all(|pair| pair[0] <= pair[1]));
}

#[test]
fn jitter_only_shortens_the_delay_and_at_most_by_half() {
    assert_eq!(backoff_with_jitter(3, 1.0), Duration::from_secs(4));
    assert_eq!(backoff_with_jitter(3, 0.5), Duration::from_secs(2));
    assert_eq!(backoff_with_jitter(3, 7.0), Duration::from_secs(4));
    assert_eq!(backoff_with_jitter(3, 0.0), Duration::from_secs(2));
    for attempts in 1..40 {
        let delay = backoff(attempts);
        assert!(delay <= nominal_backoff(attempts) && delay >= nominal_backoff(attempts) / 2);
    }
}

#[test]
fn reply_codes_are_classified_by_their_first_digit() {
    assert_eq!(classify(250), ReplyClass::Accepted);
    for code in [421, 450, 451, 452, 454] {
        assert_eq!(classify(code), ReplyClass::Transient, "{code}");
    }
    for code in [500, 535, 550, 551, 552, 553, 554] {
        assert_eq!(classify(code), ReplyClass::Permanent, "{code}");
    }
    // Nothing but 2yz ends a transaction well, and a confused server deserves another try.
    for code in [0, 199, 354, 600, 999] {
        assert_eq!(classify(code), ReplyClass::Transient, "{code}");
    }
}

#[test]
fn errors_are_transient_permanent_or_neither() {
    let transient = [
        Error::Connection {
            detail: "refused".to_owned(),
        },
        Error::Timeout(Duration::from_secs(1)),
        Error::Session {
            detail: "535".to_owned(),
        },
        Error::Deferred {
            code: 451,
            reply: String::new(),
        },
    ];
    let permanent = [
        Error::Rejected {
            code: 550,
            reply: String::new(),
        },
        Error::Unsendable {
            detail: "8bit".to_owned(),
        },
        Error::Envelope {
            reason: "no recipient".to_owned(),
        },
        Error::MissingRaw { id: 1 },
    ];
    for err in &transient {
        assert!(err.is_transient() && !err.is_permanent(), "{err}");
    }
    for err in &permanent {
        assert!(err.is_permanent() && !err.is_transient(), "{err}");
    }
    let setup = Error::Setup {
        reason: "x".to_owned(),
    };
    assert!(!setup.is_transient() && !setup.is_permanent());
}

#[test]
fn one_trailing_crlf_is_dropped_because_lettre_adds_its_own() {
    assert_eq!(
        &*wire_data(b"Subject: x\r\n\r\nbody\r\n"),
        b"Subject: x\r\n\r\nbody"
    );
    assert_eq!(&*wire_data(b"body\r\n\r\n"), b"body\r\n");
    assert_eq!(&*wire_data(b"body"), b"body");
    assert_eq!(&*wire_data(b""), b"");
    assert_eq!(&*wire_data(b"\r\n"), b"");
    assert!(matches!(wire_data(b"a\r\nb\r\n"), Cow::Borrowed(_)));
}

#[test]
fn bare_line_feeds_and_carriage_returns_become_crlf() {
    assert_eq!(&*wire_data(b"a\nb\n"), b"a\r\nb");
    assert_eq!(
        &*wire_data(b"a\n.\nMAIL FROM:<x@y>\n"),
        b"a\r\n.\r\nMAIL FROM:<x@y>"
    );
    assert_eq!(&*wire_data(b"a\n.\r\nb"), b"a\r\n.\r\nb");
    assert_eq!(&*wire_data(b"a\rb\r"), b"a\r\nb");
    assert_eq!(&*wire_data(b"\n.\n"), b"\r\n.");
    assert_eq!(&*wire_data(b"a\r\r\nb"), b"a\r\n\r\nb");
}

#[test]
fn server_replies_lose_addresses_and_control_characters() {
    assert_eq!(
        redact_reply(
            "5.1.1 <nobody@casemail.test>: Recipient address rejected: User unknown in virtual mailbox table"
        ),
        "5.1.1 <address>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(
        redact_reply("mailbox a@b, c@d; full"),
        "mailbox <address>, <address>; full"
    );
    assert_eq!(
        redact_reply("bad\x1b[2Jthing\r\nforged"),
        "bad\\u{1b}[2Jthing forged"
    );
    let long = redact_reply(&"x ".repeat(500));
    assert_eq!(long.chars().count(), MAX_REPLY_CHARS + 1);
}

#[test]
fn send_deadline_grows_with_the_message() {
    assert_eq!(send_deadline(0), Duration::from_secs(60));
    assert_eq!(
        send_deadline(25 * 1024 * 1024),
        Duration::from_secs(60 + 800)
    );
}

#[test]
fn kind_names_are_the_stored_spelling() {
    for kind in [
        OutboxKind::Notification,
        OutboxKind::Relay,
        OutboxKind::Acknowledgement,
        OutboxKind::Bounce,
        OutboxKind::Digest,
    ] {
        let stored = serde_json::to_string(&kind).expect("serialise");
        assert_eq!(stored, format!("\"{}\"", kind.name()));
    }
}

#[test]
fn an_unusable_ca_file_is_a_setup_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, b"").expect("write");
    for (path, expected) in [
        (dir.path().join("missing.pem"), "cannot read ca_file"),
        (empty, "holds no certificate"),
    ] {
        let mut config = smtp_config(25);
        config.security = Security::StartTls;
        config.ca_file = Some(path);
        match transport(&config, None) {
            Err(err @ Error::Setup { .. }) => {
                assert!(err.to_string().contains(expected), "{err}");
            }
            other => panic!("expected a setup error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn what_goes_on_the_wire_is_crlf_only_and_dot_stuffed() {
    let server = FakeServer::start(Script::default()).await;
    let bench = Bench::new(&server);
    let raw: &[u8] = b"Subject: dots\r\n\r\n.\r\n..two\r\n.x\r\nline\n.\nMAIL FROM:<evil@x>\n\
        tail\n.\r\nRCPT TO:<victim@x>\r\n\r\n.\r\nQUIT\r\nend\r.\rlast\r\n";
    bench.enqueue(&["to@casemail.test"], None, raw);

    let outcome = bench.relay().step().await.expect("step");
    assert_eq!(outcome.sent, 1, "{outcome:?}");

    let payloads = server.payloads();
    assert_eq!(payloads.len(), 1);
    let wire = &payloads[0];
    for (at, byte) in wire.iter().enumerate() {
        match byte {
            b'\n' => assert_eq!(
                wire.get(at.wrapping_sub(1)),
                Some(&b'\r'),
                "bare LF at {at}"
            ),
            b'\r' => assert_eq!(wire.get(at + 1), Some(&b'\n'), "bare CR at {at}"),
            _ => {}
        }
    }
    let lines: Vec<&[u8]> = wire
        .strip_suffix(b"\r\n")
        .expect("the data ends with CRLF before the final dot")
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    let mut unstuffed = Vec::new();
    for line in lines {
        if line.first() == Some(&b'.') {
            assert_eq!(line.get(1), Some(&b'.'), "unstuffed dot line {line:?}");
        }
        unstuffed.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        unstuffed.extend_from_slice(b"\r\n");
    }
    let mut expected = wire_data(raw).into_owned();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(&unstuffed),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(
        server.transactions(),
        1,
        "one MAIL FROM, no smuggled second one"
    );
}

#[tokio::test]
async fn an_unknown_recipient_becomes_a_dead_letter_and_a_ticket_event() {
    let server = FakeServer::start(Script {
        rcpt: "550 5.1.1 <nobody@casemail.test>: Recipient address rejected",
        ..Script::default()
    })
    .await;
    let bench = Bench::new(&server);
    let ticket = bench.ticket();
    let id = bench.enqueue(
        &["nobody@casemail.test"],
        Some(ticket),
        b"Subject: x\r\n\r\nhi\r\n",
    );

    let outcome = bench.relay().step().await.expect("step");
    assert_eq!(
        outcome,
        StepOutcome {
            sent: 0,
            deferred: 0,
            failed: vec![id]
        }
    );
    assert!(bench.store.outbox().expect("outbox").is_empty());
    let dead = bench.store.dead_letters().expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entry.id, id);
    assert_eq!(dead[0].entry.attempts, 1);
    assert!(dead[0].error.contains("550"), "{}", dead[0].error);
    assert!(!dead[0].error.contains("nobody"), "{}", dead[0].error);
    assert_eq!(
        bench.store.dead_letter_raw(id).expect("raw").as_deref(),
        Some(&b"Subject: x\r\n\r\nhi\r\n"[..])
    );
    let events = bench.store.events(ticket).expect("events");
    let last = events.last().expect("an event");
    assert_eq!(last.kind, "send_failed");
    assert_eq!(
        last.detail,
        "notification to 1 recipient(s) refused with 550"
    );
    assert_eq!(
        bench
            .store
            .ticket(ticket)
            .expect("ticket")
            .map(|t| t.event_count),
        Some(1)
    );
}

#[tokio::test]
async fn a_refused_login_keeps_every_message_and_connects_only_for_the_first() {
    let server = FakeServer::start(Script {
        auth: Some("535 5.7.8 Error: authentication failed"),
        ..Script::default()
    })
    .await;
    let mut bench = Bench::new(&server);
    bench.config.username = Some("relay".to_owned());
    bench.config.password = Some(SecretString::from("wrong"));
    let first = bench.enqueue(&["a@casemail.test"], None, b"Subject: 1\r\n\r\n1\r\n");
    let second = bench.enqueue(&["b@casemail.test"], None, b"Subject: 2\r\n\r\n2\r\n");

    let outcome = bench.relay().step().await.expect("step");
    assert_eq!(outcome.deferred, 2, "{outcome:?}");
    assert!(outcome.failed.is_empty());
    assert!(bench.store.dead_letters().expect("dead").is_empty());
    let outbox = bench.store.outbox().expect("outbox");
    assert_eq!(
        outbox.iter().map(|e| e.id).collect::<Vec<_>>(),
        [first, second]
    );
    for entry in &outbox {
        assert_eq!(entry.attempts, 1);
        let error = entry.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("refused the session") && error.contains("535"),
            "{error}"
        );
    }
    // The send and the check of the session; the second message was not tried.
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_a_session_problem_not_the_message() {
    let server = FakeServer::start(Script::default()).await;
    let mut bench = Bench::new(&server);
    bench.config.security = Security::StartTls;
    bench.enqueue(&["a@casemail.test"], None, b"Subject: 1\r\n\r\n1\r\n");

    let outcome = bench.relay().step().await.expect("step");
    assert_eq!(outcome.deferred, 1, "{outcome:?}");
    let outbox = bench.store.outbox().expect("outbox");
    let error = outbox[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("refused the session") && error.contains("STARTTLS"),
        "{error}"
    );
    assert!(server.payloads().is_empty());
}

#[tokio::test]
async fn a_server_that_is_down_defers_everything_due_and_the_retry_waits_for_the_backoff() {
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut bench = Bench::new_on_port(closed_port);
    bench.enqueue(&["a@casemail.test"], None, b"Subject: 1\r\n\r\n1\r\n");
    bench.enqueue(&["b@casemail.test"], None, b"Subject: 2\r\n\r\n2\r\n");
    let mut relay = bench.relay();

    let outcome = relay.step().await.expect("step");
    assert_eq!(outcome.deferred, 2, "{outcome:?}");
    for entry in bench.store.outbox().expect("outbox") {
        assert_eq!(entry.attempts, 1);
        assert!(entry.next_attempt > T0 && entry.next_attempt <= T0 + SignedDuration::from_secs(1));
        assert!(entry.last_error.is_some());
    }

    // Not due yet: nothing is tried, nothing changes.
    let outcome = relay.step().await.expect("step");
    assert_eq!(outcome, StepOutcome::default());

    let server = FakeServer::start(Script::default()).await;
    bench.config.port = server.port;
    let mut relay = bench.relay();
    bench.advance(Duration::from_secs(1));
    let outcome = relay.step().await.expect("step");
    assert_eq!(outcome.sent, 2, "{outcome:?}");
    assert!(bench.store.outbox().expect("outbox").is_empty());
    assert_eq!(server.payloads().len(), 2);
}

#[tokio::test]
async fn a_4xx_for_one_message_does_not_hold_back_the_next() {
    let server = FakeServer::start(Script {
        data_end: vec!["451 4.3.0 try again later", "250 2.0.0 queued"],
        ..Script::default()
    })
    .await;
    let bench = Bench::new(&server);
    let first = bench.enqueue(&["a@casemail.test"], None, b"Subject: 1\r\n\r\n1\r\n");
    bench.enqueue(&["b@casemail.test"], None, b"Subject: 2\r\n\r\n2\r\n");

    let outcome = bench.relay().step().await.expect("step");
    assert_eq!((outcome.sent, outcome.deferred), (1, 1), "{outcome:?}");
    let outbox = bench.store.outbox().expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].id, first);
    let error = outbox[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("deferred") && error.contains("451"),
        "{error}"
    );
}

#[tokio::test]
async fn missing_bytes_and_bad_addresses_are_permanent() {
    let server = FakeServer::start(Script::default()).await;
    let bench = Bench::new(&server);
    let relay = bench.relay();
    let entry = outbox_entry(&["a@casemail.test"], None);
    assert!(matches!(
        relay.attempt(&entry, None).await,
        Err(Error::MissingRaw { .. })
    ));
    let bad = outbox_entry(&["not an address"], None);
    match relay.attempt(&bad, Some(b"x")).await {
        Err(err @ Error::Envelope { .. }) => {
            assert!(!err.to_string().contains("not an address"), "{err}");
        }
        other => panic!("expected an envelope error, got {other:?}"),
    }
    let nobody = outbox_entry(&[], None);
    assert!(matches!(
        relay.attempt(&nobody, Some(b"x")).await,
        Err(Error::Envelope { .. })
    ));
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn run_sends_when_woken_and_stops_when_cancelled() {
    let server = FakeServer::start(Script::default()).await;
    let bench = Bench::new(&server);
    let wake = Arc::new(Notify::new());
    let cancel = CancellationToken::new();
    // The outbox is empty, so the loop settles into its long idle wait.
    let task = tokio::spawn(bench.relay().run(wake.clone(), cancel.clone()));

    bench.enqueue(&["a@casemail.test"], None, b"Subject: 1\r\n\r\n1\r\n");
    wake.notify_one();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !bench.store.outbox().expect("outbox").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the woken relay never sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.payloads().len(), 1);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the relay stops when cancelled")
        .expect("the relay task did not panic");
}

// ---- helpers ----

fn smtp_config(port: u16) -> config::Smtp {
    config::Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        security: Security::Plain,
        username: None,
        password: None,
        oauth2: None,
        password_file: None,
        ca_file: None,
    }
}

fn outbox_entry(recipients: &[&str], ticket: Option<TicketId>) -> OutboxEntry {
    OutboxEntry {
        id: 0,
        kind: OutboxKind::Notification,
        ticket,
        message_id: MessageId::parse("<out-1@casemail.test>").expect("valid id"),
        envelope_from: "help@casemail.test".to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        created: T0,
        attempts: 0,
        next_attempt: T0,
        last_error: None,
    }
}

/// A temporary store, a movable clock and the SMTP settings for one test.
struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
    now: Arc<Mutex<Timestamp>>,
    config: config::Smtp,
}

impl Bench {
    fn new(server: &FakeServer) -> Bench {
        Bench::new_on_port(server.port)
    }

    fn new_on_port(port: u16) -> Bench {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open store");
        Bench {
            _dir: dir,
            store,
            now: Arc::new(Mutex::new(T0)),
            config: smtp_config(port),
        }
    }

    fn relay(&self) -> Relay {
        let now = self.now.clone();
        let clock: Clock = Arc::new(move || *now.lock().expect("clock lock"));
        let transport = transport(&self.config, Some("relay.casemail.test")).expect("transport");
        Relay::new(self.store.clone(), transport, clock)
    }

    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now = now
            .checked_add(SignedDuration::try_from(by).expect("small"))
            .expect("in range");
    }

    fn ticket(&self) -> TicketId {
        self.store
            .write(|tx| {
                let id = tx.allocate_ticket_id()?;
                tx.put_ticket(&Ticket {
                    id,
                    status: Status::Open,
                    subject: "Housing".to_owned(),
                    requester: "someone@casemail.test".to_owned(),
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
            .expect("create ticket")
    }

    fn enqueue(&self, recipients: &[&str], ticket: Option<TicketId>, raw: &[u8]) -> u64 {
        let entry = outbox_entry(recipients, ticket);
        self.store
            .write(|tx| tx.enqueue(&entry, raw))
            .expect("enqueue")
    }
}

/// Replies a [`FakeServer`] gives. `data_end` is used in turn for each message's final dot,
/// the last one for every message after.
#[derive(Clone)]
struct Script {
    /// Offered as `AUTH PLAIN LOGIN` when set, and the reply to AUTH.
    auth: Option<&'static str>,
    rcpt: &'static str,
    data_end: Vec<&'static str>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            auth: None,
            rcpt: "250 2.1.5 Ok",
            data_end: vec!["250 2.0.0 Ok: queued"],
        }
    }
}

/// A scripted SMTP server on loopback that records each message's DATA exactly as it came
/// over the wire (dot-stuffed, up to but not including the final "." line).
struct FakeServer {
    port: u16,
    payloads: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
    transactions: Arc<AtomicUsize>,
}

impl FakeServer {
    async fn start(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = FakeServer {
            port,
            payloads: Arc::default(),
            connections: Arc::default(),
            transactions: Arc::default(),
        };
        let (payloads, connections, transactions) = (
            server.payloads.clone(),
            server.connections.clone(),
            server.transactions.clone(),
        );
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let session = Session {
                    script: script.clone(),
                    payloads: payloads.clone(),
                    transactions: transactions.clone(),
                };
                tokio::spawn(session.serve(socket));
            }
        });
        server
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.payloads.lock().expect("lock").clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn transactions(&self) -> usize {
        self.transactions.load(Ordering::SeqCst)
    }
}

struct Session {
    script: Script,
    payloads: Arc<Mutex<Vec<Vec<u8>>>>,
    transactions: Arc<AtomicUsize>,
}

impl Session {
    async fn serve(self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 fake ESMTP\r\n").await?;
        loop {
            let mut line = Vec::new();
            if read.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            let command = String::from_utf8_lossy(&line).to_ascii_uppercase();
            let reply: String = if command.starts_with("EHLO") {
                match self.script.auth {
                    Some(_) => "250-fake\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN".to_owned(),
                    None => "250-fake\r\n250 8BITMIME".to_owned(),
                }
            } else if command.starts_with("AUTH") {
                self.script.auth.unwrap_or("503 no auth here").to_owned()
            } else if command.starts_with("MAIL") {
                self.transactions.fetch_add(1, Ordering::SeqCst);
                "250 2.1.0 Ok".to_owned()
            } else if command.starts_with("RCPT") {
                self.script.rcpt.to_owned()
            } else if command.starts_with("DATA") {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut payload = Vec::new();
                while !payload.ends_with(b"\r\n.\r\n") {
                    if read.read_until(b'\n', &mut payload).await? == 0 {
                        return Ok(());
                    }
                }
                payload.truncate(payload.len() - 3);
                let count = {
                    let mut payloads = self.payloads.lock().expect("lock");
                    payloads.push(payload);
                    payloads.len()
                };
                let replies = &self.script.data_end;
                replies
                    .get(count - 1)
                    .or(replies.last())
                    .copied()
                    .unwrap_or("250 Ok")
                    .to_owned()
            } else if command.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if command.starts_with("NOOP") || command.starts_with("RSET") {
                "250 Ok".to_owned()
            } else {
                "500 unknown command".to_owned()
            };
            write.write_all(reply.as_bytes()).await?;
            write.write_all(b"\r\n").await?;
        }
    }
}

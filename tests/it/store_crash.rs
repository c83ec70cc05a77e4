//! The store survives SIGKILL: a child process commits tickets and reports each durable
//! commit; the parent kills it at random moments, reopens the store and checks that everything
//! reported as committed is there and that every transaction is whole.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};

use casemail::ids::{MailKey, MessageId, TicketId};
use casemail::store::Store;

const TRIALS: u32 = 60;

#[test]
fn committed_tickets_survive_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("CASEMAIL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (set CASEMAIL_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut reported: u64 = 0;
    let mut killed_mid_write = 0;
    let mut verified: u64 = 0;

    for trial in 0..TRIALS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_casemail-bench"))
            .args(["store-writer", "--group"])
            .arg(rng.random_range(1..=16u64).to_string())
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn store writer");
        let stdout = child.stdout.take().expect("child stdout");
        let (lines_tx, lines_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after the child has made a random amount of progress (sometimes before its first
        // commit, sometimes deep into a group).
        let wait = Duration::from_millis(rng.random_range(5..400));
        std::thread::sleep(wait);
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        assert!(!status.success(), "the writer was killed, not finished");
        reader.join().expect("reader thread");
        let before = reported;
        for line in lines_rx.try_iter() {
            let n: u64 = line
                .strip_prefix("committed ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected writer output {line:?}"));
            assert!(n >= reported, "commits are reported in order");
            reported = n;
        }
        if reported > before {
            killed_mid_write += 1;
        }
        verified = verify(dir.path(), verified, reported, trial, &mut rng);
    }
    eprintln!(
        "{TRIALS} SIGKILL trials passed, {reported} tickets reported committed, \
         {killed_mid_write} trials killed after progress"
    );
    assert!(reported > 0, "the writer never committed anything");
    assert!(
        killed_mid_write >= TRIALS / 2,
        "most trials must kill a working writer"
    );
}

/// Everything up to `reported` is present, and every ticket present is whole: its message, raw
/// bytes, indexes and event all came in the same transaction. Tickets written since the last
/// trial are checked in full, older ones by a random sample, so the test stays linear.
/// Returns the highest ticket checked.
fn verify(
    dir: &std::path::Path,
    verified: u64,
    reported: u64,
    trial: u32,
    rng: &mut rand::rngs::StdRng,
) -> u64 {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("trial {trial}: reopen failed: {e:#}"));
    let last = store.last_ticket_id().expect("counter").0;
    assert!(
        last >= reported,
        "trial {trial}: {reported} reported committed but counter is at {last}"
    );
    assert!(
        store.ticket(TicketId(last + 1)).expect("read").is_none(),
        "trial {trial}: no ticket beyond the counter"
    );
    let cursor = store.cursor("INBOX").expect("cursor");
    if last > 0 {
        assert_eq!(
            cursor.map(|c| u64::from(c.last_uid.0)),
            Some(last),
            "trial {trial}: the cursor moved with the last ticket"
        );
    }
    let sample = (0..20).map(|_| rng.random_range(1..=verified.max(1)));
    let recent = verified.saturating_sub(2).max(1)..=last;
    for number in sample.chain(recent).filter(|n| *n <= last) {
        let ticket = store
            .ticket(TicketId(number))
            .expect("read ticket")
            .unwrap_or_else(|| panic!("trial {trial}: ticket {number} missing below the counter"));
        assert_eq!(ticket.event_count, 1, "trial {trial}: ticket {number}");
        let messages = store.messages(ticket.id).expect("messages");
        assert_eq!(messages.len(), 1, "trial {trial}: ticket {number} messages");
        let raw = store.raw(ticket.id, 0).expect("raw");
        let events = store.events(ticket.id).expect("events");
        assert_eq!(events.len(), 1, "trial {trial}: ticket {number} events");
        // The writer numbers its synthetic mail after the ticket it expects to create.
        let expected = synthetic_raw(number);
        assert_eq!(
            raw.as_deref(),
            Some(expected.as_slice()),
            "trial {trial}: ticket {number} raw bytes"
        );
        let key = MailKey::MessageId(
            MessageId::parse(&format!("synthetic-{number}@example.org")).expect("id"),
        );
        assert_eq!(
            store.find_key(&key).expect("key index"),
            Some((ticket.id, 0)),
            "trial {trial}: ticket {number} dedupe index"
        );
        assert!(
            store
                .tickets_of_requester(&ticket.requester)
                .expect("requester index")
                .contains(&ticket.id),
            "trial {trial}: ticket {number} requester index"
        );
    }
    last
}

/// Mirrors `casemail-bench`'s synthetic message so the check does not trust the writer.
fn synthetic_raw(n: u64) -> Vec<u8> {
    let body_len = 200 + (n * 7919) % 16_000;
    let mut raw = format!(
        "From: r{}@example.org\r\nMessage-ID: <synthetic-{n}@example.org>\r\nSubject: case {n}\r\n\r\n",
        n % 50
    )
    .into_bytes();
    raw.extend((0..body_len).map(|i| b'a' + ((i + n) % 26) as u8));
    raw
}

//! `casemail-bench`: measurements and the store's crash-test writer.
//!
//! `store-writer` is the child process the crash test kills with SIGKILL: it commits tickets in
//! groups and prints `committed N` after each durable flush, so the parent knows what must
//! survive. `store` measures durable commit throughput alone; `parse` the parser alone on the
//! pipeline benchmark's mail; `populate` fills a state directory with a large, realistic
//! store (mostly closed tickets) for the memory and restart figures; `accounting` the store
//! scan reconciliation and the restart acknowledgement make; `lifecycle` backup, restore and
//! purging on a store of synthetic tickets; `spam` the classifier's precision and recall.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jiff::Timestamp;

use casemail::ids::{MailKey, MessageId, TicketId, Uid, UidValidity};
use casemail::mail::parse::{self, ParseLimits};
use casemail::model::{Actor, Cursor, Direction, Event, Status, StoredMessage, Ticket};
use casemail::store::Store;

#[path = "../../benches/support/corpus.rs"]
mod corpus;
#[path = "casemail-bench/spam.rs"]
mod spam_bench;

#[derive(Debug, Parser)]
#[command(name = "casemail-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Commit synthetic tickets forever (or up to --count), printing `committed N` after each
    /// durable flush. Continues from what the store already holds.
    StoreWriter {
        #[arg(long)]
        dir: PathBuf,
        /// Tickets per durable commit.
        #[arg(long, default_value_t = 8)]
        group: u64,
        #[arg(long)]
        count: Option<u64>,
    },
    /// Measure durable commit throughput of the store alone.
    Store {
        #[arg(long, default_value_t = 5000)]
        count: u64,
        /// Tickets per durable commit.
        #[arg(long, default_value_t = 100)]
        group: u64,
    },
    /// Precision and recall of the spam classifier, the whole verdict and (with --spamd)
    /// SpamAssassin, on a synthetic labelled corpus: half learned, half judged.
    Spam {
        /// Messages in the corpus (at least 500).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// A running spamd to compare with (e.g. 127.0.0.1:783).
        #[arg(long)]
        spamd: Option<std::net::SocketAddr>,
    },
    /// Measure the store side of reconciliation: the scan that finds which UIDs of a folder
    /// the store accounts for, over a store of --count tickets.
    Accounting {
        #[arg(long, default_value_t = 20_000)]
        count: u64,
    },
    /// Measure backup, restore and purging (retention or erasure) on synthetic tickets.
    Lifecycle {
        #[arg(long, default_value_t = 5000)]
        count: u64,
    },
    /// Measure parse throughput alone, on the pipeline benchmark's mail mix.
    Parse {
        #[arg(long, default_value_t = 10_000)]
        count: u64,
    },
    /// Add `count` tickets to the store in `dir`: one in 50 open, the rest closed, each with
    /// one message of 0.5 to 2.5 KB, committed 1,000 per durable flush.
    Populate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
    },
}

fn main() -> anyhow::Result<()> {
    // The stores it writes hold mail like the daemon's: private, as `casemail` makes them.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match Cli::parse().command {
        Command::StoreWriter { dir, group, count } => store_writer(&dir, group, count),
        Command::Spam { count, seed, spamd } => {
            let dir = tempfile_dir()?;
            let result = spam_bench::run(&dir, count, seed, spamd);
            std::fs::remove_dir_all(&dir).ok();
            result
        }
        Command::Store { count, group } => {
            let dir = tempfile_dir()?;
            let started = Instant::now();
            let store = Store::open(&dir).context("open store")?;
            write_tickets(&store, 1, count, group, |_| Ok(()))?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "store commit: {count} tickets, {group} per durable commit, {seconds:.2} s, {:.0} tickets/s",
                count as f64 / seconds
            );
            std::fs::remove_dir_all(&dir).ok();
            Ok(())
        }
        Command::Accounting { count } => {
            let dir = tempfile_dir()?;
            let store = Store::open(&dir).context("open store")?;
            write_tickets(&store, 1, count.saturating_add(1), 500, |_| Ok(()))?;
            let mut timings = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let accounted = store.accounted_uids("INBOX", UidValidity(1))?;
                timings.push(started.elapsed().as_secs_f64());
                std::hint::black_box(accounted);
            }
            timings.sort_by(f64::total_cmp);
            let median = timings.get(timings.len() / 2).copied().unwrap_or_default();
            println!(
                "reconcile store scan: {count} stored messages, median of 5: {:.1} ms, {:.0} messages/s",
                median * 1000.0,
                count as f64 / median
            );
            std::fs::remove_dir_all(&dir).ok();
            Ok(())
        }
        Command::Lifecycle { count } => {
            let dir = tempfile_dir()?;
            let result = lifecycle(&dir, count);
            std::fs::remove_dir_all(&dir).ok();
            result
        }
        Command::Parse { count } => {
            let mails = corpus::corpus(count, "help@casemail.test");
            let bytes: usize = mails.iter().map(|m| m.raw.len()).sum();
            let limits = ParseLimits::default();
            let started = Instant::now();
            let mut texts = 0usize;
            for mail in &mails {
                texts += parse::parse(&mail.raw, &limits).text.len();
            }
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "parse: {count} messages ({:.1} MB), {seconds:.2} s, {:.0} messages/s ({} text bytes)",
                bytes as f64 / 1e6,
                count as f64 / seconds,
                texts
            );
            Ok(())
        }
        Command::Populate { dir, count } => {
            let started = Instant::now();
            let store = Store::open(&dir).context("open store")?;
            populate(&store, count)?;
            println!(
                "populate: {count} tickets in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// Tickets as a helpdesk that has run for years holds them: nearly all closed.
fn populate(store: &Store, count: u64) -> anyhow::Result<()> {
    let first = store.last_ticket_id()?.0 + 1;
    for group in (first..first + count).collect::<Vec<_>>().chunks(1000) {
        for &n in group {
            let requester = format!("p{}@requester.example.org", n % 30_000);
            let raw = format!(
                "From: {requester}\r\nMessage-ID: <populate-{n}@requester.example.org>\r\n\
                 Subject: case {n}\r\n\r\n{}",
                "I need help with my claim. ".repeat(20 + (n % 80) as usize)
            );
            let status = if n % 50 == 0 {
                Status::Open
            } else {
                Status::Closed
            };
            store.write(|tx| {
                let id = tx.allocate_ticket_id()?;
                let message_id = MessageId::parse(&format!("populate-{n}@requester.example.org"));
                let mut ticket = synthetic_ticket(id, &requester, &format!("case {n}"));
                ticket.status = status;
                let message = synthetic_message(id, n, &requester, message_id);
                tx.put_message(&message, Some(raw.as_bytes()))?;
                tx.index_requester(&requester, id)?;
                tx.add_event(&mut ticket, &created_event())?;
                tx.put_ticket(&ticket)?;
                Ok(id)
            })?;
        }
        store.flush()?;
    }
    Ok(())
}

fn synthetic_ticket(id: TicketId, requester: &str, subject: &str) -> Ticket {
    Ticket {
        id,
        status: Status::New,
        subject: subject.to_owned(),
        requester: requester.to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::from([requester.to_owned()]),
        flags: BTreeSet::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: Timestamp::UNIX_EPOCH,
        message_count: 1,
        event_count: 0,
    }
}

fn synthetic_message(
    id: TicketId,
    n: u64,
    requester: &str,
    message_id: Option<MessageId>,
) -> StoredMessage {
    StoredMessage {
        ticket: id,
        seq: 0,
        direction: Direction::In,
        key: message_id
            .clone()
            .map_or(MailKey::ContentHash(format!("{n}")), MailKey::MessageId),
        message_id,
        from: Some(requester.to_owned()),
        from_name: None,
        to: vec![],
        cc: vec![],
        subject: Some(format!("case {n}")),
        date: None,
        received: Timestamp::UNIX_EPOCH,
        in_reply_to: vec![],
        references: vec![],
        text: String::new(),
        attachments: vec![],
        anomalies: vec![],
        sources: vec![],
    }
}

fn created_event() -> Event {
    Event {
        at: Timestamp::UNIX_EPOCH,
        actor: Actor::System,
        kind: "created".to_owned(),
        detail: String::new(),
    }
}

fn lifecycle(dir: &std::path::Path, count: u64) -> anyhow::Result<()> {
    let state = dir.join("state");
    let store = Store::open(&state).context("open store")?;
    write_tickets(&store, 1, count.saturating_add(1), 100, |_| Ok(()))?;
    let file = dir.join("bench.backup");
    let started = Instant::now();
    let summary = casemail::ops::backup::write_file(&file, |out| {
        casemail::ops::backup::write_snapshot(&store, &state, out)?;
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let megabytes = summary.bytes as f64 / 1_000_000.0;
    println!(
        "backup: {} tickets, {} records, {megabytes:.1} MB written, fsynced and verified in {seconds:.2} s, {:.0} MB/s",
        summary.tickets,
        summary.records,
        megabytes / seconds
    );
    let restored = dir.join("restored");
    let started = Instant::now();
    casemail::ops::backup::restore(&file, &restored, casemail::ops::backup::Overwrite::Refuse)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "restore: {megabytes:.1} MB verified and rebuilt in {seconds:.2} s, {:.0} MB/s",
        megabytes / seconds
    );
    let ids: BTreeSet<TicketId> = store.tickets()?.into_iter().map(|t| t.id).collect();
    let started = Instant::now();
    let removed =
        casemail::casework::purge::remove_tickets(&store, &ids, Timestamp::UNIX_EPOCH, "bench")?;
    store.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "purge: {} tickets ({} messages) removed in {seconds:.2} s, {:.0} tickets/s",
        removed.tickets,
        removed.messages,
        removed.tickets as f64 / seconds
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("casemail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create temp dir")?;
    Ok(dir)
}

fn store_writer(dir: &std::path::Path, group: u64, count: Option<u64>) -> anyhow::Result<()> {
    let store = Store::open(dir).context("open store")?;
    let first = store.last_ticket_id()?.0 + 1;
    let last = count.map_or(u64::MAX, |c| first.saturating_add(c));
    let mut stdout = std::io::stdout().lock();
    write_tickets(&store, first, last, group, |committed| {
        writeln!(stdout, "committed {committed}")?;
        stdout.flush()?;
        Ok(())
    })
}

/// The deterministic raw message of synthetic ticket `n`, so a reader can verify it.
pub fn synthetic_raw(n: u64) -> Vec<u8> {
    let body_len = 200 + (n * 7919) % 16_000;
    let mut raw = format!(
        "From: r{}@example.org\r\nMessage-ID: <synthetic-{n}@example.org>\r\nSubject: case {n}\r\n\r\n",
        n % 50
    )
    .into_bytes();
    raw.extend((0..body_len).map(|i| b'a' + ((i + n) % 26) as u8));
    raw
}

fn write_tickets(
    store: &Store,
    first: u64,
    end: u64,
    group: u64,
    mut on_commit: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let group = group.max(1);
    let mut n = first;
    while n < end {
        let batch_end = n.saturating_add(group).min(end);
        for i in n..batch_end {
            let raw = synthetic_raw(i);
            store.write(|tx| {
                let id = tx.allocate_ticket_id()?;
                let requester = format!("r{}@example.org", i % 50);
                let message_id = MessageId::parse(&format!("synthetic-{i}@example.org"));
                let mut ticket = Ticket {
                    id,
                    status: Status::New,
                    subject: format!("case {i}"),
                    requester: requester.clone(),
                    requester_name: None,
                    owner: None,
                    assigned_at: None,
                    last_agent_reply: None,
                    merged_into: None,
                    participants: BTreeSet::from([requester.clone()]),
                    flags: BTreeSet::new(),
                    created: Timestamp::UNIX_EPOCH,
                    updated: Timestamp::UNIX_EPOCH,
                    message_count: 1,
                    event_count: 0,
                };
                let message = StoredMessage {
                    ticket: id,
                    seq: 0,
                    direction: Direction::In,
                    key: message_id
                        .clone()
                        .map_or(MailKey::ContentHash(format!("{i}")), MailKey::MessageId),
                    message_id: message_id.clone(),
                    from: Some(requester.clone()),
                    from_name: None,
                    to: vec![],
                    cc: vec![],
                    subject: Some(format!("case {i}")),
                    date: None,
                    received: Timestamp::UNIX_EPOCH,
                    in_reply_to: vec![],
                    references: vec![],
                    text: String::new(),
                    attachments: vec![],
                    anomalies: vec![],
                    sources: vec![],
                };
                tx.put_message(&message, Some(&raw))?;
                tx.add_event(
                    &mut ticket,
                    &Event {
                        at: Timestamp::UNIX_EPOCH,
                        actor: Actor::System,
                        kind: "created".to_owned(),
                        detail: String::new(),
                    },
                )?;
                tx.put_ticket(&ticket)?;
                tx.set_cursor(
                    "INBOX",
                    &Cursor {
                        uidvalidity: UidValidity(1),
                        last_uid: Uid(u32::try_from(id.0).unwrap_or(u32::MAX)),
                    },
                )?;
                Ok(id)
            })?;
        }
        store.flush()?;
        on_commit(batch_end - 1)?;
        n = batch_end;
    }
    let _ = TicketId(0);
    Ok(())
}

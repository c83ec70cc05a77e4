//! The pipeline benchmark: the release `casemail` binary against the test bench's real Dovecot
//! and Postfix on loopback, durable commits throughout.
//!
//! `cargo bench --bench pipeline` prints a table with
//! - backlog ingest: N messages (the mix in `support/corpus.rs`) appended to the INBOX before
//!   the daemon starts; the time from starting it until the processed folder holds all N
//!   (every message durably committed, flagged and moved), and the peak RSS meanwhile;
//! - live latency: M requests sent one at a time by SMTP while the daemon idles with three
//!   caseworkers always on duty; for each, from Postfix's 250 to the relay recording the
//!   250 for the caseworker's notification (the ticket's `sent` event), and to the
//!   notification being in the caseworker's mailbox;
//! - memory and restart: with T tickets in the store, the time from start to the first UID
//!   FETCH (the daemon's log line) and to the first message moved, the time of a `/metrics`
//!   scrape, and the RSS while idle;
//! - components: parse alone and store commits alone (`casemail-bench parse` and `store`).
//!
//! `CASEMAIL_BENCH_MESSAGES` (default 10,000), `CASEMAIL_BENCH_LIVE` (200) and
//! `CASEMAIL_BENCH_TICKETS` (100,000) change the sizes; `CASEMAIL_BENCH_LOG=FILE` keeps the
//! live phase's daemon log (DEBUG) for a closer look. Run as a test (`cargo test
//! --all-targets`, without `--bench`) it is a quick smoke run with tiny sizes that still checks
//! every figure's premise: every message filed exactly once, every request notified once.

#![allow(
    clippy::indexing_slicing,
    reason = "the shared test harness indexes what it has just checked"
)]

#[allow(
    unused_imports,
    reason = "the benchmark uses only part of the test harness (not its spamd)"
)]
#[path = "../tests/it/harness/mod.rs"]
mod harness;

#[allow(
    dead_code,
    reason = "the benchmark uses only part of the test daemon's helpers"
)]
#[path = "../tests/it/daemon.rs"]
mod daemon;

#[path = "support/corpus.rs"]
mod corpus;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use daemon::Daemon;
use harness::{Account, Bench, Security};

const BENCH_BIN: &str = env!("CARGO_BIN_EXE_casemail-bench");

/// How long any one stage may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(600);

struct Sizes {
    messages: u64,
    live: u64,
    tickets: u64,
    smoke: bool,
}

impl Sizes {
    fn from_env() -> anyhow::Result<Sizes> {
        // `cargo bench` passes --bench; `cargo test` runs the target without it.
        let smoke = !std::env::args().any(|arg| arg == "--bench");
        let size = |name: &str, full: u64, small: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(value) => value
                    .replace(['_', ','], "")
                    .parse()
                    .with_context(|| format!("{name}={value} is not a number")),
                Err(_) => Ok(if smoke { small } else { full }),
            }
        };
        Ok(Sizes {
            messages: size("CASEMAIL_BENCH_MESSAGES", 10_000, 60)?,
            live: size("CASEMAIL_BENCH_LIVE", 200, 3)?,
            tickets: size("CASEMAIL_BENCH_TICKETS", 100_000, 500)?,
            smoke,
        })
    }
}

/// One row of the printed table.
struct Row {
    what: String,
    figure: String,
}

fn row(rows: &mut Vec<Row>, what: impl Into<String>, figure: impl Into<String>) {
    let row = Row {
        what: what.into(),
        figure: figure.into(),
    };
    eprintln!("  {}: {}", row.what, row.figure);
    rows.push(row);
}

fn main() -> anyhow::Result<()> {
    let sizes = Sizes::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    let rows = runtime.block_on(run(&sizes))?;
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    println!();
    println!(
        "casemail pipeline benchmark{} ({} CPUs, {}; load {})",
        if sizes.smoke { " (smoke run)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average(),
    );
    println!("| {:width$} | figure |", "what");
    println!("| {:-<width$} | ------ |", "");
    for r in &rows {
        println!("| {:width$} | {} |", r.what, r.figure);
    }
    Ok(())
}

async fn run(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let bench = harness::shared().await;
    let mut rows = Vec::new();
    components(sizes, &mut rows)?;
    backlog(bench, sizes, &mut rows).await?;
    live(bench, sizes, &mut rows).await?;
    restart(bench, sizes, &mut rows).await?;
    Ok(rows)
}

fn components(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let count = sizes.messages.to_string();
    let parse = bench_tool(&["parse", "--count", &count])?;
    row(rows, "parse alone (corpus mix)", parse);
    let store_count = sizes.messages.min(5_000).to_string();
    let store = bench_tool(&["store", "--count", &store_count, "--group", "100"])?;
    row(rows, "store commits alone, 100 per fsync", store);
    Ok(())
}

/// Runs `casemail-bench` and returns what it printed after the subcommand's name.
fn bench_tool(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(BENCH_BIN)
        .args(args)
        .output()
        .context("run casemail-bench")?;
    ensure!(
        output.status.success(),
        "casemail-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(text
        .split_once(": ")
        .map_or(text.clone(), |(_, rest)| rest.to_owned()))
}

async fn backlog(bench: &Bench, sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let n = sizes.messages;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let mails = corpus::corpus(n, &help.address);
    let duplicates = mails
        .iter()
        .filter(|m| m.kind == corpus::Kind::Duplicate)
        .count() as u64;
    let bytes: usize = mails.iter().map(|m| m.raw.len()).sum();
    let appended = Instant::now();
    append_all(bench, &help, &mails).await?;
    let mut watch = bench.imap_session(&help, Security::Plain).await?;
    ensure!(
        messages_in(&mut watch, "INBOX").await? == n,
        "INBOX holds the backlog"
    );
    eprintln!(
        "backlog: {n} messages ({:.1} MB) appended in {:.1} s",
        bytes as f64 / 1e6,
        appended.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    // The production default log level: one line per message.
    daemon.start_with_env(&[("RUST_LOG", "info".to_owned())]);
    let pid = daemon.pid().context("daemon pid")?;
    let deadline = started + PATIENCE;
    let mut peak = 0;
    loop {
        peak = peak.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
        if messages_in(&mut watch, "Processed").await.unwrap_or(0) >= n {
            break;
        }
        daemon.assert_running();
        if Instant::now() > deadline {
            bail!("backlog not processed in time:\n{}", daemon.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    peak = peak.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));

    // Every message filed exactly once: counted once, nothing left, nothing doubled.
    ensure!(
        messages_in(&mut watch, "INBOX").await? == 0,
        "INBOX is empty"
    );
    ensure!(
        messages_in(&mut watch, "Processed").await? == n,
        "Processed holds exactly the backlog"
    );
    let metrics = scrape(&daemon).await?;
    ensure!(
        metric(&metrics, "casemail_messages_ingested_total") == Some(n as f64),
        "every message was filed once: {:?}",
        metric(&metrics, "casemail_messages_ingested_total")
    );
    ensure!(
        metric(&metrics, "casemail_duplicates_total") == Some(duplicates as f64),
        "each of the {duplicates} duplicates was recognised"
    );
    ensure!(
        metric(&metrics, "casemail_messages_stored") == Some((n - duplicates) as f64),
        "every original message is stored once"
    );
    if sizes.smoke {
        // Every IMAP copy is recorded as a source of exactly one stored message.
        let mut uids = BTreeSet::new();
        for (_, message) in daemon.all_messages() {
            for source in message["sources"].as_array().context("sources")? {
                let uid = source["uid"].as_u64().context("uid")?;
                ensure!(uids.insert(uid), "UID {uid} filed twice");
            }
        }
        ensure!(uids.len() as u64 == n, "{} of {n} UIDs filed", uids.len());
    }
    daemon.terminate().await?;
    row(
        rows,
        format!("backlog ingest: {n} messages, durable, moved"),
        format!("{seconds:.2} s, {:.0} messages/s", n as f64 / seconds),
    );
    // Where the process stage spent the time (its own latency histograms).
    let stage = |name: &str| {
        metric(
            &metrics,
            &format!("casemail_stage_seconds_sum{{stage=\"{name}\"}}"),
        )
        .unwrap_or(0.0)
    };
    row(
        rows,
        "backlog: process stage busy in parse / file / commit",
        format!(
            "{:.2} s / {:.2} s / {:.2} s",
            stage("parse"),
            stage("file"),
            stage("commit")
        ),
    );
    row(
        rows,
        "peak RSS during the backlog (VmHWM)",
        format!("{:.1} MiB", peak as f64 / 1024.0),
    );
    Ok(())
}

async fn live(bench: &Bench, sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    // Hundreds of requests in minutes to three caseworkers is past the loop-safety cap per
    // recipient and hour, which would hold notifications back: the cap is off here, since
    // this measures latency, not the cap.
    let mut daemon = Daemon::live(
        bench,
        &[("loops", "per_recipient_per_hour", toml::Value::Integer(0))],
    );
    let help = daemon.help.clone();
    let agents: Vec<Account> = (0..3).map(|_| bench.new_account("agent")).collect();
    let mut rota = String::from("timezone = \"UTC\"\n");
    for (i, agent) in agents.iter().enumerate() {
        let id = format!("agent{i}");
        cli(
            &daemon,
            &[
                "agent",
                "add",
                "--id",
                &id,
                "--name",
                &id,
                "--email",
                &agent.address,
            ],
        )?;
        rota.push_str(&format!(
            "[[shift]]\nagent = \"{id}\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \
             \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"24:00\"\n"
        ));
    }
    let rota_path = daemon.config_path.with_file_name("rota.toml");
    std::fs::write(&rota_path, rota)?;
    cli(&daemon, &["rota", "import", &rota_path.to_string_lossy()])?;
    daemon.start();
    let ready = harness::wait_until(Duration::from_secs(30), || async {
        matches!(daemon.http_get("/healthz").await, Ok((200, _)))
    })
    .await;
    if ready.is_err() {
        bail!("daemon not healthy:\n{}", daemon.log_tail());
    }
    let mut watchers = Vec::new();
    for agent in &agents {
        watchers.push(bench.imap_session(agent, Security::Plain).await?);
    }

    // One request first, not counted, so the figures are of an idling daemon rather than one
    // still settling into IDLE.
    let total = sizes.live + 1;
    let mut sent_at: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut in_mailbox: BTreeMap<String, Timestamp> = BTreeMap::new();
    for k in 0..total {
        let requester = format!("live{k}-{}@requester.example.org", std::process::id());
        let kind = [
            corpus::Kind::Plain,
            corpus::Kind::Html,
            corpus::Kind::Attachment,
        ][(k % 3) as usize];
        let raw = corpus::request(1_000_000 + k, kind, &requester, &help.address);
        bench.send_mail(&requester, &[&help.address], &raw).await?;
        // lettre returns after the 250 to the end of data and a QUIT (one loopback round trip).
        let accepted = Timestamp::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut count = 0;
            for watcher in &mut watchers {
                count += messages_in(watcher, "INBOX").await?;
            }
            if count > k {
                break;
            }
            if Instant::now() > deadline {
                bail!("no notification for request {k}:\n{}", daemon.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let delivered = Timestamp::now();
        if k > 0 {
            sent_at.insert(requester.clone(), accepted);
            in_mailbox.insert(requester, delivered);
        }
    }

    // Where the time before filing goes: the daemon logs each IDLE wake-up (at DEBUG).
    let log = std::fs::read_to_string(&daemon.log_path)?;
    if let Ok(keep) = std::env::var("CASEMAIL_BENCH_LOG") {
        std::fs::write(keep, &log)?;
    }
    let wakeups: Vec<Timestamp> = log
        .lines()
        .filter(|line| line.contains("IDLE woke up."))
        .filter_map(|line| Timestamp::from_str(line.split_whitespace().next()?).ok())
        .collect();
    let mut to_wakeup: Vec<f64> = sent_at
        .values()
        .filter_map(|accepted| {
            let first = wakeups.iter().find(|w| *w >= accepted)?;
            Some(seconds_between(*accepted, *first))
        })
        .collect();

    // The relay records a `sent` event on the ticket right after the server's 250.
    let mut to_filed = Vec::new();
    let mut to_relay = Vec::new();
    let mut to_mailbox = Vec::new();
    for ticket in daemon.tickets() {
        let requester = ticket["requester"].as_str().unwrap_or_default().to_owned();
        let Some(accepted) = sent_at.get(&requester) else {
            continue;
        };
        let number = ticket["number"].as_u64().context("number")?;
        let detail = daemon.ticket(number);
        let sent: Vec<Timestamp> = detail["events"]
            .as_array()
            .context("events")?
            .iter()
            .filter(|e| {
                e["kind"] == "sent"
                    && e["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("notification"))
            })
            .filter_map(|e| Timestamp::from_str(e["at"].as_str()?).ok())
            .collect();
        ensure!(
            sent.len() == 1,
            "ticket {number} has {} notifications sent",
            sent.len()
        );
        let created = Timestamp::from_str(ticket["created"].as_str().context("created")?)?;
        to_filed.push(seconds_between(*accepted, created));
        to_relay.push(seconds_between(*accepted, sent[0]));
        to_mailbox.push(seconds_between(*accepted, in_mailbox[&requester]));
    }
    ensure!(
        to_relay.len() as u64 == sizes.live,
        "{} of {} requests became notified tickets",
        to_relay.len(),
        sizes.live
    );
    daemon.terminate().await?;
    row(
        rows,
        "live: SMTP 250 → casemail's IDLE wakes up (its log)",
        percentiles(&mut to_wakeup),
    );
    row(
        rows,
        "live: SMTP 250 → ticket filed (its creation time)",
        percentiles(&mut to_filed),
    );
    row(
        rows,
        format!(
            "live: SMTP 250 → notification accepted by SMTP ({} requests)",
            sizes.live
        ),
        percentiles(&mut to_relay),
    );
    row(
        rows,
        "live: SMTP 250 → notification in the caseworker's mailbox",
        percentiles(&mut to_mailbox),
    );
    Ok(())
}

async fn restart(bench: &Bench, sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let t = sizes.tickets;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let populated = Instant::now();
    bench_tool(&[
        "populate",
        "--dir",
        &daemon.state_dir.to_string_lossy(),
        "--count",
        &t.to_string(),
    ])?;
    eprintln!(
        "restart: {t} tickets written in {:.1} s",
        populated.elapsed().as_secs_f64()
    );
    let mail = corpus::request(
        2_000_000,
        corpus::Kind::Plain,
        "late@requester.example.org",
        &help.address,
    );
    append_all(
        bench,
        &help,
        &[corpus::Mail {
            kind: corpus::Kind::Plain,
            raw: mail,
        }],
    )
    .await?;
    let mut watch = bench.imap_session(&help, Security::Plain).await?;

    let started_at = Timestamp::now();
    let started = Instant::now();
    // INFO, plus the fetcher's DEBUG line that marks each UID FETCH.
    daemon.start_with_env(&[("RUST_LOG", "info,casemail::imap=debug".to_owned())]);
    let pid = daemon.pid().context("daemon pid")?;
    let deadline = started + PATIENCE;
    while messages_in(&mut watch, "Processed").await.unwrap_or(0) < 1 {
        daemon.assert_running();
        if Instant::now() > deadline {
            bail!("first message not processed:\n{}", daemon.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_moved = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&daemon.log_path)?;
    let first_fetch = log
        .lines()
        .find(|line| line.contains("UID FETCH."))
        .and_then(|line| Timestamp::from_str(line.split_whitespace().next()?).ok())
        .context("the daemon logged no UID FETCH")?;

    let scrape_started = Instant::now();
    let metrics = scrape(&daemon).await?;
    let scrape_seconds = scrape_started.elapsed().as_secs_f64();
    let stored: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("casemail_tickets{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    ensure!(
        stored == (t + 1) as f64,
        "the store holds {stored} tickets, not {}",
        t + 1
    );
    // Idle: sample for two seconds after the first message and a scrape.
    let mut idle = 0;
    for _ in 0..20 {
        idle = idle.max(proc_status_kib(pid, "VmRSS:").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.terminate().await?;
    row(
        rows,
        format!("restart with {t} tickets: start → first UID FETCH"),
        format!("{:.3} s", seconds_between(started_at, first_fetch)),
    );
    row(
        rows,
        format!("restart with {t} tickets: start → first message moved"),
        format!("{first_moved:.3} s"),
    );
    row(
        rows,
        format!("/metrics scrape with {t} tickets"),
        format!("{:.0} ms", scrape_seconds * 1000.0),
    );
    row(
        rows,
        format!("idle RSS with {t} tickets (max over 2 s)"),
        format!("{:.1} MiB", idle as f64 / 1024.0),
    );
    Ok(())
}

/// Appends every message to `account`'s INBOX over one IMAP connection, with MULTIAPPEND and
/// LITERAL+ (RFC 3502, RFC 7888), so the backlog is in place within seconds.
async fn append_all(
    bench: &Bench,
    account: &Account,
    mails: &[corpus::Mail],
) -> anyhow::Result<()> {
    let endpoint = bench.imap_endpoint();
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    lines.next_line().await?.context("no IMAP greeting")?;
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    write
        .write_all(
            format!(
                "L LOGIN {} {}\r\n",
                quote(&account.username),
                quote(&account.password)
            )
            .as_bytes(),
        )
        .await?;
    loop {
        let line = lines.next_line().await?.context("no LOGIN answer")?;
        if line.starts_with("L OK") {
            break;
        }
        ensure!(!line.starts_with("L "), "LOGIN refused: {line}");
    }
    // MULTIAPPEND (RFC 3502): many messages per command, so Dovecot adds them in one go.
    const PER_COMMAND: usize = 500;
    let commands = mails.len().div_ceil(PER_COMMAND);
    let reader = tokio::spawn(async move {
        let mut done = 0;
        while done < commands {
            let line = lines.next_line().await?.context("connection closed")?;
            if line.starts_with('A') {
                ensure!(line.contains(" OK "), "APPEND refused: {line}");
                done += 1;
            }
        }
        Ok::<_, anyhow::Error>(())
    });
    let mut buffer = Vec::with_capacity(1 << 20);
    for (i, chunk) in mails.chunks(PER_COMMAND).enumerate() {
        buffer.extend_from_slice(format!("A{i} APPEND INBOX").as_bytes());
        for mail in chunk {
            buffer.extend_from_slice(format!(" {{{}+}}\r\n", mail.raw.len()).as_bytes());
            buffer.extend_from_slice(&mail.raw);
            if buffer.len() > (1 << 20) {
                write.write_all(&buffer).await?;
                buffer.clear();
            }
        }
        buffer.extend_from_slice(b"\r\n");
    }
    write.write_all(&buffer).await?;
    reader.await??;
    write.write_all(b"Z LOGOUT\r\n").await?;
    Ok(())
}

/// How many messages `folder` holds (STATUS), 0 when it does not exist yet.
async fn messages_in(session: &mut harness::ImapSession, folder: &str) -> anyhow::Result<u64> {
    match session.status(folder, "(MESSAGES)").await {
        Ok(mailbox) => Ok(u64::from(mailbox.exists)),
        Err(async_imap::error::Error::No(_)) => Ok(0),
        Err(err) => Err(err.into()),
    }
}

async fn scrape(daemon: &Daemon) -> anyhow::Result<String> {
    let (status, body) = daemon.http_get("/metrics").await?;
    ensure!(status == 200, "/metrics answered {status}");
    Ok(body)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn cli(daemon: &Daemon, args: &[&str]) -> anyhow::Result<()> {
    let output = daemon.cli(args);
    ensure!(
        output.status.success(),
        "casemail {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A field of /proc/PID/status in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

fn percentiles(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let index = ((values.len() as f64 * p).ceil() as usize).saturating_sub(1);
        values
            .get(index.min(values.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
            * 1000.0
    };
    format!(
        "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

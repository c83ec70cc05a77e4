//! The control socket and the health and metrics endpoints of the real daemon: the CLI prints
//! the same through the socket as on the store, agent and rota changes reach routing without a
//! restart, a second daemon cannot take the socket, `/metrics` agrees with the store and
//! `/healthz` follows Dovecot going away and coming back.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{CASEMAIL, Daemon};
use crate::harness::{self, Bench};
use crate::ingest::{mail, wait_drained};
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota, inbox};

const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until the daemon answers on its socket and has recorded its HTTP address.
pub(crate) async fn wait_until_serving(daemon: &mut Daemon) {
    let socket = daemon.socket();
    let state_dir = daemon.state_dir.clone();
    let ready = harness::wait_until(PATIENCE, || {
        let (socket, state_dir) = (socket.clone(), state_dir.clone());
        async move {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
                && state_dir.join("http.addr").exists()
        }
    })
    .await;
    daemon.assert_running();
    if let Err(err) = ready {
        panic!("{err:#}: the daemon never served\n{}", daemon.log_tail());
    }
}

/// Polls `/healthz` until it answers `status`, and returns the body.
async fn wait_for_health(daemon: &mut Daemon, status: u16, timeout: Duration) -> String {
    let last = std::sync::Mutex::new(None);
    let shared: &Daemon = daemon;
    let reached = harness::wait_until(timeout, || {
        let last = &last;
        async move {
            let answer = shared.http_get("/healthz").await.ok();
            let hit = answer.as_ref().is_some_and(|(code, _)| *code == status);
            *last.lock().expect("not poisoned") = answer;
            hit
        }
    })
    .await;
    let last = last.into_inner().expect("not poisoned");
    daemon.assert_running();
    match (reached, last) {
        (Ok(()), Some((_, body))) => body,
        (result, last) => panic!(
            "/healthz never answered {status} ({result:?}); last {last:?}\n{}",
            daemon.log_tail()
        ),
    }
}

/// Parses Prometheus text exposition format 0.0.4 as a scraper would, failing on any line it
/// would reject: every sample is `name{labels} value` with a value that parses as a float, and
/// every metric family has its HELP and TYPE before its samples. Returns `series → value`.
pub(crate) fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut helped = BTreeSet::new();
    let mut typed = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "blank line in:\n{text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "{line}");
            helped.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("a series and a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?} is not a float"));
        let name = series.split('{').next().expect("a name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels in {line:?}"
            );
        }
        let family = match typed.get(name) {
            Some(_) => name,
            None => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| typed.get(*family).map(String::as_str) == Some("histogram"))
                .unwrap_or_else(|| panic!("{name} has no TYPE before its samples")),
        };
        assert!(helped.contains(family), "{family} has no HELP");
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} appears twice"
        );
    }
    assert!(!samples.is_empty(), "no samples in:\n{text}");
    samples
}

pub(crate) fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series}"))
}

/// What one CLI run produced, to compare byte for byte.
fn outcome(output: &Output) -> (Option<i32>, String, String) {
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_prints_the_same_through_the_socket_and_on_the_store() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let amina = bench.new_account("amina");
    daemon.start();
    wait_until_serving(&mut daemon).await;

    // Changes made through the socket while the daemon holds the store.
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    // Away, so nothing is routed or sent and the store stays still between the two readings.
    cli_ok(&daemon, &["agent", "away", "amina"]);
    for (number, requester) in ["first", "second"].iter().enumerate() {
        let requester = bench.new_account(requester);
        let raw = mail(
            &requester.address,
            &help.address,
            &format!("Request {number}"),
            Some(&format!("same-{number}@phone.example")),
            "",
            "Could someone call me back?",
        );
        bench
            .send_mail(&requester.address, &[&help.address], &raw)
            .await
            .expect("send");
    }
    wait_drained(bench, &mut daemon, &["INBOX"], 2).await;

    let commands: Vec<Vec<&str>> = vec![
        vec!["ticket", "list", "--json"],
        vec!["ticket", "list"],
        vec!["ticket", "list", "--status", "new", "--json"],
        vec!["ticket", "show", "1", "--json"],
        vec!["ticket", "show", "2"],
        vec!["ticket", "show", "99"],
        vec!["quarantine", "list", "--json"],
        vec!["quarantine", "list"],
        vec!["agent", "list", "--json"],
        vec!["agent", "list"],
        vec!["agent", "show", "amina", "--json"],
        vec!["agent", "show", "nobody"],
        vec!["rota", "show", "--at", "2026-11-23T10:00", "--json"],
        vec!["rota", "show", "--at", "2026-11-23T10:00"],
        vec!["rota", "export"],
    ];
    let online: Vec<_> = commands
        .iter()
        .map(|args| outcome(&daemon.cli(args)))
        .collect();
    daemon.assert_running();
    let tickets: Vec<Value> =
        serde_json::from_str(&online.first().expect("ticket list").1).expect("JSON");
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    let missing = online.get(5).expect("ticket show 99");
    assert_eq!(missing.0, Some(1));
    assert_eq!(missing.2, "casemail: no ticket #99\n");

    daemon.terminate().await.expect("stop");
    assert!(!daemon.socket().exists(), "the socket is removed at exit");
    let offline: Vec<_> = commands
        .iter()
        .map(|args| outcome(&daemon.cli(args)))
        .collect();
    for ((args, online), offline) in commands.iter().zip(&online).zip(&offline) {
        assert_eq!(online, offline, "casemail {args:?} differs");
    }
}

#[tokio::test]
async fn an_agent_added_through_the_socket_gets_the_next_ticket_without_a_restart() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    let amina = bench.new_account("amina");
    let requester = bench.new_account("requester");
    daemon.start();
    wait_until_serving(&mut daemon).await;

    let added = cli_ok(
        &daemon,
        &[
            "agent",
            "add",
            "--id",
            "amina",
            "--name",
            "Amina",
            "--email",
            &amina.address,
        ],
    );
    assert_eq!(added, "agent amina added\n");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    let raw = mail(
        &requester.address,
        &help.address,
        "Residence permit",
        Some("reload-1@phone.example"),
        "",
        "My permit runs out next week.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &raw)
        .await
        .expect("send");
    let got = inbox(bench, &mut daemon, &amina, 1).await;
    assert!(
        got[0].contains("[#1] Residence permit"),
        "{}",
        String::from_utf8_lossy(&got[0].raw)
    );
    let ticket: Value =
        serde_json::from_str(&cli_ok(&daemon, &["ticket", "show", "1", "--json"])).expect("JSON");
    assert_eq!(ticket["owner"], "amina");
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn a_second_daemon_fails_fast_and_leaves_the_first_ones_socket_alone() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    daemon.start();
    wait_until_serving(&mut daemon).await;
    let socket = daemon.socket();
    let before = std::fs::symlink_metadata(&socket).expect("socket");
    assert_eq!(before.permissions().mode() & 0o777, 0o600, "owner only");

    let started = Instant::now();
    let second = Command::new(CASEMAIL)
        .arg("--config")
        .arg(&daemon.config_path)
        .arg("run")
        .stdin(Stdio::null())
        .output()
        .expect("run a second casemail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the second daemon took {:?} to give up",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another casemail is running"), "{stderr}");

    let after = std::fs::symlink_metadata(&socket).expect("the socket is still there");
    assert_eq!(after.ino(), before.ino(), "the socket was replaced");
    daemon.assert_running();
    assert_eq!(
        daemon.tickets(),
        Vec::<Value>::new(),
        "the first still answers"
    );
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn metrics_parse_and_agree_with_the_store() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[]);
    let help = daemon.help.clone();
    daemon.start();
    wait_until_serving(&mut daemon).await;

    let (first, second) = (
        bench.new_account("requester"),
        bench.new_account("requester"),
    );
    let opening = mail(
        &first.address,
        &help.address,
        "Benefits letter",
        Some("metrics-1@phone.example"),
        "",
        "I got a letter I do not understand.",
    );
    let follow_up = mail(
        &first.address,
        &help.address,
        "Re: Benefits letter",
        Some("metrics-2@phone.example"),
        "In-Reply-To: <metrics-1@phone.example>\r\n",
        "Here is a photo of it.",
    );
    let other = mail(
        &second.address,
        &help.address,
        "Rent arrears",
        Some("metrics-3@phone.example"),
        "",
        "The landlord wrote again.",
    );
    // The same message twice, as a second copy of a delivery would be.
    for raw in [&opening, &follow_up, &other, &opening] {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
    }
    wait_drained(bench, &mut daemon, &["INBOX"], 4).await;

    let (status, text) = daemon.http_get("/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200, "{text}");
    let samples = parse_metrics(&text);
    assert_eq!(sample(&samples, "casemail_messages_ingested_total"), 4.0);
    assert_eq!(sample(&samples, "casemail_duplicates_total"), 1.0);
    assert_eq!(sample(&samples, "casemail_quarantined_total"), 0.0);
    assert_eq!(
        sample(&samples, "casemail_stage_seconds_count{stage=\"parse\"}"),
        4.0
    );
    assert!(sample(&samples, "casemail_stage_seconds_count{stage=\"commit\"}") >= 1.0);
    assert_eq!(sample(&samples, "casemail_imap_up{folder=\"INBOX\"}"), 1.0);
    assert_eq!(
        sample(&samples, "casemail_imap_lag_seconds{folder=\"INBOX\"}"),
        0.0
    );

    // The store's own view, read through the socket while the daemon runs.
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 2);
    for status in ["new", "open", "waiting", "closed", "spam"] {
        let in_store = tickets.iter().filter(|t| t["status"] == status).count();
        assert_eq!(
            sample(
                &samples,
                &format!("casemail_tickets{{status=\"{status}\"}}")
            ),
            in_store as f64,
            "tickets with status {status}"
        );
    }
    let messages: u64 = tickets
        .iter()
        .map(|t| t["message_count"].as_u64().expect("count"))
        .sum();
    assert_eq!(messages, 3);
    assert_eq!(sample(&samples, "casemail_messages_stored"), 3.0);
    assert_eq!(sample(&samples, "casemail_quarantine_messages"), 0.0);
    assert_eq!(sample(&samples, "casemail_outbox_messages"), 0.0);
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn healthz_turns_unhealthy_while_dovecot_is_down_and_recovers() {
    let bench: Bench = harness::private().await;
    let mut daemon = Daemon::new(&bench, &[]);
    daemon.start();
    wait_until_serving(&mut daemon).await;
    let body = wait_for_health(&mut daemon, 200, PATIENCE).await;
    assert_eq!(body, "ok\n");

    bench.stop_dovecot().await.expect("stop Dovecot");
    let body = wait_for_health(&mut daemon, 503, PATIENCE).await;
    // Whichever watched folder notices first is named.
    assert!(
        body.contains("imap: folder INBOX not reachable")
            || body.contains("imap: folder Junk not reachable"),
        "{body}"
    );
    let (_, metrics) = daemon.http_get("/metrics").await.expect("GET /metrics");
    assert_eq!(
        sample(
            &parse_metrics(&metrics),
            "casemail_imap_up{folder=\"INBOX\"}"
        ),
        0.0
    );

    bench.start_dovecot().await.expect("start Dovecot");
    // The fetchers retry with capped backoff, so this takes up to about a minute.
    let body = wait_for_health(&mut daemon, 200, Duration::from_secs(120)).await;
    assert_eq!(body, "ok\n");
    assert!(daemon.is_running());
    daemon.terminate().await.expect("stop");
}

/// Lines of the daemon's log that contain `needle`.
fn log_lines(daemon: &Daemon, needle: &str) -> Vec<String> {
    std::fs::read_to_string(&daemon.log_path)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn log_lines_say_what_changed_who_owns_a_ticket_and_who_mail_went_to() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    let requester = bench.new_account("requester");
    daemon.start();
    wait_until_serving(&mut daemon).await;
    const RELOADED: &str = "Agents or rota changed; team reloaded.";

    // A failed command and a dry run change nothing: no reload line.
    assert!(!daemon.cli(&["agent", "remove", "nobody"]).status.success());
    cli_ok(
        &daemon,
        &["erase", "--requester", "nobody@phone.example", "--dry-run"],
    );
    cli_ok(&daemon, &["ticket", "list"]);
    // A real change is logged once the process stage has reloaded.
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    // The process stage may reload once for both changes or once for each: wait for the
    // reload that follows the last of them before counting.
    let log_path = daemon.log_path.clone();
    let reloaded = harness::wait_until(PATIENCE, || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move {
            log.rfind("command=\"rota import\"")
                .and_then(|at| log.get(at..))
                .is_some_and(|after| after.contains(RELOADED))
        }
    })
    .await;
    assert!(reloaded.is_ok(), "{}", daemon.log_tail());
    let before = log_lines(&daemon, RELOADED).len();
    assert!(before <= 2, "{}", daemon.log_tail());

    let help = daemon.help.clone();
    let request = mail(
        &requester.address,
        &help.address,
        "Visa",
        Some(&format!("visa-{}@phone.example", rand::random::<u32>())),
        "",
        "My visa runs out next week.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    crate::routing::mail_containing(bench, &mut daemon, &amina, "Visa").await;
    let sent = harness::wait_until(PATIENCE, || async {
        !log_lines(&daemon, "Sent.").is_empty()
    })
    .await;
    assert!(sent.is_ok(), "{}", daemon.log_tail());

    let new_ticket = log_lines(&daemon, "New ticket.");
    assert_eq!(new_ticket.len(), 1, "{new_ticket:?}");
    assert!(new_ticket[0].contains("agent=amina"), "{new_ticket:?}");
    for line in log_lines(&daemon, "Sent.") {
        assert!(line.contains("to=\"team\""), "{line}");
        assert!(line.contains("kind=\"notification\""), "{line}");
        assert!(!line.contains(&amina.address), "{line}");
    }
    // Filing and sending change no agent: no further reload line.
    assert_eq!(
        log_lines(&daemon, RELOADED).len(),
        before,
        "{}",
        daemon.log_tail()
    );
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn quarantine_retry_through_the_daemon_files_the_message_and_notifies() {
    use casemail::ids::{Uid, UidValidity};
    use casemail::model::{QuarantineEntry, Source};
    use casemail::store::Store;
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    let help = daemon.help.clone();
    let raw = mail(
        "fatima@phone.example",
        &help.address,
        "Rent arrears",
        Some(&format!("rent-{}@phone.example", rand::random::<u32>())),
        "",
        "The landlord wrote again.",
    );
    {
        let store = Store::open(&daemon.state_dir).expect("open the store");
        let entry = QuarantineEntry {
            source: Source {
                mailbox: "INBOX".to_owned(),
                uidvalidity: UidValidity(1),
                uid: Uid(4242),
            },
            at: jiff::Timestamp::now(),
            attempts: 3,
            reason: "parsing took longer than 10s".to_owned(),
            size: raw.len() as u64,
        };
        store
            .write(|tx| tx.put_quarantine(&entry, &raw))
            .expect("quarantine");
        store.flush().expect("flush");
    }
    daemon.start();
    wait_until_serving(&mut daemon).await;

    let shown = cli_ok(&daemon, &["quarantine", "show", "INBOX/1/4242"]);
    assert!(shown.contains("Subject: Rent arrears"), "{shown}");
    let filed = cli_ok(&daemon, &["quarantine", "retry", "INBOX/1/4242"]);
    assert_eq!(filed, "INBOX/1/4242 filed: new ticket #1\n");
    // Filed by the process stage, routed, and the relay woken to send the notification.
    crate::routing::mail_containing(bench, &mut daemon, &amina, "Rent arrears").await;
    assert_eq!(
        cli_ok(&daemon, &["quarantine", "list"]).trim(),
        "quarantine is empty"
    );
    let again = daemon.cli(&["quarantine", "retry", "INBOX/1/4242"]);
    assert!(!again.status.success());
    daemon.terminate().await.expect("stop");
}

//! The data lifecycle on the bench: a backup taken while the daemon runs restores into a new
//! state directory that a daemon then carries on from; retention purges a closed ticket with its
//! copy in the processed folder; erasure removes every trace of one requester and nothing of
//! anyone else.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench};
use crate::ingest::{mail, wait_drained};
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota, inbox};

const PATIENCE: Duration = Duration::from_secs(60);

fn stdout_of(daemon: &Daemon, args: &[&str]) -> String {
    cli_ok(daemon, args)
}

/// `casemail backup` to a file (replaced if it exists); returns the file and its bytes.
fn backup(daemon: &Daemon, name: &str) -> (PathBuf, Vec<u8>) {
    let file = daemon.config_path.with_file_name(name);
    let said = cli_ok(daemon, &["backup", &file.to_string_lossy()]);
    let running = std::os::unix::net::UnixStream::connect(daemon.socket()).is_ok();
    let how = if running {
        "from the running daemon"
    } else {
        "from the store"
    };
    assert!(said.contains(how), "{said}");
    let bytes = std::fs::read(&file).expect("read the backup");
    (file, bytes)
}

pub(crate) fn contains_ignoring_case(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Waits until the help mailbox's `folder` holds a message containing each of `present` and
/// none containing any of `absent`.
pub(crate) async fn wait_for_folder(
    bench: &Bench,
    daemon: &mut Daemon,
    folder: &str,
    present: &[&str],
    absent: &[&str],
) {
    let help = daemon.help.clone();
    let result = harness::wait_until(PATIENCE, || {
        let help = help.clone();
        async move {
            let Ok(list) = bench.list(&help, folder).await else {
                return false;
            };
            present.iter().all(|p| list.iter().any(|m| m.contains(p)))
                && absent.iter().all(|a| !list.iter().any(|m| m.contains(a)))
        }
    })
    .await;
    daemon.assert_running();
    if let Err(err) = result {
        let list = bench.list(&daemon.help, folder).await.unwrap_or_default();
        panic!(
            "{err:#}: {folder} holds {} message(s)\n{}",
            list.len(),
            daemon.log_tail()
        );
    }
}

fn ticket_of<'a>(tickets: &'a [Value], requester: &Account) -> &'a Value {
    tickets
        .iter()
        .find(|t| t["requester"] == requester.address.as_str())
        .unwrap_or_else(|| panic!("no ticket of {} in {tickets:#?}", requester.address))
}

#[tokio::test]
async fn a_backup_taken_while_running_restores_identically_and_a_daemon_carries_on_from_it() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    let (asha, bilal) = (bench.new_account("asha"), bench.new_account("bilal"));
    let help = daemon.help.clone();
    daemon.start();
    let first = mail(
        &asha.address,
        &help.address,
        "Visa appointment",
        Some("backup-1@phone.example"),
        "",
        "When is my visa appointment?",
    );
    bench
        .append(&help, "INBOX", &first, &[])
        .await
        .expect("append");
    let second = mail(
        &bilal.address,
        &help.address,
        "Housing",
        Some("backup-2@phone.example"),
        "",
        "The landlord changed the locks.",
    );
    bench
        .append(&help, "INBOX", &second, &[])
        .await
        .expect("append");
    wait_drained(bench, &mut daemon, &["INBOX"], 2).await;
    inbox(bench, &mut daemon, &amina, 2).await;

    let (file, bytes) = backup(&daemon, "running.backup");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the backup holds personal data");
    assert!(bytes.starts_with(b"casemail-backup\n"));
    let list = stdout_of(&daemon, &["ticket", "list", "--json"]);
    let tickets: Vec<Value> = serde_json::from_str(&list).expect("JSON");
    assert_eq!(tickets.len(), 2);
    let shows: Vec<String> = (1..=2)
        .map(|n| stdout_of(&daemon, &["ticket", "show", &n.to_string(), "--json"]))
        .collect();
    let agents = stdout_of(&daemon, &["agent", "list", "--json"]);
    let secret = std::fs::read(daemon.state_dir.join("reply-secret")).expect("secret");
    daemon.terminate().await.expect("stop");

    // A damaged or truncated copy is refused with the reason, and nothing is restored.
    let mut restored = Daemon::for_account(
        bench,
        help.clone(),
        &[(
            "ingest",
            "first_run",
            toml::Value::String("notify".to_owned()),
        )],
    );
    let truncated = file.with_file_name("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).expect("write");
    let output = restored.cli(&["restore", &truncated.to_string_lossy()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("truncated"), "{stderr}");
    let damaged = file.with_file_name("damaged.backup");
    let mut flipped = bytes.clone();
    let middle = bytes.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&damaged, &flipped).expect("write");
    let output = restored.cli(&["restore", &damaged.to_string_lossy()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("checksum") || stderr.contains("damaged"),
        "{stderr}"
    );
    assert!(!restored.state_dir.join("store").exists());

    let out = cli_ok(&restored, &["restore", &file.to_string_lossy()]);
    assert!(out.contains("2 ticket(s)"), "{out}");
    assert_eq!(stdout_of(&restored, &["ticket", "list", "--json"]), list);
    for (n, show) in (1..=2).zip(&shows) {
        assert_eq!(
            &stdout_of(&restored, &["ticket", "show", &n.to_string(), "--json"]),
            show
        );
    }
    assert_eq!(stdout_of(&restored, &["agent", "list", "--json"]), agents);
    assert_eq!(
        std::fs::read(restored.state_dir.join("reply-secret")).expect("secret"),
        secret,
        "reply tokens in caseworkers' mailboxes must keep working"
    );
    let again = restored.cli(&["restore", &file.to_string_lossy()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // The restored state is a working helpdesk: mail threads into the restored tickets and new
    // tickets continue the numbering.
    restored.start();
    let follow_up = mail(
        &asha.address,
        &help.address,
        "Re: Visa appointment",
        Some("backup-3@phone.example"),
        "In-Reply-To: <backup-1@phone.example>\r\n",
        "I have found the letter.",
    );
    let newcomer = bench.new_account("chen");
    let third = mail(
        &newcomer.address,
        &help.address,
        "School place",
        Some("backup-4@phone.example"),
        "",
        "My daughter needs a school place.",
    );
    bench
        .append(&help, "INBOX", &follow_up, &[])
        .await
        .expect("append");
    bench
        .append(&help, "INBOX", &third, &[])
        .await
        .expect("append");
    wait_drained(bench, &mut restored, &["INBOX"], 4).await;
    let tickets = restored.tickets();
    assert_eq!(tickets.len(), 3, "{tickets:#?}");
    assert_eq!(ticket_of(&tickets, &asha)["message_count"], 2);
    assert_eq!(ticket_of(&tickets, &newcomer)["number"], 3);
    restored.terminate().await.expect("stop");
}

#[tokio::test]
async fn retention_purges_a_closed_ticket_with_its_processed_copy_and_leaves_an_open_one() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[(
            "retention",
            "closed_after",
            toml::Value::String("2s".to_owned()),
        )],
    );
    let (dora, emil) = (bench.new_account("dora"), bench.new_account("emil"));
    let help = daemon.help.clone();
    daemon.start();
    for (who, id, body) in [
        (
            &dora,
            "retention-dora@phone.example",
            "Dora's finished case.",
        ),
        (&emil, "retention-emil@phone.example", "Emil's open case."),
    ] {
        let raw = mail(&who.address, &help.address, "Benefits", Some(id), "", body);
        bench
            .append(&help, "INBOX", &raw, &[])
            .await
            .expect("append");
    }
    wait_drained(bench, &mut daemon, &["INBOX"], 2).await;
    let tickets = daemon.tickets();
    let closed = ticket_of(&tickets, &dora)["number"]
        .as_u64()
        .expect("number");
    let open = ticket_of(&tickets, &emil)["number"]
        .as_u64()
        .expect("number");
    cli_ok(&daemon, &["ticket", "close", &closed.to_string()]);

    wait_for_folder(
        bench,
        &mut daemon,
        "Processed",
        &["retention-emil@phone.example"],
        &["retention-dora@phone.example"],
    )
    .await;
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0]["number"], open);
    let shown = daemon.cli(&["ticket", "show", &closed.to_string()]);
    assert!(!shown.status.success());
    let log = std::fs::read_to_string(&daemon.log_path).expect("log");
    let purge_lines: Vec<&str> = log.lines().filter(|l| l.contains("purged")).collect();
    assert!(
        purge_lines
            .iter()
            .any(|l| l.contains(&format!("ticket={closed}"))),
        "{log}"
    );
    for line in purge_lines {
        assert!(
            !line.contains(&dora.address) && !line.contains("Benefits"),
            "{line}"
        );
    }
    // Nothing of the purged ticket is left in the store.
    daemon.terminate().await.expect("stop");
    let (_, bytes) = backup(&daemon, "after-retention.backup");
    assert!(!contains_ignoring_case(&bytes, &dora.address));
    assert!(!contains_ignoring_case(&bytes, "Dora's finished case"));
    assert!(contains_ignoring_case(&bytes, &emil.address));
}

#[tokio::test]
async fn erasure_removes_every_trace_of_one_requester_and_nothing_of_anyone_else() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    let (farah, gustav, hana) = (
        bench.new_account("farah"),
        bench.new_account("gustav"),
        bench.new_account("hana"),
    );
    let help = daemon.help.clone();
    daemon.start();
    // Gustav's ticket; Farah's own ticket; Farah writing into Gustav's thread; a message of
    // Farah's without a Message-ID (found in the processed folder by its content); Hana, who is
    // erased while the daemon is stopped.
    let messages = [
        mail(
            &gustav.address,
            &help.address,
            "Family reunion",
            Some("erase-gustav@phone.example"),
            "",
            "Gustav-text-kept",
        ),
        mail(
            &farah.address,
            &help.address,
            "Asylum interview",
            Some("erase-farah-1@phone.example"),
            "",
            "Farah-text-one",
        ),
        mail(
            &farah.address,
            &help.address,
            "Re: Family reunion",
            Some("erase-farah-2@phone.example"),
            "In-Reply-To: <erase-gustav@phone.example>\r\n",
            "Farah-text-two",
        ),
        mail(
            &farah.address,
            &help.address,
            "Asylum interview",
            None,
            "",
            "Farah-text-three",
        ),
        mail(
            &hana.address,
            &help.address,
            "Work permit",
            Some("erase-hana@phone.example"),
            "",
            "Hana-text",
        ),
    ];
    for raw in &messages {
        bench
            .append(&help, "INBOX", raw, &[])
            .await
            .expect("append");
        // One at a time, so Farah's reply finds Gustav's ticket.
        let count = messages.iter().position(|m| m == raw).expect("listed") + 1;
        wait_drained(bench, &mut daemon, &["INBOX"], count).await;
    }
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 3, "{tickets:#?}");
    let gustavs = ticket_of(&tickets, &gustav)["number"]
        .as_u64()
        .expect("number");
    assert_eq!(
        daemon.ticket(gustavs)["messages"].as_array().map(Vec::len),
        Some(2)
    );
    let farahs = ticket_of(&tickets, &farah)["number"]
        .as_u64()
        .expect("number");
    inbox(bench, &mut daemon, &amina, 5).await;

    // A dry run lists what would go and changes nothing.
    let before: Vec<String> = [gustavs, farahs]
        .iter()
        .map(|n| stdout_of(&daemon, &["ticket", "show", &n.to_string(), "--json"]))
        .collect();
    let dry = cli_ok(
        &daemon,
        &[
            "erase",
            "--requester",
            &farah.address,
            "--dry-run",
            "--json",
        ],
    );
    let dry: Value = serde_json::from_str(&dry).expect("JSON");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["tickets"], serde_json::json!([farahs]));
    assert_eq!(
        dry["messages_in_other_tickets"],
        serde_json::json!([{"ticket": gustavs, "messages": 1}])
    );
    assert_eq!(dry["removed"], Value::Null);
    let after: Vec<String> = [gustavs, farahs]
        .iter()
        .map(|n| stdout_of(&daemon, &["ticket", "show", &n.to_string(), "--json"]))
        .collect();
    assert_eq!(before, after);
    assert_eq!(bench.list(&help, "Processed").await.expect("list").len(), 5);

    let done = cli_ok(&daemon, &["erase", "--requester", &farah.address]);
    assert!(done.contains("removed 1 ticket(s)"), "{done}");
    assert!(done.contains("1 message(s) in other tickets"), "{done}");
    wait_for_folder(
        bench,
        &mut daemon,
        "Processed",
        &["Gustav-text-kept", "Hana-text"],
        &["Farah-text-one", "Farah-text-two", "Farah-text-three"],
    )
    .await;
    assert_eq!(bench.list(&help, "Processed").await.expect("list").len(), 2);

    // A full scan of the store (a backup holds every key and value) finds nothing of Farah once
    // the deletion queue is worked off, and everything of Gustav.
    let traces = |bytes: &[u8]| {
        ["Farah-text-one", "Farah-text-two", "Farah-text-three"]
            .iter()
            .filter(|t| contains_ignoring_case(bytes, t))
            .count()
            + usize::from(contains_ignoring_case(bytes, &farah.address))
    };
    let shared: &Daemon = &daemon;
    let clean = harness::wait_until(PATIENCE, || {
        let (_, bytes) = backup(shared, "erased.backup");
        let found = traces(&bytes);
        async move { found == 0 }
    })
    .await;
    assert!(
        clean.is_ok(),
        "traces of the erased requester remain in the store"
    );
    let (_, bytes) = backup(&daemon, "erased.backup");
    assert!(contains_ignoring_case(&bytes, &gustav.address));
    assert!(contains_ignoring_case(&bytes, "Gustav-text-kept"));
    let tickets = daemon.tickets();
    assert_eq!(tickets.len(), 2, "{tickets:#?}");
    let gustav_ticket = daemon.ticket(gustavs);
    let kept = gustav_ticket["messages"].as_array().expect("messages");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["text"], "Gustav-text-kept");
    assert!(
        daemon
            .cli(&["ticket", "show", &farahs.to_string()])
            .status
            .code()
            == Some(1)
    );

    // Offline, the store is erased at once and the IMAP copies when the daemon next starts.
    daemon.terminate().await.expect("stop");
    let offline = cli_ok(&daemon, &["erase", "--requester", &hana.address]);
    assert!(offline.contains("removed 1 ticket(s)"), "{offline}");
    assert!(offline.contains("when it next starts"), "{offline}");
    assert!(
        bench
            .list(&help, "Processed")
            .await
            .expect("list")
            .iter()
            .any(|m| m.contains("Hana-text"))
    );
    daemon.start();
    wait_for_folder(
        bench,
        &mut daemon,
        "Processed",
        &["Gustav-text-kept"],
        &["Hana-text"],
    )
    .await;
    assert_eq!(daemon.tickets().len(), 1);
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn a_deleted_store_is_refused_at_start_and_verify_reports_it() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let help = daemon.help.clone();
    daemon.start();
    let request = mail(
        "dana@phone.example",
        &help.address,
        "Housing",
        Some("kept@phone.example"),
        "",
        "We were evicted.",
    );
    bench
        .append(&help, "INBOX", &request, &[])
        .await
        .expect("append");
    wait_drained(bench, &mut daemon, &["INBOX"], 1).await;
    daemon.terminate().await.expect("clean stop");

    // A healthy store: every record of a real daemon's store reads back.
    let healthy = daemon.cli(&["verify", "--json"]);
    let report: Value = serde_json::from_slice(&healthy.stdout).expect("verify --json");
    assert!(healthy.status.success(), "{report:#}");
    assert_eq!(report["unreadable"], serde_json::json!([]), "{report:#}");
    assert!(report["records"].as_u64().unwrap_or(0) > 5, "{report:#}");

    std::fs::remove_dir_all(daemon.state_dir.join("store")).expect("delete the store");
    let mut run = std::process::Command::new(crate::daemon::CASEMAIL)
        .arg("--config")
        .arg(&daemon.config_path)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn casemail run");
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            run.kill().ok();
            panic!("casemail started on a deleted store instead of refusing");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("missing or damaged"), "{stderr}");
    assert!(
        !daemon.state_dir.join("store").exists(),
        "no empty store was started"
    );

    let damaged = daemon.cli(&["verify", "--json"]);
    assert_eq!(damaged.status.code(), Some(65));
    let report: Value = serde_json::from_slice(&damaged.stdout).expect("verify --json");
    let problems = report["problems"].as_array().expect("problems");
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap_or("").contains("is missing")),
        "{report:#}"
    );
}

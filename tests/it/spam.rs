//! Spam on the bench: a message judged spam by a rule is held (status spam, nobody notified),
//! `spam release` sends it to the caseworker on duty, `spam train` teaches the classifier with
//! the daemon stopped and through its socket, and the real spamd is consulted — or, when it is
//! down, ingest goes on without it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench};
use crate::ingest::mail;
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota, inbox, mail_containing};

const PATIENCE: Duration = Duration::from_secs(60);

fn rules(text: &str) -> toml::Value {
    let table: toml::Table = format!("rules = {text}").parse().expect("valid rules");
    table.get("rules").cloned().expect("rules")
}

/// Waits until the store holds `count` tickets and returns them.
async fn tickets(daemon: &mut Daemon, count: usize) -> Vec<Value> {
    let bench = harness::shared().await;
    let mut found = Vec::new();
    let result = harness::wait_until(PATIENCE, || {
        found = daemon.tickets();
        let done = found.len() >= count;
        async move { done }
    })
    .await;
    if let Err(err) = result {
        let log = std::fs::read_to_string(&daemon.log_path).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("Control command"))
            .collect();
        panic!(
            "{err:#}: {} of {count} tickets\n{}\nbench:\n{}",
            found.len(),
            lines[lines.len().saturating_sub(80)..].join("\n"),
            bench.log_tail()
        );
    }
    found
}

fn ticket_with_subject(tickets: &[Value], subject: &str) -> Value {
    tickets
        .iter()
        .find(|t| t["subject"] == subject)
        .cloned()
        .unwrap_or_else(|| panic!("no ticket {subject:?} in {tickets:?}"))
}

fn signals(verdict: &Value) -> Vec<String> {
    verdict["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["signal"].as_str().expect("signal").to_owned())
        .collect()
}

async fn send(bench: &Bench, from: &Account, help: &Account, raw: &[u8]) {
    bench
        .send_mail(&from.address, &[&help.address], raw)
        .await
        .expect("send");
}

/// A live daemon with one spam rule (a TOML array of rule tables), and Amina always on duty.
fn with_rule_and_amina_on_duty(bench: &'static Bench, rule: &str) -> (Daemon, Account) {
    let daemon = Daemon::live(bench, &[("spam", "rules", rules(rule))]);
    let amina = bench.new_account("amina");
    add_agent(&daemon, "amina", &amina, "agent");
    import_rota(
        &daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
    (daemon, amina)
}

#[tokio::test]
async fn spam_by_rule_is_held_unnotified_and_a_release_reaches_the_agent_on_duty() {
    let bench = harness::shared().await;
    let (mut daemon, amina) = with_rule_and_amina_on_duty(
        bench,
        r#"[{ name = "pharma", target = "subject", pattern = '(?i)\bviagra\b', weight = 6.0 }]"#,
    );
    let help = daemon.help.clone();
    let spammer = bench.new_account("spammer");
    let requester = bench.new_account("requester");
    daemon.start();
    send(
        bench,
        &spammer,
        &help,
        &mail(
            &spammer.address,
            &help.address,
            "Cheap viagra today",
            Some("spam-rule-1@spam.example"),
            "",
            "Discreet shipping, order now.",
        ),
    )
    .await;
    send(
        bench,
        &requester,
        &help,
        &mail(
            &requester.address,
            &help.address,
            "Eviction letter",
            Some("spam-rule-2@phone.example"),
            "",
            "My landlord wants me out by Friday.",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 2).await;
    let held = ticket_with_subject(&all, "Cheap viagra today");
    let normal = ticket_with_subject(&all, "Eviction letter");
    assert_eq!(held["status"], "spam", "{held}");
    assert_eq!(held["owner"], Value::Null);
    assert_ne!(normal["status"], "spam", "{normal}");
    let held_number = held["number"].as_u64().expect("number");

    // spam list shows it with the rule that made it spam.
    let listed: Vec<Value> =
        serde_json::from_str(&cli_ok(&daemon, &["spam", "list", "--json"])).expect("JSON");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["number"], held_number);
    assert!(listed[0]["score"].as_f64().expect("score") >= 6.0);
    assert!(
        signals(&listed[0]).contains(&"rule:pharma".to_owned()),
        "{listed:?}"
    );
    let text = cli_ok(&daemon, &["spam", "list"]);
    assert!(text.contains("rule:pharma"), "{text}");

    // The ordinary request reaches Amina; the spam does not.
    mail_containing(bench, &mut daemon, &amina, "Eviction letter").await;

    // Released by the CLI (through the daemon's socket), it goes to the caseworker on duty.
    let released = cli_ok(&daemon, &["spam", "release", &held_number.to_string()]);
    assert!(released.contains("released"), "{released}");
    let tag = format!("[#{held_number}] Cheap viagra today");
    mail_containing(bench, &mut daemon, &amina, &tag).await;
    // The relay sends in outbox order, so a notification queued when the spam arrived would
    // have come before the one queued by the release: there is exactly one.
    let got = inbox(bench, &mut daemon, &amina, 2).await;
    assert_eq!(
        got.iter()
            .filter(|m| m.contains("Cheap viagra today"))
            .count(),
        1,
        "amina got the spam before its release"
    );
    assert_eq!(got.len(), 2);
    let after = daemon.ticket(held_number);
    assert_ne!(after["status"], "spam", "{after}");
    assert_eq!(after["owner"], "amina");
    assert!(
        after["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["kind"] == "released")
    );
    let listed: Vec<Value> =
        serde_json::from_str(&cli_ok(&daemon, &["spam", "list", "--json"])).expect("JSON");
    assert!(listed.is_empty(), "{listed:?}");
    // Releasing something that is not spam says so.
    let again = daemon.cli(&["spam", "release", &held_number.to_string()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not spam"));
    daemon.terminate().await.expect("stop");
}

/// A release while the daemon is stopped is routed when it next starts.
#[tokio::test]
async fn a_release_while_the_daemon_is_stopped_is_routed_at_the_next_start() {
    let bench = harness::shared().await;
    let (mut daemon, amina) = with_rule_and_amina_on_duty(
        bench,
        r#"[{ name = "lottery", target = "body", pattern = '(?i)\bjackpot\b', weight = 6.0 }]"#,
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    // A real request that trips a rule: a scam letter forwarded to ask whether it is genuine.
    send(
        bench,
        &requester,
        &help,
        &mail(
            &requester.address,
            &help.address,
            "Is this letter real?",
            Some("spam-offline-1@phone.example"),
            "",
            "They say I won the jackpot and must pay a fee. Is it real?",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 1).await;
    let held = ticket_with_subject(&all, "Is this letter real?");
    assert_eq!(held["status"], "spam", "{held}");
    let number = held["number"].as_u64().expect("number").to_string();
    daemon.terminate().await.expect("stop");

    // Offline: the CLI works on the store directly.
    let released = cli_ok(&daemon, &["spam", "release", &number]);
    assert!(released.contains("released"), "{released}");
    let listed: Vec<Value> =
        serde_json::from_str(&cli_ok(&daemon, &["spam", "list", "--json"])).expect("JSON");
    assert!(listed.is_empty(), "{listed:?}");

    daemon.start();
    let tag = format!("[#{number}] Is this letter real?");
    mail_containing(bench, &mut daemon, &amina, &tag).await;
    daemon.terminate().await.expect("stop");
    assert_eq!(
        daemon.ticket(number.parse().expect("number"))["owner"],
        "amina"
    );
}

/// Writes `messages` as numbered .eml files into a new folder `name` next to the config.
fn eml_folder(daemon: &Daemon, name: &str, messages: &[Vec<u8>]) -> String {
    let dir = daemon.config_path.with_file_name(name);
    std::fs::create_dir_all(&dir).expect("create folder");
    for (index, raw) in messages.iter().enumerate() {
        std::fs::write(dir.join(format!("{index:04}.eml")), raw).expect("write eml");
    }
    dir.to_string_lossy().into_owned()
}

fn corpus(seed: u64, count: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use casemail::casework::spam::bayes::Label;
    let mut spam = Vec::new();
    let mut ham = Vec::new();
    for message in casemail::casework::spam::corpus::generate(seed, count) {
        match message.label {
            Label::Spam => spam.push(message.raw),
            Label::Ham => ham.push(message.raw),
        }
    }
    (spam, ham)
}

#[tokio::test]
async fn spam_train_works_offline_and_through_the_socket_and_the_classifier_then_judges() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (spam, ham) = corpus(11, 120);
    let (spam_a, spam_b) = spam.split_at(spam.len() / 2);
    let (ham_a, ham_b) = ham.split_at(ham.len() / 2);
    let spam_a_dir = eml_folder(&daemon, "spam-a", spam_a);
    let ham_a_dir = eml_folder(&daemon, "ham-a", ham_a);
    let spam_b_dir = eml_folder(&daemon, "spam-b", spam_b);
    let ham_b_dir = eml_folder(&daemon, "ham-b", ham_b);

    // Offline: no daemon runs, the CLI opens the store itself.
    let offline = cli_ok(
        &daemon,
        &["spam", "train", "--spam", &spam_a_dir, "--ham", &ham_a_dir],
    );
    assert!(
        offline.contains(&format!(
            "learned {} spam and {} ham message(s)",
            spam_a.len(),
            ham_a.len()
        )),
        "{offline}"
    );
    // Again: nothing is learned twice.
    let twice = cli_ok(&daemon, &["spam", "train", "--spam", &spam_a_dir]);
    assert!(
        twice.contains(&format!(
            "learned 0 spam and 0 ham message(s) (0 relabelled, {} already known)",
            spam_a.len()
        )),
        "{twice}"
    );

    // Through the socket: the daemon holds the store, so only the daemon can learn.
    daemon.start();
    let help = daemon.help.clone();
    let first = bench.new_account("first");
    send(
        bench,
        &first,
        &help,
        &mail(
            &first.address,
            &help.address,
            "hello",
            Some("train-0@phone.example"),
            "",
            "Hello",
        ),
    )
    .await;
    tickets(&mut daemon, 1).await;
    let online = cli_ok(
        &daemon,
        &[
            "spam",
            "train",
            "--spam",
            &spam_b_dir,
            "--spam",
            &spam_a_dir,
            "--ham",
            &ham_b_dir,
        ],
    );
    assert!(
        online.contains(&format!(
            "learned {} spam and {} ham message(s)",
            spam_b.len(),
            ham_b.len()
        )),
        "{online}"
    );
    assert!(
        online.contains(&format!(
            "the classifier now knows {} spam and {} ham",
            spam.len(),
            ham.len()
        )),
        "{online}"
    );

    // New mail is judged by what was learned: a crypto scheme is held, a request is not.
    let scheme = bench.new_account("scheme");
    send(
        bench,
        &scheme,
        &help,
        &mail(
            &scheme.address,
            &help.address,
            "Unclaimed BTC reward",
            Some("train-1@scheme.example"),
            "",
            "Your crypto wallet has an unclaimed reward of 0.5 BTC. Claim before it expires: https://btc-profit.example/5521",
        ),
    )
    .await;
    let person = bench.new_account("person");
    send(
        bench,
        &person,
        &help,
        &mail(
            &person.address,
            &help.address,
            "Need help",
            Some("train-2@phone.example"),
            "",
            "Hello, my asylum interview is next Monday and I do not have a lawyer. Can someone help me prepare? I am very worried.",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 3).await;
    let held = ticket_with_subject(&all, "Unclaimed BTC reward");
    let request = ticket_with_subject(&all, "Need help");
    assert_eq!(held["status"], "spam", "{held}");
    assert_ne!(request["status"], "spam", "{request}");
    let verdict = &daemon.ticket(held["number"].as_u64().expect("number"))["spam"];
    assert!(
        signals(verdict).contains(&"classifier".to_owned()),
        "{verdict}"
    );
    let verdict = &daemon.ticket(request["number"].as_u64().expect("number"))["spam"];
    assert_eq!(verdict["spam"], false, "{verdict}");
    daemon.terminate().await.expect("stop");
}

/// SpamAssassin's test string (GTUBE), which spamd always scores as spam.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[tokio::test]
async fn the_real_spamd_is_consulted() {
    let bench = harness::shared().await;
    let spamd = harness::shared_spamd().await;
    let mut daemon = Daemon::live(
        bench,
        &[("spam", "spamd", toml::Value::String(spamd.to_string()))],
    );
    let help = daemon.help.clone();
    let sender = bench.new_account("sender");
    let requester = bench.new_account("requester");
    daemon.start();
    send(
        bench,
        &sender,
        &help,
        &mail(
            &sender.address,
            &help.address,
            "Test message",
            Some("spamd-1@spam.example"),
            "",
            &format!("This is the GTUBE, the\n{GTUBE}\n"),
        ),
    )
    .await;
    send(
        bench,
        &requester,
        &help,
        &mail(
            &requester.address,
            &help.address,
            "Letter from the council",
            Some("spamd-2@phone.example"),
            "",
            "Hello, I got a letter about my housing benefit and I do not understand it. Can you help?",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 2).await;
    let held = ticket_with_subject(&all, "Test message");
    let normal = ticket_with_subject(&all, "Letter from the council");
    assert_eq!(held["status"], "spam", "{held}\n{}", daemon.log_tail());
    let verdict = &daemon.ticket(held["number"].as_u64().expect("number"))["spam"];
    let spamd_reason = verdict["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .find(|r| r["signal"] == "spamd")
        .unwrap_or_else(|| panic!("no spamd reason in {verdict}"));
    assert!(
        spamd_reason["detail"]
            .as_str()
            .expect("detail")
            .contains("GTUBE"),
        "{spamd_reason}"
    );
    assert_ne!(normal["status"], "spam", "{normal}");
    let verdict = &daemon.ticket(normal["number"].as_u64().expect("number"))["spam"];
    assert!(signals(verdict).contains(&"spamd".to_owned()), "{verdict}");
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn with_spamd_down_mail_is_still_filed_and_judged_by_the_other_signals() {
    let bench = harness::shared().await;
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let mut daemon = Daemon::live(
        bench,
        &[
            ("spam", "spamd", toml::Value::String(closed.to_string())),
            (
                "spam",
                "rules",
                rules(
                    r#"[{ name = "lottery", target = "body", pattern = '(?i)lottery', weight = 5.0 }]"#,
                ),
            ),
        ],
    );
    let help = daemon.help.clone();
    let sender = bench.new_account("sender");
    daemon.start();
    send(
        bench,
        &sender,
        &help,
        &mail(
            &sender.address,
            &help.address,
            "You won",
            Some("down-1@spam.example"),
            "",
            "You won the international lottery.",
        ),
    )
    .await;
    let requester = bench.new_account("requester");
    send(
        bench,
        &requester,
        &help,
        &mail(
            &requester.address,
            &help.address,
            "My case",
            Some("down-2@spam.example"),
            "",
            "A question about my case.",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 2).await;
    let held = ticket_with_subject(&all, "You won");
    assert_eq!(held["status"], "spam", "{held}");
    let verdict = &daemon.ticket(held["number"].as_u64().expect("number"))["spam"];
    let found = signals(verdict);
    assert!(found.contains(&"spamd_unavailable".to_owned()), "{verdict}");
    assert!(found.contains(&"rule:lottery".to_owned()), "{verdict}");
    let normal = ticket_with_subject(&all, "My case");
    assert_ne!(normal["status"], "spam");
    daemon.terminate().await.expect("stop");
    let log = std::fs::read_to_string(&daemon.log_path).expect("log");
    assert!(log.contains("spamd unavailable"), "{log}");
    // The log names the signals, never the message.
    assert!(!log.contains("international lottery"), "{log}");
}

#[tokio::test]
async fn sighup_reloads_the_spam_rules() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let help = daemon.help.clone();
    let sender = bench.new_account("sender");
    daemon.start();
    send(
        bench,
        &sender,
        &help,
        &mail(
            &sender.address,
            &help.address,
            "Casino bonus 1",
            Some("hup-1@spam.example"),
            "",
            "Play now.",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 1).await;
    assert_ne!(
        ticket_with_subject(&all, "Casino bonus 1")["status"],
        "spam"
    );

    let text = std::fs::read_to_string(&daemon.config_path).expect("config");
    let mut table: toml::Table = text.parse().expect("config TOML");
    let spam = table
        .entry("spam")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(spam) = spam {
        spam.insert(
            "rules".to_owned(),
            rules(r#"[{ name = "casino", target = "subject", pattern = '(?i)casino', weight = 9.0 }]"#),
        );
    }
    std::fs::write(&daemon.config_path, toml::to_string(&table).expect("TOML")).expect("write");
    let pid = daemon.pid().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let log_path = daemon.log_path.clone();
    harness::wait_until(PATIENCE, || {
        let reloaded =
            std::fs::read_to_string(&log_path).is_ok_and(|log| log.contains("Spam rules reloaded"));
        async move { reloaded }
    })
    .await
    .expect("the daemon reloads its spam rules");
    // A new sender is now flagged by the rule.
    let stranger = bench.new_account("stranger");
    send(
        bench,
        &stranger,
        &help,
        &mail(
            &stranger.address,
            &help.address,
            "Casino bonus 2",
            Some("hup-2@spam.example"),
            "",
            "Play.",
        ),
    )
    .await;
    let all = tickets(&mut daemon, 2).await;
    let second = ticket_with_subject(&all, "Casino bonus 2");
    assert_eq!(second["status"], "spam", "{second}");
    let verdict = &daemon.ticket(second["number"].as_u64().expect("number"))["spam"];
    assert!(
        signals(verdict).contains(&"rule:casino".to_owned()),
        "{verdict}"
    );
    // The first sender is a known requester: content alone does not flag their follow-up,
    // which joins their ticket.
    send(
        bench,
        &sender,
        &help,
        &mail(
            &sender.address,
            &help.address,
            "Casino bonus 3",
            Some("hup-3@spam.example"),
            "",
            "Play again.",
        ),
    )
    .await;
    let first = ticket_with_subject(&all, "Casino bonus 1")["number"]
        .as_u64()
        .expect("number");
    let mut shown = Value::Null;
    let joined = harness::wait_until(PATIENCE, || {
        shown = daemon.ticket(first);
        let done = shown["message_count"] == 2;
        async move { done }
    })
    .await;
    assert!(joined.is_ok(), "{shown}\n{}", daemon.log_tail());
    assert_ne!(shown["status"], "spam", "{shown}");
    daemon.terminate().await.expect("stop");
}

#[test]
fn inspect_shows_the_verdict_with_the_configured_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("casemail.toml");
    std::fs::write(
        &config,
        "[helpdesk]\naddress = \"help@charity.example\"\n[imap]\nhost = \"imap.charity.example\"\nusername = \"u\"\npassword = \"p\"\n[smtp]\nhost = \"smtp.charity.example\"\n[spam]\nrules = [{ name = \"pharma\", target = \"subject\", pattern = '(?i)viagra', weight = 6.0 }]\n",
    )
    .expect("write config");
    let message = dir.path().join("m.eml");
    std::fs::write(
        &message,
        "From: a@b.example\nSubject: viagra\nX-Spam-Status: No, score=1.0 required=5.0\n\nhi\n",
    )
    .expect("write message");
    let output = std::process::Command::new(crate::daemon::CASEMAIL)
        .arg("--config")
        .arg(&config)
        .args(["inspect", "--json"])
        .arg(&message)
        .output()
        .expect("run inspect");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let verdict = &reports[0]["spam"];
    assert_eq!(verdict["spam"], true, "{verdict}");
    assert_eq!(verdict["score"], 6.5);
    assert_eq!(signals(verdict), vec!["x_spam_score", "rule:pharma"]);
    // Without a config file there are no rules, and the headers still count.
    let output = std::process::Command::new(crate::daemon::CASEMAIL)
        .arg("--config")
        .arg(Path::new("/nonexistent/casemail.toml"))
        .args(["inspect", "--json"])
        .arg(&message)
        .output()
        .expect("run inspect");
    assert!(output.status.success());
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(reports[0]["spam"]["spam"], false);
    assert_eq!(signals(&reports[0]["spam"]), vec!["x_spam_score"]);
}

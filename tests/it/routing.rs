//! Agents, the rota and routing on the bench: tickets reach the caseworker on duty's real
//! mailbox, wait for a shift when nobody is on duty, are handed over when unanswered, and
//! coordinators get their notices and the digest.

use std::time::Duration;

use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench};
use crate::ingest::mail;

const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn cli_ok(daemon: &Daemon, args: &[&str]) -> String {
    let output = daemon.cli(args);
    assert!(
        output.status.success(),
        "casemail {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn add_agent(daemon: &Daemon, id: &str, account: &Account, role: &str) {
    cli_ok(
        daemon,
        &[
            "agent",
            "add",
            "--id",
            id,
            "--name",
            id,
            "--email",
            &account.address,
            "--role",
            role,
        ],
    );
}

pub(crate) fn import_rota(daemon: &Daemon, text: &str) {
    let path = daemon.config_path.with_file_name("rota.toml");
    std::fs::write(&path, text).expect("write rota");
    cli_ok(daemon, &["rota", "import", &path.to_string_lossy()]);
}

pub(crate) const ALWAYS: &str = "days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"24:00\"\n";

/// Waits until `account`'s INBOX holds `count` messages and returns them.
pub(crate) async fn inbox(
    bench: &Bench,
    daemon: &mut Daemon,
    account: &Account,
    count: usize,
) -> Vec<harness::FetchedMail> {
    match bench.wait_for_mail(account, "INBOX", count, PATIENCE).await {
        Ok(list) => list,
        Err(err) => panic!("{err:#}\ncasemail log:\n{}", daemon.log_tail()),
    }
}

/// Waits until a message containing `needle` is in `account`'s INBOX (coordinators also get
/// the daily digest, so counting messages is not enough).
pub(crate) async fn mail_containing(
    bench: &Bench,
    daemon: &mut Daemon,
    account: &Account,
    needle: &str,
) -> harness::FetchedMail {
    let owner = account.clone();
    let found = harness::wait_until(PATIENCE, || {
        let account = owner.clone();
        async move {
            bench
                .list(&account, "INBOX")
                .await
                .is_ok_and(|list| list.iter().any(|m| m.contains(needle)))
        }
    })
    .await;
    if let Err(err) = found {
        panic!(
            "{err:#}: no message containing {needle:?}\n{}",
            daemon.log_tail()
        );
    }
    bench
        .list(account, "INBOX")
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.contains(needle))
        .expect("found above")
}

#[tokio::test]
async fn a_request_reaches_the_agent_on_duty_and_not_one_who_is_away() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, jonas, carol) = (
        bench.new_account("amina"),
        bench.new_account("jonas"),
        bench.new_account("carol"),
    );
    add_agent(&daemon, "amina", &amina, "agent");
    add_agent(&daemon, "jonas", &jonas, "agent");
    add_agent(&daemon, "carol", &carol, "coordinator");
    import_rota(
        &daemon,
        &format!(
            "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}[[shift]]\nagent = \"jonas\"\n{ALWAYS}"
        ),
    );
    cli_ok(&daemon, &["agent", "away", "jonas"]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let first = mail(
        &requester.address,
        &help.address,
        "Asylum interview",
        Some("route-1@phone.example"),
        "",
        "When is my interview?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &first)
        .await
        .expect("send");
    let got = inbox(bench, &mut daemon, &amina, 1).await;
    let notification = &got[0];
    assert!(
        notification.contains("[#1] Asylum interview"),
        "{}",
        String::from_utf8_lossy(&notification.raw)
    );
    assert!(notification.contains("When is my interview?"));
    assert!(notification.contains(&format!(
        "From: \"Casemail Test Helpdesk\" <{}>",
        help.address
    )));
    assert!(notification.contains("Auto-Submitted: auto-generated"));

    // A follow-up from the requester goes to the same caseworker.
    let follow_up = mail(
        &requester.address,
        &help.address,
        "Re: Asylum interview",
        Some("route-1b@phone.example"),
        "In-Reply-To: <route-1@phone.example>\r\n",
        "I found the letter.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &follow_up)
        .await
        .expect("send");
    let got = inbox(bench, &mut daemon, &amina, 2).await;
    let again = got
        .iter()
        .find(|m| m.contains("I found the letter."))
        .expect("follow-up notification");
    assert!(again.contains("The requester wrote again"));
    assert!(again.contains("[#1] Asylum interview"));

    // Amina steps away, Jonas comes back: the next requester's mail goes to Jonas.
    daemon.terminate().await.expect("stop");
    cli_ok(&daemon, &["agent", "away", "amina"]);
    cli_ok(&daemon, &["agent", "back", "jonas"]);
    daemon.start();
    let other = bench.new_account("requester");
    let second = mail(
        &other.address,
        &help.address,
        "Housing",
        Some("route-2@phone.example"),
        "",
        "We need a room.",
    );
    bench
        .send_mail(&other.address, &[&help.address], &second)
        .await
        .expect("send");
    // Amina's open ticket went back to routing when she stepped away, so Jonas now has it
    // too, and the new request.
    let got = inbox(bench, &mut daemon, &jonas, 2).await;
    assert!(got.iter().any(|m| m.contains("[#1] Asylum interview")));
    assert!(got.iter().any(|m| m.contains("[#2] Housing")));
    daemon.terminate().await.expect("stop");

    assert_eq!(
        bench.list(&amina, "INBOX").await.expect("list").len(),
        2,
        "amina got only her ticket and its follow-up"
    );
    // Nobody's address appears in another agent's mail.
    assert!(got.iter().all(|m| !m.contains(&amina.address)));
    // The CLI prints what the store holds: the rota (a Monday morning, both on duty) ...
    let at: serde_json::Value = serde_json::from_str(&cli_ok(
        &daemon,
        &["rota", "show", "--at", "2026-11-23T10:00", "--json"],
    ))
    .expect("json");
    assert_eq!(at["on_duty"], serde_json::json!(["amina", "jonas"]), "{at}");
    // ... and the agents with their caseloads.
    let agents: Vec<serde_json::Value> =
        serde_json::from_str(&cli_ok(&daemon, &["agent", "list", "--json"])).expect("json");
    let amina_json = agents
        .iter()
        .find(|a| a["id"] == "amina")
        .expect("amina listed");
    assert_eq!(
        amina_json["open_tickets"], 0,
        "her open ticket went back to routing when she stepped away"
    );
    assert_eq!(amina_json["away"], true);
    let jonas_json = agents
        .iter()
        .find(|a| a["id"] == "jonas")
        .expect("jonas listed");
    assert_eq!(jonas_json["open_tickets"], 2);
}

#[tokio::test]
async fn with_nobody_on_duty_a_ticket_waits_for_the_next_shift() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    add_agent(&daemon, "amina", &amina, "agent");
    add_agent(&daemon, "carol", &carol, "coordinator");
    // Amina's shift starts at the next full minute, so the ticket waits for at most a minute.
    let start = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().minutes(1))
        .expect("time");
    let day = format!("{:?}", start.weekday()).to_lowercase()[..3].to_owned();
    let begin = format!("{:02}:{:02}", start.hour(), start.minute());
    import_rota(
        &daemon,
        &format!(
            "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\ndays = [\"{day}\"]\nstart = \"{begin}\"\nend = \"24:00\"\n"
        ),
    );
    let on_duty: serde_json::Value =
        serde_json::from_str(&cli_ok(&daemon, &["rota", "show", "--json"])).expect("json");
    if start.hour() != 0 || start.minute() != 0 {
        assert_eq!(on_duty["on_duty"], serde_json::json!([]), "{on_duty}");
    }
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let raw = mail(
        &requester.address,
        &help.address,
        "Night message",
        Some("wait-1@phone.example"),
        "",
        "Is anyone there?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &raw)
        .await
        .expect("send");
    mail_containing(
        bench,
        &mut daemon,
        &carol,
        "nobody on duty could take this ticket",
    )
    .await;
    let got = match bench
        .wait_for_mail(&amina, "INBOX", 1, Duration::from_secs(120))
        .await
    {
        Ok(list) => list,
        Err(err) => panic!("{err:#}\n{}", daemon.log_tail()),
    };
    assert!(got[0].contains("[#1] Night message"));
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn an_unanswered_ticket_is_handed_over_and_the_coordinator_is_told() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[("rota", "answer_within", toml::Value::String("3s".into()))],
    );
    let (amina, jonas, carol) = (
        bench.new_account("amina"),
        bench.new_account("jonas"),
        bench.new_account("carol"),
    );
    add_agent(&daemon, "amina", &amina, "agent");
    add_agent(&daemon, "jonas", &jonas, "agent");
    add_agent(&daemon, "carol", &carol, "coordinator");
    import_rota(
        &daemon,
        &format!(
            "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}[[shift]]\nagent = \"jonas\"\n{ALWAYS}"
        ),
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let raw = mail(
        &requester.address,
        &help.address,
        "Detention",
        Some("handover-1@phone.example"),
        "",
        "My brother was detained.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &raw)
        .await
        .expect("send");
    // Both are on duty with no tickets: the tie goes to the first by id.
    let first = inbox(bench, &mut daemon, &amina, 1).await;
    assert!(first[0].contains("[#1] Detention"));
    let handed = inbox(bench, &mut daemon, &jonas, 1).await;
    assert!(
        handed[0].contains("Handed over to you"),
        "{}",
        String::from_utf8_lossy(&handed[0].raw)
    );
    assert!(handed[0].contains("My brother was detained."));
    mail_containing(bench, &mut daemon, &carol, "handed over to jonas").await;
    daemon.terminate().await.expect("stop");
    let ticket = daemon.ticket(1);
    assert_eq!(ticket["owner"], "jonas");
    let kinds: Vec<&str> = ticket["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"assigned"), "{kinds:?}");
}

#[tokio::test]
async fn the_daily_digest_reaches_the_coordinators() {
    let bench = harness::shared().await;
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let digest_at = format!("{:02}:{:02}", now.hour(), now.minute());
    let mut daemon = Daemon::live(
        bench,
        &[("rota", "digest_at", toml::Value::String(digest_at))],
    );
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    add_agent(&daemon, "amina", &amina, "agent");
    add_agent(&daemon, "carol", &carol, "coordinator");
    let help = daemon.help.clone();
    let waiting = mail(
        "someone@phone.example",
        &help.address,
        "Unassigned case",
        Some("digest-1@phone.example"),
        "",
        "hello",
    );
    bench
        .append(&help, "INBOX", &waiting, &[])
        .await
        .expect("append");
    daemon.start();
    let digest = mail_containing(bench, &mut daemon, &carol, "casemail digest for").await;
    assert!(digest.contains("Open tickets per caseworker"));
    assert!(digest.contains("amina"));
    assert!(digest.contains("Unanswered past the answer time: 0"));
    assert!(digest.contains("Held as spam: 0"));
    assert!(
        !digest.contains("hello"),
        "the digest carries no requester text"
    );
    assert_eq!(
        bench.list(&amina, "INBOX").await.expect("list").len(),
        0,
        "the digest goes to coordinators only"
    );
    daemon.terminate().await.expect("stop");
}

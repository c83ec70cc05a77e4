use std::collections::BTreeSet;

use super::*;
use crate::ids::TicketId;
use crate::model::{Ticket, TicketFlag};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("a valid time")
}

fn metrics() -> Metrics {
    Metrics::new(["INBOX".to_owned(), "Junk".to_owned()], at(0))
}

/// Splits the exposition text into (name, labels, value) samples, checking every line on the
/// way: comments are HELP or TYPE, and every sample's metric family was declared before it.
fn parse(text: &str) -> Vec<(String, String, f64)> {
    let mut declared = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("a name");
            assert!(declared.insert(name.to_owned()), "{name} declared twice");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().expect("a name");
            let kind = parts.next().expect("a type");
            assert!(declared.contains(name), "TYPE before HELP for {name}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| declared.contains(*family))
            .unwrap_or(name);
        assert!(declared.contains(family), "{name} has no HELP");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        samples.push((name.to_owned(), labels.to_owned(), value));
    }
    samples
}

fn value(samples: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map(|(_, _, v)| *v)
        .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
}

#[test]
fn the_text_declares_every_family_and_counts_what_happened() {
    let metrics = metrics();
    metrics.message_filed(Filed::Ticket);
    metrics.message_filed(Filed::Duplicate);
    metrics.message_filed(Filed::Quarantined);
    metrics.message_filed(Filed::Bounced);
    metrics.relay_settled(OutboxKind::Bounce, Settled::Sent);
    metrics.relay_settled(OutboxKind::Notification, Settled::Deferred);
    metrics.folder_alive("INBOX", at(5));
    let mut figures = StoreFigures::default();
    figures.tickets.insert(Status::New, 3);
    figures.tickets.insert(Status::Spam, 1);
    figures.flagged.insert("suspected_spam".to_owned(), 1);
    figures.messages = 7;
    figures.outbox = 2;
    figures.outbox_oldest = Some(at(40));

    let text = metrics.render(&figures, at(100));
    let samples = parse(&text);
    assert_eq!(value(&samples, "casemail_messages_ingested_total", ""), 4.0);
    assert_eq!(value(&samples, "casemail_bounces_total", ""), 1.0);
    assert_eq!(value(&samples, "casemail_duplicates_total", ""), 1.0);
    assert_eq!(value(&samples, "casemail_quarantined_total", ""), 1.0);
    assert_eq!(value(&samples, "casemail_tickets", "status=\"new\""), 3.0);
    assert_eq!(value(&samples, "casemail_tickets", "status=\"open\""), 0.0);
    assert_eq!(value(&samples, "casemail_tickets", "status=\"spam\""), 1.0);
    assert_eq!(value(&samples, "casemail_messages_stored", ""), 7.0);
    assert_eq!(
        value(&samples, "casemail_outbox_oldest_age_seconds", ""),
        60.0
    );
    assert_eq!(
        value(&samples, "casemail_relay_sent_total", "kind=\"bounce\""),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "casemail_relay_deferred_total",
            "kind=\"notification\""
        ),
        1.0
    );
    assert_eq!(value(&samples, "casemail_imap_up", "folder=\"INBOX\""), 1.0);
    assert_eq!(value(&samples, "casemail_imap_up", "folder=\"Junk\""), 0.0);
    assert_eq!(
        value(&samples, "casemail_imap_lag_seconds", "folder=\"Junk\""),
        100.0
    );
    assert_eq!(
        value(
            &samples,
            "casemail_imap_last_success_timestamp_seconds",
            "folder=\"INBOX\""
        ),
        1_800_000_005.0
    );
}

#[test]
fn histogram_buckets_are_cumulative_and_end_at_the_count() {
    let metrics = metrics();
    metrics.observe(Stage::Parse, Duration::from_micros(500));
    metrics.observe(Stage::Parse, Duration::from_millis(20));
    metrics.observe(Stage::Parse, Duration::from_secs(60));
    let samples = parse(&metrics.render(&StoreFigures::default(), at(1)));
    let bucket = |le: &str| {
        value(
            &samples,
            "casemail_stage_seconds_bucket",
            &format!("stage=\"parse\",le=\"{le}\""),
        )
    };
    assert_eq!(bucket("0.001"), 1.0);
    assert_eq!(bucket("0.01"), 1.0);
    assert_eq!(bucket("0.025"), 2.0);
    assert_eq!(bucket("30"), 2.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        value(&samples, "casemail_stage_seconds_count", "stage=\"parse\""),
        3.0
    );
    let sum = value(&samples, "casemail_stage_seconds_sum", "stage=\"parse\"");
    assert!((sum - 60.0205).abs() < 1e-9, "{sum}");
    assert_eq!(
        value(&samples, "casemail_stage_seconds_count", "stage=\"commit\""),
        0.0
    );
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new(["a \"quoted\" \\ folder\nname".to_owned()], at(0));
    let text = metrics.render(&StoreFigures::default(), at(0));
    assert!(
        text.contains("casemail_imap_up{folder=\"a \\\"quoted\\\" \\\\ folder\\nname\"} 0\n"),
        "{text}"
    );
}

#[test]
fn a_folder_is_unhealthy_from_its_first_failure_until_it_logs_in_again() {
    let metrics = metrics();
    let problems = metrics.problems(None, at(1));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.contains("not connected yet")));

    metrics.folder_alive("INBOX", at(2));
    metrics.folder_alive("Junk", at(2));
    assert_eq!(metrics.problems(None, at(3)), Vec::<String>::new());

    metrics.folder_down("INBOX", "cannot reach 127.0.0.1:143".to_owned(), at(10));
    metrics.folder_down("INBOX", "still down".to_owned(), at(20));
    let problems = metrics.problems(None, at(30));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = problems.first().expect("one problem");
    assert!(problem.starts_with("imap: folder INBOX"), "{problem}");
    assert!(problem.contains("(20s): still down"), "{problem}");

    metrics.folder_alive("INBOX", at(31));
    assert_eq!(metrics.problems(None, at(32)), Vec::<String>::new());
}

#[test]
fn a_quiet_process_stage_and_a_stuck_outbox_are_unhealthy() {
    let metrics = metrics();
    metrics.folder_alive("INBOX", at(0));
    metrics.folder_alive("Junk", at(0));
    let stall = i64::try_from(PROCESS_STALL.as_secs()).expect("small");
    metrics.process_alive(at(0));
    assert!(metrics.problems(None, at(stall)).is_empty());
    let problems = metrics.problems(None, at(stall + 1));
    assert!(
        problems.iter().any(|p| p.starts_with("process:")),
        "{problems:?}"
    );

    metrics.process_alive(at(1000));
    let stuck = i64::try_from(OUTBOX_STUCK.as_secs()).expect("small");
    assert!(metrics.problems(Some(at(1000)), at(1000 + 60)).is_empty());
    let problems = metrics.problems(Some(at(1000 - stuck - 1)), at(1000));
    assert!(
        problems.iter().any(|p| p.starts_with("outbox:")),
        "{problems:?}"
    );
}

#[test]
fn store_figures_count_tickets_flags_and_queues() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let empty = StoreFigures::read(&store).expect("read");
    assert_eq!(empty.flagged.get("suspected_spam"), Some(&0));
    assert!(empty.tickets.is_empty());
    assert_eq!(empty.outbox_oldest, None);

    let ticket = |status: Status, flags: &[TicketFlag], messages: u32| Ticket {
        id: TicketId(0),
        status,
        subject: "help".to_owned(),
        requester: "someone@example.org".to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: flags.iter().copied().collect(),
        created: at(0),
        updated: at(0),
        message_count: messages,
        event_count: 0,
    };
    for record in [
        ticket(Status::New, &[TicketFlag::Unreadable], 2),
        ticket(Status::Spam, &[TicketFlag::SuspectedSpam], 1),
        ticket(Status::New, &[], 1),
    ] {
        store
            .write(|tx| {
                let id = tx.allocate_ticket_id()?;
                tx.put_ticket(&Ticket {
                    id,
                    ..record.clone()
                })
            })
            .expect("write");
    }
    let figures = StoreFigures::read(&store).expect("read");
    assert_eq!(figures.tickets.get(&Status::New), Some(&2));
    assert_eq!(figures.tickets.get(&Status::Spam), Some(&1));
    assert_eq!(figures.flagged.get("suspected_spam"), Some(&1));
    assert_eq!(figures.flagged.get("unreadable"), Some(&1));
    assert_eq!(figures.messages, 4);
}

#[test]
fn lag_cursors_and_reconciliation_are_rendered_per_folder() {
    use crate::ids::{Uid, UidValidity};
    use crate::imap::Lag;
    use crate::model::Cursor;

    let metrics = metrics();
    metrics.folder_lag(
        "INBOX",
        Lag {
            uid_next: Some(Uid(41)),
            pending: 3,
        },
    );
    // A later look that did not learn UIDNEXT keeps the last one known.
    metrics.folder_lag(
        "INBOX",
        Lag {
            uid_next: None,
            pending: 2,
        },
    );
    metrics.reconciled(
        [("INBOX".to_owned(), 1), ("Processed".to_owned(), 0)],
        at(30),
    );
    metrics.reconcile_failed();
    let mut figures = StoreFigures::default();
    figures.cursors.insert(
        "INBOX".to_owned(),
        Cursor {
            uidvalidity: UidValidity(7),
            last_uid: Uid(38),
        },
    );
    let samples = parse(&metrics.render(&figures, at(60)));
    assert_eq!(
        value(&samples, "casemail_imap_uidnext", "folder=\"INBOX\""),
        41.0
    );
    assert_eq!(
        value(&samples, "casemail_imap_lag_messages", "folder=\"INBOX\""),
        2.0
    );
    assert_eq!(
        value(&samples, "casemail_imap_cursor_uid", "folder=\"INBOX\""),
        38.0
    );
    assert_eq!(
        value(&samples, "casemail_reconcile_missing", "folder=\"INBOX\""),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "casemail_reconcile_missing",
            "folder=\"Processed\""
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "casemail_reconcile_last_run_timestamp_seconds",
            ""
        ),
        1_800_000_030.0
    );
    assert_eq!(
        value(&samples, "casemail_reconcile_runs_total", "result=\"ok\""),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "casemail_reconcile_runs_total",
            "result=\"failed\""
        ),
        1.0
    );
    // Nothing is known of Junk yet: no made-up figures.
    assert!(!samples.iter().any(
        |(name, labels, _)| name.starts_with("casemail_imap_lag_messages")
            && labels.contains("Junk")
    ));
}

#[tokio::test]
async fn fetched_mail_held_in_memory_is_shown_against_its_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("casemail.toml");
    std::fs::write(
        &path,
        "[helpdesk]\naddress = \"help@charity.example\"\n[imap]\nhost = \"imap.example\"\nusername = \"help\"\npassword = \"x\"\n[smtp]\nhost = \"smtp.example\"\n[ingest]\nmax_message_size = \"1MiB\"\nfetch_bytes = \"2MiB\"\n",
    )
    .expect("write config");
    let config =
        crate::config::load_with_env(&path, &std::collections::HashMap::new()).expect("config");
    let metrics = metrics();
    let text = metrics.render(&StoreFigures::default(), at(10));
    assert!(!text.contains("casemail_fetch_"), "no budget, no figures");

    let budget = Budget::new(&config.ingest);
    metrics.watch_fetch_budget(budget.clone());
    let held = budget.reserve(100).await.expect("free");
    let samples = parse(&metrics.render(&StoreFigures::default(), at(10)));
    assert_eq!(value(&samples, "casemail_fetch_held_bytes", ""), 102_400.0);
    assert_eq!(
        value(&samples, "casemail_fetch_budget_bytes", ""),
        2_097_152.0
    );
    drop(held);
    let samples = parse(&metrics.render(&StoreFigures::default(), at(10)));
    assert_eq!(value(&samples, "casemail_fetch_held_bytes", ""), 0.0);
}

/// Every family operators' dashboards and alerts use, with its type, as `# TYPE` lines name
/// them: counters under their full `_total` name, as exposition format 0.0.4 has it.
#[tokio::test]
async fn every_family_keeps_its_name_and_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("casemail.toml");
    std::fs::write(
        &path,
        "[helpdesk]\naddress = \"help@charity.example\"\n[imap]\nhost = \"imap.example\"\nusername = \"help\"\npassword = \"x\"\n[smtp]\nhost = \"smtp.example\"\n",
    )
    .expect("write config");
    let config =
        crate::config::load_with_env(&path, &std::collections::HashMap::new()).expect("config");
    let metrics = metrics();
    metrics.watch_fetch_budget(Budget::new(&config.ingest));
    for settled in [Settled::Sent, Settled::Deferred, Settled::Failed] {
        metrics.relay_settled(OutboxKind::Notification, settled);
    }
    let text = metrics.render(&StoreFigures::default(), at(1));
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .collect();
    families.sort_unstable();
    let expected = [
        "casemail_bounces_total counter",
        "casemail_dead_letters gauge",
        "casemail_duplicates_total counter",
        "casemail_fetch_budget_bytes gauge",
        "casemail_fetch_held_bytes gauge",
        "casemail_imap_cursor_uid gauge",
        "casemail_imap_lag_messages gauge",
        "casemail_imap_lag_seconds gauge",
        "casemail_imap_last_success_timestamp_seconds gauge",
        "casemail_imap_uidnext gauge",
        "casemail_imap_up gauge",
        "casemail_messages_ingested_total counter",
        "casemail_messages_stored gauge",
        "casemail_oauth2_refusals_total counter",
        "casemail_outbox_messages gauge",
        "casemail_outbox_oldest_age_seconds gauge",
        "casemail_process_last_alive_timestamp_seconds gauge",
        "casemail_quarantine_messages gauge",
        "casemail_quarantined_total counter",
        "casemail_reconcile_last_run_timestamp_seconds gauge",
        "casemail_reconcile_missing gauge",
        "casemail_reconcile_runs_total counter",
        "casemail_relay_deferred_total counter",
        "casemail_relay_failed_total counter",
        "casemail_relay_sent_total counter",
        "casemail_replies_held_total counter",
        "casemail_replies_not_sent_total counter",
        "casemail_replies_refused_total counter",
        "casemail_replies_relayed_total counter",
        "casemail_stage_seconds histogram",
        "casemail_start_time_seconds gauge",
        "casemail_tickets gauge",
        "casemail_tickets_flagged gauge",
    ];
    assert_eq!(families, expected, "{text}");
}

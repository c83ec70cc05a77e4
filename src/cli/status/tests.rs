use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::config;
use crate::ids::{MessageId, TicketId, Uid, UidValidity};
use crate::metrics::Metrics;
use crate::model::{OutboxEntry, OutboxKind, QuarantineEntry, Source};
use crate::ops::status::answer;
use crate::smtp::Settled;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("a valid time")
}

/// A config whose state directory and control socket live in `dir`.
fn config_in(dir: &Path, extra: &str) -> Config {
    let text = format!(
        r#"
[helpdesk]
address = "help@charity.example"
state_dir = {state}

[imap]
host = "imap.charity.example"
username = "help"
password = "imap-secret"
folders = ["INBOX"]
junk_folders = ["Junk"]
paused_folders = ["Junk"]

[smtp]
host = "smtp.charity.example"

[control]
socket = {socket}
http = "127.0.0.1:0"
{extra}
"#,
        state = toml::Value::String(dir.join("state").to_string_lossy().into_owned()),
        socket = toml::Value::String(dir.join("run/casemail.sock").to_string_lossy().into_owned()),
    );
    let path = dir.join("casemail.toml");
    std::fs::write(&path, text).expect("write config");
    config::load_with_env(&path, &HashMap::new()).expect("a valid config")
}

fn json(status: &Status) -> Value {
    serde_json::to_value(status).expect("serialise")
}

/// The keys of every object in the JSON, by path: they must not depend on what is known.
fn key_paths(value: &Value, path: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, inner) in map {
            let here = format!("{path}.{key}");
            key_paths(inner, &here, out);
            out.push(here);
        }
    }
}

#[test]
fn without_a_daemon_or_a_store_it_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path(), "");
    let status = Status::new(&config, None, at(0));
    assert!(!status.daemon.running);
    assert!(!status.healthy);
    assert_eq!(status.smtp.state, SmtpState::Unknown);
    assert!(
        status
            .store
            .error
            .as_deref()
            .is_some_and(|e| e.contains("casemail has not run with this config yet")),
        "{:?}",
        status.store.error
    );
    assert!(
        !config.helpdesk.state_dir.exists(),
        "status created the state directory"
    );
    let value = json(&status);
    assert_eq!(value["store"]["outbox"], Value::Null);
    assert_eq!(value["store"]["read_by"], Value::Null);
    assert_eq!(value["oauth2"], Value::Null);
    let folders: Vec<(&str, &str, bool)> = value["imap"]["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name"),
                f["state"].as_str().expect("state"),
                f["paused"].as_bool().expect("paused"),
            )
        })
        .collect();
    assert_eq!(
        folders,
        vec![("INBOX", "unknown", false), ("Junk", "unknown", true)]
    );
    let text = status.text(&config);
    assert!(text.starts_with("daemon        not running"), "{text}");
    assert!(text.contains("not readable: no store in"), "{text}");
}

#[test]
fn without_a_daemon_the_store_is_read_directly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path(), "");
    {
        let store = Store::open(&config.helpdesk.state_dir).expect("open");
        let waiting = OutboxEntry {
            id: 0,
            kind: OutboxKind::Notification,
            ticket: Some(TicketId(1)),
            message_id: MessageId::parse("n1@charity.example").expect("id"),
            envelope_from: "help@charity.example".to_owned(),
            recipients: vec!["amina@volunteers.example".to_owned()],
            created: at(0),
            attempts: 0,
            next_attempt: at(0),
            last_error: None,
        };
        let quarantined = QuarantineEntry {
            source: Source {
                mailbox: "INBOX".to_owned(),
                uidvalidity: UidValidity(1),
                uid: Uid(7),
            },
            at: at(0),
            attempts: 3,
            reason: "parsing took too long".to_owned(),
            size: 4,
        };
        store
            .write(|tx| {
                let id = tx.enqueue(&waiting, b"raw")?;
                tx.update_outbox(&OutboxEntry {
                    id,
                    attempts: 2,
                    next_attempt: at(60),
                    last_error: Some("connection refused".to_owned()),
                    ..waiting.clone()
                })?;
                tx.enqueue(&waiting, b"raw")?;
                tx.put_quarantine(&quarantined, b"raw!")?;
                tx.set_last_digest("2026-12-24")
            })
            .expect("write");
        store.flush().expect("flush");
    }
    let status = Status::new(&config, None, at(120));
    assert!(!status.daemon.running);
    assert_eq!(status.store.read_by, Some("direct"));
    assert_eq!(status.store.outbox, Some(2));
    assert_eq!(status.store.outbox_oldest, Some(at(0)));
    assert_eq!(status.store.dead_letters, Some(0));
    assert_eq!(status.store.quarantine, Some(1));
    assert_eq!(status.store.last_digest.as_deref(), Some("2026-12-24"));
    assert_eq!(status.smtp.state, SmtpState::Unknown);
    assert_eq!(
        status.smtp.last_error.as_deref(),
        Some("connection refused")
    );
    let text = status.text(&config);
    assert!(text.contains("outbox        2 waiting"), "{text}");
    assert!(
        text.contains("quarantine    1 message(s) (casemail quarantine list)"),
        "{text}"
    );
    assert!(
        text.contains("last digest   2026-12-24 (daily at 08:00 UTC)"),
        "{text}"
    );
    assert!(text.contains("last error: connection refused"), "{text}");
}

#[test]
fn the_daemons_answer_reports_folders_relay_and_problems() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path(), "");
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let metrics = Metrics::new(["INBOX".to_owned(), "Junk".to_owned()], at(0));
    metrics.folder_alive("INBOX", at(5));
    // A reason carrying a terminal escape, as a hostile server's greeting could.
    metrics.folder_down("Junk", "refused \u{1b}[2J by server".to_owned(), at(10));
    metrics.relay_settled(OutboxKind::Notification, Settled::Sent);
    metrics.relay_settled(OutboxKind::Acknowledgement, Settled::Sent);
    metrics.relay_settled(OutboxKind::Notification, Settled::Deferred);

    let text = answer(&store, &metrics, at(20)).expect("answer");
    let answer: Answer = serde_json::from_str(&text).expect("the CLI reads the daemon's JSON");
    let status = Status::new(&config, Some(answer), at(20));
    assert!(status.daemon.running);
    assert_eq!(status.daemon.started, Some(at(0)));
    assert!(!status.healthy);
    assert_eq!(
        status.daemon.problems.len(),
        1,
        "{:?}",
        status.daemon.problems
    );
    assert!(status.daemon.problems[0].contains("folder Junk not reachable"));
    assert_eq!(status.store.read_by, Some("daemon"));
    assert_eq!(status.store.outbox, Some(0));
    assert_eq!(status.smtp.state, SmtpState::Ok);
    assert_eq!(
        (status.smtp.sent, status.smtp.deferred, status.smtp.failed),
        (Some(2), Some(1), Some(0))
    );
    let folders = &status.imap.folders;
    assert_eq!(folders[0].name, "INBOX");
    assert_eq!(folders[0].state, FolderState::Up);
    assert_eq!(folders[0].last_contact, Some(at(5)));
    assert_eq!(folders[1].state, FolderState::Down);
    // Never up since start: down since then.
    assert_eq!(folders[1].since, Some(at(0)));
    assert!(folders[1].paused);

    let text = status.text(&config);
    assert!(
        !text.contains('\u{1b}'),
        "an escape reached the terminal: {text:?}"
    );
    assert!(text.contains("health        1 problem(s)"), "{text}");
    assert!(text.contains("INBOX: up since"), "{text}");
    assert!(text.contains("Junk (paused): down since"), "{text}");
    assert!(
        text.contains("ok; since start 2 sent, 1 deferred, 0 refused for good"),
        "{text}"
    );

    // The same keys whether the daemon answers or not.
    let mut online = Vec::new();
    key_paths(&json(&status), "", &mut online);
    drop(store);
    let offline_status = Status::new(&config, None, at(20));
    let mut offline = Vec::new();
    key_paths(&json(&offline_status), "", &mut offline);
    online.sort();
    offline.sort();
    assert_eq!(online, offline);
}

#[test]
fn oauth2_shows_when_the_access_token_expires() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = dir.path().join("state");
    let text = format!(
        r#"
[helpdesk]
address = "help@charity.example"
state_dir = {state}

[imap]
host = "imap.charity.example"
auth = "oauth2"
username = "help@charity.example"

[smtp]
host = "smtp.charity.example"

[control]
socket = {socket}

[oauth2]
provider = "google"
client_id = "casemail-test"
client_secret = "s3cret"
"#,
        state = toml::Value::String(state_dir.to_string_lossy().into_owned()),
        socket = toml::Value::String(
            dir.path()
                .join("casemail.sock")
                .to_string_lossy()
                .into_owned()
        ),
    );
    let path = dir.path().join("casemail.toml");
    std::fs::write(&path, text).expect("write config");
    let config = config::load_with_env(&path, &HashMap::new()).expect("a valid config");
    let oauth2 = config
        .imap
        .oauth2
        .clone()
        .expect("imap signs in with oauth2");

    let status = Status::new(&config, None, at(0));
    let section = status.oauth2.as_ref().expect("an oauth2 section");
    assert_eq!(section.state, Some("not_signed_in"));
    assert!(
        status
            .text(&config)
            .contains("oauth2        not signed in: run casemail auth login")
    );

    std::fs::create_dir_all(&state_dir).expect("state dir");
    let signed_in = crate::oauth::Stored {
        version: 1,
        flow: oauth2.flow.as_str().to_owned(),
        client_id: oauth2.client_id.clone(),
        token_endpoint: oauth2.token_endpoint.clone(),
        access_token: Some("access".to_owned()),
        access_expires: Some(at(3600)),
        refresh_token: Some("refresh".to_owned()),
        ..crate::oauth::Stored::default()
    };
    crate::oauth::write(&oauth2.token_file, &signed_in).expect("write the token file");
    let status = Status::new(&config, None, at(0));
    let value = json(&status);
    assert_eq!(value["oauth2"]["state"], "signed_in");
    assert_eq!(
        value["oauth2"]["access_token_expires"],
        at(3600).to_string()
    );
    assert_eq!(value["oauth2"]["access_token_valid"], true);
    assert_eq!(value["oauth2"]["refresh_token"], true);
    let text = status.text(&config);
    assert!(
        text.contains("oauth2        signed in; access token valid until 2027-01-15 09:00:00 UTC, refresh token kept"),
        "{text}"
    );
    let later = Status::new(&config, None, at(7200));
    assert!(later.text(&config).contains("access token expired at"));
}

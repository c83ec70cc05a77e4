use std::collections::HashMap;

use serde_json::json;

use super::*;

/// A config whose state directory and control socket live in `dir`.
fn config_in(dir: &std::path::Path) -> Config {
    let text = format!(
        r#"
[helpdesk]
address = "help@charity.example"
state_dir = {state}

[imap]
host = "imap.charity.example"
username = "help"
password = "imap-secret"

[smtp]
host = "smtp.charity.example"

[control]
socket = {socket}
http = "127.0.0.1:0"
"#,
        state = toml::Value::String(dir.join("state").to_string_lossy().into_owned()),
        socket = toml::Value::String(dir.join("run/casemail.sock").to_string_lossy().into_owned()),
    );
    let path = dir.join("casemail.toml");
    std::fs::write(&path, text).expect("write config");
    crate::config::load_with_env(&path, &HashMap::new()).expect("a valid config")
}

/// Runs `command` and returns what it printed, or the error as `main` prints it.
fn run(store: &Store, config: &Config, command: StoreCommand) -> Result<String, String> {
    let mut out = Vec::new();
    let result = execute(store, config, &command, &mut out);
    let printed = String::from_utf8(out).expect("UTF-8 output");
    result.map(|()| printed).map_err(|err| format!("{err:#}"))
}

#[test]
fn commands_travel_as_tagged_json() {
    let command = StoreCommand::TicketList {
        owner: None,
        since: None,
        status: Some(StatusFilter::Open),
        json: true,
    };
    assert_eq!(
        serde_json::to_value(&command).expect("encode"),
        json!({"op": "ticket_list", "status": "open", "json": true})
    );
    let all = [
        command,
        StoreCommand::TicketShow {
            number: 7,
            json: false,
        },
        StoreCommand::QuarantineList { json: true },
        StoreCommand::AgentAdd {
            id: "amina".to_owned(),
            name: "Amina".to_owned(),
            emails: vec!["amina@example.org".to_owned()],
            role: RoleArg::Coordinator,
            max_open: Some(3),
        },
        StoreCommand::AgentList { json: true },
        StoreCommand::AgentShow {
            id: "amina".to_owned(),
            json: true,
        },
        StoreCommand::AgentRemove {
            id: "amina".to_owned(),
        },
        StoreCommand::AgentAway {
            id: "amina".to_owned(),
            until: Some("2026-12-24".to_owned()),
        },
        StoreCommand::AgentBack {
            id: "amina".to_owned(),
        },
        StoreCommand::RotaImport {
            file: "rota.toml".to_owned(),
            text: "timezone = \"UTC\"\n".to_owned(),
        },
        StoreCommand::RotaExport,
        StoreCommand::RotaShow {
            at: None,
            json: true,
        },
        StoreCommand::AgentEdit {
            id: "amina".to_owned(),
            name: None,
            max_open: Some(4),
            role: Some(RoleArg::Agent),
        },
        StoreCommand::AgentAddressAdd {
            id: "amina".to_owned(),
            address: "a@example.org".to_owned(),
        },
        StoreCommand::AgentAddressRemove {
            id: "amina".to_owned(),
            address: "a@example.org".to_owned(),
        },
        StoreCommand::DeadletterList { json: true },
        StoreCommand::QuarantineShow {
            id: "INBOX/7/42".to_owned(),
            json: true,
        },
        StoreCommand::QuarantineRetry {
            id: "INBOX/7/42".to_owned(),
        },
        StoreCommand::DeadletterRetry { id: 4 },
    ];
    for command in all {
        let text = serde_json::to_string(&command).expect("encode");
        let back: StoreCommand = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, command, "{text}");
    }
}

#[test]
fn only_agent_and_rota_changes_reload_the_team() {
    assert!(StoreCommand::AgentBack { id: "a".to_owned() }.changes_team());
    assert!(
        StoreCommand::RotaImport {
            file: String::new(),
            text: String::new()
        }
        .changes_team()
    );
    assert!(!StoreCommand::AgentList { json: true }.changes_team());
    assert!(!StoreCommand::RotaExport.changes_team());
}

#[test]
fn execute_prints_what_each_command_did() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");

    let list = StoreCommand::TicketList {
        owner: None,
        since: None,
        status: None,
        json: false,
    };
    assert_eq!(run(&store, &config, list).as_deref(), Ok("no tickets\n"));
    assert_eq!(
        run(&store, &config, StoreCommand::QuarantineList { json: true }).as_deref(),
        Ok("[]\n")
    );
    assert_eq!(
        run(
            &store,
            &config,
            StoreCommand::TicketShow {
                number: 1,
                json: true
            }
        ),
        Err("no ticket #1".to_owned())
    );
    assert!(
        run(&store, &config, StoreCommand::RotaExport)
            .expect_err("no rota yet")
            .contains("no rota has been imported yet")
    );

    let rota = "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\ndays = [\"mon\"]\nstart = \"09:00\"\nend = \"17:00\"\n";
    let import = StoreCommand::RotaImport {
        file: "rota.toml".to_owned(),
        text: rota.to_owned(),
    };
    assert!(
        run(&store, &config, import.clone())
            .expect_err("amina is not registered")
            .contains("names agents that are not registered: amina")
    );
    let add = StoreCommand::AgentAdd {
        id: "amina".to_owned(),
        name: "Amina".to_owned(),
        emails: vec!["Amina@Example.org".to_owned()],
        role: RoleArg::Agent,
        max_open: None,
    };
    assert_eq!(
        run(&store, &config, add).as_deref(),
        Ok("agent amina added\n")
    );
    assert!(
        run(&store, &config, import)
            .expect("imported")
            .starts_with("rota imported: 1 shift(s)")
    );
    let show = StoreCommand::RotaShow {
        at: Some("2026-11-23T10:00".to_owned()),
        json: true,
    };
    let on_duty: serde_json::Value =
        serde_json::from_str(&run(&store, &config, show).expect("shown")).expect("JSON");
    assert_eq!(on_duty["on_duty"], json!(["amina"]));
    let agents: serde_json::Value = serde_json::from_str(
        &run(&store, &config, StoreCommand::AgentList { json: true }).expect("listed"),
    )
    .expect("JSON");
    assert_eq!(agents[0]["emails"], json!(["amina@example.org"]));
    assert_eq!(
        run(
            &store,
            &config,
            StoreCommand::AgentAway {
                id: "amina".to_owned(),
                until: None
            }
        )
        .as_deref(),
        Ok("agent amina away; 0 open ticket(s) back to routing\n")
    );
}

/// Text an attacker can put in a mail: a clipboard write (OSC 52), a title change, a clear
/// screen, a C1 control sequence introducer and a bidi override.
const HOSTILE: &str =
    "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}1m\u{202e}gpj.exe";

/// Whether `printed` holds a control character other than a line break or tab, or a bidi
/// override: anything a terminal would act on instead of showing.
fn acts_on_a_terminal(printed: &str) -> bool {
    printed
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
}

#[test]
fn everything_printed_from_the_store_is_escaped_for_the_terminal() {
    use crate::ids::{MailKey, Uid, UidValidity};
    use crate::model::{
        Actor, AttachmentMeta, Direction, Event, QuarantineEntry, Source, StoredMessage, Ticket,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let now = jiff::Timestamp::from_second(1_800_000_000).expect("time");
    let hostile_address = format!("victim{HOSTILE}@phone.example");
    let source = Source {
        mailbox: format!("INBOX{HOSTILE}"),
        uidvalidity: UidValidity(1),
        uid: Uid(1),
    };
    store
        .write(|tx| {
            let mut ticket = Ticket {
                id: TicketId(1),
                status: Status::Spam,
                subject: format!("Help{HOSTILE}"),
                requester: hostile_address.clone(),
                requester_name: Some(format!("Name{HOSTILE}")),
                owner: None,
                assigned_at: None,
                last_agent_reply: None,
                merged_into: None,
                participants: Default::default(),
                flags: Default::default(),
                created: now,
                updated: now,
                message_count: 1,
                event_count: 0,
            };
            let message = StoredMessage {
                ticket: TicketId(1),
                seq: 0,
                direction: Direction::In,
                key: MailKey::ContentHash("x".to_owned()),
                message_id: None,
                from: Some(hostile_address.clone()),
                from_name: Some(format!("Name{HOSTILE}")),
                to: vec![],
                cc: vec![],
                subject: Some(format!("Help{HOSTILE}")),
                date: None,
                received: now,
                in_reply_to: vec![],
                references: vec![],
                text: format!("First line\r\n\tindented{HOSTILE}\nlast line\r"),
                attachments: vec![AttachmentMeta {
                    name: Some(format!("scan{HOSTILE}.pdf")),
                    content_type: "application/pdf".to_owned(),
                    size: 3,
                    kept: true,
                }],
                anomalies: vec![format!("broken{HOSTILE}")],
                sources: vec![source.clone()],
            };
            tx.put_message(&message, None)?;
            let event = Event {
                at: now,
                actor: Actor::Requester(hostile_address.clone()),
                kind: "created".to_owned(),
                detail: format!("from {HOSTILE}"),
            };
            tx.add_event(&mut ticket, &event)?;
            tx.put_ticket(&ticket)?;
            let verdict = crate::casework::spam::Verdict {
                spam: true,
                score: 9.0,
                reasons: vec![crate::casework::spam::Reason {
                    signal: "rule:x".to_owned(),
                    weight: 9.0,
                    detail: format!("subject {HOSTILE}"),
                }],
            };
            tx.put_spam_record(
                TicketId(1),
                &crate::casework::spam::held::SpamRecord { at: now, verdict },
            )?;
            tx.put_quarantine(
                &QuarantineEntry {
                    source: source.clone(),
                    at: now,
                    attempts: 3,
                    reason: format!("parser gave up{HOSTILE}"),
                    size: 10,
                },
                format!("Subject: x{HOSTILE}\r\n\r\nbody{HOSTILE}\r\n").as_bytes(),
            )?;
            crate::casework::mail_loops::suppress(
                tx,
                &config.loops,
                &hostile_address,
                &format!("bounced{HOSTILE}"),
                Some(TicketId(1)),
                now,
            )?;
            let mut agent = crate::model::Agent {
                id: AgentId("amina".to_owned()),
                name: format!("Amina{HOSTILE}"),
                emails: vec![format!("amina{HOSTILE}@volunteers.example")],
                role: Role::Agent,
                max_open: None,
                away: None,
                created: now,
                last_assigned: None,
            };
            agent.away = Some(crate::model::Away { until: None });
            tx.put_agent(&agent)
        })
        .expect("seed");

    let show = run(
        &store,
        &config,
        StoreCommand::TicketShow {
            number: 1,
            json: false,
        },
    )
    .expect("shown");
    assert!(!acts_on_a_terminal(&show), "{show:?}");
    // The body keeps its lines and its tab, and shows what was escaped.
    assert!(
        show.contains("\n\nFirst line\n\tindented\\u{1b}]52;c;ZXZpbA==\\u{7}"),
        "{show:?}"
    );
    assert!(show.contains("\nlast line\n"), "{show:?}");
    assert!(show.contains("[anomaly] broken\\u{1b}"), "{show:?}");
    assert!(show.contains("Events:\n"), "{show:?}");
    assert!(show.contains("Requester: Name\\u{1b}]52;"), "{show:?}");
    assert!(show.contains("--- in from Name\\u{1b}]52;"), "{show:?}");
    for command in [
        StoreCommand::TicketList {
            owner: None,
            since: None,
            status: None,
            json: false,
        },
        StoreCommand::SpamList { json: false },
        StoreCommand::QuarantineList { json: false },
        StoreCommand::SuppressionList { json: false },
        StoreCommand::AgentList { json: false },
        StoreCommand::AgentShow {
            id: "amina".to_owned(),
            json: false,
        },
        StoreCommand::QuarantineShow {
            id: quarantine::id(&source),
            json: false,
        },
    ] {
        let name = command.name();
        let printed = run(&store, &config, command).expect("printed");
        assert!(printed.contains("\\u{1b}"), "{name}: {printed:?}");
        assert!(!acts_on_a_terminal(&printed), "{name}: {printed:?}");
    }
    // JSON is escaped by serde and keeps the text exactly.
    let json = run(
        &store,
        &config,
        StoreCommand::TicketShow {
            number: 1,
            json: true,
        },
    )
    .expect("shown");
    assert!(!json.contains('\u{1b}'), "{json:?}");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["subject"], json!(format!("Help{HOSTILE}")));
}

#[test]
fn dates_given_and_times_shown_are_in_the_configured_zone() {
    use crate::ids::MailKey;
    use crate::model::{Actor, Direction, Event, StoredMessage, Ticket};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config_in(dir.path());
    config.rota.timezone =
        jiff::tz::TimeZone::get("Europe/Berlin").expect("the zone is in the bundled database");
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    // 2027-01-15T08:00:00Z is 09:00 in Berlin.
    let now: jiff::Timestamp = "2027-01-15T08:00:00Z".parse().expect("time");
    store
        .write(|tx| {
            let mut ticket = Ticket {
                id: TicketId(1),
                status: Status::New,
                subject: "Housing".to_owned(),
                requester: "fatima@phone.example".to_owned(),
                requester_name: None,
                owner: None,
                assigned_at: None,
                last_agent_reply: None,
                merged_into: None,
                participants: Default::default(),
                flags: Default::default(),
                created: now,
                updated: now,
                message_count: 1,
                event_count: 0,
            };
            tx.put_message(
                &StoredMessage {
                    ticket: TicketId(1),
                    seq: 0,
                    direction: Direction::In,
                    key: MailKey::ContentHash("x".to_owned()),
                    message_id: None,
                    from: Some("fatima@phone.example".to_owned()),
                    from_name: None,
                    to: vec![],
                    cc: vec![],
                    subject: Some("Housing".to_owned()),
                    date: Some(now),
                    received: now,
                    in_reply_to: vec![],
                    references: vec![],
                    text: "Hello".to_owned(),
                    attachments: vec![],
                    anomalies: vec![],
                    sources: vec![],
                },
                None,
            )?;
            let event = Event {
                at: now,
                actor: Actor::Requester("fatima@phone.example".to_owned()),
                kind: "created".to_owned(),
                detail: "new ticket".to_owned(),
            };
            tx.add_event(&mut ticket, &event)?;
            tx.put_ticket(&ticket)
        })
        .expect("seed");

    let show = run(
        &store,
        &config,
        StoreCommand::TicketShow {
            number: 1,
            json: false,
        },
    )
    .expect("shown");
    assert!(
        show.contains("--- in from fatima@phone.example at 2027-01-15 09:00 CET\n"),
        "{show}"
    );
    assert!(show.contains("\n  2027-01-15 09:00 CET  created"), "{show}");
    // JSON keeps exact UTC times for scripts.
    let json = run(
        &store,
        &config,
        StoreCommand::TicketShow {
            number: 1,
            json: true,
        },
    )
    .expect("shown");
    assert!(json.contains("\"2027-01-15T08:00:00Z\""), "{json}");

    // `--since` a date is midnight in Berlin: 2027-01-15T09:00 Berlin is after it.
    let listed = |since: &str| {
        run(
            &store,
            &config,
            StoreCommand::TicketList {
                status: None,
                owner: None,
                since: Some(since.to_owned()),
                json: false,
            },
        )
        .expect("listed")
    };
    assert!(listed("2027-01-15").starts_with("#1 "));
    assert_eq!(listed("2027-01-16"), "no tickets\n");

    run(
        &store,
        &config,
        StoreCommand::AgentAdd {
            id: "amina".to_owned(),
            name: "Amina".to_owned(),
            emails: vec!["amina@volunteers.example".to_owned()],
            role: RoleArg::Agent,
            max_open: None,
        },
    )
    .expect("added");
    let away = run(
        &store,
        &config,
        StoreCommand::AgentAway {
            id: "amina".to_owned(),
            until: Some("2027-07-01".to_owned()),
        },
    )
    .expect("away");
    assert_eq!(
        away,
        "agent amina away until 2027-07-01 00:00 CEST; 0 open ticket(s) back to routing\n"
    );
    let list = run(&store, &config, StoreCommand::AgentList { json: false }).expect("list");
    assert!(
        list.contains("  away until 2027-07-01 00:00 CEST"),
        "{list}"
    );
    let shown = run(
        &store,
        &config,
        StoreCommand::AgentShow {
            id: "amina".to_owned(),
            json: true,
        },
    )
    .expect("show");
    assert!(shown.contains("\"2027-06-30T22:00:00Z\""), "{shown}");
    let bad = run(
        &store,
        &config,
        StoreCommand::AgentAway {
            id: "amina".to_owned(),
            until: Some("next week".to_owned()),
        },
    )
    .expect_err("not a date");
    assert_eq!(
        bad,
        "--until \"next week\" is neither a date (2026-12-24) nor an RFC 3339 time"
    );
}

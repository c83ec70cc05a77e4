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
    config::load_with_env(&path, &HashMap::new()).expect("a valid config")
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
fn rota_import_reads_its_file_on_the_callers_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rota.toml");
    std::fs::write(&path, "timezone = \"UTC\"\n").expect("write");
    let command =
        StoreCommand::from_rota(RotaCommand::Import { file: path.clone() }).expect("read the file");
    assert_eq!(
        command,
        StoreCommand::RotaImport {
            file: path.display().to_string(),
            text: "timezone = \"UTC\"\n".to_owned()
        }
    );
    let missing = StoreCommand::from_rota(RotaCommand::Import {
        file: dir.path().join("missing.toml"),
    })
    .expect_err("no such file");
    assert!(format!("{missing:#}").contains("cannot read rota file"));
}

#[test]
fn execute_prints_what_each_command_did() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");

    let list = StoreCommand::TicketList {
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

//! One time zone: `rota.timezone` in the config is the zone of the rota, of the dates given to
//! the CLI and of the times it shows, through the running daemon as on the store; a rota that
//! names another zone is refused, and so is a daemon start on a stored rota in another zone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::control::wait_until_serving;
use crate::daemon::{CASEMAIL, Daemon};
use crate::harness;
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota};

fn berlin() -> (&'static str, &'static str, toml::Value) {
    (
        "rota",
        "timezone",
        toml::Value::String("Europe/Berlin".to_owned()),
    )
}

fn away_until(daemon: &Daemon, id: &str) -> Value {
    let agent: Value =
        serde_json::from_str(&cli_ok(daemon, &["agent", "show", id, "--json"])).expect("JSON");
    agent["away_until"].clone()
}

#[tokio::test]
async fn agent_away_until_a_date_is_midnight_in_the_configured_zone() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::new(bench, &[berlin()]);
    let amina = bench.new_account("amina");
    add_agent(&daemon, "amina", &amina, "agent");

    // A rota file naming another zone than the config is refused, and the message names both.
    let path = daemon.config_path.with_file_name("utc-rota.toml");
    std::fs::write(
        &path,
        format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    )
    .expect("write rota");
    let refused = daemon.cli(&["rota", "import", &path.to_string_lossy()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("timezone \"UTC\" is not the helpdesk's time zone \"Europe/Berlin\"")
            && stderr.contains("rota.timezone"),
        "{stderr}"
    );
    // Naming the same zone, as every rota file did before the zone moved to the config, is fine.
    import_rota(
        &daemon,
        &format!("timezone = \"Europe/Berlin\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );

    daemon.start();
    wait_until_serving(&mut daemon).await;
    // Through the daemon's socket: midnight in Berlin, in winter an hour before midnight UTC.
    let said = cli_ok(
        &daemon,
        &["agent", "away", "amina", "--until", "2030-01-07"],
    );
    assert!(
        said.starts_with("agent amina away until 2030-01-07 00:00 CET;"),
        "{said}"
    );
    assert_eq!(away_until(&daemon, "amina"), "2030-01-06T23:00:00Z");
    let listed = cli_ok(&daemon, &["agent", "list"]);
    assert!(
        listed.contains("away until 2030-01-07 00:00 CET"),
        "{listed}"
    );
    let shown: Value = serde_json::from_str(&cli_ok(
        &daemon,
        &["rota", "show", "--at", "2030-01-07T12:00", "--json"],
    ))
    .expect("JSON");
    assert_eq!(shown["timezone"], "Europe/Berlin");
    assert_eq!(shown["at"], "2030-01-07T11:00:00Z");
    let exported = cli_ok(&daemon, &["rota", "export"]);
    assert!(!exported.contains("timezone"), "{exported}");
    daemon.terminate().await.expect("stop");

    // On the store, with the daemon stopped: the same zone, in summer two hours off UTC.
    cli_ok(&daemon, &["agent", "back", "amina"]);
    let said = cli_ok(
        &daemon,
        &["agent", "away", "amina", "--until", "2030-07-01"],
    );
    assert!(
        said.starts_with("agent amina away until 2030-07-01 00:00 CEST;"),
        "{said}"
    );
    assert_eq!(away_until(&daemon, "amina"), "2030-06-30T22:00:00Z");
}

#[tokio::test]
async fn the_daemon_refuses_a_stored_rota_in_another_zone() {
    use casemail::store::Store;
    let bench = harness::shared().await;
    let daemon = Daemon::new(bench, &[berlin()]);
    // A rota stored with a zone of its own, as imports kept it before the zone moved to the
    // config, and not the config's.
    {
        let store = Store::open(&daemon.state_dir).expect("open the store");
        store
            .write(|tx| {
                tx.set_rota(&format!(
                    "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"
                ))
            })
            .expect("rota");
        store.flush().expect("flush");
    }
    let mut child = Command::new(CASEMAIL)
        .arg("--config")
        .arg(&daemon.config_path)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn casemail run");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("casemail run started on a rota in another zone");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = child.wait_with_output().expect("stderr");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: rota.timezone: the stored rota (from `casemail rota import`) names time zone \
             \"UTC\", not \"Europe/Berlin\"",
            daemon.config_path.display()
        )),
        "{stderr}"
    );
}

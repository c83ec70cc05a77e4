use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::http::{HTTP_TIMEOUT, parse_request_line};
use super::listeners::{REFUSALS_LOGGED_EVERY, Refusals};
use super::*;
use crate::ops::StatusFilter;

/// A config whose state directory and control socket live in `dir`, the state directory
/// created as the daemon creates it.
fn config_in(dir: &Path) -> Config {
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
    let config = crate::config::load_with_env(&path, &HashMap::new()).expect("a valid config");
    std::fs::create_dir_all(&config.helpdesk.state_dir).expect("state dir");
    config
}

/// The CLI's side, on a worker thread as the blocking client needs.
async fn ask(socket: &Path, command: StoreCommand) -> Option<Reply> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || request(&socket, &command))
        .await
        .expect("the client thread")
        .expect("the request")
}

async fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head.lines().next().expect("status line").to_owned();
    (status, body.to_owned())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

struct Running {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    http: SocketAddr,
}

async fn start(config: &Config, store: &Store) -> Running {
    let listeners = Listeners::bind(config).await.expect("bind");
    let http = listeners.http_addr();
    let shared = Arc::new(Shared::new(
        store.clone(),
        Arc::new(config.clone()),
        Arc::new(Metrics::new(["INBOX".to_owned()], jiff::Timestamp::now())),
        Arc::new(Notify::new()),
    ));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(listeners.serve(shared.clone(), cancel.clone()));
    Running {
        shared,
        cancel,
        task,
        http,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_run_through_the_socket_and_changes_reload_the_team() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let socket = config.control.socket.clone();
    assert_eq!(ask(&socket, StoreCommand::RotaExport).await, None);

    let running = start(&config, &store).await;
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let list = StoreCommand::TicketList {
        owner: None,
        since: None,
        status: Some(StatusFilter::New),
        json: false,
    };
    assert_eq!(
        ask(&socket, list).await,
        Some(Reply::succeeded("no tickets\n".to_owned()))
    );
    let missing = ask(
        &socket,
        StoreCommand::TicketShow {
            number: 9,
            json: true,
        },
    )
    .await
    .expect("a reply");
    assert!(!missing.ok);
    assert_eq!(missing.error.as_deref(), Some("no ticket #9"));
    assert_eq!(missing.exit, Some(1));

    let add = StoreCommand::AgentAdd {
        id: "amina".to_owned(),
        name: "Amina".to_owned(),
        emails: vec!["amina@example.org".to_owned()],
        role: crate::ops::RoleArg::Agent,
        max_open: None,
    };
    let added = ask(&socket, add).await.expect("a reply");
    assert_eq!(added.stdout, "agent amina added\n");
    tokio::time::timeout(
        Duration::from_secs(5),
        running.shared.team_changed.notified(),
    )
    .await
    .expect("the process stage is told to reload its team");

    running.cancel.cancel();
    running.task.await.expect("serve ends");
    assert!(!socket.exists(), "the socket is removed at shutdown");
    assert!(
        !config.helpdesk.state_dir.join(HTTP_ADDR_FILE).exists(),
        "so is the HTTP address file"
    );
    assert_eq!(ask(&socket, StoreCommand::RotaExport).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_is_refused_and_a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let socket = config.control.socket.clone();

    let running = start(&config, &store).await;
    let second = Listeners::bind(&config).await.err().expect("refused");
    assert!(
        format!("{second:#}").contains("another casemail is running"),
        "{second:#}"
    );
    assert_eq!(
        ask(&socket, StoreCommand::QuarantineList { json: false })
            .await
            .map(|reply| reply.stdout),
        Some("quarantine is empty\n".to_owned()),
        "the first daemon still answers"
    );
    running.cancel.cancel();
    running.task.await.expect("serve ends");

    // A daemon killed with SIGKILL leaves its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind a stale socket"));
    assert!(socket.exists());
    assert_eq!(ask(&socket, StoreCommand::RotaExport).await, None);
    let running = start(&config, &store).await;
    assert!(ask(&socket, StoreCommand::RotaExport).await.is_some());
    running.cancel.cancel();
    running.task.await.expect("serve ends");

    // Anything but a socket at that path is left alone.
    std::fs::write(&socket, "not a socket").expect("write");
    let refused = Listeners::bind(&config).await.err().expect("refused");
    assert!(
        format!("{refused:#}").contains("is not a socket"),
        "{refused:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_from_another_protocol_version_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let running = start(&config, &store).await;
    let socket = config.control.socket.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
        stream
            .write_all(b"{\"version\":2,\"command\":{\"op\":\"rota_export\"}}\n")
            .expect("send");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).expect("read");
        answer
    })
    .await
    .expect("client thread");
    let reply: Reply = serde_json::from_str(&answer).expect("a reply");
    assert!(!reply.ok);
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.contains("control protocol version 2")),
        "{reply:?}"
    );
    running.cancel.cancel();
    running.task.await.expect("serve ends");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_are_served_over_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let running = start(&config, &store).await;
    let recorded = std::fs::read_to_string(config.helpdesk.state_dir.join(HTTP_ADDR_FILE))
        .expect("the bound address is recorded");
    assert_eq!(recorded.trim(), running.http.to_string());

    let (status, body) = http(running.http, &get("/healthz")).await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert!(
        body.starts_with("imap: folder INBOX not reachable"),
        "{body}"
    );
    running
        .shared
        .metrics
        .folder_alive("INBOX", jiff::Timestamp::now());
    let (status, body) = http(running.http, &get("/healthz?verbose")).await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );

    let (status, body) = http(running.http, &get("/metrics")).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        body.contains("\ncasemail_tickets{status=\"new\"} 0\n"),
        "{body}"
    );
    let (status, _) = http(running.http, &get("/elsewhere")).await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(running.http, "DELETE /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _) = http(running.http, "nonsense\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    running.cancel.cancel();
    running.task.await.expect("serve ends");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_http_clients_neither_lock_out_the_socket_nor_keep_their_slots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let store = Store::open(&config.helpdesk.state_dir).expect("open");
    let socket = config.control.socket.clone();
    let running = start(&config, &store).await;

    // Any local user can open these and send nothing.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(running.http).await.expect("connect"));
    }
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        ask(
            &socket,
            StoreCommand::TicketList {
                owner: None,
                since: None,
                status: None,
                json: false,
            },
        ),
    )
    .await
    .expect("the socket answers at once")
    .expect("a reply");
    assert_eq!(reply, Reply::succeeded("no tickets\n".to_owned()));

    // Each idle client is closed by the daemon: over the limit at once, the others once the
    // head timeout has passed.
    let started = std::time::Instant::now();
    for stream in &mut idle {
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(HTTP_TIMEOUT * 3, stream.read(&mut byte))
            .await
            .expect("the daemon closes an idle client");
        assert_eq!(
            read.unwrap_or(0),
            0,
            "nothing is sent to a client that sent nothing"
        );
    }
    assert!(started.elapsed() < HTTP_TIMEOUT * 3);
    let (status, _) = http(running.http, &get("/healthz")).await;
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    running.cancel.cancel();
    running.task.await.expect("serve ends");
}

#[test]
fn refused_connections_are_logged_at_most_every_ten_seconds_with_a_count() {
    let start = std::time::Instant::now();
    let mut refusals = Refusals::default();
    assert_eq!(refusals.refused(start), Some(1));
    for i in 1..1000 {
        assert_eq!(refusals.refused(start + Duration::from_millis(i)), None);
    }
    assert_eq!(
        refusals.refused(start + REFUSALS_LOGGED_EVERY),
        Some(1000),
        "the next line counts every connection closed since the last"
    );
    assert_eq!(refusals.refused(start + REFUSALS_LOGGED_EVERY), None);
}

#[test]
fn request_lines_give_method_and_path() {
    assert_eq!(
        parse_request_line("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
        Some(("GET", "/metrics"))
    );
    assert_eq!(parse_request_line("GET /metrics\r\n\r\n"), None);
    assert_eq!(parse_request_line("GET /metrics SMTP/1.0\r\n\r\n"), None);
    assert_eq!(parse_request_line(""), None);
}

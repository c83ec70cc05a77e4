//! OAuth 2.0 sign-in against real servers: Glewlwyd issues the tokens, Dovecot checks them on
//! IMAP (XOAUTH2, OAUTHBEARER) and, through its SASL socket, for Postfix's SMTP AUTH. The tests
//! sign in with the device grant as a person would (the code entered through Glewlwyd's own
//! endpoints) and in a browser (authorization code with PKCE, the address pasted back), then let
//! mail flow in and out, let the access token expire under the daemon, revoke the refresh token,
//! and sign in as an application with client credentials.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{CASEMAIL, Daemon};
use crate::harness::{self, Account, OAuth2Bench, glewlwyd};
use crate::ingest::mail;
use crate::routing::{ALWAYS, add_agent, cli_ok, import_rota, inbox, mail_containing};

const PATIENCE: Duration = Duration::from_secs(90);

/// Which protocols sign in with tokens, and how the first tokens are had.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SignIn {
    /// IMAP and SMTP, with a person's device-grant sign-in.
    DeviceBoth,
    /// IMAP only (SMTP without a login, as the bench's Postfix allows from loopback).
    DeviceImapOnly,
    /// IMAP only, with a person's sign-in in a browser (authorization code with PKCE).
    Browser,
    /// IMAP and SMTP as an application (client credentials) with this secret.
    App(&'static str),
}

/// A daemon for `help` whose `[imap]`/`[smtp]` sign in with the bench's Glewlwyd.
fn oauth_daemon(bench: &OAuth2Bench, help: Account, sign_in: SignIn) -> Daemon {
    let daemon = Daemon::for_account(
        &bench.mail,
        help.clone(),
        &[(
            "ingest",
            "first_run",
            toml::Value::String("notify".to_owned()),
        )],
    );
    let text = std::fs::read_to_string(&daemon.config_path).expect("read config");
    let mut table: toml::Table = text.parse().expect("valid TOML");
    let section = |table: &mut toml::Table, name: &str| -> toml::Table {
        match table.remove(name) {
            Some(toml::Value::Table(section)) => section,
            _ => toml::Table::new(),
        }
    };
    let mut imap = section(&mut table, "imap");
    imap.remove("password");
    imap.insert("auth".into(), "oauth2".into());
    table.insert("imap".into(), toml::Value::Table(imap));
    if !matches!(sign_in, SignIn::DeviceImapOnly | SignIn::Browser) {
        let mut smtp = section(&mut table, "smtp");
        smtp.insert("auth".into(), "oauth2".into());
        smtp.insert("username".into(), help.address.clone().into());
        table.insert("smtp".into(), toml::Value::Table(smtp));
    }
    let mut oauth2 = toml::Table::new();
    oauth2.insert("provider".into(), "oidc".into());
    oauth2.insert("issuer".into(), bench.server.issuer().into());
    match sign_in {
        SignIn::DeviceBoth | SignIn::DeviceImapOnly | SignIn::Browser => {
            if sign_in == SignIn::Browser {
                oauth2.insert("flow".into(), "authorization_code".into());
            }
            oauth2.insert("client_id".into(), glewlwyd::CLIENT_ID.into());
            oauth2.insert("client_secret".into(), glewlwyd::CLIENT_SECRET.into());
            oauth2.insert(
                "scopes".into(),
                toml::Value::Array(vec!["openid".into(), glewlwyd::MAIL_SCOPE.into()]),
            );
        }
        SignIn::App(secret) => {
            oauth2.insert("flow".into(), "client_credentials".into());
            oauth2.insert("client_id".into(), glewlwyd::APP_ID.into());
            oauth2.insert("client_secret".into(), secret.into());
            oauth2.insert(
                "scopes".into(),
                toml::Value::Array(vec![glewlwyd::MAIL_SCOPE.into()]),
            );
        }
    }
    table.insert("oauth2".into(), toml::Value::Table(oauth2));
    std::fs::write(
        &daemon.config_path,
        toml::to_string(&table).expect("serialise config"),
    )
    .expect("write config");
    daemon
}

/// `casemail auth login` with the device grant, the code entered at Glewlwyd as `help`.
/// Returns what the command printed.
fn device_login(bench: &OAuth2Bench, daemon: &Daemon) -> String {
    std::fs::create_dir_all(&daemon.state_dir).expect("state dir");
    let mut child = Command::new(CASEMAIL)
        .arg("--config")
        .arg(&daemon.config_path)
        .args(["auth", "login"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn casemail auth login");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    let mut code = None;
    for line in lines.by_ref() {
        let line = line.expect("read auth login's output");
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("    ") && !line.trim().is_empty() {
            code = Some(line.trim().to_owned());
            break;
        }
    }
    let code = code.unwrap_or_else(|| panic!("no code in auth login's output:\n{printed}"));
    assert!(
        printed.contains(&format!("{}/device", bench.server.issuer())),
        "{printed}"
    );
    bench
        .server
        .approve_device(&daemon.help, &code)
        .unwrap_or_else(|err| panic!("{err:#}"));
    for line in lines {
        printed.push_str(&line.expect("read auth login's output"));
        printed.push('\n');
    }
    let output = child.wait_with_output().expect("wait for auth login");
    assert!(
        output.status.success(),
        "auth login failed: {}\n{printed}",
        String::from_utf8_lossy(&output.stderr)
    );
    printed
}

/// The claims of a JWT access token (Glewlwyd issues JWTs).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims")
}

/// When a JWT access token expires (its `exp` claim), in seconds since the epoch.
fn jwt_expiry(token: &str) -> i64 {
    jwt_claims(token)["exp"].as_i64().expect("exp claim")
}

fn notice_text(mail: &harness::FetchedMail) -> String {
    String::from_utf8_lossy(&mail.raw).into_owned()
}

fn token_file(daemon: &Daemon) -> std::path::PathBuf {
    daemon.state_dir.join("oauth2-token.json")
}

fn stored_tokens(daemon: &Daemon) -> Value {
    serde_json::from_str(&std::fs::read_to_string(token_file(daemon)).expect("token file"))
        .expect("token file is JSON")
}

fn postfix_log(bench: &OAuth2Bench) -> String {
    std::fs::read_to_string(bench.mail.root().join("postfix").join("maillog")).unwrap_or_default()
}

fn dovecot_log(bench: &OAuth2Bench) -> String {
    std::fs::read_to_string(bench.mail.root().join("dovecot").join("dovecot.log"))
        .unwrap_or_default()
}

fn rota_for(daemon: &Daemon, agent: &Account, coordinator: Option<&Account>) {
    add_agent(daemon, "amina", agent, "agent");
    if let Some(coordinator) = coordinator {
        add_agent(daemon, "carol", coordinator, "coordinator");
    }
    import_rota(
        daemon,
        &format!("timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\n{ALWAYS}"),
    );
}

#[tokio::test]
async fn device_login_then_mail_in_and_out_with_tokens_that_expire_mid_run() {
    let (bench, _one_at_a_time) = harness::oauth2_exclusive().await;
    let help = bench.new_account("help");
    let agent = bench.mail.new_account("amina");
    let requester = bench.mail.new_account("requester");
    let mut daemon = oauth_daemon(bench, help.clone(), SignIn::DeviceBoth);
    rota_for(&daemon, &agent, None);

    // Before signing in, status says what to do.
    let status: Value =
        serde_json::from_str(&cli_ok(&daemon, &["auth", "status", "--json"])).expect("status JSON");
    assert_eq!(status["state"], "not_signed_in");

    let printed = device_login(bench, &daemon);
    assert!(printed.contains("tokens saved in"), "{printed}");
    let status: Value =
        serde_json::from_str(&cli_ok(&daemon, &["auth", "status", "--json"])).expect("status JSON");
    assert_eq!(status["state"], "signed_in", "{status}");
    assert_eq!(status["refresh_token"], true);
    assert_eq!(status["used_by"], serde_json::json!(["imap", "smtp"]));
    assert!(
        status["scopes"]
            .as_str()
            .unwrap_or_default()
            .contains("mail")
    );
    let mode = std::fs::metadata(token_file(&daemon))
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Ingest (IMAP signed in with a token) and send (SMTP AUTH with a token).
    daemon.start();
    let first = mail(
        &requester.address,
        &help.address,
        "Visa appointment",
        Some("oauth-1@phone.example"),
        "",
        "When is my appointment?",
    );
    bench
        .mail
        .send_mail(&requester.address, &[&help.address], &first)
        .await
        .expect("send");
    let got = inbox(&bench.mail, &mut daemon, &agent, 1).await;
    assert!(got[0].contains("[#1] Visa appointment"));
    let dovecot = dovecot_log(bench);
    assert!(
        dovecot.contains(&format!(
            "Login: user=<{}>, method=OAUTHBEARER",
            help.address
        )),
        "no OAUTHBEARER login for the help mailbox:\n{}",
        bench.log_tail()
    );
    let postfix = postfix_log(bench);
    assert!(
        postfix.contains(&format!(
            "sasl_method=XOAUTH2, sasl_username={}",
            help.address
        )),
        "casemail did not send with SMTP AUTH XOAUTH2:\n{}",
        bench.log_tail()
    );

    // The access token expires at the server while casemail believes it still good (a clock
    // that runs slow, a token revoked early): the next send is refused, casemail asks for a new
    // token and sends again, and nothing is lost.
    let before = stored_tokens(&daemon);
    let stale = before["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let mut believed = before.clone();
    believed["access_expires"] =
        Value::String((jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string());
    std::fs::write(
        token_file(&daemon),
        serde_json::to_vec_pretty(&believed).expect("JSON"),
    )
    .expect("rewrite the token file");
    let dead_at = jiff::Timestamp::from_second(jwt_expiry(&stale) + 2).expect("expiry");
    while jiff::Timestamp::now() < dead_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = mail(
        &requester.address,
        &help.address,
        "Re: Visa appointment",
        Some("oauth-2@phone.example"),
        "In-Reply-To: <oauth-1@phone.example>\r\n",
        "I have the letter now.",
    );
    bench
        .mail
        .send_mail(&requester.address, &[&help.address], &second)
        .await
        .expect("send");
    mail_containing(&bench.mail, &mut daemon, &agent, "I have the letter now.").await;
    let after = stored_tokens(&daemon);
    assert_ne!(after["access_token"].as_str(), Some(stale.as_str()));
    let log = daemon.log_tail();
    assert!(
        log.contains("The mail server refused the access token; a new one is asked for."),
        "the stale token was not refused and renewed:\n{log}"
    );
    assert!(log.contains("Access token renewed."), "{log}");
    let (status, body) = daemon.http_get("/healthz").await.expect("healthz");
    assert_eq!(status, 200, "{body}");
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn a_revoked_refresh_token_turns_health_red_and_coordinators_are_told_once() {
    let (bench, _one_at_a_time) = harness::oauth2_exclusive().await;
    let help = bench.new_account("help");
    let agent = bench.mail.new_account("amina");
    let coordinator = bench.mail.new_account("carol");
    let mut daemon = oauth_daemon(bench, help.clone(), SignIn::DeviceImapOnly);
    rota_for(&daemon, &agent, Some(&coordinator));
    device_login(bench, &daemon);
    daemon.start();

    let refresh_token = stored_tokens(&daemon)["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    bench
        .server
        .revoke_refresh_token(&refresh_token)
        .unwrap_or_else(|err| panic!("{err:#}"));

    // Within one access token's life the daemon tries to renew it and is refused.
    let notice = mail_containing(
        &bench.mail,
        &mut daemon,
        &coordinator,
        "casemail: signing in to the mailbox was refused",
    )
    .await;
    assert!(notice.contains("casemail auth login"));
    // Glewlwyd answers a revoked refresh token with a bare 400.
    assert!(
        notice.contains("refused with HTTP 400"),
        "{}",
        notice_text(&notice)
    );
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        let (status, body) = daemon.http_get("/healthz").await.expect("healthz");
        if status != 200 && body.contains("oauth2: sign-in refused") {
            break body;
        }
        assert!(Instant::now() < deadline, "healthz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains("casemail auth login"), "{body}");
    let (_, metrics) = daemon.http_get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains("casemail_oauth2_refusals_total 1"),
        "{metrics}"
    );
    let log = daemon.log_tail();
    assert!(log.contains("run `casemail auth login`"), "{log}");
    let status: Value =
        serde_json::from_str(&cli_ok(&daemon, &["auth", "status", "--json"])).expect("status JSON");
    assert_eq!(status["state"], "refused");

    // Once: not again while it lasts, nor after a restart.
    daemon.terminate().await.expect("stop");
    daemon.start();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, _) = daemon.http_get("/healthz").await.expect("healthz");
    assert_ne!(status, 200);
    let notices = bench
        .mail
        .list(&coordinator, "INBOX")
        .await
        .expect("list")
        .into_iter()
        .filter(|m| m.contains("signing in to the mailbox was refused"))
        .count();
    assert_eq!(notices, 1, "{}", daemon.log_tail());

    // Signing in again while the daemon runs is all it takes: it reads the new tokens at its
    // next connection and is healthy again.
    device_login(bench, &daemon);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = daemon.http_get("/healthz").await.expect("healthz");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still unhealthy: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status: Value =
        serde_json::from_str(&cli_ok(&daemon, &["auth", "status", "--json"])).expect("status JSON");
    assert_eq!(status["state"], "signed_in");
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn client_credentials_sign_in_as_the_application() {
    let (bench, _one_at_a_time) = harness::oauth2_exclusive().await;
    let help = bench.mail.new_account("shared");
    let daemon = oauth_daemon(bench, help, SignIn::App(glewlwyd::APP_SECRET));
    std::fs::create_dir_all(&daemon.state_dir).expect("state dir");
    // No person signs in: one token is fetched with the client secret to prove it works.
    let printed = cli_ok(&daemon, &["auth", "login"]);
    assert!(printed.contains("tokens saved in"), "{printed}");
    let status: Value =
        serde_json::from_str(&cli_ok(&daemon, &["auth", "status", "--json"])).expect("status JSON");
    assert_eq!(status["state"], "signed_in", "{status}");
    assert_eq!(status["flow"], "client_credentials");
    assert_eq!(status["refresh_token"], false);
    assert_eq!(status["access_token_valid"], true);
    // The token is the application's own (Glewlwyd read the client id with its "@" from the
    // Basic credentials).
    let token = stored_tokens(&daemon)["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    assert_eq!(jwt_claims(&token)["client_id"], glewlwyd::APP_ID);
    assert_eq!(jwt_claims(&token)["scope"], glewlwyd::MAIL_SCOPE);

    // A wrong secret is refused, and the message says by whom.
    let config = std::fs::read_to_string(&daemon.config_path).expect("config");
    std::fs::write(
        &daemon.config_path,
        config.replace(glewlwyd::APP_SECRET, "not-the-secret"),
    )
    .expect("config");
    let output = daemon.cli(&["auth", "login"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&bench.server.issuer()), "{stderr}");
}

#[tokio::test]
async fn browser_sign_in_with_the_address_pasted_back() {
    use std::io::Write as _;
    let (bench, _one_at_a_time) = harness::oauth2_exclusive().await;
    let help = bench.new_account("help");
    let daemon = oauth_daemon(bench, help.clone(), SignIn::Browser);
    std::fs::create_dir_all(&daemon.state_dir).expect("state dir");
    let mut child = Command::new(CASEMAIL)
        .arg("--config")
        .arg(&daemon.config_path)
        .args(["auth", "login"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn casemail auth login");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map(|line| line.expect("read auth login's output"))
        .find(|line| line.starts_with("http"))
        .expect("an address to open");
    assert!(
        url.starts_with(&format!("{}/auth?", bench.server.issuer())),
        "{url}"
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    // The person opens it, signs in and allows access; the browser lands on the redirect URI,
    // whose address they paste back.
    let landed = bench
        .server
        .authorize(&help, &url)
        .unwrap_or_else(|err| panic!("{err:#}"));
    assert!(landed.starts_with("http://localhost"), "{landed}");
    let mut stdin = child.stdin.take().expect("piped stdin");
    writeln!(stdin, "{landed}").expect("paste the address");
    drop(stdin);
    let printed: Vec<String> = lines.map(|l| l.expect("read")).collect();
    let output = child.wait_with_output().expect("wait for auth login");
    assert!(
        output.status.success(),
        "auth login failed: {}\n{printed:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: Value =
        serde_json::from_str(&cli_ok(&daemon, &["auth", "status", "--json"])).expect("status JSON");
    assert_eq!(status["state"], "signed_in", "{status}");
    assert_eq!(status["flow"], "authorization_code");
    assert_eq!(status["refresh_token"], true);
}

//! The OAuth 2.0 bench: Debian's Glewlwyd (an OAuth 2.0 / OpenID Connect server) on loopback,
//! and a Dovecot + Postfix pair of its own that accept its tokens.
//!
//! Glewlwyd runs from a directory of its own (config, SQLite database made from the package's
//! schema, log) with one OpenID Connect plugin instance, `oidc`, that issues short-lived access
//! tokens (see [`ACCESS_TOKEN_SECONDS`]) and one-use refresh tokens (each refresh returns a new
//! one), and allows the device grant, refresh tokens, client credentials, introspection and
//! revocation. It is provisioned through its admin API (the package's default `admin` account)
//! with `curl`.
//!
//! Dovecot checks a token by asking Glewlwyd's introspection endpoint (RFC 7662) as casemail's
//! client on each XOAUTH2 or OAUTHBEARER login; the token's `username` must be the mailbox.
//! Postfix takes SMTP AUTH through Dovecot's SASL socket, so sending is checked the same way.
//!
//! Application tokens (client credentials) cannot be checked by these two: Dovecot 2.3 needs a
//! user name from introspection (or a `sub` in a JWT of type `JWT`), and Glewlwyd 2.7 stores an
//! application's token of the OpenID Connect plugin without its client, while its OAuth 2.0
//! plugin describes its tokens as `token_type: access_token`, which Dovecot refuses. The tests
//! get such tokens from Glewlwyd but do not log in to the mail servers with them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::OnceCell;

use super::{Account, Bench, HOST, ServerExtras, Sharing, process};

const GLEWLWYD: &str = "/usr/bin/glewlwyd";
const SQLITE: &str = "/usr/bin/sqlite3";
const CURL: &str = "/usr/bin/curl";
/// The package's database schema, with the `admin` account (password `password`) and the
/// database user and client backends.
const SCHEMA: &str = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3";
const ADMIN_PASSWORD: &str = "password";

/// How long Glewlwyd's access tokens live: short, so that tests see them expire.
pub(crate) const ACCESS_TOKEN_SECONDS: u64 = 20;
/// The OpenID Connect plugin's name, which is also its path under `/api`.
const PLUGIN: &str = "oidc";
/// The client casemail signs in as for the device grant; Dovecot introspects with it too.
pub(crate) const CLIENT_ID: &str = "casemail";
pub(crate) const CLIENT_SECRET: &str = "casemail-bench-client-secret";
/// The scope the mail servers' tokens carry.
pub(crate) const MAIL_SCOPE: &str = "mail";
/// An application that signs in as itself (client credentials), as for Microsoft's app-only
/// access to a shared mailbox; its id has an `@`, as application ids may.
pub(crate) const APP_ID: &str = "casemail-app@charity.example";
pub(crate) const APP_SECRET: &str = "casemail-bench-app-secret";

/// Glewlwyd, and the mail bench that trusts it.
pub(crate) struct OAuth2Bench {
    pub mail: Bench,
    pub server: Glewlwyd,
}

/// The OAuth 2.0 bench, started on first use and stopped when the test process exits.
pub(crate) async fn oauth2() -> &'static OAuth2Bench {
    static SHARED: OnceCell<OAuth2Bench> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let server = match Glewlwyd::start().await {
                Ok(server) => server,
                Err(err) => panic!("{err:#}"),
            };
            let extras = server.mail_server_extras();
            let mail = Bench::start_with(Sharing::Shared, &extras).await;
            OAuth2Bench { mail, server }
        })
        .await
}

/// The OAuth 2.0 bench for one test at a time: Glewlwyd 2.7 on SQLite fails requests that
/// overlap (user creation and token issuance answer 500, its log says "FOREIGN KEY constraint
/// failed"), so the tests that use it take turns. Hold the guard for the whole test.
pub(crate) async fn oauth2_exclusive()
-> (&'static OAuth2Bench, tokio::sync::MutexGuard<'static, ()>) {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = TURN.lock().await;
    (oauth2().await, turn)
}

/// A Glewlwyd instance on loopback.
pub(crate) struct Glewlwyd {
    root: PathBuf,
    port: u16,
    /// Kept so that the process is not reaped early; the watchdog stops it.
    _child: Mutex<Child>,
    _watchdog: process::Watchdog,
}

impl Glewlwyd {
    async fn start() -> anyhow::Result<Glewlwyd> {
        for (path, package) in [
            (GLEWLWYD, "glewlwyd"),
            (SCHEMA, "glewlwyd"),
            (SQLITE, "sqlite3"),
            (CURL, "curl"),
        ] {
            if !Path::new(path).exists() {
                bail!(
                    "the OAuth 2.0 bench needs {path} (Debian package {package}); run \
                     scripts/install-test-deps"
                );
            }
        }
        let root = super::make_root();
        let watchdog = process::Watchdog::spawn(&root)?;
        let database = root.join("glewlwyd.db");
        process::run(
            Command::new(SQLITE)
                .arg(&database)
                .arg(format!(".read {SCHEMA}")),
        )
        .context("create Glewlwyd's database")?;
        let mut clashes = Vec::new();
        for _ in 0..super::PORT_ATTEMPTS {
            let port = std::net::TcpListener::bind((HOST, 0))?.local_addr()?.port();
            let config = root.join("glewlwyd.conf");
            std::fs::write(&config, config_text(&root, port))?;
            let log = root.join("glewlwyd.log");
            let mut child = process::spawn_server(
                Command::new(GLEWLWYD).arg("-c").arg(&config),
                &root,
                &root.join("stdout.log"),
            )?;
            let deadline = Instant::now() + process::START_TIMEOUT;
            let mut ready = false;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    let tail =
                        process::tail(&log, 20) + &process::tail(&root.join("stdout.log"), 20);
                    if tail.contains("Address already in use") || tail.contains("bind") {
                        clashes.push(tail);
                        break;
                    }
                    bail!("Glewlwyd exited during start-up with {status}:\n{tail}");
                }
                if curl_status(&[&format!("http://{HOST}:{port}/config")]).is_ok_and(|s| s == 200) {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !ready {
                if child.try_wait()?.is_some() {
                    continue;
                }
                bail!(
                    "Glewlwyd did not answer within {:?}:\n{}",
                    process::START_TIMEOUT,
                    process::tail(&log, 30)
                );
            }
            let server = Glewlwyd {
                root,
                port,
                _child: Mutex::new(child),
                _watchdog: watchdog,
            };
            server.provision()?;
            return Ok(server);
        }
        bail!(
            "Glewlwyd found its port taken {} times:\n{}",
            super::PORT_ATTEMPTS,
            clashes.join("\n")
        )
    }

    fn api(&self) -> String {
        format!("http://{HOST}:{}/api", self.port)
    }

    /// The issuer casemail's `[oauth2]` names; its endpoints are `{issuer}/token`,
    /// `{issuer}/device_authorization` and so on.
    pub(crate) fn issuer(&self) -> String {
        format!("{}/{PLUGIN}", self.api())
    }

    /// The log, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        process::tail(&self.root.join("glewlwyd.log"), 40)
    }

    fn admin_jar(&self) -> PathBuf {
        self.root.join("admin.cookies")
    }

    /// Calls the admin API with the admin's session.
    fn admin(&self, method: &str, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.api());
        let (status, answer) = curl(&[
            "-b",
            &self.admin_jar().to_string_lossy(),
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
            &url,
        ])?;
        if status != 200 {
            bail!(
                "{method} {path} answered {status}: {answer}\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The plugin instance, the scope, casemail's client and the application's.
    fn provision(&self) -> anyhow::Result<()> {
        let (status, answer) = curl(&[
            "-c",
            &self.admin_jar().to_string_lossy(),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string(),
            &format!("{}/auth/", self.api()),
        ])?;
        if status != 200 {
            bail!("admin login answered {status}: {answer}");
        }
        self.admin(
            "POST",
            "/mod/plugin/",
            &serde_json::json!({
                "module": "oidc",
                "name": PLUGIN,
                "display_name": "casemail bench",
                "enabled": true,
                "parameters": {
                    "iss": self.issuer(),
                    "jwt-type": "sha",
                    "jwt-key-size": "256",
                    "key": "casemail-bench-signing-key-32-bytes!",
                    "code-duration": 600,
                    "refresh-token-duration": 1209600,
                    "refresh-token-rolling": true,
                    "refresh-token-one-use": "always",
                    "access-token-duration": ACCESS_TOKEN_SECONDS,
                    "allow-non-oidc": true,
                    "auth-type-client-enabled": true,
                    "auth-type-code-enabled": true,
                    "auth-type-token-enabled": false,
                    "auth-type-id-token-enabled": true,
                    "auth-type-none-enabled": false,
                    "auth-type-password-enabled": false,
                    "auth-type-refresh-enabled": true,
                    "auth-type-device-enabled": true,
                    "pkce-allowed": true,
                    "introspection-revocation-allowed": true,
                    "introspection-revocation-allow-target-client": true,
                    "subject-type": "public",
                    "scope": [],
                    "additional-parameters": [],
                    "claims": []
                }
            }),
        )?;
        self.admin(
            "POST",
            "/scope/",
            &serde_json::json!({
                "name": MAIL_SCOPE,
                "display_name": "Mail",
                "description": "IMAP and SMTP",
                "password_required": true,
                "password_max_age": 0,
                "scheme": {}
            }),
        )?;
        self.add_client(
            CLIENT_ID,
            CLIENT_SECRET,
            &[
                "device_authorization",
                "refresh_token",
                "client_credentials",
                "code",
            ],
        )?;
        self.add_client(APP_ID, APP_SECRET, &["client_credentials"])
    }

    fn add_client(&self, client_id: &str, secret: &str, grants: &[&str]) -> anyhow::Result<()> {
        self.admin(
            "POST",
            "/client/",
            &serde_json::json!({
                "client_id": client_id,
                "client_name": client_id,
                "client_secret": secret,
                "confidential": true,
                "authorization_type": grants,
                "redirect_uri": ["http://localhost"],
                "scope": [MAIL_SCOPE],
                "enabled": true,
                "token_endpoint_auth_method": ["client_secret_post", "client_secret_basic"]
            }),
        )
    }

    /// A person who can sign in as `account`'s mailbox, with the account's password.
    pub(crate) fn add_user(&self, account: &Account) -> anyhow::Result<()> {
        self.admin(
            "POST",
            "/user/",
            &serde_json::json!({
                "username": account.username,
                "name": account.username,
                "email": account.address,
                "enabled": true,
                "password": account.password,
                "scope": ["openid", MAIL_SCOPE]
            }),
        )
    }

    /// What a person does in the browser for the device grant: sign in as `account`, allow
    /// casemail its scopes, and enter `user_code`.
    pub(crate) fn approve_device(&self, account: &Account, user_code: &str) -> anyhow::Result<()> {
        let jar = self.sign_in_and_grant(account)?;
        let output = Command::new(CURL)
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "-b",
            ])
            .arg(&jar)
            .arg(format!(
                "{}/device?code={user_code}&g_continue",
                self.issuer()
            ))
            .stdin(Stdio::null())
            .output()
            .context("run curl")?;
        let answer = String::from_utf8_lossy(&output.stdout).into_owned();
        if !answer.contains("prompt=deviceComplete") {
            bail!("entering the code answered {answer}\n{}", self.log_tail());
        }
        Ok(())
    }

    /// What a person does in the browser for the authorization-code grant: sign in as
    /// `account`, allow casemail its scopes and open `url` (`g_continue` is what Glewlwyd's
    /// login page adds when it sends the browser back). Returns the address Glewlwyd sends the
    /// browser on to (the redirect URI with the code).
    pub(crate) fn authorize(&self, account: &Account, url: &str) -> anyhow::Result<String> {
        let jar = self.sign_in_and_grant(account)?;
        let output = Command::new(CURL)
            .args(["-s", "-o", "/dev/null", "-w", "%{redirect_url}", "-b"])
            .arg(&jar)
            .arg(format!("{url}&g_continue"))
            .stdin(Stdio::null())
            .output()
            .context("run curl")?;
        let location = String::from_utf8_lossy(&output.stdout).into_owned();
        if !location.contains("code=") {
            bail!(
                "the authorization answered {location:?}\n{}",
                self.log_tail()
            );
        }
        Ok(location)
    }

    /// Signs in as `account` and allows casemail its scopes; returns the cookie jar's path.
    fn sign_in_and_grant(&self, account: &Account) -> anyhow::Result<String> {
        let jar = self
            .root
            .join(format!("{}.cookies", account.username.replace('@', "_")));
        let jar = jar.to_string_lossy().into_owned();
        let (status, answer) = curl(&[
            "-c",
            &jar,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &serde_json::json!({"username": account.username, "password": account.password})
                .to_string(),
            &format!("{}/auth/", self.api()),
        ])?;
        if status != 200 {
            bail!(
                "signing in as {} answered {status}: {answer}",
                account.username
            );
        }
        let (status, answer) = curl(&[
            "-b",
            &jar,
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &serde_json::json!({"scope": format!("openid {MAIL_SCOPE}")}).to_string(),
            &format!("{}/auth/grant/{CLIENT_ID}", self.api()),
        ])?;
        if status != 200 {
            bail!("granting the scopes answered {status}: {answer}");
        }
        Ok(jar)
    }

    /// Revokes a refresh token, as an administrator or the person would after a password
    /// change (RFC 7009).
    pub(crate) fn revoke_refresh_token(&self, refresh_token: &str) -> anyhow::Result<()> {
        let (status, answer) = curl(&[
            "-u",
            &format!("{CLIENT_ID}:{CLIENT_SECRET}"),
            "--data-urlencode",
            &format!("token={refresh_token}"),
            "-d",
            "token_type_hint=refresh_token",
            &format!("{}/revoke", self.issuer()),
        ])?;
        if status != 200 {
            bail!("revoking answered {status}: {answer}");
        }
        Ok(())
    }

    /// What Dovecot and Postfix need to accept this server's tokens.
    fn mail_server_extras(&self) -> ServerExtras {
        let path = self.root.join("dovecot-oauth2.conf.ext");
        let text = format!(
            "introspection_mode = post\n\
             introspection_url = http://{CLIENT_ID}:{CLIENT_SECRET}@{HOST}:{}/api/{PLUGIN}/introspect\n\
             force_introspection = yes\nusername_attribute = username\n\
             active_attribute = active\nactive_value = true\n",
            self.port
        );
        // The harness owns this directory; a failure here is a broken machine.
        std::fs::write(&path, text).expect("write Dovecot's oauth2 passdb settings");
        let passdbs = format!(
            "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
            path.display()
        );
        ServerExtras {
            dovecot: format!(
                "# The OAuth 2.0 bench: tokens from Glewlwyd, checked by introspection.\n\
                 auth_mechanisms = plain login xoauth2 oauthbearer\n\
                 {passdbs}\
                 service auth {{\n  unix_listener {{{{ROOT}}}}/dovecot/run/auth-postfix {{\n    \
                 mode = 0666\n  }}\n}}\n"
            ),
            postfix: "# SMTP AUTH through Dovecot, so that sending needs a valid token.\n\
                      smtpd_sasl_auth_enable = yes\n\
                      smtpd_sasl_type = dovecot\n\
                      smtpd_sasl_path = {{ROOT}}/dovecot/run/auth-postfix\n"
                .to_owned(),
        }
    }
}

impl OAuth2Bench {
    /// A mailbox on the bench that a person can sign in to at Glewlwyd.
    pub(crate) fn new_account(&self, prefix: &str) -> Account {
        let account = self.mail.new_account(prefix);
        self.server
            .add_user(&account)
            .unwrap_or_else(|err| panic!("add {} to Glewlwyd: {err:#}", account.username));
        account
    }

    /// Both servers' logs, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        format!(
            "{}\n--- glewlwyd ---\n{}",
            self.mail.log_tail(),
            self.server.log_tail()
        )
    }
}

fn config_text(root: &Path, port: u16) -> String {
    format!(
        "port={port}\nbind_address=\"{HOST}\"\nexternal_url=\"http://{HOST}:{port}\"\n\
         login_url=\"login.html\"\napi_prefix=\"api\"\nallow_origin=\"*\"\n\
         log_mode=\"file\"\nlog_level=\"DEBUG\"\nlog_file=\"{root}/glewlwyd.log\"\n\
         cookie_secure=0\nsession_expiration=2419200\nsession_key=\"GLEWLWYD2_SESSION_ID\"\n\
         admin_session_authentication=\"cookie\"\nprofile_session_authentication=\"cookie\"\n\
         allow_multiple_user_per_session=true\nlogin_api_enabled=true\n\
         admin_scope=\"g_admin\"\nprofile_scope=\"g_profile\"\n\
         user_module_path=\"/usr/lib/glewlwyd/user\"\n\
         user_middleware_module_path=\"/usr/lib/glewlwyd/user_middleware\"\n\
         client_module_path=\"/usr/lib/glewlwyd/client\"\n\
         user_auth_scheme_module_path=\"/usr/lib/glewlwyd/scheme\"\n\
         plugin_module_path=\"/usr/lib/glewlwyd/plugin\"\nhash_algorithm=\"SHA512\"\n\
         database = {{\n  type = \"sqlite3\"\n  path = \"{root}/glewlwyd.db\"\n}};\n",
        root = root.display()
    )
}

/// Runs curl with `args`; returns the HTTP status and the body.
fn curl(args: &[&str]) -> anyhow::Result<(u16, String)> {
    let output = Command::new(CURL)
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run curl")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status
        .trim()
        .parse()
        .with_context(|| format!("curl {args:?} printed no status: {text}"))?;
    Ok((status, body.to_owned()))
}

fn curl_status(args: &[&str]) -> anyhow::Result<u16> {
    curl(args).map(|(status, _)| status)
}

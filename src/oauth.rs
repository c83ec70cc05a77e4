//! OAuth 2.0 sign-in for IMAP and SMTP: the tokens casemail keeps, keeping them fresh, and the
//! SASL strings that carry them (XOAUTH2, and OAUTHBEARER from RFC 7628).
//!
//! The token file (`<state_dir>/oauth2-token.json`, mode 0600) is the only state. Every IMAP or
//! SMTP sign-in asks [`access_token`], which reads the file and, when the access token is
//! missing or close to expiry, asks the token endpoint for a new one (RFC 6749 §6 with the
//! refresh token, §4.4 for client credentials) and replaces the file atomically, so a rotated
//! refresh token is never lost. A server that rejects a token gets [`invalidate`]: the next
//! sign-in refreshes first. `casemail auth login` ([`login`]) writes the same file, so the
//! daemon picks up a new sign-in at its next connection without a restart.
//!
//! When the token endpoint refuses the refresh token (`invalid_grant`: revoked, the password
//! changed, consent withdrawn) the refusal is written into the file and every later sign-in
//! fails at once with [`Error::Refused`], without asking the server again, until someone signs
//! in. `sign_in.rs` turns that into health, a metric and one notice to coordinators.
//!
//! This module speaks HTTP to the authorization server only; IMAP and SMTP stay in `imap` and
//! `smtp`. It never logs a token.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::config::{Flow, OAuth2};

pub(crate) mod http;
pub(crate) mod login;
#[cfg(test)]
mod tests;

pub(crate) use login::{LoginPrompt, login};

/// The token file's format; a file of another version is treated as no sign-in.
const FILE_VERSION: u32 = 1;
/// Refresh this long before expiry at most (a quarter of a short token's lifetime at least).
const REFRESH_AHEAD: SignedDuration = SignedDuration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("not signed in to {endpoint} yet: run `casemail auth login`")]
    NotSignedIn { endpoint: String },
    #[error(
        "the token file {path} belongs to another application or server ({found}): run \
         `casemail auth login` again"
    )]
    OtherApplication { path: PathBuf, found: String },
    #[error("sign-in refused by {endpoint} since {at}: {reason}; {remedy}")]
    Refused {
        endpoint: String,
        reason: String,
        at: Timestamp,
        remedy: &'static str,
    },
    #[error("cannot reach the token endpoint")]
    Unreachable(#[from] http::Error),
    #[error("{endpoint} answered {status}: {reason}")]
    Server {
        endpoint: String,
        status: u16,
        reason: String,
    },
    #[error("cannot use the token file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sign-in did not finish: {0}")]
    Login(String),
}

impl Error {
    /// Whether a person must act (sign in again, fix the app registration) before casemail can
    /// sign in; retrying alone will not help.
    pub(crate) fn needs_operator(&self) -> bool {
        matches!(
            self,
            Error::NotSignedIn { .. } | Error::OtherApplication { .. } | Error::Refused { .. }
        )
    }
}

/// What the token endpoint's refusal means and what to do, by flow.
fn remedy(flow: Flow) -> &'static str {
    match flow {
        Flow::Device | Flow::AuthorizationCode => "run `casemail auth login` to sign in again",
        Flow::ClientCredentials => {
            "check oauth2.client_id, the client secret (it may have expired) and the app's \
             permissions"
        }
    }
}

/// The token file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Stored {
    pub version: u32,
    pub flow: String,
    pub client_id: String,
    pub token_endpoint: String,
    pub access_token: Option<String>,
    pub access_issued: Option<Timestamp>,
    pub access_expires: Option<Timestamp>,
    pub refresh_token: Option<String>,
    /// The scopes granted, as the server named them.
    pub scope: Option<String>,
    /// Who signed in, from the ID token when there was one.
    pub account: Option<String>,
    pub signed_in: Option<Timestamp>,
    pub refreshed: Option<Timestamp>,
    pub refused: Option<Refusal>,
}

/// The token endpoint refused the stored grant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Refusal {
    pub reason: String,
    pub at: Timestamp,
    /// Whether coordinators have been sent the notice about it.
    pub notified: bool,
}

/// An access token and when it expires.
pub struct AccessToken {
    pub secret: SecretString,
    pub expires: Timestamp,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Serialises refreshes within the process: IMAP folders, the expunger, reconciliation and the
/// relay may all find the token expiring at once, and a rotated refresh token may be used only
/// once.
fn refresh_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Reads the token file; `None` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Stored>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Stored>(&bytes) {
            Ok(stored) if stored.version == FILE_VERSION => Ok(Some(stored)),
            Ok(_) | Err(_) => {
                warn!(path = %path.display(), "The token file is not one this casemail wrote; signing in again is needed.");
                Ok(None)
            }
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces the token file atomically: a temporary file (mode 0600) written, synced and renamed
/// over the old one, then the directory synced, so a crash leaves the old or the new tokens,
/// never half of either. When run as root (an operator's `casemail auth login`), the file is
/// given to the owner of the state directory, the service user.
pub(crate) fn write(path: &Path, stored: &Stored) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let file_error = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    let directory = path.parent().unwrap_or(Path::new("/"));
    let temporary = path.with_extension("json.new");
    let bytes = serde_json::to_vec_pretty(stored).map_err(|err| file_error(err.into()))?;
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(file_error)?;
    file.write_all(&bytes).map_err(file_error)?;
    file.sync_all().map_err(file_error)?;
    drop(file);
    if let Ok(owner) = std::fs::metadata(directory) {
        let me = std::fs::metadata(&temporary).map_err(file_error)?;
        // Only root can give a file away; anyone else writes files the service can read anyway.
        if me.uid() == 0 && owner.uid() != 0 {
            std::os::unix::fs::chown(&temporary, Some(owner.uid()), Some(owner.gid()))
                .map_err(file_error)?;
        }
    }
    std::fs::rename(&temporary, path).map_err(file_error)?;
    std::fs::File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(file_error)?;
    Ok(())
}

/// The endpoints an issuer's discovery document names, fetched once per process.
#[derive(Debug, Clone, Deserialize)]
struct Discovered {
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
}

/// `config` with the endpoints its issuer publishes (OpenID Connect Discovery 1.0 §4), when it
/// is to discover them; as it is otherwise. Discovered endpoints must be https, or http on
/// loopback, like configured ones.
pub(crate) async fn resolve(config: &OAuth2) -> Result<OAuth2, Error> {
    static CACHE: OnceLock<tokio::sync::Mutex<std::collections::BTreeMap<String, Discovered>>> =
        OnceLock::new();
    let (true, Some(issuer)) = (config.discover, config.issuer.as_deref()) else {
        return Ok(config.clone());
    };
    let cache = CACHE.get_or_init(|| tokio::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut cache = cache.lock().await;
    let discovered = match cache.get(issuer) {
        Some(found) => found.clone(),
        None => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let response = http::get(&url, config.ca_file.as_deref()).await?;
            let bad = |reason: String| Error::Server {
                endpoint: url.clone(),
                status: response.status,
                reason,
            };
            if response.status != 200 {
                return Err(bad("no discovery document".to_owned()));
            }
            let found: Discovered = serde_json::from_slice(&response.body)
                .map_err(|err| bad(format!("not a discovery document: {err}")))?;
            for endpoint in [
                &found.token_endpoint,
                &found.device_authorization_endpoint,
                &found.authorization_endpoint,
            ]
            .into_iter()
            .flatten()
            {
                if !acceptable_endpoint(endpoint) {
                    return Err(bad(format!(
                        "{} is neither https nor http on loopback",
                        crate::mail::sanitize::for_terminal(endpoint)
                    )));
                }
            }
            cache.insert(issuer.to_owned(), found.clone());
            found
        }
    };
    let mut resolved = config.clone();
    if let Some(url) = discovered.token_endpoint {
        resolved.token_endpoint = url;
    }
    if discovered.device_authorization_endpoint.is_some() {
        resolved.device_authorization_endpoint = discovered.device_authorization_endpoint;
    }
    if discovered.authorization_endpoint.is_some() {
        resolved.authorization_endpoint = discovered.authorization_endpoint;
    }
    Ok(resolved)
}

/// Tokens and the client secret travel to these: https, or http to a loopback address.
fn acceptable_endpoint(url: &str) -> bool {
    match http::Url::parse(url) {
        Ok(parsed) if parsed.secure => true,
        Ok(parsed) => {
            let host = parsed.host.as_str();
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Err(_) => false,
    }
}

/// Whether `stored` was made for this configuration (same flow, client and server).
pub(crate) fn belongs_to(stored: &Stored, config: &OAuth2) -> bool {
    matches_config(stored, config)
}

/// Whether `stored` was made for this configuration (same flow, client and server).
fn matches_config(stored: &Stored, config: &OAuth2) -> bool {
    stored.client_id == config.client_id
        && stored.token_endpoint == config.token_endpoint
        && stored.flow == config.flow.as_str()
}

/// When the access token should be replaced: [`REFRESH_AHEAD`] before expiry, or a quarter of
/// its lifetime for short-lived tokens.
fn refresh_due(stored: &Stored) -> Option<Timestamp> {
    let expires = stored.access_expires?;
    let lifetime = stored
        .access_issued
        .map_or(REFRESH_AHEAD, |issued| expires.duration_since(issued));
    let ahead = REFRESH_AHEAD.min(lifetime / 4);
    expires.checked_sub(ahead).ok()
}

/// A valid access token for IMAP or SMTP: the stored one, or a fresh one from the token
/// endpoint when the stored one is missing or due for refresh.
pub(crate) async fn access_token(config: &OAuth2) -> Result<AccessToken, Error> {
    let config = &resolve(config).await?;
    let _guard = refresh_lock().lock().await;
    let now = Timestamp::now();
    let stored = read(&config.token_file)?;
    let stored = match stored {
        Some(stored) if matches_config(&stored, config) => stored,
        Some(stored) if config.flow != Flow::ClientCredentials => {
            return Err(Error::OtherApplication {
                path: config.token_file.clone(),
                found: format!("client {} at {}", stored.client_id, stored.token_endpoint),
            });
        }
        None if config.flow != Flow::ClientCredentials => {
            return Err(Error::NotSignedIn {
                endpoint: config.token_endpoint.clone(),
            });
        }
        // Client credentials need no person: the first token is fetched like any other.
        Some(_) | None => new_record(config),
    };
    if let Some(refusal) = &stored.refused {
        return Err(Error::Refused {
            endpoint: config.token_endpoint.clone(),
            reason: refusal.reason.clone(),
            at: refusal.at,
            remedy: remedy(config.flow),
        });
    }
    if let (Some(token), Some(due), Some(expires)) = (
        &stored.access_token,
        refresh_due(&stored),
        stored.access_expires,
    ) && now < due
    {
        return Ok(AccessToken {
            secret: SecretString::from(token.clone()),
            expires,
        });
    }
    refresh(config, stored, now).await
}

fn new_record(config: &OAuth2) -> Stored {
    Stored {
        version: FILE_VERSION,
        flow: config.flow.as_str().to_owned(),
        client_id: config.client_id.clone(),
        token_endpoint: config.token_endpoint.clone(),
        ..Stored::default()
    }
}

/// Asks the token endpoint for a new access token and stores what it says.
async fn refresh(
    config: &OAuth2,
    mut stored: Stored,
    now: Timestamp,
) -> Result<AccessToken, Error> {
    let scope = config.scopes.join(" ");
    let mut fields: Vec<(&str, &str)> = Vec::new();
    let refresh_token = stored.refresh_token.clone();
    match (config.flow, &refresh_token) {
        (Flow::ClientCredentials, _) => {
            fields.push(("grant_type", "client_credentials"));
            fields.push(("scope", &scope));
        }
        (_, Some(refresh_token)) => {
            fields.push(("grant_type", "refresh_token"));
            fields.push(("refresh_token", refresh_token));
        }
        (_, None) => {
            return Err(Error::NotSignedIn {
                endpoint: config.token_endpoint.clone(),
            });
        }
    }
    debug!(endpoint = %config.token_endpoint, flow = config.flow.as_str(), "Asking for a new access token.");
    let response = token_request(config, &config.token_endpoint, &fields).await?;
    match token_answer(&config.token_endpoint, &response)? {
        TokenAnswer::Granted(granted) => {
            granted.apply(&mut stored, now);
            stored.refreshed = Some(now);
            write(&config.token_file, &stored)?;
            let expires = granted.expires(now);
            info!(%expires, rotated = granted.refresh_token.is_some(), "Access token renewed.");
            Ok(AccessToken {
                secret: SecretString::from(granted.access_token),
                expires,
            })
        }
        TokenAnswer::Refused { code, description } => {
            let reason = match description {
                Some(description) => format!("{code}: {description}"),
                None => code,
            };
            stored.access_token = None;
            stored.refused = Some(Refusal {
                reason: reason.clone(),
                at: now,
                notified: false,
            });
            write(&config.token_file, &stored)?;
            Err(Error::Refused {
                endpoint: config.token_endpoint.clone(),
                reason,
                at: now,
                remedy: remedy(config.flow),
            })
        }
    }
}

/// POSTs a request to an endpoint of the authorization server as this client: a confidential
/// client (with a secret) authenticates with HTTP Basic, which RFC 6749 §2.3.1 requires every
/// server to accept; a public client names itself in the body.
pub(crate) async fn token_request(
    config: &OAuth2,
    url: &str,
    fields: &[(&str, &str)],
) -> Result<http::Response, Error> {
    let mut fields = fields.to_vec();
    fields.push(("client_id", &config.client_id));
    let basic = config
        .client_secret
        .as_ref()
        .map(|secret| (config.client_id.as_str(), secret.expose_secret()));
    Ok(http::post_form(url, &fields, basic, config.ca_file.as_deref()).await?)
}

/// Marks `rejected` as unusable after a server refused it, so the next [`access_token`]
/// refreshes. A token already replaced by another task is left alone.
pub(crate) async fn invalidate(config: &OAuth2, rejected: &AccessToken) -> Result<(), Error> {
    let _guard = refresh_lock().lock().await;
    let Some(mut stored) = read(&config.token_file)? else {
        return Ok(());
    };
    if stored.access_token.as_deref() == Some(rejected.secret.expose_secret()) {
        stored.access_token = None;
        stored.access_expires = None;
        write(&config.token_file, &stored)?;
        warn!("The mail server refused the access token; a new one is asked for.");
    }
    Ok(())
}

/// Records that coordinators were told of the current refusal; `false` when there is none
/// left to tell of (someone signed in again meanwhile, or it was already told).
pub(crate) async fn mark_refusal_notified(config: &OAuth2, at: Timestamp) -> Result<bool, Error> {
    let _guard = refresh_lock().lock().await;
    let Some(mut stored) = read(&config.token_file)? else {
        return Ok(false);
    };
    match &mut stored.refused {
        Some(refusal) if refusal.at == at && !refusal.notified => {
            refusal.notified = true;
            write(&config.token_file, &stored)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// What a token endpoint said (RFC 6749 §5.1 and §5.2).
pub(crate) enum TokenAnswer {
    Granted(Granted),
    Refused {
        code: String,
        description: Option<String>,
    },
}

#[derive(Deserialize)]
pub(crate) struct Granted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

impl Granted {
    fn expires(&self, now: Timestamp) -> Timestamp {
        // Some servers send the number as a string; a token without a lifetime is taken to
        // last an hour, the common default, and a refused one is refreshed anyway.
        let seconds = match &self.expires_in {
            Some(serde_json::Value::Number(number)) => number.as_i64(),
            Some(serde_json::Value::String(text)) => text.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600)
        .clamp(1, 366 * 24 * 3600);
        now.checked_add(SignedDuration::from_secs(seconds))
            .unwrap_or(now)
    }

    fn apply(&self, stored: &mut Stored, now: Timestamp) {
        stored.access_token = Some(self.access_token.clone());
        stored.access_issued = Some(now);
        stored.access_expires = Some(self.expires(now));
        // RFC 6749 §6: a new refresh token replaces the old; without one the old stays valid.
        if let Some(refresh_token) = &self.refresh_token {
            stored.refresh_token = Some(refresh_token.clone());
        }
        if let Some(scope) = &self.scope {
            stored.scope = Some(scope.clone());
        }
        if let Some(account) = self.id_token.as_deref().and_then(account_in_id_token) {
            stored.account = Some(account);
        }
        stored.refused = None;
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Reads a token endpoint's answer. Errors that mean the grant or the client is no good
/// (`invalid_grant`, `invalid_client`, `unauthorized_client`) are a refusal; anything else is a
/// server error worth retrying later.
pub(crate) fn token_answer(
    endpoint: &str,
    response: &http::Response,
) -> Result<TokenAnswer, Error> {
    if (200..300).contains(&response.status) {
        return serde_json::from_slice::<Granted>(&response.body)
            .map(TokenAnswer::Granted)
            .map_err(|err| Error::Server {
                endpoint: endpoint.to_owned(),
                status: response.status,
                reason: format!("not a token response: {err}"),
            });
    }
    let body = serde_json::from_slice::<ErrorBody>(&response.body);
    // RFC 6749 §5.2: every error about the request itself (invalid_grant, invalid_client,
    // invalid_scope, …) comes with 400 or 401, and sending the same request again cannot help.
    // Some servers (Glewlwyd) send a revoked refresh token's 400 without a body.
    if matches!(response.status, 400 | 401) {
        return Ok(match body {
            Ok(body) => TokenAnswer::Refused {
                code: body.error,
                description: body.error_description.map(|d| clean_text(&d)),
            },
            Err(_) => TokenAnswer::Refused {
                code: format!("refused with HTTP {}", response.status),
                description: None,
            },
        });
    }
    match body {
        Ok(body) => Err(Error::Server {
            endpoint: endpoint.to_owned(),
            status: response.status,
            reason: match body.error_description {
                Some(description) => format!("{}: {}", body.error, clean_text(&description)),
                None => body.error,
            },
        }),
        Err(_) => Err(Error::Server {
            endpoint: endpoint.to_owned(),
            status: response.status,
            reason: "no OAuth error in the answer".to_owned(),
        }),
    }
}

/// Server text for a log line or the health page: one line, escaped, at most 300 characters.
fn clean_text(text: &str) -> String {
    let flat = crate::mail::sanitize::for_terminal(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .as_str(),
    );
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", flat.get(..cut).unwrap_or(&flat)),
        None => flat,
    }
}

/// Who signed in, from an OpenID Connect ID token's claims. The signature is not checked: the
/// name is only shown by `auth status`, never trusted for anything.
fn account_in_id_token(id_token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    ["preferred_username", "email", "upn", "sub"]
        .iter()
        .find_map(|claim| claims.get(*claim)?.as_str())
        .map(crate::mail::sanitize::for_terminal)
}

/// The SASL mechanism a mail server is signed in to with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    XOAuth2,
    /// RFC 7628 `OAUTHBEARER`.
    OAuthBearer,
}

impl Mechanism {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The client's first message.
    pub(crate) fn initial_response(
        self,
        user: &str,
        host: &str,
        port: u16,
        token: &AccessToken,
    ) -> Vec<u8> {
        let token = token.secret.expose_secret();
        match self {
            Mechanism::XOAuth2 => {
                format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes()
            }
            // RFC 7628 §3.1: the GS2 header names the user, with "," and "=" escaped (RFC 5801).
            Mechanism::OAuthBearer => {
                let user = user.replace('=', "=3D").replace(',', "=2C");
                format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
                    .into_bytes()
            }
        }
    }

    /// The client's answer to an error challenge (the server's JSON status), which lets the
    /// server finish with a failure (RFC 7628 §3.2.3).
    pub(crate) fn error_acknowledgement(self) -> Vec<u8> {
        match self {
            Mechanism::XOAuth2 => Vec::new(),
            Mechanism::OAuthBearer => b"\x01".to_vec(),
        }
    }
}

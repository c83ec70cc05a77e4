//! `casemail auth login`: getting the first tokens.
//!
//! - Device flow (RFC 8628): ask for a device code, show the person the address and the code,
//!   poll the token endpoint at the interval the server asks for until they have signed in
//!   somewhere else (a phone will do). Nothing needs to reach the server casemail runs on.
//! - Authorization code with PKCE (RFC 6749 §4.1, RFC 7636): show an address to open in any
//!   browser; after consent the browser lands on `http://localhost/?code=…`, which fails to
//!   load, and the person pastes that address back. Google allows Gmail's scope only this way.
//! - Client credentials (RFC 6749 §4.4): nobody signs in; one token is fetched to prove the
//!   client id, secret and permissions work.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use tracing::debug;

use super::{Error, FILE_VERSION, Stored, TokenAnswer, http, refresh_lock, token_answer, write};
use crate::config::{Flow, OAuth2, Provider};

/// Where the authorization-code flow sends the browser: nothing listens there, the person
/// copies the address instead. Google and Microsoft accept loopback redirects for desktop apps.
pub(crate) const REDIRECT_URI: &str = "http://localhost";
/// RFC 8628 §3.5: the interval when the server names none.
const DEFAULT_INTERVAL: u64 = 5;

/// How the login talks to the person signing in.
pub(crate) trait LoginPrompt {
    /// Device flow: tell them where to go and which code to enter.
    fn device_code(
        &mut self,
        verification_uri: &str,
        verification_uri_complete: Option<&str>,
        user_code: &str,
        expires: Timestamp,
    );
    /// Authorization-code flow: show `url` and return the address the browser ended on.
    fn authorization_redirect(&mut self, url: &str) -> Result<String, Error>;
}

/// What a login achieved, for `auth login` to print.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signed {
    pub account: Option<String>,
    pub scope: Option<String>,
    pub expires: Option<Timestamp>,
    pub refresh_token: bool,
}

/// Signs in with the configured flow and stores the tokens, replacing any earlier sign-in (and
/// clearing a recorded refusal).
pub(crate) async fn login(config: &OAuth2, prompt: &mut dyn LoginPrompt) -> Result<Signed, Error> {
    let config = &super::resolve(config).await?;
    let now = Timestamp::now();
    let granted = match config.flow {
        Flow::Device => device(config, prompt).await?,
        Flow::AuthorizationCode => authorization_code(config, prompt).await?,
        Flow::ClientCredentials => {
            let fields = owned(vec![("grant_type", "client_credentials")]);
            let scope = config.scopes.join(" ");
            let mut fields = fields;
            fields.push(("scope".to_owned(), scope));
            exchange(config, &fields).await?
        }
    };
    let mut stored = Stored {
        version: FILE_VERSION,
        flow: config.flow.as_str().to_owned(),
        client_id: config.client_id.clone(),
        token_endpoint: config.token_endpoint.clone(),
        signed_in: Some(now),
        ..Stored::default()
    };
    granted.apply(&mut stored, now);
    if config.flow != Flow::ClientCredentials && stored.refresh_token.is_none() {
        return Err(Error::Login(
            "the server granted no refresh token, so casemail could not stay signed in (for \
             Microsoft include the offline_access scope; for Google the consent must be given \
             again)"
                .to_owned(),
        ));
    }
    let _guard = refresh_lock().lock().await;
    write(&config.token_file, &stored)?;
    Ok(Signed {
        account: stored.account.clone(),
        scope: stored.scope.clone(),
        expires: stored.access_expires,
        refresh_token: stored.refresh_token.is_some(),
    })
}

/// Owned form fields; `token_request` adds the client's own.
fn owned(fields: Vec<(&str, &str)>) -> Vec<(String, String)> {
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

async fn post(
    url: &str,
    config: &OAuth2,
    fields: &[(String, String)],
) -> Result<http::Response, Error> {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    super::token_request(config, url, &borrowed).await
}

async fn exchange(config: &OAuth2, fields: &[(String, String)]) -> Result<super::Granted, Error> {
    let response = post(&config.token_endpoint, config, fields).await?;
    match token_answer(&config.token_endpoint, &response)? {
        TokenAnswer::Granted(granted) => Ok(granted),
        TokenAnswer::Refused { code, description } => Err(Error::Login(match description {
            Some(description) => format!("{code}: {description}"),
            None => code,
        })),
    }
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    // Google calls it verification_url.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct PollError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// RFC 8628 §3.1–3.5.
async fn device(config: &OAuth2, prompt: &mut dyn LoginPrompt) -> Result<super::Granted, Error> {
    let endpoint = config
        .device_authorization_endpoint
        .as_deref()
        .ok_or_else(|| {
            Error::Login("oauth2.device_authorization_endpoint is not set".to_owned())
        })?;
    let scope = config.scopes.join(" ");
    let fields = owned(vec![("scope", &scope)]);
    let response = post(endpoint, config, &fields).await?;
    if !(200..300).contains(&response.status) {
        let reason = serde_json::from_slice::<PollError>(&response.body)
            .map(|e| match e.error_description {
                Some(description) => format!("{}: {}", e.error, super::clean_text(&description)),
                None => e.error,
            })
            .unwrap_or_else(|_| "no OAuth error in the answer".to_owned());
        return Err(Error::Server {
            endpoint: endpoint.to_owned(),
            status: response.status,
            reason,
        });
    }
    let authorization: DeviceAuthorization =
        serde_json::from_slice(&response.body).map_err(|err| Error::Server {
            endpoint: endpoint.to_owned(),
            status: response.status,
            reason: format!("not a device authorization response: {err}"),
        })?;
    let started = Timestamp::now();
    let lifetime =
        SignedDuration::from_secs(i64::try_from(authorization.expires_in.min(3600)).unwrap_or(600));
    let expires = started.checked_add(lifetime).unwrap_or(started);
    prompt.device_code(
        &crate::mail::sanitize::for_terminal(&authorization.verification_uri),
        authorization
            .verification_uri_complete
            .as_deref()
            .map(crate::mail::sanitize::for_terminal)
            .as_deref(),
        &crate::mail::sanitize::for_terminal(&authorization.user_code),
        expires,
    );
    let mut interval = authorization
        .interval
        .unwrap_or(DEFAULT_INTERVAL)
        .clamp(1, 60);
    let poll = owned(vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", &authorization.device_code),
    ]);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if Timestamp::now() > expires {
            return Err(Error::Login(
                "the code expired before anyone signed in; run `casemail auth login` again"
                    .to_owned(),
            ));
        }
        let response = post(&config.token_endpoint, config, &poll).await?;
        if (200..300).contains(&response.status) {
            return match token_answer(&config.token_endpoint, &response)? {
                TokenAnswer::Granted(granted) => Ok(granted),
                TokenAnswer::Refused { code, .. } => Err(Error::Login(code)),
            };
        }
        let error =
            serde_json::from_slice::<PollError>(&response.body).map_err(|_| Error::Server {
                endpoint: config.token_endpoint.clone(),
                status: response.status,
                reason: "no OAuth error in the answer".to_owned(),
            })?;
        match error.error.as_str() {
            "authorization_pending" => debug!("Waiting for the sign-in."),
            // §3.5: slow down by 5 seconds, for this and every later request.
            "slow_down" => interval = interval.saturating_add(5).min(60),
            "access_denied" => {
                return Err(Error::Login(
                    "the sign-in was declined in the browser".to_owned(),
                ));
            }
            "expired_token" => {
                return Err(Error::Login(
                    "the code expired before anyone signed in; run `casemail auth login` again"
                        .to_owned(),
                ));
            }
            other => {
                return Err(Error::Server {
                    endpoint: config.token_endpoint.clone(),
                    status: response.status,
                    reason: match error.error_description {
                        Some(description) => {
                            format!("{other}: {}", super::clean_text(&description))
                        }
                        None => other.to_owned(),
                    },
                });
            }
        }
    }
}

/// RFC 6749 §4.1 with PKCE (RFC 7636, S256).
async fn authorization_code(
    config: &OAuth2,
    prompt: &mut dyn LoginPrompt,
) -> Result<super::Granted, Error> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let endpoint = config
        .authorization_endpoint
        .as_deref()
        .ok_or_else(|| Error::Login("oauth2.authorization_endpoint is not set".to_owned()))?;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let verifier = encode(&rand::random::<[u8; 32]>());
    let challenge = encode(&sha2::Sha256::digest(verifier.as_bytes()));
    let state = encode(&rand::random::<[u8; 16]>());
    let scope = config.scopes.join(" ");
    let mut parameters = vec![
        ("response_type", "code"),
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // OpenID Connect servers may insist on a nonce (Glewlwyd does); the ID token it ends up in
    // only names who signed in, for `auth status`.
    let nonce = encode(&rand::random::<[u8; 16]>());
    if config.scopes.iter().any(|scope| scope == "openid") {
        parameters.push(("nonce", nonce.as_str()));
    }
    if config.provider == Provider::Google {
        // Google gives a refresh token only to offline access asked for with consent.
        parameters.push(("access_type", "offline"));
        parameters.push(("prompt", "consent"));
    }
    let query = http::form_encode(&parameters);
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let url = format!("{endpoint}{separator}{query}");
    let landed = prompt.authorization_redirect(&url)?;
    let code = code_from_redirect(&landed, &state)?;
    let fields = owned(vec![
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &verifier),
    ]);
    exchange(config, &fields).await
}

/// The code in the address the browser was sent to, after checking its `state`.
pub(crate) fn code_from_redirect(landed: &str, state: &str) -> Result<String, Error> {
    let query = landed
        .trim()
        .split_once('?')
        .map_or(landed.trim(), |(_, query)| query);
    let query = query.split('#').next().unwrap_or(query);
    let mut code = None;
    let mut returned_state = None;
    let mut error = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "code" => code = Some(http::form_decode(value)),
            "state" => returned_state = Some(http::form_decode(value)),
            "error" => error = Some(http::form_decode(value)),
            _ => {}
        }
    }
    if let Some(error) = error {
        return Err(Error::Login(format!(
            "the browser came back with {}",
            crate::mail::sanitize::for_terminal(&error)
        )));
    }
    if returned_state.as_deref() != Some(state) {
        return Err(Error::Login(
            "the pasted address is not the answer to this sign-in (its state differs); run \
             `casemail auth login` again"
                .to_owned(),
        ));
    }
    code.filter(|code| !code.is_empty())
        .ok_or_else(|| Error::Login("the pasted address holds no code".to_owned()))
}

//! The `[oauth2]` section: how casemail signs in to IMAP and SMTP when `[imap] auth` or
//! `[smtp] auth` is `"oauth2"`. Provider presets fill in the endpoints, scopes and server names
//! for Microsoft 365 and Google Workspace; `"oidc"` takes any authorization server's endpoints.
//!
//! One sign-in serves both protocols: Microsoft and Google issue one token for IMAP and SMTP.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::values::is_loopback_host;
use super::{Error, Sources, StringList, ca_file, check_text, inline_password, read_password_file};

/// Where the signed-in tokens are kept, inside the state directory.
pub(super) const TOKEN_FILE: &str = "oauth2-token.json";

/// How IMAP or SMTP logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    OAuth2,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::OAuth2 => "oauth2",
        }
    }
}

/// Who issues the tokens. The preset decides the endpoints, the scopes and the mail servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// Microsoft Entra ID (Microsoft 365); `tenant` is a directory name or id, or
    /// `organizations`.
    Microsoft {
        tenant: String,
    },
    Google,
    /// Any OAuth 2.0 / OpenID Connect server, with its endpoints given explicitly.
    Oidc,
}

impl Provider {
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Microsoft { .. } => "microsoft",
            Provider::Google => "google",
            Provider::Oidc => "oidc",
        }
    }
}

/// How casemail obtains its first tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A person signs in once with `casemail auth login` (RFC 8628); casemail keeps the refresh
    /// token.
    Device,
    /// The application signs in as itself with its client secret (RFC 6749 §4.4), such as
    /// Microsoft's app-only access to a shared mailbox; there is no refresh token.
    ClientCredentials,
    /// A person signs in once in any browser (RFC 6749 §4.1 with PKCE, RFC 7636) and pastes the
    /// address the browser ends on back into `casemail auth login`. Google allows Gmail's scope
    /// only this way, not through the device flow.
    AuthorizationCode,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Device => "device",
            Flow::ClientCredentials => "client_credentials",
            Flow::AuthorizationCode => "authorization_code",
        }
    }
}

/// `[oauth2]`, validated.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    pub provider: Provider,
    pub flow: Flow,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// Where `client_secret` was read from, shown by `check-config` instead of the secret.
    pub client_secret_file: Option<PathBuf>,
    /// The issuer (`oidc`).
    pub issuer: Option<String>,
    /// Whether the endpoints are to be read from the issuer's discovery document (OpenID
    /// Connect Discovery §4) before use: `oidc` with an issuer and no endpoint given. The
    /// endpoints below are then only the usual paths under the issuer, used should the
    /// document not name one.
    pub discover: bool,
    pub token_endpoint: String,
    /// Required for the device flow.
    pub device_authorization_endpoint: Option<String>,
    /// Required for the authorization-code flow.
    pub authorization_endpoint: Option<String>,
    pub scopes: Vec<String>,
    /// Trusted roots for the authorization server's TLS; the system's when `None`.
    pub ca_file: Option<PathBuf>,
    /// The tokens casemail keeps: `<state_dir>/oauth2-token.json`, mode 0600.
    pub token_file: PathBuf,
}

/// What a provider preset fills in.
pub(super) struct Preset {
    pub imap_host: Option<&'static str>,
    pub smtp_host: Option<&'static str>,
}

impl OAuth2 {
    pub(super) fn preset(&self) -> Preset {
        match self.provider {
            Provider::Microsoft { .. } => Preset {
                imap_host: Some("outlook.office365.com"),
                smtp_host: Some("smtp.office365.com"),
            },
            Provider::Google => Preset {
                imap_host: Some("imap.gmail.com"),
                smtp_host: Some("smtp.gmail.com"),
            },
            Provider::Oidc => Preset {
                imap_host: None,
                smtp_host: None,
            },
        }
    }
}

const FLOWS: &str = "\"device\", \"authorization_code\" or \"client_credentials\"";

pub(super) const SCHEMA: &[(&str, &str)] = &[
    ("provider", "\"microsoft\", \"google\" or \"oidc\""),
    ("tenant", "a Microsoft Entra tenant name or id"),
    ("flow", FLOWS),
    ("client_id", "the application (client) id"),
    ("client_secret", "a client secret"),
    ("client_secret_file", super::ABSOLUTE_PATH),
    ("issuer", "an https URL"),
    ("token_endpoint", "an https URL"),
    ("device_authorization_endpoint", "an https URL"),
    ("authorization_endpoint", "an https URL"),
    ("scopes", "a list of scopes"),
    ("ca_file", super::ABSOLUTE_PATH),
];

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawOAuth2 {
    provider: Option<String>,
    tenant: Option<String>,
    flow: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    client_secret_file: Option<String>,
    issuer: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    scopes: Option<StringList>,
    ca_file: Option<String>,
}

impl RawOAuth2 {
    fn is_empty(&self) -> bool {
        self.provider.is_none()
            && self.tenant.is_none()
            && self.flow.is_none()
            && self.client_id.is_none()
            && self.client_secret.is_none()
            && self.client_secret_file.is_none()
            && self.issuer.is_none()
            && self.token_endpoint.is_none()
            && self.device_authorization_endpoint.is_none()
            && self.authorization_endpoint.is_none()
            && self.scopes.is_none()
            && self.ca_file.is_none()
    }
}

/// Reads `imap.auth` or `smtp.auth`.
pub(super) fn auth_method(
    sources: &Sources<'_>,
    key: &str,
    value: Option<String>,
) -> Result<AuthMethod, Error> {
    match value.as_deref().map(str::trim) {
        None | Some("password") => Ok(AuthMethod::Password),
        Some("oauth2") => Ok(AuthMethod::OAuth2),
        Some(other) => Err(sources.error(
            key,
            format!("expected \"password\" or \"oauth2\", found {other:?}"),
        )),
    }
}

/// Validates `[oauth2]` when IMAP or SMTP uses it (`wanted_by` names the key that asks for it,
/// `None` when neither does). A filled-in `[oauth2]` that nothing uses is refused, so that a
/// forgotten `auth = "oauth2"` is noticed at once.
pub(super) fn validate(
    raw: RawOAuth2,
    sources: &Sources<'_>,
    wanted_by: Option<&str>,
    state_dir: &std::path::Path,
) -> Result<Option<OAuth2>, Error> {
    let Some(wanted_by) = wanted_by else {
        if raw.is_empty() {
            return Ok(None);
        }
        return Err(sources.error(
            "oauth2",
            "[oauth2] is set but neither imap.auth nor smtp.auth is \"oauth2\"",
        ));
    };
    let provider_name = raw.provider.ok_or_else(|| {
        sources.error(
            "oauth2.provider",
            format!(
                "missing required key: {wanted_by} is \"oauth2\", so set oauth2.provider to \
                 \"microsoft\", \"google\" or \"oidc\""
            ),
        )
    })?;
    if raw.tenant.is_some() && provider_name.trim() != "microsoft" {
        return Err(sources.error(
            "oauth2.tenant",
            "only the \"microsoft\" provider has a tenant",
        ));
    }
    let provider = match provider_name.trim() {
        "microsoft" => Provider::Microsoft {
            tenant: match raw.tenant {
                Some(tenant) => {
                    check_segment(&tenant)
                        .map_err(|reason| sources.error("oauth2.tenant", reason))?;
                    tenant
                }
                None => "organizations".to_owned(),
            },
        },
        "google" => Provider::Google,
        "oidc" => Provider::Oidc,
        other => {
            return Err(sources.error(
                "oauth2.provider",
                format!("expected \"microsoft\", \"google\" or \"oidc\", found {other:?}"),
            ));
        }
    };
    let flow = match raw.flow.as_deref().map(str::trim) {
        None if provider == Provider::Google => Flow::AuthorizationCode,
        None | Some("device") => Flow::Device,
        Some("client_credentials") => Flow::ClientCredentials,
        Some("authorization_code") => Flow::AuthorizationCode,
        Some(other) => {
            return Err(sources.error("oauth2.flow", format!("expected {FLOWS}, found {other:?}")));
        }
    };
    if provider == Provider::Google && flow != Flow::AuthorizationCode {
        return Err(sources.error(
            "oauth2.flow",
            "Google grants Gmail's scope only through flow = \"authorization_code\" (its \
             device flow and client credentials do not cover mail)",
        ));
    }
    let client_id = raw.client_id.ok_or_else(|| {
        sources.error(
            "oauth2.client_id",
            "missing required key: the application (client) id from the app registration",
        )
    })?;
    check_text(&client_id).map_err(|reason| sources.error("oauth2.client_id", reason))?;
    let (client_secret, client_secret_file) = match (raw.client_secret, raw.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(sources.error(
                "oauth2.client_secret",
                "set only one of oauth2.client_secret and oauth2.client_secret_file",
            ));
        }
        (Some(secret), None) => (
            Some(inline_password(sources, "oauth2.client_secret", secret)?),
            None,
        ),
        (None, Some(path)) => {
            let (path, secret) = read_password_file(sources, "oauth2.client_secret_file", &path)?;
            (Some(secret), Some(path))
        }
        (None, None) => (None, None),
    };
    if flow == Flow::ClientCredentials && client_secret.is_none() {
        return Err(sources.error(
            "oauth2.client_secret_file",
            "missing required key: flow = \"client_credentials\" signs in with the client \
             secret, so set oauth2.client_secret_file",
        ));
    }
    if provider == Provider::Google && client_secret.is_none() {
        return Err(sources.error(
            "oauth2.client_secret_file",
            "missing required key: Google's token endpoint wants the client secret of a \
             desktop app too, so set oauth2.client_secret_file",
        ));
    }

    let (preset_token, preset_device, preset_authorize) = match &provider {
        Provider::Microsoft { tenant } => {
            let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            (
                Some(format!("{base}/token")),
                Some(format!("{base}/devicecode")),
                Some(format!("{base}/authorize")),
            )
        }
        Provider::Google => (
            Some("https://oauth2.googleapis.com/token".to_owned()),
            None,
            Some("https://accounts.google.com/o/oauth2/v2/auth".to_owned()),
        ),
        Provider::Oidc => (None, None, None),
    };
    let issuer = raw
        .issuer
        .map(|issuer| endpoint(sources, "oauth2.issuer", issuer))
        .transpose()?;
    let discover = provider == Provider::Oidc
        && issuer.is_some()
        && raw.token_endpoint.is_none()
        && raw.device_authorization_endpoint.is_none()
        && raw.authorization_endpoint.is_none();
    let token_endpoint = match (raw.token_endpoint, preset_token, &issuer) {
        (Some(url), _, _) => endpoint(sources, "oauth2.token_endpoint", url)?,
        (None, Some(url), _) => url,
        // Replaced by what the discovery document says; the usual path until then.
        (None, None, Some(issuer)) => format!("{}/token", issuer.trim_end_matches('/')),
        (None, None, None) => {
            return Err(sources.error(
                "oauth2.token_endpoint",
                "missing required key: provider \"oidc\" needs oauth2.token_endpoint (or \
                 oauth2.issuer)",
            ));
        }
    };
    let device_authorization_endpoint = match (raw.device_authorization_endpoint, preset_device) {
        (Some(url), _) => Some(endpoint(
            sources,
            "oauth2.device_authorization_endpoint",
            url,
        )?),
        (None, Some(url)) => Some(url),
        (None, None) => issuer
            .as_ref()
            .map(|issuer| format!("{}/device_authorization", issuer.trim_end_matches('/'))),
    };
    let authorization_endpoint = match (raw.authorization_endpoint, preset_authorize) {
        (Some(url), _) => Some(endpoint(sources, "oauth2.authorization_endpoint", url)?),
        (None, Some(url)) => Some(url),
        (None, None) => issuer
            .as_ref()
            .map(|issuer| format!("{}/auth", issuer.trim_end_matches('/'))),
    };
    if flow == Flow::AuthorizationCode && authorization_endpoint.is_none() {
        return Err(sources.error(
            "oauth2.authorization_endpoint",
            "missing required key: flow = \"authorization_code\" with provider \"oidc\" \
             needs oauth2.authorization_endpoint (or oauth2.issuer)",
        ));
    }
    if flow == Flow::Device && device_authorization_endpoint.is_none() {
        return Err(sources.error(
            "oauth2.device_authorization_endpoint",
            "missing required key: flow = \"device\" with provider \"oidc\" needs \
             oauth2.device_authorization_endpoint (or oauth2.issuer)",
        ));
    }
    let scopes = match raw.scopes {
        Some(list) => {
            for scope in &list.0 {
                if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(sources.error(
                        "oauth2.scopes",
                        format!("{scope:?} is not a scope (no spaces; one scope per entry)"),
                    ));
                }
            }
            list.0
        }
        None => default_scopes(&provider, flow),
    };
    if scopes.is_empty() {
        return Err(sources.error(
            "oauth2.scopes",
            "provider \"oidc\" has no default scopes: list the ones the mail server wants",
        ));
    }
    let ca_file = ca_file(sources, "oauth2.ca_file", raw.ca_file)?;
    Ok(Some(OAuth2 {
        provider,
        flow,
        client_id,
        client_secret,
        client_secret_file,
        issuer,
        discover,
        token_endpoint,
        device_authorization_endpoint,
        authorization_endpoint,
        scopes,
        ca_file,
        token_file: state_dir.join(TOKEN_FILE),
    }))
}

/// The scopes each preset asks for: IMAP and SMTP in one token, and a refresh token where the
/// provider wants one asked for.
fn default_scopes(provider: &Provider, flow: Flow) -> Vec<String> {
    let scopes: &[&str] = match (provider, flow) {
        (Provider::Microsoft { .. }, Flow::Device) => &[
            "offline_access",
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
        ],
        (Provider::Microsoft { .. }, Flow::ClientCredentials) => {
            &["https://outlook.office365.com/.default"]
        }
        (Provider::Google, _) => &["https://mail.google.com/"],
        (Provider::Microsoft { .. }, Flow::AuthorizationCode) => &[
            "offline_access",
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
        ],
        (Provider::Oidc, _) => &[],
    };
    scopes.iter().map(|&scope| scope.to_owned()).collect()
}

/// An endpoint must be https, or http to a loopback address (a test server, or a local
/// proxy): tokens and the client secret travel in it.
fn endpoint(sources: &Sources<'_>, key: &str, url: String) -> Result<String, Error> {
    let url = url.trim().to_owned();
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !is_loopback_host(host) {
            return Err(sources.error(
                key,
                format!("{url:?} is plain http to a host that is not loopback: use https"),
            ));
        }
        rest
    } else {
        return Err(sources.error(key, format!("{url:?} is not an https URL")));
    };
    if rest.is_empty()
        || rest.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(sources.error(key, format!("{url:?} is not an https URL")));
    }
    Ok(url)
}

/// A tenant goes into a URL path: a name such as `charity.onmicrosoft.com`, a GUID, or
/// `organizations`.
fn check_segment(tenant: &str) -> Result<(), String> {
    if !tenant.is_empty()
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        Ok(())
    } else {
        Err(format!(
            "{tenant:?} is not a tenant name or id (such as \"charity.onmicrosoft.com\")"
        ))
    }
}

//! The effective configuration as `check-config` prints it, with every secret replaced.
//!
//! The printable [`View`] has the file's sections and keys but no field that could hold a
//! secret, so no serializer can ever see one.

use std::path::Path;

use serde::Serialize;

use super::values::{format_duration, format_size};
use super::{AuthMethod, Config, OAuth2, Provider};

/// What `check-config` prints in place of a secret.
const REDACTED: &str = "<redacted>";

impl Config {
    /// The effective configuration as TOML, in the file's own syntax, with secrets replaced by
    /// `"<redacted>"`. Feeding it back to [`load`](super::load) gives the same configuration, except that an
    /// inline password becomes the literal text `<redacted>`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string(&self.view())
            .expect("the view holds only strings, integers, booleans, lists and tables")
    }

    /// The same content as [`Config::redacted_toml`], as JSON.
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self.view())
            .expect("the view holds only strings, integers, booleans, lists and maps")
    }

    fn view(&self) -> View {
        let Config {
            source: _,
            helpdesk,
            imap,
            smtp,
            control,
            threading,
            auth,
            ingest,
            rota,
            loops,
            acknowledge,
            spam,
            reconcile,
            retention,
        } = self;
        View {
            helpdesk: HelpdeskView {
                address: helpdesk.address.clone(),
                name: helpdesk.name.clone(),
                state_dir: path_text(&helpdesk.state_dir),
                hide_names: helpdesk.hide_names.clone(),
            },
            imap: ImapView {
                host: imap.host.clone(),
                port: imap.port,
                security: imap.security.as_str(),
                auth: auth_name(imap.oauth2.as_ref()),
                username: imap.username.clone(),
                password: (imap.password.is_some() && imap.password_file.is_none())
                    .then_some(REDACTED),
                password_file: imap.password_file.as_deref().map(path_text),
                ca_file: imap.ca_file.as_deref().map(path_text),
                folders: imap.folders.clone(),
                junk_folders: imap.junk_folders.clone(),
                processed_folder: imap.processed_folder.clone().unwrap_or_default(),
                poll_interval: format_duration(imap.poll_interval),
                idle_timeout: format_duration(imap.idle_timeout),
                paused_folders: imap.paused_folders.clone(),
            },
            smtp: SmtpView {
                host: smtp.host.clone(),
                port: smtp.port,
                security: smtp.security.as_str(),
                auth: auth_name(smtp.oauth2.as_ref()),
                username: smtp.username.clone(),
                password: (smtp.password.is_some() && smtp.password_file.is_none())
                    .then_some(REDACTED),
                password_file: smtp.password_file.as_deref().map(path_text),
                ca_file: smtp.ca_file.as_deref().map(path_text),
            },
            oauth2: imap
                .oauth2
                .as_ref()
                .or(smtp.oauth2.as_ref())
                .map(OAuth2View::of),
            control: ControlView {
                socket: path_text(&control.socket),
                http: control.http.to_string(),
            },
            threading: ThreadingView {
                one_open_ticket_per_requester: threading.one_open_ticket_per_requester,
            },
            auth: super::auth::AuthView::of(auth),
            ingest: IngestView {
                max_attachment_size: format_size(ingest.max_attachment_size),
                first_run: ingest.first_run.as_str(),
                message_time_budget: format_duration(ingest.message_time_budget),
                max_attempts: ingest.max_attempts,
                batch_size: ingest.batch_size,
                max_message_size: format_size(ingest.max_message_size),
                fetch_bytes: format_size(ingest.fetch_bytes),
            },
            rota: RotaView {
                // Loaded by name, so the zone always has one.
                timezone: rota.timezone.iana_name().unwrap_or_default().to_owned(),
                answer_within: format_duration(rota.answer_within),
                digest_at: rota.digest_at.strftime("%H:%M").to_string(),
            },
            loops: super::loops::LoopsView::of(loops),
            acknowledge: super::loops::AcknowledgeView::of(acknowledge),
            spam: SpamView {
                threshold: spam.threshold,
                keep_for: format_duration(spam.keep_for),
                spamd: spam.spamd.map(|a| a.to_string()).unwrap_or_default(),
                spamd_timeout: format_duration(spam.spamd_timeout),
                allow_addresses: spam.allow_addresses.clone(),
                allow_domains: spam.allow_domains.clone(),
                classifier_weight: spam.classifier_weight,
                rules: spam.rules.iter().map(super::spam::RuleView::new).collect(),
            },
            reconcile: ReconcileView {
                every: reconcile
                    .every
                    .map_or_else(|| "0".to_owned(), format_duration),
            },
            retention: RetentionView {
                closed_after: retention
                    .closed_after
                    .map(format_duration)
                    .unwrap_or_default(),
            },
        }
    }
}

fn auth_name(oauth2: Option<&OAuth2>) -> &'static str {
    match oauth2 {
        Some(_) => AuthMethod::OAuth2.as_str(),
        None => AuthMethod::Password.as_str(),
    }
}

#[derive(Serialize)]
struct OAuth2View {
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    flow: &'static str,
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    token_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

impl OAuth2View {
    fn of(oauth2: &OAuth2) -> OAuth2View {
        OAuth2View {
            provider: oauth2.provider.as_str(),
            tenant: match &oauth2.provider {
                Provider::Microsoft { tenant } => Some(tenant.clone()),
                Provider::Google | Provider::Oidc => None,
            },
            flow: oauth2.flow.as_str(),
            client_id: oauth2.client_id.clone(),
            client_secret: (oauth2.client_secret.is_some() && oauth2.client_secret_file.is_none())
                .then_some(REDACTED),
            client_secret_file: oauth2.client_secret_file.as_deref().map(path_text),
            issuer: oauth2.issuer.clone(),
            token_endpoint: oauth2.token_endpoint.clone(),
            device_authorization_endpoint: oauth2.device_authorization_endpoint.clone(),
            authorization_endpoint: oauth2.authorization_endpoint.clone(),
            scopes: oauth2.scopes.clone(),
            ca_file: oauth2.ca_file.as_deref().map(path_text),
        }
    }
}

/// Paths in a config always started as UTF-8 strings, so the lossy conversion loses nothing.
fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The printable shape of a [`Config`]: the file's sections and keys, secrets already replaced.
#[derive(Serialize)]
struct View {
    helpdesk: HelpdeskView,
    imap: ImapView,
    smtp: SmtpView,
    #[serde(skip_serializing_if = "Option::is_none")]
    oauth2: Option<OAuth2View>,
    control: ControlView,
    threading: ThreadingView,
    auth: super::auth::AuthView,
    ingest: IngestView,
    rota: RotaView,
    loops: super::loops::LoopsView,
    acknowledge: super::loops::AcknowledgeView,
    spam: SpamView,
    reconcile: ReconcileView,
    retention: RetentionView,
}

#[derive(Serialize)]
struct ReconcileView {
    every: String,
}

#[derive(Serialize)]
struct RetentionView {
    closed_after: String,
}

#[derive(Serialize)]
struct HelpdeskView {
    address: String,
    name: String,
    state_dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hide_names: Vec<String>,
}

#[derive(Serialize)]
struct ImapView {
    host: String,
    port: u16,
    security: &'static str,
    auth: &'static str,
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    folders: Vec<String>,
    junk_folders: Vec<String>,
    processed_folder: String,
    poll_interval: String,
    idle_timeout: String,
    paused_folders: Vec<String>,
}

#[derive(Serialize)]
struct SmtpView {
    host: String,
    port: u16,
    security: &'static str,
    auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

#[derive(Serialize)]
struct ControlView {
    socket: String,
    http: String,
}

#[derive(Serialize)]
struct ThreadingView {
    one_open_ticket_per_requester: bool,
}

#[derive(Serialize)]
struct IngestView {
    max_attachment_size: String,
    first_run: &'static str,
    message_time_budget: String,
    max_attempts: u32,
    batch_size: u32,
    max_message_size: String,
    fetch_bytes: String,
}

#[derive(Serialize)]
struct RotaView {
    timezone: String,
    answer_within: String,
    digest_at: String,
}

#[derive(Serialize)]
struct SpamView {
    threshold: f64,
    keep_for: String,
    spamd: String,
    spamd_timeout: String,
    allow_addresses: Vec<String>,
    allow_domains: Vec<String>,
    classifier_weight: f64,
    rules: Vec<super::spam::RuleView>,
}

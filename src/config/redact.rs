//! The effective configuration as `check-config` prints it, with every secret replaced.
//!
//! The printable [`View`] has the file's sections and keys but no field that could hold a
//! secret, so no serializer can ever see one.

use std::path::Path;

use serde::Serialize;

use super::Config;
use super::values::{format_duration, format_size};

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
                username: imap.username.clone(),
                password: imap.password_file.is_none().then_some(REDACTED),
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
                username: smtp.username.clone(),
                password: (smtp.password.is_some() && smtp.password_file.is_none())
                    .then_some(REDACTED),
                password_file: smtp.password_file.as_deref().map(path_text),
                ca_file: smtp.ca_file.as_deref().map(path_text),
            },
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
                timezone: rota.timezone.clone(),
                answer_within: format_duration(rota.answer_within),
                digest_at: format!("{:02}:{:02}", rota.digest_at.0, rota.digest_at.1),
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

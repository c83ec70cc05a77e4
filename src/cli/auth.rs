//! `casemail auth login` and `casemail auth status`: the terminal side of the OAuth 2.0
//! sign-in. The sign-in itself is in `oauth`.
//!
//! Neither goes through the control socket: the token file in the state directory is what the
//! daemon reads at every connection, so writing it is how a running daemon learns of a new
//! sign-in.

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use jiff::Timestamp;
use serde::Serialize;

use super::AuthCommand;
use crate::config::{Config, OAuth2, Provider};
use crate::oauth::{self, LoginPrompt};

pub(super) fn run(config: &Config, command: &AuthCommand) -> anyhow::Result<()> {
    let oauth2 = config
        .imap
        .oauth2
        .as_ref()
        .or(config.smtp.oauth2.as_ref())
        .with_context(|| {
            format!(
                "{}: neither imap.auth nor smtp.auth is \"oauth2\", so there is nothing to sign \
                 in to",
                config.source.display()
            )
        })?;
    match command {
        AuthCommand::Login => login(config, oauth2),
        AuthCommand::Status(flag) => {
            // The endpoints an issuer publishes, when it is to be asked; offline, the configured
            // ones, which still tell whether anyone signed in.
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let resolved = runtime
                .block_on(oauth::resolve(oauth2))
                .unwrap_or_else(|_| oauth2.clone());
            let status = Status::read(config, &resolved, Timestamp::now())?;
            let mut stdout = std::io::stdout().lock();
            if flag.json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&status)?)?;
            } else {
                write!(stdout, "{}", status.text())?;
            }
            Ok(())
        }
    }
}

fn login(config: &Config, oauth2: &OAuth2) -> anyhow::Result<()> {
    if let Some(parent) = oauth2.token_file.parent()
        && !parent.is_dir()
    {
        anyhow::bail!(
            "the state directory {} does not exist yet: start casemail once, or create it \
             (owned by the casemail user, mode 0700)",
            parent.display()
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut prompt = Terminal;
    let signed = runtime
        .block_on(oauth::login(oauth2, &mut prompt))
        .context("sign-in failed")?;
    let mut stdout = std::io::stdout().lock();
    let who = signed
        .account
        .clone()
        .unwrap_or_else(|| crate::mail::sanitize::for_terminal(&config.imap.username));
    writeln!(stdout, "signed in as {who}")?;
    if let Some(scope) = &signed.scope {
        writeln!(
            stdout,
            "scopes: {}",
            crate::mail::sanitize::for_terminal(scope)
        )?;
    }
    if let Some(expires) = signed.expires {
        writeln!(
            stdout,
            "the access token expires at {expires}; casemail renews it by itself"
        )?;
    }
    writeln!(
        stdout,
        "tokens saved in {}; a running daemon uses them from its next connection",
        oauth2.token_file.display()
    )?;
    Ok(())
}

/// The terminal: instructions on stdout, the pasted address from stdin.
struct Terminal;

impl LoginPrompt for Terminal {
    fn device_code(
        &mut self,
        verification_uri: &str,
        verification_uri_complete: Option<&str>,
        user_code: &str,
        expires: Timestamp,
    ) {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout leaves nobody to read the code; polling still ends at `expires`.
        let _ = writeln!(
            stdout,
            "To sign in, open {verification_uri} on any device (a phone will do) and enter the \
             code\n\n    {user_code}\n\nThe code is valid until {expires}."
        );
        if let Some(complete) = verification_uri_complete {
            let _ = writeln!(stdout, "Or open {complete}, which holds the code.");
        }
        let _ = writeln!(stdout, "Waiting for the sign-in…");
        let _ = stdout.flush();
    }

    fn authorization_redirect(&mut self, url: &str) -> Result<String, oauth::Error> {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "Open this address in any browser and sign in as the shared mailbox:\n\n{url}\n\n\
             After you allow access the browser goes to http://localhost/… and shows an error: \
             that is expected.\nCopy the whole address from the browser's address bar and paste \
             it here:"
        );
        let _ = stdout.flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|err| oauth::Error::Login(format!("cannot read the pasted address: {err}")))?;
        Ok(line)
    }
}

/// What `auth status` prints (`--json` is this, serialised).
#[derive(Debug, Serialize)]
pub(super) struct Status {
    pub provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub flow: &'static str,
    pub client_id: String,
    pub token_endpoint: String,
    /// "imap", "smtp" or both.
    pub used_by: Vec<&'static str>,
    /// `signed_in`, `not_signed_in`, `refused` or `other_application`.
    pub state: &'static str,
    pub account: Option<String>,
    pub scopes: Option<String>,
    pub signed_in: Option<Timestamp>,
    pub refreshed: Option<Timestamp>,
    pub access_token_expires: Option<Timestamp>,
    pub access_token_valid: bool,
    pub refresh_token: bool,
    pub refused: Option<oauth::Refusal>,
    pub token_file: String,
}

impl Status {
    pub(super) fn read(config: &Config, oauth2: &OAuth2, now: Timestamp) -> anyhow::Result<Status> {
        let stored = oauth::read(&oauth2.token_file)?;
        let matching = stored
            .as_ref()
            .filter(|stored| oauth::belongs_to(stored, oauth2));
        let state = match (&stored, matching) {
            (None, _) => "not_signed_in",
            (Some(_), None) => "other_application",
            (Some(_), Some(stored)) if stored.refused.is_some() => "refused",
            (Some(_), Some(stored))
                if stored.refresh_token.is_none() && stored.access_token.is_none() =>
            {
                "not_signed_in"
            }
            (Some(_), Some(_)) => "signed_in",
        };
        let mut used_by = Vec::new();
        if config.imap.oauth2.is_some() {
            used_by.push("imap");
        }
        if config.smtp.oauth2.is_some() {
            used_by.push("smtp");
        }
        Ok(Status {
            provider: oauth2.provider.as_str(),
            tenant: match &oauth2.provider {
                Provider::Microsoft { tenant } => Some(tenant.clone()),
                Provider::Google | Provider::Oidc => None,
            },
            flow: oauth2.flow.as_str(),
            client_id: oauth2.client_id.clone(),
            token_endpoint: oauth2.token_endpoint.clone(),
            used_by,
            state,
            account: matching.and_then(|s| s.account.clone()),
            scopes: matching.and_then(|s| s.scope.clone()),
            signed_in: matching.and_then(|s| s.signed_in),
            refreshed: matching.and_then(|s| s.refreshed),
            access_token_expires: matching.and_then(|s| s.access_expires),
            access_token_valid: matching.is_some_and(|s| {
                s.access_token.is_some() && s.access_expires.is_some_and(|at| at > now)
            }),
            refresh_token: matching.is_some_and(|s| s.refresh_token.is_some()),
            refused: matching.and_then(|s| s.refused.clone()),
            token_file: oauth2.token_file.to_string_lossy().into_owned(),
        })
    }

    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, name: &str, value: &str| {
            out.push_str(&format!("{name:<22}{value}\n"));
        };
        let when = |at: Option<Timestamp>| at.map_or_else(|| "-".to_owned(), |at| at.to_string());
        let state = match self.state {
            "signed_in" => "signed in".to_owned(),
            "not_signed_in" => "not signed in: run `casemail auth login`".to_owned(),
            "other_application" => {
                "the token file is for another client or server: run `casemail auth login`"
                    .to_owned()
            }
            _ => match &self.refused {
                Some(refusal) => format!(
                    "refused since {}: {}; run `casemail auth login`",
                    refusal.at,
                    crate::mail::sanitize::for_terminal(&refusal.reason)
                ),
                None => "refused: run `casemail auth login`".to_owned(),
            },
        };
        line(&mut out, "state:", &state);
        let provider = match &self.tenant {
            Some(tenant) => format!("{} (tenant {tenant})", self.provider),
            None => self.provider.to_owned(),
        };
        line(&mut out, "provider:", &provider);
        line(&mut out, "flow:", self.flow);
        line(&mut out, "client id:", &self.client_id);
        line(&mut out, "used by:", &self.used_by.join(", "));
        line(
            &mut out,
            "account:",
            &self
                .account
                .as_deref()
                .map_or_else(|| "-".to_owned(), crate::mail::sanitize::for_terminal),
        );
        line(
            &mut out,
            "scopes:",
            &self
                .scopes
                .as_deref()
                .map_or_else(|| "-".to_owned(), crate::mail::sanitize::for_terminal),
        );
        line(&mut out, "signed in:", &when(self.signed_in));
        line(&mut out, "last renewed:", &when(self.refreshed));
        let access = match (self.access_token_expires, self.access_token_valid) {
            (Some(at), true) => format!("valid until {at}"),
            (Some(at), false) => format!("expired at {at}; renewed at the next connection"),
            (None, _) => "none; one is fetched at the next connection".to_owned(),
        };
        line(&mut out, "access token:", &access);
        let refresh = if self.refresh_token {
            "kept"
        } else if self.flow == "client_credentials" {
            "none (client credentials need none)"
        } else {
            "none"
        };
        line(&mut out, "refresh token:", refresh);
        line(&mut out, "token file:", &self.token_file);
        out
    }
}

//! The lettre transport: TLS (implicit, STARTTLS or none on loopback), the trusted roots, AUTH
//! with a password or XOAUTH2, and keeping the OAuth 2.0 sign-in of the relay current.

use std::path::Path;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::ExposeSecret as _;
use tracing::warn;

use super::{CONNECT_TIMEOUT, Error, Relay, Transport};
use crate::config::{self, Security};

/// Builds the SMTP transport for `config`: implicit TLS (`tls`), STARTTLS that must succeed
/// (`starttls`) or no TLS (`plain`, which config validation allows towards loopback only).
/// `ca_file`, when given, is the only trusted root; otherwise the system's roots are. `AUTH`
/// is used when a username and password are set. `hello_name` is the name sent with EHLO; with
/// `None` lettre sends the address literal `[127.0.0.1]`.
pub fn transport(config: &config::Smtp, hello_name: Option<&str>) -> Result<Transport, Error> {
    transport_signed_in(config, hello_name, None)
}

/// [`transport`], signing in with XOAUTH2 and `access_token` when one is given (`auth =
/// "oauth2"`; lettre offers no OAUTHBEARER). The token changes, so the relay builds a new
/// transport whenever it gets a new token.
pub fn transport_signed_in(
    config: &config::Smtp,
    hello_name: Option<&str>,
    access_token: Option<&crate::oauth::AccessToken>,
) -> Result<Transport, Error> {
    let tls = match config.security {
        Security::Plain => Tls::None,
        Security::Tls => Tls::Wrapper(tls_parameters(&config.host, config.ca_file.as_deref())?),
        Security::StartTls => {
            Tls::Required(tls_parameters(&config.host, config.ca_file.as_deref())?)
        }
    };
    // "Dangerous" only means lettre picks no TLS mode by itself; `tls` always sets one here.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
        .port(config.port)
        .tls(tls)
        .timeout(Some(CONNECT_TIMEOUT));
    if let Some(name) = hello_name {
        builder = builder.hello_name(ClientId::Domain(name.to_owned()));
    }
    if let (Some(username), Some(token)) = (&config.username, access_token) {
        builder = builder
            .credentials(Credentials::new(
                username.clone(),
                token.secret.expose_secret().to_owned(),
            ))
            .authentication(vec![Mechanism::Xoauth2]);
    }
    // Config validation insists on both halves; with either missing there is no login.
    if let (Some(username), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(
            username.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, Error> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let setup = |reason: String| Error::Setup { reason };
        let pem = std::fs::read(path)
            .map_err(|err| setup(format!("cannot read ca_file {}: {err}", path.display())))?;
        let mut found = 0_usize;
        builder = builder.certificate_store(CertificateStore::None);
        for der in rustls_pemfile::certs(&mut pem.as_slice()) {
            let der =
                der.map_err(|err| setup(format!("bad PEM in ca_file {}: {err}", path.display())))?;
            let certificate = Certificate::from_der(der.to_vec()).map_err(|err| {
                setup(format!(
                    "bad certificate in ca_file {}: {err}",
                    path.display()
                ))
            })?;
            builder = builder.add_root_certificate(certificate);
            found += 1;
        }
        if found == 0 {
            return Err(setup(format!(
                "ca_file {} holds no certificate",
                path.display()
            )));
        }
    }
    builder.build_rustls().map_err(|err| Error::Setup {
        reason: format!("tls setup for {host} failed: {err}"),
    })
}

impl Relay {
    /// Makes sure the transport signs in with a current access token; the reason when there
    /// is none to be had, which defers every due message like a server that is down.
    pub(super) async fn renew_sign_in(&mut self) -> Option<String> {
        let (config, current) = self.sign_in.as_mut()?;
        let oauth2 = config.oauth2.as_ref()?;
        let token = match crate::oauth::access_token(oauth2).await {
            Ok(token) => token,
            Err(err) => return Some(format!("{:#}", anyhow::Error::from(err))),
        };
        let unchanged = current
            .as_ref()
            .is_some_and(|now| now.secret.expose_secret() == token.secret.expose_secret());
        if !unchanged {
            match transport_signed_in(config, None, Some(&token)) {
                Ok(transport) => self.transport = transport,
                Err(err) => return Some(err.to_string()),
            }
            *current = Some(token);
        }
        None
    }

    /// After the server refused the session, the token may be the reason: the next step asks
    /// for a new one.
    pub(super) async fn distrust_token(&mut self) {
        if let Some((config, Some(token))) = &self.sign_in
            && let Some(oauth2) = &config.oauth2
            && let Err(err) = crate::oauth::invalidate(oauth2, token).await
        {
            warn!(error = %format!("{:#}", anyhow::Error::from(err)), "Cannot mark the access token as refused.");
        }
    }
}

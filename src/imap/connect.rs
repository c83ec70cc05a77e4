//! Connecting and logging in: TLS, STARTTLS or plaintext on loopback, then a password login
//! or an OAuth 2.0 sign-in (OAUTHBEARER or XOAUTH2).

use std::fmt;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tracing::debug;

use super::{COMMAND_TIMEOUT, Error, ImapIo, Session, timed};
use crate::config::{self, Security};

/// The TLS connector for `host`, with its errors named after the host.
pub(crate) fn tls_connector(
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<TlsConnector, Error> {
    crate::tls::connector(ca_file).map_err(|reason| Error::Tls {
        host: host.to_owned(),
        reason,
    })
}

async fn tls_wrap<S: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug + 'static>(
    stream: S,
    config: &config::Imap,
) -> Result<Box<dyn ImapIo>, Error> {
    let connector = tls_connector(&config.host, config.ca_file.as_deref())?;
    let name =
        rustls::pki_types::ServerName::try_from(config.host.clone()).map_err(|e| Error::Tls {
            host: config.host.clone(),
            reason: e.to_string(),
        })?;
    let tls = timed(connector.connect(name, stream))
        .await
        .map_err(|e| match e {
            Error::Io(io) => Error::Tls {
                host: config.host.clone(),
                reason: io.to_string(),
            },
            other => other,
        })?;
    Ok(Box::new(tls))
}

/// Connects and logs in.
pub(crate) async fn connect(config: &config::Imap) -> Result<Session, Error> {
    let network = |source| Error::Network {
        host: config.host.clone(),
        port: config.port,
        source,
    };
    let tcp = timed(TcpStream::connect((config.host.as_str(), config.port)))
        .await
        .map_err(|e| match e {
            Error::Io(io) => network(io),
            other => other,
        })?;
    tcp.set_nodelay(true).map_err(network)?;
    let mut mechanisms = Vec::new();
    let stream: Box<dyn ImapIo> = match config.security {
        Security::Tls => tls_wrap(tcp, config).await?,
        Security::Plain => Box::new(tcp),
        Security::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            mechanisms = read_greeting(&mut client).await?;
            timed(client.run_command_and_check_ok("STARTTLS", None)).await?;
            tls_wrap(client.into_inner(), config).await?
        }
    };
    let mut client = async_imap::Client::new(stream);
    if config.security != Security::StartTls {
        mechanisms = read_greeting(&mut client).await?;
    }
    if let Some(oauth2) = &config.oauth2 {
        return sign_in(client, config, oauth2, &mechanisms).await;
    }
    use secrecy::ExposeSecret as _;
    let password = config.password.as_ref().map_or("", |p| p.expose_secret());
    let login = client.login(&config.username, password);
    match tokio::time::timeout(COMMAND_TIMEOUT, login).await {
        Err(_) => Err(Error::Timeout(COMMAND_TIMEOUT)),
        Ok(Err((err, _client))) => Err(Error::Auth {
            username: config.username.clone(),
            reason: err.to_string(),
        }),
        Ok(Ok(session)) => {
            debug!(host = %config.host, "IMAP login succeeded.");
            Ok(session)
        }
    }
}

/// Reads the greeting; returns the SASL mechanisms it advertises (`AUTH=…` in a CAPABILITY
/// response code, as Dovecot and Gmail send), empty when it names none.
async fn read_greeting<T: ImapIo>(
    client: &mut async_imap::Client<T>,
) -> Result<Vec<String>, Error> {
    use async_imap::imap_proto::{Capability, Response, ResponseCode};
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Err(_) => Err(Error::Timeout(COMMAND_TIMEOUT)),
        Ok(None) => Err(Error::Protocol(async_imap::error::Error::ConnectionLost)),
        Ok(Some(Err(io))) => Err(Error::Protocol(io.into())),
        Ok(Some(Ok(greeting))) => Ok(match greeting.parsed() {
            Response::Data {
                code: Some(ResponseCode::Capabilities(capabilities)),
                ..
            } => capabilities
                .iter()
                .filter_map(|capability| match capability {
                    Capability::Auth(mechanism) => Some(mechanism.to_ascii_uppercase()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }),
    }
}

/// The SASL exchange for OAuth 2.0: the initial response first, then an empty or `\x01`
/// answer to the server's error challenge so that it can finish with NO.
struct OAuthAuthenticator {
    initial: Vec<u8>,
    acknowledgement: Vec<u8>,
    sent_initial: bool,
}

impl async_imap::Authenticator for &mut OAuthAuthenticator {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        if self.sent_initial {
            self.acknowledgement.clone()
        } else {
            self.sent_initial = true;
            self.initial.clone()
        }
    }
}

/// Signs in with an OAuth 2.0 access token: OAUTHBEARER (RFC 7628) when the greeting offers
/// it, XOAUTH2 otherwise (Microsoft 365 offers only that). A refused token is invalidated and
/// the sign-in tried once more with a fresh one on the same connection, so an access token
/// revoked or expired early costs no reconnect.
async fn sign_in(
    mut client: async_imap::Client<Box<dyn ImapIo>>,
    config: &config::Imap,
    oauth2: &config::OAuth2,
    mechanisms: &[String],
) -> Result<Session, Error> {
    use crate::oauth::Mechanism;
    let mechanism = if mechanisms.iter().any(|m| m == "OAUTHBEARER") {
        Mechanism::OAuthBearer
    } else {
        Mechanism::XOAuth2
    };
    let mut last_refusal = String::new();
    for attempt in 0..2 {
        let token = crate::oauth::access_token(oauth2).await?;
        let mut authenticator = OAuthAuthenticator {
            initial: mechanism.initial_response(
                &config.username,
                &config.host,
                config.port,
                &token,
            ),
            acknowledgement: mechanism.error_acknowledgement(),
            sent_initial: false,
        };
        let login = client.authenticate(mechanism.as_str(), &mut authenticator);
        match tokio::time::timeout(COMMAND_TIMEOUT, login).await {
            Err(_) => return Err(Error::Timeout(COMMAND_TIMEOUT)),
            Ok(Ok(session)) => {
                debug!(host = %config.host, mechanism = mechanism.as_str(), "IMAP sign-in succeeded.");
                return Ok(session);
            }
            Ok(Err((err, returned))) => {
                last_refusal = err.to_string();
                client = returned;
                if attempt == 0 {
                    crate::oauth::invalidate(oauth2, &token).await?;
                }
            }
        }
    }
    Err(Error::Auth {
        username: config.username.clone(),
        reason: format!(
            "{} refused a fresh access token: {last_refusal}",
            mechanism.as_str()
        ),
    })
}

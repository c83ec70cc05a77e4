//! Sending mail into the bench's Postfix through lettre, one connection per message.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::{Bench, HOST, Security};

/// Generous, so a slow CI machine fails on an assertion rather than on a timeout.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Bench {
    /// Sends `raw` over plain SMTP, with the given envelope. An empty `envelope_from` is the null
    /// sender (`MAIL FROM:<>`), as bounces use.
    ///
    /// A message that ends with CRLF is stored byte for byte (after the trace headers the
    /// servers prepend); one that does not gets a final CRLF, as SMTP requires.
    ///
    /// Succeeds only when Postfix answers 250 to the end of data. A refusal comes back as a
    /// `lettre::transport::smtp::Error` inside the `anyhow::Error`, for `downcast_ref`.
    pub(crate) async fn send_mail(
        &self,
        envelope_from: &str,
        to: &[&str],
        raw: &[u8],
    ) -> anyhow::Result<()> {
        self.send_mail_via(Security::Plain, envelope_from, to, raw)
            .await
    }

    /// [`Bench::send_mail`] over STARTTLS or implicit TLS, trusting the bench's certificate.
    pub(crate) async fn send_mail_via(
        &self,
        security: Security,
        envelope_from: &str,
        to: &[&str],
        raw: &[u8],
    ) -> anyhow::Result<()> {
        let from = if envelope_from.is_empty() {
            None
        } else {
            Some(
                envelope_from
                    .parse::<Address>()
                    .with_context(|| format!("envelope sender {envelope_from:?}"))?,
            )
        };
        let recipients = to
            .iter()
            .map(|address| {
                address
                    .parse::<Address>()
                    .with_context(|| format!("envelope recipient {address:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let envelope = Envelope::new(from, recipients).context("build the SMTP envelope")?;

        let endpoint = self.smtp_endpoint_for(security);
        let tls = match security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(self.smtp_tls_parameters()?),
            Security::Tls => Tls::Wrapper(self.smtp_tls_parameters()?),
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&endpoint.host)
            .port(endpoint.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        // lettre ends DATA with CRLF "." CRLF whatever the message ends with, so a message's own
        // final CRLF would become an extra empty line.
        let data = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        let response = transport
            .send_raw(&envelope, data)
            .await
            .with_context(|| format!("send mail to {to:?} through Postfix at {endpoint}"))?;
        let code = response.code().to_string();
        ensure!(
            code == "250",
            "Postfix at {endpoint} answered {code} instead of 250: {:?}",
            response.message().collect::<Vec<_>>()
        );
        Ok(())
    }

    fn smtp_tls_parameters(&self) -> anyhow::Result<TlsParameters> {
        let pem = std::fs::read(self.ca_file()).context("read the bench certificate")?;
        TlsParameters::builder(HOST.to_owned())
            .certificate_store(CertificateStore::None)
            .add_root_certificate(
                Certificate::from_pem(&pem).context("parse the bench certificate")?,
            )
            .build_rustls()
            .context("configure TLS for SMTP")
    }
}

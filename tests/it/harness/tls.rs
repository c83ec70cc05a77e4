//! The bench's TLS certificate, made per bench with the `openssl` tool, and the client side
//! that trusts it.
//!
//! The certificate is self-signed for `localhost` and 127.0.0.1 and marked as no CA
//! (`CA:FALSE`), because webpki refuses a CA certificate presented as a server's own. Clients
//! put it in an otherwise empty root store.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::{HOST, process};

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = subject
prompt = no
x509_extensions = server

[subject]
CN = localhost

[server]
basicConstraints = critical, CA:FALSE
subjectAltName = DNS:localhost, IP:127.0.0.1
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
";

fn dir(root: &Path) -> PathBuf {
    root.join("tls")
}

pub(super) fn cert_path(root: &Path) -> PathBuf {
    dir(root).join("cert.pem")
}

pub(super) fn key_path(root: &Path) -> PathBuf {
    dir(root).join("key.pem")
}

/// Makes a fresh P-256 key and certificate; the servers read both as root before they drop
/// privileges, so the key stays readable by root only.
pub(super) fn generate(root: &Path) -> anyhow::Result<()> {
    let dir = dir(root);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let config = dir.join("openssl.cnf");
    std::fs::write(&config, OPENSSL_CONFIG)
        .with_context(|| format!("write {}", config.display()))?;
    process::run(
        Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "30"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-config")
            .arg(&config)
            .arg("-keyout")
            .arg(key_path(root))
            .arg("-out")
            .arg(cert_path(root)),
    )
    .context("make the bench certificate with openssl")
}

/// A TLS client that trusts exactly the bench's certificate.
#[derive(Clone)]
pub(super) struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    pub(super) fn load(root: &Path) -> anyhow::Result<ClientTls> {
        let path = cert_path(root);
        let file = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        let mut roots = RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
            let cert = cert.with_context(|| format!("parse {}", path.display()))?;
            roots.add(cert).context("trust the bench certificate")?;
        }
        ensure!(!roots.is_empty(), "{} holds no certificate", path.display());
        // The provider is named explicitly rather than installed process-wide, so nothing
        // depends on which crate happens to install a default first.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choose TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    pub(super) fn connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::clone(&self.config))
    }

    /// The name clients verify: the bench's IP address, which the certificate lists.
    pub(super) fn server_name() -> ServerName<'static> {
        ServerName::try_from(HOST).expect("HOST is an IP address literal")
    }
}

//! IMAP helpers on the bench: log in over plain, STARTTLS or implicit TLS, and append, list and
//! manage folders. Every call opens and closes its own connection.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use async_imap::types::{Fetch, Flag};
use async_imap::{Client, Session};
use futures::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tls::ClientTls;
use super::{Account, Bench, POLL_INTERVAL, Security};

/// How often [`Bench::wait_for_mail`] nudges Postfix to retry deferred mail while it waits.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A byte stream an IMAP session can run over: a TCP stream, or TLS over one.
pub(crate) trait ImapTransport: AsyncRead + AsyncWrite + Unpin + Send + Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapTransport for T {}

/// A logged-in IMAP session on the bench's Dovecot, for tests that need commands the helpers
/// do not offer.
pub(crate) type ImapSession = Session<Box<dyn ImapTransport>>;

/// One message as a folder holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FetchedMail {
    pub uid: u32,
    /// System flags as IMAP spells them (`\Seen`) and keywords as set. `\Recent` is left out:
    /// which session sees it depends on timing, so no test can rely on it.
    pub flags: Vec<String>,
    /// The message exactly as Dovecot returns it, including the trace headers added on delivery.
    pub raw: Vec<u8>,
}

impl FetchedMail {
    /// Whether the message's bytes contain `needle`, which keeps assertions short.
    pub(crate) fn contains(&self, needle: &str) -> bool {
        let needle = needle.as_bytes();
        !needle.is_empty()
            && self
                .raw
                .windows(needle.len())
                .any(|window| window == needle)
    }
}

impl Bench {
    /// Connects and reads the greeting, upgrading with STARTTLS when asked, but does not log in.
    pub(crate) async fn imap_client(
        &self,
        security: Security,
    ) -> anyhow::Result<Client<Box<dyn ImapTransport>>> {
        let endpoint = self.imap_endpoint_for(security);
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .with_context(|| format!("connect to IMAP at {endpoint}"))?;
        let transport: Box<dyn ImapTransport> = match security {
            Security::Plain => Box::new(tcp),
            Security::Tls => Box::new(tls_handshake(&self.tls, tcp).await?),
            Security::StartTls => {
                let mut client = Client::new(tcp);
                read_greeting(&mut client).await?;
                client
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .with_context(|| format!("STARTTLS at {endpoint}"))?;
                // RFC 3501 §6.2.1: no greeting follows the TLS negotiation.
                let tls = tls_handshake(&self.tls, client.into_inner()).await?;
                return Ok(Client::new(Box::new(tls)));
            }
        };
        let mut client = Client::new(transport);
        read_greeting(&mut client).await?;
        Ok(client)
    }

    /// Logs in as `account`.
    pub(crate) async fn imap_session(
        &self,
        account: &Account,
        security: Security,
    ) -> anyhow::Result<ImapSession> {
        let client = self.imap_client(security).await?;
        client
            .login(&account.username, &account.password)
            .await
            .map_err(|(err, _client)| err)
            .with_context(|| format!("IMAP login as {} ({security:?})", account.username))
    }

    /// Appends `raw` to `folder` with `flags` (such as `\Seen` or a keyword), creating the folder
    /// if it is missing.
    pub(crate) async fn append(
        &self,
        account: &Account,
        folder: &str,
        raw: &[u8],
        flags: &[&str],
    ) -> anyhow::Result<()> {
        let mut session = self.imap_session(account, Security::Plain).await?;
        ensure_folder(&mut session, folder).await?;
        let flags = (!flags.is_empty()).then(|| format!("({})", flags.join(" ")));
        session
            .append(folder, flags.as_deref(), None, raw)
            .await
            .with_context(|| format!("APPEND to {folder} for {}", account.address))?;
        logout(session).await
    }

    pub(crate) async fn create_folder(
        &self,
        account: &Account,
        folder: &str,
    ) -> anyhow::Result<()> {
        let mut session = self.imap_session(account, Security::Plain).await?;
        session
            .create(folder)
            .await
            .with_context(|| format!("CREATE {folder} for {}", account.address))?;
        logout(session).await
    }

    /// Deletes `folder` and its messages; recreating it gives it a new UIDVALIDITY.
    pub(crate) async fn delete_folder(
        &self,
        account: &Account,
        folder: &str,
    ) -> anyhow::Result<()> {
        let mut session = self.imap_session(account, Security::Plain).await?;
        session
            .delete(folder)
            .await
            .with_context(|| format!("DELETE {folder} for {}", account.address))?;
        logout(session).await
    }

    /// The names of all of `account`'s folders, sorted.
    pub(crate) async fn folders(&self, account: &Account) -> anyhow::Result<Vec<String>> {
        let mut session = self.imap_session(account, Security::Plain).await?;
        let mut names: Vec<String> = session
            .list(Some(""), Some("*"))
            .await
            .context("LIST")?
            .map_ok(|name| name.name().to_owned())
            .try_collect()
            .await
            .with_context(|| format!("LIST folders of {}", account.address))?;
        names.sort();
        logout(session).await?;
        Ok(names)
    }

    /// The folder's UIDVALIDITY (RFC 3501 §2.3.1.1).
    pub(crate) async fn uidvalidity(&self, account: &Account, folder: &str) -> anyhow::Result<u32> {
        let mut session = self.imap_session(account, Security::Plain).await?;
        let mailbox = session
            .examine(folder)
            .await
            .with_context(|| format!("EXAMINE {folder} for {}", account.address))?;
        logout(session).await?;
        mailbox
            .uid_validity
            .with_context(|| format!("Dovecot sent no UIDVALIDITY for {folder}"))
    }

    /// Every message in `folder`, by UID, over plain IMAP. Read-only: flags stay as they are.
    pub(crate) async fn list(
        &self,
        account: &Account,
        folder: &str,
    ) -> anyhow::Result<Vec<FetchedMail>> {
        self.list_via(Security::Plain, account, folder).await
    }

    /// [`Bench::list`] over the given kind of connection.
    pub(crate) async fn list_via(
        &self,
        security: Security,
        account: &Account,
        folder: &str,
    ) -> anyhow::Result<Vec<FetchedMail>> {
        let mut session = self.imap_session(account, security).await?;
        // EXAMINE rather than SELECT, so listing neither clears \Recent nor changes anything.
        let mailbox = session
            .examine(folder)
            .await
            .with_context(|| format!("EXAMINE {folder} for {}", account.address))?;
        let mut mails = Vec::new();
        if mailbox.exists > 0 {
            let fetches: Vec<Fetch> = session
                .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
                .await
                .with_context(|| format!("UID FETCH in {folder}"))?
                .try_collect()
                .await
                .with_context(|| format!("read UID FETCH results in {folder}"))?;
            for fetch in &fetches {
                mails.push(fetched_mail(fetch)?);
            }
        }
        logout(session).await?;
        mails.sort_by_key(|mail| mail.uid);
        Ok(mails)
    }

    /// Waits until `folder` holds at least `count` messages and returns them all. On timeout the
    /// error shows the last listing error, if any, and the tail of both servers' logs.
    pub(crate) async fn wait_for_mail(
        &self,
        account: &Account,
        folder: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<FetchedMail>> {
        let deadline = Instant::now() + timeout;
        let mut last_flush = Instant::now();
        loop {
            let outcome = self.list(account, folder).await;
            if let Ok(mails) = &outcome
                && mails.len() >= count
            {
                return outcome;
            }
            if Instant::now() >= deadline {
                let seen = match outcome {
                    Ok(mails) => format!("{} message(s)", mails.len()),
                    Err(err) => format!("an error: {err:#}"),
                };
                bail!(
                    "{folder} of {} did not reach {count} message(s) within {timeout:?}; last \
                     look found {seen}\n{}",
                    account.address,
                    self.log_tail()
                );
            }
            if last_flush.elapsed() >= FLUSH_INTERVAL {
                // Best effort: should the flush fail, Postfix still retries on its own, and
                // a timeout here shows both servers' logs.
                let _ = self.flush_queue();
                last_flush = Instant::now();
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

async fn tls_handshake(
    tls: &ClientTls,
    tcp: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tls.connector()
        .connect(ClientTls::server_name(), tcp)
        .await
        .context("TLS handshake with Dovecot")
}

async fn read_greeting<T: ImapTransport>(client: &mut Client<T>) -> anyhow::Result<()> {
    match client.read_response().await {
        Some(Ok(_greeting)) => Ok(()),
        Some(Err(err)) => Err(anyhow!(err).context("read the IMAP greeting")),
        None => bail!("Dovecot closed the connection before greeting"),
    }
}

async fn ensure_folder(session: &mut ImapSession, folder: &str) -> anyhow::Result<()> {
    if folder.eq_ignore_ascii_case("INBOX") {
        return Ok(());
    }
    let pattern = format!("\"{}\"", folder.replace('\\', "\\\\").replace('"', "\\\""));
    let existing: Vec<_> = session
        .list(Some(""), Some(&pattern))
        .await
        .context("LIST")?
        .try_collect()
        .await
        .with_context(|| format!("LIST {folder}"))?;
    if existing.is_empty() {
        session
            .create(folder)
            .await
            .with_context(|| format!("CREATE {folder}"))?;
    }
    Ok(())
}

async fn logout(mut session: ImapSession) -> anyhow::Result<()> {
    session.logout().await.context("IMAP LOGOUT")
}

fn fetched_mail(fetch: &Fetch) -> anyhow::Result<FetchedMail> {
    let uid = fetch.uid.context("FETCH response without UID")?;
    let flags = fetch.flags().filter_map(|flag| flag_name(&flag)).collect();
    let raw = fetch
        .body()
        .with_context(|| format!("FETCH response for UID {uid} without a body"))?
        .to_vec();
    Ok(FetchedMail { uid, flags, raw })
}

fn flag_name(flag: &Flag<'_>) -> Option<String> {
    let name = match flag {
        Flag::Seen => "\\Seen",
        Flag::Answered => "\\Answered",
        Flag::Flagged => "\\Flagged",
        Flag::Deleted => "\\Deleted",
        Flag::Draft => "\\Draft",
        Flag::Recent => return None,
        Flag::MayCreate => "\\*",
        Flag::Custom(name) => name,
    };
    Some(name.to_owned())
}

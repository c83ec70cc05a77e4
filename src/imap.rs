//! IMAP, and only IMAP: connect (TLS, STARTTLS or plaintext on loopback), select a watched
//! folder, hand every message above the cursor to the process stage, and acknowledge on the
//! server (flag `\Seen`, move to the processed folder) only what the process stage reports as
//! durably committed.
//!
//! One [`FolderWatch`] per folder, each with its own connection. The cursor (UIDVALIDITY, last
//! UID) is read from the store but written only by the process stage, in the same transaction
//! as the tickets it produced. A UIDVALIDITY change (RFC 3501 §2.3.1.1) restarts the folder from
//! UID 1 and relies on Message-ID dedupe, so nothing becomes a second ticket.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{self, Security};
use crate::ids::{MessageId, Uid, UidValidity};
use crate::model::{Arrival, Cursor, FolderKind, Source};
use crate::store::Store;

pub mod expunge;

/// Every IMAP command must answer within this; a silent server is a dead connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// See `Selected::idle_wakeups_without_mail`.
const MAX_IDLE_WAKEUPS_WITHOUT_MAIL: u32 = 100;
/// How much of an oversized message's header block is fetched (a partial FETCH, RFC 3501
/// §6.4.5): enough for any real header, bounded whatever the message holds.
const MAX_HEADER_FETCH: u32 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {host}:{port}")]
    Network {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("tls setup with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("login as {username} refused: {reason}")]
    Auth { username: String, reason: String },
    #[error("oauth2 sign-in failed")]
    SignIn(#[from] crate::oauth::Error),
    #[error("imap command failed")]
    Protocol(#[from] async_imap::error::Error),
    #[error("imap server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("folder {folder} has no UIDVALIDITY; the server does not support UIDs")]
    NoUidValidity { folder: String },
    #[error("connection failed")]
    Io(#[from] std::io::Error),
    #[error("imap session was lost")]
    SessionLost,
    #[error("imap server closed the session: {0}")]
    ServerClosed(String),
    #[error("imap server keeps waking IDLE without new mail; reconnecting")]
    Spinning,
    #[error("store failed")]
    Store(#[from] crate::store::Error),
    #[error("the process stage stopped")]
    ProcessGone,
}

/// A raw message fetched from IMAP, on its way to the process stage.
pub struct Fetched {
    pub source: Source,
    pub kind: FolderKind,
    pub arrival: Arrival,
    pub raw: Vec<u8>,
    /// `Some(size)` when the message was over `[ingest] max_message_size` by the size the
    /// server reported: `raw` then holds only its header fields, and the whole message stays
    /// on the server.
    pub oversized: Option<u64>,
    /// Where the process stage reports the commit of this message.
    pub ack: mpsc::UnboundedSender<Committed>,
    /// This message's share of the fetch [`Budget`], given back when it is dropped (filed).
    _held: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("source", &self.source)
            .field("size", &self.raw.len())
            .field("oversized", &self.oversized)
            .finish_non_exhaustive()
    }
}

/// The memory fetched mail may take until it is filed, counted in KiB by the sizes the server
/// reports: every fetcher reserves its next UID FETCH here first, and each message gives its
/// share back once the process stage has filed it. So memory stays bounded in bytes whatever
/// the mailbox holds, and backpressure in bytes reaches IMAP.
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    /// `[ingest] fetch_bytes`, or the largest message fetched whole if that is more.
    pub fn new(ingest: &config::Ingest) -> Budget {
        let total_kib = kib(ingest.fetch_bytes.max(ingest.max_message_size)).max(1);
        Budget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `kib` KiB are free (never more than the whole budget) and holds them.
    pub(crate) async fn reserve(&self, kib: u32) -> Option<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_many_owned(kib.clamp(1, self.total_kib))
            .await
            .ok()
    }

    /// KiB held by mail fetched and not yet filed.
    pub fn in_use_kib(&self) -> u32 {
        let free = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        self.total_kib.saturating_sub(free)
    }

    /// The whole budget, in KiB.
    pub fn total_kib(&self) -> u32 {
        self.total_kib
    }
}

/// Bytes in KiB, rounded up; at least 1, so every message holds a share.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// The size the server reports (`RFC822.SIZE`) of each message of `set` in the selected
/// folder, by UID.
async fn message_sizes(session: &mut Session, set: &str) -> Result<Vec<(Uid, u64)>, Error> {
    let mut sized: Vec<(Uid, u64)> = timed(async {
        let stream = session.uid_fetch(set, "(UID RFC822.SIZE)").await?;
        let all: Vec<_> = stream.try_collect().await?;
        Ok::<_, async_imap::error::Error>(
            all.into_iter()
                .filter_map(|f| Some((Uid(f.uid?), u64::from(f.size.unwrap_or(0)))))
                .collect(),
        )
    })
    .await?;
    sized.sort_unstable();
    sized.dedup_by_key(|(uid, _)| *uid);
    Ok(sized)
}

/// One UID FETCH of a batch: messages fetched whole, together up to `[ingest] fetch_bytes`, or
/// one message over `[ingest] max_message_size` of which only the header fields are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPlan {
    Whole { uids: Vec<Uid>, kib: Vec<u32> },
    HeaderOnly { uid: Uid, size: u64 },
}

/// Cuts `sized` (UID and RFC822.SIZE, in UID order) into fetches: whole messages in runs of at
/// most `fetch_bytes` (a run holds at least one message), and each message over
/// `max_message_size` alone, headers only.
pub fn plan_fetches(
    sized: &[(Uid, u64)],
    max_message_size: u64,
    fetch_bytes: u64,
) -> Vec<FetchPlan> {
    let mut plans = Vec::new();
    let mut run: Vec<Uid> = Vec::new();
    let mut run_kib: Vec<u32> = Vec::new();
    let mut run_bytes: u64 = 0;
    for &(uid, size) in sized {
        if size > max_message_size {
            if !run.is_empty() {
                plans.push(FetchPlan::Whole {
                    uids: std::mem::take(&mut run),
                    kib: std::mem::take(&mut run_kib),
                });
                run_bytes = 0;
            }
            plans.push(FetchPlan::HeaderOnly { uid, size });
            continue;
        }
        if !run.is_empty() && run_bytes.saturating_add(size) > fetch_bytes {
            plans.push(FetchPlan::Whole {
                uids: std::mem::take(&mut run),
                kib: std::mem::take(&mut run_kib),
            });
            run_bytes = 0;
        }
        run.push(uid);
        run_kib.push(kib(size));
        run_bytes = run_bytes.saturating_add(size);
    }
    if !run.is_empty() {
        plans.push(FetchPlan::Whole {
            uids: run,
            kib: run_kib,
        });
    }
    plans
}

/// UIDs the process stage has durably committed (as tickets, duplicates or quarantine).
#[derive(Debug, Clone)]
pub struct Committed {
    pub uidvalidity: UidValidity,
    pub uids: Vec<Uid>,
}

pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> ImapIo for T {}

pub type Session = async_imap::Session<Box<dyn ImapIo>>;

async fn timed<T, E>(fut: impl Future<Output = Result<T, E>>) -> Result<T, Error>
where
    Error: From<E>,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::Timeout(COMMAND_TIMEOUT)),
    }
}

/// The TLS connector for `host`, with its errors named after the host.
pub fn tls_connector(host: &str, ca_file: Option<&std::path::Path>) -> Result<TlsConnector, Error> {
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
pub async fn connect(config: &config::Imap) -> Result<Session, Error> {
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

/// Formats UIDs (any order) as a compact IMAP sequence set: `1:5,7,9:12`.
pub fn uid_set(uids: &[Uid]) -> String {
    let mut sorted: Vec<u32> = uids.iter().map(|u| u.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&end.saturating_add(1)) {
            end = end.saturating_add(1);
            iter.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
    }
    out
}

/// What one pass of a folder's loop did.
#[derive(Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// New mail was handed to the process stage.
    Fetched(usize),
    /// Nothing new; the loop waited for the server (IDLE or the poll interval).
    Waited,
    /// Shutdown was requested.
    Cancelled,
}

/// State of one (re)connected session on one folder.
struct Selected {
    /// `None` only while IDLE holds the session, or after IDLE failed (then we reconnect).
    session: Option<Session>,
    uidvalidity: UidValidity,
    last: Uid,
    /// UIDNEXT from SELECT, raised to above the highest UID a search found since.
    uid_next: Option<Uid>,
    /// UIDs below this were in the folder at the first run (backfill).
    backfill_below: Option<Uid>,
    outstanding: usize,
    has_idle: bool,
    has_move: bool,
    /// IDLE wake-ups in a row that brought nothing new; a server that keeps waking us (a
    /// deleted folder, a broken connection) gets a fresh session instead of a busy loop.
    idle_wakeups_without_mail: u32,
}

impl Selected {
    fn session(&mut self) -> Result<&mut Session, Error> {
        self.session.as_mut().ok_or(Error::SessionLost)
    }
}

/// Told of a folder whose session failed, with the error.
pub type OnDown = Arc<dyn Fn(&str, &Error) + Send + Sync>;

/// How far casemail is behind a folder at the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The UID the server will give the next message (UIDNEXT, or above the highest UID seen).
    pub uid_next: Option<Uid>,
    /// Messages in the folder above the committed cursor: fetched but not yet committed, and
    /// not fetched yet (all of them while the folder is paused).
    pub pending: u64,
}

/// Told of a folder's lag after each look at it (metrics).
pub type OnLag = Arc<dyn Fn(&str, Lag) + Send + Sync>;

/// Watches one IMAP folder.
pub struct FolderWatch {
    pub folder: String,
    pub kind: FolderKind,
    config: Arc<config::Config>,
    store: Store,
    to_process: mpsc::Sender<Fetched>,
    /// Memory for fetched mail not yet filed; shared by every folder of the daemon.
    budget: Budget,
    ack_tx: mpsc::UnboundedSender<Committed>,
    ack_rx: mpsc::UnboundedReceiver<Committed>,
    /// Called after each successful login and each completed pass (health, systemd watchdog).
    on_alive: Arc<dyn Fn(&str) + Send + Sync>,
    /// Called when a session fails, before the reconnect (health).
    on_down: OnDown,
    /// Called with the folder's lag after each look (metrics).
    on_lag: OnLag,
}

impl FolderWatch {
    pub fn new(
        folder: String,
        kind: FolderKind,
        config: Arc<config::Config>,
        store: Store,
        to_process: mpsc::Sender<Fetched>,
        on_alive: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> FolderWatch {
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let budget = Budget::new(&config.ingest);
        FolderWatch {
            folder,
            kind,
            config,
            store,
            to_process,
            budget,
            ack_tx,
            ack_rx,
            on_alive,
            on_down: Arc::new(|_folder: &str, _err: &Error| {}),
            on_lag: Arc::new(|_folder: &str, _lag: Lag| {}),
        }
    }

    /// Shares `budget` with the other folders, so the bound holds for the daemon as a whole.
    pub fn with_budget(mut self, budget: Budget) -> FolderWatch {
        self.budget = budget;
        self
    }

    /// Reports the folder's lag to `on_lag` after each look at it.
    pub fn on_lag(mut self, on_lag: OnLag) -> FolderWatch {
        self.on_lag = on_lag;
        self
    }

    fn paused(&self) -> bool {
        self.config.imap.paused_folders.contains(&self.folder)
    }

    fn report_lag(&self, selected: &Selected, not_fetched: usize) {
        let pending =
            u64::try_from(not_fetched.saturating_add(selected.outstanding)).unwrap_or(u64::MAX);
        (self.on_lag)(
            &self.folder,
            Lag {
                uid_next: selected.uid_next,
                pending,
            },
        );
    }

    /// Reports each failed session to `on_down`, so health shows the folder unreachable at
    /// once rather than after a timeout.
    pub fn on_down(mut self, on_down: OnDown) -> FolderWatch {
        self.on_down = on_down;
        self
    }

    /// Runs until `cancel`, reconnecting with capped, jittered exponential backoff.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = BACKOFF_START;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let started = tokio::time::Instant::now();
            let outcome = self.session(&cancel).await;
            // A session that lived a while was a working connection: the next outage starts
            // from a short delay again instead of the cap the last outage reached.
            if started.elapsed() > BACKOFF_CAP {
                backoff = BACKOFF_START;
            }
            match outcome {
                Ok(()) => return,
                Err(Error::ProcessGone) => return,
                Err(err) => {
                    warn!(folder = %self.folder, error = %format!("{err:#}"), retry_in = ?backoff, "IMAP session failed; reconnecting.");
                    (self.on_down)(&self.folder, &err);
                }
            }
            let jitter = rand::random_range(0.5..1.0);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                () = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    async fn session(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        let mut selected = self.connect_and_select().await?;
        (self.on_alive)(&self.folder);
        // Messages committed before a crash but never acknowledged are still in the folder
        // below the cursor: acknowledge them now.
        if selected.last.0 > 0 {
            let query = format!("UID 1:{}", selected.last.0);
            let leftovers: Vec<Uid> = timed(selected.session()?.uid_search(query))
                .await?
                .into_iter()
                .filter(|u| *u <= selected.last.0)
                .map(Uid)
                .collect();
            if !leftovers.is_empty() {
                // Only what the store records is acknowledged: a message below the cursor that
                // it does not know was passed over, and stays where it is, unflagged, for
                // reconciliation to report.
                // A scan of every stored message: off the async workers.
                let accounted = tokio::task::block_in_place(|| {
                    self.store
                        .accounted_uids(&self.folder, selected.uidvalidity)
                })?;
                let (known, unknown): (Vec<Uid>, Vec<Uid>) = leftovers
                    .into_iter()
                    .partition(|uid| accounted.contains(uid));
                if !unknown.is_empty() {
                    warn!(folder = %self.folder, count = unknown.len(), uids = %uid_set(&unknown), "Messages below the cursor are in no ticket; left in the folder for reconciliation to report.");
                }
                if !known.is_empty() {
                    info!(folder = %self.folder, count = known.len(), "Acknowledging messages committed before a restart.");
                    let uidvalidity = selected.uidvalidity;
                    self.acknowledge(&mut selected, uidvalidity, &known).await?;
                }
            }
        }
        loop {
            match self.step(&mut selected, cancel).await? {
                StepOutcome::Cancelled => {
                    if let Ok(session) = selected.session() {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
                    }
                    return Ok(());
                }
                StepOutcome::Fetched(_) | StepOutcome::Waited => (self.on_alive)(&self.folder),
            }
        }
    }

    async fn connect_and_select(&mut self) -> Result<Selected, Error> {
        let mut session = connect(&self.config.imap).await?;
        let capabilities = timed(session.capabilities()).await?;
        let has_idle = capabilities.has_str("IDLE");
        let has_move = capabilities.has_str("MOVE");
        if let Some(processed) = &self.config.imap.processed_folder {
            // CREATE fails when the folder exists; that is the common case and not an error.
            let _ = timed(session.create(processed)).await;
        }
        let mailbox = match timed(session.select(&self.folder)).await {
            Ok(mailbox) => mailbox,
            Err(Error::Protocol(async_imap::error::Error::No(reason))) => {
                // A configured folder that does not exist yet (a fresh account has no Junk) is
                // created rather than retried forever.
                info!(folder = %self.folder, %reason, "Watched folder missing; creating it.");
                timed(session.create(&self.folder)).await?;
                timed(session.select(&self.folder)).await?
            }
            Err(err) => return Err(err),
        };
        let uidvalidity =
            UidValidity(mailbox.uid_validity.ok_or_else(|| Error::NoUidValidity {
                folder: self.folder.clone(),
            })?);
        let cursor = self.store.cursor(&self.folder)?;
        let (last, backfill_below) = match cursor {
            Some(Cursor {
                uidvalidity: known,
                last_uid,
            }) if known == uidvalidity => {
                // A backlog interrupted by a reconnect or restart stays a backfill.
                let below = self
                    .store
                    .backfill(&self.folder, uidvalidity)?
                    .filter(|below| below.0 > last_uid.0.saturating_add(1));
                if let Some(below) = below {
                    info!(folder = %self.folder, below = %below, "Continuing the first-run backfill.");
                }
                (last_uid, below)
            }
            Some(Cursor {
                uidvalidity: known, ..
            }) => {
                warn!(folder = %self.folder, old = %known, new = %uidvalidity, "UIDVALIDITY changed; re-reading the folder, duplicates are recognised by Message-ID.");
                (Uid(0), None)
            }
            None => {
                let backfill = match (self.config.ingest.first_run, mailbox.uid_next) {
                    (config::FirstRun::Backfill, Some(next)) => Some(self.store.begin_backfill(
                        &self.folder,
                        uidvalidity,
                        Uid(next),
                    )?),
                    _ => None,
                };
                info!(folder = %self.folder, existing = mailbox.exists, "First run on this folder.");
                (Uid(0), backfill)
            }
        };
        info!(folder = %self.folder, uidvalidity = %uidvalidity, last_uid = %last, idle = has_idle, "Folder selected.");
        if self.paused() {
            info!(folder = %self.folder, "Folder paused: nothing is filed from it until it is taken off imap.paused_folders.");
        }
        Ok(Selected {
            session: Some(session),
            uidvalidity,
            last,
            uid_next: mailbox.uid_next.map(Uid),
            backfill_below,
            outstanding: 0,
            has_idle,
            has_move,
            idle_wakeups_without_mail: 0,
        })
    }

    /// One pass: apply acknowledgements, fetch what is new, or wait for the server.
    async fn step(
        &mut self,
        selected: &mut Selected,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, Error> {
        if cancel.is_cancelled() {
            return Ok(StepOutcome::Cancelled);
        }
        while let Ok(committed) = self.ack_rx.try_recv() {
            self.apply_ack(selected, committed).await?;
        }
        // `n:*` always matches the highest UID even when it is below n, hence the filter.
        let query = format!("UID {}:*", selected.last.0.saturating_add(1));
        let mut new: Vec<u32> = timed(selected.session()?.uid_search(query))
            .await?
            .into_iter()
            .filter(|u| *u > selected.last.0)
            .collect();
        new.sort_unstable();
        if let Some(highest) = new.last() {
            let above = Uid(highest.saturating_add(1));
            selected.uid_next = Some(selected.uid_next.map_or(above, |known| known.max(above)));
        }
        self.report_lag(selected, new.len());
        if self.paused() {
            // Nothing is fetched: the mail stays above the cursor, counted as lag, until the
            // folder is resumed. New arrivals still wake IDLE, which is not spinning.
            if !new.is_empty() {
                selected.idle_wakeups_without_mail = 0;
            }
            return self.wait_for_news(selected, cancel).await;
        }
        if !new.is_empty() {
            selected.idle_wakeups_without_mail = 0;
            let count = new.len();
            let batch = usize::try_from(self.config.ingest.batch_size)
                .unwrap_or(200)
                .max(1);
            for chunk in new.chunks(batch) {
                let uids: Vec<Uid> = chunk.iter().copied().map(Uid).collect();
                self.fetch_range(selected, &uids, cancel).await?;
                if cancel.is_cancelled() {
                    return Ok(StepOutcome::Cancelled);
                }
                while let Ok(committed) = self.ack_rx.try_recv() {
                    self.apply_ack(selected, committed).await?;
                }
            }
            return Ok(StepOutcome::Fetched(count));
        }
        // Everything handed over must be acknowledged before idling, so a processed message
        // leaves the folder promptly.
        let mut acknowledged = false;
        while selected.outstanding > 0 {
            tokio::select! {
                committed = self.ack_rx.recv() => match committed {
                    Some(committed) => {
                        self.apply_ack(selected, committed).await?;
                        acknowledged = true;
                    }
                    None => return Err(Error::ProcessGone),
                },
                () = cancel.cancelled() => return Ok(StepOutcome::Cancelled),
            }
        }
        // Everything the search found is committed now.
        self.report_lag(selected, 0);
        if acknowledged {
            // Mail that arrived while we waited was announced (EXISTS) in a response to the
            // acknowledgement's commands, which IDLE does not repeat: search again first.
            return Ok(StepOutcome::Waited);
        }
        self.wait_for_news(selected, cancel).await
    }

    /// Fetches `uids` (one batch) in pieces bounded in bytes: the sizes first, then the whole
    /// messages up to `[ingest] fetch_bytes` per command, and only the header fields of each
    /// message over `[ingest] max_message_size`.
    async fn fetch_range(
        &mut self,
        selected: &mut Selected,
        uids: &[Uid],
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let set = uid_set(uids);
        debug!(folder = %self.folder, uids = %set, "UID FETCH RFC822.SIZE.");
        let mut sized = message_sizes(selected.session()?, &set).await?;
        sized.retain(|(uid, _)| uid.0 > selected.last.0);
        let ingest = &self.config.ingest;
        for plan in plan_fetches(&sized, ingest.max_message_size, ingest.fetch_bytes) {
            let reserved = match &plan {
                FetchPlan::Whole { kib, .. } => kib.iter().fold(0_u32, |a, b| a.saturating_add(*b)),
                FetchPlan::HeaderOnly { .. } => kib(u64::from(MAX_HEADER_FETCH)),
            };
            // Waiting here is backpressure in bytes: mail fetched earlier is still being filed.
            let held = tokio::select! {
                held = self.budget.reserve(reserved) => held,
                () = cancel.cancelled() => return Ok(()),
            };
            let stop = match plan {
                FetchPlan::Whole { uids, kib } => {
                    self.fetch_whole(selected, &uids, &kib, held, cancel)
                        .await?
                }
                FetchPlan::HeaderOnly { uid, size } => {
                    self.fetch_header_only(selected, uid, size, held, cancel)
                        .await?
                }
            };
            if stop {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Fetches whole messages and hands them on, each with its share of `held`. Returns `true`
    /// when cancelled.
    async fn fetch_whole(
        &mut self,
        selected: &mut Selected,
        uids: &[Uid],
        kib: &[u32],
        mut held: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        let set = uid_set(uids);
        debug!(folder = %self.folder, uids = %set, "UID FETCH.");
        let session = selected.session()?;
        let fetched: Vec<(u32, Vec<u8>)> = timed(async {
            let stream = session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            let all: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                all.into_iter()
                    .filter_map(|f| Some((f.uid?, f.body().unwrap_or_default().to_vec())))
                    .collect(),
            )
        })
        .await?;
        let mut fetched = fetched;
        fetched.sort_by_key(|(uid, _)| *uid);
        for (uid, raw) in fetched {
            // The message's own share, by the size reserved for it; the last one takes what
            // is left.
            let share = uids
                .iter()
                .position(|u| u.0 == uid)
                .and_then(|index| kib.get(index))
                .copied()
                .unwrap_or(1);
            let mine = match held.as_mut() {
                Some(permit) if permit.num_permits() > share as usize => {
                    permit.split(share as usize)
                }
                _ => held.take(),
            };
            if self
                .hand_on(selected, Uid(uid), raw, None, mine, cancel)
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Fetches the header fields of a message over `[ingest] max_message_size` and hands them
    /// on; the message itself is never fetched and stays on the server. Returns `true` when
    /// cancelled.
    async fn fetch_header_only(
        &mut self,
        selected: &mut Selected,
        uid: Uid,
        size: u64,
        held: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        let set = uid.0.to_string();
        let query = format!("(UID BODY.PEEK[HEADER]<0.{MAX_HEADER_FETCH}>)");
        info!(folder = %self.folder, uid = %uid, size, limit = self.config.ingest.max_message_size, "Message over max_message_size; fetching its header fields only.");
        let session = selected.session()?;
        let header: Option<Vec<u8>> = timed(async {
            let stream = session.uid_fetch(&set, &query).await?;
            let all: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                all.iter()
                    .find(|f| f.uid == Some(uid.0))
                    .map(|f| f.header().unwrap_or_default().to_vec()),
            )
        })
        .await?;
        let Some(header) = header else {
            // Expunged meanwhile: nothing to file.
            return Ok(false);
        };
        self.hand_on(selected, uid, header, Some(size), held, cancel)
            .await
    }

    /// Sends one message to the process stage. Returns `true` when cancelled.
    async fn hand_on(
        &mut self,
        selected: &mut Selected,
        uid: Uid,
        raw: Vec<u8>,
        oversized: Option<u64>,
        held: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        let uid = uid.0;
        {
            if uid <= selected.last.0 {
                return Ok(false);
            }
            let arrival = match selected.backfill_below {
                Some(below) if uid < below.0 => Arrival::Backfill,
                _ => Arrival::Live,
            };
            let item = Fetched {
                source: Source {
                    mailbox: self.folder.clone(),
                    uidvalidity: selected.uidvalidity,
                    uid: Uid(uid),
                },
                kind: self.kind,
                arrival,
                raw,
                oversized,
                ack: self.ack_tx.clone(),
                _held: held,
            };
            // A full channel is backpressure: the process stage is behind, so IMAP waits.
            tokio::select! {
                sent = self.to_process.send(item) => sent.map_err(|_| Error::ProcessGone)?,
                () = cancel.cancelled() => return Ok(true),
            }
            selected.outstanding += 1;
            selected.last = Uid(uid);
        }
        Ok(false)
    }

    async fn apply_ack(
        &mut self,
        selected: &mut Selected,
        committed: Committed,
    ) -> Result<(), Error> {
        selected.outstanding = selected.outstanding.saturating_sub(committed.uids.len());
        if committed.uidvalidity != selected.uidvalidity {
            // The folder was recreated meanwhile; the leftover pass of the next session
            // acknowledges whatever is still there.
            return Ok(());
        }
        self.acknowledge(selected, committed.uidvalidity, &committed.uids)
            .await
    }

    /// Flags committed messages `\Seen` and moves them to the processed folder, one command
    /// per range rather than per message. Only called for durably committed UIDs.
    async fn acknowledge(
        &mut self,
        selected: &mut Selected,
        _uidvalidity: UidValidity,
        uids: &[Uid],
    ) -> Result<(), Error> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        let has_move = selected.has_move;
        let session = selected.session()?;
        timed(async {
            session
                .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let Some(processed) = self.config.imap.processed_folder.clone() else {
            debug!(folder = %self.folder, uids = %set, "Flagged processed messages.");
            return Ok(());
        };
        if has_move {
            timed(session.uid_mv(&set, &processed)).await?;
        } else {
            // RFC 6851 is missing: COPY, mark deleted, and expunge only these UIDs (UIDPLUS).
            timed(session.uid_copy(&set, &processed)).await?;
            timed(async {
                session
                    .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
            timed(async {
                session
                    .uid_expunge(&set)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        }
        debug!(folder = %self.folder, uids = %set, to = %processed, "Moved processed messages.");
        Ok(())
    }

    async fn wait_for_news(
        &mut self,
        selected: &mut Selected,
        cancel: &CancellationToken,
    ) -> Result<StepOutcome, Error> {
        if !selected.has_idle {
            tokio::select! {
                () = tokio::time::sleep(self.config.imap.poll_interval) => return Ok(StepOutcome::Waited),
                () = cancel.cancelled() => return Ok(StepOutcome::Cancelled),
            }
        }
        // IDLE consumes the session and gives it back only on success; after an error the
        // slot stays empty and the next command forces a reconnect.
        let session = selected.session.take().ok_or(Error::SessionLost)?;
        let mut handle = session.idle();
        timed(handle.init()).await?;
        let idle_timeout = self.config.imap.idle_timeout;
        let outcome = {
            // The crate's own timeout restarts on every server keepalive (Dovecot sends one
            // every two minutes), so an overall deadline makes sure IDLE is re-issued before
            // the 29 minutes RFC 2177 allows; the DONE that follows, under COMMAND_TIMEOUT,
            // proves the connection is still alive.
            let (wait, stop) = handle.wait_with_timeout(idle_timeout);
            tokio::select! {
                response = tokio::time::timeout(idle_timeout, wait) => match response {
                    Ok(response) => Some(response?),
                    Err(_) => Some(IdleResponse::Timeout),
                },
                () = cancel.cancelled() => { drop(stop); None }
            }
        };
        match &outcome {
            Some(IdleResponse::NewData(data)) => {
                if let async_imap::imap_proto::Response::Data {
                    status: async_imap::imap_proto::Status::Bye,
                    information,
                    ..
                } = data.parsed()
                {
                    // RFC 3501 §7.1.5: the server is closing the connection (Dovecot does so
                    // when the selected folder is deleted).
                    return Err(Error::ServerClosed(
                        information.as_deref().unwrap_or("BYE").to_owned(),
                    ));
                }
                selected.idle_wakeups_without_mail += 1;
                if selected.idle_wakeups_without_mail > MAX_IDLE_WAKEUPS_WITHOUT_MAIL {
                    return Err(Error::Spinning);
                }
                debug!(folder = %self.folder, "IDLE woke up.");
            }
            Some(IdleResponse::Timeout) => {
                selected.idle_wakeups_without_mail = 0;
                debug!(folder = %self.folder, "IDLE re-issued.");
            }
            Some(IdleResponse::ManualInterrupt) | None => {}
        }
        selected.session = Some(timed(handle.done()).await?);
        Ok(match outcome {
            None => StepOutcome::Cancelled,
            Some(_) => StepOutcome::Waited,
        })
    }
}

/// A folder as EXAMINE shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    pub uidvalidity: UidValidity,
    pub uid_next: Option<Uid>,
    pub exists: u32,
}

/// What the server's ENVELOPE says about one message: enough to name it in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub uid: Uid,
    pub message_id: Option<MessageId>,
    /// The subject, RFC 2047 words decoded; not yet escaped for a terminal.
    pub subject: Option<String>,
}

/// How many UIDs one `UID FETCH … ENVELOPE` asks for.
const ENVELOPE_BATCH: usize = 500;

/// A read-only session for looking at folders without changing them (reconciliation): EXAMINE
/// instead of SELECT, so no flag or `\Recent` state changes, and no message is fetched whole.
pub struct Examiner {
    session: Session,
}

impl Examiner {
    pub async fn connect(config: &config::Imap) -> Result<Examiner, Error> {
        Ok(Examiner {
            session: connect(config).await?,
        })
    }

    /// Opens `folder` read-only; `None` when it does not exist.
    pub async fn examine(&mut self, folder: &str) -> Result<Option<FolderStatus>, Error> {
        let mailbox = match timed(self.session.examine(folder)).await {
            Ok(mailbox) => mailbox,
            Err(Error::Protocol(async_imap::error::Error::No(_))) => return Ok(None),
            Err(err) => return Err(err),
        };
        let uidvalidity =
            UidValidity(mailbox.uid_validity.ok_or_else(|| Error::NoUidValidity {
                folder: folder.to_owned(),
            })?);
        Ok(Some(FolderStatus {
            uidvalidity,
            uid_next: mailbox.uid_next.map(Uid),
            exists: mailbox.exists,
        }))
    }

    /// The UIDs of the examined folder from `first` to `last` (to the end with `None`), sorted.
    pub async fn uids(&mut self, first: u32, last: Option<u32>) -> Result<Vec<Uid>, Error> {
        let first = first.max(1);
        if last.is_some_and(|last| last < first) {
            return Ok(Vec::new());
        }
        let query = match last {
            Some(last) => format!("UID {first}:{last}"),
            None => format!("UID {first}:*"),
        };
        let upper = last.unwrap_or(u32::MAX);
        // `n:*` matches the highest UID even when it is below n, hence the filter.
        let mut uids: Vec<Uid> = timed(self.session.uid_search(query))
            .await?
            .into_iter()
            .filter(|uid| (first..=upper).contains(uid))
            .map(Uid)
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The envelopes of `uids` in the examined folder; UIDs no longer there are left out.
    pub async fn envelopes(&mut self, uids: &[Uid]) -> Result<Vec<Envelope>, Error> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(ENVELOPE_BATCH) {
            let set = uid_set(chunk);
            let session = &mut self.session;
            let fetched = timed(async {
                let stream = session.uid_fetch(&set, "(UID ENVELOPE)").await?;
                stream.try_collect::<Vec<_>>().await
            })
            .await?;
            for fetch in &fetched {
                let Some(uid) = fetch.uid else { continue };
                let envelope = fetch.envelope();
                let message_id = envelope
                    .and_then(|e| e.message_id.as_deref())
                    .and_then(|raw| MessageId::parse(&String::from_utf8_lossy(raw)));
                let subject = envelope
                    .and_then(|e| e.subject.as_deref())
                    .map(decode_subject);
                out.push(Envelope {
                    uid: Uid(uid),
                    message_id,
                    subject,
                });
            }
        }
        out.sort_by_key(|envelope| envelope.uid);
        Ok(out)
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.session.logout()).await;
    }
}

/// Decodes RFC 2047 encoded words in a subject as the server sent it in an ENVELOPE.
fn decode_subject(raw: &[u8]) -> String {
    let mut header = b"Subject: ".to_vec();
    header.extend_from_slice(raw);
    header.extend_from_slice(b"\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse_headers(&header[..])
        .and_then(|message| message.subject().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact_ranges() {
        let uids: Vec<Uid> = [9, 1, 2, 3, 7, 10, 12, 3].into_iter().map(Uid).collect();
        assert_eq!(uid_set(&uids), "1:3,7,9:10,12");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn fetches_are_bounded_in_bytes_and_oversized_mail_is_fetched_headers_only() {
        const MIB: u64 = 1024 * 1024;
        let sized: Vec<(Uid, u64)> = [
            (1, 10 * MIB),
            (2, 10 * MIB),
            (3, 30 * MIB),
            (4, 5 * MIB),
            (5, 25 * MIB),
            (6, 1),
        ]
        .into_iter()
        .map(|(uid, size)| (Uid(uid), size))
        .collect();
        let plans = plan_fetches(&sized, 25 * MIB, 16 * MIB);
        let whole = |uids: &[u32], kib: &[u32]| FetchPlan::Whole {
            uids: uids.iter().copied().map(Uid).collect(),
            kib: kib.to_vec(),
        };
        assert_eq!(
            plans,
            vec![
                whole(&[1], &[10 * 1024]),
                whole(&[2], &[10 * 1024]),
                FetchPlan::HeaderOnly {
                    uid: Uid(3),
                    size: 30 * MIB
                },
                // A message up to the size cap is fetched whole, alone if it must be.
                whole(&[4], &[5 * 1024]),
                whole(&[5], &[25 * 1024]),
                whole(&[6], &[1]),
            ]
        );
        // Whatever the mailbox holds, no fetch is over the bound unless it is one message.
        let many: Vec<(Uid, u64)> = (1..=10_000).map(|uid| (Uid(uid), 300 * 1024)).collect();
        let plans = plan_fetches(&many, 25 * MIB, 16 * MIB);
        let mut seen = 0;
        for plan in &plans {
            let FetchPlan::Whole { uids, kib } = plan else {
                panic!("nothing is oversized: {plan:?}");
            };
            assert!(kib.iter().map(|k| u64::from(*k) * 1024).sum::<u64>() <= 16 * MIB);
            seen += uids.len();
        }
        assert_eq!(seen, 10_000);
    }

    #[tokio::test]
    async fn the_budget_holds_fetched_mail_until_it_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("casemail.toml");
        std::fs::write(
            &path,
            "[helpdesk]\naddress = \"help@charity.example\"\n[imap]\nhost = \"imap.example\"\nusername = \"help\"\npassword = \"x\"\n[smtp]\nhost = \"smtp.example\"\n[ingest]\nmax_message_size = \"1MiB\"\nfetch_bytes = \"2MiB\"\n",
        )
        .expect("write config");
        let config =
            config::load_with_env(&path, &std::collections::HashMap::new()).expect("config");
        let budget = Budget::new(&config.ingest);
        let first = budget.reserve(1536).await.expect("free");
        assert_eq!(budget.in_use_kib(), 1536);
        // More than is left waits until the first is given back.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1024)).await;
        assert!(waiting.is_err(), "the budget is bounded");
        drop(first);
        let second = budget.reserve(1024).await.expect("free again");
        // A reservation over the whole budget is cut to it rather than waiting for ever.
        drop(second);
        let all = budget.reserve(u32::MAX).await.expect("the whole budget");
        assert_eq!(budget.in_use_kib(), 2048);
        drop(all);
        assert_eq!(budget.in_use_kib(), 0);
    }

    #[test]
    fn envelope_subjects_are_decoded() {
        assert_eq!(decode_subject(b"=?utf-8?q?Gr=C3=BC=C3=9Fe?="), "Grüße");
        assert_eq!(decode_subject(b"plain words"), "plain words");
    }
}

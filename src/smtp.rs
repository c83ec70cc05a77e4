//! SMTP, and only SMTP: sends what the outbox holds through lettre, in outbox order, and settles
//! each entry in the store. A message the server accepted (250) leaves the outbox; one it
//! deferred, or that could not be offered at all (server down, TLS or login trouble), is retried
//! with capped, jittered exponential backoff; one it refused for good (5xx to MAIL, RCPT or DATA)
//! becomes a dead letter and its ticket records the failure.
//!
//! This module must not decide what is sent or to whom, nor change a message beyond what SMTP
//! transparency requires (line endings and dot-stuffing, see [`wire_data`]). It never logs a
//! body, and recipient addresses only at DEBUG; server replies are stored and logged with the
//! addresses in them blanked out.
//!
//! A failure that belongs to the server or the link rather than to the message (connection,
//! TLS, timeout, a refused login, 421) defers the other due entries too, without connecting
//! again, so an outage costs one connection per step rather than one per message. A recipient
//! refused at RCPT fails the whole entry, because lettre gives up the transaction: an entry
//! should carry several recipients only when they stand or fall together.
//!
//! Delivery is at least once. The entry leaves the outbox in a store transaction made after the
//! server's 250, and that transaction is flushed right away. A crash between the 250 and the
//! flush (or a connection lost after the final dot but before the 250 came back) sends the same
//! bytes again after the restart. They carry the Message-ID fixed when the entry was enqueued,
//! so the receiving side, and the requester's mail client, can recognise the copy. Never twice
//! by our own doing: an entry is settled before the next one is sent, and a settled entry is
//! gone from the outbox.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::ExposeSecret as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{self, Security};
use crate::mail::sanitize;
use crate::model::{Actor, DeadLetter, Event, OutboxEntry, OutboxKind};
use crate::store::{self, Store};

/// How long lettre may take to open the TCP connection. Its async client applies its timeout
/// to the connect only, so every send is also bounded as a whole (see [`send_deadline`]).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The part of a send's deadline that does not depend on the message's size: connecting, TLS,
/// EHLO, AUTH, the envelope and the server's final answer.
const SESSION_ALLOWANCE: Duration = Duration::from_secs(60);
/// The slowest upload a send is allowed, so a large attachment on a slow link still gets there.
const SLOWEST_UPLOAD_BYTES_PER_SECOND: u64 = 32 * 1024;
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);
/// How long `run` sleeps when the outbox is empty; a wake-up ends it earlier.
const IDLE_RECHECK: Duration = Duration::from_secs(10 * 60);
/// Longest server reply kept in an error (and so in `last_error` and the dead letters).
const MAX_REPLY_CHARS: usize = 200;

/// The transport every send goes through: one connection per message, no pool.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

use crate::clock::Clock;

/// What went wrong with SMTP, split the way the outbox needs: [`Error::is_transient`] means
/// "keep the message and try again later", [`Error::is_permanent`] means "this message will
/// never go through as it is" (after lettre's `Error`).
///
/// Every message is free of recipient addresses and message text, so it can be logged and
/// stored: server replies pass through [`redact_reply`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[smtp]` settings cannot be turned into a transport, such as an unreadable `ca_file`.
    #[error("smtp settings unusable: {reason}")]
    Setup { reason: String },
    /// Connecting, the TLS handshake, or the conversation itself failed: refused, reset,
    /// closed early, a certificate the client does not trust, an unreadable reply.
    #[error("cannot talk to the smtp server: {detail}")]
    Connection { detail: String },
    /// Connecting, or a whole send, took longer than its deadline.
    #[error("smtp server did not finish within {0:?}")]
    Timeout(Duration),
    /// The server refused the session before the message could be offered: the greeting, EHLO,
    /// STARTTLS or AUTH failed (a wrong password, no STARTTLS where it is required). Not the
    /// message's fault, so it is kept; an operator has to act.
    #[error("smtp server refused the session: {detail}")]
    Session { detail: String },
    /// A 4xx reply: try again later.
    #[error("smtp server deferred the message: {code} {reply}")]
    Deferred { code: u16, reply: String },
    /// A 5xx reply to MAIL, RCPT or DATA, such as an unknown recipient.
    #[error("smtp server rejected the message: {code} {reply}")]
    Rejected { code: u16, reply: String },
    /// lettre will not offer this message to this server, such as 8-bit content to a server
    /// without 8BITMIME.
    #[error("message cannot be sent to this server: {detail}")]
    Unsendable { detail: String },
    /// The envelope sender or a recipient is not a usable address, or there is no recipient.
    #[error("invalid envelope: {reason}")]
    Envelope { reason: String },
    /// The entry's bytes are gone from the store (a corrupt or hand-edited store).
    #[error("outbox entry {id} has no message bytes in the store")]
    MissingRaw { id: u64 },
    /// Reading or settling the outbox failed; `step` returns this, never a settled entry.
    #[error("store failed")]
    Store(#[from] store::Error),
}

impl Error {
    /// Whether the message should stay in the outbox and be tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connection { .. }
                | Error::Timeout(_)
                | Error::Session { .. }
                | Error::Deferred { .. }
        )
    }

    /// Whether the message can never be sent as it is and becomes a dead letter.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::Rejected { .. }
                | Error::Unsendable { .. }
                | Error::Envelope { .. }
                | Error::MissingRaw { .. }
        )
    }

    /// Whether the failure is the server's or the link's rather than this message's, so the
    /// other due messages would fail the same way and are not tried in this step. 421 is the
    /// server closing the channel (RFC 5321 §3.8).
    fn affects_every_message(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::Timeout(_) | Error::Session { .. } => true,
            Error::Deferred { code, .. } => *code == 421,
            _ => false,
        }
    }

    /// What the ticket's `send_failed` event says: a code or a cause, never an address.
    fn event_summary(&self) -> String {
        match self {
            Error::Rejected { code, .. } | Error::Deferred { code, .. } => {
                format!("refused with {code}")
            }
            Error::Unsendable { .. } => "not accepted by the smtp client".to_owned(),
            Error::Envelope { .. } => "invalid envelope address".to_owned(),
            Error::MissingRaw { .. } => "message bytes missing from the store".to_owned(),
            other => other.to_string(),
        }
    }
}

/// How the relay reads an SMTP reply code (RFC 5321 §4.2.1): 2yz is done, 4yz means try again,
/// 5yz means never. Anything else is a confused server, which is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    Accepted,
    Transient,
    Permanent,
}

/// The class of a reply code; see [`ReplyClass`].
pub fn classify(code: u16) -> ReplyClass {
    match code {
        200..=299 => ReplyClass::Accepted,
        500..=599 => ReplyClass::Permanent,
        _ => ReplyClass::Transient,
    }
}

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

/// The bytes handed to lettre for the DATA command.
///
/// Every line ending becomes CRLF, because lettre dot-stuffs (RFC 5321 §4.5.2) only after CRLF:
/// a bare LF followed by "." would go out unstuffed, and a server that takes a bare LF as a line
/// end (Postfix before `smtpd_forbid_bare_newline`) would read `LF . LF` as the end of the data
/// and whatever follows as new commands: SMTP smuggling. Then one final CRLF is dropped,
/// because lettre always ends the data with CRLF "." CRLF, so a message that already ends in
/// CRLF would otherwise gain an empty line.
pub fn wire_data(raw: &[u8]) -> Cow<'_, [u8]> {
    let has_bare_ending = raw.iter().enumerate().any(|(at, &byte)| match byte {
        b'\n' => at == 0 || raw.get(at - 1) != Some(&b'\r'),
        b'\r' => raw.get(at + 1) != Some(&b'\n'),
        _ => false,
    });
    let normalised: Cow<'_, [u8]> = if has_bare_ending {
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
        let mut bytes = raw.iter().copied().peekable();
        while let Some(byte) = bytes.next() {
            match byte {
                b'\r' => {
                    if bytes.peek() == Some(&b'\n') {
                        bytes.next();
                    }
                    out.extend_from_slice(b"\r\n");
                }
                b'\n' => out.extend_from_slice(b"\r\n"),
                other => out.push(other),
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    match normalised {
        Cow::Borrowed(bytes) => Cow::Borrowed(bytes.strip_suffix(b"\r\n").unwrap_or(bytes)),
        Cow::Owned(mut bytes) => {
            if bytes.ends_with(b"\r\n") {
                bytes.truncate(bytes.len() - 2);
            }
            Cow::Owned(bytes)
        }
    }
}

/// The whole-send deadline for a message of `size` bytes: a fixed allowance for the session
/// plus the upload at [`SLOWEST_UPLOAD_BYTES_PER_SECOND`].
pub fn send_deadline(size: usize) -> Duration {
    let size = u64::try_from(size).unwrap_or(u64::MAX);
    SESSION_ALLOWANCE.saturating_add(Duration::from_secs(size / SLOWEST_UPLOAD_BYTES_PER_SECOND))
}

/// The delay before attempt number `attempts + 1`, before jitter: 1 s after the first failed
/// attempt, doubling each time, never more than 10 minutes.
pub fn nominal_backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    BACKOFF_START
        .saturating_mul(1_u32 << doublings)
        .min(BACKOFF_CAP)
}

/// [`nominal_backoff`] scaled by `jitter` (clamped to 0.5–1.0), so messages deferred together
/// do not all come back in the same second.
pub fn backoff_with_jitter(attempts: u32, jitter: f64) -> Duration {
    nominal_backoff(attempts).mul_f64(jitter.clamp(0.5, 1.0))
}

fn backoff(attempts: u32) -> Duration {
    backoff_with_jitter(attempts, rand::random_range(0.75..=1.0))
}

/// Blanks out anything that looks like an address in a server reply (servers echo the
/// recipient: "5.1.1 <x@y>: Recipient address rejected"), escapes control characters, and
/// caps its length, so the reply can go into logs, `last_error` and the dead letters.
pub fn redact_reply(reply: &str) -> String {
    let words: Vec<String> = sanitize::for_terminal(reply)
        .split_whitespace()
        .map(|word| {
            if word.contains('@') {
                let kept_punctuation = word.len() - word.trim_end_matches([':', ',', ';']).len();
                let suffix = word.get(word.len() - kept_punctuation..).unwrap_or("");
                format!("<address>{suffix}")
            } else {
                word.to_owned()
            }
        })
        .collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(MAX_REPLY_CHARS) {
        Some((cut, _)) => format!("{}…", joined.get(..cut).unwrap_or(&joined)),
        None => joined,
    }
}

/// Turns lettre's error into ours, before anything is known about whether the session or the
/// message was at fault (see [`Relay::explain`]).
fn from_lettre(err: &lettre::transport::smtp::Error) -> Error {
    if let Some(code) = err.status() {
        let code = u16::from(code);
        let reply = std::error::Error::source(err)
            .map(|reply| redact_reply(&reply.to_string()))
            .unwrap_or_default();
        return match classify(code) {
            ReplyClass::Permanent => Error::Rejected { code, reply },
            ReplyClass::Transient => Error::Deferred { code, reply },
            ReplyClass::Accepted => Error::Connection {
                detail: format!("unexpected reply {code} {reply}"),
            },
        };
    }
    if err.is_timeout() {
        return Error::Timeout(CONNECT_TIMEOUT);
    }
    let detail = redact_reply(&err.to_string());
    if err.is_client() {
        Error::Unsendable { detail }
    } else {
        Error::Connection { detail }
    }
}

/// What one [`Relay::step`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Messages the server accepted; they have left the outbox.
    pub sent: usize,
    /// Messages kept for a later attempt.
    pub deferred: usize,
    /// Outbox ids of the messages that became dead letters (the dead letter keeps the id), so
    /// the caller can tell the agent.
    pub failed: Vec<u64>,
}

/// How the relay settled one outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Sent,
    Deferred,
    Failed,
}

/// Told of every settled message once its store transaction is done (the daemon counts them).
pub type Observer = Arc<dyn Fn(OutboxKind, Settled) + Send + Sync>;

/// Sends the outbox. The only writer of outbox state after enqueueing: it removes, reschedules
/// and dead-letters entries, nothing else.
pub struct Relay {
    store: Store,
    transport: Transport,
    clock: Clock,
    /// Checked between messages; a send already under way is allowed to finish.
    cancel: CancellationToken,
    observer: Option<Observer>,
    /// With `[smtp] auth = "oauth2"`: the settings to rebuild the transport from, and the token
    /// it signs in with now.
    sign_in: Option<(config::Smtp, Option<crate::oauth::AccessToken>)>,
}

impl Relay {
    pub fn new(store: Store, transport: Transport, clock: Clock) -> Relay {
        Relay {
            store,
            transport,
            clock,
            cancel: CancellationToken::new(),
            observer: None,
            sign_in: None,
        }
    }

    /// Signs in with OAuth 2.0 when `config` says so (`auth = "oauth2"`): before each step the
    /// access token is checked, and the transport rebuilt with a new one when it changed.
    pub fn signing_in(mut self, config: &config::Smtp) -> Relay {
        if config.oauth2.is_some() {
            self.sign_in = Some((config.clone(), None));
        }
        self
    }

    /// Makes sure the transport signs in with a current access token; the reason when there
    /// is none to be had, which defers every due message like a server that is down.
    async fn renew_sign_in(&mut self) -> Option<String> {
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
    async fn distrust_token(&mut self) {
        if let Some((config, Some(token))) = &self.sign_in
            && let Some(oauth2) = &config.oauth2
            && let Err(err) = crate::oauth::invalidate(oauth2, token).await
        {
            warn!(error = %format!("{:#}", anyhow::Error::from(err)), "Cannot mark the access token as refused.");
        }
    }

    /// Reports every settled message to `observer`.
    pub fn observed_by(mut self, observer: Observer) -> Relay {
        self.observer = Some(observer);
        self
    }

    fn settled(&self, kind: OutboxKind, settled: Settled) {
        if let Some(observer) = &self.observer {
            observer(kind, settled);
        }
    }

    /// Sends every entry whose `next_attempt` has come, in outbox order, and settles each one
    /// in the store before the next is sent. Returns an error only when the store fails; SMTP
    /// failures are settled (deferred or dead-lettered) and counted in the outcome.
    pub async fn step(&mut self) -> Result<StepOutcome, Error> {
        let now = (self.clock)();
        let due: Vec<OutboxEntry> = self
            .store
            .outbox()?
            .into_iter()
            .filter(|entry| entry.next_attempt <= now)
            .collect();
        let mut outcome = StepOutcome::default();
        // Set when the server or the link is down: the rest of the due entries are deferred
        // with the same reason instead of each paying for its own failed connection.
        let mut server_trouble: Option<String> = None;
        if !due.is_empty() {
            server_trouble = self.renew_sign_in().await;
            if let Some(reason) = &server_trouble {
                error!(error = %reason, "Cannot sign in to SMTP; outgoing mail waits in the outbox.");
            }
        }
        let mut deferred_any = false;
        for entry in due {
            if self.cancel.is_cancelled() {
                break;
            }
            if let Some(reason) = &server_trouble {
                debug!(
                    outbox_id = entry.id,
                    "Deferred without trying, for the same server-side failure."
                );
                self.defer(&entry, reason)?;
                outcome.deferred += 1;
                deferred_any = true;
                continue;
            }
            let raw = self.store.outbox_raw(entry.id)?;
            match self.attempt(&entry, raw.as_deref()).await {
                Ok(()) => {
                    self.record_sent(&entry)?;
                    // The resend window of the at-least-once contract ends here.
                    self.store.flush_async().await?;
                    outcome.sent += 1;
                }
                Err(Error::Store(err)) => return Err(Error::Store(err)),
                Err(err) if err.is_permanent() => {
                    self.record_dead_letter(&entry, raw.as_deref(), &err)?;
                    self.store.flush_async().await?;
                    outcome.failed.push(entry.id);
                }
                Err(err) => {
                    let reason = err.to_string();
                    let attempts = entry.attempts.saturating_add(1);
                    if matches!(err, Error::Session { .. }) {
                        self.distrust_token().await;
                        error!(outbox_id = entry.id, attempts, error = %reason, "SMTP server refused the session; the message stays in the outbox until the [smtp] settings or the server are fixed.");
                    } else {
                        warn!(outbox_id = entry.id, attempts, error = %reason, "Sending failed; will retry.");
                    }
                    self.defer(&entry, &reason)?;
                    outcome.deferred += 1;
                    deferred_any = true;
                    if err.affects_every_message() {
                        server_trouble = Some(reason);
                    }
                }
            }
        }
        if deferred_any {
            // Losing a deferral to a crash only means an earlier retry; one flush is enough.
            self.store.flush_async().await?;
        }
        Ok(outcome)
    }

    /// Runs until `cancel`: a step, then a wait until the earliest `next_attempt`, a
    /// `wake.notify_one()` from whoever enqueued mail, or cancellation. A send already under
    /// way when `cancel` fires is finished and settled; the entries after it wait for the next
    /// start.
    pub async fn run(mut self, wake: Arc<Notify>, cancel: CancellationToken) {
        self.cancel = cancel.clone();
        let mut store_failures = 0_u32;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let pause = match self.step().await {
                Ok(outcome) => {
                    store_failures = 0;
                    if outcome != StepOutcome::default() {
                        debug!(
                            sent = outcome.sent,
                            deferred = outcome.deferred,
                            failed = outcome.failed.len(),
                            "Relay step done."
                        );
                    }
                    match self.until_next_due() {
                        Ok(pause) => pause,
                        Err(err) => {
                            store_failures = store_failures.saturating_add(1);
                            error!(error = %format!("{err:#}"), "Cannot read the outbox; retrying.");
                            backoff(store_failures)
                        }
                    }
                }
                Err(err) => {
                    store_failures = store_failures.saturating_add(1);
                    error!(error = %format!("{err:#}"), "Relay step failed; retrying.");
                    backoff(store_failures)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = wake.notified() => {}
                () = cancel.cancelled() => break,
            }
        }
        info!("Relay stopped.");
    }

    /// How long until the earliest entry is due (zero when one already is).
    fn until_next_due(&self) -> Result<Duration, Error> {
        let Some(earliest) = self
            .store
            .outbox()?
            .into_iter()
            .map(|entry| entry.next_attempt)
            .min()
        else {
            return Ok(IDLE_RECHECK);
        };
        let wait = earliest.duration_since((self.clock)());
        // Negative means overdue; a clock that jumped far back is re-read within the cap.
        Ok(Duration::try_from(wait)
            .unwrap_or(Duration::ZERO)
            .min(IDLE_RECHECK))
    }

    /// One SMTP transaction for one entry.
    async fn attempt(&self, entry: &OutboxEntry, raw: Option<&[u8]>) -> Result<(), Error> {
        let raw = raw.ok_or(Error::MissingRaw { id: entry.id })?;
        let envelope = envelope(entry)?;
        let data = wire_data(raw);
        debug!(outbox_id = entry.id, from = %entry.envelope_from, to = ?entry.recipients, size = data.len(), "Sending.");
        let deadline = send_deadline(data.len());
        // Not raced against cancellation: a transaction that has started is finished, so the
        // server's answer is settled in the store rather than guessed at after a restart.
        match tokio::time::timeout(deadline, self.transport.send_raw(&envelope, &data)).await {
            Err(_) => Err(Error::Timeout(deadline)),
            Ok(Ok(response)) => {
                let code = u16::from(response.code());
                match classify(code) {
                    ReplyClass::Accepted => Ok(()),
                    _ => Err(Error::Connection {
                        detail: format!("unexpected final reply {code}"),
                    }),
                }
            }
            Ok(Err(err)) => Err(self.explain(&err).await),
        }
    }

    /// lettre's `send_raw` connects, logs in and sends in one call, so a 5xx from AUTH (a wrong
    /// password) looks just like a 5xx from RCPT (an unknown recipient). Dead-lettering every
    /// message because of a bad password would be wrong, so a permanent-looking failure is
    /// checked with a session of its own (connect, TLS, AUTH, NOOP): if that fails too, the
    /// session was at fault and the message is kept.
    async fn explain(&self, err: &lettre::transport::smtp::Error) -> Error {
        let first = from_lettre(err);
        if !first.is_permanent() {
            return first;
        }
        debug!(error = %first, "Permanent failure; checking whether the session itself fails.");
        match tokio::time::timeout(SESSION_ALLOWANCE, self.transport.test_connection()).await {
            Err(_) => Error::Timeout(SESSION_ALLOWANCE),
            Ok(Ok(true)) => first,
            Ok(Ok(false)) => Error::Connection {
                detail: "the server did not answer NOOP".to_owned(),
            },
            Ok(Err(probe)) => match from_lettre(&probe) {
                Error::Rejected { code, reply } | Error::Deferred { code, reply } => {
                    Error::Session {
                        detail: format!("{code} {reply}"),
                    }
                }
                Error::Unsendable { detail } => Error::Session { detail },
                other => other,
            },
        }
    }

    fn record_sent(&self, entry: &OutboxEntry) -> Result<(), Error> {
        let event = Event {
            at: (self.clock)(),
            actor: Actor::System,
            kind: "sent".to_owned(),
            detail: format!(
                "{} to {} recipient(s)",
                entry.kind.name(),
                entry.recipients.len()
            ),
        };
        self.store.write(|tx| {
            tx.remove_outbox(entry.id)?;
            if let Some(id) = entry.ticket
                && let Some(mut ticket) = tx.ticket(id)?
            {
                tx.add_event(&mut ticket, &event)?;
                tx.put_ticket(&ticket)?;
            }
            Ok(())
        })?;
        self.settled(entry.kind, Settled::Sent);
        match entry.ticket {
            Some(ticket) => {
                info!(outbox_id = entry.id, %ticket, kind = entry.kind.name(), to = recipient_role(entry.kind), recipients = entry.recipients.len(), "Sent.");
            }
            None => {
                info!(
                    outbox_id = entry.id,
                    kind = entry.kind.name(),
                    to = recipient_role(entry.kind),
                    recipients = entry.recipients.len(),
                    "Sent."
                );
            }
        }
        Ok(())
    }

    fn defer(&self, entry: &OutboxEntry, reason: &str) -> Result<(), Error> {
        let attempts = entry.attempts.saturating_add(1);
        let delay = SignedDuration::try_from(backoff(attempts)).unwrap_or(SignedDuration::MAX);
        let updated = OutboxEntry {
            attempts,
            next_attempt: (self.clock)()
                .saturating_add(delay)
                .unwrap_or(Timestamp::MAX),
            last_error: Some(reason.to_owned()),
            ..entry.clone()
        };
        self.store.write(|tx| {
            // Something else (an erasure, an operator) may have removed the entry while it was
            // being sent; writing it back would resurrect it without its bytes.
            if tx.outbox_entry(updated.id)?.is_some() {
                tx.update_outbox(&updated)?;
            }
            Ok(())
        })?;
        self.settled(entry.kind, Settled::Deferred);
        Ok(())
    }

    fn record_dead_letter(
        &self,
        entry: &OutboxEntry,
        raw: Option<&[u8]>,
        err: &Error,
    ) -> Result<(), Error> {
        let now = (self.clock)();
        let attempts = entry.attempts.saturating_add(1);
        let dead = DeadLetter {
            entry: OutboxEntry {
                attempts,
                last_error: Some(err.to_string()),
                ..entry.clone()
            },
            failed_at: now,
            error: err.to_string(),
            reported: false,
            refused_code: match err {
                Error::Rejected { code, .. } => Some(*code),
                _ => None,
            },
        };
        let event = Event {
            at: now,
            actor: Actor::System,
            kind: "send_failed".to_owned(),
            detail: format!(
                "{} to {} recipient(s) {}",
                entry.kind.name(),
                entry.recipients.len(),
                err.event_summary()
            ),
        };
        self.store.write(|tx| {
            // An erasure may have removed the entry while it was being sent: then nothing of
            // it may come back as a dead letter.
            if tx.outbox_entry(entry.id)?.is_none() {
                return Ok(());
            }
            tx.remove_outbox(entry.id)?;
            tx.put_dead_letter(&dead, raw)?;
            if let Some(id) = entry.ticket
                && let Some(mut ticket) = tx.ticket(id)?
            {
                tx.add_event(&mut ticket, &event)?;
                tx.put_ticket(&ticket)?;
            }
            Ok(())
        })?;
        self.settled(entry.kind, Settled::Failed);
        let error = err.to_string();
        match entry.ticket {
            Some(ticket) => {
                error!(outbox_id = entry.id, %ticket, kind = entry.kind.name(), attempts, %error, "Message refused for good; kept as a dead letter (casemail deadletter list), an agent or operator must act.");
            }
            None => {
                error!(outbox_id = entry.id, kind = entry.kind.name(), attempts, %error, "Message refused for good; kept as a dead letter (casemail deadletter list), an operator must act.");
            }
        }
        Ok(())
    }
}

/// The envelope: `MAIL FROM` is the entry's sender (empty for the null sender `<>`, as bounces
/// use), `RCPT TO` each recipient. The addresses themselves are kept out of the error.
fn envelope(entry: &OutboxEntry) -> Result<Envelope, Error> {
    let from = if entry.envelope_from.is_empty() {
        None
    } else {
        Some(
            entry
                .envelope_from
                .parse::<Address>()
                .map_err(|err| Error::Envelope {
                    reason: format!("sender: {err}"),
                })?,
        )
    };
    let recipients = entry
        .recipients
        .iter()
        .enumerate()
        .map(|(position, recipient)| {
            recipient.parse::<Address>().map_err(|err| Error::Envelope {
                reason: format!("recipient {}: {err}", position + 1),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(from, recipients).map_err(|err| Error::Envelope {
        reason: err.to_string(),
    })
}

/// Who a kind of mail goes to, by role, for logs that must not name addresses.
pub fn recipient_role(kind: OutboxKind) -> &'static str {
    match kind {
        OutboxKind::Relay | OutboxKind::Acknowledgement => "requester",
        // Notifications go to caseworkers, notices to coordinators; refusal notices go back to
        // the caseworker who wrote.
        OutboxKind::Notification | OutboxKind::Bounce => "team",
        OutboxKind::Digest => "coordinators",
    }
}

#[cfg(test)]
mod tests;

//! The process stage: the single writer. Takes fetched raw messages in order, runs each through
//! parse → thread → store, and commits many messages with one durable flush (group commit).
//! Only after that flush does it tell the fetchers which UIDs they may acknowledge on IMAP.
//!
//! Parse and threading are pure; this module owns the glue, the per-message time budget and
//! the quarantine of messages that cannot be processed. It must not speak IMAP or SMTP.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use crate::casework::assign::{self, Team, TeamChange};
use crate::casework::gate;
use crate::casework::reply::{self, Verdict};
use crate::casework::threading::{self, Dedupe, Hints, Inbound, OpenTicketRule, Placement};
use crate::casework::token::Secret;
use crate::config::Config;
use crate::ids::{TicketId, Uid, UidValidity};
use crate::imap::{Committed, Fetched};
use crate::mail::compose::{AttachmentBytes, Why};
use crate::mail::parse::{self, InboundMail, ParseLimits};
use crate::metrics::{Metrics, Stage};
use crate::model::{
    Actor, AttachmentMeta, Cursor, Direction, Event, QuarantineEntry, Role, Source, Status,
    StoredMessage, Ticket, TicketFlag,
};
use crate::model::{Arrival, FolderKind};
use crate::store::{self, Store, WriteTx};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    NewTicket(TicketId),
    Added(TicketId, threading::Reason),
    Duplicate(TicketId),
    Quarantined(String),
    /// A caseworker's reply, relayed to the requester.
    Relayed(TicketId),
    /// Something that looked like a caseworker's reply and was refused.
    ReplyRefused(TicketId, String),
    /// A caseworker's genuine reply the relay gate held (kept as a note, never sent), and why.
    ReplyHeld(TicketId, String),
    /// A caseworker's answer the gate cleared that was not sent (the requester's address is
    /// suppressed): kept as a dead letter, and why.
    ReplyNotSent(TicketId, String),
    /// A delivery report for mail sent on a ticket, filed with that ticket.
    Bounced(TicketId),
}

impl Outcome {
    /// How the figures count it.
    fn counted(&self) -> crate::metrics::Filed {
        use crate::metrics::Filed;
        match self {
            Outcome::NewTicket(_) | Outcome::Added(..) => Filed::Ticket,
            Outcome::Duplicate(_) => Filed::Duplicate,
            Outcome::Quarantined(_) => Filed::Quarantined,
            Outcome::Relayed(_) => Filed::Relayed,
            Outcome::ReplyRefused(..) => Filed::ReplyRefused,
            Outcome::ReplyHeld(..) => Filed::ReplyHeld,
            Outcome::ReplyNotSent(..) => Filed::ReplyNotSent,
            Outcome::Bounced(_) => Filed::Bounced,
        }
    }
}

use crate::clock::Clock;

/// Work that must run in the single writer, between batches (an erasure from the control
/// socket). The team is reloaded after each job.
pub type Job = Box<dyn FnOnce(&Store) + Send>;

/// Runs until every fetcher has dropped its sender and the channel is drained. Returns an error
/// only when the store fails; then nothing of the failing batch was acknowledged.
///
/// `team_changed` is notified after a coordinator changes agents or the rota: the cached team
/// is loaded again before the next message or sweep.
#[allow(clippy::too_many_arguments)] // Each is a separate link the daemon wires to this stage.
pub async fn run(
    store: Store,
    config: Arc<Config>,
    mut incoming: mpsc::Receiver<Fetched>,
    clock: Clock,
    on_alive: Arc<dyn Fn() + Send + Sync>,
    outbox_ready: Arc<tokio::sync::Notify>,
    team_changed: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    reload_config: Arc<tokio::sync::Notify>,
    mut jobs: mpsc::Receiver<Job>,
) -> Result<(), Error> {
    let mut config = config;
    let mut team = Team::load(&store)?;
    let mut secret = Secret::load_or_create(&config.helpdesk.state_dir)?;
    let batch_size = usize::try_from(config.ingest.batch_size)
        .unwrap_or(200)
        .max(1);
    let mut suspects = recover_in_flight(&store)?;
    let mut next_sweep = tokio::time::Instant::now();
    loop {
        let first = tokio::select! {
            item = incoming.recv() => match item {
                Some(first) => first,
                None => break,
            },
            () = tokio::time::sleep_until(next_sweep) => {
                let now = clock();
                let swept = tokio::task::block_in_place(|| {
                    assign::sweep(&store, &config, &mut team, &secret, now, rand::random())
                })?;
                for (ticket, agent) in &swept.assigned {
                    info!(ticket = ticket.0, agent = %agent, "Waiting ticket assigned.");
                }
                for (ticket, agent) in &swept.handed_over {
                    info!(ticket = ticket.0, agent = %agent, "Ticket handed over: no answer in time.");
                }
                let purged = tokio::task::block_in_place(|| {
                    crate::casework::spam::held::purge_expired(&store, config.spam.keep_for, now)
                })?;
                for ticket in &purged {
                    info!(ticket = ticket.0, "Spam ticket purged: older than keep_for.");
                }
                let (_, purge_due) = tokio::task::block_in_place(|| {
                    crate::casework::purge::retention_sweep(&store, config.retention.closed_after, now)
                })?;
                outbox_ready.notify_one();
                let due = match (swept.next_due, purge_due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                next_sweep = next_sweep_at(due, now);
                on_alive();
                continue;
            }
            () = reload_config.notified() => {
                config = reload_spam_rules(&config);
                continue;
            }
            Some(job) = jobs.recv() => {
                tokio::task::block_in_place(|| job(&store));
                team = tokio::task::block_in_place(|| Team::load(&store))?;
                // A job may have rotated the reply secret (`casemail secret rotate`).
                secret = Secret::load_or_create(&config.helpdesk.state_dir)?;
                next_sweep = tokio::time::Instant::now();
                continue;
            }
            () = team_changed.notified() => {
                // Also notified after failed commands and by the relay after a failed send:
                // the line is logged only when agents or the rota really changed.
                let fresh = tokio::task::block_in_place(|| Team::load(&store))?;
                if fresh.roster_differs(&team) {
                    info!("Agents or rota changed; team reloaded.");
                }
                team = fresh;
                // Sweep now, so waiting tickets reach whoever just came on duty.
                next_sweep = tokio::time::Instant::now();
                continue;
            }
        };
        // Messages that were being processed when the daemon last died are taken one at a
        // time, so a message that kills the process is the only one blamed for it.
        let limit = if suspects.is_empty() { batch_size } else { 1 };
        suspects.retain(|s| *s != first.source);
        let mut batch = vec![first];
        while batch.len() < limit {
            match incoming.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let sources: Vec<Source> = batch.iter().map(|f| f.source.clone()).collect();
        store.write(|tx| tx.set_in_flight(&sources))?;
        store.flush_async().await?;
        let acks =
            process_batch(&store, &config, &clock, &mut team, &secret, &metrics, batch).await?;
        if team.take_sweep_request() {
            next_sweep = tokio::time::Instant::now();
        }
        store.write(|tx| tx.set_in_flight(&[]))?;
        let commit_started = std::time::Instant::now();
        store.flush_async().await?;
        metrics.observe(Stage::Commit, commit_started.elapsed());
        for ((_, uidvalidity), (sender, uids)) in acks {
            // A fetcher that has gone away reconnects later and acknowledges from the cursor.
            let _ = sender.send(Committed { uidvalidity, uids });
        }
        outbox_ready.notify_one();
        on_alive();
    }
    Ok(())
}

/// The `[spam]` section read again from the config file (SIGHUP); on a bad file the rules in
/// use are kept.
fn reload_spam_rules(config: &Arc<Config>) -> Arc<Config> {
    match crate::config::load(&config.source) {
        Ok(fresh) => {
            info!(
                rules = fresh.spam.rules.len(),
                threshold = fresh.spam.threshold,
                "Spam rules reloaded."
            );
            Arc::new(Config {
                spam: fresh.spam,
                ..Config::clone(config)
            })
        }
        Err(err) => {
            warn!(error = %err, "Spam rules not reloaded: the config file is not valid; the previous rules stay in use.");
            config.clone()
        }
    }
}

/// Sweeps run at least this often, and otherwise when something falls due.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

fn next_sweep_at(due: Option<Timestamp>, now: Timestamp) -> tokio::time::Instant {
    let until_due = due
        .and_then(|due| due.duration_since(now).try_into().ok())
        .map(|d: Duration| d.max(Duration::from_millis(50)))
        .unwrap_or(SWEEP_INTERVAL);
    tokio::time::Instant::now() + until_due.min(SWEEP_INTERVAL)
}

/// Counts an attempt against every message that was in flight when the process stage last
/// stopped without finishing its batch, and returns them.
fn recover_in_flight(store: &Store) -> Result<Vec<Source>, store::Error> {
    let mut suspects = Vec::new();
    for source in store.in_flight()? {
        let committed = store
            .cursor(&source.mailbox)?
            .is_some_and(|c| c.uidvalidity == source.uidvalidity && c.last_uid >= source.uid);
        if committed {
            continue;
        }
        let attempts = store.attempts(&source)?.saturating_add(1);
        warn!(folder = %source.mailbox, uid = %source.uid, attempts, "Message was being processed when casemail stopped unexpectedly.");
        store.write(|tx| tx.set_attempts(&source, attempts))?;
        suspects.push(source);
    }
    store.write(|tx| tx.set_in_flight(&[]))?;
    store.flush()?;
    Ok(suspects)
}

type AckMap = BTreeMap<(String, UidValidity), (mpsc::UnboundedSender<Committed>, Vec<Uid>)>;

async fn process_batch(
    store: &Store,
    config: &Arc<Config>,
    clock: &Clock,
    team: &mut Team,
    secret: &Secret,
    metrics: &Metrics,
    batch: Vec<Fetched>,
) -> Result<AckMap, store::Error> {
    let mut acks: AckMap = BTreeMap::new();
    let limits = ParseLimits {
        max_attachment_size: config.ingest.max_attachment_size,
    };
    // The next message is parsed on its own thread while this one is filed, so parsing and
    // filing overlap. It belongs to the same batch, which is marked in flight as a whole, so a
    // message that kills the process is still blamed correctly after a restart. Only a message
    // with no failed attempts is parsed ahead: one that failed before is parsed, or
    // quarantined without parsing, only after its attempts are checked.
    let parse_ahead = |fetched: &Fetched| match store.attempts(&fetched.source) {
        Ok(0) => start_parse(Arc::from(fetched.raw.as_slice()), limits).ok(),
        _ => None,
    };
    let mut ahead = batch.first().and_then(parse_ahead);
    for (index, fetched) in batch.iter().enumerate() {
        let current = ahead.take();
        ahead = batch.get(index + 1).and_then(parse_ahead);
        let span = info_span!("mail", folder = %fetched.source.mailbox, uid = %fetched.source.uid, uidvalidity = %fetched.source.uidvalidity, ticket = tracing::field::Empty);
        let outcome = process_fetched(
            store, config, clock, team, secret, metrics, fetched, current,
        )
        .instrument(span.clone())
        .await?;
        metrics.message_filed(outcome.counted());
        span.in_scope(|| match &outcome {
            Outcome::NewTicket(id) => {
                tracing::Span::current().record("ticket", id.0);
                // The owner's agent id (never an address), or none while the ticket waits.
                let owner = store.ticket(*id).ok().flatten().and_then(|t| t.owner);
                match owner {
                    Some(agent) => info!(%agent, "New ticket."),
                    None => info!(agent = "none", "New ticket."),
                }
            }
            Outcome::Added(id, reason) => {
                tracing::Span::current().record("ticket", id.0);
                info!(reason = reason.as_str(), "Message added to ticket.");
            }
            Outcome::Duplicate(id) => {
                tracing::Span::current().record("ticket", id.0);
                info!("Duplicate of a stored message.");
            }
            Outcome::Quarantined(reason) => warn!(%reason, "Message quarantined."),
            Outcome::Relayed(id) => {
                tracing::Span::current().record("ticket", id.0);
                info!("Caseworker's reply relayed to the requester.");
            }
            Outcome::ReplyRefused(id, reason) => {
                tracing::Span::current().record("ticket", id.0);
                warn!(%reason, "Reply refused; not relayed.");
            }
            Outcome::ReplyHeld(id, reason) => {
                tracing::Span::current().record("ticket", id.0);
                info!(%reason, "Reply held by the relay gate; not relayed.");
            }
            Outcome::ReplyNotSent(id, reason) => {
                tracing::Span::current().record("ticket", id.0);
                warn!(%reason, "Caseworker's reply not sent; kept as a dead letter (casemail deadletter list).");
            }
            Outcome::Bounced(id) => {
                tracing::Span::current().record("ticket", id.0);
                warn!("Delivery report filed with its ticket.");
            }
        });
        acks.entry((fetched.source.mailbox.clone(), fetched.source.uidvalidity))
            .or_insert_with(|| (fetched.ack.clone(), Vec::new()))
            .1
            .push(fetched.source.uid);
    }
    Ok(acks)
}

/// Parses on a worker thread under the time budget, retrying up to `max_attempts`; a message
/// that still fails is quarantined with its raw bytes.
#[allow(clippy::too_many_arguments)] // The stage's links, plus the parse started ahead.
async fn process_fetched(
    store: &Store,
    config: &Arc<Config>,
    clock: &Clock,
    team: &mut Team,
    secret: &Secret,
    metrics: &Metrics,
    fetched: &Fetched,
    mut ahead: Option<Parsing>,
) -> Result<Outcome, store::Error> {
    let limits = ParseLimits {
        max_attachment_size: config.ingest.max_attachment_size,
    };
    let mut last_failure = String::new();
    let attempts_before = store.attempts(&fetched.source)?;
    let max_attempts = config.ingest.max_attempts.max(1);
    for attempt in attempts_before.saturating_add(1)..=max_attempts {
        // The first attempt uses the parse started ahead of time, if there is one.
        let parsing = match ahead.take() {
            Some(parsing) => Ok(parsing),
            None => start_parse(Arc::from(fetched.raw.as_slice()), limits),
        };
        let parsed = match parsing {
            Ok(parsing) => finish_parse(parsing, config.ingest.message_time_budget, metrics).await,
            Err(failure) => Err(failure),
        };
        match parsed {
            Ok(mut mail) => {
                if let Some(size) = fetched.oversized {
                    // Acknowledging moves it to the processed folder, or leaves it flagged
                    // where it is when there is none.
                    let folder = config
                        .imap
                        .processed_folder
                        .as_deref()
                        .unwrap_or(&fetched.source.mailbox);
                    mark_too_large(&mut mail, size, config.ingest.max_message_size, folder);
                }
                let spamd = ask_spamd(config, team, fetched, &mail).await;
                // Filing is a few store operations; doing it in place keeps the team's
                // caseloads a plain `&mut` owned by this single writer.
                let now = clock();
                let nonce = rand::random();
                let file_started = std::time::Instant::now();
                let filed = tokio::task::block_in_place(|| {
                    let filing = Filing {
                        store,
                        secret,
                        config,
                        now,
                        nonce,
                        spamd,
                    };
                    let (outcome, change) = filing.file(
                        team,
                        &fetched.source,
                        fetched.kind,
                        fetched.arrival,
                        &mail,
                        &fetched.raw,
                    )?;
                    team.committed(&change);
                    if change.reload {
                        *team = Team::load(store)?;
                        team.request_sweep();
                    }
                    // An answer held back for a suppressed address is a dead letter now: the
                    // sweep tells the caseworker without waiting for its turn.
                    if matches!(outcome, Outcome::ReplyNotSent(..))
                        && store.dead_letters()?.iter().any(|d| !d.reported)
                    {
                        team.request_sweep();
                    }
                    Ok(outcome)
                });
                metrics.observe(Stage::File, file_started.elapsed());
                return filed;
            }
            Err(failure) => {
                warn!(attempt, max_attempts, reason = %failure, "Processing a message failed.");
                last_failure = failure;
                let source = fetched.source.clone();
                store.write(|tx| tx.set_attempts(&source, attempt))?;
            }
        }
    }
    if last_failure.is_empty() {
        last_failure = format!(
            "casemail stopped unexpectedly {attempts_before} times while processing this message"
        );
    }
    quarantine(store, clock(), fetched, &last_failure, max_attempts)
}

/// A message filed from its header fields only, because it is over `[ingest]
/// max_message_size`: the anomaly says so, and the text, which the caseworker's notification
/// shows, says where the whole message is.
fn mark_too_large(mail: &mut InboundMail, size: u64, limit: u64, folder: &str) {
    mail.anomalies.retain(|anomaly| {
        !matches!(
            anomaly,
            parse::Anomaly::NoText
                | parse::Anomaly::Unparseable {
                    reason: parse::Unparseable::NoBody
                }
        )
    });
    mail.anomalies
        .push(parse::Anomaly::TooLarge { size, limit });
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    mail.text = format!(
        "[casemail: this message is {:.1} MiB, over the {:.1} MiB limit, so only its header fields were fetched. The whole message, with its text and attachments, stays on the mail server, in the folder {folder:?}; ask whoever runs casemail for it.]",
        mib(size),
        mib(limit),
    );
    mail.attachments.clear();
}

fn is_too_large(mail: &InboundMail) -> bool {
    mail.anomalies
        .iter()
        .any(|anomaly| matches!(anomaly, parse::Anomaly::TooLarge { .. }))
}

/// spamd's opinion of live mail, when `[spam] spamd` is set. Mail from the first-run backfill
/// (never routed) and from registered caseworkers is not sent.
async fn ask_spamd(
    config: &Config,
    team: &Team,
    fetched: &Fetched,
    mail: &InboundMail,
) -> crate::casework::spam::SpamdAnswer {
    use crate::casework::spam::SpamdAnswer;
    let Some(address) = config.spam.spamd else {
        return SpamdAnswer::NotAsked;
    };
    if fetched.arrival == Arrival::Backfill {
        return SpamdAnswer::NotAsked;
    }
    let sender = sender_address(mail);
    if team.agents().any(|a| a.emails.contains(&sender)) {
        return SpamdAnswer::NotAsked;
    }
    let answer =
        crate::casework::spam::spamd::check(address, &fetched.raw, config.spam.spamd_timeout).await;
    if let SpamdAnswer::Unavailable(reason) = &answer {
        warn!(%reason, "spamd unavailable; the verdict goes on without it.");
    }
    answer
}

/// A parse running on a thread of its own, so a message that makes the parser spin costs one
/// thread, not the process stage; the parser is pure, so abandoning it is safe.
struct Parsing {
    started: std::time::Instant,
    done: tokio::sync::oneshot::Receiver<(std::thread::Result<InboundMail>, Duration)>,
}

fn start_parse(raw: Arc<[u8]>, limits: ParseLimits) -> Result<Parsing, String> {
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let started = std::time::Instant::now();
    std::thread::Builder::new()
        .name("casemail-parse".to_owned())
        .spawn(move || {
            let began = std::time::Instant::now();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| parse::parse(&raw, &limits)));
            let _ = done_tx.send((result, began.elapsed()));
        })
        .map_err(|err| format!("cannot start a parser thread: {err}"))?;
    Ok(Parsing { started, done })
}

/// Waits for a parse, giving up once `budget` has passed since it started.
async fn finish_parse(
    parsing: Parsing,
    budget: Duration,
    metrics: &Metrics,
) -> Result<InboundMail, String> {
    let started = parsing.started;
    let left = budget.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, parsing.done).await {
        Err(_) => {
            metrics.observe(Stage::Parse, started.elapsed());
            Err(format!("parsing took longer than {budget:?}"))
        }
        Ok(Err(_)) => Err("the parser failed on this message".to_owned()),
        Ok(Ok((result, took))) => {
            metrics.observe(Stage::Parse, took);
            result.map_err(|_| "the parser failed on this message".to_owned())
        }
    }
}

fn quarantine(
    store: &Store,
    now: Timestamp,
    fetched: &Fetched,
    reason: &str,
    attempts: u32,
) -> Result<Outcome, store::Error> {
    let entry = QuarantineEntry {
        source: fetched.source.clone(),
        at: now,
        attempts,
        reason: reason.to_owned(),
        size: fetched.raw.len() as u64,
    };
    store.write(|tx| {
        tx.put_quarantine(&entry, &fetched.raw)?;
        tx.clear_attempts(&entry.source)?;
        advance_cursor(tx, &entry.source)?;
        Ok(())
    })?;
    Ok(Outcome::Quarantined(reason.to_owned()))
}

fn advance_cursor(tx: &WriteTx<'_>, source: &Source) -> store::TxResult<()> {
    let newer = match tx.cursor(&source.mailbox)? {
        Some(cursor) => cursor.uidvalidity != source.uidvalidity || cursor.last_uid < source.uid,
        None => true,
    };
    if newer {
        tx.set_cursor(
            &source.mailbox,
            &Cursor {
                uidvalidity: source.uidvalidity,
                last_uid: source.uid,
            },
        )?;
    }
    Ok(())
}

/// The warning a message carries into its notification: it failed authentication, or it
/// joined its ticket by a header match (`stranger`) from an address not on the ticket.
fn warning(
    authentication: &crate::casework::auth::Verdict,
    stranger: Option<threading::Reason>,
) -> Option<String> {
    if let Some(failure) = authentication.failure() {
        return Some(crate::casework::auth::failed_warning(failure));
    }
    stranger.map(|reason| crate::casework::auth::stranger_warning(reason.as_str()))
}

/// A delivery report about mail casemail sent: the ticket the quoted Message-IDs belong to (as
/// the index names it, before merges), those Message-IDs, and the report's authentication.
struct Report<'a> {
    ticket: TicketId,
    quoted: &'a [crate::ids::MessageId],
    authentication: &'a crate::casework::auth::Verdict,
}

/// What filing one message needs besides the message.
pub struct Filing<'a> {
    pub store: &'a Store,
    pub secret: &'a Secret,
    pub config: &'a Config,
    pub now: Timestamp,
    /// Randomness for the Message-IDs of mail this filing queues.
    pub nonce: u64,
    /// What spamd said about the message, asked before filing.
    pub spamd: crate::casework::spam::SpamdAnswer,
}

impl Filing<'_> {
    /// Threads a parsed message and writes it, its ticket change, its routing, the mail that
    /// goes with it and the folder cursor in one transaction.
    pub fn file(
        &self,
        team: &Team,
        source: &Source,
        kind: FolderKind,
        arrival: Arrival,
        mail: &InboundMail,
        raw: &[u8],
    ) -> Result<(Outcome, TeamChange), store::Error> {
        let (store, config, now) = (self.store, self.config, self.now);
        let sender = sender_address(mail);
        // One verdict for the whole message; everything below that changes state asks it.
        let authentication = crate::casework::auth::verdict(mail, &config.auth);
        let rule = if config.threading.one_open_ticket_per_requester {
            OpenTicketRule::OnePerRequester
        } else {
            OpenTicketRule::NewTicketEachTime
        };
        let dedupe = threading::dedupe(
            &mail.key,
            &threading::Content::of_mail(mail, &sender),
            store,
        )?;
        let reused;
        let mail = match &dedupe {
            Dedupe::Reused { key } => {
                info!("A different message with a stored Message-ID; filed on its own.");
                let mut copy = mail.clone();
                copy.key = key.clone();
                copy.anomalies.push(parse::Anomaly::ReusedMessageId);
                reused = copy;
                &reused
            }
            Dedupe::Stored { .. } | Dedupe::New => mail,
        };
        // Mail without a usable From has no requester to thread by: the placeholder address or
        // an envelope sender would join strangers' mail into one ticket.
        let author = mail
            .from
            .as_ref()
            .filter(|from| from.address.contains('@'))
            .map(|_| sender.as_str());
        let inbound = Inbound {
            key: &mail.key,
            sender: author,
            subject: mail.subject.as_deref(),
            in_reply_to: &mail.in_reply_to,
            references: &mail.references,
        };
        let placement = match dedupe {
            Dedupe::Stored { ticket, seq } => Placement::Duplicate { ticket, seq },
            Dedupe::New | Dedupe::Reused { .. } => {
                threading::place(&inbound, Hints::default(), rule, store)?
            }
        };
        // Mail casemail sent that came back (its own loop header) is kept as a note, never
        // routed, relayed or answered: answering it is how a loop starts.
        let own_mail = crate::casework::mail_loops::is_own_mail(mail, &config.helpdesk.address);
        // An Outlook reaction ("… reacted to your message") is no answer and no request: kept as
        // a note the same way, never relayed, never reopening or routing a ticket.
        let reaction = !own_mail && crate::mail::reaction::is_reaction(mail);
        let note_only = own_mail || reaction;
        // A caseworker's answer to a notification is not requester mail: the bridge decides
        // whether it is relayed. A second copy of it is an ordinary duplicate.
        let verdict = match placement {
            Placement::Duplicate { .. } => Verdict::NotAReply,
            // Without its text a message can carry no answer or command: one too large to
            // fetch is filed as mail to the ticket, never relayed.
            _ if arrival == Arrival::Backfill || note_only || is_too_large(mail) => {
                Verdict::NotAReply
            }
            _ => {
                let agents: Vec<&crate::model::Agent> = team.agents().collect();
                let context = reply::Context {
                    secret: self.secret,
                    agents: &agents,
                    auth: &authentication,
                    settings: &config.auth,
                    now,
                };
                reply::classify(mail, &sender, &context, |id| {
                    let id = crate::casework::admin::resolve_merged(store, id).ok()?;
                    let ticket = store.ticket(id).ok().flatten()?;
                    let closed_at = match ticket.status {
                        Status::Closed => reply::closed_at(&ticket, &store.events(id).ok()?),
                        _ => None,
                    };
                    Some(reply::Known { ticket, closed_at })
                })
            }
        };
        if verdict != Verdict::NotAReply {
            return self.file_reply(team, source, mail, raw, &sender, &verdict);
        }
        // A delivery report about mail casemail sent belongs to that mail's ticket, not to a
        // new ticket from MAILER-DAEMON.
        if mail.is_delivery_report
            && !matches!(placement, Placement::Duplicate { .. })
            && let Some((ticket, quoted)) = assign::bounced_ticket(store, raw)?
        {
            let report = Report {
                ticket,
                quoted: &quoted,
                authentication: &authentication,
            };
            return self.file_bounce(team, source, mail, raw, &sender, &report);
        }
        let spam = match placement {
            Placement::Duplicate { .. } => None,
            _ => Some(self.spam_verdict(kind, mail, raw, &sender)?),
        };
        let is_spam = spam.as_ref().is_some_and(|v| v.spam);
        if let Some(verdict) = spam.as_ref().filter(|v| v.spam) {
            // Signal names and weights only: the reasons' details may quote the message.
            info!(
                score = verdict.score,
                signals = %verdict.summary(),
                "Message judged spam."
            );
        }
        // Routing reads the store outside the transaction: this is the only writer, so
        // nothing changes in between. Mail judged spam is never routed; mail from a junk
        // folder that is not judged spam (an allow-listed sender) is routed like any other.
        let routable = arrival == Arrival::Live && !is_spam && !note_only;
        // Mail that fails authentication is not from who it claims: no acknowledgement goes to
        // the address it names.
        let acknowledge = routable
            && config.acknowledge.enabled
            && !authentication.is_fail()
            && self.may_acknowledge(team, mail, &sender);
        let decision = match placement {
            Placement::Duplicate { .. } => None,
            _ if !routable => None,
            Placement::NewTicket => {
                let previous = assign::previous_owner(store, &sender, None)?;
                let blank = blank_ticket(TicketId(0), &sender, now);
                Some(team.decide(&blank, previous.as_ref(), None, now))
            }
            Placement::Existing { ticket, .. } => match store.ticket(ticket)? {
                Some(record)
                    if record.status != Status::Spam
                        && !record.flags.contains(&TicketFlag::Backfilled) =>
                {
                    let previous = assign::previous_owner(store, &record.requester, Some(ticket))?;
                    Some(team.decide(&record, previous.as_ref(), None, now))
                }
                _ => None,
            },
        };
        let attachments = attachment_bytes(mail);
        let helpdesk = assign::sender(config);
        let context = assign::Context {
            team,
            secret: self.secret,
            sender: &helpdesk,
            limits: self.config.loops,
            now,
            nonce: self.nonce,
        };
        let (outcome, change) = store.write(|tx| {
            let mut change = TeamChange::default();
            let outcome = match placement {
                Placement::Duplicate { ticket, seq } => {
                    file_duplicate(tx, now, source, ticket, seq)?;
                    Outcome::Duplicate(ticket)
                }
                Placement::Existing { ticket, reason } => {
                    let mut record = tx.ticket(ticket)?.ok_or_else(|| {
                        store::Error::Inconsistent(format!(
                            "threading chose missing ticket {ticket}"
                        ))
                    })?;
                    // A header match (or tag) from an address that has not written in the ticket
                    // is how a stranger who knows a Message-ID reaches the caseworker.
                    let stranger = matches!(reason, threading::Reason::Headers | threading::Reason::SubjectTag)
                        && !record.participants.contains(&sender);
                    let mut message =
                        add_message(tx, now, &mut record, source, kind, mail, raw, &sender)?;
                    if let Some(warning) = warning(&authentication, stranger.then_some(reason)) {
                        message.anomalies.push(warning);
                        tx.put_message(&message, None)?;
                    }
                    if own_mail {
                        file_as_note(tx, now, &mut record, message.clone(), &OWN_MAIL)?;
                    } else if reaction {
                        file_as_note(tx, now, &mut record, message.clone(), &REACTION)?;
                    } else if matches!(record.status, Status::Waiting | Status::Closed) && !is_spam
                    {
                        record.status = Status::Open;
                    }
                    if let Some(verdict) = spam.as_ref().filter(|v| v.spam) {
                        record.flags.insert(TicketFlag::SuspectedSpam);
                        tx.add_event(
                            &mut record,
                            &Event {
                                at: now,
                                actor: Actor::System,
                                kind: "spam_suspected".to_owned(),
                                detail: format!(
                                    "a message judged spam (score {:.2}: {}) was added; the ticket keeps its status",
                                    verdict.score,
                                    verdict.summary()
                                ),
                            },
                        )?;
                    }
                    let event = Event {
                        at: now,
                        actor: Actor::Requester(sender.clone()),
                        kind: "message_added".to_owned(),
                        detail: format!("threaded by {}", reason.as_str()),
                    };
                    tx.add_event(&mut record, &event)?;
                    if let Some(decision) = &decision {
                        assign::apply(
                            tx,
                            &context,
                            &mut record,
                            decision,
                            Some(&message),
                            &attachments,
                            Why::FollowUp,
                            &mut change,
                        )?;
                    }
                    tx.put_ticket(&record)?;
                    Outcome::Added(ticket, reason)
                }
                Placement::NewTicket => {
                    let id = tx.allocate_ticket_id()?;
                    let mut record = blank_ticket(id, &sender, now);
                    if let Some(verdict) = &spam {
                        if verdict.spam {
                            record.status = Status::Spam;
                        }
                        // Kept for every new ticket, so `ticket show` explains the verdict
                        // either way.
                        tx.put_spam_record(
                            id,
                            &crate::casework::spam::held::SpamRecord {
                                at: now,
                                verdict: verdict.clone(),
                            },
                        )?;
                    }
                    record.subject = mail
                        .thread_subject
                        .clone()
                        .or_else(|| mail.subject.clone())
                        .unwrap_or_else(|| "(no subject)".to_owned());
                    record.requester_name = mail.from.as_ref().and_then(|f| f.name.clone());
                    let mut message =
                        add_message(tx, now, &mut record, source, kind, mail, raw, &sender)?;
                    if let Some(warning) = warning(&authentication, None) {
                        message.anomalies.push(warning);
                        tx.put_message(&message, None)?;
                    }
                    if arrival == Arrival::Backfill {
                        record.flags.insert(TicketFlag::Backfilled);
                    }
                    let detail = match arrival {
                        Arrival::Live => format!("from {}", source.mailbox),
                        Arrival::Backfill => format!(
                            "from {} (first-run backfill: nobody is notified)",
                            source.mailbox
                        ),
                    };
                    let event = Event {
                        at: now,
                        actor: Actor::Requester(sender.clone()),
                        kind: "created".to_owned(),
                        detail,
                    };
                    tx.add_event(&mut record, &event)?;
                    if own_mail {
                        record.status = Status::Closed;
                        file_as_note(tx, now, &mut record, message.clone(), &OWN_MAIL)?;
                    } else if reaction {
                        record.status = Status::Closed;
                        file_as_note(tx, now, &mut record, message.clone(), &REACTION)?;
                    }
                    if let Some(verdict) = spam.as_ref().filter(|v| v.spam) {
                        let event = Event {
                            at: now,
                            actor: Actor::System,
                            kind: "spam".to_owned(),
                            detail: format!(
                                "held as spam, score {:.2} (threshold {}): {}",
                                verdict.score,
                                config.spam.threshold,
                                verdict.summary()
                            ),
                        };
                        tx.add_event(&mut record, &event)?;
                    }
                    if let Some(decision) = &decision {
                        assign::apply(
                            tx,
                            &context,
                            &mut record,
                            decision,
                            Some(&message),
                            &attachments,
                            Why::Assigned,
                            &mut change,
                        )?;
                    }
                    // Spam is never acknowledged, whichever check set the status.
                    if acknowledge
                        && record.status != Status::Spam
                        && crate::casework::mail_loops::take_acknowledgement(tx, &sender, now)?
                    {
                        acknowledge_request(tx, &context, config, &record, mail)?;
                    }
                    tx.put_ticket(&record)?;
                    Outcome::NewTicket(id)
                }
            };
            tx.clear_attempts(source)?;
            advance_cursor(tx, source)?;
            Ok((outcome, change))
        })?;
        debug!(?outcome, "Message filed.");
        Ok((outcome, change))
    }
}

impl Filing<'_> {
    /// The spam verdict on ordinary inbound mail: whether the sender is a known requester and
    /// what the classifier says are read from the store, spamd's answer was asked before.
    fn spam_verdict(
        &self,
        kind: FolderKind,
        mail: &InboundMail,
        raw: &[u8],
        sender: &str,
    ) -> Result<crate::casework::spam::Verdict, store::Error> {
        use crate::casework::spam::{self, Requester};
        let mut requester = Requester::New;
        for id in self.store.tickets_of_requester(sender)? {
            if let Some(ticket) = self.store.ticket(id)?
                && ticket.status != Status::Spam
            {
                requester = Requester::Known;
                break;
            }
        }
        let tokens = spam::bayes::tokens_of_mail(mail);
        let classifier = spam::bayes::classify(self.store, &tokens)?;
        let context = spam::Context {
            folder: kind,
            requester,
            spamd: self.spamd.clone(),
            classifier,
        };
        Ok(spam::assess(&self.config.spam, mail, raw, &context))
    }

    /// Files a delivery report as an internal note of the ticket whose mail bounced, and tells
    /// the caseworker (or the coordinators).
    fn file_bounce(
        &self,
        team: &Team,
        source: &Source,
        mail: &InboundMail,
        raw: &[u8],
        sender: &str,
        report: &Report<'_>,
    ) -> Result<(Outcome, TeamChange), store::Error> {
        let now = self.now;
        // Who the quoted messages went to, as recorded when they were queued.
        let mut recipients: Option<Vec<String>> = None;
        for id in report.quoted {
            if let Some(sent) = self.store.sent(report.ticket, id)? {
                recipients
                    .get_or_insert_with(Vec::new)
                    .extend(sent.recipients);
            }
        }
        let agent_addresses: Vec<&str> = team
            .agents()
            .flat_map(|a| a.emails.iter().map(String::as_str))
            .collect();
        let ticket_id = report.ticket;
        let helpdesk = assign::sender(self.config);
        let context = assign::Context {
            team,
            secret: self.secret,
            sender: &helpdesk,
            limits: self.config.loops,
            now,
            nonce: self.nonce,
        };
        let ticket_id = crate::casework::admin::resolve_merged(self.store, ticket_id)?;
        self.store.write(|tx| {
            let Some(mut ticket) = tx.ticket(ticket_id)? else {
                return Err(store::Error::Inconsistent(format!(
                    "bounce for missing ticket {ticket_id}"
                ))
                .into());
            };
            let mut note = stored_message(&ticket, Direction::Note, source, mail, sender, now);
            note.anomalies
                .push("delivery report: mail sent for this ticket bounced".to_owned());
            tx.put_message(&note, Some(raw))?;
            ticket.message_count = ticket.message_count.saturating_add(1);
            ticket.updated = now;
            let event = Event {
                at: now,
                actor: Actor::System,
                kind: "bounce".to_owned(),
                detail: "a delivery report came back for mail sent on this ticket".to_owned(),
            };
            tx.add_event(&mut ticket, &event)?;
            let mut not_counted = 0usize;
            let bounces = crate::casework::mail_loops::hard_bounces(raw);
            for (address, status) in &bounces {
                let (address, status) = (address.as_str(), status.as_str());
                if let Some(why) = crate::casework::mail_loops::bounce_not_counted(
                    mail,
                    sender,
                    report.authentication,
                    address,
                    recipients.as_deref(),
                    &agent_addresses,
                ) {
                    not_counted += 1;
                    // The address is left out: a forged report may name anybody, and an
                    // erasure would not look for them in this ticket.
                    tx.add_event(
                        &mut ticket,
                        &Event {
                            at: now,
                            actor: Actor::System,
                            kind: "bounce_not_counted".to_owned(),
                            detail: format!(
                                "a delivery report named a failed recipient (status {status}); nothing suppressed: {why}"
                            ),
                        },
                    )?;
                    continue;
                }
                crate::casework::mail_loops::suppress(
                    tx,
                    &context.limits,
                    address,
                    &format!("delivery status {status}"),
                    Some(ticket_id),
                    now,
                )?;
            }
            let what = if not_counted > 0 && not_counted == bounces.len() {
                "a delivery report about this ticket's mail arrived but was not counted (see the ticket's events); nothing was suppressed"
            } else {
                "mail sent for this ticket bounced; see the delivery report in the ticket"
            };
            match ticket.owner.as_ref().and_then(|o| team.agent(o)) {
                Some(owner) => {
                    match crate::mail::compose::coordinator_notice(
                        &helpdesk, owner, &ticket, what, self.nonce,
                    ) {
                        Ok(outgoing) => {
                            assign::enqueue(
                                tx,
                                &context.limits,
                                crate::model::OutboxKind::Notification,
                                Some(ticket_id),
                                &outgoing,
                                now,
                            )?;
                        }
                        Err(err) => {
                            let what = format!("the bounce notice to {}", owner.id);
                            assign::not_composed(tx, &context, &mut ticket, &what, &err)?;
                        }
                    }
                }
                None => assign::tell_coordinators(tx, &context, &ticket, what)?,
            }
            tx.put_ticket(&ticket)?;
            tx.clear_attempts(source)?;
            advance_cursor(tx, source)?;
            Ok(())
        })?;
        Ok((Outcome::Bounced(ticket_id), TeamChange::default()))
    }

    /// Files a caseworker's reply the bridge accepted or refused, with the cursor, in one
    /// transaction.
    fn file_reply(
        &self,
        team: &Team,
        source: &Source,
        mail: &InboundMail,
        raw: &[u8],
        sender: &str,
        verdict: &Verdict,
    ) -> Result<(Outcome, TeamChange), store::Error> {
        let now = self.now;
        let helpdesk = assign::sender(self.config);
        let context = assign::Context {
            team,
            secret: self.secret,
            sender: &helpdesk,
            limits: self.config.loops,
            now,
            nonce: self.nonce,
        };
        let (ticket_id, outcome) = match verdict {
            Verdict::Accepted { ticket, .. } => (*ticket, Outcome::Relayed(*ticket)),
            Verdict::Refused { ticket, reason, .. } => {
                (*ticket, Outcome::ReplyRefused(*ticket, reason.clone()))
            }
            Verdict::AutoReply { ticket, .. } => (
                *ticket,
                Outcome::ReplyRefused(*ticket, "automatic reply from the caseworker".to_owned()),
            ),
            Verdict::AutoReplyNoted { ticket, reason, .. } => (
                *ticket,
                Outcome::ReplyRefused(
                    *ticket,
                    format!("out-of-office answer noted, nobody marked away: {reason}"),
                ),
            ),
            Verdict::NotAReply => {
                return Err(store::Error::Inconsistent(
                    "file_reply called for ordinary mail".to_owned(),
                ));
            }
        };
        // A token or tag for a merged ticket answers the ticket it was merged into, and the
        // outcome (the log line's ticket) names that ticket.
        let ticket_id = crate::casework::admin::resolve_merged(self.store, ticket_id)?;
        let outcome = match outcome {
            Outcome::Relayed(_) => Outcome::Relayed(ticket_id),
            Outcome::ReplyRefused(_, reason) => Outcome::ReplyRefused(ticket_id, reason),
            other => other,
        };
        let merge_into = match verdict {
            Verdict::Accepted { .. } => reply::commands(&crate::mail::strip::strip(mail, raw).text)
                .commands
                .iter()
                .find_map(|c| match c {
                    reply::Command::Merge(target) => Some(*target),
                    _ => None,
                }),
            _ => None,
        };
        let merge_into = match merge_into {
            Some(target) => Some(crate::casework::admin::resolve_merged(self.store, target)?),
            None => None,
        };
        // Only the caseworker who owns both tickets, or a coordinator, may merge: a merge mixes
        // two requesters' conversations.
        let merge_refused = match (verdict, merge_into) {
            (Verdict::Accepted { agent, .. }, Some(target)) if target != ticket_id => {
                let coordinator = team
                    .agent(agent)
                    .is_some_and(|a| a.role == Role::Coordinator);
                let owns = |id| -> Result<bool, store::Error> {
                    Ok(self
                        .store
                        .ticket(id)?
                        .is_some_and(|t| t.owner.as_ref() == Some(agent)))
                };
                let target_exists = self.store.ticket(target)?.is_some();
                if coordinator || !target_exists || (owns(ticket_id)? && owns(target)?) {
                    None
                } else {
                    Some(target)
                }
            }
            _ => None,
        };
        let merge_into = merge_into.filter(|_| merge_refused.is_none());
        let replay_window = jiff::SignedDuration::try_from(self.config.auth.replay_window)
            .unwrap_or(jiff::SignedDuration::MAX);
        let (change, replayed, held, not_sent) = self.store.write(|tx| {
            let mut change = TeamChange::default();
            let mut replayed = false;
            let mut held = None;
            let mut not_sent = None;
            let mut ticket = tx.ticket(ticket_id)?.ok_or_else(|| {
                store::Error::Inconsistent(format!("reply for missing ticket {ticket_id}"))
            })?;
            match verdict {
                Verdict::Accepted { agent, .. } => {
                    let stripped = crate::mail::strip::strip(mail, raw);
                    // When stripping found nothing new, the text is the quote: no command in
                    // it counts.
                    let parsed = if stripped.only_history {
                        reply::Commands {
                            body: stripped.text.clone(),
                            ..reply::Commands::default()
                        }
                    } else {
                        reply::commands(&stripped.text)
                    };
                    let is_note = parsed.commands.contains(&reply::Command::Note);
                    let mut message =
                        stored_message(&ticket, Direction::Note, source, mail, sender, now);
                    message.text = parsed.body.clone();
                    let mut results = Vec::new();
                    if is_note {
                        assign::internal_note(tx, &context, &mut ticket, agent, &message, raw)?;
                    } else {
                        // Everything that reaches the requester passes the relay gate.
                        let files = gate::files::read(mail, raw);
                        let secrets = assign::secrets(
                            &context,
                            &self.config.helpdesk.hide_names,
                            ticket.id,
                            agent,
                        );
                        match gate::decide(&stripped, &parsed, &files, &secrets) {
                            gate::Decision::Relay(cleared) => {
                                // The same answer under a new Message-ID is relayed once only:
                                // what is compared is what the requester would receive.
                                let fingerprint =
                                    answer_fingerprint(&cleared.text, &cleared.attachments);
                                let relayed_before =
                                    tx.relayed_at(ticket.id, &fingerprint)?.filter(|at| {
                                        now < at
                                            .saturating_add(replay_window)
                                            .unwrap_or(Timestamp::MAX)
                                    });
                                if let Some(at) = relayed_before {
                                    replayed = true;
                                    results.push(keep_replayed_answer(
                                        tx,
                                        &mut ticket,
                                        agent,
                                        &message,
                                        raw,
                                        at,
                                        now,
                                    )?);
                                } else {
                                message.direction = Direction::Out;
                                match assign::relay_reply(
                                    tx,
                                    &context,
                                    &mut ticket,
                                    agent,
                                    &message,
                                    raw,
                                    &cleared,
                                    &secrets,
                                )? {
                                    assign::Relayed::Sent(lines) => {
                                        tx.put_relayed(ticket.id, &fingerprint, now)?;
                                        results.extend(lines);
                                    }
                                    assign::Relayed::Held(hold, line) => {
                                        held = Some(hold.summary());
                                        results.push(line);
                                    }
                                    assign::Relayed::NotSent(reason) => {
                                        not_sent = Some(reason);
                                    }
                                    assign::Relayed::NotComposed => {
                                        held = Some(
                                            "casemail cannot write to the requester's address"
                                                .to_owned(),
                                        );
                                    }
                                }
                                }
                            }
                            gate::Decision::Hold(hold) => {
                                held = Some(hold.summary());
                                results.push(assign::hold_reply(
                                    tx,
                                    &context,
                                    &mut ticket,
                                    agent,
                                    &mut message,
                                    raw,
                                    &hold,
                                )?);
                            }
                            gate::Decision::CommandsOnly => {
                                // Only commands: nothing is stored, but the message was filed,
                                // and reconciliation must not report it as missing.
                                tx.note_filed_source(source, ticket.id, mail.message_id.as_ref())?;
                            }
                        }
                    }
                    results.extend(assign::apply_commands(
                        tx,
                        &context,
                        &mut ticket,
                        agent,
                        &parsed.commands,
                        &mut change,
                    )?);
                    results.extend(parsed.errors.iter().map(|e| format!("error: {e}")));
                    if let Some(target) = merge_refused {
                        results.push(format!(
                            "error: #merge: not merged into #{}: only a coordinator or the caseworker who owns both tickets may merge them",
                            target.0
                        ));
                        tx.add_event(
                            &mut ticket,
                            &Event {
                                at: now,
                                actor: Actor::Agent(agent.clone()),
                                kind: "merge_refused".to_owned(),
                                detail: format!(
                                    "#merge {} refused: {agent} does not own both tickets and is not a coordinator",
                                    target.0
                                ),
                            },
                        )?;
                    }
                    for command in &parsed.commands {
                        match command {
                            reply::Command::Away(until) => {
                                results.push(format!(
                                    "you are marked away{}; your open tickets go back to routing",
                                    until
                                        .as_deref()
                                        .map(|u| format!(" until {u}"))
                                        .unwrap_or_default()
                                ));
                            }
                            reply::Command::Back => results.push("you are marked back".to_owned()),
                            _ => {}
                        }
                    }
                    if let Some(target) = merge_into {
                        let line = if target == ticket.id {
                            "error: #merge: a ticket cannot be merged into itself".to_owned()
                        } else if tx.ticket(target)?.is_none() {
                            format!("error: #merge: no ticket #{}", target.0)
                        } else {
                            format!("#{} merged into #{}", ticket.id.0, target.0)
                        };
                        results.push(line);
                    }
                    if !results.is_empty() {
                        assign::confirm(tx, &context, &ticket, sender, &results)?;
                    }
                }
                Verdict::Refused { reason, notify, .. } => {
                    let mut note =
                        stored_message(&ticket, Direction::Note, source, mail, sender, now);
                    note.anomalies
                        .push(format!("refused reply, never relayed: {reason}"));
                    assign::refuse_reply(
                        tx,
                        &context,
                        &mut ticket,
                        &note,
                        raw,
                        reason,
                        notify.as_deref(),
                    )?;
                }
                Verdict::AutoReply { agent, until, .. } => {
                    let mut note =
                        stored_message(&ticket, Direction::Note, source, mail, sender, now);
                    note.anomalies
                        .push("automatic reply from the caseworker, never relayed".to_owned());
                    tx.put_message(&note, Some(raw))?;
                    ticket.message_count = ticket.message_count.saturating_add(1);
                    let detail = match until {
                        Some(date) => {
                            format!("out-of-office answer from {agent}; away until {date}")
                        }
                        None => {
                            format!("out-of-office answer from {agent}; away until they are back")
                        }
                    };
                    tx.add_event(
                        &mut ticket,
                        &Event {
                            at: now,
                            actor: Actor::System,
                            kind: "auto_reply".to_owned(),
                            detail,
                        },
                    )?;
                }
                Verdict::AutoReplyNoted { agent, reason, .. } => {
                    let mut note =
                        stored_message(&ticket, Direction::Note, source, mail, sender, now);
                    note.anomalies.push(format!(
                        "out-of-office answer in {agent}'s name, not acted on: {reason}"
                    ));
                    tx.put_message(&note, Some(raw))?;
                    ticket.message_count = ticket.message_count.saturating_add(1);
                    tx.add_event(
                        &mut ticket,
                        &Event {
                            at: now,
                            actor: Actor::System,
                            kind: "auto_reply_noted".to_owned(),
                            detail: format!(
                                "an out-of-office answer in {agent}'s name was noted; nobody was marked away: {reason}"
                            ),
                        },
                    )?;
                    assign::tell_coordinators(
                        tx,
                        &context,
                        &ticket,
                        &format!(
                            "an out-of-office answer in {agent}'s name arrived but was not acted on ({reason}); if {agent} is really away, mark them with `casemail agent away {agent}`"
                        ),
                    )?;
                }
                Verdict::NotAReply => {}
            }
            tx.put_ticket(&ticket)?;
            if let Some(target) = merge_into
                && target != ticket.id
                && tx.ticket(target)?.is_some()
            {
                let actor = match verdict {
                    Verdict::Accepted { agent, .. } => Actor::Agent(agent.clone()),
                    _ => Actor::System,
                };
                crate::casework::admin::merge_tickets(tx, ticket.id, target, actor, now)?;
                // Caseloads changed in a way only a fresh count shows.
                change.reload = true;
            }
            tx.clear_attempts(source)?;
            advance_cursor(tx, source)?;
            Ok((change, replayed, held, not_sent))
        })?;
        let outcome = match (held, not_sent) {
            (Some(why), _) => Outcome::ReplyHeld(ticket_id, why),
            (None, Some(why)) => Outcome::ReplyNotSent(ticket_id, why),
            (None, None) if replayed => Outcome::ReplyRefused(
                ticket_id,
                "the same answer was already relayed; not relayed again".to_owned(),
            ),
            (None, None) => outcome,
        };
        // `#away` and `#back` change the agent and hand their tickets back to routing: done
        // after the reply is safely filed, as the CLI would.
        let mut change = change;
        if let Verdict::AutoReply { agent, until, .. } = verdict {
            // The agent is not there: mark them away and hand their open tickets back.
            let zone = jiff::tz::TimeZone::get(&self.config.rota.timezone).ok();
            let until = until
                .and_then(|date| date.to_zoned(zone?).ok())
                .map(|z| z.timestamp());
            match crate::casework::admin::set_away(self.store, agent, until, now) {
                Ok(_) => change.reload = true,
                Err(err) => warn!(error = %err, "Cannot mark the caseworker away."),
            }
        }
        if let Verdict::Accepted { agent, .. } = verdict {
            for command in reply::commands(&crate::mail::strip::strip(mail, raw).text).commands {
                let changed = match command {
                    reply::Command::Away(until) => {
                        let until = until.and_then(|u| parse_until(&u, &self.config.rota.timezone));
                        crate::casework::admin::set_away(self.store, agent, until, now).map(|_| ())
                    }
                    reply::Command::Back => {
                        crate::casework::admin::set_back(self.store, agent).map(|_| ())
                    }
                    _ => continue,
                };
                match changed {
                    Ok(()) => change.reload = true,
                    Err(err) => warn!(error = %err, "Cannot change the caseworker's availability."),
                }
            }
        }
        Ok((outcome, change))
    }
}

impl Filing<'_> {
    /// Whether the sender of a new request may get an acknowledgement, as far as the message
    /// itself tells: not automatic, bulk, list or report mail (`loops::no_answer`), not from
    /// a caseworker's address or the helpdesk's own.
    fn may_acknowledge(&self, team: &Team, mail: &InboundMail, sender: &str) -> bool {
        let helpdesk = self.config.helpdesk.address.to_lowercase();
        if let Some(reason) = crate::casework::mail_loops::no_answer(mail, sender, &helpdesk) {
            debug!(%reason, "No acknowledgement: automatic or bulk mail.");
            return false;
        }
        let (help_local, help_domain) = helpdesk.rsplit_once('@').unwrap_or((&helpdesk, ""));
        let own = sender == helpdesk
            || sender.rsplit_once('@').is_some_and(|(local, domain)| {
                domain == help_domain && local.split('+').next() == Some(help_local)
            });
        let agent = team
            .agents()
            .any(|a| a.emails.iter().any(|e| e.eq_ignore_ascii_case(sender)));
        !own && !agent
    }
}

/// Queues the acknowledgement of a new ticket to its requester, threaded under their message.
fn acknowledge_request(
    tx: &WriteTx<'_>,
    context: &assign::Context<'_>,
    config: &Config,
    ticket: &Ticket,
    mail: &InboundMail,
) -> store::TxResult<()> {
    let body = crate::casework::mail_loops::render_template(
        &config.acknowledge.template,
        ticket.id.0,
        &config.helpdesk.name,
    );
    // No caseworker address may reach a requester, even one the requester typed themselves.
    let hide: Vec<String> = context
        .team
        .agents()
        .flat_map(|a| a.emails.iter().cloned())
        .collect();
    match crate::mail::compose::acknowledgement(
        context.sender,
        ticket,
        &body,
        mail.message_id.as_ref(),
        &mail.references,
        &hide,
        context.nonce.wrapping_add(500),
    ) {
        Ok(outgoing) => {
            assign::enqueue(
                tx,
                &context.limits,
                crate::model::OutboxKind::Acknowledgement,
                Some(ticket.id),
                &outgoing,
                context.now,
            )?;
        }
        Err(err) => {
            // The address is in the event, not in the log.
            warn!(
                ticket = ticket.id.0,
                "Cannot compose the acknowledgement; the ticket's events say why."
            );
            tx.add_event_later(
                ticket.id,
                Event {
                    at: context.now,
                    actor: Actor::System,
                    kind: "not_composed".to_owned(),
                    detail: format!("casemail could not compose the acknowledgement: {err}"),
                },
            );
        }
    }
    Ok(())
}

/// Files an answer that repeats one already relayed (a client that sends twice, or a captured
/// reply sent again under a new Message-ID) as a note, never relayed; returns the line that
/// tells the caseworker.
fn keep_replayed_answer(
    tx: &WriteTx<'_>,
    ticket: &mut Ticket,
    agent: &crate::ids::AgentId,
    message: &StoredMessage,
    raw: &[u8],
    relayed_at: Timestamp,
    now: Timestamp,
) -> store::TxResult<String> {
    let mut note = message.clone();
    note.direction = Direction::Note;
    note.anomalies.push(format!(
        "the same answer was relayed at {relayed_at}; not relayed again"
    ));
    tx.put_message(&note, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    tx.add_event(
        ticket,
        &Event {
            at: now,
            actor: Actor::Agent(agent.clone()),
            kind: "replay_refused".to_owned(),
            detail: format!(
                "the same answer (text and files) was relayed at {relayed_at}; kept as a note"
            ),
        },
    )?;
    Ok(format!(
        "not sent again: the same answer was already relayed to the requester at {relayed_at}"
    ))
}

/// What identifies an answer for replay protection: SHA-256 over its text and each file's
/// name, type and bytes, as hex.
fn answer_fingerprint(text: &str, attachments: &[AttachmentBytes]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"casemail-answer\0");
    hash.update((text.len() as u64).to_be_bytes());
    hash.update(text.as_bytes());
    for file in attachments {
        for part in [
            file.name.as_deref().unwrap_or("").as_bytes(),
            file.content_type.as_bytes(),
            file.content.as_slice(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Mail kept on its ticket as a note that nobody is told of and nothing answers: what the
/// stored message's anomaly and the ticket's event say.
struct KeptAsNote {
    anomaly: &'static str,
    kind: &'static str,
    detail: &'static str,
}

/// casemail's own mail come back (its loop header): answering it is how a loop starts.
const OWN_MAIL: KeptAsNote = KeptAsNote {
    anomaly: "casemail's own mail came back (loop header); never answered",
    kind: "own_mail",
    detail: "mail casemail sent came back to the help address; kept as a note, not routed or answered",
};

/// An Outlook reaction ("… reacted to your message"): no answer and no request.
const REACTION: KeptAsNote = KeptAsNote {
    anomaly: "an Outlook reaction, not an answer; never relayed or answered",
    kind: "reaction",
    detail: "an Outlook reaction arrived; kept as a note, nobody notified",
};

/// Marks a stored message as a note of the kind `what` says, with an event; the caller routes
/// nothing and answers nothing.
fn file_as_note(
    tx: &WriteTx<'_>,
    now: Timestamp,
    ticket: &mut Ticket,
    mut message: StoredMessage,
    what: &KeptAsNote,
) -> store::TxResult<()> {
    message.direction = Direction::Note;
    message.anomalies.push(what.anomaly.to_owned());
    tx.put_message(&message, None)?;
    tx.add_event(
        ticket,
        &Event {
            at: now,
            actor: Actor::System,
            kind: what.kind.to_owned(),
            detail: what.detail.to_owned(),
        },
    )
}

/// The files of a message that were kept (under the size limit), with their bytes.
fn attachment_bytes(mail: &InboundMail) -> Vec<AttachmentBytes> {
    mail.attachments
        .iter()
        .filter_map(|a| {
            Some(AttachmentBytes {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                content: a.content()?.to_vec(),
            })
        })
        .collect()
}

/// Reads a date (midnight in `timezone`) or an RFC 3339 time, as `#away until …` gives it.
pub fn parse_until(text: &str, timezone: &str) -> Option<Timestamp> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(timestamp);
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    let zone = jiff::tz::TimeZone::get(timezone).ok()?;
    date.to_zoned(zone).ok().map(|z| z.timestamp())
}

fn blank_ticket(id: TicketId, requester: &str, now: Timestamp) -> Ticket {
    Ticket {
        id,
        status: Status::New,
        subject: String::new(),
        requester: requester.to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: now,
        updated: now,
        message_count: 0,
        event_count: 0,
    }
}

fn file_duplicate(
    tx: &WriteTx<'_>,
    now: Timestamp,
    source: &Source,
    ticket: TicketId,
    seq: u32,
) -> store::TxResult<()> {
    let Some(mut message) = tx.message(ticket, seq)? else {
        return Err(store::Error::Inconsistent(format!(
            "dedupe index names missing message {ticket}/{seq}"
        ))
        .into());
    };
    if message.sources.contains(source) {
        // The same IMAP message again (a restart before acknowledging): nothing to record.
        return Ok(());
    }
    message.sources.push(source.clone());
    tx.put_message(&message, None)?;
    if let Some(mut record) = tx.ticket(ticket)? {
        let event = Event {
            at: now,
            actor: Actor::System,
            kind: "duplicate_seen".to_owned(),
            detail: format!("another copy in {}", source.mailbox),
        };
        tx.add_event(&mut record, &event)?;
        tx.put_ticket(&record)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // Each argument is a distinct fact about this one message.
fn add_message(
    tx: &WriteTx<'_>,
    now: Timestamp,
    ticket: &mut Ticket,
    source: &Source,
    kind: FolderKind,
    mail: &InboundMail,
    raw: &[u8],
    sender: &str,
) -> store::TxResult<StoredMessage> {
    if mail.attachments.iter().any(|a| !a.kept) {
        ticket.flags.insert(TicketFlag::AttachmentTooLarge);
    }
    if mail.is_unreadable() {
        ticket.flags.insert(TicketFlag::Unreadable);
    }
    if kind == FolderKind::Junk {
        ticket.flags.insert(TicketFlag::SuspectedSpam);
    }
    if is_too_large(mail) {
        ticket.flags.insert(TicketFlag::TooLarge);
    }
    if mail.has_unusable_address() && ticket.requester == sender {
        ticket.flags.insert(TicketFlag::Unanswerable);
    }
    let message = stored_message(ticket, Direction::In, source, mail, sender, now);
    tx.put_message(&message, Some(raw))?;
    ticket.message_count = ticket.message_count.saturating_add(1);
    ticket.participants.insert(sender.to_owned());
    ticket.updated = now;
    Ok(message)
}

/// The stored form of a message, as the next message of `ticket`.
fn stored_message(
    ticket: &Ticket,
    direction: Direction,
    source: &Source,
    mail: &InboundMail,
    sender: &str,
    now: Timestamp,
) -> StoredMessage {
    let attachments: Vec<AttachmentMeta> = mail
        .attachments
        .iter()
        .map(|a| AttachmentMeta {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            kept: a.kept,
        })
        .collect();
    StoredMessage {
        ticket: ticket.id,
        seq: ticket.message_count,
        direction,
        key: mail.key.clone(),
        message_id: mail.message_id.clone(),
        from: Some(sender.to_owned()),
        from_name: mail.from.as_ref().and_then(|f| f.name.clone()),
        to: mail.to.iter().map(|m| m.address.clone()).collect(),
        cc: mail.cc.iter().map(|m| m.address.clone()).collect(),
        subject: mail.subject.clone(),
        date: mail.date,
        received: now,
        in_reply_to: mail.in_reply_to.clone(),
        references: mail.references.clone(),
        text: mail.text.clone(),
        attachments,
        anomalies: mail.anomalies.iter().map(|a| a.to_string()).collect(),
        sources: vec![source.clone()],
    }
}

/// The address a message is from: From, else Return-Path. The Sender field never stands in
/// for From: it is as easy to write, and a message without From fails authentication anyway.
pub fn sender_address(mail: &InboundMail) -> String {
    mail.from
        .as_ref()
        .map(|m| m.address.clone())
        .or_else(|| mail.return_path.clone())
        .filter(|a| a.contains('@'))
        .map(|a| a.to_lowercase())
        .unwrap_or_else(|| crate::model::UNKNOWN_SENDER.to_owned())
}

/// Why the process stage stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Secret(#[from] crate::casework::token::Error),
}

/// Logs a fatal store failure once; the daemon stops so that nothing is acknowledged.
pub fn report_fatal(err: &Error) {
    error!(error = %format!("{err:#}"), "Store failed; stopping so that no message is acknowledged without being saved.");
}

mod refile;
pub use refile::{Refiled, refile_quarantined};

#[cfg(test)]
mod desk;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

//! The run loop: batches of fetched mail filed in one transaction each and made durable with
//! one flush (group commit), the periodic sweep, jobs from the control socket, and the
//! acknowledgements the fetchers wait for.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::casework::assign::{self, Team};
use crate::casework::token::Secret;
use crate::config::Config;
use crate::ids::{Uid, UidValidity};
use crate::imap::{Committed, Fetched};
use crate::mail::parse::ParseLimits;
use crate::metrics::{Metrics, Stage};
use crate::model::{Arrival, Source};
use crate::store::{self, Store};

use super::*;

/// Runs until every fetcher has dropped its sender and the channel is drained. Returns an error
/// only when the store fails; then nothing of the failing batch was acknowledged.
///
/// `team_changed` is notified after a coordinator changes agents or the rota: the cached team
/// is loaded again before the next message or sweep.
#[allow(clippy::too_many_arguments)] // Each is a separate link the daemon wires to this stage.
pub(crate) async fn run(
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
    let mut team = Team::load(&store, &config.rota.timezone)?;
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
                team = tokio::task::block_in_place(|| Team::load(&store, &config.rota.timezone))?;
                // A job may have rotated the reply secret (`casemail secret rotate`).
                secret = Secret::load_or_create(&config.helpdesk.state_dir)?;
                next_sweep = tokio::time::Instant::now();
                continue;
            }
            () = team_changed.notified() => {
                // Also notified after failed commands and by the relay after a failed send:
                // the line is logged only when agents or the rota really changed.
                let fresh = tokio::task::block_in_place(|| Team::load(&store, &config.rota.timezone))?;
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
pub(super) fn reload_spam_rules(config: &Arc<Config>) -> Arc<Config> {
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
pub(super) const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

pub(super) fn next_sweep_at(due: Option<Timestamp>, now: Timestamp) -> tokio::time::Instant {
    let until_due = due
        .and_then(|due| due.duration_since(now).try_into().ok())
        .map(|d: Duration| d.max(Duration::from_millis(50)))
        .unwrap_or(SWEEP_INTERVAL);
    tokio::time::Instant::now() + until_due.min(SWEEP_INTERVAL)
}

/// Counts an attempt against every message that was in flight when the process stage last
/// stopped without finishing its batch, and returns them.
pub(super) fn recover_in_flight(store: &Store) -> Result<Vec<Source>, store::Error> {
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

pub(super) type AckMap =
    BTreeMap<(String, UidValidity), (mpsc::UnboundedSender<Committed>, Vec<Uid>)>;

pub(super) async fn process_batch(
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
        // A backfill is filed silently, and its progress is logged by the fetcher: one line
        // per message would bury the log under a large first import.
        let backfill = fetched.arrival == Arrival::Backfill;
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
                match (owner, backfill) {
                    (Some(agent), false) => info!(%agent, "New ticket."),
                    (None, false) => info!(agent = "none", "New ticket."),
                    (_, true) => debug!("New ticket (backfill)."),
                }
            }
            Outcome::Added(id, reason) => {
                tracing::Span::current().record("ticket", id.0);
                if backfill {
                    debug!(reason = reason.as_str(), "Message added to ticket (backfill).");
                } else {
                    info!(reason = reason.as_str(), "Message added to ticket.");
                }
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
pub(super) async fn process_fetched(
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
                        *team = Team::load(store, &config.rota.timezone)?;
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

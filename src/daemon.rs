//! The supervisor: binds the control socket, opens the store, spawns one fetch task per
//! watched folder, the single process task, the relay and the control task, and shuts them
//! down in order.
//!
//! Shutdown order (STYLE.md §3.3): stop fetching, let the process stage drain what was already
//! fetched and commit it, let the relay finish its send, close control, flush the store, exit.
//! Everything waits through a `TaskTracker` under a deadline shorter than systemd's stop
//! timeout; stragglers are logged at ERROR.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::imap::{FolderWatch, OnDown, OnLag};
use crate::metrics::Metrics;
use crate::model::FolderKind;
use crate::store::Store;
use crate::{control, process, smtp, systemd};

pub(crate) mod reconcile;
pub(crate) mod sign_in;

/// How long shutdown may take before the stragglers are abandoned (systemd's default stop
/// timeout is 90 s; the unit sets 30 s).
pub(crate) const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// Runs the daemon until SIGTERM or SIGINT.
pub(crate) async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    // Handlers are installed before anything else starts, so a SIGTERM that arrives while the
    // daemon is still setting up is a clean shutdown too, not the default "die at once".
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    run(config, shutdown_signal(terminate, interrupt)).await
}

async fn shutdown_signal(
    mut terminate: tokio::signal::unix::Signal,
    mut interrupt: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM received; shutting down."),
        _ = interrupt.recv() => info!("SIGINT received; shutting down."),
    }
}

/// Refuses to start when the stored rota names another time zone than `rota.timezone`, as a
/// rota imported before the zone moved to the config can: its shifts would be read in the
/// wrong zone, or the digest and `--until` dates in another zone than the shifts.
fn check_rota_zone(store: &Store, config: &Config) -> anyhow::Result<()> {
    let Some(text) = store.rota().context("cannot read the stored rota")? else {
        return Ok(());
    };
    match crate::casework::rota::parse(&text, &config.rota.timezone) {
        Err(crate::casework::rota::Error::OtherTimeZone { rota, config: zone }) => {
            Err(crate::config::Error {
                file: config.source.clone(),
                key: "rota.timezone".to_owned(),
                reason: format!(
                    "the stored rota (from `casemail rota import`) names time zone {rota:?}, not \
                     {zone:?}; casemail uses one time zone, so set rota.timezone = {rota:?}, or \
                     import the rota again without its timezone line"
                ),
            }
            .into())
        }
        // Any other fault is logged by the process stage, which then puts nobody on duty.
        Ok(_) | Err(_) => Ok(()),
    }
}

/// Runs the daemon until `shutdown` completes (a signal in production, a oneshot in tests).
pub(crate) async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Before the control socket, which may live inside it.
    crate::store::prepare_state_dir(&config.helpdesk.state_dir).with_context(|| {
        format!(
            "cannot create or restrict state directory {}",
            config.helpdesk.state_dir.display()
        )
    })?;
    // Before the store: a second daemon is told plainly that another one runs.
    let listeners = control::Listeners::bind(&config).await?;
    let store = Store::open(&config.helpdesk.state_dir).context("cannot open the store")?;
    check_rota_zone(&store, &config)?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new(
        config
            .imap
            .folders
            .iter()
            .chain(&config.imap.junk_folders)
            .cloned(),
        jiff::Timestamp::now(),
    ));
    let team_changed = Arc::new(tokio::sync::Notify::new());
    let reload_config = Arc::new(tokio::sync::Notify::new());
    // Erasures from the control socket run in the process stage, the single writer.
    let (writer_jobs, jobs) = mpsc::channel(4);
    let control_cancel = CancellationToken::new();
    let control_task = tokio::spawn(
        listeners.serve(
            Arc::new(
                control::Shared::new(
                    store.clone(),
                    config.clone(),
                    metrics.clone(),
                    team_changed.clone(),
                )
                .with_writer(writer_jobs),
            ),
            control_cancel.clone(),
        ),
    );
    let cancel = CancellationToken::new();
    let fetchers = TaskTracker::new();
    let capacity = usize::try_from(config.ingest.batch_size)
        .unwrap_or(200)
        .saturating_mul(2)
        .max(2);
    let (to_process, incoming) = mpsc::channel(capacity);

    let alive_metrics = metrics.clone();
    let on_alive: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |folder: &str| {
        alive_metrics.folder_alive(folder, jiff::Timestamp::now());
    });
    let down_metrics = metrics.clone();
    let on_down: OnDown = Arc::new(move |folder: &str, err: &crate::imap::Error| {
        down_metrics.folder_down(
            folder,
            crate::telemetry::chain(&err),
            jiff::Timestamp::now(),
        );
    });
    let lag_metrics = metrics.clone();
    let on_lag: OnLag = Arc::new(move |folder: &str, lag: crate::imap::Lag| {
        lag_metrics.folder_lag(folder, lag);
    });
    let folders = config
        .imap
        .folders
        .iter()
        .map(|f| (f.clone(), FolderKind::Requests))
        .chain(
            config
                .imap
                .junk_folders
                .iter()
                .map(|f| (f.clone(), FolderKind::Junk)),
        );
    // One memory budget for every folder: fetched mail not yet filed stays under
    // `[ingest] fetch_bytes` however many folders are watched.
    let budget = crate::imap::Budget::new(&config.ingest);
    metrics.watch_fetch_budget(budget.clone());
    for (folder, kind) in folders {
        let watch = FolderWatch::new(
            folder,
            kind,
            config.clone(),
            store.clone(),
            to_process.clone(),
            on_alive.clone(),
        )
        .on_down(on_down.clone())
        .on_lag(on_lag.clone())
        .with_budget(budget.clone());
        fetchers.spawn(watch.run(cancel.child_token()));
    }
    // Deletes the IMAP copies of purged and erased mail, queued in the store.
    fetchers.spawn(
        crate::imap::expunge::Expunger::new(config.clone(), store.clone())
            .run(cancel.child_token()),
    );
    fetchers.close();
    // Only the fetchers hold senders now: when they stop, the process stage drains and ends.
    drop(to_process);

    let clock = crate::clock::system();
    let outbox_ready = Arc::new(tokio::sync::Notify::new());
    let transport = smtp::transport(&config.smtp, None).context("cannot set up SMTP")?;
    let relay_cancel = CancellationToken::new();
    let relay_metrics = metrics.clone();
    // A dead letter must reach a person soon: wake the process stage, whose sweep reports it.
    let relay_wakes_process = team_changed.clone();
    let relay_task = tokio::spawn(
        smtp::Relay::new(store.clone(), transport, clock.clone())
            .signing_in(&config.smtp)
            .observed_by(Arc::new(move |kind, settled| {
                relay_metrics.relay_settled(kind, settled);
                if settled == smtp::Settled::Failed {
                    relay_wakes_process.notify_one();
                }
            }))
            .run(outbox_ready.clone(), relay_cancel.clone()),
    );
    let process_metrics = metrics.clone();
    let mut process = tokio::spawn(process::run(
        store.clone(),
        config.clone(),
        incoming,
        clock,
        Arc::new(move || process_metrics.process_alive(jiff::Timestamp::now())),
        outbox_ready.clone(),
        team_changed.clone(),
        metrics.clone(),
        reload_config.clone(),
        jobs,
    ));
    info!(
        folders = config.imap.folders.len() + config.imap.junk_folders.len(),
        "casemail is running."
    );

    // systemd: READY once IMAP was reached, watchdog pings while the process stage keeps up,
    // and SIGHUP reloads the rota, the agents and the spam rules.
    let notifier = Arc::new(systemd::Notifier::from_env());
    let lifecycle = tokio::spawn(systemd_lifecycle(
        notifier.clone(),
        metrics.clone(),
        team_changed.clone(),
        reload_config.clone(),
        cancel.child_token(),
    ));

    // Reconciliation only reads IMAP and writes its own records; it stops with the fetchers.
    let reconciler = config.reconcile.every.map(|every| {
        tokio::spawn(reconcile::run(
            store.clone(),
            config.clone(),
            every,
            metrics.clone(),
            outbox_ready.clone(),
            cancel.child_token(),
        ))
    });

    // A refused OAuth2 sign-in: health, metric, one notice. Stops with the fetchers.
    let sign_in = tokio::spawn(crate::daemon::sign_in::run(
        store.clone(),
        config.clone(),
        metrics.clone(),
        outbox_ready.clone(),
        cancel.child_token(),
    ));

    let early = tokio::select! {
        () = shutdown => None,
        finished = &mut process => Some(finished),
    };
    notifier.notify("STOPPING=1");
    cancel.cancel();
    lifecycle.abort();
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
    if tokio::time::timeout_at(deadline, fetchers.wait())
        .await
        .is_err()
    {
        error!("Fetch tasks did not stop before the shutdown deadline.");
    }
    if let Some(reconciler) = reconciler
        && tokio::time::timeout_at(deadline, reconciler).await.is_err()
    {
        error!("Reconciliation did not stop before the shutdown deadline.");
    }
    if tokio::time::timeout_at(deadline, sign_in).await.is_err() {
        error!("The sign-in watch did not stop before the shutdown deadline.");
    }
    let processed = match early {
        Some(finished) => finished,
        None => match tokio::time::timeout_at(deadline, &mut process).await {
            Ok(finished) => finished,
            Err(_) => {
                error!("The process stage did not drain before the shutdown deadline.");
                process.abort();
                Ok(Ok(()))
            }
        },
    };
    // The relay goes last so that mail queued by the final batch is tried once more; a send
    // already under way is finished, never cut off.
    relay_cancel.cancel();
    match tokio::time::timeout_at(deadline, relay_task).await {
        Ok(Ok(())) => {}
        Ok(Err(join)) => error!(error = %join, "The relay task failed."),
        Err(_) => {
            error!("The relay did not finish its SMTP transaction before the shutdown deadline.")
        }
    }
    control_cancel.cancel();
    match tokio::time::timeout_at(deadline, control_task).await {
        Ok(Ok(())) => {}
        Ok(Err(join)) => error!(error = %join, "The control task failed."),
        Err(_) => error!("Control commands did not finish before the shutdown deadline."),
    }
    store
        .flush_async()
        .await
        .context("cannot flush the store at shutdown")?;
    // The marker outside sled learns what this run filed, so a store lost before the next start
    // is refused rather than opened empty.
    if let Err(err) = store.refresh_marker(&config.helpdesk.state_dir) {
        warn!(error = %crate::telemetry::chain(&err), "Cannot update the store marker.");
    }
    match processed {
        Ok(Ok(())) => {
            info!("casemail stopped.");
            Ok(())
        }
        Ok(Err(err)) => {
            process::report_fatal(&err);
            Err(err).context("the process stage failed")
        }
        Err(join) => Err(anyhow::anyhow!("the process stage crashed: {join}")),
    }
}

/// Readiness, watchdog and reload, until `cancel`.
async fn systemd_lifecycle(
    notifier: Arc<systemd::Notifier>,
    metrics: Arc<crate::metrics::Metrics>,
    team_changed: Arc<tokio::sync::Notify>,
    reload_config: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(err) => {
            error!(error = %err, "Cannot listen for SIGHUP; reload by restarting.");
            None
        }
    };
    let mut ready = false;
    let poll = Duration::from_millis(250);
    let watchdog = notifier.watchdog_interval();
    let mut next_ping = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
            Some(()) = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                info!("SIGHUP received; reloading the rota, the agents and the spam rules.");
                team_changed.notify_one();
                reload_config.notify_one();
                notifier.notify("RELOADING=1");
                notifier.notify("READY=1");
            }
        }
        let now = jiff::Timestamp::now();
        if !ready && metrics.any_folder_reached() {
            ready = true;
            notifier.notify("READY=1\nSTATUS=IMAP reached; filing mail");
            info!("Ready: IMAP reached.");
        }
        if let Some(interval) = watchdog
            && tokio::time::Instant::now() >= next_ping
        {
            // A process stage that stopped sweeping is a hung daemon: stop pinging and let
            // systemd restart it.
            if metrics.process_responsive(now) {
                notifier.notify("WATCHDOG=1");
            }
            next_ping = tokio::time::Instant::now() + interval;
        }
    }
}

//! The daemon's watch over its OAuth 2.0 sign-in: when the token endpoint has refused the
//! stored grant (recorded in the token file by `oauth`), `/healthz` turns unhealthy with the
//! reason, `casemail_oauth2_refusals_total` counts it, the log says what to run, and the
//! coordinators are mailed once through the outbox. A new `casemail auth login` clears it.
//!
//! It also keeps the access token fresh between connections: an IMAP session in IDLE may stay
//! up for hours without signing in again, so without this a revoked sign-in would go unnoticed
//! until the next reconnect. A grant once refused is not tried again (`oauth` records it).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::casework::assign::{self, Team};
use crate::config::{Config, OAuth2};
use crate::mail::compose;
use crate::metrics::Metrics;
use crate::model::{OutboxKind, Role};
use crate::oauth;
use crate::store::{self, Store};

/// How often the token file is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read the sign-in")]
    OAuth(#[from] oauth::Error),
    #[error("cannot queue the notice")]
    Store(#[from] store::Error),
}

/// What one look found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No refusal on record.
    Fine,
    /// A refusal the coordinators were already told of.
    Refused,
    /// A new refusal: this many notices were queued.
    Notified(usize),
}

/// Watches until `cancel`; returns at once when nothing signs in with OAuth 2.0.
pub(crate) async fn run(
    store: Store,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    outbox_ready: Arc<Notify>,
    cancel: CancellationToken,
) {
    let Some(oauth2) = config.imap.oauth2.as_ref().or(config.smtp.oauth2.as_ref()) else {
        return;
    };
    loop {
        match step(&store, &config, oauth2, &metrics, Timestamp::now()).await {
            Ok(Outcome::Notified(_)) => outbox_ready.notify_one(),
            Ok(Outcome::Fine | Outcome::Refused) => {}
            Err(err) => {
                warn!(error = %format!("{:#}", anyhow::Error::from(err)), "Cannot check the OAuth2 sign-in; trying again.")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// One look: renew the access token when it is due, then report a refusal on record.
pub(crate) async fn step(
    store: &Store,
    config: &Config,
    oauth2: &OAuth2,
    metrics: &Metrics,
    now: Timestamp,
) -> Result<Outcome, Error> {
    if let Err(err) = oauth::access_token(oauth2).await
        && !err.needs_operator()
    {
        // The connections ask again when they need a token; this is only a head start.
        debug!(error = %format!("{:#}", anyhow::Error::from(err)), "Cannot renew the access token yet.");
    }
    let Some(refusal) = oauth::read(&oauth2.token_file)?.and_then(|stored| stored.refused) else {
        metrics.sign_in_restored();
        return Ok(Outcome::Fine);
    };
    let resolved = oauth::resolve(oauth2).await.ok();
    let oauth2 = resolved.as_ref().unwrap_or(oauth2);
    let smtp_too = config.smtp.oauth2.is_some();
    let smtp_note = if smtp_too {
        "; SMTP signs in the same way, so outgoing mail waits in the outbox"
    } else {
        ""
    };
    metrics.sign_in_refused(format!(
        "sign-in refused by {} since {}: {}; run `casemail auth login`{smtp_note}",
        oauth2.token_endpoint, refusal.at, refusal.reason
    ));
    if refusal.notified {
        return Ok(Outcome::Refused);
    }
    error!(
        reason = %refusal.reason,
        "The OAuth2 sign-in was refused; run `casemail auth login` (as the casemail user) to sign in again."
    );
    if smtp_too {
        error!(
            "SMTP signs in with the same tokens: the notice to coordinators and all other mail wait in the outbox until someone signs in."
        );
    }
    let queued = queue_notice(store, config, oauth2, &refusal.reason, now)?;
    if queued == 0 {
        warn!("No coordinator to tell of the refused sign-in.");
    }
    oauth::mark_refusal_notified(oauth2, refusal.at).await?;
    info!(
        notices = queued,
        "Coordinators told of the refused sign-in."
    );
    Ok(Outcome::Notified(queued))
}

fn queue_notice(
    store: &Store,
    config: &Config,
    oauth2: &OAuth2,
    reason: &str,
    now: Timestamp,
) -> Result<usize, Error> {
    let team = Team::load(store, &config.rota.timezone)?;
    let sender = assign::sender(config);
    let (subject, body) = notice_text(config, oauth2, reason);
    let nonce = u64::try_from(now.as_millisecond()).unwrap_or_default();
    let mut outgoing = Vec::new();
    for (index, coordinator) in team
        .coordinators(now)
        .into_iter()
        .filter(|agent| agent.role == Role::Coordinator)
        .enumerate()
    {
        let Some(to) = coordinator.emails.first() else {
            continue;
        };
        match compose::plain_to(
            &sender,
            to,
            &subject,
            body.clone(),
            "signin",
            nonce.wrapping_add(index as u64),
            now,
        ) {
            Ok(mail) => outgoing.push(mail),
            Err(err) => {
                warn!(agent = %coordinator.id, error = %err, "Cannot compose the sign-in notice.")
            }
        }
    }
    store.write(|tx| {
        for mail in &outgoing {
            assign::enqueue(tx, &config.loops, OutboxKind::Notification, None, mail, now)?;
        }
        Ok(())
    })?;
    Ok(outgoing.len())
}

/// The notice's subject and body: what happened, what stops working, what to run.
pub(crate) fn notice_text(config: &Config, oauth2: &OAuth2, reason: &str) -> (String, String) {
    let subject = "casemail: signing in to the mailbox was refused".to_owned();
    let mut affected = Vec::new();
    if config.imap.oauth2.is_some() {
        affected.push("new mail is not read");
    }
    if config.smtp.oauth2.is_some() {
        affected.push("nothing is sent (answers and notifications wait in the outbox)");
    }
    let body = format!(
        "casemail can no longer sign in to {mailbox}: the sign-in service ({endpoint}) refused\n\
         the stored sign-in with: {reason}\n\n\
         Until someone signs in again, {affected}. Nothing is lost: mail stays in the mailbox\n\
         and in the outbox.\n\n\
         This happens when the password of the mailbox's account changed, the app's access was\n\
         revoked or expired, or the client secret expired. Whoever runs the server should run\n\n\
         \x20   casemail auth login\n\n\
         and sign in as {mailbox}.\n",
        mailbox = crate::mail::sanitize::for_terminal(&config.imap.username),
        endpoint = oauth2.token_endpoint,
        reason = crate::mail::sanitize::for_terminal(reason),
        affected = affected.join(", and "),
    );
    (subject, body)
}

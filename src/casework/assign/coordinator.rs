//! A coordinator's ticket commands from the command line: assign, close, reopen.

use jiff::Timestamp;

use crate::casework::route::{Decision, Reason};
use crate::casework::token::Secret;
use crate::config::Config;
use crate::ids::{AgentId, TicketId};
use crate::mail::compose::Why;
use crate::model::{Actor, Event};
use crate::store::Store;

use super::{Context, Team, TeamChange, apply, sender};

/// A coordinator's `ticket assign N AGENT`: gives the ticket to the agent and sends them the
/// notification, as routing would.
pub(crate) fn assign_by_coordinator(
    store: &Store,
    config: &Config,
    ticket: TicketId,
    agent: &AgentId,
    now: Timestamp,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let team = Team::load(store, &config.rota.timezone)?;
    let record = team
        .agent(agent)
        .with_context(|| format!("no agent {agent}"))?;
    if crate::casework::admin::is_away(record, now) {
        anyhow::bail!("agent {agent} is away");
    }
    let ticket = crate::casework::admin::resolve_merged(store, ticket)?;
    let secret = Secret::load_or_create(&config.helpdesk.state_dir)?;
    let helpdesk = sender(config);
    let context = Context {
        team: &team,
        secret: &secret,
        sender: &helpdesk,
        limits: config.loops,
        now,
        nonce: rand::random(),
    };
    let found = store.write(|tx| {
        let Some(mut record) = tx.ticket(ticket)? else {
            return Ok(false);
        };
        let mut change = TeamChange::default();
        record.owner = None;
        let decision = Decision::Assign {
            agent: agent.clone(),
            reason: Reason::CurrentOwner,
        };
        apply(
            tx,
            &context,
            &mut record,
            &decision,
            None,
            &[],
            Why::Assigned,
            &mut change,
        )?;
        tx.put_ticket(&record)?;
        Ok(true)
    })?;
    if !found {
        anyhow::bail!("no ticket #{}", ticket.0);
    }
    store.flush()?;
    Ok(())
}

/// A coordinator's `ticket close N` / `ticket reopen N`.
pub(crate) fn set_status_by_coordinator(
    store: &Store,
    ticket: TicketId,
    status: crate::model::Status,
    now: Timestamp,
) -> anyhow::Result<()> {
    let ticket = crate::casework::admin::resolve_merged(store, ticket)?;
    let found = store.write(|tx| {
        let Some(mut record) = tx.ticket(ticket)? else {
            return Ok(false);
        };
        record.status = status;
        record.updated = now;
        let event = Event {
            at: now,
            actor: Actor::System,
            kind: status.as_str().to_owned(),
            detail: format!("set to {status} from the command line"),
        };
        tx.add_event(&mut record, &event)?;
        tx.put_ticket(&record)?;
        Ok(true)
    })?;
    if !found {
        anyhow::bail!("no ticket #{}", ticket.0);
    }
    store.flush()?;
    Ok(())
}

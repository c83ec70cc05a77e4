//! The operator's commands on the store, shared by the CLI and the control socket: the wire
//! form a command travels in (`StoreCommand`) and `execute`, which runs it and writes what it
//! prints. The CLI runs a command here when no daemon listens; the daemon when one arrives on its
//! socket.

use std::io::Write;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::casework::admin;
use crate::config::Config;
use crate::ids::{AgentId, TicketId};
use crate::model::{Role, Status};
use crate::store::Store;
use crate::{casework::report, mail::sanitize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleArg {
    Agent,
    Coordinator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    New,
    Open,
    Waiting,
    Closed,
    Spam,
}

/// A command that reads or changes the store, as it travels over the control socket. It
/// carries everything the command needs, so the daemon reads no file on the CLI's behalf (the
/// rota file's text travels with `rota import`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreCommand {
    TicketList {
        status: Option<StatusFilter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        json: bool,
    },
    TicketShow {
        number: u64,
        json: bool,
    },
    TicketClose {
        number: u64,
    },
    TicketReopen {
        number: u64,
    },
    TicketAssign {
        number: u64,
        agent: String,
    },
    TicketMerge {
        from: u64,
        into: u64,
    },
    QuarantineList {
        json: bool,
    },
    QuarantineShow {
        id: String,
        json: bool,
    },
    /// Runs in the daemon's process stage, the single writer of filed mail.
    QuarantineRetry {
        id: String,
    },
    AgentAdd {
        id: String,
        name: String,
        emails: Vec<String>,
        role: RoleArg,
        max_open: Option<u32>,
    },
    AgentList {
        json: bool,
    },
    AgentShow {
        id: String,
        json: bool,
    },
    AgentRemove {
        id: String,
    },
    AgentAway {
        id: String,
        until: Option<String>,
    },
    AgentBack {
        id: String,
    },
    AgentEdit {
        id: String,
        name: Option<String>,
        max_open: Option<u32>,
        role: Option<RoleArg>,
    },
    AgentAddressAdd {
        id: String,
        address: String,
    },
    AgentAddressRemove {
        id: String,
        address: String,
    },
    RotaImport {
        /// The file's name as the user gave it, for messages.
        file: String,
        text: String,
    },
    RotaExport,
    RotaShow {
        at: Option<String>,
        json: bool,
    },
    SuppressionList {
        json: bool,
    },
    SuppressionRemove {
        address: String,
    },
    SpamList {
        json: bool,
    },
    SpamRelease {
        number: u64,
    },
    /// Messages tokenised by the CLI, so the daemon reads no file on its behalf.
    SpamTrain {
        spam: Vec<crate::casework::spam::bayes::Sample>,
        ham: Vec<crate::casework::spam::bayes::Sample>,
    },
    /// Writes the backup itself to the output; through the control socket the daemon streams
    /// it after its reply line.
    Backup,
    Erase {
        requester: String,
        dry_run: bool,
        json: bool,
    },
    /// Runs in the daemon's process stage, which then signs and checks with the new key.
    SecretRotate,
    DeadletterList {
        json: bool,
    },
    /// Runs in the daemon's process stage, whose sweep then wakes the relay.
    DeadletterRetry {
        id: u64,
    },
}

impl StoreCommand {
    /// Whether the command changes agents or the rota, which the process stage caches.
    pub fn changes_team(&self) -> bool {
        matches!(
            self,
            StoreCommand::AgentAdd { .. }
                | StoreCommand::AgentRemove { .. }
                | StoreCommand::AgentAway { .. }
                | StoreCommand::AgentBack { .. }
                | StoreCommand::AgentEdit { .. }
                | StoreCommand::AgentAddressAdd { .. }
                | StoreCommand::AgentAddressRemove { .. }
                | StoreCommand::RotaImport { .. }
                | StoreCommand::TicketClose { .. }
                | StoreCommand::TicketReopen { .. }
                | StoreCommand::TicketAssign { .. }
                | StoreCommand::TicketMerge { .. }
                | StoreCommand::SpamRelease { .. }
                | StoreCommand::Erase { .. }
        )
    }

    /// Whether the daemon runs the command inside its process stage, the single writer of
    /// filed mail, rather than beside it: an erasure removes tickets mail may be filed into.
    pub fn needs_single_writer(&self) -> bool {
        matches!(
            self,
            StoreCommand::Erase { dry_run: false, .. }
                | StoreCommand::SecretRotate
                | StoreCommand::DeadletterRetry { .. }
                | StoreCommand::QuarantineRetry { .. }
        )
    }

    /// A short name for logs (`agent add`), without the arguments, which may hold addresses.
    pub fn name(&self) -> &'static str {
        match self {
            StoreCommand::TicketList { .. } => "ticket list",
            StoreCommand::TicketShow { .. } => "ticket show",
            StoreCommand::TicketClose { .. } => "ticket close",
            StoreCommand::TicketReopen { .. } => "ticket reopen",
            StoreCommand::TicketAssign { .. } => "ticket assign",
            StoreCommand::TicketMerge { .. } => "ticket merge",
            StoreCommand::QuarantineList { .. } => "quarantine list",
            StoreCommand::QuarantineShow { .. } => "quarantine show",
            StoreCommand::QuarantineRetry { .. } => "quarantine retry",
            StoreCommand::AgentAdd { .. } => "agent add",
            StoreCommand::AgentList { .. } => "agent list",
            StoreCommand::AgentShow { .. } => "agent show",
            StoreCommand::AgentRemove { .. } => "agent remove",
            StoreCommand::AgentAway { .. } => "agent away",
            StoreCommand::AgentBack { .. } => "agent back",
            StoreCommand::AgentEdit { .. } => "agent edit",
            StoreCommand::AgentAddressAdd { .. } => "agent address add",
            StoreCommand::AgentAddressRemove { .. } => "agent address remove",
            StoreCommand::RotaImport { .. } => "rota import",
            StoreCommand::RotaExport => "rota export",
            StoreCommand::RotaShow { .. } => "rota show",
            StoreCommand::SuppressionList { .. } => "suppression list",
            StoreCommand::SuppressionRemove { .. } => "suppression remove",
            StoreCommand::SpamList { .. } => "spam list",
            StoreCommand::SpamRelease { .. } => "spam release",
            StoreCommand::SpamTrain { .. } => "spam train",
            StoreCommand::Backup => "backup",
            StoreCommand::Erase { .. } => "erase",
            StoreCommand::SecretRotate => "secret rotate",
            StoreCommand::DeadletterList { .. } => "deadletter list",
            StoreCommand::DeadletterRetry { .. } => "deadletter retry",
        }
    }
}

/// Runs a store command, writing what it prints to `out`. The daemon calls this for commands
/// that arrive on the control socket, the CLI when no daemon runs.
pub fn execute(
    store: &Store,
    config: &Config,
    command: &StoreCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    execute_at(store, config, command, jiff::Timestamp::now(), out)
}

/// [`execute`] at the time `now` (what events and away periods are stamped with).
pub fn execute_at(
    store: &Store,
    config: &Config,
    command: &StoreCommand,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        StoreCommand::TicketList {
            status,
            owner,
            since,
            json,
        } => {
            let filter = report::TicketFilter {
                status: status.map(|s| match s {
                    StatusFilter::New => Status::New,
                    StatusFilter::Open => Status::Open,
                    StatusFilter::Waiting => Status::Waiting,
                    StatusFilter::Closed => Status::Closed,
                    StatusFilter::Spam => Status::Spam,
                }),
                owner: owner.clone().map(AgentId),
                since: since
                    .as_deref()
                    .map(|text| parse_date("--since", text, &config.rota.timezone))
                    .transpose()?,
            };
            ticket_list(store, &filter, *json, out)
        }
        StoreCommand::TicketShow { number, json } => {
            ticket_show(store, config, *number, *json, out)
        }
        StoreCommand::TicketClose { number } => {
            crate::casework::assign::set_status_by_coordinator(
                store,
                TicketId(*number),
                Status::Closed,
                now,
            )?;
            writeln!(out, "ticket #{number} closed")?;
            Ok(())
        }
        StoreCommand::TicketReopen { number } => {
            crate::casework::assign::set_status_by_coordinator(
                store,
                TicketId(*number),
                Status::Open,
                now,
            )?;
            writeln!(out, "ticket #{number} reopened")?;
            Ok(())
        }
        StoreCommand::TicketAssign { number, agent } => {
            crate::casework::assign::assign_by_coordinator(
                store,
                config,
                TicketId(*number),
                &AgentId(agent.clone()),
                now,
            )?;
            writeln!(out, "ticket #{number} assigned to {agent}")?;
            Ok(())
        }
        StoreCommand::TicketMerge { from, into } => {
            admin::merge(store, TicketId(*from), TicketId(*into), now)?;
            writeln!(out, "ticket #{from} merged into #{into}")?;
            Ok(())
        }
        StoreCommand::QuarantineList { json } => quarantine_list(store, *json, out),
        StoreCommand::QuarantineShow { id, json } => quarantine::show(store, id, *json, out),
        StoreCommand::QuarantineRetry { id } => quarantine::retry(store, config, id, now, out),
        StoreCommand::AgentAdd {
            id,
            name,
            emails,
            role,
            max_open,
        } => {
            let role = match role {
                RoleArg::Agent => Role::Agent,
                RoleArg::Coordinator => Role::Coordinator,
            };
            let new = admin::NewAgent {
                id: id.clone(),
                name: name.clone(),
                emails: emails.clone(),
                role,
                max_open: *max_open,
            };
            let agent = admin::add_agent(store, &config.helpdesk.address, new, now)?;
            writeln!(out, "agent {} added", agent.id)?;
            Ok(())
        }
        StoreCommand::AgentList { json } => agent_list(store, config, *json, now, out),
        StoreCommand::AgentShow { id, json } => agent_show(store, config, id, *json, now, out),
        StoreCommand::AgentRemove { id } => {
            let released = admin::remove_agent(store, &AgentId(id.clone()), now)?;
            writeln!(
                out,
                "agent {id} removed; {} open ticket(s) back to routing",
                released.len()
            )?;
            Ok(())
        }
        StoreCommand::AgentAway { id, until } => {
            let until = until
                .as_deref()
                .map(|text| parse_date("--until", text, &config.rota.timezone))
                .transpose()?;
            let released = admin::set_away(store, &AgentId(id.clone()), until, now)?;
            match until {
                Some(until) => writeln!(
                    out,
                    "agent {id} away until {}; {} open ticket(s) back to routing",
                    crate::casework::rota::local_time(until, &config.rota.timezone),
                    released.len()
                )?,
                None => writeln!(
                    out,
                    "agent {id} away; {} open ticket(s) back to routing",
                    released.len()
                )?,
            }
            Ok(())
        }
        StoreCommand::AgentBack { id } => {
            admin::set_back(store, &AgentId(id.clone()))?;
            writeln!(out, "agent {id} is back")?;
            Ok(())
        }
        StoreCommand::AgentEdit {
            id,
            name,
            max_open,
            role,
        } => {
            if name.is_none() && max_open.is_none() && role.is_none() {
                anyhow::bail!("nothing to change: give --name, --max-open or --role");
            }
            let edit = admin::AgentEdit {
                name: name.clone(),
                max_open: *max_open,
                role: role.map(|role| match role {
                    RoleArg::Agent => Role::Agent,
                    RoleArg::Coordinator => Role::Coordinator,
                }),
            };
            admin::edit_agent(store, &AgentId(id.clone()), edit)?;
            writeln!(out, "agent {id} changed; their tickets stay with them")?;
            Ok(())
        }
        StoreCommand::AgentAddressAdd { id, address } => {
            let agent = admin::add_address(
                store,
                &config.helpdesk.address,
                &AgentId(id.clone()),
                address,
            )?;
            writeln!(
                out,
                "agent {id}: address added; {} address(es), notifications go to the first",
                agent.emails.len()
            )?;
            Ok(())
        }
        StoreCommand::AgentAddressRemove { id, address } => {
            let agent = admin::remove_address(store, &AgentId(id.clone()), address)?;
            writeln!(
                out,
                "agent {id}: address removed; {} address(es) left",
                agent.emails.len()
            )?;
            Ok(())
        }
        StoreCommand::RotaImport { file, text } => rota_import(store, config, file, text, out),
        StoreCommand::RotaExport => match store.rota()? {
            Some(text) => Ok(write!(out, "{text}")?),
            None => anyhow::bail!("no rota has been imported yet (casemail rota import FILE)"),
        },
        StoreCommand::RotaShow { at, json } => {
            rota_show(store, config, at.as_deref(), *json, now, out)
        }
        StoreCommand::SuppressionList { json } => suppression_list(store, *json, now, out),
        StoreCommand::SuppressionRemove { address } => {
            if !store.remove_suppression(&address.to_lowercase())? {
                anyhow::bail!("{} is not suppressed", sanitize::for_terminal(address));
            }
            store.flush()?;
            writeln!(
                out,
                "{} is no longer suppressed",
                sanitize::for_terminal(address)
            )?;
            Ok(())
        }
        StoreCommand::SpamList { json } => {
            crate::casework::spam::held::print_list(store, *json, out)
        }
        StoreCommand::SpamRelease { number } => {
            let learned = crate::casework::spam::held::release(store, TicketId(*number), now)?;
            writeln!(
                out,
                "ticket #{number} released from spam and sent to routing; {learned} message(s) learned as not spam"
            )?;
            Ok(())
        }
        StoreCommand::SpamTrain { spam, ham } => {
            let trained = crate::casework::spam::held::train(store, spam, ham)?;
            crate::casework::spam::held::print_trained(store, trained, out)
        }
        StoreCommand::Backup => {
            crate::ops::backup::write_snapshot(store, &config.helpdesk.state_dir, out)?;
            Ok(())
        }
        StoreCommand::Erase {
            requester,
            dry_run,
            json,
        } => erase(store, requester, *dry_run, *json, now, out),
        StoreCommand::SecretRotate => {
            crate::casework::token::Secret::rotate(&config.helpdesk.state_dir, now)?;
            let grace = jiff::SignedDuration::try_from(config.auth.rotation_grace)
                .unwrap_or(jiff::SignedDuration::MAX);
            let until = now.saturating_add(grace).unwrap_or(jiff::Timestamp::MAX);
            writeln!(
                out,
                "reply secret rotated; tokens made with the old key are accepted until {until}"
            )?;
            Ok(())
        }
        StoreCommand::DeadletterList { json } => deadletter::list(store, *json, out),
        StoreCommand::DeadletterRetry { id } => deadletter::retry(store, *id, now, out),
    }
}

fn erase(
    store: &Store,
    requester: &str,
    dry_run: bool,
    json: bool,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    // Not `admin::normalise_address`: a requester's address may be one lettre refuses.
    let address = requester.trim().to_lowercase();
    if address.is_empty() || !address.contains('@') {
        anyhow::bail!("{:?} is not an address", sanitize::for_terminal(requester));
    }
    let plan = crate::casework::purge::plan_erasure(store, &address)?;
    let messages: usize = plan.messages.values().map(Vec::len).sum();
    let removed = if dry_run {
        None
    } else {
        Some(crate::casework::purge::erase(store, &plan, now)?)
    };
    if json {
        let value = serde_json::json!({
            "requester": plan.requester,
            "dry_run": dry_run,
            "tickets": plan.tickets.iter().map(|t| t.0).collect::<Vec<_>>(),
            "messages_in_other_tickets": plan
                .messages
                .iter()
                .map(|(ticket, seqs)| serde_json::json!({"ticket": ticket.0, "messages": seqs.len()}))
                .collect::<Vec<_>>(),
            "outbox": plan.outbox.len(),
            "dead_letters": plan.dead_letters.len(),
            "quarantine": plan.quarantine.len(),
            "removed": removed,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let numbers: Vec<String> = plan.tickets.iter().map(|t| format!("#{}", t.0)).collect();
    let verb = if dry_run { "would remove" } else { "removed" };
    writeln!(
        out,
        "erasure of {}: {verb} {} ticket(s){}, {messages} message(s) in other tickets, {} outbox message(s), {} dead letter(s), {} quarantined message(s)",
        sanitize::for_terminal(&plan.requester),
        plan.tickets.len(),
        if numbers.is_empty() {
            String::new()
        } else {
            format!(" ({})", numbers.join(", "))
        },
        plan.outbox.len(),
        plan.dead_letters.len(),
        plan.quarantine.len(),
    )?;
    for (ticket, seqs) in &plan.messages {
        writeln!(
            out,
            "  ticket #{}: {} message(s) of theirs",
            ticket.0,
            seqs.len()
        )?;
    }
    match removed {
        None => writeln!(out, "dry run: nothing was changed")?,
        Some(removed) => writeln!(
            out,
            "{} IMAP deletion(s) queued: the daemon deletes those copies from the server",
            removed.imap_deletions
        )?,
    }
    Ok(())
}

fn quarantine_list(store: &Store, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let entries = store.quarantine()?;
    if json {
        let values: Vec<_> = entries.iter().map(report::quarantine_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
    } else if entries.is_empty() {
        writeln!(out, "quarantine is empty")?;
    } else {
        for e in &entries {
            writeln!(
                out,
                "{}  {} uid {} (uidvalidity {}), {} bytes, {} attempts: {}",
                sanitize::for_terminal(&quarantine::id(&e.source)),
                sanitize::for_terminal(&e.source.mailbox),
                e.source.uid,
                e.source.uidvalidity,
                e.size,
                e.attempts,
                sanitize::for_terminal(&e.reason)
            )?;
        }
    }
    Ok(())
}

fn suppression_list(
    store: &Store,
    json: bool,
    now: jiff::Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let active: Vec<_> = store
        .suppressions()?
        .into_iter()
        .filter(|s| s.until > now)
        .collect();
    if json {
        let values: Vec<_> = active.iter().map(report::suppression_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
    } else if active.is_empty() {
        writeln!(out, "no address is suppressed")?;
    } else {
        for s in &active {
            writeln!(
                out,
                "{}  until {}  {}{}",
                sanitize::for_terminal(&s.address),
                s.until,
                sanitize::for_terminal(&s.reason),
                s.ticket
                    .map(|t| format!("  (ticket #{})", t.0))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// Reads `--until` or `--since` (`option`): a civil date (midnight in `timezone`) or an RFC
/// 3339 time.
fn parse_date(
    option: &str,
    text: &str,
    timezone: &jiff::tz::TimeZone,
) -> anyhow::Result<jiff::Timestamp> {
    crate::casework::rota::parse_date(text, timezone)
        .map_err(|err| anyhow::anyhow!("{option} {err}"))
}

fn ticket_list(
    store: &Store,
    filter: &report::TicketFilter,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let tickets = report::ticket_list(store, filter)?;
    if json {
        let values: Vec<_> = tickets.iter().map(report::ticket_summary).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
    } else {
        write!(out, "{}", report::ticket_list_text(&tickets))?;
    }
    Ok(())
}

fn ticket_show(
    store: &Store,
    config: &Config,
    number: u64,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let detail = report::ticket_detail(store, TicketId(number))?
        .with_context(|| format!("no ticket #{number}"))?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?;
    } else {
        write!(
            out,
            "{}",
            report::ticket_detail_text(&detail, &config.rota.timezone)
        )?;
    }
    Ok(())
}

pub mod backup;
mod deadletter;
pub(crate) mod inspect;
mod quarantine;
mod team;
use team::{agent_list, agent_show, rota_import, rota_show};
pub(crate) mod status;

#[cfg(test)]
mod tests;

//! The acknowledgement a requester receives for a new request, and when there is none.

use tracing::{debug, warn};

use crate::casework::assign::{self, Team};
use crate::config::Config;
use crate::mail::parse::InboundMail;
use crate::model::{Actor, Event, Ticket};
use crate::store::{self, WriteTx};

use super::*;

impl Filing<'_> {
    /// Whether the sender of a new request may get an acknowledgement, as far as the message
    /// itself tells: not automatic, bulk, list or report mail (`mail_loops::no_answer`), not from
    /// a caseworker's address or the helpdesk's own.
    pub(super) fn may_acknowledge(&self, team: &Team, mail: &InboundMail, sender: &str) -> bool {
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
pub(super) fn acknowledge_request(
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
        context.now,
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

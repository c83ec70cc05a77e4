//! Delivery reports: filed with the ticket whose mail bounced, the address suppressed when the
//! report is real and hard.

use crate::casework::assign::{self, Team, TeamChange};
use crate::mail::parse::InboundMail;
use crate::model::{Actor, Direction, Event, Source};
use crate::store;

use super::*;

impl Filing<'_> {
    /// Files a delivery report as an internal note of the ticket whose mail bounced, and tells
    /// the caseworker (or the coordinators).
    pub(super) fn file_bounce(
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
                        &helpdesk, owner, &ticket, what, self.nonce, now,
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
}

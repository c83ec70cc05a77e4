//! A caseworker's reply: the bridge's verdict, the commands, the relay gate, and the answer
//! queued for the requester or kept as a note.

use jiff::Timestamp;
use tracing::warn;

use crate::casework::assign::{self, Team, TeamChange};
use crate::casework::gate;
use crate::casework::reply::{self, Verdict};
use crate::mail::compose::AttachmentBytes;
use crate::mail::parse::InboundMail;
use crate::model::{Actor, Direction, Event, Role, Source, StoredMessage, Ticket};
use crate::store::{self, WriteTx};

use super::*;

impl Filing<'_> {
    /// Files a caseworker's reply the bridge accepted or refused, with the cursor, in one
    /// transaction.
    pub(super) fn file_reply(
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
        // A caseworker's answer is stripped of its history once; its commands are read from
        // what is left. When stripping found nothing new, the text is the quote: no command in
        // it counts.
        let answer = match verdict {
            Verdict::Accepted { .. } => {
                let stripped = crate::mail::strip::strip(mail, raw);
                let parsed = if stripped.only_history {
                    reply::Commands {
                        body: stripped.text.clone(),
                        ..reply::Commands::default()
                    }
                } else {
                    reply::commands(&stripped.text)
                };
                Some((stripped, parsed))
            }
            _ => None,
        };
        let merge_into = answer.as_ref().and_then(|(_, parsed)| {
            parsed.commands.iter().find_map(|c| match c {
                reply::Command::Merge(target) => Some(*target),
                _ => None,
            })
        });
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
                    let Some((stripped, parsed)) = answer.as_ref() else {
                        return Err(store::Error::Inconsistent(
                            "an accepted reply without its stripped text".to_owned(),
                        )
                        .into());
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
                        match gate::decide(stripped, parsed, &files, &secrets) {
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
            let until = until
                .map(|date| crate::casework::rota::start_of_day(date, &self.config.rota.timezone));
            match crate::casework::admin::set_away(self.store, agent, until, now) {
                Ok(_) => change.reload = true,
                Err(err) => warn!(error = %err, "Cannot mark the caseworker away."),
            }
        }
        if let (Verdict::Accepted { agent, .. }, Some((_, parsed))) = (verdict, answer.as_ref()) {
            for command in parsed.commands.iter().cloned() {
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

/// Files an answer that repeats one already relayed (a client that sends twice, or a captured
/// reply sent again under a new Message-ID) as a note, never relayed; returns the line that
/// tells the caseworker.
pub(super) fn keep_replayed_answer(
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
pub(super) fn answer_fingerprint(text: &str, attachments: &[AttachmentBytes]) -> String {
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

/// Reads a date (midnight in `timezone`) or an RFC 3339 time, as `#away until …` gives it.
pub(crate) fn parse_until(text: &str, timezone: &jiff::tz::TimeZone) -> Option<Timestamp> {
    crate::casework::rota::parse_date(text, timezone).ok()
}

//! Delivery reports (RFC 3464) for mail casemail sent: which ticket they are about.

use crate::ids::TicketId;
use crate::store::{self, Store};

/// A delivery report (RFC 3464) for mail casemail sent: the ticket it belongs to, found by the
/// Message-ID of the original that the report quotes, and every Message-ID of casemail's own
/// mail about that ticket the report quotes (the ticket as the index names it, before merges).
pub(crate) fn bounced_ticket(
    store: &Store,
    raw: &[u8],
) -> Result<Option<(TicketId, Vec<crate::ids::MessageId>)>, store::Error> {
    let text = String::from_utf8_lossy(raw);
    let mut found: Option<(TicketId, Vec<crate::ids::MessageId>)> = None;
    for id in bounce_candidates(&text) {
        if let Some(ticket) = store.find_message_id(&id)? {
            match &mut found {
                None => found = Some((ticket, vec![id])),
                Some((first, ids)) if *first == ticket && !ids.contains(&id) => ids.push(id),
                Some(_) => {}
            }
        }
    }
    Ok(found)
}

/// At most this many `casemail.…` ids of a delivery report are looked up: the report quotes one
/// original, and the domain of a help address may itself start with `casemail.`.
pub(super) const MAX_BOUNCE_CANDIDATES: usize = 256;

/// The Message-IDs casemail could have made that `text` holds, in order: linear in the text,
/// since each is looked for only as far as a Message-ID may reach, and bounded in number.
pub(super) fn bounce_candidates(text: &str) -> impl Iterator<Item = crate::ids::MessageId> + '_ {
    let max_len = crate::ids::MessageId::MAX_LEN;
    text.match_indices("casemail.")
        .take(MAX_BOUNCE_CANDIDATES)
        .filter_map(move |(start, _)| {
            let tail = text.get(start..).unwrap_or("");
            let (end, _) = tail
                .char_indices()
                .take(max_len.saturating_add(1))
                .find(|&(_, c)| c == '>' || c.is_whitespace())?;
            tail.get(..end).and_then(crate::ids::MessageId::parse)
        })
}

//! The records of loop safety: counters of mail sent per recipient, per ticket and per
//! acknowledged sender in fixed windows, and suppressed addresses.
//!
//! | key | value |
//! | --- | --- |
//! | `l/r/{len}:{address}/{hour:010}` | messages sent to `address` in that UTC hour (hours since 1970) |
//! | `l/t/{ticket:020}/{day:010}` | messages sent about the ticket that UTC day (days since 1970) |
//! | `l/a/{len}:{address}/{day:010}` | acknowledgements sent to `address` that UTC day |
//!
//! The address segment of the counters is length-prefixed ([`super::exact`]), so the keys of
//! one address are never found by a scan for another's.
//! | `l/s/{address}` | `Suppression` |

use crate::ids::TicketId;
use crate::model::{Event, Suppression};

use super::{Error, Store, TxResult, WriteTx, get_json, scan_json};

/// Which counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter<'a> {
    /// Mail to one address in one hour.
    Recipient { address: &'a str, hour: i64 },
    /// Mail about one ticket in one day.
    Ticket { ticket: TicketId, day: i64 },
    /// Acknowledgements to one address in one day.
    Acknowledged { address: &'a str, day: i64 },
}

impl Counter<'_> {
    fn key(&self) -> String {
        match self {
            Counter::Recipient { address, hour } => {
                format!("l/r/{}/{hour:010}", super::exact(address))
            }
            Counter::Ticket { ticket, day } => format!("l/t/{:020}/{day:010}", ticket.0),
            Counter::Acknowledged { address, day } => {
                format!("l/a/{}/{day:010}", super::exact(address))
            }
        }
    }
}

fn suppression_key(address: &str) -> String {
    format!("l/s/{address}")
}

impl WriteTx<'_> {
    /// Removes one loop-safety record by its key (see [`Store::loop_keys_of`]).
    pub fn remove_loop_record(&self, key: &str) -> TxResult<()> {
        if key.starts_with("l/") {
            self.tree.remove(key.as_bytes())?;
        }
        Ok(())
    }

    pub fn counter(&self, counter: &Counter<'_>) -> TxResult<u32> {
        Ok(self.get(&counter.key())?.unwrap_or(0))
    }

    pub fn bump_counter(&self, counter: &Counter<'_>) -> TxResult<u32> {
        let next = self.counter(counter)?.saturating_add(1);
        self.put(&counter.key(), &next)?;
        Ok(next)
    }

    pub fn suppression(&self, address: &str) -> TxResult<Option<Suppression>> {
        self.get(&suppression_key(address))
    }

    pub fn put_suppression(&self, suppression: &Suppression) -> TxResult<()> {
        self.put(&suppression_key(&suppression.address), suppression)
    }

    /// Appends an event to a ticket after the rest of the transaction has run, to the ticket as
    /// the transaction left it. For code that queues mail while its caller holds a copy of the
    /// ticket that it writes back later: an event added directly would be overwritten.
    pub fn add_event_later(&self, ticket: TicketId, event: Event) {
        self.later.borrow_mut().push((ticket, event));
    }

    pub(super) fn add_events_later(&self) -> TxResult<()> {
        let pending = std::mem::take(&mut *self.later.borrow_mut());
        for (id, event) in pending {
            if let Some(mut ticket) = self.ticket(id)? {
                self.add_event(&mut ticket, &event)?;
                self.put_ticket(&ticket)?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Every suppressed address, expired ones included until the sweep removes them.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, Error> {
        scan_json(&self.tree, b"l/s/")
    }

    pub fn suppression(&self, address: &str) -> Result<Option<Suppression>, Error> {
        get_json(&self.tree, &suppression_key(address))
    }

    /// Removes a suppression; returns whether there was one.
    pub fn remove_suppression(&self, address: &str) -> Result<bool, Error> {
        Ok(self
            .tree
            .remove(suppression_key(address).as_bytes())?
            .is_some())
    }

    /// The keys of the loop-safety records that name `address`: its per-recipient and
    /// acknowledgement counters and its suppression (for erasure).
    pub fn loop_keys_of(&self, address: &str) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let segment = super::exact(address);
        for prefix in [format!("l/r/{segment}/"), format!("l/a/{segment}/")] {
            for item in self.tree.scan_prefix(prefix.as_bytes()) {
                let (key, _) = item?;
                keys.push(String::from_utf8_lossy(&key).into_owned());
            }
        }
        if self
            .tree
            .contains_key(suppression_key(address).as_bytes())?
        {
            keys.push(suppression_key(address));
        }
        Ok(keys)
    }

    /// Removes counters of windows before the current hour and day, and suppressions that
    /// have run out. Returns how many records went.
    pub fn prune_loop_records(
        &self,
        hour: i64,
        day: i64,
        now: jiff::Timestamp,
    ) -> Result<usize, Error> {
        let mut stale = Vec::new();
        for prefix in [&b"l/r/"[..], b"l/t/", b"l/a/"] {
            for item in self.tree.scan_prefix(prefix) {
                let (key, _) = item?;
                let text = String::from_utf8_lossy(&key);
                let window = text.rsplit('/').next().and_then(|w| w.parse::<i64>().ok());
                let current = if prefix == b"l/r/" { hour } else { day };
                if window.is_none_or(|w| w < current) {
                    stale.push(key);
                }
            }
        }
        for suppression in self.suppressions()? {
            if suppression.until <= now {
                stale.push(suppression_key(&suppression.address).into_bytes().into());
            }
        }
        for key in &stale {
            self.tree.remove(key)?;
        }
        Ok(stale.len())
    }
}

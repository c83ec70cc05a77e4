//! The figures read at scrape time: the store's, the health marks, the fetchers' memory
//! budget, encoded as the `Collector` `/metrics` renders beside the registered counters.

use std::fmt;

use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::*;

/// The fetchers' memory budget at a scrape.
#[derive(Debug, Clone, Copy)]
pub(super) struct FetchFigures {
    pub(super) held_bytes: u64,
    pub(super) budget_bytes: u64,
}

/// The figures known at scrape time: the store's, the health marks, and those that depend on
/// the time of the scrape.
#[derive(Debug)]
pub(super) struct Scrape {
    pub(super) started: Timestamp,
    pub(super) now: Timestamp,
    pub(super) store: StoreFigures,
    pub(super) marks: Marks,
    pub(super) fetch: Option<FetchFigures>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Scrape {
            started,
            now,
            store,
            marks,
            fetch,
        } = self;
        let out = &mut encoder;
        gauge(
            out,
            "casemail_start_time_seconds",
            "When this daemon started, in seconds since the Unix epoch.",
            epoch_seconds(*started),
        )?;
        gauges(
            out,
            "casemail_tickets",
            "Tickets in the store, by status.",
            "status",
            STATUSES.map(|status| {
                let count = store.tickets.get(&status).copied().unwrap_or(0);
                (status.as_str(), count)
            }),
        )?;
        gauges(
            out,
            "casemail_tickets_flagged",
            "Tickets in the store carrying a flag; suspected_spam counts mail that arrived in a junk folder.",
            "flag",
            store
                .flagged
                .iter()
                .map(|(flag, count)| (flag.as_str(), *count)),
        )?;
        gauge(
            out,
            "casemail_messages_stored",
            "Messages stored in tickets, both directions.",
            store.messages,
        )?;
        gauge(
            out,
            "casemail_quarantine_messages",
            "Messages in the quarantine, kept with their raw bytes.",
            store.quarantine,
        )?;
        gauge(
            out,
            "casemail_outbox_messages",
            "Messages waiting in the outbox.",
            store.outbox,
        )?;
        gauge(
            out,
            "casemail_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox; 0 when it is empty.",
            store
                .outbox_oldest
                .map_or(0.0, |oldest| seconds_between(oldest, *now).max(0.0)),
        )?;
        gauge(
            out,
            "casemail_dead_letters",
            "Outbox messages the SMTP server refused for good, kept for an operator.",
            store.dead_letters,
        )?;

        if let Some(fetch) = fetch {
            gauge(
                out,
                "casemail_fetch_held_bytes",
                "Mail fetched and not yet filed, by the sizes the server reported, in bytes (KiB granularity).",
                fetch.held_bytes,
            )?;
            gauge(
                out,
                "casemail_fetch_budget_bytes",
                "The most fetched mail held at once: ingest.fetch_bytes, or ingest.max_message_size if larger.",
                fetch.budget_bytes,
            )?;
        }

        gauges(
            out,
            "casemail_imap_up",
            "Whether the folder's IMAP session is logged in (1) or reconnecting (0).",
            "folder",
            marks
                .folders
                .iter()
                .map(|(folder, mark)| (folder.as_str(), u64::from(mark.state == FolderState::Up))),
        )?;
        gauges(
            out,
            "casemail_imap_last_success_timestamp_seconds",
            "The folder's last login or completed pass (fetch, poll or IDLE round).",
            "folder",
            marks.folders.iter().filter_map(|(folder, mark)| {
                Some((folder.as_str(), epoch_seconds(mark.last_success?)))
            }),
        )?;
        gauges(
            out,
            "casemail_imap_lag_seconds",
            "How far casemail may be behind the folder: 0 while its session is up, else the time since it was last in sync.",
            "folder",
            marks.folders.iter().map(|(folder, mark)| {
                let lag = match mark.state {
                    FolderState::Up => 0.0,
                    FolderState::Down(_) => {
                        let in_sync = mark.last_success.unwrap_or(*started);
                        seconds_between(in_sync, *now).max(0.0)
                    }
                };
                (folder.as_str(), lag)
            }),
        )?;
        gauges(
            out,
            "casemail_imap_uidnext",
            "The UID the server gives the folder's next message (UIDNEXT) at the last look.",
            "folder",
            marks
                .lag
                .iter()
                .filter_map(|(folder, lag)| Some((folder.as_str(), u64::from(lag.uid_next?.0)))),
        )?;
        gauges(
            out,
            "casemail_imap_cursor_uid",
            "The highest UID of the folder whose processing is committed in the store.",
            "folder",
            store
                .cursors
                .iter()
                .map(|(folder, cursor)| (folder.as_str(), u64::from(cursor.last_uid.0))),
        )?;
        gauges(
            out,
            "casemail_imap_lag_messages",
            "Messages in the folder above the cursor at the last look: fetched but not committed, or not fetched yet (paused folders, ingest behind).",
            "folder",
            marks
                .lag
                .iter()
                .map(|(folder, lag)| (folder.as_str(), lag.pending)),
        )?;

        gauges(
            out,
            "casemail_reconcile_missing",
            "Messages the last reconciliation found in the folder but in no ticket and not in the quarantine.",
            "folder",
            marks
                .reconciled
                .missing
                .iter()
                .map(|(folder, missing)| (folder.as_str(), *missing)),
        )?;
        let last_run = out.encode_descriptor(
            "casemail_reconcile_last_run_timestamp_seconds",
            "When the last successful reconciliation ran; absent before the first.",
            None,
            MetricType::Gauge,
        )?;
        if let Some(last) = marks.reconciled.last_run {
            ConstGauge::new(epoch_seconds(last)).encode(last_run)?;
        }
        gauge(
            out,
            "casemail_process_last_alive_timestamp_seconds",
            "When the process stage last finished a batch or a sweep.",
            epoch_seconds(marks.process_alive),
        )
    }
}

/// A gauge without labels.
pub(super) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> Result<(), fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// A gauge with one sample per value of `label`; only its HELP and TYPE without samples.
pub(super) fn gauges<'a, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, V)>,
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, sample) in samples {
        ConstGauge::new(sample).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

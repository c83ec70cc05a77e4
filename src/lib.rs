//! casemail turns a shared help inbox into tickets and back.
//!
//! The modules are layers, lowest first; a module uses only those listed before it (a test,
//! `tests::every_module_uses_only_lower_layers`, fails when one does):
//!
//! - the vocabulary every layer shares: `ids`, `config`, `clock`, and the leaves `tls`,
//!   `systemd` (sd_notify) and `telemetry` (logging); then `model`, the stored records;
//! - `mail`: the pure mail stages (parse, strip quoted history, compose, sanitize, scrub);
//! - `store`: the one sled database;
//! - `casework`: the rules (threading, the reply bridge and its commands, the outbox gate,
//!   spam verdicts, the rota, routing, mail-loop safety, assignment, administration);
//! - one module per protocol: `oauth` (HTTP to an authorization server), then `imap`, `smtp`
//!   and `spamd`;
//! - `metrics`: the figures the stages count and `/metrics` shows;
//! - `process`: the single writer that files fetched mail;
//! - `ops`: the operator's commands, shared by `cli` and the `control` socket;
//! - `control`, then `daemon`, which wires the stages together, and `cli`.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants.

pub mod clock;
pub mod config;
pub mod ids;
pub mod model;

pub mod mail;

pub mod store;

pub mod casework;

mod metrics;

mod tls;

mod imap;
mod oauth;
mod process;
pub mod smtp;
pub mod spamd;
mod systemd;

pub mod ops;

mod control;
mod daemon;

pub mod cli;
pub mod telemetry;

#[cfg(test)]
mod tests;

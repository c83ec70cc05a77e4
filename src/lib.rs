//! casemail turns a shared help inbox into tickets and back.
//!
//! The modules are layers, lowest first; a module uses only those above it in this list (a test,
//! `tests::layers`, fails when one reaches down the list the wrong way or forms a cycle):
//!
//! - the vocabulary every layer shares: `ids`, `model`, `clock`, `config`;
//! - `mail`: the pure mail stages (parse, strip quoted history, compose, sanitize);
//! - `store`: the one sled database;
//! - `casework`: the rules (threading, the reply bridge and its commands, the outbox gate,
//!   spam verdicts, the rota, routing, mail-loop safety, assignment, administration);
//! - `metrics`: the figures every stage counts;
//! - one module per protocol: `imap`, `smtp`, `oauth`, `systemd`, and the `process` stage, the
//!   single writer that files fetched mail;
//! - `ops`: the operator's commands, shared by `cli` and the `control` socket;
//! - `daemon`, which wires the stages together, and `cli`.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants.

pub mod clock;
pub mod config;
pub mod ids;
pub mod model;

pub mod mail;

pub mod store;

pub mod casework;

pub mod metrics;

mod tls;

pub mod imap;
pub mod oauth;
pub mod process;
pub mod smtp;
pub mod systemd;

pub mod ops;

pub mod control;
pub mod daemon;

pub mod cli;
pub mod telemetry;

#[cfg(test)]
mod tests;

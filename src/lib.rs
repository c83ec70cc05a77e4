//! casemail turns a shared help inbox into tickets and back.
//!
//! The modules are listed in the order a message travels through them: configuration and the
//! identifiers every stage shares, then fetch → parse → thread → spam → route → store → relay,
//! and finally the daemon that wires the stages together and the control socket the CLI uses.
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants.

pub mod clock;
pub mod config;
pub mod ids;
pub mod model;
pub mod oauth;
pub mod rota;
pub mod sanitize;
pub mod telemetry;
mod tls;

pub mod auth;
pub mod fetch;
pub mod ingest;
pub mod parse;
pub mod reaction;
pub mod relay;
pub mod route;
pub mod sd_notify;
pub mod spam;
pub mod store;
pub mod strip;
pub mod thread;
pub mod token;

pub mod admin;
pub mod assign;
pub mod bridge;
pub mod gate;
pub mod loops;
pub mod notify;
pub mod report;

pub mod backup;
pub mod purge;

pub mod cli;
pub mod ops;
pub mod control;
pub mod daemon;
pub mod inspect;
pub mod metrics;
pub mod reconcile;
pub mod sign_in;

//! The one integration-test binary: `cargo test --test it`.
//!
//! Every module here talks to real servers started by `harness` (Debian's Dovecot and Postfix on
//! loopback) or runs the real `casemail` binary. Keeping them in one binary means the shared
//! bench boots once per run.

// Test code: indexing a JSON value or a slice that is not there is a failed test, which is what
// a panic here reports.
#![allow(clippy::indexing_slicing)]

mod daemon;
mod harness;

mod auth;
mod bench_smoke;
mod bridge;
mod check_config;
mod control;
mod identity;
mod ingest;
mod lifecycle;
mod limits;
mod loops;
mod notices;
mod oauth;
mod privacy;
mod reconcile;
mod relay;
mod routing;
mod service;
mod spam;
mod status;
mod store_crash;
mod timezone;

//! The one integration-test binary: `cargo test --test it`.
//!
//! Every module here talks to real servers started by `harness` (Debian's Dovecot and Postfix on
//! loopback) or runs the real `casemail` binary. Keeping them in one binary means the shared
//! bench boots once per run.

mod daemon;
mod harness;

mod bench_smoke;
mod check_config;
mod ingest;
mod store_crash;

//! The one integration-test binary: `cargo test --test it`.
//!
//! Every module here talks to real servers started by `harness` (Debian's Dovecot and Postfix on
//! loopback). Keeping them in one binary means the shared bench boots once per run.

mod harness;

mod bench_smoke;

//! Golden tests of filing: raw mail in, the desk's tickets, events and outbox out, compared with
//! blessed expectations. Run `UPDATE_EXPECT=1 cargo test --lib process::golden` to bless a
//! deliberate change, then read the diff.

mod basics;
mod hostile;
mod replies;
mod routing;
mod routing_threads;

//! The pure mail stages: bytes in, values out. Nothing here reads the clock, the store or the
//! network, so every function is tested with raw mail alone.
//!
//! - `parse`: raw RFC 5322 bytes into an `InboundMail` that never fails to exist;
//! - `strip`: the new text of a reply, without quoted history and signatures;
//! - `compose`: the mail casemail writes (notifications, acknowledgements, notices), with the
//!   date and MIME boundary passed in;
//! - `sanitize`: text made safe for a terminal, a log line or a header;
//! - `scrub`: caseworkers' addresses and reply tokens found and replaced;
//! - `reaction`: reactions and read receipts told apart from answers.

pub(crate) mod compose;
pub mod parse;
pub(crate) mod reaction;
pub mod sanitize;
pub(crate) mod scrub;
pub mod strip;

//! Any bytes parse into an `InboundMail` without a panic.
#![no_main]

use casemail::mail::parse::{ParseLimits, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let _ = parse(raw, &ParseLimits::default());
});

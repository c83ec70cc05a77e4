//! Any message strips without a panic, and something is kept of a message with text.
#![no_main]

use casemail::mail::parse::{ParseLimits, parse};
use casemail::mail::strip::strip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let mail = parse(raw, &ParseLimits::default());
    let stripped = strip(&mail, raw);
    if !mail.text.trim().is_empty() {
        assert!(!stripped.text.is_empty());
    }
});

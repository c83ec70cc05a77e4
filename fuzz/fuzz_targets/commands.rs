//! Any text reads as command lines without a panic, and what is left to relay is never longer
//! than the reply.
#![no_main]

use casemail::casework::reply::commands;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let parsed = commands(text);
    assert!(parsed.body.len() <= text.len());
});

//! The relay gate's oracle: whatever a caseworker writes around their address and the reply
//! token, nothing the gate relays contains either, in any case.
#![no_main]

use casemail::casework::reply::commands;
use casemail::casework::gate::{self, Decision, Secrets};
use casemail::mail::strip::strip_text;
use libfuzzer_sys::fuzz_target;

const ADDRESS: &str = "kate.kowalski@volunteers.example";
const TOKEN: &str = "cm.12.kate.0123456789abcdef01234567";

fuzz_target!(|input: (&str, &str, u8)| {
    let (before, after, case) = input;
    let address: String = ADDRESS
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if (usize::from(case) >> (i % 8)) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let text = format!("{before}{address} {TOKEN}{after}");
    let secrets = Secrets::new([ADDRESS], [TOKEN]);
    let stripped = strip_text(&text);
    let parsed = commands(&stripped.text);
    if let Decision::Relay(cleared) = gate::decide(&stripped, &parsed, &[], &secrets) {
        let seen = casemail::mail::sanitize::without_format(&cleared.text).to_lowercase();
        assert!(!seen.contains(ADDRESS), "{seen:?}");
        assert!(!seen.contains(TOKEN), "{seen:?}");
    }
});

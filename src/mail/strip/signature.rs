//! Signatures (from an RFC 3676 "-- " line) and phone taglines at the end of a reply.

use super::Format;
use super::patterns::{self, normalise};

/// Removes the signature (from an RFC 3676 "-- " line, when a short block follows) and phone
/// taglines among the last lines. Returns whether anything was removed.
pub(super) fn strip_signature(lines: &mut Vec<String>, format: Format) -> bool {
    let mut removed = false;
    loop {
        while lines.last().is_some_and(|line| line.trim().is_empty()) {
            lines.pop();
        }
        if let Some(delimiter) = signature_delimiter(lines, format) {
            lines.truncate(delimiter);
            removed = true;
            continue;
        }
        let last_lines: Vec<usize> = (0..lines.len())
            .rev()
            .filter(|&index| lines.get(index).is_some_and(|line| !line.trim().is_empty()))
            .take(3)
            .collect();
        let tagline = last_lines.into_iter().find(|&index| {
            lines
                .get(index)
                .is_some_and(|line| patterns::is_mobile_tagline(&normalise(line)))
        });
        match tagline {
            Some(index) => {
                lines.remove(index);
                removed = true;
            }
            None => return removed,
        }
    }
}

/// The first "-- " line among the last lines. A signature is short (RFC 3676 asks for four
/// lines; real ones run longer), so a "-- " line with more than 12 lines of text under it is the
/// caseworker's own separator.
fn signature_delimiter(lines: &[String], format: Format) -> Option<usize> {
    let mut found = None;
    let mut text_lines_under = 0;
    for (index, line) in lines.iter().enumerate().rev() {
        if text_lines_under > 12 {
            break;
        }
        if format.is_signature_delimiter(line) {
            found = Some(index);
        }
        if !line.trim().is_empty() {
            text_lines_under += 1;
        }
    }
    found
}

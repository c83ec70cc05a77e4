//! Checks for the damage mail-parser recovers from without saying so: broken or unterminated
//! multiparts, undecodable or cut-off parts, and charsets it read as UTF-8 because it could not
//! decode them. Each check only reads the parsed message and the raw bytes and appends
//! anomalies.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Message, MimeHeaders, PartType};
use regex::Regex;

use super::{Anomaly, MimeProblem, Truncation};

/// Reports the damage mail-parser recovers from silently: multiparts whose boundary is missing
/// or never closed, parts it could not decode, and base64 that stops mid-group. Parts of
/// forwarded messages are not checked; their damage does not affect this message.
pub(super) fn check_structure(message: &Message<'_>, raw: &[u8], anomalies: &mut Vec<Anomaly>) {
    let closed = closing_boundaries(raw);
    let mut truncated = false;
    for (index, part) in message.parts.iter().enumerate() {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        if !content_type.ctype().eq_ignore_ascii_case("multipart") {
            continue;
        }
        let Some(boundary) = content_type.attribute("boundary") else {
            anomalies.push(Anomaly::BrokenMime {
                part: index,
                problem: MimeProblem::NoBoundaryParameter,
            });
            continue;
        };
        if !matches!(part.body, PartType::Multipart(_)) {
            anomalies.push(Anomaly::BrokenMime {
                part: index,
                problem: MimeProblem::BoundaryNotFound {
                    boundary: boundary.to_owned(),
                },
            });
            continue;
        }
        if !closed.contains(boundary.as_bytes()) {
            truncated = true;
            anomalies.push(Anomaly::Truncated {
                part: index,
                problem: Truncation::MissingClosingBoundary {
                    boundary: boundary.to_owned(),
                },
            });
        }
    }

    for (index, part) in message.parts.iter().enumerate() {
        let declared = part
            .content_transfer_encoding()
            .map(|encoding| encoding.trim().to_ascii_lowercase());
        let declared = declared.as_deref();
        let runs_to_end = usize::try_from(part.offset_end).is_ok_and(|end| end >= raw.len());
        if part.is_encoding_problem && matches!(declared, Some("base64" | "quoted-printable")) {
            // A part cut off by the end of the data is already explained by the missing
            // closing boundary.
            if !(truncated && runs_to_end) {
                anomalies.push(Anomaly::BrokenMime {
                    part: index,
                    problem: MimeProblem::Undecodable {
                        encoding: declared.unwrap_or_default().to_owned(),
                    },
                });
            }
        } else if !part.is_encoding_problem
            && declared == Some("base64")
            && !matches!(part.body, PartType::Multipart(_) | PartType::Message(_))
        {
            let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
            let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
            let encoded = raw.get(start..end).unwrap_or_default();
            let symbols = encoded
                .iter()
                .filter(|&&byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
                .count();
            if symbols % 4 != 0 {
                anomalies.push(Anomaly::Truncated {
                    part: index,
                    problem: Truncation::IncompleteBase64,
                });
            }
        }
    }
}

/// The boundaries that have a closing delimiter line, `--boundary--` (RFC 2046 §5.1.1), found
/// in one pass over the message, so that deeply nested multiparts cost no more than flat ones.
fn closing_boundaries(raw: &[u8]) -> BTreeSet<&[u8]> {
    raw.split(|&byte| byte == b'\n')
        .filter_map(|line| {
            let line = line.trim_ascii_end();
            line.strip_prefix(b"--")?.strip_suffix(b"--")
        })
        .collect()
}

/// How mail-parser will treat a declared charset.
pub(super) enum CharsetSupport {
    Decoded,
    /// Known by name, but this build reads it as UTF-8.
    NotDecoded,
    Unknown,
}

pub(super) fn charset_support(label: &str) -> CharsetSupport {
    let label = label.trim();
    // UTF-8 is not in mail-parser's table: its fallback for a missing decoder is UTF-8.
    if label.eq_ignore_ascii_case("utf-8") || label.eq_ignore_ascii_case("utf8") {
        return CharsetSupport::Decoded;
    }
    match charset_decoder(label.as_bytes()) {
        None => CharsetSupport::Unknown,
        // Without mail-parser's `full_encoding` feature the multi-byte decoders are stand-ins
        // that read the bytes as UTF-8. A real decoder for any non-UTF-8 charset turns the
        // UTF-8 bytes of "é" into something else; a stand-in returns "é" unchanged.
        Some(decoder) if decoder("é".as_bytes()) == "é" => CharsetSupport::NotDecoded,
        Some(_) => CharsetSupport::Decoded,
    }
}

/// An RFC 2047 encoded word's charset, with an optional RFC 2231 language suffix.
static ENCODED_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"=\?([^?*\s]+)(?:\*[^?\s]*)?\?[BbQq]\?")
        .expect("the encoded-word pattern is a valid regular expression")
});

/// Reports the charsets mail-parser silently read as UTF-8: those of text parts and those of
/// encoded words in the message's own header fields.
pub(super) fn check_charsets(message: &Message<'_>, raw: &[u8], anomalies: &mut Vec<Anomaly>) {
    let mut seen = BTreeSet::new();
    let mut report = |charset: &str, part: Option<usize>| {
        let anomaly = match charset_support(charset) {
            CharsetSupport::Decoded => return,
            CharsetSupport::NotDecoded => Anomaly::CharsetNotDecoded {
                charset: charset.to_owned(),
                part,
            },
            CharsetSupport::Unknown => Anomaly::UnknownCharset {
                charset: charset.to_owned(),
                part,
            },
        };
        if seen.insert((charset.to_ascii_lowercase(), part)) {
            anomalies.push(anomaly);
        }
    };

    let header_end = message
        .parts
        .first()
        .and_then(|root| usize::try_from(root.offset_body).ok())
        .unwrap_or(0);
    let header_block = String::from_utf8_lossy(raw.get(..header_end).unwrap_or(raw));
    for capture in ENCODED_WORD.captures_iter(&header_block) {
        if let Some(charset) = capture.get(1) {
            report(charset.as_str(), None);
        }
    }

    for (index, part) in message.parts.iter().enumerate() {
        if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
            continue;
        }
        if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset")) {
            report(charset, Some(index));
        }
    }
}

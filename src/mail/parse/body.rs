//! The body: the readable text (recovered from damaged MIME where mail-parser found none) and
//! the attachments.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{Message, MimeHeaders, PartType};

use super::html::html_to_text;
use super::{Anomaly, Attachment, ParseLimits};

/// The readable text of a message. When mail-parser found no body text because the MIME
/// structure is damaged, the text of the part that would have been the body is used instead,
/// and its index is returned so that it is not listed as an attachment too.
pub(super) fn message_text(message: &Message<'_>, raw: &[u8]) -> (String, Option<usize>) {
    let mut pieces = Vec::new();
    for &id in &message.text_body {
        let Some(part) = usize::try_from(id)
            .ok()
            .and_then(|id| message.parts.get(id))
        else {
            continue;
        };
        // Inline images sit between text parts in the body list; they are attachments.
        if let Some(text) = part_text(part, raw) {
            pieces.push(text);
        }
    }
    pieces.retain(|piece| !piece.is_empty());
    if !pieces.is_empty() {
        return (pieces.join("\n\n"), None);
    }
    // A multipart whose boundary never occurs leaves its whole body as the root's text. A
    // text part cut off before its closing boundary is set aside as an attachment.
    let recovered = message.parts.iter().enumerate().find(|(index, part)| {
        let unnamed_text = part.attachment_name().is_none()
            && part.content_type().is_none_or(|ct| {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_some_and(|subtype| {
                        subtype.eq_ignore_ascii_case("plain")
                            || subtype.eq_ignore_ascii_case("html")
                    })
            });
        (*index == 0 || unnamed_text) && part_text(part, raw).is_some_and(|text| !text.is_empty())
    });
    match recovered {
        Some((index, part)) => (part_text(part, raw).unwrap_or_default(), Some(index)),
        None => match undivided_multipart_text(message) {
            Some(text) => (text, Some(0)),
            None => (String::new(), None),
        },
    }
}

/// The body of a multipart message without a boundary parameter, which cannot be split into
/// parts: mail-parser keeps it whole as one binary part. When it is plain text (UTF-8 without
/// control characters) it is the message's text, as the anomaly says; anything else stays an
/// attachment.
fn undivided_multipart_text(message: &Message<'_>) -> Option<String> {
    let root = message.parts.first()?;
    let multipart = root
        .content_type()
        .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"));
    let bytes = match &root.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) if multipart => bytes,
        _ => return None,
    };
    let text = std::str::from_utf8(bytes).ok()?;
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return None;
    }
    Some(clean_text(text)).filter(|text| !text.is_empty())
}

/// Decodes a text part that mail-parser left encoded because its closing boundary never came:
/// mail-parser's own base64 or quoted-printable decoder, run to the end of the data, then the
/// declared charset. `None` when the part was not encoded or still cannot be decoded.
fn redecode_text(part: &mail_parser::MessagePart<'_>, raw: &[u8]) -> Option<String> {
    if !part.is_encoding_problem {
        return None;
    }
    let encoding = part
        .content_transfer_encoding()?
        .trim()
        .to_ascii_lowercase();
    let start = usize::try_from(part.offset_body).ok()?;
    let end = usize::try_from(part.offset_end).ok()?;
    let mut stream = MessageStream::new(raw.get(start..end)?);
    // With no boundary to look for, the decoders read to the end of the data.
    let (status, bytes) = match encoding.as_str() {
        "base64" => stream.decode_base64_mime(b""),
        "quoted-printable" => stream.decode_quoted_printable_mime(b""),
        _ => return None,
    };
    if status == usize::MAX {
        return None;
    }
    let content_type = part.content_type();
    let text = match content_type
        .and_then(|ct| ct.attribute("charset"))
        .and_then(|charset| charset_decoder(charset.as_bytes()))
    {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let is_html = content_type
        .and_then(|ct| ct.subtype())
        .is_some_and(|subtype| subtype.eq_ignore_ascii_case("html"));
    Some(if is_html {
        html_to_text(&text)
    } else {
        clean_text(&text)
    })
}

/// The readable text of one text or HTML part; `None` for any other part.
fn part_text(part: &mail_parser::MessagePart<'_>, raw: &[u8]) -> Option<String> {
    match &part.body {
        PartType::Text(text) => redecode_text(part, raw).or_else(|| Some(clean_text(text))),
        PartType::Html(html) => redecode_text(part, raw).or_else(|| Some(html_to_text(html))),
        _ => None,
    }
}

/// Line endings to `\n`, leading blank lines and trailing white space removed.
pub(super) fn clean_text(text: &str) -> String {
    let text = normalise_newlines(text);
    let trimmed = text.trim_end();
    let first_content = trimmed
        .find(|c: char| !c.is_whitespace())
        .map_or(trimmed.len(), |pos| {
            trimmed
                .get(..pos)
                .and_then(|blank| blank.rfind('\n'))
                .map_or(0, |newline| newline + 1)
        });
    trimmed.get(first_content..).unwrap_or_default().to_owned()
}

/// Removes every carriage return that ends a line, so CRLF and LF copies of a message give the
/// same text. A run of carriage returns before a line feed goes as a whole; lone ones stay.
pub(super) fn normalise_newlines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_cr = 0usize;
    for c in text.chars() {
        match c {
            '\r' => pending_cr += 1,
            '\n' => {
                pending_cr = 0;
                out.push('\n');
            }
            c => {
                out.extend(std::iter::repeat_n('\r', pending_cr));
                pending_cr = 0;
                out.push(c);
            }
        }
    }
    out.extend(std::iter::repeat_n('\r', pending_cr));
    out
}

/// The message's attachments: every part mail-parser did not use as body text, inline photos
/// included. The part whose text became the message text is skipped.
pub(super) fn attachments(
    message: &Message<'_>,
    text_part: Option<usize>,
    limits: &ParseLimits,
    anomalies: &mut Vec<Anomaly>,
) -> Vec<Attachment> {
    let mut attachments = Vec::new();
    for &id in &message.attachments {
        if usize::try_from(id).ok() == text_part {
            continue;
        }
        let Some(part) = usize::try_from(id)
            .ok()
            .and_then(|id| message.parts.get(id))
        else {
            continue;
        };
        let name = part.attachment_name().map(str::to_owned);
        let content_type = match part.content_type() {
            Some(ct) => match ct.subtype() {
                Some(subtype) => format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            },
            None => match part.body {
                PartType::Message(_) => "message/rfc822".to_owned(),
                PartType::Text(_) => "text/plain".to_owned(),
                _ => "application/octet-stream".to_owned(),
            },
        };
        let content = part.contents();
        let size = u64::try_from(content.len()).unwrap_or(u64::MAX);
        let undecodable = part.is_encoding_problem
            && part.content_transfer_encoding().is_some_and(|encoding| {
                let encoding = encoding.trim();
                encoding.eq_ignore_ascii_case("base64")
                    || encoding.eq_ignore_ascii_case("quoted-printable")
            });
        let too_large = size > limits.max_attachment_size;
        if too_large {
            anomalies.push(Anomaly::AttachmentTooLarge {
                name: name.clone(),
                size,
                limit: limits.max_attachment_size,
            });
        }
        let kept = !too_large && !undecodable;
        attachments.push(Attachment {
            name,
            content_type,
            size,
            kept,
            content: if kept { content.to_vec() } else { Vec::new() },
        });
    }
    attachments
}

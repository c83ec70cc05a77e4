//! What the stripping rules need from the MIME structure: the HTML body with its quote and
//! signature elements removed, and the layout (fixed or flowed) of the text/plain body.

use std::panic;

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::{Format, Purpose, html};

/// What the stripping rules need from the MIME structure, which [`InboundMail`] does not keep.
pub(super) struct Body {
    /// The text of the HTML body with quote and signature elements removed, when the message
    /// has an HTML part.
    pub(super) html: Option<html::HtmlText>,
    /// The layout of the text/plain body.
    pub(super) format: Format,
}

impl Body {
    pub(super) fn read(raw: &[u8], purpose: Purpose) -> Body {
        // mail-parser can panic on hostile input in a debug build (see `parse`); the plain text
        // is used as it is then.
        let Some(message) = panic::catch_unwind(|| MessageParser::default().parse(raw))
            .ok()
            .flatten()
        else {
            return Body {
                html: None,
                format: Format::Fixed,
            };
        };
        let part = |id: &u32| {
            usize::try_from(*id)
                .ok()
                .and_then(|id| message.parts.get(id))
        };
        let format = message
            .text_body
            .iter()
            .filter_map(part)
            .filter_map(|part| part.content_type())
            .find(|ct| {
                ct.attribute("format")
                    .is_some_and(|format| format.eq_ignore_ascii_case("flowed"))
            })
            .map_or(Format::Fixed, |ct| {
                if ct
                    .attribute("delsp")
                    .is_some_and(|delsp| delsp.eq_ignore_ascii_case("yes"))
                {
                    Format::FlowedDelSp
                } else {
                    Format::Flowed
                }
            });
        let html_parts: Vec<&mail_parser::MessagePart<'_>> =
            message.html_body.iter().filter_map(part).collect();
        let html = html_parts
            .iter()
            .any(|part| matches!(part.body, PartType::Html(_)))
            .then(|| {
                let mut texts = Vec::new();
                let mut removed_signature = false;
                for part in html_parts {
                    match &part.body {
                        PartType::Html(body) => {
                            let text = html::reply_text(body, purpose);
                            removed_signature |= text.removed_signature;
                            texts.push(text.text);
                        }
                        PartType::Text(body) => texts.push(body.replace("\r\n", "\n")),
                        _ => {}
                    }
                }
                texts.retain(|text| !text.trim().is_empty());
                html::HtmlText {
                    text: texts.join("\n\n"),
                    removed_signature,
                }
            });
        Body { html, format }
    }
}

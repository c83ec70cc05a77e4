//! Quoted history and signatures in an HTML body, found by the elements mail clients put them in
//! and removed before the HTML becomes text. The structure says plainly what the text can only
//! hint at: an inline answer between two `<blockquote type="cite">` elements is the caseworker's,
//! whatever it looks like.
//!
//! The elements are found with the tag scanner of `parse`'s HTML-to-text converter, which then
//! makes the text, line for line as a reader sees it, without them: removed history is replaced
//! by a line holding [`REMOVED`](super::REMOVED), removed signatures by nothing. An element never
//! closed runs to the end.

use std::ops::Range;

use super::{Purpose, REMOVED, REPLY_ABOVE, patterns};
use crate::mail::parse::html::{Attributes, Cut, Tag, tags, visible_text};

/// The text of an HTML body after quote and signature elements were removed.
pub(crate) struct HtmlText {
    pub(crate) text: String,
    pub(crate) removed_signature: bool,
}

/// What to do with an element.
enum Action {
    /// Look at the elements inside it.
    Descend,
    /// Keep it whole, without looking inside: forwarded mail.
    Keep,
    Remove(Removal),
    /// Remove it and everything after it: Outlook's reply header, under which the quoted
    /// message follows as siblings rather than children.
    CutToEnd,
    /// Keep it and everything after it: Outlook's header of forwarded mail.
    KeepToEnd,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Quote,
    Signature,
}

struct Context<'h> {
    html: &'h str,
    purpose: Purpose,
    /// Where the notification marker is, if it is in the HTML.
    marker: Option<usize>,
    /// The tag index of the outermost blockquote holding the marker.
    marker_quote: Option<usize>,
}

/// The reply's text, with quote elements replaced by [`REMOVED`] lines and signature elements
/// removed.
pub(super) fn reply_text(html: &str, purpose: Purpose) -> HtmlText {
    let html = html.replace(REMOVED, "");
    let tags = tags(&html);
    let marker = html.find(REPLY_ABOVE);
    let context = Context {
        html: &html,
        purpose,
        marker,
        marker_quote: marker.and_then(|marker| outermost_blockquote(&tags, marker)),
    };

    let mut removals: Vec<(Range<usize>, Removal)> = Vec::new();
    let mut index = 0;
    while let Some(tag) = tags.get(index) {
        if tag.closing {
            index += 1;
            continue;
        }
        match classify(&context, tag, index) {
            Action::Descend => index += 1,
            Action::Keep => index = element_end(&tags, index, html.len()).1,
            Action::Remove(removal) => {
                let (end, next) = element_end(&tags, index, html.len());
                removals.push((tag.start..end, removal));
                index = next;
            }
            Action::CutToEnd => {
                removals.push((tag.start..html.len(), Removal::Quote));
                break;
            }
            Action::KeepToEnd => break,
        }
    }

    let cuts: Vec<Cut> = removals
        .iter()
        .map(|(range, removal)| Cut {
            range: range.clone(),
            stand_in: (*removal == Removal::Quote).then_some(REMOVED),
        })
        .collect();
    HtmlText {
        text: visible_text(&html, &tags, &cuts),
        removed_signature: removals
            .iter()
            .any(|(_, removal)| *removal == Removal::Signature),
    }
}

fn classify(context: &Context<'_>, tag: &Tag<'_>, index: usize) -> Action {
    if !matches!(tag.name.as_str(), "blockquote" | "div" | "span" | "pre") {
        return Action::Descend;
    }
    let attributes = Attributes::of(tag);
    let id = attributes.id.as_str();
    let class = |name: &str| attributes.has_class(name);

    if class("gmail_signature")
        || class("gmail_signature_prefix")
        || class("moz-signature")
        || class("protonmail_signature_block")
        || matches!(
            id,
            "signature"
                | "ms-outlook-mobile-signature"
                | "applemailsignature"
                | "composer_signature"
        )
    {
        return Action::Remove(Removal::Signature);
    }
    if class("moz-forward-container") {
        return Action::Keep;
    }
    let forward_inside = || forward_inside(context.html, tag.end);

    if tag.name == "blockquote" {
        if context.marker_quote == Some(index) {
            return Action::Remove(Removal::Quote);
        }
        if attributes.cite || class("gmail_quote") || class("protonmail_quote") {
            if forward_before(context.html, tag.start) || forward_inside() {
                return Action::Keep;
            }
            return Action::Remove(Removal::Quote);
        }
        return Action::Descend;
    }
    if class("gmail_attr") || class("moz-cite-prefix") {
        return if forward_inside() {
            Action::Keep
        } else {
            Action::Remove(Removal::Quote)
        };
    }
    // Gmail puts inline answers inside its quote container, between the blockquotes, so the
    // container itself is looked into rather than removed.
    if class("gmail_quote") || class("gmail_quote_container") || class("protonmail_quote") {
        return if forward_inside() {
            Action::Keep
        } else {
            Action::Descend
        };
    }
    // Yahoo prefixes its class and id with a random "ydp…" in mail that went round before.
    if attributes
        .classes
        .iter()
        .any(|class| class.ends_with("yahoo_quoted"))
        || id.contains("yahoo_quoted")
    {
        return if forward_inside() {
            Action::Keep
        } else {
            Action::Remove(Removal::Quote)
        };
    }
    let outlook_header = matches!(
        id,
        "divrplyfwdmsg" | "appendonsend" | "mail-editor-reference-message-container"
    ) || is_outlook_separator(&attributes.style);
    if tag.name == "div" && outlook_header {
        // Outlook heads forwarded mail the same way; a forward keeps it, unless the notification
        // marker under it shows a quoted notification.
        let quotes_marker = context.marker.is_some_and(|marker| marker > tag.start);
        return if context.purpose == Purpose::Forward && !quotes_marker {
            Action::KeepToEnd
        } else {
            Action::CutToEnd
        };
    }
    Action::Descend
}

/// Outlook for Windows draws a rule above its reply header with a div styled
/// `border:none;border-top:solid #E1E1E1 1.0pt` (`#B5C4DF` in older versions).
fn is_outlook_separator(style: &str) -> bool {
    style.contains("border:none")
        && (style.contains("border-top:solid#e1e1e1") || style.contains("border-top:solid#b5c4df"))
}

/// The end (exclusive byte offset) of the element whose start tag is `tags[index]`, and the
/// index of the first tag after it. An element never closed runs to the end of the HTML.
fn element_end(tags: &[Tag<'_>], index: usize, html_len: usize) -> (usize, usize) {
    let Some(start) = tags.get(index) else {
        return (html_len, tags.len());
    };
    if start.self_closing {
        return (start.end, index + 1);
    }
    let mut depth = 0usize;
    for (position, tag) in tags.iter().enumerate().skip(index + 1) {
        if tag.name != start.name {
            continue;
        }
        if tag.closing {
            if depth == 0 {
                return (tag.end, position + 1);
            }
            depth -= 1;
        } else if !tag.self_closing {
            depth += 1;
        }
    }
    (html_len, tags.len())
}

/// The index of the outermost blockquote open at byte `position`.
fn outermost_blockquote(tags: &[Tag<'_>], position: usize) -> Option<usize> {
    let mut open = Vec::new();
    for (index, tag) in tags.iter().enumerate() {
        if tag.start >= position {
            break;
        }
        if tag.name != "blockquote" || tag.self_closing {
            continue;
        }
        if tag.closing {
            open.pop();
        } else {
            open.push(index);
        }
    }
    open.first().copied()
}

/// The visible words of a piece of HTML on one line, enough to recognise a forward separator in
/// it.
fn visible(html: &str) -> String {
    patterns::normalise(&crate::mail::parse::html::html_to_text(html))
}

/// Whether an element's text opens with a forward separator ("---------- Forwarded message
/// ---------", …). A quoted notification whose requester forwarded something has one too, under
/// the notification marker: the marker coming first makes it history.
fn forward_inside(html: &str, from: usize) -> bool {
    let end = floor_char_boundary(html, from.saturating_add(2000));
    let Some(snippet) = html.get(from..end) else {
        return false;
    };
    let text = visible(snippet);
    let opening: String = text.chars().take(300).collect();
    patterns::mentions_forward(&opening) && !opening.contains(REPLY_ABOVE)
}

/// Whether the text just before an element ends with a forward separator, as Apple Mail's
/// "Begin forwarded message:" does above the blockquote holding the forwarded mail.
fn forward_before(html: &str, to: usize) -> bool {
    let start = floor_char_boundary(html, to.saturating_sub(800));
    let Some(snippet) = html.get(start..to) else {
        return false;
    };
    let text = visible(snippet);
    let count = text.chars().count();
    let closing: String = text.chars().skip(count.saturating_sub(200)).collect();
    patterns::mentions_forward(&closing)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

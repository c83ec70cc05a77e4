//! Quoted history and signatures in an HTML body, found by the elements mail clients put them in
//! and removed before the HTML becomes text. The structure says plainly what the text can only
//! hint at: an inline answer between two `<blockquote type="cite">` elements is the caseworker's,
//! whatever it looks like.
//!
//! This is a tag scanner, not an HTML parser: it needs only the start and end of a few kinds of
//! element, and reads broken markup the way a browser would closely enough (an element that is
//! never closed runs to the end). Removed history is replaced by a line holding
//! [`REMOVED`](super::REMOVED), removed signatures by nothing.
//!
//! The text is what a reader sees, line for line: a `<br>` or an empty `<div>` is a line of its
//! own, a paragraph is set off by a blank line, and white space in the source collapses. The
//! converter `parse` uses drops single blank lines instead, because its text is for search and
//! display of the whole message, where it does not matter; a relayed reply keeps its layout.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::{Purpose, REMOVED, REPLY_ABOVE, patterns};

/// The text of an HTML body after quote and signature elements were removed.
pub(crate) struct HtmlText {
    pub(crate) text: String,
    pub(crate) removed_signature: bool,
}

fn pattern(text: &str) -> Regex {
    Regex::new(text).expect("the HTML reply patterns are valid regular expressions")
}

/// A comment (which may hold markup, as Outlook's conditional comments do), a declaration such
/// as `<!DOCTYPE html>` or Outlook's `<![if !supportLists]>`, a processing instruction, or a
/// start or end tag with its attributes. Quoted attribute values may contain `>`.
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r#"(?s)<!--.*?(?:-->|\z)|<[!?][^>]*>|<(/?)([A-Za-z][A-Za-z0-9:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>"#,
    )
});

static ATTRIBUTE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(r#"([A-Za-z_:][-A-Za-z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"#)
});

static ANY_TAG: LazyLock<Regex> = LazyLock::new(|| pattern(r"<[^>]*>"));

/// The name given to comments and declarations, which no element has.
const MARKUP: &str = "!";

struct Tag<'a> {
    start: usize,
    end: usize,
    /// Lower case.
    name: String,
    closing: bool,
    self_closing: bool,
    attributes: &'a str,
}

fn tags(html: &str) -> Vec<Tag<'_>> {
    TAG.captures_iter(html)
        .filter_map(|captures| {
            let whole = captures.get(0)?;
            let attributes = captures.get(3).map_or("", |m| m.as_str());
            Some(Tag {
                start: whole.start(),
                end: whole.end(),
                // Comments and declarations have no name; they are kept as tags so that their
                // content is never taken for text.
                name: captures.get(2).map_or_else(
                    || MARKUP.to_owned(),
                    |name| name.as_str().to_ascii_lowercase(),
                ),
                closing: captures.get(1).is_some_and(|slash| !slash.is_empty()),
                self_closing: captures.get(2).is_none() || attributes.trim_end().ends_with('/'),
                attributes,
            })
        })
        .collect()
}

/// The attributes of a start tag that the rules read.
struct Attributes {
    /// Lower case.
    classes: Vec<String>,
    /// Lower case.
    id: String,
    /// Lower case, without white space.
    style: String,
    cite: bool,
}

impl Attributes {
    fn of(tag: &Tag<'_>) -> Attributes {
        let mut attributes = Attributes {
            classes: Vec::new(),
            id: String::new(),
            style: String::new(),
            cite: false,
        };
        for captures in ATTRIBUTE.captures_iter(tag.attributes) {
            let Some(name) = captures.get(1) else {
                continue;
            };
            let value = captures
                .get(2)
                .or_else(|| captures.get(3))
                .or_else(|| captures.get(4))
                .map_or("", |value| value.as_str())
                .to_ascii_lowercase();
            match name.as_str().to_ascii_lowercase().as_str() {
                "class" => {
                    attributes.classes = value.split_whitespace().map(str::to_owned).collect();
                }
                "id" => attributes.id = value,
                "style" => attributes.style = value.split_whitespace().collect(),
                "type" => attributes.cite = value == "cite",
                _ => {}
            }
        }
        attributes
    }

    fn has_class(&self, class: &str) -> bool {
        self.classes.iter().any(|known| known == class)
    }
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

    HtmlText {
        text: visible_text(&html, &tags, &removals),
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

/// The visible words of a piece of HTML, enough to recognise a forward separator in it.
fn visible(html: &str) -> String {
    let text = ANY_TAG.replace_all(html, " ");
    let text = text.replace("&nbsp;", " ").replace("&#160;", " ");
    patterns::normalise(&text)
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

/// Elements whose content is never shown.
const HIDDEN: &[&str] = &["head", "script", "style", "template", "title", "noscript"];

/// Elements that start and end on a line of their own.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "li",
    "main",
    "nav",
    "ol",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
];

/// The text a reader sees, with each removed range replaced: history by a [`REMOVED`] line,
/// signatures by nothing.
fn visible_text(html: &str, tags: &[Tag<'_>], removals: &[(Range<usize>, Removal)]) -> String {
    let mut text = TextBuilder::default();
    let mut removals = removals.iter().peekable();
    let mut position = 0;
    let mut hidden: Option<&str> = None;
    let mut preformatted = 0usize;
    // Whether each open paragraph has a margin, so that its end tag knows.
    let mut paragraphs: Vec<bool> = Vec::new();
    for tag in tags {
        // Removed ranges start at a tag; the text before one is kept, its content is not.
        while let Some((range, removal)) = removals.next_if(|(range, _)| range.start <= tag.start) {
            if hidden.is_none() {
                text.push_html(
                    html.get(position..range.start).unwrap_or_default(),
                    preformatted,
                );
            }
            if *removal == Removal::Quote {
                text.push_line(REMOVED);
            }
            position = position.max(range.end);
        }
        if tag.start < position {
            continue;
        }
        if hidden.is_none() {
            text.push_html(
                html.get(position..tag.start).unwrap_or_default(),
                preformatted,
            );
        }
        position = tag.end;
        let name = tag.name.as_str();
        if let Some(hiding) = hidden {
            if tag.closing && name == hiding {
                hidden = None;
            }
            continue;
        }
        match name {
            _ if HIDDEN.contains(&name) && !tag.closing && !tag.self_closing => {
                hidden = HIDDEN.iter().copied().find(|hidden| *hidden == name);
            }
            "br" => text.line_break(),
            // Outlook writes every line as a MsoNormal paragraph with no margin; other
            // paragraphs have one, which reads as a blank line.
            "p" => {
                let margin = if tag.closing {
                    paragraphs.pop().unwrap_or(true)
                } else {
                    let margin = !Attributes::of(tag).has_class("msonormal");
                    if !tag.self_closing {
                        paragraphs.push(margin);
                    }
                    margin
                };
                if margin {
                    text.paragraph();
                } else {
                    text.block();
                }
            }
            "td" | "th" if tag.closing => text.space(),
            // A rule separates like a paragraph gap in text.
            "hr" => text.paragraph(),
            "pre" => {
                text.block();
                preformatted = if tag.closing {
                    preformatted.saturating_sub(1)
                } else {
                    preformatted + 1
                };
            }
            _ if BLOCKS.contains(&name) => text.block(),
            _ => {}
        }
    }
    for (range, removal) in removals {
        if hidden.is_none() {
            text.push_html(
                html.get(position..range.start).unwrap_or_default(),
                preformatted,
            );
        }
        if *removal == Removal::Quote {
            text.push_line(REMOVED);
        }
        position = position.max(range.end);
    }
    if hidden.is_none() {
        text.push_html(html.get(position..).unwrap_or_default(), preformatted);
    }
    text.finish()
}

/// Lines of visible text, built from HTML text and layout events.
#[derive(Default)]
struct TextBuilder {
    lines: Vec<String>,
    current: String,
    pending_space: bool,
}

impl TextBuilder {
    /// Text between tags: entities decoded, white space collapsed outside `<pre>`.
    fn push_html(&mut self, html: &str, preformatted: usize) {
        if html.is_empty() {
            return;
        }
        let decoded = decode_entities(html);
        for c in decoded.chars() {
            if preformatted > 0 {
                match c {
                    '\n' => self.line_break(),
                    '\r' => {}
                    c => self.current.push(c),
                }
            } else if c.is_whitespace() && c != '\u{A0}' {
                self.pending_space = !self.current.is_empty();
            } else {
                if self.pending_space {
                    self.current.push(' ');
                    self.pending_space = false;
                }
                // A no-break space still makes a line that holds nothing else exist, as
                // Outlook's empty paragraphs do; in the text it is an ordinary space.
                self.current.push(if c == '\u{A0}' { ' ' } else { c });
            }
        }
    }

    fn push_line(&mut self, line: &str) {
        self.block();
        self.lines.push(line.to_owned());
    }

    fn line_break(&mut self) {
        self.lines.push(std::mem::take(&mut self.current));
        self.pending_space = false;
    }

    /// Ends the current line, if anything is on it.
    fn block(&mut self) {
        if !self.current.is_empty() {
            self.line_break();
        }
        self.pending_space = false;
    }

    /// Ends the current line and leaves a blank line after it.
    fn paragraph(&mut self) {
        self.block();
        if self
            .lines
            .last()
            .is_some_and(|line| !line.trim().is_empty())
        {
            self.lines.push(String::new());
        }
    }

    fn space(&mut self) {
        self.pending_space = !self.current.is_empty();
    }

    /// The lines, trailing white space trimmed, runs of blank lines made one, and no blank
    /// lines at either end.
    fn finish(mut self) -> String {
        self.block();
        let mut out = String::new();
        let mut blank = false;
        for line in &self.lines {
            let line = line.trim();
            if line.is_empty() {
                blank = !out.is_empty();
                continue;
            }
            if !out.is_empty() {
                out.push_str(if blank { "\n\n" } else { "\n" });
            }
            blank = false;
            out.push_str(line);
        }
        out
    }
}

/// Decodes character references (`&amp;`, `&#233;`, `&eacute;`, …) with mail-parser's table.
/// An `&` that starts no known reference is kept as it is.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp..).unwrap_or_default();
        // References are ASCII and short; the longest HTML entity name has 31 characters.
        let end = after
            .char_indices()
            .take(34)
            .find(|&(_, c)| c == ';' || (c != '&' && c != '#' && !c.is_ascii_alphanumeric()))
            .filter(|&(_, c)| c == ';')
            .map(|(index, _)| index + 1);
        match end.and_then(|end| after.get(..end)) {
            Some(reference) => {
                mail_parser::decoders::html::add_html_token(&mut out, reference.as_bytes(), false);
                rest = after.get(reference.len()..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text a reader sees in a whole HTML document, nothing removed: no quote or signature
/// rules, hidden elements (scripts, styles, the head) left out, and no URL of a link, image or
/// stylesheet. For HTML files passed on as text, where nothing in the markup may load or run.
pub(super) fn document_text(html: &str) -> String {
    let tags = tags(html);
    visible_text(html, &tags, &[])
}

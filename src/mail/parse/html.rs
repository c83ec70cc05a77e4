//! HTML to the text a reader sees: casemail's one HTML-to-text converter. `parse` uses it for
//! messages that have no text/plain part and for HTML files passed on as text; `strip` uses its
//! tag scanner to find quoted history and signatures by their elements (blockquotes, Gmail's and
//! Outlook's containers and separators) and has it leave those ranges out.
//!
//! This is a tag scanner, not an HTML parser: it needs only the start and end of elements, and
//! reads broken markup the way a browser would closely enough (an element that is never closed
//! runs to the end; a `<` that starts no tag is text).
//!
//! The text is what a reader sees, line for line: a `<br>` or an empty `<div>` is a line of its
//! own, a paragraph is set off by a blank line, and white space in the source collapses. What is
//! never shown (the head, scripts, styles, comments) is left out, and so is every URL of a link,
//! image or stylesheet.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

fn pattern(text: &str) -> Regex {
    Regex::new(text).expect("the HTML patterns are valid regular expressions")
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

/// The name given to comments and declarations, which no element has.
const MARKUP: &str = "!";

/// A tag, comment or declaration in the HTML.
pub(crate) struct Tag<'a> {
    /// Byte offset of its `<`.
    pub(crate) start: usize,
    /// Byte offset just after its `>`.
    pub(crate) end: usize,
    /// Lower case.
    pub(crate) name: String,
    pub(crate) closing: bool,
    pub(crate) self_closing: bool,
    attributes: &'a str,
}

/// Every tag, comment and declaration in `html`, in order.
pub(crate) fn tags(html: &str) -> Vec<Tag<'_>> {
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
pub(crate) struct Attributes {
    /// Lower case.
    pub(crate) classes: Vec<String>,
    /// Lower case.
    pub(crate) id: String,
    /// Lower case, without white space.
    pub(crate) style: String,
    /// `type="cite"`, as Apple Mail and Thunderbird mark a quoting blockquote.
    pub(crate) cite: bool,
}

impl Attributes {
    pub(crate) fn of(tag: &Tag<'_>) -> Attributes {
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

    pub(crate) fn has_class(&self, class: &str) -> bool {
        self.classes.iter().any(|known| known == class)
    }
}

/// A range of the HTML (starting at a tag) left out of the text, and the line shown in its
/// place, if any.
pub(crate) struct Cut {
    pub(crate) range: Range<usize>,
    pub(crate) stand_in: Option<&'static str>,
}

/// The visible text of a whole HTML document, nothing cut.
pub(crate) fn html_to_text(html: &str) -> String {
    visible_text(html, &tags(html), &[])
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

/// The text a reader sees in `html` (whose tags are `tags`), with each cut range left out and
/// replaced by its stand-in line. `cuts` are in order and start at tags.
pub(crate) fn visible_text(html: &str, tags: &[Tag<'_>], cuts: &[Cut]) -> String {
    let mut text = TextBuilder::default();
    let mut cuts = cuts.iter().peekable();
    let mut position = 0;
    let mut hidden: Option<&str> = None;
    let mut preformatted = 0usize;
    // Whether each open paragraph has a margin, so that its end tag knows.
    let mut paragraphs: Vec<bool> = Vec::new();
    for tag in tags {
        // The text before a cut is kept, its content is not.
        while let Some(cut) = cuts.next_if(|cut| cut.range.start <= tag.start) {
            if hidden.is_none() {
                text.push_html(
                    html.get(position..cut.range.start).unwrap_or_default(),
                    preformatted,
                );
            }
            if let Some(line) = cut.stand_in {
                text.push_line(line);
            }
            position = position.max(cut.range.end);
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
            // An element never closed hides everything after it, as a script or style would in
            // a browser.
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
    for cut in cuts {
        if hidden.is_none() {
            text.push_html(
                html.get(position..cut.range.start).unwrap_or_default(),
                preformatted,
            );
        }
        if let Some(line) = cut.stand_in {
            text.push_line(line);
        }
        position = position.max(cut.range.end);
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

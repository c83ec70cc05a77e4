//! HTML to readable text, for messages that have no text/plain part.

use std::sync::LazyLock;

use regex::Regex;

use super::normalise_newlines;

fn html_pattern(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the HTML clean-up patterns are valid regular expressions")
}

/// Elements whose content is never text a person wrote.
static HTML_HIDDEN: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let mut patterns = vec![html_pattern(r"(?s)<!--.*?-->")];
    for tag in ["head", "script", "style", "template", "title", "noscript"] {
        patterns.push(html_pattern(&format!(r"(?is)<{tag}\b[^>]*>.*?</{tag}\s*>")));
    }
    // An unclosed script or style hides everything after it, as it would in a browser.
    for tag in ["script", "style"] {
        patterns.push(html_pattern(&format!(r"(?is)<{tag}\b[^>]*>.*\z")));
    }
    patterns
});

/// Block elements, which mail-parser's converter would otherwise run together on one line.
static HTML_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    html_pattern(
        r"(?i)<\s*/?\s*(?:p|div|li|tr|h[1-6]|blockquote|table|ul|ol|pre|section|article|header|footer|hr)\b[^>]*>",
    )
});

static HTML_CELL_END: LazyLock<Regex> = LazyLock::new(|| html_pattern(r"(?i)<\s*/\s*t[dh]\s*>"));

/// HTML to readable text. mail-parser's `html_to_text` only recognises `<style>` and `<script>`
/// written without attributes, so `<style type="text/css">` would leak CSS into the text;
/// hidden elements are removed here first, and block elements become line breaks.
pub(super) fn html_to_text(html: &str) -> String {
    let mut cleaned = html.to_owned();
    for pattern in HTML_HIDDEN.iter() {
        cleaned = pattern.replace_all(&cleaned, " ").into_owned();
    }
    cleaned = HTML_BLOCK.replace_all(&cleaned, "<br>").into_owned();
    cleaned = HTML_CELL_END.replace_all(&cleaned, " ").into_owned();
    let text = mail_parser::decoders::html::html_to_text(&cleaned);

    // HTML white space carries no meaning: trim every line and keep at most one blank line.
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in normalise_newlines(&text).lines() {
        let line = line.trim();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 1 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

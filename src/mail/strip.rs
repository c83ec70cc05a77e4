//! Keeps only what a caseworker wrote in a reply: the quoted history under or around it, the
//! signature and the "Sent from my iPhone" taglines go, so that what reaches the requester (and
//! the ticket) is the caseworker's own words.
//!
//! This module is pure: no I/O, no clock, and it never fails or panics. It must not decide
//! whether a reply is relayed, interpret the command lines (`#note`, `#close`, …) a reply may
//! start with, which it keeps as text, or read anything but the message it is given.
//!
//! When in doubt it keeps text: a reply that would come out empty is returned whole, a block of
//! `>` lines in the middle of the text is kept unless something says it is quoted mail, and a
//! forwarded message is kept. Quoted history is recognised, strongest signal first, by:
//!
//! 1. the [`REPLY_ABOVE`] line that heads every notification casemail sends: everything from it
//!    down is history, together with the attribution line or header block right above it;
//! 2. in an HTML body, the elements clients put quoted mail in (Gmail's `gmail_quote`, the
//!    `<blockquote type="cite">` of Apple Mail and Thunderbird, Outlook's `divRplyFwdMsg`, …),
//!    removed before the HTML becomes text;
//! 3. attribution lines ("On … wrote:" in many languages), Outlook header blocks
//!    (From/Sent/To/Subject and their translations), "Original Message" separators and blocks
//!    of `>` lines at the end.
//!
//! Answers typed between quoted lines (inline replies) are kept and the quoted lines between
//! them dropped.

use std::panic::{self, AssertUnwindSafe};

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Serialize;

use crate::mail::parse::InboundMail;

mod html;
mod patterns;
#[cfg(test)]
mod tests;

use patterns::{Attribution, Field, normalise};

/// The first line of every notification casemail sends to a caseworker. In a reply, it and
/// everything under it is the notification being quoted.
pub const REPLY_ABOVE: &str = "##- Please type your reply above this line -##";

/// Stands, on a line of its own, for quoted history the HTML stage removed, so that the
/// plain-text rules can still drop the attribution line above it. A private-use character: no
/// client writes it, and it is removed from the HTML before the stage adds its own.
const REMOVED: &str = "\u{E000}";

/// What [`strip`] kept of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stripped {
    /// The caseworker's own text: line endings `\n`, no trailing white space on any line, no
    /// blank lines at either end and never more than one blank line in a row.
    pub text: String,
    /// Quoted history was found and left out.
    pub removed_quote: bool,
    /// A signature or a phone's tagline was found and left out.
    pub removed_signature: bool,
    /// Nothing was left once history and signature were removed, so `text` is the whole
    /// original text instead: the caseworker probably sent the quote without writing anything.
    /// The relay gate holds such a reply: the quote is never relayed in its place.
    pub only_history: bool,
}

impl Stripped {
    /// The original text, kept whole.
    fn whole(text: &str) -> Stripped {
        Stripped {
            text: text.trim_end().to_owned(),
            removed_quote: false,
            removed_signature: false,
            only_history: !text.trim().is_empty(),
        }
    }
}

/// How the text being stripped is laid out. Flowed text (RFC 3676, `format=flowed`) ends a line
/// with a space where the writer's paragraph goes on, and space-stuffs lines that start with a
/// space or `>`; with `delsp=yes` the space at a soft break is not part of the text. Text
/// converted from HTML has its lines trimmed, so its signature delimiter has lost the space that
/// marks "-- " in plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Fixed,
    Flowed,
    FlowedDelSp,
    FromHtml,
}

impl Format {
    fn is_flowed(self) -> bool {
        matches!(self, Format::Flowed | Format::FlowedDelSp)
    }

    /// The RFC 3676 signature delimiter, "-- ".
    fn is_signature_delimiter(self, line: &str) -> bool {
        let line = line.trim_start_matches(patterns::is_invisible);
        line == "-- " || (self == Format::FromHtml && line == "--")
    }
}

/// Whether a message passes on mail of its own (a forward) or answers the mail it quotes. Header
/// blocks in a forward introduce the forwarded mail, which is content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reply,
    Forward,
}

impl Purpose {
    fn of(subject: Option<&str>) -> Purpose {
        match subject {
            Some(subject) if patterns::is_forward_subject(subject) => Purpose::Forward,
            _ => Purpose::Reply,
        }
    }
}

/// The caseworker's own text of a reply. `raw` must be the bytes `mail` was parsed from: when
/// the message has an HTML body, quoted history is found in its structure, which the text
/// [`InboundMail::text`] holds has lost. Never fails and never panics.
pub fn strip(mail: &InboundMail, raw: &[u8]) -> Stripped {
    // Everything below is written not to panic, and mail-parser is guarded where it is called,
    // but the reply bridge must never lose a reply to a bug here: the whole text is a safe answer.
    panic::catch_unwind(AssertUnwindSafe(|| strip_unguarded(mail, raw)))
        .unwrap_or_else(|_| Stripped::whole(&mail.text))
}

/// The caseworker's own text of a plain-text reply, for text without the message around it.
/// Never fails and never panics.
pub fn strip_text(text: &str) -> Stripped {
    panic::catch_unwind(|| keep_something(strip_plain(text, Purpose::Reply, Format::Fixed), text))
        .unwrap_or_else(|_| Stripped::whole(text))
}

/// [`strip`] without its panic guard, so that tests see any panic.
pub(crate) fn strip_unguarded(mail: &InboundMail, raw: &[u8]) -> Stripped {
    let purpose = Purpose::of(mail.subject.as_deref());
    let body = Body::read(raw, purpose);
    if let Some(html) = body.html {
        let mut stripped = strip_plain(&html.text, purpose, Format::FromHtml);
        if !stripped.text.is_empty() {
            stripped.removed_signature |= html.removed_signature;
            return stripped;
        }
    }
    keep_something(strip_plain(&mail.text, purpose, body.format), &mail.text)
}

/// The stripped text, or the original when stripping left nothing.
fn keep_something(stripped: Stripped, original: &str) -> Stripped {
    if stripped.text.is_empty() {
        Stripped::whole(original)
    } else {
        stripped
    }
}

/// What the stripping rules need from the MIME structure, which [`InboundMail`] does not keep.
struct Body {
    /// The text of the HTML body with quote and signature elements removed, when the message
    /// has an HTML part.
    html: Option<html::HtmlText>,
    /// The layout of the text/plain body.
    format: Format,
}

impl Body {
    fn read(raw: &[u8], purpose: Purpose) -> Body {
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

/// One line of the text, with what the rules need to know about it.
struct Line<'a> {
    raw: &'a str,
    /// How many `>` the line starts with.
    depth: usize,
    /// The line after its `>` marks, through [`normalise`].
    content: String,
    /// The line stands for history the HTML stage removed.
    removed: bool,
}

impl<'a> Line<'a> {
    fn new(raw: &'a str, format: Format) -> Line<'a> {
        // In flowed text a line that starts with a space was space-stuffed (RFC 3676 §4.4): the
        // space is not part of the text, and it is there precisely so that a line the writer
        // began with ">" does not read as quoted.
        if format.is_flowed()
            && let Some(unstuffed) = raw.strip_prefix(' ')
        {
            return Line {
                raw: unstuffed,
                depth: 0,
                content: normalise(unstuffed),
                removed: false,
            };
        }
        // Quote marks count from the first column, as RFC 3676 §4.5 counts them; only the
        // invisible marks some clients put first are skipped.
        let mut rest = raw.trim_start_matches(patterns::is_invisible);
        let mut depth = 0;
        while let Some(after) = rest.strip_prefix('>') {
            depth += 1;
            rest = after.trim_start_matches(' ');
        }
        Line {
            raw,
            depth,
            content: normalise(rest),
            removed: raw.trim() == REMOVED,
        }
    }

    fn is_quoted(&self) -> bool {
        self.depth > 0 || self.removed
    }

    /// Nothing but white space, and not quoted.
    fn is_blank(&self) -> bool {
        !self.is_quoted() && self.content.is_empty()
    }

    /// Nothing to read: white space, a bare `>` or removed history.
    fn is_empty(&self) -> bool {
        self.removed || self.content.is_empty()
    }

    /// Unquoted and not blank: text someone typed in this message.
    fn is_text(&self) -> bool {
        !self.is_quoted() && !self.content.is_empty()
    }

    /// A line such as "> 18 years old" or ">£500": a comparison written by the caseworker,
    /// which reads like a quoted line.
    fn is_comparison(&self) -> bool {
        let Some(after) = self.raw.trim_start().strip_prefix('>') else {
            return false;
        };
        let after = after.strip_prefix(' ').unwrap_or(after);
        after
            .chars()
            .next()
            .is_some_and(|c| c.is_numeric() || matches!(c, '£' | '$' | '€' | '='))
    }
}

/// Where the quoted history of a message lies, when it has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum History {
    /// Everything from this line down.
    Cut(usize),
    /// Lines `head..body` (an attribution) go, and from `body` down every quoted line goes
    /// while the lines typed between them stay.
    Interleaved { head: usize, body: usize },
}

/// A run of lines that ends up in the result.
struct Segment {
    /// Forwarded mail is content, kept as it is: no signature is looked for in it.
    kind: SegmentKind,
    lines: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentKind {
    Written,
    Forwarded,
}

/// The plain-text rules. Returns an empty text when nothing is left; the caller decides what to
/// keep then.
fn strip_plain(text: &str, purpose: Purpose, format: Format) -> Stripped {
    let raw_lines: Vec<&str> = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let lines: Vec<Line<'_>> = raw_lines
        .iter()
        .map(|line| Line::new(line, format))
        .collect();

    let (mut segments, mut removed_quote) = segments(&lines, purpose);
    removed_quote |= lines.iter().any(|line| line.removed);
    let mut removed_signature = false;
    for segment in &mut segments {
        if segment.kind == SegmentKind::Written {
            // The blank line that set this segment off from the next one survives the removal
            // of the blank lines and signature at its end.
            let ends_blank = segment
                .lines
                .last()
                .is_some_and(|line| line.trim().is_empty());
            let removed = strip_signature(&mut segment.lines, format);
            if (ends_blank || removed) && !segment.lines.is_empty() {
                segment.lines.push(String::new());
            }
            removed_signature |= removed;
        }
        if format.is_flowed() {
            unflow(&mut segment.lines, format);
        }
    }
    Stripped {
        text: join(&segments),
        removed_quote,
        removed_signature,
        only_history: false,
    }
}

/// The parts of the text to keep, in order, and whether quoted history was left out.
fn segments(lines: &[Line<'_>], purpose: Purpose) -> (Vec<Segment>, bool) {
    let written = |range: std::ops::Range<usize>| Segment {
        kind: SegmentKind::Written,
        lines: kept_lines(lines, range),
    };
    let forwarded = |range: std::ops::Range<usize>| Segment {
        kind: SegmentKind::Forwarded,
        lines: kept_lines(lines, range),
    };
    let end = lines.len();

    if let Some(marker) = lines
        .iter()
        .position(|line| line.content.contains(REPLY_ABOVE))
    {
        let start = history_start_above(lines, marker);
        let forward = forward_start(lines, start, purpose);
        let mut segments = vec![written(0..forward.unwrap_or(start))];
        if let Some(forward) = forward {
            segments.push(forwarded(forward..start));
        }
        // A quoted marker means the history is quoted line by line, so unquoted lines under it
        // were typed into the quote: inline answers, or a reply written under the quote.
        if lines.get(marker).is_some_and(|line| line.depth > 0) {
            segments.push(Segment {
                kind: SegmentKind::Written,
                lines: answers(lines, marker, end),
            });
        }
        return (segments, true);
    }

    let limit = forward_start(lines, end, purpose).unwrap_or(end);
    match history(lines, limit) {
        None => (vec![written(0..limit), forwarded(limit..end)], false),
        Some(History::Cut(cut)) => (vec![written(0..cut)], true),
        Some(History::Interleaved { head, body }) => (
            vec![
                written(0..head),
                Segment {
                    kind: SegmentKind::Written,
                    lines: answers(lines, body, limit),
                },
                forwarded(limit..end),
            ],
            true,
        ),
    }
}

/// The lines of a range, without the placeholders of removed history.
fn kept_lines(lines: &[Line<'_>], range: std::ops::Range<usize>) -> Vec<String> {
    lines
        .get(range)
        .unwrap_or_default()
        .iter()
        .filter(|line| !line.removed)
        .map(|line| line.raw.to_owned())
        .collect()
}

/// Where quoted history starts in a message without the notification marker, looking no
/// further than `limit` (where forwarded mail starts).
fn history(lines: &[Line<'_>], limit: usize) -> Option<History> {
    let first_content = lines.iter().position(|line| !line.is_blank());
    let mut index = 0;
    while index < limit {
        let line = lines.get(index)?;
        if line.is_quoted() {
            if is_lone_comparison(lines, index) {
                index += 1;
                continue;
            }
            if line.removed {
                let head = attribution_above(lines, index).unwrap_or(index);
                return Some(History::Interleaved { head, body: index });
            }
            if first_content == Some(index) {
                // A message that opens with quoted lines answers under or between them.
                return Some(History::Interleaved {
                    head: index,
                    body: index,
                });
            }
            if let Some(head) = attribution_above(lines, index) {
                return Some(History::Interleaved { head, body: index });
            }
            let run_end = quoted_run_end(lines, index);
            if lines
                .get(run_end..)
                .unwrap_or_default()
                .iter()
                .all(Line::is_blank)
            {
                // Quoted lines at the very end, with nothing after them, are a top-posted
                // reply's history even without an attribution line.
                return Some(History::Cut(index));
            }
            index = run_end;
            continue;
        }
        if line.is_text() {
            if patterns::is_original_message(&line.content)
                || header_block_at(lines, index).is_some()
            {
                return Some(History::Cut(index));
            }
            if patterns::is_underscores(&line.content)
                && next_text(lines, index + 1)
                    .is_some_and(|next| next <= index + 2 && header_block_at(lines, next).is_some())
            {
                return Some(History::Cut(index));
            }
            if let Some((length, strength)) = attribution_at(lines, index)
                && strength >= Attribution::Known
            {
                match next_non_blank(lines, index + length) {
                    None => return Some(History::Cut(index)),
                    Some(next) if lines.get(next).is_some_and(Line::is_quoted) => {
                        return Some(History::Interleaved {
                            head: index,
                            body: index + length,
                        });
                    }
                    // Some clients quote without `>` marks: a client-written attribution line
                    // is trusted to head the history then.
                    Some(_) if strength == Attribution::Certain => {
                        return Some(History::Cut(index));
                    }
                    Some(_) => {}
                }
            }
        }
        index += 1;
    }
    None
}

/// The end (exclusive) of the run of quoted and empty lines starting at `start`.
fn quoted_run_end(lines: &[Line<'_>], start: usize) -> usize {
    let mut end = start;
    while lines
        .get(end)
        .is_some_and(|line| line.is_quoted() || line.is_blank())
    {
        end += 1;
    }
    // Blank lines after the last quoted line are not part of the run.
    while end > start && lines.get(end - 1).is_some_and(Line::is_blank) {
        end -= 1;
    }
    end
}

/// A single `>` line that reads as a comparison ("> 18 years old") right next to text the
/// caseworker typed, with no quoted line around it.
fn is_lone_comparison(lines: &[Line<'_>], index: usize) -> bool {
    let Some(line) = lines.get(index) else {
        return false;
    };
    if line.depth != 1 || !line.is_comparison() {
        return false;
    }
    let before = index.checked_sub(1).and_then(|before| lines.get(before));
    let after = lines.get(index + 1);
    let not_quoted = |neighbour: Option<&Line<'_>>| neighbour.is_none_or(|line| !line.is_quoted());
    let is_text = |neighbour: Option<&Line<'_>>| neighbour.is_some_and(Line::is_text);
    not_quoted(before) && not_quoted(after) && (is_text(before) || is_text(after))
}

/// The unquoted lines from `start` to `end`: the answers typed into a quote. Attribution lines
/// of deeper history are left out; each run of quoted lines becomes one blank line.
fn answers(lines: &[Line<'_>], start: usize, end: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut index = start;
    while index < end {
        let Some(line) = lines.get(index) else {
            break;
        };
        if line.is_quoted() && !is_lone_comparison(lines, index) {
            out.push(String::new());
            index += 1;
            continue;
        }
        if line.is_text()
            && let Some((length, strength)) = attribution_at(lines, index)
            && strength >= Attribution::Known
            && next_non_blank(lines, index + length)
                .and_then(|next| lines.get(next))
                .is_none_or(Line::is_quoted)
        {
            index += length;
            continue;
        }
        out.push(line.raw.to_owned());
        index += 1;
    }
    out
}

/// The first line at or after `from` that is not blank.
fn next_non_blank(lines: &[Line<'_>], from: usize) -> Option<usize> {
    (from..lines.len()).find(|&index| lines.get(index).is_some_and(|line| !line.is_blank()))
}

/// The first unquoted, non-blank line at or after `from`, when only blank lines come between.
fn next_text(lines: &[Line<'_>], from: usize) -> Option<usize> {
    next_non_blank(lines, from).filter(|&index| lines.get(index).is_some_and(Line::is_text))
}

/// The attribution (1 to 3 lines: Gmail wraps long ones) starting at `index`, with its length
/// and how sure the match is.
fn attribution_at(lines: &[Line<'_>], index: usize) -> Option<(usize, Attribution)> {
    let mut best: Option<(usize, Attribution)> = None;
    for length in 1..=3 {
        let Some(strength) = attribution_of(lines, index, length) else {
            continue;
        };
        // "Jane" above "On … wrote:" is not part of the attribution: the rest of the lines
        // already make one at least as sure.
        if length > 1
            && (1..length).any(|skip| {
                attribution_of(lines, index + skip, length - skip)
                    .is_some_and(|tail| tail >= strength)
            })
        {
            continue;
        }
        if best.is_none_or(|(_, known)| strength > known) {
            best = Some((length, strength));
        }
    }
    best
}

/// The first line of an attribution ending at line `end`, when there is one.
fn attribution_ending_at(lines: &[Line<'_>], end: usize) -> Option<usize> {
    let mut best: Option<(usize, Attribution)> = None;
    for length in 1..=3 {
        let Some(start) = (end + 1).checked_sub(length) else {
            break;
        };
        let Some(strength) = attribution_of(lines, start, length) else {
            continue;
        };
        if best.is_none_or(|(_, known)| strength > known) {
            best = Some((start, strength));
        }
    }
    best.map(|(start, _)| start)
}

/// Whether lines `start..start + length` together read as an attribution. The lines must share
/// a quote depth, and a line ending a sentence cannot run on into one.
fn attribution_of(lines: &[Line<'_>], start: usize, length: usize) -> Option<Attribution> {
    let group = lines.get(start..start + length)?;
    let depth = group.first()?.depth;
    if group
        .iter()
        .any(|line| line.removed || line.content.is_empty() || line.depth != depth)
    {
        return None;
    }
    let runs_on = group
        .iter()
        .take(length - 1)
        .all(|line| !line.content.ends_with(['.', '!', '?', '。', '؟']));
    if !runs_on {
        return None;
    }
    let joined: Vec<&str> = group.iter().map(|line| line.content.as_str()).collect();
    patterns::attribution(&joined.join(" "))
}

/// The attribution right above line `index`, blank lines allowed between, at any strength: a
/// line ending in a colon with an address and a date, directly over quoted mail, is one.
fn attribution_above(lines: &[Line<'_>], index: usize) -> Option<usize> {
    let mut above = index;
    while above > 0 && lines.get(above - 1).is_some_and(Line::is_blank) {
        above -= 1;
    }
    let end = above.checked_sub(1)?;
    if !lines.get(end).is_some_and(Line::is_text) {
        return None;
    }
    attribution_ending_at(lines, end)
}

/// The end (exclusive) of a header block starting at `index`: a From field followed, within a
/// few lines and before a blank line, by at least two of Date/Sent, To and Subject.
fn header_block_at(lines: &[Line<'_>], index: usize) -> Option<usize> {
    let first = lines.get(index)?;
    if first.removed || patterns::field(&first.content) != Some(Field::From) {
        return None;
    }
    let mut seen = [false; 3];
    let mut end = index + 1;
    let mut continuations = 0;
    while let Some(line) = lines.get(end) {
        if end > index + 12 || line.removed || line.content.is_empty() || line.depth != first.depth
        {
            break;
        }
        match patterns::field(&line.content) {
            Some(Field::Date) => seen[0] = true,
            Some(Field::To) => seen[1] = true,
            Some(Field::Subject) => seen[2] = true,
            Some(Field::Cc | Field::From) => {}
            // Outlook wraps a long To line onto the next one.
            None if continuations < 3 => continuations += 1,
            None => break,
        }
        end += 1;
    }
    (seen.iter().filter(|&&seen| seen).count() >= 2).then_some(end)
}

/// Where history starts above the marker line: the attribution or header block right over it,
/// with the separator line above a header block; the marker itself when there is neither.
fn history_start_above(lines: &[Line<'_>], marker: usize) -> usize {
    let mut above = marker;
    while above > 0 && lines.get(above - 1).is_some_and(Line::is_empty) {
        above -= 1;
    }
    let Some(end) = above.checked_sub(1) else {
        return 0;
    };
    if let Some(start) = attribution_ending_at(lines, end) {
        return start;
    }
    for start in (end.saturating_sub(12)..=end).rev() {
        if header_block_at(lines, start).is_some_and(|block_end| block_end > end) {
            return separator_above(lines, start).unwrap_or(start);
        }
    }
    let is_separator = lines.get(end).is_some_and(|line| {
        patterns::is_underscores(&line.content) || patterns::is_original_message(&line.content)
    });
    if is_separator { end } else { marker }
}

/// The Outlook or "Original Message" separator line right above line `index`.
fn separator_above(lines: &[Line<'_>], index: usize) -> Option<usize> {
    let mut above = index;
    while above > 0 && lines.get(above - 1).is_some_and(Line::is_empty) {
        above -= 1;
    }
    let candidate = above.checked_sub(1)?;
    let line = lines.get(candidate)?;
    (patterns::is_underscores(&line.content) || patterns::is_original_message(&line.content))
        .then_some(candidate)
}

/// The first line of forwarded mail before line `limit`: a forward separator, or in a forward a
/// header block (with the separator above it).
fn forward_start(lines: &[Line<'_>], limit: usize, purpose: Purpose) -> Option<usize> {
    (0..limit).find_map(|index| {
        let line = lines.get(index)?;
        if !line.is_text() {
            return None;
        }
        if patterns::is_forward_separator(&line.content) {
            return Some(index);
        }
        if purpose == Purpose::Forward && header_block_at(lines, index).is_some() {
            return Some(separator_above(lines, index).unwrap_or(index));
        }
        None
    })
}

/// Removes the signature (from an RFC 3676 "-- " line, when a short block follows) and phone
/// taglines among the last lines. Returns whether anything was removed.
fn strip_signature(lines: &mut Vec<String>, format: Format) -> bool {
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

/// Joins the lines of flowed text that the writer's client broke (RFC 3676 §4.2): a line ending
/// in a space goes on in the next one. The signature delimiter "-- " is not a soft break.
fn unflow(lines: &mut Vec<String>, format: Format) {
    let mut joined: Vec<String> = Vec::with_capacity(lines.len());
    let mut continues = false;
    for line in lines.drain(..) {
        let soft_break =
            line.ends_with(' ') && !format.is_signature_delimiter(&line) && !line.trim().is_empty();
        match joined.last_mut() {
            Some(previous) if continues && !line.trim().is_empty() => {
                if format == Format::FlowedDelSp {
                    previous.pop();
                }
                previous.push_str(&line);
            }
            _ => joined.push(line),
        }
        continues = soft_break;
    }
    *lines = joined;
}

/// The segments as one text: trailing white space trimmed from every line, no blank lines at
/// either end, and runs of blank lines made one. Where history was removed between two
/// segments, the later one starts with a blank line standing for it.
fn join(segments: &[Segment]) -> String {
    let mut out = String::new();
    let mut pending_blank = false;
    for segment in segments {
        for line in &segment.lines {
            let line = line.trim_end();
            if line.is_empty() {
                pending_blank = !out.is_empty();
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
                if pending_blank {
                    out.push('\n');
                }
            }
            pending_blank = false;
            out.push_str(line);
        }
    }
    out
}

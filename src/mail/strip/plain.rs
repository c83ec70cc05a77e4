//! The plain-text rules put together: the text cut into lines, the segments to keep (what was
//! written, forwarded mail) found, signatures removed, flowed lines joined, and the result
//! joined into one text.

use super::history::{History, answers, forward_start, history, history_start_above};
use super::line::Line;
use super::signature::strip_signature;
use super::{Format, Purpose, REPLY_ABOVE, Stripped};

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
pub(super) fn strip_plain(text: &str, purpose: Purpose, format: Format) -> Stripped {
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

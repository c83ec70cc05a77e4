//! Where quoted history lies in plain text: runs of `>` lines, attribution lines, Outlook header
//! blocks, "Original Message" separators, the answers typed between quoted lines, and where
//! forwarded mail starts.

use super::Purpose;
use super::line::Line;
use super::patterns::{self, Attribution, Field};

/// Where the quoted history of a message lies, when it has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum History {
    /// Everything from this line down.
    Cut(usize),
    /// Lines `head..body` (an attribution) go, and from `body` down every quoted line goes
    /// while the lines typed between them stay.
    Interleaved { head: usize, body: usize },
}

/// Where quoted history starts in a message without the notification marker, looking no
/// further than `limit` (where forwarded mail starts).
pub(super) fn history(lines: &[Line<'_>], limit: usize) -> Option<History> {
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
pub(super) fn answers(lines: &[Line<'_>], start: usize, end: usize) -> Vec<String> {
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
pub(super) fn history_start_above(lines: &[Line<'_>], marker: usize) -> usize {
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
pub(super) fn forward_start(lines: &[Line<'_>], limit: usize, purpose: Purpose) -> Option<usize> {
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

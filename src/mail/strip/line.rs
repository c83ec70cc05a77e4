//! One line of the text being stripped: its quote depth and normalised content.

use super::patterns::{self, normalise};
use super::{Format, REMOVED};

/// One line of the text, with what the rules need to know about it.
pub(super) struct Line<'a> {
    pub(super) raw: &'a str,
    /// How many `>` the line starts with.
    pub(super) depth: usize,
    /// The line after its `>` marks, through [`normalise`].
    pub(super) content: String,
    /// The line stands for history the HTML stage removed.
    pub(super) removed: bool,
}

impl<'a> Line<'a> {
    pub(super) fn new(raw: &'a str, format: Format) -> Line<'a> {
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

    pub(super) fn is_quoted(&self) -> bool {
        self.depth > 0 || self.removed
    }

    /// Nothing but white space, and not quoted.
    pub(super) fn is_blank(&self) -> bool {
        !self.is_quoted() && self.content.is_empty()
    }

    /// Nothing to read: white space, a bare `>` or removed history.
    pub(super) fn is_empty(&self) -> bool {
        self.removed || self.content.is_empty()
    }

    /// Unquoted and not blank: text someone typed in this message.
    pub(super) fn is_text(&self) -> bool {
        !self.is_quoted() && !self.content.is_empty()
    }

    /// A line such as "> 18 years old" or ">£500": a comparison written by the caseworker,
    /// which reads like a quoted line.
    pub(super) fn is_comparison(&self) -> bool {
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

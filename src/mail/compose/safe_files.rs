//! The files a requester sent, made safe to pass on to a caseworker.
//!
//! A notification forwards the requester's attachments, and anyone can be a requester. A mail
//! client or browser renders some files as documents that fetch and run things: an HTML page or
//! an SVG image loads remote images (telling the sender the caseworker's IP address and when the
//! file was opened) and may run scripts; a forwarded message (`.eml`, `message/rfc822`) is shown
//! inline with its own HTML; an XML file can pull in a stylesheet; a calendar invitation offers
//! an "Accept" button that mails the caseworker's own address to whoever the organiser is.
//!
//! Such files never reach a caseworker as they came. HTML and forwarded messages are sent as
//! their text (`NAME.txt`, `text/plain`); SVG, XML and calendar files, which have no text worth
//! reading, are sent as `application/octet-stream` named `NAME.txt`, so a client neither renders
//! nor acts on them and opening one shows its source. The notification says what was done; the
//! originals stay in the raw message kept with the ticket. Other files (photos, PDFs, office
//! documents) pass unchanged. Pure: no I/O.

use std::fmt::Write as _;

use super::{AttachmentBytes, clean_line};
use crate::mail::parse::{ParseLimits, parse};

/// The files to attach and, for each one that was changed, a line saying what was done.
#[derive(Debug, Default)]
pub(super) struct SafeFiles {
    pub files: Vec<AttachmentBytes>,
    pub changed: Vec<String>,
}

/// Kinds of file a client renders or acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renderable {
    Html,
    Message,
    Svg,
    Xml,
    Calendar,
}

impl Renderable {
    /// By the declared type or by the name's extension, whichever says renderable: clients pick
    /// the viewer by either.
    fn of(file: &AttachmentBytes) -> Option<Renderable> {
        let content_type = file.content_type.trim().to_ascii_lowercase();
        let by_type = match content_type.as_str() {
            "text/html" | "application/xhtml+xml" | "text/x-html" => Some(Renderable::Html),
            "image/svg+xml" => Some(Renderable::Svg),
            "text/calendar" | "application/ics" | "text/x-vcalendar" => Some(Renderable::Calendar),
            "text/xml" | "application/xml" | "text/xsl" | "application/xslt+xml" => {
                Some(Renderable::Xml)
            }
            t if t.starts_with("message/") || t == "multipart/related" => Some(Renderable::Message),
            t if t.ends_with("+xml") => Some(Renderable::Xml),
            _ => None,
        };
        by_type.or_else(|| {
            let name = file.name.as_deref()?.to_lowercase();
            // Windows drops trailing dots and spaces: `letter.html.` opens as HTML.
            let name = name.trim_end_matches(['.', ' ']);
            let extension = name.rsplit_once('.')?.1;
            match extension {
                "html" | "htm" | "xhtml" | "xht" | "shtml" | "hta" => Some(Renderable::Html),
                "eml" | "mht" | "mhtml" | "emlx" => Some(Renderable::Message),
                "svg" | "svgz" => Some(Renderable::Svg),
                "xml" | "xsl" | "xslt" => Some(Renderable::Xml),
                "ics" | "ical" | "icalendar" | "vcs" => Some(Renderable::Calendar),
                _ => None,
            }
        })
    }

    /// What the file is, for the caseworker.
    fn describe(self) -> &'static str {
        match self {
            Renderable::Html => "a web page",
            Renderable::Message => "a forwarded message",
            Renderable::Svg => "an SVG image",
            Renderable::Xml => "an XML file",
            Renderable::Calendar => "a calendar invitation",
        }
    }

    /// The name for a file that came without one.
    fn default_name(self) -> &'static str {
        match self {
            Renderable::Html => "page.html",
            Renderable::Message => "message.eml",
            Renderable::Svg => "image.svg",
            Renderable::Xml => "file.xml",
            Renderable::Calendar => "invitation.ics",
        }
    }
}

/// Makes `files` safe to forward to a caseworker (see the module documentation).
pub(super) fn for_caseworker(files: &[AttachmentBytes]) -> SafeFiles {
    let mut safe = SafeFiles::default();
    for file in files {
        let Some(kind) = Renderable::of(file) else {
            safe.files.push(file.clone());
            continue;
        };
        let original = file
            .name
            .as_deref()
            .map(visible_name)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| kind.default_name().to_owned());
        let renamed = format!("{original}.txt");
        let text = match kind {
            Renderable::Html => {
                crate::mail::parse::html_document_text(&String::from_utf8_lossy(&file.content))
            }
            Renderable::Message => Some(message_text(&file.content)),
            Renderable::Svg | Renderable::Xml | Renderable::Calendar => None,
        };
        let line = match (kind, text) {
            (Renderable::Html | Renderable::Message, Some(text)) => {
                safe.files.push(AttachmentBytes {
                    name: Some(renamed.clone()),
                    content_type: "text/plain; charset=utf-8".to_owned(),
                    content: text.into_bytes(),
                });
                format!(
                    "{original} ({}): sent as its text, {renamed}",
                    kind.describe()
                )
            }
            _ => {
                safe.files.push(AttachmentBytes {
                    name: Some(renamed.clone()),
                    content_type: "application/octet-stream".to_owned(),
                    content: file.content.clone(),
                });
                let warning = if kind == Renderable::Calendar {
                    "; do not accept it from your mail client, which would send your address"
                } else {
                    ""
                };
                format!(
                    "{original} ({}): sent as plain text, {renamed}{warning}",
                    kind.describe()
                )
            }
        };
        safe.changed.push(line);
    }
    safe
}

/// A file name as a person should read it: on one line, without the bidi controls that can
/// make `gpj.exe` read as `exe.jpg`.
pub(super) fn visible_name(name: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
        })
        .collect();
    clean_line(&name)
}

/// A forwarded message as text: its main header fields, its text (HTML converted by `parse`),
/// and the names of the files it carries, which are not passed on.
fn message_text(raw: &[u8]) -> String {
    let mail = parse(raw, &ParseLimits::default());
    let mut out = String::new();
    let mailbox = |m: &crate::mail::parse::Mailbox| match &m.name {
        Some(name) => format!("{} <{}>", clean_line(name), clean_line(&m.address)),
        None => clean_line(&m.address),
    };
    let list = |list: &[crate::mail::parse::Mailbox]| {
        list.iter().map(mailbox).collect::<Vec<_>>().join(", ")
    };
    // Writing into a String cannot fail.
    if let Some(from) = &mail.from {
        let _ = writeln!(out, "From:    {}", mailbox(from));
    }
    if !mail.to.is_empty() {
        let _ = writeln!(out, "To:      {}", list(&mail.to));
    }
    if !mail.cc.is_empty() {
        let _ = writeln!(out, "Cc:      {}", list(&mail.cc));
    }
    if let Some(date) = &mail.date {
        let _ = writeln!(out, "Date:    {date}");
    }
    if let Some(subject) = &mail.subject {
        let _ = writeln!(out, "Subject: {}", clean_line(subject));
    }
    let _ = writeln!(out);
    out.push_str(&mail.text);
    if !mail.text.ends_with('\n') {
        out.push('\n');
    }
    if !mail.attachments.is_empty() {
        let _ = writeln!(
            out,
            "\nFiles in this message, not passed on (they are in the original kept with the ticket):"
        );
        for attachment in &mail.attachments {
            let _ = writeln!(
                out,
                "  - {} ({}, {} bytes)",
                attachment
                    .name
                    .as_deref()
                    .map(visible_name)
                    .unwrap_or_else(|| "(no name)".to_owned()),
                clean_line(&attachment.content_type),
                attachment.size
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;

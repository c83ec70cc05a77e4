//! The files of a caseworker's answer: which are dropped, which are cleaned and relayed, and
//! which hold the answer. Pure; every library call on hostile bytes is guarded against panics.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest as _, Sha256};

use super::Secrets;
use crate::mail::compose::AttachmentBytes;
use crate::mail::parse::InboundMail;

/// One file of a reply, as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: Option<String>,
    /// `type/subtype`, lower-cased.
    pub content_type: String,
    /// The decoded bytes; `None` when the file was too large to keep.
    pub content: Option<Vec<u8>>,
    /// A part of the message body (an inline part with a Content-ID, or one the HTML body
    /// shows with `cid:`) rather than an attached file.
    pub inline: bool,
}

impl File {
    /// The name to show the caseworker.
    pub fn display_name(&self) -> String {
        self.name
            .as_deref()
            .map(|n| n.chars().filter(|c| !c.is_control()).collect())
            .unwrap_or_else(|| format!("(unnamed {})", self.content_type))
    }

    fn extension(&self) -> String {
        self.name
            .as_deref()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, ext)| ext.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// The files of `mail`, with which ones belong to the body. `raw` must be the bytes `mail`
/// was parsed from: [`InboundMail`] does not keep Content-ID or Content-Disposition.
pub fn read(mail: &InboundMail, raw: &[u8]) -> Vec<File> {
    let inline = inline_digests(raw);
    mail.attachments
        .iter()
        .map(|a| {
            let content = a.content().map(<[u8]>::to_vec);
            let digest = content.as_deref().map(digest);
            File {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                inline: digest.is_some_and(|d| inline.contains(&d)),
                content,
            }
        })
        .collect()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Digests of the parts that are part of the message body: a Content-ID, and either no
/// `attachment` disposition or a `cid:` reference from the HTML body.
fn inline_digests(raw: &[u8]) -> BTreeSet<[u8; 32]> {
    let Some(message) = panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
    else {
        return BTreeSet::new();
    };
    let html: String = message
        .parts
        .iter()
        .filter_map(|part| match &part.body {
            PartType::Html(html) => Some(html.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    message
        .parts
        .iter()
        .filter(|part| {
            let Some(id) = part.content_id() else {
                return false;
            };
            let attached = part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
            let id = id.trim().trim_matches(['<', '>']).to_ascii_lowercase();
            !attached || (!id.is_empty() && html.contains(&format!("cid:{id}")))
        })
        .map(|part| digest(part.contents()))
        .collect()
}

/// What becomes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Relay this (cleaned) attachment; `note` tells the caseworker what was cleaned.
    Relay {
        attachment: AttachmentBytes,
        note: Option<String>,
    },
    /// Leave it out; the line tells the caseworker.
    Drop(String),
    /// Hold the whole answer; why (a phrase after the file's name).
    Hold(String),
}

const VCARD_TYPES: &[&str] = &["text/vcard", "text/x-vcard", "text/directory"];
const SIGNATURE_TYPES: &[&str] = &[
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "application/pkcs7-mime",
    "application/x-pkcs7-mime",
    "application/x-pkcs7-certificates",
    "application/pgp-signature",
    "application/pgp-keys",
];
const SIGNATURE_EXTENSIONS: &[&str] = &["p7s", "p7m", "p7c", "p7b", "sig", "asc"];
const CALENDAR_TYPES: &[&str] = &["text/calendar", "application/ics", "text/x-vcalendar"];

/// Applies the file policy (see the module doc of `gate`) to one file.
pub fn clean(file: &File, secrets: &Secrets) -> FileOutcome {
    let name = file.display_name();
    let kind = file.content_type.as_str();
    let extension = file.extension();
    if VCARD_TYPES.contains(&kind) || matches!(extension.as_str(), "vcf" | "vcard") {
        return FileOutcome::Drop(format!("{name}: a contact card, not sent"));
    }
    if SIGNATURE_TYPES.contains(&kind) || SIGNATURE_EXTENSIONS.contains(&extension.as_str()) {
        return FileOutcome::Drop(format!("{name}: a digital signature, not sent"));
    }
    if CALENDAR_TYPES.contains(&kind) || matches!(extension.as_str(), "ics" | "vcs") {
        return FileOutcome::Drop(format!("{name}: a calendar invitation, not sent"));
    }
    if (file.inline && kind.starts_with("image/")) || is_body_image_name(file.name.as_deref()) {
        return FileOutcome::Drop(format!(
            "{name}: an image in the body of your message (such as a signature logo), not sent; attach photos as files"
        ));
    }
    let Some(content) = file.content.as_deref() else {
        return FileOutcome::Drop(format!(
            "{name}: too large to relay, not sent (kept with the ticket)"
        ));
    };
    let relayed_name = file.name.as_deref().map(|n| secrets.scrub(n));
    if kind == "message/rfc822" || extension == "eml" {
        return forwarded(content, relayed_name, secrets);
    }
    let cleaned = if content.starts_with(b"\xFF\xD8\xFF") {
        clean_jpeg(content).map(|bytes| (bytes, "image/jpeg"))
    } else if content.starts_with(b"\x89PNG\r\n\x1a\n") {
        clean_png(content).map(|bytes| (bytes, "image/png"))
    } else if is_pdf(content) {
        clean_pdf(content).map(|bytes| (bytes, "application/pdf"))
    } else if matches!(kind, "text/plain" | "text/csv")
        && matches!(extension.as_str(), "" | "txt" | "csv" | "text")
    {
        return match std::str::from_utf8(content) {
            Ok(text) => relay_text(secrets.scrub(text), relayed_name, kind, secrets),
            Err(_) => FileOutcome::Hold("is not readable text".to_owned()),
        };
    } else {
        Err(
            "cannot be cleaned of who wrote it (send documents as PDF, photos as JPEG or PNG)"
                .to_owned(),
        )
    };
    match cleaned {
        Ok((bytes, content_type)) if !secrets.found_in(&bytes) => FileOutcome::Relay {
            attachment: AttachmentBytes {
                name: relayed_name,
                content_type: content_type.to_owned(),
                content: bytes,
            },
            note: Some(format!("{name}: sent without its metadata")),
        },
        Ok(_) => FileOutcome::Hold(
            "still contains a caseworker address or reply token after cleaning".to_owned(),
        ),
        Err(why) => FileOutcome::Hold(why),
    }
}

fn relay_text(
    text: String,
    name: Option<String>,
    content_type: &str,
    secrets: &Secrets,
) -> FileOutcome {
    if secrets.found_in_text(&text) || super::contains_marker(&text) {
        return FileOutcome::Hold("holds text that cannot be cleaned".to_owned());
    }
    FileOutcome::Relay {
        attachment: AttachmentBytes {
            name,
            content_type: format!("{content_type}; charset=utf-8"),
            content: text.into_bytes(),
        },
        note: None,
    }
}

/// Outlook's names for the images of a message body: `image001.png`, `image002.jpg`, ….
fn is_body_image_name(name: Option<&str>) -> bool {
    let Some(name) = name else {
        return false;
    };
    let name = name.to_ascii_lowercase();
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return false;
    };
    stem.strip_prefix("image")
        .is_some_and(|digits| digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        && matches!(
            extension,
            "png" | "jpg" | "jpeg" | "gif" | "bmp" | "emz" | "wmz"
        )
}

/// A forwarded message as a text file: its subject, date and readable text, scrubbed; its
/// addresses, other headers and files are left out.
fn forwarded(content: &[u8], name: Option<String>, secrets: &Secrets) -> FileOutcome {
    let mail = crate::mail::parse::parse(content, &crate::mail::parse::ParseLimits::default());
    let mut text = String::from("Forwarded message\n");
    if let Some(subject) = &mail.subject {
        text.push_str(&format!("Subject: {subject}\n"));
    }
    if let Some(date) = mail.date {
        text.push_str(&format!("Date: {date}\n"));
    }
    text.push('\n');
    text.push_str(&mail.text);
    text.push('\n');
    let stem = name
        .as_deref()
        .map(|n| n.rsplit_once('.').map_or(n, |(stem, _)| stem).to_owned())
        .filter(|stem| !stem.trim().is_empty())
        .unwrap_or_else(|| "forwarded message".to_owned());
    let outcome = relay_text(
        secrets.scrub(&text),
        Some(format!("{stem}.txt")),
        "text/plain",
        secrets,
    );
    match outcome {
        FileOutcome::Relay { attachment, .. } => FileOutcome::Relay {
            attachment,
            note: Some(
                "a forwarded message: sent as its text only, without its addresses and files"
                    .to_owned(),
            ),
        },
        other => other,
    }
}

fn is_pdf(content: &[u8]) -> bool {
    content
        .get(..content.len().min(1024))
        .is_some_and(|head| head.windows(5).any(|w| w == b"%PDF-"))
}

/// JPEG segments that describe how to decode the picture are kept; every other application
/// segment (EXIF and XMP in APP1, MPF in APP2, IPTC in APP13, …) and comments go.
fn clean_jpeg(content: &[u8]) -> Result<Vec<u8>, String> {
    use img_parts::jpeg::{Jpeg, markers};
    let unreadable = || "is not a JPEG image casemail can read".to_owned();
    let mut jpeg = guarded(|| Jpeg::from_bytes(img_parts::Bytes::copy_from_slice(content)).ok())
        .ok_or_else(unreadable)?;
    jpeg.segments_mut().retain(|segment| {
        let marker = segment.marker();
        let contents = segment.contents();
        match marker {
            markers::APP0 => contents.starts_with(b"JFIF\0"),
            markers::APP2 => contents.starts_with(b"ICC_PROFILE\0"),
            markers::APP14 => contents.starts_with(b"Adobe"),
            markers::COM => false,
            m if (markers::APP1..=markers::APP15).contains(&m) => false,
            _ => true,
        }
    });
    guarded(|| Some(jpeg.encoder().bytes().to_vec())).ok_or_else(unreadable)
}

/// PNG chunks needed to show the picture are kept; text (tEXt, zTXt, iTXt), EXIF (eXIf), the
/// time (tIME) and anything unknown go.
fn clean_png(content: &[u8]) -> Result<Vec<u8>, String> {
    use img_parts::png::Png;
    const KEEP: &[&[u8; 4]] = &[
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
        b"bKGD", b"pHYs",
    ];
    let unreadable = || "is not a PNG image casemail can read".to_owned();
    let mut png = guarded(|| Png::from_bytes(img_parts::Bytes::copy_from_slice(content)).ok())
        .ok_or_else(unreadable)?;
    png.chunks_mut()
        .retain(|chunk| KEEP.contains(&&chunk.kind()));
    guarded(|| Some(png.encoder().bytes().to_vec())).ok_or_else(unreadable)
}

/// A PDF without its Info dictionary (author, creator, producer, title, dates), its file
/// identifier, and every XMP `Metadata` stream and `PieceInfo` (application data); the file is
/// written anew, so earlier revisions of an incrementally saved file are gone too.
fn clean_pdf(content: &[u8]) -> Result<Vec<u8>, String> {
    use lopdf::{Document, Object};
    let mut document = guarded(|| Document::load_mem(content).ok())
        .ok_or_else(|| "is not a PDF casemail can read".to_owned())?;
    if document.is_encrypted() || document.trailer.has(b"Encrypt") {
        return Err("is an encrypted PDF, which casemail cannot clean".to_owned());
    }
    document.trailer.remove(b"Info");
    document.trailer.remove(b"ID");
    let metadata_streams: Vec<lopdf::ObjectId> = document
        .objects
        .iter()
        .filter(|(_, object)| match object {
            Object::Stream(stream) => stream
                .dict
                .get(b"Type")
                .and_then(Object::as_name)
                .is_ok_and(|name| name == b"Metadata"),
            _ => false,
        })
        .map(|(id, _)| *id)
        .collect();
    for id in metadata_streams {
        document.objects.remove(&id);
    }
    for object in document.objects.values_mut() {
        let dictionary = match object {
            Object::Dictionary(dictionary) => dictionary,
            Object::Stream(stream) => &mut stream.dict,
            _ => continue,
        };
        dictionary.remove(b"Metadata");
        dictionary.remove(b"PieceInfo");
    }
    guarded(|| {
        document.prune_objects();
        let mut out = Vec::new();
        document.save_to(&mut out).ok().map(|()| out)
    })
    .ok_or_else(|| "is a PDF casemail cannot write back".to_owned())
}

/// Runs a parser or writer over hostile bytes, turning a panic into `None`.
fn guarded<T>(work: impl FnOnce() -> Option<T>) -> Option<T> {
    panic::catch_unwind(AssertUnwindSafe(work)).ok().flatten()
}

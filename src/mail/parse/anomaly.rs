//! What parse reports about a damaged or odd message: the [`Anomaly`] values and the human
//! messages shown for them. Pure data; nothing here looks at a message.

use std::fmt;

use serde::Serialize;

/// Something wrong with a message. Anomalies never stop parsing; they travel with the ticket so
/// that a caseworker or coordinator can see why a message looks odd.
///
/// `part` fields are mail-parser part indexes: 0 is the message itself, then parts in the order
/// they appear in the raw message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Anomaly {
    /// The bytes are not a message: nothing, no header fields, or no end to the header block.
    Unparseable {
        reason: Unparseable,
    },
    MissingFrom,
    MissingMessageId,
    MissingDate,
    /// A Date field that is not an RFC 5322 date.
    BadDate {
        value: String,
    },
    /// A field RFC 5322 §3.6 allows once appears several times; the first one is used.
    DuplicateHeader {
        name: String,
        count: usize,
    },
    /// A charset mail-parser does not know; the bytes were read as UTF-8 with replacement
    /// characters. `part` is `None` for an RFC 2047 encoded word in a header field.
    UnknownCharset {
        charset: String,
        part: Option<usize>,
    },
    /// A charset mail-parser knows but cannot decode in this build (the multi-byte charsets
    /// need its `full_encoding` feature); the bytes were read as UTF-8.
    CharsetNotDecoded {
        charset: String,
        part: Option<usize>,
    },
    BrokenMime {
        part: usize,
        problem: MimeProblem,
    },
    Truncated {
        part: usize,
        problem: Truncation,
    },
    AttachmentTooLarge {
        name: Option<String>,
        size: u64,
        limit: u64,
    },
    /// NUL bytes, which RFC 5322 forbids and which usually mean binary corruption.
    NulBytes {
        count: usize,
    },
    /// No readable text at all.
    NoText,
    /// A Message-ID longer than a header line may be (RFC 5322 §2.1.1); it was dropped.
    LongMessageId {
        field: String,
        length: usize,
        limit: usize,
    },
    /// The message is over `[ingest] max_message_size` by the size the server reported: only
    /// its header fields were fetched, and the whole message stays on the mail server.
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// A Subject longer than casemail keeps; it was cut, in characters.
    LongSubject {
        length: usize,
        kept: usize,
    },
    /// More Message-IDs than casemail keeps from one field; the first and the latest are kept.
    TooManyMessageIds {
        field: String,
        count: usize,
        kept: usize,
    },
    /// The sender's address (From, else Sender) is one the mail builder will not write to (a
    /// quoted local part, `..`, a domain literal, a trailing dot, more than one `@`): casemail
    /// cannot send the requester anything, so caseworkers must answer another way.
    UnusableAddress {
        address: String,
    },
    /// A different message with this Message-ID is already stored (broken web forms, scanners
    /// and some phones reuse them). Added by the process stage, which files the message under a
    /// content key of its own (`threading::dedupe`); parse cannot know it.
    ReusedMessageId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unparseable {
    /// Zero bytes, or only white space.
    Empty,
    /// Not a single header field casemail recognises.
    NoHeaders,
    /// Header fields run to the end of the data: no blank line, no body.
    NoBody,
    /// The MIME parser panicked on this message.
    ParserFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum MimeProblem {
    /// A multipart Content-Type without a boundary parameter.
    NoBoundaryParameter,
    /// The declared boundary never occurs, so the parts cannot be separated.
    BoundaryNotFound { boundary: String },
    /// A base64 or quoted-printable part that could not be decoded; it is kept undecoded.
    Undecodable { encoding: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum Truncation {
    /// The closing `--boundary--` line never comes: the message was cut short.
    MissingClosingBoundary { boundary: String },
    /// The base64 text stops in the middle of a four-character group.
    IncompleteBase64,
}

impl Anomaly {
    /// A short stable name, the serde tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::Unparseable { .. } => "unparseable",
            Anomaly::MissingFrom => "missing-from",
            Anomaly::MissingMessageId => "missing-message-id",
            Anomaly::MissingDate => "missing-date",
            Anomaly::BadDate { .. } => "bad-date",
            Anomaly::DuplicateHeader { .. } => "duplicate-header",
            Anomaly::UnknownCharset { .. } => "unknown-charset",
            Anomaly::CharsetNotDecoded { .. } => "charset-not-decoded",
            Anomaly::BrokenMime { .. } => "broken-mime",
            Anomaly::Truncated { .. } => "truncated",
            Anomaly::AttachmentTooLarge { .. } => "attachment-too-large",
            Anomaly::NulBytes { .. } => "nul-bytes",
            Anomaly::NoText => "no-text",
            Anomaly::LongMessageId { .. } => "long-message-id",
            Anomaly::TooManyMessageIds { .. } => "too-many-message-ids",
            Anomaly::TooLarge { .. } => "too-large",
            Anomaly::LongSubject { .. } => "long-subject",
            Anomaly::UnusableAddress { .. } => "unusable-address",
            Anomaly::ReusedMessageId => "reused-message-id",
        }
    }
}

/// The human message, for the ticket view and `casemail inspect`. Values quoted from the message
/// are shown with `{:?}` so that control characters stay visible.
impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Unparseable { reason } => match reason {
                Unparseable::Empty => write!(f, "the message is empty"),
                Unparseable::NoHeaders => {
                    write!(f, "the data does not start with mail header fields")
                }
                Unparseable::ParserFailure => {
                    write!(f, "the MIME parser failed on this message")
                }
                Unparseable::NoBody => write!(
                    f,
                    "the header fields run to the end of the data: no blank line and no body"
                ),
            },
            Anomaly::MissingFrom => write!(f, "there is no From address"),
            Anomaly::MissingMessageId => {
                write!(
                    f,
                    "there is no usable Message-ID; the dedupe key is a content hash"
                )
            }
            Anomaly::MissingDate => write!(f, "there is no Date field"),
            Anomaly::BadDate { value } => write!(f, "the Date field {value:?} is not a valid date"),
            Anomaly::DuplicateHeader { name, count } => {
                write!(
                    f,
                    "the {name} field appears {count} times; the first one is used"
                )
            }
            Anomaly::UnknownCharset { charset, part } => {
                write!(f, "unknown charset {charset:?} ")?;
                write_charset_place(f, *part)?;
                write!(f, "; read as UTF-8, some characters may be lost")
            }
            Anomaly::CharsetNotDecoded { charset, part } => {
                write!(f, "charset {charset:?} ")?;
                write_charset_place(f, *part)?;
                write!(
                    f,
                    " cannot be decoded by this build; read as UTF-8, the text is garbled"
                )
            }
            Anomaly::BrokenMime { part, problem } => match problem {
                MimeProblem::NoBoundaryParameter => {
                    write!(
                        f,
                        "part {part} is multipart but declares no boundary; read as text"
                    )
                }
                MimeProblem::BoundaryNotFound { boundary } => write!(
                    f,
                    "part {part} declares boundary {boundary:?} but it never occurs; read as text"
                ),
                MimeProblem::Undecodable { encoding } => write!(
                    f,
                    "part {part} could not be decoded as {encoding}; kept in the raw message only"
                ),
            },
            Anomaly::Truncated { part, problem } => match problem {
                Truncation::MissingClosingBoundary { boundary } => write!(
                    f,
                    "part {part} never reaches its closing boundary {boundary:?}: \
                     the message was cut short"
                ),
                Truncation::IncompleteBase64 => write!(
                    f,
                    "the base64 text of part {part} stops mid-group: the part was cut short"
                ),
            },
            Anomaly::AttachmentTooLarge { name, size, limit } => {
                match name {
                    Some(name) => write!(f, "attachment {name:?}")?,
                    None => write!(f, "an unnamed attachment")?,
                }
                write!(
                    f,
                    " is {size} bytes, over the {limit} byte limit; kept in the raw message only"
                )
            }
            Anomaly::NulBytes { count } => write!(f, "the message contains {count} NUL bytes"),
            Anomaly::NoText => write!(f, "the message has no readable text"),
            Anomaly::LongMessageId {
                field,
                length,
                limit,
            } => write!(
                f,
                "a Message-ID in the {field} field is {length} bytes, over the {limit} byte limit; it was dropped"
            ),
            Anomaly::TooLarge { size, limit } => write!(
                f,
                "the message is {size} bytes, over the {limit} byte limit (ingest.max_message_size); only its header fields were fetched, the whole message stays on the mail server"
            ),
            Anomaly::LongSubject { length, kept } => write!(
                f,
                "the subject is {length} characters long; the first {kept} are kept"
            ),
            Anomaly::TooManyMessageIds { field, count, kept } => write!(
                f,
                "the {field} field lists {count} Message-IDs; the first and the latest, {kept} in all, are kept"
            ),
            Anomaly::UnusableAddress { address } => write!(
                f,
                "the sender address {address:?} cannot be written to by casemail; answers to it cannot be sent"
            ),
            Anomaly::ReusedMessageId => write!(
                f,
                "reused Message-ID: a different message with this Message-ID is already stored; \
                 this one is filed on its own and not threaded by it"
            ),
        }
    }
}

fn write_charset_place(f: &mut fmt::Formatter<'_>, part: Option<usize>) -> fmt::Result {
    match part {
        Some(part) => write!(f, "in part {part}"),
        None => write!(f, "in a header field"),
    }
}

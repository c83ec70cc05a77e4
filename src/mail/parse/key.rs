//! The dedupe key of a message without a Message-ID: a hash of its content.

use mail_parser::Message;
use sha2::{Digest as _, Sha256};

use super::body::normalise_newlines;
use super::headers::Fields;
use super::{Anomaly, InboundMail};

/// The dedupe key of a message without a Message-ID: SHA-256 over the sender's address, the
/// Date field as written (white space collapsed), the subject, the text and a digest of every
/// attachment, each length-prefixed so that fields cannot run into each other. Data that did
/// not parse adds its raw bytes, or every piece of garbage would share one key. Line endings
/// are normalised throughout, so a CRLF and an LF copy of one message share a key.
pub(super) fn content_hash(
    mail: &InboundMail,
    raw: &[u8],
    message: Option<&Message<'_>>,
) -> String {
    let from = mail
        .from
        .as_ref()
        .map(|m| m.address.as_str())
        .unwrap_or_default();
    let date = message
        .and_then(|message| {
            let headers = message.parts.first()?.headers.as_slice();
            let fields = Fields { headers, raw };
            fields.first_raw("Date")
        })
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let subject = mail.subject.as_deref().unwrap_or_default();

    let mut fields: Vec<Vec<u8>> = vec![
        b"casemail content v1".to_vec(),
        from.as_bytes().to_vec(),
        date.into_bytes(),
        normalise_newlines(subject).into_bytes(),
        mail.text.as_bytes().to_vec(),
    ];
    if let Some(message) = message {
        for &id in &message.attachments {
            if let Some(part) = usize::try_from(id)
                .ok()
                .and_then(|id| message.parts.get(id))
            {
                let digest = Sha256::digest(normalise_line_endings(part.contents()));
                fields.push(digest.to_vec());
            }
        }
    }
    if mail
        .anomalies
        .iter()
        .any(|a| matches!(a, Anomaly::Unparseable { .. }))
    {
        fields.push(normalise_line_endings(raw));
    }
    let borrowed: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    hash_fields(&borrowed)
}

fn hash_fields(fields: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update(u64::try_from(field.len()).unwrap_or(u64::MAX).to_le_bytes());
        hasher.update(field);
    }
    format!("{:x}", hasher.finalize())
}

/// The byte version of [`normalise_newlines`], for hashing raw data.
pub(super) fn normalise_line_endings(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pending_cr = 0usize;
    for &byte in bytes {
        match byte {
            b'\r' => pending_cr += 1,
            b'\n' => {
                pending_cr = 0;
                out.push(b'\n');
            }
            byte => {
                out.extend(std::iter::repeat_n(b'\r', pending_cr));
                pending_cr = 0;
                out.push(byte);
            }
        }
    }
    out.extend(std::iter::repeat_n(b'\r', pending_cr));
    out
}

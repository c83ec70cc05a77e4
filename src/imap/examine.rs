//! Looking at folders without changing them (reconciliation): EXAMINE, UID SEARCH and
//! ENVELOPE in a read-only session.

use std::time::Duration;

use futures::TryStreamExt as _;

use super::{Error, Session, connect, timed, uid_set};
use crate::config;
use crate::ids::{MessageId, Uid, UidValidity};

/// A folder as EXAMINE shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FolderStatus {
    pub uidvalidity: UidValidity,
    pub uid_next: Option<Uid>,
    pub exists: u32,
}

/// What the server's ENVELOPE says about one message: enough to name it in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub uid: Uid,
    pub message_id: Option<MessageId>,
    /// The subject, RFC 2047 words decoded; not yet escaped for a terminal.
    pub subject: Option<String>,
}

/// How many UIDs one `UID FETCH … ENVELOPE` asks for.
const ENVELOPE_BATCH: usize = 500;

/// A read-only session for looking at folders without changing them (reconciliation): EXAMINE
/// instead of SELECT, so no flag or `\Recent` state changes, and no message is fetched whole.
pub(crate) struct Examiner {
    session: Session,
}

impl Examiner {
    pub(crate) async fn connect(config: &config::Imap) -> Result<Examiner, Error> {
        Ok(Examiner {
            session: connect(config).await?,
        })
    }

    /// Opens `folder` read-only; `None` when it does not exist.
    pub(crate) async fn examine(&mut self, folder: &str) -> Result<Option<FolderStatus>, Error> {
        let mailbox = match timed(self.session.examine(folder)).await {
            Ok(mailbox) => mailbox,
            Err(Error::Protocol(async_imap::error::Error::No(_))) => return Ok(None),
            Err(err) => return Err(err),
        };
        let uidvalidity =
            UidValidity(mailbox.uid_validity.ok_or_else(|| Error::NoUidValidity {
                folder: folder.to_owned(),
            })?);
        Ok(Some(FolderStatus {
            uidvalidity,
            uid_next: mailbox.uid_next.map(Uid),
            exists: mailbox.exists,
        }))
    }

    /// The UIDs of the examined folder from `first` to `last` (to the end with `None`), sorted.
    pub(crate) async fn uids(&mut self, first: u32, last: Option<u32>) -> Result<Vec<Uid>, Error> {
        let first = first.max(1);
        if last.is_some_and(|last| last < first) {
            return Ok(Vec::new());
        }
        let query = match last {
            Some(last) => format!("UID {first}:{last}"),
            None => format!("UID {first}:*"),
        };
        let upper = last.unwrap_or(u32::MAX);
        // `n:*` matches the highest UID even when it is below n, hence the filter.
        let mut uids: Vec<Uid> = timed(self.session.uid_search(query))
            .await?
            .into_iter()
            .filter(|uid| (first..=upper).contains(uid))
            .map(Uid)
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The envelopes of `uids` in the examined folder; UIDs no longer there are left out.
    pub(crate) async fn envelopes(&mut self, uids: &[Uid]) -> Result<Vec<Envelope>, Error> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(ENVELOPE_BATCH) {
            let set = uid_set(chunk);
            let session = &mut self.session;
            let fetched = timed(async {
                let stream = session.uid_fetch(&set, "(UID ENVELOPE)").await?;
                stream.try_collect::<Vec<_>>().await
            })
            .await?;
            for fetch in &fetched {
                let Some(uid) = fetch.uid else { continue };
                let envelope = fetch.envelope();
                let message_id = envelope
                    .and_then(|e| e.message_id.as_deref())
                    .and_then(|raw| MessageId::parse(&String::from_utf8_lossy(raw)));
                let subject = envelope
                    .and_then(|e| e.subject.as_deref())
                    .map(decode_subject);
                out.push(Envelope {
                    uid: Uid(uid),
                    message_id,
                    subject,
                });
            }
        }
        out.sort_by_key(|envelope| envelope.uid);
        Ok(out)
    }

    pub(crate) async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.session.logout()).await;
    }
}

/// Decodes RFC 2047 encoded words in a subject as the server sent it in an ENVELOPE.
pub(super) fn decode_subject(raw: &[u8]) -> String {
    let mut header = b"Subject: ".to_vec();
    header.extend_from_slice(raw);
    header.extend_from_slice(b"\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse_headers(&header[..])
        .and_then(|message| message.subject().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

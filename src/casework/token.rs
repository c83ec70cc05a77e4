//! Reply tokens: an HMAC over (ticket, agent) that makes a notification answerable. The token
//! rides in the notification's Reply-To sub-address (`help+TOKEN@…`) and in its Message-ID, so
//! a reply carries it back in a recipient address or in In-Reply-To/References.
//!
//! The secret is generated on first run and kept in the state directory with mode 0600. This
//! module reads and writes only that file and, after `casemail secret rotate`, the retired key
//! beside it (`reply-secret.previous`: the key, then the moment it was retired as seconds since
//! 1970, big-endian). Tokens made with the retired key verify for `[auth] rotation_grace` after
//! that moment. Verifying is pure.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::ids::{AgentId, TicketId};

pub(crate) const SECRET_FILE: &str = "reply-secret";
const PREVIOUS_FILE: &str = "reply-secret.previous";
const SECRET_LEN: usize = 32;
/// Hex characters of the MAC kept in a token: 96 bits, short enough for an address.
const MAC_HEX: usize = 24;
const PREFIX: &str = "cm";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or create the reply secret {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "reply secret {path} is damaged (expected {SECRET_LEN} bytes, and a time after a rotation)"
    )]
    Damaged { path: String },
}

/// The key tokens are signed with, and the key it replaced, if any.
#[derive(Clone)]
pub struct Secret {
    key: [u8; SECRET_LEN],
    previous: Option<Retired>,
}

/// A key `casemail secret rotate` replaced, and when.
#[derive(Clone)]
struct Retired {
    key: [u8; SECRET_LEN],
    at: jiff::Timestamp,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Reads the secret from the state directory, creating it (mode 0600) on first run.
    pub fn load_or_create(state_dir: &Path) -> Result<Secret, Error> {
        let path = state_dir.join(SECRET_FILE);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let array: [u8; SECRET_LEN] = bytes.try_into().map_err(|_| Error::Damaged {
                    path: path.display().to_string(),
                })?;
                // Tighten a file someone loosened; the secret forges agents' replies.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
                Ok(Secret {
                    key: array,
                    previous: read_previous(state_dir)?,
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; SECRET_LEN] = rand::random();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(&secret).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Secret {
                    key: secret,
                    previous: None,
                })
            }
            Err(err) => Err(io(err)),
        }
    }

    /// Replaces the key with a new random one and keeps the old one as the retired key, so
    /// tokens already sent keep working for the grace period. Both files are written whole
    /// (mode 0600, synced, renamed into place), the retired key first: a crash in between
    /// leaves the current key as it was.
    pub fn rotate(state_dir: &Path, now: jiff::Timestamp) -> Result<Secret, Error> {
        let old = Secret::load_or_create(state_dir)?;
        let mut retired = old.key.to_vec();
        retired.extend_from_slice(&now.as_second().to_be_bytes());
        write_private(&state_dir.join(PREVIOUS_FILE), &retired)?;
        let key: [u8; SECRET_LEN] = rand::random();
        write_private(&state_dir.join(SECRET_FILE), &key)?;
        Ok(Secret {
            key,
            previous: Some(Retired {
                key: old.key,
                at: now,
            }),
        })
    }

    /// When the key in use replaced the previous one, if it did.
    pub fn rotated_at(&self) -> Option<jiff::Timestamp> {
        self.previous.as_ref().map(|p| p.at)
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Secret {
        Secret {
            key: bytes,
            previous: None,
        }
    }

    /// A secret whose current key is `bytes` and that retired `previous` at `at`.
    #[cfg(test)]
    pub fn rotated_from(
        bytes: [u8; SECRET_LEN],
        previous: [u8; SECRET_LEN],
        at: jiff::Timestamp,
    ) -> Secret {
        Secret {
            key: bytes,
            previous: Some(Retired { key: previous, at }),
        }
    }

    fn mac(&self, ticket: TicketId, agent: &AgentId) -> Hmac<Sha256> {
        mac_with(&self.key, ticket, agent)
    }

    /// The token for `agent` answering `ticket`: `cm.TICKET.AGENT.MAC`.
    pub fn sign(&self, ticket: TicketId, agent: &AgentId) -> String {
        let digest = self.mac(ticket, agent).finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{PREFIX}.{}.{}.{}",
            ticket.0,
            agent.0,
            hex.get(..MAC_HEX).unwrap_or(&hex)
        )
    }

    /// The ticket and agent a token names, if the current key made it, or the retired key
    /// and `now` is less than `grace` after its retirement.
    pub fn verify_at(
        &self,
        token: &str,
        now: jiff::Timestamp,
        grace: std::time::Duration,
    ) -> Option<(TicketId, AgentId)> {
        if let Some(found) = self.verify(token) {
            return Some(found);
        }
        let retired = self.previous.as_ref()?;
        let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
        if now
            >= retired
                .at
                .saturating_add(grace)
                .unwrap_or(jiff::Timestamp::MAX)
        {
            return None;
        }
        let previous = Secret {
            key: retired.key,
            previous: None,
        };
        previous.verify(token)
    }

    /// The ticket and agent a token names, if the current key made it.
    pub fn verify(&self, token: &str) -> Option<(TicketId, AgentId)> {
        let token = token.to_ascii_lowercase();
        let rest = token.strip_prefix(PREFIX)?.strip_prefix('.')?;
        let (ticket, rest) = rest.split_once('.')?;
        let (agent, mac) = rest.rsplit_once('.')?;
        let ticket = TicketId(ticket.parse().ok()?);
        let agent = AgentId(agent.to_owned());
        if mac.len() != MAC_HEX || agent.0.is_empty() {
            return None;
        }
        let bytes: Vec<u8> = (0..MAC_HEX / 2)
            .map(|i| u8::from_str_radix(mac.get(i * 2..i * 2 + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        self.mac(ticket, &agent)
            .verify_truncated_left(&bytes)
            .ok()
            .map(|()| (ticket, agent))
    }
}

/// The longest agent id a token is made for: new ids have at most 12 characters
/// (`AgentId::RULE`), this leaves room for agents registered under older, looser rules.
const MAX_AGENT_ID: usize = 64;
/// The longest token [`Secret::sign`] makes: `cm.` + a ticket number (at most 20 digits) + `.` +
/// the agent id + `.` + the MAC.
const MAX_TOKEN_LEN: usize = PREFIX.len() + 1 + 20 + 1 + MAX_AGENT_ID + 1 + MAC_HEX;
/// The longest run [`candidates`] looks at: a token followed by a Message-ID's `.NONCE` (16 hex
/// digits). A longer run is not something casemail wrote.
const MAX_CANDIDATE_RUN: usize = MAX_TOKEN_LEN + 1 + 16;
/// At most this many candidates come from one piece of text, so a header made of `cm.cm.cm.…`
/// costs a bounded number of MAC checks.
pub(crate) const MAX_CANDIDATES: usize = 16;

fn mac_with(key: &[u8], ticket: TicketId, agent: &AgentId) -> Hmac<Sha256> {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = <Hmac<Sha256>>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("casemail-reply-token\0{}\0{}", ticket.0, agent.0).as_bytes());
    mac
}

/// The retired key and when it was retired, when `casemail secret rotate` left one.
fn read_previous(state_dir: &Path) -> Result<Option<Retired>, Error> {
    let path = state_dir.join(PREVIOUS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let damaged = || Error::Damaged {
        path: path.display().to_string(),
    };
    let (key, at) = bytes.split_at_checked(SECRET_LEN).ok_or_else(damaged)?;
    let key: [u8; SECRET_LEN] = key.try_into().map_err(|_| damaged())?;
    let at: [u8; 8] = at.try_into().map_err(|_| damaged())?;
    let at = jiff::Timestamp::from_second(i64::from_be_bytes(at)).map_err(|_| damaged())?;
    Ok(Some(Retired { key, at }))
}

/// Writes a file only the owner can read, through a temporary file renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// Finds tokens in text where casemail put them: a `+TOKEN@` sub-address or a
/// `casemail.n.TOKEN.NONCE@` Message-ID.
///
/// Linear in the length of `text`: the text is cut once into runs of token characters, a `cm.`
/// whose run goes on for more than [`MAX_CANDIDATE_RUN`] bytes is skipped, and the search stops
/// after [`MAX_CANDIDATES`] candidates.
pub(crate) fn candidates(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    let runs = lower.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
    for run in runs {
        for (index, _) in run.match_indices("cm.") {
            let candidate = run.get(index..).unwrap_or("");
            if candidate.len() > MAX_CANDIDATE_RUN {
                continue;
            }
            if found.len() >= MAX_CANDIDATES {
                return found;
            }
            // A Message-ID carries `.NONCE` after the token; try the whole run and the run
            // without its last dot-part.
            found.push(candidate.trim_end_matches('.').to_owned());
            if let Some((head, _)) = candidate.rsplit_once('.')
                && found.len() < MAX_CANDIDATES
            {
                found.push(head.to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes([7; SECRET_LEN])
    }

    #[test]
    fn a_token_verifies_for_its_ticket_and_agent_only() {
        let token = secret().sign(TicketId(42), &AgentId("amina.k".to_owned()));
        assert_eq!(
            secret().verify(&token),
            Some((TicketId(42), AgentId("amina.k".to_owned())))
        );
        assert_eq!(
            secret().verify(&token.to_uppercase()).map(|t| t.0),
            Some(TicketId(42))
        );
        let forged_ticket = token.replacen(".42.", ".43.", 1);
        assert_eq!(secret().verify(&forged_ticket), None);
        let forged_agent = token.replace("amina.k", "jonas");
        assert_eq!(secret().verify(&forged_agent), None);
        let other_secret = Secret::from_bytes([8; SECRET_LEN]);
        assert_eq!(other_secret.verify(&token), None);
        assert_eq!(secret().verify("cm.42.amina.deadbeef"), None);
        assert_eq!(secret().verify(""), None);
    }

    #[test]
    fn tokens_are_found_in_sub_addresses_and_message_ids() {
        let token = secret().sign(TicketId(5), &AgentId("jonas".to_owned()));
        let address = format!("Help <help+{token}@charity.example>");
        assert!(candidates(&address).contains(&token));
        let message_id = format!("<casemail.n.{token}.00ff00ff00ff00ff@charity.example>");
        assert!(candidates(&message_id).contains(&token));
    }

    #[test]
    fn a_megabyte_of_header_gives_few_short_candidates() {
        let token = secret().sign(TicketId(5), &AgentId("jonas".to_owned()));
        // One run of `cm.` repeated: every occurrence used to start a candidate reaching to
        // the end of the run, a quadratic amount of text (a 117 KB Message-ID took 4.8 GB).
        // Many short runs first (the old search kept every one of them): the count is capped.
        let many_runs = "cm.1 ".repeat(200_000);
        assert_eq!(candidates(&many_runs).len(), MAX_CANDIDATES);
        let one_run = format!("<{}@x>", "cm.".repeat(350_000));
        let started = std::time::Instant::now();
        let found = candidates(&one_run);
        let took = started.elapsed();
        assert!(found.len() <= MAX_CANDIDATES);
        assert!(found.iter().all(|c| c.len() <= MAX_CANDIDATE_RUN));
        let bytes: usize = found.iter().map(String::len).sum();
        assert!(bytes <= MAX_CANDIDATES * MAX_CANDIDATE_RUN);
        // A token behind a long run in the same text is still found.
        let after_junk = format!(
            "{} <casemail.n.{token}.00ff00ff00ff00ff@x>",
            "x".repeat(1 << 20)
        );
        assert!(candidates(&after_junk).contains(&token));
        eprintln!("candidates over a 1 MB run of cm.: {took:?}");
    }

    #[test]
    fn the_longest_token_fits_the_candidate_bound() {
        let agent = AgentId("a".repeat(MAX_AGENT_ID));
        let token = secret().sign(TicketId(u64::MAX), &agent);
        assert_eq!(token.len(), MAX_TOKEN_LEN);
        let message_id = format!("<casemail.n.{token}.ffffffffffffffff@charity.example>");
        assert!(candidates(&message_id).contains(&token));
    }

    #[test]
    fn a_rotated_secret_accepts_old_tokens_only_during_the_grace_period() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = Secret::load_or_create(dir.path()).expect("create");
        let ticket = TicketId(9);
        let agent = AgentId("amina".to_owned());
        let old_token = old.sign(ticket, &agent);
        let rotated_at = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let rotated = Secret::rotate(dir.path(), rotated_at).expect("rotate");
        let day = std::time::Duration::from_secs(24 * 60 * 60);
        let grace = 30 * day;
        let later = |d: u32| {
            rotated_at
                .checked_add(jiff::SignedDuration::from_secs(i64::from(d) * 86_400))
                .expect("time")
        };
        // Read back from the files, as the daemon does after a rotation.
        let reloaded = Secret::load_or_create(dir.path()).expect("reload");
        for secret in [&rotated, &reloaded] {
            assert_eq!(secret.verify(&old_token), None);
            assert_eq!(
                secret.verify_at(&old_token, later(29), grace),
                Some((ticket, agent.clone()))
            );
            assert_eq!(secret.verify_at(&old_token, later(30), grace), None);
            let new_token = secret.sign(ticket, &agent);
            assert_ne!(new_token, old_token);
            assert!(secret.verify_at(&new_token, later(400), grace).is_some());
        }
        assert_eq!(reloaded.rotated_at(), Some(rotated_at));
        for file in [SECRET_FILE, PREVIOUS_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        // A second rotation retires the second key: the first one is gone for good.
        let twice = Secret::rotate(dir.path(), later(1)).expect("rotate again");
        assert_eq!(twice.verify_at(&old_token, later(2), grace), None);
    }

    #[test]
    fn the_secret_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Secret::load_or_create(dir.path()).expect("create");
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Secret::load_or_create(dir.path()).expect("reuse");
        let token = first.sign(TicketId(1), &AgentId("a".to_owned()));
        assert!(second.verify(&token).is_some());
    }
}

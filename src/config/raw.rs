//! The file and the environment merged, before validation: every field optional, lists taken
//! from TOML arrays or comma-separated variables.

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;

use super::{auth, loops, oauth2, spam};

/// The file and the environment merged, before validation. Every field is optional so that
/// defaults and "missing required key" are decided in one place,
/// [`validate`](super::validate::validate).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) helpdesk: RawHelpdesk,
    pub(super) imap: RawImap,
    pub(super) smtp: RawSmtp,
    pub(super) oauth2: oauth2::RawOAuth2,
    pub(super) control: RawControl,
    pub(super) threading: RawThreading,
    pub(super) auth: auth::RawAuth,
    pub(super) ingest: RawIngest,
    pub(super) rota: RawRota,
    pub(super) loops: loops::RawLoops,
    pub(super) acknowledge: loops::RawAcknowledge,
    pub(super) spam: spam::RawSpam,
    pub(super) reconcile: RawReconcile,
    pub(super) retention: RawRetention,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawReconcile {
    pub(super) every: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) closed_after: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRota {
    pub(super) timezone: Option<String>,
    pub(super) answer_within: Option<String>,
    pub(super) digest_at: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawHelpdesk {
    pub(super) address: Option<String>,
    pub(super) name: Option<String>,
    pub(super) state_dir: Option<String>,
    pub(super) hide_names: Option<StringList>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawImap {
    pub(super) host: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) security: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<SecretString>,
    pub(super) password_file: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) folders: Option<StringList>,
    pub(super) junk_folders: Option<StringList>,
    pub(super) processed_folder: Option<String>,
    pub(super) poll_interval: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) paused_folders: Option<StringList>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub(super) host: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) security: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<SecretString>,
    pub(super) password_file: Option<String>,
    pub(super) ca_file: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Option<String>,
    pub(super) http: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawThreading {
    pub(super) one_open_ticket_per_requester: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawIngest {
    pub(super) max_attachment_size: Option<String>,
    pub(super) first_run: Option<String>,
    pub(super) message_time_budget: Option<String>,
    pub(super) max_attempts: Option<i64>,
    pub(super) batch_size: Option<i64>,
    pub(super) max_message_size: Option<String>,
    pub(super) fetch_bytes: Option<String>,
}

/// A list of strings: a TOML array, or a comma-separated string as an environment variable
/// can only be (`CASEMAIL__IMAP__FOLDERS=INBOX,Support`).
pub(super) struct StringList(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StringList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings or a comma-separated string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StringList, E> {
                if text.trim().is_empty() {
                    return Ok(StringList(Vec::new()));
                }
                Ok(StringList(
                    text.split(',').map(|item| item.trim().to_owned()).collect(),
                ))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

//! The `[auth]` section: which server's Authentication-Results casemail believes, what a
//! message without such a result counts as, and how long reply tokens live.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{format_duration, parse_duration};
use super::{DURATION, Error, Sources, StringList};

/// How mail is authenticated before it may change anything (`auth.rs` reads this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The authserv-ids (RFC 8601 §2.5) of the server that receives the helpdesk's mail,
    /// lower-cased. Authentication-Results fields naming any other id are ignored: anybody can
    /// write one into a message.
    pub trusted_authserv_ids: Vec<String>,
    /// What a message without a trusted Authentication-Results field counts as.
    pub without_results: WithoutResults,
    /// A reply token for a ticket closed longer ago than this is refused.
    pub token_expiry: Duration,
    /// After `casemail secret rotate`, tokens made with the old key are accepted this long.
    pub rotation_grace: Duration,
    /// The same answer (text and files) for the same ticket is relayed once within this long.
    pub replay_window: Duration,
}

/// What a message without a trusted Authentication-Results field counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutResults {
    /// Unauthenticated but not failing: reply tokens and registered addresses still decide.
    /// The default, so that a server that records no results keeps working.
    Unverified,
    /// Failing: nothing from such a message changes state. For a server that records a
    /// result for every message it accepts.
    Fail,
}

impl WithoutResults {
    pub fn as_str(self) -> &'static str {
        match self {
            WithoutResults::Unverified => "unverified",
            WithoutResults::Fail => "fail",
        }
    }
}

pub(super) const SCHEMA: &[(&str, &str)] = &[
    (
        "trusted_authserv_ids",
        "a list of authserv-ids such as [\"mx.charity.example\"]",
    ),
    ("without_results", "\"unverified\" or \"fail\""),
    ("token_expiry", DURATION),
    ("rotation_grace", DURATION),
    ("replay_window", DURATION),
];

pub(super) const DEFAULT_TOKEN_EXPIRY: Duration = Duration::from_secs(90 * 24 * 60 * 60);
pub(super) const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
pub(super) const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

impl Default for Auth {
    fn default() -> Self {
        Auth {
            trusted_authserv_ids: Vec::new(),
            without_results: WithoutResults::Unverified,
            token_expiry: DEFAULT_TOKEN_EXPIRY,
            rotation_grace: DEFAULT_ROTATION_GRACE,
            replay_window: DEFAULT_REPLAY_WINDOW,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAuth {
    trusted_authserv_ids: Option<StringList>,
    without_results: Option<String>,
    token_expiry: Option<String>,
    rotation_grace: Option<String>,
    replay_window: Option<String>,
}

fn duration(
    sources: &Sources<'_>,
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(&text).map_err(|reason| sources.error(key, reason)),
    }
}

pub(super) fn validate(raw: RawAuth, sources: &Sources<'_>) -> Result<Auth, Error> {
    let mut trusted_authserv_ids = Vec::new();
    for (index, id) in raw
        .trusted_authserv_ids
        .map(|list| list.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let id = id.trim().to_ascii_lowercase();
        // RFC 8601 §2.2: the authserv-id is a `value`, a token or quoted string; a domain name
        // in practice. Nothing that could be a separator or white space.
        let usable = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | '"' | '(' | ')' | '\\'));
        if !usable {
            return Err(sources.error(
                &format!("auth.trusted_authserv_ids[{index}]"),
                "expected an authserv-id such as \"mx.charity.example\" (no spaces, ';' or quotes)",
            ));
        }
        if !trusted_authserv_ids.contains(&id) {
            trusted_authserv_ids.push(id);
        }
    }
    let without_results = match raw.without_results.as_deref().map(str::trim) {
        None | Some("unverified") => WithoutResults::Unverified,
        Some("fail") => WithoutResults::Fail,
        Some(other) => {
            return Err(sources.error(
                "auth.without_results",
                format!("expected \"unverified\" or \"fail\", found {other:?}"),
            ));
        }
    };
    if without_results == WithoutResults::Fail && trusted_authserv_ids.is_empty() {
        return Err(sources.error(
            "auth.without_results",
            "\"fail\" needs auth.trusted_authserv_ids: without a trusted server every message would fail",
        ));
    }
    Ok(Auth {
        trusted_authserv_ids,
        without_results,
        token_expiry: duration(
            sources,
            "auth.token_expiry",
            raw.token_expiry,
            DEFAULT_TOKEN_EXPIRY,
        )?,
        rotation_grace: duration(
            sources,
            "auth.rotation_grace",
            raw.rotation_grace,
            DEFAULT_ROTATION_GRACE,
        )?,
        replay_window: duration(
            sources,
            "auth.replay_window",
            raw.replay_window,
            DEFAULT_REPLAY_WINDOW,
        )?,
    })
}

#[derive(Serialize)]
pub(super) struct AuthView {
    trusted_authserv_ids: Vec<String>,
    without_results: &'static str,
    token_expiry: String,
    rotation_grace: String,
    replay_window: String,
}

impl AuthView {
    pub(super) fn of(auth: &Auth) -> AuthView {
        AuthView {
            trusted_authserv_ids: auth.trusted_authserv_ids.clone(),
            without_results: auth.without_results.as_str(),
            token_expiry: format_duration(auth.token_expiry),
            rotation_grace: format_duration(auth.rotation_grace),
            replay_window: format_duration(auth.replay_window),
        }
    }
}

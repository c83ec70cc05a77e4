//! The `[spam]` section: threshold, rules (regular expressions compiled here, once), allow-lists,
//! spamd and how long spam is kept.

use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::values::{is_loopback_ip, parse_address, parse_duration};
use super::{Error, Sources};

/// The spam settings, validated. Cloning is cheap enough: a few compiled patterns.
#[derive(Debug, Clone)]
pub struct Spam {
    /// A message whose score reaches this is spam.
    pub threshold: f64,
    /// Spam tickets older than this (since their last change) are purged by the sweep.
    pub keep_for: Duration,
    /// SpamAssassin's spamd on loopback; `None` when not used.
    pub spamd: Option<SocketAddr>,
    /// How long one spamd check may take before ingest goes on without it.
    pub spamd_timeout: Duration,
    /// Senders whose mail is never spam, lower-cased.
    pub allow_addresses: Vec<String>,
    /// Domains (and their subdomains) whose mail is never spam, lower-cased.
    pub allow_domains: Vec<String>,
    /// The largest weight the learned classifier adds (or takes away) for one message.
    pub classifier_weight: f64,
    pub rules: Vec<Rule>,
}

impl Default for Spam {
    fn default() -> Spam {
        Spam {
            threshold: DEFAULT_THRESHOLD,
            keep_for: DEFAULT_KEEP_FOR,
            spamd: None,
            spamd_timeout: DEFAULT_SPAMD_TIMEOUT,
            allow_addresses: Vec::new(),
            allow_domains: Vec::new(),
            classifier_weight: DEFAULT_CLASSIFIER_WEIGHT,
            rules: Vec::new(),
        }
    }
}

/// One configured rule: a pattern over one part of the message, and what a match weighs.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub target: Target,
    pub pattern: Regex,
    pub weight: f64,
}

/// The part of a message a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The decoded Subject.
    Subject,
    /// The sender as `Name <address>` (or the bare address).
    Sender,
    /// The readable text of the message.
    Body,
    /// Each domain named in a link (`http://` or `https://`) in the text or the raw message.
    LinkDomain,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Subject => "subject",
            Target::Sender => "sender",
            Target::Body => "body",
            Target::LinkDomain => "link_domain",
        }
    }
}

pub(super) const DEFAULT_THRESHOLD: f64 = 5.0;
pub(super) const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);
pub(super) const DEFAULT_SPAMD_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_CLASSIFIER_WEIGHT: f64 = 6.0;
/// A compiled pattern may not grow past this (the regex crate's own guard against patterns
/// whose automaton explodes).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSpam {
    threshold: Option<f64>,
    keep_for: Option<String>,
    spamd: Option<String>,
    spamd_timeout: Option<String>,
    allow_addresses: Option<super::StringList>,
    allow_domains: Option<super::StringList>,
    classifier_weight: Option<f64>,
    rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    target: String,
    pattern: String,
    weight: f64,
}

pub(super) fn validate(raw: RawSpam, sources: &Sources<'_>) -> Result<Spam, Error> {
    let threshold = raw.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !threshold.is_finite() || threshold <= 0.0 {
        return Err(sources.error(
            "spam.threshold",
            format!("expected a number above 0, found {threshold}"),
        ));
    }
    let keep_for = match raw.keep_for {
        None => DEFAULT_KEEP_FOR,
        Some(text) => parse_duration(&text).map_err(|r| sources.error("spam.keep_for", r))?,
    };
    if keep_for.is_zero() {
        return Err(sources.error("spam.keep_for", "must not be zero"));
    }
    let spamd = match raw.spamd.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let address: SocketAddr = text.parse().map_err(|_| {
                sources.error(
                    "spam.spamd",
                    format!("expected a loopback address and port such as \"127.0.0.1:783\", found {text:?}"),
                )
            })?;
            if !is_loopback_ip(address.ip()) {
                return Err(sources.error(
                    "spam.spamd",
                    format!(
                        "{address} is not a loopback address: spamd is spoken to without encryption"
                    ),
                ));
            }
            Some(address)
        }
    };
    let spamd_timeout = match raw.spamd_timeout {
        None => DEFAULT_SPAMD_TIMEOUT,
        Some(text) => parse_duration(&text).map_err(|r| sources.error("spam.spamd_timeout", r))?,
    };
    if spamd_timeout.is_zero() {
        return Err(sources.error("spam.spamd_timeout", "must not be zero"));
    }
    let mut allow_addresses = Vec::new();
    for (index, text) in raw
        .allow_addresses
        .map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let address = parse_address(&text)
            .map_err(|r| sources.error(&format!("spam.allow_addresses[{index}]"), r))?;
        allow_addresses.push(address.to_lowercase());
    }
    let mut allow_domains = Vec::new();
    for (index, text) in raw
        .allow_domains
        .map(|l| l.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let domain = text.trim().trim_start_matches('@').to_lowercase();
        let valid = !domain.is_empty()
            && domain.contains('.')
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return Err(sources.error(
                &format!("spam.allow_domains[{index}]"),
                format!("expected a domain such as \"charity.example\", found {text:?}"),
            ));
        }
        allow_domains.push(domain);
    }
    let classifier_weight = raw.classifier_weight.unwrap_or(DEFAULT_CLASSIFIER_WEIGHT);
    if !classifier_weight.is_finite() || classifier_weight < 0.0 {
        return Err(sources.error(
            "spam.classifier_weight",
            format!("expected a number of at least 0, found {classifier_weight}"),
        ));
    }
    let mut rules: Vec<Rule> = Vec::new();
    for (index, raw_rule) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        let key = format!("spam.rules[{index}]");
        let name = raw_rule.name.trim().to_owned();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(sources.error(
                &format!("{key}.name"),
                format!("expected a name of letters, digits, '_' or '-', found {name:?}"),
            ));
        }
        if rules.iter().any(|r| r.name == name) {
            return Err(sources.error(
                &format!("{key}.name"),
                format!("rule {name:?} is defined twice"),
            ));
        }
        let target = match raw_rule.target.as_str() {
            "subject" => Target::Subject,
            "sender" => Target::Sender,
            "body" => Target::Body,
            "link_domain" => Target::LinkDomain,
            other => {
                return Err(sources.error(
                    &format!("{key}.target"),
                    format!(
                        "expected \"subject\", \"sender\", \"body\" or \"link_domain\", found {other:?}"
                    ),
                ));
            }
        };
        let pattern = regex::RegexBuilder::new(&raw_rule.pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|err| {
                sources.error(
                    &format!("{key}.pattern"),
                    format!("not a valid regular expression: {err}"),
                )
            })?;
        if !raw_rule.weight.is_finite() {
            return Err(sources.error(&format!("{key}.weight"), "expected a number"));
        }
        rules.push(Rule {
            name,
            target,
            pattern,
            weight: raw_rule.weight,
        });
    }
    Ok(Spam {
        threshold,
        keep_for,
        spamd,
        spamd_timeout,
        allow_addresses,
        allow_domains,
        classifier_weight,
        rules,
    })
}

/// How `check-config` prints one rule (and how the file spells it).
#[derive(Serialize)]
pub(super) struct RuleView {
    name: String,
    target: &'static str,
    pattern: String,
    weight: f64,
}

impl RuleView {
    pub(super) fn new(rule: &Rule) -> RuleView {
        RuleView {
            name: rule.name.clone(),
            target: rule.target.as_str(),
            pattern: rule.pattern.as_str().to_owned(),
            weight: rule.weight,
        }
    }
}

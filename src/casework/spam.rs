//! The spam verdict: every inbound message gets a score and the reasons that made it, from the
//! headers added upstream (SpamAssassin, rspamd, Authentication-Results), the folder it arrived
//! in, the rules and allow-lists of `[spam]`, SpamAssassin's spamd when configured, and the
//! learned classifier.
//!
//! [`assess`] is pure: spamd's answer and the classifier's score are looked up by the caller
//! (the process stage, or `inspect` without them) and passed in, so the same function decides
//! in the daemon and on the command line. False positives cost more than false negatives here:
//! allow-lists always win, and a known requester (someone already on a ticket that is not
//! spam) is never flagged by content alone — only an explicit verdict (an upstream spam flag,
//! arrival in a junk folder) can flag them.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::{Spam as Settings, SpamTarget};
use crate::mail::parse::InboundMail;
use crate::model::FolderKind;

pub mod bayes;
pub mod corpus;
pub mod held;

/// One signal that moved the score, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// A stable name: `x_spam_flag`, `rule:NAME`, `classifier`, `spamd`, …
    pub signal: String,
    /// What it added to the score (negative for evidence of ham; 0 for a note).
    pub weight: f64,
    /// In words, for a person.
    pub detail: String,
}

/// What casemail concluded about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub spam: bool,
    pub score: f64,
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// The reasons as one line: `x_spam_flag +5.0, rule:pharma +3.0`.
    pub fn summary(&self) -> String {
        if self.reasons.is_empty() {
            return "no signal".to_owned();
        }
        self.reasons
            .iter()
            .map(|r| format!("{} {:+.1}", r.signal, r.weight))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether the sender already has a ticket that is not spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    Known,
    New,
}

/// What spamd said about a message, or why it was not asked.
#[derive(Debug, Clone, PartialEq)]
pub enum SpamdAnswer {
    /// No `[spam] spamd` configured, or a check that does not apply (inspect, an agent's mail).
    NotAsked,
    /// Configured but not reachable, or it answered badly: ingest goes on without it.
    Unavailable(String),
    Checked {
        spam: bool,
        score: f64,
        required: f64,
        symbols: Vec<String>,
    },
}

/// The learned classifier's opinion, when it has been trained enough to give one.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierScore {
    /// Probability that the message is spam, from 0 to 1.
    pub probability: f64,
    /// The tokens that pulled hardest towards the verdict, strongest first.
    pub strongest: Vec<String>,
}

/// Everything [`assess`] needs besides the message and the settings.
#[derive(Debug, Clone)]
pub struct Context {
    pub folder: FolderKind,
    pub requester: Requester,
    pub spamd: SpamdAnswer,
    pub classifier: Option<ClassifierScore>,
}

impl Context {
    /// What `inspect` knows: the message alone, as if it arrived in a requests folder from a
    /// new sender, without spamd or the classifier.
    pub fn inspect() -> Context {
        Context {
            folder: FolderKind::Requests,
            requester: Requester::New,
            spamd: SpamdAnswer::NotAsked,
            classifier: None,
        }
    }
}

/// What an upstream flag (X-Spam-Flag, X-Spam-Status "Yes", rspamd's action) or a junk folder
/// adds: as much as the default threshold, so each flags a message on its own.
pub const EXPLICIT_WEIGHT: f64 = 5.0;
/// An upstream score adds `UPSTREAM_SCALE × score / required`, clamped to the range below.
const UPSTREAM_SCALE: f64 = 2.5;
const UPSTREAM_MIN: f64 = -2.5;
const UPSTREAM_MAX: f64 = 5.0;
const SPF_FAIL: f64 = 1.5;
const SPF_SOFTFAIL: f64 = 0.5;
const DKIM_FAIL: f64 = 1.0;
const DMARC_FAIL: f64 = 2.5;
/// spamd's score is added as it is, within these bounds.
const SPAMD_MIN: f64 = -5.0;
const SPAMD_MAX: f64 = 10.0;
/// Matched text shown in a rule's reason is cut to this many characters.
const SNIPPET: usize = 40;
/// At most this many link domains are read from one message.
const MAX_LINK_DOMAINS: usize = 100;

/// Signals that say "spam" outright rather than judge the content; only these can flag a
/// known requester.
fn is_explicit(signal: &str) -> bool {
    matches!(
        signal,
        "junk_folder" | "x_spam_flag" | "x_spam_status" | "rspamd"
    )
}

/// The verdict on one message. `raw` is the message as received (links are also looked for
/// there, so that links only in HTML count too).
pub fn assess(settings: &Settings, mail: &InboundMail, raw: &[u8], context: &Context) -> Verdict {
    let sender = sender_address(mail);
    if let Some(reason) = allow_listed(settings, sender.as_deref()) {
        return Verdict {
            spam: false,
            score: 0.0,
            reasons: vec![reason],
        };
    }
    let mut reasons = Vec::new();
    if context.folder == FolderKind::Junk {
        reasons.push(reason(
            "junk_folder",
            EXPLICIT_WEIGHT,
            "arrived in a junk folder".to_owned(),
        ));
    }
    upstream_headers(mail, &mut reasons);
    rules(settings, mail, raw, &mut reasons);
    match &context.spamd {
        SpamdAnswer::NotAsked => {}
        SpamdAnswer::Unavailable(why) => reasons.push(reason(
            "spamd_unavailable",
            0.0,
            format!("spamd was not consulted: {why}"),
        )),
        SpamdAnswer::Checked {
            spam,
            score,
            required,
            symbols,
        } => {
            let shown: Vec<&str> = symbols.iter().take(12).map(String::as_str).collect();
            reasons.push(reason(
                "spamd",
                score.clamp(SPAMD_MIN, SPAMD_MAX),
                format!(
                    "SpamAssassin: {} score {score:.1} of {required:.1}{}",
                    if *spam { "spam," } else { "not spam," },
                    if shown.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", shown.join(", "))
                    }
                ),
            ));
        }
    }
    if let Some(classifier) = &context.classifier {
        let weight = (classifier.probability - 0.5) * 2.0 * settings.classifier_weight;
        if weight.abs() >= 0.05 {
            reasons.push(reason(
                "classifier",
                weight,
                format!(
                    "learned classifier: {:.0}% spam{}",
                    classifier.probability * 100.0,
                    if classifier.strongest.is_empty() {
                        String::new()
                    } else {
                        format!(" (tokens: {})", classifier.strongest.join(", "))
                    }
                ),
            ));
        }
    }
    if context.requester == Requester::Known {
        let (content, explicit): (Vec<Reason>, Vec<Reason>) = reasons
            .into_iter()
            .partition(|r| !is_explicit(&r.signal) && r.weight != 0.0);
        reasons = explicit;
        let ignored: f64 = content.iter().map(|r| r.weight).sum();
        let mut detail =
            "the sender is already on a ticket that is not spam: content alone does not flag them"
                .to_owned();
        if !content.is_empty() {
            let names: Vec<&str> = content.iter().map(|r| r.signal.as_str()).collect();
            detail.push_str(&format!(
                " ({} not counted: {ignored:+.1})",
                names.join(", ")
            ));
        }
        reasons.push(reason("known_requester", 0.0, detail));
    }
    let score: f64 = reasons.iter().map(|r| r.weight).sum();
    // + 0.0 turns a negative zero into zero, so a message with no signal shows 0.00.
    let score = (score * 100.0).round() / 100.0 + 0.0;
    Verdict {
        spam: score >= settings.threshold,
        score,
        reasons,
    }
}

fn reason(signal: &str, weight: f64, detail: String) -> Reason {
    Reason {
        signal: signal.to_owned(),
        weight: (weight * 100.0).round() / 100.0,
        detail,
    }
}

fn sender_address(mail: &InboundMail) -> Option<String> {
    mail.from
        .as_ref()
        .or(mail.sender.as_ref())
        .map(|m| m.address.to_lowercase())
        .filter(|a| a.contains('@'))
}

fn allow_listed(settings: &Settings, sender: Option<&str>) -> Option<Reason> {
    let sender = sender?;
    if settings.allow_addresses.iter().any(|a| a == sender) {
        return Some(reason(
            "allow_list",
            0.0,
            "the sender's address is on the allow-list".to_owned(),
        ));
    }
    let domain = sender.rsplit_once('@').map(|(_, d)| d)?;
    let listed = settings
        .allow_domains
        .iter()
        .find(|d| domain == d.as_str() || domain.ends_with(&format!(".{d}")))?;
    Some(reason(
        "allow_list",
        0.0,
        format!("the sender's domain is on the allow-list ({listed})"),
    ))
}

fn header<'a>(mail: &'a InboundMail, name: &str) -> impl Iterator<Item = &'a str> {
    mail.headers
        .get(name)
        .into_iter()
        .flatten()
        .map(|v| v.trim())
}

static SCORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bscore=(-?[0-9]+(?:\.[0-9]+)?)").expect("a valid fixed pattern")
});
static REQUIRED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:required|reqd)=(-?[0-9]+(?:\.[0-9]+)?)").expect("a valid fixed pattern")
});
static RSPAMD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*[a-z0-9_-]+\s*:\s*(true|false)\s*\[\s*(-?[0-9]+(?:\.[0-9]+)?)\s*/\s*(-?[0-9]+(?:\.[0-9]+)?)\s*\]")
        .expect("a valid fixed pattern")
});

fn upstream_score(score: f64, required: f64) -> f64 {
    let required = if required > 0.0 { required } else { 5.0 };
    (UPSTREAM_SCALE * score / required).clamp(UPSTREAM_MIN, UPSTREAM_MAX)
}

/// X-Spam-Flag, X-Spam-Status, X-Spam-Score, X-Spamd-Result and Authentication-Results.
fn upstream_headers(mail: &InboundMail, reasons: &mut Vec<Reason>) {
    let flagged = header(mail, "x-spam-flag").any(|v| v.eq_ignore_ascii_case("yes"));
    if flagged {
        reasons.push(reason(
            "x_spam_flag",
            EXPLICIT_WEIGHT,
            "X-Spam-Flag: YES from an upstream filter".to_owned(),
        ));
    }
    let mut scored = false;
    if let Some(status) = header(mail, "x-spam-status").next() {
        let says_yes = status
            .get(..3)
            .is_some_and(|s| s.eq_ignore_ascii_case("yes"));
        if says_yes && !flagged {
            reasons.push(reason(
                "x_spam_status",
                EXPLICIT_WEIGHT,
                "X-Spam-Status: Yes from an upstream filter".to_owned(),
            ));
        }
        let score = number(&SCORE, status);
        if let Some(score) = score {
            let required = number(&REQUIRED, status).unwrap_or(5.0);
            reasons.push(reason(
                "x_spam_score",
                upstream_score(score, required),
                format!("upstream score {score} of {required} (X-Spam-Status)"),
            ));
            scored = true;
        }
    }
    if !scored
        && let Some(score) = header(mail, "x-spam-score")
            .next()
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite())
    {
        reasons.push(reason(
            "x_spam_score",
            upstream_score(score, 5.0),
            format!("upstream score {score} (X-Spam-Score)"),
        ));
    }
    if let Some(captures) = header(mail, "x-spamd-result").find_map(|v| RSPAMD.captures(v)) {
        let action = captures.get(1).map(|m| m.as_str()).unwrap_or_default();
        let score = captures.get(2).and_then(|m| m.as_str().parse::<f64>().ok());
        let required = captures.get(3).and_then(|m| m.as_str().parse::<f64>().ok());
        if action.eq_ignore_ascii_case("true") {
            reasons.push(reason(
                "rspamd",
                EXPLICIT_WEIGHT,
                "rspamd marked it as spam (X-Spamd-Result)".to_owned(),
            ));
        }
        if let (Some(score), Some(required)) = (score, required) {
            reasons.push(reason(
                "rspamd_score",
                upstream_score(score, required),
                format!("rspamd score {score} of {required}"),
            ));
        }
    }
    let mut failures: BTreeSet<(&str, &str)> = BTreeSet::new();
    for value in header(mail, "authentication-results") {
        let value = value.to_ascii_lowercase();
        for clause in value.split(';') {
            let clause = clause.trim();
            for (method, result) in [
                ("spf", "fail"),
                ("spf", "softfail"),
                ("dkim", "fail"),
                ("dmarc", "fail"),
            ] {
                let prefix = format!("{method}={result}");
                let matches = clause.strip_prefix(&prefix).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace() || c == '(')
                });
                if matches {
                    failures.insert((method, result));
                }
            }
        }
    }
    let hard_spf = failures.contains(&("spf", "fail"));
    for (method, result) in failures {
        // A softfail next to a hard fail (in another header) counts once, as the fail.
        if method == "spf" && result == "softfail" && hard_spf {
            continue;
        }
        let weight = match (method, result) {
            ("spf", "fail") => SPF_FAIL,
            ("spf", _) => SPF_SOFTFAIL,
            ("dkim", _) => DKIM_FAIL,
            _ => DMARC_FAIL,
        };
        reasons.push(reason(
            method,
            weight,
            format!("Authentication-Results: {method}={result}"),
        ));
    }
}

fn number(pattern: &Regex, text: &str) -> Option<f64> {
    pattern
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<f64>().ok())
        .filter(|n| n.is_finite())
}

/// The configured rules; each counts at most once per message.
fn rules(settings: &Settings, mail: &InboundMail, raw: &[u8], reasons: &mut Vec<Reason>) {
    if settings.rules.is_empty() {
        return;
    }
    let subject = mail.subject.clone().unwrap_or_default();
    let sender = mail
        .from
        .as_ref()
        .or(mail.sender.as_ref())
        .map(|m| match &m.name {
            Some(name) => format!("{name} <{}>", m.address),
            None => m.address.clone(),
        })
        .unwrap_or_default();
    let domains = link_domains(&mail.text, raw);
    for rule in &settings.rules {
        let found: Option<String> = match rule.target {
            SpamTarget::Subject => rule.pattern.find(&subject).map(|m| m.as_str().to_owned()),
            SpamTarget::Sender => rule.pattern.find(&sender).map(|m| m.as_str().to_owned()),
            SpamTarget::Body => rule.pattern.find(&mail.text).map(|m| m.as_str().to_owned()),
            SpamTarget::LinkDomain => domains
                .iter()
                .find(|d| rule.pattern.is_match(d))
                .map(|d| d.to_string()),
        };
        if let Some(found) = found {
            let snippet: String = found
                .chars()
                .take(SNIPPET)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            reasons.push(reason(
                &format!("rule:{}", rule.name),
                rule.weight,
                format!("{} matched {snippet:?}", rule.target.as_str()),
            ));
        }
    }
}

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bhttps?://(?:[^/\s@]*@)?([a-z0-9\p{L}](?:[a-z0-9\p{L}.-]*[a-z0-9\p{L}])?)")
        .expect("a valid fixed pattern")
});

/// The domains named in links of the text and of the raw message (HTML hrefs included),
/// lower-cased, in order of first appearance.
pub fn link_domains(text: &str, raw: &[u8]) -> Vec<String> {
    let raw = String::from_utf8_lossy(raw);
    let mut seen = BTreeSet::new();
    let mut domains = Vec::new();
    for source in [text, raw.as_ref()] {
        for captures in LINK.captures_iter(source) {
            let Some(domain) = captures.get(1) else {
                continue;
            };
            let domain = domain.as_str().trim_end_matches('.').to_lowercase();
            if domain.contains('.') && seen.insert(domain.clone()) {
                domains.push(domain);
                if domains.len() >= MAX_LINK_DOMAINS {
                    return domains;
                }
            }
        }
    }
    domains
}

#[cfg(test)]
mod tests;

//! The authentication verdict: one per message, and everything that changes state because of a
//! message (a relayed answer, a command, an out-of-office answer that marks someone away, a
//! delivery report that suppresses an address, a merge) consults it. Pure: no I/O, no clock.
//!
//! The rules:
//! - the message has exactly one From address, in one From field (RFC 5322 §3.6.2 allows a
//!   list only with a Sender field, and the Sender field never stands in for From here);
//! - SPF, DKIM and DMARC results are read only from Authentication-Results fields (RFC 8601)
//!   whose authserv-id is one of `[auth] trusted_authserv_ids`: anybody can write such a field
//!   into a message, and only the receiving server's own is evidence;
//! - a trusted `dmarc=fail`, or an `spf=fail` for the From domain with no DKIM signature of that
//!   domain passing, fails the message; `dmarc=pass`, or a passing SPF or DKIM result aligned
//!   with the From domain, passes it;
//! - without a trusted result the message is [`Verdict::Unverified`], or fails when
//!   `[auth] without_results = "fail"`.

use crate::config::{Auth, WithoutResults};
use crate::mail::parse::{Anomaly, InboundMail};

/// What casemail believes about who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiving server authenticated the From domain (what passed, for the record).
    Pass(String),
    /// Nothing says either way: tokens and registered addresses decide.
    Unverified,
    /// The message failed authentication, or its From cannot be authenticated at all: it
    /// changes nothing, and whoever reads it is warned.
    Fail(String),
}

impl Verdict {
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }

    /// The reason a failing message failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Verdict::Fail(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Anomalies of a stored message that start with this are warnings: the notification that
/// carries the message shows them in a line of their own above everything else.
pub(crate) const WARNING: &str = "warning: ";

/// The warning on a message that failed authentication.
pub(crate) fn failed_warning(reason: &str) -> String {
    format!(
        "{WARNING}this message failed sender authentication ({reason}); it may not come from the address shown"
    )
}

/// The warning on a message that joined a ticket by a header match (`how`) from an address
/// that is not a participant of the ticket.
pub(crate) fn stranger_warning(how: &str) -> String {
    format!(
        "{WARNING}this message joined the ticket by {how} from an address that has not written in it before; it may not come from the requester"
    )
}

/// The warnings among a stored message's anomalies, without the marker, in order.
pub(crate) fn warnings(anomalies: &[String]) -> Vec<&str> {
    anomalies
        .iter()
        .filter_map(|a| a.strip_prefix(WARNING))
        .collect()
}

/// The verdict on one message.
pub(crate) fn verdict(mail: &InboundMail, settings: &Auth) -> Verdict {
    let several_fields = mail
        .anomalies
        .iter()
        .any(|a| matches!(a, Anomaly::DuplicateHeader { name, .. } if name == "From"));
    if several_fields {
        return Verdict::Fail("the message has several From fields".to_owned());
    }
    if mail.from_count > 1 {
        return Verdict::Fail("the From field holds several addresses".to_owned());
    }
    let Some(from) = mail.from.as_ref().map(|m| m.address.as_str()) else {
        return Verdict::Fail("the message has no usable From address".to_owned());
    };
    let from_domain = from
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default();
    let results: Vec<Results> = mail
        .headers
        .get("authentication-results")
        .into_iter()
        .flatten()
        .filter_map(|value| Results::parse(value))
        .filter(|results| {
            settings
                .trusted_authserv_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&results.authserv_id))
        })
        .collect();
    if results.is_empty() {
        return match settings.without_results {
            WithoutResults::Unverified => Verdict::Unverified,
            WithoutResults::Fail => Verdict::Fail(
                "no Authentication-Results from the receiving server (auth.without_results = \"fail\")"
                    .to_owned(),
            ),
        };
    }
    let all = || results.iter().flat_map(|r| r.methods.iter());
    let about_from = |method: &Method, property: &str| {
        method
            .property(property)
            .is_none_or(|domain| aligned(&domain_of(domain), &from_domain))
    };
    if all().any(|m| m.name == "dmarc" && m.result == "fail" && about_from(m, "header.from")) {
        return Verdict::Fail(format!(
            "the receiving server recorded dmarc=fail for {from_domain}"
        ));
    }
    let dkim_pass = all().any(|m| {
        m.name == "dkim"
            && m.result == "pass"
            && m.property("header.d")
                .or_else(|| m.property("header.i"))
                .is_some_and(|d| aligned(&domain_of(d), &from_domain))
    });
    let spf = |result: &str| {
        all().any(|m| {
            m.name == "spf"
                && m.result == result
                && m.property("smtp.mailfrom")
                    .or_else(|| m.property("smtp.helo"))
                    .is_some_and(|d| aligned(&domain_of(d), &from_domain))
        })
    };
    if spf("fail") && !dkim_pass {
        return Verdict::Fail(format!(
            "the receiving server recorded spf=fail for {from_domain} and no DKIM signature of it passed"
        ));
    }
    if all().any(|m| m.name == "dmarc" && m.result == "pass" && about_from(m, "header.from")) {
        return Verdict::Pass("dmarc=pass".to_owned());
    }
    if dkim_pass {
        return Verdict::Pass("dkim=pass".to_owned());
    }
    if spf("pass") {
        return Verdict::Pass("spf=pass".to_owned());
    }
    Verdict::Unverified
}

/// `user@example.org` or `example.org` → `example.org`.
fn domain_of(value: &str) -> String {
    value
        .rsplit_once('@')
        .map_or(value, |(_, domain)| domain)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Relaxed alignment (RFC 7489 §3.1): the same domain, or one inside the other. Without the
/// public suffix list this is a little stricter than DMARC's organisational domains.
fn aligned(domain: &str, from_domain: &str) -> bool {
    !domain.is_empty()
        && (domain == from_domain
            || from_domain.ends_with(&format!(".{domain}"))
            || domain.ends_with(&format!(".{from_domain}")))
}

/// One Authentication-Results field (RFC 8601 §2.2): the authserv-id and its results.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Results {
    authserv_id: String,
    methods: Vec<Method>,
}

/// `method=result` with its properties (`header.from=example.org`), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Method {
    name: String,
    result: String,
    properties: Vec<(String, String)>,
}

impl Method {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Results {
    fn parse(value: &str) -> Option<Results> {
        let text = without_comments(value).to_ascii_lowercase();
        let mut clauses = text.split(';');
        // The authserv-id, optionally followed by a version number.
        let authserv_id = clauses
            .next()?
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_owned();
        let mut methods = Vec::new();
        for clause in clauses {
            // CFWS may surround the '=' signs.
            let compact = EQUALS.replace_all(clause.trim(), "=");
            let mut words = compact.split_whitespace();
            let Some((name, result)) = words.next().and_then(|w| w.split_once('=')) else {
                continue;
            };
            let name = name.split('/').next().unwrap_or(name).to_owned();
            let properties = words
                .filter_map(|w| w.split_once('='))
                .filter(|(key, _)| key.contains('.'))
                .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
                .collect();
            methods.push(Method {
                name,
                result: result.to_owned(),
                properties,
            });
        }
        Some(Results {
            authserv_id,
            methods,
        })
    }
}

static EQUALS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\s*=\s*").expect("the equals pattern is valid")
});

/// The text without RFC 5322 comments (nested parentheses), which may hold anything.
fn without_comments(value: &str) -> String {
    let mut depth = 0usize;
    let mut escaped = false;
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if depth > 0 {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '(') => depth += 1,
                (false, ')') => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                out.push(' ');
            }
            continue;
        }
        if c == '(' {
            depth = 1;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;

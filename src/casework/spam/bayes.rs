//! The learned classifier: naive Bayes over the words of a message, in the style of Paul
//! Graham's "A Plan for Spam" with Gary Robinson's smoothing of rare words.
//!
//! For each token, the store keeps in how many spam and how many ham messages it appeared
//! (`bayes/t/…`), and how many messages of each kind were learned (`bayes/docs`). A token's spam
//! probability is Robinson's f(w) = (s·x + n·p(w)) / (s + n) with x = 0.5 and s = 1, where
//! p(w) compares the token's frequency in spam with its frequency in ham and n is how often it
//! was seen; the most telling tokens are combined as independent evidence (the "naive" part).
//! Each learned message is remembered by its dedupe key (`bayes/m/…`), so learning it again is a
//! no-op and learning it with the other label moves its counts rather than doubling them.
//! Erasing a person unlearns their stored messages ([`forget`]): the tokens are recomputed
//! from the stored message, the same function that learned them, so no per-message token list
//! is kept.
//!
//! Tokenising and scoring are pure; the store functions are the only I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::mail::parse::InboundMail;
use crate::model::StoredMessage;
pub use crate::model::{Counts, Docs, Label};
use crate::store::{self, Store, TxResult, WriteTx};

use super::ClassifierScore;

/// One message to learn, as it travels over the control socket: its dedupe key and tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub key: String,
    pub tokens: Vec<String>,
}

/// The classifier gives no opinion until it has learned this many messages of each kind.
pub const MIN_PER_CLASS: u64 = 5;
/// At most this many distinct tokens are taken from one message.
const MAX_TOKENS: usize = 1500;
/// Tokens shorter or longer than this (in characters) are skipped.
const MIN_LEN: usize = 2;
const MAX_LEN: usize = 30;
/// How many of the most telling tokens are combined.
const INTERESTING: usize = 40;
/// Tokens whose probability is this close to 0.5 say nothing and are skipped.
const NEUTRAL_BAND: f64 = 0.1;
/// Robinson's strength of the background belief, and the belief itself.
const ROBINSON_S: f64 = 1.0;
const ROBINSON_X: f64 = 0.5;

/// The tokens of a parsed message.
pub fn tokens_of_mail(mail: &InboundMail) -> BTreeSet<String> {
    let from = mail.from.as_ref().or(mail.sender.as_ref());
    tokens(
        mail.subject.as_deref(),
        from.map(|m| m.address.as_str()),
        from.and_then(|m| m.name.as_deref()),
        &mail.text,
        mail.attachments.iter().map(|a| a.content_type.as_str()),
    )
}

/// The tokens of a stored message (for learning from a ticket by `#spam` or `spam release`).
pub fn tokens_of_stored(message: &StoredMessage) -> BTreeSet<String> {
    tokens(
        message.subject.as_deref(),
        message.from.as_deref(),
        message.from_name.as_deref(),
        &message.text,
        message.attachments.iter().map(|a| a.content_type.as_str()),
    )
}

fn tokens<'a>(
    subject: Option<&str>,
    from: Option<&str>,
    from_name: Option<&str>,
    text: &str,
    attachment_types: impl Iterator<Item = &'a str>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let add = |token: String, out: &mut BTreeSet<String>| {
        if out.len() < MAX_TOKENS {
            out.insert(token);
        }
    };
    if let Some(domain) = from.and_then(|a| a.rsplit_once('@')).map(|(_, d)| d) {
        add(format!("from:{}", domain.to_lowercase()), &mut out);
    }
    for word in words(from_name.unwrap_or_default()) {
        add(format!("name:{word}"), &mut out);
    }
    for word in words(subject.unwrap_or_default()) {
        add(format!("subject:{word}"), &mut out);
    }
    for kind in attachment_types {
        add(format!("type:{}", kind.to_lowercase()), &mut out);
    }
    for domain in super::link_domains(text, b"") {
        add(format!("url:{domain}"), &mut out);
    }
    for word in words(text) {
        add(word, &mut out);
    }
    out
}

/// Lower-cased words: runs of letters, digits, `$`, `€`, `'` and `!`, in any script.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '$' | '€' | '\'' | '!')))
        .map(|w| w.trim_matches('\''))
        .filter(|w| {
            let len = w.chars().count();
            (MIN_LEN..=MAX_LEN).contains(&len)
        })
        .map(str::to_lowercase)
}

/// The spam probability of a message from its tokens' counts, or `None` while the classifier
/// has learned too little.
pub fn score(docs: Docs, counted: &[(String, Counts)]) -> Option<ClassifierScore> {
    if docs.spam < MIN_PER_CLASS || docs.ham < MIN_PER_CLASS {
        return None;
    }
    let mut telling: Vec<(&str, f64)> = counted
        .iter()
        .filter(|(_, c)| c.spam > 0 || c.ham > 0)
        .map(|(token, c)| (token.as_str(), token_probability(docs, *c)))
        .filter(|(_, f)| (f - 0.5).abs() >= NEUTRAL_BAND)
        .collect();
    // Most telling first; ties broken by the token so the result does not depend on order.
    telling.sort_by(|a, b| {
        (b.1 - 0.5)
            .abs()
            .total_cmp(&(a.1 - 0.5).abs())
            .then_with(|| a.0.cmp(b.0))
    });
    telling.truncate(INTERESTING);
    let log_odds: f64 = telling
        .iter()
        .map(|(_, f)| {
            let f = f.clamp(0.01, 0.99);
            (f / (1.0 - f)).ln()
        })
        .sum();
    let probability = 1.0 / (1.0 + (-log_odds).exp());
    let towards_spam = probability >= 0.5;
    let strongest = telling
        .iter()
        .filter(|(_, f)| (*f >= 0.5) == towards_spam)
        .take(5)
        .map(|(token, _)| (*token).to_owned())
        .collect();
    Some(ClassifierScore {
        probability: (probability * 10_000.0).round() / 10_000.0,
        strongest,
    })
}

fn token_probability(docs: Docs, counts: Counts) -> f64 {
    let spam_freq = f64::from(counts.spam) / docs.spam.max(1) as f64;
    let ham_freq = f64::from(counts.ham) / docs.ham.max(1) as f64;
    let p = spam_freq / (spam_freq + ham_freq);
    let n = f64::from(counts.spam) + f64::from(counts.ham);
    (ROBINSON_S * ROBINSON_X + n * p) / (ROBINSON_S + n)
}

/// The classifier's opinion of a message, read from the store.
pub fn classify(
    store: &Store,
    tokens: &BTreeSet<String>,
) -> Result<Option<ClassifierScore>, store::Error> {
    let docs = store.classifier_docs()?;
    if docs.spam < MIN_PER_CLASS || docs.ham < MIN_PER_CLASS {
        return Ok(None);
    }
    let mut counted = Vec::with_capacity(tokens.len());
    for token in tokens {
        if let Some(counts) = store.classifier_counts(token)? {
            counted.push((token.clone(), counts));
        }
    }
    Ok(score(docs, &counted))
}

/// What learning one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    New,
    /// It had been learned with the other label; its counts moved.
    Relabelled,
    /// It had been learned with this label already.
    Unchanged,
}

/// Learns one message inside a transaction.
pub fn learn(tx: &WriteTx<'_>, sample: &Sample, label: Label) -> TxResult<Learned> {
    let previous = tx.trained_label(&sample.key)?;
    if previous == Some(label) {
        return Ok(Learned::Unchanged);
    }
    let mut docs = tx.classifier_docs()?;
    let unique: BTreeSet<&String> = sample.tokens.iter().collect();
    for token in unique {
        let mut counts = tx.classifier_counts(token)?.unwrap_or_default();
        match previous {
            Some(Label::Spam) => counts.spam = counts.spam.saturating_sub(1),
            Some(Label::Ham) => counts.ham = counts.ham.saturating_sub(1),
            None => {}
        }
        match label {
            Label::Spam => counts.spam = counts.spam.saturating_add(1),
            Label::Ham => counts.ham = counts.ham.saturating_add(1),
        }
        tx.set_classifier_counts(token, counts)?;
    }
    match previous {
        Some(Label::Spam) => docs.spam = docs.spam.saturating_sub(1),
        Some(Label::Ham) => docs.ham = docs.ham.saturating_sub(1),
        None => {}
    }
    match label {
        Label::Spam => docs.spam = docs.spam.saturating_add(1),
        Label::Ham => docs.ham = docs.ham.saturating_add(1),
    }
    tx.set_classifier_docs(docs)?;
    tx.set_trained_label(&sample.key, label)?;
    Ok(if previous.is_some() {
        Learned::Relabelled
    } else {
        Learned::New
    })
}

/// Unlearns a stored message that is being erased: its tokens, recomputed from its stored
/// form exactly as [`learn_ticket`] computed them, are subtracted from the counts it was
/// learned with, a token no learned message holds any more disappears, and the record of the
/// message (`bayes/m/{dedupe key}`, which holds its Message-ID) goes. Returns whether the
/// message had been learned. A message taught only from a file (`spam train`) was never stored
/// and is not reached.
pub fn forget(tx: &WriteTx<'_>, message: &StoredMessage) -> TxResult<bool> {
    let key = message.key.to_index_string();
    let Some(label) = tx.trained_label(&key)? else {
        return Ok(false);
    };
    for token in tokens_of_stored(message) {
        if let Some(mut counts) = tx.classifier_counts(&token)? {
            match label {
                Label::Spam => counts.spam = counts.spam.saturating_sub(1),
                Label::Ham => counts.ham = counts.ham.saturating_sub(1),
            }
            tx.set_classifier_counts(&token, counts)?;
        }
    }
    let mut docs = tx.classifier_docs()?;
    match label {
        Label::Spam => docs.spam = docs.spam.saturating_sub(1),
        Label::Ham => docs.ham = docs.ham.saturating_sub(1),
    }
    tx.set_classifier_docs(docs)?;
    tx.remove_trained_label(&key)?;
    Ok(true)
}

/// Learns every message that came into a ticket from outside (requester mail), with `label`.
pub fn learn_ticket(
    tx: &WriteTx<'_>,
    ticket: &crate::model::Ticket,
    label: Label,
) -> TxResult<usize> {
    let mut learned = 0;
    for seq in 0..ticket.message_count {
        let Some(message) = tx.message(ticket.id, seq)? else {
            continue;
        };
        if message.direction != crate::model::Direction::In {
            continue;
        }
        let sample = Sample {
            key: message.key.to_index_string(),
            tokens: tokens_of_stored(&message).into_iter().collect(),
        };
        if learn(tx, &sample, label)? != Learned::Unchanged {
            learned += 1;
        }
    }
    Ok(learned)
}

//! `casemail-bench spam`: precision and recall of the learned classifier, of the whole verdict
//! and, when spamd is reachable, of SpamAssassin, on the synthetic labelled corpus
//! (`casemail::casework::spam::corpus`). The classifier learns one half of the corpus and is judged on
//! the other half, so nothing it is judged on was learned.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use casemail::casework::spam::bayes::{self, Label};
use casemail::casework::spam::{self, Context, Requester, SpamdAnswer, corpus, held};
use casemail::config::Spam as Settings;
use casemail::mail::parse::{ParseLimits, parse};
use casemail::model::FolderKind;
use casemail::store::Store;

/// Counts of a binary classification where "spam" is the positive class.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    true_spam: u32,
    false_spam: u32,
    missed_spam: u32,
    true_ham: u32,
}

impl Tally {
    fn add(&mut self, predicted_spam: bool, label: Label) {
        match (predicted_spam, label) {
            (true, Label::Spam) => self.true_spam += 1,
            (true, Label::Ham) => self.false_spam += 1,
            (false, Label::Spam) => self.missed_spam += 1,
            (false, Label::Ham) => self.true_ham += 1,
        }
    }

    fn line(&self, what: &str) -> String {
        let flagged = f64::from(self.true_spam + self.false_spam);
        let spam = f64::from(self.true_spam + self.missed_spam);
        let precision = if flagged > 0.0 {
            f64::from(self.true_spam) / flagged
        } else {
            0.0
        };
        let recall = if spam > 0.0 {
            f64::from(self.true_spam) / spam
        } else {
            0.0
        };
        format!(
            "{what}: precision {precision:.3}, recall {recall:.3} ({} spam caught, {} missed, {} ham flagged of {})",
            self.true_spam,
            self.missed_spam,
            self.false_spam,
            self.false_spam + self.true_ham
        )
    }
}

/// `dir` is an empty scratch directory for the classifier's store.
pub(crate) fn run(
    dir: &std::path::Path,
    count: usize,
    seed: u64,
    spamd: Option<SocketAddr>,
) -> anyhow::Result<()> {
    anyhow::ensure!(count >= 500, "--count must be at least 500");
    let messages = corpus::generate(seed, count);
    let (train, test) = messages.split_at(count / 2);
    let store = Store::open(dir).context("open the temporary store")?;
    let mut spam_samples = Vec::new();
    let mut ham_samples = Vec::new();
    for message in train {
        let sample = held::sample(&message.raw);
        match message.label {
            Label::Spam => spam_samples.push(sample),
            Label::Ham => ham_samples.push(sample),
        }
    }
    let learning = Instant::now();
    held::train(&store, &spam_samples, &ham_samples)?;
    let learned_in = learning.elapsed();
    let test_spam = test.iter().filter(|m| m.label == Label::Spam).count();
    println!(
        "spam corpus: {count} synthetic messages (seed {seed}); learned {} spam and {} ham in {:.2} s; judged {} ({} spam, {} ham)",
        spam_samples.len(),
        ham_samples.len(),
        learned_in.as_secs_f64(),
        test.len(),
        test_spam,
        test.len() - test_spam
    );

    let settings = Settings::default();
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let mut classifier = Tally::default();
    let mut verdict = Tally::default();
    let mut assassin = Tally::default();
    let mut with_spamd = Tally::default();
    let mut spamd_failures = 0;
    let mut judging = Duration::ZERO;
    let mut asking = Duration::ZERO;
    for message in test {
        let started = Instant::now();
        let mail = parse(&message.raw, &ParseLimits::default());
        let score = bayes::classify(&store, &bayes::tokens_of_mail(&mail))?;
        classifier.add(
            score.as_ref().is_some_and(|s| s.probability >= 0.5),
            message.label,
        );
        let context = Context {
            folder: FolderKind::Requests,
            requester: Requester::New,
            spamd: SpamdAnswer::NotAsked,
            classifier: score.clone(),
        };
        verdict.add(
            spam::assess(&settings, &mail, &message.raw, &context).spam,
            message.label,
        );
        judging += started.elapsed();
        if let Some(address) = spamd {
            let started = Instant::now();
            let answer = runtime.block_on(casemail::spamd::check(
                address,
                &message.raw,
                Duration::from_secs(30),
            ));
            asking += started.elapsed();
            match &answer {
                SpamdAnswer::Checked { spam, .. } => assassin.add(*spam, message.label),
                _ => spamd_failures += 1,
            }
            let context = Context {
                spamd: answer,
                ..context
            };
            with_spamd.add(
                spam::assess(&settings, &mail, &message.raw, &context).spam,
                message.label,
            );
        }
    }
    println!(
        "{}",
        classifier.line("learned classifier (probability >= 0.5)")
    );
    println!(
        "{}",
        verdict.line(&format!(
            "whole verdict (default settings, threshold {})",
            settings.threshold
        ))
    );
    println!(
        "verdict time: {:.2} ms per message (parse, classify, assess)",
        judging.as_secs_f64() * 1000.0 / test.len() as f64
    );
    match spamd {
        None => println!("spamassassin: not measured (give --spamd 127.0.0.1:783)"),
        Some(address) => {
            println!(
                "{}",
                assassin.line(&format!("spamassassin (spamd at {address}, its own rules)"))
            );
            println!("{}", with_spamd.line("whole verdict with spamd"));
            println!(
                "spamd time: {:.1} ms per message; {spamd_failures} checks failed",
                asking.as_secs_f64() * 1000.0 / test.len() as f64
            );
        }
    }
    Ok(())
}

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use expect_test::expect_file;

use super::bayes::{self, Label, Sample};
use super::*;
use crate::mail::parse::{ParseLimits, parse};
use crate::store::Store;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spam")
}

/// The `[spam]` rules and allow-lists the fixtures are judged with.
fn fixture_settings() -> crate::config::Spam {
    let path = fixture_dir().join("config.toml");
    crate::config::load_with_env(&path, &HashMap::new())
        .expect("the fixtures' config is valid")
        .spam
}

/// A store whose classifier learned 400 messages of the synthetic corpus.
struct Trained {
    _dir: tempfile::TempDir,
    store: Store,
}

static TRAINED: LazyLock<Trained> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut spam = Vec::new();
    let mut ham = Vec::new();
    for message in corpus::generate(7, 400) {
        let sample = held::sample(&message.raw);
        match message.label {
            Label::Spam => spam.push(sample),
            Label::Ham => ham.push(sample),
        }
    }
    held::train(&store, &spam, &ham).unwrap();
    Trained { _dir: dir, store }
});

/// Reads the context lines of an `.expect` file (before `---`).
fn context(head: &str, mail: &crate::mail::parse::InboundMail) -> Context {
    let mut context = Context::inspect();
    for line in head.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .expect("context lines are `key: value`");
        let value = value.trim();
        match key.trim() {
            "folder" => {
                context.folder = match value {
                    "junk" => crate::model::FolderKind::Junk,
                    "requests" => crate::model::FolderKind::Requests,
                    other => panic!("unknown folder {other}"),
                }
            }
            "requester" => {
                context.requester = match value {
                    "known" => Requester::Known,
                    "new" => Requester::New,
                    other => panic!("unknown requester {other}"),
                }
            }
            "spamd" => {
                context.spamd = if let Some(why) = value.strip_prefix("unavailable") {
                    SpamdAnswer::Unavailable(why.trim().to_owned())
                } else {
                    // "checked True ; 7.3 / 5.0" then the symbols, as spamd would answer
                    let answer = value.strip_prefix("answer").expect("spamd: answer …");
                    let answer = answer.replace("\\r\\n", "\r\n");
                    crate::spamd::parse_answer(&answer).expect("a valid spamd answer")
                }
            }
            "classifier" => {
                assert_eq!(value, "trained");
                let tokens = bayes::tokens_of_mail(mail);
                context.classifier = bayes::classify(&TRAINED.store, &tokens).unwrap();
            }
            other => panic!("unknown context key {other}"),
        }
    }
    context
}

fn render(verdict: &Verdict) -> String {
    let mut out = format!("spam: {}\nscore: {:.2}\n", verdict.spam, verdict.score);
    for reason in &verdict.reasons {
        out.push_str(&format!(
            "reason: {} {:+.2} {}\n",
            reason.signal, reason.weight, reason.detail
        ));
    }
    out
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

/// Compares `actual` with the `.expect` file at `path` through expect-test, which writes it
/// instead when `UPDATE_EXPECT=1` is set. A difference is printed (by expect-test) and counted
/// rather than ending the test, so that one run shows every fixture that differs.
fn matches_expect_file(path: PathBuf, actual: &str) -> bool {
    let expected = expect_file![path];
    std::panic::catch_unwind(|| expected.assert_eq(actual)).is_ok()
}

#[test]
fn golden_fixtures() {
    let settings = fixture_settings();
    let files = fixtures();
    assert!(files.len() >= 20, "the spam fixtures are missing");
    let mut failures = Vec::new();
    let mut signals: BTreeSet<String> = BTreeSet::new();
    for eml in &files {
        let expect_path = eml.with_extension("expect");
        let expect = std::fs::read_to_string(&expect_path).unwrap_or_default();
        // The context lines are input, kept as they are; the verdict under `---` is compared.
        let head = expect.split_once("---\n").map_or("", |(head, _)| head);
        let raw = std::fs::read(eml).unwrap();
        // LF and CRLF give the same verdict.
        let crlf = raw
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect::<Vec<u8>>();
        let mut outputs = Vec::new();
        for bytes in [&raw, &crlf] {
            let mail = parse(bytes, &ParseLimits::default());
            let context = context(head, &mail);
            outputs.push(assess(&settings, &mail, bytes, &context));
        }
        let verdict = &outputs[0];
        assert_eq!(
            render(verdict),
            render(&outputs[1]),
            "{}: CRLF changes the verdict",
            eml.display()
        );
        signals.extend(verdict.reasons.iter().map(|r| r.signal.clone()));
        let actual = format!("{head}---\n{}", render(verdict));
        if !matches_expect_file(expect_path, &actual) {
            failures.push(eml.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixtures differ, diffs above (run with UPDATE_EXPECT=1 to bless):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every signal is covered by at least one fixture.
    for signal in [
        "allow_list",
        "junk_folder",
        "x_spam_flag",
        "x_spam_status",
        "x_spam_score",
        "rspamd",
        "rspamd_score",
        "spf",
        "dkim",
        "dmarc",
        "rule:pharma_subject",
        "rule:lottery_sender",
        "rule:next_of_kin",
        "rule:bad_links",
        "spamd",
        "spamd_unavailable",
        "classifier",
        "known_requester",
    ] {
        assert!(
            signals.contains(signal),
            "no fixture covers {signal}: {signals:?}"
        );
    }
}

#[test]
fn every_expect_file_has_a_message() {
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expect") {
            assert!(path.with_extension("eml").exists(), "{}", path.display());
        }
    }
}

#[test]
fn spamd_answers_are_read() {
    let answer = crate::spamd::parse_answer(
        "SPAMD/1.1 0 EX_OK\r\nContent-length: 27\r\nSpam: True ; 7.3 / 5.0\r\n\r\nBAYES_99,HTML_MESSAGE,URIBL\r\n",
    )
    .unwrap();
    assert_eq!(
        answer,
        SpamdAnswer::Checked {
            spam: true,
            score: 7.3,
            required: 5.0,
            symbols: vec![
                "BAYES_99".to_owned(),
                "HTML_MESSAGE".to_owned(),
                "URIBL".to_owned()
            ],
        }
    );
    let refused = crate::spamd::parse_answer("SPAMD/1.0 76 Bad header line: x\r\n").unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    assert!(crate::spamd::parse_answer("HTTP/1.1 200 OK\r\n\r\n").is_err());
    assert!(crate::spamd::parse_answer("SPAMD/1.1 0 EX_OK\r\n\r\n").is_err());
}

#[tokio::test]
async fn spamd_that_is_down_is_unavailable_not_an_error() {
    // A port nothing listens on: bind, learn the port, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let answer = crate::spamd::check(
        address,
        b"Subject: x\n\nhello\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(answer, SpamdAnswer::Unavailable(ref why) if why.contains("cannot connect")),
        "{answer:?}"
    );
    let big = vec![b'a'; crate::spamd::MAX_SIZE + 1];
    let answer = crate::spamd::check(address, &big, std::time::Duration::from_secs(5)).await;
    assert!(
        matches!(answer, SpamdAnswer::Unavailable(ref why) if why.contains("larger")),
        "{answer:?}"
    );
}

fn sample(key: &str, tokens: &[&str]) -> Sample {
    Sample {
        key: key.to_owned(),
        tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn learning_twice_counts_once_and_relabelling_moves_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let message = sample("mid:a@x", &["pills", "cheap"]);
    let first = held::train(&store, std::slice::from_ref(&message), &[]).unwrap();
    assert_eq!(first.spam, 1);
    let again = held::train(&store, std::slice::from_ref(&message), &[]).unwrap();
    assert_eq!(again.unchanged, 1);
    assert_eq!(store.classifier_docs().unwrap().spam, 1);
    assert_eq!(
        store.classifier_counts("pills").unwrap(),
        Some(bayes::Counts { spam: 1, ham: 0 })
    );
    let flipped = held::train(&store, &[], std::slice::from_ref(&message)).unwrap();
    assert_eq!(flipped.relabelled, 1);
    let docs = store.classifier_docs().unwrap();
    assert_eq!((docs.spam, docs.ham), (0, 1));
    assert_eq!(
        store.classifier_counts("pills").unwrap(),
        Some(bayes::Counts { spam: 0, ham: 1 })
    );
}

#[test]
fn an_untrained_classifier_has_no_opinion() {
    let few = bayes::Docs { spam: 4, ham: 100 };
    let counted = vec![("pills".to_owned(), bayes::Counts { spam: 4, ham: 0 })];
    assert!(bayes::score(few, &counted).is_none());
    let enough = bayes::Docs { spam: 5, ham: 100 };
    let score = bayes::score(enough, &counted).unwrap();
    assert!(score.probability > 0.5, "{score:?}");
    assert_eq!(score.strongest, vec!["pills".to_owned()]);
}

#[test]
fn the_classifier_separates_the_synthetic_corpus() {
    // Trained on one seed, judged on another: a real measure, not a memorised one.
    let mut right = 0;
    let test = corpus::generate(99, 200);
    for message in &test {
        let mail = parse(&message.raw, &ParseLimits::default());
        let score = bayes::classify(&TRAINED.store, &bayes::tokens_of_mail(&mail))
            .unwrap()
            .expect("trained");
        if (score.probability >= 0.5) == (message.label == Label::Spam) {
            right += 1;
        }
    }
    assert!(right >= 180, "only {right} of 200 right");
}

#[test]
fn the_corpus_is_deterministic_and_mixed() {
    let a = corpus::generate(1, 500);
    let b = corpus::generate(1, 500);
    assert_eq!(
        a.iter().map(|m| m.raw.clone()).collect::<Vec<_>>(),
        b.iter().map(|m| m.raw.clone()).collect::<Vec<_>>()
    );
    let spam = a.iter().filter(|m| m.label == Label::Spam).count();
    assert!((150..350).contains(&spam), "{spam} spam of 500");
    let kinds: BTreeSet<&str> = a.iter().map(|m| m.kind).collect();
    assert!(kinds.len() >= 13, "{kinds:?}");
}

#[test]
fn link_domains_come_from_text_and_html() {
    let raw = b"Content-Type: text/html\n\n<a href=3D\"https://Evil.Example/x\">x</a>";
    let domains = link_domains(
        "see http://a.example/ and https://user@b.example:8080/",
        raw,
    );
    assert_eq!(domains, vec!["a.example", "b.example", "evil.example"]);
}

#[test]
fn purge_removes_old_spam_and_nothing_else() {
    use crate::model::{Actor, Direction, Event, Status, StoredMessage, Ticket};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now: jiff::Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
    let old: jiff::Timestamp = "2026-10-01T12:00:00Z".parse().unwrap();
    let make = |status: Status, updated: jiff::Timestamp, key: &str| {
        store
            .write(|tx| {
                let id = tx.allocate_ticket_id()?;
                let mut ticket = Ticket {
                    id,
                    status,
                    subject: "s".to_owned(),
                    requester: "x@y.example".to_owned(),
                    requester_name: None,
                    owner: None,
                    assigned_at: None,
                    last_agent_reply: None,
                    merged_into: None,
                    participants: BTreeSet::new(),
                    flags: BTreeSet::new(),
                    created: updated,
                    updated,
                    message_count: 1,
                    event_count: 0,
                };
                let mail = parse(
                    format!("Message-ID: <{key}>\nSubject: s\n\nbody\n").as_bytes(),
                    &ParseLimits::default(),
                );
                let message = StoredMessage {
                    ticket: id,
                    seq: 0,
                    direction: Direction::In,
                    key: mail.key.clone(),
                    message_id: mail.message_id.clone(),
                    from: None,
                    from_name: None,
                    to: vec![],
                    cc: vec![],
                    subject: None,
                    date: None,
                    received: updated,
                    in_reply_to: vec![],
                    references: vec![],
                    text: "body".to_owned(),
                    attachments: vec![],
                    anomalies: vec![],
                    sources: vec![],
                };
                tx.put_message(&message, Some(b"raw"))?;
                tx.add_event(
                    &mut ticket,
                    &Event {
                        at: updated,
                        actor: Actor::System,
                        kind: "created".to_owned(),
                        detail: String::new(),
                    },
                )?;
                tx.put_ticket(&ticket)?;
                Ok(id)
            })
            .unwrap()
    };
    let old_spam = make(Status::Spam, old, "a@x");
    let new_spam = make(Status::Spam, now, "b@x");
    let old_open = make(Status::Open, old, "c@x");
    let purged =
        held::purge_expired(&store, std::time::Duration::from_secs(30 * 86400), now).unwrap();
    assert_eq!(purged, vec![old_spam]);
    assert!(store.ticket(old_spam).unwrap().is_none());
    assert!(store.raw(old_spam, 0).unwrap().is_none());
    assert!(store.events(old_spam).unwrap().is_empty());
    assert!(store.messages(old_spam).unwrap().is_empty());
    assert!(
        !store
            .tickets_of_requester("x@y.example")
            .unwrap()
            .contains(&old_spam)
    );
    let id = crate::ids::MessageId::parse("<a@x>").unwrap();
    assert!(store.find_message_id(&id).unwrap().is_none());
    assert!(store.ticket(new_spam).unwrap().is_some());
    assert!(store.ticket(old_open).unwrap().is_some());
    assert!(store.raw(old_open, 0).unwrap().is_some());
}

fn spam_config_error(section: &str) -> crate::config::Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("casemail.toml");
    std::fs::write(
        &path,
        format!(
            "[helpdesk]\naddress = \"help@charity.example\"\n[imap]\nhost = \"imap.charity.example\"\nusername = \"u\"\npassword = \"p\"\n[smtp]\nhost = \"smtp.charity.example\"\n[spam]\n{section}\n"
        ),
    )
    .unwrap();
    crate::config::load_with_env(&path, &HashMap::new()).unwrap_err()
}

#[test]
fn bad_spam_settings_name_the_key() {
    let err = spam_config_error(
        "rules = [{ name = \"x\", target = \"subject\", pattern = \"(unclosed\", weight = 1.0 }]",
    );
    assert_eq!(err.key, "spam.rules[0].pattern");
    assert!(err.reason.contains("regular expression"), "{err}");
    let err = spam_config_error(
        "rules = [{ name = \"x\", target = \"headers\", pattern = \"a\", weight = 1.0 }]",
    );
    assert_eq!(err.key, "spam.rules[0].target");
    let err = spam_config_error("spamd = \"10.0.0.5:783\"");
    assert_eq!(err.key, "spam.spamd");
    assert!(err.reason.contains("loopback"), "{err}");
    let err = spam_config_error("threshold = 0.0");
    assert_eq!(err.key, "spam.threshold");
    let err = spam_config_error("allow_domains = [\"not a domain\"]");
    assert_eq!(err.key, "spam.allow_domains[0]");
    let err = spam_config_error("keep_for = \"0s\"");
    assert_eq!(err.key, "spam.keep_for");
}

#[test]
fn check_config_prints_rules_that_load_back() {
    let settings = fixture_settings();
    assert_eq!(settings.rules.len(), 4);
    let path = fixture_dir().join("config.toml");
    let config = crate::config::load_with_env(&path, &HashMap::new()).unwrap();
    let printed = config.redacted_toml();
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    let reloaded = crate::config::load_with_env(&again, &HashMap::new()).unwrap();
    assert_eq!(reloaded.redacted_toml(), printed);
    assert_eq!(reloaded.spam.rules.len(), 4);
    assert_eq!(reloaded.spam.allow_domains, vec!["council.example"]);
}

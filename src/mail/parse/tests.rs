// Tests fail by panicking, and fixtures are indexed by the mutations under test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use expect_test::expect_file;
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

use super::body::normalise_newlines;
use super::checks::{CharsetSupport, charset_support};
use super::key::normalise_line_endings;
use super::*;
use crate::mail::sanitize::for_terminal;

/// Small enough that the scanned PDF fixture goes over it and the phone photo stays under.
const GOLDEN_LIMITS: ParseLimits = ParseLimits {
    max_attachment_size: 8 * 1024,
};

const SUITES: &[&str] = &["rfc", "clients", "malformed", "i18n"];

fn fixture_dir(suite: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(suite)
}

fn fixtures(suite: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir(suite))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    files
}

fn all_fixtures() -> Vec<Vec<u8>> {
    SUITES
        .iter()
        .flat_map(|suite| fixtures(suite))
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn to_lf(raw: &[u8]) -> Vec<u8> {
    normalise_line_endings(raw)
}

fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for &byte in &to_lf(raw) {
        if byte == b'\n' {
            out.push(b'\r');
        }
        out.push(byte);
    }
    out
}

/// Whether a rendering shows byte counts. CRLF copies are compared with sizes hidden, because
/// the raw size and the size of unencoded attachments count the extra carriage returns.
#[derive(Clone, Copy)]
enum Sizes {
    Shown,
    Hidden,
}

/// A compact, deterministic rendering of everything parse produces. Values are shown with
/// `{:?}` so that control characters are visible; text lines go through the terminal escaping.
fn render(mail: &InboundMail, sizes: Sizes) -> String {
    let size = |n: u64| match sizes {
        Sizes::Shown => n.to_string(),
        Sizes::Hidden => "*".to_owned(),
    };
    let mailbox = |m: &Mailbox| match &m.name {
        Some(name) => format!("{name:?} <{}>", m.address),
        None => format!("<{}>", m.address),
    };
    let mailboxes = |list: &[Mailbox]| list.iter().map(mailbox).collect::<Vec<_>>().join(", ");
    let ids = |list: &[MessageId]| {
        list.iter()
            .map(|id| id.as_str().to_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::new();
    let mut line = |name: &str, value: String| {
        if !value.is_empty() {
            writeln!(out, "{name}: {value}").unwrap();
        }
    };
    line("size", size(mail.size as u64));
    line("key", mail.key.to_index_string());
    line(
        "message-id",
        mail.message_id
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
    );
    line("in-reply-to", ids(&mail.in_reply_to));
    line("references", ids(&mail.references));
    line("from", mail.from.as_ref().map(mailbox).unwrap_or_default());
    line(
        "sender",
        mail.sender.as_ref().map(mailbox).unwrap_or_default(),
    );
    line("reply-to", mailboxes(&mail.reply_to));
    line("to", mailboxes(&mail.to));
    line("cc", mailboxes(&mail.cc));
    line(
        "return-path",
        mail.return_path
            .as_ref()
            .map(|p| format!("<{p}>"))
            .unwrap_or_default(),
    );
    line(
        "subject",
        mail.subject
            .as_ref()
            .map(|s| format!("{s:?}"))
            .unwrap_or_default(),
    );
    line(
        "thread-subject",
        mail.thread_subject
            .as_ref()
            .map(|s| format!("{s:?}"))
            .unwrap_or_default(),
    );
    line("date", mail.date.map(|d| d.to_string()).unwrap_or_default());
    line(
        "auto-submitted",
        mail.auto_submitted.clone().unwrap_or_default(),
    );
    line("precedence", mail.precedence.clone().unwrap_or_default());
    line("list-id", mail.list_id.clone().unwrap_or_default());
    let flags: Vec<&str> = [
        (mail.list_unsubscribe, "list-unsubscribe"),
        (mail.x_autoreply, "x-autoreply"),
        (mail.is_delivery_report, "delivery-report"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    line("flags", flags.join(" "));
    for (name, values) in &mail.headers {
        for value in values {
            line(&format!("header {name}"), format!("{value:?}"));
        }
    }
    for attachment in &mail.attachments {
        let digest = attachment
            .content()
            .map(|bytes| {
                // Unencoded parts keep the copy's line endings; the digest ignores them.
                let digest = Sha256::digest(normalise_line_endings(bytes));
                format!(" sha256={:.16}", format!("{digest:x}"))
            })
            .unwrap_or_default();
        line(
            "attachment",
            format!(
                "{:?} {} size={} kept={}{digest}",
                attachment.name.as_deref().unwrap_or(""),
                attachment.content_type,
                size(attachment.size),
                attachment.kept,
            ),
        );
    }
    for anomaly in &mail.anomalies {
        let message = match (anomaly, sizes) {
            (Anomaly::AttachmentTooLarge { .. }, Sizes::Hidden) => "*".to_owned(),
            _ => anomaly.to_string(),
        };
        line("anomaly", format!("{}: {message}", anomaly.kind()));
    }
    writeln!(out, "text:").unwrap();
    for text_line in mail.text.lines() {
        // No trailing space on blank lines, so editors cannot change the expected files.
        let text_line = for_terminal(text_line);
        writeln!(
            out,
            "|{}{text_line}",
            if text_line.is_empty() { "" } else { " " }
        )
        .unwrap();
    }
    out
}

/// Compares `actual` with the expected file at `path` through expect-test, which writes it
/// instead when `UPDATE_EXPECT=1` is set. A difference is printed (by expect-test) and counted
/// rather than ending the test, so that one run shows every fixture that differs.
fn matches_expected_file(path: PathBuf, actual: &str) -> bool {
    let expected = expect_file![path];
    std::panic::catch_unwind(|| expected.assert_eq(actual)).is_ok()
}

#[test]
fn golden_fixtures() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for suite in SUITES {
        let files = fixtures(suite);
        assert!(!files.is_empty(), "suite {suite} has no fixtures");
        for eml in files {
            let raw = std::fs::read(&eml).unwrap();
            let lf = parse_unguarded(&to_lf(&raw), &GOLDEN_LIMITS);
            let crlf = parse_unguarded(&to_crlf(&raw), &GOLDEN_LIMITS);
            assert_eq!(
                render(&lf, Sizes::Hidden),
                render(&crlf, Sizes::Hidden),
                "{}: the LF and CRLF copies read differently",
                eml.display()
            );
            assert_eq!(lf.key, crlf.key, "{}: keys differ", eml.display());

            let actual = render(&lf, Sizes::Shown);
            if !matches_expected_file(eml.with_extension("expected"), &actual) {
                failures.push(eml.display().to_string());
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fixtures");
    assert!(
        failures.is_empty(),
        "{} fixtures differ, diffs above (run with UPDATE_EXPECT=1 to bless):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expected_file_has_a_fixture() {
    for suite in SUITES {
        for entry in std::fs::read_dir(fixture_dir(suite)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "expected") {
                assert!(
                    path.with_extension("eml").exists(),
                    "{} has no .eml",
                    path.display()
                );
            }
        }
    }
}

fn parse_default(raw: &[u8]) -> InboundMail {
    parse_unguarded(raw, &ParseLimits::default())
}

fn ids(value: &str) -> Vec<String> {
    message_ids(value)
        .iter()
        .map(|id| id.as_str().to_owned())
        .collect()
}

#[test]
fn message_id_list_skips_comments_and_junk() {
    assert_eq!(
        ids("<a@x.org> (forwarded) junk <b@X.ORG>\r\n\t<c@y.org>, <a@x.org>"),
        ["a@x.org", "b@x.org", "c@y.org"]
    );
}

#[test]
fn message_id_list_rejects_ids_with_spaces_and_empty_brackets() {
    assert_eq!(ids("<> <a b@x.org> <ok@x.org>"), ["ok@x.org"]);
}

#[test]
fn message_id_list_recovers_from_an_unclosed_bracket() {
    assert_eq!(ids("<broken <b@x.org> <c@x.org"), ["b@x.org"]);
}

#[test]
fn message_id_list_accepts_bare_ids_from_broken_clients() {
    assert_eq!(ids("a@x.org, b@x.org; not-an-id"), ["a@x.org", "b@x.org"]);
}

#[test]
fn message_id_key_uses_the_normalised_id() {
    let mail = parse_default(b"From: a@example.org\nMessage-ID: <Abc@Example.ORG>\n\nhi\n");
    assert_eq!(mail.key.to_index_string(), "mid:Abc@example.org");
}

const NO_ID: &[u8] = b"From: Amina <Amina@Example.NET>\n\
Date: Tue, 12 Mar 2024 09:13:55 +0000\n\
Subject: housing\n\
\n\
Please help.\n";

#[test]
fn content_hash_is_the_same_for_lf_and_crlf_copies() {
    let lf = parse_default(NO_ID);
    let crlf = parse_default(&to_crlf(NO_ID));
    assert!(matches!(lf.key, MailKey::ContentHash(_)));
    assert_eq!(lf.key, crlf.key);
}

#[test]
fn content_hash_ignores_headers_added_on_the_way() {
    let mut delivered_again = b"Received: from mx2.example.net by mail.charity.example\n\
X-Spam-Flag: NO\n"
        .to_vec();
    delivered_again.extend_from_slice(NO_ID);
    assert_eq!(
        parse_default(NO_ID).key,
        parse_default(&delivered_again).key
    );
}

#[test]
fn content_hash_depends_on_sender_date_subject_and_text() {
    let base = parse_default(NO_ID).key;
    let text = String::from_utf8(NO_ID.to_vec()).unwrap();
    for (from, to) in [
        ("Amina@Example.NET", "other@example.net"),
        ("09:13:55", "09:13:56"),
        ("housing", "visa"),
        ("Please help.", "Please help!"),
    ] {
        let changed = parse_default(text.replace(from, to).as_bytes()).key;
        assert_ne!(base, changed, "changing {from:?} kept the key");
    }
}

#[test]
fn content_hash_ignores_the_case_of_the_sender_address() {
    let text = String::from_utf8(NO_ID.to_vec()).unwrap();
    let lower = text.replace("Amina@Example.NET", "amina@example.net");
    assert_eq!(
        parse_default(NO_ID).key,
        parse_default(lower.as_bytes()).key
    );
}

#[test]
fn different_garbage_gets_different_keys() {
    let one = parse_default(b"\x89\x00\x01 garbage one");
    let two = parse_default(b"\x89\x00\x01 garbage two");
    assert!(one.is_unreadable() && two.is_unreadable());
    assert_ne!(one.key, two.key);
}

#[test]
fn empty_input_is_unreadable() {
    let mail = parse_default(b"");
    assert!(mail.is_unreadable());
    assert_eq!(mail.size, 0);
}

#[test]
fn text_without_headers_is_shown_but_flagged() {
    let mail = parse_default("please help me with my papers\n".as_bytes());
    assert_eq!(mail.text, "please help me with my papers");
    assert!(!mail.is_unreadable());
    assert!(mail.anomalies.contains(&Anomaly::Unparseable {
        reason: Unparseable::NoHeaders
    }));
}

#[test]
fn first_of_duplicate_from_fields_is_used() {
    let mail = parse_default(b"From: first@example.org\nFrom: second@example.org\n\nx\n");
    assert_eq!(mail.from.unwrap().address, "first@example.org");
    assert!(mail.anomalies.contains(&Anomaly::DuplicateHeader {
        name: "From".to_owned(),
        count: 2
    }));
}

#[test]
fn null_return_path_is_an_empty_string() {
    let mail = parse_default(b"Return-Path: < >\nFrom: a@example.org\n\nx\n");
    assert_eq!(mail.return_path.as_deref(), Some(""));
}

#[test]
fn date_offsets_are_applied() {
    let mail = parse_default(b"From: a@example.org\nDate: Wed, 27 Mar 2024 15:40:02 +0330\n\nx\n");
    assert_eq!(mail.date.unwrap().to_string(), "2024-03-27T12:10:02Z");
}

#[test]
fn leap_second_is_read_as_the_second_before() {
    let mail = parse_default(b"From: a@example.org\nDate: Sun, 31 Dec 2016 23:59:60 +0000\n\nx\n");
    assert_eq!(mail.date.unwrap().to_string(), "2016-12-31T23:59:59Z");
}

#[test]
fn impossible_dates_are_bad_dates() {
    let mail = parse_default(b"From: a@example.org\nDate: Thu, 31 Feb 2024 10:00:00 +0000\n\nx\n");
    assert!(mail.date.is_none());
    assert!(
        mail.anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::BadDate { .. }))
    );
}

#[test]
fn html_loses_scripts_styles_and_comments() {
    let html = r#"<html><head><title>t</title></head><body>
        <style type="text/css">p { color: red }</style>
        <script type="text/javascript">steal()</script>
        <!-- hidden -->
        <p>Hello</p><div>World &amp; <b>you</b></div>
        <table><tr><td>a</td><td>b</td></tr></table>
        <script>never closed"#;
    // A paragraph is set off by a blank line; a div and a table row are lines of their own.
    assert_eq!(html_to_text(html), "Hello\n\nWorld & you\na b");
}

/// mail-parser's converter, which parse used before, read from a `<` to the next `>` as a tag
/// and lost the text between.
#[test]
fn html_keeps_a_less_than_sign_that_starts_no_tag() {
    assert_eq!(
        html_to_text("<p>Rent went from 600 to <b>750</b>: is 750 < 2 x 600?</p><p>Yes > no</p>"),
        "Rent went from 600 to 750: is 750 < 2 x 600?\n\nYes > no"
    );
}

#[test]
fn charset_support_matches_mail_parser_table() {
    assert!(matches!(charset_support("UTF-8"), CharsetSupport::Decoded));
    assert!(matches!(
        charset_support("windows-1256"),
        CharsetSupport::Decoded
    ));
    assert!(matches!(charset_support("koi8-r"), CharsetSupport::Decoded));
    assert!(matches!(
        charset_support("x-unknown-charset"),
        CharsetSupport::Unknown
    ));
    // Decoded with mail-parser's `full_encoding` feature, a UTF-8 stand-in without it.
    assert!(!matches!(
        charset_support("ISO-2022-JP"),
        CharsetSupport::Unknown
    ));
}

#[test]
fn newline_normalisation_is_idempotent() {
    let once = normalise_newlines("a\r\r\nb\rc\r\n");
    assert_eq!(once, "a\nb\rc\n");
    assert_eq!(normalise_newlines(&once), once);
}

#[test]
fn clean_text_drops_leading_blank_lines_but_keeps_indentation() {
    assert_eq!(
        clean_text("\r\n \n  indented\nnext  \n\n"),
        "  indented\nnext"
    );
}

#[test]
fn oversize_attachments_are_listed_but_not_copied() {
    let raw = b"From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n\
--b\nContent-Type: text/plain\n\nsee scan\n\
--b\nContent-Type: application/pdf; name=scan.pdf\nContent-Transfer-Encoding: base64\n\n\
JVBERi0xLjQK\n--b--\n";
    let mail = parse_unguarded(
        raw,
        &ParseLimits {
            max_attachment_size: 4,
        },
    );
    let attachment = mail.attachments.first().unwrap();
    assert_eq!(attachment.size, 9);
    assert!(!attachment.kept);
    assert!(attachment.content().is_none());
    assert!(
        mail.anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::AttachmentTooLarge { .. }))
    );

    let mail = parse_unguarded(
        raw,
        &ParseLimits {
            max_attachment_size: 9,
        },
    );
    assert_eq!(
        mail.attachments.first().unwrap().content(),
        Some(&b"%PDF-1.4\n"[..])
    );
}

#[test]
fn anomalies_serialise_with_a_kind_tag() {
    let json = serde_json::to_value(Anomaly::Truncated {
        part: 2,
        problem: Truncation::IncompleteBase64,
    })
    .unwrap();
    assert_eq!(json["kind"], "truncated");
    assert_eq!(json["problem"]["what"], "incomplete-base64");
}

#[test]
fn large_message_is_parsed() {
    let mut raw = b"From: a@example.org\nMessage-ID: <big@example.org>\n\
Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbig\n\
--b\nContent-Type: image/jpeg; name=a.jpg\nContent-Transfer-Encoding: base64\n\n"
        .to_vec();
    let line = [b'A'; 76];
    while raw.len() < 20 * 1024 * 1024 {
        raw.extend_from_slice(&line);
        raw.push(b'\n');
    }
    raw.extend_from_slice(b"--b--\n");
    let mail = parse_unguarded(
        &raw,
        &ParseLimits {
            max_attachment_size: 1024,
        },
    );
    assert_eq!(mail.text, "big");
    assert!(!mail.attachments.first().unwrap().kept);
}

#[test]
fn empty_forwarded_message_followed_by_a_part_is_survived() {
    // mail-parser 0.11.9 reaches a `debug_assert!(false, ..)` on this in debug builds.
    let raw = b"From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n\
--b\nContent-Type: message/rfc822\n\n--b\nContent-Type: message/rfc822\n\n\
From: c@example.org\n\nx\n--b--\n";
    let mail = parse_unguarded(raw, &ParseLimits::default());
    assert_eq!(mail.size, raw.len());
    assert!(matches!(mail.key, MailKey::ContentHash(_)));
}

#[test]
fn deeply_nested_multiparts_are_parsed() {
    let mut raw = b"From: a@example.org\n".to_vec();
    for depth in 0..5000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{depth}\n\n--b{depth}\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"Content-Type: text/plain\n\ndeep\n");
    let mail = parse_unguarded(&raw, &ParseLimits::default());
    assert_eq!(mail.text, "deep");
    let truncated = mail
        .anomalies
        .iter()
        .filter(|a| matches!(a, Anomaly::Truncated { .. }))
        .count();
    assert_eq!(truncated, 5000);
}

#[test]
fn guarded_parse_matches_unguarded_parse() {
    for raw in all_fixtures() {
        let guarded = parse(&raw, &GOLDEN_LIMITS);
        let unguarded = parse_unguarded(&raw, &GOLDEN_LIMITS);
        assert_eq!(
            render(&guarded, Sizes::Shown),
            render(&unguarded, Sizes::Shown)
        );
    }
}

/// Fragments that steer random input into header, MIME and encoded-word code paths.
const FRAGMENTS: &[&str] = &[
    "\n",
    "\r\n",
    " ",
    "\t",
    ":",
    "From: a@example.org\n",
    "Message-ID: <x@y>\n",
    "References: <a@b> <c@d\n",
    "Date: Mon, 1 Apr 2024 10:00:00 +0000\n",
    "Subject: =?utf-8?B?w6k=?= =?x-bad?Q?=E9?=\n",
    "Content-Type: multipart/mixed; boundary=b\n",
    "Content-Type: multipart/alternative; boundary=\"c\"\n",
    "Content-Type: message/rfc822\n",
    "Content-Type: text/html; charset=windows-1256\n",
    "Content-Transfer-Encoding: base64\n",
    "Content-Transfer-Encoding: quoted-printable\n",
    "Content-Disposition: attachment; filename*=utf-8''%E1%8B%B0.jpg\n",
    "--b\n",
    "--b--\n",
    "--c\n",
    "--c--\n",
    "QUJDRA==",
    "QUJ",
    "=E9=\n",
    "<script>",
    "<style type=x>",
    "<p>",
    "\0",
    "\u{202e}",
    "é",
];

fn fragment_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(FRAGMENTS).prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..60,
    )
    .prop_map(|pieces| pieces.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1..200usize).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(raw: &mut Vec<u8>, mutation: &Mutation) {
    if raw.is_empty() {
        return;
    }
    match mutation {
        Mutation::Flip { at, byte } => {
            let at = at % raw.len();
            raw[at] = *byte;
        }
        Mutation::Truncate { at } => raw.truncate(at % raw.len()),
        Mutation::Insert { at, bytes } => {
            let at = at % raw.len();
            raw.splice(at..at, bytes.iter().copied());
        }
        Mutation::Duplicate { at, len } => {
            let at = at % raw.len();
            let end = (at + len).min(raw.len());
            let copy = raw[at..end].to_vec();
            raw.splice(end..end, copy);
        }
    }
}

fn assert_parses_deterministically(raw: &[u8]) {
    let first = parse_unguarded(raw, &GOLDEN_LIMITS);
    let second = parse_unguarded(raw, &GOLDEN_LIMITS);
    assert_eq!(first.key, second.key);
    assert_eq!(first.size, raw.len());
    if let MailKey::ContentHash(hash) = &first.key {
        assert_eq!(hash.len(), 64);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..2048)) {
        assert_parses_deterministically(&raw);
    }

    #[test]
    fn fragment_soup_never_panics(raw in fragment_soup()) {
        assert_parses_deterministically(&raw);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let fixtures = all_fixtures();
        let mut raw = index.get(&fixtures).clone();
        for mutation in &mutations {
            apply(&mut raw, mutation);
        }
        assert_parses_deterministically(&raw);
    }
}

#[test]
fn a_sender_address_the_mail_builder_refuses_is_flagged_once_at_parse() {
    let unusable = [
        "taro..yamada@docomo.ne.jp",
        "\"taro..yamada\"@docomo.ne.jp",
        "\"taro yamada\"@docomo.ne.jp",
        "victim@example.org/x@attacker.example",
        "ana.@example.org",
    ];
    for from in unusable {
        let raw = format!(
            "From: Taro <{from}>\r\nTo: help@charity.example\r\nSubject: help\r\nMessage-ID: <u@x>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n"
        );
        let mail = parse_default(raw.as_bytes());
        assert!(
            mail.has_unusable_address(),
            "{from:?} read as {:?}, anomalies {:?}",
            mail.from,
            mail.anomalies
        );
        assert!(mail.from.is_some(), "{from:?}: the sender is still known");
        assert_eq!(
            mail.anomalies
                .iter()
                .filter(|a| a.kind() == "unusable-address")
                .count(),
            1
        );
    }
    for from in [
        "taro.yamada@docomo.ne.jp",
        "amina+x@example.org",
        "o'brien@example.ie",
    ] {
        let raw = format!("From: <{from}>\r\nSubject: help\r\n\r\nhello\r\n");
        let mail = parse_default(raw.as_bytes());
        assert!(
            !mail.has_unusable_address(),
            "{from:?}: {:?}",
            mail.anomalies
        );
    }
}

#[test]
fn a_message_id_longer_than_a_header_line_is_dropped_and_the_key_is_a_hash() {
    let long_id = format!("<{}@evil.example>", "cm.".repeat(350_000));
    let raw = format!(
        "From: a@example.org\r\nTo: help@charity.example\r\nSubject: hi\r\nDate: Mon, 6 Jul 2026 09:00:00 +0000\r\nMessage-ID: {long_id}\r\nIn-Reply-To: {long_id}\r\nReferences: <root@x.org> {long_id}\r\n\r\nhello\r\n"
    );
    let mail = parse_default(raw.as_bytes());
    assert_eq!(mail.message_id, None);
    assert!(matches!(mail.key, MailKey::ContentHash(_)));
    assert!(mail.in_reply_to.is_empty());
    assert_eq!(
        mail.references
            .iter()
            .map(|id| id.as_str())
            .collect::<Vec<_>>(),
        ["root@x.org"]
    );
    let long: Vec<&str> = mail
        .anomalies
        .iter()
        .filter_map(|a| match a {
            Anomaly::LongMessageId { field, limit, .. } => {
                assert_eq!(*limit, 998);
                Some(field.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(long, ["Message-ID", "In-Reply-To", "References"]);
    assert!(mail.anomalies.contains(&Anomaly::MissingMessageId));
}

#[test]
fn references_and_in_reply_to_are_capped_keeping_the_root_and_the_latest() {
    let references: Vec<String> = (0..10_000).map(|i| format!("<r{i}@x.org>")).collect();
    let in_reply_to: Vec<String> = (0..20).map(|i| format!("<p{i}@x.org>")).collect();
    let raw = format!(
        "From: a@example.org\r\nSubject: hi\r\nMessage-ID: <m@x.org>\r\nIn-Reply-To: {}\r\nReferences: {}\r\n\r\nhello\r\n",
        in_reply_to.join(" "),
        references.join("\r\n ")
    );
    let mail = parse_default(raw.as_bytes());
    assert_eq!(mail.references.len(), 64);
    assert_eq!(
        mail.references.first().map(|id| id.as_str()),
        Some("r0@x.org")
    );
    assert_eq!(
        mail.references.get(1).map(|id| id.as_str()),
        Some("r9937@x.org")
    );
    assert_eq!(
        mail.references.last().map(|id| id.as_str()),
        Some("r9999@x.org")
    );
    assert_eq!(mail.in_reply_to.len(), 8);
    assert!(mail.anomalies.contains(&Anomaly::TooManyMessageIds {
        field: "References".to_owned(),
        count: 10_000,
        kept: 64,
    }));
    assert!(mail.anomalies.contains(&Anomaly::TooManyMessageIds {
        field: "In-Reply-To".to_owned(),
        count: 20,
        kept: 8,
    }));
}

#[test]
fn a_subject_of_a_megabyte_is_cut_to_a_header_line() {
    let long = "Ü".repeat(500_000);
    let raw =
        format!("From: a@example.org\r\nSubject: {long}\r\nMessage-ID: <s@x.org>\r\n\r\nhello\r\n");
    let mail = parse_default(raw.as_bytes());
    let subject = mail.subject.as_deref().expect("a subject");
    assert_eq!(subject.chars().count(), 998);
    assert!(subject.chars().all(|c| c == 'Ü'));
    assert!(mail.anomalies.contains(&Anomaly::LongSubject {
        length: 500_000,
        kept: 998,
    }));
    let short = parse_default(b"From: a@example.org\r\nSubject: Housing\r\n\r\nhello\r\n");
    assert_eq!(short.subject.as_deref(), Some("Housing"));
    assert!(!short.anomalies.iter().any(|a| a.kind() == "long-subject"));
}

#[test]
fn a_from_display_name_that_is_not_utf8_keeps_the_address() {
    // A four-byte lead swallows the `(` after it, and mail-parser loses the angle-addr.
    for name in [
        &b"\xf0\x28\x8c\x28"[..],
        b"\"\xf0\x28\"",
        b"\xff\xfe",
        b"=?utf-8?B?/w==?=",
    ] {
        let mut raw = b"From: ".to_vec();
        raw.extend_from_slice(name);
        raw.extend_from_slice(
            b" <Amal@Example.org>\r\nTo: help@charity.example\r\nSubject: x\r\nMessage-ID: <n@x>\r\n\r\nhi\r\n",
        );
        let mail = parse_default(&raw);
        let from = mail.from.as_ref().expect("a From address");
        assert_eq!(from.address, "amal@example.org", "{name:?}");
        assert_eq!(mail.from_count, 1, "{name:?}");
        assert!(
            !mail
                .anomalies
                .iter()
                .any(|a| matches!(a, Anomaly::UnusableAddress { .. } | Anomaly::MissingFrom)),
            "{name:?}: {:?}",
            mail.anomalies
        );
    }
}

// Tests fail by panicking, and fixtures are indexed by the cases under test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use expect_test::expect_file;
use proptest::prelude::*;

use super::*;
use crate::mail::parse::{ParseLimits, parse_unguarded};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replies")
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    files
}

/// `<client>-<language>-<case>.eml` → (client, language).
fn client_and_language(path: &Path) -> (String, String) {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let mut parts = stem.splitn(3, '-');
    let client = parts.next().unwrap().to_owned();
    let language = parts.next().unwrap_or_default().to_owned();
    assert!(
        parts.next().is_some_and(|case| !case.is_empty()),
        "{stem}: fixture names are <client>-<language>-<case>"
    );
    (client, language)
}

fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if byte == b'\r' && bytes.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(byte);
    }
    out
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

fn strip_raw(raw: &[u8]) -> Stripped {
    let mail = parse_unguarded(raw, &ParseLimits::default());
    strip_unguarded(&mail, raw)
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
    let mut clients: BTreeMap<String, usize> = BTreeMap::new();
    let mut languages: BTreeSet<String> = BTreeSet::new();
    let files = fixtures();
    for eml in &files {
        let (client, language) = client_and_language(eml);
        *clients.entry(client).or_default() += 1;
        languages.insert(language);

        let raw = std::fs::read(eml).unwrap();
        let lf = strip_raw(&to_lf(&raw));
        let crlf = strip_raw(&to_crlf(&raw));
        assert_eq!(
            lf,
            crlf,
            "{}: the LF and CRLF copies strip differently",
            eml.display()
        );

        let actual = format!("{}\n", lf.text);
        if !matches_expected_file(eml.with_extension("expected"), &actual) {
            failures.push(eml.display().to_string());
        }
    }
    assert!(files.len() >= 40, "only {} reply fixtures", files.len());
    assert!(
        languages.len() >= 5,
        "only {} languages: {languages:?}",
        languages.len()
    );
    assert!(
        clients.len() >= 8,
        "only {} clients: {clients:?}",
        clients.len()
    );
    assert!(
        failures.is_empty(),
        "{} fixtures differ, diffs above (run with UPDATE_EXPECT=1 to bless):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expected_file_has_a_fixture() {
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
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

fn stripped(text: &str) -> String {
    keep_something(strip_plain(text, Purpose::Reply, Format::Fixed), text).text
}

/// A plain-text message with this subject, content type and body.
fn message(subject: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Agent <agent@example.org>\nTo: help@charity.example\nSubject: {subject}\n\
         MIME-Version: 1.0\nContent-Type: {content_type}\n\n{body}"
    )
    .into_bytes()
}

fn html(body: &str) -> Stripped {
    strip_raw(&message(
        "Re: [#12] Housing",
        "text/html; charset=utf-8",
        body,
    ))
}

const QUOTE: &str = "> ##- Please type your reply above this line -##\n>\n> New ticket for you.\n\
                     >\n> Please help me with the eviction letter.\n";

// The notification marker -----------------------------------------------------------------

#[test]
fn unquoted_marker_cuts_with_the_outlook_block_above_it() {
    let text = "I will call you today.\n\nPriya\n\n________________________________\n\
                From: Helpdesk <help@charity.example>\nSent: Tuesday, March 12, 2024 10:15\n\
                To: Priya <priya@example.com>\nSubject: [#12] Housing\n\n\
                ##- Please type your reply above this line -##\n\nPlease help me.\n";
    assert_eq!(stripped(text), "I will call you today.\n\nPriya");
}

#[test]
fn quoted_marker_keeps_what_was_typed_under_the_quote() {
    let text =
        format!("On 12/03/2024 10:15, Helpdesk wrote:\n{QUOTE}\nYes, I can help.\n\n-- \nTom\n");
    let result = strip_text(&text);
    assert_eq!(result.text, "Yes, I can help.");
    assert!(result.removed_quote && result.removed_signature);
}

#[test]
fn marker_takes_a_wrapped_attribution_with_it() {
    let text = format!(
        "Thanks, done.\n\nOn Tue, Mar 12, 2024 at 10:15\u{202f}AM Charity Helpdesk <\n\
         help+12.7f3c9e1a2b@charity.example> wrote:\n\n{QUOTE}"
    );
    assert_eq!(stripped(&text), "Thanks, done.");
}

#[test]
fn marker_in_a_blockquote_of_any_kind_removes_that_blockquote() {
    let result = html(
        "<div>Top answer</div><blockquote style=\"margin:0\"><div>On Tuesday, Helpdesk wrote:</div>\
         ##- Please type your reply above this line -##<br>Please help.</blockquote>\
         <div>An answer under the quote</div>",
    );
    assert_eq!(result.text, "Top answer\n\nAn answer under the quote");
    assert!(result.removed_quote);
}

// Attribution lines ---------------------------------------------------------------------

#[test]
fn attribution_lines_in_many_languages_head_the_quote() {
    for attribution in [
        "On Tue, Mar 12, 2024 at 10:15 AM Helpdesk <help@charity.example> wrote:",
        "On 12 Mar 2024, at 10:15, Helpdesk <help@charity.example> wrote:",
        "Am Di., 12. März 2024 um 10:15 Uhr schrieb Helpdesk <help@charity.example>:",
        "Am 12.03.24 um 10:15 schrieb Helpdesk:",
        "Le mar. 12 mars 2024 à 10:15, Helpdesk <help@charity.example> a écrit\u{a0}:",
        "El mar, 12 mar 2024 a las 10:15, Helpdesk (<help@charity.example>) escribió:",
        "Il giorno mar 12 mar 2024 alle ore 10:15 Helpdesk <help@charity.example> ha scritto:",
        "Op di 12 mrt 2024 om 10:15 schreef Helpdesk <help@charity.example>:",
        "Em ter., 12 de mar. de 2024 às 10:15, Helpdesk <help@charity.example> escreveu:",
        "\u{202b}في الثلاثاء، 12 مارس 2024 في 10:15 ص تمت كتابة ما يلي بواسطة Helpdesk <help@charity.example>:\u{202c}",
        "في الثلاثاء، ١٢ مارس ٢٠٢٤ ١٠:١٥ ص Helpdesk <help@charity.example> كتب:",
        "در تاریخ سه‌شنبه ۱۲ مارس ۲۰۲۴ ساعت ۱۰:۱۵ Helpdesk <help@charity.example> نوشت:",
        // A language without a known phrasing: an address, a date and a colon right above
        // the quote are enough.
        "ሰሉስ 12 መጋቢት 2024 10:15 Helpdesk <help@charity.example> ጸሓፈ:",
    ] {
        let text = format!("My answer.\n\n{attribution}\n> Old line one\n> Old line two\n");
        let result = strip_text(&text);
        assert_eq!(result.text, "My answer.", "{attribution}");
        assert!(result.removed_quote, "{attribution}");
    }
}

#[test]
fn attribution_like_prose_is_kept() {
    for text in [
        "Thanks.\n\nOn Monday the council wrote:\nWe will visit on Friday.",
        "Thanks.\n\nOn 12 March the council wrote:\nWe will visit on Friday.",
    ] {
        assert_eq!(stripped(text), text);
    }
}

#[test]
fn history_without_quote_marks_under_a_client_attribution_is_cut() {
    let text = "Thanks, I will bring the papers.\n\n    On Tuesday, March 12, 2024 at 10:15:02 AM GMT, \
                Helpdesk <help@charity.example> wrote:  \n \n Please help me.\n";
    assert_eq!(stripped(text), "Thanks, I will bring the papers.");
}

// Outlook header blocks -------------------------------------------------------------------

#[test]
fn outlook_header_blocks_in_many_languages_head_the_history() {
    for (separator, [from, sent, to, subject]) in [
        (
            "________________________________",
            ["From:", "Sent:", "To:", "Subject:"],
        ),
        (
            "________________________________",
            ["Von:", "Gesendet:", "An:", "Betreff:"],
        ),
        (
            "________________________________",
            ["De\u{a0}:", "Envoyé\u{a0}:", "À\u{a0}:", "Objet\u{a0}:"],
        ),
        (
            "________________________________",
            ["De:", "Enviado:", "Para:", "Asunto:"],
        ),
        (
            "________________________________",
            ["من:", "تاريخ الإرسال:", "إلى:", "الموضوع:"],
        ),
        (
            "-----Original Message-----",
            ["From:", "Sent:", "To:", "Subject:"],
        ),
        (
            "-----Ursprüngliche Nachricht-----",
            ["Von:", "Gesendet:", "An:", "Betreff:"],
        ),
        ("", ["*From:*", "*Sent:*", "*To:*", "*Subject:*"]),
    ] {
        let text = format!(
            "My answer.\n\n{separator}\n{from} Helpdesk <help@charity.example>\n\
             {sent} 12.03.2024 10:15\n{to} Agent <agent@example.org>\n{subject} [#12] Housing\n\n\
             Please help me.\n"
        );
        assert_eq!(stripped(&text), "My answer.", "{from}");
    }
}

#[test]
fn original_message_separator_alone_heads_the_history() {
    let text = "My answer.\n\n-------- Original message --------\nUnusual header\n\nOld text\n";
    assert_eq!(stripped(text), "My answer.");
}

#[test]
fn a_header_block_in_a_forward_is_content() {
    let body = "See the letter below.\n\nFrom: Council <council@example.org>\n\
                Sent: Monday, March 11, 2024 16:02\nTo: Helpdesk <help@charity.example>\n\
                Subject: Repairs\n\nThe inspector comes on Thursday.\n";
    let forward = strip_raw(&message("FW: Repairs", "text/plain", body));
    assert_eq!(forward.text, body.trim_end());
    let reply = strip_raw(&message("RE: Repairs", "text/plain", body));
    assert_eq!(reply.text, "See the letter below.");
}

#[test]
fn forwarded_mail_in_a_reply_is_kept_and_the_quote_under_it_removed() {
    let text = format!(
        "Here is their answer.\n\n---------- Forwarded message ---------\n\
         From: Council <council@example.org>\nDate: Mon, 11 Mar 2024 at 16:02\n\
         Subject: Repairs\nTo: <help@charity.example>\n\nThe inspector comes on Thursday.\n\n\
         -- \nCouncil repairs team\n\n\
         On Tue, 12 Mar 2024 at 10:15, Helpdesk <help@charity.example> wrote:\n{QUOTE}"
    );
    let result = strip_text(&text);
    assert_eq!(
        result.text,
        "Here is their answer.\n\n---------- Forwarded message ---------\n\
         From: Council <council@example.org>\nDate: Mon, 11 Mar 2024 at 16:02\n\
         Subject: Repairs\nTo: <help@charity.example>\n\nThe inspector comes on Thursday.\n\n\
         --\nCouncil repairs team"
    );
    assert!(result.removed_quote && !result.removed_signature);
}

// `>` quoting -----------------------------------------------------------------------------

#[test]
fn quoted_lines_at_the_end_are_history_without_an_attribution() {
    assert_eq!(
        stripped("My answer.\n\n> Old line\n>\n> Another old line\n\n"),
        "My answer."
    );
}

#[test]
fn quoted_lines_in_the_middle_without_an_attribution_are_kept() {
    let text = "The law says:\n\n> Tenants must be given two months.\n\nSo you have until May.";
    assert_eq!(stripped(text), text);
}

#[test]
fn answers_between_quoted_lines_are_kept() {
    let text = "On 12/03/2024 10:15, Helpdesk wrote:\n> Can you help with the rent?\n\n\
                Yes, we can.\n\n> And with the deposit?\nAlso yes.\n> Thanks\n";
    assert_eq!(stripped(text), "Yes, we can.\n\nAlso yes.");
}

#[test]
fn a_message_that_opens_with_quoted_lines_keeps_the_answers() {
    assert_eq!(
        stripped("> Can you help?\n\nYes.\n\n> When?\n\nTomorrow.\n"),
        "Yes.\n\nTomorrow."
    );
}

#[test]
fn comparisons_typed_at_the_start_of_a_line_are_not_quotes() {
    let top = "The rule is:\n> 18 years old: apply alone\n< 18 years old: on your claim";
    let text = format!("{top}\n\nOn 12/03/2024 10:15, Helpdesk wrote:\n> Old\n");
    assert_eq!(stripped(&text), top);
    assert_eq!(stripped(top), top);
    let under = format!("On 12/03/2024 10:15, Helpdesk wrote:\n> Old\n\n{top}\n");
    assert_eq!(stripped(&under), top);
}

#[test]
fn space_stuffed_lines_in_flowed_text_are_the_writers_own() {
    let body = "On 12/03/2024 10:15, Helpdesk wrote:\n> Old\n\nThe rule is:\n \
                > 18 years old: apply alone\n";
    let result = strip_raw(&message(
        "Re: [#12] Housing",
        "text/plain; charset=utf-8; format=flowed",
        body,
    ));
    assert_eq!(result.text, "The rule is:\n> 18 years old: apply alone");
}

#[test]
fn flowed_lines_are_joined_into_paragraphs() {
    let body = "One long \nparagraph here.\n\n-- \nTom\n";
    let flowed = strip_raw(&message("Re: x", "text/plain; format=flowed", body));
    assert_eq!(flowed.text, "One long paragraph here.");
    let delsp = strip_raw(&message(
        "Re: x",
        "text/plain; format=flowed; delsp=yes",
        "Bonjour tout le mon \nde.\n",
    ));
    assert_eq!(delsp.text, "Bonjour tout le monde.");
    let fixed = strip_raw(&message("Re: x", "text/plain", body));
    assert_eq!(fixed.text, "One long\nparagraph here.");
}

// Signatures ------------------------------------------------------------------------------

#[test]
fn signature_under_the_delimiter_is_removed() {
    let result = strip_text("See you Thursday.\n\n-- \nJane Okafor\nVolunteer\n07700 900123\n");
    assert_eq!(result.text, "See you Thursday.");
    assert!(result.removed_signature && !result.removed_quote);
}

#[test]
fn a_long_text_under_a_delimiter_is_not_a_signature() {
    let lines: Vec<String> = (1..=14).map(|n| format!("Step {n}.")).collect();
    let text = format!("Here is the plan.\n-- \n{}", lines.join("\n"));
    assert_eq!(stripped(&text), text.replace("-- ", "--"));
}

#[test]
fn a_dash_line_without_the_space_is_no_delimiter_in_plain_text() {
    let text = "Option one: the council.\n--\nOption two: a solicitor.";
    assert_eq!(stripped(text), text);
}

#[test]
fn phone_taglines_at_the_end_are_removed() {
    for tagline in [
        "Sent from my iPhone",
        "Sent from my Android device with K-9 Mail. Please excuse my brevity.",
        "Get Outlook for Android<https://aka.ms/AAb9ysg>",
        "Get Outlook for iOS",
        "Sent from Mail for Windows",
        "Sent with Proton Mail secure email.",
        "Sent from Yahoo Mail on Android",
        "Envoyé de mon iPhone",
        "Télécharger Outlook pour iOS<https://aka.ms/o0ukef>",
        "Von meinem iPhone gesendet",
        "Enviado desde mi iPhone",
        "أُرسلت من الـ iPhone",
    ] {
        let result = strip_text(&format!("See you Thursday.\nJane\n\n{tagline}\n"));
        assert_eq!(result.text, "See you Thursday.\nJane", "{tagline}");
        assert!(result.removed_signature, "{tagline}");
    }
}

#[test]
fn a_tagline_far_from_the_end_is_kept() {
    let text =
        "Sent from my iPhone\nis what my phone adds.\nI turned it off.\nNow it is gone.\nJane";
    assert_eq!(stripped(text), text);
}

// Keeping rather than losing ------------------------------------------------------------

#[test]
fn a_reply_of_nothing_but_history_is_kept_whole() {
    let text = format!("On 12/03/2024 10:15, Helpdesk wrote:\n{QUOTE}");
    let result = strip_text(&text);
    assert_eq!(result.text, text.trim_end());
    assert!(result.only_history);
    assert!(!result.removed_quote);
}

#[test]
fn empty_text_stays_empty() {
    let result = strip_text(" \n\n");
    assert_eq!(result.text, "");
    assert!(!result.only_history);
}

#[test]
fn command_lines_at_the_top_are_kept() {
    let text = format!(
        "#assign amina\n#note\nShe speaks Arabic.\n\nOn 12/03/2024 10:15, Helpdesk wrote:\n{QUOTE}"
    );
    assert_eq!(stripped(&text), "#assign amina\n#note\nShe speaks Arabic.");
}

// HTML ----------------------------------------------------------------------------------

#[test]
fn gmail_quotes_go_and_answers_between_them_stay() {
    let result = html(
        "<div dir=\"ltr\">Top</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Tue, \
         Helpdesk wrote:<br></div><blockquote class=\"gmail_quote\">Question one?</blockquote>\
         <div>Answer one.</div><blockquote class=\"gmail_quote\">Question two?</blockquote>\
         <div>Answer two.</div></div>",
    );
    assert_eq!(result.text, "Top\n\nAnswer one.\n\nAnswer two.");
}

#[test]
fn cited_blockquotes_go() {
    let result = html(
        "Thanks.<div><br><blockquote type=\"cite\"><div>On 12 Mar 2024, at 10:15, Helpdesk \
         &lt;help@charity.example&gt; wrote:</div><div>Old</div></blockquote></div>",
    );
    assert_eq!(result.text, "Thanks.");
    let thunderbird = html(
        "<p>Merci.</p><div class=\"moz-cite-prefix\">Le 12/03/2024 à 10:15, Helpdesk a écrit&nbsp;:\
         <br></div><blockquote type=\"cite\"><pre class=\"moz-quote-pre\">Old</pre></blockquote>",
    );
    assert_eq!(thunderbird.text, "Merci.");
}

#[test]
fn outlook_reply_headers_cut_everything_under_them() {
    for header in [
        "<div id=\"divRplyFwdMsg\" dir=\"ltr\"><b>From:</b> Helpdesk<br><b>Sent:</b> Tuesday</div>",
        "<div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\"><b>From:</b> Helpdesk</div>",
        "<div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>\
         <p class=MsoNormal><b>From:</b> Helpdesk</p></div>",
    ] {
        let result = html(&format!(
            "<div>My answer.</div>{header}<div>Old text</div><div>More old text</div>"
        ));
        assert_eq!(result.text, "My answer.", "{header}");
    }
}

#[test]
fn outlook_forward_headers_keep_the_forwarded_mail() {
    let result = strip_raw(&message(
        "TR : Convocation",
        "text/html",
        "<div>Voici la convocation.</div><div id=\"divRplyFwdMsg\"><b>De :</b> Préfecture</div>\
         <div>Vous êtes convoqué le 2 avril.</div>",
    ));
    assert_eq!(
        result.text,
        "Voici la convocation.\nDe : Préfecture\nVous êtes convoqué le 2 avril."
    );
}

#[test]
fn yahoo_quotes_go() {
    let result = html(
        "<div>Dear Yonas, not yet.</div><div id=\"yahoo_quoted_8473629151\" class=\"yahoo_quoted\">\
         <div>On Tuesday, Helpdesk wrote:</div><div>Old</div></div>",
    );
    assert_eq!(result.text, "Dear Yonas, not yet.");
}

#[test]
fn forwarded_mail_in_html_is_kept() {
    let gmail = html(
        "<div>See below.</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">\
         ---------- Forwarded message ---------<br>From: Council</div><br><div>Letter</div></div>",
    );
    assert_eq!(
        gmail.text,
        "See below.\n---------- Forwarded message ---------\nFrom: Council\n\nLetter"
    );
    let apple = html(
        "See below.<div><br><div>Begin forwarded message:</div><br>\
         <blockquote type=\"cite\"><div><b>From: </b>Council</div><div>Letter</div></blockquote></div>",
    );
    assert_eq!(
        apple.text,
        "See below.\n\nBegin forwarded message:\n\nFrom: Council\nLetter"
    );
}

#[test]
fn a_quoted_notification_of_forwarded_mail_is_still_history() {
    let result = html(
        "<div>I will read the letter.</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">\
         On Tue, Helpdesk wrote:</div><blockquote class=\"gmail_quote\">\
         ##- Please type your reply above this line -##<br><br>New ticket for you.<br><br>\
         ---------- Forwarded message ---------<br>From: Home Office</blockquote></div>",
    );
    assert_eq!(result.text, "I will read the letter.");
    let nested = html(
        "<div>Not yet.</div><div id=\"ydp8c7f1e2ayahoo_quoted_1\" class=\"ydp8c7f1e2ayahoo_quoted\">\
         <div>On Tuesday, Helpdesk wrote:</div><div>Old</div></div>",
    );
    assert_eq!(nested.text, "Not yet.");
}

#[test]
fn signature_elements_go() {
    for signature in [
        "<div class=\"gmail_signature\">Jane<br>07700 900123</div>",
        "<pre class=\"moz-signature\" cols=\"72\">-- \nJane</pre>",
        "<div id=\"Signature\"><div>Jane</div></div>",
        "<div id=\"ms-outlook-mobile-signature\">Get <a href=\"x\">Outlook for Android</a></div>",
        "<div class=\"protonmail_signature_block\">Sent with Proton Mail</div>",
    ] {
        let result = html(&format!("<div>See you.</div>{signature}"));
        assert_eq!(result.text, "See you.", "{signature}");
        assert!(result.removed_signature, "{signature}");
    }
}

#[test]
fn html_layout_becomes_lines_and_hidden_content_stays_hidden() {
    let result = html(
        "<!DOCTYPE html><html><head><title>t</title><style>p {}</style></head><body>\
         <!-- a comment <b>with tags</b> --><p>One &amp; two</p><p>Three&nbsp;four</p>\
         <div>Five<br><br>Six</div><script>alert(1)</script><table><tr><td>a</td><td>b</td></tr>\
         </table><pre>  kept   spaces</pre></body></html>",
    );
    assert_eq!(
        result.text,
        "One & two\n\nThree four\n\nFive\n\nSix\na b\nkept   spaces"
    );
}

#[test]
fn a_quote_that_is_never_closed_runs_to_the_end() {
    let result = html("<div>Answer</div><blockquote type=\"cite\">Old<div>older");
    assert_eq!(result.text, "Answer");
}

// Never panics, never loses everything --------------------------------------------------

/// Lines of the kinds the rules look at, mixed with arbitrary text.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "> .{0,30}",
        ">{1,3}.{0,20}",
        Just(String::new()),
        Just("-- ".to_owned()),
        Just("--".to_owned()),
        Just("Sent from my iPhone".to_owned()),
        Just(REPLY_ABOVE.to_owned()),
        Just(format!("> {REPLY_ABOVE}")),
        Just("On Tue, 12 Mar 2024 at 10:15, Helpdesk <help@charity.example> wrote:".to_owned()),
        Just("On Tue, 12 Mar 2024 at 10:15 Helpdesk <".to_owned()),
        Just("help@charity.example> wrote:".to_owned()),
        Just("________________________________".to_owned()),
        Just("-----Original Message-----".to_owned()),
        Just("---------- Forwarded message ---------".to_owned()),
        Just("From: Helpdesk <help@charity.example>".to_owned()),
        Just("Sent: Tuesday".to_owned()),
        Just("To: agent@example.org".to_owned()),
        Just("Subject: [#12] Housing".to_owned()),
        Just("> 18 years old".to_owned()),
        Just(REMOVED.to_owned()),
        Just("\u{202b}\u{feff}".to_owned()),
    ]
}

/// HTML pieces of the kinds the HTML stage looks at.
fn html_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^<>&]{0,20}",
        Just("<div>".to_owned()),
        Just("</div>".to_owned()),
        Just("<br>".to_owned()),
        Just("<p>".to_owned()),
        Just("</p>".to_owned()),
        Just("<blockquote type=\"cite\">".to_owned()),
        Just("<blockquote>".to_owned()),
        Just("</blockquote>".to_owned()),
        Just("<div class=\"gmail_quote\">".to_owned()),
        Just("<div class=\"gmail_attr\">".to_owned()),
        Just("<div id=\"divRplyFwdMsg\">".to_owned()),
        Just("<div class=\"gmail_signature\">".to_owned()),
        Just("<pre>".to_owned()),
        Just("</pre>".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        Just("<script>".to_owned()),
        Just("&amp;".to_owned()),
        Just("&#x110000;".to_owned()),
        Just("&".to_owned()),
        Just("---------- Forwarded message ---------".to_owned()),
        Just(REPLY_ABOVE.to_owned()),
        Just("é".to_owned()),
    ]
}

proptest! {
    #[test]
    fn plain_stripping_keeps_something_of_any_text(
        lines in prop::collection::vec(line(), 0..40),
        format in prop::sample::select(vec![
            Format::Fixed,
            Format::Flowed,
            Format::FlowedDelSp,
            Format::FromHtml,
        ]),
    ) {
        let text = lines.join("\n");
        let result = keep_something(strip_plain(&text, Purpose::Reply, format), &text);
        if text.chars().any(|c| !c.is_whitespace()) {
            prop_assert!(!result.text.is_empty(), "nothing kept of {text:?}");
        }
    }

    #[test]
    fn html_stripping_never_panics_and_keeps_something(
        pieces in prop::collection::vec(html_piece(), 0..60),
    ) {
        let body = pieces.join("");
        let raw = message("Re: [#12] Housing", "text/html; charset=utf-8", &body);
        let mail = parse_unguarded(&raw, &ParseLimits::default());
        let result = strip_unguarded(&mail, &raw);
        if !mail.text.trim().is_empty() {
            prop_assert!(!result.text.is_empty(), "nothing kept of {body:?}");
        }
    }

    #[test]
    fn stripping_arbitrary_bytes_never_panics(raw in prop::collection::vec(any::<u8>(), 0..400)) {
        let mail = parse_unguarded(&raw, &ParseLimits::default());
        let result = strip_unguarded(&mail, &raw);
        if !mail.text.trim().is_empty() {
            prop_assert!(!result.text.is_empty());
        }
    }
}

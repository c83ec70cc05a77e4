//! What casemail shows people, on the bench: a requester's renderable files reach the
//! caseworker as inert text, a refused forged reply is never quoted as the requester's words,
//! an acknowledgement carries nothing a forged sender chose, `ticket show` hands the terminal
//! no escape sequence, and no address appears in the daemon's log above DEBUG.

use std::time::Duration;

use casemail::mail::parse::{ParseLimits, parse};

use crate::bridge::{register, wait_count};
use crate::daemon::Daemon;
use crate::harness::{self, Bench, FetchedMail};
use crate::ingest::mail;
use crate::routing::cli_ok;

const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until the daemon's store holds ticket 1 with `messages` messages.
async fn wait_messages(daemon: &Daemon, messages: u64) {
    let result = harness::wait_until(PATIENCE, || async {
        daemon
            .tickets()
            .first()
            .is_some_and(|t| t["message_count"].as_u64() == Some(messages))
    })
    .await;
    if let Err(err) = result {
        panic!("{err:#}\ncasemail log:\n{}", daemon.log_tail());
    }
}

/// The one message in `list` whose Subject starts with `prefix`.
fn with_subject<'a>(list: &'a [FetchedMail], prefix: &str) -> &'a FetchedMail {
    let found: Vec<&FetchedMail> = list
        .iter()
        .filter(|m| {
            parse(&m.raw, &ParseLimits::default())
                .subject
                .is_some_and(|s| s.starts_with(prefix))
        })
        .collect();
    assert_eq!(found.len(), 1, "one message with subject {prefix:?}");
    found[0]
}

/// Every line of the daemon's log at INFO, WARN or ERROR that holds one of `addresses`.
fn log_lines_naming(daemon: &Daemon, addresses: &[&str]) -> Vec<String> {
    let log = std::fs::read_to_string(&daemon.log_path).unwrap_or_default();
    log.lines()
        .filter(|line| {
            matches!(
                line.split_whitespace().nth(1),
                Some("INFO" | "WARN" | "ERROR")
            )
        })
        .filter(|line| {
            let line = line.to_lowercase();
            addresses.iter().any(|a| line.contains(&a.to_lowercase()))
        })
        .map(str::to_owned)
        .collect()
}

const BOUNDARY: &str = "outer-7f3a";

/// A request with an HTML body and one file of each renderable kind, plus a photo.
fn request_with_files(from: &str, to: &str) -> Vec<u8> {
    let part = |headers: &str, body: &str| format!("--{BOUNDARY}\r\n{headers}\r\n\r\n{body}\r\n");
    let mut raw = format!(
        "From: Fatima <{from}>\r\nTo: {to}\r\nSubject: My papers\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <papers-1@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\r\n\r\n"
    );
    raw.push_str(&part(
        "Content-Type: text/html; charset=utf-8",
        "<html><body><p>Here are my papers.</p><img src=\"http://tracker.invalid/body.gif\"></body></html>",
    ));
    raw.push_str(&part(
        "Content-Type: text/html; name=\"letter.html\"\r\nContent-Disposition: attachment; filename=\"letter.html\"",
        "<p>Eviction notice</p><img src=\"http://tracker.invalid/letter.gif\"><script>fetch('http://tracker.invalid/js')</script>",
    ));
    raw.push_str(&part(
        "Content-Type: image/svg+xml; name=\"map.svg\"\r\nContent-Disposition: attachment; filename=\"map.svg\"",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><image href=\"http://tracker.invalid/map.png\"/></svg>",
    ));
    raw.push_str(&part(
        "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"landlord.eml\"",
        "From: Landlord <landlord@rent.invalid>\r\nSubject: Notice\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>Leave by Friday</p><img src=\"http://tracker.invalid/fwd.gif\">",
    ));
    raw.push_str(&part(
        "Content-Type: text/calendar; method=REQUEST; name=\"meeting.ics\"\r\nContent-Disposition: attachment; filename=\"meeting.ics\"",
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nORGANIZER:mailto:organiser@elsewhere.invalid\r\nSUMMARY:Meeting\r\nEND:VEVENT\r\nEND:VCALENDAR",
    ));
    raw.push_str(&part(
        "Content-Type: image/jpeg; name=\"photo.jpg\"\r\nContent-Disposition: attachment; filename=\"photo.jpg\"\r\nContent-Transfer-Encoding: base64",
        "/9j/2Q==",
    ));
    raw.push_str(&format!("--{BOUNDARY}--\r\n"));
    raw.into_bytes()
}

#[tokio::test]
async fn a_requesters_html_svg_forwarded_mail_and_invitation_reach_the_caseworker_inert() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();

    bench
        .send_mail(
            &requester.address,
            &[&help.address],
            &request_with_files(&requester.address, &help.address),
        )
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);

    // The raw bytes hold no part a client renders or acts on.
    let raw = String::from_utf8_lossy(&notification.raw).to_lowercase();
    for renderable in [
        "text/html",
        "image/svg+xml",
        "message/rfc822",
        "text/calendar",
        "<img",
        "<script",
    ] {
        assert!(!raw.contains(renderable), "{renderable} in:\n{raw}");
    }
    // Every decoded part, as the caseworker's client reads it.
    let read = parse(&notification.raw, &ParseLimits::default());
    let files: Vec<(Option<&str>, &str)> = read
        .attachments
        .iter()
        .map(|a| (a.name.as_deref(), a.content_type.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            (Some("letter.html.txt"), "text/plain"),
            (Some("map.svg.txt"), "application/octet-stream"),
            (Some("landlord.eml.txt"), "text/plain"),
            (Some("meeting.ics.txt"), "application/octet-stream"),
            (Some("photo.jpg"), "image/jpeg"),
        ]
    );
    let content = |index: usize| {
        String::from_utf8_lossy(read.attachments[index].content().expect("kept")).into_owned()
    };
    let letter = content(0);
    assert!(letter.contains("Eviction notice"), "{letter}");
    let forwarded = content(2);
    assert!(forwarded.contains("Subject: Notice"), "{forwarded}");
    assert!(forwarded.contains("Leave by Friday"), "{forwarded}");
    for text in [&letter, &forwarded, &read.text] {
        assert!(!text.contains("tracker.invalid"), "{text}");
        for markup in ["<p>", "<img", "<script", "href="] {
            assert!(!text.contains(markup), "{markup} in: {text}");
        }
    }
    assert_eq!(
        content(1),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><image href=\"http://tracker.invalid/map.png\"/></svg>",
        "the SVG's source, as bytes"
    );
    assert_eq!(
        read.attachments[4].content().expect("kept"),
        [0xFF, 0xD8, 0xFF, 0xD9],
        "a photo passes unchanged"
    );
    // The notification's own text: the HTML body as text, and what was changed.
    assert!(read.text.contains("Here are my papers."), "{}", read.text);
    assert!(read.text.contains("Files:    5 attached"), "{}", read.text);
    for line in [
        "- letter.html (a web page): sent as its text, letter.html.txt",
        "- map.svg (an SVG image): sent as plain text, map.svg.txt",
        "- landlord.eml (a forwarded message): sent as its text, landlord.eml.txt",
        "- meeting.ics (a calendar invitation): sent as plain text, meeting.ics.txt; do not accept it",
    ] {
        assert!(read.text.contains(line), "{line:?} in:\n{}", read.text);
    }
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn a_refused_forged_reply_is_never_quoted_as_the_requesters_message() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    // Registered, but on no shift: nobody is on duty and the ticket waits.
    register(&daemon, &[("amina", &amina, "agent")], &[]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();

    let request = mail(
        &format!("Fatima <{}>", requester.address),
        &help.address,
        "Eviction",
        Some("evict-planted@phone.example"),
        "",
        "My landlord wants me out by Friday.",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    wait_messages(&daemon, 1).await;
    // Mail under the caseworker's address, without a reply token: refused, kept as a note.
    let forged = mail(
        &format!("Amina <{}>", amina.address),
        &help.address,
        "Re: [#1] Eviction",
        Some("forged-1@attacker.example"),
        "",
        "PLANTED: send a copy of your passport to the address below.",
    );
    bench
        .send_mail(&amina.address, &[&help.address], &forged)
        .await
        .expect("send forged");
    wait_messages(&daemon, 2).await;
    let shown = daemon.ticket(1);
    assert_eq!(shown["messages"][1]["direction"], "note", "{shown:#}");

    cli_ok(&daemon, &["ticket", "assign", "1", "amina"]);
    // The refusal notice (to the registered address) and the notification.
    let received = wait_count(bench, &daemon, &amina, 2).await;
    let notification = with_subject(&received, "[#1]");
    let read = parse(&notification.raw, &ParseLimits::default());
    assert!(
        read.text.contains("My landlord wants me out by Friday."),
        "{}",
        read.text
    );
    assert!(
        read.text
            .contains(&format!("From:     Fatima <{}>", requester.address)),
        "{}",
        read.text
    );
    assert!(
        !notification.contains("PLANTED"),
        "the planted text reached the caseworker:\n{}",
        read.text
    );

    // Nothing above DEBUG named the requester or the caseworker.
    let named = log_lines_naming(&daemon, &[&requester.address, &amina.address]);
    assert!(named.is_empty(), "{named:#?}");
    daemon.terminate().await.expect("stop");
}

#[tokio::test]
async fn an_acknowledgement_carries_nothing_a_forged_sender_chose() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(
        bench,
        &[("acknowledge", "enabled", toml::Value::Boolean(true))],
    );
    let help = daemon.help.clone();
    let victim = bench.new_account("victim");
    daemon.start();

    let forged = mail(
        &format!("=?utf-8?q?We_know_where_you_live?= <{}>", victim.address),
        &help.address,
        "Your husband has your new address",
        Some("forged-ack@attacker.example"),
        "",
        "x",
    );
    bench
        .send_mail(&victim.address, &[&help.address], &forged)
        .await
        .expect("send");
    let acknowledgement = wait_count(bench, &daemon, &victim, 1).await.remove(0);
    let raw = String::from_utf8_lossy(&acknowledgement.raw).into_owned();
    for chosen in ["husband", "new address", "We know", "We_know", "where_you"] {
        assert!(!raw.contains(chosen), "{chosen:?} in:\n{raw}");
    }
    let read = parse(&acknowledgement.raw, &ParseLimits::default());
    assert_eq!(
        read.subject.as_deref(),
        Some("[#1] Your message to Casemail Test Helpdesk")
    );
    assert!(read.text.contains("#1"), "{}", read.text);
    assert_eq!(
        read.in_reply_to.first().map(|m| m.as_str()),
        Some("forged-ack@attacker.example"),
        "still threaded under the message it answers"
    );
    let to = read.to.first().expect("a recipient");
    assert_eq!(to.address, victim.address.to_lowercase());
    assert_eq!(to.name, None);

    // A sender address the mail builder refuses: the acknowledgement cannot be composed, and
    // the warning that says so names no address.
    let unusable = "taro..yamada@docomo.invalid";
    let request = mail(
        unusable,
        &help.address,
        "Help",
        Some("unusable-1@phone.example"),
        "",
        "x",
    );
    bench
        .send_mail(&victim.address, &[&help.address], &request)
        .await
        .expect("send");
    let result = harness::wait_until(PATIENCE, || async { daemon.tickets().len() == 2 }).await;
    if let Err(err) = result {
        panic!("{err:#}\ncasemail log:\n{}", daemon.log_tail());
    }
    daemon.terminate().await.expect("stop");
    // Postfix rewrites the header's address on the way in; whatever part of it is left must
    // not be in the log either.
    let named = log_lines_naming(&daemon, &["yamada", "docomo.invalid", &victim.address]);
    assert!(named.is_empty(), "{named:#?}");
}

#[tokio::test]
async fn ticket_show_hands_the_terminal_no_escape_sequence_from_a_mail() {
    let bench: &Bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();

    // A clipboard write (OSC 52), a title change, a clear screen and a C1 CSI, in the
    // subject, the display name and the body.
    let raw = format!(
        "From: =?utf-8?q?Fatima=1B=5D0=3Bowned=07?= <{from}>\r\nTo: {to}\r\nSubject: =?utf-8?q?Help=1B]52;c;ZXZpbA=3D=3D=07=1B[2J?=\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <escapes-1@phone.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nLine one\r\n=1B]52;c;ZXZpbA=3D=3D=07=1B]0;owned=07=1B[2J=C2=9B1mLine two\r\n",
        from = requester.address,
        to = help.address,
    );
    bench
        .send_mail(&requester.address, &[&help.address], raw.as_bytes())
        .await
        .expect("send");
    wait_messages(&daemon, 1).await;

    // The store holds the text as sent (the JSON shows it, escaped by the encoder) ...
    let stored = daemon.ticket(1);
    let text = stored["messages"][0]["text"].as_str().expect("text");
    assert!(text.contains('\u{1b}'), "{text:?}");
    for field in ["subject", "requester_name"] {
        assert!(
            stored[field].as_str().expect(field).contains('\u{1b}'),
            "{stored:#}"
        );
    }
    // ... and the text output shows every control as an escape, keeping the body's lines.
    let shown = cli_ok(&daemon, &["ticket", "show", "1"]);
    assert!(
        !shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{shown:?}"
    );
    assert!(
        shown.contains("Help\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{1b}[2J"),
        "{shown}"
    );
    assert!(shown.contains("\nLine one\n\\u{1b}]52;c;"), "{shown}");
    assert!(shown.contains("\\u{9b}1mLine two"), "{shown}");
    assert!(
        shown.contains(&format!(
            "Requester: Fatima\\u{{1b}}]0;owned\\u{{7}} <{}>",
            requester.address.to_lowercase()
        )),
        "{shown}"
    );
    let listed = cli_ok(&daemon, &["ticket", "list"]);
    assert!(!listed.contains('\u{1b}'), "{listed:?}");
    daemon.terminate().await.expect("stop");
}

//! The relay gate on the bench: what a requester's mailbox receives after a caseworker answers
//! with files, odd Unicode, empty or command-like replies, and after a merge. Every assertion
//! is on the raw bytes and on each decoded part the requester's server delivered.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use mail_parser::{MessageParser, MimeHeaders};

use casemail::mail::parse::{ParseLimits, parse};

use crate::bridge::{gmail_reply, register, wait_count};
use crate::daemon::Daemon;
use crate::harness::{self, Account, Bench, FetchedMail};
use crate::ingest::mail;

/// Text in several scripts, with letters whose lower case has another length in UTF-8 (Turkish
/// İ, capital sharp S, the Kelvin and Ångström signs), combining marks and bidi controls.
const UNICODE: &str = "İİİİİİİİİİİİİİİİİİİİ ẞẞẞẞẞẞẞẞẞẞ \u{212A}\u{212A}\u{212A}\u{212B}\u{212B}\u{212B} مرحبا بك ሰላም ነው שלום Привет ΣΑΣ e\u{0301}\u{0308} \u{200F}\u{202E}\u{202C} 日本語 ";

/// The token a notification's Reply-To carries.
fn token_of(reply_to: &str) -> String {
    reply_to
        .split_once('+')
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(token, _)| token.to_lowercase())
        .expect("the reply address carries a token")
}

/// Asserts that neither the raw bytes nor any decoded part or header of `received` holds any
/// of `secrets`, in any case.
fn assert_clean(received: &FetchedMail, secrets: &[&str]) {
    let raw = String::from_utf8_lossy(&received.raw).to_lowercase();
    let message = MessageParser::default()
        .parse(&received.raw)
        .expect("the relayed answer parses");
    for secret in secrets {
        let secret = secret.to_lowercase();
        assert!(!raw.contains(&secret), "{secret} in the raw bytes:\n{raw}");
        for part in &message.parts {
            let decoded = String::from_utf8_lossy(part.contents()).to_lowercase();
            assert!(
                !decoded.contains(&secret),
                "{secret} in a decoded part:\n{decoded}"
            );
            for header in &part.headers {
                let value = format!("{:?}", header.value).to_lowercase();
                assert!(!value.contains(&secret), "{secret} in a header: {value}");
            }
        }
    }
}

/// A reply with files, as a mail client sends it: the answer over the quoted notification in
/// the text part, the files after it.
fn reply_with_files(
    from: &Account,
    notification: &[u8],
    answer: &str,
    files: Vec<SinglePart>,
) -> (String, Vec<u8>) {
    let read = parse(notification, &ParseLimits::default());
    let reply_to = read.reply_to.first().expect("Reply-To").address.clone();
    let parent = read.message_id.expect("Message-ID");
    let quoted: String = read.text.lines().map(|l| format!("> {l}\n")).collect();
    let text = format!(
        "{answer}\n\nOn Sun, 22 Nov 2026 at 10:00, Casemail Test Helpdesk <{reply_to}> wrote:\n\n{quoted}"
    );
    let mut parts = MultiPart::mixed().singlepart(
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text),
    );
    for file in files {
        parts = parts.singlepart(file);
    }
    let from_box: Mailbox = format!("Amina Caseworker <{}>", from.address)
        .parse()
        .expect("from");
    let message = lettre::Message::builder()
        .from(from_box)
        .to(reply_to.parse().expect("reply-to"))
        .subject(format!("Re: {}", read.subject.unwrap_or_default()))
        .message_id(Some(format!(
            "<files-{}@volunteers.example>",
            rand::random::<u32>()
        )))
        .in_reply_to(format!("<{}>", parent.as_str()))
        .references(format!("<{}>", parent.as_str()))
        .multipart(parts)
        .expect("reply builds");
    (reply_to, message.formatted())
}

fn file(name: &str, content_type: &str, content: Vec<u8>) -> SinglePart {
    Attachment::new(name.to_owned()).body(content, ContentType::parse(content_type).expect("type"))
}

fn jpeg_with_exif(address: &str) -> Vec<u8> {
    let segment = |marker: u8, contents: &[u8]| {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(
            &u16::try_from(contents.len() + 2)
                .expect("short")
                .to_be_bytes(),
        );
        out.extend_from_slice(contents);
        out
    };
    let mut jpeg = vec![0xFF, 0xD8];
    jpeg.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    jpeg.extend(segment(
        0xE1,
        format!("Exif\0\0Artist Amina Caseworker {address} GPSLatitude 52.52").as_bytes(),
    ));
    jpeg.extend(segment(0xDB, &[0; 65]));
    jpeg.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
    jpeg.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
    jpeg.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
    jpeg
}

fn pdf_with_author(address: &str) -> Vec<u8> {
    use lopdf::{Document, Object, dictionary};
    let mut document = Document::with_version("1.5");
    let pages = document.new_object_id();
    let page = document.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages,
        "MediaBox" => vec![0.into(), 0.into(), 10.into(), 10.into()],
    });
    document.objects.insert(
        pages,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
        }),
    );
    let catalog = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    let info = document.add_object(dictionary! {
        "Author" => Object::string_literal(format!("Amina Caseworker <{address}>")),
        "Producer" => Object::string_literal("Amina's laptop"),
    });
    document.trailer.set("Root", catalog);
    document.trailer.set("Info", info);
    let mut out = Vec::new();
    document
        .save_to(&mut out)
        .expect("the fixture PDF is written");
    out
}

/// Starts a daemon with Amina on duty and Carol coordinating, sends a request from a new
/// requester, and returns the notification Amina received.
async fn ticket_for_amina(
    bench: &'static Bench,
) -> (Daemon, Account, Account, Account, FetchedMail) {
    let hidden = toml::Value::Array(vec![toml::Value::String("Amina Yusuf".to_owned())]);
    let mut daemon = Daemon::live(bench, &[("helpdesk", "hide_names", hidden)]);
    let (amina, carol) = (bench.new_account("amina"), bench.new_account("carol"));
    register(
        &daemon,
        &[("amina", &amina, "agent"), ("carol", &carol, "coordinator")],
        &["amina"],
    );
    let help = daemon.help.clone();
    let requester = bench.new_account("requester");
    daemon.start();
    let request = mail(
        &requester.address,
        &help.address,
        "Asylum interview",
        Some("interview-1@phone.example"),
        "",
        "My interview is next week. What should I bring?",
    );
    bench
        .send_mail(&requester.address, &[&help.address], &request)
        .await
        .expect("send");
    let notification = wait_count(bench, &daemon, &amina, 1).await.remove(0);
    (daemon, amina, carol, requester, notification)
}

#[tokio::test]
async fn a_relayed_answer_carries_no_identity_in_text_headers_or_files() {
    let bench = harness::shared().await;
    let (mut daemon, amina, _carol, requester, notification) = ticket_for_amina(bench).await;
    let read = parse(&notification.raw, &ParseLimits::default());
    let reply_to = read.reply_to.first().expect("Reply-To").address.clone();
    let token = token_of(&reply_to);
    let shouted = amina.address.to_uppercase();
    let kelvin = amina.address.replace('a', "A").replace('k', "\u{212A}");
    let forwarded = format!(
        "From: Amina Caseworker <{address}>\r\nTo: caseworker@home.example\r\nSubject: Interview checklist\r\nReferences: <casemail.n.{token}.0000000000000001@charity.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBring your passport and the letter. Questions: {address}\r\n",
        address = amina.address
    );
    let files = vec![
        file("checklist.eml", "message/rfc822", forwarded.into_bytes()),
        file(
            "amina.vcf",
            "text/vcard",
            format!(
                "BEGIN:VCARD\r\nFN:Amina Caseworker\r\nEMAIL:{}\r\nEND:VCARD\r\n",
                amina.address
            )
            .into_bytes(),
        ),
        file(
            "smime.p7s",
            "application/pkcs7-signature",
            format!("0\u{82} signer {}", amina.address).into_bytes(),
        ),
        file(
            "invite.ics",
            "text/calendar",
            format!(
                "BEGIN:VCALENDAR\r\nORGANIZER:mailto:{}\r\nEND:VCALENDAR\r\n",
                amina.address
            )
            .into_bytes(),
        ),
        Attachment::new_inline("image001.png@01DA".to_owned()).body(
            b"\x89PNG\r\n\x1a\nlogo".to_vec(),
            ContentType::parse("image/png").expect("type"),
        ),
        file(
            "letter.pdf",
            "application/pdf",
            pdf_with_author(&amina.address),
        ),
        file("photo.jpg", "image/jpeg", jpeg_with_exif(&amina.address)),
    ];
    let answer = format!(
        "{UNICODE}{shouted} is my work address.\n{UNICODE}{kelvin}\nبلغني على {} أو help+{token}@charity.example\nBring the letter attached.\n\nAMINA\u{200B} yusuf",
        amina.address
    );
    let (_, reply) = reply_with_files(&amina, &notification.raw, &answer, files);
    bench
        .send_mail(&amina.address, &[&reply_to], &reply)
        .await
        .expect("send reply");

    let received = wait_count(bench, &daemon, &requester, 1).await.remove(0);
    assert_clean(
        &received,
        &[&amina.address, &token, "amina caseworker", "laptop"],
    );
    let message = MessageParser::default()
        .parse(&received.raw)
        .expect("parses");
    let text = message.body_text(0).expect("a text part").into_owned();
    assert!(text.contains("İİİİİİİİİİİİİİİİİİİİ ẞẞẞẞẞẞẞẞẞẞ"), "{text}");
    assert_eq!(text.matches("[caseworker]").count(), 4, "{text}");
    assert!(
        !text.to_lowercase().contains("yusuf"),
        "a hidden name: {text}"
    );
    assert!(text.contains("help+[removed]@charity.example"), "{text}");
    assert!(text.contains("Bring the letter attached."));
    assert!(!text.contains("My interview is next week"), "no quote");
    let names: Vec<String> = message
        .attachments()
        .map(|part| part.attachment_name().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        names,
        ["checklist.txt", "letter.pdf", "photo.jpg"],
        "{names:?}"
    );
    let contents: Vec<Vec<u8>> = message
        .attachments()
        .map(|part| part.contents().to_vec())
        .collect();
    let checklist = String::from_utf8_lossy(&contents[0]);
    assert!(
        checklist.contains("Subject: Interview checklist"),
        "{checklist}"
    );
    assert!(checklist.contains("Bring your passport and the letter. Questions: [caseworker]"));
    assert!(!checklist.contains("caseworker@home.example"));
    let pdf = lopdf::Document::load_mem(&contents[1]).expect("the relayed PDF loads");
    assert!(!pdf.trailer.has(b"Info"), "no Info dictionary");
    assert_eq!(pdf.get_pages().len(), 1);
    assert!(contents[2].starts_with(b"\xFF\xD8\xFF\xE0"));
    assert!(!contents[2].windows(4).any(|w| w == b"Exif"), "no EXIF");
    assert!(!contents[2].windows(3).any(|w| w == b"GPS"), "no EXIF");

    // Amina is told what was left out and what was cleaned.
    let told = crate::routing::mail_containing(bench, &mut daemon, &amina, "Done:").await;
    let told = parse(&told.raw, &ParseLimits::default()).text;
    for expected in [
        "amina.vcf: a contact card, not sent",
        "smime.p7s: a digital signature, not sent",
        "invite.ics: a calendar invitation, not sent",
        "an image in the body of your message",
        "letter.pdf: sent without its metadata",
        "photo.jpg: sent without its metadata",
        "a forwarded message: sent as its text only",
    ] {
        assert!(told.contains(expected), "{expected:?} not in:\n{told}");
    }
    daemon.terminate().await.expect("stop");
    assert_eq!(
        bench.list(&requester, "INBOX").await.expect("list").len(),
        1
    );
}

#[tokio::test]
async fn empty_unknown_and_note_replies_never_reach_the_requester() {
    let bench = harness::shared().await;
    let (mut daemon, amina, carol, requester, notification) = ticket_for_amina(bench).await;
    let read = parse(&notification.raw, &ParseLimits::default());
    let reply_to = read.reply_to.first().expect("Reply-To").address.clone();

    // Each held reply: Amina is told, one confirmation each, in order.
    let held: Vec<(Vec<u8>, &str)> = vec![
        (
            gmail_reply(&amina, &notification.raw, "").1,
            "nothing was written above the quoted notification",
        ),
        (
            gmail_reply(&amina, &notification.raw, "Sent from my iPhone").1,
            "nothing was written above the quoted notification",
        ),
        (
            reply_with_files(
                &amina,
                &notification.raw,
                "",
                vec![file(
                    "letter.pdf",
                    "application/pdf",
                    pdf_with_author("x@y.example"),
                )],
            )
            .1,
            "it carries files but no text",
        ),
        (
            gmail_reply(
                &amina,
                &notification.raw,
                "\u{200B}#nte she is scared of her brother",
            )
            .1,
            "looks like a command but is not one",
        ),
    ];
    for (index, (reply, expected)) in held.iter().enumerate() {
        bench
            .send_mail(&amina.address, &[&reply_to], reply)
            .await
            .expect("send");
        let confirmations = wait_count(bench, &daemon, &amina, index + 2).await;
        let told = confirmations
            .iter()
            .map(|m| parse(&m.raw, &ParseLimits::default()).text)
            .find(|text| text.contains(expected));
        let told = told.unwrap_or_else(|| panic!("Amina is not told {expected:?}"));
        assert!(told.contains("was NOT sent to the requester"), "{told}");
        assert!(told.contains("type your answer above the line"), "{told}");
    }

    // Every spelling of #note is a note: the coordinator reads it, the requester never does.
    let notes = [
        "#note: NOTE-A she fears her brother",
        "#notes\nNOTE-B she fears her brother",
        "\u{200B}#note\nNOTE-C she fears her brother",
        "\u{FEFF}#note\nNOTE-D she fears her brother",
        "\u{200E}# Note - NOTE-E she fears her brother",
    ];
    for note in notes {
        let (_, reply) = gmail_reply(&amina, &notification.raw, note);
        bench
            .send_mail(&amina.address, &[&reply_to], &reply)
            .await
            .expect("send note");
        let marker = note
            .split_whitespace()
            .find(|w| w.starts_with("NOTE-"))
            .expect("marker");
        crate::routing::mail_containing(bench, &mut daemon, &carol, marker).await;
    }

    // Then a real answer: the only message the requester ever receives.
    let (_, answer) = gmail_reply(&amina, &notification.raw, "Bring your passport.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send answer");
    let received = wait_count(bench, &daemon, &requester, 1).await;
    daemon.terminate().await.expect("stop");
    let all = bench.list(&requester, "INBOX").await.expect("list");
    assert_eq!(all.len(), 1, "only the real answer arrived");
    let text = parse(&received[0].raw, &ParseLimits::default()).text;
    assert!(text.contains("Bring your passport."), "{text}");
    for leaked in [
        "NOTE-",
        "brother",
        "Sent from",
        "Ticket:",
        "not shown",
        "##-",
    ] {
        assert!(
            !received[0].contains(leaked),
            "{leaked:?} reached the requester"
        );
        assert!(!text.contains(leaked), "{leaked:?} reached the requester");
    }
    assert_clean(&received[0], &[&amina.address, &token_of(&reply_to)]);

    let ticket = daemon.ticket(1);
    let kinds: Vec<&str> = ticket["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "reply_held").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "note").count(), 5);
}

#[tokio::test]
async fn after_a_merge_the_answer_threads_under_the_requesters_own_messages_only() {
    let bench = harness::shared().await;
    let mut daemon = Daemon::live(bench, &[]);
    let amina = bench.new_account("amina");
    register(&daemon, &[("amina", &amina, "agent")], &["amina"]);
    let help = daemon.help.clone();
    let (first, second) = (
        bench.new_account("requester"),
        bench.new_account("requester"),
    );
    daemon.start();
    for (index, (who, id)) in [
        (&first, "mine@phone.example"),
        (&second, "theirs@mail.example"),
    ]
    .into_iter()
    .enumerate()
    {
        let request = mail(
            &who.address,
            &help.address,
            "School place",
            Some(id),
            "",
            "Can my son start school?",
        );
        bench
            .send_mail(&who.address, &[&help.address], &request)
            .await
            .expect("send");
        wait_count(bench, &daemon, &amina, index + 1).await;
    }
    let notifications = bench.list(&amina, "INBOX").await.expect("list");
    let for_second = notifications
        .iter()
        .find(|m| m.contains("[#2]"))
        .expect("notification for #2");
    let (reply_to, merge) = gmail_reply(&amina, &for_second.raw, "#merge 1");
    bench
        .send_mail(&amina.address, &[&reply_to], &merge)
        .await
        .expect("send merge");
    crate::routing::mail_containing(bench, &mut daemon, &amina, "#2 merged into #1").await;
    let for_first = notifications
        .iter()
        .find(|m| m.contains("[#1]"))
        .expect("notification for #1");
    let (reply_to, answer) = gmail_reply(&amina, &for_first.raw, "Yes, from Monday.");
    bench
        .send_mail(&amina.address, &[&reply_to], &answer)
        .await
        .expect("send answer");
    let received = wait_count(bench, &daemon, &first, 1).await.remove(0);
    daemon.terminate().await.expect("stop");
    let read = parse(&received.raw, &ParseLimits::default());
    assert_eq!(
        read.in_reply_to.first().map(|m| m.as_str()),
        Some("mine@phone.example")
    );
    let references: Vec<&str> = read.references.iter().map(|m| m.as_str()).collect();
    assert_eq!(references, ["mine@phone.example"]);
    assert!(
        !received.contains("theirs@mail.example"),
        "another requester's Message-ID reached this one"
    );
    assert!(
        bench.list(&second, "INBOX").await.expect("list").is_empty(),
        "nothing reached the other requester"
    );
}

use std::collections::BTreeSet;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::casework::reply::{Command, commands};
use crate::ids::{MailKey, TicketId};
use crate::mail::parse::{ParseLimits, parse};
use crate::mail::sanitize::without_format;
use crate::model::Status;

const ADDRESS: &str = "kate.kowalski@volunteers.example";
const OTHER: &str = "jonas@volunteers.example";
const TOKEN: &str = "cm.12.kate.0123456789abcdef01234567";

/// Built once: compiling the patterns dominates a property test's cases in a debug build.
fn secrets() -> &'static Secrets {
    static SECRETS: std::sync::LazyLock<Secrets> =
        std::sync::LazyLock::new(|| Secrets::new([ADDRESS, OTHER], [TOKEN]));
    &SECRETS
}

fn stripped(text: &str) -> Stripped {
    Stripped {
        text: text.to_owned(),
        removed_quote: true,
        removed_signature: false,
        only_history: false,
    }
}

fn decide_text(text: &str, files: &[File]) -> Decision {
    let parsed = commands(text);
    decide(&stripped(text), &parsed, files, secrets())
}

fn relayed_text(text: &str) -> String {
    match decide_text(text, &[]) {
        Decision::Relay(cleared) => cleared.text,
        other => panic!("expected a relay of {text:?}, got {other:?}"),
    }
}

#[test]
fn letters_whose_lower_case_is_longer_do_not_move_the_cut() {
    // İ (2 bytes) lower-cases to "i̇" (3 bytes), ẞ to ß, K (Kelvin, 3 bytes) to k (1 byte),
    // Å (Ångström, 3 bytes) to å (2 bytes): a cut at offsets of a lower-cased copy lands
    // elsewhere in the original.
    for prefix in [
        "İ".repeat(40),
        "ẞ".repeat(40),
        "K".repeat(40),
        "Å".repeat(40),
    ] {
        let text = format!("{prefix} write to {ADDRESS} today");
        assert_eq!(
            secrets().scrub(&text),
            format!("{prefix} write to {ADDRESS_STAND_IN} today")
        );
    }
}

#[test]
fn addresses_are_found_in_any_case_and_with_invisible_characters_inside() {
    assert_eq!(
        secrets().scrub("Mail KATE.KOWALSKI@Volunteers.Example or jonas@VOLUNTEERS.example."),
        "Mail [caseworker] or [caseworker]."
    );
    // The Kelvin sign folds to k; a zero-width space and a soft hyphen hide nothing.
    assert_eq!(
        secrets().scrub("\u{212A}ate.kow\u{200B}alski@volun\u{00AD}teers.example"),
        ADDRESS_STAND_IN
    );
}

#[test]
fn configured_names_are_removed_as_whole_words() {
    let secrets = Secrets::with_names([ADDRESS], [], ["Kate Kowalski", "Katie"]);
    assert_eq!(
        secrets.scrub("Best wishes,\nKATE  kowalski (Katie to friends), not Katies or Kate."),
        "Best wishes,\n[caseworker] ([caseworker] to friends), not Katies or Kate."
    );
    assert_eq!(
        secrets.scrub("İİİİ kate\u{200B}\nKowalski"),
        "İİİİ [caseworker]"
    );
}

#[test]
fn addresses_beyond_ascii_build_both_patterns() {
    let secrets = Secrets::new(
        [
            "jürgen@straße.example",
            "jürgen@straße.example",
            "😀@x.example",
        ],
        [],
    );
    assert_eq!(
        secrets.scrub("JÜRGEN@STRASSE.example or jürgen@straße.example, 😀@X.example"),
        "JÜRGEN@STRASSE.example or [caseworker], [caseworker]"
    );
    assert!(secrets.found_in("an jürgen@straße.example".as_bytes()));
    assert!(
        !secrets.found_in(b"nothing here"),
        "the bytes pattern compiled"
    );
}

#[test]
fn a_large_team_still_builds_both_patterns() {
    let addresses: Vec<String> = (0..400)
        .map(|n| format!("volunteer.number.{n}@some-charity-partner.example"))
        .collect();
    let secrets = Secrets::new(addresses.iter().map(String::as_str), [TOKEN]);
    assert_eq!(
        secrets.scrub("write to Volunteer.Number.399@some-charity-partner.example"),
        "write to [caseworker]"
    );
    assert!(
        !secrets.found_in(b"nothing here"),
        "the bytes pattern compiled"
    );
}

#[test]
fn every_token_shape_is_removed_not_only_the_current_one() {
    assert_eq!(
        secrets().scrub(&format!(
            "reply to help+{}@charity.example or cm.99.jonas.ffffffffffffffffffffffff.0000000000000001@x",
            TOKEN.to_uppercase()
        )),
        "reply to help+[removed]@charity.example or [removed]@x"
    );
}

#[test]
fn an_empty_answer_is_held_never_relayed_as_the_quote() {
    let quote = Stripped {
        text: "On Monday Helpdesk wrote:\n> ##- Please type your reply above this line -##"
            .to_owned(),
        removed_quote: false,
        removed_signature: false,
        only_history: true,
    };
    let parsed = commands(&quote.text);
    assert_eq!(
        decide(&quote, &parsed, &[], secrets()),
        Decision::Hold(Hold::Empty)
    );
    assert_eq!(decide_text("", &[]), Decision::Hold(Hold::Empty));
    assert_eq!(
        decide_text("\u{200B}\u{FEFF}", &[]),
        Decision::Hold(Hold::Empty)
    );
    assert_eq!(decide_text("#close", &[]), Decision::CommandsOnly);
    assert_eq!(
        decide_text("", &[pdf_file(b"%PDF-1.4 broken")]),
        Decision::Hold(Hold::FilesOnly)
    );
}

#[test]
fn a_first_line_that_looks_like_a_command_holds_the_answer() {
    for text in [
        "#nte called the GP",
        "\u{200B}#clsoe\nThanks",
        "\u{FEFF}# privat: she is scared",
        "\u{200F}#Internal only",
        "\u{FF03}memo",
    ] {
        assert!(
            matches!(
                decide_text(text, &[]),
                Decision::Hold(Hold::UnknownCommand(_))
            ),
            "{text:?}"
        );
    }
    assert!(matches!(
        decide_text("#close now please\nThanks", &[]),
        Decision::Hold(Hold::UnreadableCommand(_))
    ));
    assert_eq!(
        relayed_text("#1 priority is the appointment."),
        "#1 priority is the appointment."
    );
}

#[test]
fn every_spelling_of_note_is_a_note() {
    for text in [
        "#note\nShe may need an interpreter.",
        "#note: She may need an interpreter.",
        "#notes\nShe may need an interpreter.",
        "#NOTE - She may need an interpreter.",
        "# note\nShe may need an interpreter.",
        "\u{200B}#note\nShe may need an interpreter.",
        "\u{FEFF}#note:\nShe may need an interpreter.",
        "\u{200E}\u{2060}#Notes: She may need an interpreter.",
        "\n\u{200B}\n#note\nShe may need an interpreter.",
        "#assign amina\n#note\nShe may need an interpreter.",
    ] {
        let parsed = commands(text);
        assert!(parsed.commands.contains(&Command::Note), "{text:?}");
        assert_eq!(parsed.body, "She may need an interpreter.", "{text:?}");
    }
}

#[test]
fn the_notification_header_block_in_the_text_holds_the_answer() {
    assert_eq!(
        decide_text(
            "Thanks\n\n> Ticket:   #12\n> Status:   open\n> From:     Amal",
            &[]
        ),
        Decision::Hold(Hold::QuotedNotification)
    );
    assert_eq!(
        relayed_text("Your ticket is #12. Status: we are on it."),
        "Your ticket is #12. Status: we are on it."
    );
    // Lengths in centimetres are not tokens.
    assert_eq!(
        relayed_text("The photo is 12cm.5 wide"),
        "The photo is 12cm.5 wide"
    );
}

#[test]
fn the_notification_marker_in_the_text_holds_the_answer() {
    assert_eq!(
        decide_text(
            "Thanks\n\n##- Please type your reply ABOVE this line -##\nTicket: #12",
            &[]
        ),
        Decision::Hold(Hold::QuotedNotification)
    );
}

fn file(name: &str, content_type: &str, content: &[u8]) -> File {
    File {
        name: Some(name.to_owned()),
        content_type: content_type.to_owned(),
        content: Some(content.to_vec()),
        inline: false,
    }
}

fn pdf_file(content: &[u8]) -> File {
    file("letter.pdf", "application/pdf", content)
}

fn decide_files(files: &[File]) -> Decision {
    decide_text("Please see the attached.", files)
}

#[test]
fn identity_files_are_dropped_and_said() {
    let mut logo = file("logo.png", "image/png", &png_with_text());
    logo.inline = true;
    let files = [
        file(
            "kate.vcf",
            "text/x-vcard",
            b"BEGIN:VCARD\r\nEMAIL:kate@x\r\n",
        ),
        file(
            "smime.p7s",
            "application/pkcs7-signature",
            b"0\x82 kate.kowalski@volunteers.example",
        ),
        file("invite.ics", "text/calendar", b"BEGIN:VCALENDAR"),
        file("image001.png", "image/png", &png_with_text()),
        logo,
    ];
    let Decision::Relay(cleared) = decide_files(&files) else {
        panic!("the answer itself may go");
    };
    assert!(cleared.attachments.is_empty());
    assert_eq!(cleared.removed.len(), 5, "{:?}", cleared.removed);
    assert!(cleared.removed[0].contains("contact card"));
    assert!(cleared.removed[1].contains("digital signature"));
    assert!(cleared.removed[2].contains("calendar"));
    assert!(cleared.removed[3].contains("body of your message"));
}

fn jpeg_with_exif() -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8];
    let segment = |marker: u8, contents: &[u8]| {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&u16::try_from(contents.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(contents);
        out
    };
    jpeg.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    jpeg.extend(segment(
        0xE1,
        format!("Exif\0\0Artist Kate Kowalski {ADDRESS} GPS 52.52N").as_bytes(),
    ));
    jpeg.extend(segment(0xFE, b"taken by kate"));
    jpeg.extend(segment(0xDB, &[0; 65]));
    jpeg.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
    jpeg.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
    jpeg.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
    jpeg
}

fn png_with_text() -> Vec<u8> {
    let chunk = |kind: &[u8; 4], data: &[u8]| {
        let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&[&kind[..], data].concat()).to_be_bytes());
        out
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    png.extend(chunk(b"tEXt", format!("Author\0{ADDRESS}").as_bytes()));
    png.extend(chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0, 0, 0, 1, 0, 1]));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// The CRC of PNG chunks (ISO 3309, as in the PNG specification's sample code).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn pdf_with_author() -> Vec<u8> {
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
            "Type" => "Pages",
            "Kids" => vec![page.into()],
            "Count" => 1,
        }),
    );
    let xmp = document.add_object(lopdf::Stream::new(
        dictionary! { "Type" => "Metadata", "Subtype" => "XML" },
        format!("<x:xmpmeta><dc:creator>{ADDRESS}</dc:creator></x:xmpmeta>").into_bytes(),
    ));
    let catalog = document.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages,
        "Metadata" => xmp,
    });
    let info = document.add_object(dictionary! {
        "Author" => Object::string_literal(format!("Kate Kowalski <{ADDRESS}>")),
        "Creator" => Object::string_literal("Kate's laptop"),
        "Title" => Object::string_literal("Letter"),
    });
    document.trailer.set("Root", catalog);
    document.trailer.set("Info", info);
    let mut out = Vec::new();
    document.save_to(&mut out).unwrap();
    out
}

#[test]
fn photos_and_pdfs_go_without_their_metadata() {
    let files = [
        file("photo.jpg", "image/jpeg", &jpeg_with_exif()),
        file("scan.png", "image/png", &png_with_text()),
        pdf_file(&pdf_with_author()),
    ];
    for file in &files {
        assert!(secrets().found_in(file.content.as_deref().unwrap()));
    }
    let decision = decide_files(&files);
    let Decision::Relay(cleared) = decision else {
        panic!("cleanable files do not hold the answer: {decision:?}");
    };
    assert_eq!(cleared.attachments.len(), 3);
    for attachment in &cleared.attachments {
        assert!(
            !secrets().found_in(&attachment.content),
            "{:?}",
            attachment.name
        );
    }
    let [jpeg, png, pdf] = &cleared.attachments[..] else {
        unreachable!()
    };
    assert!(jpeg.content.starts_with(b"\xFF\xD8\xFF\xE0"));
    assert!(!jpeg.content.windows(4).any(|w| w == b"Exif"));
    assert!(!jpeg.content.windows(5).any(|w| w == b"taken"));
    assert!(png.content.windows(4).any(|w| w == b"IDAT"));
    assert!(!png.content.windows(4).any(|w| w == b"tEXt"));
    let document = lopdf::Document::load_mem(&pdf.content).unwrap();
    assert!(!document.trailer.has(b"Info"));
    assert!(!document.catalog().unwrap().has(b"Metadata"));
    assert!(!pdf.content.windows(6).any(|w| w == b"Author"));
    assert!(!pdf.content.windows(7).any(|w| w == b"laptop"));
    assert_eq!(document.get_pages().len(), 1);
}

#[test]
fn files_that_cannot_be_cleaned_hold_the_answer() {
    for file in [
        file(
            "plan.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            b"PK\x03\x04docProps/core.xml",
        ),
        file("photo.heic", "image/heic", b"\0\0\0\x18ftypheic"),
        pdf_file(b"%PDF-1.4 not really a PDF"),
        file(
            "notes.txt",
            "text/plain",
            b"##- Please type your reply above this line -##",
        ),
    ] {
        assert!(
            matches!(
                decide_files(std::slice::from_ref(&file)),
                Decision::Hold(Hold::File { .. })
            ),
            "{:?}",
            file.name
        );
    }
}

#[test]
fn a_forwarded_message_goes_as_its_scrubbed_text() {
    let forwarded = format!(
        "From: Kate Kowalski <{ADDRESS}>\r\nTo: landlord@flats.example\r\nReferences: <casemail.n.{TOKEN}.00000001@charity.example>\r\nSubject: Repairs for flat 3\r\nContent-Type: text/plain\r\n\r\nPlease fix the heating. Write to {ADDRESS}.\r\n"
    );
    let Decision::Relay(cleared) =
        decide_files(&[file("Repairs.eml", "message/rfc822", forwarded.as_bytes())])
    else {
        panic!("a forwarded message is relayed as text");
    };
    let [attachment] = &cleared.attachments[..] else {
        panic!("one attachment");
    };
    let text = String::from_utf8(attachment.content.clone()).unwrap();
    assert!(text.contains("Subject: Repairs for flat 3"));
    assert!(text.contains("Please fix the heating. Write to [caseworker]."));
    assert!(!secrets().found_in_text(&text));
    assert!(
        !text.contains("landlord@"),
        "no headers but subject and date"
    );
    assert_eq!(attachment.name.as_deref(), Some("Repairs.txt"));
    assert!(attachment.content_type.starts_with("text/plain"));
}

#[test]
fn inline_parts_are_recognised_from_the_raw_message() {
    let png = png_with_text();
    let encoded = base64_lines(&png);
    let raw = format!(
        "From: {ADDRESS}\r\nTo: help@charity.example\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Thanks</p><img src=\"cid:logo@x\">\r\n--b\r\nContent-Type: image/png; name=logo.png\r\nContent-ID: <logo@x>\r\nContent-Disposition: attachment; filename=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
    );
    let mail = parse(raw.as_bytes(), &ParseLimits::default());
    let files = files::read(&mail, raw.as_bytes());
    assert_eq!(files.len(), 1);
    assert!(files[0].inline);
}

fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stored(seq: u32, direction: Direction, from: &str, id: &str) -> StoredMessage {
    StoredMessage {
        ticket: TicketId(1),
        seq,
        direction,
        key: MailKey::ContentHash(id.to_owned()),
        message_id: crate::ids::MessageId::parse(id),
        from: Some(from.to_owned()),
        from_name: None,
        to: Vec::new(),
        cc: Vec::new(),
        subject: None,
        date: None,
        received: Timestamp::UNIX_EPOCH,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        text: String::new(),
        attachments: Vec::new(),
        anomalies: Vec::new(),
        sources: Vec::new(),
    }
}

#[test]
fn only_the_requesters_own_message_ids_thread_the_answer() {
    let ticket = Ticket {
        id: TicketId(1),
        status: Status::Open,
        subject: "Housing".to_owned(),
        requester: "Amal@Phone.example".to_owned(),
        requester_name: None,
        owner: None,
        assigned_at: None,
        last_agent_reply: None,
        merged_into: None,
        participants: BTreeSet::new(),
        flags: BTreeSet::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: Timestamp::UNIX_EPOCH,
        message_count: 4,
        event_count: 0,
    };
    let messages = [
        stored(0, Direction::In, "amal@phone.example", "a1@phone.example"),
        stored(1, Direction::Out, ADDRESS, "r1@charity.example"),
        // Merged from another requester's ticket.
        stored(2, Direction::In, "other@mail.example", "o1@mail.example"),
        stored(3, Direction::Note, ADDRESS, "n1@volunteers.example"),
        stored(4, Direction::In, "amal@phone.example", "a2@phone.example"),
    ];
    let (parent, references) = threading(&ticket, &messages);
    assert_eq!(parent.unwrap().as_str(), "a2@phone.example");
    let references: Vec<&str> = references.iter().map(|r| r.as_str()).collect();
    assert_eq!(references, ["a1@phone.example", "a2@phone.example"]);
}

#[test]
fn a_composed_answer_with_an_address_in_a_part_fails_the_last_check() {
    let raw = format!(
        "From: help@charity.example\r\nTo: amal@phone.example\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64_lines(format!("hi from {}", ADDRESS.to_uppercase()).as_bytes())
    );
    assert!(!check_composed(
        raw.as_bytes(),
        secrets(),
        "amal@phone.example"
    ));
    let clean = "From: help@charity.example\r\nTo: amal@phone.example\r\n\r\nhi\r\n";
    assert!(check_composed(
        clean.as_bytes(),
        secrets(),
        "amal@phone.example"
    ));
    // A requester whose address contains a caseworker's still gets answers.
    let cousin = "From: help@charity.example\r\nTo: Bjonas@Volunteers.example\r\n\r\nhi\r\n";
    assert!(check_composed(
        cousin.as_bytes(),
        secrets(),
        "bjonas@volunteers.example"
    ));
    assert!(!check_composed(
        cousin.as_bytes(),
        secrets(),
        "amal@phone.example"
    ));
}

// Property tests: generated text in many scripts around the address, in any case.

fn surrounding() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("İ".to_owned()),
        Just("ı".to_owned()),
        Just("ẞ".to_owned()),
        Just("ß".to_owned()),
        Just("\u{212A}".to_owned()),
        Just("\u{212B}".to_owned()),
        Just("Å".to_owned()),
        Just("\u{0301}".to_owned()),
        Just("\u{0308}".to_owned()),
        Just("\u{200B}".to_owned()),
        Just("\u{200F}".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("\u{FEFF}".to_owned()),
        Just("مرحبا".to_owned()),
        Just("שלום".to_owned()),
        Just("ሰላም".to_owned()),
        Just("سلام".to_owned()),
        Just("Привет".to_owned()),
        Just("ΣΑΣ".to_owned()),
        Just("ﬃ".to_owned()),
        Just("日本".to_owned()),
        Just("👩‍👧".to_owned()),
        Just("kate".to_owned()),
        Just("volunteers.example".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just(".".to_owned()),
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("mailto:".to_owned()),
        prop::sample::select(vec!['a', 'Z', '0', ' ', '-', '_']).prop_map(String::from),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40)
        .prop_map(|pieces| pieces.concat())
        .prop_filter("no @ around the address", |text| !text.contains('@'))
}

/// The address in a random case, with the Kelvin sign for some k's.
fn disguised(address: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..3, address.chars().count()).prop_map(move |choices| {
        address
            .chars()
            .zip(choices)
            .map(|(c, choice)| match (c, choice) {
                ('k', 2) => '\u{212A}',
                (c, 1) => c.to_ascii_uppercase(),
                (c, _) => c,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_of_an_address_survives_any_text_around_it(
        before in surrounding(),
        address in disguised(ADDRESS),
        after in surrounding(),
    ) {
        let text = format!("{before}{address}{after}");
        let scrubbed = secrets().scrub(&text);
        prop_assert_eq!(&scrubbed, &format!("{before}{ADDRESS_STAND_IN}{after}"));
        prop_assert!(!without_format(&scrubbed).to_lowercase().contains(ADDRESS));
    }

    #[test]
    fn the_gate_never_relays_an_address_or_a_token(
        pieces in prop::collection::vec(
            prop_oneof![
                surrounding(),
                disguised(ADDRESS),
                disguised(OTHER),
                Just(TOKEN.to_uppercase()),
                Just(format!("help+{TOKEN}@charity.example")),
                Just("#".to_owned()),
                Just("#note".to_owned()),
                Just(crate::mail::strip::REPLY_ABOVE.to_owned()),
            ],
            0..12,
        ),
    ) {
        let text = pieces.concat();
        if let Decision::Relay(cleared) = decide_text(&text, &[]) {
            let seen = without_format(&cleared.text).to_lowercase();
            prop_assert!(!seen.contains(ADDRESS), "{seen:?}");
            prop_assert!(!seen.contains(OTHER), "{seen:?}");
            prop_assert!(!seen.contains(TOKEN), "{seen:?}");
            prop_assert!(!secrets().found_in_text(&cleared.text));
            prop_assert!(looks_like_command(&cleared.text).is_none());
            prop_assert!(!contains_marker(&cleared.text));
        }
    }

    #[test]
    fn the_command_parser_reads_any_text_and_never_relays_a_note(
        format in prop::collection::vec(
            prop::sample::select(vec!["\u{200B}", "\u{FEFF}", "\u{200E}", "\u{2060}", " ", "\n"]),
            0..4,
        ),
        spelling in prop::sample::select(vec![
            "#note", "#note:", "#notes", "#NOTE", "# note", "#Notes:", "\u{FF03}note", "#note -",
        ]),
        rest in "\\PC{0,60}",
    ) {
        let text = format!("{}{spelling}\n{rest}", format.concat());
        let parsed = commands(&text);
        prop_assert!(parsed.commands.contains(&Command::Note), "{text:?}");
    }

    #[test]
    fn a_reply_of_a_tagline_over_the_quote_is_never_relayed(
        tagline in prop::sample::select(vec![
            "", " ", "\u{200B}", "Sent from my iPhone", "Sent from my iPad",
            "Envoyé de mon iPhone", "Von meinem iPhone gesendet", "Get Outlook for Android",
            "Sent from Yahoo Mail on Android", "-- \nAmina", "\u{FEFF}",
        ]),
        attribution in prop::sample::select(vec![
            "On Mon, 7 Dec 2026 at 10:00, Helpdesk <help@charity.example> wrote:",
            "Le lun. 7 déc. 2026 à 10:00, Helpdesk <help@charity.example> a écrit :",
            "Am Mo., 7. Dez. 2026 um 10:00 Uhr schrieb Helpdesk <help@charity.example>:",
            "-----Original Message-----\nFrom: Helpdesk\nSent: Monday\nTo: Amina\nSubject: [#12] Housing",
            "",
        ]),
        quoted in prop::bool::ANY,
        blank_lines in 0usize..3,
    ) {
        let notification = format!(
            "{}\n\nNew ticket for you. Reply to this message to answer the requester; your address is not shown to them.\n\nTicket:   #12\nStatus:   open\nFrom:     Amal <amal@phone.example>\n----------\n\nMy landlord wants me out.",
            crate::mail::strip::REPLY_ABOVE
        );
        let quote: String = notification
            .lines()
            .map(|line| if quoted { format!("> {line}\n") } else { format!("{line}\n") })
            .collect();
        let text = format!("{tagline}{}\n{attribution}\n{quote}", "\n".repeat(blank_lines));
        let stripped = crate::mail::strip::strip_text(&text);
        let parsed = if stripped.only_history {
            crate::casework::reply::Commands { body: stripped.text.clone(), ..Default::default() }
        } else {
            commands(&stripped.text)
        };
        let decision = decide(&stripped, &parsed, &[], secrets());
        prop_assert!(
            !matches!(decision, Decision::Relay(_)),
            "relayed {:?} from {text:?}",
            decision
        );
    }

    #[test]
    fn the_command_parser_and_the_gate_take_arbitrary_text(text in "\\PC{0,200}") {
        let parsed = commands(&text);
        let decision = decide(&stripped(&text), &parsed, &[], secrets());
        if let Decision::Relay(cleared) = decision {
            prop_assert!(!cleared.text.trim().is_empty());
            prop_assert!(looks_like_command(&cleared.text).is_none());
        }
    }

    #[test]
    fn the_file_cleaners_take_arbitrary_bytes(
        head in prop::sample::select(vec![
            b"\xFF\xD8\xFF".to_vec(), b"\x89PNG\r\n\x1a\n".to_vec(), b"%PDF-1.4\n".to_vec(), Vec::new(),
        ]),
        body in prop::collection::vec(any::<u8>(), 0..300),
        kind in prop::sample::select(vec!["image/jpeg", "image/png", "application/pdf", "message/rfc822", "text/plain"]),
    ) {
        let content = [head, body].concat();
        let file = file("file", kind, &content);
        if let FileOutcome::Relay { attachment, .. } = files::clean(&file, secrets()) {
            prop_assert!(!secrets().found_in(&attachment.content));
        }
    }
}

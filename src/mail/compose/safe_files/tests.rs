use super::*;

fn file(name: Option<&str>, content_type: &str, content: &str) -> AttachmentBytes {
    AttachmentBytes {
        name: name.map(str::to_owned),
        content_type: content_type.to_owned(),
        content: content.as_bytes().to_vec(),
    }
}

const PAGE: &str = r#"<html><head><title>t</title><style>body{background:url(https://tracker.example/bg.png)}</style>
<script>fetch("https://tracker.example/opened")</script></head>
<body><p>My landlord&#39;s letter:</p><img src="https://tracker.example/pixel.gif"><a href="https://tracker.example/x">read it</a>
<iframe src="https://tracker.example/frame"></iframe></body></html>"#;

/// Whether anything in `bytes` could make a client fetch or run something.
fn loads_anything(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    [
        "tracker.example",
        "<script",
        "<img",
        "<iframe",
        "src=",
        "href=",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[test]
fn an_html_file_becomes_its_text_with_nothing_that_loads_or_runs() {
    let safe = for_caseworker(&[file(Some("letter.html"), "text/html", PAGE)]);
    assert_eq!(safe.files.len(), 1);
    let sent = &safe.files[0];
    assert_eq!(sent.name.as_deref(), Some("letter.html.txt"));
    assert_eq!(sent.content_type, "text/plain; charset=utf-8");
    let text = String::from_utf8_lossy(&sent.content);
    assert!(text.contains("My landlord's letter:"), "{text}");
    assert!(text.contains("read it"), "{text}");
    assert!(!loads_anything(&sent.content), "{text}");
    assert!(!text.contains("fetch("), "{text}");
    assert_eq!(
        safe.changed,
        ["letter.html (a web page): sent as its text, letter.html.txt"]
    );
}

#[test]
fn a_file_is_judged_by_its_type_or_its_name() {
    // Declared as something harmless, named so that a click opens a browser.
    let disguised = for_caseworker(&[file(Some("scan.HTM. "), "application/octet-stream", PAGE)]);
    assert_eq!(disguised.files[0].name.as_deref(), Some("scan.HTM..txt"));
    assert!(!loads_anything(&disguised.files[0].content));
    // Declared as HTML, with no name at all.
    let nameless = for_caseworker(&[file(None, "application/xhtml+xml", PAGE)]);
    assert_eq!(nameless.files[0].name.as_deref(), Some("page.html.txt"));
    assert!(!loads_anything(&nameless.files[0].content));
}

#[test]
fn svg_xml_and_calendar_files_are_sent_as_inert_bytes_with_a_txt_name() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg"><image href="https://tracker.example/p.png"/><script>alert(1)</script></svg>"#;
    let invite = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nORGANIZER:mailto:abuser@elsewhere.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let safe = for_caseworker(&[
        file(Some("logo.svg"), "image/svg+xml", svg),
        file(
            Some("data.xml"),
            "text/xml",
            "<?xml-stylesheet href=\"https://tracker.example/s.xsl\"?><a/>",
        ),
        file(Some("meeting.ics"), "text/calendar", invite),
        file(None, "image/svg+xml", svg),
    ]);
    let names: Vec<_> = safe.files.iter().map(|f| f.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            Some("logo.svg.txt"),
            Some("data.xml.txt"),
            Some("meeting.ics.txt"),
            Some("image.svg.txt")
        ]
    );
    for sent in &safe.files {
        assert_eq!(sent.content_type, "application/octet-stream");
    }
    assert_eq!(
        safe.files[0].content,
        svg.as_bytes(),
        "the source, unchanged"
    );
    assert_eq!(safe.changed.len(), 4);
    assert!(
        safe.changed[2].contains("do not accept it from your mail client"),
        "{:?}",
        safe.changed
    );
}

#[test]
fn a_forwarded_message_becomes_its_headers_and_text() {
    let forwarded = "From: Landlord <landlord@rent.example>\r\nTo: fatima@phone.example\r\nSubject: Notice\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>You must leave by <b>Friday</b>.</p><img src=\"https://tracker.example/open.gif\">\r\n--b\r\nContent-Type: text/html; name=more.html\r\nContent-Disposition: attachment; filename=more.html\r\n\r\n<script>x()</script>\r\n--b--\r\n";
    let safe = for_caseworker(&[file(Some("notice.eml"), "message/rfc822", forwarded)]);
    assert_eq!(safe.files.len(), 1);
    let sent = &safe.files[0];
    assert_eq!(sent.name.as_deref(), Some("notice.eml.txt"));
    assert_eq!(sent.content_type, "text/plain; charset=utf-8");
    let text = String::from_utf8_lossy(&sent.content);
    assert!(
        text.contains("From:    Landlord <landlord@rent.example>"),
        "{text}"
    );
    assert!(text.contains("Subject: Notice"), "{text}");
    assert!(text.contains("You must leave by Friday."), "{text}");
    assert!(text.contains("  - more.html (text/html"), "{text}");
    assert!(!loads_anything(&sent.content), "{text}");
    assert!(!text.contains("x()"), "{text}");
}

#[test]
fn ordinary_files_pass_unchanged_and_names_lose_bidi_controls() {
    let photo = AttachmentBytes {
        name: Some("photo.jpg".to_owned()),
        content_type: "image/jpeg".to_owned(),
        content: vec![0xFF, 0xD8, 0xFF, 0xD9],
    };
    let pdf = file(Some("letter.pdf"), "application/pdf", "%PDF-1.4");
    let safe = for_caseworker(&[photo.clone(), pdf.clone()]);
    assert_eq!(safe.files.len(), 2);
    assert_eq!(safe.files[0].content, photo.content);
    assert_eq!(safe.files[1].name, pdf.name);
    assert!(safe.changed.is_empty());
    let tricked = for_caseworker(&[file(Some("invoice\u{202e}lmth.pdf"), "text/html", PAGE)]);
    assert_eq!(
        tricked.files[0].name.as_deref(),
        Some("invoicelmth.pdf.txt")
    );
}

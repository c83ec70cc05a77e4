//! The benchmark's mail, generated deterministically: the same `(count, seed)` always gives the
//! same bytes, so two runs (and two machines) measure the same work.
//!
//! The mix is what a help inbox receives: mostly new requests in several languages and scripts,
//! follow-ups that reply to an earlier message, the same message delivered twice, HTML mail from
//! webmail clients, and photos or documents attached. Shared by `benches/pipeline.rs` and
//! `casemail-bench parse`.

#![allow(
    dead_code,
    reason = "shared by the pipeline benchmark and casemail-bench, which each use only part"
)]

/// What a generated message is, so a benchmark can say what it expects casemail to make of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new request in plain text.
    Plain,
    /// A new request as multipart/alternative (text and HTML).
    Html,
    /// A new request with a base64 attachment (a photo or a PDF).
    Attachment,
    /// A follow-up: In-Reply-To and References name an earlier message, same sender.
    Reply,
    /// A byte-for-byte copy of an earlier message (same Message-ID): stored once.
    Duplicate,
}

pub(crate) struct Mail {
    pub kind: Kind,
    pub raw: Vec<u8>,
}

/// Greetings and requests in seven languages and four scripts.
const TEXTS: [(&str, &str, &str); 7] = [
    (
        "Help with my housing benefit claim",
        "Hello, I need help with my housing benefit claim. The council has not answered my \
         letters since March and my landlord is threatening to evict us.",
        "Kind regards",
    ),
    (
        "Aide pour ma demande de logement",
        "Bonjour, j'ai besoin d'aide pour ma demande de logement social. La mairie ne répond \
         plus depuis mars et le propriétaire menace de nous expulser. Ça devient très difficile.",
        "Cordialement",
    ),
    (
        "Hilfe beim Wohngeldantrag",
        "Guten Tag, ich brauche Hilfe bei meinem Antrag auf Wohngeld. Das Amt antwortet seit \
         März nicht, und der Vermieter droht mit der Kündigung. Können Sie mir helfen?",
        "Mit freundlichen Grüßen",
    ),
    (
        "طلب مساعدة في السكن",
        "مرحبا، أحتاج إلى مساعدة في طلب السكن الخاص بي. لم ترد البلدية على رسائلي منذ شهر مارس، \
         والمالك يهددنا بالطرد.",
        "مع خالص التحية",
    ),
    (
        "关于住房申请的求助",
        "您好，我需要帮助处理我的住房补贴申请。市政府从三月起就没有回复我的信件，房东威胁要把我们赶出去。",
        "此致敬礼",
    ),
    (
        "Ayuda con mi solicitud de vivienda",
        "Hola, necesito ayuda con mi solicitud de ayuda para la vivienda. El ayuntamiento no \
         contesta desde marzo y el casero amenaza con desahuciarnos.",
        "Un saludo",
    ),
    (
        "Допомога із заявою на житло",
        "Добрий день, мені потрібна допомога із заявою на житлову субсидію. Міська рада не \
         відповідає з березня, а орендодавець погрожує виселенням.",
        "З повагою",
    ),
];

/// The subject, request and closing of language `i` (any number: it wraps around).
fn text(i: usize) -> (&'static str, &'static str, &'static str) {
    TEXTS.get(i % TEXTS.len()).copied().unwrap_or(("", "", ""))
}

/// A small, fast, deterministic mixer (SplitMix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let digit = ALPHABET.get(((n >> shift) & 63) as usize).copied();
                out.push(char::from(digit.unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 in lines of 76 characters, as MIME wants.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = base64(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A header value: as is when ASCII, else an RFC 2047 encoded word.
fn header_text(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

/// The Message-ID of generated message `n` (a duplicate carries its original's).
pub(crate) fn message_id(n: u64) -> String {
    format!("<bench-{n}@requester.example.org>")
}

fn date(n: u64) -> String {
    // Two messages a minute from 2 November 2026; RFC 5322 date-time (the weekday is optional).
    let minutes = n / 2;
    let day = 2 + minutes / (24 * 60);
    let hour = (minutes / 60) % 24;
    let minute = minutes % 60;
    // Days past the end of November roll into a plausible, still-valid date.
    let (day, month) = if day <= 30 {
        (day, "Nov")
    } else {
        (1 + (day - 31) % 28, "Dec")
    };
    format!(
        "{day} {month} 2026 {hour:02}:{minute:02}:{:02} +0000",
        n % 60
    )
}

/// The body text of message `n`: a few paragraphs in its language, 0.5 to about 3 KB.
fn body_text(n: u64, language: usize) -> String {
    let (_, request, closing) = text(language);
    let paragraphs = 1 + mix(n ^ 0xB0D1) % 4;
    let mut body = String::new();
    for p in 0..paragraphs {
        body.push_str(request);
        body.push_str(&format!(" (ref {n}-{p})\r\n\r\n"));
    }
    body.push_str(closing);
    body.push_str(&format!("\r\nRequester {n}\r\n"));
    body
}

struct Header<'a> {
    n: u64,
    from: &'a str,
    to: &'a str,
    subject: &'a str,
    message_id: &'a str,
    in_reply_to: Option<&'a str>,
}

fn headers(h: &Header<'_>) -> String {
    let mut out = format!(
        "From: Requester {n} <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: {mid}\r\nMIME-Version: 1.0\r\n",
        n = h.n,
        from = h.from,
        to = h.to,
        subject = header_text(h.subject),
        date = date(h.n),
        mid = h.message_id,
    );
    if let Some(parent) = h.in_reply_to {
        out.push_str(&format!(
            "In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
        ));
    }
    out
}

/// A new request of the given kind (`Plain`, `Html` or `Attachment`) from `from` to `to`.
pub(crate) fn request(n: u64, kind: Kind, from: &str, to: &str) -> Vec<u8> {
    let language = (mix(n ^ 0x1A46) % TEXTS.len() as u64) as usize;
    let (subject, _, _) = text(language);
    let subject = format!("{subject} {n}");
    let head = headers(&Header {
        n,
        from,
        to,
        subject: &subject,
        message_id: &message_id(n),
        in_reply_to: None,
    });
    let text = body_text(n, language);
    let raw = match kind {
        Kind::Html => {
            let html = format!(
                "<html><body><div dir=\"auto\">{}</div></body></html>",
                text.replace("\r\n\r\n", "</div><div dir=\"auto\">")
            );
            format!(
                "{head}Content-Type: multipart/alternative; boundary=\"alt-{n}\"\r\n\r\n\
                 --alt-{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
                 --alt-{n}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{html64}\
                 --alt-{n}--\r\n",
                html64 = base64_lines(html.as_bytes()),
            )
        }
        Kind::Attachment => {
            // A photo of a letter (8 to 72 KB) or a PDF (same sizes), pseudo-random bytes.
            let size = 8 * 1024 + (mix(n ^ 0xA77) % (64 * 1024)) as usize;
            let mut state = n;
            let bytes: Vec<u8> = (0..size)
                .map(|_| {
                    state = mix(state);
                    (state & 0xFF) as u8
                })
                .collect();
            let (name, content_type) = if n.is_multiple_of(2) {
                (format!("letter-{n}.jpg"), "image/jpeg")
            } else {
                (format!("notice-{n}.pdf"), "application/pdf")
            };
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"mix-{n}\"\r\n\r\n\
                 --mix-{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
                 --mix-{n}\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{data}\
                 --mix-{n}--\r\n",
                data = base64_lines(&bytes),
            )
        }
        Kind::Plain | Kind::Reply | Kind::Duplicate => format!(
            "{head}Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{text}"
        ),
    };
    raw.into_bytes()
}

fn reply(n: u64, parent: u64, parent_from: &str, to: &str) -> Vec<u8> {
    let language = (mix(parent ^ 0x1A46) % TEXTS.len() as u64) as usize;
    let (subject, _, closing) = text(language);
    let subject = format!("Re: {subject} {parent}");
    let head = headers(&Header {
        n,
        from: parent_from,
        to,
        subject: &subject,
        message_id: &message_id(n),
        in_reply_to: Some(&message_id(parent)),
    });
    format!(
        "{head}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Any news about this? ({n})\r\n{closing}\r\n\r\n> {quoted}\r\n",
        quoted = body_text(parent, language).replace("\r\n", "\r\n> "),
    )
    .into_bytes()
}

/// The sender of message `n`: about three messages per requester over the whole corpus.
fn requester(n: u64, count: u64) -> String {
    let people = (count / 3).max(1);
    format!("person{}@requester.example.org", mix(n ^ 0x5E4D) % people)
}

/// `count` messages to `to`: about 55 % plain requests, 15 % follow-ups, 5 % duplicates, 15 %
/// HTML and 10 % with an attachment.
pub(crate) fn corpus(count: u64, to: &str) -> Vec<Mail> {
    let mut mails: Vec<Mail> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    // (number, sender) of every original message so far, for replies and duplicates.
    let mut originals: Vec<(u64, String)> = Vec::new();
    for n in 0..count {
        let roll = mix(n) % 100;
        let earlier = |originals: &Vec<(u64, String)>| {
            // Mostly recent messages, as follow-ups and double deliveries are.
            let back = usize::try_from(mix(n ^ 0xEA41) % 50).unwrap_or(0);
            originals
                .len()
                .checked_sub(1 + back.min(originals.len().saturating_sub(1)))
                .and_then(|i| originals.get(i).cloned())
        };
        let mail = match roll {
            55..70 => earlier(&originals).map(|(parent, from)| {
                originals.push((n, from.clone()));
                Mail {
                    kind: Kind::Reply,
                    raw: reply(n, parent, &from, to),
                }
            }),
            70..75 => earlier(&originals).and_then(|(original, _)| {
                let index = usize::try_from(original).ok()?;
                Some(Mail {
                    kind: Kind::Duplicate,
                    raw: mails.get(index)?.raw.clone(),
                })
            }),
            _ => None,
        };
        let mail = mail.unwrap_or_else(|| {
            let kind = match roll {
                75..90 => Kind::Html,
                90..100 => Kind::Attachment,
                _ => Kind::Plain,
            };
            let from = requester(n, count);
            originals.push((n, from.clone()));
            Mail {
                kind,
                raw: request(n, kind, &from, to),
            }
        });
        mails.push(mail);
    }
    mails
}

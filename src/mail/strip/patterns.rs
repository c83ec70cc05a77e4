//! The words mail clients write around quoted history, in the languages casemail's caseworkers
//! and requesters use: attribution lines, header blocks, separators, forward markers and the
//! taglines phones add. Every pattern here is matched against a line that [`normalise`] has
//! cleaned, so none of them needs to care about bidi marks or non-breaking spaces.

use std::sync::LazyLock;

use regex::Regex;

fn pattern(text: &str) -> Regex {
    Regex::new(text).expect("the reply stripping patterns are valid regular expressions")
}

fn patterns(texts: &[&str]) -> Vec<Regex> {
    texts.iter().map(|text| pattern(text)).collect()
}

/// Characters that change how text is shown but carry no words: the byte order mark iOS Mail
/// puts before the first quoted line, and the direction marks Gmail and Outlook wrap around
/// Arabic and Farsi attribution lines.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{FEFF}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// A line as the patterns see it: invisible characters dropped, every kind of space (French
/// clients put a narrow no-break space before colons) made a plain space, runs of white space
/// collapsed, and the ends trimmed.
pub(super) fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut pending_space = false;
    for c in line.chars() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// "On <date>, <name> <address> wrote:" in each language, as Gmail, Apple Mail, Thunderbird,
/// K-9, Proton, Yahoo and Outlook write it. Gmail's Arabic has two forms, "في … كتب:" and
/// "في … تمت كتابة ما يلي بواسطة …:".
static ATTRIBUTIONS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    patterns(&[
        r"(?i)^on\s.{4,300}\swrote\s?:$",
        r"(?i)^am\s.{4,300}\sschrieb\s.{1,300}:$",
        r"(?i)^.{1,300}\sschrieb\sam\s.{4,300}:$",
        r"(?i)^le\s.{4,300}\sa\sécrit\s?:$",
        r"(?i)^el\s.{4,300}\sescribió\s?:$",
        r"(?i)^(?:il|in data)\s.{4,300}\sha\sscritto\s?:$",
        r"(?i)^op\s.{4,300}\sschreef\s.{1,300}:$",
        r"(?i)^op\s.{4,300}\sheeft\s.{1,300}\sgeschreven\s?:$",
        r"(?i)^(?:em|no dia)\s.{4,300}\sescreveu\s?:$",
        r"^في\s.{4,300}\s(?:كتب|كتبت|تمت كتابة ما يلي بواسطة)(?:\s.{0,300})?:$",
        r"^.{1,300}>\s?(?:كتب|كتبت)\s?:$",
        r"^در\s.{4,300}\sنوشت\s?:$",
        r"^.{1,300}>\s?نوشت\s?:$",
    ])
});

/// An address, bracketed or bare.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| pattern(r"[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+"));

/// A clock time such as 10:15 or ١٠:١٥.
static TIME: LazyLock<Regex> = LazyLock::new(|| pattern(r"\d{1,2}:\d{2}"));

/// How sure a line is to be an attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Attribution {
    /// Ends with a colon and names an address and a number, in any language: only trusted
    /// right above quoted lines.
    Generic,
    /// One of the known phrasings, with a date or an address in it.
    Known,
    /// A known phrasing with both an address and a time: a client wrote it, not a person.
    Certain,
}

/// How sure a [`normalise`]d line (or lines joined with a space) is to be an attribution. The
/// phrasings alone are common words ("On Monday the council wrote:"), so a date or an address
/// must come with them.
pub(super) fn attribution(line: &str) -> Option<Attribution> {
    if line.chars().count() > 400 || !line.ends_with(':') {
        return None;
    }
    let has_address = ADDRESS.is_match(line);
    let has_digit = line.chars().any(char::is_numeric);
    if ATTRIBUTIONS.iter().any(|pattern| pattern.is_match(line)) {
        if has_address && TIME.is_match(line) {
            return Some(Attribution::Certain);
        }
        if has_address || has_digit {
            return Some(Attribution::Known);
        }
        return None;
    }
    (has_address && has_digit).then_some(Attribution::Generic)
}

/// The fields of the header block Outlook, Samsung and Apple Mail put above quoted or
/// forwarded mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    From,
    Date,
    To,
    Cc,
    Subject,
}

// HTML conversion can lose the space after the colon ("From:Charity Helpdesk"), so none is
// required; the name must still be one of the known field names.
static FIELD: LazyLock<Regex> = LazyLock::new(|| pattern(r"^\*?([^:：*]{1,40}?)\s?\*?\s?[:：]"));

/// Field names by language: English, German, French, Spanish, Italian, Dutch, Portuguese,
/// Arabic and Farsi, as Outlook, Gmail, Apple Mail, Samsung and Thunderbird label them.
const FIELD_NAMES: &[(&str, Field)] = &[
    ("from", Field::From),
    ("von", Field::From),
    ("de", Field::From),
    ("da", Field::From),
    ("van", Field::From),
    ("من", Field::From),
    ("از", Field::From),
    ("sent", Field::Date),
    ("date", Field::Date),
    ("gesendet", Field::Date),
    ("datum", Field::Date),
    ("envoyé", Field::Date),
    ("enviado", Field::Date),
    ("enviada", Field::Date),
    ("fecha", Field::Date),
    ("data", Field::Date),
    ("inviato", Field::Date),
    ("verzonden", Field::Date),
    ("تاريخ الإرسال", Field::Date),
    ("التاريخ", Field::Date),
    ("تم الإرسال", Field::Date),
    ("ارسال شده", Field::Date),
    ("تاریخ", Field::Date),
    ("to", Field::To),
    ("an", Field::To),
    ("à", Field::To),
    ("a", Field::To),
    ("para", Field::To),
    ("aan", Field::To),
    ("pour", Field::To),
    ("إلى", Field::To),
    ("الى", Field::To),
    ("به", Field::To),
    ("cc", Field::Cc),
    ("kopie", Field::Cc),
    ("copie", Field::Cc),
    ("نسخة", Field::Cc),
    ("رونوشت", Field::Cc),
    ("subject", Field::Subject),
    ("betreff", Field::Subject),
    ("objet", Field::Subject),
    ("sujet", Field::Subject),
    ("asunto", Field::Subject),
    ("oggetto", Field::Subject),
    ("onderwerp", Field::Subject),
    ("assunto", Field::Subject),
    ("الموضوع", Field::Subject),
    ("موضوع", Field::Subject),
];

/// The header field a line starts, such as `From:`, `*Von:*` (Gmail's rendering of Outlook's
/// bold labels) or `De :`.
pub(super) fn field(line: &str) -> Option<Field> {
    let name = FIELD.captures(line)?.get(1)?.as_str().trim().to_lowercase();
    FIELD_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, field)| *field)
}

/// The line Outlook draws above its header block: 32 underscores in Outlook on the web and on
/// phones.
static UNDERSCORES: LazyLock<Regex> = LazyLock::new(|| pattern(r"^_{10,}$"));

pub(super) fn is_underscores(line: &str) -> bool {
    UNDERSCORES.is_match(line)
}

/// "-----Original Message-----" (Outlook in plain text) and "-------- Original message
/// --------" (Samsung, Thunderbird), by language.
static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)^-{2,}\s?(?:original message|ursprüngliche nachricht|message d'origine|message d’origine|mensaje original|messaggio originale|oorspronkelijk bericht|mensagem original|الرسالة الأصلية|الرسالة الأصليَّة|رسالة أصلية|پیام اصلی)\s?-{2,}$",
    )
});

pub(super) fn is_original_message(line: &str) -> bool {
    ORIGINAL_MESSAGE.is_match(line)
}

/// The lines that open forwarded mail: Gmail's "---------- Forwarded message ---------" (the
/// same in every language), Thunderbird's and Yahoo's "-------- Forwarded Message --------" by
/// language, and Apple Mail's "Begin forwarded message:" by language.
static FORWARD: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    patterns(&[
        r"(?i)^-{2,}\s?(?:forwarded message|message transféré|message transmis|weitergeleitete nachricht|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|mensagem reencaminhada|رسالة معاد توجيهها|الرسالة المُعاد توجيهها|پیام بازارسال‌شده)\s?-{2,}$",
        r"(?i)^(?:begin forwarded message|début du message réexpédié|début du message transféré|anfang der weitergeleiteten (?:nachricht|e-mail)|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht|início da mensagem (?:encaminhada|reencaminhada))\s?:$",
    ])
});

pub(super) fn is_forward_separator(line: &str) -> bool {
    FORWARD.iter().any(|pattern| pattern.is_match(line))
}

/// Whether some visible text (of an HTML element, say) contains a forward separator.
pub(super) fn mentions_forward(text: &str) -> bool {
    static PHRASE: LazyLock<Regex> = LazyLock::new(|| {
        pattern(
            r"(?i)-{2,}\s?(?:forwarded message|message transféré|message transmis|weitergeleitete nachricht|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|mensagem reencaminhada)\s?-{2,}|(?:begin forwarded message|début du message réexpédié|début du message transféré|anfang der weitergeleiteten (?:nachricht|e-mail)|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht|início da mensagem (?:encaminhada|reencaminhada))\s?:",
        )
    });
    PHRASE.is_match(text)
}

/// Subject prefixes that mark a forward, by client and language (Outlook translates "FW:").
pub(super) fn is_forward_subject(subject: &str) -> bool {
    static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
        pattern(r"(?i)^\s*(?:fwd?|tr|wg|rv|enc|i|vs|vb|pd|doorst|إعادة توجيه|ارسال مجدد)\s?:")
    });
    PREFIX.is_match(subject)
}

/// The taglines phones and webmail add under a message, by language.
static MOBILE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    patterns(&[
        r"(?i)^sent from my \S.{0,80}$",
        r"(?i)^sent from (?:mail|outlook) for (?:windows(?: 10| 11)?|ios|android|mac)\.?$",
        r"(?i)^sent from yahoo mail(?: (?:on|for) (?:android|iphone|ios))?\.?$",
        r"(?i)^get outlook for (?:ios|android)(?:\s?<[^>]*>)?$",
        r"(?i)^sent with proton ?mail(?: secure email)?\.?$",
        r"(?i)^sent from proton ?mail(?: (?:mobile|for ios|for android|android|ios))?\.?$",
        r"(?i)^envoyé (?:de|depuis) mon \S.{0,80}$",
        r"(?i)^envoyé à partir de \S.{0,80}$",
        r"(?i)^envoyé avec la messagerie sécurisée proton ?mail\.?$",
        r"(?i)^(?:télécharger|obtenir) outlook pour (?:ios|android)(?:\s?<[^>]*>)?$",
        r"(?i)^von meinem \S.{0,80} gesendet\.?$",
        r"(?i)^gesendet von meinem \S.{0,80}$",
        r"(?i)^gesendet von (?:mail|outlook) für \S.{0,30}$",
        r"(?i)^outlook für (?:ios|android) (?:herunterladen|beziehen)(?:\s?<[^>]*>)?$",
        r"(?i)^enviado desde mi \S.{0,80}$",
        r"(?i)^enviado desde (?:outlook|correo) para \S.{0,30}$",
        r"(?i)^obtener outlook para (?:ios|android)(?:\s?<[^>]*>)?$",
        r"(?i)^inviato da \S.{0,80}$",
        r"(?i)^(?:verzonden|verstuurd) (?:vanaf|met) \S.{0,80}$",
        r"(?i)^enviado do meu \S.{0,80}$",
        r"^(?:أُرسلت|أرسلت|ارسلت|مرسل|مُرسل|تم الإرسال) من \S.{0,80}$",
        r"^(?:ارسال شده|فرستاده شده) (?:از|با) \S.{0,80}$",
    ])
});

pub(super) fn is_mobile_tagline(line: &str) -> bool {
    line.chars().count() <= 120 && MOBILE.iter().any(|pattern| pattern.is_match(line))
}

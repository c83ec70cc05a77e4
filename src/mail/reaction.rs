//! Outlook's emoji reactions. When someone reacts to a message in Outlook and the sender is
//! outside their organisation (or reactions are not shown), Outlook mails "Name reacted to your
//! message:" with the emoji, as a reply to the message. To a help desk that is neither an
//! answer nor a new request: it must never be relayed, reopen a ticket or notify anyone.
//!
//! Everything casemail sends carries `X-MS-Reactions: disallow` (see `compose`), which Outlook
//! honours, so these come only from older clients or mail sent before. Recognised by what the
//! message says, since Outlook marks it with no header of its own; pure.

use crate::mail::parse::InboundMail;

/// The line Outlook starts a reaction mail with ends with one of these, in the languages the
/// requesters and volunteers write in most. Compared lower-cased, without a final colon.
const REACTED: &[&str] = &[
    "reacted to your message",
    "a réagi à votre message",
    "hat auf ihre nachricht reagiert",
    "reaccionó a tu mensaje",
    "ha reagito al tuo messaggio",
    "reageerde op je bericht",
];

/// How long the reaction line may be: a display name and the phrase.
const MAX_LINE_CHARS: usize = 200;

/// Whether `mail` is an Outlook reaction to a message: a reply whose text opens with
/// "Name reacted to your message:".
pub(crate) fn is_reaction(mail: &InboundMail) -> bool {
    if mail.in_reply_to.is_empty() && mail.references.is_empty() {
        return false;
    }
    let Some(first) = mail
        .text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
    else {
        return false;
    };
    if first.chars().count() > MAX_LINE_CHARS {
        return false;
    }
    let line = first
        .trim_end_matches([':', '：', ' ', '\u{a0}'])
        .to_lowercase();
    REACTED.iter().any(|phrase| {
        line.strip_suffix(phrase)
            // A name before the phrase: "reacted to your message" alone is someone's sentence.
            .is_some_and(|name| !name.trim().is_empty() && name.ends_with(' '))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::{ParseLimits, parse};

    fn mail(headers: &str, body: &str) -> InboundMail {
        let raw = format!(
            "From: Amina <amina@volunteers.example>\r\nTo: help@charity.example\r\n\
             Subject: Re: [#4] Housing\r\nMessage-ID: <r1@outlook.example>\r\n{headers}\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        );
        parse(raw.as_bytes(), &ParseLimits::default())
    }

    #[test]
    fn an_outlook_reaction_is_recognised_in_several_languages() {
        let reply = "In-Reply-To: <n.4.1@charity.example>\r\n";
        for body in [
            "Amina Hassan reacted to your message:\r\n\r\n\u{1F44D}",
            "\r\n  Amina Hassan reacted to your message  \r\n",
            "Amina Hassan a réagi à votre message :\r\n\u{2764}",
            "Amina Hassan hat auf Ihre Nachricht reagiert:\r\n",
        ] {
            assert!(is_reaction(&mail(reply, body)), "{body:?}");
        }
    }

    #[test]
    fn answers_and_unthreaded_mail_are_not_reactions() {
        let reply = "In-Reply-To: <n.4.1@charity.example>\r\n";
        // Not a reply: a reaction always answers a message.
        assert!(!is_reaction(&mail("", "Amina reacted to your message:")));
        // The phrase inside a real answer, or with no name before it.
        assert!(!is_reaction(&mail(
            reply,
            "Thanks. I reacted to your message: the form is attached."
        )));
        assert!(!is_reaction(&mail(reply, "reacted to your message:")));
        assert!(!is_reaction(&mail(reply, "")));
        let long = format!("{} reacted to your message:", "a".repeat(300));
        assert!(!is_reaction(&mail(reply, &long)));
    }
}

//! Golden tests of the reply bridge: a caseworker's answer to a notification (what reaches the
//! requester once quotes, signatures, addresses and tokens are gone, and what the relay gate
//! drops or holds), the commands caseworkers write at the top of an answer, and the reply tokens
//! that decide whether an answer is a caseworker's at all.
//!
//! Each test sets up a case (Fatima's request, assigned to Amina), marks the desk, files one
//! answer and renders what changed after the mark: the ticket's new messages and events and the
//! new outbox entries, with the threading headers a requester's client reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use expect_test::expect;
use jiff::SignedDuration;

use crate::ids::TicketId;
use crate::mail::parse::{self, ParseLimits};
use crate::mail::strip::REPLY_ABOVE;
use crate::model::{Actor, OutboxKind, Role};
use crate::process::Outcome;
use crate::process::desk::{Desk, HELP, request};

/// Amina on duty around the clock, every day: every new ticket is hers.
const AMINA_ON_DUTY: &str = "timezone = \"UTC\"\n[[shift]]\nagent = \"amina\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nstart = \"00:00\"\nend = \"24:00\"\n";

/// A desk with caseworker Amina on duty, Jonas (a caseworker off the rota) and coordinator
/// Carol, and Fatima's request assigned to Amina.
fn case() -> (Desk, TicketId) {
    case_with("")
}

/// [`case`] on a desk whose config ends with `extra`.
fn case_with(extra: &str) -> (Desk, TicketId) {
    let desk = Desk::with(extra);
    desk.add_agent("amina");
    desk.add_agent("jonas");
    desk.add_agent_as("carol", Role::Coordinator);
    desk.rota(AMINA_ON_DUTY);
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "fatima1",
        "Housing",
        "My landlord wants me out by Friday.",
    ));
    assert_eq!(
        owner(&desk, id).as_deref(),
        Some("amina"),
        "the case is Amina's"
    );
    desk.advance(SignedDuration::from_hours(1));
    (desk, id)
}

fn owner(desk: &Desk, id: TicketId) -> Option<String> {
    desk.store
        .ticket(id)
        .expect("read")
        .expect("ticket")
        .owner
        .map(|o| o.0)
}

fn status(desk: &Desk, id: TicketId) -> crate::model::Status {
    desk.store.ticket(id).expect("read").expect("ticket").status
}

/// How far the desk had got: the outbox's last entry, and each ticket's messages and events.
struct Mark {
    outbox: u64,
    messages: BTreeMap<TicketId, usize>,
    events: BTreeMap<TicketId, usize>,
}

impl Desk {
    fn mark(&self) -> Mark {
        let mut mark = Mark {
            outbox: self
                .store
                .outbox()
                .expect("outbox")
                .iter()
                .map(|e| e.id)
                .max()
                .unwrap_or(0),
            messages: BTreeMap::new(),
            events: BTreeMap::new(),
        };
        for ticket in self.store.tickets().expect("tickets") {
            let messages = self.store.messages(ticket.id).expect("messages").len();
            let events = self.store.events(ticket.id).expect("events").len();
            mark.messages.insert(ticket.id, messages);
            mark.events.insert(ticket.id, events);
        }
        mark
    }

    /// What changed since `mark`: every ticket's state, its new messages and events, and the
    /// new outbox entries, each with its threading headers and text.
    fn changes(&self, mark: &Mark) -> String {
        let mut out = String::new();
        for ticket in self.store.tickets().expect("tickets") {
            let _ = writeln!(
                out,
                "ticket #{} {:?} owner={}",
                ticket.id.0,
                ticket.status,
                ticket.owner.as_ref().map_or("-", |o| o.0.as_str()),
            );
            if let Some(into) = ticket.merged_into {
                let _ = writeln!(out, "  merged into #{}", into.0);
            }
            if !ticket.flags.is_empty() {
                let _ = writeln!(out, "  flags {:?}", ticket.flags);
            }
            let seen = mark.messages.get(&ticket.id).copied().unwrap_or(0);
            for message in self
                .store
                .messages(ticket.id)
                .expect("messages")
                .iter()
                .skip(seen)
            {
                let _ = writeln!(
                    out,
                    "  message {} {:?} from={}",
                    message.seq,
                    message.direction,
                    message.from.as_deref().unwrap_or("-"),
                );
                for attachment in &message.attachments {
                    let _ = writeln!(
                        out,
                        "    attachment {:?} {}",
                        attachment.name.as_deref().unwrap_or("-"),
                        attachment.content_type
                    );
                }
                for anomaly in &message.anomalies {
                    let _ = writeln!(out, "    anomaly: {anomaly}");
                }
                for line in message.text.lines() {
                    let _ = writeln!(out, "    | {}", shown_line(line));
                }
            }
            let seen = mark.events.get(&ticket.id).copied().unwrap_or(0);
            for event in self
                .store
                .events(ticket.id)
                .expect("events")
                .iter()
                .skip(seen)
            {
                let actor = match &event.actor {
                    Actor::System => "system".to_owned(),
                    Actor::Requester(address) => format!("requester {address}"),
                    Actor::Agent(id) => format!("agent {}", id.0),
                };
                let _ = writeln!(out, "  event {} by {actor}: {}", event.kind, event.detail);
            }
        }
        for entry in self.store.outbox().expect("outbox") {
            if entry.id <= mark.outbox {
                continue;
            }
            let _ = writeln!(
                out,
                "outbox {} {} ticket={} to={}",
                entry.id,
                entry.kind.name(),
                entry.ticket.map_or("-".to_owned(), |t| format!("#{}", t.0)),
                entry.recipients.join(","),
            );
            out.push_str(&shown(&self.raw_of(entry.id)));
        }
        out
    }

    fn raw_of(&self, entry: u64) -> Vec<u8> {
        self.store
            .outbox_raw(entry)
            .expect("outbox raw")
            .unwrap_or_default()
    }

    /// The raw bytes of every outbox entry of `kind` after `mark`.
    fn sent(&self, mark: &Mark, kind: OutboxKind) -> Vec<Vec<u8>> {
        self.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .filter(|e| e.id > mark.outbox && e.kind == kind)
            .map(|e| self.raw_of(e.id))
            .collect()
    }

    /// Everything queued for the requester after `mark`, as bytes (headers and every part).
    fn to_requester(&self, mark: &Mark, requester: &str) -> Vec<Vec<u8>> {
        self.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .filter(|e| e.id > mark.outbox && e.recipients.iter().any(|r| r == requester))
            .map(|e| self.raw_of(e.id))
            .collect()
    }

    /// The decoded texts of the mail queued for `address` after `mark`.
    fn texts_to(&self, mark: &Mark, address: &str) -> Vec<String> {
        self.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .filter(|e| e.id > mark.outbox && e.recipients.iter().any(|r| r == address))
            .map(|e| parse::parse(&self.raw_of(e.id), &ParseLimits::default()).text)
            .collect()
    }
}

/// A composed message as a test reads it: the fields that reach a reader, the threading
/// fields, the files and the text.
fn shown(raw: &[u8]) -> String {
    let mail = parse::parse(raw, &ParseLimits::default());
    let mut out = String::new();
    let list = |boxes: &[parse::Mailbox]| {
        boxes
            .iter()
            .map(|m| match &m.name {
                Some(name) => format!("{name} <{}>", m.address),
                None => m.address.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(from) = &mail.from {
        let _ = writeln!(out, "  From: {}", list(std::slice::from_ref(from)));
    }
    let _ = writeln!(out, "  To: {}", list(&mail.to));
    if !mail.reply_to.is_empty() {
        let _ = writeln!(out, "  Reply-To: {}", list(&mail.reply_to));
    }
    let _ = writeln!(out, "  Subject: {}", mail.subject.as_deref().unwrap_or(""));
    let ids = |ids: &[crate::ids::MessageId]| {
        ids.iter()
            .map(|id| format!("<{}>", id.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !mail.in_reply_to.is_empty() {
        let _ = writeln!(out, "  In-Reply-To: {}", ids(&mail.in_reply_to));
    }
    if !mail.references.is_empty() {
        let _ = writeln!(out, "  References: {}", ids(&mail.references));
    }
    for attachment in &mail.attachments {
        let _ = writeln!(
            out,
            "  attachment {:?} {}",
            attachment.name.as_deref().unwrap_or("-"),
            attachment.content_type
        );
    }
    for line in mail.text.lines() {
        let _ = writeln!(out, "  | {}", shown_line(line));
    }
    out
}

/// A line of text with its invisible characters (format characters such as a zero-width
/// space, and controls) written as `\u{…}` escapes, so a snapshot shows them.
fn shown_line(line: &str) -> String {
    line.chars()
        .map(|c| {
            let invisible = c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}');
            if invisible {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The header fields of a composed message, unfolded, one a line; the Date (the moment it was
/// composed) is left out.
fn header_fields(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Asserts that the bridge accepted a reply of commands or a note, and that nothing of it was
/// queued for a requester. The process stage names every accepted reply `Relayed`, relayed or
/// not.
fn accepted_without_relay(desk: &Desk, mark: &Mark, outcome: &Outcome, id: TicketId) {
    assert_eq!(outcome, &Outcome::Relayed(id));
    assert!(
        desk.sent(mark, OutboxKind::Relay).is_empty(),
        "nothing is relayed"
    );
}

/// Whether `needle` occurs in `raw`, ignoring ASCII case.
fn holds(raw: &[u8], needle: &str) -> bool {
    let raw = raw.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase().into_bytes();
    raw.windows(needle.len()).any(|w| w == needle.as_slice())
}

/// Asserts that nothing queued for Fatima since `mark` names a caseworker or carries one of the
/// reply tokens of ticket `id`.
fn nothing_of_the_caseworkers_reaches_fatima(desk: &Desk, id: TicketId, mark: &Mark) {
    let tokens = ["amina", "jonas", "carol"].map(|agent| desk.token(id, agent));
    for raw in desk.to_requester(mark, "fatima@phone.example") {
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !holds(&raw, "volunteers.example"),
            "an address reached Fatima:\n{text}"
        );
        for token in &tokens {
            assert!(!holds(&raw, token), "a token reached Fatima:\n{text}");
        }
    }
}

/// The notification of ticket `id`, quoted line by line as clients quote it (`prefix` is `"> "`
/// for most, `""` for Outlook's unquoted history).
fn quoted_notification(id: TicketId, prefix: &str) -> String {
    [
        REPLY_ABOVE.to_owned(),
        String::new(),
        "New ticket for you. Reply to this message to answer the requester; your address is not shown to them.".to_owned(),
        String::new(),
        format!("Ticket:   #{}", id.0),
        "Status:   new".to_owned(),
        "Messages: 1".to_owned(),
        "From:     Fatima <fatima@phone.example>".to_owned(),
        "Subject:  Housing".to_owned(),
        "-".repeat(70),
        String::new(),
        "My landlord wants me out by Friday.".to_owned(),
    ]
    .iter()
    .map(|line| format!("{prefix}{line}").trim_end().to_owned() + "\r\n")
    .collect()
}

/// A message from `from` to the reply address holding `token`, about ticket `id`, with the
/// header fields in `head` (each ending in CRLF) and `body` after the header.
fn to_reply_address(
    from: &str,
    token: &str,
    id: TicketId,
    message_id: &str,
    head: &str,
    body: &str,
) -> String {
    format!(
        "From: {from}\r\nTo: Helpdesk <help+{token}@charity.example>\r\nDate: Fri, 15 Jan 2027 09:00:00 +0000\r\nSubject: Re: [#{n}] Housing\r\nMessage-ID: <{message_id}@volunteers.example>\r\n{head}\r\n{body}",
        n = id.0
    )
}

/// Amina's answer to ticket `id` with her token, from her registered address.
fn from_amina(desk: &Desk, id: TicketId, message_id: &str, head: &str, body: &str) -> String {
    to_reply_address(
        "Amina <amina@volunteers.example>",
        &desk.token(id, "amina"),
        id,
        message_id,
        head,
        body,
    )
}

/// A multipart/mixed answer by Amina: `text` above the quoted notification, then one file.
fn with_file(
    desk: &Desk,
    id: TicketId,
    text: &str,
    name: &str,
    content_type: &str,
    content: &[u8],
) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect();
    let body = format!(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\r\nOn Fri, 15 Jan 2027 at 08:00, Helpdesk wrote:\r\n{quote}\r\n--b1\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{data}\r\n--b1--\r\n",
        quote = quoted_notification(id, "> "),
        data = lines.join("\r\n"),
    );
    from_amina(
        desk,
        id,
        "with-file",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n",
        &body,
    )
}

#[test]
fn an_answer_reaches_the_requester_from_the_shared_address_threaded_under_her_latest_message() {
    let (desk, id) = case();
    let follow_up = "From: Fatima <fatima@phone.example>\r\nTo: help@charity.example\r\nDate: Fri, 15 Jan 2027 08:30:00 +0000\r\nSubject: Re: [#1] Your message to Helpdesk\r\nMessage-ID: <fatima2@phone.example>\r\nIn-Reply-To: <fatima1@phone.example>\r\n\r\nHe changed the locks today.\r\n";
    assert!(matches!(desk.receive(follow_up), Outcome::Added(..)));
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "Do not leave. I will call the council."));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 2 Out from=amina@volunteers.example
            | Do not leave. I will call the council.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 4 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima2@phone.example>
          References: <fatima1@phone.example> <fatima2@phone.example>
          | Do not leave. I will call the council.
    "#]]
    .assert_eq(&desk.changes(&mark));
    let [relay] = &desk.sent(&mark, OutboxKind::Relay)[..] else {
        panic!("one answer for Fatima");
    };
    expect![[r#"
        From: Helpdesk <help@charity.example>
        To: Fatima <fatima@phone.example>
        Subject: Re: Housing [#1]
        Message-ID: <casemail.r.1.0000000000000003@charity.example>
        X-Casemail-Loop: help@charity.example
        X-MS-Reactions: disallow
        In-Reply-To: <fatima2@phone.example>
        References: <fatima1@phone.example> <fatima2@phone.example>
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 7bit
    "#]]
    .assert_eq(&header_fields(relay));
    let relay = parse::parse(relay, &ParseLimits::default());
    assert_eq!(
        relay
            .in_reply_to
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>(),
        ["fatima2@phone.example"]
    );
    assert_eq!(
        relay
            .references
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>(),
        ["fatima1@phone.example", "fatima2@phone.example"]
    );
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn every_caseworkers_address_in_an_answer_is_replaced_for_the_requester() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "If I am away, write to Jonas@Volunteers.Example or to me at amina@volunteers.example.",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | If I am away, write to Jonas@Volunteers.Example or to me at amina@volunteers.example.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | If I am away, write to [caseworker] or to me at [caseworker].
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_name_listed_in_hide_names_is_replaced_as_a_whole_word_in_any_case() {
    let (mut desk, id) = case();
    desk.config.helpdesk.hide_names = vec!["Amina Yusuf".to_owned(), "Amina".to_owned()];
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "This is AMINA YUSUF from the helpdesk. Aminata at the council has your file.",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | This is AMINA YUSUF from the helpdesk. Aminata at the council has your file.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | This is [caseworker] from the helpdesk. Aminata at the council has your file.
    "#]]
    .assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(!holds(&raw, "yusuf"), "{}", String::from_utf8_lossy(&raw));
    }
}

#[test]
fn a_reply_token_written_into_the_answer_is_removed() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        &format!("You can also answer to help+{token}@charity.example, reference {token}."),
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | You can also answer to help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example, reference cm.1.amina.193bd8a84408b2e39d07e9d9.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | You can also answer to help+[removed]@charity.example, reference [removed].
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn gmail_on_wrote_and_its_quote_are_stripped_from_a_multipart_answer() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let quote_html: String = quoted_notification(id, "")
        .lines()
        .map(|line| format!("{line}<br>"))
        .collect();
    let body = format!(
        "--g1\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\nPlease send me a photo of the letter.\r\n\r\nOn Fri, 15 Jan 2027 at 08:00, Helpdesk <help+{token}@charity.example> wrote:\r\n\r\n{quote}\r\n--g1\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n\r\n<div dir=\"ltr\">Please send me a photo of the letter.</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Fri, 15 Jan 2027 at 08:00, Helpdesk &lt;<a href=\"mailto:help+{token}@charity.example\">help+{token}@charity.example</a>&gt; wrote:<br></div><blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex\">{quote_html}</blockquote></div>\r\n--g1--\r\n",
        quote = quoted_notification(id, "> "),
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "gmail",
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"g1\"\r\n",
        &body,
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Please send me a photo of the letter.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Please send me a photo of the letter.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_outlook_original_message_block_and_the_unquoted_notification_are_stripped() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let body = format!(
        "The council's number is 020 7946 0000.\r\n\r\n-----Original Message-----\r\nFrom: Helpdesk <help+{token}@charity.example>\r\nSent: Friday, January 15, 2027 8:00 AM\r\nTo: Amina <amina@volunteers.example>\r\nSubject: [#{n}] Housing\r\n\r\n{quote}",
        n = id.0,
        quote = quoted_notification(id, ""),
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(&desk, id, "outlook", "", &body));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | The council's number is 020 7946 0000.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | The council's number is 020 7946 0000.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_outlook_from_sent_header_block_under_a_rule_is_stripped() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let body = format!(
        "Keep every letter he sends you.\r\n\r\n________________________________\r\nFrom: Helpdesk <help+{token}@charity.example>\r\nSent: 15 January 2027 08:00\r\nTo: amina@volunteers.example\r\nSubject: [#{n}] Housing\r\n\r\n{quote}",
        n = id.0,
        quote = quoted_notification(id, ""),
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(&desk, id, "outlook2", "", &body));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Keep every letter he sends you.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Keep every letter he sends you.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_iphone_answer_loses_its_tagline_and_its_quoted_attribution() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let body = format!(
        "Yes, bring your tenancy agreement on Monday.\r\n\r\nSent from my iPhone\r\n\r\n> On 15 Jan 2027, at 08:00, Helpdesk <help+{token}@charity.example> wrote:\r\n>\r\n> \u{FEFF}{rest}",
        rest = quoted_notification(id, "> ").trim_start_matches("> "),
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "iphone",
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
        &body,
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Yes, bring your tenancy agreement on Monday.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Yes, bring your tenancy agreement on Monday.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_apple_mail_html_only_answer_is_relayed_as_its_text_without_the_blockquote() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let quote_html: String = quoted_notification(id, "")
        .lines()
        .map(|line| format!("<div>{line}</div>"))
        .collect();
    let body = format!(
        "<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"></head><body dir=\"auto\"><div>Your hearing is on <b>3 February</b>.</div><div>I will be there with you.</div><div><br><blockquote type=\"cite\">On 15 Jan 2027, at 08:00, Helpdesk &lt;help+{token}@charity.example&gt; wrote:<br><br></blockquote></div><blockquote type=\"cite\">{quote_html}</blockquote></body></html>\r\n",
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "applemail",
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        &body,
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Your hearing is on 3 February.
            | I will be there with you.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Your hearing is on 3 February.
          | I will be there with you.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_signature_under_the_dash_dash_line_is_not_relayed() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "The deposit must be returned within 30 days.\r\n\r\n-- \r\nAmina Yusuf\r\nVolunteer caseworker\r\nMobile 07700 900123",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | The deposit must be returned within 30 days.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | The deposit must be returned within 30 days.
    "#]]
    .assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(!holds(&raw, "07700"), "{}", String::from_utf8_lossy(&raw));
    }
}

#[test]
fn an_answer_written_under_the_quoted_notification_is_relayed_without_the_quote() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    let body = format!(
        "On Fri, 15 Jan 2027 at 08:00, Helpdesk <help+{token}@charity.example> wrote:\r\n{quote}\r\nHe cannot evict you without a court order.\r\n",
        quote = quoted_notification(id, "> "),
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(&desk, id, "bottom", "", &body));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | He cannot evict you without a court order.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | He cannot evict you without a court order.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

/// A JPEG photo whose EXIF segment and comment name the caseworker who took it.
fn photo_with_exif() -> Vec<u8> {
    let segment = |marker: u8, contents: &[u8]| {
        let mut out = vec![0xFF, marker];
        let length = u16::try_from(contents.len() + 2).expect("a short segment");
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(contents);
        out
    };
    let mut jpeg = vec![0xFF, 0xD8];
    jpeg.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    jpeg.extend(segment(
        0xE1,
        b"Exif\0\0Artist Amina Yusuf amina@volunteers.example GPS 51.50N",
    ));
    jpeg.extend(segment(0xFE, b"taken by amina"));
    jpeg.extend(segment(0xDB, &[0; 65]));
    jpeg.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
    jpeg.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
    jpeg.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
    jpeg
}

/// A one-page PDF whose Info dictionary names the caseworker who wrote it.
fn letter_with_author() -> Vec<u8> {
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
    let catalog = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    let info = document.add_object(dictionary! {
        "Author" => Object::string_literal("Amina Yusuf <amina@volunteers.example>"),
        "Title" => Object::string_literal("Letter to the landlord"),
    });
    document.trailer.set("Root", catalog);
    document.trailer.set("Info", info);
    let mut out = Vec::new();
    document.save_to(&mut out).expect("write the PDF");
    out
}

#[test]
fn a_pdf_with_an_answer_is_relayed_without_its_author() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "Here is the letter for your landlord.",
        "letter.pdf",
        "application/pdf",
        &letter_with_author(),
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "letter.pdf" application/pdf
            | Here is the letter for your landlord.
          event replied by agent amina: answer relayed to the requester (1 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          attachment "letter.pdf" application/pdf
          | Here is the letter for your landlord.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   letter.pdf: sent without its metadata
    "#]]
    .assert_eq(&desk.changes(&mark));
    let [relay] = &desk.sent(&mark, OutboxKind::Relay)[..] else {
        panic!("one answer for Fatima");
    };
    let relay = parse::parse(relay, &ParseLimits::default());
    let [letter] = &relay.attachments[..] else {
        panic!("the letter goes with the answer");
    };
    let bytes = letter.content().expect("kept");
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(!holds(bytes, "Yusuf") && !holds(bytes, "Author"));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_photo_with_an_answer_is_relayed_without_its_exif_and_comment() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "This is the entrance of the advice centre.",
        "entrance.jpg",
        "image/jpeg",
        &photo_with_exif(),
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "entrance.jpg" image/jpeg
            | This is the entrance of the advice centre.
          event replied by agent amina: answer relayed to the requester (1 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          attachment "entrance.jpg" image/jpeg
          | This is the entrance of the advice centre.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   entrance.jpg: sent without its metadata
    "#]]
    .assert_eq(&desk.changes(&mark));
    let [relay] = &desk.sent(&mark, OutboxKind::Relay)[..] else {
        panic!("one answer for Fatima");
    };
    let relay = parse::parse(relay, &ParseLimits::default());
    let bytes = relay
        .attachments
        .first()
        .and_then(|a| a.content())
        .expect("the photo goes with the answer");
    assert!(bytes.starts_with(b"\xFF\xD8\xFF"));
    assert!(!holds(bytes, "Exif") && !holds(bytes, "taken by"));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_vcard_with_an_answer_is_left_out_and_the_caseworker_told() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "Call me if anything changes.",
        "Amina Yusuf.vcf",
        "text/vcard",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Amina Yusuf\r\nEMAIL:amina@volunteers.example\r\nTEL:07700 900123\r\nEND:VCARD\r\n",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "Amina Yusuf.vcf" text/vcard
            | Call me if anything changes.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Call me if anything changes.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   Amina Yusuf.vcf: a contact card, not sent
    "#]]
    .assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(!holds(&raw, "VCARD") && !holds(&raw, "07700"));
    }
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_calendar_invitation_with_an_answer_is_left_out() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "Our appointment is on Monday at 10:00.",
        "invite.ics",
        "text/calendar",
        b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nORGANIZER:mailto:amina@volunteers.example\r\nSUMMARY:Housing appointment\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "invite.ics" text/calendar
            | Our appointment is on Monday at 10:00.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Our appointment is on Monday at 10:00.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   invite.ics: a calendar invitation, not sent
    "#]]
    .assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(!holds(&raw, "VCALENDAR"));
    }
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_word_document_with_an_answer_holds_the_whole_answer() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "I filled in the form for you.",
        "form.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        b"PK\x03\x04docProps/core.xml<dc:creator>Amina Yusuf</dc:creator>",
    ));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            attachment "form.docx" application/vnd.openxmlformats-officedocument.wordprocessingml.document
            anomaly: answer held, never relayed: a file that cannot be cleaned
            | I filled in the form for you.
          event reply_held by agent amina: answer held, not relayed: a file that cannot be cleaned
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: the file "form.docx" cannot be cleaned of who wrote it (send documents as PDF, photos as JPEG or PNG). It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_signature_logo_in_the_body_of_an_answer_is_left_out() {
    let (desk, id) = case();
    let mark = desk.mark();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\0\0\0\0:~\x9bU\0\0\0\0IEND\xaeB`\x82";
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "The form is on its way.",
        "image001.png",
        "image/png",
        png,
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "image001.png" image/png
            | The form is on its way.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | The form is on its way.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   image001.png: an image in the body of your message (such as a signature logo), not sent; attach photos as files
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_answer_of_files_without_text_is_held() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "",
        "letter.pdf",
        "application/pdf",
        &letter_with_author(),
    ));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            attachment "letter.pdf" application/pdf
            anomaly: answer held, never relayed: files without text
            | On Fri, 15 Jan 2027 at 08:00, Helpdesk wrote:
            | > ##- Please type your reply above this line -##
            | >
            | > New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
            | >
            | > Ticket:   #1
            | > Status:   new
            | > Messages: 1
            | > From:     Fatima <fatima@phone.example>
            | > Subject:  Housing
            | > ----------------------------------------------------------------------
            | >
            | > My landlord wants me out by Friday.
          event reply_held by agent amina: answer held, not relayed: files without text
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: it carries files but no text; write a few words with the files. It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

/// Another request, from Samir, assigned to Amina like Fatima's.
fn second_case(desk: &Desk) -> TicketId {
    let id = desk.new_ticket(&request(
        "Samir <samir@phone.example>",
        "samir1",
        "Visa",
        "My visa ends next month.",
    ));
    assert_eq!(owner(desk, id).as_deref(), Some("amina"));
    id
}

#[test]
fn a_note_is_kept_on_the_ticket_and_sent_to_the_coordinator_never_to_the_requester() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#note\r\nHer landlord is known to the council; he was fined last year.",
    ));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            | Her landlord is known to the council; he was fined last year.
          event note by agent amina: internal note
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (internal note from amina)
          | Internal note on ticket #1 from amina; the requester does not see it.
          | 
          | Her landlord is known to the council; he was fined last year.
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
    assert_eq!(
        status(&desk, id),
        crate::model::Status::New,
        "still waits for an answer"
    );
}

#[test]
fn a_notes_command_with_a_colon_starts_the_note_on_its_own_line() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#NOTES: called the GP, letter follows\r\nShe has a medical certificate.",
    ));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            | called the GP, letter follows
            | She has a medical certificate.
          event note by agent amina: internal note
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (internal note from amina)
          | Internal note on ticket #1 from amina; the requester does not see it.
          | 
          | called the GP, letter follows
          | She has a medical certificate.
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_note_command_behind_invisible_characters_and_with_a_space_after_the_hash_is_a_note() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "invisible-note",
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
        &format!(
            "\u{FEFF}\u{200B}# note\r\nShe is afraid he reads her mail.\r\n\r\n{}",
            quoted_notification(id, "> ")
        ),
    ));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            | She is afraid he reads her mail.
          event note by agent amina: internal note
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (internal note from amina)
          | Internal note on ticket #1 from amina; the requester does not see it.
          | 
          | She is afraid he reads her mail.
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_note_command_in_an_html_only_answer_is_a_note() {
    let (desk, id) = case();
    let quote_html: String = quoted_notification(id, "")
        .lines()
        .map(|line| format!("{line}<br>"))
        .collect();
    let body = format!(
        "<div dir=\"ltr\"><div>&#8203;#note</div><div>Her son is 14, not 16.</div></div><br><div class=\"gmail_quote\"><blockquote class=\"gmail_quote\">{quote_html}</blockquote></div>\r\n"
    );
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "html-note",
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        &body,
    ));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            | Her son is 14, not 16.
          event note by agent amina: internal note
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (internal note from amina)
          | Internal note on ticket #1 from amina; the requester does not see it.
          | 
          | Her son is 14, not 16.
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn close_alone_closes_the_ticket_and_is_confirmed_to_the_caseworker_only() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#close"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 Closed owner=amina
          event closed by agent amina: closed by mail
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 closed
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Closed);
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn close_above_an_answer_relays_the_answer_without_the_command_and_closes_the_ticket() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#close\r\nI am glad the council found you a flat. Good luck!",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Closed owner=amina
          message 1 Out from=amina@volunteers.example
            | I am glad the council found you a flat. Good luck!
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
          event closed by agent amina: closed by mail
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | I am glad the council found you a flat. Good luck!
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 closed
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Closed);
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(!holds(&raw, "#close"));
    }
}

#[test]
fn reopen_opens_a_closed_ticket_again() {
    let (desk, id) = case();
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", "#close")),
        Outcome::Relayed(id)
    );
    desk.advance(SignedDuration::from_hours(24));
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#reopen"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 Open owner=amina
          event reopened by agent amina: reopened by mail
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 reopened
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Open);
}

#[test]
fn assign_hands_the_ticket_to_another_caseworker_who_receives_it() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#assign Jonas"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=jonas
          event assigned by system: assigned to jonas (CurrentOwner)
          event assigned_by_mail by agent amina: assigned to jonas by amina
        outbox 3 notification ticket=#1 to=jonas@volunteers.example
          From: Helpdesk <help@charity.example>
          To: jonas@volunteers.example
          Reply-To: Helpdesk <help+cm.1.jonas.4bab70982738bc1799079fc2@charity.example>
          Subject: [#1] Housing
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 assigned to jonas
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(owner(&desk, id).as_deref(), Some("jonas"));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn assign_to_someone_who_is_not_registered_changes_nothing_and_says_why() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#assign joanna"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | error: #assign joanna: no such caseworker
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(owner(&desk, id).as_deref(), Some("amina"));
}

#[test]
fn assign_to_a_caseworker_who_is_away_changes_nothing_and_says_why() {
    let (desk, id) = case();
    desk.run(crate::ops::StoreCommand::AgentAway {
        id: "jonas".to_owned(),
        until: None,
    })
    .expect("jonas steps away");
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#assign jonas"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | error: #assign jonas: jonas is away
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(owner(&desk, id).as_deref(), Some("amina"));
}

#[test]
fn a_note_and_an_assign_in_one_answer_keep_the_note_internal_and_hand_over_the_ticket() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#assign jonas\r\n#note: Jonas knows this landlord; she prefers calls after 6pm.",
    ));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=jonas
          message 1 Note from=amina@volunteers.example
            | Jonas knows this landlord; she prefers calls after 6pm.
          event note by agent amina: internal note
          event assigned by system: assigned to jonas (CurrentOwner)
          event assigned_by_mail by agent amina: assigned to jonas by amina
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (internal note from amina)
          | Internal note on ticket #1 from amina; the requester does not see it.
          | 
          | Jonas knows this landlord; she prefers calls after 6pm.
        outbox 4 notification ticket=#1 to=jonas@volunteers.example
          From: Helpdesk <help@charity.example>
          To: jonas@volunteers.example
          Reply-To: Helpdesk <help+cm.1.jonas.4bab70982738bc1799079fc2@charity.example>
          Subject: [#1] Housing
          | ##- Please type your reply above this line -##
          | 
          | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | From:     Fatima <fatima@phone.example>
          | Subject:  Housing
          | ----------------------------------------------------------------------
          | 
          | My landlord wants me out by Friday.
        outbox 5 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 assigned to jonas
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(owner(&desk, id).as_deref(), Some("jonas"));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn merge_by_the_caseworker_who_owns_both_tickets_merges_them() {
    let (desk, id) = case();
    let other = second_case(&desk);
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(other, "amina", &format!("#merge {}", id.0)));
    accepted_without_relay(&desk, &mark, &outcome, other);
    expect![[r#"
        ticket #1 New owner=amina
          message 1 In from=samir@phone.example
            | My visa ends next month.
          event created by requester samir@phone.example: (from #2) from INBOX
          event assigned by system: (from #2) assigned to amina (FewestOpen)
          event merged by agent amina: #2 merged into this ticket
        ticket #2 Closed owner=-
          merged into #1
        outbox 5 notification ticket=#2 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#2] Visa
          | #2 merged into #1
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
    assert!(desk.to_requester(&mark, "samir@phone.example").is_empty());
}

#[test]
fn merge_into_a_ticket_of_another_caseworker_is_refused_and_merges_nothing() {
    let (desk, id) = case();
    let other = second_case(&desk);
    desk.run(crate::ops::StoreCommand::TicketAssign {
        number: other.0,
        agent: "jonas".to_owned(),
    })
    .expect("Samir's ticket goes to Jonas");
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", &format!("#merge #{}", other.0)));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
          event merge_refused by agent amina: #merge 2 refused: amina does not own both tickets and is not a coordinator
        ticket #2 New owner=jonas
        outbox 6 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | error: #merge: not merged into #2: only a coordinator or the caseworker who owns both tickets may merge them
    "#]]
    .assert_eq(&desk.changes(&mark));
    let merged = desk
        .store
        .ticket(id)
        .expect("read")
        .expect("ticket")
        .merged_into;
    assert_eq!(merged, None);
}

#[test]
fn merge_into_a_ticket_that_does_not_exist_is_an_error_and_merges_nothing() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#merge 99"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | error: #merge: no ticket #99
    "#]]
    .assert_eq(&desk.changes(&mark));
}

#[test]
fn merge_with_a_ticket_number_that_cannot_be_read_holds_the_answer() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#merge Samir's ticket\r\nSamir is your brother, so I put your cases together.",
    ));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: unreadable command
            | Samir is your brother, so I put your cases together.
          event reply_held by agent amina: answer held, not relayed: unreadable command
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: a command line could not be read (cannot read the command line "#merge Samir's ticket"). It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
          | error: cannot read the command line "#merge Samir's ticket"
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn spam_marks_the_ticket_as_spam_and_teaches_the_classifier() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#spam"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 Spam owner=amina
          event marked_spam by agent amina: marked as spam by mail; 1 message(s) learned as spam
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 marked as spam
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Spam);
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn notspam_opens_a_ticket_marked_as_spam_again() {
    let (desk, id) = case();
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", "#spam")),
        Outcome::Relayed(id)
    );
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#notspam"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 Open owner=amina
          event marked_not_spam by agent amina: marked as not spam by mail; 1 message(s) learned as ham
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | #1 is not spam
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Open);
}

#[test]
fn away_until_a_date_marks_the_caseworker_away_and_gives_her_tickets_back_to_routing() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#away until 2027-01-25"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=-
          event unassigned by system: agent away: amina; back to routing
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | you are marked away until 2027-01-25; your open tickets go back to routing
    "#]]
    .assert_eq(&desk.changes(&mark));
    expect![[r#"
        Some(
            Away {
                until: Some(
                    2027-01-25T00:00:00Z,
                ),
            },
        )
    "#]]
    .assert_debug_eq(&desk.agent("amina").away);
    assert_eq!(owner(&desk, id), None, "her ticket went back to routing");
    // Nobody else is on duty: the ticket waits, listed as unassigned in Carol's digest.
    let mark = desk.mark();
    desk.sweep();
    expect![[r#"
        ticket #1 New owner=-
          flags {Unassigned}
          event waiting by system: nobody on duty can take it and no shift is planned
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (nobody on duty could take this ticket)
          | nobody on duty could take this ticket.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 1
          | Owner:    nobody
        outbox 5 digest ticket=- to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: casemail digest for 2027-01-15
          | Open tickets per caseworker:
          |   amina            0 (away)
          |   carol            0
          |   jonas            0
          | 
          | Unanswered past the answer time: 0
          | 
          | Unassigned: 1
          |   [#1] Housing  (nobody)
          | 
          | Held as spam: 0
    "#]]
    .assert_eq(&desk.changes(&mark));
}

#[test]
fn back_on_a_ticket_she_still_owns_ends_the_caseworkers_time_away() {
    let (desk, id) = case();
    let other = second_case(&desk);
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", "#close")),
        Outcome::Relayed(id)
    );
    assert_eq!(
        desk.receive(&desk.reply(other, "amina", "#away")),
        Outcome::Relayed(other)
    );
    assert!(desk.agent("amina").away.is_some());
    assert_eq!(
        owner(&desk, other),
        None,
        "Samir's open ticket went back to routing"
    );
    desk.advance(SignedDuration::from_hours(48));
    let mark = desk.mark();
    // Fatima's ticket is closed, so it stayed Amina's: her token for it still works.
    let outcome = desk.receive(&desk.reply(id, "amina", "#back"));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 Closed owner=amina
        ticket #2 New owner=-
        outbox 7 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | you are marked back
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(desk.agent("amina").away, None);
}

#[test]
fn an_unknown_command_holds_the_answer_and_the_caseworker_is_told_the_commands() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#nte she told me her husband hits her\r\nI will call you tomorrow.",
    ));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: unknown command
            | #nte she told me her husband hits her
            | I will call you tomorrow.
          event reply_held by agent amina: answer held, not relayed: unknown command
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: its first line "#nte she told me her husband hits her" looks like a command but is not one (commands: #note, #close, #reopen, #assign AGENT, #merge N, #spam, #notspam, #away [until DATE], #back); to send text starting with #, put a word before it. It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_known_command_with_a_stray_word_holds_the_answer_and_does_nothing() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#close now\r\nThis is my last message about your case.",
    ));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: unreadable command
            | This is my last message about your case.
          event reply_held by agent amina: answer held, not relayed: unreadable command
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: a command line could not be read (cannot read the command line "#close now"). It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
          | error: cannot read the command line "#close now"
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::New, "not closed");
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_line_starting_with_a_hash_and_a_number_is_text_and_relayed() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#1 priority is your safety: stay with your sister tonight.",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | #1 priority is your safety: stay with your sister tonight.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | #1 priority is your safety: stay with your sister tonight.
    "#]]
    .assert_eq(&desk.changes(&mark));
}

#[test]
fn a_coordinator_may_command_a_ticket_she_does_not_own() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "carol",
        "#close\r\nFatima has found a solicitor; I am closing this for Amina.",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Closed owner=amina
          message 1 Out from=carol@volunteers.example
            | Fatima has found a solicitor; I am closing this for Amina.
          event replied by agent carol: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
          event closed by agent carol: closed by mail
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Fatima has found a solicitor; I am closing this for Amina.
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: Done: [#1] Housing
          | #1 closed
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Closed);
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_caseworker_who_no_longer_owns_the_ticket_can_neither_answer_nor_command_it() {
    let (desk, id) = case();
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", "#assign jonas")),
        Outcome::Relayed(id)
    );
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "#close\r\nI am sorry, I cannot help you any more.",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=jonas
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the ticket is no longer assigned to this caseworker
            | #close
            | I am sorry, I cannot help you any more.
            | 
            | On Friday, Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example> wrote:
            | > ##- Please type your reply above this line -##
            | > Ticket:   #1
            | > Status:   open
          event reply_refused by system: the ticket is no longer assigned to this caseworker
        outbox 5 bounce ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the ticket is no longer assigned to this caseworker.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 6 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the ticket is no longer assigned to this caseworker)
          | a reply from amina@volunteers.example was refused: the ticket is no longer assigned to this caseworker.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    jonas
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::New, "not closed");
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_token_for_another_ticket_than_the_one_in_the_subject_is_refused() {
    let (desk, id) = case();
    let other = second_case(&desk);
    let mark = desk.mark();
    // Amina's genuine token for Samir's ticket, on an answer whose subject names Fatima's.
    let outcome = desk.receive(&to_reply_address(
        "Amina <amina@volunteers.example>",
        &desk.token(other, "amina"),
        id,
        "crossed",
        "",
        "Your visa appointment is on Monday.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
        ticket #2 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the reply token is for another ticket than the one in the subject
            | Your visa appointment is on Monday.
          event reply_refused by system: the reply token is for another ticket than the one in the subject
        outbox 5 bounce ticket=#2 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#2] Visa
          | Your message about ticket #2 was NOT sent to the requester.
          | 
          | Why: the reply token is for another ticket than the one in the subject.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 6 notification ticket=#2 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#2] Visa (a reply from amina@volunteers.example was refused: the reply token is for another ticket than the one in the subject)
          | a reply from amina@volunteers.example was refused: the reply token is for another ticket than the one in the subject.
          | 
          | Ticket:   #2
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
    assert!(desk.to_requester(&mark, "samir@phone.example").is_empty());
}

#[test]
fn another_caseworkers_token_is_refused_and_nobody_is_answered() {
    let (desk, id) = case();
    let mark = desk.mark();
    // Jonas answers with a notification Amina forwarded him.
    let outcome = desk.receive(&to_reply_address(
        "Jonas <jonas@volunteers.example>",
        &desk.token(id, "amina"),
        id,
        "forwarded",
        "",
        "I am taking over from Amina; call me.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=jonas@volunteers.example
            anomaly: refused reply, never relayed: the sender is not the caseworker this reply token was made for
            | I am taking over from Amina; call me.
          event reply_refused by system: the sender is not the caseworker this reply token was made for
        outbox 3 bounce ticket=#1 to=jonas@volunteers.example
          From: Helpdesk <help@charity.example>
          To: jonas@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the sender is not the caseworker this reply token was made for.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from jonas@volunteers.example was refused: the sender is not the caseworker this reply token was made for)
          | a reply from jonas@volunteers.example was refused: the sender is not the caseworker this reply token was made for.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_answer_without_a_token_from_the_caseworkers_address_is_refused_and_she_is_told() {
    let (desk, id) = case();
    let mark = desk.mark();
    let forged = format!(
        "From: Amina <amina@volunteers.example>\r\nTo: {HELP}\r\nDate: Fri, 15 Jan 2027 09:00:00 +0000\r\nSubject: Re: [#{n}] Housing\r\nMessage-ID: <no-token@volunteers.example>\r\n\r\nSend your passport to the address below.\r\n",
        n = id.0
    );
    let outcome = desk.receive(&forged);
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the reply carries no valid reply token; answer with Reply on the notification
            | Send your passport to the address below.
          event reply_refused by system: the reply carries no valid reply token; answer with Reply on the notification
        outbox 3 bounce ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the reply carries no valid reply token; answer with Reply on the notification.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the reply carries no valid reply token; answer with Reply on the notification)
          | a reply from amina@volunteers.example was refused: the reply carries no valid reply token; answer with Reply on the notification.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_answer_from_an_address_the_caseworker_never_registered_is_named_to_the_coordinators_only() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&to_reply_address(
        "Amina Yusuf <amina.yusuf@home.example>",
        &desk.token(id, "amina"),
        id,
        "home",
        "",
        "Sorry, writing from home: the hearing is at 10.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina.yusuf@home.example
            anomaly: refused reply, never relayed: the sender is not the caseworker this reply token was made for
            | Sorry, writing from home: the hearing is at 10.
          event reply_refused by system: the sender is not the caseworker this reply token was made for
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina.yusuf@home.example was refused: the sender is not the caseworker this reply token was made for)
          | a reply from amina.yusuf@home.example was refused: the sender is not the caseworker this reply token was made for.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
    assert!(
        desk.texts_to(&mark, "amina.yusuf@home.example").is_empty(),
        "nothing goes to an address nobody registered"
    );
}

#[test]
fn an_answer_failing_dmarc_is_refused_even_with_a_valid_token() {
    let (desk, id) = case_with("[auth]\ntrusted_authserv_ids = [\"mx.charity.example\"]\n");
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "spoofed",
        "Authentication-Results: mx.charity.example; dmarc=fail header.from=volunteers.example\r\n",
        "Please meet me alone at the station.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the message failed sender authentication: the receiving server recorded dmarc=fail for volunteers.example
            | Please meet me alone at the station.
          event reply_refused by system: the message failed sender authentication: the receiving server recorded dmarc=fail for volunteers.example
        outbox 3 bounce ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the message failed sender authentication: the receiving server recorded dmarc=fail for volunteers.example.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the message failed sender authentication: the receiving server recorded dmarc=fail for volunteers.example)
          | a reply from amina@volunteers.example was refused: the message failed sender authentication: the receiving server recorded dmarc=fail for volunteers.example.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_token_made_before_the_secret_was_rotated_works_during_the_grace_period() {
    let (mut desk, id) = case();
    let old = desk.token(id, "amina");
    desk.secret = crate::casework::token::Secret::rotated_from([9; 32], [7; 32], desk.now());
    assert_ne!(
        desk.token(id, "amina"),
        old,
        "the new key makes other tokens"
    );
    desk.advance(SignedDuration::from_hours(24 * 29));
    let mark = desk.mark();
    let outcome = desk.receive(&to_reply_address(
        "Amina <amina@volunteers.example>",
        &old,
        id,
        "old-key",
        "",
        "The council will call you this week.\r\n",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | The council will call you this week.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | The council will call you this week.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_token_made_before_the_secret_was_rotated_is_refused_after_the_grace_period() {
    let (mut desk, id) = case();
    let old = desk.token(id, "amina");
    desk.secret = crate::casework::token::Secret::rotated_from([9; 32], [7; 32], desk.now());
    desk.advance(SignedDuration::from_hours(24 * 30));
    let mark = desk.mark();
    let outcome = desk.receive(&to_reply_address(
        "Amina <amina@volunteers.example>",
        &old,
        id,
        "old-key",
        "",
        "The council will call you this week.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the reply carries no valid reply token; answer with Reply on the notification
            | The council will call you this week.
          event reply_refused by system: the reply carries no valid reply token; answer with Reply on the notification
        outbox 3 bounce ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the reply carries no valid reply token; answer with Reply on the notification.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the reply carries no valid reply token; answer with Reply on the notification)
          | a reply from amina@volunteers.example was refused: the reply carries no valid reply token; answer with Reply on the notification.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_answer_to_a_recently_closed_ticket_is_relayed_and_waits_on_the_requester() {
    let (desk, id) = case();
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", "#close")),
        Outcome::Relayed(id)
    );
    desk.advance(SignedDuration::from_hours(24 * 7));
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "One more thing: the council's letter arrived, you can collect it.",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | One more thing: the council's letter arrived, you can collect it.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 4 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | One more thing: the council's letter arrived, you can collect it.
    "#]]
    .assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_answer_to_a_ticket_closed_longer_than_tokens_live_is_refused() {
    let (desk, id) = case();
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", "#close")),
        Outcome::Relayed(id)
    );
    desk.advance(SignedDuration::from_hours(24 * 91));
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "Are you still at the same address?"));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 Closed owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the reply token has expired: ticket #1 was closed on 2027-01-15, longer ago than reply tokens live after closing; a coordinator can reopen it
            | Are you still at the same address?
            | 
            | On Friday, Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example> wrote:
            | > ##- Please type your reply above this line -##
            | > Ticket:   #1
            | > Status:   open
          event reply_refused by system: the reply token has expired: ticket #1 was closed on 2027-01-15, longer ago than reply tokens live after closing; a coordinator can reopen it
        outbox 4 bounce ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the reply token has expired: ticket #1 was closed on 2027-01-15, longer ago than reply tokens live after closing; a coordinator can reopen it.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 5 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the reply token has expired: ticket #1 was closed on 2027-01-15, longer ago than reply tokens live after closing; a coordinator can reopen it)
          | a reply from amina@volunteers.example was refused: the reply token has expired: ticket #1 was closed on 2027-01-15, longer ago than reply tokens live after closing; a coordinator can reopen it.
          | 
          | Ticket:   #1
          | Status:   closed
          | Messages: 2
          | Owner:    amina
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::Closed);
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_accidental_send_of_the_quote_alone_is_held() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", ""));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: empty answer
            | On Friday, Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example> wrote:
            | > ##- Please type your reply above this line -##
            | > Ticket:   #1
            | > Status:   open
          event reply_held by agent amina: answer held, not relayed: empty answer
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: nothing was written above the quoted notification (only a quote, a signature or a "Sent from my phone" line). It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_answer_of_only_a_phone_tagline_is_held() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "Sent from my Galaxy"));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: empty answer
            | Sent from my Galaxy
            | 
            | On Friday, Helpdesk <help+cm.1.amina.193bd8a84408b2e39d07e9d9@charity.example> wrote:
            | > ##- Please type your reply above this line -##
            | > Ticket:   #1
            | > Status:   open
          event reply_held by agent amina: answer held, not relayed: empty answer
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: nothing was written above the quoted notification (only a quote, a signature or a "Sent from my phone" line). It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_answer_in_which_the_notifications_header_block_survives_is_held() {
    let (desk, id) = case();
    let mark = desk.mark();
    // The caseworker pasted the notification under her answer without its marker line.
    let pasted: String = quoted_notification(id, "")
        .lines()
        .skip(1)
        .map(|l| format!("{l}\r\n"))
        .collect();
    let body = format!("Please come on Monday.\r\n\r\n{pasted}");
    let outcome = desk.receive(&from_amina(&desk, id, "pasted", "", &body));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: quoted notification in the answer
            | Please come on Monday.
            | 
            | New ticket for you. Reply to this message to answer the requester; your address is not shown to them.
            | 
            | Ticket:   #1
            | Status:   new
            | Messages: 1
            | From:     Fatima <fatima@phone.example>
            | Subject:  Housing
            | ----------------------------------------------------------------------
            | 
            | My landlord wants me out by Friday.
          event reply_held by agent amina: answer held, not relayed: quoted notification in the answer
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: the quoted notification could not be separated from your answer. It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn the_same_answer_sent_twice_reaches_the_requester_once() {
    let (desk, id) = case();
    let answer = "Your appointment is on Monday at 10.";
    assert_eq!(
        desk.receive(&desk.reply(id, "amina", answer)),
        Outcome::Relayed(id)
    );
    desk.advance(SignedDuration::from_mins(5));
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", answer));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 2 Note from=amina@volunteers.example
            anomaly: the same answer was relayed at 2027-01-15T09:00:00Z; not relayed again
            | Your appointment is on Monday at 10.
          event replay_refused by agent amina: the same answer (text and files) was relayed at 2027-01-15T09:00:00Z; kept as a note
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | not sent again: the same answer was already relayed to the requester at 2027-01-15T09:00:00Z
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_note_line_under_a_greeting_holds_the_answer_and_never_reaches_the_requester() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "Hi Fatima,\r\n#note she sounded scared, her husband was in the room",
    ));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: command below the text
            | Hi Fatima,
            | #note she sounded scared, her husband was in the room
          event reply_held by agent amina: answer held, not relayed: command below the text
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: the line "#note she sounded scared, her husband was in the room" is a command, but commands act only at the top of an answer, above any text; nothing was done. It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]].assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_close_line_under_the_answer_holds_it_and_closes_nothing() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "Thank you, and good luck.\r\n\r\n#close"));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: command below the text
            | Thank you, and good luck.
            | 
            | #close
          event reply_held by agent amina: answer held, not relayed: command below the text
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: the line "#close" is a command, but commands act only at the top of an answer, above any text; nothing was done. It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
    "###]].assert_eq(&desk.changes(&mark));
    assert_eq!(status(&desk, id), crate::model::Status::New, "not closed");
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_hashtag_under_the_text_that_is_no_command_is_relayed() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(
        id,
        "amina",
        "Other tenants share their stories under\r\n#rentersrights",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Other tenants share their stories under
            | #rentersrights
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Other tenants share their stories under
          | #rentersrights
    "#]].assert_eq(&desk.changes(&mark));
}

/// The Message-ID of the notification of ticket `id` that `agent` received first.
fn notification_id(desk: &Desk, id: TicketId, agent: &str) -> String {
    let to = format!("{agent}@volunteers.example");
    desk.store
        .outbox()
        .expect("outbox")
        .into_iter()
        .find(|e| {
            e.kind == OutboxKind::Notification
                && e.ticket == Some(id)
                && e.recipients == [to.clone()]
        })
        .map(|e| e.message_id.as_str().to_owned())
        .expect("a notification")
}

#[test]
fn an_answer_whose_server_dropped_the_sub_address_is_recognised_by_its_in_reply_to() {
    let (desk, id) = case();
    let notification = notification_id(&desk, id, "amina");
    assert!(
        notification.contains(&desk.token(id, "amina")),
        "{notification}"
    );
    let mark = desk.mark();
    let answer = format!(
        "From: Amina <amina@volunteers.example>\r\nTo: Helpdesk <{HELP}>\r\nDate: Fri, 15 Jan 2027 09:00:00 +0000\r\nSubject: Re: [#{n}] Housing\r\nMessage-ID: <plain-to@volunteers.example>\r\nIn-Reply-To: <{notification}>\r\nReferences: <{notification}>\r\n\r\nThe council's housing team opens at 9.\r\n",
        n = id.0
    );
    let outcome = desk.receive(&answer);
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | The council's housing team opens at 9.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | The council's housing team opens at 9.
    "#]].assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn an_answer_from_a_second_registered_address_of_the_caseworker_is_relayed() {
    let (desk, id) = case();
    desk.run(crate::ops::StoreCommand::AgentAddressAdd {
        id: "amina".to_owned(),
        address: "amina.yusuf@home.example".to_owned(),
    })
    .expect("a second address");
    let mark = desk.mark();
    let outcome = desk.receive(&to_reply_address(
        "Amina Yusuf <amina.yusuf@home.example>",
        &desk.token(id, "amina"),
        id,
        "home-registered",
        "",
        "Writing from home: the hearing is at 10, or mail amina.yusuf@home.example.\r\n",
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina.yusuf@home.example
            | Writing from home: the hearing is at 10, or mail amina.yusuf@home.example.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Writing from home: the hearing is at 10, or mail [caseworker].
    "#]].assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(
            !holds(&raw, "home.example"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
}

#[test]
fn an_answer_with_two_from_addresses_is_refused() {
    let (desk, id) = case();
    let mark = desk.mark();
    let answer = to_reply_address(
        "Amina <amina@volunteers.example>, Mallory <mallory@evil.example>",
        &desk.token(id, "amina"),
        id,
        "two-from",
        "",
        "Give your new address to my colleague.\r\n",
    );
    let outcome = desk.receive(&answer);
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the message failed sender authentication: the From field holds several addresses
            | Give your new address to my colleague.
          event reply_refused by system: the message failed sender authentication: the From field holds several addresses
        outbox 3 bounce ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Not sent: [#1] Housing
          | Your message about ticket #1 was NOT sent to the requester.
          | 
          | Why: the message failed sender authentication: the From field holds several addresses.
          | 
          | To answer, use Reply on the latest notification for this ticket from your registered address.
        outbox 4 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the message failed sender authentication: the From field holds several addresses)
          | a reply from amina@volunteers.example was refused: the message failed sender authentication: the From field holds several addresses.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    amina
    "#]].assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
    assert!(desk.texts_to(&mark, "mallory@evil.example").is_empty());
}

#[test]
fn an_answer_from_a_caseworker_who_was_removed_is_refused() {
    let (desk, id) = case();
    let token = desk.token(id, "amina");
    desk.run(crate::ops::StoreCommand::AgentRemove {
        id: "amina".to_owned(),
    })
    .expect("Amina leaves");
    let mark = desk.mark();
    let outcome = desk.receive(&to_reply_address(
        "Amina <amina@volunteers.example>",
        &token,
        id,
        "removed",
        "",
        "I am still here for you, write to me directly.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=-
          message 1 Note from=amina@volunteers.example
            anomaly: refused reply, never relayed: the caseworker this reply token was made for is no longer registered
            | I am still here for you, write to me directly.
          event reply_refused by system: the caseworker this reply token was made for is no longer registered
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (a reply from amina@volunteers.example was refused: the caseworker this reply token was made for is no longer registered)
          | a reply from amina@volunteers.example was refused: the caseworker this reply token was made for is no longer registered.
          | 
          | Ticket:   #1
          | Status:   new
          | Messages: 2
          | Owner:    nobody
    "#]].assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn an_out_of_office_answer_to_a_notification_marks_the_caseworker_away_and_is_never_relayed() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "ooo",
        "Auto-Submitted: auto-replied\r\n",
        "I am on leave and back on 2027-01-20. For urgent matters call the office.\r\n",
    ));
    assert!(matches!(outcome, Outcome::ReplyRefused(..)), "{outcome:?}");
    expect![[r#"
        ticket #1 New owner=-
          message 1 Note from=amina@volunteers.example
            anomaly: automatic reply from the caseworker, never relayed
            | I am on leave and back on 2027-01-20. For urgent matters call the office.
          event auto_reply by system: out-of-office answer from amina; away until 2027-01-20
          event unassigned by system: agent away: amina; back to routing
    "#]]
    .assert_eq(&desk.changes(&mark));
    expect![[r#"
        Some(
            Away {
                until: Some(
                    2027-01-20T00:00:00Z,
                ),
            },
        )
    "#]]
    .assert_debug_eq(&desk.agent("amina").away);
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_token_for_a_merged_ticket_answers_the_ticket_it_was_merged_into() {
    let (desk, id) = case();
    // Fatima wrote again from her sister's address; the two tickets are one case.
    let other = desk.new_ticket(&request(
        "Fatima <fatima.sister@phone.example>",
        "fatima-sister",
        "Housing again",
        "It is Fatima, my phone is broken.",
    ));
    assert_eq!(
        desk.receive(&desk.reply(other, "amina", &format!("#merge {}", id.0))),
        Outcome::Relayed(other)
    );
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(other, "amina", "I have your new number now."));
    assert_eq!(
        outcome,
        Outcome::Relayed(id),
        "the outcome names the ticket it went to"
    );
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 2 Out from=amina@volunteers.example
            | I have your new number now.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        ticket #2 Closed owner=-
          merged into #1
        outbox 6 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | I have your new number now.
    "#]].assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_forwarded_message_with_an_answer_goes_as_its_text_without_its_addresses() {
    let (desk, id) = case();
    let forwarded = b"From: Housing Officer <officer@council.example>\r\nTo: Amina <amina@volunteers.example>\r\nDate: Thu, 14 Jan 2027 16:00:00 +0000\r\nSubject: Case 4411\r\n\r\nWe can offer temporary accommodation from Monday.\r\n";
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "The council wrote to me; see their message.",
        "council.eml",
        "message/rfc822",
        forwarded,
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "council.eml" message/rfc822
            | The council wrote to me; see their message.
          event replied by agent amina: answer relayed to the requester (1 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          attachment "council.txt" text/plain
          | The council wrote to me; see their message.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   a forwarded message: sent as its text only, without its addresses and files
    "#]].assert_eq(&desk.changes(&mark));
    let [relay] = &desk.sent(&mark, OutboxKind::Relay)[..] else {
        panic!("one answer for Fatima");
    };
    let relay = parse::parse(relay, &ParseLimits::default());
    let text = relay
        .attachments
        .first()
        .and_then(|a| a.content())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .expect("the forwarded text goes with the answer");
    expect![[r#"
        Forwarded message
        Subject: Case 4411
        Date: 2027-01-14T16:00:00Z

        We can offer temporary accommodation from Monday.
    "#]]
    .assert_eq(&text);
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_note_with_a_file_keeps_the_file_on_the_ticket_and_away_from_the_requester() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "#note\r\nHer tenancy agreement, for the file.",
        "tenancy.pdf",
        "application/pdf",
        &letter_with_author(),
    ));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            attachment "tenancy.pdf" application/pdf
            | Her tenancy agreement, for the file.
          event note by agent amina: internal note
        outbox 3 notification ticket=#1 to=carol@volunteers.example
          From: Helpdesk <help@charity.example>
          To: carol@volunteers.example
          Subject: [#1] Housing (internal note from amina)
          | Internal note on ticket #1 from amina; the requester does not see it.
          | 
          | Her tenancy agreement, for the file.
    "#]]
    .assert_eq(&desk.changes(&mark));
    assert!(desk.to_requester(&mark, "fatima@phone.example").is_empty());
}

#[test]
fn a_mailto_link_to_the_caseworker_in_an_html_answer_does_not_reach_the_requester() {
    let (desk, id) = case();
    let body = "<div>Call me or write to <a href=\"mailto:amina@volunteers.example\">my work address</a> or <a href=\"mailto:JONAS@volunteers.example\">JONAS@volunteers.example</a>.</div>\r\n";
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "mailto",
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        body,
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Call me or write to my work address or JONAS@volunteers.example.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Call me or write to my work address or [caseworker].
    "#]].assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_caseworkers_address_broken_up_by_invisible_characters_is_still_replaced() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&from_amina(
        &desk,
        id,
        "zero-width",
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
        &format!(
            "Write to a\u{200B}mina@\u{2060}VOLUNTEERS.example if he calls.\r\n\r\n{}",
            quoted_notification(id, "> ")
        ),
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Write to a\u{200b}mina@\u{2060}VOLUNTEERS.example if he calls.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Write to [caseworker] if he calls.
    "#]].assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        let text = parse::parse(&raw, &ParseLimits::default()).text;
        let visible = crate::mail::sanitize::without_format(&text).to_lowercase();
        assert!(!visible.contains("amina@volunteers"), "{text}");
    }
}

#[test]
fn merge_into_the_same_ticket_is_an_error() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", &format!("#merge {}", id.0)));
    accepted_without_relay(&desk, &mark, &outcome, id);
    expect![[r#"
        ticket #1 New owner=amina
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | error: #merge: a ticket cannot be merged into itself
    "#]]
    .assert_eq(&desk.changes(&mark));
}

#[test]
fn away_until_a_date_that_cannot_be_read_marks_nobody_away_and_says_why() {
    let (desk, id) = case();
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "#away until Monday"));
    assert!(matches!(outcome, Outcome::ReplyHeld(..)), "{outcome:?}");
    expect![[r###"
        ticket #1 New owner=amina
          message 1 Note from=amina@volunteers.example
            anomaly: answer held, never relayed: unreadable command
          event reply_held by agent amina: answer held, not relayed: unreadable command
        outbox 3 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was NOT sent to the requester: a command line could not be read (cannot read the date in "#away until Monday" (write it as 2027-01-25)). It is kept on the ticket as a note. To answer, use Reply on the latest notification for ticket #1 and type your answer above the line "##- Please type your reply above this line -##".
          | error: cannot read the date in "#away until Monday" (write it as 2027-01-25)
    "###]].assert_eq(&desk.changes(&mark));
    assert_eq!(desk.agent("amina").away, None, "not away for good");
    assert_eq!(owner(&desk, id).as_deref(), Some("amina"));
}

#[test]
fn a_caseworkers_address_in_the_requesters_subject_is_replaced_in_the_answers_subject() {
    let desk = Desk::new();
    desk.add_agent("amina");
    desk.rota(AMINA_ON_DUTY);
    let id = desk.new_ticket(&request(
        "Fatima <fatima@phone.example>",
        "fatima1",
        "Fwd: letter from amina@volunteers.example",
        "Is this message really from you?",
    ));
    let mark = desk.mark();
    let outcome = desk.receive(&desk.reply(id, "amina", "Yes, that letter is from us."));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            | Yes, that letter is from us.
          event replied by agent amina: answer relayed to the requester (0 attachment(s), 0 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: letter from [caseworker] [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          | Yes, that letter is from us.
    "#]].assert_eq(&desk.changes(&mark));
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

#[test]
fn a_file_named_after_the_caseworker_goes_under_a_scrubbed_name() {
    let (mut desk, id) = case();
    desk.config.helpdesk.hide_names = vec!["Amina Yusuf".to_owned()];
    let mark = desk.mark();
    let outcome = desk.receive(&with_file(
        &desk,
        id,
        "The letter is attached.",
        "Letter by Amina Yusuf (amina@volunteers.example).pdf",
        "application/pdf",
        &letter_with_author(),
    ));
    assert_eq!(outcome, Outcome::Relayed(id));
    expect![[r#"
        ticket #1 Waiting owner=amina
          message 1 Out from=amina@volunteers.example
            attachment "Letter by Amina Yusuf (amina@volunteers.example).pdf" application/pdf
            | The letter is attached.
          event replied by agent amina: answer relayed to the requester (1 attachment(s), 1 file(s) left out or cleaned)
        outbox 3 relay ticket=#1 to=fatima@phone.example
          From: Helpdesk <help@charity.example>
          To: Fatima <fatima@phone.example>
          Subject: Re: Housing [#1]
          In-Reply-To: <fatima1@phone.example>
          References: <fatima1@phone.example>
          attachment "Letter by [caseworker] ([caseworker]).pdf" application/pdf
          | The letter is attached.
        outbox 4 notification ticket=#1 to=amina@volunteers.example
          From: Helpdesk <help@charity.example>
          To: amina@volunteers.example
          Subject: Done: [#1] Housing
          | Your answer was sent to the requester. About its files:
          |   Letter by Amina Yusuf (amina@volunteers.example).pdf: sent without its metadata
    "#]].assert_eq(&desk.changes(&mark));
    for raw in desk.to_requester(&mark, "fatima@phone.example") {
        assert!(!holds(&raw, "yusuf"), "{}", String::from_utf8_lossy(&raw));
    }
    nothing_of_the_caseworkers_reaches_fatima(&desk, id, &mark);
}

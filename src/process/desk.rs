//! An in-process help desk for the fast tests of the casework core: a store, secret and config in
//! a temporary directory, a clock the test moves, raw mail in, and everything casemail did out
//! (tickets, their messages and events, the outbox, quarantine) rendered as text that the golden
//! tests compare with blessed expectations (`expect-test`; bless with `UPDATE_EXPECT=1`).
//!
//! Times are rendered relative to the desk's start (`+2h`), and mail casemail composed is shown
//! by its decoded header fields and text, so a snapshot names every byte of substance a
//! requester or caseworker receives and nothing that varies from run to run.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;

use jiff::{SignedDuration, Timestamp};

use super::{Filing, Outcome};
use crate::casework::assign::{Sweep, Team};
use crate::casework::token::Secret;
use crate::config::Config;
use crate::ids::{AgentId, TicketId, Uid, UidValidity};
use crate::mail::parse::{self, ParseLimits};
use crate::model::{Actor, Arrival, FolderKind, Role, Source};
use crate::ops::StoreCommand;
use crate::store::Store;

/// The moment every desk starts at: Friday 15 January 2027, 08:00 UTC.
pub(crate) const START: i64 = 1_800_000_000;

/// The shared address every desk answers for.
pub(crate) const HELP: &str = "help@charity.example";

pub(crate) struct Desk {
    _dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) secret: Secret,
    pub(crate) config: Config,
    now: Cell<Timestamp>,
    next_uid: Cell<u32>,
}

impl Desk {
    pub(crate) fn new() -> Desk {
        Desk::with("")
    }

    /// A desk whose config file ends with `extra` (whole sections, e.g. `"[rota]\n…"`).
    pub(crate) fn with(extra: &str) -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("casemail.toml");
        std::fs::write(
            &path,
            format!(
                "[helpdesk]\naddress = \"{HELP}\"\nstate_dir = {:?}\n[imap]\nhost = \"imap.charity.example\"\nusername = \"help\"\npassword = \"x\"\n[smtp]\nhost = \"smtp.charity.example\"\n{extra}",
                dir.path().to_string_lossy()
            ),
        )
        .expect("write config");
        let config = crate::config::load_with_env(&path, &HashMap::new()).expect("config");
        let store = Store::open(dir.path()).expect("store");
        // A fixed key, so reply tokens in snapshots are the same on every run.
        std::fs::write(
            dir.path().join(crate::casework::token::SECRET_FILE),
            [7u8; 32],
        )
        .expect("write the secret");
        let secret = Secret::load_or_create(dir.path()).expect("secret");
        Desk {
            _dir: dir,
            store,
            secret,
            config,
            now: Cell::new(Timestamp::from_second(START).expect("time")),
            next_uid: Cell::new(1),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.now.get()
    }

    /// Moves the desk's clock forward.
    pub(crate) fn advance(&self, by: SignedDuration) {
        self.now.set(self.now.get() + by);
    }

    /// Files `raw` as if fetched from the requests folder with UID `uid`.
    pub(crate) fn file(&self, uid: u32, kind: FolderKind, raw: &str) -> Outcome {
        self.file_bytes(uid, kind, raw.as_bytes())
    }

    /// Files raw bytes, which need not be UTF-8.
    pub(crate) fn file_bytes(&self, uid: u32, kind: FolderKind, raw: &[u8]) -> Outcome {
        let mail = parse::parse(raw, &ParseLimits::default());
        self.file_parsed(uid, kind, &mail, raw)
    }

    /// Files an already parsed message (as fetch hands on one over the size cap).
    pub(crate) fn file_parsed(
        &self,
        uid: u32,
        kind: FolderKind,
        mail: &parse::InboundMail,
        raw: &[u8],
    ) -> Outcome {
        self.next_uid.set(self.next_uid.get().max(uid + 1));
        let team = Team::load(&self.store, &self.config.rota.timezone).expect("team");
        let filing = Filing {
            store: &self.store,
            secret: &self.secret,
            config: &self.config,
            now: self.now(),
            nonce: u64::from(uid),
            spamd: crate::casework::spam::SpamdAnswer::NotAsked,
        };
        filing
            .file(&team, &source(uid), kind, Arrival::Live, mail, raw)
            .expect("file")
            .0
    }

    /// Files `raw` from the requests folder under the next free UID.
    pub(crate) fn receive(&self, raw: &str) -> Outcome {
        self.file(self.next_uid.get(), FolderKind::Requests, raw)
    }

    /// Files `raw` from the junk folder under the next free UID.
    pub(crate) fn receive_junk(&self, raw: &str) -> Outcome {
        self.file(self.next_uid.get(), FolderKind::Junk, raw)
    }

    /// Registers `id` as `{id}@volunteers.example`, named `id`.
    pub(crate) fn add_agent(&self, id: &str) {
        self.add_agent_as(id, Role::Agent);
    }

    pub(crate) fn add_agent_as(&self, id: &str, role: Role) {
        let new = crate::casework::admin::NewAgent {
            id: id.to_owned(),
            name: id.to_owned(),
            emails: vec![format!("{id}@volunteers.example")],
            role,
            max_open: None,
        };
        crate::casework::admin::add_agent(&self.store, HELP, new, self.now()).expect("add agent");
    }

    pub(crate) fn agent(&self, id: &str) -> crate::model::Agent {
        self.store
            .agent(&AgentId(id.to_owned()))
            .expect("read")
            .expect("agent")
    }

    /// Runs an operator's command as the CLI would, at the desk's time; the text it printed, or
    /// the error.
    pub(crate) fn run(&self, command: StoreCommand) -> Result<String, String> {
        let mut out = Vec::new();
        let result =
            crate::ops::execute_at(&self.store, &self.config, &command, self.now(), &mut out);
        let printed = String::from_utf8_lossy(&out).into_owned();
        result.map(|()| printed).map_err(|err| format!("{err:#}"))
    }

    /// Imports a rota (the rota file's text); panics with the error when it is refused.
    pub(crate) fn rota(&self, text: &str) {
        self.run(StoreCommand::RotaImport {
            file: "rota.toml".to_owned(),
            text: text.to_owned(),
        })
        .expect("rota import");
    }

    /// Runs the process stage's periodic pass (assignment, handover, digest) at the desk's time.
    pub(crate) fn sweep(&self) -> Sweep {
        let mut team = Team::load(&self.store, &self.config.rota.timezone).expect("team");
        crate::casework::assign::sweep(
            &self.store,
            &self.config,
            &mut team,
            &self.secret,
            self.now(),
            u64::from(self.next_uid.get()) + 1_000_000,
        )
        .expect("sweep")
    }

    /// The reply token `agent` answers `ticket` with.
    pub(crate) fn token(&self, ticket: TicketId, agent: &str) -> String {
        self.secret.sign(ticket, &AgentId(agent.to_owned()))
    }

    /// A caseworker's answer as a mail client sends it: `agent` replying to the notification of
    /// `ticket` (the token in the address), with `answer` above the quoted notification.
    pub(crate) fn reply(&self, ticket: TicketId, agent: &str, answer: &str) -> String {
        let token = self.token(ticket, agent);
        let uid = self.next_uid.get();
        format!(
            "From: {agent} <{agent}@volunteers.example>\r\nTo: help+{token}@charity.example\r\nDate: Fri, 15 Jan 2027 09:00:00 +0000\r\nSubject: Re: [#{n}] Help\r\nMessage-ID: <reply{uid}@volunteers.example>\r\n\r\n{answer}\r\n\r\nOn Friday, Helpdesk <help+{token}@charity.example> wrote:\r\n> {above}\r\n> Ticket:   #{n}\r\n> Status:   open\r\n",
            n = ticket.0,
            above = crate::mail::strip::REPLY_ABOVE,
        )
    }

    /// The ticket a new request opened, or a panic naming what happened instead.
    pub(crate) fn new_ticket(&self, raw: &str) -> TicketId {
        match self.receive(raw) {
            Outcome::NewTicket(id) => id,
            other => panic!("expected a new ticket, got {other:?}"),
        }
    }

    /// Everything the desk holds, as text: every ticket with its messages and events, the
    /// outbox (each message's header fields and text), dead letters and quarantine.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for ticket in self.store.tickets().expect("tickets") {
            let _ = writeln!(
                out,
                "ticket #{} {:?} owner={} requester={} subject={:?}",
                ticket.id.0,
                ticket.status,
                ticket.owner.as_ref().map_or("-", |o| o.0.as_str()),
                ticket.requester,
                ticket.subject,
            );
            if let Some(into) = ticket.merged_into {
                let _ = writeln!(out, "  merged into #{}", into.0);
            }
            if !ticket.flags.is_empty() {
                let _ = writeln!(out, "  flags {:?}", ticket.flags);
            }
            for message in self.store.messages(ticket.id).expect("messages") {
                let _ = writeln!(
                    out,
                    "  message {} {:?} from={} {}",
                    message.seq,
                    message.direction,
                    message.from.as_deref().unwrap_or("-"),
                    self.since(message.received),
                );
                for anomaly in &message.anomalies {
                    let _ = writeln!(out, "    anomaly: {anomaly}");
                }
                for line in message.text.lines() {
                    let _ = writeln!(out, "    | {line}");
                }
            }
            for event in self.store.events(ticket.id).expect("events") {
                let actor = match &event.actor {
                    Actor::System => "system".to_owned(),
                    Actor::Requester(address) => format!("requester {address}"),
                    Actor::Agent(id) => format!("agent {}", id.0),
                };
                let _ = writeln!(
                    out,
                    "  event {} {} by {actor}: {}",
                    self.since(event.at),
                    event.kind,
                    event.detail
                );
            }
        }
        for entry in self.store.outbox().expect("outbox") {
            let _ = writeln!(
                out,
                "outbox {} {} ticket={} to={}",
                entry.id,
                entry.kind.name(),
                entry.ticket.map_or("-".to_owned(), |t| format!("#{}", t.0)),
                entry.recipients.join(","),
            );
            let raw = self
                .store
                .outbox_raw(entry.id)
                .expect("outbox raw")
                .unwrap_or_default();
            out.push_str(&composed(&raw));
        }
        for dead in self.store.dead_letters().expect("dead letters") {
            let _ = writeln!(
                out,
                "dead letter {} {} to={}: {}",
                dead.entry.id,
                dead.entry.kind.name(),
                dead.entry.recipients.join(","),
                dead.error
            );
        }
        for entry in self.store.quarantine().expect("quarantine") {
            let _ = writeln!(
                out,
                "quarantined uid {} attempts={}: {}",
                entry.source.uid.0, entry.attempts, entry.reason
            );
        }
        out
    }

    /// The text of every outbox message of `kind`, in order.
    pub(crate) fn outbox_texts(&self, kind: crate::model::OutboxKind) -> Vec<String> {
        self.store
            .outbox()
            .expect("outbox")
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| {
                let raw = self
                    .store
                    .outbox_raw(e.id)
                    .expect("raw")
                    .unwrap_or_default();
                parse::parse(&raw, &ParseLimits::default()).text
            })
            .collect()
    }

    fn since(&self, at: Timestamp) -> String {
        let start = Timestamp::from_second(START).expect("time");
        let seconds = at.as_second() - start.as_second();
        match seconds {
            0 => "+0".to_owned(),
            s if s % 3600 == 0 => format!("{:+}h", s / 3600),
            s if s % 60 == 0 => format!("{:+}m", s / 60),
            s => format!("{s:+}s"),
        }
    }
}

/// A message casemail composed, as a snapshot shows it: the header fields that reach a reader
/// (decoded), then the text, each line prefixed.
fn composed(raw: &[u8]) -> String {
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
    if !mail.cc.is_empty() {
        let _ = writeln!(out, "  Cc: {}", list(&mail.cc));
    }
    if !mail.reply_to.is_empty() {
        let _ = writeln!(out, "  Reply-To: {}", list(&mail.reply_to));
    }
    let _ = writeln!(out, "  Subject: {}", mail.subject.as_deref().unwrap_or(""));
    if let Some(auto) = &mail.auto_submitted {
        let _ = writeln!(out, "  Auto-Submitted: {auto}");
    }
    for attachment in &mail.attachments {
        let _ = writeln!(
            out,
            "  attachment {:?} {} bytes",
            attachment.name.as_deref().unwrap_or("-"),
            attachment.size
        );
    }
    for line in mail.text.lines() {
        let _ = writeln!(out, "  | {line}");
    }
    out
}

fn source(uid: u32) -> Source {
    Source {
        mailbox: "INBOX".to_owned(),
        uidvalidity: UidValidity(9),
        uid: Uid(uid),
    }
}

/// A requester's message: `from` (an address, or `Name <address>`), subject and text, with a
/// Message-ID made from `id`.
pub(crate) fn request(from: &str, id: &str, subject: &str, text: &str) -> String {
    format!(
        "From: {from}\r\nTo: {HELP}\r\nDate: Fri, 15 Jan 2027 08:00:00 +0000\r\nSubject: {subject}\r\nMessage-ID: <{id}@phone.example>\r\n\r\n{text}\r\n"
    )
}

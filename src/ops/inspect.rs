//! `casemail inspect`: shows how casemail reads raw message files, as text or JSON.
//!
//! This module reads the files it is given and prints; it must not open the store, the control
//! socket or any server, so it works on a laptop with nothing but the binary and a `.eml` file.
//! The report is built once ([`Report`]) and both output formats print that, so a field added to
//! the report appears in both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::mail::parse::{self, Anomaly, Attachment, InboundMail, Mailbox, ParseLimits};
use crate::mail::sanitize::for_terminal;
use crate::mail::strip;

/// What `inspect` prints for one file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub file: String,
    pub size: usize,
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub from: Option<Mailbox>,
    pub sender: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub return_path: Option<String>,
    pub subject: Option<String>,
    pub thread_subject: Option<String>,
    /// RFC 3339.
    pub date: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub list_id: Option<String>,
    pub list_unsubscribe: bool,
    pub x_autoreply: bool,
    pub is_delivery_report: bool,
    pub headers: BTreeMap<String, Vec<String>>,
    pub text: String,
    /// What the sender wrote, without quoted history and signature (see [`strip`]).
    pub reply_text: String,
    pub attachments: Vec<AttachmentReport>,
    /// `mid:<message-id>` or `hash:<sha256>`, as the store indexes it.
    pub dedupe_key: String,
    pub anomalies: Vec<AnomalyReport>,
    /// The spam verdict from the message alone: its headers and the configured rules and
    /// allow-lists. The folder it would arrive in, spamd, the learned classifier and the
    /// sender's history are not known here.
    pub spam: crate::casework::spam::Verdict,
    /// The authentication verdict with the configured `[auth]` settings: `pass (…)`,
    /// `unverified` or `fail: …`.
    pub authentication: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AttachmentReport {
    pub name: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub kept: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AnomalyReport {
    pub kind: &'static str,
    pub message: String,
}

impl Report {
    /// The report on `mail`, read from the bytes `raw`.
    pub(crate) fn new(
        file: &Path,
        raw: &[u8],
        mail: &InboundMail,
        spam: &crate::config::Spam,
        auth: &crate::config::Auth,
    ) -> Report {
        let ids = |ids: &[crate::ids::MessageId]| ids.iter().map(|id| id.to_string()).collect();
        Report {
            file: file.display().to_string(),
            size: mail.size,
            message_id: mail.message_id.as_ref().map(|id| id.to_string()),
            from: mail.from.clone(),
            sender: mail.sender.clone(),
            reply_to: mail.reply_to.clone(),
            to: mail.to.clone(),
            cc: mail.cc.clone(),
            return_path: mail.return_path.clone(),
            subject: mail.subject.clone(),
            thread_subject: mail.thread_subject.clone(),
            date: mail.date.map(|date| date.to_string()),
            in_reply_to: ids(&mail.in_reply_to),
            references: ids(&mail.references),
            auto_submitted: mail.auto_submitted.clone(),
            precedence: mail.precedence.clone(),
            list_id: mail.list_id.clone(),
            list_unsubscribe: mail.list_unsubscribe,
            x_autoreply: mail.x_autoreply,
            is_delivery_report: mail.is_delivery_report,
            headers: mail.headers.clone(),
            text: mail.text.clone(),
            reply_text: strip::strip(mail, raw).text,
            attachments: mail.attachments.iter().map(AttachmentReport::new).collect(),
            dedupe_key: mail.key.to_index_string(),
            anomalies: mail.anomalies.iter().map(AnomalyReport::new).collect(),
            spam: crate::casework::spam::assess(
                spam,
                mail,
                raw,
                &crate::casework::spam::Context::inspect(),
            ),
            authentication: match crate::casework::auth::verdict(mail, auth) {
                crate::casework::auth::Verdict::Pass(what) => format!("pass ({what})"),
                crate::casework::auth::Verdict::Unverified => "unverified".to_owned(),
                crate::casework::auth::Verdict::Fail(reason) => format!("fail: {reason}"),
            },
        }
    }

    /// The text form: the fields that matter, every value from the message escaped for the
    /// terminal, then the decoded text with each line prefixed by `| `.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, so the results of write! are ignored throughout.
        let _ = writeln!(out, "== {} ({} bytes)", for_terminal(&self.file), self.size);
        let mut field = |label: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = writeln!(out, "{label:<17} {}", for_terminal(&value));
            }
        };
        field("Dedupe key:", Some(self.dedupe_key.clone()));
        field(
            "Spam:",
            Some(format!(
                "{} (score {:.2}: {})",
                if self.spam.spam { "yes" } else { "no" },
                self.spam.score,
                self.spam.summary()
            )),
        );
        field("Authentication:", Some(self.authentication.clone()));
        field("Message-ID:", self.message_id.clone());
        field("From:", self.from.as_ref().map(mailbox));
        field("Sender:", self.sender.as_ref().map(mailbox));
        field("Reply-To:", mailbox_list(&self.reply_to));
        field("To:", mailbox_list(&self.to));
        field("Cc:", mailbox_list(&self.cc));
        field(
            "Return-Path:",
            self.return_path.as_ref().map(|path| format!("<{path}>")),
        );
        field("Subject:", self.subject.clone());
        field("Thread subject:", self.thread_subject.clone());
        field("Date:", self.date.clone());
        field("In-Reply-To:", non_empty(self.in_reply_to.join(" ")));
        field("References:", non_empty(self.references.join(" ")));
        field("Auto-Submitted:", self.auto_submitted.clone());
        field("Precedence:", self.precedence.clone());
        field("List-Id:", self.list_id.clone());
        field(
            "List-Unsubscribe:",
            self.list_unsubscribe.then(|| "yes".to_owned()),
        );
        field("X-Autoreply:", self.x_autoreply.then(|| "yes".to_owned()));
        field(
            "Delivery report:",
            self.is_delivery_report.then(|| "yes".to_owned()),
        );
        for (name, values) in &self.headers {
            for value in values {
                field(&format!("{name}:"), Some(value.clone()));
            }
        }
        if !self.attachments.is_empty() {
            let _ = writeln!(out, "Attachments:");
            for attachment in &self.attachments {
                let name = attachment.name.as_deref().unwrap_or("(no name)");
                let _ = writeln!(
                    out,
                    "  - {} ({}, {} bytes){}",
                    for_terminal(name),
                    for_terminal(&attachment.content_type),
                    attachment.size,
                    if attachment.kept {
                        ""
                    } else {
                        ", kept in the raw message only"
                    }
                );
            }
        }
        if !self.anomalies.is_empty() {
            let _ = writeln!(out, "Anomalies:");
            for anomaly in &self.anomalies {
                let _ = writeln!(
                    out,
                    "  - {}: {}",
                    anomaly.kind,
                    for_terminal(&anomaly.message)
                );
            }
        }
        for (heading, text) in [("Text:", &self.text), ("Reply text:", &self.reply_text)] {
            let _ = writeln!(out, "{heading}");
            for line in text.lines() {
                let line = for_terminal(line);
                let gap = if line.is_empty() { "" } else { " " };
                let _ = writeln!(out, "  |{gap}{line}");
            }
        }
        out
    }
}

impl AttachmentReport {
    fn new(attachment: &Attachment) -> AttachmentReport {
        AttachmentReport {
            name: attachment.name.clone(),
            content_type: attachment.content_type.clone(),
            size: attachment.size,
            kept: attachment.kept,
        }
    }
}

impl AnomalyReport {
    fn new(anomaly: &Anomaly) -> AnomalyReport {
        AnomalyReport {
            kind: anomaly.kind(),
            message: anomaly.to_string(),
        }
    }
}

fn mailbox(mailbox: &Mailbox) -> String {
    match &mailbox.name {
        Some(name) => format!("{name:?} <{}>", mailbox.address),
        None => format!("<{}>", mailbox.address),
    }
}

fn mailbox_list(mailboxes: &[Mailbox]) -> Option<String> {
    non_empty(mailboxes.iter().map(mailbox).collect::<Vec<_>>().join(", "))
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Reads and parses every file, then prints all reports: as one JSON array with `json`, as
/// text otherwise. Files are read before anything is printed, so an unreadable file fails the
/// command without half an output.
pub(crate) fn inspect_files(
    files: &[PathBuf],
    format: OutputFormat,
    spam: &crate::config::Spam,
    auth: &crate::config::Auth,
) -> anyhow::Result<()> {
    let reports = reports(files, &ParseLimits::default(), spam, auth)?;
    match format {
        OutputFormat::Json => {
            let json =
                serde_json::to_string_pretty(&reports).context("cannot encode the report")?;
            println!("{json}");
        }
        OutputFormat::Text => {
            let texts: Vec<String> = reports.iter().map(Report::to_text).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}

/// The output format of [`inspect_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

/// One report per file, in the order given.
pub(crate) fn reports(
    files: &[PathBuf],
    limits: &ParseLimits,
    spam: &crate::config::Spam,
    auth: &crate::config::Auth,
) -> anyhow::Result<Vec<Report>> {
    files
        .iter()
        .map(|file| {
            let raw = std::fs::read(file)
                .with_context(|| format!("cannot read message file {}", file.display()))?;
            Ok(Report::new(
                file,
                &raw,
                &parse::parse(&raw, limits),
                spam,
                auth,
            ))
        })
        .collect()
}

#[cfg(test)]
// Tests fail by panicking.
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn report(raw: &[u8]) -> Report {
        Report::new(
            Path::new("m.eml"),
            raw,
            &parse::parse(raw, &ParseLimits::default()),
            &crate::config::Spam::default(),
            &crate::config::Auth::default(),
        )
    }

    #[test]
    fn json_has_the_documented_fields() {
        let raw = b"From: A <a@example.org>\nTo: b@example.org\nSubject: hi\n\
                    Date: Tue, 12 Mar 2024 09:13:55 +0000\nMessage-ID: <x@Example.org>\n\nbody\n";
        let json = serde_json::to_value(report(raw)).unwrap();
        for key in [
            "file",
            "message_id",
            "from",
            "to",
            "cc",
            "subject",
            "date",
            "in_reply_to",
            "references",
            "auto_submitted",
            "precedence",
            "list_id",
            "text",
            "reply_text",
            "attachments",
            "dedupe_key",
            "anomalies",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["message_id"], "x@example.org");
        assert_eq!(json["dedupe_key"], "mid:x@example.org");
        assert_eq!(json["date"], "2024-03-12T09:13:55Z");
        assert_eq!(json["from"]["address"], "a@example.org");
    }

    #[test]
    fn reply_text_leaves_out_the_quoted_notification() {
        let raw = "From: a@example.org\nSubject: Re: [#12] Housing\n\nI will call her today.\n\n\
                   On Tue, 12 Mar 2024 at 10:15, Helpdesk <help@charity.example> wrote:\n\
                   > ##- Please type your reply above this line -##\n> Please help me.\n";
        let report = report(raw.as_bytes());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["reply_text"], "I will call her today.");
        assert!(
            report
                .to_text()
                .contains("Reply text:\n  | I will call her today.\n")
        );
    }

    #[test]
    fn anomalies_have_kind_and_message() {
        let json = serde_json::to_value(report(b"")).unwrap();
        assert_eq!(json["anomalies"][0]["kind"], "unparseable");
        assert_eq!(json["anomalies"][0]["message"], "the message is empty");
        assert!(json["dedupe_key"].as_str().unwrap().starts_with("hash:"));
    }

    #[test]
    fn text_output_escapes_hostile_subjects() {
        let raw = b"From: a@example.org\nSubject: =?utf-8?Q?ok=0AINFO_forged=1B[2J?=\n\nx\n";
        let text = report(raw).to_text();
        assert!(
            text.contains("Subject:          ok INFO forged\\u{1b}[2J"),
            "{text}"
        );
    }

    #[test]
    fn the_authentication_verdict_follows_the_trusted_servers() {
        let raw = b"Authentication-Results: mx.charity.example; dmarc=fail header.from=example.org\nFrom: A <a@example.org>\nSubject: hi\n\nbody\n";
        let mail = parse::parse(raw, &ParseLimits::default());
        let spam = crate::config::Spam::default();
        let untrusted = Report::new(
            Path::new("m.eml"),
            raw,
            &mail,
            &spam,
            &crate::config::Auth::default(),
        );
        assert_eq!(untrusted.authentication, "unverified");
        let auth = crate::config::Auth {
            trusted_authserv_ids: vec!["mx.charity.example".to_owned()],
            ..crate::config::Auth::default()
        };
        let trusted = Report::new(Path::new("m.eml"), raw, &mail, &spam, &auth);
        assert!(
            trusted.to_text().contains(
                "Authentication:   fail: the receiving server recorded dmarc=fail for example.org"
            ),
            "{}",
            trusted.to_text()
        );
    }

    #[test]
    fn unreadable_file_is_named_in_the_error() {
        let missing = PathBuf::from("/nonexistent/casemail-inspect.eml");
        let err = reports(
            &[missing],
            &ParseLimits::default(),
            &crate::config::Spam::default(),
            &crate::config::Auth::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/casemail-inspect.eml"));
    }
}

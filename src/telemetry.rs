//! Logging setup: tracing to stderr, text or JSON, filtered by `RUST_LOG` (default `info`).
//!
//! journald adds its own timestamps, so the text format leaves them out when stderr is the
//! journal (`JOURNAL_STREAM` is set by systemd).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, suited to journald.
    Text,
    /// One JSON object per line.
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests calling `init` twice) is harmless, hence `try_init`.
    let _ = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

/// An error with its causes, outermost first, joined by ": ", for logs and `/healthz`. A
/// cause whose text the message above it already shows (`#[error("…: {0}")]`,
/// `#[error(transparent)]`) is not repeated.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("imap failed")]
        Imap(#[source] std::io::Error),
        #[error("store failed: {0}")]
        Store(#[source] std::io::Error),
    }

    #[test]
    fn a_chain_names_every_cause_once() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            super::chain(&Outer::Imap(refused())),
            "imap failed: refused"
        );
        assert_eq!(
            super::chain(&Outer::Store(refused())),
            "store failed: refused"
        );
    }
}

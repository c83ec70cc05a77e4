//! The command line: clap definitions (their doc comments are the `--help` text) and the glue
//! that turns a parsed command into calls on the library.
//!
//! Data goes to stdout (as JSON with `--json`), logs and errors to stderr. This module must not
//! hold business logic: it loads the config, opens what the command needs and prints.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config;
use crate::ids::TicketId;
use crate::model::Status;
use crate::store::Store;
use crate::{report, sanitize};

/// casemail turns a shared help inbox into tickets and back.
///
/// It watches an IMAP mailbox, files every message into exactly one ticket, hands tickets to the
/// caseworker on duty and relays their answers from the shared address.
#[derive(Debug, Parser)]
#[command(name = "casemail", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables CASEMAIL__SECTION__KEY override it.
    #[arg(
        long,
        global = true,
        env = "CASEMAIL_CONFIG",
        default_value = "/etc/casemail/casemail.toml"
    )]
    pub config: PathBuf,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, suited to journald.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what the systemd unit starts).
    Run,
    /// Validate the configuration and print the effective values with secrets redacted.
    CheckConfig(JsonFlag),
    /// Show how casemail reads raw messages, without touching the store or any server.
    Inspect(InspectArgs),
    /// List and show tickets.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Messages that could not be processed and were set aside with their raw bytes.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Raw message files (.eml).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// List tickets, newest last.
    List {
        /// Only tickets with this status.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with its messages in order.
    Show {
        /// The ticket number.
        number: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined messages.
    List(JsonFlag),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    New,
    Open,
    Waiting,
    Closed,
    Spam,
}

/// Runs the parsed command. Errors carry context; `main` maps them to an exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig(flag) => {
            let config = config::load(&cli.config)?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
            } else {
                print!("{}", config.redacted_toml());
            }
            Ok(())
        }
        Command::Run => {
            let config = config::load(&cli.config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(crate::daemon::run_until_signal(config))
        }
        Command::Inspect(args) => {
            let format = if args.json {
                crate::inspect::OutputFormat::Json
            } else {
                crate::inspect::OutputFormat::Text
            };
            crate::inspect::inspect_files(&args.files, format)
        }
        Command::Ticket(command) => {
            let store = open_store(&cli.config)?;
            ticket(&store, command)
        }
        Command::Quarantine(QuarantineCommand::List(flag)) => {
            let store = open_store(&cli.config)?;
            let entries = store.quarantine()?;
            if flag.json {
                let values: Vec<_> = entries.iter().map(report::quarantine_json).collect();
                println!("{}", serde_json::to_string_pretty(&values)?);
            } else if entries.is_empty() {
                println!("quarantine is empty");
            } else {
                for e in &entries {
                    println!(
                        "{} uid {} (uidvalidity {}), {} bytes, {} attempts: {}",
                        sanitize::for_terminal(&e.source.mailbox),
                        e.source.uid,
                        e.source.uidvalidity,
                        e.size,
                        e.attempts,
                        sanitize::for_terminal(&e.reason)
                    );
                }
            }
            Ok(())
        }
    }
}

fn open_store(config_path: &std::path::Path) -> anyhow::Result<Store> {
    let config = config::load(config_path)?;
    Store::open(&config.helpdesk.state_dir).context("cannot open the store")
}

fn ticket(store: &Store, command: TicketCommand) -> anyhow::Result<()> {
    match command {
        TicketCommand::List { status, json } => {
            let status = status.map(|s| match s {
                StatusFilter::New => Status::New,
                StatusFilter::Open => Status::Open,
                StatusFilter::Waiting => Status::Waiting,
                StatusFilter::Closed => Status::Closed,
                StatusFilter::Spam => Status::Spam,
            });
            let tickets = report::ticket_list(store, status)?;
            if json {
                let values: Vec<_> = tickets.iter().map(report::ticket_summary).collect();
                println!("{}", serde_json::to_string_pretty(&values)?);
            } else {
                print!("{}", report::ticket_list_text(&tickets));
            }
            Ok(())
        }
        TicketCommand::Show { number, json } => {
            let detail = report::ticket_detail(store, TicketId(number))?
                .with_context(|| format!("no ticket #{number}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                print!("{}", report::ticket_detail_text(&detail));
            }
            Ok(())
        }
    }
}

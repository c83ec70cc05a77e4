//! The command line: clap definitions (their doc comments are the `--help` text) and the glue
//! that turns a parsed command into calls on the library.
//!
//! Data goes to stdout (as JSON with `--json`), logs and errors to stderr. This module must not
//! hold business logic: it loads the config, opens what the command needs and prints.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin;
use crate::config;
use crate::ids::{AgentId, TicketId};
use crate::model::{Role, Status};
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
    /// Register and manage caseworkers (coordinators only: nobody registers themselves).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The weekly rota of shifts, with leave and extra shifts (see config/rota.example.toml).
    #[command(subcommand)]
    Rota(RotaCommand),
}

#[derive(Debug, Subcommand)]
pub enum RotaCommand {
    /// Replace the rota with the one in FILE (TOML); every agent it names must be registered.
    Import { file: PathBuf },
    /// Print the current rota as TOML, ready to keep in version control.
    Export,
    /// Who is on duty now, or at --at.
    Show {
        /// An RFC 3339 time (2026-12-24T18:00:00+01:00) or a local time in the rota's time zone
        /// (2026-12-24T18:00).
        #[arg(long)]
        at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register an agent.
    Add {
        /// A short id: lower-case letters, digits, '-', '_' or '.' (e.g. "amina").
        #[arg(long)]
        id: String,
        /// The name coordinators see.
        #[arg(long)]
        name: String,
        /// An address the agent receives tickets at and replies from; repeat for several
        /// (the first receives notifications).
        #[arg(long = "email", required = true)]
        emails: Vec<String>,
        #[arg(long, value_enum, default_value_t = RoleArg::Agent)]
        role: RoleArg,
        /// Most open tickets this agent is given at once.
        #[arg(long)]
        max_open: Option<u32>,
    },
    /// List agents with their caseload.
    List(JsonFlag),
    /// Show one agent.
    Show {
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an agent; their open tickets go back to routing.
    Remove { id: String },
    /// Mark an agent away; their open tickets go back to routing.
    Away {
        id: String,
        /// When they are back: a date (2026-12-24, midnight in the rota's time zone) or an
        /// RFC 3339 time. Without it, until `agent back`.
        #[arg(long)]
        until: Option<String>,
    },
    /// Mark an agent back from being away.
    Back { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Agent,
    Coordinator,
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
        Command::Agent(command) => agent(&cli.config, command),
        Command::Rota(command) => rota(&cli.config, command),
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

/// Reads `--until`: a civil date (midnight in `timezone`) or an RFC 3339 time.
fn parse_until(text: &str, timezone: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp);
    }
    let date: jiff::civil::Date = text.parse().with_context(|| {
        format!("--until {text:?} is neither a date (2026-12-24) nor an RFC 3339 time")
    })?;
    let zone = jiff::tz::TimeZone::get(timezone)
        .with_context(|| format!("unknown time zone {timezone:?}"))?;
    Ok(date
        .to_zoned(zone)
        .with_context(|| format!("--until {text:?} does not exist in {timezone}"))?
        .timestamp())
}

fn rota(config_path: &std::path::Path, command: RotaCommand) -> anyhow::Result<()> {
    let config = config::load(config_path)?;
    let store = Store::open(&config.helpdesk.state_dir).context("cannot open the store")?;
    match command {
        RotaCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read rota file {}", file.display()))?;
            let parsed = crate::rota::parse(&text)
                .with_context(|| format!("rota file {} is not valid", file.display()))?;
            let registered: std::collections::BTreeSet<AgentId> =
                store.agents()?.into_iter().map(|a| a.id).collect();
            let unknown: Vec<String> = parsed
                .agents()
                .into_iter()
                .filter(|a| !registered.contains(a))
                .map(|a| a.0)
                .collect();
            if !unknown.is_empty() {
                anyhow::bail!(
                    "rota file {} names agents that are not registered: {} (add them with `casemail agent add`)",
                    file.display(),
                    unknown.join(", ")
                );
            }
            store.write(|tx| tx.set_rota(&parsed.to_toml()))?;
            store.flush()?;
            println!(
                "rota imported: {} shift(s), {} leave, {} extra shift(s), time zone {}",
                parsed.shifts().len(),
                parsed.leave().len(),
                parsed.extras().len(),
                parsed.timezone_name()
            );
        }
        RotaCommand::Export => match store.rota()? {
            Some(text) => print!("{text}"),
            None => anyhow::bail!("no rota has been imported yet (casemail rota import FILE)"),
        },
        RotaCommand::Show { at, json } => {
            let text = store
                .rota()?
                .context("no rota has been imported yet (casemail rota import FILE)")?;
            let parsed = crate::rota::parse(&text).context("the stored rota is not valid")?;
            let at = match at {
                None => jiff::Timestamp::now(),
                Some(text) => parse_at(&text, parsed.timezone())?,
            };
            let on_duty: Vec<String> = parsed.on_duty(at).into_iter().map(|a| a.0).collect();
            let next = parsed.next_shift_start(at);
            let local = at.to_zoned(parsed.timezone().clone());
            if json {
                let value = serde_json::json!({
                    "at": at.to_string(),
                    "local": local.to_string(),
                    "timezone": parsed.timezone_name(),
                    "on_duty": on_duty,
                    "next_shift_start": next.map(|t| t.to_string()),
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!(
                    "at {} ({})",
                    local.strftime("%a %Y-%m-%d %H:%M %Z"),
                    parsed.timezone_name()
                );
                if on_duty.is_empty() {
                    println!("nobody is on duty");
                } else {
                    println!("on duty: {}", on_duty.join(", "));
                }
                if let Some(next) = next {
                    let next = next.to_zoned(parsed.timezone().clone());
                    println!(
                        "next shift starts {}",
                        next.strftime("%a %Y-%m-%d %H:%M %Z")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Reads `--at`: an RFC 3339 time, or a civil date-time in the rota's time zone.
fn parse_at(text: &str, zone: &jiff::tz::TimeZone) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp);
    }
    let civil: jiff::civil::DateTime = text.parse().with_context(|| {
        format!("--at {text:?} is neither an RFC 3339 time nor a local time like 2026-12-24T18:00")
    })?;
    Ok(civil
        .to_zoned(zone.clone())
        .with_context(|| format!("--at {text:?} does not exist in the rota's time zone"))?
        .timestamp())
}

fn agent(config_path: &std::path::Path, command: AgentCommand) -> anyhow::Result<()> {
    let config = config::load(config_path)?;
    let store = Store::open(&config.helpdesk.state_dir).context("cannot open the store")?;
    let now = jiff::Timestamp::now();
    match command {
        AgentCommand::Add {
            id,
            name,
            emails,
            role,
            max_open,
        } => {
            let role = match role {
                RoleArg::Agent => Role::Agent,
                RoleArg::Coordinator => Role::Coordinator,
            };
            let new = admin::NewAgent {
                id,
                name,
                emails,
                role,
                max_open,
            };
            let agent = admin::add_agent(&store, &config.helpdesk.address, new, now)?;
            println!("agent {} added", agent.id);
        }
        AgentCommand::List(flag) => {
            let agents = report::agents(&store, now)?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
            } else {
                print!("{}", report::agents_text(&agents));
            }
        }
        AgentCommand::Show { id, json } => {
            let agents = report::agents(&store, now)?;
            let agent = agents
                .iter()
                .find(|a| a["id"] == id.as_str())
                .with_context(|| format!("no agent {id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(agent)?);
            } else {
                print!("{}", report::agents_text(std::slice::from_ref(agent)));
            }
        }
        AgentCommand::Remove { id } => {
            let released = admin::remove_agent(&store, &AgentId(id.clone()), now)?;
            println!(
                "agent {id} removed; {} open ticket(s) back to routing",
                released.len()
            );
        }
        AgentCommand::Away { id, until } => {
            let until = until
                .map(|text| parse_until(&text, &config.rota.timezone))
                .transpose()?;
            let released = admin::set_away(&store, &AgentId(id.clone()), until, now)?;
            match until {
                Some(until) => println!(
                    "agent {id} away until {until}; {} open ticket(s) back to routing",
                    released.len()
                ),
                None => println!(
                    "agent {id} away; {} open ticket(s) back to routing",
                    released.len()
                ),
            }
        }
        AgentCommand::Back { id } => {
            admin::set_back(&store, &AgentId(id.clone()))?;
            println!("agent {id} is back");
        }
    }
    Ok(())
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

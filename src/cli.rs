//! The command line: clap definitions (their doc comments are the `--help` text) and the glue
//! that turns a parsed command into calls on the library.
//!
//! Data goes to stdout (as JSON with `--json`), logs and errors to stderr. This module must not
//! hold business logic: it loads the config, opens what the command needs and prints.
//!
//! Every command that reads or changes the store is a [`StoreCommand`] run by [`execute`],
//! which writes what it prints to a writer. While the daemon runs it holds the store, so the
//! command travels over the control socket and the daemon runs `execute` and sends the output
//! back; otherwise `execute` runs here on the store. Either way the bytes printed are the same.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};

use crate::config::{self, Config};
use crate::control;
use crate::ops::{self, RoleArg, StatusFilter, StoreCommand};
use crate::store::Store;
use crate::telemetry::LogFormat;

mod auth;
pub(crate) mod status;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what the systemd unit starts).
    Run,
    /// Validate the configuration and print the effective values with secrets redacted.
    CheckConfig(JsonFlag),
    /// Whether the daemon runs and what it sees: each IMAP folder's session and last contact,
    /// the SMTP relay, the outbox, dead letters, the quarantine, the last digest and the OAuth
    /// 2.0 token's expiry. Without a daemon, what the store says. Exits 0 only when the daemon
    /// runs with no problem.
    Status(JsonFlag),
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
    /// Addresses casemail sends nothing to for a while, because mail to them bounced for good.
    #[command(subcommand)]
    Suppression(SuppressionCommand),
    /// Tickets held as spam, releasing them, and teaching the spam classifier.
    #[command(subcommand)]
    Spam(SpamCommand),
    /// Write a consistent snapshot of the store and the reply secret to FILE (mode 0600); works
    /// while the daemon runs. The file holds personal data and secrets: keep it safe.
    Backup {
        /// Where to write the backup; replaced atomically if it exists.
        file: PathBuf,
    },
    /// Rebuild a state directory from a backup. The daemon must be stopped.
    Restore(RestoreArgs),
    /// Read every record of the store and report what cannot be read, and whether the store
    /// holds what its marker recorded. The daemon must be stopped. Exits 65 on damage.
    Verify(JsonFlag),
    /// Remove one requester's tickets and messages everywhere, IMAP copies included.
    Erase(EraseArgs),
    /// The key reply tokens are signed with.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// The OAuth 2.0 sign-in to the mailbox (`auth = "oauth2"` and [oauth2] in the config).
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Mail that was not delivered: refused for good by the SMTP server, or a caseworker's
    /// answer to an address that is suppressed.
    #[command(subcommand)]
    Deadletter(DeadletterCommand),
    /// Print a completion script for SHELL to stdout (for example into
    /// /usr/share/bash-completion/completions/casemail).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (casemail.1 and one page per command, such as
    /// casemail-ticket-show.1) into DIR, made from this help text.
    Man { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DeadletterCommand {
    /// List dead letters, oldest first, with their ticket, recipients and why they failed.
    List(JsonFlag),
    /// Put dead letter ID back in the outbox (same bytes and Message-ID), once the cause is
    /// fixed; refused while a recipient is still suppressed.
    Retry { id: u64 },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Replace the reply-token key (after a notification or a mailbox leaked, say). Tokens made
    /// with the old key keep working for [auth] rotation_grace, then only new ones do.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Sign in as oauth2.flow says: show a code to enter on any device (device), an address
    /// to open in any browser (authorization_code), or fetch a token with the client secret
    /// (client_credentials). The tokens go to the state directory (mode 0600); a running
    /// daemon uses them from its next connection on.
    Login,
    /// Who is signed in, the scopes granted, and when the tokens expire.
    Status(JsonFlag),
}

#[derive(Debug, Subcommand)]
pub enum SuppressionCommand {
    /// List suppressed addresses, with until when and why.
    List(JsonFlag),
    /// Send to ADDRESS again (after the requester fixed their mailbox, say).
    Remove { address: String },
}

#[derive(Debug, Subcommand)]
pub enum SpamCommand {
    /// List the tickets held as spam, with the score and the reasons.
    List(JsonFlag),
    /// Release a ticket held as spam: it becomes a new ticket, is routed to the caseworker on
    /// duty, and its messages teach the classifier what is not spam.
    Release { number: u64 },
    /// Teach the classifier from folders of .eml files.
    Train {
        /// A folder of spam messages (.eml); repeat for several.
        #[arg(long = "spam", value_name = "DIR")]
        spam: Vec<PathBuf>,
        /// A folder of messages that are not spam (.eml); repeat for several.
        #[arg(long = "ham", value_name = "DIR")]
        ham: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file written by `casemail backup`.
    pub file: PathBuf,
    /// The state directory to rebuild (default: helpdesk.state_dir from the config).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Replace a store that already holds data.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The requester's email address.
    #[arg(long)]
    pub requester: String,
    /// List what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RotaCommand {
    /// Replace the rota with the one in FILE (TOML); every agent it names must be registered.
    Import { file: PathBuf },
    /// Print the current rota as TOML, ready to keep in version control.
    Export,
    /// Who is on duty now, or at --at.
    Show {
        /// An RFC 3339 time (2026-12-24T18:00:00+01:00) or a local time in rota.timezone
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
        /// When they are back: a date (2026-12-24, midnight in rota.timezone) or an
        /// RFC 3339 time. Without it, until `agent back`.
        #[arg(long)]
        until: Option<String>,
    },
    /// Mark an agent back from being away.
    Back { id: String },
    /// Change an agent's name, cap or role in place; their tickets stay with them.
    Edit {
        id: String,
        /// The name coordinators see.
        #[arg(long)]
        name: Option<String>,
        /// Most open tickets this agent is given at once (tickets they hold stay).
        #[arg(long)]
        max_open: Option<u32>,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Add or remove one of an agent's addresses; their tickets stay with them.
    #[command(subcommand)]
    Address(AgentAddressCommand),
}

#[derive(Debug, Subcommand)]
pub enum AgentAddressCommand {
    /// Add ADDRESS to AGENT: tickets reach them there too, and they may answer from it.
    Add { agent: String, address: String },
    /// Remove ADDRESS from AGENT (not their last one); mail from it no longer counts as theirs.
    Remove { agent: String, address: String },
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
        /// Only tickets this agent owns (their id).
        #[arg(long, value_name = "AGENT")]
        owner: Option<String>,
        /// Only tickets with activity since: a date (2026-12-24, midnight in rota.timezone) or
        /// an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
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
    /// Close a ticket.
    Close { number: u64 },
    /// Reopen a closed ticket.
    Reopen { number: u64 },
    /// Give a ticket to an agent; they receive it by mail.
    Assign { number: u64, agent: String },
    /// Merge ticket FROM into ticket INTO: its messages, events and future mail follow.
    Merge { from: u64, into: u64 },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined messages, each with its id (FOLDER/UIDVALIDITY/UID).
    List(JsonFlag),
    /// Show one quarantined message: why, and its raw bytes (escaped for the terminal).
    Show {
        /// FOLDER/UIDVALIDITY/UID, as `quarantine list` prints it.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// File a quarantined message again (after an upgrade, say): in the running daemon's
    /// process stage, or on the store when the daemon is stopped. One that fails again stays.
    Retry {
        /// FOLDER/UIDVALIDITY/UID, as `quarantine list` prints it.
        id: String,
    },
}

impl From<TicketCommand> for StoreCommand {
    fn from(command: TicketCommand) -> StoreCommand {
        match command {
            TicketCommand::List {
                status,
                owner,
                since,
                json,
            } => StoreCommand::TicketList {
                status,
                owner,
                since,
                json,
            },
            TicketCommand::Show { number, json } => StoreCommand::TicketShow { number, json },
            TicketCommand::Close { number } => StoreCommand::TicketClose { number },
            TicketCommand::Reopen { number } => StoreCommand::TicketReopen { number },
            TicketCommand::Assign { number, agent } => StoreCommand::TicketAssign { number, agent },
            TicketCommand::Merge { from, into } => StoreCommand::TicketMerge { from, into },
        }
    }
}

impl From<QuarantineCommand> for StoreCommand {
    fn from(command: QuarantineCommand) -> StoreCommand {
        match command {
            QuarantineCommand::List(flag) => StoreCommand::QuarantineList { json: flag.json },
            QuarantineCommand::Show { id, json } => StoreCommand::QuarantineShow { id, json },
            QuarantineCommand::Retry { id } => StoreCommand::QuarantineRetry { id },
        }
    }
}

impl From<SuppressionCommand> for StoreCommand {
    fn from(command: SuppressionCommand) -> StoreCommand {
        match command {
            SuppressionCommand::List(flag) => StoreCommand::SuppressionList { json: flag.json },
            SuppressionCommand::Remove { address } => StoreCommand::SuppressionRemove { address },
        }
    }
}

impl From<AgentCommand> for StoreCommand {
    fn from(command: AgentCommand) -> StoreCommand {
        match command {
            AgentCommand::Add {
                id,
                name,
                emails,
                role,
                max_open,
            } => StoreCommand::AgentAdd {
                id,
                name,
                emails,
                role,
                max_open,
            },
            AgentCommand::List(flag) => StoreCommand::AgentList { json: flag.json },
            AgentCommand::Show { id, json } => StoreCommand::AgentShow { id, json },
            AgentCommand::Remove { id } => StoreCommand::AgentRemove { id },
            AgentCommand::Away { id, until } => StoreCommand::AgentAway { id, until },
            AgentCommand::Back { id } => StoreCommand::AgentBack { id },
            AgentCommand::Edit {
                id,
                name,
                max_open,
                role,
            } => StoreCommand::AgentEdit {
                id,
                name,
                max_open,
                role,
            },
            AgentCommand::Address(AgentAddressCommand::Add { agent, address }) => {
                StoreCommand::AgentAddressAdd { id: agent, address }
            }
            AgentCommand::Address(AgentAddressCommand::Remove { agent, address }) => {
                StoreCommand::AgentAddressRemove { id: agent, address }
            }
        }
    }
}

impl StoreCommand {
    /// The rota commands; `rota import` reads its file here, on the caller's side.
    fn from_rota(command: RotaCommand) -> anyhow::Result<StoreCommand> {
        Ok(match command {
            RotaCommand::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read rota file {}", file.display()))?;
                StoreCommand::RotaImport {
                    file: file.display().to_string(),
                    text,
                }
            }
            RotaCommand::Export => StoreCommand::RotaExport,
            RotaCommand::Show { at, json } => StoreCommand::RotaShow { at, json },
        })
    }
}

/// Runs the parsed command. Errors carry context; `main` maps them to an exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Command::CheckConfig(flag) => {
            let config = config::load(&cli.config)?;
            if flag.json {
                println!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
            } else {
                print!("{}", config.redacted_toml());
            }
            return Ok(());
        }
        Command::Status(flag) => return status::run(&config::load(&cli.config)?, flag.json),
        Command::Run => {
            let config = config::load(&cli.config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            return runtime.block_on(crate::daemon::run_until_signal(config));
        }
        Command::Inspect(args) => {
            let format = if args.json {
                crate::ops::inspect::OutputFormat::Json
            } else {
                crate::ops::inspect::OutputFormat::Text
            };
            // The spam rules and `[auth]` come from the config when there is one; without a
            // config file the verdicts use the defaults (no rules, no allow-list, no trusted
            // server), so inspect still works on a machine with nothing but the binary.
            let (spam, auth) = if cli.config.exists() {
                let config = config::load(&cli.config)?;
                (config.spam, config.auth)
            } else {
                (config::Spam::default(), config::Auth::default())
            };
            return crate::ops::inspect::inspect_files(&args.files, format, &spam, &auth);
        }
        Command::Ticket(command) => StoreCommand::from(command),
        Command::Quarantine(command) => StoreCommand::from(command),
        Command::Agent(command) => StoreCommand::from(command),
        Command::Rota(command) => StoreCommand::from_rota(command)?,
        Command::Suppression(command) => StoreCommand::from(command),
        Command::Spam(SpamCommand::List(flag)) => StoreCommand::SpamList { json: flag.json },
        Command::Spam(SpamCommand::Release { number }) => StoreCommand::SpamRelease { number },
        Command::Spam(SpamCommand::Train { spam, ham }) => {
            return spam_train(&cli.config, &spam, &ham);
        }
        Command::Backup { file } => {
            let config = config::load(&cli.config)?;
            return backup_to(&config, &file);
        }
        Command::Verify(flag) => {
            let config = config::load(&cli.config)?;
            return verify_store(&config, flag.json);
        }
        Command::Restore(args) => {
            let config = config::load(&cli.config)?;
            return restore_from(&config, &args);
        }
        Command::Auth(command) => {
            let config = config::load(&cli.config)?;
            return auth::run(&config, &command);
        }
        Command::Completions { shell } => {
            // Composed in memory first: the generator panics on a write error, and a closed
            // pipe (`| head`) is an ordinary error here.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "casemail", &mut script);
            std::io::stdout()
                .write_all(&script)
                .context("cannot write the completion script")?;
            return Ok(());
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("cannot write the manual pages to {}", dir.display()))?;
            return Ok(());
        }
        Command::Erase(args) => StoreCommand::Erase {
            requester: args.requester,
            dry_run: args.dry_run,
            json: args.json,
        },
        Command::Secret(SecretCommand::Rotate) => StoreCommand::SecretRotate,
        Command::Deadletter(DeadletterCommand::List(flag)) => {
            StoreCommand::DeadletterList { json: flag.json }
        }
        Command::Deadletter(DeadletterCommand::Retry { id }) => {
            StoreCommand::DeadletterRetry { id }
        }
    };
    let config = config::load(&cli.config)?;
    run_store_command(&config, &command)
}

/// Samples per `spam train` request, so that a large corpus stays under the control socket's
/// request limit.
const TRAIN_CHUNK: usize = 300;

/// `spam train`: the files are read and tokenised here, then learned by the daemon (or on the
/// store when no daemon runs), a chunk at a time.
fn spam_train(
    config_path: &std::path::Path,
    spam_dirs: &[PathBuf],
    ham_dirs: &[PathBuf],
) -> anyhow::Result<()> {
    if spam_dirs.is_empty() && ham_dirs.is_empty() {
        anyhow::bail!("give at least one --spam DIR or --ham DIR");
    }
    let spam = crate::casework::spam::held::samples_from_dirs(spam_dirs)?;
    let ham = crate::casework::spam::held::samples_from_dirs(ham_dirs)?;
    if spam.is_empty() && ham.is_empty() {
        anyhow::bail!("no .eml file found in the folders given");
    }
    let config = config::load(config_path)?;
    let mut spam_chunks = spam.chunks(TRAIN_CHUNK);
    let mut ham_chunks = ham.chunks(TRAIN_CHUNK);
    loop {
        let next_spam = spam_chunks.next();
        let next_ham = ham_chunks.next();
        if next_spam.is_none() && next_ham.is_none() {
            return Ok(());
        }
        let command = StoreCommand::SpamTrain {
            spam: next_spam.unwrap_or_default().to_vec(),
            ham: next_ham.unwrap_or_default().to_vec(),
        };
        run_store_command(&config, &command)?;
    }
}

/// Sends the command to the running daemon, or runs it on the store when no daemon listens.
fn run_store_command(config: &Config, command: &StoreCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match control::request(&config.control.socket, command)? {
        Some(reply) => {
            tracing::debug!(command = command.name(), "Ran by the daemon.");
            stdout
                .write_all(reply.stdout.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout")?;
            if reply.error.is_none()
                && let StoreCommand::Erase {
                    dry_run: false,
                    json,
                    ..
                } = command
            {
                let note = "the erased records are gone from the store; its files are compacted \
                            when the daemon next starts: restart casemail to remove them from \
                            disk now";
                if *json {
                    eprintln!("{note}");
                } else {
                    writeln!(stdout, "{note}")?;
                    stdout.flush().context("cannot write to stdout")?;
                }
            }
            match reply.error {
                None => Ok(()),
                Some(error) => Err(anyhow::Error::msg(error)),
            }
        }
        None => {
            let store = open_store(config)?;
            let result = ops::execute(&store, config, command, &mut stdout);
            if result.is_ok()
                && let StoreCommand::Erase { dry_run, json, .. } = command
            {
                let when = if *dry_run { "would be" } else { "are" };
                let mut note = format!(
                    "the daemon is not running: the IMAP copies {when} deleted when it next starts"
                );
                if !*dry_run {
                    // Opening the store again compacts it (see `store::compact`).
                    drop(store);
                    drop(open_store(config)?);
                    note.push_str(
                        "\nthe store was compacted: the erased records are gone from its files",
                    );
                }
                // JSON on stdout stays one document; the note goes with the logs.
                if *json {
                    eprintln!("{note}");
                } else {
                    writeln!(stdout, "{note}")?;
                }
            }
            stdout.flush().context("cannot write to stdout")?;
            result
        }
    }
}

/// `casemail backup FILE`: streamed by the running daemon, or read from the store when none runs.
fn backup_to(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let mut through_daemon = false;
    let summary = crate::ops::backup::write_file(file, |out| {
        match control::request_stream(&config.control.socket, &StoreCommand::Backup, out)? {
            Some(()) => {
                through_daemon = true;
                Ok(())
            }
            None => {
                let store = open_store(config)?;
                ops::execute(&store, config, &StoreCommand::Backup, out)
            }
        }
    })?;
    let how = if through_daemon {
        "from the running daemon"
    } else {
        "from the store"
    };
    println!(
        "backup written to {} {how}: {} ticket(s), {} record(s), {} bytes, format {}, schema {}",
        file.display(),
        summary.tickets,
        summary.records,
        summary.bytes,
        summary.header.format,
        summary.header.schema
    );
    println!("it holds personal data and the reply secret: keep it as safe as the server");
    Ok(())
}

/// `casemail restore FILE`: never through the daemon, which must be stopped.
fn verify_store(config: &Config, json: bool) -> anyhow::Result<()> {
    let state_dir = &config.helpdesk.state_dir;
    let report = crate::store::verify::verify(state_dir)
        .with_context(|| format!("cannot verify the store in {}", state_dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("store: {}", report.store.display());
        match &report.marker {
            Some(marker) => println!(
                "marker: schema {}, generation {}, last ticket #{}",
                marker.schema, marker.generation, marker.last_ticket
            ),
            None => println!("marker: none"),
        }
        println!("records read: {}", report.records);
        println!("unreadable records: {}", report.unreadable.len());
        for key in &report.unreadable {
            println!("  {}", crate::mail::sanitize::for_terminal(key));
        }
        for problem in &report.problems {
            println!("problem: {}", crate::mail::sanitize::for_terminal(problem));
        }
    }
    match report.damage() {
        Some(damage) => Err(damage.into()),
        None => Ok(()),
    }
}

fn restore_from(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| config.helpdesk.state_dir.clone());
    if state_dir == config.helpdesk.state_dir
        && std::os::unix::net::UnixStream::connect(&config.control.socket).is_ok()
    {
        anyhow::bail!(
            "casemail is running (it answers on {}); stop it before restoring",
            config.control.socket.display()
        );
    }
    let overwrite = if args.force {
        crate::ops::backup::Overwrite::Replace
    } else {
        crate::ops::backup::Overwrite::Refuse
    };
    let summary = crate::ops::backup::restore(&args.file, &state_dir, overwrite)?;
    println!(
        "restored {} into {}: {} ticket(s), {} record(s), taken {}",
        args.file.display(),
        state_dir.display(),
        summary.tickets,
        summary.records,
        summary.header.created
    );
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.helpdesk.state_dir).context("cannot open the store")
}

#[cfg(test)]
mod tests;

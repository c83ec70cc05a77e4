//! The `casemail` binary: parse the command line, set up logging, dispatch, and map the
//! outcome to an exit code that systemd can act on.

use std::process::ExitCode;

use clap::Parser as _;

use casemail::cli::{self, Cli};
use casemail::{config, store, telemetry};

/// Exit codes: 0 ok, 1 runtime failure, 2 bad usage (clap's own), 65 a missing or damaged
/// store (EX_DATAERR: the store is refused, or `verify` found damage), 78 bad configuration
/// (EX_CONFIG from sysexits.h). The unit sets `RestartPreventExitStatus=65 78`: neither fixes
/// itself by restarting.
const EXIT_RUNTIME: u8 = 1;
const EXIT_DATA: u8 = 65;
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    // Everything casemail writes (the store, the reply secret, backups, the socket) is for its
    // own user only, whichever command runs and whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args = Cli::parse();
    telemetry::init(args.log_format);
    match cli::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // An error can quote what was typed or stored (an agent id, a file's content).
            let text = casemail::mail::sanitize::text_for_terminal(&format!("{err:#}"));
            eprintln!("casemail: {text}");
            if err.chain().any(|cause| cause.is::<config::Error>()) {
                ExitCode::from(EXIT_CONFIG)
            } else if err.chain().any(|cause| {
                cause.is::<store::verify::Damaged>()
                    || matches!(
                        cause.downcast_ref::<store::Error>(),
                        Some(store::Error::Damaged { .. })
                    )
            }) {
                ExitCode::from(EXIT_DATA)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    }
}

//! The command line: parse arguments, call one library function, render the result.
//!
//! Every command takes `--json` (one JSON document on stdout); errors are one line on
//! stderr starting with `error:`, and the exit code follows the contract in
//! `docs/cli.md`: 0 ok, 1 failed, 2 bad input, 3 damage found, 4 degraded.
//! `--verbose` (or `RUST_LOG`) adds log lines on stderr, among them the full cause
//! of each storage error, which the one-line message leaves out.

mod anomaly_commands;
mod args;
mod audit_commands;
mod audit_plan;
mod commands;
mod context;
mod daemon_commands;
mod drill_commands;
mod error;
mod output;
mod password;
mod plan_commands;
mod reference;
mod repo_commands;
mod sign_commands;
mod verify_commands;

use clap::{CommandFactory, Parser};

pub use error::CliError;
use error::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use output::note;

/// The clap definition of every command and flag, for completions, the man page and
/// the reference test.
pub fn command() -> clap::Command {
    args::Cli::command()
}

/// Run the command line and return the process exit code.
pub fn main() -> i32 {
    let args = match args::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    start_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            note!("error: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(e) => {
            note!("error: {e}");
            e.exit_code()
        }
    }
}

/// Log lines on stderr with `--verbose` or `RUST_LOG`; the daemon sets up its own.
fn start_logging(args: &args::Cli) {
    use crate::daemon::logging::{LogFormat, init_with_default};
    if matches!(args.command, args::Command::Daemon(_)) {
        return;
    }
    if args.verbose {
        init_with_default(LogFormat::Human, "lifeboat=debug");
    } else if std::env::var_os("RUST_LOG").is_some() {
        init_with_default(LogFormat::Human, "warn");
    }
}

//! The command line: parse arguments, call one library function, render the result.
//!
//! Every command takes `--json` (one JSON document on stdout); errors are one line on
//! stderr starting with `error:`, and the exit code follows the contract in
//! `docs/cli.md`: 0 ok, 1 failed, 2 bad input, 3 damage found, 4 degraded.

mod args;
mod commands;
mod daemon_commands;
mod drill_commands;
mod error;
mod output;
mod password;
mod plan_commands;

use clap::Parser;

pub use error::CliError;

/// Run the command line and return the process exit code.
pub fn main() -> i32 {
    let args = match args::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

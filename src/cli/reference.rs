//! `lifeboat completions` and `lifeboat man`: shell completions and manual pages
//! generated from the clap definitions, so they cannot drift from `--help`.

use clap::CommandFactory;

use super::args::Cli;
use super::error::{EXIT_OK, Result, bad};
use super::output;

/// Print the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lifeboat", &mut script);
    output::raw(&script);
    Ok(EXIT_OK)
}

/// Print the man page of `lifeboat`, or of the command named by `path` (e.g. `repair index`).
pub fn man(path: &[String]) -> Result<i32> {
    let page = page_for(path)?;
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| bad(format!("cannot render the man page: {e}")))?;
    output::raw(&roff);
    Ok(EXIT_OK)
}

/// The command at `path`, renamed `lifeboat-a-b` as man pages of subcommands are.
fn page_for(path: &[String]) -> Result<clap::Command> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut name = String::from("lifeboat");
    for part in path {
        let sub = cmd.find_subcommand(part).cloned().ok_or_else(|| {
            let known: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            bad(format!(
                "`{name}` has no command `{part}` — it has: {}",
                known.join(", ")
            ))
        })?;
        name = format!("{name}-{}", sub.get_name());
        cmd = sub;
    }
    Ok(cmd.name(name))
}

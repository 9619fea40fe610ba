//! Starting a program the plan names: alert hooks here, playbook commands, probes and
//! endpoint reloads in `drill`.
//!
//! Lifeboat's own environment holds the repository password, cloud credentials and
//! other secrets. A child starts from an empty environment instead of inheriting it:
//! only `PATH`, `HOME`, `LANG` and `TZ` are copied, then the variables the plan names in
//! `env = [...]`, then the `LIFEBOAT_*` variables that describe the step. The program
//! is run without a shell and with no standard input; it is killed when its future is
//! dropped (a step's timeout).

use std::process::Stdio;

use tokio::process::Command;

/// Variables every child receives from Lifeboat's environment (when they are set).
pub const ALWAYS_PASSED: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// `argv` ready to run with `vars` set and `passed` copied from Lifeboat's environment.
pub fn command(argv: &[String], vars: &[(&str, &str)], passed: &[String]) -> Result<Command, String> {
    let Some((program, args)) = argv.split_first().filter(|(p, _)| !p.is_empty()) else {
        return Err("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().kill_on_drop(true).stdin(Stdio::null());
    let names = ALWAYS_PASSED.iter().copied().chain(passed.iter().map(String::as_str));
    for name in names {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn env_of(passed: &[String]) -> String {
        let argv = vec!["env".to_string()];
        let mut cmd = command(&argv, &[("LIFEBOAT_MODE", "drill")], passed).unwrap();
        let out = cmd.output().await.unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[tokio::test]
    async fn a_child_sees_only_the_allowlist_its_variables_and_what_is_named() {
        // CARGO_PKG_NAME is set for every test process, so it is a variable of ours
        // that a child must not inherit unless named.
        let seen = env_of(&[]).await;
        assert!(seen.contains("LIFEBOAT_MODE=drill\n"), "{seen}");
        assert!(seen.contains("PATH="), "{seen}");
        assert!(!seen.contains("CARGO_PKG_NAME"), "{seen}");
        let named = env_of(&["CARGO_PKG_NAME".into()]).await;
        assert!(named.contains("CARGO_PKG_NAME=lifeboat\n"), "{named}");
    }

    #[test]
    fn an_empty_program_is_refused() {
        assert!(command(&[], &[], &[]).is_err());
        assert!(command(&[String::new()], &[], &[]).is_err());
    }
}

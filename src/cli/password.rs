//! Where a password comes from: `LIFEBOAT_PASSWORD`, a file, or a command's output.
//! Never argv, never a log line.
//!
//! Plan commands take the same options, and they win over the plan's `[key]`: first
//! `--password-file`, then `--password-command`, then `LIFEBOAT_PASSWORD`, then the
//! plan's own sources in the order it lists them. An operator can thus open a plan's
//! regions with a password the plan does not know of (a break-glass copy, say).

use std::path::Path;
use std::process::Command;

use super::args::PasswordArgs;
use super::error::CliError;
use crate::plan::{KeySource, SecretSource};

fn first_line(bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let mut line = bytes[..end].to_vec();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

fn from_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map(first_line)
        .map_err(|e| CliError::BadInput(format!("cannot read password file {}: {e}", path.display())))
}

pub fn from_command(cmd: &str) -> Result<Vec<u8>, CliError> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| CliError::BadInput(format!("cannot run the password command: {e}")))?;
    if !out.status.success() {
        return Err(CliError::BadInput(format!(
            "the password command failed ({}) — check --password-command",
            out.status
        )));
    }
    Ok(first_line(out.stdout))
}

impl PasswordArgs {
    /// Resolve the repository password: file, then command, then `env_var`.
    pub fn resolve(&self, env_var: &str) -> Result<Vec<u8>, CliError> {
        self.resolve_as(env_var, "--password-file or --password-command")
    }

    /// Resolve a password whose command-line options are named `options` in errors
    /// (a second repository's, or a new one's, come from options of their own).
    pub fn resolve_as(&self, env_var: &str, options: &str) -> Result<Vec<u8>, CliError> {
        let pw = if let Some(f) = &self.password_file {
            from_file(f)?
        } else if let Some(c) = &self.password_command {
            from_command(c)?
        } else if let Some(v) = std::env::var_os(env_var) {
            v.into_encoded_bytes()
        } else {
            return Err(CliError::BadInput(format!(
                "no password given — set {env_var}, or use {options}"
            )));
        };
        if pw.is_empty() {
            return Err(CliError::BadInput(
                "the password is empty — set a non-empty password".into(),
            ));
        }
        Ok(pw)
    }
}

impl PasswordArgs {
    /// Where a plan command's password comes from: the first of `--password-file`,
    /// `--password-command` and `LIFEBOAT_PASSWORD` that is given, else `plan_key`.
    pub fn plan_key(&self, plan_key: &KeySource) -> KeySource {
        let given = if let Some(f) = &self.password_file {
            SecretSource::File(f.clone())
        } else if let Some(c) = &self.password_command {
            SecretSource::Command(vec!["sh".into(), "-c".into(), c.clone()])
        } else if std::env::var_os("LIFEBOAT_PASSWORD").is_some_and(|v| !v.is_empty()) {
            SecretSource::Env("LIFEBOAT_PASSWORD".into())
        } else {
            return plan_key.clone();
        };
        KeySource { sources: vec![given] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_password_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "secret\r\nignored\n").unwrap();
        let args = PasswordArgs {
            password_file: Some(f),
            password_command: None,
        };
        assert_eq!(args.resolve("LIFEBOAT_TEST_UNSET_VAR").unwrap(), b"secret");
    }

    #[test]
    fn command_line_options_win_over_the_plan_key() {
        let plan_key = KeySource {
            sources: vec![SecretSource::Env("LIFEBOAT_TEST_PLAN_KEY_VAR".into())],
        };
        let none = PasswordArgs::default();
        // LIFEBOAT_PASSWORD may be set around the test run; only a file must win for sure.
        if std::env::var_os("LIFEBOAT_PASSWORD").is_none() {
            assert_eq!(none.plan_key(&plan_key).sources, plan_key.sources);
        }
        let file = PasswordArgs {
            password_file: Some("/run/pw".into()),
            password_command: Some("echo x".into()),
        };
        assert_eq!(
            file.plan_key(&plan_key).sources,
            vec![SecretSource::File("/run/pw".into())]
        );
        let command = PasswordArgs {
            password_file: None,
            password_command: Some("echo x".into()),
        };
        assert_eq!(
            command.plan_key(&plan_key).sources,
            vec![SecretSource::Command(vec!["sh".into(), "-c".into(), "echo x".into()])]
        );
    }

    #[test]
    fn command_password_and_failure() {
        assert_eq!(from_command("printf 'pw\\n'").unwrap(), b"pw");
        assert!(from_command("exit 3").is_err());
    }
}

//! Resolve a plan's secret reference (env, file, command) to its value.
//! The value is never logged or put in an error message.

use std::process::Command;

use super::{ApplyError, Result};
use crate::plan::{KeySource, SecretSource};

fn first_line(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    bytes
}

fn from_source(src: &SecretSource) -> Result<Option<Vec<u8>>> {
    match src {
        SecretSource::Env(var) => Ok(std::env::var_os(var).map(|v| v.into_encoded_bytes())),
        SecretSource::File(path) => std::fs::read(path)
            .map(|b| Some(first_line(b)))
            .map_err(|e| ApplyError::Secret(format!("cannot read secret file {}: {e}", path.display()))),
        SecretSource::Command(argv) => {
            let Some((prog, args)) = argv.split_first() else {
                return Ok(None);
            };
            let out = Command::new(prog)
                .args(args)
                .output()
                .map_err(|e| ApplyError::Secret(format!("cannot run secret command {prog}: {e}")))?;
            if !out.status.success() {
                return Err(ApplyError::Secret(format!(
                    "secret command {prog} failed ({})",
                    out.status
                )));
            }
            Ok(Some(first_line(out.stdout)))
        }
    }
}

/// The first source that yields a non-empty value.
pub fn resolve(key: &KeySource) -> Result<Vec<u8>> {
    for src in &key.sources {
        if let Some(v) = from_source(src)?.filter(|v| !v.is_empty()) {
            return Ok(v);
        }
    }
    let names: Vec<String> = key
        .sources
        .iter()
        .map(|s| match s {
            SecretSource::Env(v) => format!("environment variable {v}"),
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Command(c) => format!("command {}", c.first().map_or("", |s| s.as_str())),
        })
        .collect();
    Err(ApplyError::Secret(format!(
        "no repository password: none of {} gave one — set it there",
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_through_empty_sources_to_a_command() {
        let key = KeySource {
            sources: vec![
                SecretSource::Env("LIFEBOAT_TEST_SURELY_UNSET".into()),
                SecretSource::Command(vec!["printf".into(), "s3cret\\n".into()]),
            ],
        };
        assert_eq!(resolve(&key).unwrap(), b"s3cret");
    }

    #[test]
    fn reports_where_it_looked_without_a_value() {
        let key = KeySource {
            sources: vec![SecretSource::Env("LIFEBOAT_TEST_SURELY_UNSET".into())],
        };
        let msg = resolve(&key).unwrap_err().to_string();
        assert!(msg.contains("LIFEBOAT_TEST_SURELY_UNSET"), "{msg}");
    }
}

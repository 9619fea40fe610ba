//! Resolve a plan's secret reference (env, file, command) to its value, and keep
//! resolved values out of every message.
//!
//! A value is never put into an error on purpose, but a value can still reach a
//! message by way of something else: an HTTP client error repeats the webhook URL that
//! is the secret, a program prints a token it was given. So every resolved value is
//! remembered for the life of the process, and `redact` masks those values as well as
//! URL credentials in any text before it is logged, reported or served.
//!
//! A secret command is the operator's own way of fetching a secret (a vault client,
//! say), so it runs with Lifeboat's environment, which such clients need; the programs
//! a plan runs otherwise start from a cleared environment (`child`).

use std::process::Command;
use std::sync::{LazyLock, Mutex};

use super::{ApplyError, Result};
use crate::plan::{KeySource, Plan, SecretSource, UrlSource, redact as url_redact};

/// Values shorter than this are not masked in messages: they would mask common words.
const MIN_MASKED: usize = 4;

/// Every secret value resolved so far in this process.
static RESOLVED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

fn remember(value: &[u8]) {
    let text = String::from_utf8_lossy(value).trim().to_string();
    if text.len() < MIN_MASKED {
        return;
    }
    let mut known = RESOLVED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !known.contains(&text) {
        known.push(text);
    }
}

/// `text` with URL credentials and every secret value resolved so far masked.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    let known = RESOLVED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for value in known.iter() {
        out = out.replace(value.as_str(), url_redact::MASK);
    }
    url_redact::text(&out)
}

fn first_line(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    bytes
}

/// How much of a file's or command's output is the secret.
#[derive(Clone, Copy)]
enum Take {
    FirstLine,
    /// A multi-line document such as a PEM private key.
    Whole,
}

impl Take {
    fn apply(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Take::FirstLine => first_line(bytes),
            Take::Whole => bytes,
        }
    }
}

fn from_source(src: &SecretSource, take: Take) -> Result<Option<Vec<u8>>> {
    match src {
        SecretSource::Env(var) => Ok(std::env::var_os(var).map(|v| v.into_encoded_bytes())),
        SecretSource::File(path) => std::fs::read(path)
            .map(|b| Some(take.apply(b)))
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
            Ok(Some(take.apply(out.stdout)))
        }
    }
}

/// The first source that yields a non-empty value.
pub fn resolve(key: &KeySource) -> Result<Vec<u8>> {
    resolve_as(key, Take::FirstLine, "repository password")
}

/// Like [`resolve`], for the secret called `what` (named in the error when none is set).
pub fn resolve_named(key: &KeySource, what: &str) -> Result<Vec<u8>> {
    resolve_as(key, Take::FirstLine, what)
}

/// Like [`resolve`], but a file's or command's whole output is the value (a PEM key).
pub fn resolve_document(key: &KeySource, what: &str) -> Result<Vec<u8>> {
    resolve_as(key, Take::Whole, what)
}

fn resolve_as(key: &KeySource, take: Take, what: &str) -> Result<Vec<u8>> {
    for src in &key.sources {
        if let Some(v) = from_source(src, take)?.filter(|v| !v.is_empty()) {
            remember(&v);
            return Ok(v);
        }
    }
    Err(ApplyError::Secret(format!(
        "no {what}: none of {} gave one — set it there",
        describe(key)
    )))
}

/// The plan's repository password, resolved on a blocking thread: a `command` source
/// runs a child process (and a `file` may sit on a slow mount), which must not stall
/// an async worker. Opening a `Session` asks here, as does a drill's preflight.
pub async fn plan_password(plan: &Plan) -> Result<Vec<u8>> {
    let key = plan.key.clone();
    tokio::task::spawn_blocking(move || resolve(&key))
        .await
        .map_err(|e| ApplyError::Secret(format!("the password lookup did not finish: {e}")))?
}

/// Where a secret comes from, for messages: `environment variable HOOK_URL`.
pub fn describe(key: &KeySource) -> String {
    let names: Vec<String> = key
        .sources
        .iter()
        .map(|s| match s {
            SecretSource::Env(v) => format!("environment variable {v}"),
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Command(c) => format!("command {}", c.first().map_or("", |s| s.as_str())),
        })
        .collect();
    names.join(", ")
}

/// A URL the plan wrote or references, and how messages may name it: the written URL
/// with its credentials masked, or only where a secret URL comes from.
pub fn url(source: &UrlSource) -> Result<(String, String)> {
    match source {
        UrlSource::Plain(url) => Ok((url.clone(), url_redact::text(url))),
        UrlSource::Secret(key) => {
            let value = resolve(key)?;
            let url = String::from_utf8(value)
                .map_err(|_| ApplyError::Secret(format!("the URL from {} is not UTF-8", describe(key))))?;
            Ok((url, format!("the URL from {}", describe(key))))
        }
    }
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
    fn resolved_values_and_url_credentials_are_masked() {
        let key = KeySource {
            sources: vec![SecretSource::Command(vec!["printf".into(), "hunter2-value".into()])],
        };
        resolve(&key).unwrap();
        let shown = redact("said hunter2-value to https://u:p@h/x?token=t");
        assert_eq!(shown, "said *** to https://***@h/x?token=***");
    }

    #[test]
    fn a_secret_url_is_named_by_its_source() {
        let source = UrlSource::Secret(KeySource {
            sources: vec![SecretSource::Command(vec![
                "printf".into(),
                "https://h/T0/secret-path".into(),
            ])],
        });
        let (url, shown) = url(&source).unwrap();
        assert_eq!(url, "https://h/T0/secret-path");
        assert_eq!(shown, "the URL from command printf");
        assert!(!redact("POST https://h/T0/secret-path failed").contains("secret-path"));
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

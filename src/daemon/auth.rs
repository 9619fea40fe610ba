//! Who is calling: static bearer tokens from a file, each naming a subject and its
//! grants, stored as SHA-256 hashes.
//!
//! Tokens live in a file rather than in flags, so they stay out of process listings,
//! and the file holds only hashes, so reading it gives no one a token. A plain hash
//! (not a slow password hash) suffices because a token is random and long, never
//! chosen by a person; it is also what lets every request be checked in
//! microseconds. The presented token's hash is compared with every entry in constant
//! time. Refusals say only "unauthorized" or "forbidden": which part was wrong is
//! logged for the operator, never told to the caller.

use std::path::Path;

use axum::http::HeaderMap;

use super::roles::{Caller, Grant, parse_grants};

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "token file {path} line {line}: {why} — write `ROLES SUBJECT sha256:HASH`, the line `lifeboat token hash` prints"
    )]
    Line { path: String, line: usize, why: String },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that matches nobody: 401.
    Unauthenticated,
    /// A valid token whose grants do not cover the route: 403.
    Forbidden,
}

/// Minimum token length, so a guessable token is refused.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest bearer token read from a request; anything longer is refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

const HASH_PREFIX: &str = "sha256:";

/// `sha256:HEX` of a token, as the token file stores it.
pub fn hash_token(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    format!("{HASH_PREFIX}{}", hex::encode(digest.as_ref()))
}

/// The line `lifeboat token hash` prints for `token`.
pub fn token_line(grants: &str, subject: &str, token: &str) -> Result<String, String> {
    let token = token.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!("the token is shorter than {MIN_TOKEN_LEN} characters"));
    }
    let parsed = parse_grants([grants])?;
    if parsed.is_empty() {
        return Err("no role given".into());
    }
    check_subject(subject)?;
    let roles: Vec<String> = parsed.iter().map(Grant::to_string).collect();
    Ok(format!("{} {subject} {}", roles.join(","), hash_token(token)))
}

fn check_subject(subject: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    if subject.is_empty() || subject.len() > 64 || !subject.chars().all(ok) {
        return Err(format!(
            "subject {subject:?} must be 1 to 64 letters, digits or - _ . @"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Entry {
    caller: Caller,
    /// SHA-256 of the token.
    hash: [u8; 32],
}

#[derive(Debug, Default, Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let (tokens, plain) = Self::parse(&text).map_err(|(line, why)| TokenFileError::Line {
            path: shown.clone(),
            line,
            why,
        })?;
        for line in plain {
            tracing::warn!(file = %shown, line, "plain-text token (deprecated): replace the line with the one `lifeboat token hash` prints for it");
        }
        Ok(tokens)
    }

    /// The entries, and the lines that hold a plain-text token.
    fn parse(text: &str) -> Result<(Self, Vec<usize>), (usize, String)> {
        let mut entries = Vec::new();
        let mut plain = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let entry = match words[..] {
                [roles, subject, hash] => hashed_entry(roles, subject, hash),
                [roles, token] => {
                    plain.push(i + 1);
                    plain_entry(roles, token, i + 1)
                }
                _ => Err("expected `ROLES SUBJECT sha256:HASH`".into()),
            };
            entries.push(entry.map_err(|why| (i + 1, why))?);
        }
        Ok((Self { entries }, plain))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller whose token this is, if any. Every entry is compared, so timing
    /// does not reveal which one matched.
    pub fn identify(&self, token: &str) -> Option<Caller> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(&entry.hash, digest.as_ref()) && found.is_none() {
                found = Some(entry.caller.clone());
            }
        }
        found
    }
}

fn hashed_entry(roles: &str, subject: &str, hash: &str) -> Result<Entry, String> {
    let hex_part = hash
        .strip_prefix(HASH_PREFIX)
        .ok_or_else(|| format!("the third word must be {HASH_PREFIX}HEX"))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| "the hash must be 64 hex digits".to_string())?;
    check_subject(subject)?;
    Ok(Entry {
        caller: caller(roles, subject)?,
        hash: bytes,
    })
}

/// A deprecated `ROLES TOKEN` line: its subject is named after its line.
fn plain_entry(roles: &str, token: &str, line: usize) -> Result<Entry, String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!("token shorter than {MIN_TOKEN_LEN} characters"));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    Ok(Entry {
        caller: caller(roles, &format!("token-line-{line}"))?,
        hash,
    })
}

fn caller(roles: &str, subject: &str) -> Result<Caller, String> {
    let grants = parse_grants([roles])?;
    if grants.is_empty() {
        return Err("no role given".into());
    }
    Ok(Caller {
        subject: subject.to_string(),
        grants,
    })
}

/// The request's bearer token: `None` when absent, too long or not text.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?;
    if value.len() > MAX_TOKEN_LEN + 7 {
        return None;
    }
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::roles::Level;

    const ALICE: &str = "alice-token-0123456789";

    fn file() -> String {
        format!(
            "# team\n{}\nviewer oooooooooooooooooooo\n",
            token_line("operator:ml,viewer", "alice", ALICE).unwrap()
        )
    }

    #[test]
    fn hashed_tokens_name_their_subject_and_grants() {
        let (tokens, plain) = Tokens::parse(&file()).unwrap();
        assert_eq!(plain, vec![3], "the plain line is reported");
        let alice = tokens.identify(ALICE).unwrap();
        assert_eq!(alice.subject, "alice");
        assert!(alice.may(Level::Operator, Some("ml")) && !alice.may(Level::Operator, Some("web")));
        assert_eq!(tokens.identify("oooooooooooooooooooo").unwrap().subject, "token-line-3");
        assert!(tokens.identify("wrong-wrong-wrong-x").is_none());
        assert!(!file().contains(ALICE), "the file holds no token");
    }

    #[test]
    fn bad_token_files_name_the_line() {
        let (line, why) = Tokens::parse("viewer bob sha256:abcd").unwrap_err();
        assert_eq!(line, 1);
        assert!(why.contains("64 hex"), "{why}");
        assert!(Tokens::parse("\nviewer short").unwrap_err().1.contains("shorter"));
        assert!(
            Tokens::parse("root xxxxxxxxxxxxxxxxxxxx")
                .unwrap_err()
                .1
                .contains("unknown role")
        );
        let h = hash_token(ALICE);
        assert!(
            Tokens::parse(&format!("viewer a/b {h}"))
                .unwrap_err()
                .1
                .contains("subject")
        );
        assert!(token_line("viewer", "bob", "short").is_err());
    }

    #[test]
    fn bearer_tokens_are_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", format!("Bearer {ALICE}").parse().unwrap());
        assert_eq!(bearer(&h), Some(ALICE));
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        h.insert("authorization", format!("Bearer {long}").parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}

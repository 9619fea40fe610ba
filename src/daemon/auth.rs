//! Who may call the API: bearer tokens from a file, two roles, and a rate limit on
//! calls that start work.
//!
//! Tokens live in a file (`role token` per line) rather than in flags, so they stay
//! out of process listings. Refusals say only "unauthorized" or "forbidden": which
//! part was wrong is logged for the operator, never told to the caller.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads status, jobs.
    Viewer,
    /// Also triggers backups.
    Operator,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("token file {path} line {line}: {why} — write `viewer TOKEN` or `operator TOKEN`")]
    Line { path: String, line: usize, why: String },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that matches nobody: 401.
    Unauthenticated,
    /// A valid token whose role is too low: 403.
    Forbidden,
}

/// Minimum token length, so a guessable token is refused at start.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Default)]
pub struct Tokens {
    entries: Vec<(Role, String)>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, why)| TokenFileError::Line { path: shown, line, why })
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(role), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err((i + 1, "expected two words".into()));
            };
            let role = match role {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                other => return Err((i + 1, format!("unknown role {other:?}"))),
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err((i + 1, format!("token shorter than {MIN_TOKEN_LEN} characters")));
            }
            entries.push((role, token.to_string()));
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role of the request's bearer token, if it is at least `needed`.
    pub fn check(&self, headers: &HeaderMap, needed: Role) -> Result<Role, Denied> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        // Compare with every entry, so timing does not reveal which one matched.
        let mut found = None;
        for (role, token) in &self.entries {
            if constant_time_eq(token.as_bytes(), presented.as_bytes()) {
                found = found.max(Some(*role));
            }
        }
        match found {
            None => Err(Denied::Unauthenticated),
            Some(role) if role < needed => Err(Denied::Forbidden),
            Some(role) => Ok(role),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token bucket: `burst` calls at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct RateLimit {
    burst: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            per_second: f64::from(per_minute) / 60.0,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Take one call's worth; false when the bucket is empty.
    pub fn allow(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, last) = *state;
        let now = Instant::now();
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
        if refilled < 1.0 {
            *state = (refilled, now);
            return false;
        }
        *state = (refilled - 1.0, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn roles_are_checked() {
        let tokens = Tokens::parse("# team\nviewer vvvvvvvvvvvvvvvvvvvv\noperator oooooooooooooooooooo\n").unwrap();
        assert_eq!(
            tokens.check(&HeaderMap::new(), Role::Viewer),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            tokens.check(&headers("wrong-wrong-wrong-x"), Role::Viewer),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            tokens.check(&headers("vvvvvvvvvvvvvvvvvvvv"), Role::Viewer),
            Ok(Role::Viewer)
        );
        assert_eq!(
            tokens.check(&headers("vvvvvvvvvvvvvvvvvvvv"), Role::Operator),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            tokens.check(&headers("oooooooooooooooooooo"), Role::Operator),
            Ok(Role::Operator)
        );
    }

    #[test]
    fn bad_token_files_name_the_line() {
        assert_eq!(Tokens::parse("admin xxxxxxxxxxxxxxxxxxxx").unwrap_err().0, 1);
        assert!(Tokens::parse("\nviewer short").unwrap_err().1.contains("shorter"));
    }

    #[test]
    fn the_bucket_empties_and_refuses() {
        let limit = RateLimit::new(1, 2);
        assert!(limit.allow());
        assert!(limit.allow());
        assert!(!limit.allow());
    }
}

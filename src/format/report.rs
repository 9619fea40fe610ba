//! Stored reports: drill and failover results kept under `reports/<name>` in every region.
//!
//! A report's plaintext is the report file's bytes as written (JSON or text), sealed and
//! compressed like a snapshot. Its name is chosen by the writer, so it is checked here
//! before it becomes part of an object key: letters, digits, `-`, `_` and `.`, not
//! starting with `.`, at most [`MAX_NAME_LEN`] bytes.

use super::blob::MAX_BLOB;

/// Longest report name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest report plaintext: one sealed value.
pub const MAX_REPORT_LEN: usize = MAX_BLOB;

/// A report name that is safe to use as the last part of an object key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReportName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("report name {0:?} must be letters, digits, `-`, `_` or `.` (not first), at most 200 characters")]
    Name(String),
    #[error("report is {0} bytes, more than the {MAX_REPORT_LEN} a report holds")]
    TooLong(usize),
}

impl ReportName {
    pub fn parse(name: &str) -> Result<Self, ReportError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.');
        match ok {
            true => Ok(Self(name.to_string())),
            false => Err(ReportError::Name(name.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReportName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check a report's plaintext (to store, or as opened) against the bound.
pub fn check_len(report: &[u8]) -> Result<(), ReportError> {
    match report.len() > MAX_REPORT_LEN {
        true => Err(ReportError::TooLong(report.len())),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_keep_their_spelling() {
        for name in ["drill-2026-12-01T10.json", "a", "failover_db.txt", &"x".repeat(200)] {
            assert_eq!(ReportName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_could_escape_or_hide_are_refused() {
        let long = "x".repeat(201);
        for name in ["", ".hidden", "../x", "a/b", "a b", "é", "a\0b", long.as_str()] {
            assert_eq!(
                ReportName::parse(name),
                Err(ReportError::Name(name.to_string())),
                "{name:?}"
            );
        }
    }

    #[test]
    fn reports_beyond_the_bound_are_refused() {
        assert!(check_len(&[0u8; 16]).is_ok());
        let big = vec![0u8; MAX_REPORT_LEN + 1];
        assert_eq!(check_len(&big), Err(ReportError::TooLong(MAX_REPORT_LEN + 1)));
    }
}

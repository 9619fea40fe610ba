//! Diagnostics: one problem in a plan file, located at `file:line:col`.
//!
//! Validation never stops at the first problem; it collects `Diagnostic`s into a
//! `Diagnostics` list while walking the file, and only byte spans are known at that point.
//! `LineIndex` turns a byte offset into the line and column an editor shows, so every
//! message can be clicked straight to its place.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a problem is: an error rejects the plan, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem, rendered as `file:line:col: error: what is wrong — how to fix it`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    pub message: String,
    pub fix: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.severity,
            self.message
        )?;
        if !self.fix.is_empty() {
            write!(f, " — {}", self.fix)?;
        }
        Ok(())
    }
}

/// Maps byte offsets in one source text to 1-based line and column.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    source: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(source: &'a str) -> Self {
        let breaks = source.match_indices('\n').map(|(i, _)| i + 1);
        let line_starts = std::iter::once(0).chain(breaks).collect();
        Self { source, line_starts }
    }

    /// The line and column of `offset`; offsets past the end point at the end.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let col = self
            .source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line.max(1), col + 1)
    }
}

/// The problems found in one file so far, each located through a `LineIndex`.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: &'a Path,
    index: LineIndex<'a>,
    found: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        Self {
            file,
            index: LineIndex::new(source),
            found: Vec::new(),
        }
    }

    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Error, span, message.into(), fix.into());
    }

    pub fn warning(&mut self, span: &Range<usize>, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Warning, span, message.into(), fix.into());
    }

    /// Records one problem. Messages quote what the plan says, and a plan's URLs may
    /// carry credentials, so the message is redacted here, once for every section (fixes
    /// show the plan's own examples, which must stay readable).
    fn push(&mut self, severity: Severity, span: &Range<usize>, message: String, fix: String) {
        let (line, col) = self.index.locate(span.start);
        self.found.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line,
            col,
            message: super::redact::text(&message),
            fix,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.found.iter().any(Diagnostic::is_error)
    }

    /// All problems in file order (line, then column), errors before warnings at one spot.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| (d.line, d.col, d.severity));
        self.found.dedup();
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets_on_first_and_later_lines() {
        let index = LineIndex::new("ab\ncdé\nf");
        assert_eq!(index.locate(0), (1, 1));
        assert_eq!(index.locate(1), (1, 2));
        assert_eq!(index.locate(3), (2, 1));
        assert_eq!(index.locate(8), (3, 1));
        assert_eq!(index.locate(999), (3, 2));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let index = LineIndex::new("é = x");
        assert_eq!(index.locate(3), (1, 3));
    }

    #[test]
    fn renders_file_line_col_severity_message_and_fix() {
        let mut found = Diagnostics::new(Path::new("p.toml"), "a = 1\nb = 2\n");
        found.warning(&(6..7), "b is odd", "remove b");
        found.error(&(0..1), "a is odd", "");
        let rendered: Vec<String> = found.into_sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            rendered,
            [
                "p.toml:1:1: error: a is odd",
                "p.toml:2:1: warning: b is odd — remove b"
            ]
        );
    }
}

//! Plans: TOML files that say what must be protected, where, how often and for how long.
//!
//! This module's one job is to turn a plan file into a validated `Plan` or a complete
//! list of `Diagnostic`s, each pointing at `file:line:col` with a fix. It follows
//! "validate, then convert": the file is parsed into spanned TOML values, every section
//! is read with every problem collected (`reader`, `sections`), and only a plan without
//! errors becomes the typed model (`model`) that execution code uses. It is pure and
//! synchronous; the only I/O is reading the file and checking whether paths exist.
//! `schedule`, `retention` and `units` are the pure building blocks execution also uses.

mod diagnostic;
pub mod due;
pub mod json_path;
mod model;
mod reader;
pub mod redact;
pub mod retention;
pub mod schedule;
mod sections;
pub mod units;

use std::path::{Path, PathBuf};

use toml::de::DeTable;

pub use diagnostic::{Diagnostic, LineIndex, Severity};
pub use due::{Due, Observed, due};
pub use model::{
    Alerts, Baseline, Dataset, DatasetKind, DnsRecordType, Endpoint, EndpointName, HttpProbe, HttpVerify, KeySource,
    Plan, Playbook, PlaybookName, Probe, Provider, Region, RegionCredentials, RepoAddress, SecretSource, Signing, Step,
    StepAction, TsigAlgorithm, UrlSource, VerifyName, VerifyPolicy,
};
pub use retention::{Decision, Retention, SnapInfo};
pub use schedule::{Schedule, ScheduleError};

use diagnostic::Diagnostics;

/// Reads and validates one plan file. A plan is returned only if there are no errors;
/// warnings may accompany it. Diagnostics name `path` exactly as given.
pub fn validate(path: &Path) -> (Option<Plan>, Vec<Diagnostic>) {
    match std::fs::read_to_string(path) {
        Ok(source) => validate_source(path, &source),
        Err(err) => (None, vec![unreadable(path, &err.to_string())]),
    }
}

/// Validates plan text as if read from `path` (relative paths resolve against its folder).
pub fn validate_source(path: &Path, source: &str) -> (Option<Plan>, Vec<Diagnostic>) {
    let mut diags = Diagnostics::new(path, source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    let plan = if syntax_errors.is_empty() {
        sections::build(path, root.get_ref(), &mut diags)
    } else {
        for err in &syntax_errors {
            let span = err.span().unwrap_or_default();
            let message = format!("invalid TOML: {}", err.message().trim_end());
            diags.error(
                &span,
                message,
                "fix the syntax here (strings need quotes, each key needs `= value`)",
            );
        }
        None
    };
    (plan, diags.into_sorted())
}

/// Validates every `*.toml` file directly in `dir`, in file-name order.
pub fn validate_dir(dir: &Path) -> Vec<(PathBuf, Option<Plan>, Vec<Diagnostic>)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            return vec![(dir.to_path_buf(), None, vec![unreadable(dir, &err.to_string())])];
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let (plan, diags) = validate(&file);
            (file, plan, diags)
        })
        .collect()
}

/// Validates a file, or every `*.toml` in a directory; all diagnostics in one list.
pub fn validate_path(path: &Path) -> (Vec<Plan>, Vec<Diagnostic>) {
    if path.is_dir() {
        let (mut plans, mut diags) = (Vec::new(), Vec::new());
        for (_, plan, found) in validate_dir(path) {
            plans.extend(plan);
            diags.extend(found);
        }
        (plans, diags)
    } else {
        let (plan, diags) = validate(path);
        (plan.into_iter().collect(), diags)
    }
}

fn unreadable(path: &Path, why: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 1,
        col: 1,
        message: format!("cannot read the plan: {why}"),
        fix: "check the path and that the file is readable".to_string(),
    }
}

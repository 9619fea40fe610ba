//! `lifeboat audit log|verify|export`, and the audit findings `check` and `snapshots`
//! add to their own output.
//!
//! The CLI remembers the newest whole checkpoint it has seen of each repository in
//! the user's cache directory (`$XDG_CACHE_HOME/lifeboat`, else `~/.cache/lifeboat`),
//! which is what lets it notice a trail rolled back to an older copy.

use std::io::Write;
use std::path::PathBuf;

use super::args::{AuditAction, AuditSource, RepoArg};
use super::context::Ctx;
use super::error::{CliError, EXIT_DAMAGE, EXIT_OK, Result};
use super::output::{self, note, say};
use crate::engine::audit;
use crate::engine::audit::review::{Problem, Trail};
use crate::format::audit::Event;
use crate::repo::{Repository, SkippedKind};

/// Where this user's client remembers audit checkpoints.
pub(super) fn memory_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("lifeboat"))
}

/// One exported line: the event, the repository it is from and, by plan, its region.
#[derive(serde::Serialize)]
pub(super) struct ExportLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    pub repository: &'a str,
    #[serde(flatten)]
    pub event: &'a Event,
}

impl Ctx {
    pub(super) async fn audit(&self, action: AuditAction) -> Result<i32> {
        match action {
            AuditAction::Log { source } => match &source.plan {
                Some(plan) => self.audit_plan_log(plan, &source.region).await,
                None => self.audit_log(&repo_of(source)).await,
            },
            AuditAction::Verify { source } => match &source.plan {
                Some(plan) => self.audit_plan_verify(plan, &source.region).await,
                None => self.audit_verify(&repo_of(source)).await,
            },
            AuditAction::Export { source, out } => match &source.plan {
                Some(plan) => self.audit_plan_export(plan, &source.region, out).await,
                None => self.audit_export(&repo_of(source), out).await,
            },
        }
    }

    /// Read and judge `repo`'s trail, remembering its checkpoint.
    pub(super) async fn trail(&self, repo: &Repository) -> Result<Trail> {
        let (trail, warning) = audit::inspect(repo, memory_dir().as_deref()).await?;
        if let Some(w) = warning {
            note!("warning: {w}");
        }
        Ok(trail)
    }

    /// The trail's problems for a command that reports them beside its own (`check`,
    /// `snapshots`): printed as `damage:` lines unless the output is JSON.
    pub(super) async fn audit_findings(&self, repo: &Repository) -> Result<Vec<Problem>> {
        let problems = self.trail(repo).await?.problems;
        if !self.json {
            for p in &problems {
                note!("damage: {p}");
            }
        }
        Ok(problems)
    }

    async fn audit_log(&self, repo: &RepoArg) -> Result<i32> {
        let r = self.open(repo).await?;
        let trail = self.trail(&r).await?;
        if self.json {
            output::json(&trail);
        } else {
            for e in &trail.events {
                say!("{}", event_line(e));
            }
            say!("{} event(s) in {}", trail.events.len(), r.address());
            for p in &trail.problems {
                note!("damage: {p}");
            }
        }
        Ok(damage_code(&trail.problems))
    }

    async fn audit_verify(&self, repo: &RepoArg) -> Result<i32> {
        let r = self.open(repo).await?;
        let trail = self.trail(&r).await?;
        if self.json {
            output::json(&serde_json::json!({
                "repository": r.address(),
                "events": trail.checkpoint.size,
                "head": trail.checkpoint.head,
                "whole": trail.problems.is_empty(),
                "problems": trail.problems,
            }));
        } else {
            for p in &trail.problems {
                say!("damage: {p}");
            }
        }
        match trail.problems.first() {
            None => {
                if !self.json {
                    say!(
                        "audit trail of {} is whole: {} event(s), head {}; the snapshots agree with it",
                        r.address(),
                        trail.checkpoint.size,
                        trail.checkpoint.head.short()
                    );
                }
                Ok(EXIT_OK)
            }
            Some(first) => {
                note!("error: {first} — see docs/security.md, \"Audit trail\", for what to do");
                Ok(EXIT_DAMAGE)
            }
        }
    }

    async fn audit_export(&self, repo: &RepoArg, out: Option<PathBuf>) -> Result<i32> {
        let r = self.open(repo).await?;
        let trail = self.trail(&r).await?;
        let lines = trail.events.iter().map(|event| ExportLine {
            region: None,
            repository: r.address(),
            event,
        });
        write_lines(lines, out.as_deref())?;
        for p in &trail.problems {
            note!("damage: {p}");
        }
        Ok(damage_code(&trail.problems))
    }
}

/// A command's JSON document with the audit trail's findings added as `audit`.
pub(super) fn with_audit(report: &impl serde::Serialize, audit: &impl serde::Serialize) -> serde_json::Value {
    let mut doc = serde_json::to_value(report).unwrap_or_default();
    if let Some(map) = doc.as_object_mut() {
        map.insert("audit".into(), serde_json::to_value(audit).unwrap_or_default());
    }
    doc
}

/// Exit 3 with the first audit problem named, when there is one. When the command
/// also passed over damaged snapshots, the error line that ends it names those
/// instead (`Ctx::report_skipped_snapshots`), so there is one error line.
pub(super) fn audit_code(trail: &[Problem], repo: &Repository) -> i32 {
    let skipped = repo.skipped().iter().any(|s| s.kind == SkippedKind::Snapshot);
    match trail.first() {
        None => EXIT_OK,
        Some(_) if skipped => EXIT_DAMAGE,
        Some(first) => {
            note!(
                "error: {first} — run `lifeboat audit verify --repo {}` for the whole trail",
                repo.address()
            );
            EXIT_DAMAGE
        }
    }
}

/// The repository an `audit` command names (clap requires --repo or --plan).
fn repo_of(source: AuditSource) -> RepoArg {
    RepoArg {
        repo: source.repo.unwrap_or_default(),
    }
}

fn damage_code(problems: &[Problem]) -> i32 {
    if problems.is_empty() { EXIT_OK } else { EXIT_DAMAGE }
}

pub(super) fn event_line(e: &Event) -> String {
    let r = &e.record;
    let mut what: Vec<String> = r.written.iter().map(|id| format!("+{}", id.short())).collect();
    what.extend(r.removed.iter().map(|id| format!("-{}", id.short())));
    what.extend(r.objects.iter().cloned());
    if !r.detail.is_empty() {
        what.push(r.detail.clone());
    }
    let action = serde_json::to_value(r.action).unwrap_or_default();
    let outcome = serde_json::to_value(r.outcome).unwrap_or_default();
    format!(
        "{:>6}  {}  {:<24} {:<10} {:<8} {}",
        e.seq,
        r.time.format("%Y-%m-%d %H:%M:%S"),
        r.actor,
        action.as_str().unwrap_or("?"),
        outcome.as_str().unwrap_or("?"),
        what.join(" ")
    )
}

/// Write `lines` as JSON lines to `out`, or to stdout.
pub(super) fn write_lines<'a>(
    lines: impl Iterator<Item = ExportLine<'a>>,
    out: Option<&std::path::Path>,
) -> Result<()> {
    let mut text = Vec::new();
    for line in lines {
        text.extend(serde_json::to_vec(&line).unwrap_or_default());
        text.push(b'\n');
    }
    match out {
        Some(path) => write_file(path, &text),
        None => {
            output::raw(&text);
            Ok(())
        }
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let fail =
        |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e} — choose another --out", path.display()));
    let mut f = std::fs::File::create(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)
}

//! Commands that work from a plan: validate, plan, apply, restore by plan, verify
//! and sync.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use super::audit_commands::{memory_dir, with_audit};
use super::audit_plan::print_copies;
use super::context::Ctx;
use super::error::{EXIT_BAD_INPUT, EXIT_DAMAGE, EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, Result, bad};
use super::output::{self, Bar, bytes, duration_ms, note, say};
use crate::apply::alerts::verify_and_alert;
use crate::apply::audit::review_regions;
use crate::apply::recover::{Wanted, restore_by_plan};
use crate::apply::replicate::sync_plan;
use crate::apply::run::{ApplyOptions, RegionRun, apply, check_options};
use crate::apply::session::Regions;
use crate::apply::status;
use crate::apply::verify::VerifyRequest;
use crate::engine::Progress;
use crate::engine::restore::RestoreOptions;
use crate::format::names::{DatasetName, RegionName};
use crate::plan;

impl Ctx {
    pub fn validate(&self, path: &Path) -> Result<i32> {
        let (plans, diags) = plan::validate_path(path);
        let errors = diags.iter().filter(|d| d.is_error()).count();
        if self.json {
            let list: Vec<_> = diags
                .iter()
                .map(|d| serde_json::json!({"file": d.file, "line": d.line, "col": d.col, "error": d.is_error(), "message": d.message, "fix": d.fix}))
                .collect();
            output::json(&serde_json::json!({"valid": errors == 0, "plans": plans.len(), "diagnostics": list}));
        } else {
            for d in &diags {
                say!("{d}");
            }
            let warnings = diags.len() - errors;
            say!(
                "{} plan(s) valid, {errors} error(s), {warnings} warning(s)",
                plans.len()
            );
        }
        Ok(if errors > 0 { EXIT_BAD_INPUT } else { EXIT_OK })
    }

    pub async fn plan(&self, path: &Path) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let st = status::status(&session, Utc::now(), status::Depth::Bytes).await;
        let trails = review_regions(&session, memory_dir().as_deref(), &st).await;
        if self.json {
            output::json(&with_audit(&st, &trails));
        } else {
            print_status(&st);
        }
        let mut problems = trails.iter().flat_map(|t| &t.problems);
        if let Some(first) = problems.next() {
            for p in std::iter::once(first).chain(problems).filter(|_| !self.json) {
                note!("damage: {p}");
            }
            note!("error: {first} — run `lifeboat audit verify --repo URL` on that region for its whole trail");
            return Ok(EXIT_DAMAGE);
        }
        let unreachable = st.datasets.iter().flat_map(|d| &d.regions).any(|r| !r.reachable);
        Ok(if st.violated || unreachable {
            EXIT_DEGRADED
        } else {
            EXIT_OK
        })
    }

    pub async fn apply(&self, path: &Path, dataset: Option<&str>, force: bool) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let opts = ApplyOptions {
            dataset: dataset.map(DatasetName::new).transpose().map_err(bad)?,
            force,
            now: Utc::now(),
        };
        check_options(&plan, &opts)?;
        let session = self.session(&plan, Regions::Create).await?;
        let progress = Arc::new(Progress::default());
        let bar = Bar::start("apply", progress.clone(), self.progress, self.json);
        let report = apply(&session, &opts, progress).await;
        bar.finish();
        let report = report?;
        if self.json {
            output::json(&report);
        } else {
            for ds in &report.datasets {
                for r in &ds.regions {
                    let what = match (&r.error, r.skipped, &r.snapshot, &r.summary) {
                        (Some(e), _, _, _) => format!("FAILED: {e}"),
                        (None, true, _, _) => "not due".to_string(),
                        (None, false, Some(id), _) if r.unchanged => {
                            format!("unchanged since snapshot {}, forgot {}", id.short(), r.forgotten)
                        }
                        (None, false, Some(id), Some(s)) => format!(
                            "snapshot {} ({} new, {} changed, {} unchanged files; added {}; {}), forgot {}",
                            id.short(),
                            s.files_new,
                            s.files_changed,
                            s.files_unchanged,
                            bytes(r.bytes_added),
                            duration_ms(s.duration_ms),
                            r.forgotten
                        ),
                        _ => format!("caught up {} snapshot(s), forgot {}", r.synced, r.forgotten),
                    };
                    say!("{:<20} {:<12} {what}", ds.dataset, r.region);
                    for line in pinned_lock_lines(r) {
                        say!("{:<20} {:<12} {line}", ds.dataset, r.region);
                    }
                }
                let summary = ds.regions.iter().find_map(|r| r.summary.as_ref());
                for w in summary.iter().flat_map(|s| &s.warnings) {
                    note!("warning: {}: {w}", ds.dataset);
                }
                if let Some(v) = &ds.anomaly {
                    say!(
                        "{:<20} SUSPECT: anomaly score {:.1} ({}) — `lifeboat anomalies --plan {}` lists it",
                        ds.dataset,
                        v.score,
                        v.signal,
                        path.display()
                    );
                }
            }
        }
        for w in report.trail_copy_warnings.iter().filter(|_| !self.json) {
            note!("warning: {w}");
        }
        for problem in report.datasets.iter().flat_map(|d| &d.undelivered) {
            note!("warning: {problem}");
        }
        if report.failed {
            note!("error: a due dataset could not be backed up to any region — see the lines above");
            Ok(EXIT_FAILED)
        } else if report.degraded {
            note!(
                "error: some regions missed their backup (degraded) — see the lines above; `lifeboat plan` shows the lag"
            );
            Ok(EXIT_DEGRADED)
        } else {
            Ok(EXIT_OK)
        }
    }

    pub async fn restore_by_plan(
        &self,
        path: &Path,
        dataset: &str,
        region: Option<&str>,
        spec: Option<&str>,
        opts: RestoreOptions,
        allow_unsigned: bool,
    ) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let dataset = DatasetName::new(dataset).map_err(bad)?;
        let region = region.map(RegionName::new).transpose().map_err(bad)?;
        let wanted = Wanted {
            dataset: &dataset,
            region: region.as_ref(),
            snapshot: spec,
            allow_unsigned,
        };
        let progress = Arc::new(Progress::default());
        let bar = Bar::start("restore", progress.clone(), self.progress, self.json);
        let out = restore_by_plan(&session, wanted, &opts, progress).await;
        bar.finish();
        let out = out?;
        if self.json {
            output::json(&out);
        } else {
            for (r, why) in &out.skipped {
                note!("note: region {r} not used: {why}");
            }
            if output::restore_deletions(&out.outcome, &opts.target) {
                return Ok(EXIT_OK);
            }
            say!(
                "restored {dataset} snapshot {} from region {} to {}: {} files, {} in {}",
                &out.outcome.snapshot[..8],
                out.region,
                opts.target.display(),
                out.outcome.files,
                bytes(out.outcome.bytes),
                duration_ms(out.outcome.duration_ms)
            );
            if let Some(sig) = &out.signature {
                say!("signature: {}", sig.describe());
            }
        }
        Ok(EXIT_OK)
    }

    pub async fn verify(
        &self,
        path: &Path,
        dataset: Option<&str>,
        region: Option<&str>,
        sample: Option<f64>,
        allow_unsigned: bool,
    ) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let req = VerifyRequest {
            dataset: dataset.map(DatasetName::new).transpose().map_err(bad)?,
            region: region.map(RegionName::new).transpose().map_err(bad)?,
            sample_fraction: sample,
            now: None,
            policy: None,
            allow_unsigned,
        };
        let name = path
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        let (rows, undelivered) = verify_and_alert(&session, &name, &req).await;
        for problem in undelivered {
            note!("warning: {problem}");
        }
        if self.json {
            output::json(&rows);
        } else {
            print_verify(&rows);
        }
        if rows.iter().any(|r| r.refused) {
            note!("error: a signed dataset's snapshot was refused: its signature does not hold — see the report above");
            Ok(EXIT_DAMAGE)
        } else if rows.iter().any(|r| r.report.as_ref().is_some_and(|rep| !rep.passed)) {
            note!("error: verification found damaged files — see the report above");
            Ok(EXIT_DAMAGE)
        } else if rows.is_empty() || rows.iter().any(|r| r.error.is_some()) {
            note!("error: some datasets could not be verified — see the report above");
            Ok(EXIT_DEGRADED)
        } else {
            Ok(EXIT_OK)
        }
    }

    pub async fn sync(&self, path: &Path, dataset: Option<&str>) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let session = self.session(&plan, Regions::Create).await?;
        let dataset = dataset.map(DatasetName::new).transpose().map_err(bad)?;
        let report = sync_plan(&session, dataset.as_ref()).await;
        if self.json {
            output::json(&report);
        } else {
            for r in &report.regions {
                let copied: u64 = r.copied.iter().map(|c| c.1.snapshots as u64).sum();
                let bytes_in: u64 = r.copied.iter().map(|c| c.1.bytes).sum();
                let state = if r.reachable { "reachable" } else { "UNREACHABLE" };
                say!(
                    "{:<12} {state}: copied {copied} snapshot(s), {}",
                    r.region,
                    bytes(bytes_in)
                );
                for e in &r.errors {
                    say!("    {e}");
                }
            }
            print_copies(&report.trail_copies);
        }
        let mut problems = report.trail_copies.iter().flat_map(|c| &c.check.problems);
        if let Some(first) = problems.next() {
            note!("error: {first} — the copy was left as it is; see docs/security.md, \"Audit trail\"");
            return Ok(EXIT_DAMAGE);
        }
        if report.degraded {
            note!("error: some regions could not be brought up to date — see the lines above");
            return Ok(EXIT_DEGRADED);
        }
        Ok(EXIT_OK)
    }
}

fn print_verify(rows: &[crate::apply::verify::RegionVerify]) {
    say!(
        "{:<22} {:<12} {:<8} {:>9} {:>11} {:>10} {:>10} {:>10}",
        "dataset",
        "region",
        "result",
        "files",
        "checked",
        "MiB/s",
        "est. RTO",
        "RPO age"
    );
    for r in rows {
        match (&r.report, &r.error) {
            (Some(rep), _) => {
                let verdict = if rep.passed { "pass" } else { "FAIL" };
                let fmt = |s: f64| {
                    if s < 60.0 {
                        format!("{s:.2}s")
                    } else {
                        plan::units::format_duration(std::time::Duration::from_secs_f64(s))
                    }
                };
                say!(
                    "{:<22} {:<12} {:<8} {:>9} {:>11} {:>10.1} {:>10} {:>10}",
                    r.dataset,
                    r.region,
                    verdict,
                    format!("{}/{}", rep.files_checked, rep.files_total),
                    bytes(rep.bytes_checked),
                    rep.throughput_mib_s,
                    fmt(rep.estimated_rto_seconds),
                    fmt(rep.rpo_seconds as f64)
                );
                for (file, why) in &rep.damaged {
                    say!("    damaged: {file}: {why}");
                }
                if let Some(sig) = &r.signature {
                    say!("    signature: {}", sig.describe());
                }
            }
            (None, e) => say!(
                "{:<22} {:<12} ERROR    {}",
                r.dataset,
                r.region,
                e.as_deref().unwrap_or("")
            ),
        }
    }
}

fn print_status(st: &status::PlanStatus) {
    say!("plan {}", st.plan);
    say!(
        "{:<22} {:<12} {:<10} {:>5} {:<20} {:>9} {:<8} {:<4} behind",
        "dataset",
        "region",
        "reachable",
        "snaps",
        "latest (UTC)",
        "age",
        "RPO",
        "due"
    );
    for ds in &st.datasets {
        for r in &ds.regions {
            let latest = r
                .latest_time
                .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
            let age = r.age_seconds.map_or("-".into(), |a| {
                plan::units::format_duration(std::time::Duration::from_secs(a.max(0) as u64))
            });
            let rpo = if r.within_rpo { "ok" } else { "VIOLATED" };
            let reach = match (r.reachable, r.missing) {
                (true, _) => "yes",
                (false, true) => "not yet",
                (false, false) => "NO",
            };
            let due = if r.backup_due { "yes" } else { "no" };
            let behind = match (r.reachable, r.behind, r.bytes_behind) {
                (false, _, _) => "?".to_string(),
                (true, 0, _) => "-".to_string(),
                (true, n, Some(b)) => format!("{n} snapshot(s), {}", bytes(b)),
                (true, n, None) => format!("{n} snapshot(s)"),
            };
            say!(
                "{:<22} {:<12} {:<10} {:>5} {:<20} {:>9} {:<8} {:<4} {behind}",
                ds.dataset,
                r.region,
                reach,
                r.snapshots,
                latest,
                age,
                rpo,
                due
            );
            if let Some(e) = &r.error {
                say!("    {}: {e}", r.region);
            }
        }
    }
    let regions = || st.datasets.iter().flat_map(|d| &d.regions);
    let unreachable = regions().any(|r| !r.reachable && !r.missing);
    let missing = regions().any(|r| r.missing);
    let verdict = match (st.violated, unreachable, missing) {
        (true, _, _) => "some objectives are violated",
        (false, true, _) => "within objectives, but some regions are unreachable (degraded)",
        (false, false, true) => "within objectives, but some regions have no repository yet (degraded)",
        (false, false, false) => "all datasets within their objectives",
    };
    say!("{verdict}");
    print_stale_locks(&st.stale_locks);
}

/// One line per stale lease, under a line per region that has any.
fn print_stale_locks(regions: &[crate::apply::locks::StaleLocks]) {
    for r in regions.iter().filter(|r| !r.stale.is_empty()) {
        say!(
            "region {}: {} stale lock(s), left by processes that stopped without releasing them \
             (harmless; `lifeboat unlock --repo <its address>` removes them):",
            r.region,
            r.stale.len()
        );
        r.stale.iter().for_each(|line| say!("    {line}"));
    }
}

/// One line per snapshot an open anomaly pins in an Object Lock region: until when its
/// lock now runs, and whether this run extended it.
fn pinned_lock_lines(r: &RegionRun) -> Vec<String> {
    let Some(p) = &r.pinned_lock else { return Vec::new() };
    let extended = p.extended.iter().map(|l| (l, "extended to"));
    let kept = p.kept.iter().map(|l| (l, "already locked until"));
    extended
        .chain(kept)
        .map(|(l, how)| {
            format!(
                "pinned snapshot {} (open anomaly): Object Lock {how} {}",
                l.snapshot.short(),
                l.until.format("%Y-%m-%d %H:%M:%S UTC")
            )
        })
        .collect()
}

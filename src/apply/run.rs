//! `lifeboat apply`: do the due work of a plan now — back up each due dataset to its
//! regions, apply its retention, and prune what retention released.
//!
//! A region that fails does not stop the others: the run finishes on the reachable
//! regions and reports itself degraded; it fails only when a due dataset reached
//! no region at all.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::regions::{RegionRepo, open_regions};
use super::retention::{Filter, apply_retention};
use super::status::regions_due;
use super::{ApplyError, Result};
use crate::engine::Progress;
use crate::engine::backup::{BackupOptions, backup_to};
use crate::engine::fanout::Target;
use crate::engine::manifest::Signing;
use crate::engine::prune::{PruneOptions, PruneReport, prune};
use crate::format::names::DatasetName;
use crate::plan::due::DatasetObs;
use crate::plan::{Dataset, DatasetKind, Observed, Plan, due};
use crate::repo::SnapshotId;
use crate::repo::Summary;
use crate::repo::{RepoError, Repository};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub dataset: Option<DatasetName>,
    /// Back up even datasets that are not due.
    pub force: bool,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegionRun {
    pub region: String,
    /// Not due, nothing done.
    pub skipped: bool,
    pub snapshot: Option<SnapshotId>,
    pub summary: Option<Summary>,
    pub forgotten: usize,
    pub pruned: Option<PruneReport>,
    /// Dropped from the backup for falling too far behind; `sync` catches it up.
    pub lagging: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetRun {
    pub dataset: String,
    pub regions: Vec<RegionRun>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub datasets: Vec<DatasetRun>,
    /// Some region missed work it was due.
    pub degraded: bool,
    /// A due dataset reached no region.
    pub failed: bool,
}

/// Carry out the due work of `plan`.
pub async fn apply(plan: &Plan, password: &[u8], opts: &ApplyOptions, progress: Arc<Progress>) -> Result<ApplyReport> {
    if let Some(d) = &opts.dataset
        && !plan.datasets.contains_key(d)
    {
        return Err(ApplyError::BadInput(format!(
            "plan {} has no dataset {d} — see `lifeboat plan {}`",
            plan.file.display(),
            plan.file.display()
        )));
    }
    let regions = open_regions(plan, &[], password, true).await;
    let mut report = ApplyReport::default();
    for ds in plan.datasets.values() {
        if opts.dataset.as_ref().is_some_and(|d| d != &ds.name) {
            continue;
        }
        let runs = run_dataset(plan, ds, &regions, opts, &progress).await;
        let due: Vec<&RegionRun> = runs.iter().filter(|r| !r.skipped).collect();
        let failed = due.iter().filter(|r| r.error.is_some()).count();
        report.degraded |= failed > 0;
        report.failed |= !due.is_empty() && failed == due.len();
        report.datasets.push(DatasetRun {
            dataset: ds.name.to_string(),
            regions: runs,
        });
    }
    Ok(report)
}

async fn run_dataset(
    plan: &Plan,
    ds: &Dataset,
    regions: &[RegionRepo],
    opts: &ApplyOptions,
    progress: &Arc<Progress>,
) -> Vec<RegionRun> {
    let mut runs = Vec::new();
    let mut targets = Vec::new();
    let mut newest = Vec::new();
    for r in regions.iter().filter(|r| ds.regions.contains(&r.name)) {
        let mut run = RegionRun {
            region: r.name.to_string(),
            ..Default::default()
        };
        match &r.repo {
            Ok(repo) => match newest_snapshot(ds, repo).await {
                Ok(t) => {
                    newest.push((r.name.to_string(), t));
                    targets.push(Target {
                        name: r.name.to_string(),
                        repo: repo.clone(),
                    });
                }
                Err(e) => run.error = Some(format!("region {}: {e}", r.name)),
            },
            Err(e) => run.error = Some(format!("region {}: {e}", r.name)),
        }
        runs.push(run);
    }
    if !opts.force && !reachable_region_due(plan, ds, &newest, opts.now) {
        runs.iter_mut()
            .filter(|r| r.error.is_none())
            .for_each(|r| r.skipped = true);
        return runs;
    }
    if targets.is_empty() {
        return runs;
    }
    match super::signing::signing_for(plan, ds) {
        Ok(signing) => backup_everywhere(ds, signing, &targets, opts, progress, &mut runs).await,
        Err(e) => fail_all(&mut runs, &e.to_string()),
    }
    runs
}

/// The time of the newest snapshot of `ds` in `repo`.
async fn newest_snapshot(ds: &Dataset, repo: &Repository) -> std::result::Result<Option<DateTime<Utc>>, RepoError> {
    let snapshots = repo.all_snapshots().await?;
    let mine = snapshots
        .into_iter()
        .filter(|(_, s)| s.dataset.as_ref() == Some(&ds.name));
    Ok(mine.map(|(_, s)| s.time).max())
}

/// Whether `plan::due` wants a backup of `ds` in one of the regions reached (`newest`:
/// each one's newest snapshot); regions that could not be opened do not count.
fn reachable_region_due(
    plan: &Plan,
    ds: &Dataset,
    newest: &[(String, Option<DateTime<Utc>>)],
    now: DateTime<Utc>,
) -> bool {
    let obs = DatasetObs::from_snapshots(newest.iter().map(|(r, t)| (r.as_str(), *t)));
    let observed = Observed {
        datasets: [(ds.name.clone(), obs)].into(),
        ..Observed::default()
    };
    let wanted = regions_due(&due(plan, &observed, now), &ds.name);
    wanted.iter().any(|r| newest.iter().any(|(n, _)| n == r.as_str()))
}

/// One backup, sealed once and stored in every reachable region, then retention and
/// prune in each region that stored it.
async fn backup_everywhere(
    ds: &Dataset,
    signing: Option<Arc<Signing>>,
    targets: &[Target],
    opts: &ApplyOptions,
    progress: &Arc<Progress>,
    runs: &mut [RegionRun],
) {
    let backup_opts = BackupOptions {
        paths: ds.paths.clone(),
        excludes: ds.exclude.clone(),
        includes: ds.include.clone(),
        tags: ds.tags.clone(),
        dataset: Some(ds.name.clone()),
        no_compression: ds.kind == DatasetKind::Model,
        signing,
        ..Default::default()
    };
    let out = match backup_to(targets, &backup_opts, progress.clone()).await {
        Ok(out) => out,
        Err(e) => return fail_all(runs, &e.to_string()),
    };
    for (region, target) in out.regions.iter().zip(targets) {
        let Some(run) = runs.iter_mut().find(|r| r.region == region.region) else {
            continue;
        };
        if !region.stored {
            run.error = region.error.clone();
            run.lagging = region.lagging;
            continue;
        }
        run.snapshot = Some(out.id);
        run.summary = Some(out.snapshot.summary.clone());
        if let Err(e) = retain(ds, &target.repo, opts, run).await {
            run.error = Some(e.to_string());
        }
    }
}

/// Every region not already failed fails with `error`.
fn fail_all(runs: &mut [RegionRun], error: &str) {
    for run in runs.iter_mut().filter(|r| r.error.is_none()) {
        run.error = Some(error.to_string());
    }
}

async fn retain(ds: &Dataset, repo: &Repository, opts: &ApplyOptions, run: &mut RegionRun) -> Result<()> {
    let filter = Filter {
        dataset: Some(ds.name.clone()),
        tag: None,
    };
    let verdicts = apply_retention(repo, &filter, &ds.retention, opts.now, false).await?;
    run.forgotten = verdicts.iter().filter(|v| !v.keep).count();
    if run.forgotten > 0 {
        run.pruned = Some(prune(repo, &PruneOptions::default()).await?);
    }
    Ok(())
}

//! `lifeboat apply`: do the due work of a plan now — bring a dataset's regions level
//! (`agree`), back it up to them if due, apply its retention once for all of them, and
//! prune what retention released.
//!
//! A region that fails does not stop the others: the run finishes on the reachable
//! regions and reports itself degraded; it fails only when a due dataset reached
//! no region at all.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::agree::catch_up;
use super::anomaly::{Suspect, alert, lock_pins};
use super::regions::RegionRepo;
use super::retention::{Filter, apply_retention_everywhere};
use super::session::Session;
use super::status::regions_due;
use super::{ApplyError, Result};
use crate::engine::Progress;
use crate::engine::backup::{BackupOptions, backup_to};
use crate::engine::fanout::Target;
use crate::engine::manifest::Signing;
use crate::engine::pinned_lock::PinReport;
use crate::engine::prune::{PruneOptions, PruneReport, prune};
use crate::format::names::DatasetName;
use crate::plan::due::DatasetObs;
use crate::plan::{Dataset, Observed, Plan, due};
use crate::repo::Repository;
use crate::repo::SnapshotId;
use crate::repo::{Summary, Verdict};

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
    /// The snapshot this run stored, or (`unchanged`) the one it found identical.
    pub snapshot: Option<SnapshotId>,
    /// Nothing changed since `snapshot` (a dataset with `skip_unchanged`), so no new
    /// snapshot was written; the run still counts as a successful backup.
    pub unchanged: bool,
    pub summary: Option<Summary>,
    pub forgotten: usize,
    pub pruned: Option<PruneReport>,
    /// Snapshots copied in from the other regions before the backup, to catch up.
    pub synced: usize,
    /// Bytes of packs uploaded to this region by the backup (only packs holding
    /// blobs it lacked).
    pub bytes_added: u64,
    /// Dropped from the backup for falling too far behind; `sync` catches it up.
    pub lagging: bool,
    /// In an Object Lock region, the locks of the snapshots open anomalies of the
    /// dataset pin: which were extended until when, which were already long enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_lock: Option<PinReport>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetRun {
    pub dataset: String,
    pub regions: Vec<RegionRun>,
    /// This run's snapshot was judged suspect: the verdict (its alert has been sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<Verdict>,
    /// Alerts that could not be delivered, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub datasets: Vec<DatasetRun>,
    /// Some region missed work it was due.
    pub degraded: bool,
    /// A due dataset reached no region.
    pub failed: bool,
    /// Why copies the regions keep of each other's audit trails could not be brought up
    /// to date (`trails::follow_all`), or a trail head not signed (`trails::sign_heads`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trail_copy_warnings: Vec<String>,
}

/// Carry out the due work of the session's plan (opened with `Regions::Create`, so
/// missing regions were created).
pub async fn apply(session: &Session<'_>, opts: &ApplyOptions, progress: Arc<Progress>) -> Result<ApplyReport> {
    let plan = session.plan();
    check_options(plan, opts)?;
    let mut report = ApplyReport::default();
    for ds in plan.datasets.values() {
        if opts.dataset.as_ref().is_some_and(|d| d != &ds.name) {
            continue;
        }
        let runs = run_dataset(plan, ds, session.regions(), opts, &progress).await;
        let due: Vec<&RegionRun> = runs.iter().filter(|r| !r.skipped).collect();
        let failed = due.iter().filter(|r| r.error.is_some()).count();
        report.degraded |= failed > 0;
        report.failed |= !due.is_empty() && failed == due.len();
        let (anomaly, undelivered) = alert_if_suspect(plan, ds, &runs).await;
        report.datasets.push(DatasetRun {
            dataset: ds.name.to_string(),
            regions: runs,
            anomaly,
            undelivered,
        });
    }
    // A region that failed this run is left out: it would only fail again, slowly.
    let failed: Vec<&str> = (report.datasets.iter().flat_map(|d| &d.regions))
        .filter(|r| r.error.is_some())
        .map(|r| r.region.as_str())
        .collect();
    report.trail_copy_warnings = super::trails::follow_all(session, &failed).await;
    (report.trail_copy_warnings).extend(super::trails::sign_heads(session, &failed).await);
    Ok(report)
}

/// Refuse options that name what the plan does not have; checked before the session
/// is opened too, since opening one to apply creates missing regions.
pub fn check_options(plan: &Plan, opts: &ApplyOptions) -> Result<()> {
    match &opts.dataset {
        Some(d) if !plan.datasets.contains_key(d) => Err(ApplyError::BadInput(format!(
            "plan {} has no dataset {d} — see `lifeboat plan {}`",
            plan.file.display(),
            plan.file.display()
        ))),
        _ => Ok(()),
    }
}

async fn run_dataset(
    plan: &Plan,
    ds: &Dataset,
    regions: &[RegionRepo],
    opts: &ApplyOptions,
    progress: &Arc<Progress>,
) -> Vec<RegionRun> {
    let (mut runs, mut targets, held) = reach(ds, regions).await;
    let newest = if targets.len() > 1 && held.windows(2).any(|w| w[0].0 != w[1].0) {
        level(ds, &mut targets, opts, &mut runs).await;
        newest_after_catching_up(ds, &mut targets, &mut runs).await
    } else {
        targets.iter().zip(&held).map(|(t, h)| (t.name.clone(), h.1)).collect()
    };
    if opts.force || reachable_region_due(plan, ds, &newest, opts.now) {
        if !targets.is_empty() {
            match super::signing::signing_for(plan, ds) {
                Ok(signing) => backup_everywhere(ds, signing, &targets, opts, progress, &mut runs).await,
                Err(e) => fail_all(&mut runs, &e.to_string()),
            }
        }
    } else {
        runs.iter_mut()
            .filter(|r| r.error.is_none() && r.forgotten == 0 && r.synced == 0)
            .for_each(|r| r.skipped = true);
    }
    prune_where_forgotten(&targets, &mut runs).await;
    runs
}

/// Open each region of `ds`: a run row per region, the reachable ones as targets,
/// and each target's snapshot ids of `ds` with the newest time.
async fn reach(ds: &Dataset, regions: &[RegionRepo]) -> (Vec<RegionRun>, Vec<Target>, Vec<Held>) {
    let (mut runs, mut targets, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for r in regions.iter().filter(|r| ds.regions.contains(&r.name)) {
        let mut run = RegionRun {
            region: r.name.to_string(),
            ..Default::default()
        };
        let listed = match &r.repo {
            Ok(repo) => dataset_snapshots(ds, repo).await.map(|h| (repo, h)),
            Err(e) => Err(e.to_string()),
        };
        match listed {
            Ok((repo, h)) => {
                held.push(h);
                targets.push(Target {
                    name: r.name.to_string(),
                    repo: repo.clone(),
                });
            }
            Err(e) => run.error = Some(format!("region {}: {e}", r.name)),
        }
        runs.push(run);
    }
    (runs, targets, held)
}

/// The snapshot ids of a dataset in one region, and the newest one's time.
type Held = (BTreeSet<SnapshotId>, Option<DateTime<Utc>>);

/// The snapshots of `ds` in `repo`: their ids and the newest time.
async fn dataset_snapshots(ds: &Dataset, repo: &Repository) -> std::result::Result<Held, String> {
    let snapshots = repo.all_snapshots().await.map_err(|e| e.to_string())?;
    let mine: Vec<_> = snapshots
        .into_iter()
        .filter(|(_, s)| s.dataset.as_ref() == Some(&ds.name))
        .collect();
    let newest = mine.iter().map(|(_, s)| s.time).max();
    Ok((mine.into_iter().map(|(id, _)| id).collect(), newest))
}

/// Bring regions that hold different snapshots of `ds` level (`agree`); a region
/// that cannot be caught up sits out this run rather than be backed up from behind.
async fn level(ds: &Dataset, targets: &mut Vec<Target>, opts: &ApplyOptions, runs: &mut [RegionRun]) {
    let caught = catch_up(ds, targets, opts.now).await;
    let mut keep = Vec::new();
    for (t, c) in targets.drain(..).zip(caught) {
        let run = run_of(runs, &t.name);
        run.forgotten += c.forgotten;
        run.synced += c.synced;
        match c.error {
            Some(e) => run.error = Some(e),
            None => keep.push(t),
        }
    }
    *targets = keep;
}

/// Each target's newest snapshot of `ds` once caught up; a region that cannot be
/// listed now sits out the run.
async fn newest_after_catching_up(
    ds: &Dataset,
    targets: &mut Vec<Target>,
    runs: &mut [RegionRun],
) -> Vec<(String, Option<DateTime<Utc>>)> {
    let mut newest = Vec::new();
    for t in targets.iter() {
        match dataset_snapshots(ds, &t.repo).await {
            Ok(s) => newest.push((t.name.clone(), s.1)),
            Err(e) => run_of(runs, &t.name).error = Some(format!("region {}: {e}", t.name)),
        }
    }
    targets.retain(|t| newest.iter().any(|(n, _)| n == &t.name));
    newest
}

fn run_of<'a>(runs: &'a mut [RegionRun], region: &str) -> &'a mut RegionRun {
    let i = runs.iter().position(|r| r.region == region).unwrap_or(0);
    &mut runs[i]
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

/// One backup, sealed once and stored in every reachable region, then retention
/// decided once over the regions that stored it and carried out in each.
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
        signing,
        // Half the RPO: the repository itself then always holds a snapshot within
        // the RPO, whoever reads it.
        skip_unchanged: ds.skip_unchanged.then(|| half(ds.rpo)),
        anomaly: ds.anomaly,
        ..Default::default()
    };
    let out = match backup_to(targets, &backup_opts, progress.clone()).await {
        Ok(out) => out,
        Err(e) => return fail_all(runs, &e.to_string()),
    };
    let mut stored = Vec::new();
    for (region, target) in out.regions.iter().zip(targets) {
        let run = run_of(runs, &region.region);
        run.bytes_added = region.bytes_added;
        if !region.stored {
            run.error = region.error.clone();
            run.lagging = region.lagging;
            continue;
        }
        run.snapshot = Some(out.id);
        run.unchanged = out.unchanged;
        run.summary = Some(out.snapshot.summary.clone());
        stored.push(target);
    }
    retain_everywhere(ds, &stored, opts, runs).await;
}

fn half(rpo: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(rpo / 2).unwrap_or(chrono::Duration::MAX)
}

/// Tell the alert hooks when this run's snapshot of `ds` was judged suspect; returns
/// the verdict and one line per alert that could not be delivered.
async fn alert_if_suspect(plan: &Plan, ds: &Dataset, runs: &[RegionRun]) -> (Option<Verdict>, Vec<String>) {
    let judged = |r: &&RegionRun| !r.unchanged && r.summary.as_ref().is_some_and(Summary::suspect);
    let Some(run) = runs.iter().find(judged) else {
        return (None, Vec::new());
    };
    let (Some(id), Some(verdict)) = (run.snapshot, run.summary.as_ref().and_then(|s| s.anomaly.as_ref())) else {
        return (None, Vec::new());
    };
    let regions = runs
        .iter()
        .filter(|r| r.snapshot == Some(id))
        .map(|r| r.region.as_str())
        .collect();
    let suspect = Suspect { id, verdict, regions };
    (Some(verdict.clone()), alert(plan, ds, &suspect).await)
}

/// Every region not already failed fails with `error`.
fn fail_all(runs: &mut [RegionRun], error: &str) {
    for run in runs.iter_mut().filter(|r| r.error.is_none()) {
        run.error = Some(error.to_string());
    }
}

async fn retain_everywhere(ds: &Dataset, targets: &[&Target], opts: &ApplyOptions, runs: &mut [RegionRun]) {
    let filter = Filter {
        dataset: Some(ds.name.clone()),
        tag: None,
    };
    let repos: Vec<&Repository> = targets.iter().map(|t| &t.repo).collect();
    let forgotten = apply_retention_everywhere(&repos, &filter, &ds.retention, opts.now).await;
    for (t, forgot) in targets.iter().zip(forgotten) {
        let run = run_of(runs, &t.name);
        match forgot {
            Ok(kept) => {
                run.forgotten += kept.forgotten;
                match lock_pins(&t.repo, &kept.pinned).await {
                    Ok(report) => run.pinned_lock = report,
                    Err(e) => run.error = Some(format!("region {}: {e}", t.name)),
                }
            }
            Err(e) => run.error = Some(e.to_string()),
        }
    }
}

/// Prune each region where this run forgot snapshots.
async fn prune_where_forgotten(targets: &[Target], runs: &mut [RegionRun]) {
    for t in targets {
        let run = run_of(runs, &t.name);
        if run.forgotten == 0 || run.error.is_some() {
            continue;
        }
        match prune(&t.repo, &PruneOptions::default()).await {
            Ok(p) => run.pruned = Some(p),
            Err(e) => run.error = Some(e.to_string()),
        }
    }
}

//! Restore by plan: find a reachable region holding the wanted snapshot of a dataset
//! (the newest one unless told) and restore from it alone.

use std::sync::Arc;

use super::regions::open_regions;
use super::{ApplyError, Result};
use crate::engine::Progress;
use crate::engine::restore::{RestoreOptions, RestoreOutcome, restore};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::Plan;
use crate::repo::Repository;
use crate::repo::Snapshot;
use crate::repo::SnapshotId;

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanRestore {
    pub region: String,
    /// Regions that could not be used, and why.
    pub skipped: Vec<(String, String)>,
    pub outcome: RestoreOutcome,
}

async fn candidate(
    repo: &Repository,
    dataset: &DatasetName,
    spec: Option<&str>,
) -> Result<Option<(SnapshotId, Snapshot)>> {
    let snaps = repo.all_snapshots().await?;
    let mut mine = snaps.into_iter().filter(|(_, s)| s.dataset.as_ref() == Some(dataset));
    Ok(match spec {
        None | Some("latest") => mine.next_back(),
        Some(prefix) => mine.rfind(|(id, _)| id.to_hex().starts_with(prefix)),
    })
}

/// Restore `dataset` from `region` (or the best reachable region) into `opts.target`.
pub async fn restore_by_plan(
    plan: &Plan,
    password: &[u8],
    dataset: &DatasetName,
    region: Option<&RegionName>,
    spec: Option<&str>,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<PlanRestore> {
    let ds = plan
        .datasets
        .get(dataset)
        .ok_or_else(|| ApplyError::BadInput(format!("plan {} has no dataset {dataset}", plan.file.display())))?;
    if let Some(r) = region
        && !ds.regions.contains(r)
    {
        return Err(ApplyError::BadInput(format!(
            "dataset {dataset} is not kept in region {r}"
        )));
    }
    let wanted: Vec<RegionName> = region.map_or_else(|| ds.regions.clone(), |r| vec![r.clone()]);
    let mut skipped = Vec::new();
    let mut best: Option<(String, Repository, SnapshotId, Snapshot)> = None;
    for r in open_regions(plan, &wanted, password, false).await {
        let repo = match r.repo {
            Ok(repo) => repo,
            Err(e) => {
                skipped.push((r.name.to_string(), e.to_string()));
                continue;
            }
        };
        match candidate(&repo, dataset, spec).await {
            Ok(Some((id, snap))) if best.as_ref().is_none_or(|b| snap.time > b.3.time) => {
                best = Some((r.name.to_string(), repo, id, snap))
            }
            Ok(Some(_)) => {}
            Ok(None) => skipped.push((r.name.to_string(), "no matching snapshot".into())),
            Err(e) => skipped.push((r.name.to_string(), e.to_string())),
        }
    }
    let Some((name, repo, id, _)) = best else {
        let why: Vec<String> = skipped.iter().map(|(r, e)| format!("{r}: {e}")).collect();
        return Err(ApplyError::BadInput(format!(
            "no region holds a matching snapshot of {dataset} ({})",
            why.join("; ")
        )));
    };
    let outcome = restore(&repo, &id, opts, progress).await?;
    Ok(PlanRestore {
        region: name,
        skipped,
        outcome,
    })
}

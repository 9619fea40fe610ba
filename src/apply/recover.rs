//! Restore by plan: find a reachable region holding the wanted snapshot of a dataset
//! (the newest one unless told) and restore from it alone. A signed dataset's snapshot
//! is checked against the plan's trusted keys first, and the restored files against
//! its signed digests after.

use std::sync::Arc;

use super::session::Session;
use super::signing::trusted_keys;
use super::{ApplyError, Result};
use crate::engine::Progress;
use crate::engine::manifest::{Trust, Verdict, export_model_signature, gate, restore_checked};
use crate::engine::restore::{RestoreOptions, RestoreOutcome};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::{Dataset, Plan};
use crate::repo::Repository;
use crate::repo::Snapshot;
use crate::repo::SnapshotId;

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanRestore {
    pub region: String,
    /// Regions that could not be used, and why.
    pub skipped: Vec<(String, String)>,
    pub outcome: RestoreOutcome,
    /// The snapshot's signature as checked before the restore (signed datasets, or
    /// when the plan trusts keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Verdict>,
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

/// The snapshot chosen for a restore by plan, and the region it comes from.
struct Picked<'s> {
    region: String,
    repo: &'s Repository,
    id: SnapshotId,
    snapshot: Snapshot,
    /// Regions that could not be used, and why.
    skipped: Vec<(String, String)>,
}

/// The newest matching snapshot of `ds` among the reachable regions wanted.
async fn pick<'s>(
    session: &'s Session<'_>,
    ds: &Dataset,
    region: Option<&RegionName>,
    spec: Option<&str>,
) -> Result<Picked<'s>> {
    let dataset = &ds.name;
    if let Some(r) = region
        && !ds.regions.contains(r)
    {
        return Err(ApplyError::BadInput(format!(
            "dataset {dataset} is not kept in region {r}"
        )));
    }
    let wanted: Vec<RegionName> = region.map_or_else(|| ds.regions.clone(), |r| vec![r.clone()]);
    let mut skipped = Vec::new();
    let mut best: Option<(String, &Repository, SnapshotId, Snapshot)> = None;
    for r in session.selected(&wanted) {
        let repo = match &r.repo {
            Ok(repo) => repo,
            Err(e) => {
                skipped.push((r.name.to_string(), e.to_string()));
                continue;
            }
        };
        match candidate(repo, dataset, spec).await {
            Ok(Some((id, snap))) if best.as_ref().is_none_or(|b| snap.time > b.3.time) => {
                best = Some((r.name.to_string(), repo, id, snap))
            }
            Ok(Some(_)) => {}
            Ok(None) => skipped.push((r.name.to_string(), "no matching snapshot".into())),
            Err(e) => skipped.push((r.name.to_string(), e.to_string())),
        }
    }
    let Some((region, repo, id, snapshot)) = best else {
        let why: Vec<String> = skipped.iter().map(|(r, e)| format!("{r}: {e}")).collect();
        return Err(ApplyError::BadInput(format!(
            "no region holds a matching snapshot of {dataset} ({})",
            why.join("; ")
        )));
    };
    Ok(Picked {
        region,
        repo,
        id,
        snapshot,
        skipped,
    })
}

fn dataset<'p>(plan: &'p Plan, name: &DatasetName) -> Result<&'p Dataset> {
    plan.datasets
        .get(name)
        .ok_or_else(|| ApplyError::BadInput(format!("plan {} has no dataset {name}", plan.file.display())))
}

/// Which snapshot a restore by plan wants.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub dataset: &'a DatasetName,
    /// This region only; else the reachable region with the newest match.
    pub region: Option<&'a RegionName>,
    /// A snapshot id prefix or `latest` (the default).
    pub snapshot: Option<&'a str>,
    /// Restore a signed dataset's snapshot even when its signature does not hold.
    pub allow_unsigned: bool,
}

/// Restore the wanted snapshot from its region (or the best reachable region) into
/// `opts.target`.
pub async fn restore_by_plan(
    session: &Session<'_>,
    wanted: Wanted<'_>,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<PlanRestore> {
    let plan = session.plan();
    let ds = self::dataset(plan, wanted.dataset)?;
    let picked = pick(session, ds, wanted.region, wanted.snapshot).await?;
    let trust = Trust {
        keys: trusted_keys(plan)?,
        required: ds.sign,
        allow_unsigned: wanted.allow_unsigned,
    };
    let (outcome, signature) =
        restore_checked(picked.repo, &picked.id, &picked.snapshot, opts, &trust, progress).await?;
    Ok(PlanRestore {
        region: picked.region,
        skipped: picked.skipped,
        outcome,
        signature,
    })
}

/// The OpenSSF model signature of model folder `folder` in a snapshot of `dataset`,
/// once the snapshot's signature is checked against the plan's trusted keys; with the
/// region it came from.
pub async fn export_by_plan(
    session: &Session<'_>,
    dataset: &DatasetName,
    spec: Option<&str>,
    folder: &str,
) -> Result<(String, Vec<u8>)> {
    let plan = session.plan();
    let ds = self::dataset(plan, dataset)?;
    let picked = pick(session, ds, None, spec).await?;
    let trust = Trust {
        keys: trusted_keys(plan)?,
        required: true,
        allow_unsigned: false,
    };
    gate(picked.repo, &picked.id, &picked.snapshot, &trust).await?;
    let bundle = export_model_signature(picked.repo, &picked.id, folder, Some(&trust.keys)).await?;
    Ok((picked.region, bundle))
}

//! `lifeboat plan`: what is due, lagging or over its RPO, per dataset and region.
//! Read-only: it opens repositories but writes nothing.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::locks::{self, StaleLocks};
use super::regions::RegionRepo;
use super::session::Session;
use crate::engine::sync::bytes_needed;
use crate::format::names::{DatasetName, RegionName};
use crate::plan::due::DatasetObs;
use crate::plan::{Dataset, Due, Observed, Plan, due};
use crate::repo::{Index, RepoError, SnapshotId};

#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionStatus {
    pub region: String,
    pub reachable: bool,
    /// No repository exists there yet (`apply` creates it when the region allows).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub snapshots: usize,
    pub latest: Option<SnapshotId>,
    pub latest_time: Option<DateTime<Utc>>,
    /// Seconds since the latest snapshot.
    pub age_seconds: Option<i64>,
    pub within_rpo: bool,
    pub backup_due: bool,
    /// Snapshots of the dataset that another reachable region has and this one lacks.
    pub behind: usize,
    /// Bytes of packs a `sync` would copy into this region to catch up (blob bytes,
    /// without pack headers); measured only when asked for, otherwise `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_behind: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetStatus {
    pub dataset: String,
    pub schedule: String,
    pub rpo_seconds: u64,
    pub regions: Vec<RegionStatus>,
    pub next_run: Option<DateTime<Utc>>,
    /// True when no region holds a snapshot within the RPO.
    pub violated: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanStatus {
    pub plan: String,
    pub datasets: Vec<DatasetStatus>,
    pub violated: bool,
    /// The stale leases of each reachable region (see `locks`).
    pub stale_locks: Vec<StaleLocks>,
}

/// How much a `status` call measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Snapshot lists only.
    Snapshots,
    /// Also the bytes each lagging region misses, which reads indexes and the trees of
    /// the missing snapshots.
    Bytes,
}

/// Observe every dataset × region of `plan` at `now`.
pub async fn status(session: &Session<'_>, now: DateTime<Utc>, depth: Depth) -> PlanStatus {
    let plan = session.plan();
    let mut indexes: HashMap<String, Option<Index>> = HashMap::new();
    let mut datasets = Vec::new();
    let mut seen = Observed::default();
    for ds in plan.datasets.values() {
        let mut rows = Vec::new();
        let mut held: Vec<Option<HashSet<SnapshotId>>> = Vec::new();
        let members: Vec<&RegionRepo> = session.selected(&ds.regions);
        for r in &members {
            let snaps = match &r.repo {
                Ok(repo) => repo.all_snapshots().await.map_err(|e| e.to_string()),
                Err(e) if not_created(e) => {
                    held.push(None);
                    rows.push(missing_row(plan, &r.name));
                    continue;
                }
                Err(e) => Err(e.to_string()),
            };
            match snaps {
                Ok(snaps) => {
                    let times: Vec<(SnapshotId, DateTime<Utc>)> = snaps
                        .into_iter()
                        .filter(|(_, s)| s.dataset.as_ref() == Some(&ds.name))
                        .map(|(id, s)| (id, s.time))
                        .collect();
                    held.push(Some(times.iter().map(|t| t.0).collect()));
                    rows.push(observed(ds, r.name.as_str(), &times, now));
                }
                Err(e) => {
                    held.push(None);
                    rows.push(unreachable_row(r.name.as_str(), e));
                }
            }
        }
        let all: HashSet<SnapshotId> = held.iter().flatten().flatten().copied().collect();
        for (i, row) in rows.iter_mut().enumerate() {
            let Some(mine) = &held[i] else { continue };
            row.behind = all.difference(mine).count();
            if depth == Depth::Bytes {
                row.bytes_behind = lag_bytes(&members, &held, i, &mut indexes).await;
            }
        }
        seen.datasets.insert(ds.name.clone(), newest_of(&rows));
        datasets.push(dataset_status(ds, rows, now));
    }
    mark_due(plan, &seen, now, &mut datasets);
    PlanStatus {
        plan: plan.file.display().to_string(),
        violated: datasets.iter().any(|d| d.violated),
        datasets,
        stale_locks: locks::stale(session).await,
    }
}

/// The newest snapshot of each reachable region; the others count as never backed up.
fn newest_of(rows: &[RegionStatus]) -> DatasetObs {
    DatasetObs::from_snapshots(
        rows.iter()
            .filter(|r| r.reachable)
            .map(|r| (r.region.as_str(), r.latest_time)),
    )
}

/// Set each region's `backup_due` from `plan::due`.
fn mark_due(plan: &Plan, observed: &Observed, now: DateTime<Utc>, datasets: &mut [DatasetStatus]) {
    let due = due(plan, observed, now);
    for ds in datasets.iter_mut() {
        let regions = DatasetName::new(&ds.dataset)
            .map(|d| regions_due(&due, &d))
            .unwrap_or_default();
        for row in &mut ds.regions {
            row.backup_due = regions.iter().any(|r| r.as_str() == row.region);
        }
    }
}

/// The regions of `dataset` that `due` says need a backup.
pub(super) fn regions_due(due: &[Due], dataset: &DatasetName) -> Vec<RegionName> {
    due.iter()
        .find_map(|d| match d {
            Due::Backup {
                dataset: name, regions, ..
            } if name == dataset => Some(regions.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The bytes region `i` of `members` misses: what syncing from each other region in
/// turn would copy. `None` when an index or tree could not be read.
async fn lag_bytes(
    members: &[&RegionRepo],
    held: &[Option<HashSet<SnapshotId>>],
    i: usize,
    indexes: &mut HashMap<String, Option<Index>>,
) -> Option<u64> {
    let mine = held[i].as_ref()?;
    let mut have = mine.clone();
    let mut counted = HashSet::new();
    let mut total = 0;
    for (j, src) in members.iter().enumerate() {
        let Some(theirs) = &held[j] else { continue };
        let missing: Vec<SnapshotId> = theirs.difference(&have).copied().collect();
        if j == i || missing.is_empty() {
            continue;
        }
        load_index(src, indexes).await;
        load_index(members[i], indexes).await;
        let src_index = indexes.get(src.name.as_str())?.as_ref()?;
        let dst_index = indexes.get(members[i].name.as_str())?.as_ref()?;
        let src_repo = src.repo.as_ref().ok()?;
        total += bytes_needed(src_repo, src_index, dst_index, &missing, &mut counted)
            .await
            .ok()?;
        have.extend(missing);
    }
    Some(total)
}

/// Load `region`'s index into `indexes` once (`None` when it cannot be read).
async fn load_index(region: &RegionRepo, indexes: &mut HashMap<String, Option<Index>>) {
    if indexes.contains_key(region.name.as_str()) {
        return;
    }
    let loaded = match &region.repo {
        Ok(repo) => repo.load_index().await.ok(),
        Err(_) => None,
    };
    indexes.insert(region.name.to_string(), loaded);
}

fn dataset_status(ds: &Dataset, rows: Vec<RegionStatus>, now: DateTime<Utc>) -> DatasetStatus {
    DatasetStatus {
        dataset: ds.name.to_string(),
        schedule: ds.schedule.as_str().to_string(),
        rpo_seconds: ds.rpo.as_secs(),
        violated: !rows.iter().any(|r| r.within_rpo),
        next_run: ds.schedule.next_after(now),
        regions: rows,
    }
}

/// Whether opening failed because nothing is there yet (no directory, no `config`).
fn not_created(e: &RepoError) -> bool {
    match e {
        RepoError::NotFound(_) => true,
        RepoError::Storage(s) => s.is_not_found(),
        _ => false,
    }
}

/// A region whose repository is not created yet: say how it gets created. `init`
/// would be wrong here, as it makes a repository with a key of its own, while a plan's
/// regions must share one (`apply` creates the region as a replica).
fn missing_row(plan: &Plan, region: &RegionName) -> RegionStatus {
    let creatable = plan.regions.get(region).is_some_and(|r| r.create);
    let how = if creatable {
        format!("`lifeboat apply {}` creates it", plan.file.display())
    } else {
        format!(
            "set `create = true` in [regions.{region}] and run `lifeboat apply {}` to create it",
            plan.file.display()
        )
    };
    RegionStatus {
        missing: true,
        ..unreachable_row(region.as_str(), format!("no repository there yet — {how}"))
    }
}

fn unreachable_row(region: &str, error: String) -> RegionStatus {
    RegionStatus {
        region: region.to_string(),
        reachable: false,
        missing: false,
        error: Some(error),
        snapshots: 0,
        latest: None,
        latest_time: None,
        age_seconds: None,
        within_rpo: false,
        backup_due: true,
        behind: 0,
        bytes_behind: None,
    }
}

/// The status of one region from the times of its snapshots of `ds`; whether a
/// backup is due is decided for all regions at once (`mark_due`).
fn observed(ds: &Dataset, region: &str, times: &[(SnapshotId, DateTime<Utc>)], now: DateTime<Utc>) -> RegionStatus {
    let latest = times.iter().max_by_key(|(_, t)| *t).copied();
    let age = latest.map(|(_, t)| (now - t).num_seconds());
    let within_rpo = age.is_some_and(|a| a <= ds.rpo.as_secs() as i64);
    RegionStatus {
        region: region.to_string(),
        reachable: true,
        missing: false,
        error: None,
        snapshots: times.len(),
        latest: latest.map(|l| l.0),
        latest_time: latest.map(|l| l.1),
        age_seconds: age,
        within_rpo,
        backup_due: false,
        behind: 0,
        bytes_behind: None,
    }
}

//! `lifeboat plan`: what is due, lagging or over its RPO, per dataset and region.
//! Read-only: it opens repositories but writes nothing.

use chrono::{DateTime, Utc};

use super::regions::open_regions;
use crate::plan::{Dataset, Plan};
use crate::repo::SnapshotId;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionStatus {
    pub region: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub snapshots: usize,
    pub latest: Option<SnapshotId>,
    pub latest_time: Option<DateTime<Utc>>,
    /// Seconds since the latest snapshot.
    pub age_seconds: Option<i64>,
    pub within_rpo: bool,
    pub backup_due: bool,
    /// Snapshots the best region has that this one lacks (by time).
    pub behind: usize,
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
}

/// Observe every dataset × region of `plan` at `now`.
pub async fn status(plan: &Plan, password: &[u8], now: DateTime<Utc>) -> PlanStatus {
    let regions = open_regions(plan, &[], password, false).await;
    let mut datasets = Vec::new();
    for ds in plan.datasets.values() {
        let mut rows = Vec::new();
        for r in regions.iter().filter(|r| ds.regions.contains(&r.name)) {
            let row = match &r.repo {
                Ok(repo) => match repo.snapshots().await {
                    Ok(snaps) => {
                        let times: Vec<(SnapshotId, DateTime<Utc>)> = snaps
                            .into_iter()
                            .filter(|(_, s)| s.dataset.as_ref() == Some(&ds.name))
                            .map(|(id, s)| (id, s.time))
                            .collect();
                        observed(ds, r.name.as_str(), &times, now)
                    }
                    Err(e) => unreachable_row(r.name.as_str(), e.to_string()),
                },
                Err(e) => unreachable_row(r.name.as_str(), e.to_string()),
            };
            rows.push(row);
        }
        datasets.push(dataset_status(ds, rows, now));
    }
    PlanStatus {
        plan: plan.file.display().to_string(),
        violated: datasets.iter().any(|d| d.violated),
        datasets,
    }
}

fn dataset_status(ds: &Dataset, mut rows: Vec<RegionStatus>, now: DateTime<Utc>) -> DatasetStatus {
    let best = rows.iter().map(|r| r.snapshots).max().unwrap_or(0);
    for r in rows.iter_mut().filter(|r| r.reachable) {
        r.behind = best - r.snapshots;
    }
    DatasetStatus {
        dataset: ds.name.to_string(),
        schedule: ds.schedule.as_str().to_string(),
        rpo_seconds: ds.rpo.as_secs(),
        violated: !rows.iter().any(|r| r.within_rpo),
        next_run: ds.schedule.next_after(now),
        regions: rows,
    }
}

fn unreachable_row(region: &str, error: String) -> RegionStatus {
    RegionStatus {
        region: region.to_string(),
        reachable: false,
        error: Some(error),
        snapshots: 0,
        latest: None,
        latest_time: None,
        age_seconds: None,
        within_rpo: false,
        backup_due: true,
        behind: 0,
    }
}

/// The status of one region from the times of its snapshots of `ds`.
pub fn observed(ds: &Dataset, region: &str, times: &[(SnapshotId, DateTime<Utc>)], now: DateTime<Utc>) -> RegionStatus {
    let latest = times.iter().max_by_key(|(_, t)| *t).copied();
    let age = latest.map(|(_, t)| (now - t).num_seconds());
    let within_rpo = age.is_some_and(|a| a <= ds.rpo.as_secs() as i64);
    let due = match latest {
        None => true,
        Some((_, t)) => ds.schedule.next_after(t).is_none_or(|next| next <= now) || !within_rpo,
    };
    RegionStatus {
        region: region.to_string(),
        reachable: true,
        error: None,
        snapshots: times.len(),
        latest: latest.map(|l| l.0),
        latest_time: latest.map(|l| l.1),
        age_seconds: age,
        within_rpo,
        backup_due: due,
        behind: 0,
    }
}

//! Verification by plan: a test restore of each dataset's latest snapshot from each
//! region alone, with the measured recovery time and data age per dataset × region.

use chrono::{DateTime, Utc};

use super::regions::open_regions;
use crate::engine::verify::{VerifyOptions, VerifyReport, verify};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::{Dataset, Plan, VerifyPolicy};

#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionVerify {
    pub dataset: String,
    pub region: String,
    pub report: Option<VerifyReport>,
    /// Why there is no report (region unreachable, no snapshot, restore failed).
    pub error: Option<String>,
    /// The dataset's RPO objective, to compare the measured data age with.
    pub rpo_objective_seconds: u64,
}

impl RegionVerify {
    pub fn passed(&self) -> bool {
        self.report.as_ref().is_some_and(|r| r.passed)
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub dataset: Option<DatasetName>,
    pub region: Option<RegionName>,
    /// Overrides the policy's sample fraction.
    pub sample_fraction: Option<f64>,
    pub now: Option<DateTime<Utc>>,
    /// Run exactly this verify policy: its datasets, regions and sample fraction.
    pub policy: Option<String>,
}

fn policy_for<'a>(plan: &'a Plan, ds: &Dataset) -> Option<&'a VerifyPolicy> {
    plan.verify
        .values()
        .find(|p| p.datasets.is_empty() || p.datasets.contains(&ds.name))
}

/// Verify every selected dataset in every selected region.
pub async fn verify_plan(plan: &Plan, password: &[u8], req: &VerifyRequest) -> Vec<RegionVerify> {
    let now = req.now.unwrap_or_else(Utc::now);
    let regions = open_regions(plan, &[], password, false).await;
    let mut out = Vec::new();
    for ds in plan.datasets.values() {
        if req.dataset.as_ref().is_some_and(|d| d != &ds.name) {
            continue;
        }
        let policy = match &req.policy {
            Some(name) => match plan.verify.values().find(|p| p.name.as_str() == name) {
                Some(p) if p.datasets.is_empty() || p.datasets.contains(&ds.name) => Some(p),
                _ => continue,
            },
            None => policy_for(plan, ds),
        };
        let opts = VerifyOptions {
            scratch: policy
                .and_then(|p| p.scratch.clone())
                .unwrap_or_else(std::env::temp_dir),
            sample_fraction: req.sample_fraction.or(policy.map(|p| p.sample_fraction)).unwrap_or(1.0),
        };
        for r in regions.iter().filter(|r| ds.regions.contains(&r.name)) {
            let wanted_by_policy = policy.is_none_or(|p| p.regions.is_empty() || p.regions.contains(&r.name));
            if req.region.as_ref().is_some_and(|x| x != &r.name) || (req.region.is_none() && !wanted_by_policy) {
                continue;
            }
            let mut row = RegionVerify {
                dataset: ds.name.to_string(),
                region: r.name.to_string(),
                report: None,
                error: None,
                rpo_objective_seconds: ds.rpo.as_secs(),
            };
            match &r.repo {
                Ok(repo) => match latest(repo, &ds.name).await {
                    Ok(Some(id)) => match verify(repo, &id, &opts, now).await {
                        Ok(rep) => row.report = Some(rep),
                        Err(e) => row.error = Some(e.to_string()),
                    },
                    Ok(None) => row.error = Some(format!("no snapshot of {} in region {}", ds.name, r.name)),
                    Err(e) => row.error = Some(e.to_string()),
                },
                Err(e) => row.error = Some(format!("region {}: {e}", r.name)),
            }
            out.push(row);
        }
    }
    out
}

async fn latest(
    repo: &crate::repo::Repository,
    ds: &DatasetName,
) -> Result<Option<crate::repo::SnapshotId>, crate::repo::RepoError> {
    let snaps = repo.all_snapshots().await?;
    Ok(snaps
        .into_iter()
        .rev()
        .find(|(_, s)| s.dataset.as_ref() == Some(ds))
        .map(|(id, _)| id))
}

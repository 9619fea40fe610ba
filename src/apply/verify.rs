//! Verification by plan: a test restore of each dataset's latest snapshot from each
//! region alone, with the measured recovery time and data age per dataset × region.
//! A signed dataset's snapshot is checked against the plan's trusted keys first; the
//! test restore then compares every file with its hash in the snapshot, which the
//! signed manifest has just been matched against.

use chrono::{DateTime, Utc};

use super::session::Session;
use super::signing::trusted_keys;
use crate::engine::EngineError;
use crate::engine::manifest::{Trust, Verdict, gate};
use crate::engine::verify::{VerifyOptions, VerifyReport, verify};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::{Dataset, Plan, VerifyPolicy};
use crate::repo::{RepoError, Repository, Snapshot, SnapshotId};

#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionVerify {
    pub dataset: String,
    pub region: String,
    pub report: Option<VerifyReport>,
    /// Why there is no report (region unreachable, no snapshot, restore failed).
    pub error: Option<String>,
    /// The dataset's RPO objective, to compare the measured data age with.
    pub rpo_objective_seconds: u64,
    /// The snapshot's signature as checked first (signed datasets, or when the plan
    /// trusts keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Verdict>,
    /// The snapshot was refused because its signature is missing, untrusted or wrong.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl RegionVerify {
    pub fn passed(&self) -> bool {
        !self.refused && self.report.as_ref().is_some_and(|r| r.passed)
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
    /// Verify a signed dataset's snapshot even when its signature does not hold.
    pub allow_unsigned: bool,
}

fn policy_for<'a>(plan: &'a Plan, ds: &Dataset) -> Option<&'a VerifyPolicy> {
    plan.verify
        .values()
        .find(|p| p.datasets.is_empty() || p.datasets.contains(&ds.name))
}

/// Verify every selected dataset in every selected region.
pub async fn verify_plan(session: &Session<'_>, req: &VerifyRequest) -> Vec<RegionVerify> {
    let plan = session.plan();
    let now = req.now.unwrap_or_else(Utc::now);
    let keys = trusted_keys(plan);
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
        for r in session.selected(&ds.regions) {
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
                signature: None,
                refused: false,
            };
            let trust = match &keys {
                Ok(keys) => Trust {
                    keys: keys.clone(),
                    required: ds.sign,
                    allow_unsigned: req.allow_unsigned,
                },
                Err(e) => {
                    row.error = Some(e.to_string());
                    out.push(row);
                    continue;
                }
            };
            match &r.repo {
                Ok(repo) => match latest(repo, &ds.name).await {
                    Ok(Some((id, snap))) => verify_one(repo, &id, &snap, &trust, &opts, now, &mut row).await,
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

/// Check the snapshot's signature, then test-restore it, filling in `row`.
async fn verify_one(
    repo: &Repository,
    id: &SnapshotId,
    snap: &Snapshot,
    trust: &Trust,
    opts: &VerifyOptions,
    now: DateTime<Utc>,
    row: &mut RegionVerify,
) {
    match gate(repo, id, snap, trust).await {
        Ok(checked) => row.signature = checked.map(|c| c.verdict),
        Err(e) => {
            row.refused = matches!(e, EngineError::Damage { .. });
            row.error = Some(e.to_string());
            return;
        }
    }
    match verify(repo, id, opts, now).await {
        Ok(rep) => row.report = Some(rep),
        Err(e) => row.error = Some(e.to_string()),
    }
}

/// The newest snapshot of dataset `ds` in `repo`, if any.
async fn latest(repo: &Repository, ds: &DatasetName) -> Result<Option<(SnapshotId, Snapshot)>, RepoError> {
    let snaps = repo.all_snapshots().await?;
    Ok(snaps.into_iter().rev().find(|(_, s)| s.dataset.as_ref() == Some(ds)))
}

/// Check the newest snapshot of signed dataset `dataset` in `region` against the plan's
/// trusted keys, as a restore would, for a playbook that relies on it without restoring
/// it. Returns what was found; a snapshot whose signature does not hold is damage.
pub async fn check_latest(session: &Session<'_>, dataset: &DatasetName, region: &RegionName) -> super::Result<String> {
    let plan = session.plan();
    let Some(ds) = plan.datasets.get(dataset) else {
        return Err(super::ApplyError::BadInput(format!(
            "the plan has no dataset {dataset}"
        )));
    };
    let repo = session.repo(region)?;
    let Some((id, snap)) = latest(repo, dataset).await? else {
        return Err(super::ApplyError::BadInput(format!(
            "region {region} holds no snapshot of signed dataset {dataset} to rely on"
        )));
    };
    let trust = Trust {
        keys: trusted_keys(plan)?,
        required: ds.sign,
        allow_unsigned: false,
    };
    let verdict = gate(repo, &id, &snap, &trust).await?.map(|c| c.verdict.describe());
    Ok(format!(
        "snapshot {} of {dataset} in region {region}: {}",
        id.short(),
        verdict.unwrap_or_else(|| "no signature required".into())
    ))
}

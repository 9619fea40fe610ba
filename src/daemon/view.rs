//! The daemon's status as the API serves it and `lifeboat status` reads it.
//!
//! One set of types for both ends, so the client cannot drift from the server.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plans::PlanLoadError;
use super::schedule::{self, DatasetKey, DatasetObs};
use super::shared::{ActiveJob, Shared, lock, read};
use crate::apply::observe::unreachable;
use crate::apply::secrets::redact;
use crate::plan::Dataset;
use crate::plan::due::AnomalyObs;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub started: DateTime<Utc>,
    pub stopping: bool,
    /// Jobs running now (they hold a slot); `queued_jobs` wait for one.
    pub running_jobs: usize,
    #[serde(default)]
    pub queued_jobs: usize,
    pub plans: Vec<PlanView>,
    pub plan_errors: Vec<PlanErrorView>,
    /// One line per objective not met: `plan/dataset: why`.
    pub violations: Vec<String>,
    /// The last scheduled drill of each playbook that has a `drill_schedule`.
    #[serde(default)]
    pub drills: Vec<super::shared::DrillView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanView {
    pub name: String,
    pub file: String,
    pub loaded_at: DateTime<Utc>,
    /// The plan file is invalid now (see `plan_errors`): this is its last valid
    /// version, which keeps running until the file is fixed or removed.
    #[serde(default)]
    pub stale: bool,
    pub datasets: Vec<DatasetView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetView {
    pub dataset: String,
    pub schedule: String,
    pub rpo_seconds: u64,
    pub last_run: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub running: bool,
    pub failures: u32,
    pub last_verification: Option<DateTime<Utc>>,
    /// Some objective is not met: no region within the RPO, or a region over its RPO
    /// or lagging; each is a line of `violations` (see `problems`).
    pub violated: bool,
    /// The anomaly verdict of the newest snapshot the daemon took (score, signal,
    /// suspect); `None` until a run of this daemon judged one.
    #[serde(default)]
    pub anomaly: Option<AnomalyObs>,
    pub regions: Vec<RegionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionView {
    pub region: String,
    pub last_success: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
    pub within_rpo: bool,
    pub lagging: bool,
    /// The last backup into this region failed (it could not be opened, or an object
    /// in it is damaged or hostile); `last_error` says why. Other regions go on.
    #[serde(default)]
    pub degraded: bool,
    pub last_error: Option<String>,
    /// A short stable word for `last_error`: `unreachable`, `wrong_password`, ...
    #[serde(default)]
    pub last_error_class: Option<String>,
    /// Backups into this region that failed in a row.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// False when the last backup could not reach the region's storage.
    #[serde(default)]
    pub reachable: bool,
    /// Leases under the region's `locks/` that no holder keeps (the daemon removes those
    /// whose process on this host is gone; others stay until `lifeboat unlock`).
    #[serde(default)]
    pub stale_locks: usize,
    /// The latest scheduled verification from this region.
    #[serde(default)]
    pub verification: Option<VerificationView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerificationView {
    pub at: DateTime<Utc>,
    pub passed: bool,
    pub files_checked: u64,
    pub estimated_rto_seconds: Option<f64>,
    pub rpo_seconds: Option<i64>,
    pub error: Option<String>,
}

fn verification_view(at: DateTime<Utc>, r: &crate::apply::verify::RegionVerify) -> VerificationView {
    let mut error = r.error.clone();
    if let Some(rep) = r.report.as_ref().filter(|rep| !rep.passed) {
        let names: Vec<&str> = rep.damaged.iter().map(|d| d.0.as_str()).collect();
        error = Some(format!("damaged: {}", names.join(", ")));
    }
    VerificationView {
        at,
        passed: r.passed(),
        files_checked: r.report.as_ref().map_or(0, |rep| rep.files_checked),
        estimated_rto_seconds: r.report.as_ref().map(|rep| rep.estimated_rto_seconds),
        rpo_seconds: r.report.as_ref().map(|rep| rep.rpo_seconds),
        error,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanErrorView {
    pub file: String,
    pub at: DateTime<Utc>,
    pub errors: Vec<String>,
    pub previous_kept: bool,
}

impl From<&PlanLoadError> for PlanErrorView {
    fn from(e: &PlanLoadError) -> Self {
        Self {
            file: e.file.display().to_string(),
            at: e.at,
            errors: e.errors.iter().map(|e| redact(e)).collect(),
            previous_kept: e.previous_kept,
        }
    }
}

fn region_view(ds: &Dataset, obs: &DatasetObs, region: &str, now: DateTime<Utc>) -> RegionView {
    let o = obs.regions.get(region).cloned().unwrap_or_default();
    let age = o.last_success.map(|t| (now - t).num_seconds());
    RegionView {
        region: region.to_string(),
        last_success: o.last_success,
        age_seconds: age,
        within_rpo: age.is_some_and(|a| a <= ds.rpo.as_secs() as i64),
        lagging: schedule::region_lagging(ds, obs, region),
        verification: None,
        degraded: o.last_error.is_some(),
        last_error: o.last_error.as_deref().map(redact),
        reachable: !o.last_error_class.as_deref().is_some_and(unreachable),
        last_error_class: o.last_error_class,
        consecutive_failures: o.failures,
        stale_locks: o.stale_locks,
    }
}

fn dataset_view(key: &DatasetKey, ds: &Dataset, obs: &DatasetObs, running: bool, now: DateTime<Utc>) -> DatasetView {
    let regions: Vec<RegionView> = ds
        .regions
        .iter()
        .map(|r| region_view(ds, obs, r.as_str(), now))
        .collect();
    let mut view = DatasetView {
        dataset: key.dataset.clone(),
        schedule: ds.schedule.as_str().to_string(),
        rpo_seconds: ds.rpo.as_secs(),
        last_run: obs.last_run,
        next_run: schedule::next_run(key, ds, obs),
        running,
        failures: obs.failures,
        last_verification: obs.last_verification,
        violated: false,
        anomaly: obs.anomaly.clone(),
        regions,
    };
    view.violated = !problems(&view).is_empty();
    view
}

/// What is wrong with a dataset's objectives, one phrase each; empty when all are met.
/// The one source of `violated` (so of the metric) and of the status's `violations`.
fn problems(d: &DatasetView) -> Vec<String> {
    let mut out = Vec::new();
    if !d.regions.iter().any(|r| r.within_rpo) {
        out.push("no region holds a snapshot within the RPO".to_string());
    }
    for r in d.regions.iter().filter(|r| r.lagging || !r.within_rpo) {
        let how = if r.lagging { "lagging" } else { "over its RPO" };
        out.push(format!("region {} is {how}", r.region));
    }
    out
}

fn violations(plans: &[PlanView]) -> Vec<String> {
    let datasets = plans.iter().flat_map(|p| p.datasets.iter().map(move |d| (p, d)));
    datasets
        .flat_map(|(p, d)| {
            problems(d)
                .into_iter()
                .map(move |why| format!("{}/{}: {why}", p.name, d.dataset))
        })
        .collect()
}

/// Jobs of the plans `sees` lets through: (running, queued).
pub fn job_counts(jobs: &BTreeMap<DatasetKey, ActiveJob>, sees: impl Fn(&str) -> bool) -> (usize, usize) {
    let visible = || jobs.iter().filter(|(key, _)| sees(&key.plan));
    let running = visible().filter(|(_, j)| j.started.is_some()).count();
    (running, visible().count() - running)
}

/// The status now.
pub fn status(shared: &Shared) -> StatusView {
    let now = Utc::now();
    let plans = read(&shared.plans);
    let observed = lock(&shared.observed).clone();
    let verified = lock(&shared.verifications).clone();
    let (active, running) = {
        let jobs = lock(&shared.active);
        (jobs.keys().cloned().collect::<Vec<_>>(), job_counts(&jobs, |_| true).0)
    };
    let empty = DatasetObs::default();
    let views: Vec<PlanView> = plans
        .plans
        .values()
        .map(|p| PlanView {
            name: p.name.clone(),
            file: p.plan.file.display().to_string(),
            loaded_at: p.loaded_at,
            stale: p.stale,
            datasets: p
                .plan
                .datasets
                .values()
                .map(|ds| {
                    let key = DatasetKey::new(&p.name, ds.name.as_str());
                    let obs = observed.get(&key).unwrap_or(&empty);
                    let mut view = dataset_view(&key, ds, obs, active.contains(&key), now);
                    for r in &mut view.regions {
                        if let Some((at, row)) = verified.get(&(key.clone(), r.region.clone())) {
                            r.verification = Some(verification_view(*at, row));
                        }
                    }
                    view
                })
                .collect(),
        })
        .collect();
    StatusView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        started: shared.started,
        stopping: shared.stopping(),
        running_jobs: running,
        queued_jobs: active.len() - running,
        violations: violations(&views),
        plan_errors: plans.errors.values().map(PlanErrorView::from).collect(),
        plans: views,
        drills: lock(&shared.drills).values().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn job_counts_cover_only_the_plans_a_caller_sees() {
        let job = |started: bool| ActiveJob {
            id: None,
            reason: schedule::Reason::Manual,
            queued: Utc::now(),
            started: started.then(Utc::now),
            progress: Arc::new(Default::default()),
        };
        let jobs = BTreeMap::from([
            (DatasetKey::new("ml", "a"), job(true)),
            (DatasetKey::new("ml", "b"), job(false)),
            (DatasetKey::new("web", "a"), job(true)),
            (DatasetKey::new("web", "b"), job(true)),
            (DatasetKey::new("web", "c"), job(false)),
        ]);
        assert_eq!(job_counts(&jobs, |_| true), (3, 2));
        assert_eq!(job_counts(&jobs, |p| p == "ml"), (1, 1));
        assert_eq!(job_counts(&jobs, |p| p == "web"), (2, 1));
        assert_eq!(job_counts(&jobs, |_| false), (0, 0));
    }
}

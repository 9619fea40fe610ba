//! When each dataset needs work: pure functions of the plans, what the daemon has
//! observed, and the time, so every rule is tested with fixed clocks.
//!
//! Two rules decide. The cron schedule: a dataset is due once its next run after the
//! last run (plus a per-dataset jitter) has passed; computing only the *next* run after
//! the last one means that after downtime a missed schedule runs once, not once per
//! missed tick. And reconciliation against the objectives: a region with no snapshot,
//! one older than the RPO, or one that missed a run another region got, is due even
//! when no tick fell, with a growing back-off after failures so a dead region does not
//! turn the daemon into a busy loop.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::{Dataset, Plan};

/// One dataset of one plan; plans are named by their file stem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DatasetKey {
    pub plan: String,
    pub dataset: String,
}

impl DatasetKey {
    pub fn new(plan: &str, dataset: &str) -> Self {
        Self {
            plan: plan.to_string(),
            dataset: dataset.to_string(),
        }
    }
}

impl fmt::Display for DatasetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.plan, self.dataset)
    }
}

/// What the daemon knows of one region of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionObs {
    /// Time of the newest snapshot known to be in the region.
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// What the daemon knows of one dataset; persisted, rebuilt from repositories.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetObs {
    /// Start of the last finished job, whatever its outcome.
    pub last_run: Option<DateTime<Utc>>,
    /// Consecutive jobs that left some region failed.
    pub failures: u32,
    pub regions: BTreeMap<String, RegionObs>,
    /// Last test restore; filled once scheduled verification runs in the daemon.
    pub last_verification: Option<DateTime<Utc>>,
}

/// Why a job was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Schedule,
    NeverBackedUp,
    OverRpo,
    LaggingRegion,
    Manual,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Reason::Schedule => "schedule",
            Reason::NeverBackedUp => "never_backed_up",
            Reason::OverRpo => "over_rpo",
            Reason::LaggingRegion => "lagging_region",
            Reason::Manual => "manual",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub key: DatasetKey,
    pub reason: Reason,
    /// Back up every region even if `apply` finds it not due.
    pub force: bool,
}

/// First retry delay after a failed job; doubles per failure up to `MAX_BACKOFF`.
const BASE_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// A stable offset in `0..min(10% of interval, 30 s)` from the dataset's name, so
/// datasets sharing a schedule spread out instead of hitting one bucket at once.
pub fn jitter(key: &DatasetKey, interval: Duration) -> Duration {
    crate::plan::schedule::jitter(&key.to_string(), interval)
}

/// How long after a failed job reconciliation waits before trying again.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(10);
    (BASE_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// The newest snapshot time over the dataset's regions.
fn best_success(ds: &Dataset, obs: &DatasetObs) -> Option<DateTime<Utc>> {
    ds.regions
        .iter()
        .filter_map(|r| obs.regions.get(r.as_str()).and_then(|o| o.last_success))
        .max()
}

/// The next scheduled run (jitter included) after the last run, or the best
/// snapshot when the daemon has not run the dataset yet; `None` if never backed up.
pub fn next_run(key: &DatasetKey, ds: &Dataset, obs: &DatasetObs) -> Option<DateTime<Utc>> {
    let anchor = obs.last_run.max(best_success(ds, obs))?;
    let next = ds.schedule.next_after(anchor)?;
    let jitter = chrono::Duration::from_std(jitter(key, ds.schedule.max_interval())).unwrap_or_default();
    Some(next + jitter)
}

/// Why reconciliation wants work on this dataset now, if it does.
fn objective_reason(ds: &Dataset, obs: &DatasetObs, now: DateTime<Utc>) -> Option<Reason> {
    let rpo = chrono::Duration::from_std(ds.rpo).unwrap_or(chrono::Duration::MAX);
    let best = best_success(ds, obs);
    let mut reason = None;
    for region in &ds.regions {
        let last = obs.regions.get(region.as_str()).and_then(|o| o.last_success);
        let Some(last) = last else {
            return Some(Reason::NeverBackedUp);
        };
        if now - last > rpo {
            return Some(Reason::OverRpo);
        }
        let missed_a_run = best.is_some_and(|b| ds.schedule.next_after(last).is_some_and(|n| n <= b));
        if missed_a_run {
            reason = Some(Reason::LaggingRegion);
        }
    }
    reason
}

/// Whether a region of `ds` is behind: never backed up, or missed a run another got.
pub fn region_lagging(ds: &Dataset, obs: &DatasetObs, region: &str) -> bool {
    let best = best_success(ds, obs);
    match obs.regions.get(region).and_then(|o| o.last_success) {
        None => true,
        Some(last) => best.is_some_and(|b| ds.schedule.next_after(last).is_some_and(|n| n <= b)),
    }
}

/// The job one dataset needs at `now`, if any.
pub fn due_job(key: &DatasetKey, ds: &Dataset, obs: &DatasetObs, now: DateTime<Utc>) -> Option<Job> {
    let job = |reason| Job {
        key: key.clone(),
        reason,
        force: false,
    };
    if next_run(key, ds, obs).is_some_and(|next| next <= now) {
        return Some(job(Reason::Schedule));
    }
    let resting = obs.last_run.is_some_and(|last| {
        let wait = if obs.failures == 0 {
            BASE_BACKOFF
        } else {
            backoff(obs.failures)
        };
        now < last + chrono::Duration::from_std(wait).unwrap_or_default()
    });
    if resting {
        return None;
    }
    objective_reason(ds, obs, now).map(job)
}

/// Every job due at `now` over all plans, in plan then dataset order.
pub fn due_jobs<'a>(
    plans: impl IntoIterator<Item = (&'a str, &'a Plan)>,
    observed: &BTreeMap<DatasetKey, DatasetObs>,
    now: DateTime<Utc>,
) -> Vec<Job> {
    let empty = DatasetObs::default();
    let mut jobs = Vec::new();
    for (name, plan) in plans {
        for ds in plan.datasets.values() {
            let key = DatasetKey::new(name, ds.name.as_str());
            let obs = observed.get(&key).unwrap_or(&empty);
            jobs.extend(due_job(&key, ds, obs, now));
        }
    }
    jobs
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;

//! The daemon's side of scheduling: which dataset of which plan a job is for, and the
//! jobs `plan::due` finds due over all plans. The rule itself (schedules, objectives,
//! jitter, back-off) is `plan::due`, the same one `lifeboat plan` and `apply` use.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::plan::due::{DatasetObs, Reason, RegionObs, region_lagging};
use crate::plan::due::{Due, Observed, due};
#[cfg(test)]
use crate::plan::due::{MAX_BACKOFF, backoff};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub key: DatasetKey,
    pub reason: Reason,
    /// Back up every region even if `apply` finds it not due.
    pub force: bool,
    /// Who asked for it, when not the schedule: the audit events' actor.
    pub actor: Option<String>,
}

/// A stable offset in `0..min(10% of interval, 30 s)` from the dataset's name, so
/// datasets sharing a schedule spread out instead of hitting one bucket at once.
pub fn jitter(key: &DatasetKey, interval: Duration) -> Duration {
    crate::plan::schedule::jitter(&key.to_string(), interval)
}

/// The next scheduled run (jitter included) after the last run, or the best
/// snapshot when the daemon has not run the dataset yet; `None` if never backed up.
pub fn next_run(key: &DatasetKey, ds: &Dataset, obs: &DatasetObs) -> Option<DateTime<Utc>> {
    crate::plan::due::next_run(ds, obs, Some(&key.to_string()))
}

/// What the daemon observed of plan `name`'s datasets, as `plan::due` reads it.
fn observed_of(name: &str, plan: &Plan, observed: &BTreeMap<DatasetKey, DatasetObs>) -> Observed {
    let datasets = plan
        .datasets
        .keys()
        .filter_map(|ds| {
            let obs = observed.get(&DatasetKey::new(name, ds.as_str()))?;
            Some((ds.clone(), obs.clone()))
        })
        .collect();
    Observed {
        datasets,
        spread: Some(name.to_string()),
        ..Observed::default()
    }
}

/// Every backup due at `now` over all plans, in plan then dataset order.
pub fn due_jobs<'a>(
    plans: impl IntoIterator<Item = (&'a str, &'a Plan)>,
    observed: &BTreeMap<DatasetKey, DatasetObs>,
    now: DateTime<Utc>,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (name, plan) in plans {
        for item in due(plan, &observed_of(name, plan, observed), now) {
            if let Due::Backup { dataset, reason, .. } = item {
                jobs.push(Job {
                    key: DatasetKey::new(name, dataset.as_str()),
                    reason,
                    force: false,
                    actor: None,
                });
            }
        }
    }
    jobs
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;

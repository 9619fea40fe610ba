//! What is due now: one pure rule for a plan's backups, verification policies and
//! scheduled drills, from the plan, what has been observed, and the time. `lifeboat
//! plan` and `lifeboat apply` ask it with what the regions hold; the daemon asks it on
//! every tick with what it has observed, and each daemon job asks it again through
//! `apply`. Retention has no schedule of its own: it runs after every backup a dataset
//! gets, in each region that stored it.
//!
//! Backups follow two rules. The cron schedule: a dataset is due once its next run
//! after the last run (plus, in the daemon, a per-dataset jitter) has passed; computing
//! only the *next* run after the last one means that after downtime a missed schedule
//! runs once, not once per missed tick. And the objectives: a region with no snapshot,
//! one older than the RPO, or one that missed a run another region got, is due even
//! when no tick fell, with a growing back-off after failed runs so a dead region does
//! not turn the daemon into a busy loop. Verification policies and drills run one tick
//! after their last run, or after observation began when they never ran.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Dataset, Plan, PlaybookName, VerifyName};
use super::schedule::{Schedule, jitter};
use crate::format::names::{DatasetName, RegionName};

/// First retry delay after a failed run; doubles per failure up to `MAX_BACKOFF`.
const BASE_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between retries of a failing dataset.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// What is known of one region of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionObs {
    /// Time of the newest snapshot known to be in the region.
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Consecutive runs that failed in this region (0 after a success).
    #[serde(default)]
    pub failures: u32,
    /// A short stable word for the last error (`unreachable`, `wrong_password`, ...),
    /// for monitoring; `None` when the last run succeeded.
    #[serde(default)]
    pub last_error_class: Option<String>,
    /// Leases left under the region's `locks/` that no holder keeps, when last looked.
    #[serde(default)]
    pub stale_locks: usize,
}

/// What is known of one dataset (the daemon persists it and rebuilds it from the
/// repositories; `apply` reads it from the regions' snapshot lists).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetObs {
    /// Start of the last finished run, whatever its outcome (`None` from the CLI).
    pub last_run: Option<DateTime<Utc>>,
    /// Consecutive runs that left some region failed.
    pub failures: u32,
    pub regions: BTreeMap<String, RegionObs>,
    /// Last test restore of the dataset.
    pub last_verification: Option<DateTime<Utc>>,
    /// How the newest snapshot's anomaly signals compared with the dataset's history.
    #[serde(default)]
    pub anomaly: Option<AnomalyObs>,
}

/// The anomaly verdict of a dataset's newest snapshot, as its summary records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyObs {
    /// Snapshot id (hex) the verdict belongs to.
    pub snapshot: String,
    pub score: f64,
    /// Which share gave the score (`changed`, `deleted`, `renamed`, ...).
    pub signal: String,
    /// The score passed the dataset's threshold: the snapshot is suspect.
    pub suspect: bool,
}

impl DatasetObs {
    /// Observations of regions from the time of each one's newest snapshot.
    pub fn from_snapshots<'a>(newest: impl IntoIterator<Item = (&'a str, Option<DateTime<Utc>>)>) -> Self {
        let regions = newest
            .into_iter()
            .map(|(region, last)| {
                let obs = RegionObs {
                    last_success: last,
                    ..RegionObs::default()
                };
                (region.to_string(), obs)
            })
            .collect();
        Self {
            regions,
            ..Self::default()
        }
    }

    /// Time of the newest snapshot known to be in `region`.
    pub fn last_success(&self, region: &str) -> Option<DateTime<Utc>> {
        self.regions.get(region).and_then(|o| o.last_success)
    }
}

/// Why a backup is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Schedule,
    NeverBackedUp,
    OverRpo,
    LaggingRegion,
    /// Asked for by a person (an API trigger), not by this rule.
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

/// What is known of one plan's work.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Per dataset; a dataset or region missing here has never been backed up.
    pub datasets: BTreeMap<DatasetName, DatasetObs>,
    /// Spread datasets that share a schedule by a stable offset derived from this name
    /// (the plan's) and the dataset's, as the daemon does; `None`: due at the tick.
    pub spread: Option<String>,
    /// Last run of each verification policy.
    pub verified: BTreeMap<VerifyName, DateTime<Utc>>,
    /// Last scheduled drill of each playbook.
    pub drilled: BTreeMap<PlaybookName, DateTime<Utc>>,
    /// When observation began: a policy or drill that never ran runs one tick after
    /// it. `None`: verifications and drills are not scheduled here.
    pub since: Option<DateTime<Utc>>,
}

/// One piece of work that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Back the dataset up (one snapshot for all its regions); `regions` are those
    /// that need it: none yet, a tick since their newest snapshot, or over the RPO.
    Backup {
        dataset: DatasetName,
        reason: Reason,
        regions: Vec<RegionName>,
    },
    Verify {
        policy: VerifyName,
    },
    Drill {
        playbook: PlaybookName,
    },
}

/// Everything due in `plan` at `now`: backups in dataset order, then verification
/// policies, then drills.
pub fn due(plan: &Plan, observed: &Observed, now: DateTime<Utc>) -> Vec<Due> {
    let mut out: Vec<Due> = plan
        .datasets
        .values()
        .filter_map(|ds| backup(ds, observed, now))
        .collect();
    let Some(since) = observed.since else {
        return out;
    };
    for (name, policy) in &plan.verify {
        let last = observed.verified.get(name).copied().unwrap_or(since);
        if ticked(&policy.schedule, last, now) {
            out.push(Due::Verify { policy: name.clone() });
        }
    }
    for (name, playbook) in &plan.playbooks {
        let last = observed.drilled.get(name).copied().unwrap_or(since);
        if playbook.drill_schedule.as_ref().is_some_and(|s| ticked(s, last, now)) {
            out.push(Due::Drill { playbook: name.clone() });
        }
    }
    out
}

fn backup(ds: &Dataset, observed: &Observed, now: DateTime<Utc>) -> Option<Due> {
    let empty = DatasetObs::default();
    let obs = observed.datasets.get(&ds.name).unwrap_or(&empty);
    let spread = observed.spread.as_deref().map(|plan| format!("{plan}/{}", ds.name));
    let reason = backup_reason(ds, obs, spread.as_deref(), now)?;
    let regions = ds
        .regions
        .iter()
        .filter(|r| region_due(ds, obs.last_success(r.as_str()), now))
        .cloned()
        .collect();
    Some(Due::Backup {
        dataset: ds.name.clone(),
        reason,
        regions,
    })
}

/// Whether `schedule` fires after `last` and no later than `now`.
fn ticked(schedule: &Schedule, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    schedule.next_after(last).is_some_and(|t| t <= now)
}

fn over_rpo(ds: &Dataset, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - last > chrono::Duration::from_std(ds.rpo).unwrap_or(chrono::Duration::MAX)
}

/// Whether one region, whose newest snapshot of `ds` is from `last`, needs a backup:
/// it has none, the schedule fired since, or it is older than the RPO.
pub fn region_due(ds: &Dataset, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last.is_none_or(|t| ticked(&ds.schedule, t, now) || over_rpo(ds, t, now))
}

/// The newest snapshot time over the dataset's regions.
fn best_success(ds: &Dataset, obs: &DatasetObs) -> Option<DateTime<Utc>> {
    ds.regions.iter().filter_map(|r| obs.last_success(r.as_str())).max()
}

/// The next scheduled run after the last run, or after the best snapshot when there
/// was no run yet, plus the jitter of `spread`; `None` if never backed up.
pub fn next_run(ds: &Dataset, obs: &DatasetObs, spread: Option<&str>) -> Option<DateTime<Utc>> {
    let anchor = obs.last_run.max(best_success(ds, obs))?;
    let next = ds.schedule.next_after(anchor)?;
    let offset = spread.map_or(Duration::ZERO, |name| jitter(name, ds.schedule.max_interval()));
    Some(next + chrono::Duration::from_std(offset).unwrap_or_default())
}

/// How long after a failed run the objectives wait before asking again.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(10);
    (BASE_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// Whether the last run was so recent that the objectives wait (the schedule does not).
fn resting(obs: &DatasetObs, now: DateTime<Utc>) -> bool {
    obs.last_run.is_some_and(|last| {
        let wait = if obs.failures == 0 {
            BASE_BACKOFF
        } else {
            backoff(obs.failures)
        };
        now < last + chrono::Duration::from_std(wait).unwrap_or_default()
    })
}

/// Why `ds` needs a backup at `now`, if it does.
pub fn backup_reason(ds: &Dataset, obs: &DatasetObs, spread: Option<&str>, now: DateTime<Utc>) -> Option<Reason> {
    if next_run(ds, obs, spread).is_some_and(|next| next <= now) {
        return Some(Reason::Schedule);
    }
    if resting(obs, now) {
        return None;
    }
    objective_reason(ds, obs, now)
}

/// Why the objectives want work on this dataset now, if they do.
fn objective_reason(ds: &Dataset, obs: &DatasetObs, now: DateTime<Utc>) -> Option<Reason> {
    let mut reason = None;
    for region in &ds.regions {
        let Some(last) = obs.last_success(region.as_str()) else {
            return Some(Reason::NeverBackedUp);
        };
        if over_rpo(ds, last, now) {
            return Some(Reason::OverRpo);
        }
        if region_lagging(ds, obs, region.as_str()) {
            reason = Some(Reason::LaggingRegion);
        }
    }
    reason
}

/// Whether a region of `ds` is behind: never backed up, or missed a run another got.
pub fn region_lagging(ds: &Dataset, obs: &DatasetObs, region: &str) -> bool {
    let best = best_success(ds, obs);
    match obs.last_success(region) {
        None => true,
        Some(last) => best.is_some_and(|b| ticked(&ds.schedule, last, b)),
    }
}

#[cfg(test)]
#[path = "due_tests.rs"]
pub(crate) mod tests;

//! What the scheduler, the jobs and the API share, behind short-held locks.
//!
//! Plain `std` mutexes suffice: no lock is held across an `.await`. The only async
//! locks are the per-region ones, which a job holds for its whole run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedMutexGuard, Semaphore};

use super::DaemonConfig;
use super::auth::Tokens;
use super::guard::{Guard, Limits};
use super::plans::PlanSet;
use super::ratelimit::Rate;
use super::schedule::{DatasetKey, DatasetObs, Job, Reason};
use super::state::{Outcome, StateStore};
use crate::apply::locks::StaleLocks;
use crate::apply::observe::Progress;
use crate::apply::verify::RegionVerify;
use crate::plan::Plan;

/// Lock a mutex, recovering the data if a panicking thread poisoned it: every
/// value behind these locks is valid after any single update.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// A job that is queued or running.
#[derive(Debug, Clone)]
pub struct ActiveJob {
    /// Set once the job has a slot and a journal entry.
    pub id: Option<u64>,
    pub reason: Reason,
    pub queued: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub progress: Arc<Progress>,
}

/// Counters for `/metrics`, since this process started.
#[derive(Debug, Default)]
pub struct Counters {
    pub jobs: BTreeMap<(DatasetKey, Outcome), u64>,
    /// Sum of durations in seconds, and count, per dataset.
    pub durations: BTreeMap<DatasetKey, (f64, u64)>,
    pub bytes_added: BTreeMap<(DatasetKey, String), u64>,
}

/// One async mutex per region address: retention's prune takes a per-repository
/// lease, so two jobs pruning one repository at once would refuse each other.
#[derive(Debug, Default)]
pub struct RegionLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RegionLocks {
    /// Take the locks of `addresses` in sorted order, so jobs never deadlock.
    pub async fn acquire(&self, addresses: &[String]) -> Vec<OwnedMutexGuard<()>> {
        let mut sorted = addresses.to_vec();
        sorted.sort();
        sorted.dedup();
        let mutexes: Vec<_> = {
            let mut map = lock(&self.0);
            sorted
                .iter()
                .map(|a| map.entry(a.clone()).or_default().clone())
                .collect()
        };
        let mut guards = Vec::new();
        for m in mutexes {
            guards.push(m.lock_owned().await);
        }
        guards
    }
}

/// The latest verification of one dataset in one region.
pub type Verifications = HashMap<(DatasetKey, String), (DateTime<Utc>, RegionVerify)>;

/// The last scheduled drill of one playbook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillView {
    pub plan: String,
    pub playbook: String,
    pub at: DateTime<Utc>,
    /// `passed`, `objectives_missed`, `failed`, or `error` when it could not run.
    pub outcome: String,
    pub rto_ms: Option<u64>,
    pub report: Option<String>,
    pub error: Option<String>,
}

pub type DrillResults = BTreeMap<(String, String), DrillView>;

/// The playbooks running now, by plan and name.
pub type RunningPlaybooks = std::collections::BTreeSet<(String, String)>;

pub struct Shared {
    pub config: DaemonConfig,
    pub store: Box<dyn StateStore>,
    pub plans: RwLock<PlanSet>,
    pub observed: Mutex<BTreeMap<DatasetKey, DatasetObs>>,
    pub active: Mutex<BTreeMap<DatasetKey, ActiveJob>>,
    pub manual: Mutex<Vec<Job>>,
    pub counters: Mutex<Counters>,
    pub slots: Arc<Semaphore>,
    pub region_locks: RegionLocks,
    pub wake: Notify,
    /// Signalled whenever a job ends, for shutdown to wait on.
    pub job_ended: Notify,
    stopping: AtomicBool,
    pub started: DateTime<Utc>,
    /// Why the state was rebuilt at start, if it was.
    pub rebuilt: Option<String>,
    /// Tokens and rate limits of the API.
    pub guard: Guard,
    /// Playbooks being drilled or failed over now.
    pub running_playbooks: Mutex<RunningPlaybooks>,
    /// Latest scheduled verification per dataset and region.
    pub verifications: Mutex<Verifications>,
    /// Last scheduled drill per plan and playbook.
    pub drills: Mutex<DrillResults>,
}

impl Shared {
    pub fn new(config: DaemonConfig, store: Box<dyn StateStore>, tokens: Tokens, rebuilt: Option<String>) -> Self {
        let observed = store.datasets().unwrap_or_default();
        Self {
            slots: Arc::new(Semaphore::new(config.max_jobs.max(1))),
            guard: Guard::new(tokens, limits(&config), config.metrics_open()),
            running_playbooks: Mutex::new(Default::default()),
            config,
            store,
            plans: RwLock::new(PlanSet::default()),
            observed: Mutex::new(observed),
            active: Mutex::new(BTreeMap::new()),
            manual: Mutex::new(Vec::new()),
            counters: Mutex::new(Counters::default()),
            region_locks: RegionLocks::default(),
            wake: Notify::new(),
            job_ended: Notify::new(),
            stopping: AtomicBool::new(false),
            started: Utc::now(),
            rebuilt,
            verifications: Mutex::new(Default::default()),
            drills: Mutex::new(Default::default()),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn active_count(&self) -> usize {
        lock(&self.active).len()
    }

    /// Persist one dataset's observations; the store is a cache, so failure is logged.
    pub fn save_obs(&self, key: &DatasetKey, obs: &DatasetObs) {
        if let Err(e) = self.store.put_dataset(key, obs) {
            tracing::warn!(dataset = %key, error = %e, "cannot save dataset state");
        }
    }

    pub fn flush(&self) {
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "cannot flush the state store");
        }
    }
}

/// The API's rates, from the daemon's flags.
fn limits(config: &DaemonConfig) -> Limits {
    Limits {
        per_address: Rate::per_minute(config.address_rate_per_minute),
        per_subject: Rate::per_minute(config.subject_rate_per_minute),
        jobs_per_subject: Rate {
            per_minute: config.trigger_rate_per_minute,
            burst: config.trigger_burst,
        },
        entries: config.rate_limit_entries,
    }
}

/// Record how many stale leases each region of plan `name` holds, for every dataset
/// kept there, and log the ones just removed.
pub fn note_locks(shared: &Shared, name: &str, plan: &Plan, regions: &[StaleLocks]) {
    for r in regions {
        if r.removed > 0 {
            tracing::info!(plan = name, region = %r.region, removed = r.removed, "removed locks whose process on this host is gone");
        }
        for ds in plan
            .datasets
            .values()
            .filter(|d| d.regions.iter().any(|x| x.as_str() == r.region))
        {
            let key = DatasetKey::new(name, ds.name.as_str());
            let snapshot = {
                let mut observed = lock(&shared.observed);
                let obs = observed.entry(key.clone()).or_default();
                obs.regions.entry(r.region.clone()).or_default().stale_locks = r.stale.len();
                obs.clone()
            };
            shared.save_obs(&key, &snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn jobs_sharing_a_region_wait_for_each_other() {
        let locks = Arc::new(RegionLocks::default());
        let held = locks.acquire(&["b".into(), "a".into()]).await;
        let other = locks.clone();
        let waiter = tokio::spawn(async move { other.acquire(&["a".into()]).await.len() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "region a is held");
        assert_eq!(locks.acquire(&["c".into()]).await.len(), 1, "region c is free");
        drop(held);
        assert_eq!(waiter.await.unwrap(), 1);
    }
}

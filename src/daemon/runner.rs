//! The scheduler loop and the jobs it starts.
//!
//! The loop asks the pure `schedule::due_jobs` what is due, and starts each job as a
//! task unless its dataset already has one queued or running (no overlap). A job
//! waits for its regions' locks, then for one of the global slots, journals its
//! start, calls `apply` for its one dataset, and records the outcome. The loop wakes
//! on a timer, a trigger, a reload or a finished job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::schedule::{self, DatasetKey, Job, RegionObs};
use super::shared::{ActiveJob, Shared, lock, note_locks, read};
use super::state::{JobRecord, JobRegion, Outcome};
use crate::apply::audit::as_actor;
use crate::apply::locks;
use crate::apply::observe::{Progress, error_class, progress_interval};
use crate::apply::run::{ApplyOptions, ApplyReport, apply};
use crate::apply::session::{Regions, Session};
use crate::format::names::DatasetName;
use crate::plan::Plan;
use crate::plan::due::AnomalyObs;

/// The longest the loop sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub async fn scheduler(shared: Arc<Shared>) {
    while !shared.stopping() {
        let now = Utc::now();
        for (job, plan) in take_due(&shared, now) {
            tokio::spawn(run_job(shared.clone(), job, plan));
        }
        let sleep = until_next(&shared, now).clamp(Duration::from_millis(20), MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Due jobs whose dataset is idle, each reserved in the active set.
fn take_due(shared: &Shared, now: DateTime<Utc>) -> Vec<(Job, Arc<Plan>)> {
    let plans = read(&shared.plans);
    let manual: Vec<Job> = lock(&shared.manual).drain(..).collect();
    let mut jobs = manual.clone();
    {
        let observed = lock(&shared.observed);
        let all = plans.plans.values().map(|p| (p.name.as_str(), p.plan.as_ref()));
        jobs.extend(schedule::due_jobs(all, &observed, now));
    }
    let mut active = lock(&shared.active);
    let mut out = Vec::new();
    for job in jobs {
        let Some(plan) = plans.find(&job.key.plan, &job.key.dataset) else {
            continue;
        };
        if active.contains_key(&job.key) {
            // A trigger waits for the dataset's running job instead of being lost.
            if job.force && manual.contains(&job) {
                lock(&shared.manual).push(job);
            }
            continue;
        }
        active.insert(
            job.key.clone(),
            ActiveJob {
                id: None,
                reason: job.reason,
                queued: now,
                started: None,
                progress: Arc::new(Progress::default()),
            },
        );
        out.push((job, plan));
    }
    out
}

/// Time until the earliest scheduled run among idle datasets.
fn until_next(shared: &Shared, now: DateTime<Utc>) -> Duration {
    let plans = read(&shared.plans);
    let observed = lock(&shared.observed);
    let empty = Default::default();
    let next = plans
        .plans
        .values()
        .flat_map(|p| p.plan.datasets.values().map(move |ds| (p.name.as_str(), ds)))
        .filter_map(|(plan, ds)| {
            let key = DatasetKey::new(plan, ds.name.as_str());
            schedule::next_run(&key, ds, observed.get(&key).unwrap_or(&empty))
        })
        .min();
    next.and_then(|n| (n - now).to_std().ok()).unwrap_or(MAX_SLEEP)
}

fn region_addresses(plan: &Plan, dataset: &str) -> Vec<String> {
    let Some(ds) = plan.datasets.values().find(|d| d.name.as_str() == dataset) else {
        return Vec::new();
    };
    ds.regions
        .iter()
        .filter_map(|r| plan.regions.get(r))
        .map(|r| r.address.to_url())
        .collect()
}

async fn run_job(shared: Arc<Shared>, job: Job, plan: Arc<Plan>) {
    let _regions = shared
        .region_locks
        .acquire(&region_addresses(&plan, &job.key.dataset))
        .await;
    let Ok(_slot) = shared.slots.clone().acquire_owned().await else {
        return release(&shared, &job.key);
    };
    if shared.stopping() {
        return release(&shared, &job.key);
    }
    let record = journal_start(&shared, &job);
    let progress = lock(&shared.active)
        .get(&job.key)
        .map(|a| a.progress.clone())
        .unwrap_or_default();
    tracing::info!(job = record.id, plan = %job.key.plan, dataset = %job.key.dataset, reason = %job.reason, "job started");
    let lines = log_progress(record.id, &job.key, progress.clone());
    let result = execute(&shared, &plan, &job, record.started, progress).await;
    lines.abort();
    finish(&shared, &job, record, result);
    release(&shared, &job.key);
}

/// Log the job's progress (bytes, files, rate, ETA) once per `progress_interval()`.
fn log_progress(id: u64, key: &DatasetKey, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    let (plan, dataset) = (key.plan.clone(), key.dataset.clone());
    let started = std::time::Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(progress_interval()).await;
            let report = progress.report(started.elapsed());
            tracing::info!(job = id, plan = %plan, dataset = %dataset, progress = %report, "job progress");
        }
    })
}

fn journal_start(shared: &Shared, job: &Job) -> JobRecord {
    let id = shared
        .store
        .next_job_id()
        .unwrap_or_else(|_| Utc::now().timestamp_millis() as u64);
    let record = JobRecord {
        id,
        plan: job.key.plan.clone(),
        dataset: job.key.dataset.clone(),
        reason: job.reason,
        started: Utc::now(),
        ended: None,
        outcome: Outcome::Running,
        bytes_read: 0,
        error: None,
        regions: Vec::new(),
    };
    save_job(shared, &record);
    if let Some(a) = lock(&shared.active).get_mut(&job.key) {
        a.id = Some(id);
        a.started = Some(record.started);
    }
    record
}

fn save_job(shared: &Shared, record: &JobRecord) {
    if let Err(e) = shared.store.put_job(record) {
        tracing::warn!(job = record.id, error = %e, "cannot journal the job");
    }
    shared.flush();
}

fn release(shared: &Shared, key: &DatasetKey) {
    lock(&shared.active).remove(key);
    shared.job_ended.notify_waiters();
    shared.wake.notify_one();
}

/// Run the job's backup; work the API asked for (a region it creates included) is
/// recorded in the audit trail as the API's.
async fn execute(
    shared: &Shared,
    plan: &Plan,
    job: &Job,
    now: DateTime<Utc>,
    progress: Arc<Progress>,
) -> Result<ApplyReport, String> {
    let work = back_up(shared, plan, job, now, progress);
    match &job.actor {
        Some(actor) => as_actor(actor.clone(), work).await,
        None => work.await,
    }
}

/// Open the job's session (password resolved off the async threads, regions opened
/// once, missing ones created), remove leases whose holder is provably gone, and back
/// the dataset up through `apply`.
async fn back_up(
    shared: &Shared,
    plan: &Plan,
    job: &Job,
    now: DateTime<Utc>,
    progress: Arc<Progress>,
) -> Result<ApplyReport, String> {
    let session = Session::open(plan, Regions::Create).await.map_err(|e| e.to_string())?;
    note_locks(shared, &job.key.plan, plan, &locks::tidy(&session).await);
    let dataset = DatasetName::new(&job.key.dataset).map_err(|e| e.to_string())?;
    let opts = ApplyOptions {
        dataset: Some(dataset),
        force: job.force,
        now,
    };
    apply(&session, &opts, progress).await.map_err(|e| e.to_string())
}

fn outcome_of(report: &ApplyReport) -> Outcome {
    let all_skipped = report.datasets.iter().flat_map(|d| &d.regions).all(|r| r.skipped);
    if report.failed {
        Outcome::Failed
    } else if report.degraded {
        Outcome::Degraded
    } else if all_skipped {
        Outcome::Skipped
    } else {
        Outcome::Success
    }
}

fn job_regions(report: &ApplyReport) -> Vec<JobRegion> {
    report
        .datasets
        .iter()
        .flat_map(|d| &d.regions)
        .filter(|r| !r.skipped)
        .map(|r| JobRegion {
            region: r.region.clone(),
            snapshot: r.snapshot.map(|s| s.to_hex()),
            bytes_added: r.bytes_added,
            error: r.error.clone(),
        })
        .collect()
}

/// Record the outcome in the journal, the observations and the counters.
fn finish(shared: &Shared, job: &Job, mut record: JobRecord, result: Result<ApplyReport, String>) {
    let ended = Utc::now();
    match &result {
        Ok(report) => {
            record.outcome = outcome_of(report);
            record.regions = job_regions(report);
            record.bytes_read = report
                .datasets
                .iter()
                .flat_map(|d| &d.regions)
                .filter_map(|r| r.summary.as_ref().map(|s| s.bytes_read))
                .max()
                .unwrap_or(0);
            let errors: Vec<String> = record.regions.iter().filter_map(|r| r.error.clone()).collect();
            record.error = (!errors.is_empty()).then(|| errors.join("; "));
        }
        Err(e) => {
            record.outcome = Outcome::Failed;
            record.error = Some(e.clone());
        }
    }
    record.ended = Some(ended);
    save_job(shared, &record);
    let anomaly = result.as_ref().ok().and_then(anomaly_of);
    observe_outcome(shared, &job.key, &record, anomaly);
    count(shared, &job.key, &record, ended);
    log_outcome(&record);
}

/// The anomaly verdict of the snapshot this run stored (or found unchanged).
fn anomaly_of(report: &ApplyReport) -> Option<AnomalyObs> {
    let run = report
        .datasets
        .iter()
        .flat_map(|d| &d.regions)
        .find(|r| r.snapshot.is_some() && r.summary.as_ref().is_some_and(|s| s.anomaly.is_some()))?;
    let verdict = run.summary.as_ref()?.anomaly.as_ref()?;
    Some(AnomalyObs {
        snapshot: run.snapshot?.to_hex(),
        score: verdict.score,
        signal: verdict.signal.clone(),
        suspect: verdict.suspect,
    })
}

fn observe_outcome(shared: &Shared, key: &DatasetKey, record: &JobRecord, anomaly: Option<AnomalyObs>) {
    let mut observed = lock(&shared.observed);
    let obs = observed.entry(key.clone()).or_default();
    obs.last_run = Some(record.started);
    if anomaly.is_some() {
        obs.anomaly = anomaly;
    }
    let failed = matches!(record.outcome, Outcome::Failed | Outcome::Degraded);
    obs.failures = if failed { obs.failures.saturating_add(1) } else { 0 };
    for r in &record.regions {
        let region = obs.regions.entry(r.region.clone()).or_default();
        log_region(key, r, region);
        if r.snapshot.is_some() {
            region.last_success = Some(record.started);
        }
        region.failures = if r.error.is_some() {
            region.failures.saturating_add(1)
        } else {
            0
        };
        region.last_error_class = r.error.as_deref().map(|e| error_class(e).to_string());
        region.last_error = r.error.clone();
    }
    let snapshot = obs.clone();
    drop(observed);
    shared.save_obs(key, &snapshot);
    shared.flush();
}

fn count(shared: &Shared, key: &DatasetKey, record: &JobRecord, ended: DateTime<Utc>) {
    let mut c = lock(&shared.counters);
    *c.jobs.entry((key.clone(), record.outcome)).or_default() += 1;
    let secs = (ended - record.started).num_milliseconds() as f64 / 1000.0;
    let d = c.durations.entry(key.clone()).or_default();
    d.0 += secs;
    d.1 += 1;
    for r in &record.regions {
        *c.bytes_added.entry((key.clone(), r.region.clone())).or_default() += r.bytes_added;
    }
}

/// One line per region that failed (region, operation, class, failures in a row) and
/// one when a failing region recovers; `before` is the region's state before this run.
fn log_region(key: &DatasetKey, r: &JobRegion, before: &RegionObs) {
    match &r.error {
        Some(e) => tracing::warn!(
            plan = %key.plan,
            dataset = %key.dataset,
            region = %r.region,
            operation = "backup",
            class = error_class(e),
            failures = before.failures.saturating_add(1),
            error = %e,
            "region failed"
        ),
        None if before.failures > 0 => tracing::info!(
            plan = %key.plan,
            dataset = %key.dataset,
            region = %r.region,
            failed_runs = before.failures,
            "region recovered"
        ),
        None => {}
    }
}

/// The job's line; its regions' failures have their own lines (`log_region`), so the
/// error is repeated here only when no region carries it.
fn log_outcome(r: &JobRecord) {
    let secs = r.ended.map_or(0, |e| (e - r.started).num_milliseconds()) as f64 / 1000.0;
    let outcome = r.outcome.as_str();
    match r.outcome {
        Outcome::Success | Outcome::Skipped => {
            tracing::info!(job = r.id, plan = %r.plan, dataset = %r.dataset, outcome, seconds = secs, bytes_read = r.bytes_read, "job finished")
        }
        _ if r.regions.iter().any(|x| x.error.is_some()) => {
            tracing::warn!(job = r.id, plan = %r.plan, dataset = %r.dataset, outcome, seconds = secs, "job finished")
        }
        _ => {
            tracing::warn!(job = r.id, plan = %r.plan, dataset = %r.dataset, outcome, seconds = secs, error = r.error.as_deref().unwrap_or(""), "job finished")
        }
    }
}

/// Queue a backup of one dataset now, its audit events naming `actor`; false if the
/// dataset is unknown.
pub fn trigger(shared: &Shared, plan: &str, dataset: &str, actor: Option<String>) -> bool {
    if read(&shared.plans).find(plan, dataset).is_none() {
        return false;
    }
    lock(&shared.manual).push(Job {
        key: DatasetKey::new(plan, dataset),
        reason: schedule::Reason::Manual,
        force: true,
        actor,
    });
    shared.wake.notify_one();
    true
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::daemon::DaemonConfig;
    use crate::daemon::auth::Tokens;
    use crate::daemon::schedule::Reason;
    use crate::daemon::shared::write;
    use crate::daemon::state::SledStore;

    fn shared(dir: &Path) -> Shared {
        let plans = dir.join("plans");
        std::fs::create_dir_all(&plans).unwrap();
        let text = format!(
            "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n[regions.a]\naddress = \"{0}/a\"\n\
             [datasets.data]\npaths = [\"{0}\"]\nschedule = \"@hourly\"\nregions = [\"a\"]\nrpo = \"2h\"\n\
             retention = {{ keep_last = 5 }}\n",
            dir.display()
        );
        std::fs::write(plans.join("p.toml"), text).unwrap();
        let (store, _) = SledStore::open(&dir.join("state")).unwrap();
        let config = DaemonConfig {
            plans_dir: plans.clone(),
            state_dir: dir.join("state"),
            listen: "127.0.0.1:0".parse().unwrap(),
            tokens: None,
            tls_cert: None,
            tls_key: None,
            max_jobs: 1,
            shutdown_grace: Duration::from_secs(1),
            reload_poll: Duration::from_secs(2),
            trigger_rate_per_minute: 1,
            trigger_burst: 1,
            ..DaemonConfig::default()
        };
        let s = Shared::new(config, Box::new(store), Tokens::default(), None);
        write(&s.plans).reload(&plans, &Default::default());
        s
    }

    #[test]
    fn a_dataset_with_a_job_gets_no_second_one_and_a_trigger_waits() {
        let dir = tempfile::tempdir().unwrap();
        let s = shared(dir.path());
        let now = Utc::now();
        let first = take_due(&s, now);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0.reason, Reason::NeverBackedUp);
        assert!(take_due(&s, now).is_empty(), "no overlap");
        assert!(trigger(&s, "p", "data", Some("api:alice".into())));
        assert!(!trigger(&s, "p", "nope", None));
        assert!(take_due(&s, now).is_empty());
        assert_eq!(lock(&s.manual).len(), 1, "the trigger is kept, not lost");
        release(&s, &DatasetKey::new("p", "data"));
        let next = take_due(&s, now);
        assert_eq!(next[0].0.reason, Reason::Manual);
        assert!(next[0].0.force);
        assert_eq!(next[0].0.actor.as_deref(), Some("api:alice"));
    }
}

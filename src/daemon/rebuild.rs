//! Refresh what the daemon knows from the repositories, the source of truth.
//!
//! Run at start (which is what rebuilds a deleted or damaged state store) and for
//! each plan a reload brings in. A region's newest snapshot comes from the region
//! itself; the daemon's own journal only adds what repositories cannot say (job
//! history, when it last tried).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use super::schedule::DatasetKey;
use super::shared::{Shared, lock, note_locks};
use super::state::Outcome;
use crate::apply::observe::error_class;
use crate::apply::session::{Regions, Session};
use crate::apply::{audit, status};
use crate::plan::Plan;

/// Observe every dataset × region of one plan and merge it into the state.
pub async fn observe_plan(shared: &Shared, name: &str, plan: &Plan) {
    let session = match Session::open(plan, Regions::Existing).await {
        Ok(s) => s,
        Err(e) => return tracing::warn!(plan = name, error = %e, "cannot read the plan's repositories"),
    };
    let st = status::status(&session, Utc::now(), status::Depth::Snapshots).await;
    let tampered = audit_problems(name, &session, &shared.config.state_dir, &st).await;
    for ds in &st.datasets {
        let key = DatasetKey::new(name, &ds.dataset);
        let snapshot = {
            let mut observed = lock(&shared.observed);
            let obs = observed.entry(key.clone()).or_default();
            for r in &ds.regions {
                let region = obs.regions.entry(r.region.clone()).or_default();
                if r.reachable {
                    region.last_success = region.last_success.max(r.latest_time);
                } else {
                    region.last_error_class = r.error.as_deref().map(|e| error_class(e).to_string());
                    region.last_error = r.error.clone();
                }
                if let Some(problem) = tampered.get(&r.region) {
                    region.last_error = Some(problem.clone());
                }
            }
            obs.clone()
        };
        shared.save_obs(&key, &snapshot);
    }
    note_locks(shared, name, plan, &st.stale_locks);
    shared.flush();
    tracing::info!(
        plan = name,
        datasets = st.datasets.len(),
        "observed the plan's repositories"
    );
}

/// The first audit-trail problem of each region of the session's plan (deleted or replayed
/// snapshots, a trail that is not whole or is behind the checkpoint this daemon
/// remembers in its state directory), logged as errors.
async fn audit_problems(
    name: &str,
    session: &Session<'_>,
    state: &Path,
    status: &status::PlanStatus,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for trail in audit::review_regions(session, Some(state), status).await {
        for p in &trail.problems {
            tracing::error!(plan = name, region = %trail.region, problem = %p, "audit trail problem");
        }
        if let Some(first) = trail.problems.first() {
            out.insert(trail.region.clone(), format!("audit trail: {first}"));
        }
    }
    out
}

/// Observe every loaded plan.
pub async fn observe_all(shared: &Arc<Shared>) {
    let plans: Vec<(String, Arc<Plan>)> = super::shared::read(&shared.plans)
        .plans
        .values()
        .map(|p| (p.name.clone(), p.plan.clone()))
        .collect();
    for (name, plan) in plans {
        observe_plan(shared, &name, &plan).await;
    }
}

/// Jobs journaled as running belong to a daemon that died or stopped: mark them.
pub fn close_interrupted(shared: &Shared) {
    let Ok(jobs) = shared.store.jobs(usize::MAX) else {
        return;
    };
    for mut job in jobs.into_iter().filter(|j| j.outcome == Outcome::Running) {
        tracing::warn!(job = job.id, plan = %job.plan, dataset = %job.dataset, "job was interrupted by a stop; its dataset runs again when due");
        job.outcome = Outcome::Interrupted;
        job.error = Some("the daemon stopped while the job ran".into());
        if let Err(e) = shared.store.put_job(&job) {
            tracing::warn!(job = job.id, error = %e, "cannot journal the job");
        }
    }
    shared.flush();
}

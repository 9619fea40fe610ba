//! Scheduled verification: each plan's `[verify.*]` policies run on their own cron
//! schedules, a test restore per dataset × region, and the latest result of each is
//! kept for `/v1/status` and `/metrics`. A failure is logged as an error.
//!
//! A policy first runs one schedule tick after the daemon starts (not at once), and a
//! missed tick runs once, like backups.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::schedule::DatasetKey;
use super::shared::{Shared, lock, read};
use crate::apply::alerts::verify_and_alert;
use crate::apply::secrets;
use crate::apply::verify::VerifyRequest;
use crate::plan::{Due, Observed, Plan, VerifyName, due};

pub async fn verifier(shared: Arc<Shared>) {
    let mut last: HashMap<String, BTreeMap<VerifyName, DateTime<Utc>>> = HashMap::new();
    while !shared.stopping() {
        let now = Utc::now();
        for (plan_name, plan, policy) in due_policies(&shared, &mut last, now) {
            run_policy(&shared, &plan_name, &plan, &policy, now).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Policies `plan::due` finds due: their next tick after their last run (or the
/// daemon's start) has come.
fn due_policies(
    shared: &Shared,
    last: &mut HashMap<String, BTreeMap<VerifyName, DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> Vec<(String, Arc<Plan>, String)> {
    let plans = read(&shared.plans);
    let mut out = Vec::new();
    for p in plans.plans.values() {
        let ran = last.entry(p.name.clone()).or_default();
        let observed = Observed {
            verified: ran.clone(),
            since: Some(shared.started),
            ..Observed::default()
        };
        for item in due(&p.plan, &observed, now) {
            if let Due::Verify { policy } = item {
                out.push((p.name.clone(), p.plan.clone(), policy.to_string()));
                ran.insert(policy, now);
            }
        }
    }
    out
}

async fn run_policy(shared: &Shared, plan_name: &str, plan: &Plan, policy: &str, now: DateTime<Utc>) {
    let password = match secrets::plan_password(plan).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(plan = plan_name, policy, error = %e, "verification cannot start");
            return;
        }
    };
    let req = VerifyRequest {
        policy: Some(policy.to_string()),
        ..Default::default()
    };
    let (rows, undelivered) = verify_and_alert(plan, plan_name, &password, &req).await;
    for problem in undelivered {
        tracing::warn!(plan = plan_name, problem = %problem, "alert not delivered");
    }
    for row in rows {
        let key = DatasetKey::new(plan_name, &row.dataset);
        if row.passed() {
            tracing::info!(plan = plan_name, dataset = %row.dataset, region = %row.region, "verification passed");
        } else {
            let why = row.error.clone().unwrap_or_else(|| "damaged files".into());
            tracing::error!(plan = plan_name, dataset = %row.dataset, region = %row.region, error = %why, "verification failed");
        }
        if let Some(obs) = lock(&shared.observed).get_mut(&key) {
            obs.last_verification = Some(now);
        }
        lock(&shared.verifications).insert((key, row.region.clone()), (now, row));
    }
}

//! Scheduled verification: each plan's `[verify.*]` policies run on their own cron
//! schedules, a test restore per dataset × region, and the latest result of each is
//! kept for `/v1/status` and `/metrics`. A failure is logged as an error.
//!
//! A policy first runs at its first schedule tick after its plan was loaded (at start
//! or by a reload), not at once, and a missed tick runs once, like backups. The API
//! can also verify one dataset now (`on_demand`), under its plan's policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plans::Proof;
use super::schedule::DatasetKey;
use super::shared::{Shared, lock, read};
use crate::apply::alerts::verify_and_alert;
use crate::apply::audit::as_actor;
use crate::apply::session::{Regions, Session};
use crate::apply::verify::VerifyRequest;
use crate::plan::{Due, Plan};

pub async fn verifier(shared: Arc<Shared>) {
    let mut ran = BTreeMap::new();
    while !shared.stopping() {
        let now = Utc::now();
        let due = read(&shared.plans).due_proofs(&mut ran, Proof::Verify, now);
        for (plan_name, plan, item) in due {
            if let Due::Verify { policy } = item {
                run_policy(&shared, &plan_name, &plan, policy.as_str(), now).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

async fn run_policy(shared: &Shared, plan_name: &str, plan: &Plan, policy: &str, now: DateTime<Utc>) {
    let req = VerifyRequest {
        policy: Some(policy.to_string()),
        ..Default::default()
    };
    run(shared, plan_name, plan, &req, now).await;
}

/// Verify one dataset from each of its regions now, its audit events naming `actor`.
pub async fn on_demand(shared: &Shared, plan_name: &str, plan: &Plan, dataset: &str, actor: String) {
    let Ok(name) = crate::format::names::DatasetName::new(dataset) else {
        return;
    };
    let req = VerifyRequest {
        dataset: Some(name),
        ..Default::default()
    };
    as_actor(actor, run(shared, plan_name, plan, &req, Utc::now())).await;
}

async fn run(shared: &Shared, plan_name: &str, plan: &Plan, req: &VerifyRequest, now: DateTime<Utc>) {
    let session = match Session::open(plan, Regions::Existing).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(plan = plan_name, policy = req.policy.as_deref(), error = %e, "verification cannot start");
            return;
        }
    };
    let (rows, undelivered) = verify_and_alert(&session, plan_name, req).await;
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

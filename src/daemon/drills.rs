//! Scheduled drills: every playbook with a `drill_schedule` is rehearsed by the daemon
//! on that schedule — restore, probes and re-points for real, traffic put back — and
//! the last result of each is kept for `/v1/status` and `/metrics`. A drill that fails
//! or misses an objective fires the plan's alert hooks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plans::Proof;
use super::shared::{DrillView, Shared, lock, read};
use crate::apply::alerts::{Alert, fire};
use crate::drill::{Mode, Outcome, RunOptions, run_playbook};
use crate::plan::{Due, Plan};

pub async fn driller(shared: Arc<Shared>) {
    let mut ran = BTreeMap::new();
    while !shared.stopping() {
        let now = Utc::now();
        let due = read(&shared.plans).due_proofs(&mut ran, Proof::Drill, now);
        for (plan_name, plan, item) in due {
            if let Due::Drill { playbook } = item {
                let view = rehearse(&shared, &plan_name, &plan, playbook.as_str(), now).await;
                lock(&shared.drills).insert((plan_name, playbook.to_string()), view);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

async fn rehearse(shared: &Shared, plan_name: &str, plan: &Plan, playbook: &str, now: DateTime<Utc>) -> DrillView {
    let opts = RunOptions {
        mode: Mode::Drill,
        state_dir: shared.config.state_dir.join("drills"),
        upload: true,
    };
    let mut view = DrillView {
        plan: plan_name.to_string(),
        playbook: playbook.to_string(),
        at: now,
        outcome: "error".into(),
        rto_ms: None,
        report: None,
        error: None,
    };
    match run_playbook(plan, playbook, &opts).await {
        Ok((report, path)) => {
            view.outcome = match report.outcome {
                Outcome::Passed => "passed",
                Outcome::ObjectivesMissed => "objectives_missed",
                Outcome::Failed => "failed",
            }
            .into();
            view.rto_ms = report.rto.measured_ms;
            view.report = Some(path.display().to_string());
        }
        Err(e) => view.error = Some(crate::apply::secrets::redact(&e.to_string())),
    }
    if view.outcome == "passed" {
        tracing::info!(plan = plan_name, playbook, "scheduled drill passed");
    } else {
        tracing::error!(plan = plan_name, playbook, outcome = %view.outcome, "scheduled drill did not pass");
        let alert = Alert {
            kind: "drill".into(),
            plan: plan_name.to_string(),
            dataset: String::new(),
            region: String::new(),
            message: format!(
                "drill of playbook {playbook}: {}{}",
                view.outcome,
                view.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        };
        for problem in fire(&plan.alerts, &alert).await {
            tracing::warn!(plan = plan_name, problem = %problem, "alert not delivered");
        }
    }
    view
}

//! Scheduled drills: every playbook with a `drill_schedule` is rehearsed by the daemon
//! on that schedule — restore, probes and re-points for real, traffic put back — and
//! the last result of each is kept for `/v1/status` and `/metrics`. A drill that fails
//! or misses an objective fires the plan's alert hooks. The API starts drills and
//! failovers of one playbook here too (`start`); a playbook runs once at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plans::Proof;
use super::shared::{DrillView, Shared, lock, read};
use crate::apply::alerts::{Alert, fire};
use crate::apply::audit::as_actor;
use crate::drill::{Mode, Outcome, RunOptions, run_playbook};
use crate::plan::{Due, Plan};

pub async fn driller(shared: Arc<Shared>) {
    let mut ran = BTreeMap::new();
    while !shared.stopping() {
        let now = Utc::now();
        let due = read(&shared.plans).due_proofs(&mut ran, Proof::Drill, now);
        for (plan_name, plan, item) in due {
            if let Due::Drill { playbook } = item {
                let key = (plan_name.clone(), playbook.to_string());
                if !reserve(&shared, &key) {
                    tracing::warn!(plan = %plan_name, playbook = %playbook, "scheduled drill skipped: the playbook is running");
                    continue;
                }
                let view = rehearse(&shared, &plan_name, &plan, playbook.as_str(), Mode::Drill, now).await;
                lock(&shared.running_playbooks).remove(&key);
                lock(&shared.drills).insert(key, view);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Mark the playbook running; false when it already is.
fn reserve(shared: &Shared, key: &(String, String)) -> bool {
    lock(&shared.running_playbooks).insert(key.clone())
}

/// Start a drill or failover of one playbook now, its audit events naming `actor`;
/// false when the playbook is already running. A drill's result replaces the
/// playbook's last drill in the status.
pub fn start(
    shared: &Arc<Shared>,
    plan_name: &str,
    plan: Arc<Plan>,
    playbook: &str,
    mode: Mode,
    actor: String,
) -> bool {
    let key = (plan_name.to_string(), playbook.to_string());
    if !reserve(shared, &key) {
        return false;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let work = rehearse(&shared, &key.0, &plan, &key.1, mode, Utc::now());
        let view = as_actor(actor, work).await;
        lock(&shared.running_playbooks).remove(&key);
        if mode == Mode::Drill {
            lock(&shared.drills).insert(key, view);
        }
    });
    true
}

async fn rehearse(
    shared: &Shared,
    plan_name: &str,
    plan: &Plan,
    playbook: &str,
    mode: Mode,
    now: DateTime<Utc>,
) -> DrillView {
    let opts = RunOptions {
        mode,
        state_dir: shared.config.state_dir.join("drills"),
        upload: true,
        // A scheduled drill compares; only an operator records a new baseline.
        record_baselines: false,
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
        tracing::info!(plan = plan_name, playbook, %mode, "playbook passed");
    } else {
        tracing::error!(plan = plan_name, playbook, %mode, outcome = %view.outcome, "playbook did not pass");
        let alert = Alert {
            kind: "drill".into(),
            plan: plan_name.to_string(),
            dataset: String::new(),
            region: String::new(),
            message: format!(
                "{mode} of playbook {playbook}: {}{}",
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

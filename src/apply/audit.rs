//! The audit trail at plan level: judge every region's trail (`lifeboat plan`), record
//! drills and failovers in the regions they report to, and run work in the name of
//! whoever asked for it (the daemon's API subject).

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;

use super::regions::RegionRepo;
use super::session::Session;
use super::status::PlanStatus;
use crate::engine::audit::review::{Problem, Trail};
use crate::engine::audit::{self, RunEnd};
use crate::repo::Repository;

/// One region's trail as judged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionTrail {
    pub region: String,
    /// Events in the trail (its checkpoint's size).
    pub events: u64,
    pub problems: Vec<Problem>,
    /// Why the trail could not be read (the region is unreachable, or has no repository).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the checkpoint could not be remembered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Read and judge the trail of every region of the session's plan that `status` could read,
/// remembering checkpoints in `memory` (see `engine::audit::inspect`). A region whose
/// snapshots cannot be read is reported degraded by `status` already; its trail is
/// judged once it can be read.
pub async fn review_regions(session: &Session<'_>, memory: Option<&Path>, status: &PlanStatus) -> Vec<RegionTrail> {
    let unreadable: HashSet<&str> = (status.datasets.iter().flat_map(|d| &d.regions))
        .filter(|r| !r.reachable)
        .map(|r| r.region.as_str())
        .collect();
    let mut out = Vec::new();
    for region in session.regions() {
        if unreadable.contains(region.name.as_str()) {
            continue;
        }
        out.push(match inspect_region(region, memory).await {
            Ok((trail, warning)) => RegionTrail {
                region: region.name.to_string(),
                events: trail.checkpoint.size,
                problems: trail.problems,
                error: None,
                warning,
            },
            Err(error) => RegionTrail {
                region: region.name.to_string(),
                events: 0,
                problems: Vec::new(),
                error: Some(error),
                warning: None,
            },
        });
    }
    out
}

/// Read and judge one region's trail (`engine::audit::inspect`); the error as text.
pub(super) async fn inspect_region(
    region: &RegionRepo,
    memory: Option<&Path>,
) -> std::result::Result<(Trail, Option<String>), String> {
    match &region.repo {
        Ok(repo) => audit::inspect(repo, memory).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Run `work` with every audit event it writes naming `actor`.
pub async fn as_actor<F: Future>(actor: String, work: F) -> F::Output {
    audit::as_actor(actor, work).await
}

/// The actor of work the daemon's API asked for: `api:<role> via <daemon user@host>`
/// (API tokens carry a role, not a name).
pub fn api_actor(role: &str) -> String {
    format!("api:{role} via {}", audit::actor())
}

/// A drill or failover, as its report says it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    pub failover: bool,
    pub playbook: String,
    /// Every step passed and every objective was met.
    pub passed: bool,
    /// The steps passed but an objective was missed.
    pub objectives_missed: bool,
}

/// Record `run` in `repo`, naming its stored report `report`; returns why it could not.
pub(super) async fn record_run(repo: &Repository, run: &RunEvent, report: &str) -> Option<String> {
    let end = match (run.passed, run.objectives_missed) {
        (true, _) => RunEnd::Passed,
        (false, true) => RunEnd::ObjectivesMissed,
        (false, false) => RunEnd::Failed,
    };
    let objects = vec![format!("playbook {}", run.playbook), format!("report {report}")];
    audit::record_run(repo, run.failover, objects, end)
        .await
        .err()
        .map(|e| e.to_string())
}

/// Record in every region of the session that a drill (or failover) of `playbook`
/// began, before its first step, so a run killed on the way still leaves a trace.
/// Returns one line per region where it could not be recorded.
pub async fn record_start(session: &Session<'_>, failover: bool, playbook: &str) -> Vec<String> {
    let mut failed = Vec::new();
    for region in session.regions() {
        let result = match &region.repo {
            Ok(repo) => audit::record_run_start(repo, failover, vec![format!("playbook {playbook}")])
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            failed.push(format!("region {}: {e}", region.name));
        }
    }
    failed
}

//! One drill or failover, start to finish: preflight, a start event in every region's
//! audit trail (so a run killed half-way leaves a trace), run the steps, measure RTO and
//! RPO against the plan's objectives, keep the report in the state folder and in every
//! region (with the end event).

use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;

use super::preflight;
use super::report::{Outcome, Phase, Report, RpoResult, RtoResult, StepRecord, StepStatus};
use super::runner::{Baselines, Restored, RunResult, Runner};
use super::{DrillError, Mode, Result};
use crate::apply::audit::record_start;
use crate::apply::session::Session;
use crate::apply::{reports, secrets};
use crate::format::names::RegionName;
use crate::plan::{Plan, Playbook, PlaybookName};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: Mode,
    /// Reports go to `<state_dir>/reports/`.
    pub state_dir: PathBuf,
    /// Also store the report in the repositories under `reports/`.
    pub upload: bool,
    /// Probes with `record_baseline` record their answer as the new baseline instead
    /// of comparing it with the recorded one.
    pub record_baselines: bool,
}

/// The playbook called `name`, or a message listing the ones there are.
pub fn find_playbook<'p>(plan: &'p Plan, name: &str) -> Result<&'p Playbook> {
    PlaybookName::new(name)
        .and_then(|n| plan.playbooks.get(&n))
        .ok_or_else(|| {
            let known: Vec<&str> = plan.playbooks.keys().map(|k| k.as_str()).collect();
            DrillError::BadInput(format!(
                "plan {} has no playbook `{name}` — it has: {}",
                plan.file.display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// Run playbook `name` of `plan`; the report says how it went and where it is kept.
/// The preflight resolves the password and opens the plan's regions for the run.
pub async fn run_playbook(plan: &Plan, name: &str, opts: &RunOptions) -> Result<(Report, PathBuf)> {
    run(plan, None, name, opts).await
}

/// Run playbook `name` of the session's plan over the regions the session opened (a
/// caller that checked the password there first).
pub async fn run_playbook_in(session: Session<'_>, name: &str, opts: &RunOptions) -> Result<(Report, PathBuf)> {
    run(session.plan(), Some(session), name, opts).await
}

/// A failed preflight stops the run before its first step: the report (preflight
/// checks only) is kept, and the error names what failed.
async fn run<'p>(
    plan: &'p Plan,
    opened: Option<Session<'p>>,
    name: &str,
    opts: &RunOptions,
) -> Result<(Report, PathBuf)> {
    let playbook = find_playbook(plan, name)?;
    let started = Utc::now();
    let clock = Instant::now();
    let mut checks = preflight::run(plan, playbook, opts.mode, &reqwest::Client::new(), opened).await;
    let session = checks.session.take();
    let session = session.as_ref();
    if checks.failed().is_some() {
        let result = RunResult {
            records: checks.records(),
            recovered_in: None,
            restored: Vec::new(),
        };
        let report = build(plan, playbook, opts.mode, started, result, Vec::new());
        let (_, path) = keep(report, session, opts).await?;
        return Err(checks.error(name, opts.mode, Some(&path)));
    }
    let start_unrecorded = match session.filter(|_| opts.upload) {
        Some(session) => record_start(session, opts.mode == Mode::Failover, playbook.name.as_str()).await,
        None => Vec::new(),
    };
    let mut result = Runner::new(plan, playbook, opts.mode, session)
        .since(clock)
        .with_current(checks.current.clone())
        .with_baselines(Baselines {
            record: opts.record_baselines,
            stored: opts.upload,
        })
        .run()
        .await;
    let mut first = checks.records();
    first.extend(start_unrecorded.iter().map(|why| unrecorded(why, clock)));
    result.records.splice(0..0, first);
    let rpo = measure_rpo(plan, session, &result.restored, started).await;
    let report = build(plan, playbook, opts.mode, started, result, rpo);
    keep(report, session, opts).await
}

/// A timeline entry for a region whose audit trail did not get the run's start event.
fn unrecorded(why: &str, clock: Instant) -> StepRecord {
    StepRecord {
        phase: Phase::Preflight,
        kind: "audit".into(),
        name: "start event".into(),
        offset_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        duration_ms: 0,
        status: StepStatus::Failed,
        detail: secrets::redact(&format!("the start of the run was not recorded in {why}")),
        latency_ms: None,
        attempts: None,
        baseline: None,
    }
}

/// Save the report in the state folder and, when asked, in the regions.
async fn keep(mut report: Report, session: Option<&Session<'_>>, opts: &RunOptions) -> Result<(Report, PathBuf)> {
    let path = report.save(&opts.state_dir)?;
    if opts.upload {
        report.uploads = match session {
            Some(session) => reports::upload(session, &report.files(), &report.run_event()).await?,
            None => vec![reports::Upload {
                region: "all".into(),
                error: Some("no repository password or the regions did not open: report kept locally only".into()),
            }],
        };
        report.save(&opts.state_dir)?;
    }
    Ok((report, path))
}

fn build(
    plan: &Plan,
    playbook: &Playbook,
    mode: Mode,
    started: chrono::DateTime<Utc>,
    result: RunResult,
    rpo: Vec<RpoResult>,
) -> Report {
    let objective = playbook.rto;
    let rto = RtoResult {
        objective_s: objective.as_secs(),
        measured_ms: result
            .recovered_in
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        met: result.recovered_in.is_some_and(|d| d <= objective),
    };
    let outcome = match (result.recovered_in.is_some(), rto.met && rpo.iter().all(|r| r.met)) {
        (false, _) => Outcome::Failed,
        (true, true) => Outcome::Passed,
        (true, false) => Outcome::ObjectivesMissed,
    };
    Report {
        playbook: playbook.name.to_string(),
        mode,
        plan: plan.file.display().to_string(),
        started,
        finished: Utc::now(),
        outcome,
        rto,
        rpo,
        steps: result.records,
        uploads: Vec::new(),
    }
}

async fn measure_rpo(
    plan: &Plan,
    session: Option<&Session<'_>>,
    restored: &[Restored],
    started: chrono::DateTime<Utc>,
) -> Vec<RpoResult> {
    let mut out = Vec::new();
    for r in restored {
        let objective = plan.datasets.get(&r.dataset).map_or(0, |d| d.rpo.as_secs());
        let time = match (session, RegionName::new(&r.region)) {
            (Some(session), Ok(region)) => reports::snapshot_time(session, &region, &r.snapshot).await.ok(),
            _ => None,
        };
        let age = time.map(|t| u64::try_from((started - t).num_seconds().max(0)).unwrap_or(0));
        out.push(RpoResult {
            dataset: r.dataset.to_string(),
            region: r.region.clone(),
            snapshot: r.snapshot.clone(),
            snapshot_time: time,
            objective_s: objective,
            measured_s: age,
            met: age.is_some_and(|a| a <= objective),
        });
    }
    out
}

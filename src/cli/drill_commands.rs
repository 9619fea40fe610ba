//! `lifeboat drill` and `lifeboat failover`: run a playbook, print its report.

use std::path::Path;

use super::context::Ctx;
use super::error::{CliError, EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, Result};
use super::output::{self, note, say};
use crate::apply::session::Regions;
use crate::drill::preview;
use crate::drill::report::{StepStatus, outcome_word};
use crate::drill::run::find_playbook;
use crate::drill::stored::{Stored, stored_reports};
use crate::drill::{DrillError, Mode, Outcome, Report, RunOptions, run_playbook_in};
use crate::engine::EngineError;
use crate::format::names::RegionName;

impl From<DrillError> for CliError {
    fn from(e: DrillError) -> Self {
        match e {
            DrillError::BadInput(m) => CliError::BadInput(m),
            DrillError::Io(m) => CliError::Failed(m),
            DrillError::Apply(a) => CliError::Apply(a),
            DrillError::Preflight {
                message, damage: true, ..
            } => CliError::Engine(EngineError::Damage {
                message,
                files: Vec::new(),
            }),
            DrillError::Preflight {
                message,
                bad_input: true,
                ..
            } => CliError::BadInput(message),
            DrillError::Preflight { message, .. } => CliError::Failed(message),
        }
    }
}

impl Ctx {
    pub async fn drill(&self, plan: &Path, state: &Path, playbook: &str, record_baselines: bool) -> Result<i32> {
        self.run_playbook(plan, state, playbook, Mode::Drill, record_baselines)
            .await
    }

    pub async fn failover(&self, plan: &Path, state: &Path, playbook: &str, dry_run: bool) -> Result<i32> {
        if !dry_run {
            return self.run_playbook(plan, state, playbook, Mode::Failover, false).await;
        }
        let plan = self.load_plan(plan)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let found = find_playbook(&plan, playbook)?;
        let lines = preview::dry_run(session, found, Mode::Failover).await?;
        if self.json {
            output::json(&serde_json::json!({"playbook": playbook, "dry_run": true, "actions": lines}));
        } else {
            say!("failover of playbook {playbook} would (nothing is changed now):");
            for line in &lines {
                say!("  {line}");
            }
        }
        Ok(EXIT_OK)
    }

    /// List the reports stored in the plan's regions. Objects passed over are warned
    /// about one by one and end the command with exit 3, naming them, after the others
    /// are listed; a region that cannot be read makes it degraded (exit 4).
    pub async fn reports(&self, plan: &Path, regions: &[String]) -> Result<i32> {
        let plan = self.load_plan(plan)?;
        let names = regions
            .iter()
            .map(|r| match RegionName::new(r) {
                Ok(name) if plan.regions.contains_key(&name) => Ok(name),
                _ => Err(CliError::BadInput(format!(
                    "the plan has no region {r:?} — name one of its [regions]"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let session = self.session(&plan, Regions::Existing).await?;
        let stored = stored_reports(&session, &names).await?;
        if self.json {
            output::json(&stored);
        } else {
            print_stored(&stored);
        }
        for skipped in &stored.skipped {
            note!("warning: skipped {skipped}");
        }
        for region in &stored.unreachable {
            note!("warning: {region}");
        }
        if !stored.skipped.is_empty() {
            let objects: Vec<String> = stored
                .skipped
                .iter()
                .map(|s| format!("{} in region {}", s.object, s.region))
                .collect();
            let message = format!(
                "passed over {} (not reports Lifeboat wrote; the others are listed) — \
                 replace them from another region's copy or remove them",
                objects.join(", ")
            );
            return Err(EngineError::Damage { message, files: vec![] }.into());
        }
        Ok(if stored.unreachable.is_empty() {
            0
        } else {
            EXIT_DEGRADED
        })
    }

    /// Run a playbook for real. The password is resolved and checked against the regions
    /// first: it stores the report even when no step restores, and a wrong one must stop
    /// the run before anything changes.
    async fn run_playbook(
        &self,
        plan: &Path,
        state: &Path,
        playbook: &str,
        mode: Mode,
        record_baselines: bool,
    ) -> Result<i32> {
        let plan = self.load_plan(plan)?;
        find_playbook(&plan, playbook)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let opts = RunOptions {
            mode,
            state_dir: state.to_path_buf(),
            upload: true,
            record_baselines,
        };
        let (report, path) = run_playbook_in(session, playbook, &opts).await?;
        if self.json {
            output::json(&report);
        } else {
            print_report(&report, &path);
        }
        if !report.uploads.is_empty() && report.uploads.iter().all(|u| u.error.is_some()) {
            note!(
                "error: the {} report could not be stored in any region, so this run is not a success — \
                 it is kept in {}; copy it to a region once storage is reachable",
                report.mode,
                path.display()
            );
            return Ok(EXIT_FAILED);
        }
        Ok(match report.outcome {
            Outcome::Passed => EXIT_OK,
            Outcome::ObjectivesMissed => EXIT_DEGRADED,
            Outcome::Failed => EXIT_FAILED,
        })
    }
}

fn print_stored(stored: &Stored) {
    for r in &stored.reports {
        let rto = r
            .rto_ms
            .map_or("not reached".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        say!(
            "{} {} {} of {}: {}, RTO {rto} ({}: reports/{})",
            r.started.format("%Y-%m-%d %H:%M:%S UTC"),
            r.mode,
            r.playbook,
            r.plan,
            outcome_word(r.outcome),
            r.region,
            r.name
        );
    }
}

fn print_report(report: &Report, path: &Path) {
    for s in &report.steps {
        let mark = match s.status {
            StepStatus::Passed => "ok  ",
            StepStatus::Failed => "FAIL",
            StepStatus::Skipped => "skip",
        };
        say!(
            "{mark} {:>8.1}s  {} {} {}: {}",
            s.duration_ms as f64 / 1000.0,
            s.phase.as_str(),
            s.kind,
            s.name,
            s.detail
        );
    }
    let rto = report
        .rto
        .measured_ms
        .map_or("not reached".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    say!("RTO {rto} (objective {}s)", report.rto.objective_s);
    for r in &report.rpo {
        let age = r.measured_s.map_or("unknown".into(), |s| format!("{s}s"));
        say!("RPO of {}: {age} (objective {}s)", r.dataset, r.objective_s);
    }
    for u in &report.uploads {
        if let Some(e) = &u.error {
            note!("warning: report not stored in region {}: {e}", u.region);
        }
    }
    say!(
        "{} {}; report: {}",
        report.mode,
        outcome_word(report.outcome),
        path.display()
    );
}

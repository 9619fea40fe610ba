//! `lifeboat drill` and `lifeboat failover`: run a playbook, print its report.

use std::path::Path;

use super::CliError;
use super::commands::{Ctx, Result};
use super::output;
use crate::drill::preview::preview;
use crate::drill::report::StepStatus;
use crate::drill::run::find_playbook;
use crate::drill::{DrillError, Mode, Outcome, Report, RunOptions, run_playbook};
use crate::plan::{self, Plan};

const EXIT_DEGRADED: i32 = 4;

fn load_plan(path: &Path) -> Result<Plan> {
    let (plan, diags) = plan::validate(path);
    for d in &diags {
        eprintln!("{d}");
    }
    plan.ok_or_else(|| {
        CliError::BadInput(format!(
            "plan {} has errors, listed above — fix them and run `lifeboat validate` again",
            path.display()
        ))
    })
}

impl From<DrillError> for CliError {
    fn from(e: DrillError) -> Self {
        match e {
            DrillError::BadInput(m) => CliError::BadInput(m),
            DrillError::Io(m) => CliError::Failed(m),
            DrillError::Apply(a) => CliError::Apply(a),
        }
    }
}

impl Ctx {
    pub async fn drill(&self, plan: &Path, state: &Path, playbook: &str) -> Result<i32> {
        self.run_playbook(plan, state, playbook, Mode::Drill).await
    }

    pub async fn failover(&self, plan: &Path, state: &Path, playbook: &str, dry_run: bool) -> Result<i32> {
        if !dry_run {
            return self.run_playbook(plan, state, playbook, Mode::Failover).await;
        }
        let plan = load_plan(plan)?;
        let lines = preview(&plan, find_playbook(&plan, playbook)?, Mode::Failover)?;
        if self.json {
            output::json(&serde_json::json!({"playbook": playbook, "dry_run": true, "actions": lines}));
        } else {
            println!("failover of playbook {playbook} would (nothing is changed now):");
            for line in &lines {
                println!("  {line}");
            }
        }
        Ok(0)
    }

    async fn run_playbook(&self, plan: &Path, state: &Path, playbook: &str, mode: Mode) -> Result<i32> {
        let plan = load_plan(plan)?;
        let opts = RunOptions {
            mode,
            state_dir: state.to_path_buf(),
            upload: true,
        };
        let (report, path) = run_playbook(&plan, playbook, &opts).await?;
        if self.json {
            output::json(&report);
        } else {
            print_report(&report, &path);
        }
        Ok(match report.outcome {
            Outcome::Passed => 0,
            Outcome::ObjectivesMissed => EXIT_DEGRADED,
            Outcome::Failed => super::error::EXIT_FAILED,
        })
    }
}

fn print_report(report: &Report, path: &Path) {
    for s in &report.steps {
        let mark = match s.status {
            StepStatus::Passed => "ok  ",
            StepStatus::Failed => "FAIL",
            StepStatus::Skipped => "skip",
        };
        println!(
            "{mark} {:>8.1}s  {:?} {} {}: {}",
            s.duration_ms as f64 / 1000.0,
            s.phase,
            s.kind,
            s.name,
            s.detail
        );
    }
    let rto = report
        .rto
        .measured_ms
        .map_or("not reached".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    println!("RTO {rto} (objective {}s)", report.rto.objective_s);
    for r in &report.rpo {
        let age = r.measured_s.map_or("unknown".into(), |s| format!("{s}s"));
        println!("RPO of {}: {age} (objective {}s)", r.dataset, r.objective_s);
    }
    for u in &report.uploads {
        if let Some(e) = &u.error {
            eprintln!("warning: report not stored in region {}: {e}", u.region);
        }
    }
    println!("{} {:?}; report: {}", report.mode, report.outcome, path.display());
}

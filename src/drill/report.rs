//! The record of one drill or failover: a timeline of steps, the measured RTO and RPO
//! against the plan's objectives, and whether it passed. Written as JSON (for machines
//! and the daemon) and Markdown (for people), into the state folder and the repositories.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::drift::BaselineNote;
use super::{DrillError, Mode, Result};
use crate::apply::audit::RunEvent;
use crate::apply::reports::Upload;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step passed and every objective was met.
    Passed,
    /// Every step passed but the RTO or an RPO was missed.
    ObjectivesMissed,
    /// A step failed; the rollback ran.
    Failed,
}

/// Which part of the run a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Checks made before the first step; a failure here means nothing was changed.
    Preflight,
    /// The playbook's steps.
    Steps,
    /// Undoing re-points and the playbook's rollback steps, after a failure.
    Rollback,
    /// After a passing drill: re-pointing traffic back to the primary. (Reports written
    /// before this name said `restore`, which is still read.)
    #[serde(alias = "restore")]
    PointBack,
}

impl Phase {
    /// The phase as reports and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Steps => "steps",
            Phase::Rollback => "rollback",
            Phase::PointBack => "point back",
        }
    }
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Not run, because an earlier step failed.
    Skipped,
}

/// One step of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub phase: Phase,
    pub kind: String,
    /// The step's name, or a description made from its settings.
    pub name: String,
    /// Milliseconds from the start of the run.
    pub offset_ms: u64,
    pub duration_ms: u64,
    pub status: StepStatus,
    pub detail: String,
    /// For probes: the latency of the passing (or last) attempt, and how many were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// For probes with `record_baseline`: the baseline recorded or compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineNote>,
}

/// RTO: the time from the start until the last step passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtoResult {
    pub objective_s: u64,
    /// `None` when the steps did not all pass.
    pub measured_ms: Option<u64>,
    pub met: bool,
}

/// RPO of one restored dataset: how old the restored snapshot was when the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpoResult {
    pub dataset: String,
    pub region: String,
    pub snapshot: String,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub objective_s: u64,
    pub measured_s: Option<u64>,
    pub met: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub playbook: String,
    pub mode: Mode,
    pub plan: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: Outcome,
    pub rto: RtoResult,
    pub rpo: Vec<RpoResult>,
    pub steps: Vec<StepRecord>,
    /// Where the report was stored in the repositories.
    #[serde(default)]
    pub uploads: Vec<Upload>,
}

impl Report {
    /// The base file name: `<time>-<playbook>-<mode>`, sortable by time.
    pub fn base_name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.started.format("%Y%m%dT%H%M%S%.3fZ"),
            self.playbook,
            self.mode
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// What the regions' audit trails record of this run.
    pub fn run_event(&self) -> RunEvent {
        RunEvent {
            failover: self.mode == Mode::Failover,
            playbook: self.playbook.clone(),
            passed: self.outcome == Outcome::Passed,
            objectives_missed: self.outcome == Outcome::ObjectivesMissed,
        }
    }

    /// The two files of a report, as (name, bytes).
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let base = self.base_name();
        vec![
            (format!("{base}.json"), self.to_json()),
            (format!("{base}.md"), self.to_markdown().into_bytes()),
        ]
    }

    /// Write both files into `<state>/reports/`; returns the JSON file's path. Reports
    /// name hosts, paths and endpoints, so the folders are 0700 and the files 0600.
    pub fn save(&self, state: &Path) -> Result<PathBuf> {
        let dir = state.join("reports");
        new_private_dirs(state)
            .and_then(|()| new_private_dirs(&dir))
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| DrillError::Io(format!("cannot create the state folder {}: {e}", dir.display())))?;
        let mut json_path = dir.clone();
        for (name, data) in self.files() {
            let path = dir.join(&name);
            write_private(&path, &data).map_err(|e| DrillError::Io(format!("cannot write {}: {e}", path.display())))?;
            if name.ends_with(".json") {
                json_path = path;
            }
        }
        Ok(json_path)
    }

    pub fn to_markdown(&self) -> String {
        let mut md = format!("# {} of playbook `{}`\n\n", title(self.mode), self.playbook);
        md += &format!("- plan: `{}`\n- started: {}\n", self.plan, self.started.to_rfc3339());
        md += &format!(
            "- finished: {}\n- outcome: **{}**\n",
            self.finished.to_rfc3339(),
            outcome_word(self.outcome)
        );
        let measured = self.rto.measured_ms.map_or("not reached".into(), seconds);
        md += &format!(
            "- RTO: {measured} against an objective of {}s — {}\n",
            self.rto.objective_s,
            met(self.rto.met)
        );
        for r in &self.rpo {
            let age = r.measured_s.map_or("unknown".into(), |s| format!("{s}s"));
            md += &format!(
                "- RPO of `{}` (snapshot {} from {}): {age} against {}s — {}\n",
                r.dataset,
                short(&r.snapshot),
                r.region,
                r.objective_s,
                met(r.met)
            );
        }
        md +=
            "\n## Timeline\n\n| at | phase | step | took | result | detail |\n| --- | --- | --- | --- | --- | --- |\n";
        for s in &self.steps {
            md += &format!(
                "| +{} | {} | {} `{}` | {} | {} | {} |\n",
                seconds(s.offset_ms),
                s.phase.as_str(),
                s.kind,
                s.name.replace('|', "\\|"),
                seconds(s.duration_ms),
                s.status.as_str(),
                cell(s),
            );
        }
        if !self.uploads.is_empty() {
            md += "\n## Stored in\n\n";
            for u in &self.uploads {
                md += &format!("- {}: {}\n", u.region, u.error.as_deref().unwrap_or("ok"));
            }
        }
        md
    }
}

fn cell(s: &StepRecord) -> String {
    let mut text = s.detail.replace('|', "\\|").replace('\n', " ");
    if let (Some(l), Some(a)) = (s.latency_ms, s.attempts) {
        text = format!("{text} (latency {l} ms, {a} attempt(s))");
    }
    text
}

fn title(mode: Mode) -> &'static str {
    match mode {
        Mode::Drill => "Drill",
        Mode::Failover => "Failover",
    }
}

pub fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::ObjectivesMissed => "objectives missed",
        Outcome::Failed => "failed",
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Creates `dir` and its missing parents owner-only; an existing folder is left as is.
fn new_private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)
}

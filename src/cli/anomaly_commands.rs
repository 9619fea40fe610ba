//! `lifeboat anomalies`: list a plan's suspect snapshots, and `ack` one.

use std::path::{Path, PathBuf};

use super::args::AnomalyAction;
use super::context::Ctx;
use super::error::{CliError, EXIT_DEGRADED, EXIT_OK, Result, bad};
use super::output::{self, note, say};
use crate::apply::anomaly::{Anomalies, Anomaly, ack, list};
use crate::apply::session::Regions;
use crate::format::names::DatasetName;

impl Ctx {
    pub async fn anomalies(
        &self,
        plan: Option<PathBuf>,
        dataset: Option<&str>,
        action: Option<AnomalyAction>,
    ) -> Result<i32> {
        let Some(path) = plan else {
            return Err(CliError::BadInput(
                "`lifeboat anomalies` needs the plan — add --plan PLAN.toml".into(),
            ));
        };
        match action {
            None => self.list_anomalies(&path, dataset).await,
            Some(AnomalyAction::Ack { id }) => self.ack_anomaly(&path, &id).await,
        }
    }

    async fn list_anomalies(&self, path: &Path, dataset: Option<&str>) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let dataset = dataset.map(DatasetName::new).transpose().map_err(bad)?;
        if let Some(d) = dataset.as_ref().filter(|d| !plan.datasets.contains_key(*d)) {
            return Err(CliError::BadInput(format!(
                "plan {} has no dataset {d} — name one of its [datasets]",
                path.display()
            )));
        }
        let session = self.session(&plan, Regions::Existing).await?;
        let found = list(&session, dataset.as_ref()).await;
        if self.json {
            output::json(&found);
        } else {
            print(&found);
        }
        for problem in &found.unreadable {
            note!("warning: {problem}");
        }
        Ok(if found.unreadable.is_empty() {
            EXIT_OK
        } else {
            EXIT_DEGRADED
        })
    }

    async fn ack_anomaly(&self, path: &Path, id: &str) -> Result<i32> {
        let plan = self.load_plan(path)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let done = ack(&session, id).await?;
        if self.json {
            output::json(&done);
        } else {
            say!(
                "closed the anomaly of snapshot {} ({}); recorded in {}",
                done.anomaly.id.short(),
                done.anomaly.dataset,
                done.recorded.join(", ")
            );
        }
        for problem in &done.failed {
            note!("warning: not recorded in {problem}");
        }
        Ok(if done.failed.is_empty() { EXIT_OK } else { EXIT_DEGRADED })
    }
}

fn print(found: &Anomalies) {
    if found.anomalies.is_empty() {
        say!("no suspect snapshots");
        return;
    }
    say!(
        "{:<10} {:<16} {:<19} {:>7} {:<15} {:<10} STATE",
        "ID",
        "DATASET",
        "TIME",
        "SCORE",
        "SIGNAL",
        "PINNED"
    );
    for a in &found.anomalies {
        say!(
            "{:<10} {:<16} {:<19} {:>7.1} {:<15} {:<10} {}",
            a.id.short(),
            a.dataset,
            a.time.format("%Y-%m-%d %H:%M:%S"),
            a.score,
            a.signal,
            a.pinned.map_or_else(|| "-".into(), |p| p.short()),
            state(a)
        );
    }
}

fn state(a: &Anomaly) -> String {
    match &a.acked {
        Some(ack) => format!("acked by {} at {}", ack.by, ack.time.format("%Y-%m-%d %H:%M:%S")),
        None => "open".into(),
    }
}

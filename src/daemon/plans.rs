//! The plans the daemon runs, and reloading them without a restart.
//!
//! A reload validates every `*.toml` in the plans directory. A valid file replaces
//! its plan for the next job (running jobs keep the plan they started with, as they
//! hold their own `Arc`); an invalid one is refused with its diagnostics and the
//! previous version keeps running, so a typo never stops backups. Changes are found
//! by polling modification times, which needs no platform-specific watcher.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::{self, Plan};

/// A plan in effect, named by its file stem.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub name: String,
    pub plan: Arc<Plan>,
    pub loaded_at: DateTime<Utc>,
}

/// Why a plan file was refused at its last load.
#[derive(Debug, Clone, Serialize)]
pub struct PlanLoadError {
    pub file: PathBuf,
    pub at: DateTime<Utc>,
    /// One `file:line:col: message — fix` line per problem.
    pub errors: Vec<String>,
    /// Whether an earlier valid version of this plan is still running.
    pub previous_kept: bool,
}

/// What one reload changed, for the log.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    pub loaded: Vec<String>,
    pub refused: Vec<PlanLoadError>,
    pub removed: Vec<String>,
}

#[derive(Debug, Default)]
pub struct PlanSet {
    pub plans: BTreeMap<String, LoadedPlan>,
    pub errors: BTreeMap<PathBuf, PlanLoadError>,
    seen: BTreeMap<PathBuf, Option<SystemTime>>,
}

fn plan_name(file: &Path) -> String {
    file.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

/// The `*.toml` files in `dir` and their modification times.
fn scan(dir: &Path) -> BTreeMap<PathBuf, Option<SystemTime>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .map(|p| {
            let mtime = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, mtime)
        })
        .collect()
}

impl PlanSet {
    /// Whether any plan file was added, removed or modified since the last reload.
    pub fn changed(&self, dir: &Path) -> bool {
        scan(dir) != self.seen
    }

    /// Validate every plan file in `dir` and take the valid ones.
    pub fn reload(&mut self, dir: &Path) -> ReloadOutcome {
        self.seen = scan(dir);
        let now = Utc::now();
        let mut out = ReloadOutcome::default();
        let mut present = Vec::new();
        for (file, plan, diags) in plan::validate_dir(dir) {
            let name = plan_name(&file);
            present.push(name.clone());
            match plan {
                Some(plan) => {
                    self.errors.remove(&file);
                    let unchanged = self.plans.get(&name).is_some_and(|p| *p.plan == plan);
                    if !unchanged {
                        out.loaded.push(name.clone());
                        let loaded = LoadedPlan {
                            name: name.clone(),
                            plan: Arc::new(plan),
                            loaded_at: now,
                        };
                        self.plans.insert(name, loaded);
                    }
                }
                None => {
                    let err = PlanLoadError {
                        file: file.clone(),
                        at: now,
                        errors: diags.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect(),
                        previous_kept: self.plans.contains_key(&name),
                    };
                    out.refused.push(err.clone());
                    self.errors.insert(file, err);
                }
            }
        }
        self.plans.retain(|name, _| {
            let keep = present.contains(name);
            if !keep {
                out.removed.push(name.clone());
            }
            keep
        });
        self.errors.retain(|file, _| file.exists());
        out
    }

    /// A plan and one of its datasets, if both exist.
    pub fn find(&self, plan: &str, dataset: &str) -> Option<Arc<Plan>> {
        let p = self.plans.get(plan)?;
        p.plan
            .datasets
            .keys()
            .any(|d| d.as_str() == dataset)
            .then(|| p.plan.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
[key]
env = "LIFEBOAT_PASSWORD"
[regions.a]
address = "/tmp/lifeboat-plans-test-a"
[datasets.data]
paths = ["/tmp"]
schedule = "@hourly"
regions = ["a"]
rpo = "2h"
retention = { keep_last = 5 }
"#;

    #[test]
    fn an_invalid_plan_is_refused_and_the_previous_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(&file, GOOD).unwrap();
        let mut set = PlanSet::default();
        let first = set.reload(dir.path());
        assert_eq!(first.loaded, vec!["site".to_string()]);
        assert!(!set.changed(dir.path()));

        std::fs::write(&file, GOOD.replace("@hourly", "every hour")).unwrap();
        let second = set.reload(dir.path());
        assert_eq!(second.refused.len(), 1);
        assert!(second.refused[0].previous_kept);
        assert!(set.plans.contains_key("site"), "the old plan keeps running");
        assert!(set.errors[&file].errors[0].contains("site.toml"));

        std::fs::write(&file, GOOD).unwrap();
        set.reload(dir.path());
        assert!(set.errors.is_empty());
        assert!(set.find("site", "data").is_some());
        assert!(set.find("site", "nope").is_none());
    }

    #[test]
    fn a_removed_plan_file_stops_its_plan() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(&file, GOOD).unwrap();
        let mut set = PlanSet::default();
        set.reload(dir.path());
        std::fs::remove_file(&file).unwrap();
        assert!(set.changed(dir.path()));
        assert_eq!(set.reload(dir.path()).removed, vec!["site".to_string()]);
        assert!(set.plans.is_empty());
    }
}

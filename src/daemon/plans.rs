//! The plans the daemon runs, and reloading them without a restart.
//!
//! A reload validates every `*.toml` in the plans directory. A valid file replaces
//! its plan for the next job (running jobs keep the plan they started with, as they
//! hold their own `Arc`) and becomes the plan's last valid version, which the caller
//! keeps in the state store — unless the file writes a credential inline (a URL with a
//! token, say), since the state never holds a secret: such a plan is run, not kept. An invalid file is refused with its diagnostics and never
//! stops protection: the plan in effect keeps running, and at start (when nothing is in
//! effect yet) the last valid version from the state store is run; either way the plan
//! is flagged `stale` until its file is valid again. Only removing the file stops a
//! plan. Verifications and drills are scheduled from here too (`due_proofs`), since
//! when a plan was loaded is what their first tick counts from. Changes are found by polling modification times, which needs no
//! platform-specific watcher.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::state::StoredPlan;
use crate::plan::{self, Due, Observed, Plan, due};

/// Which proofs a loop runs: the verifier's policies or the driller's playbooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Verify,
    Drill,
}

/// A plan in effect, named by its file stem.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub name: String,
    pub plan: Arc<Plan>,
    pub loaded_at: DateTime<Utc>,
    /// Its file is invalid now: this is the last valid version, run meanwhile.
    pub stale: bool,
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

/// What one reload changed, for the log and the state store.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    pub loaded: Vec<String>,
    pub refused: Vec<PlanLoadError>,
    /// Plans whose file is gone; their last valid versions are dropped too.
    pub removed: Vec<String>,
    /// New last valid versions, to keep in the state store.
    pub valid: Vec<(String, StoredPlan)>,
    /// Valid plans that write a credential inline (a URL with a token, say): the state
    /// never holds a secret, so they are not kept, and their older versions are dropped.
    pub unkept: Vec<String>,
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
fn scan(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, Option<SystemTime>>> {
    let entries = std::fs::read_dir(dir)?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .map(|p| {
            let mtime = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, mtime)
        })
        .collect())
}

/// A plan file's plan and text, or its errors (one line each).
fn read_valid(file: &Path) -> Result<(Plan, String), Vec<String>> {
    let source =
        std::fs::read_to_string(file).map_err(|e| vec![format!("{}: cannot read the plan: {e}", file.display())])?;
    let (plan, diags) = plan::validate_source(file, &source);
    match plan {
        Some(plan) => Ok((plan, source)),
        None => Err(diags.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect()),
    }
}

impl PlanSet {
    /// Whether any plan file was added, removed or modified since the last reload.
    pub fn changed(&self, dir: &Path) -> bool {
        scan(dir).unwrap_or_default() != self.seen
    }

    /// Validate every plan file in `dir` and take the valid ones; for an invalid one,
    /// keep the plan in effect or else run its version in `last_valid`.
    pub fn reload(&mut self, dir: &Path, last_valid: &BTreeMap<String, StoredPlan>) -> ReloadOutcome {
        let now = Utc::now();
        let mut out = ReloadOutcome::default();
        let files = match scan(dir) {
            Ok(files) => files,
            Err(e) => {
                // Nothing is known to be removed: every plan keeps running.
                self.seen = BTreeMap::new();
                let errors = vec![format!("{}: cannot list the plans: {e}", dir.display())];
                self.refuse(dir, String::new(), errors, last_valid, now, &mut out);
                return out;
            }
        };
        self.seen = files.clone();
        for file in files.keys() {
            let name = plan_name(file);
            match read_valid(file) {
                Ok((plan, source)) => self.take(file, name, plan, source, now, &mut out),
                Err(errors) => self.refuse(file, name, errors, last_valid, now, &mut out),
            }
        }
        let present: Vec<String> = files.keys().map(|f| plan_name(f)).collect();
        let known = self.plans.keys().chain(last_valid.keys());
        out.removed = known.filter(|n| !present.contains(n)).cloned().collect();
        out.removed.sort();
        out.removed.dedup();
        self.plans.retain(|name, _| present.contains(name));
        self.errors.retain(|file, _| file.exists());
        out
    }

    fn take(
        &mut self,
        file: &Path,
        name: String,
        plan: Plan,
        source: String,
        now: DateTime<Utc>,
        out: &mut ReloadOutcome,
    ) {
        self.errors.remove(file);
        let current = self.plans.get(&name);
        if current.is_some_and(|p| *p.plan == plan && !p.stale) {
            return;
        }
        out.loaded.push(name.clone());
        if plan::redact::holds_credential(&source) {
            out.unkept.push(name.clone());
        } else {
            let stored = StoredPlan {
                file: file.to_path_buf(),
                source,
                loaded_at: now,
            };
            out.valid.push((name.clone(), stored));
        }
        let loaded = LoadedPlan {
            name: name.clone(),
            plan: Arc::new(plan),
            loaded_at: now,
            stale: false,
        };
        self.plans.insert(name, loaded);
    }

    fn refuse(
        &mut self,
        file: &Path,
        name: String,
        errors: Vec<String>,
        last_valid: &BTreeMap<String, StoredPlan>,
        now: DateTime<Utc>,
        out: &mut ReloadOutcome,
    ) {
        let previous_kept = match self.plans.get_mut(&name) {
            Some(current) => {
                current.stale = true;
                true
            }
            None => self.revive(&name, last_valid, out),
        };
        let err = PlanLoadError {
            file: file.to_path_buf(),
            at: now,
            errors,
            previous_kept,
        };
        out.refused.push(err.clone());
        self.errors.insert(file.to_path_buf(), err);
    }

    /// Run the last valid version of plan `name`, flagged stale, if there is one that
    /// still validates.
    fn revive(&mut self, name: &str, last_valid: &BTreeMap<String, StoredPlan>, out: &mut ReloadOutcome) -> bool {
        let Some(stored) = last_valid.get(name) else {
            return false;
        };
        let Some(plan) = plan::validate_source(&stored.file, &stored.source).0 else {
            return false;
        };
        out.loaded.push(name.to_string());
        let loaded = LoadedPlan {
            name: name.to_string(),
            plan: Arc::new(plan),
            loaded_at: Utc::now(),
            stale: true,
        };
        self.plans.insert(name.to_string(), loaded);
        true
    }

    /// The verifications or drills (`kind`) that `plan::due` finds due at `now` over
    /// the plans in effect, with their plan's name. `ran` keeps per plan when each last
    /// ran, and the ones returned are recorded there as run at `now`. One that never ran
    /// waits for its first schedule tick after its plan was loaded, at start or by a
    /// reload.
    pub fn due_proofs(
        &self,
        ran: &mut BTreeMap<String, Observed>,
        kind: Proof,
        now: DateTime<Utc>,
    ) -> Vec<(String, Arc<Plan>, Due)> {
        let mut out = Vec::new();
        for p in self.plans.values() {
            let observed = ran.entry(p.name.clone()).or_default();
            observed.since = Some(p.loaded_at);
            for item in due(&p.plan, observed, now) {
                match (&item, kind) {
                    (Due::Verify { policy }, Proof::Verify) => {
                        observed.verified.insert(policy.clone(), now);
                    }
                    (Due::Drill { playbook }, Proof::Drill) => {
                        observed.drilled.insert(playbook.clone(), now);
                    }
                    _ => continue,
                }
                out.push((p.name.clone(), p.plan.clone(), item));
            }
        }
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
    use crate::plan::due::tests::at;

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
        let first = set.reload(dir.path(), &BTreeMap::new());
        assert_eq!(first.loaded, vec!["site".to_string()]);
        assert!(!set.changed(dir.path()));

        std::fs::write(&file, GOOD.replace("@hourly", "every hour")).unwrap();
        let second = set.reload(dir.path(), &BTreeMap::new());
        assert_eq!(second.refused.len(), 1);
        assert!(second.refused[0].previous_kept);
        assert!(set.plans.contains_key("site"), "the old plan keeps running");
        assert!(set.plans["site"].stale, "flagged stale while its file is invalid");
        assert!(
            second.valid.is_empty(),
            "an invalid file is never kept as the last valid"
        );
        assert!(set.errors[&file].errors[0].contains("site.toml"));

        std::fs::write(&file, GOOD).unwrap();
        let third = set.reload(dir.path(), &BTreeMap::new());
        assert_eq!(third.loaded, vec!["site".to_string()], "fixed: loaded again");
        assert!(!set.plans["site"].stale);
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
        set.reload(dir.path(), &BTreeMap::new());
        std::fs::remove_file(&file).unwrap();
        assert!(set.changed(dir.path()));
        assert_eq!(
            set.reload(dir.path(), &BTreeMap::new()).removed,
            vec!["site".to_string()]
        );
        assert!(set.plans.is_empty());
    }

    #[test]
    fn at_start_an_invalid_file_runs_the_last_valid_version_until_the_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(&file, GOOD).unwrap();
        let first = PlanSet::default().reload(dir.path(), &BTreeMap::new());
        let kept: BTreeMap<String, StoredPlan> = first.valid.into_iter().collect();
        assert_eq!(kept["site"].source, GOOD);

        // A restart with a broken file: the stored version runs, flagged stale.
        std::fs::write(&file, GOOD.replace("@hourly", "every hour")).unwrap();
        let mut set = PlanSet::default();
        let out = set.reload(dir.path(), &kept);
        assert!(out.refused[0].previous_kept);
        assert!(set.plans["site"].stale);
        assert_eq!(set.plans["site"].plan.datasets.len(), 1);
        assert!(set.find("site", "data").is_some());
        assert!(out.removed.is_empty());

        // Without a stored version nothing runs, and the error says so.
        let mut bare = PlanSet::default();
        assert!(!bare.reload(dir.path(), &BTreeMap::new()).refused[0].previous_kept);
        assert!(bare.plans.is_empty());

        // Removing the file on purpose stops the plan and drops its stored version.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(set.reload(dir.path(), &kept).removed, vec!["site".to_string()]);
        assert!(set.plans.is_empty());
    }

    #[test]
    fn a_plan_writing_a_credential_inline_is_run_but_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let with_token = format!("{GOOD}[alerts]\nwebhook = \"https://hooks.example.com/x?token=s3cr3t-token\"\n");
        std::fs::write(dir.path().join("site.toml"), with_token).unwrap();
        let mut set = PlanSet::default();
        let out = set.reload(dir.path(), &BTreeMap::new());
        assert_eq!(out.loaded, vec!["site".to_string()], "{:?}", out.refused);
        assert_eq!(out.unkept, vec!["site".to_string()]);
        assert!(out.valid.is_empty());
    }

    fn loaded(extra: &str, loaded_at: DateTime<Utc>) -> LoadedPlan {
        LoadedPlan {
            name: "p".into(),
            plan: Arc::new(crate::plan::due::tests::plan_with("@hourly", "2h", extra)),
            loaded_at,
            stale: false,
        }
    }

    fn proofs(set: &PlanSet, ran: &mut BTreeMap<String, Observed>, kind: Proof, now: DateTime<Utc>) -> Vec<String> {
        set.due_proofs(ran, kind, now)
            .into_iter()
            .map(|(plan, _, item)| match item {
                Due::Verify { policy } => format!("{plan} verify {policy}"),
                Due::Drill { playbook } => format!("{plan} drill {playbook}"),
                Due::Backup { dataset, .. } => format!("{plan} backup {dataset}"),
            })
            .collect()
    }

    #[test]
    fn a_verification_first_runs_at_its_tick_after_its_plan_was_loaded_also_by_a_reload() {
        const OFTEN: &str = "[verify.often]\nschedule = \"@hourly\"\n";
        let mut set = PlanSet::default();
        set.plans.insert("p".into(), loaded(OFTEN, at(9, 30, 0)));
        let mut ran = BTreeMap::new();
        assert!(proofs(&set, &mut ran, Proof::Verify, at(9, 59, 59)).is_empty());
        assert!(
            proofs(&set, &mut ran, Proof::Drill, at(10, 0, 0)).is_empty(),
            "no drills here"
        );
        assert_eq!(proofs(&set, &mut ran, Proof::Verify, at(10, 0, 0)), ["p verify often"]);
        assert!(
            proofs(&set, &mut ran, Proof::Verify, at(10, 0, 1)).is_empty(),
            "recorded as run"
        );
        // A reload at 10:20 brings a second policy: it waits for 11:00 like the first.
        let both = format!("{OFTEN}[verify.fresh]\nschedule = \"@hourly\"\n");
        set.plans.insert("p".into(), loaded(&both, at(10, 20, 0)));
        assert!(proofs(&set, &mut ran, Proof::Verify, at(10, 20, 1)).is_empty());
        assert_eq!(
            proofs(&set, &mut ran, Proof::Verify, at(11, 0, 0)),
            ["p verify fresh", "p verify often"]
        );
    }
}

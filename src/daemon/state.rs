//! The daemon's local state: job history and what it has observed per dataset.
//!
//! It is a cache and a journal, never the truth: the repositories are. So a store
//! that cannot be opened because it is damaged is thrown away and rebuilt from the
//! repositories rather than repaired. sled sits behind [`StateStore`] so that another
//! embedded store (redb, say) can replace it in this one file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::schedule::{DatasetKey, DatasetObs, Reason};

/// Jobs kept in the history; older ones are dropped.
const MAX_JOBS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store in {path}: {detail}")]
    Store { path: PathBuf, detail: String },
    #[error("state store in {path} is in use by another process")]
    InUse { path: PathBuf },
}

pub type Result<T> = std::result::Result<T, StateError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Success,
    /// Some region failed, another got the snapshot.
    Degraded,
    Failed,
    /// `apply` found nothing due.
    Skipped,
    /// The daemon stopped (or was killed) while the job ran.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Success => "success",
            Outcome::Degraded => "degraded",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRegion {
    pub region: String,
    pub snapshot: Option<String>,
    pub bytes_added: u64,
    pub error: Option<String>,
}

/// One job in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub plan: String,
    pub dataset: String,
    pub reason: Reason,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    /// Bytes read from the sources (journals written before the rename call it `bytes`).
    #[serde(alias = "bytes")]
    pub bytes_read: u64,
    pub error: Option<String>,
    pub regions: Vec<JobRegion>,
}

/// The last version of a plan file that validated, kept so that a file found invalid
/// (at a reload or at start) never stops the plan: the daemon runs this one meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub file: PathBuf,
    pub source: String,
    pub loaded_at: DateTime<Utc>,
}

/// What the daemon keeps locally. Implementations flush before returning from
/// `flush`, so a killed daemon loses at most what was not yet flushed.
pub trait StateStore: Send + Sync {
    /// One more than the last job id given, also across restarts (ids never jump).
    fn next_job_id(&self) -> Result<u64>;
    fn put_job(&self, job: &JobRecord) -> Result<()>;
    /// Newest first.
    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>>;
    fn put_dataset(&self, key: &DatasetKey, obs: &DatasetObs) -> Result<()>;
    fn datasets(&self) -> Result<BTreeMap<DatasetKey, DatasetObs>>;
    fn put_plan(&self, name: &str, plan: &StoredPlan) -> Result<()>;
    fn remove_plan(&self, name: &str) -> Result<()>;
    /// The last valid version of each plan, by name.
    fn plans(&self) -> Result<BTreeMap<String, StoredPlan>>;
    fn flush(&self) -> Result<()>;
}

/// The key holding the last job id given.
const LAST_JOB_ID: &[u8] = b"last_job_id";

fn decode_id(raw: &[u8]) -> Option<u64> {
    raw.try_into().ok().map(u64::from_be_bytes)
}

/// How the store came to be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Existing,
    /// Nothing was there.
    Fresh,
    /// It was damaged and has been replaced; why.
    Replaced(String),
}

pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    jobs: sled::Tree,
    datasets: sled::Tree,
    plans: sled::Tree,
}

/// Creates the state folder owner-only (0700), or makes an existing one so: it holds
/// the job journal, reports and error texts, which name hosts, paths and endpoints.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn is_in_use(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("lock"))
}

impl SledStore {
    /// Open the store in `dir`, replacing it if it is damaged.
    pub fn open(dir: &Path) -> Result<(Self, Opened)> {
        let fresh = !dir.join("db").exists() && !dir.join("conf").exists();
        match Self::open_once(dir) {
            Ok(store) if fresh => Ok((store, Opened::Fresh)),
            Ok(store) => Ok((store, Opened::Existing)),
            Err(StateError::InUse { path }) => Err(StateError::InUse { path }),
            Err(e) => {
                let why = e.to_string();
                std::fs::remove_dir_all(dir).map_err(|io| store_err(dir, io))?;
                Ok((Self::open_once(dir)?, Opened::Replaced(why)))
            }
        }
    }

    fn open_once(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).open().map_err(|e| {
            if is_in_use(&e) {
                StateError::InUse {
                    path: dir.to_path_buf(),
                }
            } else {
                store_err(dir, e)
            }
        })?;
        let jobs = db.open_tree("jobs").map_err(|e| store_err(dir, e))?;
        let datasets = db.open_tree("datasets").map_err(|e| store_err(dir, e))?;
        let plans = db.open_tree("plans").map_err(|e| store_err(dir, e))?;
        Ok(Self {
            path: dir.to_path_buf(),
            db,
            jobs,
            datasets,
            plans,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StateError {
        store_err(&self.path, e)
    }

    fn trim_jobs(&self) -> Result<()> {
        while self.jobs.len() > MAX_JOBS {
            if self.jobs.pop_min().map_err(|e| self.err(e))?.is_none() {
                break;
            }
        }
        Ok(())
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Store {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn dataset_key(key: &DatasetKey) -> Vec<u8> {
    format!("{}\0{}", key.plan, key.dataset).into_bytes()
}

fn parse_dataset_key(raw: &[u8]) -> Option<DatasetKey> {
    let text = std::str::from_utf8(raw).ok()?;
    let (plan, dataset) = text.split_once('\0')?;
    Some(DatasetKey::new(plan, dataset))
}

impl StateStore for SledStore {
    fn next_job_id(&self) -> Result<u64> {
        // The journal's newest id counts too, for a store written before the counter.
        let newest = self.jobs.last().map_err(|e| self.err(e))?;
        let newest = newest.and_then(|(k, _)| decode_id(&k)).unwrap_or(0);
        let next = self
            .db
            .update_and_fetch(LAST_JOB_ID, |old| {
                let last = old.and_then(decode_id).unwrap_or(0).max(newest);
                Some(last.saturating_add(1).to_be_bytes().to_vec())
            })
            .map_err(|e| self.err(e))?;
        next.as_deref()
            .and_then(decode_id)
            .ok_or_else(|| self.err("the job counter is not a number"))
    }

    fn put_job(&self, job: &JobRecord) -> Result<()> {
        let value = serde_json::to_vec(job).map_err(|e| self.err(e))?;
        self.jobs.insert(job.id.to_be_bytes(), value).map_err(|e| self.err(e))?;
        self.trim_jobs()
    }

    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for item in self.jobs.iter().rev() {
            let (_, value) = item.map_err(|e| self.err(e))?;
            // A record that does not decode (an older format) is skipped, not fatal.
            if let Ok(job) = serde_json::from_slice(&value) {
                out.push(job);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn put_dataset(&self, key: &DatasetKey, obs: &DatasetObs) -> Result<()> {
        let value = serde_json::to_vec(obs).map_err(|e| self.err(e))?;
        self.datasets
            .insert(dataset_key(key), value)
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn datasets(&self) -> Result<BTreeMap<DatasetKey, DatasetObs>> {
        let mut out = BTreeMap::new();
        for item in self.datasets.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Some(key), Ok(obs)) = (parse_dataset_key(&k), serde_json::from_slice(&v)) {
                out.insert(key, obs);
            }
        }
        Ok(out)
    }

    fn put_plan(&self, name: &str, plan: &StoredPlan) -> Result<()> {
        let value = serde_json::to_vec(plan).map_err(|e| self.err(e))?;
        self.plans.insert(name, value).map(|_| ()).map_err(|e| self.err(e))
    }

    fn remove_plan(&self, name: &str) -> Result<()> {
        self.plans.remove(name).map(|_| ()).map_err(|e| self.err(e))
    }

    fn plans(&self) -> Result<BTreeMap<String, StoredPlan>> {
        let mut out = BTreeMap::new();
        for item in self.plans.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let (Ok(name), Ok(plan)) = (std::str::from_utf8(&k), serde_json::from_slice(&v)) {
                out.insert(name.to_string(), plan);
            }
        }
        Ok(out)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64) -> JobRecord {
        JobRecord {
            id,
            plan: "p".into(),
            dataset: "d".into(),
            reason: Reason::Schedule,
            started: Utc::now(),
            ended: None,
            outcome: Outcome::Running,
            bytes_read: 0,
            error: None,
            regions: Vec::new(),
        }
    }

    #[test]
    fn jobs_and_datasets_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let (store, opened) = SledStore::open(&path).unwrap();
            assert_eq!(opened, Opened::Fresh);
            let (a, b) = (store.next_job_id().unwrap(), store.next_job_id().unwrap());
            assert_eq!((a, b), (1, 2));
            store.put_job(&job(a)).unwrap();
            store.put_job(&job(b)).unwrap();
            let obs = DatasetObs {
                failures: 2,
                ..Default::default()
            };
            store.put_dataset(&DatasetKey::new("p", "d"), &obs).unwrap();
            store.flush().unwrap();
        }
        let (store, opened) = SledStore::open(&path).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(store.next_job_id().unwrap(), 3, "ids go on from the last, no jump");
        let ids: Vec<u64> = store.jobs(10).unwrap().iter().map(|j| j.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] > ids[1], "newest first");
        assert_eq!(store.datasets().unwrap()[&DatasetKey::new("p", "d")].failures, 2);
    }

    #[test]
    fn a_damaged_store_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        drop(SledStore::open(&path).unwrap());
        std::fs::write(path.join("conf"), b"\xff\xfe garbage").unwrap();
        std::fs::write(path.join("db"), vec![0xAB; 4096]).unwrap();
        let (_, opened) = SledStore::open(&path).unwrap();
        assert!(matches!(opened, Opened::Replaced(_)), "{opened:?}");
    }

    #[test]
    fn the_last_valid_plan_survives_reopening_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let plan = StoredPlan {
            file: "/etc/lifeboat/plans/site.toml".into(),
            source: "version = 1\n".into(),
            loaded_at: Utc::now(),
        };
        {
            let (store, _) = SledStore::open(&path).unwrap();
            store.put_plan("site", &plan).unwrap();
            store.flush().unwrap();
        }
        let (store, _) = SledStore::open(&path).unwrap();
        assert_eq!(store.plans().unwrap()["site"], plan);
        store.remove_plan("site").unwrap();
        assert!(store.plans().unwrap().is_empty());
    }
}

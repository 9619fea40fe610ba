//! Drill and failover reports kept in the repositories, so they survive the site.
//!
//! A report is sealed with the repository key like every other object and stored under
//! `reports/<name>` in every region that can be reached; a region that cannot be opened
//! is named in the result, never fatal. Reports also need one fact from the
//! repositories: when the restored snapshot was taken, which is what RPO is measured by.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::regions::open_regions;
use super::{ApplyError, Result};
use crate::format::names::RegionName;
use crate::plan::Plan;
use crate::repo::{Repository, SnapshotId};

/// Where reports live in a repository.
pub const PREFIX: &str = "reports/";

/// What became of one region's copy of a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    pub region: String,
    /// `None` when stored; otherwise why not.
    pub error: Option<String>,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ApplyError::BadInput(format!(
            "report name {name:?} must be letters, digits, `-`, `_` or `.`"
        )))
    }
}

async fn put(repo: &Repository, key: &str, data: &[u8]) -> std::result::Result<(), String> {
    let sealed = repo.seal(data, repo.compression());
    repo.store()
        .put(key, Bytes::from(sealed))
        .await
        .map_err(|e| e.to_string())
}

/// Store `files` (name → bytes) under `reports/` in every region of the plan.
pub async fn upload(plan: &Plan, password: &[u8], files: &[(String, Vec<u8>)]) -> Result<Vec<Upload>> {
    for (name, _) in files {
        check_name(name)?;
    }
    let mut out = Vec::new();
    for region in open_regions(plan, &[], password, false).await {
        let error = match region.repo {
            Err(e) => Some(e.to_string()),
            Ok(repo) => {
                let mut first_error = None;
                for (name, data) in files {
                    if let Err(e) = put(&repo, &format!("{PREFIX}{name}"), data).await {
                        first_error.get_or_insert(e);
                    }
                }
                first_error
            }
        };
        out.push(Upload {
            region: region.name.to_string(),
            error,
        });
    }
    Ok(out)
}

/// The names of the reports stored in `region`, oldest name first.
pub async fn list(plan: &Plan, password: &[u8], region: &RegionName) -> Result<Vec<String>> {
    let repo = open_one(plan, password, region).await?;
    let mut names: Vec<String> = repo
        .store()
        .list(PREFIX)
        .await
        .map_err(|e| region_error(region, e.to_string()))?
        .into_iter()
        .filter_map(|m| m.key.rsplit('/').next().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// One stored report's bytes, as uploaded.
pub async fn load(plan: &Plan, password: &[u8], region: &RegionName, name: &str) -> Result<Vec<u8>> {
    check_name(name)?;
    let repo = open_one(plan, password, region).await?;
    let key = format!("{PREFIX}{name}");
    let sealed = repo
        .store()
        .get(&key)
        .await
        .map_err(|e| region_error(region, e.to_string()))?;
    Ok(repo.open_sealed(&key, &sealed)?)
}

/// When snapshot `id` (full hex id) in `region` was taken.
pub async fn snapshot_time(plan: &Plan, password: &[u8], region: &RegionName, id: &str) -> Result<DateTime<Utc>> {
    let repo = open_one(plan, password, region).await?;
    let id =
        SnapshotId::from_hex(id).map_err(|e| ApplyError::BadInput(format!("snapshot id {id:?} is not valid: {e}")))?;
    Ok(repo.load_snapshot(&id).await?.time)
}

fn region_error(region: &RegionName, message: String) -> ApplyError {
    ApplyError::BadInput(format!("region {region}: {message}"))
}

async fn open_one(plan: &Plan, password: &[u8], region: &RegionName) -> Result<Repository> {
    let found = open_regions(plan, std::slice::from_ref(region), password, false).await;
    let Some(r) = found.into_iter().next() else {
        return Err(ApplyError::BadInput(format!("the plan has no region {region}")));
    };
    r.repo.map_err(|source| ApplyError::Region {
        region: region.to_string(),
        source,
    })
}

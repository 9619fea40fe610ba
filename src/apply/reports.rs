//! Drill and failover reports kept in the repositories, so they survive the site.
//!
//! A report is sealed with the repository key like every other object and stored under
//! `reports/<name>` in every region that can be reached; a region that cannot be opened
//! is named in the result, never fatal. Reports also need one fact from the
//! repositories: when the restored snapshot was taken, which is what RPO is measured by.
//!
//! Reading reports back trusts nothing about the objects found: a name that no report
//! has is passed over (the caller warns, naming it), and an object is read only within
//! the bound of one sealed value (docs/format.md §18).

use chrono::{DateTime, Utc};

use super::audit::{RunEvent, record_run};
use super::session::Session;
use super::{ApplyError, Result};
use crate::format::names::RegionName;
use crate::repo::{ReportName, SnapshotId};

/// What became of one region's copy of a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    pub region: String,
    /// `None` when stored; otherwise why not.
    pub error: Option<String>,
}

fn check_name(name: &str) -> Result<ReportName> {
    ReportName::parse(name).map_err(|e| ApplyError::BadInput(e.to_string()))
}

/// Store `files` (name → bytes) under `reports/` in every region of the plan, and
/// record `run` in each region's audit trail.
pub async fn upload(session: &Session<'_>, files: &[(String, Vec<u8>)], run: &RunEvent) -> Result<Vec<Upload>> {
    let files: Vec<(ReportName, &[u8])> = files
        .iter()
        .map(|(name, data)| Ok((check_name(name)?, data.as_slice())))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for region in session.regions() {
        let error = match &region.repo {
            Err(e) => Some(e.to_string()),
            Ok(repo) => {
                let mut first_error = None;
                for (name, data) in &files {
                    if let Err(e) = repo.save_report(name, data).await {
                        first_error.get_or_insert(e.to_string());
                    }
                }
                let report = files.first().map(|f| f.0.to_string()).unwrap_or_default();
                if let Some(e) = record_run(repo, run, &report).await {
                    first_error.get_or_insert(e);
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

/// The objects under `reports/` of one region.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Report names, oldest first.
    pub names: Vec<String>,
    /// Objects whose name no report has, as `reports/"<name>"` (quoted and escaped).
    pub strangers: Vec<String>,
}

/// The reports stored in `region`, oldest name first, and the objects there that are
/// not reports.
pub async fn list(session: &Session<'_>, region: &RegionName) -> Result<Listing> {
    let repo = session.repo(region)?;
    let found = repo
        .report_names()
        .await
        .map_err(|e| region_error(region, e.to_string()))?;
    let (names, strangers): (Vec<String>, Vec<String>) =
        found.into_iter().partition(|name| ReportName::parse(name).is_ok());
    let strangers = strangers.iter().map(|name| format!("reports/{name:?}")).collect();
    Ok(Listing { names, strangers })
}

/// One stored report's bytes, as uploaded.
pub async fn load(session: &Session<'_>, region: &RegionName, name: &str) -> Result<Vec<u8>> {
    let name = check_name(name)?;
    let repo = session.repo(region)?;
    repo.load_report(&name).await.map_err(|e| match e {
        crate::repo::RepoError::Storage(e) => region_error(region, e.to_string()),
        other => other.into(),
    })
}

/// When snapshot `id` (full hex id) in `region` was taken.
pub async fn snapshot_time(session: &Session<'_>, region: &RegionName, id: &str) -> Result<DateTime<Utc>> {
    let repo = session.repo(region)?;
    let id =
        SnapshotId::from_hex(id).map_err(|e| ApplyError::BadInput(format!("snapshot id {id:?} is not valid: {e}")))?;
    Ok(repo.load_snapshot(&id).await?.time)
}

fn region_error(region: &RegionName, message: String) -> ApplyError {
    ApplyError::BadInput(format!("region {region}: {message}"))
}

//! Verification of one repository without a plan (`lifeboat verify --repo R
//! --trusted KEY.pub`): for someone who holds the repository password and the public
//! keys they trust, but not the plan that made the backups.
//!
//! Every snapshot (of one dataset, when asked) has its signature checked against the
//! given keys, as restore checks it: with keys given, a snapshot whose manifest is
//! missing, signed by another key or does not match is refused, unless
//! `allow_unsigned` (the verdict is still reported). Then the newest accepted snapshot
//! of each dataset is test-restored and compared file by file, as `verify --plan` does.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Result;
use crate::engine::manifest::{Trust, Verdict, signature_of};
use crate::engine::verify::{VerifyOptions, VerifyReport, verify};
use crate::format::names::DatasetName;
use crate::repo::{Index, Repository, Snapshot, SnapshotId};

/// What was asked of the repository.
#[derive(Debug, Clone)]
pub struct RepoVerifyRequest {
    /// Only this dataset's snapshots.
    pub dataset: Option<DatasetName>,
    /// The keys, required when any are given; `allow_unsigned` accepts anyway.
    pub trust: Trust,
    pub options: VerifyOptions,
    pub now: DateTime<Utc>,
}

/// One snapshot's signature as checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotSignature {
    pub snapshot: SnapshotId,
    pub dataset: Option<String>,
    pub time: DateTime<Utc>,
    /// `None` when no key was given to check with.
    pub signature: Option<Verdict>,
    /// Refused: its signature does not hold under the given keys.
    pub refused: bool,
    /// Why it could not be checked (its trees or manifest could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The test restore of one dataset's newest accepted snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetRestore {
    pub dataset: Option<String>,
    pub report: Option<VerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepoVerify {
    pub snapshots: Vec<SnapshotSignature>,
    pub restores: Vec<DatasetRestore>,
}

impl RepoVerify {
    pub fn refused(&self) -> bool {
        self.snapshots.iter().any(|s| s.refused)
    }

    /// A restored file did not come back intact, or a snapshot could not be read.
    pub fn damaged(&self) -> bool {
        let bad_restore = self
            .restores
            .iter()
            .any(|r| r.report.as_ref().is_some_and(|rep| !rep.passed));
        bad_restore || self.snapshots.iter().any(|s| s.error.is_some())
    }

    /// A test restore could not be made.
    pub fn incomplete(&self) -> bool {
        self.restores.iter().any(|r| r.error.is_some())
    }
}

/// Check every selected snapshot's signature, then test-restore each dataset's newest
/// accepted one.
pub async fn verify_repo(repo: &Repository, req: &RepoVerifyRequest) -> Result<RepoVerify> {
    let mut out = RepoVerify::default();
    let mut newest: BTreeMap<Option<DatasetName>, SnapshotId> = BTreeMap::new();
    let index = repo.load_index().await?;
    for (id, snap) in repo.snapshots().await? {
        if req.dataset.is_some() && snap.dataset != req.dataset {
            continue;
        }
        let checked = check_one(repo, &index, (&id, &snap), &req.trust).await;
        if !checked.refused && checked.error.is_none() {
            newest.insert(snap.dataset.clone(), id);
        }
        out.snapshots.push(checked);
    }
    for (dataset, id) in newest {
        let (report, error) = match verify(repo, &id, &req.options, req.now).await {
            Ok(report) => (Some(report), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let dataset = dataset.map(|d| d.to_string());
        out.restores.push(DatasetRestore { dataset, report, error });
    }
    Ok(out)
}

async fn check_one(
    repo: &Repository,
    index: &Index,
    (id, snap): (&SnapshotId, &Snapshot),
    trust: &Trust,
) -> SnapshotSignature {
    let mut row = SnapshotSignature {
        snapshot: *id,
        dataset: snap.dataset.as_ref().map(|d| d.to_string()),
        time: snap.time,
        signature: None,
        refused: false,
        error: None,
    };
    match signature_of(repo, Some(index), id, snap, &trust.keys).await {
        Ok(verdict) => {
            row.refused = trust.required && !verdict.trusted() && !trust.allow_unsigned;
            row.signature = Some(verdict);
        }
        Err(e) => row.error = Some(e.to_string()),
    }
    row
}

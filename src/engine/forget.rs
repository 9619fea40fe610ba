//! Forget: remove snapshot manifests. Their data stays until `prune` proves it unused.

use super::Result;
use crate::format::ids::SnapshotId;
use crate::repo::Repository;

/// Delete the given snapshots; returns how many were removed.
pub async fn forget(repo: &Repository, ids: &[SnapshotId]) -> Result<usize> {
    for id in ids {
        repo.delete_snapshot(id).await?;
    }
    Ok(ids.len())
}

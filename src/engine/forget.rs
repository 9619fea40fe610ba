//! Forget: remove snapshot manifests. Their data stays until `prune` proves it unused.

use super::{Result, audit};
use crate::format::audit::{Action, Record};
use crate::format::ids::SnapshotId;
use crate::repo::Repository;

/// Delete the given snapshots; returns how many were removed. Nothing to forget
/// writes nothing. The event is written first: a snapshot gone without it would be reported as
/// deleted outside Lifeboat.
pub async fn forget(repo: &Repository, ids: &[SnapshotId]) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    audit::append(
        repo,
        Record {
            removed: ids.to_vec(),
            ..audit::event(Action::Forget)
        },
    )
    .await?;
    for id in ids {
        repo.delete_snapshot(id).await?;
    }
    Ok(ids.len())
}

//! Sync: bring a lagging replica up to date by copying objects byte for byte.
//!
//! Replicas share their master key, so the packs and snapshots a region missed can be
//! copied from a healthy one without decrypting or re-chunking anything. Every copied
//! object is checked against its name (the hash of its bytes) before it is written,
//! so damage in the source is never replicated. Order as in a backup: packs, then an
//! index for them, then the snapshots.

use std::collections::HashSet;

use chrono::Utc;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::immutable::{keep_packs_locked, locks_not_extended};
use super::{EngineError, Result, audit};
use crate::format::audit::{Action, Record};
use crate::format::ids::{BlobId, PackId, SnapshotId};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::names::DatasetName;
use crate::repo::lock::LeaseKind;
use crate::repo::{Index, RepoError, Repository};

const COPIES: usize = 4;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub snapshots: usize,
    pub packs: usize,
    pub bytes: u64,
}

/// Copy every snapshot of `src` (of `dataset`, when given) that `dst` lacks.
pub async fn sync(src: &Repository, dst: &Repository, dataset: Option<&DatasetName>) -> Result<SyncReport> {
    if !dst.is_replica_of(src) {
        return Err(EngineError::BadInput(format!(
            "{} is not a replica of {} (different master key) — use `lifeboat copy`, which re-encrypts",
            dst.address(),
            src.address()
        )));
    }
    let lease = dst.lease(LeaseKind::Backup, "sync").await?;
    let result = copy_missing(src, dst, dataset).await;
    let _ = lease.release().await;
    result
}

async fn missing_snapshots(
    src: &Repository,
    dst: &Repository,
    dataset: Option<&DatasetName>,
) -> Result<Vec<SnapshotId>> {
    let have: HashSet<SnapshotId> = dst.snapshot_ids().await?.into_iter().collect();
    let mut out = Vec::new();
    for (id, snap) in src.snapshots().await? {
        if !have.contains(&id) && dataset.is_none_or(|d| snap.dataset.as_ref() == Some(d)) {
            out.push(id);
        }
    }
    Ok(out)
}

async fn copy_missing(src: &Repository, dst: &Repository, dataset: Option<&DatasetName>) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let missing = missing_snapshots(src, dst, dataset).await?;
    if missing.is_empty() {
        return Ok(report);
    }
    let started = Utc::now();
    let src_index = src.load_index().await?;
    let dst_index = dst.load_index().await?;
    let packs = packs_needed(src, &src_index, &dst_index, &missing).await?;
    let by_pack = src_index.by_pack();
    let copied: Vec<(PackId, u64)> = stream::iter(packs)
        .map(|id| async move { src.copy_pack_to(dst, &id).await.map(|n| (id, n)) })
        .buffer_unordered(COPIES)
        .try_collect()
        .await?;
    report.packs = copied.len();
    report.bytes = copied.iter().map(|c| c.1).sum();
    if !copied.is_empty() {
        let file = IndexFile {
            supersedes: Vec::new(),
            packs: copied
                .iter()
                .map(|(id, _)| IndexedPack {
                    id: *id,
                    blobs: by_pack.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        };
        dst.save_index(&file).await?;
    }
    for id in &missing {
        report.bytes += src.copy_snapshot_to(dst, id).await?;
        report.snapshots += 1;
    }
    let from = vec![format!("from {}", src.address())];
    audit::append(
        dst,
        Record {
            written: missing,
            objects: from,
            ..audit::event(Action::Sync)
        },
    )
    .await?;
    let uploaded: HashSet<PackId> = copied.iter().map(|c| c.0).collect();
    // The snapshots copied may use packs this region already had; their locks must
    // cover the region's retention from now, as after a backup.
    keep_packs_locked(dst, dst_index.pack_ids(), &uploaded, started, Utc::now())
        .await
        .map_err(locks_not_extended)?;
    Ok(report)
}

/// How many bytes of packs a sync from `src` would copy into the region whose index is
/// `dst_index` to give it the snapshots `missing`, leaving out packs already in
/// `counted` (which gains the packs counted here). Pack headers are not counted.
pub async fn bytes_needed(
    src: &Repository,
    src_index: &Index,
    dst_index: &Index,
    missing: &[SnapshotId],
    counted: &mut HashSet<PackId>,
) -> Result<u64> {
    let packs = packs_needed(src, src_index, dst_index, missing).await?;
    let new: HashSet<PackId> = packs.into_iter().filter(|p| counted.insert(*p)).collect();
    Ok(src_index
        .iter()
        .filter(|(_, loc)| new.contains(&src_index.pack_id(loc.pack)))
        .map(|(_, loc)| u64::from(loc.length))
        .sum())
}

/// Packs of `src` holding blobs that the missing snapshots use and `dst` lacks.
async fn packs_needed(
    src: &Repository,
    src_index: &Index,
    dst_index: &Index,
    missing: &[SnapshotId],
) -> Result<Vec<PackId>> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut packs: HashSet<PackId> = HashSet::new();
    let need = |id: &BlobId, packs: &mut HashSet<PackId>| -> Result<()> {
        if dst_index.contains(id) {
            return Ok(());
        }
        let loc = src_index.get(id).ok_or_else(|| RepoError::MissingBlob(id.to_hex()))?;
        packs.insert(src_index.pack_id(loc.pack));
        Ok(())
    };
    for snap_id in missing {
        let snap = src.load_snapshot(snap_id).await?;
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !seen.insert(tree_id) {
                continue;
            }
            need(&tree_id, &mut packs)?;
            for node in src.load_tree(src_index, &tree_id).await?.nodes {
                stack.extend(node.subtree);
                for blob in &node.content {
                    if seen.insert(*blob) {
                        need(blob, &mut packs)?;
                    }
                }
            }
        }
    }
    Ok(packs.into_iter().collect())
}

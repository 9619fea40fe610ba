//! Copy snapshots between repositories that do not share a key, re-encrypting.
//!
//! Blob ids are keyed with each repository's own id key, so every blob gets a new
//! id in the destination and every tree is rewritten bottom-up with the new ids.
//! Chunk boundaries are kept as they are (no re-chunking). Each blob is verified in
//! the source before it is sealed for the destination. A signed snapshot's copy gets
//! a manifest that holds under the new id (`manifest_copy`), written before it.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};

use super::immutable::{keep_packs_locked, locks_not_extended};
use super::manifest_copy::{Carried, CopySigning, prepare, seal_for_copy};
use super::{Result, audit};
use crate::format::audit::{Action, Record};
use crate::format::ids::{BlobId, PackId, SnapshotId};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::repo::lock::LeaseKind;
use crate::repo::packer::PackBuilder;
use crate::repo::{Index, Repository};

/// Blobs read ahead of the one being re-sealed (at most 8 MiB each).
const READ_AHEAD: usize = 8;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    /// (source id, destination id) of each copied snapshot.
    pub snapshots: Vec<(SnapshotId, SnapshotId)>,
    /// Snapshots the destination already had (same time, host, paths, dataset).
    pub skipped: usize,
    /// Copies (destination ids) whose manifest was signed anew with the given key.
    pub resigned: Vec<SnapshotId>,
    /// Copies (destination ids) that carry their original's signature.
    pub carried: Vec<SnapshotId>,
    pub blobs: u64,
    pub bytes: u64,
}

struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    src_index: &'a Index,
    dst_index: Index,
    added: HashSet<BlobId>,
    trees: HashMap<BlobId, BlobId>,
    builder: PackBuilder,
    stored: Vec<IndexedPack>,
    /// Every pack written so far, indexed or not.
    uploaded: HashSet<PackId>,
    report: CopyReport,
}

fn same(a: &Snapshot, b: &Snapshot) -> bool {
    a.time == b.time && a.host == b.host && a.paths == b.paths && a.dataset == b.dataset
}

/// Copy `ids` (all snapshots when empty) from `src` to `dst`; signed snapshots carry
/// their original signature.
pub async fn copy(src: &Repository, dst: &Repository, ids: &[SnapshotId]) -> Result<CopyReport> {
    copy_signed(src, dst, ids, &CopySigning::default()).await
}

/// Copy `ids` (all snapshots when empty) from `src` to `dst`, re-signing signed
/// snapshots as `signing` says (see `manifest_copy`).
pub async fn copy_signed(
    src: &Repository,
    dst: &Repository,
    ids: &[SnapshotId],
    signing: &CopySigning,
) -> Result<CopyReport> {
    let lease = dst.lease(LeaseKind::Backup, "copy").await?;
    let result = run(src, dst, ids, signing).await;
    let _ = lease.release().await;
    let written: Vec<SnapshotId> = result
        .as_ref()
        .map(|r| r.snapshots.iter().map(|s| s.1).collect())
        .unwrap_or_default();
    let record = Record {
        written,
        objects: vec![format!("from {}", src.address())],
        ..audit::event(Action::Copy)
    };
    audit::after(dst, record, result, |r| {
        format!("{} snapshot(s) copied", r.snapshots.len())
    })
    .await
}

async fn run(src: &Repository, dst: &Repository, ids: &[SnapshotId], signing: &CopySigning) -> Result<CopyReport> {
    let started = Utc::now();
    let existing: Vec<Snapshot> = dst.snapshots().await?.into_iter().map(|s| s.1).collect();
    let src_index = src.load_index().await?;
    let mut c = Copier {
        src,
        dst,
        src_index: &src_index,
        dst_index: dst.load_index().await?,
        added: HashSet::new(),
        trees: HashMap::new(),
        builder: PackBuilder::new(dst.config().pack_size as usize),
        stored: Vec::new(),
        uploaded: HashSet::new(),
        report: CopyReport::default(),
    };
    // Every signature is settled before anything is copied.
    let mut todo = Vec::new();
    for (id, snap) in src.snapshots().await? {
        if !ids.is_empty() && !ids.contains(&id) {
            continue;
        }
        if existing.iter().any(|e| same(e, &snap)) {
            c.report.skipped += 1;
            continue;
        }
        let carried = prepare(src, &src_index, (&id, &snap), signing).await?;
        todo.push((id, snap, carried));
    }
    for (id, snap, carried) in todo {
        let tree = c.copy_tree(snap.tree).await?;
        c.flush().await?;
        let new_id = c
            .save_copy(
                Snapshot {
                    tree,
                    parent: None,
                    ..snap
                },
                carried,
            )
            .await?;
        c.report.snapshots.push((id, new_id));
    }
    if !c.report.snapshots.is_empty() {
        keep_packs_locked(dst, c.dst_index.pack_ids(), &c.uploaded, started, Utc::now())
            .await
            .map_err(locks_not_extended)?;
    }
    Ok(c.report)
}

impl Copier<'_> {
    /// Store the copied snapshot, its manifest first; returns its id.
    async fn save_copy(&mut self, copy: Snapshot, carried: Carried<'_>) -> Result<SnapshotId> {
        let (new_id, sealed) = self.dst.seal_snapshot(&copy);
        let kind = match &carried {
            Carried::Unsigned => None,
            Carried::Resign { .. } => Some(&mut self.report.resigned),
            Carried::Original(_) => Some(&mut self.report.carried),
        };
        if let Some(list) = kind {
            list.push(new_id);
        }
        if let Some(manifest) = seal_for_copy(self.dst, &new_id, carried)? {
            self.dst.put_manifest(&new_id, manifest).await?;
        }
        self.dst.put_snapshot(&new_id, sealed).await?;
        Ok(new_id)
    }

    fn copy_tree(&mut self, id: BlobId) -> BoxFuture<'_, Result<BlobId>> {
        Box::pin(async move {
            if let Some(done) = self.trees.get(&id) {
                return Ok(*done);
            }
            let mut tree: Tree = self.src.load_tree(self.src_index, &id).await?;
            for node in &mut tree.nodes {
                if let Some(sub) = node.subtree {
                    node.subtree = Some(self.copy_tree(sub).await?);
                }
                // A file's blobs are read a few at a time ahead of re-sealing, in order.
                let (src, index) = (self.src, self.src_index);
                let mut reads = stream::iter(node.content.clone())
                    .map(|blob| async move { src.read_blob(index, &blob).await })
                    .buffered(READ_AHEAD);
                let mut content = Vec::with_capacity(node.content.len());
                while let Some(data) = reads.next().await {
                    content.push(self.add(BlobKind::Data, &data?).await?);
                }
                node.content = content;
            }
            let new_id = self.add(BlobKind::Tree, &tree.encode()).await?;
            self.trees.insert(id, new_id);
            Ok(new_id)
        })
    }

    async fn add(&mut self, kind: BlobKind, data: &[u8]) -> Result<BlobId> {
        let id = self.dst.key().blob_id(data);
        if self.dst_index.contains(&id) || !self.added.insert(id) {
            return Ok(id);
        }
        let sealed = self.dst.seal(data, self.dst.compression());
        self.report.blobs += 1;
        self.report.bytes += sealed.len() as u64;
        if self.builder.add(kind, id, data.len() as u32, sealed) {
            self.upload().await?;
        }
        Ok(id)
    }

    async fn upload(&mut self) -> Result<()> {
        let pack = self.builder.finish(self.dst);
        self.dst.save_pack(&pack.id, pack.bytes).await?;
        self.uploaded.insert(pack.id);
        self.stored.push(IndexedPack {
            id: pack.id,
            blobs: pack.entries,
        });
        Ok(())
    }

    /// Store the open pack and index everything stored so far.
    async fn flush(&mut self) -> Result<()> {
        if !self.builder.is_empty() {
            self.upload().await?;
        }
        if !self.stored.is_empty() {
            let file = IndexFile {
                supersedes: Vec::new(),
                packs: std::mem::take(&mut self.stored),
            };
            self.dst.save_index(&file).await?;
        }
        Ok(())
    }
}

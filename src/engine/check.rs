//! Check: prove that the repository is complete and, with `--read-data`, intact.
//!
//! Structure: every index decodes and names packs that exist; every snapshot decodes;
//! every tree reachable from a snapshot decodes and references only indexed blobs.
//! Read data: every (or a sampled share of) pack is downloaded, its hash compared with
//! its name, its header compared with the index, and every blob authenticated and
//! checked against its id. Packs that no index names are reported but are not damage:
//! an interrupted backup leaves them, and prune removes them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use rand::seq::SliceRandom;

use super::tree_bounds::{Expansion, Shape, TreeBudget};
use super::{Progress, Result, ls};
use crate::format::blob;
use crate::format::ids::{BlobId, PackId};
use crate::format::pack::{self, BlobKind, PackEntry};
use crate::repo::{Index, Repository};

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Share of packs to read in full, 0.0 to 100.0; 0 reads none.
    pub read_data_percent: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    /// Packs no index reads from: named by none (left by an interrupted backup), or
    /// holding only blobs another pack holds. Prune removes them.
    pub unindexed_packs: usize,
    pub errors: Vec<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

pub async fn check(repo: &Repository, opts: &CheckOptions, progress: Arc<Progress>) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let stored: HashMap<PackId, u64> = repo.list_packs().await?;
    let index = load_index_checked(repo, &mut report).await?;
    let by_pack = index.by_pack();
    report.packs = by_pack.len();
    report.blobs = index.blob_count();
    for id in by_pack.keys() {
        if !stored.contains_key(id) {
            report
                .errors
                .push(format!("pack {id} is named by the index but missing from storage"));
        }
    }
    report.unindexed_packs = stored.keys().filter(|id| !by_pack.contains_key(id)).count();
    check_snapshots(repo, &index, &mut report).await?;
    if opts.read_data_percent > 0.0 {
        read_packs(repo, &by_pack, &stored, opts.read_data_percent, &progress, &mut report).await;
    }
    Ok(report)
}

async fn load_index_checked(repo: &Repository, report: &mut CheckReport) -> Result<Index> {
    let mut files = Vec::new();
    for hex in repo.index_names().await? {
        let Ok(id) = crate::format::ids::IndexId::from_hex(&hex) else {
            continue;
        };
        match repo.load_index_file(&id).await {
            Ok(file) => files.push((id, file)),
            Err(e) => report.errors.push(format!("index {hex}: {e}")),
        }
    }
    Ok(Index::from_files(&files))
}

async fn check_snapshots(repo: &Repository, index: &Index, report: &mut CheckReport) -> Result<()> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut expansion = Expansion::default();
    for id in repo.snapshot_ids().await? {
        let snap = match repo.load_snapshot(&id).await {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(format!("snapshot {id}: {e}"));
                continue;
            }
        };
        report.snapshots += 1;
        let mut stack = vec![(PathBuf::new(), 0, snap.tree)];
        while let Some((path, depth, tree_id)) = stack.pop() {
            if let Err(e) = TreeBudget::check_depth(&id, &path, depth) {
                report.errors.push(e.to_string());
                continue;
            }
            if !seen.insert(tree_id) {
                continue;
            }
            let tree = match repo.load_tree(index, &tree_id).await {
                Ok(t) => t,
                Err(e) => {
                    report.errors.push(format!(
                        "snapshot {}: tree {} at {}: {e}",
                        id.short(),
                        tree_id.short(),
                        ls::shown_path(&path)
                    ));
                    continue;
                }
            };
            report.trees += 1;
            let subtrees = tree.nodes.iter().filter_map(|n| n.subtree).collect();
            let shape = Shape {
                entries: tree.nodes.len() as u64,
                subtrees,
            };
            expansion.shapes.insert(tree_id, shape);
            for node in &tree.nodes {
                stack.extend(node.subtree.map(|sub| (path.join(node.os_name()), depth + 1, sub)));
                for blob in &node.content {
                    if !index.contains(blob) {
                        report.errors.push(format!(
                            "snapshot {}: file {:?} needs blob {} which is in no index",
                            id.short(),
                            node.name,
                            blob.short()
                        ));
                    }
                }
            }
        }
        if let Err(e) = expansion.check(&id, &snap.tree) {
            report.errors.push(e.to_string());
        }
    }
    Ok(())
}

async fn read_packs(
    repo: &Repository,
    by_pack: &HashMap<PackId, Vec<PackEntry>>,
    stored: &HashMap<PackId, u64>,
    percent: f64,
    progress: &Arc<Progress>,
    report: &mut CheckReport,
) {
    let mut ids: Vec<PackId> = by_pack.keys().filter(|id| stored.contains_key(id)).copied().collect();
    ids.sort();
    if percent < 100.0 {
        ids.shuffle(&mut rand::thread_rng());
        let n = ((ids.len() as f64 * percent / 100.0).ceil() as usize).min(ids.len());
        ids.truncate(n.max(1));
    }
    progress.add_total(ids.len() as u64, ids.iter().map(|id| stored[id]).sum());
    progress.totals_known.store(true, std::sync::atomic::Ordering::Relaxed);
    let results: Vec<(u64, Vec<String>)> = stream::iter(ids)
        .map(|id| {
            let repo = repo.clone();
            let expected = by_pack[&id].clone();
            let progress = progress.clone();
            async move {
                let out = verify_pack(&repo, id, expected).await;
                progress.add_done(1, out.0);
                out
            }
        })
        .buffer_unordered(PACKS_AT_ONCE)
        .collect()
        .await;
    for (bytes, errors) in results {
        report.packs_read += 1;
        report.bytes_read += bytes;
        report.errors.extend(errors);
    }
}

/// Packs read and verified at once: two verified on the two cores while the next is
/// read. Each is held whole (up to the pack size, 16 MiB by default), so this is most
/// of what `check --read-data` holds in memory.
const PACKS_AT_ONCE: usize = 3;

/// Download one pack and verify it completely; returns bytes read and problems found.
async fn verify_pack(repo: &Repository, id: PackId, expected: Vec<PackEntry>) -> (u64, Vec<String>) {
    let bytes = match repo.read_pack(&id, None).await {
        Ok(b) => b,
        Err(e) => return (0, vec![format!("pack {id}: {e}")]),
    };
    let n = bytes.len() as u64;
    let repo = repo.clone();
    let checked = tokio::task::spawn_blocking(move || verify_pack_bytes(&repo, id, bytes, &expected)).await;
    (n, checked.unwrap_or_else(|e| vec![format!("pack {id}: {e}")]))
}

fn verify_pack_bytes(repo: &Repository, id: PackId, bytes: Bytes, expected: &[PackEntry]) -> Vec<String> {
    if PackId::of_bytes(&bytes) != id {
        return vec![format!(
            "pack {id}: content does not match its name (damaged in storage)"
        )];
    }
    let header = match pack::read_header(repo.key(), repo.cipher(), &bytes) {
        Ok(h) => h,
        Err(e) => return vec![format!("pack {id}: {e}")],
    };
    let mut errors = Vec::new();
    let in_header: HashMap<BlobId, &PackEntry> = header.iter().map(|e| (e.id, e)).collect();
    for e in expected {
        if in_header
            .get(&e.id)
            .is_none_or(|h| h.offset != e.offset || h.length != e.length)
        {
            errors.push(format!(
                "pack {id}: blob {} is indexed at a place the pack header disagrees with",
                e.id
            ));
        }
    }
    // Each blob is decrypted where it lies (the header's entries are contiguous and
    // never overlap) and decoded into one buffer reused from blob to blob.
    let mut pack = bytes
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let mut scratch = Vec::new();
    for e in &header {
        let sealed = &mut pack[e.offset as usize..(e.offset + e.length) as usize];
        match blob::open_verified_in_place(repo.key(), repo.cipher(), &e.id, sealed, &mut scratch) {
            Ok(data) if data.len() as u32 != e.raw_length => {
                errors.push(format!("pack {id}: blob {} has the wrong length", e.id))
            }
            Ok(data) if e.kind == BlobKind::Tree && crate::format::tree::Tree::decode(data).is_err() => {
                errors.push(format!("pack {id}: tree blob {} does not decode", e.id))
            }
            Ok(_) => {}
            Err(err) => errors.push(format!("pack {id}: blob {}: {err}", e.id)),
        }
    }
    errors
}

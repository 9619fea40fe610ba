//! Prune: remove data no snapshot needs, without ever blocking or endangering a backup.
//!
//! Prune works in two phases so that backups can run at the same time:
//!
//! 1. **Condemn.** Work out which blobs the snapshots use. Packs with no used blob
//!    (and packs no index names, left by interrupted backups) are condemned; packs
//!    with more unused bytes than the threshold have their used blobs copied into new
//!    packs and are condemned too. A record of the condemned packs (with their index
//!    entries) is written under `prune/`, then one new index that supersedes all the
//!    old ones and leaves the condemned packs out, then the old indexes are deleted.
//!    From then on no new backup can deduplicate against a condemned blob.
//! 2. **Delete.** A record's packs are deleted only once no backup that might have
//!    read the old index is still running (no live backup lease taken before the
//!    record was activated) and the grace time has passed. Just before deleting,
//!    the snapshots are read again: a condemned pack holding a blob some snapshot now
//!    needs (a backup that deduplicated against it) is put back into the index instead.
//!
//! Every step is safe to interrupt: a record without an activation time is activated
//! by the next prune; packs still named by an index are never deleted; a record is
//! removed only after its packs are.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{EngineError, Result, audit};
use crate::format::audit::Action;
use crate::format::blob;
use crate::format::ids::{BlobId, IndexId, PackId, SnapshotId};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::PackEntry;
use crate::format::prune::PruneRecord;
use crate::repo::lock::LeaseKind;
use crate::repo::packer::PackBuilder;
use crate::repo::{Index, RepoError, Repository};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of its bytes is unused.
    pub max_unused_percent: f64,
    /// Minimum time between condemning a pack and deleting it.
    pub grace: Duration,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused_percent: 20.0,
            grace: Duration::ZERO,
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub packs: usize,
    pub condemned: usize,
    pub repacked: usize,
    pub deleted: usize,
    pub resurrected: usize,
    pub bytes_freed: u64,
    /// Condemned packs still waiting (grace time, or a backup that started earlier).
    pub waiting: usize,
    pub dry_run: bool,
}

impl PruneReport {
    /// Whether the prune left the repository as it found it.
    fn changed_nothing(&self) -> bool {
        self.condemned + self.repacked + self.deleted + self.resurrected == 0
    }
}

/// A stored record of condemned packs (`format::prune`) and its name.
struct Record {
    name: String,
    activated: Option<DateTime<Utc>>,
    packs: IndexFile,
}

pub async fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let lease = repo.lease(LeaseKind::Prune, "prune").await?;
    let result = run(repo, opts).await;
    lease.release().await?;
    if opts.dry_run || result.as_ref().is_ok_and(PruneReport::changed_nothing) {
        return result;
    }
    audit::after(repo, audit::event(Action::Prune), result, |r| {
        format!("{} pack(s) deleted", r.deleted)
    })
    .await
}

async fn run(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if !opts.dry_run {
        finish_records(repo, opts, &mut report).await?;
    }
    condemn(repo, opts, &mut report).await?;
    if !opts.dry_run {
        finish_records(repo, opts, &mut report).await?;
    }
    Ok(report)
}

async fn write_record(repo: &Repository, activated: Option<DateTime<Utc>>, packs: &IndexFile) -> Result<String> {
    let record = PruneRecord {
        activated,
        packs: packs.clone(),
    };
    Ok(repo.save_prune_record(&record).await?)
}

/// Packs that a prune has condemned and will delete: they are out of the index on
/// purpose.
pub async fn condemned_packs(repo: &Repository) -> Result<HashSet<PackId>> {
    Ok(read_records(repo)
        .await?
        .iter()
        .flat_map(|r| r.packs.packs.iter().map(|p| p.id))
        .collect())
}

async fn read_records(repo: &Repository) -> Result<Vec<Record>> {
    let records = repo.prune_records().await?.into_iter();
    Ok(records
        .map(|(name, PruneRecord { activated, packs })| Record { name, activated, packs })
        .collect())
}

/// Every blob (data and tree) reachable from a snapshot; trees are looked up in `lookup`.
async fn used_blobs(repo: &Repository, lookup: &Index) -> Result<HashSet<BlobId>> {
    let mut used = HashSet::new();
    for id in repo.snapshot_ids().await? {
        let snap = match repo.load_snapshot(&id).await {
            Ok(s) => s,
            Err(RepoError::NoSnapshot(_)) => continue, // forgotten meanwhile
            Err(e) => return Err(stop(id, e)),
        };
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !used.insert(tree_id) {
                continue;
            }
            let tree = repo.load_tree(lookup, &tree_id).await.map_err(|e| stop(id, e))?;
            for node in tree.nodes {
                stack.extend(node.subtree);
                used.extend(node.content);
            }
        }
    }
    Ok(used)
}

fn stop(id: SnapshotId, e: RepoError) -> EngineError {
    EngineError::BadInput(format!(
        "prune stopped without deleting anything: snapshot {} cannot be read ({e}) — run `lifeboat check`",
        id.short()
    ))
}

/// Phase 1: condemn unused and mostly-unused packs and rewrite the index without them.
async fn condemn(repo: &Repository, opts: &PruneOptions, report: &mut PruneReport) -> Result<()> {
    let index = repo.load_index().await?;
    let records = read_records(repo).await?;
    let used = used_blobs(repo, &with_records(&index, &records)).await?;
    let stored = repo.list_packs().await?;
    let by_pack = index.by_pack();
    report.packs = by_pack.len();
    let already: HashSet<PackId> = records
        .iter()
        .flat_map(|r| r.packs.packs.iter().map(|p| p.id))
        .collect();

    let mut condemned: Vec<IndexedPack> = Vec::new();
    let mut repack: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
    let mut kept: Vec<IndexedPack> = Vec::new();
    for (id, entries) in by_pack {
        let total: u64 = entries.iter().map(|e| e.length as u64).sum::<u64>() + index.shadowed_bytes(&id);
        let live: u64 = entries
            .iter()
            .filter(|e| used.contains(&e.id))
            .map(|e| e.length as u64)
            .sum();
        if live == 0 {
            condemned.push(IndexedPack { id, blobs: entries });
        } else if (total - live) as f64 * 100.0 > opts.max_unused_percent * total as f64 {
            let keep: Vec<PackEntry> = entries.iter().filter(|e| used.contains(&e.id)).copied().collect();
            repack.push((id, keep));
            condemned.push(IndexedPack { id, blobs: entries });
        } else {
            kept.push(IndexedPack { id, blobs: entries });
        }
    }
    // Packs no index names (left by interrupted runs), and packs it names but reads
    // nothing from (each blob is located in another pack).
    let shadowed: HashSet<PackId> = index.shadowed_packs().into_iter().collect();
    for id in stored.keys() {
        if (!index.has_pack(id) || shadowed.contains(id)) && !already.contains(id) {
            condemned.push(IndexedPack {
                id: *id,
                blobs: Vec::new(),
            });
        }
    }
    report.condemned = condemned.len();
    report.repacked = repack.len();
    if opts.dry_run || condemned.is_empty() {
        return Ok(());
    }
    kept.extend(copy_live_blobs(repo, repack).await?);
    let record = IndexFile {
        supersedes: Vec::new(),
        packs: condemned,
    };
    let pending = write_record(repo, None, &record).await?;
    // Supersede every index object seen, including ones an earlier, interrupted prune
    // had already superseded but not yet deleted: otherwise they would come back into
    // force once this replacement is itself replaced.
    let mut old: Vec<IndexId> = index.files().to_vec();
    old.extend(index.superseded().iter().copied());
    old.sort();
    old.dedup();
    let replacement = IndexFile {
        supersedes: old.clone(),
        packs: kept,
    };
    repo.save_index(&replacement).await?;
    for old in &old {
        repo.delete_index(old).await?;
    }
    activate(repo, &pending, &record).await
}

async fn activate(repo: &Repository, pending: &str, record: &IndexFile) -> Result<()> {
    write_record(repo, Some(Utc::now()), record).await?;
    repo.delete_prune_record(pending).await?;
    Ok(())
}

fn with_records(index: &Index, records: &[Record]) -> Index {
    let mut all = index.clone();
    for r in records {
        for p in &r.packs.packs {
            all.add_pack(p.id, &p.blobs);
        }
    }
    all
}

/// Copy the used blobs of packs being repacked into new packs (sealed bytes copied
/// as they are, after verification, so damage is never propagated).
async fn copy_live_blobs(repo: &Repository, repack: Vec<(PackId, Vec<PackEntry>)>) -> Result<Vec<IndexedPack>> {
    let mut builder = PackBuilder::new(repo.config().pack_size as usize);
    let mut out = Vec::new();
    for (pack, entries) in repack {
        let bytes = repo.read_pack(&pack, None).await?;
        for e in entries {
            let sealed = bytes
                .get(e.offset as usize..(e.offset + e.length) as usize)
                .ok_or_else(|| RepoError::damaged(format!("pack {pack}"), "shorter than its index says"))?;
            blob::open_verified(repo.key(), repo.cipher(), &e.id, sealed)
                .map_err(|err| RepoError::damaged(format!("blob {} in pack {}", e.id.short(), pack.short()), err))?;
            if builder.add(e.kind, e.id, e.raw_length, sealed.to_vec()) {
                out.push(upload(repo, &mut builder).await?);
            }
        }
    }
    if !builder.is_empty() {
        out.push(upload(repo, &mut builder).await?);
    }
    Ok(out)
}

async fn upload(repo: &Repository, builder: &mut PackBuilder) -> Result<IndexedPack> {
    let pack = builder.finish(repo);
    repo.save_pack(&pack.id, pack.bytes).await?;
    Ok(IndexedPack {
        id: pack.id,
        blobs: pack.entries,
    })
}

/// Phase 2: delete the packs of records whose time has come.
async fn finish_records(repo: &Repository, opts: &PruneOptions, report: &mut PruneReport) -> Result<()> {
    let records = read_records(repo).await?;
    if records.is_empty() {
        return Ok(());
    }
    // Leases first: a backup that finishes after this listing has already written its
    // snapshot when the snapshots are read below, and one that is still running is seen.
    let backups: Vec<DateTime<Utc>> = repo
        .live_leases()
        .await?
        .into_iter()
        .filter(|l| l.kind == LeaseKind::Backup)
        .map(|l| l.created)
        .collect();
    let index = repo.load_index().await?;
    let used = used_blobs(repo, &with_records(&index, &records)).await?;
    let mut stored = repo.list_packs().await?;
    report.waiting = 0;
    for rec in records {
        let Some(activated) = rec.activated else {
            activate(repo, &rec.name, &rec.packs).await?;
            report.waiting += rec.packs.packs.len();
            continue;
        };
        let grace = chrono::Duration::from_std(opts.grace).unwrap_or_default();
        if Utc::now() < activated + grace || backups.iter().any(|&b| b <= activated) {
            report.waiting += rec.packs.packs.len();
            continue;
        }
        delete_condemned(repo, &index, &used, &mut stored, &rec, report).await?;
        repo.delete_prune_record(&rec.name).await?;
    }
    Ok(())
}

async fn delete_condemned(
    repo: &Repository,
    index: &Index,
    used: &HashSet<BlobId>,
    stored: &mut HashMap<PackId, u64>,
    rec: &Record,
    report: &mut PruneReport,
) -> Result<()> {
    let (needed, gone): (Vec<&IndexedPack>, Vec<&IndexedPack>) = rec
        .packs
        .packs
        .iter()
        .filter(|p| !index.has_pack(&p.id))
        .partition(|p| p.blobs.iter().any(|b| used.contains(&b.id) && !index.contains(&b.id)));
    if !needed.is_empty() {
        let back = IndexFile {
            supersedes: Vec::new(),
            packs: needed.into_iter().cloned().collect(),
        };
        report.resurrected += back.packs.len();
        repo.save_index(&back).await?;
    }
    for p in gone {
        repo.delete_pack(&p.id).await?;
        // Two records may name one pack (a prune that failed before replacing the
        // index, then the one that finished its work): it is counted once.
        if let Some(size) = stored.remove(&p.id) {
            report.bytes_freed += size;
            report.deleted += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;

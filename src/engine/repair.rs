//! `repair index`: rebuild the index from what the packs say about themselves.
//!
//! Index objects only repeat what every pack's own (authenticated) header holds, so
//! they can be rebuilt: index objects that are damaged, packs an interrupted backup
//! stored but never indexed, and packs the index names that are gone from storage are
//! all put right. Packs the index already describes are trusted unless
//! `read_all_packs` is set; the others have their headers read (two ranged reads per
//! pack, never the whole pack). Packs a prune has condemned stay out.
//!
//! The result is written like prune's replacement: one new index object that
//! supersedes every index object listed, written before any old one is deleted, so an
//! interruption at any point leaves a usable index. The run holds an exclusive lease:
//! no backup or prune can change the repository meanwhile.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt};

use super::prune::condemned_packs;
use super::{Result, audit};
use crate::format::audit::Action;
use crate::format::ids::{IndexId, PackId};
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::{self, PackEntry};
use crate::repo::lock::LeaseKind;
use crate::repo::{Index, RepoError, Repository};

/// Headers read at once.
const READS: usize = 8;
/// Bytes read from a pack's end on the first try; larger headers take a second read.
const TAIL_GUESS: u64 = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Read the header of every pack, not only of packs no index describes.
    pub read_all_packs: bool,
    /// Report what would change and write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepairReport {
    /// Index objects read and usable.
    pub indexes_read: usize,
    /// Index objects that could not be read or opened; named in `problems`.
    pub indexes_damaged: usize,
    /// Pack headers read.
    pub packs_scanned: usize,
    /// Packs in storage that no usable index described, now indexed.
    pub packs_added: usize,
    /// Packs an index named that are gone from storage, now left out.
    pub packs_missing: usize,
    /// Packs whose header could not be read; they stay unindexed.
    pub packs_unreadable: usize,
    /// Packs in the rebuilt index, and their blobs.
    pub packs: usize,
    pub blobs: usize,
    /// Whether the index needs rebuilding, and whether a new one was written (not on
    /// a dry run).
    pub needed: bool,
    pub rewritten: bool,
    pub dry_run: bool,
    /// One line per damaged index object or unreadable pack.
    pub problems: Vec<String>,
}

pub async fn repair_index(repo: &Repository, opts: &RepairOptions) -> Result<RepairReport> {
    let lease = repo.lease(LeaseKind::Exclusive, "repair index").await?;
    let result = run(repo, opts).await;
    lease.release().await?;
    if opts.dry_run {
        return result;
    }
    audit::after(repo, audit::event(Action::Repair), result, |r| {
        format!("index: {} pack(s) added", r.packs_added)
    })
    .await
}

async fn run(repo: &Repository, opts: &RepairOptions) -> Result<RepairReport> {
    let mut report = RepairReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let stored: HashMap<PackId, u64> = repo.list_packs().await?;
    let condemned = condemned_packs(repo).await?;

    // Every index object listed, usable or not, is replaced by the new one.
    let mut listed: Vec<IndexId> = Vec::new();
    let mut files = Vec::new();
    for hex in repo.index_names().await? {
        let Ok(id) = IndexId::from_hex(&hex) else { continue };
        listed.push(id);
        match repo.load_index_file(&id).await {
            Ok(file) => files.push((id, file)),
            Err(RepoError::Storage(e)) if e.is_not_found() => {}
            Err(e) => {
                report.indexes_damaged += 1;
                report.problems.push(format!("index {hex}: {e}"));
            }
        }
    }
    report.indexes_read = files.len();
    let index = Index::from_files(&files);
    let listed_set: HashSet<IndexId> = listed.iter().copied().collect();
    let leftovers = index.superseded().iter().filter(|id| listed_set.contains(id)).count();
    let described = index.by_pack();

    let mut packs: Vec<IndexedPack> = Vec::new();
    let mut to_scan: Vec<(PackId, u64)> = Vec::new();
    for (id, entries) in &described {
        if !stored.contains_key(id) {
            report.packs_missing += 1;
            report.problems.push(format!(
                "pack {id}: named by the index but missing from storage; left out, so the next \
                 backup stores its data again"
            ));
        } else if !opts.read_all_packs || condemned.contains(id) {
            // A condemned pack still indexed belongs to a prune that has not replaced
            // the index yet: it stays as that index says, for the prune to finish.
            packs.push(IndexedPack {
                id: *id,
                blobs: entries.clone(),
            });
        }
    }
    for (id, size) in &stored {
        let known = described.contains_key(id) && !opts.read_all_packs;
        if !known && !condemned.contains(id) {
            to_scan.push((*id, *size));
        }
    }
    to_scan.sort();
    report.packs_scanned = to_scan.len();
    let headers: Vec<(PackId, std::result::Result<Vec<PackEntry>, String>)> = stream::iter(to_scan)
        .map(|(id, size)| async move { (id, read_pack_header(repo, &id, size).await) })
        .buffer_unordered(READS)
        .collect()
        .await;
    for (id, header) in headers {
        match header {
            Ok(blobs) => {
                if !described.contains_key(&id) {
                    report.packs_added += 1;
                }
                packs.push(IndexedPack { id, blobs });
            }
            Err(e) => {
                report.packs_unreadable += 1;
                match described.get(&id) {
                    // Only a re-read of a described pack gets here: its blobs may be
                    // intact, so the index keeps saying where they are.
                    Some(entries) => {
                        report
                            .problems
                            .push(format!("pack {id}: {e}; the index's entries are kept"));
                        packs.push(IndexedPack {
                            id,
                            blobs: entries.clone(),
                        });
                    }
                    None => report
                        .problems
                        .push(format!("pack {id}: {e}; its blobs stay unindexed")),
                }
            }
        }
    }
    packs.sort_by_key(|p| p.id);
    report.packs = packs.len();
    report.blobs = packs.iter().map(|p| p.blobs.len()).sum();

    report.needed = report.indexes_damaged > 0
        || report.packs_added > 0
        || report.packs_missing > 0
        || leftovers > 0
        || (opts.read_all_packs && differs(&described, &packs));
    if !report.needed || opts.dry_run {
        return Ok(report);
    }
    let replacement = IndexFile {
        supersedes: listed.clone(),
        packs,
    };
    let new_id = repo.save_index(&replacement).await?;
    for old in listed.iter().filter(|id| **id != new_id) {
        repo.delete_index(old).await?;
    }
    report.rewritten = true;
    Ok(report)
}

/// Whether the headers read say anything other than the index did.
fn differs(described: &HashMap<PackId, Vec<PackEntry>>, read: &[IndexedPack]) -> bool {
    let stored: HashSet<PackId> = read.iter().map(|p| p.id).collect();
    let dropped = described.keys().any(|id| !stored.contains(id));
    dropped || read.iter().any(|p| described.get(&p.id) != Some(&p.blobs))
}

/// A pack's entries from its header, read from the end of the object.
async fn read_pack_header(repo: &Repository, id: &PackId, size: u64) -> std::result::Result<Vec<PackEntry>, String> {
    if size > repo.max_pack_len() {
        return Err(format!("it is {size} bytes, longer than any pack of this repository"));
    }
    let len = usize::try_from(size).map_err(|e| e.to_string())?;
    let first = TAIL_GUESS.min(size);
    let mut tail = repo
        .read_pack_range(id, size - first..size)
        .await
        .map_err(|e| e.to_string())?;
    let span = pack::header_span(len, tail.get(tail.len().saturating_sub(4)..).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    if span > tail.len() {
        tail = repo
            .read_pack_range(id, size - span as u64..size)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut entries = pack::read_header_from_tail(repo.key(), repo.cipher(), len, &tail).map_err(|e| e.to_string())?;
    entries.sort_by_key(|e| e.offset);
    Ok(entries)
}

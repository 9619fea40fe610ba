//! Fetching packs for a restore: the needed blobs of each pack in a few ranged reads,
//! each blob authenticated and checked against its id before it is written. A blob
//! that cannot be read intact marks every file it belongs to as damaged; only other
//! storage errors stop the restore. Files stay open across their blobs ([`OpenFiles`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};

use super::open_files::OpenFiles;
use super::plan::Dest;
use super::target::{FileKey, Target};
use super::{MAX_SPAN, MERGE_GAP, PACK_FETCHES};
use crate::engine::{EngineError, Progress, Result};
use crate::format::blob;
use crate::format::ids::{BlobId, PackId};
use crate::repo::index::Location;
use crate::repo::{Index, RepoError, Repository};

/// The target and the files created in it, by file number.
#[derive(Debug)]
pub(super) struct Written {
    pub target: Target,
    pub files: Vec<(PathBuf, FileKey)>,
    /// Descriptors of the files being filled.
    pub open: OpenFiles,
}

type Files = Arc<Written>;
/// file number → reason, for files that could not be restored intact.
pub(super) type Damaged = HashMap<usize, String>;

/// Fetch every needed pack (bounded concurrency) and write its blobs.
pub(super) async fn fetch_all(
    repo: &Repository,
    index: &Arc<Index>,
    files: &Files,
    packs: HashMap<PackId, HashMap<BlobId, Vec<Dest>>>,
    progress: &Arc<Progress>,
) -> Result<Damaged> {
    let damaged = Arc::new(Mutex::new(Damaged::new()));
    let results: Vec<Result<()>> = stream::iter(packs)
        .map(|(pack, blobs)| {
            let (repo, index, files, damaged, progress) = (
                repo.clone(),
                index.clone(),
                files.clone(),
                damaged.clone(),
                progress.clone(),
            );
            async move { restore_pack(&repo, &index, pack, blobs, &files, &damaged, &progress).await }
        })
        .buffer_unordered(PACK_FETCHES)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let out = damaged.lock().map(|d| d.clone()).unwrap_or_default();
    Ok(out)
}

fn mark(damaged: &Mutex<Damaged>, dests: &[Dest], why: &str) {
    if let Ok(mut d) = damaged.lock() {
        for dest in dests {
            d.entry(dest.file).or_insert_with(|| why.to_string());
        }
    }
}

/// Group a pack's needed blobs into ranged reads no further apart than `MERGE_GAP`.
fn spans(index: &Index, blobs: &HashMap<BlobId, Vec<Dest>>) -> Vec<(u32, u32, Vec<BlobId>)> {
    let mut located: Vec<_> = blobs
        .keys()
        .filter_map(|id| index.get(id).map(|l| (l.offset, l.length, *id)))
        .collect();
    located.sort_by_key(|l| l.0);
    let mut out: Vec<(u32, u32, Vec<BlobId>)> = Vec::new();
    for (offset, length, id) in located {
        match out.last_mut() {
            Some(last) if offset <= last.1.saturating_add(MERGE_GAP) && offset + length - last.0 <= MAX_SPAN => {
                last.1 = last.1.max(offset + length);
                last.2.push(id);
            }
            _ => out.push((offset, offset + length, vec![id])),
        }
    }
    out
}

async fn restore_pack(
    repo: &Repository,
    index: &Index,
    pack: PackId,
    blobs: HashMap<BlobId, Vec<Dest>>,
    files: &Files,
    damaged: &Arc<Mutex<Damaged>>,
    progress: &Arc<Progress>,
) -> Result<()> {
    let blobs = Arc::new(blobs);
    let writer = PackWriter {
        repo: repo.clone(),
        pack,
        blobs: blobs.clone(),
        files: files.clone(),
        damaged: damaged.clone(),
        progress: progress.clone(),
    };
    // One decode buffer per pack, reused from span to span.
    let mut scratch = Vec::new();
    for (start, end, ids) in spans(index, &blobs) {
        let bytes = match repo.read_pack_range(&pack, start as u64..end as u64).await {
            Ok(b) if b.len() == (end - start) as usize => b,
            Ok(b) => {
                let why = format!(
                    "pack {} is truncated ({} bytes short)",
                    pack.short(),
                    (end - start) as usize - b.len()
                );
                ids.iter().for_each(|id| mark(damaged, &blobs[id], &why));
                continue;
            }
            Err(RepoError::Storage(e)) if e.is_not_found() => {
                let why = format!("pack {} is missing", pack.short());
                ids.iter().for_each(|id| mark(damaged, &blobs[id], &why));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let locs: Vec<_> = ids.iter().filter_map(|id| index.get(id).map(|l| (*id, l))).collect();
        let writer = writer.clone();
        scratch = tokio::task::spawn_blocking(move || writer.span(start, bytes, locs, scratch))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
    }
    Ok(())
}

/// A pack's blobs being opened and written, one span at a time on a blocking thread.
#[derive(Clone)]
struct PackWriter {
    repo: Repository,
    pack: PackId,
    blobs: Arc<HashMap<BlobId, Vec<Dest>>>,
    files: Files,
    damaged: Arc<Mutex<Damaged>>,
    progress: Arc<Progress>,
}

impl PackWriter {
    /// Open every blob `locs` names in a span read from `start`, and write each where
    /// it goes. Blobs are decrypted where they lie in the span (a buffer no one else
    /// holds is taken over as it is, a shared one copied once) and decoded into
    /// `scratch`, which is handed back for the next span.
    fn span(&self, start: u32, bytes: Bytes, locs: Vec<(BlobId, Location)>, mut scratch: Vec<u8>) -> Result<Vec<u8>> {
        let mut span = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let (key, cipher) = (self.repo.key(), self.repo.cipher());
        for (id, loc) in locs {
            let at = (loc.offset - start) as usize;
            let sealed = &mut span[at..at + loc.length as usize];
            let dests = &self.blobs[&id];
            match blob::open_verified_in_place(key, cipher, &id, sealed, &mut scratch) {
                Ok(data) => write_blob(&self.files, dests, data, &self.progress)?,
                Err(e) => mark(
                    &self.damaged,
                    dests,
                    &format!("blob {} in pack {}: {e}", id.short(), self.pack.short()),
                ),
            }
        }
        Ok(scratch)
    }
}

fn write_blob(files: &Files, dests: &[Dest], data: &[u8], progress: &Progress) -> Result<()> {
    for d in dests {
        let (rel, key) = &files.files[d.file];
        let file = (files.open).get_or_open(d.file, || files.target.open_for_write(rel, *key))?;
        files.target.write_at(rel, &file, data, d.offset)?;
        progress.add_done(0, data.len() as u64);
        if files.open.written(d.file) {
            files.open.close(d.file);
        }
    }
    Ok(())
}

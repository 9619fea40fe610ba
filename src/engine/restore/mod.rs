//! Restore: rebuild a snapshot's files, verifying every blob before it is written.
//!
//! The snapshot's trees are walked first to plan the work: directories, files with
//! their sizes, and for every pack the blobs needed from it and where each goes.
//! Packs are then fetched concurrently (adjacent blobs in one ranged read), each blob
//! is authenticated and checked against its id, and written in place with `pwrite`.
//! A file touched by a damaged or missing blob is removed and named in the error:
//! restore never leaves a silently wrong file. Metadata (mode, times, owner when run
//! as root) is applied last, directories deepest first.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{EngineError, Progress, Result};
use crate::format::blob;
use crate::format::ids::{BlobId, PackId, SnapshotId};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::{Index, RepoError, Repository, layout};

const PACK_FETCHES: usize = 4;
/// Blobs closer than this in a pack are fetched in one ranged read.
const MERGE_GAP: u32 = 1 << 20;
/// Longest merged read, which bounds restore memory to about `PACK_FETCHES` × this.
const MAX_SPAN: u32 = 4 << 20;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub include: Vec<String>,
    /// When set, restore exactly these files (paths relative to the snapshot root).
    pub only: Option<std::collections::HashSet<PathBuf>>,
}

/// Which entries a restore takes: everything, glob matches, or an exact set of files.
enum Selector {
    Globs(GlobSet),
    Paths(std::collections::HashSet<PathBuf>),
}

impl Selector {
    fn matches(&self, path: &Path) -> bool {
        match self {
            Selector::Globs(g) => g.is_match(path),
            Selector::Paths(p) => p.contains(path),
        }
    }
    /// Whether a matched directory brings everything below it along.
    fn takes_subtree(&self) -> bool {
        matches!(self, Selector::Globs(_))
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub duration_ms: u64,
}

/// One place a blob's bytes go.
#[derive(Debug, Clone, Copy)]
struct Dest {
    file: usize,
    offset: u64,
}

#[derive(Debug, Default)]
struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    links: Vec<(PathBuf, Node)>,
    /// pack → blob → destinations
    packs: HashMap<PackId, HashMap<BlobId, Vec<Dest>>>,
}

fn include_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g = Glob::new(p.trim_start_matches('/'))
            .map_err(|e| EngineError::BadInput(format!("invalid include pattern {p:?}: {e}")))?;
        b.add(g);
    }
    b.build().map(Some).map_err(|e| EngineError::BadInput(e.to_string()))
}

/// Restore snapshot `id` (already resolved) into `opts.target`.
pub async fn restore(
    repo: &Repository,
    id: &SnapshotId,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    let started = std::time::Instant::now();
    let snap = repo.load_snapshot(id).await?;
    let index = Arc::new(repo.load_index().await?);
    let include = match (&opts.only, include_set(&opts.include)?) {
        (Some(paths), _) => Some(Selector::Paths(paths.clone())),
        (None, globs) => globs.map(Selector::Globs),
    };
    let mut plan = Plan::default();
    plan_tree(repo, &index, &snap.tree, Path::new(""), include.as_ref(), &mut plan).await?;
    let bytes: u64 = plan.files.iter().map(|f| f.1.size).sum();
    progress.add_total(plan.files.len() as u64, bytes);
    progress.totals_known.store(true, std::sync::atomic::Ordering::Relaxed);

    fs::create_dir_all(&opts.target).map_err(|e| EngineError::target_io(&opts.target, e))?;
    for (rel, _) in &plan.dirs {
        let p = opts.target.join(rel);
        fs::create_dir_all(&p).map_err(|e| EngineError::target_io(&p, e))?;
    }
    let files = Arc::new(create_files(&opts.target, &plan.files)?);
    let damaged = fetch_all(repo, &index, &files, std::mem::take(&mut plan.packs), &progress).await?;
    finish(&opts.target, &plan, &files, &damaged)?;
    if !damaged.is_empty() {
        return Err(damage_error(&plan, &damaged));
    }
    Ok(RestoreOutcome {
        snapshot: id.to_hex(),
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.links.len() as u64,
        bytes,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn damage_error(plan: &Plan, damaged: &HashMap<usize, String>) -> EngineError {
    let mut files: Vec<String> = damaged.keys().map(|&i| plan.files[i].0.display().to_string()).collect();
    files.sort();
    let first = damaged.values().next().cloned().unwrap_or_default();
    EngineError::Damage {
        message: format!(
            "{} file(s) could not be restored intact and were removed: {} ({first}) — restore them from another snapshot or region",
            files.len(),
            files.join(", ")
        ),
        files,
    }
}

fn plan_tree<'a>(
    repo: &'a Repository,
    index: &'a Index,
    tree_id: &'a BlobId,
    rel: &'a Path,
    include: Option<&'a Selector>,
    plan: &'a mut Plan,
) -> futures::future::BoxFuture<'a, Result<bool>> {
    Box::pin(async move {
        let tree: Tree = repo.load_tree(index, tree_id).await?;
        let mut any = false;
        for node in tree.nodes {
            let path = rel.join(node.os_name());
            let selected = include.is_none_or(|g| g.matches(&path));
            match node.kind {
                NodeKind::Dir => {
                    let Some(sub) = node.subtree else { continue };
                    let at = plan.dirs.len();
                    plan.dirs.push((path.clone(), node.clone()));
                    let inner = plan_tree(
                        repo,
                        index,
                        &sub,
                        &path,
                        include.filter(|g| !(selected && g.takes_subtree())),
                        plan,
                    )
                    .await?;
                    if !(selected || inner) {
                        plan.dirs.remove(at);
                    }
                    any |= selected || inner;
                }
                NodeKind::File if selected => {
                    add_file(index, plan, path, node)?;
                    any = true;
                }
                NodeKind::Symlink if selected => {
                    plan.links.push((path, node));
                    any = true;
                }
                _ => {}
            }
        }
        Ok(any)
    })
}

fn add_file(index: &Index, plan: &mut Plan, path: PathBuf, node: Node) -> Result<()> {
    let file = plan.files.len();
    let mut offset = 0u64;
    for id in &node.content {
        let loc = index
            .get(id)
            .ok_or_else(|| RepoError::MissingBlob(format!("{id} (of {})", path.display())))?;
        let pack = index.pack_id(loc.pack);
        plan.packs
            .entry(pack)
            .or_default()
            .entry(*id)
            .or_default()
            .push(Dest { file, offset });
        offset += loc.raw_length as u64;
    }
    if offset != node.size {
        return Err(RepoError::damaged(
            format!("tree entry {}", path.display()),
            format!("its blobs hold {offset} bytes but it records {}", node.size),
        )
        .into());
    }
    plan.files.push((path, node));
    Ok(())
}

/// Create every file at its final size; files are reopened for each write so a
/// restore of millions of files never holds more than a few descriptors.
fn create_files(target: &Path, files: &[(PathBuf, Node)]) -> Result<Vec<PathBuf>> {
    files
        .iter()
        .map(|(rel, node)| {
            let p = target.join(rel);
            let f = fs::File::create(&p).map_err(|e| EngineError::target_io(&p, e))?;
            f.set_len(node.size).map_err(|e| EngineError::target_io(&p, e))?;
            Ok(p)
        })
        .collect()
}

type Files = Arc<Vec<PathBuf>>;
/// file number → reason, for files that could not be restored intact.
type Damaged = HashMap<usize, String>;

/// Fetch every needed pack (bounded concurrency) and write its blobs.
async fn fetch_all(
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
    for (start, end, ids) in spans(index, &blobs) {
        let bytes = match repo
            .store()
            .get_range(&layout::pack(&pack), start as u64..end as u64)
            .await
        {
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
            Err(e) if e.is_not_found() => {
                let why = format!("pack {} is missing", pack.short());
                ids.iter().for_each(|id| mark(damaged, &blobs[id], &why));
                continue;
            }
            Err(e) => return Err(RepoError::from(e).into()),
        };
        let locs: Vec<_> = ids.iter().filter_map(|id| index.get(id).map(|l| (*id, l))).collect();
        let (repo, files, damaged, progress, blobs) = (
            repo.clone(),
            files.clone(),
            damaged.clone(),
            progress.clone(),
            blobs.clone(),
        );
        tokio::task::spawn_blocking(move || -> Result<()> {
            for (id, loc) in locs {
                let at = (loc.offset - start) as usize;
                let sealed = &bytes[at..at + loc.length as usize];
                let dests = &blobs[&id];
                match blob::open_verified(repo.key(), repo.cipher(), &id, sealed) {
                    Ok(data) => write_blob(&files, dests, &data, &progress)?,
                    Err(e) => mark(
                        &damaged,
                        dests,
                        &format!("blob {} in pack {}: {e}", id.short(), pack.short()),
                    ),
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    }
    Ok(())
}

fn write_blob(files: &Files, dests: &[Dest], data: &[u8], progress: &Progress) -> Result<()> {
    for d in dests {
        let path = &files[d.file];
        let io = |e| EngineError::target_io(path, e);
        let file = fs::OpenOptions::new().write(true).open(path).map_err(io)?;
        file.write_all_at(data, d.offset).map_err(io)?;
        progress.add_done(0, data.len() as u64);
    }
    Ok(())
}

fn to_time(ns: i64) -> SystemTime {
    let secs = Duration::new(
        ns.unsigned_abs() / 1_000_000_000,
        (ns.unsigned_abs() % 1_000_000_000) as u32,
    );
    if ns >= 0 {
        SystemTime::UNIX_EPOCH + secs
    } else {
        SystemTime::UNIX_EPOCH - secs
    }
}

fn apply_meta(path: &Path, node: &Node) -> Result<()> {
    let io = |e| EngineError::target_io(path, e);
    if is_root() {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(io)?;
    }
    if node.kind != NodeKind::Symlink {
        // Times first: opening may need permissions the final mode takes away.
        let f = fs::File::open(path).map_err(io)?;
        let t = to_time(node.mtime_ns);
        f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(io)?;
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode)).map_err(io)?;
    }
    Ok(())
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Remove damaged files, create symlinks, then apply metadata (directories last, deepest first).
fn finish(target: &Path, plan: &Plan, files: &Files, damaged: &Damaged) -> Result<()> {
    for (i, path) in files.iter().enumerate() {
        if damaged.contains_key(&i) {
            fs::remove_file(path).map_err(|e| EngineError::target_io(path, e))?;
        } else {
            apply_meta(path, &plan.files[i].1)?;
        }
    }
    for (rel, node) in &plan.links {
        let p = target.join(rel);
        let dest = node.target().unwrap_or_default();
        let _ = fs::remove_file(&p);
        std::os::unix::fs::symlink(&dest, &p).map_err(|e| EngineError::target_io(&p, e))?;
        apply_meta(&p, node)?;
    }
    for (rel, node) in plan.dirs.iter().rev() {
        apply_meta(&target.join(rel), node)?;
    }
    Ok(())
}

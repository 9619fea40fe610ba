//! Backup: a streaming pipeline from files to packs in storage.
//!
//! ```text
//! walker thread ──chunks──► N sealing threads ──sealed──► packer thread ──packs──► async uploads
//! (read, chunk, id, dedup)   (zstd, AEAD)                  (shuffle, assemble)     (bounded, then index)
//! ```
//! Every channel is bounded, so memory is capped by the queue lengths, not by the size
//! of the data set: at most `CHUNK_QUEUE + workers` chunks of up to 8 MiB, and
//! `PACK_QUEUE + UPLOADS` packs of the configured size, are in flight at once. Packs
//! are stored first, then an index for them (every `INDEX_EVERY` packs, so an
//! interrupted run leaves most of its work reusable), and the snapshot last.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender, bounded};
use tokio::sync::mpsc;

use super::anomaly::{Before, Collector, Compressibility, judge_run};
use super::fanout::{Dropped, Lane, Outgoing, PACKS_IN_MEMORY, Target, no_region_left, upload_packs};
use super::immutable::{keep_packs_locked, locks_not_extended};
use super::lister::Lister;
use super::manifest::{Signing, signed_manifest};
use super::read_ahead::ReadAhead;
use super::walk::{Excludes, TREES_AHEAD, TreesAhead, node_from_meta, unchanged};
use super::{EngineError, Progress, Result, audit};
use crate::format::anomaly::{Policy, Shares};
use crate::format::audit::{Action, Record};
use crate::format::blob::{Compression, stored_raw};
use crate::format::byteplanes::Elements;
use crate::format::chunker::Chunker;
use crate::format::digest::Sha256Hasher;
use crate::format::ids::{BlobId, ContentHasher, SnapshotId};
use crate::format::manifest::ManifestFile;
use crate::format::names::{DatasetName, Tag};
use crate::format::pack::BlobKind;
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::lock::LeaseKind;
use crate::repo::packer::PackBuilder;
use crate::repo::{Index, Repository};

const CHUNK_QUEUE: usize = 4;
const PACK_QUEUE: usize = 1;
/// How long a region's full upload queue may stay full before it is dropped as lagging.
const DEFAULT_LAG_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    /// When not empty, only files matching one of these globs are backed up.
    pub includes: Vec<String>,
    pub tags: Vec<Tag>,
    pub dataset: Option<DatasetName>,
    pub host: Option<String>,
    /// Skip compression (model weights do not compress).
    pub no_compression: bool,
    /// Re-read every file even if the parent snapshot says it is unchanged.
    pub force_read: bool,
    pub time: Option<DateTime<Utc>>,
    /// Override of how long a slow region may hold up its queue (see `fanout`).
    pub lag_wait: Option<std::time::Duration>,
    /// Sign the snapshot's manifest with this key (datasets with `sign = true`).
    pub signing: Option<Arc<Signing>>,
    /// Write no snapshot when the tree is identical to the parent's (same files,
    /// metadata and tags) and the parent is younger than this: the parent then stands
    /// for this run. `None`: always write one.
    pub skip_unchanged: Option<chrono::Duration>,
    /// Judge the run's anomaly signals against the dataset's history with this policy.
    pub anomaly: Option<Policy>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Nothing changed since snapshot `id`, so no new one was written.
    pub unchanged: bool,
}

/// A blob on its way to be sealed.
struct Job {
    kind: BlobKind,
    id: BlobId,
    data: Vec<u8>,
    /// Float elements of a checkpoint tensor, compressed as byte planes.
    elements: Option<Elements>,
}

struct Sealed {
    kind: BlobKind,
    id: BlobId,
    raw_length: u32,
    sealed: Vec<u8>,
}

/// What happened in each region of a fanned-out backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionOutcome {
    pub region: String,
    /// The snapshot is complete in this region.
    pub stored: bool,
    pub lagging: bool,
    /// Bytes of packs uploaded to this region in this run (a region that already
    /// held a pack's blobs is not sent that pack).
    pub bytes_added: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FanoutOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Nothing changed since snapshot `id`, so no new one was written.
    pub unchanged: bool,
    pub regions: Vec<RegionOutcome>,
}

impl FanoutOutcome {
    pub fn degraded(&self) -> bool {
        self.regions.iter().any(|r| !r.stored)
    }
}

/// Run one backup of `opts.paths` into `repo`.
pub async fn backup(repo: &Repository, opts: &BackupOptions, progress: Arc<Progress>) -> Result<BackupOutcome> {
    let target = Target {
        name: repo.address().to_string(),
        repo: repo.clone(),
    };
    let mut lanes = vec![Lane::new(&target)];
    let out = backup_lanes(&mut lanes, opts, progress).await?;
    if !lanes[0].active() {
        return Err(no_region_left(&mut lanes));
    }
    Ok(BackupOutcome {
        id: out.id,
        snapshot: out.snapshot,
        unchanged: out.unchanged,
    })
}

/// Back up once into every region of a replica set: read, chunk and seal once,
/// upload each pack to every region. Fails only when no region stored the snapshot.
pub async fn backup_to(targets: &[Target], opts: &BackupOptions, progress: Arc<Progress>) -> Result<FanoutOutcome> {
    let mut lanes: Vec<Lane> = targets.iter().map(Lane::new).collect();
    let done = backup_lanes(&mut lanes, opts, progress).await?;
    let regions = lanes
        .iter()
        .map(|l| RegionOutcome {
            region: l.name.clone(),
            stored: l.active(),
            lagging: matches!(l.dropped, Some(Dropped::Lagging)),
            bytes_added: l.bytes_added,
            error: match &l.dropped {
                Some(Dropped::Failed(e)) => Some(e.to_string()),
                Some(Dropped::Lagging) => Some("fell too far behind and was dropped from this run".into()),
                None => None,
            },
        })
        .collect();
    Ok(FanoutOutcome {
        id: done.id,
        snapshot: done.snapshot,
        unchanged: done.unchanged,
        regions,
    })
}

async fn backup_lanes(lanes: &mut [Lane], opts: &BackupOptions, progress: Arc<Progress>) -> Result<Done> {
    let roots = check_sources(&opts.paths)?;
    let excludes = Excludes::new(&opts.excludes)?.with_includes(&opts.includes)?;
    check_replicas(lanes)?;
    let mut leases = Vec::new();
    for lane in lanes.iter_mut() {
        match lane.repo.lease(LeaseKind::Backup, "backup").await {
            Ok(l) => leases.push(l),
            Err(e) => lane.drop_with(Dropped::Failed(e.into())),
        }
    }
    let result = if lanes.iter().any(Lane::active) {
        run(lanes, opts, roots, excludes, progress).await
    } else {
        Err(no_region_left(lanes))
    };
    for lease in leases {
        // A lease that cannot be removed expires by itself.
        let _ = lease.release().await;
    }
    if result.is_err() {
        for lane in lanes.iter() {
            audit::note(&lane.repo, audit::finished(audit::event(Action::Backup), &result)).await;
        }
    }
    result
}

/// A snapshot whose audit event could not be written is taken back, so a failed backup
/// leaves no snapshot the trail does not know; where the store refuses the delete (Object
/// Lock) the error says the snapshot stays.
async fn withdraw(repo: &Repository, id: &SnapshotId, cause: EngineError) -> EngineError {
    match repo.delete_snapshot(id).await {
        Ok(()) => cause,
        Err(e) => EngineError::Internal(format!(
            "{cause}; snapshot {id} stays in {} without its audit event ({e})",
            repo.address()
        )),
    }
}

fn check_replicas(lanes: &[Lane]) -> Result<()> {
    let first = &lanes[0];
    for other in &lanes[1..] {
        if !other.repo.is_replica_of(&first.repo) {
            return Err(EngineError::BadInput(format!(
                "regions {} and {} do not share a master key and chunker — create {} as a replica (`lifeboat apply` does) or use `lifeboat copy`",
                first.name, other.name, other.name
            )));
        }
    }
    Ok(())
}

fn check_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(EngineError::BadInput(
            "nothing to back up — name at least one path".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| EngineError::source_io(p, e))?;
        fs::symlink_metadata(&abs).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                EngineError::BadInput(format!("backup source {} does not exist — check the path", p.display()))
            }
            _ => EngineError::source_io(p, e),
        })?;
        let name = abs
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "root".into());
        if !names.insert(name.clone()) {
            return Err(EngineError::BadInput(format!(
                "two backup sources are both named {:?} — back them up separately or name their parent",
                name
            )));
        }
        out.push(abs);
    }
    Ok(out)
}

/// Load each active lane's index; a region whose index cannot be read drops out.
async fn load_indexes(lanes: &mut [Lane]) -> Vec<Arc<Index>> {
    let mut out = Vec::new();
    for lane in lanes.iter_mut().filter(|l| l.active()) {
        match lane.repo.load_index().await {
            Ok(i) => {
                lane.held = i.pack_ids().to_vec();
                let i = Arc::new(i);
                lane.index = Some(i.clone());
                out.push(i);
            }
            Err(e) => lane.drop_with(Dropped::Failed(e.into())),
        }
    }
    out
}

/// A snapshot a backup builds on: unchanged files are taken over from its tree.
struct Parent {
    id: SnapshotId,
    snapshot: Snapshot,
    tree: Tree,
    /// The anomaly signals of the dataset's earlier runs.
    history: Vec<Shares>,
}

/// What one backup run produced.
struct Done {
    id: SnapshotId,
    snapshot: Snapshot,
    unchanged: bool,
}

/// The latest snapshot of the same dataset and paths that every active region holds,
/// so files taken over from it are present everywhere.
async fn find_parent(lanes: &[Lane], opts: &BackupOptions, paths: &[String]) -> Result<Option<Parent>> {
    if opts.force_read {
        return Ok(None);
    }
    let active: Vec<&Lane> = lanes.iter().filter(|l| l.active()).collect();
    let mut common: Option<HashSet<SnapshotId>> = None;
    for lane in &active {
        let ids: HashSet<SnapshotId> = lane.repo.snapshot_ids().await?.into_iter().collect();
        common = Some(match common {
            None => ids,
            Some(c) => c.intersection(&ids).copied().collect(),
        });
    }
    let Some(primary) = active.first() else { return Ok(None) };
    let common = common.unwrap_or_default();
    let snaps = primary.repo.snapshots().await?;
    let history = super::anomaly::history(snaps.iter().map(|(_, s)| s), &opts.dataset, paths);
    let parent = snaps
        .into_iter()
        .rev()
        .find(|(id, s)| common.contains(id) && s.dataset == opts.dataset && s.paths == paths);
    match parent {
        Some((id, snapshot)) => {
            // The index `load_indexes` read for this region, not a second read of it.
            let index = match &primary.index {
                Some(index) => index.clone(),
                None => Arc::new(primary.repo.load_index().await?),
            };
            let tree = primary.repo.load_tree(&index, &snapshot.tree).await?;
            Ok(Some(Parent {
                id,
                snapshot,
                tree,
                history,
            }))
        }
        None => Ok(None),
    }
}

async fn run(
    lanes: &mut [Lane],
    opts: &BackupOptions,
    roots: Vec<PathBuf>,
    excludes: Excludes,
    progress: Arc<Progress>,
) -> Result<Done> {
    let started = Instant::now();
    let started_at = Utc::now();
    let time = opts.time.unwrap_or(started_at);
    let indexes = load_indexes(lanes).await;
    let Some(repo) = lanes.iter().find(|l| l.active()).map(|l| l.repo.clone()) else {
        return Err(no_region_left(lanes));
    };
    let paths: Vec<String> = roots.iter().map(|p| p.display().to_string()).collect();
    let mut parent = find_parent(lanes, opts, &paths).await?;
    let parent_tree = parent.as_mut().map(|p| std::mem::take(&mut p.tree));

    if !progress.unwatched.load(std::sync::atomic::Ordering::Relaxed) {
        spawn_prescan(roots.clone(), excludes.clone(), progress.clone());
    }
    let (chunk_tx, chunk_rx) = bounded::<Job>(CHUNK_QUEUE);
    let (sealed_tx, sealed_rx) = bounded::<Sealed>(CHUNK_QUEUE);
    let (pack_tx, pack_rx) = mpsc::channel::<Outgoing>(PACK_QUEUE);
    let compression = if opts.no_compression {
        Compression::OFF
    } else {
        repo.compression()
    };
    let judged = Arc::new(Compressibility::default());
    let sealers = spawn_sealers(&repo, compression, chunk_rx, sealed_tx, judged.clone());
    let packer = spawn_packer(&repo, sealed_rx, pack_tx);

    let lister = Lister::spawn(roots.clone(), excludes.clone());
    let runtime = tokio::runtime::Handle::current();
    let trees = TreesAhead::new(repo.clone(), indexes[0].clone(), runtime);
    let walker = Walker {
        repo: repo.clone(),
        indexes,
        pending: Mutex::new(HashSet::new()),
        tx: chunk_tx,
        excludes,
        progress,
        summary: Summary::default(),
        chunker: None,
        files: opts.signing.as_ref().map(|_| Vec::new()),
        signals: Collector::new(parent.as_ref().map(|p| &p.snapshot)),
        lister,
        trees,
        ahead: ReadAhead::default(),
    };
    let walked = std::thread::spawn(move || walker.walk_roots(&roots, parent_tree));
    let lag_wait = opts.lag_wait.unwrap_or(DEFAULT_LAG_WAIT);
    let uploaded = upload_packs(lanes, pack_rx, lag_wait).await;

    let walked = walked
        .join()
        .map_err(|_| EngineError::Internal("walker thread panicked".into()))?;
    for s in sealers {
        let _ = s.join();
    }
    let packed = packer
        .join()
        .map_err(|_| EngineError::Internal("packer thread panicked".into()))?;
    let uploaded = uploaded?;
    let (tree, mut summary, files) = walked?;
    packed?;
    summary.blobs_added = uploaded.blobs;
    summary.bytes_added = uploaded.bytes;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let before = parent.as_ref().map(|p| Before {
        id: p.id,
        snapshot: &p.snapshot,
        history: &p.history,
    });
    judge_run(&mut summary, &judged, opts.anomaly.as_ref(), before);
    let same = |p: &&Parent| p.snapshot.tree == tree && p.snapshot.tags == opts.tags;
    let young = |p: &&Parent| opts.skip_unchanged.is_some_and(|age| time - p.snapshot.time < age);
    if let Some(p) = parent.as_ref().filter(same).filter(young) {
        return Ok(Done {
            id: p.id,
            snapshot: p.snapshot.clone(),
            unchanged: true,
        });
    }
    let snapshot = Snapshot {
        time,
        host: opts.host.clone().unwrap_or_else(crate::repo::hostname),
        paths,
        tags: opts.tags.clone(),
        dataset: opts.dataset.clone(),
        tree,
        parent: parent.map(|p| p.id),
        summary,
    };
    let (id, sealed) = repo.seal_snapshot(&snapshot);
    let manifest = match (&opts.signing, files) {
        (Some(signing), Some(files)) => Some(signed_manifest(&repo, &id, &snapshot, files, signing)?),
        _ => None,
    };
    let record = audit::event(Action::Backup);
    for lane in lanes.iter_mut().filter(|l| l.active()) {
        // The manifest goes first: a signed dataset's snapshot never appears unsigned.
        let signed = match &manifest {
            Some(m) => lane.repo.put_manifest(&id, m.clone()).await,
            None => Ok(()),
        };
        if let Err(e) = signed {
            lane.drop_with(Dropped::Failed(e.into()));
            continue;
        }
        if let Err(e) = lane.repo.put_snapshot(&id, sealed.clone()).await {
            lane.drop_with(Dropped::Failed(e.into()));
            continue;
        }
        if let Err(e) = audit::append(
            &lane.repo,
            Record {
                written: vec![id],
                ..record.clone()
            },
        )
        .await
        {
            lane.drop_with(Dropped::Failed(withdraw(&lane.repo, &id, e).await));
            continue;
        }
        let now = Utc::now().max(time);
        if let Err(e) = keep_packs_locked(&lane.repo, &lane.held, &lane.uploaded, started_at, now).await {
            lane.drop_with(Dropped::Failed(locks_not_extended(e)));
        }
    }
    if !lanes.iter().any(Lane::active) {
        return Err(no_region_left(lanes));
    }
    Ok(Done {
        id,
        snapshot,
        unchanged: false,
    })
}

fn spawn_prescan(roots: Vec<PathBuf>, excludes: Excludes, progress: Arc<Progress>) {
    std::thread::spawn(move || {
        // Entries are looked at relative to their open directory (the file type from
        // the directory listing, the size from `statx` on its descriptor), not by
        // resolving each whole path again.
        fn scan(dir: &Path, root: &Path, ex: &Excludes, p: &Progress) {
            let Ok(entries) = fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let path = e.path();
                let rel = path.strip_prefix(root).unwrap_or(&path);
                match e.file_type() {
                    _ if ex.matches(rel, &path) => {}
                    Ok(t) if t.is_dir() => scan(&path, root, ex, p),
                    Ok(t) if t.is_file() => count(e.metadata().ok(), p),
                    _ => {}
                }
            }
        }
        fn count(meta: Option<fs::Metadata>, p: &Progress) {
            if let Some(m) = meta.filter(|m| m.is_file()) {
                p.add_total(1, m.len());
            }
        }
        for r in &roots {
            match fs::symlink_metadata(r) {
                Ok(m) if m.is_dir() => scan(r, r.parent().unwrap_or(r), &excludes, &progress),
                meta => count(meta.ok(), &progress),
            }
        }
        progress.totals_known.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

fn spawn_sealers(
    repo: &Repository,
    level: Compression,
    rx: Receiver<Job>,
    tx: Sender<Sealed>,
    judged: Arc<Compressibility>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..super::workers())
        .map(|_| {
            let (repo, rx, tx, judged) = (repo.clone(), rx.clone(), tx.clone(), judged.clone());
            std::thread::spawn(move || {
                for job in rx {
                    let sealed = repo.seal_as(&job.data, level, job.elements);
                    if job.kind == BlobKind::Data && level != Compression::OFF {
                        judged.add(job.data.len(), stored_raw(repo.cipher(), job.data.len(), sealed.len()));
                    }
                    let out = Sealed {
                        kind: job.kind,
                        id: job.id,
                        raw_length: job.data.len() as u32,
                        sealed,
                    };
                    if tx.send(out).is_err() {
                        return;
                    }
                }
            })
        })
        .collect()
}

fn spawn_packer(
    repo: &Repository,
    rx: Receiver<Sealed>,
    tx: mpsc::Sender<Outgoing>,
) -> std::thread::JoinHandle<Result<()>> {
    let repo = repo.clone();
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut builder = PackBuilder::new(repo.config().pack_size as usize);
        let slots = Arc::new(tokio::sync::Semaphore::new(PACKS_IN_MEMORY));
        let closed = || EngineError::Internal("upload stage stopped".into());
        let ship = |builder: &mut PackBuilder| -> Result<()> {
            let slot = runtime.block_on(slots.clone().acquire_owned()).map_err(|_| closed())?;
            let out = Outgoing {
                pack: builder.finish(&repo),
                slot: Arc::new(slot),
            };
            tx.blocking_send(out).map_err(|_| closed())
        };
        for s in rx {
            if builder.add(s.kind, s.id, s.raw_length, s.sealed) {
                ship(&mut builder)?;
            }
        }
        if !builder.is_empty() {
            ship(&mut builder)?;
        }
        Ok(())
    })
}

/// Walks the sources on its own thread, feeding new blobs to the sealers.
struct Walker {
    repo: Repository,
    /// The index of every region taking part: a blob is sealed unless all have it
    /// (and each region is sent only the packs holding blobs it lacks).
    indexes: Vec<Arc<Index>>,
    pending: Mutex<HashSet<BlobId>>,
    tx: Sender<Job>,
    excludes: Excludes,
    progress: Arc<Progress>,
    summary: Summary,
    /// Reused from file to file (its window is twice the largest chunk).
    chunker: Option<Chunker>,
    /// Every regular file with its digests, when the manifest is signed.
    files: Option<Vec<ManifestFile>>,
    /// Anomaly signals, compared directory by directory with the parent.
    signals: Collector,
    /// Lists the folders the walk is about to enter.
    lister: Lister,
    /// Reads the parent's trees of the folders the walk is about to enter.
    trees: TreesAhead,
    /// Opens the files the walk is about to read.
    ahead: ReadAhead,
}

/// Whether the file at `path`, listed as `meta`, is unchanged since the parent's tree
/// (`old`, by name) and so will not be read.
fn kept(old: &foldhash::HashMap<Cow<'_, OsStr>, &Node>, path: &Path, meta: &fs::Metadata) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    old.get(name).is_some_and(|o| unchanged(o, meta))
}

/// The subtree ids of a tree's folders, in its order.
fn subtrees(tree: &Tree) -> Vec<BlobId> {
    let dirs = tree.nodes.iter().filter(|n| n.kind == NodeKind::Dir);
    dirs.filter_map(|n| n.subtree).collect()
}

impl Walker {
    fn walk_roots(
        mut self,
        roots: &[PathBuf],
        parent: Option<Tree>,
    ) -> Result<(BlobId, Summary, Option<Vec<ManifestFile>>)> {
        let mut root = Tree::default();
        for path in roots {
            let base = path.parent().unwrap_or(path);
            let name = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "root".into());
            let old = parent.as_ref().and_then(|t| t.find(&name)).cloned();
            let meta = fs::symlink_metadata(path).map_err(|e| EngineError::source_io(path, e))?;
            if let Some(node) = self.entry(path, base, &name, &meta, old.as_ref())? {
                root.nodes.push(node);
            }
        }
        let id = self.store_tree(&mut root)?;
        self.summary.signals = Some(self.signals.finish());
        let files = self.files.map(|mut f| {
            f.sort_by(|a, b| a.path.cmp(&b.path));
            f
        });
        Ok((id, self.summary, files))
    }

    /// Queue a blob for sealing unless the repository or this run already has it.
    fn need(&self, id: &BlobId) -> bool {
        !self.indexes.iter().all(|i| i.contains(id)) && self.pending.lock().is_ok_and(|mut p| p.insert(*id))
    }

    fn send(&self, kind: BlobKind, id: BlobId, data: Vec<u8>, elements: Option<Elements>) -> Result<()> {
        self.tx
            .send(Job {
                kind,
                id,
                data,
                elements,
            })
            .map_err(|_| EngineError::Internal("sealing stage stopped".into()))
    }

    fn store_tree(&mut self, tree: &mut Tree) -> Result<BlobId> {
        let bytes = tree.encode();
        let id = self.repo.key().blob_id(&bytes);
        if self.need(&id) {
            self.send(BlobKind::Tree, id, bytes, None)?;
        }
        Ok(id)
    }

    /// The node for `path`, whose `lstat` is `meta`; `None` for what is not backed up.
    fn entry(
        &mut self,
        path: &Path,
        base: &Path,
        name: &std::ffi::OsStr,
        meta: &fs::Metadata,
        old: Option<&Node>,
    ) -> Result<Option<Node>> {
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut node = node_from_meta(name, NodeKind::Dir, meta);
            node.subtree = Some(self.dir(path, base, old)?);
            self.summary.dirs += 1;
            Ok(Some(node))
        } else if !self.excludes.included(path, base) {
            Ok(None)
        } else if ft.is_file() {
            let node = self.file(path, name, meta, old)?;
            self.list_file(path, base, &node);
            Ok(Some(node))
        } else if ft.is_symlink() {
            let mut node = node_from_meta(name, NodeKind::Symlink, meta);
            node.set_target(
                fs::read_link(path)
                    .map_err(|e| EngineError::source_io(path, e))?
                    .as_os_str(),
            );
            Ok(Some(node))
        } else {
            Ok(None) // sockets, fifos and devices are not backed up
        }
    }

    /// Record a regular file for the signed manifest, by its path inside the snapshot.
    fn list_file(&mut self, path: &Path, base: &Path, node: &Node) {
        let (Some(files), Some(blake3), Some(sha256)) = (self.files.as_mut(), node.hash, node.sha256) else {
            return;
        };
        let rel = path.strip_prefix(base).unwrap_or(path);
        files.push(ManifestFile {
            path: rel.to_string_lossy().into_owned(),
            size: node.size,
            sha256,
            blake3,
        });
    }

    fn dir(&mut self, path: &Path, base: &Path, old: Option<&Node>) -> Result<BlobId> {
        let old_id = old.filter(|n| n.kind == NodeKind::Dir).and_then(|n| n.subtree);
        let old_tree = match old_id {
            Some(id) => Some(self.trees.take(&id)?),
            None => None,
        };
        // Sorted, filtered and stated ahead of time by the lister.
        let entries = self.lister.take(path, base, &self.excludes)?;
        let old_names = old_tree.as_ref().map(Tree::by_name).unwrap_or_default();
        let below = old_tree.as_ref().map(subtrees).unwrap_or_default();
        let mut passed = 0;
        self.trees.start(below.iter().take(TREES_AHEAD).copied());
        let mut tree = Tree::default();
        let mut ahead_from = 0;
        for (i, e) in entries.iter().enumerate() {
            ahead_from = ahead_from.max(i);
            ahead_from += self.ahead.open_next(
                entries[ahead_from..].iter().map(|e| (e.path.as_path(), &e.meta)),
                |path, meta| self.excludes.included(path, base) && !kept(&old_names, path, meta),
            );
            let prev = old_names.get(e.name.as_os_str()).copied();
            if let Some(id) = prev.filter(|_| e.meta.is_dir()).and_then(|n| n.subtree) {
                // Keep the next subfolders' trees on their way while this one is walked.
                passed += below[passed..].iter().position(|b| *b == id).map_or(0, |k| k + 1);
                self.trees.start(below[passed..].iter().take(TREES_AHEAD).copied());
            }
            if let Some(node) = self.entry(&e.path, base, &e.name, &e.meta, prev)? {
                tree.nodes.push(node);
            }
        }
        self.ahead.forget_in(path);
        self.trees.forget(&below);
        let rel = path.strip_prefix(base).unwrap_or(path);
        self.signals.directory(rel, old_tree.as_ref(), &tree);
        match old_id.zip(old_tree) {
            Some((id, old)) if self.same_tree(&id, &old, &tree) => Ok(id),
            _ => self.store_tree(&mut tree),
        }
    }

    /// Whether the parent snapshot's tree `id` (decoded as `old`) holds exactly the
    /// entries just walked — every name and field, subtree ids included — and every
    /// region indexes it. Its id then stands for this directory as it is, without
    /// encoding and hashing the tree again: on a no-change run that is every directory.
    fn same_tree(&self, id: &BlobId, old: &Tree, new: &Tree) -> bool {
        old.nodes == new.nodes && self.indexes.iter().all(|i| i.contains(id))
    }

    fn file(&mut self, path: &Path, name: &std::ffi::OsStr, meta: &fs::Metadata, old: Option<&Node>) -> Result<Node> {
        let mut node = node_from_meta(name, NodeKind::File, meta);
        // An unchanged file reuses its old content only while every region still indexes
        // those blobs; otherwise (a pack lost and repaired out of the index) it is read
        // again, which stores the missing data anew.
        let stored = |o: &Node| o.content.iter().all(|b| self.indexes.iter().all(|i| i.contains(b)));
        let digested = |o: &Node| self.files.is_none() || o.sha256.is_some();
        if let Some(old) = old.filter(|o| unchanged(o, meta) && stored(o) && digested(o)) {
            node.content = old.content.clone();
            node.hash = old.hash;
            node.sha256 = old.sha256;
            self.summary.files_unchanged += 1;
            self.summary.bytes_total += node.size;
            self.progress.add_done(1, node.size);
            return Ok(node);
        }
        let file = match self.ahead.take(path) {
            Some(file) => file,
            None => fs::File::open(path).map_err(|e| EngineError::source_io(path, e))?,
        };
        let tensors = super::tensors::layout_of(&file, path, meta.len(), &mut self.summary.warnings)
            .map_err(|e| EngineError::source_io(path, e))?;
        let mut whole = ContentHasher::default();
        let mut sha256 = self.files.as_ref().map(|_| Sha256Hasher::default());
        let mut size = 0u64;
        let reader = HashingReader {
            inner: file,
            hasher: &mut whole,
            sha256: sha256.as_mut(),
        };
        let mut content = Vec::new();
        let mut chunker = self
            .chunker
            .take()
            .unwrap_or_else(|| Chunker::new(&self.repo.config().chunker));
        let split = chunker.split_at(
            reader,
            &tensors.as_ref().map(|t| t.cuts()).unwrap_or_default(),
            |e| EngineError::source_io(path, e),
            |chunk, at| {
                let id = self.repo.key().blob_id(chunk);
                size += chunk.len() as u64;
                self.progress.add_done(0, chunk.len() as u64);
                content.push(id);
                if self.need(&id) {
                    let elements = tensors.as_ref().and_then(|t| t.elements_at(at));
                    self.send(BlobKind::Data, id, chunk.to_vec(), elements)?;
                }
                Ok(())
            },
        );
        self.chunker = Some(chunker);
        split?;
        node.size = size;
        node.content = content;
        node.hash = Some(whole.finalize());
        node.sha256 = sha256.map(Sha256Hasher::finalize);
        if old.is_some() {
            self.summary.files_changed += 1
        } else {
            self.summary.files_new += 1
        };
        self.summary.bytes_read += size;
        self.summary.bytes_total += size;
        self.progress.add_done(1, 0);
        Ok(node)
    }
}

/// Hashes everything read through it, so the file is read once for chunking and hashing.
/// Signed datasets also get SHA-256 for their manifest.
struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut ContentHasher,
    sha256: Option<&'a mut Sha256Hasher>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(sha) = self.sha256.as_mut() {
            sha.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod backup_tests;

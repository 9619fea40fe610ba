//! Restore: rebuild a snapshot's files, verifying every blob before it is written.
//!
//! The snapshot's trees are walked first to plan the work (`plan`): directories, files
//! with their sizes, and for every pack the blobs needed from it and where each goes.
//! Packs are then fetched concurrently (`fetch`), each blob authenticated and checked
//! against its id, and written in place with `pwrite`. A file touched by a damaged or
//! missing blob is removed and named in the error: restore never leaves a silently
//! wrong file.
//!
//! Every write goes through [`target::Target`], relative to the opened target and
//! without following symlinks, so restore writes only inside its target. Files and
//! directories are owner-only until complete; mode (set-id bits included), times and
//! owner (as root) come last, directories deepest first. A target that is not empty is
//! refused unless the caller chose to overwrite; drills restore beside their target and
//! swap the result in (`place`).

mod dirs;
mod fetch;
mod open_files;
mod place;
mod plan;
mod target;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EngineError, Progress, Result, audit};
use crate::format::audit::{Action, Record};
use crate::format::ids::SnapshotId;
use crate::repo::{Index, Repository};
use fetch::{Damaged, Written, fetch_all};
use open_files::OpenFiles;
use plan::{Plan, Selector, Source, include_set, plan_tree};
use target::Target;

const PACK_FETCHES: usize = 4;
/// Blobs closer than this in a pack are fetched in one ranged read.
const MERGE_GAP: u32 = 1 << 20;
/// Longest merged read, which bounds restore memory to about `PACK_FETCHES` × this.
const MAX_SPAN: u32 = 4 << 20;

/// Where a restore puts the snapshot's entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// Into the target, which must be missing or empty.
    #[default]
    Empty,
    /// Into the target, replacing the entries the snapshot holds (`--overwrite`).
    Overwrite,
    /// Into a fresh owner-only directory beside the target, which then takes the
    /// target's place in one rename; the old one is removed only after success.
    Swap,
}

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub include: Vec<String>,
    /// When set, restore exactly these files (paths relative to the snapshot root).
    pub only: Option<std::collections::HashSet<PathBuf>>,
    pub placement: Placement,
    /// Afterwards remove every entry in the target the snapshot does not hold, so the
    /// target ends up exactly the snapshot (never following a symlink, never outside
    /// the target). Not with `include` or `only`.
    pub delete: bool,
    /// With `delete`: restore nothing, only list what would be removed.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Entries removed from the target because the snapshot does not hold them
    /// (`delete`), or that would be (`dry_run`); relative to the target.
    pub deleted: Vec<String>,
    pub dry_run: bool,
}

/// Restore snapshot `id` (already resolved) into `opts.target`, placed as `opts.placement` says.
pub async fn restore(
    repo: &Repository,
    id: &SnapshotId,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    if opts.delete && (!opts.include.is_empty() || opts.only.is_some()) {
        return Err(EngineError::BadInput(
            "restore --delete makes the target exactly the whole snapshot, so it cannot be combined with --include — \
             drop one of them"
                .into(),
        ));
    }
    if opts.dry_run {
        return preview_delete(repo, id, opts).await;
    }
    let result = placed(repo, id, opts, progress).await;
    let objects = vec![format!("snapshot {id}"), format!("target {}", opts.target.display())];
    // Restoring changes nothing in the repository, and read-only credentials must
    // still restore: the event is written when the store allows it.
    audit::note(
        repo,
        audit::finished(
            Record {
                objects,
                ..audit::event(Action::Restore)
            },
            &result,
        ),
    )
    .await;
    result
}

async fn placed(
    repo: &Repository,
    id: &SnapshotId,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    if opts.placement != Placement::Swap {
        let overwrite = opts.placement == Placement::Overwrite;
        return restore_into(repo, id, opts, &opts.target, overwrite, progress).await;
    }
    let beside = place::Beside::create(&opts.target)?;
    let result = match restore_into(repo, id, opts, &beside.path(), false, progress).await {
        Ok(outcome) => beside.swap_in().map(|()| outcome),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // What is left is owner-only; removing it is tidiness, and the error that
        // stopped the restore is the one to report.
        let _ = beside.discard();
    }
    result
}

async fn restore_into(
    repo: &Repository,
    id: &SnapshotId,
    opts: &RestoreOptions,
    into: &Path,
    overwrite: bool,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    let started = std::time::Instant::now();
    let (mut plan, index) = plan_snapshot(repo, id, opts).await?;
    let bytes: u64 = plan.files.iter().map(|f| f.1.size).sum();
    progress.add_total(plan.files.len() as u64, bytes);
    progress.totals_known.store(true, std::sync::atomic::Ordering::Relaxed);

    let written = Arc::new(create_all(Target::open(into, overwrite)?, &plan)?);
    let damaged = fetch_all(repo, &index, &written, std::mem::take(&mut plan.packs), &progress).await?;
    finish_files(&plan, &written, &damaged)?;
    // Extras go before directories get their times, which removing would change.
    let deleted = if opts.delete && damaged.is_empty() {
        delete_extras(&written.target, &plan)?
    } else {
        Vec::new()
    };
    finish_dirs(&plan, &written.target)?;
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
        deleted,
        dry_run: false,
    })
}

/// Walk the snapshot's trees into a restore plan (nothing is written).
async fn plan_snapshot(repo: &Repository, id: &SnapshotId, opts: &RestoreOptions) -> Result<(Plan, Arc<Index>)> {
    let snap = repo.load_snapshot(id).await?;
    let index = Arc::new(repo.load_index().await?);
    let include = match (&opts.only, include_set(&opts.include)?) {
        (Some(paths), _) => Some(Selector::Paths(paths.clone())),
        (None, globs) => globs.map(Selector::Globs),
    };
    let mut plan = Plan::default();
    let src = Source {
        repo,
        index: &index,
        snapshot: id,
    };
    plan_tree(&src, &snap.tree, Path::new(""), include.as_ref(), &mut plan).await?;
    Ok((plan, index))
}

/// Every path the snapshot puts in the target.
fn planned_paths(plan: &Plan) -> HashSet<PathBuf> {
    let all = plan.dirs.iter().chain(&plan.files).chain(&plan.links);
    all.map(|(rel, _)| rel.clone()).collect()
}

/// Remove what the target holds beyond the snapshot; the removed paths, relative.
fn delete_extras(target: &Target, plan: &Plan) -> Result<Vec<String>> {
    let extras = target.extras(&planned_paths(plan))?;
    for rel in &extras {
        target.remove(rel)?;
    }
    Ok(extras.iter().map(|p| p.display().to_string()).collect())
}

/// `--delete --dry-run`: what a restore would remove from the target; nothing is
/// written, and a target that does not exist yet has nothing to remove.
async fn preview_delete(repo: &Repository, id: &SnapshotId, opts: &RestoreOptions) -> Result<RestoreOutcome> {
    let (plan, _) = plan_snapshot(repo, id, opts).await?;
    let deleted = match std::fs::symlink_metadata(&opts.target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        _ => Target::open(&opts.target, true)?.extras(&planned_paths(&plan))?,
    };
    Ok(RestoreOutcome {
        snapshot: id.to_hex(),
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.links.len() as u64,
        bytes: plan.files.iter().map(|f| f.1.size).sum(),
        deleted: deleted.iter().map(|p| p.display().to_string()).collect(),
        dry_run: true,
        ..Default::default()
    })
}

fn damage_error(plan: &Plan, damaged: &Damaged) -> EngineError {
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

/// Make every directory (parents first), then every file at its final size.
fn create_all(target: Target, plan: &Plan) -> Result<Written> {
    for (rel, _) in &plan.dirs {
        target.make_dir(rel)?;
    }
    let files = plan
        .files
        .iter()
        .map(|(rel, node)| Ok((rel.clone(), target.create_file(rel, node.size)?)))
        .collect::<Result<Vec<_>>>()?;
    let open = OpenFiles::new(&writes_per_file(plan));
    Ok(Written { target, files, open })
}

/// How many blob writes each file of the plan waits for.
fn writes_per_file(plan: &Plan) -> Vec<u32> {
    let mut writes = vec![0u32; plan.files.len()];
    let dests = plan.packs.values().flat_map(|blobs| blobs.values().flatten());
    for d in dests {
        if let Some(n) = writes.get_mut(d.file) {
            *n = n.saturating_add(1);
        }
    }
    writes
}

/// Remove damaged files, give complete ones their metadata, create symlinks.
fn finish_files(plan: &Plan, written: &Written, damaged: &Damaged) -> Result<()> {
    let target = &written.target;
    for (i, (rel, key)) in written.files.iter().enumerate() {
        if damaged.contains_key(&i) {
            target.remove(rel)?;
        } else {
            target.finish_file(rel, *key, &plan.files[i].1)?;
        }
    }
    for (rel, node) in &plan.links {
        target.symlink(rel, &node.target().unwrap_or_default(), node)?;
    }
    Ok(())
}

/// Give directories their metadata, deepest first.
fn finish_dirs(plan: &Plan, target: &Target) -> Result<()> {
    for (rel, node) in plan.dirs.iter().rev() {
        target.finish_dir(rel, node)?;
    }
    Ok(())
}

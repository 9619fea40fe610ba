//! Planning a restore: walk the snapshot's trees once to list directories, files and
//! symlinks, and for every pack the blobs needed from it and where each one goes.
//! Nothing is written while planning, so a damaged or hostile tree (names are checked
//! when a tree is decoded, depth and expansion bounded by [`TreeBudget`]) stops the
//! restore before the target is touched.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::engine::tree_bounds::TreeBudget;
use crate::engine::{EngineError, Result, ls};
use crate::format::ids::{BlobId, PackId, SnapshotId};
use crate::format::tree::{Node, NodeKind};
use crate::repo::{Index, RepoError, Repository};

/// Which entries a restore takes: everything, glob matches, or an exact set of files.
pub(super) enum Selector {
    Globs(GlobSet),
    Paths(HashSet<PathBuf>),
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

/// One place a blob's bytes go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dest {
    pub file: usize,
    pub offset: u64,
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    pub dirs: Vec<(PathBuf, Node)>,
    pub files: Vec<(PathBuf, Node)>,
    pub links: Vec<(PathBuf, Node)>,
    /// pack → blob → destinations
    pub packs: HashMap<PackId, HashMap<BlobId, Vec<Dest>>>,
    /// What the walk has expanded so far.
    pub budget: TreeBudget,
}

pub(super) fn include_set(patterns: &[String]) -> Result<Option<GlobSet>> {
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

/// What a tree walk reads from: the repository, its index and the snapshot.
pub(super) struct Source<'a> {
    pub repo: &'a Repository,
    pub index: &'a Index,
    pub snapshot: &'a SnapshotId,
}

/// Add everything `include` selects below tree `tree_id` (at `rel`) to `plan`;
/// true if anything was.
pub(super) fn plan_tree<'a>(
    src: &'a Source<'a>,
    tree_id: &'a BlobId,
    rel: &'a Path,
    include: Option<&'a Selector>,
    plan: &'a mut Plan,
) -> futures::future::BoxFuture<'a, Result<bool>> {
    Box::pin(async move {
        let tree = ls::tree_at(src.repo, src.index, src.snapshot, rel, tree_id).await?;
        let depth = rel.components().count();
        (plan.budget).enter(src.snapshot, rel, depth, tree_id, tree.nodes.len())?;
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
                        src,
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
                    add_file(src.index, plan, path, node)?;
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

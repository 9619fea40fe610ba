//! List the files of a snapshot.

use std::path::{Path, PathBuf};

use super::Result;
use super::tree_bounds::TreeBudget;
use crate::format::ids::{BlobId, ContentHash, SnapshotId};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::{Index, RepoError, Repository};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub path: PathBuf,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    /// Whole-file hash recorded at backup (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<ContentHash>,
}

/// Every entry of snapshot `snapshot` (root tree `root`), depth first, in name order.
/// The walk is iterative and bounded (see [`TreeBudget`]).
pub async fn list(repo: &Repository, index: &Index, snapshot: &SnapshotId, root: &BlobId) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut budget = TreeBudget::default();
    let mut stack: Vec<(PathBuf, usize, BlobId)> = vec![(PathBuf::new(), 0, *root)];
    while let Some((dir, depth, id)) = stack.pop() {
        let tree = tree_at(repo, index, snapshot, &dir, &id).await?;
        budget.enter(snapshot, &dir, depth, &id, tree.nodes.len())?;
        let mut subdirs = Vec::new();
        for node in tree.nodes {
            let path = dir.join(node.os_name());
            if let Some(sub) = node.subtree {
                subdirs.push((path.clone(), depth + 1, sub));
            }
            out.push(entry(&path, &node));
        }
        stack.extend(subdirs.into_iter().rev());
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn entry(path: &Path, node: &Node) -> Entry {
    Entry {
        path: path.to_path_buf(),
        kind: node.kind,
        size: node.size,
        mode: node.mode,
        mtime_ns: node.mtime_ns,
        hash: node.hash,
    }
}

/// A directory's path within a snapshot as shown in messages (`/` for the root).
pub fn shown_path(path: &Path) -> String {
    format!("/{}", path.display())
}

/// Load the tree of directory `path` in snapshot `snapshot`; damage names both.
pub async fn tree_at(
    repo: &Repository,
    index: &Index,
    snapshot: &SnapshotId,
    path: &Path,
    id: &BlobId,
) -> Result<Tree> {
    repo.load_tree(index, id).await.map_err(|e| {
        match e {
            RepoError::Damaged { what, detail } => RepoError::Damaged {
                what: format!("snapshot {}: {what} at {}", snapshot.short(), shown_path(path)),
                detail,
            },
            RepoError::MissingBlob(blob) => RepoError::MissingBlob(format!(
                "{blob} (the tree of snapshot {} at {})",
                snapshot.short(),
                shown_path(path)
            )),
            other => other,
        }
        .into()
    })
}

//! List the files of a snapshot.

use std::path::{Path, PathBuf};

use super::Result;
use crate::format::ids::{BlobId, ContentHash};
use crate::format::tree::{Node, NodeKind};
use crate::repo::{Index, Repository};

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

/// Every entry under a snapshot's root tree, depth first, in name order.
pub async fn list(repo: &Repository, index: &Index, root: &BlobId) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, BlobId)> = vec![(PathBuf::new(), *root)];
    while let Some((dir, id)) = stack.pop() {
        let tree = repo.load_tree(index, &id).await?;
        let mut subdirs = Vec::new();
        for node in tree.nodes {
            let path = dir.join(node.os_name());
            if let Some(sub) = node.subtree {
                subdirs.push((path.clone(), sub));
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

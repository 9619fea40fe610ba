//! File-system metadata ↔ tree nodes, exclude patterns, and the parent snapshot's
//! trees read ahead of the walk (folders are listed ahead by `lister`).

use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::{EngineError, Result};
use crate::format::ids::BlobId;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::{Index, RepoError, Repository};

/// Fill a node's metadata fields from `lstat` results.
pub fn node_from_meta(name: &std::ffi::OsStr, kind: NodeKind, m: &Metadata) -> Node {
    let mut n = Node::new(name, kind);
    n.mode = m.mode() & 0o7777;
    n.uid = m.uid();
    n.gid = m.gid();
    n.mtime_ns = mtime_ns(m);
    n.ctime_ns = ctime_ns(m);
    n.inode = m.ino();
    n.size = if kind == NodeKind::File { m.len() } else { 0 };
    n
}

fn mtime_ns(m: &Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn ctime_ns(m: &Metadata) -> i64 {
    m.ctime() * 1_000_000_000 + m.ctime_nsec()
}

/// Whether a file whose `lstat` is `m` can be taken over from the parent snapshot's
/// node `old` without reading it.
pub fn unchanged(old: &Node, m: &Metadata) -> bool {
    old.kind == NodeKind::File
        && old.size == m.len()
        && old.mtime_ns == mtime_ns(m)
        && old.ctime_ns == ctime_ns(m)
        && old.inode == m.ino()
        && old.hash.is_some()
}

/// Exclude patterns: a pattern without `/` matches a name anywhere; one with `/`
/// matches the path relative to the backup root (or an absolute path).
#[derive(Debug, Clone)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
    /// When set, only files matching it are taken (directories are always walked).
    includes: Option<GlobSet>,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p.trim_start_matches("./"))
                .map_err(|e| EngineError::BadInput(format!("invalid exclude pattern {p:?}: {e}")))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| EngineError::BadInput(e.to_string()));
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
            includes: None,
        })
    }

    /// Restrict files to those matching `patterns` (relative to the backup root).
    pub fn with_includes(mut self, patterns: &[String]) -> Result<Self> {
        if patterns.is_empty() {
            return Ok(self);
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p).map_err(|e| EngineError::BadInput(format!("invalid include pattern {p:?}: {e}")))?);
        }
        self.includes = Some(b.build().map_err(|e| EngineError::BadInput(e.to_string()))?);
        Ok(self)
    }

    /// Whether a non-directory entry passes the include filter.
    pub fn included(&self, abs: &Path, base: &Path) -> bool {
        let Some(includes) = &self.includes else {
            return true;
        };
        let rel = abs.strip_prefix(base).unwrap_or(abs);
        // Paths are matched without the root folder's own name too, so `**/*.json`
        // and `models/*.json` both work for a source folder `data`.
        let inner: std::path::PathBuf = rel.components().skip(1).collect();
        includes.is_match(rel) || includes.is_match(&inner)
    }

    /// Whether no exclude pattern was given, so no entry needs matching: a walk of
    /// many small files then builds no match candidate per entry.
    fn excludes_nothing(&self) -> bool {
        self.names.is_empty() && self.paths.is_empty()
    }

    /// Whether the entry at `abs`, in a backup of a child of `base`, is excluded.
    pub fn excludes(&self, abs: &Path, base: &Path) -> bool {
        if self.excludes_nothing() {
            return false;
        }
        self.matches(abs.strip_prefix(base).unwrap_or(abs), abs)
    }

    pub fn matches(&self, rel: &Path, abs: &Path) -> bool {
        if self.excludes_nothing() {
            return false;
        }
        let name_hit = rel.file_name().is_some_and(|n| self.names.is_match(n));
        name_hit || self.paths.is_match(rel) || self.paths.is_match(abs)
    }
}

/// One entry of a folder, with its `lstat` (symlinks are not followed).
#[derive(Debug)]
pub struct Listed {
    pub name: OsString,
    pub path: PathBuf,
    pub meta: Metadata,
}

/// How many of a folder's subfolders have their parent-snapshot trees read ahead.
pub const TREES_AHEAD: usize = 4;

/// Reads the parent snapshot's trees of the folders the walk is about to enter, on the
/// blocking pool and a few at a time: reading, opening and decoding them is a third of
/// a no-change walk's work, which then overlaps the walker's comparing.
pub struct TreesAhead {
    repo: Repository,
    index: Arc<Index>,
    runtime: Handle,
    started: HashMap<BlobId, JoinHandle<std::result::Result<Tree, RepoError>>>,
}

impl TreesAhead {
    pub fn new(repo: Repository, index: Arc<Index>, runtime: Handle) -> Self {
        Self {
            repo,
            index,
            runtime,
            started: HashMap::new(),
        }
    }

    /// Start reading each of `ids` not already being read.
    pub fn start(&mut self, ids: impl IntoIterator<Item = BlobId>) {
        for id in ids {
            if self.started.contains_key(&id) {
                continue;
            }
            let (repo, index, runtime) = (self.repo.clone(), self.index.clone(), self.runtime.clone());
            let task = self
                .runtime
                .spawn_blocking(move || runtime.block_on(repo.load_tree(&index, &id)));
            self.started.insert(id, task);
        }
    }

    /// The tree `id`: as read ahead when it was started, read now when not.
    pub fn take(&mut self, id: &BlobId) -> Result<Tree> {
        if let Some(task) = self.started.remove(id)
            && let Ok(read) = self.runtime.block_on(task)
        {
            return Ok(read?);
        }
        Ok(self.runtime.block_on(self.repo.load_tree(&self.index, id))?)
    }

    /// Drop what was started for `ids` and not taken (folders gone since the parent).
    pub fn forget(&mut self, ids: &[BlobId]) {
        for id in ids {
            if let Some(task) = self.started.remove(id) {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_file_is_unchanged_only_while_size_times_and_inode_are_those_of_its_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mut old = node_from_meta("f".as_ref(), NodeKind::File, &meta);
        assert!(!unchanged(&old, &meta), "a node never hashed is read again");
        old.hash = Some(crate::format::ids::ContentHasher::default().finalize());
        assert!(unchanged(&old, &meta));
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert!(
            !unchanged(&old, &fs::symlink_metadata(&path).unwrap()),
            "mtime and ctime moved"
        );
        let mut other = old.clone();
        other.inode += 1;
        assert!(!unchanged(&other, &meta));
        other = old.clone();
        other.size += 1;
        assert!(!unchanged(&other, &meta));
        other = old.clone();
        other.kind = NodeKind::Symlink;
        assert!(!unchanged(&other, &meta));
    }

    #[test]
    fn name_and_path_patterns() {
        let ex = Excludes::new(&["*.tmp".into(), "cache/**".into()]).unwrap();
        assert!(ex.matches(Path::new("a/b/x.tmp"), Path::new("/r/a/b/x.tmp")));
        assert!(ex.matches(Path::new("cache/z"), Path::new("/r/cache/z")));
        assert!(!ex.matches(Path::new("a/cache.txt"), Path::new("/r/a/cache.txt")));
    }
}

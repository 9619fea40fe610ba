//! File-system metadata ↔ tree nodes, and exclude patterns.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{EngineError, Result};
use crate::format::tree::{Node, NodeKind};

/// Fill a node's metadata fields from `lstat` results.
pub fn node_from_meta(name: &std::ffi::OsStr, kind: NodeKind, m: &Metadata) -> Node {
    let mut n = Node::new(name, kind);
    n.mode = m.mode() & 0o7777;
    n.uid = m.uid();
    n.gid = m.gid();
    n.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
    n.ctime_ns = m.ctime() * 1_000_000_000 + m.ctime_nsec();
    n.inode = m.ino();
    n.size = if kind == NodeKind::File { m.len() } else { 0 };
    n
}

/// Whether a file can be taken over from the parent snapshot without reading it.
pub fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && old.size == new.size
        && old.mtime_ns == new.mtime_ns
        && old.ctime_ns == new.ctime_ns
        && old.inode == new.inode
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

    pub fn matches(&self, rel: &Path, abs: &Path) -> bool {
        if self.excludes_nothing() {
            return false;
        }
        let name_hit = rel.file_name().is_some_and(|n| self.names.is_match(n));
        name_hit || self.paths.is_match(rel) || self.paths.is_match(abs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_path_patterns() {
        let ex = Excludes::new(&["*.tmp".into(), "cache/**".into()]).unwrap();
        assert!(ex.matches(Path::new("a/b/x.tmp"), Path::new("/r/a/b/x.tmp")));
        assert!(ex.matches(Path::new("cache/z"), Path::new("/r/cache/z")));
        assert!(!ex.matches(Path::new("a/cache.txt"), Path::new("/r/a/cache.txt")));
    }
}

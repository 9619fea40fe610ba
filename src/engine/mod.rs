//! Operations over repositories: backup, restore, check, ls.
//!
//! CPU work (chunking, hashing, compression, encryption) runs on dedicated threads fed
//! by bounded channels; storage calls are async. Every operation reports progress
//! through [`Progress`] counters that a terminal or the daemon may poll.

pub mod anomaly;
pub mod audit;
pub mod backup;
pub mod check;
pub mod copy;
pub mod fanout;
pub mod forget;
pub mod immutable;
mod lister;
pub mod ls;
pub mod manifest;
pub mod manifest_copy;
pub mod pinned_lock;
pub mod progress;
pub mod prune;
mod read_ahead;
pub mod repair;
pub mod restore;
pub mod signing_key;
pub mod sync;
mod tensors;
pub mod tree_bounds;
pub mod verify;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("cannot read {path}: {source} — fix its permissions or leave it out with --exclude")]
    Source { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source} — check free space and permissions of the target")]
    Target { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    BadInput(String),
    #[error("{message}")]
    Damage { message: String, files: Vec<String> },
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    pub fn source_io(path: &Path, source: std::io::Error) -> Self {
        EngineError::Source {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn target_io(path: &Path, source: std::io::Error) -> Self {
        EngineError::Target {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// Live counters of a running operation.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Set once the totals are complete (the pre-scan finished).
    pub totals_known: std::sync::atomic::AtomicBool,
    /// Nothing shows these counters (`--quiet`), so a backup skips the pre-scan that
    /// only counts its totals.
    pub unwatched: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// Counters nobody reads while the operation runs.
    pub fn unwatched() -> Self {
        let p = Self::default();
        p.unwatched.store(true, Ordering::Relaxed);
        p
    }
    pub fn add_done(&self, files: u64, bytes: u64) {
        self.files_done.fetch_add(files, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.files_done.load(Ordering::Relaxed),
            self.bytes_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            self.bytes_total.load(Ordering::Relaxed),
        )
    }
}

/// Number of CPU worker threads to use.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 16)
}

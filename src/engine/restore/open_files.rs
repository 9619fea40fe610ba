//! Files being filled by a restore, each kept open across the blobs that fill it.
//!
//! A checkpoint of a few GiB is hundreds of blobs from dozens of packs; reopening it
//! for every blob (a walk down its directories, an open and a check of its identity)
//! cost more kernel time than the writes. The descriptors are held in a small cache
//! bounded by [`OPEN_FILES`], so a restore of millions of files still holds only a few.
//! Each file counts the blob writes it still waits for, and the write that completes
//! it closes it, so the cache holds files still being filled. Metadata still comes
//! last, once the whole restore is through (`finish_files`).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Most descriptors of files being filled held open at once.
pub(super) const OPEN_FILES: usize = 64;

/// Open descriptors by file number, the oldest closed first once the cache is full.
#[derive(Debug, Default)]
struct Cache {
    open: HashMap<usize, Arc<File>>,
    order: VecDeque<usize>,
}

/// Per-file progress of a restore and the descriptors of files being filled.
#[derive(Debug)]
pub(super) struct OpenFiles {
    cache: Mutex<Cache>,
    /// Blob writes each file still waits for.
    remaining: Vec<AtomicU32>,
}

impl OpenFiles {
    /// Track files expecting `writes[i]` blob writes each.
    pub fn new(writes: &[u32]) -> Self {
        Self {
            cache: Mutex::new(Cache::default()),
            remaining: writes.iter().map(|&n| AtomicU32::new(n)).collect(),
        }
    }

    /// File `file`'s open descriptor, opened with `open` if the cache does not hold it.
    pub fn get_or_open<E>(&self, file: usize, open: impl FnOnce() -> Result<File, E>) -> Result<Arc<File>, E> {
        if let Some(f) = self.lock().open.get(&file) {
            return Ok(f.clone());
        }
        // Opened outside the lock: two writers racing on one file both open it, harmlessly.
        let fresh = Arc::new(open()?);
        let mut cache = self.lock();
        let kept = cache.open.entry(file).or_insert_with(|| fresh.clone()).clone();
        if Arc::ptr_eq(&kept, &fresh) {
            cache.order.push_back(file);
            while cache.open.len() > OPEN_FILES {
                let Some(oldest) = cache.order.pop_front() else { break };
                cache.open.remove(&oldest);
            }
        }
        Ok(kept)
    }

    /// Count one blob written to `file`; true when that was the last one it waited for.
    pub fn written(&self, file: usize) -> bool {
        self.remaining
            .get(file)
            .is_some_and(|n| n.fetch_sub(1, Ordering::AcqRel) == 1)
    }

    /// Drop `file`'s descriptor from the cache (it is complete).
    pub fn close(&self, file: usize) -> Option<Arc<File>> {
        let mut cache = self.lock();
        cache.order.retain(|&f| f != file);
        cache.open.remove(&file)
    }

    /// Descriptors currently held open.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A writer that panicked leaves the cache consistent (each step is a single
        // map or queue operation), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(dir: &tempfile::TempDir, n: usize) -> File {
        File::create(dir.path().join(format!("f{n}"))).unwrap()
    }

    #[test]
    fn a_file_is_opened_once_for_all_its_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(&[3]);
        let mut opens = 0;
        for _ in 0..3 {
            files
                .get_or_open(0, || {
                    opens += 1;
                    Ok::<_, std::io::Error>(scratch(&dir, 0))
                })
                .unwrap();
        }
        assert_eq!(opens, 1);
        assert_eq!(files.held(), 1);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let n = OPEN_FILES + 10;
        let files = OpenFiles::new(&vec![1; n]);
        for i in 0..n {
            files
                .get_or_open(i, || Ok::<_, std::io::Error>(scratch(&dir, i)))
                .unwrap();
        }
        assert_eq!(files.held(), OPEN_FILES);
        // The oldest went first: file 0 must be opened again.
        let mut reopened = false;
        files
            .get_or_open(0, || {
                reopened = true;
                Ok::<_, std::io::Error>(scratch(&dir, 0))
            })
            .unwrap();
        assert!(reopened);
    }

    #[test]
    fn a_file_completes_on_its_last_write_only() {
        let files = OpenFiles::new(&[2, 1]);
        assert!(!files.written(0));
        assert!(files.written(1));
        assert!(files.written(0));
    }

    #[test]
    fn closing_a_file_drops_it_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(&[1, 1]);
        files
            .get_or_open(0, || Ok::<_, std::io::Error>(scratch(&dir, 0)))
            .unwrap();
        files
            .get_or_open(1, || Ok::<_, std::io::Error>(scratch(&dir, 1)))
            .unwrap();
        assert!(files.close(0).is_some());
        assert!(files.close(0).is_none());
        assert_eq!(files.held(), 1);
    }
}

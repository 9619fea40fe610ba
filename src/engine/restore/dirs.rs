//! Directories of the restore target kept open, so files are created, filled and
//! finished relative to their directory's descriptor without walking down to it again.
//!
//! Reaching a directory safely takes one `openat(O_NOFOLLOW | O_DIRECTORY)` per path
//! component from the target's own descriptor. Done for every file three times (create,
//! fill, finish), that walk was most of a small-file restore's system calls. A
//! directory reached once that way is the one this restore made or kept: its
//! descriptor keeps naming that very directory, so reusing it follows no symlink
//! planted later, and nothing written through it can land in a directory someone else
//! chose. At most [`OPEN_DIRS`] are held, the one opened longest ago dropped first.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most directory descriptors held at once.
pub(super) const OPEN_DIRS: usize = 64;

#[derive(Debug, Default)]
struct Held {
    open: HashMap<PathBuf, Arc<OwnedFd>>,
    order: VecDeque<PathBuf>,
}

/// Open directories by their path relative to the target.
#[derive(Debug, Default)]
pub(super) struct OpenDirs(Mutex<Held>);

impl OpenDirs {
    /// Directory `rel`'s descriptor, opened with `open` if not held.
    pub fn get_or_open(&self, rel: &Path, open: impl FnOnce() -> io::Result<OwnedFd>) -> io::Result<Arc<OwnedFd>> {
        if let Some(fd) = self.lock().open.get(rel) {
            return Ok(fd.clone());
        }
        let fresh = Arc::new(open()?);
        let mut held = self.lock();
        if held.open.insert(rel.to_path_buf(), fresh.clone()).is_none() {
            held.order.push_back(rel.to_path_buf());
        }
        while held.open.len() > OPEN_DIRS {
            let Some(oldest) = held.order.pop_front() else { break };
            held.open.remove(&oldest);
        }
        Ok(fresh)
    }

    /// Forget `rel` and everything held below it (it is being removed or replaced).
    pub fn forget(&self, rel: &Path) {
        let mut held = self.lock();
        held.open.retain(|p, _| !p.starts_with(rel));
        held.order.retain(|p| !p.starts_with(rel));
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Each step under the lock is one map or queue operation, so a writer that
        // panicked leaves it consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_tmp() -> io::Result<OwnedFd> {
        Ok(std::fs::File::open(std::env::temp_dir())?.into())
    }

    #[test]
    fn a_directory_is_opened_once_while_held() {
        let dirs = OpenDirs::default();
        let mut opens = 0;
        for _ in 0..3 {
            dirs.get_or_open(Path::new("a/b"), || {
                opens += 1;
                open_tmp()
            })
            .unwrap();
        }
        assert_eq!(opens, 1);
    }

    /// Whether asking for `rel` opens it anew (it was not held).
    fn reopens(dirs: &OpenDirs, rel: &str) -> bool {
        let mut opened = false;
        dirs.get_or_open(Path::new(rel), || {
            opened = true;
            open_tmp()
        })
        .unwrap();
        opened
    }

    #[test]
    fn no_more_than_the_bound_are_held_and_the_oldest_goes_first() {
        let dirs = OpenDirs::default();
        for i in 0..OPEN_DIRS + 5 {
            dirs.get_or_open(Path::new(&format!("d{i}")), open_tmp).unwrap();
        }
        assert_eq!(dirs.held(), OPEN_DIRS);
        assert!(reopens(&dirs, "d0"));
    }

    #[test]
    fn forgetting_a_directory_forgets_what_is_below_it() {
        let dirs = OpenDirs::default();
        for rel in ["a", "a/b", "a/b/c", "ab", "z"] {
            dirs.get_or_open(Path::new(rel), open_tmp).unwrap();
        }
        dirs.forget(Path::new("a"));
        assert_eq!(dirs.held(), 2, "ab and z stay");
        assert!(reopens(&dirs, "a/b"));
    }
}

//! Asking the disk for the next files before the walk reads them.
//!
//! The walk reads one file at a time. A large file keeps the disk busy by itself (the
//! kernel reads ahead within it), but a folder of small files costs one cold read
//! after another: the walk waits for each, and the sealing threads wait for the walk.
//! So the walk opens the next few files it will read, in its own order, and tells the
//! kernel it will need their first bytes soon (`posix_fadvise(WILLNEED)`): the reads
//! are queued together, and by the time the walk reaches a file it is in memory. The
//! descriptors are handed to the walk, so no file is opened twice. Only files that are
//! going to be read are opened (a no-change run opens none); a file is opened without
//! following a symlink and without blocking, and handed out only if it is still the
//! regular file the folder listing saw — anything else is left to the walk's own open,
//! which names the error. It is a hint: nothing read ahead changes what is stored.

use std::collections::VecDeque;
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// At most this many files are open ahead of the walk.
const FILES_AHEAD: usize = 32;

/// At most this many bytes are asked for ahead of the walk: a few hundred small files'
/// worth, a sliver of a large one (whose own reads the kernel reads ahead of).
const BYTES_AHEAD: u64 = 16 << 20;

/// Files opened ahead of the walk, in the order it will read them.
#[derive(Default)]
pub(super) struct ReadAhead {
    open: VecDeque<Ahead>,
    /// Bytes asked for in files not yet taken.
    asked: u64,
}

struct Ahead {
    path: PathBuf,
    file: File,
    asked: u64,
}

impl ReadAhead {
    /// Open and hint the next files among `next` (`(path, lstat)` of a folder's entries
    /// after the one being walked) for which `reads` says the walk will read them,
    /// while the budget lasts. It stops at the first folder, whose own files come
    /// before the rest. Returns how many entries it is done with: the caller passes
    /// the entries after those next time.
    pub(super) fn open_next<'a>(
        &mut self,
        next: impl IntoIterator<Item = (&'a Path, &'a Metadata)>,
        mut reads: impl FnMut(&Path, &Metadata) -> bool,
    ) -> usize {
        let mut done = 0;
        for (path, meta) in next {
            if meta.is_dir() || self.open.len() >= FILES_AHEAD || self.asked >= BYTES_AHEAD {
                break;
            }
            done += 1;
            if meta.is_file() && reads(path, meta) {
                self.open_one(path, meta);
            }
        }
        done
    }

    fn open_one(&mut self, path: &Path, meta: &Metadata) {
        let Some(file) = open_same(path, meta) else {
            return;
        };
        let asked = meta.len().min(BYTES_AHEAD - self.asked);
        hint(&file, asked);
        self.asked += asked;
        self.open.push_back(Ahead {
            path: path.to_path_buf(),
            file,
            asked,
        });
    }

    /// The file at `path` if it was opened ahead (handed out once).
    pub(super) fn take(&mut self, path: &Path) -> Option<File> {
        let at = self.open.iter().position(|a| a.path == path)?;
        let ahead = self.open.remove(at)?;
        self.asked -= ahead.asked;
        Some(ahead.file)
    }

    /// Close whatever was opened ahead below `dir` and not taken (a file the walk
    /// skipped after all).
    pub(super) fn forget_in(&mut self, dir: &Path) {
        let before = self.open.len();
        self.open.retain(|a| a.path.parent() != Some(dir));
        if self.open.len() != before {
            self.asked = self.open.iter().map(|a| a.asked).sum();
        }
    }
}

/// `path` opened for reading if it is still the regular file `meta` describes.
fn open_same(path: &Path, meta: &Metadata) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let now = file.metadata().ok()?;
    let same = now.is_file() && now.dev() == meta.dev() && now.ino() == meta.ino();
    // Reads block as the walk's own would (the flag only kept a swapped-in pipe from
    // stalling the open).
    (same && rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty()).is_ok()).then_some(file)
}

/// Ask the kernel to start reading the first `len` bytes of `file`. A refusal only
/// means no read-ahead.
fn hint(file: &File, len: u64) {
    if len > 0 {
        let _ = rustix::fs::fadvise(file, 0, std::num::NonZeroU64::new(len), rustix::fs::Advice::WillNeed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn folder(files: &[(&str, usize)]) -> (tempfile::TempDir, Vec<(PathBuf, Metadata)>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in files {
            let path = dir.path().join(name);
            if *len == usize::MAX {
                std::fs::create_dir(&path).unwrap();
            } else {
                std::fs::write(&path, vec![b'x'; *len]).unwrap();
            }
        }
        let entries = files
            .iter()
            .map(|(name, _)| {
                let path = dir.path().join(name);
                let meta = std::fs::symlink_metadata(&path).unwrap();
                (path, meta)
            })
            .collect();
        (dir, entries)
    }

    fn refs(entries: &[(PathBuf, Metadata)]) -> impl Iterator<Item = (&Path, &Metadata)> {
        entries.iter().map(|(p, m)| (p.as_path(), m))
    }

    #[test]
    fn opens_the_files_the_walk_will_read_up_to_the_next_folder_and_hands_each_out_once() {
        let (_dir, entries) = folder(&[("a", 10), ("b", 20), ("c", 30), ("d", usize::MAX), ("e", 5)]);
        let mut ahead = ReadAhead::default();
        let done = ahead.open_next(refs(&entries), |p, _| !p.ends_with("b"));
        assert_eq!(done, 3, "stops at the folder d");
        assert_eq!(ahead.asked, 40);
        assert!(ahead.take(&entries[1].0).is_none(), "b is not going to be read");
        let mut text = String::new();
        let mut c = ahead.take(&entries[2].0).unwrap();
        let flags = rustix::fs::fcntl_getfl(&c).unwrap();
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK), "reads as any other");
        c.read_to_string(&mut text).unwrap();
        assert_eq!(text, "x".repeat(30));
        assert!(ahead.take(&entries[2].0).is_none(), "handed out once");
        assert_eq!(ahead.asked, 10);
        ahead.forget_in(_dir.path());
        assert!(ahead.take(&entries[0].0).is_none());
        assert_eq!(ahead.asked, 0);
        assert_eq!(ahead.open_next(refs(&entries[4..]), |_, _| true), 1);
        assert!(ahead.take(&entries[4].0).is_some());
    }

    #[test]
    fn the_budget_bounds_the_files_and_the_bytes_asked_for() {
        let names: Vec<String> = (0..FILES_AHEAD + 5).map(|i| format!("f{i:03}")).collect();
        let files: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let (_dir, entries) = folder(&files);
        let mut ahead = ReadAhead::default();
        assert_eq!(ahead.open_next(refs(&entries), |_, _| true), FILES_AHEAD);
        assert!(ahead.take(&entries[0].0).is_some());
        assert_eq!(ahead.open_next(refs(&entries[FILES_AHEAD..]), |_, _| true), 1);

        let (_big, entries) = folder(&[("big", (BYTES_AHEAD + 7) as usize), ("next", 1)]);
        let mut ahead = ReadAhead::default();
        assert_eq!(ahead.open_next(refs(&entries), |_, _| true), 1, "the budget is spent");
        assert_eq!(ahead.asked, BYTES_AHEAD);
        assert!(ahead.take(&entries[0].0).is_some());
        assert_eq!(ahead.asked, 0);
    }

    #[test]
    fn a_path_that_is_no_longer_the_listed_regular_file_is_not_opened() {
        let (dir, entries) = folder(&[("moved", 3), ("linked", 3), ("piped", 3), ("target", 4)]);
        // The listed inode stays alive (linked elsewhere), so the new file cannot reuse it.
        std::fs::hard_link(&entries[0].0, dir.path().join("kept")).unwrap();
        std::fs::write(dir.path().join("new"), b"new file").unwrap();
        std::fs::rename(dir.path().join("new"), &entries[0].0).unwrap();
        std::fs::remove_file(&entries[1].0).unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), &entries[1].0).unwrap();
        std::fs::remove_file(&entries[2].0).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &entries[2].0,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let mut ahead = ReadAhead::default();
        assert_eq!(ahead.open_next(refs(&entries[..3]), |_, _| true), 3);
        for (path, _) in &entries[..3] {
            assert!(ahead.take(path).is_none(), "{} was handed out", path.display());
        }
        assert_eq!(ahead.asked, 0);
    }
}

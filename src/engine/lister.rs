//! Folders listed ahead of the walk, by a few threads at once.
//!
//! On a cold cache every `lstat` of a file waits for its inode block, one read at a
//! time: 200,000 files take 1.4 s to state from one thread here, 0.66 s from four,
//! because the disk serves several reads at once. So [`Lister`] lists (reads, sorts,
//! filters and `lstat`s) up to eight folders ahead on [`LISTING_THREADS`] threads, always the next ones the walk will enter, and the walk
//! only compares and encodes.
//!
//! The walk enters folders depth first, entries by name. A folder's place in that
//! order is its [`Place`]: the position of each folder on the way down among its
//! parent's subfolders (a root's, among the roots). Places compare as the walk goes,
//! so the threads always start the earliest folder known, and a folder the walk has
//! gone past will never be asked for and is dropped. A walk that asks for a folder the
//! lister does not know (a root replaced between two looks) lists it itself: the
//! order can cost speed, never correctness.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::walk::{Excludes, Listed};
use super::{EngineError, Result};

/// Threads listing folders at once: reads in flight for the disk to serve together.
const LISTING_THREADS: usize = 4;

/// How far the lister may run ahead of the walk.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Folders listed or being listed that the walk has not taken yet.
    folders: usize,
    /// Listed entries waiting for the walk above which no new folder is started.
    entries: usize,
}

/// Enough folders to keep the threads busy ahead of the walk, few enough that memory
/// stays a handful of folders' entries; a few huge folders rather than eight are held.
const LIMITS: Limits = Limits {
    folders: 8,
    entries: 65_536,
};

/// A folder's place in the walk (see the module doc).
type Place = Vec<u32>;

/// The entries of `dir`: sorted by name bytes, excluded ones left out, each stated
/// relative to the open folder (no whole path resolved again).
pub fn list_folder(dir: &Path, base: &Path, excludes: &Excludes) -> Result<Vec<Listed>> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| EngineError::source_io(dir, e))?
        .map(|e| e.map(|e| (e.file_name(), e)))
        .collect::<std::io::Result<_>>()
        .map_err(|e| EngineError::source_io(dir, e))?;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(entries.len());
    for (name, e) in entries {
        let path = e.path();
        if excludes.excludes(&path, base) {
            continue;
        }
        let meta = e.metadata().map_err(|err| EngineError::source_io(&path, err))?;
        out.push(Listed { name, path, meta });
    }
    Ok(out)
}

/// A folder known to the lister, not yet started.
struct Folder {
    path: PathBuf,
    base: Arc<Path>,
}

/// A folder's listing, waiting for the walk.
struct Done {
    path: PathBuf,
    entries: Result<Vec<Listed>>,
}

impl Done {
    fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Vec::len)
    }
}

#[derive(Default)]
struct State {
    /// Folders known and not started, by place.
    waiting: BTreeMap<Place, Folder>,
    /// Folders being listed now.
    listing: usize,
    /// Folders listed and not taken, by place.
    done: BTreeMap<Place, Done>,
    /// Entries held in `done`.
    done_entries: usize,
    /// The place of every folder waiting, being listed or done, by path.
    places: HashMap<PathBuf, Place>,
    /// The place of the last folder the walk took: anything before it is not needed.
    taken: Place,
    /// The walk is over.
    stopped: bool,
}

impl State {
    /// Whether a thread may start another folder now.
    fn room(&self, limits: Limits) -> bool {
        !self.waiting.is_empty()
            && self.listing + self.done.len() < limits.folders
            && self.done_entries < limits.entries
    }

    /// Whether no folder can become known any more: nothing waits, nothing is listed.
    fn exhausted(&self) -> bool {
        self.waiting.is_empty() && self.listing == 0
    }

    /// Make the subfolders of the folder at `place` known, each after the one before.
    fn add_subfolders(&mut self, place: &Place, entries: &Result<Vec<Listed>>, base: &Arc<Path>) {
        let Ok(entries) = entries else { return };
        let subfolders = entries.iter().filter(|e| e.meta.is_dir());
        for (i, sub) in subfolders.enumerate() {
            let mut at = place.clone();
            at.push(u32::try_from(i).unwrap_or(u32::MAX));
            self.places.insert(sub.path.clone(), at.clone());
            let folder = Folder {
                path: sub.path.clone(),
                base: base.clone(),
            };
            self.waiting.insert(at, folder);
        }
    }

    /// Forget every folder before `place`: the walk, now at `place`, has gone past them.
    fn forget_before(&mut self, place: &Place) {
        let later = self.waiting.split_off(place);
        for (_, f) in mem::replace(&mut self.waiting, later) {
            self.places.remove(&f.path);
        }
        let later = self.done.split_off(place);
        for (_, d) in mem::replace(&mut self.done, later) {
            self.done_entries -= d.len();
            self.places.remove(&d.path);
        }
        self.taken = place.clone();
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    excludes: Excludes,
    limits: Limits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left nothing half-changed that
        // matters here: the worst is a folder listed twice.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    /// One listing thread: start the earliest waiting folder while there is room.
    fn run(&self) {
        loop {
            let mut s = self.lock();
            while !s.stopped && !s.exhausted() && !s.room(self.limits) {
                s = self.wait(s);
            }
            if s.stopped || s.exhausted() {
                self.changed.notify_all();
                return;
            }
            let Some((place, folder)) = s.waiting.pop_first() else {
                continue;
            };
            s.listing += 1;
            drop(s);
            let entries = list_folder(&folder.path, &folder.base, &self.excludes);
            let mut s = self.lock();
            s.listing -= 1;
            if place >= s.taken {
                s.add_subfolders(&place, &entries, &folder.base);
                let done = Done {
                    path: folder.path,
                    entries,
                };
                s.done_entries += done.len();
                s.done.insert(place, done);
            } else {
                s.places.remove(&folder.path);
            }
            self.changed.notify_all();
        }
    }
}

/// Lists folders ahead of the walk (see the module doc); dropping it stops the threads
/// once their current folder is listed.
pub struct Lister {
    shared: Arc<Shared>,
}

impl Lister {
    /// Start listing `roots` (each backed up as a child of its parent folder).
    pub fn spawn(roots: Vec<PathBuf>, excludes: Excludes) -> Lister {
        Self::spawn_with(roots, excludes, LIMITS)
    }

    fn spawn_with(roots: Vec<PathBuf>, excludes: Excludes, limits: Limits) -> Lister {
        let mut state = State::default();
        for (i, root) in roots.into_iter().enumerate() {
            if !fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let base: Arc<Path> = Arc::from(root.parent().unwrap_or(&root));
            let place = vec![u32::try_from(i).unwrap_or(u32::MAX)];
            state.places.insert(root.clone(), place.clone());
            state.waiting.insert(place, Folder { path: root, base });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            excludes,
            limits,
        });
        for _ in 0..LISTING_THREADS {
            let shared = shared.clone();
            // Without its threads the lister still works: the walk lists every folder.
            let _ = std::thread::Builder::new()
                .name("lister".into())
                .spawn(move || shared.run());
        }
        Lister { shared }
    }

    /// The entries of `dir`, as [`list_folder`] gives them: listed ahead if the lister
    /// knows the folder, listed now otherwise.
    pub fn take(&mut self, dir: &Path, base: &Path, excludes: &Excludes) -> Result<Vec<Listed>> {
        let mut s = self.shared.lock();
        let Some(place) = s.places.get(dir).cloned() else {
            drop(s);
            return list_folder(dir, base, excludes);
        };
        s.forget_before(&place);
        loop {
            if let Some(done) = s.done.remove(&place) {
                s.done_entries -= done.len();
                s.places.remove(dir);
                self.shared.changed.notify_all();
                return done.entries;
            }
            if let Some(folder) = s.waiting.remove(&place) {
                // Not started yet: list it here rather than wait for a thread, and make
                // its subfolders known (counted as listing meanwhile, so the threads
                // do not take the lister for finished).
                s.places.remove(dir);
                s.listing += 1;
                drop(s);
                let entries = list_folder(dir, base, excludes);
                let mut s = self.shared.lock();
                s.listing -= 1;
                s.add_subfolders(&place, &entries, &folder.base);
                self.shared.changed.notify_all();
                return entries;
            }
            if !s.places.contains_key(dir) {
                drop(s);
                return list_folder(dir, base, excludes);
            }
            s = self.shared.wait(s); // being listed by a thread
        }
    }

    /// Folders being listed and listed-but-not-taken, for the tests of the bounds.
    #[cfg(test)]
    fn held(&self) -> (usize, usize, usize) {
        let s = self.shared.lock();
        (s.listing, s.done.len(), s.waiting.len())
    }
}

impl Drop for Lister {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
#[path = "lister_tests.rs"]
mod tests;

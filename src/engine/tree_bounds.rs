//! Bounds on walking a snapshot's trees.
//!
//! Trees come from storage and from whichever host made the backup. A tree's id is the
//! keyed hash of its content, and every blob is checked against its id when read, so a
//! tree can neither contain itself nor be swapped for another. A writer holding the key
//! can still nest trees deeper than any file system does, or point many entries at one
//! subtree that does the same again: each level multiplies the paths, and a walk that
//! expands every path (`ls`, `restore`) would take time and memory exponential in the
//! depth. Every such walk therefore counts what it expands and stops with damage, naming
//! the snapshot and path, at a depth no backup produces or when it has expanded far more
//! entries than the distinct trees it read hold (docs/format.md §18). Walks that visit
//! each distinct tree once (`check`, prune) need only the depth bound; `check` also
//! computes what a full walk would expand ([`Expansion`]) and reports a snapshot that
//! `ls` and `restore` would refuse.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::format::ids::{BlobId, SnapshotId};
use crate::repo::RepoError;

/// Deepest directory a walk enters. A backup reads files by their full path, which the
/// kernel refuses beyond `PATH_MAX` (4096 bytes), so no honest snapshot nests more than
/// 2048 one-letter directories.
pub const MAX_DEPTH: usize = 2048;
/// How many times over the entries of the distinct trees read a walk may expand. Entries
/// record inode numbers, so an honest snapshot repeats a non-empty tree only where one
/// directory was backed up twice (a bind mount, a path given twice) or where trees of
/// hard links repeat the same leaf directories (rsnapshot or `cp -al` generations,
/// ostree deployments): 64 covers two months of daily hard-linked generations.
pub const MAX_REPEAT: u64 = 64;
/// Entries a walk may expand beyond that, for small repeated directories.
pub const REPEAT_ALLOWANCE: u64 = 1 << 18;

/// What one walk over one snapshot's trees has expanded so far.
#[derive(Debug, Default)]
pub struct TreeBudget {
    distinct: HashSet<BlobId>,
    distinct_entries: u64,
    expanded: u64,
}

impl TreeBudget {
    /// Refuse to enter a directory `depth` levels below the snapshot root when that is
    /// deeper than [`MAX_DEPTH`].
    pub fn check_depth(snapshot: &SnapshotId, path: &Path, depth: usize) -> Result<(), RepoError> {
        if depth <= MAX_DEPTH {
            return Ok(());
        }
        Err(RepoError::damaged(
            format!("snapshot {}: directory {}", snapshot.short(), shortened(path)),
            format!("it is nested {depth} levels deep, more than the {MAX_DEPTH} any backup produces"),
        ))
    }

    /// Count tree `id` with `entries` entries, read at `path`, `depth` levels below the
    /// root; refuse it when the walk is too deep or expands too much.
    pub fn enter(
        &mut self,
        snapshot: &SnapshotId,
        path: &Path,
        depth: usize,
        id: &BlobId,
        entries: usize,
    ) -> Result<(), RepoError> {
        Self::check_depth(snapshot, path, depth)?;
        if self.distinct.insert(*id) {
            self.distinct_entries += entries as u64;
        }
        self.expanded += entries as u64;
        if self.expanded <= limit(self.distinct_entries) {
            return Ok(());
        }
        let what = format!(
            "snapshot {}: tree {} at {}",
            snapshot.short(),
            id.short(),
            shortened(path)
        );
        Err(too_repetitive(what, self.distinct_entries))
    }
}

/// The most entries a walk may expand having read `distinct` entries of distinct trees.
fn limit(distinct: u64) -> u64 {
    distinct.saturating_mul(MAX_REPEAT).saturating_add(REPEAT_ALLOWANCE)
}

fn too_repetitive(what: String, distinct: u64) -> RepoError {
    RepoError::damaged(
        what,
        format!(
            "its subtrees repeat so often that {distinct} entries expand to more than {}; \
             only hard-linked copies of one tree repeat directories, and not this often",
            limit(distinct)
        ),
    )
}

/// One distinct tree as `check` read it: its entry count and its subtrees.
#[derive(Debug, Default)]
pub struct Shape {
    pub entries: u64,
    pub subtrees: Vec<BlobId>,
}

/// What full walks of snapshots would expand, computed from the shapes of the distinct
/// trees without expanding anything. Trees that could not be read count as empty.
#[derive(Debug, Default)]
pub struct Expansion {
    pub shapes: HashMap<BlobId, Shape>,
    /// Entries below each tree with every path counted (saturating), shared by snapshots.
    expanded: HashMap<BlobId, u64>,
}

impl Expansion {
    /// Refuse snapshot `snapshot` (root tree `root`) when walking it would expand more
    /// entries than [`TreeBudget`] allows for the distinct entries it holds.
    pub fn check(&mut self, snapshot: &SnapshotId, root: &BlobId) -> Result<(), RepoError> {
        let expanded = self.expanded(root);
        // Enough distinct entries to allow `expanded`; an honest snapshot, where every
        // entry is distinct, reaches it after reading a [`MAX_REPEAT`]th of its trees.
        let needed = expanded.saturating_sub(REPEAT_ALLOWANCE).div_ceil(MAX_REPEAT);
        let distinct = self.distinct_up_to(root, needed);
        if distinct >= needed {
            return Ok(());
        }
        Err(too_repetitive(format!("snapshot {}", snapshot.short()), distinct))
    }

    fn expanded(&mut self, root: &BlobId) -> u64 {
        let mut entered = HashSet::new();
        let mut stack = vec![(*root, false)];
        while let Some((id, children_done)) = stack.pop() {
            if self.expanded.contains_key(&id) {
                continue;
            }
            let Some(shape) = self.shapes.get(&id) else {
                self.expanded.insert(id, 0);
                continue;
            };
            if children_done {
                let below = shape
                    .subtrees
                    .iter()
                    .map(|s| self.expanded.get(s).copied().unwrap_or(0));
                let total = below.fold(shape.entries, u64::saturating_add);
                self.expanded.insert(id, total);
            } else if entered.insert(id) {
                stack.push((id, true));
                stack.extend(shape.subtrees.iter().map(|s| (*s, false)));
            }
        }
        self.expanded.get(root).copied().unwrap_or(0)
    }

    /// Entries of the distinct trees below `root`, counted until they reach `needed`.
    fn distinct_up_to(&self, root: &BlobId, needed: u64) -> u64 {
        let mut seen = HashSet::new();
        let mut stack = vec![*root];
        let mut distinct = 0u64;
        while let Some(id) = stack.pop() {
            if distinct >= needed {
                break;
            }
            if !seen.insert(id) {
                continue;
            }
            if let Some(shape) = self.shapes.get(&id) {
                distinct += shape.entries;
                stack.extend(&shape.subtrees);
            }
        }
        distinct
    }
}

/// A path as shown in messages, cut to its first 120 bytes: a hostile path may be
/// thousands of components long.
fn shortened(path: &Path) -> String {
    let shown = format!("/{}", path.display());
    match shown.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &shown[..at]),
        None => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (SnapshotId, BlobId, BlobId) {
        (SnapshotId([1; 32]), BlobId([2; 32]), BlobId([3; 32]))
    }

    #[test]
    fn depth_beyond_the_bound_is_damage_naming_snapshot_and_a_short_path() {
        let (snap, a, _) = ids();
        let deep: std::path::PathBuf = std::iter::repeat_n("d", MAX_DEPTH + 1).collect();
        let mut budget = TreeBudget::default();
        budget.enter(&snap, Path::new("x"), MAX_DEPTH, &a, 1).unwrap();
        let err = budget.enter(&snap, &deep, MAX_DEPTH + 1, &a, 1).unwrap_err();
        assert!(err.is_damage(), "{err}");
        let text = err.to_string();
        assert!(text.contains(&snap.short()) && text.contains("2049 levels"), "{text}");
        assert!(text.len() < 400, "{text}");
    }

    #[test]
    fn check_computes_the_expansion_of_repeated_subtrees_without_walking_them() {
        let (snap, a, b) = ids();
        let root = BlobId([4; 32]);
        let mut exp = Expansion::default();
        // root → 1000 × a → 1000 × b, b with 1000 entries: 10⁹ paths from 3000 entries.
        exp.shapes.insert(
            root,
            Shape {
                entries: 1000,
                subtrees: vec![a; 1000],
            },
        );
        exp.shapes.insert(
            a,
            Shape {
                entries: 1000,
                subtrees: vec![b; 1000],
            },
        );
        exp.shapes.insert(
            b,
            Shape {
                entries: 1000,
                subtrees: vec![],
            },
        );
        let err = exp.check(&snap, &root).unwrap_err();
        assert!(err.is_damage() && err.to_string().contains("3000 entries"), "{err}");
        // Every entry distinct, however many: fine.
        let mut honest = Expansion::default();
        let leaves: Vec<BlobId> = (0..200u8).map(|i| BlobId([i; 32])).collect();
        for leaf in &leaves {
            honest.shapes.insert(
                *leaf,
                Shape {
                    entries: 5000,
                    subtrees: vec![],
                },
            );
        }
        let top = BlobId([255; 32]);
        honest.shapes.insert(
            top,
            Shape {
                entries: 200,
                subtrees: leaves,
            },
        );
        honest.check(&snap, &top).unwrap();
    }

    #[test]
    fn sixty_hard_linked_generations_of_a_large_directory_are_walked() {
        // rsnapshot-style: each generation's directory is its own inode, the leaf
        // directory of hard links is the same tree in all of them.
        let (snap, leaf, _) = ids();
        let mut budget = TreeBudget::default();
        budget.enter(&snap, Path::new(""), 0, &BlobId([9; 32]), 60).unwrap();
        for generation in 0..60u8 {
            let daily = Path::new("daily");
            budget
                .enter(&snap, daily, 1, &BlobId([100 + generation; 32]), 1)
                .unwrap();
            budget.enter(&snap, &daily.join("leaf"), 2, &leaf, 5000).unwrap();
        }
        // Walked the same way by check: the same verdict.
        let mut exp = Expansion::default();
        let generations: Vec<BlobId> = (0..60u8).map(|g| BlobId([100 + g; 32])).collect();
        for id in &generations {
            exp.shapes.insert(
                *id,
                Shape {
                    entries: 1,
                    subtrees: vec![leaf],
                },
            );
        }
        exp.shapes.insert(
            leaf,
            Shape {
                entries: 5000,
                subtrees: vec![],
            },
        );
        let root = BlobId([9; 32]);
        exp.shapes.insert(
            root,
            Shape {
                entries: 60,
                subtrees: generations,
            },
        );
        exp.check(&snap, &root).unwrap();
    }

    #[test]
    fn repeated_subtrees_expand_only_so_far() {
        let (snap, a, b) = ids();
        let mut budget = TreeBudget::default();
        budget.enter(&snap, Path::new(""), 0, &a, 1000).unwrap();
        // The same directory seen [`MAX_REPEAT`] times more than it holds is refused.
        for _ in 0..MAX_REPEAT + REPEAT_ALLOWANCE / 1000 - 1 {
            budget.enter(&snap, Path::new("again"), 1, &a, 1000).unwrap();
        }
        let err = budget.enter(&snap, Path::new("again"), 1, &a, 1000).unwrap_err();
        assert!(err.is_damage() && err.to_string().contains("/again"), "{err}");
        // Distinct trees raise the limit as they are read.
        budget.enter(&snap, Path::new("new"), 1, &b, 100_000).unwrap();
    }
}

//! Anomaly signals gathered while a backup walks, at no extra pass over the data.
//!
//! The walker already holds each directory's old tree (from the parent snapshot) next
//! to the new one, so comparing the two per directory gives deletions, same-size
//! renames and new extensions; the sealing threads already learn whether each new
//! blob compressed. This module turns those into [`Signals`], and, with the dataset's
//! history from the snapshots the backup lists anyway, into the snapshot's
//! [`Verdict`] (`format::anomaly` does the arithmetic).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::anomaly::{self, MAX_EXTENSIONS, Policy, Shares, Signals, extension};
use crate::format::ids::SnapshotId;
use crate::format::names::DatasetName;
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Node, NodeKind, Tree};

/// The longest directory name kept as `top_dir`.
const MAX_TOP_DIR: usize = 256;

/// New data bytes, and how many of them did not compress; shared by the sealing threads.
#[derive(Debug, Default)]
pub struct Compressibility {
    judged: AtomicU64,
    raw: AtomicU64,
}

impl Compressibility {
    /// Count one sealed data blob.
    pub fn add(&self, raw_len: usize, stored_raw: bool) {
        self.judged.fetch_add(raw_len as u64, Ordering::Relaxed);
        if stored_raw {
            self.raw.fetch_add(raw_len as u64, Ordering::Relaxed);
        }
    }
}

/// Collects signals directory by directory during the walk.
#[derive(Debug, Default)]
pub struct Collector {
    /// Extensions the dataset had so far (`None` without a parent: nothing is new then).
    known: Option<BTreeSet<String>>,
    seen: BTreeSet<String>,
    signals: Signals,
}

impl Collector {
    /// Start from the parent snapshot (whose extension set makes churn countable).
    pub fn new(parent: Option<&Snapshot>) -> Self {
        let signals = parent.and_then(|p| p.summary.signals.as_ref());
        let known: Option<BTreeSet<String>> = signals
            .filter(|s| !s.extensions_full)
            .map(|s| s.extensions.iter().take(MAX_EXTENSIONS).cloned().collect());
        Collector {
            seen: known.clone().unwrap_or_default(),
            known,
            ..Collector::default()
        }
    }

    /// Compare one directory's new tree with its old one (`None`: new directory).
    pub fn directory(&mut self, rel: &Path, old: Option<&Tree>, new: &Tree) {
        let before: foldhash::HashMap<Cow<'_, OsStr>, &Node> = old
            .map(|t| t.nodes.iter().filter(|n| n.kind == NodeKind::File))
            .into_iter()
            .flatten()
            .map(|n| (n.os_name(), n))
            .collect();
        let mut present = foldhash::HashSet::default();
        let mut added_sizes = Vec::new();
        let mut changes = 0;
        for node in new.nodes.iter().filter(|n| n.kind == NodeKind::File) {
            let name = node.os_name();
            let ext = extension(name.as_bytes());
            self.remember(ext.as_deref());
            match before.get(&name) {
                Some(prev) if prev.hash == node.hash => {}
                prev => {
                    changes += 1;
                    self.count_extension(ext.as_deref());
                    if prev.is_none() {
                        added_sizes.push(node.size);
                    }
                }
            }
            present.insert(name);
        }
        let deleted: Vec<u64> = before
            .iter()
            .filter(|(name, _)| !present.contains(*name))
            .map(|(_, n)| n.size)
            .collect();
        self.signals.files_deleted += deleted.len() as u64;
        self.signals.files_renamed += same_sized(&added_sizes, deleted.clone());
        self.note_dir(rel, changes + deleted.len() as u64);
    }

    fn remember(&mut self, ext: Option<&str>) {
        let Some(ext) = ext else { return };
        if self.seen.len() < MAX_EXTENSIONS || self.seen.contains(ext) {
            self.seen.insert(ext.to_string());
        } else {
            self.signals.extensions_full = true;
        }
    }

    fn count_extension(&mut self, ext: Option<&str>) {
        if let (Some(known), Some(ext)) = (&self.known, ext)
            && !known.contains(ext)
        {
            self.signals.files_new_extension += 1;
        }
    }

    fn note_dir(&mut self, rel: &Path, changes: u64) {
        if changes > self.signals.top_dir_changes {
            self.signals.top_dir_changes = changes;
            let shown = rel.to_string_lossy();
            self.signals.top_dir = truncated(&shown, MAX_TOP_DIR);
        }
    }

    /// The signals of the finished walk (compressibility is added by [`judge_run`]
    /// once the sealers are done).
    pub fn finish(&mut self) -> Signals {
        let mut signals = std::mem::take(&mut self.signals);
        signals.extensions = std::mem::take(&mut self.seen).into_iter().collect();
        signals
    }
}

/// How many added sizes find a deleted file of the same size (each used once).
fn same_sized(added: &[u64], mut deleted: Vec<u64>) -> u64 {
    deleted.sort_unstable();
    let mut matched = 0;
    for size in added {
        if let Ok(i) = deleted.binary_search(size) {
            deleted.remove(i);
            matched += 1;
        }
    }
    matched
}

fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The dataset's earlier judged runs, oldest first: the snapshots of the same dataset
/// and sources that carry signals, leaving out those already found suspect (an attack
/// must not become the baseline).
pub fn history<'a>(
    snapshots: impl Iterator<Item = &'a Snapshot>,
    dataset: &Option<DatasetName>,
    paths: &[String],
) -> Vec<Shares> {
    let mut mine: Vec<&Snapshot> = snapshots
        .filter(|s| &s.dataset == dataset && s.paths == paths && !s.summary.suspect())
        .filter(|s| s.summary.signals.is_some())
        .collect();
    mine.sort_by_key(|s| s.time);
    mine.iter().filter_map(|s| shares_of(&s.summary)).collect()
}

fn shares_of(summary: &Summary) -> Option<Shares> {
    let signals = summary.signals.as_ref()?;
    Some(anomaly::shares(&summary.counts(), signals))
}

/// The snapshot a run builds on, as the judgement needs it.
pub struct Before<'a> {
    pub id: SnapshotId,
    pub snapshot: &'a Snapshot,
    pub history: &'a [Shares],
}

/// Complete a finished run's signals with the sealers' counts and, under `policy`,
/// judge them against the parent's history. A suspect run pins the last snapshot
/// before the anomaly: the parent, or what a suspect parent already pins, so every
/// suspect run of one incident holds the same clean snapshot.
pub fn judge_run(summary: &mut Summary, sealed: &Compressibility, policy: Option<&Policy>, parent: Option<Before>) {
    if let Some(s) = summary.signals.as_mut() {
        s.bytes_judged = sealed.judged.load(Ordering::Relaxed);
        s.bytes_incompressible = sealed.raw.load(Ordering::Relaxed);
    }
    let (Some(policy), Some(now)) = (policy, shares_of(summary)) else {
        return;
    };
    let history = parent.as_ref().map_or(&[][..], |p| p.history);
    let mut v = anomaly::judge(&now, history, policy);
    if v.suspect {
        v.pinned = parent.and_then(|p| match &p.snapshot.summary.anomaly {
            Some(before) if before.suspect => before.pinned,
            _ => Some(p.id),
        });
    }
    summary.anomaly = Some(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn file(name: &str, size: u64, hash: u8) -> Node {
        let mut n = Node::new(OsStr::new(name), NodeKind::File);
        n.size = size;
        n.hash = Some(crate::format::ids::ContentHash([hash; 32]));
        n
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            time: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            host: "h".into(),
            paths: vec!["/d".into()],
            tags: Vec::new(),
            dataset: None,
            tree: crate::format::ids::BlobId([0; 32]),
            parent: None,
            summary: Summary::default(),
        }
    }

    fn tree(nodes: Vec<Node>) -> Tree {
        Tree { nodes }
    }

    #[test]
    fn a_directory_diff_counts_deletions_renames_and_new_extensions() {
        let parent_signals = Signals {
            extensions: vec!["doc".into(), "txt".into()],
            ..Signals::default()
        };
        let parent = Snapshot {
            summary: Summary {
                signals: Some(parent_signals),
                ..Summary::default()
            },
            ..snapshot()
        };
        let mut c = Collector::new(Some(&parent));
        let old = tree(vec![file("a.doc", 100, 1), file("b.txt", 50, 2), file("c.txt", 7, 3)]);
        let new = tree(vec![
            file("a.doc.locked", 100, 9),
            file("b.txt", 50, 2),
            file("c.txt", 8, 4),
            file("d.txt", 3, 5),
        ]);
        c.directory(Path::new("docs"), Some(&old), &new);
        let s = c.finish();
        assert_eq!(s.files_deleted, 1);
        assert_eq!(s.files_renamed, 1);
        assert_eq!(s.files_new_extension, 1);
        assert_eq!((s.top_dir.as_str(), s.top_dir_changes), ("docs", 4));
        assert_eq!(s.extensions, vec!["doc", "locked", "txt"]);
    }

    #[test]
    fn without_a_parent_no_extension_is_new() {
        let mut c = Collector::new(None);
        c.directory(Path::new(""), None, &tree(vec![file("x.bin", 1, 1)]));
        let s = c.finish();
        assert_eq!((s.files_new_extension, s.files_deleted), (0, 0));
    }

    #[test]
    fn the_extension_set_is_bounded() {
        let mut c = Collector::new(None);
        let nodes = (0..MAX_EXTENSIONS + 5)
            .map(|i| file(&format!("f.e{i}"), 1, 1))
            .collect();
        c.directory(Path::new(""), None, &tree(nodes));
        let s = c.finish();
        assert_eq!(s.extensions.len(), MAX_EXTENSIONS);
        assert!(s.extensions_full);
    }

    #[test]
    fn sealers_counts_reach_the_signals() {
        let sealed = Compressibility::default();
        sealed.add(1000, true);
        sealed.add(3000, false);
        let mut summary = Summary {
            signals: Some(Collector::new(None).finish()),
            ..Summary::default()
        };
        judge_run(&mut summary, &sealed, None, None);
        let s = summary.signals.unwrap();
        assert_eq!((s.bytes_judged, s.bytes_incompressible), (4000, 1000));
        assert_eq!(summary.anomaly, None);
    }
}
